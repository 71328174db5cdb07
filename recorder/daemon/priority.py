"""Background work (search indexer, session monitor, line-index warming) at idle priority.

Idle priority means the work runs only when the CPU and the disk have nothing better to
do, so it never slows recording or the user's own programs. On a machine whose cores
are never idle (a CI runner with every core busy, a build farm) such work would never
run: `$PERSIST_BACKGROUND_PRIORITY=normal` keeps it at the default priority instead.
"""

from __future__ import annotations

import contextlib
import os
import threading

ENV = "PERSIST_BACKGROUND_PRIORITY"
CHOICES = ("idle", "normal")


def background_priority() -> str:
    """`idle` (the default) or `normal`; a value that is neither raises ValueError."""
    value = os.environ.get(ENV, "").strip() or "idle"
    if value not in CHOICES:
        raise ValueError(f"${ENV} must be idle or normal (got {value!r})")
    return value


def _idle() -> bool:
    try:
        return background_priority() == "idle"
    except ValueError:  # `persist record` refuses it at start; a child keeps the default
        return True


def lower_process_priority() -> None:
    """This whole process at idle CPU and I/O priority (unless `normal` is asked)."""
    if not _idle():
        return
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    with contextlib.suppress(OSError):
        os.nice(19)
    with contextlib.suppress(Exception):
        import psutil

        psutil.Process().ionice(psutil.IOPRIO_CLASS_IDLE)


def lower_thread_priority() -> None:
    """The calling thread at the lowest CPU priority (Linux: priority is per thread)."""
    if not _idle():
        return
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
