"""Compressed closed segments (`store.segfile`, `store.compact`): the seekable format
round-trips and reads any range, damage is named and never a traceback, and every
reader (Store, checkpoints, search index, JSONL export) reads a mix of compressed and
plain segments exactly as it read them all plain."""

from __future__ import annotations

import hashlib
import os
import random
import stat
from pathlib import Path

import pytest
import zstandard

from recorder.cli.main import main as persist
from recorder.search.engine import SearchEngine
from recorder.search.query import parse_query
from recorder.store.checkpoints import list_checkpoints, verify_checkpoint
from recorder.store.compact import compact, compact_segment, compactable, repair
from recorder.store.layout import Layout, compressed_path, list_segments
from recorder.store.reader import open_store
from recorder.store.segfile import (
    FRAME_BYTES,
    CompressedSegment,
    SegmentDamaged,
    compress_file,
    open_segment,
)
from tests.demo_journal import DemoClock, DemoWriter

T0 = 1_800_000_000.0


def lines_data(n: int, seed: int = 7) -> bytes:
    """JSON lines of mixed lengths (some longer than a frame), like a journal's."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        width = rng.choice((40, 300, 2_000, 9_000)) if i % 97 else FRAME_BYTES + 1_234
        out.append(b'{"seq":%d,"text":"%s"}\n' % (i, bytes(rng.choices(b"abc de\\t", k=width))))
    return b"".join(out)


def compressed(tmp_path: Path, data: bytes) -> Path:
    src = tmp_path / "seg-000001.jsonl"
    src.write_bytes(data)
    dst = compressed_path(src)
    size, sha = compress_file(src, dst)
    assert (size, sha) == (len(data), hashlib.sha256(data).hexdigest())
    return dst


def test_round_trip_and_random_reads_across_frame_boundaries(tmp_path: Path) -> None:
    data = lines_data(900)
    assert len(data) > 5 * FRAME_BYTES
    dst = compressed(tmp_path, data)
    assert stat.S_IMODE(dst.stat().st_mode) == 0o600
    # a valid zstd stream: `zstd -dc` gives the segment back (skippable frames skipped)
    with open(dst, "rb") as f:
        reader = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)
        assert reader.read() == data
    rng = random.Random(3)
    with open_segment(dst) as seg:
        assert isinstance(seg, CompressedSegment) and seg.size == len(data)
        assert seg.frames == -(-len(data) // FRAME_BYTES)
        boundaries = [k * FRAME_BYTES for k in range(1, seg.frames)]
        cases = [(b - d, n) for b in boundaries for d in (0, 1, 7) for n in (1, 2, 9, 20_000)]
        cases += [(0, len(data)), (len(data) - 1, 10), (len(data), 5), (FRAME_BYTES - 3, 3)]
        cases += [
            (rng.randrange(len(data)), rng.choice((1, 50, 4_000, 600_000))) for _ in range(300)
        ]
        for offset, n in cases:
            assert seg.read(offset, n) == data[offset : offset + n], (offset, n)
        assert seg.damaged == set()
        assert b"".join(seg.chunks()) == data


def test_an_empty_segment_round_trips(tmp_path: Path) -> None:
    with open_segment(compressed(tmp_path, b"")) as seg:
        assert seg.size == 0 and seg.read(0, 10) == b""


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(lambda b: b[:-1], id="one-byte-short"),
        pytest.param(lambda b: b"", id="empty"),
        pytest.param(lambda b: os.urandom(len(b)), id="garbage"),
        pytest.param(lambda b: b[:-20] + bytes(20), id="trailer-zeroed"),
        pytest.param(lambda b: b[:-60] + b"\xff" + b[-59:], id="trailer-digest-flipped"),
        pytest.param(lambda b: b[:30] + b[40:], id="bytes-cut-from-a-frame"),
    ],
)
def test_a_spoiled_file_is_one_clear_error_naming_it(tmp_path: Path, spoil) -> None:
    dst = compressed(tmp_path, lines_data(200))
    dst.write_bytes(spoil(dst.read_bytes()))
    with pytest.raises(SegmentDamaged, match=r"seg-000001\.jsonl\.zst"):
        open_segment(dst)


def test_a_damaged_frame_reads_as_damaged_lines_and_fails_strict_reads(tmp_path: Path) -> None:
    data = lines_data(600)
    dst = compressed(tmp_path, data)
    with CompressedSegment(dst) as seg:
        at, end = seg.compressed_at[2], seg.compressed_at[3]
    raw = bytearray(dst.read_bytes())
    raw[(at + end) // 2] ^= 0x55  # one bit pattern inside frame 2's compressed bytes
    dst.write_bytes(bytes(raw))
    with CompressedSegment(dst) as seg:
        lo, hi = seg.starts[2], seg.starts[3]
        assert seg.read(0, lo) == data[:lo]  # frames around it read as before
        assert seg.read(hi, 1000) == data[hi : hi + 1000]
        assert seg.read(lo, hi - lo) == bytes(hi - lo) and seg.damaged == {2}
        with pytest.raises(SegmentDamaged, match=r"seg-000001\.jsonl\.zst: compressed frame 2"):
            seg.read_strict(lo - 5, 10)


# -- a journal, read through every reader ---------------------------------------------
def build(root: Path, messages: int = 1_500) -> None:
    """A journal of small segments (~24 KB each) with checkpoints along the way."""
    clock = DemoClock(T0)
    w = DemoWriter.open(root, segment_bytes=24 * 1024, clock=clock)
    for i in range(messages):
        clock.now = T0 + i
        text = f"message {i} about deploy {'rollback' if i % 7 == 0 else 'release'} " * 3
        w.message(T0 + i, ("coder", "reviewer")[i % 2], text)
        if i % 500 == 499:
            w.checkpoint(T0 + i + 0.5, f"after {i + 1}", "periodic")
    w.close()


def everything(root: Path) -> list[tuple[int, int, bytes]]:
    with open_store(root) as store:
        return [(r.segment, r.offset, r.line) for r in store.records()]


def export_jsonl(root: Path, capsysbinary) -> bytes:
    out = root.parent / "export.jsonl"
    assert (
        persist(["export", "--all", "--format", "jsonl", "--log-dir", str(root), "-o", str(out)])
        == 0
    )
    capsysbinary.readouterr()
    return out.read_bytes()


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    build(root)
    assert len(list_segments(Layout(root))) > 8
    return root


def test_a_mix_of_compressed_and_plain_segments_reads_as_all_plain(
    journal: Path, capsysbinary
) -> None:
    layout = Layout(journal)
    before = everything(journal)
    exported = export_jsonl(journal, capsysbinary)
    closed = compactable(layout)
    for path in closed[::2]:  # every other closed segment
        compact_segment(layout, path)
    forms = [p.name.endswith(".zst") for p in list_segments(layout)]
    assert True in forms and forms.count(False) > 1 and forms[-1] is False
    assert everything(journal) == before
    assert export_jsonl(journal, capsysbinary) == exported
    with open_store(journal) as store:
        seq = store.record(len(store) // 2).seq
        assert seq is not None and store.by_seq(seq) == store.record(len(store) // 2)
        assert store.warnings == []
        blocks = b"".join(b.data for b in store.blocks(max_bytes=10_000))
        assert blocks == b"".join(line for _s, _o, line in before)
    report = compact(layout)
    assert report.problems == [] and len(report.done) == len(closed) - len(closed[::2])
    assert all(p.name.endswith(".zst") for p in list_segments(layout)[:-1])
    assert everything(journal) == before
    for path in layout.segments.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert compact(layout).done == []  # nothing left; the active one never


def test_checkpoints_made_before_compression_still_verify(journal: Path, capsys) -> None:
    layout = Layout(journal)
    cps = list_checkpoints(layout)
    assert len(cps) == 3
    compact(layout)
    for cp in cps:
        assert verify_checkpoint(layout, cp).ok, cp.id
    assert persist(["restore", "latest", "--full", "--log-dir", str(journal)]) == 0
    assert "digest matches" in capsys.readouterr().out
    # a checkpoint taken now names segments by their plain names and uncompressed sizes
    DemoWriter.open(journal, segment_bytes=24 * 1024).checkpoint(T0 + 9_999, "now", "manual")
    latest = list_checkpoints(layout)[0]
    assert latest.segments[0]["name"] == "seg-000001.jsonl"
    assert latest.segments[:3] == cps[-1].segments[:3]
    assert verify_checkpoint(layout, latest).ok


def _second_segment_damaged(journal: Path) -> Layout:
    """The journal compressed, then a byte of its second segment's one frame flipped."""
    layout = Layout(journal)
    compact(layout)
    victim = list_segments(layout)[1]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 3] ^= 0xFF  # inside its one frame
    victim.write_bytes(bytes(raw))
    return layout


def test_a_damaged_compressed_frame_is_reported_as_damage_not_a_crash(
    journal: Path, capsys
) -> None:
    layout = _second_segment_damaged(journal)
    problems = verify_checkpoint(layout, list_checkpoints(layout)[-1]).problems
    assert any("seg-000002.jsonl.zst: compressed frame 0" in p for p in problems), problems
    out = journal.parent / "out.jsonl"
    code = persist(
        ["export", "--all", "--format", "jsonl", "--log-dir", str(journal), "-o", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 5 and "damaged" in err and "Traceback" not in err
    assert "seg-000002.jsonl.zst" in err
    # every record of the other segments is still exported
    kept = out.read_bytes().count(b"\n")
    assert 0 < len(everything(journal)) - kept < 200
    code = persist(["restore", "latest", "--full", "--log-dir", str(journal)])
    out, err = capsys.readouterr()
    assert code == 5 and "Traceback" not in out + err
    assert "seg-000002.jsonl.zst: compressed frame 0 (bytes 0-" in out


def test_a_damaged_last_frame_is_named_as_such_not_as_a_power_cut(journal: Path, capsys) -> None:
    """A compressed segment whose last frame failed its checksum reads as NUL bytes
    there, after the last newline: doctor and export called it a closed segment that
    "ends with N bytes of NUL bytes (a power cut ...)". Now both name the damaged
    frame, as restore does, and say no torn tail."""
    _second_segment_damaged(journal)
    frame = "seg-000002.jsonl.zst: compressed frame 0 (bytes 0-"
    assert persist(["doctor", "--log-dir", str(journal)]) == 9
    out = capsys.readouterr().out
    assert f"problem  journal      segments/{frame}" in out, out
    assert "is damaged: read as NUL bytes, counted as damaged lines" in out
    assert "ends with" not in out and "power cut" not in out, out
    code = persist(
        [
            "export",
            "--all",
            "--format",
            "jsonl",
            "--log-dir",
            str(journal),
            "-o",
            str(journal.parent / "x"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 5 and f"persist: damage: {frame}" in err, err
    assert "ends with" not in err and "power cut" not in err, err


def test_an_unreadable_compressed_segment_is_named_by_export(journal: Path, capsys) -> None:
    layout = Layout(journal)
    compact(layout)
    victim = list_segments(layout)[2]
    victim.write_bytes(victim.read_bytes()[:-10])  # trailer cut: the frame table is lost
    out = journal.parent / "out.jsonl"
    code = persist(
        ["export", "--all", "--format", "jsonl", "--log-dir", str(journal), "-o", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 5 and "Traceback" not in err
    assert "seg-000003.jsonl.zst is not a readable compressed segment" in err


@pytest.mark.parametrize("form", ["compressed", "plain"])
def test_a_folder_in_a_segments_place_is_damage_not_silence(
    journal: Path, capsys, form: str
) -> None:
    """A segment's name taken by a folder (restored by hand, a bad copy): its records
    cannot be read, and export and restore say so (exit 5), never exit 0 without them."""
    layout = Layout(journal)
    if form == "compressed":
        compact(layout)
    victim = list_segments(layout)[1]
    victim.unlink()
    victim.mkdir()
    out = journal.parent / "out.jsonl"
    code = persist(
        ["export", "--all", "--format", "jsonl", "--log-dir", str(journal), "-o", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 5 and "Traceback" not in err
    assert f"{victim.name} cannot be read: a folder, not a regular file (none of its records" in err
    code = persist(["restore", "latest", "--log-dir", str(journal)])
    out_text, err = capsys.readouterr()
    assert code == 5 and "Traceback" not in out_text + err


def test_leftovers_of_an_interrupted_compression_are_cleaned(journal: Path) -> None:
    layout = Layout(journal)
    before = everything(journal)
    first, second = compactable(layout)[:2]
    # crashed while writing: a .tmp beside the original
    tmp = compressed_path(first).with_name(compressed_path(first).name + ".tmp")
    tmp.write_bytes(b"half a compressed file")
    # crashed after the rename, before the original was removed: both forms
    compress_file(second, compressed_path(second))
    assert list_segments(layout)[:2] == [first, second]  # one each, the plain ones
    assert everything(journal) == before
    done = repair(layout)
    assert len(done) == 2 and not tmp.exists() and not compressed_path(second).exists()
    assert first.exists() and second.exists()
    report = compact(layout)  # a pass repairs first, then compresses
    assert report.repaired == [] and report.problems == []
    assert everything(journal) == before


def test_a_reader_holding_the_plain_file_keeps_working_and_moves_to_the_new_form(
    journal: Path,
) -> None:
    layout = Layout(journal)
    with open_store(journal) as store:
        before = [r.line for r in store.records()]
        seg = store.segments[0]
        assert not seg.path.name.endswith(".zst")
        compact(layout)
        assert not seg.path.exists()  # unlinked under the reader...
        store._cache.clear()
        assert [store.record(i).line for i in range(len(store))] == before  # ...still read
        store.refresh()
        assert seg.path.name.endswith(".zst") and seg.file.compressed
        assert [r.line for r in store.records()] == before
        assert len(store.segments) == len(list_segments(layout))  # each segment once


def test_search_index_is_the_same_before_and_after_compression(journal: Path) -> None:
    def hits(engine: SearchEngine) -> list[tuple[int | None, int | None, str]]:
        result = engine.search(parse_query("rollback"), limit=1000)
        return [(h.segment, h.offset, h.snippet) for h in result.hits]

    with SearchEngine(journal) as engine:
        assert engine.catch_up().rebuilt
        want = hits(engine)
        assert len(want) > 100
    compact(Layout(journal))
    with SearchEngine(journal) as engine:
        again = engine.catch_up()
        assert not again.rebuilt and again.added == 0  # same bytes: nothing re-indexed
        assert hits(engine) == want
        assert engine.catch_up(rebuild=True).rebuilt  # and built from compressed segments
        assert hits(engine) == want


def test_persist_compact_dry_run_lists_and_changes_nothing(journal: Path, capsys) -> None:
    names = sorted(p.name for p in Layout(journal).segments.iterdir())
    assert persist(["compact", "--dry-run", "--log-dir", str(journal)]) == 0
    out = capsys.readouterr().out
    assert "would compress seg-000001.jsonl" in out and "the active one never" in out
    assert sorted(p.name for p in Layout(journal).segments.iterdir()) == names
    assert persist(["compact", "--log-dir", str(journal)]) == 0
    out = capsys.readouterr().out
    assert f"compressed {len(names) - 1} segments" in out
    assert persist(["compact", "--log-dir", str(journal / "nowhere")]) == 1
    assert "no journal" in capsys.readouterr().err


def test_journal_reopens_after_its_closed_segments_were_compressed(journal: Path) -> None:
    layout = Layout(journal)
    compact(layout)
    last_plain = list_segments(layout)[-1]
    # even the last segment compressed by hand: the journal opens the next one
    last = compressed_path(last_plain)
    compress_file(last_plain, last)
    last_plain.unlink()
    w = DemoWriter.open(journal, segment_bytes=24 * 1024)
    seq = w.message(T0 + 5_000, "coder", "after compression")
    w.close()
    assert list_segments(layout)[-1].name == f"seg-{int(last.name[4:10]) + 1:06d}.jsonl"
    seqs = [r.seq for r in open_store(journal).records()]
    assert seqs == list(range(1, len(seqs) + 1)) and seq in seqs


def test_a_copy_that_does_not_read_back_keeps_the_original(journal: Path, monkeypatch) -> None:
    """The read-back check is what lets the original go: a copy spoiled between the
    write and the check is removed, the original kept, the segment named."""
    import recorder.store.compact as compact_module

    real = compact_module.compress_file

    def spoiled(src: Path, dst: Path, level: int = 3) -> tuple[int, str]:
        result = real(src, dst, level)
        raw = bytearray(dst.read_bytes())
        raw[40] ^= 0x01  # inside the first frame
        dst.write_bytes(bytes(raw))
        return result

    monkeypatch.setattr(compact_module, "compress_file", spoiled)
    before = everything(journal)
    report = compact(Layout(journal))
    assert report.done == [] and len(report.problems) == len(compactable(Layout(journal)))
    assert "seg-000001.jsonl not compressed: " in report.problems[0]
    assert "compressed frame 0" in report.problems[0]
    assert not [p for p in Layout(journal).segments.iterdir() if ".zst" in p.name]
    assert everything(journal) == before


def test_compact_that_compressed_none_for_a_failure_does_not_say_nothing_was_to_do(
    journal: Path, monkeypatch, capsys
) -> None:
    """On a full disk `persist compact` named the failure, then "nothing to compress"."""
    import errno

    import recorder.store.compact as compact_module
    from recorder.cli.main import main

    def full(src: Path, dst: Path, level: int = 3) -> tuple[int, str]:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(compact_module, "compress_file", full)
    assert main(["compact", "--log-dir", str(journal)]) == 1
    out, err = capsys.readouterr()
    assert "seg-000001.jsonl not compressed: " in err and "No space left" in err
    assert "nothing to compress" not in out and out.startswith("none compressed (0 already")


def test_a_segment_compressed_between_listing_and_opening_is_read_in_its_new_form(
    journal: Path,
) -> None:
    """A reader lists `seg-N.jsonl`, the compactor swaps it, the reader opens it: the
    `.zst` file is opened instead (no lost segment, no stale-cache warning)."""
    from recorder.store.checkpoints import DigestCache
    from recorder.store.reader import SegmentIndex
    from recorder.store.segfile import segment_size

    layout = Layout(journal)
    listed = list_segments(layout)[0]
    data = listed.read_bytes()
    compact_segment(layout, listed)
    assert not listed.exists()
    with open_segment(listed) as seg:
        assert seg.compressed and seg.read(0, seg.size) == data
    assert segment_size(listed) == len(data)
    digest = DigestCache(layout).segment(listed, len(data), closed=True)
    assert digest == hashlib.sha256(data).hexdigest()
    index = SegmentIndex(listed, layout.index)
    try:
        assert index.update() == data.count(b"\n") and index.warning is None
        assert index.path == compressed_path(listed)
    finally:
        index.close()


def test_a_wrong_line_index_cache_of_a_compressed_segment_is_caught(tmp_path: Path) -> None:
    """The compactor writes the `.zst.idx` cache; one whose line starts are off from a
    third of the way on is reported and rebuilt, like a plain segment's."""
    import struct
    import zlib
    from array import array

    from recorder.store.reader import SegmentIndex

    root = tmp_path / "logs"
    w = DemoWriter.open(root, segment_bytes=1_500_000)
    for i in range(2_500):
        w.message(T0 + i, "coder", f"message {i} " + "about the release " * 50)
    w.close()
    layout = Layout(root)
    (first,) = compact(layout).done[:1]
    path = layout.segments / (first.name + ".zst")
    cache = layout.index / f"{path.name}.idx"
    raw = cache.read_bytes()
    head = struct.calcsize("<8sQQQQI")
    header, body = raw[:head], array("Q", raw[head:])
    good = SegmentIndex(path, layout.index)
    assert good.warning is None and len(good) == len(body)  # the compactor's cache is used
    good.close()
    for k in range(len(body) // 3, len(body)):
        body[k] += 1
    magic, size, mtime, ino, count, _crc = struct.unpack("<8sQQQQI", header)
    data = body.tobytes()
    cache.write_bytes(
        struct.pack("<8sQQQQI", magic, size, mtime, ino, count, zlib.crc32(data)) + data
    )
    bad = SegmentIndex(path, layout.index)
    try:
        assert bad.warning is not None and "do not match" in bad.warning
        assert bad.update() == len(body)  # rebuilt from the compressed segment
    finally:
        bad.close()


def test_a_copy_that_cannot_be_written_leaves_nothing_behind(journal: Path, monkeypatch) -> None:
    """A full disk while compressing: the half-written copy is removed at once (it
    would hold space the disk lacks), the original kept, the segment named."""
    import errno

    import recorder.store.segfile as segfile

    real = segfile.write_all
    written = {"n": 0}

    def full_after_a_while(fd: int, data: bytes) -> None:
        written["n"] += 1
        if written["n"] > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(segfile, "write_all", full_after_a_while)
    before = everything(journal)
    report = compact(Layout(journal))
    assert report.done == [] and len(report.problems) == 1  # the pass stops there
    assert "seg-000001.jsonl not compressed: " in report.problems[0]
    assert "No space left on device" in report.problems[0]
    assert not [p for p in Layout(journal).segments.iterdir() if ".zst" in p.name]
    assert everything(journal) == before


def test_doctor_reads_compressed_segments_and_finds_a_damaged_frame(journal: Path, capsys) -> None:
    """`persist doctor` checks a compressed journal's lines and checkpoints through the
    segment reader: nothing wrong after compression; a flipped byte in a frame is a
    problem naming the segment and the checkpoint that no longer verifies."""
    import orjson

    def doctor() -> dict:
        persist(["doctor", "--json", "--log-dir", str(journal)])
        return orjson.loads(capsys.readouterr().out)

    compact(Layout(journal))
    report = doctor()
    wrong = [f for f in report["findings"] if f["area"] in ("journal", "checkpoints", "caches")]
    assert [f["summary"] for f in wrong if f["severity"] != "ok"] == []
    victim = list_segments(Layout(journal))[1]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 3] ^= 0xFF
    victim.write_bytes(bytes(raw))
    problems = [f["summary"] for f in doctor()["findings"] if f["severity"] == "problem"]
    assert any("seg-000002.jsonl.zst" in p and "damaged line" in p for p in problems), problems
    assert any("does not verify" in p and "seg-000002.jsonl" in p for p in problems), problems


def test_prune_and_trash_restore_carry_compressed_segments(journal: Path, capsys) -> None:
    """Retention moves `.zst` files to the trash and back; the journal reads the same."""
    layout = Layout(journal)
    compact(layout)
    before = [line for _s, _o, line in everything(journal)]
    assert persist(["prune", "--max-size", "20K", "--log-dir", str(journal)]) == 0
    capsys.readouterr()
    (entry,) = list(layout.trash.iterdir())
    trashed = sorted(p.name for p in (entry / "segments").iterdir())
    assert trashed and all(name.endswith(".jsonl.zst") for name in trashed)
    assert persist(["trash", "restore", entry.name, "--log-dir", str(journal)]) == 0
    capsys.readouterr()
    after = [line for _s, _o, line in everything(journal)]
    assert after[: len(before)] == before  # then the prune and restore events
    assert all(b'"kind":"event"' in line for line in after[len(before) :])
    assert compact(layout).problems == []


def test_a_damaged_frame_is_counted_as_the_records_it_held(tmp_path: Path, capsys) -> None:
    """A damaged 256 KiB frame reads as one damaged line (NULs): export and doctor said
    "1 damaged line" where a few hundred records were lost. They now give its bytes and
    the records they held, estimated from the size of the records that read."""
    import re

    import orjson

    root = tmp_path / "logs"
    clock = DemoClock(T0)
    w = DemoWriter.open(root, segment_bytes=1 << 20, clock=clock)
    for i in range(4_000):
        clock.now = T0 + i
        w.message(T0 + i, "coder", f"message {i} " + "lorem ipsum dolor " * (10 + i % 20))
    w.close()
    compact(Layout(root))
    before = len(everything(root))
    victim = list_segments(Layout(root))[0]
    assert victim.name.endswith(".zst")
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # inside one of its frames, not the first or last
    victim.write_bytes(bytes(raw))
    out = tmp_path / "out.jsonl"
    code = persist(["export", "--all", "--format", "jsonl", "--log-dir", str(root), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 5, err
    lost = before - out.read_bytes().count(b"\n")
    about = re.search(r"1 damaged line \(([\d,]+) bytes, about ([\d,]+) records", err)
    assert about is not None and lost > 100, (err, lost)
    assert abs(int(about[2].replace(",", "")) - lost) <= lost // 10, (about[0], lost)
    persist(["doctor", "--json", "--log-dir", str(root)])
    found = orjson.loads(capsys.readouterr().out)["findings"]
    [damage] = [f["summary"] for f in found if f["check"] == "journal.bad-lines"]
    estimate = re.search(r"bytes: about ([\d,]+) records", damage)
    assert estimate is not None, damage
    assert abs(int(estimate[1].replace(",", "")) - lost) <= lost // 10, (damage, lost)
