"""Catching up after a restart: message count, first/last time and publisher sequences.

The recovery state (or, without one, the newest checkpoint) says where to start;
the journal from there on is read to count what came after it, so a crash between
two state writes loses no count and invents no gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recorder.bus.envelope import GapTracker, read_envelope, read_heartbeat
from recorder.store.checkpoints import newest_checkpoint
from recorder.store.layout import Layout
from recorder.store.reader import Store
from recorder.store.records import KIND_HEARTBEAT
from recorder.store.recovery import JournalPoint, RecoveryState


@dataclass
class Recovered:
    messages: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    tracker: GapTracker = field(default_factory=GapTracker)


def recover(layout: Layout, state: RecoveryState | None, last: dict[str, Any] | None) -> Recovered:
    """What the journal holds, from `state` (else the newest checkpoint) to its end.

    `last` is the journal's last record (None for an empty journal).
    """
    base: JournalPoint | None = None
    out = Recovered()
    if state is not None:
        base = state.position
        out.tracker = GapTracker(state.publishers)
        out.first_ts = state.first_ts
    elif last is not None:
        cp = newest_checkpoint(layout)
        if cp is not None:
            base = JournalPoint(cp.segment, cp.offset, cp.seq, cp.messages)
            out.first_ts = cp.first_ts
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
