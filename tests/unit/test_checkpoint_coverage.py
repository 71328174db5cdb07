"""A checkpoint's digest must name every segment of the journal up to it (pruned ones
aside): one that leaves some out (a recorder started before compression took it after
`persist compact` compressed the closed segments under it) vouches for nothing in them,
and verify, restore and doctor say so instead of "integrity ok"."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from recorder.cli.main import main
from recorder.store.checkpoints import combine, list_checkpoints, verify_checkpoint
from recorder.store.compact import compact
from recorder.store.layout import Layout, list_segments
from tests.unit.test_daemon import Clock, feed, make


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def journal(tmp_path: Path, *, vouching: bool = False) -> tuple[Layout, str]:
    """Four segments of text messages, compressed but the last, and a checkpoint as a
    recorder from before compression wrote it: its digest names only the active segment
    (a hand-written file: every field as that recorder wrote them). With `vouching`, the
    checkpoint it was made from stays: it names the first three whole. Returns the
    layout and that checkpoint's label."""
    clock = Clock()
    rec = make(tmp_path, clock, segment_bytes=16 * 1024, compress=False, checkpoint_interval=0)
    for n in range(1, 121):
        body = {"text": f"message {n} " + "words " * 40, "sender": "coder"}
        feed(rec, clock, [b"agents.coder", orjson.dumps(body)])
        clock.now += 1
    cp = rec.checkpoint("today", "manual", clock.now, force=True)
    rec.close()
    assert cp is not None and cp.path is not None
    layout = rec.layout
    assert len(list_segments(layout)) >= 4 and cp.segment == len(list_segments(layout))
    compact(layout)
    assert sum(p.name.endswith(".zst") for p in list_segments(layout)) == cp.segment - 1
    old = orjson.loads(cp.path.read_bytes())
    own = [e for e in cp.segments if e["name"] == old["position"]["segment"]]
    old.update(id=old["id"] + "-old", label="after-compact", created=old["created"] + 1)
    old["digest"] = {"algorithm": "sha256", "value": combine(own), "segments": own}
    (layout.checkpoints / f"{old['id']}.json").write_bytes(orjson.dumps(old))
    if not vouching:
        cp.path.unlink()
    return layout, "after-compact"


def change_a_record(layout: Layout) -> None:
    """One record in seg-000002 changed, the segment still a valid compressed one."""
    from recorder.store.segfile import open_segment

    path = layout.segments / "seg-000002.jsonl.zst"
    with open_segment(path) as seg:
        data = b"".join(seg.chunks(0, seg.size))
    assert b'"message 40 ' in data
    plain = layout.segments / "seg-000002.jsonl"
    plain.write_bytes(data.replace(b'"message 40 ', b'"MESSAGE 40 '))
    path.unlink()
    for cache in layout.index.glob("seg-000002*"):
        cache.unlink()
    compact(layout)
    assert path.exists() and not plain.exists()


def test_a_checkpoint_that_leaves_segments_out_does_not_verify(tmp_path: Path) -> None:
    layout, _ = journal(tmp_path)
    [cp] = list_checkpoints(layout)
    v = verify_checkpoint(layout, cp)
    assert not v.ok
    assert v.uncovered == [f"seg-{n:06d}.jsonl" for n in range(1, cp.segment)]
    assert f"its digest does not cover seg-000001.jsonl to seg-{cp.segment - 1:06d}.jsonl" in (
        v.summary
    )
    assert "unverified" in v.summary


def test_segments_another_checkpoint_names_whole_and_matches_are_verified_by_it(
    tmp_path: Path,
) -> None:
    """The checkpoint it was made from names the first three whole: they verify by its
    digest while they are as it names them, and no longer once one record changed."""
    layout, label = journal(tmp_path, vouching=True)
    by_label = {cp.label: cp for cp in list_checkpoints(layout)}
    assert verify_checkpoint(layout, by_label["today"]).ok  # names all four: verified
    v = verify_checkpoint(layout, by_label[label])
    assert v.ok and v.uncovered == []
    assert f"which its digest does not name, match checkpoint {by_label['today'].id}'s" in (
        v.summary
    )
    change_a_record(layout)
    v = verify_checkpoint(layout, by_label[label])
    assert not v.ok and v.uncovered == ["seg-000002.jsonl"]
    assert "seg-000001.jsonl to seg-000003.jsonl" not in v.summary


def test_a_checkpoint_taken_while_segments_were_in_the_trash_verifies_once_they_are_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Prune, a checkpoint (it names none of the pruned segments), trash restore: the
    segments are back and the ledger forgets them; the newest checkpoint before the
    prune names them whole, so the one taken meanwhile still verifies, restores and
    passes doctor."""
    clock = Clock(time.time() - 86400)
    rec = make(tmp_path, clock, segment_bytes=16 * 1024, compress=False, checkpoint_interval=0)
    for n in range(300):
        feed(rec, clock, [b"agents.coder", orjson.dumps({"text": f"m {n} " + "w " * 60})])
        clock.now += 1
    rec.checkpoint("before", "manual", clock.now, force=True)
    rec.close()
    log = str(rec.layout.root)
    assert run(capsys, "prune", "--max-size", "60K", "--log-dir", log)[0] == 0
    assert run(capsys, "checkpoint", "--label", "meanwhile", "--log-dir", log)[0] == 0
    [entry] = [p.name for p in rec.layout.trash.iterdir()]
    assert run(capsys, "trash", "restore", entry, "--log-dir", log)[0] == 0
    by_label = {cp.label: cp for cp in list_checkpoints(rec.layout)}
    meanwhile = by_label["meanwhile"]
    assert "seg-000001.jsonl" not in [e["name"] for e in meanwhile.segments]
    v = verify_checkpoint(rec.layout, meanwhile)
    assert v.ok, v.summary
    assert f"match checkpoint {by_label['before'].id}'s" in v.summary
    code, out, err = run(capsys, "restore", meanwhile.id, "--full", "--log-dir", log)
    assert code == 0 and "integrity   ok" in out, out + err
    code, out, _ = run(capsys, "doctor", "--log-dir", log)
    assert "does not verify" not in out and "every digest verified" in out


def test_restore_full_and_doctor_name_the_uncovered_segments_of_a_changed_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout, label = journal(tmp_path)
    change_a_record(layout)
    log = str(layout.root)
    code, out, err = run(capsys, "restore", label, "--full", "--log-dir", log)
    assert code == 5, out + err
    assert "integrity   ok" not in out and "digest matches" not in out
    assert "its digest does not cover seg-000001.jsonl to seg-" in out
    assert "damaged in range" in err
    manifest = orjson.loads(next(layout.restore.glob("*today-old.full/manifest.json")).read_bytes())
    assert manifest["integrity"]["verified"] is False
    code, out, _ = run(capsys, "doctor", "--log-dir", log)
    assert code == 9
    line = next(x for x in out.splitlines() if "today-old does not verify" in x)
    assert "its digest does not cover seg-000001.jsonl" in line
    assert "every digest verified" not in out
    assert f"persist checkpoint --log-dir {log}" in out


def test_a_partial_restore_names_the_earlier_segments_its_checkpoint_does_not_cover(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The last few messages lie in the one segment the checkpoint names: they verify;
    the history before them is said to be not covered, not "verified" nor "not checked"."""
    layout, label = journal(tmp_path)
    code, out, err = run(capsys, "restore", label, "--last", "2", "--log-dir", str(layout.root))
    assert code == 0, out + err
    assert "digest matches for 1 segment re-hashed" in out
    assert "earlier segments not covered by its digest" in out
    assert "before the range, not covered by the checkpoint's digest: unverified" in out
    manifest = orjson.loads(
        next(layout.restore.glob("*today-old.last-2/manifest.json")).read_bytes()
    )
    assert manifest["history"]["not_covered"][0] == "seg-000001.jsonl"
