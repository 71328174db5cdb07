"""Claude Code transcripts: `<root>/projects/<encoded cwd>/<sessionId>.jsonl`.

The file is a tree of lines linked by `parentUuid`; the conversation is the chain from
the active leaf up to the root (rewinds and edits leave other branches behind), bridged
over compaction boundaries by `logicalParentUuid`, with `progress` lines transparent and
parallel tool results put back, as Claude Code's own loader does (the format notes of
issue 9, section 1.4); those rules are in `claude_chain`, how lines become messages in
`claude_messages`. Sub-agents
live inline (`isSidechain`, <= 1.0), in `agent-<id>.jsonl` beside the sessions
(2.0 - 2.1.1) or in `<sessionId>/subagents/` (>= 2.1.2).

A little over 400 lines: discovery, reading a file and the two ways of reading a
session (in full, or for a listing) share the line model.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recorder.sources.claude_chain import Chain, active_chain
from recorder.sources.claude_messages import (
    build_messages,
    context_tokens,
    count_chain,
    edit_paths,
    files_modified,
    first_user_prompt,
    is_conversation,
    is_sidechain,
    usage_tokens,
)
from recorder.sources.jsonl import is_regular, iter_objects, read_bytes, time_span
from recorder.sources.model import (
    CLAUDE_SESSION_STEM,
    ReadReport,
    Session,
    Source,
    Transcript,
    name_id,
)

CONVERSATION = frozenset(("user", "assistant", "system", "attachment", "progress"))
KNOWN = CONVERSATION | frozenset(
    [
        "summary",
        "custom-title",
        "ai-title",
        "last-prompt",
        "tag",
        "agent-name",
        "agent-color",
        "agent-setting",
        "pr-link",
        "file-history-snapshot",
        "attribution-snapshot",
        "speculation-accept",
        "mode",
        "permission-mode",
        "worktree-state",
        "queue-operation",
        "marble-origami-commit",
        "marble-origami-snapshot",
        "content-replacement",
        "checkpoint",
        "ended-by-model",
        "continued-in",
        "relocated",
        "frame-link",
        "bridge-session",
        "history-suppression",
        "file-history-delta",
        "isolation-latch",
        "session-owner",
        "dev-mods",
        "memory-mode",
        "tools-used",
        "derived-from",
        "cost-state",
        "fork-context-ref",
        "observer-ref",
        "resume-head-vouch",
    ]
)
_AGENT_NAME = re.compile(r"\Aagent-[A-Za-z0-9_-]+\.jsonl\Z")
# `<sessionId>.jsonl`: the id `claude --resume` looks the file up by
_SESSION_STEM = CLAUDE_SESSION_STEM


def default_root() -> Path:
    env = os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(env).expanduser() if env else Path.home() / ".claude"


def encode_project(cwd: str) -> str:
    """The folder name Claude Code gives a cwd (lossy: read the real one from `cwd`).
    JavaScript works on UTF-16 code units: a character outside the BMP is two dashes."""
    units = struct.unpack(f"<{len(cwd.encode('utf-16-le')) // 2}H", cwd.encode("utf-16-le"))
    name = "".join(chr(u) if chr(u).isascii() and chr(u).isalnum() else "-" for u in units)
    if len(name) <= 200:
        return name
    h = 0
    for u in units:  # (h << 5) - h + code, kept to a signed 32-bit integer
        h = ((h << 5) - h + u) & 0xFFFFFFFF
    h = abs(h - (1 << 32) if h & 0x80000000 else h)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        h, r = divmod(h, 36)
        out = digits[r] + out
        if not h:
            break
    return f"{name[:200]}-{out}"


# -- discovery ----------------------------------------------------------------------------
@dataclass
class ProjectFiles:
    folder: Path
    sessions: list[Path] = field(default_factory=list)
    flat_agents: list[Path] = field(default_factory=list)  # 2.0.x `agent-<id>.jsonl`
    # >= 2.1.2 sub-agent files under `<sid>/subagents/` with no `<sid>.jsonl` beside them
    orphan_nested: list[Path] = field(default_factory=list)
    error: str = ""  # the folder could not be listed: its sessions are unknown


def projects(root: Path) -> Iterator[ProjectFiles]:
    """Each project folder with its session files (none when the root is absent); one
    that cannot be listed (no permission) is yielded with its `error`, not left out
    silently."""
    try:
        folders = sorted(os.scandir(root / "projects"), key=lambda e: e.name)
    except OSError:
        return
    for folder in folders:
        try:
            if not folder.is_dir():
                continue
            entries = sorted(os.scandir(folder.path), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            continue  # gone meanwhile
        except OSError as exc:
            error = f"{folder.path} cannot be read ({exc.strerror}): its sessions are not listed"
            yield ProjectFiles(Path(folder.path), error=error)
            continue
        found = ProjectFiles(Path(folder.path))
        names = {entry.name for entry in entries}
        for entry in entries:
            if not entry.name.endswith(".jsonl"):
                if f"{entry.name}.jsonl" not in names and _is_dir(entry):
                    found.orphan_nested += subagent_files(Path(f"{entry.path}.jsonl"))
                continue
            if _AGENT_NAME.match(entry.name):
                if is_regular(entry):
                    found.flat_agents.append(Path(entry.path))
            elif is_regular(entry):  # `<sessionId>.jsonl`, or any name: the id is in the lines
                found.sessions.append(Path(entry.path))
        yield found


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def subagent_files(session_file: Path) -> list[Path]:
    """The >= 2.1.2 sub-agent transcripts of a session (`<sid>/subagents/**/agent-*.jsonl`)."""
    base = session_file.with_suffix("") / "subagents"
    if not base.is_dir():
        return []
    try:
        found = [p for p in base.rglob("agent-*.jsonl") if is_regular(p)]
    except OSError:  # a folder below that cannot be listed (rglob stops there)
        return []
    return sorted(found)


def flat_agent_files(folder: Path) -> list[Path]:
    """The 2.0.x sub-agent transcripts of a project folder (`agent-*.jsonl`), regular
    files only (a symlink loop or a named pipe with that name is not one)."""
    try:
        return sorted(p for p in folder.glob("agent-*.jsonl") if is_regular(p))
    except OSError:
        return []


def named_session_id(path: Path) -> str:
    """The session a file's name says it is (`<uuid>.jsonl`), or ""."""
    return path.stem if _SESSION_STEM.match(path.stem) else ""


def file_session_id(path: Path) -> str:
    """The session id `parse_file(path).session_id` gives, from the file's first lines
    only (a 2.0.x sub-agent file names its session on its first line): what picks a
    session's `agent-<id>.jsonl` files out of a project folder without parsing them all."""
    named = named_session_id(path)
    if named:
        return named
    limit = 1 << 16
    while True:
        report = ReadReport()
        data, _ = read_bytes(path, report, limit)
        whole = len(data) < limit  # the file's end (or it could not be read: "")
        lines = data if whole else data[: data.rfind(b"\n") + 1]
        for _, obj in iter_objects(lines, report):
            sid, kind = obj.get("sessionId"), obj.get("type")
            conversation = isinstance(kind, str) and kind in CONVERSATION
            if conversation and isinstance(obj.get("uuid"), str) and isinstance(sid, str):
                return sid
        if whole:
            return name_id(path.stem)
        limit *= 4


def agents_by_session(paths: list[Path]) -> dict[str, list[Path]]:
    """2.0.x sub-agent files (`flat_agent_files`) by the session id they name."""
    owners: dict[str, list[Path]] = {}
    for path in paths:
        owners.setdefault(file_session_id(path), []).append(path)
    return owners


# -- reading one file ---------------------------------------------------------------------
@dataclass
class ParsedFile:
    """The lines of one transcript file, sorted into what the chain rules need."""

    path: Path
    entries: list[dict[str, Any]] = field(default_factory=list)  # lines with a uuid
    custom_title: str = ""
    ai_title: str = ""
    summaries: dict[str, str] = field(default_factory=dict)  # leafUuid -> summary
    explicit_leaf: str | None = None
    session_id: str = ""
    report: ReadReport = field(default_factory=ReadReport)
    size: int = 0
    mtime: float = 0.0
    first_ts: float | None = None
    last_ts: float | None = None
    subagent: bool = False  # every line is a sidechain line: a sub-agent's own file

    @property
    def side_entries(self) -> list[dict[str, Any]]:
        """The lines that may be inline sub-agent lines of this session (none for a
        sub-agent's own file: its lines are its conversation)."""
        return [] if self.subagent else self.entries

    @property
    def own_id(self) -> str:
        """The id the file is listed under: its session's, or for a sub-agent's own
        file its `agentId` (its lines carry the parent's sessionId, which several
        sub-agents of one session share)."""
        if not self.subagent:
            return self.session_id
        agent = next((e["agentId"] for e in self.entries if isinstance(e.get("agentId"), str)), "")
        return agent or name_id(self.path.stem.removeprefix("agent-"))


def parse_file(path: Path, limit: int | None = None, *, exact: bool = False) -> ParsedFile:
    """`exact`: integers beyond 64 bits kept as written (`iter_objects`), for a fork."""
    parsed = ParsedFile(path)
    report = parsed.report
    data, state = read_bytes(path, report, limit)
    parsed.size = state.size
    parsed.mtime = state.mtime_ns / 1e9
    entries = parsed.entries
    stamps: list[Any] = []
    stamp = stamps.append
    for _, obj in iter_objects(data, report, exact=exact):
        kind = obj.get("type")
        if not isinstance(kind, str):
            kind = "?"
        stamp(obj.get("timestamp"))
        if kind in CONVERSATION and isinstance(obj.get("uuid"), str):
            entries.append(obj)
            if not parsed.session_id and isinstance(obj.get("sessionId"), str):
                parsed.session_id = obj["sessionId"]
        elif kind == "custom-title" and isinstance(obj.get("customTitle"), str):
            parsed.custom_title = obj["customTitle"]
        elif kind == "ai-title" and isinstance(obj.get("aiTitle"), str):
            parsed.ai_title = obj["aiTitle"]
        elif kind == "summary":
            if isinstance(obj.get("summary"), str) and isinstance(obj.get("leafUuid"), str):
                parsed.summaries[obj["leafUuid"]] = obj["summary"]
        elif kind == "last-prompt":
            leaf = obj.get("leafUuid")
            if obj.get("explicit") is True or obj.get("rewound") is True:
                parsed.explicit_leaf = leaf if isinstance(leaf, str) else None
        elif kind not in KNOWN:
            report.unknown_types[kind] = report.unknown_types.get(kind, 0) + 1
    parsed.first_ts, parsed.last_ts = time_span(stamps)
    if not parsed.session_id or named_session_id(path):
        # a file named by a session id is that session (`claude --resume` finds it by
        # its name), whatever id its first lines carry: history copied in from another
        # session keeps that one's id, which would list it as the other session
        parsed.session_id = name_id(path.stem)
    parsed.subagent = bool(entries) and all(e.get("isSidechain") is True for e in entries)
    return parsed


FlatAgents = Sequence[Path] | Mapping[str, Sequence[Path]]


def _own_agents(flat_agents: FlatAgents | None, sid: str) -> Sequence[Path]:
    """The 2.0.x agent files that may be session `sid`'s: all of a list (each is parsed
    and kept when it names `sid`), or those a mapping (`agents_by_session`) files
    under `sid`."""
    if flat_agents is None:
        return ()
    if isinstance(flat_agents, Mapping):
        return flat_agents.get(sid, ())
    return flat_agents


def read_transcript(
    path: Path,
    *,
    flat_agents: FlatAgents | None = None,
    project_summaries: dict[str, str] | None = None,
    limit: int | None = None,
    listing: bool = False,
    exact: bool = False,
) -> Transcript:
    """One session in full. `flat_agents`: the project's 2.0-layout agent files (those
    naming this session are attached); `project_summaries`: leafUuid -> summary from the
    project's other files (a title may live there). `listing`: only the `Session` is
    wanted (no messages are built; the same figures). `flat_agents` may be a mapping of
    session id -> agent files (`agents_by_session`): only this session's are parsed.

    A sub-agent's file read on its own (every line a sidechain line: a session lists
    its sub-agents' files as its `extra_paths` instead) is the sub-agent's
    conversation, listed under its `agentId`, not resumable: discovery shows it when
    its session's file is gone. `exact`: its lines' integers beyond 64 bits are kept as
    written (a fork writes them again), not read as floats."""
    parsed = parse_file(path, limit, exact=exact)
    chain = active_chain(parsed.entries, parsed.explicit_leaf, sidechain=parsed.subagent)
    if parsed.subagent:
        flat_agents = None
    sid = parsed.own_id
    if listing:
        return _listing(path, parsed, chain, flat_agents, project_summaries)
    messages = build_messages(chain.lines, sid)
    report = parsed.report
    side_lines = [e for e in parsed.side_entries if is_sidechain(e) and e["type"] != "progress"]
    extra: list[Path] = []
    nested = [] if parsed.subagent else subagent_files(path)
    for agent_path in [*nested, *_own_agents(flat_agents, sid)]:
        agent = parse_file(agent_path)
        if agent_path not in nested and agent.session_id != sid:
            continue  # a 2.0.x agent file of another session of this project
        extra.append(agent_path)
        report.merge(agent.report)
        side_lines.extend(e for e in agent.entries if e["type"] != "progress")
    sidechain = build_messages(side_lines, sid)
    title, title_kind = _title(parsed, chain, project_summaries or {})
    conv = [m for m in messages if is_conversation(m)]
    first_prompt = first_user_prompt(messages)
    if not title and first_prompt:
        title, title_kind = first_prompt, "first-prompt"
    session = _session(
        path,
        sid,
        parsed,
        chain,
        extra,
        report,
        title=(title, title_kind),
        first_prompt=first_prompt,
        conversation=len(conv),
        files=files_modified(messages + sidechain),
        tokens=context_tokens(chain.lines, messages),
    )
    return Transcript(session, messages, sidechain, report, chain.lines, parsed.summaries)


def _listing(
    path: Path,
    parsed: ParsedFile,
    chain: Chain,
    flat_agents: FlatAgents | None,
    project_summaries: dict[str, str] | None,
) -> Transcript:
    """`read_transcript(..., listing=True)`: the Session alone, from counts."""
    sid = parsed.own_id
    report = parsed.report
    counts = count_chain(chain.lines, sid)
    extra: list[Path] = []
    for e in parsed.side_entries:
        if is_sidechain(e) and e["type"] == "assistant":
            edit_paths(e, counts.files)
    nested = [] if parsed.subagent else subagent_files(path)
    for agent_path in [*nested, *_own_agents(flat_agents, sid)]:
        agent = parse_file(agent_path)
        if agent_path not in nested and agent.session_id != sid:
            continue
        extra.append(agent_path)
        report.merge(agent.report)
        for e in agent.entries:
            if e["type"] == "assistant":
                edit_paths(e, counts.files)
    title, title_kind = _title(parsed, chain, project_summaries or {})
    if not title and counts.first_prompt:
        title, title_kind = counts.first_prompt, "first-prompt"
    tokens = usage_tokens(chain.lines)
    if tokens is None:  # no usage recorded: estimated from the text (messages needed)
        tokens = context_tokens(chain.lines, build_messages(chain.lines, sid))
    session = _session(
        path,
        sid,
        parsed,
        chain,
        extra,
        report,
        title=(title, title_kind),
        first_prompt=counts.first_prompt,
        conversation=counts.conversation,
        files=tuple(counts.files),
        tokens=tokens,
    )
    return Transcript(session, [], [], report, chain.lines, parsed.summaries)


def _session(
    path: Path,
    sid: str,
    parsed: ParsedFile,
    chain: Chain,
    extra: list[Path],
    report: ReadReport,
    *,
    title: tuple[str, str],
    first_prompt: str,
    conversation: int,
    files: tuple[str, ...],
    tokens: int,
) -> Session:
    """The Session of a transcript, from the full read or the listing's counts (the
    two must agree: tests compare them on every fixture and real file)."""
    last: dict[str, Any] = chain.lines[-1] if chain.lines else {}
    return Session(
        source=Source.CLAUDE,
        id=sid,
        path=path,
        title=title[0],
        title_kind=title[1],
        project_path=_project_path(path, parsed.entries) or str(last.get("cwd") or ""),
        extra_paths=tuple(extra),
        first_ts=parsed.first_ts,
        last_ts=parsed.last_ts,
        message_count=conversation,
        git_branch=_last_field(chain.lines, "gitBranch"),
        files_modified=files,
        context_tokens=tokens,
        branches=chain.branches,
        version=_last_field(chain.lines, "version"),
        model=_model(chain.lines),
        first_prompt=first_prompt,
        size=parsed.size,
        mtime=parsed.mtime,
        resumable=conversation > 0 and not parsed.subagent,
        leaf_uuids=tuple(chain.leaves),
        skipped=report.skipped,
        bad_lines=len(report.bad_lines),
        subagent=parsed.subagent,
        parent_id=parsed.session_id if parsed.subagent else "",
    )


def _title(parsed: ParsedFile, chain: Chain, project: dict[str, str]) -> tuple[str, str]:
    if parsed.custom_title:
        return parsed.custom_title, "custom-title"
    if parsed.ai_title:
        return parsed.ai_title, "ai-title"
    summaries = {**project, **parsed.summaries}
    for e in reversed(chain.lines):
        found = summaries.get(e["uuid"])
        if found:
            return found, "summary"
    return "", ""


def _project_path(path: Path, entries: list[dict[str, Any]]) -> str:
    """The cwd Claude Code filed the session under (its folder is that cwd encoded),
    where `claude --resume` finds it: the session's first cwd, not its last, when a
    `cd` moved it on (a later cwd is in another project's folder name). When none
    encodes to the folder (moved, renamed), the first cwd."""
    folder = path.parent.name
    first = ""
    seen: set[str] = set()
    for e in entries:
        cwd = e.get("cwd")
        if not isinstance(cwd, str) or not cwd or cwd in seen:
            continue
        if encode_project(cwd) == folder:
            return cwd
        seen.add(cwd)
        first = first or cwd
    return first


def _last_field(entries: list[dict[str, Any]], key: str) -> str:
    for e in reversed(entries):
        v = e.get(key)
        if isinstance(v, str) and v:
            return v
    return ""


def _model(entries: list[dict[str, Any]]) -> str:
    for e in reversed(entries):
        msg = e.get("message")
        if e["type"] == "assistant" and isinstance(msg, dict) and isinstance(msg.get("model"), str):
            model = msg["model"]
            if model != "<synthetic>":
                return str(model)
    return ""


def apply_summaries(transcripts: list[Transcript]) -> None:
    """Titles from `summary` lines held by other files of the same project: a summary
    names the leaf it summarises, which may sit in any session file of the folder."""
    project: dict[str, str] = {}
    for t in transcripts:
        project.update(t.summaries)
    for t in transcripts:
        s = t.session
        if s.title_kind in ("custom-title", "ai-title", "summary"):
            continue
        uuids = [*s.leaf_uuids, *(e["uuid"] for e in reversed(t.raw_chain))]
        for uuid in uuids:
            found = project.get(uuid)
            if found:
                s.title, s.title_kind = found, "summary"
                break


def read_project(folder: ProjectFiles) -> list[Transcript]:
    """Every session of one project folder, titles resolved across its files."""
    agents = agents_by_session(folder.flat_agents)
    transcripts = [read_transcript(p, flat_agents=agents) for p in folder.sessions]
    apply_summaries(transcripts)
    return transcripts
