"""The one search engine behind the CLI, the TUI and the Python API.

`SearchEngine(root).search("query")` catches the index up with the journal (a
bounded slice of work unless told otherwise), then answers from the index:

- Exact matches first. Their ids are fetched newest first with `ORDER BY rowid
  DESC LIMIT RANK_WINDOW + 1` (FTS5 walks its doclists backwards and stops: about
  a millisecond even for a word in every other record). When the whole query
  matches at most `RANK_WINDOW` records, they are ranked by BM25 over their own
  texts (`rank.py`), newer first among equals; when it matches more, the newest
  come first (the journal's newest by rowid; the agents' sessions' matches, whose ids
  say when they were indexed, not their time, sorted by time). FTS5's bm25() is
  never called: it counts every record holding each word or phrase first (its IDF),
  a scan of a common word's whole doclist (30-180 ms on 1M messages, measured).
- Fuzzy (typo-tolerant) matches when asked (`fuzzy=True`), or by default when
  exact found fewer than `FEW`: each word of 4+ letters is widened to the
  vocabulary terms within edit distance 1 (2 for 8+ letters, rapidfuzz over the
  `terms` snapshot); those hits are marked fuzzy and listed after the exact ones.
- Each hit is read back from the journal for its snippet (the index keeps no
  text), with exact and fuzzy match spans, and names the nearest checkpoint
  at or before it.

Just over 400 lines: the catch-up, the exact and fuzzy passes and the hits they
share one engine object.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from recorder.errors import PersistError
from recorder.export.redact import named_secrets, record_secrets, redact_record
from recorder.export.render import record_text
from recorder.search.fuzzy import Vocabulary
from recorder.search.hits import CheckpointFinder, SearchHit, SearchResult, make_snippet
from recorder.search.index import (
    ELSEWHERE_INDEX,
    SOURCE_BUS,
    IndexDamaged,
    SearchIndex,
    transient,
)
from recorder.search.indexer import CatchUp, Indexer, Progress, left_out
from recorder.search.query import Query, find_spans, fold, parse_query
from recorder.search.rank import bm25
from recorder.sources.discover import Roots
from recorder.store.layout import Layout, find_segment, segment_name
from recorder.store.reader import Record
from recorder.store.secrets import redacted_text
from recorder.store.segfile import SegmentFile, open_segment

SHOWN_SCAN_BYTES = 1 << 20
"""Bytes of a hit's record scanned for secrets the recorder did not name before its text
is shown (as the TUI's record view scans; exports and bundles scan all of it)."""
NEAR_MATCH_CHARS = 16 << 10
"""Characters on each side of a hit's first match scanned again for secrets, when its
record is longer than `SHOWN_SCAN_BYTES` and the index counted secrets in it: the
index holds a record's whole text, which can go on well past its first MiB, and a
snippet is cut around that match. (A whole 16 MiB record of prose took 3 s to scan:
every search showing it would pay that.) The margin is wider than any secret the
scanner knows, a private key block included."""
SHOWN_CHARS = 4 * NEAR_MATCH_CHARS
"""Characters of a hit's text kept for its snippet: a longer text (up to 16 MiB) is cut
to a window this long around its first match (`_window`), found a window at a time,
from `NEAR_MATCH_CHARS` before it. Text that is not ASCII is matched token by token (a
second a million characters of CJK), so windows of a MiB made a hit in a long Chinese
message take seconds to show (about 6 s before 2026-12-07)."""
_NOT_WORD = re.compile(r"\W")

__all__ = ["SearchEngine", "SearchHit", "SearchResult", "search"]

DEFAULT_LIMIT = 20
RANK_WINDOW = 200  # a query matching at most this many is ranked by relevance; more: newest
FEW = 5  # fewer exact hits than this: try fuzzy too (when fuzzy is on)
CATCH_UP_BUDGET = 2.0  # seconds a search spends catching up before it answers


class SearchCancelled(Exception):
    """The search was abandoned (its `cancelled()` turned true): a newer one replaces it."""


@dataclass
class _Row:
    doc: int
    segment: int | None
    offset: int | None
    length: int | None
    seq: int | None
    ts: float | None
    kind: str
    sender: str
    topic: str
    source: str
    session: str
    origin: str | None
    text: str | None
    secrets: int | None  # as the indexer counted them (`docs.secrets`)
    score: float = 0.0
    fuzzy: bool = False
    body: str | None = None  # the text shown, once read (`SearchEngine._load`)
    partly_scanned: bool = False  # `body` may hold a secret past SHOWN_SCAN_BYTES


_ROW = (
    "d.id, d.segment, d.offset, d.length, d.seq, d.ts, d.kind, d.sender, d.topic, d.source, "
    "d.session, d.origin, d.text, d.secrets"
)


class SearchEngine:
    """Search one log folder (thread-safe: one query at a time per engine)."""

    def __init__(self, root: Path | str, roots: Roots | None = None) -> None:
        """`roots`: the agents' session folders to search too (None: as `persist
        sessions` finds them; `Roots(None, None, None)`: the journal alone)."""
        self.root = Path(root).expanduser()
        self.layout = Layout(self.root)
        self.index = SearchIndex(self.root)
        self.indexer = Indexer(self.root, roots)
        self._lock = threading.Lock()
        self.vocabulary = Vocabulary(self.index)
        self._files: dict[int, SegmentFile] = {}

    def close(self) -> None:
        self.index.close()
        self.indexer.close()
        for seg in self._files.values():
            with contextlib.suppress(OSError):
                seg.close()
        self._files.clear()

    def __enter__(self) -> SearchEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- keeping up --------------------------------------------------------------
    def catch_up(
        self,
        *,
        budget: float | None = None,
        wait: float | None = None,
        progress: Progress | None = None,
        rebuild: bool = False,
        pause: Callable[[], bool] | None = None,
        pages: bool = False,
        waiting: Callable[[], None] | None = None,
    ) -> CatchUp:
        return self.indexer.catch_up(
            budget=budget,
            wait=wait,
            progress=progress,
            rebuild=rebuild,
            pause=pause,
            pages=pages,
            waiting=waiting,
        )

    # -- searching ---------------------------------------------------------------
    def search(
        self,
        query: Query | str,
        *,
        limit: int = DEFAULT_LIMIT,
        fuzzy: bool | None = None,
        all_kinds: bool = False,
        count: bool = False,
        catch_up: bool = True,
        budget: float | None = CATCH_UP_BUDGET,
        wait: float | None = 30.0,
        cancelled: Callable[[], bool] | None = None,
        waiting: Callable[[], None] | None = None,
    ) -> SearchResult:
        """Hits for `query`, best first. `fuzzy`: None = when exact finds few,
        True = always add typo-tolerant hits, False = never. `count` counts every
        exact match (else the count stops at the ranked window). Another process
        writing the index while it lacks part of the journal is waited for, up to
        `wait` seconds: `waiting()` is called once before (`persist search` says so
        there), and the result's `waited` and `partial` say how it went."""
        if isinstance(query, str):
            query = parse_query(query)
        done = self.catch_up(budget=budget, wait=wait, waiting=waiting) if catch_up else None
        with self._lock:
            try:
                with self.index.interruptible(cancelled):
                    result = self._search(query, limit, fuzzy, all_kinds, count, cancelled)
            except (sqlite3.DatabaseError, IndexDamaged):
                if cancelled is not None and cancelled():
                    raise SearchCancelled from None
                # Replaced or damaged under us. A catch-up waits for another writer's
                # rebuild and rebuilds if the checks find damage; damage they cannot
                # see (deep in the file) gets a rebuild of its own on a second failure.
                self.index.close()
                done = self.catch_up(wait=wait, waiting=waiting)
                try:
                    result = self._search(query, limit, fuzzy, all_kinds, count, cancelled)
                except (sqlite3.DatabaseError, IndexDamaged) as exc:
                    if transient(exc):
                        raise  # another process's lock, twice: no damage to rebuild
                    self.index.close()
                    done = self.catch_up(rebuild=True, wait=wait, waiting=waiting)
                    result = self._search(query, limit, fuzzy, all_kinds, count, cancelled)
            except FileNotFoundError:  # nothing indexed yet (catch_up=False)
                result = SearchResult(query)
        result.catch_up = done
        return result

    def _search(
        self,
        query: Query,
        limit: int,
        fuzzy: bool | None,
        all_kinds: bool,
        count: bool,
        cancelled: Callable[[], bool] | None,
    ) -> SearchResult:
        t0 = time.perf_counter()
        result = SearchResult(query)
        if query.empty:
            return result
        where, params = self._filters(query, all_kinds)
        match = query.fts()
        hits_rows, matched = self._ranked(match, where, params, limit, query)
        if count:
            result.total = self._count(match, where, params)
        else:
            fetched = max(limit, RANK_WINDOW) + 1  # one more than can be shown: "more"
            result.total = min(matched, fetched - 1)
            result.total_exact = matched < fetched
        use_fuzzy = query.fuzzy if fuzzy is None else fuzzy
        want_fuzzy = fuzzy is True or (use_fuzzy and fuzzy is None and matched < FEW)
        if want_fuzzy and match is not None and not (cancelled and cancelled()):
            fuzzy_query, result.fuzzy_terms = self.vocabulary.widen(query)
            if fuzzy_query is not None:
                seen = {r.doc for r in hits_rows}
                more, _n = self._ranked(fuzzy_query, where, params, limit + len(seen))
                for r in more:
                    if r.doc not in seen and len(hits_rows) < limit:
                        r.fuzzy = True
                        hits_rows.append(r)
        result.took_ms = (time.perf_counter() - t0) * 1000
        if cancelled is not None and cancelled():
            raise SearchCancelled
        stand_ins = frozenset(t for terms in result.fuzzy_terms.values() for t in terms)
        checkpoints = CheckpointFinder(self.layout)
        result.hits = [self._hit(r, query, stand_ins, checkpoints) for r in hits_rows]
        # a session hit's origin is `<key>#<n>`, its key as spelled (its topic is lowercased)
        gone = self.indexer.sessions.deleted_sessions(
            h.origin.rpartition("#")[0] for h in result.hits if h.origin
        )
        if gone:
            result.hits = [
                replace(h, deleted=True) if h.origin and h.origin.rpartition("#")[0] in gone else h
                for h in result.hits
            ]
        result.took_ms = (time.perf_counter() - t0) * 1000
        result.left_out = self.left_out()
        return result

    def left_out(self) -> list[int]:
        """The closed segments the index holds nothing of: they could not be read (a
        search says so: what they hold is not found, and that is no silent gap)."""
        try:
            return [n for n, state in self.index.segment_states().items() if left_out(state)]
        except (sqlite3.DatabaseError, IndexDamaged):
            return []

    def _filters(self, query: Query, all_kinds: bool) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        record_kinds = [v for v in query.values("kind")]
        if not all_kinds and not record_kinds:
            where.append("d.msg = 1")
        for key in (
            "sender", "recipient", "topic", "chain", "tag", "source", "session", "tier", "has"
        ):  # fmt: skip
            for negated in (False, True):
                col_key = "kind" if key == "chain" else key
                values = query.values(col_key, negated=negated)
                if not values:
                    continue
                ors = []
                for v in values:
                    clause, args = _field_clause(col_key, v)
                    ors.append(clause)
                    params.extend(args)
                joined = _any(ors)
                where.append(f"NOT ({joined})" if negated else f"({joined})")
        if query.since is not None:
            where.append("d.ts >= ?")
            params.append(query.since)
        if query.until is not None:
            where.append("d.ts <= ?")
            params.append(query.until)
        return where, params

    def _ranked(
        self,
        match: str | None,
        where: list[str],
        params: list[Any],
        limit: int,
        query: Query | None = None,
    ) -> tuple[list[_Row], int]:
        """(the best `limit` rows, how many matched: exact when below the fetch limit,
        max(limit, RANK_WINDOW) + 1)."""
        cond = " AND ".join(where) or "1"
        window = max(limit, RANK_WINDOW) + 1
        # The journal's rows are indexed in its order: its newest are the last ids, and
        # a query stops after `window` of them. An agent session's rows get their ids
        # when indexed, whatever their time: the newest `window` of them by time, from
        # an index of theirs (never a docs lookup per match of the whole query: for a
        # common word 30 ms at 300k messages, growing with the journal).
        sessions = self._session_rows(match, cond, params, window)
        if match is None:
            sql = (
                f"SELECT d.ts, d.id FROM docs d WHERE d.segment IS NOT NULL AND {cond} "
                f"ORDER BY d.id DESC LIMIT {window}"
            )
            tables = [self.index.query(sql, params)]
        else:

            def newest(schema: str, offset: int) -> str:
                # CROSS JOIN keeps FTS the outer loop: never one MATCH per row of docs.
                return (
                    f"SELECT d.ts, d.id FROM {schema}.fts(?) AS f CROSS JOIN docs d "
                    f"ON d.id = f.rowid + {offset} WHERE d.segment IS NOT NULL AND {cond} "
                    f"ORDER BY f.rowid DESC LIMIT {window}"
                )

            tables = self.index.query_each_table(newest, [match, *params])
        # the newest `window` of the journal and of the sessions, by time
        rows = sorted(
            (r for rs in (*tables, sessions) for r in rs),
            key=lambda r: (r[0] or 0.0, r[1]),
            reverse=True,
        )
        ids = [r[1] for r in rows[:window]]
        if match is not None and query is not None and 1 < len(ids) <= RANK_WINDOW:
            return self._relevant(ids, query, limit), len(ids)
        return self._rows(ids[:limit]), len(ids)

    def _session_rows(
        self, match: str | None, cond: str, params: list[Any], window: int
    ) -> list[Any]:
        """(ts, id) of the newest `window` rows from elsewhere than the journal (agent
        sessions) that match, walked newest first by `docs_elsewhere`, the full-text
        match as the set of its rowids (a scan of the words' doclists, no docs lookup
        per match). An index file no writer opened since that index was added: every
        match looked up (correct, slower)."""
        args = [*params, *([] if match is None else [match])]
        fts = "" if match is None else " AND d.id IN (SELECT rowid FROM main.fts(?))"
        if self.index.has_index(ELSEWHERE_INDEX):
            return self.index.query(
                f"SELECT d.ts, d.id FROM docs d INDEXED BY {ELSEWHERE_INDEX} "
                f"WHERE d.segment IS NULL AND {cond}{fts} "
                f"ORDER BY d.ts DESC, d.id DESC LIMIT {window}",
                args,
            )
        if match is None:
            sql = f"SELECT d.ts, d.id FROM docs d WHERE d.segment IS NULL AND {cond}"
        else:
            sql = (
                "SELECT d.ts, d.id FROM main.fts(?) AS f CROSS JOIN docs d ON d.id = f.rowid "
                f"WHERE d.segment IS NULL AND {cond}"
            )
            args = [match, *params]
        return self.index.query(f"{sql} ORDER BY d.ts DESC, d.id DESC LIMIT {window}", args)

    def _rows(self, ids: list[int]) -> list[_Row]:
        """The docs rows of `ids`, in that order."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = {
            r[0]: _Row(*r)
            for r in self.index.query(f"SELECT {_ROW} FROM docs d WHERE d.id IN ({marks})", ids)
        }
        return [rows[i] for i in ids if i in rows]

    def _relevant(self, ids: list[int], query: Query, limit: int) -> list[_Row]:
        """The best `limit` of a few candidates by BM25 (`rank.py`), newer among equals."""
        rows = self._rows(ids)
        for r in rows:
            self._load(r, query)
        words = sorted({t.tokens[0] for g in query.groups for t in g if len(t.tokens) == 1})
        doc_freq: dict[str, int] = {}
        if words:
            marks = ",".join("?" * len(words))
            doc_freq = dict(
                self.index.query(f"SELECT term, docs FROM terms WHERE term IN ({marks})", words)
            )
        scores = bm25(
            {r.doc: r.body or "" for r in rows},
            query,
            total_docs=self.index.doc_count(),
            doc_freq=doc_freq,
            matched=len(ids),
        )
        for r in rows:
            r.score = scores.get(r.doc, 0.0)
        rows.sort(key=lambda r: (-round(r.score, 3), -(r.ts or 0.0), -r.doc))
        return rows[:limit]

    def _count(self, match: str | None, where: list[str], params: list[Any]) -> int:
        cond = " AND ".join(where) or "1"
        if match is None:
            sql = f"SELECT count(*) FROM docs d WHERE {cond}"
            return int(self.index.query(sql, params)[0][0])

        def count(schema: str, offset: int) -> str:
            return (
                f"SELECT count(*) FROM {schema}.fts(?) AS f CROSS JOIN docs d "
                f"ON d.id = f.rowid + {offset} WHERE {cond}"
            )

        return sum(int(rows[0][0]) for rows in self.index.query_each_table(count, [match, *params]))

    # -- hits --------------------------------------------------------------------
    def _line(self, segment: int, offset: int, length: int) -> bytes:
        seg = self._files.get(segment)
        if seg is not None and not seg.compressed and not seg.path.exists():
            seg.close()  # compressed since: let go of the old file
            seg = None
        if seg is None:
            path = find_segment(self.layout, segment_name(segment))
            if path is None:
                raise FileNotFoundError(2, "No such file or directory", segment_name(segment))
            seg = self._files[segment] = open_segment(path)
        return seg.read(offset, length)

    def _load(self, r: _Row, query: Query, near: frozenset[str] = frozenset()) -> None:
        """Read `r`'s text (and the sender and topic as stored) back from the journal,
        its secrets redacted (`[REDACTED:kind]`, as the TUI's rows show them): a hit's
        snippet never shows one, `has:secret` included."""
        if r.body is not None:
            return
        if r.segment is None or r.offset is None or r.length is None:
            stored = r.text or ""
            r.body = _window(redacted_text(stored, SHOWN_SCAN_BYTES), query, near)
            # a character takes at most 4 bytes: past this, the text may end past the MiB
            r.partly_scanned = bool(r.secrets) and len(stored) > SHOWN_SCAN_BYTES // 4
            return
        try:
            rec = Record(0, r.segment, r.offset, self._line(r.segment, r.offset, r.length))
            named = named_secrets(rec)
            if named is None:
                named = record_secrets(rec, SHOWN_SCAN_BYTES)
                r.partly_scanned = bool(r.secrets) and len(rec.line) > SHOWN_SCAN_BYTES
            shown = redact_record(rec, named)
            r.body = _window(record_text(shown, whole=True), query, near)
            r.sender, r.topic = shown.sender, shown.topic
        except OSError as exc:
            r.body = f"(cannot read the journal: {exc.strerror})"
        except ValueError as exc:  # a compressed segment with no readable frame table
            r.body = f"(cannot read the journal: {exc})"

    def _hit(
        self, r: _Row, query: Query, stand_ins: frozenset[str], cps: CheckpointFinder
    ) -> SearchHit:
        near = stand_ins if r.fuzzy else frozenset()
        self._load(r, query, near)
        text = r.body or ""
        sender, topic = r.sender, r.topic
        spans = find_spans(text, query, near)
        if r.partly_scanned:  # the snippet may come from past the scanned first MiB
            redacted = _redacted_near(text, spans[0].start if spans else 0)
            if redacted is not text:
                text, spans = redacted, find_spans(redacted, query, near)
        snippet, shifted = make_snippet(text, spans)
        checkpoint = (
            cps.before(r.segment, r.offset)
            if r.segment is not None and r.offset is not None
            else None
        )
        return SearchHit(
            r.doc,
            r.seq,
            r.ts,
            r.kind,
            sender,
            topic,
            r.source,
            r.segment,
            r.offset,
            snippet,
            tuple(shifted),
            r.fuzzy,
            r.score,
            checkpoint,
            r.session if r.source != SOURCE_BUS else "",
            r.origin,
        )


def _window(text: str, query: Query, near: frozenset[str]) -> str:
    """`text`, or when longer than `SHOWN_CHARS` the window of it that length around its
    first match of `query` (or of the stand-ins `near`), from `NEAR_MATCH_CHARS` before
    it (its start and the match's found a window at a time, each starting after a
    word's end); its start when nothing matches."""
    if len(text) <= SHOWN_CHARS:
        return text
    # a match starts with one of these, folded: a window without any is passed over
    # without matching it token by token (1-4 s a million characters of CJK text)
    firsts = {t.tokens[0] for group in query.groups for t in group if t.tokens} | near
    if not firsts:  # fields alone: nothing to look for
        return text[:SHOWN_CHARS]
    at = 0
    while at < len(text):
        piece = text[at : at + SHOWN_CHARS]
        folded = fold(piece)
        spans = find_spans(piece, query, near) if any(w in folded for w in firsts) else []
        if spans:
            start = _word_start(text, at + spans[0].start - NEAR_MATCH_CHARS)
            return text[start : start + SHOWN_CHARS]
        if at + SHOWN_CHARS >= len(text):
            break
        at = _word_start(text, at + SHOWN_CHARS - NEAR_MATCH_CHARS)
    return text[:SHOWN_CHARS]


def _word_start(text: str, at: int) -> int:
    """The first position at or after `at` that is not inside a word (0 stays 0): a
    window starting there cuts no word in two, so none of its matches is a piece of one."""
    if at <= 0:
        return 0
    if _NOT_WORD.match(text, at - 1):
        return at
    found = _NOT_WORD.search(text, at, at + NEAR_MATCH_CHARS // 2)
    return found.end() if found else at


def _redacted_near(text: str, at: int) -> str:
    """`text` with the secrets within `NEAR_MATCH_CHARS` of character `at` redacted."""
    lo, hi = max(0, at - NEAR_MATCH_CHARS), at + NEAR_MATCH_CHARS
    near = text[lo:hi]
    shown = redacted_text(near)
    return text if shown is near else text[:lo] + shown + text[hi:]


def _any(clauses: list[str]) -> str:
    """SQL true when one of `clauses` is, as a balanced tree: SQLite counts a chain of
    ORs as that deep, and refuses one of 1000 (`from:a from:b ...`)."""
    if len(clauses) <= 2:
        return " OR ".join(clauses)
    half = len(clauses) // 2
    return f"({_any(clauses[:half])}) OR ({_any(clauses[half:])})"


def _glob_escape(value: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in value)


def _field_clause(key: str, value: str) -> tuple[str, list[Any]]:
    """SQL for one `key:value` (values are stored lowercased)."""
    prefix = value.endswith("*")
    bare = value.rstrip("*")
    if key == "tier":
        return "d.tier = ?", [int(bare)]
    if key == "has":  # `has:secret`, the only value the parser lets through
        return "d.secrets > 0", []
    if key == "tag":
        if prefix:
            return "d.tags GLOB ?", [f"* {_glob_escape(bare)}*"]
        return "instr(d.tags, ?) > 0", [f" {bare} "]
    if key == "recipient":
        if prefix:
            return "(' ' || d.recipient) GLOB ?", [f"* {_glob_escape(bare)}*"]
        return "instr(' ' || d.recipient || ' ', ?) > 0", [f" {bare} "]
    if key == "kind":
        if prefix:
            return "(d.chain GLOB ? OR d.kind GLOB ?)", [f"{_glob_escape(bare)}*"] * 2
        return "(d.chain = ? OR d.kind = ?)", [bare, bare]
    col = f"d.{key}"
    if prefix:
        return f"{col} GLOB ?", [f"{_glob_escape(bare)}*"]
    if key == "topic":
        return f"({col} = ? OR {col} GLOB ?)", [bare, f"{_glob_escape(bare)}.*"]
    return f"{col} = ?", [bare]


class NoJournal(PersistError):
    """The folder given holds no journal."""


def search(
    log_dir: Path | str, query: str, *, roots: Roots | None = None, **options: Any
) -> SearchResult:
    """The Python API: search a log folder and the agents' sessions once (see
    `SearchEngine.search`: `waiting=` is called when it waits for another process
    writing the index, and the result's `waited` and `partial` say so). A folder
    without a journal is `NoJournal` (as `persist search` refuses it): the index would
    otherwise be made there, and find nothing."""
    root = Path(log_dir).expanduser()
    if not (root / "segments").is_dir():
        raise NoJournal(f"no journal in {root}")
    with SearchEngine(root, roots) as engine:
        return engine.search(query, **options)
