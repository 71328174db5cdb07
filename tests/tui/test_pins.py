"""The checkpoint timeline flags pinned checkpoints, and follows `persist pin` / `unpin`."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder.store.checkpoints import list_checkpoints
from recorder.store.layout import Layout
from recorder.store.pins import set_pin
from tests.screenshots import settle
from tests.tui_fixtures import SIZE, demo_dir, make_app, pilot_test, plain
from tui.widgets.checkpoint_list import PIN_MARK, CheckpointList

pytestmark = pytest.mark.timeout(120)


@pilot_test
async def test_pinned_checkpoints_are_flagged_in_the_timeline(tmp_path: Path) -> None:
    root = demo_dir(tmp_path)
    layout = Layout(root)
    pinned = next(cp for cp in list_checkpoints(layout) if cp.label == "release candidate approved")
    set_pin(layout, pinned.id, True)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        cps = app.screen.query_one("#cp-list", CheckpointList)

        def flagged() -> list[str]:
            return [
                row.checkpoint.label
                for i, row in enumerate(cps.rows)
                if row.checkpoint is not None and PIN_MARK in cps.render_row(i, 100).plain
            ]

        assert flagged() == ["release candidate approved"]
        cps.select_id(pinned.id)
        await settle(pilot)
        preview = app.screen.query_one("#preview")
        assert "pinned: kept through pruning" in plain(preview)
        set_pin(layout, pinned.id, False)  # `persist unpin` while the TUI is open
        app.poll()
        await settle(pilot)
        assert flagged() == []
        assert "pinned" not in plain(preview)
