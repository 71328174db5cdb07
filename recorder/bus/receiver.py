"""The ZeroMQ edge of the recorder: the SUB socket, its monitor, and batches handed to the core."""

from __future__ import annotations

import threading
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

from recorder.daemon.core import Recorder

_BATCH = 256


_BEHIND_AFTER = 4  # full batches in a row before keyword enrichment pauses


_DRAIN_ON_STOP = 0.3  # seconds spent taking what zmq still holds when asked to stop


class Receiver(threading.Thread):
    def __init__(self, recorder: Recorder, ctx: zmq.Context) -> None:
        super().__init__(name="persist-receiver", daemon=True)
        self.recorder = recorder
        self.ctx = ctx
        self.stopping = threading.Event()
        self.ready = threading.Event()

    def _socket(self) -> zmq.Socket:
        opts = self.recorder.options
        sub = self.ctx.socket(zmq.SUB)
        sub.linger = 0
        sub.rcvhwm = opts.rcvhwm
        sub.setsockopt(zmq.RCVBUF, 4 * 1024 * 1024)
        sub.setsockopt(zmq.RECONNECT_IVL, 100)
        sub.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        sub.setsockopt(zmq.HEARTBEAT_IVL, opts.zmq_heartbeat_ms)
        sub.setsockopt(zmq.HEARTBEAT_TIMEOUT, opts.zmq_heartbeat_ms * 3)
        sub.setsockopt(zmq.HEARTBEAT_TTL, opts.zmq_heartbeat_ms * 3)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        return sub

    def run(self) -> None:
        rec = self.recorder
        sub = self._socket()
        monitor = sub.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECT_RETRIED
        )
        sub.connect(rec.options.broker)
        self.ready.set()
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        limit = rec.options.max_backlog_bytes
        paused = False
        full = 0  # consecutive full batches: we are behind the bus
        try:
            while not self.stopping.is_set():
                if rec.backlog_bytes > limit:
                    # The disk is slower than the bus: leave messages in zmq's queues.
                    if not paused:
                        rec.counters.backlog_pauses += 1
                        paused = True
                    self._monitor(monitor, 0)
                    time.sleep(0.002)
                    continue
                paused = False
                events = dict(poller.poll(100))
                if monitor in events:
                    self._monitor(monitor, 0)
                if sub in events:
                    taken = self._take(sub, behind=full >= _BEHIND_AFTER)
                    full = full + 1 if taken == _BATCH else 0
            deadline = time.monotonic() + _DRAIN_ON_STOP
            while time.monotonic() < deadline and self._take(sub, behind=True):
                pass
        except zmq.ContextTerminated:
            pass
        finally:
            sub.disable_monitor()
            monitor.close()
            sub.close()

    def _take(self, sub: zmq.Socket, behind: bool) -> int:
        """Receive what is available now (up to one batch); returns the count.

        One receive time per batch: a batch takes about a millisecond to drain.
        Frames are taken with copy=False and `.more` because `recv_multipart`
        costs a socket-option lookup per frame, a third of the receive time.
        """
        ts = time.time()
        batch: list[list[bytes]] = []
        append = batch.append
        recv = sub.recv
        for _ in range(_BATCH):
            try:
                frame = recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            frames = [frame.bytes]
            while frame.more:
                frame = recv(copy=False)
                frames.append(frame.bytes)
            append(frames)
        if batch:
            self.recorder.record_batch(ts, batch, behind=behind)
        return len(batch)

    def _monitor(self, monitor: zmq.Socket, timeout: int) -> None:
        while monitor.poll(timeout):
            try:
                msg = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            event = msg["event"]
            endpoint = msg.get("endpoint", b"")
            detail = endpoint.decode() if isinstance(endpoint, bytes) else str(endpoint)
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.recorder.on_connection("connected", time.time(), detail)
            elif event == zmq.EVENT_DISCONNECTED:
                self.recorder.on_connection("disconnected", time.time(), detail)
            elif event == zmq.EVENT_CONNECT_RETRIED and self.recorder.connection == "connecting":
                self.recorder.connection_since = self.recorder.connection_since or time.time()

