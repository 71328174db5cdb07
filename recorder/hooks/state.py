"""What a hook remembers of a session between calls: `<log-dir>/hooks/sessions/*.json`.

The transcript offset read so far (with a fingerprint of the bytes before it, so a
rewritten or truncated file is noticed), the publisher id and last sequence number
(so the recorder sees one publisher with no false gaps across hook processes), the
ids already published (so a re-read never publishes a message twice) with, for Gemini
CLI, a digest of the version of each that was sent (it writes a message again under
its id as it changes: a changed one is sent again), and the agent's registration.
One file per session, 0600, replaced atomically; calls for the same session are
serialized by an flock on `<file>.lock`.

A Claude sub-agent has a state of its own (session `<session>.<agent id>`, its own
publisher and sequence numbers); until all of its transcript is sent its session's
state names it in `subagents`, and every later call of that session (its turns, its
end, the pending path below) sends the rest.

A session that ended with something not delivered (no recorder listening at its
SessionEnd) also has an empty `<log-dir>/hooks/pending/<file>`: an ended session
gets no next call of its own, so the next hook call of any session finishes it.

A call that cannot take its session's lock (another hook of the session holds it past
`session_lock`'s 5 s: parallel sub-agents finishing at once, a long PreCompact) leaves
what it owes in `<file>.owed/` beside the state, without the lock: a mark per owed thing
(`subagent-<id>-<crc>.json`: a sub-agent's transcript; `end.json`: the session's end,
with the agent's registration to remove once it is sent; `start-<ns>.json`,
`compact-<ns>.json`: a start's or a compaction's message and checkpoint).
Every holder of the lock merges them into the state first (`take_owed`), saves it,
then removes them. Before 2026-12-07 such a SubagentStop lost its sub-agent's transcript
for good and such a SessionEnd the session's end.

None of these files is ever waited on: a named pipe (or a folder) at one is
`StateInTheWay` (`LockInTheWay` at a lock), one line naming it and the `mv` that moves
it out of the way. Before 2026-12-07 a named pipe there held every hook call of its
session until the agent killed it, and wrote no failure line.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from recorder.errors import PersistError
from recorder.hooks.failures import hooks_dir
from recorder.store.fsutil import (
    LockInTheWay,
    NotRegularFile,
    atomic_write,
    ensure_private_dir,
    flock_within,
    not_regular,
    open_lock,
    open_private_regular,
    read_regular,
)

ANCHOR_BYTES = 256  # bytes before the offset whose hash must not change
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def anchor_of(data: bytes) -> str:
    """A fingerprint of the last ANCHOR_BYTES of `data` (with the size and inode, enough
    to notice a rewrite; crc32 because hashlib alone costs a turn hook ~5 ms to import)."""
    tail = data[-ANCHOR_BYTES:]
    return f"{len(tail)}:{zlib.crc32(tail):08x}"


_FIELDS: dict[str, tuple[type, ...]] = {
    "agent": (str,),
    "session": (str,),
    "publisher": (str,),  # envelope publisher id, the same for every call of this session
    "seq": (int,),  # last sequence number sent
    "transcript": (str,),
    "offset": (int,),  # bytes of the transcript read (up to the end of a complete line)
    "anchor": (str,),  # anchor_of(the bytes before offset)
    "inode": (int,),
    "published": (list,),  # agent message ids sent, in order
    # Claude Code: uuids of the earlier lines of the streamed answers sent (an answer's
    # id is its last line's; a transcript cut inside one ends it on one of these)
    "merged": (list,),
    "versions": (dict,),  # Gemini CLI: message id -> digest of the version last sent
    "registration": (str,),  # agents/<file> of this session's agent
    "started": (float, int),
    "rewrites": (int,),  # times the transcript was found rewritten or truncated
    "ending": (str,),  # the SessionEnd reason while its session-ended message is unsent
    # the label of the `... ended` checkpoint, owed until the session's end is delivered
    "end_checkpoint": (str,),
    # Claude Code: sub-agents whose transcript is not all sent yet, agent id -> its path
    # (in the order they stopped; where each was read up to is in its own state file)
    "subagents": (dict,),
    # the registration (agents/<file>) a SessionEnd that found the session busy left to
    # whoever sends its end: removed then, and the recorder stopped if nobody is left
    "leaving": (str,),
    # messages a SessionStart or PreCompact that found the session busy left (each
    # {"type", "text", "checkpoint", "at", "fields", "after_end"}): the next holder of
    # the lock sends them first, each with its checkpoint (`lifecycle.deliver_owed`)
    "announce": (list,),
}
# fields a state saved by an older version lacks, and what they start as
_DEFAULTS: dict[str, Callable[[], Any]] = {
    "ending": str,
    "end_checkpoint": str,  # (an older version took it at SessionEnd, delivered or not)
    "versions": dict,
    "merged": list,
    "subagents": dict,
    "leaving": str,
    "announce": list,
}


class SessionState:
    """One session's memory between hook calls (a plain class: see run.py)."""

    __slots__ = tuple(_FIELDS)

    def __init__(self, agent: str, session: str, publisher: str) -> None:
        self.agent = agent
        self.session = session
        self.publisher = publisher
        self.seq = 0
        self.transcript = ""
        self.offset = 0
        self.anchor = ""
        self.inode = 0
        self.published: list[str] = []
        self.merged: list[str] = []
        self.versions: dict[str, str] = {}
        self.registration = ""
        self.started = 0.0
        self.rewrites = 0
        self.ending = ""
        self.end_checkpoint = ""
        self.subagents: dict[str, str] = {}
        self.leaving = ""
        self.announce: list[dict[str, Any]] = []

    @classmethod
    def new(cls, agent: str, session: str) -> SessionState:
        return cls(agent, session, f"{agent}-{_SAFE.sub('_', session)[:100]}")

    @classmethod
    def from_json(cls, data: Any) -> SessionState | None:
        """The state in `data`, or None if any field is missing or wrongly typed."""
        if not isinstance(data, dict):
            return None
        data = {**{name: new() for name, new in _DEFAULTS.items()}, **data}
        for name, kinds in _FIELDS.items():
            value = data.get(name)
            if type(value) not in kinds or (type(value) is int and value < 0):
                return None
        if not all(isinstance(u, str) for u in (*data["published"], *data["merged"])):
            return None
        if not all(isinstance(v, str) for v in data["versions"].values()):
            return None
        if not all(isinstance(v, str) for v in data["subagents"].values()):
            return None
        if not all(_announcement(a) for a in data["announce"]):
            return None
        state = cls(data["agent"], data["session"], data["publisher"])
        for name in _FIELDS:
            setattr(state, name, data[name])
        return state

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _FIELDS}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict()).encode()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SessionState) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


class StateInTheWay(PersistError):
    """Something that is no regular file (a named pipe, a folder) where a hook keeps a
    session's state or its pending mark: one line naming the path, what is there, and
    the `mv` that moves it out of the way (into the log folder's `recovery/`)."""

    def __init__(self, path: Path, what: str, role: str, aside: Path | None = None) -> None:
        import shlex

        if aside is None:
            aside = path.parent.parent.parent / "recovery"  # <log-dir>/hooks/<folder>/<file>
        with contextlib.suppress(OSError):  # so that the mv it names works as written
            ensure_private_dir(aside)
        self.fix = f"mv {shlex.quote(str(path))} {shlex.quote(str(aside))}/"
        super().__init__(
            f"{path} is {what}, where the hooks keep {_ROLES[role]}: it is not waited on; "
            f"move it out of the way ({self.fix})"
        )


STATE_ROLE, MARK_ROLE, OWED_ROLE = "state", "mark", "owed"
_ROLES = {
    OWED_ROLE: "what a hook call that found this session busy owes it (that is not sent "
    "while it is there)",
    STATE_ROLE: "this session's state (its hooks do nothing while it is there)",
    MARK_ROLE: "the mark of an ended session that still owes the bus something (what its "
    "end does not deliver now cannot wait for a later call while it is there)",
}


def _read(path: Path, role: str) -> bytes:
    """The bytes of the file at `path`, never waiting on a named pipe (StateInTheWay)."""
    try:
        return read_regular(path)[0]
    except NotRegularFile as exc:
        raise StateInTheWay(path, exc.strerror or "not a regular file", role) from None


def state_path(log_dir: Path, agent: str, session: str) -> Path:
    name = f"{_SAFE.sub('_', agent)}-{_SAFE.sub('_', session)[:120]}.json"
    return hooks_dir(log_dir) / "sessions" / name


def owed_dir(state_file: Path) -> Path:
    """The folder of the marks of what calls that found the session busy owe it."""
    return state_file.with_name(state_file.name + ".owed")


def _recovery(state_file: Path) -> Path:
    return state_file.parent.parent.parent / "recovery"  # <log-dir>/hooks/sessions/<file>


_OWED_MARK = re.compile(
    r"\A(?:subagent-[A-Za-z0-9._-]+-[0-9a-f]{8}|end|(?:start|compact)-[0-9]+)\.json\Z"
)


def _owed_folder(state_file: Path) -> Path:
    """`owed_dir`, made (0700) if missing; StateInTheWay if something else stands there."""
    folder = owed_dir(state_file)
    ensure_private_dir(folder.parent)
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, 0o700)
    mode = os.stat(folder).st_mode
    if not stat.S_ISDIR(mode):
        what = "a file" if stat.S_ISREG(mode) else not_regular(mode).split(",")[0]
        raise StateInTheWay(folder, f"{what}, not a folder", OWED_ROLE)
    return ensure_private_dir(folder)


def _owe(state_file: Path, name: str, record: dict[str, Any]) -> Path:
    """A mark `name` in `owed_dir` (0600, written whole then renamed into place); never
    through a named pipe or a folder standing there (StateInTheWay)."""
    path = _owed_folder(state_file) / name
    with contextlib.suppress(FileNotFoundError):
        mode = os.lstat(path).st_mode
        if not stat.S_ISREG(mode):
            raise StateInTheWay(path, not_regular(mode), OWED_ROLE, _recovery(state_file))
    atomic_write(path, json.dumps(record).encode())
    return path


def owe_subagent(state_file: Path, agent_id: str, transcript: str) -> Path:
    """Mark sub-agent `agent_id`'s transcript owed by the session (without its lock)."""
    safe = _SAFE.sub("_", agent_id)[:100]
    name = f"subagent-{safe}-{zlib.crc32(agent_id.encode()):08x}.json"  # (two never collide)
    record = {"kind": "subagent", "agent_id": agent_id, "transcript": transcript}
    return _owe(state_file, name, record)


def owe_end(state_file: Path, agent: str, payload: Any, checkpoint: str, leaving: str = "") -> Path:
    """Mark the session's end owed (without its lock): `SessionState.ending` (the
    SessionEnd `payload`'s reason), `end_checkpoint`, `leaving` (the agent's
    registration, removed once the end is sent) and, if the state has none yet,
    `transcript`; its agent and session start a state when none was saved."""
    record = {
        "leaving": leaving,
        "kind": "end",
        "agent": agent,
        "session": payload.session,
        "reason": payload.text("reason") or "exit",
        "transcript": payload.transcript,
        "checkpoint": checkpoint,
    }
    return _owe(state_file, "end.json", record)


def _announcement(value: Any) -> bool:
    """Whether `value` is an owed message as `SessionState.announce` holds it."""
    return (
        isinstance(value, dict)
        and all(isinstance(value.get(k), str) for k in ("type", "text", "checkpoint"))
        and type(value.get("at")) in (int, float)
        and isinstance(value.get("fields"), dict)
        and isinstance(value.get("after_end", False), bool)
    )


def owe_announcement(
    state_file: Path, kind: str, announcement: dict[str, Any], registration: str = ""
) -> Path:
    """Mark a message a SessionStart (`kind` "start") or a PreCompact ("compact") that
    found the session busy could not send (without its lock): `announcement` as
    `SessionState.announce` holds it, and the start's agent `registration`."""
    record = {"kind": kind, "announce": announcement, "registration": registration}
    return _owe(state_file, f"{kind}-{time.time_ns()}.json", record)


def owed_end_state(state_file: Path) -> SessionState | None:
    """A new state for the session whose end is marked owed (`owe_end`) while no state
    of it was saved; None without such a mark."""
    try:
        record = json.loads(read_regular(owed_dir(state_file) / "end.json")[0])
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    agent, session = record.get("agent"), record.get("session")
    if not isinstance(agent, str) or not isinstance(session, str) or not agent or not session:
        return None
    if state_path(state_file.parent.parent.parent, agent, session) != state_file:
        return None
    return SessionState.new(agent, session)


def owed_marks(state_file: Path) -> bool:
    """Whether marks wait in `owed_dir` (one `scandir`; False when it cannot be read)."""
    try:
        with os.scandir(owed_dir(state_file)) as found:
            return any(_OWED_MARK.match(e.name) and e.is_file() for e in found)
    except OSError:
        return False


def _merge(state: SessionState, record: Any) -> bool:
    """`record` (a mark's JSON) merged into `state`; False if it is no mark of ours."""
    if isinstance(record, dict) and record.get("kind") in ("start", "compact"):
        announcement, registration = record.get("announce"), record.get("registration")
        if not isinstance(announcement, dict) or not _announcement(announcement):
            return False
        if not isinstance(registration, str):
            return False
        # a start after an end not delivered yet: that end goes first
        ended = bool(state.ending or state.end_checkpoint)
        state.announce.append({**announcement, "after_end": ended})
        if registration:
            state.registration = registration
        return True
    if not isinstance(record, dict) or not all(isinstance(v, str) for v in record.values()):
        return False
    kind = record.get("kind")
    if kind == "subagent" and record.get("agent_id") and record.get("transcript"):
        state.subagents[record["agent_id"]] = record["transcript"]
        return True
    if kind == "end" and isinstance(record.get("checkpoint"), str):
        state.ending = record.get("reason") or "exit"
        state.end_checkpoint = record["checkpoint"]
        state.leaving = record.get("leaving") or state.leaving
        if record.get("transcript") and not state.transcript:
            state.transcript = record["transcript"]
        return True
    return False


def take_owed(state_file: Path, state: SessionState, note: Callable[[str], None]) -> bool:
    """Merge the marks in `owed_dir` into `state` (the caller holds the session's lock),
    oldest first: a sub-agent into `subagents`, an end into `ending`, `end_checkpoint`
    and `transcript`; save the state, then remove them. True if any was merged. Never
    raises and never waits: a mark that is no regular file (or a folder there that is
    not one) is one `note` naming the `mv` and left where it is; one that is not a mark
    the hooks wrote is noted and moved to the log folder's `recovery/`."""
    folder = owed_dir(state_file)
    aside = _recovery(state_file)
    try:
        with os.scandir(folder) as found:
            entries = [(e.stat(follow_symlinks=False).st_mtime_ns, e.name) for e in found]
    except FileNotFoundError:
        return False
    except OSError as exc:
        try:
            mode = os.stat(folder).st_mode
        except OSError:
            mode = stat.S_IFDIR
        if stat.S_ISDIR(mode):
            note(f"{folder} cannot be read ({exc.strerror or exc}): what it owes is not sent")
        else:
            what = "a file" if stat.S_ISREG(mode) else not_regular(mode).split(",")[0]
            note(str(StateInTheWay(folder, f"{what}, not a folder", OWED_ROLE)))
        return False
    taken: list[Path] = []
    for _, name in sorted(entries):
        if not _OWED_MARK.match(name):
            continue  # (a temp file being renamed into place)
        path = folder / name
        try:
            data = read_regular(path)[0]
        except FileNotFoundError:
            continue
        except NotRegularFile as exc:
            note(str(StateInTheWay(path, exc.strerror or "not a regular file", OWED_ROLE, aside)))
            continue
        except OSError as exc:
            note(f"{path} cannot be read ({exc.strerror or exc}): what it owes is not sent yet")
            continue
        try:
            record = json.loads(data)
        except ValueError:
            record = None
        if _merge(state, record):
            taken.append(path)
            continue
        try:
            ensure_private_dir(aside)
            moved = aside / f"{folder.name}-{name}.{time.time_ns()}"
            os.replace(path, moved)
            where = f"moved to {moved}"
        except OSError as exc:
            where = f"left there ({exc.strerror or exc})"
        note(
            f"{path} is not a mark the hooks wrote ({len(data)} bytes, not a sub-agent's or "
            f"an end's record): {where}; whatever it stood for is not sent"
        )
    if taken:
        save_state(state_file, state)
        for path in taken:
            path.unlink(missing_ok=True)
    return bool(taken)


def pending_dir(log_dir: Path) -> Path:
    return hooks_dir(log_dir) / "pending"


def pending_path(state_file: Path) -> Path:
    """The mark of an ended session that still owes the bus something."""
    return state_file.parent.parent / "pending" / state_file.name


def pending_states(log_dir: Path) -> list[Path]:
    """The state files of the sessions marked pending, the oldest mark first."""
    try:
        with os.scandir(pending_dir(log_dir)) as found:
            marks = sorted((e.stat().st_mtime, e.name) for e in found if e.is_file())
    except OSError:
        return []
    return [hooks_dir(log_dir) / "sessions" / name for _, name in marks]


def read_state(path: Path) -> SessionState | None:
    """The state saved in `path`, whatever its session; None if unreadable. Raises
    StateInTheWay when no regular file stands there (nothing is lost by waiting)."""
    try:
        return SessionState.from_json(json.loads(_read(path, STATE_ROLE)))
    except (OSError, ValueError):  # (StateInTheWay is neither)
        return None


def set_pending(state_file: Path, waiting: bool) -> None:
    mark = pending_path(state_file)
    if waiting:
        ensure_private_dir(mark.parent)
        try:  # (never waiting on a named pipe there)
            fd, _ = open_private_regular(mark, os.O_WRONLY | os.O_CREAT)
        except NotRegularFile as exc:
            raise StateInTheWay(mark, exc.strerror or "not a regular file", MARK_ROLE) from None
        os.close(fd)
    else:
        mark.unlink(missing_ok=True)


def load_state(path: Path, agent: str, session: str) -> SessionState:
    """The saved state, or a new one (a missing or unreadable file starts afresh).
    Raises StateInTheWay when a named pipe or a folder stands there: starting afresh
    would send the whole transcript again under sequence numbers already used."""
    try:
        data = json.loads(_read(path, STATE_ROLE))
    except (OSError, ValueError):  # (StateInTheWay is neither)
        return SessionState.new(agent, session)
    state = SessionState.from_json(data)
    if state is None or state.agent != agent or state.session != session:
        return SessionState.new(agent, session)
    return state


def save_state(path: Path, state: SessionState) -> None:
    # not fsynced: a hook runs on every turn; after a power cut the worst is one
    # turn published again (same message ids, sequence numbers seen as duplicates)
    atomic_write(path, state.to_json(), durable=False)


@contextlib.contextmanager
def session_lock(path: Path, timeout: float = 5.0) -> Iterator[None]:
    """Serialize the hooks of one session (Stop and SubagentStop may overlap). Raises
    TimeoutError when another hook still holds it after `timeout` (0: at once)."""

    ensure_private_dir(path.parent)
    aside = path.parent.parent.parent / "recovery"
    try:
        fd = open_lock(path.with_name(path.name + ".lock"), aside)
    except LockInTheWay:  # a named pipe or a folder there: one line naming the mv
        with contextlib.suppress(OSError):  # so that the mv works as written
            ensure_private_dir(aside)
        raise
    try:
        if not flock_within(fd, timeout, poll=0.01):
            raise TimeoutError(f"another hook holds {path.name}.lock (waited {timeout:g} s)")
        yield
    finally:
        os.close(fd)


OWED_WARN_AGE = 3600.0  # seconds: a mark left longer is a warning in `persist doctor`


class Waiting:
    """A session that owes the bus something: the marks its busy calls left beside its
    state (`owed`: kind -> count), its `hooks/pending/` mark (`pending`), and since when
    (the oldest of them, seconds since the epoch; a pending mark's time is when it was
    last marked or tried, see `finish_ended`)."""

    __slots__ = ("name", "owed", "pending", "since")

    def __init__(self, name: str, owed: dict[str, int], pending: bool, since: float) -> None:
        self.name = name  # the state file's name without .json: `<agent>-<session>`
        self.owed = owed
        self.pending = pending
        self.since = since

    def what(self) -> str:
        """In words: "2 sub-agents' transcripts, its end; ended, waits in hooks/pending/"."""
        words = {"subagent": "sub-agent transcript", "end": "end"}
        words |= {"start": "session start message", "compact": "compaction message"}
        parts = [
            f"{n} {words.get(kind, kind)}{'s' if n > 1 else ''}" for kind, n in self.owed.items()
        ]
        if parts:
            parts = [f"owes {', '.join(parts)} (marked in {self.name}.json.owed/)"]
        if self.pending:
            parts.append("ended, waits in hooks/pending/")
        return "; ".join(parts)


def waiting_sessions(log_dir: Path) -> list[Waiting]:
    """Every session with `.owed/` marks or a `hooks/pending/` mark, the oldest first
    (read only; a folder that cannot be read counts as holding none)."""
    sessions = hooks_dir(log_dir) / "sessions"
    found: dict[str, Waiting] = {}
    try:
        with os.scandir(sessions) as entries:
            folders = [e.name for e in entries if e.name.endswith(".json.owed") and e.is_dir()]
    except OSError:
        folders = []
    for folder in folders:
        name = folder[: -len(".json.owed")]
        owed: dict[str, int] = {}
        times = []
        with contextlib.suppress(OSError), os.scandir(sessions / folder) as marks:
            for e in marks:
                if _OWED_MARK.match(e.name) and e.is_file(follow_symlinks=False):
                    kind = e.name.split("-", 1)[0].removesuffix(".json")
                    owed[kind] = owed.get(kind, 0) + 1
                    times.append(e.stat(follow_symlinks=False).st_mtime)
        if owed:
            found[name] = Waiting(name, owed, False, min(times))
    for spath in pending_states(log_dir):
        name = spath.name.removesuffix(".json")
        try:
            when = pending_path(spath).stat().st_mtime
        except OSError:
            continue
        if name in found:
            found[name].pending = True
            found[name].since = min(found[name].since, when)
        else:
            found[name] = Waiting(name, {}, True, when)
    return sorted(found.values(), key=lambda w: w.since)
