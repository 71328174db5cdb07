"""`persist status` through the real CLI on a real recorder: a recorder that cannot
reach its broker (none there, or a frozen one) is degraded (exit 6), never healthy."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.support import Bus, free_port, status_json, wait_for

pytestmark = pytest.mark.timeout(120)

HEALTHY_CODE, DEGRADED_CODE = 0, 6  # recorder/cli/main.py


def status(log_dir: Path) -> tuple[int, dict]:
    return status_json(log_dir)


def test_no_broker_at_the_endpoint_is_degraded(bus: Bus) -> None:
    bus.back = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    bus.start_recorder(wait=False)
    _code, out = wait_for(
        lambda: (r := status(bus.log_dir))[0] == DEGRADED_CODE and r,
        timeout=20,
        what="status degraded",
    )  # type: ignore[misc]
    assert out["health"] == "degraded"
    assert f"the broker at {bus.back} is unreachable (never reached" in out["reason"]


def test_a_frozen_broker_turns_healthy_into_degraded_and_back(bus: Bus) -> None:
    broker = bus.start_broker()
    bus.start_recorder()
    assert status(bus.log_dir)[0] == HEALTHY_CODE
    broker.signal(signal.SIGSTOP)  # the process is there, the TCP port accepts, nothing answers
    try:
        _code, out = wait_for(
            lambda: (r := status(bus.log_dir))[0] == DEGRADED_CODE and r,
            timeout=30,
            what="status degraded",
        )  # type: ignore[misc]
        assert "is unreachable (lost for" in out["reason"]
    finally:
        broker.signal(signal.SIGCONT)
    wait_for(lambda: status(bus.log_dir)[0] == HEALTHY_CODE, timeout=20, what="healthy again")
