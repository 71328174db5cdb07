"""Starting a recorder in the background and waiting until it records: one way, for all.

`persist record --detach`, the launcher (and through it the demo) call
`spawn_recorder`; the systemd unit runs the same argv (`recorder_argv`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from recorder.daemon.options import RecorderOptions, recorder_argv
from recorder.errors import LaunchError, how_it_ended
from recorder.store.fsutil import atomic_write, ensure_private_dir, open_private
from recorder.store.layout import Layout
from recorder.store.lock import TOOL_WAIT, AlreadyRunning, FolderBusy, InstanceLock, told_waits
from recorder.store.status import DEGRADED, HEALTHY, RecorderState, assess
from recorder.store.unfinished import UnfinishedRestore, refuse_unfinished_restore
from recorder.store.waiting import read_waiting


class SpawnError(LaunchError):
    """The started recorder exited or never reported; `exit_code` is its code if it exited."""

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Spawned:
    pid: int  # the recorder now recording into the folder
    ours: bool  # False: another recorder won a race with ours and holds the folder


def spawn_recorder(
    options: RecorderOptions,
    *,
    timeout: float = 10.0,  # seconds for the recorder to say it records
    extra: tuple[str, ...] = (),  # more `persist record` options, as given by a user
    accept_running: bool = False,  # a recorder that won a race with ours will do
    on_ready: Callable[[Spawned], None] | None = None,  # as part of the start (its owner)
    limit: float | None = None,  # seconds at most, also while it waits for the folder
) -> Spawned:
    """Start `persist record` detached (own session, output in `recorder.out`) and wait
    until the folder's status says a recorder is recording. Raises `SpawnError`.
    Interrupted while it waits (Ctrl-C, SIGTERM), it stops the recorder it started
    before the interruption goes on: nobody would own it (no launcher ever stopped it).
    `on_ready` is called once it records, still under that guard: an interruption or an
    error before it has returned (the launcher writing `agents/owner.json`) stops it.
    A recorder that waits for a `persist` command holding the folder is waited for as
    long as it waits (`lock.TOOL_WAIT`), then `timeout` more, unless `limit` (a hook's
    budget) ends it first."""
    layout = Layout(options.log_dir)
    try:
        refuse_unfinished_restore(layout.root)  # before `recorder.out` is written there
    except UnfinishedRestore as exc:
        raise SpawnError(str(exc)) from None
    ensure_private_dir(layout.root)
    out = _open_output(layout)
    start = os.lseek(out, 0, os.SEEK_END)  # this run's output comes after
    try:
        proc = subprocess.Popen(
            recorder_argv(options, extra=extra),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # outlives this terminal; never gets its Ctrl-C
            close_fds=True,
        )
    finally:
        os.close(out)
    return _wait_recording(layout, proc, timeout, accept_running, start, on_ready, limit)


OUT_KEEP = 256 * 1024
"""Bytes of `recorder.out` kept from earlier runs (a start that is refused, because
another recorder holds the folder, appends its line after the running one's output)."""


def _open_output(layout: Layout) -> int:
    """`recorder.out` for appending: never truncated, as a running recorder may be
    writing to it. When no recorder holds the folder, a file grown past twice
    `OUT_KEEP` is cut to its last `OUT_KEEP` bytes first."""
    path = layout.recorder_out
    with contextlib.suppress(OSError, AlreadyRunning, FolderBusy):  # trimmed another time
        if path.stat().st_size > 2 * OUT_KEEP:
            lock = InstanceLock(layout.lock, "record")
            lock.acquire(attempts=1, wait=0.0)
            try:
                with open(path, "rb") as f:
                    f.seek(-OUT_KEEP, os.SEEK_END)
                    tail = f.read()
                atomic_write(path, tail[tail.find(b"\n") + 1 :], durable=False)
            finally:
                lock.release()
    return open_private(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)


def _wait_recording(
    layout: Layout,
    proc: subprocess.Popen[bytes],
    timeout: float,
    accept_running: bool,
    out_start: int = 0,
    on_ready: Callable[[Spawned], None] | None = None,
    limit: float | None = None,
) -> Spawned:
    try:
        spawned = _wait_for(layout, proc, timeout, accept_running, out_start, limit)
        if on_ready is not None:
            on_ready(spawned)
        return spawned
    except SpawnError:
        raise  # it said what became of the recorder (stopped, or ended)
    except BaseException:  # interrupted: the recorder not left running for nobody
        _stop(proc)
        raise


def _wait_for(
    layout: Layout,
    proc: subprocess.Popen[bytes],
    timeout: float,
    accept_running: bool,
    out_start: int,
    limit: float | None = None,
) -> Spawned:
    began = time.monotonic()
    deadline = began + timeout
    waits: str | None = None  # what the recorder waits for, once it said so
    while time.monotonic() < deadline:
        if waits is None:
            waits = _waits_for(layout, proc, timeout)
            if waits is not None:  # as long as it does, then `timeout` to report
                deadline = max(deadline, time.monotonic() + TOOL_WAIT + timeout)
                if limit is not None:
                    deadline = min(deadline, began + max(limit, timeout))
        health = assess(layout)
        recording = (
            health.recording  # degraded only for its recovery state: it records
            and health.status is not None
            and health.status.state == RecorderState.RECORDING
        )
        code = proc.poll()
        if recording and health.pid == proc.pid:
            return Spawned(proc.pid, ours=True)
        if health.state == DEGRADED and health.pid == proc.pid and code is None:
            _stop(proc)
            raise SpawnError(f"the recorder was stopped: {health.reason}; see {layout.log}")
        if recording and health.pid is not None and code is not None and accept_running:
            return Spawned(health.pid, ours=False)
        if code is not None and not (accept_running and health.state == HEALTHY):
            # its own one-line error, said again here without its "persist: "
            tail = last_line(layout.recorder_out, out_start).removeprefix("persist: ")
            raise SpawnError(
                f"the recorder stopped ({how_it_ended(code)}): {tail or _no_output(layout)} "
                f"(see {layout.recorder_out})",
                code,
            )
        time.sleep(0.02)
    _stop(proc)
    within = f"{timeout:g}s"
    if waits:
        within = f"{time.monotonic() - began:.0f}s, waiting for {waits}"
    see = f"{layout.recorder_out} and {layout.log}" if layout.log.exists() else layout.recorder_out
    raise SpawnError(
        f"the recorder (PID {proc.pid}) did not report within {within}; it was stopped (see {see})"
    )


def _waits_for(layout: Layout, proc: subprocess.Popen[bytes], timeout: float) -> str | None:
    """What the recorder we started waits for (a `persist` command holding the folder),
    said once to whoever is told of waits (`lock.tell_waits`: stderr); None while it
    does not wait. Before 2026-12-07 the start gave up after `timeout` and stopped it."""
    waiting = read_waiting(layout)
    if waiting is None or waiting.pid != proc.pid:
        return None
    say = told_waits()
    if say is not None:
        say(
            f"the recorder (PID {proc.pid}) waits for {waiting.what()} to finish with "
            f"{layout.root} (up to {TOOL_WAIT:g}s), then starts"
        )
    return waiting.what()


def _no_output(layout: Layout) -> str:
    """What to say of a recorder that ended without a line in `recorder.out`: on a full
    disk that line could not be written (a start with no room for its journal)."""
    try:
        disk = os.statvfs(layout.root)
    except OSError:
        return "no output"
    free = disk.f_bavail * disk.f_frsize
    if free >= NO_ROOM:
        return "no output"
    return (
        f"no output: its disk has {free:,} bytes free, too few for its journal and "
        "recorder.out; free some room and start again"
    )


NO_ROOM = 64 * 1024  # bytes free under which a recorder's silent end is put down to them


def _stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Stop a recorder we started and will not use, and reap it: SIGTERM (it closes its
    journal cleanly), SIGKILL if it has not ended within `grace` seconds (frozen), so
    that none is left recording, or a zombie, once we say it failed."""
    with contextlib.suppress(OSError):
        proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            proc.kill()
        proc.wait()


def last_line(path: os.PathLike[str] | str, start: int = 0) -> str:
    """The last line of `path` written after byte `start` ("" if none)."""
    try:
        with open(path, "rb") as f:
            f.seek(start)
            lines = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""
