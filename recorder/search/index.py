"""The search index: a derived SQLite FTS5 file under the log folder.

The journal is the truth; this file only makes it fast to search and can be
deleted at any time (`persist reindex` rebuilds it, and so does anything that
finds it missing, from another journal, or damaged). What it holds:

- `docs`: one row per indexed record (rowid = journal order): where it is
  (segment, offset, length: the text and the snippet are read back from the
  journal), seq, time, the fields queries filter on, message or not, source;
- `fts`: a contentless FTS5 table over the text `record_text` shows (no copy of
  the text: snippets come from the journal record itself), `detail=full` so
  phrases are answered by the index;
- `vocab` (fts5vocab) and `terms`, its snapshot, for typo tolerance (taken again
  after 2 % more records, one pass over all of `fts`: 9-10 s at 1M messages; the words
  of pruned rows leave it with them, `forget_terms`);
- `segments`: how far each segment is indexed, with a fingerprint (size, mtime,
  inode, SHA-1 of its first and last indexed 4 KiB) so a rewritten, replaced or
  truncated segment, or another folder's journal, is noticed;
- `meta`: the schema version and tokenizer, checked on every open; `last_id` (the
  highest document id ever given out: ids are never given twice, `next_id`);
  `terms_docs` (the docs the `terms` snapshot counted: ids up to it) and
  `terms_version` (one more each time it changes, for readers that keep a copy);
- `shards`: the full-text tables a parallel rebuild wrote in files of their own
  (`search/shard-*.sqlite3`, one per worker process, never written again), each with
  the offset between its rowids and `docs.id`. They are attached to every connection
  and every full-text query runs over `fts` and each of them (`match_sources`).

Every batch of documents and the progress that covers them commit in one
transaction, so a SIGKILL leaves an index that is consistent and simply behind.
Documents from elsewhere than the journal (agent sessions, later) go through
`add_documents` with `Document.text` kept, since there is no journal to read it from.

Just over 400 lines: the schema, its checks and the writes that must match it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any
from urllib.parse import quote

from recorder.errors import PersistError
from recorder.search.query import fts_text, tokenize
from recorder.store.fsutil import FILE_MODE, ensure_private_dir, open_private
from recorder.store.layout import Layout

# 2: the `shards` table; 3: `docs.secrets`; 4: the text as `fts_text` gives it;
# 5: Greek letters without their accents in that text (`query._greek_letters`);
# 6: a record's sender, topic and recipient with its secrets redacted (`journal_document`)
# 7: a message that is only tool calls as `⚙ name(arguments)` (`record_text`), not ""
# 8: `docs.secret_words`, left out of the fuzzy vocabulary (`fuzzy.Vocabulary`)
# 9: every payload frame of a message of several, and a turn whose text is "" as its
#    tool calls, as `record_text` shows them (the fast path read the last frame, and "")
# 10: a journal message's whole text (its first 1,048,576 characters were indexed)
# 11: every frame of a message of several (those after its first 2,000 characters were
#     named by their count, as lists name them, and not indexed)
# 12: a refused record's topic cut at 256 bytes inside a secret: its end counted as one
#     (`cut-secret`) and its topic redacted (`journal_document`); it was kept as stored
# 13: `meta.last_id`, so that no document id is given out twice (`next_id`): ids
#     started again after the highest left, and words a prune left in `fts` matched
#     whichever later message took their old id (rebuilt once: such words may be there)
SCHEMA_VERSION = 13
TOKENIZER = "unicode61 remove_diacritics 2"
PROGRESS_STEPS = (
    100_000  # SQLite VM steps between cancellation checks (a few ms; each takes the GIL)
)
SOURCE_BUS = "bus"
HASH_BYTES = 16 << 20
_NEXT_TERMS_VERSION = (
    "INSERT OR REPLACE INTO meta VALUES ('terms_version', "
    "(SELECT coalesce(max(value), 0) + 1 FROM meta WHERE key = 'terms_version'))"
)
# The rows from elsewhere than the journal (agent sessions) by time, with the fields
# most queries filter on: a search's newest of them without a look at every match or a
# docs lookup per row (`SearchEngine._session_rows`). Added after schema 8 without a
# rebuild: a writer adds it to an index that lacks it (`check`; 0.9 s at 350k rows).
ELSEWHERE_INDEX = "docs_elsewhere"
ELSEWHERE_SQL = (
    f"CREATE INDEX IF NOT EXISTS {ELSEWHERE_INDEX} ON docs (ts, msg, sender, topic) "
    "WHERE segment IS NULL"
)
_SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 10_000  # how long a connection waits for another's lock before "locked"
# The highest document id given out so far, rows dropped since (pruned segments) or
# not: `meta.last_id`, and the ids of `docs` (a shard's scratch file has no `last_id`).
_LAST_ID = (
    "max(coalesce((SELECT max(id) FROM docs), 0), "
    "coalesce((SELECT value FROM meta WHERE key = 'last_id'), 0))"
)

_DOC_COLUMNS = (
    ("id", "INTEGER"),
    ("segment", "INTEGER"),
    ("offset", "INTEGER"),
    ("length", "INTEGER"),
    ("seq", "INTEGER"),
    ("ts", "REAL"),
    ("kind", "TEXT"),
    ("msg", "INTEGER"),
    ("sender", "TEXT"),
    ("recipient", "TEXT"),
    ("topic", "TEXT"),
    ("chain", "TEXT"),
    ("tier", "INTEGER"),
    ("tags", "TEXT"),
    ("session", "TEXT"),
    ("source", "TEXT"),
    ("origin", "TEXT"),
    ("text", "TEXT"),
    ("secrets", "INTEGER"),  # how many secrets the record holds (`has:secret`)
    ("secret_words", "TEXT"),  # `Document.secret_words`, space-separated (or NULL)
)
_SEGMENT_COLUMNS = (
    ("number", "INTEGER"),
    ("bytes", "INTEGER"),
    ("docs", "INTEGER"),
    ("size", "INTEGER"),
    ("mtime_ns", "INTEGER"),
    ("inode", "INTEGER"),
    ("head_len", "INTEGER"),
    ("head_sha", "BLOB"),
    ("tail_sha", "BLOB"),
)


def rows_schema(schema: str) -> str:
    """The `segments` and `docs` tables (without `docs`' indexes) in `schema`."""
    return f"""
CREATE TABLE {schema}.segments ({", ".join(f"{n} {t}" for n, t in _SEGMENT_COLUMNS)},
    PRIMARY KEY (number)) WITHOUT ROWID;
CREATE TABLE {schema}.docs ({", ".join(f"{n} {t}" for n, t in _DOC_COLUMNS)}, PRIMARY KEY (id));
"""


_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
{rows_schema("main")}
CREATE INDEX docs_sender ON docs (sender);
CREATE INDEX docs_topic ON docs (topic);
CREATE INDEX docs_chain ON docs (chain);
CREATE INDEX docs_ts ON docs (ts);
CREATE INDEX docs_secrets ON docs (id) WHERE secrets > 0;
{ELSEWHERE_SQL};
CREATE VIRTUAL TABLE fts USING fts5 (body, content='', detail=full, tokenize='{TOKENIZER}');
CREATE VIRTUAL TABLE vocab USING fts5vocab (fts, row);
CREATE TABLE terms (term TEXT PRIMARY KEY, docs INTEGER) WITHOUT ROWID;
CREATE TABLE shards (name TEXT PRIMARY KEY, first INTEGER, docs INTEGER) WITHOUT ROWID;
"""
# What a shard file holds: the full-text table alone (its rows' `docs` live in the index).
SHARD_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE VIRTUAL TABLE fts USING fts5 (body, content='', detail=full, tokenize='{TOKENIZER}');
"""
SHARD_PREFIX = "shard-"


@dataclass(frozen=True)
class Document:
    """What the index holds for one record (the typed entry point for every source).

    Journal records give `segment`/`offset`/`length` (their text is read back from
    the journal for snippets); other sources set `source`, an `origin` they can
    find the item by again, and `text` (kept, since there is no journal line).
    Field values are stored lowercased; `tags` as a tuple.
    """

    text: str
    ts: float | None
    kind: str = "msg"
    seq: int | None = None
    segment: int | None = None
    offset: int | None = None
    length: int | None = None
    sender: str = ""
    recipient: str = ""
    topic: str = ""
    chain: str = ""
    tier: int | None = None
    tags: tuple[str, ...] = ()
    session: str = ""
    source: str = SOURCE_BUS
    origin: str | None = None
    secrets: int = 0  # as readers find them (`recorder.export.redact.record_secrets`)
    # its words found only inside its secrets (`secret_words`): never a typo's stand-in
    secret_words: tuple[str, ...] = ()

    @property
    def is_message(self) -> bool:
        return self.kind == "msg"

    def row(self) -> tuple[Any, ...]:
        tags = f" {' '.join(self.tags)} " if self.tags else ""
        keep = self.text if self.segment is None else None
        return (
            self.segment,
            self.offset,
            self.length,
            self.seq,
            self.ts,
            self.kind,
            1 if self.is_message else 0,
            self.sender.lower(),
            self.recipient.lower(),
            self.topic.lower(),
            self.chain.lower(),
            self.tier,
            tags.lower(),
            self.session.lower(),
            self.source.lower(),
            self.origin,
            keep,
            self.secrets,
            " ".join(self.secret_words) or None,
        )


def secret_words(text: str, shown: str) -> tuple[str, ...]:
    """The index's words of `text` that its redacted copy `shown` no longer holds: those
    found only inside its secrets (a URL's password, a key's parts), which the fuzzy
    vocabulary leaves out so that a typo never prints one back."""
    return tuple(sorted(set(tokenize(text)) - set(tokenize(shown))))


@dataclass
class SegmentState:
    """How far one segment is indexed, and what it looked like then."""

    number: int
    end: int = 0  # bytes indexed (always just after a newline, or the end of a closed one)
    docs: int = 0
    size: int = 0
    mtime_ns: int = 0
    inode: int = 0
    head_len: int = 0
    head_sha: bytes = b""
    tail_sha: bytes = b""

    def values(self) -> tuple[Any, ...]:
        return (
            self.number,
            self.end,
            self.docs,
            self.size,
            self.mtime_ns,
            self.inode,
            self.head_len,
            self.head_sha,
            self.tail_sha,
        )


class IndexDamaged(Exception):
    """The file is not a usable index of ours (garbage, truncated, other schema)."""


class IndexOutdated(IndexDamaged):
    """An index of another version's schema: rebuilt as damage is, though nothing is
    wrong with it (agent-persist was upgraded, or downgraded)."""

    def __init__(self, schema: int) -> None:
        which = "an earlier" if schema < SCHEMA_VERSION else "a later"
        super().__init__(
            f"made by {which} version of agent-persist (schema {schema}; "
            f"this one writes {SCHEMA_VERSION})"
        )
        self.schema = schema


class IndexNewer(PersistError):
    """The index was made by a later version of agent-persist. This one leaves it alone
    unless asked to rebuild it: a recorder still running the old code after an upgrade
    would otherwise rebuild it for itself, and the new code rebuild it back, in turn."""

    def __init__(self, path: Path, schema: int) -> None:
        super().__init__(
            f"the search index {path} was made by a later version of agent-persist "
            f"(schema {schema}; this one writes {SCHEMA_VERSION}), which this one leaves "
            "as it is: search with that version (restart a recorder started before the "
            "upgrade), or `persist reindex` to rebuild it for this one"
        )
        self.schema = schema


def unusable(exc: Exception) -> str:
    """Why an index that failed `check` (or a read) is rebuilt, as a clause."""
    if isinstance(exc, IndexOutdated):
        return f"the index was {exc}"
    return f"the index file is unusable ({exc})"


# What SQLite says when the disk has no room for what it writes besides the rows: the
# shared-memory file (SQLITE_IOERR_SHMSIZE, 4874, the first thing a reader of a WAL
# index writes), a write, a truncation, an fsync. Each is "disk I/O error" in words.
_FULL_DISK_IOERRS = frozenset(
    getattr(sqlite3, name, value)
    for name, value in (
        ("SQLITE_IOERR_SHMSIZE", 4874),
        ("SQLITE_IOERR_WRITE", 778),
        ("SQLITE_IOERR_TRUNCATE", 1546),
        ("SQLITE_IOERR_FSYNC", 1034),
        ("SQLITE_IOERR_SHMMAP", 5386),
    )
)
NO_ROOM_BYTES = 1 << 20  # free on the index's disk below which those errors are "full"


def disk_full(exc: BaseException, where: Path | None = None) -> bool:
    """An SQLite error saying the disk is full: nothing is wrong with the index, and
    a rebuild would fail the same way (or replace a good index with a smaller one).
    SQLITE_FULL; and, with `where` (the index's folder), the I/O errors a full disk
    gives (`_FULL_DISK_IOERRS`) when that disk has less than `NO_ROOM_BYTES` free
    (before 2026-12-07 doctor called such an index damaged, "disk I/O error")."""
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(code, int):
        return False
    if code & 0xFF == sqlite3.SQLITE_FULL:
        return True
    return where is not None and code in _FULL_DISK_IOERRS and no_room(where)


def no_room(where: Path) -> bool:
    """Whether the disk of `where` (or of its nearest folder that is there) has less
    than `NO_ROOM_BYTES` free for us."""
    for folder in (where, *where.parents):
        try:
            vfs = os.statvfs(folder)
        except FileNotFoundError:
            continue
        except OSError:
            return False
        no_inode = vfs.f_files > 0 and vfs.f_favail == 0  # (the -shm file is a new one)
        return no_inode or vfs.f_bavail * vfs.f_frsize < NO_ROOM_BYTES
    return False


def transient(exc: BaseException) -> bool:
    """An SQLite error saying another connection held a lock longer than our busy
    timeout ("database is locked"): nothing is wrong with the index, and resetting it
    would only replace it under that connection. The same work later succeeds."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def pass_on_busy_or_full(exc: sqlite3.DatabaseError, where: Path | None = None) -> None:
    """Raise `exc` itself when it says nothing about the index (`transient`,
    `disk_full` on the disk of `where`): a check must not call it damage, which its
    callers rebuild."""
    if transient(exc) or disk_full(exc, where):
        raise exc


def _create_schema(db: sqlite3.Connection) -> None:
    """An empty index's tables and rows, on a connection to an empty database."""
    db.executescript(f"BEGIN;{_SCHEMA}COMMIT;")
    db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
    db.execute("INSERT INTO meta VALUES ('tokenizer', ?)", (TOKENIZER,))
    db.execute("INSERT INTO meta VALUES ('terms_docs', 0)")
    db.execute("INSERT INTO meta VALUES ('last_id', 0)")
    # Pending terms flushed every 16 MiB instead of 1 MiB: 2-3x faster bulk
    # indexing with a large vocabulary (fewer, larger b-tree segments to merge).
    db.execute("INSERT INTO fts (fts, rank) VALUES ('hashsize', ?)", (HASH_BYTES,))


def private_file(path: Path, *, exclusive: bool = False) -> None:
    """Create `path` 0600 if missing (SQLite gives its -wal/-shm files the same mode);
    `exclusive`: FileExistsError if it is there."""
    flags = os.O_RDWR | os.O_CREAT | (os.O_EXCL if exclusive else 0)
    os.close(open_private(path, flags))


class SearchIndex:
    """One connection to the index file (thread-safe; reopens once the file is replaced).

    `writable=False` never creates anything: a missing file raises FileNotFoundError.
    """

    def __init__(self, root: Path, *, writable: bool = False, cache_mb: int = 32) -> None:
        self.layout = Layout(Path(root))
        self.path = self.layout.search_index
        self.writable = writable
        self.cache_mb = cache_mb
        self.lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._inode = 0
        self._shards: tuple[Shard, ...] = ()  # attached to `_db` as s1, s2...

    # -- opening -----------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        """The connection, (re)opened when the file was replaced since."""
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            inode = 0
        if self._db is not None and inode == self._inode:
            return self._db
        self.close()
        if inode == 0 and not self.writable:
            raise FileNotFoundError(self.path)
        self._db = self._connect()
        return self._db

    def _connect(self) -> sqlite3.Connection:
        if self.writable:
            ensure_private_dir(self.layout.search)
            # Created if missing; an existing file is never opened and closed here: that
            # would drop this process's locks on it (`_read_head`).
            try:
                private_file(self.path, exclusive=True)
            except FileExistsError:
                if stat.S_IMODE(os.stat(self.path).st_mode) != FILE_MODE:
                    os.chmod(self.path, FILE_MODE)
        # A URI either way, so that shards attach by URI too (never created by ATTACH).
        db = sqlite3.connect(
            sqlite_uri(self.path), uri=True, check_same_thread=False, isolation_level=None
        )
        self._inode = os.stat(self.path).st_ino
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute(f"PRAGMA cache_size = -{self.cache_mb * 1024}")
            db.execute("PRAGMA temp_store = MEMORY")
            if self.writable:
                if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError:
            db.close()
            raise
        self._shards = ()
        return db

    def shard_path(self, name: str) -> Path:
        return self.layout.search / name

    def shards(self) -> tuple[Shard, ...]:
        """The shard files this index names, attached to the connection (again when
        the list changed: a rebuild elsewhere)."""
        with self.lock:
            db = self.db
            try:
                rows = db.execute("SELECT name, first, docs FROM shards ORDER BY first").fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return ()  # an empty file, or a schema the check will refuse
                raise
            found = tuple(Shard(f"s{k}", *row) for k, row in enumerate(rows, 1))
            if found != self._shards:
                for shard in self._shards:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute(f"DETACH DATABASE {shard.alias}")
                self._shards = ()
                for shard in found:
                    if not (
                        type(shard.name) is str
                        and shard.name.startswith(SHARD_PREFIX)
                        and "/" not in shard.name
                        and type(shard.first) is int
                        and type(shard.docs) is int
                    ):
                        raise IndexDamaged(f"shard row {shard.name!r} is wrongly typed")
                    uri = sqlite_uri(self.shard_path(shard.name))
                    db.execute(f"ATTACH DATABASE ? AS {shard.alias}", (uri,))
                self._shards = found
            return found

    def match_sources(self) -> list[tuple[str, int]]:
        """Every full-text table as (schema, what to add to its rowids to get `docs.id`):
        `main` first, then the shards in `docs.id` order."""
        return [("main", 0), *((s.alias, s.first - 1) for s in self.shards())]

    def query_each_table(
        self, make_sql: Callable[[str, int], str], params: Iterable[Any] = ()
    ) -> list[list[Any]]:
        """The rows of `make_sql(schema, offset)` for every full-text table
        (`match_sources`), all on one connection: a rebuild elsewhere between two of
        them cannot pair one index's table names with another's offsets."""
        args = tuple(params)
        with self.lock:
            sources = self.match_sources()  # reopens and attaches if need be
            db = self._db
            assert db is not None
            return [
                db.execute(make_sql(schema, offset), args).fetchall() for schema, offset in sources
            ]

    def close(self) -> None:
        with self.lock:
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
                self._db = None

    def __enter__(self) -> SearchIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check(self, *, pages: bool = False) -> None:
        """Raise IndexDamaged unless the file is an index of this schema, whole.

        Cheap: the SQLite header and size (a truncated file is shorter than its
        header says), the meta rows and their types, the columns of every table.
        Damage deeper inside shows as a DatabaseError when it is read, which the
        callers treat the same way; but a page that reads without error and is
        wrong (bit rot) only drops hits. `pages` also reads every page of the index
        and its shards (`PRAGMA quick_check`: 0.7 s warm, 2.4 s cold, at 1M
        messages), for doctor and `persist reindex --catch-up`.
        """
        _check_header(self.path, "")
        try:
            db = self.db
            # one read transaction, one snapshot: a writer's reset (`_reset_in_place`)
            # may commit between two statements, and a statement prepared against the
            # old schema then read the new file's tables ("vtable constructor failed")
            began = not db.in_transaction
            if began:
                db.execute("BEGIN")
            try:
                self._check_tables(db)
            finally:
                if began and db.in_transaction:
                    db.execute("COMMIT")
            if self.writable and not self.has_index(ELSEWHERE_INDEX):
                db.execute(ELSEWHERE_SQL)  # one pass over docs, once
        except sqlite3.DatabaseError as exc:
            pass_on_busy_or_full(exc, self.layout.search)
            raise IndexDamaged(str(exc)) from None
        self._check_shards(db)
        if pages:
            self._quick_check("main", "")
            for shard in self.shards():
                self._quick_check(shard.alias, f"shard {shard.name}: ")

    @staticmethod
    def _check_tables(db: sqlite3.Connection) -> None:
        """The meta rows and the columns of the main file's tables (`check`)."""
        rows = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('schema', 'tokenizer')"))
        schema = rows.get("schema")
        if type(schema) is not int:
            raise IndexDamaged(f"schema {schema!r}, expected {SCHEMA_VERSION}")
        if schema != SCHEMA_VERSION:
            raise IndexOutdated(schema)
        if rows.get("tokenizer") != TOKENIZER:
            raise IndexDamaged("another tokenizer")
        for table, columns in (("docs", _DOC_COLUMNS), ("segments", _SEGMENT_COLUMNS)):
            found = tuple((r[1], r[2]) for r in db.execute(f"PRAGMA table_info({table})"))
            if found != columns:
                raise IndexDamaged(f"table {table} has other columns")
        db.execute("SELECT rowid FROM fts WHERE fts MATCH 'x' LIMIT 1").fetchall()
        db.execute("SELECT term FROM terms LIMIT 1").fetchall()

    def _check_shards(self, db: sqlite3.Connection) -> None:
        for name in self._shard_names():
            _check_header(self.shard_path(name), f"shard {name}: ", keep_open=False)
        shard = None
        try:
            for shard in self.shards():
                tokenizer = db.execute(
                    f"SELECT value FROM {shard.alias}.meta WHERE key = 'tokenizer'"
                ).fetchall()
                if tokenizer != [(TOKENIZER,)]:
                    raise IndexDamaged(f"shard {shard.name}: another tokenizer")
                db.execute(f"SELECT rowid FROM {shard.alias}.fts('x') LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            pass_on_busy_or_full(exc, self.layout.search)
            where = "a shard" if shard is None else f"shard {shard.name}"
            raise IndexDamaged(f"{where}: {exc}") from None

    def _quick_check(self, schema: str, where: str) -> None:
        """IndexDamaged unless SQLite's `quick_check` of `schema` says ok (every page
        read: b-trees, free list, records; not the index-versus-table check)."""
        try:
            rows = self.db.execute(f"PRAGMA {schema}.quick_check(1)").fetchall()
        except sqlite3.DatabaseError as exc:
            pass_on_busy_or_full(exc, self.layout.search)
            raise IndexDamaged(f"{where}{exc}") from None
        if rows != [("ok",)]:
            first = str(rows[0][0]).replace(f"*** in database {schema} ***", "").strip()
            line = first.splitlines()[0] if first else "not ok"
            raise IndexDamaged(f"{where}database disk image is malformed ({line})")

    def _shard_names(self) -> list[str]:
        try:
            rows = self.query("SELECT name FROM shards")
        except sqlite3.DatabaseError as exc:
            pass_on_busy_or_full(exc, self.layout.search)
            raise IndexDamaged(str(exc)) from None
        return [str(name) for (name,) in rows]

    def reset(self) -> None:
        """Make the file an empty index (writers only, under the writers' lock).

        In place whenever SQLite can still write the file: an empty index is copied
        over it page by page (SQLite's backup, one write transaction through the WAL),
        so another process's connection (the TUI, a search, doctor) sees the old index
        or the new one on the connection it has, and no file is deleted under it
        (before 2026-12-07 every reset unlinked the -wal and -shm and renamed a new
        file over the index: such a connection went on reading the deleted file, and
        one opened between the two steps read another file's log). Only a file SQLite
        cannot use at all (not an SQLite file, a header that is garbage) is replaced,
        and so is one no longer in WAL mode (emptied, cut inside its header: see
        `_in_wal_mode`). Another process's lock raises (`transient`), the file as it was."""
        assert self.writable
        with self.lock:
            if not _in_wal_mode(self.path):
                self._replace()
            else:
                try:
                    self._reset_in_place()
                except sqlite3.DatabaseError as exc:
                    if transient(exc) or disk_full(exc, self.layout.search):
                        raise
                    self._replace()
            remove_shard_files(self.layout.search, keep=())
            self.db  # opened in WAL mode, as every writer opens it  # noqa: B018

    def _reset_in_place(self) -> None:
        db = self.db
        page_size = int(db.execute("PRAGMA page_size").fetchone()[0])  # reads page 1
        # The write lock, waited for as long as any write waits (`BUSY_TIMEOUT_MS`):
        # Python's backup would retry a locked step without end.
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")
        empty = sqlite3.connect(":memory:", isolation_level=None)
        try:
            empty.execute(f"PRAGMA page_size = {page_size}")  # a WAL file keeps its own
            _create_schema(empty)
            empty.backup(db)
        finally:
            empty.close()
        self.close()  # its attached shards and cached schema were the old index's

    def _replace(self) -> None:
        """Replace a file SQLite cannot write with an empty index, made beside it and
        renamed into place (in WAL mode already: its first reader needs no lock to
        switch it)."""
        self.close()
        ensure_private_dir(self.layout.search)
        remove_new_files(self.path)
        fresh = new_file(self.path)
        try:
            private_file(fresh)
            db = sqlite3.connect(str(fresh), isolation_level=None)
            try:
                _create_schema(db)
                db.execute("PRAGMA journal_mode = WAL")
            finally:
                db.close()  # the last connection: its log is moved into the file and deleted
            # the old file's log must not be read against the new file
            for suffix in ("-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")
            os.replace(fresh, self.path)
        except BaseException:
            # SIGTERM and Ctrl-C end a command through here: no `.new` left beside the
            # index (a SIGKILL's are removed by the next catch-up, `remove_new_files`)
            remove_new_files(self.path)
            raise

    # -- writing -----------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def add_documents(self, docs: Sequence[Document], db: sqlite3.Connection | None = None) -> int:
        """Index `docs` after everything indexed so far; returns the first new rowid.

        In the caller's transaction when `db` is given (the journal indexer commits
        its progress with them), else in one of its own.
        """
        if db is None:
            with self.transaction() as tx:
                return self.add_documents(docs, tx)
        return self.add_rows([doc.row() for doc in docs], [doc.text for doc in docs], db)

    def add_rows(
        self, rows: Sequence[tuple[Any, ...]], texts: Sequence[str], db: sqlite3.Connection
    ) -> int:
        """`add_documents` for rows already made (`Document.row()`, and their texts)."""
        return insert_rows(db, rows, texts)

    def segment_states(self) -> dict[int, SegmentState]:
        with self.lock:
            rows = self.db.execute("SELECT * FROM segments ORDER BY number").fetchall()
        states = {}
        for row in rows:
            if not all(type(v) is int for v in row[:7]) or not all(
                type(v) is bytes for v in row[7:]
            ):
                raise IndexDamaged(f"progress of segment {row[0]!r} is wrongly typed")
            states[row[0]] = SegmentState(*row)
        return states

    def save_segment(self, db: sqlite3.Connection, state: SegmentState) -> None:
        save_segment(db, state)

    def adopt_shard(self, name: str) -> list[SegmentState]:
        """Make the shard `name` (built by `shards.build_shard`) part of the index: its
        scratch rows copied after the index's own, ids moved up, with their progress
        rows and the `shards` row, in one transaction; the scratch file is deleted.
        Returns the progress of the segments it holds. Raises IndexDamaged if the
        scratch rows are not what a shard build writes."""
        scratch = self.shard_path(scratch_name(name))
        columns = ", ".join(n for n, _t in _DOC_COLUMNS[1:])
        with self.lock:
            db = self.db
            db.execute("ATTACH DATABASE ? AS build", (sqlite_uri(scratch),))
            try:
                n, low, high = db.execute(
                    "SELECT count(*), min(id), max(id) FROM build.docs"
                ).fetchone()
                if n and (low, high) != (1, n):
                    raise IndexDamaged(f"shard {name}: its rows are not numbered 1 to {n}")
                with self.transaction() as tx:
                    first = next_id(tx)
                    tx.execute(
                        f"INSERT INTO docs SELECT id + {first - 1}, {columns} "
                        "FROM build.docs ORDER BY id"
                    )
                    tx.execute("INSERT OR REPLACE INTO segments SELECT * FROM build.segments")
                    tx.execute("INSERT INTO shards VALUES (?, ?, ?)", (name, first, n))
                    if n:
                        gave_out(tx, first + n - 1)
                rows = db.execute("SELECT * FROM build.segments ORDER BY number").fetchall()
            finally:
                db.execute("DETACH DATABASE build")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(scratch)
        return [SegmentState(*row) for row in rows]

    def refresh_terms(self) -> None:
        """Snapshot the vocabulary (every distinct word without digits and its document
        count) into `terms`, which fuzzy lookups and ranking read; one pass over the index
        and its shards (9-10 s at 1M messages)."""
        shards = self.shards()
        with self.transaction() as db:
            db.execute("DELETE FROM terms")
            # Words with digits (ids, hashes, numbers) are left out: a typo in an id is
            # not what fuzzy matching is for, and they are most of a large vocabulary.
            db.execute(
                "INSERT INTO terms SELECT term, doc FROM vocab WHERE term NOT GLOB '*[0-9]*'"
            )
            for shard in shards:
                vocab = f"temp.vocab_{shard.alias}"
                db.execute(
                    f"CREATE VIRTUAL TABLE IF NOT EXISTS {vocab} "
                    f"USING fts5vocab({shard.alias}, fts, row)"
                )
                db.execute(
                    f"INSERT INTO terms SELECT term, doc FROM {vocab} "
                    "WHERE term NOT GLOB '*[0-9]*' AND true "
                    "ON CONFLICT (term) DO UPDATE SET docs = docs + excluded.docs"
                )
                db.execute(f"DROP TABLE {vocab}")
            db.execute(f"INSERT OR REPLACE INTO meta VALUES ('terms_docs', {_LAST_ID})")
            db.execute(_NEXT_TERMS_VERSION)  # `terms_docs` alone may stay the same

    def checkpoint(self) -> None:
        """Move the write-ahead log into the file and empty it (after a catch-up)."""
        with self.lock:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- reading -----------------------------------------------------------------
    @contextlib.contextmanager
    def interruptible(self, cancelled: Callable[[], bool] | None) -> Iterator[None]:
        """Queries inside abort (sqlite3.OperationalError) soon after `cancelled()` is true."""
        if cancelled is None:
            yield
            return
        with self.lock:
            db = self.db
            db.set_progress_handler(lambda: int(cancelled()), PROGRESS_STEPS)
            try:
                yield
            finally:
                db.set_progress_handler(None, 0)

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        with self.lock:
            return self.db.execute(sql, tuple(params)).fetchall()

    def has_index(self, name: str) -> bool:
        return bool(
            self.query("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", [name])
        )

    def meta(self, key: str) -> Any:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def doc_count(self) -> int:
        """The ids given out so far, at once (BM25's corpus size): rows of pruned
        segments, dropped since, still count. `indexed_rows` counts what is there."""
        return int(self.query(f"SELECT {_LAST_ID}")[0][0])

    def indexed_rows(self) -> int:
        """Documents in the index now (a count: tens of ms at a million)."""
        return int(self.query("SELECT count(*) FROM docs")[0][0])

    def size_bytes(self) -> int:
        """Bytes of the file, its write-ahead log and its shards."""
        paths = [self.path, Path(f"{self.path}-wal")]
        paths += [self.shard_path(s.name) for s in self.shards()]
        total = 0
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(path).st_size
        return total


@dataclass(frozen=True)
class Shard:
    """A full-text table in a file of its own: its rowid r is `docs.id` r + first - 1."""

    alias: str
    name: str
    first: int
    docs: int


def scratch_name(shard: str) -> str:
    """The file a shard's rows are built in until they are adopted."""
    return shard.removesuffix(".sqlite3") + ".rows.sqlite3"


def save_segment(db: sqlite3.Connection, state: SegmentState) -> None:
    """Write one segment's progress row (in the `segments` the connection sees)."""
    db.execute("INSERT OR REPLACE INTO segments VALUES (?,?,?,?,?,?,?,?,?)", state.values())


def insert_rows(
    db: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], texts: Sequence[str]
) -> int:
    """Append `rows` to the `docs` and `texts` to the `fts` the connection sees (an
    index, or a shard being built); returns the first new id."""
    first = next_id(db)
    db.executemany(
        "INSERT INTO docs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        ((k, *row) for k, row in enumerate(rows, first)),
    )
    db.executemany(
        "INSERT INTO fts (rowid, body) VALUES (?, ?)", zip(count(first), map(fts_text, texts))
    )
    if rows:
        gave_out(db, first + len(rows) - 1)
    return first


def next_id(db: sqlite3.Connection) -> int:
    """The id the next document takes: one after every id given out before, though
    their rows were dropped since (a pruned segment's, every row of the index even).
    Words an id's row left in a full-text table (a shard, a pruned file that no longer
    read back) then never match a later document. Before 2026-12-07 ids started again
    after the highest id left, and such words matched whichever message took it."""
    return int(db.execute(f"SELECT {_LAST_ID} + 1").fetchone()[0])


def gave_out(db: sqlite3.Connection, last: int) -> None:
    """Note `last` as the highest id given out (`next_id`), in the caller's transaction."""
    db.execute("INSERT OR REPLACE INTO meta VALUES ('last_id', ?)", (last,))


def delete_texts(db: sqlite3.Connection, docs: Iterable[tuple[int, str]]) -> None:
    """Take (id, text) documents out of the `fts` the connection sees: a contentless
    table forgets a row only when given the text it was given, as `insert_rows` gave it."""
    db.executemany(
        "INSERT INTO fts (fts, rowid, body) VALUES ('delete', ?, ?)",
        ((doc, fts_text(text)) for doc, text in docs),
    )


def forget_terms(db: sqlite3.Connection, texts: Sequence[str]) -> None:
    """Take the texts of documents leaving the index (their words already out of `fts`,
    `delete_texts`) out of the `terms` snapshot's counts, in the caller's transaction: a
    word no longer counted anywhere is no longer a typo suggestion. Give only documents
    the snapshot counted (ids up to `terms_docs`). Their words are found by SQLite's own
    tokenizer (a scratch table in memory): milliseconds for a segment, where taking the
    snapshot again reads all of `fts` (9-10 s at 1M messages)."""
    if not texts:
        return
    db.execute(
        "CREATE VIRTUAL TABLE temp.gone USING fts5 "
        f"(body, content='', detail=none, tokenize='{TOKENIZER}')"
    )
    try:
        db.execute("CREATE VIRTUAL TABLE temp.gone_vocab USING fts5vocab (temp, gone, row)")
        db.executemany("INSERT INTO temp.gone (body) VALUES (?)", ((fts_text(t),) for t in texts))
        db.execute(
            "UPDATE terms SET docs = docs - v.doc FROM temp.gone_vocab AS v "
            "WHERE terms.term = v.term"
        )
        db.execute("DELETE FROM terms WHERE docs <= 0")
        db.execute(_NEXT_TERMS_VERSION)
    finally:
        db.execute("DROP TABLE IF EXISTS temp.gone_vocab")
        db.execute("DROP TABLE temp.gone")


def remove_shard_files(folder: Path, keep: Iterable[str]) -> None:
    """Delete the shard files (and their SQLite companions) in `folder` not named in `keep`."""
    kept = set(keep)
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            name = entry.name
            base = name.removesuffix("-wal").removesuffix("-shm").removesuffix("-journal")
            if name.startswith(SHARD_PREFIX) and base not in kept:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


def new_file(path: Path) -> Path:
    """Where `SearchIndex._replace` makes the empty index that replaces `path`."""
    return path.with_name(f"{path.name}.new")


def remove_new_files(path: Path) -> None:
    """Delete what a replacement of the index at `path` left (`new_file` and its SQLite
    logs): a replacement ended by a signal or a SIGKILL (writers only, under the
    writers' lock: no replacement is under way)."""
    fresh = new_file(path)
    for suffix in ("", "-journal", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            os.unlink(f"{fresh}{suffix}")


def sqlite_uri(path: Path, mode: str = "rw") -> str:
    """`path` as an SQLite URI (`mode=rw`: never creates the file)."""
    return f"file:{quote(os.fsencode(path))}?mode={mode}"  # bytes: a name not UTF-8 too


_HEADS: dict[str, int] = {}  # path -> a descriptor of the file there, kept open (`_read_head`)
_HEADS_LOCK = threading.Lock()


def _read_head(path: Path) -> tuple[bytes, int]:
    """The first 100 bytes of the file at `path` and its size, read through a descriptor
    this process keeps open as long as that file is at `path`.

    Closing a descriptor of a file drops every POSIX lock the process holds on it,
    SQLite's included: another process's connection, closing, then takes itself for the
    last one, moves the WAL into the file and deletes the -wal and -shm under this
    process's connections. Before 2026-12-07 `check` opened and closed the index for
    its header at every catch-up: the recorder's indexer then wrote to a deleted log and
    read "database disk image is malformed" (and reset the index), a search saw nothing
    newer. A descriptor is closed once another file (or none) is at `path`: SQLite never
    deletes the log of a database that has moved."""
    key = str(path)
    with _HEADS_LOCK:
        fd = _HEADS.get(key)
        if fd is not None:
            try:
                st = os.stat(path)
                kept = os.fstat(fd)
                current = (st.st_dev, st.st_ino) == (kept.st_dev, kept.st_ino)
            except FileNotFoundError:
                current = False
            if not current:
                del _HEADS[key]
                os.close(fd)
                fd = None
        if fd is None:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):  # never an SQLite file of ours: nothing locked
                os.close(fd)
                code = errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL
                raise OSError(code, os.strerror(code), str(path))
            _HEADS[key] = fd
        return os.pread(fd, 100, 0), os.fstat(fd).st_size


def _in_wal_mode(path: Path) -> bool:
    """Whether the file at `path` is an SQLite file in WAL mode (its header's read and
    write versions 2), which a writer can empty in place (`SearchIndex._reset_in_place`)
    while other processes have it open: their idle connections hold a shared lock on
    the file, which a write through the WAL does not need. Any other file (emptied, cut
    inside its header, in another journal mode) must first be switched to WAL, which
    takes an exclusive lock: before 2026-12-07 a search waited for it out its busy
    timeout, three times, and failed ("no such table") while the recorder's idle
    indexer, or a TUI, had the index open. Such a file is replaced instead."""
    try:
        header, _size = _read_head(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return len(header) == 100 and header[:16] == _SQLITE_MAGIC and header[18:20] == b"\x02\x02"


def _check_header(path: Path, what: str, *, keep_open: bool = True) -> None:
    """Raise IndexDamaged unless `path` starts like a whole SQLite file. `keep_open`:
    read it as `_read_head` does (the index, which connections here may have open);
    False for a shard, never written once made (its locks guard nothing), whose file
    a rebuild deletes: a descriptor kept would keep its disk space."""
    try:
        if keep_open:
            header, size = _read_head(path)
        else:
            with open(path, "rb") as f:
                header = f.read(100)
                size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        raise IndexDamaged(f"{what}missing") from None
    if size == 0:
        raise IndexDamaged(f"{what}empty")
    if len(header) < 100 or header[:16] != _SQLITE_MAGIC:
        raise IndexDamaged(f"{what}not an SQLite file")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    valid_for = int.from_bytes(header[92:96], "big")
    changes = int.from_bytes(header[24:28], "big")
    # A checkpoint writes page 1 first: one cut short leaves a header that counts pages
    # the file does not hold yet, which its WAL still holds (the next open completes
    # the file). With a WAL there, the header's count says nothing about damage.
    wal = path.with_name(path.name + "-wal")
    with contextlib.suppress(OSError):
        if wal.stat().st_size > 0:
            return
    if valid_for == changes and size < pages * page_size:
        raise IndexDamaged(f"{what}truncated ({size} bytes, its header says {pages * page_size})")
