"""What retention took out of the journal, and the lock every retention change holds.

`retention/pruned.json` names each segment pruned: when, into which trash entry,
and when that entry was emptied; also each segment someone removed by hand and then
said so (`persist prune --forget-missing`). Readers use it to tell a segment that is
gone on purpose ("pruned on 2026-12-02, in the trash") from one that is damaged or
lost. The journal says the same in its `prune` / `trash-restore` / `trash-empty` /
`forget-missing` event records; this file is the quick way to look it up.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from recorder.errors import PersistError
from recorder.store.fsutil import (
    atomic_write,
    ensure_private_dir,
    flock_within,
    held_by_another,
    open_private,
)
from recorder.store.layout import Layout, segment_number
from recorder.store.unfinished import refuse_unfinished_restore

LOCK_WAIT = 30.0  # seconds a retention change waits for another one


class RetentionBusy(PersistError):
    """Another process is pruning, restoring or emptying the trash of this folder."""


@dataclass(frozen=True)
class PrunedNote:
    """One pruned segment, as the ledger remembers it."""

    segment: str
    pruned: float  # when (seconds since the epoch)
    trash: str  # the trash entry that holds (or held) it; "" when removed by hand
    emptied: float | None = None  # when that entry was emptied; None: still in the trash
    by_hand: bool = False  # removed by someone, not by retention; `pruned`: when said so

    def describe(self) -> str:
        """`pruned on 2026-12-02 (in trash <id>)`, or `(trash emptied on ...)`, or
        `removed by hand (said on 2026-12-02 ...)`."""
        if self.by_hand:
            return (
                f"removed by hand (said on {_day(self.pruned)} with persist prune --forget-missing)"
            )
        where = (
            f"trash emptied on {_day(self.emptied)}"
            if self.emptied is not None
            else f"in trash {self.trash}"
        )
        return f"pruned on {_day(self.pruned)} ({where})"

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "pruned": self.pruned,
            "trash": self.trash,
            "emptied": self.emptied,
        }
        if self.by_hand:
            doc["by_hand"] = True
        return doc


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def read_pruned(layout: Layout) -> dict[str, PrunedNote]:
    """Segment name -> its note; {} when nothing was ever pruned. A ledger that cannot
    be read counts as empty: a pruned segment then shows as missing, never the reverse."""
    try:
        data = orjson.loads(layout.pruned.read_bytes())
    except (OSError, ValueError):
        return {}
    notes: dict[str, PrunedNote] = {}
    segments = data.get("segments") if isinstance(data, dict) else None
    if not isinstance(segments, dict):
        return {}
    for name, note in segments.items():
        if not isinstance(note, dict):
            continue
        pruned, trash, emptied = note.get("pruned"), note.get("trash"), note.get("emptied")
        if isinstance(pruned, (int, float)) and isinstance(trash, str):
            emptied = float(emptied) if isinstance(emptied, (int, float)) else None
            by_hand = note.get("by_hand") is True
            notes[name] = PrunedNote(name, float(pruned), trash, emptied, by_hand)
    return notes


def pruned_by_number(layout: Layout) -> dict[int, PrunedNote]:
    """`read_pruned` keyed by segment number: how readers look a segment up, whatever
    its file is called now or was called then (a compressed segment may be renamed)."""
    out: dict[int, PrunedNote] = {}
    for name, note in read_pruned(layout).items():
        number = segment_number(name)
        if number is not None:
            out[number] = note
    return out


def unexplained_holes(layout: Layout, present: set[int], below: int) -> list[int]:
    """Segment numbers from 1 to `below - 1` (the journal's first segment is number 1)
    that are not in `present` and that the ledger does not explain: gone with nobody
    saying so (moved or deleted by hand, lost)."""
    holes = [n for n in range(1, below) if n not in present]
    if not holes:
        return []
    known = pruned_by_number(layout)
    return [n for n in holes if n not in known]


def missing_segments(layout: Layout) -> list[str]:
    """The unexplained holes before the journal's last segment, by name. Each is looked
    for once more, in both of its forms: one compressed while the folder was listed
    is not missing."""
    from recorder.store.layout import find_segment, list_segments, segment_name

    numbers = {segment_number(p.name) or 0 for p in list_segments(layout)}
    holes = unexplained_holes(layout, numbers, max(numbers, default=0))
    return [segment_name(n) for n in holes if find_segment(layout, segment_name(n)) is None]


def mark_removed_by_hand(layout: Layout, now: float | None = None) -> list[str]:
    """Write down every missing segment (`missing_segments`) as removed by hand
    (`persist prune --forget-missing`; its caller holds the retention lock). Returns
    the names written down."""
    names = missing_segments(layout)
    if names:
        when = time.time() if now is None else now
        notes = read_pruned(layout)
        for name in names:
            notes[name] = PrunedNote(name, when, "", None, by_hand=True)
        write_pruned(layout, notes)
    return names


def write_pruned(layout: Layout, notes: dict[str, PrunedNote]) -> None:
    ensure_private_dir(layout.retention)
    body = {"v": 1, "segments": {name: notes[name].to_json() for name in sorted(notes)}}
    atomic_write(layout.pruned, orjson.dumps(body, option=orjson.OPT_INDENT_2))


def retention_at_work(layout: Layout) -> bool:
    """Whether another process holds the retention lock now (a prune may be moving
    files into the trash); asked without creating the lock file (doctor only reads)."""
    return held_by_another(layout.retention_lock)


@contextlib.contextmanager
def retention_lock(layout: Layout, wait: float = LOCK_WAIT) -> Iterator[None]:
    """Hold `retention/retention.lock`: one pin, prune, restore or empty at a time.
    Raises `RetentionBusy` if another holder keeps it past `wait` seconds, and
    `UnfinishedRestore` in a folder a restore-backup has not finished."""
    refuse_unfinished_restore(layout.root)
    ensure_private_dir(layout.retention)
    fd = open_private(layout.retention_lock, os.O_RDWR | os.O_CREAT)
    try:
        if not flock_within(fd, wait):
            raise RetentionBusy(
                f"another process is changing retention in {layout.root} or backing it "
                f"up (holds {Path(layout.retention_lock).name}); try again"
            )
        yield
    finally:
        os.close(fd)
