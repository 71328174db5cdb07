"""The recorder's heartbeat file and what a reader concludes from it.

The recorder rewrites `status.json` about once a second from a `StatusSnapshot`;
every reader gets the same class back (`StatusSnapshot.read`). A reader decides:
- healthy: the process is alive (same PID *and* same start time) and the file is fresh;
- stale: the process exists but has not written its heartbeat for `STALE_AFTER` seconds
  (told by the monotonic clock, which setting the clock does not step, when the status
  has its stamp: `updated_monotonic`), or its heartbeat is stamped in the future without
  that stamp (the clock was set back, and it has not written one since);
- stopped: no status, an unreadable one, a clean stop, or the process is gone (or its
  PID was reused);
- degraded: the process is alive and writes its heartbeat but records nothing: its
  receiving thread died (`receiver_error`), a broker it follows was lost more than
  `LOST_AFTER` seconds ago (killed, or frozen) or never reached in `UNREACHABLE_AFTER`
  seconds, or it cannot write its journal (`disk_error`); or it records but cannot
  write its recovery state (`recovery_error`).

Over 400 lines because each field of the file is spelled out twice, once to write it
and once to read it strictly (a wrongly typed field names itself), and `assess`
decides four states, each with its reason.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import orjson

from recorder.errors import PersistError, refused_by
from recorder.store.fsutil import atomic_write, open_private, read_regular
from recorder.store.indexer_status import INDEXER, MONITOR, read_child_status
from recorder.store.jsontext import dumps as json_dumps
from recorder.store.layout import Layout
from recorder.store.records import SCHEMA_VERSION
from recorder.store.shell import shell_path, shell_quote

STALE_AFTER = 5.0
# What a running recorder does that other `persist` commands count on, as one number
# raised with each change of it (not the package's version: FORMAT.md, "status.json",
# `program`). Level 1 (2026-12-07): it reads compressed segments and names them in its
# checkpoints, and it takes `persist prune` and `persist trash` requests
# (`control/*.maint`). A status without `program` is from a recorder started before
# 2026-12-07: level 0, which `persist compact`, `prune` and `trash` do not work under.
RECORDER_LEVEL = 1
LEVEL_SINCE = "2026-12-07"  # when RECORDER_LEVEL was last raised (what older means)
UNREACHABLE_AFTER = 5.0  # seconds a broker is never reached (starting up) before "degraded"
# Seconds since a broker connection was lost (its outage began: the last message, or
# the heartbeat timeout before it was noticed) before "degraded": a frozen broker is
# noticed 3 s after it froze, and is then reported at once.
LOST_AFTER = 1.0
# Seconds a stamp may be ahead of the reader's clock (a second's rounding, another
# process's clock read a moment later) before it is taken for a clock set back since.
CLOCK_SLACK = 1.0
HEALTHY, STALE, STOPPED, DEGRADED = "healthy", "stale", "stopped", "degraded"
STATE_FAILED = "cannot write recovery state"  # the recorder's error, `recovery_error`'s
DEFAULT_BROKER = "tcp://127.0.0.1:5555"  # what `start_command` suggests when none is known
DEFAULT_BROKER_FRONTEND = "tcp://127.0.0.1:5559"  # where publishers reach that default broker


class RecorderState(StrEnum):
    """The recorder's lifecycle, as `status.json` reports it."""

    STARTING = "starting"
    RECORDING = "recording"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Connection(StrEnum):
    """The recorder's link to the broker."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    LISTENING = "listening"  # a bound endpoint, ready for publishers to connect


class LinkMode(StrEnum):
    """How the recorder's socket reaches an endpoint."""

    CONNECT = "connect"  # a broker's XPUB (`--broker`)
    BIND = "bind"  # we listen; publishers connect to us (`--bind`)


class UnreadableStatus(PersistError):
    """`status.json` exists but is not a status snapshot; the message names the problem."""


class HolderUnknown(PersistError):
    """Whether a recorder holds the log folder cannot be told: neither its status nor its
    lock file may be read (the folder, or they, are another user's)."""


# -- strict field readers ---------------------------------------------------------------
# A derived file can hold anything (a crash, a hand edit, another version): each reader
# checks one field's type and names it when it is wrong. A missing optional field gets
# its default, so a file from a recorder that predates a field still reads.

_MISSING: Any = object()  # "no default": the field is required
T = TypeVar("T")


def _get(data: Mapping[str, Any], name: str, prefix: str, default: Any) -> tuple[Any, bool]:
    """(value, True) if the field is there, else (default, False); raises if required."""
    if name in data:
        return data[name], True
    if default is _MISSING:
        raise UnreadableStatus(f"{prefix}{name} is missing")
    return default, False


def _int(data: Mapping[str, Any], name: str, prefix: str = "", default: Any = _MISSING) -> Any:
    value, present = _get(data, name, prefix, default)
    if present and type(value) is not int:  # bool is not an integer here
        raise UnreadableStatus(f"{prefix}{name} is not an integer")
    return value


def _number(data: Mapping[str, Any], name: str, prefix: str = "", default: Any = _MISSING) -> Any:
    """An int or a float, kept as it is so that writing it back gives the same JSON."""
    value, present = _get(data, name, prefix, default)
    if present and type(value) not in (int, float):
        raise UnreadableStatus(f"{prefix}{name} is not a number")
    return value


def _str(data: Mapping[str, Any], name: str, prefix: str = "", default: Any = _MISSING) -> Any:
    value, present = _get(data, name, prefix, default)
    if present and not isinstance(value, str):
        raise UnreadableStatus(f"{prefix}{name} is not a string")
    return value


def _bool(data: Mapping[str, Any], name: str, prefix: str = "", default: Any = _MISSING) -> Any:
    value, present = _get(data, name, prefix, default)
    if present and not isinstance(value, bool):
        raise UnreadableStatus(f"{prefix}{name} is not true or false")
    return value


def _optional(
    read: Callable[..., T], data: Mapping[str, Any], name: str, prefix: str = ""
) -> T | None:
    """A field that may be null (or missing): None, else what `read` makes of it."""
    if data.get(name) is None:
        return None
    return read(data, name, prefix)


def _object(data: Mapping[str, Any], name: str, prefix: str = "") -> Mapping[str, Any] | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise UnreadableStatus(f"{prefix}{name} is not an object")
    return value


def _choice(data: Mapping[str, Any], name: str, kind: type[StrEnum], default: Any) -> Any:
    value = _str(data, name, default=default)
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise UnreadableStatus(f"{name} is not one of {allowed}") from None


# -- the snapshot -----------------------------------------------------------------------
@dataclass(frozen=True)
class Counts:
    received: int = 0  # messages received this run
    written: int = 0  # messages written this run
    durable: int = 0  # messages in the journal known to be on disk
    messages_total: int = 0  # messages in the journal, all runs
    gaps: int = 0
    missed: int = 0  # messages known lost (publisher sequence holes)
    refused: int = 0
    backlog_pauses: int = 0
    partial_enrichment: int = 0  # messages enriched without keyword rules (behind)
    heartbeats: int = 0
    implausible: int = 0  # `_persist` envelopes not believed (foreign, malformed, forged)
    unsequenced: int = 0  # messages this run without a believed envelope (loss undetectable)
    # A publisher first seen at seq N > 1 sent N - 1 messages before we subscribed:
    # not in the journal, but not a loss of ours either (a "before-first-seen" record).
    not_subscribed: int = 0
    not_subscribed_publishers: int = 0
    # publishers that fell silent with messages no heartbeat of theirs confirmed: what
    # they sent after those is unknown (a `publisher-silent` gap record each)
    unconfirmed: int = 0
    secrets: int = 0  # messages this run with a secret detected (meta.secrets)
    secrets_capped: int = 0  # messages this run scanned for secrets only in part (too large)
    secrets_unscanned: int = 0  # messages this run left unscanned (behind a flood): readers scan

    def to_json(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "written": self.written,
            "durable": self.durable,
            "messages_total": self.messages_total,
            "gaps": self.gaps,
            "missed": self.missed,
            "refused": self.refused,
            "backlog_pauses": self.backlog_pauses,
            "partial_enrichment": self.partial_enrichment,
            "heartbeats": self.heartbeats,
            "implausible": self.implausible,
            "unsequenced": self.unsequenced,
            "not_subscribed": self.not_subscribed,
            "not_subscribed_publishers": self.not_subscribed_publishers,
            "unconfirmed": self.unconfirmed,
            "secrets": self.secrets,
            "secrets_capped": self.secrets_capped,
            "secrets_unscanned": self.secrets_unscanned,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Counts:
        return cls(**{name: _int(data, name, "counts.", 0) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Rates:
    received_per_s: float = 0.0
    written_per_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"received_per_s": self.received_per_s, "written_per_s": self.written_per_s}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Rates:
        return cls(
            received_per_s=_number(data, "received_per_s", "rates.", 0.0),
            written_per_s=_number(data, "written_per_s", "rates.", 0.0),
        )


@dataclass(frozen=True)
class CheckpointRef:
    """The last checkpoint, as much of it as the status names."""

    id: str
    created: float
    label: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "created": self.created, "label": self.label}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckpointRef:
        prefix = "last_checkpoint."
        return cls(
            id=_str(data, "id", prefix),
            created=_number(data, "created", prefix),
            label=_str(data, "label", prefix, ""),
        )


@dataclass(frozen=True)
class Program:
    """The program that writes the status: its `level` (`RECORDER_LEVEL` when it was
    built) and the package's version, for people."""

    level: int
    version: str

    @classmethod
    def this(cls) -> Program:
        return cls(RECORDER_LEVEL, package_version())

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "version": self.version}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Program:
        return cls(
            level=_int(data, "level", "program."),
            version=_str(data, "version", "program.", ""),
        )


_VERSION: list[str] = []


def package_version() -> str:
    """agent-persist's version as installed ("unknown" when it is not installed)."""
    if not _VERSION:
        from importlib.metadata import PackageNotFoundError, version

        try:
            _VERSION.append(version("agent-persist"))
        except PackageNotFoundError:
            _VERSION.append("unknown")
    return _VERSION[0]


@dataclass(frozen=True)
class ErrorNote:
    """The recorder's last error: when (seconds since the epoch) and what."""

    time: float
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, "message": self.message}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ErrorNote:
        return cls(
            time=_number(data, "time", "last_error."),
            message=_str(data, "message", "last_error."),
        )


# a record line's head (FORMAT.md), with its time and kind
_LINE_HEAD = re.compile(
    rb'(?:^|\n)\{"v":\d+,"seq":-?\d+,"ts":(-?[0-9][0-9.eE+-]*),"kind":"([a-z-]+)"'
)


@dataclass(frozen=True)
class LostLines:
    """Journal lines a stop gave up writing (the disk stayed full): how many, how many
    of them messages, their bytes and the times they were received. The journal's
    writer counts them (`of`); the status names them, and the next recorder to start
    here records them as a gap. A line whose head is not in the bytes (the rest of one
    a short write began) counts as a message: it may have been one.

    Gap records among them (`gaps`) are given up too, and with them the messages they
    counted lost (`missed`: messages dropped over the backlog budget, publisher
    sequence holes): those count in the next start's gap as well (`total`)."""

    lines: int = 0
    messages: int = 0
    nbytes: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    gaps: int = 0  # gap records among the lines that counted messages lost
    missed: int = 0  # ... how many

    @classmethod
    def of(cls, data: bytes) -> LostLines:
        lines = data.count(b"\n")
        times: list[float] = []
        messages = gaps = missed = 0
        for head in _LINE_HEAD.finditer(data):
            times.append(float(head.group(1)))
            kind = head.group(2)
            if kind == b"msg":
                messages += 1
            elif kind == b"gap":
                counted = _gap_missed(data, head.start(2))
                if counted:
                    gaps, missed = gaps + 1, missed + counted
        return cls(
            lines=lines,
            messages=messages + max(0, lines - len(times)),
            nbytes=len(data),
            first_ts=times[0] if times else None,
            last_ts=times[-1] if times else None,
            gaps=gaps,
            missed=missed,
        )

    @property
    def total(self) -> int:
        """Every message lost: those among the lines and those their gap records counted."""
        return self.messages + self.missed

    def __add__(self, later: LostLines) -> LostLines:
        return LostLines(
            self.lines + later.lines,
            self.messages + later.messages,
            self.nbytes + later.nbytes,
            self.first_ts if self.first_ts is not None else later.first_ts,
            later.last_ts if later.last_ts is not None else self.last_ts,
            self.gaps + later.gaps,
            self.missed + later.missed,
        )

    def among(self) -> str:
        """', with N gap records among them that counted M more messages lost', or ''."""
        if not self.gaps:
            return ""
        records = "gap record" if self.gaps == 1 else "gap records"
        that = f"{self.missed:,} more message" + ("" if self.missed == 1 else "s")
        return f", with {self.gaps:,} {records} among them that counted {that} lost"

    def describe(self) -> str:
        noun = "message" if self.messages == 1 else "messages"
        return f"{self.messages} {noun} ({self.lines} journal lines, {self.nbytes:,} bytes)"

    def sentence(self) -> str:
        noun = "message" if self.messages == 1 else "messages"
        return (
            f"{self.messages:,} {noun} ({self.lines:,} journal lines, {self.nbytes:,} bytes) "
            "could not be written before it stopped (the disk stayed full)" + self.among()
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "messages": self.messages,
            "bytes": self.nbytes,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            # only when some were given up: a status without them reads back the same
            **({"gaps": self.gaps, "missed": self.missed} if self.gaps else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LostLines:
        prefix = "unwritten."
        return cls(
            lines=_int(data, "lines", prefix),
            messages=_int(data, "messages", prefix),
            nbytes=_int(data, "bytes", prefix),
            first_ts=_optional(_number, data, "first_ts", prefix),
            last_ts=_optional(_number, data, "last_ts", prefix),
            gaps=_int(data, "gaps", prefix, 0),  # absent from a status before 2026-12-07
            missed=_int(data, "missed", prefix, 0),
        )


def _gap_missed(data: bytes, at: int) -> int:
    """The messages the gap record whose line holds position `at` counted lost (0 for a
    torn line, and for `before-first-seen`: sent before we subscribed, no loss of ours)."""
    start = data.rfind(b"\n", 0, at) + 1
    end = data.find(b"\n", at)
    try:
        record = orjson.loads(data[start : end if end >= 0 else len(data)])
    except orjson.JSONDecodeError:
        return 0
    missed = record.get("missed") if isinstance(record, dict) else None
    if type(missed) is not int or missed <= 0 or record.get("cause") == "before-first-seen":
        return 0
    return missed


@dataclass(frozen=True)
class RefusedPeers:
    """Publishers refused at a bound endpoint in this run: how many handshakes, the last
    one's time, CURVE client key (z85; None when it failed before a key was asked for:
    no CURVE, another server key) and address; `without_curve`: the last one spoke no
    CURVE at all."""

    count: int
    last_ts: float
    key: str | None = None
    address: str | None = None
    without_curve: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "last_ts": self.last_ts,
            "key": self.key,
            "address": self.address,
            "without_curve": self.without_curve,
        }

    @classmethod
    def from_json(cls, data: object) -> RefusedPeers | None:
        if data is None:
            return None
        if not isinstance(data, dict):
            raise UnreadableStatus("endpoints.refused holds something that is not an object")
        prefix = "endpoints.refused."
        return cls(
            count=_int(data, "count", prefix, 0),
            last_ts=_number(data, "last_ts", prefix),
            key=_optional(_str, data, "key", prefix),
            address=_optional(_str, data, "address", prefix),
            without_curve=_bool(data, "without_curve", prefix, False),
        )


@dataclass(frozen=True)
class EndpointState:
    """One endpoint of the recorder's socket: a broker it follows or an endpoint it binds."""

    endpoint: str
    mode: LinkMode
    connection: Connection
    since: float | None = None  # when `connection` began
    subscribed_since: float | None = None  # first connected/listening: earlier messages missed
    peers: int = 0  # publishers connected (bound endpoints)
    # a broker whose handshake failed, none succeeding since: why, in `persist send`'s words
    handshake_failed: str | None = None
    refused: RefusedPeers | None = None  # publishers refused here (bound endpoints)

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "mode": self.mode.value,
            "connection": self.connection.value,
            "since": self.since,
            "subscribed_since": self.subscribed_since,
            "peers": self.peers,
            "handshake_failed": self.handshake_failed,
            "refused": self.refused.to_json() if self.refused else None,
        }

    @classmethod
    def from_json(cls, data: object) -> EndpointState:
        if not isinstance(data, dict):
            raise UnreadableStatus("endpoints holds something that is not an object")
        prefix = "endpoints."
        return cls(
            endpoint=_str(data, "endpoint", prefix),
            mode=_choice(data, "mode", LinkMode, LinkMode.CONNECT.value),
            connection=_choice(data, "connection", Connection, Connection.CONNECTING.value),
            since=_optional(_number, data, "since", prefix),
            subscribed_since=_optional(_number, data, "subscribed_since", prefix),
            peers=_int(data, "peers", prefix, 0),
            handshake_failed=_optional(_str, data, "handshake_failed", prefix),
            refused=RefusedPeers.from_json(data.get("refused")),
        )


@dataclass(frozen=True)
class StatusSnapshot:
    """Everything `status.json` says; `to_json` gives the file's exact shape (FORMAT.md).

    `pid`, `updated` and `state` must be there; any other field may be missing (it
    then has its default) but never of the wrong type.
    """

    pid: int
    updated: float  # seconds since the epoch of this heartbeat
    state: RecorderState
    v: int = SCHEMA_VERSION
    process_started: float | None = None  # wall-clock start, as psutil said at the time
    process_start_key: str | None = None  # tells a reused PID from the recorder (procstart)
    # the same moment on the system's monotonic clock (CLOCK_MONOTONIC, which setting
    # the clock does not step): readers on this machine tell the heartbeat's age by it
    updated_monotonic: float | None = None
    log_dir: str = ""
    broker: str | None = None  # the broker's subscriber endpoint
    embedded_broker: str | None = None  # publisher endpoint of a broker the recorder hosts
    bind_public: bool = False  # run with `--bind-public`: its start command needs it again
    curve: bool = False  # its endpoints used CURVE: its start command asks for it again
    keys: str | None = None  # `--keys` when given (else `<log_dir>/keys`), absolute
    connection: Connection = Connection.CONNECTING
    connection_since: float | None = None
    counts: Counts = field(default_factory=Counts)
    rates: Rates = field(default_factory=Rates)
    backlog_bytes: int = 0  # journal bytes waiting for the disk
    last_seq: int = 0
    last_durable_seq: int = 0
    last_fsync: float | None = None
    segment: str | None = None  # the segment being written
    last_checkpoint: CheckpointRef | None = None
    last_error: ErrorNote | None = None
    fsync: str | None = None  # "always", "interval" or "never"
    fsync_interval_ms: int | None = None
    quarantined: tuple[str, ...] = ()  # paths of torn tails moved aside
    receiver_error: str | None = None  # the receiving thread died of this: nothing is recorded
    disk_error: str | None = None  # journal writes fail right now (a full disk): held in memory
    # recovery/state.json cannot be written right now (why, and the file): records all
    # the same, but a restart after a crash reads the journal from an older point
    recovery_error: str | None = None
    endpoints: tuple[EndpointState, ...] = ()  # every broker followed and endpoint bound
    unwritten: LostLines | None = None  # a stop gave up on the disk: these are lost
    program: Program | None = None  # None: a recorder started before 2026-12-07 (level 0)

    @property
    def level(self) -> int:
        """What the recorder that wrote it can do (`RECORDER_LEVEL`; 0 without `program`)."""
        return self.program.level if self.program is not None else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "v": self.v,
            "pid": self.pid,
            "process_started": self.process_started,
            "process_start_key": self.process_start_key,
            "updated": self.updated,
            "updated_monotonic": self.updated_monotonic,
            "log_dir": self.log_dir,
            "broker": self.broker,
            "embedded_broker": self.embedded_broker,
            "bind_public": self.bind_public,
            "curve": self.curve,
            "keys": self.keys,
            "state": self.state.value,
            "connection": self.connection.value,
            "connection_since": self.connection_since,
            "counts": self.counts.to_json(),
            "rates": self.rates.to_json(),
            "backlog_bytes": self.backlog_bytes,
            "last_seq": self.last_seq,
            "last_durable_seq": self.last_durable_seq,
            "last_fsync": self.last_fsync,
            "segment": self.segment,
            "last_checkpoint": self.last_checkpoint.to_json() if self.last_checkpoint else None,
            "last_error": self.last_error.to_json() if self.last_error else None,
            "fsync": self.fsync,
            "fsync_interval_ms": self.fsync_interval_ms,
            "quarantined": list(self.quarantined),
            "receiver_error": self.receiver_error,
            "disk_error": self.disk_error,
            "recovery_error": self.recovery_error,
            "endpoints": [e.to_json() for e in self.endpoints],
            "unwritten": self.unwritten.to_json() if self.unwritten else None,
            "program": self.program.to_json() if self.program else None,
        }

    @classmethod
    def from_json(cls, data: object) -> StatusSnapshot:
        """Check and convert parsed JSON; raises `UnreadableStatus` naming the first problem."""
        if not isinstance(data, dict):
            raise UnreadableStatus("it is not a JSON object")
        counts = _object(data, "counts")
        rates = _object(data, "rates")
        checkpoint = _object(data, "last_checkpoint")
        error = _object(data, "last_error")
        unwritten = _object(data, "unwritten")
        program = _object(data, "program")
        quarantined = data.get("quarantined") or []
        if not isinstance(quarantined, list) or not all(isinstance(q, str) for q in quarantined):
            raise UnreadableStatus("quarantined is not a list of strings")
        endpoints = data.get("endpoints")
        endpoints = [] if endpoints is None else endpoints
        if not isinstance(endpoints, list):
            raise UnreadableStatus("endpoints is not a list")
        return cls(
            pid=_int(data, "pid"),
            updated=_number(data, "updated"),
            state=_choice(data, "state", RecorderState, _MISSING),
            v=_int(data, "v", default=SCHEMA_VERSION),
            process_started=_optional(_number, data, "process_started"),
            process_start_key=_optional(_str, data, "process_start_key"),
            updated_monotonic=_optional(_number, data, "updated_monotonic"),
            log_dir=_str(data, "log_dir", default=""),
            broker=_optional(_str, data, "broker"),
            embedded_broker=_optional(_str, data, "embedded_broker"),
            bind_public=_bool(data, "bind_public", default=False),
            curve=_bool(data, "curve", default=False),
            keys=_optional(_str, data, "keys"),
            connection=_choice(data, "connection", Connection, Connection.CONNECTING.value),
            connection_since=_optional(_number, data, "connection_since"),
            counts=Counts.from_json(counts) if counts is not None else Counts(),
            rates=Rates.from_json(rates) if rates is not None else Rates(),
            backlog_bytes=_int(data, "backlog_bytes", default=0),
            last_seq=_int(data, "last_seq", default=0),
            last_durable_seq=_int(data, "last_durable_seq", default=0),
            last_fsync=_optional(_number, data, "last_fsync"),
            segment=_optional(_str, data, "segment"),
            last_checkpoint=CheckpointRef.from_json(checkpoint) if checkpoint else None,
            last_error=ErrorNote.from_json(error) if error else None,
            fsync=_optional(_str, data, "fsync"),
            fsync_interval_ms=_optional(_int, data, "fsync_interval_ms"),
            quarantined=tuple(quarantined),
            receiver_error=_optional(_str, data, "receiver_error"),
            disk_error=_optional(_str, data, "disk_error"),
            recovery_error=_optional(_str, data, "recovery_error"),
            endpoints=tuple(EndpointState.from_json(e) for e in endpoints),
            unwritten=LostLines.from_json(unwritten) if unwritten else None,
            program=Program.from_json(program) if program is not None else None,
        )

    def stamped(self, updated: float, updated_monotonic: float | None = None) -> StatusSnapshot:
        """The same snapshot, taken at `updated` (`updated_monotonic`)."""
        return replace(self, updated=updated, updated_monotonic=updated_monotonic)

    def write(self, layout: Layout, fell_back: list[str] | None = None) -> StatusFile | None:
        """Replace `status.json` atomically (not fsynced: it is rewritten every second);
        returns the file that now holds this snapshot, for `touch_status` (None when
        it cannot be told: the next status is then written whole).

        When that fails (the disk is full: it is the journal's disk; a folder in its
        place), the snapshot goes into `status.reserve`, written in place into space
        reserved at start-up, so the recorder is reported rather than seen as a silent,
        stale or stopped one (None; why status.json was not written goes in `fell_back`).
        """
        data = json_dumps(self.to_json())  # a log folder's name not UTF-8 too
        try:
            atomic_write(layout.status, data, durable=False)
        except OSError as exc:
            if not _write_reserved(layout, data):
                raise
            if fell_back is not None:
                fell_back.append(exc.strerror or str(exc))
            return None
        try:  # its mtime is its time, whatever the clock
            os.utime(layout.status, (self.updated, self.updated))
            return StatusFile.of(os.stat(layout.status))
        except OSError:
            return None

    @classmethod
    def read(cls, layout: Layout) -> StatusSnapshot | None:
        """The folder's newest status (status.json, or the reserve written while the disk
        was full or status.json could not be written); None if there is none. Raises
        `UnreadableStatus` when status.json is unusable and the reserve holds none."""
        return cls.read_noting(layout)[0]

    @classmethod
    def read_noting(cls, layout: Layout) -> tuple[StatusSnapshot | None, str | None]:
        """`read`, and why status.json is unusable when the reserve stood in for it (a
        folder in its place: the recorder writes its status to the reserve meanwhile)."""
        try:
            main = cls._read_file(layout.status)
            unusable = None
        except UnreadableStatus as exc:
            main, unusable = None, exc
        try:
            reserved = cls._read_file(layout.status_reserve)
        except UnreadableStatus:
            reserved = None  # being rewritten in place, or blank: status.json decides
        if unusable is not None:
            if reserved is None:
                raise unusable
            return reserved, str(unusable)
        if reserved is not None and (main is None or _later(reserved, main)):
            return reserved, None
        return main, None

    @classmethod
    def _read_file(cls, path: Path) -> StatusSnapshot | None:
        """The snapshot in `path`, its heartbeat the later of its `updated` and the
        file's mtime (`touch_status`); a touch is on the clock of the `updated` it holds
        (the recorder writes the file whole when its clock was stepped), so its
        monotonic time is as far from `updated_monotonic`."""
        try:
            raw, st = read_regular(path)  # a named pipe there is not waited on
            touched = st.st_mtime
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UnreadableStatus(exc.strerror or str(exc)) from None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UnreadableStatus("it is not valid JSON") from None
        status = cls.from_json(data)
        if touched > status.updated:
            mono = status.updated_monotonic
            status = status.stamped(
                touched, None if mono is None else mono + touched - status.updated
            )
        return status


def _later(a: StatusSnapshot, b: StatusSnapshot) -> bool:
    """Whether `a` was written after `b`: by the monotonic clock when both have it."""
    if a.updated_monotonic is not None and b.updated_monotonic is not None:
        return a.updated_monotonic > b.updated_monotonic
    return a.updated > b.updated


@dataclass(frozen=True)
class StatusFile:
    """The status.json a recorder wrote or last touched, as `stat` sees it: a file
    replaced or changed from outside since is not it."""

    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> StatusFile:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def touch_status(layout: Layout, now: float, written: StatusFile) -> StatusFile | None:
    """Beat the heartbeat without rewriting `status.json`: its mtime set to `now`, which
    readers take as its time when it is later than the `updated` it holds. An idle
    recorder whose status says nothing new does this instead of writing a temporary
    file and renaming it (most of an idle wake-up's CPU). Returns the file as touched;
    None if it cannot be, or if status.json is no longer `written` (what
    `StatusSnapshot.write` or the last touch left): a file put there or changed from
    outside is never made to look fresh."""
    try:
        if StatusFile.of(os.stat(layout.status)) != written:
            return None
        os.utime(layout.status, (now, now))
        return StatusFile.of(os.stat(layout.status))
    except OSError:
        return None


def read_status(layout: Layout) -> StatusSnapshot | None:
    """The folder's status, or None if there is none or it is unreadable (for polling)."""
    try:
        return StatusSnapshot.read(layout)
    except UnreadableStatus:
        return None


# -- what a reader concludes ------------------------------------------------------------
@dataclass(frozen=True)
class Health:
    state: str  # HEALTHY, STALE, DEGRADED or STOPPED
    reason: str
    status: StatusSnapshot | None = None
    warnings: list[str] = field(default_factory=list)

    holder: int | None = None  # a recorder holding the folder whose status cannot be read
    status_problem: str | None = None  # why status.json is unusable (a folder in its place)
    # degraded for a broker it follows (not one it hosts) lost or never reached: its
    # endpoint. Restarting the recorder cannot bring it back: `broker_command` can
    broker_down: str | None = None
    # degraded only because recovery/state.json cannot be written (why): it records
    recovery_unwritable: str | None = None

    @property
    def pid(self) -> int | None:
        if self.status is None:
            return self.holder
        return self.status.pid or None

    @property
    def running(self) -> bool:
        return self.state != STOPPED

    @property
    def recording(self) -> bool:
        """Whether what arrives is recorded: healthy, or degraded only for its recovery
        state (the journal is written)."""
        return self.state == HEALTHY or self.recovery_unwritable is not None

    @property
    def current(self) -> bool:
        """Whether the status's figures (rates, connection) are the present: a stale or
        stopped recorder's are the last it wrote, as old as its heartbeat."""
        return self.state not in (STALE, STOPPED)

    def broker_command(self, log_dir: Path) -> str | None:
        """For a recorder degraded by a broker it follows lost or never reached (killed,
        never started, frozen): what starts that broker, since restarting the recorder
        cannot (it reconnects by itself once the broker is back). `persist broker` with
        its two endpoints when they are known (the default broker's), with `--curve` and
        the keys when the recorder used CURVE; else a sentence naming the endpoint the
        recorder follows, the publishers' side being unknown here. None otherwise."""
        status, where = self.status, self.broker_down
        if status is None or where is None:
            return None
        curve = ""
        if status.curve:  # the broker's server key is in the same keys folder
            keys = status.keys or str(log_dir / "keys")
            curve = f" --curve --keys {shell_path(keys)}"
        if where == DEFAULT_BROKER:
            return f"persist broker --frontend {DEFAULT_BROKER_FRONTEND} --backend {where}{curve}"
        return (
            f"start the broker the recorder follows at {where}: persist broker --backend "
            f"{shell_quote(where)} --frontend ENDPOINT{curve}, ENDPOINT where its publishers "
            "connect (the recorder connects again by itself; a frozen one holding the "
            "port must be ended first)"
        )

    def start_command(self, log_dir: Path) -> str:
        """The command that starts the recorder again where it listened: the brokers it
        followed, the endpoints it bound, and the broker it hosted (`--embedded yes` and
        its publish endpoint: without them it would follow a broker nobody runs), with
        `--bind-public` when it ran with it (without, an endpoint beyond loopback and
        ipc it bound is refused), and `--curve` and its `--keys` when it used CURVE
        (without, a recorder whose keys are elsewhere would listen there unencrypted;
        with `--curve`, missing keys are refused rather than skipped)."""
        status = self.status
        argv = ["persist", "record"]
        if status is not None and status.endpoints:
            for e in status.endpoints:
                argv += [f"--{e.mode.value.replace('connect', 'broker')}", e.endpoint]
        else:
            argv += ["--broker", (status.broker if status is not None else None) or DEFAULT_BROKER]
        if status is not None and status.embedded_broker:
            argv += ["--embedded", "yes", "--publish-endpoint", status.embedded_broker]
        if status is not None and status.bind_public:
            argv.append("--bind-public")
        if status is not None and status.curve:
            argv.append("--curve")
        words = [*map(shell_quote, argv)]
        if status is not None and status.keys:
            words += ["--keys", shell_path(status.keys)]
        words += ["--log-dir", shell_path(str(log_dir)), "--detach"]
        return " ".join(words)


def process_matches(pid: int, started: float | None, key: str | None = None) -> bool:
    """True if `pid` runs and is the process that wrote the status (not a reuse): by its
    start `key` (boot-relative, unmoved by wall-clock steps) when one was recorded, else
    by the wall-clock start `started` (files written before keys; see `procstart`)."""
    from recorder.store.procstart import same_process

    return same_process(pid, started, key)


def process_start_time(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), or None if it is gone."""
    from recorder.store.procstart import wall_start

    return wall_start(pid)


def process_start_key(pid: int) -> str | None:
    """What names process `pid`'s start on a clock that does not step (`procstart`), or
    None (gone, or no /proc)."""
    from recorder.store.procstart import start_key

    return start_key(pid)


def heartbeat_age(
    status: StatusSnapshot, now: float, monotonic: float | None
) -> tuple[float, float]:
    """(Seconds since the status's heartbeat, now on the clock its stamps were taken
    with). By the monotonic clock when the reader gives its own (`monotonic`) and the
    status has its stamp: a wall clock set back or forward since changes neither. Else
    by the wall clock `now` (a heartbeat stamped in the future is then negative)."""
    mono = status.updated_monotonic
    if monotonic is not None and mono is not None:
        age = monotonic - mono
        if age >= -CLOCK_SLACK:  # (else not the same clock: another boot's, say)
            return max(0.0, age), status.updated + max(0.0, age)
    return now - status.updated, now


def assess(layout: Layout, now: float | None = None, monotonic: float | None = None) -> Health:
    """What a reader concludes from the folder's status at `now` (the wall clock) and
    `monotonic` (the system's monotonic clock; both read here when `now` is None)."""
    if now is None:
        now = time.time()
        monotonic = time.monotonic() if monotonic is None else monotonic
    try:
        status, unusable = StatusSnapshot.read_noting(layout)
    except UnreadableStatus as exc:
        refuse_if_out_of_reach(layout)
        holder = recorder_holding(layout)
        if holder is None:
            return Health(STOPPED, f"status.json is unreadable: {exc}", status_problem=str(exc))
        return Health(
            DEGRADED,
            f"recorder PID {holder} holds the folder (recorder.lock), but its status "
            f"cannot be read: status.json is unusable ({exc}) and status.reserve holds "
            f"none; {status_remedy(layout)}",
            holder=holder,
            status_problem=str(exc),
        )
    health = _assess(layout, status, now, monotonic)
    if unusable is None:
        return health
    said = (
        f"status.json is unusable ({unusable}): the recorder writes its status to "
        f"status.reserve instead; {status_remedy(layout)}"
    )
    if health.state == STOPPED:
        reason = f"status.json is unreadable: {unusable} (status.reserve says: {health.reason})"
        return replace(health, reason=reason, status_problem=unusable)
    return replace(health, warnings=[said, *health.warnings], status_problem=unusable)


def status_move(layout: Layout) -> str:
    """The command that clears status.json's place (whatever is there is kept beside):
    a recorder cannot replace a folder there, and writes status.json again once it is
    gone."""
    path = shell_quote(str(layout.status))
    return f"mv {path} {path}.aside"


def status_remedy(layout: Layout) -> str:
    """What to do about an unusable status.json: a file the recorder replaces by itself
    (within a second); a folder it cannot, which must be moved."""
    if os.path.isdir(layout.status) and not os.path.islink(layout.status):
        return f"move it out of the way: `{status_move(layout)}`"
    return "a running recorder replaces it within a second"


def refuse_if_out_of_reach(layout: Layout) -> None:
    """`HolderUnknown` when the folder's lock file may not be opened: what its status
    could not say, its lock cannot either (before 2026-12-08 a folder of another user's
    was called stopped, and `persist stop` said no recorder ran while one did)."""
    from recorder.store.fsutil import lock_refused, user_name

    if not lock_refused(layout.lock):
        return
    me = os.geteuid()
    for place in (layout.root, layout.lock):
        try:
            owner = os.stat(place).st_uid
        except OSError:
            continue
        if owner != me:
            name = user_name(owner)
            whose = "it" if place == layout.root else str(layout.root)
            raise HolderUnknown(
                f"{place} belongs to another user ({name}): whether a recorder holds "
                f"{whose} cannot be told from here; run this as that user (sudo -u {name})"
            )
    raise HolderUnknown(
        f"{layout.lock} cannot be opened (permission denied): whether a recorder holds "
        f"{layout.root} cannot be told from here"
    )


def recorder_holding(layout: Layout) -> int | None:
    """The PID of a recorder holding the folder's lock now (None: none, or a `persist`
    command holding it for a moment, or a holder that is not named)."""
    from recorder.store.fsutil import held_by_another
    from recorder.store.lock import read_holder

    if not held_by_another(layout.lock):
        return None
    pid, role = read_holder(layout.lock)
    if pid is None or role or pid <= 0 or process_start_time(pid) is None:
        return None
    return pid


def _assess(
    layout: Layout, status: StatusSnapshot | None, now: float, monotonic: float | None
) -> Health:
    if status is None:
        if layout.segments.is_dir():
            return Health(STOPPED, "no recorder has written a status file here")
        return Health(STOPPED, "no journal in this folder yet")
    pid = status.pid
    age = now - status.updated
    if status.state == RecorderState.STOPPED:
        if status.unwritten is not None:
            return Health(
                STOPPED,
                f"stopped {format_age(age)} ago, NOT cleanly: {status.unwritten.sentence()}; "
                "they are lost, and the next start records the gap",
                status,
            )
        return Health(STOPPED, f"stopped cleanly {format_age(age)} ago", status)
    if pid <= 0 or not process_matches(pid, status.process_started, status.process_start_key):
        return Health(
            STOPPED,
            f"recorder PID {pid} is gone without a clean stop "
            f"(last heartbeat {format_age(age)} ago)",
            status,
        )
    age, clock = heartbeat_age(status, now, monotonic)
    if age < -CLOCK_SLACK:
        return Health(
            STALE,
            f"PID {pid} is alive, but its last heartbeat is stamped {format_age(-age)} in "
            "the future: the clock was set back since, and it has not written one after",
            status,
        )
    if age > STALE_AFTER:
        return Health(STALE, f"PID {pid} is alive but silent for {format_age(age)}", status)
    warnings = []
    older = level_warning(status)
    if older is not None:
        warnings.append(older)
    said = status.last_error
    if said is not None and not (status.recovery_error and said.message.startswith(STATE_FAILED)):
        warnings.append(f"last error: {said.message}")
    for kind in (INDEXER, MONITOR):  # its children: one ended and waits to start again
        child = read_child_status(layout, kind)
        problem = child.problem(now, kind) if child is not None and child.parent == pid else None
        if problem:
            warnings.append(problem)
    if status.disk_error is not None and status.state == RecorderState.STOPPING:
        return Health(
            DEGRADED,
            f"PID {pid} is stopping, and waits for room to write what it holds: "
            f"{status.disk_error} ({status.backlog_bytes:,} bytes wait in memory). Free some "
            "space and it finishes; `persist stop --force` stops it now, and what it holds "
            "is lost (recorded as a gap)",
            status,
            warnings,
        )
    if status.disk_error is not None and status.state == RecorderState.RECORDING:
        return Health(
            DEGRADED,
            f"PID {pid} cannot write its journal: {status.disk_error} "
            f"({status.backlog_bytes:,} bytes wait in memory; free some space)",
            status,
            warnings,
        )
    if status.receiver_error is not None:
        return Health(
            DEGRADED,
            f"PID {pid} runs but records nothing: its receiver stopped ({status.receiver_error})",
            status,
            warnings,
        )
    links = [e for e in status.endpoints if e.mode is LinkMode.CONNECT]
    if not status.endpoints:  # a status from before `endpoints`: its one broker
        links = [
            EndpointState(
                status.broker or "", LinkMode.CONNECT, status.connection, status.connection_since
            )
        ]
    down_links = [e for e in links if e.connection != Connection.CONNECTED]
    for link in down_links:
        since = link.since or status.process_started
        # begun after the heartbeat that tells it: the clock was set back since it began,
        # and how long ago that was is not known (only that it was before the step)
        unknown = since is not None and since > status.updated + CLOCK_SLACK
        down = clock - since if since is not None and not unknown else 0.0
        lost = link.connection == Connection.DISCONNECTED
        if (unknown or down > (LOST_AFTER if lost else UNREACHABLE_AFTER)) and (
            status.state == RecorderState.RECORDING
        ):
            what = "lost" if lost else "never reached"
            nothing = "nothing" if len(links) == 1 else "nothing from it"
            length = "since before the clock was set back" if unknown else f"for {format_age(down)}"
            if link.handshake_failed:  # it answers, and says no
                return Health(
                    DEGRADED,
                    f"PID {pid} runs but records {nothing}: "
                    f"{refused_by(link.endpoint, link.handshake_failed)}; not connected "
                    f"{length}, tried again every second",
                    status,
                    warnings,
                )
            # the broker it hosts is in the recorder: a restart brings it back
            hosted = status.embedded_broker is not None and link.endpoint == status.broker
            return Health(
                DEGRADED,
                f"PID {pid} runs but records {nothing}: the broker at {link.endpoint} "
                f"is unreachable ({what} {length}; is it running, or frozen?)",
                status,
                warnings,
                broker_down=None if hosted else link.endpoint,
            )
    if status.recovery_error is not None and status.state == RecorderState.RECORDING:
        return Health(
            DEGRADED,
            f"PID {pid} records, but cannot write its recovery state: "
            f"{status.recovery_error}; a restart after a crash would read the journal "
            "from an older point (make room on its disk, or make the folder writable)",
            status,
            warnings,
            recovery_unwritable=status.recovery_error,
        )
    for bound in status.endpoints:  # publishers refused lately: their records are lost
        refused = bound.refused
        if bound.mode is LinkMode.BIND and refused and clock - refused.last_ts < REFUSED_WARN:
            warnings.append(refused_warning(bound.endpoint, refused, clock))
    for link in reversed(down_links):
        if link.handshake_failed:
            warnings.insert(0, f"not connected: {refused_by(link.endpoint, link.handshake_failed)}")
        else:
            warnings.insert(0, f"not connected to the broker at {link.endpoint}")
    return Health(HEALTHY, f"recording, PID {pid}", status, warnings)


# why a publisher that spoke no CURVE to a CURVE endpoint was refused, and what to do
WITHOUT_CURVE = (
    "a publisher without CURVE: it must connect with CURVE and a client key on the "
    "allow-list (`persist send --curve`, `Publisher(..., curve=load_client(KEYS))`)"
)
# a publisher refused at a bound endpoint less than this long ago is a warning
REFUSED_WARN = 600.0


def refused_warning(endpoint: str, refused: RefusedPeers, now: float) -> str:
    """A warning naming the publishers refused at bound `endpoint`: how many, the last
    one's key (or why none was asked for) and address, and how to let a key in."""
    times = (
        "a publisher's handshake"
        if refused.count == 1
        else (f"{refused.count} publisher handshakes")
    )
    where = f" from {refused.address}" if refused.address else ""
    if refused.key:
        what = f"CURVE client key {refused.key} not on the allow-list"
    elif refused.without_curve:
        what = WITHOUT_CURVE
    else:
        what = "no key asked for: the handshake failed first, another server key?"
    return (
        f"refused {times} at {endpoint} in this run, the last {format_age(now - refused.last_ts)} "
        f"ago{where} ({what}): what they send is not recorded; `persist keys allow FILE` "
        "lets a client key in, from the recorder's next start"
    )


def level_words(status: StatusSnapshot) -> str:
    """'was started before 2026-12-07 (its status.json names no program level)', or
    'runs program level 1, this persist 2': how the recorder is older than this persist."""
    if status.program is None:
        return (
            f"was started before {LEVEL_SINCE} (its status.json names no program level): "
            "older than this persist"
        )
    version = f", version {status.program.version}" if status.program.version else ""
    return (
        f"runs program level {status.level}{version}, older than this persist's "
        f"{RECORDER_LEVEL} ({LEVEL_SINCE})"
    )


def level_warning(status: StatusSnapshot) -> str | None:
    """What `persist status` says of a running recorder older or newer than this persist."""
    if status.level < RECORDER_LEVEL:
        return (
            f"the recorder (PID {status.pid}) {level_words(status)}; `persist compact`, "
            "`persist prune` and `persist trash restore|empty` refuse to work under it; "
            "restarting it brings it level"
        )
    if status.level > RECORDER_LEVEL:
        return (
            f"the recorder (PID {status.pid}) runs program level {status.level}, newer than "
            f"this persist's {RECORDER_LEVEL}: it is newer than the persist command you run"
        )
    return None


def running_older(layout: Layout) -> Health | None:
    """The running recorder's health when it is older than this persist (its status's
    `program.level` under `RECORDER_LEVEL`, or no `program`): what it cannot do, this
    persist must not ask of it or do under it. None when no recorder runs, or its
    status cannot tell (unreadable, or not the lock holder's: one just starting)."""
    from recorder.store.lock import read_holder

    health = assess(layout)
    status = health.status
    if not health.running or status is None or status.level >= RECORDER_LEVEL:
        return None
    holder, role = read_holder(layout.lock)
    if role or holder != status.pid:
        return None
    return health


def older_refusal(layout: Layout, health: Health, what: str) -> str:
    """One line: the running recorder is older, so `what` is not done; how to go on."""
    assert health.status is not None
    stop = f"persist stop --log-dir {shell_path(str(layout.root))}"
    return (
        f"the running recorder (PID {health.status.pid}) {level_words(health.status)}: "
        f"{what}; restarting it brings it level ({stop}, then "
        f"{health.start_command(layout.root)}), then run this again"
    )


def format_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


RESERVE_BYTES = 64 * 1024  # room kept for a status written while the disk is full


def reserve_status_space(layout: Layout) -> str | None:
    """Allocate `status.reserve` now, while there is room (blank: nothing to read).

    Best effort: returns why it could not be done (the recorder still starts; only
    the report of a later full disk is lost)."""
    try:
        fd = open_private(layout.status_reserve, os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        return f"cannot reserve {layout.status_reserve.name}: {exc.strerror or exc}"
    try:
        if os.fstat(fd).st_size != RESERVE_BYTES:
            os.pwrite(fd, b" " * RESERVE_BYTES, 0)  # real blocks, on every file system
            os.fsync(fd)
        return None
    except OSError as exc:
        return f"cannot reserve {layout.status_reserve.name}: {exc.strerror or exc}"
    finally:
        os.close(fd)


def _write_reserved(layout: Layout, data: bytes) -> bool:
    """Overwrite the reserve in place (no new blocks needed); False if it cannot be."""
    if len(data) >= RESERVE_BYTES:
        return False
    try:
        # O_NONBLOCK: a named pipe there without a reader fails (ENXIO), not waits
        fd = os.open(layout.status_reserve, os.O_WRONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        os.pwrite(fd, data + b" " * (RESERVE_BYTES - len(data)), 0)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
