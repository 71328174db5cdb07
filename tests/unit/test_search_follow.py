"""The recorder's search indexer (`persist reindex --follow`) waits while the machine
is busy: at idle priority the scheduler still gives it every moment a core is free,
and in a flood it took half a core of two from the recorder it indexes for. It waits
between chunks (`catch_up(pause=...)`), for MAX_DEFER s at most (`Deferral`)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from recorder.cli.search import _RenderWarming, follow_journal
from recorder.daemon.priority import Deferral
from recorder.search.engine import SearchEngine
from recorder.search.index import SearchIndex
from recorder.store.layout import Layout
from recorder.store.reader import open_store
from tests.support import wait_for
from tests.unit.test_daemon import Clock
from tests.unit.test_search_index import assert_index_equals_journal, write_journal


def test_deferral_waits_while_busy_for_so_long_and_done_starts_the_count_again() -> None:
    clock, busy = Clock(100.0), [True]
    deferral = Deferral(lambda: busy[0], most=10.0, clock=clock)
    assert deferral.should_wait()
    clock.now += 9.9
    assert deferral.should_wait()
    clock.now += 0.2  # waited 10.1 s: the work goes on although still busy
    assert not deferral.should_wait()
    clock.now += 50
    assert not deferral.should_wait()  # ... until it is level
    deferral.done()
    assert deferral.should_wait()  # the next wait counts from now
    busy[0] = False
    assert not deferral.should_wait()
    busy[0] = True
    clock.now += 10.1  # the count started at the first wait, quiet moments included
    assert not deferral.should_wait()


def indexed(root: Path) -> int:
    """Documents in the index (0 before the loop has made its tables)."""
    if not Layout(root).search_index.exists():
        return 0
    with SearchIndex(root) as index:
        try:
            return int(index.query("SELECT count(*) FROM docs")[0][0])
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            return 0


class AlwaysPause:
    """A `pause()` that always says pause, and counts how often it was asked."""

    def __init__(self) -> None:
        self.asked = 0

    def __call__(self) -> bool:
        self.asked += 1
        return True


def test_a_catch_up_stops_between_chunks_when_pause_says_so(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    write_journal(root).close()  # 16 KiB segments: one chunk each
    in_first = sum(1 for r in open_store(root).records() if r.segment == 1)
    pause = AlwaysPause()
    with SearchEngine(root) as engine:
        done = engine.catch_up(pause=pause)
        assert done.added == in_first and done.behind > 0 and pause.asked == 1
        assert indexed(root) == in_first
        again = engine.catch_up(pause=lambda: False)
        assert not again.behind and done.added + again.added == len(open_store(root))
    assert_index_equals_journal(root)


def test_a_pause_inside_a_chunk_commits_the_lines_parsed_so_far(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk is parsed in slices of whole lines (`_PAUSE_BYTES`, 1 MiB; 2 KiB here)
    with a look at `pause()` after each: a 16 MiB chunk of 300-byte messages was half
    a second of a core spent in a flood after one look said the machine was quiet."""
    from recorder.search import indexer

    monkeypatch.setattr(indexer, "_PAUSE_BYTES", 2048)
    root = tmp_path / "logs"
    write_journal(root).close()
    records = list(open_store(root).records())
    first_slice = 0  # lines of segment 1 that begin in its first 2 KiB, whole lines
    for r in records:
        if r.segment == 1 and r.offset + len(r.line) <= 2048:
            first_slice += 1
    pause = AlwaysPause()
    with SearchEngine(root) as engine:
        done = engine.catch_up(pause=pause)
        assert done.added == first_slice and 0 < first_slice < len(records)
        assert done.behind > 0 and pause.asked == 2  # in the chunk, then after it
        again = engine.catch_up(pause=lambda: False)
        assert not again.behind and done.added + again.added == len(records)
    assert_index_equals_journal(root)


def test_the_follow_loop_waits_while_busy_and_indexes_once_quiet(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    write_journal(root).close()
    busy = threading.Event()
    busy.set()
    stop = threading.Event()
    looks = []

    def machine_busy() -> bool:
        looks.append(1)
        return busy.is_set()

    with SearchEngine(root) as engine:
        loop = threading.Thread(
            target=follow_journal,
            args=(engine, _RenderWarming(root), stop, Deferral(machine_busy, most=60.0)),
        )
        loop.start()
        try:
            wait_for(lambda: len(looks) >= 3, what="three looks at the machine")
            assert indexed(root) == 0  # nothing done while busy
            busy.clear()
            total = len(open_store(root))
            wait_for(lambda: indexed(root) == total, timeout=30, what="the index caught up")
        finally:
            stop.set()
            loop.join(10)
    assert not loop.is_alive()
    assert_index_equals_journal(root)
