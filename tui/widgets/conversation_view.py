"""The conversation as a transcript, read around one record: only the turns on screen.

The journal may hold millions of records of any height, so there is no total
row count: the view keeps the selected turn about a third of the way down and
draws the turns before and after it until the screen is full, reading each
record when it is drawn (bookkeeping skipped by its kind bytes). `j`/`k` move
by message; a page down inside a selected turn taller than the screen (unfolded)
scrolls through it before it moves on. Search matches can be plugged in with `set_matches` (n/N step
through them, the highlighter marks them in the text).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from rich.console import Group
from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from recorder.sources.jsonl import cut_sizes
from recorder.store.marks import BOOKKEEPING, line_kind
from recorder.store.reader import Record

from ..reading import ReadingRules
from ..text import Clock
from ..transcript import Turn, turn_of
from .preview_pane import turn_parts

MAX_LINES = 14
"""Rows of a turn's text before it is cut ("z" unfolds it, Enter shows the record)."""
FOLDED_CHARS = 4000
"""Characters of a folded turn's text drawn (its first `MAX_LINES` rows are shown)."""
UNFOLDED_CHARS = 64 * 1024
MAX_SKIP = 20_000
"""Bookkeeping records stepped over looking for the next turn before showing one anyway."""

SELECTED = Style.parse("on #283848")


class RecordSource(Protocol):
    """What the view reads: the journal's `Store`, or an agent session's messages."""

    def record(self, index: int) -> Record: ...

    def __len__(self) -> int: ...


Highlighter = Callable[[str], Iterable[tuple[int, int]]]


class ConversationView(Widget, can_focus=True):
    """A transcript of `store` with a selected turn; everything is read on demand."""

    BINDINGS = [
        Binding("j,down", "step(1)", "Next message", show=False),
        Binding("k,up", "step(-1)", "Previous message", show=False),
        Binding("pagedown,space,ctrl+f", "page(1)", "Page down", show=False),
        Binding("pageup,ctrl+b", "page(-1)", "Page up", show=False),
        Binding("g,home", "edge(-1)", "First", show=False),
        Binding("G,end", "edge(1)", "Last", show=False),
        Binding("z", "fold", "Unfold", show=False, tooltip="Show all of this turn, thinking too"),
        Binding("n", "match(1)", "Next match", show=False),
        Binding("N", "match(-1)", "Previous match", show=False),
    ]

    class Moved(Message):
        """The selection moved to record `index`."""

        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(
        self,
        store: RecordSource,
        clock: Clock,
        index: int,
        *,
        rules: ReadingRules | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.store = store
        self.clock = clock
        self.rules = rules
        self.selected = self._visible_near(index)
        self.unfolded: set[int] = set()
        self.mark: int | None = None
        """The other end of a range (v), for copying and exporting."""
        self.highlighter: Highlighter | None = None
        self.matches: Sequence[int] = ()
        self.shown: list[int] = []
        """Record indices drawn last time, top to bottom."""
        self.scroll = 0
        """Rows of the selected turn scrolled off the top (page down in a tall turn)."""
        self._selected_top = 0
        """The row the selected turn's first row drawn was on, last time."""
        self._strips: list[Strip] = []
        self._cache: dict[tuple[int, int, int, bool], list[Strip]] = {}
        self.checkpoint_after: dict[int, str] = {}
        """Record index → label of the checkpoints taken just after it (drawn as a rule)."""

    # -- which records are turns ----------------------------------------------------
    def _is_turn(self, index: int) -> bool:
        return line_kind(self.store.record(index).line) not in BOOKKEEPING

    def _next(self, index: int, step: int) -> int | None:
        """The next turn from `index` going `step` (None at an end)."""
        n = len(self.store)
        i = index + step
        skipped = 0
        while 0 <= i < n:
            if self._is_turn(i) or skipped >= MAX_SKIP:
                return i
            i += step
            skipped += 1
        return None

    def nearest_turn(self, index: int) -> int:
        """Record `index` if it is a turn, else the turn before it (or after, at the start)."""
        return self._visible_near(index)

    def _visible_near(self, index: int) -> int:
        n = len(self.store)
        index = max(0, min(index, n - 1))
        if n == 0 or self._is_turn(index):
            return index
        for step in (-1, 1):
            found = self._next(index, step)
            if found is not None:
                return found
        return index

    # -- public hooks ---------------------------------------------------------------
    def select(self, index: int) -> None:
        """Put the turn of record `index` (or the nearest one) under the cursor."""
        if not len(self.store):
            return
        self.selected = self._visible_near(index)
        self.scroll = 0
        self.post_message(self.Moved(self.selected))
        self.refresh_layout()

    def set_matches(self, matches: Sequence[int], highlighter: Highlighter | None) -> None:
        """Search matches: record indices in journal order (n/N step through them), and
        the function that marks them in a turn's text. For the search pane to plug in."""
        self.matches = matches
        self.highlighter = highlighter
        self._cache.clear()
        self.refresh_layout()

    def moved_in_journal(self, index: int) -> None:
        """The journal changed under the view other than by growing (segments pruned or
        removed) and the record it was at is now record `index`: the indices held from
        before (the mark, unfolded turns, search matches, turns drawn) no longer hold."""
        self.mark = None
        self.unfolded.clear()
        self.matches = ()
        self._cache.clear()
        self.shown = []
        self.scroll = 0
        self.selected = self._visible_near(index)
        self.refresh_layout()

    def records(self, first: int, last: int) -> Iterable[Record]:
        """The turns from record `first` to `last` (inclusive), in order."""
        i: int | None = first
        while i is not None and i <= last:
            yield self.store.record(i)
            i = self._next(i, 1)

    def selection_range(self) -> tuple[int, int]:
        """From the mark (or the selection) to the selection, in journal order."""
        other = self.selected if self.mark is None else self.mark
        return min(other, self.selected), max(other, self.selected)

    # -- actions --------------------------------------------------------------------
    def action_step(self, step: int) -> None:
        found = self._next(self.selected, step)
        if found is not None:
            self.select(found)

    def action_page(self, step: int) -> None:
        height = self.size.height
        if step > 0 and self.shown:
            rows = len(self._turn_strips(self.selected, self.size.width)) - self.scroll
            below = self._selected_top + rows - height  # the selected turn's rows past the screen
            if below > 0 and height > 1:  # the rest of it first, a row kept for context
                self.scroll += max(1, min(below, height - self._selected_top - 1))
                self.refresh_layout()
                return
        elif step < 0 and self.scroll > 0:
            self.scroll = max(0, self.scroll - max(1, height - 1))
            self.refresh_layout()
            return
        if step > 0 and self.shown:
            target: int | None = self.shown[-1]
            if target == self.selected:  # it filled the screen to its last row: the next
                target = self._next(target, 1)
        else:
            target = self.selected
            for _ in range(max(1, len(self.shown) - 1)):
                found = self._next(target, -1) if target is not None else None
                if found is None:
                    break
                target = found
        if target is not None:
            self.select(target)

    def action_edge(self, step: int) -> None:
        n = len(self.store)
        if n:
            self.select(n - 1 if step > 0 else 0)

    def action_fold(self) -> None:
        self.unfolded ^= {self.selected}
        self.scroll = 0
        self.refresh_layout()

    def action_match(self, step: int) -> None:
        if not self.matches:
            self.notify("No search matches in this view.", timeout=2)
            return
        if step > 0:
            at = bisect_right(self.matches, self.selected)
            target = self.matches[at] if at < len(self.matches) else None
        else:
            at = bisect_left(self.matches, self.selected) - 1
            target = self.matches[at] if at >= 0 else None
        if target is None:
            self.notify("No more matches that way.", timeout=2)
        else:
            self.select(target)

    # -- drawing --------------------------------------------------------------------
    def turn(self, index: int) -> Turn:
        return turn_of(self.store.record(index), self.rules)

    def _turn_strips(self, index: int, width: int) -> list[Strip]:
        selected = index == self.selected
        marked = self.mark is not None and min(self.mark, self.selected) <= index <= max(
            self.mark, self.selected
        )
        key = (index, width, 2 if selected else 1 if marked else 0, index in self.unfolded)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        turn = self.turn(index)
        unfolded = index in self.unfolded
        if unfolded and turn.thinking:
            turn.text = f"(thinking)\n{turn.thinking}\n\n{turn.text}"
            turn.thinking = None
        limit = UNFOLDED_CHARS if unfolded else FOLDED_CHARS
        cut = len(turn.text) > limit  # the rows counted below are those of what is drawn
        head, body = turn_parts(turn, self.clock, limit)
        if body is not None and self.highlighter is not None:
            for start, end in self.highlighter(body.plain):
                body.stylize("bold black on yellow", start, end)
        inner = max(10, width - 2)
        console = self.app.console
        options = console.options.update_width(inner)
        renderable = head if body is None else Group(head, Padding(body, (0, 0, 0, 2)))
        lines = console.render_lines(renderable, options, pad=True)
        if not unfolded and (len(lines) > MAX_LINES + 1 or cut):
            hidden = len(lines) - MAX_LINES
            lines = lines[:MAX_LINES]
            more = f"{hidden:,} more lines" if not cut else "more: " + _size_of(turn.text)
            note = Text(f"  … {more} (z unfolds, Enter shows the record)", "dim")
            lines += console.render_lines(note, options, pad=True)
        elif unfolded and cut:  # past what a turn unfolds to: the record view has it all
            note = Text(f"  … more: {_size_of(turn.text)} (Enter shows the record)", "dim")
            lines += console.render_lines(note, options, pad=True)
        gutter = "▌ " if selected else "┃ " if marked else "  "
        gutter_style = Style.parse("bold cyan" if selected else "cyan")
        strips = [Strip([Segment(gutter, gutter_style), *line], width) for line in lines]
        if selected:
            strips = [strip.apply_style(SELECTED) for strip in strips]
        label = self.checkpoint_after.get(index)
        if label is not None:
            rule = Text(f"── ◆ checkpoint: {label} ", "bold green")
            rule.append("─" * max(0, width - rule.cell_len), "green")
            rule.truncate(width)
            strips.append(Strip(list(rule.render(console)), width))
        strips.append(Strip.blank(width))
        self._cache[key] = strips
        return strips

    def refresh_layout(self) -> None:
        """Lay out the turns around the selection (about a third of the way down)."""
        width, height = self.size.width, self.size.height
        if width <= 0 or height <= 0 or not len(self.store):
            self._strips, self.shown = [], []
            self.refresh()
            return
        if len(self._cache) > 512:
            self._cache.clear()
        above: list[int] = []
        room = height // 3 if not self.scroll else 0  # scrolled into it: it starts the screen
        i: int | None = self.selected
        while room > 0:
            i = self._next(i, -1) if i is not None else None
            if i is None:
                break
            room -= len(self._turn_strips(i, width))
            if room >= 0:
                above.insert(0, i)
        strips: list[Strip] = []
        shown: list[int] = []
        for j in above:
            strips += self._turn_strips(j, width)
            shown.append(j)
        self._selected_top = len(strips)
        i = self.selected
        while i is not None and len(strips) < height:
            turn = self._turn_strips(i, width)
            strips += turn[self.scroll :] if i == self.selected else turn
            shown.append(i)
            i = self._next(i, 1)
        self._strips = strips[:height]
        self.shown = shown
        self.refresh()

    def on_resize(self) -> None:
        self.refresh_layout()

    def on_mount(self) -> None:
        self.refresh_layout()

    def render_line(self, y: int) -> Strip:
        if y < len(self._strips):
            return self._strips[y]
        return Strip.blank(self.size.width)


def _size_of(text: str) -> str:
    """A long text's size as a folded turn names it ("60,000 lines, 6,400,000
    characters in all"): its rows past the drawn part are not counted. A text the
    session reader cut says so: its last line, which says it too, is past what a
    turn shows."""
    cut = cut_sizes(text)
    if cut is not None:
        kept, more = cut
        return (
            f"{kept:,} of its {kept + more:,} characters kept, the rest cut by the session reader"
        )
    lines = text.count("\n") + 1
    return f"{lines:,} line{'s' if lines != 1 else ''}, {len(text):,} characters in all"
