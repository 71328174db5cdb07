"""Shared by the command groups: the one-line failure, exit codes, the progress bar."""

from __future__ import annotations

import sys
import time

EXIT_STOPPED = 3  # like `systemctl status` for a unit that is not running


def fail(message: str, code: int = 1) -> int:
    print(f"persist: {message}", file=sys.stderr)
    return code


def progress_bar(label: str) -> object:
    state = {"last": 0.0}

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - state["last"] < 0.1:
            return
        state["last"] = now
        frac = done / total if total else 1.0
        bar = "#" * int(frac * 30)
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\r{label} [{bar:<30}] {frac:4.0%} {done:,}/{total:,} records{end}")
        sys.stderr.flush()

    return show

