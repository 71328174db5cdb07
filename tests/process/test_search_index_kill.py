"""The search index after SIGKILLs of a real indexing process: always consistent
(a prefix of the journal, in order), and equal to the journal once caught up."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recorder.search.engine import SearchEngine
from tests.demo_journal import BASE_TS, DemoClock, DemoWriter
from tests.unit.test_search_index import assert_index_equals_journal, doc_positions

pytestmark = pytest.mark.timeout(300)


def reindex(root: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "recorder.cli", "reindex", "--log-dir", str(root), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def assert_prefix_of_journal(root: Path) -> int:
    """What a killed indexer left: documents 1..n for the journal's first n lines."""
    from recorder.store.reader import open_store

    docs = doc_positions(root)
    store = open_store(root)
    want = [(i + 1, r.segment, r.offset) for i, r in enumerate(store.records(0, len(docs)))]
    assert docs == want
    return len(docs)


def test_sigkill_during_indexing_leaves_a_consistent_index(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    w = DemoWriter.open(root, segment_bytes=512 * 1024, clock=DemoClock(BASE_TS))
    rng = random.Random(3)
    words = ["deploy", "cache", "rollback", "schema", "token", "queue", "latency", "parser"]
    for i in range(120_000):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(5, 60)))
        w.message(BASE_TS + i, ("a", "b", "c")[i % 3], f"{text} n{i}")
    w.close()
    kills = 0
    progress = []
    # A full rebuild killed once, then catch-ups killed at random moments.
    for k, extra in enumerate([(), ("--catch-up",), ("--catch-up",), ("--catch-up",)]):
        proc = reindex(root, *extra)
        # Early kills: an idle machine indexes this journal in about 2 s.
        time.sleep(rng.uniform(0.4, 1.0) if k else 1.0)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
        if (root / "search" / "index.sqlite3").exists():
            progress.append(assert_prefix_of_journal(root))
    assert kills >= 2, "the indexer finished before it could be killed: make the journal bigger"
    assert any(progress), progress
    # The next search (or catch-up) finishes the job from where it stopped.
    with SearchEngine(root) as engine:
        done = engine.catch_up()
    assert not done.rebuilt, done.rebuilt
    assert_index_equals_journal(root)
    with SearchEngine(root) as engine:
        assert engine.search("n59999").total == 1
        assert engine.search("n0").total == 1
        lines = [
            ln
            for seg in sorted((root / "segments").iterdir())
            for ln in seg.read_bytes().splitlines()
        ]
        for word in ("deploy", "latency"):
            want = sum(1 for ln in lines if f" {word}".encode() in ln or f'"{word}'.encode() in ln)
            assert engine.search(word, count=True).total == want
