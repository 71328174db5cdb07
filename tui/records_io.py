"""Saving records from the UI: exactly the stored lines, in a private file (no Textual)."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from recorder.export.redact import redact_record, redacted
from recorder.export.writers import MarkdownWriter, export_range
from recorder.store.checkpoints import Checkpoint
from recorder.store.fsutil import ensure_private_dir, open_private
from recorder.store.marks import BOOKKEEPING, line_kind
from recorder.store.ranges import journal_range
from recorder.store.reader import Record, Store

Progress = Callable[[int], bool]
"""Told the records read so far (every `PROGRESS_EVERY`); False stops the work."""
PROGRESS_EVERY = 2048


class Records(Protocol):
    """What a copy or export reads: the journal's `Store`, or an agent session's
    messages as records (`SessionRecords`)."""

    def record(self, index: int) -> Record: ...

    def records(self, start: int = 0, stop: int | None = None) -> Iterator[Record]: ...


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


def turns(store: Records, first: int, last: int, progress: Progress) -> Iterator[Record]:
    """The records from `first` to `last` (inclusive) a transcript shows, bookkeeping
    (heartbeats, the recorder's events) left out, read in sequential blocks. Raises
    `Stopped` when `progress` says so."""
    for rec in store.records(first, last + 1):
        done = rec.index - first + 1
        if done % PROGRESS_EVERY == 0 and not progress(done):
            raise Stopped
        if line_kind(rec.line) not in BOOKKEEPING:
            yield rec


class Stopped(Exception):
    """The work was cancelled (the screen closed, another one asked for)."""


@dataclass(frozen=True)
class Copied:
    path: Path  # the stored lines (always written)
    turns: int
    markdown: str | None  # for the clipboard; None when longer than its limit


def copy_turns(
    store: Records, folder: Path, first: int, last: int, clip_limit: int, progress: Progress
) -> Copied:
    """In one pass: the turns' stored lines, byte for byte, to a new `copy-*.jsonl` in
    `folder`, and their Markdown (redacted: it is meant to be shared) while it stays
    under `clip_limit` bytes; nothing longer is kept in memory. A stopped copy leaves
    no file."""
    path, fd = new_file(folder, "copy", ".jsonl")
    clip = io.BytesIO()
    writer: MarkdownWriter | None = MarkdownWriter(clip)
    count = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for rec in turns(store, first, last, progress):
                count += 1
                line = rec.line
                out.write(line if line.endswith(b"\n") else line + b"\n")
                if writer is not None:
                    writer.record(redact_record(rec))
                    if writer.bytes + writer.size > clip_limit:
                        writer = None  # too big for the clipboard: the file only
                        clip = io.BytesIO()  # and what it held let go
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    markdown = None
    if writer is not None:
        writer.end()
        markdown = clip.getvalue().decode("utf-8", "replace")
    return Copied(path, count, markdown)


def export_turns(
    store: Records,
    folder: Path,
    first: int,
    last: int,
    about: Sequence[tuple[str, str]],
    progress: Progress,
) -> tuple[Path, int]:
    """The turns from `first` to `last` as a Markdown transcript (redacted), written as
    it is read to a new `conversation-*.md` in `folder`, under a head of the `about`
    rows (the log folder, or the session) and the records' range; its path and the
    turns in it. A stopped export leaves no file."""
    path, fd = new_file(folder, "conversation", ".md")
    count = 0
    try:
        with os.fdopen(fd, "wb") as out:
            writer = MarkdownWriter(out)
            seqs = [store.record(i).get("seq") for i in (first, last)]
            writer.begin("Conversation", [*about, ("records", f"#{seqs[0]} to #{seqs[1]}")])
            # Markdown is meant to be shared: redacted as exports are, a batch of
            # prefilter passes at a time (`redacted`), not a full scan per record
            for rec in redacted(turns(store, first, last, progress)):
                count += 1
                writer.record(rec)
            writer.end()
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, count
