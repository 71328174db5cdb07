"""`persist record` runs the session monitor's policy (an idle-priority child process),
alongside standalone `persist monitor` runs: every session checkpointed once per change,
never twice; visible in `persist status`; gone with the recorder; off with --monitor off."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from recorder.sources.monitor_status import read_status
from recorder.store.checkpoints import list_checkpoints
from recorder.store.layout import Layout
from tests.session_fixtures import ClaudeSession, text
from tests.support import Proc, endpoints, healthy, wait_for

pytestmark = pytest.mark.timeout(400)


def recorder(procs: Callable[..., Proc], log_dir: Path, *extra: str) -> Proc:
    eps = endpoints()
    proc = procs(
        "record", "--log-dir", str(log_dir), "--broker", eps["broker"], "--embedded", "yes",
        "--publish-endpoint", eps["publish_endpoint"], "--search-index", "off", *extra,
        name="recorder",
    )  # fmt: skip
    wait_for(lambda: healthy(log_dir), timeout=60, what="recorder")
    return proc


def persist(log_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args, "--log-dir", str(log_dir)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_recorder_checkpoints_sessions_with_standalone_monitors_racing(
    tmp_path: Path, procs: Callable[..., Proc], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    monkeypatch.delenv("PERSIST_MONITOR")  # the default: on
    sessions = []
    for n in range(2):
        c = ClaudeSession(tmp_path / "claude", cwd=f"/home/me/p{n}")
        c.user(f"task {n}")
        c.assistant(text("on it"))
        c.write()
        sessions.append(c)
    log_dir = tmp_path / "log"
    layout = Layout(log_dir)
    layout.sessions.mkdir(parents=True)
    # a round every 0.3 s, no cooldown: only "nothing changed" keeps a session from
    # being checkpointed again, so a double checkpoint would show at once
    (layout.sessions / "monitor.toml").write_text(
        "[monitor]\ninterval_minutes = 0.005\ncooldown_minutes = 0\n"
    )
    rec = recorder(procs, log_dir)
    standalone = [
        subprocess.Popen(
            [sys.executable, "-m", "recorder.cli", "monitor", "--once", "--log-dir", str(log_dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]

    def taken() -> list[tuple[str, int]]:
        return [
            (cp.session.key, cp.session.size)
            for cp in list_checkpoints(layout, sessions=True)
            if cp.session is not None
        ]

    wait_for(lambda: len(taken()) == 2, timeout=60, what="a checkpoint of each session")
    for p in standalone:
        assert p.wait(60) == 0
    wait_for(lambda: read_status(layout) is not None, timeout=120, what="the child's round")
    status = read_status(layout)
    assert status is not None and status.parent == rec.pid and status.alive
    child = psutil.Process(status.pid)
    assert child.ppid() == rec.pid  # its priority: test_background_priority.py
    # two more rounds first: a round still copying session 0 would copy the growth too
    # (its checkpoint then already holds it, and no third one is due)
    first = status.rounds
    wait_for(
        lambda: read_status(layout).rounds >= first + 2,  # type: ignore[union-attr]
        timeout=120,
        what="two rounds before the growth",
    )
    sessions[0].user("one more thing")
    sessions[0].append_lines(sessions[0].lines[-1:])
    wait_for(lambda: len(taken()) == 3, timeout=120, what="the grown session checkpointed")
    rounds = read_status(layout).rounds  # type: ignore[union-attr]
    wait_for(
        lambda: read_status(layout).rounds >= rounds + 2,  # type: ignore[union-attr]
        timeout=120,
        what="two more rounds",
    )
    assert sorted(taken()) == sorted(set(taken()))  # never the same point twice
    assert len(taken()) == 3

    out = persist(log_dir, "status")
    assert out.returncode == 0, out.stderr
    assert f"monitor in the recorder (PID {status.pid}, every 0.005 min)" in out.stdout
    assert re.search(r"last round \S+ ago over 2 sessions; [0-3] checkpoints since", out.stdout)
    data = json.loads(persist(log_dir, "status", "--json").stdout)
    assert data["monitor"]["running"] and data["monitor"]["parent"] == rec.pid

    rec.signal(signal.SIGTERM)
    assert rec.wait(30) == 0
    wait_for(lambda: not child.is_running() or child.status() == "zombie", what="child gone")
    out = persist(log_dir, "status")
    assert "sessions     monitor not running" in out.stdout


def test_monitor_off_is_passed_on_and_a_bad_default_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recorder spawned with monitor=False gets `--monitor off` (the child is only
    started when it is on: `cmd_record`); a bad $PERSIST_MONITOR is one line, exit 2."""
    from recorder.daemon.options import RecorderOptions, recorder_argv

    argv = recorder_argv(RecorderOptions(log_dir=tmp_path, monitor=False))
    assert argv[argv.index("--monitor") + 1] == "off"
    assert "--monitor" not in recorder_argv(RecorderOptions(log_dir=tmp_path))
    monkeypatch.setenv("PERSIST_MONITOR", "maybe")
    out = persist(tmp_path / "log", "record")
    assert out.returncode == 2
    assert out.stderr.strip() == "persist: $PERSIST_MONITOR must be on or off (got 'maybe')"


def test_a_monitor_child_that_dies_is_reaped_started_again_and_counted(
    tmp_path: Path, procs: Callable[..., Proc], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recorder's session monitor child, SIGKILLed (the OOM killer, a stray kill),
    stayed a zombie never started again: no session was checkpointed for the rest of
    the recorder's run, while `persist status` said "monitor in the recorder (PID ...)"
    and `running: true` (`kill(pid, 0)` succeeds on a zombie). Now it is reaped and
    started again as the search indexer is, and status counts and names its death."""
    from recorder.sources.monitor_status import MonitorStatus

    monkeypatch.delenv("PERSIST_MONITOR")  # the default: on
    log_dir = tmp_path / "log"
    layout = Layout(log_dir)
    rec = recorder(procs, log_dir)
    wait_for(lambda: read_status(layout) is not None, timeout=120, what="the child's round")
    first = read_status(layout)
    assert first is not None and first.parent == rec.pid and first.alive
    os.kill(first.pid, signal.SIGKILL)

    def again() -> MonitorStatus | None:
        now = read_status(layout)
        return now if now is not None and now.pid != first.pid and now.alive else None

    second = wait_for(again, timeout=120, what="a new monitor child's round")
    assert isinstance(second, MonitorStatus) and psutil.Process(second.pid).ppid() == rec.pid
    assert [c.pid for c in psutil.Process(rec.pid).children() if c.status() == "zombie"] == []
    data = json.loads(persist(log_dir, "status", "--json").stdout)
    assert data["health"] == "healthy", data
    assert data["monitor"]["running"] and data["monitor"]["pid"] == second.pid, data["monitor"]
    child = data["monitor"]["child"]
    assert child["parent"] == rec.pid and child["pid"] == second.pid, child
    assert child["restarts"] == 1 and child["last_error"] == "killed by SIGKILL", child
    [warning] = [w for w in data["warnings"] if "session monitor" in w]
    assert warning.startswith("session monitor running again only since "), warning
    assert "ended: killed by SIGKILL (once since the recorder started)" in warning, warning
    out = persist(log_dir, "status")
    assert out.returncode == 0, out.stderr
    assert f"monitor in the recorder (PID {second.pid}, every 5 min)" in out.stdout, out.stdout
    assert "it ended once since the recorder started, last: killed by SIGKILL" in out.stdout

    # a zombie (ended, not reaped) is never "alive", whose monitor status says running
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        wait_for(lambda: psutil.Process(zombie.pid).status() == "zombie", what="a zombie")
        assert not MonitorStatus(zombie.pid, rec.pid, time.time(), 5).alive
    finally:
        zombie.wait()
    rec.signal(signal.SIGTERM)
    assert rec.wait(30) == 0
