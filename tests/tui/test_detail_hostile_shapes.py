"""The detail view opens messages whose shape, not size, used to cost the most: JSON
nested thousands deep, a text of control characters, a message of very many frames.
Each opens with a bounded amount built (counted here, never timed), shows its start,
and says what it leaves out and how to see it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.text import Span, Text

from recorder.store import reader
from recorder.store.reader import Store
from recorder.store.records import decode_frames, encode_frames
from tests.demo_journal import BASE_TS, DemoWriter
from tests.screenshots import settle
from tests.tui_fixtures import SIZE, make_app, pilot_test, screen_chars
from tui import reading
from tui.app import PersistApp
from tui.jsontext import MAX_INDENT_DEPTH
from tui.screens.detail import FRAMES_SHOWN, DetailScreen
from tui.screens.main import MainScreen
from tui.widgets.text_view import Block, TextView

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


FRAMES = 20_000


@pilot_test
async def test_many_frames_show_the_first_hundred_and_more_on_request(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    frames = [f"{i}".encode() for i in range(1, FRAMES + 1)]
    journal_of(root, "parts.many", frames)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        view = await open_detail(app, pilot, "parts.many")
        # before: two blocks a frame, 40,000 lines built (a million frames: 50 s, 2 GB)
        assert len(view.blocks) < 300
        out = view.plain_text()
        assert f"frames ({FRAMES + 1:,})" in out  # the topic frame, then the parts
        assert "#99 text, 2 bytes" in out and "\n#100 " not in out
        left = FRAMES + 1 - FRAMES_SHOWN
        assert f"… {left:,} more frames not shown (m shows more, s saves the record)" in out
        assert out.index("more frames not shown") < out.index("raw line")
        await pilot.press("m")
        await pilot.pause()
        out = view.plain_text()
        assert "#399 text, 3 bytes" in out and "\n#400 " not in out
        assert f"… {FRAMES + 1 - 4 * FRAMES_SHOWN:,} more frames not shown" in out
        assert len(view.blocks) < 1000
        for _ in range(4):  # 1,600, 6,400, 25,600: all of them, the note gone
            await pilot.press("m")
            await pilot.pause()
        out = view.plain_text()
        assert f"#{FRAMES} text, 5 bytes" in out and "more frames not shown" not in out
        assert not view.has_more()


def test_a_row_reads_a_many_frames_message_without_decoding_every_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Jupyter reading of a row looks for its delimiter among the first frames."""
    root = tmp_path / "logs"
    jupyter = [b"<IDS|MSG>", b"sig", b'{"session":"abcdef123456","msg_type":"stream"}', b"{}"]
    jupyter += [b"{}", b'{"name":"stdout","text":"hello"}']
    journal_of(root, "kernel.iopub", [*jupyter, *([b"buffer"] * FRAMES)])
    journal_of(tmp_path / "other", "parts.many", [b"x"] * FRAMES)
    decoded = [0]

    def counting(line: bytes, record: dict[str, Any]) -> list[bytes]:
        found = decode_frames(line, record)
        decoded[0] += len(found)
        return found

    monkeypatch.setattr(reader, "decode_frames", counting)  # Record.frames
    monkeypatch.setattr(reading, "decode_frames", counting, raising=False)
    for where, topic in ((root, "kernel.iopub"), (tmp_path / "other", "parts.many")):
        with Store(where) as store:
            store.refresh()
            rec = next(r for r in store.records() if r.topic == topic)
        decoded[0] = 0
        found = reading.ReadingRules().read(rec)
        assert decoded[0] <= reading.JUPYTER_IDENTITIES + 6, topic  # before: all 20,007
        if topic == "kernel.iopub":
            assert found == reading.Reading("jupyter:abcdef12", "stream", "hello")
        else:
            assert found is None


@pilot_test
async def test_a_row_keeps_the_line_order_of_its_styled_pieces() -> None:
    """Rows are cut by where pieces start, but drawn as the line would be: a piece added
    later is drawn over an earlier one that starts before it."""
    from textual.app import App, ComposeResult

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield TextView(id="view")

    app = One()
    async with app.run_test(size=(40, 5)) as pilot:
        view = app.query_one(TextView)
        line = Text("ab cd ef", spans=[Span(3, 5, "blue"), Span(0, 8, "red")])
        view.set_blocks([Block(line, limit=None)])
        await pilot.pause()
        colors = {seg.text: seg.style.color.name for seg in view.render_line(0) if seg.text.strip()}
        assert colors == {"ab ": "red", "cd": "red", " ef": "red"}, colors  # "cd" was blue
