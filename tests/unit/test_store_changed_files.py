"""A Store kept open while the journal's files change other than by growing: a segment
removed or pruned, the log folder removed and recorded into afresh, a segment truncated.
After its next refresh it shows exactly what a Store opened then shows (never records
that are gone) and says so in `generation`; compressing closed segments changes nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import orjson
import pytest

from recorder.cli.main import main
from recorder.store.compact import compact
from recorder.store.journal import Journal
from recorder.store.layout import Layout, list_segments
from recorder.store.ranges import JournalRange, journal_damage
from recorder.store.reader import Store, open_store
from recorder.store.records import KIND_MESSAGE, encode_frames


def write(root: Path, n: int, word: str, *, segment_bytes: int = 4096) -> None:
    journal = Journal(Layout(root), segment_bytes=segment_bytes)
    journal.open()
    for i in range(n):
        body = orjson.dumps({"id": i, "text": f"{word} {i}"})
        journal.append(
            {"kind": KIND_MESSAGE, "topic": "t", "meta": {}}, encode_frames([b"t", body])
        )
        journal.messages += 1
    journal.flush()
    journal.close()


def texts(store: Store) -> list[str]:
    return [r.payload["text"] for r in store.records() if r.is_message]


def damage(store: Store) -> list[str]:
    return journal_damage(store, JournalRange(0, len(store), None, None), writer_running=False)


def same_as_fresh(store: Store, root: Path) -> None:
    """`store` (refreshed) shows what a Store opened now shows, record for record."""
    with open_store(root) as fresh:
        assert len(store) == len(fresh)
        assert [s.number for s in store.segments] == [s.number for s in fresh.segments]
        assert [r.line for r in store.records()] == [r.line for r in fresh.records()]
        if len(fresh):
            assert store.record(-1).line == fresh.record(-1).line
        assert damage(store) == damage(fresh)


def test_a_closed_segment_removed_under_an_open_store_is_dropped_and_named(
    tmp_path: Path,
) -> None:
    write(tmp_path, 300, "message")
    store = open_store(tmp_path)
    assert len(list_segments(store.layout)) > 4
    before, generation = len(store), store.generation
    texts(store)  # records read and cached by index before the change
    gone = store.layout.segments / "seg-000002.jsonl"
    lost = sum(1 for _ in gone.read_bytes().splitlines())
    gone.unlink()
    store.refresh()
    assert store.generation > generation
    assert len(store) == before - lost
    assert 2 not in [s.number for s in store.segments]
    assert damage(store) == ["seg-000002.jsonl is missing from segments/ (its records are lost)"]
    same_as_fresh(store, tmp_path)
    store.close()


def test_the_log_folder_removed_and_recorded_into_again(tmp_path: Path) -> None:
    write(tmp_path, 5, "OLD")
    store = open_store(tmp_path)
    assert texts(store) == [f"OLD {i}" for i in range(5)]
    generation = store.generation
    shutil.rmtree(tmp_path / "segments")
    store.refresh()
    assert len(store) == 0 and store.segments == [] and store.generation > generation
    write(tmp_path, 2, "NEW")  # seg-000001.jsonl again, another file: it grows from empty
    store.refresh()
    assert texts(store) == ["NEW 0", "NEW 1"]
    same_as_fresh(store, tmp_path)
    store.close()


def test_recorded_into_again_between_two_refreshes(tmp_path: Path) -> None:
    write(tmp_path, 5, "OLD")
    store = open_store(tmp_path)
    texts(store)
    shutil.rmtree(tmp_path / "segments")
    write(tmp_path, 7, "NEW")
    store.refresh()
    assert texts(store) == [f"NEW {i}" for i in range(7)]
    same_as_fresh(store, tmp_path)
    store.close()


def test_the_segment_being_written_truncated_drops_the_lines_past_its_end(
    tmp_path: Path,
) -> None:
    write(tmp_path, 40, "message", segment_bytes=1 << 20)
    store = open_store(tmp_path)
    texts(store)
    seg = list_segments(store.layout)[-1]
    data = seg.read_bytes()
    cut = data.index(b"\n", len(data) // 2) + 1  # half of it, on a line start
    os.truncate(seg, cut)
    generation = store.generation
    store.refresh()
    assert store.generation > generation
    assert store.record(-1).offset + len(store.record(-1).line) == cut
    same_as_fresh(store, tmp_path)
    store.close()


def test_pruned_segments_leave_the_view_and_are_not_called_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, 600, "message")
    store = open_store(tmp_path)
    before = len(store)
    texts(store)
    code = main(["prune", "--max-size", "12K", "--log-dir", str(tmp_path)])
    capsys.readouterr()
    assert code == 0
    store.refresh()
    assert len(store) < before
    assert store.segments[0].number > 1
    assert damage(store) == []  # taken on purpose: not damage
    same_as_fresh(store, tmp_path)
    store.close()


def test_compressing_closed_segments_under_an_open_store_changes_nothing(
    tmp_path: Path,
) -> None:
    write(tmp_path, 300, "message")
    store = open_store(tmp_path)
    lines = [r.line for r in store.records()]
    generation = store.generation
    report = compact(store.layout)
    assert report.done and not report.problems
    store.refresh()
    assert store.generation == generation
    assert [r.line for r in store.records()] == lines
    assert damage(store) == []
    store.close()


def followed_texts(batches: object) -> list[str]:
    """The texts of the next batch `Store.follow` yields."""
    batch = next(batches)  # type: ignore[call-overload]
    return [r.payload["text"] for r in batch if r.is_message]


def test_follow_yields_what_came_after_a_segment_pruned_under_it(tmp_path: Path) -> None:
    write(tmp_path, 300, "OLD")
    store = open_store(tmp_path)
    batches = store.follow(poll=0.01)
    oldest = list_segments(store.layout)[:2]
    for path in oldest:  # pruned: the global index of every record left goes down
        path.unlink()
    write(tmp_path, 3, "NEW")
    assert followed_texts(batches) == ["NEW 0", "NEW 1", "NEW 2"]
    write(tmp_path, 1, "NEXT")
    assert followed_texts(batches) == ["NEXT 0"]
    store.close()


def test_follow_reads_a_journal_recorded_afresh_from_its_first_record(tmp_path: Path) -> None:
    write(tmp_path, 50, "OLD")
    store = open_store(tmp_path)
    batches = store.follow(poll=0.01)
    shutil.rmtree(tmp_path / "segments")
    write(tmp_path, 4, "NEW")
    assert followed_texts(batches) == [f"NEW {i}" for i in range(4)]
    store.close()
