"""The render cache (`recorder.export.render_cache`): the indexer's warmer renders the
pieces of closed segments an export cuts, and an export copies them instead of
rendering them again, byte for byte what one pass writes. An export keeps nothing
itself, but asks for its format to be kept warm. An entry is used only for the very
lines it was rendered from; a wrong one is rendered again with a warning; damaged
pieces are never kept; `off` keeps and reads nothing; a full disk is said in one line."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import threading
from pathlib import Path

import orjson
import pytest

from recorder.export import render_cache
from recorder.export.parallel import SERIAL, Parallel
from recorder.export.warm_renders import RenderWarmer
from recorder.export.writers import ExportStats, export_range
from recorder.store.layout import Layout, list_segments, segment_number
from recorder.store.ranges import JournalRange
from recorder.store.reader import open_store
from tests.demo_journal import DemoClock, DemoWriter

T0 = 1_800_000_000.0
DAY = 86_400.0
PIECE = 2000
PIECES = Parallel(workers=2, min_bytes=0, piece_bytes=PIECE)
HOSTILE = "```\n</div><script>x</script> =cmd|' /C calc'!A0, \"q\"\r\n\t\x1b[31m \u202e \x00"


def write_journal(root: Path, count: int = 60, start: int = 0, damaged_at: int = -1) -> None:
    """Messages over many small segments and several days, some hostile."""
    clock = DemoClock(T0)
    w = DemoWriter.open(root, segment_bytes=3000, clock=clock)
    for i in range(start, start + count):
        ts = T0 + (i // 7) * DAY / 2 + i
        clock.now = ts
        text = f"message {i}" + ("\n" + HOSTILE if i % 5 == 2 else "")
        w.message(ts, ("planner", "coder")[i % 2], text, topic=f"chat/{i % 3}")
        if i == damaged_at:
            w.bad_line()
    w.close()


def export(
    root: Path, fmt: str = "md", parallel: Parallel = PIECES, to: str = "memory"
) -> tuple[bytes, list[str]]:
    """The export's bytes, and the warnings it gave. `to`: "memory", "file" (pieces
    copied into it in the kernel) or "appended file" (opened to append, which the
    kernel's copy refuses: copied through the export)."""
    path = root.parent / f"export.{fmt}"
    with open_store(root) as store:
        before = len(store.warnings)
        if to == "memory":
            with io.BytesIO() as out:
                export_range(store, JournalRange(0, len(store)), fmt, out, parallel=parallel)
                data = out.getvalue()
        else:
            path.unlink(missing_ok=True)
            with open(path, "ab" if to == "appended file" else "wb") as out:
                stats = export_range(
                    store, JournalRange(0, len(store)), fmt, out, parallel=parallel
                )
                assert isinstance(stats, ExportStats)
            data = path.read_bytes()
            path.unlink()
        return data, store.warnings[before:]


def entries(root: Path) -> dict[Path, tuple[int, int]]:
    """Every kept rendering, with what changes when it is written again."""
    folder = render_cache.folder_of(root)
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*.zst"))}


def segment_numbers(root: Path) -> list[int | None]:
    return [segment_number(p.name) for p in list_segments(Layout(root))]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    write_journal(root)
    assert len(segment_numbers(root)) >= 5
    return root


@pytest.mark.parametrize(
    ("fmt", "to"),
    [("md", "memory"), ("html", "memory"), ("csv", "memory"), ("md", "file"), ("csv", "file")],
)
def test_an_export_asks_and_the_next_copies_what_the_warmer_kept(
    root: Path, fmt: str, to: str
) -> None:
    serial, _ = export(root, fmt, SERIAL)
    assert not render_cache.folder_of(root).exists()  # one pass neither reads nor asks
    first, warnings = export(root, fmt)
    assert first == serial and not warnings
    assert not entries(root)  # an export keeps nothing itself ...
    assert render_cache.wanted(render_cache.folder_of(root)) == {(fmt, True)}  # ... but asks
    assert warm_all(root) > 0
    kept = entries(root)
    numbers = segment_numbers(root)
    for kind in ("md.r.zst", f"{fmt}.r.zst"):  # Markdown always, and what was asked for
        # every closed segment has its pieces kept, the one being written none
        assert {p.parent.name for p in kept if p.name.endswith(kind)} == {
            f"seg-{n:06d}" for n in numbers[:-1]
        }
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in kept)
    assert oct(render_cache.folder_of(root).stat().st_mode & 0o777) == "0o700"
    second, warnings = export(root, fmt, to=to)
    assert second == serial and not warnings
    assert entries(root) == kept  # nothing written: every closed piece copied
    assert warm_all(root) == 0


def test_an_output_opened_to_append_gets_the_same_bytes(root: Path) -> None:
    """`copy_file_range` refuses a file opened to append (EBADF): the pieces are then
    copied through the export, after what the file held."""
    serial, _ = export(root, "md", SERIAL)
    warm_all(root)
    assert export(root, to="appended file") == (serial, [])
    path = root.parent / "earlier.md"
    path.write_bytes(b"earlier\n")
    with open_store(root) as store, open(path, "ab") as out:
        export_range(store, JournalRange(0, len(store)), "md", out, parallel=PIECES)
    assert path.read_bytes() == b"earlier\n" + serial


def test_an_entry_is_used_only_for_the_lines_it_was_rendered_from(root: Path) -> None:
    warm_all(root)
    kept = entries(root)
    # the same length, another text: a journal repaired or damaged by hand
    seg = list_segments(Layout(root))[1]
    data = seg.read_bytes()
    at = data.index(b"message ")
    seg.write_bytes(data[:at] + b"MESSAGE " + data[at + 8 :])
    expected, _ = export(root, "md", SERIAL)
    got, warnings = export(root)
    assert got == expected and b"MESSAGE " in got and not warnings
    gone = set(kept) - set(entries(root))  # that piece's rendering is no more
    assert len(gone) == 1 and next(iter(gone)).parent.name == seg.name[:10]
    assert warm_all(root) == 1  # and is kept again for the lines as they are
    assert export(root) == (expected, [])


@pytest.mark.parametrize("to", ["memory", "file"])
@pytest.mark.parametrize(
    "damage",
    ["garbage", "empty", "torn body", "flipped body", "wrong size", "typed header", "summary"],
)
def test_a_wrong_entry_is_rendered_again_with_a_warning(root: Path, damage: str, to: str) -> None:
    """Found wrong by the worker that copies it, whatever the export writes into."""
    serial, _ = export(root, "md", SERIAL)
    warm_all(root)
    entry = next(iter(entries(root)))
    data = entry.read_bytes()
    head, body = data.split(b"\n", 1)
    header = orjson.loads(head)
    if damage == "garbage":
        data = b"\x00\xff not an entry at all"
    elif damage == "empty":
        data = b""
    elif damage == "torn body":
        data = data[: len(head) + 1 + len(body) // 2]
    elif damage == "flipped body":
        data = head + b"\n" + body[:-6] + bytes([body[-6] ^ 0x55]) + body[-5:]
    elif damage == "wrong size":
        header["size"] += 1
        data = orjson.dumps(header) + b"\n" + body
    elif damage == "typed header":
        header["size"] = "big"
        data = orjson.dumps(header) + b"\n" + body
    else:
        header["summary"]["participants"] = [["planner", "many"]]
        data = orjson.dumps(header) + b"\n" + body
    entry.write_bytes(data)
    got, warnings = export(root, to=to)
    assert got == serial
    assert len(warnings) == 1 and str(entry) in warnings[0]
    assert warnings[0].startswith("render cache: ") and warnings[0].endswith("; rendered again")
    assert not entry.exists()  # removed, and kept again by the warmer
    assert warm_all(root) == 1
    kept = entries(root)
    again, warnings = export(root)
    assert again == serial and not warnings and entries(root) == kept and entry in kept


def test_the_running_warmer_keeps_again_what_an_export_found_wrong(root: Path) -> None:
    """The indexer's warmer is one long-lived object: an entry an export removes (found
    wrong) makes it look at that segment again, and only that one."""
    serial, _ = export(root, "md", SERIAL)
    warmer = RenderWarmer(root, PIECE)
    while warmer.step(0.0):
        pass
    assert warmer.step(0.0) == 0
    entry = next(iter(entries(root)))
    entry.write_bytes(b"not an entry")
    got, warnings = export(root)
    assert got == serial and len(warnings) == 1 and not entry.exists()
    assert warmer.step(0.0) == 1 and entry.exists()
    assert warmer.step(0.0) == 0 and export(root) == (serial, [])


def test_other_code_or_options_render_again_without_a_warning(root: Path) -> None:
    serial, _ = export(root, "md", SERIAL)
    warm_all(root)
    entry = next(iter(entries(root)))
    head, body = entry.read_bytes().split(b"\n", 1)
    header = orjson.loads(head)
    header["key"]["v"] = "an older renderer"
    entry.write_bytes(orjson.dumps(header) + b"\n" + body)
    got, warnings = export(root)
    assert got == serial and not warnings
    assert warm_all(root) == 1  # the warmer replaces it
    assert orjson.loads(entry.read_bytes().split(b"\n", 1)[0])["key"]["v"] != "an older renderer"


def test_an_entry_replaced_after_it_was_looked_up_is_not_copied(root: Path) -> None:
    """What was checked is what is copied: an entry replaced between its look-up and
    its copy (the warmer rendering it again) is refused, not copied unchecked."""
    warm_all(root)
    entry = next(iter(entries(root)))
    head, body = entry.read_bytes().split(b"\n", 1)
    key = render_cache.PieceKey(**{k: v for k, v in orjson.loads(head)["key"].items() if k != "v"})
    cached = render_cache.look_up(render_cache.folder_of(root), key)
    assert cached is not None
    out = io.BytesIO()
    render_cache.copy_out(cached, out)
    assert len(out.getvalue()) == cached.size
    header = orjson.loads(head)
    header["day_after"] = "another day"
    entry.write_bytes(orjson.dumps(header) + b"\n" + body)
    with pytest.raises(render_cache.BadEntry, match="replaced while it was being read"):
        render_cache.copy_out(cached, io.BytesIO())


def test_a_full_output_disk_fails_the_export_and_keeps_the_entries(tmp_path: Path) -> None:
    """Decompressing into an output on a full disk is the output's error (ENOSPC, as
    the export says it), not a damaged entry: nothing kept is removed."""
    import errno

    from tests.process.test_stalls import fill, small_disk

    root = tmp_path / "logs"
    write_journal(root)
    warm_all(root)
    kept = entries(root)
    key = render_cache.PieceKey(
        **{
            k: v
            for k, v in orjson.loads(next(iter(kept)).open("rb").readline())["key"].items()
            if k != "v"
        }
    )
    cached = render_cache.look_up(render_cache.folder_of(root), key)
    assert cached is not None
    with small_disk(tmp_path / "disk", 1) as disk:
        out = open(disk / "export.md", "wb")  # noqa: SIM115 (closed below, its error ignored)
        raw = open(disk / "copy.md", "wb", buffering=0)  # noqa: SIM115
        try:
            fill(disk / "filler")
            with pytest.raises(OSError) as failed:  # straight from the copy
                render_cache.copy_out(cached, raw)
            assert failed.value.errno == errno.ENOSPC
            with open_store(root) as store, pytest.raises(OSError) as failed:  # the export
                export_range(store, JournalRange(0, len(store)), "md", out, parallel=PIECES)
            assert failed.value.errno == errno.ENOSPC
            assert not [w for w in store.warnings if w.startswith("render cache")]
        finally:
            for f in (out, raw):
                with contextlib.suppress(OSError):
                    f.close()
    assert entries(root) == kept


def test_a_full_restore_copies_what_the_warmer_kept(tmp_path: Path) -> None:
    """`restore --full` (unredacted) asks for Markdown unredacted, the warmer keeps it
    with the integrity of each piece (gaps, sequence numbers), and the next bundle
    copies it: byte for byte the one-pass bundle, manifest included. A redacted
    bundle does not use the cache (its copy of the journal replaces lines)."""
    import zstandard

    from tests.unit.test_parallel_export import bundle_files, journal

    root = tmp_path / "logs"
    cp = journal(root)  # gaps, a damaged line, secrets, over several segments
    serial = bundle_files(root, cp, False, SERIAL)
    shutil.rmtree(root / "restore")
    assert bundle_files(root, cp, False, PIECES) == serial
    shutil.rmtree(root / "restore")
    assert render_cache.wanted(render_cache.folder_of(root)) == {("md", False)}
    assert warm_all(root) > 0
    kept = entries(root)
    plain = sorted(p for p in kept if p.name.endswith(".md.p.zst"))
    assert plain and any(b'"gaps":[{' in p.read_bytes().split(b"\n", 1)[0] for p in plain)
    assert bundle_files(root, cp, False, PIECES) == serial
    shutil.rmtree(root / "restore")  # not kept: built again
    assert entries(root) == kept  # nothing rendered was kept by the restore
    # what is copied is the kept rendering: one changed (same size, a valid entry) shows
    for entry in (plain[0], *(p for p in kept if p.name.endswith(".md.r.zst"))):
        head, body = entry.read_bytes().split(b"\n", 1)
        text = zstandard.ZstdDecompressor().decompress(body)
        assert b"message" in text
        text = text.replace(b"message", b"MESSAGE")
        cctx = zstandard.ZstdCompressor(write_checksum=True, write_content_size=True)
        entry.write_bytes(head + b"\n" + cctx.compress(text))
    files = bundle_files(root, cp, False, PIECES)
    assert b"MESSAGE" in files[1] and files[0] == serial[0]
    shutil.rmtree(root / "restore")
    redacted = bundle_files(root, cp, True, SERIAL)
    shutil.rmtree(root / "restore")
    assert bundle_files(root, cp, True, PIECES) == redacted and b"MESSAGE" not in redacted[1]


def test_an_integrity_state_is_kept_whole_and_checked_when_read() -> None:
    """A restore's piece summary goes through an entry's header and back the same;
    a header without it, or with it wrongly typed, is a wrong entry (BadEntry)."""
    from recorder.export.restore import RangeIntegrity

    piece = RangeIntegrity(records=3, messages=2, first_seq=4, last_seq=6, unsequenced=1)
    piece.gap_records = [{"seq": 5, "kind": "gap", "missed": 2}]
    piece.kinds.update({"msg": 2, "gap": 1})
    fields = orjson.loads(orjson.dumps(render_cache.summary_fields(piece)))
    back = render_cache.summary_from(fields, RangeIntegrity())
    assert back.piece_state() == piece.piece_state() and back.kinds == piece.kinds
    assert render_cache.summary_from(fields, ExportStats()).records == 3  # exports: counts
    for wrong in (None, {**fields["state"], "first_seq": "4"}, {**fields["state"], "gaps": [1]}):
        broken = {**fields, "state": wrong}
        with pytest.raises(render_cache.BadEntry, match="summary is wrongly typed"):
            render_cache.summary_from(broken, RangeIntegrity())
    piece.left_out.extend((1, 0, 10))  # a line left out of the copy: no state to keep
    assert piece.piece_state() is None and "state" not in render_cache.summary_fields(piece)


def test_pieces_with_damaged_lines_are_never_kept(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    write_journal(root, damaged_at=12)
    serial, _ = export(root, "md", SERIAL)
    assert b"damaged line" in serial
    warm_all(root)
    assert export(root)[0] == serial
    with open_store(root) as store:
        bad = next(r for r in store.records(0, len(store)) if r.data is None)
    spans = []
    for entry in entries(root):
        key = orjson.loads(entry.read_bytes().split(b"\n", 1)[0])["key"]
        spans.append((key["segment"], key["start"], key["end"]))
    assert spans and not [s for s in spans if s[0] == bad.segment and s[1] <= bad.offset < s[2]]
    # the damaged line's own piece is all that is missing among the closed segments'
    with open_store(root) as store:
        closed = len(store) - len(store.segments[-1])
        starts = {(r.segment, r.offset) for r in store.records(0, closed)}
    covered = {
        (seg, off) for seg, off in starts for s in spans if s[0] == seg and s[1] <= off < s[2]
    }
    assert (bad.segment, bad.offset) in starts - covered
    assert all(seg == bad.segment for seg, _off in starts - covered)


def test_off_keeps_and_reads_nothing(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serial, _ = export(root, "md", SERIAL)
    monkeypatch.setenv(render_cache.CACHE_ENV, "off")
    assert export(root)[0] == serial
    assert not render_cache.folder_of(root).exists()
    assert RenderWarmer(root, PIECE).step(10.0) == 0
    assert not render_cache.folder_of(root).exists()


def warm_all(root: Path) -> int:
    warmer = RenderWarmer(root, PIECE)
    total = 0
    while n := warmer.step(0.0):  # a piece a step
        assert n == 1
        total += n
    return total


def test_the_warmer_renders_what_an_export_of_everything_reads(root: Path) -> None:
    serial, _ = export(root, "md", SERIAL)
    rendered = warm_all(root)
    kept = entries(root)
    assert rendered == len(kept) > 0
    assert {p.parent.name for p in kept} == {f"seg-{n:06d}" for n in segment_numbers(root)[:-1]}
    got, warnings = export(root)
    assert got == serial and not warnings
    assert entries(root) == kept  # every closed piece was copied
    assert warm_all(root) == 0  # nothing left


def test_the_warmer_keeps_warm_every_format_exported_and_drops_pruned_segments(
    root: Path,
) -> None:
    export(root, "html")  # a user exported html once: kept warm from now on
    export(root, "csv", SERIAL)  # a range under 64 MiB (one pass) asks for nothing
    warm_all(root)
    kinds = {p.name.split(".", 1)[1] for p in entries(root)}
    assert kinds == {"md.r.zst", "html.r.zst"}
    before = set(segment_numbers(root))
    write_journal(root, count=40, start=60)  # more segments close
    first = min(before)
    os.unlink(list_segments(Layout(root))[0])  # the oldest segment pruned
    assert warm_all(root) > 0
    kept = entries(root)
    assert f"seg-{first:06d}" not in {p.parent.name for p in kept}
    numbers = segment_numbers(root)
    for kind in kinds:
        assert {p.parent.name for p in kept if p.name.endswith(kind)} == {
            f"seg-{n:06d}" for n in numbers[:-1]
        }
    for fmt in ("md", "html"):
        serial, _ = export(root, fmt, SERIAL)
        assert export(root, fmt)[0] == serial
    assert entries(root) == kept


def test_a_full_disk_is_said_in_one_line_and_warming_rests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The journal on a real full disk (a size-limited tmpfs): the indexer's warming
    says it in one line and rests, its indexing going on; exports are whole."""
    from recorder.cli.search import _RenderWarming
    from tests.process.test_stalls import fill, small_disk

    with small_disk(tmp_path / "disk", 4) as disk:
        root = disk / "logs"
        write_journal(root)
        serial, _ = export(root, "md", SERIAL)
        fill(disk / "filler")
        assert export(root) == (serial, [])
        warming = _RenderWarming(root)
        warming.warmer.piece_bytes = PIECE
        stop = threading.Event()
        assert warming.step(stop.is_set) is False
        said = capsys.readouterr().err.strip().splitlines()
        assert len(said) == 1 and said[0].startswith(
            "persist: render cache: could not render closed segments ("
        )
        assert said[0].endswith("No space left on device)")
        assert warming.step(stop.is_set) is False and not capsys.readouterr().err  # resting
        assert not entries(root)
        (disk / "filler").unlink()
        warming.resting_until = 0.0
        while warming.step(stop.is_set):
            pass
        assert entries(root) and not capsys.readouterr().err
        assert export(root) == (serial, [])


def test_a_piece_too_many_participants_for_a_header_is_never_kept_nor_tried_again(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial, _ = export(root, "md", SERIAL)
    monkeypatch.setattr(render_cache, "MAX_HEADER", 64)  # every header is over it
    warmer = RenderWarmer(root, PIECE)
    rendered = 0
    while n := warmer.step(0.0):
        rendered += n
        assert rendered < 100  # each piece tried once, not forever
    assert rendered > 0 and not entries(root) and warmer.never_kept
    assert export(root) == (serial, [])
