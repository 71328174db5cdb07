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
from recorder.store.journal import Journal, Position
from recorder.store.layout import Layout
from tests.support import journal_records, read_status

COUNT = 400
HELD = 10  # the message whose batch the test holds in the receiver


def _receiver_alive() -> bool:
    return any(t.name == "persist-receiver" and t.is_alive() for t in threading.enumerate())


def test_a_stop_waits_for_the_receiver_to_journal_its_backlog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_dir = tmp_path / "logs"
    publish = f"ipc://{tmp_path}/pub.ipc"
    options = RecorderOptions(
        log_dir=log_dir,
        broker=f"ipc://{tmp_path}/sub.ipc",
        publish_endpoint=publish,
        embedded=EmbeddedMode.YES,
    )
    # small batches: the backlog is many receives, and a stop comes in the middle of it
    monkeypatch.setattr(receiver_mod, "_BATCH", 4)
    inside, release = threading.Event(), threading.Event()
    write_messages = Recorder._write_messages

    def slow(self: Recorder, ts: float, messages: list[list[bytes]], scan: bool) -> int:
        if any(b'"n":%d,' % HELD in m[-1] for m in messages):
            inside.set()  # the slow step: the receiver is busy with this batch ...
            assert release.wait(60)  # ... until the test lets it go on
        return write_messages(self, ts, messages, scan)

    monkeypatch.setattr(Recorder, "_write_messages", slow)
    closing: list[bool] = []  # whether the receiver still ran when the journal closed
    close = Recorder.close

    def spy(self: Recorder) -> Position:
        closing.append(_receiver_alive())
        return close(self)

    monkeypatch.setattr(Recorder, "close", spy)
    stop, ready = threading.Event(), threading.Event()
    result: list[int] = []
    main = threading.Thread(
        target=lambda: result.append(
            run_recorder(options, on_ready=lambda _e: ready.set(), to_stderr=False, stop_event=stop)
        ),
        daemon=True,  # (one that hangs must not hang the test run)
    )
    main.start()
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    try:
        assert ready.wait(20)
        pub.connect(publish)
        assert pub.poll(20_000) and pub.recv()[:1] == b"\x01"  # the recorder subscribed
        for n in range(COUNT):
            pub.send_multipart([b"agents.drain", b'{"n":%d,"text":"backlog"}' % n])
        assert inside.wait(20)
        stop.set()
        poke(log_dir / "control")
        # the receiver is busy: the stop waits for it (it went on after 2 s)
        main.join(4.0)
        assert closing == [] and main.is_alive()
        assert read_status(log_dir)["state"] == "stopping"  # kept fresh meanwhile
        release.set()
        main.join(30)
        assert not main.is_alive(), "the recorder did not stop"
    finally:
        release.set()
        pub.close(linger=0)
        ctx.term()
    assert result == [0]
    assert closing == [False]
    records = journal_records(log_dir)
    numbers = [r["frames"][1]["json"]["n"] for r in records if r.get("kind") == "msg"]
    status = read_status(log_dir)
    # everything it took in is written, before the stop record
    assert numbers == list(range(len(numbers))) and len(numbers) > HELD
    counts = status["counts"]
    assert len(numbers) == counts["received"] == counts["written"]
    stops = [i for i, r in enumerate(records) if r.get("event") == "stop"]
    assert stops == [len(records) - 1]
    assert status["state"] == "stopped" and status["backlog_bytes"] == 0


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
