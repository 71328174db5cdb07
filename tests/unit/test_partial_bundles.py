"""Restore bundles hold only the range asked for (default: the last N messages), verify
what they hand over every time, keep an identical bundle in place, and never call a
damaged range healthy; `full` reads and verifies everything."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import orjson
import pytest

from recorder.export.restore import SEAL, build_bundle, manifest_digest
from recorder.export.scope import BundleScope
from recorder.store.checkpoints import Checkpoint
from recorder.store.layout import Layout
from recorder.store.reader import open_store
from tests.demo_journal import DemoClock, DemoWriter

T0 = 1_800_000_000.0
MESSAGES = 60


def journal(root: Path, *, bad_at: int | None = None) -> tuple[Checkpoint, Checkpoint]:
    """60 messages over many small segments, a checkpoint after 30 and one at the end,
    then messages after it; a damaged line after message `bad_at` if given."""
    clock = DemoClock(T0)
    w = DemoWriter.open(root, segment_bytes=2048, clock=clock)
    half = None
    for i in range(MESSAGES):
        clock.now = T0 + i
        w.message(T0 + i, ("planner", "coder")[i % 2], f"message {i}", topic="chat")
        if i == bad_at:
            w.bad_line(b"garbage written over a line\n")
        if i == 29:
            half = w.checkpoint(T0 + i + 0.5, "half", "manual")
    end = w.checkpoint(T0 + MESSAGES, "end", "manual")
    for i in range(3):
        w.message(T0 + 100 + i, "coder", f"after the checkpoint {i}")
    w.close()
    assert half is not None
    return half, end


def stored(root: Path, cp: Checkpoint) -> list[bytes]:
    with open_store(root) as store:
        return [r.line for r in store.records(0, store.checkpoint_index(cp))]


def segments(root: Path) -> list[Path]:
    return sorted((root / "segments").glob("seg-*.jsonl"))


def test_last_n_holds_exactly_the_tail_and_the_rest_is_readable(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    _half, end = journal(root)
    bundle = build_bundle(root, end, scope=BundleScope(last=10), durable=False)
    lines = stored(root, end)
    got = bundle.jsonl.read_bytes().splitlines(keepends=True)
    m = bundle.manifest
    assert got == lines[m["range"]["start_index"] :]  # byte for byte, up to the checkpoint
    assert orjson.loads(got[0])["kind"] == "msg"  # it starts with the 10th message from the end
    assert sum(orjson.loads(x)["kind"] == "msg" for x in got) == 10
    assert m["messages"] == 10 and m["scope"] == {"kind": "last", "last": 10}
    assert m["range"]["complete"] is False and not bundle.complete
    assert m["seq_range"] == {
        "first": orjson.loads(got[0])["seq"],
        "last": orjson.loads(got[-1])["seq"],
    }
    assert m["history"]["records"] == m["range"]["start_index"] and not m["history"]["read"]
    # the range's segments were re-hashed; earlier ones were not read
    assert m["integrity"]["verified"] and m["integrity"]["ok"]
    assert (
        m["integrity"]["segments_verified"] == [segments(root)[-1].name]
        or len(m["integrity"]["segments_verified"]) <= 2
    )
    # the rest, lazily from the journal: together they are the whole conversation
    history = [r.line for r in bundle.history()]
    assert history + got == lines
    md = bundle.transcript.read_text()
    assert "message 59" in md and "message 49" not in md.replace("message 59", "")
    assert "message 50" in md and "the last 10 messages" in md


def test_since_a_checkpoint_and_full(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    half, end = journal(root)
    lines = stored(root, end)
    since = build_bundle(root, end, scope=BundleScope(last=None, since=half), durable=False)
    assert since.manifest["messages"] == MESSAGES - 30
    assert since.jsonl.read_bytes().splitlines(keepends=True) == lines[len(stored(root, half)) :]
    full = build_bundle(root, end, scope=BundleScope.whole(), durable=False)
    assert full.jsonl.read_bytes().splitlines(keepends=True) == lines
    m = full.manifest
    assert m["range"]["complete"] and m["history"] == {
        "records": 0,
        "read": True,
        "verified_by_cache": [],
        "not_checked": [],
        "not_covered": [],
        "problems": [],
    }
    assert (
        m["integrity"]["segments_verified"]
        == [p.name for p in segments(root)][: len(m["integrity"]["segments_verified"])]
    )
    assert len(m["integrity"]["segments_verified"]) == len(end.segments)
    assert m["messages"] == end.messages == MESSAGES
    assert list(full.history()) == []


def test_an_identical_bundle_is_kept_and_a_damaged_range_is_not(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    _half, end = journal(root)
    scope = BundleScope(last=10)
    first = build_bundle(root, end, scope=scope, now=1.0, durable=False)
    inode = first.jsonl.stat().st_ino
    again = build_bundle(root, end, scope=scope, now=2.0, durable=False)
    assert again.manifest["created"] == 1.0 and again.jsonl.stat().st_ino == inode  # reused
    # a bundle file changed on disk: rebuilt
    with open(first.transcript, "ab") as f:
        f.write(b"edited")
    third = build_bundle(root, end, scope=scope, now=3.0, durable=False)
    assert third.manifest["created"] == 3.0
    assert (
        hashlib.sha256(third.transcript.read_bytes()).hexdigest()
        == (third.manifest["files"]["markdown"]["sha256"])
    )
    # another scope for the same checkpoint: rebuilt
    wider = build_bundle(root, end, scope=BundleScope(last=20), now=4.0, durable=False)
    assert wider.manifest["created"] == 4.0 and wider.manifest["messages"] == 20
    # the range damaged since: never the old healthy bundle
    last = segments(root)[-2 if end.segment < int(segments(root)[-1].stem[4:]) else -1]
    raw = bytearray(last.read_bytes())
    i = raw.index(b"message 5")
    raw[i : i + 9] = b"MESSAGE 5"
    last.write_bytes(bytes(raw))
    damaged = build_bundle(root, end, scope=BundleScope(last=20), now=5.0, durable=False)
    assert damaged.manifest["created"] == 5.0
    assert damaged.manifest["integrity"]["verified"] is False
    assert damaged.manifest["integrity"]["ok"] is False
    assert damaged.manifest["integrity"]["damaged"] is True


def test_damage_outside_the_range_is_not_claimed_checked_and_full_finds_it(
    tmp_path: Path,
) -> None:
    root = tmp_path / "logs"
    _half, end = journal(root, bad_at=3)  # a damaged line early in the journal
    partial = build_bundle(root, end, scope=BundleScope(last=10), durable=False).manifest
    assert partial["integrity"]["bad_lines"] == 0 and not partial["integrity"]["damaged"]
    assert partial["history"]["read"] is False and partial["history"]["records"] > 0
    full = build_bundle(root, end, scope=BundleScope.whole(), durable=False).manifest
    assert full["integrity"]["bad_lines"] == 1 and full["integrity"]["damaged"] is True
    assert full["bad_lines"][0]["segment"] == "seg-000001.jsonl"


def test_damage_inside_the_range_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    _half, end = journal(root, bad_at=55)
    m = build_bundle(root, end, scope=BundleScope(last=10), durable=False).manifest
    assert m["integrity"]["bad_lines"] == 1 and m["integrity"]["damaged"] is True
    assert m["integrity"]["ok"] is False
    assert "1 damaged line (not restored)" in m["integrity"]["problems"]


def test_history_segments_changed_or_missing(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    _half, end = journal(root)
    first = segments(root)[0]
    # the recorder's digest cache vouches for unchanged closed segments before the range
    m = build_bundle(root, end, scope=BundleScope(last=5), durable=False).manifest
    cached = m["history"]["verified_by_cache"]
    assert first.name in cached and m["history"]["not_checked"] == []
    # changed after its digest was cached (its mtime moved): no longer claimed checked
    raw = bytearray(first.read_bytes())
    raw[-30] = ord("#")
    first.write_bytes(bytes(raw))
    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 10**9))
    m = build_bundle(root, end, scope=BundleScope(last=5), durable=False).manifest
    assert first.name in m["history"]["not_checked"]
    assert first.name not in m["history"]["verified_by_cache"]
    full = build_bundle(root, end, scope=BundleScope.whole(), durable=False).manifest
    assert full["integrity"]["verified"] is False  # --full re-hashes it: the change is found
    assert f"{first.name} differs from the checkpoint" in full["integrity"]["digest_problems"]
    # a segment before the range deleted: damage, whatever the scope
    segments(root)[1].unlink()
    m = build_bundle(root, end, scope=BundleScope(last=5), durable=False).manifest
    assert m["integrity"]["damaged"] is True
    assert any("seg-000002.jsonl is missing" in p for p in m["integrity"]["problems"])


def test_last_counts_messages_not_records(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    clock = DemoClock(T0)
    w = DemoWriter.open(root, clock=clock)
    for i in range(10):
        w.message(T0 + i, "a", f"m{i}")
        w.gap(T0 + i, "a", 1, 3)  # a record between every two messages
    cp = w.checkpoint(T0 + 20, "end", "manual")
    w.close()
    m = build_bundle(root, cp, scope=BundleScope(last=3), durable=False).manifest
    assert m["messages"] == 3 and m["records"] == 6 and m["integrity"]["gaps"] == 3
    assert BundleScope(last=3).env() == "last 3" and BundleScope.whole().env() == "full"


@pytest.mark.parametrize("last", [1, 59, 60, 500])
def test_any_n(tmp_path: Path, last: int) -> None:
    root = tmp_path / "logs"
    _half, end = journal(root)
    b = build_bundle(root, end, scope=BundleScope(last=last), durable=False)
    m = b.manifest
    assert m["messages"] == min(last, MESSAGES)
    assert m["range"]["complete"] is (last >= MESSAGES)
    assert b.dir == Layout(root).restore / f"{end.id}.last-{last}" and b.dir.is_dir()


def scratch(root: Path, cp: Checkpoint, tmp: Path) -> tuple[bytes, bytes, dict]:  # type: ignore[type-arg]
    """The full bundle of `cp` built with no earlier bundle around."""
    import shutil

    copy = tmp / "scratch"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("restore"))
    b = build_bundle(copy, cp.id, scope=BundleScope.whole(), durable=False)
    return (
        b.jsonl.read_bytes(),
        b.transcript.read_bytes().replace(bytes(copy), bytes(root)),
        b.manifest,
    )


def test_a_full_bundle_goes_on_from_an_earlier_one(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    half, end = journal(root, bad_at=10)
    earlier = build_bundle(root, half, scope=BundleScope.whole(), durable=False)
    assert "reused" not in earlier.manifest
    later = build_bundle(root, end, scope=BundleScope.whole(), durable=False)
    m = later.manifest
    assert m["reused"]["bundle"] == f"{half.id}.full"
    assert m["reused"]["records"] == earlier.manifest["range"]["stop_index"]
    assert m["reused"]["rendered"] == m["range"]["stop_index"] - m["reused"]["records"]
    # exactly what building it from scratch gives, counts and damage included
    jsonl, md, fresh = scratch(root, end, tmp_path)
    assert later.jsonl.read_bytes() == jsonl and later.transcript.read_bytes() == md
    for key in ("messages", "records", "participants", "summary", "gaps", "bad_lines"):
        assert m[key] == fresh[key], key
    assert m["integrity"] == fresh["integrity"] and m["integrity"]["bad_lines"] == 1


def test_an_earlier_bundle_that_changed_is_not_reused(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    half, end = journal(root)
    earlier = build_bundle(root, half, scope=BundleScope.whole(), durable=False)
    body = earlier.manifest["files"]["markdown"]["body"]
    raw = bytearray(earlier.transcript.read_bytes())
    raw[(body["start"] + body["end"]) // 2] ^= 1  # inside the records' part
    earlier.transcript.write_bytes(bytes(raw))
    later = build_bundle(root, end, scope=BundleScope.whole(), durable=False)
    assert "reused" not in later.manifest  # built from scratch instead
    jsonl, md, _fresh = scratch(root, end, tmp_path)
    assert later.jsonl.read_bytes() == jsonl and later.transcript.read_bytes() == md


def test_an_earlier_bundle_whose_manifest_was_edited_is_not_gone_on_from(tmp_path: Path) -> None:
    """A later full bundle takes its counts, gaps and participants from the earlier
    bundle it goes on from: one whose manifest changed since it was written (its files
    intact) is passed over, and the later bundle is built from scratch. Before, a
    manifest edited to say no gap and a participant "nobody" was copied on."""
    root = tmp_path / "logs"
    half, end = journal(root, bad_at=10)
    earlier = build_bundle(root, half, scope=BundleScope.whole(), durable=False)
    m = orjson.loads(earlier.manifest_path.read_bytes())
    m["bad_lines"], m["summary"]["kinds"] = [], {"msg": m["summary"]["kinds"]["msg"]}
    m["participants"] = {"nobody": 1}
    earlier.manifest_path.write_bytes(orjson.dumps(m))
    later = build_bundle(root, end, scope=BundleScope.whole(), durable=False).manifest
    assert "reused" not in later and later["participants"] == {"planner": 30, "coder": 30}
    _jsonl, _md, fresh = scratch(root, end, tmp_path)
    for key in ("messages", "records", "participants", "summary", "bad_lines", "integrity"):
        assert later[key] == fresh[key], key


def test_a_damaged_journal_is_never_covered_by_an_earlier_bundle(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    half, end = journal(root)
    build_bundle(root, half, scope=BundleScope.whole(), durable=False)
    first = segments(root)[0]
    first.write_bytes(first.read_bytes().replace(b'"message 1"', b'"massage 1"', 1))
    later = build_bundle(root, end, scope=BundleScope.whole(), durable=False).manifest
    assert "reused" not in later and later["integrity"]["verified"] is False
    assert later["integrity"]["damaged"] is True


def test_a_complete_bundle_with_its_first_segment_gone_is_not_verified(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    _half, end = journal(root)
    segments(root)[0].unlink()
    m = build_bundle(root, end, scope=BundleScope.whole(), durable=False).manifest
    assert m["range"]["complete"] is True
    assert m["integrity"]["verified"] is False and m["integrity"]["damaged"] is True
    assert "seg-000001.jsonl is missing" in m["integrity"]["digest_problems"]


def test_the_body_digest_covers_the_header_too_and_older_bundles_still_go_on(
    tmp_path: Path,
) -> None:
    """`body.prefix_sha256` is the digest of the transcript up to the body's end (one
    hashing pass for the file): a changed header means a rebuild. A bundle written
    before it (a body-only `sha256`) is still gone on from."""
    root = tmp_path / "logs"
    half, end = journal(root)
    earlier = build_bundle(root, half, scope=BundleScope.whole(), durable=False)
    body = earlier.manifest["files"]["markdown"]["body"]
    raw = earlier.transcript.read_bytes()
    assert set(body) == {"start", "end", "prefix_sha256"}
    assert body["prefix_sha256"] == hashlib.sha256(raw[: body["end"]]).hexdigest()
    jsonl, md, _fresh = scratch(root, end, tmp_path)

    earlier.transcript.write_bytes(raw.replace(b"# Conversation", b"# Konversation", 1))
    later = build_bundle(root, end, scope=BundleScope.whole(), durable=False)
    assert "reused" not in later.manifest
    assert later.jsonl.read_bytes() == jsonl and later.transcript.read_bytes() == md

    later_dir = later.dir
    for path in later_dir.iterdir():
        path.unlink()
    later_dir.rmdir()
    earlier.transcript.write_bytes(raw)
    manifest = dict(earlier.manifest)
    old_body = {
        "start": body["start"],
        "end": body["end"],
        "sha256": hashlib.sha256(raw[body["start"] : body["end"]]).hexdigest(),
    }
    manifest["files"]["markdown"]["body"] = old_body
    manifest[SEAL] = manifest_digest(manifest)  # as that code wrote it (this code's seal)
    earlier.manifest_path.write_bytes(orjson.dumps(manifest))
    again = build_bundle(root, end, scope=BundleScope.whole(), durable=False)
    assert again.manifest["reused"]["bundle"] == f"{half.id}.full"
    assert again.jsonl.read_bytes() == jsonl and again.transcript.read_bytes() == md


@pytest.mark.parametrize(
    "damage",
    ["jsonl flipped", "jsonl short", "transcript short", "transcript gone"],
)
def test_an_earlier_bundle_whose_files_differ_is_rebuilt_not_copied(
    tmp_path: Path, damage: str
) -> None:
    """The earlier JSONL is checked by the new file's own digest (it is its first
    bytes), the transcript body by the earlier prefix digest: either way a changed,
    short or missing file means the bundle is built from scratch, the same bytes."""
    root = tmp_path / "logs"
    half, end = journal(root, bad_at=40)
    earlier = build_bundle(root, half, scope=BundleScope.whole(), durable=False)
    which, how = damage.split()
    path = earlier.jsonl if which == "jsonl" else earlier.transcript
    raw = bytearray(path.read_bytes())
    if how == "flipped":
        raw[len(raw) // 2] ^= 1
        path.write_bytes(bytes(raw))
    elif how == "short":
        path.write_bytes(bytes(raw[: len(raw) // 2]))
    else:
        path.unlink()
    later = build_bundle(root, end, scope=BundleScope.whole(), durable=False)
    assert "reused" not in later.manifest
    jsonl, md, fresh = scratch(root, end, tmp_path)
    assert later.jsonl.read_bytes() == jsonl and later.transcript.read_bytes() == md
    assert later.manifest["files"]["jsonl"]["sha256"] == fresh["files"]["jsonl"]["sha256"]


def test_range_problems_come_in_the_checkpoints_order_though_hashed_at_once(
    tmp_path: Path,
) -> None:
    """Segments are re-hashed on several threads: what is found is still listed in the
    checkpoint's order, each segment once (changed, cut short, missing)."""
    from recorder.export.scope import verify_range

    root = tmp_path / "logs"
    _half, end = journal(root)
    segs = segments(root)
    assert len(segs) >= 8
    segs[1].write_bytes(segs[1].read_bytes().replace(b"message", b"massage", 1))
    segs[3].write_bytes(segs[3].read_bytes()[:100])
    segs[4].unlink()
    segs[6].write_bytes(segs[6].read_bytes().replace(b"message", b"massage", 1))
    v = verify_range(Layout(root), end, 0)
    assert not v.ok
    assert v.problems == [
        f"{segs[1].name} differs from the checkpoint",
        f"{segs[3].name} is shorter than {end.segments[3]['size']} bytes",
        f"{segs[4].name} is missing",
        f"{segs[6].name} differs from the checkpoint",
    ]
    assert v.segments == [s.name for k, s in enumerate(segs) if k != 4][: len(v.segments)]


def test_a_full_bundle_goes_on_from_an_earlier_one_after_a_prune(tmp_path: Path) -> None:
    """After a prune, a full bundle starts at the first record left and is not
    "complete" (older records were pruned): it was no longer gone on from by the next
    one, which rendered the whole journal again. Reused now (the earlier checkpoint's
    index is the same after the prune), the same bytes as built from scratch; and the
    agent's hook says what the bundle holds, not that the rest is in the journal."""
    from recorder.daemon.maintenance import prune
    from recorder.hooks.lifecycle import restore_context
    from recorder.store.layout import list_segments
    from recorder.store.retention_config import Policy

    root = tmp_path / "logs"
    clock = DemoClock(1_800_000_000.0)
    w = DemoWriter.open(root, segment_bytes=200_000, clock=clock)
    for i in range(3000):
        w.message(clock.now + i, "coder", f"message {i} " + "lorem " * 40)
    w.journal.flush()
    layout = Layout(root)
    size = sum(p.stat().st_size for p in list_segments(layout))
    assert prune(layout, Policy(max_size=size - 300_000), dry_run=False).trash is not None
    first = w.checkpoint(clock.now + 3000, "A", "manual")
    earlier = build_bundle(root, first, scope=BundleScope.whole(), durable=False)
    assert earlier.manifest["range"]["complete"] is False and earlier.manifest["integrity"]["ok"]
    context = restore_context(first, earlier)
    assert "that the journal still holds (older parts were pruned" in context
    assert "persist restore --full" not in context
    for i in range(200):
        w.message(clock.now + 4000 + i, "coder", f"later {i}")
    second = w.checkpoint(clock.now + 5000, "B", "manual")
    w.close()
    later = build_bundle(root, second, scope=BundleScope.whole(), durable=False)
    assert later.manifest["reused"]["bundle"] == f"{first.id}.full"
    jsonl, md, fresh = scratch(root, second, tmp_path)
    assert later.jsonl.read_bytes() == jsonl and later.transcript.read_bytes() == md
    assert later.manifest["integrity"] == fresh["integrity"]


def test_a_restore_removes_old_bundles_but_the_newest_of_each_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bundles are bounded: a restore removes those not written or handed back for a
    week (`BUNDLES_KEPT_FOR`), except the newest of each scope and redaction (what a
    later restore goes on from); `persist restore --list` shows them all, `--clean
    --older-than AGE` removes what is older than AGE, and a bundle handed back again
    counts as new."""
    from recorder.cli.main import main

    root = tmp_path / "logs"
    half, end = journal(root)
    old = time.time() - 30 * 86400
    default_half = build_bundle(root, half, durable=False)
    last10_half = build_bundle(root, half, scope=BundleScope(last=10), durable=False)
    full_half = build_bundle(root, half, scope=BundleScope.whole(), durable=False)
    full_end = build_bundle(root, end, scope=BundleScope.whole(), durable=False)
    for bundle in (default_half, last10_half, full_half, full_end):
        os.utime(bundle.dir, (old, old))
    last5_half = build_bundle(root, half, scope=BundleScope(last=5), durable=False)

    default_end = build_bundle(root, end, durable=False)
    kept = [default_end, full_end, last10_half, last5_half]
    assert sorted(p.name for p in (root / "restore").iterdir()) == sorted(b.dir.name for b in kept)

    # handed back: new again (its files untouched)
    digest = hashlib.sha256(last10_half.jsonl.read_bytes()).hexdigest()
    again = build_bundle(root, half, scope=BundleScope(last=10), durable=False)
    assert again.dir == last10_half.dir and time.time() - again.dir.stat().st_mtime < 60
    assert hashlib.sha256(again.jsonl.read_bytes()).hexdigest() == digest

    capsys.readouterr()
    assert main(["restore", "--list", "--log-dir", str(root)]) == 0
    out = capsys.readouterr().out
    for bundle in kept:
        assert bundle.dir.name in out
    assert f"{full_end.dir.name}  " in out and "newest full" in out
    again_half = build_bundle(root, half, durable=False)  # fresh, but not the newest default
    assert main(["restore", "--clean", "--older-than", "0", "--log-dir", str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith(f"removed restore bundle {again_half.dir.name} (")
    assert out[1].startswith("1 bundle removed, 4 kept (")
    assert not again_half.dir.exists() and all(b.dir.is_dir() for b in kept)
    assert main(["restore", "--clean", "--log-dir", str(root)]) == 0
    assert capsys.readouterr().out.startswith("no restore bundle to remove (4 kept, ")
    assert main(["restore", "--log-dir", str(root)]) == 2
    assert "a CHECKPOINT" in capsys.readouterr().err


def test_a_bundle_a_live_agent_was_handed_stays_while_it_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An agent reads its bundle lazily (`Bundle.history()`, the PERSIST_RESTORE_*
    files) for as long as it runs: the bundle its registration names is neither removed
    by another restore's age cleanup nor by `--clean` while that agent is registered and
    alive (`--list` says who uses it); unregistered (or its PID another process's), it
    goes as any other. A registration written before the field is read as before."""
    from recorder.cli.main import main
    from recorder.launch.registry import live_agents, register_agent

    root = tmp_path / "logs"
    half, end = journal(root)
    layout = Layout(root)
    handed = build_bundle(root, half, durable=False)
    registration = register_agent(layout, "coder", None, False, bundle=handed.dir)
    old = time.time() - 30 * 86400
    os.utime(handed.dir, (old, old))
    newest = build_bundle(root, end, durable=False)  # its age cleanup would take `handed`
    assert handed.dir.is_dir() and newest.dir.is_dir()
    (mine,) = live_agents(layout)
    assert mine["bundle"] == handed.dir.name

    capsys.readouterr()
    assert main(["restore", "--list", "--log-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"{handed.dir.name}  " in out
    assert f"kept: in use by coder (pid {os.getpid()})" in out, out
    assert main(["restore", "--list", "--json", "--log-dir", str(root)]) == 0
    rows = {r["name"]: r for r in orjson.loads(capsys.readouterr().out)}
    assert rows[handed.dir.name]["in_use_by"] == [f"coder (pid {os.getpid()})"]
    assert rows[newest.dir.name]["in_use_by"] == []
    assert main(["restore", "--clean", "--older-than", "0", "--log-dir", str(root)]) == 0
    assert capsys.readouterr().out.startswith("no restore bundle to remove (2 kept, ")
    assert handed.dir.is_dir()

    # a registration written before the field: read as before, it protects nothing
    record = orjson.loads(registration.read_bytes())
    del record["bundle"]
    registration.write_bytes(orjson.dumps(record))
    assert [a.get("bundle") for a in live_agents(layout)] == [None]
    # its PID another process's now (a start key not its own): not alive, not in use
    registration.write_bytes(orjson.dumps({**record, "bundle": handed.dir.name, "start_key": "x"}))
    assert main(["restore", "--clean", "--older-than", "0", "--log-dir", str(root)]) == 0
    assert capsys.readouterr().out.startswith(f"removed restore bundle {handed.dir.name} (")
    assert not handed.dir.exists() and newest.dir.is_dir()
