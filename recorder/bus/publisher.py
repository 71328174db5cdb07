"""A small publisher helper that stamps the optional envelope (see envelope.py).

    pub = Publisher(agent="claude")           # connects to the broker's XSUB side
    pub.wait_ready()                          # until the broker forwards a subscription
    pub.send("agents.claude", {"text": "hi"})
    pub.close()                               # final heartbeat with "bye"

With CURVE: `Publisher(endpoint, curve=load_client(Path("~/.local/share/agent-persist/keys")))`
(`recorder.bus.keys.load_client`: this machine's client keys and the server's public key).

It uses an XPUB socket rather than PUB so it can see subscriptions arrive and
not lose its first messages to zmq's slow-joiner effect.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import orjson
import zmq

from recorder.bus.endpoints import DEFAULT_PUBLISH, speaks_zmtp, wants_ipv6
from recorder.bus.envelope import ENVELOPE_KEY, HEARTBEAT_TOPIC
from recorder.errors import NOT_ZMTP, BusError, refused_by

if TYPE_CHECKING:  # loaded only when CURVE is used: an agent's import stays small
    from recorder.bus.keys import ClientKeys

_AFTER_BURST = 5  # heartbeats kept up after the last message
_LINGER_BEYOND_WAIT = 0.5  # seconds a socket closed with a `wait` lingers past it
# seconds a wait goes on after a refused handshake (libzmq tries again every 0.1 s, so
# a broker restarted mid-handshake is still met) before it gives up: keys that do not
# match are refused at every try, and waiting out --wait would only delay the line
REFUSED_GRACE = 1.0


class ConnectFailed(BusError, zmq.ZMQError):
    """libzmq refused at once to connect to an endpoint (an address it cannot read:
    `tcp://bad_host!:5`, a wildcard, an ipc path too long for a socket address). A
    `zmq.ZMQError` as well (its `errno`), for code that catches those."""

    def __init__(self, endpoint: str, exc: zmq.ZMQError) -> None:
        reason = zmq.strerror(exc.errno) if exc.errno else str(exc)
        zmq.ZMQError.__init__(self, exc.errno, f"cannot connect to {endpoint}: {reason}")


def connect(sock: zmq.Socket[bytes], endpoint: str) -> None:
    """`sock.connect(endpoint)` (its IPV6 option set as the endpoint needs); raises
    ConnectFailed instead of a bare ZMQError."""
    try:
        sock.ipv6 = wants_ipv6([endpoint])
        sock.connect(endpoint)
    except zmq.ZMQError as exc:
        raise ConnectFailed(endpoint, exc) from None


def check_connectable(endpoint: str) -> None:
    """Raise ConnectFailed when libzmq would refuse to connect to `endpoint` (a socket
    of its own connects and closes at once: nothing is sent)."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    sock.linger = 0
    try:
        connect(sock, endpoint)
    finally:
        sock.close()


# a failed handshake's monitor event, in words (the recorder's receiver says them too)
REFUSALS: dict[int, str] = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "its CURVE authentication refused this client's key",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "the handshake failed (CURVE on one side only?)",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "the handshake failed (CURVE on one side only?)",
}
# the events `Hearing` reads: a handshake's outcome, and a connection's end
_WATCHED = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_MONITOR_STOPPED  # the socket gone: `delivered`
    | sum(REFUSALS)
)


class Hearing:
    """Who would hear what an XPUB socket sends: the subscriptions that reached it, and
    how its connection's handshakes went. Made before the socket connects (no handshake
    goes unseen); `wait` then tells whether anyone listens, `why_not` why nobody does.

    A subscription counts only once a ZMTP 3 handshake succeeded (ZeroMQ 4's, CURVE or
    not). To a peer whose greeting is not ZMTP's (a web server's answer, say) libzmq
    4.3.5 talks the old ZMTP 1.0, and it makes up a subscription to everything on that
    peer's behalf, no handshake having succeeded. A message sent then, and the socket
    closed with a linger, aborts the process in libzmq ("Resource temporarily
    unavailable (src/zmtp_engine.cpp:439)": a reconnection makes up its subscription
    again after the socket's pipe is gone). So does a peer that was a broker and is
    now such a service (the port taken over while the broker was away): the
    handshakes are watched for the socket's life, and `live` says whether the peer
    now is one that passed a ZMTP 3 handshake, not lost since."""

    def __init__(self, sock: zmq.Socket[bytes], endpoint: str) -> None:
        self.endpoint = endpoint
        self.subscriptions: set[bytes] = set()  # the topic prefixes that arrived
        # "connected" once a handshake succeeded; "lost" when that connection ended
        # (until the next succeeds); "refused" when one failed and none succeeded since
        # (CURVE keys, or no ZMTP peer); "" before either
        self.connection = ""
        self.refusal = ""  # why the handshake failed, when it did
        self.losses = 0  # connections that succeeded and ended since (a broker gone)
        self._sock = sock
        address = f"inproc://persist-hearing-{uuid.uuid4().hex}"
        sock.monitor(address, _WATCHED)
        self._monitor: zmq.Socket[bytes] | None = sock.context.socket(zmq.PAIR)
        self._monitor.rcvhwm = 0  # never full: a full one would stall libzmq's I/O thread
        self._monitor.connect(address)

    def wait(self, timeout: float, topic: str | None = None) -> bool:
        """Whether a subscriber (one whose prefix matches `topic`, when given) is there
        within `timeout` seconds."""
        wanted = None if topic is None else topic.encode()
        deadline = time.monotonic() + timeout
        refused_at: float | None = None
        while True:
            self.listen(min(50, max(0, int((deadline - time.monotonic()) * 1000))))
            if (
                self.connection == "connected"
                and self.subscriptions
                and (wanted is None or any(wanted.startswith(p) for p in self.subscriptions))
            ):
                return True
            now = time.monotonic()
            if self.connection == "refused":
                refused_at = now if refused_at is None else refused_at
                if now - refused_at >= REFUSED_GRACE:
                    return False
            if now >= deadline:
                return False

    def listen(self, ms: int = 0) -> None:
        """Read the handshakes' events and the subscriptions that arrived (waiting up to
        `ms` for a subscription)."""
        self._watch()
        if self._sock.poll(ms):
            while self._sock.poll(0):
                note = self._sock.recv()
                if note[:1] == b"\x01":
                    self.subscriptions.add(note[1:])
                elif note[:1] == b"\x00":
                    self.subscriptions.discard(note[1:])
            self._watch()  # a handshake's event comes before its subscriptions

    @property
    def live(self) -> bool:
        """The peer is one whose ZMTP 3 handshake succeeded, and it has not gone since
        (as of the events read last: `listen`)."""
        return self.connection == "connected"

    @property
    def failed(self) -> bool:
        """A handshake failed or a subscription was made up, and none succeeded."""
        return self.connection != "connected" and bool(self.connection or self.subscriptions)

    def why_not(self, timeout: float, topic: str | None = None) -> str:
        """Why `wait` found nobody to hear `topic`: one phrase, for a user."""
        where = self.endpoint
        if self.connection == "connected" and self.subscriptions:
            seen = ", ".join(repr(p.decode(errors="replace")) for p in sorted(self.subscriptions))
            return (
                f"subscribers reached {where}, but none subscribes to {topic!r} "
                f"(their prefixes: {seen})"
            )
        refused = self.connection == "refused"
        # made up by libzmq, no handshake having succeeded; or its handshake failed, and
        # no ZMTP greeting comes from there (an answer shorter than the 72 bytes libzmq
        # reads after its first byte makes up no subscription, only the failure)
        if self.subscriptions or (refused and speaks_zmtp(where) is False):
            return refused_by(where, NOT_ZMTP)
        if refused:
            return refused_by(where, self.refusal)
        return (
            f"no subscriber reached {where} within {timeout:g}s (is the broker running, "
            "with a recorder subscribed? --wait waits longer)"
        )

    def _watch(self) -> None:
        from zmq.utils.monitor import recv_monitor_message

        while self._monitor is not None and self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)["event"]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.connection = "connected"
            elif event == zmq.EVENT_DISCONNECTED:
                if self.connection == "connected":
                    self.connection = "lost"
                    self.losses += 1
            elif event in REFUSALS and self.connection != "connected":
                self.connection, self.refusal = "refused", REFUSALS[event]

    def delivered(self, timeout: float, *, unheard: bool = True) -> bool:
        """After the socket was closed with a linger: True once it is done (libzmq stops
        the monitor when the socket goes, its queue delivered or its linger over), or
        `unheard` after `timeout` seconds without a word (True: as a close did before);
        False if the connection ended first (what was still queued will never be
        delivered). With a linger longer than `timeout`, True with `unheard` False
        means the queue was passed on: the linger cannot have run out yet."""
        from zmq.utils.monitor import recv_monitor_message

        deadline = time.monotonic() + timeout
        while self._monitor is not None and (left := deadline - time.monotonic()) > 0:
            if not self._monitor.poll(int(min(left, 0.1) * 1000) + 1):
                continue
            event = recv_monitor_message(self._monitor)["event"]
            if event == zmq.EVENT_MONITOR_STOPPED:
                return True
            if event == zmq.EVENT_DISCONNECTED:
                self.connection = "lost"
                self.losses += 1
                return False
        return unheard

    def close(self) -> None:
        """Stop watching the handshakes (the events read so far are kept)."""
        if self._monitor is not None:
            self._watch()
            if not self._sock.closed:  # closed: its monitor went with it (`delivered`)
                self._sock.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None


def _dumps(body: dict[str, Any]) -> bytes:
    """`body` as compact JSON: by orjson, or, when it holds an integer beyond 64 bits
    (which orjson refuses), by the stdlib json module, which writes it as it is."""
    try:
        return orjson.dumps(body)
    except TypeError as exc:
        if "Integer" not in str(exc):  # another type, or nested too deep: refused
            raise
        import json

        try:
            return json.dumps(
                body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode()
        except (TypeError, ValueError, RecursionError):
            raise exc from None


class Publisher:
    def __init__(
        self,
        endpoint: str = DEFAULT_PUBLISH,
        *,
        agent: str | None = None,
        heartbeat_interval: float = 1.0,  # seconds between heartbeats while sending
        idle_heartbeat: float = 30.0,  # seconds between heartbeats when idle
        hwm: int = 100_000,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        curve: ClientKeys | None = None,  # CURVE client keys (`recorder.bus.keys.load_client`)
    ) -> None:
        self.id = f"{agent or 'pub'}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.agent = agent
        self.seq = 0
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.XPUB)
        self._sock.linger = 2000
        self._sock.sndhwm = hwm
        # the subscriptions that reach us are queued for us without a bound: to a peer
        # that is no ZeroMQ and hangs up (a web server), libzmq makes one up at each
        # reconnection (10 a second), and aborts the process when it cannot queue it,
        # once the queue is full (1000 by default) while we make no call on the socket
        self._sock.rcvhwm = 0
        if curve is not None:
            from recorder.bus.curve import connect_as_client

            connect_as_client(self._sock, curve)
        self.hearing = Hearing(self._sock, endpoint)  # who hears us; `why_not` says why not
        try:
            connect(self._sock, endpoint)
        except ConnectFailed:
            self.hearing.close()
            self._sock.close(linger=0)
            raise
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat_seq = -1
        self._heartbeat_time = 0.0
        self._idle = idle_heartbeat
        self.ready = False  # a subscriber's subscription has reached us
        self.first_seq = 0  # the sequence number of the first message this socket sent
        self.undelivered = ""  # why what `close` held was not (all) delivered
        self.subscriptions = self.hearing.subscriptions  # the topic prefixes subscribed to
        self._thread: threading.Thread | None = None
        if heartbeat_interval > 0:
            self._thread = threading.Thread(
                target=self._beat, args=(heartbeat_interval,), name="persist-heartbeat", daemon=True
            )
            self._thread.start()

    def wait_ready(self, timeout: float = 5.0, topic: str | None = None) -> bool:
        """Wait until some subscriber's subscription has reached us through the broker
        (one whose prefix matches `topic`, when given).

        False means nobody would hear a message sent now (no broker at the endpoint,
        no subscriber on it, none subscribed to `topic`, a broker that refused our
        handshake, or no ZeroMQ broker at all): zmq drops such messages without a word.
        `hearing.why_not` says which."""
        with self._lock:
            heard = self.hearing.wait(timeout, topic)
            self.ready = self.ready or heard
            return heard

    def envelope(self, mid: str | None = None) -> dict[str, Any]:
        self.seq += 1
        self.first_seq = self.first_seq or self.seq
        env: dict[str, Any] = {
            "pub": self.id,
            "seq": self.seq,
            "mid": mid or f"{self.id}:{self.seq}",
        }
        if self.agent:
            env["agent"] = self.agent
        return env

    def send(self, topic: str, message: dict[str, Any], mid: str | None = None) -> int:
        """Send a JSON object with the envelope stamped in; returns its sequence number.
        `mid`: the message's own id (an agent's uuid), else `<publisher id>:<seq>`."""
        with self._lock:
            body = {ENVELOPE_KEY: self.envelope(mid), **message}
            try:
                frames = [topic.encode(), _dumps(body)]
            except (TypeError, UnicodeEncodeError):
                self.seq -= 1  # not sent: its number is the next message's, or no gap opens
                raise
            self._sock.send_multipart(frames)
            return self.seq

    def send_json(self, topic: str, payload: bytes, mid: str | None = None) -> int:
        """Send a JSON object's bytes as they are, the envelope spliced in before its
        first key (nothing of it parsed and written again: an integer beyond 64 bits,
        a number's format, a repeated key all stay as written); returns its sequence
        number. `payload` must be one JSON object, with no space before its `{`."""
        if payload[:1] != b"{":
            raise ValueError("send_json takes a JSON object's bytes")
        inner = payload[1:].lstrip(b" \t\n\r")
        with self._lock:
            env = orjson.dumps(self.envelope(mid))
            sep = b"" if inner[:1] == b"}" else b","
            self._sock.send_multipart(
                [topic.encode(), b'{"' + ENVELOPE_KEY.encode() + b'":' + env + sep + inner]
            )
            return self.seq

    def send_raw(self, frames: list[bytes]) -> None:
        """Send frames as they are, outside the envelope (untracked)."""
        with self._lock:
            self._sock.send_multipart(frames)

    def heartbeat(self, bye: bool = False) -> None:
        with self._lock:
            self.hearing.listen()  # the events read: their queue does not grow while idle
            env: dict[str, Any] = {"pub": self.id, "seq": self.seq, "hb": True}
            if self.agent:
                env["agent"] = self.agent
            if bye:
                env["bye"] = True
            self._sock.send_multipart([HEARTBEAT_TOPIC.encode(), orjson.dumps({ENVELOPE_KEY: env})])
            self._heartbeat_seq = self.seq
            self._heartbeat_time = time.monotonic()

    def _beat(self, interval: float) -> None:
        """Heartbeat every `interval` while sending and for a few beats after the
        last message (a heartbeat can be dropped too), then every `idle_heartbeat`."""
        last_change = time.monotonic()
        while not self._stop.wait(interval):
            now = time.monotonic()
            if self.seq != self._heartbeat_seq:
                last_change = now
            recent = now - last_change < _AFTER_BURST * interval
            if recent or now - self._heartbeat_time >= self._idle:
                try:
                    self.heartbeat()
                except zmq.ZMQError:
                    return

    def close(self, bye: bool = True, wait: float | None = None) -> None:
        """Say goodbye (twice, a moment apart: a full queue may drop one) and close.

        `wait`: seconds to wait for the broker to take all the socket holds (a process
        about to exit: libzmq's queue goes with it, whatever the linger); what it has
        not taken by then is dropped as the socket closes, and `undelivered` says so.
        Without `wait` the linger (2 s) delivers it in the background, as long as the
        process lives.

        A publisher that never saw a subscriber has nobody to say goodbye to when it
        never sent, or when what it reached failed the handshake (a broker that refused
        it, a peer that is no ZeroMQ broker, which a linger lets libzmq abort on): it
        closes at once instead of lingering. So does one whose broker went away since
        (`hearing.live` false: gone, or its port taken over by a service that is no
        ZeroMQ, which libzmq aborts on as well): what it holds is dropped, and
        `undelivered` says why. `bye=False` (a publisher id that goes on in another
        process, as the agent hooks' do) sends one plain heartbeat with the last
        sequence and closes."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        with self._lock:
            self.hearing.listen()
        if not self.ready and (self.seq == 0 or self.hearing.failed):
            self._close_now()
            return
        if self.ready and not self.hearing.live:
            self.undelivered = (
                f"the broker at {self.hearing.endpoint} went away (or what answers there "
                "now is no ZeroMQ broker): what was not yet passed on to it is dropped"
            )
            self._close_now()
            return
        if wait is not None:  # longer than the wait: a close done within it delivered all
            self._sock.linger = int((wait + _LINGER_BEYOND_WAIT) * 1000)
        try:
            if bye:
                self.heartbeat(bye=True)
                time.sleep(0.05)
            self.heartbeat(bye=bye)
        finally:
            if wait is None:
                self.hearing.close()
            self._sock.close()
        if wait is None:
            return
        delivered = self.hearing.delivered(wait, unheard=False)
        self.hearing.close()
        if not delivered and self.hearing.connection == "lost":
            self.undelivered = (
                f"the broker at {self.hearing.endpoint} went away before it had taken all "
                f"that was sent: what it had not taken of messages {self.first_seq}.."
                f"{self.seq} (how many is unknown, the last ones) is dropped"
            )
        elif not delivered:
            self.undelivered = (
                f"the broker at {self.hearing.endpoint} had not taken all that was sent "
                f"within {wait:g}s (frozen, or the machine overloaded?): what it had not "
                f"taken of messages {self.first_seq}..{self.seq} (how many is unknown, the "
                "last ones) is dropped"
            )

    def _close_now(self) -> None:
        """Close without a linger (nothing to deliver, or nobody to deliver it to)."""
        self.hearing.close()
        self._sock.linger = 0
        self._sock.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
