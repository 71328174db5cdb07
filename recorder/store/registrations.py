"""Reading the agents' registrations in `agents/` (one `<pid>-<agent>-<tail>.agent.json`
per connected agent; `recorder.launch.registry` writes them): which agents run now,
and which restore bundle each was handed (`bundle`, the folder's name in `restore/`),
so that no restore removes a bundle under an agent still reading it
(`store.bundles.in_use`). Here, below the export layer, so the bundles' cleanup reaches
it. No zmq, no textual.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from recorder.store.fsutil import read_json_object
from recorder.store.layout import Layout
from recorder.store.status import process_matches

# field -> accepted types; a registration with another type is ignored
AGENT_FIELDS: dict[str, tuple[type, ...]] = {
    "pid": (int,),
    "started": (int, float, type(None)),
    "start_key": (str, type(None)),  # missing in files written before 2026-12-07
    "agent": (str, type(None)),
    "connected": (int, float),
    "recorder_pid": (int, type(None)),
    "started_recorder": (bool,),
    "bundle": (str, type(None)),  # missing in files written before 2026-12-08
}


def alive(pid: Any, started: Any, key: Any = None) -> bool:
    """`pid` runs and is the process recorded: by its start key when the file has one
    (files written before 2026-12-07 have only the wall-clock start, see `procstart`)."""
    return (
        type(pid) is int
        and pid > 0
        and (started is None or type(started) in (int, float))
        and process_matches(pid, started, key if type(key) is str else None)
    )


def typed_file(
    path: Path, fields: dict[str, tuple[type, ...]], warnings: list[str] | None
) -> dict[str, Any] | None:
    """The JSON object in `path` if every field has its type (bool is no int here; a
    missing field is None); else None, and a sentence in `warnings` unless the file is
    simply missing."""
    if not path.exists():
        return None
    data = read_json_object(path)
    wrong = (
        ["the file"]
        if data is None
        else [k for k, kinds in fields.items() if type(data.get(k)) not in kinds]
    )
    if wrong:
        if warnings is not None:
            warnings.append(
                f"{path.parent.name}/{path.name}: {', '.join(wrong)} "
                "missing or wrongly typed; ignored"
            )
        return None
    return data


def live_agents(
    layout: Layout, *, prune: bool = True, warnings: list[str] | None = None
) -> list[dict[str, Any]]:
    """Agents registered with this log folder whose process still runs (a malformed
    registration is ignored, pruned, and named in `warnings`)."""
    found = []
    try:
        paths = sorted(p for p in layout.agents.iterdir() if p.name.endswith(".agent.json"))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for path in paths:
        data = typed_file(path, AGENT_FIELDS, warnings)
        if data is not None and alive(data.get("pid"), data.get("started"), data.get("start_key")):
            found.append({**data, "file": path.name})
        elif prune:
            with contextlib.suppress(OSError):
                path.unlink()
    return found


def who(registration: dict[str, Any]) -> str:
    """An agent in words: "claude (pid 4242)"."""
    return f"{registration.get('agent') or 'an agent'} (pid {registration.get('pid')})"


def bundle_users(layout: Layout) -> dict[str, list[str]]:
    """The restore bundles (folder names in `restore/`) that agents registered and
    alive now were handed, each with who (`who`). Reads only: a dead agent's file is
    the launcher's to remove."""
    users: dict[str, list[str]] = {}
    for registration in live_agents(layout, prune=False):
        name = registration.get("bundle")
        if name:
            users.setdefault(str(name), []).append(who(registration))
    return users
