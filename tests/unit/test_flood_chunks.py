"""In a flood the recorder hands its lines to the writer in chunks of `CHUNK_BYTES`,
and whatever it holds back is handed over as soon as nothing more waits."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import zmq

from recorder.bus.receiver import _BATCH, ReceiverSettings, Transport
from recorder.daemon.core import CHUNK_BYTES, Recorder
from recorder.daemon.options import RecorderOptions
from recorder.store.layout import Layout, list_segments
from tests.support import journal_records, wait_for


def _messages(first: int, count: int, size: int = 300) -> list[list[bytes]]:
    pad = "x" * size
    return [
        [b"agents.flood", b'{"n":%d,"text":"%s"}' % (i, pad.encode())]
        for i in range(first, first + count)
    ]


def _writes(rec: Recorder) -> list[int]:
    """Sizes of the chunks the journal hands its sink (a spy around `Sink.put`)."""
    sizes: list[int] = []
    put = rec.journal.sink.put

    def spy(command: tuple[Any, ...], nbytes: int = 0) -> None:
        if command[0] == "write":
            sizes.append(len(command[1]))
        put(command, nbytes)

    rec.journal.sink.put = spy  # type: ignore[method-assign]
    return sizes


def _numbers(log_dir: Path) -> list[int]:
    return [r["frames"][1]["json"]["n"] for r in journal_records(log_dir) if r.get("kind") == "msg"]


def _numbers_so_far(log_dir: Path) -> list[int]:
    """`_numbers` while the recorder writes: a look can catch the writer in the middle
    of a chunk (one write() of two batches is not atomic for a reader), so only whole
    lines count."""
    numbers = []
    for path in list_segments(Layout(log_dir)):
        assert path.suffix == ".jsonl"  # nothing here is big enough to be compressed
        data = path.read_bytes()
        for line in data[: data.rfind(b"\n") + 1].splitlines():
            record = orjson.loads(line)
            if record.get("kind") == "msg":
                numbers.append(record["frames"][1]["json"]["n"])
    return numbers


def test_held_lines_go_over_at_a_full_chunk_or_when_handed_over(tmp_path: Path) -> None:
    rec = Recorder(RecorderOptions(log_dir=tmp_path / "logs"))
    rec.open()
    writes = _writes(rec)
    rec.record_batch(time.time(), _messages(0, 10), more=True)
    assert writes == [] and rec.journal.held_bytes > 0  # held: more is coming
    rec.record_batch(time.time(), _messages(10, 10))
    assert len(writes) == 1 and rec.journal.held_bytes == 0  # the last batch: all at once
    # A long flood: handed over whenever a chunk's worth has gathered, never more.
    per_batch = len(b"".join(m[1] for m in _messages(0, _BATCH)))
    batches = 3 * CHUNK_BYTES // per_batch
    for i in range(batches):
        rec.record_batch(time.time(), _messages(20 + i * _BATCH, _BATCH), more=True)
        assert rec.journal.held_bytes < CHUNK_BYTES
    assert len(writes) >= 3 and all(size >= CHUNK_BYTES for size in writes[1:])
    rec.hand_over()
    assert rec.journal.held_bytes == 0
    rec.hand_over()  # nothing held: nothing handed
    total = 20 + batches * _BATCH
    assert rec.counters.written == total
    rec.close()
    assert _numbers(tmp_path / "logs") == list(range(total))


def test_the_receiver_hands_over_a_flood_that_ends_on_a_full_batch(tmp_path: Path) -> None:
    """Two full batches and then silence: their lines reach the journal file while
    the receiver keeps running, in one chunk, not whenever the next message comes."""
    log_dir = tmp_path / "logs"
    endpoint = f"ipc://{tmp_path}/pub.ipc"
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.sndhwm = 0
    pub.bind(endpoint)
    rec = Recorder(RecorderOptions(log_dir=log_dir, broker=endpoint))
    rec.open()
    rec.journal.sink.start()
    transport = Transport(rec, ReceiverSettings(endpoint=endpoint))
    writes = _writes(rec)
    try:
        receiver = transport.start_receiver()
        assert receiver.ready.wait(5)
        # Subscriptions travel to the PUB socket after connecting: probe until one lands.
        probe = iter(range(10_000, 20_000))
        wait_for(
            lambda: pub.send_multipart(_messages(next(probe), 1)[0]) or _numbers_so_far(log_dir)
        )
        first = len(writes)
        with rec._appending:  # the receiver blocks in its next record_batch
            pub.send_multipart(_messages(0, 1)[0])
            time.sleep(0.2)  # ... which has taken this one message
            for frames in _messages(1, 2 * _BATCH):
                pub.send_multipart(frames)
            time.sleep(0.3)  # all of them wait in the receiver's queue
            sent = time.monotonic()
        wait_for(lambda: 2 * _BATCH in _numbers_so_far(log_dir), timeout=5, what="the last message")
        assert time.monotonic() - sent < 0.4
        assert receiver.is_alive()
        # the lone message was a batch of its own; the two full ones went over together
        assert len(writes) - first == 2 and writes[-1] > 2 * _BATCH * 300
    finally:
        transport.stop_receiver()
        rec.close()
        assert transport.close()
        pub.close(0)
        ctx.term()
    numbers = [n for n in _numbers(log_dir) if n < 10_000]
    assert numbers == list(range(2 * _BATCH + 1))
