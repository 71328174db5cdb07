"""Agent session messages from the search index in time order, read a range at a time.

The TUI's Recent pane lists one agent's (or every agent's) session messages like the
journal. `SessionFeed.load` reads the order once: the ids and times of the source's
session documents, found through `session_files` (a row per session file) and the
`docs.topic` index, never by a scan of every document. `documents` reads the fields and
texts of a range of rows only (what is on screen).
"""

from __future__ import annotations

from dataclasses import dataclass

from recorder.search.index import SearchIndex
from recorder.sources.journal_view import session_record
from recorder.sources.model import SESSION_SOURCES, seq_of
from recorder.store.reader import Record

AGENTS = "agents"
"""Every agent's sessions merged."""
FEED_SOURCES = (*SESSION_SOURCES, AGENTS)


@dataclass(frozen=True)
class FeedDocument:
    """One session message as the index holds it (fields lowercased, the text as searched)."""

    id: int
    ts: float | None
    sender: str
    topic: str  # `<source>:<session id>`
    source: str
    origin: str | None  # `<topic>#<seq>`
    text: str

    @property
    def seq(self) -> int | None:
        """The message's place in its session (None if the origin does not say)."""
        return seq_of(self.origin)

    def record(self, index: int) -> Record:
        """A journal-shaped record of it (see `recorder.sources.journal_view`)."""
        meta = {"sender": self.sender, "source": self.source, "id": self.origin}
        body = {"text": self.text}
        return session_record(self.topic, self.seq, self.ts, meta, body, body, index)


class SessionFeed:
    """The session documents of `source` (one of `FEED_SOURCES`), oldest first."""

    def __init__(self, index: SearchIndex, source: str) -> None:
        if source not in FEED_SOURCES:
            raise ValueError(f"unknown source {source!r} (one of {', '.join(FEED_SOURCES)})")
        self.index = index
        self.source = source
        self.ids: list[int] = []
        self.times: list[float | None] = []
        self.missing = False
        """True when there was no index file to read."""

    def __len__(self) -> int:
        return len(self.ids)

    def _where(self) -> tuple[str, str, list[str]]:
        """(the sessions' key pattern, the docs condition, its parameters)."""
        if self.source == AGENTS:
            marks = ",".join("?" * len(SESSION_SOURCES))
            return "*", f"d.source IN ({marks})", list(SESSION_SOURCES)
        return f"{self.source}:*", "d.source = ?", [self.source]

    def load(self) -> int:
        """Read the order (ids and times; ties in message order); returns the count.
        No index file: 0 with `missing` set; an index with no session yet: 0."""
        pattern, condition, params = self._where()
        try:
            tables = self.index.query(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'session_files'"
            )
            rows = (
                self.index.query(
                    "SELECT d.id, d.ts FROM (SELECT DISTINCT lower(key) AS topic "
                    "FROM session_files WHERE key GLOB ?) f "
                    "CROSS JOIN docs d ON d.topic = f.topic "
                    f"WHERE d.segment IS NULL AND {condition} ORDER BY d.ts, d.id",
                    [pattern, *params],
                )
                if tables
                else []
            )
        except FileNotFoundError:
            self.missing = True
            rows = []
        self.ids = [r[0] for r in rows]
        self.times = [r[1] for r in rows]
        return len(self.ids)

    def row_of(self, doc_id: int) -> int | None:
        """The row of document `doc_id` (None if this feed does not hold it)."""
        try:
            return self.ids.index(doc_id)
        except ValueError:
            return None

    def documents(self, start: int, stop: int) -> list[FeedDocument | None]:
        """Rows `start` to `stop` (clamped); None for a document gone since `load` (its
        session was rewritten, or the index rebuilt: the id holds another document)."""
        start, stop = max(0, start), max(0, min(stop, len(self.ids)))
        ids = self.ids[start:stop]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        try:
            rows = self.index.query(
                "SELECT id, ts, sender, topic, source, origin, text FROM docs "
                f"WHERE id IN ({marks}) AND segment IS NULL",
                ids,
            )
        except FileNotFoundError:
            rows = []
        found = {r[0]: FeedDocument(r[0], r[1], r[2], r[3], r[4], r[5], r[6] or "") for r in rows}
        sources = SESSION_SOURCES if self.source == AGENTS else (self.source,)
        out: list[FeedDocument | None] = []
        for doc_id, ts in zip(ids, self.times[start:stop], strict=True):
            doc = found.get(doc_id)
            out.append(doc if doc is not None and doc.ts == ts and doc.source in sources else None)
        return out
