"""The Checkpoints pane's activity strip follows a journal that grows under it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.demo_journal import AGENTS, DemoWriter
from tests.screenshots import settle
from tests.tui_fixtures import main_screen, make_app, pilot_test
from tui.widgets.activity_strip import ActivityStrip

pytestmark = pytest.mark.timeout(120)


@pilot_test
async def test_the_activity_strip_counts_new_messages_without_a_new_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was counted when the journal loaded and at each new checkpoint only: a flood
    into a live journal left it at "0 messages" until the next checkpoint (up to 5
    minutes later)."""
    import tui.panes.checkpoints as pane

    monkeypatch.setattr(pane, "ACTIVITY_EVERY", 1.0)
    root = tmp_path / "logs"
    w = DemoWriter.open(root)
    t0 = time.time() - 60
    for i in range(20):
        w.message(t0 + i, AGENTS[i % 4], f"before the app opened {i}")
    w.checkpoint(t0 + 21, "first", "manual")
    w.journal.flush()
    app = make_app(root, live=True)  # the real poll
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            strip = main_screen(app).query_one("#activity", ActivityStrip)
            deadline = time.monotonic() + 30
            while strip.activity is None and time.monotonic() < deadline:
                await pilot.pause(0.05)
            assert strip.activity is not None
            before = strip.activity.records
            assert sum(strip.activity.counts) == 20
            # within the window of the count above: a burst, then quiet (the end of a
            # burst was never counted when only the window's first growth was)
            for i in range(300):
                w.message(t0 + 30 + i * 0.1, AGENTS[i % 4], f"live {i}")
            w.journal.flush()
            while strip.activity.records < before + 300 and time.monotonic() < deadline:
                await pilot.pause(0.05)
            assert strip.activity.records == before + 300
            assert sum(strip.activity.counts) >= 300  # counted by samples past a few hundred
    finally:
        w.close()
