"""`persist status` through the real CLI on a real recorder: a recorder that cannot
reach its broker (none there, or a frozen one) is degraded (exit 6), never healthy."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from recorder.store.fsutil import user_name
from tests.support import (
    NOBODY,
    Bus,
    as_another_user,
    free_port,
    read_status,
    run_cli,
    run_cli_unprivileged,
    status_json,
    wait_for,
)

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


def degraded_fix(log_dir: Path) -> str:
    """`persist doctor --json`'s fix for the degraded recorder."""
    import json

    out = run_cli("doctor", "--json", "--log-dir", str(log_dir))
    (finding,) = [f for f in json.loads(out.stdout)["findings"] if f["check"] == "service.degraded"]
    return str(finding["fix"])


def test_a_lost_broker_is_fixed_by_starting_it_not_by_restarting_the_recorder(bus: Bus) -> None:
    """The broker a recorder follows is killed: `persist doctor` and `persist status`
    name starting that broker as the fix, and once it is back (at the endpoints named)
    the same recorder records again, no restart. Before 2026-12-07 doctor's fix was
    `persist stop ... && persist record ...`: run as printed, it left the recorder as
    degraded as before (exit 6) and added a recorder-down period to the journal."""
    broker = bus.start_broker()
    recorder = bus.start_recorder()
    broker.signal(signal.SIGKILL)
    broker.wait()
    wait_for(lambda: status(bus.log_dir)[0] == DEGRADED_CODE, timeout=30, what="degraded")
    fix = degraded_fix(bus.log_dir)
    assert fix.startswith(
        f"start the broker the recorder follows at {bus.back}: "
        f"persist broker --backend {bus.back} --frontend ENDPOINT, ENDPOINT where its "
        "publishers connect"
    ), fix
    assert "persist stop" not in fix and "persist record" not in fix
    said = run_cli("status", "--log-dir", str(bus.log_dir))
    assert said.returncode == DEGRADED_CODE and f"  broker: {fix}\n" in said.stdout, said.stdout

    bus.start_broker()  # what the fix says: the same endpoints
    wait_for(lambda: status(bus.log_dir)[0] == HEALTHY_CODE, timeout=30, what="healthy again")
    assert read_status(bus.log_dir)["pid"] == recorder.pid  # the same recorder
    ran = run_cli("status", "--log-dir", str(bus.log_dir))
    assert ran.returncode == HEALTHY_CODE and "  broker:" not in ran.stdout, ran.stdout


def test_the_default_broker_never_started_is_fixed_by_the_command_named(bus: Bus) -> None:
    """Following the default broker (tcp://127.0.0.1:5555) that nobody started: the fix
    is the command that starts it at both its endpoints. (Not run here: a broker on the
    default ports would take other tests' publishers running at the same time; the test
    above runs the fix it names.)"""
    from tests.support import _listening

    if _listening("tcp://127.0.0.1:5555") or _listening("tcp://127.0.0.1:5559"):
        pytest.skip("the default broker's ports are in use on this machine")
    bus.back, bus.front = "tcp://127.0.0.1:5555", "tcp://127.0.0.1:5559"
    recorder = bus.start_recorder(wait=False)
    wait_for(lambda: status(bus.log_dir)[0] == DEGRADED_CODE, timeout=30, what="degraded")
    fix = degraded_fix(bus.log_dir)
    assert fix == "persist broker --frontend tcp://127.0.0.1:5559 --backend tcp://127.0.0.1:5555"
    assert read_status(bus.log_dir)["pid"] == recorder.pid


def test_a_folder_of_another_user_is_never_called_stopped(bus: Bus) -> None:
    """A recorder records into a folder that is another user's (0700): we cannot read
    its status nor open its lock, so whether a recorder holds it is unknown. Before
    2026-12-08 `persist status` said STOPPED (exit 3) and named a start command with the
    default broker, and `persist stop` said "no recorder running", exit 0, while that
    recorder was healthy."""
    bus.start_broker()
    recorder = bus.start_recorder()
    as_another_user(bus.log_dir)
    name = user_name(NOBODY)
    for argv in (["status"], ["status", "--json"], ["stop"]):
        out = run_cli_unprivileged(*argv, "--log-dir", str(bus.log_dir))
        assert out.returncode == 1, (argv, out.stdout, out.stderr)
        assert out.stdout == "", argv
        (line,) = out.stderr.splitlines()
        assert line == (
            f"persist: {bus.log_dir} belongs to another user ({name}): whether a recorder "
            f"holds it cannot be told from here; run this as that user (sudo -u {name})"
        ), line
    settings = bus.log_dir.parent / "settings.json"  # hooks that record into that folder
    installed = run_cli(
        "hooks", "install", "claude", "--settings", str(settings), "--log-dir", str(bus.log_dir)
    )
    assert installed.returncode == 0, installed.stderr
    said = run_cli_unprivileged("hooks", "status", "claude", "--settings", str(settings))
    assert said.returncode == 1, said.stderr
    assert f"log folder {bus.log_dir}: recorder unknown ({bus.log_dir} belongs to" in said.stdout
    assert recorder.popen.poll() is None
    code, seen = status(bus.log_dir)  # its owner's view
    assert code == HEALTHY_CODE and seen["status"]["pid"] == recorder.pid
