"""The trash of pruned segments and checkpoints: listing, restoring, emptying.

A trash entry (`trash/<id>/`, made by `retention.execute`) holds the files one
prune took out, moved there by rename: restoring renames them back, so they are
the same bytes (and the same inodes) they were, and the checkpoints' digests
verify again. Emptying deletes an entry once it is older than the grace period.
The caller holds the retention lock and journals what was done.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import orjson

from recorder.errors import PersistError
from recorder.store.fsutil import atomic_write, ensure_private_dir, fsync_dir
from recorder.store.layout import Layout, compressed_path
from recorder.store.pruned import read_pruned, write_pruned
from recorder.store.retention import TrashEntry

_HOMES = {"segment": "segments", "checkpoint": "checkpoints", "cache": "metadata_index"}


class TrashError(PersistError):
    """A trash entry that does not exist, cannot be read, or cannot be put back."""


def list_trash(layout: Layout, problems: list[str] | None = None) -> list[TrashEntry]:
    """Trash entries, oldest first; an unreadable manifest is named in `problems`."""
    try:
        folders = sorted(p for p in layout.trash.iterdir() if p.is_dir())
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
        data = orjson.loads((folder / "manifest.json").read_bytes())
        return TrashEntry(
            id=str(data["id"]),
            created=float(data["created"]),
            plan=dict(data["plan"]),
            by=str(data.get("by") or ""),
            files=list(data.get("files") or []),
            restated=list(data.get("restated") or []),
            path=folder,
        )
    except FileNotFoundError:
        raise TrashError(f"trash/{folder.name} has no manifest.json") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TrashError(f"trash/{folder.name}/manifest.json is unreadable ({exc})") from None


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


@dataclass
class Restored:
    entry: TrashEntry
    moved: list[str] = field(default_factory=list)  # file names put back
    kept_restated: list[str] = field(default_factory=list)  # changed since: left as they are


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
    nothing, when it cannot."""
    assert entry.path is not None
    folder = entry.path
    plan = restore_plan(layout, entry, _caches_home(layout))
    out = Restored(entry)
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
        try:
            now = hashlib.sha256(current.read_bytes()).hexdigest()
        except FileNotFoundError:
            now = None
        if now == item.get("sha256_now") and original.exists():
            atomic_write(current, original.read_bytes())
        else:
            out.kept_restated.append(str(item["id"]))
    for sub in (layout.segments, layout.checkpoints):
        fsync_dir(sub)
    notes = read_pruned(layout)
    write_pruned(layout, {k: v for k, v in notes.items() if v.trash != entry.id})
    shutil.rmtree(folder)
    return out


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


def empty_trash(layout: Layout, older_than: float, now: float | None = None) -> list[TrashEntry]:
    """Delete the entries made more than `older_than` seconds ago; returns them."""
    now = time.time() if now is None else now
    gone = [e for e in list_trash(layout) if e.created <= now - older_than]
    if not gone:
        return []
    notes = read_pruned(layout)
    ids = {e.id for e in gone}
    for name, note in list(notes.items()):
        if note.trash in ids and note.emptied is None:
            notes[name] = replace(note, emptied=now)
    write_pruned(layout, notes)  # first: a reader never finds a segment gone unexplained
    for entry in gone:
        assert entry.path is not None
        shutil.rmtree(entry.path)
    return gone
