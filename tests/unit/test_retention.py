"""Retention on real journals: pins, what a pin keeps, dry run = real run, the trash
(bit-identical restore, grace), age and size policies, readers after a prune, bad options."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from recorder.cli.main import main
from recorder.export.restore import build_bundle
from recorder.export.scope import DEFAULT_LAST, BundleScope
from recorder.search.engine import SearchEngine
from recorder.search.indexer import Indexer
from recorder.sources.discover import Roots
from recorder.store.checkpoints import Checkpoint, list_checkpoints, verify_checkpoint
from recorder.store.layout import Layout, list_segments
from recorder.store.pins import PinsUnreadable, read_pins, set_pin
from recorder.store.pruned import read_pruned
from recorder.store.reader import Store
from recorder.store.retention import PIN_KEEPS_LAST, needed_segments, plan_prune
from recorder.store.retention_config import Policy
from tests.process.test_stalls import fill, small_disk
from tests.support import PYTHON, journal_records
from tests.unit.test_daemon import Clock, feed, make

DAY = 86400.0
DAYS = 12
PER_DAY = 300


def build(tmp_path: Path) -> tuple[Layout, list[Checkpoint]]:
    """A journal of 12 days (the last one ending a few hours ago), 300 messages a day in segments of
    16 KiB (about 5 a day), a checkpoint at the end of each day."""
    clock = Clock(time.time() - DAYS * DAY)
    rec = make(tmp_path, clock, segment_bytes=16 * 1024, checkpoint_interval=0)
    cps = []
    n = 0
    for day in range(DAYS):
        for _ in range(PER_DAY // 50):
            batch = []
            for _ in range(50):
                n += 1
                body = {"text": f"day {day} message {n} zebra{n}", "sender": "coder"}
                batch.append([b"agents.coder", orjson.dumps(body)])
            feed(rec, clock, *batch)
            clock.now += 60
        cp = rec.checkpoint(f"day {day}", "manual", clock.now, force=True)
        assert cp is not None
        cps.append(cp)
        clock.now += DAY - PER_DAY // 50 * 60
    rec.close()
    return rec.layout, cps


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    layout, cps = build(tmp_path_factory.mktemp("retention"))
    return layout.root, [cp.id for cp in cps]


@pytest.fixture
def journal(tmp_path: Path, built: tuple[Path, list[str]]) -> tuple[Layout, list[Checkpoint]]:
    """A fresh copy of the 12-day journal (built once per module)."""
    root = tmp_path / "logs"
    shutil.copytree(built[0], root, symlinks=True)
    layout = Layout(root)
    by_id = {cp.id: cp for cp in list_checkpoints(layout)}
    return layout, [by_id[i] for i in built[1]]


def test_dry_run_lists_exactly_what_the_real_run_removes_and_pins_keep_their_range(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str]
) -> None:
    layout, cps = journal
    log = str(layout.root)
    pinned = cps[7]
    code, out, _ = run(capsys, "pin", pinned.id, "--log-dir", log)
    assert code == 0 and out.strip() == f"pinned {pinned.id}"
    code, out, _ = run(capsys, "checkpoints", "--log-dir", log)
    assert code == 0
    assert [line.startswith("pinned") for line in out.splitlines()].count(True) == 1
    assert f"pinned  {pinned.id}" in out

    segments_before = {p.name for p in list_segments(layout)}
    checkpoints_before = {cp.id for cp in list_checkpoints(layout)}
    with Store(layout.root) as store:
        store.refresh()
        needed = {f"seg-{n:06d}.jsonl" for n in needed_segments(store, pinned)}
    code, out, _ = run(
        capsys, "prune", "--older-than", "3d", "--dry-run", "--json", "--log-dir", log
    )
    assert code == 0
    dry = orjson.loads(out)
    assert dry["dry_run"] is True and dry["trash"] is None
    assert list_segments(layout) and {p.name for p in list_segments(layout)} == segments_before
    assert not layout.trash.exists()

    code, out, _ = run(capsys, "prune", "--older-than", "3d", "--json", "--log-dir", log)
    assert code == 0
    real = orjson.loads(out)
    for key in ("dry_run", "via", "trash"):
        dry.pop(key), real.pop(key)
    assert dry == real  # exactly the same plan
    removed = segments_before - {p.name for p in list_segments(layout)}
    assert removed == {s["name"] for s in real["segments"]}
    assert len(removed) > 20
    assert checkpoints_before - {cp.id for cp in list_checkpoints(layout)} == set(
        real["checkpoints"]
    )
    assert real["restated"]  # the first kept checkpoint lost its base and was re-stated
    # the pinned checkpoint and every segment of its default bundle are still there
    assert pinned.id in {cp.id for cp in list_checkpoints(layout)}
    assert needed <= {p.name for p in list_segments(layout)}
    assert any(k["why"] == f"needed by pinned checkpoint {pinned.id}" for k in real["kept"])
    bundle = build_bundle(layout.root, pinned.id, durable=False)
    assert bundle.ok and bundle.manifest["messages"] == PIN_KEEPS_LAST
    # every checkpoint left verifies; pruned segments are named as such, not as damage
    for cp in list_checkpoints(layout):
        v = verify_checkpoint(layout, cp)
        assert v.ok, (cp.id, v.problems)
    latest = verify_checkpoint(layout, list_checkpoints(layout)[0])
    assert latest.pruned and "pruned on" in latest.summary and "in trash" in latest.summary
    events = [r for r in journal_records(layout.root) if r.get("event") == "prune"]
    assert len(events) == 1 and events[0]["segments"] == [s["name"] for s in real["segments"]]
    assert events[0]["offline"] is True and events[0]["bytes"] == real["bytes"]
    assert events[0]["detail"].startswith(f"pruned {len(removed)} segments (")


def test_trash_restore_puts_back_the_same_bytes_and_digests_verify(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str]
) -> None:
    layout, _ = journal
    log = str(layout.root)
    segs, cps = digests(layout.segments), digests(layout.checkpoints)
    code, out, _ = run(capsys, "prune", "--max-size", "100K", "--json", "--log-dir", log)
    assert code == 0
    plan = orjson.loads(out)
    assert plan["journal_bytes_after"] <= 100 * 1024 < plan["journal_bytes"]
    assert digests(layout.checkpoints) != cps  # some went, and re-stated ones changed
    code, out, _ = run(capsys, "trash", "list", "--log-dir", log)
    assert code == 0 and plan["trash"] in out
    # the entry after an option (argparse alone gave it no place: "unrecognized")
    code, out, _ = run(capsys, "trash", "restore", "--log-dir", log, plan["trash"][:12])
    assert code == 0, out
    after = digests(layout.segments)
    last = list_segments(layout)[-1].name  # the active segment got the journal's events
    assert {k: v for k, v in after.items() if k != last} == {
        k: v for k, v in segs.items() if k != last
    }
    assert digests(layout.checkpoints) == cps
    assert read_pruned(layout) == {} and list(layout.trash.iterdir()) == []
    for cp in list_checkpoints(layout):
        v = verify_checkpoint(layout, cp)
        assert v.ok and not v.pruned
    events = [r["event"] for r in journal_records(layout.root) if r["kind"] == "event"]
    assert events[-2:] == ["prune", "trash-restore"]


@pytest.mark.parametrize("caches", ["missing", "a-file"])
def test_trash_restore_without_the_caches_folder(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str], caches: str
) -> None:
    """A restored backup has no `metadata_index/` (derived): the restore stopped after the
    first segment with a traceback-like line and left the rest in the trash."""
    layout, _ = journal
    log = str(layout.root)
    segs = digests(layout.segments)
    code, out, _ = run(capsys, "prune", "--max-size", "100K", "--json", "--log-dir", log)
    assert code == 0
    shutil.rmtree(layout.index)
    if caches == "a-file":
        layout.index.write_text("not a folder")
    code, out, err = run(capsys, "trash", "restore", orjson.loads(out)["trash"], "--log-dir", log)
    assert code == 0, err
    last = list_segments(layout)[-1].name
    after = digests(layout.segments)
    assert {k for k in after if k != last} == {k for k in segs if k != last}
    assert list(layout.trash.iterdir()) == []


def test_a_trash_restore_that_fails_midway_puts_back_what_it_moved(
    journal: tuple[Layout, list[Checkpoint]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    layout, _ = journal
    log = str(layout.root)
    code, out, _ = run(capsys, "prune", "--max-size", "100K", "--json", "--log-dir", log)
    entry = orjson.loads(out)["trash"]
    before = sorted(p.name for p in layout.segments.iterdir())
    in_trash = sorted(p.relative_to(layout.trash) for p in layout.trash.rglob("*") if p.is_file())
    real_rename = Path.rename
    calls = {"n": 0}

    def failing(self: Path, target: Any) -> Path:
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(28, "No space left on device")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", failing)
    code, _out, err = run(capsys, "trash", "restore", entry, "--log-dir", log)
    monkeypatch.undo()
    assert code == 1 and "nothing restored" in err and "No space left" in err, err
    assert sorted(p.name for p in layout.segments.iterdir()) == before
    now = sorted(p.relative_to(layout.trash) for p in layout.trash.rglob("*") if p.is_file())
    assert now == in_trash
    code, _out, err = run(capsys, "trash", "restore", entry, "--log-dir", log)
    assert code == 0, err


def test_a_bundle_says_which_records_pruning_took_from_its_range(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str]
) -> None:
    """A pin keeps its segments and the newest checkpoint keeps its own, so a prune by
    size takes those between: a bundle reaching across them called itself "the last
    1000 messages" or "the whole conversation", complete, with no word of the hole."""
    layout, cps = journal
    log = str(layout.root)
    assert run(capsys, "pin", cps[DAYS - 5].id, "--log-dir", log)[0] == 0
    code, out, _ = run(capsys, "prune", "--max-size", "1K", "--json", "--log-dir", log)
    assert code == 0
    pruned = [s["name"] for s in orjson.loads(out)["segments"]]
    assert pruned
    code, out, err = run(capsys, "restore", "latest", "--full", "--json", "--log-dir", log)
    assert code == 0, err
    manifest = orjson.loads(out)
    assert manifest["range"]["complete"] is False
    notes = manifest["integrity"]["caveats"]
    assert any("the conversation began earlier" in n for n in notes), notes
    assert any("are not in this range" in n and "pruned on" in n for n in notes), notes
    assert manifest["integrity"]["pruned"] == [n for n in notes if "sequence numbers" not in n]
    assert manifest["integrity"]["ok"]  # nothing is damaged: pruned on purpose
    code, out, _ = run(capsys, "restore", "latest", "--full", "--log-dir", log)
    assert "the whole conversation the journal still holds" in out
    assert "note: " in out and "are not in this range" in out
    transcript = (Path(manifest["dir"]) / "transcript.md").read_text()
    assert "are not in this range" in transcript
    code, out, _ = run(capsys, "restore", "latest", "--json", "--log-dir", log)  # last 1000
    notes = orjson.loads(out)["integrity"]["caveats"]
    assert any("are not in this range" in n for n in notes), notes


def test_a_prune_around_a_kept_segment_names_the_sequence_numbers_it_took_run_by_run(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str]
) -> None:
    """A pinned checkpoint keeps its segments, so a prune by size takes segments on both
    sides of them: before 2026-12-07 its summary line, `--json` plan and journal record
    gave one range, from the first taken to the last, the kept records included."""
    layout, cps = journal
    log = str(layout.root)
    assert run(capsys, "pin", cps[DAYS - 5].id, "--log-dir", log)[0] == 0
    code, out, _ = run(capsys, "prune", "--max-size", "1K", "--json", "--log-dir", log)
    assert code == 0
    plan = orjson.loads(out)
    ranges = plan["seq_ranges"]
    assert len(ranges) == 2, plan["segments"]
    with Store(layout.root) as kept:
        kept.refresh()
        kept_seqs = {r.seq for r in kept.records()} - {None}
    taken = {n for a, b in ranges for n in range(a, b + 1)}
    assert not taken & kept_seqs
    assert ranges[0][0] == plan["from_seq"] and ranges[-1][1] == plan["to_seq"]
    assert set(range(plan["from_seq"], plan["to_seq"] + 1)) & kept_seqs  # what one range said
    (event,) = [r for r in journal_records(layout.root) if r.get("event") == "prune"]
    assert event["seq_ranges"] == ranges
    words = " and ".join(f"{a} to {b}" for a, b in ranges)
    assert f"seq {words})" in event["detail"], event["detail"]


def test_doctor_names_a_trash_entry_that_restore_would_refuse(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str]
) -> None:
    """Doctor never looked into trash/: an entry missing a segment passed as ok, and
    `persist trash restore` refused it only on the day it was needed."""
    from recorder.doctor.run import diagnose

    layout, _ = journal
    log = str(layout.root)
    code, out, _ = run(capsys, "prune", "--max-size", "100K", "--json", "--log-dir", log)
    entry = orjson.loads(out)["trash"]
    assert not [f for f in diagnose(layout.root).findings if f.check == "journal.trash"]
    victim = sorted((layout.trash / entry / "segments").iterdir())[0]
    victim.unlink()
    [found] = [f for f in diagnose(layout.root).findings if f.check == "journal.trash"]
    assert victim.name in found.summary and "would refuse this entry" in found.summary
    code, _out, err = run(capsys, "trash", "restore", entry, "--log-dir", log)
    assert code == 1 and victim.name in err


def test_empty_respects_the_grace_period(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str]
) -> None:
    layout, _ = journal
    log = str(layout.root)
    assert run(capsys, "prune", "--older-than", "6d", "--log-dir", log)[0] == 0
    code, out, _ = run(capsys, "trash", "empty", "--log-dir", log)
    assert code == 0 and "nothing in the trash older than 14 days" in out
    assert len(list(layout.trash.iterdir())) == 1
    code, out, _ = run(capsys, "trash", "empty", "--older-than", "0", "--json", "--log-dir", log)
    assert code == 0 and len(orjson.loads(out)["emptied"]) == 1
    assert list(layout.trash.iterdir()) == []
    notes = read_pruned(layout)
    assert notes and all(n.emptied is not None for n in notes.values())
    v = verify_checkpoint(layout, list_checkpoints(layout)[0])
    assert v.ok and "trash emptied on" in v.summary
    assert [r["event"] for r in journal_records(layout.root) if r["kind"] == "event"][-1] == (
        "trash-empty"
    )


def test_trash_empty_takes_its_grace_from_retention_toml(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str]
) -> None:
    """`persist trash empty` without `--older-than` empties by retention.toml's
    `trash_grace`, as the recorder does (`--older-than` replaces it); a bad value is
    one line naming the key, exit 2, and empties nothing."""
    layout, _ = journal
    log = str(layout.root)
    assert run(capsys, "prune", "--older-than", "6d", "--log-dir", log)[0] == 0
    toml = layout.root / "retention.toml"
    toml.write_text('[retention]\ntrash_grace = "1d"\n')
    code, out, _ = run(capsys, "trash", "empty", "--older-than", "14d", "--log-dir", log)
    assert code == 0 and "nothing in the trash older than 14 days" in out
    code, out, _ = run(capsys, "trash", "empty", "--log-dir", log)
    assert code == 0 and "nothing in the trash older than 1 days" in out
    [entry] = list(layout.trash.iterdir())
    toml.write_text("[retention]\ntrash_grace = 5\n")
    code, out, err = run(capsys, "trash", "empty", "--log-dir", log)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "retention.trash_grace" in err and "Traceback" not in err
    assert entry.exists()
    toml.write_text('[retention]\ntrash_grace = "0s"\n')
    code, out, _ = run(capsys, "trash", "empty", "--log-dir", log)
    assert code == 0 and f"emptied trash/{entry.name}" in out
    assert list(layout.trash.iterdir()) == []


def test_a_named_pipe_at_retention_toml_is_named_not_waited_on(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str]
) -> None:
    """retention.toml is read by prune, trash empty and the recorder's start: a named
    pipe there is one line naming it (exit 2), never a wait for a writer."""
    layout, _ = journal
    os.mkfifo(layout.root / "retention.toml")
    for argv in (["prune", "--dry-run"], ["trash", "empty"]):
        code, out, err = run(capsys, *argv, "--log-dir", str(layout.root))
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
        assert "retention.toml" in err and "named pipe" in err


def test_age_and_size_policies_take_the_oldest_closed_segments_only(
    journal: tuple[Layout, list[Checkpoint]],
) -> None:
    layout, _ = journal
    now = time.time()
    by_age = plan_prune(layout, Policy(older_than=4.5 * DAY), now)
    assert by_age.segments
    assert all(s.last_ts is not None and s.last_ts < now - 4.5 * DAY for s in by_age.segments)
    kept = {s.name for s in by_age.segments}
    with Store(layout.root) as store:
        store.refresh()
        for seg in store.segments:
            last = store.record(store.index_of(seg.number + 1, 0) - 1)
            old = last.ts is not None and last.ts < now - 4.5 * DAY
            assert (seg.path.name in kept) == old or seg is store.segments[-1]
    total = by_age.journal_bytes
    by_size = plan_prune(layout, Policy(max_size=total // 3), now)
    names = [p.name for p in list_segments(layout)]
    assert [s.name for s in by_size.segments] == names[: len(by_size.segments)]  # oldest first
    assert total - by_size.bytes <= total // 3 < total - by_size.bytes + by_size.segments[-1].bytes
    both = plan_prune(layout, Policy(older_than=4.5 * DAY, max_size=total // 3), now)
    assert {s.name for s in both.segments} == kept | {s.name for s in by_size.segments}
    tiny = plan_prune(layout, Policy(max_size=1), now)  # over by the active segment
    assert tiny.over_by > 0 and tiny.kept[-1] == (names[-1], "the active segment")
    everything = plan_prune(layout, Policy(older_than=0.0), now)
    assert names[-1] not in {s.name for s in everything.segments}  # never the active one
    assert ("the active segment" in why for _, why in everything.kept)


@pytest.mark.parametrize("workers", [1, 4])
def test_readers_cope_with_a_journal_whose_first_segments_are_gone(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str], workers: int
) -> None:
    """With one process, or with shards (4 processes: the second run of segments, in
    a shard, is pruned too; its words stay there and match no row)."""
    layout, cps = journal
    indexer = Indexer(layout.root, Roots(None, None, None))
    indexer.workers = workers
    indexer.catch_up(rebuild=True)
    assert len(indexer.index.shards()) == workers - 1
    assert run(capsys, "prune", "--older-than", "6d", "--log-dir", str(layout.root))[0] == 0
    # before any catch-up, the doctor's read-only look sees rows to drop, not a rebuild
    from recorder.search.indexer import index_health

    health = index_health(layout.root)
    assert health.present and health.problem is None, health.problem
    indexer.workers = None
    result = indexer.catch_up()
    assert result.rebuilt is None  # pruned segments' rows dropped, no rebuild
    pruned = {int(n[4:10]) for n in read_pruned(layout)}
    rows = indexer.index.query("SELECT DISTINCT segment FROM docs")
    assert pruned and not pruned & {r[0] for r in rows}
    assert index_health(layout.root).docs == indexer.index.indexed_rows() < health.docs
    # the words of pruned records in the index's own table left it as well
    gone = indexer.index.query("SELECT count(*) FROM fts WHERE fts MATCH 'zebra5'")[0][0]
    assert gone == 0
    for schema, _offset in indexer.index.match_sources():
        indexer.index.query(f"INSERT INTO {schema}.fts (fts) VALUES ('integrity-check')")
    indexer.close()
    with SearchEngine(layout.root, Roots(None, None, None)) as engine:
        found = [engine.search(w, count=True).total for w in ("zebra5", "zebra1201", "zebra3600")]
    assert found == [0, 0, 1]
    with Store(layout.root) as store:
        store.refresh()
        first = next(r for r in store.records() if r.seq is not None)
        assert first.seq is not None and first.seq > 1
    # a recorder starting on it counts on from its state: no jump, no new loss
    clock = Clock()
    rec = make(layout.root.parent, clock, segment_bytes=16 * 1024)
    assert rec.journal.messages == DAYS * PER_DAY
    assert rec.counters.gaps == 1 and rec.counters.missed == 0  # its own downtime only
    # its checkpoints count every message since the first (pruned ones too) and name
    # only the segments left: the whole of what is left restores without "damage"
    fresh = rec.checkpoint("after the prune", "manual", clock.now, force=True)
    assert fresh is not None and fresh.messages == DAYS * PER_DAY
    rec.close()
    whole = build_bundle(layout.root, fresh.id, scope=BundleScope.whole(), durable=False)
    integrity = whole.manifest["integrity"]
    assert not integrity["damaged"] and not whole.manifest["range"]["complete"], integrity
    assert not [p for p in integrity["problems"] if "counts" in p], integrity  # its gap only
    gaps = [r for r in journal_records(layout.root) if r["kind"] == "gap"]
    assert [g["cause"] for g in gaps] == ["recorder-down"]
    # the offline prune event came after the stop: the downtime starts at the stop
    assert gaps[0]["from_ts"] < next(
        r["ts"] for r in journal_records(layout.root) if r.get("event") == "prune"
    )
    # an unpinned checkpoint whose last 1000 messages reach into pruned segments
    # restores what is left, without calling it damage
    survivor = [cp for cp in list_checkpoints(layout) if cp.id in {c.id for c in cps}][-1]
    bundle = build_bundle(layout.root, survivor.id, durable=False)
    assert bundle.ok, bundle.manifest["integrity"]


def test_pins_and_their_file(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str]
) -> None:
    layout, cps = journal
    log = str(layout.root)
    assert set_pin(layout, cps[2].id, True) and not set_pin(layout, cps[2].id, True)
    assert set(read_pins(layout)) == {cps[2].id}
    assert layout.pins.stat().st_mode & 0o777 == 0o600
    assert set_pin(layout, cps[2].id, False) and read_pins(layout) == {}
    assert PIN_KEEPS_LAST == DEFAULT_LAST
    # by label through the CLI, shown in the list; a pin whose checkpoint was deleted
    # by hand is shown as such and can still be removed
    assert run(capsys, "pin", "day 4", "--log-dir", log)[1].strip() == f"pinned {cps[4].id}"
    code, out, _ = run(capsys, "pin", "day 4", "--log-dir", log)
    assert code == 0 and out.strip() == f"{cps[4].id} was already pinned"
    listed = orjson.loads(run(capsys, "checkpoints", "--json", "--log-dir", log)[1])
    marks = {c["id"]: c["pinned"] is not None for c in listed["checkpoints"]}
    # (no shutdown checkpoint: the last day's was taken right before the stop)
    assert [k for k, v in marks.items() if v] == [cps[4].id] and len(marks) == DAYS
    assert cps[4].path is not None
    cps[4].path.unlink()
    listed = orjson.loads(run(capsys, "checkpoints", "--json", "--log-dir", log)[1])
    assert listed["pins_without_checkpoint"] == [cps[4].id]
    assert "checkpoint no longer exists" in run(capsys, "checkpoints", "--log-dir", log)[1]
    code, out, _ = run(capsys, "unpin", cps[4].id, "--log-dir", log)
    assert code == 0 and out.strip() == f"unpinned {cps[4].id}" and read_pins(layout) == {}


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(b"garbage{"),
        lambda p: p.write_bytes(b'{"v": 1, "pins": []}'),
        lambda p: p.write_bytes(b'{"v": 1, "pins": {"x": {"pinned": "soon"}}}'),
        lambda p: (p.unlink(), p.mkdir()),
    ],
    ids=["not-json", "wrong-shape", "wrong-type", "a-folder"],
)
def test_unreadable_pins_stop_everything_that_could_lose_a_pin(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str], damage: Any
) -> None:
    """A pins file that cannot be read used to read as "no pins": prune then deleted
    the pinned checkpoint and `persist pin` wrote a file with the new pin alone."""
    from recorder.doctor.run import diagnose

    layout, cps = journal
    log = str(layout.root)
    assert set_pin(layout, cps[1].id, True)
    damage(layout.pins)
    before = sorted(p.name for p in layout.segments.iterdir())
    for argv in (
        ["prune", "--max-size", "1K"],
        ["pin", cps[3].id],
        ["unpin", cps[1].id],
        ["checkpoints"],
    ):
        code, _out, err = run(capsys, *argv, "--log-dir", log)
        assert code == 1 and "which checkpoints are pinned is unknown" in err, (argv, err)
    assert sorted(p.name for p in layout.segments.iterdir()) == before  # nothing pruned
    assert {cp.id for cp in list_checkpoints(layout)} == {cp.id for cp in cps}
    with pytest.raises(PinsUnreadable):
        plan_prune(layout, Policy(max_size=1024))
    [finding] = [f for f in diagnose(layout.root).findings if f.check == "checkpoints.pins"]
    assert finding.severity.name == "PROBLEM" and "mv " in (finding.fix or "")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["prune"], "nothing to prune by"),
        (["prune", "--older-than", "9x"], "--older-than '9x' is not a duration"),
        (["prune", "--max-size", "lots"], "--max-size 'lots' is not a size"),
        (["prune", "--max-size", "0"], "--max-size must be above 0"),
        # a number alone would be seconds or bytes: everything would go
        (["prune", "--older-than", "90"], "--older-than '90' needs a unit: 90d"),
        (["prune", "--older-than", "1M"], "M could be minutes or months"),
        (["prune", "--max-size", "20"], "--max-size '20' needs a unit: 20G"),
        (["record", "--retention-older-than", "30"], "needs a unit"),
        (["trash", "empty", "--older-than", "soon"], "--older-than 'soon' is not a duration"),
        (["trash", "restore"], "trash restore needs the ID"),
        (["trash", "empty", "some-id"], "trash empty takes no ID"),
        (["trash", "clean"], "invalid choice: 'clean'"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    (tmp_path / "segments").mkdir()
    with pytest.raises(SystemExit) if argv[-1] == "clean" else _nothing() as caught:
        code, _, err = run(capsys, *argv, "--log-dir", str(tmp_path))
    if caught is not None:
        code, err = int(caught.value.code or 0), capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and words in err and "Traceback" not in err


def test_failures_are_one_line_and_exit_1(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str]
) -> None:
    layout, _ = journal
    log = str(layout.root)
    code, _, err = run(capsys, "trash", "restore", "20991231", "--log-dir", log)
    assert code == 1 and "no trash entry '20991231'" in err and len(err.splitlines()) == 1
    code, _, err = run(capsys, "pin", "no-such-checkpoint", "--log-dir", log)
    assert code == 1 and "no checkpoint 'no-such-checkpoint'" in err


def test_prune_takes_its_policy_from_retention_toml_and_refuses_a_bad_one(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str]
) -> None:
    """`persist prune` without options prunes by the folder's retention.toml, options
    override it key by key (as for the recorder), and a bare number in it is refused
    in one line naming the key, exit 2, options or not."""
    layout, _ = journal
    log = str(layout.root)
    toml = layout.root / "retention.toml"
    before = list_segments(layout)

    def plan(*argv: str) -> dict[str, Any]:
        code, out, err = run(capsys, "prune", "--dry-run", "--json", *argv, "--log-dir", log)
        assert code == 0, err
        return dict(orjson.loads(out))

    wanted = plan("--max-size", "64K")
    assert wanted["segments"]
    toml.write_text('[retention]\nmax_size = "64K"\n')
    assert plan() == wanted
    toml.write_text('[retention]\nolder_than = "5d"\nmax_size = "64K"\n')
    assert plan("--max-size", "1G")["policy"] == {
        "older_than_s": 5 * DAY,
        "max_size_bytes": 1 << 30,
    }
    assert plan("--older-than", "1d")["policy"] == {
        "older_than_s": DAY,
        "max_size_bytes": 64 << 10,
    }
    toml.write_text("[retention]\nmax_size = 30000\n")
    for argv in ([], ["--max-size", "1G"], ["--dry-run"]):
        code, out, err = run(capsys, "prune", *argv, "--log-dir", log)
        assert code == 2 and out == ""
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert "retention.max_size '30000' needs a unit" in err and "30000B" in err
    assert list_segments(layout) == before  # nothing was pruned


def test_prune_and_trash_empty_free_a_full_disk(
    journal: tuple[Layout, list[Checkpoint]],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """On a real full disk (a tmpfs), with no recorder: `persist prune` takes the
    folder's lock and writes its entry, ledger and record in the room the recorder
    kept, and `persist trash empty` then frees the space; both journaled once."""
    with small_disk(tmp_path / "disk", 8) as disk:
        layout = Layout(disk / "logs")
        shutil.copytree(journal[0].root, layout.root, symlinks=True)  # with the room kept
        fill(disk / "filler")
        segments = len(list_segments(layout))
        code, out, err = run(capsys, "prune", "--max-size", "64K", "--log-dir", str(layout.root))
        assert code == 0 and err == "", err
        assert out.startswith("pruned ") and "into trash/" in out
        left = len(list_segments(layout))
        assert left < segments
        [entry] = list_trash_ids(layout)
        free = shutil.disk_usage(disk).free
        code, out, err = run(
            capsys, "trash", "empty", "--older-than", "0s", "--log-dir", str(layout.root)
        )
        assert code == 0 and err == "", err
        assert f"emptied trash/{entry}" in out
        assert list(layout.trash.iterdir()) == []
        assert shutil.disk_usage(disk).free > free + 100_000
        events = [r for r in journal_records(layout.root) if r.get("kind") == "event"]
        assert [(e["event"], e.get("offline")) for e in events[-2:]] == [
            ("prune", True),
            ("trash-empty", True),
        ]
        assert read_pruned(layout) and all(
            n.emptied is not None for n in read_pruned(layout).values() if n.trash == entry
        )
        # the holder's PID is written over blanks kept in the lock file: no new block
        assert layout.lock.read_bytes().strip() == b""
        assert len(list_segments(layout)) == left


def test_on_a_full_disk_without_room_kept_nothing_is_done_and_said_in_one_line(
    journal: tuple[Layout, list[Checkpoint]],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """A folder with no room kept (an older persist's), on a full disk: prune and
    trash empty change nothing and say so in one line, with what to do."""
    with small_disk(tmp_path / "disk", 8) as disk:
        layout = Layout(disk / "logs")
        shutil.copytree(journal[0].root, layout.root, symlinks=True)
        code, _, err = run(capsys, "prune", "--older-than", "11d", "--log-dir", str(layout.root))
        assert code == 0, err
        (layout.retention / "room.reserve").unlink(missing_ok=True)
        fill(disk / "filler")
        before = digests(layout.segments)
        for argv in (
            ["prune", "--max-size", "64K"],
            ["trash", "empty", "--older-than", "0s"],
        ):
            code, out, err = run(capsys, *argv, "--log-dir", str(layout.root))
            assert code == 1 and out == ""
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
            assert "nothing was done" in err and "free some space" in err, err
        assert digests(layout.segments) == before
        [entry] = list_trash_ids(layout)
        assert (layout.trash / entry / "manifest.json").read_bytes().count(b'"done"') == 1


def list_trash_ids(layout: Layout) -> list[str]:
    """The trash's entries (not a `.new-` folder a prune stopped before its manifest
    left: the next prune removes it)."""
    return sorted(p.name for p in layout.trash.iterdir() if not p.name.startswith("."))


class _nothing:
    value = None

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_every_position_handed_to_the_writer_counts_the_messages_before_it(
    tmp_path: Path,
) -> None:
    """A segment rotation inside a batch hands the writer a position; a checkpoint taken
    there must count the batch's messages before it (it counted none of them before)."""
    clock = Clock()
    rec = make(tmp_path, clock, segment_bytes=8 * 1024)
    handed: list[tuple[bytes, int]] = []
    put = rec.journal.sink.put

    def spy(item: tuple, nbytes: int = 0) -> None:  # type: ignore[type-arg]
        if item[0] == "write":
            handed.append((bytes(item[1]), item[2].messages))
        put(item, nbytes)

    rec.journal.sink.put = spy  # type: ignore[method-assign]
    for _ in range(3):
        feed(rec, clock, *[[b"agents.t", b'{"text": "' + b"y" * 500 + b'"}'] for _ in range(40)])
    rec.close()
    seen = 0
    for data, messages in handed:
        seen += data.count(b'"kind":"msg"')
        assert messages == seen
    assert len(handed) > 6  # rotations happened inside batches


def prune_killed_at_rename(
    layout: Layout, n: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Path:
    """`persist prune --older-than 5d` killed at its `n`th rename (that rename fails);
    returns its trash entry, left in state "moving"."""
    import os

    from recorder.store import retention

    calls = {"n": 0}
    real_rename = os.rename

    def failing(src: object, dst: object) -> None:
        calls["n"] += 1
        if calls["n"] == n:
            raise OSError("killed")
        real_rename(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(retention.os, "rename", failing)
    code, _, err = run(capsys, "prune", "--older-than", "5d", "--log-dir", str(layout.root))
    assert code == 1 and "killed" in err
    monkeypatch.setattr(retention.os, "rename", real_rename)
    (entry,) = layout.trash.iterdir()
    return entry


def test_a_prune_interrupted_midway_is_undone_by_trash_restore(
    journal: tuple[Layout, list[Checkpoint]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A prune killed between two renames (simulated: the 8th rename fails) leaves a
    trash entry in state "moving"; restoring it puts everything back as it was."""
    layout, _ = journal
    segs, cps = digests(layout.segments), digests(layout.checkpoints)
    entry = prune_killed_at_rename(layout, 8, capsys, monkeypatch)
    assert orjson.loads((entry / "manifest.json").read_bytes())["state"] == "moving"
    code, _, err = run(capsys, "trash", "restore", entry.name, "--log-dir", str(layout.root))
    assert code == 0, err
    assert _same_but_active(layout, segs)
    assert digests(layout.checkpoints) == cps
    assert read_pruned(layout) == {} and list(layout.trash.iterdir()) == []
    for cp in list_checkpoints(layout):
        assert verify_checkpoint(layout, cp).ok


def _same_but_active(layout: Layout, before: dict[str, str]) -> bool:
    active = list_segments(layout)[-1].name
    after = digests(layout.segments)
    return {k: v for k, v in after.items() if k != active} == {
        k: v for k, v in before.items() if k != active
    }


def test_an_interrupted_prune_is_undone_also_after_its_segments_were_compressed(
    journal: tuple[Layout, list[Checkpoint]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The segments a killed prune (or a killed `trash restore`) left at home were
    compressed (`persist compact`, or the recorder after a rotation): `trash restore`
    then said "seg-000001.jsonl is missing; nothing restored" on every try, and the
    trashed ones stayed in the trash. A cache rebuilt at home meanwhile (derived) was
    "exists already" too."""
    layout, _ = journal
    records_before = [r.line for r in Store(layout.root).records()]
    entry = prune_killed_at_rename(layout, 5, capsys, monkeypatch)
    trashed = sorted(p.name for p in (entry / "segments").iterdir())
    assert trashed[:1] == ["seg-000001.jsonl"] and "seg-000003.jsonl" not in trashed
    # a `trash restore` killed after it moved seg-000001 home, before its cache; a
    # reader rebuilt that cache at home meanwhile
    (entry / "segments" / "seg-000001.jsonl").rename(layout.segments / "seg-000001.jsonl")
    rebuilt = layout.index / "seg-000001.jsonl.sha256"
    assert (entry / "metadata_index" / rebuilt.name).exists() and not rebuilt.exists()
    rebuilt.write_bytes(b"rebuilt by a reader")
    code, _, err = run(capsys, "compact", "--log-dir", str(layout.root))
    assert code == 0, err
    assert (layout.segments / "seg-000001.jsonl.zst").exists()
    assert (layout.segments / "seg-000003.jsonl.zst").exists()  # never moved, compressed
    code, _, err = run(capsys, "trash", "restore", entry.name, "--log-dir", str(layout.root))
    assert code == 0, err
    assert [r.line for r in Store(layout.root).records()] == records_before
    assert list(layout.trash.iterdir()) == []
    for cp in list_checkpoints(layout):
        assert verify_checkpoint(layout, cp).ok


# -- kills: a real `persist` process SIGKILLed at the Nth call of an `os` function ------------
_KILL_AT = """
import importlib, os, signal, sys
module, func, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
real, calls = getattr(os, func), [0]
def killing(*args, **kwargs):
    calls[0] += 1
    if calls[0] == n:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
class Os:  # `module` sees this `os`: only its own calls are counted
    def __getattr__(self, name):
        return getattr(os, name)
proxy = Os()
setattr(proxy, func, killing)
importlib.import_module(module).os = proxy
from recorder.cli.main import main
sys.exit(main(sys.argv[4:]))
"""


def persist_killed_at(module: str, func: str, n: int, *argv: str) -> int:
    """`persist ARGV` in a process of its own, SIGKILLed at its `n`th call of
    `os.FUNC` from `module`: -9, or its exit code if it ended before."""
    done = subprocess.run(
        [PYTHON, "-c", _KILL_AT, module, func, str(n), *argv],
        capture_output=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],  # this checkout's `recorder`
    )
    return done.returncode


def _events(layout: Layout, name: str) -> list[dict[str, Any]]:
    return [r for r in journal_records(layout.root) if r.get("event") == name]


@pytest.mark.parametrize(
    "kill_at",
    [("recorder.store.retention", "rename", 40), ("recorder.store.journal", "writev", 1)],
    ids=["midway", "at-its-event"],
)
def test_a_killed_prune_is_never_silent_and_its_restore_accounts_for_it(
    journal: tuple[Layout, list[Checkpoint]],
    capsys: pytest.CaptureFixture[str],
    kill_at: tuple[str, str, int],
) -> None:
    """`persist prune` SIGKILLed at its 40th rename, or as it journals its event:
    `trash list` showed the entry whole ("10 segments") with half its segments still
    in segments/, doctor said ok, a new prune wrote a second entry for the rest, and
    no `prune` event ever named the first; killed at its event, the entry was "done"
    with no event at all. Now the entry is interrupted until restored."""
    from recorder.doctor.model import Severity
    from recorder.doctor.run import diagnose

    layout, _ = journal
    log = str(layout.root)
    segs, cps = digests(layout.segments), digests(layout.checkpoints)
    prune = ("prune", "--older-than", "5d", "--log-dir", log)
    assert persist_killed_at(*kill_at, *prune) == -9
    (entry,) = layout.trash.iterdir()
    manifest = orjson.loads((entry / "manifest.json").read_bytes())
    names = [f["name"] for f in manifest["files"] if f["kind"] == "segment"]
    moved = sorted(p.name for p in (entry / "segments").iterdir())
    assert 0 < len(moved) <= len(names) and not _events(layout, "prune")
    assert (len(moved) < len(names)) == (kill_at[1] == "rename")  # midway, or all moved
    code, out, _ = run(capsys, "trash", "list", "--log-dir", log)
    if len(moved) < len(names):
        held = f"{len(moved)} of its {len(names)} segments were moved, the rest are in segments/"
        assert f"  {len(moved)} of {len(names)} segments  " in out, out
    else:
        held = f"all {len(names)} of its segments were moved"
    assert f"INTERRUPTED prune: {held}" in out, out
    assert f"persist trash restore {entry.name}" in out
    code, out, _ = run(capsys, "trash", "list", "--json", "--log-dir", log)
    [listed] = orjson.loads(out)
    assert listed["interrupted"] and sorted(listed["segments_here"]) == moved
    [found] = [f for f in diagnose(layout.root).findings if f.check == "journal.interrupted-prune"]
    assert found.severity is Severity.PROBLEM
    assert found.fix and found.fix.startswith(f"persist trash restore {entry.name}")
    for argv in (
        prune,
        (*prune, "--dry-run"),
        ("trash", "empty", "--older-than", "0", "--log-dir", log),
    ):
        code, _, err = run(capsys, *argv)
        assert code == 1 and len(err.strip().splitlines()) == 1, err
        assert f"`persist trash restore {entry.name} --log-dir" in err
    assert [p.name for p in layout.trash.iterdir()] == [entry.name]  # no overlapping entry
    assert sorted(p.name for p in (entry / "segments").iterdir()) == moved
    manifest = orjson.loads((entry / "manifest.json").read_bytes())
    assert "prune" not in manifest["journal_from"]  # not journaled: not looked for again
    code, out, err = run(capsys, "trash", "restore", entry.name, "--log-dir", log)
    assert code == 0 and "undid the interrupted prune" in out, err
    assert _same_but_active(layout, segs) and digests(layout.checkpoints) == cps
    [undone] = _events(layout, "trash-restore")
    assert undone["interrupted"] == "prune" and undone["segments"] == names
    assert undone["detail"].startswith(f"undid the interrupted prune trash/{entry.name} ({held})")
    # pruned again: every segment that left segments/ is named by its entry's event
    code, out, err = run(capsys, *prune, "--json")
    assert code == 0, err
    (again,) = layout.trash.iterdir()
    [event] = _events(layout, "prune")
    assert event["trash"] == again.name
    assert sorted(event["segments"]) == sorted(p.name for p in (again / "segments").iterdir())


@pytest.mark.parametrize(
    "kill_at",
    [("shutil", "unlink", 20), ("recorder.store.journal", "writev", 1)],
    ids=["deleting", "at-its-event"],
)
def test_a_killed_trash_empty_is_journaled_once_and_finished_by_the_next(
    journal: tuple[Layout, list[Checkpoint]],
    capsys: pytest.CaptureFixture[str],
    kill_at: tuple[str, str, int],
) -> None:
    """`persist trash empty` SIGKILLed while it deleted (after its ledger write): every
    file went, with no `trash-empty` event, and a re-run said "nothing older than 14
    days"; killed earlier, `trash list` showed the entry whole with files missing.
    Killed as it journals, it had deleted everything unjournaled too."""
    from recorder.doctor.run import diagnose

    layout, _ = journal
    log = str(layout.root)
    assert run(capsys, "prune", "--older-than", "5d", "--log-dir", log)[0] == 0
    (entry,) = layout.trash.iterdir()
    names = [p.name for p in (entry / "segments").iterdir()]
    assert (
        persist_killed_at(*kill_at, "trash", "empty", "--older-than", "0", "--log-dir", log) == -9
    )
    empty = ("trash", "empty", "--log-dir", log)  # with the grace: the entry is not due
    code, out, _ = run(capsys, "trash", "list", "--json", "--log-dir", log)
    for listed in orjson.loads(out):  # what is listed is what is there
        claimed = [f["name"] for f in listed["files"] if f["kind"] == "segment"]
        there = sorted(p.name for p in (layout.trash / listed["id"] / "segments").iterdir())
        assert sorted(listed.get("segments_here", claimed)) == there
    fixes = {f.fix for f in diagnose(layout.root).findings if f.check.startswith("journal.")}
    assert f"persist trash empty --log-dir {log}" in fixes
    code, out, err = run(capsys, *empty)
    assert code == 0 and entry.name in out, (out, err)
    assert not [p for p in layout.trash.rglob("*") if p.is_file()]
    [event] = _events(layout, "trash-empty")
    assert event["trash"] == [entry.name] and sorted(event["segments"]) == sorted(names)
    assert event.get("resumed") == ([entry.name] if kill_at[0].endswith("journal") else None)
    assert all(n.emptied is not None for n in read_pruned(layout).values())
    code, out, _ = run(capsys, *empty)
    assert code == 0 and "nothing in the trash" in out and len(_events(layout, "trash-empty")) == 1


def test_a_killed_trash_restore_blocks_prunes_until_it_is_run_again(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str]
) -> None:
    """`persist trash restore` SIGKILLed midway: some segments were home again while
    the entry said nothing of it, doctor said ok, and a prune could take them into a
    second entry (in two entries at once), or an empty delete the rest unjournaled."""
    from recorder.doctor.run import diagnose

    layout, _ = journal
    log = str(layout.root)
    segs = digests(layout.segments)
    assert run(capsys, "prune", "--older-than", "5d", "--log-dir", log)[0] == 0
    (entry,) = layout.trash.iterdir()
    names = sorted(p.name for p in (entry / "segments").iterdir())
    restore = ("trash", "restore", entry.name, "--log-dir", log)
    assert persist_killed_at("pathlib", "rename", 10, *restore) == -9
    back = [n for n in names if (layout.segments / n).exists()]
    assert 0 < len(back) < len(names) and not _events(layout, "trash-restore")
    held = f"{len(back)} of its {len(names)} segments are back in segments/"
    code, out, _ = run(capsys, "trash", "list", "--log-dir", log)
    assert f"INTERRUPTED restore: {held}; `persist trash restore {entry.name}" in out, out
    [found] = [f for f in diagnose(layout.root).findings if f.check.startswith("journal.inter")]
    assert found.check == "journal.interrupted-restore" and held in found.summary
    for argv in (("prune", "--max-size", "1K"), ("trash", "empty", "--older-than", "0")):
        code, _, err = run(capsys, *argv, "--log-dir", log)
        assert code == 1 and f"`persist trash restore {entry.name} --log-dir" in err, err
    assert [p.name for p in layout.trash.iterdir()] == [entry.name]
    code, out, err = run(capsys, *restore)
    assert code == 0 and "finished the interrupted restore" in out, err
    assert _same_but_active(layout, segs) and list(layout.trash.iterdir()) == []
    [event] = _events(layout, "trash-restore")
    assert event["interrupted"] == "restore" and sorted(event["segments"]) == names


@pytest.mark.parametrize("change", ["prune", "trash-restore", "trash-empty"])
def test_a_change_killed_after_its_record_is_finished_with_no_second_record(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str], change: str
) -> None:
    """`persist prune`, `trash restore` and `trash empty` SIGKILLed just after their
    record was written (at the journal's fsync of it), before the entry was marked done
    or went: run again, a restore journaled a second `trash-restore` ("0 files back",
    `"interrupted": "restore"`) and an empty a second `trash-empty` (`resumed`), each
    with the entry's bytes again; the prune's entry read as an interrupted prune that
    only a restore (undoing it) ended. Now the journal's record is found: one record
    per change, and the change is finished."""
    from recorder.doctor.run import diagnose

    layout, _ = journal
    log = str(layout.root)
    prune = ("prune", "--older-than", "5d", "--log-dir", log)
    if change == "prune":
        argv = prune
    else:
        assert run(capsys, *prune)[0] == 0
        (entry,) = layout.trash.iterdir()
        restore = ("trash", "restore", entry.name)
        empty = ("trash", "empty", "--older-than", "0")
        argv = (*(restore if change == "trash-restore" else empty), "--log-dir", log)
    assert persist_killed_at("recorder.store.journal", "fsync", 1, *argv) == -9
    [first] = _events(layout, change)  # journaled, then killed
    (entry,) = layout.trash.iterdir()
    code, out, _ = run(capsys, "trash", "list", "--log-dir", log)
    assert ("INTERRUPTED" in out) == (change != "prune"), out
    checks = {f.check for f in diagnose(layout.root).findings}
    assert "journal.interrupted-prune" not in checks
    if change == "trash-empty":  # another entry goes with it: the new record names it alone
        assert run(capsys, "prune", "--older-than", "3d", "--log-dir", log)[0] == 0
        [later] = [p.name for p in layout.trash.iterdir() if p != entry]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    events = _events(layout, change)
    assert events[0] == first  # not written again: nothing counted twice
    if change == "trash-empty":
        assert [e["trash"] for e in events[1:]] == [[later]] and "resumed" not in events[1]
    else:
        assert len(events) == 1
    if change == "prune":  # done: a restore is a plain one, not the undoing of a prune
        assert orjson.loads((entry / "manifest.json").read_bytes())["state"] == "done"
        code, out, err = run(capsys, "trash", "restore", entry.name, "--log-dir", log)
        assert code == 0 and out.startswith(f"restored trash/{entry.name}: "), (out, err)
        [restored] = _events(layout, "trash-restore")
        assert "interrupted" not in restored
    else:
        assert "journal already" in out, out
        assert run(capsys, *argv)[0] == (1 if change == "trash-restore" else 0)  # gone
        assert _events(layout, change) == events
    assert list(layout.trash.iterdir()) == []


def test_a_restore_or_empty_the_recorder_did_not_journal_says_what_was_done(
    journal: tuple[Layout, list[Checkpoint]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The running recorder not answering the record's request (stopped, overloaded):
    `trash restore` said "nothing was done" with every file back, `trash empty` the same
    with its entries marked for emptying. Now each says what it did and that running it
    again finishes it; run again, it does, with its record."""
    from recorder.daemon import maintenance
    from recorder.daemon.control import no_answer

    layout, _cps = journal
    log = str(layout.root)
    assert run(capsys, "prune", "--older-than", "6d", "--log-dir", log)[0] == 0
    (entry,) = [p.name for p in layout.trash.iterdir()]
    # the record's writer (here, with no recorder, `append_offline` under the folder's
    # lock) failing as an unanswered request does
    real = maintenance.append_offline

    def unanswered(_layout: Layout, _event: dict[str, Any]) -> str:
        raise maintenance.MaintenanceError(no_answer("event", 60, False))

    monkeypatch.setattr(maintenance, "append_offline", unanswered)
    code, _out, err = run(capsys, "trash", "restore", entry, "--log-dir", log)
    assert code == 1 and "nothing was done" not in err
    assert f"the files of trash/{entry} are back in place, but the restore is not journaled" in err
    monkeypatch.setattr(maintenance, "append_offline", real)
    assert run(capsys, "trash", "restore", entry, "--log-dir", log)[0] == 0
    events = [r.get("event") for r in journal_records(layout.root)]
    assert events.count("trash-restore") == 1
    assert run(capsys, "prune", "--older-than", "6d", "--log-dir", log)[0] == 0
    (entry,) = [p.name for p in layout.trash.iterdir()]
    monkeypatch.setattr(maintenance, "append_offline", unanswered)
    code, _out, err = run(capsys, "trash", "empty", "--older-than", "0", "--log-dir", log)
    assert code == 1 and "nothing was done" not in err
    assert f"trash/{entry} marked for emptying, nothing deleted yet" in err
    assert (layout.trash / entry).is_dir()
    monkeypatch.setattr(maintenance, "append_offline", real)
    assert run(capsys, "trash", "empty", "--older-than", "0", "--log-dir", log)[0] == 0
    assert not (layout.trash / entry).exists()
    assert [r.get("event") for r in journal_records(layout.root)].count("trash-empty") == 1


def test_a_prune_killed_before_its_manifest_leaves_no_entry_without_one(
    journal: tuple[Layout, list[Checkpoint]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Killed after making its trash folder but before writing its manifest, a prune
    left `trash/<id>/` without one, which every `trash list` warned about and nothing
    removed (review). The entry is made hidden and named once its manifest is written:
    nothing is listed, nothing at home changed, and the next prune removes the leftover."""
    from recorder.store import retention

    layout, _cps = journal
    log = str(layout.root)
    home = sorted(p.name for p in layout.segments.iterdir())

    def killed(*_args: object) -> None:
        raise OSError("killed before the manifest")

    monkeypatch.setattr(retention, "write_state", killed)
    code, _out, err = run(capsys, "prune", "--older-than", "6d", "--log-dir", log)
    assert code == 1 and "killed before the manifest" in err
    monkeypatch.undo()
    assert sorted(p.name for p in layout.segments.iterdir()) == home
    code, out, err = run(capsys, "trash", "list", "--log-dir", log)
    assert code == 0 and out.strip() == "the trash is empty" and err == ""
    assert [p.name[:5] for p in layout.trash.iterdir()] == [".new-"]
    assert run(capsys, "prune", "--older-than", "6d", "--log-dir", log)[0] == 0
    assert not [p for p in layout.trash.iterdir() if p.name.startswith(".new-")]


def test_after_a_trash_restore_doctor_calls_the_index_stale_not_damaged(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str]
) -> None:
    """A restored segment makes the search index rebuild (the next search does it): doctor
    called that a problem (exit 9), as if the file were damaged. A warning now."""
    from recorder.doctor.model import Severity
    from recorder.doctor.run import diagnose

    layout, _cps = journal
    log = str(layout.root)
    with SearchEngine(layout.root, Roots(None, None, None)) as engine:
        engine.catch_up()
    assert run(capsys, "prune", "--older-than", "6d", "--log-dir", log)[0] == 0
    with SearchEngine(layout.root, Roots(None, None, None)) as engine:
        engine.catch_up()  # the pruned segments' rows dropped
    (entry,) = [p.name for p in layout.trash.iterdir()]
    assert run(capsys, "trash", "restore", entry, "--log-dir", log)[0] == 0
    found = [f for f in diagnose(layout.root).findings if f.area.value == "search"]
    assert [(f.check, f.severity) for f in found] == [("search.stale", Severity.WARNING)]
    assert "appeared below indexed ones" in found[0].summary


@pytest.mark.parametrize("noted", [{"prune": "58a"}, ["prune"], {"prune": None}, "x"])
def test_a_wrongly_typed_journal_note_does_not_hide_the_entry(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str], noted: object
) -> None:
    """`journal_from` is a hint for finding a record a killed run left: a wrong one made
    the whole manifest unreadable, so the entry vanished from `trash list` and could
    not be restored. It now counts as no note."""
    layout, _ = journal
    log = str(layout.root)
    assert run(capsys, "prune", "--older-than", "5d", "--log-dir", log)[0] == 0
    (entry,) = layout.trash.iterdir()
    manifest = entry / "manifest.json"
    data = orjson.loads(manifest.read_bytes())
    data["journal_from"] = noted
    manifest.write_bytes(orjson.dumps(data))
    code, out, err = run(capsys, "trash", "list", "--log-dir", log)
    assert code == 0 and entry.name in out and "unreadable" not in err, (out, err)
    code, _out, err = run(capsys, "trash", "restore", entry.name, "--log-dir", log)
    assert code == 0, err
    assert not entry.exists()


# -- the ledger of pruned segments (retention/pruned.json) that cannot be read ------------
def _torn(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:300])


@pytest.mark.parametrize(
    "damage",
    [
        _torn,
        lambda p: p.write_bytes(b'{"v": 1, "segments": []}'),
        lambda p: p.write_bytes(b'{"v": 1, "segments": {"seg-000001.jsonl": {"pruned": "x"}}}'),
        lambda p: (p.unlink(), p.mkdir()),
    ],
    ids=["torn", "wrong-shape", "wrong-type", "a-folder"],
)
def test_an_unreadable_ledger_is_named_never_rewritten_and_rebuilt_whole(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str], damage: Any
) -> None:
    """A torn `retention/pruned.json` read as "nothing was pruned": the next prune wrote
    it again with its own entries alone (the earlier ones lost for good), doctor called
    every pruned segment lost and offered `--forget-missing`, which wrote them down as
    removed by hand, export exited 5. Now every command that would rewrite it refuses,
    readers name it and still tell the trash's segments pruned, and `doctor --fix`
    rebuilds it exactly from the journal and the trash."""
    from recorder.doctor.model import Severity
    from recorder.doctor.run import diagnose, fix

    layout, _ = journal
    log = str(layout.root)
    code, _, err = run(capsys, "prune", "--older-than", "5d", "--log-dir", log)
    assert code == 0, err
    (entry,) = layout.trash.iterdir()
    notes = read_pruned(layout)
    assert notes
    damage(layout.pruned)
    segments = sorted(p.name for p in layout.segments.iterdir())
    for argv in (
        ["prune", "--max-size", "1K"],
        ["prune", "--max-size", "1K", "--dry-run"],
        ["prune", "--forget-missing"],
        ["prune", "--forget-missing", "--dry-run"],
        ["trash", "empty", "--older-than", "0"],
        ["trash", "restore", entry.name],
    ):
        code, _, err = run(capsys, *argv, "--log-dir", log)
        assert code == 1 and len(err.strip().splitlines()) == 1, (argv, err)
        assert f"{layout.pruned} (the ledger of pruned segments)" in err, (argv, err)
        assert "which segments were pruned is unknown" in err
    assert sorted(p.name for p in layout.segments.iterdir()) == segments  # nothing moved
    assert [p.name for p in layout.trash.iterdir()] == [entry.name]
    assert not _events(layout, "forget-missing") and len(_events(layout, "prune")) == 1
    code, _, err = run(capsys, "trash", "list", "--log-dir", log)
    assert code == 0 and f"warning: {layout.pruned}" in err, err
    report = diagnose(layout.root)
    [ledger] = [f for f in report.findings if f.check == "journal.pruned-ledger"]
    assert ledger.severity is Severity.PROBLEM and str(layout.pruned) in ledger.summary
    assert ledger.repair is not None and ledger.fix == f"persist doctor --fix --log-dir {log}"
    assert not [f for f in report.findings if f.check == "journal.missing-segment"]
    assert not [f for f in report.findings if f.check == "checkpoints.digest" and f.severity]
    # readers go on, told by the trash which segments were pruned, and name the ledger
    out_file = layout.root.parent / "all.jsonl"
    code, _, err = run(
        capsys, "export", "--all", "--format", "jsonl", "-o", str(out_file), "--log-dir", log
    )
    assert code == 0 and "damage:" not in err, err
    assert f"warning: {layout.pruned} (the ledger of pruned segments)" in err
    code, out, err = run(capsys, "restore", "latest", "--full", "--log-dir", log)
    assert code == 0 and f"note: {layout.pruned} (the ledger" in out, out + err
    assert f"(in trash {entry.name})" in out
    code, out, err = run(capsys, "checkpoint", "--log-dir", log)
    assert code == 0 and f"warning: {layout.pruned}" in err, err
    fix(report)
    assert read_pruned(layout) == notes  # every note as it was
    assert [f.check for f in diagnose(layout.root).findings if f.severity is Severity.PROBLEM] == []
    code, _, err = run(capsys, "trash", "restore", entry.name, "--log-dir", log)
    assert code == 0 and read_pruned(layout) == {}, err


def test_a_ledger_the_journal_cannot_rebuild_is_not_rebuilt(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str]
) -> None:
    """With a segment gone that neither the journal nor the trash explains (written
    down by `--forget-missing`, in a record since emptied... here: removed by hand),
    a rebuild would read it as lost: doctor offers no `--fix`, and says why."""
    from recorder.doctor.run import diagnose

    layout, _ = journal
    log = str(layout.root)
    assert run(capsys, "prune", "--older-than", "5d", "--log-dir", log)[0] == 0
    sorted(layout.segments.iterdir())[1].unlink()
    _torn(layout.pruned)
    [ledger] = [f for f in diagnose(layout.root).findings if f.check == "journal.pruned-ledger"]
    assert ledger.repair is None and "it cannot be rebuilt" in ledger.summary, ledger.summary
    assert "neither the journal nor the trash says why" in ledger.summary


def test_a_named_pipe_for_a_ledger_is_never_waited_on(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str]
) -> None:
    """A FIFO at `retention/pruned.json` held doctor, restore, checkpoint and export
    forever (opened to read, it waits for a writer): each is a real `persist` process
    here, given 60 s, and names the file in one line."""
    import os

    layout, _ = journal
    log = str(layout.root)
    assert run(capsys, "prune", "--older-than", "5d", "--log-dir", log)[0] == 0
    layout.pruned.unlink()
    os.mkfifo(layout.pruned, 0o600)
    said = f"{layout.pruned} (the ledger of pruned segments) is a named pipe, not a regular file"
    out_file = str(layout.root.parent / "all.jsonl")
    for argv, code in (
        (["doctor"], 9),
        (["restore", "latest", "--full"], 0),
        (["checkpoint"], 0),
        (["export", "--all", "--format", "jsonl", "-o", out_file], 0),
        (["prune", "--max-size", "1K", "--dry-run"], 1),
    ):
        done = subprocess.run(
            [PYTHON, "-m", "recorder.cli.main", *argv, "--log-dir", log],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[2],  # this checkout's `recorder`
        )
        both = done.stdout + done.stderr
        assert done.returncode == code and both.count(said) == 1, (argv, both)


def test_export_and_restore_name_a_prune_a_kill_cut_short(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str]
) -> None:
    """A prune SIGKILLed at its 40th rename left half its segments in the trash: the
    ledger names them all (written before any moved), so `export --all` and `restore
    latest --full` exited 0 saying nothing of it. Now each says in one line that the
    prune was interrupted and how to undo it (exit 0: its segments are whole, part in
    the trash, part at home; no damage), until `persist trash restore` does."""
    layout, _ = journal
    log = str(layout.root)
    prune = ("prune", "--older-than", "5d", "--log-dir", log)
    assert persist_killed_at("recorder.store.retention", "rename", 40, *prune) == -9
    (entry,) = layout.trash.iterdir()
    said = f"trash/{entry.name}: a prune was interrupted ("
    undo = f"`persist trash restore {entry.name} --log-dir {log}` puts them back"
    out_file = str(layout.root.parent / "all.jsonl")
    export = ("export", "--all", "--format", "jsonl", "-o", out_file, "--log-dir", log)
    restore = ("restore", "latest", "--full", "--log-dir", log)
    code, _, err = run(capsys, *export)
    assert code == 0 and err.count(said) == 1 and undo in err, err
    assert f"persist: warning: {said}" in err
    code, out, err = run(capsys, *restore)
    assert code == 0 and out.count(said) == 1 and undo in out, out + err
    assert f"  note: {said}" in out
    assert run(capsys, "trash", "restore", entry.name, "--log-dir", log)[0] == 0
    for argv in (export, restore):
        code, out, err = run(capsys, *argv)
        assert code == 0 and "interrupted" not in out + err, out + err


def test_a_named_pipe_for_pins_is_never_waited_on(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str]
) -> None:
    """A FIFO at `retention/pins.json` held doctor, prune, pin and checkpoints forever
    (opened to read, it waits for a writer): real `persist` processes, given 60 s, each
    name it in one line and refuse as for any pins file that cannot be read."""
    import os

    layout, cps = journal
    log = str(layout.root)
    layout.retention.mkdir(mode=0o700, exist_ok=True)
    os.mkfifo(layout.pins, 0o600)
    said = f"{layout.pins} is a named pipe, not a regular file"
    for argv, code in (
        (["doctor"], 9),
        (["prune", "--max-size", "1K", "--dry-run"], 1),
        (["pin", cps[1].id], 1),
        (["checkpoints"], 1),
    ):
        done = subprocess.run(
            [PYTHON, "-m", "recorder.cli.main", *argv, "--log-dir", log],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[2],  # this checkout's `recorder`
        )
        both = done.stdout + done.stderr
        assert done.returncode == code and both.count(said) == 1, (argv, both)


def test_times_printed_say_their_zone_and_read_back_as_the_same_time(
    journal: tuple[Layout, list[Checkpoint]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`persist checkpoints`, `prune --dry-run` and `trash list` print UTC marked `Z`,
    which `--since`/`--until`/`since:` read as UTC: a time copied from them is the
    same time in any zone (before 2026-12-07 they printed UTC unmarked, read back as
    local time: 9 hours off in Tokyo)."""
    from recorder.search.query import parse_time

    stamp = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\dZ?")
    layout, cps = journal
    log = str(layout.root)
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        now = time.time()
        code, out, _ = run(capsys, "checkpoints", "--log-dir", log)
        assert code == 0
        [line] = [x for x in out.splitlines() if cps[-1].id in x]
        [shown] = stamp.findall(line)
        assert parse_time(shown, now) == int(cps[-1].created)
        code, out, _ = run(
            capsys, "prune", "--older-than", "3d", "--json", "--dry-run", "--log-dir", log
        )
        plan = orjson.loads(out)
        code, out, _ = run(capsys, "prune", "--older-than", "3d", "--dry-run", "--log-dir", log)
        assert code == 0
        first = next(x for x in out.splitlines() if plan["segments"][0]["name"] in x)
        assert [parse_time(s, now) for s in stamp.findall(first)] == [
            int(plan["segments"][0]["first_ts"]),
            int(plan["segments"][0]["last_ts"]),
        ]
        code, out, _ = run(capsys, "prune", "--older-than", "3d", "--json", "--log-dir", log)
        assert code == 0
        entry = orjson.loads(out)["trash"]
        code, out, _ = run(capsys, "trash", "list", "--json", "--log-dir", log)
        assert code == 0
        [created] = [e["created"] for e in orjson.loads(out) if e["id"] == entry]
        code, out, _ = run(capsys, "trash", "list", "--log-dir", log)
        assert code == 0
        [line] = [x for x in out.splitlines() if x.startswith(entry)]
        [shown] = stamp.findall(line)
        assert parse_time(shown, now) == int(created)
    finally:
        monkeypatch.undo()
        time.tzset()


YEAR = 365 * 86400.0


def test_age_prunes_oldest_first_and_not_while_the_clock_is_behind_the_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A journal recorded today with a clock a year behind for a moment in its middle:
    `--older-than 90d` takes nothing (before 2026-12-07 it took the middle segments and
    kept the older ones before them). With the clock behind the journal's last record
    it prunes nothing by age, and says so."""
    clock = Clock(time.time() - 3600)
    rec = make(tmp_path, clock, segment_bytes=8 * 1024, checkpoint_interval=0, compress=False)
    body = orjson.dumps({"text": "z" * 400, "sender": "coder"})
    for shift in (0.0, -YEAR, YEAR):  # today, a year back for a moment, today again
        clock.now += shift
        for _ in range(3):
            feed(rec, clock, *[[b"agents.coder", body] for _ in range(20)])
            clock.now += 1
    rec.close()
    layout = rec.layout
    segments = [p.name for p in list_segments(layout)]
    assert len(segments) >= 6
    log = str(layout.root)
    code, out, _ = run(
        capsys, "prune", "--older-than", "90d", "--dry-run", "--json", "--log-dir", log
    )
    plan = orjson.loads(out)
    assert code == 0 and plan["segments"] == []
    assert any("oldest first" in k["why"] for k in plan["kept"])
    behind = plan_prune(layout, Policy(older_than=1.0), now=clock.now - 86400)
    assert behind.empty and "behind the journal's last record" in behind.held
    code, out, _ = run(capsys, "prune", "--older-than", "90d", "--log-dir", log)
    assert code == 0 and [p.name for p in list_segments(layout)] == segments


def test_a_trash_entry_dated_in_the_future_says_so_and_its_grace_runs_on_the_boot_clock(
    journal: tuple[Layout, list[Checkpoint]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A prune made while the clock was a year ahead dates its trash entry a year on:
    once the clock is right, `trash list` says so, and `trash empty` deletes it once
    its grace has passed on the boot clock (before 2026-12-07: a year and 14 days on,
    and listed without a word). `--older-than 0` takes it at once."""
    layout, _cps = journal
    log = str(layout.root)
    real_time, real_clock = time.time, time.clock_gettime
    monkeypatch.setattr(time, "time", lambda: real_time() + YEAR)
    code, out, _ = run(capsys, "prune", "--max-size", "100K", "--json", "--log-dir", log)
    entry = orjson.loads(out)["trash"]
    assert code == 0 and entry
    monkeypatch.setattr(time, "time", real_time)  # put right
    code, out, _ = run(capsys, "trash", "list", "--log-dir", log)
    assert code == 0 and "dated in the future" in out
    code, out, _ = run(capsys, "trash", "empty", "--log-dir", log)
    assert code == 0 and "nothing in the trash" in out
    later = {"by": 0.0}

    def clocks(clk: int) -> float:  # the machine up 15 more days: every clock on
        return real_clock(clk) + later["by"]

    monkeypatch.setattr(time, "clock_gettime", clocks)
    monkeypatch.setattr(time, "time", lambda: real_time() + later["by"])
    later["by"] = 15 * 86400.0
    code, out, _ = run(capsys, "trash", "empty", "--log-dir", log)
    assert code == 0 and f"emptied trash/{entry}" in out


def test_a_pin_that_waited_for_a_prune_taking_its_checkpoint_is_refused(
    journal: tuple[Layout, list[Checkpoint]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`persist pin` resolved its checkpoint, then waited for the retention lock a
    prune held; the prune moved the checkpoint to the trash and the pin still said
    "pinned" (exit 0), a pin of nothing that `trash empty` then deleted. The prune runs
    here exactly in that window: when the pin first asks for the lock."""
    import recorder.store.pins as pins_module

    layout, cps = journal
    log = str(layout.root)
    real_lock = pins_module.retention_lock
    pruned: list[str] = []

    def prune_first(lay: Layout, wait: float = 30.0) -> Any:
        if not pruned:  # the prune that held the lock while the pin waited for it
            code, out, _ = run(capsys, "prune", "--older-than", "3d", "--json", "--log-dir", log)
            assert code == 0, out
            pruned.append(orjson.loads(out)["trash"])
            capsys.readouterr()
        return real_lock(lay, wait)

    monkeypatch.setattr(pins_module, "retention_lock", prune_first)
    code, out, err = run(capsys, "pin", cps[0].id, "--log-dir", log)
    [entry] = pruned
    assert code == 1 and out == "", (out, err)
    assert f"not pinned: a prune moved {cps[0].id} to trash/{entry}" in err
    assert f"`persist trash restore {entry}`" in err and len(err.strip().splitlines()) == 1
    assert read_pins(layout) == {}
    # as it says: put back, then pinned (the pin comes first now: the prune keeps it)
    monkeypatch.setattr(pins_module, "retention_lock", real_lock)
    assert run(capsys, "trash", "restore", entry, "--log-dir", log)[0] == 0
    assert run(capsys, "pin", cps[0].id, "--log-dir", log)[1].strip() == f"pinned {cps[0].id}"
    assert run(capsys, "prune", "--older-than", "3d", "--log-dir", log)[0] == 0
    assert cps[0].id in {cp.id for cp in list_checkpoints(layout)}


def test_a_pinned_checkpoint_in_the_trash_is_named_and_never_emptied(
    journal: tuple[Layout, list[Checkpoint]], capsys: pytest.CaptureFixture[str]
) -> None:
    """A pin a prune broke (before 2026-12-07 `persist pin` could write one while a
    prune took its checkpoint): doctor said 0 problems and `trash empty` deleted the
    pinned checkpoint without a word."""
    from recorder.doctor.run import diagnose

    layout, cps = journal
    log = str(layout.root)
    code, out, _ = run(capsys, "prune", "--older-than", "3d", "--json", "--log-dir", log)
    entry = orjson.loads(out)["trash"]
    assert code == 0 and cps[0].id in orjson.loads(out)["checkpoints"]
    # the pin as the race left it: written after the prune took its checkpoint
    layout.pins.write_bytes(orjson.dumps({"v": 1, "pins": {cps[0].id: {"pinned": 1.0}}}))
    [found] = [f for f in diagnose(layout.root).findings if f.check.endswith("pinned-in-trash")]
    assert found.severity.name == "PROBLEM" and cps[0].id in found.summary
    assert f"persist trash restore {entry}" in (found.fix or "")
    code, out, _ = run(capsys, "trash", "empty", "--older-than", "0", "--log-dir", log)
    assert code == 0 and f"kept trash/{entry}" in out and cps[0].id in out, out
    assert (layout.trash / entry / "checkpoints" / f"{cps[0].id}.json").is_file()
    code, out, _ = run(capsys, "trash", "empty", "--older-than", "0", "--json", "--log-dir", log)
    assert code == 0 and orjson.loads(out)["kept_pinned"] == {entry: [cps[0].id]}
    # unpinned, it goes with the next empty
    assert run(capsys, "unpin", cps[0].id, "--log-dir", log)[0] == 0
    code, out, _ = run(capsys, "trash", "empty", "--older-than", "0", "--json", "--log-dir", log)
    assert code == 0 and orjson.loads(out)["emptied"] == [entry]
