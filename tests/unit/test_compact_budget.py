"""PreCompact within its time: the transcript copy goes a member at a time and stops at
a deadline (the rest waits for the next call, said in a failure line); a PreCompact
the agent ends (SIGTERM at its timeout) says which of its steps were not done."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recorder.hooks.agents import Agent, Role
from recorder.hooks.run import HookArgs, Payload
from recorder.hooks.samples import ClaudeSession
from recorder.hooks.state import state_path
from recorder.sources import copies
from recorder.sources.model import Session, Source
from recorder.store.layout import Layout
from tests.support import wait_for

pytestmark = pytest.mark.timeout(120)


def transcript(tmp_path: Path, turns: int = 60) -> tuple[ClaudeSession, Path]:
    c = ClaudeSession(transcript=str(tmp_path / "session.jsonl"))
    path = Path(c.transcript)
    with open(path, "wb") as f:
        for n in range(turns):
            f.write(b"".join(c.user(f"prompt {n} " + "x" * 300) + c.assistant(f"answer {n}")))
    return c, path


def failures(log_dir: Path) -> list[str]:
    path = log_dir / "hooks" / "failures.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line)["error"] for line in lines]


def test_a_copy_past_its_deadline_stops_between_members_and_goes_on_next_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The first copy of a long transcript was one member of all of it, then read back
    whole: 160 MiB took 18-25 s, past the 10 s the agent gave PreCompact."""
    monkeypatch.setattr(copies, "CHUNK", 4096)
    _c, path = transcript(tmp_path)
    layout = Layout(tmp_path / "logs")
    session = Session(Source.CLAUDE, "s1", path)
    folder = copies.copy_folder(layout, session)
    size, calls = path.stat().st_size, 0
    while True:
        calls += 1
        result = copies.protect(layout, session, deadline=time.monotonic() - 1)  # long past
        assert len(result.written) == 1  # one member, then the deadline stops it
        assert copies.verify_written(folder, result) == []
        copied = copies.read_copy(folder)
        assert copied.endswith(b"\n") and path.read_bytes().startswith(copied)  # whole lines
        if not result.left:
            break
        assert result.left == size - len(copied)
    assert calls > 5 and copies.read_copy(folder) == path.read_bytes()
    assert copies.verify(folder) == []
    # no deadline: all that is new in one call, a member per chunk
    with open(path, "ab") as f:
        f.write(b'{"type":"user","line":"' + b"y" * 10_000 + b'"}\n')
    result = copies.protect(layout, session)
    assert result.left == 0 and len(result.written) == 1  # a line longer than a chunk
    assert copies.read_copy(folder) == path.read_bytes()


def test_precompact_out_of_time_for_the_copy_says_what_waits(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from recorder.hooks import lifecycle

    monkeypatch.setattr(copies, "CHUNK", 4096)
    monkeypatch.setattr(lifecycle, "COPY_UNTIL", -1.0)  # no time left for the copy
    c, path = transcript(tmp_path)
    log_dir = tmp_path / "logs"
    args = HookArgs("PreCompact", Agent.CLAUDE, log_dir, publish_endpoint="tcp://127.0.0.1:9")
    payload = Payload.parse(json.dumps(c.payload("PreCompact")).encode(), "PreCompact")
    assert lifecycle.handle(Role.COMPACT, args, payload) is None
    said = failures(log_dir)
    (line,) = [s for s in said if s.startswith("transcript copy incomplete: ")]
    assert f"bytes of {path} not copied within" in line
    folder = copies.copy_folder(
        Layout(log_dir), Session(Source.CLAUDE, c.session, path, project_path=c.cwd)
    )
    assert 0 < len(copies.read_copy(folder)) < path.stat().st_size


def _catches(pid: int, sig: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_precompact_ended_by_the_agent_says_what_was_not_done(tmp_path: Path) -> None:
    """Claude Code ends a hook at its timeout with SIGTERM: PreCompact left no copy, no
    message, no checkpoint and no failure line. The session's lock is held here, so
    the hook is stopped before any step, wherever the signal finds it."""
    import fcntl

    c, _path = transcript(tmp_path, turns=2)
    log_dir = tmp_path / "logs"
    spath = state_path(log_dir, "claude", c.session)
    spath.parent.mkdir(parents=True)
    fd = os.open(spath.with_name(spath.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        argv = [sys.executable, "-m", "recorder.cli", "hook", "PreCompact", "--agent", "claude"]
        hook = subprocess.Popen(
            [*argv, "--log-dir", str(log_dir), "--publish-endpoint", "tcp://127.0.0.1:9"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert hook.stdin is not None
        hook.stdin.write(json.dumps(c.payload("PreCompact")).encode())
        hook.stdin.close()
        wait_for(lambda: _catches(hook.pid, signal.SIGTERM), what="the hook's SIGTERM handler")
        hook.send_signal(signal.SIGTERM)
        hook.wait(timeout=30)
        assert hook.stdout is not None and hook.stderr is not None
        out, err = hook.stdout.read(), hook.stderr.read()
    finally:
        os.close(fd)
    assert (hook.returncode, out, err) == (0, b"", b"")
    (line,) = failures(log_dir)
    assert line == (
        "stopped by SIGTERM (the agent's timeout for the hook?) before compaction: not done: "
        "transcript published, transcript copied, session.compacting message sent, "
        "checkpoint 'before compaction' taken"
    )
