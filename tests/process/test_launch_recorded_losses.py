"""A checkpoint whose range holds a recorded gap (a loss the journal wrote down, not
damage): `persist restore` says "losses recorded" and exits 0; the launcher must say the
same, not "with problems", and the agent gets PERSIST_RESTORE_VERIFIED=1 (the range
matches the checkpoint digest). Real recorder, `persist restore` and `persist launch`."""

from __future__ import annotations

import io
import json
import signal
import subprocess
from pathlib import Path

import pytest

from recorder.bus.publisher import Publisher
from recorder.launch.launcher import PersistenceLauncher
from recorder.launch.selection import Selection
from tests.process.test_launcher import run_launch
from tests.support import PYTHON, Bus, endpoints, read_status, wait_for

pytestmark = pytest.mark.timeout(180)


def _written(log_dir: Path) -> int:
    return int((read_status(log_dir).get("counts") or {}).get("written", 0))


def _journal_with_a_recorded_gap(bus: Bus) -> str:
    """Messages, a SIGKILL (the restart writes a `recorder-down` gap), more messages and
    a checkpoint; the recorder stopped. Returns the checkpoint's id."""
    bus.start_broker()
    for run in ("before", "after"):
        rec = bus.start_recorder()
        with Publisher(bus.front, agent="a", heartbeat_interval=0) as pub:
            assert pub.wait_ready(5)
            for i in range(3):
                pub.send("agents.a", {"text": f"{run} {i}"})
        wait_for(lambda: _written(bus.log_dir) >= 3, what="written")  # this run's
        if run == "before":
            rec.signal(signal.SIGKILL)
            rec.wait(5)
    out = subprocess.run(
        [PYTHON, "-m", "recorder.cli", "checkpoint", "--log-dir", str(bus.log_dir), "--json"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert bus.recorder is not None
    bus.recorder.signal(signal.SIGTERM)
    assert bus.recorder.wait(10) == 0
    return str(json.loads(out.stdout)["id"])


def test_launcher_says_losses_recorded_as_restore_does(bus: Bus, tmp_path: Path) -> None:
    cp = _journal_with_a_recorded_gap(bus)
    restore = subprocess.run(
        [PYTHON, "-m", "recorder.cli", "restore", "--log-dir", str(bus.log_dir), cp],
        capture_output=True,
        text=True,
    )
    assert restore.returncode == 0, restore.stderr
    assert "integrity   losses recorded" in restore.stdout and "warning: 1 gap" in restore.stdout

    # the agent started by `persist launch` (the bundle built while the recorder starts)
    report = tmp_path / "report.json"
    proc = run_launch(
        bus.log_dir, endpoints(), "--no-tty-policy", "latest", agent_args=[str(report)]
    )
    _out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    env = json.loads(report.read_text())["env"]
    assert env["PERSIST_CHECKPOINT"] == cp and env["PERSIST_RESTORE_VERIFIED"] == "1"
    assert "with problems" not in err
    assert f"restoring {cp}: losses recorded: 1 gap (listed in " in err, err

    # chosen in the menu (the bundle built then)
    eps = endpoints()
    stderr = io.StringIO()
    pl = PersistenceLauncher(
        bus.log_dir,
        embedded="yes",
        interactive=True,
        picker=lambda *_a: Selection.from_json({"kind": "checkpoint", "checkpoint_id": cp}),
        stderr=stderr,
        **eps,  # type: ignore[arg-type]
    )
    try:
        res = pl.on_agent_connected("menu")
        assert res.kind == "checkpoint" and res.verified is True
        said = stderr.getvalue()
        assert "with problems" not in said
        assert f"restoring {cp}: losses recorded: 1 gap (listed in " in said, said
    finally:
        pl.on_agent_exit()
