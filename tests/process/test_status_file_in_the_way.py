"""A folder where `status.json` goes while a recorder records: `persist status` says it
runs and that its status file is unusable, `persist stop` stops it, the recorder says
so once in its log, and doctor names the command that clears the way (real CLI, a
real recorder)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import orjson
import pytest

from recorder.store.layout import Layout
from tests.support import Bus, Proc, run_cli, status_json, wait_for

pytestmark = pytest.mark.timeout(120)

HEALTHY_CODE, DEGRADED_CODE = 0, 6  # recorder/cli/main.py


persist = run_cli


def findings(log_dir: Path) -> dict[str, dict]:
    done = persist("doctor", "--json", "--dir", str(log_dir))
    return {f["check"]: f for f in orjson.loads(done.stdout)["findings"]}


def said(recorder: Proc, log_dir: Path, words: str) -> int:
    """How many lines of the recorder's output and recorder.log hold `words`."""
    text = recorder.output()
    log = log_dir / "recorder.log"
    if log.exists():
        text += log.read_text(errors="replace")
    return sum(words in line for line in text.splitlines())


def test_a_folder_at_status_json_is_named_and_the_recorder_still_stopped(bus: Bus) -> None:
    bus.start_broker()
    recorder = bus.start_recorder()
    layout = Layout(bus.log_dir)
    layout.status.unlink()
    layout.status.mkdir(mode=0o700)
    # the recorder writes its status to status.reserve meanwhile: running, and the
    # status file named (before 2026-12-07: "STOPPED: status.json is unreadable", exit 3)
    code, out = wait_for(
        lambda: (r := status_json(bus.log_dir))[1].get("warnings") and r,
        timeout=20,
        what="status names the status file",
    )  # type: ignore[misc]
    assert code == HEALTHY_CODE and out["health"] == "healthy", out
    assert out["status"]["pid"] == recorder.pid
    assert any("status.json is unusable" in w for w in out["warnings"]), out
    # said once in the recorder's log, however many seconds it goes on
    wait_for(lambda: said(recorder, bus.log_dir, "cannot write") == 1, what="log line")
    time.sleep(2.5)
    assert said(recorder, bus.log_dir, "cannot write") == 1
    # doctor names a fix that works: the command that moves it out of the way
    found = findings(bus.log_dir)["service.status-file"]
    move = f"mv {layout.status} {layout.status}.aside"
    assert found["severity"] == "warning" and found["fix"] == move, found
    assert f"PID {recorder.pid}" in found["summary"]
    assert subprocess.run(move, shell=True, check=False).returncode == 0
    wait_for(lambda: layout.status.is_file(), what="status.json written again")
    assert "service.status-file" not in findings(bus.log_dir)
    wait_for(lambda: said(recorder, bus.log_dir, "is written again") == 1, what="log line")

    # once more in the way: `persist stop` stops it (before: "no recorder running")
    layout.status.rename(bus.log_dir / "status.json.old")
    layout.status.mkdir(mode=0o700)
    wait_for(lambda: status_json(bus.log_dir)[1].get("warnings"), timeout=20, what="named again")
    done = persist("stop", "--log-dir", str(bus.log_dir))
    assert done.returncode == 0 and f"recorder PID {recorder.pid} stopped" in done.stdout, done
    assert recorder.popen.wait(10) is not None


def test_without_its_reserve_the_folder_lock_says_it_runs(bus: Bus) -> None:
    """No status.reserve either (removed): the recorder holding recorder.lock is named
    as running, degraded, with the command that clears the way; stop stops it."""
    bus.start_broker()
    recorder = bus.start_recorder()
    layout = Layout(bus.log_dir)
    layout.status_reserve.unlink()
    layout.status.unlink()
    layout.status.mkdir(mode=0o700)
    code, out = status_json(bus.log_dir)
    assert code == DEGRADED_CODE and out["health"] == "degraded", out
    assert f"recorder PID {recorder.pid} holds the folder" in out["reason"]
    assert f"mv {layout.status} {layout.status}.aside" in out["reason"]
    found = findings(bus.log_dir)
    assert found["service.degraded"]["fix"] == f"mv {layout.status} {layout.status}.aside"
    done = persist("stop", "--log-dir", str(bus.log_dir))
    assert done.returncode == 0 and f"recorder PID {recorder.pid} stopped" in done.stdout, done
    assert recorder.popen.wait(10) is not None
