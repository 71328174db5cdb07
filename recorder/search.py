"""Searching the journal: a query language, a scanning searcher, match spans.

Imports neither zmq nor textual. The UI talks to a `Searcher`; today that is
`ScanSearcher`, which reads the journal newest-first with a raw-bytes prefilter
and streams results in batches. A disk index (a later issue) only has to
implement the same `search()` and be returned by `open_searcher()`.

Query syntax: words (all must match), "quoted phrases", and filters
`from:NAME` (or `sender:`), `topic:NAME`, `since:WHEN` (or `after:`),
`until:WHEN` (or `before:`), where WHEN is `2024-05-14`, `2024-05-14T10:30`,
`10:30` (today) or an age like `15m`, `2h`, `3d`.
"""

from __future__ import annotations

import re
import shlex
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from operator import attrgetter
from pathlib import Path
from typing import Protocol

from rapidfuzz import fuzz

from .store import Record, Store

FUZZY_CUTOFF = 80.0
MIN_FUZZY_LEN = 4
DEFAULT_LIMIT = 50_000
_BLOCK = 2048
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


class QueryError(ValueError):
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
    return f"{rec.text} {rec.topic} {rec.sender}".lower()


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
                spans.append(_word_span(low, al.dest_start, al.dest_end))
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


def index_at_time(store: Store, ts: float, lo: int = 0, hi: int | None = None) -> int:
    """First index whose record time is >= `ts` (records are in time order)."""
    return store.bisect(ts, attrgetter("ts"), lo, hi)


@dataclass(frozen=True)
class Hit:
    index: int
    score: float


@dataclass
class SearchProgress:
    """One batch: new hits (newest first) and how far the scan got."""

    hits: list[Hit] = field(default_factory=list)
    scanned: int = 0
    total: int = 0
    done: bool = False
    limited: bool = False


class Searcher(Protocol):
    """What the UI needs; a future index-backed searcher implements the same."""

    def search(
        self,
        query: Query,
        *,
        cancelled: Callable[[], bool] = ...,
        batch_seconds: float = ...,
        limit: int = ...,
    ) -> Iterator[SearchProgress]: ...

    def close(self) -> None: ...


class _Prefilter:
    """Cheap byte tests that every matching line must pass."""

    def __init__(self, query: Query) -> None:
        needles = [t for t in query.terms if _ascii_json_safe(t)]
        self.exact = [n.encode() for n in needles if not (query.fuzzy and fuzzy_ok(n))]
        self.senders = [s.encode() for s in query.senders if _ascii_json_safe(s)]
        self.topics = [t.encode() for t in query.topics if _ascii_json_safe(t)]

    def __call__(self, low: bytes) -> bool:
        if any(n not in low for n in self.exact):
            return False
        if self.senders and not any(s in low for s in self.senders):
            return False
        return not self.topics or any(t in low for t in self.topics)


def _noop() -> bool:
    return False


class ScanSearcher:
    """Scans the journal newest-first with its own reader (safe in a thread)."""

    def __init__(self, root: Path) -> None:
        self.store = Store(Path(root))
        self._lock = threading.Lock()

    def close(self) -> None:
        self.store.close()

    def search(
        self,
        query: Query,
        *,
        cancelled: Callable[[], bool] = _noop,
        batch_seconds: float = 0.1,
        limit: int = DEFAULT_LIMIT,
    ) -> Iterator[SearchProgress]:
        with self._lock:
            yield from self._search(query, cancelled, batch_seconds, limit)

    def _search(
        self, query: Query, cancelled: Callable[[], bool], batch_seconds: float, limit: int
    ) -> Iterator[SearchProgress]:
        store = self.store
        store.refresh()
        lo, hi = 0, len(store)
        if query.since is not None:
            lo = index_at_time(store, query.since)
        if query.until is not None:
            hi = index_at_time(store, query.until + 1e-6, lo)
        total = hi - lo
        prefilter = _Prefilter(query)
        batch: list[Hit] = []
        found = scanned = 0
        deadline = time.monotonic() + batch_seconds / 2  # first batch early
        stop = hi
        while stop > lo:
            if cancelled():
                return
            start = max(lo, stop - _BLOCK)
            for rec in reversed(list(store.records(start, stop))):
                if not prefilter(rec.line.lower()):
                    continue
                score = score_record(rec, query)
                if score is None:
                    continue
                batch.append(Hit(rec.index, score))
                found += 1
                if found >= limit:
                    scanned += stop - rec.index
                    yield SearchProgress(batch, scanned, total, True, True)
                    return
            scanned += stop - start
            stop = start
            if time.monotonic() >= deadline:
                yield SearchProgress(batch, scanned, total)
                batch = []
                deadline = time.monotonic() + batch_seconds
        yield SearchProgress(batch, scanned, total, True)


def open_searcher(root: Path) -> Searcher:
    """The best searcher available for a log folder (an index, once there is one)."""
    return ScanSearcher(root)
