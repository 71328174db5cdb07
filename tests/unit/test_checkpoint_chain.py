"""Closed segments are named once: a checkpoint lists only the segment entries after
those of its base (an earlier checkpoint), and every reader sees the whole list."""

from __future__ import annotations

from pathlib import Path

import orjson

from recorder.store.checkpoints import (
    MAX_BASE_DEPTH,
    DigestCache,
    list_checkpoints,
    verify_checkpoint,
)
from tests.unit.test_daemon import Clock, feed, make

BODY = b'{"text": "' + b"x" * 3000 + b'"}'


def grow(rec, clock: Clock, n: int = 120) -> None:  # type: ignore[no-untyped-def]
    feed(rec, clock, *[[b"agents.t", BODY] for _ in range(n)])
    clock.now += 1


def test_later_checkpoints_name_closed_segments_by_reference(tmp_path: Path) -> None:
    clock = Clock()
    rec = make(tmp_path, clock, segment_bytes=64 * 1024)
    written = []
    for i in range(24):
        grow(rec, clock)
        written.append(rec.checkpoint(f"cp {i}", "manual", clock.now, force=True))
    rec.close()
    files = {cp.id: orjson.loads(cp.path.read_bytes()) for cp in written}  # type: ignore[union-attr]
    listed = [len(files[cp.id]["digest"]["segments"]) for cp in written]
    whole = [len(cp.segments) for cp in written]
    assert whole[-1] > 30  # many segments by the end
    # each file lists only the segments since the one before (and that one's open
    # segment), except every 17th, which lists them all again
    for i in range(1, MAX_BASE_DEPTH + 1):
        assert listed[i] <= whole[i] - whole[i - 1] + 1, (i, listed, whole)
    assert listed[MAX_BASE_DEPTH + 1] == whole[MAX_BASE_DEPTH + 1]
    assert sum(listed) < sum(whole) / 3
    by_id = {cp.id: cp for cp in list_checkpoints(rec.layout)}
    for cp in written:
        assert cp is not None
        read = by_id[cp.id]
        assert read.base_problem is None and read.segments == cp.segments
        assert read.digest == DigestCache(rec.layout).up_to(cp.segment, cp.offset)[0]
        assert verify_checkpoint(rec.layout, read).ok


def test_a_missing_base_is_reported_and_a_file_listing_everything_still_reads(
    tmp_path: Path,
) -> None:
    clock = Clock()
    rec = make(tmp_path, clock, segment_bytes=64 * 1024)
    grow(rec, clock)
    first = rec.checkpoint("first", "manual", clock.now, force=True)
    grow(rec, clock)
    second = rec.checkpoint("second", "manual", clock.now, force=True)
    grow(rec, clock)
    third = rec.checkpoint("third", "manual", clock.now, force=True)
    rec.close()
    assert first and second and third and first.path and second.path and third.path
    assert first.base is None and second.base == first.id and third.base == second.id
    # a file from before references (every entry listed) reads and verifies as it did
    old = orjson.loads(first.path.read_bytes())
    assert "base" not in old["digest"]
    second.path.unlink()
    by_id = {cp.id: cp for cp in list_checkpoints(rec.layout)}
    assert verify_checkpoint(rec.layout, by_id[first.id]).ok
    broken = verify_checkpoint(rec.layout, by_id[third.id])
    assert not broken.ok
    assert f"its base checkpoint {second.id} is missing" in broken.summary
