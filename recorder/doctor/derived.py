"""Doctor checks of the search index, the render cache and the protected agent-session
copies."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from recorder.doctor.journal import mb
from recorder.doctor.model import Area, Finding, Repair, RepairKind, Severity
from recorder.doctor.system import read_only
from recorder.export import render_cache
from recorder.search.indexer import index_health
from recorder.sources.copies import copies_dir, verify
from recorder.store import renderings
from recorder.store.layout import Layout, list_segments, segment_number
from recorder.store.shell import shell_quote

BEHIND_WARNING = 16 << 20  # journal bytes not indexed before "behind" is a warning


def search_findings(layout: Layout, log_flag: str) -> list[Finding]:
    if read_only(layout):  # SQLite cannot open an index there: nothing wrong with it
        return [
            Finding(
                Area.SEARCH,
                "search.read-only",
                Severity.WARNING,
                "search index not checked: the log folder is read-only (see disk), and "
                "SQLite opens no index there",
            )
        ]
    health = index_health(layout.root, pages=True)
    reindex = f"persist reindex{log_flag}"
    if not health.present:
        if health.behind == 0:
            return [Finding(Area.SEARCH, "search.index", Severity.OK, "no journal to index yet")]
        return [
            Finding(
                Area.SEARCH,
                "search.missing",
                Severity.WARNING,
                f"no search index yet ({mb(health.behind)} of journal to index; the next "
                "search builds it)",
                reindex,
                Repair(RepairKind.REBUILD_INDEX),
            )
        ]
    if health.busy:  # never moved aside under the process that holds it
        return [
            Finding(
                Area.SEARCH,
                "search.busy",
                Severity.WARNING,
                f"search index not checked: another process holds it locked ({health.problem}; "
                "a rebuild or a long write): run doctor again once it is done",
            )
        ]
    if health.full:  # nothing known to be wrong with it: `disk.free` names the cause
        return [
            Finding(
                Area.SEARCH,
                "search.disk-full",
                Severity.WARNING,
                f"search index not checked: {health.problem}, and SQLite cannot read an "
                "index without room for its shared-memory file (see disk; nothing is known "
                "to be wrong with it: run doctor again once there is room)",
            )
        ]
    if health.newer:
        return [
            Finding(
                Area.SEARCH,
                "search.outdated",
                Severity.WARNING,
                f"search index unused: {health.problem}; this version leaves it as it is "
                "(a search here stops with that line): `persist reindex` rebuilds it for "
                "this version",
                reindex,
                Repair(RepairKind.REBUILD_INDEX, (layout.search_index,)),
            )
        ]
    if health.stale:
        why = (
            "see journal: the rebuild leaves it out, and rebuilds no more until it can be read"
            if health.problem is not None and health.problem.endswith(" cannot be read")
            else "the journal changed since it was indexed, as a trash restore does"
        )
        return [
            Finding(
                Area.SEARCH,
                "search.stale",
                Severity.WARNING,
                f"search index will be rebuilt: {health.problem} ({why}; the next search "
                "or `persist reindex` rebuilds it)",
                reindex,
                Repair(RepairKind.REBUILD_INDEX, (layout.search_index,)),
            )
        ]
    if health.outdated:
        return [
            Finding(
                Area.SEARCH,
                "search.outdated",
                Severity.WARNING,
                f"search index will be rebuilt: {health.problem} (the next search or "
                "`persist reindex` does it; restart a recorder started before the upgrade, "
                "or its indexer and this version rebuild it in turn)",
                reindex,
                Repair(RepairKind.REBUILD_INDEX, (layout.search_index,)),
            )
        ]
    if health.problem is not None:
        return [
            Finding(
                Area.SEARCH,
                "search.damaged",
                Severity.PROBLEM,
                f"search index would be rebuilt: {health.problem} (derived: --fix moves it "
                "aside and builds it again)",
                reindex,
                Repair(RepairKind.REBUILD_INDEX, (layout.search_index,)),
            )
        ]
    text = f"search index: {health.docs:,} documents, {mb(health.size)}"
    left = ""
    if health.left_out:  # (before 2026-12-07 each catch-up rebuilt the whole index)
        names = ", ".join(str(n) for n in health.left_out)
        left = (
            f"; segment{'s' * (len(health.left_out) > 1)} {names} left out: unreadable "
            "(see journal), indexed once it can be read"
        )
    if health.behind > BEHIND_WARNING:
        return [
            Finding(
                Area.SEARCH,
                "search.behind",
                Severity.WARNING,
                f"{text}, behind the journal by {mb(health.behind)} (a search catches up "
                f"first){left}",
                f"persist reindex --catch-up{log_flag}",
                Repair(RepairKind.CATCH_UP_INDEX),
            )
        ]
    behind = f"behind by {mb(health.behind)}" if health.behind else "level with the journal"
    return [Finding(Area.SEARCH, "search.index", Severity.OK, f"{text}, {behind}{left}")]


def restore_leftover_findings(layout: Layout, fix_command: str) -> list[Finding]:
    """The work folders killed restores left in `restore/` (`restore/.building-*`, of
    processes that are gone): partial files that only take room."""
    from recorder.export.leftovers import stale_builds
    from recorder.store.bundles import folder_bytes

    stale = stale_builds(layout)
    if not stale:
        return []
    size = sum(folder_bytes(p) for p in stale)
    names = ", ".join(p.name for p in stale[:3]) + (
        f" (+{len(stale) - 3} more)" if stale[3:] else ""
    )
    return [
        Finding(
            Area.CACHES,
            "caches.restore-leftover",
            Severity.WARNING,
            f"killed restores left {len(stale)} work folder{'s' * (len(stale) > 1)} in "
            f"restore/ ({names}, {mb(size)}): partial bundles that only take room (the next "
            "persist restore removes them too)",
            fix_command,
            Repair(RepairKind.REMOVE_LEFTOVERS, tuple(stale)),
        )
    ]


def bundle_findings(layout: Layout, fix_command: str, log_flag: str) -> list[Finding]:
    """The restore bundles in `restore/`: how many, their size, how many a restore or
    `persist restore --clean` would remove; those holding messages deleted since they
    were written (the last copy of them: a warning, `--fix` removes them)."""
    from recorder.store import bundles

    try:
        judged = bundles.judge(layout, bundles.BUNDLES_KEPT_FOR, time.time())
    except OSError as exc:
        text = f"restore/ cannot be read ({exc.strerror or exc})"
        return [Finding(Area.CACHES, "caches.bundles", Severity.WARNING, text)]
    if not judged:
        return [Finding(Area.CACHES, "caches.bundles", Severity.OK, "no restore bundles")]
    size = sum(bundles.folder_bytes(b.path) for b, _ in judged)
    old = [b for b, why in judged if why is not None and why.startswith("unused")]
    text = f"{len(judged)} restore bundle{'s' * (len(judged) > 1)}, {mb(size)}"
    if old:
        text += (
            f"; {len(old)} unused for over a week, not the newest of their kind (the next "
            f"restore removes them; persist restore --clean{log_flag} now)"
        )
    out = [Finding(Area.CACHES, "caches.bundles", Severity.OK, text)]
    # (those agents still running were handed too: judge keeps them, --fix does not)
    deleted = bundles.deleted_copies(layout, [b for b, _ in judged])
    if deleted:
        names = ", ".join(b.name for b in deleted[:3]) + (
            f" (+{len(deleted) - 3} more)" if deleted[3:] else ""
        )
        users = bundles.in_use(layout, deleted)
        handed = "".join(
            f"; {b.name} was handed to {', '.join(users[b.path])}, still running"
            for b in deleted
            if b.path in users
        )
        out.append(
            Finding(
                Area.CACHES,
                "caches.bundle-deleted",
                Severity.WARNING,
                f"{len(deleted)} restore bundle{'s' * (len(deleted) > 1)} ({names}) hold "
                "messages deleted since they were written (the trash emptied, or segments "
                f"removed by hand): their last copy{handed} (--fix removes them)",
                fix_command,
                Repair(RepairKind.REMOVE_BUNDLES, tuple(b.path for b in deleted)),
            )
        )
    return out


def render_cache_findings(layout: Layout, fix_command: str) -> list[Finding]:
    """How much of the closed journal is kept rendered, its size, and every entry whose
    header is wrong (each entry's header is read; renderings are checked at use)."""
    folder = render_cache.folder_of(layout.root)
    if not folder.is_dir():
        text = "no render cache yet (the recorder's indexer renders closed segments when idle)"
        return [Finding(Area.CACHES, "caches.render", Severity.OK, text)]
    numbers = [segment_number(p.name) for p in list_segments(layout)]
    closed = set(numbers[:-1])
    entries = size = 0
    covered: set[int] = set()
    damaged: list[tuple[Path, str]] = []  # (entry, what is wrong: its message names it)
    try:
        orphaned = renderings.orphans(layout)  # of segments pruned, emptied or removed
        for seg in sorted(folder.glob("seg-*")):
            if seg in orphaned:
                continue
            number = segment_number(seg.name + ".jsonl")
            for entry in sorted(seg.glob("*.zst")):
                entries += 1
                size += entry.stat().st_size
                problem = render_cache.entry_problem(entry)
                if problem is not None:
                    damaged.append((entry, problem))
                elif number is not None and number in closed:
                    covered.add(number)
    except OSError as exc:
        return [
            Finding(
                Area.CACHES,
                "caches.render",
                Severity.WARNING,
                f"render_cache/ cannot be read ({exc.strerror}); exports render instead",
                f"ls -la {shell_quote(str(folder))}",
            )
        ]
    text = (
        f"render cache: {entries} kept renderings, {len(covered)} of {len(closed)} closed "
        f"segments, {mb(size)} (derived: exports and full restores copy them)"
    )
    out = [_orphaned_finding(orphaned, fix_command)] if orphaned else []
    if not damaged:
        return [Finding(Area.CACHES, "caches.render", Severity.OK, text), *out]
    more = f" (+{len(damaged) - 1} more)" if len(damaged) > 1 else ""
    return [
        *out,
        Finding(
            Area.CACHES,
            "caches.render-damaged",
            Severity.WARNING,
            f"{text}; {len(damaged)} damaged: {damaged[0][1]}{more} (derived: --fix moves "
            "them aside and the indexer renders them again; an export meanwhile renders them)",
            fix_command,
            Repair(RepairKind.DROP_RENDERINGS, tuple(path for path, _ in damaged)),
        ),
    ]


def _orphaned_finding(orphaned: list[Path], fix_command: str) -> Finding:
    """Renderings of segments no longer in segments/: unused, and the text of messages
    a prune took to the trash, a `trash empty` deleted or a hand removed."""
    size = 0
    for seg in orphaned:
        with contextlib.suppress(OSError):
            size += sum(e.stat().st_size for e in seg.iterdir() if e.is_file())
    names = ", ".join(p.name for p in orphaned[:3]) + (
        f" (+{len(orphaned) - 3} more)" if len(orphaned) > 3 else ""
    )
    return Finding(
        Area.CACHES,
        "caches.render-orphaned",
        Severity.WARNING,
        f"render cache keeps renderings of {len(orphaned)} segment"
        f"{'s' * (len(orphaned) > 1)} no longer in segments/ ({names}, {mb(size)}): the "
        "text of messages pruned or deleted, never used again (--fix removes them)",
        fix_command,
        Repair(RepairKind.REMOVE_RENDERINGS, tuple(orphaned)),
    )


def session_findings(layout: Layout) -> list[Finding]:
    """Every protected copy re-read and checked member by member (`copies.verify`)."""
    base = copies_dir(layout)
    folders: list[Path] = []
    try:
        for source in sorted(os.scandir(base), key=lambda e: e.name):
            if source.is_dir(follow_symlinks=False):
                folders += sorted(
                    Path(e.path) for e in os.scandir(source.path) if e.is_dir(follow_symlinks=False)
                )
    except FileNotFoundError:
        pass
    except OSError as exc:
        return [
            Finding(
                Area.SESSIONS,
                "sessions.copies",
                Severity.PROBLEM,
                f"sessions/copies/ cannot be read ({exc.strerror})",
                f"ls -la {shell_quote(str(base))}",
            )
        ]
    out: list[Finding] = []
    for folder in folders:
        try:
            problems = verify(folder)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            problems = [f"its manifest is malformed ({type(exc).__name__}: {exc})"]
        except OSError as exc:
            problems = [f"cannot be read ({exc.strerror})"]
        if problems:
            key = f"{folder.parent.name}:{folder.name}"
            out.append(
                Finding(
                    Area.SESSIONS,
                    "sessions.copy",
                    Severity.PROBLEM,
                    f"protected copy {key} is damaged: {problems[0]}"
                    + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else "")
                    + "; journal data and the other copies are not affected",
                )
            )
    if not out:
        text = (
            f"{len(folders)} protected session copies, every member verified"
            if folders
            else "no protected session copies"
        )
        out.append(Finding(Area.SESSIONS, "sessions.copy", Severity.OK, text))
    return out
