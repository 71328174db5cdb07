"""The standard streams as a command finds them: closed ones made safe to use (no
third-party imports: the agents' hooks run through here on every turn)."""

from __future__ import annotations

import errno
import io
import os
import sys


class _ClosedStdout(io.StringIO):
    """Stands for a stdout that was closed when the command started (`persist status
    >&-`): writing to it is writing to a closed pipe (one line, exit 1), and a command
    that prints nothing runs as usual."""

    @property
    def buffer(self) -> _ClosedBytes:
        return _ClosedBytes()

    def write(self, _text: str) -> int:
        raise BrokenPipeError(errno.EPIPE, "stdout is closed")

    def fileno(self) -> int:
        return 1


class _ClosedBytes(io.BytesIO):
    def write(self, _data: object) -> int:
        raise BrokenPipeError(errno.EPIPE, "stdout is closed")

    def fileno(self) -> int:
        return 1


def guard_closed_streams() -> None:
    """Standard descriptors closed by the caller are opened on /dev/null, so that no
    file we open takes their number (a child's output would land in it), and a closed
    stdout reads as a broken pipe."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != fd:  # the lowest free number: only when a lower one is open
                os.dup2(opened, fd)
                os.close(opened)
    if sys.stdin is None:
        sys.stdin = open(os.devnull)  # noqa: SIM115 - for the process's life: nothing to read
    if sys.stdout is None:
        sys.stdout = _ClosedStdout()
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the process's life
