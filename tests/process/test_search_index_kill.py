"""The search index after SIGKILLs of a real indexing process: always consistent
(a prefix of the journal, in order), and equal to the journal once caught up."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
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


def committed(root: Path) -> int:
    """Documents the indexer has committed so far (read-only: never starts a catch-up)."""
    path = root / "search" / "index.sqlite3"
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return int(db.execute("SELECT count(*) FROM docs").fetchone()[0])
    except sqlite3.Error:
        return 0  # not created yet, or its schema not written yet


def kill_after(proc: subprocess.Popen[bytes], root: Path, documents: int) -> bool:
    """SIGKILL `proc` as soon as `documents` are committed; False if it finished first."""
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if committed(root) >= documents:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    proc.wait()
    return False


def assert_prefix_of_journal(root: Path) -> int:
    """What a killed indexer left: documents 1..n for the journal's first n lines."""
    from recorder.store.reader import open_store

    docs = doc_positions(root)
    store = open_store(root)
    want = [(i + 1, r.segment, r.offset) for i, r in enumerate(store.records(0, len(docs)))]
    assert docs == want
    return len(docs)


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_during_indexing_leaves_a_consistent_index(tmp_path: Path, workers: int) -> None:
    """With `workers=2` the full rebuild runs a worker building a shard beside the
    rebuilding process, which is killed late in its own run (the worker, orphaned,
    stops by itself) or right after it adopted the shard."""
    root = tmp_path / "logs"
    w = DemoWriter.open(root, segment_bytes=512 * 1024, clock=DemoClock(BASE_TS))
    rng = random.Random(3)
    words = ["deploy", "cache", "rollback", "schema", "token", "queue", "latency", "parser"]
    for i in range(60_000):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(5, 60)))
        w.message(BASE_TS + i, ("a", "b", "c")[i % 3], f"{text} n{i}")
    w.close()
    kills = 0
    progress = [0]
    # A full rebuild killed once, then catch-ups killed at random moments: each
    # is killed once it has committed a random number of documents beyond what the
    # previous one left (timing-free: however fast or loaded the machine is).
    first = ("--workers", str(workers))
    for extra in [first, ("--catch-up",), ("--catch-up",), ("--catch-up",)]:
        # The rebuilding process's own run is about the first 30,000 records; beyond
        # that, the kill comes right after it adopted the shard.
        low, high = (25_000, 59_000) if extra == first and workers > 1 else (1, 12_000)
        proc = reindex(root, *extra)
        if kill_after(proc, root, progress[-1] + rng.randint(low, high)):
            kills += 1
        if (root / "search" / "index.sqlite3").exists():
            progress.append(assert_prefix_of_journal(root))
    assert kills >= 2, f"the indexer finished before it could be killed ({progress})"
    assert progress == sorted(progress) and progress[-1] > 0, progress
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


# `persist` whose replacement of an unusable index sends itself `signal` as it begins
# to write the new file (`index.sqlite3.new`).
_SIGNALLED_IN_REPLACE = r"""
import os, signal, sys
from recorder.search import index
real = index._create_schema
def signalled(db):
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    real(db)
index._create_schema = signalled
from recorder.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGKILL"])
def test_a_search_ended_while_it_replaces_the_index_leaves_no_new_file(
    tmp_path: Path, signame: str
) -> None:
    """A search that replaces an unusable index (`index.sqlite3.new`, renamed over it),
    ended by SIGTERM or Ctrl-C meanwhile, removes the new file (before 2026-12-07 it
    stayed beside the index, with its `-journal`); after a SIGKILL, the next catch-up
    removes it."""
    from tests.unit.test_search_index import write_journal

    root = tmp_path / "logs"
    write_journal(root, 300).close()
    search = root / "search"
    search.mkdir(mode=0o700)
    (search / "index.sqlite3").write_bytes(b"not an index\n" * 100)
    argv = ["search", "--log-dir", str(root), "--no-fuzzy", "deployment"]
    ended = subprocess.run(
        [sys.executable, "-c", _SIGNALLED_IN_REPLACE, signame, *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    left = sorted(p.name for p in search.glob("index.sqlite3.new*"))
    if signame == "SIGTERM":
        assert ended.returncode == 143, ended.stderr
        assert "ended by SIGTERM" in ended.stderr
        assert left == []
    else:
        assert ended.returncode == -signal.SIGKILL
        assert left == ["index.sqlite3.new"]
    done = subprocess.run(
        [sys.executable, "-m", "recorder.cli", *argv], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 6
    assert sorted(p.name for p in search.glob("index.sqlite3.new*")) == []
