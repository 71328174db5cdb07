"""An agent session's conversation has the journal view's keys: Enter shows the message
in full, t jumps to a time, v marks a range, y copies it and e exports it (into
`<log-dir>/exports/`, 0600); a text the session reader cut says so."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.screenshots import settle
from tests.session_fixtures import ClaudeSession, text
from tests.tui_fixtures import (
    SIZE,
    demo_dir,
    make_app,
    pilot_test,
    wait_for_session_conversation,
    wait_until,
)
from tui.screens.detail import DetailScreen
from tui.screens.session_conversation import SessionConversationScreen
from tui.widgets.conversation_view import ConversationView

HUGE = 1_200_010  # characters: the reader keeps 1,048,576 of them


def a_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ClaudeSession:
    """Six turns 1.5 s apart from BASE + 1.5 s (question n, answer n), then a huge one."""
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    c = ClaudeSession(tmp_path / "claude")
    for n in range(3):
        c.user(f"question {n}")
        c.assistant(text(f"answer {n}"))
    c.user("y" * HUGE)
    c.write()
    return c


def note_of(view: ConversationView, index: int) -> str:
    """The turn's note at its end ("… more: …"), its rows joined."""
    rows = [
        "".join(seg.text for seg in strip).strip(" ▌┃") for strip in view._turn_strips(index, 100)
    ]
    at = max(i for i, row in enumerate(rows) if row.startswith("… more:"))
    return " ".join(row for row in rows[at:] if row)


async def open_the_session(pilot) -> tuple[SessionConversationScreen, ConversationView]:  # type: ignore[no-untyped-def]
    app = pilot.app
    await pilot.press("S")
    await wait_until(pilot, lambda: app.screen.query_one("SessionList").rows, "the sessions")
    await pilot.press("enter")
    screen = await wait_for_session_conversation(pilot)
    await settle(pilot)
    return screen, screen.query_one(ConversationView)


@pilot_test
async def test_a_sessions_transcript_has_the_journal_views_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_session(tmp_path, monkeypatch)
    root = demo_dir(tmp_path)
    app = make_app(root)
    said: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        screen, view = await open_the_session(pilot)
        app.notify = lambda message, **_kw: said.append(message)  # type: ignore[method-assign]
        store = view.store
        assert view.selected == len(store) - 1 == 6  # at its last message, the huge one

        def shown_text() -> str:
            return str(store.record(view.selected).payload["text"])

        # Enter: the message in full; ] steps back through the session, the view follows
        await pilot.press("k")
        assert shown_text() == "answer 2"
        await pilot.press("enter")
        await pilot.pause()
        detail = app.screen
        assert isinstance(detail, DetailScreen)
        assert detail.record.payload["text"] == "answer 2"
        shown = str(detail.view.blocks[0].text)
        assert "an agent session's message" in shown and "seg-" not in shown
        await pilot.press("left_square_bracket")
        await pilot.pause()
        assert detail.record.payload["text"] == "question 2"
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen and shown_text() == "question 2"
        # t: the first message at or after the time asked
        await pilot.press("t")
        await pilot.pause()
        await pilot.press(*"12:00:04", "enter")
        await settle(pilot)
        assert shown_text() == "question 1"  # at BASE + 4.5 s
        assert said[-1] == "At 2026-01-10 12:00:04"  # BASE is 2026-01-10 12:00 UTC
        # v marks, j j extends, y copies: the clipboard, and a 0600 file in exports/
        await pilot.press("v", "j", "j")
        status = str(screen.query_one("#session-conversation-status").render())
        assert "range: 3 turns" in status
        await pilot.press("y")
        await wait_until(pilot, lambda: screen.job is None, "the copy")
        copies = list((root / "exports").glob("copy-*.jsonl"))
        assert len(copies) == 1 and copies[0].stat().st_mode & 0o777 == 0o600
        lines = copies[0].read_bytes().splitlines()
        assert [orjson.loads(x)["frames"][0]["json"]["text"] for x in lines] == [
            "question 1",
            "answer 1",
            "question 2",
        ]
        assert all(app.clipboard.count(t) == 1 for t in ("question 1", "answer 1", "question 2"))
        # e exports the range as Markdown, named after the session
        await pilot.press("e")
        await wait_until(pilot, lambda: screen.job is None, "the export")
        (md,) = list((root / "exports").glob("conversation-*.md"))
        exported = md.read_text()
        assert md.stat().st_mode & 0o777 == 0o600
        assert f"**session**: claude:{screen.row.session.id}" in exported  # type: ignore[union-attr]
        assert all(t in exported for t in ("question 1", "answer 1", "question 2"))
        assert "answer 0" not in exported and "answer 2" not in exported


@pilot_test
async def test_a_text_the_session_reader_cut_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader keeps 1,048,576 characters of a text and ends it with a line saying how
    many more there were: past what a turn shows, so the fold note and the record view
    say it (they called 1,048,618 characters, the line included, "in all")."""
    a_session(tmp_path, monkeypatch)
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        _screen, view = await open_the_session(pilot)
        huge = view.selected
        said = "1,048,576 of its 1,200,010 characters kept, the rest cut by the session reader"
        assert note_of(view, huge) == f"… more: {said} (z unfolds, Enter shows the record)"
        await pilot.press("z")
        assert note_of(view, huge) == f"… more: {said} (Enter shows the record)"
        await pilot.press("enter")
        await pilot.pause()
        detail = app.screen
        assert isinstance(detail, DetailScreen)
        notes = [str(block.text) for block in detail.view.blocks[:3]]
        assert any(
            "text cut by the session reader: 1,048,576 of its 1,200,010 characters kept" in n
            for n in notes
        ), notes
