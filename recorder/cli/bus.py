"""`persist broker` and `persist send`: the bus from the shell."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import orjson

from recorder.bus.endpoints import DEFAULT_HWM, DEFAULT_PUBLISH, DEFAULT_SUBSCRIBE
from recorder.cli.common import endpoint, fail, positive, positive_int


# -- broker ---------------------------------------------------------------------
def cmd_broker(args: argparse.Namespace) -> int:
    from recorder.bus.broker import Broker

    broker = Broker(args.frontend, args.backend, hwm=args.hwm).start()  # BusError: one line
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(
        f"persist broker: publishers connect to {broker.frontend}, "
        f"subscribers to {broker.backend} (queue limit {args.hwm})",
        file=sys.stderr,
        flush=True,
    )
    while not stop.is_set():
        stop.wait(0.2)
        if not broker.running:
            return fail("the proxy stopped unexpectedly")
    broker.stop()
    print("persist broker: stopped", file=sys.stderr)
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    """Publish one message through the broker (handy for trying things out)."""
    from recorder.bus.publisher import Publisher

    try:
        body = orjson.loads(args.message)
    except orjson.JSONDecodeError:
        body = {"text": args.message}
    if not isinstance(body, dict):
        body = {"value": body}
    with Publisher(args.endpoint, agent=args.agent, heartbeat_interval=0) as pub:
        pub.wait_ready(args.wait)
        seq = pub.send(args.topic, body)
    print(f"sent {args.topic} seq {seq} as {pub.id}")
    return 0


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    p = sub.add_parser("broker", help="run the XSUB/XPUB broker")
    p.add_argument(
        "--frontend", type=endpoint, default=DEFAULT_PUBLISH, help="where publishers connect"
    )
    p.add_argument(
        "--backend", type=endpoint, default=DEFAULT_SUBSCRIBE, help="where subscribers connect"
    )
    p.add_argument("--hwm", type=positive_int, default=DEFAULT_HWM, help="messages queued per peer")
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("send", help="publish one message (JSON object or text)")
    p.add_argument("topic")
    p.add_argument("message")
    p.add_argument("--endpoint", type=endpoint, default=DEFAULT_PUBLISH)
    p.add_argument("--agent", default="cli")
    p.add_argument("--wait", type=positive, default=1.0, help="seconds to wait for subscribers")
    p.set_defaults(func=cmd_send)
