"""Sample sessions in the agents' documented shapes: hook payloads and transcript lines.

Used by `persist demo --agents` (no agent binary needed) and by the tests. The
shapes follow docs/hooks.md: Claude Code 2.1.110 hook inputs (`session_id`,
`transcript_path`, `cwd`, `permission_mode`, `hook_event_name` plus `source`/`model`,
`prompt`, `stop_hook_active`/`last_assistant_message`, `trigger`/`custom_instructions`,
`reason`) and transcript lines (`parentUuid` chains, one line per streamed content
block with the same `message.id`, tool results as user lines); Gemini CLI 0.61.0 hook
inputs (`timestamp`, `source`, `prompt`, `prompt_response`, `trigger`, `reason`) and
its JSONL session file (a metadata line, message records rewritten by id, `$set`).
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def line(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj) + b"\n"


@dataclass
class ClaudeSession:
    """A Claude Code session being written: call the methods, append the lines."""

    session: str = field(default_factory=lambda: str(uuidlib.uuid4()))
    cwd: str = "/home/me/project"
    transcript: str = ""
    clock: float = 1_780_000_000.0
    last: str | None = None

    def _base(self, kind: str, uid: str | None = None) -> dict[str, Any]:
        self.clock += 1.5
        this = uid or str(uuidlib.uuid4())
        obj: dict[str, Any] = {
            "parentUuid": self.last,
            "isSidechain": False,
            "userType": "external",
            "cwd": self.cwd,
            "sessionId": self.session,
            "version": "2.1.110",
            "gitBranch": "main",
            "type": kind,
            "uuid": this,
            "timestamp": _iso(self.clock),
        }
        self.last = this
        return obj

    def user(self, text: str) -> list[bytes]:
        obj = self._base("user")
        obj["message"] = {"role": "user", "content": text}
        obj["permissionMode"] = "default"
        return [line(obj)]

    def assistant(self, text: str, tool: tuple[str, dict[str, Any]] | None = None) -> list[bytes]:
        """A reply streamed as one line per content block (same message.id)."""
        mid = f"msg_{uuidlib.uuid4().hex[:24]}"
        blocks: list[dict[str, Any]] = [{"type": "text", "text": text}]
        if tool is not None:
            blocks.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_{uuidlib.uuid4().hex[:20]}",
                    "name": tool[0],
                    "input": tool[1],
                }
            )
        out = []
        for block in blocks:
            obj = self._base("assistant")
            obj["message"] = {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": "claude-opus-4-1",
                "content": [block],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 120, "output_tokens": 40},
            }
            obj["requestId"] = f"req_{uuidlib.uuid4().hex[:20]}"
            out.append(line(obj))
        return out

    def tool_result(self, tool_use_id: str, output: str) -> list[bytes]:
        assistant = self.last
        obj = self._base("user")
        obj["message"] = {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_use_id, "content": output}],
        }
        obj["toolUseResult"] = {"stdout": output, "stderr": "", "interrupted": False}
        obj["sourceToolAssistantUUID"] = assistant
        return [line(obj)]

    def metadata(self) -> list[bytes]:
        """Lines that are not messages (must never reach the bus as messages)."""
        return [
            line(
                {
                    "type": "file-history-snapshot",
                    "messageId": self.last,
                    "snapshot": {"messageId": self.last, "trackedFileBackups": {}},
                    "isSnapshotUpdate": False,
                }
            ),
            line(
                {"type": "custom-title", "customTitle": "fix the test", "sessionId": self.session}
            ),
        ]

    def payload(self, event: str, **fields: Any) -> dict[str, Any]:
        base = {
            "session_id": self.session,
            "transcript_path": self.transcript,
            "cwd": self.cwd,
            "permission_mode": "default",
            "hook_event_name": event,
        }
        defaults: dict[str, dict[str, Any]] = {
            "SessionStart": {"source": "startup", "model": "claude-opus-4-1"},
            "UserPromptSubmit": {"prompt": ""},
            "Stop": {"stop_hook_active": False, "last_assistant_message": ""},
            "SubagentStop": {"stop_hook_active": False, "agent_id": "", "agent_type": ""},
            "PreCompact": {"trigger": "auto", "custom_instructions": ""},
            "SessionEnd": {"reason": "prompt_input_exit"},
        }
        return {**base, **defaults.get(event, {}), **fields}


@dataclass
class GeminiSession:
    """A Gemini CLI (>= 0.39) JSONL session being written."""

    session: str = field(default_factory=lambda: str(uuidlib.uuid4()))
    cwd: str = "/home/me/project"
    transcript: str = ""
    clock: float = 1_780_000_000.0

    def start(self) -> list[bytes]:
        return [
            line(
                {
                    "sessionId": self.session,
                    "projectHash": "0" * 64,
                    "startTime": _iso(self.clock),
                    "lastUpdated": _iso(self.clock),
                    "kind": "main",
                }
            )
        ]

    def user(self, text: str) -> tuple[str, list[bytes]]:
        self.clock += 1.5
        mid = str(uuidlib.uuid4())
        record = {
            "id": mid,
            "timestamp": _iso(self.clock),
            "type": "user",
            "content": [{"text": text}],
        }
        return mid, [line(record)]

    def gemini(
        self, text: str, tool: tuple[str, dict[str, Any], str] | None = None
    ) -> tuple[str, list[bytes]]:
        """A reply written twice, as Gemini CLI does: first without, then with its tool
        result and tokens (the same id; the last version wins)."""
        self.clock += 1.5
        mid = str(uuidlib.uuid4())
        record: dict[str, Any] = {
            "id": mid,
            "timestamp": _iso(self.clock),
            "type": "gemini",
            "content": text,
            "thoughts": [
                {"subject": "Plan", "description": "look first", "timestamp": _iso(self.clock)}
            ],
            "model": "gemini-2.5-pro",
        }
        out = [line(record)]
        if tool is not None:
            name, args, result = tool
            call = {
                "id": f"{name}-{uuidlib.uuid4().hex[:8]}",
                "name": name,
                "args": args,
                "result": [
                    {"functionResponse": {"id": name, "name": name, "response": {"output": result}}}
                ],
                "status": "success",
                "timestamp": _iso(self.clock),
            }
            record = {**record, "toolCalls": [call]}
        record["tokens"] = {"input": 900, "output": 60, "cached": 0, "total": 960}
        out.append(line(record))
        out.append(line({"$set": {"lastUpdated": _iso(self.clock)}}))
        return mid, out

    def payload(self, event: str, **fields: Any) -> dict[str, Any]:
        base = {
            "session_id": self.session,
            "transcript_path": self.transcript,
            "cwd": self.cwd,
            "hook_event_name": event,
            "timestamp": _iso(self.clock),
        }
        defaults: dict[str, dict[str, Any]] = {
            "SessionStart": {"source": "startup"},
            "BeforeAgent": {"prompt": ""},
            "AfterAgent": {"prompt": "", "prompt_response": "", "stop_hook_active": False},
            "PreCompress": {"trigger": "auto"},
            "SessionEnd": {"reason": "exit"},
        }
        return {**base, **defaults.get(event, {}), **fields}
