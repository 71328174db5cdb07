"""The wall clock stepped under a real recorder (its `time.time` shifted by
tests/clockshift, as when the system clock is set: the monotonic clock goes on). Its
periodic work keeps its intervals, and `persist status` still tells a frozen recorder
(stale) and one that lost its broker (degraded) from a healthy one."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder.bus.publisher import Publisher
from recorder.store.status import STALE_AFTER
from tests.support import Bus, journal_records, read_status, status_json, wait_for

pytestmark = pytest.mark.timeout(120)

HEALTHY_CODE, STALE_CODE, DEGRADED_CODE = 0, 1, 6  # recorder/cli/main.py
SHIM = Path(__file__).resolve().parent.parent / "clockshift"


@pytest.fixture
def shift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The file that holds the shift (seconds) of every child process's wall clock."""
    path = tmp_path / "clock-shift"
    path.write_text("0")
    monkeypatch.setenv("PERSIST_TEST_CLOCK_SHIFT", str(path))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(SHIM), os.environ.get("PYTHONPATH")]))
    )
    yield path


def status(log_dir: Path) -> tuple[int, dict]:
    """`persist status --json`, run with the same shifted clock."""
    return status_json(log_dir)


def checkpoints(log_dir: Path) -> int:
    return sum(1 for p in (log_dir / "checkpoints").glob("*.json"))


def test_a_clock_set_back_stops_no_heartbeat_nor_checkpoint_and_a_freeze_is_stale(
    bus: Bus, shift: Path
) -> None:
    bus.start_broker()
    recorder = bus.start_recorder("--checkpoint-interval", "2")
    pub = Publisher(bus.front, agent="a")
    try:
        assert pub.wait_ready(10)
        pub.send("agents.a", {"text": "one"})
        wait_for(lambda: checkpoints(bus.log_dir) == 1, what="a periodic checkpoint")
        shift.write_text("-3600")  # the clock set back an hour
        time.sleep(0.2)
        for i in range(3):
            pub.send("agents.a", {"text": f"after the step {i}"})
        # the status is written again (the heartbeat goes on), saying the 4 messages
        wait_for(
            lambda: read_status(bus.log_dir).get("counts", {}).get("written") == 4,
            timeout=8,
            what="the status saying 4 messages",
        )
        wait_for(lambda: checkpoints(bus.log_dir) == 2, timeout=8, what="the next checkpoint")
        assert status(bus.log_dir)[0] == HEALTHY_CODE
        # the journal says why its stamps went back
        (step,) = [r for r in journal_records(bus.log_dir) if r.get("event") == "clock-step"]
        assert -3610 < step["step_s"] < -3590, step
        assert step["detail"].startswith("the wall clock was set back by 36"), step
        recorder.signal(signal.SIGSTOP)
        try:
            time.sleep(STALE_AFTER + 2)
            code, out = status(bus.log_dir)
        finally:
            recorder.signal(signal.SIGCONT)
        assert (code, out["health"]) == (STALE_CODE, "stale")
        assert "silent for" in out["reason"]
    finally:
        pub.close()
    wait_for(lambda: status(bus.log_dir)[0] == HEALTHY_CODE, timeout=10, what="healthy again")


def test_a_clock_set_back_does_not_make_a_lost_broker_healthy(bus: Bus, shift: Path) -> None:
    broker = bus.start_broker()
    bus.start_recorder()
    broker.kill()
    wait_for(lambda: status(bus.log_dir)[0] == DEGRADED_CODE, timeout=20, what="degraded")
    shift.write_text("-3600")
    time.sleep(3)  # the recorder has written its status since (with the new clock)
    code, out = status(bus.log_dir)
    assert (code, out["health"]) == (DEGRADED_CODE, "degraded"), out["reason"]
    assert f"the broker at {bus.back} is unreachable" in out["reason"]
    shift.write_text("0")  # put right: the outage's length is told again
    time.sleep(3)
    code, out = status(bus.log_dir)
    assert code == DEGRADED_CODE
    assert "lost for" in out["reason"] and "lost for 1.0h" not in out["reason"], out["reason"]
