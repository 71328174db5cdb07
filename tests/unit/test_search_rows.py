"""The indexer's fast path (`journal_row`) gives exactly what `journal_document` and
`record_text` give, for every shape of journal line (common and not)."""

from __future__ import annotations

import base64
import random
from typing import Any

import orjson
import pytest

from recorder.export.render import record_text
from recorder.search import indexer
from recorder.search.indexer import journal_document, journal_row
from recorder.store.reader import Record


def line(record: dict[str, Any] | list[Any] | str) -> bytes:
    return orjson.dumps(record) + b"\n"


def msg(frame: dict[str, Any], **extra: Any) -> bytes:
    rec: dict[str, Any] = {"v": 1, "seq": 7, "ts": 1715677212.5, "kind": "msg", "topic": "Ops"}
    rec["frames"] = [{"text": "topic"}, frame]
    rec.update(extra)
    return line(rec)


META = {"sender": "Alice", "chain": "Plan", "ace": 2, "tags": ["Urgent", 3, "db"]}
SHAPES: list[bytes] = [
    msg({"json": {"text": "redis connection refused", "to": "Bob"}}, meta=META),
    msg({"json": {"content": "Café ünïcode\ttab\x07bell", "to": ["a", 1, "B"]}}, meta=META),
    msg({"json": {"message": "m", "body": "b", "session": "S1"}}, meta={"session": "x"}),
    msg({"json": {"body": "only body", "session_id": "Sid"}}, meta={"session": "M"}),
    msg({"json": {"text": 5, "content": "second key wins"}}),
    msg({"json": {"x": 1, "_persist": {"k": 1}}}, meta=META),  # no text key: JSON rest
    msg({"json": {"text": "t", "to": {"not": "a list"}, "session": 3}}, meta={"session": 4}),
    msg({"json": {"text": "t"}}, meta="not a dict"),
    msg({"json": {"text": "t"}}, meta={"tags": "not a list", "ace": True, "sender": 9}),
    msg({"json": {"text": "t"}}, meta={"tags": [1, 2]}),
    msg({"json": ["a", "list"]}),
    msg({"json": 42}),
    msg({"json": "a json string"}),
    msg({"json": None}),
    msg({"text": "a text frame"}, meta=META),
    msg({"text": 12}),
    msg({"b64": base64.b64encode(b"\x00\x01binary").decode()}),
    msg({"json": {"text": "t"}}, ts=True, seq=True),
    msg({"json": {"text": "t"}}, ts=3, seq="7", topic=None),
    msg({"json": {"text": "t"}}, ts=None, topic=["x"]),
    line({"v": 1, "seq": 1, "ts": 1.0, "kind": "msg", "frames": []}),
    line({"v": 1, "seq": 1, "ts": 1.0, "kind": "msg"}),
    line({"v": 1, "seq": 2, "ts": 2.0, "kind": "heartbeat", "uptime": 3}),
    line({"v": 1, "seq": 3, "ts": 3.0, "kind": "gap", "cause": "hwm", "missed": 2}),
    line({"v": 1, "seq": 4, "ts": 4.0, "kind": "event", "detail": "started", "meta": META}),
    line({"seq": 1}),  # no kind: not a journal record
    line(["a", "list"]),
    b'{"v": 1, "seq": 5, "kind": "msg", "frames": [{"json": {"text": "torn',
    b"\xff\xfe not json at all\n",
    b"\n",
]


def expected(raw: bytes, segment: int = 3, offset: int = 1234) -> tuple[tuple[Any, ...], str]:
    doc = journal_document(raw, segment, offset)
    assert doc.text == record_text(Record(0, segment, offset, raw))[: indexer.MAX_TEXT]
    return doc.row(), doc.text


@pytest.mark.parametrize("raw", SHAPES, ids=range(len(SHAPES)))
def test_fast_row_equals_document(raw: bytes) -> None:
    assert journal_row(raw, 3, 1234) == expected(raw)


def test_fast_row_cuts_long_text_like_the_document(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(indexer, "MAX_TEXT", 10)
    for raw in (msg({"json": {"text": "x" * 50}}), msg({"text": "y" * 50})):
        row, text = journal_row(raw, 1, 0)
        assert text == "x" * 10 or text == "y" * 10
        assert (row, text) == expected(raw, 1, 0)


def test_fast_row_equals_document_over_random_records() -> None:
    rng = random.Random(8)
    keys = ["text", "content", "message", "body", "to", "session", "session_id", "x"]
    values: list[Any] = ["Hello", "ÅB\u202ec", 3, None, ["a", 2], {"k": "v"}, True, ""]
    for _ in range(3000):
        payload = {k: rng.choice(values) for k in rng.sample(keys, rng.randint(0, 5))}
        meta = {
            k: rng.choice([*values, ["T1", "t2", 5]])
            for k in rng.sample(["sender", "chain", "ace", "tags", "session"], rng.randint(0, 5))
        }
        frame = rng.choice([{"json": payload}, {"text": rng.choice(values)}, {"json": payload}])
        rec: dict[str, Any] = {"v": 1, "seq": rng.choice([1, 2.0, None]), "kind": "msg"}
        rec.update(ts=rng.choice([1.5, 2, None, "x"]), topic=rng.choice(values), meta=meta)
        rec["frames"] = [frame]
        raw = line(rec)
        assert journal_row(raw, 2, 99) == expected(raw, 2, 99), raw
