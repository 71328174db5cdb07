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
    fields = obj if type(obj) is dict else {}
    hits = [
        table.get(fields.get(f), _NONE)
        for f, table in e._value_tables
        if type(fields.get(f)) in (str, int)
    ]
    hits += [rids for key, rids in e._keys.items() if key in fields]
    senders = [fields.get(k) for k in e.sender_keys]
    sender = next((v[:MAX_KEY_CHARS] for v in senders if v and type(v) is str), None)
    envelope = fields.get("_persist")
    if sender is None and type(envelope) is dict and type(envelope.get("agent")) is str:
        sender = envelope["agent"][:MAX_KEY_CHARS]
    if scan:
        texts = [fields.get(k) for k in _TEXT_KEYS if type(fields.get(k)) is str]
        text = texts[0][: e.scan_bytes].encode("utf-8", "replace") if texts else payload
        head = text[: e.scan_bytes]
        words = set(head.translate(_WORDS_TABLE).split())
        hits += [rids for word, rids in e._words.items() if word in words]
        hits += [rids for phrase, rids in e._phrases if phrase in head.lower()]
    matched = frozenset().union(*hits)
    return e._meta_json(by_topic, matched or _NONE, sender, e._scan and not scan), sender


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


def test_precedence_is_the_rules_not_the_objects_key_order() -> None:
    e = Enricher.from_toml(RULES)
    obj = {"agent": "second", "content": "nothing here", "from": "first", "text": "asap"}
    meta, sender = e.classify("t", obj, orjson.dumps(obj))
    assert sender == "first"  # sender_keys order: from before agent
    assert orjson.loads(meta)["tags"] == ["urgent"]  # _TEXT_KEYS order: text before content
    assert (meta, sender) == reference(e, "t", obj, orjson.dumps(obj), True)


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
    assert e.classify("t", {7: "not JSON", "from": "a caller"}, b"{}")[1] == "a caller"
    long = {"k" * (enrich._MAX_SHAPE_CHARS + 1): 1, "from": "you"}
    assert e.classify("t", long, b"{}")[1] == "you"
    assert tuple(long) not in e._shapes
