"""The recorder's background thread waits while other processes keep every core busy
(`priority.OtherWork`): nice values do not reach across sessions where Linux groups
processes by session, so the thread measures instead of trusting its priority."""

from __future__ import annotations

import time
from pathlib import Path

from recorder.daemon.priority import MIN_LOOK, OtherWork
from recorder.store.layout import list_segments
from tests.unit.test_daemon import Clock, feed, make, wait_compressed


class Machine:
    """CPU seconds as `cpu_seconds` reads them: (whole machine busy, this process)."""

    def __init__(self) -> None:
        self.busy = 1000.0
        self.own = 10.0

    def run(self, seconds: float, others: float, own: float = 0.0) -> None:
        """`seconds` of wall time with `others` and `own` cores busy."""
        self.busy += (others + own) * seconds
        self.own += own * seconds

    def __call__(self) -> tuple[float, float]:
        return self.busy, self.own


def test_other_work_is_measured_between_looks_without_our_own() -> None:
    machine, clock = Machine(), Clock(0.0)
    work = OtherWork(read=machine, clock=clock, cores=2)
    assert work.busy()  # nothing to compare yet: look again later
    clock.now += 1.0
    machine.run(1.0, others=1.9)  # two bundle workers, say
    assert work.busy()
    clock.now += 1.0
    machine.run(1.0, others=0.5, own=1.5)  # our own compression does not count
    assert not work.busy()
    clock.now += MIN_LOOK / 2
    machine.run(MIN_LOOK / 2, others=2.0)  # too soon to measure: the last answer stands
    assert not work.busy()
    clock.now += 1.0
    machine.run(1.0, others=1.0)  # one core left idle: enough
    assert not work.busy()
    clock.now += 1.0
    machine.run(1.0, others=1.3)  # less than IDLE_CORE of one left
    assert work.busy()


def test_with_a_window_a_look_after_a_long_rest_says_busy_until_it_measures_now() -> None:
    """The search indexer sleeps between rounds: one look over a quiet rest and the
    first second of a flood saw a quiet machine, and it indexed into the flood."""
    machine, clock = Machine(), Clock(0.0)
    work = OtherWork(read=machine, clock=clock, cores=2, window=1.0)
    assert work.busy()  # the first look
    clock.now += 0.5
    machine.run(0.5, others=0.2)
    assert not work.busy()
    clock.now += 7.0
    machine.run(6.0, others=0.1)  # a rest of the indexer's
    machine.run(1.0, others=1.9)  # a flood begins
    assert work.busy()  # 7 s since the last look: not a measure of now
    clock.now += 0.5
    machine.run(0.5, others=1.9)
    assert work.busy()  # measured over the last 0.5 s: the flood
    clock.now += 0.5
    machine.run(0.5, others=0.3)
    assert not work.busy()
    without = OtherWork(read=machine, clock=clock, cores=2)
    without.busy()
    clock.now += 7.0
    machine.run(6.0, others=0.1)
    machine.run(1.0, others=1.9)
    assert not without.busy()  # averaged over the rest: what the window is for


def test_background_work_waits_while_other_processes_keep_every_core_busy(
    tmp_path: Path,
) -> None:
    clock = Clock()
    rec = make(tmp_path, clock, segment_bytes=1 << 20, compress=True)
    body = b'{"text": "' + b"x" * 2000 + b'"}'
    for _chunk in range(15):
        feed(rec, clock, *[[b"agents.t", body] for _ in range(100)])
    closed = len(list_segments(rec.layout)) - 1
    assert closed >= 2 and not rec.busy()
    machine_busy = [True]
    rec.warmer.others_busy = lambda: machine_busy[0]
    rec.warmer.start(rec.journal.written.segment)
    time.sleep(1.5)  # three looks
    assert not any(p.name.endswith(".zst") for p in list_segments(rec.layout))
    machine_busy[0] = False
    wait_compressed(rec, closed)
    rec.warmer.stop(timeout=30)
    segments = list_segments(rec.layout)
    assert [p.name.endswith(".zst") for p in segments] == [True] * closed + [False]
    rec.close()
