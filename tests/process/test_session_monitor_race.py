"""Two `persist monitor` processes racing over the same sessions never checkpoint a
session twice, and a monitor killed while holding the lock does not block the next."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from recorder.sources.monitor import latest_session_checkpoints
from recorder.store.checkpoints import list_checkpoints
from recorder.store.layout import Layout
from tests.session_fixtures import ClaudeSession, text

pytestmark = pytest.mark.timeout(180)


def monitor_argv(tmp: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "recorder.cli",
        "monitor",
        "--once",
        "--claude-root",
        str(tmp / "claude"),
        "--gemini-root",
        str(tmp / "none"),
        "--codex-root",
        str(tmp / "none"),
        "--log-dir",
        str(tmp / "log"),
    ]


def make_sessions(tmp: Path, n: int) -> list[str]:
    ids = []
    for i in range(n):
        s = ClaudeSession(tmp / "claude", cwd=f"/home/me/p{i % 3}")
        s.user(f"task {i}")
        s.assistant(text("done"))
        s.write()
        ids.append(s.session_id)
    return ids


def test_two_monitors_racing_checkpoint_each_session_once(tmp_path: Path) -> None:
    ids = make_sessions(tmp_path, 24)
    for _ in range(3):  # three races: the first takes everything, the others nothing
        procs = [
            subprocess.Popen(
                monitor_argv(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
        assert all("Traceback" not in o[1] for o in outs)
    cps = [cp for cp in list_checkpoints(Layout(tmp_path / "log"), sessions=True) if cp.session]
    per_session = Counter(cp.session.key for cp in cps if cp.session)
    assert per_session == Counter({f"claude:{i}": 1 for i in ids})
    assert set(latest_session_checkpoints(Layout(tmp_path / "log"))) == {f"claude:{i}" for i in ids}


HOLDER = """
import sys, time
from pathlib import Path
from recorder.sources.monitor import monitor_lock
from recorder.store.layout import Layout
with monitor_lock(Layout(Path(sys.argv[1]))):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_killed_lock_holder_does_not_block(tmp_path: Path) -> None:
    make_sessions(tmp_path, 2)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "log")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        # while it lives, a monitor waits for it (and would time out after 30 s)
        waiting = subprocess.Popen(
            monitor_argv(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(1.5)
        assert waiting.poll() is None
        assert list_checkpoints(Layout(tmp_path / "log"), sessions=True) == []
        holder.send_signal(signal.SIGKILL)  # dies holding the lock
        out, err = waiting.communicate(timeout=60)
        assert waiting.returncode == 0, err
        assert out.count("checkpoint ") == 2
    finally:
        holder.kill()
        holder.wait()
