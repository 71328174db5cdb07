"""The launch menu for `persist launch -- claude`: this project's sessions, newest first;
the latest point resumes, an earlier one forks; the confirmation shows the exact command,
and the launcher runs that command."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.cells import cell_len
from textual.widgets import OptionList

from recorder.cli.common import terminal_json
from recorder.launch.selection import LaunchChoice, Selection
from recorder.launch.sessions import carry_out, find_row, plan
from recorder.sources import claude
from recorder.sources.discover import Roots
from recorder.store import secrets as S
from recorder.store.layout import Layout
from tests.screenshots import settle
from tests.secret_samples import make
from tests.session_fixtures import ClaudeSession, text
from tests.tui_fixtures import (
    SIZE,
    SMALL,
    demo_dir,
    make_app,
    pilot_test,
    plain,
    screen_chars,
    wait_until,
)
from tui.panes.sessions import SessionList, SessionsScreen
from tui.screens.launch import LINE_CELLS, LaunchScreen
from tui.screens.resume import PointList, ResumeScreen, SessionPointsScreen
from tui.text import path_end


def sessions(tmp: Path, proj: Path, n: int) -> list[ClaudeSession]:
    made = []
    for k in range(n):
        c = ClaudeSession(tmp / "claude", cwd=str(proj))
        c.t += 3600 * k  # the last one is the newest
        for i in range(2):
            c.user(f"s{k} question {i}")
            c.assistant(text(f"s{k} answer {i}"))
        c.write()
        made.append(c)
    other = ClaudeSession(tmp / "claude", cwd=str(tmp / "other"))  # another project: not offered
    other.user("elsewhere")
    other.write()
    return made


async def menu_with_sessions(pilot: Any, app: Any) -> OptionList:
    """The launch menu's options, once it has listed the project's sessions."""
    await settle(pilot)
    menu_screen = app.screen
    assert isinstance(menu_screen, LaunchScreen)
    await wait_until(pilot, lambda: menu_screen.sessions is not None, "the sessions")
    return menu_screen.query_one(OptionList)


@pilot_test
async def test_menu_offers_the_projects_sessions_and_confirms_the_exact_command(
    tmp_path: Path,
) -> None:
    proj = tmp_path / "proj"
    made = sessions(tmp_path, proj, 2)
    newest = made[-1]
    roots = Roots(tmp_path / "claude", None, None)
    log_dir = demo_dir(tmp_path)
    command = ["claude", "--model", "opus"]
    app = make_app(
        log_dir, launch=True, agent="claude", agent_command=command, project=str(proj), roots=roots
    )
    async with app.run_test(size=SIZE) as pilot:
        menu = await menu_with_sessions(pilot, app)
        ids = [menu.get_option_at_index(i).id for i in range(menu.option_count)]
        keys = [f"session:claude:{c.session_id}" for c in reversed(made)]
        assert [i for i in ids if i and i.startswith("session:")] == keys  # newest first
        assert ids.index(keys[0]) == menu.highlighted  # the newest is the default
        assert "Resume Claude Code: s1 question 0" in str(menu.get_option(keys[0]).prompt)
        assert "sessions" not in ids  # all of them are on the menu already

        # Enter: the newest session's points; Enter on the latest resumes it as it is
        await pilot.press("enter")
        points_screen = app.screen
        assert isinstance(points_screen, SessionPointsScreen)
        points = points_screen.query_one(PointList)
        await wait_until(pilot, lambda: points.messages, "the messages")
        assert points.message_at(0).text == "s1 answer 1"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ResumeScreen)
        summary = plain(app.screen.query_one("#resume-summary"))
        assert f"Runs  cd {proj} && claude --resume {newest.session_id} --model opus" in summary
        assert "Writes" not in summary
        await pilot.press("escape")  # not that one: an earlier point
        await pilot.pause()
        await pilot.press("j", "j", "enter")  # message 1: "s1 answer 0"
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ResumeScreen) and dialog.plan.new_id
        new_id = dialog.plan.new_id
        summary = plain(dialog.query_one("#resume-summary"))
        assert "message 1 of 0-3 (assistant): s1 answer 0" in summary
        assert f"a new session {new_id} from it, messages 0-1" in summary
        assert f"Runs  cd {proj} && claude --resume {new_id} --model opus" in summary
        await pilot.press("y")
        await pilot.pause()
    chosen = app.return_value
    assert chosen is not None and chosen.kind is LaunchChoice.SESSION
    shown = ["claude", "--resume", new_id, "--model", "opus"]
    assert chosen.command == shown and chosen.at == 1 and chosen.cwd == str(proj)

    # what the launcher does with the printed choice: the fork, then that very command
    back = Selection.from_json(orjson.loads(terminal_json(chosen.to_json())))
    assert back.session is not None
    row = find_row(roots, Layout(log_dir), back.session)
    done = carry_out(Layout(log_dir), row, plan(row, command, back.at, back.new_id))
    assert done.plan.argv == shown and done.fork is not None
    forked = claude.read_transcript(done.fork.path)
    assert forked.session.id == new_id
    assert [m.text for m in forked.messages] == ["s1 question 0", "s1 answer 0"]


@pilot_test
async def test_a_project_without_sessions_says_so_and_a_does_nothing(tmp_path: Path) -> None:
    sessions(tmp_path, tmp_path / "elsewhere", 2)  # the agent's sessions of another project
    proj = tmp_path / "proj"
    roots = Roots(tmp_path / "claude", None, None)
    app = make_app(
        tmp_path / "empty", launch=True, agent_command=["claude"], project=str(proj), roots=roots
    )
    async with app.run_test(size=SIZE) as pilot:
        menu = await menu_with_sessions(pilot, app)
        option = menu.get_option("sessions")
        shown = str(option.prompt)  # a long project's end, where paths differ
        assert shown == f" a   Claude Code sessions\n     none in {path_end(str(proj), 60)}"
        assert len(str(proj)) <= 60 or shown.endswith(f"…{str(proj)[-59:]}")
        assert option.disabled
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, LaunchScreen)


@pilot_test
async def test_more_sessions_than_the_menu_shows_are_one_key_away(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    made = sessions(tmp_path, proj, 6)
    roots = Roots(tmp_path / "claude", None, None)
    app = make_app(
        tmp_path / "empty", launch=True, agent_command=["claude"], project=str(proj), roots=roots
    )
    async with app.run_test(size=SIZE) as pilot:
        menu = await menu_with_sessions(pilot, app)
        ids = [menu.get_option_at_index(i).id for i in range(menu.option_count)]
        assert sum(1 for i in ids if i and i.startswith("session:")) == 5
        prompt = str(menu.get_option("sessions").prompt)
        assert f"All Claude Code sessions\n     6 sessions of {path_end(str(proj), 60)}," in prompt
        await pilot.press("a")
        await pilot.pause()
        listing = app.screen
        assert isinstance(listing, SessionsScreen)
        rows = listing.query_one(SessionList)
        await wait_until(pilot, lambda: rows.rows, "the list")
        assert [r.session.id for r in rows.rows] == [c.session_id for c in reversed(made)]
        await pilot.press("G", "enter")  # the oldest: its points
        await pilot.pause()
        assert isinstance(app.screen, SessionPointsScreen)
        assert app.screen.row.session.id == made[0].session_id
        await pilot.press("escape")  # back to the list, then back to the menu
        await pilot.pause()
        assert app.screen is listing
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, LaunchScreen)
        await pilot.press("5")  # the fifth newest, by its number
        await pilot.pause()
        assert isinstance(app.screen, SessionPointsScreen)
        assert app.screen.row.session.id == made[1].session_id


@pilot_test
async def test_a_secret_in_a_session_never_shows_on_the_way_to_resuming_it(tmp_path: Path) -> None:
    """The menu entry (its title is the first prompt), each point's row and the resume
    dialog show a key as [REDACTED:kind]; the session resumed is the agent's, as is."""
    key = make(S.GITHUB, random.Random(9)).secret
    proj = tmp_path / "proj"
    c = ClaudeSession(tmp_path / "claude", cwd=str(proj))
    c.user(f"clone it with {key}")
    c.assistant(text(f"cloned with {key}"))
    c.write()
    stored = c.path.read_bytes() if c.path is not None else b""
    roots = Roots(tmp_path / "claude", None, None)
    app = make_app(
        demo_dir(tmp_path),
        launch=True,
        agent="claude",
        agent_command=["claude"],
        project=str(proj),
        roots=roots,
    )
    redacted = f"[REDACTED:{S.GITHUB}]"
    async with app.run_test(size=SIZE) as pilot:
        menu = await menu_with_sessions(pilot, app)
        entry = str(menu.get_option(f"session:claude:{c.session_id}").prompt)
        assert f"clone it with {redacted}" in entry and key not in entry
        await pilot.press("enter")
        points_screen = app.screen
        assert isinstance(points_screen, SessionPointsScreen)
        points = points_screen.query_one(PointList)
        await wait_until(pilot, lambda: points.messages, "the messages")
        rows = [points.render_row(i, 100).plain for i in range(2)]
        assert all(redacted in row and key not in row for row in rows), rows
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ResumeScreen)
        summary = plain(app.screen.query_one("#resume-summary"))
        assert redacted in summary and key not in summary
    assert c.path is not None and c.path.read_bytes() == stored


@pytest.mark.parametrize("count", [3, 5])
@pilot_test
async def test_at_80x24_the_menu_scrolls_so_the_highlighted_row_and_the_hint_show(
    tmp_path: Path, count: int
) -> None:
    """With the project's sessions listed the menu is taller than 80x24: the options
    scroll inside the box, whose hint and bottom border stay on screen, and every
    option highlighted on the way down to Quit is drawn."""
    proj = tmp_path / "proj"
    sessions(tmp_path, proj, count)
    roots = Roots(tmp_path / "claude", None, None)
    app = make_app(
        demo_dir(tmp_path),
        launch=True,
        agent="claude",
        agent_command=["claude"],
        project=str(proj),
        roots=roots,
    )
    async with app.run_test(size=SMALL) as pilot:
        menu = await menu_with_sessions(pilot, app)
        await settle(pilot)
        box = app.screen.query_one("#launch-box").region
        assert box.bottom <= SMALL[1] - 1  # above the footer
        assert "Enter or the letter chooses" in screen_chars(app)
        while True:
            option = menu.get_option_at_index(menu.highlighted or 0)
            title = str(option.prompt).split("\n")[0].strip()
            assert title in screen_chars(app), (title, screen_chars(app))
            if option.id == "quit":
                break
            await pilot.press("j")
            await settle(pilot)
        assert "Enter or the letter chooses" in screen_chars(app)


@pilot_test
async def test_a_long_session_title_is_cut_to_its_row_with_an_ellipsis(tmp_path: Path) -> None:
    """A first prompt full of escapes and wide characters is cut after its escapes
    are made visible, by terminal cells, with "…": one row, its detail under it."""
    proj = tmp_path / "proj"
    c = ClaudeSession(tmp_path / "claude", cwd=str(proj))
    c.user("\x1b[31m" * 8 + "日本語の長いタイトル " * 3 + "plain words " * 12)
    c.assistant(text("ok"))
    c.write()
    roots = Roots(tmp_path / "claude", None, None)
    app = make_app(
        demo_dir(tmp_path), launch=True, agent_command=["claude"], project=str(proj), roots=roots
    )
    async with app.run_test(size=SMALL) as pilot:
        menu = await menu_with_sessions(pilot, app)
        await settle(pilot)
        first = str(menu.get_option(f"session:claude:{c.session_id}").prompt).split("\n")[0]
        assert first.startswith(" 1   Resume Claude Code: \\x1b[31m")
        assert first.endswith("…") and cell_len(first) <= 5 + LINE_CELLS
        row = next(line for line in screen_chars(app).splitlines() if "Resume Claude" in line)
        below = screen_chars(app).splitlines()[screen_chars(app).splitlines().index(row) + 1]
        assert "1 message" in below or "2 messages" in below, below  # not the title's end


@pytest.mark.parametrize("size", [SMALL, (60, 20)], ids=["80x24", "60x20"])
@pilot_test
async def test_session_rows_stay_one_line_when_the_menu_scrolls(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    """At 80x24 four sessions make the menu scroll: with its scrollbar beside them, each
    long title is still cut to its row, its detail on the row under it. Narrower (60x20)
    the box is narrower than the 76 cells the titles are cut for: its rows wrapped, a
    title's end and the checkpoint's message count each on a row of their own; now every
    row is cut to the menu's width with "…", each option two rows."""
    proj = tmp_path / "proj"
    for k in range(4):
        c = ClaudeSession(tmp_path / "claude", cwd=str(proj))
        c.t += 600 * k
        c.user(f"please refactor the authentication module so that session tokens rotate {k}")
        c.assistant(text("ok"))
        c.write()
    roots = Roots(tmp_path / "claude", None, None)
    app = make_app(
        demo_dir(tmp_path), launch=True, agent_command=["claude"], project=str(proj), roots=roots
    )
    async with app.run_test(size=size) as pilot:
        menu = await menu_with_sessions(pilot, app)
        await settle(pilot)
        assert menu.max_scroll_y > 0  # the scrollbar is there
        assert menu.virtual_size.height == 2 * menu.option_count  # a title, a detail each
        hint = app.screen.query_one("#launch-hint")
        assert hint.size.height == 1 and "Enter or the letter chooses" in str(hint.render())
        seen = 0
        for _ in range(menu.option_count):
            lines = screen_chars(app).splitlines()
            for at, line in enumerate(lines):
                if "Resume Claude Code:" in line:
                    seen += 1
                    assert "…" in line, line  # cut to its row
                    below = lines[at + 1]
                    assert "1 message" in below or "2 messages" in below, (line, below)
            await pilot.press("j")
            await settle(pilot)
        assert seen >= 4


@pilot_test
async def test_a_point_of_tool_calls_reads_as_the_lists_read_it(tmp_path: Path) -> None:
    """The session picker showed `⚙ TodoWrite` for a turn that is only a tool call, the
    conversation `⚙ TodoWrite(todos=…)`: one line for it everywhere (`record_text`)."""
    from tests.session_fixtures import tool_use

    proj = tmp_path / "proj"
    c = ClaudeSession(tmp_path / "claude", cwd=str(proj))
    c.user("plan it")
    c.assistant(tool_use("TodoWrite", {"todos": ["write", "test"]}))
    c.write()
    app = make_app(
        demo_dir(tmp_path),
        launch=True,
        agent="claude",
        agent_command=["claude"],
        project=str(proj),
        roots=Roots(tmp_path / "claude", None, None),
    )
    async with app.run_test(size=SIZE) as pilot:
        await menu_with_sessions(pilot, app)
        await pilot.press("enter")
        points = app.screen.query_one(PointList)
        await wait_until(pilot, lambda: points.messages, "the messages")
        row = points.render_row(0, 100).plain
        assert row.rstrip().endswith('⚙ TodoWrite(todos=["write","test"])'), row


@pilot_test
async def test_a_claude_file_not_named_by_its_id_is_forked_even_at_its_latest_point(
    tmp_path: Path,
) -> None:
    """A copy under another name (`copie-résumé.jsonl`, the original gone): `claude
    --resume <id>` finds no `<id>.jsonl`. The menu resumed it as it is, as `persist
    fork` no longer does: the latest point forks it too, and the fork is resumed."""
    proj = tmp_path / "proj"
    [c] = sessions(tmp_path, proj, 1)
    assert c.path is not None
    copy = c.path.with_name("copie-résumé.jsonl")
    c.path.rename(copy)
    roots = Roots(tmp_path / "claude", None, None)
    log_dir = demo_dir(tmp_path)
    command = ["claude"]
    app = make_app(
        log_dir, launch=True, agent="claude", agent_command=command, project=str(proj), roots=roots
    )
    async with app.run_test(size=SIZE) as pilot:
        menu = await menu_with_sessions(pilot, app)
        option = menu.get_option(f"session:claude:{c.session_id}")
        assert "resumes through a fork (copie-résumé.jsonl)" in str(option.prompt)
        menu.highlighted = menu.get_option_index(f"session:claude:{c.session_id}")
        await pilot.press("enter")
        points_screen = app.screen
        assert isinstance(points_screen, SessionPointsScreen)
        points = points_screen.query_one(PointList)
        await wait_until(pilot, lambda: points.messages, "the messages")
        assert "fork" in points.render_row(0, 80).plain  # the latest point forks too
        assert "resume " not in points.render_row(0, 80).plain
        head = plain(points_screen.query_one("#points-title"))
        assert "copie-résumé.jsonl is not named" in head, head
        await pilot.press("enter")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ResumeScreen) and dialog.plan.new_id
        new_id = dialog.plan.new_id
        summary = plain(dialog.query_one("#resume-summary"))
        assert f"a new session {new_id} from it (its file copie-résumé.jsonl" in summary
        assert f"Runs  cd {proj} && claude --resume {new_id}" in summary, summary
        assert f"--resume {c.session_id}" not in summary
        await pilot.press("y")
        await pilot.pause()
    chosen = app.return_value
    assert chosen is not None and chosen.kind is LaunchChoice.SESSION
    assert chosen.command == ["claude", "--resume", new_id] and chosen.at is None
    back = Selection.from_json(orjson.loads(terminal_json(chosen.to_json())))
    assert back.session is not None
    row = find_row(roots, Layout(log_dir), back.session)
    done = carry_out(Layout(log_dir), row, plan(row, command, back.at, back.new_id))
    assert done.fork is not None and done.fork.path == copy.with_name(f"{new_id}.jsonl")
    assert done.plan.argv == ["claude", "--resume", new_id]
    assert claude.read_transcript(done.fork.path).session.id == new_id
