"""One range of the journal: which records, between which checkpoints, and one pass that summarises it."""

from __future__ import annotations

from dataclasses import dataclass

from recorder.errors import CheckpointError
from recorder.store.checkpoints import Checkpoint
from recorder.store.reader import Store


@dataclass(frozen=True)
class JournalRange:
    """Records `start` (inclusive) to `stop` (exclusive) of a store, with their ends named."""

    start: int
    stop: int
    after: Checkpoint | None = None  # the range begins just after this checkpoint
    upto: Checkpoint | None = None  # ... and ends with the last record this one covers

    def describe(self) -> str:
        a = f"after {self.after.id}" if self.after else "from the beginning"
        b = f"up to {self.upto.id}" if self.upto else "to the end of the journal"
        return f"{a} {b}"


def journal_range(store: Store, after: Checkpoint | None, upto: Checkpoint | None) -> JournalRange:
    start = store.checkpoint_index(after) if after is not None else 0
    stop = store.checkpoint_index(upto) if upto is not None else len(store)
    if after is not None and upto is not None and after.seq > upto.seq:
        raise CheckpointError(f"{after.id} comes after {upto.id}")
    return JournalRange(start, max(start, stop), after, upto)

