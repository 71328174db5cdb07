"""A wrong `metadata_index/*.idx` cache is noticed, reported and rebuilt from the segment:
export and restore (the real CLI) still see every record of the journal."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import zlib
from array import array
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from recorder.store.reader import SegmentIndex, open_store
from tests.demo_journal import DemoClock, DemoWriter

T0 = 1_800_000_000.0
HEADER = struct.Struct("<8sQQQQI")  # magic, size, mtime_ns, inode, count, crc32


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 3.5 MB in segments of 1.2 MB (caches are kept for closed segments of 1 MiB+)."""
    root = tmp_path_factory.mktemp("idx") / "logs"
    clock = DemoClock(T0)
    w = DemoWriter.open(root, segment_bytes=1_200_000, clock=clock)
    for i in range(12_000):
        clock.now = T0 + i
        w.message(T0 + i, ("planner", "coder")[i % 2], f"message {i} " + "words " * 20)
    w.checkpoint(T0 + 12_001, "end", "manual")
    w.close()
    open_store(root).close()  # writes the caches
    assert len(list((root / "metadata_index").glob("*.idx"))) >= 2
    return root


def journal_lines(root: Path) -> list[bytes]:
    """Every line of every segment, read from the files themselves (not through a cache)."""
    data = b"".join(p.read_bytes() for p in sorted((root / "segments").glob("seg-*.jsonl")))
    return data.splitlines(keepends=True)


def rewrite(body: array, header: tuple, **change: int) -> bytes:
    magic, size, mtime_ns, ino, count, _crc = header
    fields = {"size": size, "mtime_ns": mtime_ns, "ino": ino, "count": count, **change}
    raw = body.tobytes()
    return (
        HEADER.pack(
            magic,
            fields["size"],
            fields["mtime_ns"],
            fields["ino"],
            fields["count"],
            zlib.crc32(raw),
        )
        + raw
    )


def parts(path: Path) -> tuple[tuple, array]:
    raw = path.read_bytes()
    body = array("Q")
    body.frombytes(raw[HEADER.size :])
    return HEADER.unpack_from(raw), body


def truncated_body(idx: Path, root: Path) -> None:
    raw = idx.read_bytes()
    idx.write_bytes(raw[: HEADER.size + (len(raw) - HEADER.size) // 2])  # header intact


def wrong_count(idx: Path, root: Path) -> None:
    header, body = parts(idx)
    idx.write_bytes(rewrite(body, header, count=header[4] + 404))


def fewer_lines_consistent(idx: Path, root: Path) -> None:
    """Count and checksum agree, but 404 line starts are gone."""
    header, body = parts(idx)
    del body[-404:]
    idx.write_bytes(rewrite(body, header, count=len(body)))


def out_of_order(idx: Path, root: Path) -> None:
    header, body = parts(idx)
    mid = len(body) // 2 + 3
    body[mid], body[mid + 1] = body[mid + 1], body[mid]
    idx.write_bytes(rewrite(body, header))  # checksum recomputed: the order check finds it


def bad_checksum(idx: Path, root: Path) -> None:
    raw = bytearray(idx.read_bytes())
    raw[HEADER.size + 8 * 100] ^= 0x40
    idx.write_bytes(bytes(raw))


def older_version(idx: Path, root: Path) -> None:
    """The cache of an earlier version of the file: the segment was cut back and written
    again differently (same inode), and the cache's header was made to look current."""
    seg = root / "segments" / idx.name.removesuffix(".idx")
    header, body = parts(idx)
    data = seg.read_bytes()
    cut = data.index(b"\n", len(data) // 3) + 1
    lines = data[cut:].splitlines(keepends=True)
    shifted = (
        data[:cut] + b"".join(line[:-1] + b" " * 7 + b"\n" for line in lines)[: len(data) - cut]
    )
    shifted = shifted[: shifted.rindex(b"\n") + 1]
    with open(seg, "r+b") as f:  # same inode, new bytes
        f.write(shifted)
        f.truncate()
    st = seg.stat()
    keep = array("Q", (s for s in body if s < st.st_size))
    idx.write_bytes(
        rewrite(keep, header, size=st.st_size, mtime_ns=st.st_mtime_ns, count=len(keep))
    )


def another_segments_cache(idx: Path, root: Path) -> None:
    others = sorted(p for p in idx.parent.glob("*.idx") if p != idx)
    _header, body = parts(others[0])
    seg = root / "segments" / idx.name.removesuffix(".idx")
    st = seg.stat()
    keep = array("Q", (s for s in body if s < st.st_size))
    forged = (b"APIDX002", st.st_size, st.st_mtime_ns, st.st_ino, len(keep), 0)
    idx.write_bytes(rewrite(keep, forged))


def replaced_segment(idx: Path, root: Path) -> None:
    seg = root / "segments" / idx.name.removesuffix(".idx")
    copy = seg.with_suffix(".tmp")
    shutil.copy2(seg, copy)
    os.replace(copy, seg)  # same bytes, new inode: the cache is for another file


def garbage(idx: Path, root: Path) -> None:
    idx.write_bytes(b"not an index at all, just some text" * 3)


DAMAGE: dict[str, Callable[[Path, Path], None]] = {
    f.__name__: f
    for f in (
        truncated_body,
        wrong_count,
        fewer_lines_consistent,
        out_of_order,
        bad_checksum,
        older_version,
        another_segments_cache,
        replaced_segment,
        garbage,
    )
}


def persist(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args], capture_output=True, timeout=60
    )


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_wrong_cache_is_rebuilt_and_every_record_is_seen(
    pristine: Path, tmp_path: Path, damage: str
) -> None:
    root = tmp_path / "logs"
    shutil.copytree(pristine, root, copy_function=shutil.copy2)
    open_store(root).close()  # caches of the copies (new inodes)
    idx = sorted((root / "metadata_index").glob("*.idx"))[0]
    DAMAGE[damage](idx, root)
    damaged = idx.read_bytes()
    expected = journal_lines(root)
    assert all(orjson.loads(line) for line in expected)

    out = persist("export", "--all", "--format", "jsonl", "--log-dir", str(root))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines(keepends=True) == expected
    if damage != "replaced_segment":  # a replaced file is a stale cache, not a wrong one
        assert f"warning: metadata_index/{idx.name}".encode() in out.stderr, out.stderr
        assert b"rebuilt from seg-" in out.stderr
    again = open_store(root)  # the cache was written again, and is right this time
    assert again.warnings == [] and len(again) == len(expected)
    assert idx.read_bytes() != damaged
    again.close()

    idx.write_bytes(damaged)
    out = persist("restore", "latest", "--full", "--json", "--log-dir", str(root))
    # older_version rewrote the segment itself: the checkpoint's digest rightly fails (exit 5)
    assert out.returncode == (5 if damage == "older_version" else 0), out.stderr
    manifest = orjson.loads(out.stdout)
    conversation = Path(manifest["dir"]) / "conversation.jsonl"
    assert conversation.read_bytes().splitlines(keepends=True) == expected
    assert manifest["records"] == len(expected)


def test_a_cache_checked_in_full_once_is_not_read_back_again_until_it_changes(
    pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`metadata_index/verified.json` names each cache checked in full (by its stat and
    CRC): a later open skips the order and read-back checks for it, a cache changed in
    any way is checked in full again, and a garbage file means every cache is checked."""
    root = tmp_path / "logs"
    shutil.copytree(pristine, root, copy_function=shutil.copy2)
    index = root / "metadata_index"
    open_store(root).close()  # caches of the copies (new inodes), written and marked
    caches = sorted(index.glob("*.idx"))
    marks = orjson.loads((index / "verified.json").read_bytes())
    for idx in caches:
        st = idx.stat()
        assert marks[idx.name][:3] == [st.st_size, st.st_mtime_ns, st.st_ino]

    reads: list[Path] = []
    real = SegmentIndex.read_at

    def counted(self: SegmentIndex, offset: int, n: int) -> bytes:
        reads.append(self.path)
        return real(self, offset, n)

    monkeypatch.setattr(SegmentIndex, "read_at", counted)
    closed = {root / "segments" / idx.name.removesuffix(".idx") for idx in caches}

    def read_back() -> set[Path]:
        reads.clear()
        store = open_store(root)
        assert store.warnings == []
        store.close()
        return set(reads) & closed

    assert read_back() == set()  # every closed segment's cache was checked before
    (index / "verified.json").write_bytes(b"[not, json")
    assert read_back() == closed  # no trustworthy marks: all checked in full, marked again
    assert read_back() == set()
    first = caches[0]
    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 1))
    assert read_back() == {root / "segments" / first.name.removesuffix(".idx")}
    reads.clear()
    segment = root / "segments" / first.name.removesuffix(".idx")
    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 1))
    before = (index / "verified.json").read_bytes()
    doctor_view = SegmentIndex(segment, index, recheck=True)
    doctor_view.close()
    assert set(reads) == {segment} and doctor_view.warning is None  # doctor always reads back
    assert (index / "verified.json").read_bytes() == before  # and writes nothing
