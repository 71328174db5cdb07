"""Whether journal lines have the shape of records, checked cheaply, and kept per
segment so that copying a segment's bytes needs no check at all.

`block_kinds` checks a block of lines with one regex pass (no parsing). A closed
segment that passes it everywhere gets a `SegmentCheck` in
`metadata_index/<segment>.check`: the file it describes (inode, mtime, size, lines)
and every line whose kind is not `msg`. A JSONL export then copies that segment in
the kernel (`os.sendfile`) and counts it from the check: this is "validated by the
index". The recorder writes the check for each closed segment in the background, with
its line index and marks; an export that checked a whole segment writes it too, the
active one included (its check holds until the next append changes its mtime and
size). Derived: a check that does not describe the segment as it is now, or is not a
well-formed check, is ignored and the segment is checked again.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path

import orjson

from recorder.store.fsutil import atomic_write, ensure_private_dir, read_regular
from recorder.store.reader import SegmentIndex
from recorder.store.segfile import SegmentDamaged

# The head every record line starts with (FORMAT.md: v, seq, ts, kind, first and in
# this order); after the first line, with the `}` and newline that end the line before.
_HEAD = rb'\{"v":\d+,"seq":-?\d+,"ts":-?[0-9][0-9.eE+-]*,"kind":"([a-z-]+)"'
_FIRST_HEAD = re.compile(_HEAD)
_NEXT_HEADS = re.compile(b"}\n" + _HEAD)
_KIND = re.compile(r"[a-z-]{1,32}")
MESSAGE = b"msg"
CHECK_VERSION = 1
CHECK_BLOCK = 8 << 20  # bytes checked at a time


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


def other_kinds(kinds: list[bytes], first_line: int) -> list[tuple[int, str]]:
    """(line number, kind) of each line in `kinds` that is not a message."""
    if kinds.count(MESSAGE) == len(kinds):
        return []
    return [(first_line + k, kind.decode()) for k, kind in enumerate(kinds) if kind != MESSAGE]


@dataclass(frozen=True)
class SegmentCheck:
    """Every line of one closed segment passed `block_kinds`; `others` are the lines
    whose kind is not `msg`, ascending."""

    identity: tuple[int, int, int, int]  # inode, mtime_ns, size, lines
    others: list[tuple[int, str]]


def identity_of(seg: SegmentIndex) -> tuple[int, int, int, int] | None:
    """What a check of `seg` must describe; None when `seg` cannot have one (not
    indexed to its end, a torn tail, damaged frames, a partial index, unreadable)."""
    if seg.start or seg.torn_tail or not len(seg) or seg.end != seg.size or seg.damaged_frames:
        return None
    try:
        ino, mtime_ns = seg.file.identity()
    except (OSError, SegmentDamaged):
        return None
    return ino, mtime_ns, seg.size, len(seg)


def check_path(seg: SegmentIndex, cache_dir: Path) -> Path:
    return cache_dir / f"{seg.name}.check"


def cached_check(seg: SegmentIndex, cache_dir: Path | None) -> SegmentCheck | None:
    """The kept check of `seg`, if there is one and it describes `seg` as it is."""
    identity = identity_of(seg) if cache_dir is not None else None
    if identity is None or cache_dir is None:
        return None
    try:
        doc = orjson.loads(read_regular(check_path(seg, cache_dir))[0])
        if doc["v"] != CHECK_VERSION or doc["segment"] != list(identity):
            return None
        lines = identity[3]
        others = [(line, kind) for line, kind in doc["others"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    numbers = [line for line, _ in others]
    if not all(type(n) is int and 0 <= n < lines for n in numbers) or numbers != sorted(
        set(numbers)
    ):
        return None
    if not all(type(kind) is str and _KIND.fullmatch(kind) for _, kind in others):
        return None
    return SegmentCheck(identity, others)


def save_check(seg: SegmentIndex, cache_dir: Path, others: list[tuple[int, str]]) -> None:
    """Keep the result of a check that every line of `seg` passed."""
    identity = identity_of(seg)
    if identity is None:
        return
    doc = {"v": CHECK_VERSION, "segment": list(identity), "others": others}
    try:
        ensure_private_dir(cache_dir)
        atomic_write(check_path(seg, cache_dir), orjson.dumps(doc), durable=False)
    except OSError:
        pass  # a cache we cannot write is only slower next time


def check_segment(seg: SegmentIndex) -> SegmentCheck | None:
    """Check every line of a closed, fully indexed segment (None if one fails)."""
    identity = identity_of(seg)
    if identity is None:
        return None
    others: list[tuple[int, str]] = []
    starts = seg.starts
    at = 0
    n = len(seg)
    try:
        while at < n:
            begin = starts[at]
            upto = min(n, max(at + 1, bisect_left(starts, begin + CHECK_BLOCK, at, n)))
            end = seg.span(upto - 1)[1]
            kinds = block_kinds(seg.read_at(begin, end - begin), upto - at)
            if kinds is None:
                return None
            others += other_kinds(kinds, at)
            at = upto
    except (OSError, SegmentDamaged):
        return None
    seg.file.forget()  # most closed segments are not read again soon: keep no frames
    if seg.damaged_frames or identity_of(seg) != identity:
        return None  # read with stand-ins for damaged bytes, or changed meanwhile
    return SegmentCheck(identity, others)


def write_check(seg: SegmentIndex, cache_dir: Path) -> None:
    """The recorder's part: a closed segment's check, kept once it passed. A check
    already there that describes the segment as it is stays; one of another version of
    the file (an export's check of the segment while it was still being written, or of
    the file compaction replaced) is written again."""
    if cached_check(seg, cache_dir) is not None:
        return
    check = check_segment(seg)
    if check is not None:
        save_check(seg, cache_dir, check.others)
