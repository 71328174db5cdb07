"""The checkpoint monitor: when to take a checkpoint of an agent session, and taking it.

`decide` is pure (the clock is a parameter): four factors, each 1.0 at its threshold:
time since the last checkpoint (2 h), files changed since then (15), context fullness
(75 % of the model's window) and idle time (30 min). A session is checkpointed when any
factor reaches 1.0 or the weighted sum (0.3, 0.4, 0.5, 0.2) does, unless its last
checkpoint is younger than the cooldown (30 min) or nothing changed since. Sessions
with the oldest checkpoint go first. A checkpoint is a protected copy up to that point
plus a checkpoint record naming it (`SessionRef`); the monitor's memory is those
records, so it needs no state file. Monitors of one log folder take one lock
(`sessions/monitor.lock`, an OS lock the kernel releases when its holder dies) and
decide again under it, so two monitors never checkpoint a session twice.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from recorder.errors import BadOption
from recorder.sources.copies import protect
from recorder.sources.discover import Roots, scan
from recorder.sources.model import Session, Source
from recorder.store.checkpoints import Checkpoint, SessionRef, load_checkpoint, write_checkpoint
from recorder.store.fsutil import (
    ensure_private_dir,
    flock_within,
    open_lock,
    open_private_regular,
    open_regular,
    write_all,
)
from recorder.store.layout import Layout
from recorder.store.status import format_age

CONTEXT_WINDOWS = {Source.CLAUDE: 200_000, Source.GEMINI: 1_000_000, Source.CODEX: 272_000}
# Seconds a last checkpoint may be stamped ahead of now (another monitor's clock read a
# moment later) and still be taken as just taken; beyond, the clock was set back since.
AHEAD_SLACK = 60.0


# The settings that must be above 0, and why (the flags' `positive`); weights and the
# cooldown may be 0.
_ABOVE_0 = {
    "time_hours": "a threshold of 0 never fires",
    "files_changed": "a threshold of 0 never fires",
    "context_fraction": "a threshold of 0 never fires",
    "idle_minutes": "a threshold of 0 never fires",
    "interval_minutes": "rounds back to back",
}


@dataclass(frozen=True)
class MonitorSettings:
    time_hours: float = 2.0  # since the last checkpoint (or the session's start)
    files_changed: int = 15  # distinct files modified since the last checkpoint
    context_fraction: float = 0.75  # of the model's context window
    idle_minutes: float = 30.0
    weight_time: float = 0.3
    weight_activity: float = 0.4
    weight_context: float = 0.5
    weight_idle: float = 0.2
    cooldown_minutes: float = 30.0
    interval_minutes: float = 5.0  # between rounds of `persist monitor`

    @classmethod
    def load(cls, path: Path | None, **overrides: Any) -> MonitorSettings:
        """Defaults, then the `[monitor]` table of a TOML file, then flags (not None)."""
        values: dict[str, Any] = {}
        if path is not None:
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                data = {}
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise BadOption(f"monitor settings {path} cannot be read: {exc}") from None
            table = data.get("monitor", data)
            known = {f.name: f.type for f in fields(cls)}
            for key, value in table.items():
                if key not in known:
                    raise BadOption(f"{path}: unknown monitor setting {key!r}")
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise BadOption(f"{path}: {key} must be a number of 0 or more")
                if not math.isfinite(value):  # TOML's nan and inf, refused as the flags are
                    raise BadOption(f"{path}: {key} is {value}, not a finite number")
                if value < 0:
                    raise BadOption(f"{path}: {key} must be a number of 0 or more")
                values[key] = value
        from_file = set(values)
        given = {k: v for k, v in overrides.items() if v is not None}
        values.update(given)
        from_file -= set(given)
        settings = cls(**values)

        def where(name: str) -> str:  # the file only for what was read from it
            return f"{path}: " if name in from_file else ""

        for name, why in _ABOVE_0.items():
            if getattr(settings, name) <= 0:
                raise BadOption(f"{where(name)}{name} must be above 0 ({why})")
        if settings.context_fraction > 1:
            raise BadOption(
                f"{where('context_fraction')}context_fraction {settings.context_fraction:g} "
                "is a fraction of the context window, at most 1 (0.75 for 75 %; --context "
                "takes percent)"
            )
        return settings


@dataclass(frozen=True)
class Decision:
    key: str
    checkpoint: bool
    reason: str
    scores: dict[str, float] = field(default_factory=dict)  # factor -> fraction of threshold
    total: float = 0.0  # the weighted sum

    def explain(self) -> str:
        parts = " ".join(f"{k}={v:.2f}" for k, v in self.scores.items())
        verdict = "CHECKPOINT" if self.checkpoint else "wait"
        return f"{self.key}: {verdict} ({self.reason}) {parts} weighted={self.total:.2f}"


def decide(
    session: Session, last: SessionRef | None, last_at: float | None, s: MonitorSettings, now: float
) -> Decision:
    """Whether to checkpoint `session` now, given its last checkpoint (`last`, taken at
    `last_at`). A last checkpoint stamped in the future (taken while the clock ran
    ahead, or the clock set back since) says nothing of how long ago it was taken: it
    holds no cooldown, and the time factor counts from the session's start."""
    key = session.key
    if last is not None and last.size == session.size and last.path == str(session.path):
        return Decision(key, False, "nothing changed since the last checkpoint")
    note = ""
    if last_at is not None and last_at - now > AHEAD_SLACK:
        note = (
            f"; the last checkpoint is stamped {format_age(last_at - now)} in the future "
            "(the clock was set back since): no cooldown"
        )
        last_at = None
    elif last_at is not None:
        last_at = min(last_at, now)
    since = last_at if last_at is not None else (session.first_ts or session.mtime)
    before = set(last.files_modified) if last else set()
    changed = len(set(session.files_modified) - before)
    window = CONTEXT_WINDOWS[session.source] * s.context_fraction
    idle = max(0.0, now - (session.last_ts or session.mtime)) / 60
    scores = {
        "time": max(0.0, now - since) / 3600 / s.time_hours,
        "activity": changed / s.files_changed,
        "context": session.context_tokens / window,
        "idle": idle / s.idle_minutes if s.idle_minutes else 0.0,
    }
    weights = {
        "time": s.weight_time,
        "activity": s.weight_activity,
        "context": s.weight_context,
        "idle": s.weight_idle,
    }
    total = sum(min(scores[k], 1.0) * weights[k] for k in scores)
    if last_at is not None and now - last_at < s.cooldown_minutes * 60:
        left = s.cooldown_minutes - (now - last_at) / 60
        return Decision(key, False, f"cooldown, {left:.0f} min left", scores, total)
    top = max(scores, key=lambda k: scores[k])
    if scores[top] >= 1.0:
        return Decision(key, True, f"{top} reached its threshold{note}", scores, total)
    if total >= 1.0:
        return Decision(key, True, f"weighted sum reached 1.0{note}", scores, total)
    return Decision(key, False, f"below every threshold{note}", scores, total)


def latest_session_checkpoints(layout: Layout) -> dict[str, Checkpoint]:
    """Each session's latest checkpoint: of its newest copy version, the one that
    covers the most of it (a copy only grows, and a rewritten file is a new version),
    not the one stamped latest, which a clock set back would keep for as long."""
    return SessionCheckpoints(layout).latest


class SessionCheckpoints:
    """`latest_session_checkpoints`, kept up to date for as long as it lives: it
    remembers each file of checkpoints/ it read (inode, size, mtime), so `refresh` reads
    only those that appeared or changed since (another monitor's, one a restore wrote
    again) and forgets those gone, and `add` takes in one this monitor wrote. A monitor
    keeps one for all its rounds: a round reads the checkpoints taken since the last,
    not the whole history (at 1 ms a file, 5,000 checkpoints were 5 s of every round;
    before that, 300 sessions by 1,650 checkpoints took 86 s, each file read again for
    every session checkpointed)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.latest: dict[str, Checkpoint] = {}
        self._seen: dict[str, tuple[int, int, int]] = {}  # name -> (inode, size, mtime_ns)
        self._sessions: dict[str, Checkpoint] = {}  # name -> a session's checkpoint
        self.refresh()

    def refresh(self) -> None:
        """Read the checkpoint files new or changed since the last look; forget those
        gone (the latest of a session may have been one of them)."""
        folder = self.layout.checkpoints
        try:
            # (names as `list_checkpoints` takes them; no Path per name: this runs
            # once for each checkpoint taken)
            names = [n for n in os.listdir(folder) if n.endswith(".json") and len(n) > 5]
        except FileNotFoundError:
            names = []
        changed = False
        here: dict[str, tuple[int, int, int]] = {}
        for name in sorted(names):
            try:
                st = os.stat(os.path.join(folder, name))
            except OSError:  # gone meanwhile (a prune), or unreadable: as `load_checkpoint`
                continue
            here[name] = (st.st_ino, st.st_size, st.st_mtime_ns)
            if self._seen.get(name) != here[name]:
                changed = True
                self._sessions.pop(name, None)
                self._take(load_checkpoint(folder / name), name)
        gone = self._seen.keys() - here.keys()
        for name in gone:
            self._sessions.pop(name, None)
        if gone or changed:
            self._seen = here
            self.latest = {}
            for cp in self._sessions.values():
                self._keep(cp)

    def add(self, cp: Checkpoint | None) -> None:
        """A checkpoint this monitor wrote (its file is not read again)."""
        if cp is None or cp.path is None:
            return
        try:
            st = os.stat(cp.path)
        except OSError:
            return  # read at the next refresh, if it is there then
        self._seen[cp.path.name] = (st.st_ino, st.st_size, st.st_mtime_ns)
        self._take(cp, cp.path.name)
        if cp.session is not None:
            self._keep(cp)

    def _take(self, cp: Checkpoint | None, name: str) -> None:
        if cp is not None and cp.session is not None:
            self._sessions[name] = cp

    def _keep(self, cp: Checkpoint) -> None:
        assert cp.session is not None
        other = self.latest.get(cp.session.key)
        if other is None or _coverage(cp) > _coverage(other):
            self.latest[cp.session.key] = cp


def _coverage(cp: Checkpoint) -> tuple[int, int, float]:
    ref = cp.session
    return (ref.copy_version, ref.size, cp.created) if ref is not None else (0, 0, cp.created)


@contextmanager
def monitor_lock(layout: Layout, timeout: float = 30.0) -> Iterator[None]:
    """The monitors' lock of a log folder. The OS drops it when its holder dies, so a
    crashed monitor never blocks the next one; the file (pid, time) only names the
    holder."""
    ensure_private_dir(layout.sessions)
    fd = open_lock(layout.sessions / "monitor.lock", layout.recovery)  # LockInTheWay
    try:
        if not flock_within(fd, timeout):
            raise TimeoutError("another monitor holds the lock")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {time.time():.3f}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


MONITOR_LOG = "monitor.log"
LOG_MAX_BYTES = 5 * 1024 * 1024  # as recorder.log: then renamed monitor.log.1
LOG_BACKUPS = 3  # monitor.log.1 to .3 kept
_LOG_TAIL = 1 << 20  # bytes of monitor.log a monitor reads at its first round
# "<stamp> <key>: <CHECKPOINT|wait> (<reason>) <scores> weighted=<sum>" (`explain`)
_LOG_LINE = re.compile(rb"^\S+ (.+): (CHECKPOINT|wait) \((.*)\) [^()]*weighted=\S+$")
_NUMBER = re.compile(rb"[0-9]+(?:\.[0-9]+)?")


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# what must not reach monitor.log raw: line ends (one decision, one line) and controls
# (`tail` on a terminal would run an escape sequence in a session's file name); and the
# backslash, doubled, so that a name holding the text `\n` is not logged as one holding
# a newline (the escaping is one to one)
_CONTROLS = re.compile("[\\\\\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _text(text: str) -> bytes:
    """`text` for monitor.log: controls as escapes (a session's id is its file's name,
    which may hold any of them), a backslash doubled; a byte of a name that is not UTF-8
    (a lone surrogate) as `\\udcNN`, as before."""
    text = _CONTROLS.sub(lambda m: _ESCAPES.get(m[0]) or _escape(ord(m[0])), text)
    return text.encode("utf-8", "backslashreplace")


def _kind(checkpoint: bool, reason: bytes) -> bytes:
    """A decision as the log compares them: verdict and reason, numbers left out (the
    minutes a cooldown has left, how far ahead a clock was)."""
    return (b"CHECKPOINT " if checkpoint else b"wait ") + _NUMBER.sub(b"#", reason)


def _logged_kinds(path: Path) -> dict[bytes, bytes]:
    """Session key -> kind of the last decision logged for it in the last `_LOG_TAIL`
    bytes of monitor.log (a session logged only before is logged again once)."""
    try:
        fd, st = open_regular(path)
    except OSError:  # none yet, or unreadable: each decision is logged once again
        return {}
    try:
        start = max(0, st.st_size - _LOG_TAIL)
        data = os.pread(fd, st.st_size - start, start)
    except OSError:
        return {}
    finally:
        os.close(fd)
    lines = data.split(b"\n")
    found: dict[bytes, bytes] = {}
    for line in lines[1:] if start else lines:  # the first may be cut
        m = _LOG_LINE.match(line)
        if m is not None:
            found[m.group(1)] = _kind(m.group(2) == b"CHECKPOINT", m.group(3))
    return found


def _append_rotated(layout: Layout, data: bytes) -> None:
    """Append to monitor.log; one that would grow past `LOG_MAX_BYTES` is renamed
    monitor.log.1 first (.1 to .2, .2 to .3, the oldest dropped), under the monitors'
    lock so that two monitors do not both rotate it."""
    ensure_private_dir(layout.sessions)
    path = layout.sessions / MONITOR_LOG
    for attempt in (1, 2):
        # a named pipe there (no reader) would hold the round for ever: NotRegularFile
        fd, st = open_private_regular(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            if attempt == 2 or not _too_big(st.st_size, len(data)):
                write_all(fd, data)
                return
        finally:
            os.close(fd)
        _rotate(layout, path, len(data))


def _too_big(size: int, adding: int) -> bool:
    return size > 0 and size + adding > LOG_MAX_BYTES


def _rotate(layout: Layout, path: Path, adding: int) -> None:
    try:
        with monitor_lock(layout, timeout=5.0):
            if not _too_big(path.stat().st_size, adding):
                return  # another monitor rotated it meanwhile
            for n in range(LOG_BACKUPS, 0, -1):
                older = path.with_name(f"{path.name}.{n - 1}") if n > 1 else path
                with contextlib.suppress(FileNotFoundError):
                    os.replace(older, path.with_name(f"{path.name}.{n}"))
    except (TimeoutError, FileNotFoundError):
        pass  # appended to as it is (the next round rotates it), or made anew


@dataclass
class RoundResult:
    decisions: list[Decision]
    taken: list[Checkpoint]
    problems: list[str]


class Monitor:
    """One round per `tick(now)`: scan, decide, checkpoint (the loop lives in the CLI)."""

    def __init__(self, roots: Roots, layout: Layout, settings: MonitorSettings) -> None:
        self.roots = roots
        self.layout = layout
        self.settings = settings
        # session key -> kind (`_kind`) of the decision last logged for it
        self._logged: dict[bytes, bytes] | None = None
        self.known: SessionCheckpoints | None = None  # kept from round to round

    def tick(self, now: float) -> RoundResult:
        result = scan(self.roots, self.layout.sessions / "scan-cache.json")
        if self.known is None:
            self.known = SessionCheckpoints(self.layout)
        else:
            self.known.refresh()  # what was taken or changed since the last round
        known = self.known
        latest = known.latest
        # sessions with the oldest (or no) checkpoint first
        order = sorted(
            result.sessions,
            key=lambda s: latest[s.key].created if s.key in latest else float("-inf"),
        )
        out = RoundResult([], [], list(result.problems))
        for session in order:
            cp = known.latest.get(session.key)
            d = decide(
                session, cp.session if cp else None, cp.created if cp else None, self.settings, now
            )
            if d.checkpoint:
                with monitor_lock(self.layout):
                    # decided again under the lock on what another monitor may have
                    # written since this round read checkpoints/ (it writes under the
                    # lock, so its files are all there): two never take one change
                    known.refresh()
                    cp = known.latest.get(session.key)
                    d = decide(
                        session,
                        cp.session if cp else None,
                        cp.created if cp else None,
                        self.settings,
                        now,
                    )
                    if d.checkpoint:
                        taken = self.checkpoint(session, d, now)
                        known.add(taken)
                        out.taken.append(taken)
            out.decisions.append(d)
        unlogged = self.log(now, out.decisions)
        if unlogged is not None:
            out.problems.append(unlogged)
        return out

    def log(self, now: float, decisions: list[Decision]) -> str | None:
        """Each decision that differs from the one last logged for its session (a
        checkpoint always; a wait when its reason does, its numbers aside), with its
        scores, appended to `sessions/monitor.log` (0600, rotated as recorder.log is).
        Unchanged waits are not: 300 idle sessions wrote ~12 MiB a day of "nothing
        changed". What was logged before is read from the log's end at the first round,
        so a monitor run anew each round (`--once`) does not say it all again. Returns
        why the log could not be written (a full disk, a named pipe in its place)."""
        if self._logged is None:
            self._logged = _logged_kinds(self.layout.sessions / MONITOR_LOG)
        kinds: dict[bytes, bytes] = {}
        lines = []
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)).encode()
        for d in decisions:
            key, kind = _text(d.key), _kind(d.checkpoint, _text(d.reason))
            kinds[key] = kind
            if d.checkpoint or self._logged.get(key) != kind:
                lines.append(stamp + b" " + _text(d.explain()) + b"\n")
        try:
            if lines:
                _append_rotated(self.layout, b"".join(lines))
        except OSError as exc:  # the decisions were still taken; `--explain` prints them
            why = exc.strerror or str(exc)
            return f"cannot write {self.layout.sessions / MONITOR_LOG}: {why}"
        self._logged = kinds  # sessions no longer found are forgotten
        return None

    def checkpoint(self, session: Session, d: Decision, now: float) -> Checkpoint:
        copy = protect(self.layout, session)
        ref = SessionRef(
            key=session.key,
            path=str(session.path),
            copy_version=copy.version,
            size=copy.size,
            lines=copy.lines,
            digest=copy.digest,
            messages=session.message_count,
            files_modified=list(session.files_modified),
            context_tokens=session.context_tokens,
        )
        return write_checkpoint(
            self.layout,
            segment=0,
            offset=0,
            seq=0,
            messages=session.message_count,
            label=f"{session.source.value} {session.id[:8]} {session.shown_title}"[:80],
            reason=f"session monitor: {d.reason}",
            first_ts=session.first_ts,
            last_ts=session.last_ts,
            created=now,
            session=ref,
        )
