"""A stop while the receiver still journals a backlog: the recorder waits for it, writes
everything it took in, and stops cleanly (it went on after 2 s, closed the journal under
the receiver, and then retried a write into the closed journal forever)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import zmq

from recorder.bus import receiver as receiver_mod
from recorder.daemon.core import Recorder
from recorder.daemon.options import EmbeddedMode, RecorderOptions
from recorder.daemon.runner import run_recorder
from recorder.daemon.wakeup import poke
from recorder.store.journal import ABANDON_WAIT, Journal, Position
from recorder.store.layout import Layout
from tests.support import journal_records, read_status, wait_for

COUNT = 400
HELD = 10  # the message whose batch the test holds in the receiver


def _receiver_alive() -> bool:
    return any(t.name == "persist-receiver" and t.is_alive() for t in threading.enumerate())


class _Held:
    """A recorder (run_recorder, in a thread) whose receiver the test holds inside the
    batch of message `HELD` (the slow step), with `COUNT` messages published to it."""

    def __init__(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int = COUNT, **options: Any
    ) -> None:
        self.log_dir = tmp_path / "logs"
        publish = f"ipc://{tmp_path}/pub.ipc"
        self.options = RecorderOptions(
            log_dir=self.log_dir,
            broker=f"ipc://{tmp_path}/sub.ipc",
            publish_endpoint=publish,
            embedded=EmbeddedMode.YES,
            **options,
        )
        # small batches: the backlog is many receives, and a stop comes in the middle
        monkeypatch.setattr(receiver_mod, "_BATCH", 4)
        self.inside, self.release = threading.Event(), threading.Event()
        write_messages = Recorder._write_messages
        inside, release = self.inside, self.release

        def slow(self: Recorder, ts: float, messages: list[list[bytes]], scan: bool) -> int:
            if any(b'"n":%d,' % HELD in m[-1] for m in messages):
                inside.set()  # the slow step: the receiver is busy with this batch ...
                assert release.wait(60)  # ... until the test lets it go on
            return write_messages(self, ts, messages, scan)

        monkeypatch.setattr(Recorder, "_write_messages", slow)
        self.closing: list[bool] = []  # whether the receiver still ran when the journal closed
        close = Recorder.close
        closing = self.closing

        def spy(self: Recorder) -> Position:
            closing.append(_receiver_alive())
            return close(self)

        monkeypatch.setattr(Recorder, "close", spy)
        self.stop, ready = threading.Event(), threading.Event()
        self.result: list[int] = []
        self.main = threading.Thread(
            target=lambda: self.result.append(
                run_recorder(
                    self.options,
                    on_ready=lambda _e: ready.set(),
                    to_stderr=False,
                    stop_event=self.stop,
                )
            ),
            daemon=True,  # (one that hangs must not hang the test run)
        )
        self.main.start()
        self.ctx = zmq.Context()
        pub = self.pub = self.ctx.socket(zmq.XPUB)
        assert ready.wait(20)
        pub.connect(publish)
        assert pub.poll(20_000) and pub.recv()[:1] == b"\x01"  # the recorder subscribed
        for n in range(count):
            pub.send_multipart([b"agents.drain", b'{"n":%d,"text":"backlog"}' % n])
        assert self.inside.wait(20)
        self.stop.set()
        poke(self.log_dir / "control")

    def close(self) -> None:
        self.release.set()
        self.pub.close(linger=0)
        self.ctx.term()

    def numbers(self) -> list[int]:
        records = journal_records(self.log_dir)
        return [r["frames"][1]["json"]["n"] for r in records if r.get("kind") == "msg"]


def test_a_stop_waits_for_the_receiver_to_journal_its_backlog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = _Held(tmp_path, monkeypatch)
    try:
        # the receiver is busy: the stop waits for it (it went on after 2 s)
        held.main.join(4.0)
        assert held.closing == [] and held.main.is_alive()
        assert read_status(held.log_dir)["state"] == "stopping"  # kept fresh meanwhile
        held.release.set()
        held.main.join(30)
        assert not held.main.is_alive(), "the recorder did not stop"
    finally:
        held.close()
    assert held.result == [0]
    assert held.closing == [False]
    records = journal_records(held.log_dir)
    numbers = held.numbers()
    status = read_status(held.log_dir)
    # everything it took in is written, before the stop record
    assert numbers == list(range(len(numbers))) and len(numbers) > HELD
    counts = status["counts"]
    assert len(numbers) == counts["received"] == counts["written"]
    stops = [i for i, r in enumerate(records) if r.get("event") == "stop"]
    assert stops == [len(records) - 1]
    assert status["state"] == "stopped" and status["backlog_bytes"] == 0


def test_a_stop_that_gives_up_goes_on_without_a_receiver_that_does_not_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--stop-wait` counts from the stop's start: past it, and `ABANDON_WAIT` more, the
    stop goes on without a receiver that never ends (never a hang). Held inside its
    batch, it holds the journal: the journal is closed as it is, with no stop record,
    said in one line, exit 1; what the receiver adds after that is dropped, never
    written under the closed journal."""
    held = _Held(tmp_path, monkeypatch, stop_wait=0.5)
    try:
        held.main.join(0.5 + 2 * ABANDON_WAIT + 20)
        assert not held.main.is_alive(), "the stop waited for the receiver for ever"
        assert held.result == [1] and held.closing == []
        before = journal_records(held.log_dir)
        assert read_status(held.log_dir)["state"] == "stopped"
        held.release.set()  # the receiver goes on: what it hands over now is dropped
        wait_for(lambda: not _receiver_alive(), 20, "the receiver's end")
    finally:
        held.close()
    assert journal_records(held.log_dir) == before
    numbers = held.numbers()  # the batches before the held one, in order
    assert numbers == list(range(len(numbers))) and len(numbers) <= HELD
    assert not any(r.get("event") == "stop" for r in before)


def test_a_write_after_the_journal_closed_is_dropped_not_retried_forever(
    tmp_path: Path,
) -> None:
    journal = Journal(Layout(tmp_path / "logs"))
    journal.open()
    journal.sink.start()
    journal.close()
    late = threading.Thread(
        target=lambda: (journal.append({"kind": "event", "event": "late"}), journal.flush()),
        daemon=True,
    )
    late.start()
    late.join(10)
    assert not late.is_alive(), "a write after close retried forever"
    lost: Any = journal.sink.lost
    assert lost is not None and lost.lines == 1


def test_a_stop_takes_in_everything_published_before_it_however_slow_each_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What publishers sent before the stop waits in zmq (the hosted broker's queue, the
    socket's): the stop's drain takes it all in while there is more, not 0.3 s of it
    (a hook's last publish, then its stop of the recorder, lost the rest unseen)."""
    drained: list[int] = []
    write_messages = Recorder._write_messages

    def slow_after_stop(self: Recorder, ts: float, messages: list[list[bytes]], scan: bool) -> int:
        if self._stop_began is not None:  # each batch of the drain takes a while
            drained.append(len(messages))
            threading.Event().wait(0.05)
        return write_messages(self, ts, messages, scan)

    monkeypatch.setattr(Recorder, "_write_messages", slow_after_stop)
    held = _Held(tmp_path, monkeypatch, count=100)
    try:
        held.release.set()
        held.main.join(60)
        assert not held.main.is_alive()
    finally:
        held.close()
    assert held.result == [0]
    assert held.numbers() == list(range(100))
    assert sum(drained) > 4 * 6  # more than 0.3 s of slow batches took
