"""Whether a recorded process is the same one still running (not gone, not a zombie,
not another process that took its PID since), judged on a clock that does not step.

On Linux a process's start is named by its *start key*: the boot it started in
(`/proc/sys/kernel/random/boot_id`) and its start in clock ticks since that boot
(field 22 of `/proc/<pid>/stat`). Neither moves when the wall clock is stepped
(NTP, `date -s`, a laptop resuming): psutil's `create_time()` is the boot time plus
those ticks, and the kernel's boot time (`btime` in `/proc/stat`) follows every step,
so a wall-clock start recorded before a step one second or more away no longer
matches, and a running recorder was judged gone.

Where `/proc` is not there (macOS, Windows) there is no key and the wall-clock start
psutil reports is compared within a second, as before (there it is the start stamp the
system recorded when the process began, which a later step does not move). Files
written before keys were recorded hold the wall-clock start only: they are compared
that way too, and a wall-clock step of a second or more since makes such a process
look gone (until it rewrites the file with a key).
"""

from __future__ import annotations

import functools
import os

PROC = "/proc"  # tests point this elsewhere to play a /proc that is not there


@functools.cache
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start ticks since boot) of `pid` from /proc, or None if it cannot
    be read (no /proc, no such process)."""
    if type(pid) is not int or pid <= 0:
        return None
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as f:
            raw = f.read()
    except (OSError, ValueError):
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()  # the name may hold spaces and ")"
    try:  # fields[0] is field 3 (state), so field 22 (starttime) is fields[19]
        return fields[0].decode("ascii", "replace"), int(fields[19])
    except (IndexError, ValueError):
        return None


def start_key(pid: int) -> str | None:
    """`<boot id>:<start ticks since boot>` of process `pid`, or None (gone, or no /proc)."""
    stat = _stat(pid)
    if stat is None:
        return None
    return f"{_boot_id()}:{stat[1]}"


def start_ticks(pid: int) -> int | None:
    """The start of `pid` in clock ticks since boot, or None (gone, or no /proc)."""
    stat = _stat(pid)
    return None if stat is None else stat[1]


def _same_start(recorded: str, now: str) -> bool:
    boot, _, ticks = recorded.rpartition(":")
    boot_now, _, ticks_now = now.rpartition(":")
    return ticks == ticks_now and (boot == boot_now or not boot or not boot_now)


def wall_start(pid: int) -> float | None:
    """When process `pid` started, in seconds since the epoch as psutil tells it now
    (on Linux it moves with every wall-clock step), or None if it is gone."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, ValueError, OverflowError):
        return None


def same_process(pid: int, started: float | None, key: str | None = None) -> bool:
    """True if `pid` runs (not a zombie) and is the process recorded with start `key`
    (from `start_key`) or, without a key, wall-clock start `started` (from `wall_start`,
    within a second); with neither, any live process with that PID."""
    if type(pid) is not int or pid <= 0:
        return False
    stat = _stat(pid)
    if stat is not None:
        if stat[0] in ("Z", "X", "x"):  # ended, not yet reaped
            return False
        if key:
            return _same_start(key, f"{_boot_id()}:{stat[1]}")
    elif key and os.path.isdir(f"{PROC}/self"):
        return False  # /proc is there and has no such process
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        created = proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError, OverflowError):
        return False
    return started is None or abs(created - float(started)) < 1.0
