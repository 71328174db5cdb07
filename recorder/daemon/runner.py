"""The running recorder: its threads, signals and main loop (zmq stays in `bus.receiver`).

Threads and who owns what:
- receiver: the SUB socket and its monitor; encodes each batch into journal lines
  (`Recorder.record_batch`) and hands them over as one chunk (in a flood, one per
  `CHUNK_BYTES`);
- writer (the journal's sink): the file descriptors; writes chunks, switches segments;
- syncer: fdatasync `fsync_interval` after something was written (asleep when idle);
- main: signals, and `Recorder.tick(now)` twice a second while messages come, every
  other second when idle (`Recorder.sleep_for`), or at once when the recorder asks
  (`Recorder.status_soon`: an error, a link lost) or a client leaves a request in
  `control/` (`wakeup`: its own thread sleeps until a client writes to a FIFO).

Encoding runs on the receiving thread on purpose: pyzmq releases the GIL on every
receive, so a second Python thread busy encoding made each receive wait for the
GIL (a convoy that halved throughput). The writer thread holds the GIL only for
a moment per chunk; its time goes to `write()`, which releases it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from logging.handlers import RotatingFileHandler

from recorder.bus.keys import ClientKeys, ServerKeys, load_client, load_server
from recorder.bus.receiver import ReceiverSettings, Transport
from recorder.daemon.core import TICK, Recorder
from recorder.daemon.maintenance import ForgetWords
from recorder.daemon.options import EmbeddedMode, RecorderOptions
from recorder.daemon.signals import SignalRelay
from recorder.daemon.wakeup import WakeListener
from recorder.store.fsutil import ensure_private_dir, open_private
from recorder.store.journal import ABANDON_WAIT, UnwrittenData
from recorder.store.lock import InstanceLock, LockLost, read_holder
from recorder.store.status import reserve_status_space
from recorder.store.waiting import announce, withdraw

log = logging.getLogger("agent_persist.recorder")


class Syncer(threading.Thread):
    def __init__(self, recorder: Recorder) -> None:
        super().__init__(name="persist-syncer", daemon=True)
        self.recorder = recorder
        self.stopping = threading.Event()

    def run(self) -> None:
        """Group commit: once something is written, wait `fsync_interval` (gathering
        more), then fdatasync it all. Idle, it sleeps until the next write."""
        rec = self.recorder
        wrote = rec.journal.sink.wrote
        interval = rec.options.fsync_interval
        while True:
            wrote.wait()
            if self.stopping.wait(interval):
                return
            wrote.clear()  # what is written after this wakes us again
            if rec.journal.written != rec.journal.durable:
                rec.sync()

    def stop(self, timeout: float = 2.0) -> None:
        self.stopping.set()
        self.recorder.journal.sink.wrote.set()
        self.join(timeout)


def setup_logging(recorder: Recorder, *, to_stderr: bool) -> logging.Handler:
    ensure_private_dir(recorder.layout.root)
    os.close(open_private(recorder.layout.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND))
    handler = RotatingFileHandler(recorder.layout.log, maxBytes=5 * 1024 * 1024, backupCount=3)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("agent_persist")
    root.setLevel(logging.INFO)
    # A log line that cannot be written (its disk is full, as the journal's may be) is
    # not a traceback in recorder.out: the status reports the full disk.
    logging.raiseExceptions = False
    root.addHandler(handler)
    if to_stderr:
        err = logging.StreamHandler()
        err.setFormatter(logging.Formatter("persist: %(message)s"))
        root.addHandler(err)
    return handler


def run_recorder(
    options: RecorderOptions,
    *,
    on_ready: Callable[[str | None], None] | None = None,  # given the embedded endpoint
    to_stderr: bool = True,
    stop_event: threading.Event | None = None,
    forget_words: ForgetWords | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or `stop_event`); returns an exit code. `forget_words`:
    see `Recorder.forget_words`.

    `stop_event` is seen when the main thread next wakes (up to `IDLE_TICK` later when
    idle): `wakeup.poke(<log dir>/control)` after setting it wakes it at once.

    Raises `AlreadyRunning` if another recorder holds the log folder, `FolderBusy` if a
    `persist` command (a prune, say) holds it past `lock.TOOL_WAIT` seconds.
    """
    # CURVE keys first: a missing or unsafe key is one line before anything starts.
    server_keys: ServerKeys | None = None
    client_keys: ClientKeys | None = None
    if options.use_curve:
        if options.bind:
            server_keys = load_server(options.keys_folder)
        else:
            client_keys = load_client(options.keys_folder)
        if options.embedded is not EmbeddedMode.NO:
            server_keys = server_keys or load_server(options.keys_folder)
    os.umask(0o077)  # whatever we create (rotated logs, ipc sockets) is private too
    ensure_private_dir(options.log_dir)
    recorder = Recorder(options, forget_words=forget_words)
    lock = InstanceLock(recorder.layout.lock)
    # a `persist` command holding the folder (a prune, a checkpoint taken while no
    # recorder ran) is waited for, saying so, and named in `recorder.waiting` (for
    # `persist status`, `persist stop` and a start in the background); a recorder
    # holding it is AlreadyRunning
    layout = recorder.layout

    def waiting(line: str) -> None:
        print(f"persist: {line}", file=sys.stderr, flush=True)
        announce(layout, *read_holder(layout.lock))

    try:
        lock.acquire(waiting=waiting)
    finally:
        withdraw(layout)
    handler = setup_logging(recorder, to_stderr=to_stderr)
    stop = stop_event or threading.Event()
    reopen = threading.Event()
    transport = Transport(
        recorder,
        ReceiverSettings(
            endpoint=options.broker,
            also_connect=options.more_brokers,
            bind=options.bind,
            rcvhwm=options.rcvhwm,
            heartbeat_ms=options.zmq_heartbeat_ms,
            max_backlog_bytes=options.max_backlog_bytes,
            max_message_bytes=options.max_message_bytes,
            max_frames=options.max_frames,
            curve_server=server_keys if options.bind else None,
            curve_client=client_keys,
        ),
    )
    syncer: Syncer | None = None
    wake = WakeListener(recorder.layout.control, recorder.poked)
    failed: str | None = None  # the receiver could not start: stop at once, say why
    lost: str | None = None  # another process took the folder: leave it at once, say so

    def on_signal(signum: int) -> None:  # in the relay's thread (`signals.SignalRelay`)
        if signum == signal.SIGHUP:
            reopen.set()
        elif signum == signal.SIGUSR2 or (signum == signal.SIGINT and stop.is_set()):
            # `persist stop --force`, or Ctrl-C twice: a stop does not wait for room on
            # a full disk (a second SIGTERM, another `persist stop`, still waits)
            recorder.give_up.set()
            stop.set()
        else:
            stop.set()
        recorder.attention.set()

    relay = SignalRelay((signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2), on_signal)
    relay.start()
    try:
        embedded = options.embedded_broker()
        recorder.embedded_broker = embedded
        if embedded:
            broker = transport.start_broker(embedded, curve=server_keys)
            log.info(
                "embedded broker: publish to %s, subscribe at %s", broker.frontend, broker.backend
            )
        # the journal's start is written now, in this thread: a full disk ends the start
        # in one line (nothing received yet), not a wait no signal or status can reach
        recorder.journal.sink.fail_inline = True
        recorder.open()
        recorder.journal.sink.fail_inline = False
        poked = wake.start()
        if not poked:
            log.warning("%s: requests are looked for every %.1f s", wake.error, TICK)
        recorder.journal.sink.start()
        if options.fsync == "interval":
            syncer = Syncer(recorder)
            syncer.start()
        receiver = transport.start_receiver()
        receiver.ready.wait(10.0)
        if receiver.setup_error is not None:  # a bind refused (port taken), say
            stop.set()
            failed = f"cannot record: {receiver.setup_error}"
        else:
            log.info(
                "recording %s into %s (PID %d, fsync %s)",
                options.describe_endpoints(),
                options.log_dir,
                os.getpid(),
                options.fsync,
            )
        recorder.write_status(time.time())
        if on_ready is not None and failed is None:
            on_ready(embedded)
        while not stop.is_set():
            # Not a busy loop: the recorder wakes it for what cannot wait (an error, a
            # link lost), signals and clients' requests (`control/wake`) wake it too;
            # else two wake-ups a second while messages come, one every other second
            # when idle.
            recorder.attention.wait(recorder.sleep_for(poked=poked))
            recorder.attention.clear()
            if reopen.is_set():
                reopen.clear()
                _reopen(recorder, handler)
            try:
                _keep_lock(lock, recorder, handler)
            except LockLost as exc:
                lost = str(exc)
                recorder.error(lost)
                recorder.leave()
                break
            if poked and not wake.intact():  # removed with its folder: clients find no reader
                poked = wake.renew()
                if poked:
                    log.warning("%s was removed; listening on a new one", wake.path)
                else:
                    log.warning("%s: requests are looked for every %.1f s", wake.error, TICK)
            recorder.tick(time.time())
        if lost is None:
            log.info("stopping: draining and taking the shutdown checkpoint")
            recorder.begin_stop()
        # first: it drains what zmq holds, and journals all it took in before the journal
        # closes (however long that takes, unless the stop gives up: `Recorder.draining`)
        abandoned = not transport.stop_receiver(
            recorder.draining if lost is None else None, step=0.5
        )
        if abandoned and not recorder.stop_taking():
            recorder.abandon()  # it holds the journal still: no stop record can follow
            message = (
                "NOT a clean stop: the receiver was still inside a batch "
                f"{2 * ABANDON_WAIT:g} s after the stop gave up; the journal was closed "
                "without it (what it was adding is lost; no stop record or shutdown checkpoint)"
            )
            log.error(message)
            print(f"persist: {message}", file=sys.stderr, flush=True)
            return 1
        if syncer is not None:
            syncer.stop()
        if lost is not None:
            recorder.journal.close()  # what it holds was dropped (`Recorder.leave`)
            print(f"persist: {lost}", file=sys.stderr, flush=True)
            return 1
        try:
            recorder.close()
        except UnwrittenData as exc:
            message = f"NOT a clean stop: {exc} (lost; the next start records the gap)"
            log.error(message)  # the log may be on the full disk too: stderr says it as well
            print(f"persist: {message}", file=sys.stderr, flush=True)
            return 1  # systemd's Restart=on-failure starts it again
        if abandoned and lost is None:
            message = (
                "NOT a clean stop: the receiver had not finished journaling what it took in "
                f"{ABANDON_WAIT:g} s after the stop gave up; what it handed over after that "
                f"is lost ({recorder.late:,} messages so far)"
            )
            log.error(message)
            print(f"persist: {message}", file=sys.stderr, flush=True)
            return 1
        if failed is not None:
            log.error(failed)
            print(f"persist: {failed}", file=sys.stderr, flush=True)
            return 1
        log.info("stopped cleanly (%d messages this run)", recorder.counters.written)
        return 0
    finally:
        wake.stop()
        lock.release()  # the journal is closed (or never opened): a successor may start
        if not transport.close():
            log.warning("the receiver did not stop in time; leaving its context to the OS")
        relay.stop()
        logging.getLogger("agent_persist").removeHandler(handler)
        with contextlib.suppress(OSError):  # lines it holds for a full disk: not a traceback
            handler.close()


def _reopen_log(handler: RotatingFileHandler) -> None:
    handler.acquire()
    try:
        handler.close()
        handler.stream = handler._open()
    finally:
        handler.release()


def _keep_lock(lock: InstanceLock, recorder: Recorder, handler: logging.Handler) -> None:
    """Its lock file removed from outside (an `rm -rf` of the folder, say), the recorder
    locks a new one at once, and looks at once for what the same `rm` may have taken:
    its segment (put back from the open file), its log and the status' reserve are made
    again. `LockLost` when another process locked the new file first."""
    said = lock.keep()
    if said is None:
        return
    layout = recorder.layout
    if isinstance(handler, RotatingFileHandler) and not layout.log.exists():
        _reopen_log(handler)
    if not layout.status_reserve.exists():
        reserve_status_space(layout)
    recorder.error(said)
    recorder.journal.sink.put(("check",))


def _reopen(recorder: Recorder, handler: logging.Handler) -> None:
    """SIGHUP: reopen the log file and the journal segment (after logrotate, say)."""
    if isinstance(handler, RotatingFileHandler):
        _reopen_log(handler)
    recorder.request_reopen()
    log.info("reopened files on SIGHUP")
