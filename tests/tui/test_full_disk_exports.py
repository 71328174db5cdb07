"""On a full disk every save and export of the UI fails with its one-line error and
leaves nothing in the exports folder: no empty or cut file under a normal name, no
temp file. A real size-limited tmpfs (root only; skipped otherwise)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.demo_journal import BASE_TS, DemoWriter
from tests.process.test_stalls import fill, small_disk
from tests.screenshots import settle
from tests.tui_fixtures import SIZE, main_screen, make_app, pilot_test, wait_until
from tui.screens.conversation import ConversationScreen
from tui.screens.detail import DetailScreen

pytestmark = pytest.mark.timeout(120)


def errors(app) -> list[str]:  # type: ignore[no-untyped-def]
    return [n.message for n in app._notifications if n.severity == "error"]


@pilot_test
async def test_a_full_disk_leaves_no_file_from_any_save_or_export(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", 4) as disk:
        root = disk / "logs"
        w = DemoWriter.open(root)
        for i in range(200):
            w.message(BASE_TS + i, "coder", f"message {i} " + "x" * 2000)
        w.checkpoint(BASE_TS + 300, "first", "manual")
        w.close()
        exports = root / "exports"
        exports.mkdir(mode=0o700)  # as the first save makes it: here the files fail
        app = make_app(root)
        # errors are counted as notifications still shown: none may expire meanwhile
        # (5 s by default, which a loaded machine can take between two of them)
        app.NOTIFICATION_TIMEOUT = 600
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            main = main_screen(app)
            fill(disk / "filler")
            # the palette's "Export checkpoint range"
            main.checkpoints_pane.export_highlighted()
            await wait_until(pilot, lambda: errors(app), "the export to fail")
            assert sorted(p.name for p in exports.iterdir()) == []
            # Enter on the checkpoint, then y (copy) and e (export) of a turn
            await pilot.press("enter")
            await settle(pilot)
            conv = app.screen
            assert isinstance(conv, ConversationScreen)
            for key in ("y", "e"):
                await pilot.press(key)
                await wait_until(pilot, lambda: conv.job is None, f"{key} to end")
            assert len(errors(app)) == 3
            assert sorted(p.name for p in exports.iterdir()) == []
            await pilot.press("escape")
            await pilot.pause()
            # Recent: "Copy record" (palette), then s in the record view
            await pilot.press("3")
            await settle(pilot)
            main.recent_pane.copy_highlighted()
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, DetailScreen)
            await pilot.press("s")
            await pilot.pause()
            assert len(errors(app)) == 5
            assert all("No space left" in e for e in errors(app)), errors(app)
            assert sorted(p.name for p in exports.iterdir()) == []
            # with room again, the same saves write whole files
            (disk / "filler").unlink()
            await pilot.press("s")
            await pilot.pause()
            (saved,) = exports.iterdir()
            assert saved.name.startswith("record-") and saved.name.endswith(".jsonl")
            assert saved.read_bytes().count(b"\n") == 1 and saved.stat().st_mode & 0o777 == 0o600
