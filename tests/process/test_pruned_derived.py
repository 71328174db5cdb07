"""What is derived from pruned segments goes with them: their renderings in
`render_cache/` and their rows and words in the search index, through the real CLI."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import time
from pathlib import Path

import orjson
import pytest
import zstandard

from recorder.bus.publisher import Publisher
from recorder.export.warm_renders import RenderWarmer
from recorder.launch.registry import register_agent
from recorder.search.engine import SearchEngine
from recorder.search.indexer import Indexer
from recorder.sources.discover import Roots
from recorder.store.layout import Layout, list_segments, segment_number
from recorder.store.reader import open_store
from tests.demo_journal import DemoClock, DemoWriter
from tests.support import PYTHON, Bus, wait_for

DAY = 86_400.0


def tag(i: int) -> str:
    """Message i's own word, letters only (the typo suggestions' list leaves out words
    with digits): zebraaa, zebraab, ..."""
    return "zebra" + "".join(chr(ord("a") + int(d)) for d in f"{i:02d}")


def persist(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "recorder.cli", *argv], capture_output=True, text=True, timeout=120
    )


def rendered_words(layout: Layout) -> set[str]:
    """The `zebra` words every kept rendering holds (decompressed)."""
    found: set[str] = set()
    for path in layout.render_cache.glob("seg-*/*.zst"):
        raw = path.read_bytes()
        body = raw[raw.index(b"\n") + 1 :]
        text = zstandard.ZstdDecompressor().decompressobj().decompress(body).decode()
        found |= set(re.findall(r"zebra[a-j]+", text))
    return found


def indexed_words(layout: Layout) -> set[str]:
    """The `zebra` words the index's full-text tables (its own and its shards') and its
    typo snapshot hold."""
    db = sqlite3.connect(f"file:{layout.search_index}?mode=ro", uri=True)
    try:
        words = {row[0] for row in db.execute("SELECT term FROM terms WHERE term GLOB 'zebra*'")}
        shards = [row[0] for row in db.execute("SELECT name FROM shards")]
        tables = ["main"]
        for k, name in enumerate(shards):
            db.execute(f"ATTACH ? AS s{k}", (f"file:{layout.search / name}?mode=ro",))
            tables.append(f"s{k}")
        for k, schema in enumerate(tables):
            db.execute(f"CREATE VIRTUAL TABLE temp.v{k} USING fts5vocab({schema}, fts, row)")
            words |= {r[0] for r in db.execute(f"SELECT term FROM v{k} WHERE term GLOB 'zebra*'")}
        return words
    finally:
        db.close()


@pytest.fixture
def journal(tmp_path: Path) -> Layout:
    """10 days of messages, one word of its own each (`tag`), over small segments;
    the closed ones rendered (as the recorder's indexer does) and indexed."""
    root = tmp_path / "logs"
    start = time.time() - 10 * DAY
    clock = DemoClock(start)
    w = DemoWriter.open(root, segment_bytes=2000, clock=clock)
    for i in range(100):
        clock.now = start + i * DAY / 10
        w.message(clock.now, ("planner", "coder")[i % 2], f"message {i} {tag(i)}")
    w.close()
    layout = Layout(root)
    warmer = RenderWarmer(root, 1000)
    while warmer.step(0.0):
        pass
    indexer = Indexer(root, Roots(None, None, None))
    indexer.catch_up()
    indexer.close()
    assert len(list_segments(layout)) >= 10
    assert {tag(i) for i in range(5)} <= rendered_words(layout)
    assert {tag(i) for i in range(5)} <= indexed_words(layout)
    return layout


def test_prune_and_trash_empty_take_the_renderings_and_indexed_words_of_what_they_delete(
    journal: Layout,
) -> None:
    layout, log = journal, str(journal.root)
    before = {segment_number(p.name) for p in list_segments(layout)}
    done = persist("prune", "--older-than", "5d", "--log-dir", log)
    assert done.returncode == 0, done.stderr
    pruned = before - {segment_number(p.name) for p in list_segments(layout)}
    assert pruned and 1 in pruned
    # a prune makes them unused: dropped (a trash restore puts the segment back without
    # them; the indexer renders it again)
    kept = {int(p.name[4:]) for p in layout.render_cache.glob("seg-*")}
    assert kept and not kept & pruned
    assert tag(0) not in rendered_words(layout)
    assert tag(99) in indexed_words(layout)

    done = persist("trash", "empty", "--older-than", "0", "--log-dir", log)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert not list(layout.trash.glob("*/segments/*"))
    # the emptied messages' words are in neither the search index nor its typo snapshot
    words = indexed_words(layout)
    assert tag(0) not in words and tag(1) not in words
    assert tag(99) in words
    done = persist("search", tag(0), "--log-dir", log)
    assert tag(0) not in done.stdout
    done = persist("doctor", "--json", "--dir", log)
    checks = {f["check"]: f for f in orjson.loads(done.stdout)["findings"]}
    assert "caches.render-orphaned" not in checks, checks


def test_the_typo_list_loses_the_words_a_catch_up_drops_after_a_prune(journal: Layout) -> None:
    """A catch-up between the prune and the empty (any search; the recorder's indexer
    child always runs one) takes the pruned rows and their words out of `fts`: the typo
    suggestions' word list goes with them at once, and `trash empty`, finding nothing
    left to drop, leaves none either. Before 2026-12-07 `terms` kept them until 2 %
    more records came."""
    layout, log = journal, str(journal.root)
    typo = tag(0)[:-1] + "x"  # one edit from zebraaa ... zebraaj
    assert persist("prune", "--older-than", "5d", "--log-dir", log).returncode == 0
    done = persist("search", tag(99), "--log-dir", log)  # its catch-up drops the rows
    assert done.returncode == 0 and tag(99) in done.stdout, done.stderr
    assert tag(0) not in indexed_words(layout)
    with sqlite3.connect(f"file:{layout.search_index}?mode=ro", uri=True) as db:
        counted = db.execute("SELECT docs FROM terms WHERE term = 'message'").fetchone()
        indexed = db.execute("SELECT doc FROM vocab WHERE term = 'message'").fetchone()
    assert counted == indexed  # a word of kept records too: counted as the index has it
    done = persist("trash", "empty", "--older-than", "0", "--log-dir", log)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert tag(0) not in indexed_words(layout) and tag(99) in indexed_words(layout)
    done = persist("search", typo, "--fuzzy", "--log-dir", log)
    assert done.returncode == 0 and tag(0) not in done.stdout + done.stderr, done.stderr


def test_an_open_engine_stops_offering_the_words_trash_empty_took_out(journal: Layout) -> None:
    """An engine that read the typo list before (the TUI keeps one open) reads it again
    once `trash empty` took words out, though no record was indexed since (before
    2026-12-07 it kept its copy until the index held more records)."""
    layout, log = journal, str(journal.root)
    typo = tag(0)[:-1] + "x"
    with SearchEngine(layout.root, Roots(None, None, None)) as engine:
        assert tag(0) in engine.search(typo, fuzzy=True).fuzzy_terms[typo]
        assert persist("prune", "--older-than", "5d", "--log-dir", log).returncode == 0
        done = persist("trash", "empty", "--older-than", "0", "--log-dir", log)
        assert done.returncode == 0 and done.stderr == "", done.stderr
        assert tag(0) not in indexed_words(layout)
        found = engine.search(typo, fuzzy=True, catch_up=False).fuzzy_terms.get(typo, ())
        assert tag(0) not in found, found
        kept = tag(99)[:-1] + "x"  # a word still there is offered as before
        assert tag(99) in engine.search(kept, fuzzy=True, catch_up=False).fuzzy_terms[kept]


def test_trash_empty_removes_renderings_a_prune_left_and_doctor_names_them(
    journal: Layout,
) -> None:
    """A prune before 2026-12-07 left the renderings of what it moved: `trash empty`
    deletes them with the segments, and doctor names any left over (--fix removes
    them, deleted, never kept aside)."""
    layout, log = journal, str(journal.root)
    saved = layout.root.parent / "renderings"
    layout.render_cache.rename(saved)
    assert persist("prune", "--older-than", "5d", "--log-dir", log).returncode == 0
    assert not layout.render_cache.exists()
    saved.rename(layout.render_cache)  # as an older prune left them
    assert tag(0) in rendered_words(layout)

    done = persist("doctor", "--json", "--dir", log)
    checks = {f["check"]: f for f in orjson.loads(done.stdout)["findings"]}
    orphaned = checks["caches.render-orphaned"]
    assert orphaned["severity"] == "warning" and "seg-000001" in orphaned["summary"]
    assert orphaned["auto_fix"] is True

    done = persist("trash", "empty", "--older-than", "0", "--log-dir", log)
    assert done.returncode == 0, done.stderr
    assert tag(0) not in rendered_words(layout)
    assert {int(p.name[4:]) for p in layout.render_cache.glob("seg-*")} == {
        segment_number(p.name) for p in list_segments(layout)[:-1]
    }

    # one left by hand: doctor names it, --fix deletes it (not into recovery/)
    (layout.render_cache / "seg-000001").mkdir()
    (layout.render_cache / "seg-000001" / "000000000.md.r.zst").write_bytes(tag(0).encode())
    done = persist("doctor", "--fix", "--dir", log)
    assert "fixed     caches.render-orphaned: removed" in done.stdout, done.stdout
    assert not (layout.render_cache / "seg-000001").exists()
    assert not [p for p in layout.recovery.rglob("*") if "seg-000001" in str(p)]
    done = persist("doctor", "--json", "--dir", log)
    checks = {f["check"]: f for f in orjson.loads(done.stdout)["findings"]}
    assert "caches.render-orphaned" not in checks


def test_through_a_running_recorder_too(bus: Bus) -> None:
    """The recorder prunes (`persist prune` asks it) and `trash empty` deletes while it
    records: the same renderings and words go."""
    bus.start_broker()
    bus.start_recorder("--segment-mb", "0.01", "--compress", "off", "--search-index", "on")
    with Publisher(bus.front, agent="warm") as pub:
        assert pub.wait_ready(5)
        for i in range(300):
            pub.send("agents.warm", {"text": f"message {tag(i)} " + "lorem " * 10})
    layout, log = Layout(bus.log_dir), str(bus.log_dir)
    wait_for(lambda: len(open_store(bus.log_dir)) >= 301, what="written")

    def closed() -> set[int]:
        return {segment_number(p.name) or 0 for p in list_segments(layout)[:-1]}

    def rendered() -> set[int]:
        return {int(p.parent.name[4:]) for p in layout.render_cache.glob("seg-*/*.md.r.zst")}

    wait_for(lambda: len(closed()) >= 5 and rendered() >= closed(), timeout=60, what="rendered")
    assert tag(0) in rendered_words(layout)
    done = persist("prune", "--max-size", "40K", "--json", "--log-dir", log)
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["via"] == "recorder"
    pruned = {segment_number(s["name"]) for s in orjson.loads(done.stdout)["segments"]}
    assert 1 in pruned
    assert not rendered() & pruned
    assert tag(0) not in rendered_words(layout)
    done = persist("trash", "empty", "--older-than", "0", "--log-dir", log)
    assert done.returncode == 0 and "emptied trash/" in done.stdout, done.stderr
    assert not rendered() & pruned
    assert tag(0) not in indexed_words(layout) and tag(299) in indexed_words(layout)


def test_the_recorders_own_prune_and_empty_take_the_indexed_words_too(
    journal: Layout, bus: Bus
) -> None:
    """Retention by the recorder, its trash emptied in the same pass (a grace of 0): the
    words of what it deletes leave the search index before the files go, with no
    indexer child to drop them in between (`--search-index off`)."""
    layout = journal
    assert bus.log_dir == layout.root
    bus.start_broker()
    bus.start_recorder(
        "--search-index", "off", "--retention-older-than", "5d",
        "--retention-interval", "1s", "--trash-grace", "0s",
    )  # fmt: skip
    wait_for(lambda: 1 not in {segment_number(p.name) for p in list_segments(layout)},
             timeout=30, what="pruned")  # fmt: skip
    wait_for(lambda: not list(layout.trash.glob("*/segments/*")), timeout=30, what="emptied")
    words = indexed_words(layout)
    assert tag(0) not in words and tag(1) not in words
    assert tag(99) in words
    assert "search index" not in (layout.root / "recorder.log").read_text()


def test_words_in_a_shard_of_the_index_are_named_with_the_rebuild_that_drops_them(
    journal: Layout,
) -> None:
    """A rebuild on several cores leaves the words of its later runs in shard files,
    never rewritten: `trash empty` cannot take those out, and says so with the command
    that does (a rebuild)."""
    layout, log = journal, str(journal.root)
    done = persist("reindex", "--workers", "2", "--log-dir", log)
    assert done.returncode == 0, done.stderr
    assert list(layout.search.glob("shard-*")), "the rebuild made no shard"
    # the shard holds the later half: prune into it
    assert persist("prune", "--older-than", "2d", "--log-dir", log).returncode == 0
    assert tag(70) in indexed_words(layout)
    done = persist("trash", "empty", "--older-than", "0", "--log-dir", log)
    assert done.returncode == 0, done.stderr
    warning = [line for line in done.stderr.splitlines() if "warning:" in line]
    assert len(warning) == 1 and "still holds words of the emptied messages" in warning[0]
    assert f"`persist reindex --log-dir {log}`" in warning[0], warning
    assert persist("reindex", "--log-dir", log).returncode == 0
    words = indexed_words(layout)
    assert tag(0) not in words and tag(70) not in words and tag(99) in words


def lagging_journal(root: Path) -> Layout:
    """A journal whose index fell behind, as the recorder's indexer does in a burst: the
    first 3 messages of segment 1 (one holding `zanzibarquux`) indexed, then 30 more
    from that day and 40 from 9 days later (`lorem ipsum` each) written and not indexed.
    Segment 1 is then older than 5 days, and it is all the index holds."""
    start = time.time() - 10 * DAY
    clock = DemoClock(start)
    w = DemoWriter.open(root, segment_bytes=2000, clock=clock)
    for i in range(3):
        w.message(start + i, "planner", f"message {i} zanzibarquux" if i == 1 else f"message {i}")
    w.journal.flush()
    indexer = Indexer(root, Roots(None, None, None))
    indexer.catch_up()
    indexer.close()
    for i in range(3, 33):
        w.message(start + i, "coder", f"message {i} hello")
    later = start + 9 * DAY
    for i in range(33, 73):
        clock.now = later + i
        w.message(later + i, "coder", f"message {i} lorem ipsum")
    w.close()
    layout = Layout(root)
    with sqlite3.connect(f"file:{layout.search_index}?mode=ro", uri=True) as db:
        indexed = db.execute("SELECT count(*), min(segment), max(segment) FROM docs").fetchone()
    assert indexed[0] < 10 and indexed[1:] == (1, 1), indexed  # the journal's first record too
    assert len(list_segments(layout)) >= 4
    return layout


def test_a_trash_empty_takes_out_the_words_of_a_segment_indexed_only_in_part(
    tmp_path: Path,
) -> None:
    """The index was behind when retention pruned a segment (the normal case after a
    burst): the words of the rows it did index leave it with them. Before 2026-12-07
    they stayed (only a segment whose every record was indexed read back "as indexed"),
    and once the ids were given out again a search found a deleted message's word on an
    unrelated later message."""
    layout = lagging_journal(tmp_path / "logs")
    log = str(layout.root)
    assert persist("prune", "--older-than", "5d", "--log-dir", log).returncode == 0
    assert not (layout.segments / "seg-000001.jsonl").exists()
    done = persist("trash", "empty", "--older-than", "0", "--log-dir", log)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "zanzibarquux" not in indexed_words_like(layout, "zanzibar*")
    done = persist("search", "zanzibarquux", "--log-dir", log)
    assert done.stdout == "" and "exact match" not in done.stderr, done.stdout + done.stderr
    done = persist("search", "zanzibarquix", "--fuzzy", "--log-dir", log)
    assert "zanzibarquux" not in done.stdout + done.stderr, done.stdout


def test_words_left_behind_never_attach_to_a_later_message(tmp_path: Path) -> None:
    """Words the index could not take out (the pruned file was gone from the trash
    before any catch-up read it) stay in its full-text table, and a search never finds
    them on a message indexed later: a document's id is never given out twice, even
    once every row was dropped. Before 2026-12-07 ids started again after the highest
    left, and such a word matched whichever new message took its old id."""
    layout = lagging_journal(tmp_path / "logs")
    log = str(layout.root)
    assert persist("prune", "--older-than", "5d", "--log-dir", log).returncode == 0
    for path in layout.trash.glob("*/segments/*"):
        path.unlink()  # nothing left to read its words back from
    done = persist("search", "lorem", "--log-dir", log)  # drops the rows, indexes the rest
    assert done.returncode == 0 and "lorem" in done.stdout, done.stderr
    assert "zanzibarquux" in indexed_words_like(layout, "zanzibar*")  # left behind
    done = persist("search", "zanzibarquux", "--log-dir", log)
    assert done.stdout == "" and "exact match" not in done.stderr, done.stdout + done.stderr


def indexed_words_like(layout: Layout, pattern: str) -> set[str]:
    """The words of the index's own full-text table that match the GLOB `pattern`."""
    db = sqlite3.connect(f"file:{layout.search_index}?mode=ro", uri=True)
    try:
        db.execute("CREATE VIRTUAL TABLE temp.v USING fts5vocab(main, fts, row)")
        return {r[0] for r in db.execute("SELECT term FROM v WHERE term GLOB ?", (pattern,))}
    finally:
        db.close()


def bundle_words(layout: Layout) -> set[str]:
    """The `zebra` words any file under restore/ holds (bundles, work folders)."""
    found: set[str] = set()
    for path in layout.restore.rglob("*"):
        if path.is_file():
            found |= set(re.findall(r"zebra[a-j]+", path.read_text(errors="replace")))
    return found


@pytest.fixture
def checkpointed(tmp_path: Path) -> tuple[Layout, str]:
    """10 days of messages with a word of their own each, over small segments, and a
    checkpoint at the end; returns the layout and the checkpoint's id."""
    root = tmp_path / "logs"
    start = time.time() - 10 * DAY
    clock = DemoClock(start)
    w = DemoWriter.open(root, segment_bytes=2000, clock=clock)
    for i in range(100):
        clock.now = start + i * DAY / 10
        w.message(clock.now, ("planner", "coder")[i % 2], f"message {i} {tag(i)}")
    cp = w.checkpoint(clock.now + 1, "end", "manual")
    w.close()
    return Layout(root), cp.id


def test_trash_empty_removes_the_restore_bundles_holding_what_it_deletes(
    checkpointed: tuple[Layout, str],
) -> None:
    """A bundle whose range holds messages of the segments `trash empty` deletes is
    their last copy: it goes with them (the line says so); one of later messages only
    stays. A prune alone keeps them (`trash restore` undoes it wholly)."""
    layout, cp = checkpointed
    log = str(layout.root)
    for scope in (["--full"], ["--last", "10"]):
        done = persist("restore", cp, *scope, "--log-dir", log)
        assert done.returncode == 0, done.stderr
    assert {tag(0), tag(99)} <= bundle_words(layout)
    assert persist("prune", "--older-than", "5d", "--log-dir", log).returncode == 0
    assert (layout.restore / f"{cp}.full").is_dir()  # kept: the trash holds the messages
    # an agent still running was handed it: the deletion asked for wins, and says so
    register_agent(layout, "coder", None, False, bundle=layout.restore / f"{cp}.full")

    done = persist("trash", "empty", "--older-than", "0", "--log-dir", log)
    assert done.returncode == 0, done.stderr
    assert (
        f"removed restore bundle {cp}.full: it held messages deleted now, though "
        f"coder (pid {os.getpid()}) was handed it and still runs" in done.stdout
    ), done.stdout
    assert sorted(p.name for p in layout.restore.iterdir()) == [f"{cp}.last-10"]
    words = bundle_words(layout)
    assert tag(0) not in words and tag(49) not in words and tag(99) in words
    done = persist("doctor", "--json", "--dir", log)
    checks = {f["check"]: f for f in orjson.loads(done.stdout)["findings"]}
    assert "caches.bundle-deleted" not in checks, checks
    assert checks["caches.bundles"]["severity"] == "ok", checks["caches.bundles"]


def test_doctor_names_a_bundle_holding_deleted_messages_and_fix_removes_it(
    checkpointed: tuple[Layout, str],
) -> None:
    """A bundle an older version's `trash empty` left (or one copied back by hand):
    doctor names it as the last copy of deleted messages, --fix removes it (never into
    recovery/), and `persist restore --list` says so too."""
    layout, cp = checkpointed
    log = str(layout.root)
    assert persist("restore", cp, "--full", "--log-dir", log).returncode == 0
    saved = layout.root.parent / "saved-bundle"
    (layout.restore / f"{cp}.full").rename(saved)
    assert persist("prune", "--older-than", "5d", "--log-dir", log).returncode == 0
    assert persist("trash", "empty", "--older-than", "0", "--log-dir", log).returncode == 0
    saved.rename(layout.restore / f"{cp}.full")  # as an older version left it

    listed = persist("restore", "--list", "--log-dir", log)
    assert listed.returncode == 0, listed.stderr
    assert f"{cp}.full" in listed.stdout and "holds deleted messages" in listed.stdout
    # an agent still running was handed it: --clean keeps it, doctor names both
    register_agent(layout, "coder", None, False, bundle=layout.restore / f"{cp}.full")
    listed = persist("restore", "--clean", "--log-dir", log)
    assert listed.stdout.startswith("no restore bundle to remove"), listed.stdout
    done = persist("doctor", "--json", "--dir", log)
    checks = {f["check"]: f for f in orjson.loads(done.stdout)["findings"]}
    found = checks["caches.bundle-deleted"]
    assert found["severity"] == "warning" and f"{cp}.full" in found["summary"], found
    assert f"handed to coder (pid {os.getpid()})" in found["summary"], found
    done = persist("doctor", "--fix", "--dir", log)
    assert "fixed     caches.bundle-deleted: removed 1 restore bundle" in done.stdout, done.stdout
    assert f"though coder (pid {os.getpid()}) was handed {cp}.full and still" in done.stdout
    assert not (layout.restore / f"{cp}.full").exists()
    assert tag(0) not in bundle_words(layout)
    assert not [p for p in layout.recovery.rglob("*") if cp in p.name]


def test_a_bundle_holding_segments_forgotten_by_hand_is_kept_by_restores_until_clean(
    checkpointed: tuple[Layout, str],
) -> None:
    """Segments lost (removed by hand) and written down with `prune --forget-missing`:
    a bundle written before holds the last copy of their messages. `--forget-missing`
    names it, later restores leave it (before 2026-12-08 the next one removed it without
    a word), doctor names it, and `persist restore --clean` removes it, saying why."""
    layout, cp = checkpointed
    log = str(layout.root)
    done = persist("restore", cp, "--full", "--log-dir", log)
    assert done.returncode == 0, done.stderr
    list_segments(layout)[0].unlink()  # lost by hand
    done = persist("prune", "--forget-missing", "--log-dir", log)
    assert done.returncode == 0, done.stderr
    assert f"{cp}.full" in done.stdout, done.stdout  # still holds those messages

    done = persist("restore", cp, "--last", "10", "--log-dir", log)
    assert done.returncode == 0, done.stderr
    assert (layout.restore / f"{cp}.full").is_dir()  # the last copy stays
    assert tag(0) in bundle_words(layout)
    done = persist("doctor", "--json", "--dir", log)
    checks = {f["check"]: f for f in orjson.loads(done.stdout)["findings"]}
    found = checks["caches.bundle-deleted"]
    assert found["severity"] == "warning" and f"{cp}.full" in found["summary"], found

    done = persist("restore", "--clean", "--log-dir", log)
    assert done.returncode == 0, done.stderr
    assert f"removed restore bundle {cp}.full (holds the last copy of segments removed by hand" in (
        done.stdout
    ), done.stdout
    assert sorted(p.name for p in layout.restore.iterdir()) == [f"{cp}.last-10"]


def test_trash_empty_leaves_a_bundle_of_segments_forgotten_by_hand_alone(
    checkpointed: tuple[Layout, str],
) -> None:
    """`trash empty` removes the bundles holding what it deletes, not one holding only
    segments written off with `prune --forget-missing` (before 2026-12-08 it removed
    that too, saying "it held messages deleted now" of messages it never deleted)."""
    layout, cp = checkpointed
    log = str(layout.root)
    done = persist("restore", cp, "--last", "30", "--log-dir", log)
    assert done.returncode == 0, done.stderr
    manifest = orjson.loads((layout.restore / f"{cp}.last-30" / "manifest.json").read_bytes())
    first = manifest["range"]["start"]["segment"]
    assert first != list_segments(layout)[-1].name  # a closed one
    next(p for p in list_segments(layout) if p.name.startswith(first.split(".")[0])).unlink()
    assert persist("prune", "--forget-missing", "--log-dir", log).returncode == 0
    assert persist("prune", "--older-than", "5d", "--log-dir", log).returncode == 0
    done = persist("trash", "empty", "--older-than", "0", "--log-dir", log)
    assert done.returncode == 0, done.stderr
    assert "removed restore bundle" not in done.stdout, done.stdout
    assert (layout.restore / f"{cp}.last-30").is_dir()
