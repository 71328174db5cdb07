"""The manifest of a backup folder (`DEST/manifest.json`), written and read by one class.

A backup folder holds `manifest.json`, `backup.lock` and `objects/<aa>/<sha256>`: each
file of the log folder is stored once under the SHA-256 of its bytes as stored, so a
later backup reuses every object already there, and the manifest of an earlier backup
stays valid until a new manifest replaces it in one rename (objects it names are never
changed). A manifest that is not JSON is a damaged backup's when it begins as ours do
or the folder holds a backup's other files; one of another shape is another program's.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from recorder.errors import PersistError
from recorder.store.fsutil import read_regular
from recorder.store.jsontext import dumps as json_dumps

FORMAT = "agent-persist-backup"
VERSION = 1
MANIFEST = "manifest.json"
OBJECTS = "objects"
LOCK = "backup.lock"  # every backup run holds it; never removed
SHA256 = re.compile(r"\A[0-9a-f]{64}\Z")  # an object's name
OBJECT_DIR = re.compile(r"\A[0-9a-f]{2}\Z")  # objects/<aa>/<sha256>
SECRET_KEY = re.compile(r"\Akeys/.*\.key_secret\Z")  # a CURVE secret key's file
_OPEN_MODE = re.compile(r"\A0[0-7]{3}\Z")
NOT_PRIVATE = 0o077  # a secret key file with a group or other bit: its secret may have leaked
_OPENING = b'{\n  "format": "' + FORMAT.encode() + b'"'  # how every manifest written begins
_SOURCE = re.compile(rb'\n  "source": ("(?:[^"\\\n]|\\.)*"),\n')  # in a torn one


class BackupDamaged(PersistError):
    """A backup whose manifest or files do not match: the message names the file.
    `source`: the log folder a damaged manifest still names, if it can be read."""

    def __init__(self, message: str, source: str | None = None) -> None:
        super().__init__(message)
        self.source = source


class NotABackup(PersistError):
    """The folder given is no backup at all (missing, or without a manifest): a wrong
    argument, not a damaged backup."""


@dataclass(frozen=True)
class Entry:
    """One file: where it goes in the log folder, its bytes as stored, and the source's
    stat when it was copied (a later backup reuses the object without reading the
    file again when size, mtime and inode are the same)."""

    path: str  # relative, with "/" (e.g. "segments/seg-000001.jsonl")
    size: int
    sha256: str
    mtime_ns: int = 0
    ino: int = 0

    @property
    def object(self) -> str:
        return f"{OBJECTS}/{self.sha256[:2]}/{self.sha256}"

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "object": self.object,
            "mtime_ns": self.mtime_ns,
            "ino": self.ino,
        }


@dataclass(frozen=True)
class JournalPosition:
    """The backup holds the journal up to here: every segment before `segment`, and
    `offset` bytes (whole lines) of it; `seq` is the last record's."""

    segment: str
    offset: int
    seq: int | None

    def to_json(self) -> dict[str, Any]:
        return {"segment": self.segment, "offset": self.offset, "seq": self.seq}


@dataclass
class Manifest:
    created: float
    source: str
    position: JournalPosition | None
    files: list[Entry] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # symlink -> its target
    left_out: list[str] = field(default_factory=list)  # what was not copied, and why
    secret_keys: bool = False
    # secret key files open to others when copied (path -> mode): their secret may have
    # leaked, so restore-backup brings them back open, refused as in the log folder
    exposed: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "v": VERSION,
            "created": self.created,
            "source": self.source,
            "position": self.position.to_json() if self.position else None,
            "secret_keys": self.secret_keys,
            "exposed_secret_keys": {path: f"{mode:04o}" for path, mode in self.exposed.items()},
            "left_out": self.left_out,
            "links": self.links,
            "files": [e.to_json() for e in self.files],
        }

    def dumps(self) -> bytes:
        return json_dumps(self.to_json(), option=orjson.OPT_INDENT_2)

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        """The manifest of a backup folder; BackupDamaged naming what is wrong with a
        backup's (torn, damaged), NotABackup when there is none or it is another
        program's (JSON of another shape; not JSON, not begun as ours, in a folder
        without a backup's other files: see `made_by_backup`)."""
        path = folder / MANIFEST
        if not folder.is_dir():  # missing, or a file
            raise NotABackup(f"{folder} is not a folder: give the backup's folder")
        other = f"{folder} is not a backup (its {MANIFEST} is another program's"
        try:
            raw = read_regular(path)[0]  # never waits on a named pipe
        except FileNotFoundError:
            raise NotABackup(f"{folder} is not a backup (no {MANIFEST})") from None
        except OSError as exc:
            if not made_by_backup(folder):
                raise NotABackup(
                    f"{folder} is not a backup ({MANIFEST} cannot be read: {exc.strerror}; "
                    "nothing else there is a backup's)"
                ) from None
            raise BackupDamaged(f"{path} cannot be read ({exc.strerror})") from None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            if not raw.startswith(_OPENING) and not made_by_backup(folder):
                raise NotABackup(f"{other}: not JSON, nor begun as a backup's)") from None
            raise BackupDamaged(
                f"{path} is not JSON (torn or damaged)", _torn_source(raw)
            ) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise NotABackup(f'{other}: no "format": "{FORMAT}")')
        try:
            return cls.from_json(data)
        except (ValueError, TypeError, KeyError) as exc:
            named = data.get("source")
            raise BackupDamaged(
                f"{path}: {exc}", named if isinstance(named, str) else None
            ) from None

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        """Raises ValueError naming the first field that is missing or wrongly typed."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not an {FORMAT} manifest")
        if data.get("v") != VERSION:
            raise ValueError(f"version {data.get('v')!r}, this persist reads {VERSION}")
        files = []
        seen: set[str] = set()
        for k, item in enumerate(_typed(data, "files", list)):
            where = f"files[{k}]"
            if not isinstance(item, dict):
                raise ValueError(f"{where} is not an object")
            entry = Entry(
                _safe_path(_typed(item, "path", str, where), where),
                _count(item, "size", where),
                _typed(item, "sha256", str, where),
                _count(item, "mtime_ns", where),
                _count(item, "ino", where),
            )
            if not SHA256.match(entry.sha256):
                raise ValueError(f"{where}.sha256 is not a SHA-256")
            if entry.path in seen:
                raise ValueError(f"{where}.path {entry.path} is listed twice")
            seen.add(entry.path)
            files.append(entry)
        links = _typed(data, "links", dict)
        for name, target in links.items():
            _safe_path(name, "links")
            if not isinstance(target, str):
                raise ValueError(f"links.{name} is not a string")
            _safe_link(name, target)
            if name in seen:
                raise ValueError(f"links.{name} is also listed in files")
        kinds = {path: "a file" for path in seen} | {name: "a link" for name in links}
        for path in kinds:  # nothing is restored inside a file or a link
            for parent in PurePosixPath(path).parents[:-1]:
                if parent.as_posix() in kinds:
                    raise ValueError(f"{path} lies inside {parent}, {kinds[parent.as_posix()]}")
        pos = data.get("position")
        position = None
        if pos is not None:
            if not isinstance(pos, dict):
                raise ValueError("position is not an object")
            seq = pos.get("seq")
            if seq is not None and type(seq) is not int:
                raise ValueError("position.seq is not an integer")
            position = JournalPosition(
                _typed(pos, "segment", str, "position"), _count(pos, "offset", "position"), seq
            )
        exposed: dict[str, int] = {}
        marked = data.get("exposed_secret_keys", {})  # none before 2026-12-07
        if not isinstance(marked, dict):
            raise ValueError("exposed_secret_keys is not an object")
        for name, mode in marked.items():
            if name not in seen or not SECRET_KEY.match(name):
                raise ValueError(f"exposed_secret_keys.{name} is no secret key listed in files")
            if not isinstance(mode, str) or not _OPEN_MODE.match(mode):
                raise ValueError(f"exposed_secret_keys.{name} is not a mode such as 0644")
            if not int(mode, 8) & NOT_PRIVATE:
                raise ValueError(f"exposed_secret_keys.{name} is {mode}, not open to others")
            exposed[name] = int(mode, 8)
        left_out = _typed(data, "left_out", list)
        created = data.get("created")
        if not isinstance(created, int | float) or isinstance(created, bool):
            raise ValueError("created is not a number")
        return cls(
            float(created),
            _typed(data, "source", str),
            position,
            files,
            dict(links),
            [str(x) for x in left_out],
            data.get("secret_keys") is True,
            exposed,
        )


def _torn_source(raw: bytes) -> str | None:
    """The log folder a torn manifest names, when its "source" line is whole."""
    found = _SOURCE.search(raw[:65536])
    try:
        named = orjson.loads(found.group(1)) if found else None
    except orjson.JSONDecodeError:
        return None
    return named if isinstance(named, str) else None


def made_by_backup(folder: Path) -> bool:
    """Whether `folder` holds what only a backup makes besides its manifest: the
    `backup.lock` every run holds, or an object (`objects/<aa>/<sha256>`)."""
    lock = folder / LOCK
    if lock.is_file() and not lock.is_symlink():
        return True
    with contextlib.suppress(OSError):
        for sub in (folder / OBJECTS).iterdir():
            named = OBJECT_DIR.match(sub.name) and not sub.is_symlink() and sub.is_dir()
            if named and any(SHA256.match(p.name) for p in sub.iterdir()):
                return True
    return False


def _typed(data: dict[str, Any], name: str, kind: type, where: str = "") -> Any:
    value = data.get(name)
    if not isinstance(value, kind):
        raise ValueError(
            f"{where + '.' if where else ''}{name} is missing or not a {kind.__name__}"
        )
    return value


def _count(data: dict[str, Any], name: str, where: str) -> int:
    value = data.get(name)
    if type(value) is not int or value < 0:
        raise ValueError(f"{where}.{name} is not a whole number")
    return value


def _safe_path(value: str, where: str) -> str:
    """A relative path inside the folder: no `..`, not absolute, no empty parts."""
    parts = PurePosixPath(value).parts
    if not parts or value.startswith("/") or any(p in ("..", ".", "") for p in parts):
        raise ValueError(f"{where} names {value!r}, outside the folder")
    if "\x00" in value:
        raise ValueError(f"{where} names a path with a NUL byte")
    return value


def _safe_link(name: str, target: str) -> None:
    """A link's target that stays inside the folder from where the link is: some `..`
    first (no more than the folders the link is in: those are real folders, nothing
    is restored inside a link), then names only, as `persist backup` writes them."""
    parts = PurePosixPath(target).parts
    up = next((k for k, p in enumerate(parts) if p != ".."), len(parts))
    if (
        not parts
        or target.startswith("/")
        or "\x00" in target
        or any(p in ("..", ".", "") for p in parts[up:])
        or up > len(PurePosixPath(name).parent.parts)
    ):
        raise ValueError(f"links.{name} leads to {target!r}, outside the folder")


_MAX_HOPS = 40  # links followed at most for one path, as Linux does (then: a loop)


def links_to_nothing(files: Iterable[str], links: dict[str, str]) -> dict[str, tuple[str, str]]:
    """The links of `links` (name -> relative target) that would lead to nothing once
    `files` and the other links are restored: name -> (the path its target names, where
    following links from there ends). A link to such a link leads to nothing either."""
    held = set(files)
    folders = {p.as_posix() for f in held for p in PurePosixPath(f).parents}
    kept = dict(links)
    gone: dict[str, tuple[str, str]] = {}
    while True:
        within = folders | {p.as_posix() for n in kept for p in PurePosixPath(n).parents}
        for name, target in kept.items():
            start = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            end = _follow(start, kept)
            if end is None or not (end == "." or end in held or end in within):
                gone[name] = (start, end or start)
                del kept[name]
                break  # what leads to it is looked at again
        else:
            return gone


def _follow(path: str, links: dict[str, str]) -> str | None:
    """`path` (in the folder) with the links of `links` on the way followed; None when
    that goes round in a loop or out of the folder."""
    parts = path.split("/")
    hops, k = 0, 0
    while k < len(parts):
        at = "/".join(parts[: k + 1])
        target = links.get(at)
        if target is None:
            k += 1
            continue
        hops += 1
        now = posixpath.normpath(posixpath.join(posixpath.dirname(at), target, *parts[k + 1 :]))
        if hops > _MAX_HOPS or now == ".." or now.startswith("../"):
            return None
        parts, k = now.split("/"), 0
    return "/".join(parts)


def file_sha256(path: Path, *, from_disk: bool = False) -> str:
    """SHA-256 of a whole file, read in large chunks (verifying what was written);
    `from_disk`: its cached pages dropped first, so what is hashed is what the disk holds."""
    with open(path, "rb", buffering=0) as f:
        if from_disk:
            with contextlib.suppress(OSError, AttributeError):
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        return hashlib.file_digest(f, "sha256").hexdigest()
