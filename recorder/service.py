"""The running recorder: the ZeroMQ receiver, the writer and syncer threads, signals.

Threads and who owns what:
- receiver: the SUB socket and its monitor; encodes each batch into journal lines
  (`Recorder.record_batch`) and hands them over as one chunk;
- writer (the journal's sink): the file descriptors; writes chunks, switches segments;
- syncer: fdatasync every `fsync_interval`;
- main: signals, and `Recorder.tick(now)` about 20 times a second.

Encoding runs on the receiving thread on purpose: pyzmq releases the GIL on every
receive, so a second Python thread busy encoding made each receive wait for the
GIL (a convoy that halved throughput). The writer thread holds the GIL only for
a moment per chunk; its time goes to `write()`, which releases it.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import threading
import time
from logging.handlers import RotatingFileHandler
from types import FrameType

import zmq
from zmq.utils.monitor import recv_monitor_message

from .broker import DEFAULT_HWM, Broker
from .daemon import Recorder, RecorderOptions
from .fsutil import ensure_private_dir, open_private
from .lock import InstanceLock

log = logging.getLogger("agent_persist.recorder")

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


class Syncer(threading.Thread):
    def __init__(self, recorder: Recorder) -> None:
        super().__init__(name="persist-syncer", daemon=True)
        self.recorder = recorder
        self.stopping = threading.Event()

    def run(self) -> None:
        rec = self.recorder
        interval = rec.options.fsync_interval
        while not self.stopping.wait(interval):
            if rec.journal.written != rec.journal.durable:
                rec.sync()


def setup_logging(recorder: Recorder, *, to_stderr: bool) -> logging.Handler:
    ensure_private_dir(recorder.layout.root)
    os.close(open_private(recorder.layout.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND))
    handler = RotatingFileHandler(recorder.layout.log, maxBytes=5 * 1024 * 1024, backupCount=3)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("agent_persist")
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    if to_stderr:
        err = logging.StreamHandler()
        err.setFormatter(logging.Formatter("persist: %(message)s"))
        root.addHandler(err)
    return handler


def run_recorder(
    options: RecorderOptions,
    *,
    on_ready: object = None,
    to_stderr: bool = True,
    stop_event: threading.Event | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or `stop_event`); returns an exit code.

    Raises `AlreadyRunning` if another recorder holds the log folder.
    """
    os.umask(0o077)  # whatever we create (rotated logs, ipc sockets) is private too
    ensure_private_dir(options.log_dir)
    recorder = Recorder(options)
    lock = InstanceLock(recorder.layout.lock)
    lock.acquire()
    handler = setup_logging(recorder, to_stderr=to_stderr)
    stop = stop_event or threading.Event()
    reopen = threading.Event()
    ctx = zmq.Context()
    broker: Broker | None = None
    threads: list[Syncer | Receiver] = []
    previous: dict[int, object] = {}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            reopen.set()
        else:
            stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        if options.embedded_broker:
            broker = Broker(options.embedded_broker, options.broker, hwm=DEFAULT_HWM)
            broker.start()
            log.info(
                "embedded broker: publish to %s, subscribe at %s", broker.frontend, broker.backend
            )
        recorder.open()
        recorder.journal.sink.start()
        threads = [Syncer(recorder), Receiver(recorder, ctx)]
        if options.fsync != "interval":
            threads.pop(0)
        for t in threads:
            t.start()
        log.info(
            "recording %s into %s (PID %d, fsync %s)",
            options.broker,
            options.log_dir,
            os.getpid(),
            options.fsync,
        )
        recorder.write_status(time.time())
        if callable(on_ready):
            on_ready(recorder)
        while not stop.is_set():
            stop.wait(0.05)
            if reopen.is_set():
                reopen.clear()
                _reopen(recorder, handler)
            recorder.tick(time.time())
        log.info("stopping: draining and taking the shutdown checkpoint")
        for t in reversed(threads):  # receiver first: it drains what zmq holds
            t.stopping.set()
            t.join(2.0)
        recorder.close()
        log.info("stopped cleanly (%d messages this run)", recorder.counters.written)
        return 0
    finally:
        lock.release()  # the journal is closed (or never opened): a successor may start
        if broker is not None:
            broker.stop()
        if not any(t.is_alive() for t in threads):
            ctx.term()  # every socket was closed by the thread that owned it
        else:
            log.warning("a zmq thread did not stop in time; leaving its context to the OS")
        for sig, old in previous.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
        logging.getLogger("agent_persist").removeHandler(handler)
        handler.close()


def _reopen(recorder: Recorder, handler: logging.Handler) -> None:
    """SIGHUP: reopen the log file and the journal segment (after logrotate, say)."""
    if isinstance(handler, RotatingFileHandler):
        handler.acquire()
        try:
            handler.close()
            handler.stream = handler._open()
        finally:
            handler.release()
    recorder.request_reopen()
    log.info("reopened files on SIGHUP")


def is_address_in_use(exc: BaseException) -> bool:
    return isinstance(exc, zmq.ZMQError) and exc.errno == errno.EADDRINUSE
