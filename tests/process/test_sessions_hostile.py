"""Agent folders holding what no agent writes but a file system allows: values nested
as deep as orjson reads, named pipes and symlink loops where session files are looked
for. Each is one file's problem: every other session is still listed, exported,
protected and forked, and no command hangs or ends in a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from recorder.sources.jsonl import read_bytes
from recorder.sources.model import ReadReport
from tests.process.test_sessions_cli import persist
from tests.session_fixtures import (
    ClaudeSession,
    codex_rollout,
    gemini_legacy,
    gemini_messages,
    gemini_project,
    new_uuid,
    text,
    tool_use,
)

pytestmark = pytest.mark.timeout(180)


def listed(tmp: Path) -> dict[str, dict]:
    out = persist(tmp, "sessions", "--json")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    return {row["id"]: row for row in json.loads(out.stdout)}


def plain(tmp: Path, cwd: str = "/home/me/plain") -> ClaudeSession:
    s = ClaudeSession(tmp / "claude", cwd=cwd)
    s.user("an ordinary question")
    s.assistant(text("an ordinary answer"))
    s.write()
    return s


def deep_session(tmp: Path, depth: int) -> ClaudeSession:
    """A Claude session whose tool call's input and tool result are nested `depth`
    levels deep (valid JSON: orjson reads up to 1,024)."""
    s = ClaudeSession(tmp / "claude", cwd="/home/me/deep")
    s.user("call the tool")
    s.assistant(text("calling"), tool_use("Bash", {"command": "DEEP-LIST"}, "t1"))
    s.tool_result("t1", ["DEEP-OBJECT"])
    s.assistant(text("done"))
    for line in s.lines:  # no usage: the listing estimates the context from the texts
        line.get("message", {}).pop("usage", None)
    s.write()
    assert s.path is not None
    deep_list = "[" * depth + '"x"' + "]" * depth
    deep_object = '{"k":' * depth + '"v"' + "}" * depth
    raw = s.path.read_text()
    s.path.write_text(raw.replace('"DEEP-LIST"', deep_list).replace('"DEEP-OBJECT"', deep_object))
    return s


def test_a_session_nested_1000_deep_is_listed_and_never_stops_the_others(
    tmp_path: Path,
) -> None:
    deep = deep_session(tmp_path, 1000)
    other = plain(tmp_path)
    rows = listed(tmp_path)
    assert set(rows) == {deep.session_id, other.session_id}
    assert rows[deep.session_id]["messages"] == 4
    out = persist(tmp_path, "export", "--session", deep.session_id, "-o", str(tmp_path / "d.md"))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    exported = (tmp_path / "d.md").read_text()
    assert "nested too deep" in exported and "done" in exported
    out = persist(tmp_path, "protect", "--all", "--json")
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert all(r["protected"] for r in listed(tmp_path).values())
    out = persist(tmp_path, "monitor", "--once")
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    # a fork must write the deep line again: no JSON writer goes 1,000 levels deep
    assert deep.path is not None
    before = sorted(os.listdir(deep.path.parent))
    out = persist(tmp_path, "fork", deep.session_id, "--at", "2")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "nested too deep" in out.stderr
    assert sorted(os.listdir(deep.path.parent)) == before  # nothing written


def test_a_session_nested_300_deep_forks(tmp_path: Path) -> None:
    """Deeper than orjson writes (255), so the fork's lines are written by the stdlib."""
    deep = deep_session(tmp_path, 300)
    out = persist(tmp_path, "fork", deep.session_id, "--at", "2", "--json")
    assert out.returncode == 0, out.stderr
    forked = json.loads(out.stdout)
    assert forked["forked"] and forked["messages"] == 3
    assert listed(tmp_path)[forked["id"]]["messages"] == 3


def one_of_each(tmp: Path) -> set[str]:
    """A session of each agent, in regular files; their ids."""
    claude_id = plain(tmp).session_id
    gemini_id = new_uuid()
    gemini_legacy(gemini_project(tmp / "gemini", "/home/me/gem"), gemini_id, gemini_messages(2))
    codex_id = "019a085e-0000-7000-8000-00000000abcd"
    codex_rollout(tmp / "codex", codex_id, 2)
    return {claude_id, gemini_id, codex_id}


def test_named_pipes_where_files_are_read_are_skipped_never_waited_on(tmp_path: Path) -> None:
    """Opening a named pipe for reading waits for a writer: a pipe at any path the
    readers look at hung `persist sessions` until it was killed."""
    ids = one_of_each(tmp_path)
    claude, gemini, codex = (tmp_path / n for n in ("claude", "gemini", "codex"))
    project = next((claude / "projects").iterdir())
    other = gemini / "tmp" / "other"
    (other / "chats").mkdir(parents=True)
    (claude / "sessions").mkdir()
    day = codex / "sessions" / "2026" / "01" / "10"
    for pipe in (
        project / f"{new_uuid()}.jsonl",
        project / "agent-a1b2c3d4.jsonl",  # a 2.0.x sub-agent file
        claude / "sessions" / "123.json",  # the registry of running sessions
        claude / "settings.json",
        gemini / "settings.json",
        gemini / "projects.json",
        other / ".project_root",
        other / "chats" / "session-2026-01-10T12-00-0b23371a.json",
        day / "rollout-2026-01-10T13-00-00-019a085e-0000-7000-8000-00000000ffff.jsonl",
        codex / "session_index.jsonl",
    ):
        os.mkfifo(pipe)
    out = persist(tmp_path, "sessions", "--json", timeout=30)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert {row["id"] for row in json.loads(out.stdout)} == ids
    out = persist(tmp_path, "protect", "--all", timeout=30)
    assert out.returncode == 0, out.stderr
    for sid in ids:
        out = persist(tmp_path, "export", "--session", sid, "-o", str(tmp_path / "s.md"))
        assert out.returncode == 0, out.stderr
    # a reader handed a pipe names it in its report
    report = ReadReport()
    assert read_bytes(codex / "session_index.jsonl", report)[0] == b""
    assert report.errors == [f"{codex / 'session_index.jsonl'} is not a regular file; skipped"]


def test_symlink_loops_where_session_files_are_looked_for_are_skipped(tmp_path: Path) -> None:
    """`ln -s self.jsonl self.jsonl` in a Claude project folder made `sessions`,
    `protect` and `search` fail as a whole ("Too many levels of symbolic links")."""
    from tests.demo_journal import build_demo

    ids = one_of_each(tmp_path)
    claude, gemini, codex = (tmp_path / n for n in ("claude", "gemini", "codex"))
    project = next((claude / "projects").iterdir())
    s = ClaudeSession(claude, cwd="/home/me/plain")  # a session with a >= 2.1.2 sub-agent
    s.user("search the web")
    s.assistant(text("asking a sub-agent"))
    s.write()
    assert s.path is not None
    agents = s.path.with_suffix("") / "subagents"
    agents.mkdir(parents=True)
    sub = ClaudeSession(claude, session_id=s.session_id, sidechain=True, agent_id="a1234567")
    sub.path = agents / "agent-a1234567.jsonl"
    sub.user("find it")
    sub.assistant(text("found it"))
    sub.write()
    ids.add(s.session_id)
    chats = next((gemini / "tmp").iterdir()) / "chats"
    day = codex / "sessions" / "2026" / "01" / "10"
    for link, target in (
        (project / "self.jsonl", "self.jsonl"),
        (project / "agent-loop.jsonl", "agent-loop.jsonl"),
        (project / "dangling.jsonl", "/nonexistent/x.jsonl"),
        (agents / "agent-self.jsonl", "agent-self.jsonl"),
        (agents / "loop", ".."),  # a folder loop below subagents/
        (claude / "projects" / "-loop", "../.."),  # a project folder that is the root
        (
            chats / "session-2026-01-10T12-00-loop0000.json",
            "session-2026-01-10T12-00-loop0000.json",
        ),
        (chats / "loop", "."),
        (day / "rollout-2026-01-10T13-00-00-019a085e-0000-7000-8000-00000000eeee.jsonl", "x"),
        (day / "loop", ".."),
    ):
        os.symlink(target, link)
    os.symlink("x", day / "x")  # the rollout's name leads to a loop
    rows = listed(tmp_path)
    assert set(rows) == ids
    assert rows[s.session_id]["messages"] == 2
    out = persist(tmp_path, "protect", "--all")
    assert out.returncode == 0, out.stderr
    demo = build_demo(tmp_path / "log")
    out = persist(tmp_path, "search", "--json", "source:claude ordinary")
    assert out.returncode == 0 and demo.is_dir(), out.stderr
    assert "Traceback" not in out.stderr and "doctor" not in out.stderr
    hits = json.loads(out.stdout)["hits"]
    assert {h["session"] for h in hits} == {
        next(i for i in ids if rows[i]["title"] == "an ordinary question")
    }
