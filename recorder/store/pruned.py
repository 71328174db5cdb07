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
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from recorder.errors import PersistError
from recorder.store.fsutil import (
    NotRegularFile,
    atomic_write,
    ensure_private_dir,
    flock_within,
    held_by_another,
    open_lock,
    read_regular,
)
from recorder.store.layout import Layout, segment_number
from recorder.store.unfinished import refuse_unfinished_restore

LOCK_WAIT = 30.0  # seconds a retention change waits for another one


class RetentionBusy(PersistError):
    """Another process is pruning, restoring or emptying the trash of this folder."""


class PrunedUnreadable(PersistError):
    """`retention/pruned.json` is there but cannot be read or is not a ledger (torn, of
    another shape, a named pipe or a folder): which segments were pruned is unknown,
    so nothing that rewrites it goes on (prune, `--forget-missing`, trash restore and
    empty): a rewrite would keep only its own entries and lose the others for good."""

    def __init__(self, layout: Layout, why: str) -> None:
        self.path = layout.pruned
        self.why = why
        super().__init__(
            f"{layout.pruned} (the ledger of pruned segments) {why}: which segments "
            "were pruned is unknown, so prune, prune --forget-missing, trash restore and "
            "trash empty refuse until it is mended (`persist doctor --log-dir "
            f"{shlex.quote(str(layout.root))}` says how)"
        )

    def reader_line(self) -> str:
        """What a reader (doctor, export, restore, checkpoint) says: it goes on, told
        by the trash entries' manifests which missing segments were pruned."""
        return (
            f"{self.path} (the ledger of pruned segments) {self.why}: a segment is told "
            "pruned only when a trash entry holds it, those of emptied entries read as "
            "missing; prune and the trash refuse until it is mended (see persist doctor)"
        )


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


def read_retention_file(path: Path) -> bytes | None:
    """The bytes of retention's file `path` (the ledger, the pins); None when there is
    none. A named pipe, a device or a folder in its place is never read nor waited on
    (NotRegularFile); any other OSError is raised as it is."""
    try:
        return read_regular(path)[0]
    except FileNotFoundError:
        return None


def _ledger_bytes(layout: Layout) -> bytes | None:
    try:
        return read_retention_file(layout.pruned)
    except NotRegularFile as exc:
        raise PrunedUnreadable(layout, f"is {exc.strerror}") from None
    except OSError as exc:
        raise PrunedUnreadable(layout, f"cannot be read ({exc.strerror or exc})") from None


def read_pruned(layout: Layout) -> dict[str, PrunedNote]:
    """Segment name -> its note; {} when nothing was ever pruned (no ledger). Raises
    PrunedUnreadable when the ledger is there but cannot be read or holds anything but
    notes: read as empty, a rewrite would drop every earlier note, and each pruned
    segment would read as lost. Readers that go on regardless use `pruned_by_number`."""
    data = _ledger_bytes(layout)
    if data is None:
        return {}
    try:
        doc = orjson.loads(data)
    except ValueError as exc:
        raise PrunedUnreadable(layout, f"is not JSON ({exc})") from None
    segments = doc.get("segments") if isinstance(doc, dict) else None
    if not isinstance(segments, dict):
        raise PrunedUnreadable(layout, 'is not a ledger of pruned segments (no "segments" object)')
    notes: dict[str, PrunedNote] = {}
    for name, note in segments.items():
        pruned = note.get("pruned") if isinstance(note, dict) else None
        trash = note.get("trash") if isinstance(note, dict) else None
        emptied = note.get("emptied") if isinstance(note, dict) else None
        if (
            not isinstance(note, dict)
            or not _number(pruned)
            or not isinstance(trash, str)
            or not (emptied is None or _number(emptied))
        ):
            raise PrunedUnreadable(layout, f"has a note of {name!r} of another shape")
        assert isinstance(pruned, int | float)
        when = float(emptied) if isinstance(emptied, int | float) else None
        notes[name] = PrunedNote(name, float(pruned), trash, when, note.get("by_hand") is True)
    return notes


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def ledger_problem(layout: Layout) -> PrunedUnreadable | None:
    """Why the ledger cannot be read, or None (also when there is none)."""
    try:
        read_pruned(layout)
    except PrunedUnreadable as exc:
        return exc
    return None


def _notes_from_trash(layout: Layout) -> dict[str, PrunedNote]:
    """What the trash entries' manifests say was pruned (each entry's plan): the
    readers' stand-in for a ledger that cannot be read. Segments of emptied entries and
    those removed by hand are not in it."""
    from recorder.store.trash import list_trash  # the trash module imports this one

    notes: dict[str, PrunedNote] = {}
    with contextlib.suppress(OSError):
        for entry in list_trash(layout):
            for info in entry.plan.get("segments") or []:
                name = info.get("name") if isinstance(info, dict) else None
                if isinstance(name, str):
                    notes[name] = PrunedNote(name, entry.created, entry.id)
    return notes


def pruned_by_number(layout: Layout) -> dict[int, PrunedNote]:
    """`read_pruned` keyed by segment number: how readers look a segment up, whatever
    its file is called now or was called then (a compressed segment may be renamed).
    A ledger that cannot be read is stood in for by the trash's manifests (a reader
    names it: `ledger_problem`); never read as "nothing was pruned"."""
    try:
        notes = read_pruned(layout)
    except PrunedUnreadable:
        notes = _notes_from_trash(layout)
    out: dict[int, PrunedNote] = {}
    for name, note in notes.items():
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
    the names written down. PrunedUnreadable, changing nothing, when the ledger cannot
    be read: what it says is pruned would be written down as removed by hand."""
    notes = read_pruned(layout)
    names = missing_segments(layout)
    if names:
        when = time.time() if now is None else now
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
    fd = open_lock(layout.retention_lock, layout.recovery)  # LockInTheWay: a folder there
    try:
        if not flock_within(fd, wait):
            raise RetentionBusy(
                f"another process is changing retention in {layout.root} or backing it "
                f"up (holds {Path(layout.retention_lock).name}); try again"
            )
        yield
    finally:
        os.close(fd)
