"""`persist send` through the real CLI: "sent" only when a subscriber heard it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import orjson
import pytest

from recorder.cli.common import EXIT_NO_SUBSCRIBER
from recorder.store.reader import open_store
from tests.support import (
    HTTP_400,
    SHORT_HTTP_400,
    Bus,
    free_port,
    journal_records,
    not_zeromq,
    past_broker_death,
    python_child,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)

NO_SUBSCRIBER = EXIT_NO_SUBSCRIBER  # 7, documented in recorder/cli/main.py


def send(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", "send", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def texts(bus: Bus) -> list[object]:
    return [
        r["frames"][1]["json"].get("text")
        for r in journal_records(bus.log_dir)
        if r["kind"] == "msg"
    ]


def test_send_without_broker_or_subscriber_says_nothing_was_sent(bus: Bus) -> None:
    nobody = f"tcp://127.0.0.1:{free_port()}"
    out = send("agents.x", "hello", "--endpoint", nobody, "--wait", "0.5")
    assert out.returncode == NO_SUBSCRIBER and "sent" not in out.stdout
    assert out.stderr.startswith("persist: nothing sent: no subscriber reached")
    assert len(out.stderr.splitlines()) == 1

    bus.start_broker()  # a broker, but nobody subscribed to it
    out = send("agents.x", "hello", "--endpoint", bus.front, "--wait", "0.5")
    assert out.returncode == NO_SUBSCRIBER and out.stdout == ""


def test_send_text_json_and_refused_json(bus: Bus) -> None:
    bus.start_broker()
    bus.start_recorder()
    out = send("agents.x", "plain words", "--endpoint", bus.front)
    assert out.returncode == 0 and out.stdout.startswith("sent agents.x seq 1"), out.stderr
    out = send("agents.x", '{"text": "an object"}', "--endpoint", bus.front)
    assert out.returncode == 0, out.stderr

    bad = send("agents.x", "{bad json", "--endpoint", bus.front)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("persist: MESSAGE starts with '{' but is not valid JSON")
    assert "--text" in bad.stderr and len(bad.stderr.splitlines()) == 1

    out = send("agents.x", "{bad json", "--text", "--endpoint", bus.front)
    assert out.returncode == 0, out.stderr
    # the README's example: words after --text, unquoted, are one message
    out = send("agents.x", "--text", "remember", "the", "migration", "--endpoint", bus.front)
    assert out.returncode == 0, out.stderr
    wait_for(lambda: len(texts(bus)) == 4, what="four messages recorded")
    assert texts(bus) == ["plain words", "an object", "{bad json", "remember the migration"]


def test_a_subscriber_to_other_topics_does_not_count_as_hearing(bus: Bus) -> None:
    """ "sent" only when a subscription matches the topic: zmq drops the rest unheard."""
    import zmq

    bus.start_broker()
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.connect(bus.back)
    sub.subscribe(b"foo.")
    try:
        out = send("agents.x", "hello", "--endpoint", bus.front, "--wait", "1")
        assert out.returncode == NO_SUBSCRIBER and out.stdout == "", out.stderr
        assert "none subscribes to 'agents.x' (their prefixes: 'foo.')" in out.stderr
        out = send("foo.bar", "hello", "--endpoint", bus.front, "--wait", "5")
        assert out.returncode == 0 and out.stdout.startswith("sent foo.bar"), out.stderr
        assert sub.poll(5000) and sub.recv_multipart()[0] == b"foo.bar"
    finally:
        sub.close(linger=0)


@pytest.mark.parametrize("reply", [HTTP_400, SHORT_HTTP_400], ids=["long", "short"])
def test_send_to_a_server_that_is_not_zeromq_sends_nothing(reply: bytes) -> None:
    """For a peer whose greeting is not ZMTP (a web server's answer), libzmq guesses an old
    ZMTP 1.0 one and makes up its subscription to everything: no subscriber. Before, this
    said "sent" and often died as it closed, libzmq aborting (exit 134). An answer
    shorter than the 72 bytes libzmq then reads makes up no subscription, only a failed
    handshake: it was blamed on CURVE ("the broker ... refused us"); now the endpoint
    is asked for a ZMTP greeting, and named as no ZeroMQ broker as for a long answer."""
    with not_zeromq(reply=reply) as endpoint:
        for _ in range(3):  # the abort came in 5 of 8 runs
            out = send("agents.x", "hi", "--endpoint", endpoint, "--wait", "1")
            assert (out.returncode, out.stdout) == (NO_SUBSCRIBER, ""), out
            assert out.stderr == (
                f"persist: nothing sent: {endpoint} is not a ZeroMQ broker: what answers there "
                "does not speak ZMTP 3, the protocol of ZeroMQ 4 (another service on that "
                "port?)\n"
            )


def deep(depth: int, kind: str) -> str:
    """A JSON array or object nested `depth` levels deep."""
    if kind == "array":
        return "[" * depth + "]" * depth
    return '{"k":' * (depth - 1) + "{}" + "}" * (depth - 1)


def test_an_array_is_sent_as_deep_as_an_object(bus: Bus) -> None:
    """MESSAGE nested up to 254 levels is sent, an array too (under "value", one level
    more: before, it was refused at 254 while an object was sent); deeper is exit 2."""
    bus.start_broker()
    bus.start_recorder()
    for kind in ("array", "object"):
        out = send("agents.deep", deep(254, kind), "--endpoint", bus.front, "--wait", "5")
        assert out.returncode == 0 and out.stdout.startswith("sent agents.deep"), (kind, out)
        out = send("agents.deep", deep(255, kind), "--endpoint", bus.front)
        assert (out.returncode, out.stdout) == (2, ""), (kind, out)
        assert out.stderr.startswith("persist: MESSAGE cannot be sent: ")
        assert len(out.stderr.splitlines()) == 1

    def sent() -> list[bytes]:
        with open_store(bus.log_dir) as store:
            return [r.frames[-1] for r in store.records() if r.topic == "agents.deep"]

    payloads = wait_for(lambda: len(sent()) == 2 and sent(), what="both messages recorded")
    array, obj = (orjson.loads(p) for p in payloads)  # type: ignore[union-attr]
    assert array["value"] == orjson.loads(deep(254, "array"))
    assert {k: v for k, v in obj.items() if k != "_persist"} == orjson.loads(deep(254, "object"))


# A publisher as an agent's own code keeps one: heartbeats while idle, one message later.
IDLE_PUBLISHER = """
import sys, time
from recorder.bus.publisher import Publisher
pub = Publisher(sys.argv[1], agent="idle", heartbeat_interval=0.2)
print("ready" if pub.wait_ready(20) else "not ready", flush=True)
sys.stdin.readline()  # the broker is gone, a web server took its port
pub.send("agents.idle", {"text": "after the takeover"})
time.sleep(0.5)
pub.close()
print(getattr(pub, "undelivered", "") or "(closed, nothing said)", flush=True)
"""


def test_a_publisher_whose_broker_port_a_web_server_took_closes_cleanly(
    bus: Bus,
) -> None:
    """A publisher reached the broker; the broker went away and a web server took its
    port. libzmq reconnects to it, takes its answer for an old ZMTP 1.0 peer and makes
    up a subscription at each reconnection: the publisher's goodbye, sent to it with a
    linger, aborted the process as it closed (exit -6, no word; 1 run in 3 here). It now
    sees that its broker went and closes at once, saying so in `undelivered`."""
    import zmq

    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.linger = 0
    try:
        for _ in range(6):
            bus.front = f"tcp://127.0.0.1:{free_port()}"
            bus.back = f"tcp://127.0.0.1:{free_port()}"
            broker = bus.start_broker()
            sub.connect(bus.back)
            sub.subscribe(b"")
            child = python_child(IDLE_PUBLISHER, bus.front)
            assert child.stdout is not None and child.stdin is not None
            try:
                assert child.stdout.readline() == "ready\n"
                broker.signal(signal.SIGKILL)
                broker.wait()
                port = int(bus.front.rsplit(":", 1)[1])
                wait_for(lambda port=port: _bindable(port), what="the broker's port free")
                with not_zeromq(port) as endpoint:
                    time.sleep(0.3)  # reconnected to it, a subscription made up
                    child.stdin.write("go\n")
                    child.stdin.flush()
                    out, err = child.communicate(timeout=30)
                assert (child.returncode, out, err) == (
                    0,
                    f"the broker at {endpoint} went away (or what answers there now is no "
                    "ZeroMQ broker): what was not yet passed on to it is dropped\n",
                    "",
                )
            finally:
                child.kill()
                child.wait()
            sub.disconnect(bus.back)
    finally:
        sub.close()


def _bindable(port: int) -> bool:
    try:
        socket.create_server(("127.0.0.1", port)).close()
    except OSError:
        return False
    return True


# A publisher kept idle (no call on its socket) by an agent's code that did not check
# wait_ready's answer; told to close by a line on stdin.
# Its context reconnects every 5 ms instead of libzmq's 100 ms (about 6 a second
# here): the thousand reconnections take seconds, not minutes.
FORGOTTEN_PUBLISHER = """
import sys
import zmq
from recorder.bus.publisher import Publisher
ctx = zmq.Context()
ctx.setsockopt(zmq.RECONNECT_IVL, 5)
pub = Publisher(sys.argv[1], agent="idle", heartbeat_interval=0, context=ctx)
if not pub.wait_ready(1):
    print(pub.hearing.why_not(1), flush=True)
sys.stdin.readline()
pub.close()
"""


def test_an_idle_publisher_at_a_web_server_lives_through_a_thousand_reconnections() -> None:
    """At a web server that answers and hangs up, libzmq reconnects (about 6 a second
    here) and makes up a subscription at each, queued for the socket until it is called;
    once 1000 wait (the queue's default bound), it cannot queue the next and aborts the
    process (exit -6, no word: after 160 s of an idle `Publisher` here). The queue of
    subscriptions is unbounded now: the publisher lives, says why nobody hears it, and
    closes cleanly. It waits for 1,100 reconnections (`FORGOTTEN_PUBLISHER` makes them
    fast)."""
    accepted = [0]
    with not_zeromq(accepted=accepted) as endpoint:
        child = python_child(FORGOTTEN_PUBLISHER, endpoint)
        try:
            assert child.stdout is not None and child.stdin is not None
            said = child.stdout.readline()
            wait_for(lambda: accepted[0] > 1100 or child.poll() is not None, timeout=120)
            assert child.poll() is None, (accepted[0], child.returncode, child.stderr.read())
            child.stdin.write("close\n")
            child.stdin.flush()
            out, err = child.communicate(timeout=30)
        finally:
            child.kill()
            child.wait()
    assert (child.returncode, said + out, err) == (
        0,
        f"{endpoint} is not a ZeroMQ broker: what answers there does not speak ZMTP 3, "
        "the protocol of ZeroMQ 4 (another service on that port?)\n",
        "",
    )


# A hook call's socket (`recorder.hooks.publish`): one message sent, then closed when
# told by a line on stdin; prints what `close_all` raised.
HOOK_SOCKET = """
import sys
from recorder.hooks import publish
seq = publish.send(sys.argv[1], "claude-hook-s1", 0, "claude", "agents.claude.s1",
                   [publish.Outgoing("m1", {"text": "hello"})], ready_timeout=20)
print("sent", seq, flush=True)
sys.stdin.readline()
try:
    publish.close_all()
    print("closed", flush=True)
except publish.Undelivered as exc:
    print(f"undelivered: {exc}", flush=True)
"""


def test_a_hook_calls_socket_whose_broker_went_away_is_a_failure_not_silence(bus: Bus) -> None:
    """A hook call's messages taken by its socket while the broker was there, the broker
    gone before the socket passed them on: the socket closes without its linger and
    `close_all` says so (the hook's failure log gets the line) instead of nothing."""
    assert past_broker_death(bus, HOOK_SOCKET, ready="sent 1") == (
        0,
        f"undelivered: the broker at {bus.front} went away (or what answers there now "
        "is no ZeroMQ broker): what was not yet passed on to it is dropped\n",
        "",
    )
