"""Which process a status file names: its start key (boot-relative start ticks, which a
wall-clock step does not move) when the file has one, else its wall-clock start as
before (files written before 2026-12-07)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import psutil
import pytest

from recorder.store import procstart
from recorder.store.layout import Layout
from recorder.store.status import HEALTHY, STOPPED, assess, process_start_key
from tests.support import wait_for
from tests.unit.test_status import good_status

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc: Linux")


def write(layout: Layout, **fields: object) -> None:
    layout.status.write_bytes(orjson.dumps(good_status(updated=1000.0, **fields)))
    os.utime(layout.status, (1000.0, 1000.0))  # as the recorder leaves it: at its `updated`


def test_the_start_key_decides_not_the_wall_clock_start(tmp_path: Path) -> None:
    me = psutil.Process()
    layout = Layout(tmp_path)
    key = process_start_key(me.pid)
    assert key is not None and key.endswith(f":{procstart.start_ticks(me.pid)}")
    # the wall-clock start an hour off (the clock was stepped since): still this process
    write(layout, pid=me.pid, process_started=me.create_time() - 3600, process_start_key=key)
    assert assess(layout, now=1001.0).state == HEALTHY
    # the right wall-clock start, but another start key: another process took the PID
    boot, _, ticks = key.rpartition(":")
    other = f"{boot}:{int(ticks) - 1}"
    write(layout, pid=me.pid, process_started=me.create_time(), process_start_key=other)
    health = assess(layout, now=1001.0)
    assert health.state == STOPPED and "is gone without a clean stop" in health.reason
    # another boot: not this process either
    write(layout, pid=me.pid, process_start_key=f"{'0' * 8}-other-boot:{ticks}")
    assert assess(layout, now=1001.0).state == STOPPED


def test_a_file_without_a_key_is_read_as_before(tmp_path: Path) -> None:
    me = psutil.Process()
    layout = Layout(tmp_path)
    write(layout, pid=me.pid, process_started=me.create_time() + 0.5)
    assert assess(layout, now=1001.0).state == HEALTHY
    write(layout, pid=me.pid, process_started=me.create_time() - 3600)
    assert assess(layout, now=1001.0).state == STOPPED


def test_a_zombie_is_not_the_process_its_key_names() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        key = process_start_key(child.pid)
        assert key is not None
        wait_for(lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE)
        assert not procstart.same_process(child.pid, None, key)
    finally:
        child.wait()
    assert not procstart.same_process(child.pid, None, key)


def test_without_proc_the_wall_clock_start_decides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    me = psutil.Process()
    monkeypatch.setattr(procstart, "PROC", str(tmp_path / "no-proc"))
    assert process_start_key(me.pid) is None
    assert procstart.same_process(me.pid, me.create_time(), None)
    assert not procstart.same_process(me.pid, me.create_time() - 3600, None)
