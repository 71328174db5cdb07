"""`persist restore-backup SRC DEST_DIR`: a backup back into an empty folder, verified.

Every object is hashed while it is copied and compared with the manifest; the first
that differs (or is missing, or of another size) stops the restore, everything
written is removed, and the error names the file. Once every file is in place,
every restored file is read back from the disk against the manifest, every checkpoint is verified
against the restored journal (one read of each segment for all of them), and every
protected session copy is re-read member by member.

A restore killed part-way (nothing could remove what it wrote) leaves `PARTIAL` in
DEST_DIR (see `recorder.store.unfinished`: nothing writes into such a folder): run
again, it empties that folder and starts over, unless it holds files that run did not
write, which are never deleted; any other folder that is not empty is refused. Two
restores into one DEST_DIR at once: the second is refused (an flock on the folder).
A shared flock on SRC's `objects/` keeps a backup into SRC meanwhile from removing
what the manifest read names (see `_reading`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from recorder.backup.copy import left_out_of_backup
from recorder.backup.manifest import (
    NOT_PRIVATE,
    OBJECTS,
    BackupDamaged,
    Entry,
    Manifest,
    file_sha256,
    links_to_nothing,
)
from recorder.errors import BadOption, PersistError
from recorder.sources.copies import copies_dir, verify
from recorder.store.checkpoints import list_checkpoints, prefix_digests, verify_checkpoint
from recorder.store.fsutil import (
    FILE_MODE,
    NotRegularFile,
    ensure_private_dir,
    fsync_dir,
    open_private,
    open_regular,
    write_all,
)
from recorder.store.layout import Layout, list_segments, segment_name, segment_number
from recorder.store.unfinished import MARKER as PARTIAL  # in DEST_DIR until the restore is done
from recorder.store.unfinished import read_mark

_CHUNK = 1 << 20

__all__ = ["BackupDamaged", "RestoreError", "RestoreResult", "restore_backup"]


class RestoreError(PersistError):
    """The restore was refused or failed; the message says what DEST_DIR holds now."""


@dataclass
class RestoreResult:
    dest: Path
    files: int = 0
    bytes: int = 0
    checkpoints: int = 0  # verified against the restored journal
    copies: int = 0  # protected session copies verified
    links: list[str] = field(default_factory=list)  # "name -> target": made as symlinks
    # "name -> target": not made, leading to nothing the backup holds (one made before
    # `persist backup` left such links out: to the search index, a secret key)
    links_left_out: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # checkpoints or copies that do not verify
    # secret keys restored open to others, as the backup marks them: path -> mode
    exposed: dict[str, int] = field(default_factory=dict)
    took: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "dest": str(self.dest),
            "files": self.files,
            "bytes": self.bytes,
            "checkpoints_verified": self.checkpoints,
            "session_copies_verified": self.copies,
            "links": self.links,
            "links_left_out": self.links_left_out,
            "problems": self.problems,
            "exposed_secret_keys": {p: f"{m:04o}" for p, m in self.exposed.items()},
            "ok": not self.problems,
            "took_s": round(self.took, 3),
        }


def restore_backup(src: Path, dest: Path) -> RestoreResult:
    with _reading(src):
        return _restore(src, dest)


@contextlib.contextmanager
def _reading(src: Path) -> Iterator[None]:
    """A shared flock on SRC's `objects/`, taken before its manifest is read and held
    while the restore runs: a `persist backup` into SRC that ends meanwhile keeps the
    objects that manifest names (see `copy._collect_garbage`), and one removing objects
    now is waited for (a moment), its new manifest read after. Where there is no such
    folder or no flock, SRC is read as it is."""
    try:
        fd: int | None = os.open(
            src / OBJECTS, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        )
    except OSError:
        fd = None
    try:
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _restore(src: Path, dest: Path) -> RestoreResult:
    started = time.monotonic()
    manifest = Manifest.read(src)
    if dest.resolve() == src.resolve() or src.resolve() in dest.resolve().parents:
        raise BadOption(f"DEST_DIR {dest} is inside the backup {src}: restore it elsewhere")
    if dest.exists() and not dest.is_dir():
        raise BadOption(f"DEST_DIR {dest} exists and is not a folder")
    with _only_restore(dest) as created:
        if (dest / PARTIAL).is_file() and not (dest / PARTIAL).is_symlink():
            _start_over(dest, manifest)  # an earlier restore, killed part-way
        elif any(dest.iterdir()):
            raise BadOption(
                f"DEST_DIR {dest} is not empty: restore-backup only writes into an empty or "
                "new folder"
            )
        result = RestoreResult(dest)
        try:
            _write_mark(dest, src, manifest)
            for entry in manifest.files:
                _restore_file(src, dest, entry)
                result.bytes += entry.size
            for name, mode in manifest.exposed.items():  # it may have leaked: refused still
                result.exposed[name] = FILE_MODE | (mode & NOT_PRIVATE)
                os.chmod(dest / name, result.exposed[name])
            nothing = links_to_nothing((e.path for e in manifest.files), manifest.links)
            for name, target in manifest.links.items():
                if name in nothing:
                    result.links_left_out.append(f"{name} -> {target}")
                    continue
                link = dest / name
                ensure_private_dir(link.parent)
                os.symlink(target, link)
                result.links.append(f"{name} -> {target}")
            for entry in manifest.files:  # read back what was written (hashed as it was read)
                if file_sha256(dest / entry.path) != entry.sha256:
                    raise OSError(
                        errno.EIO,
                        "it reads back differently after restoring (a failing disk?)",
                        str(dest / entry.path),
                    )
            result.files = len(manifest.files)
            _verify_restored(Layout(dest), result)
        except BaseException as exc:
            emptied = _undo(dest, created)
            if isinstance(exc, OSError):  # DEST_DIR full or failing
                where = f" ({exc.filename})" if exc.filename else ""
                raise RestoreError(
                    f"restore failed: {exc.strerror or exc}{where}; "
                    + (
                        "nothing was restored"
                        if emptied
                        else f"what it wrote could not all be removed: {dest} keeps {PARTIAL}, "
                        "run it again"
                    )
                ) from None
            raise
        try:
            (dest / PARTIAL).unlink()
            fsync_dir(dest)
        except OSError as exc:
            raise RestoreError(
                f"every file was restored and verified, but {dest / PARTIAL} cannot be "
                f"removed ({exc.strerror}): remove it by hand"
            ) from None
    result.took = time.monotonic() - started
    return result


def _write_mark(dest: Path, src: Path, manifest: Manifest) -> None:
    """`PARTIAL`, before anything else: the backup, and the manifest this run restores
    (what it may delete when it is run again). Written in place: a run killed while
    writing it leaves a mark all the same (one read as naming no backup)."""
    mark = orjson.dumps({"src": str(src.resolve()), "manifest": manifest.to_json()})
    with os.fdopen(open_private(dest / PARTIAL, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "wb") as f:
        f.write(mark)  # buffered: written whole
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(dest)


@contextlib.contextmanager
def _only_restore(dest: Path) -> Iterator[bool]:
    """DEST_DIR (made if missing), locked against a second restore into it (an flock on
    the folder itself: no file of ours in it); yields whether this run made it."""
    for _attempt in range(3):
        created = not dest.exists()
        ensure_private_dir(dest)
        try:
            fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # another restore failed and removed the folder it made
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RestoreError(
                    f"another persist restore-backup is writing into {dest}: let it finish"
                ) from None
            try:
                ours = os.path.samestat(os.fstat(fd), os.stat(dest))
            except FileNotFoundError:
                ours = False  # as above, while this run waited for the lock
            if ours:
                yield created
                return
        finally:
            os.close(fd)
    raise RestoreError(f"{dest} keeps being removed and made again; nothing was restored")


def _start_over(dest: Path, manifest: Manifest) -> None:
    """Empty DEST_DIR for a new run, after checking it holds only what the unfinished
    one wrote: files of its backup's manifest (of their size: never appended to), its
    symlinks, the temp files of its copies, and what a backup leaves out (caches,
    locks). Anything else (a segment or checkpoint written since, a file that grew) is
    never deleted: the run is refused."""
    manifests = [manifest]
    with contextlib.suppress(ValueError, TypeError, KeyError):
        mark = read_mark(dest)
        if mark is not None and mark.manifest is not None:
            manifests.append(Manifest.from_json(mark.manifest))
    sizes: dict[str, set[int]] = {}
    links: dict[str, set[str]] = {}
    for m in manifests:
        for entry in m.files:
            sizes.setdefault(entry.path, set()).add(entry.size)
        for name, target in m.links.items():
            links.setdefault(name, set()).add(target)
    foreign: list[str] = []
    for top, dirs, files in os.walk(dest):
        for name in sorted([*dirs, *files]):
            path = Path(top, name)
            rel = path.relative_to(dest).as_posix()
            if rel == PARTIAL or left_out_of_backup(rel, secret_keys=True):
                continue
            with contextlib.suppress(OSError):
                if path.is_symlink():
                    if os.readlink(path) in links.get(rel, ()):
                        continue
                elif path.is_dir():
                    continue  # what it holds is looked at
                elif path.is_file() and path.stat().st_size in sizes.get(rel, ()):
                    continue
            foreign.append(rel)
    if foreign:
        named = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if foreign[3:] else "")
        raise RestoreError(
            f"DEST_DIR {dest} holds an unfinished restore ({PARTIAL}) and files that restore "
            f"did not write, or that changed since ({named}): starting over would delete "
            "them; restore into a new folder, or move them out of this one"
        )
    if not _empty(dest):
        raise RestoreError(f"{dest} cannot be emptied to start over; nothing was restored")


def _restore_file(src: Path, dest: Path, entry: Entry) -> None:
    source = src / entry.object
    damaged = f"the backup is damaged: {entry.path} ({source})"
    try:  # never waits on a named pipe put where an object was
        fd, _st = open_regular(source)
    except FileNotFoundError:
        raise BackupDamaged(f"{damaged} is missing; nothing was restored") from None
    except NotRegularFile as exc:
        raise BackupDamaged(f"{damaged} is {exc.strerror}; nothing was restored") from None
    except OSError as exc:
        raise BackupDamaged(f"{damaged} cannot be read ({exc.strerror})") from None
    target = dest / entry.path
    ensure_private_dir(target.parent)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    out = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    hasher = hashlib.sha256()
    try:
        if os.fstat(fd).st_size != entry.size:
            raise BackupDamaged(
                f"{damaged} holds {os.fstat(fd).st_size} bytes, the manifest says {entry.size}; "
                "nothing was restored"
            )
        while data := os.read(fd, _CHUNK):
            hasher.update(data)
            write_all(out, data)
        if hasher.hexdigest() != entry.sha256:
            raise BackupDamaged(
                f"{damaged} does not match its SHA-256 in the manifest; nothing was restored"
            )
        os.fsync(out)
        with contextlib.suppress(OSError, AttributeError):  # the read-back reads the disk
            os.posix_fadvise(out, 0, 0, os.POSIX_FADV_DONTNEED)
    except BaseException:
        os.close(out)
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    os.close(out)
    os.replace(tmp, target)
    fsync_dir(target.parent)


def _undo(dest: Path, created: bool) -> bool:
    """Remove everything a failed restore wrote (DEST_DIR was empty or new), the mark
    last: a folder not emptied keeps it. Returns whether all of it is gone."""
    if created:
        shutil.rmtree(dest, ignore_errors=True)
        return not dest.exists()
    if not _empty(dest):
        return False
    with contextlib.suppress(OSError):
        (dest / PARTIAL).unlink(missing_ok=True)
        fsync_dir(dest)
    return not (dest / PARTIAL).exists()


def _empty(dest: Path) -> bool:
    """Remove everything in DEST_DIR but the mark; whether nothing else is left."""
    try:
        for child in dest.iterdir():
            with contextlib.suppress(OSError):
                if child.name == PARTIAL:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        return [p.name for p in dest.iterdir()] in ([], [PARTIAL])
    except OSError:
        return False


def _verify_restored(layout: Layout, result: RestoreResult) -> None:
    skipped: list[str] = []
    checkpoints = list_checkpoints(layout, skipped)
    result.problems += skipped
    sizes: dict[str, list[int]] = {}
    for cp in checkpoints:
        for entry in cp.segments:
            size = entry.get("size")
            if type(size) is int:
                sizes.setdefault(str(entry.get("name")), []).append(size)
    known: dict[tuple[str, int], str] = {}
    for path in list_segments(layout):
        name = segment_name(segment_number(path.name) or 0)  # as checkpoints name it
        for size, digest in prefix_digests(path, sizes.get(name, [])).items():
            known[(name, size)] = digest
    for cp in checkpoints:
        check = verify_checkpoint(layout, cp, known)
        if check.ok:
            result.checkpoints += 1
        else:
            result.problems.append(f"checkpoint {cp.id}: {check.summary}")
    base = copies_dir(layout)
    with contextlib.suppress(OSError):
        for source in sorted(base.iterdir()):
            for folder in sorted(source.iterdir()):
                try:
                    problems = verify(folder)
                except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
                    problems = [f"{folder}: malformed manifest ({exc})"]
                result.problems += problems
                result.copies += not problems
