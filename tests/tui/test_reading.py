"""How messages read: the preview wraps and keeps topics whole, tool calls read as a
name and arguments, and messages the recorder could not name (Jupyter, any
publisher with a rule in reading.toml) get a sender and a kind."""

from __future__ import annotations

from pathlib import Path

import orjson

from recorder.store.reader import open_store
from recorder.store.records import encode_frames
from tests.demo_journal import BASE_TS, DemoWriter
from tests.screenshots import settle
from tests.tui_fixtures import SIZE, make_app, pilot_test, plain
from tui.reading import ReadingRules
from tui.screens.main import MainScreen
from tui.text import Clock
from tui.widgets.record_list import record_row

TOPIC = "kernel.3f2a1c9e-aaaa-bbbb-cccc-0123456789ab.status"
LONG = "the migration finished and every table was checked twice " * 4


def jupyter_frames(msg_type: str, content: dict) -> list[bytes]:
    header = {"msg_id": "m1", "msg_type": msg_type, "session": "c3e9f0d1abcd", "username": ""}
    return [
        TOPIC.encode(),
        b"<IDS|MSG>",
        b"0badc0ffee",
        orjson.dumps(header),
        b"{}",
        b"{}",
        orjson.dumps(content),
    ]


def reading_journal(root: Path) -> None:
    w = DemoWriter.open(root)
    w.message(BASE_TS, "planner", LONG, topic=TOPIC)
    w.message(
        BASE_TS + 1,
        "coder",
        "",
        topic="tools.call",
        chain="tool_call",
        extra={"type": "tool_call", "tool": "edit_file", "args": {"path": "api/x.py", "n": 84}},
    )
    for ts, frames, topic in (
        (
            BASE_TS + 2,
            jupyter_frames("stream", {"name": "stdout", "text": "hello from the kernel"}),
            TOPIC,
        ),
        (
            BASE_TS + 3,
            [b"sensors.kitchen", b'{"device":{"id":"thermo-7"},"celsius":21.5}'],
            "sensors.kitchen",
        ),
    ):
        w.journal.append(
            {"kind": "msg", "ts": ts, "topic": topic, "meta": {}}, encode_frames(frames)
        )
    w.checkpoint(BASE_TS + 10, "after", "manual")
    w.close()


@pilot_test
async def test_preview_wraps_keeps_topics_and_reads_tool_calls(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    reading_journal(root)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = app.screen
        assert isinstance(main, MainScreen)
        text = plain(main.query_one("#preview"), 60)  # a narrow preview: the text wraps
        flat = " ".join(line.strip() for line in text.splitlines())
        assert LONG.strip()[:200] in flat  # wrapped, not cut at the width
        assert TOPIC in text  # whole, not cut to "kernel.3f"
        assert "⚙ edit_file(path=api/x.py, n=84)" in flat
        assert "Who spoke since the previous checkpoint" in flat
        # Jupyter: a sender and a kind from the header, the text of the content.
        assert "jupyter:c3e9f0d1" in text and "[stream]" in text
        assert "hello from the kernel" in text


def test_reading_rules_from_the_log_folder(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    reading_journal(root)
    (root / "reading.toml").write_text(
        '[[rule]]\ntopics = ["sensors.*"]\nsender = "device.id"\nkind = "=reading"\n'
    )
    rules = ReadingRules.load(root)
    assert rules.problem is None
    store = open_store(root)
    sensor = next(r for r in store.records() if r.topic == "sensors.kitchen")
    row = record_row(sensor, Clock(), rules=rules).plain
    assert "thermo-7" in row and "[reading]" in row and "21.5" in row
    assert "?" not in row.split("sensors")[0]
    jup = next(r for r in store.records() if r.is_message and len(r.frames) > 3)
    row = record_row(jup, Clock(), rules=rules).plain
    assert "jupyter:c3" in row and "[stream]" in row and "hello from the kernel" in row
    # The record itself is untouched: the reading is display only.
    assert orjson.loads(jup.line)["meta"] == {}
    (root / "reading.toml").write_text('[[rule]]\ntopics = "x"\n')
    assert "topics must be a list" in (ReadingRules.load(root).problem or "")
