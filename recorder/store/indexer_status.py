"""How the recorder's search indexer child (`persist reindex --follow`) fares, for
`persist status` and the TUI: `search/indexer-status.json`, written by the recorder
each time it starts the child and each time the child ends. Derived and disposable
like every status file; a full disk may leave it unwritten.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import orjson

from recorder.store.fsutil import atomic_write, ensure_private_dir
from recorder.store.layout import Layout

STATUS_NAME = "indexer-status.json"
SETTLED = 60.0  # seconds a restarted indexer must run before its last failure is old news


@dataclass
class IndexerStatus:
    parent: int  # the recorder that runs it
    pid: int | None  # the running child, None while it waits to be started again
    started: float | None  # when the running child started
    restarts: int = 0  # starts after a failure
    last_error: str | None = None  # how the last child ended: exit code, last log line
    failed: float | None = None  # when
    next_start: float | None = None  # when it is started again (while pid is None)

    def problem(self, now: float) -> str | None:
        """A sentence when the index is not kept warm (or only just again), else None."""
        if self.last_error is None or self.failed is None:
            return None
        why = f"its indexer (persist reindex --follow) ended: {self.last_error}"
        if self.pid is None:
            wait = max(0.0, (self.next_start or now) - now)
            return f"search index not kept warm: {why}; started again in {wait:.0f} s"
        if self.started is not None and now - self.started < SETTLED:
            return f"search index kept warm again only since {now - self.started:.0f} s: {why}"
        return None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def write_indexer_status(layout: Layout, status: IndexerStatus) -> None:
    ensure_private_dir(layout.search)
    atomic_write(layout.search / STATUS_NAME, orjson.dumps(status.to_json()), durable=False)


def read_indexer_status(layout: Layout) -> IndexerStatus | None:
    """The last status the recorder wrote of its indexer, or None (none, or unreadable)."""
    try:
        return IndexerStatus(**orjson.loads((layout.search / STATUS_NAME).read_bytes()))
    except (OSError, orjson.JSONDecodeError, TypeError):
        return None
