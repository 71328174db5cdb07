"""The search index: equal to the journal, caught up when stale, rebuilt when damaged,
filters, ranking (a relevance set), fuzzy hits, snippets and checkpoints."""

from __future__ import annotations

import shutil
import sqlite3
import stat
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from recorder.search.engine import SearchEngine, search
from recorder.search.hits import SearchHit
from recorder.search.index import Document, SearchIndex
from recorder.search.query import parse_query
from recorder.sources.discover import Roots
from recorder.store.reader import open_store
from tests.demo_journal import BASE_TS, DemoClock, DemoWriter

NOW = BASE_TS + 10 * 86400

RELEVANCE = [  # (query, the text that must be in the top 3)
    ("redis connection refused", "redis connection refused on port 6379"),
    ("flaky test", "the flaky test in test_parser is flaky again: flaky"),
    ('"rollback plan"', "rollback plan: revert the schema, then redeploy"),
    ("kubernetes oom", "pod killed by kubernetes: OOM at 2 GiB"),
    ("deadline friday", "the deadline is friday"),
]
NOISE = (
    "we looked at the redis cache and the connection pool while the test ran",
    "a test of the plan, the schema and the deploy, nothing about deadlines",
    "the pod restarted; kubernetes said nothing; connection fine; refused nothing",
    "friday we deploy, the flaky build is fixed, the rollback is not needed",
)


def write_journal(root: Path, n: int = 400, *, segment_bytes: int = 16 * 1024) -> DemoWriter:
    clock = DemoClock(BASE_TS)
    w = DemoWriter.open(root, segment_bytes=segment_bytes, clock=clock)
    add_messages(w, 0, n)
    return w


def add_messages(w: DemoWriter, start: int, n: int) -> None:
    senders = ("alice", "bob", "carol")
    for i in range(start, start + n):
        t = BASE_TS + i * 60
        sender = senders[i % 3]
        text = f"message {i} about " + NOISE[i % len(NOISE)]
        if i % 50 == 7:
            text = f"message {i}: the deployment of release {i}"
        w.message(
            t,
            sender,
            text,
            topic="agents.ops" if i % 2 else "chat",
            chain="request" if i % 4 == 0 else "reply",
            ace=1 + i % 6,
            tags=["question"] if i % 5 == 0 else [],
            extra={"to": senders[(i + 1) % 3], "session": f"S{i % 2}"},
        )
        if i == start + n // 2:
            w.checkpoint(t, f"mid-{start}", "manual")


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    w = write_journal(root)
    w.gap(BASE_TS + 401 * 60, "pub-1", 3, 9)
    w.record(BASE_TS + 402 * 60, "heartbeat", topic="_persist.heartbeat", frames=[])
    for _query, text in RELEVANCE:
        w.message(BASE_TS + 403 * 60, "dave", text, topic="chat")
    w.bad_line(b"not json at all {deployment}\n")
    w.close()
    return root


def doc_positions(root: Path) -> list[tuple[int, int, int]]:
    with SearchIndex(root) as index:
        return [
            (r[0], r[1], r[2])
            for r in index.query("SELECT id, segment, offset FROM docs ORDER BY id")
        ]


def assert_index_equals_journal(root: Path) -> None:
    """One document per journal line, in journal order, pointing at that line."""
    store = open_store(root)
    want = [(i + 1, r.segment, r.offset) for i, r in enumerate(store.records())]
    assert doc_positions(root) == want
    with SearchIndex(root) as index:
        kinds = [k for (k,) in index.query("SELECT kind FROM docs ORDER BY id")]
    assert kinds == [r.kind for r in store.records()]
    with SearchIndex(root) as index:
        fts = sum(
            index.query(f"SELECT count(*) FROM {schema}.fts('message')")[0][0]
            for schema, _offset in index.match_sources()
        )
    assert fts == sum(1 for r in store.records() if b"message" in r.line.lower())


def run(root: Path, text: str, **kw: object) -> list[str]:
    with SearchEngine(root) as engine:
        result = engine.search(parse_query(text, now=NOW), **kw)  # type: ignore[arg-type]
    return [h.snippet for h in result.hits]


def test_index_equals_journal_and_files_are_private(journal: Path) -> None:
    with SearchEngine(journal) as engine:
        done = engine.catch_up()
    assert done.rebuilt and done.added == len(open_store(journal))
    assert_index_equals_journal(journal)
    folder = journal / "search"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for f in folder.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_stale_index_catches_up_on_search(journal: Path) -> None:
    assert len(run(journal, "release", limit=100)) == 8
    w = DemoWriter.open(journal, segment_bytes=16 * 1024, clock=DemoClock(BASE_TS))
    add_messages(w, 1000, 100)
    w.close()
    assert len(run(journal, "release", limit=100)) == 10  # two new ones, found at once
    assert_index_equals_journal(journal)
    with SearchEngine(journal) as engine:
        assert engine.catch_up().added == 0  # nothing new: nothing redone


def _garbage(p: Path) -> None:
    p.write_bytes(b"this is not a database at all" * 100)


def _truncate(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _sql(statement: str) -> object:
    def damage(p: Path) -> None:
        db = sqlite3.connect(p)
        db.execute(statement)
        db.commit()
        db.close()

    return damage


@pytest.mark.parametrize(
    "damage",
    [
        _garbage,
        _truncate,
        lambda p: p.write_bytes(b""),
        _sql("UPDATE meta SET value = 1 WHERE key = 'schema'"),  # an earlier version's
        _sql("UPDATE meta SET value = '1' WHERE key = 'schema'"),  # wrongly typed
        _sql("UPDATE segments SET bytes = 'many'"),  # wrongly typed progress
        _sql("DROP TABLE docs"),
        _sql("DROP TABLE terms"),
    ],
    ids=[
        "garbage",
        "truncated",
        "empty",
        "schema",
        "typed-meta",
        "typed-progress",
        "docs",
        "terms",
    ],
)
def test_damaged_index_is_detected_and_rebuilt(journal: Path, damage: object) -> None:
    before = run(journal, "deployment OR redis", limit=50)
    index_file = journal / "search" / "index.sqlite3"
    damage(index_file)  # type: ignore[operator]
    with SearchEngine(journal) as engine:
        done = engine.catch_up()
        assert done.rebuilt, "the damage went unnoticed"
    assert run(journal, "deployment OR redis", limit=50) == before
    assert_index_equals_journal(journal)


def test_an_index_of_a_later_version_is_left_alone_until_a_reindex(
    journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After an upgrade, a recorder still running the old code and the new code would
    each rebuild the index for itself, in turn, for as long as both ran: an index of a
    later schema is left as it is (one line, exit 1) unless `persist reindex` is asked."""
    from recorder.cli.main import main
    from recorder.search.index import SCHEMA_VERSION, IndexNewer

    before = run(journal, "deployment OR redis", limit=50)
    index_file = journal / "search" / "index.sqlite3"
    _sql(f"UPDATE meta SET value = {SCHEMA_VERSION + 1} WHERE key = 'schema'")(index_file)
    kept = index_file.read_bytes()
    with SearchEngine(journal) as engine, pytest.raises(IndexNewer) as raised:
        engine.search("deployment")
    assert f"schema {SCHEMA_VERSION + 1}; this one writes {SCHEMA_VERSION}" in str(raised.value)
    assert index_file.read_bytes() == kept
    for argv in (["search", "deployment"], ["reindex", "--catch-up"]):
        assert main([*argv, "--log-dir", str(journal)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"persist: the search index {index_file} was made by a later ")
        assert err.endswith("or `persist reindex` to rebuild it for this one\n")
        assert index_file.read_bytes() == kept
    from recorder.doctor.run import diagnose

    (found,) = [f for f in diagnose(journal).findings if f.check.startswith("search.")]
    assert found.check == "search.outdated" and found.summary.startswith(
        "search index unused: the index was made by a later version"
    )
    assert "this version leaves it as it is" in found.summary
    assert index_file.read_bytes() == kept
    assert main(["reindex", "--log-dir", str(journal)]) == 0
    assert run(journal, "deployment OR redis", limit=50) == before
    assert_index_equals_journal(journal)


def test_rewritten_segment_and_foreign_index_are_rebuilt(journal: Path, tmp_path: Path) -> None:
    run(journal, "x")
    # Another folder's journal with this index copied in.
    other = tmp_path / "other"
    write_journal(other, 50).close()
    (other / "search").mkdir(mode=0o700)
    shutil.copy(journal / "search" / "index.sqlite3", other / "search" / "index.sqlite3")
    with SearchEngine(other) as engine:
        assert "segment" in (engine.catch_up().rebuilt or "")
    assert_index_equals_journal(other)
    # A closed segment rewritten in place (same length, other bytes).
    seg = sorted((journal / "segments").iterdir())[1]
    data = bytearray(seg.read_bytes())
    at = data.rfind(b"message", 0, len(data) - 10)
    data[at : at + 7] = b"MASSAGE"
    seg.write_bytes(bytes(data))
    with SearchEngine(journal) as engine:
        assert "rewritten" in (engine.catch_up().rebuilt or "")
    assert_index_equals_journal(journal)


@pytest.mark.parametrize(("query", "text"), RELEVANCE)
def test_relevance_set(journal: Path, query: str, text: str) -> None:
    top = run(journal, query, limit=3)
    assert text in top, top


def test_filters_and_kinds(journal: Path) -> None:
    with SearchEngine(journal) as engine:

        def hits(text: str, **kw: Any) -> list[SearchHit]:
            return engine.search(parse_query(text, now=NOW, tz=UTC), limit=1000, **kw).hits

        assert {h.sender for h in hits("from:bob message")} == {"bob"}
        assert {h.sender for h in hits("from:BO* message")} == {"bob"}
        assert {h.sender for h in hits("-from:bob message")} == {"alice", "carol"}
        assert {h.topic for h in hits("topic:agents message")} == {"agents.ops"}
        assert len(hits("topic:agent message")) == 0  # a dotted parent, not a prefix
        assert len(hits("kind:request message")) == 100
        assert len(hits("tier:3 message")) == 67
        assert len(hits("tag:question message")) == 80
        assert {h.sender for h in hits("to:alice message")} == {"carol"}
        assert len(hits("session:s1 message")) == 200
        assert len(hits("source:bus message")) == 400
        assert hits("source:claude message") == []
        assert [h.kind for h in hits("kind:gap")] == ["gap"]
        assert hits("publisher") == [] and hits("publisher", all_kinds=True)
        timed = hits("message since:2024-05-14T14:00 until:2024-05-14T14:20")
        assert len(timed) == 21
        assert all(BASE_TS + 300 * 60 <= (h.ts or 0) <= BASE_TS + 320 * 60 for h in timed)
        assert hits('"not json"', all_kinds=True)  # unreadable lines are searchable too


def test_fuzzy_hits_come_after_exact_and_are_marked(journal: Path) -> None:
    with SearchEngine(journal) as engine:
        typo = engine.search(parse_query("deploymnet", now=NOW), limit=5)
        assert typo.hits and all(h.fuzzy for h in typo.hits)
        assert typo.fuzzy_terms == {"deploymnet": ("deployment",)}
        assert all(s.fuzzy for h in typo.hits for s in h.spans)
        assert engine.search(parse_query("deploymnet", now=NOW), fuzzy=False).hits == []
        both = engine.search(parse_query("deploymen", now=NOW), fuzzy=True, limit=100).hits
        assert both and all(h.fuzzy for h in both)  # nothing exact, all stand-ins
        mixed = engine.search(parse_query("relase", now=NOW), fuzzy=True, limit=100).hits
        assert mixed and all(h.fuzzy for h in mixed)
        exact = engine.search(parse_query("release", now=NOW), fuzzy=True, limit=100).hits
        flags = [h.fuzzy for h in exact]
        assert flags == sorted(flags)  # exact ones (False) first


def test_hit_snippet_spans_and_checkpoint(journal: Path) -> None:
    result = search(journal, "deployment", limit=50)
    assert result.took_ms > 0 and result.total == 8 and result.total_exact
    store = open_store(journal)
    cps = sorted(store.checkpoints(), key=lambda c: (c.segment, c.offset))
    for hit in result.hits:
        assert [hit.snippet[s.start : s.end].lower() for s in hit.spans] == ["deployment"]
        rec = store.by_seq(hit.seq)  # type: ignore[arg-type]
        assert rec is not None and rec.sender == hit.sender and rec.ts == hit.ts
        before = [c.id for c in cps if (c.segment, c.offset) <= (rec.segment, rec.offset)]
        assert hit.checkpoint == (before[-1] if before else None)
    assert any(h.checkpoint for h in result.hits) and any(not h.checkpoint for h in result.hits)
    as_json = result.as_json()
    assert {"took_ms", "hits", "total"} <= as_json.keys()
    assert {"seq", "time", "sender", "topic", "snippet", "checkpoint"} <= as_json["hits"][0].keys()


def test_long_text_snippet_shows_the_match(tmp_path: Path) -> None:
    w = DemoWriter.open(tmp_path / "logs", clock=DemoClock(BASE_TS))
    w.message(BASE_TS, "eve", "filler " * 500 + "the needle is here " + "filler " * 500)
    w.close()
    hit = search(tmp_path / "logs", "needle").hits[0]
    assert len(hit.snippet) < 200
    s = hit.spans[0]
    assert hit.snippet[s.start : s.end] == "needle"


def test_other_sources_through_add_documents(journal: Path) -> None:
    run(journal, "x")
    with SearchIndex(journal, writable=True) as index:
        index.add_documents(
            [
                Document(
                    "an agent session says zanzibar",
                    BASE_TS,
                    sender="claude",
                    source="claude",
                    origin="~/.claude/projects/x.jsonl:12",
                )
            ]
        )
    hits = search(journal, "zanzibar source:claude").hits
    assert [(h.snippet, h.source, h.segment) for h in hits] == [
        ("an agent session says zanzibar", "claude", None)
    ]
    assert search(journal, "zanzibar source:bus").hits == []


def test_a_cancelled_search_stops_inside_sqlite_and_the_index_is_not_rebuilt(
    journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recorder.search.engine import SearchCancelled

    # Checks every 100 SQLite steps: this small journal's query takes thousands.
    monkeypatch.setattr("recorder.search.index.PROGRESS_STEPS", 100)

    with SearchEngine(journal) as engine:
        engine.catch_up()
        built = engine.index.path.stat().st_ino
        asked: list[str] = []

        def cancelled() -> bool:
            asked.append("?")
            return True

        # The first to ask is SQLite's progress handler, in the middle of the FTS query
        # ("message" matches every message): the query stops there and then.
        with pytest.raises(SearchCancelled):
            engine.search("message", limit=200, cancelled=cancelled)
        assert asked == ["?", "?"]  # the progress handler; then telling it from damage
        # The interruption is not mistaken for damage, and the engine answers again.
        assert engine.index.path.stat().st_ino == built
        assert engine.search("message", cancelled=lambda: False).hits


def test_a_reader_never_sees_an_index_half_made_by_a_reset(journal: Path) -> None:
    """Another process's doctor or TUI opening the index while a writer resets it sees
    the old file or the new one, never an empty or partial one (which it would report
    as damage)."""
    import threading

    from recorder.search.index import SearchIndex
    from recorder.search.indexer import index_health

    writer = SearchIndex(journal, writable=True)
    writer.reset()
    stop = threading.Event()
    seen: list[str] = []

    def look() -> None:
        while not stop.is_set():
            problem = index_health(journal).problem
            if problem and "segment" not in problem:  # not level: fine; damaged: not
                seen.append(problem)

    reader = threading.Thread(target=look)
    reader.start()
    try:
        for _ in range(40):
            writer.reset()
    finally:
        stop.set()
        reader.join()
        writer.close()
    assert not seen, seen[:3]


def test_the_python_search_expands_home_and_refuses_a_folder_without_a_journal(
    journal: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README's `search("~/.local/share/...", ...)` made a folder named `~` in the
    current one and found nothing; a missing folder got an index made in it."""
    from recorder.search.engine import NoJournal

    monkeypatch.setenv("HOME", str(journal.parent))
    monkeypatch.chdir(tmp_path)
    result = search(f"~/{journal.name}", "deployment", limit=5)
    assert result.hits and not (tmp_path / "~").exists()
    with pytest.raises(NoJournal, match="no journal in"):
        search(tmp_path / "nowhere", "deployment")
    assert not (tmp_path / "nowhere").exists()


def test_a_limit_above_the_ranking_window_counts_every_match_it_shows(tmp_path: Path) -> None:
    """`--limit 300` over exactly 300 matches said "299+ exact matches, 300 shown"."""
    from tests.demo_journal import DemoWriter

    root = tmp_path / "logs"
    w = DemoWriter.open(root)
    for i in range(300):
        w.message(BASE_TS + i, "alice", f"alpha number {i}")
    w.close()
    whole = search(root, "alpha", limit=300)
    assert len(whole.hits) == 300 and whole.total == 300 and whole.total_exact
    part = search(root, "alpha", limit=250)
    assert len(part.hits) == 250 and part.total == 250 and not part.total_exact  # "250+"


def test_a_checkpoint_cut_short_is_not_a_truncated_index(journal: Path) -> None:
    """SQLite checkpoints its WAL into the file page 1 first: killed in between (a
    `persist reindex` killed), the file's header already counts pages the file does
    not hold yet, while the WAL still holds them all and the next open finishes the
    job. Doctor called such an index "unusable (truncated ...)". With the WAL there
    the header's count is not held against the file; without it, it still is."""
    from recorder.search.index import IndexDamaged

    with SearchEngine(journal) as engine:
        engine.catch_up()
    path = journal / "search" / "index.sqlite3"
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_autocheckpoint = 0")
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    db.execute("CREATE TABLE filler (x)")
    db.executemany("INSERT INTO filler VALUES (?)", [(b"x" * 2000,) for _ in range(200)])
    db.commit()
    wal = path.with_name(path.name + "-wal")
    frames = wal.read_bytes()
    first = None  # the last frame of page 1: the header as the checkpoint writes it
    for at in range(32, len(frames) - 24, 24 + page_size):
        if int.from_bytes(frames[at : at + 4], "big") == 1:
            first = frames[at + 24 : at + 24 + page_size]
    assert (
        first is not None and path.stat().st_size < int.from_bytes(first[28:32], "big") * page_size
    )
    with open(path, "r+b") as f:  # the checkpoint's first write, and no other
        f.write(first)
    alone = path.with_name("alone.sqlite3")  # the same file without its WAL
    shutil.copy(path, alone)
    index = SearchIndex(journal)
    index.check(pages=True)  # no IndexDamaged: the WAL completes the file
    assert index.db.execute("SELECT count(*) FROM filler").fetchone()[0] == 200
    index.close()
    db.close()
    from recorder.search.index import _check_header

    with pytest.raises(IndexDamaged, match="truncated"):
        _check_header(alone, "")


def test_newest_across_the_journal_and_sessions_with_or_without_the_sessions_index(
    tmp_path: Path,
) -> None:
    """Past the ranked window the newest come first by time, the agent sessions' rows
    (ids given when indexed, whatever their time) merged with the journal's. They are
    found through `docs_elsewhere`; an index file without it (made before it was added)
    gives the same rows the slower way, and a writer adds it."""
    root = tmp_path / "logs"
    write_journal(root).close()  # 400 messages a minute apart; 8 say "deployment"
    run(root, "x")
    session_times = [BASE_TS + j * 97 + 13 for j in range(300)]  # interleaved with them
    with SearchIndex(root, writable=True) as index:
        index.add_documents(
            [
                Document(f"session {j} deployment notes", ts, sender="claude", source="claude")
                for j, ts in enumerate(session_times)
            ]
        )
    journal_times = [BASE_TS + i * 60 for i in range(400) if i % 50 == 7]
    want = sorted(session_times + journal_times, reverse=True)

    def newest(query: str, limit: int) -> list[float | None]:
        with SearchEngine(root, Roots(None, None, None)) as engine:
            hits = engine.search(query, limit=limit, fuzzy=False, catch_up=False).hits
        return [h.ts for h in hits]

    filter_want = sorted(session_times + [BASE_TS + i * 60 for i in range(400)], reverse=True)
    with_index = (newest("deployment", 250), newest("since:2020-01-01", 250))
    assert with_index == (want[:250], filter_want[:250])
    db = sqlite3.connect(root / "search" / "index.sqlite3")
    db.execute("DROP INDEX docs_elsewhere")
    db.commit()
    db.close()
    assert (newest("deployment", 250), newest("since:2020-01-01", 250)) == with_index
    with SearchIndex(root, writable=True) as index:
        index.check()
        assert index.has_index("docs_elsewhere")


def test_the_python_search_says_it_waits_for_another_writer_as_the_cli_does(
    tmp_path: Path,
) -> None:
    """Another process holds the index's writers' lock (a `flock` here) while the
    index lacks a new record: `persist search` says so before it waits and names the
    wait; the Python API waited as long in silence. Now `waiting()` is called once
    before the wait, and the result says how long it waited (`waited`) and whether
    what it searched lacked part of the journal (`partial`, `behind`)."""
    import fcntl
    import os

    root = tmp_path / "logs"
    w = DemoWriter.open(root, clock=DemoClock(BASE_TS))
    w.message(BASE_TS, "bob", "the first zanzibar")
    w.close()
    first = search(root, "zanzibar")
    assert first.waited == 0.0 and not first.partial and len(first.hits) == 1
    w = DemoWriter.open(root, clock=DemoClock(BASE_TS + 1))
    w.message(BASE_TS + 1, "bob", "the second zanzibar")
    w.close()
    lock = os.open(root / "search" / "index.lock", os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        said: list[str] = []
        result = search(root, "zanzibar", wait=0.2, waiting=lambda: said.append("waiting"))
        assert said == ["waiting"]
        assert result.waited >= 0.2 and result.partial and result.behind > 0
        assert [h.snippet for h in result.hits] == ["the first zanzibar"]
        j = result.as_json()
        assert j["partial"] is True and j["waited_ms"] >= 200

        def let_go() -> None:  # the other writer finishes while we wait
            said.append("waiting")
            fcntl.flock(lock, fcntl.LOCK_UN)

        result = search(root, "zanzibar", waiting=let_go)
        assert said == ["waiting", "waiting"]
        assert result.waited > 0 and not result.partial and len(result.hits) == 2
    finally:
        os.close(lock)
