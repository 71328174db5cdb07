"""The indexer's fast path (`journal_row`) gives exactly what `journal_document` and
`record_text` give, for every shape of journal line (common and not)."""

from __future__ import annotations

import base64
import hashlib
import random
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.export.render import record_text
from recorder.search.index import SCHEMA_VERSION
from recorder.search.indexer import journal_document, journal_row
from recorder.store.reader import Record


def line(record: dict[str, Any] | list[Any] | str) -> bytes:
    return orjson.dumps(record) + b"\n"


def msg(frame: dict[str, Any], *more: dict[str, Any], **extra: Any) -> bytes:
    """A message whose payload frames are `frame` and `more` (after the topic frame)."""
    rec: dict[str, Any] = {"v": 1, "seq": 7, "ts": 1715677212.5, "kind": "msg", "topic": "Ops"}
    rec["frames"] = [{"text": "topic"}, frame, *more]
    rec.update(extra)
    return line(rec)


CALLS = [{"function": {"name": "grep", "arguments": "{}"}}, {"name": "ls", "args": {"p": 1}}]


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
    # several payload frames: every one is shown (`frames_text`), not just the last
    msg({"json": {"text": "alpha first"}}, {"json": {"text": "omega last"}}, meta=META),
    msg({"text": "header beta"}, {"text": "body gamma"}),
    msg({"json": {"text": "a", "to": "Bob"}}, {"b64": "AAE="}, {"json": {"content": "z"}}),
    # a tool-call turn whose text field is empty (OpenAI's `content: ""`): its calls
    msg({"json": {"content": "", "tool_calls": CALLS, "to": "Bob"}}, meta=META),
    msg({"json": {"text": "", "content": "not read", "tool_calls": CALLS}}),
    msg({"json": {"text": "", "tool_calls": "not a list"}}),
    msg({"json": {"text": "", "tool_calls": [3, {"function": "f"}]}}),
    msg({"json": {"text": ""}}, meta=META),
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
    assert doc.text == record_text(Record(0, segment, offset, raw), whole=True)
    return doc.row(), doc.text


# What the index derives (rows and texts) from these lines, by the schema that derives it
# so. A change to what is indexed needs a new SCHEMA_VERSION, so that an index written
# the old way is rebuilt by the first search instead of missing words (schema 8 missed
# every frame of a message but the last, schema 9 a text's characters past 1,048,576,
# schema 10 the frames of a message of several after its first 2,000 characters):
# then put its digest here.
LONG = "lorem ipsum " * 90_000 + "tailword"  # 1,080,008 characters
PINNED = [
    msg({"json": {"text": LONG}}),
    msg({"text": LONG}),
    msg({"json": {"text": "alpha first", "sender": "c"}}, {"json": {"text": "omega last"}}),
    msg({"text": "header beta"}, {"text": "body gamma"}, meta=META),
    msg({"text": "x" * 2500}, {"text": "delta after the list's cut"}, {"text": "z"}),
    msg({"json": {"content": "", "tool_calls": CALLS}}, meta=META),
    msg({"json": {"text": "redis connection refused", "to": "Bob"}}, meta=META),
    msg({"json": {"x": 1, "_persist": {"k": 1}}}),
    msg({"text": "a text frame"}),
    line({"v": 1, "seq": 4, "ts": 4.0, "kind": "event", "detail": "started", "meta": META}),
    b"\xff\xfe not json at all\n",
]
DERIVED = (13, "ffa61afd26373d64f269afb6ffd73a5107956cb1fd4d2b7897dcb8eeb75ebbfe")


def test_a_change_to_what_is_indexed_comes_with_a_new_schema() -> None:
    derived = orjson.dumps([journal_row(raw, 3, 1234) for raw in PINNED])
    assert (SCHEMA_VERSION, hashlib.sha256(derived).hexdigest()) == DERIVED


@pytest.mark.parametrize("raw", SHAPES, ids=range(len(SHAPES)))
def test_fast_row_equals_document(raw: bytes) -> None:
    assert journal_row(raw, 3, 1234) == expected(raw)


def test_a_long_text_is_indexed_whole_by_either_path() -> None:
    """Its first 1,048,576 characters were: a word past them was never found."""
    for raw in (msg({"json": {"text": LONG}}), msg({"text": LONG}), msg({"text": LONG}, {})):
        row, text = journal_row(raw, 1, 0)
        assert text.startswith(LONG)
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


_TEXTS = st.one_of(st.sampled_from(["", "Hello", "ÅB\u202ec", "t"]), st.integers(-5, 5), st.none())
_CALLS = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"function": st.fixed_dictionaries({"name": _TEXTS, "arguments": _TEXTS})}
        ),
        st.fixed_dictionaries({"name": _TEXTS}, optional={"args": _TEXTS}),
        st.integers(0, 3),
    ),
    max_size=3,
)
_PAYLOADS = st.dictionaries(
    st.sampled_from(["text", "content", "message", "body", "to", "session", "x", "_persist"]),
    st.one_of(_TEXTS, st.lists(_TEXTS, max_size=2)),
    max_size=5,
).flatmap(lambda d: st.one_of(st.just(d), _CALLS.map(lambda calls: {**d, "tool_calls": calls})))
_FRAMES = st.one_of(
    st.builds(lambda p: {"json": p}, _PAYLOADS),
    st.builds(lambda p: {"json": p}, st.one_of(_TEXTS, st.lists(_TEXTS, max_size=2))),
    st.builds(lambda t: {"text": t}, _TEXTS),
    st.just({"b64": "AAE="}),
)
_METAS = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "sender": _TEXTS,
            "chain": _TEXTS,
            "ace": st.one_of(st.integers(1, 6), st.booleans()),
            "tags": st.lists(_TEXTS, max_size=3),
            "session": _TEXTS,
        },
    ),
)


@settings(max_examples=800, deadline=None)
@given(frames=st.lists(_FRAMES, max_size=5), meta=_METAS, topic=_TEXTS)
def test_fast_row_equals_document_over_record_shapes(
    frames: list[dict[str, Any]], meta: dict[str, Any] | None, topic: Any
) -> None:
    """Any number of frames of any kind, payloads with and without text, empty text,
    tool calls of both shapes: the fast path's row and text are the document's."""
    rec: dict[str, Any] = {"v": 1, "seq": 3, "ts": 2.5, "kind": "msg", "frames": frames}
    rec.update(topic=topic, meta=meta)
    raw = line(rec)
    assert journal_row(raw, 2, 99) == expected(raw, 2, 99), raw
