"""Gemini CLI chats: `<root>/tmp/<projectId>/chats/session-<time>-<id8>.json[l]`.

Before v0.39 a session is one JSON document rewritten on every update; from v0.39 it is
JSONL: a metadata line, message records (the last line for an `id` wins, keeping its
first position), `{"$set": {...}}` updates (`$set.messages` replaces the whole list) and
`{"$rewindTo": id}` (drops that message and all after it). A resumed legacy file leaves
the old `.json` beside the new `.jsonl`: the later `lastUpdated` wins. Project folders
are sha256(root) before v0.29 and a slug after; the project path comes from
`.project_root`, then `projects.json`. A sub-agent's session is in
`chats/<parent session id>/<its id>.jsonl` (`kind: "subagent"`), which Gemini CLI's
cleanup deletes with its parent: it is part of the parent session (its `extra_paths`),
listed on its own only when the parent has no file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from recorder.sources.jsonl import (
    as_list,
    estimate_tokens,
    is_regular,
    iter_objects,
    loads_exact,
    loads_repaired,
    parse_time,
    read_bytes,
    read_small,
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

EDIT_TOOLS = {"write_file": "file_path", "replace": "file_path", "edit": "file_path"}
_IGNORED_PROMPTS = ("<session_context>", "<hook_context>")


def default_root() -> Path:
    home = os.environ.get("GEMINI_CLI_HOME")
    return (Path(home).expanduser() if home else Path.home()) / ".gemini"


@dataclass
class GeminiProject:
    folder: Path
    project_path: str  # "" when neither .project_root nor projects.json names it
    chats: list[Path] = field(default_factory=list)
    error: str = ""  # its `chats/` could not be listed: its sessions are unknown
    # `chats/<parent session id>/` folder name -> the sub-agents' session files in it
    nested: dict[str, list[Path]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # such folders that cannot be listed
    _by_short: dict[str, list[str]] | None = field(default=None, repr=False)

    def nested_of(self, chat: Path) -> list[Path]:
        """The sub-agent files that may be the session `chat`'s: those in the folders
        named by an id that its file name's short id begins (every folder's for a file
        not named as Gemini CLI names one). Which are is known once it is read
        (`subagent_files`); these are what its scan cache entry must watch."""
        short = _short_id(chat.name)
        return [p for name in self._named(short) for p in self.nested[name]]

    def orphans(self) -> dict[str, list[Path]]:
        """The sub-agent folders no session file of the project is named for: their
        sessions' files are gone (a parent named otherwise is found when it is read)."""
        claimed: set[str] = set()
        for chat in self.chats:
            short = _short_id(chat.name)
            if short is not None:
                claimed.update(self._named(short))
        return {name: files for name, files in self.nested.items() if name not in claimed}

    def _named(self, short: str | None) -> list[str]:
        """The sub-agent folders whose name begins with `short` (None: all of them)."""
        if short is None:
            return list(self.nested)
        if len(short) == _SHORT:  # the usual case: found by its first characters
            if self._by_short is None:
                self._by_short = {}
                for name in self.nested:
                    self._by_short.setdefault(name[:_SHORT], []).append(name)
            return self._by_short.get(short, [])
        return [name for name in self.nested if name.startswith(short)]


_SHORT = 8  # the characters of a session id in its file's name
_CHAT_NAME = re.compile(r"\Asession-\d{4}-\d\d-\d\dT\d\d-\d\d-(.+)\.jsonl?\Z")
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def _short_id(name: str) -> str | None:
    """The short id in a session file's name (`session-<time>-<first 8 of the id>`)."""
    found = _CHAT_NAME.match(name)
    return found.group(1) if found else None


def safe_name(session_id: str) -> str:
    """A session id as Gemini CLI names a file or folder by it (`sanitizeFilenamePart`)."""
    return _UNSAFE.sub("_", session_id)


def _session_files(folder: str) -> list[Path]:
    """The regular `.json`/`.jsonl` files in a folder of sub-agent sessions (as Gemini
    CLI's cleanup takes them), by name; OSError when it cannot be listed."""
    with os.scandir(folder) as entries:
        return sorted(
            Path(e.path) for e in entries if e.name.endswith((".json", ".jsonl")) and is_regular(e)
        )


def subagent_files(chat: Path, session_id: str) -> list[Path]:
    """The sub-agent sessions of session `session_id`, whose file is `chat`:
    `<chats>/<its id>/*.json[l]` ([] when there are none, they cannot be listed, or
    the folder is a link: as `projects` finds them)."""
    folder = chat.parent / safe_name(session_id)
    try:
        return [] if folder.is_symlink() else _session_files(str(folder))
    except OSError:
        return []


def _project_paths(root: Path) -> dict[str, str]:
    """folder name -> absolute project path, from projects.json (slug folders)."""
    raw = read_small(root / "projects.json")
    try:
        data = orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        return {}
    found: dict[str, str] = {}
    projects = data.get("projects") if isinstance(data, dict) else None
    if isinstance(projects, dict):
        for path, slug in projects.items():
            if isinstance(slug, str) and isinstance(path, str):
                found[slug] = path
                found[hashlib.sha256(path.encode()).hexdigest()] = path
    return found


def _here_hashed() -> dict[str, str]:
    """sha256 of the working folder and each folder above it -> that path: Gemini CLI
    before 0.29 named a project's folder by the hash of its path alone, and a hash
    names nothing unless a path that gives it is tried (`projects.json` comes later).
    The folder an agent is launched in, or `persist sessions` is run in, is the likely
    one."""
    try:
        here = Path.cwd()
    except OSError:
        return {}
    return {hashlib.sha256(str(p).encode()).hexdigest(): str(p) for p in (here, *here.parents)}


def projects(root: Path) -> Iterator[GeminiProject]:
    try:
        folders = sorted(os.scandir(root / "tmp"), key=lambda e: e.name)
    except OSError:
        return
    known = _here_hashed() | _project_paths(root)
    for folder in folders:
        try:
            chats = sorted(os.scandir(os.path.join(folder.path, "chats")), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            continue  # a project folder without sessions (or not a folder)
        except OSError as exc:
            where = os.path.join(folder.path, "chats")
            error = f"{where} cannot be read ({exc.strerror}): its sessions are not listed"
            yield GeminiProject(Path(folder.path), "", error=error)
            continue
        path = known.get(folder.name, "")
        raw = read_small(Path(folder.path, ".project_root"), 1 << 16)
        try:
            marker = raw.decode("utf-8").strip() if raw is not None else ""
            path = marker or path
        except UnicodeDecodeError:
            pass
        found = GeminiProject(Path(folder.path), path)
        for entry in chats:
            name = entry.name
            chat = name.startswith("session-") and name.endswith((".json", ".jsonl"))
            if chat and is_regular(entry):
                found.chats.append(Path(entry.path))
            elif _is_folder(entry):  # `<parent session id>/`: its sub-agents' sessions
                try:
                    files = _session_files(entry.path)
                except OSError as exc:
                    found.problems.append(
                        f"{entry.path} cannot be read ({exc.strerror}): "
                        "its sub-agent sessions are not listed"
                    )
                    continue
                if files:
                    found.nested[name] = files
        yield found


def _is_folder(entry: os.DirEntry[str]) -> bool:
    """A real folder (a link to one is not followed)."""
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


_HEAD_FIELD = re.compile(
    r'"(sessionId|projectHash|startTime|lastUpdated)"\s*:\s*("(?:[^"\\]|\\.)*")'
)
_MESSAGES = re.compile(r'"messages"\s*:\s*\[')


def _salvaged(data: bytes) -> dict[str, Any] | None:
    """What a legacy session document cut short still holds (Gemini CLI rewrote the
    whole file on every change: a crash meanwhile leaves the start of it): the fields
    before `messages` and every whole message up to the cut. None when not even the
    session's id is there."""
    text = data.decode("utf-8", "replace")
    at = _MESSAGES.search(text)
    if at is None:
        return None
    doc: dict[str, Any] = {}
    for key, value in _HEAD_FIELD.findall(text[: at.start()]):
        try:
            doc[key] = json.loads(value)
        except ValueError:  # a control character in the string: not a field to trust
            continue
    if not isinstance(doc.get("sessionId"), str):
        return None
    decoder = json.JSONDecoder()
    messages: list[Any] = []
    pos, end = at.end(), len(text)
    while True:
        while pos < end and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= end or text[pos] == "]":
            break
        try:
            value, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):
            break  # the cut
        messages.append(value)
    doc["messages"] = messages
    return doc


# What Gemini CLI's `String.prototype.trim` takes off (JavaScript's white space and
# line terminators; Python's `str.strip()` differs: U+FEFF, U+001C-U+001F)
_JS_SPACE = (
    "\t\n\v\f\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)


class _JsError(Exception):
    """Where Gemini CLI's JavaScript would throw (`null.name`): that record is skipped."""


def _part_string(value: Any) -> str:
    """Gemini CLI's `partListUnionToString` (`partToString`, verbose)."""
    if not _truthy(value):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(_part_string(p) for p in value)
    if not isinstance(value, dict):
        return ""
    for key, shown in (
        ("videoMetadata", "[Video Metadata]"),
        ("thought", None),
        ("codeExecutionResult", "[Code Execution Result]"),
        ("executableCode", "[Executable Code]"),
        ("fileData", "[File Data]"),
        ("functionCall", None),
        ("functionResponse", None),
        ("inlineData", None),
    ):
        if key not in value:
            continue
        if shown is not None:
            return shown
        if key == "thought":
            return f"[Thought: {value[key]}]"
        if not isinstance(value[key], dict):
            if value[key] is None:
                raise _JsError(key)
            return f"[{key}: ]"
        return f"[{key}: {value[key].get('name')}]"
    text = value.get("text")
    return "" if text is None else str(text)


def _truthy(value: Any) -> bool:
    """JavaScript's truthiness of a JSON value (`[]` and `{}` are true there)."""
    if isinstance(value, (list, dict)):  # a tuple: faster than list | dict
        return True
    return bool(value)


_SAID = re.compile(f"[^{_JS_SPACE}]")


def _lead(text: str) -> str:
    """The start of `text` once trimmed, as JavaScript trims ("" when nothing is left);
    a long text is not copied."""
    found = _SAID.search(text)
    return "" if found is None else text[found.start() : found.start() + 32]


def _resumable(message: dict[str, Any]) -> bool:
    """Gemini CLI's `isResumableMessageRecord`: a prompt (not empty, not a slash or `?`
    command, not injected `<session_context>`/`<hook_context>`) or an answer (text,
    tool calls or thoughts). Info, warning and error lines are not."""
    content = message.get("content")
    text = _part_string(content) if _truthy(content) else ""
    kind = message.get("type")
    if kind == "user":
        said = _lead(text)
        return bool(said) and not said.startswith(("/", "?", *_IGNORED_PROMPTS))
    if kind == "gemini":
        calls, thoughts = message.get("toolCalls"), message.get("thoughts")
        return (
            bool(_lead(text))
            or (isinstance(calls, list | str) and len(calls) > 0)
            or (isinstance(thoughts, list | str) and len(thoughts) > 0)
        )
    return False


def _js_time(value: Any) -> float | None:
    """`new Date(value)` as epoch seconds (None: an Invalid Date)."""
    if isinstance(value, int | float):  # a bool too: JavaScript's Number(true) is 1
        return float(value) / 1000
    if isinstance(value, str):
        return parse_time(value)
    return None


@dataclass
class AgentView:
    """A chat file as Gemini CLI's own listing reads it (`loadConversationRecord` with
    `metadataOnly`, then `getAllSessionFiles`): whether it is a session to it at all,
    and the `lastUpdated` its cleanup ages it by. Its startup cleanup deletes, whatever
    their age, the files it cannot take for a session (`drop` says why)."""

    meta: dict[str, Any] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    # message id -> its last record (whether it can be resumed is asked at the end, of
    # the ones left, until one can: the first prompt, mostly)
    kinds: dict[str, dict[str, Any]] = field(default_factory=dict)

    def feed(self, record: Any) -> None:
        """One line's value, as the loop of `loadConversationRecord` takes it."""
        if not isinstance(record, dict):
            return
        # "ignore parse errors on individual lines": a throw while reading one is one too
        with contextlib.suppress(_JsError):
            self._feed(record)

    def _add(self, messages: list[Any]) -> None:
        for m in messages:
            if isinstance(m, dict) and isinstance(m.get("id"), str):
                self.ids.append(m["id"])
                self.kinds[m["id"]] = m

    def _resumable(self) -> bool:
        """`hasResumableContent` (a record JavaScript throws on, `null` for a
        `functionCall` part, counts as none)."""
        for m in self.kinds.values():
            try:
                if _resumable(m):
                    return True
            except _JsError:
                continue
        return False

    def _feed(self, record: dict[str, Any]) -> None:
        if isinstance(record.get("$rewindTo"), str):
            target = record["$rewindTo"]
            if target in self.ids:
                cut = self.ids.index(target)
                for mid in self.ids[cut:]:
                    self.kinds.pop(mid, None)
                del self.ids[cut:]
            else:
                self.ids.clear()
                self.kinds.clear()
        elif isinstance(record.get("id"), str):
            self._add([record])
        elif isinstance(record.get("$set"), dict | list):
            update = record["$set"]
            if isinstance(update, dict) and isinstance(update.get("messages"), list):
                self.ids.clear()
                self.kinds.clear()
                self._add(update["messages"])
            if isinstance(update, dict):
                self.meta.update(update)
        elif isinstance(record.get("sessionId"), str) and isinstance(
            record.get("projectHash"), str
        ):
            self.meta.update(record)
            if isinstance(record.get("messages"), list):
                self._add(record["messages"])

    def verdict(
        self, whole: Callable[[], Any], mtime: float, unread: str = ""
    ) -> tuple[str, float | None]:
        """(why Gemini CLI takes this file for no session, "" when it does; the time
        its cleanup ages it by, None for "now": a JSONL file naming no `lastUpdated`
        is as new as the listing). `whole`: the file as one JSON document, raising
        ValueError when it is not one (the legacy fallback)."""
        if unread:
            return f"Gemini CLI cannot read it ({unread})", None
        if _truthy(self.meta.get("sessionId")) and _truthy(self.meta.get("projectHash")):
            record = self.meta
            resumable = self._resumable()
            updated = (
                _js_time(record["lastUpdated"]) if _truthy(record.get("lastUpdated")) else None
            )
        else:  # parseLegacyRecordFallback: the whole file as one JSON document
            try:
                doc = whole()
            except (ValueError, RecursionError):
                doc = None
            if not isinstance(doc, dict) or "sessionId" not in doc:
                return (
                    "not a session Gemini CLI can read (not JSON lines, not a JSON document)",
                    None,
                )
            record = doc
            try:
                resumable = _legacy_resumable(doc.get("messages"))
            except _JsError:
                return "not a session Gemini CLI can read (its messages are not a list)", None
            stamp = next(
                (record[k] for k in ("lastUpdated", "startTime") if _truthy(record.get(k))),
                None,
            )
            updated = mtime if stamp is None else _js_time(stamp)
        if not _truthy(record.get("sessionId")):
            return "no sessionId", None
        if not resumable:
            return NOTHING_TO_RESUME, updated
        if record.get("kind") == "subagent":
            return 'a sub-agent\'s chat (kind "subagent"), never resumed', updated
        return "", updated


NOTHING_TO_RESUME = (
    "no prompt or answer to resume (only info, warning or error lines, commands or "
    "injected context)"
)


def _legacy_resumable(messages: Any) -> bool:
    """`parseLegacyRecordFallback`'s `hasResumableContent`, raising `_JsError` where its
    `messages.find`, `.filter` and `.some` throw (not a list, a null message)."""
    if messages is None:
        return False
    if not isinstance(messages, list) or any(m is None for m in messages):
        raise _JsError("messages")
    for m in messages:  # .find: the first prompt, which may throw on the way
        if isinstance(m, dict) and m.get("type") == "user" and _resumable(m):
            break
    return any(isinstance(m, dict) and _resumable(m) for m in messages)


def load_record(path: Path, report: ReadReport, *, exact: bool = False) -> dict[str, Any]:
    """The ConversationRecord a file holds, by Gemini CLI's own loading rules; `exact`:
    integers beyond 64 bits kept as written (`iter_objects`), for a fork."""
    return _load(path, report, exact=exact)[0]


def _whole(data: bytes) -> Any:
    """`data` as one JSON document, as JavaScript's JSON.parse reads it."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return loads_repaired(data)


_OBJECT_START = re.compile(rb"\n[ \t\r]*\{")  # a line that may be a JSON object


def _is_object_line(data: bytes, pos: int) -> bool:
    start = data.rfind(b"\n", 0, pos) + 1
    end = data.find(b"\n", pos)
    line = data[start : end if end >= 0 else len(data)].strip(b" \t\r")
    return line.startswith(b"{") and line.endswith(b"}")


def _object_lines(data: bytes) -> Iterator[Any]:
    """The lines of `data` that can be a JSON object, parsed (JSON.parse's reading; the
    others can only be skipped by Gemini CLI's line loop): a pretty-printed document's
    lines are not tried one by one. Unless a line that is an object names a
    `"sessionId"`, Gemini CLI reads the file as one document, whatever its lines
    held: none is tried then."""
    at = data.find(b'"sessionId"')
    while at >= 0 and not _is_object_line(data, at):
        at = data.find(b'"sessionId"', at + 1)
    if at < 0:
        return
    first = data.find(b"\n")
    starts = [0] if data[: first if first >= 0 else len(data)].lstrip(b" \t\r")[:1] == b"{" else []
    starts += [m.start() + 1 for m in _OBJECT_START.finditer(data)]
    for start in starts:
        end = data.find(b"\n", start)
        line = data[start : end if end >= 0 else len(data)].strip(b" \t\r")
        if line.endswith(b"}"):
            try:
                yield _whole(line)
            except (ValueError, RecursionError):
                continue


def _load(
    path: Path, report: ReadReport, *, exact: bool = False
) -> tuple[dict[str, Any], tuple[str, float | None]]:
    """`load_record`, and the file as Gemini CLI's listing sees it (`AgentView.verdict`)."""
    data, state = read_bytes(path, report)
    view = AgentView()
    mtime = state.mtime_ns / 1e9
    if path.suffix == ".json":
        for value in _object_lines(data):
            view.feed(value)
        whole: list[Any] = []  # the document, when it parsed whole (not salvaged)
        record = _load_document(path, data, report, exact, whole)
        verdict = view.verdict(lambda: _parsed(whole), mtime, report.unread)
        return record, verdict
    meta: dict[str, Any] = {}
    order: list[str] = []
    messages: dict[str, dict[str, Any]] = {}
    for _, obj in iter_objects(data, report, exact=exact):
        view.feed(obj)
        if "$rewindTo" in obj:
            target = obj["$rewindTo"]
            if isinstance(target, str) and target in messages:
                cut = order.index(target)
                for mid in order[cut:]:
                    messages.pop(mid, None)
                del order[cut:]
        elif isinstance(obj.get("$set"), dict):
            update = obj["$set"]
            if isinstance(update.get("messages"), list):
                order, messages = [], {}
                for m in update["messages"]:
                    if isinstance(m, dict) and isinstance(m.get("id"), str):
                        order.append(m["id"])
                        messages[m["id"]] = m
            meta.update({k: v for k, v in update.items() if k != "messages"})
        elif "sessionId" in obj and "projectHash" in obj and "id" not in obj:
            meta.update(obj)
        elif isinstance(obj.get("id"), str):
            if obj["id"] not in messages:
                order.append(obj["id"])
            messages[obj["id"]] = obj
        else:
            keys = ",".join(sorted(obj)[:3]) or "{}"
            report.unknown_types[keys] = report.unknown_types.get(keys, 0) + 1
    verdict = view.verdict(lambda: _whole(data), mtime, report.unread)
    return {**meta, "messages": [messages[i] for i in order]}, verdict


def _parsed(whole: list[Any]) -> Any:
    if not whole:
        raise ValueError("not one JSON document")
    return whole[0]


def _load_document(
    path: Path, data: bytes, report: ReadReport, exact: bool, whole: list[Any]
) -> dict[str, Any]:
    """A legacy `.json` session: one JSON document (a cut-short one salvaged); `whole`
    gets the document when it parsed whole, as JSON.parse reads it."""
    try:
        doc = loads_exact(data) if exact else orjson.loads(data)
        whole.append(doc)
    except orjson.JSONDecodeError as exc:
        try:
            doc = loads_repaired(data)
            whole.append(doc)
            report.repaired.append(1)
        except (ValueError, RecursionError):
            doc = _salvaged(data)
            if doc is None:
                report.errors.append(f"{path.name} is not a JSON document ({exc})")
                return {}
            n = len(doc["messages"])
            report.errors.append(
                f"{path.name} is cut short ({exc}): the session's first {n} message(s) "
                "read, the rest is lost (Gemini CLI itself cannot load it)"
            )
    if not isinstance(doc, dict):
        report.errors.append(f"{path.name} does not hold a session object")
        return {}
    report.lines += 1
    return doc


def message_of(record: dict[str, Any], sid: str, seq: int) -> SessionMessage | None:
    """One Gemini CLI message record as a `SessionMessage` (None when it is not one)."""
    kind = record.get("type")
    content = record.get("displayContent") or record.get("content")
    ts = parse_time(record.get("timestamp"))
    uuid = str(record.get("id") or "")
    if kind == "user":
        parts = content if isinstance(content, list) else [content]
        if parts and all(isinstance(p, dict) and "functionResponse" in p for p in parts):
            return SessionMessage(Source.GEMINI, sid, seq, uuid, ts, Sender.TOOL, text_of(parts))
        text = text_of(content)
        note = "meta" if text.lstrip().startswith(_IGNORED_PROMPTS) else ""
        return SessionMessage(Source.GEMINI, sid, seq, uuid, ts, Sender.USER, text, note=note)
    if kind == "gemini":
        calls = []
        results = []
        for call in as_list(record.get("toolCalls")):
            if not isinstance(call, dict):
                continue
            args = call.get("args")
            calls.append(
                ToolCall(
                    str(call.get("name") or "?"),
                    args if isinstance(args, dict) else {"args": args},
                    str(call.get("id") or ""),
                )
            )
            if call.get("result") is not None:
                results.append(
                    f"[{call.get('name')}: {call.get('status', '')}] {text_of(call['result'])}"
                )
        thoughts = [
            f"{t.get('subject', '')}: {t.get('description', '')}".strip(": ")
            for t in as_list(record.get("thoughts"))
            if isinstance(t, dict)
        ]
        text = text_of(content)
        if results:
            text = "\n".join([text, *results]).strip()
        return SessionMessage(
            Source.GEMINI,
            sid,
            seq,
            uuid,
            ts,
            Sender.ASSISTANT,
            text,
            tuple(calls),
            "\n".join(thoughts),
        )
    if kind in ("info", "error", "warning"):
        return SessionMessage(
            Source.GEMINI, sid, seq, uuid, ts, Sender.SYSTEM, text_of(content), note=str(kind)
        )
    return None


def _sender_of(record: dict[str, Any]) -> Sender | None:
    """What `message_of` would make of a record, without building its text."""
    kind = record.get("type")
    if kind == "user":
        content = record.get("displayContent") or record.get("content")
        parts = content if isinstance(content, list) else [content]
        if parts and all(isinstance(p, dict) and "functionResponse" in p for p in parts):
            return Sender.TOOL
        return Sender.USER
    if kind == "gemini":
        return Sender.ASSISTANT
    if kind in ("info", "error", "warning"):
        return Sender.SYSTEM
    return None


def _last_usage(raw: list[Any]) -> int:
    for m in reversed(raw):
        usage = m.get("tokens") if isinstance(m, dict) else None
        if isinstance(usage, dict) and isinstance(usage.get("total"), int) and usage["total"]:
            return int(usage["total"])
    return 0


def _listing(
    path: Path,
    project_path: str,
    record: dict[str, Any],
    report: ReadReport,
    parent: str,
    verdict: tuple[str, float | None],
) -> Transcript:
    """`read_transcript(..., listing=True)` when the session records its token usage:
    the same Session from counts, only the first prompt's text built (tool results,
    the bulk of the bytes, are never turned into text)."""
    sid = str(record.get("sessionId") or name_id(path.stem))
    raw = record.get("messages")
    conv = 0
    prompt: str | None = None  # the first user message that is not an injected one
    stamps: list[Any] = []
    files: dict[str, None] = {}
    for m in raw if isinstance(raw, list) else []:
        sender = _sender_of(m) if isinstance(m, dict) else None
        if sender is None:
            kind = str(m.get("type")) if isinstance(m, dict) else "not an object"
            report.unknown_types[kind] = report.unknown_types.get(kind, 0) + 1
            continue
        stamps.append(m.get("timestamp"))
        if sender is Sender.SYSTEM:
            continue
        conv += 1
        if sender is Sender.USER and prompt is None:
            text = text_of(m.get("displayContent") or m.get("content"))
            if not text.lstrip().startswith(_IGNORED_PROMPTS):
                prompt = prompt_title(text)
        elif sender is Sender.ASSISTANT:
            for call in as_list(m.get("toolCalls")):
                if isinstance(call, dict):
                    args = call.get("args")
                    _edit_path(
                        str(call.get("name") or "?"),
                        args if isinstance(args, dict) else {"args": args},
                        files,
                    )
    agents = _sub_agents(path, sid, report, parent, messages=False)
    files.update(agents.files)
    session = _session(
        path,
        project_path,
        record,
        sid,
        conv,
        prompt or "",
        files,
        _last_usage(raw if isinstance(raw, list) else []),
        [t for t in time_span(stamps) if t is not None],  # what `_session` uses of them
        report,
        agents.paths,
        parent,
        verdict,
    )
    return Transcript(session, [], [], report)


@dataclass
class _Agents:
    """What a session's sub-agent files add to it."""

    paths: list[Path] = field(default_factory=list)
    files: dict[str, None] = field(default_factory=dict)  # the files their edits name
    messages: list[SessionMessage] = field(default_factory=list)  # its `sidechain`


def _sub_agents(
    path: Path, sid: str, report: ReadReport, parent: str, *, messages: bool
) -> _Agents:
    """The sub-agent sessions of session `sid` (none for a sub-agent's own file,
    `parent` set): their files, the files their edit tool calls name, and (`messages`)
    their messages, each marked with its sub-agent's id. What cannot be read in them
    is in `report`."""
    found = _Agents()
    if parent:
        return found
    for agent_path in subagent_files(path, sid):
        own = ReadReport()
        record = load_record(agent_path, own)
        report.merge(own)
        found.paths.append(agent_path)
        agent = str(record.get("sessionId") or name_id(agent_path.stem))
        for m in as_list(record.get("messages")):
            if not isinstance(m, dict):
                continue
            if m.get("type") == "gemini":
                for call in as_list(m.get("toolCalls")):
                    if isinstance(call, dict):
                        args = call.get("args")
                        _edit_path(
                            str(call.get("name") or "?"),
                            args if isinstance(args, dict) else {"args": args},
                            found.files,
                        )
            msg = message_of(m, sid, len(found.messages)) if messages else None
            if msg is not None:
                found.messages.append(replace(msg, sidechain=True, agent_id=agent))
    return found


def _edit_path(name: str, arguments: dict[str, Any], files: dict[str, None]) -> None:
    key = EDIT_TOOLS.get(name)
    value = arguments.get(key) if key else None
    if not isinstance(value, str):
        value = arguments.get("absolute_path") if key else None
    if isinstance(value, str) and value:
        files[value] = None


def read_transcript(
    path: Path,
    project_path: str = "",
    *,
    listing: bool = False,
    exact: bool = False,
    parent: str = "",
) -> Transcript:
    """One session in full; `listing`: only its `Session` (the same figures, no
    messages built), unless it records no token usage (then the estimate needs them);
    `exact`: integers beyond 64 bits kept as written (a fork writes them again).

    Its sub-agents' sessions (`subagent_files`) are its `extra_paths`, their edits
    among its files modified, their messages its `sidechain`. `parent`: the file is a
    sub-agent's own, in `chats/<parent>/`, read on its own because its session has no
    file any more: listed under its own id, never resumable."""
    report = ReadReport()
    record, verdict = _load(path, report, exact=exact)
    raw = record.get("messages")
    if listing and _last_usage(raw if isinstance(raw, list) else []):
        return _listing(path, project_path, record, report, parent, verdict)
    sid = str(record.get("sessionId") or name_id(path.stem))
    messages: list[SessionMessage] = []
    kept: list[dict[str, Any]] = []  # the records behind `messages`, one each
    for m in raw if isinstance(raw, list) else []:
        msg = message_of(m, sid, len(messages)) if isinstance(m, dict) else None
        if msg is None:
            kind = str(m.get("type")) if isinstance(m, dict) else "not an object"
            report.unknown_types[kind] = report.unknown_types.get(kind, 0) + 1
        else:
            messages.append(msg)
            kept.append(m)
    conv = [m for m in messages if m.sender is not Sender.SYSTEM]
    prompt = next(
        (prompt_title(m.text) for m in conv if m.sender is Sender.USER and not m.note), ""
    )
    files: dict[str, None] = {}
    for m in messages:
        for c in m.tool_calls:
            _edit_path(c.name, c.arguments, files)
    agents = _sub_agents(path, sid, report, parent, messages=not listing)
    files.update(agents.files)
    tokens = _last_usage(raw if isinstance(raw, list) else [])
    if not tokens:
        tokens = estimate_tokens(sum(len(m.text) for m in messages))
    times = [m.ts for m in messages if m.ts is not None]
    session = _session(
        path,
        project_path,
        record,
        sid,
        len(conv),
        prompt,
        files,
        tokens,
        times,
        report,
        agents.paths,
        parent,
        verdict,
    )
    meta = {k: v for k, v in record.items() if k != "messages"}
    return Transcript(session, messages, agents.messages, report, kept, raw_meta=meta)


def _session(
    path: Path,
    project_path: str,
    record: dict[str, Any],
    sid: str,
    conversation: int,
    prompt: str,
    files: dict[str, None],
    tokens: int,
    times: list[float],
    report: ReadReport,
    extra: list[Path],
    parent: str,
    verdict: tuple[str, float | None] = ("", None),
) -> Session:
    """The Session of a chat, from the full read or the listing's counts (the two must
    agree: tests compare them)."""
    raw = record.get("messages")
    summary = record.get("summary")
    title, kind = (
        (summary, "summary") if isinstance(summary, str) and summary else (prompt, "first-prompt")
    )
    if not title:
        kind = ""
    try:
        st = path.stat()
        size, mtime = st.st_size, st.st_mtime
    except OSError:
        size, mtime = 0, 0.0
    start = parse_time(record.get("startTime"))
    updated = parse_time(record.get("lastUpdated"))
    model = next(
        (
            str(m.get("model"))
            for m in reversed(raw if isinstance(raw, list) else [])
            if isinstance(m, dict) and m.get("model")
        ),
        "",
    )
    return Session(
        source=Source.GEMINI,
        id=sid,
        path=path,
        title=title,
        title_kind=kind,
        project_path=project_path,
        extra_paths=tuple(extra),
        first_ts=start if start is not None else (min(times) if times else None),
        last_ts=max(t for t in (updated, *times) if t is not None) if (times or updated) else None,
        message_count=conversation,
        files_modified=tuple(files),
        context_tokens=tokens,
        model=model,
        first_prompt=prompt,
        size=size,
        mtime=mtime,
        resumable=bool(conversation) and record.get("kind") != "subagent" and not parent,
        skipped=report.skipped,
        subagent=bool(parent),
        parent_id=parent,
        bad_lines=len(report.bad_lines),
        agent_drop=verdict[0],
        agent_time=verdict[1],
    )


def read_project(project: GeminiProject) -> list[Transcript]:
    """Every session of a project; a legacy `.json` and its migrated `.jsonl` (same
    sessionId) count once, the later `lastUpdated` winning, the other kept as extra."""
    best: dict[str, Transcript] = {}
    for path in project.chats:
        t = read_transcript(path, project.project_path)
        sid = t.session.id
        other = best.get(sid)
        if other is None:
            best[sid] = t
            continue
        newer, older = (
            (t, other) if (t.session.last_ts or 0) >= (other.session.last_ts or 0) else (other, t)
        )
        newer.session.extra_paths = (*newer.session.extra_paths, older.session.path)
        best[sid] = newer
    return list(best.values())
