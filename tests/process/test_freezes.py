"""Frozen processes (SIGSTOP) on a busy bus: the recorder under a 20k msgs/s burst, and
the broker. Every message sent is in the journal or in a gap record; a frozen broker
is never reported healthy once the recorder has noticed it.

Quick variants run in CI; `PERSIST_FAULT_ROUNDS` of 50 or more runs the long ones
(a 10 s burst with a 5 s stop, a 12 s broker freeze). Figures in RELIABILITY.md.
"""

from __future__ import annotations

import signal
import threading
import time

import pytest

from recorder.bus.publisher import Publisher
from recorder.store.layout import Layout
from recorder.store.status import DEGRADED, HEALTHY, assess
from tests.process.test_faults import ROUNDS, SteadyPublisher, every_line, stop_and_account
from tests.support import Bus, read_status, wait_for

LONG = ROUNDS >= 50
pytestmark = pytest.mark.timeout(240)


class Burst(threading.Thread):
    """`rate` messages a second with the envelope for `seconds`, paced every 2 ms."""

    def __init__(self, endpoint: str, rate: int, seconds: float) -> None:
        super().__init__(name="burst", daemon=True)
        self.pub = Publisher(endpoint, agent="steady", heartbeat_interval=0.2)
        self.rate, self.count = rate, int(rate * seconds)
        self.elapsed = 0.0
        self.started = threading.Event()
        self.error: BaseException | None = None  # as SteadyPublisher (stop_and_account)

    @property
    def last_seq(self) -> int:
        return self.pub.seq

    def run(self) -> None:
        step = max(1, self.rate // 500)
        send = self.pub.send
        t0 = time.perf_counter()
        self.started.set()
        for i in range(0, self.count, step):
            for _ in range(min(step, self.count - i)):
                send("agents.steady", {"text": "burst"})
            ahead = t0 + (i + step) / self.rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
        self.elapsed = time.perf_counter() - t0


def test_recorder_stopped_during_a_20k_burst_loses_nothing_unaccounted(bus: Bus) -> None:
    burst_s, stop_s = (10.0, 5.0) if LONG else (3.0, 2.0)
    bus.start_broker()
    recorder = bus.start_recorder()
    burst = Burst(bus.front, 20_000, burst_s)
    assert burst.pub.wait_ready(10)
    burst.start()
    burst.started.wait(5)
    time.sleep(burst_s / 4)
    recorder.signal(signal.SIGSTOP)
    try:
        time.sleep(stop_s)
    finally:
        recorder.signal(signal.SIGCONT)
    burst.join(120)
    burst.pub.close()  # its last heartbeats ("bye") announce the last sequence number
    sent = burst.count
    rate = sent / burst.elapsed
    gaps = stop_and_account(bus, recorder, burst)
    records, _ = every_line(bus.log_dir)
    kept = sum(1 for r in records if r["kind"] == "msg" and r["topic"] == "agents.steady")
    lost = sum(g["missed"] for g in gaps if g.get("from_seq"))
    assert kept + lost == sent
    print(
        f"\n{sent} messages at {rate:,.0f} msgs/s, recorder stopped {stop_s:g} s: "
        f"{kept} kept, {lost} lost (each in a gap)"
    )
    assert "Assertion failed" not in recorder.output()


def test_a_frozen_broker_is_never_healthy_once_noticed_and_recording_resumes(bus: Bus) -> None:
    freeze_s = 12.0 if LONG else 6.0
    broker = bus.start_broker()
    recorder = bus.start_recorder()
    publisher = SteadyPublisher(bus.front, rate=500)
    publisher.start()
    layout = Layout(bus.log_dir)
    samples: list[tuple[float, str]] = []
    try:
        time.sleep(1.0)
        broker.signal(signal.SIGSTOP)
        t0 = time.monotonic()
        try:
            while (elapsed := time.monotonic() - t0) < freeze_s:
                samples.append((elapsed, assess(layout).state))
                time.sleep(0.1)
        finally:
            broker.signal(signal.SIGCONT)
        wait_for(
            lambda: read_status(bus.log_dir).get("connection") == "connected",
            timeout=20,
            what="the recorder reconnected after SIGCONT",
        )
        wait_for(lambda: assess(layout).state == HEALTHY, timeout=10, what="healthy again")
        time.sleep(1.5)  # the publisher's next messages show any hole
    finally:
        publisher.stopping.set()
        publisher.join(10)
    degraded_at = next((t for t, state in samples if state == DEGRADED), None)
    assert degraded_at is not None, samples
    # The 3 s ZMTP heartbeat timeout notices the freeze; from then on, never healthy.
    after = [(t, state) for t, state in samples if t >= degraded_at]
    assert all(state != HEALTHY for _, state in after), after
    assert degraded_at < 5.0, samples
    gaps = stop_and_account(bus, recorder, publisher)
    outages = [g for g in gaps if g["cause"] == "broker-outage"]
    assert len(outages) == 1
    records, _ = every_line(bus.log_dir)
    resumed = [
        r
        for r in records
        if r["kind"] == "msg" and r["topic"] == "agents.steady" and r["ts"] > outages[0]["to_ts"]
    ]
    assert resumed  # recording went on after SIGCONT
    print(f"\nbroker frozen {freeze_s:g} s: degraded {degraded_at:.1f} s after the freeze")
