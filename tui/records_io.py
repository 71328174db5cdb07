"""Saving records from the UI: exactly the stored lines, in a private file (no Textual)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

from recorder.store.fsutil import ensure_private_dir, open_private
from recorder.store.reader import Record


def save_records(folder: Path, records: Iterable[Record], stem: str) -> Path:
    """Write the records' journal lines, byte for byte, to `folder/<stem>-<time>.jsonl`
    (0600 in a 0700 folder); the path written."""
    ensure_private_dir(folder)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"{stem}-{stamp}.jsonl"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{stamp}-{n}.jsonl"
    fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    with os.fdopen(fd, "wb") as out:
        for rec in records:
            line = rec.line
            out.write(line if line.endswith(b"\n") else line + b"\n")
    return path
