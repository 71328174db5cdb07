"""JSONL export copies byte ranges, checked cheaply: it writes exactly what parsing every
line writes, counts the same, and finds the same damaged lines."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest

from recorder.export.jsonl_copy import copy_jsonl
from recorder.export.writers import ExportStats, JsonlWriter
from recorder.store.linecheck import block_kinds
from recorder.store.reader import open_store
from tests.demo_journal import DemoClock, DemoWriter

T0 = 1_800_000_000.0
DAMAGE = [
    b'{"v":1,"seq":\x00\x00 torn write\n',  # NUL bytes
    b"not json at all\n",  # garbage
    b'{"v":1,"seq":77,"ts":1.5,"kind":"msg","topic":"x"\n',  # cut short
    b'{"kind":"msg","ts":2.5,"seq":5}\n',  # a record, not the recorder's head: parsed, kept
    b'{"seq":5,"kind":"msg"}\n',  # valid JSON, not the recorder's head: parsed, kept
    b'{"v":1,"seq":6,"ts":"soon","kind":"msg"}\n',  # a time that is no number: damaged
    b"}\n",
    b'{"v":1,"seq":9,"ts":1.0,"kind":"msg","frames":[]} trailing garbage\n',
]
# Damage that keeps a record's shape (its head, its closing brace, its newline) with
# the middle broken: the cheap check cannot see it, so the copy keeps the line as it
# is (nothing altered); the checkpoint digest is what finds it (`persist restore`).
SHAPED = b'{"v":1,"seq":9,"ts":1.0,"kind":"msg","topic":"a" GARBAGE "frames":[]}\n'


def build(root: Path, damage: bytes | None, *, segment_bytes: int = 64 << 20) -> None:
    clock = DemoClock(T0)
    w = DemoWriter.open(root, segment_bytes=segment_bytes, clock=clock)
    for i in range(300):
        clock.now = T0 + i
        w.message(T0 + i, ("a", "b")[i % 2], f"message {i}\nline two `x` \x1b[0m")
        if i == 100:
            w.gap(T0 + i, "a", 3, 9)
        if i == 150 and damage is not None:
            w.bad_line(damage)
        if i == 200:
            w.record(T0 + i, "event", event="connected", broker="tcp://x", detail="ok")
    w.checkpoint(T0 + 400, "end", "manual")
    w.close()


def reference(root: Path, start: int = 0, stop: int | None = None) -> tuple[bytes, ExportStats]:
    """The way JSONL was exported before: every line parsed."""
    out = io.BytesIO()
    stats = ExportStats()
    writer = JsonlWriter(out)
    with open_store(root) as store:
        for rec in store.records(start, stop):
            stats.add(rec)
            writer.record(rec)
    writer.end()
    return out.getvalue(), stats


def fast(
    root: Path, start: int = 0, stop: int | None = None, max_bytes: int | None = None
) -> tuple[bytes, ExportStats]:
    out = io.BytesIO()
    stats = ExportStats()
    with open_store(root) as store:
        stop = len(store) if stop is None else stop
        if max_bytes is not None:  # small blocks: every block boundary case
            blocks = store.blocks

            def small(a: int = 0, b: int | None = None, m: int = max_bytes):  # type: ignore[no-untyped-def]
                return blocks(a, b, m)

            store.blocks = small  # type: ignore[method-assign]
        stats.bytes = copy_jsonl(store, start, stop, out, stats)
    return out.getvalue(), stats


def same_counts(a: ExportStats, b: ExportStats) -> None:
    assert (a.records, a.messages, a.missed, a.gaps, a.bad_lines) == (
        b.records,
        b.messages,
        b.missed,
        b.gaps,
        b.bad_lines,
    )
    assert dict(a.kinds) == dict(b.kinds)
    assert (a.first_ts, a.last_ts) == (b.first_ts, b.last_ts)


@pytest.mark.parametrize("damage", [None, *DAMAGE])
@pytest.mark.parametrize("max_bytes", [None, 700, 5000])
def test_copy_equals_parsing_every_line(
    tmp_path: Path, damage: bytes | None, max_bytes: int | None
) -> None:
    root = tmp_path / "logs"
    build(root, damage, segment_bytes=16 << 10)
    expected, expected_stats = reference(root)
    got, stats = fast(root, max_bytes=max_bytes)
    assert got == expected and stats.bytes == len(got)
    same_counts(stats, expected_stats)
    if damage is not None and damage.startswith((b'{"kind"', b'{"seq"')):
        assert stats.bad_lines == 0  # a record, its fields in another order: kept
    elif damage is not None:
        assert stats.bad_lines == 1  # found and left out, as before


def test_damage_that_keeps_the_shape_is_copied_unchanged(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    build(root, SHAPED, segment_bytes=16 << 10)
    expected, expected_stats = reference(root)
    got, stats = fast(root)
    assert expected_stats.bad_lines == 1 and SHAPED not in expected  # parsing finds it
    assert SHAPED in got and got.replace(SHAPED, b"") == expected  # the copy keeps it
    assert stats.bad_lines == 0 and stats.records == expected_stats.records


def test_partial_ranges_and_torn_closed_tail(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    build(root, None, segment_bytes=16 << 10)
    first = sorted((root / "segments").glob("seg-*.jsonl"))[0]
    with open(first, "ab") as f:
        f.write(b'{"v":1,"seq":999,"ts":1800000000.5,"kind":"msg","top')
    for start, stop in ((0, 10), (5, 140), (37, None), (0, None)):
        expected, expected_stats = reference(root, start, stop)
        got, stats = fast(root, start, stop, max_bytes=3000)
        assert got == expected
        same_counts(stats, expected_stats)
    assert fast(root)[1].bad_lines == 1  # the torn tail


def test_block_kinds_rejects_what_is_not_whole_records() -> None:
    line = b'{"v":1,"seq":3,"ts":1.25,"kind":"msg","frames":[]}\n'
    gap = b'{"v":1,"seq":4,"ts":2,"kind":"gap","missed":1}\n'
    assert block_kinds(line + gap, 2) == [b"msg", b"gap"]
    assert block_kinds(line + gap, 3) is None  # the index expected another line
    assert block_kinds(line + b"x" + gap, 2) is None
    assert block_kinds(line + gap[:-2] + b"\n", 2) is None
    assert block_kinds(line.replace(b"1.25", b"\x00.25"), 1) is None
    assert block_kinds(line[:-1], 1) is None  # no newline: torn


class _FillsUp(io.BytesIO):
    """A file that takes `room` bytes, then fails as a full disk does."""

    def __init__(self, room: int) -> None:
        super().__init__()
        self.room = room
        self.calls: list[int] = []

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.calls.append(len(data))
        if self.tell() + len(data) > self.room:
            raise OSError(28, "No space left on device")
        return super().write(data)


@pytest.mark.parametrize("room", [0, 5000, 40_000])
def test_a_write_error_reaches_the_caller_and_writes_are_sliced(
    tmp_path: Path, room: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks are written on a thread in slices of at most WRITE_SLICE; a failing write
    (a full disk) is raised in the caller, never swallowed, and nothing after it is
    written."""
    from recorder.export import jsonl_copy

    monkeypatch.setattr(jsonl_copy, "WRITE_SLICE", 4096)
    root = tmp_path / "logs"
    build(root, None)
    expected, _stats = reference(root)
    out = _FillsUp(room)
    with open_store(root) as store, pytest.raises(OSError, match="No space left"):
        copy_jsonl(store, 0, len(store), out, ExportStats())
    assert out.getvalue() == expected[: len(out.getvalue())] and len(out.getvalue()) <= room
    whole = _FillsUp(len(expected))
    with open_store(root) as store:
        assert copy_jsonl(store, 0, len(store), whole, ExportStats()) == len(expected)
    assert whole.getvalue() == expected
    assert max(whole.calls) <= jsonl_copy.WRITE_SLICE and len(expected) > jsonl_copy.WRITE_SLICE


def has_usable_check(root: Path, segment: Path) -> bool:
    """Whether `segment` has a kept check that describes it as it is now."""
    from recorder.store.linecheck import cached_check
    from recorder.store.reader import SegmentIndex

    seg = SegmentIndex(segment)
    seg.update()
    try:
        return cached_check(seg, root / "metadata_index") is not None
    finally:
        seg.close()


def checks(root: Path) -> list[Path]:
    return sorted((root / "metadata_index").glob("*.check"))


def to_file(root: Path, path: Path, start: int = 0, stop: int | None = None) -> ExportStats:
    """Export into a real file (the path `persist export -o` takes: sendfile)."""
    stats = ExportStats()
    with open_store(root) as store, open(path, "wb") as out:
        stop = len(store) if stop is None else stop
        stats.bytes = copy_jsonl(store, start, stop, out, stats)
        out.write(b"after\n")  # the buffer writes where the file ends
    return stats


@pytest.mark.parametrize("damage", [None, *DAMAGE, SHAPED])
def test_a_checked_segment_is_copied_and_counted_from_its_check(
    tmp_path: Path, damage: bytes | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first copy checks each segment (the active one too: nothing writes to it)
    and keeps the check; later copies (bytes sent by the kernel, counts from the
    check) give the same bytes and counts, whole or in part, and the segment holding
    damage never gets a check."""
    sent = count_sendfile(monkeypatch)
    root = tmp_path / "logs"
    build(root, damage, segment_bytes=16 << 10)
    segments = sorted((root / "segments").glob("seg-*.jsonl"))
    assert len(segments) > 4
    first, first_stats = fast(root)
    assert len(checks(root)) == len(segments) - (1 if damage not in (None, SHAPED) else 0)
    for start, stop in ((0, None), (0, 10), (5, 140), (37, 280), (120, None)):
        expected, expected_stats = fast(root, start, stop, max_bytes=3000)  # no checks used
        for _ in range(2):
            got, stats = fast(root, start, stop)
            assert got == expected and stats.bytes == len(got)
            same_counts(stats, expected_stats)
            file_stats = to_file(root, tmp_path / "out.jsonl", start, stop)
            assert (tmp_path / "out.jsonl").read_bytes() == expected + b"after\n"
            same_counts(file_stats, expected_stats)
    assert first == fast(root, 0, None, max_bytes=3000)[0]
    same_counts(first_stats, fast(root)[1])
    assert sent, "the kernel copied the checked segments into the file"


def count_sendfile(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes of each `os.sendfile` call from now on."""
    import os

    sent: list[int] = []
    real = os.sendfile

    def counted(out: int, in_: int, offset: int | None, count: int) -> int:
        n = real(out, in_, offset, count)
        sent.append(n)
        return n

    monkeypatch.setattr(os, "sendfile", counted)
    return sent


def test_checks_are_used_only_when_they_describe_the_segment(tmp_path: Path) -> None:
    """A check that is not a well-formed check of the segment as it is now (another
    version of the file, garbage, wrong types, lines out of range) is ignored: the
    segment is checked again, and a damaged line in it is found and left out."""

    root = tmp_path / "logs"
    build(root, None, segment_bytes=16 << 10)
    expected, _ = reference(root)
    fast(root)
    path = checks(root)[1]
    segment = root / "segments" / path.name.removesuffix(".check")
    good = orjson.loads(path.read_bytes())
    assert good["others"], "the second segment holds a gap or an event"

    def usable() -> bool:
        return has_usable_check(root, segment)

    assert usable()
    wrong = [
        b"not json",
        b"[]",
        orjson.dumps({**good, "v": 99}),
        orjson.dumps({**good, "segment": [*good["segment"][:3], good["segment"][3] + 1]}),
        orjson.dumps({**good, "others": [[10_000, "gap"]]}),
        orjson.dumps({**good, "others": [["1", "gap"]]}),
        orjson.dumps({**good, "others": [[3, "gap"], [2, "gap"]]}),
        orjson.dumps({**good, "others": [[3, "GAP!"]]}),
        orjson.dumps({**good, "others": {"3": "gap"}}),
    ]
    for doc in wrong:
        path.write_bytes(doc)
        assert not usable(), doc
        got, _ = fast(root)
        assert got == expected
        assert orjson.loads(path.read_bytes()) == good  # checked again and kept
    # the segment changed after it was checked (a line damaged in place): the check
    # names the old version, so the damage is found as if there were no check
    data = bytearray(segment.read_bytes())
    at = data.index(b'{"v":', 100)
    data[at : at + 5] = b"\x00" * 5
    segment.write_bytes(bytes(data))
    assert not usable()
    got, stats = fast(root)
    assert stats.bad_lines == 1 and len(got) < len(expected)
    assert got == reference(root)[0]


def test_checked_compressed_segments_and_a_pipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compressed segments are decompressed and written without a check once they
    have one; an output that is a pipe gets the kernel copy too."""
    import subprocess
    import sys

    from recorder.store.compact import compact
    from recorder.store.layout import Layout

    root = tmp_path / "logs"
    build(root, None, segment_bytes=16 << 10)
    expected, expected_stats = reference(root)
    assert compact(Layout(root)).done
    fast(root)  # checks the compressed segments (new files: new checks) and the active one
    assert len(checks(root)) == len(list((root / "segments").glob("*.zst"))) + 1
    got, stats = fast(root)
    assert got == expected
    same_counts(stats, expected_stats)
    root = tmp_path / "plain"
    build(root, None, segment_bytes=16 << 10)
    reader = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert reader.stdin is not None and reader.stdout is not None
    fast(root)
    sent = count_sendfile(monkeypatch)
    with open_store(root) as store:
        stats = ExportStats()
        copy_jsonl(store, 0, len(store), reader.stdin, stats)
    reader.stdin.close()
    assert reader.stdout.read() == expected
    assert reader.wait(10) == 0
    assert sum(sent) > len(expected) // 2  # every closed segment went through the kernel


@pytest.mark.parametrize("compress", [False, True])
def test_the_recorder_checks_closed_segments(tmp_path: Path, compress: bool) -> None:
    """`IndexWarmer` (the recorder's background thread) keeps a check of each closed
    segment, compressed or not, so that no export has to check one; the segment being
    written never gets one."""
    from recorder.daemon.warm import IndexWarmer
    from recorder.store.layout import Layout, list_segments, segment_number

    root = tmp_path / "logs"
    build(root, None, segment_bytes=16 << 10)
    expected, expected_stats = reference(root)
    layout = Layout(root)
    segments = list_segments(layout)
    last = segment_number(segments[-1].name) or 0
    IndexWarmer(layout, compress=compress).warm(below=last)
    closed = [f"seg-{segment_number(p.name):06d}.jsonl.check" for p in segments[:-1]]
    assert [p.name for p in checks(root)] == closed
    before = {p.name: p.read_bytes() for p in checks(root)}
    got, stats = fast(root)
    assert got == expected
    same_counts(stats, expected_stats)
    after = {p.name: p.read_bytes() for p in checks(root)}
    active = f"seg-{last:06d}.jsonl.check"  # the export checked the active one itself
    assert after.pop(active) and after == before  # the others used as they were


def test_a_frame_damaged_after_its_segment_was_checked(tmp_path: Path) -> None:
    """A compressed segment's check holds while its file keeps its stat, but a frame
    can go bad on the disk after: its lines read as NUL bytes, are left out and
    counted once as damaged lines, exactly as parsing every line finds them."""
    import os

    from recorder.store.compact import compact
    from recorder.store.layout import Layout
    from recorder.store.segfile import CompressedSegment

    root = tmp_path / "logs"
    clock = DemoClock(T0)
    w = DemoWriter.open(root, segment_bytes=(1 << 20) + (300 << 10), clock=clock)
    for i in range(3200):  # segments over 1 MiB (their line index is cached) of 6 frames
        clock.now = T0 + i
        w.message(T0 + i, "a", f"message {i} " + "word " * 180)
    w.close()
    assert compact(Layout(root)).done
    fast(root)
    target = sorted((root / "segments").glob("*.zst"))[0]
    assert (root / "metadata_index" / f"{target.name.removesuffix('.zst')}.check").exists()
    with CompressedSegment(target) as seg:
        at, end = seg.compressed_at[2], seg.compressed_at[3]
    st = target.stat()
    with open(target, "r+b") as f:  # in place: same inode, size; mtime put back
        f.seek((at + end) // 2)
        byte = f.read(1)
        f.seek((at + end) // 2)
        f.write(bytes([byte[0] ^ 0x55]))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    expected, expected_stats = reference(root)
    got, stats = fast(root)
    assert expected_stats.bad_lines > 0
    assert got == expected
    same_counts(stats, expected_stats)


def test_the_active_segments_check_holds_until_it_is_appended_to(tmp_path: Path) -> None:
    """An export of a journal nothing writes to keeps a check of the active segment
    too, and the next export copies it unread; a line appended after (by a recorder,
    here a torn one) changes the file, so the check is ignored and the new line is
    found damaged. The recorder's warmer, once the segment is closed, writes its
    check again rather than keep the export's out-of-date one."""
    from recorder.daemon.warm import IndexWarmer
    from recorder.store.layout import Layout, list_segments, segment_number

    root = tmp_path / "logs"
    build(root, None, segment_bytes=16 << 10)
    active = list_segments(Layout(root))[-1]
    check = root / "metadata_index" / f"{active.name}.check"
    expected, expected_stats = reference(root)
    assert fast(root)[0] == expected and check.exists()
    got, stats = fast(root)  # counted from the check: same bytes, same counts
    assert got == expected
    same_counts(stats, expected_stats)
    kept = check.read_bytes()
    with open(active, "ab") as f:
        f.write(b'{"v":1,"seq":\x00\x00 torn write\n')
        f.write(expected.splitlines(keepends=True)[-1])  # a whole record after it
    got, stats = fast(root)
    assert stats.bad_lines == 1
    assert got == reference(root)[0] == expected + expected.splitlines(keepends=True)[-1]
    assert check.read_bytes() == kept  # not replaced: the segment no longer passes

    def describes() -> bool:
        return has_usable_check(root, active)

    assert not describes()
    with open(active, "r+b") as f:  # the torn line made whole garbage-free: rewritten
        data = f.read().replace(b'{"v":1,"seq":\x00\x00 torn write\n', b"")
        f.seek(0)
        f.write(data)
        f.truncate()
    assert not describes()  # the export's check names the file before the append
    number = segment_number(active.name) or 0
    IndexWarmer(Layout(root)).warm(below=number + 1)  # as when the segment is closed
    assert describes()


def test_an_export_to_stdout_is_copied_by_the_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`persist export --format jsonl > FILE` copies checked segments by sendfile, as
    `-o FILE` does: the stdout that names its own write errors ("cannot write stdout")
    hands commands the real byte stream, whose type the copy trusts (a wrapper of it
    sent every byte through Python)."""
    import sys

    from recorder.cli.main import main as persist

    root = tmp_path / "logs"
    build(root, None, segment_bytes=16 << 10)
    expected = b"".join(p.read_bytes() for p in sorted((root / "segments").glob("seg-*")))
    argv = ["export", "--all", "--format", "jsonl", "--log-dir", str(root)]
    for n in range(2):  # the first export checks the segments, the second trusts that
        sent = count_sendfile(monkeypatch)
        out = tmp_path / f"out{n}.jsonl"
        with open(out, "w") as stdout:
            monkeypatch.setattr(sys, "stdout", stdout)
            assert persist(argv) == 0
        monkeypatch.setattr(sys, "stdout", sys.__stdout__)
        assert out.read_bytes() == expected
    assert sent, "the kernel copied the checked segments to stdout"
