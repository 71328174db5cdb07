"""Who else uses the broker a recorder hosts, seen from its TCP connections.

A recorder started by a launcher with the embedded broker (`--embedded yes`, or auto
when nothing answered) is the bus for everything on it: another folder's recorder
that follows that broker records nothing once it stops. The last agent out of its
own folder therefore asks first who else is subscribed at its subscriber side
(XPUB): the processes with an established TCP connection to that port, found with
psutil (`/proc/net/tcp` and the processes' descriptors; a process of another user
is counted but cannot be named). `ipc://` endpoints are not looked into (a Unix
socket's peer is not known from `/proc`): their recorder is stopped as before.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from recorder.store.status import StatusSnapshot


@dataclass(frozen=True)
class Peer:
    """A process subscribed at a broker: its PID (None: another user's, or another
    machine's) and, for a recorder, the log folder it records into."""

    pid: int | None
    log_dir: Path | None = None
    address: str = ""  # where it connects from, for one that cannot be named

    def __str__(self) -> str:
        if self.log_dir is not None:
            return f"the recorder of {self.log_dir} (PID {self.pid})"
        if self.pid is not None:
            return f"PID {self.pid}"
        return f"a process at {self.address}" if self.address else "a process"


def _address(addr: Any) -> tuple[str, int] | None:
    """psutil's address (a named tuple, or () when there is none) as (ip, port)."""
    return (str(addr.ip), int(addr.port)) if addr else None


def tcp_port(endpoint: str | None) -> int | None:
    """The port of a `tcp://host:port` endpoint, else None (ipc://, inproc://, none)."""
    if not endpoint or not endpoint.startswith("tcp://"):
        return None
    try:
        return urlsplit(endpoint).port
    except ValueError:
        return None


def recorder_folder(pid: int) -> Path | None:
    """The log folder a `persist record` process records into, from its command line
    (`recorder_argv` always names it); None for any other process."""
    import psutil

    try:
        argv = psutil.Process(pid).cmdline()
    except (psutil.Error, OSError):
        return None
    if "record" not in argv or "--log-dir" not in argv[:-1]:
        return None
    return Path(argv[argv.index("--log-dir") + 1])


def subscribers(endpoint: str | None, host_pid: int) -> list[Peer]:
    """The processes other than `host_pid` connected to the broker `host_pid` hosts at
    `endpoint` (its subscriber side); [] for an endpoint that is not TCP, or when the
    connections cannot be read."""
    import psutil

    port = tcp_port(endpoint)
    if port is None:
        return []
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return []
    # (local, remote, pid) of each established connection, addresses as (ip, port)
    ends: list[tuple[tuple[str, int], tuple[str, int], int | None]] = []
    for conn in conns:
        local, remote = _address(conn.laddr), _address(conn.raddr)
        if conn.status == psutil.CONN_ESTABLISHED and local and remote:
            ends.append((local, remote, conn.pid))
    # the client end of each connection to the port, by its address: whose process it is
    clients = {local: pid for local, remote, pid in ends if remote[1] == port}
    peers = []
    for local, remote, pid in ends:  # accepted by the broker: its local end is the port
        if local[1] != port or pid not in (host_pid, None):
            continue
        if remote not in clients:  # another machine's
            peers.append(Peer(None, address=f"{remote[0]}:{remote[1]}"))
            continue
        client = clients[remote]
        if client == host_pid:  # the recorder's own subscription to its broker
            continue
        folder = recorder_folder(client) if client is not None else None
        peers.append(Peer(client, folder))
    return peers


def listener(endpoint: str | None) -> int | None:
    """The PID of the process listening at a `tcp://` endpoint (a broker), or None."""
    import psutil

    port = tcp_port(endpoint)
    if port is None:
        return None
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            local = _address(conn.laddr)
            if conn.status == psutil.CONN_LISTEN and conn.pid and local and local[1] == port:
                return conn.pid
    return None


def hosted_broker_users(status: StatusSnapshot | None, recorder_pid: int) -> list[Peer]:
    """Who else is subscribed at the broker the recorder `recorder_pid` hosts (other
    folders' recorders following it, say): stopping that recorder would end their
    recording without a word. [] when it hosts none, or `status` is another's."""
    if status is None or not status.embedded_broker or status.pid != recorder_pid:
        return []
    return subscribers(status.broker, recorder_pid)
