"""Recent hides heartbeats and the recorder's events until `h`; a publisher's doubled
goodbye (sent twice on purpose, both recorded) is listed once."""

from __future__ import annotations

from pathlib import Path

import orjson

from recorder.store.records import encode_frames
from tests.demo_journal import BASE_TS, DemoWriter
from tests.screenshots import settle
from tests.tui_fixtures import SIZE, make_app, pilot_test, plain
from tui.screens.main import MainScreen


def chatty_journal(root: Path) -> None:
    w = DemoWriter.open(root)
    w.record(BASE_TS, "event", event="start", pid=1)
    w.message(BASE_TS + 1, "coder", "hello")
    bye = orjson.dumps(
        {"_persist": {"pub": "p1", "seq": 1, "hb": True, "agent": "cli", "bye": True}}
    )
    for n in range(2):  # what `persist send` leaves: two identical goodbyes
        w.journal.append(
            {"kind": "heartbeat", "ts": BASE_TS + 2 + n / 10, "topic": "_persist.heartbeat"},
            encode_frames([b"_persist.heartbeat", bye]),
        )
    w.message(BASE_TS + 3, "coder", "bye now")
    w.close()


@pilot_test
async def test_heartbeats_hidden_until_asked_and_goodbye_listed_once(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    chatty_journal(root)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = app.screen
        assert isinstance(main, MainScreen)
        await pilot.press("3")
        messages = main.recent_pane.messages
        rows = [messages.render_row(r, 120).plain for r in range(messages.row_count)]
        assert len(rows) == 2 and "hello" in rows[0] and "bye now" in rows[1]
        assert "4 heartbeats and events hidden (h shows)" in plain(main.query_one("#recent-status"))
        await pilot.press("h")
        await settle(pilot)
        rows = [messages.render_row(r, 120).plain for r in range(messages.row_count)]
        assert sum("signing off" in row for row in rows) == 1, rows
        assert any("EVENT" in row for row in rows)
        assert messages.record_index(messages.cursor) == len(app.journal.store) - 1
        await pilot.press("h")
        await settle(pilot)
        assert messages.row_count == 2
