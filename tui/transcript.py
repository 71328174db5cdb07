"""A record as a turn of a conversation: who, when, what kind, the text, tool calls
and thinking apart (no Textual; the preview and the conversation view draw it).

Nothing here changes a record: it is a way of reading one. Who sent a message is
the recorder's enrichment (`meta.sender`) when it found one; otherwise the reading
rules (`tui.reading`) look inside the message (a Jupyter header's session and
`msg_type`, or a field named in `<log-dir>/reading.toml`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from recorder.export.redact import record_secrets, redact_record
from recorder.export.render import gap_sentence, record_text
from recorder.store.reader import Record

from .reading import Reading, ReadingRules

TOOL_NAME_KEYS = ("tool", "name", "tool_name", "function")
TOOL_ARGS_KEYS = ("args", "arguments", "input", "params", "parameters")
TOOL_CALL_KEYS = ("tool_call", "tool_use", "function_call")
THINKING_KEYS = ("thinking", "reasoning", "thought")
ARGS_CHARS = 400


@dataclass
class Turn:
    """One record as a transcript shows it."""

    index: int
    ts: float | None
    speaker: str
    topic: str
    kind: str  # "message", "tool call", "tool result", "thinking", a msg_type, or a record kind
    text: str
    tool: str | None = None  # the tool's name, for calls and results
    args: str | None = None  # a call's arguments on one line
    thinking: str | None = None  # shown folded
    calls: list[tuple[str | None, str | None]] = field(default_factory=list)  # `tool_calls`
    is_message: bool = True
    secrets: int = 0  # secrets found in the record (its text shows them as [REDACTED:kind])


TURN_SCAN_BYTES = 1 << 20
"""Bytes of a record scanned for secrets the recorder did not name before a transcript
shows it (an unfolded turn shows at most 64k characters of it, a few hundred KB at
most; the record view, Enter, shows the record as stored)."""


def _one_line_json(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = str(value)
    return text if len(text) <= ARGS_CHARS else text[:ARGS_CHARS] + "…"


def _call_args(value: Any) -> str:
    """`path="api/x.py", lines_added=84` for an object of arguments."""
    if isinstance(value, dict):
        parts = [f"{k}={_one_line_json(v)}" for k, v in value.items()]
        text = ", ".join(parts)
        return text if len(text) <= ARGS_CHARS else text[:ARGS_CHARS] + "…"
    return _one_line_json(value)


def _tool(payload: dict[str, Any], chain: str) -> tuple[str, str | None, str | None] | None:
    """(kind, tool name, arguments) when the payload is a tool call or result."""
    nested = next((payload[k] for k in TOOL_CALL_KEYS if isinstance(payload.get(k), dict)), None)
    source = nested if nested is not None else payload
    kind_field = str(payload.get("type") or payload.get("kind") or "")
    if chain == "tool_result" or kind_field in ("tool_result", "function_result"):
        kind = "tool result"
    elif nested is not None or chain == "tool_call" or kind_field in TOOL_CALL_KEYS:
        kind = "tool call"
    else:
        return None
    name = next((str(source[k]) for k in TOOL_NAME_KEYS if isinstance(source.get(k), str)), None)
    args_value = next((source[k] for k in TOOL_ARGS_KEYS if k in source), None)
    args = _call_args(args_value) if args_value is not None and kind == "tool call" else None
    return kind, name, args


def _listed_calls(value: Any) -> list[tuple[str | None, str | None]]:
    """(name, arguments) of each call in a `tool_calls` list: an agent session's
    message (`{name, arguments}`) or an OpenAI-style one (`{function: {name,
    arguments}}`)."""
    if not isinstance(value, list):
        return []
    calls = []
    for entry in value:
        if not isinstance(entry, dict):
            continue
        function = entry.get("function")
        source: dict[str, Any] = function if isinstance(function, dict) else entry
        name = next(
            (str(source[k]) for k in TOOL_NAME_KEYS if isinstance(source.get(k), str)), None
        )
        args = next((source[k] for k in TOOL_ARGS_KEYS if k in source), None)
        calls.append((name, _call_args(args) if args is not None else None))
    return calls


def turn_of(rec: Record, rules: ReadingRules | None = None) -> Turn:
    """How `rec` reads in a transcript."""
    if not rec.is_message:
        data = rec.data or {}
        text = gap_sentence(data) if rec.kind == "gap" else record_text(rec)
        return Turn(rec.index, rec.ts, rec.kind.upper(), "", rec.kind, text, is_message=False)
    secrets = record_secrets(rec, TURN_SCAN_BYTES)
    if secrets:  # shown like the Recent rows and Markdown copies show it
        rec = redact_record(rec, secrets)
    reading: Reading | None = rules.read(rec) if rules is not None else None
    meta = rec.meta
    speaker = str(meta.get("sender") or "") or (reading.sender if reading else "") or "?"
    chain = str(meta.get("chain") or "")
    payload = rec.payload
    kind = reading.kind if reading and reading.kind else "message"
    text = reading.text if reading and reading.text is not None else record_text(rec)
    turn = Turn(rec.index, rec.ts, speaker, rec.topic, kind, text, secrets=len(secrets))
    if isinstance(payload, dict):
        tool = _tool(payload, chain)
        if tool is not None:
            turn.kind, turn.tool, turn.args = tool
            if turn.kind == "tool call" and turn.text == record_text(rec) and turn.args:
                turn.text = ""  # the raw JSON said nothing the name and arguments do not
        turn.calls = _listed_calls(payload.get("tool_calls"))
        if turn.calls and not turn.text and turn.kind == "message":
            turn.kind = "tool call"
        thinking = next(
            (payload[k] for k in THINKING_KEYS if isinstance(payload.get(k), str)), None
        )
        if thinking is not None:
            turn.thinking = thinking
            if turn.text == thinking:
                turn.text = ""
        if str(payload.get("type") or "") == "thinking" and turn.thinking is None:
            turn.thinking, turn.text = turn.text, ""
    return turn
