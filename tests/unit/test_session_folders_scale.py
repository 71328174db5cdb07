"""Big project folders, counted (files parsed, folders globbed, commits), never timed:
a 2.0.x sub-agent file (`agent-<id>.jsonl` beside the sessions) is read for its own
session only, the search index globs no folder per session and commits many session
files at a time (still each with its progress row), and a migrated Gemini
`.json`/`.jsonl` pair is indexed once. Real files, the real scan and the real
index."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from recorder.search.engine import SearchEngine
from recorder.search.index import SearchIndex
from recorder.sources import claude
from recorder.sources.discover import Roots, scan
from tests.demo_journal import BASE_TS, DemoClock, DemoWriter
from tests.session_fixtures import (
    ClaudeSession,
    gemini_legacy,
    gemini_messages,
    gemini_project,
    text,
)


def make_journal(root: Path) -> Path:
    w = DemoWriter.open(root, clock=DemoClock(BASE_TS))
    w.message(BASE_TS, "alice", "nothing about sessions here", topic="chat")
    w.close()
    return root


def flat_session(root: Path, i: int) -> tuple[ClaudeSession, Path]:
    """A Claude Code 2.0.x session and its sub-agent's own file beside it."""
    s = ClaudeSession(root, cwd="/home/me/flat", version="2.0.76")
    s.user(f"prompt {i} wombat{i}")
    s.assistant(text(f"answer {i}"))
    s.write()
    assert s.path is not None
    agent_path = s.path.parent / f"agent-a{i:07x}.jsonl"
    agent = ClaudeSession(
        root,
        cwd="/home/me/flat",
        version="2.0.76",
        session_id=s.session_id,
        sidechain=True,
        agent_id=f"a{i:07x}",
        path=agent_path,
    )
    agent.user("Warmup")
    agent.assistant(text(f"sub-agent {i} at work"))
    agent.write()
    return s, agent_path


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every `claude.parse_file` call's path (a whole-file parse)."""
    calls: list[Path] = []
    real = claude.parse_file

    def counting(path: Path, limit: int | None = None, *, exact: bool = False) -> claude.ParsedFile:
        calls.append(Path(path))
        return real(path, limit, exact=exact)

    monkeypatch.setattr(claude, "parse_file", counting)
    return calls


@pytest.fixture
def globs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every `Path.glob` pattern asked for."""
    calls: list[str] = []
    real = Path.glob

    def counting(self: Path, pattern: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(pattern)
        return real(self, pattern, *args, **kwargs)

    monkeypatch.setattr(Path, "glob", counting)
    return calls


@contextmanager
def commits(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the index's write transactions while the block runs."""
    calls: list[int] = []
    real = SearchIndex.transaction

    def counting(self: SearchIndex) -> Any:
        calls.append(1)
        return real(self)

    with monkeypatch.context() as m:
        m.setattr(SearchIndex, "transaction", counting)
        yield calls


N = 16


def test_listing_parses_each_flat_agent_file_for_its_own_session_only(
    tmp_path: Path, parsed: list[Path]
) -> None:
    pairs = [flat_session(tmp_path / "claude", i) for i in range(N)]
    roots = Roots(tmp_path / "claude", None, None)
    cache = tmp_path / "scan-cache.json"
    found = scan(roots, cache)
    # each session file once, each agent file twice (its own entry, and in its session):
    # not every agent file again for every session (N + N + N * N)
    assert len(parsed) == 3 * N
    sessions = {s.id: s for s in found.sessions}
    assert len(sessions) == N
    for s, agent in pairs:
        assert sessions[s.session_id].extra_paths == (agent,)
    # one more session with its agent file: only those two are read again
    parsed.clear()
    new, new_agent = flat_session(tmp_path / "claude", N)
    again = scan(roots, cache)
    assert (again.read, again.cached) == (2, 2 * N)
    assert sorted(parsed) == sorted([new.path, new_agent, new_agent])
    assert {s.id: s.extra_paths for s in again.sessions}[new.session_id] == (new_agent,)


def test_search_index_reads_each_flat_agent_file_once_per_session_and_globs_no_folder(
    tmp_path: Path, parsed: list[Path], globs: list[str]
) -> None:
    log = make_journal(tmp_path / "logs")
    with SearchEngine(log, Roots(tmp_path / "claude", None, None)) as engine:
        engine.catch_up()  # the journal
        for i in range(N):
            flat_session(tmp_path / "claude", i)
        parsed.clear()
        globs.clear()
        engine.indexer.sessions.catch_up()
        # each session in full with its own agent file, each agent file on its own
        assert len(parsed) == 3 * N
        assert [g for g in globs if "agent" in g] == []  # not the folder per session
        hits = engine.search("source:claude wombat7").hits
    assert len(hits) == 1


def test_many_small_sessions_share_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, globs: list[str]
) -> None:
    n = 60
    log = make_journal(tmp_path / "logs")
    with SearchEngine(log, Roots(tmp_path / "claude", None, None)) as engine:
        engine.catch_up()  # the journal
        for i in range(n):
            s = ClaudeSession(tmp_path / "claude", cwd="/home/me/many")
            s.user(f"prompt number {i} wombat{i}")
            s.write()
        globs.clear()
        with commits(monkeypatch) as made:
            done = engine.indexer.sessions.catch_up()
        assert (done.read, done.added) == (n, n)
        assert len(made) <= 3  # the progress table, then the files: not one commit each
        assert [g for g in globs if "agent" in g] == []
        assert len(engine.search("source:claude prompt", limit=100).hits) == n


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from recorder.search import sessions
    from recorder.search.engine import SearchEngine
    from recorder.sources.discover import Roots

    real = sessions.message_document
    made = []

    def dying(msg):
        made.append(msg)
        if len(made) == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(msg)

    sessions.message_document = dying
    sessions.BATCH_FILES = 4
    with SearchEngine(Path(sys.argv[1]), Roots(Path(sys.argv[2]), None, None)) as engine:
        engine.catch_up()
    """
)


def test_a_catch_up_killed_mid_batch_leaves_each_file_indexed_with_its_progress_or_not(
    tmp_path: Path,
) -> None:
    n = 30
    for i in range(n):
        s = ClaudeSession(tmp_path / "claude", cwd="/home/me/many")
        s.user(f"prompt number {i} wombat{i}")
        s.assistant(text(f"reply {i}"))
        s.write()
    log = make_journal(tmp_path / "logs")
    # SIGKILL at the 21st document: two batches of 4 files (2 documents each) committed,
    # the third one half made
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, str(log), str(tmp_path / "claude"), "21"],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    with SearchEngine(log, Roots(tmp_path / "claude", None, None)) as engine:
        rows = engine.index.query("SELECT count(*), sum(messages) FROM session_files")
        docs = engine.index.query("SELECT count(*) FROM docs WHERE source = 'claude'")
        assert rows == [(8, 16)] and docs == [(16,)]  # each file with its progress row
        engine.indexer.sessions.catch_up()
        origins = engine.index.query("SELECT origin FROM docs WHERE source = 'claude'")
        assert len(origins) == len({o for (o,) in origins}) == 2 * n


def gemini_pair(tmp_path: Path, *, jsonl: bool = True) -> tuple[Path, str]:
    """A legacy Gemini session, and (`jsonl`) its `.jsonl` beside it, as resuming it
    with Gemini CLI >= 0.39 leaves them: the same name plus `l`, every message again and
    one more."""
    sid = "9f0c1d2e-0000-4000-8000-0000000000aa"
    chats = gemini_project(tmp_path / "gemini", "/home/me/gproj")
    messages = gemini_messages(2)
    legacy = gemini_legacy(chats, sid, messages)
    if jsonl:
        write_jsonl(legacy, sid, messages)
    return legacy, sid


def write_jsonl(legacy: Path, sid: str, messages: list[dict[str, Any]]) -> Path:
    import json

    path = legacy.with_name(legacy.name + "l")
    head = {"sessionId": sid, "projectHash": "ab" * 32, "startTime": messages[0]["timestamp"]}
    more = {
        "id": "new-1",
        "timestamp": "2026-02-01T10:00:00.000Z",
        "type": "user",
        "content": [{"text": "quokkaword follow-up"}],
    }
    with open(path, "w") as f:
        for line in [head, *messages, more]:
            f.write(json.dumps(line) + "\n")
    return path


def gemini_origins(engine: SearchEngine) -> list[str]:
    rows = engine.index.query("SELECT origin FROM docs WHERE source = 'gemini' ORDER BY origin")
    return [r[0] for r in rows]


def test_a_migrated_gemini_pair_is_indexed_once(tmp_path: Path) -> None:
    gemini_pair(tmp_path)
    log = make_journal(tmp_path / "logs")
    roots = Roots(None, tmp_path / "gemini", None)
    [listed] = scan(roots).sessions
    assert listed.path.suffix == ".jsonl"
    with SearchEngine(log, roots) as engine:
        hits = engine.search('source:gemini "question 0"').hits
        assert [h.origin for h in hits] == [f"gemini:{listed.id}#0"]
        assert len(engine.search("source:gemini quokkaword").hits) == 1
        origins = gemini_origins(engine)
        assert len(origins) == len(set(origins)) == 5  # 4 messages, then the new one
        assert engine.indexer.sessions.catch_up().read == 0  # level: stat only


def test_a_legacy_gemini_session_migrated_after_indexing_keeps_one_copy(tmp_path: Path) -> None:
    legacy, sid = gemini_pair(tmp_path, jsonl=False)
    log = make_journal(tmp_path / "logs")
    roots = Roots(None, tmp_path / "gemini", None)
    with SearchEngine(log, roots) as engine:
        engine.search("anything")
        assert len(gemini_origins(engine)) == 4
        write_jsonl(legacy, sid, gemini_messages(2))  # resumed: migrated to `.jsonl`
        assert len(engine.search("source:gemini quokkaword").hits) == 1
        origins = gemini_origins(engine)
        assert len(origins) == len(set(origins)) == 5
        assert len(engine.search('source:gemini "question 0"').hits) == 1
        os.unlink(legacy)  # the old `.json` cleaned up: the session stays, once
        engine.indexer.sessions.catch_up()
        assert len(gemini_origins(engine)) == 5
        os.unlink(legacy.with_name(legacy.name + "l"))
        engine.indexer.sessions.catch_up()
        assert gemini_origins(engine) == []


def test_an_index_holding_both_files_of_a_gemini_pair_drops_the_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recorder.search import sessions

    gemini_pair(tmp_path)
    log = make_journal(tmp_path / "logs")
    roots = Roots(None, tmp_path / "gemini", None)
    with SearchEngine(log, roots) as engine:
        with monkeypatch.context() as m:  # as an index written before the pair was known
            m.setattr(sessions, "_gemini_twins", lambda found: {})
            engine.search("anything")
        assert len(gemini_origins(engine)) == 9  # 4 of the `.json`, 5 of the `.jsonl`
        engine.indexer.sessions.forget()
        done = engine.indexer.sessions.catch_up()
        origins = gemini_origins(engine)
        assert len(origins) == len(set(origins)) == 5
        assert done.removed == 9 and done.added == 5
        rows = engine.index.query("SELECT path FROM session_files")
        assert [Path(r[0]).suffix for r in rows] == [".jsonl"]
