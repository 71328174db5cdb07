"""A virtual view of long text: only the rows on screen are cut, styled and drawn.

A record can hold up to the recorder's size limit (16 MB by default) in one frame,
often in one line. A `Static` lays out all of it, wrapping every word, each time
it is shown: seconds to minutes for megabytes. Here the text is kept as source
lines (split on newlines, hard-wrapped at the width, like `less`), the row count
comes from their lengths alone, and a row is sanitised and styled when drawn.

Each block also has a display budget (`limit` characters): what lies beyond it
is announced on one line and shown when asked (`show_more`), so even the widest
record costs its first screenful to open.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

from rich.cells import cell_len, chop_cells
from rich.style import Style
from rich.text import Text
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


def _rows(line: str | Text, width: int) -> int:
    n = len(line) if isinstance(line, str) and line.isascii() else _cells(line)
    return max(1, -(-n // width))


def _cells(line: str | Text) -> int:
    if isinstance(line, Text):
        return line.cell_len
    if line.isprintable():
        return cell_len(line)
    return safe_text(line).cell_len


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
        self.refresh()

    def show_more(self, factor: int = 4) -> bool:
        """Raise every cut block's budget (`factor` times); False if nothing was hidden."""
        grown = False
        for block in self.blocks:
            if block.hidden():
                block.limit = (block.limit or DEFAULT_LIMIT) * factor
                grown = True
        if grown:
            self._rebuild()
        return grown

    def hidden(self) -> int:
        return sum(b.hidden() for b in self.blocks)

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
        self._ends = list(itertools.accumulate(_rows(line, width) for _, line in self._lines))
        self._row_cache.cache_clear()
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

    @lru_cache(maxsize=256)  # noqa: B019 (one view per screen; cleared on every change)
    def _row_cache(self, row: int, width: int) -> Text:
        index = bisect_right(self._ends, row)
        if index >= len(self._lines):
            return Text()
        first = self._ends[index - 1] if index else 0
        text = self._line_text(index)
        part = row - first
        plain = text.plain
        if plain.isascii():
            return text[part * width : (part + 1) * width]
        offset = 0
        for n, piece in enumerate(chop_cells(plain, width)):
            if n == part:
                return text[offset : offset + len(piece)]
            offset += len(piece)
        return Text()

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
