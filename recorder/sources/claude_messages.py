"""Claude Code lines as messages: an answer streamed one block per line (same
`message.id`) merged into one, tool results, thinking kept for folding, images as
placeholders; and the counts a listing needs without building them (`count_chain`,
which must agree with `build_messages`: checked by tests on every real file)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from recorder.sources.jsonl import estimate_tokens, parse_time, text_of
from recorder.sources.model import Sender, SessionMessage, Source, ToolCall, prompt_title

EDIT_TOOLS = {"Edit": "file_path", "Write": "file_path", "MultiEdit": "file_path"}
EDIT_TOOLS["NotebookEdit"] = "notebook_path"


def is_sidechain(e: dict[str, Any]) -> bool:
    return e.get("isSidechain") is True


def message_id(e: dict[str, Any]) -> str:
    msg = e.get("message")
    mid = msg.get("id") if isinstance(msg, dict) else None
    return mid if isinstance(mid, str) else ""


def content_blocks(e: dict[str, Any]) -> list[Any]:
    msg = e.get("message")
    content = msg.get("content") if isinstance(msg, dict) else None
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return content if isinstance(content, list) else []


def is_tool_result(e: dict[str, Any]) -> bool:
    blocks = content_blocks(e)
    return (
        e.get("type") == "user"
        and bool(blocks)
        and all(isinstance(b, dict) and b.get("type") == "tool_result" for b in blocks)
    )


# -- messages -----------------------------------------------------------------------------
def _image_placeholder(block: dict[str, Any]) -> str:
    raw = block.get("source")
    src: dict[str, Any] = raw if isinstance(raw, dict) else {}
    media = str(src.get("media_type") or "image")
    data = src.get("data")
    size = f", {len(data) * 3 // 4} bytes" if isinstance(data, str) else ""
    return f"[image: {media}{size}]"


def _user_parts(e: dict[str, Any]) -> tuple[Sender, str]:
    texts: list[str] = []
    results = 0
    blocks = content_blocks(e)
    for b in blocks:
        if not isinstance(b, dict):
            continue
        kind = b.get("type")
        if kind == "text":
            texts.append(text_of(b.get("text")))
        elif kind == "tool_result":
            results += 1
            body = b.get("content")
            if isinstance(body, list):
                body = "\n".join(
                    _image_placeholder(x)
                    if isinstance(x, dict) and x.get("type") == "image"
                    else text_of(x)
                    for x in body
                )
            texts.append(text_of(body))
        elif kind == "image":
            texts.append(_image_placeholder(b))
        elif kind == "document":
            texts.append("[document]")
    sender = Sender.TOOL if results and results == len(blocks) else Sender.USER
    return sender, "\n".join(t for t in texts if t)


@dataclass
class _Pending:
    uuid: str
    ts: float | None
    sender: Sender
    texts: list[str]
    thinking: list[str]
    calls: list[ToolCall]
    sidechain: bool
    agent_id: str
    note: str
    message_id: str = ""
    merged: list[str] = field(default_factory=list)  # uuids of the earlier lines merged


def build_messages(lines: list[dict[str, Any]], session_id: str) -> list[SessionMessage]:
    """Lines of a chain (or a sidechain) as messages: streamed blocks merged by message.id."""
    out: list[_Pending] = []
    for e in lines:
        kind = e["type"]
        side = is_sidechain(e)
        agent = str(e.get("agentId") or "")
        ts = parse_time(e.get("timestamp"))
        if kind == "assistant":
            mid = message_id(e)
            last = out[-1] if out else None
            if last is not None and mid and last.message_id == mid:
                cur = last
                cur.merged.append(cur.uuid)
                cur.uuid = e["uuid"]
            else:
                note = "api-error" if e.get("isApiErrorMessage") else ""
                cur = _Pending(e["uuid"], ts, Sender.ASSISTANT, [], [], [], side, agent, note, mid)
                out.append(cur)
            for b in content_blocks(e):
                if not isinstance(b, dict):
                    continue
                bt = b.get("type")
                if bt == "text":
                    cur.texts.append(text_of(b.get("text")))
                elif bt == "thinking":
                    cur.thinking.append(text_of(b.get("thinking")))
                elif bt == "redacted_thinking":
                    cur.thinking.append("[redacted thinking]")
                elif bt == "tool_use":
                    args = b.get("input")
                    cur.calls.append(
                        ToolCall(
                            str(b.get("name") or "?"),
                            args if isinstance(args, dict) else {"input": args},
                            str(b.get("id") or ""),
                        )
                    )
        elif kind == "user":
            sender, text = _user_parts(e)
            note = ""
            if e.get("isCompactSummary"):
                note = "compact-summary"
            elif e.get("isMeta"):
                note = "meta"
            elif text.startswith(("<command-name>", "<local-command-stdout>", "<command-message>")):
                note = "command"
            out.append(_Pending(e["uuid"], ts, sender, [text], [], [], side, agent, note))
        elif kind == "system":
            sub = e.get("subtype")
            if sub == "compact_boundary":
                text = text_of(e.get("content")) or "Conversation compacted"
                out.append(
                    _Pending(
                        e["uuid"],
                        ts,
                        Sender.SYSTEM,
                        [text],
                        [],
                        [],
                        side,
                        agent,
                        "compact-boundary",
                    )
                )
            elif sub == "api_error":
                n, m = e.get("retryAttempt"), e.get("maxRetries")
                text = f"API error, retry {n} of {m}" if n else "API error"
                out.append(
                    _Pending(e["uuid"], ts, Sender.SYSTEM, [text], [], [], side, agent, "api-error")
                )
            elif sub == "local_command":
                out.append(
                    _Pending(
                        e["uuid"],
                        ts,
                        Sender.SYSTEM,
                        [text_of(e.get("content"))],
                        [],
                        [],
                        side,
                        agent,
                        "command",
                    )
                )
    return [
        SessionMessage(
            Source.CLAUDE,
            session_id,
            seq,
            p.uuid,
            p.ts,
            p.sender,
            "\n".join(t for t in p.texts if t),
            tuple(p.calls),
            "\n".join(p.thinking),
            p.sidechain,
            p.agent_id,
            p.note,
            tuple(p.merged),
        )
        for seq, p in enumerate(out)
    ]


def is_conversation(m: SessionMessage) -> bool:
    return m.sender is not Sender.SYSTEM


_COMMAND = re.compile(r"<command-name>(.*?)</command-name>", re.DOTALL)
_COMMAND_ARGS = re.compile(r"<command-args>(.*?)</command-args>", re.DOTALL)


def first_user_prompt(messages: list[SessionMessage]) -> str:
    """The first thing the person typed; a slash command ("/review args") when the
    session holds nothing else."""
    command = ""
    for m in messages:
        if m.sender is not Sender.USER or not m.text.strip():
            continue
        if not m.note:
            return prompt_title(m.text)
        found = _COMMAND.search(m.text) if m.note == "command" and not command else None
        if found:
            args = _COMMAND_ARGS.search(m.text)
            command = " ".join(f"{found.group(1)} {args.group(1) if args else ''}".split())
    return command[:200]


def usage_tokens(chain: list[dict[str, Any]]) -> int | None:
    """The tokens of the last request with recorded usage (None: none recorded)."""
    for e in reversed(chain):
        msg = e.get("message")
        usage = msg.get("usage") if isinstance(msg, dict) and e["type"] == "assistant" else None
        if isinstance(usage, dict):
            keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
            total = sum(v for k in (*keys, "output_tokens") if isinstance(v := usage.get(k), int))
            if total:
                return total
    return None


def context_tokens(chain: list[dict[str, Any]], messages: list[SessionMessage]) -> int:
    tokens = usage_tokens(chain)
    if tokens is not None:
        return tokens
    chars = 0
    for m in reversed(messages):
        if m.note == "compact-boundary":
            break
        chars += len(m.text) + len(m.thinking)
    return estimate_tokens(chars)


def files_modified(messages: list[SessionMessage]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for m in messages:
        for call in m.tool_calls:
            key = EDIT_TOOLS.get(call.name)
            path = call.arguments.get(key) if key else None
            if isinstance(path, str) and path:
                seen[path] = None
    return tuple(seen)


@dataclass
class Counts:
    """What a listing needs of the chain, without building the messages (the same rules
    as `build_messages`, checked equal by tests)."""

    conversation: int = 0
    first_prompt: str = ""
    files: dict[str, None] = field(default_factory=dict)


def edit_paths(e: dict[str, Any], files: dict[str, None]) -> None:
    for b in content_blocks(e):
        if isinstance(b, dict) and b.get("type") == "tool_use":
            key = EDIT_TOOLS.get(str(b.get("name") or "?"))
            args = b.get("input")
            value = args.get(key) if key and isinstance(args, dict) else None
            if isinstance(value, str) and value:
                files[value] = None


def count_chain(lines: list[dict[str, Any]], sid: str) -> Counts:
    counts = Counts()
    last_mid: str | None = None  # message.id of the last message when it is an answer
    users: list[SessionMessage] = []  # user messages up to the first typed prompt
    found = False
    for e in lines:
        kind = e["type"]
        if kind == "assistant":
            mid = message_id(e)
            if not (mid and last_mid == mid):
                counts.conversation += 1
            last_mid = mid
            edit_paths(e, counts.files)
        elif kind == "user":
            counts.conversation += 1
            last_mid = None
            if not found and not is_tool_result(e):
                m = build_messages([e], sid)[0]
                users.append(m)
                found = m.sender is Sender.USER and not m.note and bool(m.text.strip())
        elif kind == "system" and e.get("subtype") in SYSTEM_NOTES:
            last_mid = None
    counts.first_prompt = first_user_prompt(users)
    return counts


SYSTEM_NOTES = ("compact_boundary", "api_error", "local_command")
