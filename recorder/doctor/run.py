"""`persist doctor`: every check in one report, and `--fix` for what may be repaired.

`--fix` only touches derived files, file modes and the ledger of pruned segments: a
wrong cache or search index is moved into `recovery/doctor/<time>/` (kept for
inspection, safe to delete) and built again from the journal; an unreadable
`status.json` is moved aside when no recorder holds the folder (a symlink is removed
instead, what it leads to left alone, and never written through); an unreadable
`retention/pruned.json` is moved there too and rebuilt from the journal and the trash,
only when they explain every segment gone; modes become 0600 / 0700; work folders
killed restores left (`restore/.building-*`, partial files) are removed. Journal
segments, checkpoints and session copies are never deleted or rewritten.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from recorder.doctor.derived import (
    bundle_findings,
    render_cache_findings,
    restore_leftover_findings,
    search_findings,
    session_findings,
)
from recorder.doctor.journal import (
    JournalScan,
    cache_findings,
    checkpoint_findings,
    journal_findings,
    mb,
    recovery_state_finding,
    scan_journal,
    trash_findings,
)
from recorder.doctor.model import Area, Finding, FixResult, RepairKind, Report, Severity
from recorder.doctor.service import (
    hook_findings,
    hooks_waiting_findings,
    lock_findings,
    recorder_holds,
    service_findings,
)
from recorder.doctor.system import chown_fix, disk_findings, permission_findings
from recorder.errors import PersistError
from recorder.store.checkpoints import DigestCache
from recorder.store.fsutil import DIR_MODE, FILE_MODE, ensure_private_dir
from recorder.store.layout import Layout, default_log_dir, is_compressed, list_segments
from recorder.store.reader import Store
from recorder.store.status import STOPPED, Health, HolderUnknown, assess, read_status
from recorder.store.unfinished import MARKER, finish_command, read_mark

INDEX_LOCK_WAIT = 30.0  # seconds to wait for another writer of the search index
FIX_LOCK_WAIT = 600.0  # seconds a `--fix` waits for another one (a search rebuild: minutes)


class DoctorError(PersistError):
    """The folder cannot be examined at all (the message says why)."""


class FixBusy(DoctorError):
    """Another `persist doctor --fix` kept repairing the folder past the wait."""


class NoRoomToFix(DoctorError):
    """`doctor.lock` cannot be made: the disk is full. Nothing is repaired (two `--fix`
    could undo each other's repairs), but the folder is still diagnosed."""


def no_room(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def not_repaired(report: Report, why: str) -> list[FixResult]:
    """One result per finding `--fix` would have repaired: not repaired, and `why`."""
    return [FixResult(f, False, why) for f in report.findings if f.repair is not None]


@contextlib.contextmanager
def fix_lock(
    root: Path,
    wait: float = FIX_LOCK_WAIT,
    waiting: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold `doctor.lock` of `root`: one `--fix` at a time, from its diagnosis to its
    re-check, so that two never undo each other's repairs (a second one moving aside the
    search index the first just built) and each report says what is there. One that
    finds it held says so through `waiting` (one line naming the holder's PID), waits up
    to `wait` seconds, then diagnoses afresh; past the wait, `FixBusy`."""
    import fcntl

    from recorder.store.fsutil import flock_within, open_lock

    layout = Layout(Path(root))
    try:
        fd = open_lock(layout.doctor_lock, layout.recovery)  # LockInTheWay: a folder there
    except OSError as exc:
        if not no_room(exc):
            raise
        raise NoRoomToFix(
            f"not repaired: the disk is full ({exc.strerror}), so {layout.doctor_lock.name}, "
            "which keeps two --fix apart, cannot be made; free some space (see disk) and "
            "run it again"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if waiting is not None:
                waiting(
                    f"another persist doctor --fix{holder} is repairing {layout.root}: "
                    "waiting for it to finish, then checking again"
                )
            if not flock_within(fd, wait, poll=0.1):
                raise FixBusy(
                    f"another persist doctor --fix{_holder(fd)} is still repairing "
                    f"{layout.root} after {wait:.0f}s; run it again when it has finished"
                ) from None
        with contextlib.suppress(OSError):  # a full disk: the holder goes unnamed
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def fix_at_work(root: Path) -> str | None:
    """The words for a `--fix` repairing `root` now (None: none is), asked without
    creating the lock file (a plain `persist doctor` only reads)."""
    from recorder.store.fsutil import held_by_another

    lock = Layout(Path(root)).doctor_lock
    if not held_by_another(lock):
        return None
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return "another persist doctor --fix"
    try:
        return f"another persist doctor --fix{_holder(fd)}"
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    """` (PID n)` of the lock's holder, as it wrote it ("" when it has not yet)."""
    with contextlib.suppress(OSError, ValueError):
        return f" (PID {int(os.pread(fd, 32, 0).split()[0])})"
    return ""


def diagnose(root: Path, *, now: float | None = None, unit_dir: Path | None = None) -> Report:
    """Check everything; read only. A check that meets a path it may not read (a part
    of the folder a `sudo persist record` left root's) is one finding saying what was
    not checked, and the others run: `permissions.owner` names the fix (before
    2026-12-08 the first such path ended doctor, "cannot examine", with no finding)."""
    started = time.monotonic()
    layout = Layout(Path(root))
    monotonic = time.monotonic() if now is None else None  # (a test's `now` alone)
    now = time.time() if now is None else now
    health: Health | None = None
    try:
        health = assess(layout, now, monotonic)
    except HolderUnknown as exc:  # status.json and recorder.lock may not be read
        unknown = exc
    start = (health or Health(STOPPED, "")).start_command(layout.root)
    if not layout.root.is_dir():
        raise DoctorError(
            f"{layout.root} is not a log folder (it does not exist: nothing was recorded "
            f"there yet; start recording with: {start})"
        )
    mark = read_mark(layout.root)
    if mark is not None:  # part of a backup: every other check would report what is not there yet
        finding = Finding(
            Area.JOURNAL,
            "journal.unfinished-restore",
            Severity.PROBLEM,
            f"a persist restore-backup{f' of {mark.src}' if mark.src else ''} did not finish "
            f"here ({MARKER}): the folder holds part of that backup, so nothing else is "
            "checked, and nothing records or prunes here until it is finished",
            finish_command(layout.root, mark),
        )
        return Report(layout.root, [finding], time.monotonic() - started)
    flag = _log_flag(layout)
    doctor_fix = f"persist doctor --fix{flag}"
    # a recorder that may hold the folder (unknown: taken as one) may be writing its tail
    writing = health is None or health.state != STOPPED
    findings: list[Finding] = []
    checks: list[Check] = []
    try:
        journal = scan_journal(layout)
    except OSError as exc:
        what = "the journal, its checkpoints and what is derived from them"
        findings.append(not_run(layout, Area.JOURNAL, "journal.not-run", what, exc))
    else:
        checks += _journal_checks(layout, journal, writing, start, flag, doctor_fix)
    checks += [
        (Area.SESSIONS, "sessions.not-run", "the session copies", lambda: session_findings(layout)),
        (
            Area.PERMISSIONS,
            "permissions.not-run",
            "file modes",
            lambda: permission_findings(layout),
        ),
        (Area.DISK, "disk.not-run", "disk headroom", lambda: disk_findings(layout, now)),
        (Area.SERVICE, "service.not-run", "the lock files", lambda: lock_findings(layout)),
        (Area.SERVICE, "service.not-run", "the hooks", lambda: hook_findings(layout)),
        (
            Area.SERVICE,
            "service.not-run",
            "what sessions owe the bus",
            lambda: hooks_waiting_findings(layout, now),
        ),
    ]
    if health is not None:
        known = health
        checks.append(
            (
                Area.SERVICE,
                "service.not-run",
                "the recorder",
                lambda: service_findings(layout, known, now, doctor_fix, unit_dir),
            )
        )
    for area, check, what, run in checks:
        try:
            findings += run()
        except OSError as exc:
            findings.append(not_run(layout, area, check, what, exc))
    if health is None:
        findings.append(
            Finding(
                Area.SERVICE,
                "service.not-run",
                Severity.PROBLEM,
                f"not checked: the recorder ({unknown})",
                chown_fix(layout),
            )
        )
    return Report(layout.root, findings, time.monotonic() - started)


# one check of `diagnose`: its area, the name of its finding when it cannot run, what it
# looks at (for that finding's words), and the check itself
Check = tuple[Area, str, str, Callable[[], list[Finding]]]


def _journal_checks(
    layout: Layout, journal: JournalScan, writing: bool, start: str, flag: str, doctor_fix: str
) -> list[Check]:
    """The checks of the journal, its checkpoints and trash, and of what is derived
    from it (not looked at when the journal cannot be read at all)."""
    checks: list[Check] = [
        (
            Area.JOURNAL,
            "journal.not-run",
            "the journal",
            lambda: journal_findings(layout, journal, writing, start),
        ),
        (
            Area.CHECKPOINTS,
            "checkpoints.not-run",
            "the checkpoints",
            lambda: checkpoint_findings(layout, journal),
        ),
        (Area.JOURNAL, "journal.not-run", "the trash", lambda: trash_findings(layout)),
    ]
    if not journal.segments_folder:
        return checks
    return [
        *checks,
        (
            Area.CACHES,
            "caches.not-run",
            "the caches",
            lambda: cache_findings(layout, journal, doctor_fix),
        ),
        (
            Area.CACHES,
            "caches.not-run",
            "recovery/state.json",
            lambda: [recovery_state_finding(layout, doctor_fix)],
        ),
        (
            Area.CACHES,
            "caches.not-run",
            "the render cache",
            lambda: render_cache_findings(layout, doctor_fix),
        ),
        (
            Area.CACHES,
            "caches.not-run",
            "restore leftovers",
            lambda: restore_leftover_findings(layout, doctor_fix),
        ),
        (
            Area.CACHES,
            "caches.not-run",
            "restore bundles",
            lambda: bundle_findings(layout, doctor_fix, flag),
        ),
        (Area.SEARCH, "search.not-run", "the search index", lambda: search_findings(layout, flag)),
    ]


def not_run(layout: Layout, area: Area, check: str, what: str, exc: OSError) -> Finding:
    """A check that met a path it cannot read: what it did not check, and the path.
    Its fix gives the folder back when that path is another user's (as
    `permissions.owner`'s), else lists the path."""
    path = Path(exc.filename) if exc.filename else layout.root
    reason = exc.strerror or str(exc)
    fix = chown_fix(layout) if _another_users(path) else f"ls -la {shlex.quote(str(path))}"
    return Finding(area, check, Severity.PROBLEM, f"not checked: {what} ({path}: {reason})", fix)


def _another_users(path: Path) -> bool:
    """Whether `path`, or the nearest folder above it that can be looked at, is another
    user's (what keeps it from being read)."""
    for place in (path, *path.parents):
        try:
            return os.stat(place).st_uid != os.getuid()
        except OSError:
            continue
    return False


def _log_flag(layout: Layout) -> str:
    """` --log-dir DIR` unless DIR is the default folder (for the fix commands)."""
    if layout.root.resolve() == default_log_dir().resolve():
        return ""
    return f" --log-dir {shlex.quote(str(layout.root))}"


# -- --fix --------------------------------------------------------------------------------
def fix(report: Report, *, stamp: float | None = None) -> list[FixResult]:
    """Repair what the report marks as automatic; one result per finding repaired."""
    layout = Layout(report.log_dir)
    aside = layout.recovery / "doctor" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(stamp))
    results: list[FixResult] = []
    pending = [f for f in report.findings if f.repair is not None]
    steps: dict[RepairKind, Callable[[Layout, Path, list[Finding]], str]] = {
        RepairKind.CHMOD: _chmod,
        RepairKind.QUARANTINE: _quarantine_status,
        RepairKind.REBUILD_LEDGER: _rebuild_ledger,
        RepairKind.REBUILD_CACHES: _rebuild_caches,
        RepairKind.REBUILD_INDEX: _rebuild_index,
        RepairKind.CATCH_UP_INDEX: _catch_up_index,
        RepairKind.DROP_RENDERINGS: _drop_renderings,
        RepairKind.REMOVE_LEFTOVERS: _remove_leftovers,
        RepairKind.REMOVE_RENDERINGS: _remove_renderings,
        RepairKind.REMOVE_BUNDLES: _remove_bundles,
    }
    for kind, step in steps.items():
        group = [f for f in pending if f.repair is not None and f.repair.kind is kind]
        if not group:
            continue
        outside = _leads_out(layout, aside, kind, group)
        if outside is not None:  # (before 2026-12-07 --fix wrote through it)
            done = (
                f"not done: {outside} leads out of the log folder, and --fix writes nothing "
                "through such a link (make it a folder of the log folder again, then run "
                "persist doctor --fix again)"
            )
            results += [FixResult(f, False, done) for f in group]
            continue
        try:
            done, ok = step(layout, aside, group), True
        except OSError as exc:
            done, ok = f"failed: {exc.strerror or exc}", False
            if no_room(exc):  # (before 2026-12-07 the whole --fix stopped, unreported)
                done = f"not done: the disk is full ({exc.strerror}); free some space (see disk)"
        except PersistError as exc:
            done, ok = f"failed: {getattr(exc, 'strerror', None) or exc}", False
        except Exception as exc:  # a derived file we could not rebuild: say so, go on
            done, ok = f"failed: {type(exc).__name__}: {exc}", False
        results += [FixResult(f, ok, done) for f in group]
    return results


def _paths(group: list[Finding]) -> list[Path]:
    return [p for f in group if f.repair is not None for p in f.repair.paths]


# what each repair writes besides the paths its findings name (`_leads_out`)
_MOVES_ASIDE = {
    RepairKind.QUARANTINE,
    RepairKind.REBUILD_LEDGER,
    RepairKind.REBUILD_CACHES,
    RepairKind.REBUILD_INDEX,
    RepairKind.DROP_RENDERINGS,
}


def _leads_out(layout: Layout, aside: Path, kind: RepairKind, group: list[Finding]) -> str | None:
    """The symlink leading out of the log folder (`rel -> target`) that the repair of
    `group` would write through: in `aside`'s path (`recovery/`, `recovery/doctor/`), or
    on the way to a file it moves, rebuilds or changes; None when it stays inside."""
    from recorder.store.inside import link_out

    paths = _paths(group)
    if kind in _MOVES_ASIDE:
        paths.append(aside / "x")
    if kind in (RepairKind.REBUILD_INDEX, RepairKind.CATCH_UP_INDEX):
        paths.append(layout.search_index)
    if kind is RepairKind.REBUILD_CACHES:
        paths.append(layout.index / "x")
    if kind is RepairKind.REBUILD_LEDGER:
        paths.append(layout.pruned)
    for path in paths:
        found = link_out(layout.root, path)
        if found is not None:
            return found
    return None


def _move_aside(layout: Layout, aside: Path, path: Path) -> Path | None:
    """`path` moved into `aside` (under its path in the log folder), or None if it is
    not there. A symlink is removed instead (returned as it was): kept there, one
    leading out of the folder would be warned about for ever, and what it leads to is
    not ours (before 2026-12-07 it was moved as the link)."""
    if path.is_symlink():
        os.unlink(path)
        return path
    if not path.exists():
        return None
    target = aside / path.relative_to(layout.root)
    ensure_private_dir(target.parent)
    os.replace(path, target)
    return target


def _chmod(layout: Layout, aside: Path, group: list[Finding]) -> str:
    changed = 0
    for path in _paths(group):
        with contextlib.suppress(FileNotFoundError):
            st = path.lstat()
            if stat.S_ISDIR(st.st_mode):
                os.chmod(path, DIR_MODE)
            elif stat.S_ISREG(st.st_mode):
                os.chmod(path, FILE_MODE)
            else:
                continue
            changed += 1
    return f"modes set to 0600 / 0700 on {changed} path(s)"


def _quarantine_status(layout: Layout, aside: Path, group: list[Finding]) -> str:
    """Files a running recorder rewrites itself (`status.json`, `recovery/state.json`)."""
    if recorder_holds(layout):
        raise DoctorError("a recorder holds the folder: it rewrites these files itself")
    done: list[str] = []
    for path in _paths(group):
        link = os.readlink(path) if path.is_symlink() else None
        moved = _move_aside(layout, aside, path)
        if link is not None:
            done.append(
                f"removed {path.relative_to(layout.root)}, a symlink to {link} (what it "
                "leads to is left as it is)"
            )
        elif moved is not None:
            done.append(f"moved aside to {moved}")
    if layout.status in _paths(group) and read_status(layout) is None:
        # the reserve written while the disk was full names them, when it holds one
        done.append(
            "nothing readable here names the brokers its recorder followed: check the "
            "start command named below before running it"
        )
    return "; ".join(done) if done else "already gone"


def _rebuild_ledger(layout: Layout, aside: Path, group: list[Finding]) -> str:
    """`retention/pruned.json`, rebuilt (under the retention lock; the unreadable one
    kept in `aside`)."""
    from recorder.store.trash import mend_ledger

    return mend_ledger(layout, aside / "retention")


def _drop_renderings(layout: Layout, aside: Path, group: list[Finding]) -> str:
    """Wrong render cache entries, moved aside (safe while a recorder runs: a reader
    finding none renders the piece, and the recorder's indexer keeps it again)."""
    moved = [p for p in _paths(group) if _move_aside(layout, aside, p) is not None]
    return f"{len(moved)} render cache entries moved aside to {aside}" if moved else "already gone"


def _remove_renderings(layout: Layout, aside: Path, group: list[Finding]) -> str:
    """Renderings of segments no longer in segments/, deleted (looked for again: a
    segment a trash restore put back meanwhile keeps its own); not moved aside, which
    would keep the text of messages a prune or `trash empty` took."""
    from recorder.store.renderings import drop_orphans

    gone = drop_orphans(layout)
    return f"removed the renderings of {len(gone)} segment(s)" if gone else "already gone"


def _remove_bundles(layout: Layout, aside: Path, group: list[Finding]) -> str:
    """Bundles holding deleted messages, removed (judged again: one a trash restore
    made whole meanwhile stays); not moved aside, which would keep those messages."""
    from recorder.store import bundles

    named = set(_paths(group))
    doomed = [b for b in bundles.deleted_copies(layout) if b.path in named]
    users = bundles.in_use(layout, doomed)  # removed all the same: the deletion was asked for
    gone = bundles.remove(layout, doomed)
    if len(gone) < len(doomed):
        raise OSError(f"{len(doomed) - len(gone)} of them could not be removed")
    handed = "".join(
        f", though {', '.join(users[b.path])} was handed {b.name} and still runs"
        for b in gone
        if b.path in users
    )
    return f"removed {len(gone)} restore bundle{'s' * (len(gone) != 1)}{handed}"


def _remove_leftovers(layout: Layout, aside: Path, group: list[Finding]) -> str:
    """The work folders killed restores left, removed (judged again: a folder whose
    maker is alive now is kept); nothing in them is a bundle or journal data."""
    from recorder.export.leftovers import remove, stale_builds
    from recorder.store.bundles import folder_bytes

    named = set(_paths(group))
    stale = [p for p in stale_builds(layout) if p in named]
    size = sum(folder_bytes(p) for p in stale)
    gone = remove(stale)
    if len(gone) < len(stale):
        raise OSError(f"{len(stale) - len(gone)} of them could not be removed")
    return f"removed {len(gone)} work folder{'s' * (len(gone) != 1)} ({mb(size)})"


def _rebuild_caches(layout: Layout, aside: Path, group: list[Finding]) -> str:
    moved = [p for p in _paths(group) if _move_aside(layout, aside, p) is not None]
    segments = list_segments(layout)
    digests = DigestCache(layout)
    rebuilt = 0
    for path in segments[:-1]:  # closed plain segments: their digest caches
        if is_compressed(path):
            continue  # its digest is in its trailer
        if not (layout.index / f"{path.name}.sha256").exists():
            digests.segment(path, path.stat().st_size, closed=True)
            rebuilt += 1
    with Store(layout.root) as store:  # line-index caches of closed segments
        store.refresh()
    return (
        f"moved {len(moved)} cache file(s) to {aside}; rebuilt {rebuilt} digest cache(s) "
        "and the line-index caches"
    )


def _rebuild_index(layout: Layout, aside: Path, group: list[Finding]) -> str:
    from recorder.search.in_the_way import move_aside
    from recorder.search.index import no_room
    from recorder.search.indexer import Indexer, IndexLock, index_health

    if no_room(layout.search):  # the index moved aside, and no room to build it again
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    # a file where search/ goes, a folder where the index or its lock goes: the lock
    # could not be taken, and the index not rebuilt (the fix "succeeded", the index
    # stayed unusable)
    in_the_way = [str(target) for _thing, target in move_aside(layout, aside)]
    lock = IndexLock(layout)
    if not lock.acquire(INDEX_LOCK_WAIT):
        raise DoctorError("another process keeps writing the search index; try again later")
    try:
        moved = [
            m
            for suffix in ("", "-wal", "-shm")
            if (m := _move_aside(layout, aside, Path(f"{layout.search_index}{suffix}")))
        ]
    finally:
        lock.release()
    indexer = Indexer(layout.root)
    try:
        result = indexer.catch_up(rebuild=True, wait=INDEX_LOCK_WAIT)
    finally:
        indexer.close()
    where = f"old index moved to {aside}; " if moved else ""
    if in_the_way:
        where += f"what stood in its way moved to {', '.join(in_the_way)}; "
    # checked as doctor checks it: a rebuild that would be made again is no repair
    health = index_health(layout.root)
    if health.problem is not None:
        raise DoctorError(
            f"{where}rebuilt from the journal ({result.added:,} documents), but the next "
            f"catch-up would rebuild it again: {health.problem}"
        )
    unread = ", ".join(str(n) for n in health.left_out)
    left = f"; segment {unread} left out: it cannot be read (see journal)" if unread else ""
    return f"{where}rebuilt from the journal ({result.added:,} documents{left})"


def _catch_up_index(layout: Layout, aside: Path, group: list[Finding]) -> str:
    from recorder.search.indexer import Indexer

    indexer = Indexer(layout.root)
    try:
        result = indexer.catch_up(wait=INDEX_LOCK_WAIT)
    finally:
        indexer.close()
    return f"{result.added:,} documents indexed"
