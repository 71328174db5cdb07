"""The enricher's per-key-tuple shapes against reading every rule's field per message.

`Enricher.classify` remembers, per tuple of top-level keys, which value tables, key
rules, sender keys and text keys apply (`_shape`). The reference below is the
straightforward reading it replaced: every rule's field looked up in every message.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.daemon import enrich
from recorder.daemon.enrich import _NONE, _TEXT_KEYS, _WORDS_TABLE, Enricher
from recorder.store.ranges import MAX_KEY_CHARS

RULES = """
[settings]
scan_bytes = 16
sender_keys = ["sender", "from", "agent"]
[[chain]]
type = "error"
keys = ["error", "traceback"]
values = { type = ["error"], status = ["failed", 3] }
[[chain]]
type = "tool_call"
keys = ["tool_calls"]
values = { type = ["tool_call"], kind = ["tool_call", 7] }
topics = ["*.tool_call"]
[[ace]]
layer = 2
name = "strategy"
values = { role = ["planner"] }
keys = ["plan"]
[[tags]]
tag = "urgent"
keywords = ["asap", "right now"]
"""

KEYS = [
    "type",
    "status",
    "kind",
    "role",
    "error",
    "traceback",
    "tool_calls",
    "plan",
    "sender",
    "from",
    "agent",
    "_persist",
    *_TEXT_KEYS,
    "other",
    "x",
]
VALUES = st.one_of(
    st.sampled_from(["error", "failed", "tool_call", "planner", "ASAP please", "", "right now"]),
    st.integers(min_value=0, max_value=8),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=2),
    st.fixed_dictionaries(
        {}, optional={"agent": st.text(max_size=5) | st.integers(min_value=-5, max_value=5)}
    ),
)
OBJECTS = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=2),
    st.text(max_size=5),
    st.none(),
)


def reference(
    e: Enricher, topic: str, obj: Any, payload: bytes, scan: bool
) -> tuple[bytes, str | None]:
    """What classify returns, each rule's field read in the message itself."""
    scan = scan and e._scan
    _, by_topic = e._topic_cache.get(topic) or e._by_topic(topic)
    matched: frozenset[int] = _NONE
    sender = None
    text = payload
    if type(obj) is dict:
        for field, table in e._value_tables:
            value = obj.get(field)
            if value is not None and (type(value) is str or type(value) is int):
                matched = matched | table.get(value, _NONE)
        for key in e._key_set.intersection(obj):
            matched = matched | e._keys[key]
        for key in e.sender_keys:
            value = obj.get(key)
            if value and type(value) is str:
                sender = value[:MAX_KEY_CHARS]
                break
        else:
            envelope = obj.get("_persist")
            if type(envelope) is dict and type(envelope.get("agent")) is str:
                sender = envelope["agent"][:MAX_KEY_CHARS]
        if scan:
            for key in _TEXT_KEYS:
                value = obj.get(key)
                if type(value) is str:
                    text = value[: e.scan_bytes].encode("utf-8", "replace")
                    break
    if scan:
        head = text[: e.scan_bytes]
        for word in e._word_set.intersection(head.translate(_WORDS_TABLE).split()):
            matched = matched | e._words[word]
        lowered = head.lower()
        for phrase, rids in e._phrases:
            if phrase in lowered:
                matched = matched | rids
    return e._meta_json(by_topic, matched, sender, e._scan and not scan), sender


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a.tool_call", "b.chat"]), OBJECTS, st.booleans()),
        min_size=1,
        max_size=12,
    )
)
def test_classify_reads_what_every_rule_would(messages: list[tuple[str, Any, bool]]) -> None:
    e = Enricher.from_toml(RULES)
    for topic, obj, scan in messages:  # a shape seen before is remembered, not re-read
        payload = orjson.dumps(obj)
        assert e.classify(topic, obj, payload, scan) == reference(e, topic, obj, payload, scan)


def test_shapes_are_bounded_and_many_or_long_keys_are_never_kept(monkeypatch: Any) -> None:
    monkeypatch.setattr(enrich, "_MAX_SHAPES", 4)
    e = Enricher.from_toml(RULES)
    for i in range(10):
        obj = {f"k{i}": 1, "type": "error"}
        assert orjson.loads(e.classify("t", obj, b"{}")[0])["chain"] == "error"
        assert len(e._shapes) <= 4
    wide = {f"k{i}": i for i in range(enrich._MAX_SHAPE_KEYS + 1)} | {"sender": "me"}
    assert e.classify("t", wide, b"{}")[1] == "me"
    assert tuple(wide) not in e._shapes
    long = {"k" * (enrich._MAX_SHAPE_CHARS + 1): 1, "from": "you"}
    assert e.classify("t", long, b"{}")[1] == "you"
    assert tuple(long) not in e._shapes
