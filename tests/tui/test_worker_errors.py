"""A worker that fails says so in its pane, in one line; nothing waits forever."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.screenshots import settle
from tests.tui_fixtures import SIZE, demo_dir, main_screen, make_app, pilot_test, plain
from tui.screens.restore import RestoreScreen

pytestmark = pytest.mark.timeout(120)


def fail(*args: Any, **kwargs: Any) -> Any:
    raise OSError("disk went away")


@pilot_test
async def test_failed_preview_and_activity_say_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tui.panes.checkpoints.build_preview", fail)
    monkeypatch.setattr("tui.panes.checkpoints.compute_activity", fail)
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = main_screen(app)
        shown = plain(main.query_one("#preview"))
        assert "could not read this range: disk went away" in shown
        assert "reading its range" not in shown and "Traceback" not in shown
        assert "could not count the messages: disk went away" in str(
            main.query_one("#activity").render()
        )
        # Another checkpoint tries again (and fails the same way, for itself).
        await pilot.press("j")
        await settle(pilot)
        assert "could not read this range: disk went away" in plain(main.query_one("#preview"))


@pilot_test
async def test_failed_search_and_diagnostics_say_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class BrokenSearcher:
        def search(self, query: Any, **options: Any) -> Any:
            fail()

        def close(self) -> None:
            pass

    monkeypatch.setattr("tui.app.open_searcher", lambda root: BrokenSearcher())
    app = make_app(demo_dir(tmp_path))

    class BrokenProbe:
        def collect(self, log_dir: Path, now: float) -> Any:
            raise PermissionError("status file unreadable")

    app.probe = BrokenProbe()  # type: ignore[assignment]
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = main_screen(app)
        await pilot.press("slash", *"migration")
        await settle(pilot, 0.4)
        assert "search failed: disk went away" in plain(main.query_one("#search-status"))
        await pilot.press("escape", "escape", "4")
        await settle(pilot)
        assert "could not read the recorder's state: status file unreadable" in plain(
            main.query_one("#diag")
        )


@pilot_test
async def test_a_search_index_of_a_later_version_is_named_in_the_search_pane(
    tmp_path: Path,
) -> None:
    """A domain error says what it says, without its class name (`IndexNewer: ...`)."""
    import sqlite3

    from recorder.search.engine import SearchEngine
    from recorder.search.index import SCHEMA_VERSION

    root = demo_dir(tmp_path)
    with SearchEngine(root) as engine:
        engine.catch_up()
    db = sqlite3.connect(root / "search" / "index.sqlite3")
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION + 1,))
    db.commit()
    db.close()
    app = make_app(root)
    async with app.run_test(size=(200, 40)) as pilot:
        await settle(pilot)
        main = main_screen(app)
        await pilot.press("slash", *"migration")
        await settle(pilot, 0.4)
        status = plain(main.query_one("#search-status"))
        assert "search failed: the search index" in status, status
        assert "was made by a later version" in status and "IndexNewer" not in status


@pilot_test
async def test_a_folder_where_the_search_index_goes_is_named_in_the_search_pane(
    tmp_path: Path,
) -> None:
    """A folder at `search/index.sqlite3`: the pane said the OS's `[Errno 21] Is a
    directory` and nothing of a fix; now what is there, and the command that moves it
    aside (`IndexInTheWay`, test_cli_errors)."""
    import shutil

    root = demo_dir(tmp_path)
    shutil.rmtree(root / "search", ignore_errors=True)
    (root / "search" / "index.sqlite3").mkdir(parents=True)
    app = make_app(root)
    async with app.run_test(size=(240, 40)) as pilot:
        await settle(pilot)
        main = main_screen(app)
        await pilot.press("slash", *"migration")
        await settle(pilot, 0.4)
        status = plain(main.query_one("#search-status"))
        assert "search failed: cannot use the search index: " in status, status
        assert "index.sqlite3 is a folder, not a file" in status, status
        assert "Errno" not in status, status  # the fix follows (cut at 200 characters here)


@pilot_test
async def test_failed_integrity_check_still_lets_you_restore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("unexpected record")

    monkeypatch.setattr("tui.screens.restore.check_range", broken)
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RestoreScreen)
        shown = plain(screen.query_one("#restore-integrity"))
        assert "cannot verify: ValueError: unexpected record" in shown
        assert not screen.query_one("#confirm").disabled
        await pilot.press("enter")
        await pilot.pause()
    assert app.return_value is not None and app.return_value.verified is False
