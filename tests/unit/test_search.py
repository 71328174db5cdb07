"""The search module: query language, matching, spans and the scanning searcher."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from recorder.export.render import record_text
from recorder.search.query import Query, QueryError, match_spans, parse_query
from recorder.search.scan import ScanSearcher, index_at_time, open_searcher
from recorder.store.reader import open_store
from tests.demo_journal import BASE_TS, NOW, DemoClock, DemoWriter

TS = datetime(2024, 5, 15, 12, 0, tzinfo=UTC).timestamp()


def test_parse_query_terms_phrases_and_filters() -> None:
    q = parse_query(
        'Deploy "schema migration" from:Coder topic:tools since:2h until:11:30', now=TS, tz=UTC
    )
    assert q.terms == ("deploy", "schema migration")
    assert q.senders == ("coder",) and q.topics == ("tools",)
    assert q.since == TS - 7200
    assert q.until == datetime(2024, 5, 15, 11, 30, tzinfo=UTC).timestamp()
    assert (
        parse_query("since:2024-05-14", now=TS, tz=UTC).since
        == datetime(2024, 5, 14, tzinfo=UTC).timestamp()
    )
    assert parse_query("until:13:00", now=TS, tz=UTC).until == TS + 3600 - 86400  # yesterday
    assert parse_query('unclosed "quo', now=TS).terms == ("unclosed", "quo")
    assert parse_query("from:", now=TS).empty
    with pytest.raises(QueryError):
        parse_query("since:someday", now=TS)


def test_match_spans_exact_and_fuzzy() -> None:
    text = "Rolled back the Migration, retry later"
    q = Query(terms=("migration", "retry"))
    assert [text[s:e] for s, e in match_spans(text, q)] == ["Migration", "retry"]
    fuzzy = Query(terms=("migraton",), fuzzy=True)
    assert [text[s:e] for s, e in match_spans(text, fuzzy)] == ["Migration"]
    assert match_spans(text, Query(terms=("migraton",), fuzzy=False)) == []
    assert match_spans(text, Query(terms=("xyzzy",))) == []


@example(text=":", terms=["000:"])  # a fuzzy alignment on punctuation once gave (1, 1)
@given(st.text(max_size=60), st.lists(st.text(min_size=1, max_size=8), max_size=3))
def test_match_spans_are_ordered_and_in_bounds(text: str, terms: list[str]) -> None:
    spans = match_spans(text, Query(terms=tuple(t.lower() for t in terms)))
    for (s, e), nxt in zip(spans, [*spans[1:], None], strict=False):
        assert 0 <= s < e <= len(text)
        if nxt is not None:
            assert e < nxt[0]


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("search") / "logs"
    clock = DemoClock(BASE_TS)
    w = DemoWriter.open(root, segment_bytes=8 * 1024, clock=clock)
    for i in range(600):
        t = BASE_TS + i * 60
        clock.now = t
        sender = ("alice", "bob", "carol")[i % 3]
        word = "deployment" if i % 50 == 0 else "chatter"
        w.message(t, sender, f"message {i} about {word}", topic="ops" if i % 2 else "chat")
    w.bad_line(b"not json at all {\n")
    w.close()
    return root


def run(root: Path, text: str, **kw: object) -> list[int]:
    searcher = open_searcher(root)
    try:
        q = parse_query(text, now=BASE_TS + 600 * 60, tz=UTC, **kw)  # type: ignore[arg-type]
        return [h.index for p in searcher.search(q, batch_seconds=0.0) for h in p.hits]
    finally:
        searcher.close()


def test_scan_finds_newest_first_with_filters(journal: Path) -> None:
    store = open_store(journal)
    hits = run(journal, "deployment")
    assert len(hits) == 12 and hits == sorted(hits, reverse=True)
    assert all("deployment" in record_text(store.record(i)) for i in hits)
    assert len(run(journal, "deploymnet")) == 12  # typo tolerated
    assert run(journal, "deploymnet", fuzzy=False) == []
    bob = run(journal, "from:bob topic:ops")
    assert bob and all(
        store.record(i).sender == "bob" and store.record(i).topic == "ops" for i in bob
    )
    assert len(bob) == 100
    recent = run(journal, "since:60m")
    assert {store.record(i).ts for i in recent} == {BASE_TS + k * 60 for k in range(540, 600)}
    assert run(journal, '"not json"')  # unreadable lines are searchable too


def test_scan_limit_and_cancel(journal: Path) -> None:
    searcher = ScanSearcher(journal)
    q = parse_query("message", now=NOW)
    batches = list(searcher.search(q, limit=10, batch_seconds=0.0))
    assert sum(len(b.hits) for b in batches) == 10 and batches[-1].limited
    assert list(searcher.search(q, cancelled=lambda: True)) == []
    searcher.close()


def test_index_at_time_steps_over_bad_lines(journal: Path) -> None:
    store = open_store(journal)
    i = index_at_time(store, BASE_TS + 300 * 60)
    assert store.record(i).ts == BASE_TS + 300 * 60
    # Past the end: the trailing unreadable line has no time and counts as later.
    assert index_at_time(store, BASE_TS + 10**9) == len(store) - 1
    assert index_at_time(store, 0) == 0
