"""`persist restore` from the shell."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.demo_journal import restore_journal as journal


def test_persist_restore_command(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = tmp_path / "logs"
    cp, _ = journal(root, gap=True)
    out = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "restore", "latest", "--log-dir", str(root)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert cp.id in out.stdout and "warning: 1 gap, 3 messages known lost" in out.stdout
    data = json.loads((root / "restore" / cp.id / "manifest.json").read_text())
    assert data["integrity"]["gaps"] == 1


def test_checkpoints_are_listed_in_columns(tmp_path: Path) -> None:
    """`persist checkpoints`: one row per checkpoint, newest first, pinned ones marked,
    and every column where the one above it is, whatever the labels' lengths."""
    import subprocess
    import sys

    from tests.demo_journal import DemoClock, DemoWriter

    root = tmp_path / "logs"
    w = DemoWriter.open(root, clock=DemoClock(1_800_000_000.0))
    ids = []
    for i, label in enumerate(["a", "a much longer label than the others", "mid label"]):
        w.message(1_800_000_000.0 + i, "coder", f"message {i}")
        ids.append(w.checkpoint(1_800_000_000.5 + i, label, "manual").id)
    w.close()

    def persist(*argv: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "recorder.cli", *argv, "--log-dir", str(root)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    persist("pin", ids[1])
    rows = persist("checkpoints").splitlines()
    assert [row.removeprefix("pinned").split()[0] for row in rows] == ids[::-1]
    assert rows[1].startswith("pinned  ") and not rows[0].startswith("pinned")
    assert len({row.index(" seq ") for row in rows}) == 1, rows
    assert len({row.index(" msgs ") for row in rows}) == 1, rows


def test_an_export_into_a_folder_that_is_not_there_names_the_output(tmp_path: Path) -> None:
    """`-o` into a missing folder, under a file, or a folder itself: one line naming the
    output (not the temporary file beside it), exit 1, nothing written (for a folder,
    not even a temporary file beside it)."""
    import subprocess
    import sys

    cli = [sys.executable, "-m", "recorder.cli"]
    root = tmp_path / "logs"
    journal(root)
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for target, why in (
        (tmp_path / "missing" / "x.md", "No such file or directory"),
        (a_file / "x.md", "Not a directory"),
        (root, "it is a folder, not a file"),
    ):
        out = subprocess.run(
            [*cli, "export", "latest", "--log-dir", str(root), "-o", str(target)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 1
        assert out.stderr == f"persist: cannot write {target}: {why}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "logs"]
    assert (root / "segments").is_dir()


def test_a_file_where_the_restore_folder_goes_is_named(tmp_path: Path) -> None:
    """A file at `<log folder>/restore`: the bundle cannot be written, and the line said
    "[Errno 17] File exists: ..."; now it names the file and what to do, exit 1."""
    import subprocess
    import sys

    root = tmp_path / "logs"
    journal(root)
    (root / "restore").write_text("")
    out = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "restore", "latest", "--log-dir", str(root)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr == (
        f"persist: cannot write the restore bundle: {root / 'restore'} is a file, not the "
        "folder bundles go into: move it aside and restore again\n"
    )


def test_an_export_never_writes_over_the_journal_it_reads(tmp_path: Path) -> None:
    """`-o <log>/current_session.jsonl` (a link to the segment being written) replaced
    that segment with Markdown, exit 0: its messages were lost. Anywhere in the log
    folder but exports/, and a hard link to a segment, is refused (exit 2), untouched."""
    import hashlib
    import os
    import subprocess
    import sys

    root = tmp_path / "logs"
    journal(root)

    def digests() -> dict[str, str]:
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / "segments").iterdir())
        }

    before = digests()
    first = sorted((root / "segments").iterdir())[0]
    linked = tmp_path / "linked.jsonl"
    os.link(first, linked)
    export_all = [sys.executable, "-m", "recorder.cli", "export", "--all", "--format", "md"]
    export_all += ["--log-dir", str(root), "--allow-damage"]
    for target, why in (
        (root / "current_session.jsonl", f"is inside the log folder {root.resolve()}"),
        (root / "segments" / first.name, "is inside the log folder"),
        (root / "notes.md", "is inside the log folder"),
        (linked, f"is a hard link to segments/{first.name}"),
    ):
        out = subprocess.run(
            [*export_all, "-o", str(target)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 2, out.stderr
        assert why in out.stderr and out.stderr.count("\n") == 1, out.stderr
    assert digests() == before and not (root / "notes.md").exists()
    (root / "exports").mkdir(mode=0o700)
    out = subprocess.run(
        [*export_all, "-o", str(root / "exports" / "all.md")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr  # exports/ is where persist-tui writes them too


def test_restoring_a_checkpoint_a_power_cut_cut_short_holds_nothing_written_after_it(
    tmp_path: Path,
) -> None:
    """A power cut took records a checkpoint covers, and the restarted recorder gave
    their seqs to new records: `persist restore` of that checkpoint put 10 messages
    received after the restart in the bundle ("seq 1 to 76"). It now holds the records
    up to where the journal was cut, and says the journal is damaged (exit 5); the
    restart's own checkpoint holds the new messages and names the lost seqs."""
    import subprocess
    import sys

    from tests.unit.test_daemon import power_cut

    _, cp, synced = power_cut(tmp_path)
    root = tmp_path / "logs"

    def restore(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "recorder.cli", "restore", *argv, "--log-dir", str(root)],
            capture_output=True,
            text=True,
            timeout=30,
        )

    out = restore(cp.id)
    assert out.returncode == 5, out.stderr
    assert f"(seq 1 to {synced.seq})" in out.stdout
    assert "seg-000001.jsonl is shorter than" in out.stdout
    assert b"AFTER" not in (root / "restore" / cp.id / "conversation.jsonl").read_bytes()
    out = restore("latest", "--full", "--json")
    assert out.returncode == 0, out.stderr
    end = json.loads(out.stdout)["checkpoint"]["id"]
    held = (root / "restore" / f"{end}.full" / "transcript.md").read_text()
    assert held.count("AFTER restart") == 10
    assert f"gap (journal-lost), journal seq {synced.seq + 1} to {cp.seq}" in held


def test_a_bundle_that_finds_no_room_names_where_it_goes(tmp_path: Path) -> None:
    """A full disk (here a file size limit: EFBIG, as ENOSPC) under the bundle said
    "cannot write the restore bundle: No space left on device", naming no place. Now
    it names the folder bundles go into, exit 1."""
    import resource
    import signal
    import subprocess
    import sys

    root = tmp_path / "logs"
    journal(root)

    def small_files() -> None:  # the child's writes past 1 KiB fail
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    out = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "restore", "latest", "--log-dir", str(root)],
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=small_files,
    )
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr == (
        f"persist: cannot write the restore bundle: File too large (in {root / 'restore'})\n"
    )


def as_an_older_renderer_wrote_it(bundle: Path, renderer: str | None, *, same: bool) -> None:
    """Make `bundle` what an older `persist restore` wrote: its day heading without
    "(UTC)" and a sender's backtick not escaped (before 2026-12-07: the backtick opened a
    code span), unless `same` (an older code that rendered these records alike), its
    manifest naming those bytes (so its files check as intact) and `renderer` absent
    (written before it was recorded) or another code's."""
    import hashlib

    path = bundle / "transcript.md"
    raw = path.read_bytes()
    old = raw.replace(b" (UTC)\n", b"\n").replace(b"**rev\\`iewer**", b"**rev`iewer**")
    assert old != raw
    if same:
        old = raw
    path.write_bytes(old)
    manifest_path = bundle / "manifest.json"
    m = json.loads(manifest_path.read_bytes())
    md, body = m["files"]["markdown"], m["files"]["markdown"]["body"]
    assert raw[body["end"] :] == old[body["end"] - len(raw) + len(old) :]  # footer as it was
    body["end"] += len(old) - len(raw)
    body["prefix_sha256"] = hashlib.sha256(old[: body["end"]]).hexdigest()
    md["bytes"], md["sha256"] = len(old), hashlib.sha256(old).hexdigest()
    if renderer is None:
        del m["renderer"]
    else:
        m["renderer"] = renderer
    manifest_path.write_bytes(json.dumps(m).encode())


@pytest.mark.parametrize(("renderer", "same"), [(None, False), ("0" * 32, False), (None, True)])
def test_a_bundle_of_another_renderer_is_neither_handed_back_nor_gone_on_from(
    tmp_path: Path, renderer: str | None, same: bool
) -> None:
    """A full bundle an older version wrote (its manifest without `renderer`, or with
    another code's): `restore --full` of a later checkpoint renders the whole
    conversation rather than copy that bundle's transcript as its beginning, and
    `restore --full` of its own checkpoint builds it again beside it rather than hand it
    back (or replace it: an agent may be reading it).
    Before 2026-12-07 both kept the older rendering (a heading without "(UTC)", a
    sender's backtick opening a code span). One whose bytes are this code's all the same
    is replaced too (else it would be built again at every restore). A bundle of this
    code is still gone on from and kept."""
    import subprocess
    import sys

    from tests.demo_journal import DemoClock, DemoWriter

    root = tmp_path / "logs"
    t0 = 1_800_000_000.0
    w = DemoWriter.open(root, segment_bytes=2048, clock=DemoClock(t0))
    for i in range(20):
        w.message(t0 + i, ("planner", "rev`iewer")[i % 2], f"message {i}", topic="chat")
    first = w.checkpoint(t0 + 30, "first", "manual")
    for i in range(10):
        w.message(t0 + 40 + i, "planner", f"later {i}", topic="chat")
    second = w.checkpoint(t0 + 60, "second", "manual")
    w.close()

    def restore(cp: str) -> dict[str, Any]:
        cli = [sys.executable, "-m", "recorder.cli"]
        out = subprocess.run(
            [*cli, "restore", cp, "--full", "--json", "--log-dir", str(root)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        m: dict[str, Any] = json.loads(out.stdout)
        return m

    def transcript(folder: str) -> bytes:
        return (root / "restore" / folder / "transcript.md").read_bytes()

    def rendered_today(md: bytes) -> bool:
        return (
            b"## 2027-01-15 (UTC)\n" in md
            and b"## 2027-01-15\n" not in md
            and md.count(b"**rev\\`iewer**") == 10
            and b"**rev`iewer**" not in md
        )

    older, newer = f"{first.id}.full", f"{second.id}.full"
    made = restore(first.id)
    assert made["renderer"] and rendered_today(transcript(older))
    as_an_older_renderer_wrote_it(root / "restore" / older, renderer, same=same)
    assert rendered_today(transcript(older)) is same
    kept = transcript(older)

    later = restore(second.id)  # not gone on from: the whole conversation rendered
    assert "reused" not in later and rendered_today(transcript(newer))
    assert later["renderer"] == made["renderer"]
    scratch = transcript(newer)
    again = restore(first.id)  # not handed back: built again, beside it (never replaced)
    assert again["created"] != made["created"] and again["dir"] == str(
        root / "restore" / f"{older}.2"
    )
    assert again["renderer"] == made["renderer"] and rendered_today(transcript(f"{older}.2"))
    assert transcript(older) == kept
    assert json.loads((root / "restore" / f"{older}.2" / "manifest.json").read_bytes()) == {
        k: v for k, v in again.items() if k != "dir"
    }
    # this code's bundles: kept in place, and gone on from
    assert restore(first.id)["created"] == again["created"]
    shutil.rmtree(root / "restore" / newer)
    went_on = restore(second.id)
    assert went_on["reused"]["bundle"] == f"{older}.2" and transcript(newer) == scratch
