"""A named pipe where `persist hook` keeps a session's state (`hooks/sessions/<file>`),
its lock or its pending mark (`hooks/pending/<file>`): opening one waits for a writer
(or a reader) that never comes, and the agent killed the hook at its own timeout (a
turn's 10 s, on every prompt) with no failure line. Each is now one failure line
naming the path and the `mv` that moves it out of the way, at once; the pipe is left
where it is."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from recorder.hooks.samples import ClaudeSession
from tests.process.test_hooks_flow import append, failures, quiet, run_hook
from tests.support import free_port

pytestmark = pytest.mark.timeout(300)


def _nobody() -> tuple[str, str]:
    """Endpoints where nothing listens (never the defaults: no recorder of the machine's)."""
    return f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"


def _fix_for(log_dir: Path, path: Path) -> str:
    return f"mv {path} {log_dir / 'recovery'}/"


@pytest.mark.parametrize("where", ["sessions/{}", "sessions/{}.lock"])
def test_a_named_pipe_at_a_sessions_state_or_its_lock_is_one_line_never_a_wait(
    tmp_path: Path, where: str
) -> None:
    log_dir = tmp_path / "logs"
    c = ClaudeSession(transcript=str(tmp_path / "session.jsonl"))
    append(Path(c.transcript), c.user("hello") + c.assistant("hi"))
    (log_dir / "hooks" / "sessions").mkdir(parents=True)
    pipe = log_dir / "hooks" / where.format(f"claude-{c.session}.json")
    os.mkfifo(pipe, 0o600)
    events = ["UserPromptSubmit", "Stop", "PreCompact", "SessionEnd"]
    for event in events:
        quiet(run_hook(log_dir, "claude", c.payload(event), endpoints=_nobody()))
    said = [f for f in failures(log_dir) if str(pipe) in f["error"]]
    assert [f["event"] for f in said] == events, failures(log_dir)
    for f in said:
        assert "a named pipe, not a regular file" in f["error"]
        assert _fix_for(log_dir, pipe) in f["error"]
    assert stat.S_ISFIFO(pipe.lstat().st_mode)  # left to the person the line names it to
    assert (log_dir / "recovery").is_dir()  # where the mv puts it


def test_a_named_pipe_at_a_pending_mark_is_one_line_and_the_end_goes_on(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    c = ClaudeSession(transcript=str(tmp_path / "session.jsonl"))
    append(Path(c.transcript), c.user("hello") + c.assistant("hi"))
    (log_dir / "hooks" / "pending").mkdir(parents=True)
    pipe = log_dir / "hooks" / "pending" / f"claude-{c.session}.json"
    os.mkfifo(pipe, 0o600)
    quiet(run_hook(log_dir, "claude", c.payload("SessionEnd"), endpoints=_nobody()))
    errors = [f["error"] for f in failures(log_dir)]
    (mark,) = [e for e in errors if str(pipe) in e]
    assert "a named pipe, not a regular file" in mark and _fix_for(log_dir, pipe) in mark
    (end,) = [e for e in errors if e.startswith("session end not delivered")]
    assert "no subscriber" in end and "nothing sends them later" in end, end
    assert "the next hook call of any session sends them" not in end  # (nothing would)
    assert stat.S_ISFIFO(pipe.lstat().st_mode)


def test_an_ended_sessions_state_that_is_a_named_pipe_is_one_line_its_mark_kept(
    tmp_path: Path,
) -> None:
    """An ended session waits in hooks/pending/; every hook call of any session tries to
    finish it, and read its state through the pipe: each call hung."""
    log_dir = tmp_path / "logs"
    ended = ClaudeSession(transcript=str(tmp_path / "ended.jsonl"))
    name = f"claude-{ended.session}.json"
    for folder in ("sessions", "pending"):
        (log_dir / "hooks" / folder).mkdir(parents=True)
    pipe = log_dir / "hooks" / "sessions" / name
    os.mkfifo(pipe, 0o600)
    mark = log_dir / "hooks" / "pending" / name
    mark.touch(mode=0o600)
    other = ClaudeSession(transcript=str(tmp_path / "not-yet.jsonl"))  # nothing to send
    quiet(run_hook(log_dir, "claude", other.payload("Stop"), endpoints=_nobody()))
    (said,) = failures(log_dir)
    assert str(pipe) in said["error"] and _fix_for(log_dir, pipe) in said["error"]
    assert mark.is_file()  # what the session owes still waits, once the pipe is moved
