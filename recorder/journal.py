"""Appending to the journal: segments, rotation, group commit and tail repair.

The journal is the only source of truth. This module knows nothing about ZeroMQ:
it is handed records and turns them into whole, durable lines.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .format import (
    KIND_CORRUPT,
    KIND_SEGMENT,
    SCHEMA_VERSION,
    EncodedFrames,
    Layout,
    encode_record,
    list_segments,
    parse_line,
    segment_name,
    segment_number,
)
from .fsutil import ensure_private_dir, fsync_dir, open_private

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
_CHUNK = 64 * 1024


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


def _prev_newline(fd: int, before: int) -> int:
    """Offset of the last b'\\n' strictly before `before`, or -1."""
    end = before
    while end > 0:
        start = max(0, end - _CHUNK)
        chunk = os.pread(fd, end - start, start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return start + i
        end = start
    return -1


def valid_end(fd: int, size: int) -> tuple[int, dict[str, Any] | None]:
    """Where the valid part of a segment ends, and its last record.

    Everything after the last line that parses as a record is a torn write or
    garbage (a partial line, zeros left by a power cut). Lines in the middle
    are not looked at: a bad line there never hides the ones after it.
    """
    cut = size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        cut = _prev_newline(fd, size) + 1
    while cut > 0:
        start = _prev_newline(fd, cut - 1) + 1
        record = parse_line(os.pread(fd, cut - start, start))
        if record is not None:
            return cut, record
        cut = start
    return 0, None


def last_record(path: Path) -> dict[str, Any] | None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return valid_end(fd, os.fstat(fd).st_size)[1]
    finally:
        os.close(fd)


def repair_tail(
    path: Path, quarantine_dir: Path
) -> tuple[Quarantine | None, dict[str, Any] | None]:
    """Move a bad tail of `path` into a `.corrupt` file and cut it off.

    Returns what was moved (None if the tail was fine) and the last good record.
    """
    fd = open_private(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        cut, record = valid_end(fd, size)
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


class Journal:
    """Appends records to the active segment; rotates at `segment_bytes`.

    One thread appends and flushes; another may call `sync()` at any time to
    make everything flushed so far durable (group commit).
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
        self.next_seq = 1
        self.messages = 0
        self.quarantined: list[Quarantine] = []
        self._segment = 0
        self._offset = 0
        self._file: Any = None
        self._fd_lock = threading.Lock()
        self.written: Position = Position(0, 0, 0, 0)
        self.durable: Position = Position(0, 0, 0, 0)
        self.last_sync_time = 0.0

    # -- opening ---------------------------------------------------------------
    def open(self, messages: int | None = None) -> dict[str, Any] | None:
        """Open the newest segment for appending (repairing its tail).

        `messages` is the message count recovered from the state file; the
        journal itself only knows sequence numbers. Returns the last good record.
        """
        for d in (self.layout.root, self.layout.segments, self.layout.recovery):
            ensure_private_dir(d)
        segments = list_segments(self.layout)
        last: dict[str, Any] | None = None
        number = 1
        if segments:
            path = segments[-1]
            number = segment_number(path.name) or 1
            quarantine, last = repair_tail(path, self.layout.recovery)
            if quarantine:
                self.quarantined.append(quarantine)
            for older in reversed(segments[:-1]):
                if last is not None:
                    break
                last = last_record(older)
        if last is not None:
            self.next_seq = int(last["seq"]) + 1
        self.messages = messages or 0
        size = segments[-1].stat().st_size if segments else 0
        if segments and size >= self.segment_bytes:
            number += 1
            size = 0
        self._open_segment(number, fresh=size == 0)
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
        self.flush()
        return last

    def _open_segment(self, number: int, *, fresh: bool) -> None:
        path = self.layout.segment_path(number)
        fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        self._file = os.fdopen(fd, "ab", buffering=1 << 20)
        self._segment = number
        self._offset = os.fstat(fd).st_size
        link = self.layout.current
        tmp = link.with_name(f".{link.name}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(os.path.join("segments", path.name), tmp)
        os.replace(tmp, link)
        fsync_dir(self.layout.segments)
        fsync_dir(self.layout.root)
        if fresh:
            prev = segment_name(number - 1) if number > 1 else None
            self.append({"kind": KIND_SEGMENT, "segment": path.name, "prev": prev})

    # -- appending -------------------------------------------------------------
    def append(self, head: dict[str, Any], frames: EncodedFrames | None = None) -> int:
        """Write one record (buffered); returns its sequence number."""
        seq = self.next_seq
        record = {"v": SCHEMA_VERSION, "seq": seq, "ts": head.pop("ts", None) or self.clock()}
        record.update(head)
        self.next_seq = seq + 1
        self.append_line(encode_record(record, frames))
        return seq

    def append_line(self, line: bytes) -> None:
        """Write an encoded line whose seq the caller took (and advanced) already."""
        self._file.write(line)
        self._offset += len(line)
        if self._offset >= self.segment_bytes:
            self._rotate()

    def flush(self) -> Position:
        """Hand buffered lines to the kernel; returns the written position."""
        self._file.flush()
        self.written = Position(self._segment, self._offset, self.next_seq - 1, self.messages)
        return self.written

    def sync(self) -> Position:
        """Make everything flushed so far durable (fdatasync)."""
        with self._fd_lock:
            pos = self.written
            if self._file is not None and pos.segment == self._segment:
                os.fdatasync(self._file.fileno())
                self.durable = pos
                self.last_sync_time = time.time()
        return self.durable

    def _rotate(self) -> None:
        with self._fd_lock:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self.durable = Position(self._segment, self._offset, self.next_seq - 1, self.messages)
            self._open_segment(self._segment + 1, fresh=False)
        prev = segment_name(self._segment - 1)
        self.append({"kind": KIND_SEGMENT, "segment": segment_name(self._segment), "prev": prev})

    def recover(self) -> Position:
        """After a failed write: drop what was buffered, cut any partial line, reopen.

        Returns the position of the last record that is really on disk.
        """
        with self._fd_lock:
            if self._file is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._file.close()
                self._file = None
        path = self.layout.segment_path(self._segment)
        quarantine, last = repair_tail(path, self.layout.recovery)
        if quarantine:
            self.quarantined.append(quarantine)
        if last is not None:
            self.next_seq = int(last["seq"]) + 1
        self._open_segment(self._segment, fresh=False)
        self._file.flush()
        return Position(self._segment, self._offset, self.next_seq - 1, self.messages)

    def reopen(self) -> None:
        """Close and reopen the active segment (SIGHUP)."""
        with self._fd_lock:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._open_segment(self._segment, fresh=False)

    def close(self) -> Position:
        if self._file is None:
            return self.durable
        self.flush()
        with self._fd_lock:
            os.fsync(self._file.fileno())
            self.durable = self.written
            self._file.close()
            self._file = None
        return self.durable
