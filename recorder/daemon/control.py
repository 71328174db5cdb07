"""Asking for a checkpoint, whether or not a recorder is running.

With a recorder holding the folder, the request goes to it (a file in
`control/`, answered within its next tick) so the checkpoint lines up with what
it has written. Without one, we take the folder's lock ourselves and checkpoint
the journal's last valid record.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from recorder.errors import CheckpointError
from recorder.store.checkpoints import Checkpoint, list_checkpoints, write_checkpoint
from recorder.store.fsutil import atomic_write, ensure_private_dir
from recorder.store.journal import valid_end
from recorder.store.layout import Layout, list_segments, segment_number
from recorder.store.lock import AlreadyRunning, InstanceLock


def request_checkpoint(layout: Layout, label: str, timeout: float = 5.0) -> Checkpoint:
    if not layout.segments.is_dir():
        raise CheckpointError(f"no journal in {layout.root}: start a recorder first")
    lock = InstanceLock(layout.lock)
    try:
        lock.acquire()
    except AlreadyRunning:
        return _ask_recorder(layout, label, timeout)
    try:
        return _checkpoint_offline(layout, label)
    finally:
        lock.release()


def _ask_recorder(layout: Layout, label: str, timeout: float) -> Checkpoint:
    ensure_private_dir(layout.control)
    rid = uuid.uuid4().hex
    request = layout.control / f"{rid}.request"
    done = layout.control / f"{rid}.done"
    atomic_write(request, orjson.dumps({"label": label}), durable=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done.exists():
            reply = orjson.loads(done.read_bytes())
            done.unlink()
            if not reply.get("ok") or not reply.get("checkpoint"):
                raise CheckpointError(
                    reply.get("error") or "the recorder has nothing to checkpoint"
                )
            cp_id = reply["checkpoint"]["id"]
            return next(c for c in list_checkpoints(layout) if c.id == cp_id)
        time.sleep(0.02)
    request.unlink(missing_ok=True)
    raise CheckpointError(f"the running recorder did not answer within {timeout:.0f}s")


def _checkpoint_offline(layout: Layout, label: str) -> Checkpoint:
    from recorder.store.ranges import RangeSummary, summarize
    from recorder.store.reader import Store

    segments = list_segments(layout)
    last_record = None
    for path in reversed(segments):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            end, last_record = valid_end(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)
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
    started: Any,
    timeout: float,
    say: Callable[[str], None] = lambda message: None,
) -> bool:
    """SIGTERM the recorder and wait for it to exit; True once it is gone.

    A recorder that has written its clean stop (journal closed and fsynced,
    shutdown checkpoint taken) but still lingers after `STOPPED_GRACE` seconds
    is killed: nothing it holds can be lost any more.
    """
    from recorder.store.status import process_matches, read_status

    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    stopped_at: float | None = None
    while time.monotonic() < deadline:
        if not process_matches(pid, started):
            return True
        if stopped_at is None:
            status = read_status(layout) or {}
            if status.get("pid") == pid and status.get("state") == "stopped":
                stopped_at = time.monotonic()
        elif time.monotonic() - stopped_at > STOPPED_GRACE:
            say(f"recorder PID {pid} stopped cleanly but did not exit; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            stopped_at = float("inf")
        time.sleep(0.02)
    say(f"recorder PID {pid} did not stop within {timeout:.0f}s")
    return False
