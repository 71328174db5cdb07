"""Who else uses the broker a recorder hosts, and stopping a host nobody uses any more.

A recorder started by a launcher with the embedded broker (`--embedded yes`, or auto
when nothing answered) is the bus for everything on it: another folder's recorder
that follows that broker records nothing once it stops. The last agent out of its
own folder therefore asks first who else is subscribed at its subscriber side
(XPUB): the processes connected to it. For `tcp://` that is an established TCP
connection to the port, found with psutil (`/proc/net/tcp` and the processes'
descriptors); for `ipc://` a Unix socket connected to the socket file (or abstract
name), found with the kernel's sock_diag netlink query (each socket's name and peer:
`/proc/net/unix` names no peer) and the processes' descriptors. A process of another
user is counted but cannot be named. Before 2026-12-07 ipc endpoints were not looked
into: their recorder was stopped under its followers. Only a recorder, or a process
that cannot be named (it may be one), keeps the host running (`Peer.keeps_host`): any
other subscriber (a dashboard, a user's zmq SUB) hears nothing more once it stops, and
before 2026-12-08 kept it running for good.

The host left running for its followers is stopped by the last of them to go
(`stop_unused_host`: a launcher's exit or a `SessionEnd` hook, its own recorder
stopped, or found dead), when nothing else wants it either.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from recorder.store.status import StatusSnapshot


@dataclass(frozen=True)
class Peer:
    """A process subscribed at a broker: its PID (None: another user's, or another
    machine's), whether it is a recorder (`persist record`), and the log folder it
    records into when that can be told (its environment unreadable, it cannot)."""

    pid: int | None
    log_dir: Path | None = None
    address: str = ""  # where it connects from, for one that cannot be named
    recorder: bool = False

    @property
    def keeps_host(self) -> bool:
        """Whether the host is left running for this subscriber: a recorder (of another
        folder, known or not) records what comes over the bus, and one that cannot be
        named may be one. Any other process (a dashboard, a user's zmq SUB) is not:
        nothing is recorded for it, and no agent's exit would ever stop the host for it
        (before 2026-12-08 it kept the host running for good)."""
        return self.recorder or self.pid is None

    def stopped_by_its_agents(self) -> bool:
        """Whether the last agent out of this follower's folder stops it, and then the
        host (`stop_unused_host`): a recorder a launcher or a start hook started for
        agents (`agents/owner.json` names it) that no systemd unit keeps running. Not
        so a `persist record` of the user's, nor a process that cannot be named."""
        from recorder.daemon.systemd import recording_unit
        from recorder.launch.registry import recorder_owner
        from recorder.store.layout import Layout

        if self.log_dir is None or self.pid is None:
            return False
        try:
            owner = recorder_owner(Layout(self.log_dir))
        except OSError:
            return False
        if owner is None or owner.get("recorder_pid") != self.pid:
            return False
        return recording_unit(self.log_dir.resolve()) is None

    def __str__(self) -> str:
        if self.log_dir is not None:
            return f"the recorder of {self.log_dir} (PID {self.pid})"
        if self.recorder:
            return f"the recorder PID {self.pid} (its folder unknown)"
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


_PERSIST_MODULES = ("recorder.cli", "recorder.cli.main")  # `python -m` of the CLI
_PYTHON_OPTIONS_WITH_VALUE = ("-W", "-X", "--check-hash-based-pycs")


def record_options(argv: list[str]) -> list[str] | None:
    """The words after `record` of a `persist record` command line: the `persist` entry
    script (run by its interpreter, or by itself) or `python -m recorder.cli record`;
    None for any other command line."""
    rest: list[str] | None = None
    if argv and os.path.basename(argv[0]) == "persist":
        rest = argv[1:]
    elif argv and os.path.basename(argv[0]).startswith("python"):
        at = 1
        while at < len(argv) and argv[at].startswith("-"):  # the interpreter's options
            word = argv[at]
            if word == "-m":
                word = "-m" + (argv[at + 1] if at + 1 < len(argv) else "")
                at += 1
            if word.startswith("-c"):  # a program given on the command line
                break
            if word.startswith("-m"):
                rest = argv[at + 1 :] if word[2:] in _PERSIST_MODULES else None
                break
            at += 2 if word in _PYTHON_OPTIONS_WITH_VALUE else 1
        else:
            if at < len(argv) and os.path.basename(argv[at]) == "persist":
                rest = argv[at + 1 :]
    if not rest or rest[0] != "record":
        return None
    return rest[1:]


def recorder_of(pid: int) -> Peer:
    """The process `pid` as a `Peer`: a recorder when it runs `persist record`, with the
    folder it records into: its `--log-dir` (`--log-dir X`, `--log-dir=X`, or an
    abbreviation argparse takes), else its environment's `$PERSIST_LOG_DIR`, else its
    XDG data folder's default, a relative one taken from its working folder. A folder
    that cannot be told (its environment or working folder unreadable) leaves it a
    recorder of an unknown folder. Before 2026-12-08 only a `--log-dir X` in two words
    was read: a `persist record` of the default folder, `$PERSIST_LOG_DIR` or
    `--log-dir=X` was taken for a plain subscriber, and its broker stopped under it."""
    import psutil

    try:
        process = psutil.Process(pid)
        options = record_options(process.cmdline())
    except (psutil.Error, OSError):
        return Peer(pid)
    if options is None:
        return Peer(pid)
    try:
        return Peer(pid, _record_folder(process, options), recorder=True)
    except (psutil.Error, OSError):
        return Peer(pid, recorder=True)


def _record_folder(process: Any, options: list[str]) -> Path:
    """The folder of a `persist record` with these options (see `recorder_of`); raises
    psutil.Error or OSError when its environment or working folder cannot be read."""
    given: str | None = None
    for at, word in enumerate(options):  # the last one given wins, as with argparse
        name, eq, value = word.partition("=")
        if len(name) >= 3 and "--log-dir".startswith(name):
            if eq:
                given = value
            elif at + 1 < len(options):
                given = options[at + 1]
    if given is None:  # `default_log_dir()` in the recorder's own environment
        env = process.environ()
        home = env.get("HOME") or _home_of(process)
        if env.get("PERSIST_LOG_DIR"):
            given = env["PERSIST_LOG_DIR"]
            if given == "~" or given.startswith("~/"):
                given = home + given[1:]
        else:
            data = env.get("XDG_DATA_HOME", "")
            base = data if os.path.isabs(data) else os.path.join(home, ".local/share")
            given = os.path.join(base, "agent-persist", "conversation_logs")
    path = Path(given)
    return path if path.is_absolute() else Path(process.cwd()) / path


def _home_of(process: Any) -> str:
    """The home folder of a process's user, for one whose environment has no $HOME."""
    import pwd

    return pwd.getpwuid(process.uids().real).pw_dir


def subscribers(endpoint: str | None, host_pid: int) -> list[Peer]:
    """The processes other than `host_pid` connected to the broker `host_pid` hosts at
    `endpoint` (its subscriber side); [] for an endpoint that is neither tcp:// nor
    ipc://, or when the connections cannot be read."""
    if endpoint and endpoint.startswith("ipc://"):
        return _ipc_subscribers(endpoint, host_pid)
    return _tcp_subscribers(endpoint, host_pid)


def _tcp_subscribers(endpoint: str | None, host_pid: int) -> list[Peer]:
    port = tcp_port(endpoint)
    if port is None:
        return []
    peers = _tcp_peers(port, host_pid)
    if any(p.pid is None for p in peers):
        # a client end no process holds, or none seen: another user's process, another
        # machine's, or one that has just ended (a recorder stopped or killed a moment
        # ago), its socket not yet torn down; asked again a moment later, that last one is
        # gone (before 2026-12-08 it kept the host running for good, in CI at -n 3)
        time.sleep(_UNNAMED_AGAIN)
        peers = _tcp_peers(port, host_pid)
    return peers


_UNNAMED_AGAIN = 0.3  # seconds before a client end no process holds is looked at again


def _tcp_peers(port: int, host_pid: int) -> list[Peer]:
    import psutil

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
        peers.append(recorder_of(client) if client is not None else Peer(None))
    return peers


# sock_diag (linux/sock_diag.h, linux/unix_diag.h)
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_DUMP_REQUEST = 0x301  # NLM_F_REQUEST | NLM_F_DUMP
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_UDIAG_SHOW_NAME, _UDIAG_SHOW_VFS, _UDIAG_SHOW_PEER = 1, 2, 4
_UNIX_DIAG_NAME, _UNIX_DIAG_VFS, _UNIX_DIAG_PEER, _UNIX_DIAG_SHUTDOWN = 0, 1, 2, 6
_ESTABLISHED, _LISTEN = 1, 10  # a Unix socket's state, in TCP's numbers


@dataclass(frozen=True)
class _UnixSocket:
    """One stream Unix socket as sock_diag gives it: `name` is the address it is bound
    to (an accepted socket shares its listener's), `peer` the inode of the socket at the
    other end, `vfs_inode` the socket file's inode, `shutdown` set once either end
    closed."""

    inode: int
    state: int
    stream: bool  # libzmq's ipc:// is SOCK_STREAM
    name: bytes = b""
    vfs_inode: int | None = None
    peer: int | None = None
    shutdown: int = 0


def _unix_sockets() -> list[_UnixSocket]:
    """Every Unix socket of this network namespace (sock_diag)."""
    import socket
    import struct

    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(2.0)  # (the kernel answers at once: never a wait without end)
        show = _UDIAG_SHOW_NAME | _UDIAG_SHOW_VFS | _UDIAG_SHOW_PEER
        # unix_diag_req: family, protocol, pad, states (all), inode, show, cookie
        req = struct.pack("=BBHIII8x", socket.AF_UNIX, 0, 0, 0xFFFFFFFF, 0, show)
        nl.sendto(
            struct.pack("=IHHII", 16 + len(req), _SOCK_DIAG_BY_FAMILY, _NLM_F_DUMP_REQUEST, 1, 0)
            + req,
            (0, 0),
        )
        found: list[_UnixSocket] = []
        while True:
            data = nl.recv(1 << 16)
            at = 0
            while at + 16 <= len(data):
                size, kind = struct.unpack_from("=IH", data, at)
                if kind == _NLMSG_DONE or size < 16:
                    return found
                if kind == _NLMSG_ERROR:
                    errno = -struct.unpack_from("=i", data, at + 16)[0]
                    raise OSError(errno, os.strerror(errno))
                found.append(_unix_socket(data[at + 16 : at + size]))
                at += (size + 3) & ~3
            if not data:
                return found


def _unix_socket(msg: bytes) -> _UnixSocket:
    """One unix_diag_msg and its attributes."""
    import socket
    import struct

    socket_type, state, inode = struct.unpack_from("=xBBxI", msg)
    fields: dict[str, Any] = {}
    at = 16  # after the message: family, type, state, pad, inode, cookie
    while at + 4 <= len(msg):
        size, kind = struct.unpack_from("=HH", msg, at)
        if size < 4:
            break
        value = msg[at + 4 : at + size]
        if kind == _UNIX_DIAG_NAME:
            # a file's path as bound (libzmq's ends with its NUL), or \0 and an abstract name
            fields["name"] = value if value[:1] == b"\0" else value.split(b"\0", 1)[0]
        elif kind == _UNIX_DIAG_VFS and len(value) >= 4:
            fields["vfs_inode"] = struct.unpack_from("=I", value)[0]
        elif kind == _UNIX_DIAG_PEER and len(value) >= 4:
            fields["peer"] = struct.unpack_from("=I", value)[0] or None
        elif kind == _UNIX_DIAG_SHUTDOWN and value:
            fields["shutdown"] = value[0]
        at += (size + 3) & ~3
    return _UnixSocket(inode, state, stream=socket_type == socket.SOCK_STREAM, **fields)


def _bound_at(endpoint: str) -> Callable[[_UnixSocket], bool]:
    """Whether a Unix socket is bound at an `ipc://` endpoint: its abstract name
    (`ipc://@name`), or its socket file, by inode when the file is there (the path it
    was bound under may be spelled otherwise: relative, through a symlink), else by
    path."""
    path = endpoint[len("ipc://") :]
    if path.startswith("@"):
        abstract = b"\0" + os.fsencode(path[1:])
        return lambda sock: sock.name == abstract
    wanted = os.fsencode(path)
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return lambda sock: sock.name == wanted
    base = os.path.basename(wanted)
    return lambda sock: (
        (sock.vfs_inode == st.st_ino and os.path.basename(sock.name) == base) or sock.name == wanted
    )


def _socket_owners(inodes: set[int]) -> dict[int, int]:
    """The process holding each of these socket inodes open (from /proc/PID/fd; a
    process whose descriptors cannot be read, another user's, is not found)."""
    owners: dict[int, int] = {}
    links = {f"socket:[{inode}]": inode for inode in inodes}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry.name}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                inode = links.get(os.readlink(f"/proc/{entry.name}/fd/{fd}"))
            except OSError:
                continue
            if inode is not None:
                owners.setdefault(inode, int(entry.name))
        if len(owners) == len(links):
            break
    return owners


def _ipc_subscribers(endpoint: str, host_pid: int) -> list[Peer]:
    """`subscribers` of an `ipc://` endpoint: the sockets the broker accepted there
    (bound at it, connected, neither end closed), and whose process holds their peer."""
    try:
        sockets = _unix_sockets()
    except OSError:
        return []
    at = _bound_at(endpoint)
    accepted = [
        s
        for s in sockets
        if s.stream and s.state == _ESTABLISHED and s.peer and not s.shutdown and at(s)
    ]
    owners = _socket_owners({s.inode for s in accepted} | {s.peer for s in accepted if s.peer})
    peers = []
    for sock in accepted:
        if owners.get(sock.inode) not in (host_pid, None):  # another broker's (not ours)
            continue
        client = owners.get(sock.peer) if sock.peer is not None else None
        if client == host_pid:  # the recorder's own subscription to its broker
            continue
        peers.append(recorder_of(client) if client is not None else Peer(None))
    return peers


def listener(endpoint: str | None) -> int | None:
    """The PID of the process listening at a `tcp://` or `ipc://` endpoint (a broker),
    or None."""
    if endpoint and endpoint.startswith("ipc://"):
        try:
            sockets = _unix_sockets()
        except OSError:
            return None
        at = _bound_at(endpoint)
        listening = {s.inode for s in sockets if s.stream and s.state == _LISTEN and at(s)}
        owners = _socket_owners(listening)
        return next(iter(owners.values()), None)
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
    """Who else is subscribed at the broker the recorder `recorder_pid` hosts: other
    folders' recorders following it (stopping it would end their recording without a
    word: `Peer.keeps_host`), or any other subscriber. [] when it hosts none, or
    `status` is another's."""
    if status is None or not status.embedded_broker or status.pid != recorder_pid:
        return []
    return subscribers(status.broker, recorder_pid)


def stop_unused_host(
    followed: StatusSnapshot | None,
    follower_dir: Path,
    timeout: float,
    say: Callable[[str], object] = lambda message: None,
    kept: Callable[[str], object] = lambda why: None,
) -> Path | None:
    """After the last agent out of `follower_dir` stopped its recorder (whose status was
    `followed`), stop the recorder whose embedded broker it followed, if that one is
    left running for nobody: it runs in another folder, a launcher or a start hook
    started it for agents (`agents/owner.json`; never a `persist record` of the user's),
    no agent is registered there, no hook of that folder holds its session's lock (it
    may still send to it: `kept` is told why, before 2026-12-08 it was stopped under
    the hook), no other recorder follows its broker (`keeps_host`; a plain subscriber
    does not keep it), and no systemd unit records its folder. Under
    that folder's launch lock (5 s at most: held longer, its launcher is at work, and it
    decides). All of it within `timeout` seconds (a SessionEnd hook has what its agent
    gives it). `followed` may be the status of a recorder found dead (its last agent
    out stops its host all the same). The folder of the stopped host, or None."""
    from recorder.daemon.control import stop_recorder
    from recorder.daemon.systemd import recording_unit
    from recorder.errors import LaunchError
    from recorder.launch.registry import (
        forget_owner,
        hooks_at_work,
        launch_lock,
        live_agents,
        recorder_owner,
    )
    from recorder.store.layout import Layout
    from recorder.store.shell import shell_quote
    from recorder.store.status import assess

    if followed is None or followed.embedded_broker or not followed.broker:
        return None
    host_pid = listener(followed.broker)
    folder = recorder_of(host_pid).log_dir if host_pid is not None else None
    if host_pid is None or folder is None or folder.resolve() == follower_dir.resolve():
        return None
    layout = Layout(folder)
    until = time.monotonic() + timeout
    try:
        with launch_lock(layout, timeout=min(5.0, timeout)):
            owner = recorder_owner(layout)
            if owner is None or owner["recorder_pid"] != host_pid or live_agents(layout):
                return None
            held = hooks_at_work(layout)
            if held:
                kept(
                    f"the recorder of {folder}, which hosted its broker for it, is left "
                    f"running: a hook there still holds the lock of {len(held)} session(s) "
                    f"({', '.join(held[:3])}) and may still send to it (the hook that sends a "
                    "session's end stops it; else "
                    f"`persist stop --log-dir {shell_quote(str(folder))}`)"
                )
                return None
            status = assess(layout).status
            if status is None or status.pid != host_pid or not status.embedded_broker:
                return None
            if any(peer.keeps_host for peer in hosted_broker_users(status, host_pid)):
                return None
            if recording_unit(layout.root):
                return None
            if not stop_recorder(
                layout,
                host_pid,
                owner.get("recorder_started"),
                max(0.0, until - time.monotonic()),
                say,
                key=owner.get("recorder_start_key"),
            ):
                return None
            forget_owner(layout)
    except (LaunchError, OSError):
        return None
    return folder
