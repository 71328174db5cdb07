"""Where the Recent pane puts its cursor on screen, and what its status line and footer
show, at 80x24 and 120x36: an agent source's list stays where it was while the index
takes in journal records, and after a tab switch; a search hit opens centred, with its
nearest checkpoint named; `m` (matches only) stays until `m` is pressed again, or `p`
follows every record (and says so)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, Static

from recorder.sources.discover import Roots
from tests.demo_journal import BASE_TS, DemoWriter
from tests.screenshots import settle
from tests.session_fixtures import (
    CODEX_ID,
    GEMINI_ID,
    claude_steps,
    codex_rollout,
    gemini_jsonl,
    gemini_messages,
    gemini_project,
    text,
)
from tests.tui_fixtures import demo_dir, main_screen, make_app, pilot_test, plain, screen_chars
from tests.tui_fixtures import wait_until as until
from tui.app import PersistApp
from tui.panes import agent_sources
from tui.panes.recent import RECENT_SOURCES, RecentPane
from tui.screens.help import HelpScreen
from tui.widgets.record_list import RecordList

SIZES = [(80, 24), (120, 36)]
HITS = range(10, 81, 10)  # "message N kiwi"
CHECKPOINT_AFTER = 25
LABEL = "after message twenty-five"


def kiwi_journal(root: Path) -> Path:
    """80 messages, every tenth with "kiwi", one with "papaya" (message 15), a
    checkpoint after message 25: hits before it have no checkpoint to show."""
    w = DemoWriter.open(root, clock=lambda: BASE_TS)
    for i in range(1, 81):
        word = "kiwi" if i in HITS else "papaya" if i == 15 else "plain"
        w.message(BASE_TS + i, "coder", f"message {i} {word}", scan=True)
        if i == CHECKPOINT_AFTER:
            w.checkpoint(BASE_TS + i + 0.5, LABEL, "manual")
    w.close()
    return root


def lines(app: PersistApp) -> list[str]:
    return screen_chars(app).split("\n")


def cursor_line(messages: RecordList) -> int:
    """The line of the list the cursor's row is drawn on."""
    return messages.cursor - int(messages.scroll_y)


def cursor_text(app: PersistApp, messages: RecordList) -> str:
    """The screen line the cursor's row is drawn on ("" when it is off screen)."""
    line = cursor_line(messages)
    if not 0 <= line < messages.scrollable_content_region.height:
        return ""
    return lines(app)[messages.region.y + line]


def cursor_row_read(pane: RecentPane) -> bool:
    """The agent list's row under the cursor is read (its text can be drawn)."""
    rows = pane.feed_rows
    return rows is not None and rows.has(pane.messages.cursor)


async def open_hit(pilot, query: str, message: int) -> RecentPane:  # type: ignore[no-untyped-def]
    """`/`, `query`, Enter on the hit that is "message `message` …": Recent shows it."""
    main = main_screen(pilot.app)
    await pilot.press("slash")
    search = main.search_pane
    search.query_one("#search-input", Input).value = query
    await until(pilot, lambda: search.search_state == "done", "the search")
    await settle(pilot)
    texts = [hit.snippet for hit in search.result_hits]
    row = next(i for i, t in enumerate(texts) if f"message {message} " in t)
    results = main.query_one("#results")
    results.focus()
    results.move_to(row)  # type: ignore[attr-defined]
    await pilot.press("enter")
    await settle(pilot)
    assert main.active_tab == "recent"
    return main.recent_pane


@pytest.mark.parametrize("size", SIZES)
@pilot_test
async def test_an_agent_list_stays_where_it_was_while_the_journal_grows_and_across_tabs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]
) -> None:
    """It re-centred every 2 s while the bus was busy (each journal record indexed made
    it read the sessions again), and came back from another tab with the cursor on the
    top row (centred on a hidden list's height of 0)."""
    monkeypatch.setattr(agent_sources, "FEED_FOLLOW_SECONDS", 0.1)
    claude = claude_steps(tmp_path / "claude", 150)  # 300 messages
    root = demo_dir(tmp_path)
    app = make_app(root, roots=Roots(tmp_path / "claude", None, None))
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("3", "ctrl+o")
        pane = main_screen(app).recent_pane
        messages = pane.query_one(RecordList)
        await until(pilot, lambda: pane.feed_rows is not None and pane.feed_rows.has(299), "rows")
        await pilot.press("g", "pagedown")
        await until(pilot, lambda: pane.feed_rows.has(messages.cursor), "the rows on screen")  # type: ignore[union-attr]
        height = messages.scrollable_content_region.height
        line, row = cursor_line(messages), messages.cursor
        assert line == height - 1 and row == height - 1
        seen = cursor_text(app, messages)
        assert seen.rstrip().endswith(messages.render_row(row, 200).plain.split()[-1])
        listed = pane.feed_rows

        def bus(n: int) -> None:
            """`n` journal records, then until the index holds them and a look has passed."""
            w = DemoWriter.open(root)
            for i in range(n):
                w.message(BASE_TS + 90_000 + i, "planner", f"bus message {i}")
            w.close()

        def indexed() -> int:
            return app.searcher.index.query("SELECT count(*) FROM docs WHERE segment IS NOT NULL")[
                0
            ][0]

        before = indexed()
        bus(5)
        await until(pilot, lambda: indexed() == before + 5, "the journal indexed")
        await settle(pilot, 0.3)
        assert pane.feed_rows is listed  # no session changed: not read again
        assert (messages.cursor, cursor_line(messages)) == (row, line)
        assert cursor_text(app, messages) == seen

        # The agent writes while another tab is shown: read again, hidden.
        await pilot.press("1")
        await settle(pilot)
        before = indexed()
        bus(3)
        new = len(claude.lines)
        claude.user("step 150: carry on")
        claude.assistant(text("done with step 150"))
        claude.append_lines(claude.lines[new:])
        await until(pilot, lambda: pane.feed_rows is not listed, "the session read again")
        await until(pilot, lambda: indexed() == before + 3, "the journal indexed")
        await settle(pilot, 0.3)
        await pilot.press("3")
        await settle(pilot)
        assert messages.row_count == 302
        assert (messages.cursor, cursor_line(messages)) == (row, line)
        assert cursor_text(app, messages) == seen
        assert "claude sessions  302 messages" in plain(pane.query_one("#recent-status"))


@pytest.mark.parametrize("size", SIZES)
@pilot_test
async def test_a_search_hit_opens_centred_with_its_checkpoint_named(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    """It opened on the top row (centred while the tab was still hidden: height 0), and
    the checkpoint line was cut when the status's first line wrapped."""
    app = make_app(kiwi_journal(tmp_path / "logs"))
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        pane = await open_hit(pilot, "kiwi", 50)
        messages = pane.messages
        height = messages.scrollable_content_region.height
        assert cursor_line(messages) == height // 2
        assert "message 50 kiwi" in cursor_text(app, messages)
        assert "message 49 plain" in lines(app)[messages.region.y + height // 2 - 1]
        shown = "\n".join(lines(app)[: messages.region.y])
        assert LABEL in shown and "c shows" in shown, shown
        footer = lines(app)[-1]
        for key in ("/ Search", "? Help", "q Quit"):
            assert key in footer, footer

        await pilot.press("m")  # only the hits: the checkpoint still named
        await settle(pilot)
        assert messages.row_count == len(HITS)
        shown = "\n".join(lines(app)[: messages.region.y])
        assert LABEL in shown and "c shows" in shown, shown
        assert "8 search hits" in shown
        assert "message 50 kiwi" in cursor_text(app, messages)


@pytest.mark.parametrize("size", SIZES)
@pilot_test
async def test_matches_only_stays_on_the_newest_hit_until_m(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    """`G` onto the newest hit (or `m` with a single hit) turned following back on and
    dropped the filter."""
    app = make_app(kiwi_journal(tmp_path / "logs"))
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        pane = await open_hit(pilot, "kiwi", 20)  # before the checkpoint: none named
        messages = pane.messages
        assert pane.context_checkpoint is None
        await pilot.press("m")
        await settle(pilot)
        await pilot.press("G")
        await settle(pilot)
        status = plain(pane.query_one("#recent-status"))
        assert pane.matches_only and not pane.following, status
        assert "8 search hits" in status and "following" not in status
        assert messages.row_count == len(HITS)
        assert "message 80 kiwi" in cursor_text(app, messages)
        await pilot.press("j", "k")  # within the hits
        await settle(pilot)
        assert "message 70 kiwi" in cursor_text(app, messages)
        assert pane.matches_only and messages.row_count == len(HITS)
        await pilot.press("m")  # every record again, the cursor on the same one
        await settle(pilot)
        assert not pane.matches_only and messages.row_count == 80
        assert "message 70 kiwi" in cursor_text(app, messages)

        pane = await open_hit(pilot, "papaya", 15)  # a single hit: `m` lands on it
        await pilot.press("m")
        await settle(pilot)
        status = plain(pane.query_one("#recent-status"))
        assert pane.matches_only and messages.row_count == 1, status
        assert "only the 1 search hit" in status
        assert "message 15 papaya" in cursor_text(app, messages)


@pytest.mark.parametrize("size", SIZES)
@pilot_test
async def test_each_agent_list_opens_with_the_newest_on_its_last_line(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    """The newest (the cursor's row, Enter opens it) was one line below the screen: the
    list scrolled before a horizontal scrollbar, which nothing could scroll, took its
    last line (blank); `G` showed it. No list scrolls sideways now."""
    claude_steps(tmp_path / "claude", 40)
    gemini_jsonl(gemini_project(tmp_path / "gemini", "/home/me/g"), GEMINI_ID, gemini_messages(40))
    codex_rollout(tmp_path / "codex", CODEX_ID, 40)
    roots = Roots(tmp_path / "claude", tmp_path / "gemini", tmp_path / "codex")
    app = make_app(demo_dir(tmp_path), roots=roots)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("3")
        pane = main_screen(app).recent_pane
        messages = pane.messages
        for source in ("claude", "gemini", "codex", "agents"):
            await pilot.press("ctrl+o")
            assert pane.source == source
            await until(pilot, lambda: cursor_row_read(pane), source)
            await settle(pilot)
            newest = messages.row_count - 1
            assert messages.row_count > messages.region.height and messages.cursor == newest
            last = lines(app)[messages.region.bottom - 1]  # the list's last line on screen
            assert last.rstrip(" ▏▕▁▔") != "", f"{source}: a blank last line"
            assert cursor_text(app, messages) == last, source
            newest_text = messages.render_row(newest, messages.region.width).plain.rstrip()
            assert last.startswith(newest_text), (source, last, newest_text)
            await pilot.press("G")  # already there: nothing moves
            await settle(pilot)
            assert lines(app)[messages.region.bottom - 1] == last


def above_the_list(app: PersistApp, messages: RecordList) -> str:
    """The screen's lines above the list (the status line's wrapped lines joined)."""
    return " ".join(line.strip() for line in lines(app)[: messages.region.y])


async def help_says(pilot, key: str) -> str:  # type: ignore[no-untyped-def]
    """`?`, scrolled to the Recent tab's keys: the line of `key` as shown (wrapped
    lines joined), then Esc."""
    await pilot.press("question_mark")
    help_screen = pilot.app.screen
    assert isinstance(help_screen, HelpScreen)
    await pilot.pause()
    section = next(s for s in help_screen.query(Static) if "Recent tab" in plain(s, 80))
    section.scroll_visible(top=True, animate=False)
    await settle(pilot)
    inside = [line.split("│")[1] for line in lines(pilot.app) if line.count("│") >= 2]
    rows = [row.rstrip(" ▁▂▃▄▅▆▇█▔") for row in inside]  # the dialog's text, no scrollbar
    start = next(i for i, row in enumerate(rows) if row.strip().startswith(f"{key}  "))
    said = [rows[start].strip()]
    for row in rows[start + 1 :]:  # its wrapped rest: no key of its own
        if not row.startswith(" " * 10) or not row.strip():
            break
        said.append(row.strip())
    await pilot.press("escape")
    return " ".join(said)


@pytest.mark.parametrize("size", SIZES)
@pilot_test
async def test_p_in_filter_mode_follows_every_record_and_says_so(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    """`p` with only a search's hits listed follows the journal again, every record
    listed: the status said "p follows again", README "the filter stays until m", help
    "Pause or resume following". And `m` while following listed the hits "● following"."""
    app = make_app(kiwi_journal(tmp_path / "logs"))
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        pane = await open_hit(pilot, "kiwi", 50)
        messages = pane.messages
        await pilot.press("m")
        await settle(pilot)
        status = above_the_list(app, messages)
        assert "p follows every record again" in status, status
        assert "only the 8 search hits" in status
        p_says = await help_says(pilot, "p")
        assert "follow again: every record (m's filter ends)" in p_says, p_says

        await pilot.press("p")  # following: every record, the newest under the cursor
        await settle(pilot)
        status = above_the_list(app, messages)
        assert "● following" in status and "search hits" not in status, status
        assert messages.row_count == 80  # every record
        assert "message 80 kiwi" in cursor_text(app, messages)

        await pilot.press("m")  # the hits again: paused on the newest, not "following"
        await settle(pilot)
        status = above_the_list(app, messages)
        assert "❚❚ paused" in status and "p follows every record again" in status
        assert messages.row_count == len(HITS)
        assert "message 80 kiwi" in cursor_text(app, messages)
        m_says = await help_says(pilot, "m")
        assert "paused (until m or p)" in m_says, m_says


@pytest.mark.parametrize("size", SIZES)
@pilot_test
async def test_records_arriving_in_filter_mode_are_counted_as_new(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    """With only a search's hits listed (`m`), the journal's new records were counted
    nowhere: "N new" counted the rows the hits' list gained (none), also across an agent
    source (ctrl+o). They are the journal's new records, counted as when every record is
    listed (a heartbeat hidden by `h` is not), and listed once the filter ends; the
    search's hits stay those it found."""
    root = kiwi_journal(tmp_path / "logs")
    app = make_app(root)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        pane = await open_hit(pilot, "kiwi", 50)
        messages = pane.messages
        await pilot.press("m")
        await settle(pilot)
        store = app.journal.store
        assert store is not None and pane.record_filter is not None
        total = len(store)
        w = DemoWriter.open(root)
        for i in (81, 82, 83):
            w.message(BASE_TS + i, "coder", f"message {i} {'kiwi' if i == 82 else 'plain'}")
        w.record(BASE_TS + 84, "heartbeat")
        w.close()
        app.poll()  # what its timer does when live
        await settle(pilot)
        assert len(store) == total + 4 and pane.record_filter.scanned == total + 4
        await settle(pilot)
        status = above_the_list(app, messages)
        assert "3 new" in status and "only the 8 search hits" in status, status
        assert messages.row_count == len(HITS)  # the search's hits, as it found them
        assert "message 50 kiwi" in cursor_text(app, messages)

        await pilot.press("ctrl+o")  # an agent's messages listed while two more arrive
        w = DemoWriter.open(root)
        for i in (84, 85):
            w.message(BASE_TS + i, "coder", f"message {i} plain")
        w.close()
        app.poll()
        await pilot.press(*["ctrl+o"] * (len(RECENT_SOURCES) - 1))  # the journal again
        await settle(pilot)
        status = above_the_list(app, messages)
        assert "5 new" in status and "only the 8 search hits" in status, status

        await pilot.press("m")  # every record: the new ones listed below, still counted
        await settle(pilot)
        status = above_the_list(app, messages)
        assert "5 new" in status and "only the 8" not in status, status
        assert messages.row_count == 85
        assert "message 50 kiwi" in cursor_text(app, messages)
        await pilot.press("G")
        await settle(pilot)
        assert "message 85 plain" in cursor_text(app, messages)
