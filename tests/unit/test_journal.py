"""The format, the journal writer and the store, on real files."""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import random
import stat
import threading
import time
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.daemon.control import request_checkpoint
from recorder.store import secrets as S
from recorder.store.checkpoints import (
    list_checkpoints,
    sanitize_label,
    verify_checkpoint,
    write_checkpoint,
)
from recorder.store.journal import Journal
from recorder.store.layout import Layout
from recorder.store.reader import KIND_BAD_LINE, Store, open_store
from recorder.store.records import KIND_MESSAGE, decode_frames, encode_frames, encode_record
from tests.secret_samples import make

frame = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64).map(str.encode),
    st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=4).map(
        lambda d: json.dumps(d).encode()
    ),
    st.lists(st.integers() | st.floats(allow_nan=False), max_size=5).map(
        lambda v: json.dumps(v).encode()
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(frame, min_size=1, max_size=5))
def test_any_frames_round_trip_exactly_on_one_json_line(frames: list[bytes]) -> None:
    line = encode_record({"v": 1, "seq": 1, "ts": 1.0, "kind": "msg"}, encode_frames(frames))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    record = json.loads(line)  # the standard library agrees it is JSON
    assert decode_frames(line, record) == frames


def write_messages(journal: Journal, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        body = orjson.dumps({"id": i, "text": f"message {i}"})
        journal.append(
            {"kind": KIND_MESSAGE, "topic": "t", "meta": {}}, encode_frames([b"t", body])
        )
        journal.messages += 1
    journal.flush()


def opened_journal(root: Path, **options: int) -> Journal:
    journal = Journal(Layout(root), **options)
    journal.open()
    return journal


def written_ids(root: Path) -> list[int]:
    """The `id` of every message in the journal at `root`, in journal order."""
    with open_store(root) as store:
        return [r.payload["id"] for r in store.records() if r.is_message]


def test_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        journal = Journal(Layout(tmp_path / "logs"))
        journal.open()
        write_messages(journal, 3)
        journal.close()
    finally:
        os.umask(old)
    for path in (tmp_path / "logs").rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_symlink():
            continue
        assert mode == (0o700 if path.is_dir() else 0o600), path
    assert stat.S_IMODE((tmp_path / "logs").stat().st_mode) == 0o700


def test_rotation_keeps_sequence_and_bounds_segments(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    journal = Journal(layout, segment_bytes=4096)
    journal.open()
    write_messages(journal, 500)
    journal.close()
    segments = sorted(layout.segments.glob("seg-*.jsonl"))
    assert len(segments) > 5
    assert all(p.stat().st_size < 4096 + 200 for p in segments)
    with open_store(tmp_path) as store:
        seqs = [r.seq for r in store.records()]
        assert seqs == list(range(1, len(seqs) + 1))
        ids = [r.payload["id"] for r in store.records() if r.is_message]
        assert ids == list(range(500))
        assert store.by_seq(300).seq == 300
        assert store.record(-1).seq == seqs[-1]
    assert os.readlink(layout.current) == f"segments/{segments[-1].name}"


def test_torn_tail_is_quarantined_and_journal_continues(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    journal = Journal(layout)
    journal.open()
    write_messages(journal, 10)
    journal.close()
    seg = next(layout.segments.glob("seg-*.jsonl"))
    good = seg.read_bytes()
    with open(seg, "ab") as f:
        f.write(b'{"v":1,"seq":99,"ts":1.0,"kind":"msg","top')  # torn by a crash
    journal = Journal(layout)
    last = journal.open()
    assert last is not None and last["seq"] == 11
    write_messages(journal, 1, start=10)
    journal.close()
    quarantine = list(layout.recovery.glob("*.corrupt"))
    assert len(quarantine) == 1
    assert quarantine[0].read_bytes() == b'{"v":1,"seq":99,"ts":1.0,"kind":"msg","top'
    data = seg.read_bytes()
    assert data.startswith(good)
    records = [orjson.loads(line) for line in data.splitlines()]
    corrupt = [r for r in records if r["kind"] == "corrupt"]
    assert corrupt[0]["length"] == 42 and corrupt[0]["offset"] == len(good)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))


def test_garbage_tail_of_zeros_and_bad_lines_is_cut(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    journal = Journal(layout)
    journal.open()
    write_messages(journal, 5)
    journal.close()
    seg = next(layout.segments.glob("seg-*.jsonl"))
    good = seg.read_bytes()
    size = len(good)
    with open(seg, "ab") as f:
        f.write(b"not json at all\n" + b"\x00" * 8192)  # power-cut zeros after a bad line
    Journal(layout).open()
    assert seg.read_bytes()[:size] == good
    tail = seg.read_bytes()[size:]
    assert (next(layout.recovery.glob("*.corrupt"))).stat().st_size == 16 + 8192
    assert b"\x00" not in tail and b'"kind":"corrupt"' in tail


def test_a_bad_line_in_the_middle_hides_nothing_after_it(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    journal = Journal(layout)
    journal.open()
    write_messages(journal, 3)
    journal.append_line(b"\x1b[2J garbage in the middle\n")  # damage from elsewhere
    write_messages(journal, 3, start=3)
    journal.close()
    with open_store(tmp_path) as store:
        kinds = [r.kind for r in store.records()]
        assert kinds.count(KIND_BAD_LINE) == 1
        ids = [r.payload["id"] for r in store.records() if r.is_message]
        assert ids == [0, 1, 2, 3, 4, 5]
        assert store.by_seq(6) is not None


def test_store_indexes_incrementally_and_ignores_partial_lines(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    journal = Journal(layout)
    journal.open()
    write_messages(journal, 3)
    store = Store(tmp_path)
    store.refresh()
    n = len(store)
    seg = next(layout.segments.glob("seg-*.jsonl"))
    with open(seg, "ab") as f:
        f.write(b'{"v":1,"seq":')  # the recorder is mid-write
    assert store.refresh() == 0 and len(store) == n
    with open(seg, "ab") as f:
        f.write(b'100,"ts":1.0,"kind":"event"}\n')
    assert store.refresh() == 1 and store.record(-1).seq == 100
    store.close()


def test_head_reads_the_start_of_a_line_without_parsing_it(tmp_path: Path) -> None:
    journal = Journal(Layout(tmp_path))
    journal.open()
    write_messages(journal, 3)
    store = Store(tmp_path)
    store.refresh()
    for index in range(len(store)):
        line = store.record(index).line
        assert store.head(index, 16) == line[:16]
        assert store.head(index, 1 << 20) == line  # never past the line's end
    store.close()


def test_index_cache_is_used_and_rebuilt_when_stale(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    journal = Journal(layout, segment_bytes=2 * 1024 * 1024)
    journal.open()
    write_messages(journal, 60_000)  # > 2 segments of 2 MiB
    journal.close()
    with open_store(tmp_path) as store:
        expected = [store.record(i).line for i in (0, 1234, -1)]
    caches = list(layout.index.glob("*.idx"))
    assert caches  # closed segments were cached
    with open_store(tmp_path) as store:
        assert [store.record(i).line for i in (0, 1234, -1)] == expected
    caches[0].write_bytes(b"APIDX001" + b"\xff" * 40)  # a cache that lies is not trusted
    with open_store(tmp_path) as store:
        assert [store.record(i).line for i in (0, 1234, -1)] == expected


def test_the_segment_being_written_is_cached_as_it_grows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader saves the open segment's line index once it grew OPEN_CACHE_STEP since
    the cache on disk; the next reader takes the cached part and indexes only the
    rest (the same index as one built from nothing), and a segment cut short below
    the cache (a repaired tail) is indexed again from nothing."""
    import recorder.store.reader as reader

    monkeypatch.setattr(reader, "_CACHE_MIN_BYTES", 1024)
    monkeypatch.setattr(reader, "OPEN_CACHE_STEP", 64 * 1024)
    layout = Layout(tmp_path)
    journal = Journal(layout)  # one segment, never closed here
    journal.open()
    write_messages(journal, 200)  # under the step: not cached yet
    journal.flush()
    with open_store(tmp_path) as store:
        assert len(store) == 201
    cache = layout.index / "seg-000001.jsonl.idx"
    assert not cache.exists()
    write_messages(journal, 1000, start=200)
    journal.flush()
    with open_store(tmp_path) as store:
        covered = store.segments[-1].end
    assert cache.exists()
    write_messages(journal, 500, start=1200)
    journal.flush()

    def index(use_cache: bool) -> tuple[list[int], int, list[str]]:
        with Store(tmp_path, cache_index=use_cache) as store:
            store.refresh()
            seg = store.segments[-1]
            return list(seg.starts), seg.cached_end if use_cache else 0, store.warnings

    starts, cached, warnings = index(True)
    assert cached >= covered and not warnings  # the cached part was taken
    assert starts == index(False)[0] and len(starts) == 1701
    journal.close()
    segment = layout.segments / "seg-000001.jsonl"
    with open(segment, "r+b") as f:
        f.truncate(covered // 2)  # below what the cache covers
    starts, cached, warnings = index(True)
    assert starts == index(False)[0] and warnings  # said, and indexed from nothing
    assert "describes another version of the segment" in warnings[0]


def test_a_copied_folder_rebuilds_its_line_indexes_without_a_warning(tmp_path: Path) -> None:
    """`cp -a` keeps sizes and times but not inodes: the caches are rebuilt quietly,
    as nothing is wrong with the journal; changed bytes are still said."""
    import shutil

    layout = Layout(tmp_path / "a")
    journal = Journal(layout, segment_bytes=1_200_000)  # cached: closed ones over 1 MiB
    journal.open()
    write_messages(journal, 30_000)
    journal.close()
    with open_store(layout.root) as store:
        expected = [list(s.starts) for s in store.segments]
    assert list(layout.index.glob("*.idx"))
    copy = tmp_path / "b"
    shutil.copytree(layout.root, copy, copy_function=shutil.copy2)
    with Store(copy) as store:
        store.refresh()
        assert store.warnings == []
        assert [list(s.starts) for s in store.segments] == expected


def test_checkpoint_digest_verifies_and_names_the_damaged_segment(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    journal = Journal(layout, segment_bytes=4096)
    journal.open()
    write_messages(journal, 100)
    pos = journal.flush()
    cp = write_checkpoint(
        layout,
        segment=pos.segment,
        offset=pos.offset,
        seq=pos.seq,
        messages=pos.messages,
        label="ok",
        reason="manual",
    )
    write_messages(journal, 10, start=100)  # appending after it keeps it valid
    journal.close()
    assert verify_checkpoint(layout, cp).ok
    victim = sorted(layout.segments.glob("seg-*.jsonl"))[1]
    data = bytearray(victim.read_bytes())
    data[100] ^= 0x01
    victim.write_bytes(bytes(data))
    result = verify_checkpoint(layout, cp)
    assert not result.ok and victim.name in result.summary


def test_labels_are_sanitised_and_never_paths(tmp_path: Path) -> None:
    assert sanitize_label("a\x1b[31mb\nc\td") == "a [31mb c d"
    journal = opened_journal(tmp_path)
    layout = journal.layout
    write_messages(journal, 1)
    journal.close()
    cp = request_checkpoint(layout, "../../../etc/passwd\x00")
    assert cp.path is not None and cp.path.parent == layout.checkpoints
    assert cp.label == "../../../etc/passwd"
    assert [c.id for c in list_checkpoints(layout)] == [cp.id]
    assert cp.messages == 1


def test_a_label_written_before_labels_were_redacted_shows_redacted(tmp_path: Path) -> None:
    key = make(S.GITHUB, random.Random(3)).secret
    journal = opened_journal(tmp_path)
    layout = journal.layout
    write_messages(journal, 1)
    journal.close()
    cp = request_checkpoint(layout, "before")
    assert cp.path is not None
    old = orjson.loads(cp.path.read_bytes())
    old["label"] = f"pushed with {key}"  # as a checkpoint file of yesterday held it
    cp.path.write_bytes(orjson.dumps(old))
    [listed] = list_checkpoints(layout)
    assert listed.label == f"pushed with [REDACTED:{S.GITHUB}]"


def test_store_keeps_lines_appended_just_before_a_rotation(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    journal = Journal(layout, segment_bytes=4 * 1024)
    journal.open()
    store = Store(tmp_path)
    for _ in range(30):  # refresh between small appends, across many rotations
        write_messages(journal, 7)
        store.refresh()
    journal.close()
    store.refresh()
    assert len(list(layout.segments.glob("seg-*.jsonl"))) > 5
    on_disk = sum(len(p.read_bytes().splitlines()) for p in layout.segments.glob("*.jsonl"))
    assert len(store) == on_disk
    assert [r.seq for r in store.records()] == list(range(1, on_disk + 1))
    store.close()


def test_chunks_waiting_for_a_stalled_disk_are_kept_compressed_and_written_exactly(
    tmp_path: Path,
) -> None:
    journal = opened_journal(tmp_path)
    sink = journal.sink
    sink.compress_after = 64 * 1024  # the first 64 KiB wait as they are, the rest compressed
    sink.retry_delay = 0.01
    disk_back = threading.Event()

    def full_until_freed(fd: int, chunks: list[memoryview]) -> int:
        if not disk_back.is_set():
            raise OSError(28, "No space left on device")
        return os.writev(fd, chunks)

    sink.writev = full_until_freed  # type: ignore[method-assign]
    sink.start()
    write_messages(journal, 20)
    deadline = time.monotonic() + 10
    while sink.stalled is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.stalled is not None and "No space left" in sink.stalled
    for i in range(20, 2000, 20):
        write_messages(journal, 20, start=i)  # a chunk of 20 lines each
    waiting = list(sink._queue)  # the writer holds the first chunk; the rest wait here
    packed = [c for c in waiting if c[0] == "zwrite"]
    assert len(packed) > len(waiting) / 3  # all but the first 64 KiB
    assert sum(len(c[1]) for c in packed) * 4 < sum(c[3] for c in packed)
    assert sink.pending_bytes > 100_000  # counted as lines (the budget means lines)
    disk_back.set()
    journal.close()
    assert written_ids(tmp_path) == list(range(2000))


def test_a_disk_merely_behind_gets_its_chunks_uncompressed_up_to_a_larger_budget(
    tmp_path: Path,
) -> None:
    journal = opened_journal(tmp_path)
    sink = journal.sink
    sink.compress_after = 64 * 1024  # were writes failing
    sink.compress_after_slow = 512 * 1024  # writes succeed, only slowly
    released = threading.Event()

    def slow(fd: int, chunks: list[memoryview]) -> int:
        released.wait()
        return os.writev(fd, chunks)

    sink.writev = slow  # type: ignore[method-assign]
    sink.start()
    chunks = 0
    while sink.pending_bytes <= 512 * 1024:
        write_messages(journal, 20, start=20 * chunks)
        chunks += 1
    assert not [c for c in sink._queue if c[0] == "zwrite"]  # 64 KiB to 512 KiB: as they are
    for i in range(chunks, chunks + 20):
        write_messages(journal, 20, start=20 * i)
    assert len([c for c in sink._queue if c[0] == "zwrite"]) == 20  # beyond: compressed
    released.set()
    journal.close()
    assert written_ids(tmp_path) == list(range(20 * (chunks + 20)))


def test_chunks_waiting_together_go_out_in_one_write_resumed_where_it_stopped(
    tmp_path: Path,
) -> None:
    journal = opened_journal(tmp_path)
    sink = journal.sink
    released = threading.Event()
    calls: list[int] = []  # chunks (or what is left of them) handed to each writev

    def held_then_short(fd: int, chunks: list[memoryview]) -> int:
        released.wait()
        calls.append(len(chunks))
        return os.writev(fd, [chunks[0][:700]])  # short: never more than 700 bytes

    sink.writev = held_then_short  # type: ignore[method-assign]
    sink.start()
    for i in range(0, 200, 10):
        write_messages(journal, 10, start=i)  # 20 chunks queue up behind the held one
    released.set()
    journal.close()
    assert max(calls) >= 10  # the chunks waiting went out together
    assert written_ids(tmp_path) == list(
        range(200)
    )  # in order, and no line torn by the short writes
    assert sink.pending_bytes == 0


def resident_pages(path: Path) -> int:
    """How many of a file's pages are in the kernel's page cache (mincore(2))."""
    libc = ctypes.CDLL(None, use_errno=True)
    size = path.stat().st_size
    vec = (ctypes.c_ubyte * ((size + mmap.PAGESIZE - 1) // mmap.PAGESIZE))()
    with path.open("rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as m:
        start = ctypes.c_char.from_buffer(m)
        rc = libc.mincore(ctypes.c_void_p(ctypes.addressof(start)), ctypes.c_size_t(size), vec)
        del start
    assert rc == 0, os.strerror(ctypes.get_errno())
    return sum(v & 1 for v in vec)


def test_a_closed_segment_leaves_the_page_cache(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.write_bytes(b"x" * 65536)
    fd = os.open(probe, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    if resident_pages(probe):
        pytest.skip("this filesystem keeps files in memory (tmpfs): nothing to drop")
    journal = opened_journal(tmp_path / "logs", segment_bytes=256 * 1024)
    layout, sink = journal.layout, journal.sink
    sink.start()
    for i in range(0, 6000, 500):
        write_messages(journal, 500, start=i)
    assert sink.wait_idle(10)
    *closed, current = sorted(layout.segments.glob("seg-*.jsonl"))
    assert len(closed) >= 2
    assert [resident_pages(p) for p in closed] == [0] * len(closed)
    assert resident_pages(current) > 0  # the one being written stays cached
    journal.close()
    assert written_ids(tmp_path / "logs") == list(range(6000))  # read back from disk


def test_lost_lines_count_messages_heads_and_a_torn_first_line() -> None:
    from recorder.store.journal import LostLines

    lines = (
        b'ail of a line whose head was written"}}\n'
        b'{"v":1,"seq":7,"ts":100.5,"kind":"msg","topic":"a"}\n'
        b'{"v":1,"seq":8,"ts":101.0,"kind":"event","event":"stop"}\n'
        b'{"v":1,"seq":9,"ts":102.25,"kind":"msg","topic":"b"}\n'
    )
    lost = LostLines.of(lines)
    assert (lost.lines, lost.messages, lost.nbytes) == (4, 3, len(lines))  # the torn one too
    assert (lost.first_ts, lost.last_ts) == (100.5, 102.25)
    more = LostLines.of(b'{"v":1,"seq":10,"ts":103.0,"kind":"msg"}\n') + LostLines()
    both = lost + more
    assert (both.lines, both.messages, both.first_ts, both.last_ts) == (5, 4, 100.5, 103.0)
    assert both.describe() == f"4 messages (5 journal lines, {both.nbytes:,} bytes)"


def test_lost_lines_count_the_messages_of_the_gap_records_among_them() -> None:
    """A gap record given up with the rest (a `recorder-backlog` gap held on a full disk)
    takes its `missed` with it: counted apart, so the next start's gap still has them.
    A `before-first-seen` record is no loss of ours (counted apart in the status too),
    and a gap without `missed` counts none."""
    from recorder.store.journal import LostLines

    lines = (
        b'{"v":1,"seq":7,"ts":100.5,"kind":"msg","topic":"a"}\n'
        b'{"v":1,"seq":8,"ts":101.0,"kind":"gap","cause":"recorder-backlog","missed":221}\n'
        b'{"v":1,"seq":9,"ts":101.5,"kind":"gap","cause":"publisher-sequence","missed":4}\n'
        b'{"v":1,"seq":10,"ts":101.6,"kind":"gap","cause":"before-first-seen","missed":9}\n'
        b'{"v":1,"seq":11,"ts":101.7,"kind":"gap","cause":"broker-outage"}\n'
        b'{"v":1,"seq":12,"ts":102.0,"kind":"event","event":"stop"}\n'
    )
    lost = LostLines.of(lines)
    assert (lost.lines, lost.messages, lost.gaps, lost.missed) == (6, 1, 2, 225)
    assert lost.total == 226
    both = lost + LostLines.of(lines[: lines.index(b"\n") + 1])
    assert (both.messages, both.gaps, both.missed, both.total) == (2, 2, 225, 227)
    assert lost.sentence() == (
        f"1 message (6 journal lines, {len(lines):,} bytes) could not be written before it "
        "stopped (the disk stayed full), with 2 gap records among them that counted 225 "
        "more messages lost"
    )
    assert LostLines.from_json(lost.to_json()) == lost
    old = {k: v for k, v in lost.to_json().items() if k not in ("gaps", "missed")}
    assert LostLines.from_json(old) == LostLines(6, 1, len(lines), 100.5, 102.0)  # an older status


def test_a_stop_given_up_on_a_hung_disk_counts_the_messages_and_gaps_it_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer stuck in a system call (a hung network disk) never sees the stop give
    up: `ABANDON_WAIT` later its bytes were counted lost, and only its bytes ("0
    messages (0 journal lines, 25,000 bytes)"): the messages held, and those the gap
    records among them counted, were in no count and no gap. Now the chunk being
    written and those waiting (some compressed) are read as a stop on a full disk reads
    what it drops."""
    from recorder.store import journal as journal_module
    from recorder.store.journal import UnwrittenData

    monkeypatch.setattr(journal_module, "ABANDON_WAIT", 0.2)
    journal = opened_journal(tmp_path)
    sink = journal.sink
    sink.compress_after_slow = 4 * 1024  # beyond 4 KiB, what waits is compressed
    hung, released = threading.Event(), threading.Event()

    def hang(fd: int, chunks: list[memoryview]) -> int:
        hung.set()
        released.wait(30)
        raise OSError(5, "Input/output error")

    sink.writev = hang  # type: ignore[method-assign]
    sink.start()
    try:
        write_messages(journal, 20)
        assert hung.wait(5)
        for i in range(20, 300, 20):
            write_messages(journal, 20, start=i)
        journal.append({"kind": "gap", "cause": "recorder-backlog", "missed": 57})
        journal.append({"kind": "gap", "cause": "before-first-seen", "missed": 9})
        journal.flush()
        assert [c for c in sink._queue if c[0] == "zwrite"]
        give_up = threading.Event()
        give_up.set()
        with pytest.raises(UnwrittenData) as caught:
            journal.close(give_up)
    finally:
        released.set()
    lost = caught.value.lost
    assert (lost.messages, lost.lines, lost.gaps, lost.missed) == (300, 302, 1, 57)
    assert lost.total == 357 and lost.nbytes > 300 * 40
