"""The receiver refuses a message over `--max-message-mb` or `--max-frames` as it takes
it from zmq, hashing its frames one by one and keeping none of them, and ends a batch
at `_BATCH_BYTES` as well as at `_BATCH` messages: what a burst of big messages, or
one message of a million frames, costs the recorder is bounded by one message, not by
the burst (before 2026-12-07: 16 refused messages of 50 MB took 1.3 GB, a message of
a million empty frames 12 s and 350 MB, and made a 12 MB line).

Real zmq sockets and the real receiving thread; the sink stands in for the core (the
process tests in tests/process/test_refused_receive.py drive the whole recorder)."""

from __future__ import annotations

import hashlib
import threading
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import zmq

from recorder.bus.receiver import Receiver, ReceiverSettings
from tests.support import wait_for

MIB = 1024 * 1024


@dataclass
class Sink:
    """Records what the receiver hands over; `gate` held: the receiver waits in it."""

    backlog_bytes: int = 0
    calls: list[tuple[str, Any]] = field(default_factory=list)
    gate: threading.Lock = field(default_factory=threading.Lock)

    def record_batch(
        self, ts: float, messages: list[list[bytes]], *, behind: bool = False, more: bool = False
    ) -> int:
        with self.gate:
            self.calls.append(("batch", [list(m) for m in messages]))
        return len(messages)

    def refuse(self, ts: float, refusal: Any, *, more: bool = False) -> None:
        with self.gate:
            self.calls.append(("refused", refusal))

    def hand_over(self) -> None:
        pass

    def on_connection(self, event: str, ts: float, detail: str = "") -> None:
        pass

    def on_connect_retry(self, ts: float, detail: str = "") -> None:
        pass

    def on_handshake_failed(self, ts: float, detail: str, why: str) -> None:
        pass

    def drop_batch(self, ts: float, messages: list[list[bytes]]) -> None:
        self.calls.append(("dropped", messages))

    def on_receiver_failed(self, message: str) -> None:
        self.calls.append(("failed", message))

    def messages(self) -> list[list[bytes]]:
        return [m for kind, batch in self.calls if kind == "batch" for m in batch]

    def refusals(self) -> list[Any]:
        return [r for kind, r in self.calls if kind == "refused"]


@dataclass
class Rig:
    pub: zmq.Socket[bytes]
    sink: Sink
    receiver: Receiver


@pytest.fixture
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    """A PUB bound at an inproc endpoint (a send puts the message in the receiver's
    queue at once) and a running receiver subscribed to it, with `settings`."""
    settings = getattr(request, "param", {})
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.sndhwm = 0
    pub.bind("inproc://limits")
    sink = Sink()
    receiver = Receiver(sink, ReceiverSettings(endpoint="inproc://limits", **settings), ctx)
    receiver.start()
    try:
        assert receiver.ready.wait(5)
        # a subscription reaches the PUB after the connect: probe until one lands
        wait_for(lambda: pub.send_multipart([b"probe", b"{}"]) or sink.messages(), what="probe")
        yield Rig(pub, sink, receiver)
    finally:
        receiver.stop()
        receiver.join(10)
        assert not receiver.is_alive()
        receiver.release()
        pub.close(0)
        ctx.term()


def queued(rig: Rig, *messages: list[bytes]) -> int:
    """Send `messages` while the receiver waits in the sink: they are all in its queue
    when it takes the next batch (tracemalloc's peak, if it traces, is reset then).
    Returns how many calls the sink had before."""
    with rig.sink.gate:
        before = len(rig.sink.calls)
        rig.pub.send_multipart([b"probe", b"{}"])
        wait_for(lambda: rig.receiver.is_alive() and _waiting(rig.receiver), what="a wait")
        for frames in messages:
            rig.pub.send_multipart(frames)
        if tracemalloc.is_tracing():
            tracemalloc.reset_peak()  # what the receiver takes from here on
    return before


def _waiting(receiver: Receiver) -> bool:
    """The receiver is inside a sink call (it has taken the probe): its frame shows."""
    import sys

    frame = sys._current_frames().get(receiver.ident or -1)
    while frame is not None:
        if frame.f_code.co_name in ("record_batch", "refuse"):
            return True
        frame = frame.f_back
    return False


def test_a_batch_ends_at_its_bytes_as_well_as_at_its_count(rig: Rig) -> None:
    """24 messages of 1 MiB waiting at once: taken in batches of a few MiB each, not
    in one batch of 24 MiB (the recorder copies and encodes a batch at once)."""
    payload = b'{"text":"' + b"x" * (MIB - 12) + b'"}'
    before = queued(rig, *([b"agents.big", payload] for _ in range(24)))
    wait_for(lambda: len(rig.sink.messages()) >= 25, what="all 24")
    batches = [b for kind, b in rig.sink.calls[before:] if kind == "batch"]
    sizes = [sum(len(f) for m in batch for f in m) for batch in batches]
    big = [b for b in batches if any(m[0] == b"agents.big" for m in b)]
    assert sum(len(b) for b in big) == 24
    assert max(sizes) <= 5 * MIB and len(big) >= 5, sizes


@pytest.mark.parametrize("rig", [{"max_message_bytes": MIB}], indirect=True)
def test_messages_over_the_size_limit_are_refused_and_hashed_never_copied(rig: Rig) -> None:
    envelope = {"pub": "p1", "seq": 7, "mid": "m7"}
    payload = orjson.dumps({"_persist": envelope, "text": "y" * (8 * MIB)})
    tracemalloc.start()
    try:
        queued(
            rig,
            [b"agents.big", payload],
            [payload],  # one frame: no topic
            [b"agents.big", b"{}", payload],
            [b"agents.small", b'{"text":"after"}'],
        )
        wait_for(lambda: any(m[0] == b"agents.small" for m in rig.sink.messages()), what="after")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MIB, f"{peak:,} bytes taken in Python for 24 MiB refused"
    one, alone, three = rig.sink.refusals()
    assert (one.size, one.frame_count, one.topic) == (len(payload) + 10, 2, b"agents.big")
    assert one.sha256 == hashlib.sha256(b"agents.big" + payload).hexdigest()
    assert one.head == payload[:1100] and not one.cut_short
    assert one.reason == f"{len(payload) + 10} bytes is over the {MIB} byte limit"
    assert (alone.frame_count, alone.topic, alone.head) == (1, b"", payload[:1100])
    assert three.frame_count == 3 and three.size == len(payload) + 12
    assert three.sha256 == hashlib.sha256(b"agents.big{}" + payload).hexdigest()
    # in order: the refusals, then the small message after them
    kinds = [kind for kind, _ in rig.sink.calls[-4:]]
    assert kinds == ["refused", "refused", "refused", "batch"]


def test_a_message_of_too_many_frames_is_refused_frame_by_frame(rig: Rig) -> None:
    """1,000 frames (the default `--max-frames`) are a message; 1,001 and 200,001 are
    refused, counted and hashed as they come, none kept."""
    kept = [b"agents.parts"] + [b"p%d" % i for i in range(999)]
    sent = (
        kept,
        [*kept, b"one too many"],
        [b"empty.many"] + [b""] * 200_000,
        [b"agents.small", b'{"text":"after"}'],
    )
    tracemalloc.start()
    try:
        queued(rig, *sent)
        wait_for(lambda: any(m[0] == b"agents.small" for m in rig.sink.messages()), what="after")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert kept in rig.sink.messages()
    over, many = rig.sink.refusals()
    assert (over.frame_count, over.topic, over.head) == (1001, b"agents.parts", b"one too many")
    assert over.reason == "1001 frames is over the 1000 frame limit"
    assert over.sha256 == hashlib.sha256(b"".join(kept) + b"one too many").hexdigest()
    assert (many.frame_count, many.size, many.topic) == (200_001, 10, b"empty.many")
    assert many.reason == "200001 frames is over the 1000 frame limit"
    assert peak < MIB, f"{peak:,} bytes taken in Python for a message of 200,001 frames"


def test_a_refused_message_still_coming_in_a_second_into_a_stop_is_cut_short(rig: Rig) -> None:
    """A message of millions of frames takes seconds to receive: a second into a stop
    the receiver gives it up (its refusal says what came), so the stop ends in time;
    the rest of it is never taken for messages of their own."""
    from recorder.bus.refusal import CUT_SHORT_AFTER

    with rig.sink.gate:
        rig.pub.send_multipart([b"probe", b"{}"])
        wait_for(lambda: _waiting(rig.receiver), what="the receiver in the sink")
        rig.pub.send_multipart([b"empty.many"] + [b""] * 100_000)
        rig.pub.send_multipart([b"agents.small", b'{"text":"behind it"}'])
        rig.receiver.stop()
        time.sleep(CUT_SHORT_AFTER + 0.1)
    rig.receiver.join(10)
    assert not rig.receiver.is_alive()
    (cut,) = rig.sink.refusals()
    assert cut.cut_short and cut.sha256 == "" and cut.frame_count == 16_384
    assert cut.reason.startswith("16384 frames is over the 1000 frame limit; the recorder stopped")
    assert [m for m in rig.sink.messages() if m[0] != b"probe"] == []
