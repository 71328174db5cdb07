"""`persist sessions`, `protect` and `fork` as a person runs them, on agent folders
written at test time (the agents' folders are only read, except by `fork`)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import re
import shutil
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from recorder.sources import claude
from recorder.sources.jsonl import parse_time
from recorder.store import secrets as S
from tests.secret_samples import make
from tests.session_fixtures import (
    ClaudeSession,
    codex_rollout,
    gemini_jsonl,
    gemini_legacy,
    gemini_messages,
    gemini_project,
    new_uuid,
    text,
    tool_use,
)

pytestmark = pytest.mark.timeout(180)


def persist(
    tmp: Path, *args: str, timeout: float = 60, umask: int | None = None
) -> subprocess.CompletedProcess[str]:
    """The real CLI on the agent folders and log folder under `tmp` (under `umask`)."""
    roots = [
        "--claude-root",
        str(tmp / "claude"),
        "--gemini-root",
        str(tmp / "gemini"),
        "--codex-root",
        str(tmp / "codex"),
        "--log-dir",
        str(tmp / "log"),
    ]
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args, *roots],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=None if umask is None else lambda: os.umask(umask),
    )


def listed(tmp: Path, *extra: str) -> dict[str, dict]:
    out = persist(tmp, "sessions", "--json", *extra)
    assert out.returncode == 0, out.stderr
    return {row["id"]: row for row in json.loads(out.stdout)}


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def make_claude(tmp: Path, n: int = 3) -> ClaudeSession:
    s = ClaudeSession(tmp / "claude", cwd=str(tmp / "proj"))
    for i in range(n):
        s.user(f"question {i}")
        s.assistant(
            text(f"answer {i}"),
            tool_use("Write", {"file_path": f"/p/f{i}.py", "content": "x"}, f"w{i}"),
        )
        s.tool_result(f"w{i}", "written")
    s.write()
    return s


def test_sessions_lists_every_source_with_its_facts(tmp_path: Path) -> None:
    (tmp_path / "log").mkdir(mode=0o700)  # a log folder that exists keeps the scan cache
    s = make_claude(tmp_path)
    (tmp_path / "claude" / "settings.json").write_text(json.dumps({"cleanupPeriodDays": 10}))
    chats = gemini_project(tmp_path / "gemini", "/home/me/gem")
    gid = new_uuid()
    gemini_legacy(chats, gid, gemini_messages(2))
    tid = "019a085e-0000-7000-8000-00000000abcd"
    codex_rollout(tmp_path / "codex", tid, 2)
    proj = tmp_path / "proj"
    proj.mkdir()
    subprocess.run(["git", "init", "-q", str(proj)], check=True)
    (proj / "a.txt").write_text("x")
    subprocess.run(["git", "-C", str(proj), "add", "a.txt"], check=True)
    rows = listed(tmp_path)
    assert set(rows) == {s.session_id, gid, tid}
    c = rows[s.session_id]
    assert (c["source"], c["messages"], c["title"], c["git_branch"]) == (
        "claude",
        9,
        "question 0",
        "main",
    )
    assert c["files_modified"] == ["/p/f0.py", "/p/f1.py", "/p/f2.py"]
    assert c["uncommitted_changes"] is True and c["protected"] is False
    assert c["resume"] == f"cd {proj} && claude --resume {s.session_id}"
    assert s.path is not None
    mtime = s.path.stat().st_mtime
    due = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(mtime + 10 * 86400))
    assert c["agent_cleanup_at"] == due + "Z"
    assert rows[gid]["messages"] == 4 and rows[gid]["project_path"] == "/home/me/gem"
    assert rows[tid]["agent_cleanup_at"] is None and rows[tid]["git_branch"] == "dev"
    assert c["live_pid"] is None
    # Claude Code's registry of running sessions: a live PID marks it, a dead one not
    registry = tmp_path / "claude" / "sessions"
    registry.mkdir()
    (registry / "2.json").write_text(json.dumps({"pid": 2**22 + 7, "sessionId": s.session_id}))
    assert listed(tmp_path)[s.session_id]["live_pid"] is None  # that process is gone
    (registry / "1.json").write_text(json.dumps({"pid": os.getpid(), "sessionId": s.session_id}))
    assert listed(tmp_path)[s.session_id]["live_pid"] == os.getpid()
    # --expiring: the Claude session (10 days) within 11 days, not within 5
    assert set(listed(tmp_path, "--expiring", "11")) >= {s.session_id}
    assert s.session_id not in listed(tmp_path, "--expiring", "5")
    assert set(listed(tmp_path, "--source", "codex")) == {tid}
    out = persist(tmp_path, "sessions")
    assert out.returncode == 0 and "question 0" in out.stdout and "claude" in out.stdout
    # the scan cache is private, and a corrupt one is rebuilt with a warning
    cache = tmp_path / "log" / "sessions" / "scan-cache.json"
    assert cache.stat().st_mode & 0o777 == 0o600
    cache.write_text("{nope")
    out = persist(tmp_path, "sessions", "--json")
    assert out.returncode == 0 and "rebuilt" in out.stderr and len(json.loads(out.stdout)) == 3


@pytest.mark.parametrize(
    "old", [b'{"v":2,"entries":{}}', b"{nope", b'{"v":2,"entries":{"/gone.jsonl":{}}}']
)
def test_sessions_rewrites_a_stale_scan_cache_once_even_with_no_session(
    tmp_path: Path, old: bytes
) -> None:
    """A scan cache of an older version (or unreadable), and no agent session on disk
    (all deleted, or a new HOME): the first command warns and rewrites it; the next
    ones say nothing. Before 2026-12-07 the file was left as it was when the scan found
    no session, and every command warned "had another format; rebuilt"."""
    sessions = tmp_path / "log" / "sessions"
    sessions.mkdir(mode=0o700, parents=True)
    cache = sessions / "scan-cache.json"
    cache.write_bytes(old)
    cache.chmod(0o600)
    first = persist(tmp_path, "sessions", "--json")
    assert first.returncode == 0 and json.loads(first.stdout) == []
    assert "rebuilt" in first.stderr
    assert json.loads(cache.read_bytes())["v"] != 2 and cache.read_bytes() != old
    assert cache.stat().st_mode & 0o777 == 0o600
    for _ in range(2):
        again = persist(tmp_path, "sessions", "--json")
        assert again.returncode == 0 and json.loads(again.stdout) == []
        assert "rebuilt" not in again.stderr and "scan cache" not in again.stderr


def test_protect_copies_incrementally_and_survives_deletion(tmp_path: Path) -> None:
    s = make_claude(tmp_path)
    assert s.path is not None
    before = tree_digest(tmp_path / "claude")
    out = persist(tmp_path, "protect", "--all", "--json")
    assert out.returncode == 0, out.stderr
    first = json.loads(out.stdout)
    assert first["copied_bytes"] == s.path.stat().st_size and first["verified"]
    assert tree_digest(tmp_path / "claude") == before  # the agent's folder untouched
    folder = next((tmp_path / "log" / "sessions" / "copies" / "claude").iterdir())
    assert folder.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in folder.iterdir())
    # the session grows: only the new bytes are copied, into the same version
    size = s.path.stat().st_size
    s.lines.clear()
    s.user("one more")
    s.append_lines(s.lines)
    with open(s.path, "ab") as f:
        f.write(b'{"type":"user","unfinished')  # a line being written: not copied yet
    again = json.loads(persist(tmp_path, "protect", s.session_id[:8], "--json").stdout)
    assert again["copied_bytes"] == s.path.stat().st_size - size - len(
        b'{"type":"user","unfinished'
    )
    assert again["new_versions"] == 0
    manifest = json.loads((folder / "manifest.json").read_text())
    version = manifest["files"]["main"]["versions"][0]
    assert len(version["members"]) == 2 and version["lines"] == 13  # 12 lines + 1
    # rewritten in place (Claude's tail rewrite): a new version, the old one kept
    data = s.path.read_bytes()
    s.path.write_bytes(data.replace(b"question 0", b"QUESTION 0"))
    third = json.loads(persist(tmp_path, "protect", s.session_id, "--json").stdout)
    assert third["new_versions"] == 1
    manifest = json.loads((folder / "manifest.json").read_text())
    v1, v2 = manifest["files"]["main"]["versions"]
    with gzip.open(folder / v1["file"]) as f:
        assert b"question 0" in f.read()
    with gzip.open(folder / v2["file"]) as f:
        assert f.read() == s.path.read_bytes()[: v2["size"]]
    # the agent's cleanup deletes the original: still listed, marked, and readable
    s.path.unlink()
    rows = listed(tmp_path)
    row = rows[s.session_id]
    assert row["deleted_by_agent"] and row["protected"] and row["messages"] == 10
    # its file is gone: no `claude --resume`, the fork that writes it back from our copy
    assert row["resume"] is None and "deleted by the agent" in row["resume_through_fork"]
    out = persist(tmp_path, "protect", "--all", "--json")
    assert json.loads(out.stdout)["deleted_by_agent"] is True
    # ... and forkable back from the copy into the agent's folder
    out = persist(tmp_path, "fork", s.session_id, "--json")
    assert out.returncode == 0, out.stderr
    forked = json.loads(out.stdout)
    back = claude.read_transcript(Path(forked["path"]))
    assert forked["forked"] and back.session.id == forked["id"] != s.session_id
    assert back.session.message_count == 10 and back.messages[0].text == "QUESTION 0"
    assert Path(forked["path"]).parent == s.path.parent
    assert forked["resume"].endswith(f"claude --resume {forked['id']}")


def test_a_fork_back_into_a_deleted_folder_makes_it_private_whatever_the_umask(
    tmp_path: Path,
) -> None:
    """A session forked back from our copy, its folder deleted with it: the folders made
    for it were given the umask's mode (0777 under umask 000), now 0700."""
    s = make_claude(tmp_path)
    assert s.path is not None
    assert persist(tmp_path, "protect", "--all").returncode == 0
    projects = tmp_path / "claude" / "projects"
    shutil.rmtree(projects)
    out = persist(tmp_path, "fork", s.session_id, "--json", umask=0)
    assert out.returncode == 0, out.stderr
    forked = Path(json.loads(out.stdout)["path"])
    assert forked.parent == s.path.parent and forked.parent.parent == projects
    for folder in (projects, forked.parent):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    assert forked.stat().st_mode & 0o777 == 0o600


def test_a_sub_agent_whose_session_file_is_gone_is_listed(tmp_path: Path) -> None:
    """A sub-agent's transcript is part of its session; when the session's own file is
    gone (deleted by hand, or never copied along), its conversation was found nowhere:
    not listed, not searchable, not protected. Both layouts that keep sub-agents in
    files of their own: 2.0's `agent-<id>.jsonl` beside the sessions, and >= 2.1.2's
    `<sessionId>/subagents/agent-<id>.jsonl`."""
    s = make_claude(tmp_path)
    assert s.path is not None
    gone = new_uuid()  # the session both sub-agents belong to: no file
    flat = ClaudeSession(
        tmp_path / "claude",
        cwd=str(tmp_path / "proj"),
        session_id=gone,
        sidechain=True,
        agent_id="a1b2c3d",
        version="2.0.76",
        path=s.path.parent / "agent-a1b2c3d.jsonl",
    )
    flat.user("find the flaky test", parent=None)
    flat.assistant(text("it is test_retry: a sleep races the clock"))
    flat.write()
    nested_dir = s.path.parent / gone / "subagents"
    nested_dir.mkdir(parents=True)
    nested = ClaudeSession(
        tmp_path / "claude",
        cwd=str(tmp_path / "proj"),
        session_id=gone,
        sidechain=True,
        agent_id="a0f1e2d3c4b5a6978",
        path=nested_dir / "agent-a0f1e2d3c4b5a6978.jsonl",
    )
    nested.user("review the migration", parent=None)
    nested.assistant(text("the migration drops a column still read by the API"))
    nested.write()
    # a sub-agent of a session that has its file stays part of that session
    mine = ClaudeSession(
        tmp_path / "claude",
        cwd=str(tmp_path / "proj"),
        session_id=s.session_id,
        sidechain=True,
        agent_id="affffff",
        path=s.path.parent / "agent-affffff.jsonl",
    )
    mine.user("a sub-agent of the live session", parent=None)
    mine.write()
    before = tree_digest(tmp_path / "claude")

    rows = listed(tmp_path)
    assert set(rows) == {s.session_id, "a1b2c3d", "a0f1e2d3c4b5a6978"}
    for agent, said in (("a1b2c3d", "find the flaky test"), ("a0f1e2d3c4b5a6978", "review")):
        row = rows[agent]
        assert row["sub_agent_of"] == gone and not row["resumable"] and row["resume"] is None
        assert row["messages"] == 2 and row["title"].startswith(said)
    assert rows[s.session_id]["messages"] == 9 and rows[s.session_id]["sub_agent_of"] is None
    text_out = persist(tmp_path, "sessions")
    assert f"sub-agent of {gone[:8]} (file gone): find the flaky test" in text_out.stdout
    # its conversation reads out, and cannot be resumed or forked (one line, exit 1)
    out = persist(tmp_path, "export", "--session", "a1b2c3d", "--format", "md")
    assert out.returncode == 0, out.stderr
    assert "it is test_retry: a sleep races the clock" in out.stdout
    out = persist(tmp_path, "fork", "a0f1e2d3c4b5a6978")
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr == (
        f"persist: claude:a0f1e2d3c4b5a6978 is a sub-agent's conversation (its session {gone} "
        "has no file any more): the agent cannot resume a sub-agent; "
        "`persist export --session claude:a0f1e2d3c4b5a6978` writes it out\n"
    )
    # protected like any session (a verified copy), and never offered to resume
    out = persist(tmp_path, "protect", "a1b2c3d", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["copied_bytes"] == flat.path.stat().st_size  # type: ignore[union-attr]
    from recorder.launch.sessions import project_sessions
    from recorder.sources.discover import Roots
    from recorder.sources.model import Source
    from recorder.store.layout import Layout

    roots = Roots(tmp_path / "claude", tmp_path / "gemini", tmp_path / "codex")
    offered, _ = project_sessions(
        roots, Layout(tmp_path / "log"), Source.CLAUDE, str(tmp_path / "proj")
    )
    assert [r.session.id for r in offered] == [s.session_id]
    assert tree_digest(tmp_path / "claude") == before  # the agent's folder only read


def test_fork_at_an_earlier_message(tmp_path: Path) -> None:
    s = make_claude(tmp_path)
    assert s.path is not None
    lines = [json.loads(x) for x in s.path.read_text().splitlines()]
    for x in lines:
        x["_note"] = "kept"  # a field of any name is copied into the fork, never dropped
    s.path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    original = s.path.read_bytes()
    out = persist(tmp_path, "fork", s.session_id, "--at", "4", "--json")
    assert out.returncode == 0, out.stderr
    forked = json.loads(out.stdout)
    assert s.path.read_bytes() == original  # never modified
    back = claude.read_transcript(Path(forked["path"]))
    assert [m.text for m in back.messages][-1] == "answer 1" and len(back.messages) == 5
    assert back.raw_chain[-1]["uuid"] == forked["at"]["uuid"]
    assert all(e["sessionId"] == forked["id"] for e in back.raw_chain)
    by_uuid = {x["uuid"]: x for x in lines if "uuid" in x}
    own = ("sessionId", "forkedFrom", "parentUuid")  # what a fork rewrites
    for e in back.raw_chain:
        kept = {k: v for k, v in by_uuid[e["uuid"]].items() if k not in own}
        assert {k: v for k, v in e.items() if k not in own} == kept
    assert back.session.title == "question 0 (fork)"
    assert os.stat(forked["path"]).st_mode & 0o777 == 0o600
    # the latest point resumes the original, for every agent
    latest = json.loads(persist(tmp_path, "fork", s.session_id, "--json").stdout)
    assert not latest["forked"] and latest["resume"].endswith(f"claude --resume {s.session_id}")
    tid = "019a085e-0000-7000-8000-00000000abcd"
    codex_rollout(tmp_path / "codex", tid, 2)
    latest = json.loads(persist(tmp_path, "fork", tid, "--json").stdout)
    assert latest["resume"].endswith(f"codex resume {tid}")
    # Gemini and Codex forks at an earlier point read back too
    chats = gemini_project(tmp_path / "gemini", "/home/me/gem")
    gid = new_uuid()
    gemini_legacy(chats, gid, gemini_messages(3))
    g = json.loads(persist(tmp_path, "fork", gid, "--at", "2", "--json").stdout)
    assert g["forked"] and g["messages"] == 3 and g["resume"].endswith(f"gemini --resume {g['id']}")
    # a new session, updated now: Gemini's cleanup (30 days after lastUpdated) would
    # otherwise delete the fork of a session older than that before it is resumed
    cleanup = {i: parse_time(r["agent_cleanup_at"]) for i, r in listed(tmp_path).items()}
    month = time.time() + 29 * 86400
    assert cleanup[g["id"]] > month > cleanup[gid]  # type: ignore[operator]
    c = json.loads(persist(tmp_path, "fork", tid, "--at", "3", "--json").stdout)
    assert c["forked"] and c["messages"] == 4 and c["resume"].endswith(f"codex resume {c['id']}")
    assert len(listed(tmp_path)) == 6


def test_unreadable_lines_are_named_by_fork_and_flagged_in_the_listing(tmp_path: Path) -> None:
    """`export --session` named a session's unreadable lines, but `fork` said "N
    messages, read back" of a fork that leaves them out, and the listing said nothing."""
    s = make_claude(tmp_path)
    assert s.path is not None
    lines = s.path.read_text().splitlines()
    lines[2:2] = ['{"type": "user", "uuid": "torn', "\x00garbage"]  # lines 3 and 4
    s.path.write_text("".join(x + "\n" for x in lines))
    rows = listed(tmp_path)
    assert rows[s.session_id]["unreadable_lines"] == 2
    out = persist(tmp_path, "sessions")
    assert out.returncode == 0, out.stderr
    [row] = [line for line in out.stdout.splitlines() if line.startswith("claude")]
    assert "(2 unreadable lines) question 0" in row, row
    warning = f"persist: warning: claude:{s.session_id}: 2 unreadable line(s) (3, 4)"
    out = persist(tmp_path, "fork", s.session_id, "--at", "4")
    assert out.returncode == 0, out.stderr
    left_out = f"{warning}; the unreadable lines are not in the fork"
    assert out.stderr.splitlines() == [left_out], out.stderr
    out = persist(tmp_path, "fork", s.session_id, "--at", "4", "--json")
    assert out.returncode == 0 and out.stderr.startswith(warning), out.stderr
    forked = json.loads(out.stdout)
    assert forked["unreadable_lines"] == [3, 4] and forked["messages"] == 5
    out = persist(tmp_path, "fork", s.session_id, "--json")  # the latest point: the original
    assert json.loads(out.stdout)["unreadable_lines"] == [3, 4]
    assert out.stderr.splitlines() == [warning], out.stderr
    fine = make_claude(tmp_path)
    out = persist(tmp_path, "fork", fine.session_id, "--at", "1", "--json")
    assert out.stderr == "" and json.loads(out.stdout)["unreadable_lines"] == []
    assert listed(tmp_path)[fine.session_id]["unreadable_lines"] == 0


def test_bad_references_are_one_line_errors(tmp_path: Path) -> None:
    make_claude(tmp_path)
    out = persist(tmp_path, "fork", "nope")
    assert out.returncode == 1 and out.stderr.startswith("persist: no session 'nope'")
    assert "Traceback" not in out.stderr
    out = persist(tmp_path, "protect")
    assert out.returncode == 2 and "--all" in out.stderr
    s_id = next(iter(listed(tmp_path)))
    out = persist(tmp_path, "fork", s_id, "--at", "zzz")
    assert out.returncode == 1 and "matches 'zzz'" in out.stderr


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed (CI installs it)")
def test_uncommitted_changes_are_asked_of_git_for_every_project(tmp_path: Path) -> None:
    """`uncommitted_changes`: true, false, or null for a folder that is not a repository
    or no longer there; the projects' `git status` run side by side, each once."""

    def git(folder: Path, *args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.email=t@t", "-c", "user.name=t", "-C", str(folder), *args],
            check=True,
            capture_output=True,
        )

    states = {"clean": False, "changed": True, "plain": None, "gone": None}
    ids = {}
    for n, name in enumerate(states):
        project = tmp_path / name
        project.mkdir()
        if name in ("clean", "changed"):
            git(project, "init", "-q")
            (project / "a.txt").write_text("one\n")
            git(project, "add", "a.txt")
            git(project, "commit", "-q", "-m", "first")
            if name == "changed":
                (project / "a.txt").write_text("two\n")
        s = ClaudeSession(tmp_path / "claude", cwd=str(project), session_id=new_uuid(n + 1))
        s.user(f"work in {name}")
        s.write()
        ids[s.session_id] = name
        if name == "gone":
            project.rmdir()
    rows = listed(tmp_path)
    assert {ids[i]: row["uncommitted_changes"] for i, row in rows.items()} == states


def test_asking_git_never_writes_the_projects_index(tmp_path: Path) -> None:
    """A plain `git status` refreshes `.git/index` when a file's stat changed (taking
    `index.lock`, which a git command the user runs meanwhile fails on): asked with
    `--no-optional-locks`, the user's repository is only read."""
    project = tmp_path / "proj"
    project.mkdir()
    for args in (["init", "-q"], ["add", "a.txt"], ["commit", "-q", "-m", "first"]):
        if args[0] == "add":
            (project / "a.txt").write_text("one\n")
        subprocess.run(
            ["git", "-c", "user.email=t@t", "-c", "user.name=t", "-C", str(project), *args],
            check=True,
            capture_output=True,
        )
    later = time.time() + 5  # the same content, a newer stat: git would refresh the index
    os.utime(project / "a.txt", (later, later))
    index = project / ".git" / "index"
    before = (index.stat().st_mtime_ns, index.read_bytes())
    s = ClaudeSession(tmp_path / "claude", cwd=str(project))
    s.user("work")
    s.write()
    assert listed(tmp_path)[s.session_id]["uncommitted_changes"] is False
    assert (index.stat().st_mtime_ns, index.read_bytes()) == before


def test_the_message_count_leaves_out_the_agents_system_notes_only(tmp_path: Path) -> None:
    """The documented rule: every user, assistant and tool line counts, those Claude
    Code writes as user lines too (a compaction's summary, a local command's output,
    an injected `isMeta` body); its system notes (the compaction boundary, an API
    error retry, a local command's system line) are numbered but not counted. The
    listing, a fork's read back and the export's header agree."""
    s = ClaudeSession(tmp_path / "claude", cwd=str(tmp_path / "proj"))
    s.user("first question")
    s.assistant(text("first answer"))
    s.compact()  # a system boundary, then the summary as a user line
    s.user("<local-command-stdout>Set model to opus</local-command-stdout>")
    line = s._base("system", s.last)
    line.update(subtype="local_command", content="<command-name>/model</command-name>")
    s.add(line)
    s.user("Caveat: the messages below were generated by the user", isMeta=True)
    line = s._base("system", s.last)
    line.update(subtype="api_error", retryAttempt=1, maxRetries=10)
    s.add(line)
    s.assistant(text("second answer"))
    s.write()
    assert listed(tmp_path)[s.session_id]["messages"] == 6
    out = persist(tmp_path, "export", "--session", s.session_id, "-o", str(tmp_path / "s.md"))
    assert out.returncode == 0, out.stderr
    header = "- **Messages**: 9 (the whole session: 6 of conversation, 3 system notes)"
    assert header in (tmp_path / "s.md").read_text().splitlines()
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "a compaction's summary, a local command's output" in " ".join(readme.split())


def test_checkpoints_lists_the_session_monitors_checkpoints_too(tmp_path: Path) -> None:
    """`persist checkpoints` lists every checkpoint: the monitor's, which name a copy of
    an agent's session and no journal range, after the journal's, marked `session`."""
    s = make_claude(tmp_path)
    out = persist(tmp_path, "monitor", "--once")
    assert out.returncode == 0, out.stderr
    log = str(tmp_path / "log")
    shown = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "checkpoints", "--log-dir", log],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("session ")
    assert f"claude:{s.session_id}  copy v1" in lines[0] and " 9 msgs " in lines[0]
    shown = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "checkpoints", "--json", "--log-dir", log],
        capture_output=True,
        text=True,
        timeout=60,
    )
    data = json.loads(shown.stdout)
    assert data["checkpoints"] == []  # the journal's: the ones pin, restore and prune use
    [cp] = data["session_checkpoints"]
    assert (cp["session"], cp["copy_version"], cp["messages"]) == (f"claude:{s.session_id}", 1, 9)
    assert lines[0].split()[1] == cp["id"]


def test_a_title_holding_a_secret_is_listed_redacted(tmp_path: Path) -> None:
    """A first prompt is a session's title: an API key in it is listed as
    `[REDACTED:kind]`, in the table and in `--json`; the agent's file is left as it is."""
    key = make(S.OPENAI, random.Random(8)).secret
    c = ClaudeSession(tmp_path / "claude", cwd="/home/me/api")
    c.user(f"use {key} for the smoke test")
    c.assistant(text("Done."))
    path = c.write()
    stored = path.read_bytes()
    table = persist(tmp_path, "sessions")
    assert table.returncode == 0, table.stderr
    assert "use [REDACTED:openai-key] for the smoke test" in table.stdout
    assert key not in table.stdout
    (row,) = listed(tmp_path).values()
    assert row["title"] == "use [REDACTED:openai-key] for the smoke test"
    assert path.read_bytes() == stored


def test_no_sessions_says_where_it_looked(tmp_path: Path) -> None:
    """A machine with no agent sessions (or the wrong folders given): the one line says
    which folders were looked in, only those of `--source` when it is given."""
    out = persist(tmp_path, "sessions")
    assert out.returncode == 0, out.stderr
    where = ", ".join(str(tmp_path / name) for name in ("claude", "gemini", "codex"))
    assert out.stdout == f"no sessions found (looked in {where})\n"
    out = persist(tmp_path, "sessions", "--source", "gemini", "--expiring", "3")
    assert (
        out.stdout == f"no sessions found expiring in that time (looked in {tmp_path / 'gemini'})\n"
    )


def test_the_sessions_table_shows_control_characters_as_escapes(tmp_path: Path) -> None:
    """A title is the agent's first prompt, a project path and a branch are whatever the
    agent wrote: printed as they were, `\\x1b]0;…\\x07` set the terminal's title and
    `\\x1b[31m` coloured the rest of the table."""
    hostile = "\x1b[31mRED\x1b[0m\x1b]0;pwned\x07 fix it"
    s = ClaudeSession(tmp_path / "claude", cwd="/home/me/\x1b[2Jproj", branch="\x1b[1mmain")
    s.user(hostile)
    s.assistant(text("done"))
    s.write()
    out = persist(tmp_path, "sessions")
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout, repr(out.stdout)
    assert "\\x1b[31mRED" in out.stdout and "\\x1b[2Jproj" in out.stdout


HOSTILE_ID = "\x1b]0;IDTITLE\x07\x1b[2Jid"  # sets the terminal's title, clears the screen
SHOWN_KEY = "gemini:\\x1b]0;IDTITLE\\x07\\x1b[2Jid"


def test_a_session_id_holding_escape_sequences_is_printed_escaped(tmp_path: Path) -> None:
    """A session's id is whatever the agent's file says (Gemini's `sessionId`). Titles
    and projects were escaped, the id was not: `persist sessions` cut it to 8
    characters, leaving an OSC open, and protect, monitor, checkpoints, search and
    fork printed it raw. Now it is escaped before any cut, a plain key prints as
    before, and a command to type holds the key shell-quoted (`$'...'`)."""
    chats = gemini_project(tmp_path / "gemini", "/home/me/gem")
    gemini_legacy(chats, HOSTILE_ID, gemini_messages(2))
    plain_id = new_uuid()
    gemini_legacy(chats, plain_id, gemini_messages(2))
    gemini_legacy(chats, "\x1b]0;OTHER\x07", gemini_messages(1))
    log = str(tmp_path / "log")

    def run(*args: str, roots: bool = True) -> str:
        if roots:
            out = persist(tmp_path, *args)
        else:
            out = subprocess.run(
                [sys.executable, "-m", "recorder.cli", *args, "--log-dir", log],
                capture_output=True,
                text=True,
                timeout=60,
            )
        assert out.returncode == 0, out.stderr
        said = out.stdout + out.stderr
        assert "\x1b" not in said and "\x07" not in said, repr(said)
        return out.stdout

    table = run("sessions").partition("\n\n")[0].splitlines()  # the notes below it aside
    ids = [line.split()[1] for line in table[1:]]
    assert "\\x1b]0;IDTI" in ids and "\\x1b]0;OTHE" in ids  # 8 characters, escaped
    assert any(line.split()[1] == plain_id[:8] for line in table[1:])
    protected = run("protect", "--all")
    assert f"protected {SHOWN_KEY}: " in protected
    assert f"protected gemini:{plain_id}: " in protected  # a plain key as it was
    taken = run("monitor", "--once")
    assert f": {SHOWN_KEY}, 4 messages, " in taken and f": gemini:{plain_id}, " in taken
    listed_cps = run("checkpoints", roots=False)
    assert f"  {SHOWN_KEY}  copy v1 " in listed_cps
    assert f"  gemini:{plain_id}  copy v1 " in listed_cps
    hits = run("search", "question", "--limit", "50")
    assert f"gemini session message {SHOWN_KEY}#0" in hits
    assert f"gemini session message gemini:{plain_id}#0" in hits
    latest = run("fork", f"gemini:{HOSTILE_ID}").splitlines()
    assert latest[0] == f"{SHOWN_KEY}: the latest point is the session itself; resume it with:"
    quoted = "$'\\x1b]0;IDTITLE\\x07\\x1b[2Jid'"
    assert latest[1] == f"cd /home/me/gem && gemini --resume {quoted}"
    typed = subprocess.run(
        ["bash", "-c", f"printf %s {quoted}"], capture_output=True, text=True, check=True
    )
    assert typed.stdout == HOSTILE_ID  # the command printed is the one to type
    forked = run("fork", f"gemini:{HOSTILE_ID}", "--at", "1").splitlines()
    assert forked[0].startswith(f"forked {SHOWN_KEY} at message 1 into ")
    both = persist(tmp_path, "fork", "gemini:\x1b]0;")  # the error names the sessions
    assert both.returncode == 1 and "\x1b" not in both.stderr, repr(both.stderr)
    assert "matches 2 sessions: " in both.stderr and SHOWN_KEY in both.stderr
    assert "gemini:\\x1b]0;OTHER\\x07" in both.stderr


# C1 controls (U+009B is CSI to some terminals), bidi overrides and isolates: orjson
# writes ESC as \\u001b but these as they are
JSON_UNSHOWN = [chr(c) for c in range(0x80, 0xA0)] + [*"\u202a\u202b\u202c\u202d\u202e"]
JSON_UNSHOWN += [*"\u2066\u2067\u2068\u2069"]


def test_json_outputs_write_c1_controls_and_bidi_overrides_escaped(tmp_path: Path) -> None:
    """`--json` goes to a terminal too (`persist sessions --json` run by hand): a session
    id or title holding U+009B or U+202E reached it raw. Every `--json` output now
    writes them as `\\uXXXX`: valid JSON of the very same values."""
    odd = "c1\x9b2J\u202eevil\u2066x\u2069"
    chats = gemini_project(tmp_path / "gemini", "/home/me/gem")
    messages = gemini_messages(2)
    messages[0]["content"] = [{"text": f"look {odd} here"}]
    gemini_legacy(chats, odd, messages)
    log = str(tmp_path / "log")

    def run_json(*args: str) -> Any:
        out = persist(tmp_path, *args, "--json")
        assert out.returncode == 0, out.stderr
        assert not [c for c in JSON_UNSHOWN if c in out.stdout], repr(out.stdout)
        assert "\\u009b" in out.stdout and "\\u202e" in out.stdout
        return json.loads(out.stdout)

    [row] = run_json("sessions")
    assert (row["id"], row["key"], row["title"]) == (odd, f"gemini:{odd}", f"look {odd} here")
    assert run_json("protect", "--all")["key"] == f"gemini:{odd}"
    assert run_json("search", "look")["hits"][0]["origin"] == f"gemini:{odd}#0"
    assert run_json("fork", f"gemini:{odd}", "--at", "1")["from"] == odd
    assert persist(tmp_path, "monitor", "--once").returncode == 0
    out = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "checkpoints", "--json", "--log-dir", log],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert not [c for c in JSON_UNSHOWN if c in out.stdout] and "\\u009b" in out.stdout
    sessions = {cp["session"] for cp in json.loads(out.stdout)["session_checkpoints"]}
    assert f"gemini:{odd}" in sessions


def gemini_sub_agent(
    chats: Path, parent: str, sid: str, turns: int, *, legacy: bool = False
) -> Path:
    """A Gemini CLI sub-agent's session as chatRecordingService writes it: in
    `chats/<parent session id>/`, named by its own id, `kind: "subagent"` (a legacy
    `.json` document, or JSONL)."""
    folder = chats / parent
    folder.mkdir(exist_ok=True)
    messages = gemini_messages(turns)
    for i, m in enumerate(messages):
        if m["type"] == "user":
            m["content"] = [{"text": f"sub-agent {sid[:4]} task {i}"}]
        else:
            m["toolCalls"][0]["args"]["file_path"] = f"/p/{sid[:4]}-{i}.txt"
    head = {
        "sessionId": sid,
        "projectHash": "ab" * 32,
        "startTime": messages[0]["timestamp"],
        "lastUpdated": messages[-1]["timestamp"],
        "kind": "subagent",
    }
    if legacy:
        path = folder / f"{sid}.json"
        path.write_text(json.dumps({**head, "messages": messages}, indent=2))
    else:
        path = folder / f"{sid}.jsonl"
        path.write_text("".join(json.dumps(x) + "\n" for x in [head, *messages]))
    return path


def test_gemini_sub_agents_are_part_of_their_session(tmp_path: Path) -> None:
    """Gemini CLI writes a sub-agent's session to `chats/<parent session id>/`; they
    were never looked at: not in the parent's `extra_paths`, so `protect` copied the
    parent alone, and Gemini's cleanup, which deletes that folder with its session,
    took the sub-agents' conversations even from a protected session. Now they are the
    parent's extra files (listed, protected, a changed one noticed through the scan
    cache), and one whose session has no file any more is listed on its own, as a
    Claude sub-agent's is: exported and protected, never resumed."""
    (tmp_path / "log").mkdir(mode=0o700)  # a log folder that exists keeps the scan cache
    chats = gemini_project(tmp_path / "gemini", "/home/me/gem")
    parent = new_uuid()
    gemini_jsonl(chats, parent, gemini_messages(2))
    one = gemini_sub_agent(chats, parent, new_uuid(), 1)
    two = gemini_sub_agent(chats, parent, new_uuid(), 2, legacy=True)

    rows = listed(tmp_path)
    assert set(rows) == {parent}
    row = rows[parent]
    assert row["extra_paths"] == sorted(map(str, (one, two))) and row["messages"] == 4
    assert row["resumable"] and row["resume"].endswith(f"gemini --resume {parent}")
    assert {f"/p/{one.stem[:4]}-1.txt", f"/p/{two.stem[:4]}-3.txt"} <= set(row["files_modified"])
    # a sub-agent started later: the scan cache sees it through the parent's entry
    three = gemini_sub_agent(chats, parent, new_uuid(), 1)
    assert listed(tmp_path)[parent]["extra_paths"] == sorted(map(str, (one, two, three)))

    before = tree_digest(tmp_path / "gemini")
    out = persist(tmp_path, "protect", "--all", "--json")
    assert out.returncode == 0, out.stderr
    assert tree_digest(tmp_path / "gemini") == before  # the agent's folder only read
    folder = tmp_path / "log" / "sessions" / "copies" / "gemini" / parent
    manifest = json.loads((folder / "manifest.json").read_text())
    copied = {e["original"] for e in manifest["files"].values()}
    assert copied == {str(p) for p in (one, two, three)} | {row["path"]}
    from recorder.sources.copies import read_copy

    kept = {p: p.read_bytes() for p in (one, two, three)}
    # Gemini's cleanup deletes a session with its sub-agents' folder: our copy has them
    Path(row["path"]).unlink()
    shutil.rmtree(chats / parent)
    for p, data in kept.items():
        assert read_copy(folder, f"extra-{p.name}") == data
    rows = listed(tmp_path)
    assert set(rows) == {parent} and rows[parent]["deleted_by_agent"]

    # a sub-agent whose session's file is gone (deleted by hand): listed on its own
    gone = new_uuid()
    orphan = gemini_sub_agent(chats, gone, new_uuid(), 2)
    rows = listed(tmp_path)
    assert set(rows) == {parent, orphan.stem}
    row = rows[orphan.stem]
    assert row["sub_agent_of"] == gone and not row["resumable"] and row["resume"] is None
    assert row["messages"] == 4 and row["title"] == f"sub-agent {orphan.stem[:4]} task 0"
    assert f"sub-agent of {gone[:8]} (file gone)" in persist(tmp_path, "sessions").stdout
    out = persist(tmp_path, "export", "--session", orphan.stem, "--format", "md")
    assert out.returncode == 0 and f"sub-agent {orphan.stem[:4]} task 2" in out.stdout
    out = persist(tmp_path, "fork", orphan.stem, "--at", "1")
    assert out.returncode == 1 and out.stdout == "" and len(out.stderr.splitlines()) == 1
    assert f"is a sub-agent's conversation (its session {gone} has no file" in out.stderr
    out = persist(tmp_path, "protect", orphan.stem, "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["copied_bytes"] == orphan.stat().st_size


def test_a_copy_protected_before_sub_agents_were_listed_still_lists(tmp_path: Path) -> None:
    """Manifests written before `subagent`/`parent_id` existed (they carry no version)
    were skipped as malformed: a session only our copy holds vanished from every list."""
    s = make_claude(tmp_path)
    assert s.path is not None
    assert persist(tmp_path, "protect", "--all", "--json").returncode == 0
    manifest_path = next(
        (tmp_path / "log" / "sessions" / "copies" / "claude").glob("*/manifest.json")
    )
    manifest = json.loads(manifest_path.read_text())
    for field in ("subagent", "parent_id"):
        manifest["session"].pop(field)
    manifest_path.write_text(json.dumps(manifest))
    s.path.unlink()  # the agent's cleanup: only our copy holds it now
    rows = listed(tmp_path)
    assert rows[s.session_id]["deleted_by_agent"] and rows[s.session_id]["messages"] == 9


def test_search_finds_sessions_with_no_journal_yet_but_makes_no_folder_for_a_typo(
    tmp_path: Path,
) -> None:
    """`persist sessions` needs no recorder; `persist search` refused "no journal in"
    until a recorder had run once. A log folder named that does not exist is still
    refused, and nothing is made there."""
    s = ClaudeSession(tmp_path / "claude")
    s.user("a pomodoro timer in rust, please")
    s.write()
    (tmp_path / "log").mkdir(mode=0o700)  # a log folder no recorder wrote in yet
    out = persist(tmp_path, "search", "pomodoro", "--json")
    assert out.returncode == 0, out.stderr
    assert "no journal in" in out.stderr and "searching the agents' sessions only" in out.stderr
    [hit] = json.loads(out.stdout)["hits"]
    assert "pomodoro" in hit["snippet"] and hit["source"] == "claude"
    assert not (tmp_path / "log" / "segments").exists()  # the index only: no journal made
    shutil.rmtree(tmp_path / "log")
    out = persist(tmp_path, "search", "pomodoro")
    assert out.returncode == 1 and "(a folder that does not exist)" in out.stderr
    assert not (tmp_path / "log").exists()


def test_search_with_a_literal_tilde_log_dir_makes_no_folder_named_tilde(tmp_path: Path) -> None:
    """`--log-dir '~/logs'` (quoted: the shell left the ~) is a relative folder named
    `~`, as for every command. The no-journal check expanded it: `$HOME/logs` existed,
    so the search went on and made `./~/logs/search` in the current folder."""
    home, work = tmp_path / "home", tmp_path / "work"
    (home / "logs").mkdir(parents=True)
    work.mkdir()
    out = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "search", "x", "--log-dir", "~/logs"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=work,
        env={**os.environ, "HOME": str(home)},
    )
    assert out.returncode == 1 and "(a folder that does not exist)" in out.stderr, out.stderr
    assert not (work / "~").exists()


@pytest.mark.parametrize("relative", [False, True])
def test_a_log_folder_persist_log_dir_names_that_does_not_exist_is_refused_as_the_option_is(
    tmp_path: Path, relative: bool
) -> None:
    """`$PERSIST_LOG_DIR` naming a folder that does not exist (a typo) is refused by a
    search as `--log-dir` naming it is (exit 1), and nothing is made there by a search,
    `persist sessions` (its scan cache) or `persist fork`. Before 2026-12-07 the variable
    counted as the default folder: the search said "searching the agents' sessions only",
    exit 0, and made the folder with its index, wherever the variable pointed (relative
    to the current folder too). The default folder itself, no variable set, is still
    made for a search of the agents' sessions."""
    home, work = tmp_path / "home", tmp_path / ("." if relative else "work")
    work.mkdir(exist_ok=True)
    s = ClaudeSession(home / ".claude")
    s.user("a pomodoro timer in rust, please")
    s.write()
    named = "typo/logs" if relative else str(tmp_path / "typo" / "logs")

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        clean = {
            k: v
            for k, v in os.environ.items()
            if k not in ("CLAUDE_CONFIG_DIR", "GEMINI_CLI_HOME", "CODEX_HOME", "PERSIST_LOG_DIR")
            and not k.startswith("XDG_")
        }
        return subprocess.run(
            [sys.executable, "-m", "recorder.cli", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=work,
            env={**clean, "HOME": str(home), **(env or {})},
        )

    by_option = run("search", "pomodoro", "--log-dir", named)
    by_variable = run("search", "pomodoro", env={"PERSIST_LOG_DIR": named})
    for out in (by_option, by_variable):
        assert out.returncode == 1, out.stderr
        assert out.stderr == f"persist: no journal in {named} (a folder that does not exist)\n"
        assert out.stdout == ""
    assert not (tmp_path / "typo").exists()
    for args in (("sessions",), ("fork", s.session_id, "--json")):
        out = run(*args, env={"PERSIST_LOG_DIR": named})
        assert out.returncode == 0, (args, out.stderr)
        assert not (tmp_path / "typo").exists(), args
    out = run("search", "pomodoro", "--json")  # the default folder: made, 0700
    assert out.returncode == 0, out.stderr
    assert "searching the agents' sessions only" in out.stderr
    assert json.loads(out.stdout)["total"] == 1
    default = home / ".local" / "share" / "agent-persist" / "conversation_logs"
    assert stat.S_IMODE(default.stat().st_mode) == 0o700


def test_asking_git_runs_nothing_the_repository_configures(tmp_path: Path) -> None:
    """The repository's fsmonitor hook and clean filter (which a plain `git status` runs
    for a file whose stat changed) are not run: listing sessions only reads it, and
    still sees the change."""
    project = tmp_path / "proj"
    project.mkdir()
    ran = tmp_path / "ran"
    (project / ".gitattributes").write_text("* filter=spy\n")
    (project / "a.txt").write_text("one\n")
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "first"]):
        subprocess.run(
            ["git", "-c", "user.email=t@t", "-c", "user.name=t", "-C", str(project), *args],
            check=True,
            capture_output=True,
        )
    git_config = ["git", "-C", str(project), "config"]
    subprocess.run([*git_config, "core.fsmonitor", f"echo fsmonitor >> {ran}; false"], check=True)
    subprocess.run([*git_config, "filter.spy.clean", f"echo clean >> {ran}; cat"], check=True)
    (project / "a.txt").write_text("two\n")
    s = ClaudeSession(tmp_path / "claude", cwd=str(project))
    s.user("work")
    s.write()
    assert listed(tmp_path)[s.session_id]["uncommitted_changes"] is True
    assert not ran.exists(), ran.read_text()


def persist_home(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real CLI with `home` as HOME: the agents' folders and the log folder where
    a user's are (no root or log folder given, none set in the environment)."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CLAUDE_CONFIG_DIR", "GEMINI_CLI_HOME", "CODEX_HOME")
        and not k.startswith("XDG_")
    }
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, "HOME": str(home), **(env or {})},
    )


def test_sessions_the_agent_cannot_resume_are_refused_and_offer_no_command(
    tmp_path: Path,
) -> None:
    """`resumable: false` (a Gemini `kind: "subagent"` session, left out of Gemini's
    resume lists; a session holding no user or assistant message, of any agent): the
    listing gave its `resume` command all the same, and `persist fork` printed it
    (exit 0). Now no command, and fork refuses in one line, exit 1, at any point."""
    home = tmp_path / "home"
    chats = gemini_project(home / ".gemini", "/home/me/gem")
    sub, warn, main = new_uuid(), new_uuid(), new_uuid()
    gemini_legacy(chats, sub, gemini_messages(2), kind="subagent")
    warning = {"id": new_uuid(), "timestamp": "2026-01-10T12:00:05.000Z", "type": "warning"}
    gemini_legacy(chats, warn, [{**warning, "content": "Hook(s) [x] failed for event Start.\n"}])
    gemini_legacy(chats, main, gemini_messages(2))
    rollout = codex_rollout(home / ".codex", "019a085e-0000-7000-8000-00000000e111", 1)
    rollout.write_text(rollout.read_text().splitlines()[0] + "\n")  # its session_meta only
    claude_empty = ClaudeSession(home / ".claude", cwd="/home/me/web")
    line = claude_empty._base("system", None)
    line.update(subtype="api_error", retryAttempt=1, maxRetries=10)
    claude_empty.add(line)
    claude_empty.write()

    out = persist_home(home, "sessions", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["key"]: r for r in json.loads(out.stdout)}
    refused = {
        f"gemini:{sub}": "is a sub-agent's session (kind subagent, which Gemini CLI leaves "
        "out of its resume lists): the agent cannot resume a sub-agent",
        f"gemini:{warn}": "holds no user or assistant message: the agent does not resume it",
        "codex:019a085e-0000-7000-8000-00000000e111": "holds no user or assistant message: "
        "the agent does not resume it",
        f"claude:{claude_empty.session_id}": "holds no user or assistant message: the agent "
        "does not resume it",
    }
    assert set(rows) == {*refused, f"gemini:{main}"}
    for key, row in rows.items():
        assert row["resumable"] is (key not in refused), row
        assert (row["resume"] is None) is (key in refused), row
    assert rows[f"gemini:{main}"]["resume"] == f"cd /home/me/gem && gemini --resume {main}"
    for key, why in refused.items():
        for extra in ((), ("--json",), ("--at", "0")):
            out = persist_home(home, "fork", key, *extra)
            assert out.returncode == 1 and out.stdout == "", (key, extra, out)
            assert out.stderr == (
                f"persist: {key} {why}; `persist export --session {key}` writes it out\n"
            ), out.stderr
        out = persist_home(home, "export", "--session", key, "--format", "md")
        assert out.returncode == 0, out.stderr
    assert len(list(chats.iterdir())) == 3  # nothing written


def copy_real_gemini(home: Path) -> dict[str, Path]:
    """The real Gemini CLI files under `home` as Gemini keeps them (skipped when absent)."""
    real = Path(os.environ.get("PERSIST_REALDATA", "/work/shared/realdata")) / "gemini"
    if not real.is_dir():
        pytest.skip(f"{real} is absent")
    out: dict[str, Path] = {}
    for f in sorted(real.glob("*.json")):
        doc = json.loads(f.read_bytes())
        project = "/home/user/aim" if "_aim_" in f.name else "/Users/yoavfarhi/dev/pomodoro"
        chats = gemini_project(home / ".gemini", project)
        stamp = doc["startTime"][:16].replace(":", "-")
        out[doc["sessionId"][:8]] = chats / f"session-{stamp}-{doc['sessionId'][:8]}.json"
        shutil.copyfile(f, out[doc["sessionId"][:8]])
    return out


def test_real_gemini_sessions_it_cannot_resume_are_refused(tmp_path: Path) -> None:
    """The reported ones: 29f3682e (`kind: "subagent"`) and 76d8ed24 (a warning only)."""
    home = tmp_path / "home"
    copy_real_gemini(home)
    rows = {r["id"][:8]: r for r in json.loads(persist_home(home, "sessions", "--json").stdout)}
    for sid in ("29f3682e", "76d8ed24"):
        assert not rows[sid]["resumable"] and rows[sid]["resume"] is None, rows[sid]
        for extra in ((), ("--json",)):
            out = persist_home(home, "fork", f"gemini:{sid}", *extra)
            assert out.returncode == 1 and out.stdout == "", out
            assert "--resume" not in out.stderr and len(out.stderr.splitlines()) == 1
    assert (
        rows["b36c9e17"]["resumable"] and "gemini --resume b36c9e17" in rows["b36c9e17"]["resume"]
    )


@pytest.mark.parametrize("tz", ["Asia/Tokyo", "America/Los_Angeles"])
def test_a_gemini_fork_is_named_and_stamped_in_utc_as_gemini_does(tmp_path: Path, tz: str) -> None:
    """Gemini CLI names a session file from `toISOString()` (UTC) and writes its times
    in that form; a fork used the local time for both (`…T06-15-…` at 21:15 UTC in
    Tokyo, `startTime` `…+09:00`)."""
    home = tmp_path / "home"
    chats = gemini_project(home / ".gemini", "/home/me/gem")
    gid = new_uuid()
    original = gemini_legacy(chats, gid, gemini_messages(3))
    before = time.time()
    out = persist_home(home, "fork", gid, "--at", "2", "--json", env={"TZ": tz})
    after = time.time()
    assert out.returncode == 0, out.stderr
    forked = json.loads(out.stdout)
    path = Path(forked["path"])
    stamps = {datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H-%M") for t in (before, after)}
    assert path.parent == chats
    assert path.name in {f"session-{s}-{forked['id'][:8]}.json" for s in stamps}, path.name
    doc = json.loads(path.read_bytes())
    assert doc["startTime"] == json.loads(original.read_bytes())["startTime"]
    assert doc["startTime"] == "2026-01-10T12:00:10.000Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["lastUpdated"])
    assert before - 1 <= parse_time(doc["lastUpdated"]) <= after  # type: ignore[operator]


@pytest.mark.parametrize("tz", ["Pacific/Kiritimati", "Etc/GMT+12"])
def test_a_codex_fork_goes_where_codex_resume_finds_it(tmp_path: Path, tz: str) -> None:
    """Codex looks a thread id up under `sessions/` only, and writes a new rollout to
    `sessions/YYYY/MM/DD/` of the local date, the file named by the local time. A fork
    went beside its original: of an archived session into `archived_sessions/`, where
    `codex resume <id>` does not find it; of a live one into the date folder of the
    original's day; of a deleted one (from our copy) into its old folder."""
    home = tmp_path / "home"
    codex = home / ".codex"
    zone = ZoneInfo(tz)

    def check(out: subprocess.CompletedProcess[str], before: datetime) -> Path:
        after = datetime.now(zone)
        made = {p for p in codex.rglob("*") if p.is_dir()} - folders
        assert out.returncode == 0, out.stderr
        forked = json.loads(out.stdout)
        assert forked["forked"] and forked["resume"].endswith(f"codex resume {forked['id']}")
        path = Path(forked["path"])
        # what Codex's lookup by id finds: a file under `sessions/` named for the id
        assert list((codex / "sessions").rglob(f"rollout-*-{forked['id']}.jsonl")) == [path]
        days = {t.strftime("%Y/%m/%d") for t in (before, after)}
        assert str(path.parent.relative_to(codex / "sessions")) in days, path
        stamp = path.name.removeprefix("rollout-")[:19]
        assert stamp[:10].replace("-", "/") == str(path.parent.relative_to(codex / "sessions"))
        local = datetime.strptime(stamp, "%Y-%m-%dT%H-%M-%S").replace(tzinfo=zone)
        assert before.replace(microsecond=0) <= local <= after, (stamp, before, after)
        assert path.parent in made or path.parent in folders
        for folder in made:  # the folders the fork made are private, whatever the umask
            assert folder.stat().st_mode & 0o777 == 0o700, folder
        return path

    archived_id = "019a085e-0000-7000-8000-00000000a001"
    made = codex_rollout(codex, archived_id, 3)
    (codex / "archived_sessions").mkdir()
    archived = made.rename(codex / "archived_sessions" / made.name)
    live_id = "019a085e-0000-7000-8000-00000000a002"
    live = codex_rollout(codex, live_id, 3)
    gone_id = "019a085e-0000-7000-8000-00000000a003"
    gone = codex_rollout(codex, gone_id, 3)
    originals = {p: p.read_bytes() for p in (archived, live)}
    for sid in (archived_id, live_id):
        folders = {p for p in codex.rglob("*") if p.is_dir()}
        before = datetime.now(zone)
        out = persist_home(home, "fork", sid, "--at", "3", "--json", env={"TZ": tz})
        check(out, before)
    assert {p: p.read_bytes() for p in originals} == originals  # never modified
    assert [p.name for p in (codex / "archived_sessions").iterdir()] == [archived.name]
    # a session only our copy holds: written back as a new session where Codex finds it
    assert persist_home(home, "protect", gone_id).returncode == 0
    gone.unlink()
    folders = {p for p in codex.rglob("*") if p.is_dir()}
    before = datetime.now(zone)
    out = persist_home(home, "fork", gone_id, "--at", "3", "--json", env={"TZ": tz})
    check(out, before)


def test_listing_sessions_never_makes_a_log_folder_that_does_not_exist(tmp_path: Path) -> None:
    """`persist sessions --log-dir <a typo>` made the folder (for its listing cache), as
    `persist search` would not; the sessions are listed and nothing is made now."""
    s = ClaudeSession(tmp_path / "claude")
    s.user("a pomodoro timer, please")
    s.write()
    assert list(listed(tmp_path)) == [s.session_id]
    assert not (tmp_path / "log").exists()


BIG = 123456789012345678901234567890  # beyond 64 bits: orjson reads it as a float


def test_a_fork_keeps_integers_beyond_64_bits_as_written(tmp_path: Path) -> None:
    """Every agent's fork writes the lines it copies with their integers as the agent
    wrote them (before 2026-12-07 they became floats: 1.2345678901234568e+29)."""
    s = make_claude(tmp_path)
    assert s.path is not None
    lines = [json.loads(x) for x in s.path.read_text().splitlines()]
    s.path.write_text("".join(json.dumps({**x, "_n": BIG}) + "\n" for x in lines))
    chats = gemini_project(tmp_path / "gemini", "/home/me/gem")
    gid = new_uuid()
    g_path = gemini_legacy(chats, gid, [{**m, "_n": BIG} for m in gemini_messages(3)])
    tid = "019a085e-0000-7000-8000-00000000abce"
    c_path = codex_rollout(tmp_path / "codex", tid, 3)
    c_lines = [json.loads(x) for x in c_path.read_text().splitlines()]
    c_path.write_text("".join(json.dumps({**x, "_n": BIG}) + "\n" for x in c_lines))
    originals = {p: p.read_bytes() for p in (s.path, g_path, c_path)}
    forks = {}
    for sid, at in ((s.session_id, "4"), (gid, "2"), (tid, "3")):
        out = persist(tmp_path, "fork", sid, "--at", at, "--json")
        assert out.returncode == 0, out.stderr
        forked = json.loads(out.stdout)
        assert forked["forked"], forked
        forks[sid] = Path(forked["path"])
    claude_lines = [json.loads(x) for x in forks[s.session_id].read_text().splitlines()]
    copied = [x for x in claude_lines if "uuid" in x]  # its title line is the fork's own
    assert len(copied) >= 5 and all(x["_n"] == BIG for x in copied)
    gemini_doc = json.loads(forks[gid].read_text())
    assert len(gemini_doc["messages"]) == 3
    assert all(m["_n"] == BIG for m in gemini_doc["messages"])
    codex_lines = [json.loads(x) for x in forks[tid].read_text().splitlines()]
    assert codex_lines and all(x["_n"] == BIG for x in codex_lines)
    assert {p: p.read_bytes() for p in originals} == originals  # never modified


def test_protect_says_the_unreadable_lines_it_keeps_as_they_are(tmp_path: Path) -> None:
    """The real v2.1.5 file with 35 broken lines: `sessions`, `fork` and `export` named
    them, `protect` copied them byte for byte and said only "N new bytes, verified"."""
    real = Path(os.environ.get("PERSIST_REALDATA", "/work/shared/realdata")) / "claude"
    broken = real / "v2.1.5_m-claude_3af9b1a7_compact-boundary_BROKEN-LINES.jsonl"
    if not broken.exists():
        pytest.skip(f"no real data at {broken}")
    sid = "3af9b1a7-6512-4883-ad18-320658ced099"
    folder = tmp_path / "claude" / "projects" / "-Users-x"
    folder.mkdir(parents=True)
    shutil.copyfile(broken, folder / f"{sid}.jsonl")
    assert listed(tmp_path)[sid]["unreadable_lines"] == 35
    out = persist(tmp_path, "protect", sid)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"protected claude:{sid}: "), out.stdout
    assert ", 35 unreadable lines kept as they are, verified" in out.stdout, out.stdout
    [copy] = (tmp_path / "log").rglob("main.v*.gz")
    assert gzip.decompress(copy.read_bytes()) == broken.read_bytes()  # byte for byte
    out = persist(tmp_path, "protect", sid, "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["unreadable_lines"] == 35, out.stdout
    fine = make_claude(tmp_path)
    out = persist(tmp_path, "protect", fine.session_id)
    assert out.returncode == 0 and "unreadable" not in out.stdout, out.stdout


def test_a_claude_file_not_named_by_its_id_resumes_through_a_fork_everywhere(
    tmp_path: Path,
) -> None:
    """A copy under another name (`backup-of-<id>.jsonl`, the original gone): `claude
    --resume <id>` looks for `<id>.jsonl` and finds nothing. `persist fork` forked it,
    but the listing's "resume" and the launch plan offered that plain resume."""
    from recorder.launch.sessions import carry_out, find_row, plan
    from recorder.sources.discover import Roots
    from recorder.store.layout import Layout

    proj = tmp_path / "proj"
    s = make_claude(tmp_path)
    assert s.path is not None
    copy = s.path.with_name(f"backup-of-{s.session_id}.jsonl")
    s.path.rename(copy)
    fine = make_claude(tmp_path)
    rows = listed(tmp_path)
    row = rows[s.session_id]
    assert row["path"] == str(copy) and row["resumable"] is True
    assert row["resume"] is None, row
    why = row["resume_through_fork"]
    assert f"backup-of-{s.session_id}.jsonl is not named {s.session_id}.jsonl" in why, why
    assert f"persist fork claude:{s.session_id}" in why, why
    assert rows[fine.session_id]["resume"] == f"cd {proj} && claude --resume {fine.session_id}"
    assert rows[fine.session_id]["resume_through_fork"] is None
    out = persist(tmp_path, "sessions")
    [line] = [x for x in out.stdout.splitlines() if x.startswith(f"claude  {s.session_id[:8]}")]
    assert "(resumes through a fork) question 0" in line, line
    [line] = [x for x in out.stdout.splitlines() if x.startswith(f"claude  {fine.session_id[:8]}")]
    assert "fork" not in line, line
    # what `persist fork` gives: a fork at the last message, and its resume command
    forked = json.loads(persist(tmp_path, "fork", s.session_id, "--json").stdout)
    assert forked["forked"] and forked["resume"] == f"cd {proj} && claude --resume {forked['id']}"
    # the launch menu and `launch --session` (`plan`, `carry_out`): a fork, resumed
    roots = Roots(tmp_path / "claude", None, None)
    layout = Layout(tmp_path / "log")
    found = find_row(roots, layout, f"claude:{s.session_id}")
    wanted = plan(found, ["claude", "--model", "opus"], None)
    assert wanted.new_id is not None and wanted.new_id != s.session_id
    done = carry_out(layout, found, wanted)
    assert done.fork is not None and done.fork.path == copy.with_name(f"{wanted.new_id}.jsonl")
    assert done.plan.argv == ["claude", "--resume", wanted.new_id, "--model", "opus"]
    back = claude.read_transcript(done.fork.path)
    assert back.session.id == wanted.new_id
    assert [m.text for m in back.messages] == [
        m.text for m in claude.read_transcript(copy).messages
    ]
    kept = find_row(roots, layout, f"claude:{fine.session_id}")  # named by its id: as it is
    assert plan(kept, ["claude"], None).new_id is None
