"""A virtual list: only rows on screen are rendered (Line API).

Subclasses say how many rows there are and how to draw one; nothing is
read for rows that are not visible, so a million rows cost nothing.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip


class VirtualList(ScrollView, can_focus=True):
    """A scrolling list with a cursor, vim keys and a fixed row count."""

    COMPONENT_CLASSES = {"virtual-list--cursor", "virtual-list--dim"}

    DEFAULT_CSS = """
    VirtualList {
        overflow-x: hidden;
    }
    """
    """Rows are drawn at the list's width, never scrolled sideways: a horizontal scrollbar
    (the virtual width set before the vertical one came) took the list's last line after
    a scroll had put the cursor there, and no Resize said so."""

    BINDINGS = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last", show=False),
        Binding("pageup,ctrl+b", "page_up", "Page up", show=False),
        Binding("pagedown,ctrl+f", "page_down", "Page down", show=False),
        Binding("enter", "select", "Open", show=False),
    ]

    cursor: reactive[int] = reactive(-1, always_update=True, repaint=False)
    """Row under the cursor, -1 when the list is empty."""

    class Highlighted(Message):
        """The cursor moved to `row`."""

        def __init__(self, widget: VirtualList, row: int) -> None:
            super().__init__()
            self.widget = widget
            self.row = row

        @property
        def control(self) -> VirtualList:
            return self.widget

    class Selected(Highlighted):
        """Enter (or a double click) on `row`."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._count = 0
        self._last_posted = -2
        self._scroll_wanted: tuple[bool, int | None] | None = None
        """A scroll asked for while the list had no height (`scroll_to_cursor`)."""

    # -- for subclasses ----------------------------------------------------------
    @property
    def row_count(self) -> int:
        return self._count

    def render_row(self, row: int, width: int) -> Text:
        """The row's content (cursor styling is added by the list)."""
        raise NotImplementedError

    def selectable(self, row: int) -> bool:
        """Rows the cursor may rest on (headers may not)."""
        return True

    # -- size and cursor ---------------------------------------------------------
    def set_row_count(self, count: int, *, keep_end: bool = False) -> None:
        """Change the number of rows; keep the cursor in range."""
        at_end = self.cursor >= self._count - 1
        self._count = count
        self.virtual_size = Size(self.scrollable_content_region.width, count)
        if count == 0:
            self.cursor = -1
        elif self.cursor < 0 or self.cursor >= count or (keep_end and at_end):
            self.cursor = self._nearest(count - 1 if self.cursor >= 0 else 0, 1)
        self.refresh()

    def _nearest(self, row: int, step: int) -> int:
        """The first selectable row from `row` going `step`, else the other way."""
        n = self._count
        if n == 0:
            return -1
        row = max(0, min(n - 1, row))
        for direction in (step, -step):
            r = row
            while 0 <= r < n:
                if self.selectable(r):
                    return r
                r += direction
        return -1

    def move_to(
        self, row: int, step: int = 1, *, center: bool = False, line: int | None = None
    ) -> None:
        self.cursor = self._nearest(row, step)
        self.scroll_to_cursor(center=center, line=line)

    def scroll_to_cursor(self, *, center: bool = False, line: int | None = None) -> None:
        """Bring the cursor's row on screen: centred, on the list's `line`-th line, or
        else by as little as it takes. A list with no height (another tab's, hidden, or
        not laid out yet) does it when it gets one: its height decides where."""
        if self.cursor < 0:
            return
        height = self.scrollable_content_region.height
        if height <= 0:
            self._scroll_wanted = (center, line)
            return
        self._scroll_wanted = None
        top = int(self.scroll_y)
        if line is not None:
            y = self.cursor - min(max(0, line), height - 1)
        elif center:
            y = self.cursor - height // 2
        elif self.cursor < top:
            y = self.cursor
        elif self.cursor >= top + height:
            y = self.cursor - height + 1
        else:
            return
        # forced: a list that just grew has no scrollbar yet, which would stop the scroll
        self.scroll_to(y=max(0, y), animate=False, force=True)

    @property
    def cursor_line(self) -> int:
        """The line of the list the cursor's row is drawn on (outside 0…height-1: off
        screen), or will be once a list with no height gets one."""
        wanted = self._scroll_wanted
        if wanted is not None and wanted[1] is not None:
            return wanted[1]
        return self.cursor - int(self.scroll_y)

    def watch_cursor(self, old: int, new: int) -> None:
        self.refresh()
        if new != self._last_posted:
            self._last_posted = new
            self.post_message(self.Highlighted(self, new))

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, self._count)
        center, line = self._scroll_wanted or (False, None)
        self._scroll_wanted = None
        self.scroll_to_cursor(center=center, line=line)

    # -- actions -----------------------------------------------------------------
    def action_cursor_up(self) -> None:
        self.move_to(self.cursor - 1, -1)

    def action_cursor_down(self) -> None:
        self.move_to(self.cursor + 1, 1)

    def action_first(self) -> None:
        self.move_to(0, 1)

    def action_last(self) -> None:
        self.move_to(self._count - 1, -1)

    def action_page_up(self) -> None:
        self.move_to(self.cursor - max(1, self.scrollable_content_region.height - 1), -1)

    def action_page_down(self) -> None:
        self.move_to(self.cursor + max(1, self.scrollable_content_region.height - 1), 1)

    def action_select(self) -> None:
        if self.cursor >= 0:
            self.post_message(self.Selected(self, self.cursor))

    def on_click(self, event: events.Click) -> None:
        row = int(self.scroll_y) + event.y
        if 0 <= row < self._count and self.selectable(row):
            self.cursor = row
            if event.chain >= 2:
                self.action_select()

    # -- drawing -----------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        row = int(self.scroll_y) + y
        base = self.rich_style
        if row >= self._count or width <= 0:
            return Strip.blank(width, base)
        try:
            text = self.render_row(row, width)
        except Exception as exc:  # a row that cannot be drawn must not kill the view
            text = Text(f"<cannot show row {row}: {exc}>", style="red")
        text.truncate(width, overflow="ellipsis", pad=True)
        if row == self.cursor:
            style = self.get_component_rich_style("virtual-list--cursor")
            if not self.has_focus:
                style = self.get_component_rich_style("virtual-list--dim")
            text.stylize(style)
        strip = Strip(list(text.render(self.app.console, end="")), width)
        return strip.apply_style(base)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
