"""One Claude session id in two project folders (a project folder copied, history
restored), an unreadable project folder and an unreadable session file, through the
real CLI on agent folders written at test time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recorder.sources import claude
from recorder.sources.copies import copies_dir, protect
from recorder.sources.jsonl import parse_time
from recorder.store.layout import Layout
from tests.process.test_sessions_cli import persist
from tests.session_fixtures import (
    ClaudeSession,
    codex_rollout,
    gemini_legacy,
    gemini_messages,
    gemini_project,
    new_uuid,
    text,
)
from tests.support import DROP_READ_ANYTHING

pytestmark = pytest.mark.timeout(180)

SID = "4b2030ed-1111-4222-8333-444455556666"


def two_folders(tmp: Path) -> tuple[ClaudeSession, ClaudeSession]:
    """A's file copied into folder B (same name, same sessionId, B's cwd); then A gets a
    GIRAFFE exchange and B, later, a ZEBRA one."""
    a = ClaudeSession(tmp / "claude", cwd=str(tmp / "aproj"), session_id=SID)
    for i in range(2):
        a.user(f"question {i}")
        a.assistant(text(f"answer {i}"))
    b = ClaudeSession(tmp / "claude", cwd=str(tmp / "otherproj"), session_id=SID)
    b.lines = [dict(line, cwd=b.cwd) for line in a.lines]
    b.last = a.last
    a.user("GIRAFFE question")
    a.assistant(text("giraffe answer"))
    b.t = a.t  # B written last
    b.user("ZEBRA question")
    b.assistant(text("zebra answer"))
    a.write()
    b.write()
    return a, b


def key_of(s: ClaudeSession) -> str:
    assert s.path is not None
    return f"claude:{SID}@{s.path.parent.name}"


def exported(tmp: Path, ref: str) -> str:
    out = persist(tmp, "export", "--session", ref, "--format", "md", "-o", "-")
    assert out.returncode == 0, out.stderr
    return out.stdout


def hits(tmp: Path, word: str) -> list[dict]:
    out = persist(tmp, "search", word, "--json")
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout)["hits"])


def test_one_id_in_two_project_folders_is_two_sessions(tmp_path: Path) -> None:
    a, b = two_folders(tmp_path)
    (tmp_path / "log").mkdir()  # a log folder with no journal: search finds sessions there
    out = persist(tmp_path, "sessions", "--json")
    rows = {r["key"]: r for r in json.loads(out.stdout)}
    assert set(rows) == {key_of(a), key_of(b)}
    for s in (a, b):
        row = rows[key_of(s)]
        assert row["path"] == str(s.path) and row["extra_paths"] == []
        assert row["resume"] == f"cd {s.cwd} && claude --resume {SID}"
    # the id alone is ambiguous: one line naming each choice, exit 1
    out = persist(tmp_path, "export", "--session", SID[:8], "--format", "md", "-o", "-")
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "matches 2 sessions" in out.stderr
    assert key_of(a) in out.stderr and key_of(b) in out.stderr
    # each key names its own conversation (a prefix of it too, any case)
    md_a = exported(tmp_path, key_of(a).upper())
    assert "GIRAFFE" in md_a and "ZEBRA" not in md_a
    md_b = exported(tmp_path, key_of(b)[:-3])
    assert "ZEBRA" in md_b and "GIRAFFE" not in md_b
    resumed = json.loads(persist(tmp_path, "fork", key_of(a), "--json").stdout)
    assert resumed["resume"] == f"cd {a.cwd} && claude --resume {SID}"
    # search origins name the session they are in, and fork --at takes that message
    giraffe = [h for h in hits(tmp_path, "GIRAFFE") if h["sender"] == "user"]
    assert [h["origin"] for h in giraffe] == [f"{key_of(a).lower()}#4"]
    assert [h["origin"].rpartition("#")[0] for h in hits(tmp_path, "ZEBRA")] == [
        key_of(b).lower()
    ] * 2
    out = persist(tmp_path, "fork", giraffe[0]["topic"], "--at", "4", "--json")
    assert out.returncode == 0, out.stderr
    forked = json.loads(out.stdout)
    back = claude.read_transcript(Path(forked["path"]))
    assert back.messages[-1].text == "GIRAFFE question"
    assert Path(forked["path"]).parent == a.path.parent  # type: ignore[union-attr]
    Path(forked["path"]).unlink()
    # the agent deletes B after we protected both: B stays listed, and forkable
    out = persist(tmp_path, "protect", "--all")
    assert out.returncode == 0, out.stderr
    assert b.path is not None
    shutil.move(b.path.parent, tmp_path / "moved-away")
    rows = {r["key"]: r for r in json.loads(persist(tmp_path, "sessions", "--json").stdout)}
    assert set(rows) == {key_of(a), key_of(b)}
    assert rows[key_of(b)]["deleted_by_agent"] and rows[key_of(b)]["protected"]
    assert not rows[key_of(a)]["deleted_by_agent"] and rows[key_of(a)]["protected"]
    assert "ZEBRA" in exported(tmp_path, key_of(b))
    assert "GIRAFFE" in exported(tmp_path, key_of(a))
    zebra = hits(tmp_path, "ZEBRA")
    assert zebra and all(h["deleted"] and h["origin"].startswith(key_of(b).lower()) for h in zebra)
    out = persist(tmp_path, "fork", key_of(b), "--at", "4", "--json")
    assert out.returncode == 0, out.stderr
    back = claude.read_transcript(Path(json.loads(out.stdout)["path"]))
    assert back.messages[-1].text == "ZEBRA question"


def running(tmp: Path, **entry: object) -> None:
    """Claude Code's registry of running sessions: this process runs SID."""
    registry = tmp / "claude" / "sessions"
    registry.mkdir(exist_ok=True)
    base = {"pid": os.getpid(), "sessionId": SID, "startedAt": 1, "kind": "interactive"}
    (registry / f"{os.getpid()}.json").write_text(json.dumps({**base, **entry}))


def test_a_running_claude_is_the_session_of_its_project_folder_only(tmp_path: Path) -> None:
    """The registry names the id and the process's cwd: the namesake filed under another
    project folder is not running; when the cwd tells neither, both say they cannot tell."""
    a, b = two_folders(tmp_path)
    running(tmp_path, cwd=a.cwd)
    rows = {r["key"]: r for r in json.loads(persist(tmp_path, "sessions", "--json").stdout)}
    assert rows[key_of(a)]["live_pid"] == os.getpid()
    assert rows[key_of(b)]["live_pid"] is None
    assert rows[key_of(a)]["maybe_live_pid"] is None and rows[key_of(b)]["maybe_live_pid"] is None
    table = persist(tmp_path, "sessions")
    assert table.returncode == 0, table.stderr
    lines = {line.split()[1]: line for line in table.stdout.splitlines()[1:]}
    # the id shown names its row alone (a copy-paste away from fork and export)
    assert set(lines) == {key_of(a), key_of(b)}
    assert lines[key_of(a)].split()[4] == "live" and "live" not in lines[key_of(b)]
    warning = f"warning: Claude Code (PID {os.getpid()}) is running this session now"
    out = persist(tmp_path, "fork", key_of(a))
    assert out.returncode == 0 and warning in out.stderr, out.stderr
    out = persist(tmp_path, "fork", key_of(b))
    assert out.returncode == 0 and "warning" not in out.stderr, out.stderr
    # a cwd that is neither project's (a worktree, say), or none: which one, nobody knows
    for entry in ({"cwd": str(tmp_path / "third")}, {}):
        (tmp_path / "claude" / "sessions" / f"{os.getpid()}.json").unlink()
        running(tmp_path, **entry)
        listed = json.loads(persist(tmp_path, "sessions", "--json").stdout)
        assert [(r["live_pid"], r["maybe_live_pid"]) for r in listed] == [(None, os.getpid())] * 2
        assert all(
            line.split()[4] == "live?"
            for line in persist(tmp_path, "sessions").stdout.splitlines()[1:]
        )
        for s in (a, b):
            out = persist(tmp_path, "fork", key_of(s))
            assert out.returncode == 0, out.stderr
            assert "running this session now" not in out.stderr
            assert (
                f"Claude Code (PID {os.getpid()}) is running a session with this id" in out.stderr
            )
            assert "cannot tell" in out.stderr


def test_the_id_shown_names_its_session_alone(tmp_path: Path) -> None:
    """Codex ids are UUIDv7: sessions started within a minute share their first 8
    characters, which named neither."""
    for tid in ("019a085e-0000-7000-8000-0000000000aa", "019a085e-0000-7000-8000-0000000000bb"):
        codex_rollout(tmp_path / "codex", tid, 2, cwd=str(tmp_path / "proj"))
    c = ClaudeSession(tmp_path / "claude", cwd=str(tmp_path / "proj"))
    c.user("question")
    c.write()
    out = persist(tmp_path, "sessions")
    assert out.returncode == 0, out.stderr
    shown = [line.split()[1] for line in out.stdout.splitlines()[1:]]
    assert sorted(shown) == sorted(
        [
            "019a085e-0000-7000-8000-0000000000a",
            "019a085e-0000-7000-8000-0000000000b",
            c.session_id[:8],
        ]
    )
    for ref in shown:
        out = persist(tmp_path, "export", "--session", ref, "--format", "md", "-o", "-")
        assert out.returncode == 0, out.stderr


def test_copies_and_index_entries_made_before_are_still_found(tmp_path: Path) -> None:
    """Before, the two were one session: its copy held B's file as `main` and A's as an
    extra, in `copies/claude/<id>/`, and its messages were indexed as `claude:<id>`."""
    a, b = two_folders(tmp_path)
    assert a.path is not None and b.path is not None
    (tmp_path / "log").mkdir()
    b_moved = tmp_path / "b-elsewhere"
    shutil.move(b.path.parent, b_moved)
    # A alone: an unambiguous id keeps its key `claude:<id>`, in the index too
    assert [h["origin"] for h in hits(tmp_path, "GIRAFFE")] == [
        f"claude:{SID}#5",
        f"claude:{SID}#4",
    ]
    shutil.move(b_moved, b.path.parent)
    session = claude.read_transcript(b.path, listing=True).session
    session.extra_paths = (a.path,)
    protect(Layout(tmp_path / "log"), session)  # the copy an older version made
    old = copies_dir(Layout(tmp_path / "log")) / "claude" / SID
    assert json.loads((old / "manifest.json").read_text())["files"].keys() == {
        "main",
        f"extra-{SID}.jsonl",
    }
    # B appears: A's documents are indexed again under its new key, none left behind
    assert [h["origin"] for h in hits(tmp_path, "GIRAFFE")] == [
        f"{key_of(a).lower()}#5",
        f"{key_of(a).lower()}#4",
    ]
    shutil.rmtree(b.path.parent)
    rows = {r["key"]: r for r in json.loads(persist(tmp_path, "sessions", "--json").stdout)}
    assert rows[key_of(b)]["deleted_by_agent"] and not rows[key_of(a)]["protected"]
    assert "ZEBRA" in exported(tmp_path, key_of(b))
    assert [h["origin"].rpartition("#")[0] for h in hits(tmp_path, "ZEBRA")] == [
        key_of(b).lower()
    ] * 2
    # protecting A now gives it a copy of its own; the old one stays B's
    out = persist(tmp_path, "protect", "--all")
    assert out.returncode == 0, out.stderr
    folders = sorted(p.name for p in (copies_dir(Layout(tmp_path / "log")) / "claude").iterdir())
    assert folders == [SID, f"{SID}_{a.path.parent.name}"]
    out = persist(tmp_path, "fork", key_of(b), "--at", "4", "--json")
    assert out.returncode == 0, out.stderr
    assert "damaged" not in doctor(tmp_path / "log").stdout


def unprivileged(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`persist` (as `persist()` runs it) as a user the file modes apply to: as root,
    without the capabilities that let it read anything (CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH)."""
    if os.geteuid() != 0:
        return persist(tmp, *args)
    if shutil.which("setpriv") is None:
        pytest.skip("root without setpriv: file modes do not apply")
    roots = [f"--{name}-root={tmp / name}" for name in ("claude", "gemini", "codex")]
    log = f"--log-dir={tmp / 'log'}"
    return subprocess.run(
        [*DROP_READ_ANYTHING, sys.executable, "-m", "recorder.cli", *args, *roots, log],
        capture_output=True,
        text=True,
        timeout=60,
    )


def doctor(log: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", "doctor", "--dir", str(log), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_unreadable_project_folder_is_named(tmp_path: Path) -> None:
    _, b = two_folders(tmp_path)
    assert b.path is not None
    folder = b.path.parent
    folder.chmod(0)
    try:
        out = unprivileged(tmp_path, "sessions")
        assert out.returncode == 0, out.stderr
        named = [line for line in out.stderr.splitlines() if str(folder) in line]
        assert len(named) == 1 and "cannot be read (Permission denied)" in named[0]
        for args in (("protect", "--all"), ("search", "GIRAFFE")):
            out = unprivileged(tmp_path, *args)
            assert sum(str(folder) in line for line in out.stderr.splitlines()) == 1, args
    finally:
        folder.chmod(0o755)
    # Gemini's chats folder likewise
    chats = gemini_project(tmp_path / "gemini", "/home/me/gem")
    gemini_legacy(chats, new_uuid(), gemini_messages(1))
    chats.chmod(0)
    try:
        out = unprivileged(tmp_path, "sessions")
        named = [line for line in out.stderr.splitlines() if str(chats) in line]
        assert len(named) == 1 and "cannot be read (Permission denied)" in named[0]
    finally:
        chats.chmod(0o755)
    # and a folder of a Gemini session's sub-agents (`chats/<session id>/`)
    agents = chats / new_uuid()
    agents.mkdir()
    (agents / f"{new_uuid()}.jsonl").write_text("{}\n")
    agents.chmod(0)
    try:
        for args in (("sessions",), ("protect", "--all"), ("search", "GIRAFFE")):
            out = unprivileged(tmp_path, *args)
            named = [line for line in out.stderr.splitlines() if str(agents) in line]
            assert len(named) == 1, (args, out.stderr)
            assert "cannot be read (Permission denied)" in named[0], args
    finally:
        agents.chmod(0o755)


def test_an_unreadable_session_file_keeps_its_real_times(tmp_path: Path) -> None:
    s = ClaudeSession(tmp_path / "claude", cwd=str(tmp_path / "proj"))
    s.user("hello")
    s.assistant(text("hi"))
    path = s.write()
    path.chmod(0)
    log = Layout(tmp_path / "log")
    try:
        for _ in range(2):  # the scan cache does not keep it as read
            out = unprivileged(tmp_path, "sessions", "--json")
            assert out.returncode == 0, out.stderr
            assert f"{path} cannot be read (Permission denied)" in out.stderr
            (row,) = json.loads(out.stdout)
            cleanup = parse_time(row["agent_cleanup_at"])
            assert cleanup is not None and abs(cleanup - (path.stat().st_mtime + 30 * 86400)) < 2
        out = unprivileged(tmp_path, "sessions")
        assert "1970-01-01" not in out.stdout
        assert time.strftime("%Y-%m-%d") in out.stdout
        out = unprivileged(tmp_path, "sessions", "--expiring", "7", "--json")
        assert json.loads(out.stdout or "[]") == []
        out = unprivileged(tmp_path, "protect", "--all")
        assert out.returncode == 1 and "Permission denied" in out.stderr
        assert not (copies_dir(log) / "claude" / s.session_id).exists()
        out = doctor(log.root)
        assert "damaged" not in out.stdout and s.session_id not in out.stdout
    finally:
        path.chmod(0o644)


def test_project_folders_differing_only_in_case_are_each_named_and_kept(
    tmp_path: Path,
) -> None:
    """`/tmp/Pa` and `/tmp/pa` are two projects on Linux (`-tmp-Pa`, `-tmp-pa`), one id
    in both: the resolver lowercased keys, so neither key named its session, and the
    index removed documents by lowercased topic, so rewriting one file took the other's
    messages out of search."""
    upper = ClaudeSession(tmp_path / "claude", cwd=str(tmp_path / "Pa"), session_id=SID)
    upper.user("LLAMA question")
    upper.assistant(text("llama answer"))
    upper.write()
    lower = ClaudeSession(tmp_path / "claude", cwd=str(tmp_path / "pa"), session_id=SID)
    lower.user("OKAPI question")
    lower.assistant(text("okapi answer"))
    lower.write()
    (tmp_path / "log").mkdir()
    rows = {r["key"] for r in json.loads(persist(tmp_path, "sessions", "--json").stdout)}
    assert rows == {key_of(upper), key_of(lower)}
    assert key_of(upper).lower() == key_of(lower).lower()
    # an exact key names its session, for export and fork alike
    assert "LLAMA" in exported(tmp_path, key_of(upper))
    assert "OKAPI" in exported(tmp_path, key_of(lower))
    for s in (upper, lower):
        out = persist(tmp_path, "fork", key_of(s), "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["resume"] == f"cd {s.cwd} && claude --resume {SID}"
    # a spelling in neither case is ambiguous: one line naming both, exit 1
    out = persist(tmp_path, "export", "--session", key_of(upper).upper(), "--format", "md")
    assert out.returncode == 1 and "matches 2 sessions" in out.stderr
    assert out.stderr.count("\n") == 1
    assert {h["sender"] for h in hits(tmp_path, "OKAPI")} == {"user", "assistant"}
    # the agent rewrites -tmp-Pa's file: -tmp-pa's messages stay in the index
    assert upper.path is not None
    upper.path.unlink()
    upper.lines = []
    upper.last = None
    upper.user("EMU question")
    upper.write()
    assert [h["origin"] for h in hits(tmp_path, "EMU")] == [f"{key_of(upper)}#0"]
    assert hits(tmp_path, "LLAMA") == []
    assert {h["sender"] for h in hits(tmp_path, "OKAPI")} == {"user", "assistant"}
    # the agent deletes -tmp-pa's file, which we hold a copy of: only its hits say so
    assert persist(tmp_path, "protect", "--all").returncode == 0
    assert lower.path is not None
    lower.path.unlink()
    assert {h["deleted"] for h in hits(tmp_path, "OKAPI")} == {True}
    assert [h["deleted"] for h in hits(tmp_path, "EMU")] == [False]


def test_an_unreadable_session_file_is_not_an_empty_session(tmp_path: Path) -> None:
    """Its messages are unknown: the listing said it held none (`resumable: false`),
    fork refused it as empty and pointed at an export that wrote an empty session
    (exit 0), and the search index dropped its messages, not reading it again once
    readable (a chmod leaves size and mtime as they were)."""
    s = ClaudeSession(tmp_path / "claude", cwd=str(tmp_path / "proj"))
    s.user("WOMBAT question")
    s.assistant(text("wombat answer"))
    path = s.write()
    (tmp_path / "log").mkdir()
    assert len(hits(tmp_path, "WOMBAT")) == 2  # indexed while readable
    s.user("QUOKKA question")
    s.write()
    path.chmod(0)
    key = f"claude:{s.session_id}"
    refusal = f"{key}: {path} cannot be read (Permission denied): its messages are unknown"
    try:
        out = unprivileged(tmp_path, "sessions", "--json")
        assert out.returncode == 0, out.stderr
        assert out.stderr.splitlines() == [
            f"persist: warning: {path} cannot be read (Permission denied)"
        ]
        (row,) = json.loads(out.stdout)
        assert row["messages"] is None and row["resumable"] is None and row["resume"] is None
        assert row["unreadable"] == "Permission denied"
        out = unprivileged(tmp_path, "sessions")
        assert out.stderr.count(str(path)) == 1
        assert "(cannot be read: Permission denied)" in out.stdout
        for args in (("fork", key), ("fork", key, "--at", "0")):
            out = unprivileged(tmp_path, *args)
            assert out.returncode == 1 and out.stdout == ""
            assert out.stderr.splitlines()[-1] == f"persist: {refusal}", args
            assert "no user or assistant message" not in out.stderr
        out = unprivileged(tmp_path, "export", "--session", key, "--format", "md", "-o", "-")
        assert out.returncode == 1 and out.stdout == ""
        assert out.stderr.splitlines()[-1] == f"persist: {refusal}"
        launch = subprocess.run(
            [*DROP_READ_ANYTHING, sys.executable, "-m", "recorder.cli", "launch",
             f"--log-dir={tmp_path / 'log'}", "--session", key, "--", "claude"],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "CLAUDE_CONFIG_DIR": str(tmp_path / "claude"),
                 "GEMINI_CLI_HOME": str(tmp_path / "gemini"),
                 "CODEX_HOME": str(tmp_path / "codex")},
        )  # fmt: skip
        assert launch.returncode == 1
        assert f"persist: cannot resume: {refusal}" in launch.stderr.splitlines()
        # the search index keeps what it had
        out = unprivileged(tmp_path, "search", "WOMBAT", "--json")
        assert len(json.loads(out.stdout)["hits"]) == 2, out.stderr
    finally:
        path.chmod(0o644)
    assert len(hits(tmp_path, "WOMBAT")) == 2
    assert [h["sender"] for h in hits(tmp_path, "QUOKKA")] == ["user"]
