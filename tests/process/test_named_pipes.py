"""A named pipe (or a device) where the recorder keeps a derived file it reads back:
`status.json`, `status.reserve`, `recovery/state.json`. Opening one to read waits for
a writer that never comes: every reader names it as not a regular file instead, and
the recorder starts over it (its writes replace it with a regular file)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import orjson
import pytest

from tests.demo_journal import DemoClock, DemoWriter
from tests.support import Bus, run_cli, wait_for

pytestmark = pytest.mark.timeout(120)

T0 = 1_800_000_000.0


persist = run_cli


def _journal(root: Path) -> None:
    w = DemoWriter.open(root, clock=DemoClock(T0))
    for i in range(20):
        w.message(T0 + i, "coder", f"message {i}")
    w.checkpoint(T0 + 30, "first", "manual")
    w.close()


@pytest.mark.parametrize("name", ["status.json", "status.reserve", "recovery/state.json"])
def test_status_and_doctor_name_a_named_pipe_and_never_wait_on_it(
    tmp_path: Path, name: str
) -> None:
    """`persist status` and `persist doctor` opened status.json (and status.reserve)
    with a blocking open, and doctor recovery/state.json too: a named pipe there held
    them forever. Now each is said to be no regular file, in one line."""
    root = tmp_path / "logs"
    _journal(root)
    (root / "recovery").mkdir(exist_ok=True)
    os.mkfifo(root / name, 0o600)
    status = persist("status", "--log-dir", str(root))
    assert status.returncode == 3, status  # stopped
    doctor = persist("doctor", "--log-dir", str(root))
    assert doctor.returncode in (0, 8), doctor  # warnings only: derived files
    assert "Traceback" not in status.stderr + doctor.stderr
    unreadable = "status.json is unreadable: a named pipe, not a regular file"
    if name == "status.json":
        assert status.stdout.startswith(f"STOPPED: {unreadable}\n"), status.stdout
        assert f"warning  service      {unreadable} (derived: --fix" in doctor.stdout, doctor
    elif name == "recovery/state.json":
        assert "warning  caches       recovery/state.json is not a regular file (a restart" in (
            doctor.stdout
        ), doctor.stdout
    else:
        assert "unreadable" not in status.stdout + doctor.stdout
    fixed = persist("doctor", "--fix", "--log-dir", str(root))
    assert "Traceback" not in fixed.stderr and fixed.returncode in (0, 8), fixed
    if name != "status.reserve":  # moved aside (the reserve is rewritten at start)
        assert not os.path.lexists(root / name)


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return False


def test_a_recorder_starts_over_named_pipes_for_its_state_and_status(bus: Bus) -> None:
    """The recorder read recovery/state.json (and status.json) at start with a blocking
    open: a named pipe there, it never started. Now it ignores them, starts, and
    replaces them with regular files as it writes them."""
    _journal(bus.log_dir)
    (bus.log_dir / "recovery").mkdir(exist_ok=True)
    for name in ("status.json", "recovery/state.json"):
        os.mkfifo(bus.log_dir / name, 0o600)
    bus.start_broker()
    recorder = bus.start_recorder(wait=False)
    wait_for(lambda: _regular(bus.log_dir / "status.json"), timeout=30, what="status.json")
    status = wait_for(
        lambda: (
            (out := persist("status", "--json", "--log-dir", str(bus.log_dir))).returncode == 0
            and orjson.loads(out.stdout)
        ),
        timeout=30,
        what="recorder healthy",
    )
    assert status["status"]["pid"] == recorder.pid, status  # type: ignore[index]
    stop = persist("stop", "--log-dir", str(bus.log_dir))
    assert stop.returncode == 0, stop
    assert _regular(bus.log_dir / "recovery" / "state.json")


def test_a_named_pipe_among_the_checkpoints_is_skipped_never_waited_on(tmp_path: Path) -> None:
    """A checkpoint file was read with a blocking open: a named pipe in checkpoints/
    held status, doctor, checkpoints and restore forever. Now it is skipped, named in
    one warning, as any file that is no valid checkpoint."""
    root = tmp_path / "logs"
    _journal(root)
    name = "20270115T080000Z-000009999-pipe.json"  # newer by its name than every other
    os.mkfifo(root / "checkpoints" / name, 0o600)
    said = f"checkpoints/{name} is not a valid checkpoint (a named pipe, not a regular file)"
    for argv in (["status"], ["doctor"], ["checkpoints"], ["restore", "latest"]):
        out = persist(*argv, "--log-dir", str(root))
        assert out.returncode in (0, 3, 8), (argv, out)
        assert said in out.stdout + out.stderr and "Traceback" not in out.stderr, (argv, out)


@pytest.mark.parametrize("name", ["sessions/monitor-status.json", "hooks/failures.jsonl"])
def test_status_never_waits_on_a_named_pipe_for_the_monitors_status_or_hook_failures(
    tmp_path: Path, name: str
) -> None:
    """`persist status` also reads the session monitor's status and the hooks' failure
    file, each with a blocking open: a named pipe there held it forever. Now such a
    file is passed over as one that is not there."""
    root = tmp_path / "logs"
    _journal(root)
    (root / name).parent.mkdir(exist_ok=True)
    os.mkfifo(root / name, 0o600)
    status = persist("status", "--log-dir", str(root))
    assert status.returncode == 3 and "Traceback" not in status.stderr, status
    assert "hook failures" not in status.stdout
