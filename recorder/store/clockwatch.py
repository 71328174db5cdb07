"""Whether the wall clock can be trusted for deleting by age: a step, seen against a
clock that does not step.

Retention deletes by the wall clock (a segment's last record, a trash entry's
creation). A wall clock stepped ahead for a moment (an RTC wrong at boot, then NTP)
would take today's segments and empty a trash entry made a minute ago, for good. A
process watches the difference between the wall clock and the boot clock
(CLOCK_BOOTTIME: it counts suspend, so a laptop's sleep is no step; CLOCK_MONOTONIC
where there is none) from its start: while the difference moved by more than
`STEP_TOLERANCE` from the last one it judged right, `held` says why deleting by age
waits. A difference that stays the same for `SETTLE` of the boot clock is taken as
the right one (NTP put a wrong clock right once for good), and one that goes back is
right again at once. Slewing (NTP's gradual correction, at most 0.5 ms a second) is
followed between looks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

STEP_TOLERANCE = 60.0  # seconds the wall clock may move against the boot clock
SETTLE = 3600.0  # seconds of the boot clock a new difference must hold to be taken
_BOOT_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def wall() -> float:
    """The wall clock (CLOCK_REALTIME, which a clock step moves)."""
    return time.clock_gettime(time.CLOCK_REALTIME)


def boot() -> float:
    """Seconds since boot, suspend included where the system counts it; never stepped."""
    return time.clock_gettime(_BOOT_CLOCK)


def boot_id() -> str:
    """This boot's id (Linux), "" where there is none: boot clock readings compare
    only within one boot."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


@dataclass
class ClockWatch:
    """The wall clock against the boot clock, from this process's start."""

    base: float  # wall - boot, as last judged right
    new: float | None = None  # a difference seen since that is not `base`
    new_since: float = 0.0  # boot clock when `new` was first seen

    @classmethod
    def start(cls) -> ClockWatch:
        return cls(wall() - boot())

    def held(self) -> str | None:
        """None when the wall clock agrees with the boot clock as it did (or has kept
        a new difference for `SETTLE`); else one line: how far it stepped and what
        deleting by age waits for."""
        now_boot = boot()
        diff = wall() - now_boot
        if abs(diff - self.base) <= STEP_TOLERANCE:
            self.base, self.new = diff, None  # follows a slew
            return None
        if self.new is None or abs(diff - self.new) > STEP_TOLERANCE:
            self.new, self.new_since = diff, now_boot
        elif now_boot - self.new_since >= SETTLE:
            self.base, self.new = diff, None
            return None
        step = diff - self.base
        return (
            f"the wall clock stepped {_span(step)} {'ahead' if step > 0 else 'back'} "
            f"{_span(now_boot - self.new_since)} ago (against the boot clock): nothing is "
            f"pruned or emptied until it goes back or has kept to it for "
            f"{_span(SETTLE)}"
        )


def _span(seconds: float) -> str:
    s = abs(seconds)
    if s >= 2 * 86400:
        return f"{s / 86400:.1f} days"
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 120:
        return f"{s / 60:.0f} min"
    return f"{s:.0f} s"


WATCH = ClockWatch.start()  # this process's, from its start (a recorder's: its own)
