"""`persist restore-backup SRC DEST_DIR`: a backup back into an empty folder, verified.

Every object is hashed while it is copied and compared with the manifest; the first
that differs (or is missing, or of another size) stops the restore, everything
written is removed, and the error names the file. Once every file is in place,
every restored file is read back from the disk against the manifest, every checkpoint is verified
against the restored journal (one read of each segment for all of them), and every
protected session copy is re-read member by member.

A restore killed part-way (nothing could remove what it wrote) leaves `PARTIAL` in
DEST_DIR: run again, it empties that folder and starts over; any other folder that
is not empty is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recorder.backup.manifest import BackupDamaged, Entry, Manifest, file_sha256
from recorder.errors import BadOption
from recorder.sources.copies import copies_dir, verify
from recorder.store.checkpoints import list_checkpoints, prefix_digests, verify_checkpoint
from recorder.store.fsutil import ensure_private_dir, fsync_dir, open_private
from recorder.store.layout import Layout, list_segments, segment_name, segment_number

_CHUNK = 1 << 20
PARTIAL = ".restore-backup-unfinished"  # in DEST_DIR until the restore is done

__all__ = ["BackupDamaged", "RestoreResult", "restore_backup"]


@dataclass
class RestoreResult:
    dest: Path
    files: int = 0
    bytes: int = 0
    checkpoints: int = 0  # verified against the restored journal
    copies: int = 0  # protected session copies verified
    problems: list[str] = field(default_factory=list)  # checkpoints or copies that do not verify
    took: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "dest": str(self.dest),
            "files": self.files,
            "bytes": self.bytes,
            "checkpoints_verified": self.checkpoints,
            "session_copies_verified": self.copies,
            "problems": self.problems,
            "ok": not self.problems,
            "took_s": round(self.took, 3),
        }


def restore_backup(src: Path, dest: Path) -> RestoreResult:
    started = time.monotonic()
    manifest = Manifest.read(src)
    if dest.resolve() == src.resolve() or src.resolve() in dest.resolve().parents:
        raise BadOption(f"DEST_DIR {dest} is inside the backup {src}: restore it elsewhere")
    if dest.exists():
        if not dest.is_dir():
            raise BadOption(f"DEST_DIR {dest} exists and is not a folder")
        if (dest / PARTIAL).is_file() and not (dest / PARTIAL).is_symlink():
            _undo(dest, created=False)  # an earlier restore, killed part-way: start over
        elif any(dest.iterdir()):
            raise BadOption(
                f"DEST_DIR {dest} is not empty: restore-backup only writes into an empty or "
                "new folder"
            )
    created = not dest.exists()
    ensure_private_dir(dest)
    result = RestoreResult(dest)
    marker = open_private(dest / PARTIAL, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        os.write(
            marker, f"persist restore-backup {src} did not finish here; run it again\n".encode()
        )
        os.fsync(marker)
    finally:
        os.close(marker)
    fsync_dir(dest)
    try:
        for entry in manifest.files:
            _restore_file(src, dest, entry)
            result.bytes += entry.size
        for name, target in manifest.links.items():
            link = dest / name
            ensure_private_dir(link.parent)
            os.symlink(target, link)
        for entry in manifest.files:  # read back what was written
            if file_sha256(dest / entry.path) != entry.sha256:
                raise BackupDamaged(f"{dest / entry.path} reads back differently after restoring")
    except BaseException:
        _undo(dest, created)
        raise
    result.files = len(manifest.files)
    _verify_restored(Layout(dest), result)
    (dest / PARTIAL).unlink()
    fsync_dir(dest)
    result.took = time.monotonic() - started
    return result


def _restore_file(src: Path, dest: Path, entry: Entry) -> None:
    source = src / entry.object
    damaged = f"the backup is damaged: {entry.path} ({source})"
    try:
        fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BackupDamaged(f"{damaged} is missing; nothing was restored") from None
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
            os.write(out, data)
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


def _undo(dest: Path, created: bool) -> None:
    """Remove everything a failed restore wrote (DEST_DIR was empty or new)."""
    if created:
        shutil.rmtree(dest, ignore_errors=True)
        return
    for child in dest.iterdir():
        with contextlib.suppress(OSError):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()


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
