"""One read of each segment for `persist doctor`: every line checked, the digests the
checkpoints and digest caches need, the tail a start-up repair would move aside.

Nothing is written. Lines are checked in 8 MiB blocks by the export's one-regex test
(`block_kinds`); a block that fails it is gone through line by line, parsing each.
While every block passes, the lines that are not messages are noted (with the
publisher goodbyes among them): what the segment's line check and marks must say.
The SHA-256 of the segment's first N bytes is taken on the way for every N asked for
(the sizes the checkpoints name, and the whole file for a closed segment), so every
checkpoint is verified with one read of the journal instead of one per checkpoint.
Digests are keyed by the name checkpoints give a segment (`seg-N.jsonl`). A compressed
segment (`seg-N.jsonl.zst`) is read through the store's segment reader: its
uncompressed bytes are checked and hashed, a damaged frame reads as NUL bytes (damaged
lines) and an unreadable frame table is the scan's error.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from recorder.store.fsutil import not_regular
from recorder.store.layout import is_compressed, segment_name, segment_number
from recorder.store.linecheck import block_kinds, other_kinds
from recorder.store.marks import bye_key
from recorder.store.records import parse_line
from recorder.store.segfile import CompressedSegment, SegmentDamaged

_CHUNK = 8 << 20


@dataclass
class SegmentScan:
    path: Path
    closed: bool
    size: int = 0
    lines: int = 0  # whole lines (ending in a newline)
    bad_lines: int = 0  # whole lines that are not records
    bad_bytes: int = 0  # their bytes (a damaged compressed frame reads as one line of NULs)
    first_bad: int | None = None  # offset of the first of them
    trailing_bad: int = 0  # bad whole lines at the very end (a start-up repair moves them)
    trailing_bad_bytes: int = 0
    tail: int = 0  # bytes after the last newline
    tail_nul: bool = False  # ... some of them NUL (a power cut)
    damaged: str = ""  # the compressed frames found damaged (`damaged_words`)
    tail_damaged: bool = False  # the tail reaches into one: its NULs are that damage
    digests: dict[int, str] = field(default_factory=dict)  # SHA-256 of the first N bytes
    error: str | None = None  # the file could not be read
    not_a_file: bool = False  # ... because it is no regular file (a folder, a named pipe)
    # every whole line passed `block_kinds`; then `others` holds the lines that are not
    # messages (line number, kind) and `byes` the goodbye heartbeats among them (line
    # number, `bye_key`): what the segment's `.check` and `.marks` must say
    shaped: bool = True
    others: list[tuple[int, str]] = field(default_factory=list)
    byes: list[tuple[int, int]] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The segment's name as checkpoints give it (`seg-N.jsonl`)."""
        return segment_name(segment_number(self.path.name) or 0)

    @property
    def full_digest(self) -> str | None:
        return self.digests.get(self.size) if self.error is None else None


def scan_segment(path: Path, closed: bool, sizes: Iterable[int] = ()) -> SegmentScan:
    """Read `path` once; `sizes`: prefixes whose SHA-256 is wanted (a closed segment's
    whole size is always added)."""
    scan = SegmentScan(path, closed)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        scan.error = exc.strerror or str(exc)
        return scan
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            scan.error = not_regular(st.st_mode)  # "a named pipe, not a regular file"
            scan.not_a_file = True
            return scan
        if is_compressed(path):
            _read_compressed(path, scan, sizes)
            return scan
        scan.size = st.st_size
        wanted = sorted({s for s in sizes if 0 <= s <= scan.size} | {scan.size})
        _read(lambda n: os.read(fd, n), scan, wanted)
    except OSError as exc:
        scan.error = exc.strerror or str(exc)
    finally:
        os.close(fd)
    return scan


def _read_compressed(path: Path, scan: SegmentScan, sizes: Iterable[int]) -> None:
    try:
        seg = CompressedSegment(path)
    except SegmentDamaged as exc:
        scan.error = str(exc).split(": ", 1)[-1]
        return
    with seg:
        scan.size = seg.size
        wanted = sorted({s for s in sizes if 0 <= s <= scan.size} | {scan.size})
        at = 0

        def read(n: int) -> bytes:
            nonlocal at
            data = seg.read(at, n)
            at += len(data)
            return data

        _read(read, scan, wanted)
        scan.damaged = seg.damaged_words()
        scan.tail_damaged = bool(scan.tail) and seg.damaged_within(scan.size - scan.tail, scan.size)


def _read(read: Callable[[int], bytes], scan: SegmentScan, wanted: list[int]) -> None:
    hasher = hashlib.sha256()
    pos = 0
    carry = b""
    k = 0
    while k < len(wanted) and wanted[k] == 0:
        scan.digests[0] = hasher.hexdigest()
        k += 1
    while pos < scan.size:
        chunk = read(min(_CHUNK, scan.size - pos))
        if not chunk:
            scan.size = pos  # shrank while read
            break
        start = 0
        while k < len(wanted) and wanted[k] <= pos + len(chunk):
            cut = wanted[k] - pos
            hasher.update(chunk[start:cut])
            start = cut
            scan.digests[wanted[k]] = hasher.hexdigest()
            k += 1
        hasher.update(chunk[start:])
        pos += len(chunk)
        data = carry + chunk if carry else chunk
        last_nl = data.rfind(b"\n")
        if last_nl < 0:
            carry = data
            continue
        _check_block(scan, data[: last_nl + 1], pos - len(data))
        carry = data[last_nl + 1 :]
    scan.tail = len(carry)
    scan.tail_nul = b"\x00" in carry


def _check_block(scan: SegmentScan, block: bytes, base: int) -> None:
    count = block.count(b"\n")
    first = scan.lines
    scan.lines += count
    kinds = block_kinds(block, count)
    if kinds is not None:
        scan.trailing_bad = scan.trailing_bad_bytes = 0
        if scan.shaped and (found := other_kinds(kinds, first)):
            scan.others += found
            if b'"bye":true' in block:
                lines = block.split(b"\n")
                for n, kind in found:
                    key = bye_key(lines[n - first] + b"\n") if kind == "heartbeat" else None
                    if key is not None:
                        scan.byes.append((n, key))
        return
    scan.shaped = False
    offset = base
    for line in block.split(b"\n")[:-1]:
        if parse_line(line) is None:
            scan.bad_lines += 1
            scan.bad_bytes += len(line) + 1
            if scan.first_bad is None:
                scan.first_bad = offset
            scan.trailing_bad += 1
            scan.trailing_bad_bytes += len(line) + 1
        else:
            scan.trailing_bad = scan.trailing_bad_bytes = 0
        offset += len(line) + 1
