"""Ages ("15s ago") keep counting while the app is open."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

from textual.widgets import OptionList

from tests.demo_journal import NOW, FixedProbe
from tests.screenshots import settle
from tests.tui_fixtures import SIZE, demo_dir, pilot_test, plain
from tui.app import create_app


async def after_a_tick(pilot: Any, shown: Callable[[], list[str]]) -> list[str]:
    """What `shown` reads once it changes (ages tick every second; a loaded machine runs
    the tick later: a fixed 1.5 s wait failed with load 8), or after 15 s."""
    first = shown()
    for _ in range(150):
        await pilot.pause(0.1)
        if shown() != first:
            break
    return shown()


@pilot_test
async def test_the_preview_age_ticks(tmp_path: Path) -> None:
    now = [NOW]
    app = create_app(demo_dir(tmp_path), now=lambda: now[0], tz=UTC, probe=FixedProbe(), live=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        first = re.findall(r"· ([0-9hms ]+) ago", plain(app.screen.query_one("#preview")))
        assert first, plain(app.screen.query_one("#preview"))
        now[0] += 3 * 3600
        later = await after_a_tick(
            pilot,
            lambda: re.findall(r"· ([0-9hms ]+) ago", plain(app.screen.query_one("#preview"))),
        )
        assert later and later != first


def test_when_tells_days_and_years_apart_in_eleven_characters() -> None:
    from datetime import UTC, datetime

    from tui.text import Clock

    now = datetime(2026, 12, 6, 10, 0, tzinfo=UTC).timestamp()
    clock = Clock(lambda: now, UTC)
    assert clock.when(now - 60) == "   09:59:00"
    assert clock.when(now - 86400) == "12-05 10:00"
    assert clock.when(datetime(2025, 10, 21, 20, 9, tzinfo=UTC).timestamp()) == "2025-10-21 "
    assert clock.when(None) == "   --:--:--"
    assert {len(clock.when(now - d * 86400)) for d in range(0, 800, 7)} == {11}


@pilot_test
async def test_the_launch_menus_ages_tick(tmp_path: Path) -> None:
    """The latest checkpoint's "(1h 23m ago)" on the menu's Continue row keeps counting,
    and the row highlighted stays highlighted."""
    now = [NOW]
    app = create_app(
        demo_dir(tmp_path),
        now=lambda: now[0],
        tz=UTC,
        probe=FixedProbe(),
        live=True,
        launch=True,
        agent="coder",
    )
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        menu = app.screen.query_one(OptionList)
        await pilot.press("j")  # off the default row
        await pilot.pause()
        highlighted = menu.highlighted

        def age() -> list[str]:
            return re.findall(r"\(([0-9hmsd ]+) ago\)", str(menu.get_option("continue").prompt))

        first = age()
        assert first
        now[0] += 3 * 3600
        later = await after_a_tick(pilot, age)
        assert later and later != first
        assert menu.highlighted == highlighted


@pilot_test
async def test_a_checkpoint_after_the_clock_is_in_the_future_not_0s_ago(tmp_path: Path) -> None:
    """Taken on a machine whose clock is ahead (or this clock set back): the preview and
    the restore dialog say how far in the future, never "0s ago"."""
    from recorder.store.reader import open_store

    root = demo_dir(tmp_path)
    newest = open_store(root).checkpoints()[0]
    app = create_app(root, now=lambda: newest.created - 314, tz=UTC, probe=FixedProbe(), live=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        preview = plain(app.screen.query_one("#preview"))
        assert "5m 14s in the future" in preview and "0s ago" not in preview, preview
        await pilot.press("r")
        await settle(pilot)
        summary = plain(app.screen.query_one("#restore-summary"))
        assert "(5m 14s in the future)" in summary, summary
    assert app.clock.ago(app.clock.now() + 0.5) == "0s ago"  # within a second: now


@pilot_test
async def test_the_restore_dialogs_age_ticks(tmp_path: Path) -> None:
    """ "Created … (1h 23m ago)" in the restore dialog stood still while it was open."""
    from tui.screens.restore import RestoreScreen

    now = [NOW]
    app = create_app(demo_dir(tmp_path), now=lambda: now[0], tz=UTC, probe=FixedProbe(), live=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, RestoreScreen)

        def created() -> list[str]:
            shown = plain(app.screen.query_one("#restore-summary"))
            return re.findall(r"Created .*\(([0-9dhms ]+) ago\)", shown)

        first = created()
        assert first
        now[0] += 3 * 3600
        later = await after_a_tick(pilot, created)
        assert later and later != first
