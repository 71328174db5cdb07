"""The detail view opens any record up to the recorder's size limit at once, scrolls it,
steps between records, shows more on request and saves the record as stored."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from recorder.store.records import encode_frames
from tests.demo_journal import BASE_TS, DemoWriter
from tests.screenshots import settle
from tests.tui_fixtures import SIZE, make_app, pilot_test
from tui.screens.detail import DetailScreen
from tui.screens.main import MainScreen
from tui.widgets.text_view import DEFAULT_LIMIT, TextView

# The old view laid out the whole text (quadratic: 4 MB took about 20 s, 8 MB minutes).
pytestmark = pytest.mark.timeout(90)

BIG = 8 * 1024 * 1024


def big_journal(root: Path) -> None:
    w = DemoWriter.open(root)
    w.message(BASE_TS, "coder", "before")
    line = "cell output \x1b[31mred\x1b[0m " + "y" * 90 + "\n"
    w.message(BASE_TS + 1, "kernel", line * (BIG // len(line)), topic="kernel.stream")
    # One line of 8 MB without a newline, as a binary-free JSON string.
    w.message(BASE_TS + 2, "kernel", "z" * BIG, topic="kernel.stream")
    frames = [b"multi", b"\xff\x00\x01\x02", b'{"a":1,"a":2,"n":123456789012345678901234567890}']
    w.journal.append(
        {"kind": "msg", "ts": BASE_TS + 3, "topic": "multi", "meta": {"sender": "jupyter"}},
        encode_frames(frames),
    )
    w.message(BASE_TS + 4, "coder", "after")
    w.checkpoint(BASE_TS + 5, "end", "manual")
    w.close()


@pilot_test
async def test_large_records_open_scroll_and_step(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    big_journal(root)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3")
        main = app.screen
        assert isinstance(main, MainScreen)
        messages = main.recent_pane.messages
        store = app.journal.store
        assert store is not None
        big = next(r.index for r in store.records() if len(r.line) > BIG)
        messages.move_to(messages.row_of(big) or 0)
        await pilot.press("enter")
        await pilot.pause()
        detail = app.screen
        assert isinstance(detail, DetailScreen)
        view = detail.view
        assert isinstance(view, TextView)
        # Only the budget is cut into rows; the rest is announced, not laid out.
        assert view.hidden() > BIG
        assert view.row_count < 8 * DEFAULT_LIMIT // 80  # all of it: over 250,000 rows
        assert "more not shown (m shows more" in view.plain_text()
        assert "\x1b" not in view.plain_text() and "\\x1b[31m" in view.plain_text()
        await pilot.press("G")
        await pilot.pause()
        assert view.scroll_y > 0
        rows = view.row_count
        await pilot.press("m")
        await pilot.pause()
        assert view.row_count > rows
        # Next record: the 8 MB single line; every row is cut at the width.
        await pilot.press("right_square_bracket")
        await pilot.pause()
        assert detail.record.index == big + 1
        assert view.row_count >= DEFAULT_LIMIT // view.size.width
        assert messages.record_index(messages.cursor) == big + 1
        await pilot.press("left_square_bracket")
        await pilot.pause()
        assert detail.record.index == big
        # Save: the stored line, byte for byte, in a private file.
        await pilot.press("s")
        await pilot.pause()
        saved = list((root / "exports").glob("record-*.jsonl"))
        assert len(saved) == 1
        assert saved[0].read_bytes() == store.record(big).line
        assert saved[0].stat().st_mode & 0o777 == 0o600
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


@pilot_test
async def test_detail_shows_every_frame_as_sent(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    big_journal(root)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3")
        main = app.screen
        assert isinstance(main, MainScreen)
        store = app.journal.store
        assert store is not None
        multi = next(r.index for r in store.records() if r.topic == "multi")
        main.recent_pane.messages.move_to(main.recent_pane.messages.row_of(multi) or 0)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        out = app.screen.view.plain_text()
        assert "frames (3)" in out
        assert '{"a":1,"a":2,"n":123456789012345678901234567890}' in out
        assert '"n": 123456789012345678901234567890' in out  # the payload, re-indented
        assert "#1 binary, 4 bytes" in out and "ff000102" in out
        assert orjson.loads(store.record(multi).line)["seq"] == store.record(multi).seq
