"""The ZeroMQ edge of the recorder: the SUB socket and its monitor, the embedded
broker, and the context they share.

The recorder's core knows nothing of zmq: the receiver hands it batches of frames
through `BatchSink`, and `Transport` owns every zmq object the recorder process
has, so the daemon's runner never imports zmq.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import zmq

from recorder.bus.broker import Broker
from recorder.bus.curve import connect_as_client, serve, start_authenticator, take_refused
from recorder.bus.endpoints import DEFAULT_HWM, ipc_bind_problem, speaks_zmtp, wants_ipv6
from recorder.bus.envelope import HEAD_BYTES
from recorder.bus.keys import ClientKeys, Refused, ServerKeys
from recorder.bus.publisher import REFUSALS
from recorder.bus.refusal import (
    CUT_SHORT_AFTER,
    DEFAULT_MAX_FRAMES,
    TOPIC_BYTES,
    Refusal,
    over_limits,
)
from recorder.errors import NOT_ZMTP, SILENT_PEER

if TYPE_CHECKING:
    from zmq.auth.thread import ThreadAuthenticator

_BATCH = 256
# A batch also ends once it holds this many bytes of messages: it is copied out of
# zmq, then encoded, at once, so before 2026-12-07 a burst of 256 messages of 15 MB
# cost the recorder 2.2 GB. Messages of 2 KB fill 256 before it.
_BATCH_BYTES = 4 * 1024 * 1024
_BEHIND_AFTER = 4  # batches of `_BATCH` in a row before keyword enrichment pauses
# Asked to stop, the receiver takes in what zmq still holds (what publishers sent before
# the stop: a hook's last publish, in the hosted broker's queue and the socket's) while
# there is more, until nothing has come for `_DRAIN_QUIET` seconds, for at most
# `_DRAIN_MAX` seconds of taking (a publisher that never pauses: systemd's stop timeout
# must still be met). Before 2026-12-07 it took 0.3 s of it, and the rest was lost with
# nothing to say so (a publisher sending no more leaves no hole in its sequence).
_DRAIN_QUIET = 0.05
_DRAIN_MAX = 5.0
# After a small batch, let messages gather this long before the next receive: at
# 10-1000 msgs/s a wake-up per message (poll, encode one line, hand it to the writer,
# a write() per line) cost 3-5x a bare SUB. It delays nothing that matters (lines
# are made durable every 200 ms) and keeps one receive time per batch within it (a
# message's `ts` is at most this much after it arrived). At higher rates batches are
# not small and are taken back to back. 0.1 s rather than 0.05 s: at 100 msgs/s the
# receiver and the writer then wake half as often, about 15 % of the recorder's CPU.
_GATHER = 0.1
_SMALL_BATCH = _BATCH // 8
# A handshake refused by the broker's authenticator, or failed on its mechanism (CURVE
# on one side only), is given up for good by libzmq 4.3.5: no retry, ever. The receiver
# connects to that broker again this long after, so a key allowed there later (and the
# broker restarted), or --curve set right on the broker, is met without a restart.
REFUSED_RETRY = 1.0
_GIVEN_UP = (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
# A broker's handshake that failed with no detail is a peer that hung up during it: a
# broker with another CURVE server key, or a service that is no ZeroMQ at all (a web
# server's answer). Which, the endpoint is asked (`speaks_zmtp`, a greeting: what
# `persist send` asks), on a thread of its own, and the failure said once it answered;
# asked again at most every `ASK_AGAIN` seconds while the handshakes fail (libzmq
# retries every 0.1 to 1 s), and anew after one succeeded.
ASK_AGAIN = 60.0
_ASKING_MS = 50  # how often the receiver looks for the answer while one is asked
_NO_DETAIL = zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
_WATCHED = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_CONNECT_RETRIED
    | sum(REFUSALS)
)


def _no_detail_why(speaks: bool | None) -> str:
    """A handshake failed with no detail, in words, by what the endpoint's greeting said
    (`speaks_zmtp`): not ZeroMQ; silent (a frozen broker, or a web server waiting for a
    request: before 2026-12-07 it was the CURVE advice); else another CURVE key, say."""
    if speaks is False:
        return NOT_ZMTP
    if speaks is None:
        return SILENT_PEER
    return REFUSALS[_NO_DETAIL]


class BatchSink(Protocol):
    """What the receiver feeds (the recorder's core)."""

    @property
    def backlog_bytes(self) -> int:
        """Bytes handed over and not yet written: above the limit, messages are dropped."""
        ...

    def record_batch(
        self, ts: float, messages: list[list[bytes]], *, behind: bool = False, more: bool = False
    ) -> int:
        """Journal messages (lists of frames) received at `ts`; `more`: more are
        waiting, so the lines may be held for a fuller chunk."""
        ...

    def hand_over(self) -> None:
        """Nothing more waits: pass on whatever `record_batch(more=True)` held."""
        ...

    def on_connection(self, event: str, ts: float, detail: str = "") -> None:
        """A connection went "connected" or "disconnected", or a bound endpoint is
        "listening"; `detail` is the endpoint as configured."""
        ...

    def on_connect_retry(self, ts: float, detail: str = "") -> None:
        """A connection attempt to `detail` failed and will be retried."""
        ...

    def on_handshake_failed(
        self, ts: float, detail: str, why: str, refused: Refused | None = None
    ) -> None:
        """A handshake with `detail` failed: `why`, in `persist send`'s words (the broker's
        CURVE authentication refused our key, say). It is tried again. At an endpoint we
        bind, a publisher's handshake failed: `refused` is the key our allow-list refused."""
        ...

    def refuse(self, ts: float, refusal: Refusal, *, more: bool = False) -> None:
        """A message over `--max-message-mb` or `--max-frames`, received at `ts` and
        refused (never copied): journal its `refused` record, in order with the
        messages around it; `more` as for `record_batch`."""
        ...

    def drop_batch(self, ts: float, messages: list[list[bytes]]) -> None:
        """Messages received at `ts` while the backlog is over its budget: not kept,
        but accounted for (a gap record once the backlog is back under it)."""
        ...

    def on_receiver_failed(self, message: str) -> None:
        """The receiving thread ended on an error: nothing is recorded any more."""
        ...


@dataclass(frozen=True)
class ReceiverSettings:
    endpoint: str | None  # the (first) broker's XPUB (subscriber) endpoint
    rcvhwm: int = 10_000  # messages zmq queues inside the recorder
    heartbeat_ms: int = 1000  # ZMTP heartbeat interval; the timeout is 3x this
    max_backlog_bytes: int = 256 * 1024 * 1024  # beyond this, received messages are dropped
    # larger messages, or ones of more frames, are refused: hashed as they come, not kept
    max_message_bytes: int = 16 * 1024 * 1024
    max_frames: int = DEFAULT_MAX_FRAMES
    also_connect: tuple[str, ...] = ()  # further brokers, on the same socket
    bind: tuple[str, ...] = ()  # endpoints the socket listens on (publishers connect to us)
    # CURVE: as a server (we bind; allow-listed publishers only) or as a client of the
    # brokers we connect to. One socket has one role, so never both.
    curve_server: ServerKeys | None = None
    curve_client: ClientKeys | None = None

    @property
    def connects(self) -> tuple[str, ...]:
        return ((self.endpoint,) if self.endpoint else ()) + self.also_connect


class Receiver(threading.Thread):
    def __init__(
        self,
        sink: BatchSink,
        settings: ReceiverSettings,
        ctx: zmq.Context[zmq.Socket[bytes]],
        auth: ThreadAuthenticator | None = None,
    ) -> None:
        super().__init__(name="persist-receiver", daemon=True)
        self.auth = auth  # our ZAP handler (bound with CURVE): it knows the keys refused
        self.sink = sink
        self.settings = settings
        self.ctx = ctx
        self.stopping = threading.Event()
        # `stop()` writes here to end a poll that waits for nothing else: an idle
        # receiver never wakes (it woke twice a second to look at `stopping`)
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.ready = threading.Event()
        self.setup_error: str | None = None  # connecting or binding failed: never received
        # what zmq's monitor calls a bound endpoint (resolved: `localhost`, port `*`) -> ours
        self._bound: dict[str, str] = {}
        # brokers whose refused handshake libzmq gave up on -> when to connect again
        self._again: dict[str, float] = {}
        # brokers whose handshake failed with no detail -> whether a ZMTP greeting came
        # from there, and when that was asked (monotonic); being asked -> the failure
        # to say once it is answered (time, monitor detail), None after a success
        self._speaks: dict[str, tuple[float, bool | None]] = {}
        self._asking: dict[str, tuple[float, str] | None] = {}
        self._answers: queue.SimpleQueue[tuple[str, bool | None]] = queue.SimpleQueue()
        self._stop_began: float | None = None  # (monotonic) when `stop()` was called
        # a refused message was cut short at the stop: the rest of its frames wait in
        # the socket, so nothing more may be received from it
        self.cut_short = False

    def stop(self) -> None:
        """Ask the thread to drain and end (see `Transport.stop_receiver`)."""
        if self._stop_began is None:
            self._stop_began = time.monotonic()
        self.stopping.set()
        with contextlib.suppress(OSError):  # BlockingIOError: a byte is waiting already
            os.write(self._wake_write, b"!")

    def release(self) -> None:
        """Close the stop pipe, once the thread has ended."""
        for fd in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_read = self._wake_write = -1

    def _socket(self) -> zmq.Socket[bytes]:
        s = self.settings
        sub: zmq.Socket[bytes] = self.ctx.socket(zmq.SUB)
        sub.linger = 0
        sub.rcvhwm = s.rcvhwm
        sub.setsockopt(zmq.RCVBUF, 4 * 1024 * 1024)
        sub.setsockopt(zmq.RECONNECT_IVL, 100)
        sub.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        sub.setsockopt(zmq.HEARTBEAT_IVL, s.heartbeat_ms)
        sub.setsockopt(zmq.HEARTBEAT_TIMEOUT, s.heartbeat_ms * 3)  # how we see a dead broker
        # No TTL: a TTL asks the *broker* to drop us (and the messages it queues for
        # us) after that long without a word from us, and a stopped recorder (SIGSTOP,
        # a paused VM, swapping) says nothing. Without it the broker keeps queueing
        # up to its limit (500k), and a dead recorder is still seen at once (its
        # kernel closes the connection).
        sub.setsockopt(zmq.HEARTBEAT_TTL, 0)
        if s.curve_server is not None:
            serve(sub, s.curve_server)
        elif s.curve_client is not None:
            connect_as_client(sub, s.curve_client)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        return sub

    def run(self) -> None:
        """Receive until asked to stop; an error that ends the thread reaches the sink
        (`on_receiver_failed`) instead of dying unseen with the thread."""
        try:
            self._run()
        except Exception as exc:  # whatever it is, the recorder must know
            # a zmq error (a bind, a connect) says what failed; anything else, its kind
            message = str(exc) if isinstance(exc, zmq.ZMQError) else f"{type(exc).__name__}: {exc}"
            if not self.ready.is_set():
                self.setup_error = message
            try:
                self.sink.on_receiver_failed(message)
            finally:
                self.ready.set()  # nobody waits for a receiver that will never be ready

    def _run(self) -> None:
        sink = self.sink
        sub = self._socket()
        monitor = sub.get_monitor_socket(_WATCHED)
        sub.ipv6 = wants_ipv6([*self.settings.bind, *self.settings.connects])
        try:
            for endpoint in self.settings.bind:
                problem = ipc_bind_problem(endpoint)
                if problem is not None:
                    raise zmq.ZMQError(zmq.EADDRINUSE, f"cannot bind {endpoint}: {problem}")
                try:
                    sub.bind(endpoint)
                except zmq.ZMQError as exc:
                    raise zmq.ZMQError(exc.errno, f"cannot bind {endpoint}: {exc}") from None
                self._bound[sub.getsockopt_string(zmq.LAST_ENDPOINT)] = endpoint
                self.sink.on_connection("listening", time.time(), endpoint)
            for endpoint in self.settings.connects:
                try:
                    sub.connect(endpoint)
                except zmq.ZMQError as exc:
                    raise zmq.ZMQError(exc.errno, f"cannot connect {endpoint}: {exc}") from None
        except zmq.ZMQError:
            sub.disable_monitor()
            monitor.close()
            sub.close()
            raise
        self.ready.set()
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        poller.register(self._wake_read, zmq.POLLIN)
        limit = self.settings.max_backlog_bytes
        full = 0  # consecutive full batches: we are behind the bus
        held = False  # the sink may hold lines, to be handed over once nothing waits
        try:
            while not self.stopping.is_set():
                # Never stop reading, even when the disk is behind: once zmq's queue in
                # this process is full, libzmq stops reading the connection, and with it
                # the ZMTP heartbeats (no more PINGs, PONGs never read): our heartbeat
                # timeout then drops a healthy broker, the broker drops what it queued
                # for us, and libzmq 4.3 can abort on the reconnect (`_input_stopped`,
                # stream_engine_base.cpp). Beyond the backlog budget, messages are
                # received and dropped instead, and the drop becomes a gap record.
                events = dict(poller.poll(0 if held else self._until_again()))
                if held and sub not in events:
                    sink.hand_over()
                    held = False
                if monitor in events:
                    self._monitor(monitor, 0)
                if self._asking:
                    self._answered()
                if self._again:
                    self._connect_again(sub)
                if sub in events:
                    drop = sink.backlog_bytes > limit
                    taken, more = self._take(sub, behind=full >= _BEHIND_AFTER, drop=drop)
                    # (a batch ended by its bytes is no flood of messages: scanned as usual)
                    full = full + 1 if taken == _BATCH else 0
                    held = more
                    # (a batch ended by its bytes: big messages wait, no use gathering)
                    if taken < _SMALL_BATCH and not (more and taken < _BATCH):
                        self.stopping.wait(_GATHER)
            deadline = time.monotonic() + _DRAIN_MAX
            while time.monotonic() < deadline and not self.cut_short:
                if not self._take(sub, behind=True)[0] and not sub.poll(int(_DRAIN_QUIET * 1000)):
                    break
            sink.hand_over()
        except zmq.ContextTerminated:
            pass
        finally:
            sub.disable_monitor()
            monitor.close()
            sub.close()

    def _take(self, sub: zmq.Socket[bytes], behind: bool, drop: bool = False) -> tuple[int, bool]:
        """Receive what is available now, up to one batch: `_BATCH` messages or
        `_BATCH_BYTES` of them; returns how many, and whether the batch was full (more
        may be waiting).

        One receive time per batch: a batch takes about a millisecond to drain.
        Frames are taken with copy=False and `.more` because `recv_multipart`
        costs a socket-option lookup per frame, a third of the receive time; a
        message of two frames is made in one go (no list append, 45 ns less).
        A message's size is looked at before its frames are copied: one over
        `--max-message-mb` or `--max-frames` is refused here (`_long`), never copied,
        and handed to the sink's `refuse` after the messages before it.
        """
        ts = time.time()
        batch: list[list[bytes]] = []
        append = batch.append
        recv = sub.recv
        limit = self.settings.max_message_bytes
        room = _BATCH_BYTES
        taken = 0
        refused = False
        for taken in range(1, _BATCH + 1):  # `taken`: the count after it
            try:
                frame = recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                taken -= 1
                break
            if frame.more:
                last = recv(copy=False)
                n = len(frame) + len(last)
                if not last.more and n <= limit:  # topic and payload: what agents send
                    append([frame.bytes, last.bytes])
                    room -= n
                    if room <= 0:
                        break
                    continue
                message = self._long(sub, [frame, last])
            else:
                n = len(frame)
                if n <= limit:
                    append([frame.bytes])
                    room -= n
                    if room <= 0:
                        break
                    continue
                message = self._long(sub, [frame])
            if isinstance(message, Refusal):
                if batch:
                    self._hand(ts, batch, behind, drop, more=True)
                    batch = []
                    append = batch.append
                self.sink.refuse(ts, message, more=True)
                refused = True
                if message.cut_short:
                    break
                continue
            append(message)
            room -= sum(map(len, message))
            if room <= 0:
                break
        full = (taken == _BATCH or room <= 0) and not self.cut_short
        if batch:
            self._hand(ts, batch, behind, drop, more=full)
        elif refused and not full:
            self.sink.hand_over()
        return taken, full

    def _hand(
        self, ts: float, batch: list[list[bytes]], behind: bool, drop: bool, more: bool
    ) -> None:
        if drop:
            self.sink.drop_batch(ts, batch)
        else:
            self.sink.record_batch(ts, batch, behind=behind, more=more)

    def _long(self, sub: zmq.Socket[bytes], frames: list[zmq.Frame]) -> list[bytes] | Refusal:
        """The rest of a message whose first frames, received uncopied, are `frames`:
        all its frames, or its `Refusal` once it is over `--max-message-mb` or
        `--max-frames`: the rest of it is then received and hashed frame by frame, and
        nothing of it is kept but the first bytes of its topic and of its last frame."""
        limit, most = self.settings.max_message_bytes, self.settings.max_frames
        size = sum(map(len, frames))
        frame = frames[-1]
        while frame.more and size <= limit and len(frames) <= most:
            frame = sub.recv(copy=False)
            frames.append(frame)
            size += len(frame)
        if size <= limit and len(frames) <= most:
            return [f.bytes for f in frames]
        digest = hashlib.sha256()
        for f in frames:
            digest.update(f.buffer)
        count = len(frames)
        topic = frames[0].buffer[:TOPIC_BYTES].tobytes()
        topic_cut = len(frames[0]) > TOPIC_BYTES
        frames.clear()  # let go of what was received: only the hash goes on
        cut = False
        while frame.more:
            frame = sub.recv(copy=False)
            digest.update(frame.buffer)
            size += len(frame)
            count += 1
            if not count & 0x3FFF and self._give_up():
                cut = self.cut_short = True  # the rest of it is never received
                break
        reason = over_limits(size, count, limit, most) or "over a limit"
        if cut:
            reason += (
                "; the recorder stopped before the rest of it came: size and frame_count "
                "count what came"
            )
        return Refusal(
            size=size,
            frame_count=count,
            sha256="" if cut else digest.hexdigest(),
            topic=topic if count > 1 else b"",
            head=frame.buffer[:HEAD_BYTES].tobytes(),
            reason=reason,
            cut_short=cut,
            topic_cut=topic_cut and count > 1,
        )

    def _give_up(self) -> bool:
        """Whether a refused message still being received is to be cut short: the
        stop began `CUT_SHORT_AFTER` seconds ago."""
        began = self._stop_began
        return began is not None and time.monotonic() - began >= CUT_SHORT_AFTER

    def _monitor(self, monitor: zmq.Socket[bytes], timeout: int) -> None:
        while monitor.poll(timeout):
            try:
                frames = monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            # A monitor event: (uint16 event, int32 value) then the endpoint. Parsed here:
            # zmq.utils.monitor would import asyncio (a tenth of a second at start-up).
            if len(frames) != 2 or len(frames[0]) != 6:
                continue
            event, value = struct.unpack("=Hi", frames[0])
            detail = frames[1].decode(errors="replace")
            detail = self._bound.get(detail, detail)
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                broker = self._broker(detail)
                if broker is not None:  # a ZeroMQ broker now: asked anew if it fails again
                    self._speaks.pop(broker, None)
                    if broker in self._asking:
                        self._asking[broker] = None
                self.sink.on_connection("connected", time.time(), detail)
            elif event == zmq.EVENT_DISCONNECTED:
                self.sink.on_connection("disconnected", time.time(), detail)
            elif event == zmq.EVENT_CONNECT_RETRIED:
                self.sink.on_connect_retry(time.time(), detail)
            elif event in REFUSALS:
                broker = self._broker(detail)
                # at a bound endpoint, a publisher refused: its key, if our allow-list
                # refused it; one that spoke no CURVE (a protocol failure whose value
                # is libzmq's mechanism mismatch); a connection that merely ended
                # during its handshake (a port scan, `persist send`'s greeting probe)
                # is no refusal (None)
                refused = None
                if broker is None and event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                    refused = take_refused(self.auth) or Refused("", "")
                elif broker is None and event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                    # another server key, say: no key asked for; or no CURVE at all
                    plain = value & 0xFFFFFFFF == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
                    refused = Refused("", "", without_curve=plain)
                why: str | None = REFUSALS[event]
                if broker is not None and event == _NO_DETAIL:
                    why = self._heard(broker, time.time(), detail)
                if why is not None:  # None: said once the endpoint answered (`_answered`)
                    self.sink.on_handshake_failed(time.time(), detail, why, refused)
                if event in _GIVEN_UP and broker is not None:
                    self._again.setdefault(broker, time.monotonic() + REFUSED_RETRY)

    def _heard(self, broker: str, ts: float, detail: str) -> str | None:
        """Why `broker`'s handshake failed with no detail: `NOT_ZMTP` if no ZMTP greeting
        came from there when it was asked, else the CURVE words; None while that is
        being asked (the failure is then said once it is answered)."""
        if broker in self._asking:
            self._asking[broker] = ts, detail
            return None
        known = self._speaks.get(broker)
        if known is None or time.monotonic() - known[0] >= ASK_AGAIN:
            self._asking[broker] = ts, detail
            threading.Thread(
                target=lambda: self._answers.put((broker, speaks_zmtp(broker))),
                name="persist-zmtp-greeting",
                daemon=True,
            ).start()
            return None
        return _no_detail_why(known[1])

    def _answered(self) -> None:
        """Say the failures held while their endpoint was asked for a greeting, for the
        endpoints that answered (`_heard`)."""
        while True:
            try:
                broker, speaks = self._answers.get_nowait()
            except queue.Empty:
                return
            held = self._asking.pop(broker, None)
            if held is None:  # a handshake succeeded meanwhile: nothing to say
                continue
            self._speaks[broker] = time.monotonic(), speaks
            why = _no_detail_why(speaks)
            self.sink.on_handshake_failed(held[0], held[1], why, None)

    def _broker(self, detail: str) -> str | None:
        """The broker (a `--broker` endpoint) a monitor event names, if it is one."""
        connects = self.settings.connects
        if detail in connects:
            return detail
        return connects[0] if not detail and len(connects) == 1 else None

    def _until_again(self) -> int | None:
        """Milliseconds until a refused broker is to be connected to again, or until the
        next look for a greeting's answer while one is asked (None: neither)."""
        asking = _ASKING_MS if self._asking else None
        if not self._again:
            return asking
        again = max(0, int((min(self._again.values()) - time.monotonic()) * 1000) + 1)
        return again if asking is None else min(again, asking)

    def _connect_again(self, sub: zmq.Socket[bytes]) -> None:
        """Connect again to the refused brokers whose time has come (libzmq will not)."""
        now = time.monotonic()
        for endpoint, at in list(self._again.items()):
            if at > now:
                continue
            del self._again[endpoint]
            with contextlib.suppress(zmq.ZMQError):  # its connection is gone already
                sub.disconnect(endpoint)
            try:
                sub.connect(endpoint)
            except zmq.ZMQError:  # it took this endpoint before: try again later
                self._again[endpoint] = now + REFUSED_RETRY


class Transport:
    """Every zmq object of a recorder process: the context, the receiver, the embedded broker.

    `start_broker()` before the journal opens (so publishers can connect early),
    `start_receiver()` once the journal can take writes, `stop_receiver()` to
    drain, then `close()` (always, in a `finally`).
    """

    def __init__(self, sink: BatchSink, settings: ReceiverSettings) -> None:
        self.sink = sink
        self.settings = settings
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.broker: Broker | None = None
        self.receiver: Receiver | None = None
        self._auth: ThreadAuthenticator | None = None

    def start_broker(self, publish_endpoint: str, curve: ServerKeys | None = None) -> Broker:
        """Host the broker: publishers connect at `publish_endpoint`, we subscribe at ours
        (with `curve`, both sides allow-listed CURVE; we are then its CURVE client)."""
        if self.settings.endpoint is None:
            raise ValueError("an embedded broker needs the endpoint we subscribe at")
        self.broker = Broker(
            publish_endpoint, self.settings.endpoint, hwm=DEFAULT_HWM, curve=curve
        ).start()
        return self.broker

    def start_receiver(self) -> Receiver:
        if self.settings.curve_server is not None and self._auth is None:
            self._auth = start_authenticator(self.ctx, self.settings.curve_server)
        self.receiver = Receiver(self.sink, self.settings, self.ctx, self._auth)
        self.receiver.start()
        return self.receiver

    def stop_receiver(self, waiting: Callable[[], bool] | None = None, step: float = 2.0) -> bool:
        """Stop receiving after draining what zmq holds, and wait until the thread has
        ended: everything it took in is then handed over. A large backlog can take it
        many seconds to journal (big messages, a slow machine); `waiting` is called
        every `step` seconds meanwhile, and returning False ends the wait (without it:
        one wait of `step`). True once the thread has ended. (Before 2026-12-07 the
        recorder's stop waited 2 s and went on, closing the journal under a receiver
        that was still writing into it.)"""
        receiver = self.receiver
        if receiver is None:
            return True
        receiver.stop()
        while True:
            receiver.join(step)
            if not receiver.is_alive():
                return True
            if waiting is None or not waiting():
                return False

    def close(self) -> bool:
        """Stop the broker and end the context; False if the receiver did not stop in time
        (its context is then left to the OS rather than hanging on it)."""
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        if self.receiver is not None:
            if self.receiver.is_alive():
                return False
            self.receiver.release()
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        self.ctx.term()  # every socket was closed by the thread that owned it
        return True
