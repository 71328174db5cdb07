"""The agent sessions screen: every source, newest first, a transcript preview."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from recorder.store import secrets as S
from tests.screenshots import settle
from tests.secret_samples import make
from tests.session_fixtures import (
    ClaudeSession,
    codex_rollout,
    gemini_legacy,
    gemini_messages,
    gemini_project,
    new_uuid,
    text,
    thinking,
)
from tests.tui_fixtures import SIZE, demo_dir, main_screen, make_app, pilot_test, plain
from tui.panes.sessions import SessionList, SessionsScreen
from tui.screens.session_conversation import SessionConversationScreen
from tui.widgets.conversation_view import ConversationView


def agent_roots(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The three agents' folders under `tmp` (empty until a test writes sessions there)."""
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp / "claude"))
    monkeypatch.setenv("GEMINI_CLI_HOME", str(tmp / "ghome"))
    monkeypatch.setenv("CODEX_HOME", str(tmp / "codex"))


def agent_homes(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    agent_roots(tmp, monkeypatch)
    c = ClaudeSession(tmp / "claude", cwd="/home/me/web")
    c.t += 86400 * 30  # the newest
    c.user("make the page load faster")
    c.assistant(thinking("profile first"), text("I will profile the page."))
    c.write()
    gid = new_uuid()
    gemini_legacy(
        gemini_project(tmp / "ghome" / ".gemini", "/home/me/gem"), gid, gemini_messages(2)
    )
    tid = "019a085e-0000-7000-8000-0000000000aa"
    codex_rollout(tmp / "codex", tid, 1)
    return {"claude": c.session_id, "gemini": gid, "codex": tid}


async def wait_rows(pilot, screen: SessionsScreen) -> SessionList:  # type: ignore[no-untyped-def]
    sessions = screen.query_one(SessionList)
    for _ in range(200):
        await pilot.pause(0.02)
        if sessions.rows:
            break
    return sessions


async def open_sessions(  # type: ignore[no-untyped-def]
    pilot, app
) -> tuple[SessionsScreen, SessionList]:
    """`S` from the main screen: the sessions screen, once its rows are listed."""
    await pilot.press("S")
    screen = app.screen
    assert isinstance(screen, SessionsScreen)
    return screen, await wait_rows(pilot, screen)


async def toasts(pilot) -> list[str]:  # type: ignore[no-untyped-def]
    """What the notifications on screen show, once there are some (or after 1 s)."""
    from textual.widgets._toast import Toast  # not exported: what a toast shows

    shown: list[str] = []
    for _ in range(50):
        await pilot.pause(0.02)
        shown = [str(t.render()) for t in pilot.app.screen.query(Toast)]
        if shown:
            break
    return shown


async def shows(pilot, preview, text: str) -> str:  # type: ignore[no-untyped-def]
    """What the preview shows once it holds `text` (or after 2 s)."""
    for _ in range(100):
        if text in str(preview.render()):
            break
        await pilot.pause(0.02)
    return str(preview.render())


@pilot_test
async def test_sessions_screen_lists_every_source_with_a_preview(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = agent_homes(tmp_path, monkeypatch)
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        screen, sessions = await open_sessions(pilot, app)
        keys = [r.session.key for r in sessions.rows]
        assert keys[0] == f"claude:{ids['claude']}"  # newest first
        assert sorted(k.split(":")[0] for k in keys) == ["claude", "codex", "gemini"]
        status = str(screen.query_one("#sessions-status").render())
        assert "3 agent sessions (1 claude, 1 codex, 1 gemini)" in status
        preview = screen.query_one("#sessions-preview")
        await shows(pilot, preview, "I will profile the page.")
        shown = str(preview.render())
        assert "make the page load faster" in shown and "(thinking folded)" in shown
        assert "profile first" not in shown  # thinking is folded
        # Enter reads the whole conversation in the transcript view, at its last message
        await pilot.press("enter")
        for _ in range(100):
            await pilot.pause(0.02)
            if app.screen.query(ConversationView):
                break
        assert isinstance(app.screen, SessionConversationScreen)
        view = app.screen.query_one(ConversationView)
        assert view.selected == len(view.store) - 1 == 1  # the question and the answer
        await pilot.press("escape")
        assert app.screen is screen
        await pilot.press("j")
        await shows(pilot, preview, keys[1].split(":")[1])
        assert keys[1] in str(preview.render())
        await pilot.press("escape")
        assert not isinstance(app.screen, SessionsScreen)


@pilot_test
async def test_a_session_the_agent_deleted_is_shown_from_our_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recorder.sources.copies import protect
    from recorder.sources.discover import Roots, scan
    from recorder.store.layout import Layout

    ids = agent_homes(tmp_path, monkeypatch)
    root = demo_dir(tmp_path)
    [claude_session] = [s for s in scan(Roots.default()).sessions if s.id == ids["claude"]]
    protect(Layout(root), claude_session)
    claude_session.path.unlink()  # the agent's cleanup
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        screen, sessions = await open_sessions(pilot, app)
        row = sessions.rows[0]
        assert row.session.id == ids["claude"] and row.deleted and row.protected
        preview = screen.query_one("#sessions-preview")
        await shows(pilot, preview, "I will profile the page.")
        shown = str(preview.render())
        assert "shown from our copy" in shown and "I will profile the page." in shown
        assert "deleted" in str(sessions.render_row(0, 80))


@pilot_test
async def test_the_preview_shows_a_secret_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agent's session is shown as the journal's messages are: its secrets as
    `[REDACTED:kind]` with a `[secret]` badge (the agent's file is left as it is)."""
    agent_roots(tmp_path, monkeypatch)
    key = make(S.GITHUB, random.Random(6)).secret
    c = ClaudeSession(tmp_path / "claude", cwd="/home/me/web")
    c.user(f"push it with {key} please")
    c.assistant(text("Pushed."))
    path = c.write()
    stored = path.read_bytes()
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        screen, _ = await open_sessions(pilot, app)
        preview = screen.query_one("#sessions-preview")
        await shows(pilot, preview, "Pushed.")
        shown = str(preview.render())
        assert "push it with" in shown and key not in shown
        assert "[REDACTED:github-token]" in shown and "[secret]" in shown
    assert path.read_bytes() == stored


@pilot_test
async def test_a_folder_with_no_journal_points_to_the_agents_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone who runs Claude Code (no bus, no recorder) is shown where their sessions
    are: in the empty timeline's words and in the footer, and `S` opens them. In a
    launch the menu lists the agent's sessions itself: the footer leaves `S` out, and
    the key still opens them."""
    agent_homes(tmp_path, monkeypatch)
    for launch in (False, True):
        app = make_app(tmp_path / f"no-journal-{launch}", launch=launch)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            main = main_screen(app)
            empty = plain(main.query_one("#cp-empty"))
            assert ("Your Claude Code, Gemini CLI and Codex sessions: press S" in empty) is (
                not launch
            )
            footer = {b.binding.key for b in main.active_bindings.values() if b.binding.show}
            assert ("S" in footer) is (not launch)
            _screen, sessions = await open_sessions(pilot, app)
            assert isinstance(app.screen, SessionsScreen) and len(sessions.rows) == 3


@pilot_test
async def test_the_resume_command_is_shown_as_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project path with brackets (`/Users/[USER]/…`, as redacted sessions have it)
    reads whole in the notification: notifications are never markup."""
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    c = ClaudeSession(tmp_path / "claude", cwd="/Users/[USER]/Documents/[b]M-Claude")
    c.user("sync the repo")
    c.write()
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_sessions(pilot, app)
        await pilot.press("r")
        shown = await toasts(pilot)
        command = f"cd '/Users/[USER]/Documents/[b]M-Claude' && claude --resume {c.session_id}"
        assert any(command in text for text in shown), shown


@pilot_test
async def test_a_sub_agent_listed_on_its_own_is_marked_and_not_offered_to_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its session's file is gone: `r` showed `claude --resume <agentId>`, which
    resumes nothing."""
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    parent = new_uuid()
    folder = tmp_path / "claude" / "projects" / "-home-me-web"
    sub = ClaudeSession(
        tmp_path / "claude",
        cwd="/home/me/web",
        session_id=parent,
        sidechain=True,
        agent_id="a1b2c3d",
        path=folder / "agent-a1b2c3d.jsonl",
    )
    folder.mkdir(parents=True)
    sub.user("find the flaky test", parent=None)
    sub.assistant(text("test_retry races the clock"))
    sub.write()
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        _screen, sessions = await open_sessions(pilot, app)
        row = sessions.render_row(0, 100).plain
        assert f"find the flaky test  sub-agent of {parent[:8]} (file gone)" in row, row
        narrow = sessions.render_row(0, 60).plain  # the label stays whole, the title is cut
        assert narrow.endswith("…  sub-agent (file gone)") and len(narrow) <= 60, narrow
        wide = sessions.render_row(0, 76).plain
        assert wide.endswith(f"…  sub-agent of {parent[:8]} (file gone)"), wide
        await pilot.press("r")
        shown = await toasts(pilot)
        assert any("the agent cannot resume a sub-agent" in t for t in shown), shown
        assert not any("--resume" in t for t in shown), shown


@pilot_test
async def test_a_session_the_agent_cannot_resume_shows_why_not_its_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Gemini `kind: "subagent"` session (`resumable` false, left out of Gemini's
    resume lists): `r` on its row and in its conversation showed `gemini --resume`."""
    agent_roots(tmp_path, monkeypatch)
    gid = new_uuid()
    chats = gemini_project(tmp_path / "ghome" / ".gemini", "/home/me/gem")
    gemini_legacy(chats, gid, gemini_messages(2), kind="subagent")
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        _screen, sessions = await open_sessions(pilot, app)
        assert [r.session.key for r in sessions.rows] == [f"gemini:{gid}"]
        await pilot.press("r")
        shown = await toasts(pilot)
        assert any("the agent cannot resume a sub-agent" in t for t in shown), shown
        assert not any("--resume" in t for t in shown), shown
        app.clear_notifications()
        await pilot.press("enter")
        for _ in range(100):
            await pilot.pause(0.02)
            if isinstance(app.screen, SessionConversationScreen) and app.screen.row:
                break
        assert isinstance(app.screen, SessionConversationScreen) and app.screen.row
        await pilot.press("r")
        shown = await toasts(pilot)
        assert any("the agent cannot resume a sub-agent" in t for t in shown), shown
        assert not any("--resume" in t for t in shown), shown


@pilot_test
async def test_a_turn_of_tool_calls_shows_each_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An assistant message that is only tool calls (three `Task`s at once, as Claude
    Code writes them) reads as its calls in the session's transcript, not as a blank."""
    from tests.session_fixtures import tool_use
    from tests.tui_fixtures import screen_chars

    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    c = ClaudeSession(tmp_path / "claude")
    c.user("plan the dinner")
    c.assistant(*(tool_use("Task", {"description": f"course {n}"}) for n in (1, 2, 3)))
    c.assistant(text("Three cooks are on it."))
    c.write()
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await open_sessions(pilot, app)
        await pilot.press("enter")
        for _ in range(100):
            await pilot.pause(0.02)
            if app.screen.query(ConversationView):
                break
        await settle(pilot)
        shown = screen_chars(app)
        for n in (1, 2, 3):
            assert f"⚙ Task(description=course {n})" in shown, shown
        assert "[tool call]" in shown


@pilot_test
async def test_a_folder_name_with_escape_sequences_never_reaches_the_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`r` showed the resume command with the session's folder as it is: an OSC in it
    set the terminal's title, a CSI cleared the screen. The command is still one a
    shell runs in that very folder (`$'...'`)."""
    agent_roots(tmp_path, monkeypatch)
    odd = "/tmp/x\x1b]0;PWNED\x1b\\y\x1b[2J"
    c = ClaudeSession(tmp_path / "claude", cwd=odd)
    c.user("a session in an odd folder")
    c.write()
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await open_sessions(pilot, app)
        await pilot.press("r")
        await settle(pilot)
        [shown] = [n.message for n in app._notifications]
        assert "\x1b" not in shown and shown.isprintable(), repr(shown)
        assert (
            shown
            == f"cd $'/tmp/x\\x1b]0;PWNED\\x1b\\\\y\\x1b[2J' && claude --resume {c.session_id}"
        )
        app.notify("a title \x1b]0;T\x07 too", title="\x1b[2J")  # any notification
        await settle(pilot)
        assert all(n.message.isprintable() and n.title.isprintable() for n in app._notifications)


HOSTILE_ID = "\x1b]0;IDTITLE\x07\x1b[2Jid"  # sets the terminal's title, clears the screen


@pilot_test
async def test_session_ids_with_escape_sequences_are_shown_escaped_and_quoted_to_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session's id is what the agent's file says: a sub-agent's row showed its
    session's id cut to 8 characters as it was (an OSC left open), and `r` on a
    deleted session showed `persist fork KEY` with the key escaped, which no shell
    turns back into the key. Now: escaped, then cut; the command `$'...'`-quoted."""
    from recorder.sources.copies import protect
    from recorder.sources.discover import Roots, scan
    from recorder.store.layout import Layout

    agent_roots(tmp_path, monkeypatch)
    folder = tmp_path / "claude" / "projects" / "-home-me-web"
    folder.mkdir(parents=True)
    sub = ClaudeSession(
        tmp_path / "claude",
        cwd="/home/me/web",
        session_id="\x1b]0;PWNED\x07\x1b[2J",  # its session: no file
        sidechain=True,
        agent_id="a1b2c3d",
        path=folder / "agent-a1b2c3d.jsonl",
    )
    sub.user("find the flaky test", parent=None)
    sub.write()
    gemini_legacy(
        gemini_project(tmp_path / "ghome" / ".gemini", "/home/me/gem"),
        HOSTILE_ID,
        gemini_messages(1),
    )
    root = demo_dir(tmp_path)
    [gem] = [s for s in scan(Roots.default()).sessions if s.id == HOSTILE_ID]
    protect(Layout(root), gem)
    gem.path.unlink()  # the agent's cleanup: `r` offers the fork from our copy
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        _screen, sessions = await open_sessions(pilot, app)
        rows = [sessions.render_row(i, 100).plain for i in range(len(sessions.rows))]
        assert not [r for r in rows if "\x1b" in r or "\x07" in r], rows
        assert any("sub-agent of \\x1b]0;P (file gone)" in r for r in rows), rows
        at = next(i for i, r in enumerate(sessions.rows) if r.session.id == HOSTILE_ID)
        for _ in range(at):
            await pilot.press("j")
        await pilot.press("r")
        await settle(pilot)
        [shown] = [n.message for n in app._notifications]
        quoted = "$'gemini:\\x1b]0;IDTITLE\\x07\\x1b[2Jid'"
        assert shown == f"persist fork {quoted}  (writes it back from our copy)"


@pilot_test
async def test_the_conversation_screen_shows_a_hostile_key_escaped_while_it_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "Reading KEY…" and "cannot open KEY" showed the key as it was, and as markup."""
    import threading

    from tui.screens import session_conversation

    reading = threading.Event()
    real_find_row = session_conversation.find_row

    def slow_find_row(*args, **kwargs):  # type: ignore[no-untyped-def]
        reading.wait(10)
        return real_find_row(*args, **kwargs)

    monkeypatch.setattr(session_conversation, "find_row", slow_find_row)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    key = f"gemini:{HOSTILE_ID}[b]x[/b]"  # listed nowhere: it cannot be opened
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(SessionConversationScreen(key, None))
        for _ in range(3):  # no settle: it waits for the reading worker
            await pilot.pause()
        status = app.screen.query_one("#session-conversation-status")
        escaped = "gemini:\\x1b]0;IDTITLE\\x07\\x1b[2Jid[b]x[/b]"
        assert str(status.render()) == f"Reading {escaped}…"
        reading.set()
        for _ in range(200):
            await pilot.pause(0.02)
            if "cannot open" in str(status.render()):
                break
        shown = str(status.render())
        assert shown.startswith(f"cannot open {escaped}: ") and "\x1b" not in shown, shown


@pilot_test
async def test_a_late_preview_of_another_row_is_not_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long session's preview, read on a worker that a move to the next row had
    replaced, still arrived, and stayed under the next row's highlight."""
    from rich.text import Text

    agent_homes(tmp_path, monkeypatch)
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        screen, sessions = await open_sessions(pilot, app)
        preview = screen.query_one("#sessions-preview")
        await shows(pilot, preview, "I will profile the page.")  # row 0's
        screen.post_message(SessionsScreen.Previewed(sessions.rows[1].session.key, Text("late")))
        await settle(pilot)
        assert "late" not in str(preview.render())
        screen.post_message(SessionsScreen.Previewed(sessions.rows[0].session.key, Text("fresh")))
        await settle(pilot)
        assert str(preview.render()) == "fresh"


def test_message_counts_fit_their_column() -> None:
    """A count of 30,000 overflowed the 4-wide column and pushed the titles out of line."""
    from tui.text import short_count

    assert [short_count(n) for n in (0, 9999, 10_000, 30_000, 999_999, 1_234_567, 12_545_678)] == [
        "0", "9999", "10k", "30k", "999k", "1.2M", "13M",
    ]  # fmt: skip
    assert all(len(short_count(n)) <= 4 for n in range(0, 50_000_000, 7_919))
    assert [short_count(n) for n in (9_949_999, 9_950_000, 2_000_000_000)] == ["9.9M", "10M", "2G"]


@pilot_test
async def test_sessions_under_a_folder_not_named_in_utf8_are_listed_and_previewed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Agents' folders under `/home/jos\\xe9` (bytes that are not UTF-8), and a stray
    copy under a Latin-1 name: the screen said "sessions failed: str is not valid
    UTF-8" (the scan cache could not be written) and listed nothing."""
    home = tmp_path / "jos\udce9"
    ids = agent_homes(home, monkeypatch)
    stray = ClaudeSession(home / "claude", cwd="/home/me/web")
    assert stray.path is not None
    stray.path = stray.path.with_name("copie-r\udce9sum\udce9.jsonl")
    stray.user("the stray copy asks about postgres vacuum")
    stray.write()
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        screen, sessions = await open_sessions(pilot, app)
        status = str(screen.query_one("#sessions-status").render())
        assert "4 agent sessions (2 claude, 1 codex, 1 gemini)" in status, status
        assert "problem" not in status, status
        keys = {r.session.key for r in sessions.rows}
        assert {f"claude:{ids['claude']}", f"claude:{stray.session_id}"} <= keys
        preview = screen.query_one("#sessions-preview")
        assert "make the page load faster" in await shows(pilot, preview, "make the page")
        at = next(i for i, r in enumerate(sessions.rows) if r.session.path == stray.path)
        sessions.cursor = at
        await pilot.pause(0.05)
        assert "postgres vacuum" in await shows(pilot, preview, "postgres vacuum")


@pilot_test
async def test_a_session_with_unreadable_lines_is_flagged_on_its_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`persist sessions` flags "(2 unreadable lines)" before the title; the screen's row
    said nothing of them."""
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    c = ClaudeSession(tmp_path / "claude", cwd="/home/me/web")
    c.user("why is the cache cold")
    c.assistant(text("The TTL is one second."))
    c.write()
    assert c.path is not None
    lines = c.path.read_text().splitlines()
    lines[1:1] = ['{"type": "user", "uuid": "torn', "\x00garbage"]
    c.path.write_text("".join(x + "\n" for x in lines))
    fine = ClaudeSession(tmp_path / "claude", cwd="/home/me/api")
    fine.t -= 86400  # older: the second row
    fine.user("add a health check")
    fine.write()
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        _screen, sessions = await open_sessions(pilot, app)
        assert [r.session.id for r in sessions.rows] == [c.session_id, fine.session_id]
        row = sessions.render_row(0, 100).plain
        assert "(2 unreadable lines) why is the cache cold" in row, row
        narrow = sessions.render_row(0, 50).plain  # the flag before the title: never cut
        assert "(2 unreadable lines)" in narrow, narrow
        assert "unreadable" not in sessions.render_row(1, 100).plain


@pilot_test
async def test_r_on_a_claude_file_not_named_by_its_id_gives_the_fork_not_the_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`backup-of-<id>.jsonl` (the original gone): `r` showed `claude --resume <id>`,
    which finds no `<id>.jsonl`; `persist fork` forks it."""
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    c = ClaudeSession(tmp_path / "claude", cwd="/home/me/web")
    c.user("rotate the logs")
    c.assistant(text("logrotate it is"))
    c.write()
    assert c.path is not None
    c.path.rename(c.path.with_name(f"backup-of-{c.session_id}.jsonl"))
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        _screen, sessions = await open_sessions(pilot, app)
        assert [r.session.id for r in sessions.rows] == [c.session_id]
        await pilot.press("r")
        shown = " ".join(await toasts(pilot))
        assert f"persist fork claude:{c.session_id}" in shown, shown
        assert f"backup-of-{c.session_id}.jsonl is not named" in shown, shown
        assert f"claude --resume {c.session_id}" not in shown.replace("\n", " "), shown
