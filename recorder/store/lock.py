"""One recorder per log folder, decided by an OS file lock, never by a PID file.

The lock dies with the process, so a stale PID (dead or reused) can never block
a start; the PID written inside the lock file is only used to name the holder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from recorder.errors import PersistError
from recorder.store.fsutil import open_private
from recorder.store.unfinished import refuse_unfinished_restore


class AlreadyRunning(PersistError):
    def __init__(self, path: Path, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        who = f"PID {pid}" if pid else "another process"
        super().__init__(f"a recorder is already recording into {path.parent} ({who} holds {path})")


class InstanceLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, attempts: int = 3) -> None:
        """Take the lock, trying `attempts` times 50 ms apart (a recorder that is
        stopping lets go of it a moment later); raises `AlreadyRunning`, or
        `UnfinishedRestore` when the folder is a restore-backup not finished yet."""
        refuse_unfinished_restore(self.path.parent)
        fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
        for attempt in range(attempts):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == attempts - 1:
                    pid = holder_pid(self.path)
                    os.close(fd)
                    raise AlreadyRunning(self.path, pid) from None
                time.sleep(0.05)
        write_holder(fd, os.getpid())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                blank(self._fd)
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


PID_ROOM = 24  # bytes kept in the lock file between holders: a PID fits in place


def write_holder(fd: int, pid: int) -> None:
    """Name the holder in the lock file, written over the blanks the last one left: no
    new block is needed, so the lock is taken on a full disk too (`persist prune` and
    `persist trash empty` are how one frees it). Where even that cannot be written (a
    file from an older persist, truncated to nothing), the holder goes unnamed: the
    flock is the lock, the PID only names who holds it."""
    text = f"{pid}\n".encode()
    try:
        os.pwrite(fd, text.ljust(PID_ROOM), 0)
        os.ftruncate(fd, PID_ROOM)
    except OSError:
        with contextlib.suppress(OSError):
            blank(fd)


def blank(fd: int) -> None:
    """Blank the holder's PID in place (the file keeps its block for the next holder)."""
    size = os.fstat(fd).st_size
    if size:
        os.pwrite(fd, b" " * size, 0)


def holder_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
