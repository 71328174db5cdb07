"""Shared by the command groups: the one-line failure, exit codes, the progress bar."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from recorder.store.layout import default_log_dir

EXIT_STOPPED = 3  # like `systemctl status` for a unit that is not running
EXIT_DAMAGE = 5  # export/restore wrote their output, but the journal is damaged in range


def say(message: str) -> None:
    """One line for the person at the terminal, on stderr."""
    print(f"persist: {message}", file=sys.stderr)


def fail(message: str, code: int = 1) -> int:
    """Say what went wrong; returns the exit code to use."""
    say(message)
    return code


def progress_bar(label: str) -> Callable[[int, int], None]:
    """A progress callback (records done, records in all) drawing a bar on stderr."""
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


def add_log_dir(parser: argparse.ArgumentParser) -> None:
    """`--log-dir`, defaulting to `$PERSIST_LOG_DIR` or the XDG data folder."""
    parser.add_argument(
        "--log-dir", default=str(default_log_dir()), help="log folder (default: %(default)s)"
    )
