"""Read side of the journal, for the TUI and the tools. Imports neither zmq nor textual.

Opening a journal never parses it: each segment gets a newline-offset index
(built in C-speed chunks, cached in `metadata_index/` for closed segments) and
a record is read by position with one `pread`, through a small LRU cache.

Over 400 lines: the record, the per-segment index with its checked cache, and the
store that stitches segments together share the offset arithmetic and stay together.
"""

from __future__ import annotations

import bisect
import os
import re
import struct
import threading
import time
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from operator import attrgetter, lt
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from recorder.store.checkpoints import Checkpoint, list_checkpoints
from recorder.store.fsutil import atomic_write, ensure_private_dir, read_regular
from recorder.store.layout import Layout, list_segments, segment_name, segment_number
from recorder.store.records import KIND_MESSAGE, decode_frames, frame_value, parse_line
from recorder.store.segfile import SegmentDamaged, SegmentFile, SegmentGone, open_segment

_SCAN_CHUNK = 8 * 1024 * 1024
_INDEX_MAGIC = b"APIDX002"
_INDEX_OLD_MAGICS = (b"APIDX001",)  # earlier cache formats: rebuilt without a warning
# magic, segment size covered, segment mtime_ns, inode, line count, CRC-32 of the offsets
_INDEX_HEADER = struct.Struct("<8sQQQQI")
_INDEX_CHECK_LAST = 8  # the last cached line starts are always checked against the file
_INDEX_CHECK_SAMPLES = 32  # ... and this many others, evenly spread
_CACHE_MIN_BYTES = 1 << 20
# The segment being written is cached too, each time it has grown this much since the
# cache on disk: the next reader indexes only what came after (a cache of a segment
# that grew since is used for the part it covers).
OPEN_CACHE_STEP = 8 << 20
KIND_BAD_LINE = "bad-line"


_UNPARSED: Any = object()
_SEQ_HEAD = re.compile(rb'\{"v":\d{1,9},"seq":(\d{1,18})[,}]')  # a line's start as written


@dataclass(slots=True)
class Record:
    """One journal line, parsed on first use."""

    index: int
    segment: int
    offset: int
    line: bytes
    _data: Any = field(default=_UNPARSED, repr=False, compare=False)

    @property
    def data(self) -> dict[str, Any] | None:
        """The parsed line, or None for a damaged one (parsed once; a plain attribute
        cache because Python 3.11's cached_property takes a lock on every access)."""
        data = self._data
        if data is _UNPARSED:
            data = self._data = parse_line(self.line)
        return data  # type: ignore[no-any-return]

    @property
    def valid(self) -> bool:
        return self.data is not None

    def get(self, key: str, default: Any = None) -> Any:
        data = self.data
        return default if data is None else data.get(key, default)

    @property
    def seq(self) -> int | None:
        seq = self.get("seq")
        return seq if type(seq) is int else None

    @property
    def ts(self) -> float | None:
        ts = self.get("ts")
        return ts if type(ts) is float or type(ts) is int else None

    @property
    def kind(self) -> str:
        return KIND_BAD_LINE if self.data is None else str(self.data.get("kind"))

    @property
    def is_message(self) -> bool:
        return self.kind == KIND_MESSAGE

    @property
    def topic(self) -> str:
        return str(self.get("topic") or "")

    @property
    def meta(self) -> dict[str, Any]:
        return self.get("meta") or {}

    @property
    def sender(self) -> str:
        return str(self.meta.get("sender") or "")

    @property
    def frames(self) -> list[bytes]:
        """The original frames, byte for byte."""
        return decode_frames(self.line, self.data) if self.data else []

    @property
    def payload(self) -> Any:
        """The last frame as a reader wants it: parsed JSON, text or bytes."""
        frames = self.get("frames") or ()
        return frame_value(frames[-1]) if frames else None


@dataclass(frozen=True)
class LineBlock:
    """Consecutive whole lines of one segment, as stored (see `Store.blocks`)."""

    segment: SegmentIndex
    index: int  # global index of the first line
    line: int  # its index within the segment
    count: int  # lines in `data`
    data: bytes

    def record(self, k: int) -> Record:
        """Line `k` of the block as a record (unparsed until asked)."""
        seg = self.segment
        base = seg.starts[self.line]
        s, e = seg.span(self.line + k)
        return Record(self.index + k, seg.number, s, self.data[s - base : e - base])

    def lines(self) -> Iterator[Record]:
        return (self.record(k) for k in range(self.count))


VERIFIED_CACHES = "verified.json"


def read_verified(cache_dir: Path) -> dict[str, list[int]]:
    """`metadata_index/verified.json`: for each line-index cache checked in full against
    its segment (or written from the segment), that cache file's size, mtime_ns, inode
    and CRC-32. Derived and optional: missing, unreadable or wrongly typed, it reads as
    empty and every cache is checked in full. Read once per version of the file (its
    size, mtime and inode), not once per segment of a store being opened."""
    path = cache_dir / VERIFIED_CACHES
    try:
        st = os.stat(path)
        version = (st.st_size, st.st_mtime_ns, st.st_ino)
        known = _VERIFIED_READ.get(path)
        if known is not None and known[0] == version:
            return dict(known[1])
        value = orjson.loads(read_regular(path)[0])  # a named pipe is never waited on
    except (OSError, orjson.JSONDecodeError):
        return {}
    if not isinstance(value, dict):
        return {}
    entries = {
        name: stamp
        for name, stamp in value.items()
        if isinstance(stamp, list) and len(stamp) == 4 and all(type(x) is int for x in stamp)
    }
    _VERIFIED_READ[path] = (version, entries)
    return dict(entries)


_VERIFIED_READ: dict[Path, tuple[tuple[int, int, int], dict[str, list[int]]]] = {}


def mark_verified(cache_dir: Path, name: str, stamp: list[int]) -> None:
    """Record that cache `name` as `stamp` describes it was checked in full (entries of
    caches no longer there are dropped; a lost race between two writers only means a
    cache is checked in full once more)."""
    entries = read_verified(cache_dir)
    if entries.get(name) == stamp:
        return
    try:
        present = set(os.listdir(cache_dir))
        entries = {k: v for k, v in entries.items() if k in present}
        entries[name] = stamp
        atomic_write(cache_dir / VERIFIED_CACHES, orjson.dumps(entries), durable=False)
    except OSError:
        pass  # only slower next time


class SegmentIndex:
    """Line start offsets of one segment file, extended as the file grows. Offsets are
    in the uncompressed bytes, so they hold whichever form the file has."""

    def __init__(
        self, path: Path, cache_dir: Path | None = None, start: int = 0, *, recheck: bool = False
    ) -> None:
        """`start`: index from this byte offset on (a line start), leaving out the lines
        before it (recovery reads only what follows its last saved position); such a
        partial index is never cached. `recheck`: check a cache in full even when it
        was checked before (`persist doctor`)."""
        self.recheck = recheck
        self.path = path
        self.start = start
        self.number = segment_number(path.name) or 0
        self.name = segment_name(self.number)  # its name in checkpoints, whatever its form
        self.starts = array("Q")
        self.end = start  # bytes indexed so far (always just after a newline)
        self.size = 0
        self._cache_dir = None if start else cache_dir
        self._file: SegmentFile | None = None
        self.unreadable: str | None = None  # why a compressed file cannot be read at all
        self._saved: tuple[int, int] | None = None  # (end, size) the cache file holds
        self.cached_end = 0  # bytes the cache on disk covers (0: none known)
        self.warning: str | None = None  # why the cache was not used, if it was wrong
        self.torn_tail = 0  # bytes of an unterminated last line, indexed as one (closed only)
        if self._cache_dir is not None:
            self._load_cache()

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def file(self) -> SegmentFile:
        """The open file (`SegmentGone` if it is gone, another OSError if it cannot be
        opened, `SegmentDamaged` if it is unreadable). Once open, it is read whatever
        happens to its name (pruned into the trash, compressed): what was indexed."""
        if self._file is None:
            try:
                self._file = open_segment(self.path)
            except FileNotFoundError:
                raise SegmentGone(self.path) from None
            self.path = self._file.path  # compressed since it was listed: the new file
        return self._file

    @property
    def damaged_frames(self) -> list[int]:
        """Compressed frames found damaged so far (read as NUL bytes: damaged lines)."""
        damaged = getattr(self._file, "damaged", None)
        return sorted(damaged) if damaged else []

    def read_at(self, offset: int, n: int) -> bytes:
        return self.file.read(offset, n) if n > 0 else b""

    def swap(self, path: Path) -> None:
        """The segment now lives at `path` (compressed after it was closed): read from
        there if it opens and holds what was indexed; else go on with the old file
        (an unlinked file stays readable while it is open). The old file object closes
        once no reader in progress holds it."""
        try:
            new = open_segment(path)
        except (OSError, SegmentDamaged):
            return
        if new.size < self.end:
            new.close()
            return
        self.path, self._file = path, new

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def replaced(self) -> bool:
        """Whether the file at `path` is no longer the one indexed: another file there
        (the log folder removed and recorded into afresh, a copy put back) or this one
        shorter than what was indexed (truncated). One `stat`; False while that is not
        known (the file not opened yet, or gone a moment ago: the next listing says)."""
        f = self._file
        if f is None:
            return False
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        if (st.st_dev, st.st_ino) != f.ident:
            return True
        return not f.compressed and st.st_size < self.end

    def update(self) -> int:
        """Index lines appended since the last call; returns how many."""
        try:
            size = self.file.refresh()
        except SegmentDamaged as exc:
            self.unreadable = str(exc)
            return 0
        except FileNotFoundError:
            return 0  # gone since it was listed (compressed, pruned): the next refresh sees it
        except OSError as exc:  # there, but no file we can read (a folder, no permission)
            self.unreadable = f"{self.path.name} cannot be read: {exc.strerror or exc}"
            return 0
        if size < self.end or (self.start and not self.starts and not self._after_newline()):
            # truncated (tail repair), or a start that is no line start: start over
            self.starts = array("Q")
            self.end = self.start = 0
            self.torn_tail = 0
        self.size = size
        before = len(self.starts)
        pos = self.end
        carry = b""
        while pos < self.size:
            chunk = self.read_at(pos, min(_SCAN_CHUNK, self.size - pos))
            if not chunk:
                break
            base = pos - len(carry)
            data = carry + chunk if carry else chunk
            pos += len(chunk)
            last_nl = data.rfind(b"\n")
            if last_nl < 0:
                carry = data
                continue
            parts = data[: last_nl + 1].split(b"\n")
            parts.pop()  # empty piece after the final newline
            # Start of each line = base + cumulative length of the lines before it.
            offsets = accumulate((len(p) + 1 for p in parts), initial=base)
            self.starts.extend(offsets)
            self.starts.pop()  # the offset after the last newline is not a line yet
            self.end = base + last_nl + 1
            carry = data[last_nl + 1 :]
        return len(self.starts) - before

    def _after_newline(self) -> bool:
        """Whether `end` is a line start (a newline just before it)."""
        try:
            return self.read_at(self.end - 1, 1) == b"\n"
        except (OSError, SegmentDamaged):
            return False

    def close_tail(self) -> None:
        """This segment is closed (a later one exists), so nothing will ever complete
        its unterminated last line: index that torn tail as a line of its own, which
        readers then see as a damaged (`bad-line`) record instead of never at all."""
        if self.end < self.size:
            self.torn_tail = self.size - self.end
            self.starts.append(self.end)
            self.end = self.size

    def tail(self, limit: int = 1 << 16) -> bytes:
        """The bytes after the last newline (the first `limit` of them)."""
        if self.torn_tail:
            return self.read_at(self.end - self.torn_tail, min(self.torn_tail, limit))
        return self.read_at(self.end, min(self.size - self.end, limit))

    def span(self, i: int) -> tuple[int, int]:
        start = self.starts[i]
        end = self.starts[i + 1] if i + 1 < len(self.starts) else self.end
        return start, end

    def read(self, i: int) -> bytes:
        start, end = self.span(i)
        return self.read_at(start, end - start)

    def line_at(self, offset: int) -> int:
        """Index of the first line starting at or after `offset`."""
        return bisect.bisect_left(self.starts, offset)

    # -- cache in metadata_index/ (derived; rebuilt whenever it does not match) --
    def _cache_path(self) -> Path:
        assert self._cache_dir is not None
        return self._cache_dir / f"{self.path.name}.idx"

    def _load_cache(self) -> None:
        """Use the cache if it describes this file as it is; else leave the index empty
        (it is rebuilt from the segment) and say why in `self.warning`."""
        assert self._cache_dir is not None
        try:
            ino, mtime_ns = self.file.identity()
            size = self.file.size
            raw, st = read_regular(self._cache_path())  # a named pipe is never waited on
        except (OSError, SegmentDamaged):
            return
        own = (st.st_size, st.st_mtime_ns, st.st_ino)
        known = (
            None if self.recheck else read_verified(self._cache_dir).get(self._cache_path().name)
        )
        problem = self._check_cache(raw, ino, mtime_ns, size, own, known)
        if problem is not None:
            if problem:  # "": nothing wrong to say (a copy of the folder)
                self.warning = (
                    f"{self._cache_dir.name}/{self._cache_path().name}: "
                    f"{problem}; rebuilt from {self.path.name}"
                )
            self.starts = array("Q")
            self.end = 0

    def _check_cache(
        self,
        raw: bytes,
        file_ino: int,
        file_mtime_ns: int,
        file_size: int,
        own: tuple[int, int, int],
        known: list[int] | None,
    ) -> str | None:
        """Why the cache cannot be used (None: it was loaded into the index; "": it
        is not used, with nothing wrong to say).

        `own`: the cache file's (size, mtime_ns, inode); `known`: what `verified.json`
        says of it. When the file is exactly the one checked in full before (same stat,
        same CRC), the order and read-back checks below are not repeated: a cache that
        was damaged or rewritten since has another stat or CRC and is checked again.

        Checked: the header (magic, inode; the size it covers is at most the file's,
        and its mtime matches if the file has not grown since), the body's length
        against the line count the header claims, the body's CRC-32, the first start
        is 0, every start strictly above the one before, the last start inside the
        covered size; then the last 8 cached lines and 32 others spread evenly are
        read (one pread each): each must be exactly one line (its only newline is its
        last byte, so no line is hidden inside it) and follow a newline.
        """
        if raw[:8] in _INDEX_OLD_MAGICS:
            return None  # an older cache format: rebuilt, nothing wrong with the journal
        if len(raw) < _INDEX_HEADER.size:
            return "shorter than its header"
        magic, size, mtime_ns, ino, count, crc = _INDEX_HEADER.unpack_from(raw)
        if magic != _INDEX_MAGIC:
            return "not an index cache"
        if ino != file_ino and (size, mtime_ns) == (file_size, file_mtime_ns):
            return ""  # the same size and time in another file: a copy (`cp -a`, a backup)
        if ino != file_ino or size > file_size or (size == file_size and mtime_ns != file_mtime_ns):
            return "describes another version of the segment"
        body = memoryview(raw)[_INDEX_HEADER.size :]
        if len(body) != count * 8:
            return f"holds {len(body) // 8} line starts, its header says {count}"
        if zlib.crc32(body) != crc:
            return "its checksum does not match"
        checked_before = known == [*own, crc]
        starts = array("Q")
        starts.frombytes(body)
        if (size == 0) != (count == 0) or (starts and starts[0] != 0):
            return "does not begin at the start of the segment"
        if not checked_before and not all(map(lt, starts, starts[1:])):
            return "line starts out of order"
        if starts and starts[-1] >= size:
            return "a line start lies beyond the part it covers"
        if count and not checked_before:
            check = set(range(max(0, count - _INDEX_CHECK_LAST), count))
            if self.file.compressed:
                # as many lines, in 4 runs of 8: a run costs one frame to decompress
                # (sometimes two), 32 lines spread out would cost 32 frames
                for run in range(_INDEX_CHECK_SAMPLES // 8):
                    first = run * count // (_INDEX_CHECK_SAMPLES // 8)
                    check.update(range(first, min(count, first + 8)))
            else:
                check.update(range(0, count, max(1, count // _INDEX_CHECK_SAMPLES)))
            try:
                for k in sorted(check):
                    start = starts[k]
                    end = starts[k + 1] if k + 1 < count else size
                    line = self.read_at(start, end - start)
                    if line.find(b"\n") != len(line) - 1 or (
                        k and self.read_at(start - 1, 1) != b"\n"
                    ):
                        return "its line starts do not match the segment's lines"
            except OSError as exc:
                return f"cannot be checked ({exc.strerror})"
            finally:
                self.file.forget()  # most segments are not read again soon: keep no frames
            assert self._cache_dir is not None
            if not self.recheck:  # doctor only reads
                mark_verified(self._cache_dir, self._cache_path().name, [*own, crc])
        self.starts = starts
        self.end = self.cached_end = size
        if size == file_size:
            self._saved = (size, size)
        return None

    def save_cache(self) -> None:
        if self._cache_dir is None or self.end < _CACHE_MIN_BYTES or self.end != self.size:
            return
        if self.torn_tail:
            return  # the journal itself is damaged: always index it afresh
        if self._saved == (self.end, self.size):
            return  # already on disk
        try:
            ino, mtime_ns = self.file.identity()
            ensure_private_dir(self._cache_dir)
            body = self.starts.tobytes()
            crc = zlib.crc32(body)
            header = _INDEX_HEADER.pack(
                _INDEX_MAGIC, self.end, mtime_ns, ino, len(self.starts), crc
            )
            path = self._cache_path()
            atomic_write(path, header + body, durable=False)
            self._saved = (self.end, self.size)
            self.cached_end = self.end
            st = os.stat(path)  # written from line starts found in the segment itself
            mark_verified(self._cache_dir, path.name, [st.st_size, st.st_mtime_ns, st.st_ino, crc])
        except (OSError, SegmentDamaged):
            pass  # a cache we cannot write is only slower next time


@dataclass
class StoreStats:
    segments: int = 0
    lines: int = 0
    bytes: int = 0
    index_seconds: float = 0.0


@dataclass
class Store:
    """All segments of a log folder as one virtual list of records."""

    root: Path
    cache_index: bool = True
    record_cache_size: int = 4096
    first_segment: int = 0  # segments numbered below this are left out (a tail view)
    first_offset: int = 0  # and in that segment, the lines before this byte offset
    stats: StoreStats = field(default_factory=StoreStats)
    # derived files found wrong and ignored (one sentence each, for the reader to show)
    warnings: list[str] = field(default_factory=list)
    generation: int = field(default=0, init=False)
    """Counts the refreshes that changed the view other than by growing it at its end (a
    segment removed, pruned, replaced by another file, truncated, or put back before
    others): the global indices of records from before no longer hold."""

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.layout = Layout(self.root)
        # (segments, line count before each segment), replaced as a whole by refresh()
        self._view: tuple[list[SegmentIndex], list[int]] = ([], [])
        self._cache: OrderedDict[int, Record] = OrderedDict()
        self._lock = threading.RLock()
        # per segment (number, path): (its lines, its first seq when the seqs of its lines
        # run +1 a line from it to its last, else None), for `checkpoint_end(quick=True)`
        self._runs: dict[tuple[int, Path], tuple[int, int | None]] = {}

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def exists(self) -> bool:
        return self.layout.segments.is_dir()

    def close(self) -> None:
        for seg in self.segments:
            seg.close()

    # -- indexing ----------------------------------------------------------------
    def refresh(self) -> int:
        """Pick up new segments and new lines; returns the number of new lines. A
        segment no longer listed (removed, pruned) leaves the view, one replaced by
        another file or truncated is indexed afresh (one `stat` per segment tells),
        and `generation` then counts one more (records cached by index are dropped)."""
        with self._lock:
            return self._refresh()

    def _refresh(self) -> int:
        t0 = time.perf_counter()
        cache_dir = self.layout.index if self.cache_index else None
        previous = self.segments
        previous_last = previous[-1] if previous else None
        listed = {segment_number(p.name) or 0: p for p in list_segments(self.layout)}
        segments: list[SegmentIndex] = []
        changed = False  # other than grown at its end: the indices from before do not hold
        for seg in previous:
            path = listed.get(seg.number)
            if path is None:  # removed, pruned, or its folder removed: its records are gone
                changed = True
                continue
            if path != seg.path:
                seg.swap(path)  # compressed since: same bytes, read from the new file
            elif seg.replaced():  # another file at its name, or truncated: indexed afresh
                changed = True
                continue
            segments.append(seg)
            del listed[seg.number]
        last_number = segments[-1].number if segments else -1
        for number, path in sorted(listed.items()):
            if number < self.first_segment:
                continue
            start = self.first_offset if number == self.first_segment else 0
            seg = SegmentIndex(path, cache_dir, start)
            if seg.warning:
                self.warnings.append(seg.warning)
            # a segment put back from the trash (`persist trash restore`) comes before
            # the ones already open
            changed = changed or number < last_number
            segments.append(seg)
        segments.sort(key=attrgetter("number"))  # journal order
        if changed:
            # records and seq runs were cached by global index: those no longer hold
            self._cache.clear()
            self._runs.clear()
            self.generation += 1
        added = 0
        # Closed segments never change; only the last one grows, and the one that
        # was last until now may have grown before the recorder moved on.
        for seg in segments:
            if seg.end == 0 or seg is segments[-1] or seg is previous_last or seg.end != seg.size:
                added += seg.update()
                if seg.unreadable and seg.unreadable not in self.warnings:
                    self.warnings.append(seg.unreadable)
        for seg in segments[:-1]:
            seg.close_tail()
            seg.save_cache()
        if segments and segments[-1].end - segments[-1].cached_end >= OPEN_CACHE_STEP:
            segments[-1].save_cache()  # the one being written, once it grew enough
        # Publish the new view in one step, so readers never see counts and
        # segments that disagree.
        self._view = (segments, [0, *accumulate(len(s) for s in segments)][:-1])
        self.stats.segments = len(self.segments)
        self.stats.lines = len(self)
        self.stats.bytes = sum(s.end for s in self.segments)
        self.stats.index_seconds += time.perf_counter() - t0
        return added

    @property
    def segments(self) -> list[SegmentIndex]:
        return self._view[0]

    def __len__(self) -> int:
        segments, totals = self._view
        return totals[-1] + len(segments[-1]) if segments else 0

    def locate(self, index: int) -> tuple[SegmentIndex, int]:
        segments, totals = self._view
        size = totals[-1] + len(segments[-1]) if segments else 0
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError(index)
        k = bisect.bisect_right(totals, index) - 1
        return segments[k], index - totals[k]

    def _segment(self, number: int) -> SegmentIndex | None:
        return next((s for s in self._view[0] if s.number == number), None)

    def index_of(self, segment: int, offset: int) -> int:
        """Global index of the first line at or after (segment number, offset)."""
        segments, totals = self._view
        for k, seg in enumerate(segments):
            if seg.number == segment:
                return totals[k] + seg.line_at(offset)
            if seg.number > segment:
                return totals[k]
        return len(self)

    # -- reading -----------------------------------------------------------------
    def record(self, index: int) -> Record:
        if index < 0:
            index += len(self)
        with self._lock:
            cached = self._cache.get(index)
            if cached is not None:
                self._cache.move_to_end(index)
                return cached
            seg, i = self.locate(index)
            start, _end = seg.span(i)
            rec = Record(index, seg.number, start, seg.read(i))
            self._cache[index] = rec
            if len(self._cache) > self.record_cache_size:
                self._cache.popitem(last=False)
            return rec

    def head(self, index: int, nbytes: int) -> bytes:
        """The first `nbytes` bytes of record `index`'s line, read but not parsed
        (one small read: enough to tell a record's kind without decoding it)."""
        seg, i = self.locate(index)
        start, end = seg.span(i)
        return seg.read_at(start, min(end - start, nbytes))

    def records(self, start: int = 0, stop: int | None = None) -> Iterator[Record]:
        """Records in journal order, read in large sequential chunks."""
        stop = len(self) if stop is None else min(stop, len(self))
        index = start
        while index < stop:
            seg, i = self.locate(index)
            last = min(len(seg), i + (stop - index))
            number, starts = seg.number, seg.starts
            while i < last:
                j = min(last, i + 4096)
                first_start = starts[i]
                block_end = seg.span(j - 1)[1]
                block = seg.read_at(first_start, block_end - first_start)
                # the line ends: the next line's start, the block's end for the last one
                ends = starts[i + 1 : j]
                ends.append(block_end)
                for s, e in zip(starts[i:j], ends, strict=True):
                    yield Record(index, number, s, block[s - first_start : e - first_start])
                    index += 1
                i = j

    def blocks(
        self, start: int = 0, stop: int | None = None, max_bytes: int = _SCAN_CHUNK
    ) -> Iterator[LineBlock]:
        """Records `start` to `stop` as raw bytes, whole lines only, in reads of about
        `max_bytes` (at least one line), never across a segment boundary: for copying
        the journal without parsing it."""
        stop = len(self) if stop is None else min(stop, len(self))
        index = start
        while index < stop:
            seg, i = self.locate(index)
            last = min(len(seg), i + (stop - index))
            first_start = seg.starts[i]
            # the first line starting at or beyond the byte budget ends this block
            j = min(last, max(i + 1, bisect.bisect_left(seg.starts, first_start + max_bytes)))
            end = seg.span(j - 1)[1]
            data = seg.read_at(first_start, end - first_start)
            yield LineBlock(seg, index, i, j - i, data)
            index += j - i

    def bisect(
        self, value: Any, key: Callable[[Record], Any], lo: int = 0, hi: int | None = None
    ) -> int:
        """First index in [lo, hi) whose `key(record)` is >= `value` (keys ascend).

        A line with no key (unreadable) is stepped over; a run of them at the end
        counts as later than everything.
        """
        hi = len(self) if hi is None else hi
        while lo < hi:
            mid = probe = (lo + hi) // 2
            k = key(self.record(probe))
            while k is None and probe + 1 < hi:
                probe += 1
                k = key(self.record(probe))
            if k is None or k >= value:
                hi = mid
            else:
                lo = probe + 1
        return lo

    def by_seq(self, seq: int) -> Record | None:
        """Find a record by journal sequence number (binary search over lines)."""
        i = self.bisect(seq, attrgetter("seq"))
        if i < len(self) and self.record(i).seq == seq:
            return self.record(i)
        return None

    def checkpoints(self) -> list[Checkpoint]:
        """All checkpoints, newest first."""
        return list_checkpoints(self.layout)

    def checkpoint_index(self, cp: Checkpoint, *, quick: bool = False) -> int:
        """Global index just after the last record a checkpoint covers."""
        return self.checkpoint_end(cp, quick=quick).stop

    def checkpoint_end(self, cp: Checkpoint, *, quick: bool = False) -> CheckpointEnd:
        """Where the records a checkpoint covers end, and whether its position said so.

        The position's byte offset finds the place, and the records' seqs (increasing
        through the journal; `cp.seq` is its last record's) confirm it, since an offset
        holds only while the bytes before it do: a line of its segment shortened or
        lengthened (a byte lost or added), or lost whole, moves the lines after it; a
        segment that lost its unsynced tail to a power cut and was written on after
        the restart no longer reaches it (nor one of a checkpoint file changed by hand).
        Records with a later seq before the place are then left out and, when the
        position fell inside a line, ones with an earlier seq just after it taken in
        (on a line start it is trusted: a seq changed by hand takes in nothing after
        it), never a record written after the checkpoint, and `moved` says so (the
        digest check names the damage). A position beyond what this store has seen of
        its segment but within the file on disk is no damage: the store may not have
        seen it grow, and refreshing it here would hide that growth from its owner's
        next `refresh`. `quick` (thousands of checkpoints at once on the UI thread): a
        position on a line start is taken once the first bytes of the line before it
        say the checkpoint's seq (one small read, no walk). Until 2026-12-07 it was
        taken with no read: a whole line lost before it put the position on the start
        of the line after the one it ended, and the record after the checkpoint was
        taken for its last."""
        index = guess = self.index_of(cp.segment, cp.offset)
        seg = self._segment(cp.segment)
        if seg is None:
            return CheckpointEnd(index, False)
        first = self.index_of(cp.segment, 0)
        end = first + len(seg)

        def said(at: int) -> bool:  # the position is this place, or one not seen yet
            if at < end:
                return seg.starts[at - first] == cp.offset
            return seg.end <= cp.offset <= max(seg.size, _disk_size(seg.path))

        if quick and said(index):
            # the line before it is the checkpoint's last (unless none of this segment
            # is before it, or the store has not seen its end yet: nothing to read).
            # In a segment whose lines' seqs run +1 a line from its first to its last
            # (read once), that line's seq is known without reading it: a compressed
            # segment's read decompresses a frame, 0.2 ms a checkpoint
            seen = index < end or cp.offset == seg.end
            if not (seen and index > first):
                return CheckpointEnd(index, False)
            run = self._seq_run(seg, first)
            last = run + (index - 1 - first) if run is not None else self.seq_at(index - 1)
            if last == cp.seq:
                return CheckpointEnd(index, False)
        kept: int | None = None  # the seq of the last record covered (None: not known)
        at = index
        while at > first:  # back over records written after it (damaged lines among them)
            at -= 1
            seq = self.seq_at(at)
            if seq is not None and seq <= cp.seq:
                kept = seq
                break
            if seq is not None:
                index = at
        if index == guess and not said(guess):
            # on over records it covers, in seq order: only when the position fell
            # inside a line (bytes added before it). On a line start it is trusted: a
            # seq that says more (a checkpoint file changed) never takes in records
            # written after it; one that says less is the digest check's to name
            while index < end:
                seq = self.seq_at(index)
                if seq is None or seq > cp.seq or (kept is not None and seq <= kept):
                    break
                kept = seq
                index += 1
        return CheckpointEnd(index, not said(index))

    def _seq_run(self, seg: SegmentIndex, first: int) -> int | None:
        """The seq of `seg`'s first line (global index `first`) when its lines' seqs run
        +1 a line to its last line's (a line lost, added or without a seq, or a jump in
        seqs, breaks the run: None). Its first and last lines read once per length."""
        key, lines = (seg.number, seg.path), len(seg)
        known = self._runs.get(key)
        if known is not None and known[0] == lines:
            return known[1]
        head = self.seq_at(first) if lines else None
        tail = self.seq_at(first + lines - 1) if lines else None
        run = head if head is not None and tail == head + lines - 1 else None
        self._runs[key] = (lines, run)
        return run

    def seq_at(self, index: int) -> int | None:
        """Record `index`'s seq, from its line's first bytes as the recorder writes them
        (the line parsed only when they say otherwise); None for a line without one."""
        found = _SEQ_HEAD.match(self.head(index, 48))
        return int(found[1]) if found else self.record(index).seq

    def follow(self, poll: float = 0.2, stop: Any = None) -> Iterator[list[Record]]:
        """Yield batches of new records as the recorder appends them (`tail -F`). Where
        it got to is kept as (segment, its lines), not as a global index, which a
        segment removed or pruned under it shifts: then only what came after is yielded;
        a journal replaced as a whole (its folder removed and recorded into again) is
        followed from its first record."""
        with self._lock:
            segments = self.segments
            mark = (segments[-1], len(segments[-1])) if segments else None
        while stop is None or not stop.is_set():
            self.refresh()
            with self._lock:
                previous = segments
                segments, totals = self._view
                start = _follow_start(segments, totals, previous, mark)
                end = len(self)
                if segments:
                    mark = (segments[-1], len(segments[-1]))
            if end > start:
                yield list(self.records(start, end))
            else:
                time.sleep(poll)


def _follow_start(
    segments: list[SegmentIndex],
    totals: list[int],
    previous: list[SegmentIndex],
    mark: tuple[SegmentIndex, int] | None,
) -> int:
    """`Store.follow`: the global index of the first record after `mark` in the view
    (`segments`, `totals`); `previous` holds the segments of the view before."""
    if mark is None:
        return 0
    last, lines = mark
    known = {id(seg) for seg in previous}  # `previous` keeps them alive: ids not reused
    for i, seg in enumerate(segments):
        if seg is last:
            return totals[i] + lines
    if not any(id(seg) in known for seg in segments):
        return 0  # nothing of the journal followed is left: a new one
    for i, seg in enumerate(segments):
        if id(seg) not in known and seg.number >= last.number:
            return totals[i]  # the one followed was removed or replaced: what came after
    return totals[-1] + len(segments[-1]) if segments else 0


class CheckpointEnd(NamedTuple):
    """`Store.checkpoint_end`: the global index just after a checkpoint's last record,
    and whether its position was not there (the journal changed before it)."""

    stop: int
    moved: bool


def _disk_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:  # compacted meanwhile: the view's size is the segment's
        return 0


def index_at_time(store: Store, ts: float, lo: int = 0, hi: int | None = None) -> int:
    """First index whose record time is >= `ts` (records are in time order)."""
    return store.bisect(ts, attrgetter("ts"), lo, hi)


def open_store(root: Path | str) -> Store:
    store = Store(Path(root))
    store.refresh()
    return store
