"""A recorder that waits for the folder: while a `persist` command (a prune, a trash
change, a checkpoint taken with no recorder) holds the folder's lock, a recorder
starting waits for it (`lock.TOOL_WAIT`) before it writes anything `status.json`
would say. `recorder.waiting` names it meanwhile, so that `persist status` says a
recorder waits and will start, `persist stop` stops it, and a start in the background
(`spawn_recorder`) waits as long as it does. Before 2026-12-07 nothing named it: `persist
stop` said no recorder was running, and one recorded a moment later.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from recorder.store.fsutil import atomic_write, read_regular
from recorder.store.layout import Layout
from recorder.store.procstart import same_process, start_key, wall_start


@dataclass(frozen=True)
class Waiting:
    pid: int  # the recorder that waits
    started: float | None  # its start (so that a reused PID is not taken for it)
    key: str | None
    holder: int | None  # the `persist` command it waits for, and its name
    role: str
    since: float  # when it began to wait (the wall clock)

    def what(self) -> str:
        """`persist prune` (PID N): what it waits for."""
        who = f" (PID {self.holder})" if self.holder else ""
        return f"`persist {self.role or 'command'}`{who}"


def announce(layout: Layout, holder: int | None, role: str) -> None:
    """Name this process as a recorder waiting for `holder` (never fails: the wait goes
    on unnamed)."""
    pid = os.getpid()
    data = {
        "pid": pid,
        "process_started": wall_start(pid),
        "process_start_key": start_key(pid),
        "holder_pid": holder,
        "holder_role": role,
        "since": time.time(),
    }
    with contextlib.suppress(OSError):
        atomic_write(layout.waiting, orjson.dumps(data) + b"\n", durable=False)


def withdraw(layout: Layout) -> None:
    """This process waits no longer: its `recorder.waiting` goes (another's stays)."""
    found = _read(layout.waiting)
    if found is not None and found.pid == os.getpid():
        with contextlib.suppress(OSError):
            layout.waiting.unlink()


def read_waiting(layout: Layout) -> Waiting | None:
    """The recorder that waits for the folder, if it still runs (else None)."""
    found = _read(layout.waiting)
    if found is None or not same_process(found.pid, found.started, found.key):
        return None
    return found


def _read(path: Path) -> Waiting | None:
    try:
        data = orjson.loads(read_regular(path)[0])
        pid, holder, role, since = (
            data["pid"],
            data.get("holder_pid"),
            data.get("holder_role") or "",
            data.get("since"),
        )
        started, key = data.get("process_started"), data.get("process_start_key")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if type(pid) is not int or pid <= 0 or not isinstance(role, str):
        return None
    return Waiting(
        pid,
        started if isinstance(started, (int, float)) else None,
        key if isinstance(key, str) else None,
        holder if type(holder) is int else None,
        role,
        since if isinstance(since, (int, float)) else time.time(),
    )
