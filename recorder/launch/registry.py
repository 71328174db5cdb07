"""The agents/ folder: which agents are connected, who started the recorder, the launch lock."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from collections.abc import Iterator
from typing import Any

from recorder.errors import LaunchError
from recorder.store.fsutil import ensure_private_dir, open_private, read_json_object
from recorder.store.layout import Layout

AGENTS_DIR = "agents"


OWNER_FILE = "owner.json"


LOCK_FILE = "launch.lock"


# -- the agents/ folder ---------------------------------------------------------------
def _proc_started(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, ValueError):
        return None


def _alive(pid: Any, started: Any) -> bool:
    from recorder.store.status import process_matches

    return isinstance(pid, int) and pid > 0 and process_matches(pid, started)


def live_agents(layout: Layout, *, prune: bool = True) -> list[dict[str, Any]]:
    """Agents registered with this log folder whose process still runs."""
    folder = layout.root / AGENTS_DIR
    found = []
    try:
        paths = sorted(p for p in folder.iterdir() if p.name.endswith(".agent.json"))
    except FileNotFoundError:
        return []
    for path in paths:
        data = read_json_object(path)
        if data is not None and _alive(data.get("pid"), data.get("started")):
            found.append({**data, "file": path.name})
        elif prune:
            with contextlib.suppress(OSError):
                path.unlink()
    return found


def recorder_owner(layout: Layout) -> dict[str, Any] | None:
    """`agents/owner.json` if it names the recorder running now (a launcher started it)."""
    from recorder.store.status import assess

    owner = read_json_object(layout.root / AGENTS_DIR / OWNER_FILE)
    if owner is None:
        return None
    health = assess(layout)
    if health.pid != owner.get("recorder_pid") or not _alive(
        owner.get("recorder_pid"), owner.get("recorder_started")
    ):
        return None
    return owner


@contextlib.contextmanager
def _launch_lock(layout: Layout, timeout: float = 30.0) -> Iterator[None]:
    """Serializes launchers of one folder while they decide to start or stop the recorder."""
    folder = ensure_private_dir(layout.root / AGENTS_DIR)
    fd = open_private(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LaunchError(f"another launcher holds {folder / LOCK_FILE}") from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)


def _slug(name: str | None) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", name or "agent").strip("-.")[:40] or "agent"

