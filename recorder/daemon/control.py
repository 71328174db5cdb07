"""Asking for a checkpoint, whether or not a recorder is running; both ends of the protocol.

With a recorder holding the folder, the request goes to it so the checkpoint
lines up with what it has written: `control/<id>.request` holds a
`CheckpointRequest`; the recorder (`Recorder.handle_requests`, within its next
tick) answers with a `CheckpointReply` in `control/<id>.done` and removes the
request. Without a recorder, we take the folder's lock ourselves and checkpoint
the journal's last valid record.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from recorder.daemon.wakeup import poke
from recorder.errors import CheckpointError, PersistError
from recorder.store.checkpoints import (
    Checkpoint,
    list_checkpoints,
    sanitize_label,
    write_checkpoint,
)
from recorder.store.fsutil import atomic_write, ensure_private_dir
from recorder.store.journal import valid_end
from recorder.store.layout import Layout, list_segments, segment_number
from recorder.store.lock import AlreadyRunning, FolderBusy, InstanceLock, read_holder
from recorder.store.segfile import open_segment
from recorder.store.unfinished import refuse_unfinished_restore

REQUEST_SUFFIX = ".request"  # control/<id>.request: a CheckpointRequest, from a client
REPLY_SUFFIX = ".done"  # control/<id>.done: the recorder's CheckpointReply to it
# control/<id>.maint: a `persist prune` / `persist trash` request (`daemon.maintenance`),
# named here so the recorder's look at control/ need not import that module to see none
MAINTENANCE_SUFFIX = ".maint"
AFTER_WAIT = 2.0  # seconds a request waits for the message it names (`after`), at most


class ControlError(PersistError):
    """A control file is not what the protocol says it is."""


class RecorderGone(PersistError):
    """The recorder asked ended before it answered (killed, crashed)."""

    def __init__(self, layout: Layout, pid: int) -> None:
        where = layout.recorder_out if layout.recorder_out.exists() else layout.log
        super().__init__(
            f"the recorder (PID {pid}) ended before it answered: nothing was done, or not "
            f"all of it (its last words are in {where}); start it again and retry"
        )


@dataclass(frozen=True)
class CheckpointRequest:
    """A client asks the running recorder for a checkpoint now.

    `after` (publisher, seq): the client published that message just before asking,
    and the checkpoint must hold it. The recorder answers once it has received it
    (or `AFTER_WAIT` s later): the message may still be on its way through the
    broker when the request arrives, and a request is answered within milliseconds.
    """

    label: str = ""
    after: tuple[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label}
        if self.after is not None:
            out["after"] = {"pub": self.after[0], "seq": self.after[1]}
        return out

    @classmethod
    def from_json(cls, data: object) -> CheckpointRequest:
        if not isinstance(data, dict):
            raise ControlError("the request is not a JSON object")
        label = data.get("label")
        if label is not None and not isinstance(label, str):
            raise ControlError("the request's label is not a string")
        after = data.get("after")
        if after is None:
            return cls(label or "")
        if (
            not isinstance(after, dict)
            or not isinstance(after.get("pub"), str)
            or type(after.get("seq")) is not int
        ):
            raise ControlError('the request\'s "after" is not {"pub": str, "seq": int}')
        return cls(label or "", (after["pub"], after["seq"]))


@dataclass(frozen=True)
class CheckpointReply:
    """The recorder's answer: the checkpoint taken (None: nothing to checkpoint), or an error.

    On disk `{"ok": true, "checkpoint": <the checkpoint file's JSON> | null}` or
    `{"ok": false, "error": "..."}`.
    """

    ok: bool
    checkpoint: Checkpoint | None = None
    error: str | None = None

    @classmethod
    def taken(cls, checkpoint: Checkpoint | None) -> CheckpointReply:
        return cls(True, checkpoint)

    @classmethod
    def failed(cls, error: str) -> CheckpointReply:
        return cls(False, error=error)

    def to_json(self) -> dict[str, Any]:
        if self.ok:
            checkpoint = self.checkpoint.to_json() if self.checkpoint else None
            return {"ok": True, "checkpoint": checkpoint}
        return {"ok": False, "error": self.error or ""}

    @classmethod
    def from_json(cls, data: object) -> CheckpointReply:
        if not isinstance(data, dict) or type(data.get("ok")) is not bool:
            raise ControlError("the reply is not an object with a boolean ok")
        error = data.get("error")
        if error is not None and not isinstance(error, str):
            raise ControlError("the reply's error is not a string")
        checkpoint = None
        if data.get("checkpoint") is not None:
            try:
                checkpoint = Checkpoint.from_json(data["checkpoint"])
            except (KeyError, TypeError, ValueError, AttributeError):
                raise ControlError("the reply's checkpoint is malformed") from None
        return cls(data["ok"], checkpoint, error)


def reply_path(request: Path) -> Path:
    """Where the answer to the request file `request` goes."""
    return request.with_suffix(REPLY_SUFFIX)


# -- the recorder's end ---------------------------------------------------------------
def control_names(layout: Layout) -> list[str]:
    """What control/ holds, by name ([] if it cannot be listed). The recorder lists it
    once per look and picks each kind of request from that one listing: an idle
    recorder's look is a single `getdents` (it was two `Path.glob`s, a millisecond of
    an idle wake-up on a slow machine)."""
    try:
        return os.listdir(layout.control)
    except OSError:
        return []


def requests_named(layout: Layout, suffix: str, names: list[str] | None = None) -> list[Path]:
    """The files in control/ that end in `suffix`, sorted by name, from `names` (a
    `control_names` listing) or a listing of their own."""
    if names is None:
        names = control_names(layout)
    return [layout.control / name for name in sorted(names) if name.endswith(suffix)]


def pending_requests(layout: Layout, names: list[str] | None = None) -> list[Path]:
    """Checkpoint request files waiting for an answer (`requests_named`)."""
    return requests_named(layout, REQUEST_SUFFIX, names)


def read_request(path: Path) -> CheckpointRequest:
    """Raises `ControlError` for a malformed request and OSError if it cannot be read."""
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        raise ControlError("the request is not valid JSON") from None
    return CheckpointRequest.from_json(data)


def answer_request(path: Path, reply: CheckpointReply) -> None:
    """Write the reply, then remove the request; a failure leaves both for the next tick."""
    with contextlib.suppress(OSError):
        atomic_write(reply_path(path), orjson.dumps(reply.to_json()), durable=False)
        path.unlink()


# -- the client's end -----------------------------------------------------------------


def request_checkpoint(
    layout: Layout, label: str, timeout: float = 5.0, after: tuple[str, int] | None = None
) -> Checkpoint:
    """A checkpoint now: the running recorder's (holding `after`, the message the
    caller published just before, see `CheckpointRequest`), or, with no recorder,
    one of the journal's last valid record."""
    refuse_unfinished_restore(layout.root)  # (before "no journal": that is not yet restored)
    if not layout.segments.is_dir():
        raise CheckpointError(f"no journal in {layout.root}: start a recorder first")
    label = sanitize_label(label)  # as the checkpoint keeps it (and JSON-safe to send)
    lock = InstanceLock(layout.lock, "checkpoint")
    try:
        # once: a lock a recorder holds is a running recorder, to be asked at once (an
        # agent's hook waits for this), not after 100 ms of retries; another `persist`
        # command's (a checkpoint another hook asked for, a prune) is waited for
        lock.acquire(attempts=1)
    except AlreadyRunning:
        return _ask_recorder(layout, CheckpointRequest(label, after), timeout)
    except FolderBusy as exc:  # (callers, an agent's hook, expect CheckpointError)
        raise CheckpointError(str(exc)) from None
    try:
        return _checkpoint_offline(layout, label)
    finally:
        lock.release()


def no_answer(what: str, timeout: float, taken: bool) -> str:
    """Why a request to the running recorder has no answer, and what became of it."""
    if taken:
        return (
            f"the running recorder took the {what} request but did not answer within "
            f"{timeout:.0f}s (overloaded, or stopped with SIGSTOP?): it may still be done "
            "when the recorder goes on"
        )
    return (
        f"the running recorder did not answer within {timeout:.0f}s (overloaded, or "
        f"stopped with SIGSTOP?): the {what} request is withdrawn, nothing was done"
    )


def exchange(
    layout: Layout, body: bytes, timeout: float, request_suffix: str, reply_suffix: str
) -> bytes | bool:
    """Leave a request in `control/` for the running recorder and wait for its reply:
    the reply's bytes; when none came within `timeout`, whether the recorder took the
    request (else it is withdrawn). One protocol for checkpoints and maintenance, told
    apart by suffix."""
    ensure_private_dir(layout.control)
    request = layout.control / f"{uuid.uuid4().hex}{request_suffix}"
    done = request.with_suffix(reply_suffix)
    # the recorder asked: it may end before it answers (a command that took the lock
    # after it ended is no recorder: the request is then withdrawn at the timeout)
    pid, role = read_holder(layout.lock)
    holder = None if role else pid
    atomic_write(request, body, durable=False)
    poke(layout.control)  # answered at once, not at the recorder's next look
    now = time.monotonic()
    deadline, next_look = now + timeout, now + GONE_LOOK
    while time.monotonic() < deadline:
        if done.exists():
            raw = done.read_bytes()
            done.unlink()
            return raw
        if holder is not None and time.monotonic() >= next_look:
            next_look += GONE_LOOK
            if not _alive(holder) and not done.exists():
                with contextlib.suppress(FileNotFoundError):
                    request.unlink()
                raise RecorderGone(layout, holder)
        time.sleep(0.005)
    try:
        request.unlink()
    except FileNotFoundError:
        return True  # the recorder took it: it may be done yet
    return False


GONE_LOOK = 0.25  # seconds between looks at whether the recorder asked is still alive


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ask_recorder(layout: Layout, request: CheckpointRequest, timeout: float) -> Checkpoint:
    body = orjson.dumps(request.to_json())
    try:
        raw = exchange(layout, body, timeout, REQUEST_SUFFIX, REPLY_SUFFIX)
    except RecorderGone as exc:
        raise CheckpointError(str(exc)) from None
    if isinstance(raw, bool):
        raise CheckpointError(no_answer("checkpoint", timeout, raw))
    try:
        reply = CheckpointReply.from_json(orjson.loads(raw))
    except (ValueError, ControlError) as exc:
        raise CheckpointError(f"the recorder's reply is unreadable: {exc}") from None
    if not reply.ok or reply.checkpoint is None:
        raise CheckpointError(reply.error or "the recorder has nothing to checkpoint")
    cp_id = reply.checkpoint.id
    found = [c for c in list_checkpoints(layout) if c.id == cp_id]  # with its path
    if not found:
        raise CheckpointError(f"checkpoint {cp_id} is not in {layout.root}")
    return found[0]


def _checkpoint_offline(layout: Layout, label: str) -> Checkpoint:
    from recorder.store.ranges import RangeSummary, summarize
    from recorder.store.reader import Store

    segments = list_segments(layout)
    last_record = None
    for path in reversed(segments):
        try:
            with open_segment(path) as seg:
                end, last_record = valid_end(seg.read, seg.size)
        except ValueError as exc:  # a compressed segment with no readable frame table
            raise CheckpointError(str(exc)) from None
        if last_record is not None:
            number = segment_number(path.name) or 0
            break
    if last_record is None:
        raise CheckpointError("the journal has no records yet")
    previous = [c for c in list_checkpoints(layout) if c.seq <= int(last_record["seq"])]
    base = previous[0] if previous else None
    with Store(layout.root) as store:
        store.refresh()
        start = store.index_of(base.segment, base.offset) if base else 0
        stop = store.index_of(number, end)
        since = summarize(store.records(start, stop)) or RangeSummary()
    first_ts = base.first_ts if base and base.first_ts is not None else since.first_ts
    last_ts = since.last_ts if since.last_ts is not None else (base.last_ts if base else None)
    return write_checkpoint(
        layout,
        segment=number,
        offset=end,
        seq=int(last_record["seq"]),
        messages=(base.messages if base else 0) + since.messages,
        label=label,
        reason="manual",
        participants=dict(since.participants),
        first_ts=first_ts,
        last_ts=last_ts,
    )


STOPPED_GRACE = 2.0  # seconds a recorder may linger after reporting a clean stop


def stop_recorder(
    layout: Layout,
    pid: int,
    started: float | None,
    timeout: float,
    say: Callable[[str], object] = lambda message: None,
    *,
    force: bool = False,
    key: str | None = None,
) -> bool:
    """SIGTERM the recorder and wait for it to exit; True once it is gone.

    A recorder that has written its clean stop (journal closed and fsynced,
    shutdown checkpoint taken) but still lingers after `STOPPED_GRACE` seconds
    is killed: nothing it holds can be lost any more. A recorder whose disk is full
    waits for room to write what it holds; `force` (SIGUSR2 instead of SIGTERM) makes
    it give that up: it is lost, and recorded as a gap by the next start. `started` and
    `key` are the recorder's recorded start (see `process_matches`): it is gone once
    its PID names no process, or another one.
    """
    from recorder.store.status import RecorderState, process_matches, read_status

    try:
        os.kill(pid, signal.SIGUSR2 if force else signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    stopped_at: float | None = None
    while time.monotonic() < deadline:
        if not process_matches(pid, started, key):
            return True
        if stopped_at is None:
            status = read_status(layout)
            if status and status.pid == pid and status.state == RecorderState.STOPPED:
                stopped_at = time.monotonic()
                if status.unwritten is not None:
                    say(f"recorder PID {pid} gave up: {status.unwritten.sentence()}")
        elif time.monotonic() - stopped_at > STOPPED_GRACE:
            # SIGUSR1 first: the recorder dumps its threads' stacks into recorder.out
            # (faulthandler, see `persist record`), so a linger can be diagnosed.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR1)
                time.sleep(0.2)
            say(
                f"recorder PID {pid} stopped cleanly but did not exit; killing it "
                f"(its threads' stacks are in {layout.recorder_out})"
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            stopped_at = float("inf")
        time.sleep(0.02)
    status = read_status(layout)
    if (
        status
        and status.pid == pid
        and status.state == RecorderState.STOPPING
        and (status.disk_error is not None)
    ):
        say(
            f"recorder PID {pid} is stopping, and waits for room to write the "
            f"{status.backlog_bytes:,} bytes it holds ({status.disk_error}): free some space "
            "and it finishes by itself; `persist stop --force` stops it now, and they are lost"
        )
    else:
        say(f"recorder PID {pid} did not stop within {timeout:.0f}s")
    return False
