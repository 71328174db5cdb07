"""Retention: which closed segments may go (by age, by total size), and taking them out.

The unit of deletion is a whole closed segment and the checkpoints whose position
lies in it. Never touched: the active (last) segment, the segment of the newest
checkpoint (the recorder's next checkpoint names it as its base), and for every
pinned checkpoint the segments of what restoring it materialises by default: from
the segment holding the first of its last `PIN_KEEPS_LAST` messages to its own.

`plan_prune` only reads; `execute` moves exactly what a plan names into
`trash/<id>/` (a rename, same bytes, same inode) under the retention lock. The entry's
manifest says "moving" until the caller has journaled the prune and `write_state` says
"done": one still "moving" under the lock is a prune that was interrupted, unless its
record is in the journal (`trash.journaled`: killed between the two). A kept
checkpoint whose `digest.base` is taken out is first written again with its whole
segment list (its original bytes go to the trash with the rest, and come back on
restore). `--dry-run` prints the plan; the real run executes the same plan.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from recorder.store.checkpoints import Checkpoint, list_checkpoints
from recorder.store.clockwatch import STEP_TOLERANCE, boot, boot_id
from recorder.store.fsutil import atomic_write, ensure_private_dir, fsync_dir, read_regular
from recorder.store.layout import Layout, list_segments, segment_name, segment_number
from recorder.store.pins import read_pins
from recorder.store.pruned import PrunedNote, read_pruned, write_pruned
from recorder.store.reader import SegmentIndex, Store
from recorder.store.retention_config import Policy

PIN_KEEPS_LAST = 1000  # = recorder.export.scope.DEFAULT_LAST (a test holds them equal)
_BACK_STEP = 4096  # records looked at per step while counting messages backwards
_MSG_HEAD = re.compile(rb'^\{"v":\d+,"seq":\d+,"ts":[-0-9.eE+]+,"kind":"msg"', re.MULTILINE)


@dataclass(frozen=True)
class SegmentInfo:
    """A segment as a plan shows it: what it holds and how big it is on disk."""

    name: str
    bytes: int
    first_seq: int | None
    last_seq: int | None
    first_ts: float | None
    last_ts: float | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PrunePlan:
    """Exactly what one prune takes out, and what it keeps against the policy and why."""

    policy: Policy
    now: float
    segments: list[SegmentInfo]  # to go, oldest first
    checkpoints: list[str]  # ids of the checkpoints to go (their position is in `segments`)
    restated: list[str]  # kept checkpoints written again without their `digest.base`
    kept: list[tuple[str, str]]  # (segment, why) the policy wanted but may not go
    journal_bytes: int  # every segment, before
    over_by: int = 0  # bytes still over `max_size` after this plan (kept segments)
    held: str = ""  # why nothing went by age ("": the age rule applied, if any)

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.segments)

    @property
    def empty(self) -> bool:
        return not self.segments

    def seq_range(self) -> tuple[int | None, int | None]:
        firsts = [s.first_seq for s in self.segments if s.first_seq is not None]
        lasts = [s.last_seq for s in self.segments if s.last_seq is not None]
        return (min(firsts, default=None), max(lasts, default=None))

    def seq_ranges(self) -> list[list[int]]:
        """The sequence numbers the plan's segments hold, one `[first, last]` per run of
        consecutive segments: a segment kept between two that go (the newest
        checkpoint's, say) keeps its records, which `seq_range` alone would include."""
        runs: list[list[int]] = []
        previous = None
        for s in self.segments:
            number = segment_number(s.name)
            if s.first_seq is not None and s.last_seq is not None:
                if runs and previous is not None and number == previous + 1:
                    runs[-1][1] = s.last_seq
                else:
                    runs.append([s.first_seq, s.last_seq])
            previous = number
        return runs

    def ts_range(self) -> tuple[float | None, float | None]:
        firsts = [s.first_ts for s in self.segments if s.first_ts is not None]
        lasts = [s.last_ts for s in self.segments if s.last_ts is not None]
        return (min(firsts, default=None), max(lasts, default=None))

    def to_json(self) -> dict[str, Any]:
        (from_seq, to_seq), (from_ts, to_ts) = self.seq_range(), self.ts_range()
        return {
            "policy": self.policy.to_json(),
            "segments": [s.to_json() for s in self.segments],
            "bytes": self.bytes,
            "from_seq": from_seq,
            "to_seq": to_seq,
            "seq_ranges": self.seq_ranges(),
            "from_ts": from_ts,
            "to_ts": to_ts,
            "checkpoints": self.checkpoints,
            "restated": self.restated,
            "kept": [{"segment": name, "why": why} for name, why in self.kept],
            "journal_bytes": self.journal_bytes,
            "journal_bytes_after": self.journal_bytes - self.bytes,
            "over_by": self.over_by,
            "held": self.held,
        }


def seq_ranges_words(ranges: list[list[int]], first: object, last: object) -> str:
    """The sequence numbers a prune took, in words: "1 to 2918", or "1 to 1943 and
    2431 to 2918" when kept segments lie between."""
    if len(ranges) < 2:
        return f"{first} to {last}"
    head = ", ".join(f"{a} to {b}" for a, b in ranges[:-1])
    return f"{head} and {ranges[-1][0]} to {ranges[-1][1]}"


def _info(store: Store, k: int, totals: list[int]) -> SegmentInfo:
    seg = store.segments[k]
    first = last = None
    for i in range(len(seg)):  # the first readable record, then the last one
        first = store.record(totals[k] + i)
        if first.seq is not None:
            break
    for i in range(len(seg) - 1, -1, -1):
        last = store.record(totals[k] + i)
        if last.seq is not None:
            break
    size = seg.path.stat().st_size
    return SegmentInfo(
        seg.path.name,
        size,
        first.seq if first else None,
        last.seq if last else None,
        first.ts if first else None,
        last.ts if last else None,
    )


def needed_segments(store: Store, cp: Checkpoint, last: int = PIN_KEEPS_LAST) -> list[int]:
    """Segment numbers a pinned checkpoint needs: those of its last `last` messages (its
    default restore bundle) up to its position (a whole segment at least)."""
    stop = store.checkpoint_index(cp)
    lo, found = stop, 0
    while lo > 0 and found < last:
        a = max(0, lo - _BACK_STEP)
        heads = [b for block in store.blocks(a, lo) for b in _line_kinds(block.data)]
        for k in range(len(heads) - 1, -1, -1):
            if heads[k]:
                found += 1
                if found == last:
                    a += k
                    break
        lo = a
    first = store.locate(lo)[0].number if lo < len(store) else cp.segment
    return [s.number for s in store.segments if first <= s.number <= cp.segment] or [cp.segment]


def _line_kinds(data: bytes) -> list[bool]:
    """For each line of `data`, whether it is a message (its head says `"kind":"msg"`)."""
    out = [False] * (data.count(b"\n") + (0 if data.endswith(b"\n") else 1))
    starts = [0]
    pos = data.find(b"\n")
    while pos >= 0 and len(starts) < len(out):
        starts.append(pos + 1)
        pos = data.find(b"\n", pos + 1)
    at = {s: k for k, s in enumerate(starts)}
    for m in _MSG_HEAD.finditer(data):
        k = at.get(m.start())
        if k is not None:
            out[k] = True
    return out


def plan_prune(layout: Layout, policy: Policy, now: float | None = None) -> PrunePlan:
    """What `policy` takes out of the journal now (nothing is changed)."""
    now = time.time() if now is None else now
    cps = list_checkpoints(layout)
    pins = read_pins(layout)
    read_pruned(layout)  # PrunedUnreadable: the prune that follows would rewrite it
    with Store(layout.root) as store:
        store.refresh()
        segs: list[SegmentIndex] = list(store.segments)
        totals = [0]
        for seg in segs:
            totals.append(totals[-1] + len(seg))
        infos = [_info(store, k, totals) for k in range(len(segs))]
        protected: dict[str, str] = {}
        if segs:
            protected[segs[-1].path.name] = "the active segment"
        by_number = {seg.number: seg.path.name for seg in segs}
        numbers = {seg.path.name: seg.number for seg in segs}
        if cps and cps[0].segment in by_number:
            protected.setdefault(
                by_number[cps[0].segment], f"holds the newest checkpoint {cps[0].id}"
            )
        for cp in cps:
            if cp.id in pins and cp.segment in by_number:
                for number in needed_segments(store, cp):
                    protected.setdefault(by_number[number], f"needed by pinned checkpoint {cp.id}")
    total = sum(i.bytes for i in infos)
    chosen: list[SegmentInfo] = []
    kept: list[tuple[str, str]] = []
    held = ""
    # the journal's last record (the active segment may have none yet)
    newest = next((i.last_ts for i in reversed(infos) if i.last_ts is not None), None)
    if policy.older_than is not None and newest is not None and newest > now + STEP_TOLERANCE:
        held = (
            f"nothing by age: the clock ({_utc(now)}) is behind the journal's last record "
            f"({_utc(newest)})"
        )
    elif policy.older_than is not None:
        # Oldest first, up to the first segment that is not old enough: one recorded
        # today after records stamped a year back (a clock behind for a moment) is not
        # taken from the middle of the journal, and neither is anything after it.
        cutoff = now - policy.older_than
        newer = None
        for info in infos[:-1]:
            last_ts = info.last_ts if info.last_ts is not None else 0.0
            if newer is None and last_ts >= cutoff:
                newer = info.name
            if last_ts >= cutoff:
                continue
            if newer is not None:
                kept.append((info.name, f"after {newer}, which is newer: age prunes oldest first"))
            elif info.name in protected:
                kept.append((info.name, protected[info.name]))
            else:
                chosen.append(info)
    over_by = 0
    if policy.max_size is not None:
        remaining = total - sum(i.bytes for i in chosen)
        names = {i.name for i in chosen}
        for info in infos[:-1]:
            if remaining <= policy.max_size:
                break
            if info.name in names:
                continue
            if info.name in protected:
                if info.name not in dict(kept):
                    kept.append((info.name, protected[info.name]))
                continue
            chosen.append(info)
            remaining -= info.bytes
        over_by = max(0, remaining - policy.max_size)
        if over_by and infos:  # what stays over the size is also the segment being written
            kept.append((infos[-1].name, protected.get(infos[-1].name, "the active segment")))
    order = {i.name: k for k, i in enumerate(infos)}
    chosen.sort(key=lambda i: order[i.name])
    kept.sort(key=lambda item: order[item[0]])
    going = {numbers[i.name] for i in chosen}
    gone_cps = [cp for cp in cps if cp.segment in going]
    gone_ids = {cp.id for cp in gone_cps}
    restated = [
        cp.id
        for cp in cps
        if cp.id not in gone_ids and cp.base in gone_ids and cp.base_problem is None
    ]
    return PrunePlan(
        policy,
        now,
        chosen,
        sorted(gone_ids),
        sorted(restated),
        kept,
        total,
        over_by,
        held,
    )


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


# -- the trash -------------------------------------------------------------------------
MOVING = "moving"  # a prune is moving files in, or was interrupted doing so (no lock held)
DONE = "done"  # moved and journaled
EMPTYING = "emptying"  # an empty is deleting it, or was interrupted before it did

# the journal records of the changes to an entry (each happens once to an entry)
EVENT_PRUNE, EVENT_RESTORE, EVENT_EMPTY = "prune", "trash-restore", "trash-empty"


@dataclass
class TrashEntry:
    """One prune's worth of files in `trash/<id>/`, described by its `manifest.json`."""

    id: str
    created: float
    plan: dict[str, Any]  # `PrunePlan.to_json()` of the prune that made it
    by: str  # "recorder" or "persist prune"
    files: list[dict[str, Any]] = field(default_factory=list)  # {"kind","name","size","mtime_ns"}
    restated: list[dict[str, Any]] = field(default_factory=list)  # {"id","sha256_now"}
    path: Path | None = None
    state: str = MOVING  # MOVING, DONE or EMPTYING (`write_state`)
    journal_from: dict[str, int] = field(default_factory=dict)  # event -> segment (`note_record`)
    boot_id: str = ""  # the boot it was made in ("" unknown: made before 2026-12-07)
    boot_s: float = 0.0  # the boot clock then (seconds since that boot)

    @property
    def bytes(self) -> int:
        return sum(int(f["size"]) for f in self.files)

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "id": self.id,
            "created": self.created,
            "by": self.by,
            "plan": self.plan,
            "files": self.files,
            "restated": self.restated,
            "state": self.state,
            "journal_from": self.journal_from,
            "boot_id": self.boot_id,
            "boot_s": self.boot_s,
        }

    def dated_ahead(self, now: float) -> bool:
        """Its date is later than `now`: the clock was ahead when it was made (or is
        behind now)."""
        return self.created > now + STEP_TOLERANCE

    def age(self, now: float) -> float:
        """How old it is for emptying: by its date; one dated later than `now` by the
        boot clock (which no clock step moves), from when it was made if that was in
        this boot, else from the boot (it is older than that)."""
        if not self.dated_ahead(now):
            return now - self.created
        if self.boot_id and self.boot_id == boot_id():
            return max(0.0, boot() - self.boot_s)
        return boot()


def trash_id(now: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + "-" + secrets.token_hex(3)


_NEW = ".new-"  # `trash/.new-<id>`: an entry being made (no manifest yet)


def execute(layout: Layout, plan: PrunePlan, by: str, now: float | None = None) -> TrashEntry:
    """Move what `plan` names into a new trash entry, left "moving". The caller holds
    the retention lock, journals the prune (is or asks the recorder), then
    `write_state(entry, DONE)`."""
    import hashlib

    now = time.time() if now is None else now
    notes = read_pruned(layout)  # PrunedUnreadable before anything moves
    entry = TrashEntry(trash_id(now), now, plan.to_json(), by, boot_id=boot_id(), boot_s=boot())
    # Made as `trash/.new-<id>`, named `<id>` once its manifest says "moving" (before
    # anything at home moves): a prune killed before that leaves a hidden folder of
    # copies, which the next prune removes, never an entry without a manifest.
    for stale in layout.trash.glob(f"{_NEW}*") if layout.trash.is_dir() else ():
        shutil.rmtree(stale, ignore_errors=True)
    folder = layout.trash / entry.id
    staging = layout.trash / f"{_NEW}{entry.id}"
    for sub in ("", "segments", "checkpoints", "restated", "metadata_index"):
        ensure_private_dir(staging / sub)
    entry.path = staging
    moves: list[tuple[str, Path, Path]] = []
    for info in plan.segments:
        moves.append(("segment", layout.segments / info.name, folder / "segments" / info.name))
        names = [info.name + suffix for suffix in (".idx", ".sha256")]
        name = segment_name(segment_number(info.name) or 0)  # either form
        names += [name + ".marks", name + ".check"]
        for name in names:
            moves.append(("cache", layout.index / name, folder / "metadata_index" / name))
    for cp_id in plan.checkpoints:
        name = f"{cp_id}.json"
        moves.append(("checkpoint", layout.checkpoints / name, folder / "checkpoints" / name))
    for kind, src, _dst in moves:
        with contextlib.suppress(FileNotFoundError):
            st = src.stat()
            entry.files.append(
                {"kind": kind, "name": src.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
            )
    by_id = {cp.id: cp for cp in list_checkpoints(layout)}
    for cp_id in plan.restated:
        cp = by_id.get(cp_id)
        if cp is None or cp.path is None:
            continue
        original = read_regular(cp.path)[0]
        atomic_write(staging / "restated" / cp.path.name, original)
        whole = replace(cp, base=None, base_count=0, depth=0, base_problem=None, path=None)
        data = orjson.dumps(whole.to_json(), option=orjson.OPT_INDENT_2)
        entry.restated.append({"id": cp_id, "sha256_now": hashlib.sha256(data).hexdigest()})
    note_record(layout, entry, EVENT_PRUNE)
    write_state(entry, MOVING)
    os.rename(staging, folder)
    entry.path = folder
    fsync_dir(layout.trash)
    for item in entry.restated:  # before their bases go: never a checkpoint with a missing base
        cp = by_id[item["id"]]
        assert cp.path is not None
        whole = replace(cp, base=None, base_count=0, depth=0, base_problem=None, path=None)
        atomic_write(cp.path, orjson.dumps(whole.to_json(), option=orjson.OPT_INDENT_2))
    for info in plan.segments:
        notes[info.name] = PrunedNote(info.name, now, entry.id)
    write_pruned(layout, notes)  # before the segments go: a reader finds them noted
    for _kind, src, dst in moves:
        with contextlib.suppress(FileNotFoundError):
            os.rename(src, dst)
    for folder_changed in (layout.segments, layout.checkpoints, layout.index):
        with contextlib.suppress(OSError):
            fsync_dir(folder_changed)
    return entry


def note_record(layout: Layout, entry: TrashEntry, event: str) -> None:
    """Note in `entry` (written by its next `write_state`) the journal's last segment
    before its `event` record is journaled: the record is in that segment or a later
    one, where `trash.journaled` looks for it after a kill. The first note is kept (a
    re-run's record goes after the first run's, if that one was written)."""
    last = max((segment_number(p.name) or 0 for p in list_segments(layout)), default=0)
    entry.journal_from.setdefault(event, last)


def write_state(entry: TrashEntry, state: str) -> None:
    """Write `entry`'s manifest saying `state` (the entry object is left as it is)."""
    assert entry.path is not None
    body = {**entry.to_json(), "state": state}
    atomic_write(entry.path / "manifest.json", orjson.dumps(body, option=orjson.OPT_INDENT_2))
