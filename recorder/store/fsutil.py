"""Small filesystem helpers: private folders and files, atomic replacement."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import shlex
import stat
import threading
from pathlib import Path
from typing import Any

from recorder.errors import PersistError

DIR_MODE = 0o700
FILE_MODE = 0o600


PRIVATE_UMASK = 0o077  # of the long-running processes: what a library creates is private too


def make_private_dirs(path: Path) -> Path:
    """Create `path` and the folders missing above it, each 0700 whatever the umask
    (`mkdir(parents=True, mode=...)` gives the mode to the last one only, the umask's
    to the others); a folder that exists keeps its mode (it may be another program's)."""
    missing = []
    parent = path
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # made meanwhile by another: theirs, and its mode with it
        os.chmod(folder, DIR_MODE)  # a umask of 0o700 or more leaves less than 0700
    path.mkdir(exist_ok=True)  # says FileExistsError when `path` is a file
    return path


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and parents) and make sure the folder itself is 0700; parents it
    creates are 0700 too (`mkdir(parents=True)` would give them the umask's mode)."""
    make_private_dirs(path)
    if (path.stat().st_mode & 0o777) != DIR_MODE:
        os.chmod(path, DIR_MODE)
    return path


# errors that say a kernel copy (`sendfile`, `copy_file_range`) cannot be done between
# these two files: the bytes are read and written instead
NO_KERNEL_COPY = frozenset({errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})


def open_private(path: Path, flags: int) -> int:
    """os.open with mode 0600 whatever the umask; returns the descriptor."""
    fd = os.open(path, flags | os.O_CLOEXEC, FILE_MODE)
    try:
        if (os.fstat(fd).st_mode & 0o777) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_all(fd: int, data: bytes) -> None:
    """Write every byte: `os.write` may write part of them (a disk filling up), and
    the rest must then fail as ENOSPC here, not as a copy that reads back short."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_whole(out: Any, data: bytes | memoryview) -> None:
    """`out.write(data)`, every byte of it: a raw file object (`io.FileIO`: stdout under
    `python -u` or PYTHONUNBUFFERED) may write part and return how many, as `os.write`
    does (a disk filling up, a pipe whose reader went away); the rest is written, so the
    failure comes here (ENOSPC, EPIPE), never a silent loss. Any other file writes all
    or raises, so it gets one call."""
    if not isinstance(out, io.RawIOBase):
        out.write(data)
        return
    view = memoryview(data)
    while view:
        n = out.write(view)
        if n is None:  # a non-blocking file that takes nothing now
            raise BlockingIOError(errno.EAGAIN, "the output takes nothing now (non-blocking)")
        view = view[n:]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


OPEN_FILES_WANTED = 1 << 16
"""Descriptors a `persist` program asks for: a journal's reader keeps each of its segments
open (a journal of 64 GiB in segments of the default 64 MiB has a thousand), and an
export holds those of its range for its workers."""


def raise_open_files_limit() -> None:
    """Raise this process's soft limit of open files (often 1024, kept low for programs
    still using select(), which none of ours do) toward its hard limit, as far as
    `OPEN_FILES_WANTED`: the children it starts inherit it. Before 2026-12-07 a journal
    of more than about 1,000 segments could not be exported, restored or browsed under
    the usual `ulimit -n 1024` ("Too many open files")."""
    import resource

    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = (
            OPEN_FILES_WANTED if hard == resource.RLIM_INFINITY else min(hard, OPEN_FILES_WANTED)
        )
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (OSError, ValueError):  # not allowed here (a sandbox): the limit stays
        pass


_TEMP_NAME = re.compile(r"\A\..+?(?:\.t(?P<ticks>\d+))?\.(?P<pid>\d+)\.tmp\Z", re.DOTALL)


def writer_tag() -> str:
    """`t<start ticks since boot>` of this process, to put in the name of a file it
    writes beside the pid, so `writer_may_live` knows the writer from a process that
    took its PID since without the wall clock (which steps); "" where /proc is not there."""
    from recorder.store.procstart import start_ticks

    ticks = start_ticks(os.getpid())
    return "" if ticks is None else f"t{ticks}"


def writer_may_live(pid: int, written: float, tag: str | None = None) -> bool:
    """Whether process `pid` may still be writing a temp file last changed at `written`
    (wall clock), whose name has the writer's `writer_tag()` `tag` (when it has one)."""
    if pid == os.getpid():
        return True
    if tag and tag[1:].isdigit():
        from recorder.store.procstart import same_process, start_ticks

        if start_ticks(pid) is not None:  # a clock that does not step: no mtime needed
            return same_process(pid, None, f":{tag[1:]}")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or a number we cannot judge: leave it
    import psutil

    try:
        started = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True
    return started <= written + 1.0  # a process started after the file is a reused PID


def stale_entries(folder: Path, name: re.Pattern[str], *, folders: bool = False) -> list[Path]:
    """The files (`folders`: the folders) in `folder`, never a link, named by `name`
    (its groups `pid` and, when there, `ticks`: the writer's `writer_tag()`) whose
    writer cannot be writing them any more (`writer_may_live`), in name order."""
    out: list[Path] = []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return out
    for entry in entries:
        match = name.match(entry.name)
        if match is None:
            continue
        try:
            if not (entry.is_dir if folders else entry.is_file)(follow_symlinks=False):
                continue
            written = entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        ticks = match.group("ticks")
        if not writer_may_live(int(match.group("pid")), written, f"t{ticks}" if ticks else None):
            out.append(Path(entry.path))
    return out


def remove_stale_temp_files(folder: Path, name: re.Pattern[str] | None = None) -> list[Path]:
    """Remove the temp files `AtomicFile` names `.<name>.<thread>[.t<ticks>].<pid>.tmp`
    (`name`: only those it matches) of processes that died before renaming them; a
    live process's file is never touched. Returns the removed."""
    removed: list[Path] = []
    for path in stale_entries(folder, name or _TEMP_NAME):
        try:
            os.unlink(path)
        except OSError:
            continue
        removed.append(path)
    return removed


_WRITER_TAG: dict[int, str] = {}


class AtomicFile:
    """A private (0600) temp file beside `path`, renamed over it on `commit()`.

    A reader sees either the old content or the new one, never a mix, even after
    a power cut. `durable=False` skips the fsyncs (for files rewritten every
    second that only need to be whole, not survive power loss). `exclusive`:
    never replace a file, `commit()` hard-links the temp file to `path` instead,
    which raises FileExistsError if `path` exists, however close in time it came.
    The temp file's name ends `.<thread>.t<start ticks>.<pid>.tmp` (`.<thread>.<pid>.tmp`
    where /proc is not there, and before 2026-12-07): unique to its writer, and the pid
    and its start (`writer_tag`) are what `remove_stale_temp_files` reads.
    """

    def __init__(self, path: Path, *, durable: bool = True, exclusive: bool = False) -> None:
        self.path = Path(path)
        if self.path.is_dir():  # else its temp file goes beside the folder, then fails
            raise IsADirectoryError(errno.EISDIR, "it is a folder, not a file", str(path))
        self.durable = durable
        self.exclusive = exclusive
        tag = _WRITER_TAG.get(os.getpid())
        if tag is None:  # (once per process: a fork has its own)
            tag = _WRITER_TAG[os.getpid()] = writer_tag()
        writer = ".".join(p for p in (str(threading.get_ident()), tag, str(os.getpid())) if p)
        self.tmp = self.path.with_name(f".{self.path.name}.{writer}.tmp")
        # a file of our own, new: the name is predictable, so in a folder others write
        # to (sticky /tmp) a link put there first must not be written through
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)  # a leftover of a writer that died (never followed)
        try:
            fd = open_private(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW)
            self.file = os.fdopen(fd, "wb")  # buffered: a write() is always written whole
        except BaseException:  # a signal's exception once the file was made: never left
            self.tmp.unlink(missing_ok=True)  # (O_EXCL: what is there is ours)
            raise

    def commit(self) -> None:
        try:
            self.file.flush()
            if self.durable:
                os.fsync(self.file.fileno())
            self.file.close()
            if self.exclusive:
                os.link(self.tmp, self.path)
                self.tmp.unlink()
            else:
                os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        if self.durable:
            fsync_dir(self.path.parent)

    def abort(self) -> None:
        try:
            if not self.file.closed:
                # flushes what is still buffered: on a full disk that fails again, and
                # the temp file must still go
                self.file.close()
        except OSError:
            pass  # its bytes are dropped with the file, the error the caller's
        finally:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.abort()
        elif not self.file.closed:
            self.commit()


def create_new(path: Path, data: bytes) -> bool:
    """Write `data` as `path` (an exclusive, durable `AtomicFile`) unless a file is
    there; False, writing nothing, when there is."""
    try:
        with AtomicFile(path, exclusive=True) as target:
            target.file.write(data)
    except FileExistsError:
        return False
    return True


def atomic_write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace `path` with `data` (temp file, fsync, rename, fsync of the folder)."""
    with AtomicFile(path, durable=durable) as target:
        target.file.write(data)


# O_NONBLOCK: opening a named pipe waits for a writer without it (a regular file ignores
# the flag); O_NOCTTY: a terminal never becomes ours
_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
_KINDS = {stat.S_IFIFO: "a named pipe", stat.S_IFDIR: "a folder", stat.S_IFSOCK: "a socket"}


def not_regular(mode: int) -> str:
    """What a file that is no regular file is, in a few words: `a named pipe, not a
    regular file`."""
    return f"{_KINDS.get(stat.S_IFMT(mode), 'a device')}, not a regular file"


class NotRegularFile(OSError):
    """A named pipe, a device, a socket or a folder where a file is read (EINVAL; its
    strerror is `not_regular`'s words)."""

    mode = 0  # the st_mode of what stands there

    @classmethod
    def of(cls, path: Path, mode: int) -> NotRegularFile:
        err = cls(errno.EINVAL, not_regular(mode), str(path))
        err.mode = mode
        return err


def open_private_regular(path: Path, flags: int) -> tuple[int, os.stat_result]:
    """`open_private` (0600, made when `flags` say so) for writing, never waiting on a
    named pipe with no reader: opened without blocking, NotRegularFile when what stands
    at `path` (a symlink followed) is no regular file (a folder, a named pipe), the
    descriptor blocking again; its `fstat` beside it. The caller closes it."""
    try:
        fd = os.open(path, flags | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY, FILE_MODE)
    except OSError as exc:  # ENXIO: a named pipe with no reader; EISDIR: a folder
        try:
            mode = os.stat(path).st_mode
        except OSError:
            raise exc from None
        if stat.S_ISREG(mode):
            raise
        raise NotRegularFile.of(path, mode) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile.of(path, st.st_mode)  # someone's: its mode left as it is
        os.set_blocking(fd, True)
        if (st.st_mode & 0o777) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def open_regular(path: Path) -> tuple[int, os.stat_result]:
    """`path` (a symlink followed) opened to read, and its `fstat`, if it is a regular
    file. A named pipe, a device or a folder is neither waited on nor kept open:
    NotRegularFile, so a derived file replaced with a FIFO cannot hang its reader. The
    descriptor is blocking again (O_NONBLOCK was for the open only); the caller closes
    it."""
    fd = os.open(path, _READ_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(errno.EINVAL, not_regular(st.st_mode), str(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_regular(path: Path) -> tuple[bytes, os.stat_result]:
    """The bytes of the regular file at `path`, and its `fstat` (`open_regular`'s rules:
    never waits on a named pipe)."""
    fd, st = open_regular(path)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks), st
    finally:
        os.close(fd)


def read_json_object(path: Path) -> dict[str, Any] | None:
    """A JSON object from `path`, or None if it is missing, unreadable, not a regular
    file (`read_regular`: never waited on) or not an object."""
    try:
        import orjson  # here: the agents' turn hooks use this module without it

        data = orjson.loads(read_regular(path)[0])
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class LockInTheWay(PersistError, NotRegularFile):
    """Something that is no regular file (a folder, a named pipe, a device) where a lock
    file of ours goes: no flock can be taken through it. Its message is one line naming
    the path, what is there and the command that moves it out of the way."""

    def __init__(self, path: Path, mode: int, aside: Path) -> None:
        what = not_regular(mode)
        self.fix = f"mv {shlex.quote(str(path))} {shlex.quote(str(aside))}/"
        self.sentence = (
            f"{path} is {what}, where a lock file goes: nothing can take that lock; move "
            f"it out of the way ({self.fix}) and run this again"
        )
        super().__init__(errno.EINVAL, what, str(path))

    def __str__(self) -> str:
        return self.sentence


def open_lock(path: Path, aside: Path) -> int:
    """The lock file at `path` (a symlink followed) opened to read and write, made (0600)
    when missing, for an flock; `LockInTheWay` when something that is no regular file
    stands there (`aside`: the folder its fix moves it to). A folder cannot be opened to
    write; a named pipe could be, and locked, but a reader of the holder's PID would
    then wait on it forever: neither is used. Before 2026-12-07 a folder there was
    "Is a directory" naming nothing to do, and a named pipe was taken."""
    try:
        fd, _ = open_private_regular(path, os.O_RDWR | os.O_CREAT)
    except NotRegularFile as exc:
        raise LockInTheWay(path, exc.mode, aside) from None
    return fd


def lock_in_the_way(path: Path) -> str | None:
    """What stands at lock file `path` when it is no regular file (`a folder, not a
    regular file`); None when nothing is there or a file is. One `stat`, for doctor."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:  # a loop of links: no lock can be taken through it either
        return f"a path that cannot be followed ({exc.strerror or exc})"
    return None if stat.S_ISREG(mode) else not_regular(mode)


def lock_refused(lock: Path) -> bool:
    """Whether the lock file is there but may not be opened (it or a folder above is
    another user's): who holds it cannot be told from here, `held_by_another` would say
    nobody."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except PermissionError:
        return True
    except OSError:
        return False
    os.close(fd)
    return False


def user_name(uid: int) -> str:
    """The login name of user `uid`, or the number when it has none."""
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return str(uid)


def held_by_another(lock: Path) -> bool:
    """Whether another process holds an flock on `lock` now, asked without creating the
    lock file (doctor only reads): a shared lock is refused while an exclusive one is
    held."""
    import fcntl

    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def flock_within(fd: int, timeout: float, poll: float = 0.02) -> bool:
    """Take an exclusive `flock` on `fd`, retrying every `poll` seconds; False if another
    process still holds it after `timeout` (the caller says who and raises). The OS
    drops the lock when its holder dies, so a crashed holder never blocks for long."""
    import fcntl
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(poll)
