"""Catching up after a restart: message count, first/last time, publisher sequences
and the participants since the newest checkpoint.

The recovery state (or, without one, the newest checkpoint) says where to start;
the journal from there on is read to count what came after it, so a crash between
two state writes loses no count and invents no gap. A starting point the journal no
longer holds (a power cut took what it named) is passed over for the next one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from recorder.bus.envelope import GapTracker, read_envelope, read_heartbeat
from recorder.store.checkpoints import Checkpoint, newest_checkpoints
from recorder.store.journal import record_ending_at
from recorder.store.layout import Layout, find_segment, segment_name
from recorder.store.ranges import count_participant, message_participant
from recorder.store.reader import Record, Store
from recorder.store.records import KIND_HEARTBEAT
from recorder.store.recovery import JournalPoint, RecoveryState

MAX_LOOK_BACK = 64
"""Checkpoints at most tried, newest first, for one the journal still holds."""


@dataclass
class Recovered:
    messages: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    tracker: GapTracker = field(default_factory=GapTracker)
    # senders' message counts since the newest checkpoint (of seq `participants_since`,
    # 0: none), what the next checkpoint's `participants` says
    participants: dict[str, int] = field(default_factory=dict)
    participants_since: int = 0


def recover(
    layout: Layout,
    state: RecoveryState | None,
    last: dict[str, Any] | None,
    newest: Checkpoint | None,
) -> Recovered:
    """What the journal holds, from `state` (else the newest checkpoint, else its start)
    to its end.

    `last` is the journal's last record (None for an empty journal), `newest` the newest
    checkpoint (`newest_checkpoint`, read once by the caller). A state or
    checkpoint whose position the journal no longer holds is not a start: with
    `--fsync never` the state names what was written, and checkpoints always do, which
    a power cut may take; counting on from there counted the lost messages as held.
    The state's publisher sequences are kept even then: they are what was received
    (a message lost with the tail is then the `journal-lost` gap's to say, not a hole
    at its publisher's next message).

    With `--fsync never` the state also keeps a `floor` (its last snapshot in a closed
    segment, synced as that closed): when a power cut took its position, counting
    starts there unless a checkpoint held is later (with no checkpoint at all, at the
    journal's start until 2026-12-07).

    The participants since the newest checkpoint: the state's (or floor's) counts when it saved
    them since that checkpoint, and the records after the state; otherwise (a crash
    between a checkpoint and the next state, a checkpoint taken while no recorder
    ran, an older state file) counted from the checkpoint's records on. Either way
    only records after the newest checkpoint are read for them.
    """
    base: JournalPoint | None = None
    out = Recovered()
    cp = newest if last is not None else None
    cp_point = JournalPoint(cp.segment, cp.offset, cp.seq, cp.messages) if cp else None
    cp_held = cp_point is not None and _held(layout, cp_point)
    since = out.participants_since = cp.seq if cp else 0
    floor = None  # the state's floor, when counting starts there
    if state is not None:
        out.tracker = GapTracker(state.publishers)
        out.first_ts = state.first_ts
        if last is not None and _held(layout, state.position):
            base = state.position
        elif last is not None and state.floor is not None and _held(layout, state.floor.position):
            # a power cut took the state's position (--fsync never): its snapshot in a
            # closed segment, synced as it closed, unless a checkpoint held is later
            # (else, with no checkpoint, counting started at the journal's start)
            floor = state.floor
    if base is None and last is not None:
        # the newest checkpoint the journal still holds: one a power cut took (named
        # past the journal's last seq) is passed over unread, and so are those whose
        # place changed, up to MAX_LOOK_BACK of them; reading the whole journal
        # instead made the start grow with it (--fsync never: both state and newest
        # checkpoint named the lost tail)
        for tried, older in enumerate(_looking_back(layout, cp, cp_held, int(last["seq"]))):
            if tried >= MAX_LOOK_BACK or (floor is not None and older.seq <= floor.position.seq):
                break
            point = JournalPoint(older.segment, older.offset, older.seq, older.messages)
            if cp_held if older is cp else _held(layout, point):
                base, floor = point, None
                if state is None:
                    out.first_ts = older.first_ts
                break
        if floor is not None:
            base = floor.position
    out.messages = base.messages if base else 0
    if last is None:
        return out
    # where participants are counted from (None: the journal's start)
    count_at: JournalPoint | None
    if state is not None and base is state.position and state.participants_since == since:
        out.participants = dict(state.participants)
        count_at = base
    elif floor is not None and floor.participants_since == since:
        out.participants = dict(floor.participants)
        count_at = base
    elif cp_held:
        count_at = cp_point
    elif cp is not None:  # the journal ends before it (a power cut): records after its seq
        count_at = base
    else:
        count_at = None
    first = min(base, count_at, key=_order) if base and count_at else None
    tracker = out.tracker
    participants = out.participants
    # Only the journal from the starting point on is indexed: start-up time does not
    # grow with the journal (a journal with no state and no checkpoint is read whole).
    # Indexing starts at the recovery position itself (not at its segment's start).
    at_segment, at_offset = (first.segment, first.offset) if first else (0, 0)
    with Store(
        layout.root, cache_index=False, first_segment=at_segment, first_offset=at_offset
    ) as store:
        store.refresh()
        start = store.index_of(first.segment, first.offset) if first else 0
        base_index = store.index_of(base.segment, base.offset) if base else 0
        count_index = store.index_of(count_at.segment, count_at.offset) if count_at else 0
        for rec in store.records(start):
            index = rec.index
            if index >= count_index and rec.is_message and (rec.seq or 0) > since:
                _count(participants, rec)
            if index < base_index:
                continue  # before the recovery position: counted already
            if rec.kind == KIND_HEARTBEAT:
                env = read_heartbeat(rec.payload)
                if env is not None:
                    tracker.heartbeat(env["pub"], env["seq"])
                continue
            if not rec.is_message:
                continue
            out.messages += 1
            ts = rec.ts
            if out.first_ts is None:
                out.first_ts = ts
            out.last_ts = ts
            env = read_envelope(rec.payload)
            if env is not None and "replay_of" not in env:
                tracker.message(env["pub"], env["seq"])
    if out.last_ts is None and state is not None:
        out.last_ts = floor.last_ts if floor is not None else state.last_ts
    return out


def _looking_back(
    layout: Layout, cp: Checkpoint | None, cp_held: bool, at_most: int
) -> Iterator[Checkpoint]:
    """`newest_checkpoints(layout, at_most)`, without reading `cp`, the newest, again.
    Those of its seq after it are passed over: they end at its place, which the journal
    holds only if `cp_held`."""
    if cp is None:
        return  # none at all (`newest_checkpoint` is the first of `newest_checkpoints`)
    if cp.seq <= at_most:
        yield cp
        if cp_held:
            return
        at_most = cp.seq - 1
    yield from newest_checkpoints(layout, at_most=at_most)


def _order(point: JournalPoint) -> tuple[int, int]:
    return point.segment, point.offset


def _count(participants: dict[str, int], rec: Record) -> None:
    """One message of `rec`'s sender (else its topic), as the recorder counts it."""
    assert rec.data is not None
    count_participant(participants, message_participant(rec.data))


def _held(layout: Layout, point: JournalPoint) -> bool:
    """Whether the journal still holds `point`: its segment's line ending at its offset
    is the record of its seq."""
    path = find_segment(layout, segment_name(point.segment))
    record = record_ending_at(path, point.offset) if path is not None else None
    return record is not None and record.get("seq") == point.seq
