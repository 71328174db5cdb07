"""JSONL at disk speed: the journal's bytes are already the format, so a range is
copied as it is stored, never parsed line by line. No zmq, no textual.

A segment that the recorder (or an earlier export) found whole, every line with a
record's shape, has a `SegmentCheck` (`store.linecheck`) while it is the file the
check describes (inode, mtime, size, lines): its lines are "validated by the index",
so its bytes go from the segment file to the output in the kernel (`os.sendfile`,
plain segments) or are decompressed and written without a check (compressed ones),
and it is counted from the check's list of lines that are not messages. Any other
part (a segment never checked, one changed since: the active one after every append)
is read in blocks of whole lines, each checked by one regex pass (`block_kinds`); a
block that fails is gone through line by line. A whole segment that passes is given
its check, the active one too: a journal no recorder writes to (stopped) is read
once, by its first export.

The writes go on a thread of their own while the next block is read and checked
(the regex holds the GIL, a write does not), in slices of `WRITE_SLICE`: on Linux,
one 8 MiB write() of a block cost two to five times the system time of the same
bytes in 128 KiB writes, and varied with the page cache from run to run.
"""

from __future__ import annotations

import bisect
import io
import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import IO

from recorder.store.fsutil import NO_KERNEL_COPY, write_whole
from recorder.store.linecheck import (
    MESSAGE,
    SegmentCheck,
    block_kinds,
    cached_check,
    other_kinds,
    save_check,
)
from recorder.store.ranges import RangeSummary
from recorder.store.reader import LineBlock, Record, SegmentIndex, Store

Progress = Callable[[int, int], None]  # (records done, records in range)

_COUNTED = ("heartbeat", "segment")  # other kinds that are only counted; the rest parsed
_MESSAGE_KIND = MESSAGE.decode()
WRITE_SLICE = 128 << 10  # bytes per write() call
_QUEUED = 2  # blocks read ahead of the writer at most


@dataclass
class _Part:
    """Lines `line` to `stop` of one segment, the first at global index `index`."""

    seg: SegmentIndex
    index: int
    line: int
    stop: int

    @property
    def whole(self) -> bool:
        return self.line == 0 and self.stop == len(self.seg)

    def seg_record(self, store: Store) -> Callable[[int], Record]:
        """Line n of the segment as a record of the store."""
        return lambda n: store.record(self.index + n - self.line)


def _parts(store: Store, start: int, stop: int) -> Iterator[_Part]:
    index = start
    while index < stop:
        seg, i = store.locate(index)
        end = min(len(seg), i + (stop - index))
        yield _Part(seg, index, i, end)
        index += end - i


def copy_jsonl(
    store: Store,
    start: int,
    stop: int,
    out: IO[bytes],
    stats: RangeSummary,
    progress: Progress | None = None,
) -> int:
    """Copy records `start` to `stop` to `out` as stored, leaving out damaged lines;
    returns the bytes written. Participants are not counted here."""
    written = 0
    done = 0
    cache_dir = store.layout.index if store.cache_index else None
    with _Writer(out) as writer:
        for part in _parts(store, start, stop):
            check = cached_check(part.seg, cache_dir)
            if check is not None:
                written += _copy_checked(store, part, check, writer, stats)
            else:
                written += _copy_blocks(store, part, writer, stats, cache_dir)
            done += part.stop - part.line
            if progress is not None:
                progress(done, stop - start)
    if progress is not None and not done:
        progress(0, 0)
    return written


def _copy_checked(
    store: Store, part: _Part, check: SegmentCheck, writer: _Writer, stats: RangeSummary
) -> int:
    """A part of a checked segment: its bytes copied whole, counted from the check."""
    seg = part.seg
    if not seg.file.compressed:
        begin = seg.starts[part.line]
        size = seg.span(part.stop - 1)[1] - begin
        writer.send(seg.file.fd, begin, size)
        _count_checked(store, part, part.line, part.stop, check, stats)
        return size
    written = 0
    for block in store.blocks(part.index, part.index + part.stop - part.line):
        if b"\x00" in block.data:  # a frame found damaged since: its lines are bad
            written += _copy_lines(block, writer, stats)
        else:
            writer.write(block.data)
            written += len(block.data)
            _count_checked(store, part, block.line, block.line + block.count, check, stats)
    return written


def _count_checked(
    store: Store, part: _Part, first: int, stop: int, check: SegmentCheck, stats: RangeSummary
) -> None:
    """Account for lines `first` to `stop` of a checked segment from its check."""
    lo = bisect.bisect_left(check.others, first, key=itemgetter(0))
    hi = bisect.bisect_left(check.others, stop, key=itemgetter(0))
    record = part.seg_record(store)
    _count(first, stop, check.others[lo:hi], record, stats)


def _count(
    first: int,
    stop: int,
    others: list[tuple[int, str]],
    record: Callable[[int], Record],
    stats: RangeSummary,
) -> None:
    """Account for lines `first` to `stop`, which passed the record check, in `stats`
    without parsing them: every line is a message but `others` (line, kind), which are
    counted, or parsed if their kind is rare; the first and last message are parsed
    for the time range. `record(line)`: that line of the segment."""
    for line, kind in others:
        if kind in _COUNTED:
            stats.records += 1
            stats.kinds[kind] += 1
        else:
            stats.add(record(line))
    messages = stop - first - len(others)
    if messages:
        stats.records += messages
        stats.messages += messages
        stats.kinds[_MESSAGE_KIND] += messages
        skip = {line for line, _ in others}
        head = next(n for n in range(first, stop) if n not in skip)
        tail = next(n for n in range(stop - 1, first - 1, -1) if n not in skip)
        if stats.first_ts is None:
            stats.first_ts = record(head).ts
        stats.last_ts = record(tail).ts


def _copy_blocks(
    store: Store, part: _Part, writer: _Writer, stats: RangeSummary, cache_dir: Path | None
) -> int:
    """A part of a segment without a check: each block checked by `block_kinds`
    (line by line where that fails). A whole segment that passes everywhere gets its
    check kept, so the next copy of it needs none while it is unchanged."""
    written = 0
    others: list[tuple[int, str]] | None = [] if part.whole else None
    for block in store.blocks(part.index, part.index + part.stop - part.line):
        kinds = block_kinds(block.data, block.count)
        if kinds is None:
            others = None
            written += _copy_lines(block, writer, stats)
        else:
            writer.write(block.data)
            written += len(block.data)
            found = other_kinds(kinds, block.line)
            _count(block.line, block.line + block.count, found, _block_record(block), stats)
            if others is not None:
                others += found
    if others is not None and cache_dir is not None:
        save_check(part.seg, cache_dir, others)
    return written


def _copy_lines(block: LineBlock, writer: _Writer, stats: RangeSummary) -> int:
    """A block that failed the cheap check: every line parsed, damaged ones left out."""
    written = 0
    for rec in block.lines():
        stats.add(rec)
        if rec.data is not None:
            writer.write(rec.line)
            written += len(rec.line)
    return written


_Span = tuple[int, int, int]  # a file descriptor of our own, offset, bytes


class _Writer:
    """Writes to `out` in order on a thread: bytes in `WRITE_SLICE` pieces, spans of a
    segment file with `os.sendfile` (the bytes never enter Python) when `out` is a
    plain file or pipe, else read and written. A write error (a full disk) is raised in
    the caller at its next write or at the end."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.todo: queue.Queue[bytes | _Span | None] = queue.Queue(_QUEUED)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="jsonl-writer", daemon=True)
        # only our own kinds of file objects: a wrapper's fileno() (gzip, say) is the
        # file under it, which must not get the bytes unwrapped
        self.fd = out.fileno() if type(out) in (io.BufferedWriter, io.FileIO) else None

    def __enter__(self) -> _Writer:
        self.thread.start()
        return self

    def write(self, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.todo.put(data)

    def send(self, fd: int, offset: int, count: int) -> None:
        """Copy `count` bytes of file `fd` from `offset` (the file may be closed by
        its owner meanwhile: the writer reads from a duplicate)."""
        if self.error is not None:
            raise self.error
        if count > 0:
            self.todo.put((os.dup(fd), offset, count))

    def _run(self) -> None:
        while (item := self.todo.get()) is not None:
            if self.error is not None:
                if isinstance(item, tuple):
                    os.close(item[0])
                continue  # drain what is queued: the caller raises the error
            try:
                if isinstance(item, tuple):
                    self._send(*item)
                else:
                    self._write(item)
            except BaseException as exc:  # given to the caller
                self.error = exc

    def _write(self, data: bytes | memoryview) -> None:
        # `write_whole`: a raw file (stdout under `python -u`) may take part of a slice
        if len(data) <= WRITE_SLICE:
            write_whole(self.out, data)
        else:
            view = memoryview(data)
            for at in range(0, len(data), WRITE_SLICE):
                write_whole(self.out, view[at : at + WRITE_SLICE])

    def _send(self, fd: int, offset: int, count: int) -> None:
        try:
            end = offset + count
            if self.fd is not None:
                self.out.flush()
                try:
                    while offset < end:
                        sent = os.sendfile(self.fd, fd, offset, end - offset)
                        if not sent:
                            raise OSError(f"the segment ended {end - offset} bytes early")
                        offset += sent
                except OSError as exc:
                    if exc.errno not in NO_KERNEL_COPY:
                        raise
                    self.fd = None  # not for this output: read and write from here on
                if self.out.seekable():
                    self.out.seek(0, io.SEEK_CUR)  # the buffer learns where the file is
            while offset < end:
                data = os.pread(fd, min(8 << 20, end - offset), offset)
                if not data:
                    raise OSError(f"the segment ended {end - offset} bytes early")
                self._write(data)
                offset += len(data)
        finally:
            os.close(fd)

    def __exit__(self, *exc: object) -> None:
        self.todo.put(None)
        self.thread.join()
        if self.error is not None and exc[0] is None:
            raise self.error


def _block_record(block: LineBlock) -> Callable[[int], Record]:
    """Line n of the block's segment, from the block's bytes."""
    return lambda n: block.record(n - block.line)
