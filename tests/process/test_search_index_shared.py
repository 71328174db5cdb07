"""The search index shared with other processes: a rebuild never deletes or replaces
its files under another process's connection (that process sees the rebuilt index on
the connection it has), and another process's lock is no damage (nothing is reset)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder.search import index as index_module
from recorder.search.engine import SearchEngine
from recorder.search.indexer import Indexer
from recorder.sources.discover import Roots
from tests.unit.test_search_index import add_messages, write_journal

pytestmark = pytest.mark.timeout(60)

# The index files a child process has open that were deleted since (its answers' part).
DELETED_INDEX_FILES = r"""
import os


def deleted_index_files():
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.endswith(" (deleted)") and "index.sqlite3" in target:
            found.append(target)
    return found
"""

# Another process's connection to the index: it runs each line given on its stdin as
# SQL, and answers with the rows and the files it has open that were deleted since.
CONNECTED = (
    DELETED_INDEX_FILES
    + r"""
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
for line in sys.stdin:
    rows = db.execute(line).fetchall()
    print(json.dumps({"rows": rows, "deleted": deleted_index_files()}), flush=True)
"""
)


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


def test_a_rebuild_leaves_another_processs_connection_on_the_rebuilt_index(
    tmp_path: Path, connected: list[Connected]
) -> None:
    """`persist reindex` while another process (a TUI, a search, doctor) has the index
    open: before 2026-12-07 the rebuild unlinked the index's -wal and -shm and renamed
    a new file over it, so that process went on reading the old, deleted file (and a
    process opening it between the two steps read another file's log)."""
    root = tmp_path / "logs"
    path = indexed(root, 300)
    other = Connected(path)
    connected.append(other)
    first = other.run("SELECT count(*) FROM docs WHERE msg = 1")
    assert first == {"rows": [[300]], "deleted": []}
    w = write_journal(root, 0)  # the journal grows meanwhile: the rebuilt index differs
    add_messages(w, 300, 100)
    w.close()
    done = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "reindex", "--log-dir", str(root)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    after = other.run("SELECT count(*) FROM docs WHERE msg = 1")
    assert after["deleted"] == []
    assert after["rows"] == [[400]]
    assert other.run("PRAGMA integrity_check")["rows"] == [["ok"]]


def test_a_lock_held_by_another_process_is_no_damage(
    tmp_path: Path, connected: list[Connected], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catch-up that finds the index locked by another process's write (the sqlite3
    shell, a backup tool) waits for it, then says busy and leaves the index as it is:
    before 2026-12-07 "database is locked" counted as damage and the index was reset
    (a search's catch-up, the recorder's indexer), its file replaced under that
    process's connection and every search empty until it was rebuilt."""
    monkeypatch.setattr(index_module, "BUSY_TIMEOUT_MS", 200)
    root = tmp_path / "logs"
    path = indexed(root, 300)
    inode = path.stat().st_ino
    w = write_journal(root, 0)
    add_messages(w, 300, 100)
    w.close()
    other = Connected(path)
    connected.append(other)
    other.run("BEGIN IMMEDIATE")  # holds the write lock
    with SearchEngine(root, Roots(None, None, None)) as engine:
        result = engine.search("deployment", wait=5.0, budget=None)
        assert result.catch_up is not None
        assert result.catch_up.rebuilt is None
        assert result.catch_up.busy
        assert result.total == 6  # what the index held: the first 300 messages' hits
        assert path.stat().st_ino == inode
        assert other.run("SELECT count(*) FROM docs WHERE msg = 1")["rows"] == [[300]]
        other.run("COMMIT")
        done = engine.catch_up()
        assert (done.added >= 100, done.rebuilt, done.busy) == (True, None, False)
        assert engine.search("deployment", catch_up=False).total == 8
    assert path.stat().st_ino == inode
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        db.close()


@pytest.mark.parametrize("catch_up", [False, True])
def test_reindex_on_an_index_locked_elsewhere_says_so_and_leaves_it(
    tmp_path: Path,
    connected: list[Connected],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    catch_up: bool,
) -> None:
    """`persist reindex` (and `--catch-up`) while another process holds the index's write
    lock: one line, exit 1, the index as it was (before 2026-12-07 `--catch-up` reset it
    as damaged, and a rebuild said "rebuilt" either way)."""
    from recorder.cli.main import main

    monkeypatch.setattr(index_module, "BUSY_TIMEOUT_MS", 200)
    root = tmp_path / "logs"
    path = indexed(root, 300)
    inode = path.stat().st_ino
    w = write_journal(root, 0)
    add_messages(w, 300, 100)
    w.close()
    other = Connected(path)
    connected.append(other)
    other.run("BEGIN IMMEDIATE")
    capsys.readouterr()
    extra = ["--catch-up"] if catch_up else []
    assert main(["reindex", "--log-dir", str(root), *extra]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert "is locked by another process" in err
    assert "Traceback" not in err
    assert path.stat().st_ino == inode
    assert other.run("SELECT count(*) FROM docs WHERE msg = 1")["rows"] == [[300]]
    other.run("COMMIT")
    assert main(["reindex", "--log-dir", str(root), *extra]) == 0
    assert other.run("SELECT count(*) FROM docs WHERE msg = 1")["rows"] == [[400]]


def test_a_search_of_an_index_another_process_locks_fails_in_one_line_and_resets_nothing(
    tmp_path: Path,
    connected: list[Connected],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Another process holding the index in exclusive locking mode (no read gets
    through): a search fails with one line naming the lock, exit 1; before 2026-12-07
    its second "database is locked" made it rebuild the index, replacing the file
    under that process."""
    from recorder.cli.main import main

    monkeypatch.setattr(index_module, "BUSY_TIMEOUT_MS", 200)
    root = tmp_path / "logs"
    path = indexed(root, 300)
    inode = path.stat().st_ino
    other = Connected(path)
    connected.append(other)
    other.run("PRAGMA locking_mode = EXCLUSIVE")
    other.run("BEGIN EXCLUSIVE")
    with (
        SearchEngine(root, Roots(None, None, None)) as engine,
        pytest.raises(sqlite3.OperationalError, match="locked"),
    ):
        engine.search("deployment", wait=5.0)
    capsys.readouterr()
    assert main(["search", "--log-dir", str(root), "deployment"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    last = err.splitlines()[-1]  # after the catch-up's "another process is updating ..."
    assert "database is locked" in last and "another process holds it locked" in last
    assert "Traceback" not in err
    assert path.stat().st_ino == inode
    assert other.run("SELECT count(*) FROM docs WHERE msg = 1")["rows"] == [[300]]
    other.close()  # (a WAL entered in exclusive locking mode keeps it until closed)
    with SearchEngine(root, Roots(None, None, None)) as engine:
        assert engine.search("deployment").total == 6


# A process with the index open through `SearchIndex` (the recorder's indexer, the TUI):
# it answers each command on its stdin with the messages it sees and the index files
# it has open that were deleted since.
WRITER = (
    DELETED_INDEX_FILES
    + r"""
import json, sys
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
    print(json.dumps({"rows": rows, "deleted": deleted_index_files()}), flush=True)
"""
)


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


def test_doctor_on_an_index_another_process_locks_says_busy_and_fix_moves_nothing(
    tmp_path: Path,
    connected: list[Connected],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An index another process holds locked (a rebuild, a long write) is busy, not
    damaged: doctor called it "unusable (database is locked)", a problem, and `--fix`
    moved it aside under that process's connection."""
    from recorder.cli.main import main

    monkeypatch.setattr(index_module, "BUSY_TIMEOUT_MS", 200)
    root = tmp_path / "logs"
    path = indexed(root, 300)
    inode = path.stat().st_ino
    other = Connected(path)
    connected.append(other)
    other.run("PRAGMA locking_mode = EXCLUSIVE")
    other.run("BEGIN EXCLUSIVE")
    for argv in (["doctor", "--json"], ["doctor", "--fix", "--json"]):
        main([*argv, "--log-dir", str(root)])
        report = json.loads(capsys.readouterr().out)
        search = [f for f in report["findings"] if f["area"] == "search"]
        assert [(f["check"], f["severity"], f["auto_fix"]) for f in search] == [
            ("search.busy", "warning", False)
        ], search
        assert "another process holds it locked" in search[0]["summary"]
        assert path.stat().st_ino == inode
    assert other.run("SELECT count(*) FROM docs WHERE msg = 1")["rows"] == [[300]]


def test_an_emptied_index_another_process_has_open_is_rebuilt_by_a_search_at_once(
    tmp_path: Path,
    connected: list[Connected],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The index truncated to 0 bytes while another process (the recorder's idle
    indexer, the TUI) has it open: a search rebuilds it at once, and that process goes
    on with the rebuilt index. Before 2026-12-07 the search tried to rebuild it in
    place, which for a file no longer in WAL mode takes an exclusive lock that the
    other process's WAL connection never lets go of: it waited out the busy timeout
    three times (60 s at 10 s each), then failed, "no such table: main.fts", exit 1."""
    from recorder.cli.main import main

    monkeypatch.setattr(index_module, "BUSY_TIMEOUT_MS", 200)  # the old code: fails fast
    root = tmp_path / "logs"
    path = indexed(root, 300)
    writer = Connected(root, WRITER)
    connected.append(writer)
    assert writer.run("count") == {"rows": 300, "deleted": []}
    os.truncate(path, 0)
    capsys.readouterr()
    assert main(["search", "--log-dir", str(root), "--no-fuzzy", "deployment"]) == 0
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("persist: 6 exact matches, 6 shown ("), err
    assert len(out.splitlines()) == 6
    assert sorted(p.name for p in path.parent.glob("index.sqlite3.new*")) == []
    # the other process reads the rebuilt index, and writes to it
    assert writer.run("count") == {"rows": 300, "deleted": []}
    assert writer.run("add") == {"rows": 350, "deleted": []}
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        db.close()
