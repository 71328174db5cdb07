"""Catching up after a restart: message count, first/last time and publisher sequences.

The recovery state (or, without one, the newest checkpoint) says where to start;
the journal from there on is read to count what came after it, so a crash between
two state writes loses no count and invents no gap. A starting point the journal no
longer holds (a power cut took what it named) is passed over for the next one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recorder.bus.envelope import GapTracker, read_envelope, read_heartbeat
from recorder.store.checkpoints import newest_checkpoints
from recorder.store.journal import record_ending_at
from recorder.store.layout import Layout, find_segment, segment_name
from recorder.store.reader import Store
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


def recover(layout: Layout, state: RecoveryState | None, last: dict[str, Any] | None) -> Recovered:
    """What the journal holds, from `state` (else the newest checkpoint, else its start)
    to its end.

    `last` is the journal's last record (None for an empty journal). A state or
    checkpoint whose position the journal no longer holds is not a start: with
    `--fsync never` the state names what was written, and checkpoints always do, which
    a power cut may take; counting on from there counted the lost messages as held.
    The state's publisher sequences are kept even then: they are what was received
    (a message lost with the tail is then the `journal-lost` gap's to say, not a hole
    at its publisher's next message).
    """
    base: JournalPoint | None = None
    out = Recovered()
    if state is not None:
        out.tracker = GapTracker(state.publishers)
        out.first_ts = state.first_ts
        if last is not None and _held(layout, state.position):
            base = state.position
    if base is None and last is not None:
        # the newest checkpoint the journal still holds: one a power cut took (named
        # past the journal's last seq) is passed over unread, and so are those whose
        # place changed, up to MAX_LOOK_BACK of them; reading the whole journal
        # instead made the start grow with it (--fsync never: both state and newest
        # checkpoint named the lost tail)
        for tried, cp in enumerate(newest_checkpoints(layout, at_most=int(last["seq"]))):
            if tried >= MAX_LOOK_BACK:
                break
            point = JournalPoint(cp.segment, cp.offset, cp.seq, cp.messages)
            if _held(layout, point):
                base = point
                if state is None:
                    out.first_ts = cp.first_ts
                break
    out.messages = base.messages if base else 0
    if last is None:
        return out
    tracker = out.tracker
    # Only the journal from the starting point on is indexed: start-up time does not
    # grow with the journal (a journal with no state and no checkpoint is read whole).
    # Indexing starts at the recovery position itself (not at its segment's start).
    first, offset = (base.segment, base.offset) if base else (0, 0)
    with Store(layout.root, cache_index=False, first_segment=first, first_offset=offset) as store:
        store.refresh()
        start = store.index_of(base.segment, base.offset) if base else 0
        for rec in store.records(start):
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
        out.last_ts = state.last_ts
    return out


def _held(layout: Layout, point: JournalPoint) -> bool:
    """Whether the journal still holds `point`: its segment's line ending at its offset
    is the record of its seq."""
    path = find_segment(layout, segment_name(point.segment))
    record = record_ending_at(path, point.offset) if path is not None else None
    return record is not None and record.get("seq") == point.seq
