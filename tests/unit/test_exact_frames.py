"""Lists and transcripts show what was sent: every frame of a multi-frame message, and
JSON as its stored bytes (duplicate keys, 30-digit integers), not re-serialised."""

from __future__ import annotations

import io
from pathlib import Path

from recorder.export.render import record_text, view
from recorder.export.writers import MarkdownWriter
from recorder.store.reader import Record, open_store
from recorder.store.records import encode_frames
from tests.demo_journal import BASE_TS, DemoWriter
from tui.text import Clock
from tui.widgets.record_list import record_row

DUPES = b'{"a":1,"a":2,"n":123456789012345678901234567890}'
JUPYTER = [
    b"kernel.c3e1.iopub.comm_open",
    b"<IDS|MSG>",
    b"4f1c0ffee",
    b'{"msg_id":"m1","msg_type":"comm_open","session":"s1","username":"u"}',
    b"{}",
    b"{}",
    b'{"comm_id":"c1","target_name":"jupyter.widget","data":{"state":{}}}',
    b"\xff\xfe first buffer",
    b"\xff\xfe last buffer",
]


def _journal(root: Path) -> list[Record]:
    w = DemoWriter.open(root)
    for ts, frames in (
        (BASE_TS, [b"raw.topic", DUPES]),
        (BASE_TS + 1, JUPYTER),
        (BASE_TS + 2, [b"many"] + [b"\x00\xff\x01\x02\x03"] * 1000),
        (BASE_TS + 3, [b"bare", b"123456789012345678901234567890"]),
    ):
        w.journal.append(
            {"kind": "msg", "ts": ts, "topic": frames[0].decode(), "meta": {}},
            encode_frames(frames),
        )
    w.close()
    store = open_store(root)
    return [r for r in store.records() if r.is_message]


def test_list_rows_show_the_stored_bytes(tmp_path: Path) -> None:
    dupes, jupyter, many, bare = _journal(tmp_path / "logs")
    assert record_text(dupes) == DUPES.decode()
    assert record_text(bare) == "123456789012345678901234567890"
    row = record_row(dupes, Clock(tz=None)).plain
    assert '"a":1,"a":2' in row and "123456789012345678901234567890" in row
    text = record_text(jupyter)
    assert '"msg_type":"comm_open"' in text and '"target_name":"jupyter.widget"' in text
    assert "<14 bytes>" in text  # each buffer, not only the last
    assert record_text(many).count("<5 bytes>") > 100  # not a lone "<5 bytes>"
    assert "more frames" in record_text(many)


def test_markdown_shows_every_frame(tmp_path: Path) -> None:
    _, jupyter, _, _ = _journal(tmp_path / "logs")
    out = io.BytesIO()
    writer = MarkdownWriter(out)
    writer.record(jupyter)
    writer.end()
    md = out.getvalue().decode()
    assert '"target_name":"jupyter.widget"' in md  # the content, not only the last buffer
    assert md.count("// frame") == 8
    assert view(jupyter).body is not None
