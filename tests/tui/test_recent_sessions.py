"""Agent sessions in the Recent pane: ctrl+o cycles bus → claude → gemini → codex →
every agent → bus; an agent's messages are listed in time order (read from the search
index, only the rows on screen), Enter opens the session's conversation at the message,
and the journal comes back as it was left."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input

from recorder.search.feed import SessionFeed
from recorder.sources.discover import Roots
from tests.screenshots import settle
from tests.session_fixtures import claude_steps, every_agent, text
from tests.tui_fixtures import (
    SIZE,
    demo_dir,
    make_app,
    pilot_test,
    plain,
    wait_for_session_conversation,
    wait_until,
)
from tui.panes import agent_sources
from tui.panes.agent_sources import FeedRows
from tui.panes.recent import RecentPane
from tui.panes.search import SearchPane
from tui.widgets.conversation_view import ConversationView
from tui.widgets.record_list import RecordList


def listed(pane: RecentPane) -> list[str]:
    """Every row as drawn (100 columns)."""
    messages = pane.query_one(RecordList)
    return [messages.render_row(r, 100).plain for r in range(messages.row_count)]


def all_read(pane: RecentPane) -> bool:
    rows = pane.feed_rows
    return rows is not None and pane.feed_state == "" and all(rows.has(r) for r in range(len(rows)))


async def show(pilot: Any, pane: RecentPane, source: str) -> None:
    await pilot.press("ctrl+o")
    assert pane.source == source
    await wait_until(pilot, lambda: all_read(pane), f"the {source} messages")


@pilot_test
async def test_ctrl_o_lists_each_agent_in_time_order_and_the_journal_comes_back(
    tmp_path: Path,
) -> None:
    claude = every_agent(tmp_path)  # 6 Claude, 9 Codex, 4 Gemini messages
    roots = Roots(tmp_path / "claude", tmp_path / "gemini", tmp_path / "codex")
    app = make_app(demo_dir(tmp_path), roots=roots)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3")
        pane = app.screen.query_one(RecentPane)
        messages = pane.query_one(RecordList)
        journal = listed(pane)
        # The journal as left: paused three rows up, heartbeats shown.
        await pilot.press("h", "k", "k", "k")
        await pilot.pause()
        left_at = messages.record_index(messages.cursor)
        assert not pane.following and pane.show_bookkeeping and left_at is not None
        bus_rows = messages.row_count

        await show(pilot, pane, "claude")
        rows = listed(pane)
        assert len(rows) == 6 and messages.cursor == 5  # on the newest, like following
        assert [r.split(claude.session_id[:10])[1].strip() for r in rows] == [
            f"{t} with step {i}" if t == "done" else f"step {i}: carry on"
            for i in range(3)
            for t in ("step", "done")
        ]
        assert all(r[14:21] == "claude " for r in rows), rows  # the source column
        assert all(claude.session_id[:10] in r for r in rows)  # the session as the topic
        status = plain(pane.query_one("#recent-status"))
        assert "claude sessions  6 messages, oldest first" in status
        await pilot.press("h")  # for the journal only: nothing changes
        assert pane.show_bookkeeping and pane.source == "claude"

        await show(pilot, pane, "gemini")
        assert [r.split()[-1] for r in listed(pane)][::2] == ["0", "1"]  # question 0, 1
        assert len(listed(pane)) == 4 and all(r[14:21] == "gemini " for r in listed(pane))
        await show(pilot, pane, "codex")
        assert len(listed(pane)) == 9 and all(r[14:21] == "codex  " for r in listed(pane))

        await show(pilot, pane, "agents")
        rows = listed(pane)
        assert len(rows) == 6 + 4 + 9 and messages.cursor == 18
        feed = pane.feed_rows.feed  # type: ignore[union-attr]
        assert feed.times == sorted(feed.times)  # oldest first, every agent merged
        assert [r[:11] for r in rows] == sorted(r[:11] for r in rows)
        assert {r[14:21] for r in rows} == {"claude ", "gemini ", "codex  "}
        assert "gemini assistant" in rows[-1] and "answer 1" in rows[-1]  # the newest

        await pilot.press("ctrl+o")  # back to the journal, as it was left
        await pilot.pause()
        assert pane.source == "bus" and messages.row_count == bus_rows
        assert messages.record_index(messages.cursor) == left_at and not pane.following
        assert pane.show_bookkeeping
        assert "paused" in plain(pane.query_one("#recent-status"))
        await pilot.press("h", "p")  # the journal's keys work again: following, filtered
        await pilot.pause()
        assert pane.following and listed(pane) == journal
        assert messages.cursor == messages.row_count - 1


@pilot_test
async def test_only_the_rows_on_screen_are_read_and_enter_opens_the_session_there(
    tmp_path: Path,
) -> None:
    claude = claude_steps(tmp_path / "claude", 150)  # 300 messages
    roots = Roots(tmp_path / "claude", None, None)
    app = make_app(demo_dir(tmp_path), roots=roots)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3", "ctrl+o")
        pane = app.screen.query_one(RecentPane)
        messages = pane.query_one(RecordList)
        await wait_until(
            pilot, lambda: pane.feed_rows is not None and pane.feed_rows.has(299), "the newest"
        )
        rows = pane.feed_rows
        assert rows is not None and len(rows) == 300 and messages.cursor == 299
        read = sorted(r for r in range(300) if rows.has(r))
        height = messages.scrollable_content_region.height
        assert read[-1] == 299 and len(read) <= height + 2 * 60  # the screen and a margin
        assert 0 not in read
        await pilot.press("g")  # the oldest: read when it is drawn
        await wait_until(pilot, lambda: rows.has(0), "the first rows")
        assert listed(pane)[0].endswith("step 0: carry on")
        await pilot.press("j", "j", "j")  # row 3: "done with step 1", message 3
        copied = pane.highlighted_record()  # what the palette's "Copy record" copies
        assert copied is not None and copied.payload == {"text": "done with step 1"}
        await pilot.press("enter")
        screen = await wait_for_session_conversation(pilot)
        view = screen.query_one(ConversationView)
        assert screen.key == f"claude:{claude.session_id}"  # type: ignore[attr-defined]
        assert view.selected == 3
        assert "done with step 1" in view.store.record(3).line.decode()
        assert "message 3 of 0-299" in plain(screen.query_one("#session-conversation-status"))
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.query_one(RecentPane) is pane and messages.cursor == 3


@pilot_test
async def test_a_listed_agent_source_follows_new_messages_as_the_agent_writes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While an agent source is listed it looks for new messages every few seconds:
    the cursor on the newest follows them; one moved up stays on its message; the rows
    already read stay read; the journal listed again stops the looking."""
    monkeypatch.setattr(agent_sources, "FEED_FOLLOW_SECONDS", 0.1)
    claude = claude_steps(tmp_path / "claude", 2)  # 4 messages
    roots = Roots(tmp_path / "claude", None, None)
    app = make_app(demo_dir(tmp_path), roots=roots)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3")
        pane = app.screen.query_one(RecentPane)
        messages = pane.query_one(RecordList)
        await show(pilot, pane, "claude")
        assert len(listed(pane)) == 4 and messages.cursor == 3

        def written(step: int) -> None:
            new = len(claude.lines)
            claude.user(f"step {step}: carry on")
            claude.assistant(text(f"done with step {step}"))
            claude.append_lines(claude.lines[new:])

        written(2)  # the agent goes on: the cursor on the newest follows
        old_rows = pane.feed_rows
        await wait_until(pilot, lambda: len(listed(pane)) == 6, "the new messages")
        await wait_until(pilot, lambda: all_read(pane), "the new rows")
        # What was read is taken over by the new order (not drawn "reading…" again):
        new_rows = pane.feed_rows
        assert old_rows is not None and new_rows is not None and new_rows is not old_rows
        fresh = FeedRows(new_rows.feed, lambda row: None)
        fresh.take_over(old_rows)
        assert [fresh.has(r) for r in range(6)] == [True] * 4 + [False] * 2
        assert [fresh.record(r).payload for r in range(4)] == [
            new_rows.record(r).payload for r in range(4)
        ]
        assert messages.cursor == 5 and listed(pane)[-1].endswith("done with step 2")
        await pilot.press("k", "k")
        await pilot.pause()
        assert messages.cursor == 3
        written(3)
        await wait_until(pilot, lambda: len(listed(pane)) == 8 and all_read(pane), "more")
        assert messages.cursor == 3 and listed(pane)[3].endswith("done with step 1")
        await pilot.press(*["ctrl+o"] * 4)  # gemini, codex, every agent, the journal
        assert pane.source == "bus" and pane._follow_timer is None  # nothing looked at


@pilot_test
async def test_no_sessions_is_said_in_one_line_and_a_search_hit_shows_the_journal(
    tmp_path: Path,
) -> None:
    roots = Roots(tmp_path / "no-claude", tmp_path / "no-gemini", tmp_path / "no-codex")
    app = make_app(demo_dir(tmp_path), roots=roots)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3", "ctrl+o")
        pane = app.screen.query_one(RecentPane)
        await wait_until(
            pilot, lambda: pane.feed_rows is not None and pane.feed_state == "", "the index"
        )
        status = plain(pane.query_one("#recent-status"))
        assert "no claude sessions indexed yet" in status and "\n" not in status.strip()
        assert pane.query_one(RecordList).row_count == 0
        await pilot.press("enter", "o")  # nothing to open: nothing breaks
        await pilot.pause()
        assert app.screen.query_one(RecentPane) is pane
        # Enter on a journal hit in search: Recent shows it, in the journal again.
        await pilot.press("slash")
        search = app.screen.query_one(SearchPane)
        search.query_one("#search-input", Input).value = "migration"
        await wait_until(pilot, lambda: search.search_state == "done", "the search")
        assert search.hits
        await pilot.press("enter", "enter")
        await pilot.pause()
        messages = pane.query_one(RecordList)
        assert pane.source == "bus" and not messages.show_source
        assert messages.record_index(messages.cursor) == search.rows[0]


@pilot_test
async def test_a_failed_read_says_why_in_the_pane(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    claude_steps(tmp_path / "claude", 2)
    roots = Roots(tmp_path / "claude", None, None)

    def fail(*args: Any) -> Any:
        raise OSError("disk went away")

    app = make_app(demo_dir(tmp_path), roots=roots)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pane = app.screen.query_one(RecentPane)
        with monkeypatch.context() as patch:
            patch.setattr(SessionFeed, "load", fail)  # the order
            await pilot.press("3", "ctrl+o")
            await settle(pilot)
            status = plain(pane.query_one("#recent-status"))
            assert "cannot read the claude sessions: disk went away" in status
        monkeypatch.setattr(SessionFeed, "documents", fail)  # the rows on screen
        await pilot.press(*["ctrl+o"] * 5)  # round to claude again
        await wait_until(pilot, lambda: pane.feed_rows is not None, "the order")
        await settle(pilot)
        assert pane.query_one(RecordList).row_count == 4
        status = plain(pane.query_one("#recent-status"))
        assert "cannot read the claude sessions: disk went away" in status
        assert "Traceback" not in status


@pytest.mark.parametrize("named_by", ["option", "variable"])
@pilot_test
async def test_a_log_folder_that_does_not_exist_is_not_made_by_listing_an_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, named_by: str
) -> None:
    """ctrl+o in a log folder named that does not exist made it (and the search index in
    it) while the pane said "No journal here yet"; `persist search` refuses such a
    folder. Nothing is made now, and the status line says why nothing is listed. The
    same for one `$PERSIST_LOG_DIR` names (`persist-tui` with no `--log-dir`): before
    2026-12-07 it counted as the default folder, which is made."""
    claude_steps(tmp_path / "claude", 2)
    root = tmp_path / "fresh1"
    if named_by == "variable":
        monkeypatch.setenv("PERSIST_LOG_DIR", str(root))
    app = make_app(root, roots=Roots(tmp_path / "claude", None, None))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3", "ctrl+o")
        await settle(pilot, 0.5)
        pane = app.screen.query_one(RecentPane)
        assert pane.source == "claude"
        status = plain(pane.query_one("#recent-status"))
        assert "does not exist" in status, status
        await pilot.press("S")  # the sessions screen lists them, its scan cache not kept
        await settle(pilot)
        assert app.screen.query_one("#sessions-list").row_count == 1  # type: ignore[attr-defined]
    assert not root.exists()


@pilot_test
async def test_a_turn_of_tool_calls_reads_alike_in_the_list_and_the_conversation(
    tmp_path: Path,
) -> None:
    """An assistant turn that is only a tool call was an empty row in Recent's agent
    list while the conversation showed `⚙ Edit(file_path=…)`: the list's text comes from
    the search index, which held "" for it. Both show the one line now."""
    from tests.session_fixtures import ClaudeSession, tool_use
    from tui.transcript import turn_of
    from tui.widgets.preview_pane import turn_parts

    c = ClaudeSession(tmp_path / "claude")
    c.user("fix the typo in app.py")
    c.assistant(tool_use("Edit", {"file_path": "/home/me/proj/app.py", "old_string": "teh"}))
    c.assistant(text("fixed"))
    c.write()
    app = make_app(demo_dir(tmp_path), roots=Roots(tmp_path / "claude", None, None))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3")
        pane = app.screen.query_one(RecentPane)
        await show(pilot, pane, "claude")
        calls = "⚙ Edit(file_path=/home/me/proj/app.py, old_string=teh)"
        row = next(r for r in listed(pane) if "assistant" in r and "fixed" not in r)
        assert row.rstrip().endswith(calls), listed(pane)
        messages = pane.query_one(RecordList)
        messages.move_to(listed(pane).index(row))
        await pilot.press("enter")
        screen = await wait_for_session_conversation(pilot)
        view = screen.query_one(ConversationView)
        _head, body = turn_parts(turn_of(view.store.record(view.selected)), app.clock)
        assert body is not None and body.plain == calls
