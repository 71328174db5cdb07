"""`recovery/state.json`: where the recorder had got to, so a restart can catch up.

Written (atomically, fsynced) only once its position is durable in the journal, and
read back by the same class. It is derived data: a missing, torn or wrongly typed
file is treated as absent and the recorder rebuilds what it needs from the newest
checkpoint and the journal itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from recorder.store.checkpoints import Checkpoint, newest_checkpoint
from recorder.store.fsutil import atomic_write, read_json_object
from recorder.store.layout import Layout
from recorder.store.records import SCHEMA_VERSION
from recorder.store.status import StatusSnapshot, read_status

MAX_CLAIM = 2**53  # a seq no recorder reaches (a file made by hand): not believed


@dataclass(frozen=True)
class JournalPoint:
    """A place in the journal: just after the record at (segment, offset)."""

    segment: int
    offset: int
    seq: int
    messages: int  # messages in the journal up to here


@dataclass(frozen=True)
class Floor:
    """An earlier snapshot than the state's `position`, in a closed segment (synced as it
    closed): where a restart counts from when a power cut took `position` (`--fsync
    never`), instead of the newest checkpoint held or, with none, the journal's start."""

    position: JournalPoint
    last_ts: float | None
    participants_since: int  # as RecoveryState's, up to `position`
    participants: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        p = self.position
        return {
            "position": {
                "segment": p.segment,
                "offset": p.offset,
                "seq": p.seq,
                "messages": p.messages,
            },
            "last_ts": self.last_ts,
            "participants": {"since": self.participants_since, "counts": self.participants},
        }

    @classmethod
    def from_json(cls, data: Any) -> Floor | None:
        """The floor, or None if `data` is not a well-formed one (never raises)."""
        if not isinstance(data, dict):
            return None
        point = _point(data.get("position"))
        last_ts = data.get("last_ts")
        since, counts = _participants(data.get("participants"))
        if point is None or since is None or not (last_ts is None or _is_number(last_ts)):
            return None
        return cls(point, last_ts, since, counts)


@dataclass(frozen=True)
class RecoveryState:
    position: JournalPoint
    updated: float  # when it was written (seconds since the epoch)
    clean: bool = False  # written by a clean stop
    pid: int = 0
    durable_seq: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    publishers: dict[str, int] = field(default_factory=dict)  # next expected seq per publisher
    # senders' message counts up to `position` since the checkpoint of seq
    # `participants_since` (0: since the journal's start); None: not saved (older files)
    participants_since: int | None = None
    participants: dict[str, int] = field(default_factory=dict)
    floor: Floor | None = None  # `--fsync never` only (see `Floor`)

    def to_json(self) -> dict[str, Any]:
        p = self.position
        return {
            "v": SCHEMA_VERSION,
            "pid": self.pid,
            "updated": self.updated,
            "clean": self.clean,
            "position": {
                "segment": p.segment,
                "offset": p.offset,
                "seq": p.seq,
                "messages": p.messages,
            },
            "durable_seq": self.durable_seq,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "publishers": self.publishers,
            **(
                {}
                if self.participants_since is None
                else {
                    "participants": {
                        "since": self.participants_since,
                        "counts": self.participants,
                    }
                }
            ),
            **({} if self.floor is None else {"floor": self.floor.to_json()}),
        }

    def write(self, layout: Layout) -> None:
        atomic_write(layout.state, orjson.dumps(self.to_json()))

    @classmethod
    def from_json(cls, data: Any) -> RecoveryState | None:
        """The state, or None if `data` is not a well-formed one (never raises)."""
        if not isinstance(data, dict):
            return None
        position = _point(data.get("position"))
        if position is None:
            return None
        publishers = data.get("publishers")
        publishers = {} if publishers is None else publishers
        if not isinstance(publishers, dict) or not all(
            isinstance(k, str) and _is_int(v) for k, v in publishers.items()
        ):
            return None
        first_ts, last_ts, updated = data.get("first_ts"), data.get("last_ts"), data.get("updated")
        if not all(v is None or _is_number(v) for v in (first_ts, last_ts, updated)):
            return None
        since, counts = _participants(data.get("participants"))
        return cls(
            position=position,
            updated=float(updated or 0.0),
            clean=data.get("clean") is True,
            pid=data["pid"] if _is_int(data.get("pid")) else 0,
            durable_seq=data["durable_seq"] if _is_int(data.get("durable_seq")) else 0,
            first_ts=first_ts,
            last_ts=last_ts,
            publishers=dict(publishers),
            participants_since=since,
            participants=counts,
            floor=Floor.from_json(data.get("floor")),  # a bad one: counted without it
        )

    @classmethod
    def read(cls, layout: Layout) -> RecoveryState | None:
        return cls.from_json(read_json_object(layout.state))


class Claim(NamedTuple):
    """The newest journal seq something outside the journal named, and what named it."""

    seq: int
    by: str


class Named(NamedTuple):
    """What outside the journal names a place in it, read once by the recorder's start
    and handed along: the newest checkpoint, the recovery state, the last status."""

    checkpoint: Checkpoint | None
    state: RecoveryState | None
    status: StatusSnapshot | None

    @classmethod
    def read(cls, layout: Layout) -> Named:
        return cls(newest_checkpoint(layout), RecoveryState.read(layout), read_status(layout))


def claimed_seq(layout: Layout, named: Named | None = None) -> Claim:
    """The newest seq the newest checkpoint, the recovery state or the last status named
    (`named`, else read from `layout`).

    Each was written while the recorder ran, and may name records that a power cut took
    from the journal before they reached the disk (checkpoints and the status are taken
    at what was written, not what was synced): those seqs are spoken for, and a journal
    reopened at its last good record must not give them to new records, or a checkpoint
    would take records written after it for its own.
    """
    cp, state, status = named if named is not None else Named.read(layout)
    claims = [Claim(0, "")]
    if cp is not None:
        claims.append(Claim(cp.seq, f"checkpoint {cp.id}"))
    if state is not None:
        seq = max(state.position.seq, state.durable_seq)
        claims.append(Claim(seq, str(layout.state.relative_to(layout.root))))
    if status is not None:
        claims.append(Claim(max(status.last_seq, status.last_durable_seq), "status.json"))
    return max((c for c in claims if c.seq < MAX_CLAIM), key=lambda c: c.seq)


def _point(value: Any) -> JournalPoint | None:
    """A `position` object as a JournalPoint; None when it is not a well-formed one."""
    if not isinstance(value, dict):
        return None
    point = [value.get(k) for k in ("segment", "offset", "seq", "messages")]
    numbers = [v for v in point if type(v) is int and v >= 0]
    return JournalPoint(*numbers) if len(numbers) == len(point) else None


def _participants(value: Any) -> tuple[int | None, dict[str, int]]:
    """The saved participant counts and the checkpoint seq they count since; (None, {})
    when absent or not well formed (they are then counted again from the journal)."""
    if not isinstance(value, dict):
        return None, {}
    since, counts = value.get("since"), value.get("counts")
    if not (type(since) is int and since >= 0 and isinstance(counts, dict)):
        return None, {}
    if not all(isinstance(k, str) and _is_int(v) and v > 0 for k, v in counts.items()):
        return None, {}
    return since, dict(counts)


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)
