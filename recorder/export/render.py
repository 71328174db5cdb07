"""One way to turn a record into text: who, where, what.

`record_text` is the one-line form (lists, search); `view` the transcript form
(the text plus the rest of the payload as pretty JSON). Both take the message
text from the same keys of the payload. Escaping for a terminal or a document
is the caller's (`clean` here, `tui.text.safe_text` in the TUI).

Rendering never fails on a stored record: a value nested deeper than orjson can
write (255 levels; a frame may hold up to about 1,020) is shown as the raw text it
was stored as, marked `TOO_DEEP` (`json_text`, the one place that falls back).
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from recorder.store.reader import KIND_BAD_LINE, Record
from recorder.store.records import frame_value

TEXT_KEYS = ("text", "content", "message", "body")
_TEXT_KEYS = TEXT_KEYS
# Payload keys a transcript leaves out beside a message's text (the envelope, addressing).
_QUIET = frozenset(("_persist", "from", "sender", "agent", "to", "type"))
_ENVELOPE_ONLY = frozenset(("_persist",))
TOO_DEEP = "(shown as text: nested too deep to render)"
_dumps = orjson.dumps


# -- JSON for display, with the one fallback --------------------------------------------
def json_text(value: Any, raw: Callable[[], bytes], *, indent: bool = False) -> str:
    """`value` as JSON text; when it cannot be written (nested too deep), the raw
    bytes it was read from as text, marked `TOO_DEEP`. Never raises."""
    written = json_or_none(value, indent=indent)
    if written is not None:
        return written.decode()
    text = raw().decode("utf-8", "replace").rstrip("\n")
    return f"{TOO_DEEP}{chr(10) if indent else ' '}{text}"


def json_or_none(value: Any, *, indent: bool = False) -> bytes | None:
    """`value` as orjson writes it (UTF-8, every control character escaped), or
    None when it is nested too deep to write."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else None)
    except TypeError:  # orjson.JSONEncodeError: "Recursion limit reached"
        return None


def payload_bytes(rec: Record) -> bytes:
    """The original bytes of a message's last frame (its payload), else the whole line."""
    frames = rec.frames
    return frames[-1] if frames else rec.line


def stored_payload(rec: Record) -> bytes | None:
    """The stored bytes of a message's last frame when it is JSON kept as sent (a
    spliced frame: `{"json": ...}` with its span, the span where the frames end, as
    the recorder writes it), else None."""
    data = rec.data
    if data is None:
        return None
    try:
        if "json" not in data["frames"][-1]:
            return None
        start, length = data["spans"][-1]
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    line = rec.line
    if (
        type(start) is not int
        or type(length) is not int
        or start + length != _LAST_SPAN_END
        or line[start - 8 : start] != b'{"json":'
    ):
        return None  # not as the recorder writes it (a line made by hand)
    return line[start:_LAST_SPAN_END]


_LAST_SPAN_END = -4  # a last frame's JSON is followed by `}]}` and the newline


# -- JSON as stored: numbers and repeated keys as sent ------------------------------------
class _Number(str):
    """A number's text as it was sent (`10.50`, `1E2`, `123456789012345678901234567890`)."""


class _Pairs(list[tuple[str, Any]]):
    """An object's members in order, a repeated key each time it was sent."""


def stored_json(
    rec: Record, value: Any, *, indent: bool = False, drop: tuple[str, str] = ("", "")
) -> str | None:
    """`value`, the JSON of `rec`'s last frame (parsed as the line holds it), written as
    `json_or_none` would, but from the frame's stored bytes: its numbers as sent (orjson
    reads an integer past 64 bits as a float, and writes `10.50` as `10.5`, `1E2` as
    `100.0`, `-0` as `0`) and a repeated key each time (orjson keeps the last); strings
    as orjson writes them. `drop`: a top-level key left out wherever it is, and one left
    out where it is last (the member orjson read). None where orjson's writing is
    already the frame's (its bytes are what orjson writes of `value`: most frames;
    one comparison, no copy), where the frame is not `value` (a line made by hand), and
    where orjson cannot write `value` (nested too deep: `json_text` shows the stored
    text, marked `TOO_DEEP`)."""
    try:
        written = orjson.dumps(value)
    except TypeError:
        return None
    try:
        start, length = rec.data["spans"][-1]  # type: ignore[index]
        line = rec.line
        if len(written) == length and line.startswith(written, len(line) + start):
            return None  # orjson's own output: nothing it would change
    except (KeyError, IndexError, TypeError, ValueError):  # no spans as the recorder writes
        pass
    raw = stored_payload(rec)
    if raw is None:
        return None
    try:
        if orjson.loads(raw) != value:
            return None
        tree = json.loads(raw, object_pairs_hook=_Pairs, parse_float=_Number, parse_int=_Number)
        if type(tree) is _Pairs and (drop[0] or drop[1]):
            always, last = drop
            at = max((n for n, (k, _) in enumerate(tree) if k == last), default=-1)
            tree = _Pairs(m for n, m in enumerate(tree) if m[0] != always and n != at)
        out: list[str] = []
        _write_json(tree, out, "\n" if indent else "")
        return "".join(out)
    except (ValueError, RecursionError, TypeError):  # JSONDecodeError is a ValueError
        return None


_JSON_WORDS = {True: "true", False: "false"}


def _write_json(value: Any, out: list[str], newline: str) -> None:
    """`value` (read by `stored_json`) as orjson writes JSON: compact, or indented by
    two spaces a level when `newline` is "\n" (then followed by the indentation)."""
    kind = type(value)
    if kind is _Number:
        out.append(value)
    elif kind is str:
        out.append(orjson.dumps(value).decode())
    elif kind is _Pairs or kind is list:
        if not value:
            out.append("{}" if kind is _Pairs else "[]")
            return
        inner = newline + "  " if newline else ""
        out.append("{" if kind is _Pairs else "[")
        sep = ": " if newline else ":"
        for n, item in enumerate(value):
            out.append(inner if n == 0 else "," + inner)
            if kind is _Pairs:
                key, item = item
                out.append(orjson.dumps(key).decode() + sep)
            _write_json(item, out, inner)
        out.append(newline + ("}" if kind is _Pairs else "]"))
    elif value is None:
        out.append("null")
    else:
        out.append(_JSON_WORDS[value])


# -- every frame, as sent ---------------------------------------------------------------
MAX_FRAMES_TEXT = 2000  # characters of a multi-frame message's one-line form


def _frame_text(encoded: dict[str, Any], raw: bytes) -> str:
    """One frame as text: its stored bytes for JSON (exact: duplicate keys, big
    integers), the text itself, or a size for binary data."""
    if "json" in encoded:
        value = encoded["json"]
        text = _payload_text(value) if isinstance(value, dict) else None
        return text if text is not None else raw.decode("utf-8", "replace")
    if "text" in encoded:
        return str(encoded["text"])
    return f"<{len(raw):,} bytes>"


def frames_text(rec: Record, limit: int | None = MAX_FRAMES_TEXT) -> str | None:
    """A message of several payload frames (after the topic frame) on one line, every
    frame in turn (` │ ` between; the frames after the first `limit` characters named
    by their count, none left out when `limit` is None); None for one payload frame."""
    encoded = (rec.data or {}).get("frames") or ()
    if len(encoded) <= 2:
        return None
    raws = rec.frames
    out: list[str] = []
    length = 0
    for n, (enc, raw) in enumerate(zip(encoded[1:], raws[1:], strict=False)):
        if limit is not None and length > limit:
            out.append(f"… +{len(encoded) - 1 - n:,} more frames")
            break
        piece = _frame_text(enc, raw)
        out.append(piece)
        length += len(piece) + 3
    return " │ ".join(out)


def frames_body(rec: Record) -> str | None:
    """Every payload frame of a multi-frame message, one after another, as sent
    (for transcripts); None for one payload frame."""
    encoded = (rec.data or {}).get("frames") or ()
    if len(encoded) <= 2:
        return None
    parts = []
    for n, (enc, raw) in enumerate(zip(encoded[1:], rec.frames[1:], strict=False), 1):
        kind = "json" if "json" in enc else "text" if "text" in enc else "binary"
        shown = raw.decode("utf-8", "replace") if kind != "binary" else raw[:64].hex(" ", 4)
        more = f" … ({len(raw) - 64:,} more bytes)" if kind == "binary" and len(raw) > 64 else ""
        parts.append(f"// frame {n} ({kind}, {len(raw):,} bytes)\n{shown}{more}")
    return "\n".join(parts)


# -- how a record reads -----------------------------------------------------------------
class _Escapes(dict[int, str]):
    """`str.translate` table: a character as `clean` shows it, filled on first sight.

    Printable characters and spaces (Zs) map to themselves, a tab to four spaces,
    anything else (control, format/bidi, line and paragraph separators, surrogates,
    private use, unassigned) to a visible `\\xNN` or `\\uNNNN` escape. At most
    `_ESCAPES_KEPT` characters are remembered, so hostile text cannot grow it without
    bound (the rest are worked out again each time)."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        if ch.isprintable() or unicodedata.category(ch) == "Zs":
            out = ch
        elif ch == "\t":
            out = "    "
        else:
            out = f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
        if len(self) < _ESCAPES_KEPT:
            self[code] = out
        return out


_ESCAPES_KEPT = 1 << 16
_ASCII_SHOWN = bytes(range(0x20, 0x7F))  # printable ASCII: `bytes.translate` deletes these
_ASCII_SHOWN_NL = _ASCII_SHOWN + b"\n"


def plain_bytes(special: str) -> bytes:
    """Printable ASCII and the newline, less `special`: the table `plain_ascii` takes."""
    return _ASCII_SHOWN_NL.translate(None, special.encode("ascii"))


def plain_ascii(text: str, plain: bytes) -> bool:
    """Whether `text` is ASCII made only of the bytes in `plain` (one `bytes.translate`
    pass, in C, instead of a search per character that would need escaping)."""
    return text.isascii() and not text.encode("ascii").translate(None, plain)


class AsciiEscapes:
    """Escaping `entities` (character, entity; applied in their order) in ASCII text
    as bytes, the common case, where `clean` would change nothing but tabs."""

    def __init__(self, entities: tuple[tuple[bytes, bytes], ...]) -> None:
        self.entities = entities
        chars = b"".join(char for char, _ in entities)
        self.plain = plain_bytes(chars.decode("ascii"))  # what stays as it is
        self.fixed = b"\t" + chars  # what this changes; anything else needs `clean`

    def apply(self, text: str) -> bytes | None:
        """`text` as bytes with each tab four spaces (as `clean` makes it) and the
        entities in, when it is ASCII that needs nothing else (no escape); else None.
        One `translate` finds what is there, then one `replace` per character found."""
        if not text.isascii():
            return None
        raw = text.encode("ascii")
        found = raw.translate(None, self.plain)
        if not found:
            return raw
        if found.translate(None, self.fixed):
            return None  # something `clean` shows as an escape
        # `find`, not `in`, on bytes here and in the writers' hot paths: bytes `in`
        # first tries its operand as an integer and clears the TypeError, about 80 ns
        # more a test (CPython 3.11)
        has = found.find
        if has(b"\t") >= 0:
            raw = raw.replace(b"\t", b"    ")
        for char, entity in self.entities:
            if has(char) >= 0:
                raw = raw.replace(char, entity)
        return raw


_ESCAPES = _Escapes()


def clean(text: str, *, newlines: bool = True) -> str:
    """Control, format (bidi) and unassigned characters as visible escapes.

    Vectorised: ASCII text (most) is tested in one `bytes.translate` pass that
    leaves only what is not printable; other text, whole lines with
    `str.isprintable`, and only lines that fail it go through `str.translate` (one
    table lookup per character, in C); a tab becomes four spaces, newlines stay when
    `newlines` (else `\\x0a`).
    """
    if text.isascii():  # O(1): most text; one bytes pass (3x `isprintable`'s speed)
        odd = text.encode("ascii").translate(None, _ASCII_SHOWN_NL if newlines else _ASCII_SHOWN)
        if not odd:
            return text
        if not odd.replace(b"\t", b""):
            return text.replace("\t", "    ")
    elif text.isprintable():
        return text
    if "\t" in text:
        text = text.replace("\t", "    ")
    if not newlines or "\n" not in text:
        return text if text.isprintable() else text.translate(_ESCAPES)
    if text.replace("\n", " ").isprintable():
        return text
    lines = text.split("\n")
    return "\n".join(line if line.isprintable() else line.translate(_ESCAPES) for line in lines)


def fit_cells(text: str, width: int) -> str:
    """`text` cut and padded to `width` terminal cells, for a column of plain output:
    a CJK character or most emoji take two cells, a combining mark none, so a count of
    characters would push the rest of the line right. (The TUI measures with Rich.)"""
    if text.isascii():
        return text[:width].ljust(width)
    out: list[str] = []
    used = 0
    for ch in text:
        cells = _cells(ch)
        if used + cells > width:
            break
        out.append(ch)
        used += cells
    return "".join(out) + " " * (width - used)


def _cells(ch: str) -> int:
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def iso(ts: float | None) -> str:
    """UTC time to the millisecond ("2024-05-14T09:00:12.345Z") exactly as
    `datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")` writes it
    (microseconds rounded half-even, carried into the second, then cut to
    milliseconds), with the text up to the second kept for consecutive records.
    What is not a time datetime can write (not a number, NaN, outside the years 1 to
    9999: a damaged or hand-made record) is "", as a missing time is: a reader never
    fails on a record's time."""
    if type(ts) is not float and type(ts) is not int:
        return ""
    try:
        frac, whole = math.modf(ts)
        us = round(frac * 1e6)
        if us >= 1_000_000:
            us -= 1_000_000
            whole += 1
        elif us < 0:
            us += 1_000_000
            whole -= 1
        return _second_text(int(whole)) + _MILLIS[us // 1000]
    except (OverflowError, ValueError, OSError):
        return ""


_last_minute: list[tuple[int, str]] = [(0, "1970-01-01T00:00:")]  # replaced whole
_SECONDS = tuple(f"{s:02d}" for s in range(60))
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))  # `iso`'s ending, looked up


def _second_text(second: int) -> str:
    """The UTC text of `second` up to the second. Consecutive records mostly share a
    minute (UTC has no leap seconds in datetime), whose text is kept: a record costs a
    table lookup, not a datetime (0.7 µs, a twentieth of a Markdown export)."""
    minute, rest = divmod(second, 60)
    known, text = _last_minute[0]
    if known != minute:
        text = datetime.fromtimestamp(minute * 60, UTC).isoformat()[:17]
        _last_minute[0] = (minute, text)
    return text + _SECONDS[rest]


def iso_second(ts: float | None) -> str:
    """`iso` to the second ("2024-05-14T09:00:12"), cached for consecutive records
    ("" for what is not a time, as `iso`)."""
    if type(ts) is not float and type(ts) is not int:
        return ""
    try:
        return _second_text(int(ts))
    except (OverflowError, ValueError, OSError):
        return ""


@dataclass(slots=True)
class View:
    """A record as people read it: who, where, what."""

    seq: int | None
    ts: float | None
    kind: str
    topic: str
    sender: str
    chain: str
    text: str  # the message text (or a one-line summary for other records)
    body: str | None  # the payload as pretty JSON when it is not just text
    replay_of: Any = None
    payload: Any = None  # a message's last frame as `Record.payload` gives it


def _payload_text(payload: dict[str, Any]) -> str | None:
    """The message text of a JSON object payload (its first text-like string field)."""
    for key in _TEXT_KEYS:
        value = payload.get(key)
        if isinstance(value, str):
            return value
    return None


TOOL_NAME_KEYS = ("tool", "name", "tool_name", "function")
TOOL_ARGS_KEYS = ("args", "arguments", "input", "params", "parameters")
ARGS_CHARS = 400  # characters of a call's arguments on its one line


def _one_line_json(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = str(value)
    return text if len(text) <= ARGS_CHARS else text[:ARGS_CHARS] + "…"


def call_args(value: Any) -> str:
    """`path="api/x.py", lines_added=84` for an object of arguments."""
    if isinstance(value, dict):
        parts = [f"{k}={_one_line_json(v)}" for k, v in value.items()]
        text = ", ".join(parts)
        return text if len(text) <= ARGS_CHARS else text[:ARGS_CHARS] + "…"
    return _one_line_json(value)


def listed_calls(value: Any) -> list[tuple[str | None, str | None]]:
    """(name, arguments on one line) of each call in a `tool_calls` list: an agent
    session's message (`{name, arguments}`) or an OpenAI-style one (`{function: {name,
    arguments}}`)."""
    if not isinstance(value, list):
        return []
    calls = []
    for entry in value:
        if not isinstance(entry, dict):
            continue
        function = entry.get("function")
        source: dict[str, Any] = function if isinstance(function, dict) else entry
        name = next(
            (str(source[k]) for k in TOOL_NAME_KEYS if isinstance(source.get(k), str)), None
        )
        args = next((source[k] for k in TOOL_ARGS_KEYS if k in source), None)
        calls.append((name, call_args(args) if args is not None else None))
    return calls


def calls_line(calls: list[tuple[str | None, str | None]]) -> str:
    """Tool calls on one line, `⚙ name(arguments)` each, as lists and search show a
    message that is only tool calls (the conversation view: one a line)."""
    return ", ".join(
        f"⚙ {name or '?'}" + (f"({args})" if args is not None else "") for name, args in calls
    )


def record_text(rec: Record, *, whole: bool = False) -> str:
    """A one-line rendering of a record's content, for lists and search: a message
    without text that makes tool calls (an agent's) shows them (`calls_line`). A list
    names the frames of a message of several past `MAX_FRAMES_TEXT` characters by their
    count; `whole` gives them all (what search indexes, and shows a window of)."""
    data = rec.data
    if data is None:
        return rec.line.decode("utf-8", "replace").rstrip("\n")
    if data.get("kind") != "msg":
        rest = {k: v for k, v in data.items() if k not in ("v", "seq", "ts", "kind")}
        return json_text(rest, lambda: rec.line)
    multi = frames_text(rec, None if whole else MAX_FRAMES_TEXT)
    if multi is not None:
        return multi
    value = rec.payload
    if isinstance(value, dict):
        text = _payload_text(value)
        if not text:
            calls = listed_calls(value.get("tool_calls"))
            if calls:
                return calls_line(calls)
        if text is not None:
            return text
        if "_persist" in value:  # our envelope (written by orjson): leave it out
            exact = stored_json(rec, value, drop=("_persist", ""))
            if exact is not None:
                return exact
            rest = {k: v for k, v in value.items() if k != "_persist"}
            return json_text(rest, lambda: payload_bytes(rec))
    if isinstance(value, bytes):
        return f"<{len(value):,} bytes>"
    if isinstance(value, str):
        return value
    return payload_bytes(rec).decode("utf-8", "replace")  # as sent, not re-serialised


MessageRow = tuple[int | None, float | None, str, str, str, str, str | None, Any, Any, Record]
"""A message as the writers take it, in runs (`Writer.messages`): (seq, ts, topic,
sender, chain, text, body, replay_of, payload, record), the fields of its `View` but
`kind`, in their order, and its record. A tuple because one is made for each message
of an export, in about a third of a `View`'s time."""


def view(rec: Record, *, with_body: bool = True) -> View:
    """`rec` as a transcript shows it; `with_body=False` leaves `body` None (for a
    writer that shows the payload its own way)."""
    data = rec.data
    if data is None:
        raw = rec.line.decode("utf-8", "replace").rstrip("\n")
        return View(None, None, KIND_BAD_LINE, "", "", "", raw[:500], None)
    # A parsed line's `kind` is a string, `seq` an integer or null, `ts` a number or
    # null, `topic` a string or absent, `meta` an object or absent (`parse_line`).
    get = data.get
    kind = data["kind"]
    if kind != "msg":
        rest = {k: v for k, v in data.items() if k not in ("v", "seq", "ts", "kind")}
        text = str(rest.get("detail") or "") or json_text(rest, lambda: rec.line)
        return View(get("seq"), get("ts"), kind, "", "", "", text, None)
    row = message_row(rec, data, with_body=with_body)
    if row is None:
        row = _other_message_row(rec, data, with_body)
    seq, ts, topic, sender, chain, text, body, replay_of, payload, _rec = row
    return View(seq, ts, "msg", topic, sender, chain, text, body, replay_of, payload)


def view_row(rec: Record, v: View) -> MessageRow:
    """The `MessageRow` of a message's view."""
    return (v.seq, v.ts, v.topic, v.sender, v.chain, v.text, v.body, v.replay_of, v.payload, rec)


def message_row(rec: Record, data: dict[str, Any], *, with_body: bool = True) -> MessageRow | None:
    """`view` of a message (`data`: its parsed line) whose one payload frame is a JSON
    object, as nearly every message is, as a `MessageRow`; None for any other message
    (several frames, text, binary data, another JSON value), which `view` shows its
    own way."""
    get = data.get
    frames = get("frames")
    if not frames or len(frames) > 2:
        return None
    payload = frames[-1].get("json")
    if type(payload) is not dict:
        return None
    text, body = "", None
    text_key = ""
    for key in _TEXT_KEYS:  # `_payload_text`, inline: once per message
        value = payload.get(key)
        if isinstance(value, str):
            text, text_key = value, key
            break
    if with_body:
        quiet = _QUIET if text else _ENVELOPE_ONLY
        for k, v in payload.items():
            if k not in quiet and v is not text:
                # as stored, where orjson would write its numbers or repeated keys
                # otherwise (`stored_json`, whose first test is here, inline: its
                # bytes are what orjson writes, as nearly always): the envelope and the
                # text's member (its last) left out
                try:
                    start, length = data["spans"][-1]
                    same = _dumps(payload)
                    line = rec.line
                    if len(same) != length or not line.startswith(same, len(line) + start):
                        body = stored_json(rec, payload, indent=True, drop=("_persist", text_key))
                except (TypeError, IndexError, ValueError, KeyError):  # too deep, no spans
                    body = stored_json(rec, payload, indent=True, drop=("_persist", text_key))
                if body is None:
                    rest = {k: v for k, v in payload.items() if k != "_persist" and v is not text}
                    written = json_or_none(rest, indent=True)  # `json_text`, usual case inline
                    body = written.decode() if written is not None else _raw_json(rest, rec)
                break
    return _message_row(rec, data, text, body, payload)


def _other_message_row(rec: Record, data: dict[str, Any], with_body: bool) -> MessageRow:
    """`view` of a message that `message_row` leaves out."""
    frames = data.get("frames") or ()
    payload = frame_value(frames[-1]) if frames else None
    text, body = "", None
    if len(frames) > 2:  # several payload frames
        text = frames_text(rec) or ""
        body = frames_body(rec) if with_body else None
    elif isinstance(payload, bytes):
        text = f"<{len(payload)} bytes of binary data>"
    elif isinstance(payload, str):
        text = payload
    elif with_body:
        body = stored_json(rec, payload, indent=True) or json_text(
            payload, lambda: payload_bytes(rec), indent=True
        )
    return _message_row(rec, data, text, body, payload)


def _raw_json(value: Any, rec: Record) -> str:
    """`json_text` of a value of `rec`'s payload that orjson cannot write."""
    return json_text(value, lambda: payload_bytes(rec), indent=True)


def _message_row(
    rec: Record, data: dict[str, Any], text: str, body: str | None, payload: Any
) -> MessageRow:
    """A message's row. (A parsed line's `seq` is an integer or null, `ts` a number
    or null, `topic` a string or absent, `meta` an object or absent: `parse_line`.)"""
    get = data.get
    meta = get("meta") or {}
    sender, chain = meta.get("sender"), meta.get("chain")
    return (
        get("seq"),
        get("ts"),
        get("topic") or "",
        sender if type(sender) is str else str(sender or ""),
        chain if type(chain) is str else str(chain or ""),
        text,
        body,
        meta.get("replay_of"),
        payload,
        rec,
    )


def gap_sentence(data: dict[str, Any]) -> str:
    cause = data.get("cause") or "unknown cause"
    who = data.get("agent") or data.get("publisher")
    missed = data.get("missed")
    parts = [f"gap ({cause})"]
    if missed:
        parts.append(f"{missed} message{'s' if missed != 1 else ''} lost")
    if who:
        parts.append(f"from {who}")
    if data.get("from_seq") is not None:
        parts.append(f"publisher seq {data.get('from_seq')} to {data.get('to_seq')}")
    if data.get("from_journal_seq") is not None:
        parts.append(f"journal seq {data.get('from_journal_seq')} to {data.get('to_journal_seq')}")
    if data.get("from_ts") is not None:
        parts.append(f"{iso(data.get('from_ts'))} → {iso(data.get('to_ts'))}")
    if data.get("detail"):
        parts.append(str(data["detail"]))
    return ", ".join(parts)
