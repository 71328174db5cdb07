"""What a restore bundle hands over: which records, and how they are verified.

A bundle materialises a range of the journal that ends at its checkpoint: by default
the last `DEFAULT_LAST` messages (with every record between them), or everything after
an earlier checkpoint (`since`), or the whole conversation (`full`). Why a count by
default and not "since the previous checkpoint": checkpoints come every five minutes
of traffic, which at 1,000 msgs/s is 300,000 messages; a count keeps "continue" the
same small cost at any rate and any journal size. The records before the range stay
in the journal, readable lazily (`Bundle.history()`, `persist export --to CP`).

Integrity: the checkpoint's digest is one SHA-256 per segment, so the range is
verified by re-hashing every segment it touches, up to the checkpoint's size for it,
every time (nothing handed over is trusted from a cache). Segments wholly before the
range are not read: each must still exist with at least the size the checkpoint
names (a stat), and its digest is compared with the digest cache the recorder keeps
in `metadata_index/` when that cache describes the file as it is now (same size,
inode, mtime); otherwise the manifest says it was not checked. A segment up to the
checkpoint that its digest does not name (`uncovered_segments`) is unverified: in the
range, the range is not verified; before it, the manifest's history says "not covered".
Safe because what the agent reads is checked in full, and what it does not read is
never claimed checked (`--full` reads and verifies all of it). No zmq, no textual.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from recorder.errors import CheckpointError
from recorder.store.checkpoints import (
    Checkpoint,
    DigestCache,
    Verification,
    combine,
    list_checkpoints,
    segment_digest,
    uncovered_problem,
    uncovered_segments,
    vouched_by,
    vouched_note,
)
from recorder.store.layout import Layout, find_segment, segment_name, segment_number
from recorder.store.linecheck import block_kinds
from recorder.store.pruned import pruned_by_number
from recorder.store.reader import Store
from recorder.store.records import KIND_MESSAGE
from recorder.store.segfile import SegmentDamaged, SegmentFile, not_a_file_at, segment_size

DEFAULT_LAST = 1000  # messages a bundle holds unless asked otherwise
_BACK_STEP = 4096  # records read at a time while counting messages backwards


@dataclass(frozen=True)
class BundleScope:
    """How much of the conversation up to a checkpoint a bundle materialises."""

    last: int | None = DEFAULT_LAST  # the last N messages (and every record among them)
    since: Checkpoint | None = None  # everything after this checkpoint
    full: bool = False  # everything from the beginning of the journal

    @classmethod
    def whole(cls) -> BundleScope:
        return cls(last=None, full=True)

    def describe(self) -> str:
        return describe_scope(self.to_json())

    def to_json(self) -> dict[str, Any]:
        if self.full:
            return {"kind": "full"}
        if self.since is not None:
            return {"kind": "since", "since": self.since.id}
        return {"kind": "last", "last": self.last}

    def env(self) -> str:
        """For `PERSIST_RESTORE_SCOPE`: `full`, `since <checkpoint id>` or `last <N>`."""
        if self.full:
            return "full"
        if self.since is not None:
            return f"since {self.since.id}"
        return f"last {self.last}"


def describe_scope(scope: Mapping[str, object]) -> str:
    """What a bundle of `scope` (`BundleScope.to_json()`, a manifest's `scope`) holds, in
    the words every reader of a bundle uses: `persist restore`, the transcript, the TUI."""
    kind = scope.get("kind")
    if kind == "last":
        return f"the last {scope.get('last')} messages"
    if kind == "since":
        return f"everything after {scope.get('since')}"
    return "the whole conversation"


def bundle_start(store: Store, cp: Checkpoint, scope: BundleScope) -> tuple[int, int]:
    """(start, stop) indexes of the records a bundle of `cp` materialises."""
    stop = store.checkpoint_index(cp)
    if scope.full:
        return 0, stop
    if scope.since is not None:
        if scope.since.seq > cp.seq:
            raise CheckpointError(f"{scope.since.id} comes after {cp.id}")
        return min(store.checkpoint_index(scope.since), stop), stop
    wanted = scope.last if scope.last is not None else DEFAULT_LAST
    if wanted <= 0:
        return stop, stop
    lo, found, start = stop, 0, None
    while lo > 0:
        a = max(0, lo - _BACK_STEP)
        kinds = _kinds(store, a, lo)
        for k in range(len(kinds) - 1, -1, -1):
            if kinds[k] == KIND_MESSAGE:
                if start is not None:
                    return start, stop  # a message before: the range starts at the Nth
                found += 1
                if found == wanted:
                    start = a + k
        lo = a
    return 0, stop  # no message before the Nth (or fewer than N): from the beginning


def first_message_ts(store: Store, cp: Checkpoint, scope: BundleScope) -> float | None:
    """When the first message a bundle of `cp` in `scope` holds was received (None: it
    holds none): what the restore dialog shows as the start of the range handed over."""
    start, stop = bundle_start(store, cp, scope)
    for rec in store.records(start, stop):
        if rec.is_message:
            return rec.ts
    return None


def _kinds(store: Store, start: int, stop: int) -> list[str]:
    """The kind of each record from `start` to `stop`, read from the line heads (one
    regex pass per block); a block that fails that check is parsed line by line."""
    out: list[str] = []
    for block in store.blocks(start, stop):
        kinds = block_kinds(block.data, block.count)
        if kinds is None:
            out += [rec.kind for rec in block.lines()]
        else:
            out += [kind.decode() for kind in kinds]
    return out


@dataclass(frozen=True)
class RangeVerification(Verification):
    """The digest check of a bundle's range, and what is known of the history before it."""

    segments: list[str] = field(default_factory=list)  # re-hashed now (the range)
    history_cached: list[str] = field(default_factory=list)  # matched the digest cache
    history_unchecked: list[str] = field(default_factory=list)  # not read, no usable cache
    history_problems: list[str] = field(default_factory=list)  # missing, short, differs
    # there, but not named by the checkpoint's digest (`uncovered_segments`): unverifiable
    history_uncovered: list[str] = field(default_factory=list)

    def history_json(self) -> dict[str, Any]:
        return {
            "verified_by_cache": self.history_cached,
            "not_checked": self.history_unchecked,
            "not_covered": self.history_uncovered,  # since 2026-12-07
            "problems": self.history_problems,
        }


_HASHING_THREADS = 2  # segments re-hashed at once (most machines have two cores)


def verify_range(
    layout: Layout,
    cp: Checkpoint,
    first_segment: int,
    held: Mapping[str, SegmentFile] | None = None,
) -> RangeVerification:
    """Re-hash the segments from `first_segment` up to the checkpoint and compare them
    with its digest; check the segments before them by stat and the digest cache.
    `held`: segments of the range a reader holds open by name (what a restore reads,
    `held_segments`): those are hashed as held, whatever a prune does meanwhile."""
    held = held or {}
    with ThreadPoolExecutor(_HASHING_THREADS) as pool:
        digests = _digests_of_range(pool, layout, cp, first_segment, held)
        try:
            return _verified(layout, cp, first_segment, digests, held)
        finally:
            for future in digests.values():
                future.cancel()


def held_segments(store: Store, first_segment: int) -> dict[str, SegmentFile]:
    """The files `store` opened for its segments from `first_segment` on, by name (one
    it could not open is left out: looked for by name)."""
    held: dict[str, SegmentFile] = {}
    for seg in store.segments:
        if seg.number >= first_segment:
            try:
                held[seg.name] = seg.file
            except (OSError, SegmentDamaged):
                continue
    return held


def _digests_of_range(
    pool: ThreadPoolExecutor,
    layout: Layout,
    cp: Checkpoint,
    first_segment: int,
    held: Mapping[str, SegmentFile],
) -> dict[tuple[str, int], Future[str]]:
    """The SHA-256 of each segment in range (by name and size), hashed on several
    threads at once (hashlib and the reads let go of the GIL); `_verified` takes them
    in the checkpoint's order."""
    out: dict[tuple[str, int], Future[str]] = {}
    for entry in cp.segments:
        name = str(entry["name"])
        number = segment_number(name)
        if os.sep in name or number is None or number < first_segment:
            continue
        try:
            key = (name, int(entry["size"]))
        except (TypeError, ValueError):
            continue
        if key in out:
            continue
        f = held.get(name)
        if f is not None:
            out[key] = pool.submit(segment_digest, f.path, key[1], f.fd)
            continue
        path = find_segment(layout, name)
        if path is not None:
            out[key] = pool.submit(segment_digest, path, key[1])
    return out


def _verified(
    layout: Layout,
    cp: Checkpoint,
    first_segment: int,
    digests: dict[tuple[str, int], Future[str]],
    held: Mapping[str, SegmentFile],
) -> RangeVerification:
    cache = DigestCache(layout)
    notes = pruned_by_number(layout)
    pruned: list[str] = []  # taken out by retention on purpose: neither range nor damage
    problems: list[str] = []
    hashed: list[str] = []
    cached_ok: list[str] = []
    unchecked: list[str] = []
    history: list[str] = []
    for entry in cp.segments:
        name = str(entry["name"])
        number = segment_number(name)
        if os.sep in name or number is None:
            problems.append(f"{name} is not a segment name")
            continue
        in_range = number >= first_segment
        f = held.get(name) if in_range else None
        if f is not None:  # read as the reader holds it, wherever it is now
            hashed.append(name)
            try:
                size = int(entry["size"])
                future = digests.get((name, size))
                digest = future.result() if future else segment_digest(f.path, size, f.fd)
                if digest != entry["sha256"]:
                    problems.append(f"{name} differs from the checkpoint")
            except (OSError, ValueError) as exc:
                problems.append(str(exc))
            continue
        path = find_segment(layout, name)  # plain or compressed
        if path is None:
            if number in notes:
                pruned.append(f"{name} {notes[number].describe()}")
                continue
            thing = not_a_file_at(layout.segments, name)  # a folder, a named pipe
            (problems if in_range else history).append(
                f"{name} cannot be read: segments/{thing[0].name} is {thing[1]}"
                if thing is not None
                else f"{name} is missing"
            )
            continue
        try:
            st = path.stat()
            have = segment_size(path)  # uncompressed, whatever the file's form
        except (OSError, ValueError) as exc:
            (problems if in_range else history).append(str(exc))
            continue
        size = int(entry["size"])
        if in_range:
            hashed.append(name)
            try:
                future = digests.get((name, size))  # None: the file appeared since
                digest = future.result() if future else segment_digest(path, size)
                if digest != entry["sha256"]:
                    problems.append(f"{name} differs from the checkpoint")
            except (OSError, ValueError) as exc:
                problems.append(str(exc))
        elif have < size:
            history.append(f"{name} is shorter than the {size} bytes the checkpoint names")
        else:
            cached = cache.cached_digest(path, st) if have == size else None
            if cached is None:
                unchecked.append(name)
            elif cached == entry["sha256"]:
                cached_ok.append(name)
            else:
                history.append(f"{name} differs from the checkpoint (digest cache)")
    if not problems and combine(cp.segments) != cp.digest:
        problems.append("the checkpoint's digest does not match its segment list")
    # segments up to it that its digest does not name: in range, the range is not
    # verified; before it, the history is not (one missing is the journal's damage)
    # verified all the same where another checkpoint's digest names one whole and
    # matches it (`vouched_by`: one taken while it was in the trash); before the range,
    # by its compressed trailer or the digest cache only, as the rest of the history
    uncovered: list[int] = []
    vouched: dict[str, list[int]] = {}
    others: list[Checkpoint] | None = None
    for n in uncovered_segments(cp, notes):
        if segment_name(n) not in held and find_segment(layout, segment_name(n)) is None:
            continue  # missing: the journal's damage says so
        if others is None:
            others = [c for c in list_checkpoints(layout) if c.id != cp.id]
        by = vouched_by(layout, n, others, hash_it=n >= first_segment)
        if by is None:
            uncovered.append(n)
            continue
        vouched.setdefault(by, []).append(n)
        (hashed if n >= first_segment else cached_ok).append(segment_name(n))
    inside = [n for n in uncovered if n >= first_segment]
    if inside:
        problems.append(uncovered_problem(inside))
    if not hashed and not problems and not pruned:
        problems.append(f"the checkpoint names no segment from {first_segment} on")
    return RangeVerification(
        not problems,
        problems,
        pruned,
        segments=hashed,
        history_cached=cached_ok,
        history_unchecked=unchecked,
        history_problems=history,
        uncovered=[segment_name(n) for n in inside],
        vouched=[vouched_note(numbers, by) for by, numbers in vouched.items()],
        history_uncovered=[segment_name(n) for n in uncovered if n < first_segment],
    )
