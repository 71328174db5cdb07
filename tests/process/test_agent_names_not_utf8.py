"""Agent sessions whose file or folder names are not UTF-8 (names are bytes on Linux: a
Latin-1 `é`, byte 0xE9, which Python reads as the lone surrogate U+DCE9): an old backup
under `/home/jos\\xe9`, a stray `copie-r\\xe9sum\\xe9.jsonl` in a Claude project folder.
Listed and used like any other, in a UTF-8 locale whose stdout refuses what is not
UTF-8; the scan cache, the copies' manifests, the checkpoints and the search index keep
such names as the bytes they are."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import orjson
import pytest

from recorder.sources.discover import Roots, scan
from recorder.store.jsontext import loads_names
from recorder.store.layout import Layout
from tests.session_fixtures import (
    ClaudeSession,
    codex_rollout,
    gemini_legacy,
    gemini_messages,
    gemini_project,
    new_uuid,
    text,
)
from tests.support import PYTHON

pytestmark = pytest.mark.timeout(180)

HOME = "jos\udce9"  # b"jos\xe9"
STRAY = "copie-r\udce9sum\udce9.jsonl"  # b"copie-r\xe9sum\xe9.jsonl"


def persist(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [PYTHON, "-m", "recorder.cli", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=120,
        env=env,
    )
    assert "Traceback" not in out.stderr, (args, out.stderr)
    return out


def agents_under_a_latin1_home(tmp: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """A Claude session, a stray copy under a Latin-1 name, a sub-agent file whose id
    is its Latin-1 name (its lines carry none, its session's file is gone), a Gemini and
    a Codex session: all under `tmp/jos\\xe9`."""
    home = tmp / HOME
    c = ClaudeSession(home / ".claude", cwd="/home/me/web")
    c.user("redis timeout when connecting to the cache")
    c.assistant(text("I will look at the connection pool."))
    c.write()
    assert c.path is not None
    stray = ClaudeSession(home / ".claude", cwd="/home/me/web", path=c.path.parent / STRAY)
    stray.user("the stray copy asks about postgres vacuum")
    stray.assistant(text("Autovacuum settings first."))
    stray.write()
    sub = ClaudeSession(
        home / ".claude",
        cwd="/home/me/web",
        sidechain=True,
        path=c.path.parent / "agent-r\udce9.jsonl",
    )
    sub.user("a sub-agent looks up kafka offsets")
    sub.assistant(text("The offsets are committed."))
    sub.write()
    gid = new_uuid()
    gemini_legacy(gemini_project(home / ".gemini", "/home/me/gem"), gid, gemini_messages(2))
    codex_rollout(home / ".codex", "019a085e-0000-7000-8000-0000000000aa", 1)
    env = {
        **os.environ,
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "GEMINI_CLI_HOME": str(home),
        "CODEX_HOME": str(home / ".codex"),
        "PERSIST_LOG_DIR": str(tmp / "log"),
        "PYTHONIOENCODING": "utf-8:strict",  # what a UTF-8 locale gives
    }
    (tmp / "log").mkdir(mode=0o700)  # it exists: the scan cache is written
    ids = {"claude": c.session_id, "stray": stray.session_id, "gemini": gid}
    return home, env, ids


def test_sessions_under_names_not_in_utf8_are_listed_searched_protected_and_forked(
    tmp_path: Path,
) -> None:
    """`persist sessions`, `protect`, `monitor` and `search` were a traceback ("str is
    not valid UTF-8: surrogates not allowed", the scan cache; a UnicodeEncodeError, the
    search index) for as long as such a file existed."""
    home, env, made = agents_under_a_latin1_home(tmp_path)
    first = persist("sessions", env=env)
    assert first.returncode == 0, first.stderr
    again = persist("sessions", env=env)  # from the scan cache this time
    assert again.returncode == 0 and again.stdout == first.stdout, again.stderr
    table = first.stdout.split("\n\n")[0]  # the notes under it (the cleanup's) left out
    ids = {line.split()[1] for line in table.splitlines()[1:]}
    # the sub-agent under the id its name gives, as `ls -b` shows it
    expected = {made["claude"][:8], made["stray"][:8], made["gemini"][:8], "r\\xe9", "019a085e"}
    assert ids == expected, first.stdout
    # the cache holds every file under its own name (its bytes), and is used as it is
    claude_dir = home / ".claude"
    cache = loads_names((tmp_path / "log" / "sessions" / "scan-cache.json").read_bytes())
    stray = next(claude_dir.glob("projects/*/copie-*"))
    assert str(stray) in cache["entries"]
    roots = Roots(claude_dir, home / ".gemini", home / ".codex")
    cached = scan(roots, tmp_path / "log" / "sessions" / "scan-cache.json")
    assert cached.read == 0 and cached.cached == 5, (cached.read, cached.problems)
    listed = orjson.loads(persist("sessions", "--json", env=env).stdout)
    paths = {s["path"] for s in listed}
    assert os.fsencode(stray).decode("utf-8", "backslashreplace") in paths  # ...r\xe9sum\xe9

    out = persist("protect", "--all", env=env)
    assert out.returncode == 0 and out.stdout.count("protected ") == 5, out.stdout + out.stderr
    assert "kept" in persist("sessions", env=env).stdout
    out = persist("monitor", "--once", env=env)
    assert out.returncode == 0 and "checkpoint " in out.stdout, out.stdout + out.stderr
    assert persist("checkpoints", env=env).returncode == 0

    for _ in range(2):  # the second catch-up finds every file indexed under its name
        out = persist("search", "postgres vacuum", env=env)
        assert out.returncode == 0 and "stray copy asks about postgres" in out.stdout, out.stderr
    db = sqlite3.connect(Layout(tmp_path / "log").search_index)
    names = {r[0] for r in db.execute("SELECT path FROM session_files")}
    db.close()
    assert os.fsencode(stray) in names  # the bytes it is, not text SQLite cannot hold

    # a session named by its bytes as the shell passes them ($'claude:r\xe9'), or as shown
    for ref in ("claude:r\udce9", "claude:r\\xe9"):
        target = tmp_path / f"sub-{len(ref)}.md"
        out = persist("export", "--session", ref, "-o", str(target), env=env)
        assert out.returncode == 0, out.stderr
        assert "kafka offsets" in target.read_text()
    out = persist("fork", made["stray"][:8], "--at", "1", env=env)
    assert out.returncode == 0, out.stderr
    assert "jos\\xe9" in out.stdout  # the folder it went to, as the shell takes it back
    assert len(list(stray.parent.glob("*.jsonl"))) == 4  # its fork beside it
