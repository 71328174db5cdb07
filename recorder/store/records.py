"""The on-disk journal format (see FORMAT.md): folder layout and record encoding.

Every line of a segment is one JSON object. Messages keep each original frame
exactly: a frame that is a one-line JSON object or array is spliced into the
line verbatim (`{"json": ...}`, with its byte span in `spans`), other UTF-8
frames become JSON strings (`{"text": ...}`), anything else base64
(`{"b64": ...}`). The recorder's own fields sit beside the frames, never in them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

SCHEMA_VERSION = 1


# Record kinds.
KIND_MESSAGE = "msg"
KIND_HEARTBEAT = "heartbeat"  # a publisher's envelope heartbeat: bus traffic, not conversation
KIND_SEGMENT = "segment"
KIND_GAP = "gap"
KIND_EVENT = "event"
KIND_REFUSED = "refused"
KIND_CORRUPT = "corrupt"

REFUSED_TOPIC_BYTES = 256  # what a refused record keeps of its topic (`topic_cut`)

_FRAMES_END = b"]}\n"
# orjson reads at most this many levels of nesting; a spliced frame sits three levels
# down in its line ({"frames":[{"json": ...}]}), so deeper frames are kept as text.
READ_DEPTH = 1024
FRAME_DEPTH = READ_DEPTH - 3
# Nesting n takes at least 2n bytes: a shorter frame always reads back spliced.
DEEP_BYTES = 2 * (FRAME_DEPTH + 1)
_WRAP_OPEN = b"[[["
_WRAP_CLOSE = b"]]]"
_dumps = orjson.dumps
_loads = orjson.loads
_b64 = base64.b64encode


@dataclass(frozen=True)
class EncodedFrames:
    """Frames encoded for a journal line; spans are relative to the frames' start."""

    parts: list[bytes]
    spans: list[list[int]]
    payload: Any  # the last frame parsed, when it is a JSON object or array (spliced or
    # kept as text for its depth); else None
    length: int  # bytes of all parts


def encode_frames(frames: list[bytes]) -> EncodedFrames:
    """Encode every frame; the last one's parsed value is kept for enrichment.

    Only objects and arrays on a single line are spliced as JSON: they are what
    agents send, and keeping their bytes verbatim makes the record exact. A frame
    nested deeper than `FRAME_DEPTH` would make its line unreadable, so it is kept
    as text (its parsed value still goes to enrichment).
    """
    parts: list[bytes] = []
    spans: list[list[int]] = []
    payload: Any = None
    pos = 0
    last = len(frames) - 1
    for i, raw in enumerate(frames):
        if i:
            parts.append(b",")
            pos += 1
        value: Any = None
        if raw[:1] in (b"{", b"[") and b"\n" not in raw and b"\r" not in raw:
            try:
                value = _loads(raw) if len(raw) < DEEP_BYTES else splice_value(raw)
            except orjson.JSONDecodeError:
                if i == last and len(raw) >= DEEP_BYTES:
                    payload = _deep_value(raw)
            else:
                spans.append([pos + 8, len(raw)])
                parts.append(b'{"json":')
                parts.append(raw)
                parts.append(b"}")
                pos += 9 + len(raw)
                if i == last:
                    payload = value
                continue
        try:
            piece = b'{"text":' + _dumps(raw.decode("utf-8")) + b"}"
        except UnicodeDecodeError:
            piece = b'{"b64":"' + _b64(raw) + b'"}'
        parts.append(piece)
        pos += len(piece)
    return EncodedFrames(parts, spans, payload, pos)


def splice_value(raw: bytes) -> Any:
    """`raw` parsed, with the nesting its line adds: raises JSONDecodeError when the
    frame is not JSON or is nested too deep to read back once spliced into a line."""
    return _loads(b"".join((_WRAP_OPEN, raw, _WRAP_CLOSE)))[0][0][0]  # one copy, not two


def fits_by_text(size: int, value: Any) -> bool:
    """Whether a frame of `size` bytes that parsed as `value` is proven shallow enough
    for its line (`FRAME_DEPTH`) by its `text` member alone, without `splice_value`'s
    second parse.

    Nesting n takes 2n bytes of brackets, and no bracket lies inside a string: a
    `text` string of c characters takes at least c + 2 bytes (its quotes), so the
    brackets have at most `size - c - 2`. Fewer than `DEEP_BYTES` of them cannot nest
    deeper than `FRAME_DEPTH`. (Long messages are mostly their text.)"""
    if type(value) is not dict:
        return False
    text = value.get("text")
    return type(text) is str and size - len(text) - 2 < DEEP_BYTES


def _deep_value(raw: bytes) -> Any:
    try:
        return _loads(raw)
    except orjson.JSONDecodeError:
        return None


def encode_record(head: dict[str, Any], frames: EncodedFrames | None = None) -> bytes:
    """One journal line: `head` fields, the JSON frames' spans, then the frames.

    Frames come last, so a span is counted from the end of the line (a negative
    offset, `line[offset:offset + length]`) and never depends on the head's size.
    """
    line = _dumps(head)
    if frames is None:
        return line + b"\n"
    end = frames.length + len(_FRAMES_END)
    spans = _dumps([[o - end, n] for o, n in frames.spans])
    return b"".join((line[:-1], b',"spans":', spans, b',"frames":[', *frames.parts, _FRAMES_END))


def decode_frames(line: bytes, record: dict[str, Any]) -> list[bytes]:
    """The original frames of a message record, byte for byte. A frame the recorder
    could not have written (wrongly typed, a bad base64, no span: a hand-edited or
    damaged line) comes back as its stored JSON, so every reader can still show it."""
    spans = iter(record.get("spans") or ())
    frames: list[bytes] = []
    for frame in record.get("frames") or ():
        try:
            if "json" in frame:
                start, length = next(spans)
                frames.append(bytes(line[start : start + length]))
            elif isinstance(frame.get("text"), str):
                frames.append(frame["text"].encode("utf-8"))
            else:
                frames.append(base64.b64decode(frame["b64"], validate=True))
        except (TypeError, ValueError, KeyError, AttributeError, StopIteration):
            frames.append(_dumps(frame))
    return frames


def frame_value(frame: dict[str, Any]) -> Any:
    """A frame as a reader wants to see it: parsed JSON, text, or bytes (a frame the
    recorder could not have written comes back as its stored JSON, as in
    `decode_frames`)."""
    if "json" in frame:
        return frame["json"]
    if "text" in frame:
        return frame["text"]
    try:
        return base64.b64decode(frame["b64"], validate=True)
    except (TypeError, ValueError, KeyError):
        return _dumps(frame)


def parse_line(line: bytes) -> dict[str, Any] | None:
    """Parse one journal line; None if it is not a journal record: not a JSON object,
    or without the fields every reader relies on typed as FORMAT.md types them (`seq`
    an integer, `ts` a number, `kind` a string; `seq` and `ts` may be null, as in the
    records made of agent sessions' messages; `topic`, when there, a string, `meta` an
    object and `frames` a list of objects). Such a line (damaged, or made by hand) is
    a damaged line to every reader, shown and counted, never a reader's failure."""
    try:
        record: dict[str, Any] = _loads(line)
        seq = record["seq"]
        if type(record["kind"]) is not str:
            return None
    except (orjson.JSONDecodeError, KeyError, TypeError):  # TypeError: not an object
        return None
    get = record.get
    ts = get("ts")
    # each test first asks for the type every record the recorder wrote has
    if (type(seq) is not int and seq is not None) or (
        type(ts) is not float and type(ts) is not int and ts is not None
    ):
        return None
    frames = get("frames")
    if type(frames) is list:
        for frame in frames:
            if type(frame) is not dict:
                return None
    elif frames is not None:
        if type(frames) is not int or record["kind"] != KIND_REFUSED:
            return None
        # before 2026-12-06 a refused record named its frame count `frames`
        record["frame_count"] = record.pop("frames")
    meta, topic = get("meta"), get("topic")
    if (type(meta) is not dict and meta is not None) or (
        type(topic) is not str and topic is not None
    ):
        return None
    return record
