"""A full rebuild on several processes (shards): the same answers as one process,
kept level afterwards, and every way it can go wrong ends in a correct index."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from recorder.search import shards
from recorder.search.engine import SearchEngine
from recorder.search.index import SHARD_PREFIX, SearchIndex
from recorder.search.indexer import Indexer
from recorder.search.query import parse_query
from recorder.search.shards import plan_runs
from recorder.sources.discover import Roots
from tests.demo_journal import BASE_TS, DemoClock, DemoWriter
from tests.unit.test_search_index import (
    NOW,
    RELEVANCE,
    add_messages,
    assert_index_equals_journal,
    write_journal,
)

JOURNAL_ONLY = Roots(None, None, None)
QUERIES = [
    "message",
    "deployment",
    '"rollback plan"',
    "redis OR kubernetes",
    "from:alice friday",
    "tag:question schema",
    "kind:request deploy",
    "releas*",
    "test -schema",
    "dedline",  # one typo: fuzzy stand-ins come from every shard's vocabulary
    "kubernetes oom",
]


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    w = write_journal(root, 1200, segment_bytes=24 * 1024)
    w.bad_line(b"not json at all {deployment}\n")
    w.record(BASE_TS + 2001 * 60, "heartbeat", topic="_persist.heartbeat", frames=[])
    for _query, text in RELEVANCE:
        w.message(BASE_TS + 2000 * 60, "dave", text, topic="chat")
    w.close()
    return root


def rebuild(root: Path, workers: int) -> Indexer:
    indexer = Indexer(root, JOURNAL_ONLY)
    indexer.workers = workers
    done = indexer.catch_up(rebuild=True)
    assert done.rebuilt and not done.behind
    return indexer


def answers(root: Path) -> list[Any]:
    """Every hit of every query (all fields but the index's own ids), the exact counts,
    the fuzzy stand-ins, and the vocabulary snapshot."""
    out: list[Any] = []
    with SearchEngine(root, JOURNAL_ONLY) as engine:
        for q in QUERIES:
            r = engine.search(parse_query(q, now=NOW), limit=40, count=True, catch_up=False)
            hits = [{**h.as_json(), "doc": None} for h in r.hits]
            out.append((q, hits, r.total, r.fuzzy_terms))
        out.append(engine.index.query("SELECT term, docs FROM terms ORDER BY term"))
        out.append(engine.index.query("SELECT * FROM docs ORDER BY id"))
    return out


def shard_files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "search").iterdir() if p.name.startswith(SHARD_PREFIX))


def test_plan_runs_cuts_consecutive_runs_of_about_equal_bytes() -> None:
    assert plan_runs([64, 64, 28], 2) == [range(0, 1), range(1, 3)]
    assert plan_runs([10] * 8, 4) == [range(0, 2), range(2, 4), range(4, 6), range(6, 8)]
    assert plan_runs([5], 3) == [range(0, 1)]
    assert plan_runs([1, 1], 4) == [range(0, 1), range(1, 2)]
    for sizes in ([3, 9, 1, 1, 40, 2, 2], [1] * 13, [100, 1, 1, 1]):
        for workers in (2, 3, 4):
            runs = plan_runs(sizes, workers)
            assert [i for r in runs for i in r] == list(range(len(sizes)))
            assert 1 <= len(runs) <= workers and all(len(r) for r in runs)


@pytest.mark.parametrize("workers", [2, 3])
def test_a_parallel_rebuild_gives_the_same_answers_as_one_process(
    journal: Path, workers: int
) -> None:
    rebuild(journal, 1).close()
    assert shard_files(journal) == []
    one = answers(journal)
    rebuild(journal, workers).close()
    names = shard_files(journal)
    assert len(names) == workers - 1, names  # scratch files adopted and gone
    with SearchIndex(journal) as index:
        assert [s.name for s in index.shards()] == names
    assert_index_equals_journal(journal)
    assert answers(journal) == one
    for name in names:
        assert stat.S_IMODE((journal / "search" / name).stat().st_mode) == 0o600


def test_after_a_parallel_rebuild_new_records_go_to_the_index_itself(journal: Path) -> None:
    rebuild(journal, 2).close()
    before = {p: p.stat().st_mtime_ns for p in (journal / "search").glob(f"{SHARD_PREFIX}*")}
    w = DemoWriter.open(journal, segment_bytes=24 * 1024, clock=DemoClock(BASE_TS))
    add_messages(w, 5000, 300)
    w.close()
    with SearchEngine(journal, JOURNAL_ONLY) as engine:
        done = engine.catch_up()
        assert not done.rebuilt and done.added > 300
        assert engine.search("message 5299", count=True).total >= 1
        assert engine.search("message 0", count=True).total >= 1
    assert {p: p.stat().st_mtime_ns for p in before} == before  # shards never written again
    assert_index_equals_journal(journal)
    parallel = answers(journal)
    rebuild(journal, 1).close()
    assert answers(journal) == parallel


def test_a_failed_worker_leaves_its_run_to_the_rebuilding_process(
    journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rebuild(journal, 1).close()
    one = answers(journal)
    # It says a lot first (more than a pipe holds): the rebuild must not wait on it.
    boot = "import sys; sys.stderr.write('noise\\n' * 40000 + 'no space left\\n'); sys.exit(1)"
    monkeypatch.setattr(shards, "_BOOT", boot)
    indexer = rebuild(journal, 3)
    assert indexer.shard_problem is not None and "no space left" in indexer.shard_problem
    indexer.close()
    assert shard_files(journal) == []  # nothing half-built is kept
    assert_index_equals_journal(journal)
    assert answers(journal) == one


def test_a_shard_that_is_damaged_or_gone_makes_the_index_rebuild(journal: Path) -> None:
    rebuild(journal, 1).close()
    one = answers(journal)
    for damage in ("truncate", "garbage", "delete"):
        rebuild(journal, 2).close()
        [name] = shard_files(journal)
        path = journal / "search" / name
        if damage == "truncate":
            with open(path, "r+b") as f:
                f.truncate(path.stat().st_size // 2)
        elif damage == "garbage":
            path.write_bytes(b"\x00garbage" * 4096)
        else:
            path.unlink()
        with SearchEngine(journal, JOURNAL_ONLY) as engine:
            done = engine.catch_up()
        assert done.rebuilt is not None and name in done.rebuilt, (damage, done.rebuilt)
        assert answers(journal) == one, damage


def test_files_of_a_rebuild_that_never_adopted_them_are_removed(journal: Path) -> None:
    rebuild(journal, 1).close()
    search = journal / "search"
    for name in (f"{SHARD_PREFIX}1-ab-1.sqlite3", f"{SHARD_PREFIX}1-ab-1.rows.sqlite3"):
        (search / name).write_bytes(b"left by a killed rebuild")
    w = DemoWriter.open(journal, segment_bytes=24 * 1024, clock=DemoClock(BASE_TS))
    add_messages(w, 5000, 10)
    w.close()
    with SearchEngine(journal, JOURNAL_ONLY) as engine:
        assert not engine.catch_up().rebuilt
    assert shard_files(journal) == []


def test_a_reader_follows_a_rebuild_elsewhere_to_its_new_shards(journal: Path) -> None:
    """A searching process keeps its connection; another rebuilds the index with other
    shards (a new file): the reader's next search opens it and its shards, same hits."""
    rebuild(journal, 2).close()
    with SearchEngine(journal, JOURNAL_ONLY) as reader:
        query = parse_query("message", now=NOW)
        before = reader.search(query, limit=40, count=True, catch_up=False)
        first = [s.name for s in reader.index.shards()]
        rebuild(journal, 3).close()  # another indexer: new file, new shard names
        after = reader.search(query, limit=40, count=True, catch_up=False)
        assert [s.name for s in reader.index.shards()] != first
    assert after.total == before.total > 1000
    assert [h.seq for h in after.hits] == [h.seq for h in before.hits]


def test_a_parallel_rebuild_reports_progress_up_to_the_whole_journal(journal: Path) -> None:
    """The bar (`persist reindex`) counts the workers' bytes too: it only moves forward
    and ends at the whole journal."""
    seen: list[tuple[int, int]] = []
    indexer = Indexer(journal, JOURNAL_ONLY)
    indexer.workers = 3
    result = indexer.catch_up(rebuild=True, progress=lambda d, t: seen.append((d, t)))
    assert result.rebuilt and len(indexer.index.shards()) == 2
    indexer.close()
    todo = seen[0][1]
    assert todo > 0 and all(t == todo for _d, t in seen)
    done = [d for d, _t in seen]
    assert done == sorted(done) and done[0] == 0 and done[-1] == todo
    assert len(set(done)) > 2  # it moved along the way, not only at the end
