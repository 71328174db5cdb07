"""Codex CLI rollouts: `<root>/sessions/YYYY/MM/DD/rollout-<time>-<id>.jsonl` (older:
flat `sessions/rollout-*.jsonl`), plus `archived_sessions/`. Each line is
`{timestamp, type, payload}`; the conversation is in the `response_item` lines (the
`event_msg` lines repeat it for the UI). Names come from `session_index.jsonl`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from recorder.sources.jsonl import (
    FileState,
    estimate_tokens,
    is_regular,
    iter_objects,
    parse_time,
    read_bytes,
    text_of,
    time_span,
)
from recorder.sources.model import (
    ReadReport,
    Sender,
    Session,
    SessionMessage,
    Source,
    ToolCall,
    Transcript,
    name_id,
    prompt_title,
)

KNOWN = frozenset(
    ("session_meta", "response_item", "compacted", "turn_context", "event_msg", "world_state")
)
# Searched without `^` (a literal start is found much faster); a match counts only at
# the start of a line, which gives what `^...$` with re.MULTILINE gives.
_PATCH_FILE = re.compile(r"\*\*\* (?:Add|Update|Delete) File: (.+)$", re.MULTILINE)
_CALLS = frozenset(("function_call", "custom_tool_call", "local_shell_call", "web_search_call"))
_OUTPUTS = frozenset(("function_call_output", "custom_tool_call_output"))
_INJECTED = ("<environment_context>", "<user_instructions>", "# AGENTS.md", "<permissions")


def default_root() -> Path:
    env = os.environ.get("CODEX_HOME")
    return Path(env).expanduser() if env else Path.home() / ".codex"


def rollouts(root: Path) -> Iterator[Path]:
    for sub in ("sessions", "archived_sessions"):
        base = root / sub
        if not base.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath, name)
                if name.startswith("rollout-") and name.endswith(".jsonl") and is_regular(path):
                    yield path


def thread_names(root: Path) -> dict[str, str]:
    """id -> name from session_index.jsonl (the last entry for an id wins)."""
    report = ReadReport()
    data, _ = read_bytes(root / "session_index.jsonl", report)
    names: dict[str, str] = {}
    for _, obj in iter_objects(data, report):
        if isinstance(obj.get("id"), str) and isinstance(obj.get("thread_name"), str):
            names[obj["id"]] = obj["thread_name"]
    return names


def _content_text(content: Any) -> str:
    if not isinstance(content, list):
        return text_of(content)
    out = []
    for part in content:
        if isinstance(part, dict):
            if part.get("type") in ("input_image", "image"):
                out.append("[image]")
            else:
                out.append(text_of(part.get("text")))
    return "\n".join(p for p in out if p)


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return {"input": raw}
        return value if isinstance(value, dict) else {"input": value}
    return {"input": raw}


def _patch_files(patch: str) -> Iterator[str]:
    """The files an apply_patch input names (`*** Update File: <path>` lines)."""
    for found in _PATCH_FILE.finditer(patch):
        at = found.start()
        if at == 0 or patch[at - 1] == "\n":
            yield found.group(1).strip()


def read_transcript(
    path: Path, names: dict[str, str] | None = None, *, listing: bool = False
) -> Transcript:
    """One rollout in full; `listing`: only its `Session` matters (see `_listing`)."""
    if listing:
        found = _listing(path, names)
        if found is not None:
            return found
    report = ReadReport()
    data, state = read_bytes(path, report)
    head = _Head()
    messages: list[SessionMessage] = []
    pending: dict[str, Any] | None = None  # the assistant turn being gathered
    first_ts: float | None = None
    last_ts: float | None = None
    files: dict[str, None] = {}

    def flush() -> None:
        nonlocal pending
        if pending is not None:
            messages.append(
                SessionMessage(
                    Source.CODEX,
                    head.sid,
                    len(messages),
                    pending["uuid"],
                    pending["ts"],
                    Sender.ASSISTANT,
                    "\n".join(pending["text"]),
                    tuple(pending["calls"]),
                    "\n".join(pending["thinking"]),
                )
            )
            pending = None

    def turn(ts: float | None, uuid: str) -> dict[str, Any]:
        nonlocal pending
        if pending is None:
            pending = {"uuid": uuid, "ts": ts, "text": [], "calls": [], "thinking": []}
        return pending

    stem = name_id(path.stem)
    for number, line in iter_objects(data, report):
        kind = line.get("type")
        ts = parse_time(line.get("timestamp"))
        if ts is not None:
            first_ts = ts if first_ts is None else min(first_ts, ts)
            last_ts = ts if last_ts is None else max(last_ts, ts)
        payload = head.payload_of(line, report)
        if payload is None:
            continue
        uuid = f"{stem}:{number}"
        if kind == "compacted":
            flush()
            messages.append(
                SessionMessage(
                    Source.CODEX,
                    head.sid,
                    len(messages),
                    uuid,
                    ts,
                    Sender.SYSTEM,
                    text_of(payload.get("message")) or "Conversation compacted",
                    note="compact-boundary",
                )
            )
        elif kind == "response_item":
            ptype = payload.get("type")
            if ptype == "message":
                text = _content_text(payload.get("content"))
                if payload.get("role") == "assistant":
                    turn(ts, uuid)["text"].append(text)
                    if pending is not None:
                        pending["uuid"] = uuid
                elif payload.get("role") == "user":
                    flush()
                    note = "meta" if text.lstrip().startswith(_INJECTED) else ""
                    messages.append(
                        SessionMessage(
                            Source.CODEX,
                            head.sid,
                            len(messages),
                            uuid,
                            ts,
                            Sender.USER,
                            text,
                            note=note,
                        )
                    )
                # developer/system messages are instructions, not conversation
            elif ptype == "reasoning":
                summary = payload.get("summary")
                turn(ts, uuid)["thinking"].append(text_of(summary) or "[encrypted reasoning]")
            elif ptype in _CALLS:
                raw = payload.get("arguments", payload.get("input", payload.get("action")))
                args = _arguments(raw)
                name = str(payload.get("name") or ptype)
                cur = turn(ts, uuid)
                cur["calls"].append(ToolCall(name, args, str(payload.get("call_id") or "")))
                cur["uuid"] = uuid
                patch = raw if isinstance(raw, str) else text_of(args)
                if name == "apply_patch" or "*** Begin Patch" in patch:
                    for f in _patch_files(patch):
                        files[f] = None
            elif ptype in _OUTPUTS:
                flush()
                out = payload.get("output")
                if isinstance(out, str):
                    parsed = _arguments(out)
                    out = parsed.get("output", out) if "input" not in parsed else out
                messages.append(
                    SessionMessage(
                        Source.CODEX, head.sid, len(messages), uuid, ts, Sender.TOOL, text_of(out)
                    )
                )
    flush()
    sid = head.sid = head.sid or name_id(path.stem[-36:])
    messages = [m if m.session_id == sid else _with_sid(m, sid) for m in messages]
    conv = [m for m in messages if m.sender is not Sender.SYSTEM]
    prompt = next((m.text for m in conv if m.sender is Sender.USER and not m.note), None)
    facts = _Facts(head, first_ts, last_ts, files, len(conv), prompt)
    tokens = head.tokens or estimate_tokens(sum(len(m.text) for m in messages))
    return Transcript(_session(path, state, names, facts, tokens, report), messages, [], report)


@dataclass
class _Head:
    """What a rollout says of itself, in the lines that are not conversation (the same
    rules for the full read and the listing)."""

    meta: dict[str, Any] = field(default_factory=dict)
    sid: str = ""
    cwd: str = ""
    model: str = ""
    tokens: int = 0  # of the last request that recorded its usage

    def payload_of(self, line: dict[str, Any], report: ReadReport) -> dict[str, Any] | None:
        """The payload of a conversation line; None for any other: one of an unknown
        kind or shape (counted in `report`), or one this learns from."""
        kind, payload = line.get("type"), line.get("payload")
        if not isinstance(payload, dict) or not isinstance(kind, str) or kind not in KNOWN:
            key = str(kind)
            report.unknown_types[key] = report.unknown_types.get(key, 0) + 1
        elif kind == "session_meta":
            self.meta = payload
            self.sid = str(payload.get("id") or self.sid)
            self.cwd = str(payload.get("cwd") or self.cwd)
        elif kind == "turn_context":
            self.model = str(payload.get("model") or self.model)
            self.cwd = self.cwd or str(payload.get("cwd") or "")
        elif kind == "event_msg" and payload.get("type") == "token_count":
            info = payload.get("info")
            last = info.get("last_token_usage") if isinstance(info, dict) else None
            if isinstance(last, dict) and isinstance(last.get("input_tokens"), int):
                self.tokens = last["input_tokens"] + int(last.get("output_tokens") or 0)
        else:
            return payload
        return None


@dataclass
class _Facts:
    """What a rollout's `Session` is made of, from the full read or the listing's loop."""

    head: _Head
    first_ts: float | None
    last_ts: float | None
    files: dict[str, None]
    conversation: int  # user prompts, answers (one per turn) and tool outputs
    prompt: str | None  # the text of the first user message that is not injected context


def _session(
    path: Path,
    state: FileState,
    names: dict[str, str] | None,
    facts: _Facts,
    tokens: int,
    report: ReadReport,
) -> Session:
    sid, meta = facts.head.sid, facts.head.meta
    prompt = prompt_title(facts.prompt) if facts.prompt is not None else ""
    name = (names or {}).get(sid, "")
    git_meta = meta.get("git")
    git: dict[str, Any] = git_meta if isinstance(git_meta, dict) else {}
    return Session(
        source=Source.CODEX,
        id=sid,
        path=path,
        title=name or prompt,
        title_kind="thread-name" if name else ("first-prompt" if prompt else ""),
        project_path=facts.head.cwd,
        first_ts=facts.first_ts,
        last_ts=facts.last_ts,
        message_count=facts.conversation,
        git_branch=str(git.get("branch") or ""),
        files_modified=tuple(facts.files),
        context_tokens=tokens,
        version=str(meta.get("cli_version") or ""),
        model=facts.head.model,
        first_prompt=prompt,
        size=state.size,
        mtime=state.mtime_ns / 1e9,
        resumable=facts.conversation > 0,
        skipped=report.skipped,
        bad_lines=len(report.bad_lines),
    )


def _listing(path: Path, names: dict[str, str] | None) -> Transcript | None:
    """The `Session` of a rollout without its messages, by the full read's rules (tests
    compare the two): turns and outputs counted, no text built but the first prompt's,
    tool arguments looked at only for the files a patch names. None when the rollout
    records no token usage (the estimate needs every message's text: read in full)."""
    report = ReadReport()
    data, state = read_bytes(path, report)
    head = _Head()
    conversation = 0
    in_turn = False  # an answer is being gathered (counted once, when it opens)
    prompt: str | None = None
    files: dict[str, None] = {}
    stamps: list[Any] = []
    for _, line in iter_objects(data, report):
        kind = line.get("type")
        stamps.append(line.get("timestamp"))
        payload = head.payload_of(line, report)
        if payload is None:
            continue
        if kind == "response_item":
            ptype = payload.get("type")
            if ptype == "message":
                role = payload.get("role")
                if role == "assistant":
                    conversation += not in_turn
                    in_turn = True
                elif role == "user":
                    in_turn = False
                    conversation += 1
                    if prompt is None:
                        text = _content_text(payload.get("content"))
                        prompt = None if text.lstrip().startswith(_INJECTED) else text
            elif ptype == "reasoning" or ptype in _CALLS:
                conversation += not in_turn
                in_turn = True
                if ptype in _CALLS:
                    raw = payload.get("arguments", payload.get("input", payload.get("action")))
                    name = str(payload.get("name") or ptype)
                    patch = raw if isinstance(raw, str) else text_of(_arguments(raw))
                    if name == "apply_patch" or "*** Begin Patch" in patch:
                        for f in _patch_files(patch):
                            files[f] = None
            elif ptype in _OUTPUTS:
                in_turn = False
                conversation += 1
        elif kind == "compacted":
            in_turn = False
    if not head.tokens:
        return None
    first_ts, last_ts = time_span(stamps)
    head.sid = head.sid or name_id(path.stem[-36:])
    facts = _Facts(head, first_ts, last_ts, files, conversation, prompt)
    return Transcript(_session(path, state, names, facts, head.tokens, report), [], [], report)


def _with_sid(m: SessionMessage, sid: str) -> SessionMessage:
    from dataclasses import replace

    return replace(m, session_id=sid)
