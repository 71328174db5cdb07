"""Reading rules: who sent a message the recorder's enrichment could not name, what
kind it is, and its text, found inside the message at display time (no Textual).

Records are never altered: these rules only change how a message reads. Built in:
the Jupyter wire protocol (frames after `<IDS|MSG>`: signature, header, parent,
metadata, content) reads as the session and `header.msg_type`, with the text of
the content (stream text, code, the plain-text result, the error). More rules come
from `<log-dir>/reading.toml`, one `[[rule]]` each, the first that matches wins:

    [[rule]]
    topics = ["sensors.*"]   # fnmatch patterns on the topic (none: every topic)
    sender = "device.id"     # a dotted path into the JSON payload, or "=literal"
    kind = "=reading"
    text = "value.display"
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from recorder.store.reader import Record
from recorder.store.records import decode_frames

RULES_NAME = "reading.toml"
JUPYTER_DELIMITER = b"<IDS|MSG>"
JUPYTER_IDENTITIES = 64
"""Frames before a Jupyter message's delimiter looked through (its routing identities)."""


@dataclass
class Reading:
    sender: str = ""
    kind: str = ""
    text: str | None = None


@dataclass
class Rule:
    topics: list[str] = field(default_factory=list)
    sender: str | None = None
    kind: str | None = None
    text: str | None = None

    def matches(self, topic: str) -> bool:
        return not self.topics or any(fnmatch.fnmatchcase(topic, p) for p in self.topics)


def _at(value: Any, path: str | None) -> str | None:
    """The string at a dotted `path` in `value` ("=x" is the literal x)."""
    if path is None:
        return None
    if path.startswith("="):
        return path[1:]
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def frame_range(rec: Record, start: int, stop: int | None) -> list[bytes]:
    """A message's frames `start:stop` (as a slice), byte for byte, decoding those alone:
    `Record.frames` decodes every one (a million, for a message of a million frames)."""
    encoded = rec.get("frames") or []
    start, stop, _ = slice(start, stop).indices(len(encoded))
    spans = rec.get("spans") or []
    used = sum(1 for frame in encoded[:start] if "json" in frame)  # the spans before `start`
    return decode_frames(rec.line, {"spans": spans[used:], "frames": encoded[start:stop]})


def jupyter(rec: Record) -> Reading | None:
    """A Jupyter message: the session as sender, `msg_type` as kind, the content's text.
    Its delimiter is looked for among the first `JUPYTER_IDENTITIES` frames (the routing
    identities before it are a few), so a message of a million frames is not decoded
    whole for each row that shows it."""
    frames = frame_range(rec, 0, JUPYTER_IDENTITIES + 6)
    try:
        at = frames.index(JUPYTER_DELIMITER, 0, JUPYTER_IDENTITIES + 1)
    except ValueError:
        return None
    if len(frames) < at + 6:
        return None
    header, content = _json(frames[at + 2]), _json(frames[at + 5])
    if not isinstance(header, dict):
        return None
    session = str(header.get("session") or "")
    user = str(header.get("username") or "")
    sender = f"{user}@{session[:8]}" if user and user != "username" else f"jupyter:{session[:8]}"
    kind = str(header.get("msg_type") or "jupyter")
    return Reading(sender, kind, _jupyter_text(kind, content, frames[at + 5]))


def _jupyter_text(kind: str, content: Any, raw: bytes) -> str:
    if isinstance(content, dict):
        if kind == "stream" and isinstance(content.get("text"), str):
            return str(content["text"])
        if kind == "execute_input" and isinstance(content.get("code"), str):
            return str(content["code"])
        data = content.get("data")
        if isinstance(data, dict) and isinstance(data.get("text/plain"), str):
            return str(data["text/plain"])
        if kind == "error":
            return f"{content.get('ename', '')}: {content.get('evalue', '')}"
        if kind == "status" and "execution_state" in content:
            return str(content["execution_state"])
    return raw.decode("utf-8", "replace")


class ReadingRules:
    """The built-in Jupyter reading, then the rules of `reading.toml`."""

    def __init__(self, rules: list[Rule] | None = None, problem: str | None = None) -> None:
        self.rules = rules or []
        self.problem = problem
        """Why `reading.toml` was not used (shown once; the built-in reading still works)."""

    @classmethod
    def load(cls, log_dir: Path) -> ReadingRules:
        path = Path(log_dir) / RULES_NAME
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            return cls(problem=f"{path}: {exc}")
        rules = []
        for n, item in enumerate(data.get("rule") or [], 1):
            if not isinstance(item, dict):
                return cls(problem=f"{path}: rule {n} is not a table")
            unknown = set(item) - {"topics", "sender", "kind", "text"}
            if unknown:
                return cls(problem=f"{path}: rule {n}: unknown key {sorted(unknown)[0]!r}")
            topics = item.get("topics") or []
            if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
                return cls(problem=f"{path}: rule {n}: topics must be a list of strings")
            fields = {k: item.get(k) for k in ("sender", "kind", "text")}
            if any(v is not None and not isinstance(v, str) for v in fields.values()):
                return cls(problem=f"{path}: rule {n}: sender, kind and text are strings")
            rules.append(Rule(list(topics), fields["sender"], fields["kind"], fields["text"]))
        return cls(rules)

    def read(self, rec: Record) -> Reading | None:
        """How `rec` reads, when a rule knows (None: as the recorder enriched it)."""
        if not rec.is_message:
            return None
        if len(rec.get("frames") or ()) > 3:
            found = jupyter(rec)
            if found is not None:
                return found
        topic = rec.topic
        for rule in self.rules:
            if rule.matches(topic):
                payload = rec.payload
                return Reading(
                    _at(payload, rule.sender) or "",
                    _at(payload, rule.kind) or "",
                    _at(payload, rule.text),
                )
        return None
