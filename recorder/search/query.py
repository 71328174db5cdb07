"""The search query language: parsing a query, scoring a record, match spans."""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from rapidfuzz import fuzz

from recorder.errors import PersistError
from recorder.export.render import record_text
from recorder.store.reader import Record

_AGE_RE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")


_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


_FILTER_KEYS = {
    "from": "sender",
    "sender": "sender",
    "topic": "topic",
    "since": "since",
    "after": "since",
    "until": "until",
    "before": "until",
}
FUZZY_CUTOFF = 80.0
MIN_FUZZY_LEN = 4


class QueryError(PersistError, ValueError):
    """A filter value that cannot be understood (the message says why)."""


@dataclass(frozen=True)
class Query:
    """A parsed search: lowercase terms plus filters."""

    text: str = ""
    terms: tuple[str, ...] = ()
    senders: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    since: float | None = None
    until: float | None = None
    fuzzy: bool = True

    @property
    def empty(self) -> bool:
        return not (self.terms or self.senders or self.topics or self.since or self.until)


def parse_time(value: str, now: float, tz: tzinfo | None = None) -> float:
    """`2024-05-14`, `2024-05-14T10:30[:00]`, `10:30` (today) or an age (`2h`)."""
    m = _AGE_RE.match(value.lower())
    if m:
        return now - float(m.group(1)) * _AGE_UNITS[m.group(2)]
    today = datetime.fromtimestamp(now, tz)
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            dt = datetime.strptime(value, fmt)
        except ValueError:
            continue
        return dt.replace(tzinfo=tz).timestamp() if tz else dt.timestamp()
    for fmt in ("%H:%M:%S", "%H:%M"):
        try:
            t = datetime.strptime(value, fmt)
        except ValueError:
            continue
        dt = today.replace(hour=t.hour, minute=t.minute, second=t.second, microsecond=0)
        if dt.timestamp() > now:
            dt -= timedelta(days=1)
        return dt.timestamp()
    raise QueryError(f"cannot read time {value!r} (try 2024-05-14, 10:30 or 2h)")


def parse_query(
    text: str, *, now: float | None = None, fuzzy: bool = True, tz: tzinfo | None = None
) -> Query:
    """Split `text` into terms and filters; raises QueryError on a bad filter value."""
    now = time.time() if now is None else now
    try:
        words = shlex.split(text)
    except ValueError:  # an unclosed quote while typing
        words = text.replace('"', " ").split()
    terms: list[str] = []
    senders: list[str] = []
    topics: list[str] = []
    since = until = None
    for word in words:
        key, sep, value = word.partition(":")
        kind = _FILTER_KEYS.get(key.lower()) if sep else None
        if kind is None:
            if word.strip():
                terms.append(word.lower())
            continue
        if not value:
            continue
        if kind == "sender":
            senders.append(value.lower())
        elif kind == "topic":
            topics.append(value.lower())
        elif kind == "since":
            since = parse_time(value, now, tz)
        else:
            until = parse_time(value, now, tz)
    return Query(text, tuple(terms), tuple(senders), tuple(topics), since, until, fuzzy)


def _ascii_json_safe(term: str) -> bool:
    return term.isascii() and '"' not in term and "\\" not in term and term.isprintable()


def record_haystack(rec: Record) -> str:
    """The text a query's words are matched against (lowercased)."""
    return f"{record_text(rec)} {rec.topic} {rec.sender}".lower()


def fuzzy_ok(term: str) -> bool:
    return len(term) >= MIN_FUZZY_LEN


def score_record(rec: Record, query: Query) -> float | None:
    """Score 0-100 if `rec` matches `query`, else None."""
    if query.senders or query.topics:
        if not rec.valid:
            return None
        sender = rec.sender.lower()
        topic = rec.topic.lower()
        if query.senders and not any(s in sender for s in query.senders):
            return None
        if query.topics and not any(t in topic for t in query.topics):
            return None
    if query.since is not None or query.until is not None:
        ts = rec.ts
        if ts is None:
            return None
        if query.since is not None and ts < query.since:
            return None
        if query.until is not None and ts > query.until:
            return None
    if not query.terms:
        return 100.0
    hay = record_haystack(rec)
    total = 0.0
    for term in query.terms:
        if term in hay:
            total += 100.0
            continue
        if not (query.fuzzy and fuzzy_ok(term)):
            return None
        score = fuzz.partial_ratio(term, hay, score_cutoff=FUZZY_CUTOFF)
        if not score:
            return None
        total += score
    return total / len(query.terms)


def match_spans(text: str, query: Query) -> list[tuple[int, int]]:
    """Character spans of `text` to highlight for `query` (exact, then fuzzy)."""
    if not query.terms or not text:
        return []
    low = text.lower()
    spans: list[tuple[int, int]] = []
    for term in query.terms:
        start = low.find(term)
        found = start >= 0
        while start >= 0:
            spans.append((start, start + len(term)))
            start = low.find(term, start + len(term))
        if not found and query.fuzzy and fuzzy_ok(term):
            al = fuzz.partial_ratio_alignment(term, low, score_cutoff=FUZZY_CUTOFF)
            if al is not None and al.dest_end > al.dest_start:
                s, e = _word_span(low, al.dest_start, al.dest_end)
                if e > s:  # an alignment on punctuation alone widens to nothing
                    spans.append((s, e))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged


def _word_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen a fuzzy alignment to whole words, so `migraton` lights up `migration`."""
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    while start < end and not text[start].isalnum():
        start += 1
    while end < len(text) and text[end].isalnum():
        end += 1
    return start, end
