"""The terminal driver: Textual's, sized from the terminal the UI draws on.

Textual asks `shutil.get_terminal_size()`, which looks at stdout only. The picker
and the launch menu run with stdout piped to the launcher (it carries the
`--print` result), so that call falls back to 80x24 whatever the real terminal
is. The UI draws on stderr and reads stdin: ask those first.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from textual.driver import Driver


def terminal_size(fallback: tuple[int, int]) -> tuple[int, int]:
    """Columns and lines of the first of stderr, stdin, stdout that is a terminal."""
    for fd in (2, 0, 1):
        try:
            size = os.get_terminal_size(fd)
        except (OSError, ValueError):
            continue
        if size.columns > 0 and size.lines > 0:
            return size.columns, size.lines
    return fallback


def sized_driver(base: type[Driver]) -> type[Driver]:
    """`base` (Linux or Windows driver) measuring the terminal with `terminal_size`."""
    measure = getattr(base, "_get_terminal_size", None)
    if measure is None:
        return base
    textual_size: Callable[[Driver], tuple[int, int]] = measure

    class SizedDriver(base):  # type: ignore[valid-type,misc]
        def _get_terminal_size(self) -> tuple[int, int]:
            return terminal_size(textual_size(self))

    SizedDriver.__name__ = f"Sized{base.__name__}"
    return SizedDriver
