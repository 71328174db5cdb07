"""A full rebuild on every core: worker processes index runs of segments into shard
files of their own while the rebuilding process indexes the first run itself; then
it adopts the shards, in journal order.

Why shards: SQLite lets one connection write a file at a time, and FTS5's inserts are
most of a rebuild's CPU, so they only run side by side in separate files. A shard
file holds a full-text table alone (`index.SHARD_SCHEMA`). The rows it describes are
built beside it in a scratch file (`docs` and `segments`, the index's columns), which
adoption copies into the index, ids moved up so that they follow the index's own
(`Shard.first`), and then deletes. A shard is never written again: later records go
to the index's own `fts`.

Kill safety: an adoption is one transaction on the index (its docs, their progress
rows, the `shards` row). Until it commits the index names no shard and its progress
stops where its own run stopped, so the next catch-up indexes the rest one segment
at a time, as before; shard files the index does not name are removed by the next
writer. A worker that fails (a full disk, a damaged segment) leaves its run to that
same serial path. Workers are fresh interpreters (`python -c`, as the exports'
workers: callers run threads, so never `fork`), and one whose parent is gone stops.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from recorder.errors import how_it_ended
from recorder.search.index import (
    HASH_BYTES,
    SCHEMA_VERSION,
    SHARD_PREFIX,
    SHARD_SCHEMA,
    TOKENIZER,
    SegmentState,
    insert_rows,
    private_file,
    rows_schema,
    save_segment,
    scratch_name,
    sqlite_uri,
)
from recorder.store.fsutil import ensure_private_dir

PARALLEL_MIN_BYTES = 64 << 20  # a smaller journal is rebuilt by one process
MAX_SHARDS = 4  # processes at most, the rebuilding one included
_BOOT = (
    "import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
    "from recorder.search.shards import serve; serve()"
)
_DONE = "done"


def plan_runs(sizes: Sequence[int], workers: int) -> list[range]:
    """Cut segments (their sizes, in journal order) into at most `workers` runs of
    consecutive segments, none empty, each cut where the bytes before it come
    closest to an equal share."""
    total = sum(sizes)
    ends = list(itertools.accumulate(sizes))
    cuts = [0]
    for j in range(1, workers):
        target = total * j / workers
        best = min(
            range(cuts[-1] + 1, len(sizes)), key=lambda k: abs(ends[k - 1] - target), default=None
        )
        if best is None:
            break
        cuts.append(best)
    cuts.append(len(sizes))
    return [range(a, b) for a, b in itertools.pairwise(cuts) if b > a]


def shard_workers(todo: int) -> int:
    """How many processes a rebuild of `todo` bytes uses (1: no shards)."""
    if todo < PARALLEL_MIN_BYTES:
        return 1
    return max(1, min(MAX_SHARDS, os.cpu_count() or 1))


class ShardBuild:
    """One worker building one shard (`name`) from `segments`: (path, closed) in order."""

    def __init__(self, folder: Path, name: str, segments: list[tuple[Path, bool]]) -> None:
        self.folder = folder
        self.name = name
        self.done = 0  # journal bytes the worker says it indexed
        self.finished = False  # it said so
        self.errors: deque[str] = deque(maxlen=20)  # the last lines of its stderr
        task = {
            "folder": str(folder),
            "name": name,
            "segments": [(str(p), closed) for p, closed in segments],
            "parent": os.getpid(),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, json.dumps(sys.path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.write(json.dumps(task).encode())
            self.proc.stdin.close()
        # Both pipes are drained as they come, so a worker that says a lot never blocks.
        self._readers = [
            threading.Thread(target=self._read, daemon=True, name="shard-progress"),
            threading.Thread(target=self._read_errors, daemon=True, name="shard-errors"),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            text = line.strip().decode(errors="replace")
            if text == _DONE:
                self.finished = True
            elif text.isdigit():
                self.done += int(text)

    def _read_errors(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.errors.append(line.decode(errors="replace").strip())

    def wait(self, tick: Callable[[], None], every: float = 0.2) -> str | None:
        """Wait for the worker, calling `tick` now and then; None if it built its
        shard, else what went wrong (one line)."""
        while True:
            try:
                code = self.proc.wait(timeout=every)
                break
            except subprocess.TimeoutExpired:
                tick()
        for reader in self._readers:
            reader.join()
        if code == 0 and self.finished:
            return None
        lines = [line for line in self.errors if line]
        return lines[-1] if lines else f"an indexing worker stopped ({how_it_ended(code)})"

    def kill(self) -> None:
        """Stop the worker (if it still runs) and let go of its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for reader in self._readers:
            reader.join(timeout=1.0)  # at the end of their pipes once the worker is gone
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def new_shard_names(count: int) -> list[str]:
    """Names for one rebuild's shards, 1 to `count`, in journal order."""
    token = f"{os.getpid()}-{os.urandom(4).hex()}"
    return [f"{SHARD_PREFIX}{token}-{k}.sqlite3" for k in range(1, count + 1)]


class _ShardTarget:
    """`indexer.RowTarget` over a shard being built (its connection sees the shard's
    `fts` and the scratch file's `docs` and `segments` under their plain names)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN")
        yield self.db
        self.db.execute("COMMIT")

    def add_rows(
        self, rows: Sequence[tuple[Any, ...]], texts: Sequence[str], db: sqlite3.Connection
    ) -> int:
        return insert_rows(db, rows, texts)

    def save_segment(self, db: sqlite3.Connection, state: SegmentState) -> None:
        save_segment(db, state)


def build_shard(
    folder: Path, name: str, segments: list[tuple[Path, bool]], report: Callable[[int], None]
) -> None:
    """Index `segments` into the shard `name` in `folder` (and its scratch file)."""
    from recorder.search.indexer import index_segment
    from recorder.store.layout import segment_number

    ensure_private_dir(folder)
    shard, scratch = folder / name, folder / scratch_name(name)
    for path in (shard, scratch):
        private_file(path)
    db = sqlite3.connect(sqlite_uri(shard), uri=True, isolation_level=None)
    try:
        db.execute("ATTACH DATABASE ? AS scratch", (sqlite_uri(scratch),))
        # Nothing here needs to survive a crash (an unadopted shard is thrown away):
        # no rollback journal, no syncs.
        for schema in ("main", "scratch"):
            db.execute(f"PRAGMA {schema}.journal_mode = OFF")
            db.execute(f"PRAGMA {schema}.synchronous = OFF")
        db.execute("PRAGMA cache_size = -65536")
        db.executescript(f"BEGIN;{SHARD_SCHEMA}{rows_schema('scratch')}COMMIT;")
        db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        db.execute("INSERT INTO meta VALUES ('tokenizer', ?)", (TOKENIZER,))
        db.execute("INSERT INTO fts (fts, rank) VALUES ('hashsize', ?)", (HASH_BYTES,))
        target = _ShardTarget(db)
        parent = os.getppid()
        for path, closed in segments:
            state = SegmentState(segment_number(path.name) or 0)
            for _added, nbytes in index_segment(target, path, state, closed):
                if os.getppid() != parent:
                    raise SystemExit(3)  # the rebuild was killed: its shard is garbage
                report(nbytes)
    finally:
        db.close()


def serve() -> None:
    """A worker's main: the task as JSON on stdin, progress on stdout (bytes per
    line, then `done`), one line on stderr and exit 1 if it failed."""
    task = json.loads(sys.stdin.read())
    if os.getppid() != task["parent"]:
        raise SystemExit(3)

    def report(nbytes: int) -> None:
        sys.stdout.write(f"{nbytes}\n")
        sys.stdout.flush()

    try:
        build_shard(
            Path(task["folder"]),
            task["name"],
            [(Path(p), bool(closed)) for p, closed in task["segments"]],
            report,
        )
    except (OSError, sqlite3.Error, ValueError) as exc:
        sys.stderr.write(f"building a search shard failed: {exc}\n")
        raise SystemExit(1) from None
    report_done = f"{_DONE}\n"
    sys.stdout.write(report_done)
    sys.stdout.flush()
