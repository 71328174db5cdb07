"""The app opens on a journal holding wrongly typed and odd records (made by hand, or
damaged): each row is shown, a wrongly typed line as a damaged one, and opening any
of them fails nowhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.process.test_export import ODD_BUT_READABLE, WRONGLY_TYPED, odd_journal
from tests.screenshots import settle
from tests.tui_fixtures import SIZE, make_app, pilot_test
from tui.screens.detail import DetailScreen
from tui.screens.main import MainScreen
from tui.widgets.record_list import RecordList

pytestmark = pytest.mark.timeout(120)


@pilot_test
async def test_odd_and_wrongly_typed_records_open_everywhere(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    odd_journal(root)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = app.screen_stack[1] if len(app.screen_stack) > 1 else app.screen
        assert isinstance(main, MainScreen)
        await pilot.press("3")
        messages = main.query_one("#messages", RecordList)
        store = app.journal.store
        assert sum(r.kind == "bad-line" for r in store.records()) == len(WRONGLY_TYPED)
        assert messages.row_count == len(WRONGLY_TYPED) + len(ODD_BUT_READABLE) + 1
        for row in range(messages.row_count):
            assert messages.render_row(row, 120).plain
            messages.move_to(row)
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, DetailScreen)
            assert app.screen.view.plain_text()
            await pilot.press("escape")
            assert isinstance(app.screen, MainScreen)
