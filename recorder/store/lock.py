"""One recorder per log folder, decided by an OS file lock, never by a PID file.

The lock dies with the process, so a stale PID (dead or reused) can never block
a start; the PID written inside the lock file is only used to name the holder.

A `persist` command that writes the journal while no recorder runs (`prune`, `trash`,
`checkpoint`) holds the same lock for a moment, and writes its name after its PID
(`12345 prune`): another command, or a recorder starting, waits for it (`TOOL_WAIT`,
then `FolderBusy` naming it) instead of taking it for a running recorder (a bare PID,
as every holder wrote before 2026-12-07).

A lock file deleted from outside (an `rm` of it, or of the whole folder) no longer
locks anything: a second process would create a new file and lock that. So, on Linux,
the holder also binds an abstract socket named after the folder (`_Guard`): no file,
nothing to delete, gone with the process; a second process is refused by it however
the folder's files came and went. The recorder looks at its lock file at each
wake-up (`InstanceLock.keep`) and takes a new one at once when its own is gone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from recorder.errors import PersistError
from recorder.store.fsutil import ensure_private_dir, open_lock, read_regular
from recorder.store.layout import Layout
from recorder.store.unfinished import refuse_unfinished_restore


class AlreadyRunning(PersistError):
    def __init__(self, path: Path, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        who = f"PID {pid}" if pid else "another process"
        super().__init__(f"a recorder is already recording into {path.parent} ({who} holds {path})")


class FolderBusy(PersistError):
    """Another `persist` command (no recorder) held the folder's lock past the wait."""

    def __init__(self, path: Path, pid: int | None, role: str, waited: float) -> None:
        self.path = path
        self.pid = pid
        self.role = role
        who = f" (PID {pid})" if pid else ""
        super().__init__(
            f"another `persist {role}`{who} is working on {path.parent} (it held {path.name} "
            f"for more than {waited:g}s); try again when it is done"
        )


TOOL_WAIT = 30.0  # seconds one waits for a `persist` command holding the folder (as retention)

# told, once per wait, that a `persist` command holding the folder is waited for (the
# CLI says it on stderr: `tell_waits`); an `acquire(waiting=...)` of its own goes first
_told_waits: Callable[[str], object] | None = None


def tell_waits(say: Callable[[str], object] | None) -> None:
    """Who is told of a wait for another `persist` command (None: nobody)."""
    global _told_waits
    _told_waits = say


def told_waits() -> Callable[[str], object] | None:
    """Who is told of a wait (`tell_waits`): a start in the background tells it of the
    recorder's own wait too (`spawn_recorder`)."""
    return _told_waits


class LockLost(PersistError):
    """Another process took the folder's lock after this one's lock file was removed."""

    def __init__(self, path: Path, what: str, pid: int | None) -> None:
        who = f"PID {pid}" if pid else "another process"
        super().__init__(
            f"{path.name} was {what} from outside and {who} has locked the new one: this "
            f"recorder stops, so that only one writes {path.parent}"
        )


class InstanceLock:
    def __init__(self, path: Path, role: str = "") -> None:
        """`role`: "" for the recorder; for a `persist` command holding the folder for a
        moment, its name (`prune`, `checkpoint`: a word, written after its PID)."""
        self.path = path
        self.role = role
        self._fd: int | None = None
        self._guard: _Guard | None = None
        self._failed: str | None = None  # why `keep` could not lock a new file, said once
        self._aside = Layout(path.parent).recovery  # where what stands in its way goes

    def acquire(
        self,
        attempts: int = 3,
        wait: float = TOOL_WAIT,
        waiting: Callable[[str], object] | None = None,
    ) -> None:
        """Take the lock, trying `attempts` times 50 ms apart while a recorder holds it
        (a recorder that is stopping lets go of it a moment later); raises
        `AlreadyRunning`, or `UnfinishedRestore` when the folder is a restore-backup not
        finished yet. A `persist` command holding it is waited for, up to `wait` seconds
        (`waiting` is told once), then `FolderBusy`; a holder not named yet (it has just
        taken the lock) is looked at again for up to `_UNNAMED_LOOKS`."""
        refuse_unfinished_restore(self.path.parent)
        fd = open_lock(self.path, self._aside)
        guard = _Guard(self.path.parent)
        deadline = time.monotonic() + wait
        tries = unnamed = 0
        told = False
        waiting = waiting or _told_waits
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if guard.take():
                    break
                fcntl.flock(fd, fcntl.LOCK_UN)  # its lock file was removed: still held
            except BlockingIOError:
                pass
            pid, role = read_holder(self.path)
            if role:  # a command, for a moment
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise FolderBusy(self.path, pid, role, wait) from None
                if waiting is not None and not told:
                    told = True
                    who = f" (PID {pid})" if pid else ""
                    waiting(f"waiting for `persist {role}`{who} to finish with {self.path.parent}")
            elif pid is None and unnamed < _UNNAMED_LOOKS:
                unnamed += 1
            else:
                tries += 1
                if tries >= attempts:
                    pid = pid or _status_pid(self.path.parent)
                    os.close(fd)
                    raise AlreadyRunning(self.path, pid) from None
            time.sleep(0.05)
        write_holder(fd, os.getpid(), self.role)
        self._fd = fd
        self._guard = guard

    def keep(self) -> str | None:
        """The held lock file must still be the file at its path. One deleted or
        replaced from outside (an `rm` of it or of the whole folder) is made again and
        locked at once (the folder too, if it is gone); returns what happened, to be
        said, or None when all is well. Raises `LockLost` when another process locked
        the new file first (one that does not take `_Guard`: not on Linux, or in another
        network namespace): the caller must stop writing."""
        fd = self._fd
        if fd is None:
            return None
        try:
            ours, there = os.fstat(fd), os.stat(self.path)
            if (there.st_dev, there.st_ino) == (ours.st_dev, ours.st_ino):
                return None
            what = "replaced"
        except FileNotFoundError:
            what = "deleted"
        except OSError:
            return None  # cannot tell now: the next look tells
        said = f"{self.path.name} was {what} from outside while held"
        try:
            ensure_private_dir(self.path.parent)
            new = open_lock(self.path, self._aside)
        except OSError as exc:  # LockInTheWay too: a folder, a named pipe put there
            failed = f"{said}, and could not be made again: {exc.strerror or exc}"
            if failed == self._failed:
                return None  # said already: looked at again at every wake-up
            self._failed = failed
            return failed
        for attempt in range(_KEEP_ATTEMPTS):
            try:
                # a process the guard refuses (a second recorder, `persist checkpoint`
                # asking) or `persist doctor` probing holds it for a moment: let go of
                fcntl.flock(new, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == _KEEP_ATTEMPTS - 1:
                    pid = holder_pid(self.path)
                    os.close(new)
                    raise LockLost(self.path, what, pid) from None
                time.sleep(0.05)
        write_holder(new, os.getpid(), self.role)
        os.close(fd)  # the old file's lock (nobody can reach that file by its path)
        self._fd = new
        self._failed = None
        done = "made again" if what == "deleted" else "the file in its place"
        return f"{said}: {done} and locked (PID {os.getpid()})"

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                blank(self._fd)
            os.close(self._fd)  # closing drops the flock
            self._fd = None
        if self._guard is not None:
            self._guard.close()
            self._guard = None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_KEEP_ATTEMPTS = 10  # 50 ms apart: a new lock file held 0.5 s is another holder's
# 50 ms apart: a holder that has just taken the lock names itself within microseconds;
# one unnamed for longer (its lock file replaced from outside) is taken for a recorder
_UNNAMED_LOOKS = 10

PID_ROOM = 24  # bytes kept in the lock file between holders: a PID (and a role) fits in place


def write_holder(fd: int, pid: int, role: str = "") -> None:
    """Name the holder in the lock file (`PID`, or `PID role` for a `persist` command),
    written over the blanks the last one left: no new block is needed, so the lock is
    taken on a full disk too (`persist prune` and `persist trash empty` are how one frees
    it). Where even that cannot be written (a file from an older persist, truncated to
    nothing), the holder goes unnamed: the flock is the lock, the PID only names who
    holds it."""
    text = (f"{pid} {role}\n" if role else f"{pid}\n").encode()[:PID_ROOM]
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


class _Guard:
    """The lock's second half, which no file operation can take away: an abstract Unix
    socket (Linux) named after the folder (its real path, the identity of the folder it
    is in) and the user, bound while the lock is held. A second bind of that name fails
    (EADDRINUSE) as long as the holder lives, also after the folder was removed and made
    again; the kernel frees it when the holder ends, as it does the flock. Elsewhere (no
    abstract sockets) it always succeeds: the flock alone decides."""

    def __init__(self, folder: Path) -> None:
        real = os.path.realpath(folder)
        # the folder it is in too (which an `rm -rf` of the log folder leaves): two
        # containers sharing the network namespace whose folders have the same path in
        # each are two folders, not one
        try:
            up = os.stat(os.path.dirname(real))
            where = f"{up.st_dev}:{up.st_ino}"
        except OSError:
            where = ""
        # the path's own bytes: a name that is not UTF-8 has no `str.encode()`
        key = hashlib.sha256(f"{os.getuid()}:{where}:".encode() + os.fsencode(real)).hexdigest()
        key = key[:40]
        self.name = b"\0agent-persist/lock/" + key.encode()
        self._sock: socket.socket | None = None

    def take(self) -> bool:
        """Bind the name; False when another process holds it."""
        if self._sock is not None:
            return True
        if not sys.platform.startswith("linux"):
            return True
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(self.name)
        except OSError as exc:
            sock.close()
            # held by another process; any other error cannot tell: the flock decides
            return exc.errno != errno.EADDRINUSE
        self._sock = sock
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _status_pid(folder: Path) -> int | None:
    """The PID the folder's status names (its lock file, removed and made again, may
    not name its holder yet)."""
    try:
        pid = json.loads(read_regular(folder / "status.json")[0]).get("pid")
    except (OSError, ValueError, AttributeError):
        return None
    return pid if isinstance(pid, int) and pid > 0 else None


def read_holder(path: Path) -> tuple[int | None, str]:
    """The holder the lock file names: its PID (None: unnamed) and role ("": a recorder,
    or a holder from before roles were written)."""
    try:
        words = read_regular(path)[0].decode(errors="replace").split()  # never waits
        pid = int(words[0]) if words else None
    except (OSError, ValueError):
        return None, ""
    return pid, " ".join(words[1:2])


def holder_pid(path: Path) -> int | None:
    return read_holder(path)[0]
