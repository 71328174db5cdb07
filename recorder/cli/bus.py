"""`persist broker` and `persist send`: the bus from the shell."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

import orjson

from recorder.bus.endpoints import (
    DEFAULT_HWM,
    DEFAULT_PUBLISH,
    DEFAULT_SUBSCRIBE,
    bind_twice_problem,
    check_bind_endpoint,
)
from recorder.cli.common import (
    EXIT_NO_SUBSCRIBER,
    add_curve,
    add_log_dir,
    check_utf8,
    connect_endpoint,
    curve_keys_folder,
    endpoint,
    fail,
    positive,
    positive_int,
    shown,
)
from recorder.errors import BadOption
from recorder.store.fsutil import PRIVATE_UMASK
from recorder.store.records import FRAME_DEPTH, splice_value


# -- broker ---------------------------------------------------------------------
def cmd_broker(args: argparse.Namespace) -> int:
    from recorder.bus.broker import Broker
    from recorder.bus.keys import load_server
    from recorder.daemon.signals import SignalRelay

    os.umask(PRIVATE_UMASK)  # the ipc socket files it binds: its user's alone
    for option, where in (("--frontend", args.frontend), ("--backend", args.backend)):
        check_bind_endpoint(where, option, allow_public=args.bind_public)  # BadOption: exit 2
    problem = bind_twice_problem(
        ("--frontend", args.frontend),
        ("--backend", args.backend),
        why="the broker needs one endpoint for publishers and another for subscribers",
    )
    if problem is not None:  # the second bind replaced an ipc socket, or failed as "taken"
        raise BadOption(problem)
    folder = curve_keys_folder(args, [args.frontend, args.backend])
    keys = load_server(folder) if folder is not None else None  # KeyFileError: exit 1
    broker = Broker(args.frontend, args.backend, hwm=args.hwm, curve=keys).start()  # BusError
    stop = threading.Event()
    # set by a thread of its own: a handler setting it could land inside `stop.wait`'s lock
    with SignalRelay((signal.SIGTERM, signal.SIGINT), lambda _: stop.set()):
        print(
            f"persist broker: publishers connect to {broker.frontend}, "
            f"subscribers to {broker.backend} (queue limit {args.hwm}"
            + (f"; CURVE, {_allowed(len(keys.clients))} by {keys.allowed})" if keys else ")"),
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


def _allowed(n: int) -> str:
    if n == 0:
        return "no client key allowed (every client refused: persist keys allow FILE)"
    return f"{n} client key{'s' * (n != 1)} allowed"


_JSON_SPACE = " \t\n\r"  # the whitespace JSON allows between tokens


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def message_body(message: str, *, text: bool = False) -> bytes:
    """What `persist send` publishes (a JSON object's bytes, the envelope not yet in):
    a JSON object as it is written, other JSON values under "value" as written, plain
    words under "text". Something that starts like JSON (`{` or `[`) but is not JSON is
    refused rather than sent as a string (`--text` sends it so).

    The JSON is never parsed and written again (a parser reads an integer beyond 64
    bits as a float, and repeated keys as one): only line breaks between its tokens
    become spaces, for the journal keeps one-line JSON as JSON. Valid JSON that the
    recorder's parser cannot read (a number beyond a double's range, an escaped lone
    surrogate, nesting deeper than a journal line holds) would be journaled as a string
    with its envelope unread: refused, saying so."""
    check_utf8(message, "MESSAGE")
    if text:
        return orjson.dumps({"text": message})
    written = message.strip(_JSON_SPACE)
    opener = written[:1]
    raw = written.replace("\r\n", " ").replace("\n", " ").replace("\r", " ").encode()
    try:  # the recorder's own reading, under "value": an array as deep as an object
        body = splice_value(b'{"value":' + raw + b"}")["value"]
    except orjson.JSONDecodeError as exc:
        why = str(exc)
        try:
            json.loads(written, parse_constant=_no_constant)
        except RecursionError:
            pass  # JSON or not, too deep for a reader
        except ValueError as not_json:  # JSONDecodeError included
            if opener in ("{", "["):
                raise BadOption(
                    f"MESSAGE starts with {opener!r} but is not valid JSON ({not_json}); "
                    "--text sends it as plain text"
                ) from None
            return orjson.dumps({"text": message})
        if "depth" in why or "recursion" in why:
            raise BadOption(
                f"MESSAGE cannot be sent: it is nested deeper than {FRAME_DEPTH - 1} "
                "levels, more than a journal line keeps as JSON"
            ) from None
        raise BadOption(
            f"MESSAGE is valid JSON, but the recorder's JSON parser cannot read it ({why}): "
            "it would be journaled as a string, its envelope unread; "
            "--text sends it as plain text"
        ) from None
    return raw if isinstance(body, dict) else b'{"value":' + raw + b"}"


SEND_WAIT = 3.0  # seconds `persist send` waits for the broker to take its message


def cmd_send(args: argparse.Namespace) -> int:
    """Publish one message through the broker (handy for trying things out).

    "sent" only once a subscriber's subscription has reached us through the broker:
    with no broker or nobody subscribed, zmq would drop the message without a word."""
    from recorder.bus.endpoints import speaks_zmtp
    from recorder.bus.keys import load_client
    from recorder.bus.publisher import ConnectFailed, Publisher
    from recorder.errors import NOT_ZMTP, refused_by

    check_utf8(args.topic, "TOPIC")
    check_utf8(args.agent, "--agent")
    if not 1 <= len(args.agent) <= 200 or not args.agent.isprintable():
        # the envelope's rule (`read_envelope`): the recorder would not believe it
        raise BadOption(f"--agent must be 1 to 200 printable characters (got {args.agent!r})")
    body = message_body(" ".join(args.message), text=args.text)  # BadOption: exit 2
    folder = curve_keys_folder(args, [args.endpoint])
    keys = load_client(folder) if folder is not None else None  # KeyFileError: exit 1
    # a peer that answers but is no ZeroMQ (a web server) is told from its first bytes
    # before libzmq connects: libzmq makes up an old peer's subscription for it, and that
    # can abort the process (`zmtp_engine.cpp`: EAGAIN, exit 134; seen in CI under load)
    if speaks_zmtp(args.endpoint, min(args.wait, 1.0)) is False:
        return fail(f"nothing sent: {refused_by(args.endpoint, NOT_ZMTP)}", EXIT_NO_SUBSCRIBER)
    try:
        pub = Publisher(args.endpoint, agent=args.agent, heartbeat_interval=0, curve=keys)
    except ConnectFailed as exc:  # an address libzmq cannot read: the option's fault
        raise BadOption(f"--endpoint: {exc}") from None
    sent = False
    try:
        if not pub.wait_ready(args.wait, topic=args.topic):
            why = pub.hearing.why_not(args.wait, args.topic)
            return fail(f"nothing sent: {why}", EXIT_NO_SUBSCRIBER)
        seq = pub.send_json(args.topic, body)
        sent = True
    finally:
        # this process exits next, and what libzmq still holds goes with it: "sent" only
        # once the broker has taken it (before 2026-12-08 a frozen broker's was dropped)
        pub.close(wait=SEND_WAIT if sent else None)
    if pub.undelivered:  # the broker went away, or had not taken it within SEND_WAIT
        return fail(f"not sent: {pub.undelivered}")
    # the topic as given may hold control characters: escaped, as every line naming
    # recorded content (before 2026-12-07 printed raw, reaching the terminal)
    print(f"sent {shown(args.topic)} seq {seq} as {pub.id}")
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
    p.add_argument(
        "--bind-public",
        action="store_true",
        help="allow endpoints other machines can reach (default: loopback and ipc only)",
    )
    add_curve(p)
    add_log_dir(p)
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser(
        "send",
        help="publish one message (JSON object or text)",
        description="Publish one message. MESSAGE is a JSON object, another JSON value, or "
        'plain words (sent as {"text": ...}; several words are joined by spaces, as echo '
        "does); one that starts with { or [ must be valid JSON unless --text is given. "
        "Exits 7 and sends nothing when no subscriber is there within --wait.",
    )
    p.add_argument("topic", help="the topic frame, e.g. agents.claude")
    p.add_argument(
        "message",
        nargs="+",
        metavar="MESSAGE",
        help='a JSON object, e.g. \'{"text": "hi"}\', or plain words',
    )
    p.add_argument("--text", action="store_true", help="send MESSAGE as plain text, never JSON")
    p.add_argument(
        "--endpoint",
        type=connect_endpoint,
        default=DEFAULT_PUBLISH,
        help="where publishers connect (default %(default)s), e.g. ipc:///tmp/bus.pub",
    )
    p.add_argument(
        "--agent", default="cli", help="the sender named in the envelope, e.g. claude (default cli)"
    )
    p.add_argument("--wait", type=positive, default=1.0, help="seconds to wait for subscribers")
    add_curve(p)
    add_log_dir(p)
    p.set_defaults(func=cmd_send)
