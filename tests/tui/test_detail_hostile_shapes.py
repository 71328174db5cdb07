"""The detail view opens messages whose shape, not size, used to cost the most: JSON
nested thousands deep, a text of control characters, a message of very many frames.
Each opens with a bounded amount built (counted here, never timed), shows its start,
and says what it leaves out and how to see it."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.text import Text

from recorder.store.records import encode_frames
from tests.demo_journal import BASE_TS, DemoWriter
from tests.screenshots import settle
from tests.tui_fixtures import SIZE, make_app, pilot_test, screen_chars
from tui.app import PersistApp
from tui.jsontext import MAX_INDENT_DEPTH
from tui.screens.detail import DetailScreen
from tui.screens.main import MainScreen
from tui.widgets.text_view import TextView

pytestmark = pytest.mark.timeout(120)


def journal_of(root: Path, topic: str, frames: list[bytes]) -> None:
    """A journal of a short message, then one message of `frames` (topic first)."""
    w = DemoWriter.open(root)
    w.message(BASE_TS, "coder", "before")
    w.journal.append(
        {"kind": "msg", "ts": BASE_TS + 1, "topic": topic, "meta": {"sender": "x"}},
        encode_frames([topic.encode(), *frames]),
    )
    w.message(BASE_TS + 2, "coder", "after")
    w.close()


async def open_detail(app: PersistApp, pilot, topic: str) -> TextView:  # type: ignore[no-untyped-def]
    await settle(pilot)
    await pilot.press("3")
    main = app.screen
    assert isinstance(main, MainScreen)
    store = app.journal.store
    assert store is not None
    index = next(r.index for r in store.records() if r.topic == topic)
    messages = main.recent_pane.messages
    messages.move_to(messages.row_of(index) or 0)
    await pilot.press("enter")
    await pilot.pause()
    assert isinstance(app.screen, DetailScreen)
    assert app.screen.record.index == index
    return app.screen.view


def built(view: TextView) -> int:
    """Characters the view holds as source lines (what it cuts into rows)."""
    return sum(len(line if isinstance(line, str) else line.plain) for _, line in view._lines)


@pilot_test
async def test_deeply_nested_json_opens_indented_to_a_depth_then_on_one_line(
    tmp_path: Path,
) -> None:
    depth = 3000  # indented on every level: 2 * 3000 * 3000 = 18 MB of spaces
    payload = b"[" * depth + b"]" * depth
    root = tmp_path / "logs"
    journal_of(root, "deep.array", [payload])
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        view = await open_detail(app, pilot, "deep.array")
        # the text, the payload, frame #1 and the raw line: each about the payload's size
        assert built(view) < 8 * len(payload)
        out = view.plain_text()
        lines = out.split("\n")
        # indented one level a line down to MAX_INDENT_DEPTH, then the rest on one line
        deepest = "  " * MAX_INDENT_DEPTH + "[" * (depth - MAX_INDENT_DEPTH)
        at = next(i for i, line in enumerate(lines) if line.startswith(deepest))
        assert lines[at] == deepest + "]" * (depth - MAX_INDENT_DEPTH)
        assert lines[at - 1] == "  " * (MAX_INDENT_DEPTH - 1) + "["
        assert lines[at + 1] == "  " * (MAX_INDENT_DEPTH - 1) + "]"
        await pilot.press("G")
        await pilot.pause()
        assert view.scroll_y > 0
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


@pilot_test
async def test_control_characters_open_and_scroll_without_walking_every_escape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run of escapes, and escapes between letters (as many styled pieces as characters).
    texts = {"ctl.run": "\x07" * 200_000, "ctl.mixed": "a\x07" * 100_000}
    root = tmp_path / "logs"
    w = DemoWriter.open(root)
    for n, (topic, text) in enumerate(texts.items()):
        w.message(BASE_TS + n, "x", text, topic=topic)
    w.close()
    walked = [0]  # styled pieces Rich's Text.divide went through (each slice of a Text)
    divide = Text.divide

    def counting(self: Text, offsets):  # type: ignore[no-untyped-def]
        walked[0] += len(self.spans)
        return divide(self, offsets)

    monkeypatch.setattr(Text, "divide", counting)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        for topic in texts:
            view = await open_detail(app, pilot, topic)
            walked[0] = 0
            for key in ("pagedown", "pagedown", "pagedown", "G", "g"):
                await pilot.press(key)
                await pilot.pause()
            # before: every row drawn walked all 200,000 escapes (28 rows a screen)
            assert walked[0] < 20_000, topic
            shown = screen_chars(app)
            assert texts[topic][:12].replace("\x07", "\\x07") in shown and "\x07" not in shown
            assert view.scroll_y == 0
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, MainScreen)
