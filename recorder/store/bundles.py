"""The restore bundles in `restore/`, as folders: which segments' records each holds,
how old it is, which are stale, and removing them.

A bundle (`recorder.export.restore`) is derived data: `persist restore` writes it again
from the journal. Two things end one:

- the messages it holds are deleted: `trash empty` (or a segment removed by hand)
  leaves a bundle written before, whose range spans those segments, the last copy of
  them. `trash empty` removes such bundles with the segments (`drop_deleted_copies`);
  one left otherwise (a version before 2026-12-08, a folder put back by hand) is
  `deleted_copies`, removed by the next restore, named by `persist doctor` and removed
  by `--fix` and `persist restore --clean`. One holding segments removed by hand and
  written off (`prune --forget-missing`: lost as often as deleted) is left by restores
  whatever its age, named by doctor, and removed by `--fix` and `--clean` only. A prune
  keeps them: its segments are in the trash, and `trash restore` undoes it wholly.
- age: a bundle neither written nor handed back for `BUNDLES_KEPT_FOR` (its folder's
  modification time, which a restore that hands it back sets) is `stale`, unless it is
  the newest of its kind (scope and redaction: what a later restore of that kind goes
  on from, or hands back). Every restore removes the stale ones, so restores leave at
  most what a week of them wrote, plus one bundle of each kind.

A bundle an agent was handed (by `persist launch` or a start hook: its registration in
`agents/` names it, `store.registrations`) is `in_use` while that agent is registered
and alive: an agent reads its bundle lazily (`Bundle.history()`, the PERSIST_RESTORE_*
files) for as long as it runs, so neither age nor `persist restore --clean` removes it
then. A deletion asked for wins: `trash empty` and `persist doctor --fix` remove one
holding deleted messages all the same, and say which agent was handed it.

A bundle is removed by renaming it to `restore/.removing-<name>-<pid>-...` and then
deleting that (a reader never sees half of one; a removal killed midway leaves a work
folder that `recorder.export.leftovers` finds). Folders that are not a bundle's (no
readable manifest) are never touched. Here, below the export layer, so the retention
code reaches it. No zmq, no textual.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from recorder.store.fsutil import read_regular, writer_tag
from recorder.store.layout import Layout, segment_number
from recorder.store.pruned import pruned_by_number
from recorder.store.registrations import bundle_users
from recorder.store.renderings import in_journal

BUNDLES_KEPT_FOR = 7 * 86400.0  # seconds an unused bundle stays (the newest of a kind: always)
REMOVING = ".removing-"  # a bundle being removed (renamed out of the way first)
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class BundleFolder:
    """One bundle folder of `restore/`, described by its manifest."""

    path: Path
    checkpoint: str
    kind: str  # its scope and redaction, in words: "last 1000", "full, redacted"
    stop_seq: int  # the checkpoint's place in the journal (later: newer)
    generation: int  # 1 for `<name>`, N for `<name>.N`
    segments: tuple[int, int] | None  # first and last segment its records come from
    messages: int
    created: float  # when it was written (its manifest's `created`)
    used: float  # written or last handed back (the folder's modification time)

    @property
    def name(self) -> str:
        return self.path.name


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under `folder` (what removing it frees; 0 where unreadable)."""
    total = 0
    for top, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(top, name)).st_size
    return total


def _kind(m: dict[str, Any]) -> str:
    scope = m.get("scope")
    if not isinstance(scope, dict):
        scope = {}
    what = str(scope.get("kind"))
    words = f"last {scope.get('last')}" if what == "last" else what
    return f"{words}, redacted" if m.get("redacted") else words


def _generation(name: str) -> int:
    head, _, tail = name.rpartition(".")
    return int(tail) if head and tail.isascii() and tail.isdigit() and tail[0] != "0" else 1


def _segments(m: dict[str, Any]) -> tuple[int, int] | None:
    rng = m["range"]
    if rng["start_index"] >= rng["stop_index"]:
        return None  # it holds no record
    first = segment_number(str(rng["start"]["segment"]))
    last = segment_number(str(rng["stop"]["segment"]))
    if first is None or last is None:
        raise ValueError("no segment names")
    return first, last


def read_bundle(path: Path) -> BundleFolder | None:
    """The bundle in `path`, or None when its manifest cannot be read as a bundle's."""
    try:
        st = os.lstat(path)
        m = orjson.loads(read_regular(path / MANIFEST)[0])  # never waits on a FIFO
        if not isinstance(m, dict) or m.get("kind") != "restore-bundle":
            return None
        return BundleFolder(
            path=path,
            checkpoint=str(m["checkpoint"]["id"]),
            kind=_kind(m),
            stop_seq=int(m["range"]["stop"]["seq"]),
            generation=_generation(path.name),
            segments=_segments(m),
            messages=int(m.get("messages") or 0),
            created=float(m["created"]),
            used=st.st_mtime,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def list_bundles(layout: Layout) -> list[BundleFolder]:
    """Every bundle in `restore/` (work folders and folders that are no bundle's left
    out), in name order."""
    try:
        entries = sorted(os.scandir(layout.restore), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        bundle = read_bundle(Path(entry.path))
        if bundle is not None:
            out.append(bundle)
    return out


def newest_of_kind(bundles: list[BundleFolder]) -> set[Path]:
    """The newest bundle of each kind: of the latest checkpoint, then generation."""
    best: dict[str, BundleFolder] = {}
    for b in bundles:
        held = best.get(b.kind)
        if held is None or (b.stop_seq, b.generation, b.used) > (
            held.stop_seq,
            held.generation,
            held.used,
        ):
            best[b.kind] = b
    return {b.path for b in best.values()}


def stale(
    bundles: list[BundleFolder], older_than: float, now: float, keep: Iterable[Path] = ()
) -> list[BundleFolder]:
    """Bundles unused for more than `older_than` seconds that are not the newest of
    their kind (nor in `keep`)."""
    kept = newest_of_kind(bundles) | set(keep)
    return [b for b in bundles if b.path not in kept and now - b.used > older_than]


def deleted_copies(
    layout: Layout, bundles: list[BundleFolder] | None = None, *, by_hand: bool = True
) -> list[BundleFolder]:
    """Bundles written before segments their range spans were deleted on purpose (a
    `trash empty`, or, with `by_hand`, removed by hand and said so: the ledger,
    `retention/pruned.json`), and not back in segments/: the last copy of those
    messages. A segment lost without a word in the ledger is not deleted: a bundle
    holding it is kept (the only copy)."""
    bundles = list_bundles(layout) if bundles is None else bundles
    if not bundles:
        return []
    try:
        notes = pruned_by_number(layout)
        deleted = {
            n: note.pruned
            for n, note in notes.items()
            if note.emptied or (by_hand and note.by_hand)
        }
        for n in in_journal(layout) if deleted else ():
            deleted.pop(n, None)  # back: a trash restore, or the ledger is behind
    except OSError:
        return []
    out = []
    for b in bundles:
        if b.segments is not None:
            first, last = b.segments
            if any(first <= n <= last and b.created < when for n, when in deleted.items()):
                out.append(b)
    return out


def spanning(layout: Layout, numbers: Iterable[int]) -> list[BundleFolder]:
    """The bundles whose range spans one of segments `numbers`."""
    wanted = set(numbers)
    return [
        b
        for b in list_bundles(layout)
        if b.segments is not None and any(b.segments[0] <= n <= b.segments[1] for n in wanted)
    ]


def in_use(layout: Layout, bundles: Iterable[BundleFolder]) -> dict[Path, list[str]]:
    """Of `bundles`, those an agent registered and alive now was handed, each with who
    ("claude (pid 4242)")."""
    users = bundle_users(layout)
    return {b.path: users[b.name] for b in bundles if b.name in users}


def mark_used(path: Path) -> None:
    """A bundle handed back is new again (its folder's time; its files are untouched)."""
    with contextlib.suppress(OSError):
        os.utime(path)


def remove(layout: Layout, bundles: Iterable[BundleFolder]) -> list[BundleFolder]:
    """Remove each bundle (renamed out of the way, then deleted); returns those gone.
    One that cannot be renamed (gone meanwhile, no permission) is left out."""
    tag = writer_tag()
    maker = f"{os.getpid()}-{tag}-" if tag else f"{os.getpid()}-"
    gone = []
    for b in bundles:
        aside = layout.restore / f"{REMOVING}{b.name}-{maker}{time.monotonic_ns()}"
        try:
            os.rename(b.path, aside)
        except OSError:
            continue
        shutil.rmtree(aside, ignore_errors=True)
        gone.append(b)
    return gone


def drop_deleted_copies(layout: Layout) -> list[tuple[BundleFolder, list[str]]]:
    """Remove the bundles holding emptied messages (`deleted_copies`, those of segments
    removed by hand left: not what it deletes); returns them, each with the agents alive
    now that were handed it (`in_use`: removed all the same, the deletion was asked for;
    the caller names them). What `trash empty` does once its segments are gone. Best
    effort: one left is named by `persist doctor`."""
    doomed = deleted_copies(layout, by_hand=False)
    users = in_use(layout, doomed)
    return [(b, users.get(b.path, [])) for b in remove(layout, doomed)]


def age_words(seconds: float) -> str:
    """ "3 days", "5 hours", "less than an hour"."""
    if seconds >= 86400:
        days = int(seconds // 86400)
        return f"{days} day{'s' * (days != 1)}"
    if seconds >= 3600:
        hours = int(seconds // 3600)
        return f"{hours} hour{'s' * (hours != 1)}"
    return "less than an hour"


DELETED = "holds deleted messages"
BY_HAND = "holds the last copy of segments removed by hand"


def judge(
    layout: Layout,
    older_than: float,
    now: float,
    keep: Iterable[Path] = (),
    *,
    by_hand_go: bool = True,
) -> list[tuple[BundleFolder, str | None]]:
    """Every bundle with why it goes (`DELETED`, `BY_HAND`, "unused for 9 days"), or
    None when it stays (the newest of its kind, used within `older_than`, `keep`,
    `in_use` by an agent alive now). Without `by_hand_go` a bundle holding segments
    removed by hand (`prune --forget-missing`) stays whatever its age: what a restore
    leaves, since the journal lost them by accident as often as on purpose; `--clean`
    and doctor's `--fix` take it."""
    bundles = list_bundles(layout)
    used = in_use(layout, bundles)
    emptied = {b.path for b in deleted_copies(layout, bundles, by_hand=False)}
    by_hand = {b.path for b in deleted_copies(layout, bundles)} - emptied
    old = {b.path for b in stale(bundles, older_than, now, keep)}
    out: list[tuple[BundleFolder, str | None]] = []
    for b in bundles:
        if b.path in used:
            out.append((b, None))
        elif b.path in emptied:
            out.append((b, DELETED))
        elif b.path in by_hand:
            out.append((b, BY_HAND if by_hand_go else None))
        elif b.path in old:
            out.append((b, f"unused for {age_words(now - b.used)}"))
        else:
            out.append((b, None))
    return out


def remove_stale(
    layout: Layout, older_than: float = BUNDLES_KEPT_FOR, keep: Iterable[Path] = ()
) -> list[BundleFolder]:
    """Remove the bundles `judge` says go, those holding segments removed by hand left
    (`by_hand_go`); returns those removed. What every restore does once its bundle is
    in place (`keep`)."""
    judged = judge(layout, older_than, time.time(), keep, by_hand_go=False)
    doomed = [b for b, why in judged if why is not None]
    return remove(layout, doomed)
