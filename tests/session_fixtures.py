"""Agent session files in each documented shape, written at test time (never copies of
real files): Claude Code transcripts, Gemini CLI chats (legacy JSON and JSONL), Codex
rollouts. Also used by bench/sessions.py."""

from __future__ import annotations

import hashlib
import json
import uuid as uuidlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BASE = datetime(2026, 1, 10, 12, 0, tzinfo=UTC).timestamp()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_uuid(n: int | None = None) -> str:
    if n is None:
        return str(uuidlib.uuid4())
    return str(uuidlib.UUID(int=n, version=4))


@dataclass
class ClaudeSession:
    """Writes a Claude Code transcript line by line, chaining parentUuid automatically."""

    root: Path
    cwd: str = "/home/me/proj"
    session_id: str = field(default_factory=new_uuid)
    branch: str = "main"
    version: str = "2.1.16"
    t: float = BASE
    last: str | None = None
    lines: list[dict[str, Any]] = field(default_factory=list)
    sidechain: bool = False
    agent_id: str | None = None
    path: Path | None = None
    counter: int = 0

    def __post_init__(self) -> None:
        if self.path is None:
            folder = (
                self.root
                / "projects"
                / "".join(c if c.isalnum() and c.isascii() else "-" for c in self.cwd)
            )
            folder.mkdir(parents=True, exist_ok=True)
            self.path = folder / f"{self.session_id}.jsonl"

    def _base(self, kind: str, parent: str | None) -> dict[str, Any]:
        self.t += 1.5
        self.counter += 1
        line: dict[str, Any] = {
            "parentUuid": parent,
            "isSidechain": self.sidechain,
            "userType": "external",
            "cwd": self.cwd,
            "sessionId": self.session_id,
            "version": self.version,
            "gitBranch": self.branch,
            "type": kind,
            "uuid": new_uuid(),
            "timestamp": iso(self.t),
        }
        if self.agent_id:
            line["agentId"] = self.agent_id
        return line

    def add(self, line: dict[str, Any]) -> str:
        self.lines.append(line)
        if "uuid" in line:
            self.last = line["uuid"]
        return str(line.get("uuid", ""))

    def user(self, content: Any, parent: str | None = "", **extra: Any) -> str:
        line = self._base("user", self.last if parent == "" else parent)
        line["message"] = {"role": "user", "content": content}
        line.update(extra)
        return self.add(line)

    def assistant(
        self, *blocks: dict[str, Any], parent: str | None = "", usage: dict[str, int] | None = None
    ) -> str:
        """One API message streamed one block per line (same message.id)."""
        mid = f"msg_{uuidlib.uuid4().hex[:20]}"
        first = True
        for block in blocks:
            line = self._base(
                "assistant", (self.last if parent == "" else parent) if first else self.last
            )
            first = False
            line["message"] = {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5",
                "content": [block],
                "usage": usage or {"input_tokens": 10, "output_tokens": 5},
            }
            line["requestId"] = "req_" + mid[4:]
            self.add(line)
        return str(self.last)

    def tool_result(self, tool_use_id: str, content: Any, parent: str | None = "") -> str:
        return self.user(
            [{"type": "tool_result", "tool_use_id": tool_use_id, "content": content}], parent
        )

    def compact(self, summary: str = "Summary of the earlier conversation.") -> str:
        line = self._base("system", None)
        line.update(
            subtype="compact_boundary",
            content="Conversation compacted",
            level="info",
            logicalParentUuid=self.last,
            compactMetadata={"trigger": "manual", "preTokens": 12345},
        )
        self.add(line)
        return self.user(
            "This session is being continued from a previous conversation. " + summary,
            isCompactSummary=True,
            isVisibleInTranscriptOnly=True,
        )

    def meta(self, kind: str, **fields: Any) -> None:
        self.lines.append({"type": kind, **fields, "sessionId": self.session_id})

    def write(self, *, raw_tail: bytes = b"") -> Path:
        assert self.path is not None
        with open(self.path, "wb") as f:
            for line in self.lines:
                f.write(json.dumps(line).encode() + b"\n")
            f.write(raw_tail)
        return self.path

    def append_lines(self, lines: list[dict[str, Any]]) -> None:
        assert self.path is not None
        with open(self.path, "ab") as f:
            for line in lines:
                f.write(json.dumps(line).encode() + b"\n")


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


def tool_use(name: str, args: dict[str, Any], tid: str | None = None) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": tid or f"toolu_{uuidlib.uuid4().hex[:12]}",
        "name": name,
        "input": args,
    }


def thinking(t: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": t, "signature": "sig"}


def claude_steps(root: Path, turns: int, *, start: int = 0, **fields: Any) -> ClaudeSession:
    """A Claude Code session of `turns` exchanges, "step N: carry on" / "done with step
    N" from N = `start`, written (`fields`: ClaudeSession's, e.g. session_id, t)."""
    c = ClaudeSession(root, **fields)
    for i in range(start, start + turns):
        c.user(f"step {i}: carry on")
        c.assistant(text(f"done with step {i}"))
    c.write()
    return c


# -- Gemini CLI ------------------------------------------------------------------------
def gemini_project(root: Path, project: str, *, slug: bool = True) -> Path:
    """`<root>/tmp/<slug or sha256>/chats/`; a slug folder gets its `.project_root`."""
    name = Path(project).name.lower() if slug else hashlib.sha256(project.encode()).hexdigest()
    folder = root / "tmp" / name
    (folder / "chats").mkdir(parents=True, exist_ok=True)
    if slug:
        (folder / ".project_root").write_text(project)
    return folder / "chats"


def gemini_messages(n_turns: int, start: float = BASE) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    t = start
    for i in range(n_turns):
        t += 10
        out.append(
            {
                "id": new_uuid(),
                "timestamp": iso(t),
                "type": "user",
                "content": [{"text": f"question {i}"}],
            }
        )
        t += 5
        out.append(
            {
                "id": new_uuid(),
                "timestamp": iso(t),
                "type": "gemini",
                "content": f"answer {i}",
                "thoughts": [
                    {"subject": "Thinking", "description": f"about {i}", "timestamp": iso(t)}
                ],
                "tokens": {"input": 100 + i, "output": 10, "cached": 0, "total": 110 + i},
                "model": "gemini-2.5-pro",
                "toolCalls": [
                    {
                        "id": f"write_file-{i}",
                        "name": "write_file",
                        "args": {"file_path": f"/p/f{i}.txt", "content": "x"},
                        "result": [
                            {
                                "functionResponse": {
                                    "id": f"w{i}",
                                    "name": "write_file",
                                    "response": {"output": "ok"},
                                }
                            }
                        ],
                        "status": "success",
                        "timestamp": iso(t),
                    }
                ],
            }
        )
    return out


def gemini_legacy(
    chats: Path, session_id: str, messages: list[dict[str, Any]], **meta: Any
) -> Path:
    path = chats / f"session-2026-01-10T12-00-{session_id[:8]}.json"
    doc = {
        "sessionId": session_id,
        "projectHash": "ab" * 32,
        "startTime": messages[0]["timestamp"] if messages else iso(BASE),
        "lastUpdated": messages[-1]["timestamp"] if messages else iso(BASE),
        "messages": messages,
        **meta,
    }
    path.write_text(json.dumps(doc, indent=2))
    return path


def gemini_jsonl(chats: Path, session_id: str, lines: list[dict[str, Any]]) -> Path:
    path = chats / f"session-2026-01-10T12-00-{session_id[:8]}.jsonl"
    head = {
        "sessionId": session_id,
        "projectHash": "ab" * 32,
        "startTime": iso(BASE),
        "lastUpdated": iso(BASE),
    }
    with open(path, "w") as f:
        for line in [head, *lines]:
            f.write(json.dumps(line) + "\n")
    return path


# -- Codex CLI -------------------------------------------------------------------------
def codex_rollout(root: Path, thread_id: str, turns: int, cwd: str = "/home/me/cx") -> Path:
    folder = root / "sessions" / "2026" / "01" / "10"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"rollout-2026-01-10T12-00-00-{thread_id}.jsonl"
    t = BASE

    def line(kind: str, payload: dict[str, Any]) -> str:
        nonlocal t
        t += 1
        return json.dumps({"timestamp": iso(t), "type": kind, "payload": payload})

    out = [
        line(
            "session_meta",
            {
                "id": thread_id,
                "timestamp": iso(t),
                "cwd": cwd,
                "originator": "codex_cli_rs",
                "cli_version": "0.47.0",
                "source": "cli",
                "git": {"branch": "dev"},
            },
        ),
        line(
            "response_item",
            {
                "type": "message",
                "role": "user",
                "content": [
                    {
                        "type": "input_text",
                        "text": "<environment_context>\n  <cwd>x</cwd>\n</environment_context>",
                    }
                ],
            },
        ),
    ]
    for i in range(turns):
        out.append(
            line(
                "response_item",
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": f"task {i}"}],
                },
            )
        )
        out.append(line("event_msg", {"type": "user_message", "message": f"task {i}"}))
        out.append(line("turn_context", {"cwd": cwd, "model": "gpt-5-codex"}))
        out.append(
            line(
                "response_item",
                {
                    "type": "reasoning",
                    "summary": [{"type": "summary_text", "text": f"plan {i}"}],
                    "encrypted_content": "x",
                },
            )
        )
        out.append(
            line(
                "response_item",
                {
                    "type": "custom_tool_call",
                    "call_id": f"c{i}",
                    "name": "apply_patch",
                    "input": f"*** Begin Patch\n*** Add File: file{i}.txt\n+hi\n*** End Patch",
                },
            )
        )
        out.append(
            line(
                "response_item",
                {
                    "type": "custom_tool_call_output",
                    "call_id": f"c{i}",
                    "output": json.dumps({"output": "Success", "metadata": {}}),
                },
            )
        )
        out.append(
            line(
                "response_item",
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": f"done {i}"}],
                },
            )
        )
        out.append(
            line(
                "event_msg",
                {
                    "type": "token_count",
                    "info": {"last_token_usage": {"input_tokens": 1000 + i, "output_tokens": 50}},
                },
            )
        )
    path.write_text("\n".join(out) + "\n")
    return path


CODEX_ID = "0199a0b0-0000-7000-8000-000000000001"
GEMINI_ID = "5f0e0000-0000-4000-8000-000000000002"


def every_agent(root: Path) -> ClaudeSession:
    """One small session of each agent under `root`/claude, gemini and codex, their
    messages interleaved in time: Claude Code 6 (from BASE + 1.5 s, 1.5 s apart), Codex
    9 (from BASE + 2 s), Gemini 4 (from BASE + 10 s; the newest). Returns the Claude one."""
    claude = claude_steps(root / "claude", 3)
    codex_rollout(root / "codex", CODEX_ID, 2)
    gemini_jsonl(gemini_project(root / "gemini", "/home/me/g"), GEMINI_ID, gemini_messages(2))
    return claude
