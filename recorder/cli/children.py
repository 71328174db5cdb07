"""The helper processes `persist record` runs at idle CPU and I/O priority: the search
indexer (`persist reindex --follow`) and the session monitor (`persist monitor`).

Work that parses (JSON, the index's text) would hold the GIL the recorder's receiving
thread needs, so it runs in these children; each ends when its recorder does (`--parent`).
They are SIGKILLed at the recorder's stop: both are safe to kill at any moment (the
index commits one transaction per chunk; a monitor round copies before it names the
copy in a checkpoint written by rename). The recorder waits for them only briefly: a
process at idle priority may not be scheduled, even to die, while the machine is busy,
and the recorder's own exit must not wait on that (it made clean stops linger).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from recorder.cli.common import say
from recorder.daemon.priority import lower_child_priority
from recorder.errors import how_it_ended
from recorder.store.fsutil import ensure_private_dir, open_private
from recorder.store.indexer_status import (
    INDEXER,
    MONITOR,
    ChildKind,
    ChildStatus,
    write_child_status,
)
from recorder.store.layout import Layout

REAP_WAIT = 0.2  # seconds the recorder's exit waits for its killed children, in all
RESTART_FIRST = 2.0  # seconds before a child that ended is started again, doubling...
RESTART_MAX = 60.0  # ...up to this (back to RESTART_FIRST after one ran this long)


class IdleChild:
    def __init__(self, argv: list[str], log: Path, failure: str, kind: ChildKind = INDEXER) -> None:
        self.argv = [sys.executable, "-m", "recorder.cli", *argv, "--parent", str(os.getpid())]
        self.log = log  # its stderr
        self.failure = failure  # what the recorder says if it cannot start it
        self.kind = kind  # where its status goes, how status names it
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_start = 0
        self.stopping = threading.Event()
        self.lock = threading.Lock()  # between starting it and `kill`

    def start(self) -> None:
        with self.lock:
            if not self.stopping.is_set():
                self._spawn()

    def keep(self, layout: Layout) -> None:
        """Start it, and again each time it ends (reaped: no zombie), after a wait
        doubling from RESTART_FIRST to RESTART_MAX, so that one failing at once does not
        spin; each start and end goes to its status file (`search/indexer-status.json`,
        `sessions/monitor-child.json`: `persist status`). An indexer that ended on an
        index error (a full disk, a malformed file) left the index cold for good, and a
        session monitor that died (killed, out of memory) stayed a zombie status called
        running, no session checkpointed again, while status said healthy."""
        status = ChildStatus(parent=os.getpid(), pid=None, started=None)
        wait = RESTART_FIRST
        while not self.stopping.is_set():
            self.start()
            proc = self.proc
            status.pid, status.started = (proc.pid if proc else None), time.time()
            _write_status(layout, self.kind, status)
            ran = time.monotonic()
            code = proc.wait() if proc is not None else None  # reaps it
            if self.stopping.is_set():
                return
            if time.monotonic() - ran >= RESTART_MAX:
                wait = RESTART_FIRST
            status.restarts += 1
            status.pid, status.started, status.failed = None, None, time.time()
            status.last_error = _ending(code, self.log, self.log_start)
            status.next_start = status.failed + wait
            _write_status(layout, self.kind, status)
            self.stopping.wait(wait)
            wait = min(wait * 2, RESTART_MAX)

    def watch(self, layout: Layout) -> None:
        """`keep` in a thread of its own (it only waits, holding no GIL)."""
        name = f"persist-keep-{Path(self.kind.name).stem}"
        threading.Thread(target=self.keep, args=(layout,), name=name, daemon=True).start()

    def _spawn(self) -> None:
        self.proc = None
        try:
            ensure_private_dir(self.log.parent)
            err = open_private(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        except OSError as exc:
            say(f"{self.failure}: {exc}")
            return
        try:
            self.log_start = os.fstat(err).st_size  # what this child writes comes after
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                # a session of its own, whose CPU weight it lowers (`priority`): at idle
                # priority in the recorder's session it would get that session's share
                start_new_session=True,
            )
        except OSError as exc:
            say(f"{self.failure}: {exc}")
        else:
            lower_child_priority(self.proc.pid)
        finally:
            os.close(err)

    def kill(self) -> None:
        with self.lock:
            self.stopping.set()  # never started again
            if self.proc is not None:
                with contextlib.suppress(OSError):
                    self.proc.kill()


def _ending(code: int | None, log: Path, start: int) -> str:
    """How a child ended: its exit code or signal, and the last line it wrote to its
    log (past `start`; none when its disk was full)."""
    how = "could not be started" if code is None else how_it_ended(code)  # a signal: named
    with contextlib.suppress(OSError), open(log, "rb") as f:
        f.seek(max(start, f.seek(0, os.SEEK_END) - 4096))
        lines = [x for x in f.read().decode(errors="replace").splitlines() if x.strip()]
        if lines:
            how += f" ({lines[-1].strip()})"
    return how


def _write_status(layout: Layout, kind: ChildKind, status: ChildStatus) -> None:
    with contextlib.suppress(OSError):  # a full disk: status says less, the child goes on
        write_child_status(layout, kind, status)


def search_indexer(log_dir: Path) -> IdleChild:
    """Keeps the search index level with the journal (`persist reindex --follow`)."""
    argv = ["reindex", "--catch-up", "--follow", "--log-dir", str(log_dir)]
    log = Layout(log_dir).search / "indexer.log"
    return IdleChild(argv, log, "search index not kept warm", INDEXER)


def session_monitor(log_dir: Path) -> IdleChild:
    """The session monitor's policy while the recorder runs (`persist monitor`)."""
    argv = ["monitor", "--log-dir", str(log_dir)]
    log = Layout(log_dir).sessions / "monitor.err"
    return IdleChild(argv, log, "session monitor not started", MONITOR)


def stop_children(children: list[IdleChild]) -> None:
    """SIGKILL every child, then reap those that are gone within `REAP_WAIT` in all (the
    rest are reaped by init once the recorder has exited)."""
    for child in children:
        child.kill()
    deadline = time.monotonic() + REAP_WAIT
    for child in children:
        if child.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            child.proc = None
