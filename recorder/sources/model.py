"""The typed shapes every session reader returns, whatever the agent."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from recorder.store.jsontext import utf8_text
from recorder.store.secrets import redacted_text
from recorder.store.shell import shell_quote

TITLE_CHARS = 200  # a prompt's characters kept as a session's title
CLAUDE_SESSION_STEM = re.compile(r"\A[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\Z")
"""The name (without `.jsonl`) Claude Code gives a session's file: its id, a UUID."""


def prompt_title(text: str) -> str:
    """A prompt as a session's title: its first `TITLE_CHARS` characters on one line, any
    key in them as `[REDACTED:kind]`. The key is redacted before the cut: cut first, a
    key starting near the end would stay as a fragment no scanner recognises."""
    return " ".join(redacted_text(text[: 16 * TITLE_CHARS]).split())[:TITLE_CHARS]


def shell_line(cwd: str, argv: list[str]) -> str:
    """`cd CWD && ARGV...` (just ARGV without a folder), every word `shell_quote`d."""
    line = " ".join(map(shell_quote, argv))
    return f"cd {shell_quote(cwd)} && {line}" if cwd else line


class Source(enum.StrEnum):
    CLAUDE = "claude"
    GEMINI = "gemini"
    CODEX = "codex"

    @property
    def agent_name(self) -> str:
        """The agent as people name it ("Claude Code")."""
        return _AGENT_NAMES[self]


_AGENT_NAMES = {Source.CLAUDE: "Claude Code", Source.GEMINI: "Gemini CLI", Source.CODEX: "Codex"}
SESSION_SOURCES = tuple(s.value for s in Source)
"""The agents' sources by name, as the search index's `source` column holds them."""


class Sender(enum.StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"  # a tool's result, sent back to the model
    SYSTEM = "system"  # notes the agent wrote itself: compaction, API errors, warnings


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = ""


@dataclass(frozen=True)
class SessionMessage:
    """One message of a session, merged from however many lines the agent wrote it in.

    `seq` is the message's position in its session's main chain (0-based, stable while
    the session only grows); `uuid` is the agent's own id for it (for Claude Code the
    uuid of its last line, the one a child names as parent).
    """

    source: Source
    session_id: str
    seq: int
    uuid: str
    ts: float | None
    sender: Sender
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    thinking: str = ""  # the model's reasoning, kept whole; shown folded
    sidechain: bool = False
    agent_id: str = ""  # the sub-agent that wrote it, if any
    note: str = ""  # "compact-boundary", "compact-summary", "api-error", "meta", ...
    merged: tuple[str, ...] = ()  # uuids of its earlier lines (Claude Code's streamed blocks)
    scope: str = ""  # its session's `Session.scope` (an id in several project folders)

    @property
    def has_thinking(self) -> bool:
        return bool(self.thinking)

    @property
    def topic(self) -> str:
        """The topic a journal record of this message would carry: the session's key."""
        return session_key(self.source, self.session_id, self.scope)

    @property
    def stable_id(self) -> str:
        """An id that stays the same across rescans of a growing session."""
        return f"{self.topic}#{self.seq}"


def session_key(source: Source, session_id: str, scope: str = "") -> str:
    """`source:id`, or `source:id@folder` for a Claude session whose id is also in
    another project folder (Claude resolves `--resume` inside the current project's
    folder, so each is a session of its own)."""
    return f"{source.value}:{session_id}@{scope}" if scope else f"{source.value}:{session_id}"


def name_id(name: str) -> str:
    """An id (or a scope) taken from a file's or a folder's name: the name itself, or
    for a name that is not UTF-8 its text with each byte that is not as `\\xNN`
    (`utf8_text`, as the shell's `$'...'` and `ls -b` spell it), so that the session's
    key can be written in JSON, a record and the search index like any other."""
    return utf8_text(name)


def claude_folder(path: Path) -> str:
    """The Claude project folder (`<root>/projects/<encoded cwd>`) a file is in: the
    nearest folder whose parent is `projects` ("" when there is none; `name_id`)."""
    for folder in path.parents:
        if folder.parent.name == "projects":
            return name_id(folder.name)
    return ""


def seq_of(stable_id: str | None) -> int | None:
    """The message's place in its session, from its `stable_id` (`<topic>#<seq>`)."""
    tail = (stable_id or "").rpartition("#")[2]
    return int(tail) if tail.isdigit() else None


def notes_phrase(messages: list[SessionMessage]) -> str:
    """`33 of conversation, 9 system notes` when some of `messages` are the agent's own
    notes (compaction, API errors, local commands), which a session's message count
    (`persist sessions`) leaves out; "" when none are."""
    notes = sum(m.sender is Sender.SYSTEM for m in messages)
    if not notes:
        return ""
    return f"{len(messages) - notes} of conversation, {notes} system note{'s' * (notes > 1)}"


@dataclass
class ReadReport:
    """What a reader could not use, so nothing is dropped silently."""

    lines: int = 0  # complete lines read
    bad_lines: list[int] = field(default_factory=list)  # 1-based numbers of unparsable lines
    # lines read with U+FFFD for what orjson refused (a lone surrogate, bytes not UTF-8)
    repaired: list[int] = field(default_factory=list)
    unknown_types: dict[str, int] = field(default_factory=dict)
    torn_tail: int = 0  # bytes after the last newline (being written, or cut off)
    errors: list[str] = field(default_factory=list)  # whole files that could not be read
    # why the file read itself could not be (its messages are unknown, not none); a
    # merged report (a sub-agent's file) does not pass it on
    unread: str = ""

    @property
    def skipped(self) -> int:
        return len(self.bad_lines) + sum(self.unknown_types.values())

    def summary(self) -> str:
        parts = []
        if self.bad_lines:
            head = ", ".join(str(n) for n in self.bad_lines[:5])
            more = "..." if len(self.bad_lines) > 5 else ""
            parts.append(f"{len(self.bad_lines)} unreadable line(s) ({head}{more})")
        if self.repaired:
            head = ", ".join(str(n) for n in self.repaired[:5])
            more = "..." if len(self.repaired) > 5 else ""
            parts.append(
                f"{len(self.repaired)} line(s) read with U+FFFD for characters that are not "
                f"valid Unicode ({head}{more})"
            )
        if self.unknown_types:
            kinds = ", ".join(f"{k} x{n}" for k, n in sorted(self.unknown_types.items()))
            parts.append(f"unknown record types skipped: {kinds}")
        if self.torn_tail:
            parts.append(f"{self.torn_tail} bytes of an unfinished last line")
        parts.extend(self.errors)
        return "; ".join(parts)

    def merge(self, other: ReadReport) -> None:
        self.lines += other.lines
        self.bad_lines.extend(other.bad_lines)
        for k, n in other.unknown_types.items():
            self.unknown_types[k] = self.unknown_types.get(k, 0) + n
        self.torn_tail += other.torn_tail
        self.errors.extend(other.errors)


@dataclass
class Session:
    """A session as a listing shows it (cheap to cache: no message bodies)."""

    source: Source
    id: str
    path: Path  # the main file
    title: str = ""
    title_kind: str = ""  # "custom-title", "ai-title", "summary", "first-prompt", ""
    project_path: str = ""  # the agent's cwd, as the agent recorded it
    extra_paths: tuple[Path, ...] = ()  # sub-agent files, a migrated legacy file...
    first_ts: float | None = None
    last_ts: float | None = None
    message_count: int = 0
    git_branch: str = ""
    files_modified: tuple[str, ...] = ()
    context_tokens: int = 0  # an estimate of what the next request would send
    branches: int = 1  # leaves of the conversation tree (rewinds, edits)
    version: str = ""  # the agent's version as last recorded
    model: str = ""
    first_prompt: str = ""
    size: int = 0  # bytes of the main file
    mtime: float = 0.0
    resumable: bool = True
    leaf_uuids: tuple[str, ...] = ()  # for titles held by other files (Claude summaries)
    skipped: int = 0  # lines or records skipped while reading (see the ReadReport)
    bad_lines: int = 0  # of those, lines that could not be read (`ReadReport.bad_lines`)
    subagent: bool = False  # a sub-agent's own transcript (listed only when orphaned)
    parent_id: str = ""  # a sub-agent's: the session that started it
    # why its file could not be read (`ReadReport.unread`): listed, its messages unknown
    unread: str = ""
    # why the agent's own listing takes this file for no session at all, so that its
    # cleanup deletes it whatever its age (Gemini CLI: not parsable, no prompt or
    # answer, a sub-agent's); "" when it takes it for one
    agent_drop: str = ""
    # the time the agent's cleanup ages this file by, as the agent reads it (Gemini
    # CLI: `lastUpdated`, for a legacy file without one its startTime or mtime); None
    # when it reads none, which Gemini CLI counts as now
    agent_time: float | None = None
    # the project folder when the id is also in another one (`qualify`; not stored)
    scope: str = ""

    @property
    def key(self) -> str:
        return session_key(self.source, self.id, self.scope)

    @property
    def folder(self) -> str:
        """A Claude session's project folder ("" for the other agents: their ids are
        unique on a machine)."""
        return claude_folder(self.path) if self.source is Source.CLAUDE else ""

    @property
    def ident(self) -> tuple[Source, str, str]:
        """What tells sessions apart, whatever their scope: the agent, the id and, for
        Claude, the project folder (the same id can be in two)."""
        return (self.source, self.id, self.folder)

    @property
    def shown_title(self) -> str:
        """The title as listings show it: a first prompt can hold an API key, which shows
        as `[REDACTED:kind]` (as message texts do)."""
        return redacted_text(self.title)

    @property
    def fork_to_resume(self) -> str:
        """Why the agent's own resume command would not find this session by its id, so
        that it resumes only through a fork (`persist fork` writes one at its last
        message too); "" when it finds it. A Claude file not named `<id>.jsonl` (a copy
        under another name): `claude --resume <id>` looks for that name, and finds the
        original or nothing."""
        if self.source is not Source.CLAUDE:
            return ""
        stem = self.path.stem if CLAUDE_SESSION_STEM.match(self.path.stem) else ""
        if stem == self.id:
            return ""
        return (
            f"its file {name_id(self.path.name)} is not named {self.id}.jsonl, "
            "the name Claude Code's --resume looks for"
        )

    def resume_shell(self) -> str:
        """The command to type: resume is scoped to the project, so it starts there."""
        return shell_line(self.project_path, self.resume_command())

    def resume_command(self) -> list[str]:
        if self.source is Source.CLAUDE:
            return ["claude", "--resume", self.id]
        if self.source is Source.GEMINI:
            return ["gemini", "--resume", self.id]
        return ["codex", "resume", self.id]


@dataclass
class Transcript:
    """A session read in full: its listing entry, its messages, what was skipped."""

    session: Session
    messages: list[SessionMessage]
    sidechain: list[SessionMessage] = field(default_factory=list)
    report: ReadReport = field(default_factory=ReadReport)
    raw_chain: list[dict[str, Any]] = field(default_factory=list)  # Claude lines / Gemini records
    summaries: dict[str, str] = field(default_factory=dict)  # Claude: leafUuid -> summary
    raw_meta: dict[str, Any] = field(default_factory=dict)  # Gemini: the session's metadata

    def scoped(self, scope: str) -> Transcript:
        """The same, its session and messages under `scope` (see `Session.scope`)."""
        if scope == self.session.scope:
            return self
        self.session.scope = scope
        self.messages = [replace(m, scope=scope) for m in self.messages]
        self.sidechain = [replace(m, scope=scope) for m in self.sidechain]
        return self


def session_to_json(s: Session) -> dict[str, Any]:
    return {
        "source": s.source.value,
        "id": s.id,
        "path": str(s.path),
        "title": s.title,
        "title_kind": s.title_kind,
        "project_path": s.project_path,
        "extra_paths": [str(p) for p in s.extra_paths],
        "first_ts": s.first_ts,
        "last_ts": s.last_ts,
        "message_count": s.message_count,
        "git_branch": s.git_branch,
        "files_modified": list(s.files_modified),
        "context_tokens": s.context_tokens,
        "branches": s.branches,
        "version": s.version,
        "model": s.model,
        "first_prompt": s.first_prompt,
        "size": s.size,
        "mtime": s.mtime,
        "resumable": s.resumable,
        "leaf_uuids": list(s.leaf_uuids),
        "skipped": s.skipped,
        "bad_lines": s.bad_lines,
        "subagent": s.subagent,
        "parent_id": s.parent_id,
        "unread": s.unread,
        "agent_drop": s.agent_drop,
        "agent_time": s.agent_time,
    }


def session_from_json(d: dict[str, Any]) -> Session:
    """Raises KeyError/ValueError/TypeError on a malformed entry (the cache is rebuilt)."""
    return Session(
        source=Source(d["source"]),
        id=str(d["id"]),
        path=Path(d["path"]),
        title=str(d["title"]),
        title_kind=str(d["title_kind"]),
        project_path=str(d["project_path"]),
        extra_paths=tuple(Path(p) for p in d["extra_paths"]),
        first_ts=None if d["first_ts"] is None else float(d["first_ts"]),
        last_ts=None if d["last_ts"] is None else float(d["last_ts"]),
        message_count=int(d["message_count"]),
        git_branch=str(d["git_branch"]),
        files_modified=tuple(str(f) for f in d["files_modified"]),
        context_tokens=int(d["context_tokens"]),
        branches=int(d["branches"]),
        version=str(d["version"]),
        model=str(d["model"]),
        first_prompt=str(d["first_prompt"]),
        size=int(d["size"]),
        mtime=float(d["mtime"]),
        resumable=bool(d["resumable"]),
        leaf_uuids=tuple(str(u) for u in d["leaf_uuids"]),
        skipped=int(d["skipped"]),
        bad_lines=int(d.get("bad_lines") or 0),
        # fields added later: manifests of protected copies carry no version
        subagent=bool(d.get("subagent")),
        parent_id=str(d.get("parent_id") or ""),
        unread=str(d.get("unread") or ""),
        agent_drop=str(d.get("agent_drop") or ""),
        agent_time=None if d.get("agent_time") is None else float(d["agent_time"]),
    )
