"""What a checkpoint covers: messages around it and trouble in its range (no Textual)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from recorder.store.checkpoints import Checkpoint
from recorder.store.reader import KIND_BAD_LINE, Record, Store

PROBLEM_KINDS = ("gap", "corrupt", "refused", KIND_BAD_LINE)
MAX_SCAN = 250_000
CONTEXT = 4


@dataclass
class Preview:
    """Context and integrity of the range between the previous checkpoint and this one."""

    checkpoint: Checkpoint
    index: int
    range_start: int
    before: list[Record] = field(default_factory=list)
    after: list[Record] = field(default_factory=list)
    talkers: Counter[str] = field(default_factory=Counter)
    problems: list[Record] = field(default_factory=list)
    problem_counts: Counter[str] = field(default_factory=Counter)
    missed: int = 0
    scanned: int = 0
    messages: int = 0

    @property
    def truncated(self) -> bool:
        return self.scanned < self.index - self.range_start


def _messages_near(store: Store, start: int, step: int, limit: int) -> list[Record]:
    out: list[Record] = []
    i = start
    steps = 0
    while 0 <= i < len(store) and len(out) < limit and steps < 200:
        rec = store.record(i)
        if rec.is_message:
            out.append(rec)
        i += step
        steps += 1
    return out


def build_preview(
    store: Store,
    cp: Checkpoint,
    previous: Checkpoint | None,
    cancelled: Callable[[], bool] = lambda: False,
) -> Preview | None:
    """Read the records around `cp` and scan its range (newest `MAX_SCAN` lines)."""
    index = store.checkpoint_index(cp)
    start = store.checkpoint_index(previous) if previous is not None else 0
    start = min(start, index)
    pv = Preview(cp, index, start)
    pv.before = list(reversed(_messages_near(store, index - 1, -1, CONTEXT)))
    pv.after = _messages_near(store, index, 1, CONTEXT)
    scan_from = max(start, index - MAX_SCAN)
    n = 0
    for rec in store.records(scan_from, index):
        n += 1
        if n % 4096 == 0 and cancelled():
            return None
        kind = rec.kind
        if kind == "msg":
            pv.messages += 1
            pv.talkers[rec.sender or "?"] += 1
        elif kind in PROBLEM_KINDS:
            pv.problem_counts[kind] += 1
            if kind == "gap":
                missed = rec.get("missed")
                pv.missed += int(missed) if isinstance(missed, int) else 0
            if len(pv.problems) < 20:
                pv.problems.append(rec)
    pv.scanned = n
    return pv
