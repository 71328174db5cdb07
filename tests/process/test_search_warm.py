"""`persist record` keeps the search index warm in a child process (idle priority:
test_background_priority.py),
which stops with the recorder; `--search-index off` leaves the index alone."""

from __future__ import annotations

import signal
from pathlib import Path

import psutil
import pytest

from recorder.bus.publisher import Publisher
from recorder.search.index import SearchIndex
from recorder.store.reader import open_store
from tests.support import Bus, wait_for

pytestmark = pytest.mark.timeout(120)


def indexed(log_dir: Path) -> int:
    try:
        with SearchIndex(log_dir) as index:
            return index.doc_count()
    except Exception:
        return -1


def indexer_children(pid: int) -> list[psutil.Process]:
    return [
        c
        for c in psutil.Process(pid).children()
        if "reindex" in c.cmdline() and "--follow" in c.cmdline()
    ]


def test_recorder_keeps_the_index_warm_and_its_indexer_stops_with_it(bus: Bus) -> None:
    bus.start_broker()
    rec = bus.start_recorder()
    children = wait_for(lambda: indexer_children(rec.pid), what="the indexer child")
    child = children[0]  # type: ignore[index]
    with Publisher(bus.front, agent="warm") as pub:
        assert pub.wait_ready(5)
        for i in range(500):
            pub.send("agents.warm", {"text": f"warm message {i} about zeppelins"})
    wait_for(
        lambda: (n := len(open_store(bus.log_dir))) >= 501 and indexed(bus.log_dir) >= n,
        timeout=60,
        what="the index level with the journal",
    )
    with SearchIndex(bus.log_dir) as index:
        hits = index.query("SELECT count(*) FROM fts WHERE fts MATCH 'zeppelins'")[0][0]
    assert hits == 500
    rec.signal(signal.SIGTERM)
    assert rec.wait(10) == 0
    wait_for(lambda: not child.is_running() or child.status() == "zombie", timeout=10)


def test_search_index_off(bus: Bus) -> None:
    bus.start_broker()
    rec = bus.start_recorder("--search-index", "off")
    with Publisher(bus.front, agent="cold") as pub:
        assert pub.wait_ready(5)
        pub.send("agents.cold", {"text": "nothing indexes this"})
    wait_for(lambda: len(open_store(bus.log_dir)) >= 2, what="written")
    assert indexer_children(rec.pid) == []
    assert not (bus.log_dir / "search" / "index.sqlite3").exists()
