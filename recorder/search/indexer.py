"""Keeping the search index level with the journal: catch up, or rebuild from scratch.

One writer at a time (an flock on `search/index.lock`); readers never wait for it.
Each segment is read from where its indexing stopped, in large sequential chunks;
only whole lines are indexed (a line still being written waits for its newline).
A closed segment's torn tail is indexed as one unreadable line, as the reader
shows it. Before going on, every indexed segment is checked against its
fingerprint; anything that does not match (a segment rewritten, replaced,
truncated or gone, a segment older than the newest indexed one appearing, an
index from another journal, a damaged or foreign file) makes it rebuild.

Over 400 lines: the catch-up, the fingerprint checks and the rebuild share one
connection, one lock and the progress rows, and stay together.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from recorder.export.redact import record_secrets, redact_record
from recorder.export.render import TEXT_KEYS as _TEXT_KEYS
from recorder.export.render import record_text
from recorder.search.in_the_way import in_the_way, refuse_what_is_in_the_way
from recorder.search.index import (
    SCHEMA_VERSION,
    SOURCE_BUS,
    Document,
    IndexDamaged,
    IndexNewer,
    IndexOutdated,
    SearchIndex,
    SegmentState,
    delete_texts,
    disk_full,
    forget_terms,
    remove_new_files,
    remove_shard_files,
    secret_words,
    transient,
    unusable,
)
from recorder.search.sessions import SessionIndexer
from recorder.search.shards import (
    ShardBuild,
    new_shard_names,
    plan_runs,
    shard_workers,
)
from recorder.sources.discover import Roots
from recorder.store.fsutil import ensure_private_dir, open_private
from recorder.store.layout import Layout, list_segments, segment_number
from recorder.store.pruned import pruned_by_number
from recorder.store.reader import KIND_BAD_LINE, Record
from recorder.store.records import decode_frames, parse_line
from recorder.store.secrets import scan_frames, spans_from_meta
from recorder.store.segfile import SegmentFile, open_segment, segment_size

_CHUNK = 16 << 20  # journal bytes per transaction (FTS5 flushes its terms at each commit)
_PAUSE_BYTES = 1 << 20  # of a chunk parsed between two looks at `pause()`
_FINGER = 4096
TERMS_REFRESH_RATIO = 0.02  # re-snapshot the vocabulary when this share of docs is new

Progress = Callable[[int, int], None]  # (bytes done, bytes to do)


@dataclass
class CatchUp:
    """What one catch-up did."""

    added: int = 0  # documents indexed
    behind: int = 0  # journal bytes still not indexed (time budget ran out, or busy)
    rebuilt: str | None = None  # why the index was rebuilt from scratch, if it was
    busy: bool = False  # another process was writing the index
    waited: float = 0.0  # seconds spent waiting for that process's lock
    sessions: int = 0  # of `added`, documents from agent sessions
    sessions_pending: int = 0  # changed session files not read yet (time budget ran out)
    problems: tuple[str, ...] = ()  # session files that could not be read (kept as they were)


def journal_document(line: bytes, segment: int, offset: int) -> Document:
    """The index's view of one journal line: its text as recorded (a secret in it can
    be searched for), its fields (sender, topic, recipient) as a redacted copy shows
    them (`redact_record`): `persist stats` lists them, `from:` and `topic:` match them."""
    rec = Record(0, segment, offset, line)
    text = record_text(rec, whole=True)  # all of it (README, Search: a 16 MiB message)
    data = rec.data
    spans = record_secrets(rec)  # as every reader finds them (a damaged line too)
    secrets = len(spans)
    hidden: tuple[str, ...] = ()
    if spans:
        rec = redact_record(rec, spans)
        data = rec.data
        hidden = secret_words(text, record_text(rec, whole=True))
    if data is None:
        return Document(
            text,
            None,
            KIND_BAD_LINE,
            None,
            segment,
            offset,
            len(line),
            secrets=secrets,
            secret_words=hidden,
        )
    ts = data.get("ts")
    seq = data.get("seq")
    kind = str(data.get("kind"))
    meta = data.get("meta")
    if not isinstance(meta, dict):
        meta = {}
    payload = rec.payload if kind == "msg" else None
    recipient = session = ""
    if isinstance(payload, dict):
        to = payload.get("to")
        if isinstance(to, str):
            recipient = to
        elif isinstance(to, list):
            recipient = " ".join(x for x in to if isinstance(x, str))
        sid = payload.get("session") or payload.get("session_id") or meta.get("session")
        session = sid if isinstance(sid, str) else ""
    tags = meta.get("tags")
    tier = meta.get("ace")
    return Document(
        text=text,
        ts=float(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else None,
        kind=kind,
        seq=seq if type(seq) is int else None,
        segment=segment,
        offset=offset,
        length=len(line),
        sender=_str(meta.get("sender")),
        recipient=recipient,
        topic=_str(data.get("topic")),
        chain=_str(meta.get("chain")),
        tier=tier if type(tier) is int else None,
        tags=tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else (),
        session=session,
        secrets=secrets,
        secret_words=hidden,
    )


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def journal_row(line: bytes, segment: int, offset: int) -> tuple[tuple[Any, ...], str]:
    """`journal_document(...).row()` and its text, without the objects between: the
    common shape (a message of one payload frame, JSON with a text field that is not
    empty, or text) is read straight from the parsed line; any other (several payload
    frames, which `record_text` shows all of; an empty text, which tool calls stand
    for) goes through `journal_document`. Same result either way: tests compare them
    over every documented shape and over generated ones (test_search_rows)."""
    data = parse_line(line)
    if data is None or data.get("kind") != "msg":
        return _slow_row(line, segment, offset)
    frames = data.get("frames")
    if not frames or len(frames) > 2:  # several payload frames: `frames_text`
        return _slow_row(line, segment, offset)
    frame = frames[-1]
    if "json" in frame:
        payload = frame["json"]
        if not isinstance(payload, dict):
            return _slow_row(line, segment, offset)
        for key in _TEXT_KEYS:
            text = payload.get(key)
            if isinstance(text, str):
                break
        else:
            return _slow_row(line, segment, offset)
        if not text:  # "" : its tool calls, if it makes any (`record_text`)
            return _slow_row(line, segment, offset)
        to = payload.get("to")
        if isinstance(to, str):
            recipient = to
        elif isinstance(to, list):
            recipient = " ".join(x for x in to if isinstance(x, str))
        else:
            recipient = ""
        meta = data.get("meta")
        if not isinstance(meta, dict):
            meta = {}
        sid = payload.get("session") or payload.get("session_id") or meta.get("session")
        session = sid if isinstance(sid, str) else ""
    elif "text" in frame and isinstance(frame["text"], str):
        text = frame["text"]
        recipient = session = ""
        meta = data.get("meta")
        if not isinstance(meta, dict):
            meta = {}
    else:
        return _slow_row(line, segment, offset)
    ts = data.get("ts")
    seq = data.get("seq")
    tier = meta.get("ace")
    tags = meta.get("tags")
    joined = ""
    if isinstance(tags, list):
        kept = [t for t in tags if isinstance(t, str)]
        joined = f" {' '.join(kept)} " if kept else ""
    sender = meta.get("sender")
    topic = data.get("topic")
    chain = meta.get("chain")
    # `record_secrets` inline (a Record per line costs this path 10 %): the recorder's
    # scan when it scanned all of the message, else one now
    named = spans_from_meta(meta)
    if named is not None and not meta.get("secrets_capped"):
        secrets = len(named)
    else:
        secrets = len(scan_frames(decode_frames(line, data), cap=None).spans)
    if secrets:  # its sender and topic as shown: `journal_document` redacts them
        return _slow_row(line, segment, offset)
    row = (
        segment,
        offset,
        len(line),
        seq if type(seq) is int else None,
        float(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else None,
        "msg",
        1,
        sender.lower() if isinstance(sender, str) else "",
        recipient.lower(),
        topic.lower() if isinstance(topic, str) else "",
        chain.lower() if isinstance(chain, str) else "",
        tier if type(tier) is int else None,
        joined.lower(),
        session.lower(),
        SOURCE_BUS,
        None,
        None,
        secrets,
        None,
    )
    return row, text


def _slow_row(line: bytes, segment: int, offset: int) -> tuple[tuple[Any, ...], str]:
    doc = journal_document(line, segment, offset)
    return doc.row(), doc.text


def _sha(seg: SegmentFile, start: int, end: int) -> bytes:
    return hashlib.sha1(seg.read(start, end - start)).digest()


def _size(path: Path) -> int:
    """Uncompressed bytes of a segment (0 if it cannot be read)."""
    try:
        return segment_size(path)
    except (OSError, ValueError):
        return 0


class IndexLock:
    """The writers' flock (threads and processes alike: one open file each)."""

    def __init__(self, layout: Layout) -> None:
        self.path = layout.search_lock
        self.layout = layout
        self._fd: int | None = None

    def acquire(self, wait: float | None) -> bool:
        """Take the lock, waiting up to `wait` seconds (None: as long as it takes)."""
        ensure_private_dir(self.layout.search)
        fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if deadline is None else fcntl.LOCK_NB))
                self._fd = fd
                return True
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.02)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Indexer:
    """Brings the index of `root` level with its journal (its own connection)."""

    def __init__(self, root: Path, roots: Roots | None = None) -> None:
        """`roots`: where the agents' sessions are (None: as `persist sessions` finds
        them; `Roots(None, None, None)`: the journal alone)."""
        self.layout = Layout(Path(root))
        self.index = SearchIndex(self.layout.root, writable=True)
        self._level: tuple[Any, ...] | None = None  # `_signature()` when last found level
        self.shard_problem: str | None = None  # why the last rebuild's workers did not all help
        self.workers: int | None = None  # processes for a full rebuild (None: `shard_workers`)
        self.sessions = SessionIndexer(
            self.index, self.layout, Roots.default() if roots is None else roots
        )

    def _signature(self) -> tuple[Any, ...]:
        """What the journal and the index files look like (stat only): while it stays
        the same, a catch-up has nothing to do and skips the lock and the checks."""
        parts: list[Any] = []
        for path in (*list_segments(self.layout), self.index.path):
            try:
                st = path.stat()
                parts.append((path.name, st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                parts.append((path.name, None))
        wal = Path(f"{self.index.path}-wal")
        with contextlib.suppress(OSError):
            st = wal.stat()
            parts.append((wal.name, st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(parts)

    def close(self) -> None:
        self.index.close()

    def _journal_level(self) -> bool:
        """Whether the index holds all of the journal as it is now, found without the
        writers' lock (read only): the same segments as indexed, each file the one
        indexed and unchanged since (size, mtime, inode), none pruned since. Then a
        search need not wait for another writer to answer from all of it."""
        try:
            if not self.index.path.is_file() or self.index.path.stat().st_size == 0:
                return False
            states = self.index.segment_states()
            paths = {segment_number(p.name) or 0: p for p in list_segments(self.layout)}
            if not states or set(states) != set(paths):
                return False
            for number, path in paths.items():
                state = states[number]
                with open_segment(path) as seg:
                    ino, mtime_ns = seg.identity()
                    if (seg.size, mtime_ns, ino) != (state.size, state.mtime_ns, state.inode):
                        return False
        except (sqlite3.DatabaseError, IndexDamaged, OSError, ValueError):
            return False  # a catch-up under the lock finds out why
        return True

    def behind(self) -> int:
        """Journal bytes not indexed yet (a cheap estimate from the progress rows)."""
        try:
            if not self.index.path.exists():
                return sum(map(_size, list_segments(self.layout)))
            states = self.index.segment_states()
        except (sqlite3.DatabaseError, IndexDamaged, OSError):
            return sum(map(_size, list_segments(self.layout)))
        total = 0
        for path in list_segments(self.layout):
            number = segment_number(path.name) or 0
            done = states[number].end if number in states else 0
            total += max(0, _size(path) - done)
        return total

    def catch_up(
        self,
        *,
        rebuild: bool = False,
        budget: float | None = None,
        wait: float | None = None,
        progress: Progress | None = None,
        pause: Callable[[], bool] | None = None,
        pages: bool = False,
        waiting: Callable[[], None] | None = None,
    ) -> CatchUp:
        """Index what the journal has that the index has not.

        `rebuild` starts from nothing; `pages` reads every page of the index first and
        rebuilds it when one is wrong (`SearchIndex.check`: seconds at 1M messages, so
        only `persist reindex --catch-up` asks for it); `budget` stops after about that
        many seconds (the rest is `behind`), and `pause()` stops it the same way when it
        says so (asked after each `_PAUSE_BYTES` of lines and between chunks); `wait` is
        how long to wait for another writer (None: as long as it takes), after which
        nothing is done (`busy`). While another writer holds the lock, an index that
        already holds all of the journal (`_journal_level`: nothing new since, nothing
        pruned) and every agent session file as it is is used as it is, at once (`busy`,
        nothing `behind`); else `waiting()` is called once, before the wait (to say so),
        and the wait is in `waited`.
        """
        journal_level = self._level is not None and self._signature() == self._level
        sessions_level = self.sessions.level()
        if not rebuild and not pages and journal_level and sessions_level:
            return CatchUp()
        # a folder where the index or its lock goes: one line naming it (IndexInTheWay),
        # not the OS's words on another path; `persist reindex` moves it aside
        refuse_what_is_in_the_way(self.layout)
        lock = IndexLock(self.layout)
        waited = 0.0
        if not lock.acquire(0.0):  # another writer: a `persist reindex`, an indexer child
            # (the agents' session files level too: a session changed since is read under
            # the lock, so the search waits for it as before)
            level = sessions_level or self.sessions.stored_level()
            if not rebuild and not pages and level and self._journal_level():
                return CatchUp(busy=True)  # nothing it could add that a search needs
            started = time.monotonic()
            if waiting is not None:
                waiting()
            got = wait != 0 and lock.acquire(wait)
            waited = max(time.monotonic() - started, 1e-6)  # more than none: it waited
            if not got:
                return CatchUp(behind=self.behind(), busy=True, waited=waited)
        try:
            done = self._catch_up_locked(rebuild, budget, progress, pause, pages)
            done.waited = waited
            return done
        except sqlite3.OperationalError as exc:
            if not transient(exc):
                raise
            # Another process's lock outlasted our busy timeout (the sqlite3 shell, a
            # backup tool): nothing is wrong with the index; what is done is kept.
            self.index.close()
            self._level = None
            self.sessions.forget()  # (a rebuild may have started: look at every file)
            return CatchUp(behind=self.behind(), busy=True, waited=waited)
        finally:
            lock.release()

    def _catch_up_locked(
        self,
        rebuild: bool,
        budget: float | None,
        progress: Progress | None,
        pause: Callable[[], bool] | None,
        pages: bool,
    ) -> CatchUp:
        started = time.monotonic()
        remove_new_files(self.index.path)  # what a replacement killed by SIGKILL left
        result = self._catch_up(rebuild, budget, progress, pause, pages)
        spent = time.monotonic() - started
        if result.rebuilt:
            self.sessions.forget()
        if not result.behind:
            done = self.sessions.catch_up(
                None if budget is None else time.monotonic() + max(0.0, budget - spent)
            )
            result.added += done.added
            result.sessions = done.added
            result.sessions_pending = done.pending
            result.problems = done.problems
            if done.added:
                self._maybe_refresh_terms(bool(result.rebuilt))
                self.index.checkpoint()
        self._level = None if result.behind or result.sessions_pending else self._signature()
        return result

    def _catch_up(
        self,
        rebuild: bool,
        budget: float | None,
        progress: Progress | None,
        pause: Callable[[], bool] | None,
        pages: bool = False,
    ) -> CatchUp:
        result = CatchUp()
        index = self.index
        states: dict[int, SegmentState] = {}
        if rebuild:
            result.rebuilt = "asked for"
        else:
            try:
                index.check(pages=pages)
                states = index.segment_states()
                self._drop_pruned(states)
                problem = self._stale(states)
                # A rebuild killed before it adopted its shards leaves their files.
                remove_shard_files(self.layout.search, [s.name for s in index.shards()])
            except (IndexDamaged, sqlite3.DatabaseError) as exc:
                if isinstance(exc, IndexOutdated) and exc.schema > SCHEMA_VERSION:
                    raise IndexNewer(index.path, exc.schema) from None
                if disk_full(exc, self.layout.search) or transient(exc):
                    raise  # no damage: a rebuild would fail the same way, or wait
                problem = unusable(exc)
            if problem:
                result.rebuilt = problem
        if result.rebuilt:
            index.reset()
            states = {}
            self.shard_problem = None
        # A rebuild starts from nothing, so it need not survive a power cut, only a kill
        # (WAL without syncs does: the log is in the OS's cache): no fsync at each of its
        # checkpoints; the last one, after `synchronous = NORMAL` again, syncs it all.
        index.db.execute(f"PRAGMA synchronous = {'OFF' if result.rebuilt else 'NORMAL'}")
        deadline = None if budget is None else time.monotonic() + budget
        paths = list_segments(self.layout)
        todo = 0
        for path in paths:
            number = segment_number(path.name) or 0
            todo += max(0, _size(path) - states.get(number, SegmentState(number)).end)
        done = 0
        if progress:
            progress(0, todo)
        builds: list[ShardBuild] = []

        def index_run(run: list[Path]) -> bool:
            """Index the segments of `run`; False when the time budget ran out."""
            nonlocal done
            for path in run:
                number = segment_number(path.name) or 0
                state = states.setdefault(number, SegmentState(number))
                closed = path != paths[-1]
                for added, nbytes in index_segment(index, path, state, closed, pause):
                    result.added += added
                    done += nbytes
                    if progress:
                        progress(min(todo, done + sum(b.done for b in builds)), todo)
                    if (deadline is not None and time.monotonic() >= deadline) or (
                        pause is not None and pause()
                    ):
                        result.behind = max(0, todo - done)
                        return False
            return True

        try:
            own = paths
            if result.rebuilt and budget is None:
                own, builds = self._start_shards(paths)
            if not index_run(own):
                return result
            if builds:
                added, nbytes = self._adopt(builds, states, lambda: done, todo, progress)
                result.added += added
                done += nbytes
                builds = []
                # What no shard took (a worker failed), and what the open segment grew
                # by meanwhile, one segment at a time.
                index_run(paths)
        except sqlite3.DatabaseError as exc:
            if result.rebuilt or disk_full(exc, self.layout.search) or transient(exc):
                raise  # a full disk or a lock is no damage: a rebuild would fail the same way
            # damage found while writing: rebuild, once (an error in that rebuild raises)
            again = self._catch_up(True, budget, progress, pause)
            again.rebuilt = unusable(exc)
            return again
        finally:
            for build in builds:
                build.kill()
        if progress:
            progress(todo, todo)
        if result.added or result.rebuilt:
            self._maybe_refresh_terms(bool(result.rebuilt))
        index.db.execute("PRAGMA synchronous = NORMAL")
        if result.added or result.rebuilt:
            index.checkpoint()
        return result

    def _start_shards(self, paths: list[Path]) -> tuple[list[Path], list[ShardBuild]]:
        """For a rebuild: the segments this process indexes itself (the first run),
        and the workers started on the other runs (none for a small journal)."""
        sizes = [_size(p) for p in paths]
        workers = shard_workers(sum(sizes)) if self.workers is None else self.workers
        runs = plan_runs(sizes, workers) if workers > 1 else []
        if len(runs) < 2:
            return paths, []
        builds = []
        try:
            for name, run in zip(new_shard_names(len(runs) - 1), runs[1:], strict=True):
                segments = [(paths[i], i < len(paths) - 1) for i in run]
                builds.append(ShardBuild(self.layout.search, name, segments))
        except OSError:
            for build in builds:
                build.kill()
            return paths, []  # no worker could start: one process does it all
        return [paths[i] for i in runs[0]], builds

    def _adopt(
        self,
        builds: list[ShardBuild],
        states: dict[int, SegmentState],
        own: Callable[[], int],
        todo: int,
        progress: Progress | None,
    ) -> tuple[int, int]:
        """Wait for each worker in journal order and adopt its shard; returns the
        documents and journal bytes adopted. A failed worker's segments stay
        unindexed (the caller indexes them); the shards after it are dropped too,
        since a shard's rows must follow everything before them (`shard_problem`
        says what went wrong)."""

        def tick() -> None:
            if progress:
                progress(min(todo, own() + sum(b.done for b in builds)), todo)

        added = nbytes = 0
        for k, build in enumerate(builds):
            problem = build.wait(tick)
            if problem is None:
                try:
                    adopted = self.index.adopt_shard(build.name)
                except (IndexDamaged, sqlite3.Error) as exc:
                    problem = str(exc)
            if problem is not None:
                self.shard_problem = f"{build.name}: {problem}"
                for later in builds[k:]:
                    later.kill()
                remove_shard_files(self.layout.search, [s.name for s in self.index.shards()])
                break
            for state in adopted:
                states[state.number] = state
                added += state.docs
                nbytes += state.end
        return added, nbytes

    def _maybe_refresh_terms(self, force: bool) -> None:
        docs = self.index.doc_count()
        snap = self.index.meta("terms_docs")
        snap = snap if type(snap) is int else 0
        if force or (docs > snap and docs - snap >= max(1, int(docs * TERMS_REFRESH_RATIO))):
            self.index.refresh_terms()

    def _drop_pruned(self, states: dict[int, SegmentState]) -> int:
        """Rows of segments retention pruned (named in `retention/pruned.json`) leave the
        index, instead of the whole index being rebuilt for a segment that is gone.

        Their words leave the full-text table and the typo suggestions' `terms` too
        (`forget_terms`) for each row the pruned file, still in the trash, reads back to
        (a record at the same offset with the same seq: its text is the one indexed)
        and that is in the index's own `fts`: the rows indexed, however much of the file
        that was (the indexer behind a burst indexed only its start; before 2026-12-07
        the words of such a segment all stayed). Of any other row only the `docs` row
        goes: its words stay until a rebuild and match nothing, since every search joins
        `docs` and no id is given out twice (`index.next_id`). Returns how many rows
        left their words."""
        notes = pruned_by_number(self.layout)
        # Words in a shard stay there (shards are never written again): like the words
        # of a pruned file no longer in the trash, they match no `docs` row.
        sharded = [(s.first, s.first + s.docs) for s in self.index.shards()]
        on_disk = {segment_number(p.name) for p in list_segments(self.layout)}
        snap = self.index.meta("terms_docs")
        counted = snap if type(snap) is int else 0  # the ids the `terms` snapshot counted
        left = 0
        for number in sorted(states):
            note = notes.get(number)
            if number in on_disk or note is None:
                continue
            trashed = self.layout.trash / note.trash / "segments" / note.segment
            with self.index.transaction() as db:
                docs = db.execute(
                    "SELECT id, offset, seq FROM docs WHERE segment = ? AND source = ? ORDER BY id",
                    (number, SOURCE_BUS),
                ).fetchall()
                texts = self._texts_of(trashed, number, docs)
                own = [
                    (doc, text)
                    for doc, text in texts.items()
                    if not any(a <= doc < b for a, b in sharded)
                ]
                delete_texts(db, own)
                # and out of the typo suggestions' words, in the same transaction
                # (before 2026-12-07 `terms` kept them until 2 % more records came)
                forget_terms(db, [text for doc, text in own if doc <= counted])
                left += len(docs) - len(own)
                db.execute(
                    "DELETE FROM docs WHERE segment = ? AND source = ?", (number, SOURCE_BUS)
                )
                db.execute("DELETE FROM segments WHERE number = ?", (number,))
            del states[number]
        return left

    def forget_pruned(self, wait: float) -> str | None:
        """Take the rows and words of pruned segments out of the index now, while the
        trash still holds their files (`_drop_pruned` needs them to take their words
        out): `persist trash empty` asks it before it deletes them, so that no search,
        vocabulary or typo suggestion keeps words of deleted messages. None when done
        (or nothing to do: no index, or one the next catch-up rebuilds from the journal
        alone); else why not, in words."""
        if in_the_way(self.layout) or not self.index.path.is_file():
            return None
        lock = IndexLock(self.layout)
        if not lock.acquire(wait):
            return "another process kept writing it"
        try:
            self.index.check()
            states = self.index.segment_states()
            count = len(states)
            left = self._drop_pruned(states)  # their words out of `terms` too
            if len(states) < count:
                self.index.checkpoint()
            if left:  # in a shard (never written again), or a file that reads otherwise
                return (
                    f"the words of {left:,} of their records are where it cannot take them "
                    "out: a shard of a rebuild on several cores (never rewritten), or a file "
                    "that no longer reads back as it was indexed"
                )
        except (IndexDamaged, sqlite3.DatabaseError) as exc:
            if disk_full(exc) or transient(exc):
                return unusable(exc)
            return None  # damaged or another version's: rebuilt, from the journal alone
        finally:
            lock.release()
        return None

    def _texts_of(self, path: Path, number: int, docs: list[Any]) -> dict[int, str]:
        """The indexed texts of those of `docs` (id, offset, seq) the segment file at
        `path` still holds (a record at the same offset with the same seq), by id,
        recomputed from it; the file may hold more records than were indexed. None of
        them if it is gone or unreadable."""
        try:
            with open_segment(path) as seg:  # plain or compressed
                body = seg.read_strict(0, seg.size)
        except (OSError, ValueError):
            return {}
        rows, texts = journal_rows(body, number, 0)
        found = {(row[1], row[3]): text for row, text in zip(rows, texts, strict=True)}
        return {doc[0]: found[doc[1], doc[2]] for doc in docs if (doc[1], doc[2]) in found}

    def _stale(self, states: dict[int, SegmentState]) -> str | None:
        moved: list[SegmentState] = []  # the same bytes in a new file (compressed since)
        reason = stale_reason(self.layout, states, moved)
        if moved and reason is None:
            with self.index.transaction() as db:
                for state in moved:
                    self.index.save_segment(db, state)
        return reason


def forget_pruned_words(root: Path, wait: float) -> str | None:
    """`Indexer.forget_pruned` for a trash empty (`persist trash empty`, the recorder's
    retention): None when done; else why not, in words. It never raises: an index it
    cannot open must not stop the empty (nor the recorder's retention, for good)."""
    indexer = None
    try:
        indexer = Indexer(root, Roots(None, None, None))  # the journal's rows alone
        return indexer.forget_pruned(wait)
    except OSError as exc:
        return exc.strerror or str(exc)
    except Exception as exc:  # said, in words, by the caller
        return str(exc) or type(exc).__name__
    finally:
        if indexer is not None:
            indexer.close()


class RowTarget(Protocol):
    """Where `index_segment` writes: the index, or a shard being built."""

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...

    def add_rows(
        self, rows: Sequence[tuple[Any, ...]], texts: Sequence[str], db: sqlite3.Connection
    ) -> int: ...

    def save_segment(self, db: sqlite3.Connection, state: SegmentState) -> None: ...


def index_segment(
    target: RowTarget,
    path: Path,
    state: SegmentState,
    closed: bool,
    pause: Callable[[], bool] | None = None,
) -> Iterator[tuple[int, int]]:
    """Index `path` from `state.end`; yields (documents, bytes) per committed chunk.

    `pause()` is asked after each `_PAUSE_BYTES` of a chunk's lines are parsed: when it
    says so, what was parsed is committed and yielded as a shorter chunk (a 16 MiB
    chunk of 300-byte messages is half a second of a core); the caller, which asks
    again, stops there or goes on from its end."""
    try:
        seg = open_segment(path)
    except (OSError, ValueError):
        # gone, or a compressed file with no frame table (`persist doctor` names it)
        if closed and state.end == 0:
            _leave_out(target, path, state)
        return
    try:
        size = seg.refresh()
        ident = (size, *seg.identity())
        pos = state.end
        while pos < size:
            chunk = seg.read(pos, min(_CHUNK, size - pos))
            if not chunk:
                break
            last_nl = chunk.rfind(b"\n")
            if last_nl < 0:
                if len(chunk) < _CHUNK and not closed:
                    break  # a line still being written
                if len(chunk) == _CHUNK:
                    chunk = _whole_line(seg, pos, size)
                    last_nl = chunk.rfind(b"\n")
            if last_nl >= 0:
                body = chunk[: last_nl + 1]
            elif closed:
                body = chunk  # a closed segment's torn tail: one unreadable line
            else:
                break
            rows, texts, used = _rows_until_pause(body, state.number, pos, pause)
            end = pos + used
            with target.transaction() as db:
                target.add_rows(rows, texts, db)
                _advance(seg, state, end, len(rows), ident)
                target.save_segment(db, state)
            yield len(rows), used
            pos = end
    finally:
        seg.close()


UNREADABLE = b"unreadable"  # `tail_sha` of a segment left out: it could not be read


def left_out(state: SegmentState) -> bool:
    """Whether `state` is the row of a closed segment a catch-up could not read (its
    `size`, `mtime_ns` and `inode` are its file's, nothing of it is indexed)."""
    return state.tail_sha == UNREADABLE and state.end == 0


def _leave_out(target: RowTarget, path: Path, state: SegmentState) -> None:
    """Record that the closed segment at `path` could not be read: a row of its own
    (nothing indexed), so that the segments after it, indexed, do not make every later
    catch-up find it "below indexed ones" and rebuild the whole index again, only to
    leave it out again (before 2026-12-07). One whose file is gone (pruned meanwhile)
    gets none. `stale_reason` rebuilds once it can be read again."""
    try:
        st = os.stat(path)
    except OSError:
        return
    if left_out(state) and (state.size, state.mtime_ns, state.inode) == (
        st.st_size,
        st.st_mtime_ns,
        st.st_ino,
    ):
        return  # already recorded so
    state.docs = state.head_len = 0
    state.head_sha = b""
    state.tail_sha = UNREADABLE
    state.size, state.mtime_ns, state.inode = st.st_size, st.st_mtime_ns, st.st_ino
    with target.transaction() as db:
        target.save_segment(db, state)


def _whole_line(seg: SegmentFile, pos: int, size: int) -> bytes:
    """One line longer than a chunk (a large payload), read whole."""
    parts = []
    at = pos
    while at < size:
        piece = seg.read(at, min(_CHUNK, size - at))
        if not piece:
            break
        nl = piece.find(b"\n")
        if nl >= 0:
            parts.append(piece[: nl + 1])
            break
        parts.append(piece)
        at += len(piece)
    return b"".join(parts)


def _rows_until_pause(
    body: bytes, segment: int, base: int, pause: Callable[[], bool] | None
) -> tuple[list[tuple[Any, ...]], list[str], int]:
    """`journal_rows` of `body`, in slices of whole lines of about `_PAUSE_BYTES`,
    asking `pause()` after each but the last; also how many bytes of `body` they
    cover (all of it unless paused)."""
    if pause is None:
        return (*journal_rows(body, segment, base), len(body))
    rows: list[tuple[Any, ...]] = []
    texts: list[str] = []
    at = 0
    while at < len(body):
        nl = body.rfind(b"\n", at, at + _PAUSE_BYTES)
        if nl < 0:  # a line longer than a slice
            nl = body.find(b"\n", at + _PAUSE_BYTES)
        cut = len(body) if nl < 0 else nl + 1
        more_rows, more_texts = journal_rows(body[at:cut], segment, base + at)
        rows += more_rows
        texts += more_texts
        at = cut
        if at < len(body) and pause():
            break
    return rows, texts, at


def journal_rows(body: bytes, segment: int, base: int) -> tuple[list[tuple[Any, ...]], list[str]]:
    """The `docs` rows (no id yet) and texts of the whole lines in `body`."""
    rows = []
    texts = []
    offset = base
    start = 0
    n = len(body)
    while start < n:
        nl = body.find(b"\n", start)
        end = n if nl < 0 else nl + 1
        row, text = journal_row(body[start:end], segment, offset)
        rows.append(row)
        texts.append(text)
        offset = base + end
        start = end
    return rows, texts


def _advance(
    seg: SegmentFile, state: SegmentState, end: int, added: int, ident: tuple[int, int, int]
) -> None:
    """`ident`: the segment's (uncompressed size, inode, mtime_ns) when it was read."""
    if state.head_len == 0 or state.head_len < _FINGER:
        state.head_len = min(_FINGER, end)
        state.head_sha = _sha(seg, 0, state.head_len)
    state.end = end
    state.docs += added
    state.tail_sha = _sha(seg, max(0, end - _FINGER), end)
    state.size, state.inode, state.mtime_ns = ident


def stale_reason(
    layout: Layout, states: dict[int, SegmentState], moved: list[SegmentState] | None = None
) -> str | None:
    """Why the index no longer describes this journal (None: it does, maybe behind).
    `moved` collects the states of segments compressed since they were indexed (the
    same bytes, checked by their fingerprints), updated to the new file."""
    on_disk = {segment_number(p.name) or 0: p for p in list_segments(layout)}
    newest = max(states, default=0)
    for number in on_disk:
        if number < newest and number not in states:
            return f"segment {number} appeared below indexed ones"
    for number, state in states.items():
        path = on_disk.get(number)
        if path is None:
            return f"segment {number} is gone"
        try:
            seg = open_segment(path)
        except (OSError, ValueError):
            if left_out(state):
                continue  # left out as unreadable, and still so
            return f"segment {number} cannot be read"
        if left_out(state):
            seg.close()
            return f"segment {number}, left out as unreadable, can be read now"
        with seg:
            ino, mtime_ns = seg.identity()
            if seg.size < state.end:
                return f"segment {number} is shorter than what was indexed"
            if (seg.size, mtime_ns, ino) == (state.size, state.mtime_ns, state.inode):
                continue
            if (
                _sha(seg, 0, state.head_len) != state.head_sha
                or _sha(seg, max(0, state.end - _FINGER), state.end) != state.tail_sha
            ):
                return f"segment {number} was rewritten"
            if seg.compressed and seg.size == state.size and moved is not None:
                state.mtime_ns, state.inode = mtime_ns, ino
                moved.append(state)
    return None


@dataclass(frozen=True)
class IndexHealth:
    """What the search index looks like, found without writing anything (`persist doctor`)."""

    present: bool
    problem: str | None  # why the next catch-up would rebuild it (None: it is usable)
    behind: int  # journal bytes not indexed yet
    docs: int = 0
    size: int = 0  # bytes of the file and its write-ahead log
    outdated: bool = False  # another version's schema: nothing wrong, rebuilt all the same
    newer: bool = False  # a later version's: left as it is, unless a rebuild is asked for
    stale: bool = False  # a whole index of a journal that changed since (a segment came
    # back from the trash, say): the next search rebuilds it, nothing wrong with the file
    busy: bool = False  # another process held it locked past the busy timeout: not read
    left_out: tuple[int, ...] = ()  # closed segments the last catch-up could not read
    full: bool = False  # SQLite could not read it for want of room (`disk_full`): not read


_HEALTH_ATTEMPTS = 3  # reads of an index that resets keep replacing meanwhile


def _inode(path: Path) -> int:
    try:
        return os.stat(path).st_ino
    except OSError:
        return 0


def _replaced(path: Path, inode: int, wait: float = 0.25) -> bool:
    """Whether `path` is (or within `wait` s becomes) another file than `inode`."""
    deadline = time.monotonic() + wait
    while _inode(path) == inode:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def index_health(root: Path, *, pages: bool = False) -> IndexHealth:
    """The index of `root` checked as a catch-up would, read only; `pages`: every page
    of it read too (`SearchIndex.check`), as `persist reindex --catch-up` checks it."""
    layout = Layout(Path(root))
    journal = 0
    sizes: dict[int, int] = {}
    for path in list_segments(layout):
        sizes[segment_number(path.name) or 0] = _size(path)  # uncompressed
        journal += sizes[segment_number(path.name) or 0]
    found = in_the_way(layout)  # a folder where the index or its lock goes, a file for search/
    if found:
        more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
        return IndexHealth(True, f"{found[0].sentence()}{more}", journal)
    if not layout.search_index.exists():
        return IndexHealth(False, None, journal)
    for attempt in range(_HEALTH_ATTEMPTS):
        inode = _inode(layout.search_index)
        index = SearchIndex(layout.root, writable=False)
        try:
            index.check(pages=pages)
            states = index.segment_states()
            pruned = pruned_by_number(layout)  # dropped by the next catch-up, not rebuilt
            for number in [n for n in states if n not in sizes and n in pruned]:
                del states[number]
            problem = stale_reason(layout, states)
            docs = index.indexed_rows()
            size = index.size_bytes()
            break
        except (IndexDamaged, sqlite3.DatabaseError, OSError) as exc:
            # A writer's reset of a file SQLite cannot use replaces it, and removes the
            # old file's log just before: a read in between fails. Read the new file.
            if attempt + 1 < _HEALTH_ATTEMPTS and _replaced(layout.search_index, inode):
                continue
            if transient(exc):  # a rebuild or a long write elsewhere: nothing wrong
                return IndexHealth(True, unusable(exc), journal, busy=True)
            if disk_full(exc, layout.search):  # not read: nothing known to be wrong
                return IndexHealth(True, f"the disk is full ({exc})", journal, full=True)
            outdated = isinstance(exc, IndexOutdated)
            newer = isinstance(exc, IndexOutdated) and exc.schema > SCHEMA_VERSION
            return IndexHealth(True, unusable(exc), journal, outdated=outdated, newer=newer)
        finally:
            index.close()
    behind = sum(
        max(0, size_now - (states[n].end if n in states else 0)) for n, size_now in sizes.items()
    )
    unread = tuple(n for n, state in states.items() if left_out(state) and n in sizes)
    return IndexHealth(
        True, problem, behind, docs, size, stale=problem is not None, left_out=unread
    )
