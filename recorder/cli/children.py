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
import time
from pathlib import Path

from recorder.cli.common import say
from recorder.daemon.priority import lower_child_priority
from recorder.store.fsutil import ensure_private_dir, open_private
from recorder.store.layout import Layout

REAP_WAIT = 0.2  # seconds the recorder's exit waits for its killed children, in all


class IdleChild:
    def __init__(self, argv: list[str], log: Path, failure: str) -> None:
        self.argv = [sys.executable, "-m", "recorder.cli", *argv, "--parent", str(os.getpid())]
        self.log = log  # its stderr
        self.failure = failure  # what the recorder says if it cannot start it
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        try:
            ensure_private_dir(self.log.parent)
            err = open_private(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        except OSError as exc:
            say(f"{self.failure}: {exc}")
            return
        try:
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
        if self.proc is not None:
            with contextlib.suppress(OSError):
                self.proc.kill()


def search_indexer(log_dir: Path) -> IdleChild:
    """Keeps the search index level with the journal (`persist reindex --follow`)."""
    argv = ["reindex", "--catch-up", "--follow", "--log-dir", str(log_dir)]
    return IdleChild(argv, Layout(log_dir).search / "indexer.log", "search index not kept warm")


def session_monitor(log_dir: Path) -> IdleChild:
    """The session monitor's policy while the recorder runs (`persist monitor`)."""
    argv = ["monitor", "--log-dir", str(log_dir)]
    return IdleChild(argv, Layout(log_dir).sessions / "monitor.err", "session monitor not started")


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
