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

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Protocol

from recorder.search.query import Query, _ascii_json_safe, fuzzy_ok, score_record
from recorder.store.reader import Store

DEFAULT_LIMIT = 50_000
_BLOCK = 2048


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
