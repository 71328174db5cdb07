"""The restore dialog lists every problem in the range."""

from __future__ import annotations

from pathlib import Path

from tests.screenshots import settle
from tests.tui_fixtures import SIZE, demo_dir, make_app, pilot_test, plain
from tui.screens.restore import RestoreScreen


@pilot_test
async def test_restore_confirmation_shows_gaps_and_damage_in_range(tmp_path: Path) -> None:
    root = demo_dir(tmp_path)  # the demo journal has a gap, a bad line and a refused message
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("r")  # the newest checkpoint covers all of them
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RestoreScreen)
        shown = plain(screen.query_one("#restore-integrity"))
        assert "journal matches the checkpoint digest" in shown
        assert "1 gap, 4 messages known lost" in shown
        assert "1 damaged line" in shown and "1 refused message" in shown
        assert screen.integrity is not None and screen.integrity.bad_lines == 1
        assert not screen.query_one("#confirm").disabled
