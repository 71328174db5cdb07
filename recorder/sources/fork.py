"""Forking a session at an earlier message: a new session file the agent can resume.

Claude Code: a new `<newId>.jsonl` in the same project folder holding the active chain
up to the chosen message, every line's `sessionId` rewritten and `forkedFrom` added (as
Claude Code's own `/branch` does), parents re-linked where the original chain had a gap,
and a `custom-title` naming it a fork. Gemini CLI: a new session document (the legacy
`.json` shape, which every version reads) with a new `sessionId` in the same `chats/`.
Codex CLI: the rollout's lines up to the chosen message with a new id and
`forked_from_id` in `session_meta`, written where Codex writes a new rollout
(`sessions/YYYY/MM/DD/` of the Codex home, the local date: `codex resume <id>` looks
only under `sessions/`). The original file is never touched; the new file is read
back with our own parser before the resume command is given.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import uuid as uuidlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import orjson

from recorder.errors import PersistError
from recorder.sources import claude, codex, gemini
from recorder.sources.copies import copy_folder, restore_to
from recorder.sources.discover import read_session
from recorder.sources.jsonl import dump_line, iter_objects, json_text, read_bytes
from recorder.sources.listing import SessionRow
from recorder.sources.model import (
    ReadReport,
    Session,
    SessionMessage,
    Source,
    Transcript,
    shell_line,
)
from recorder.store.fsutil import make_private_dirs, open_private
from recorder.store.layout import Layout
from recorder.store.shell import shell_quote


class ForkError(PersistError):
    """A fork cannot be written or does not read back as the chosen conversation."""


@dataclass(frozen=True)
class ForkResult:
    new_id: str
    path: Path
    messages: int  # messages of the fork as our parser reads it back
    at: SessionMessage
    command: str  # what to type to resume the fork
    latest: bool  # the chosen point was the end: nothing written, resume the original
    # what could not be read of the original (its unreadable lines are in no fork)
    report: ReadReport = field(default_factory=ReadReport)


def cannot_read(s: Session) -> str:
    """Why nothing of `s` can be resumed, forked or exported: its file could not be
    read (its messages are unknown, not none)."""
    return f"{s.key}: {s.path} cannot be read ({s.unread}): its messages are unknown"


def not_resumable(s: Session) -> str:
    """Why the agent cannot resume `s` (`s.resumable` false), so neither fork nor
    launch offers it: a sub-agent's conversation, or one with nothing to resume."""
    if s.unread:
        return cannot_read(s)
    export = f"`persist export --session {shell_quote(s.key)}` writes it out"
    if s.subagent:  # Claude: listed on its own when its session's file is gone
        why = (
            f"is a sub-agent's conversation (its session {s.parent_id} has no file any "
            "more): the agent cannot resume a sub-agent"
        )
    elif s.message_count == 0:
        why = "holds no user or assistant message: the agent does not resume it"
    else:  # Gemini: `kind: "subagent"`
        why = (
            "is a sub-agent's session (kind subagent, which Gemini CLI leaves out of its "
            "resume lists): the agent cannot resume a sub-agent"
        )
    return f"{s.key} {why}; {export}"


def resume_fork_reason(s: Session, *, deleted: bool = False) -> str:
    """Why a resumable session resumes only through a fork (`fork` writes one even at
    its last message; the launch menu and the TUI fork it when it is chosen), "" when
    the agent's own resume command resumes it: one only our copy holds (`deleted`), or
    one the agent would not find by its id (`Session.fork_to_resume`)."""
    if deleted:
        return "deleted by the agent: only our copy holds it"
    return s.fork_to_resume


def fork_hint(s: Session, why: str) -> str:
    """`why`, and the command that writes the fork and gives its resume command."""
    return f"{why}; `persist fork {shell_quote(s.key)}` writes a fork and gives its resume command"


def choose(t: Transcript, at: str | None) -> SessionMessage:
    """The message to fork (or export) up to: its seq number, its agent uuid (or a
    unique prefix of it); None = the last message."""
    if not t.messages:
        raise ForkError(f"{t.session.key} holds no messages")
    if at is None:
        return t.messages[-1]
    last = len(t.messages) - 1
    if not at.strip():
        raise ForkError(f"--at needs a message number (0..{last}) or uuid of {t.session.key}")
    # any of a message's lines names it: a streamed answer's first block too, not only
    # the last one (the uuid a child line names as its parent)
    exact = [m for m in t.messages if at == m.uuid or at in m.merged]
    if at.isdigit() and not exact:  # a number is a message number, never a uuid prefix
        if int(at) <= last:
            return t.messages[int(at)]
        raise ForkError(f"{t.session.key} has no message {at} (its messages are 0..{last})")
    found = exact or [m for m in t.messages if any(u.startswith(at) for u in (m.uuid, *m.merged))]
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise ForkError(
            f"{what} message of {t.session.key} matches {at!r} "
            f"(give its number 0..{last} or its uuid)"
        )
    return found[0]


def _write_new(path: Path, lines: list[bytes]) -> None:
    """Create `path` (never replacing anything) with the given lines."""
    fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    with os.fdopen(fd, "wb") as f:
        f.write(b"".join(lines))


def fork(
    t: Transcript,
    at: str | None,
    *,
    target_dir: Path | None = None,
    new_id: str | None = None,
    always: bool = False,
) -> ForkResult:
    """Fork `t` at message `at`. At the last message nothing is written and the original
    is resumed, unless `always` (a session that only survives in our copy) or the agent
    would not find the original by its id (a Claude file not named `<id>.jsonl`: a
    copy under another name, `copie-r\\xe9sum\\xe9.jsonl`).
    `target_dir`: where the new file goes (default: beside the original); a Codex fork
    goes to today's folder under `sessions/` of the Codex home that holds it."""
    s = t.session
    if not s.resumable:
        raise ForkError(not_resumable(s))
    msg = choose(t, at)
    if msg is t.messages[-1] and not always and not s.fork_to_resume:
        return ForkResult(s.id, s.path, len(t.messages), msg, s.resume_shell(), True, t.report)
    folder = target_dir or s.path.parent
    if s.source is not Source.CODEX:  # a Codex fork's folder is its date's (`_fork_codex`)
        make_private_dirs(folder)  # the folders it makes 0700 whatever the umask; others kept
    new_id = new_id or str(uuidlib.uuid4())
    if s.source is Source.CLAUDE:
        path = _fork_claude(t, msg, folder, new_id)
        back = claude.read_transcript(path)
        command = shell_line(s.project_path, ["claude", "--resume", new_id])
    elif s.source is Source.GEMINI:
        path = _fork_gemini(t, msg, folder, new_id)
        back = gemini.read_transcript(path, s.project_path)
        command = shell_line(s.project_path, ["gemini", "--resume", new_id])
    else:
        path = _fork_codex(t, msg, folder, new_id)  # `folder`: in the Codex home
        back = codex.read_transcript(path)
        command = shell_line(s.project_path, ["codex", "resume", new_id])
    _check(back, t, msg, new_id, path)
    return ForkResult(new_id, path, len(back.messages), msg, command, False, t.report)


def _check(back: Transcript, t: Transcript, msg: SessionMessage, new_id: str, path: Path) -> None:
    want = [(m.sender, m.text) for m in t.messages[: msg.seq + 1]]
    got = [(m.sender, m.text) for m in back.messages]
    if back.session.id != new_id or got != want or back.report.skipped:
        raise ForkError(
            f"the fork {path} does not read back as the first {msg.seq + 1} messages "
            f"(read {len(got)}); it was left in place for inspection"
        )


def _too_deep(path: Path, what: str) -> str:
    return (
        f"cannot fork {path}: {what} is nested too deep to be written again "
        "(deeper than JSON writers go); nothing was written"
    )


def _line(obj: dict[str, object], path: Path, what: str) -> bytes:
    """`obj` as a line of the fork (`dump_line`), or a ForkError naming `what`."""
    line = dump_line(obj)
    if line is None:
        raise ForkError(_too_deep(path, what))
    return line


def _fork_claude(t: Transcript, msg: SessionMessage, folder: Path, new_id: str) -> Path:
    cut = next(i for i, e in enumerate(t.raw_chain) if e["uuid"] == msg.uuid)
    chain = t.raw_chain[: cut + 1]
    written: set[str] = set()
    out: list[bytes] = []
    previous: str | None = None
    for e in chain:
        line = dict(e)
        line["sessionId"] = new_id
        line["forkedFrom"] = {"sessionId": t.session.id, "messageUuid": e["uuid"]}
        boundary = line.get("subtype") == "compact_boundary" and line.get("parentUuid") is None
        if boundary:
            if line.get("logicalParentUuid") not in written:
                line["logicalParentUuid"] = previous
        elif line.get("parentUuid") not in written:
            line["parentUuid"] = previous  # the original chain had a gap (a lost line)
        out.append(_line(line, t.session.path, f"the line of message {e['uuid']}"))
        written.add(e["uuid"])
        previous = e["uuid"]
    title = t.session.title or t.session.first_prompt or "session"
    meta = {"type": "custom-title", "customTitle": f"{title} (fork)", "sessionId": new_id}
    out.append(orjson.dumps(meta) + b"\n")
    path = folder / f"{new_id}.jsonl"
    _write_new(path, out)
    return path


def _js_time(ts: float) -> str:
    """`ts` as Gemini CLI writes times, JavaScript's `toISOString()`: UTC to the
    millisecond, `Z` ("2026-03-18T02:37:50.007Z"), whatever the local time zone."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fork_gemini(t: Transcript, msg: SessionMessage, folder: Path, new_id: str) -> Path:
    records = t.raw_chain[: msg.seq + 1]
    now = time.time()
    doc = {
        "sessionId": new_id,
        "projectHash": hashlib.sha256(t.session.project_path.encode()).hexdigest()
        if t.session.project_path
        else t.raw_meta.get("projectHash", ""),
        "startTime": _js_time(t.session.first_ts or now),
        # now: Gemini CLI's cleanup deletes a session whose lastUpdated is older than
        # `sessionRetention.maxAge` (30 days), so a fork of an older session stamped
        # with its last message's time was due for deletion at once
        "lastUpdated": _js_time(now),
        "kind": "main",
        "messages": records,
    }
    try:
        data = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    except TypeError:  # nested deeper than orjson writes, or an integer beyond 64 bits:
        # the stdlib, compact
        text = json_text(doc)
        if text is None:
            raise ForkError(_too_deep(t.session.path, "a message")) from None
        data = text.encode()
    # named as Gemini CLI names a new session: `toISOString().slice(0,16)`, `:` -> `-`
    path = folder / f"session-{_js_time(now)[:16].replace(':', '-')}-{new_id[:8]}.json"
    _write_new(path, [data])
    return path


def _fork_codex(t: Transcript, msg: SessionMessage, folder: Path, new_id: str) -> Path:
    report = ReadReport()
    data, _ = read_bytes(t.session.path, report)
    cut_line = int(msg.uuid.rsplit(":", 1)[1])
    out: list[bytes] = []
    for number, obj in iter_objects(data, report, exact=True):  # big integers as written
        if number > cut_line:
            break
        if obj.get("type") == "session_meta" and isinstance(obj.get("payload"), dict):
            obj["payload"] = {**obj["payload"], "id": new_id, "forked_from_id": t.session.id}
        out.append(_line(obj, t.session.path, f"line {number}"))
    # where and how Codex names a new rollout (`precompute_log_file_info`): the folder
    # of the local date under `sessions/`, the local time in the name
    now = datetime.now()
    dated = codex_home(folder) / "sessions" / now.strftime("%Y/%m/%d")
    make_private_dirs(dated)  # the folders it makes 0700 whatever the umask; others kept
    path = dated / f"rollout-{now.strftime('%Y-%m-%dT%H-%M-%S')}-{new_id}.jsonl"
    _write_new(path, out)
    return path


def codex_home(folder: Path) -> Path:
    """The Codex home a folder of rollouts is in: the parent of the nearest `sessions`
    or `archived_sessions` at or above it (`folder` itself when there is none)."""
    for place in (folder, *folder.parents):
        if place.name in ("sessions", "archived_sessions"):
            return place.parent
    return folder


def fork_row(
    layout: Layout, row: SessionRow, at: str | None, *, new_id: str | None = None
) -> ForkResult:
    """Fork a listed session (see `fork`); one the agent deleted is read from our copy
    and always written back as a new session beside where it was."""
    session = row.session
    if not row.deleted:
        return fork(read_session(session, exact=True), at, new_id=new_id)
    with tempfile.TemporaryDirectory(prefix="persist-fork-") as tmp:
        copy = restore_to(copy_folder(layout, session), Path(tmp))
        transcript = read_session(replace(session, path=copy, extra_paths=()), exact=True)
        return fork(transcript, at, target_dir=session.path.parent, new_id=new_id, always=True)
