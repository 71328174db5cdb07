"""The folder's lock file removed from outside while a recorder runs (an `rm` of it, or an
`rm -rf` of the whole folder): a second recorder is still refused, also before the
first one noticed; the first takes a new lock file at once and puts back what the
folder needs; and when another process did lock the new file first, the first recorder
stops in one line rather than both writing the same segment."""

from __future__ import annotations

import collections
import fcntl
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from recorder.bus.publisher import Publisher
from recorder.daemon.wakeup import poke
from tests.support import Bus, journal_records, read_status, wait_for


def texts(log_dir: Path) -> list[str]:
    return [
        r["frames"][1]["json"]["text"]
        for r in journal_records(log_dir)
        if r["kind"] == "msg" and r["topic"] == "agents.x"
    ]


def record(bus: Bus) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "recorder.cli",
            "record",
            "--broker",
            bus.back,
            "--log-dir",
            str(bus.log_dir),
            "--embedded",
            "no",
            "--search-index",
            "off",
            "--monitor",
            "off",
        ],
        capture_output=True,
        text=True,
        timeout=30,  # before 2026-12-07 it was not refused: it recorded beside the first
    )


@pytest.mark.parametrize("removed", ["lock", "folder"])
def test_a_second_recorder_is_refused_after_the_lock_file_is_removed(
    bus: Bus, removed: str
) -> None:
    bus.start_broker()
    rec = bus.start_recorder("--search-index", "off", "--monitor", "off")
    lock = bus.log_dir / "recorder.lock"
    with Publisher(bus.front, agent="x", heartbeat_interval=0) as pub:
        assert pub.wait_ready(5)
        for i in range(10):
            pub.send("agents.x", {"text": f"before {i}"})
        wait_for(lambda: len(texts(bus.log_dir)) == 10, what="ten messages written")
        # the recorder cannot notice before the second one starts: it is stopped
        rec.signal(signal.SIGSTOP)
        try:
            if removed == "lock":
                lock.unlink()
            else:
                shutil.rmtree(bus.log_dir)
            second = record(bus)
        finally:
            rec.signal(signal.SIGCONT)
        assert second.returncode == 1, second.stderr
        (line,) = second.stderr.splitlines()
        assert line.startswith("persist: a recorder is already recording into"), line
        wait_for(
            lambda: lock.exists() and lock.read_text().strip() == str(rec.pid),
            timeout=10,
            what="the recorder to lock a new lock file",
        )
        log = bus.log_dir / "recorder.log"  # (after an rm -rf, made again with that line)
        wait_for(
            lambda: log.exists() and "recorder.lock was" in log.read_text(),
            what="the recorder to say so in a log file of the folder",
        )
        for i in range(10):
            pub.send("agents.x", {"text": f"after {i}"})
        wait_for(lambda: texts(bus.log_dir)[-1:] == ["after 9"], what="ten more written")
    # still refused once it holds the new file
    third = record(bus)
    assert third.returncode == 1 and f"PID {rec.pid}" in third.stderr, third.stderr
    # what the rm took and the recorder needs is there again
    assert os.readlink(bus.log_dir / "current_session.jsonl") == "segments/seg-000001.jsonl"
    wait_for(lambda: (bus.log_dir / "recovery" / "state.json").exists(), what="state.json")
    # clients wake it through a new `control/wake` (before 2026-12-07 none was made again,
    # so each request waited for the recorder's next look, up to 2 s)
    wait_for(lambda: poke(bus.log_dir / "control"), timeout=10, what="a new control/wake")
    rec.signal(signal.SIGTERM)
    assert rec.wait(10) == 0
    expected = [f"before {i}" for i in range(10)] + [f"after {i}" for i in range(10)]
    assert texts(bus.log_dir) == expected
    seqs = collections.Counter(r["seq"] for r in journal_records(bus.log_dir))
    assert [s for s, n in seqs.items() if n > 1] == []
    assert sorted(seqs) == list(range(1, len(seqs) + 1))
    starts = [r for r in journal_records(bus.log_dir) if r.get("event") == "start"]
    assert len(starts) == 1  # one recorder wrote this journal
    assert not [r for r in journal_records(bus.log_dir) if r["kind"] == "gap"]


def test_a_recorder_whose_new_lock_file_another_process_holds_stops(bus: Bus) -> None:
    """Another process that locks the new file without the guard (not Linux, another
    network namespace): the recorder must not go on writing beside it."""
    bus.start_broker()
    rec = bus.start_recorder("--search-index", "off", "--monitor", "off")
    lock = bus.log_dir / "recorder.lock"
    rec.signal(signal.SIGSTOP)
    try:
        lock.unlink()
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, b"4242\n")
    finally:
        rec.signal(signal.SIGCONT)
    try:
        assert rec.wait(10) == 1
    finally:
        os.close(fd)
    lines = [x for x in rec.output().splitlines() if x.startswith("persist: ")]
    assert lines[-1] == (
        "persist: recorder.lock was replaced from outside and PID 4242 has locked the new "
        f"one: this recorder stops, so that only one writes {bus.log_dir}"
    ), lines
    # and it leaves the folder to the other as it is: no stop record, no stopped status
    assert [r for r in journal_records(bus.log_dir) if r.get("event") == "stop"] == []
    assert read_status(bus.log_dir).get("state") == "recording"
