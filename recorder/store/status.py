"""The recorder's heartbeat file and what a reader concludes from it.

The recorder rewrites `status.json` about once a second. A reader decides:
- healthy: the process is alive (same PID *and* same start time) and the file is fresh;
- stale: the process exists but has not written its heartbeat for `STALE_AFTER` seconds;
- stopped: no status, a clean stop, or the process is gone (or its PID was reused).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recorder.store.fsutil import read_json_object
from recorder.store.layout import Layout

STALE_AFTER = 5.0
HEALTHY, STALE, STOPPED = "healthy", "stale", "stopped"


@dataclass(frozen=True)
class Health:
    state: str  # HEALTHY, STALE or STOPPED
    reason: str
    status: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        pid = self.status.get("pid")
        return int(pid) if pid else None

    @property
    def running(self) -> bool:
        return self.state != STOPPED

    def start_command(self, log_dir: Path) -> str:
        broker = self.status.get("broker") or "tcp://127.0.0.1:5555"
        return f"persist record --broker {broker} --log-dir {log_dir} --detach"


def read_status(layout: Layout) -> dict[str, Any] | None:
    return read_json_object(layout.status)


def process_matches(pid: int, started: float | None) -> bool:
    """True if `pid` runs and is the process that wrote the status (not a reuse)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        created = proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False
    return started is None or abs(created - float(started)) < 1.0


def process_start_time(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), or None if it is gone."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, ValueError):
        return None


def assess(layout: Layout, now: float | None = None) -> Health:
    now = time.time() if now is None else now
    status = read_status(layout)
    if status is None:
        if layout.segments.is_dir():
            return Health(STOPPED, "no recorder has written a status file here")
        return Health(STOPPED, "no journal in this folder yet")
    pid = int(status.get("pid") or 0)
    age = now - float(status.get("updated") or 0)
    if status.get("state") == "stopped":
        return Health(STOPPED, f"stopped cleanly {format_age(age)} ago", status)
    if not pid or not process_matches(pid, status.get("process_started")):
        return Health(
            STOPPED,
            f"recorder PID {pid} is gone without a clean stop "
            f"(last heartbeat {format_age(age)} ago)",
            status,
        )
    if age > STALE_AFTER:
        return Health(STALE, f"PID {pid} is alive but silent for {format_age(age)}", status)
    warnings = []
    if status.get("connection") != "connected":
        warnings.append(f"not connected to the broker at {status.get('broker')}")
    if status.get("last_error"):
        warnings.append(f"last error: {status['last_error'].get('message')}")
    return Health(HEALTHY, f"recording, PID {pid}", status, warnings)


def format_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
