"""Saving records from the UI: exactly the stored lines, in a private file (no Textual)."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from recorder.export.redact import redact_record, redacted
from recorder.export.writers import MarkdownWriter, export_range
from recorder.store.checkpoints import Checkpoint
from recorder.store.fsutil import AtomicFile, ensure_private_dir, remove_stale_temp_files
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


@contextmanager
def new_file(folder: Path, stem: str, suffix: str) -> Iterator[AtomicFile]:
    """A new private file `folder/<stem>-<time><suffix>` (0600 in a 0700 folder), open
    for writing as `.file`: written aside and given its name (`.path`) only once whole
    when the block ends, so a failed write (a full disk) or a stopped one leaves no
    file, never an empty or cut one under a name like the others. The temp files of
    saves killed before their rename (by any process; never one still alive) are
    removed first."""
    ensure_private_dir(folder)
    remove_stale_temp_files(folder)
    target = AtomicFile(folder / f"{stem}{suffix}", exclusive=True)
    try:
        yield target
    except BaseException:
        target.abort()
        raise
    target.path = _free_name(folder, stem, suffix)
    target.commit()  # flushed, then linked to its name (never over a file made meanwhile)


def _free_name(folder: Path, stem: str, suffix: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"{stem}-{stamp}{suffix}"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{stamp}-{n}{suffix}"
    return path


def save_records(folder: Path, records: Iterable[Record], stem: str) -> Path:
    """Write the records' journal lines, byte for byte, to `folder/<stem>-<time>.jsonl`
    (0600 in a 0700 folder); the path written."""
    with new_file(folder, stem, ".jsonl") as target:
        for rec in records:
            line = rec.line
            target.file.write(line if line.endswith(b"\n") else line + b"\n")
    return target.path


def export_checkpoint(
    store: Store, folder: Path, cp: Checkpoint, previous: Checkpoint | None
) -> tuple[Path, int]:
    """The range from `previous` to `cp` as a Markdown transcript in `folder`; the path
    and the number of records in it."""
    rng = journal_range(store, previous, cp)
    with new_file(folder, f"checkpoint-{cp.seq}", ".md") as target:
        title = f"Conversation up to {cp.label or cp.id}"
        export_range(store, rng, "md", target.file, title=title)
    return target.path, rng.stop - rng.start


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
    clip = io.BytesIO()
    writer: MarkdownWriter | None = MarkdownWriter(clip)
    count = 0
    with new_file(folder, "copy", ".jsonl") as target:
        for rec in turns(store, first, last, progress):
            count += 1
            line = rec.line
            target.file.write(line if line.endswith(b"\n") else line + b"\n")
            if writer is not None:
                writer.record(redact_record(rec))
                if writer.bytes + writer.size > clip_limit:
                    writer = None  # too big for the clipboard: the file only
                    clip = io.BytesIO()  # and what it held let go
    markdown = None
    if writer is not None:
        writer.end()
        markdown = clip.getvalue().decode("utf-8", "replace")
    return Copied(target.path, count, markdown)


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
    count = 0
    with new_file(folder, "conversation", ".md") as target:
        writer = MarkdownWriter(target.file)
        seqs = [store.record(i).get("seq") for i in (first, last)]
        writer.begin("Conversation", [*about, ("records", f"#{seqs[0]} to #{seqs[1]}")])
        # Markdown is meant to be shared: redacted as exports are, a batch of
        # prefilter passes at a time (`redacted`), not a full scan per record
        for rec in redacted(turns(store, first, last, progress)):
            count += 1
            writer.record(rec)
        writer.end()
    return target.path, count
