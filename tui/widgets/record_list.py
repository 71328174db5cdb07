"""Journal records as a virtual list: the recent view and search results."""

from __future__ import annotations

import zlib
from bisect import bisect_left
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.text import Text

from recorder.export.redact import record_secrets, redact_record
from recorder.export.render import gap_sentence, record_text
from recorder.search.index import SOURCE_BUS
from recorder.search.query import Query, match_spans
from recorder.store.reader import Record
from recorder.store.secrets import DEFAULT_SCAN_CAP

from ..reading import ReadingRules
from ..text import Clock, fit, one_line, safe_text
from .virtual_list import VirtualList

if TYPE_CHECKING:
    from .conversation_view import RecordSource

SENDER_COLORS = (
    "cyan",
    "green",
    "yellow",
    "magenta",
    "blue",
    "bright_cyan",
    "bright_green",
    "bright_magenta",
    "bright_blue",
    "orange1",
)
KIND_STYLES = {
    "gap": "bold red",
    "corrupt": "bold red",
    "bad-line": "bold red",
    "refused": "bold yellow",
    "event": "bold blue",
    "segment": "dim",
    "heartbeat": "dim",
}
SOURCE_STYLES = {"claude": "bold #d97757", "gemini": "bold #4285f4", "codex": "bold #10a37f"}
SHORT_SOURCES = {"claude": "cla", "gemini": "gem", "codex": "cdx", "bus": "bus"}
HIGHLIGHT = "bold black on yellow"
SECRET_BADGE = "[secret] "
SECRET_STYLE = "bold red"


def sender_style(name: str) -> str:
    return SENDER_COLORS[zlib.crc32(name.encode()) % len(SENDER_COLORS)]


def source_label(source: str, *, wide: bool) -> Text:
    """Where a message comes from (`bus` or an agent), padded: the whole name when
    `wide`, else three letters; agents in their colour."""
    label = f"{source:<7}" if wide else f"{SHORT_SOURCES.get(source, source[:3]):<4}"
    return Text(label, SOURCE_STYLES.get(source, "dim"))


def shown_topic(topic: str, source: str | None) -> str:
    """A topic as a list with a source column shows it: an agent session's
    `<source>:<session id>` as the session id alone (its source is in the column)."""
    return topic if source in (None, SOURCE_BUS) else topic.removeprefix(f"{source}:")


def describe(rec: Record) -> str:
    """A one-line summary of a non-message record."""
    kind = rec.kind
    get = rec.get
    if kind == "gap":  # as the conversation view and the exports say it
        return gap_sentence(rec.data or {})
    if kind == "event":
        return f"{get('event', '')}: {get('detail', '')}"
    if kind == "segment":
        return f"── {get('segment', '')} ──"
    if kind == "refused":
        return str(get("reason") or record_text(rec))
    if kind == "corrupt":
        return f"{get('length', '?')} bytes quarantined: {get('reason', '')}"
    if kind == "heartbeat":
        payload = rec.payload
        env = payload.get("_persist") if isinstance(payload, dict) else None
        if isinstance(env, dict):
            who = env.get("agent") or env.get("pub") or "?"
            state = "signing off" if env.get("bye") else "alive"
            return f"{who} {state}, last sent seq {env.get('seq', '?')}"
    return record_text(rec)


def record_row(
    rec: Record,
    clock: Clock,
    *,
    query: Query | None = None,
    marker: str = " ",
    sender_width: int = 10,
    topic_width: int = 7,
    rules: ReadingRules | None = None,
    source: Text | None = None,
) -> Text:
    """`HH:MM:SS ◆ sender topic text`, with search matches highlighted; `source`: a
    source column before the sender (`source_label`), the topic then shown without its
    `<meta.source>:` prefix (an agent session's id); `rules` name
    the sender and kind of messages the recorder's enrichment did not. A message with
    secrets is marked `[secret]` and its text shows them as `[REDACTED:kind]` (the
    record view, Enter, shows the record as stored); so is a damaged line."""
    row = Text()
    # a list mixing agent sessions spans days and years; the journal's reads as a day
    row.append(clock.when(rec.ts) if source is not None else clock.hms(rec.ts), "dim")
    row.append(f" {marker} ", "bold green")
    kind = rec.kind
    # a damaged line is shown as its bytes: its secrets are looked for there too, and so
    # are those of a gap's agent or a refused message's topic (before 2026-12-07 shown)
    secrets = record_secrets(rec, DEFAULT_SCAN_CAP) if kind != "segment" else []
    if secrets:  # its sender and topic as its text: redacted
        rec = redact_record(rec, secrets)
    topic = rec.topic
    if source is not None:
        row.append_text(source)
        topic = shown_topic(topic, rec.meta.get("source"))
    if kind == "msg":
        reading = rules.read(rec) if rules is not None else None
        sender = one_line(rec.sender or (reading.sender if reading else "") or "?", 40)
        row.append(fit(sender, sender_width) + " ", sender_style(sender))
        row.append(fit(one_line(topic, 40), topic_width) + " ", "dim")
        if reading is not None and reading.kind:
            row.append(f"[{one_line(reading.kind, 40)}] ", "italic")
        if secrets:
            row.append(SECRET_BADGE, SECRET_STYLE)
        read_text = reading.text if reading is not None else None
        body = one_line(record_text(rec) if read_text is None else read_text)
    else:
        row.append(fit(kind.upper(), sender_width) + " ", KIND_STYLES.get(kind, ""))
        row.append(" " * (topic_width + 1))
        if secrets:
            row.append(SECRET_BADGE, SECRET_STYLE)
        body = one_line(describe(rec))
    text = safe_text(body) if kind != "msg" else Text(body)
    if kind != "msg":
        text.stylize(KIND_STYLES.get(kind, "") if kind != "segment" else "dim")
    if query is not None and query.terms:
        for start, end in match_spans(body, query):
            text.stylize(HIGHLIGHT, start, end)
    _mark_escapes(text, body)
    row.append_text(text)
    return row


def _mark_escapes(text: Text, body: str) -> None:
    """Show the visible escapes that `one_line` produced in a distinct style."""
    start = body.find("\\x")
    while start >= 0:
        text.stylize("magenta italic", start, start + 4)
        start = body.find("\\x", start + 4)
    start = body.find("\\u")
    while start >= 0:
        text.stylize("magenta italic", start, start + 6)
        start = body.find("\\u", start + 6)


class RecordList(VirtualList):
    """Records of a store, either all of them or a list of indices (hits); `show_source`:
    with a source column (agent sessions' messages)."""

    def __init__(self, clock: Clock, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.clock = clock
        self.store: RecordSource | None = None
        self.indices: Sequence[int] | None = None
        self.highlight: Query | None = None
        self.boundaries: frozenset[int] = frozenset()
        self.ascending = False
        self.rules: ReadingRules | None = None
        self.show_source = False

    def attach(
        self,
        store: RecordSource | None,
        indices: Sequence[int] | None = None,
        *,
        ascending: bool = False,
    ) -> None:
        """Show `store` (all records, or only `indices`; `ascending`: in journal order)."""
        self.store = store
        self.indices = indices
        self.ascending = ascending
        self.sync()

    def sync(self, *, keep_end: bool = False) -> None:
        """The store or the indices grew: update the row count."""
        if self.store is None:
            self.set_row_count(0)
        elif self.indices is None:
            self.set_row_count(len(self.store), keep_end=keep_end)
        else:
            self.set_row_count(len(self.indices), keep_end=keep_end)

    def record_index(self, row: int) -> int | None:
        if self.store is None or row < 0:
            return None
        if self.indices is None:
            return row if row < len(self.store) else None
        return self.indices[row] if row < len(self.indices) else None

    def row_of(self, index: int) -> int | None:
        """The row showing record `index` (None if this list does not show it)."""
        if self.store is None:
            return None
        if self.indices is None:
            return index if 0 <= index < len(self.store) else None
        if self.ascending:
            row = bisect_left(self.indices, index)
            return row if row < len(self.indices) and self.indices[row] == index else None
        try:
            return self.indices.index(index)
        except ValueError:
            return None

    def render_row(self, row: int, width: int) -> Text:
        index = self.record_index(row)
        if index is None or self.store is None:
            return Text()
        rec = self.store.record(index)
        marker = "◆" if index + 1 in self.boundaries else " "
        wide = width >= 100
        source = str(rec.meta.get("source") or "bus") if self.show_source else None
        return record_row(
            rec,
            self.clock,
            query=self.highlight,
            marker=marker,
            sender_width=12 if wide else 9,
            topic_width=10 if wide else 6,
            rules=self.rules,
            source=None if source is None else source_label(source, wide=wide),
        )
