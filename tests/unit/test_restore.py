"""Restore bundles: exact records, manifest, integrity problems recorded, atomic install."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import orjson
import pytest

from recorder.export.restore import Bundle, build_bundle, check_range
from recorder.export.scope import BundleScope
from recorder.store.checkpoints import Checkpoint
from recorder.store.layout import Layout
from recorder.store.reader import open_store
from tests.demo_journal import RESTORE_T0 as T0
from tests.demo_journal import restore_journal as journal


def stored_lines_upto(root: Path, cp: Checkpoint) -> list[bytes]:
    store = open_store(root)
    return [r.line for r in store.records(0, store.checkpoint_index(cp)) if r.valid]


def test_bundle_holds_records_exactly_as_stored(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    cp, n = journal(root)
    bundle = build_bundle(root, cp.id, agent="coder")
    assert bundle.dir == root / "restore" / cp.id
    lines = bundle.jsonl.read_bytes().splitlines(keepends=True)
    assert lines == stored_lines_upto(root, cp)
    assert len(list(bundle.messages())) == n
    m = bundle.manifest
    assert m["checkpoint"]["id"] == cp.id and m["agent"] == "coder"
    assert m["messages"] == n == cp.messages
    assert m["time_range"]["first"] == pytest.approx(T0 + 1)
    assert m["time_range"]["last"] == pytest.approx(T0 + 40)
    assert m["integrity"] == {
        "scope": "range",
        "segments_verified": ["seg-000001.jsonl", "seg-000002.jsonl", "seg-000003.jsonl"],
        "damage": [],
        "ok": True,
        "damaged": False,
        "verified": True,
        "digest_problems": [],
        "problems": [],
        "gaps": 0,
        "missed": 0,
        "bad_lines": 0,
        "quarantined": 0,
        "refused": 0,
        # the demo writer's messages carry no publisher envelope
        "unsequenced": 40,
        "pruned": [],
        "caveats": ["40 messages from publishers without sequence numbers: loss not detectable"],
    }
    assert m["gaps"] == [] and m["bad_lines"] == []
    # fewer messages than the default scope: the whole conversation, nothing left behind
    assert m["scope"] == {"kind": "last", "last": 1000} and m["range"]["complete"] is True
    assert m["history"]["records"] == 0 and m["history"]["read"] is True
    import hashlib

    assert m["files"]["jsonl"]["sha256"] == hashlib.sha256(bundle.jsonl.read_bytes()).hexdigest()
    assert m["files"]["jsonl"]["records"] == len(lines)
    md = bundle.transcript.read_text()
    assert "message 39" in md and "after the checkpoint" not in md
    assert "\x1b" not in md and "\\x1b[31mred" in md  # escapes shown, never sent raw
    assert "✔ digest matches" in md
    # private files, private folders, no temp folder left behind
    assert stat.S_IMODE(bundle.jsonl.stat().st_mode) == 0o600
    assert stat.S_IMODE(bundle.dir.stat().st_mode) == 0o700
    assert [p.name for p in (root / "restore").iterdir()] == [cp.id]
    assert Bundle.load(bundle.dir).manifest == m


def test_digest_mismatch_and_gap_are_in_the_manifest(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    _cp, _ = journal(root, gap=True)
    seg = Layout(root).segment_path(1)
    raw = bytearray(seg.read_bytes())
    i = raw.index(b"message 3 ")
    raw[i : i + 9] = b"MESSAGE 3"  # damage after the checkpoint was taken
    seg.write_bytes(bytes(raw))
    m = build_bundle(root, "half way").manifest  # by label
    integrity = m["integrity"]
    assert integrity["ok"] is False and integrity["verified"] is False
    assert any("seg-000001.jsonl differs" in p for p in integrity["digest_problems"])
    assert any("1 gap, 3 messages known lost" in p for p in integrity["problems"])
    assert [(g["cause"], g["publisher"], g["missed"]) for g in m["gaps"]] == [
        ("publisher sequence jumped", "coder", 3)
    ]
    md = (root / "restore" / m["checkpoint"]["id"] / "transcript.md").read_text()
    assert "✘ digest" in md and "gap (publisher sequence jumped)" in md


def test_bad_line_and_quarantined_tail_are_in_the_manifest(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    cp, n = journal(root, bad=True)
    bundle = build_bundle(root, cp)
    m = bundle.manifest
    assert m["integrity"]["ok"] is False and m["integrity"]["verified"] is True
    assert m["integrity"]["bad_lines"] == 1 and m["integrity"]["quarantined"] == 1
    assert m["bad_lines"][0]["segment"].startswith("seg-")
    assert m["quarantined"][0]["reason"] == "torn tail"
    assert b"torn write" not in bundle.jsonl.read_bytes()  # not a record: left out, counted
    assert m["messages"] == n
    integrity = check_range(open_store(root), cp, BundleScope.whole())
    assert integrity is not None and integrity.problems() == [
        "1 damaged line (not restored)",
        "1 torn tail quarantined in recovery/ (lost from the journal)",
    ]


def test_rebuild_keeps_an_identical_bundle_and_leaves_a_changed_one_as_it_is(
    tmp_path: Path,
) -> None:
    """A bundle in place is never replaced nor changed, an agent may be reading it: one
    that holds what a restore would build is handed back, a different one of the same
    checkpoint, scope and redaction stays and the new one goes beside it (`<id>.2`);
    before 2026-12-07 it was replaced in place."""
    root = tmp_path / "logs"
    cp, _ = journal(root)
    first = build_bundle(root, cp, now=1.0)
    files = {p: p.read_bytes() for p in first.dir.iterdir()}
    inode = first.jsonl.stat().st_ino
    again = build_bundle(root, cp, now=2.0)
    assert again.manifest["created"] == 1.0 and again.jsonl.stat().st_ino == inode
    seg = Layout(root).segment_path(1)
    raw = bytearray(seg.read_bytes())
    raw[-30] = ord("#")
    seg.write_bytes(bytes(raw))
    changed = build_bundle(root, cp, now=3.0)
    assert changed.manifest["created"] == 3.0 and changed.manifest["integrity"]["verified"] is False
    assert changed.dir == root / "restore" / f"{cp.id}.2"
    assert {p: p.read_bytes() for p in first.dir.iterdir()} == files
    assert build_bundle(root, cp, now=4.0).manifest["created"] == 3.0  # the newest, kept
    assert sorted(p.name for p in (root / "restore").iterdir()) == [cp.id, f"{cp.id}.2"]


def test_two_restores_of_one_bundle_at_once_end_with_one_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restore that did not see the bundle another one renamed in meanwhile (the same
    checkpoint, scope and redaction) finds it there as it renames its own in: it hands
    that one back, whose files it leaves as they are, and removes its own."""
    from recorder.export import restore

    root = tmp_path / "logs"
    cp, _ = journal(root)
    first = build_bundle(root, cp, now=1.0)
    inode = first.jsonl.stat().st_ino
    monkeypatch.setattr(restore, "_generations", lambda *_a: [])  # it did not see it
    second = build_bundle(root, cp, now=2.0)
    assert second.dir == first.dir and second.manifest["created"] == 1.0
    assert first.jsonl.stat().st_ino == inode
    assert [p.name for p in (root / "restore").iterdir()] == [cp.id]


def test_manifest_is_json_with_every_field(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    cp, _ = journal(root, gap=True)
    m = orjson.loads((build_bundle(root, cp).manifest_path).read_bytes())
    for key in (
        "checkpoint",
        "messages",
        "time_range",
        "integrity",
        "gaps",
        "bad_lines",
        "quarantined",
        "refused",
        "files",
        "participants",
    ):
        assert key in m
    assert m["participants"] == {"planner": 20, "coder": 20}


def test_a_checkpoint_past_its_segments_end_holds_no_record_after_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint file whose position lies past its segment's end (changed by hand;
    or a power cut took the segment's unsynced tail and the restarted recorder wrote
    on): the bundle held the records written after the checkpoint. It now holds the
    segment's records up to the checkpoint's seq."""
    from recorder.cli.main import main

    root = tmp_path / "logs"
    cp, n = journal(root)
    assert cp.path is not None
    with open_store(root) as store:  # records after it in its segment: what it must not hold
        after = store.record(store.checkpoint_index(cp))
        assert after.segment == cp.segment and after.seq > cp.seq
        wanted = [r.line for r in store.records(0, store.checkpoint_index(cp))]
    data = orjson.loads(cp.path.read_bytes())
    data["position"]["offset"] = 10**12
    cp.path.write_bytes(orjson.dumps(data))
    bundle = build_bundle(root, cp, scope=BundleScope.whole())
    assert bundle.manifest["seq_range"]["last"] == cp.seq and bundle.manifest["messages"] == n
    assert bundle.jsonl.read_bytes() == b"".join(wanted)
    # the position that disagrees with the records is named: damage, exit 5
    assert main(["export", cp.id, "--format", "jsonl", "--log-dir", str(root)]) == 5
    out, err = capsys.readouterr()
    assert out.encode() == b"".join(wanted)
    assert f"damage: checkpoint {cp.id}'s position" in err
    argv = ["export", cp.id, "--format", "jsonl", "--allow-damage", "--log-dir", str(root)]
    assert main(argv) == 0
    assert capsys.readouterr().out.encode() == b"".join(wanted)


def test_a_checkpoint_whose_segment_lost_a_byte_before_it_holds_no_record_after_it(
    tmp_path: Path,
) -> None:
    """One byte deleted inside a message line of the checkpoint's segment, before its
    position: the lines after it start a byte earlier, the position fell inside the
    first line written after the checkpoint, and the bundle held that record. It now
    ends with the checkpoint's last record, and its digest check names the damage."""
    from recorder.store.layout import segment_name

    root = tmp_path / "logs"
    cp, n = journal(root)
    path = Layout(root).segments / segment_name(cp.segment)
    data = path.read_bytes()
    at = data.rindex(b"message ", 0, cp.offset)  # the last message's text, still JSON
    path.write_bytes(data[:at] + data[at + 1 :])
    bundle = build_bundle(root, cp, scope=BundleScope.whole())
    seqs = [orjson.loads(line)["seq"] for line in bundle.jsonl.read_bytes().splitlines()]
    assert max(seqs) == cp.seq == bundle.manifest["seq_range"]["last"]
    assert bundle.manifest["messages"] == n
    integrity = bundle.manifest["integrity"]
    assert not integrity["ok"] and integrity["digest_problems"], integrity


def test_a_checkpoint_whose_seq_says_more_than_its_intact_position_ends_at_the_position(
    tmp_path: Path,
) -> None:
    """A checkpoint file whose seq was changed (by hand, or a flipped digit) while its
    position still falls on a line start: the records after the position were taken in
    up to that seq, and the restore said "integrity ok" over records written after it."""
    root = tmp_path / "logs"
    cp, n = journal(root)
    assert cp.path is not None
    data = orjson.loads(cp.path.read_bytes())
    data["position"]["seq"] = cp.seq + 3  # three of the records written after it
    cp.path.write_bytes(orjson.dumps(data))
    store = open_store(root)
    assert store.checkpoint_index(store.checkpoints()[0]) == store.checkpoint_index(cp)
    bundle = build_bundle(root, store.checkpoints()[0], scope=BundleScope.whole())
    texts = bundle.jsonl.read_bytes()
    assert b"after the checkpoint" not in texts
    assert bundle.manifest["messages"] == n


def test_a_checkpoint_with_a_negative_position_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It exported 0 messages, exit 0."""
    from recorder.cli.main import main

    root = tmp_path / "logs"
    cp, _ = journal(root)
    assert cp.path is not None
    data = orjson.loads(cp.path.read_bytes())
    data["position"]["offset"] = -5
    cp.path.write_bytes(orjson.dumps(data))
    for argv in (["restore", cp.id], ["export", cp.id, "--format", "md"]):
        assert main([*argv, "--log-dir", str(root)]) == 1
        assert "position.offset is negative" in capsys.readouterr().err
    assert not (root / "restore" / cp.id).exists()


def test_a_checkpoint_label_with_terminal_escapes_is_shown_cleaned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """New labels are cleaned when made; one in an older or hand-made file was printed
    by `persist checkpoints` as it was (a window title set, the screen cleared)."""
    from recorder.cli.main import main
    from recorder.store.checkpoints import list_checkpoints

    root = tmp_path / "logs"
    cp, _ = journal(root)
    assert cp.path is not None
    data = orjson.loads(cp.path.read_bytes())
    data["label"] = "\x1b]0;OWNED\x07\x1b[2Jplan\x9b31m agreed"
    cp.path.write_bytes(orjson.dumps(data))
    (listed,) = [c for c in list_checkpoints(Layout(root)) if c.id == cp.id]
    assert listed.label == "]0;OWNED [2Jplan 31m agreed"
    assert main(["checkpoints", "--log-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "plan" in out and "\x1b" not in out and "\x07" not in out and "\x9b" not in out


@pytest.mark.parametrize("last", [3, None])
def test_the_range_check_says_what_the_bundle_of_that_scope_says(
    tmp_path: Path, last: int | None
) -> None:
    """The restore dialog's check read every record up to the checkpoint (seconds on a
    large journal, with the button greyed out) and named damage the bundle it offers
    does not hold; it now checks the range that bundle hands over, as the bundle does."""
    root = tmp_path / "logs"
    cp, _ = journal(root, bad=True)
    scope = BundleScope(last=last) if last is not None else BundleScope.whole()
    checked = check_range(open_store(root), cp, scope)
    assert checked is not None
    manifest = build_bundle(root, cp, scope=scope).manifest
    assert checked.to_json() == manifest["integrity"]
    assert checked.messages == manifest["messages"] == (last or cp.messages)


def test_finding_a_checkpoint_does_not_refresh_the_store_under_its_owner(tmp_path: Path) -> None:
    """persist-tui's poll refreshes its store, then reads new checkpoints: finding one
    past the store's view refreshed the store itself, so the poll's next refresh saw
    nothing new and the Recent pane never showed those records."""
    from tests.demo_journal import DemoWriter

    root = tmp_path / "logs"
    journal(root)
    store = open_store(root)
    seen = len(store)
    w = DemoWriter.open(root)
    for i in range(5):
        w.message(T0 + 10_000 + i, "coder", f"late {i}")
    cp = w.checkpoint(T0 + 10_010, "after the late ones", "manual")
    w.close()
    assert store.checkpoint_index(cp) <= seen < len(open_store(root))
    assert len(store) == seen and store.refresh() == 5 and len(store) == seen + 5


def test_a_bundle_kept_from_before_integrity_pruned_existed_is_still_described(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A manifest from before `integrity.pruned` existed made `persist restore` a
    KeyError traceback when its bundle was handed back. Such a bundle (of older code,
    its manifest not as this code writes it) is now built again beside it, and the
    words for what it holds still read its manifest."""
    from recorder.cli.main import main
    from recorder.export.restore import held_words

    root = tmp_path / "logs"
    cp, _ = journal(root)
    assert main(["restore", cp.id, "--log-dir", str(root)]) == 0
    manifest_path = root / "restore" / cp.id / "manifest.json"
    manifest = orjson.loads(manifest_path.read_bytes())
    del manifest["integrity"]["pruned"]
    manifest_path.write_bytes(orjson.dumps(manifest))
    capsys.readouterr()
    assert main(["restore", cp.id, "--log-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "  holds       the last 1000 messages (seq " in out
    assert (root / "restore" / f"{cp.id}.2").is_dir()
    kept = orjson.loads(manifest_path.read_bytes())
    assert "pruned" not in kept["integrity"] and held_words(kept) == "the last 1000 messages"


@pytest.mark.parametrize("lost", ["message 20", "message 30"])
def test_a_whole_line_lost_before_a_checkpoint_moves_no_record_across_it_quick_or_not(
    tmp_path: Path, lost: str
) -> None:
    """A whole line removed from the checkpoint's segment before its position (message
    20, or its own last record, message 30), as long as the line after the checkpoint:
    the position then falls on the start of the line after the first record written
    after the checkpoint. The quick map (persist-tui's timeline, every checkpoint at
    once) took it as it was, one record off: message 31 was the checkpoint's last. Quick
    or not, it now ends at the last record the checkpoint covers."""
    from recorder.store.layout import segment_name
    from tests.demo_journal import BASE_TS, DemoWriter

    root = tmp_path / "logs"
    w = DemoWriter.open(root, clock=lambda: BASE_TS)
    for i in range(10, 31):  # lines of one length: two-digit seqs and texts
        w.message(BASE_TS + i, "coder", f"message {i}")
    cp = w.checkpoint(BASE_TS + 40, "after thirty", "manual")
    for i in range(31, 36):
        w.message(BASE_TS + i, "coder", f"message {i}")
    w.close()
    path = Layout(root).segments / segment_name(cp.segment)
    lines = path.read_bytes().splitlines(keepends=True)
    [gone] = [line for line in lines if f'"{lost}"'.encode() in line]
    after = next(line for line in lines if b'"message 31"' in line)
    assert len(gone) == len(after)
    path.write_bytes(b"".join(line for line in lines if line != gone))
    kept = [orjson.loads(line)["seq"] for line in lines if line != gone]
    covered = [seq for seq in kept if seq <= cp.seq]
    with open_store(root) as store:
        for quick in (True, False):
            stop, moved = store.checkpoint_end(cp, quick=quick)
            assert [r.seq for r in store.records(0, stop)] == covered, quick
            assert moved


def test_a_checkpoint_whose_seq_says_less_than_its_position_is_named_as_damage(
    tmp_path: Path,
) -> None:
    """A checkpoint file whose seq was lowered (by hand, or a flipped digit) while its
    position still falls on a line start: the range ended by the seq, before records the
    position (and the digest) cover, and the restore said "integrity ok", exit 0; the
    disagreement is now damage, named."""
    root = tmp_path / "logs"
    cp, _ = journal(root)
    assert cp.path is not None
    data = orjson.loads(cp.path.read_bytes())
    data["position"]["seq"] = cp.seq - 3
    cp.path.write_bytes(orjson.dumps(data))
    changed = open_store(root).checkpoints()[0]
    bundle = build_bundle(root, changed)
    integrity = bundle.manifest["integrity"]
    assert integrity["damaged"], integrity
    assert any(
        f"checkpoint {cp.id}'s position" in d and f"seq {cp.seq - 3}" in d
        for d in integrity["damage"]
    ), integrity["damage"]
    untouched = tmp_path / "again"
    cp2, _ = journal(untouched)
    assert not build_bundle(untouched, cp2).manifest["integrity"]["damaged"]


KILLED_MIDWAY = """
import os, signal, sys
from recorder.export import parallel, restore, writers
def killed(*args, **kwargs):  # SIGKILLed here, as the OOM killer or `kill -9` would
    os.kill(os.getpid(), signal.SIGKILL)
{patch}
from recorder.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def killed_midway(patch: str, *argv: str) -> None:
    """Run `persist ARGV` in its own process, SIGKILLed where `patch` says."""
    import subprocess
    import sys

    script = KILLED_MIDWAY.format(patch=patch)
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, check=False)
    assert done.returncode == -9, done.stderr


def persist(*argv: str) -> tuple[int, str, str]:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "recorder.cli.main", *argv], capture_output=True, text=True
    )
    return done.returncode, done.stdout, done.stderr


def test_a_killed_restores_work_folder_is_named_by_doctor_and_removed_next_time(
    tmp_path: Path,
) -> None:
    """`persist restore` SIGKILLed midway leaves `restore/.building-<cp>-<pid>-<ns>/`
    with partial files: `persist doctor` names it, the next restore removes it (and
    `doctor --fix` too); a live process's work folder is never touched."""
    root = tmp_path / "logs"
    cp, _ = journal(root)
    log = str(root)
    live = root / "restore" / f".building-{cp.id}-{os.getpid()}-1"  # a restore running now
    killed_midway(
        "restore._transcript_footer = killed", "restore", cp.id, "--full", "--log-dir", log
    )
    [left] = [p for p in (root / "restore").iterdir() if p.name.startswith(".building-")]
    assert (left / "conversation.jsonl").stat().st_size > 0  # partial files
    live.mkdir(mode=0o700)
    code, out, _ = persist("doctor", "--log-dir", log)
    [line] = [
        line for line in out.splitlines() if "restore-leftover" in line or "left 1 work" in line
    ]
    assert line.startswith("warning  caches       killed restores left 1 work folder in restore/ ")
    assert left.name in line and live.name not in line
    assert "persist doctor --fix" in out and code == 8
    code, _out, err = persist("restore", cp.id, "--full", "--log-dir", log)
    assert code == 0, err
    full = f"{cp.id}.full"
    assert sorted(p.name for p in (root / "restore").iterdir()) == [live.name, full]
    (root / "restore" / full / "manifest.json").unlink()  # not kept: built again
    killed_midway(
        "restore._transcript_footer = killed", "restore", cp.id, "--full", "--log-dir", log
    )
    assert len(list((root / "restore").glob(".building-*"))) == 2
    code, out, _ = persist("doctor", "--fix", "--log-dir", log)
    assert "fixed     caches.restore-leftover: removed 1 work folder (" in out
    assert "restore/" not in out.split("\n\n", 1)[1]  # the re-check finds none
    assert sorted(p.name for p in (root / "restore").iterdir()) == [live.name, full]


def test_a_killed_exports_temp_file_and_pieces_are_removed_by_the_next_export(
    tmp_path: Path,
) -> None:
    """`persist export -o FILE` SIGKILLed while its workers render (the journal is
    large enough to be rendered in parallel) leaves `.FILE.<thread>.<pid>.tmp` and a
    folder of pieces beside FILE: the next export to FILE removes them; a temp file of
    another FILE, or of a live process, is left alone."""
    root = tmp_path / "logs"
    journal(root)
    out = tmp_path / "out"
    out.mkdir()
    other = out / f".notes.txt.1.{os.getpid()}.tmp"
    other.write_text("someone else's")
    mine_live = out / f".x.md.1.{os.getpid()}.tmp"
    mine_live.write_text("an export running now")
    argv = ("export", "--all", "--format", "md", "-o", str(out / "x.md"), "--log-dir", str(root))
    # rendered by 2 workers whatever the journal's size, killed as the first piece is copied
    patch = "writers.use_parallel = lambda *a: 2\nparallel._append = killed"
    killed_midway(patch, *argv)
    left = sorted(p.name for p in out.iterdir())
    assert any(n.startswith(".persist-pieces-") for n in left)
    assert any(n.startswith(".x.md.") and n != mine_live.name for n in left)
    code, _o, err = persist(*argv)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted([other.name, mine_live.name, "x.md"])


def test_a_full_restore_verifies_what_it_reads_though_a_prune_moves_it_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`persist restore --full` with a prune running meanwhile, as the restore begins to
    re-hash its range (after it indexed the journal): the segments it reads are the
    ones it verifies, so the bundle is whole and verified, never "seg-... is missing"
    (damage, exit 5)."""
    from recorder.cli.main import main
    from recorder.export import restore
    from tests.unit.test_parallel_export import prune_all

    root = tmp_path / "logs"
    cp, _ = journal(root)
    expected = stored_lines_upto(root, cp)
    real = restore.verify_range
    pruned: list[str] = []

    def pruned_meanwhile(*args: object) -> object:
        pruned.extend(prune_all(root))
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(restore, "verify_range", pruned_meanwhile)
    capsys.readouterr()
    code = main(["restore", cp.id, "--full", "--json", "--log-dir", str(root)])
    out, err = capsys.readouterr()
    assert pruned and code == 0, (out, err)
    m = orjson.loads(out)
    integrity = m["integrity"]
    assert integrity["ok"] and integrity["verified"] and not integrity["problems"]
    # every segment it read was re-hashed against the checkpoint, none called pruned
    names = [f"seg-00000{n}.jsonl" for n in range(1, len(pruned) + 2)]
    assert integrity["segments_verified"] == names and integrity["pruned"] == []
    assert m["messages"] == 40
    bundle = Bundle.load(root / "restore" / f"{cp.id}.full")
    assert bundle.jsonl.read_bytes().splitlines(keepends=True) == expected


def test_an_edited_manifest_is_not_handed_back_and_its_bundle_stays_as_it_is(
    tmp_path: Path,
) -> None:
    """A manifest changed since it was written (by hand, by an agent) no longer says
    what the bundle holds: asked for again, the bundle is built beside it (`<id>.2`),
    the edited one left as it is. Before, it was handed back, its "integrity ok" and
    999999 messages believed (`persist restore` exit 0, PERSIST_RESTORE_VERIFIED=1)."""
    root = tmp_path / "logs"
    cp, _ = journal(root, gap=True)
    first = build_bundle(root, cp, now=1.0)
    assert first.manifest["integrity"]["ok"] is False  # the gap
    m = orjson.loads(first.manifest_path.read_bytes())
    m["integrity"].update(ok=True, damaged=False, problems=[], caveats=[])
    m["messages"] = 999999
    edited = orjson.dumps(m, option=orjson.OPT_INDENT_2)
    first.manifest_path.write_bytes(edited)
    again = build_bundle(root, cp, now=2.0)
    assert again.dir == root / "restore" / f"{cp.id}.2"
    assert again.manifest["messages"] == 40 and again.manifest["integrity"]["ok"] is False
    assert first.manifest_path.read_bytes() == edited
    # only the messages count changed: the same
    m = orjson.loads(again.manifest_path.read_bytes())
    m["messages"] = 41
    again.manifest_path.write_bytes(orjson.dumps(m, option=orjson.OPT_INDENT_2))
    third = build_bundle(root, cp, now=3.0)
    assert third.dir == root / "restore" / f"{cp.id}.3" and third.manifest["messages"] == 40
    assert build_bundle(root, cp, now=4.0).manifest["created"] == 3.0  # intact: handed back


def test_a_bundle_whose_prune_note_changed_is_built_again_beside_it(tmp_path: Path) -> None:
    """A bundle's manifest and transcript name the trash entry pruning moved the
    range's earlier segments to: once that entry is emptied (or restored and pruned
    again into another), the bundle in place says what is no longer so, and a restore
    builds it again beside it. Before, it was handed back naming the entry gone."""
    from recorder.cli.main import main
    from tests.demo_journal import build_demo

    root = build_demo(tmp_path / "logs")
    log = ["--log-dir", str(root)]
    assert main(["prune", "--older-than", "90d", *log]) == 0
    (entry,) = os.listdir(root / "trash")
    first = build_bundle(root, "latest", now=1.0)
    assert f"in trash {entry}" in first.manifest["integrity"]["pruned"][0]
    files = {p: p.read_bytes() for p in first.dir.iterdir()}
    assert main(["trash", "empty", "--older-than", "0", *log]) == 0
    again = build_bundle(root, "latest", now=2.0)
    assert again.dir == first.dir.with_name(f"{first.dir.name}.2")
    (note,) = again.manifest["integrity"]["pruned"]
    assert "trash emptied on" in note and entry not in note
    assert entry not in again.transcript.read_text()
    assert {p: p.read_bytes() for p in first.dir.iterdir()} == files
    assert build_bundle(root, "latest", now=3.0).manifest["created"] == 2.0


def test_a_bundle_of_a_relative_log_folder_names_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest's `log_dir` (and the bundle's paths) are absolute, so `history()`
    reads the journal from any working folder; a log folder gone is said, not read as
    an empty history. Before, `--log-dir logs` wrote "logs", and `history()` elsewhere
    gave no record without a word."""
    from recorder.export.writers import ExportError

    root = tmp_path / "logs"
    cp, _ = journal(root)
    expected = stored_lines_upto(root, cp)
    monkeypatch.chdir(tmp_path)
    bundle = build_bundle("logs", cp, scope=BundleScope(last=5))
    assert bundle.manifest["log_dir"] == str(root) and bundle.dir.is_absolute()
    start = bundle.manifest["range"]["start_index"]
    assert start > 0
    monkeypatch.chdir("/")
    assert [r.line for r in bundle.history()] == expected[:start]
    root.rename(tmp_path / "moved")
    with pytest.raises(ExportError, match=f"{re.escape(str(root))} holds no journal"):
        list(bundle.history())
