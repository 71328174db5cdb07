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


UNSHOWN = "persist.unshown"  # the error handler `show_everything_on_stdout` gives stdout


def _unshown(exc: UnicodeError) -> tuple[str | bytes, int]:
    """For a character stdout's encoding cannot write: a byte of a file's name that was
    not UTF-8 (a lone surrogate U+DC80-U+DCFF) as that byte, as `ls` writes it; any
    other as its backslash escape (`\\u2192`), as Python's stderr writes it. Each run of
    one kind at a time: the encoder calls again for the rest."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    text, start = exc.object, exc.start
    name_byte = "\udc80" <= text[start] <= "\udcff"
    end = start + 1
    while end < exc.end and ("\udc80" <= text[end] <= "\udcff") == name_byte:
        end += 1
    if name_byte:
        return bytes(ord(ch) - 0xDC00 for ch in text[start:end]), end
    return text[start:end].encode("ascii", "backslashreplace").decode("ascii"), end


def show_everything_on_stdout() -> None:
    """No character ends a command in a UnicodeEncodeError: stdout writes what its
    encoding cannot (a non-UTF-8 locale's stdout and a "→", a UTF-8 one's and a folder
    named `caf\\xe9`) as `_unshown` does. Not for a stdout given other errors on
    purpose (PYTHONIOENCODING=...:replace). For the programs (`persist`,
    `persist-tui`), not for a caller of `main(argv)`."""
    import codecs

    try:
        codecs.lookup_error(UNSHOWN)
    except LookupError:
        codecs.register_error(UNSHOWN, _unshown)
    errors = getattr(sys.stdout, "errors", None)
    if errors in ("strict", "surrogateescape") and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors=UNSHOWN)


def stdout_is_utf8() -> bool:
    """Whether stdout writes UTF-8 (else JSON printed there is kept to ASCII)."""
    import codecs

    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False
