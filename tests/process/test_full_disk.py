"""A full disk is reported, not hidden: degraded within a second or two, recording again
once space returns, and a stop that cannot write what it holds says so and exits 1.

A real size-limited tmpfs (root only; skipped otherwise) under real processes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from tests.process.test_stalls import fill, small_disk, start, stream
from tests.support import Bus, journal_records, wait_for


def status(log_dir: Path) -> tuple[int, dict]:
    out = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "status", "--json", "--log-dir", str(log_dir)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return out.returncode, orjson.loads(out.stdout)


def test_a_full_disk_is_degraded_with_its_reason_then_recording_again(
    bus: Bus, tmp_path: Path
) -> None:
    with small_disk(tmp_path / "disk", 16) as disk:
        bus.log_dir = disk / "logs"
        start(bus)
        s = stream(bus, rate=1000, seconds=9)
        time.sleep(1.0)
        fill(disk / "filler")
        t_full = time.monotonic()
        _code, report = wait_for(
            lambda: (r := status(bus.log_dir))[0] == 6 and r,
            timeout=10,
            what="status to say degraded",
        )  # type: ignore[misc]
        noticed = time.monotonic() - t_full
        assert "cannot write its journal" in report["reason"]
        assert "No space left" in report["status"]["disk_error"]
        (disk / "filler").unlink()
        t_free = time.monotonic()
        _code, report = wait_for(
            lambda: (r := status(bus.log_dir))[0] == 0 and r,
            timeout=10,
            what="status to say healthy again",
        )  # type: ignore[misc]
        resumed = time.monotonic() - t_free
        assert report["status"]["disk_error"] is None
        assert report["status"]["last_error"] is None  # no longer current
        sent = s.finish()
        wait_for(
            lambda: status(bus.log_dir)[1]["status"]["counts"]["written"] >= sent,
            timeout=30,
            what="every message written",
        )
        assert bus.recorder is not None
        bus.recorder.signal(signal.SIGTERM)
        assert bus.recorder.wait(10) == 0
        seqs = [
            r["frames"][1]["json"]["_persist"]["seq"]
            for r in journal_records(bus.log_dir)
            if r["kind"] == "msg" and r["topic"] == "agents.steady"
        ]
        assert sorted(seqs) == list(range(1, sent + 1))  # nothing lost meanwhile
    print(f"\ndegraded {noticed:.2f} s after the disk filled, healthy {resumed:.2f} s after")


def test_a_stop_that_cannot_write_what_it_holds_says_so_and_exits_1(
    bus: Bus, tmp_path: Path
) -> None:
    with small_disk(tmp_path / "disk", 16) as disk:
        bus.log_dir = disk / "logs"
        start(bus)
        s = stream(bus, rate=1000, seconds=3)
        time.sleep(0.5)
        fill(disk / "filler")
        wait_for(lambda: status(bus.log_dir)[0] == 6, timeout=10, what="degraded")
        s.finish()
        assert bus.recorder is not None
        bus.recorder.signal(signal.SIGTERM)
        assert bus.recorder.wait(20) == 1  # not a clean stop: a supervisor restarts it
        assert "NOT a clean stop" in bus.recorder.output()
        code, report = status(bus.log_dir)
        assert code == 3 and report["status"]["state"] == "stopped"
        assert "stopped without writing everything" in report["status"]["last_error"]["message"]
        (disk / "filler").unlink()
        # the next start says the previous one did not stop cleanly
        bus.start_recorder()
        bus.recorder.signal(signal.SIGTERM)
        assert bus.recorder.wait(10) == 0
        downs = [
            r
            for r in journal_records(bus.log_dir)
            if r["kind"] == "gap" and r["cause"] == "recorder-down"
        ]
        assert downs and downs[-1]["clean_stop"] is False
