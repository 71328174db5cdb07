"""Agent sessions in the search index: real session files (tests/session_fixtures.py) and
a real journal, through the one engine the CLI, the API and the TUI use."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from recorder.search.engine import SearchEngine, search
from recorder.search.index import SearchIndex
from recorder.search.query import QueryError, parse_query
from recorder.sources import claude
from recorder.sources.copies import protect
from recorder.sources.discover import Roots, scan
from recorder.store.layout import Layout
from tests.demo_journal import BASE_TS, DemoClock, DemoWriter
from tests.session_fixtures import (
    ClaudeSession,
    codex_rollout,
    gemini_jsonl,
    gemini_messages,
    gemini_project,
    text,
)

REAL = Path(os.environ.get("PERSIST_REALDATA", "/work/shared/realdata"))


def make_journal(root: Path) -> Path:
    w = DemoWriter.open(root, clock=DemoClock(BASE_TS))
    w.message(BASE_TS, "alice", "the bus also talks about zanzibarite ore", topic="chat")
    w.message(BASE_TS + 1, "bob", "nothing else here", topic="chat")
    w.close()
    return root


def claude_session(root: Path, words: str = "zanzibarite") -> ClaudeSession:
    s = ClaudeSession(root)
    s.user(f"please look for {words} in the quarry")
    s.assistant(text("I found three veins of it"))
    s.write()
    return s


def session_docs(log: Path, source: str) -> dict[int, str]:
    with SearchIndex(log) as index:
        rows = index.query("SELECT id, origin FROM docs WHERE source = ?", (source,))
    return {r[0]: r[1] for r in rows}


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Roots, ClaudeSession]:
    log = make_journal(tmp_path / "logs")
    roots = Roots(tmp_path / "claude", tmp_path / "gemini", tmp_path / "codex")
    return log, roots, claude_session(tmp_path / "claude")


def test_source_filter_finds_the_session_message(world: tuple[Path, Roots, ClaudeSession]) -> None:
    log, roots, s = world
    hits = search(log, "source:claude zanzibarite", roots=roots).hits
    assert [(h.source, h.sender, h.session, h.seq) for h in hits] == [
        ("claude", "user", s.session_id, None)
    ]
    assert hits[0].origin is not None and re.fullmatch(
        rf"claude:{s.session_id}#\d+", hits[0].origin
    )
    assert "zanzibarite" in hits[0].snippet and hits[0].deleted is False
    as_json = hits[0].as_json()
    assert as_json["seq"] is None and as_json["origin"] == hits[0].origin
    assert "segment" not in as_json
    mixed = search(log, "zanzibarite", roots=roots).hits
    assert sorted(h.source for h in mixed) == ["bus", "claude"]
    assert [h.source for h in search(log, "source:bus zanzibarite", roots=roots).hits] == ["bus"]
    assert search(log, "-source:claude zanzibarite", roots=roots).hits[0].source == "bus"
    assert search(log, f"session:{s.session_id} veins", roots=roots).hits[0].sender == "assistant"


def test_gemini_and_codex_sessions_are_searchable(tmp_path: Path) -> None:
    log = make_journal(tmp_path / "logs")
    chats = gemini_project(tmp_path / "gemini", "/home/me/gproj")
    gemini_jsonl(chats, "9f0c1d2e-0000-4000-8000-000000000001", gemini_messages(3))
    codex_rollout(tmp_path / "codex", "0199aaaa-bbbb-7ccc-8ddd-eeeeffff0001", 3)
    roots = Roots(None, tmp_path / "gemini", tmp_path / "codex")
    with SearchEngine(log, roots) as engine:
        g = engine.search('source:gemini "answer 2"').hits
        c = engine.search('source:codex "task 2"').hits
    assert [(h.source, h.sender) for h in g] == [("gemini", "assistant")]
    assert [(h.source, h.sender) for h in c] == [("codex", "user")]
    assert g[0].session == "9f0c1d2e-0000-4000-8000-000000000001"


def test_a_grown_session_adds_only_its_new_messages(
    world: tuple[Path, Roots, ClaudeSession],
) -> None:
    log, roots, s = world
    assert s.path is not None
    with SearchEngine(log, roots) as engine:
        first = engine.catch_up()
        before = session_docs(log, "claude")
        assert first.sessions == len(before) == 2
        s.user("now the obsidianite question")
        s.assistant(text("obsidianite is volcanic glass"))
        s.append_lines(s.lines[-2:])
        grown = engine.catch_up()
        after = session_docs(log, "claude")
        assert grown.sessions == 2 and len(after) == 4
        assert {k: v for k, v in after.items() if k in before} == before  # untouched
        assert len(engine.search("source:claude obsidianite").hits) == 2
        assert engine.indexer.sessions.catch_up().read == 0  # nothing changed: stat only


def test_a_rewritten_session_has_its_documents_replaced(
    world: tuple[Path, Roots, ClaudeSession],
) -> None:
    log, roots, s = world
    with SearchEngine(log, roots) as engine:
        engine.catch_up()
        s.lines.clear()
        s.last = None
        s.user("a different start about basaltine")
        s.write()
        done = engine.catch_up()
        assert done.sessions == 1 and len(session_docs(log, "claude")) == 1
        assert engine.search("source:claude zanzibarite").hits == []
        assert len(engine.search("source:claude basaltine").hits) == 1
        # the contentless FTS rows went with their documents: a word count of zero
        assert engine.index.query("SELECT count(*) FROM fts WHERE fts MATCH 'veins'") == [(0,)]


def test_deleted_original_stays_searchable_through_its_copy_and_after_rebuild(
    world: tuple[Path, Roots, ClaudeSession],
) -> None:
    log, roots, s = world
    assert s.path is not None
    [session] = scan(roots).sessions
    protect(Layout(log), session)
    other = claude_session(roots.claude or Path(), "malachiteous")  # no copy of this one
    assert other.path is not None
    with SearchEngine(log, roots) as engine:
        engine.catch_up()
        assert len(engine.search("malachiteous").hits) == 1
        os.unlink(s.path)
        os.unlink(other.path)
        done = engine.catch_up()
        assert done.sessions == 0
        hits = engine.search("source:claude zanzibarite").hits
        assert [(h.session, h.deleted) for h in hits] == [(s.session_id, True)]
        assert engine.search("malachiteous").hits == []  # gone, and no copy of it
        rebuilt = engine.catch_up(rebuild=True)
        assert rebuilt.sessions == 2  # read back from the copy
        hits = engine.search("source:claude zanzibarite").hits
        assert [(h.session, h.deleted) for h in hits] == [(s.session_id, True)]
        assert "zanzibarite" in hits[0].snippet
    assert not list((log / "search").glob("copy-*"))  # the read-back left nothing behind


def test_rebuild_keeps_session_documents(world: tuple[Path, Roots, ClaudeSession]) -> None:
    log, roots, _s = world
    with SearchEngine(log, roots) as engine:
        engine.catch_up()
        before = sorted(session_docs(log, "claude").values())
        done = engine.catch_up(rebuild=True)
        assert done.rebuilt == "asked for" and done.sessions == 2
        assert sorted(session_docs(log, "claude").values()) == before
        assert len(engine.search("source:claude zanzibarite").hits) == 1


def test_agent_folders_are_not_written(world: tuple[Path, Roots, ClaudeSession]) -> None:
    log, roots, _s = world
    assert roots.claude is not None
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in roots.claude.rglob("*")}
    search(log, "zanzibarite", roots=roots)
    after = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in roots.claude.rglob("*")}
    assert after == before


def test_unknown_source_is_a_clear_error() -> None:
    with pytest.raises(QueryError, match=r"source:nope is not a source \(one of bus, claude"):
        parse_query("source:nope word")
    assert parse_query("source:cl* word").fields[0].value == "cl*"


@pytest.mark.skipif(not (REAL / "claude").is_dir(), reason="no real session samples here")
def test_real_claude_project_is_searchable(tmp_path: Path) -> None:
    project = tmp_path / "claude" / "projects" / "real"
    shutil.copytree(REAL / "claude" / "moredip-session-share_project", project)
    path = sorted(project.glob("*.jsonl"))[0]
    messages = claude.read_transcript(path).messages
    words = [w for m in messages for w in re.findall(r"[a-z]{9,}", m.text.lower())]
    assert words, "the real sample has no long words"
    word = words[len(words) // 2]
    log = make_journal(tmp_path / "logs")
    result = search(log, f"source:claude {word}", roots=Roots(tmp_path / "claude", None, None))
    assert result.hits and all(h.source == "claude" for h in result.hits)
    assert any(word in h.snippet.lower() for h in result.hits)


def test_a_time_budget_leaves_sessions_for_the_next_catch_up(tmp_path: Path) -> None:
    log = make_journal(tmp_path / "logs")
    for i in range(3):
        claude_session(tmp_path / "claude", f"word{i}x")
    with SearchEngine(log, Roots(tmp_path / "claude", None, None)) as engine:
        first = engine.catch_up(budget=0.0)
        assert first.sessions_pending == 3 and first.sessions == 0
        rest = engine.catch_up()
        assert rest.sessions_pending == 0 and rest.sessions == 6
        assert engine.catch_up().sessions == 0
        assert len(engine.search("source:claude quarry").hits) == 3


def test_a_match_deep_in_a_long_session_message_is_in_its_snippet(tmp_path: Path) -> None:
    """A session message's snippet is cut around its first match, wherever it is in the
    text (the window a hit keeps is 64 KiB, no longer a MiB from the text's start)."""
    log = make_journal(tmp_path / "logs")
    s = ClaudeSession(tmp_path / "claude")
    s.user("很长的消息" * 40_000 + " 独特标记词 " + "结尾" * 1000)  # the match at 200,001
    s.assistant(text("ok"))
    s.write()
    roots = Roots(tmp_path / "claude", None, None)
    (hit,) = search(log, "source:claude 独特标记词", roots=roots).hits
    assert "独特标记词" in hit.snippet
    start = hit.snippet.index("独特标记词")
    assert [(x.start, x.end) for x in hit.spans] == [(start, start + 5)]
