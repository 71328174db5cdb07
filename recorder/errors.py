"""One base for every error agent-persist reports to a person.

A `PersistError`'s message is the one line the CLI prints (`persist: <message>`),
so it names the problem and, where there is one, what to do about it. Each
package raises its own subclass; the CLI catches the base.
"""

from __future__ import annotations

import signal


class PersistError(Exception):
    """A domain error: its message is meant for the person at the terminal."""


class StdoutFailed(OSError):
    """A write to stdout failed, not for a reader gone (a full disk, /dev/full): the CLI
    says "cannot write stdout: ..." (a handler of OSError lets it through)."""


class BundleNotWritten(OSError):
    """The restore bundle a launch hands over could not be written (the OSError's
    errno, strerror and filename): `persist launch` says it as `persist restore` does."""

    @classmethod
    def of(cls, exc: OSError) -> BundleNotWritten:
        out = cls(*exc.args)
        out.filename = exc.filename
        return out


class CheckpointError(PersistError):
    """A checkpoint cannot be found, resolved or taken."""


class LaunchError(PersistError):
    """The recorder could not be started (the message says why and what to do)."""


class BusError(PersistError):
    """A broker endpoint cannot be bound or connected to."""


class BadOption(PersistError, ValueError):
    """An option or argument is invalid; the message names it (the CLI exits 2)."""


# why a handshake failed where what answers is no ZeroMQ peer (`refused_by`)
NOT_ZMTP = (
    "what answers there does not speak ZMTP 3, the protocol of ZeroMQ 4 (another service "
    "on that port?)"
)


# why a handshake failed with no detail where what listens sent no greeting at all
# within the probe's second: no ZeroMQ peer does that (it greets at once), but a frozen
# one does, and so does a service that waits for a request (a web server)
SILENT_PEER = (
    "no ZeroMQ greeting came from it within a second of connecting (a frozen broker, or "
    "a service that is not ZeroMQ and waits for a request, a web server say?)"
)


def refused_by(where: str, why: str) -> str:
    """A broker that refused our handshake, as every place says it (`persist send` and
    `replay`, and for a recorder `persist status`, `doctor` and recorder.log): `why` is
    the handshake's failure (`recorder.bus.publisher.REFUSALS`), or `NOT_ZMTP` when what
    answers is no ZeroMQ broker at all (named as such: neither CURVE nor keys can help)."""
    if why == NOT_ZMTP:
        return f"{where} is not a ZeroMQ broker: {why}"
    if why == SILENT_PEER:  # neither CURVE nor keys can help there either
        return f"the handshake with {where} failed: {why}"
    return (
        f"the broker at {where} refused us: {why} (--curve/--no-curve and --keys must "
        "match the broker's; a key of another machine must be allowed there: persist keys allow)"
    )


def how_it_ended(code: int | None) -> str:
    """A child process's end as a person reads it: `exit code 3`, or `killed by
    SIGKILL` (what the kernel's out-of-memory killer sends) for a negative code."""
    if code is None:
        return "exit code unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
