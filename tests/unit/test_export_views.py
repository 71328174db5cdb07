"""One pass over records (`write_records`) views a message once and hands that view
to every writer and to the range summary: what it writes and counts is what each
writer writes alone, record by record, and what `summarize` counts, whatever the
record's shape (odd senders, missing fields, several frames, text or binary
payloads, events, gaps, damaged lines)."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest

from recorder.export.writers import (
    CsvWriter,
    ExportStats,
    HtmlWriter,
    JsonlWriter,
    MarkdownWriter,
    Writer,
    write_records,
)
from recorder.store.ranges import summarize
from recorder.store.reader import Record
from recorder.store.records import encode_frames, encode_record

T0 = 1_800_000_000.0
WRITERS: list[type[Writer]] = [MarkdownWriter, HtmlWriter, CsvWriter, JsonlWriter]


def message(seq: int, frames: list[bytes], meta: dict[str, Any] | None, **head: Any) -> bytes:
    fields: dict[str, Any] = {"v": 1, "seq": seq, "ts": T0 + seq * 3600.5, "kind": "msg"}
    fields["topic"] = frames[0].decode()
    if meta is not None:
        fields["meta"] = meta
    fields.update(head)
    return encode_record(fields, encode_frames(frames))


def lines() -> list[bytes]:
    json = orjson.dumps
    long_name = "s" * 300  # a participant's name is cut to 200 characters
    out = [
        message(1, [b"chat", json({"text": "hi\n\nthere <b> & ]"})], {"sender": "ann"}),
        message(2, [b"chat", json({"content": "no sender", "n": 1})], {}),
        message(3, [b"chat", json({"text": 7, "message": "m"})], {"sender": 42}),
        message(4, [b"chat", json({"text": "x", "tool": {"a": [1, 2]}})], {"sender": ""}),
        message(5, [b"tools", json({"_persist": {"pub": "p", "seq": 1}})], None),
        message(6, [b"chat", json({"text": "replayed"})], {"sender": "bob", "replay_of": 3}),
        message(7, [b"chat", json({"text": "chained"})], {"sender": "bob", "chain": "tool"}),
        message(8, [b"chat", json({"text": long_name})], {"sender": long_name}),
        message(9, [b"chat", b"plain text, not JSON"], {"sender": "cat"}),
        message(10, [b"chat", b"\x00\xff binary"], {"sender": "cat"}),
        message(11, [b"multi", json({"text": "one"}), json({"text": "two"})], {"sender": "m"}),
        message(12, [b"chat", json([1, 2, 3])], {"sender": "list"}),
        message(13, [b"chat", json({"text": "no time"})], {"sender": "ann"}, ts=None),
        message(14, [b"chat", b"null"], {"sender": "ann"}),
        json({"v": 1, "seq": 15, "ts": T0 + 99_000, "kind": "gap", "missed": 4, "agent": "a"}),
        json({"v": 1, "seq": 16, "ts": T0 + 99_001, "kind": "event", "event": "started"}),
        json({"v": 1, "seq": 17, "ts": T0 + 99_002, "kind": "heartbeat"}),
        b'{"v": 1, "seq": "torn',
        message(18, [b"chat", json({"text": "last"})], {"sender": "zed"}),
    ]
    return [line + b"\n" for line in out]


def records() -> list[Record]:
    return [Record(i, 1, i * 1000, line) for i, line in enumerate(lines())]


def alone(cls: type[Writer]) -> bytes:
    """What a writer writes given every record through `record`, one by one."""
    out = io.BytesIO()
    w = cls(out)
    for rec in records():
        w.record(rec)
    w.flush()
    return out.getvalue()


@pytest.mark.parametrize("cap", [1000, 2])
def test_a_pass_counts_what_the_summary_counts(cap: int) -> None:
    stats = ExportStats()
    stats.participants_cap = cap
    write_records(records(), [MarkdownWriter(io.BytesIO())], summary=stats)
    want = ExportStats()
    want.participants_cap = cap
    summarize(records(), want)
    assert stats == want
    assert list(stats.participants.items()) == list(want.participants.items())  # order too
    assert stats.messages == 15 and stats.bad_lines == 1 and stats.missed == 4
    assert ("s" * 200 in stats.participants) is (cap > 2)


def test_each_writer_in_a_shared_pass_writes_what_it_writes_alone() -> None:
    """The pass views a message once, with its JSON body when any writer shows one:
    a writer that does not (CSV) writes the same bytes beside one that does."""
    outs = [io.BytesIO() for _ in WRITERS]
    writers = [cls(out) for cls, out in zip(WRITERS, outs, strict=True)]
    write_records(records(), writers)
    for w in writers:
        w.flush()
    for cls, out in zip(WRITERS, outs, strict=True):
        assert out.getvalue() == alone(cls), cls.__name__
    for cls in WRITERS:
        out = io.BytesIO()
        w = cls(out)
        write_records(records(), [w])
        w.flush()
        assert out.getvalue() == alone(cls), cls.__name__
    md = alone(MarkdownWriter).decode()
    assert "```json" in md and '"tool"' in md  # a body was shown where there is one
    assert "**?** · `chat`" in md and "**42** · `chat`" in md and "· replay" in md
