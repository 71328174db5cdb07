"""A sparkline of journal activity with checkpoints marked under it."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from ..activity import Activity
from ..text import Clock

BLOCKS = " ▁▂▃▄▅▆▇█"


class ActivityStrip(Widget):
    """Three lines: volume, checkpoint marks (selected one highlighted), time axis."""

    activity: reactive[Activity | None] = reactive(None)
    """Bucketed counts, or None while loading / for an empty journal."""

    selected: reactive[float | None] = reactive(None)
    """Creation time of the highlighted checkpoint."""

    problem: reactive[str | None] = reactive(None)
    """Why the activity could not be computed (shown instead of "loading")."""

    def __init__(self, clock: Clock, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.clock = clock

    def render(self) -> Text:
        width = self.content_region.width
        act = self.activity
        if act is None and self.problem is not None:
            return Text(f"activity: {self.problem}", style="bold red")
        if act is None or width < 10:
            return Text("activity: loading…" if act is None else "", style="dim")
        cols = act.resample(width)
        peak = max(cols) or 1
        spark = Text()
        for c in cols:
            level = 0 if c == 0 else max(1, round(c / peak * (len(BLOCKS) - 1)))
            spark.append(BLOCKS[level], "green" if level else "dim")
        marks = [" "] * width
        for ts in act.marks:
            marks[act.column(ts, width)] = "╵"
        line2 = Text("".join(marks), style="cyan")
        if self.selected is not None:
            col = act.column(self.selected, width)
            line2.stylize("bold yellow", col, col + 1)
            line2 = line2[:col] + Text("▲", "bold yellow") + line2[col + 1 :]
        left = self.clock.stamp(act.start)[5:16]
        right = self.clock.stamp(act.end)[5:16]
        approx = "" if act.exact else "~"
        mid = f"{approx}{act.messages:,} messages · peak {peak:,}/col"
        gap = max(1, width - len(left) - len(right) - len(mid))
        axis = Text(left, "dim")
        axis.append(" " * (gap // 2))
        axis.append(mid, "dim italic")
        axis.append(" " * (gap - gap // 2))
        axis.append(right, "dim")
        out = Text("\n").join([spark, line2, axis])
        out.no_wrap = True
        return out
