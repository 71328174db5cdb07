"""An idle recorder sleeps: its receiving thread waits for messages (or `stop()`) only,
its main thread wakes for the heartbeat only, and a client's request wakes it through
`control/wake` (answered at once, not at the next look)."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from recorder.daemon import core
from recorder.daemon.control import request_checkpoint
from recorder.daemon.options import EmbeddedMode, RecorderOptions
from recorder.daemon.runner import run_recorder
from recorder.daemon.wakeup import WakeListener, poke, wake_path
from recorder.store.layout import Layout
from tests.support import read_status, wait_for


def test_poke_reaches_a_listener_and_nothing_else(tmp_path: Path) -> None:
    control = tmp_path / "control"
    assert not poke(control)  # no folder, no FIFO: nobody to wake
    control.mkdir()
    wake_path(control).write_bytes(b"a file left here\n")
    assert not poke(control)  # not a FIFO: never written into
    woken = threading.Semaphore(0)
    listener = WakeListener(control, woken.release)
    assert listener.start(), listener.error
    try:
        st = wake_path(control).lstat()
        assert stat.S_ISFIFO(st.st_mode) and st.st_mode & 0o777 == 0o600  # replaced, private
        assert poke(control) and woken.acquire(timeout=5)
        assert poke(control) and woken.acquire(timeout=5)
    finally:
        listener.stop()
    assert listener._thread is None  # the thread ended
    assert not poke(control)  # a FIFO nobody reads (ENXIO): no recorder listens


def test_a_listener_that_cannot_make_its_fifo_says_why(tmp_path: Path) -> None:
    blocker = tmp_path / "control"
    blocker.write_text("not a folder")
    listener = WakeListener(blocker, lambda: None)
    assert not listener.start()
    assert listener.error is not None and "cannot listen on" in listener.error


def _wakeups(tid: int) -> int:
    """How many times a thread has been scheduled in (`/proc/.../schedstat`)."""
    return int(Path(f"/proc/self/task/{tid}/schedstat").read_text().split()[2])


def test_an_idle_recorder_sleeps_and_a_request_wakes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_dir = tmp_path / "logs"
    options = RecorderOptions(
        log_dir=log_dir,
        broker=f"ipc://{tmp_path}/sub.ipc",
        publish_endpoint=f"ipc://{tmp_path}/pub.ipc",
        embedded=EmbeddedMode.YES,
    )
    # Idle, the main thread sleeps until the next status: with these, 30 s. Only the
    # poke can then get a request answered within the client's 3 s.
    monkeypatch.setattr(core, "IDLE_TICK", 30.0)
    stop = threading.Event()
    ready = threading.Event()
    result: list[int] = []
    main = threading.Thread(
        target=lambda: result.append(
            run_recorder(options, on_ready=lambda _e: ready.set(), to_stderr=False, stop_event=stop)
        )
    )
    main.start()
    try:
        assert ready.wait(20)
        wait_for(lambda: read_status(log_dir).get("connection") == "connected", what="connected")
        monkeypatch.setattr(options, "status_interval", 15.0)
        time.sleep(1.5)  # the busy start-up is over: the main thread is in its long sleep
        assert main.native_id is not None
        receiver = next(t for t in threading.enumerate() if t.name == "persist-receiver")
        assert receiver.native_id is not None
        before = _wakeups(main.native_id), _wakeups(receiver.native_id)
        time.sleep(3)
        after = _wakeups(main.native_id), _wakeups(receiver.native_id)
        # the receiver polled every 0.5 s and the main thread ticked every 0.5 s: 6 each
        assert after[0] - before[0] <= 1 and after[1] - before[1] <= 1, (before, after)
        cp = request_checkpoint(Layout(log_dir), "woken", timeout=3)
        assert cp.label == "woken"
    finally:
        stop.set()
        poke(log_dir / "control")  # the main thread sees `stop` when it wakes
        main.join(20)
    assert result == [0]
    assert not os.path.exists(wake_path(log_dir / "control")) or not poke(log_dir / "control")
