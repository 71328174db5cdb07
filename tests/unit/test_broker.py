"""The broker stops at once when asked (a lost TERMINATE used to leave it polling)."""

from __future__ import annotations

import time

import zmq

from recorder.bus.broker import Broker


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
