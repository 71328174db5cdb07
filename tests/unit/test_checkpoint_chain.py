"""Closed segments are named once: a checkpoint lists only the segment entries after
those of its base (an earlier checkpoint), and every reader sees the whole list."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from recorder.store.checkpoints import (
    MAX_BASE_DEPTH,
    DigestCache,
    SessionRef,
    journal_and_session_checkpoints,
    list_checkpoints,
    verify_checkpoint,
    write_checkpoint,
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
    # Journal and session checkpoints in one reading (the TUI's): what the two lists give.
    ref = SessionRef("claude:s1", "/home/me/s1.jsonl", 1, 10, 2, "d", 2)
    write_checkpoint(
        rec.layout,
        segment=0,
        offset=0,
        seq=0,
        messages=2,
        label="s",
        reason="session monitor: test",
        created=clock.now,
        session=ref,
    )
    (rec.layout.checkpoints / "garbage.json").write_bytes(b"{")
    skipped: list[str] = []
    journal, sessions = journal_and_session_checkpoints(rec.layout, skipped)
    assert journal == list_checkpoints(rec.layout) and len(journal) == 2  # no shutdown: nothing new
    assert sessions == list_checkpoints(rec.layout, sessions=True) and len(sessions) == 1
    assert sessions[0].session == ref and skipped == [
        "checkpoints/garbage.json is not a valid checkpoint (not JSON); skipped"
    ]


def test_the_newest_checkpoint_is_found_without_reading_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recorder.store.checkpoints import newest_checkpoint

    clock = Clock()
    rec = make(tmp_path, clock, segment_bytes=64 * 1024)
    assert newest_checkpoint(rec.layout) is None
    for i in range(45):  # more checkpoints than a chain of bases is long
        grow(rec, clock, 8)
        rec.checkpoint(f"cp {i}", "manual", clock.now, force=True)
    rec.close()
    layout = rec.layout

    def same() -> None:
        newest = newest_checkpoint(layout)
        assert newest is not None and newest == list_checkpoints(layout)[0]
        assert newest.base_problem is None and verify_checkpoint(layout, newest).ok

    same()
    # garbage under a newer seq's name is skipped, as list_checkpoints does
    (layout.checkpoints / "20990101T000000Z-999999999-garbage.json").write_bytes(b"{not json")
    same()
    opened: list[str] = []
    real_read = Path.read_bytes

    def counting(path: Path) -> bytes:
        opened.append(path.name)
        return real_read(path)

    monkeypatch.setattr(Path, "read_bytes", counting)
    assert newest_checkpoint(layout) is not None
    monkeypatch.undo()
    files = len(list(layout.checkpoints.iterdir()))
    # the garbage, the newest and its bases: not every file
    assert files >= 46 and len(opened) <= 1 + 1 + MAX_BASE_DEPTH, (files, opened)
    # a file named by hand: every checkpoint is read, and the answer stays right
    newest = list_checkpoints(layout)[0]
    assert newest.path is not None
    newest.path.rename(layout.checkpoints / "mine.json")
    assert newest_checkpoint(layout) == list_checkpoints(layout)[0]


def test_checkpoints_with_the_same_id_each_keep_their_own_file(tmp_path: Path) -> None:
    """The same second, position and label (a session checkpointed twice within a
    second, writers racing): each gets a file, `-2`, `-3`... after the first; none is
    replaced, every one verifies."""
    import threading

    from recorder.store.checkpoints import list_checkpoints, verify_checkpoint
    from tests.demo_journal import DemoClock, DemoWriter

    root = tmp_path / "logs"
    w = DemoWriter.open(root, clock=DemoClock(1_800_000_000.0))
    w.message(1_800_000_000.0, "a", "hello")
    made = [w.checkpoint(1_800_000_000.0, "same", "manual") for _ in range(2)]
    racing: list[str] = []

    def write() -> None:
        racing.append(w.checkpoint(1_800_000_000.0, "same", "manual").id)

    threads = [threading.Thread(target=write) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.close()
    first = made[0].id
    assert made[1].id == f"{first}-2"
    ids = [made[0].id, made[1].id, *racing]
    assert len(set(ids)) == 8 and set(ids) == {first, *(f"{first}-{n}" for n in range(2, 9))}
    listed = {cp.id: cp for cp in list_checkpoints(w.layout)}
    assert set(listed) == set(ids)
    assert all(verify_checkpoint(w.layout, listed[i]).ok for i in ids)
    assert not [p for p in w.layout.checkpoints.iterdir() if p.name.startswith(".")]
