"""Waking a running recorder's main thread from another process: `control/wake`.

A request left in `control/` (`persist checkpoint`, an agent's hook, maintenance) was
found by the main thread's next look, up to half a second later, and so that thread
woke twice a second even with nothing to do. Now the client also writes a byte into
`control/wake`, a FIFO the recorder reads on a thread that sleeps until one comes and
then wakes the main thread: requests are answered at once, and an idle recorder's
main thread wakes only for its heartbeat. The recorder still looks every
`IDLE_TICK` seconds, so a request from a client that could not poke is answered too.

Only the FIFO's reader and writers meet: no PID to trust, nothing on the network,
and a writer finds no reader (ENXIO) when no recorder runs.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from recorder.store.fsutil import ensure_private_dir

WAKE_NAME = "wake"

log = logging.getLogger("agent_persist.recorder")


def wake_path(control: Path) -> Path:
    return control / WAKE_NAME


def poke(control: Path) -> bool:
    """Wake the recorder that listens on `control/wake`; False when none listens (or
    the file is not our FIFO: never write into anything else)."""
    try:
        fd = os.open(wake_path(control), os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # ENXIO: no reader (no recorder); ENOENT: none made one
        return False
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
        with contextlib.suppress(BlockingIOError):  # full of pokes already: it wakes
            os.write(fd, b"!")
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


class WakeListener:
    """The recorder's end: makes the FIFO and calls `on_wake` for each poke, from a
    thread of its own that sleeps in `read()` in between (no periodic wake-up)."""

    def __init__(self, control: Path, on_wake: Callable[[], None]) -> None:
        self.path = wake_path(control)
        self.on_wake = on_wake
        self._read = self._write = -1
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.error: str | None = None  # why there is no listener (requests are still seen)

    def start(self) -> bool:
        """Listen; False (with `error`) when the FIFO cannot be made or opened."""
        try:
            ensure_private_dir(self.path.parent)
            self._make_fifo()
            # The reader first (a non-blocking open for reading never waits), then our
            # own writer: with one writer always open, a client closing its end never
            # shows the reader an end of file, so `read()` only ever returns pokes.
            self._read = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            self._write = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            os.set_blocking(self._read, True)
        except OSError as exc:
            self.error = f"cannot listen on {self.path}: {exc.strerror or exc}"
            self._close_fds()
            return False
        self._thread = threading.Thread(target=self._run, name="persist-wake", daemon=True)
        self._thread.start()
        return True

    def intact(self) -> bool:
        """Whether `control/wake` is still the FIFO this listener reads (an `rm -rf` of
        the folder removes it: clients then find no reader)."""
        if self._read < 0:
            return False
        try:
            there, mine = self.path.lstat(), os.fstat(self._read)
        except OSError:
            return False
        return (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino)

    def renew(self) -> bool:
        """Listen on a new FIFO in place of one removed from outside; False (with
        `error`) when that cannot be done (requests are then looked for at each tick)."""
        self.stop()
        if self._thread is not None:  # still in `read()`: never two readers of pokes
            self.error = f"cannot listen on {self.path} again: its reader did not stop"
            return False
        self._stopping = False
        self.error = None
        return self.start()

    def _make_fifo(self) -> None:
        """The FIFO, made 0600; anything else under its name (a file left by hand, a
        FIFO of another owner's mode) is replaced."""
        try:
            st = self.path.lstat()
        except FileNotFoundError:
            pass
        else:
            if stat.S_ISFIFO(st.st_mode) and st.st_mode & 0o777 == 0o600:
                return
            self.path.unlink()
        os.mkfifo(self.path, 0o600)

    def _run(self) -> None:
        while True:
            try:
                data = os.read(self._read, 512)
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                log.warning("control wake-ups stopped (%s); requests are still seen", exc)
                return
            if self._stopping or not data:
                return
            self.on_wake()

    def stop(self, timeout: float = 1.0) -> None:
        """End the thread (a byte through our own writer ends its `read()`) and close."""
        if self._thread is not None:
            self._stopping = True
            with contextlib.suppress(OSError):
                os.write(self._write, b"!")
            self._thread.join(timeout)
            if self._thread.is_alive():  # never leave it reading a closed descriptor
                return
            self._thread = None
        self._close_fds()

    def _close_fds(self) -> None:
        for fd in (self._read, self._write):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._read = self._write = -1
