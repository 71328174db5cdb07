"""The agents/ folder: which agents are connected, who started the recorder, the launch lock.

Agents register in `<log-dir>/agents/` (one 0600 file per connected agent, named
after its PID; files of dead processes, or of reused PIDs, are ignored and
removed; `store.registrations` reads them). A registration names the restore bundle
its agent was handed (`bundle`): no restore removes it while the agent runs. A
recorder started by a launcher is noted in `agents/owner.json`, so
the last agent out can stop it; a recorder started any other way has no owner
file and is never stopped by a launcher.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from recorder.errors import LaunchError
from recorder.store.fsutil import (
    atomic_write,
    ensure_private_dir,
    flock_within,
    not_regular,
    open_lock,
    read_json_object,
)
from recorder.store.layout import Layout
from recorder.store.registrations import AGENT_FIELDS, alive, typed_file
from recorder.store.registrations import live_agents as live_agents  # (its readers import it here)
from recorder.store.status import assess, process_start_key, process_start_time

# field -> accepted types; an owner file with another type is ignored
_OWNER_FIELDS: dict[str, tuple[type, ...]] = {
    "recorder_pid": (int,),
    "recorder_started": (int, float, type(None)),
    "recorder_start_key": (str, type(None)),
    "launcher_pid": (int,),
    "launcher_started": (int, float, type(None)),
    "launcher_start_key": (str, type(None)),
    "agent": (str, type(None)),
    "started": (int, float),
}


def agents_folder(layout: Layout) -> Path:
    """`<log-dir>/agents/`, made (0700) when missing. Something else where it goes (a
    file, a named pipe) is one line naming it and the `mv` that clears its place; before
    2026-12-07 it was `File exists (.../agents)`, naming nothing to do."""
    try:
        return ensure_private_dir(layout.agents)
    except (FileExistsError, NotADirectoryError) as exc:
        try:
            mode = os.stat(layout.agents).st_mode
        except OSError:
            mode = stat.S_IFDIR  # not it: something on the way to it (said as it was)
        if stat.S_ISDIR(mode):
            raise exc from None
        what = "a file" if stat.S_ISREG(mode) else not_regular(mode).split(",")[0]
        path = shlex.quote(str(layout.agents))
        raise LaunchError(
            f"{layout.agents} is {what}, not a folder: launchers register their agents "
            f"there; move it out of the way (mv {path} {path}.aside) and run this again"
        ) from None


def _slug(name: str | None) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", name or "agent").strip("-.")[:40] or "agent"


def register_agent(
    layout: Layout,
    agent: str | None,
    recorder_pid: int | None,
    started_recorder: bool,
    *,
    pid: int | None = None,  # the agent's process, if not this one (a hook's parent)
    key: str | None = None,  # a stable name part: registering again replaces the file
    bundle: Path | None = None,  # the restore bundle the agent was handed (`bundle_field`)
) -> Path:
    """Register this process (or `pid`) as a connected agent; returns its registration
    file. Registered again (`key`) without a bundle, the same process keeps the one
    named before (a resumed session's start hands none, and the agent may read it
    still)."""
    folder = agents_folder(layout)
    pid = os.getpid() if pid is None else pid
    tail = _slug(key) if key else uuid.uuid4().hex[:6]
    path = folder / f"{pid}-{_slug(agent)}-{tail}.agent.json"
    record = {
        "pid": pid,
        "started": process_start_time(pid),
        "start_key": process_start_key(pid),
        "agent": agent,
        "connected": time.time(),
        "recorder_pid": recorder_pid,
        "started_recorder": started_recorder,
        "bundle": None if bundle is None else bundle_field(layout, bundle),
    }
    if record["bundle"] is None and key:
        before = read_json_object(path) or {}
        same = (before.get("pid"), before.get("start_key")) == (pid, record["start_key"])
        if same and type(before.get("bundle")) is str:
            record["bundle"] = before["bundle"]
    atomic_write(path, orjson.dumps(record), durable=False)
    return path


def bundle_field(layout: Layout, bundle: Path) -> str | None:
    """What a registration says of the restore bundle in folder `bundle`: its name in
    this log folder's `restore/` (what `store.bundles` keeps while the agent runs), or
    None for a folder elsewhere (no restore of this folder removes it)."""
    with contextlib.suppress(OSError):
        if Path(bundle).parent.resolve() == layout.restore.resolve():
            return Path(bundle).name
    return None


def note_bundle(layout: Layout, registration: Path, bundle: Path) -> None:
    """The agent of `registration` was handed the restore bundle in `bundle` (after it
    registered: the launcher builds it once the recorder runs). OSError when the file
    cannot be rewritten; LaunchError when it is gone or no registration."""
    record = typed_file(registration, AGENT_FIELDS, None)
    if record is None:
        raise LaunchError(f"{registration} is gone or not an agent registration")
    record["bundle"] = bundle_field(layout, bundle)
    atomic_write(registration, orjson.dumps(record), durable=False)


def write_owner(layout: Layout, recorder_pid: int, agent: str | None) -> None:
    """Note that this launcher started the recorder `recorder_pid`."""
    owner = {
        "recorder_pid": recorder_pid,
        "recorder_started": process_start_time(recorder_pid),
        "recorder_start_key": process_start_key(recorder_pid),
        "launcher_pid": os.getpid(),
        "launcher_started": process_start_time(os.getpid()),
        "launcher_start_key": process_start_key(os.getpid()),
        "agent": agent,
        "started": time.time(),
    }
    agents_folder(layout)
    atomic_write(layout.owner, orjson.dumps(owner), durable=False)


def recorder_owner(layout: Layout, warnings: list[str] | None = None) -> dict[str, Any] | None:
    """`agents/owner.json` if it names the recorder running now (a launcher started it);
    a malformed one is ignored (no owner: the recorder is never stopped by a launcher)
    and named in `warnings`."""
    owner = typed_file(layout.owner, _OWNER_FIELDS, warnings)
    if owner is None:
        return None
    health = assess(layout)
    if health.pid != owner.get("recorder_pid") or not alive(
        owner.get("recorder_pid"), owner.get("recorder_started"), owner.get("recorder_start_key")
    ):
        return None
    return owner


def forget_owner(layout: Layout) -> None:
    with contextlib.suppress(OSError):
        layout.owner.unlink()


def hooks_at_work(layout: Layout, but: Path | None = None) -> list[str]:
    """The agent sessions whose lock a hook holds now (`hooks/sessions/<file>.lock`:
    the hook may still be sending the session's messages, so the recorder is not
    stopped under it), `but` (a state file whose lock the caller holds) left out.
    Each lock probed with a shared lock, dropped at once (a hook trying at that instant
    tries again 10 ms later); never waits, never opens a named pipe."""
    import fcntl

    folder = layout.root / "hooks" / "sessions"
    skip = None if but is None else but.name + ".lock"
    try:
        with os.scandir(folder) as found:
            names = [e.name for e in found if e.name.endswith(".json.lock") and e.name != skip]
    except OSError:
        return []
    held = []
    for name in sorted(names):
        try:
            fd = os.open(folder / name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            held.append(name.removesuffix(".json.lock"))
        except OSError:
            pass
        finally:
            os.close(fd)
    return held


class LockBusy(LaunchError):
    """Another process held the launch lock for all of the wait."""


@contextlib.contextmanager
def launch_lock(layout: Layout, timeout: float = 30.0) -> Iterator[None]:
    """Serializes launchers of one folder while they decide to start or stop the recorder."""
    agents_folder(layout)
    fd = open_lock(layout.launch_lock, layout.recovery)  # LockInTheWay: a folder there
    try:
        if not flock_within(fd, timeout):
            raise LockBusy(f"another launcher holds {layout.launch_lock} (waited {timeout:g} s)")
        yield
    finally:
        os.close(fd)
