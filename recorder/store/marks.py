"""Which journal lines are bookkeeping: publisher heartbeats, the recorder's events and
segment starts, which lists hide until asked (and goodbyes, which a list shows once).

They are found by a byte search for `"kind":"heartbeat"` (and the others) over a
segment's bytes, each hit checked with `line_kind` on its own line, never by reading
every record: bookkeeping is rare, messages are not. A closed segment never changes,
so its marks are kept in `metadata_index/<segment>.marks` (derived: one that does not
describe the segment as it is, or cannot be read, is found again from the segment).
The recorder writes them for each closed segment in the background, with its line
index cache, so a list over millions of records opens without reading any of them.
"""

from __future__ import annotations

import zlib
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from recorder.store.fsutil import atomic_write, ensure_private_dir, read_regular
from recorder.store.reader import SegmentIndex
from recorder.store.segfile import SegmentDamaged

BOOKKEEPING = frozenset((b"heartbeat", b"event", b"segment"))
"""Hidden until asked for: publisher heartbeats, the recorder's own events, segment starts."""
_NEEDLES = tuple((kind, b'"kind":"' + kind + b'"') for kind in sorted(BOOKKEEPING))
MARKS_VERSION = 1
_CHUNK = 16 << 20  # bytes read at a time (whole lines)


def line_kind(line: bytes) -> bytes | None:
    """The record kind in a journal line (None for a line without one: shown)."""
    at = line.find(b'"kind":"', 0, 200)
    if at < 0:
        return None
    end = line.find(b'"', at + 8, at + 64)
    return line[at + 8 : end] if end > 0 else None


def bye_key(line: bytes) -> int | None:
    """A publisher's goodbye heartbeat as a number equal for identical goodbyes (a
    CRC-32 of what follows `"frames":`); None for any other line."""
    if b'"bye":true' not in line or line_kind(line) != b"heartbeat":
        return None
    return zlib.crc32(line[line.find(b'"frames":') :])


@dataclass
class Marks:
    """The bookkeeping among `lines` consecutive lines, by their number among them."""

    lines: int = 0
    hidden: list[int] = field(default_factory=list)  # ascending
    byes: list[tuple[int, int]] = field(default_factory=list)  # (number, bye_key), ascending


def scan_lines(seg: SegmentIndex, first: int, stop: int) -> Marks:
    """Marks of lines `first` to `stop` of `seg`, numbered from `first`."""
    marks = Marks(max(0, stop - first))
    starts = seg.starts
    at = first
    while at < stop:
        begin = starts[at]
        # the first line starting at or beyond the byte budget ends this read
        upto = min(stop, max(at + 1, bisect_left(starts, begin + _CHUNK, at, stop)))
        end = seg.span(upto - 1)[1]
        data = seg.read_at(begin, end - begin)
        found: dict[int, bytes] = {}
        for kind, needle in _NEEDLES:
            pos = data.find(needle)
            while pos >= 0:
                k = bisect_right(starts, begin + pos, at, upto) - 1
                s, e = seg.span(k)
                line = data[s - begin : e - begin]
                if line_kind(line) == kind:
                    found[k] = line
                pos = data.find(needle, e - begin)
        for k in sorted(found):
            marks.hidden.append(k - first)
            key = bye_key(found[k])
            if key is not None:
                marks.byes.append((k - first, key))
        at = upto
    return marks


def segment_marks(seg: SegmentIndex, cache_dir: Path | None) -> Marks:
    """Marks of every line of a closed segment indexed from its start: the cached ones
    when they describe it as it is, else found (and cached when `cache_dir` is given)."""
    n = len(seg)
    identity = marks_identity(seg) if cache_dir is not None else None
    if cache_dir is None or identity is None:
        return scan_lines(seg, 0, n)
    path = marks_path(seg, cache_dir)
    cached = _load(path, identity)
    if cached is not None:
        return cached
    marks = scan_lines(seg, 0, n)
    if seg.damaged_frames:
        return marks  # read with stand-ins for damaged bytes: never kept
    doc = {"v": MARKS_VERSION, "segment": identity, "hidden": marks.hidden, "byes": marks.byes}
    try:
        ensure_private_dir(cache_dir)
        atomic_write(path, orjson.dumps(doc), durable=False)
    except OSError:
        pass  # a cache we cannot write is only slower next time
    return marks


def marks_identity(seg: SegmentIndex) -> list[int] | None:
    """What a marks file of `seg` must name (lines, size, CRC-32 of the last line);
    None when `seg` cannot have one (a partial index, no lines, unreadable)."""
    n = len(seg)
    if seg.start or n == 0:
        return None
    try:
        return [n, seg.end, zlib.crc32(seg.read(n - 1))]
    except (OSError, SegmentDamaged):
        return None


def cached_marks(seg: SegmentIndex, cache_dir: Path) -> Marks | None:
    """The kept marks of `seg`, if there are some and they describe `seg` as it is."""
    identity = marks_identity(seg)
    return None if identity is None else _load(marks_path(seg, cache_dir), identity)


def marks_path(seg: SegmentIndex, cache_dir: Path) -> Path:
    return cache_dir / f"{seg.name}.marks"


def write_marks(seg: SegmentIndex, cache_dir: Path) -> None:
    """The recorder's part: a closed segment's marks written once. A file already there
    is left as it is (not read again at every start): readers check it when they use
    it, and write it again when it is wrong."""
    if not marks_path(seg, cache_dir).exists():
        segment_marks(seg, cache_dir)


def _load(path: Path, identity: list[int]) -> Marks | None:
    """The marks in `path` if it is a marks file of exactly this segment, else None."""
    try:
        doc = orjson.loads(read_regular(path)[0])
        if doc["v"] != MARKS_VERSION or doc["segment"] != identity:
            return None
        n = identity[0]
        hidden = doc["hidden"]
        byes = [(k, key) for k, key in doc["byes"]]
        numbers = [*hidden, *(k for k, _ in byes)]
        if not all(type(k) is int and 0 <= k < n for k in numbers):
            return None
        if hidden != sorted(set(hidden)) or not all(type(key) is int for _, key in byes):
            return None
        return Marks(n, hidden, byes)
    except (OSError, ValueError, KeyError, TypeError):
        return None
