"""Reusing an earlier complete bundle: a new bundle from the beginning of the journal
copies what an earlier one already wrote and renders only the records after it.

An earlier bundle qualifies when it holds the copy asked for, made by this code (its
manifest's `renderer`, and its redaction: the caller says), is complete (starts at
record 0), verified, ends at or before the new range's end at the index its
checkpoint still resolves to, and its checkpoint's digest agrees with the journal as
it is now: every segment entry of the earlier checkpoint is either one of the new
checkpoint's (which the new bundle re-hashes in full) or a prefix of one, re-hashed
here. Then the records it holds are
byte for byte the ones the new bundle needs first. Its files are copied with their
SHA-256 checked against its manifest as they go (the JSONL whole; the transcript's
body between its header and footer, checked with the header by the digest of both);
any mismatch abandons the reuse and the bundle is built from scratch. No zmq, no textual.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from recorder.store.checkpoints import Checkpoint, list_checkpoints, segment_digest
from recorder.store.fsutil import read_regular
from recorder.store.layout import Layout, find_segment
from recorder.store.reader import Store

_COPY_CHUNK = 8 << 20


class StaleBundle(Exception):
    """The earlier bundle's files are not what its manifest says: not reused."""


@dataclass(frozen=True)
class Earlier:
    """A complete bundle whose records are the first `stop` of the new range."""

    dir: Path
    manifest: dict[str, Any]
    stop: int


def _usable(m: Any) -> bool:
    try:
        return (
            isinstance(m, dict)
            # from the journal's first record (segments pruned before it or inside it:
            # `range.complete` false, reused all the same; a prune after it moves the
            # checkpoint's index, which `find_earlier` compares)
            and m["range"]["start_index"] == 0
            and type(m["range"]["stop_index"]) is int
            and m["integrity"]["verified"] is True
            and isinstance(m["summary"], dict)
            and isinstance(m["files"]["markdown"]["body"], dict)
            and isinstance(m["files"]["jsonl"]["sha256"], str)
            and isinstance(m["checkpoint"]["id"], str)
        )
    except (KeyError, TypeError):
        return False


def _agrees(layout: Layout, earlier: Checkpoint, cp: Checkpoint) -> bool:
    """Every segment entry of `earlier` is one of `cp`'s, or a prefix of one that the
    file still holds (re-hashed)."""
    current = {str(e["name"]): e for e in cp.segments}
    for entry in earlier.segments:
        now = current.get(str(entry["name"]))
        if now is None or int(now["size"]) < int(entry["size"]):
            return False
        if now == entry:
            continue
        try:
            path = find_segment(layout, str(entry["name"]))
            if path is None:
                return False
            digest = segment_digest(path, int(entry["size"]))
        except (OSError, ValueError):
            return False
        if digest != entry["sha256"]:
            return False
    return True


def find_earlier(
    layout: Layout, store: Store, cp: Checkpoint, stop: int, fits: Callable[[dict[str, Any]], bool]
) -> Earlier | None:
    """The usable earlier complete bundle that ends latest (at or before `stop`), among
    those whose manifest `fits` (the same renderer and redaction: one of an older
    version, whose transcript that version rendered, is passed over, not gone on from)."""
    try:
        folders = [p for p in layout.restore.iterdir() if not p.name.startswith(".")]
    except OSError:
        return None
    candidates: list[tuple[int, Path, dict[str, Any]]] = []
    for folder in folders:
        try:
            m = orjson.loads(read_regular(folder / "manifest.json")[0])  # never waits on a FIFO
        except (OSError, ValueError):
            continue
        if _usable(m) and 0 < m["range"]["stop_index"] <= stop and fits(m):
            candidates.append((m["range"]["stop_index"], folder, m))
    if not candidates:
        return None
    checkpoints = {c.id: c for c in list_checkpoints(layout)}
    for old_stop, folder, m in sorted(candidates, key=lambda c: c[0], reverse=True):
        old = checkpoints.get(m["checkpoint"]["id"])
        if old is None or old.seq > cp.seq or store.checkpoint_index(old) != old_stop:
            continue
        if _agrees(layout, old, cp):
            return Earlier(folder, m, old_stop)
    return None
