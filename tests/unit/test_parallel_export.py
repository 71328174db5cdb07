"""A range rendered by worker processes (`recorder.export.parallel`) is byte for byte
what one pass writes: exports in md, html and csv (redacted or not), restore bundles
with `--full`, and their summaries; a failing worker gives the one-line error and
leaves no file behind. Parallel rendering is forced with a tiny piece size (one
line a piece: every record boundary is a piece boundary, so day changes and same-day
runs both cross one)."""

from __future__ import annotations

import io
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from recorder.errors import PersistError
from recorder.export import parallel as par
from recorder.export.parallel import SERIAL, Parallel
from recorder.export.restore import build_bundle
from recorder.export.scope import BundleScope
from recorder.export.writers import ExportError, ExportStats, export_range
from recorder.store import secrets
from recorder.store.checkpoints import Checkpoint
from recorder.store.compact import compact
from recorder.store.layout import Layout, list_segments
from recorder.store.ranges import OTHERS, JournalRange, RangeSummary, journal_damage
from recorder.store.reader import Record, open_store
from tests.demo_journal import DemoClock, DemoWriter
from tests.secret_samples import make
from tests.support import markdown_markup

T0 = 1_800_000_000.0
DAY = 86_400.0
FORCED = Parallel(workers=2, min_bytes=0, piece_bytes=1)
SECRET = make(secrets.GITHUB, random.Random(3)).secret
HOSTILE = (
    "```\n</div><script>alert(1)</script> ]](javascript:x) &amp;\n"
    "=cmd|' /C calc'!A0, \"quoted\"\r\n\t tab \x1b[31m red \u202e bidi \x00 nul"
)


def journal(root: Path) -> Checkpoint:
    """Messages over several small segments and four days (a day changes every few
    records), with hostile text, secrets, gaps, heartbeats and a damaged line."""
    clock = DemoClock(T0)
    w = DemoWriter.open(root, segment_bytes=3000, clock=clock)
    senders = ("planner", "coder", "reviewer")
    for i in range(48):
        ts = T0 + (i // 5) * DAY / 2 + i
        clock.now = ts
        text = f"message {i}"
        if i % 7 == 3:
            text += "\n" + HOSTILE
        if i % 11 == 5:
            text += f" token {SECRET} end"
        w.message(
            ts, senders[i % 3], text, topic=f"chat/{i % 2}", extra={"n": i} if i % 2 else None
        )
        if i == 20:
            w.gap(ts + 0.5, "planner", 4, 9)
        if i == 30:
            w.record(ts + 0.5, "heartbeat")
            w.bad_line()
    end = w.checkpoint(T0 + 30 * DAY, "end", "manual")
    w.close()
    return end


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Checkpoint]]:
    root = tmp_path_factory.mktemp("parallel") / "logs"
    cp = journal(root)
    yield root, cp


def export(
    root: Path, fmt: str, redact: bool, parallel: Parallel, to: Path | None = None
) -> tuple[bytes, ExportStats]:
    """The export in memory, or in file `to` (pieces are copied in the kernel)."""
    with open_store(root) as store, open(to, "wb") if to else io.BytesIO() as out:
        assert len(store.segments) >= 4
        stats = export_range(
            store, JournalRange(0, len(store)), fmt, out, redact=redact, parallel=parallel
        )
        data = out.getvalue() if isinstance(out, io.BytesIO) else b""
    return (to.read_bytes() if to else data), stats


@pytest.mark.parametrize("fmt", ["md", "html", "csv"])
def test_parallel_export_is_the_serial_bytes(
    logs: tuple[Path, Checkpoint], fmt: str, tmp_path: Path
) -> None:
    root, _cp = logs
    for redact in (True, False):
        serial, serial_stats = export(root, fmt, redact, SERIAL)
        parallel, parallel_stats = export(root, fmt, redact, FORCED)
        in_file, _ = export(root, fmt, redact, FORCED, tmp_path / f"out.{fmt}")
        assert parallel == serial and in_file == serial
        assert parallel_stats == serial_stats  # counts, participants, kinds, bytes
        assert (b"[REDACTED:" in serial) is redact and (SECRET.encode() in serial) is not redact
    assert serial_stats.bad_lines == 1 and serial_stats.gaps == 1
    if fmt == "md":  # one heading per day, though days change inside and across pieces
        assert serial.count(b"\n## ") == 5 and markdown_markup(serial.decode()) == []
        # the hostile text opens a fence of its own: in it, its tags are shown as typed
        assert b"> </div><script>alert(1)</script> ]](javascript:x) &amp;\n" in serial


def test_parallel_redacted_jsonl_is_the_serial_bytes(logs: tuple[Path, Checkpoint]) -> None:
    root, _cp = logs
    serial, _ = export(root, "jsonl", True, SERIAL)
    parallel, _ = export(root, "jsonl", True, FORCED)
    assert parallel == serial and b"[REDACTED:" in serial


def bundle_files(
    root: Path, cp: Checkpoint, redact: bool, parallel: Parallel, durable: bool = False
) -> list[bytes]:
    bundle = build_bundle(
        root,
        cp,
        scope=BundleScope.whole(),
        durable=durable,
        now=T0,
        redact=redact,
        parallel=parallel,
    )
    out = [bundle.jsonl.read_bytes(), bundle.transcript.read_bytes()]
    out.append(bundle.manifest_path.read_bytes())
    assert not [p for p in bundle.dir.parent.rglob("*") if ".persist-pieces-" in str(p)]
    return out


def test_parallel_full_restore_is_the_serial_bundle(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    cp = journal(root)
    for redact in (False, True):
        serial = bundle_files(root, cp, redact, SERIAL)
        shutil.rmtree(root / "restore")  # not kept: built again
        parallel = bundle_files(root, cp, redact, FORCED)
        assert parallel == serial  # conversation.jsonl, transcript.md, manifest.json
        manifest = orjson.loads(serial[2])
        assert manifest["integrity"]["gaps"] == 1 and manifest["integrity"]["bad_lines"] == 1
        shutil.rmtree(root / "restore")


def test_progress_moves_to_the_end(logs: tuple[Path, Checkpoint]) -> None:
    root, _cp = logs
    seen: list[tuple[int, int]] = []
    with open_store(root) as store:
        total = len(store)
        export_range(
            store,
            JournalRange(0, total),
            "md",
            io.BytesIO(),
            progress=lambda done, of: seen.append((done, of)),
            parallel=Parallel(workers=2, min_bytes=0, piece_bytes=2000),
        )
    assert len(seen) > 3 and seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_merged_summaries_keep_the_participant_cap_in_journal_order() -> None:
    """Pieces count participants without the cap; the merge applies it as one pass."""
    lines = [
        orjson.dumps({"v": 1, "seq": i, "ts": T0 + i, "kind": "msg", "meta": {"sender": s}})
        for i, s in enumerate("aabcbdeafgbhaig")
    ]
    records = [Record(i, 1, 0, line) for i, line in enumerate(lines)]
    serial = RangeSummary(participants_cap=4)
    for rec in records:
        serial.add(rec)
    merged = RangeSummary(participants_cap=4)
    for part in (records[:3], records[3:4], records[4:10], records[10:]):
        piece = RangeSummary()
        for rec in part:
            piece.add(rec)
        merged.merge(piece)
    assert list(merged.participants.items()) == list(serial.participants.items())
    assert merged == serial and serial.participants[OTHERS] == 6


def shifted(path: Path, step: int) -> tuple[list[bytes], list[bytes]]:
    """A segment's lines, and beside each the line `step` after it (b"" past an end)."""
    lines = path.read_bytes().splitlines()
    near = [lines[n + step] if 0 <= n + step < len(lines) else b"" for n in range(len(lines))]
    return lines, near


def damage_lines(root: Path, cp: Checkpoint) -> int:
    """Lines made damaged in place, where a copy of the journal's bytes must leave them
    out: a segment's first line, a run of two, one whose JSON breaks in the middle
    while its start and end still look like a record's, the last line before the
    checkpoint, and the lines right after and right before two that hold a secret
    (which a redacted copy replaces). Returns how many."""
    segs = sorted((root / "segments").glob("seg-*.jsonl"))
    assert len(segs) >= 5

    def spoil(path: Path, n: int, middle: bool = False) -> None:
        lines = path.read_bytes().splitlines(keepends=True)
        line = bytearray(lines[n])
        if middle:
            at = line.index(b'"frames"')
            line[at - 1 : at] = b";"  # the comma before "frames"
        else:
            line[:8] = b"\x00torn \x00"
        lines[n] = bytes(line)
        path.write_bytes(b"".join(lines))

    spoil(segs[1], 0)
    spoil(segs[2], 1)
    spoil(segs[2], 2)
    spoil(segs[3], 1, middle=True)
    neighbours = [  # (segment, line) of each intact line next to one with a secret
        [
            (path, n + step)
            for path in segs
            for n, (line, near) in enumerate(zip(*shifted(path, step), strict=True))
            if SECRET.encode() in line and near[:1] == b"{"
        ]
        for step in (1, -1)
    ]
    after, before = neighbours[0][0], neighbours[1][-1]
    assert after != before
    spoil(*after)
    spoil(*before)
    with open_store(root) as store:  # the last record of the range
        last = store.record(store.checkpoint_index(cp) - 1)
    last_path = next(p for p in segs if p.name == f"seg-{last.segment:06d}.jsonl")
    index = last_path.read_bytes()[: last.offset].count(b"\n")
    spoil(last_path, index)
    return 7


@pytest.mark.parametrize("redact", [False, True])
@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("piece_bytes", [1, 1 << 20])  # a line a piece, a segment a piece
def test_a_parallel_full_bundle_copies_the_journal_less_its_damaged_lines(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    compressed: bool,
    piece_bytes: int,
    redact: bool,
) -> None:
    """The workers render only the transcript: the JSONL is copied from the segments
    (in the kernel for plain ones), less the lines the workers found damaged, and with
    the lines they redacted in place of the stored ones. Byte for byte the one pass's
    bundle, manifest included, and durable files written back as they grow (every 100
    bytes here)."""
    import recorder.export.bundle_file as bundle_file

    monkeypatch.setattr(bundle_file, "_WRITE_BACK", 100)
    root = tmp_path / "logs"
    cp = journal(root)
    damaged = damage_lines(root, cp)
    if compressed:
        compact(Layout(root))
        names = [p.name for p in list_segments(Layout(root))]
        assert sum(n.endswith(".zst") for n in names) == len(names) - 1, names
    with open_store(root) as store:
        kept = [r.line for r in store.records(0, store.checkpoint_index(cp)) if r.data is not None]
    serial = bundle_files(root, cp, redact, SERIAL, durable=True)
    shutil.rmtree(root / "restore")
    forced = Parallel(workers=2, min_bytes=0, piece_bytes=piece_bytes)
    parallel = bundle_files(root, cp, redact, forced, durable=True)
    assert parallel == serial
    manifest = orjson.loads(serial[2])
    assert manifest["integrity"]["bad_lines"] == damaged + 1  # and the journal's own
    if not redact:
        assert serial[0] == b"".join(kept)
        return
    lines = serial[0].splitlines(keepends=True)
    assert len(lines) == len(kept) and SECRET.encode() not in serial[0]
    changed = [(a, b) for a, b in zip(kept, lines, strict=True) if a != b]
    assert len(changed) == 4 and all(b"[REDACTED:" in b for _, b in changed)


def test_a_failed_write_back_fails_the_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error of a background fdatasync (the disk lost the bytes) is the bundle's
    error, once, and no bundle is left in place: Linux reports it to one sync only."""
    import errno
    import os

    import recorder.export.bundle_file as bundle_file

    monkeypatch.setattr(bundle_file, "_WRITE_BACK", 100)
    calls: list[int] = []

    def lost(fd: int) -> None:
        calls.append(fd)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", lost)
    root = tmp_path / "logs"
    cp = journal(root)
    for parallel in (SERIAL, FORCED):
        with pytest.raises(OSError) as err:
            bundle_files(root, cp, False, parallel, durable=True)
        assert str(err.value) == "[Errno 5] Input/output error"
        assert not (root / "restore" / f"{cp.id}.full").exists()
        assert [p.name for p in (root / "restore").iterdir()] == []
    assert calls


def test_a_segment_that_shrinks_under_a_worker_is_one_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    journal(root)
    out = tmp_path / "out"
    out.mkdir()
    with open_store(root) as store, open(out / "x.md", "wb") as f:
        victim = store.segments[2].path
        with open(victim, "r+b") as seg:
            seg.truncate(100)
        with pytest.raises(ExportError) as err:
            export_range(store, JournalRange(0, len(store)), "md", f, parallel=FORCED)
    assert str(err.value) == (
        f"{victim.name} is shorter than when the export began (changed while it was being read)"
    )
    assert sorted(p.name for p in out.iterdir()) == ["x.md"]  # no pieces left behind


def test_a_full_disk_in_a_worker_is_the_serial_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files beyond 1 KiB fail as on a full disk (RLIMIT_FSIZE: EFBIG), in this process
    and in the workers it starts: a worker's piece fails as the one pass's output does,
    with the same one line, and its folder of pieces is gone."""
    root = tmp_path / "logs"
    journal(root)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(out))  # pieces of an export to memory
    errors: list[str] = []
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # inherited: EFBIG, not a kill
    try:
        with open_store(root) as store, open(out / "serial.md", "wb") as f:
            rng = JournalRange(0, len(store))
            whole_segments = Parallel(workers=2, min_bytes=0, piece_bytes=1 << 20)
            for target, parallel in ((f, SERIAL), (io.BytesIO(), whole_segments)):
                resource.setrlimit(resource.RLIMIT_FSIZE, (1024, hard))
                try:
                    with pytest.raises(OSError) as err:
                        export_range(store, rng, "md", target, parallel=parallel)
                        target.flush()  # as `AtomicFile.commit` does
                finally:
                    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
                errors.append(str(err.value))
    finally:
        signal.signal(signal.SIGXFSZ, old)
    assert errors == ["[Errno 27] File too large"] * 2
    assert sorted(p.name for p in out.iterdir()) == ["serial.md"]


UNGUARDED = """
import io, sys
from recorder.export.parallel import Parallel
from recorder.export.writers import export_range
from recorder.store.ranges import JournalRange
from recorder.store.reader import open_store
print("main module ran", file=sys.stderr)
store = open_store(sys.argv[1])
out = io.BytesIO()
export_range(store, JournalRange(0, len(store)), "md", out,
             parallel=Parallel(workers=2, min_bytes=0, piece_bytes=1))
sys.stdout.buffer.write(out.getvalue())
"""


def test_a_script_without_a_main_guard_is_not_run_again(
    logs: tuple[Path, Checkpoint], tmp_path: Path
) -> None:
    """Workers are fresh interpreters that import only the renderer: a caller's main
    module (here a script with no `if __name__ == "__main__"`) runs once."""
    root, _cp = logs
    script = tmp_path / "export_script.py"
    script.write_text(UNGUARDED)
    done = subprocess.run(
        [sys.executable, str(script), str(root)], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stderr.decode().count("main module ran") == 1
    assert done.stdout == export(root, "md", True, SERIAL)[0]


def dies_on_its_third_piece(how: str) -> str:
    """A worker's boot line whose worker ends itself (`how`) as it takes its third piece."""
    return (
        "import sys, json, os, signal; sys.path[:] = json.loads(sys.argv[1]); "
        "from recorder.export import parallel; real = parallel.render_piece; n = [0]; "
        f"parallel.render_piece = lambda *a: (n.append(1), len(n) > 3 and {how}, real(*a))[2]; "
        "parallel.serve()"
    )


@pytest.mark.parametrize(
    ("how", "said"),
    [
        ("os._exit(9)", "exit code 9"),
        ("os.kill(os.getpid(), signal.SIGKILL)", "killed by SIGKILL"),  # the OOM killer's
    ],
)
def test_a_worker_that_dies_is_one_clear_error(
    logs: tuple[Path, Checkpoint],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
    said: str,
) -> None:
    """A worker gone in the middle of an export (it exits, or is killed): the export
    fails with one line saying how it ended, and leaves no scratch piece."""
    root, _cp = logs
    monkeypatch.setattr(par, "_BOOT", dies_on_its_third_piece(how))
    out = tmp_path / "out"
    out.mkdir()
    with (
        open_store(root) as store,
        open(out / "x.md", "wb") as f,
        pytest.raises(ExportError) as err,
    ):
        assert len(par.plan(store, 0, len(store), 1)) > 6  # both workers reach a third
        export_range(store, JournalRange(0, len(store)), "md", f, parallel=FORCED)
    assert str(err.value) == f"a rendering worker stopped ({said})"
    assert sorted(p.name for p in out.iterdir()) == ["x.md"]


def test_a_damaged_compressed_frame_reads_and_is_named_the_same(tmp_path: Path) -> None:
    """A compressed segment of several frames, one in the middle damaged: the same
    bytes either way, and the parent's index names the frame only a worker read
    (the parent reads just the record before each piece), as one pass's index does."""
    root = tmp_path / "logs"
    clock = DemoClock(T0)
    w = DemoWriter.open(root, segment_bytes=1 << 20, clock=clock)
    rnd = random.Random(1)
    for i in range(700):
        clock.now = T0 + i * 600
        text = " ".join(
            rnd.choice(("alpha", "beta", "gamma", "delta", "x" * 9)) for _ in range(300)
        )
        w.message(T0 + i * 600, "planner", text)
    w.close()
    layout = Layout(root)
    compact(layout)
    victim = list_segments(layout)[0]
    assert victim.name.endswith(".zst")
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 3] ^= 0xFF  # a frame in the middle
    victim.write_bytes(bytes(raw))
    seen = []
    for parallel in (SERIAL, Parallel(workers=2, min_bytes=0, piece_bytes=1 << 20)):
        out = io.BytesIO()
        with open_store(root) as store:
            rng = JournalRange(0, len(store))
            stats = export_range(store, rng, "md", out, parallel=parallel)
            damage = journal_damage(store, rng, writer_running=False)
        seen.append((out.getvalue(), stats, damage))
    assert seen[0] == seen[1]
    assert seen[0][1].bad_lines >= 1
    assert any(": compressed frame " in d and " is damaged: " in d for d in seen[0][2]), seen[0][2]


def prune_all(root: Path) -> list[str]:
    """A real `persist prune` (its own process) that moves every closed segment to the
    trash; returns the names it moved."""
    before = {p.name for p in list_segments(Layout(root))}
    done = subprocess.run(
        [sys.executable, "-m", "recorder.cli.main", "prune", "--max-size", "1B", "--log-dir", root],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    gone = sorted(before - {p.name for p in list_segments(Layout(root))})
    assert gone[:2] == ["seg-000001.jsonl", "seg-000002.jsonl"]  # from the first one on
    return gone


@pytest.mark.parametrize("fmt", ["md", "html", "csv"])
def test_an_export_finishes_from_the_segments_it_planned_though_a_prune_moves_them(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fmt: str,
) -> None:
    """`persist export` with a prune running meanwhile: the prune moves the segments
    away after the export indexed them and before its workers read them (the prune runs
    just before the rendering starts: deterministic). The export reads the files it
    opened, all of them, and writes what it would have written without the prune."""
    from recorder.cli.main import main
    from recorder.export import writers

    root = tmp_path / "logs"
    journal(root)
    expected, _ = export(root, fmt, True, SERIAL)
    real = writers.export_range
    pruned: list[str] = []

    def pruned_meanwhile(*args: object, **kw: object) -> ExportStats:
        pruned.extend(prune_all(root))
        return real(*args, **{**kw, "parallel": FORCED})  # type: ignore[arg-type]

    monkeypatch.setattr(writers, "export_range", pruned_meanwhile)
    out = tmp_path / f"out.{fmt}"
    capsys.readouterr()
    code = main(["export", "--all", "--format", fmt, "-o", str(out), "--log-dir", str(root)])
    err = capsys.readouterr().err
    assert pruned and code == 5, err  # 5: the journal's one damaged line, marked
    assert err.endswith("the journal is damaged in range; output written anyway (exit 5)\n")
    assert out.read_bytes() == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs", f"out.{fmt}"]  # no pieces


def test_a_full_restore_finishes_from_the_segments_it_planned_though_a_prune_moves_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`persist restore --full` with a prune running meanwhile (after the restore
    indexed and verified the range, before it copies and renders it): the bundle holds
    the records it planned, as one built without the prune does."""
    from recorder.cli.main import main
    from recorder.export import restore

    root = tmp_path / "logs"
    cp = journal(root)
    expected = bundle_files(root, cp, False, SERIAL)[:2]
    shutil.rmtree(root / "restore")
    real = restore.use_parallel
    pruned: list[str] = []

    def pruned_meanwhile(store: object, start: int, stop: int, parallel: object) -> int:
        pruned.extend(prune_all(root))
        return real(store, start, stop, FORCED)  # type: ignore[arg-type]

    monkeypatch.setattr(restore, "use_parallel", pruned_meanwhile)
    capsys.readouterr()
    code = main(["restore", cp.id, "--full", "--log-dir", str(root)])
    err = capsys.readouterr().err
    assert pruned and code == 5, err  # 5: the journal's one damaged line
    assert err == "persist: the journal is damaged in range; output written anyway (exit 5)\n"
    folder = root / "restore" / f"{cp.id}.full"
    assert [(folder / n).read_bytes() for n in ("conversation.jsonl", "transcript.md")] == expected


def test_a_segment_gone_before_an_export_read_it_is_named(tmp_path: Path) -> None:
    """A segment the export cannot read is named, as a read (never a write) error: one
    that was not open yet when it was removed (pruned while the export ran)."""
    root = tmp_path / "logs"
    journal(root)
    with open_store(root) as store, open(tmp_path / "x.md", "wb") as f:
        victim = store.segments[1]
        victim.close()
        victim.path.unlink()
        for parallel in (FORCED, SERIAL):
            with pytest.raises(PersistError) as err:
                export_range(store, JournalRange(0, len(store)), "md", f, parallel=parallel)
            assert str(err.value) == (
                f"cannot read {victim.path.name}: it was pruned (or removed) while this ran; "
                "run it again"
            )


def test_a_planned_segment_that_leaves_the_view_before_it_is_held_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store refreshed by another thread (the TUI's poll) between the plan and the
    rendering, after a prune took a planned segment: one line naming it."""
    root = tmp_path / "logs"
    journal(root)
    real = par.plan

    def refreshed_after(store: Any, *args: Any) -> list[par.Piece]:
        pieces = real(store, *args)
        victim.unlink()
        store.refresh()  # the view no longer holds it
        return pieces

    monkeypatch.setattr(par, "plan", refreshed_after)
    with open_store(root) as store, open(tmp_path / "x.md", "wb") as f:
        victim = store.segments[0].path
        with pytest.raises(PersistError) as err:
            export_range(store, JournalRange(0, len(store)), "md", f, parallel=FORCED)
    assert str(err.value) == (
        f"cannot read {victim.name}: it was pruned (or removed) while this ran; run it again"
    )
