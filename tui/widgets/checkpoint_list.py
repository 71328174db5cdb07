"""The checkpoint timeline: newest first, grouped by day and by segment."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from recorder.store.checkpoints import Checkpoint
from recorder.store.layout import segment_name

from ..text import Clock, fit, one_line
from .record_list import SOURCE_STYLES
from .virtual_list import VirtualList

REASON_STYLES = {
    "periodic": "dim",
    "manual": "bold cyan",
    "shutdown": "yellow",
    "policy": "magenta",
}


PIN_MARK = "⚑"  # a pinned checkpoint (`persist pin`): kept through any pruning


@dataclass(frozen=True)
class Row:
    kind: str  # "day", "segment" or "checkpoint"
    text: str = ""
    checkpoint: Checkpoint | None = None


def participants_text(participants: dict[str, int], limit: int = 2) -> str:
    names = [n for n, _ in sorted(participants.items(), key=lambda kv: (-kv[1], kv[0]))]
    shown = ", ".join(one_line(n, 20) for n in names[:limit])
    return shown + (f" +{len(names) - limit}" if len(names) > limit else "")


def message_count(cp: Checkpoint) -> str:
    """`1 msg`, `12,345 msgs`: a row's count column."""
    return f"{cp.messages:,} msg{'' if cp.messages == 1 else 's'}"


def source_of(cp: Checkpoint) -> str:
    """Where a checkpoint's conversation is: "bus" (the journal) or an agent's name."""
    return cp.session.key.partition(":")[0] if cp.session is not None else "bus"


def timeline(journal: list[Checkpoint], sessions: list[Checkpoint]) -> list[Checkpoint]:
    """Journal checkpoints (in their order) and agent session checkpoints, newest first."""
    if not sessions:
        return journal
    merged = [*journal, *sessions]
    merged.sort(key=lambda cp: cp.created, reverse=True)
    return merged


def group_rows(checkpoints: list[Checkpoint], clock: Clock) -> list[Row]:
    """Day headers, segment sub-headers and checkpoint rows, newest first (an agent
    session's checkpoint has no journal segment: it sits under the current one)."""
    rows: list[Row] = []
    day = None
    segment = None
    per_day: dict[str, int] = {}
    for cp in checkpoints:
        d = clock.day(cp.created)
        per_day[d] = per_day.get(d, 0) + 1
    for cp in checkpoints:
        d = clock.day(cp.created)
        if d != day:
            n = per_day[d]
            rows.append(Row("day", f"{d} · {n} checkpoint{'s' if n != 1 else ''}"))
            day, segment = d, None
        if cp.session is None and cp.segment != segment:
            rows.append(Row("segment", segment_name(cp.segment)))
            segment = cp.segment
        rows.append(Row("checkpoint", checkpoint=cp))
    return rows


class CheckpointList(VirtualList):
    """Virtual list of checkpoints with day and segment headers."""

    def __init__(self, clock: Clock, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.clock = clock
        self.rows: list[Row] = []
        self.pins: frozenset[str] = frozenset()  # pinned checkpoints get a flag
        self.count_w = 0
        """Cells of the widest message count listed: every row's columns before it line up."""

    def set_checkpoints(
        self, checkpoints: list[Checkpoint], pins: frozenset[str] = frozenset()
    ) -> None:
        """Replace the list, keeping the cursor on the same checkpoint if it is still there."""
        self.pins = pins
        current = self.highlighted
        self.rows = group_rows(checkpoints, self.clock)
        self.count_w = max((len(message_count(cp)) for cp in checkpoints), default=0)
        self.set_row_count(len(self.rows))
        if current is not None:
            self.select_id(current.id)
        elif self.rows:
            self.move_to(0)

    def selectable(self, row: int) -> bool:
        return self.rows[row].kind == "checkpoint"

    @property
    def highlighted(self) -> Checkpoint | None:
        if 0 <= self.cursor < len(self.rows):
            return self.rows[self.cursor].checkpoint
        return None

    def select_id(self, checkpoint_id: str) -> bool:
        for i, row in enumerate(self.rows):
            if row.checkpoint is not None and row.checkpoint.id == checkpoint_id:
                self.move_to(i, center=False)
                return True
        return False

    def render_row(self, row: int, width: int) -> Text:
        item = self.rows[row]
        if item.kind == "day":
            return Text(f"▾ {item.text}", style="bold")
        if item.kind == "segment":
            return Text(f"  {item.text}", style="dim italic")
        cp = item.checkpoint
        assert cp is not None
        reason_w = 9
        count = message_count(cp)
        count_w = max(self.count_w, len(count))
        people_w = 22 if width >= 90 else 0
        source_w = 7 if width >= 90 else 4
        label_w = max(8, width - 2 - 9 - source_w - reason_w - count_w - 2 - people_w - 1)
        source = source_of(cp)
        label = one_line(cp.label or "(no label)", 200)
        if cp.session is not None:  # "claude 0ccf1a04 …": the source column says whose
            label = label.removeprefix(f"{source} ")
        text = Text(" ")
        if cp.id in self.pins:
            text.append(PIN_MARK, "bold yellow")
        else:
            text.append(" ")
        text.append(self.clock.hms(cp.created), "bold")
        text.append(" ")
        text.append(fit(source, source_w - 1) + " ", SOURCE_STYLES.get(source, "dim"))
        text.append(fit(label, label_w, ellipsis=True) + " ", "" if cp.label else "dim")
        reason = "monitor" if cp.session is not None else cp.reason
        text.append(
            fit(one_line(reason, 20), reason_w - 1) + " ",
            REASON_STYLES.get(cp.reason, "italic"),
        )
        text.append(f"{count:>{count_w}}", "cyan")
        if people_w:
            text.append("  ")
            ref = cp.session
            who = (
                f"{len(ref.files_modified)} files, {ref.context_tokens / 1000:.0f}k tokens"
                if ref is not None
                else participants_text(cp.participants)
            )
            text.append(fit(who, people_w), "dim")
        return text
