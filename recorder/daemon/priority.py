"""Background work (search indexer, session monitor, line-index warming) at idle priority.

Idle priority means the work runs only when the CPU and the disk have nothing better to
do, so it never slows recording or the user's own programs. On a machine whose cores
are never idle (a CI runner with every core busy, a build farm) such work would never
run: `$PERSIST_BACKGROUND_PRIORITY=normal` keeps it at the default priority instead.

Nice values alone do not do it where Linux groups processes by session (autogroup, on
by default on desktop distributions): the CPU is shared between sessions first, and a
thread or child at idle priority in the recorder's session gets that session's fair
share against the user's. So the helper processes start in a session of their own and
lower its weight (`lower_process_priority`), and the recorder's own background thread,
which cannot leave the recorder's session, waits while other processes leave no core
idle (`OtherWork`). The search indexer waits so too (`Deferral`): idle priority still
gives a process every moment a core is free, and a flood's pipeline (publisher,
broker, recorder) leaves so many that the indexer took half a core of two from it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from recorder.errors import BadOption

ENV = "PERSIST_BACKGROUND_PRIORITY"
CHOICES = ("idle", "normal")


def background_priority() -> str:
    """`idle` (the default) or `normal`; a value that is neither raises BadOption (one
    line, exit 2, from every command that reads it)."""
    value = os.environ.get(ENV, "").strip() or "idle"
    if value not in CHOICES:
        raise BadOption(f"${ENV} must be idle or normal (got {value!r})")
    return value


def _idle() -> bool:
    """Whether background work runs at idle priority. A bad value raises (BadOption):
    `persist record` refuses it at its start, so its children and threads never see
    one, and `persist reindex --follow` and `persist monitor --parent`, which can be run
    by hand, refuse it as record does (before 2026-12-07 they took it for `idle`)."""
    return background_priority() == "idle"


def lower_process_priority() -> None:
    """This whole process at idle CPU and I/O priority (unless `normal` is asked)."""
    if not _idle():
        return
    _lower(0)
    _lower_own_session()


def lower_child_priority(pid: int) -> None:
    """A helper just started, at idle CPU and I/O priority from its first moment: it
    lowers itself only once its interpreter has started and parsed its options (0.06-
    0.13 s of a core here), and a recorder restarted into a flood (a broker that
    queued for it) should not share the CPU with that either."""
    if _idle():
        _lower(pid)


def _lower(pid: int) -> None:
    """Process `pid` (0: this one) at idle CPU and I/O priority: on Linux these are
    its main thread's, which the threads it starts later inherit."""
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, 19)
    with contextlib.suppress(Exception):
        psutil.Process(pid or None).ionice(psutil.IOPRIO_CLASS_IDLE)


AUTOGROUP = Path("/proc/self/autogroup")  # Linux: this session's CPU weight ("nice")


def _lower_own_session() -> None:
    """The autogroup of this process's session at the lowest weight, when the session
    is its own (a helper started with `start_new_session`): never the session of the
    terminal that ran it by hand. Linux lets a session lower its weight at most every
    0.1 s machine-wide (EAGAIN), so a busy moment is tried again a few times."""
    if os.getsid(0) != os.getpid():
        return
    for _ in range(10):
        try:
            AUTOGROUP.write_text("19")
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                return  # no autogroup here (other kernels, containers): nothing to lower
            time.sleep(0.1)
            continue
        return


def lower_thread_priority() -> None:
    """The calling thread at the lowest CPU priority (Linux: priority is per thread)."""
    if not _idle():
        return
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


IDLE_CORE = 0.75  # of a core: what other processes must leave idle for background work
MIN_LOOK = 0.2  # seconds between two looks for a measure (a quicker look repeats the last)


def cpu_seconds() -> tuple[float, float]:
    """(CPU seconds every core has been busy since boot, CPU seconds of this process)."""
    t = psutil.cpu_times()
    busy = sum(getattr(t, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq", "steal"))
    own = os.times()
    return busy, own.user + own.system


class OtherWork:
    """Whether other processes keep the machine's cores busy: measured between two
    looks, as the CPU time of the whole machine less this process's own, so the
    background thread's own work never counts against it. The first look, with
    nothing to compare, says busy (the caller looks again a moment later).

    With `window`, so does a look more than `window` s after the one before: a caller
    that slept between them (the search indexer between rounds) would measure mostly
    the quiet it slept through, and start work just as a flood begins."""

    def __init__(
        self,
        read: Callable[[], tuple[float, float]] = cpu_seconds,
        clock: Callable[[], float] = time.monotonic,
        cores: int | None = None,
        window: float | None = None,
    ) -> None:
        self._read = read
        self._clock = clock
        self._cores = cores or os.cpu_count() or 1
        self._window = window
        self._last: tuple[float, float, float] | None = None
        self._busy = True

    def busy(self) -> bool:
        now = self._clock()
        if self._last is not None and now - self._last[0] < MIN_LOOK:
            return self._busy
        busy, own = self._read()
        if self._last is None or (self._window is not None and now - self._last[0] > self._window):
            self._busy = True  # nothing recent to compare with: look again a moment later
        else:
            then, busy_then, own_then = self._last
            others = ((busy - busy_then) - (own - own_then)) / (now - then)
            self._busy = others > self._cores - IDLE_CORE
        self._last = (now, busy, own)
        return self._busy


BUSY_POLL = 0.5  # seconds between looks at `busy()` while background work waits for quiet
MAX_DEFER = 120.0  # seconds it waits for quiet at most, then goes on regardless


class Deferral:
    """Whether background work should wait now: while `busy()` says so, but for
    `most` s at most from the moment it first waited, so work that never finds quiet
    still gets done; `done()` (the work is level) starts the next wait's count."""

    def __init__(
        self,
        busy: Callable[[], bool],
        *,
        most: float = MAX_DEFER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.busy = busy
        self.most = most
        self.clock = clock
        self._since: float | None = None  # when the current wait began

    def should_wait(self) -> bool:
        if not self.busy():
            return False
        now = self.clock()
        if self._since is None:
            self._since = now
        return now - self._since < self.most

    def done(self) -> None:
        self._since = None


def other_work_gate(window: float | None = None) -> Callable[[], bool]:
    """What background work waits on: `OtherWork(window=window).busy` at idle priority,
    nothing with `$PERSIST_BACKGROUND_PRIORITY=normal`."""
    return OtherWork(window=window).busy if _idle() else lambda: False
