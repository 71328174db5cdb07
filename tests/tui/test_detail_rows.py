"""The record view draws all of a record: rows are counted on what is drawn (a control
character shown as a 4-cell `\\xNN`, a wide character that does not fit at a row's end
moved to the next row), so no text holding escapes loses its end."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.demo_journal import BASE_TS, DemoWriter
from tests.screenshots import settle
from tests.tui_fixtures import make_app, pilot_test
from tui.screens.detail import DetailScreen
from tui.screens.main import MainScreen
from tui.widgets.text_view import TextView

pytestmark = pytest.mark.timeout(120)

SIZE = (100, 30)  # the view is 97 cells wide (padding, scrollbar): odd, so wide
# characters leave one cell free at the end of each row they fill, and a line of as
# many of them as the width needs a third row
CONTROLS = "\x01" * 30 + " TAIL_MARKER_END"
ANSI = "\n".join(
    f"\x1b[3{i % 8}mline {i}\x1b[0m \x1b[1m" + "w" * 70 + f" ANSI_END_{i}" for i in range(6)
)
WIDE = "\n".join("日" * n for n in range(81, 100, 2)) + "\n" + "\t" * 30 + "TABS_END\r\x7f" * 9


def odd_texts(root: Path) -> None:
    w = DemoWriter.open(root)
    w.message(BASE_TS, "ctl", CONTROLS)
    w.message(BASE_TS + 1, "tool", ANSI)
    w.message(BASE_TS + 2, "wide", WIDE)
    w.bad_line(b'{"v":1,"seq":' + b"\x02" * 40 + b" BAD_LINE_END\n")
    w.close()


async def drawn(pilot, view: TextView) -> str:  # type: ignore[no-untyped-def]
    """Every row the view draws, scrolled through page by page, without the blanks."""
    rows: dict[int, str] = {}
    top = 0
    while True:
        view.scroll_to(0, top, animate=False, immediate=True)
        await pilot.pause()
        start = int(view.scroll_y)
        for y in range(view.size.height):
            if start + y < view.row_count:
                rows[start + y] = "".join(seg.text for seg in view.render_line(y))
        if start + view.size.height >= view.row_count:
            break
        top = start + view.size.height
    assert sorted(rows) == list(range(view.row_count))
    return "".join(rows[r] for r in sorted(rows))


@pilot_test
async def test_record_view_draws_every_character_of_odd_text(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    odd_texts(root)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = app.screen
        assert isinstance(main, MainScreen)
        await pilot.press("3")
        messages = main.recent_pane.messages
        assert messages.row_count == 4
        for row, marker in enumerate(("TAIL_MARKER_END", "ANSI_END_5", "TABS_END", "BAD_LINE_END")):
            messages.move_to(row)
            await pilot.press("enter")
            await pilot.pause()
            detail = app.screen
            assert isinstance(detail, DetailScreen)
            view = detail.view
            if marker == "TABS_END":
                assert view.scrollable_content_region.width % 2 == 1
            shown = "".join(view.plain_text().split())
            on_screen = "".join((await drawn(pilot, view)).split())
            assert marker in shown
            assert on_screen == shown, f"record {row}: drawn rows lose or repeat text"
            await pilot.press("escape")
            assert isinstance(app.screen, MainScreen)
