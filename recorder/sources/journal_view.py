"""Session messages in the journal's record shape, so the renderer, export and search
that read `recorder.store.reader.Record` read them unchanged (the journal format is
not touched: these records live in memory only)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from recorder.sources.model import SessionMessage
from recorder.store.reader import Record
from recorder.store.records import KIND_MESSAGE, SCHEMA_VERSION, encode_frames, encode_record


def payload(msg: SessionMessage) -> dict[str, Any]:
    """The message as a payload: its text first (what `record_text` shows), then tool
    calls and the folded thinking (what a transcript shows below it)."""
    body: dict[str, Any] = {"text": msg.text}
    if msg.tool_calls:
        body["tool_calls"] = [{"name": c.name, "arguments": c.arguments} for c in msg.tool_calls]
    if msg.thinking:
        body["thinking"] = msg.thinking
    if msg.note:
        body["note"] = msg.note
    return body


def to_record(msg: SessionMessage, index: int = 0) -> Record:
    """A journal-shaped record of one session message (`topic` = the session,
    `meta.sender` = user/assistant/tool/system, `seq` = its place in the session)."""
    meta: dict[str, Any] = {
        "sender": msg.sender.value,
        "source": msg.source.value,
        "uuid": msg.uuid,
        "id": msg.stable_id,
    }
    if msg.thinking:
        meta["thinking"] = True
    if msg.sidechain:
        meta["sidechain"] = msg.agent_id or True
    return session_record(msg.topic, msg.seq, msg.ts, meta, payload(msg), {"text": msg.text}, index)


def session_record(
    topic: str,
    seq: int | None,
    ts: float | None,
    meta: dict[str, Any],
    body: dict[str, Any],
    fallback: dict[str, Any],
    index: int = 0,
) -> Record:
    """A message record in memory: `body` as its one frame (`fallback` when `body` is
    nested deeper than orjson writes)."""
    head = {
        "v": SCHEMA_VERSION,
        "seq": seq,
        "ts": ts,
        "kind": KIND_MESSAGE,
        "topic": topic,
        "meta": meta,
    }
    try:
        frame = orjson.dumps(body)
    except TypeError:
        frame = orjson.dumps(fallback)
    line = encode_record(head, encode_frames([frame]))
    return Record(index, -1, 0, line)


def to_records(messages: Iterable[SessionMessage]) -> Iterator[Record]:
    for i, msg in enumerate(messages):
        yield to_record(msg, i)
