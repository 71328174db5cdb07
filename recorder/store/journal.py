"""Appending to the journal: segments, rotation, group commit and tail repair.

The journal is the only source of truth. This module knows nothing about ZeroMQ:
it is handed records and turns them into whole, durable lines.

Over 400 lines: the writer thread (`Sink`), tail repair and the `Journal` that hands
lines to the writer share positions and the file layout, and stay together.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import stat
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recorder.errors import PersistError
from recorder.store.fsutil import ensure_private_dir, fsync_dir, not_regular, open_private
from recorder.store.layout import (
    Layout,
    is_compressed,
    list_segments,
    segment_name,
    segment_number,
)
from recorder.store.records import (
    KIND_CORRUPT,
    KIND_GAP,
    KIND_SEGMENT,
    SCHEMA_VERSION,
    EncodedFrames,
    encode_record,
    parse_line,
)
from recorder.store.recovery import Named, claimed_seq
from recorder.store.segfile import open_segment
from recorder.store.status import LostLines

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
JOURNAL_LOST = "journal-lost"  # the gap cause of journal seqs a power cut took (`Journal.open`)
_CHUNK = 64 * 1024
_WRITES = ("write", "zwrite")  # the commands that carry a chunk of lines
_GATHER_BYTES = 8 * 1024 * 1024  # the writer writes up to this much in one writev
_GATHER_CHUNKS = 256  # ... and at most this many chunks (Linux allows 1024)


def _drop_cached(fd: int) -> None:
    """Let the kernel drop a closed, synced segment's pages from its cache.

    The next segment's writes then reuse those pages. On the 2-core VM this was
    measured on, writing into pages just freed ran at 4.5 GB/s, and into others
    at about 400 MB/s (most likely the host backing the guest's memory again): in
    a flood of 2 KB messages that was the writer's time. The segment is read
    again from disk, by the indexer once and by readers rarely; PostgreSQL drops
    its WAL files from the cache the same way.
    """
    with contextlib.suppress(OSError, AttributeError):  # not everywhere (macOS)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


@dataclass(frozen=True)
class Position:
    """A point in the journal: just after record `seq`, at `offset` of `segment`."""

    segment: int
    offset: int
    seq: int
    messages: int

    @property
    def segment_name(self) -> str:
        return segment_name(self.segment)


@dataclass(frozen=True)
class Quarantine:
    """A torn or garbage tail moved aside when a segment was reopened."""

    segment: str
    offset: int
    length: int
    path: Path


Read = Callable[[int, int], bytes]  # (offset, length) -> bytes of a segment


def _prev_newline(read: Read, before: int) -> int:
    """Offset of the last b'\\n' strictly before `before`, or -1."""
    end = before
    while end > 0:
        start = max(0, end - _CHUNK)
        chunk = read(start, end - start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return start + i
        end = start
    return -1


def valid_end(read: Read, size: int) -> tuple[int, dict[str, Any] | None]:
    """Where the valid part of a segment ends, and its last record.

    Everything after the last line that parses as a record is a torn write or
    garbage (a partial line, zeros left by a power cut). Lines in the middle
    are not looked at: a bad line there never hides the ones after it.
    """
    cut = size
    if size and read(size - 1, 1) != b"\n":
        cut = _prev_newline(read, size) + 1
    while cut > 0:
        start = _prev_newline(read, cut - 1) + 1
        record = parse_line(read(start, cut - start))
        if record is not None:
            return cut, record
        cut = start
    return 0, None


def last_record(path: Path) -> dict[str, Any] | None:
    """The last good record of a segment, plain or compressed (None if it has none or
    cannot be read)."""
    try:
        with open_segment(path) as seg:
            return valid_end(seg.read, seg.size)[1]
    except (OSError, ValueError):
        return None


def record_ending_at(path: Path, offset: int) -> dict[str, Any] | None:
    """The record whose line ends at `offset` of a segment, plain or compressed (None
    when no record's line ends there, or the file cannot be read)."""
    try:
        with open_segment(path) as seg:
            if not 0 < offset <= seg.size or seg.read(offset - 1, 1) != b"\n":
                return None
            start = _prev_newline(seg.read, offset - 1) + 1
            return parse_line(seg.read(start, offset - start))
    except (OSError, ValueError):
        return None


def repair_tail(
    path: Path, quarantine_dir: Path
) -> tuple[Quarantine | None, dict[str, Any] | None]:
    """Move a bad tail of `path` into a `.corrupt` file and cut it off.

    Returns what was moved (None if the tail was fine) and the last good record.
    """
    fd = open_private(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        cut, record = valid_end(lambda offset, n: os.pread(fd, n, offset), size)
        if cut == size:
            return None, record
        ensure_private_dir(quarantine_dir)
        target = quarantine_dir / f"{path.name}.{cut}.corrupt"
        out = open_private(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            pos = cut
            while pos < size:
                data = os.pread(fd, min(1 << 20, size - pos), pos)
                os.write(out, data)
                pos += len(data)
            os.fsync(out)
        finally:
            os.close(out)
        fsync_dir(quarantine_dir)
        os.ftruncate(fd, cut)
        os.fsync(fd)
        return Quarantine(path.name, cut, size - cut, target), record
    finally:
        os.close(fd)


class CannotStart(PersistError):
    """The recorder's start could not write the journal (a full disk): nothing was
    received yet, so it ends in one line rather than wait unseen (`Sink.fail_inline`)."""


def _refuse_what_is_no_segment(layout: Layout, path: Path) -> None:
    """`CannotStart` when the segment to write on in (the newest, plain) is no regular
    file: a named pipe there keeps no record (nor can it be synced), a folder cannot be
    written. Before 2026-12-07 the recorder stopped with
    "[Errno 22] Invalid argument" (an fsync of a pipe), naming nothing."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise CannotStart(
            f"cannot start recording into {layout.root}: segments/{path.name} cannot be "
            f"reached ({exc.strerror or exc})"
        ) from None
    if not stat.S_ISREG(mode):
        raise CannotStart(
            f"cannot start recording into {layout.root}: segments/{path.name} is "
            f"{not_regular(mode)}, where the segment written last should be; move it out "
            f"of segments/ (mv {shlex.quote(str(path))} {shlex.quote(str(layout.recovery))}/) "
            "and start again"
        )


class UnwrittenData(Exception):
    """A stop gave up waiting for the disk: the lines the writer held are lost."""

    def __init__(self, lost: LostLines, reason: str) -> None:
        super().__init__(f"{lost.describe()} could not be written: {reason}{lost.among()}")
        self.lost = lost


ABANDON_WAIT = 5.0
"""Seconds the writer has to drop what it holds once a stop gives up: a writer stuck in
a system call (a hung network disk) never notices, and its bytes are counted lost."""


COMPRESS_AFTER = 4 * 1024 * 1024  # bytes waiting beyond which chunks are compressed ...
COMPRESS_AFTER_SLOW = 128 * 1024 * 1024  # ... or this many while writes still succeed


class Sink:
    """Does the journal's file I/O, on its own thread once `start()`ed.

    The journal hands it whole chunks of lines; it writes them in order, retries
    a failed write (a full disk, say) until it succeeds without losing or tearing
    anything, switches segments when told to, and tells `sync()` how far it got.
    Before `start()` (tests, tools) every command runs at once in the caller.
    """

    def __init__(self, layout: Layout, *, retry_delay: float = 0.5) -> None:
        self.layout = layout
        self.retry_delay = retry_delay
        self.sync_every_write = False  # fsync mode "always"
        self.on_error: Callable[[str], None] = lambda message: None
        self.on_recovered: Callable[[], None] = lambda: None
        self.stalled: str | None = None  # why writing fails right now (a full disk, say)
        self.written = Position(0, 0, 0, 0)  # everything up to here is in the kernel
        self.durable = Position(0, 0, 0, 0)  # ... and up to here on disk
        self.last_sync_time = 0.0
        self.pending_bytes = 0
        self.wrote = threading.Event()  # set after each write: a syncer sleeps until then
        self.compress_after = COMPRESS_AFTER  # while writes fail (a full disk)
        self.compress_after_slow = COMPRESS_AFTER_SLOW  # while the disk is merely behind
        self.writev = os.writev  # replaceable in tests
        self._queue: deque[tuple[Any, ...]] = deque()
        self._cond = threading.Condition()
        self._fd: int | None = None
        self._segment = 0
        self._fd_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.abandon = threading.Event()  # a stop gave up on the disk: drop, do not retry
        self.lost: LostLines | None = None  # what was dropped
        self._counted = 0  # bytes of the chunks being written counted out of pending_bytes
        self._writing: list[bytes | bytearray] = []  # the chunks being written (see `_held`)
        # Before `start()`: a write or open that fails raises `CannotStart` (what it
        # wrote of the chunk cut off again) instead of being retried until it works. The
        # recorder's start sets it: it has received nothing yet, and waiting there (no
        # status written yet, no receiver, signals not looked at) was a silent hang.
        self.fail_inline = False
        self.left = False  # the folder is another recorder's now: nothing more is written
        # `finish()` ended the writer and the journal is closed: a chunk handed over after
        # that (a bug: the recorder waits for its receiver first) is counted in `lost`,
        # not retried forever into no segment while its caller holds the journal's lock
        self.finished = False

    # -- called by the journal's thread ------------------------------------------
    def put(self, command: tuple[Any, ...], nbytes: int = 0) -> None:
        if self.finished:
            if command[0] == "write":
                self._lose(LostLines.of(bytes(command[1])))
            return
        if self._thread is None:
            self._run(command)
            return
        if command[0] == "write" and self.pending_bytes > (
            self.compress_after if self.stalled is not None else self.compress_after_slow
        ):
            # The disk is behind (full, say): what waits is kept compressed (3.7:1 on
            # the costs bench's journal), so a long stall fits in memory (zlib
            # releases the GIL).
            # While writes still succeed, a backlog is mostly a rotation's fsync
            # (2-46 ms and up to 9 MB waiting in a 2 KB flood here; in another run
            # 34-67 MB waited), which is not worth compressing: zlib takes 6.6 ms a
            # MiB of journal (160 MB/s), longer than receiving it takes in a 2 KB
            # flood (230 MB/s), so the receiving thread fell behind the bus while it
            # compressed, and the backlog moved to the broker's queue instead.
            _, data, end = command
            command = ("zwrite", zlib.compress(data, 1), end, len(data))
        with self._cond:
            self._queue.append(command)
            self.pending_bytes += nbytes
            self._cond.notify()

    def start(self) -> None:
        self.finished = False
        self._thread = threading.Thread(target=self._loop, name="persist-writer", daemon=True)
        self._thread.start()

    def finish(
        self,
        give_up: threading.Event | None,
        on_wait: Callable[[], None] | None = None,
        step: float = 0.5,
    ) -> None:
        """Write everything queued, however long the disk refuses it (a full disk is
        retried until there is room), then stop the thread. Every `step` seconds of
        waiting `on_wait` is called (the recorder says in its status what waits); once
        `give_up` is set, what is left is dropped and counted in `lost`."""
        thread = self._thread
        if thread is None:
            return
        self.put(("stop",))
        abandoned_at: float | None = None
        while True:
            thread.join(step)
            if not thread.is_alive():
                break
            if give_up is not None and give_up.is_set() and abandoned_at is None:
                abandoned_at = time.monotonic()
                self.abandon.set()
            if abandoned_at is not None and time.monotonic() - abandoned_at > ABANDON_WAIT:
                self._lose(self._held())  # stuck in a system call
                break
            if on_wait is not None:
                on_wait()
        self._thread = None
        self.finished = True

    def _held(self) -> LostLines:
        """What a writer stuck in a system call holds, all counted lost: the chunks it is
        writing (whole: what part of them reaches the disk is not known) and those that
        wait, read as the lines a stop on a full disk drops are (`LostLines.of`)."""
        with self._cond:
            waiting = [c for c in self._queue if c[0] in _WRITES]
        lost = LostLines()
        for chunk in self._writing:
            lost += LostLines.of(bytes(chunk))
        for command in waiting:
            data = command[1]
            lost += LostLines.of(
                zlib.decompress(data, bufsize=command[3]) if command[0] == "zwrite" else data
            )
        return lost

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self.pending_bytes:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    # -- the writer thread ---------------------------------------------------------
    def _loop(self) -> None:
        while True:
            commands = self._take()
            if commands[0][0] == "stop":
                return
            if commands[0][0] in _WRITES:
                self._write_chunks(commands)
            else:
                self._run(commands[0])

    def _take(self) -> list[tuple[Any, ...]]:
        """The next command, or all the plain chunks waiting at the front of the queue
        (up to `_GATHER_BYTES`): one `writev` for all of them. Written one by one, each
        chunk was a wait for the GIL, which the receiving thread holds for up to the
        switch interval (5 ms) in a flood: the writer then fell behind at 1 MiB per
        5 ms, and the receiving thread spent its time compressing what waited.
        Compressed chunks (a long stall) go one at a time: each is expanded first."""
        with self._cond:
            while not self._queue:
                self._cond.wait()
            queue = self._queue
            taken = [queue.popleft()]
            if taken[0][0] == "write":
                size = len(taken[0][1])
                while (
                    queue
                    and queue[0][0] == "write"
                    and size < _GATHER_BYTES
                    and len(taken) < _GATHER_CHUNKS
                ):
                    taken.append(queue.popleft())
                    size += len(taken[-1][1])
            return taken

    def _run(self, command: tuple[Any, ...]) -> None:
        kind = command[0]
        if kind in _WRITES:
            self._write_chunks([command])
        elif kind == "open":
            self._open(command[1])
        elif kind == "close":
            self._close()
        elif kind == "check":
            self._check_segment()
        elif kind == "leave":
            self.left = True

    def _check_segment(self) -> None:
        """The segment being written must still be the file at its path. One deleted
        or replaced from outside is put back from the open file, which still holds
        every byte written to it (a file found in its place is moved to recovery/),
        and the writer goes on appending to it: said through `on_error`."""
        fd = self._fd
        if fd is None or self.left:
            return
        path = self.layout.segment_path(self._segment)
        try:
            ours = os.fstat(fd)
            there = os.stat(path)
            if (there.st_dev, there.st_ino) == (ours.st_dev, ours.st_ino):
                self._check_link(path)
                return
            what = "replaced"
        except FileNotFoundError:
            what = "deleted"
        except OSError:
            return  # cannot tell now: the next check looks again
        said = f"{path.name} was {what} from outside while being written"
        try:
            ensure_private_dir(self.layout.segments)
            aside = None
            if what == "replaced":
                ensure_private_dir(self.layout.recovery)
                aside = self.layout.recovery / f"{path.name}.found-{time.time():.0f}"
                os.replace(path, aside)
            tmp = path.with_name(f".{path.name}.restore")
            out = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            try:
                size = os.fstat(fd).st_size
                pos = 0
                while pos < size:
                    pos += os.write(out, os.pread(fd, min(1 << 20, size - pos), pos))
                os.fsync(out)
                os.replace(tmp, path)
            finally:
                os.close(out)
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            fsync_dir(self.layout.segments)
            new = open_private(path, os.O_RDWR | os.O_APPEND)
        except OSError as exc:
            self.on_error(f"{said}, and could not be put back: {exc}")
            return
        with self._fd_lock:
            os.close(fd)
            self._fd = new
        self._check_link(path)
        found = f"; the file found in its place is {aside}" if aside else ""
        self.on_error(f"{said}: put back from the open file ({size:,} bytes){found}")

    def _check_link(self, path: Path) -> None:
        """`current_session.jsonl` must point at the segment being written: one removed
        from outside (with the whole folder, say) is made again."""
        target = os.path.join("segments", path.name)
        with contextlib.suppress(OSError):
            if os.readlink(self.layout.current) == target:
                return
        with contextlib.suppress(OSError):
            self._link(target)

    def _link(self, target: str) -> None:
        link = self.layout.current
        tmp = link.with_name(f".{link.name}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(target, tmp)
        os.replace(tmp, link)

    def _write_chunks(self, commands: list[tuple[Any, ...]]) -> None:
        """Write chunks (`write` or `zwrite` commands, in order) in one go."""
        if self.left:  # dropped: the recorder that holds the folder now writes its own
            self._counted = 0
            self._count_out(sum(c[3] if c[0] == "zwrite" else len(c[1]) for c in commands))
            return
        chunks = [
            zlib.decompress(c[1], bufsize=c[3]) if c[0] == "zwrite" else c[1] for c in commands
        ]
        self._counted = 0
        self._writing = chunks
        if self._write(chunks):
            self.written = commands[-1][2]
        self._writing = []
        self.wrote.set()
        if self.sync_every_write:
            self.sync()
        self._count_out(sum(map(len, chunks)) - self._counted)

    def _count_out(self, nbytes: int) -> None:
        """`nbytes` of what was handed over are written (or dropped): no longer pending."""
        self._counted += nbytes
        if self._thread is not None:
            with self._cond:
                self.pending_bytes -= nbytes
                self._cond.notify_all()

    def _write(self, chunks: list[bytes | bytearray]) -> bool:
        """Write all of `chunks`, continuing a short write where it stopped and
        retrying a failed one (a full disk) until it succeeds; False when a stop gave
        up on the disk (`abandon`) and what was left of them was dropped."""
        views = [memoryview(c) for c in chunks]
        first = 0  # views before this one are written
        done = 0  # bytes written by this call, not yet counted out of `pending_bytes`
        begin = self._fail_from()
        while first < len(views):
            try:
                if self._fd is None:  # a segment a stop gave up opening
                    raise OSError("no segment is open")
                n = self.writev(self._fd, views[first:])
            except OSError as exc:
                if begin is not None:
                    self._cannot_start(f"writing {self._name()} failed", exc, begin)
                self._stall(f"journal write failed ({exc.strerror or exc})")
                self._count_out(done)  # what waits is what the status says waits
                done = 0
                if self.abandon.is_set():
                    rest = b"".join(views[first:])
                    self._lose(LostLines.of(rest))
                    self._count_out(len(rest))
                    return False
                time.sleep(self.retry_delay)
                continue
            done += n
            while first < len(views) and n >= len(views[first]):
                n -= len(views[first])
                first += 1
            if n:
                views[first] = views[first][n:]
        self._resume()
        return True

    def _fail_from(self) -> int | None:
        """Where the segment ends now, when a failed write is to raise (`fail_inline`)
        rather than be retried; else None."""
        if not self.fail_inline or self._thread is not None or self._fd is None:
            return None
        return os.fstat(self._fd).st_size

    def _name(self) -> str:
        return self.layout.segment_path(self._segment).name

    def _cannot_start(self, what: str, exc: OSError, cut: int | None) -> None:
        """Raise `CannotStart`, after cutting the segment back to `cut` (no torn line)
        and closing it."""
        with self._fd_lock:
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    if cut is not None:
                        os.ftruncate(self._fd, cut)
                os.close(self._fd)
                self._fd = None
        raise CannotStart(
            f"cannot start recording into {self.layout.root}: {what} "
            f"({exc.strerror or exc}); nothing was received yet: free some room on its "
            "disk and start again"
        ) from None

    def _lose(self, lost: LostLines) -> None:
        self.lost = lost if self.lost is None else self.lost + lost

    def _stall(self, reason: str) -> None:
        """Say once per episode that writing fails (it is retried until it works)."""
        if self.stalled is None:
            self.stalled = reason
            self.on_error(f"{reason}; retrying, nothing is dropped")

    def _resume(self) -> None:
        if self.stalled is not None:
            self.stalled = None
            self.on_recovered()

    def _open(self, number: int) -> None:
        """Make segment `number` the one written to (closing the previous one)."""
        if self.left:
            return
        path = self.layout.segment_path(number)
        while True:
            try:
                # readable too: a segment deleted from outside is put back from it
                fd = open_private(path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
                break
            except OSError as exc:
                if self.fail_inline and self._thread is None:
                    self._cannot_start(f"cannot open {path.name}", exc, None)
                self._stall(f"cannot open {path.name} ({exc.strerror or exc})")
                if self.abandon.is_set():
                    self._close()  # what follows is dropped: there is nowhere to write it
                    return
                time.sleep(self.retry_delay)
        with self._fd_lock:
            if self._fd is not None:
                os.fsync(self._fd)
                _drop_cached(self._fd)
                os.close(self._fd)
                self.durable = self.written
            self._fd, self._segment = fd, number
        self._link(os.path.join("segments", path.name))
        fsync_dir(self.layout.segments)
        fsync_dir(self.layout.root)

    def _close(self) -> None:
        with self._fd_lock:
            if self._fd is not None:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None
                self.durable = self.written
                self.last_sync_time = time.time()

    def sync(self) -> Position:
        """Make everything written so far durable (fdatasync); any thread."""
        with self._fd_lock:
            pos = self.written
            if self._fd is not None and pos.segment == self._segment and pos != self.durable:
                os.fdatasync(self._fd)
                self.durable = pos
                self.last_sync_time = time.time()
        return self.durable


class Journal:
    """The journal's byte stream: sequence numbers, lines, segments.

    It runs on the thread that receives (encoding is cheap and needs no lock),
    and hands whole chunks to its `Sink`, which does the file I/O elsewhere:
    disk latency never stalls the receiving thread. `flush()` ends a chunk.
    """

    def __init__(
        self,
        layout: Layout,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.layout = layout
        self.clock = clock
        self.segment_bytes = segment_bytes
        self.sink = Sink(layout)
        self.next_seq = 1
        self.messages = 0
        self.quarantined: list[Quarantine] = []
        self.lost: tuple[int, int] | None = None  # seqs claimed but gone, found by `open`
        self._segment = 0
        self._chunk_start = 0  # where in the segment the chunk being built starts
        self._buf = bytearray()  # that chunk: its lines end at _chunk_start + len(_buf)
        self.handed = Position(0, 0, 0, 0)  # end of the last chunk given to the sink

    @property
    def written(self) -> Position:
        return self.sink.written

    @property
    def durable(self) -> Position:
        return self.sink.durable

    @property
    def last_sync_time(self) -> float:
        return self.sink.last_sync_time

    # -- opening ---------------------------------------------------------------
    def open(self, named: Named | None = None) -> dict[str, Any] | None:
        """Open the newest segment for appending (repairing its tail).

        Returns the last good record. Message counts are the caller's business:
        the journal itself only knows sequence numbers. They go on after the newest seq
        a checkpoint, the recovery state or the status named (`claimed_seq`), also when
        the journal lost its record (a power cut took the unsynced tail): a
        `journal-lost` gap then says which seqs are gone, and `lost` holds them.
        `named`: what names those seqs, when the caller read it already.
        """
        for d in (self.layout.root, self.layout.segments, self.layout.recovery):
            ensure_private_dir(d)
        segments = list_segments(self.layout)
        last: dict[str, Any] | None = None
        number = 1
        size = 0
        if segments:
            path = segments[-1]
            number = segment_number(path.name) or 1
            if is_compressed(path):  # never written to again: the next one is opened
                last = last_record(path)
                size = self.segment_bytes
            else:
                _refuse_what_is_no_segment(self.layout, path)
                quarantine, last = repair_tail(path, self.layout.recovery)
                if quarantine:
                    self.quarantined.append(quarantine)
                size = path.stat().st_size
            for older in reversed(segments[:-1]):
                if last is not None:
                    break
                last = last_record(older)
        if last is not None:
            self.next_seq = int(last["seq"]) + 1
        claim = claimed_seq(self.layout, named)
        if claim.seq >= self.next_seq:
            self.lost = (self.next_seq, claim.seq)
            self.next_seq = claim.seq + 1
        if segments and size >= self.segment_bytes:
            number += 1
            size = 0
        self._segment, self._chunk_start = number, size
        self.sink.written = self.sink.durable = Position(number, size, self.next_seq - 1, 0)
        self.sink.put(("open", number))
        if size == 0:
            prev = segment_name(number - 1) if number > 1 else None
            self.append({"kind": KIND_SEGMENT, "segment": segment_name(number), "prev": prev})
        for q in self.quarantined:
            self.append(
                {
                    "kind": KIND_CORRUPT,
                    "segment": q.segment,
                    "offset": q.offset,
                    "length": q.length,
                    "quarantine": str(q.path.relative_to(self.layout.root)),
                    "reason": "torn or unreadable tail found when the segment was reopened",
                }
            )
        if self.lost is not None:
            first, end = self.lost
            self.append(
                {
                    "kind": KIND_GAP,
                    "cause": JOURNAL_LOST,
                    "from_journal_seq": first,
                    "to_journal_seq": end,
                    "detail": "the records of these seqs are not in the journal, though "
                    f"{claim.by} named seq {end}: written before the recorder stopped, they "
                    "never reached the disk (a power cut took the unsynced tail); their seqs "
                    "are not given again, and how many were messages is not known (those of "
                    "a publisher that numbers its messages may show as a hole in its "
                    "sequence when it sends again)",
                }
            )
        self.flush()
        return last

    # -- appending -------------------------------------------------------------
    def append(self, head: dict[str, Any], frames: EncodedFrames | None = None) -> int:
        """Add one record to the current chunk; returns its sequence number."""
        seq = self.next_seq
        record = {"v": SCHEMA_VERSION, "seq": seq, "ts": head.pop("ts", None) or self.clock()}
        record.update(head)
        self.next_seq = seq + 1
        self.append_line(encode_record(record, frames))
        return seq

    def append_line(self, line: bytes) -> None:
        """Add an encoded line whose seq the caller took (and advanced) already."""
        self._buf += line
        self.rotate_if_full()

    def chunk(self) -> tuple[bytearray, int]:
        """The chunk being built, and its length at which the segment is full.

        For the recorder's hot path, which appends whole lines (each with the seq it
        took) to it in place, without a call per line, and calls `rotate_if_full()`
        once it reaches that length. Anything else that appends may end the chunk
        and start a new one: the caller asks for it again after any other call.
        """
        return self._buf, self.segment_bytes - self._chunk_start

    def rotate_if_full(self) -> None:
        """Start the next segment if the lines appended to `chunk()` filled this one."""
        if self._chunk_start + len(self._buf) >= self.segment_bytes:
            self._rotate()

    @property
    def held_bytes(self) -> int:
        """Bytes of lines appended since the last `flush()` (not yet the sink's)."""
        return len(self._buf)

    def flush(self) -> Position:
        """End the current chunk and hand it to the sink; returns where it ends."""
        end = Position(
            self._segment, self._chunk_start + len(self._buf), self.next_seq - 1, self.messages
        )
        if self._buf:
            data, self._buf = self._buf, bytearray()
            self._chunk_start += len(data)
            self.sink.put(("write", data, end), len(data))
        self.handed = end
        return end

    def sync(self) -> Position:
        return self.sink.sync()

    def _rotate(self) -> None:
        self.flush()
        self._segment += 1
        self._chunk_start = 0
        self.sink.put(("open", self._segment))
        prev = segment_name(self._segment - 1)
        self.append({"kind": KIND_SEGMENT, "segment": segment_name(self._segment), "prev": prev})

    def reopen(self) -> None:
        """Close and reopen the active segment (SIGHUP)."""
        self.flush()
        self.sink.put(("open", self._segment))

    def close(
        self,
        give_up: threading.Event | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> Position:
        """Hand over what is left, let the sink write it, fsync and close.

        While the disk refuses the lines (full), this waits for room (`Sink.finish`),
        calling `on_wait` now and then, until `give_up` is set: then what the writer
        held is dropped and `UnwrittenData` says what was lost.
        """
        self.flush()
        self.sink.put(("close",))
        self.sink.finish(give_up, on_wait)
        if self.sink.lost is not None:
            raise UnwrittenData(self.sink.lost, self.sink.stalled or "the disk refused them")
        return self.sink.durable
