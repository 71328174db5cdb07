"""No recorded control character reaches the terminal, on any screen: escape
sequences (a title set, the screen cleared), bells and bidi overrides in messages,
session titles, project paths and labels are shown as visible escapes."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from tests.screenshots import settle
from tests.session_fixtures import ClaudeSession, text
from tests.tui_fixtures import SIZE, demo_dir, main_screen, make_app, pilot_test, screen_chars
from tui.app import PersistApp
from tui.panes.sessions import SessionList, SessionsScreen
from tui.screens.session_conversation import SessionConversationScreen

HOSTILE = "\x1b]0;owned\x07 \x1b[2J\x1b[31m red \u202egnp.exe"
RAW = ("\x1b", "\x07", "\u202e")


def assert_safe(app: PersistApp, where: str) -> str:
    shown = screen_chars(app)
    raw = [repr(c) for c in RAW if c in shown]
    assert not raw, f"{where}: raw {', '.join(raw)} on screen"
    return shown


async def until(pilot, test, tries: int = 150) -> None:  # type: ignore[no-untyped-def]
    for _ in range(tries):
        if test():
            return
        await pilot.pause(0.02)


@pilot_test
async def test_hostile_text_is_escaped_on_every_screen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    monkeypatch.setenv("GEMINI_CLI_HOME", str(tmp_path / "ghome"))
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex"))
    c = ClaudeSession(tmp_path / "claude", cwd=f"/home/me/{HOSTILE}", branch=HOSTILE)
    c.user(f"fix it {HOSTILE}")
    c.assistant(text(f"done {HOSTILE}"))
    c.write()
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = main_screen(app)
        assert_safe(app, "the timeline")
        await pilot.press("3")  # Recent holds mallory's hostile message
        await settle(pilot)
        assert_safe(app, "Recent")
        # search: journal hits and session hits, each row's snippet
        await pilot.press("slash")
        main.query_one("#search-input", Input).value = "innocent"
        await until(pilot, lambda: bool(main.search_pane.result_hits))
        assert "\\x1b]0;owned\\x07" in assert_safe(app, "journal search hits")
        main.query_one("#search-input", Input).value = "source:claude fix"
        await until(pilot, lambda: any(h.source == "claude" for h in main.search_pane.result_hits))
        assert "\\u202e" in assert_safe(app, "session search hits")
        await pilot.press("escape")
        # the sessions list, its preview, and the session's transcript
        await pilot.press("S")
        screen = app.screen
        assert isinstance(screen, SessionsScreen)
        preview = screen.query_one("#sessions-preview")
        await until(pilot, lambda: "done" in str(preview.render()))
        assert screen.query_one(SessionList).rows
        assert "\\x1b[2J" in assert_safe(app, "the sessions list and preview")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SessionConversationScreen))
        await settle(pilot)
        assert "done" in assert_safe(app, "the session's transcript")


def test_highlights_land_on_what_they_marked_around_escapes() -> None:
    from tui.text import highlighted_text

    line = "a\x1bb match \u202e match"
    first = line.index("match")
    second = line.index("match", first + 1)
    shown = highlighted_text(line, [(first, first + 5, "bold"), (second, second + 5, "italic")])
    assert shown.plain == "a\\x1bb match \\u202e match"
    styled = [(shown.plain[s.start : s.end], str(s.style)) for s in shown.spans]
    assert ("match", "bold") in styled and ("match", "italic") in styled
    assert highlighted_text("", []).plain == ""
