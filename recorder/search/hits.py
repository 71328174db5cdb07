"""What a search returns: hits with snippets and spans, the nearest checkpoint."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recorder.search.query import Query, Span
from recorder.store.checkpoints import Checkpoint, list_checkpoints
from recorder.store.layout import Layout, segment_name

if TYPE_CHECKING:
    from recorder.search.indexer import CatchUp

SNIPPET_CHARS = 160


@dataclass(frozen=True)
class SearchHit:
    """One matching record."""

    doc: int  # the index's id (journal order)
    seq: int | None
    ts: float | None
    kind: str
    sender: str
    topic: str
    source: str
    segment: int | None
    offset: int | None
    snippet: str
    spans: tuple[Span, ...]  # within `snippet`; `fuzzy` marks typo-tolerant ones
    fuzzy: bool
    score: float  # relevance (BM25, higher is better); 0.0 when newest-first
    checkpoint: str | None  # id of the nearest checkpoint at or before the record
    session: str = ""  # an agent session's id (session hits only)
    origin: str | None = None  # a session message's stable id, `source:session#n`
    deleted: bool = False  # the agent deleted the session: the hit comes from our copy

    def as_json(self) -> dict[str, Any]:
        if self.origin is not None:
            return {
                "seq": None,
                "time": self.ts,
                "kind": self.kind,
                "sender": self.sender,
                "topic": self.topic,
                "source": self.source,
                "session": self.session,
                "origin": self.origin,
                "deleted": self.deleted,
                "snippet": self.snippet,
                "spans": [[s.start, s.end, "fuzzy" if s.fuzzy else "exact"] for s in self.spans],
                "fuzzy": self.fuzzy,
            }
        return {
            "seq": self.seq,
            "time": self.ts,
            "kind": self.kind,
            "sender": self.sender,
            "topic": self.topic,
            "source": self.source,
            "segment": segment_name(self.segment) if self.segment is not None else None,
            "offset": self.offset,
            "snippet": self.snippet,
            "spans": [[s.start, s.end, "fuzzy" if s.fuzzy else "exact"] for s in self.spans],
            "fuzzy": self.fuzzy,
            "checkpoint": self.checkpoint,
        }


@dataclass
class SearchResult:
    query: Query
    hits: list[SearchHit] = field(default_factory=list)
    total: int = 0  # exact matches counted (all of them when `total_exact`)
    total_exact: bool = True  # False: at least `total` (the count stopped at the window)
    fuzzy_terms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    took_ms: float = 0.0  # the query itself, without catching up
    catch_up: CatchUp | None = None
    # closed segments the index left out, unreadable: their messages are not searched
    left_out: list[int] = field(default_factory=list)

    @property
    def behind(self) -> int:
        """Journal bytes the index did not hold yet when it was searched."""
        return self.catch_up.behind if self.catch_up else 0

    @property
    def waited(self) -> float:
        """Seconds the search waited for another process writing the index (0: none)."""
        return self.catch_up.waited if self.catch_up else 0.0

    @property
    def partial(self) -> bool:
        """The index lacked part of the journal or of the agents' sessions when it was
        searched (another process held it past the wait, or the time budget ran out):
        hits from what it lacked are missing."""
        done = self.catch_up
        return done is not None and (done.behind > 0 or done.sessions_pending > 0)

    def as_json(self) -> dict[str, Any]:
        return {
            "query": self.query.text,
            "took_ms": round(self.took_ms, 2),
            "total": self.total,
            "total_exact": self.total_exact,
            "fuzzy_terms": {k: list(v) for k, v in self.fuzzy_terms.items()},
            "behind_bytes": self.behind,
            "waited_ms": round(self.waited * 1000, 1),
            "partial": self.partial,
            "left_out_segments": self.left_out,
            "hits": [h.as_json() for h in self.hits],
        }


def make_snippet(
    text: str, spans: Sequence[Span], width: int = SNIPPET_CHARS
) -> tuple[str, list[Span]]:
    """About `width` characters of `text` on one line around the first match."""
    flat = text.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    if len(flat) <= width:
        return flat, list(spans)
    first = spans[0].start if spans else 0
    start = max(0, first - width // 3)
    end = min(len(flat), start + width)
    start = max(0, end - width)
    if start > 0:
        space = flat.rfind(" ", start, first) if spans else -1
        if space >= 0 and first - space < width // 2:
            start = space + 1
    body = flat[start:end]
    lead = "…" if start > 0 else ""
    tail = "…" if end < len(flat) else ""
    shift = len(lead) - start
    kept = [
        Span(max(s.start, start) + shift, min(s.end, end) + shift, s.fuzzy)
        for s in spans
        if s.end > start and s.start < end
    ]
    return lead + body + tail, kept


class CheckpointFinder:
    """The nearest checkpoint at or before a journal position (loaded once per search)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._cps: list[Checkpoint] | None = None
        self._keys: list[tuple[int, int]] = []

    def before(self, segment: int, offset: int) -> str | None:
        if self._cps is None:
            self._cps = sorted(list_checkpoints(self.layout), key=lambda c: (c.segment, c.offset))
            self._keys = [(c.segment, c.offset) for c in self._cps]
        k = bisect.bisect_right(self._keys, (segment, offset))
        return self._cps[k - 1].id if k else None
