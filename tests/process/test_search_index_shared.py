"""The search index shared with other processes: no process deletes its -wal and -shm
under another's connection."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder.search.indexer import Indexer
from recorder.sources.discover import Roots
from tests.unit.test_search_index import add_messages, write_journal

pytestmark = pytest.mark.timeout(60)

# Another process's connection to the index: it runs each line given on its stdin as
# SQL, and answers with the rows and the files it has open that were deleted since.
CONNECTED = r"""
import json, os, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
for line in sys.stdin:
    rows = db.execute(line).fetchall()
    deleted = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.endswith(" (deleted)") and "index.sqlite3" in target:
            deleted.append(target)
    print(json.dumps({"rows": rows, "deleted": deleted}), flush=True)
"""


class Connected:
    """Another process running `script` with `arg` (the code of this tree)."""

    def __init__(self, arg: Path, script: str = CONNECTED) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, str(arg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        )

    def run(self, sql: str) -> dict[str, list]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(sql + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the connected process ended"
        return json.loads(line)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def connected() -> Iterator[list[Connected]]:
    made: list[Connected] = []
    yield made
    for c in made:
        c.close()


def indexed(root: Path, n: int) -> Path:
    w = write_journal(root, n)
    w.close()
    indexer = Indexer(root, Roots(None, None, None))
    try:
        assert indexer.catch_up().added >= n
    finally:
        indexer.close()
    return root / "search" / "index.sqlite3"


# A process with the index open through `SearchIndex` (the recorder's indexer, the TUI):
# it answers each command on its stdin with the messages it sees and the index files
# it has open that were deleted since.
WRITER = r"""
import json, os, sys
from pathlib import Path
from recorder.search.index import Document, SearchIndex
index = SearchIndex(Path(sys.argv[1]), writable=True)
for line in sys.stdin:
    command = line.strip()
    try:
        if command == "check":
            index.check()
        elif command == "second":  # another connection of this process (a TUI's indexer)
            second = SearchIndex(Path(sys.argv[1]), writable=True)
            second.db
        elif command == "add":
            index.add_documents([Document(f"late {i}", 1.0) for i in range(50)])
        rows = index.query("SELECT count(*) FROM docs WHERE msg = 1")[0][0]
    except Exception as exc:
        rows = f"{type(exc).__name__}: {exc}"
    deleted = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.endswith(" (deleted)") and "index.sqlite3" in target:
            deleted.append(target)
    print(json.dumps({"rows": rows, "deleted": deleted}), flush=True)
"""


@pytest.mark.parametrize("step", ["check", "second"])
def test_checking_or_opening_the_index_keeps_this_processs_locks_on_it(
    tmp_path: Path, connected: list[Connected], step: str
) -> None:
    """`SearchIndex.check` (every catch-up that finds something new, doctor) read the
    file's header with open() and close(), and opening a writer's connection created
    the file with open() and close() even when it was there: the close dropped every
    POSIX lock of that process on the file, SQLite's too, so the next process to close
    its connection (a `persist search` ending) took itself for the last one and deleted
    the -wal and -shm under that process's connection. It then saw nothing newer and
    its next write read "database disk image is malformed" (the recorder's indexer
    reset the index for it)."""
    root = tmp_path / "logs"
    path = indexed(root, 300)
    writer = Connected(root, WRITER)
    connected.append(writer)
    assert writer.run("count") == {"rows": 300, "deleted": []}
    assert writer.run(step) == {"rows": 300, "deleted": []}
    # another process's connection comes and goes (a search that ends)
    other = sqlite3.connect(path)
    assert other.execute("SELECT count(*) FROM docs WHERE msg = 1").fetchone() == (300,)
    other.close()
    assert Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()
    w = write_journal(root, 0)
    add_messages(w, 300, 100)
    w.close()
    indexer = Indexer(root, Roots(None, None, None))
    try:
        assert indexer.catch_up().added >= 100
    finally:
        indexer.close()
    assert writer.run("count") == {"rows": 400, "deleted": []}
    assert writer.run("add") == {"rows": 450, "deleted": []}
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("SELECT count(*) FROM docs").fetchone()[0] >= 450
    finally:
        db.close()
