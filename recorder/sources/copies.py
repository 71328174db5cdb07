"""Protected copies of agent sessions in our log folder (`sessions/copies/`).

Each file of a session (the transcript, its sub-agent files) is kept as versions of
gzip data, 0600 in 0700 folders. A version grows by appended gzip members holding only
the new bytes, while the original only grows; when the bytes already copied changed (the
file was rewritten: a Gemini legacy document, a Claude tail rewrite), a new version
starts and the old one stays. Every member records its size, line count and SHA-256, so
`verify` re-reads the copy and checks each. The manifest also keeps the listing entry,
so a session the agent deleted stays listed, readable and forkable from the copy.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from recorder.errors import PersistError
from recorder.sources.model import Session, session_from_json, session_to_json
from recorder.store.fsutil import atomic_write, ensure_private_dir, open_private
from recorder.store.jsontext import dumps_names, loads_names
from recorder.store.layout import Layout
from recorder.store.unfinished import refuse_unfinished_restore

CHUNK = 16 << 20  # bytes of a file per gzip member (a deadline is looked at between them)
_ANCHOR = 1 << 16  # bytes hashed at the start and before the end to detect a rewrite
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class CopyError(PersistError):
    """A protected copy cannot be made, found or verified."""


@dataclass
class CopyResult:
    key: str
    copied_bytes: int = 0  # new bytes taken from the originals this time
    new_versions: int = 0  # files rewritten since their last copy, kept as a new version
    files: int = 0
    missing: list[str] = field(default_factory=list)  # originals gone (copy kept as is)
    version: int = 0  # the main file's current version: its number, bytes, lines, digest
    size: int = 0
    lines: int = 0
    digest: str = ""
    left: int = 0  # bytes not copied yet when the deadline came (the next call copies them)
    written: list[tuple[str, int, int]] = field(default_factory=list)  # (file, version, member)


def copies_dir(layout: Layout) -> Path:
    return layout.sessions / "copies"


def session_dir(layout: Layout, key: str) -> Path:
    source, _, sid = key.partition(":")
    return copies_dir(layout) / _SAFE.sub("_", source) / _SAFE.sub("_", sid)


def copy_folder(layout: Layout, session: Session) -> Path:
    """Where `session`'s copy is (or goes): `<source>/<id>`, as it always was, unless
    that folder holds the copy of another Claude session with the same id (its manifest
    says which: another project folder), then `<source>/<id>_<project folder>`. A copy
    stays where it was made when its key changes (an id later found in a second folder),
    and copies made before ids were told apart by folder are still found."""
    plain = session_dir(layout, f"{session.source.value}:{session.id}")
    if not session.folder:
        return plain
    scoped = session_dir(layout, f"{session.source.value}:{session.id}@{session.folder}")
    if scoped.is_dir():
        return scoped
    manifest = load_manifest(plain)
    if manifest is None:
        return scoped if _holds_files(plain) else plain
    try:
        ident = session_from_json(manifest["session"]).ident
    except (KeyError, TypeError, ValueError):
        return scoped
    return plain if ident == session.ident else scoped


def _holds_files(folder: Path) -> bool:
    try:
        return any(folder.iterdir())
    except OSError:
        return False


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_range(path: Path, start: int, end: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(end - start)


def load_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = loads_names((folder / "manifest.json").read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _anchors(path: Path, size: int) -> tuple[str, str]:
    head = _read_range(path, 0, min(size, _ANCHOR))
    tail = _read_range(path, max(0, size - _ANCHOR), size)
    return _sha(head), _sha(tail)


def _copy_file(
    folder: Path,
    name: str,
    source: Path,
    entry: dict[str, Any],
    result: CopyResult,
    deadline: float | None = None,
) -> None:
    """Bring the copy of one file up to date (entry: its manifest part, updated in place),
    a member of at most `CHUNK` bytes at a time (whole lines of a `.jsonl`); past
    `deadline` (time.monotonic()) after the first, what is left waits for the next call."""
    try:
        st = os.stat(source)
    except OSError:
        result.missing.append(str(source))
        return
    if not stat.S_ISREG(st.st_mode):  # a named pipe would block the copy: not a file
        result.missing.append(str(source))
        return
    versions: list[dict[str, Any]] = entry.setdefault("versions", [])
    current = versions[-1] if versions else None
    size = st.st_size
    start = 0
    if current is not None:
        covered = int(current["size"])
        same = (
            size >= covered
            and covered > 0
            and _anchors(source, covered) == (current["head_sha"], current["anchor_sha"])
        )
        if same and size == covered:
            return
        if same:
            start = covered
        else:
            current = None  # rewritten (or shrunk): a new version, the old one kept
    jsonl = source.suffix == ".jsonl"
    while start < size:
        if deadline is not None and result.written and time.monotonic() >= deadline:
            result.left += size - start
            return
        data = _read_range(source, start, min(size, start + CHUNK))
        if start + len(data) < size and jsonl and b"\n" not in data:
            data = _read_range(source, start, size)  # one line longer than a chunk
        if jsonl and not data.endswith(b"\n"):
            # a line being written (or cut by the chunk): copied once it is whole
            data = data[: data.rfind(b"\n") + 1]
            if not data:
                return
        current = _append_member(folder, name, source, entry, current, start, data, result)
        start += len(data)


def _append_member(
    folder: Path,
    name: str,
    source: Path,
    entry: dict[str, Any],
    current: dict[str, Any] | None,
    start: int,
    data: bytes,
    result: CopyResult,
) -> dict[str, Any]:
    """`data` (the source's bytes from `start`) as one more gzip member of the current
    version (a new version when `current` is None); that version."""
    versions: list[dict[str, Any]] = entry.setdefault("versions", [])
    end = start + len(data)
    if current is None:
        n = len(versions) + 1
        current = {
            "n": n,
            "file": f"{_SAFE.sub('_', name)}.v{n}.gz",
            "created": time.time(),
            "size": 0,
            "lines": 0,
            "members": [],
        }
        versions.append(current)
        if n > 1:  # the file was rewritten since its last copy (a first copy is not one)
            result.new_versions += 1
    target = folder / str(current["file"])
    member = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: a gzip member
    blob = member.compress(data) + member.flush()
    fd = open_private(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        offset = os.fstat(fd).st_size
        os.write(fd, blob)
        os.fsync(fd)
    finally:
        os.close(fd)
    lines = data.count(b"\n")
    current["members"].append(
        {
            "offset": offset,
            "length": len(blob),
            "size": len(data),
            "lines": lines,
            "sha256": _sha(data),
        }
    )
    current["size"] = end
    current["lines"] = int(current["lines"]) + lines
    current["updated"] = time.time()
    current["head_sha"], current["anchor_sha"] = _anchors(source, end)
    current["digest"] = _sha("".join(m["sha256"] + "\n" for m in current["members"]).encode())
    if not any(w[0] == name for w in result.written):
        result.files += 1
    result.copied_bytes += len(data)
    result.written.append((name, int(current["n"]), len(current["members"]) - 1))
    return current


def protect(layout: Layout, session: Session, deadline: float | None = None) -> CopyResult:
    """Copy what is new of a session's files; returns what was done. Past `deadline`
    (time.monotonic()) it stops between members, at least one copied (`left`: the
    bytes that wait for the next call, which goes on from there)."""
    refuse_unfinished_restore(layout.root)
    folder = copy_folder(layout, session)
    fresh = not folder.exists()
    ensure_private_dir(folder)
    try:
        return _protect(folder, session, deadline)
    except BaseException:
        if fresh:  # a first copy that failed (an unreadable file) leaves no folder behind
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _protect(folder: Path, session: Session, deadline: float | None = None) -> CopyResult:
    manifest = load_manifest(folder) or {"v": 1, "key": session.key, "files": {}}
    result = CopyResult(session.key)
    files = manifest.setdefault("files", {})
    paths = [session.path, *session.extra_paths]
    for i, path in enumerate(paths):
        name = "main" if i == 0 else f"extra-{path.name}"
        entry = files.setdefault(name, {"original": str(path)})
        entry["original"] = str(path)
        _copy_file(folder, name, path, entry, result, deadline)
    main = (files.get("main") or {}).get("versions") or []
    if main:
        last = main[-1]
        result.version, result.size, result.lines = last["n"], last["size"], last["lines"]
        result.digest = str(last.get("digest") or "")
    if session.path.exists():
        manifest["session"] = session_to_json(session)
        manifest["deleted"] = None
    elif manifest.get("session") is not None and not manifest.get("deleted"):
        manifest["deleted"] = time.time()
    manifest.setdefault("session", session_to_json(session))
    manifest["updated"] = time.time()
    # a name that is not UTF-8 (a session file's, a folder's) is kept as it is
    atomic_write(folder / "manifest.json", dumps_names(manifest, option=orjson.OPT_INDENT_2))
    return result


def read_copy(folder: Path, name: str = "main", version: int | None = None) -> bytes:
    """The bytes a version of a copied file holds, each member checked."""
    manifest = load_manifest(folder)
    if manifest is None:
        raise CopyError(f"{folder} holds no readable copy manifest")
    entry = (manifest.get("files") or {}).get(name)
    if not entry or not entry.get("versions"):
        raise CopyError(f"the copy in {folder} has no file {name!r}")
    versions = entry["versions"]
    chosen = (
        versions[-1] if version is None else next((v for v in versions if v["n"] == version), None)
    )
    if chosen is None:
        raise CopyError(f"the copy in {folder} has no version {version} of {name!r}")
    try:
        blob = (folder / str(chosen["file"])).read_bytes()
    except OSError as exc:
        raise CopyError(f"{folder / str(chosen['file'])} cannot be read ({exc.strerror})") from None
    parts = []
    for i, m in enumerate(chosen["members"]):
        raw = blob[m["offset"] : m["offset"] + m["length"]]
        try:
            data = zlib.decompress(raw, 31)
        except zlib.error:
            raise CopyError(f"{chosen['file']} member {i} is damaged (not gzip data)") from None
        if len(data) != m["size"] or _sha(data) != m["sha256"] or data.count(b"\n") != m["lines"]:
            raise CopyError(f"{chosen['file']} member {i} does not match its recorded SHA-256")
        parts.append(data)
    return b"".join(parts)


@dataclass
class ProtectedSession:
    """A session as our copy knows it."""

    session: Session
    folder: Path
    deleted: float | None  # when we noticed the agent deleted the original
    versions: int
    size: int
    lines: int
    updated: float


def list_copies(layout: Layout) -> list[ProtectedSession]:
    found: list[ProtectedSession] = []
    base = copies_dir(layout)
    try:
        sources = sorted(base.iterdir())
    except OSError:
        return found
    for source in sources:
        try:
            folders = sorted(source.iterdir())
        except OSError:
            continue
        for folder in folders:
            m = load_manifest(folder)
            if m is None:
                continue
            try:
                session = session_from_json(m["session"])
                main = m["files"]["main"]["versions"]
            except (KeyError, TypeError, ValueError):
                continue
            deleted = m.get("deleted")
            if not deleted and not session.path.exists():
                deleted = -1.0  # gone, not noticed by a protect run yet
            found.append(
                ProtectedSession(
                    session,
                    folder,
                    float(deleted) if deleted else None,
                    len(main),
                    int(main[-1]["size"]),
                    int(main[-1]["lines"]),
                    float(m.get("updated") or 0.0),
                )
            )
    return found


def restore_to(folder: Path, target_dir: Path, name: str = "main") -> Path:
    """Write a copied file back out (for reading or forking a deleted session): the
    file keeps its original name in `target_dir`."""
    manifest = load_manifest(folder) or {}
    original = Path(
        str(((manifest.get("files") or {}).get(name) or {}).get("original") or "session.jsonl")
    )
    data = read_copy(folder, name)
    ensure_private_dir(target_dir)
    out = target_dir / original.name
    fd = open_private(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return out


def verify_written(folder: Path, result: CopyResult) -> list[str]:
    """Problems found re-reading from disk only the members `result` wrote ([] = intact):
    what `verify` finds in them, at the cost of what was copied, not of the whole copy."""
    manifest = load_manifest(folder)
    if manifest is None:
        return [f"{folder}: no readable manifest"]
    problems = []
    files = manifest.get("files") or {}
    for name, n, i in result.written:
        version = next(v for v in files[name]["versions"] if v["n"] == n)
        m = version["members"][i]
        try:
            with open(folder / str(version["file"]), "rb") as f:
                f.seek(m["offset"])
                data = zlib.decompress(f.read(m["length"]), 31)
        except (OSError, zlib.error) as exc:
            problems.append(f"{version['file']} member {i} cannot be read back ({exc})")
            continue
        if len(data) != m["size"] or _sha(data) != m["sha256"] or data.count(b"\n") != m["lines"]:
            problems.append(f"{version['file']} member {i} does not match its recorded SHA-256")
    return problems


def verify(folder: Path) -> list[str]:
    """Problems found re-reading every version of every file of a copy ([] = intact)."""
    manifest = load_manifest(folder)
    if manifest is None:
        return [f"{folder}: no readable manifest"]
    problems = []
    for name, entry in (manifest.get("files") or {}).items():
        for v in entry.get("versions") or ():
            try:
                data = read_copy(folder, name, v["n"])
            except CopyError as exc:
                problems.append(str(exc))
                continue
            if len(data) != v["size"] or data.count(b"\n") != v["lines"]:
                problems.append(f"{v['file']}: size or line count differs from the manifest")
    return problems
