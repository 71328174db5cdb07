"""The launch menu as a new user meets it: an empty folder, coming back from the
picker, continuing with one question, and checkpoints at the same position."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, OptionList

from tests.demo_journal import BASE_TS, NOW, DemoClock, DemoWriter
from tests.screenshots import settle
from tests.tui_fixtures import SIZE, demo_dir, make_app, pilot_test, plain
from tui.screens.launch import LaunchScreen
from tui.screens.main import MainScreen
from tui.screens.restore import RestoreScreen


@pilot_test
async def test_empty_folder_offers_a_fresh_start(tmp_path: Path) -> None:
    app = make_app(tmp_path / "empty", launch=True, agent="coder")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        menu_screen = app.screen
        assert isinstance(menu_screen, LaunchScreen)
        title = plain(menu_screen.query_one("#launch-title"))
        assert "Welcome back" not in title and "Welcome, coder" in title
        assert "nothing recorded" in title
        menu = menu_screen.query_one(OptionList)
        assert menu.highlighted is not None
        assert menu.get_option_at_index(menu.highlighted).id == "fresh"
        pick = menu.get_option("pick")
        assert pick.disabled and "0 checkpoints" not in str(pick.prompt)
        await pilot.press("p")  # nothing to pick: the menu stays
        await pilot.pause()
        assert app.screen is menu_screen
        await pilot.press("a", "1")  # not an agent with sessions: nothing happens
        await pilot.pause()
        assert app.screen is menu_screen
        await pilot.press("enter")  # the highlighted item: start fresh
        await pilot.pause()
    assert app.return_value is not None and app.return_value.kind == "fresh"


@pilot_test
async def test_a_journal_of_the_recorders_own_records_is_not_welcomed_back(
    tmp_path: Path,
) -> None:
    """The launcher starts a recorder before the menu shows: its records (segment
    start, start event) and a shutdown checkpoint of 0 messages are no history."""
    root = tmp_path / "logs"
    w = DemoWriter.open(root, clock=DemoClock(NOW))
    w.record(NOW - 60, "event", event="start")
    w.checkpoint(NOW - 30, "", "shutdown")
    w.close()
    app = make_app(root, launch=True, agent="coder")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        title = plain(app.screen.query_one("#launch-title"))
        assert "Welcome, coder" in title and "nothing recorded" in title
        menu = app.screen.query_one(OptionList)  # a checkpoint of 0 messages: fresh first
        assert menu.highlighted is not None
        assert menu.get_option_at_index(menu.highlighted).id == "fresh"
    w = DemoWriter.open(root, clock=DemoClock(NOW))
    w.message(NOW, "planner", "first words")
    w.close()
    app = make_app(root, launch=True, agent="coder")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "Welcome back, coder" in plain(app.screen.query_one("#launch-title"))
        menu = app.screen.query_one(OptionList)
        assert menu.highlighted == 0  # continue


@pilot_test
async def test_escape_returns_to_the_menu_and_continue_asks_once(tmp_path: Path) -> None:
    app = make_app(demo_dir(tmp_path), launch=True, agent="coder")
    pushed: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        title = plain(app.screen.query_one("#launch-title"))
        assert "Welcome back, coder" in title
        await pilot.press("p")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        bindings = app.screen.active_bindings
        footer_keys = {k for k, b in bindings.items() if b.binding.show and b.enabled}
        assert {"escape", "f"} <= footer_keys  # Menu and Start fresh are on show
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, LaunchScreen)
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(app.screen, RestoreScreen)
        await pilot.press("escape")  # backing out of continue: the menu again
        await pilot.pause()
        assert isinstance(app.screen, LaunchScreen)
        await pilot.press("c")
        await settle(pilot)
        pushed = [type(s).__name__ for s in app.screen_stack]
        await pilot.press("enter")
        await pilot.pause()
    assert pushed.count("RestoreScreen") == 1
    assert app.return_value is not None and app.return_value.kind == "checkpoint"


@pilot_test
async def test_nothing_since_a_checkpoint_at_the_same_position(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    w = DemoWriter.open(root)
    for i in range(5):
        w.message(BASE_TS + i, "coder", f"message {i}")
    w.checkpoint(BASE_TS + 10, "first", "manual")
    w.checkpoint(BASE_TS + 20, "second, same place", "manual")
    w.close()
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = app.screen
        assert isinstance(main, MainScreen)
        pane = main.checkpoints_pane
        assert pane.checkpoint_list.highlighted is not None
        assert pane.checkpoint_list.highlighted.label == "second, same place"
        assert pane.preview is not None and pane.preview.messages == 0
        assert "Since the previous checkpoint: 0 messages" in plain(main.query_one("#preview"))


@pilot_test
async def test_escape_gets_back_to_the_menu_from_search(tmp_path: Path) -> None:
    """The menu's `s`: with nothing typed Esc is the menu's (and the footer says so);
    with a query, one Esc leaves the field for its results, the next is the menu's."""
    app = make_app(demo_dir(tmp_path), launch=True, agent="coder")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for typed in ("", "deploy"):
            await pilot.press("s")
            await settle(pilot)
            main = app.screen
            assert isinstance(main, MainScreen) and main.active_tab == "search"
            field = main.query_one("#search-input", Input)
            assert field.has_focus
            await pilot.press(*typed)
            await settle(pilot, 0.1)
            if typed:
                await pilot.press("escape")  # out of the field, the query kept
                await pilot.pause()
                assert main.query_one("#results").has_focus and field.value == typed
            bindings = main.active_bindings
            shown = {k: b.binding.description for k, b in bindings.items() if b.binding.show}
            assert shown.get("escape") == "Menu", shown
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, LaunchScreen), typed
