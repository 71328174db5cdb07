"""Compressing closed segments, one at a time, crash-safe (RELIABILITY.md).

For each closed plain segment `seg-N.jsonl`: its bytes are written compressed to
`seg-N.jsonl.zst.tmp` (0600, fsynced), the whole file is read back through its frame
table and the SHA-256 of what it decompresses to is compared with the SHA-256 of the
plain bytes, then it is renamed to `seg-N.jsonl.zst` (folder fsynced), its line index
cache is written, and only then is the plain file removed (folder fsynced). Readers
list the plain file while both exist (`layout.list_segments`), so a crash at any
point leaves one complete, readable copy; the next pass (`repair`) removes a `.tmp`
and, when both forms are left, the compressed one (the plain file is the original).

One compactor at a time per folder: `compact.lock` (flock); each segment is compressed
under retention's lock too, so a prune never moves a segment while it is swapped. The
active segment is
never compressed: only segments below the last one on disk (and below `below`, the
one the recorder writes, when it says so).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from recorder.store.fsutil import (
    ensure_private_dir,
    fsync_dir,
    held_by_another,
    open_lock,
)
from recorder.store.layout import (
    COMPRESSED_SUFFIX,
    Layout,
    compressed_path,
    is_compressed,
    list_segments,
    segment_name,
    segment_number,
)
from recorder.store.pruned import RetentionBusy, retention_lock
from recorder.store.reader import SegmentIndex
from recorder.store.segfile import LEVEL, CompressedSegment, SegmentDamaged, compress_file
from recorder.store.unfinished import refuse_unfinished_restore

TMP_SUFFIX = ".tmp"
_RETENTION_WAIT = 5.0  # seconds to wait for a prune or pin before leaving it to the next pass


@dataclass(frozen=True)
class Compacted:
    """One segment compressed (or, in a dry run, that would be)."""

    name: str  # the plain file's name
    size: int  # uncompressed bytes
    stored: int  # bytes of the compressed file (0 in a dry run)
    seconds: float

    @property
    def ratio(self) -> float:
        return self.size / self.stored if self.stored else 0.0


@dataclass
class CompactReport:
    done: list[Compacted] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one sentence each, segment named
    repaired: list[str] = field(default_factory=list)  # leftovers of an interrupted pass
    busy: bool = False  # another compactor holds the folder
    already: int = 0  # segments compressed before this pass

    @property
    def size(self) -> int:
        return sum(c.size for c in self.done)

    @property
    def stored(self) -> int:
        return sum(c.stored for c in self.done)


def compactable(layout: Layout, below: int | None = None) -> list[Path]:
    """Closed plain segments: every one below the last segment on disk, below the one
    `current_session.jsonl` points to, and below `below` if given."""
    segments = list_segments(layout)
    if not segments:
        return []
    limit = segment_number(segments[-1].name) or 0
    with contextlib.suppress(OSError):
        target = segment_number(os.path.basename(os.readlink(layout.current)))
        if target is not None:
            limit = min(limit, target)
    if below is not None:
        limit = min(limit, below)
    return [p for p in segments if not is_compressed(p) and (segment_number(p.name) or 0) < limit]


@contextlib.contextmanager
def compact_lock(layout: Layout) -> Iterator[bool]:
    """Hold the folder's compactor lock if nobody else does (yields whether we got it)."""
    ensure_private_dir(layout.root)
    fd = open_lock(layout.compact_lock, layout.recovery)  # LockInTheWay: a folder there
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def leftovers(layout: Layout) -> list[tuple[str, str]]:
    """(file name, why it can go) of what an interrupted pass left in segments/: a
    `.zst.tmp` file, or a compressed copy whose plain original is still there."""
    try:
        names = sorted(p.name for p in layout.segments.iterdir())
    except OSError:
        return []
    present = set(names)
    found = []
    for name in names:
        if name.endswith(COMPRESSED_SUFFIX + TMP_SUFFIX):
            found.append((name, "a compression that did not finish"))
        elif name.endswith(COMPRESSED_SUFFIX) and name[: -len(COMPRESSED_SUFFIX)] in present:
            found.append((name, f"its original {name[: -len(COMPRESSED_SUFFIX)]} is kept"))
    return found


def compactor_at_work(layout: Layout) -> bool:
    """Whether a compactor holds `compact.lock` now (its `.zst.tmp` is being written);
    asked without creating the lock file (doctor only reads)."""
    return held_by_another(layout.compact_lock)


def repair(layout: Layout) -> list[str]:
    """Remove what an interrupted pass left (`leftovers`; call with the lock held).
    Returns what was done."""
    done: list[str] = []
    for name, why in leftovers(layout):
        (layout.segments / name).unlink(missing_ok=True)
        if not name.endswith(TMP_SUFFIX):
            _drop_caches(layout, name)
        done.append(f"removed {name} ({why})")
    if done:
        fsync_dir(layout.segments)
    return done


def _drop_caches(layout: Layout, file_name: str) -> None:
    """The caches of one file of a segment, and the segment's line check (it names the
    file it checked: the recorder writes it again for the file that is left)."""
    check = segment_name(segment_number(file_name) or 0) + ".check"
    for name in (f"{file_name}.idx", f"{file_name}.sha256", check):
        with contextlib.suppress(OSError):
            (layout.index / name).unlink()


def compact_segment(layout: Layout, path: Path, level: int = LEVEL) -> Compacted:
    """Compress one closed plain segment (call with the lock held); the steps and why
    they are safe are in the module docstring. `SegmentDamaged` if the copy does not
    read back as the original (the original is kept, the copy removed)."""
    started = time.perf_counter()
    final = compressed_path(path)
    tmp = final.with_name(final.name + TMP_SUFFIX)
    tmp.unlink(missing_ok=True)
    original = SegmentIndex(path, layout.index)  # its line starts: cached, or found now
    try:
        original.update()
        original.close_tail()
        try:  # a copy that cannot be finished or checked never stays (a full disk)
            size, sha = compress_file(path, tmp, level)
            _verify(tmp, size, sha)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if path.stat().st_size != size:
            tmp.unlink(missing_ok=True)
            raise SegmentDamaged(f"{path.name} changed while it was compressed (kept as it is)")
        os.rename(tmp, final)
        fsync_dir(layout.segments)
        _save_index(layout, final, original)
    finally:
        original.close()
    stored = final.stat().st_size
    path.unlink()
    fsync_dir(layout.segments)
    _drop_caches(layout, path.name)
    return Compacted(path.name, size, stored, time.perf_counter() - started)


def _verify(tmp: Path, size: int, sha: str) -> None:
    """Read the whole compressed file back: frame table, every frame, the SHA-256."""
    import hashlib

    with CompressedSegment(tmp) as seg:
        if seg.size != size or seg.sha256 != sha:
            raise SegmentDamaged(f"{tmp.name}: its trailer does not describe the original")
        hasher = hashlib.sha256()
        for chunk in seg.chunks():
            hasher.update(chunk)
        if hasher.hexdigest() != sha:
            raise SegmentDamaged(f"{tmp.name} does not decompress to the original bytes")


def _save_index(layout: Layout, final: Path, original: SegmentIndex) -> None:
    """The compressed file's line index cache, from the original's line starts (the same
    uncompressed bytes), so no reader has to decompress the segment to index it."""
    index = SegmentIndex(final)
    try:
        index._cache_dir = layout.index
        index.starts, index.end, index.size = original.starts, original.end, original.size
        index.torn_tail = original.torn_tail
        index.save_cache()
    finally:
        index.close()


class Stop(Protocol):
    """What tells a pass to stop early (a `threading.Event`, or anything like it)."""

    def is_set(self) -> bool: ...


def compact(
    layout: Layout,
    *,
    dry_run: bool = False,
    below: int | None = None,
    level: int = LEVEL,
    stop: Stop | None = None,
) -> CompactReport:
    """Compress every closed plain segment (`below`: only segments under this number).
    A pass stops early when `stop` is set (after the segment it is on)."""
    report = CompactReport()
    report.already = sum(1 for p in list_segments(layout) if is_compressed(p))
    if dry_run:
        for path in compactable(layout, below):
            with contextlib.suppress(OSError):
                report.done.append(Compacted(path.name, path.stat().st_size, 0, 0.0))
        return report
    refuse_unfinished_restore(layout.root)
    with compact_lock(layout) as held:
        if not held:
            report.busy = True
            return report
        report.repaired = repair(layout)
        for path in compactable(layout, below):
            if stop is not None and stop.is_set():
                break
            try:
                # retention moves segments to the trash under this lock: never both at once
                with retention_lock(layout, wait=_RETENTION_WAIT):
                    if not path.exists():
                        continue  # pruned meanwhile
                    report.done.append(compact_segment(layout, path, level))
            except RetentionBusy:
                break  # a prune, pin or trash restore is at work: the next pass goes on
            except FileNotFoundError:
                continue  # compressed by an earlier pass, or removed
            except (OSError, SegmentDamaged) as exc:
                report.problems.append(f"{path.name} not compressed: {exc}")
                if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                    break  # the next ones would fail the same way: try again next pass
    return report
