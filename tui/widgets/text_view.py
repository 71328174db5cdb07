"""A virtual view of long text: only the rows on screen are cut, styled and drawn.

A record can hold up to the recorder's size limit (16 MB by default) in one frame,
often in one line. A `Static` lays out all of it, wrapping every word, each time
it is shown: seconds to minutes for megabytes. Here the text is kept as source
lines (split on newlines, hard-wrapped at the width, like `less`), the row count
comes from the cells each line is drawn in (an escape made visible is 4 cells: the
count is made on what is drawn, else a line's end falls past its last row), and a
row is sanitised and styled when drawn.

Each block also has a display budget (`limit` characters): what lies beyond it
is announced on one line and shown when asked (`show_more`), so even the widest
record costs its first screenful to open.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

from rich.cells import chop_cells, get_character_cell_size
from rich.style import Style
from rich.text import Span, Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..text import safe_text, size

DEFAULT_LIMIT = 256 * 1024
"""Characters of one block shown before a "show more" line."""

Highlighter = Callable[[str], Iterable[tuple[int, int]]]
"""Spans (start, end) to highlight in one source line (search matches)."""


@dataclass
class Block:
    """A piece of the view: a styled `Text` (short), or long content with a style.

    Long content is a `str`, or `bytes` decoded (UTF-8, bad bytes replaced) only
    up to the budget; `transform` (re-indenting JSON, say) runs on what is shown.
    """

    text: str | bytes | Text
    style: str = ""
    limit: int | None = DEFAULT_LIMIT  # None: no budget (headings, short fields)
    highlight: bool = False  # search matches are marked in this block
    transform: Callable[[str], str] | None = None
    more: Callable[[int], list[Block]] | None = None
    """For a note standing for blocks left out (the frames of a message past its first
    hundred): the blocks that replace it when more is asked for, given the factor."""

    @property
    def length(self) -> int:
        return len(self.text) if not isinstance(self.text, Text) else len(self.text.plain)

    def hidden(self) -> int:
        """Characters (bytes, for bytes) beyond the budget."""
        return 0 if self.limit is None else max(0, self.length - self.limit)

    def shown(self) -> str | Text:
        text = self.text
        if isinstance(text, Text):
            return text
        if isinstance(text, bytes):
            cut = text if self.limit is None else text[: self.limit]
            text = cut.decode("utf-8", "replace")
        elif self.limit is not None:
            text = text[: self.limit]
        return self.transform(text) if self.transform is not None else text


def _split(block: Block) -> list[str | Text]:
    shown = block.shown()
    if isinstance(shown, Text):
        styled = shown.copy()
        if styled.style:  # the base style as a span, so that every piece keeps it
            styled.stylize(styled.style, 0, len(styled))
            styled.style = ""
        return list(styled.split("\n", allow_blank=True)) or [Text()]
    return list(shown.split("\n"))


_PRINTABLE_ASCII = bytes(range(0x20, 0x7F))


def _ascii_cells(line: str) -> int:
    """Cells `safe_text` draws for an ASCII line, counted without drawing it: a control
    character is shown as `\\xNN` and a tab as 4 spaces (3 more cells each), `\\r` as
    one `␍`."""
    controls = len(line.encode("ascii").translate(None, _PRINTABLE_ASCII))
    if not controls:
        return len(line)
    return len(line) + 3 * (controls - line.count("\r") - line.count("\n"))


def _drawn_plain(line: str | Text) -> str:
    """The characters a source line is drawn as (escapes made visible)."""
    if isinstance(line, Text):
        return line.plain
    return safe_text(line).plain


def _cuts(plain: str, width: int) -> list[int]:
    """Where each row of a drawn line starts: a row holds what fits in `width` cells, and
    a wide character that does not fit goes to the next row (as `chop_cells` cuts, but
    without its slow grapheme walk: a drawn line never holds the joiners it looks for)."""
    if "\u200d" in plain or "\ufe0f" in plain:  # a styled line of ours (`Text`), short
        starts = [0]
        for piece in chop_cells(plain, width)[:-1]:
            starts.append(starts[-1] + len(piece))
        return starts
    starts = [0]
    used = 0
    for at, cells in enumerate(map(get_character_cell_size, plain)):
        if used and used + cells > width:
            starts.append(at)
            used = 0
        used += cells
    return starts


def _rows(line: str | Text, width: int) -> tuple[int, list[int] | None]:
    """Rows a source line takes at `width`, counted on what is drawn; with the start of
    each row in the drawn text when rows cannot be cut by counting characters."""
    if isinstance(line, str) and line.isascii():
        n = len(line) if line.isprintable() else _ascii_cells(line)
        if "\r" not in line:
            return max(1, -(-n // width)), None
    plain = _drawn_plain(line)
    if plain.isascii():
        return max(1, -(-len(plain) // width)), None
    cuts = _cuts(plain, width)
    return len(cuts), cuts


class _Pieces:
    """A drawn line and its styled pieces (escapes, search matches) ordered by where they
    start, so that a row is cut with two binary searches: Rich's `Text` slice walks every
    piece of the line for each row (200,000 escapes: seconds a screen, again on every
    scroll). A row keeps its pieces in the line's order (a later one is drawn over an
    earlier one)."""

    def __init__(self, text: Text) -> None:
        self.text = text
        spans = text.spans
        starts = [span.start for span in spans]
        self.order = list(range(len(spans)))
        if any(a > b for a, b in itertools.pairwise(starts)):
            self.order.sort(key=starts.__getitem__)
        self.starts = [starts[i] for i in self.order]
        # the furthest any piece so far reaches: the first piece that can reach a row
        self.reach = list(itertools.accumulate((spans[i].end for i in self.order), max))

    def __len__(self) -> int:
        return len(self.text)

    def cut(self, start: int, end: int) -> Text:
        """`text[start:end]`, its pieces found without walking those before and after."""
        spans = self.text.spans
        row = Text(self.text.plain[start:end], style=self.text.style, end="")
        first = bisect_right(self.reach, start)
        last = bisect_left(self.starts, end, first)
        picked = sorted(i for i in self.order[first:last] if spans[i].end > start)
        row.spans = [
            Span(max(s, start) - start, min(e, end) - start, style)
            for s, e, style in (spans[i] for i in picked)
        ]
        return row


class TextView(ScrollView, can_focus=True):
    """Scrolls through `Block`s; rows are cut at the width, never laid out in advance."""

    DEFAULT_CSS = """
    TextView {
        height: 1fr;
        scrollbar-size-vertical: 1;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.blocks: list[Block] = []
        self.highlighter: Highlighter | None = None
        self._lines: list[tuple[int, str | Text]] = []  # (block, source line)
        self._ends: list[int] = []  # cumulative rows after each source line
        self._starts: dict[int, list[int]] = {}  # line → where its rows start, when not ASCII
        self._width = 0

    # -- content -----------------------------------------------------------------
    def set_blocks(self, blocks: list[Block], *, keep_scroll: bool = False) -> None:
        self.blocks = blocks
        self._rebuild()
        if not keep_scroll:
            self.scroll_to(0, 0, animate=False, immediate=True)

    def set_highlighter(self, highlighter: Highlighter | None) -> None:
        """Mark matches (of a search, say) in blocks that allow it; None removes them."""
        self.highlighter = highlighter
        self._row_cache.cache_clear()
        self._drawn.cache_clear()
        self.refresh()

    def show_more(self, factor: int = 4) -> bool:
        """Raise every cut block's budget (`factor` times) and put in the blocks a note
        stands for (`Block.more`); False if nothing was hidden."""
        grown = False
        blocks: list[Block] = []
        for block in self.blocks:
            if block.more is not None:
                blocks.extend(block.more(factor))
                grown = True
                continue
            if block.hidden():
                block.limit = (block.limit or DEFAULT_LIMIT) * factor
                grown = True
            blocks.append(block)
        if grown:
            self.blocks = blocks
            self._rebuild()
        return grown

    def hidden(self) -> int:
        """Characters (bytes, for bytes) of the blocks beyond their budgets."""
        return sum(b.hidden() for b in self.blocks)

    def has_more(self) -> bool:
        """Whether `show_more` would show more (of a cut block, or blocks left out)."""
        return any(b.more is not None or b.hidden() for b in self.blocks)

    def plain_text(self) -> str:
        """What the view shows, as plain text (source lines, not wrapped rows)."""
        return "\n".join(self._line_text(i).plain for i in range(len(self._lines)))

    @property
    def row_count(self) -> int:
        return self._ends[-1] if self._ends else 0

    def _rebuild(self) -> None:
        lines: list[tuple[int, str | Text]] = []
        for i, block in enumerate(self.blocks):
            lines.extend((i, line) for line in _split(block))
            hidden = block.hidden()
            if hidden:
                note = Text(
                    f"… {size(hidden)} more not shown (m shows more, s saves the record)",
                    "bold yellow",
                )
                lines.append((i, note))
        self._lines = lines
        self._width = 0
        self._measure()

    def _measure(self) -> None:
        width = max(1, self.scrollable_content_region.width or self.size.width or 80)
        if width == self._width:
            return
        self._width = width
        counts = []
        self._starts = {}
        for index, (_, line) in enumerate(self._lines):
            rows, starts = _rows(line, width)
            counts.append(rows)
            if starts is not None:
                self._starts[index] = starts
        self._ends = list(itertools.accumulate(counts))
        self._row_cache.cache_clear()
        self._drawn.cache_clear()
        self.virtual_size = Size(width, self.row_count)
        self.refresh()

    def on_resize(self) -> None:
        self._measure()

    # -- drawing -----------------------------------------------------------------
    def _line_text(self, index: int) -> Text:
        block_no, line = self._lines[index]
        block = self.blocks[block_no]
        if isinstance(line, Text):
            return line
        text = safe_text(line, block.style)
        if block.highlight and self.highlighter is not None and text.plain == line:
            for start, end in self.highlighter(line):
                text.stylize("bold black on yellow", start, end)
        return text

    @lru_cache(maxsize=8)  # noqa: B019 (the few lines on screen; cleared on every change)
    def _drawn(self, index: int) -> _Pieces:
        return _Pieces(self._line_text(index))

    @lru_cache(maxsize=256)  # noqa: B019 (one view per screen; cleared on every change)
    def _row_cache(self, row: int, width: int) -> Text:
        index = bisect_right(self._ends, row)
        if index >= len(self._lines):
            return Text()
        first = self._ends[index - 1] if index else 0
        line = self._drawn(index)
        part = row - first
        starts = self._starts.get(index)
        if starts is None:
            return line.cut(part * width, (part + 1) * width)
        if part >= len(starts):
            return Text()
        end = starts[part + 1] if part + 1 < len(starts) else len(line)
        return line.cut(starts[part], end)

    def render_line(self, y: int) -> Strip:
        self._measure()
        width = self._width
        row = int(self.scroll_y) + y
        base: Style = self.rich_style
        if row >= self.row_count:
            return Strip.blank(self.size.width, base)
        text = self._row_cache(row, width).copy()
        text.truncate(width, pad=True)
        return Strip(list(text.render(self.app.console, end="")), width).apply_style(base)
