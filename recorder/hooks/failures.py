"""Where a hook's failures go: never to the agent, always somewhere `persist status` and
`persist hooks status` look.

Each failure is one JSON line in `<log-dir>/hooks/failures.jsonl` (0600). When the
log folder itself is unusable (a file, unwritable, on a full disk), the line goes to
`$XDG_STATE_HOME/agent-persist/hook-failures.jsonl` (default ~/.local/state/...)
with the log folder named in it, so `persist status --log-dir DIR` still finds it
(`persist hooks status` when DIR is a file, which `persist status` refuses, exit 2).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import NamedTuple

from recorder.store.fsutil import ensure_private_dir, open_private, open_regular
from recorder.store.unfinished import marked
from recorder.store.xdg import state_home

FAILURES = "failures.jsonl"
TAIL_BYTES = 64 * 1024  # what status reads of a failure file: the last lines are enough


def hooks_dir(log_dir: Path) -> Path:
    return log_dir / "hooks"


def fallback_file() -> Path:
    return state_home() / "agent-persist" / "hook-failures.jsonl"


def _append(path: Path, line: bytes) -> None:
    ensure_private_dir(path.parent)  # and the folders it makes above it: 0700, whatever the umask
    # O_NONBLOCK: a named pipe there with no reader fails (ENXIO: the next file takes
    # the line), never holds the agent's hook
    fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def record_failure(log_dir: Path, event: str, agent: str, session: str, error: str) -> Path | None:
    """Write the failure down; returns where, or None if nowhere would take it. Never raises."""
    entry = {
        "time": time.time(),
        "event": event,
        "agent": agent,
        "session": session,
        "error": error[:2000],
        "log_dir": os.path.abspath(log_dir),  # as `persist status` names it, from anywhere
    }
    line = json.dumps(entry).encode() + b"\n"
    # a half-restored backup takes nothing (its restore would find the file not its own)
    here = [] if marked(log_dir) else [hooks_dir(log_dir) / FAILURES]
    for path in (*here, fallback_file()):
        with contextlib.suppress(OSError):
            _append(path, line)
            return path
    return None


class HookFailures(NamedTuple):  # no dataclass: this module loads with every hook
    total: int  # failures written down for this folder (see `at_least`)
    last_time: float | None
    last: str  # "<event> (<agent> <session>): <error>"
    files: tuple[Path, ...]
    at_least: bool = False  # the shared file held more than was read: `total` or more


def _tail(path: Path) -> tuple[list[bytes], bool]:
    """The whole lines of the last `TAIL_BYTES` of `path`, and whether there were more."""
    try:  # a named pipe there is not waited on (open_regular)
        fd, st = open_regular(path)
    except OSError:
        return [], False
    try:
        size = st.st_size
        data = os.pread(fd, TAIL_BYTES, max(0, size - TAIL_BYTES))
    except OSError:
        return [], False
    finally:
        os.close(fd)
    lines = data.split(b"\n")
    if size > TAIL_BYTES:
        lines = lines[1:]  # the first may be cut
    return [line for line in lines if line.strip()], size > TAIL_BYTES


def _line_count(path: Path) -> int:
    """Lines of a failure file, counted without parsing them (it may be long)."""
    count = 0
    with contextlib.suppress(OSError):
        fd, _st = open_regular(path)
        try:
            while block := os.read(fd, 1 << 20):
                count += block.count(b"\n")
        finally:
            os.close(fd)
    return count


def _same_folder(named: object, want: str, seen: dict[str, bool]) -> bool:
    """Whether a failure's `log_dir` is the folder `want` (a real path), however it
    was named (relative, through a symlink); entries of old versions name none."""
    if named is None:
        return True
    if not isinstance(named, str):
        return False
    if named not in seen:
        seen[named] = os.path.realpath(named) == want
    return seen[named]


def _time_of(entry: dict[str, object]) -> float:
    when = entry.get("time")
    return float(when) if isinstance(when, int | float) else 0.0


def read_failures(log_dir: Path) -> HookFailures:
    """What the hooks of this log folder could not do (from both places): every line
    of the folder's own file counts; the shared file's last `TAIL_BYTES` are read."""
    want = os.path.realpath(log_dir)
    seen: dict[str, bool] = {}
    found: list[dict[str, object]] = []
    files = []
    total, at_least = 0, False
    own = hooks_dir(log_dir) / FAILURES
    for path in (own, fallback_file()):
        lines, more = _tail(path)
        mine = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and (
                path == own or _same_folder(entry.get("log_dir"), want, seen)
            ):
                mine.append(entry)
        if mine:
            files.append(path)
            found.extend(mine)
            if path == own:
                total += _line_count(path) if more else len(mine)
            else:
                total += len(mine)
                at_least = at_least or more
    if not found:
        return HookFailures(0, None, "", ())
    found.sort(key=_time_of)
    from recorder.export.render import clean  # `persist status` only: no hook reads this

    e = found[-1]
    when = e.get("time")
    # the session id is the agent's hook stdin: escaped before the cut, which would leave
    # a sequence open (`\x1b]0;…` without its end); the rest is escaped where it is shown
    session = clean(str(e.get("session")), newlines=False)[:8]
    last = f"{e.get('event')} ({e.get('agent')} {session}): {e.get('error')}"
    return HookFailures(
        total, float(when) if isinstance(when, int | float) else None, last, tuple(files), at_least
    )
