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

from recorder.export.redact import record_secrets, redact_record
from recorder.export.render import (
    TOOL_ARGS_KEYS,
    TOOL_NAME_KEYS,
    call_args,
    calls_line,
    gap_sentence,
    listed_calls,
    record_text,
)
from recorder.store.reader import Record

from .reading import Reading, ReadingRules

TOOL_CALL_KEYS = ("tool_call", "tool_use", "function_call")
THINKING_KEYS = ("thinking", "reasoning", "thought")


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
    args = call_args(args_value) if args_value is not None and kind == "tool call" else None
    return kind, name, args


def turn_of(rec: Record, rules: ReadingRules | None = None) -> Turn:
    """How `rec` reads in a transcript."""
    if not rec.is_message:
        # a gap's agent, a refused message's topic: redacted as a message's sender is
        found = record_secrets(rec, TURN_SCAN_BYTES) if rec.kind != "segment" else []
        if found:
            rec = redact_record(rec, found)
        data = rec.data or {}
        text = gap_sentence(data) if rec.kind == "gap" else record_text(rec)
        return Turn(
            rec.index,
            rec.ts,
            rec.kind.upper(),
            "",
            rec.kind,
            text,
            is_message=False,
            secrets=len(found),
        )
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
        turn.calls = listed_calls(payload.get("tool_calls"))
        if turn.calls and turn.text == calls_line(turn.calls):
            turn.text = ""  # `record_text`'s one line of them: they are shown as calls
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
