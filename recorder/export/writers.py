"""Writing a range of the journal (or an agent session's journal-shaped records,
`recorder.export.session`) out: JSONL (lines as stored), Markdown, CSV or HTML.

No zmq, no textual. Every writer streams: records are read in journal order and
written in chunks, so a range of any size needs little memory. Recorded content
is data, never markup: control and bidi characters become visible escapes,
HTML is escaped (and the page forbids scripts), Markdown gets `& < > ]` as
entities outside code (no raw HTML, no links) and code spans and fences longer than
any run of backticks inside them, CSV cells that a spreadsheet would run as a
formula get a leading quote. JSONL is copied in checked blocks (`jsonl_copy`).
(About 800 lines: four writers sharing one pass, and what feeds them.)
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import IO, Any, TypeVar

from recorder.errors import PersistError
from recorder.export.jsonl_copy import copy_jsonl
from recorder.export.markdown_code import code_ranges
from recorder.export.parallel import Parallel, render_parallel, use_parallel
from recorder.export.redact import REDACT_BY_DEFAULT, redacted
from recorder.export.render import (
    AsciiEscapes,
    MessageRow,
    clean,
    frames_text,
    gap_sentence,
    iso,
    iso_second,
    json_or_none,
    json_text,
    message_row,
    payload_bytes,
    plain_ascii,
    plain_bytes,
    stored_payload,
    view,
    view_row,
)
from recorder.store.fsutil import write_whole
from recorder.store.layout import segment_name
from recorder.store.ranges import JournalRange, RangeSummary, missing_segments
from recorder.store.reader import KIND_BAD_LINE, Record, Store

FORMATS = ("jsonl", "md", "csv", "html")
BOOKKEEPING = ("segment", "heartbeat")  # left out of the readable formats (kept in JSONL)
PROGRESS_EVERY = 2048  # records between progress callbacks
# Messages handed to the writers together (`write_records`): few, so that a run's
# parsed lines are still in the processor's caches when the writers read them (at
# 1M messages, md with runs of 8 took 5 % less CPU than one by one, runs of 256 5 %
# more) ...
RUN = 8
RUN_BYTES = 1 << 20  # ... and at most about this many bytes of their lines (big messages)
_CHUNK = 1 << 20
Progress = Callable[[int, int], None]  # (records done, records in range)


class ExportError(PersistError):
    pass


# -- writers -------------------------------------------------------------------------------
@dataclass
class ExportStats(RangeSummary):
    """The range summary of what was exported, and the bytes written."""

    bytes: int = 0


class Writer:
    """Receives records in order; `begin`/`end` frame them."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.buf: list[bytes] = []
        self.size = 0
        self.bytes = 0

    def emit(self, data: bytes) -> None:
        self.buf.append(data)
        self.size += len(data)
        if self.size >= _CHUNK:
            self.flush()

    def emit_all(self, pieces: Sequence[bytes]) -> None:
        """`emit` each of `pieces` (each a line's end and all: nothing is put between)."""
        self.buf += pieces
        self.size += sum(map(len, pieces))
        if self.size >= _CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            data = b"".join(self.buf)
            write_whole(self.out, data)  # a raw stdout (`python -u`) may take part
            self.bytes += len(data)
            self.buf.clear()
            self.size = 0

    def begin(self, title: str, facts: list[tuple[str, str]]) -> None:
        pass

    shows_body = True
    """Whether `messages` is given the payload as pretty JSON (a row's body)."""

    def record(self, rec: Record) -> None:
        """Write a record that is not in a run of `messages` (any kind; a message
        whose payload is not one JSON object, or one that is alone)."""
        raise NotImplementedError

    def messages(self, rows: Sequence[MessageRow]) -> None:
        """Write a run of messages, in order (the rows are shared by every writer of
        a pass: `write_records`). The one way a writer renders a message: `record`
        gives it the row of a message it is handed alone."""
        raise NotImplementedError

    def missing(self, sentence: str) -> None:
        """Say, where they stand, that segments are gone (`missing_sentence`): nothing
        by default (JSONL holds the records as stored, and nothing else)."""

    def end(self) -> None:
        self.flush()


class JsonlWriter(Writer):
    """Every valid record line exactly as stored (bad lines are left out and counted)."""

    shows_body = False

    def record(self, rec: Record) -> None:
        if rec.data is not None:
            self.emit(rec.line)

    def messages(self, rows: Sequence[MessageRow]) -> None:
        self.emit_all([row[-1].line for row in rows])


def _backtick_run(text: str) -> int:
    """The longest run of backticks in `text`: a run of n exists iff "`" * n is a
    substring, so double n, then bisect (a few C substring searches, never a
    character at a time in Python)."""
    if "`" not in text:
        return 0
    have, lacking = 1, 2
    while "`" * lacking in text:
        have, lacking = lacking, lacking * 2
    while lacking - have > 1:
        mid = (have + lacking) // 2
        if "`" * mid in text:
            have = mid
        else:
            lacking = mid
    return have


def _fence(text: str) -> str:
    """A code fence that no line of `text` can close."""
    return "`" * max(3, _backtick_run(text) + 1)


def md_text(text: str, *, newlines: bool = True) -> str:
    """Recorded text for Markdown outside code: escapes shown (`clean`), and `& < > ]`
    as entities (`md_entities`)."""
    return md_entities(clean(text, newlines=newlines))


def md_entities(text: str) -> str:
    """`& < > ]` as entities, so that no raw HTML, autolink or link is ever made of
    `text`. (Four `str.replace` passes in C: each returns its input untouched when the
    character is absent, which is the common case; `&` goes first so no entity is
    escaped twice.)"""
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("]", "&#93;")
    )


_K = TypeVar("_K", str, tuple[str, ...])
_T = TypeVar("_T")
_MEMO_MAX_CHARS = 200  # short fields (senders, topics, chains) repeat: each is escaped once
_MEMO_ENTRIES = 4096


def _chars(key: str | tuple[str, ...]) -> int:
    return len(key) if isinstance(key, str) else sum(map(len, key))


def _memo(fn: Callable[[_K], _T]) -> Callable[[_K], _T]:
    """`fn` remembered for short texts, or tuples of them (a bounded table, emptied
    when full)."""
    table: dict[_K, _T] = {}

    def memoised(key: _K) -> _T:
        out = table.get(key)
        if out is None:
            out = fn(key)
            if _chars(key) <= _MEMO_MAX_CHARS:
                if len(table) >= _MEMO_ENTRIES:
                    table.clear()
                table[key] = out
        return out

    return memoised


def md_quote_parts(text: bytes) -> tuple[bytes, bytes]:
    """Every line of UTF-8 `text` as a Markdown block quote line: `> line`, or `>`
    alone for an empty line (so no line ends with a space); in two parts, the first
    line's `> ` (or `>`) and the rest, so that the text is not copied once more to put
    two bytes before it. On bytes: the quote is made on the way out, and a bytes
    `replace` is faster than a str one."""
    rest = text.replace(b"\n", b"\n> ")
    first = b">" if not text or text[:1] == b"\n" else b"> "
    if text[-1:] == b"\n" or _BLANK_LINE.search(text):
        # Empty lines came out as "> ".
        if text.find(b">") >= 0:  # `find`, not `in`: see `AsciiEscapes.apply`
            # Each replace pass skips the line right after one it fixed (the newline
            # between them is consumed), so two passes fix all.
            rest = rest.replace(b"\n> \n", b"\n>\n").replace(b"\n> \n", b"\n>\n")
        else:  # escaped text (`md_escaped`: `&gt;`): each "> " before a newline is one
            rest = rest.replace(b"> \n", b">\n")
        if rest.endswith(b"\n> "):
            rest = rest[:-1]
    return first, rest


_BLANK_LINE = re.compile(b"\n\n")  # a compiled search: `in` is slow on text full of newlines
_MD_ESCAPES = AsciiEscapes(
    ((b"&", b"&amp;"), (b"<", b"&lt;"), (b">", b"&gt;"), (b"]", b"&#93;"))
)  # `md_text`'s, in its order (`&` first, so no entity is escaped twice)


def md_escaped(text: str) -> bytes:
    """`md_text(text)` in UTF-8. ASCII text whose only changes are tabs and `& < > ]`
    (most messages, code included) is done in bytes (`AsciiEscapes`)."""
    raw = _MD_ESCAPES.apply(text)
    return md_text(text).encode() if raw is None else raw


def md_message(text: str) -> bytes:
    """A message's text as the Markdown transcript quotes it: `md_escaped`, except in
    the text's own code (`markdown_code`), which a renderer shows as typed, so an
    entity there would read `&lt;`. Only text with an entity made and a backtick or a
    tilde is looked at for code."""
    escaped = md_escaped(text)
    if escaped.find(b"&") < 0 or (escaped.find(b"`") < 0 and escaped.find(b"~") < 0):
        return escaped  # no entity made (`&` itself is one), or no code (1-byte finds)
    cleaned = clean(text)
    ranges = code_ranges(cleaned)
    if not ranges:
        return escaped
    out: list[str] = []
    at = 0
    for start, end in ranges:
        out += (md_entities(cleaned[at:start]), cleaned[start:end])
        at = end
    out.append(md_entities(cleaned[at:]))
    return "".join(out).encode()


def md_code(text: str) -> str:
    """Recorded text as an inline code span that its own backticks cannot close."""
    text = clean(text, newlines=False)
    ticks = "`" * (_backtick_run(text) + 1)
    pad = " " if text[:1] == "`" or text[-1:] == "`" else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


@_memo
def md_field(text: str) -> str:
    """`md_text` on one line, its backslashes and backticks escaped too, remembered for
    short repeated fields: a field beside a code span (the heading's topic) can neither
    open nor close one (a sender's backtick paired with the topic span's opening one,
    and the topic, raw inside its span, came out as HTML)."""
    return md_text(text, newlines=False).replace("\\", "\\\\").replace("`", "\\`")


md_code_field = _memo(md_code)


@_memo
def md_head(key: tuple[str, ...]) -> tuple[str, str]:
    """A Markdown message heading around its time, for (sender, topic, chain):
    `**sender** · `topic` · ` before it and ` · chain` (or nothing) after."""
    sender, topic, chain = key
    who = f"**{md_field(sender or '?')}** · {md_code_field(topic)} · "
    return who, f" · {md_field(chain)}" if chain and chain != "message" else ""


class DayWriter(Writer):
    """A writer that puts a heading before the first record of each day: the one
    state it carries from record to record."""

    def __init__(self, out: IO[bytes]) -> None:
        super().__init__(out)
        self._day = ""

    @property
    def day(self) -> str:
        """The day of the last day heading written ("" before the first)."""
        return self._day

    def continue_after(self, day: str) -> None:
        """Go on after records another writer rendered, whose last heading was `day`."""
        self._day = day

    @classmethod
    def day_of(cls, rec: Record) -> str:
        """The day heading `rec` would need ("" for a record that shows none)."""
        data = rec.data
        if data is None or data.get("kind") in BOOKKEEPING:
            return ""
        return cls.stamp(data.get("ts"))[:10]

    stamp = staticmethod(iso)
    """How the writer writes a record's time (its day heading is the first 10 characters)."""
    heading = ""
    """A day's heading (`{day}`: the day)."""

    def _clock(self, ts: float | None, out: list[bytes]) -> str:
        """The time of a record sent at `ts` (hh:mm:ss); a heading for its day goes
        to `out` first when the day changes."""
        stamp = self.stamp(ts)
        day = stamp[:10]
        if day and day != self._day:
            self._day = day
            out.append(self.heading.format(day=day).encode())
        return stamp[11:19]


class MarkdownWriter(DayWriter):
    stamp = staticmethod(iso_second)
    heading = "## {day} (UTC)\n\n"

    def begin(self, title: str, facts: list[tuple[str, str]]) -> None:
        lines = [f"# {md_text(title, newlines=False)}", ""]
        lines += [f"- **{md_text(k)}**: {md_text(v, newlines=False)}" for k, v in facts]
        lines += ["", "---", "", ""]
        self.emit("\n".join(lines).encode())

    def messages(self, rows: Sequence[MessageRow]) -> None:
        # the pieces of a message go out as they are (each of its parts ends with a
        # blank line): its text, nearly all of its bytes, is copied only by `flush`
        out: list[bytes] = []
        append, clock = out.append, self._clock
        for seq, ts, topic, sender, chain, text, body, replay_of, _payload, _rec in rows:
            at = clock(ts, out)
            who, after = md_head((sender, topic, chain))
            replay = " · replay" if replay_of is not None else ""
            append(f"{who}{at}{after}{replay} <sub>#{seq}</sub>\n\n".encode())
            if text:
                first, rest = md_quote_parts(md_message(text))
                out += (first, rest, b"\n\n")
            if body:
                body = clean(body)
                fence = _fence(body)
                append(f"{fence}json\n{body}\n{fence}\n\n".encode())
        self.emit_all(out)

    def record(self, rec: Record) -> None:
        v = view(rec)
        if v.kind == "msg":
            self.messages((view_row(rec, v),))
            return
        if v.kind in BOOKKEEPING:
            return
        out: list[bytes] = []
        clock = self._clock(v.ts, out)
        if v.kind == "gap":
            sentence = md_text(gap_sentence(rec.data or {}), newlines=False)
            line = f"> ⚠ **{sentence}** ({clock}, #{v.seq})"
        elif v.kind == KIND_BAD_LINE:
            line = (
                f"> ✘ **damaged line** in seg-{rec.segment:06d}.jsonl at byte {rec.offset} "
                "(not a journal record; left out)"
            )
        elif v.kind in ("corrupt", "refused"):
            text = md_text(v.text[:300], newlines=False)
            line = f"> ✘ **{md_text(v.kind)}** ({clock}, #{v.seq}): {text}"
        else:
            event = md_text(str((rec.data or {}).get("event", v.kind)), newlines=False)
            line = f"*{clock} · recorder {event}*"
        out.append(f"{line}\n\n".encode())
        self.emit_all(out)

    def missing(self, sentence: str) -> None:
        self.emit(f"> ✘ **{md_text(sentence, newlines=False)}**\n\n".encode())


_FORMULA_CHARS = ("=", "+", "-", "@")


def _cell(value: str) -> str:
    """A spreadsheet must not run a recorded message as a formula (OWASP CSV injection):
    a leading quote when it starts with one of `_FORMULA_CHARS`, also after spaces or
    newlines, which a spreadsheet told to trim them (LibreOffice's "Trim spaces") drops."""
    value = clean(value)
    return "'" + value if value.lstrip()[:1] in _FORMULA_CHARS else value


def csv_field(value: str) -> str:
    """One CSV field as `csv.writer` (excel dialect, QUOTE_MINIMAL) writes it: quoted,
    with its quotes doubled, when it holds a comma, a quote, CR or LF (a few C
    substring tests and one replace, instead of the csv module's loop per character)."""
    if '"' in value:
        return '"' + value.replace('"', '""') + '"'
    if "," in value or "\n" in value or "\r" in value:
        return '"' + value + '"'
    return value


def csv_row(fields: Iterable[str]) -> str:
    return ",".join(map(csv_field, fields)) + "\r\n"


_CSV_PLAIN = plain_bytes('",\n')  # stays as it is in a cell that needs no quotes
_CSV_FIXED = b'\t",\n'  # what `_ascii_cell` handles itself; anything else needs `clean`
_FORMULA_STARTS = tuple(c.encode() for c in _FORMULA_CHARS)


def _ascii_cell(raw: bytes) -> bytes | None:
    """`csv_field(_cell(text))` for ASCII `text` given as bytes, when `clean` would
    change nothing but its tabs (one `translate` finds what is there); else None."""
    found = raw.translate(None, _CSV_PLAIN)
    has = found.find  # `find`, not `in`: see `AsciiEscapes.apply`
    if found:
        if found.translate(None, _CSV_FIXED):
            return None
        if has(b"\t") >= 0:
            raw = raw.replace(b"\t", b"    ")
    if raw.lstrip()[:1] in _FORMULA_STARTS:  # as `_cell`: also after spaces, newlines
        raw = b"'" + raw
    if not found:
        return raw
    if has(b'"') >= 0:
        return b'"' + raw.replace(b'"', b'""') + b'"'
    if has(b",") >= 0 or has(b"\n") >= 0:
        return b'"' + raw + b'"'
    return raw


def csv_cell(text: str) -> bytes:
    """A recorded text as one CSV cell, UTF-8: `csv_field(_cell(text))`, done in
    bytes for ASCII text whose only changes are tabs and quoting."""
    if text.isascii():
        cell = _ascii_cell(text.encode("ascii"))
        if cell is not None:
            return cell
    return csv_field(_cell(text)).encode()


def csv_json_cell(written: bytes) -> bytes:
    """JSON as `json_or_none` writes it, or a JSON frame as stored (`stored_payload`),
    as one CSV cell (UTF-8), as `csv_cell` would write it as text. ASCII JSON holds no
    control character but DEL (orjson escapes the others; a stored frame is one line,
    a tab its only other one, between tokens), so a few substring tests replace the
    `translate` pass."""
    has = written.find  # `find`, not `in`: see `AsciiEscapes.apply`
    if not written.isascii() or has(b"\x7f") >= 0 or has(b"\t") >= 0:
        return csv_field(_cell(written.decode())).encode()
    if written[:1] == b"-":  # a negative number: a formula to a spreadsheet
        written = b"'" + written  # (`has` still looks in what came: the same quotes, commas)
    if has(b'"') >= 0:
        return b'"' + written.replace(b'"', b'""') + b'"'
    if has(b",") >= 0:
        return b'"' + written + b'"'
    return written


@_memo
def csv_field_cell(text: str) -> bytes:
    """`csv_field` as UTF-8, remembered for short repeated fields."""
    return csv_field(text).encode()


csv_cell_memo = _memo(csv_cell)


class CsvWriter(Writer):
    COLUMNS = (
        "seq",
        "time",
        "ts",
        "kind",
        "topic",
        "sender",
        "chain",
        "text",
        "payload",
        "replay_of",
    )

    def begin(self, title: str, facts: list[tuple[str, str]]) -> None:
        self.emit(csv_row(self.COLUMNS).encode())

    shows_body = False  # the payload has a column of its own

    def record(self, rec: Record) -> None:
        v = view(rec, with_body=False)
        if v.kind == "msg":
            whole = frames_text(rec, None)  # a message of several frames: every one
            if whole is not None:  # (its text column is all the cell holds of them)
                v.text = whole
            self.messages((view_row(rec, v),))
            return
        if v.kind in BOOKKEEPING:
            return
        text = gap_sentence(rec.data or {}) if v.kind == "gap" else v.text
        self.emit(self._row(rec, v.seq, v.ts, v.kind, v.topic, v.sender, v.chain, text, b"", None))

    def missing(self, sentence: str) -> None:
        """A row of kind `missing`: no seq, no time, the sentence as its text."""
        self.emit(b",,,missing,,,," + csv_cell(sentence) + b",,\r\n")

    def messages(self, rows: Sequence[MessageRow]) -> None:
        cells = self._row
        out: list[bytes] = []
        for seq, ts, topic, sender, chain, text, _body, replay_of, value, rec in rows:
            if isinstance(value, str):
                payload = csv_cell(value)
            elif isinstance(value, bytes):
                payload = f"<{len(value)} bytes>".encode()
            elif (stored := stored_payload(rec)) is not None:  # as sent: numbers, keys
                payload = csv_json_cell(stored)
            elif (written := json_or_none(value)) is not None:
                payload = csv_json_cell(written)
            else:
                payload = csv_cell(json_text(value, partial(payload_bytes, rec)))
            out.append(cells(rec, seq, ts, "msg", topic, sender, chain, text, payload, replay_of))
        self.emit_all(out)

    @staticmethod
    def _row(
        rec: Record,
        seq: int | None,
        ts: float | None,
        kind: str,
        topic: str,
        sender: str,
        chain: str,
        text: str,
        payload: bytes,
        replay_of: Any,
    ) -> bytes:
        replay = json_text(replay_of, lambda: rec.line) if replay_of is not None else ""
        return b",".join(
            (
                b"%d" % seq
                if type(seq) is int
                else csv_field_cell("" if seq is None else str(seq)),
                iso(ts).encode(),
                b"" if ts is None else b"%.6f" % ts,
                csv_field_cell(kind),
                csv_cell_memo(topic),
                csv_cell_memo(sender),
                csv_field_cell(chain),
                csv_cell(text),
                payload,
                csv_field(replay).encode() + b"\r\n",
            )
        )


_HTML_HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
color:#1d1d1f;background:#fff}}
dl{{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem;color:#444}}
dt{{font-weight:600}} h2{{margin-top:2rem;border-bottom:1px solid #ddd}}
.msg{{margin:.7rem 0;padding:.4rem .7rem;border-left:3px solid #8ab4f8;background:#f7f9fc}}
.head{{font-size:.85rem;color:#555}} .sender{{font-weight:700;color:#1a4d9e}}
.topic{{font-family:monospace}} .seq{{float:right;color:#999}}
.text{{white-space:pre-wrap;margin:.3rem 0 0}} pre{{overflow-x:auto;background:#eef1f5;
padding:.4rem}} .gap,.bad{{margin:.7rem 0;padding:.4rem .7rem;background:#fff4e5;
border-left:3px solid #f0a020}} .bad{{background:#fdecea;border-color:#d93025}}
.event{{color:#777;font-size:.85rem;font-style:italic}} .replay{{color:#a0a;font-weight:600}}
</style></head><body>
"""


_HTML_ESCAPES = AsciiEscapes(
    ((b"&", b"&amp;"), (b"<", b"&lt;"), (b">", b"&gt;"), (b'"', b"&quot;"), (b"'", b"&#x27;"))
)  # `html.escape(quote=True)`'s, in its order


def _h(text: str) -> str:
    """Recorded text as HTML text: escapes shown (`clean`), markup characters as
    entities (`html.escape`); ASCII text with neither is found so in one pass."""
    if plain_ascii(text, _HTML_ESCAPES.plain):
        return text
    return html.escape(clean(text), quote=True)


def _h_bytes(text: str) -> bytes:
    """`_h(text)` as UTF-8, for a message's text: ASCII text whose only changes are
    tabs and markup characters is done in bytes (`AsciiEscapes`)."""
    raw = _HTML_ESCAPES.apply(text)
    return html.escape(clean(text), quote=True).encode() if raw is None else raw


h_field = _memo(_h)
h_field.__doc__ = "`_h`, remembered for short repeated fields (senders, topics, chains)."


class HtmlWriter(DayWriter):
    heading = "<h2>{day} (UTC)</h2>"

    def begin(self, title: str, facts: list[tuple[str, str]]) -> None:
        rows = "".join(f"<dt>{_h(k)}</dt><dd>{_h(v)}</dd>" for k, v in facts)
        self.emit(
            (_HTML_HEAD.format(title=_h(title)) + f"<h1>{_h(title)}</h1><dl>{rows}</dl>\n").encode()
        )

    def messages(self, rows: Sequence[MessageRow]) -> None:
        out: list[bytes] = []  # pieces encoded one by one, as in MarkdownWriter
        append, clock = out.append, self._clock
        for seq, ts, topic, sender, chain, text, body, replay_of, _payload, _rec in rows:
            at = clock(ts, out)
            extra = f' · <span class="chain">{h_field(chain)}</span>' if chain else ""
            if replay_of is not None:
                extra += ' · <span class="replay">replay</span>'
            head = (
                f'<div class="msg" id="seq-{seq}"><div class="head">'
                f'<span class="seq">#{seq}</span><span class="sender">{h_field(sender or "?")}'
                f'</span> · <span class="topic">{h_field(topic)}</span> · {at}{extra}</div>'
            )
            append(head.encode())
            if text:
                out += (b'<div class="text">', _h_bytes(text), b"</div>")
            if body:
                out += (b"<pre>", _h_bytes(body), b"</pre>")
            append(b"</div>\n")
        self.emit_all(out)

    def record(self, rec: Record) -> None:
        v = view(rec)
        if v.kind == "msg":
            self.messages((view_row(rec, v),))
            return
        if v.kind in BOOKKEEPING:
            return
        out: list[bytes] = []
        clock = self._clock(v.ts, out)
        if v.kind == "gap":
            line = f'<div class="gap">⚠ {_h(gap_sentence(rec.data or {}))}</div>'
        elif v.kind == KIND_BAD_LINE:
            line = (
                f'<div class="bad">✘ damaged line in seg-{rec.segment:06d}.jsonl at byte '
                f"{rec.offset} (not a journal record)</div>"
            )
        elif v.kind in ("corrupt", "refused"):
            line = f'<div class="bad">✘ {_h(v.kind)}: {_h(v.text[:300])}</div>'
        else:
            event = (rec.data or {}).get("event", v.kind)
            line = f'<div class="event">{clock} · recorder {_h(str(event))}</div>'
        out.append(f"{line}\n".encode())
        self.emit_all(out)

    def missing(self, sentence: str) -> None:
        self.emit(f'<div class="bad">✘ {_h(sentence)}</div>\n'.encode())

    def end(self) -> None:
        self.emit(b"</body></html>\n")
        super().end()


WRITERS: dict[str, type[Writer]] = {
    "jsonl": JsonlWriter,
    "md": MarkdownWriter,
    "csv": CsvWriter,
    "html": HtmlWriter,
}


def missing_sentence(numbers: Sequence[int], before: int | None, after: int | None) -> str:
    """What the document says where segments `numbers` are gone from segments/, between
    the records of seq `before` and `after` (None: none, or none known on that side)."""
    names = [segment_name(n) for n in numbers]
    if len(names) == 1:
        who = f"{names[0]} is"
    elif len(names) <= 3:
        who = f"{', '.join(names[:-1])} and {names[-1]} are"
    else:
        who = f"{len(names)} segments, {names[0]} to {names[-1]}, are"
    seqs = ""
    if before is not None and after is not None:
        if after - before == 2:
            seqs = f" (seq {before + 1})"
        elif after - before > 2:
            seqs = f" (seq {before + 1} to {after - 1})"
    elif after is not None:
        seqs = f" (seq before {after})"
    elif before is not None:
        seqs = f" (seq after {before})"
    whose = "its" if len(names) == 1 else "their"
    return f"{who} missing from segments/: {whose} records{seqs} are lost"


def marking_missing(
    records: Iterable[Record],
    missing: Sequence[int],
    say: Callable[[list[int], int | None, int | None], None],
) -> Iterator[Record]:
    """`records`, with `say(numbers, before, after)` called where missing segments stand:
    before the first record of a later segment (the rest after the last record), with
    the seqs of the records on either side (None: no record, or one without a seq)."""
    todo = sorted(missing)
    k = 0
    prev: Record | None = None
    for rec in records:
        if k < len(todo) and todo[k] < rec.segment:
            run = []
            while k < len(todo) and todo[k] < rec.segment:
                run.append(todo[k])
                k += 1
            say(run, None if prev is None else prev.seq, rec.seq)
        prev = rec
        yield rec
    if k < len(todo):
        say(todo[k:], None if prev is None else prev.seq, None)


def write_records(
    records: Iterable[Record],
    writers: list[Writer],
    *,
    redact: bool = False,
    total: int = 0,
    progress: Progress | None = None,
    summary: RangeSummary | None = None,
    missing: Sequence[int] = (),
) -> RangeSummary:
    """Feed every record to every writer and to one range summary (one pass), with
    secrets redacted (`redacted`) when `redact`; where segments `missing` (numbers)
    stand, each writer is told (`Writer.missing`; not a record: nothing is counted).

    Messages whose payload is one JSON object (nearly every one) are made into rows
    once (`message_row`) and handed to every writer in runs (`Writer.messages`; up to
    `RUN` messages or `RUN_BYTES` of their lines), and to the summary as (time, who)
    pairs, unless its kind counts more than `RangeSummary.add` does; any other record
    goes to each writer's `record`. A run costs less than its messages one by one:
    a message's view is a tuple, and each writer's loop keeps what it needs in local
    names."""
    stats = summary if summary is not None else ExportStats()
    add = stats.add
    pairs = type(stats).add is RangeSummary.add  # else `add` sees each record
    runs = [w.messages for w in writers]
    with_body = any(w.shows_body for w in writers)
    rows: list[MessageRow] = []
    done = reported = size = 0

    def hand_over() -> None:
        """The run so far to the summary and the writers."""
        nonlocal done, size
        if pairs:
            stats.add_messages([(row[1], row[3] or row[2]) for row in rows])
        else:
            for row in rows:
                add(row[-1])
        for run in runs:
            run(rows)
        done += len(rows)
        size = 0
        rows.clear()

    def say_missing(numbers: list[int], before: int | None, after: int | None) -> None:
        if rows:
            hand_over()
        sentence = missing_sentence(numbers, before, after)
        for w in writers:
            w.missing(sentence)

    source = redacted(records) if redact else records
    if missing:  # after the redaction, which holds records back in batches
        source = marking_missing(source, missing, say_missing)
    for rec in source:
        data = rec.data
        row = None
        if data is not None and data["kind"] == "msg":
            row = message_row(rec, data, with_body=with_body)
        if row is not None:
            rows.append(row)
            size += len(rec.line)
            if len(rows) < RUN and size < RUN_BYTES:
                continue
            hand_over()
        else:
            if rows:
                hand_over()
            add(rec)
            for w in writers:
                w.record(rec)
            done += 1
        if progress is not None and done - reported >= PROGRESS_EVERY:
            progress(done, total)
            reported = done
    if rows:
        hand_over()
    if progress is not None:
        progress(done, total)
    return stats


def range_facts(store: Store, rng: JournalRange) -> list[tuple[str, str]]:
    facts = [("Log folder", str(store.root)), ("Range", rng.describe())]
    if rng.upto is not None:
        cp = rng.upto
        facts.append(("Checkpoint", f"{cp.label or cp.id} ({cp.reason}, {iso(cp.created)})"))
    return facts


def export_redact(fmt: str, redact: bool | None) -> bool:
    """Whether an export in `fmt` redacts: `redact`, else the format's default
    (`REDACT_BY_DEFAULT`). Raises ExportError for a format we do not write."""
    if fmt not in WRITERS:
        raise ExportError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    return REDACT_BY_DEFAULT[fmt] if redact is None else redact


def write_export(
    records: Iterable[Record],
    fmt: str,
    out: IO[bytes],
    *,
    title: str,
    facts: list[tuple[str, str]],
    total: int = 0,
    progress: Progress | None = None,
    redact: bool | None = None,
    missing: Sequence[int] = (),
) -> ExportStats:
    """Records (the journal's, or journal-shaped ones) to `out` through `fmt`'s writer,
    under a header of `title` and `facts`; `redact` as in `export_redact`; where
    segments `missing` stand, the document says so (`write_records`)."""
    redact = export_redact(fmt, redact)
    writer = WRITERS[fmt](out)
    writer.begin(title, facts)
    stats = ExportStats()
    write_records(
        records,
        [writer],
        redact=redact,
        total=total,
        progress=progress,
        summary=stats,
        missing=missing,
    )
    writer.end()
    stats.bytes = writer.bytes
    return stats


def export_range(
    store: Store,
    rng: JournalRange,
    fmt: str,
    out: IO[bytes],
    *,
    title: str | None = None,
    progress: Progress | None = None,
    redact: bool | None = None,
    parallel: Parallel | None = None,
) -> ExportStats:
    """Write records `rng` of `store` to `out` in `fmt`; `redact` replaces secrets by
    `[REDACTED:kind]` (None: the format's default, `REDACT_BY_DEFAULT`). A large range
    is rendered on every core (`parallel`; the same bytes as one pass). Segments missing
    from the range (`missing_segments`: not pruned) are said where they stand in md,
    html and csv (JSONL holds records only: `journal_damage` names them)."""
    redact = export_redact(fmt, redact)
    if fmt == "jsonl" and not redact:
        stats = ExportStats()
        stats.bytes = copy_jsonl(store, rng.start, rng.stop, out, stats, progress)
        return stats
    first = rng.after.segment if rng.after is not None else 1
    missing = [n for n in missing_segments(store, rng) if n >= first]  # in the range
    workers = use_parallel(store, rng.start, rng.stop, parallel)
    if workers:
        writer = WRITERS[fmt](out)
        writer.begin(title or f"Conversation {rng.describe()}", range_facts(store, rng))
        stats = ExportStats()
        render_parallel(
            store,
            rng.start,
            rng.stop,
            [writer],
            stats,
            workers=workers,
            redact=redact,
            parallel=parallel,
            progress=progress,
            total=rng.stop - rng.start,
            missing=missing,
        )
        writer.end()
        stats.bytes = writer.bytes
        return stats
    return write_export(
        store.records(rng.start, rng.stop),
        fmt,
        out,
        title=title or f"Conversation {rng.describe()}",
        facts=range_facts(store, rng),
        total=rng.stop - rng.start,
        progress=progress,
        redact=redact,
        missing=missing,
    )
