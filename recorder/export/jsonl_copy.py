"""JSONL at disk speed: the journal's bytes are already the format, so a range is
copied in blocks of whole lines, each checked by one regex pass instead of parsing
every line (see `block_kinds`). No zmq, no textual.

The writes go on a thread of their own while the next block is read and checked (the
regex holds the GIL, a write does not), in slices of `WRITE_SLICE`: on Linux, one
8 MiB write() of a block cost two to five times the system time of the same bytes
in 128 KiB writes, and varied with the page cache from run to run.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable
from typing import IO

from recorder.store.ranges import RangeSummary
from recorder.store.reader import LineBlock, Store

Progress = Callable[[int, int], None]  # (records done, records in range)


# The head every record line starts with (FORMAT.md: v, seq, ts, kind, first and in
# this order); after the first line, with the `}` and newline that end the line before.
_HEAD = rb'\{"v":\d+,"seq":-?\d+,"ts":-?[0-9][0-9.eE+-]*,"kind":"([a-z-]+)"'
_FIRST_HEAD = re.compile(_HEAD)
_NEXT_HEADS = re.compile(b"}\n" + _HEAD)
_PLAIN_KINDS = (b"msg", b"heartbeat", b"segment")  # counted; any other kind is parsed
WRITE_SLICE = 128 << 10  # bytes per write() call
_QUEUED = 2  # blocks read ahead of the writer at most


def block_kinds(data: bytes, count: int) -> list[bytes] | None:
    """The kind of each of the `count` lines of `data`, if every line passes the cheap
    check, else None (then each line is parsed to find the bad ones).

    The check is one regex pass in C plus two O(1)/memchr tests: no NUL byte, the
    block starts with a record's head (`{"v":N,"seq":N,"ts":T,"kind":"K"`), ends with
    `}` and a newline, and holds exactly `count - 1` boundaries where a `}`, a newline
    and the next record's head meet. So every line the index knows is whole, and
    begins and ends as the recorder writes records: a torn line, a NUL-filled or
    garbage region, a line cut or glued by a wrong index all fail it. What it cannot
    see is a byte changed inside a line that keeps this shape (JSON broken in the
    middle, invalid UTF-8 inside a string): the checkpoint digest is what finds those
    (`persist restore` re-hashes every segment it hands over).
    """
    if b"\x00" in data or not data.endswith(b"}\n"):
        return None
    first = _FIRST_HEAD.match(data)
    if first is None:
        return None
    kinds = _NEXT_HEADS.findall(data)
    if len(kinds) != count - 1:
        return None
    kinds.insert(0, first.group(1))
    return kinds


def copy_jsonl(
    store: Store,
    start: int,
    stop: int,
    out: IO[bytes],
    stats: RangeSummary,
    progress: Progress | None = None,
) -> int:
    """Copy records `start` to `stop` to `out` as stored, leaving out damaged lines;
    returns the bytes written. Blocks that pass `block_kinds` are written in one
    piece and counted from their heads (records, kinds, messages; gaps and other rare
    records, and the first and last message of a block for the time range, are
    parsed); a block that does not is gone through line by line exactly as before
    (`JsonlWriter`, every line parsed). Participants are not counted here."""
    written = 0
    done = 0
    with _Writer(out) as write:
        for block in store.blocks(start, stop):
            kinds = block_kinds(block.data, block.count)
            if kinds is None:
                for rec in block.lines():
                    stats.add(rec)
                    if rec.data is not None:
                        write(rec.line)
                        written += len(rec.line)
            else:
                write(block.data)
                written += len(block.data)
                _count_block(block, kinds, stats)
            done += block.count
            if progress is not None:
                progress(done, stop - start)
    if progress is not None and not done:
        progress(0, 0)
    return written


class _Writer:
    """Writes to `out` in order on a thread, in `WRITE_SLICE` pieces. A write error
    (a full disk) is raised in the caller at its next write or at the end."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.todo: queue.Queue[bytes | None] = queue.Queue(_QUEUED)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="jsonl-writer", daemon=True)

    def __enter__(self) -> Callable[[bytes], None]:
        self.thread.start()
        return self.write

    def write(self, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.todo.put(data)

    def _run(self) -> None:
        write = self.out.write
        while (data := self.todo.get()) is not None:
            if self.error is not None:
                continue  # drain what is queued: the caller raises the error
            try:
                if len(data) <= WRITE_SLICE:
                    write(data)
                else:
                    view = memoryview(data)
                    for at in range(0, len(data), WRITE_SLICE):
                        write(view[at : at + WRITE_SLICE])
            except BaseException as exc:  # given to the caller
                self.error = exc

    def __exit__(self, *exc: object) -> None:
        self.todo.put(None)
        self.thread.join()
        if self.error is not None and exc[0] is None:
            raise self.error


def _count_block(block: LineBlock, kinds: list[bytes], stats: RangeSummary) -> None:
    """Account for a checked block in `stats` without parsing its plain lines."""
    plain = {kind: kinds.count(kind) for kind in _PLAIN_KINDS}
    if len(kinds) > sum(plain.values()):
        for k, kind in enumerate(kinds):
            if kind not in _PLAIN_KINDS:
                stats.add(block.record(k))
    for kind, n in plain.items():
        if n:
            stats.records += n
            stats.kinds[kind.decode()] += n
    if plain[b"msg"]:
        stats.messages += plain[b"msg"]
        first = block.record(kinds.index(b"msg")).ts
        last = block.record(len(kinds) - 1 - kinds[::-1].index(b"msg")).ts
        if stats.first_ts is None:
            stats.first_ts = first
        stats.last_ts = last
