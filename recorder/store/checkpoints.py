"""Checkpoints: small JSON files that name a verifiable point in the journal.

A checkpoint's digest is SHA-256 over one line per segment up to its point
("name size sha256-of-those-bytes"), so a reader can verify the whole journal
before it and say which segment was damaged.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from recorder.errors import CheckpointError
from recorder.store.fsutil import atomic_write, ensure_private_dir
from recorder.store.layout import Layout, list_segments, segment_name, segment_number
from recorder.store.records import SCHEMA_VERSION

MAX_LABEL = 200
_SLUG_RE = re.compile(r"[^a-z0-9]+")
_HASH_CHUNK = 1 << 20


def sanitize_label(label: str) -> str:
    """Printable, single-line, bounded: a label is data, never a path or escape."""
    cleaned = "".join(
        " " if unicodedata.category(ch)[0] in "CZ" and ch != " " else ch for ch in label
    )
    return " ".join(cleaned.split())[:MAX_LABEL]


def slugify(label: str) -> str:
    ascii_label = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()
    return _SLUG_RE.sub("-", ascii_label.lower()).strip("-")[:40]


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

    def to_json(self) -> dict[str, Any]:
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
            "digest": {"algorithm": "sha256", "value": self.digest, "segments": self.segments},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path | None = None) -> Checkpoint:
        pos = data["position"]
        seg_name = str(pos["segment"])
        return cls(
            id=str(data["id"]),
            label=str(data.get("label") or ""),
            reason=str(data.get("reason") or ""),
            created=float(data["created"]),
            segment=segment_number(seg_name) or int(seg_name),
            offset=int(pos["offset"]),
            seq=int(pos["seq"]),
            messages=int(data.get("messages") or 0),
            digest=str(data["digest"]["value"]),
            segments=list(data["digest"].get("segments") or []),
            participants=dict(data.get("participants") or {}),
            first_ts=data.get("first_ts"),
            last_ts=data.get("last_ts"),
            path=path,
        )


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...
    def copy(self) -> _Hasher: ...


def _hash_file(path: Path, length: int, hasher: _Hasher | None = None, start: int = 0) -> _Hasher:
    hasher = hasher or hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        f.seek(start)
        remaining = length - start
        while remaining > 0:
            chunk = f.read(min(_HASH_CHUNK, remaining))
            if not chunk:
                raise ValueError(f"{path.name} is shorter than {length} bytes")
            hasher.update(chunk)
            remaining -= len(chunk)
    return hasher


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

    def _closed_cache(self, path: Path) -> Path:
        return self.layout.index / f"{path.name}.sha256"

    def segment(self, path: Path, length: int, closed: bool) -> str:
        st = path.stat()
        if closed:
            cache = self._closed_cache(path)
            try:
                data = orjson.loads(cache.read_bytes())
                if (data["size"], data["ino"], data["mtime_ns"]) == (
                    st.st_size,
                    st.st_ino,
                    st.st_mtime_ns,
                ):
                    return str(data["sha256"])
            except (OSError, ValueError, KeyError, TypeError):
                pass
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
        entries: list[dict[str, Any]] = []
        for path in list_segments(self.layout):
            number = segment_number(path.name) or 0
            if number > segment:
                break
            closed = number < segment
            size = path.stat().st_size if closed else offset
            entries.append(
                {"name": path.name, "size": size, "sha256": self.segment(path, size, closed)}
            )
        return combine(entries), entries


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
) -> Checkpoint:
    """Compute the digest and write the checkpoint file atomically."""
    created = time.time() if created is None else created
    label = sanitize_label(label)
    digest, entries = (digests or DigestCache(layout)).up_to(segment, offset)
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
        participants=dict(participants or {}),
        first_ts=first_ts,
        last_ts=last_ts,
    )
    ensure_private_dir(layout.checkpoints)
    path = layout.checkpoints / f"{cp.id}.json"
    atomic_write(path, orjson.dumps(cp.to_json(), option=orjson.OPT_INDENT_2))
    return Checkpoint(**{**cp.__dict__, "path": path})


def list_checkpoints(layout: Layout) -> list[Checkpoint]:
    """Valid checkpoints, newest first; unreadable files are skipped."""
    found: list[Checkpoint] = []
    try:
        paths = [p for p in layout.checkpoints.iterdir() if p.suffix == ".json"]
    except FileNotFoundError:
        return []
    for path in paths:
        try:
            found.append(Checkpoint.from_json(orjson.loads(path.read_bytes()), path))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    found.sort(key=lambda c: (c.seq, c.created), reverse=True)
    return found


@dataclass(frozen=True)
class Verification:
    ok: bool
    problems: list[str]

    @property
    def summary(self) -> str:
        return "intact" if self.ok else "; ".join(self.problems)


def verify_checkpoint(layout: Layout, cp: Checkpoint) -> Verification:
    """Re-hash the journal up to the checkpoint and compare with its digest."""
    problems: list[str] = []
    actual: list[dict[str, Any]] = []
    for entry in cp.segments:
        path = layout.segments / str(entry["name"])
        if os.sep in str(entry["name"]) or not path.is_file():
            problems.append(f"{entry['name']} is missing")
            actual.append({**entry, "sha256": "missing"})
            continue
        try:
            digest = _hash_file(path, int(entry["size"])).hexdigest()
        except ValueError as exc:
            problems.append(str(exc))
            digest = "short"
        if digest not in (entry["sha256"], "short"):
            problems.append(f"{entry['name']} differs from the checkpoint")
        actual.append({**entry, "sha256": digest})
    if not problems and combine(actual) != cp.digest:
        problems.append("the checkpoint's digest does not match its segment list")
    return Verification(not problems, problems)


# -- choosing checkpoints and ranges ------------------------------------------------------
def resolve_checkpoint(layout: Layout, ref: str) -> Checkpoint:
    """A checkpoint by id, unique id prefix, exact label, or "latest"."""
    cps = list_checkpoints(layout)
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
