"""What the session monitor last did, for `persist status`: `sessions/monitor-status.json`
(the one the recorder runs) and `sessions/monitor-standalone.json` (the last standalone
`persist monitor`). Written atomically, 0600, after each round; derived and disposable
like every status file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import orjson

from recorder.store.fsutil import atomic_write, ensure_private_dir, read_regular
from recorder.store.jsontext import dumps as json_dumps
from recorder.store.layout import Layout

STATUS_NAME = "monitor-status.json"
STANDALONE_NAME = "monitor-standalone.json"


@dataclass
class MonitorStatus:
    pid: int
    parent: int | None  # the recorder it runs for (None: a standalone `persist monitor`)
    started: float
    interval_minutes: float
    rounds: int = 0
    last_round: float | None = None  # when the last round ended
    round_seconds: float = 0.0  # how long it took
    sessions: int = 0  # sessions decided on in the last round
    taken: int = 0  # checkpoints taken since this monitor started
    last_taken: dict[str, Any] | None = None  # {"id", "key", "time"} of the newest one
    problems: list[str] = field(default_factory=list)  # of the last round (first few)
    start_key: str | None = None  # its process's start (procstart); None before 2026-12-07

    @property
    def alive(self) -> bool:
        """Its process runs: not gone, not a zombie (ended, not yet reaped: `kill(pid,
        0)` succeeds on one, and a dead monitor was called running), not another
        process that took its PID since: one of another start key, or, in a file with
        no key, one started after this monitor was (by the wall clock)."""
        import psutil

        from recorder.store.procstart import same_process

        if self.start_key:
            return same_process(self.pid, None, self.start_key)
        try:
            proc = psutil.Process(self.pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            return bool(proc.create_time() <= self.started + 1.0)
        except psutil.AccessDenied:
            return True  # another user's: it runs
        except (psutil.Error, OverflowError, ValueError):
            return False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def write_status(layout: Layout, status: MonitorStatus) -> None:
    ensure_private_dir(layout.sessions)
    name = STATUS_NAME if status.parent is not None else STANDALONE_NAME
    atomic_write(layout.sessions / name, json_dumps(status.to_json()), durable=False)


def read_status(layout: Layout, *, standalone: bool = False) -> MonitorStatus | None:
    """The last status the recorder's monitor (or a standalone one) wrote, or None (none
    yet, or unreadable: it is derived)."""
    try:
        name = STANDALONE_NAME if standalone else STATUS_NAME
        data = orjson.loads(read_regular(layout.sessions / name)[0])  # never a pipe's wait
        known = {f.name for f in fields(MonitorStatus)}  # a newer version's extra fields
        return MonitorStatus(**{k: v for k, v in data.items() if k in known})
    except (OSError, orjson.JSONDecodeError, TypeError, AttributeError):
        return None
