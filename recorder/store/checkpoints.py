"""Checkpoints: small JSON files that name a verifiable point in the journal.

A checkpoint's digest is SHA-256 over one line per segment up to its point
("name size sha256-of-those-bytes"), so a reader can verify the whole journal
before it and say which segment was damaged.

Closed segments are named once, not again in every later checkpoint: a checkpoint
may say that its first N segment entries are those of an earlier checkpoint (its
`base`, a chain at most `MAX_BASE_DEPTH` long) and list only the entries after them.
`list_checkpoints` joins the chain, so every reader sees the whole list; a base
that is missing or does not fit is a problem `verify_checkpoint` reports. Files
written before (every entry listed) read as they always did.

Over 400 lines: the file's two forms, their strict reading and the chain between
checkpoints belong together.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import time
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import orjson

from recorder.errors import CheckpointError
from recorder.store.fsutil import atomic_write, create_new, ensure_private_dir, read_regular
from recorder.store.jsontext import dumps_names, loads_names
from recorder.store.layout import (
    COMPRESSED_SUFFIX,
    Layout,
    find_segment,
    is_compressed,
    list_segments,
    segment_name,
    segment_number,
)
from recorder.store.pruned import pruned_by_number, unexplained_holes
from recorder.store.records import SCHEMA_VERSION
from recorder.store.secrets import maybe_secret, redacted_text
from recorder.store.segfile import (
    CompressedSegment,
    SegmentDamaged,
    not_a_file_at,
    open_segment,
    segment_size,
)
from recorder.store.status import CheckpointRef

MAX_LABEL = 200
_SLUG_RE = re.compile(r"[^a-z0-9]+")
_HASH_CHUNK = 1 << 20
MAX_BASE_DEPTH = 16  # checkpoints in a chain of bases before one lists every segment again


def sanitize_label(label: str) -> str:
    """Printable, single-line, bounded: a label is data, never a path or escape. A
    secret typed into it (or in the session title a monitor's label names) is
    `[REDACTED:kind]`, before the cut (a cut key leaves a fragment no scan knows):
    labels are shown everywhere and name the checkpoint's file."""
    label = redacted_text(label)
    cleaned = "".join(
        " " if unicodedata.category(ch)[0] in "CZ" and ch != " " else ch for ch in label
    )
    return " ".join(cleaned.split())[:MAX_LABEL]


def sanitize_participants(participants: dict[str, int]) -> dict[str, int]:
    """Counts per sender (or topic) with a secret in a name as `[REDACTED:kind]`, and
    the names that then read alike counted as one: they are shown (the TUI, a
    hand-back) as senders are wherever a message is. One prefilter over all names."""
    if not maybe_secret("\n".join(participants).encode("utf-8", "surrogatepass")):
        return dict(participants)
    shown: dict[str, int] = {}
    for name, count in participants.items():
        key = redacted_text(name)
        shown[key] = shown.get(key, 0) + count
    return shown


def slugify(label: str) -> str:
    ascii_label = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()
    return _SLUG_RE.sub("-", ascii_label.lower()).strip("-")[:40]


@dataclass(frozen=True)
class SessionRef:
    """What a checkpoint of another agent's session names: our protected copy of it, up
    to `size` bytes of its transcript (see `recorder.sources.copies`)."""

    key: str  # "<source>:<session id>"
    path: str  # the agent's own file
    copy_version: int
    size: int
    lines: int
    digest: str  # of the copy's members (`recorder.sources.copies`)
    messages: int
    files_modified: list[str] = field(default_factory=list)
    context_tokens: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Any) -> SessionRef:
        data = _obj(data, "session")
        files = data.get("files_modified") or []
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise ValueError("session.files_modified is not a list of paths")
        return cls(
            key=_typed(data, "key", str, "session."),
            path=_typed(data, "path", str, "session."),
            copy_version=_typed(data, "copy_version", int, "session."),
            size=_typed(data, "size", int, "session."),
            lines=_typed(data, "lines", int, "session."),
            digest=_typed(data, "digest", str, "session."),
            messages=_typed(data, "messages", int, "session."),
            files_modified=list(files),
            context_tokens=_typed(data, "context_tokens", int, "session.", default=0) or 0,
        )


@dataclass(frozen=True)
class Checkpoint:
    id: str
    label: str
    reason: str
    created: float
    segment: int
    offset: int
    seq: int
    messages: int
    digest: str
    segments: list[dict[str, Any]] = field(default_factory=list)
    participants: dict[str, int] = field(default_factory=dict)
    first_ts: float | None = None
    last_ts: float | None = None
    path: Path | None = None
    session: SessionRef | None = None  # a checkpoint of an agent session (no journal range)
    base: str | None = None  # id of the checkpoint whose first `base_count` entries we share
    base_count: int = 0
    depth: int = 0  # bases in the chain behind this one
    base_problem: str | None = None  # the base could not be joined (see `list_checkpoints`)

    def to_json(self) -> dict[str, Any]:
        extra = {"session": self.session.to_json()} if self.session else {}
        digest: dict[str, Any] = {
            "algorithm": "sha256",
            "value": self.digest,
            "segments": self.segments[self.base_count :] if self.base else self.segments,
        }
        if self.base:
            digest["base"] = {"id": self.base, "segments": self.base_count, "depth": self.depth}
        return {
            "v": SCHEMA_VERSION,
            "id": self.id,
            "label": self.label,
            "reason": self.reason,
            "created": self.created,
            "position": {
                "segment": segment_name(self.segment),
                "offset": self.offset,
                "seq": self.seq,
            },
            "messages": self.messages,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "participants": self.participants,
            "digest": digest,
            **extra,
        }

    @classmethod
    def from_json(cls, data: Any, path: Path | None = None) -> Checkpoint:
        """Raises ValueError naming the first field that is missing or wrongly typed."""
        data = _obj(data, "the checkpoint")
        pos = _obj(data.get("position"), "position")
        digest = _obj(data.get("digest"), "digest")
        seg_name = _typed(pos, "segment", str, "position.")
        segment = segment_number(seg_name)
        if segment is None:
            raise ValueError(f"position.segment {seg_name!r} is not a segment name")
        entries = digest.get("segments") or []
        if not isinstance(entries, list) or not all(
            isinstance(e, dict)
            and isinstance(e.get("name"), str)
            and _is_int(e.get("size"))
            and isinstance(e.get("sha256"), str)
            for e in entries
        ):
            raise ValueError("digest.segments is not a list of {name, size, sha256}")
        base = digest.get("base")
        if base is not None:
            base = _obj(base, "digest.base")
            _typed(base, "id", str, "digest.base.")
            for name in ("segments", "depth"):
                if not _is_int(base.get(name)) or base[name] < 0:
                    raise ValueError(f"digest.base.{name} is not a count")
        participants = data.get("participants") or {}
        if not isinstance(participants, dict) or not all(_is_int(v) for v in participants.values()):
            raise ValueError("participants is not an object of counts")
        for name in ("first_ts", "last_ts"):
            if data.get(name) is not None:
                _typed(data, name, float)
        for name in ("offset", "seq"):
            if _is_int(pos.get(name)) and pos[name] < 0:
                raise ValueError(f"position.{name} is negative")
        return cls(
            id=_typed(data, "id", str),
            # as every label is made (a file written before labels were redacted, on
            # 2026-12-04, or by hand, may hold a key or terminal escapes)
            label=sanitize_label(str(_typed(data, "label", str, default="") or "")),
            reason=str(_typed(data, "reason", str, default="") or ""),
            created=float(_typed(data, "created", float)),
            segment=segment,
            offset=_typed(pos, "offset", int, "position."),
            seq=_typed(pos, "seq", int, "position."),
            messages=_typed(data, "messages", int, default=0) or 0,
            digest=_typed(digest, "value", str, "digest."),
            segments=list(entries),
            # as written since 2026-12-06 (earlier files may name a sender `AKIA...`)
            participants=sanitize_participants(participants),
            first_ts=data.get("first_ts"),
            last_ts=data.get("last_ts"),
            path=path,
            session=None if data.get("session") is None else SessionRef.from_json(data["session"]),
            base=base["id"] if base else None,
            base_count=base["segments"] if base else 0,
            depth=base["depth"] if base else 0,
            base_problem="its base checkpoint was not joined" if base else None,
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not a JSON object")
    return value


def _typed(data: dict[str, Any], name: str, kind: type, prefix: str = "", **kw: Any) -> Any:
    """`data[name]` if it has type `kind` (int: not bool; float: any number), else
    ValueError; `default=` makes a missing or null field take that value."""
    value = data.get(name)
    if value is None and "default" in kw:
        return kw["default"]
    ok = (
        _is_int(value)
        if kind is int
        else (_is_int(value) or isinstance(value, float))
        if kind is float
        else isinstance(value, kind)
    )
    if not ok:
        raise ValueError(f"{prefix}{name} is {'missing' if value is None else 'wrongly typed'}")
    return value


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...
    def copy(self) -> _Hasher: ...


def _hash_file(
    path: Path, length: int, hasher: _Hasher | None = None, start: int = 0, fd: int | None = None
) -> _Hasher:
    """Hash the uncompressed bytes `start` to `length` of a segment, plain or compressed
    (ValueError if it is shorter, `SegmentDamaged` if a compressed frame is damaged);
    `fd`: the file `path` named, held open by a reader (`open_segment`)."""
    hasher = hasher or hashlib.sha256()
    with open_segment(path, fd) as seg:
        if seg.size < length:
            raise ValueError(f"{path.name} is shorter than {length} bytes")
        for chunk in seg.chunks(start, length):
            hasher.update(chunk)
    return hasher


def segment_digest(path: Path, length: int, fd: int | None = None) -> str:
    """SHA-256 of the first `length` uncompressed bytes of `path` (ValueError if it is
    shorter, `SegmentDamaged` if it is compressed and damaged); `fd`: the file `path`
    named, held open by a reader, read wherever it is now (pruned into the trash)."""
    return _hash_file(path, length, fd=fd).hexdigest()


def prefix_digests(path: Path, sizes: list[int]) -> dict[int, str]:
    """SHA-256 of the first `size` bytes of `path` for each of `sizes`, in one read of
    the file (for checking many checkpoints at once); a size beyond the file's end is
    left out of the result."""
    found: dict[int, str] = {}
    hasher: _Hasher | None = None
    done = 0
    for size in sorted(set(sizes)):
        try:
            hasher = _hash_file(path, size, hasher, done)
        except ValueError:
            break
        done = size
        found[size] = hasher.hexdigest()
    return found


def combine(segments: list[dict[str, Any]]) -> str:
    lines = "".join(f"{s['name']} {s['size']} {s['sha256']}\n" for s in segments)
    return hashlib.sha256(lines.encode()).hexdigest()


class DigestCache:
    """Segment digests, reused across checkpoints.

    Closed segments are hashed once (and remembered in `metadata_index/`); the
    active one is hashed incrementally from where the previous checkpoint stopped.
    """

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._prefix: tuple[str, int, Any] | None = None
        self.warnings: list[str] = []  # caches found wrong (ignored and rewritten)

    def _cached(self, cache: Path, st: os.stat_result) -> str | None:
        """The cached digest if the cache is well formed and describes this file as it
        is; a cache that is not (wrong types, not JSON) is noted in `warnings`."""
        try:
            data = orjson.loads(read_regular(cache)[0])
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            why = (exc.strerror if isinstance(exc, OSError) else None) or exc
            self.warnings.append(f"{self.layout.index.name}/{cache.name} unreadable ({why})")
            return None
        if not (
            isinstance(data, dict)
            and all(_is_int(data.get(k)) for k in ("size", "ino", "mtime_ns"))
            and isinstance(data.get("sha256"), str)
            and re.fullmatch(r"[0-9a-f]{64}", data["sha256"])
        ):
            self.warnings.append(
                f"{self.layout.index.name}/{cache.name} is malformed; ignored and rewritten"
            )
            return None
        if (data["size"], data["ino"], data["mtime_ns"]) != (st.st_size, st.st_ino, st.st_mtime_ns):
            return None  # an older version of the segment: hashed again
        return str(data["sha256"])

    def cached_digest(self, path: Path, st: os.stat_result) -> str | None:
        """The digest cached for a closed segment, if the cache describes the file as
        `st` says it is now (size, inode, mtime); None otherwise. Never hashes. A
        compressed segment's is the one in its trailer."""
        if is_compressed(path):
            try:
                with CompressedSegment(path) as seg:
                    return seg.sha256
            except (OSError, SegmentDamaged):
                return None
        return self._cached(self._closed_cache(path), st)

    def _closed_cache(self, path: Path) -> Path:
        return self.layout.index / f"{path.name}.sha256"

    def segment(self, path: Path, length: int, closed: bool) -> str:
        if not is_compressed(path) and closed and not path.exists():
            path = path.with_name(path.name + COMPRESSED_SUFFIX)  # compressed since listed
        if is_compressed(path):
            # closed, and verified against the plain bytes when it was compressed: its
            # trailer holds their digest (a read-back hashes the frames themselves)
            with CompressedSegment(path) as seg:
                if length == seg.size:
                    return seg.sha256
            return _hash_file(path, length).hexdigest()
        st = path.stat()
        if closed:
            cache = self._closed_cache(path)
            cached = self._cached(cache, st)
            if cached is not None:
                return cached
            digest = _hash_file(path, st.st_size).hexdigest()
            ensure_private_dir(self.layout.index)
            record = {
                "size": st.st_size,
                "ino": st.st_ino,
                "mtime_ns": st.st_mtime_ns,
                "sha256": digest,
            }
            atomic_write(cache, orjson.dumps(record), durable=False)
            return digest
        if self._prefix and self._prefix[0] == path.name and self._prefix[1] <= length:
            hasher = _hash_file(path, length, self._prefix[2].copy(), self._prefix[1])
        else:
            hasher = _hash_file(path, length)
        self._prefix = (path.name, length, hasher.copy())
        return hasher.hexdigest()

    def up_to(self, segment: int, offset: int) -> tuple[str, list[dict[str, Any]]]:
        """The digest of the journal up to `offset` in `segment`, and its entries.

        SegmentMissing when a segment up to there is gone and retention did not prune
        it (moved away by hand): a digest that leaves it out would verify whatever is
        put back in its place."""
        paths = [p for p in list_segments(self.layout) if (segment_number(p.name) or 0) <= segment]
        present = {segment_number(p.name) or 0 for p in paths}
        if segment and segment not in present:
            # a digest without it would verify whatever the folder holds
            raise SegmentMissing(
                segment_name(segment), "the segment the checkpoint ends in is missing"
            )
        missing = unexplained_holes(self.layout, present, segment)
        if missing:
            names = ", ".join(segment_name(n) for n in missing[:3])
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            them = "it" if len(missing) == 1 else "them"
            raise SegmentMissing(
                segment_name(missing[0]),
                f"{names}{more} {'is' if len(missing) == 1 else 'are'} missing from "
                f"segments/ and retention did not prune {them}: a checkpoint leaving "
                f"{them} out would verify whatever is put back there (put the segment "
                "back or restore it from a backup; if it is gone for good, say so: "
                "persist prune --forget-missing)",
            )
        entries: list[dict[str, Any]] = []
        for path in paths:
            number = segment_number(path.name) or 0
            closed = number < segment
            size = segment_size(path) if closed else offset
            entries.append(
                {
                    "name": segment_name(number),
                    "size": size,
                    "sha256": self.segment(path, size, closed),
                }
            )
        return combine(entries), entries


class SegmentMissing(FileNotFoundError):
    """A checkpoint refused: a segment up to it is missing (not pruned). An OSError, so
    the recorder reports it as any failed checkpoint (its status's last error)."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(errno.ENOENT, why, name)

    def __str__(self) -> str:
        where = "" if str(self.filename) in str(self.strerror) else f" ({self.filename})"
        return f"checkpoint refused: {self.strerror}{where}"


MAX_SAME_ID = 1000  # checkpoints that may share one id (each gets its own suffix)


def checkpoint_id(created: float, seq: int, label: str) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(created))
    slug = slugify(label)
    return f"{stamp}-{seq:09d}" + (f"-{slug}" if slug else "")


def write_checkpoint(
    layout: Layout,
    *,
    segment: int,
    offset: int,
    seq: int,
    messages: int,
    label: str,
    reason: str,
    digests: DigestCache | None = None,
    participants: dict[str, int] | None = None,
    first_ts: float | None = None,
    last_ts: float | None = None,
    created: float | None = None,
    session: SessionRef | None = None,
    base: Checkpoint | None = None,
) -> Checkpoint:
    """Compute the digest and write the checkpoint file atomically; the closed
    segments it shares with `base` (an earlier checkpoint) are named by reference."""
    created = time.time() if created is None else created
    label = sanitize_label(label)
    digest, entries = (digests or DigestCache(layout)).up_to(segment, offset)
    shared = _shared_closed(base, entries)
    cp = Checkpoint(
        id=checkpoint_id(created, seq, label),
        label=label,
        reason=reason,
        created=created,
        segment=segment,
        offset=offset,
        seq=seq,
        messages=messages,
        digest=digest,
        segments=entries,
        participants=sanitize_participants(participants or {}),
        first_ts=first_ts,
        last_ts=last_ts,
        session=session,
        base=base.id if shared and base is not None else None,
        base_count=shared,
        depth=base.depth + 1 if shared and base is not None else 0,
    )
    ensure_private_dir(layout.checkpoints)
    # Two checkpoints can get the same id (the same second, position and label: a
    # session checkpointed twice within a second, two writers racing): the later one
    # takes the next free `-2`, `-3`... instead of replacing the earlier one's file.
    first = cp.id
    for n in range(1, MAX_SAME_ID + 1):
        if n > 1:
            cp = replace(cp, id=f"{first}-{n}")
        path = layout.checkpoints / f"{cp.id}.json"
        # a session's file name that is not UTF-8 is kept as it is (`dumps_names`)
        if create_new(path, dumps_names(cp.to_json(), option=orjson.OPT_INDENT_2)):
            return Checkpoint(**{**cp.__dict__, "path": path})
    raise CheckpointError(f"{MAX_SAME_ID} checkpoints already have the id {first}")


def _shared_closed(base: Checkpoint | None, entries: list[dict[str, Any]]) -> int:
    """How many leading entries can be named by reference to `base`: its closed
    segments, as it listed them, when ours are the same (0: list them all)."""
    if base is None or base.base_problem or base.depth >= MAX_BASE_DEPTH:
        return 0
    shared = 0
    for ours, theirs in zip(entries, base.segments, strict=False):
        if ours != theirs or segment_number(str(theirs["name"])) in (None, base.segment):
            break
        shared += 1
    return shared


def _join_bases(found: list[Checkpoint]) -> list[Checkpoint]:
    """Every checkpoint with its whole segment list (those that name a base joined
    to it), or with `base_problem` saying why it could not be."""
    by_id = {cp.id: cp for cp in found}
    done: dict[str, Checkpoint] = {}

    def join(cp: Checkpoint, seen: frozenset[str]) -> Checkpoint:
        if cp.id in done:
            return done[cp.id]
        result = cp
        if cp.base is not None:
            base = by_id.get(cp.base)
            problem = None
            if base is None:
                problem = f"its base checkpoint {cp.base} is missing"
            elif cp.base in seen:
                problem = f"its base checkpoint {cp.base} is part of a loop"
            else:
                whole = join(base, seen | {cp.id})
                if whole.base_problem:
                    problem = f"its base checkpoint {whole.id}: {whole.base_problem}"
                elif len(whole.segments) < cp.base_count:
                    problem = f"its base checkpoint {whole.id} lists too few segments"
                else:
                    segments = whole.segments[: cp.base_count] + cp.segments
                    result = replace(cp, segments=segments, base_problem=None)
            if problem is not None:
                result = replace(cp, base_problem=problem)
        done[cp.id] = result
        return result

    return [join(cp, frozenset()) for cp in found]


def list_checkpoints(
    layout: Layout, skipped: list[str] | None = None, *, sessions: bool = False
) -> list[Checkpoint]:
    """Valid checkpoints, newest first. A file that cannot be read as one is left out
    and, if `skipped` is given, named there with the reason (for the caller to warn).
    Checkpoints of agent sessions (`session` set: no journal range) only with `sessions`;
    then they are all there is, journal checkpoints left out."""
    journal, of_sessions = journal_and_session_checkpoints(layout, skipped)
    return of_sessions if sessions else journal


def journal_and_session_checkpoints(
    layout: Layout, skipped: list[str] | None = None
) -> tuple[list[Checkpoint], list[Checkpoint]]:
    """`list_checkpoints` without and with `sessions`, every file read once."""
    journal: list[Checkpoint] = []
    of_sessions: list[Checkpoint] = []
    try:
        paths = sorted(p for p in layout.checkpoints.iterdir() if p.suffix == ".json")
    except FileNotFoundError:
        return [], []
    for path in paths:
        cp = _load(path, skipped)
        if cp is not None:
            (journal if cp.session is None else of_sessions).append(cp)
    out = []
    for found in (journal, of_sessions):
        found = _join_bases(found)
        found.sort(key=lambda c: (c.seq, c.created), reverse=True)
        out.append(found)
    return out[0], out[1]


def load_checkpoint(path: Path, skipped: list[str] | None = None) -> Checkpoint | None:
    """The checkpoint in one file, its base not joined (see `list_checkpoints`); None
    when it is none, and why in `skipped`."""
    return _load(path, skipped)


def _load(path: Path, skipped: list[str] | None) -> Checkpoint | None:
    """The checkpoint in `path`; None when it is none, and why in `skipped`."""
    try:
        return Checkpoint.from_json(loads_names(read_regular(path)[0]), path)
    except orjson.JSONDecodeError:
        _skip(skipped, path, "not JSON")
    except OSError as exc:  # not_regular says it whole
        why = exc.strerror or str(exc)
        _skip(skipped, path, why if why.endswith("regular file") else f"cannot be read ({why})")
    except ValueError as exc:
        _skip(skipped, path, str(exc))
    return None


_ID_SEQ = re.compile(r"^\d{8}T\d{6}Z-(\d{9,})")  # `checkpoint_id`: the stamp, then the seq


def newest_checkpoint(layout: Layout, skipped: list[str] | None = None) -> Checkpoint | None:
    """`list_checkpoints(layout)[0]` (None when there is none), reading only the files
    that can be it, and its bases: the seq is in each file's name (`checkpoint_id`), so
    the recorder's start does not grow with the number of checkpoints (one a minute for
    a year is half a million). A name we did not write, or a file whose content does not
    match its name, and every checkpoint is read after all. `skipped`: the files read
    that are no valid checkpoint, as `list_checkpoints` names them."""
    return next(newest_checkpoints(layout, skipped=skipped), None)


def newest_checkpoints(
    layout: Layout, at_most: int | None = None, skipped: list[str] | None = None
) -> Iterator[Checkpoint]:
    """`list_checkpoints(layout)`, newest first, those with a seq above `at_most` left
    out, each file read only when the one before it was taken and passed over (by the
    seq in its name, as `newest_checkpoint`): the recorder's start looks back for one
    that a power cut left in the journal without reading every checkpoint."""
    try:
        names = [p.name for p in layout.checkpoints.iterdir() if p.suffix == ".json"]
    except FileNotFoundError:
        return
    by_seq: dict[int, list[str]] = {}
    given: set[str] = set()
    every = False  # a name we did not write, or a file not matching its name
    for name in names:
        m = _ID_SEQ.match(name)
        if m is None:
            every = True
            break
        by_seq.setdefault(int(m.group(1)), []).append(name)
    for seq in [] if every else sorted(by_seq, reverse=True):
        if at_most is not None and seq > at_most:
            continue
        found = []
        for name in by_seq[seq]:
            cp = _load(layout.checkpoints / name, skipped)
            if cp is not None and cp.seq != seq:
                every = True
                break
            if cp is not None and cp.session is None:
                found.append(cp)
        if every:
            break
        for cp in sorted(found, key=lambda c: c.created, reverse=True):
            given.add(cp.id)
            yield _join_bases(_with_bases(layout, cp))[0]
    if every:
        again: list[str] = []
        cps = list_checkpoints(layout, again)
        if skipped is not None:
            skipped.extend(w for w in again if w not in skipped)
        for cp in cps:
            if (at_most is None or cp.seq <= at_most) and cp.id not in given:
                yield cp


def last_checkpoint(
    layout: Layout, named: CheckpointRef | None, problems: list[str] | None = None
) -> CheckpointRef | None:
    """The last checkpoint to show: the newest valid one in checkpoints/, what `restore
    latest` takes, or the one status.json names (`named`) when that is as new: `persist
    checkpoint` without a running recorder writes one the status does not know of, and
    status.json (derived) may be gone. Files newer than it that are no valid checkpoint
    (cut short, spoilt), or a `named` one removed since, are said in `problems` (one
    sentence)."""
    why: list[str] = []
    try:
        newest = newest_checkpoint(layout, why)
    except OSError:  # an unreadable folder: what the status says
        return named
    shown = _ref(newest)
    if named is not None and (
        newest is None or (newest.id != named.id and newest.created <= named.created)
    ):
        path = layout.checkpoints / f"{named.id}.json"
        if not os.path.lexists(path):
            why.append(f"checkpoint {named.id} (status.json's last) is no longer in checkpoints/")
        elif _load(path, None) is not None:  # written since newest_checkpoint looked
            shown = named
    if problems is not None and why:
        problems.append(why[0] + (f" (+{len(why) - 1} more)" if len(why) > 1 else ""))
    return shown


def _ref(cp: Checkpoint | None) -> CheckpointRef | None:
    return None if cp is None else CheckpointRef(cp.id, cp.created, cp.label)


def _first(cps: list[Checkpoint]) -> Checkpoint | None:
    return cps[0] if cps else None


def _with_bases(layout: Layout, cp: Checkpoint) -> list[Checkpoint]:
    """`cp` and the chain of bases behind it, as far as they can be read."""
    chain = [cp]
    while chain[-1].base is not None and len(chain) <= MAX_BASE_DEPTH:
        base = _load(layout.checkpoints / f"{chain[-1].base}.json", None)
        if base is None or base.id in {c.id for c in chain}:
            break
        chain.append(base)
    return chain


def _skip(skipped: list[str] | None, path: Path, why: str) -> None:
    if skipped is not None:
        skipped.append(f"{path.parent.name}/{path.name} is not a valid checkpoint ({why}); skipped")


@dataclass(frozen=True)
class Verification:
    ok: bool
    problems: list[str]
    # segments the checkpoint names that retention pruned on purpose: not damage
    pruned: list[str] = field(default_factory=list)
    # segments up to it that its digest does not name (`uncovered_segments`): unverified
    uncovered: list[str] = field(default_factory=list)
    # what its digest does not name but another checkpoint's does, matching (`vouched_by`)
    vouched: list[str] = field(default_factory=list)
    # what stands where a segment it names should be and is no regular file (a folder,
    # a named pipe): not missing, and no command of ours moves it
    not_files: list[Path] = field(default_factory=list)

    @property
    def summary(self) -> str:
        if not self.ok:
            return "; ".join(self.problems)
        notes = ([pruned_summary(self.pruned)] if self.pruned else []) + self.vouched
        return "intact" + (f" ({'; '.join(notes)})" if notes else "")


def pruned_summary(notes: list[str]) -> str:
    """ "seg-000001.jsonl to seg-000004.jsonl pruned on 2026-12-02 (in trash ...)" from the
    per-segment notes ("<name> pruned on ..."), the first and last named."""
    if len(notes) == 1:
        return notes[0]
    first, last = notes[0].split(" ", 1)[0], notes[-1]
    return f"{len(notes)} segments, {first} to {last}"


def uncovered_segments(cp: Checkpoint, pruned: Mapping[int, object]) -> list[int]:
    """The segment numbers from 1 (the journal's first) to the checkpoint's own that its
    digest does not name, those of its bases included (`list_checkpoints` joins them),
    and that are not in `pruned` (`pruned_by_number`: pruned by retention, or removed by
    hand and said so). Every checkpoint we write names each of them: a digest that
    leaves one out vouches for nothing in it. A recorder started before compression
    (2026-12-02) saw no compressed segment, so the checkpoints it took after a `persist
    compact` named only its active one. [] for a checkpoint whose base was not joined
    (its own list alone is short: `base_problem` says so)."""
    if cp.base_problem or cp.session is not None:
        return []
    named = {segment_number(str(e.get("name"))) for e in cp.segments}
    return [n for n in range(1, cp.segment + 1) if n not in named and n not in pruned]


def segment_runs(numbers: list[int], most: int = 4) -> str:
    """'seg-000001.jsonl to seg-000003.jsonl, seg-000007.jsonl': consecutive numbers as
    one run; after `most` runs, how many more segments."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and runs[-1][1] == n - 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    words = [
        segment_name(a) if a == b else f"{segment_name(a)} to {segment_name(b)}"
        for a, b in runs[:most]
    ]
    rest = sum(b - a + 1 for a, b in runs[most:])
    return ", ".join(words) + (f" and {rest} more" if rest else "")


def vouched_by(
    layout: Layout,
    number: int,
    others: list[Checkpoint],
    known: Mapping[tuple[str, int], str] | None = None,
    *,
    hash_it: bool = True,
) -> str | None:
    """The id of a checkpoint among `others` whose digest names segment `number` whole
    (its size now) with the SHA-256 its bytes have now: that checkpoint vouches for it,
    where one whose digest does not name it cannot (a checkpoint taken while the
    segment was in the trash, before a `persist trash restore` put it back: the newest
    checkpoint before the prune names it whole). The digest now: from `known`, else
    hashed (`hash_it`), else only a compressed segment's trailer or the digest cache
    (what a partial restore trusts for the history it does not read). None: none does."""
    name = segment_name(number)
    path = find_segment(layout, name)
    if path is None:
        return None
    try:
        st = path.stat()
        size = segment_size(path)
    except (OSError, ValueError):
        return None
    wanted: dict[str, str] = {}
    for other in others:
        for entry in other.segments:
            if entry.get("name") == name and entry.get("size") == size:
                wanted.setdefault(str(entry.get("sha256")), other.id)
    if not wanted:
        return None
    digest = (known or {}).get((name, size))
    try:
        if digest is None and hash_it:
            digest = segment_digest(path, size)
        elif digest is None:
            digest = DigestCache(layout).cached_digest(path, st)
    except (OSError, ValueError, SegmentDamaged):
        return None
    return wanted.get(digest) if digest is not None else None


def vouched_note(numbers: list[int], by: str) -> str:
    return f"{segment_runs(numbers)}, which its digest does not name, match checkpoint {by}'s"


def uncovered_problem(numbers: list[int]) -> str:
    """The sentence a reader says of the segments a checkpoint's digest does not cover."""
    one = len(numbers) == 1
    return (
        f"its digest does not cover {segment_runs(numbers)}, nor does another "
        f"checkpoint's match {'it' if one else 'them'}: "
        f"{'that segment is' if one else 'those segments are'} unverified (a checkpoint "
        "names each segment up to it but pruned ones; a recorder started before "
        "2026-12-02 left out those `persist compact` compressed under it)"
    )


def verify_checkpoint(
    layout: Layout, cp: Checkpoint, known: dict[tuple[str, int], str] | None = None
) -> Verification:
    """Re-hash the journal up to the checkpoint and compare with its digest. `known`:
    digests already computed, by (segment name, size) (see `prefix_digests`). A segment
    retention pruned (see `store.pruned`) is reported as such, never as damage: its
    entry's own digest stands in for it in the whole-list check. A segment up to it that
    its digest does not name (`uncovered_segments`) fails it: unverified if it is there,
    missing if not (before 2026-12-07 it verified what it named and said nothing of
    the rest), unless another checkpoint's digest names it whole and matches it
    (`vouched_by`)."""
    problems: list[str] = [cp.base_problem] if cp.base_problem else []
    pruned: list[str] = []
    not_files: list[Path] = []
    notes = pruned_by_number(layout)
    uncovered: list[int] = []
    vouched: dict[str, list[int]] = {}
    others: list[Checkpoint] | None = None
    for number in uncovered_segments(cp, notes):
        if find_segment(layout, segment_name(number)) is None:
            problems.append(f"{segment_name(number)} is missing")
            continue
        if others is None:
            others = [c for c in list_checkpoints(layout) if c.id != cp.id]
        by = vouched_by(layout, number, others, known)
        if by is None:
            uncovered.append(number)
        else:
            vouched.setdefault(by, []).append(number)
    if uncovered:
        problems.append(uncovered_problem(uncovered))
    actual: list[dict[str, Any]] = []
    for entry in cp.segments:
        path = None if os.sep in str(entry["name"]) else find_segment(layout, str(entry["name"]))
        if path is None:  # neither plain nor compressed
            note = notes.get(segment_number(str(entry["name"])) or -1)
            if note is not None:
                pruned.append(f"{entry['name']} {note.describe()}")
                actual.append(entry)
                continue
            thing = not_a_file_at(layout.segments, str(entry["name"]))
            if thing is not None:  # a folder, a named pipe: there, and not the segment
                problems.append(
                    f"{entry['name']} cannot be read: segments/{thing[0].name} is {thing[1]}"
                )
                not_files.append(thing[0])
            else:
                problems.append(f"{entry['name']} is missing")
            actual.append({**entry, "sha256": "missing"})
            continue
        try:
            digest = (known or {}).get((str(entry["name"]), int(entry["size"])))
            if digest is None:
                digest = _hash_file(path, int(entry["size"])).hexdigest()
        except (ValueError, SegmentDamaged) as exc:
            problems.append(str(exc))
            digest = "short"
        except OSError as exc:  # replaced since it was looked up (a named pipe never waited on)
            problems.append(f"{entry['name']} cannot be read: {exc.strerror or exc}")
            digest = "short"
        if digest not in (entry["sha256"], "short"):
            problems.append(f"{entry['name']} differs from the checkpoint")
        actual.append({**entry, "sha256": digest})
    if not problems and combine(actual) != cp.digest:
        problems.append("the checkpoint's digest does not match its segment list")
    names = [segment_name(n) for n in uncovered]
    said = [vouched_note(numbers, by) for by, numbers in vouched.items()]
    return Verification(not problems, problems, pruned, names, said, not_files)


# -- choosing checkpoints and ranges ------------------------------------------------------
def resolve_checkpoint(layout: Layout, ref: str, skipped: list[str] | None = None) -> Checkpoint:
    """A checkpoint by id, unique id prefix, exact label, or "latest" (`skipped`: see
    `list_checkpoints`)."""
    if not ref.strip():  # every id starts with "", and unlabelled ones have it as label
        raise CheckpointError(
            "an empty checkpoint name: give its id (or its start), its label, or latest"
        )
    cps = list_checkpoints(layout, skipped)
    if not cps:
        raise CheckpointError(f"no checkpoints in {layout.root}")
    if ref == "latest":
        return cps[0]
    for cp in cps:
        if cp.id == ref:
            return cp
    by_prefix = [cp for cp in cps if cp.id.startswith(ref)]
    if len(by_prefix) == 1:
        return by_prefix[0]
    by_label = [cp for cp in cps if cp.label == ref]
    if by_label:
        return by_label[0]  # newest with that label
    if len(by_prefix) > 1:
        names = ", ".join(cp.id for cp in by_prefix[:5])
        raise CheckpointError(f"{ref!r} matches {len(by_prefix)} checkpoints: {names}")
    raise CheckpointError(f"no checkpoint {ref!r} in {layout.root} (try `persist-tui` to browse)")
