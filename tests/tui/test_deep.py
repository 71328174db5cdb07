"""The app opens on a journal with deeply nested messages and shows every one of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.process.test_deep_cli import deep_journal
from tests.screenshots import settle
from tests.tui_fixtures import SIZE, make_app, pilot_test
from tui.screens.detail import DetailScreen
from tui.screens.main import MainScreen
from tui.widgets.record_list import RecordList

HIDDEN = ("heartbeat", "event", "segment")  # bookkeeping, hidden in Recent by default
pytestmark = pytest.mark.timeout(120)


@pilot_test
async def test_opens_and_shows_deep_messages(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    payloads = deep_journal(root)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = app.screen_stack[1] if len(app.screen_stack) > 1 else app.screen
        assert isinstance(main, MainScreen)
        store = app.journal.store
        await pilot.press("3")
        messages = main.query_one("#messages", RecordList)
        assert messages.row_count == sum(1 for r in store.records() if r.kind not in HIDDEN)
        by_sender = {r.sender: messages.row_of(r.index) for r in store.records() if r.is_message}
        row = messages.render_row(by_sender["deep-300"], 200).plain
        assert payloads["deep-300"][:60].decode() in row  # the stored bytes, never re-written
        assert '{"from":"deep-1023"' in messages.render_row(by_sender["deep-1023"], 200).plain
        for sender in ("deep-300", "deep-1023"):
            messages.move_to(by_sender[sender])
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, DetailScreen)
            out = app.screen.view.plain_text()
            assert "payload" in out and "raw line" in out
            assert payloads[sender][:40].decode() in out.replace("\n", "")
            if sender == "deep-300":  # shown from the stored bytes: nothing to fall back from
                assert payloads[sender].decode() in out  # the text section, whole
            await pilot.press("escape")
            assert isinstance(app.screen, MainScreen)
