"""Imported by every Python process that has this folder on its PYTHONPATH (tests only):
its wall clock (`time.time`) is shifted by the seconds written in the file named by
$PERSIST_TEST_CLOCK_SHIFT, read again at most every 50 ms. The monotonic clock, the
kernel's file times and process start times are untouched, as when the system clock is
stepped: tests step a real recorder's clock without changing this machine's."""

from __future__ import annotations

import os
import time

_path = os.environ.get("PERSIST_TEST_CLOCK_SHIFT")
if _path:
    _real_time = time.time
    _monotonic = time.monotonic
    _cache = [0.0, -1.0]  # the shift, and when it was read (monotonic)

    def _shifted_time() -> float:
        now = _monotonic()
        if now - _cache[1] > 0.05:
            try:
                with open(_path, encoding="ascii") as f:
                    _cache[0] = float(f.read().strip() or 0)
            except (OSError, ValueError):
                pass
            _cache[1] = now
        return _real_time() + _cache[0]

    time.time = _shifted_time
