"""How the recorder's helper children fare, for `persist status` and the TUI: the search
indexer (`persist reindex --follow`) in `search/indexer-status.json`, the session
monitor (`persist monitor`) in `sessions/monitor-child.json`, each written by the
recorder each time it starts the child and each time the child ends (it reaps it and
starts it again: `recorder.cli.children`). Derived and disposable like every status
file; a full disk may leave it unwritten.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from recorder.store.fsutil import atomic_write, ensure_private_dir, read_regular
from recorder.store.layout import Layout

STATUS_NAME = "indexer-status.json"
SETTLED = 60.0  # seconds a restarted child must run before its last failure is old news


@dataclass(frozen=True)
class ChildKind:
    """One kind of child the recorder keeps running, and how status speaks of it."""

    folder: str  # its status file's folder in the log folder
    name: str  # its status file
    who: str  # the child, as the warnings name it
    down: str  # the warning while it waits to be started again
    again: str  # the warning for the first SETTLED s after it was started again

    def path(self, layout: Layout) -> Path:
        return layout.root / self.folder / self.name


INDEXER = ChildKind(
    "search",
    STATUS_NAME,
    "its indexer (persist reindex --follow)",
    "search index not kept warm",
    "search index kept warm again",
)
MONITOR = ChildKind(
    "sessions",
    "monitor-child.json",
    "the recorder's session monitor (persist monitor)",
    "session monitor not running",
    "session monitor running again",
)


@dataclass
class IndexerStatus:
    """A kept child's state (the name is the indexer's, which had it first)."""

    parent: int  # the recorder that runs it
    pid: int | None  # the running child, None while it waits to be started again
    started: float | None  # when the running child started
    restarts: int = 0  # starts after a failure
    last_error: str | None = None  # how the last child ended: exit code, last log line
    failed: float | None = None  # when
    next_start: float | None = None  # when it is started again (while pid is None)

    def problem(self, now: float, kind: ChildKind = INDEXER) -> str | None:
        """A sentence when the child is not running (or only just again), else None."""
        if self.last_error is None or self.failed is None:
            return None
        times = "once" if self.restarts == 1 else f"{self.restarts} times"
        why = f"{kind.who} ended: {self.last_error} ({times} since the recorder started)"
        if self.pid is None:
            wait = max(0.0, (self.next_start or now) - now)
            return f"{kind.down}: {why}; started again in {wait:.0f} s"
        if self.started is not None and now - self.started < SETTLED:
            return f"{kind.again} only since {now - self.started:.0f} s: {why}"
        return None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


ChildStatus = IndexerStatus


def write_child_status(layout: Layout, kind: ChildKind, status: ChildStatus) -> None:
    path = kind.path(layout)
    ensure_private_dir(path.parent)
    atomic_write(path, orjson.dumps(status.to_json()), durable=False)


def read_child_status(layout: Layout, kind: ChildKind) -> ChildStatus | None:
    """The last status the recorder wrote of that child, or None (none, or unreadable)."""
    try:
        return ChildStatus(**orjson.loads(read_regular(kind.path(layout))[0]))
    except (OSError, orjson.JSONDecodeError, TypeError):
        return None


def write_indexer_status(layout: Layout, status: IndexerStatus) -> None:
    write_child_status(layout, INDEXER, status)


def read_indexer_status(layout: Layout) -> IndexerStatus | None:
    return read_child_status(layout, INDEXER)
