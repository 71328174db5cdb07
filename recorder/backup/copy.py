"""`persist backup DEST`: a consistent, verified, incremental copy of a log folder,
taken while the recorder writes to it.

Consistent: the checkpoint files are listed first, then the journal's end is fixed
(the active segment up to its last complete line); only segments up to that end and
checkpoints listed before it are copied, so every checkpoint in the backup names
bytes the backup holds. Retention's lock is held throughout: no prune, trash change
or pin moves a segment out from under the copy (each waits, or is told to try
again); a segment that vanishes all the same fails the backup. Closed segments never
change (copied once, by content). A session copy's `manifest.json` is copied before
its data files, which only grow, so the backup never names bytes it lacks.

Left out, because they are rebuilt from the journal or describe a running process:
the search index, `metadata_index/` caches, restore bundles, status and lock files,
the recorder's log, `recovery/state.json`, control requests, agent registrations,
hook state of running sessions. CURVE secret keys only with `secret_keys=True`.
A symlink leading out of the log folder is followed (see `_walk`): settings kept
elsewhere are part of what a restore must bring back; one leading into it is kept as
a relative link, unless it would lead to nothing the backup holds (the search index, a
secret key: named, left out); the journal is real folders and files under its own
names however it is linked. FIFOs, sockets and devices are named, never opened.

Every object is written to a temp file, fsynced, dropped from the page cache and read
back from the disk, checked against the SHA-256 taken while copying, then renamed into
place; the manifest is replaced last, in one rename, so an interrupted backup leaves
the previous one valid. An object already there is reused only once it is hashed
from the disk (a damaged one is replaced by the fresh copy), except that of a file
unchanged since the last backup (same size, mtime and inode): that one is checked by
size, unless `verify` (every object reused is hashed; a damaged one is copied again).
Every file and folder already in DEST is made 0600 / 0700 first, and named if it was not.

About 800 lines: the consistent cut, the walk that follows symlinks, what DEST may
hold (nothing a backup did not make), and the object store it writes into.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import posixpath
import re
import secrets
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from recorder.backup.manifest import (
    LOCK,
    MANIFEST,
    NOT_PRIVATE,
    OBJECT_DIR,
    OBJECTS,
    SHA256,
    BackupDamaged,
    Entry,
    JournalPosition,
    Manifest,
    NotABackup,
    file_sha256,
    links_to_nothing,
)
from recorder.errors import BadOption, PersistError
from recorder.store.fsutil import (
    DIR_MODE,
    FILE_MODE,
    AtomicFile,
    ensure_private_dir,
    fsync_dir,
    open_private,
    write_all,
)
from recorder.store.layout import Layout, list_segments, segment_name, segment_number
from recorder.store.pruned import LOCK_WAIT, RetentionBusy, retention_lock
from recorder.store.records import parse_line
from recorder.store.unfinished import refuse_unfinished_restore

_CHUNK = 1 << 20
_TEMP = re.compile(r"\A[0-9a-f]{16}\Z")  # objects/tmp/<16 hex>: a copy being made

# (relative path or folder, why) left out of every backup
LEFT_OUT = (
    ("search", "search index (rebuilt from the journal: persist reindex)"),
    ("metadata_index", "line-index and digest caches (rebuilt on first read)"),
    ("restore", "restore bundles (persist restore writes them again)"),
    ("render_cache", "renderings of closed segments (exports render them again)"),
    ("control", "requests to a running recorder"),
    ("agents", "registrations of running agents"),
    ("hooks/sessions", "hook state of running agent sessions"),
    ("hooks/pending", "marks of ended sessions whose hook state is left out too"),
    ("recovery/state.json", "crash-recovery state (rebuilt from the journal)"),
    ("recovery/doctor", "derived files persist doctor --fix moved aside"),
    ("status.json", "heartbeat of the running recorder"),
    ("status.reserve", "space kept for the heartbeat"),
    ("retention/room.reserve", "space kept for retention's bookkeeping"),
    ("recorder.lock", "lock of the running recorder"),
    ("recorder.out", "output of a recorder started in the background"),
    ("sessions/scan-cache.json", "listing cache of agent sessions"),
)
_LEFT_OUT = dict(LEFT_OUT)
SECRET_SUFFIX = ".key_secret"


class BackupError(PersistError):
    """The backup could not be made (the message says why; the previous one is intact)."""


@dataclass
class BackupResult:
    log_dir: Path
    dest: Path
    files: int = 0
    copied_bytes: int = 0  # written into DEST this time
    reused_bytes: int = 0  # already in DEST (same digest), not copied again
    position: JournalPosition | None = None
    took: float = 0.0
    left_out: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)  # deleted while the backup ran
    verified: bool = False  # every object reused was hashed too, not only checked by size
    damaged_replaced: list[str] = field(default_factory=list)  # files whose object was bad
    symlinks_left_out: list[str] = field(default_factory=list)  # "rel -> target (why)"
    links_rewritten: list[str] = field(default_factory=list)  # "rel -> relative target"
    not_regular_left_out: list[str] = field(default_factory=list)  # "rel (a FIFO)": never read
    damaged_manifest: str | None = None  # what was wrong with the manifest replaced
    made_private: list[str] = field(default_factory=list)  # "objects/0e was 0755": now 0700
    garbage_kept: int = 0  # objects no longer named, kept while a restore reads DEST
    exposed_keys: dict[str, int] = field(default_factory=dict)  # secret keys open to others
    checked: set[str] = field(default_factory=set, repr=False)  # objects hashed this run

    def to_json(self) -> dict[str, Any]:
        return {
            "log_dir": str(self.log_dir),
            "dest": str(self.dest),
            "files": self.files,
            "copied_bytes": self.copied_bytes,
            "reused_bytes": self.reused_bytes,
            "position": self.position.to_json() if self.position else None,
            "took_s": round(self.took, 3),
            "left_out": self.left_out,
            "vanished": self.vanished,
            "verified": self.verified,
            "damaged_replaced": self.damaged_replaced,
            "symlinks_left_out": self.symlinks_left_out,
            "links_made_relative": self.links_rewritten,
            "not_regular_left_out": self.not_regular_left_out,
            "damaged_manifest": self.damaged_manifest,
            "made_private": self.made_private,
            "garbage_kept": self.garbage_kept,
            "exposed_secret_keys": {p: f"{m:04o}" for p, m in self.exposed_keys.items()},
        }


def left_out_of_backup(rel: str, secret_keys: bool) -> bool:
    """Whether a backup leaves this file out (rebuilt from the journal, or describing a
    running process; CURVE secret keys unless `secret_keys`)."""
    name = rel.rsplit("/", 1)[-1]
    if name.endswith(".lock") or (name.startswith(".") and name.endswith(".tmp")):
        return True
    if name.startswith("recorder.log"):
        return True
    if not secret_keys and rel.startswith("keys/") and name.endswith(SECRET_SUFFIX):
        return True
    return any(rel == p or rel.startswith(p + "/") for p in _LEFT_OUT)


def _ours(name: str) -> bool:
    """A name a backup folder holds (an interrupted run may leave a temp manifest)."""
    return name in (MANIFEST, OBJECTS, LOCK) or (
        name.startswith(f".{MANIFEST}.") and name.endswith(".tmp")
    )


def _not_ours(dest: Path) -> list[str]:
    """What DEST holds that no backup made, so that a backup would write over or delete
    it: other names, a manifest.json that is not a backup's, a backup.lock that is no
    file, anything in objects/ not named as an object or a copy being made."""
    found = sorted(p.name for p in dest.iterdir() if not _ours(p.name))
    lock, manifest, objects = dest / LOCK, dest / MANIFEST, dest / OBJECTS
    if lock.is_symlink() or (lock.exists() and not lock.is_file()):
        found.append(LOCK)
    if os.path.lexists(manifest) and (
        manifest.is_symlink() or not manifest.is_file() or not _backup_manifest(dest)
    ):
        found.append(f"{MANIFEST}, not a backup's")
    if objects.is_symlink() or (objects.exists() and not objects.is_dir()):
        found.append(OBJECTS)
    elif objects.is_dir():
        for sub in sorted(objects.iterdir()):
            named = _TEMP if sub.name == "tmp" else SHA256 if OBJECT_DIR.match(sub.name) else None
            if named is None or sub.is_symlink() or not sub.is_dir():
                found.append(f"{OBJECTS}/{sub.name}")
                continue
            found += [
                f"{OBJECTS}/{sub.name}/{p.name}"
                for p in sorted(sub.iterdir())
                if not named.match(p.name)
                or p.is_symlink()
                or not p.is_file()
                or (named is SHA256 and not p.name.startswith(sub.name))
            ]
    return found


def _refuse_foreign(dest: Path) -> None:
    """BadOption when DEST holds what no backup made (see `_not_ours`)."""
    if dest.is_dir() and (foreign := _not_ours(dest)):
        more = f" and {len(foreign) - 3} more" if foreign[3:] else ""
        raise BadOption(
            f"DEST {dest} holds other files ({', '.join(foreign[:3])}{more}): give an "
            "empty or new folder, or one persist backup made"
        )


def _backup_manifest(dest: Path) -> bool:
    """Whether DEST's manifest.json is a backup's, maybe torn or damaged (a backup
    replaces it), never another program's (see `Manifest.read`)."""
    try:
        Manifest.read(dest)
    except NotABackup:
        return False
    except BackupDamaged:
        pass
    return True


def _inside(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or b in a.parents


Progress = Callable[[int, int], None]  # (bytes done, bytes to do)


def make_backup(
    root: Path,
    dest: Path,
    *,
    secret_keys: bool = False,
    verify: bool = False,
    replace_other_source: bool = False,
    progress: Progress | None = None,
) -> BackupResult:
    started = time.monotonic()
    layout = Layout(Path(root))
    refuse_unfinished_restore(layout.root)  # part of a backup, not a journal
    if not layout.segments.is_dir():
        raise BackupError(f"{layout.root} holds no journal (no segments/ folder)")
    if dest.exists() and not dest.is_dir():
        raise BadOption(f"DEST {dest} exists and is not a folder")
    if _inside(dest, layout.root) or _inside(layout.root, dest):
        raise BadOption(f"DEST {dest} and the log folder {layout.root} must not hold each other")
    _refuse_foreign(dest)  # a first look, so that a foreign DEST is left untouched
    made_dest = not dest.exists()
    modes = {"DEST": _mode(dest, DIR_MODE)}  # before they are made private, to say so
    ensure_private_dir(dest)
    modes[LOCK] = _mode(dest / LOCK, FILE_MODE)
    try:
        lock_fd = open_private(dest / LOCK, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW)
        made_lock = True
    except FileExistsError:
        lock_fd = open_private(dest / LOCK, os.O_RDWR | os.O_NOFOLLOW)
        made_lock = False
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"another persist backup is writing into {dest}") from None
        try:  # the lock this run holds is DEST's (not one a refused run removed since)
            held = os.path.samestat(os.fstat(lock_fd), os.lstat(dest / LOCK))
        except FileNotFoundError:
            held = False
        if not held:
            raise BackupError(f"another persist backup is writing into {dest}")
        try:  # judged again, now that no other backup can write: what DEST holds now
            _refuse_foreign(dest)
        except BadOption:  # something else wrote there since the first look
            if made_lock:
                with contextlib.suppress(OSError):
                    (dest / LOCK).unlink()
            if made_dest:
                with contextlib.suppress(OSError):
                    dest.rmdir()
            raise
        result = BackupResult(layout.root, dest, verified=verify)
        result.made_private += [
            f"{name} was {mode:04o}" for name, mode in modes.items() if mode is not None
        ]
        try:
            with retention_lock(layout, wait=LOCK_WAIT):
                _backup(layout, dest, secret_keys, replace_other_source, result, progress)
        except RetentionBusy as exc:
            raise BackupError(f"{exc}; the previous backup there (if any) is intact") from None
    finally:
        os.close(lock_fd)
    result.took = time.monotonic() - started
    return result


def _mode(path: Path, want: int) -> int | None:
    """The mode of `path` when it is there and not `want`."""
    try:
        mode = stat.S_IMODE(os.lstat(path).st_mode)
    except OSError:
        return None
    return mode if mode != want else None


def _make_private(dest: Path, result: BackupResult) -> None:
    """Every file and folder in DEST (what a backup made: see `_not_ours`) 0600 / 0700,
    whatever made them otherwise since (a copy with `rsync -r` under umask 022, a
    `chmod -R`): objects are reused as they are, a secret key's too. Each one changed is
    named in `made_private`; one that cannot be changed (another owner's) fails the
    backup before anything is written."""
    for top, dirs, files in os.walk(dest):
        dirs.sort()  # each folder made 0700 before os.walk lists it
        for name in sorted([*dirs, *files]):
            path = Path(top, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                want = DIR_MODE
            elif stat.S_ISREG(st.st_mode):
                want = FILE_MODE
            else:
                continue  # refused by `_not_ours`, never followed
            mode = stat.S_IMODE(st.st_mode)
            if mode == want:
                continue
            try:
                os.chmod(path, want)
            except OSError as exc:
                raise BackupError(
                    f"{path} cannot be made {want:04o} ({exc.strerror}): DEST files are 0600 "
                    "in 0700 folders; the previous backup there (if any) is intact"
                ) from None
            result.made_private.append(f"{path.relative_to(dest).as_posix()} was {mode:04o}")


def _backup(
    layout: Layout,
    dest: Path,
    secret_keys: bool,
    replace_other_source: bool,
    result: BackupResult,
    progress: Progress | None,
) -> None:
    source = str(layout.root.resolve())
    previous: dict[str, Entry] = {}
    try:
        before = Manifest.read(dest)
    except NotABackup:
        named = None  # none yet
    except BackupDamaged as exc:  # torn or damaged: replaced, objects there hashed to reuse
        named = exc.source
        result.damaged_manifest = str(exc)
    else:
        named = before.source
        previous = {e.path: e for e in before.files}
    if named not in (None, source) and not replace_other_source:
        raise BadOption(
            f"DEST {dest} holds the backup of another log folder ({named}): give "
            "another DEST, or --replace-other-source to replace that backup"
        )
    _make_private(dest, result)  # before any object is reused
    ensure_private_dir(dest / OBJECTS)
    _remove_temp_files(ensure_private_dir(dest / OBJECTS / "tmp"))
    # 1. the checkpoints that exist now, 2. the journal's end: every checkpoint listed
    # names a position at or before that end.
    try:
        checkpoints = {p.name for p in layout.checkpoints.iterdir() if p.is_file()}
    except FileNotFoundError:
        checkpoints = set()
    segments = list_segments(layout)
    cut = _journal_end(segments[-1]) if segments else None
    if segments and cut is not None:
        result.position = JournalPosition(_plain_name(segments[-1]), cut[0], cut[1])
    manifest = Manifest(time.time(), source, result.position)
    manifest.secret_keys = secret_keys
    manifest.left_out = [f"{p}: {why}" for p, why in LEFT_OUT]
    if not secret_keys:
        manifest.left_out.append(
            f"keys/*{SECRET_SUFFIX}: CURVE secret keys (--include-secret-keys)"
        )
    result.left_out = [p for p, _ in LEFT_OUT] + ([] if secret_keys else ["secret keys"])
    walked = _walk(
        layout.root,
        lambda rel: not left_out_of_backup(rel, secret_keys),
        _journal_places(layout, checkpoints, segments),
    )
    result.symlinks_left_out = walked.unfollowed
    result.not_regular_left_out = walked.not_regular
    result.links_rewritten = walked.rewritten
    todo = sum(_size(p) for r, p in walked.found if not r.startswith("segments/"))
    todo += sum(_size(p) for p in segments[:-1]) + (cut[0] if cut is not None else 0)

    def advance() -> None:
        if progress is not None:
            progress(result.copied_bytes + result.reused_bytes, todo)

    for rel, target in walked.links.items():
        top, _, name = rel.partition("/")
        if top != "checkpoints" or name in checkpoints:  # a link to a later one: not yet
            manifest.links[rel] = target
    for rel, path in walked.found:
        top, _, name = rel.partition("/")
        if top == "segments":
            continue  # below, by segment number (a segment that is a link: what it leads to)
        if top == "checkpoints" and name not in checkpoints:
            continue  # written after the journal's end was fixed: may name bytes past it
        try:
            manifest.files.append(_store(path, rel, None, dest, previous.get(rel), result))
        except FileNotFoundError:
            result.vanished.append(rel)
        except _NotRegular as exc:  # became one since the walk
            result.not_regular_left_out.append(f"{rel} ({exc.kind})")
        advance()
    for k, first in enumerate(segments):
        limit = cut[0] if cut is not None and k == len(segments) - 1 else None
        entry = _store_segment(layout, first, limit, dest, previous, result)
        if entry is None:  # its checkpoints would name bytes the backup lacks
            raise BackupError(
                f"segments/{first.name} vanished while the backup ran (not by a prune: "
                "retention was held); nothing replaced the previous backup there (if any)"
            )
        manifest.files.append(entry)
        advance()
    if progress is not None:
        progress(todo, todo)
    stored = {e.path for e in manifest.files}
    result.exposed_keys = {p: m for p, m in result.exposed_keys.items() if p in stored}
    manifest.exposed = dict(result.exposed_keys)
    _leave_out_links_to_nothing(manifest, set(walked.links), secret_keys, result)
    manifest.left_out += result.symlinks_left_out + result.not_regular_left_out
    with AtomicFile(dest / MANIFEST) as out:
        out.file.write(manifest.dumps())
    result.files = len(manifest.files)
    result.garbage_kept = _collect_garbage(dest, {e.sha256 for e in manifest.files})


def _leave_out_links_to_nothing(
    manifest: Manifest, links: set[str], secret_keys: bool, result: BackupResult
) -> None:
    """Links that would lead nowhere once restored (to what backups leave out: the search
    index, a secret key; a checkpoint written after the journal's end was fixed; a file
    gone while the backup ran; a link left out) are left out too, and named with why,
    as links that lead nowhere already are: restore-backup would make them dangling."""
    for name, (leads_to, end) in links_to_nothing(
        (e.path for e in manifest.files), manifest.links
    ).items():
        target = manifest.links.pop(name)
        why = (
            "leads to a link left out"
            if leads_to in links
            else f"leads to what backups leave out: {_why_left_out(end, secret_keys)}"
            if left_out_of_backup(end, secret_keys)
            else "leads to what this backup does not hold"
        )
        result.symlinks_left_out.append(f"{name} -> {target} ({why})")
        result.links_rewritten = [
            r for r in result.links_rewritten if not r.startswith(f"{name} -> ")
        ]
    result.symlinks_left_out.sort()


def _why_left_out(rel: str, secret_keys: bool) -> str:
    """Why backups leave `rel` out (see `left_out_of_backup`)."""
    name = rel.rsplit("/", 1)[-1]
    if not secret_keys and rel.startswith("keys/") and name.endswith(SECRET_SUFFIX):
        return "CURVE secret keys (--include-secret-keys)"
    for path, why in LEFT_OUT:
        if rel == path or rel.startswith(path + "/"):
            return why
    if name.startswith("recorder.log"):
        return "the recorder's log"
    return "lock and temp files"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _plain_name(path: Path) -> str:
    """The name checkpoints give a segment (`seg-N.jsonl`), whatever form its file has."""
    return segment_name(segment_number(path.name) or 0)


def _store_segment(
    layout: Layout,
    path: Path,
    limit: int | None,
    dest: Path,
    previous: dict[str, Entry],
    result: BackupResult,
) -> Entry | None:
    """A segment's file as it is when it is read: a closed segment may be replaced by
    another form of itself while the backup runs (the same records), so it is looked
    up again by number when its file went away."""
    number = segment_number(path.name)
    for _attempt in range(5):
        rel = f"segments/{path.name}"
        try:
            return _store(path, rel, limit, dest, previous.get(rel), result)
        except FileNotFoundError:
            again = [p for p in list_segments(layout) if segment_number(p.name) == number]
            if not again:
                break
            path = again[0]
    result.vanished.append(f"segments/{path.name}")
    return None


_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def _kind(mode: int) -> str:
    """What a file that is no regular file or folder is, for people."""
    return _KINDS.get(stat.S_IFMT(mode), "another kind of file")


class _NotRegular(BackupError):
    """A file to copy that is a FIFO, socket or device (never read: it may never end)."""

    def __init__(self, path: Path, mode: int) -> None:
        self.kind = _kind(mode)
        super().__init__(
            f"{path} is not a regular file ({self.kind}); move it out of the log folder"
        )


@dataclass
class _Walked:
    found: list[tuple[str, Path]] = field(default_factory=list)  # files: (rel, what to read)
    links: dict[str, str] = field(default_factory=dict)  # kept as links: rel -> target
    rewritten: list[str] = field(default_factory=list)  # "rel -> target": not as they were
    unfollowed: list[str] = field(default_factory=list)  # "rel -> target (why)"
    not_regular: list[str] = field(default_factory=list)  # "rel (a FIFO)": sockets, devices


_JOURNAL = ("segments", "checkpoints")  # always real folders of real files in a backup


def _journal_places(layout: Layout, checkpoints: set[str], segments: list[Path]) -> dict[str, str]:
    """Where the journal really is (symlinks resolved) -> its name in the backup: the
    `segments/` and `checkpoints/` folders, every segment, every checkpoint listed."""
    places: dict[str, str] = {}
    for top in _JOURNAL:
        if (layout.root / top).is_dir():
            places[os.path.realpath(layout.root / top)] = top
    for path in segments:
        places[os.path.realpath(path)] = f"segments/{path.name}"
    for name in checkpoints:
        places[os.path.realpath(layout.checkpoints / name)] = f"checkpoints/{name}"
    return places


def _link_to(named: str, rel: str) -> str:
    """A link at `rel` leading to `named` (both paths in the backup), relative."""
    return posixpath.relpath(named, posixpath.dirname(rel) or ".")


def _walk(root: Path, keep: Callable[[str], bool], journal: dict[str, str]) -> _Walked:
    """Every file and symlink under `root` whose relative path `keep` keeps, sorted,
    with each folder's `manifest.json` before its other files (see the module's
    docstring). `journal`: see `_journal_places`.

    The journal (`segments/`, `checkpoints/` and their files) is real folders and files
    in the backup whatever links lead to it, and any other name for it in the log
    folder (the folder a linked `segments/` really is, a file a segment links to, a
    link to a segment) is kept as a relative link to it: its bytes are stored once.
    Any other symlink whose target is relative and stays beside or below it is kept as
    it is; one that leads elsewhere into the log folder (an absolute target, `..`) is
    kept as a link made relative (never followed: no bytes twice, no loop); one that
    leads out of it is followed, what it leads to copied as if it were there (a file,
    a folder's files: settings kept elsewhere are part of the log folder), unless it
    leads nowhere, to the log folder itself or a folder holding it, round in a loop, or
    to no regular file: those are named in `unfollowed`. FIFOs, sockets and devices are
    named in `not_regular`, never opened (reading one may never end)."""
    walked = _Walked()
    home = root.resolve()
    holding = {os.path.dirname(p) for p in journal}  # folders holding journal files

    def in_backup(real: Path) -> str | None:
        """Where the file or folder `real` (symlinks resolved) is in the backup, if it is."""
        for place in (real, *real.parents):
            named = journal.get(str(place))
            if named is not None:
                rest = real.relative_to(place).as_posix()
                return named if rest == "." else f"{named}/{rest}"
            if place == home:
                return real.relative_to(home).as_posix()
        return None

    def another_name(rel: str, real: Path) -> bool:
        """Whether `real`, found at `rel`, is a journal file or folder the backup holds
        under its own name: then `rel` is kept as a link to it."""
        named = journal.get(str(real))
        if named is None or named == rel:
            return False
        walked.links[rel] = _link_to(named, rel)
        walked.rewritten.append(f"{rel} -> {walked.links[rel]}")
        return True

    def walk(folder: Path, prefix: str, outer: tuple[Path, ...]) -> None:
        for top, dirs, files in os.walk(folder):
            base = Path(top)
            under = prefix + (base.relative_to(folder).as_posix() + "/").removeprefix("./")
            real_base = base.resolve()
            inside = (*outer, real_base)  # the folders this one is in, for loops
            dirs[:] = sorted(
                d
                for d in dirs
                if keep(under + d)
                and ((base / d).is_symlink() or not another_name(under + d, real_base / d))
            )
            names = sorted(files, key=lambda n: (n != "manifest.json", n))
            names += [d for d in dirs if (base / d).is_symlink()]
            for name in names:
                path, rel = base / name, under + name
                if not keep(rel):
                    continue
                try:
                    st = os.lstat(path)
                    target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
                except OSError:
                    continue  # gone since it was listed
                if target is None:
                    if not stat.S_ISREG(st.st_mode):
                        walked.not_regular.append(f"{rel} ({_kind(st.st_mode)})")
                    elif str(real_base) not in holding or not another_name(rel, real_base / name):
                        walked.found.append((rel, path))
                    continue
                link(path, rel, target, inside)

    def link(path: Path, rel: str, target: str, inside: tuple[Path, ...]) -> None:
        journal_own = rel in _JOURNAL or rel.partition("/")[0] in _JOURNAL
        if (
            not journal_own
            and not target.startswith("/")
            and ".." not in PurePosixPath(target).parts
        ):
            walked.links[rel] = target  # beside or below it: kept as it is
            return
        real = Path(os.path.realpath(path))
        try:
            st = os.stat(path)
        except OSError as exc:
            why: str | None = (
                "leads round in a loop"
                if exc.errno == errno.ELOOP
                else "leads nowhere"
                if exc.errno in (errno.ENOENT, errno.ENOTDIR)
                else f"cannot be followed: {exc.strerror}"
            )
        else:
            named = in_backup(real)
            is_dir, is_file = stat.S_ISDIR(st.st_mode), stat.S_ISREG(st.st_mode)
            if journal_own and (is_file or rel in _JOURNAL):
                named = None  # the journal's own: what it leads to is copied here
            if named is not None and named != rel and (is_dir or is_file):
                made = _link_to(named, rel)
                if made != ".":  # a link elsewhere into the log folder: kept, relative
                    walked.links[rel] = made
                    if made != target:
                        walked.rewritten.append(f"{rel} -> {made}")
                    return
            why = (
                "leads to the log folder itself"
                if real == home
                else "holds the log folder"
                if real in home.parents
                else "leads back into a folder it is in"
                if any(real == f or real in f.parents for f in inside)
                else None
                if is_dir or is_file
                else f"leads to {_kind(st.st_mode)}, not a regular file"
            )
        if why is not None:
            walked.unfollowed.append(f"{rel} -> {target} ({why})")
        elif stat.S_ISDIR(st.st_mode):
            walk(real, f"{rel}/", inside)
        else:
            walked.found.append((rel, real))

    walk(root, "", ())
    walked.unfollowed.sort()
    walked.not_regular.sort()
    walked.rewritten.sort()
    return walked


def _journal_end(path: Path) -> tuple[int, int | None] | None:
    """(offset just after the active segment's last complete line, that line's seq)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        end = os.fstat(fd).st_size
        while end > 0:
            start = max(0, end - _CHUNK)
            block = os.pread(fd, end - start, start)
            nl = block.rfind(b"\n")
            if nl >= 0:
                end = start + nl + 1
                break
            end = start
        if end <= 0:
            return 0, None
        head = os.pread(fd, min(end, _CHUNK), max(0, end - _CHUNK))
        prev = head.rfind(b"\n", 0, len(head) - 1)
        record = parse_line(head[prev + 1 :])
        seq = record.get("seq") if record is not None else None
        return end, seq if type(seq) is int else None
    finally:
        os.close(fd)


def _store(
    path: Path,
    rel: str,
    limit: int | None,
    dest: Path,
    before: Entry | None,
    result: BackupResult,
) -> Entry:
    """Put one file's bytes (the first `limit` of them, if given) into the object store
    (FileNotFoundError if it went away)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise BackupError(f"{path} cannot be read ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _NotRegular(path, st.st_mode)
        if st.st_mode & NOT_PRIVATE and rel.startswith("keys/") and rel.endswith(SECRET_SUFFIX):
            result.exposed_keys[rel] = stat.S_IMODE(st.st_mode) & 0o777  # may have leaked
        size = st.st_size if limit is None else min(limit, st.st_size)
        if (
            before is not None
            and (before.size, before.mtime_ns, before.ino) == (size, st.st_mtime_ns, st.st_ino)
            and _object_size(dest, before.sha256) == size
            and (not result.verified or _object_whole(dest, before.sha256, result))
        ):
            result.reused_bytes += size
            return before
        digest = _copy_verified(fd, size, path, rel, dest, result)
    finally:
        os.close(fd)
    return Entry(rel, size, digest, st.st_mtime_ns, st.st_ino)


def _object_size(dest: Path, sha: str) -> int | None:
    try:
        return (dest / OBJECTS / sha[:2] / sha).stat().st_size
    except OSError:
        return None


def _object_whole(dest: Path, sha: str, result: BackupResult) -> bool:
    """Whether object `sha` in DEST holds the bytes its name says (hashed from the disk,
    once a run: the same bytes may be several files')."""
    if sha not in result.checked:
        try:
            if file_sha256(dest / OBJECTS / sha[:2] / sha, from_disk=True) != sha:
                return False
        except OSError:
            return False
        result.checked.add(sha)
    return True


def _copy_verified(
    fd: int, size: int, path: Path, rel: str, dest: Path, result: BackupResult
) -> str:
    tmp = dest / OBJECTS / "tmp" / secrets.token_hex(8)
    out = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    hasher = hashlib.sha256()
    try:
        pos = 0
        while pos < size:
            data = os.pread(fd, min(_CHUNK, size - pos), pos)
            if not data:
                raise BackupError(f"{path} shrank while it was copied")
            hasher.update(data)
            write_all(out, data)
            pos += len(data)
        os.fsync(out)
        # Drop the written pages from the cache, so reading the copy back reads the disk.
        with contextlib.suppress(OSError, AttributeError):
            os.posix_fadvise(out, 0, 0, os.POSIX_FADV_DONTNEED)
    except BaseException as exc:
        os.close(out)
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise BackupError(
                f"no space left on {dest} while copying {path} ({exc.strerror}): the previous "
                "backup there (if any) is intact, and what this one copied is kept there for "
                "the next backup to reuse"
            ) from None
        raise
    os.close(out)
    digest = hasher.hexdigest()
    there = _object_size(dest, digest)
    if there == size and _object_whole(dest, digest, result):  # the same bytes are there
        tmp.unlink()
        result.reused_bytes += size
        return digest
    if file_sha256(tmp) != digest:
        tmp.unlink()
        raise BackupError(f"the copy of {path} read back differently (a failing disk at DEST?)")
    target = dest / OBJECTS / digest[:2] / digest
    ensure_private_dir(target.parent)
    os.replace(tmp, target)
    fsync_dir(target.parent)
    result.checked.add(digest)
    if there is not None:  # an object of that name held other bytes: damaged in DEST
        result.damaged_replaced.append(rel)
    result.copied_bytes += size
    return digest


def _collect_garbage(dest: Path, keep: set[str]) -> int:
    """Objects the new manifest does not name (an old copy of the active segment); only
    names a backup gives, whatever else came into objects/ since the run began. Removed
    under an exclusive flock on objects/; while a `persist restore-backup` holds its
    shared one (it may be reading what the previous manifest names), they are kept for
    the next backup to remove, and counted (returned)."""
    objects = dest / OBJECTS
    fd = os.open(objects, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            read_meanwhile = False
        except BlockingIOError:
            read_meanwhile = True
        except OSError:  # no flock there: restores cannot take theirs either
            read_meanwhile = False
        kept = 0
        for sub in objects.iterdir():
            if not OBJECT_DIR.match(sub.name) or sub.is_symlink() or not sub.is_dir():
                continue
            for obj in sub.iterdir():
                if SHA256.match(obj.name) and obj.name not in keep:
                    if read_meanwhile:
                        kept += 1
                        continue
                    with contextlib.suppress(OSError):
                        obj.unlink()
    finally:
        os.close(fd)
    _remove_temp_files(objects / "tmp")
    with contextlib.suppress(OSError):
        (objects / "tmp").rmdir()
    return kept


def _remove_temp_files(tmp: Path) -> None:
    """The copies an interrupted run was making (objects/tmp/<16 hex>)."""
    with contextlib.suppress(OSError):
        for stale in tmp.iterdir():
            if _TEMP.match(stale.name):
                with contextlib.suppress(OSError):
                    stale.unlink()


__all__ = ["BackupError", "BackupResult", "left_out_of_backup", "make_backup"]
