"""Deeply nested JSON: every line the recorder writes reads back, every reader renders it."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.daemon.core import Recorder
from recorder.daemon.options import RecorderOptions
from recorder.export.render import TOO_DEEP, json_text, record_text, view
from recorder.export.writers import WRITERS
from recorder.search.engine import search
from recorder.store.journal import Journal
from recorder.store.layout import Layout
from recorder.store.reader import Record, open_store
from recorder.store.records import (
    DEEP_BYTES,
    FRAME_DEPTH,
    READ_DEPTH,
    encode_frames,
    encode_record,
    fits_by_text,
    parse_line,
    splice_value,
)

T0 = 1_800_000_000.0


def nested(depth: int, shape: int = 0, *, text: str = "", envelope: bytes = b"") -> bytes:
    """A JSON object `depth` levels deep; bit i of `shape` makes level i+1 an object."""
    inner = b'"leaf"'
    for level in range(depth - 1, 0, -1):
        inner = b'{"k":' + inner + b"}" if shape >> level & 1 else b"[" + inner + b"]"
    head = b'{"text":' + orjson.dumps(text) + b"," if text else b"{"
    return head + envelope + b'"x":' + inner + b"}"


def depth_of(raw: bytes) -> int:
    best = level = 0
    in_string = escaped = False
    for byte in raw:
        ch = chr(byte)
        if in_string:
            escaped = not escaped and ch == "\\"
            in_string = escaped or ch != '"'
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            level += 1
            best = max(best, level)
        elif ch in "]}":
            level -= 1
    return best


@pytest.mark.parametrize("depth", [2, 254, 255, 300, 1020, 1021, 1022, 1023, 1024, 1025, 1030])
def test_a_frame_is_spliced_exactly_when_its_line_reads_back(depth: int) -> None:
    raw = nested(depth)
    assert depth_of(raw) == depth
    line = encode_record({"v": 1, "seq": 1, "ts": T0, "kind": "msg"}, encode_frames([b"t", raw]))
    record = parse_line(line)
    assert record is not None, "a line the encoder wrote must read back"
    kept = "json" if depth <= FRAME_DEPTH else "text"
    assert list(record["frames"][-1]) == [kept]
    assert Record(0, 1, 0, line).frames == [b"t", raw]
    # Whatever the nesting, the reader's limit is what decides (3 levels for the line).
    assert (depth + 3 <= READ_DEPTH) == (kept == "json")


@pytest.mark.parametrize(
    "text", ["", "x", "x" * 3000, 'é\n"' * 700], ids=["empty", "one", "long", "escaped"]
)
def test_a_long_text_proves_a_frame_shallow_only_when_its_brackets_could_not_nest_too_deep(
    text: str,
) -> None:
    # A frame of nothing but its text and one run of brackets ("x": [[...]]): its
    # brackets take 2 (depth - 1) + 2 bytes, its keys and commas 12 more, so a text of
    # plain ASCII proves depths up to 1015; escaped characters take more bytes than
    # they count and prove less. What is not proven is left to the splice.
    for depth in range(1000, READ_DEPTH + 1):
        inner = b"[" * (depth - 1) + b"]" * (depth - 1)
        raw = b'{"text":' + orjson.dumps(text) + b',"x":' + inner + b"}"
        proven = fits_by_text(len(raw), orjson.loads(raw))
        if text.isascii() and text.isalpha():
            assert proven == (depth <= 1015)
        if proven:
            assert depth <= FRAME_DEPTH
            assert splice_value(raw)["text"] == text  # reads back once in its line
    assert not fits_by_text(DEEP_BYTES + 10, [text])  # only an object's text counts
    assert not fits_by_text(DEEP_BYTES + 10, {"text": 5})
    assert fits_by_text(DEEP_BYTES + 10, {"text": "y" * 20})


def test_the_recorder_splices_only_frames_their_text_cannot_prove_shallow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import recorder.daemon.core as core

    spliced: list[bytes] = []

    def counted(raw: bytes) -> object:
        spliced.append(raw)
        return splice_value(raw)

    monkeypatch.setattr(core, "splice_value", counted)
    long_text = nested(2, text="x" * 3000)  # one parse: its text bounds its nesting
    deep = nested(1023, text="short")  # too deep once in its line: kept as text
    rec = make(tmp_path)
    batch = [[b"agents.x", long_text], [b"agents.x", deep], [b"agents.x", long_text]]
    assert rec.record_batch(T0, batch) == 3
    rec.record_batch(T0, [[b"agents.x", long_text]])  # a new batch tries the bound again
    rec.close()
    # After a frame the bound could not prove, the rest of its batch is spliced at once.
    assert spliced == [deep, long_text]
    with open_store(tmp_path / "logs") as store:
        msgs = [r for r in store.records() if r.is_message]
        assert [r.frames for r in msgs] == [*batch, [b"agents.x", long_text]]
        kept = [next(iter(r.data["frames"][-1])) for r in msgs]
        assert kept == ["json", "text", "json", "json"]


def make(tmp_path: Path) -> Recorder:
    rec = Recorder(RecorderOptions(log_dir=tmp_path / "logs"), clock=lambda: T0)
    rec.open()
    return rec


DEPTHS = st.one_of(st.integers(1, 12), st.integers(250, 260), st.integers(1015, 1030))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            DEPTHS,
            st.integers(0, 2**1030),
            st.sampled_from(["", "hello", "x" * 3000]),
            st.sampled_from(["fast", "three-frames", "heartbeat", "bad-topic"]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_whatever_the_recorder_writes_reads_back_exactly(
    tmp_path_factory: pytest.TempPathFactory, messages: list[tuple[int, int, str, str]]
) -> None:
    tmp = tmp_path_factory.mktemp("deep")
    rec = make(tmp)
    sent = []
    for depth, shape, text, how in messages:
        payload = nested(depth, shape, text=text)
        frames = {
            "fast": [b"agents.x", payload],  # the daemon's fast path
            "three-frames": [b"agents.x", b"extra", payload],  # the general encoder
            "heartbeat": [b"_persist.heartbeat", payload],
            "bad-topic": [b"\xff", payload],  # no fast path for this topic
        }[how]
        sent.append(frames)
    rec.record_batch(T0, sent)
    rec.close()
    with open_store(tmp / "logs") as store:
        records = list(store.records())
        assert all(r.valid for r in records)
        assert [r.frames for r in records if r.kind in ("msg", "heartbeat")] == sent


def test_a_deep_record_at_the_tail_survives_a_crash_and_restart(tmp_path: Path) -> None:
    rec = make(tmp_path)
    deep = [b"agents.x", nested(1023), b"x"], [b"agents.x", nested(1021)]
    rec.record_batch(T0, list(deep))
    rec.journal.close()  # flushed, but no clean stop: the next start repairs the tail
    again = make(tmp_path)
    again.close()
    assert not list(again.layout.recovery.glob("*.corrupt"))
    with open_store(tmp_path / "logs") as store:
        assert [r.frames for r in store.records() if r.is_message] == [list(m) for m in deep]
        assert all(r.valid for r in store.records())


def test_a_deep_replay_of_does_not_stop_the_recorder(tmp_path: Path) -> None:
    rec = make(tmp_path)
    replay = b'{"_persist":{"pub":"p","seq":1,"replay_of":' + nested(300) + b'},"text":"again"}'
    assert rec.record_batch(T0, [[b"agents.x", replay], [b"agents.x", b'{"text":"next"}']]) == 2
    rec.close()
    with open_store(tmp_path / "logs") as store:
        msgs = [r for r in store.records() if r.is_message]
        assert [r.frames[-1] for r in msgs] == [replay, b'{"text":"next"}']
        assert "too deep" in msgs[0].meta["replay_of"]


# -- reading: every renderer falls back to the stored text, marked ---------------------
@pytest.fixture
def deep_store(tmp_path: Path):  # type: ignore[no-untyped-def]
    layout = Layout(tmp_path / "logs")
    journal = Journal(layout, clock=lambda: T0)
    journal.open()
    payloads = {
        "deep-300": nested(300, 2**299 - 1),
        "deep-text-1021": nested(1021, text="still has text"),
        "deep-1023": nested(1023),
    }
    for sender, payload in payloads.items():
        journal.append(
            {"kind": "msg", "ts": T0, "topic": "t", "meta": {"sender": sender}},
            encode_frames([b"t", payload]),
        )
    # A heartbeat (not a message: rendered from its fields) nested too deep to write.
    journal.append(
        {"kind": "heartbeat", "ts": T0, "topic": "_persist.heartbeat"},
        encode_frames([b"_persist.heartbeat", nested(400)]),
    )
    journal.close()
    with open_store(layout.root) as store:
        yield store, payloads


def test_one_line_and_transcript_forms_fall_back_to_the_stored_text(deep_store) -> None:  # type: ignore[no-untyped-def]
    store, payloads = deep_store
    by_sender = {r.sender: r for r in store.records() if r.is_message}
    deep = by_sender["deep-300"]
    text = record_text(deep)
    assert text == payloads["deep-300"].decode()  # the one-line form is the stored bytes
    v = view(deep)
    assert v.text == "" and v.body == f"{TOO_DEEP}\n{payloads['deep-300'].decode()}"
    # The message text is still shown; only the rest of the payload falls back.
    keeps = view(by_sender["deep-text-1021"])
    assert keeps.text == "still has text" and keeps.body is not None
    assert keeps.body.startswith(TOO_DEEP)
    # Stored as text by the encoder: shown as the text it is.
    assert record_text(by_sender["deep-1023"]) == payloads["deep-1023"].decode()
    heartbeat = next(r for r in store.records() if r.kind == "heartbeat")
    assert record_text(heartbeat).startswith(TOO_DEEP + " ")
    assert view(heartbeat).text == record_text(heartbeat)
    # The index holds the fallback text: search finds inside it, without failing.
    hits = search(store.root, "leaf", all_kinds=True, limit=10).hits
    assert {h.sender for h in hits if h.kind == "msg"} >= {"deep-300"}


def test_json_text_only_falls_back_when_it_must() -> None:
    assert json_text({"a": [1]}, lambda: b"unused") == '{"a":[1]}'
    assert json_text({"a": 1}, lambda: b"unused", indent=True) == '{\n  "a": 1\n}'
    deep = orjson.loads(nested(260))
    assert json_text(deep, lambda: b"[raw]\n") == f"{TOO_DEEP} [raw]"


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_every_export_format_writes_deep_records(deep_store, fmt: str) -> None:  # type: ignore[no-untyped-def]
    store, _ = deep_store
    out = io.BytesIO()
    writer = WRITERS[fmt](out)
    writer.begin("deep", [])
    for rec in store.records():
        writer.record(rec)
    writer.end()
    text = out.getvalue().decode()
    if fmt == "jsonl":
        assert out.getvalue() == b"".join(r.line for r in store.records())
    elif fmt == "csv":  # the payload cell is the frame as stored, whatever its depth
        assert text.count("leaf") >= 3
    else:
        assert TOO_DEEP in text and text.count("leaf") >= 3


def test_replay_marks_deep_payloads_or_leaves_them_unmarked() -> None:
    from recorder.bus.replay import mark

    deep = b"[" * 300 + b"]" * 300
    body = b'{"text":"x","deep":' + deep + b"}"
    marked = mark(body, {"seq": 1}, "r", 1)
    assert marked is not None and marked.endswith(b'"text":"x","deep":' + deep + b"}")
    # An envelope nested too deep to write back cannot carry the mark: None, no exception.
    envelope = b'{"_persist":{"pub":"p","seq":1,"deep":' + deep + b'},"text":"x"}'
    assert mark(envelope, {"seq": 1}, "r", 1) is None
