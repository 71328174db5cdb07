"""One segment file, plain (`seg-N.jsonl`) or compressed (`seg-N.jsonl.zst`), read the
same way: its uncompressed size and `read(offset, n)` of its uncompressed bytes.

The compressed form (FORMAT.md, "Compressed segments") is a valid zstd stream:
a skippable header frame, independent zstd frames of `FRAME_BYTES` uncompressed
bytes each, and a skippable frame at the end holding the frame table and a trailer
(uncompressed size, SHA-256 of the uncompressed bytes, CRC-32 of the table). A
read decompresses only the frames it touches (the last one is kept), so opening a
record never decompresses a whole segment; `zstd -dc seg-N.jsonl.zst` gives the
original bytes back.

A frame that does not decompress is read as NUL bytes of its length (the lines it
held then read as damaged lines, every other line as before) and remembered in
`damaged`; `read_strict` raises `SegmentDamaged` instead, for digests.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import hashlib
import os
import stat
import struct
import threading
import zlib
from collections.abc import Iterator
from itertools import accumulate
from pathlib import Path
from typing import Any, Self

import zstandard

from recorder.errors import PersistError
from recorder.store.fsutil import NotRegularFile, not_regular, open_private, open_regular, write_all
from recorder.store.layout import COMPRESSED_SUFFIX, SEGMENT_RE

FRAME_BYTES = 256 * 1024  # uncompressed bytes per frame: one record read decompresses this
LEVEL = 3  # zstd level: see bench/compress.py (higher levels cost 5-10x the time for ~5 %)
_SKIPPABLE_HEADER = 0x184D2A50
_SKIPPABLE_TABLE = 0x184D2A5E
_MAGIC = b"APSEGZ01"
_END_MAGIC = b"APSEGEND"
_HEADER = struct.Struct("<II8sII")  # skippable magic, payload length, magic, frame bytes, 0
_ENTRY = struct.Struct("<II")  # compressed length, uncompressed length
_TRAILER = struct.Struct("<Q32sII8s")  # size, sha256, frame count, CRC-32, end magic
_TABLE_HEAD = struct.Struct("<II")  # skippable magic, payload length
_READ_CHUNK = 1 << 20


class SegmentGone(FileNotFoundError, PersistError):
    """A segment listed (indexed, planned) that is no longer there when it is first
    opened: pruned, or removed, while the reader ran. Its message names it."""

    def __init__(self, path: Path) -> None:
        super().__init__(errno.ENOENT, os.strerror(errno.ENOENT), str(path))

    def __str__(self) -> str:
        name = Path(str(self.filename)).name
        return f"cannot read {name}: it was pruned (or removed) while this ran; run it again"


class SegmentDamaged(PersistError, ValueError):
    """A compressed segment (or one of its frames) cannot be read; the message names it."""


class SegmentFile:
    """The uncompressed view of one segment file; `read` never goes past `size`."""

    path: Path
    size: int
    compressed: bool = False
    ident: tuple[int, int] = (0, 0)  # (st_dev, st_ino) of the file opened
    _fd: int | None = None

    @property
    def fd(self) -> int:
        if self._fd is None:
            raise OSError(9, f"{self.path.name} is closed")
        return self._fd

    def read(self, offset: int, n: int) -> bytes:
        raise NotImplementedError

    def read_strict(self, offset: int, n: int) -> bytes:
        """Like `read`, but a damaged frame raises `SegmentDamaged`."""
        return self.read(offset, n)

    def refresh(self) -> int:
        """The size now (a plain segment being written grows)."""
        return self.size

    def forget(self) -> None:
        """Drop what reading kept in memory (a compressed segment's frames)."""

    def identity(self) -> tuple[int, int]:
        """(inode, mtime_ns) of the file, for caches that describe it."""
        st = os.fstat(self.fd)
        return st.st_ino, st.st_mtime_ns

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def chunks(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes from `start` to `end` in pieces of about 1 MiB (strict)."""
        end = self.size if end is None else end
        pos = start
        while pos < end:
            data = self.read_strict(pos, min(_READ_CHUNK, end - pos))
            if not data:
                raise SegmentDamaged(f"{self.path.name} is shorter than {end} bytes")
            yield data
            pos += len(data)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a view swapped out under a reader closes with its last user
        self.close()


def _open(path: Path, fd: int | None) -> int:
    """A descriptor of `path`, or a duplicate of `fd` (the same file held open by
    another: it reads what was planned though the name went away since). What is not
    a regular file there (a named pipe, a folder, a device) is never waited on nor kept
    open: `NotRegularFile`, whose words say what it is ("a named pipe, not a regular
    file"). Before 2026-12-07 a named pipe at a segment's name held doctor, search,
    export and restore forever (a blocking open waits for a writer)."""
    if fd is None:
        return open_regular(path)[0]
    return os.dup(fd)


class PlainSegment(SegmentFile):
    def __init__(self, path: Path, fd: int | None = None) -> None:
        self.path = path
        self._fd: int | None = _open(path, fd)
        st = os.fstat(self._fd)
        if not stat.S_ISREG(st.st_mode):  # a duplicate of another's descriptor
            os.close(self._fd)
            self._fd = None
            raise NotRegularFile(errno.EINVAL, not_regular(st.st_mode), str(path))
        self.size = st.st_size
        self.ident = (st.st_dev, st.st_ino)

    def read(self, offset: int, n: int) -> bytes:
        return os.pread(self.fd, n, offset)

    def refresh(self) -> int:
        self.size = os.fstat(self.fd).st_size
        return self.size


class CompressedSegment(SegmentFile):
    """A `.zst` segment: the frame table is read and checked at open."""

    compressed = True
    sha256: str  # hex digest of the uncompressed bytes, as the trailer states it
    starts: list[int]  # uncompressed offset of each frame, and the size last
    compressed_at: list[int]  # file offset of each frame, and of the table last
    frame_bytes: int

    def __init__(self, path: Path, fd: int | None = None) -> None:
        self.path = path
        self._fd: int | None = _open(path, fd)
        self.damaged: set[int] = set()
        self._lock = threading.RLock()
        # the two frames decompressed last, newest first: a line across a frame boundary
        # and the byte before it would otherwise decompress both frames in turn
        self._recent: list[tuple[int, bytes]] = []
        self._dctx = zstandard.ZstdDecompressor()
        try:
            self._read_table()
        except BaseException:
            self.close()
            raise

    def _bad(self, why: str) -> SegmentDamaged:
        return SegmentDamaged(f"{self.path.name} is not a readable compressed segment: {why}")

    def _read_table(self) -> None:
        fd = self.fd
        st = os.fstat(fd)
        file_size = st.st_size
        self.ident = (st.st_dev, st.st_ino)
        if file_size < _HEADER.size + _TABLE_HEAD.size + _TRAILER.size:
            raise self._bad(f"only {file_size} bytes")
        skip, length, magic, frame_bytes, _flags = _HEADER.unpack(os.pread(fd, _HEADER.size, 0))
        if skip != _SKIPPABLE_HEADER or magic != _MAGIC or length != _HEADER.size - 8:
            raise self._bad("no segment header")
        size, sha, count, crc, end = _TRAILER.unpack(
            os.pread(fd, _TRAILER.size, file_size - _TRAILER.size)
        )
        if end != _END_MAGIC:
            raise self._bad("no trailer (truncated or not finished)")
        table_len = count * _ENTRY.size
        table_at = file_size - _TRAILER.size - table_len
        if table_at - _TABLE_HEAD.size < _HEADER.size:
            raise self._bad(f"its trailer claims {count} frames")
        raw = os.pread(fd, table_len + _TABLE_HEAD.size, table_at - _TABLE_HEAD.size)
        tskip, tlen = _TABLE_HEAD.unpack_from(raw)
        table = raw[_TABLE_HEAD.size :]
        body = table + struct.pack("<Q32sI", size, sha, count)
        if (
            tskip != _SKIPPABLE_TABLE
            or tlen != table_len + _TRAILER.size
            or zlib.crc32(body) != crc
        ):
            raise self._bad("its frame table does not match its checksum")
        entries = [_ENTRY.unpack_from(table, k * _ENTRY.size) for k in range(count)]
        self.compressed_at = list(accumulate((c for c, _u in entries), initial=_HEADER.size))
        self.starts = list(accumulate((u for _c, u in entries), initial=0))
        if self.compressed_at[-1] != table_at - _TABLE_HEAD.size or self.starts[-1] != size:
            raise self._bad("its frame table does not add up to the file")
        self.size = size
        self.sha256 = sha.hex()
        self.frame_bytes = frame_bytes

    @property
    def frames(self) -> int:
        return len(self.starts) - 1

    def frame_words(self, k: int) -> str:
        """Frame `k` for people: `compressed frame 3 (bytes 786432-1048576 of the segment)`."""
        return f"compressed frame {k} (bytes {self.starts[k]}-{self.starts[k + 1]} of the segment)"

    def damaged_words(self) -> str:
        """The frames found damaged so far, in one phrase ("" when none)."""
        with self._lock:
            frames = sorted(self.damaged)
        words = ", ".join(self.frame_words(k) for k in frames)
        return f"{words} {'is' if len(frames) == 1 else 'are'} damaged" if frames else ""

    def damaged_within(self, start: int, end: int) -> bool:
        """Whether bytes `start` to `end` (uncompressed) reach into a damaged frame: they
        read as NUL bytes because of it."""
        with self._lock:
            return any(self.starts[k] < end and start < self.starts[k + 1] for k in self.damaged)

    def frame(self, k: int, strict: bool = False) -> bytes:
        """Frame `k` uncompressed (NUL bytes for a damaged one unless `strict`)."""
        for i, (number, kept) in enumerate(self._recent):
            if number == k:
                if i:
                    self._recent.reverse()
                return kept
        at, length = self.compressed_at[k], self.compressed_at[k + 1] - self.compressed_at[k]
        want = self.starts[k + 1] - self.starts[k]
        raw = os.pread(self.fd, length, at)
        try:
            data = self._dctx.decompress(raw, max_output_size=want) if want else b""
            if len(data) != want:
                raise zstandard.ZstdError(f"{len(data)} bytes instead of {want}")
        except zstandard.ZstdError as exc:
            with self._lock:
                self.damaged.add(k)
            if strict:
                raise SegmentDamaged(
                    f"{self.path.name}: {self.frame_words(k)} is damaged ({exc})"
                ) from None
            return bytes(want)  # never kept: a strict read must find the damage again
        self._recent = [(k, data), *self._recent[:1]]
        return data

    def forget(self) -> None:
        with self._lock:
            self._recent = []

    def _read(self, offset: int, n: int, strict: bool) -> bytes:
        end = min(self.size, offset + n)
        if offset >= end:
            return b""
        k = bisect.bisect_right(self.starts, offset) - 1
        with self._lock:
            first = self.frame(k, strict)
        if end <= self.starts[k + 1]:
            return first[offset - self.starts[k] : end - self.starts[k]]
        parts = [first[offset - self.starts[k] :]]
        k += 1
        while self.starts[k] < end:
            with self._lock:
                data = self.frame(k, strict)
            parts.append(data[: end - self.starts[k]])
            k += 1
        return b"".join(parts)

    def read(self, offset: int, n: int) -> bytes:
        return self._read(offset, n, False)

    def read_strict(self, offset: int, n: int) -> bytes:
        return self._read(offset, n, True)


def open_segment(path: Path, fd: int | None = None) -> SegmentFile:
    """Open a segment whichever its form (OSError if it is gone, `SegmentDamaged` if a
    compressed one has no readable frame table). A plain segment compressed since it
    was listed (its file removed a moment ago) is opened in its new form: `.path`
    says which file was opened. `fd`: the file `path` named, held open by another
    (duplicated: closing this one leaves that open), read whatever `path` holds now."""
    if path.name.endswith(COMPRESSED_SUFFIX):
        return CompressedSegment(path, fd)
    if fd is not None:
        return PlainSegment(path, fd)
    try:
        return PlainSegment(path)
    except FileNotFoundError:
        try:
            return CompressedSegment(path.with_name(path.name + COMPRESSED_SUFFIX))
        except FileNotFoundError:
            pass
        raise


def not_a_file_at(segments: Path, name: str) -> tuple[Path, str] | None:
    """What stands at segment `name`'s place in folder `segments` (`seg-N.jsonl`, plain
    or compressed) when it is no regular file (a symlink followed): its path and what it
    is (`a named pipe, not a regular file`); None when nothing is there or a file is.
    Such a segment is not missing: its records cannot be read while it stands there."""
    if SEGMENT_RE.match(name) is None or name.endswith(COMPRESSED_SUFFIX):
        return None
    for path in (segments / name, segments / (name + COMPRESSED_SUFFIX)):
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue
        if not stat.S_ISREG(mode):
            return path, not_regular(mode)
    return None


def segment_size(path: Path) -> int:
    """A segment's size in uncompressed bytes (what checkpoints name; OSError if it is
    gone, `SegmentDamaged` if it is compressed and has no readable frame table)."""
    if not path.name.endswith(COMPRESSED_SUFFIX):
        with contextlib.suppress(FileNotFoundError):
            return path.stat().st_size
    with open_segment(path) as seg:  # compressed, or compressed since it was listed
        return seg.size


def write_compressed(src: SegmentFile, out: int, level: int = LEVEL) -> tuple[int, str]:
    """Write `src`'s bytes to descriptor `out` in the compressed form; returns the
    uncompressed size and SHA-256 it read (strict: a damaged source raises)."""
    cctx = zstandard.ZstdCompressor(level=level, write_checksum=True, write_content_size=True)
    hasher = hashlib.sha256()
    entries: list[bytes] = []
    write_all(out, _HEADER.pack(_SKIPPABLE_HEADER, _HEADER.size - 8, _MAGIC, FRAME_BYTES, 0))
    size = 0
    for offset in range(0, src.size, FRAME_BYTES):
        data = src.read_strict(offset, min(FRAME_BYTES, src.size - offset))
        if len(data) != min(FRAME_BYTES, src.size - offset):
            raise SegmentDamaged(f"{src.path.name} changed while it was compressed")
        hasher.update(data)
        packed = cctx.compress(data)
        write_all(out, packed)
        entries.append(_ENTRY.pack(len(packed), len(data)))
        size += len(data)
    table = b"".join(entries)
    sha = hasher.digest()
    crc = zlib.crc32(table + struct.pack("<Q32sI", size, sha, len(entries)))
    trailer = _TRAILER.pack(size, sha, len(entries), crc, _END_MAGIC)
    write_all(out, _TABLE_HEAD.pack(_SKIPPABLE_TABLE, len(table) + len(trailer)) + table + trailer)
    return size, sha.hex()


def compress_file(src: Path, dst: Path, level: int = LEVEL) -> tuple[int, str]:
    """Compress segment `src` into a new file `dst` (0600, fsynced); returns the
    uncompressed size and SHA-256. `dst` must not exist."""
    fd = open_private(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        with open_segment(src) as seg:
            result = write_compressed(seg, fd, level)
        os.fsync(fd)
    finally:
        os.close(fd)
    return result


def describe(path: Path) -> dict[str, Any]:
    """Facts about a compressed segment (for `persist compact --dry-run` and the bench)."""
    with CompressedSegment(path) as seg:
        return {
            "frames": seg.frames,
            "size": seg.size,
            "stored": os.fstat(seg.fd).st_size,
            "sha256": seg.sha256,
        }
