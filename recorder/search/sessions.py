"""Agent sessions (Claude Code, Gemini CLI, Codex) in the search index, next to the journal.

Each session file found under the agents' roots (as `persist sessions` finds them) has a
progress row in `session_files`: its stat fingerprint (the scan's own key: size, mtime,
inode of the file and its sub-agent files), how many of its messages are indexed and a
SHA-1 over those messages (stable id and text). A catch-up stats every file; only a file
whose fingerprint changed is read again. When the messages already indexed are still the
first ones (the session grew), only the new ones are added; otherwise (rewritten, a
Claude branch changed) the session's documents are replaced. A file that disappeared
keeps its documents when we hold a protected copy of it (marked `deleted`), else they
go. A Gemini session migrated from `.json` to `.jsonl` (both left on disk) is indexed
once, from the file the listing shows, under the `.jsonl`'s row. After a rebuild (the
index file starts empty) every session is indexed again; a session whose original is
gone is read back from its copy. Nothing is written in the agents' folders: sessions
are only read.

Session documents keep their text in the index (there is no journal line to read it
back from, and a contentless FTS5 row can only be deleted with its original text).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recorder.export.redact import record_secrets, redact_record
from recorder.export.render import record_text
from recorder.search.index import Document, SearchIndex, delete_texts, secret_words
from recorder.sources import claude, codex, gemini
from recorder.sources.copies import copies_dir, list_copies, restore_to
from recorder.sources.discover import AgentOwners, Roots, Unit, shared_ids, units
from recorder.sources.journal_view import to_record
from recorder.sources.model import (
    Session,
    SessionMessage,
    Source,
    Transcript,
    claude_folder,
    session_key,
)
from recorder.store.fsutil import ensure_private_dir
from recorder.store.jsontext import dumps_names
from recorder.store.layout import Layout

MAX_TEXT = 1 << 20  # characters of an agent session message indexed (a journal message: all)

_TABLE = (
    "CREATE TABLE IF NOT EXISTS session_files (path TEXT PRIMARY KEY, key TEXT, "
    "fingerprint TEXT, messages INTEGER, digest BLOB, deleted REAL) WITHOUT ROWID"
)


@dataclass
class SessionCatchUp:
    """What one catch-up of the sessions did."""

    added: int = 0  # documents indexed
    removed: int = 0  # documents deleted (rewritten sessions, originals gone without a copy)
    read: int = 0  # session files read (the others were unchanged: stat only)
    pending: int = 0  # changed files left for the next catch-up (the time budget ran out)
    problems: tuple[str, ...] = ()  # files that could not be read (kept as they were)


def _db_name(path: str) -> str | bytes:
    """A file's path as the `session_files` row holds it: its text, or for a name that
    is not UTF-8 (which SQLite's text cannot hold) the bytes it is, a BLOB."""
    try:
        path.encode()
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def _from_db(value: str | bytes) -> str:
    """`_db_name` read back: the path as `str(Path)` spells it."""
    return value if isinstance(value, str) else os.fsdecode(value)


@dataclass
class _Progress:
    key: str
    fingerprint: str
    messages: int
    digest: bytes
    deleted: float | None


def message_document(msg: SessionMessage) -> Document:
    """The index's view of one session message (the text a journal record of it shows)."""
    rec = to_record(msg)
    text = record_text(rec)
    spans = record_secrets(rec)
    shown = record_text(redact_record(rec, spans)) if spans else text
    return Document(
        text=text[:MAX_TEXT],
        ts=msg.ts,
        kind="msg",
        seq=None,
        sender=msg.sender.value,
        topic=msg.topic,
        session=msg.session_id,
        source=msg.source.value,
        origin=msg.stable_id,
        secrets=len(spans),
        secret_words=secret_words(text[:MAX_TEXT], shown[:MAX_TEXT]) if spans else (),
    )


def _digest(messages: Sequence[SessionMessage]) -> bytes:
    h = hashlib.sha1()
    for m in messages:
        h.update(m.stable_id.encode())
        h.update(b"\0")
        h.update(m.text.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.digest()


# the digest of the session files' `signature` as the last complete catch-up left them
_SIGNATURE_KEY = "sessions_signature"


def _signature_digest(signature: tuple[Any, ...]) -> str:
    return hashlib.sha256(repr(signature).encode("utf-8", "surrogateescape")).hexdigest()


def _walk(path: str, out: list[Any]) -> None:
    """(path, size, mtime, inode) of `path` and, for a folder, of everything below it."""
    try:
        st = os.stat(path)
    except OSError:
        out.append((path, None))
        return
    out.append((path, st.st_size, st.st_mtime_ns, st.st_ino))
    stack = [path] if os.path.isdir(path) else []
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            out.append((entry.path, st.st_size, st.st_mtime_ns, st.st_ino))
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)


def _read(source: Source, path: Path, unit: Unit | None, project_path: str = "") -> Transcript:
    """A session file in full (`unit`: as discovery found it, with its own sub-agent
    files; else a restored copy, the only session of its folder)."""
    if unit is not None:
        return unit.read_all()
    if source is Source.CLAUDE:
        flat = claude.agents_by_session(claude.flat_agent_files(path.parent))
        return claude.read_transcript(path, flat_agents=flat)
    if source is Source.GEMINI:
        return gemini.read_transcript(path, project_path)
    return codex.read_transcript(path, {})


BATCH_FILES = 256  # session files committed in one transaction (at most)
BATCH_TEXT = 8 << 20  # characters of message text read before a commit (at most)


class _Batch:
    """Session files read but not yet committed: each goes with its progress row in the
    same transaction, so an index killed at any point is consistent (a file is indexed
    with its progress, or neither); several files share one commit (one commit per
    small session wrote ~55 KB for ~300 bytes of text)."""

    def __init__(self, owner: SessionIndexer, result: SessionCatchUp) -> None:
        self.owner = owner
        self.result = result
        self.steps: list[Callable[[sqlite3.Connection], None]] = []
        self.text = 0

    def add(
        self,
        path: str,
        fingerprint: str,
        transcript: Transcript,
        row: _Progress | None,
        deleted: float | None,
    ) -> None:
        owner, result = self.owner, self.result
        self.steps.append(
            lambda db: owner._apply(db, path, fingerprint, transcript, row, deleted, result)
        )
        self.text += sum(len(m.text) for m in transcript.messages)
        if len(self.steps) >= BATCH_FILES or self.text >= BATCH_TEXT:
            self.flush()

    def drop(self, path: str, keys: Sequence[str]) -> None:
        """Forget `path`'s progress row and the documents of `keys` (in the next commit)."""

        def step(db: sqlite3.Connection) -> None:
            for key in dict.fromkeys(k for k in keys if k):
                self.result.removed += SessionIndexer._remove(db, key)
            db.execute("DELETE FROM session_files WHERE path = ?", (_db_name(path),))

        self.steps.append(step)

    def flush(self) -> None:
        if not self.steps:
            return
        with self.owner.index.transaction() as db:
            for step in self.steps:
                step(db)
        self.steps.clear()
        self.text = 0


def _gemini_twins(found: Sequence[Unit]) -> dict[str, str]:
    """`.jsonl` path -> its legacy `.json` (the same name without the `l`), for each
    Gemini session found in both forms: resuming a legacy session migrates it to a new
    `.jsonl` and leaves the `.json` beside it."""
    paths = {str(u.path) for u in found if u.source is Source.GEMINI}
    return {p: p[:-1] for p in paths if p.endswith(".jsonl") and p[:-1] in paths}


def _scope(session: Session, shared: set[str]) -> str:
    """The scope a copied session's documents carry (`Session.scope`): its project folder
    when its Claude id is `shared` by another folder."""
    scoped = session.source is Source.CLAUDE and not session.subagent and session.id in shared
    return session.folder if scoped else ""


class SessionIndexer:
    """Keeps the sessions' documents level with the agents' files (the journal indexer's
    writer calls it under its lock)."""

    def __init__(self, index: SearchIndex, layout: Layout, roots: Roots) -> None:
        self.index = index
        self.layout = layout
        self.roots = roots
        self._level: tuple[Any, ...] | None = None
        self._seen: tuple[Any, ...] | None = None
        self._agents = AgentOwners()  # which session each 2.0.x agent file is (by its stat)

    def signature(self) -> tuple[Any, ...]:
        """The stat of every file and folder where sessions and our copies live (stat
        only, one `scandir` per folder: a superset of what the scan reads, so any change
        a catch-up could find changes it)."""
        parts: list[Any] = []
        roots = self.roots
        places: list[Path] = [copies_dir(self.layout)]
        if roots.claude is not None:
            places.append(roots.claude / "projects")
        if roots.gemini is not None:
            places += [roots.gemini / "tmp", roots.gemini / "projects.json"]
        if roots.codex is not None:
            places += [roots.codex / n for n in ("sessions", "archived_sessions")]
            places.append(roots.codex / "session_index.jsonl")
        for place in places:
            _walk(str(place), parts)
        return tuple(parts)

    def level(self) -> bool:
        """True when nothing changed since the last catch-up (remembers what it saw)."""
        self._seen = self.signature()
        return self._level is not None and self._seen == self._level

    def stored_level(self) -> bool:
        """Whether the session files are as the last complete catch-up of any process
        left them (`_SIGNATURE_KEY` in the index's meta), without the writers' lock: a
        search another writer locks out answers at once only then (before, a session
        changed since went unread without a word)."""
        seen = self._seen if self._seen is not None else self.signature()
        try:
            rows = self.index.query("SELECT value FROM meta WHERE key = ?", (_SIGNATURE_KEY,))
        except sqlite3.Error:
            return False
        return bool(rows) and rows[0][0] == _signature_digest(seen)

    def forget(self) -> None:
        """The index was rebuilt: the next catch-up looks at every file."""
        self._level = None

    def _progress(self) -> dict[str, _Progress]:
        with self.index.transaction() as db:
            db.execute(_TABLE)
        rows = self.index.query(
            "SELECT path, key, fingerprint, messages, digest, deleted FROM session_files"
        )
        return {_from_db(r[0]): _Progress(_from_db(r[1]), *r[2:]) for r in rows}

    def catch_up(self, deadline: float | None = None) -> SessionCatchUp:
        """Index what changed; stops reading files at `deadline` (`time.monotonic()`),
        the rest (`pending`) waits for the next catch-up. Files are committed several
        to a transaction (`_Batch`), each with its progress row."""
        seen = self._seen if self._seen is not None else self.signature()
        self._seen = None
        result = SessionCatchUp()
        problems: list[str] = []
        stored = self._progress()
        self._agents = AgentOwners(self._agents.fresh or self._agents.known)
        found = list(units(self.roots, problems, self._agents))
        present = {str(u.path) for u in found}
        copies = {str(c.session.path): c for c in list_copies(self.layout)}
        shared = shared_ids(
            [(u.named_id, claude_folder(u.path)) for u in found if u.named_id]
            + [
                (c.session.id, c.session.folder)
                for path, c in copies.items()
                if path not in present and c.session.source is Source.CLAUDE
            ]
        )
        # Files gone first: a file indexed now under the key of one gone (moved, or the
        # `.jsonl` of a Gemini pair deleted) must not lose its documents to it.
        rekey = self._gone(stored, present, copies, shared, result)
        batch = _Batch(self, result)
        twins = _gemini_twins(found)
        legacy = set(twins.values())
        by_path = {str(u.path): u for u in found}
        for unit in found:
            path = str(unit.path)
            if path in legacy:
                continue  # the legacy `.json` of a migrated Gemini pair: with its `.jsonl`
            twin = twins.get(path)
            scope = claude_folder(unit.path) if unit.named_id in shared else ""
            # a scope is part of the fingerprint: a file whose key changed is read again
            key = [unit.key, by_path[twin].key] if twin else unit.key
            fingerprint = dumps_names([*key, scope] if scope else key).decode()
            row = stored.get(path)
            twin_row = stored.get(twin) if twin else None
            if (
                row is not None
                and row.fingerprint == fingerprint
                and row.deleted is None
                and (twin_row is None or twin_row.fingerprint == fingerprint)
            ):
                continue
            if deadline is not None and time.monotonic() >= deadline:
                result.pending += 1
                continue
            transcript = self._read_unit(unit, scope, problems, result)
            if transcript is None:
                continue  # its messages are unknown, not none: kept as indexed, read again
            older = self._read_unit(by_path[twin], "", problems, result) if twin else None
            if twin is None or older is None or older.session.key != transcript.session.key:
                batch.add(path, fingerprint, transcript, row, None)
                if twin is not None and older is not None:  # two sessions after all
                    batch.add(twin, fingerprint, older, twin_row, None)
                continue
            # one session: the later of the two (the `.jsonl` on a tie), as the listing
            # shows it, under the `.jsonl`'s row; what the `.json` had indexed goes
            if (older.session.last_ts or 0) > (transcript.session.last_ts or 0):
                transcript = older
            if twin_row is not None:
                batch.drop(twin, [twin_row.key, row.key if row else ""])
                row = None
            batch.add(path, fingerprint, transcript, row, None)
        batch.flush()
        for path, copy in copies.items():
            if path in present or (path in stored and path not in rekey) or copy.session.subagent:
                continue
            if deadline is not None and time.monotonic() >= deadline:
                result.pending += 1
                continue
            scope = _scope(copy.session, shared)
            try:
                transcript = self._read_copy(
                    copy.folder, copy.session.source, copy.session.project_path
                ).scoped(scope)
            except (OSError, ValueError) as exc:
                problems.append(f"the copy in {copy.folder}: {exc}")
                continue
            result.read += 1
            batch.add(path, "", transcript, stored.get(path), time.time())
        batch.flush()
        result.problems = tuple(problems)
        # A file that could not be read is tried again when it changes (not every search).
        self._level = None if result.pending else seen
        with self.index.transaction() as db:  # for the searches another writer locks out
            db.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                (_SIGNATURE_KEY, None if result.pending else _signature_digest(seen)),
            )
        return result

    @staticmethod
    def _read_unit(
        unit: Unit, scope: str, problems: list[str], result: SessionCatchUp
    ) -> Transcript | None:
        """A found session file in full, or None when it could not be read (named in
        `problems`)."""
        try:
            transcript = _read(unit.source, unit.path, unit).scoped(scope)
        except (OSError, ValueError) as exc:
            problems.append(f"{unit.path}: {exc}")
            return None
        result.read += 1
        problems.extend(f"{unit.path}: {e}" for e in transcript.report.errors)
        return None if transcript.report.unread else transcript

    def _gone(
        self,
        stored: dict[str, _Progress],
        present: set[str],
        copies: dict[str, Any],
        shared: set[str],
        result: SessionCatchUp,
    ) -> set[str]:
        """Forget the files that are gone (one transaction): a file we hold a copy of is
        marked `deleted` and keeps its documents, the others' go. Returns the deleted
        sessions whose key changed (read from the copy again)."""
        rekey: set[str] = set()
        gone = {p: r for p, r in stored.items() if p not in present}
        if not gone:
            return rekey
        with self.index.transaction() as db:
            for path, row in gone.items():
                if path in copies:
                    c = copies[path].session
                    if session_key(c.source, c.id, _scope(c, shared)) != row.key:
                        rekey.add(path)
                    elif row.deleted is None:
                        db.execute(
                            "UPDATE session_files SET deleted = ? WHERE path = ?",
                            (time.time(), _db_name(path)),
                        )
                    continue
                result.removed += self._remove(db, row.key)
                db.execute("DELETE FROM session_files WHERE path = ?", (_db_name(path),))
        return rekey

    def _read_copy(self, folder: Path, source: Source, project_path: str) -> Transcript:
        ensure_private_dir(self.layout.search)
        with tempfile.TemporaryDirectory(dir=self.layout.search, prefix="copy-") as tmp:
            path = restore_to(folder, Path(tmp))
            return _read(source, path, None, project_path)

    def _apply(
        self,
        db: sqlite3.Connection,
        path: str,
        fingerprint: str,
        transcript: Transcript,
        row: _Progress | None,
        deleted: float | None,
        result: SessionCatchUp,
    ) -> None:
        """Index what is new of one file's messages (or replace them), with its progress,
        in the caller's transaction."""
        session = transcript.session
        messages = [] if session.subagent or not session.id else transcript.messages
        key = session.key
        start = 0
        if (
            row is not None
            and row.key == key
            and row.messages <= len(messages)
            and _digest(messages[: row.messages]) == row.digest
        ):
            start = row.messages
        if row is not None and start == 0 and row.messages:
            result.removed += self._remove(db, row.key)
        docs = [message_document(m) for m in messages[start:]]
        if docs:
            self.index.add_documents(docs, db)
        result.added += len(docs)
        db.execute(
            "INSERT OR REPLACE INTO session_files VALUES (?,?,?,?,?,?)",
            (_db_name(path), _db_name(key), fingerprint, len(messages), _digest(messages), deleted),
        )

    @staticmethod
    def _remove(db: sqlite3.Connection, key: str) -> int:
        """Delete one session's documents (FTS5 rows of a contentless table go by their
        text). They go by the key their origin (`<key>#<n>`) holds as spelled: the
        `topic` column is lowercased, and two Claude sessions of one id in project
        folders that differ only in case (`-tmp-Pa`, `-tmp-pa`) share it, as two in any
        folders share the `session` column."""
        source = key.partition(":")[0]
        rows = [
            (i, t)
            for i, t, origin in db.execute(
                "SELECT id, text, origin FROM docs "
                "WHERE source = ? AND topic = ? AND segment IS NULL",
                (source.lower(), key.lower()),
            )
            if (origin or "").rpartition("#")[0] == key
        ]
        delete_texts(db, ((i, t or "") for i, t in rows))
        db.executemany("DELETE FROM docs WHERE id = ?", ((i,) for i, _ in rows))
        return len(rows)

    def deleted_sessions(self, keys: Iterable[str]) -> set[str]:
        """Which of these session keys (as spelled: `-tmp-Pa` is not `-tmp-pa`) live on
        only in a protected copy."""
        wanted = list(set(keys))
        if not wanted:
            return set()
        marks = ",".join("?" * len(wanted))
        with contextlib.suppress(sqlite3.OperationalError):  # no session indexed yet
            rows = self.index.query(
                f"SELECT key FROM session_files WHERE deleted IS NOT NULL AND key IN ({marks})",
                [_db_name(k) for k in wanted],
            )
            return {_from_db(r[0]) for r in rows}
        return set()
