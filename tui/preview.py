"""What a checkpoint covers: messages around it and trouble in its range (no Textual)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from recorder.store.checkpoints import Checkpoint
from recorder.store.ranges import RangeSummary, summarize
from recorder.store.reader import KIND_BAD_LINE, Record, Store

PROBLEM_KINDS = ("gap", "corrupt", "refused", KIND_BAD_LINE)
MAX_SCAN = 250_000
CONTEXT = 4
MAX_WALK = 200
"""Records read at most for the messages before and after a checkpoint."""


@dataclass
class Preview:
    """Context and integrity of the range between the previous checkpoint and this one."""

    checkpoint: Checkpoint
    index: int
    range_start: int
    before: list[Record] = field(default_factory=list)
    after: list[Record] = field(default_factory=list)
    summary: RangeSummary = field(default_factory=RangeSummary)  # of the scanned records
    problems: list[Record] = field(default_factory=list)  # the first few, to show
    moved: bool = False
    """Its position is not where its last record ends: the journal changed before it
    (`Store.checkpoint_end`), so its seq placed it."""
    after_open: bool = False
    """`after` has fewer than `CONTEXT` rows because the journal ends before them: the
    journal's growth can fill them in (`messages_after`)."""

    @property
    def scanned(self) -> int:
        return self.summary.records

    @property
    def messages(self) -> int:
        return self.summary.messages

    @property
    def missed(self) -> int:
        return self.summary.missed

    @property
    def talkers(self) -> Counter[str]:
        return self.summary.participants

    @property
    def problem_counts(self) -> Counter[str]:
        return Counter({k: n for k, n in self.summary.kinds.items() if k in PROBLEM_KINDS})

    @property
    def truncated(self) -> bool:
        return self.scanned < self.index - self.range_start


def _messages_near(store: Store, start: int, step: int, limit: int) -> list[Record]:
    out: list[Record] = []
    i = start
    steps = 0
    while 0 <= i < len(store) and len(out) < limit and steps < MAX_WALK:
        rec = store.record(i)
        if rec.is_message:
            out.append(rec)
        i += step
        steps += 1
    return out


def messages_after(store: Store, index: int) -> tuple[list[Record], bool]:
    """The first `CONTEXT` messages from `index`, and whether more may come: fewer were
    found because the journal ends (not because the walk gave up)."""
    after = _messages_near(store, index, 1, CONTEXT)
    return after, len(after) < CONTEXT and len(store) - index < MAX_WALK


def build_preview(
    store: Store,
    cp: Checkpoint,
    previous: Checkpoint | None,
    cancelled: Callable[[], bool] = lambda: False,
) -> Preview | None:
    """Read the records around `cp` and scan its range (newest `MAX_SCAN` lines)."""
    index, moved = store.checkpoint_end(cp)
    start = store.checkpoint_index(previous) if previous is not None else 0
    start = min(start, index)
    pv = Preview(cp, index, start, moved=moved)
    pv.before = list(reversed(_messages_near(store, index - 1, -1, CONTEXT)))
    pv.after, pv.after_open = messages_after(store, index)
    scan_from = max(start, index - MAX_SCAN)

    def problems(records: Iterator[Record]) -> Iterator[Record]:
        for rec in records:
            if len(pv.problems) < 20 and rec.kind in PROBLEM_KINDS:
                pv.problems.append(rec)
            yield rec

    if summarize(problems(store.records(scan_from, index)), pv.summary, cancelled) is None:
        return None
    return pv
