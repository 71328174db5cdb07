"""The journal's files change under an open persist-tui other than by growing: the log
folder removed (and recorded into again), a closed segment removed, the segment being
written truncated, old segments pruned. The open TUI used to go on showing the records
that were gone as live ("● following") and call the journal whole; it now says the
journal was removed while it is, and otherwise shows and names what a TUI started then
shows (its records, its count, the missing segment in Diagnostics and the restore
dialog). The polls are driven by hand (`app.poll()`): no timing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from recorder.cli.main import main
from recorder.store.layout import Layout, list_segments
from recorder.store.reader import open_store
from tests.demo_journal import BASE_TS, NOW, DemoWriter, healthy_status, write_status
from tests.screenshots import settle
from tests.tui_fixtures import demo_dir, main_screen, make_app, pilot_test, plain, screen_chars
from tui.app import PersistApp
from tui.screens.conversation import ConversationScreen
from tui.screens.detail import DetailScreen
from tui.screens.restore import RestoreScreen

SIZE = (120, 36)


def journal(root: Path, word: str, n: int, *, segment_bytes: int = 64 << 20) -> None:
    w = DemoWriter.open(root, segment_bytes=segment_bytes, clock=lambda: BASE_TS)
    for i in range(1, n + 1):
        w.message(BASE_TS + i, word.lower(), f"{word} {i} " + "x" * 60)
    w.checkpoint(BASE_TS + n + 0.5, f"{word.lower()}cp", "manual")
    w.close()


def fresh_count(root: Path) -> int:
    with open_store(root) as store:
        return len(store)


def recent_status(app: PersistApp) -> str:
    return plain(main_screen(app).recent_pane.query_one("#recent-status"), 300)


def top_bar(app: PersistApp) -> str:
    return plain(main_screen(app).query_one("#top-bar"), 300)


@pilot_test
async def test_the_log_folder_removed_then_recorded_into_again(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    journal(root, "OLD", 5)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        assert "OLD 5" in screen_chars(app) and "● following" in recent_status(app)

        shutil.rmtree(root)
        app.poll()
        await settle(pilot)
        shown = screen_chars(app)
        assert "OLD" not in shown, shown
        assert "the journal was removed" in recent_status(app)
        assert "record" not in top_bar(app) and "journal removed" in top_bar(app)
        await pilot.press("1")
        await settle(pilot)
        assert "The journal was removed" in screen_chars(app)
        assert "oldcp" not in screen_chars(app)

        journal(root, "NEW", 2)
        app.poll()  # segments/ is back: loaded as a TUI started now loads it
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        shown = screen_chars(app)
        assert "NEW 1" in shown and "NEW 2" in shown and "OLD" not in shown, shown
        assert f"● following  {fresh_count(root)} records" in recent_status(app)
        await pilot.press("1")
        await settle(pilot)
        assert "newcp" in screen_chars(app) and "oldcp" not in screen_chars(app)


def refuse(monkeypatch: pytest.MonkeyPatch, refused: Callable[[Path], bool]) -> None:
    """What the OS answers a user about files of another user's: each path `refused`
    names is refused (EACCES). As root the modes do not apply: the refusal is made here."""
    for name in ("stat", "open", "scandir", "listdir"):
        real = getattr(os, name)

        def refusing(path: Any, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            if isinstance(path, str | os.PathLike) and refused(Path(path)):
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(os, name, refusing)


def refuse_below(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder of another user's (0700): it is there, and every path below it is refused."""
    refuse(monkeypatch, lambda path: path.parent.is_relative_to(root))


@pilot_test
async def test_a_log_folder_handed_to_another_user_is_said_never_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log folder becomes another user's (0700) while the TUI waits for a journal:
    its poll asked `segments.is_dir()`, which raised PermissionError, and the app ended
    with a Rich traceback (exit 1; before 2026-12-08). Now the problem is shown where the
    checkpoints would be, with no start command (whether a recorder runs is unknown)."""
    root = tmp_path / "logs"
    root.mkdir()
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.journal.loaded and app.journal.store is None
        refuse_below(root, monkeypatch)
        app.poll()
        await settle(pilot)
        said = f"cannot read {root}: [Errno 13] Permission denied: '{root / 'segments'}'"
        assert app.journal.error == said
        shown = screen_chars(app)
        assert "This view updates by itself once the folder can be read" in shown, shown
        assert "persist record" not in shown  # whether one runs there is unknown
        monkeypatch.undo()
        journal(root, "NEW", 2)  # its owner's again, and recorded into
        app.poll()
        await settle(pilot)
        assert app.journal.store is not None and "cannot read" not in screen_chars(app)


@pilot_test
async def test_a_log_folder_that_becomes_unreadable_shows_no_health_it_last_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recorder runs, and its log folder becomes another user's while the TUI is open:
    the top bar and Diagnostics went on saying "healthy" (the last sample they had; before
    2026-12-08), though whether a recorder runs could no longer be told. Now both say
    unknown, Diagnostics with the reason, the launch menu names it too; and once the
    folder can be read again, the recorder's health and the journal come back."""
    root = demo_dir(tmp_path, status="healthy")
    app = make_app(root, launch=True, agent="coder")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "Welcome back, coder" in screen_chars(app)
        assert "● healthy" in top_bar(app)

        refuse_below(root, monkeypatch)
        app.poll()  # sees at once that the folder cannot be read (no sample waited for)
        await settle(pilot)
        shown = screen_chars(app)
        assert "Welcome back, coder" in shown and "cannot read" in shown, shown
        assert "Permission denied" in shown, shown
        bar = top_bar(app)
        assert "healthy" not in bar and "? unknown" in bar, bar
        assert "cannot read the log folder" in bar and "records" not in bar, bar
        await pilot.press("d")  # the launch menu's Diagnostics
        await settle(pilot)
        shown = " ".join(screen_chars(app).split())  # the reason wraps where the path ends
        assert "? UNKNOWN" in shown and f"whether a recorder holds {root}" in shown, shown
        assert "HEALTHY" not in shown and "Start the recorder" not in shown, shown
        assert "Last checkpoint" not in shown and "Last error" not in shown, shown

        monkeypatch.undo()
        app.poll()
        await settle(pilot)
        assert "● healthy" in top_bar(app)
        shown = screen_chars(app)
        assert "● HEALTHY" in shown and "cannot read" not in shown, shown
        await pilot.press("1")
        await settle(pilot)
        assert "cannot read" not in screen_chars(app)


@pilot_test
async def test_no_checkpoints_yet_names_no_start_command_when_a_recorder_may_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal can be read, but the status and lock file no more (a `sudo persist
    record` holds the folder now): the top bar went on saying "healthy" and the "No
    checkpoints yet" view went on as if a recorder ran (before 2026-12-08). Now both say
    whether a recorder runs is unknown, the view with why, and no start command (it
    could start a second recorder)."""
    root = tmp_path / "logs"
    w = DemoWriter.open(root, clock=lambda: BASE_TS)
    w.message(BASE_TS + 1, "a", "hello")
    w.close()
    me = psutil.Process()
    write_status(root, healthy_status(root, NOW, me.pid, me.create_time()))
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        shown = screen_chars(app)
        assert "No checkpoints yet" in shown and "Start it with" not in shown, shown
        layout = Layout(root)
        held = {layout.status, layout.status_reserve, layout.lock}
        refuse(monkeypatch, lambda path: path in held)
        main_screen(app).diagnostics_pane.sample()  # its timer's next sample
        await settle(pilot)
        assert "? unknown" in top_bar(app)
        shown = " ".join(screen_chars(app).split())
        assert "Whether a recorder runs here is unknown: " in shown, shown
        assert f"whether a recorder holds {root} cannot be told" in shown, shown
        assert "persist record" not in shown, shown


@pilot_test
async def test_the_log_folder_replaced_between_two_polls(tmp_path: Path) -> None:
    """Removed and recorded into again before the next poll: seg-000001.jsonl is another
    file at the same name (the TUI held the deleted one open and read on through it)."""
    root = tmp_path / "logs"
    journal(root, "OLD", 5)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        assert "OLD 5" in screen_chars(app)
        shutil.rmtree(root)
        journal(root, "NEW", 2)
        app.poll()
        await settle(pilot)
        shown = screen_chars(app)
        assert "NEW 2" in shown and "OLD" not in shown, shown
        assert f"● following  {fresh_count(root)} records" in recent_status(app)
        assert f"{fresh_count(root)} records" in top_bar(app)
        assert app.journal.checkpoints is not None
        assert [cp.label for cp in app.journal.checkpoints] == ["newcp"]


@pilot_test
async def test_a_closed_segment_removed_is_named_in_diagnostics_and_the_restore_dialog(
    tmp_path: Path,
) -> None:
    root = tmp_path / "logs"
    journal(root, "message", 120, segment_bytes=4096)
    segments = list_segments(Layout(root))
    assert len(segments) > 4
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        assert "no missing segment" in screen_chars(app)
        before = len(app.journal.store or ())

        segments[1].unlink()  # seg-000002.jsonl, closed
        app.poll()
        await settle(pilot)
        assert len(app.journal.store or ()) == fresh_count(root) < before
        assert f"{fresh_count(root):,} records" in top_bar(app)
        await pilot.press("1")  # Diagnostics looks at the journal each time it is shown
        await pilot.press("4")
        await settle(pilot)
        shown = screen_chars(app)
        assert "seg-000002.jsonl is missing from segments/" in shown, shown

        await pilot.press("1")
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, RestoreScreen)
        said = plain(app.screen.query_one("#restore-integrity"), 300)
        assert "seg-000002.jsonl is missing" in said, said


@pilot_test
async def test_the_segment_being_written_truncated_lists_no_row_past_its_end(
    tmp_path: Path,
) -> None:
    root = tmp_path / "logs"
    journal(root, "message", 40)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        assert "message 40 " in screen_chars(app)
        seg = list_segments(Layout(root))[-1]
        data = seg.read_bytes()
        os.truncate(seg, data.index(b"message 20 "))  # inside message 20's line
        app.poll()
        await settle(pilot)
        recent = main_screen(app).recent_pane
        shown = screen_chars(app)
        assert "message 19 " in shown and "message 20 " not in shown, shown
        assert recent.messages.row_count == 19  # messages 1-19 (bookkeeping hidden)
        await pilot.press("enter")  # the row under the cursor is one still there
        await settle(pilot)
        assert "message 19 " in screen_chars(app)


@pilot_test
async def test_pruned_records_leave_the_open_view(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    journal(root, "message", 200, segment_bytes=4096)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        before = len(app.journal.store or ())
        assert main(["prune", "--max-size", "12K", "--log-dir", str(root)]) == 0
        app.poll()
        await settle(pilot)
        assert len(app.journal.store or ()) == fresh_count(root) < before
        assert f"● following  {fresh_count(root)} records" in recent_status(app)
        await pilot.press("4")
        await settle(pilot)
        shown = screen_chars(app)
        assert "no missing segment" in shown and "is missing" not in shown, shown


@pilot_test
async def test_an_open_conversation_follows_its_records_when_older_ones_are_pruned(
    tmp_path: Path,
) -> None:
    """The conversation view holds global indices; once older segments are pruned
    those point further on (or past the end): it is moved to the same record."""
    root = tmp_path / "logs"
    journal(root, "message", 200, segment_bytes=4096)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("enter")  # the checkpoint's conversation, at its last message
        await settle(pilot)
        conv = app.screen
        assert isinstance(conv, ConversationScreen)
        store = conv.view.store
        await pilot.press("k", "k")
        at = store.record(conv.view.selected)
        assert at.payload["text"].startswith("message 198 ")
        assert main(["prune", "--max-size", "12K", "--log-dir", str(root)]) == 0
        app.poll()
        await settle(pilot)
        assert app.screen is conv
        assert store.record(conv.view.selected).payload["text"].startswith("message 198 ")
        status = plain(conv.query_one("#conversation-status"), 300)
        assert f"/{fresh_count(root):,}" in status, status
        notices = [n.message for n in app._notifications]
        assert any("stays at the same message" in n for n in notices), notices
        await pilot.press("j")
        await settle(pilot)
        assert store.record(conv.view.selected).payload["text"].startswith("message 199 ")


@pilot_test
async def test_an_open_conversation_whose_records_are_gone_is_closed_and_says_so(
    tmp_path: Path,
) -> None:
    root = tmp_path / "logs"
    journal(root, "OLD", 30)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        conv = app.screen
        assert isinstance(conv, ConversationScreen)
        await pilot.press("enter")  # the record view over it
        await settle(pilot)
        shutil.rmtree(root)
        journal(root, "NEW", 2)
        app.poll()
        await settle(pilot)
        assert not isinstance(app.screen, ConversationScreen | DetailScreen), app.screen
        shown = screen_chars(app)
        assert "OLD" not in shown, shown
        notices = [n.message for n in app._notifications]
        assert any("no longer in the journal" in n for n in notices), notices
        await pilot.press("j", "k", "G")
        await settle(pilot)
