"""The session feed (`recorder.search.feed`): every indexed message of an agent's
sessions in time order, read a range at a time, from a real index of real session files."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder.search.engine import SearchEngine
from recorder.search.feed import AGENTS, SessionFeed
from recorder.search.index import SearchIndex
from recorder.sources.discover import Roots
from tests.demo_journal import BASE_TS, DemoClock, DemoWriter
from tests.session_fixtures import ClaudeSession, claude_steps, every_agent


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Roots, ClaudeSession]:
    log = tmp_path / "logs"
    w = DemoWriter.open(log, clock=DemoClock(BASE_TS))
    w.message(BASE_TS, "alice", "a bus message, not a session's", topic="claude:not-a-session")
    w.close()
    claude = every_agent(tmp_path)  # 6 Claude, 9 Codex, 4 Gemini messages
    roots = Roots(tmp_path / "claude", tmp_path / "gemini", tmp_path / "codex")
    return log, roots, claude


def caught_up(engine: SearchEngine, source: str) -> SessionFeed:
    """`source`'s feed, loaded once the index has caught up."""
    engine.catch_up()
    feed = SessionFeed(engine.index, source)
    feed.load()
    return feed


def read_all(feed: SessionFeed) -> list[tuple[float | None, str, str]]:
    docs = feed.documents(0, len(feed))
    assert None not in docs
    return [(d.ts, d.origin or "", d.text) for d in docs if d is not None]


def test_counts_order_and_ranges(world: tuple[Path, Roots, ClaudeSession]) -> None:
    log, roots, claude = world
    with SearchEngine(log, roots) as engine:
        engine.catch_up()
        feeds = {s: SessionFeed(engine.index, s) for s in ("claude", "gemini", "codex", AGENTS)}
        assert {s: f.load() for s, f in feeds.items()} == {
            "claude": 6,
            "gemini": 4,
            "codex": 9,
            AGENTS: 19,
        }
        rows = {s: read_all(f) for s, f in feeds.items()}
    topic = f"claude:{claude.session_id}"
    assert [o for _, o, _ in rows["claude"]] == [f"{topic}#{n}" for n in range(6)]
    assert [t for _, _, t in rows["claude"]][:2] == ["step 0: carry on", "done with step 0"]
    for source, listed in rows.items():
        times = [ts for ts, _, _ in listed]
        assert times == sorted(times), source  # oldest first
        prefixes = ("claude:", "gemini:", "codex:") if source == AGENTS else (f"{source}:",)
        assert all(o.startswith(prefixes) for _, o, _ in listed), source  # no bus record
    # Every agent's messages, merged by time (the same messages as the three sources).
    merged = sorted(rows["claude"] + rows["gemini"] + rows["codex"], key=lambda r: r[0] or 0)
    assert sorted(rows[AGENTS]) == sorted(merged)
    assert [ts for ts, _, _ in rows[AGENTS]] == [ts for ts, _, _ in merged]
    # A range is the same rows as the whole read; out-of-range ends are clamped.
    feed = feeds[AGENTS]
    assert [d and d.origin for d in feed.documents(5, 9)] == [o for _, o, _ in rows[AGENTS][5:9]]
    assert len(feed.documents(-3, 2)) == 2 and len(feed.documents(17, 99)) == 2
    assert feed.documents(40, 50) == [] and feed.documents(3, 3) == []


def test_a_document_becomes_a_journal_shaped_record(
    world: tuple[Path, Roots, ClaudeSession],
) -> None:
    log, roots, claude = world
    with SearchEngine(log, roots) as engine:
        feed = caught_up(engine, "claude")
        doc = feed.documents(3, 4)[0]
    assert doc is not None and doc.seq == 3
    rec = doc.record(3)
    assert (rec.index, rec.kind, rec.seq, rec.ts) == (3, "msg", 3, doc.ts)
    assert rec.topic == f"claude:{claude.session_id}"
    assert rec.meta == {"sender": "assistant", "source": "claude", "id": doc.origin}
    assert rec.payload == {"text": "done with step 1"}


def test_missing_index_no_sessions_and_unknown_source(tmp_path: Path) -> None:
    log = tmp_path / "logs"
    w = DemoWriter.open(log, clock=DemoClock(BASE_TS))
    w.message(BASE_TS, "alice", "hello", topic="chat")
    w.close()
    with SearchIndex(log) as index:
        feed = SessionFeed(index, "claude")
        assert feed.load() == 0 and feed.missing and feed.documents(0, 10) == []
    empty = Roots(tmp_path / "none", tmp_path / "none", tmp_path / "none")
    with SearchEngine(log, empty) as engine:
        engine.catch_up()
        feed = SessionFeed(engine.index, AGENTS)
        assert feed.load() == 0 and not feed.missing
    with SearchIndex(log) as index, pytest.raises(ValueError, match="unknown source 'bus'"):
        SessionFeed(index, "bus")


def test_a_rewritten_session_reads_as_gone_until_loaded_again(
    world: tuple[Path, Roots, ClaudeSession],
) -> None:
    log, roots, claude = world
    with SearchEngine(log, roots) as engine:
        feed = caught_up(engine, "claude")
        assert claude.path is not None
        claude.path.unlink()  # the agent rewrote it: its messages are indexed anew
        claude_steps(claude.root, 2, start=7, session_id=claude.session_id)
        assert engine.catch_up().sessions == 4
        assert feed.documents(0, 6) == [None] * 6  # the ids listed hold nothing of it now
        assert feed.load() == 4
        assert [t for _, _, t in read_all(feed)] == [
            "step 7: carry on",
            "done with step 7",
            "step 8: carry on",
            "done with step 8",
        ]
