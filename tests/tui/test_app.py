"""Pilot tests: every screen and every path to a result."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
from textual.widgets._tabbed_content import ContentTabs

from recorder.cli.common import terminal_json
from recorder.export.render import record_text
from recorder.launch.selection import Selection
from recorder.store.layout import Layout
from recorder.store.reader import open_store
from tests.demo_journal import NOW, DemoClock, DemoWriter
from tests.screenshots import settle
from tests.tui_fixtures import SIZE, SMALL, demo_dir, main_screen, make_app, pilot_test, plain
from tui.panes.search import ResultList
from tui.screens.detail import DetailScreen
from tui.screens.help import HelpScreen
from tui.screens.launch import LaunchScreen
from tui.screens.main import MainScreen
from tui.screens.restore import RestoreScreen
from tui.widgets.checkpoint_list import CheckpointList
from tui.widgets.record_list import RecordList

pytestmark = pytest.mark.timeout(120)


@pilot_test
async def test_opens_with_checkpoints_and_recent(tmp_path: Path) -> None:
    root = demo_dir(tmp_path)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = main_screen(app)
        cps = main.query_one("#cp-list", CheckpointList)
        assert cps.highlighted is not None
        assert cps.highlighted.label == "auto #7"  # newest first
        assert [r.kind for r in cps.rows[:2]] == ["day", "segment"]
        messages = main.query_one("#messages", RecordList)
        store = app.journal.store
        bookkeeping = [r for r in store.records() if r.kind in ("heartbeat", "event", "segment")]
        assert bookkeeping  # hidden by default
        assert messages.row_count == len(store) - len(bookkeeping)
        assert messages.cursor == messages.row_count - 1
        preview = main.checkpoints_pane.preview
        assert preview is not None and preview.checkpoint.label == "auto #7"
        assert main.query_one("#activity").activity.total == len(app.journal.store)
        await pilot.press("j")
        assert cps.highlighted.label == "release candidate approved"
        await pilot.press("G")
        assert cps.highlighted.label == "auto #1"
        await pilot.press("g")
        assert cps.highlighted.label == "auto #7"


@pilot_test
async def test_restore_confirm_returns_verified_selection(tmp_path: Path) -> None:
    root = demo_dir(tmp_path)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("j", "r")  # Enter opens the conversation; r restores
        await settle(pilot)
        assert isinstance(app.screen, RestoreScreen)
        assert app.screen.verification is not None and app.screen.verification.ok
        await pilot.press("enter")
        await pilot.pause()
    sel = app.return_value
    assert isinstance(sel, Selection)
    assert sel.kind == "checkpoint" and sel.label == "release candidate approved"
    assert sel.verified is True
    data = sel.to_json()
    cp = next(c for c in open_store(root).checkpoints() if c.id == sel.checkpoint_id)
    assert data["position"] == {
        "segment": f"seg-{cp.segment:06d}.jsonl",
        "offset": cp.offset,
        "seq": cp.seq,
    }
    assert data["messages"] == cp.messages and data["log_dir"] == str(root)


@pilot_test
async def test_pane_keys_work_with_focus_on_the_tab_bar(tmp_path: Path) -> None:
    root = demo_dir(tmp_path)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = main_screen(app)
        main.query_one(ContentTabs).focus()
        await pilot.pause()
        await pilot.press("p")  # Recent's key, but Checkpoints is on show: nothing
        assert main.recent_pane.following and not isinstance(app.screen, RestoreScreen)
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, RestoreScreen)
        await pilot.press("escape")
        await pilot.press("3")
        main.query_one(ContentTabs).focus()
        await pilot.pause()
        await pilot.press("p")
        assert not main.recent_pane.following


@pilot_test
async def test_restore_of_damaged_journal_says_unverified(tmp_path: Path) -> None:
    root = demo_dir(tmp_path)
    seg = Layout(root).segment_path(1)
    raw = bytearray(seg.read_bytes())
    raw[200] = ord("X")
    seg.write_bytes(bytes(raw))
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        assert not app.screen.verification.ok
        assert "seg-000001.jsonl differs" in app.screen.verification.summary
        await pilot.press("y")
        await pilot.pause()
    assert app.return_value.verified is False


@pilot_test
async def test_restore_cancel_returns_to_list_then_quit_gives_none(tmp_path: Path) -> None:
    root = demo_dir(tmp_path)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_value is None


@pilot_test
async def test_launch_start_fresh(tmp_path: Path) -> None:
    app = make_app(demo_dir(tmp_path), launch=True, agent="coder")
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, LaunchScreen)
        await pilot.press("f")
        await pilot.pause()
    assert app.return_value is not None
    assert app.return_value.kind == "fresh" and app.return_value.agent == "coder"
    assert app.return_value.checkpoint_id is None


@pilot_test
async def test_launch_continue_restores_latest(tmp_path: Path) -> None:
    root = demo_dir(tmp_path)
    app = make_app(root, launch=True, agent="coder")
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("enter")  # "continue" is highlighted first
        await settle(pilot)
        assert isinstance(app.screen, RestoreScreen)
        await pilot.press("enter")
        await pilot.pause()
    assert app.return_value.kind == "checkpoint"
    assert app.return_value.checkpoint_id == open_store(root).checkpoints()[0].id


@pilot_test
async def test_launch_pick_search_diagnostics_and_quit(tmp_path: Path) -> None:
    app = make_app(demo_dir(tmp_path), launch=True)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await pilot.pause()
        main = main_screen(app)
        assert app.screen is main and main.active_tab == "checkpoints"
        await pilot.press("q")
        await pilot.pause()
    assert app.return_value is None
    for key, tab in (("s", "search"), ("d", "diagnostics")):
        app = make_app(demo_dir(tmp_path / key), launch=True)
        async with app.run_test(size=SMALL) as pilot:
            await settle(pilot)
            await pilot.press(key)
            await pilot.pause()
            assert main_screen(app).active_tab == tab


@pilot_test
async def test_empty_folder_says_what_to_run(tmp_path: Path) -> None:
    root = tmp_path / "nothing-here"
    app = make_app(root)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        main = main_screen(app)
        text = plain(main.query_one("#cp-empty"))
        assert "No journal here yet" in text
        assert f"persist record --broker tcp://127.0.0.1:5555 --log-dir {root}" in text
        assert main.query_one("#messages", RecordList).row_count == 0
        await pilot.press("r")  # nothing to restore: a notice, no crash
        await pilot.press("3", "enter", "4")
        await settle(pilot)
        assert "no journal in this folder yet" in plain(main.query_one("#diag"))
        # The recorder starts: the view picks the journal up on the next poll.
        w = DemoWriter.open(root, clock=DemoClock(NOW))
        w.message(NOW, "planner", "first words")
        w.close()
        app.poll()
        await settle(pilot)
        assert main.query_one("#messages", RecordList).row_count == 1  # the segment start hidden
        assert "No checkpoints yet" in plain(main.query_one("#cp-empty"))


@pilot_test
async def test_no_checkpoints_yet_counts_the_records_as_the_journal_grows(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    w = DemoWriter.open(root, clock=DemoClock(NOW))
    w.message(NOW, "planner", "first words")
    w.close()
    app = make_app(root)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        main = main_screen(app)
        store = app.journal.store
        assert store is not None
        before = len(store)
        assert f"{before} records in" in plain(main.query_one("#cp-empty"))
        w = DemoWriter.open(root, clock=DemoClock(NOW))
        for i in range(20):
            w.message(NOW + i, "planner", f"more words {i}")
        w.close()
        app.poll()
        await settle(pilot)
        assert len(store) == before + 20
        text = plain(main.query_one("#cp-empty"))
        assert "No checkpoints yet" in text and f"{before + 20} records in" in text


@pilot_test
async def test_corrupted_lines_show_escaped_and_flagged(tmp_path: Path) -> None:
    root = demo_dir(tmp_path)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = main_screen(app)
        store = app.journal.store
        bad = next(r.index for r in store.records() if r.kind == "bad-line")
        evil = next(r.index for r in store.records() if r.sender == "mallory")
        messages = main.query_one("#messages", RecordList)
        bad, evil = messages.row_of(bad), messages.row_of(evil)
        assert bad is not None and evil is not None
        for row_no in (bad, evil):
            row = messages.render_row(row_no, 100).plain
            assert "\x1b" not in row and "\x00" not in row and "\u202e" not in row
        assert "\\x1b[2J" in messages.render_row(evil, 200).plain
        assert "BAD-LINE" in messages.render_row(bad, 100).plain
        # The checkpoint whose range holds the bad line says so in its preview.
        cps = main.query_one("#cp-list", CheckpointList)
        cps.select_id(next(c.id for c in store.checkpoints() if c.label == "ace-6 decision"))
        await settle(pilot)
        assert main.checkpoints_pane.preview.problem_counts["bad-line"] == 1
        assert "unreadable line" in plain(main.query_one("#preview"))
        # The detail view of the hostile message never contains a raw escape.
        await pilot.press("3")
        messages.move_to(evil)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        out = app.screen.view.plain_text()
        assert "\x1b" not in out and "\\x1b]0;owned\\x07" in out and "\\u202e" in out
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


@pilot_test
async def test_gap_shows_in_preview(tmp_path: Path) -> None:
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = main_screen(app)
        cps = main.query_one("#cp-list", CheckpointList)
        cps.select_id(
            next(c.id for c in app.journal.checkpoints if c.label == "before schema migration")
        )
        await settle(pilot)
        preview = main.checkpoints_pane.preview
        assert preview.problem_counts["gap"] == 1 and preview.missed == 4
        assert "4 messages missed" in plain(main.query_one("#preview"))
        # Recent's row says it as the conversation view and the exports do
        gap = next(r for r in app.journal.store.records() if r.kind == "gap")
        messages = main.query_one("#messages", RecordList)
        row_no = messages.row_of(gap.index)
        assert row_no is not None
        row = messages.render_row(row_no, 200).plain
        assert "gap (" in row and "4 messages lost" in row and "?" not in row, row


@pilot_test
async def test_search_fuzzy_filters_and_jump(tmp_path: Path) -> None:
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = main_screen(app)
        await pilot.press("slash")
        assert main.active_tab == "search"
        await pilot.press(*"migraton from:coder")
        await settle(pilot, 0.4)
        store = app.journal.store
        assert main.search_pane.hits, "fuzzy search found nothing"
        assert all(store.record(i).sender == "coder" for i in main.search_pane.hits)
        assert all("migration" in record_text(store.record(i)) for i in main.search_pane.hits)
        assert all(h.fuzzy for h in main.search_pane.result_hits)  # a typo: marked fuzzy
        results = main.query_one("#results", ResultList)
        row = results.render_row(0, 100).plain
        assert "migration" in row and " ~ " in row
        # Exact mode: the typo no longer matches.
        await pilot.press("ctrl+t")
        await settle(pilot, 0.4)
        assert main.search_pane.hits == []
        await pilot.press("ctrl+t")
        await settle(pilot, 0.4)
        # The first hit (by relevance) that has a checkpoint before it.
        pick = next(k for k, h in enumerate(main.search_pane.result_hits) if h.checkpoint)
        first = main.search_pane.hits[pick]
        await pilot.press("enter")  # field -> results
        results.move_to(pick)
        await pilot.press("enter")  # jump
        await pilot.pause()
        assert main.active_tab == "recent" and not main.recent_pane.following
        messages = main.query_one("#messages", RecordList)
        assert messages.record_index(messages.cursor) == first
        cp = main.recent_pane.context_checkpoint
        assert cp is not None and app.journal.boundaries[cp.id] <= first
        later = [c for c in app.journal.checkpoints if app.journal.boundaries[c.id] <= first]
        assert cp.id == later[0].id == main.search_pane.result_hits[pick].checkpoint
        await pilot.press("c")
        assert main.active_tab == "checkpoints"
        assert main.query_one("#cp-list", CheckpointList).highlighted.id == cp.id


@pilot_test
async def test_search_time_filter_and_bad_time(tmp_path: Path) -> None:
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = main_screen(app)
        await pilot.press("slash", *"since:2024-05-15")
        await settle(pilot, 0.4)
        store = app.journal.store
        hits = main.search_pane.hits
        assert hits and all(store.record(i).ts >= NOW - 12 * 3600 for i in hits)
        await pilot.press(*" until:tomorrowish")
        await settle(pilot, 0.4)
        assert "cannot read time" in plain(main.query_one("#search-status"))


@pilot_test
async def test_recent_follows_pauses_and_resumes(tmp_path: Path) -> None:
    root = demo_dir(tmp_path)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = main_screen(app)
        await pilot.press("3")
        messages = main.query_one("#messages", RecordList)
        n = messages.row_count

        def append(count: int) -> None:
            w = DemoWriter.open(root, clock=DemoClock(NOW))
            for i in range(count):
                w.message(NOW + i, "tester", f"live {i}")
            w.close()

        append(3)
        app.poll()
        await pilot.pause()
        assert messages.row_count == n + 3 and messages.cursor == n + 2
        await pilot.press("p")
        assert not main.recent_pane.following
        append(2)
        app.poll()
        await pilot.pause()
        assert messages.cursor == n + 2
        assert "2 new" in plain(main.query_one("#recent-status"))
        await pilot.press("k")
        await pilot.press("G")
        assert main.recent_pane.following and messages.cursor == messages.row_count - 1
        # A new checkpoint file appears in the timeline on the next poll.
        w = DemoWriter.open(root, clock=DemoClock(NOW))
        w.checkpoint(NOW + 10, "fresh one", "manual")
        w.close()
        app.poll()
        await settle(pilot)
        cps = main.query_one("#cp-list", CheckpointList)
        assert cps.highlighted.label == "auto #7"  # the cursor stays where it was
        assert cps.rows[2].checkpoint.label == "fresh one"


@pilot_test
async def test_stopped_recorder_diagnostics(tmp_path: Path) -> None:
    root = demo_dir(tmp_path, status="stopped")
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = main_screen(app)
        await pilot.press("4")
        text = plain(main.query_one("#diag"))
        assert "STOPPED" in text and "stopped cleanly" in text
        assert f"persist record --broker tcp://127.0.0.1:5555 --log-dir {root} --detach" in text
        assert "broker restarted (ECONNRESET)" in text
        connection = next(line for line in text.splitlines() if "Connection" in line)
        assert "connected" not in connection.replace("not running", "")
        assert "none (recorder not running)" in connection


@pilot_test
async def test_healthy_recorder_diagnostics(tmp_path: Path) -> None:
    root = demo_dir(tmp_path, status="healthy")
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = main_screen(app)
        text = plain(main.query_one("#diag"))
        assert "HEALTHY" in text and "persist record" not in text
        assert "412.5/s received" in text and "48.0 MB" in text


@pilot_test
async def test_diagnostics_say_which_loss_cannot_be_detected(tmp_path: Path) -> None:
    root = demo_dir(tmp_path, status="healthy")
    status = orjson.loads((root / "status.json").read_bytes())
    status["counts"].update(unsequenced=1234, implausible=3)
    (root / "status.json").write_bytes(orjson.dumps(status))
    app = make_app(root)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        text = plain(main_screen(app).query_one("#diag"))
        assert "1,234 without sequence numbers: loss not detectable" in text
        assert "3 envelopes not believed" in text


@pilot_test
async def test_a_degraded_recorder_shows_as_degraded_with_its_reason(tmp_path: Path) -> None:
    root = demo_dir(tmp_path, status="healthy")
    status = orjson.loads((root / "status.json").read_bytes())
    status["receiver_error"] = "the receiving thread died: invalid endpoint"
    (root / "status.json").write_bytes(orjson.dumps(status))
    os.utime(root / "status.json", (status["updated"], status["updated"]))  # as written
    app = make_app(root)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        main = main_screen(app)
        assert "◑ degraded" in plain(main.query_one("#top-bar"))
        text = plain(main.query_one("#diag"))
        assert "DEGRADED" in text and "invalid endpoint" in text


@pilot_test
async def test_help_and_palette_commands(tmp_path: Path) -> None:
    app = make_app(demo_dir(tmp_path), launch=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("p", "question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in (
            "Checkpoints",
            "Search",
            "Recent messages",
            "Diagnostics",
            "Restore checkpoint",
            "Pause / resume following",
            "Toggle fuzzy matching",
            "Start fresh",
            "Help",
            "Quit",
        ):
            assert title in titles
        fresh = next(c for c in app.get_system_commands(app.screen) if c.title == "Start fresh")
        fresh.callback()
        await pilot.pause()
    assert app.return_value.kind == "fresh"


@pilot_test
async def test_help_lists_only_the_keys_that_work_here(tmp_path: Path) -> None:
    """Outside a launch, Esc and f do nothing on the main screen: help does not list
    them, nor the launch menu; the sessions screens have their own sections, and ?
    opens help there too."""
    from tests.tui_fixtures import screen_chars

    for launch in (False, True):
        app = make_app(demo_dir(tmp_path / str(launch)), launch=launch)
        async with app.run_test(size=(120, 200)) as pilot:
            await settle(pilot)
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.pause()
            shown = screen_chars(app)
            assert ("Start the agent with no history" in shown) is launch
            assert ("Back to the launch menu" in shown) is launch
            assert "Agent sessions" in shown and "Show how to resume this session" in shown
            await pilot.press("escape")
            if not launch:
                await pilot.press("S", "question_mark")
                assert isinstance(app.screen, HelpScreen)


@pilot_test
async def test_tab_moves_between_panes(tmp_path: Path) -> None:
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.focused.id == "cp-list"
        await pilot.press("tab")
        assert app.focused.id == "preview-pane"


def test_selection_json_contract(tmp_path: Path) -> None:
    root = demo_dir(tmp_path)
    cp = open_store(root).checkpoints()[0]
    sel = Selection.from_checkpoint(cp, root, verified=True)
    data = orjson.loads(terminal_json(sel.to_json()))  # as --print writes it
    for key in ("checkpoint_id", "label", "time", "log_dir", "position", "messages", "verified"):
        assert key in data
    assert data["time"] == "2024-05-15T10:36:02+00:00"
    assert orjson.loads(terminal_json(Selection.fresh(root).to_json()))["kind"] == "fresh"
