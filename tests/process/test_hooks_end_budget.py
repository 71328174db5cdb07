"""SessionEnd finishes within the timeout the install gives it (Claude Code waits that
long, then kills the hook), whatever the recorder it stops does: a frozen recorder
neither answers the end's checkpoint nor stops, and the failure lines say what was left
undone. (It took 15 s and more: 5 s for the checkpoint, then 10 s for the stop.)"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from recorder.hooks.agents import TIMEOUT_OTHER
from recorder.hooks.samples import ClaudeSession
from tests.process.test_hooks_flow import append, failures, quiet, run_hook
from tests.support import Bus, free_port, read_status, wait_for

pytestmark = pytest.mark.timeout(180)


@pytest.mark.parametrize("broker", ["embedded", "own"])
def test_session_end_with_a_frozen_recorder_ends_within_its_timeout(
    broker: str, bus: Bus, tmp_path: Path
) -> None:
    """Hosting the broker, the frozen recorder hears nothing (the end waits in
    hooks/pending/); behind a broker of its own, the end is sent and its checkpoint is
    what the recorder does not answer."""
    log_dir = tmp_path / "logs"
    if broker == "own":
        bus.start_broker()
        ends = (bus.front, bus.back)
    else:
        ends = (f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}")
    c = ClaudeSession(transcript=str(tmp_path / "session.jsonl"))
    pid = None
    try:
        quiet(run_hook(log_dir, "claude", c.payload("SessionStart"), endpoints=ends))
        pid = read_status(log_dir)["pid"]
        owner = json.loads((log_dir / "agents" / "owner.json").read_text())
        assert owner["recorder_pid"] == pid  # the start hook started it: the end stops it
        append(Path(c.transcript), c.user("hello") + c.assistant("hi"))
        os.kill(pid, signal.SIGSTOP)  # frozen: answers nothing, cannot act on SIGTERM
        t0 = time.monotonic()
        quiet(run_hook(log_dir, "claude", c.payload("SessionEnd"), endpoints=ends))
        took = time.monotonic() - t0
        assert took < TIMEOUT_OTHER, f"SessionEnd took {took:.1f} s"
        errors = [f["error"] for f in failures(log_dir)]
        undone = (
            f"no checkpoint 'claude {c.session[:8]} ended'"
            if broker == "own"
            else "session end not delivered: no subscriber"
        )
        assert any(e.startswith(undone) for e in errors), errors
        (stop,) = [e for e in errors if f"recorder PID {pid}" in e]
        assert "SIGTERM" in stop and "not stopped" in stop and "by itself" in stop, stop
        assert not list((log_dir / "agents").glob("*.agent.json"))  # deregistered all the same
        # thawed, the recorder acts on the SIGTERM it was sent, with everything written
        os.kill(pid, signal.SIGCONT)
        wait_for(lambda: read_status(log_dir).get("state") == "stopped", 30, "the stop")
        wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 30, "the recorder's exit")
    finally:
        if pid is not None and os.path.exists(f"/proc/{pid}"):
            os.kill(pid, signal.SIGKILL)
