"""The broker stops at once when asked (a lost TERMINATE used to leave it polling)."""

from __future__ import annotations

import time
from typing import Any

import zmq

from recorder.bus.broker import TERMINATE_WAIT, Broker
from recorder.daemon.control import STOPPED_GRACE


def test_broker_stops_promptly_every_time() -> None:
    # Before the fix about one stop in five waited out the 2 s join timeout: the
    # TERMINATE was sent on a control socket closed right away and never arrived.
    slow = []
    for _ in range(20):
        broker = Broker("tcp://127.0.0.1:0", "tcp://127.0.0.1:0").start()
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        pub = ctx.socket(zmq.XPUB)
        for sock in (sub, pub):
            sock.linger = 0
        sub.subscribe(b"")
        sub.connect(broker.backend)
        pub.connect(broker.frontend)
        assert pub.poll(5000)  # the subscription came through the proxy
        pub.recv()
        pub.send_multipart([b"t", b"x"])
        assert sub.poll(5000)
        sub.recv_multipart()
        pub.close()
        sub.close()
        ctx.term()
        t0 = time.monotonic()
        broker.stop()
        took = time.monotonic() - t0
        if took > 0.5:
            slow.append(round(took, 2))
        assert not broker.running
    assert slow == []


def test_a_lost_terminate_still_stops_the_broker_at_once(monkeypatch: Any) -> None:
    # The proxy never hears TERMINATE (as when the command is lost): its context's
    # end stops it, within the short wait, not a recorder's 2 s grace.
    broker = Broker("tcp://127.0.0.1:0", "tcp://127.0.0.1:0").start()
    sent: list[bytes] = []
    monkeypatch.setattr(zmq.Socket, "send", lambda self, data, *a, **k: sent.append(data))
    t0 = time.monotonic()
    broker.stop()
    took = time.monotonic() - t0
    assert sent == [b"TERMINATE"]  # the command was "sent" and went nowhere
    assert not broker.running
    assert TERMINATE_WAIT <= took < STOPPED_GRACE / 2  # far from being killed as a linger


def test_a_setup_failure_of_any_kind_is_raised_not_waited_for() -> None:
    """A queue limit too large for zmq's int raised OverflowError in the broker's
    thread, which died without saying it was ready: `start` waited forever."""
    import pytest

    from recorder.errors import BusError

    with pytest.raises(BusError, match="value too large"):
        Broker("tcp://127.0.0.1:0", "tcp://127.0.0.1:0", hwm=3_000_000_000).start()
