"""Saving records from the UI: exactly the stored lines, in a private file (no Textual)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

from recorder.export.writers import export_range
from recorder.store.checkpoints import Checkpoint
from recorder.store.fsutil import ensure_private_dir, open_private
from recorder.store.ranges import journal_range
from recorder.store.reader import Record, Store


def new_file(folder: Path, stem: str, suffix: str) -> tuple[Path, int]:
    """A new private file `folder/<stem>-<time><suffix>` (0600 in a 0700 folder), open
    for writing: its path and descriptor."""
    ensure_private_dir(folder)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"{stem}-{stamp}{suffix}"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{stamp}-{n}{suffix}"
    return path, open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)


def save_records(folder: Path, records: Iterable[Record], stem: str) -> Path:
    """Write the records' journal lines, byte for byte, to `folder/<stem>-<time>.jsonl`
    (0600 in a 0700 folder); the path written."""
    path, fd = new_file(folder, stem, ".jsonl")
    with os.fdopen(fd, "wb") as out:
        for rec in records:
            line = rec.line
            out.write(line if line.endswith(b"\n") else line + b"\n")
    return path


def export_checkpoint(
    store: Store, folder: Path, cp: Checkpoint, previous: Checkpoint | None
) -> tuple[Path, int]:
    """The range from `previous` to `cp` as a Markdown transcript in `folder`; the path
    and the number of records in it."""
    rng = journal_range(store, previous, cp)
    path, fd = new_file(folder, f"checkpoint-{cp.seq}", ".md")
    with os.fdopen(fd, "wb") as out:
        export_range(store, rng, "md", out, title=f"Conversation up to {cp.label or cp.id}")
    return path, rng.stop - rng.start
