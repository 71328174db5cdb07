"""The Checkpoints preview follows a journal that grows after the highlighted checkpoint.

Its rows "first after" the checkpoint were read once, when the checkpoint was first
highlighted: a checkpoint taken a moment ago kept "(nothing recorded after it yet)" while
messages arrived after it, until the user moved away and back. The rows now fill in as
the journal grows, without moving the selection or the preview's scroll, and a preview
whose rows are full is not read again at each growth."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.demo_journal import AGENTS, DemoWriter
from tests.screenshots import settle
from tests.tui_fixtures import main_screen, make_app, pilot_test, plain, wait_until
from tui.panes.checkpoints import CheckpointsPane

pytestmark = pytest.mark.timeout(120)


def after_rows(text: str) -> str:
    """The preview's text from its "first after" rule on."""
    return text[text.index("first after") :]


@pilot_test
async def test_the_preview_fills_in_the_messages_recorded_after_the_checkpoint(
    tmp_path: Path,
) -> None:
    root = tmp_path / "logs"
    w = DemoWriter.open(root)
    t0 = time.time() - 120
    for i in range(30):
        w.message(t0 + i, AGENTS[i % 4], f"early message {i}")
    w.checkpoint(t0 + 31, "older", "manual")
    w.message(t0 + 32, AGENTS[0], "before the newest checkpoint")
    w.checkpoint(t0 + 33, "newest", "manual")
    w.journal.flush()
    app = make_app(root, live=True)  # the real poll
    try:
        async with app.run_test(size=(100, 16)) as pilot:
            await settle(pilot)
            pane = main_screen(app).query_one(CheckpointsPane)
            preview = pane.query_one("#preview")
            scroller = pane.query_one("#preview-pane")
            cps = pane.checkpoint_list
            await wait_until(
                pilot, lambda: "nothing recorded after it yet" in plain(preview), "the preview"
            )
            assert cps.highlighted is not None and cps.highlighted.label == "newest"
            highlighted = cps.highlighted.id
            scroller.scroll_to(y=3, animate=False)
            await settle(pilot)
            scrolled = scroller.scroll_y
            assert scrolled > 0

            w.message(t0 + 40, AGENTS[1], "first after the checkpoint")
            w.journal.flush()
            await wait_until(
                pilot, lambda: "first after the checkpoint" in plain(preview), "the first row"
            )
            for i in range(5):
                w.message(t0 + 41 + i, AGENTS[i % 4], f"later message {i}")
            w.journal.flush()
            await wait_until(
                pilot, lambda: "later message 2" in plain(preview), "the rows filled in"
            )
            rows = after_rows(plain(preview))
            assert "nothing recorded" not in rows
            assert "later message 3" not in rows  # four rows, as when it was first read
            assert cps.highlighted is not None and cps.highlighted.id == highlighted
            assert scroller.scroll_y == scrolled

            # its rows full: more growth reads nothing for it
            full = pane.preview
            assert full is not None
            for i in range(20):
                w.message(t0 + 50 + i, AGENTS[i % 4], f"much later {i}")
                w.journal.flush()
                await pilot.pause(app.poll_interval)
            await settle(pilot)
            assert pane.preview is full
            assert "much later" not in plain(preview)
    finally:
        w.close()
