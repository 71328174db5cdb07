"""The trash of pruned segments and checkpoints: listing, restoring, emptying.

A trash entry (`trash/<id>/`, made by `retention.execute`) holds the files one
prune took out, moved there by rename: restoring renames them back, so they are
the same bytes (and the same inodes) they were, and the checkpoints' digests
verify again. Emptying deletes an entry once it is older than the grace period.
The caller holds the retention lock and journals what was done.

Every step that a kill can cut short leaves a state the next run finishes
(`unfinished`): a prune interrupted leaves its entry "moving", a restore one with
some segments back home (`refuse_interrupted` stops every prune and empty until
`persist trash restore` puts back what it moved or finishes); an empty marks its
entries "emptying" before the ledger, the journal and the deletion (a re-run
finishes them); a folder being deleted is first renamed out of the listing
(`trash/.discard-<id>`), so a deletion killed midway leaves no half entry, only a
leftover the next empty deletes (`sweep`). A run killed after its record was
journaled, before it marked the change done, left that record: the next run looks
for it (`journaled`) and finishes the change without a second one.
"""

from __future__ import annotations

import contextlib
import hashlib
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from recorder.errors import PersistError
from recorder.store.fsutil import (
    NotRegularFile,
    atomic_write,
    ensure_private_dir,
    fsync_dir,
    read_regular,
)
from recorder.store.layout import (
    Layout,
    compressed_path,
    list_segments,
    segment_name,
    segment_number,
)
from recorder.store.pins import read_pins
from recorder.store.pruned import (
    PrunedNote,
    ledger_problem,
    read_pruned,
    retention_at_work,
    retention_lock,
    write_pruned,
)
from recorder.store.records import KIND_EVENT
from recorder.store.retention import (
    DONE,
    EMPTYING,
    EVENT_EMPTY,
    EVENT_PRUNE,
    EVENT_RESTORE,
    MOVING,
    TrashEntry,
    note_record,
    write_state,
)
from recorder.store.segfile import SegmentDamaged, SegmentFile, open_segment

_HOMES = {"segment": "segments", "checkpoint": "checkpoints", "cache": "metadata_index"}
_DISCARD = ".discard-"  # `trash/.discard-<id>`: an entry being deleted
_READ = 1 << 20  # bytes of a segment read at a time while looking for a record


def article(word: str) -> str:
    """ "a" or "an" before `word` (a prune, an empty)."""
    return "an" if word[:1] in "aeiou" else "a"


class TrashError(PersistError):
    """A trash entry that does not exist, cannot be read, or cannot be put back."""


def list_trash(layout: Layout, problems: list[str] | None = None) -> list[TrashEntry]:
    """Trash entries, oldest first; an unreadable manifest is named in `problems`."""
    try:
        folders = sorted(
            p for p in layout.trash.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
    except FileNotFoundError:
        return []
    out = []
    for folder in folders:
        try:
            out.append(read_entry(folder))
        except TrashError as exc:
            if problems is not None:
                problems.append(str(exc))
    return out


def read_entry(folder: Path) -> TrashEntry:
    try:
        # a named pipe there is never waited on (before 2026-12-07 it held `trash list`,
        # prune and doctor forever): NotRegularFile, said as the manifest's problem
        data = orjson.loads(read_regular(folder / "manifest.json")[0])
        return TrashEntry(
            id=str(data["id"]),
            created=float(data["created"]),
            plan=dict(data["plan"]),
            by=str(data.get("by") or ""),
            files=list(data.get("files") or []),
            restated=list(data.get("restated") or []),
            path=folder,
            state=str(data.get("state") or DONE),
            journal_from=_journal_notes(data.get("journal_from")),
            boot_id=str(data.get("boot_id") or ""),
            boot_s=float(data.get("boot_s") or 0.0),
        )
    except FileNotFoundError:
        raise TrashError(f"trash/{folder.name} has no manifest.json") from None
    except OSError as exc:  # a folder, a named pipe, no permission: the OS's words
        raise TrashError(
            f"trash/{folder.name}/manifest.json is unreadable ({exc.strerror or exc})"
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise TrashError(f"trash/{folder.name}/manifest.json is unreadable ({exc})") from None


def _file_bytes(path: Path) -> bytes | None:
    """The bytes of the regular file at `path`; None when nothing is there, or something
    that is no regular file (a named pipe is never waited on)."""
    try:
        return read_regular(path)[0]
    except (FileNotFoundError, NotRegularFile):
        return None


def _journal_notes(noted: object) -> dict[str, int]:
    """A manifest's `journal_from`, each a segment number: a hint for finding a killed
    run's record (`journaled`), so one of another type counts as no note rather than
    making the entry unreadable."""
    if not isinstance(noted, dict):
        return {}
    return {str(k): v for k, v in noted.items() if type(v) is int and v >= 0}


def find_entry(layout: Layout, ref: str) -> TrashEntry:
    """An entry by id or unique id prefix."""
    entries = list_trash(layout)
    exact = [e for e in entries if e.id == ref] or [e for e in entries if e.id.startswith(ref)]
    if len(exact) == 1:
        return exact[0]
    if not exact:
        raise TrashError(f"no trash entry {ref!r} in {layout.trash} (see `persist trash list`)")
    raise TrashError(
        f"{ref!r} matches {len(exact)} trash entries: " + ", ".join(e.id for e in exact)
    )


def files_here(entry: TrashEntry) -> list[dict[str, Any]]:
    """The manifest's files that are in the entry's folder now, with their size there
    (an interrupted prune moved some of them only)."""
    assert entry.path is not None
    out = []
    for f in entry.files:
        with contextlib.suppress(OSError, KeyError):
            size = (entry.path / _HOMES[str(f["kind"])] / str(f["name"])).stat().st_size
            out.append({**f, "size": size})
    return out


def pinned_entries(layout: Layout, entries: list[TrashEntry] | None = None) -> dict[str, list[str]]:
    """Trash entry id -> the pinned checkpoints it holds (their files in it): a pin a
    prune broke (before 2026-12-07 `persist pin` could write one while a prune took its
    checkpoint). Such an entry is never emptied; doctor names it. PinsUnreadable when
    the pins cannot be read (nothing is emptied then)."""
    pins = read_pins(layout)
    out: dict[str, list[str]] = {}
    if not pins:
        return out
    for entry in list_trash(layout) if entries is None else entries:
        if entry.path is None:
            continue
        held = sorted(
            str(f["name"]).removesuffix(".json")
            for f in files_here(entry)
            if f.get("kind") == "checkpoint" and str(f["name"]).removesuffix(".json") in pins
        )
        if held:
            out[entry.id] = held
    return out


@dataclass(frozen=True)
class Unfinished:
    """What a kill left a trash entry in the middle of, and the command that ends it."""

    what: str  # "prune", "restore" or "empty"
    held: str  # "5 of its 10 segments were moved, the rest are in segments/"
    command: str  # `persist trash restore ID --log-dir ...` / `persist trash empty ...`
    does: str  # what the command does: "puts them back", "finishes it"

    @property
    def blocks(self) -> bool:
        """Prune and empty refuse while it is there: its segments are in two places."""
        return self.what != "empty"

    def describe(self, entry_id: str) -> str:
        return (
            f"trash/{entry_id}: {article(self.what)} {self.what} was interrupted ({self.held}); "
            f"`{self.command}` {self.does}"
        )


def unfinished(layout: Layout, entry: TrashEntry) -> Unfinished | None:
    """The prune ("moving"), empty ("emptying") or restore (a "done" entry with some
    segment back home) a kill left `entry` in; None if it is whole. Asked under the
    retention lock, or after `retention_at_work` said no process is at it."""
    restore = f"persist trash restore {entry.id} --log-dir {shlex.quote(str(layout.root))}"
    if entry.state == EMPTYING:
        empty = f"persist trash empty --log-dir {shlex.quote(str(layout.root))}"
        return Unfinished(
            "empty", "its files are still there", empty, "finishes it, whatever its age"
        )
    segments = [f for f in entry.files if f["kind"] == "segment"]
    here = {f["name"] for f in files_here(entry) if f["kind"] == "segment"}
    if entry.state == MOVING and not journaled(layout, entry, EVENT_PRUNE):
        if len(here) == len(segments):
            held = f"all {len(segments)} of its segments were moved"
        else:
            held = (
                f"{len(here)} of its {len(segments)} segments were moved, the rest are in segments/"
            )
        return Unfinished("prune", held, restore, "puts them back")
    back = [
        f
        for f in segments
        if f["name"] not in here and _still_home(layout.segments / f["name"], int(f["size"]), True)
    ]
    if back:
        held = f"{len(back)} of its {len(segments)} segments are back in segments/"
        return Unfinished("restore", held, restore, "finishes it")
    return None


def journaled(layout: Layout, entry: TrashEntry, event: str) -> bool:
    """Whether the journal holds `entry`'s `event` record (its prune, restore or empty),
    looked for from the segment `note_record` noted before it was journaled: a run
    killed after the record, before it marked its change done, left no other sign of
    it. An entry that noted none (an older persist made it) counts as not journaled."""
    start = entry.journal_from.get(event)
    if start is None:
        return False
    for path in list_segments(layout):
        if (segment_number(path.name) or 0) < start:
            continue
        try:
            with open_segment(path) as seg:
                for line in _lines_with(seg, entry.id.encode()):
                    with contextlib.suppress(ValueError):  # a line being written, torn
                        if _names(orjson.loads(line), event, entry.id):
                            return True
        except (OSError, SegmentDamaged):
            continue  # gone or unreadable since it was listed: no record found in it
    return False


def _names(record: Any, event: str, entry_id: str) -> bool:
    """Whether `record` is the `event` record of trash entry `entry_id` (an empty's
    names a list of entries)."""
    if not isinstance(record, dict) or record.get("kind") != KIND_EVENT:
        return False
    named = record.get("trash")
    return record.get("event") == event and entry_id in (
        named if isinstance(named, list) else [named]
    )


def _lines_with(seg: SegmentFile, needle: bytes) -> Iterator[bytes]:
    """The lines of `seg` that hold `needle` (a byte search; a damaged frame reads as
    NUL bytes, without a match)."""
    pos, carry = 0, b""
    while pos < seg.size:
        data = seg.read(pos, min(_READ, seg.size - pos))
        if not data:
            break
        pos += len(data)
        data = carry + data
        cut = data.rfind(b"\n") + 1 if pos < seg.size else len(data)
        block, carry = data[:cut], data[cut:]
        at = block.find(needle)
        while at >= 0:
            end = block.find(b"\n", at)
            end = len(block) if end < 0 else end
            yield block[block.rfind(b"\n", 0, at) + 1 : end]
            at = block.find(needle, end)


def finish_journaled_prunes(layout: Layout) -> None:
    """Mark "done" each entry still "moving" whose prune record is in the journal: the
    prune was killed after its record, before that mark (`unfinished` already reads it
    as done). Call with the retention lock held: no run that could still journal the
    prune of an entry is left, so one whose record is not there is interrupted for good
    and its note goes (the journal is not searched for it again at every look)."""
    for entry in list_trash(layout):
        if entry.state != MOVING or EVENT_PRUNE not in entry.journal_from:
            continue
        if journaled(layout, entry, EVENT_PRUNE):
            write_state(entry, DONE)
        else:
            del entry.journal_from[EVENT_PRUNE]
            write_state(entry, MOVING)


def refuse_interrupted(layout: Layout) -> None:
    """TrashError naming an entry an interrupted prune or restore left (the caller
    holds the retention lock: none is at work) and the command that ends it: no prune
    or empty runs past one, so entries never overlap, none is emptied whose prune was
    never journaled, and no segment is in two places."""
    for entry in list_trash(layout):
        left = unfinished(layout, entry)
        if left is not None and left.blocks:
            raise TrashError(f"{left.describe(entry.id)}; prune and empty the trash after")


@dataclass
class Restored:
    entry: TrashEntry
    moved: list[str] = field(default_factory=list)  # file names put back
    kept_restated: list[str] = field(default_factory=list)  # changed since: left as they are
    ended: Unfinished | None = None  # the prune or restore a kill left it in, ended now
    already_journaled: bool = False  # its record was in the journal (killed after it)


def restore_plan(
    layout: Layout, entry: TrashEntry, caches_home: Path | None
) -> list[tuple[Path, Path]]:
    """The moves (from the trash, back home) that restore `entry`; TrashError naming
    the file when it cannot be restored: missing from the trash, of another size, or
    its place taken. Caches go to `caches_home` (None: they are skipped, derived, as is
    one whose place a rebuilt cache took). A file an interrupted prune (manifest
    `state` "moving") or restore left at home is left where it is, also once the
    segment was compressed there since. Reads only (`persist doctor` asks it of every
    entry)."""
    assert entry.path is not None
    if entry.state == EMPTYING:
        raise TrashError(
            f"trash/{entry.id} is being emptied (an empty was interrupted): "
            "`persist trash empty` finishes it; nothing restored"
        )
    folder = entry.path
    plan: list[tuple[Path, Path]] = []
    for f in entry.files:
        src = folder / _HOMES[str(f["kind"])] / str(f["name"])
        home = {"segment": layout.segments, "checkpoint": layout.checkpoints}
        if f["kind"] == "cache" and caches_home is None:
            continue  # derived, and no folder to put it in: rebuilt when needed
        dst = home.get(str(f["kind"]), caches_home or layout.index) / str(f["name"])
        try:
            size = src.stat().st_size
        except FileNotFoundError:
            if f["kind"] == "cache":
                continue  # derived: rebuilt when needed
            if _still_home(dst, int(f["size"]), f["kind"] == "segment"):
                continue  # an interrupted prune never moved it, or a restore moved it back
            raise TrashError(
                f"trash/{entry.id}: {f['name']} is missing; nothing restored"
            ) from None
        if size != int(f["size"]):
            raise TrashError(
                f"trash/{entry.id}: {f['name']} is {size} bytes, was {f['size']}; nothing restored"
            )
        if f["kind"] == "cache" and dst.exists():
            continue  # rebuilt since: derived, the trash's copy goes with the entry
        taken = dst if dst.exists() else _compressed_home(dst, f["kind"] == "segment")
        if taken is not None:
            raise TrashError(f"{taken} exists already; nothing restored")
        plan.append((src, dst))
    return plan


def restore_entry(layout: Layout, entry: TrashEntry) -> Restored:
    """Put every file of `entry` back where it was (`restore_plan`); refuses, changing
    nothing, when it cannot. The entry stays until `forget_entry`, after the caller
    journaled the restore (unless `already_journaled`): a restore killed before is
    finished by the next one."""
    assert entry.path is not None
    folder = entry.path
    read_pruned(layout)  # PrunedUnreadable, nothing moved: `forget_entry` rewrites it
    plan = restore_plan(layout, entry, _caches_home(layout))
    out = Restored(entry, ended=unfinished(layout, entry))
    if EVENT_RESTORE not in entry.journal_from:
        note_record(layout, entry, EVENT_RESTORE)
        write_state(entry, entry.state)
    elif out.ended is not None:  # a restore ran before: killed before or after its record
        out.already_journaled = journaled(layout, entry, EVENT_RESTORE)
    done: list[tuple[Path, Path]] = []
    for src, dst in plan:
        try:
            src.rename(dst)
        except OSError as exc:  # put back what moved: all or nothing
            for moved_from, moved_to in reversed(done):
                with contextlib.suppress(OSError):
                    moved_to.rename(moved_from)
            raise TrashError(
                f"trash/{entry.id}: {dst} cannot be put back ({exc.strerror or exc}); "
                "nothing restored"
            ) from None
        done.append((src, dst))
    out.moved = [dst.name for _src, dst in done]
    for item in entry.restated:
        original = folder / "restated" / f"{item['id']}.json"
        current = layout.checkpoints / original.name
        data, kept = _file_bytes(current), _file_bytes(original)
        if data is not None and kept is not None and data == kept:
            continue  # put back already (by a restore killed before it was journaled)
        same = data is not None and hashlib.sha256(data).hexdigest() == item.get("sha256_now")
        if same and kept is not None:
            atomic_write(current, kept)
            continue
        out.kept_restated.append(str(item["id"]))
    for sub in (layout.segments, layout.checkpoints):
        fsync_dir(sub)
    return out


def forget_entry(layout: Layout, entry: TrashEntry) -> None:
    """After a restore was journaled: its segments leave the ledger, its folder goes."""
    assert entry.path is not None
    notes = read_pruned(layout)
    write_pruned(layout, {k: v for k, v in notes.items() if v.trash != entry.id})
    discard(layout, entry.path)


def _caches_home(layout: Layout) -> Path | None:
    """The caches' folder, made if it is missing (a restored backup has none); None when
    it cannot be (a file in its place): caches are derived and simply rebuilt."""
    try:
        ensure_private_dir(layout.index)
    except OSError:
        return None
    return layout.index


def _still_home(path: Path, size: int, segment: bool) -> bool:
    """Whether the file is at home as it was moved (a segment: or compressed since,
    which `persist compact` and the recorder do to any closed segment they find)."""
    try:
        return path.stat().st_size == size
    except OSError:
        return _compressed_home(path, segment) is not None


def _compressed_home(path: Path, segment: bool) -> Path | None:
    """A segment's compressed form at home, if it is there."""
    if not segment:
        return None
    packed = compressed_path(path)
    return packed if packed.exists() else None


def due_for_empty(layout: Layout, older_than: float, now: float) -> list[TrashEntry]:
    """What `begin_empty` would mark, marking nothing."""
    due = [
        e
        for e in list_trash(layout)
        if e.state == EMPTYING
        or (e.state == DONE and (older_than <= 0 or e.age(now) >= older_than))
    ]
    held = pinned_entries(layout, due)  # a pinned checkpoint in it: kept (doctor says)
    return [e for e in due if e.state == EMPTYING or e.id not in held]


def begin_empty(layout: Layout, older_than: float, now: float) -> list[TrashEntry]:
    """The entries to delete: those more than `older_than` seconds old (`TrashEntry.age`:
    one dated later than `now` by the boot clock; `older_than` 0: all), and those
    an interrupted empty began (whatever their age). Each is marked "emptying" and the
    ledger says its segments were emptied, before the caller journals the empty and
    `discard`s them: a kill at any step leaves what the next empty finishes.
    PrunedUnreadable, nothing marked, when the ledger cannot be read."""
    notes = read_pruned(layout)
    gone = due_for_empty(layout, older_than, now)
    for entry in gone:
        if entry.state != EMPTYING:
            note_record(layout, entry, EVENT_EMPTY)
            write_state(entry, EMPTYING)
    if gone:
        ids = {e.id for e in gone}
        for name, note in list(notes.items()):
            if note.trash in ids and note.emptied is None:
                notes[name] = replace(note, emptied=now)
        write_pruned(layout, notes)  # a reader never finds a segment gone unexplained
    return gone


def discard(layout: Layout, folder: Path) -> None:
    """Delete an entry's folder, renamed out of the listing first: a deletion killed
    midway leaves `trash/.discard-<id>` (`sweep`), never an entry with files missing."""
    aside = layout.trash / (_DISCARD + folder.name)
    with contextlib.suppress(OSError):
        folder.rename(aside)
        folder = aside
    shutil.rmtree(folder)


def discarded(layout: Layout) -> list[Path]:
    """What deletions killed midway left (`trash/.discard-<id>`)."""
    try:
        return sorted(p for p in layout.trash.iterdir() if p.name.startswith(_DISCARD))
    except OSError:
        return []


def sweep(layout: Layout) -> list[str]:
    """Delete what deletions killed midway left; returns the entries' ids."""
    done = []
    for path in discarded(layout):
        shutil.rmtree(path)
        done.append(path.name.removeprefix(_DISCARD))
    return done


# -- the ledger, rebuilt ----------------------------------------------------------------
_LEDGER_EVENTS = (EVENT_PRUNE, EVENT_RESTORE, EVENT_EMPTY, "forget-missing")


def rebuild_ledger(layout: Layout) -> dict[str, PrunedNote]:
    """The ledger (`retention/pruned.json`) as the journal and the trash tell it: each
    `prune`, `trash-restore`, `trash-empty` and `forget-missing` record, in seq order,
    read from the segments at home and those the trash holds, then the entries a prune
    interrupted before its record left (their manifests). Times are the records' (a
    prune's: its entry's creation, when the entry is still there). TrashError when a
    segment gone from segments/ is in neither (its record went with an emptied entry):
    a ledger without it would read it as lost. Reads only."""
    entries = list_trash(layout)
    files = list(list_segments(layout))
    with contextlib.suppress(OSError):  # every entry's, its manifest readable or not
        for folder in sorted(layout.trash.iterdir()):
            if not folder.name.startswith("."):
                with contextlib.suppress(OSError):
                    files += sorted((folder / "segments").iterdir())
    events: dict[int, dict[str, Any]] = {}
    for path in files:
        try:
            with open_segment(path) as seg:
                for line in _lines_with(seg, b'"kind":"event"'):
                    with contextlib.suppress(ValueError):
                        record = orjson.loads(line)
                        if (
                            isinstance(record, dict)
                            and record.get("kind") == KIND_EVENT
                            and record.get("event") in _LEDGER_EVENTS
                            and type(record.get("seq")) is int
                        ):
                            events[record["seq"]] = record
        except (OSError, SegmentDamaged) as exc:
            raise TrashError(f"{path} cannot be read ({exc})") from None
    created = {e.id: e.created for e in entries}
    notes: dict[str, PrunedNote] = {}
    for seq in sorted(events):
        record = events[seq]
        ts = float(record.get("ts") or 0.0)
        names = [n for n in record.get("segments") or [] if isinstance(n, str)]
        trash = record.get("trash")
        if record["event"] == EVENT_PRUNE and isinstance(trash, str):
            for name in names:
                notes[name] = PrunedNote(name, created.get(trash, ts), trash)
        elif record["event"] == EVENT_RESTORE and isinstance(trash, str):
            notes = {k: v for k, v in notes.items() if v.trash != trash}
        elif record["event"] == EVENT_EMPTY:
            ids = set(trash if isinstance(trash, list) else [trash])
            for name, note in list(notes.items()):
                if note.trash in ids and note.emptied is None:
                    notes[name] = replace(note, emptied=ts)
        elif record["event"] == "forget-missing":
            for name in names:
                notes[name] = PrunedNote(name, ts, "", None, by_hand=True)
    for entry in entries:  # a prune interrupted before its record noted its segments first
        if entry.state == MOVING and not journaled(layout, entry, EVENT_PRUNE):
            for info in entry.plan.get("segments") or []:
                planned = info.get("name") if isinstance(info, dict) else None
                if isinstance(planned, str):
                    notes[planned] = PrunedNote(planned, entry.created, entry.id)
    present = {segment_number(p.name) or 0 for p in list_segments(layout)}
    known = {segment_number(name) for name in notes}
    lost = [n for n in range(1, max(present, default=0)) if n not in present | known]
    if lost:
        more = f" and {len(lost) - 3} more" if len(lost) > 3 else ""
        raise TrashError(
            f"{', '.join(segment_name(n) for n in lost[:3])}{more} "
            f"{'is' if len(lost) == 1 else 'are'} gone from segments/ and "
            "neither the journal nor the trash says why (the record went with an emptied "
            "entry, or removed by hand): a ledger rebuilt would read "
            f"{'it' if len(lost) == 1 else 'them'} as lost"
        )
    return notes


def mend_ledger(layout: Layout, aside: Path) -> str:
    """Under the retention lock: the unreadable ledger moved into `aside` (kept, as
    it was), and `rebuild_ledger`'s written in its place. Says what was done."""
    with retention_lock(layout):
        problem = ledger_problem(layout)
        if problem is None:
            return "readable already"
        notes = rebuild_ledger(layout)
        ensure_private_dir(aside)
        kept = aside / layout.pruned.name
        layout.pruned.rename(kept)
        write_pruned(layout, notes)
    return (
        f"rebuilt from the journal and the trash ({len(notes)} segment(s) noted); the "
        f"unreadable one is kept as {kept}"
    )


def reader_notes(layout: Layout) -> list[str]:
    """What a reader of the journal (export, restore) says about retention, one line
    each: a ledger that cannot be read, and each trash entry a prune or a restore a
    kill left half done (its segments are part in the trash, part at home, and stay so
    until the command named puts them back or finishes it: the ledger names them all
    as pruned from before the first moved). Reads only; no entry while a prune,
    restore or empty is at work (it is not interrupted)."""
    out = []
    problem = ledger_problem(layout)
    if problem is not None:
        out.append(problem.reader_line())
    if retention_at_work(layout):
        return out
    with contextlib.suppress(OSError):
        for entry in list_trash(layout):
            left = unfinished(layout, entry)
            if left is not None and left.blocks:
                out.append(
                    f"{left.describe(entry.id)}: until then what it moved is not in the "
                    "journal read here"
                )
    return out
