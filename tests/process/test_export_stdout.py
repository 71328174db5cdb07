"""`persist export` to stdout that cannot take all of it: a reader that goes away, a
full disk. Under `python -u` / PYTHONUNBUFFERED, stdout is a raw file whose write()
may write part of the bytes and say how many; the rest must be written (or fail),
never dropped while the export says "exported ..." and exits 0."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.demo_journal import DemoClock, DemoWriter
from tests.process.test_stalls import small_disk

T0 = 1_800_000_000.0
FORMATS = [["md"], ["html"], ["csv"], ["jsonl"], ["jsonl", "--redact"]]
EXPORT = [sys.executable, "-m", "recorder.cli", "export", "--all", "--no-progress"]
BROKEN = "persist: stdout was closed before all output was written (broken pipe)"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 600 KiB of messages: more than a pipe holds, less than one writer chunk
    (1 MiB), so a document is one write() call."""
    root = tmp_path_factory.mktemp("stdout") / "logs"
    w = DemoWriter.open(root, clock=DemoClock(T0))
    for i in range(600):
        w.message(T0 + i, "alice", f"message {i} " + "x" * 1000)
    w.close()
    return root


def export(root: Path, fmt: list[str], unbuffered: str, stdout: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = unbuffered
    return subprocess.Popen(
        [*EXPORT, "--format", *fmt, "--log-dir", str(root)],
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=env,
    )


@pytest.mark.parametrize("unbuffered", ["1", ""], ids=["unbuffered", "buffered"])
@pytest.mark.parametrize("fmt", FORMATS, ids=" ".join)
def test_a_reader_gone_mid_export_is_a_broken_pipe(
    root: Path, fmt: list[str], unbuffered: str
) -> None:
    """`persist export ... | head -c 4096`: the reader takes some of the document (so
    the export is inside its write) and goes; the write returns the part the pipe took.
    Under PYTHONUNBUFFERED md, html, csv and jsonl --redact exited 0 saying "exported";
    without it the line was "persist: [Errno 32] Broken pipe", not main's line."""
    read, write = os.pipe()
    child = export(root, fmt, unbuffered, write)
    os.close(write)
    with os.fdopen(read, "rb") as reader:
        got = reader.read(4096)
    _, err = child.communicate(timeout=60)
    assert len(got) == 4096
    assert "Traceback" not in err.decode(), err.decode()
    assert err.decode().splitlines() == [BROKEN]
    assert child.returncode == 1


@pytest.mark.parametrize("unbuffered", ["1", ""], ids=["unbuffered", "buffered"])
@pytest.mark.parametrize("fmt", FORMATS, ids=" ".join)
def test_a_full_disk_under_stdout_is_named_once(
    root: Path, tmp_path: Path, fmt: list[str], unbuffered: str
) -> None:
    """`PYTHONUNBUFFERED=1 persist export --all --format md > full/x` on a disk with
    room for a part: it wrote that part, said "exported 600 messages" and exited 0.
    Without `-u`, plain JSONL said "cannot write stdout" twice: what stdout still held
    failed again at the last flush."""
    whole = subprocess.run(
        [*EXPORT, "--format", *fmt, "--log-dir", str(root)],
        capture_output=True,
        timeout=60,
    ).stdout
    assert len(whole) > 500_000
    for check in (root / "metadata_index").glob("*.check"):  # JSONL: blocks, not sendfile
        check.unlink()
    with small_disk(tmp_path / "disk", 1) as disk:
        filler = disk / "filler"
        # 252 KiB left: the second 128 KiB slice of a JSONL block is written but its last
        # 4 KiB, which a buffered stdout keeps (under 8 KiB) and says was written
        filler.write_bytes(b"\0" * (1024 - 252) * 1024)
        target = disk / "x"
        with open(target, "wb") as out:
            child = export(root, fmt, unbuffered, out.fileno())
            _, err = child.communicate(timeout=60)
        kept = target.stat().st_size
    assert 0 < kept < len(whole)
    assert "Traceback" not in err.decode(), err.decode()
    assert err.decode().splitlines() == ["persist: cannot write stdout: No space left on device"]
    assert child.returncode == 1


def test_a_named_pipe_whose_reader_goes_is_named(root: Path, tmp_path: Path) -> None:
    """`-o FIFO` whose reader goes away mid-export: one line naming the FIFO (it was
    "persist: [Errno 32] Broken pipe"; stdout's line would name the wrong file)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    child = subprocess.Popen(
        [*EXPORT, "--format", "md", "--log-dir", str(root), "-o", str(fifo)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    with open(fifo, "rb") as reader:  # the export opens it to write: both go on
        got = reader.read(4096)
    _, err = child.communicate(timeout=60)
    assert len(got) == 4096
    assert err.decode().splitlines() == [
        f"persist: cannot write {fifo}: its reader went away before all was written (broken pipe)"
    ]
    assert child.returncode == 1


def leave_room(disk: Path, room: int) -> None:
    """Fill `disk` (a tmpfs) with a file until at most `room` bytes are free."""
    with open(disk / "filler", "ab") as f:
        while True:
            st = os.statvfs(disk)
            if st.f_bavail * st.f_frsize <= room:
                return
            f.write(b"\0" * st.f_frsize)
            f.flush()


@pytest.mark.parametrize(
    ("fmt", "pieces"),
    [("md", 0), ("md", 64 << 10), ("jsonl", 0)],
    ids=["md-one-pass", "md-parallel", "jsonl"],
)
def test_a_raw_output_that_fills_up_in_its_last_write_fails(
    root: Path, tmp_path: Path, fmt: str, pieces: int
) -> None:
    """`export_range` into a raw file (`io.FileIO`, as stdout is under `python -u`) whose
    disk fills up inside the last write: the one pass's last chunk, the parallel
    rendering's last piece (`_append`) and JSONL's last slice of a block wrote part and
    returned, the rest dropped."""
    from recorder.export.parallel import SERIAL, Parallel
    from recorder.export.writers import export_range
    from recorder.store.ranges import journal_range
    from recorder.store.reader import open_store

    parallel = Parallel(workers=2, min_bytes=0, piece_bytes=pieces) if pieces else SERIAL
    with open_store(root) as store:
        store.cache_index = False  # JSONL: every block read and written, none sent whole
        rng = journal_range(store, None, None)
        whole = io.BytesIO()
        export_range(store, rng, fmt, whole, parallel=parallel)
        size = len(whole.getvalue())
        with small_disk(tmp_path / "disk", 1) as disk:
            leave_room(disk, (size - 1) // 4096 * 4096)  # room ends in the last 4 KiB
            with io.FileIO(disk / "x", "wb") as out, pytest.raises(OSError) as failed:
                export_range(store, rng, fmt, out, parallel=parallel)
            kept = (disk / "x").stat().st_size
    assert failed.value.errno == errno.ENOSPC
    assert size - 4096 <= kept < size
