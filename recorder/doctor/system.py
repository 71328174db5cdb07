"""Doctor checks around the journal: file modes and owners, and disk headroom (when the
disk fills at the journal's recent rate). Read only."""

from __future__ import annotations

import math
import os
import re
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path

from recorder.bus.keys import NOT_PRIVATE, SECRET_SUFFIX, open_to_others
from recorder.doctor.journal import mb
from recorder.doctor.model import Area, Finding, Repair, RepairKind, Severity
from recorder.store.fsutil import DIR_MODE, FILE_MODE, user_name
from recorder.store.layout import Layout, list_segments
from recorder.store.status import format_age

DAY = 86400.0
WINDOW = DAY  # the journal's growth over this long gives the write rate
PROBLEM_FREE = 256 << 20  # less free space than this is a problem ...
WARNING_FREE = 1 << 30  # ... and less than this a warning
PROBLEM_DAYS = 1.0  # full within a day at the current rate: a problem; within a week: a warning
WARNING_DAYS = 7.0
_HEAD_TS = re.compile(rb'\{"v":\d+,"seq":-?\d+,"ts":(-?[0-9][0-9.eE+-]*),')
_PROBE = 1 << 16


# -- permissions ---------------------------------------------------------------------
def permission_findings(layout: Layout) -> list[Finding]:
    """Every folder 0700, every file 0600, all owned by us. Symlinks are not followed;
    one that leads out of the log folder is named: what is written through it (a
    restore bundle, the search index) lands outside, with modes not checked here. A
    CURVE secret key file (`keys/*.key_secret`) open to others is no mode to set: its
    secret may have leaked, so the recorder refuses it and `persist keys init` replaces
    its pair (a problem, never chmodded by `--fix`)."""
    uid = os.getuid()
    outside: list[tuple[Path, str]] = []
    root = os.path.realpath(layout.root)
    bad_files: list[Path] = []
    bad_dirs: list[Path] = []
    foreign: list[Path] = []
    unreadable: list[str] = []

    shared: set[Path] = set()  # readable or writable by others than the owner
    keys = layout.root / "keys"
    leaked: list[tuple[Path, int]] = []  # secret key files open to others

    def look(path: Path, st: os.stat_result) -> None:
        if st.st_uid != uid:
            foreign.append(path)
        if (
            stat.S_ISREG(st.st_mode)
            and st.st_mode & NOT_PRIVATE
            and path.parent == keys
            and path.name.endswith(SECRET_SUFFIX)
        ):
            leaked.append((path, stat.S_IMODE(st.st_mode)))
        elif stat.S_ISDIR(st.st_mode) and st.st_mode & 0o777 != DIR_MODE:
            bad_dirs.append(path)
        elif stat.S_ISREG(st.st_mode) and st.st_mode & 0o777 != FILE_MODE:
            bad_files.append(path)
        if st.st_mode & 0o077:
            shared.add(path)

    try:
        look(layout.root, layout.root.lstat())
    except OSError as exc:
        unreadable.append(f"{layout.root} ({exc.strerror})")
    for folder, dirs, files in os.walk(
        layout.root, onerror=lambda e: unreadable.append(f"{e.filename} ({e.strerror})")
    ):
        for name in (*dirs, *files):
            path = Path(folder) / name
            try:
                st = path.lstat()
            except OSError as exc:
                unreadable.append(f"{path} ({exc.strerror})")
                continue
            if not stat.S_ISLNK(st.st_mode):
                look(path, st)
                continue
            target = os.path.realpath(path)
            if os.path.commonpath([root, target]) != root:
                outside.append((path, target))
    out: list[Finding] = []
    for paths, mode, kind in ((bad_files, "600", "f"), (bad_dirs, "700", "d")):
        if not paths:
            continue
        what = "file(s) are not 0600" if kind == "f" else "folder(s) are not 0700"
        why = (
            "others on this machine may read them"
            if shared.intersection(paths)
            else "we may not be able to read or write them"
        )
        if len(paths) <= 3:
            fix = f"chmod {mode} " + " ".join(shlex.quote(str(p)) for p in paths)
        else:
            fix = (
                f"find {shlex.quote(str(layout.root))} -type {kind} ! -perm {mode} "
                f"-exec chmod {mode} {{}} +"
            )
        names = ", ".join(_rel(layout, p) for p in paths[:3])
        out.append(
            Finding(
                Area.PERMISSIONS,
                f"permissions.{'files' if kind == 'f' else 'folders'}",
                Severity.WARNING,
                f"{len(paths)} {what}, {why} ({names})",
                fix,
                Repair(RepairKind.CHMOD, tuple(paths)),
            )
        )
    if leaked:
        more = f" (and {len(leaked) - 1} more)" if leaked[1:] else ""
        out.append(
            Finding(
                Area.PERMISSIONS,
                "permissions.secret-keys",
                Severity.PROBLEM,
                f"{open_to_others(*leaked[0])}{more}; the recorder and broker refuse it",
                f"persist keys init --keys {shlex.quote(str(keys))}",
            )
        )
    if foreign:
        out.append(
            Finding(
                Area.PERMISSIONS,
                "permissions.owner",
                Severity.PROBLEM,
                f"{len(foreign)} path(s) belong to another user "
                f"({', '.join(_rel(layout, p) for p in foreign[:3])})",
                chown_fix(layout),
            )
        )
    if unreadable:
        out.append(
            Finding(
                Area.PERMISSIONS,
                "permissions.unreadable",
                Severity.PROBLEM,
                f"cannot look into {len(unreadable)} path(s): {', '.join(unreadable[:3])}",
                f"ls -la {shlex.quote(str(layout.root))}",
            )
        )
    if outside:
        links = ", ".join(f"{_rel(layout, p)} -> {t}" for p, t in outside[:3])
        out.append(
            Finding(
                Area.PERMISSIONS,
                "permissions.symlinks",
                Severity.WARNING,
                f"{len(outside)} symlink(s) lead out of the log folder ({links}): what is "
                "written through them lands there, its modes not checked here",
                "ls -la " + " ".join(shlex.quote(str(p)) for p, _ in outside[:3]),
            )
        )
    out.extend(_parent_findings(Path(root), uid))
    if not out:
        out.append(
            Finding(
                Area.PERMISSIONS,
                "permissions.files",
                Severity.OK,
                "every folder 0700, every file 0600, all yours",
            )
        )
    return out


def chown_fix(layout: Layout) -> str:
    """The command that gives the log folder, all of it, back to us."""
    return f"sudo chown -R {user_name(os.getuid())} {shlex.quote(str(layout.root))}"


def _parent_findings(root: Path, uid: int) -> list[Finding]:
    """The folders above the log folder: one that others may write to (without the
    sticky bit, as /tmp has) or that belongs to another user (not root) lets them rename
    the log folder away and put one of theirs in its place, whatever its own modes. A
    group-writable folder counts when others are in its group (not a private group of
    ours alone). Not chmodded by `--fix`: those folders are not ours to change."""
    risky: list[tuple[Path, os.stat_result]] = []
    for folder in root.parents:
        try:
            st = folder.stat()
        except OSError:
            continue  # the log folder's own check names what cannot be reached
        writable = st.st_mode & 0o002 or (st.st_mode & 0o020 and not _own_group(st.st_gid))
        if (writable and not st.st_mode & stat.S_ISVTX) or st.st_uid not in (uid, 0):
            risky.append((folder, st))
    if not risky:
        return []
    named = ", ".join(
        f"{p} ({stat.filemode(st.st_mode)}, {user_name(st.st_uid)})" for p, st in risky[:3]
    )
    mine = [shlex.quote(str(p)) for p, st in risky if st.st_uid == uid]
    return [
        Finding(
            Area.PERMISSIONS,
            "permissions.parents",
            Severity.WARNING,
            f"{len(risky)} folder(s) above the log folder may be written to by others: "
            f"{named}; they could put another folder in the log folder's place",
            f"chmod go-w {' '.join(mine)}" if mine else None,
        )
    ]


def _own_group(gid: int) -> bool:
    """`gid` is our primary group with nobody else in it (a user private group)."""
    if gid != os.getgid():
        return False
    try:
        import grp

        members = grp.getgrgid(gid).gr_mem
    except (KeyError, ImportError):
        return False
    return all(m == user_name(os.getuid()) for m in members)


def _rel(layout: Layout, path: Path) -> str:
    try:
        return str(path.relative_to(layout.root)) or "."
    except ValueError:
        return str(path)


# -- disk headroom ---------------------------------------------------------------------
@dataclass(frozen=True)
class Growth:
    """How fast the journal grew: bytes over the last `window` seconds (at most a day)."""

    nbytes: int
    window: float

    @property
    def per_hour(self) -> float:
        return self.nbytes / self.window * 3600 if self.window > 0 else 0.0


def journal_growth(layout: Layout, now: float) -> Growth | None:
    """Journal bytes written in the last day (or since the journal began, if later):
    closed segments by their size and time span, the active one by its records' times.
    None when the journal is younger than a minute (no rate yet), or cannot be listed."""
    try:
        paths = list_segments(layout)
    except NotADirectoryError:  # journal.folder says so
        return None
    if not paths:
        return None
    start_ts = _first_ts(paths[0])
    if start_ts is None:
        try:
            start_ts = min(p.stat().st_mtime for p in paths)
        except OSError:
            return None
    start = max(now - WINDOW, start_ts)
    if now - start < 60:
        return None
    total = 0
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            continue
        first = _first_ts(path)
        end = now if path == paths[-1] else st.st_mtime
        if end < start:
            continue
        if first is not None and first >= start:
            total += st.st_size
            continue
        after = _bytes_after(path, start, st.st_size)
        if after is None:  # not readable as lines (another format): by its share of time
            span = end - (first if first is not None else start)
            after = int(st.st_size * min(1.0, (end - start) / span)) if span > 0 else st.st_size
        total += after
    return Growth(total, now - start)


def _first_ts(path: Path) -> float | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        head = os.pread(fd, _PROBE, 0) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    except OSError:
        return None
    finally:
        os.close(fd)
    m = _HEAD_TS.match(head)
    return float(m.group(1)) if m else None


def _bytes_after(path: Path, ts: float, size: int) -> int | None:
    """Bytes of `path` from the first line whose time is at or after `ts`: a bisection
    over byte offsets (one small read per step), then the last stretch line by line;
    None if its lines cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        lo, hi = 0, size  # the answer's line starts in [lo, hi]; lo is a line start
        while hi - lo > _PROBE:
            found = _line_ts(fd, (lo + hi) // 2)
            if found is None:
                return None
            start, t = found
            if start >= hi:
                break
            if t >= ts:
                hi = start
            else:
                lo = start
        data = os.pread(fd, hi - lo + _PROBE, lo)
        pos = 0
        while lo + pos < hi:
            m = _HEAD_TS.match(data, pos)
            if m is None:
                return None
            if float(m.group(1)) >= ts:
                return size - (lo + pos)
            nl = data.find(b"\n", pos)
            if nl < 0:
                return None
            pos = nl + 1
        return size - hi
    finally:
        os.close(fd)


def _line_ts(fd: int, offset: int) -> tuple[int, float] | None:
    """(start, time) of the first line starting after `offset`."""
    data = os.pread(fd, _PROBE, offset)
    nl = data.find(b"\n")
    if nl < 0:
        return None
    if nl + 1 == len(data) and len(data) < _PROBE:
        return offset + nl + 1, math.inf  # the end of the file: no line starts after it
    m = _HEAD_TS.match(data, nl + 1)
    return (offset + nl + 1, float(m.group(1))) if m else None


def _full_in(days: float | None) -> str:
    """When the disk is full at this pace, as a person reads it (not "52190.1d")."""
    if days is None:
        return "never"
    return "over a year" if days >= 365 else format_age(days * DAY)


def read_only(layout: Layout) -> bool:
    """Whether the log folder is on a read-only file system."""
    try:
        return bool(os.statvfs(layout.root).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def disk_findings(layout: Layout, now: float) -> list[Finding]:
    try:
        vfs = os.statvfs(layout.root)
    except OSError as exc:
        return [
            Finding(
                Area.DISK,
                "disk.free",
                Severity.PROBLEM,
                f"cannot ask the file system for free space ({exc.strerror})",
                f"df -h {shlex.quote(str(layout.root))}",
            )
        ]
    if vfs.f_flag & os.ST_RDONLY:
        return [
            Finding(
                Area.DISK,
                "disk.read-only",
                Severity.PROBLEM,
                "the log folder is on a read-only file system: no recorder can write here, "
                "and nothing derived (search index, caches) can be rebuilt or repaired",
                f"findmnt -T {shlex.quote(str(layout.root))}",
            )
        ]
    free = vfs.f_bavail * vfs.f_frsize
    growth = journal_growth(layout, now)
    rate = growth.per_hour if growth is not None else 0.0
    days = free / (rate * 24) if rate > 0 else None
    if growth is None:
        pace = "no write rate yet (the journal is under a minute old)"
    elif rate <= 0:
        pace = f"nothing written over the last {format_age(growth.window)}"
    else:
        pace = (
            f"the journal grew {mb(rate)}/hour over the last {format_age(growth.window)}: "
            f"full in {_full_in(days)}"
        )
    severity = Severity.OK
    if free < PROBLEM_FREE or (days is not None and days < PROBLEM_DAYS):
        severity = Severity.PROBLEM
    elif free < WARNING_FREE or (days is not None and days < WARNING_DAYS):
        severity = Severity.WARNING
    fix = None
    if severity is not Severity.OK:
        fix = f"du -sh {shlex.quote(str(layout.root))}/* | sort -h"
    return [Finding(Area.DISK, "disk.free", severity, f"{mb(free)} free; {pace}", fix)]
