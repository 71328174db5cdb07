"""Receive stalls under a steady stream: a stopped recorder and a full disk lose nothing.

Real `persist broker` and `persist record` processes; the publisher sends with the
envelope from a thread of the test, so every sequence number can be looked up in the
journal afterwards. Rates and lengths are small (a CI machine): they exercise the
mechanisms, `bench/stall.py` measures the full figures.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from recorder.bus.publisher import Publisher
from tests.support import PYTHON, Bus, journal_records, read_status, wait_for


class Stream(threading.Thread):
    """`rate` messages a second with the envelope, for `seconds`."""

    def __init__(self, endpoint: str, rate: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.pub = Publisher(endpoint, agent="steady", heartbeat_interval=0.5)
        self.rate, self.count = rate, int(rate * seconds)
        self.started = threading.Event()

    def run(self) -> None:
        text = "x" * 250
        t0 = time.monotonic()
        self.started.set()
        for i in range(self.count):
            self.pub.send("agents.steady", {"text": text})
            ahead = t0 + (i + 1) / self.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)

    def finish(self) -> int:
        self.join(60)
        self.pub.close()  # the final heartbeat announces the last sequence number
        return self.count


def start(bus: Bus, *extra: str) -> None:
    bus.start_broker()
    bus.start_recorder(*extra)


def stream(bus: Bus, rate: int, seconds: float) -> Stream:
    s = Stream(bus.front, rate, seconds)
    assert s.pub.wait_ready(5)
    s.start()
    s.started.wait(5)
    return s


def stop_and_read(bus: Bus, sent: int) -> tuple[list[int], list[dict], list[dict]]:
    """Once every sent message is accounted for: (seqs kept, gap records, events)."""

    def settled() -> bool:
        counts = read_status(bus.log_dir).get("counts") or {}
        return int(counts.get("written", 0)) + int(counts.get("missed", 0)) >= sent

    assert bus.recorder is not None
    with contextlib.suppress(AssertionError):
        wait_for(settled, timeout=30, what="every message written or counted as lost")
    assert bus.recorder.popen.poll() is None, f"the recorder died:\n{bus.recorder.output()}"
    bus.recorder.signal(signal.SIGTERM)
    assert bus.recorder.wait(10) == 0
    assert "Assertion failed" not in bus.recorder.output()
    records = journal_records(bus.log_dir)
    seqs = [
        r["frames"][1]["json"]["_persist"]["seq"]
        for r in records
        if r["kind"] == "msg" and r["topic"] == "agents.steady"
    ]
    gaps = [r for r in records if r["kind"] == "gap" and r["cause"] != "recorder-down"]
    events = [r for r in records if r["kind"] == "event"]
    return seqs, gaps, events


def test_a_5s_sigstop_under_a_steady_stream_loses_nothing(bus: Bus) -> None:
    # The broker used to drop a recorder that said nothing for 3 heartbeats (the
    # HEARTBEAT_TTL we asked for), and the messages it queued for it with it.
    start(bus)
    assert bus.recorder is not None
    s = stream(bus, rate=2000, seconds=7.5)
    time.sleep(1.0)
    bus.recorder.signal(signal.SIGSTOP)
    try:
        time.sleep(5.0)
    finally:
        bus.recorder.signal(signal.SIGCONT)
    sent = s.finish()
    seqs, gaps, events = stop_and_read(bus, sent)
    assert sorted(seqs) == list(range(1, sent + 1))
    assert gaps == []
    assert [e["event"] for e in events if e["event"] == "disconnected"] == []


@contextlib.contextmanager
def small_disk(where: Path, mb: int, inodes: int | None = None) -> Iterator[Path]:
    """A real tmpfs of `mb` MiB (and `inodes` files) mounted at `where` (root only)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a size-limited tmpfs (a real full disk)")
    where.mkdir()
    opts = f"size={mb}m,mode=0700" + (f",nr_inodes={inodes}" if inodes else "")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: Path) -> None:
    """Write to `path` until the file system is full."""
    with open(path, "ab", buffering=0) as f:
        for size in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * size)


def hold_full(disk: Path, seconds: float) -> None:
    """Keep the disk full for `seconds` (the recorder frees small temp files), then free it."""
    filler = disk / "filler"
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        fill(filler)
        time.sleep(0.1)
    filler.unlink()


def full_disk_run(
    bus: Bus, tmp_path: Path, seconds: float, *extra: str
) -> tuple[int, list[int], list[dict], list[dict]]:
    with small_disk(tmp_path / "disk", 64) as disk:
        bus.log_dir = disk / "logs"
        start(bus, *extra)
        s = stream(bus, rate=2000, seconds=seconds + 2.5)
        time.sleep(1.0)
        hold_full(disk, seconds)
        sent = s.finish()
        seqs, gaps, events = stop_and_read(bus, sent)
        return sent, seqs, gaps, events


def test_a_full_disk_under_a_steady_stream_loses_nothing_and_never_aborts(
    bus: Bus, tmp_path: Path
) -> None:
    # Longer than the 3 s heartbeat timeout: a receiver that stopped reading was
    # dropped by its own heartbeat timeout, and libzmq aborted on the reconnect.
    sent, seqs, gaps, events = full_disk_run(bus, tmp_path, 5.0)
    assert sorted(seqs) == list(range(1, sent + 1))
    assert gaps == []
    assert [e for e in events if e["event"] == "disconnected"] == []


def test_beyond_the_backlog_budget_messages_are_dropped_into_a_gap_and_reading_goes_on(
    bus: Bus, tmp_path: Path
) -> None:
    # A 1 MiB budget is exceeded within a second: the receiver must keep reading
    # (the connection stays up, nothing aborts), and every message is either in the
    # journal or counted by exactly one `recorder-backlog` gap.
    sent, seqs, gaps, events = full_disk_run(bus, tmp_path, 5.0, "--max-backlog-mb", "1")
    assert len(set(seqs)) == len(seqs)
    missing = sent - len(seqs)
    assert missing > 0
    # One gap per time the budget was exceeded (the disk may catch up a little in
    # between, on a loaded machine): their windows never overlap, and together they
    # count every message missing from the journal, once.
    assert gaps and {g["cause"] for g in gaps} == {"recorder-backlog"}
    assert sum(g["missed"] for g in gaps) == missing
    windows = sorted((g["from_ts"], g["to_ts"]) for g in gaps)
    assert all(a[1] <= b[0] for a, b in pairwise(windows))
    assert [e for e in events if e["event"] == "disconnected"] == []


DYING_PUBLISHER = """
import sys, time
from recorder.bus.publisher import Publisher
pub = Publisher(sys.argv[1], agent="dying", heartbeat_interval=30)
assert pub.wait_ready(5)
pub.heartbeat()  # it follows the protocol: the recorder watches its tail
for n in range(10):
    pub.send("agents.dying", {"text": f"message {n}"})
print(pub.id, flush=True)
time.sleep(120)
"""


def test_a_publisher_killed_before_confirming_its_last_messages_gets_a_publisher_silent_gap(
    bus: Bus,
) -> None:
    # Killed with messages no heartbeat confirmed (some may still have been in its
    # socket), or its burst's tail and goodbyes dropped on a full broker queue: nothing
    # later would show a loss, so the recorder writes down the silence (it said nothing).
    start(bus, "--unconfirmed-after", "2")
    dying = subprocess.Popen(
        [PYTHON, "-c", DYING_PUBLISHER, bus.front], stdout=subprocess.PIPE, text=True
    )
    try:
        assert dying.stdout is not None
        pub_id = dying.stdout.readline().strip()
        wait_for(lambda: read_status(bus.log_dir)["counts"]["written"] >= 10, what="10 messages")
    finally:
        dying.kill()
        dying.wait(10)

    def silent() -> list[dict]:
        records = journal_records(bus.log_dir)
        return [r for r in records if r["kind"] == "gap" and r["cause"] == "publisher-silent"]

    (gap,) = wait_for(silent, timeout=30, what="a publisher-silent gap")  # type: ignore[misc]
    assert (gap["publisher"], gap["agent"], gap["last_seq"], gap["confirmed_seq"]) == (
        pub_id,
        "dying",
        10,
        0,
    )
    # the status is written at its interval: it may name the gap a moment after the journal
    wait_for(
        lambda: read_status(bus.log_dir)["counts"]["unconfirmed"] == 1,
        what="the status counting the unconfirmed messages",
    )
    counts = read_status(bus.log_dir)["counts"]
    assert counts["unconfirmed"] == 1 and counts["gaps"] == 0
    shown = subprocess.run(
        [PYTHON, "-m", "recorder.cli", "status", "--log-dir", str(bus.log_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "unconfirmed  1 this run: publishers fell silent" in shown.stdout
