"""`persist record` keeps the search index warm in a child process (idle priority:
test_background_priority.py),
which stops with the recorder; `--search-index off` leaves the index alone."""

from __future__ import annotations

import io
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import psutil
import pytest

from recorder.bus.publisher import Publisher
from recorder.search.index import SearchIndex
from recorder.store.reader import open_store
from tests.support import Bus, Proc, wait_for


@pytest.fixture(autouse=True)
def indexer_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The recorder's indexer child, which the other tests' recorders go without."""
    monkeypatch.setenv("PERSIST_SEARCH_INDEX", "on")


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


def test_search_index_default_comes_from_the_environment(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$PERSIST_SEARCH_INDEX=off: a recorder without the indexer child (as the other
    tests run theirs); a value other than on or off is one line, exit 2."""
    monkeypatch.setenv("PERSIST_SEARCH_INDEX", "off")
    bus.start_broker()
    rec = bus.start_recorder()
    with Publisher(bus.front, agent="cold") as pub:
        assert pub.wait_ready(5)
        pub.send("agents.cold", {"text": "nobody indexes this"})
    wait_for(lambda: len(open_store(bus.log_dir)) >= 2, what="the message journaled")
    assert not indexer_children(rec.pid)
    assert not (bus.log_dir / "search").exists()
    rec.signal(signal.SIGTERM)
    assert rec.wait(10) == 0
    monkeypatch.setenv("PERSIST_SEARCH_INDEX", "maybe")
    out = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "record", "--log-dir", str(bus.log_dir)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.strip() == "persist: $PERSIST_SEARCH_INDEX must be on or off (got 'maybe')"


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


def record_small_segments(bus: Bus) -> Proc:
    """A recorder with 0.01 MB segments that has written 300 messages (many closed
    segments, text a renderer must escape)."""
    bus.start_broker()
    rec = bus.start_recorder("--segment-mb", "0.01")
    with Publisher(bus.front, agent="warm") as pub:
        assert pub.wait_ready(5)
        for i in range(300):
            pub.send("agents.warm", {"text": f"message {i} ```\n<b>x</b>"})
    wait_for(lambda: len(open_store(bus.log_dir)) >= 301, what="written")
    return rec


def test_the_indexer_renders_closed_segments_so_an_export_copies_them(bus: Bus) -> None:
    """With nothing left to index, the recorder's indexer renders each closed segment
    as `persist export` does by default; the export then copies every closed piece."""
    from recorder.export import render_cache
    from recorder.export.parallel import SERIAL, Parallel
    from recorder.export.writers import export_range
    from recorder.store.ranges import JournalRange

    rec = record_small_segments(bus)
    folder = render_cache.folder_of(bus.log_dir)

    def closed() -> set[str]:
        with open_store(bus.log_dir) as store:
            return {f"seg-{s.number:06d}" for s in store.segments[:-1]}

    def warm() -> bool:
        kept = {p.parent.name for p in folder.glob("seg-*/*.md.r.zst")}
        return len(kept) >= 5 and kept == closed()

    wait_for(warm, timeout=60, what="every closed segment rendered")
    rec.signal(signal.SIGTERM)
    assert rec.wait(10) == 0
    stamps = {p: p.stat().st_mtime_ns for p in folder.rglob("*.zst")}
    outputs = []
    for parallel in (SERIAL, Parallel(workers=2, min_bytes=0)):
        with open_store(bus.log_dir) as store, io.BytesIO() as out:
            export_range(store, JournalRange(0, len(store)), "md", out, parallel=parallel)
            outputs.append(out.getvalue())
            assert not store.warnings
    assert outputs[0] == outputs[1] and b"message 299" in outputs[0]
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*.zst")} == stamps  # all copied


def test_a_full_restore_asks_and_the_indexer_keeps_it_warm(bus: Bus) -> None:
    """A full restore's transcript (Markdown, unredacted) asks the recorder's indexer to
    keep it; once kept, the next bundle copies it and is the one-pass bundle, byte for
    byte (its manifest too)."""
    from recorder.export import render_cache
    from recorder.export.parallel import SERIAL, Parallel
    from recorder.export.restore import build_bundle
    from recorder.export.scope import BundleScope
    from recorder.store.checkpoints import resolve_checkpoint
    from recorder.store.layout import Layout

    rec = record_small_segments(bus)
    assert (
        subprocess.run(
            [sys.executable, "-m", "recorder.cli", "checkpoint", "--log-dir", str(bus.log_dir)],
            capture_output=True,
            timeout=60,
        ).returncode
        == 0
    )
    folder = render_cache.folder_of(bus.log_dir)
    cp = resolve_checkpoint(Layout(bus.log_dir), "latest")

    def bundle(parallel: Parallel) -> list[bytes]:
        shutil.rmtree(bus.log_dir / "restore", ignore_errors=True)
        made = build_bundle(
            bus.log_dir, cp, scope=BundleScope.whole(), durable=False, now=0.0, parallel=parallel
        )
        return [
            made.jsonl.read_bytes(),
            made.transcript.read_bytes(),
            made.manifest_path.read_bytes(),
        ]

    pieces = Parallel(workers=2, min_bytes=0)
    first = bundle(pieces)
    assert (folder / "md.p.wanted").exists()

    def warm() -> bool:
        with open_store(bus.log_dir) as store:
            closed = {f"seg-{s.number:06d}" for s in store.segments[:-1]}
        return {p.parent.name for p in folder.glob("seg-*/*.md.p.zst")} >= closed

    wait_for(warm, timeout=60, what="every closed segment rendered unredacted")
    rec.signal(signal.SIGTERM)
    assert rec.wait(10) == 0
    stamps = {p: p.stat().st_mtime_ns for p in folder.rglob("*.zst")}
    serial = bundle(SERIAL)
    assert bundle(pieces) == serial == first and b"message 299" in serial[1]
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*.zst")} == stamps  # all copied


def test_the_indexer_slows_its_polls_while_nothing_arrives() -> None:
    """Quiet catch-ups double the wait up to FOLLOW_IDLE_POLL (an idle recorder's indexer
    wakes every 8 s, not every second); anything done brings it back to FOLLOW_POLL."""
    from recorder.cli.search import FOLLOW_IDLE_POLL, FOLLOW_POLL, idle_pause

    pause, seen = FOLLOW_POLL, []
    for _ in range(6):
        pause = idle_pause(pause, quiet=True)
        seen.append(pause)
    assert seen == [2.0, 4.0, 8.0, 8.0, 8.0, 8.0] and FOLLOW_IDLE_POLL == 8.0
    assert idle_pause(pause, quiet=False) == FOLLOW_POLL == 1.0


def test_a_failed_indexer_is_named_in_status_and_started_again(bus: Bus) -> None:
    """An indexer that ended on an index error (here something else in the index's
    place; a full disk or a malformed file end it the same way) stayed a zombie, never
    started again, while status said healthy with no word of it. Now status names it
    and its last line, and it is started again (reaped) until it keeps the index warm."""
    (bus.log_dir / "search" / "index.sqlite3").mkdir(parents=True)
    bus.start_broker()
    rec = bus.start_recorder()

    def warning() -> str | None:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "recorder.cli",
                "status",
                "--json",
                "--log-dir",
                str(bus.log_dir),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        report = orjson.loads(out.stdout)
        assert report["health"] == "healthy", report
        named = [w for w in report["warnings"] if "search index not kept warm" in w]
        if named:
            assert report["indexer"]["parent"] == rec.pid, report["indexer"]
            assert report["indexer"]["last_error"].startswith("exit code 1 (persist: "), report
        return named[0] if named else None

    line = wait_for(warning, timeout=30, what="status to say the index is not kept warm")
    assert "exit code 1 (persist: cannot use the search index: " in str(line), line
    assert "search/index.sqlite3 is a folder, not a file; `persist reindex" in str(line), line
    zombies = [c for c in psutil.Process(rec.pid).children() if c.status() == "zombie"]
    assert zombies == []
    (bus.log_dir / "search" / "index.sqlite3").rmdir()
    with Publisher(bus.front, agent="again") as pub:
        assert pub.wait_ready(5)
        for i in range(50):
            pub.send("agents.again", {"text": f"message {i} about zeppelins"})
    wait_for(
        lambda: (n := len(open_store(bus.log_dir))) >= 51 and indexed(bus.log_dir) >= n,
        timeout=60,
        what="the index level with the journal again",
    )
    assert indexer_children(rec.pid), "the indexer runs again"
    assert warning() is None
    rec.signal(signal.SIGTERM)
    assert rec.wait(10) == 0
