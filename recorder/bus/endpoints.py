"""The broker's default endpoints and queue limit, and probing an endpoint.

Pure Python: publishers, the CLI and the launcher read these without loading zmq."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import re
import socket
import stat
from collections.abc import Iterable
from urllib.parse import urlparse

from recorder.errors import BadOption

DEFAULT_PUBLISH = "tcp://127.0.0.1:5559"  # publishers connect here (broker XSUB)


DEFAULT_SUBSCRIBE = "tcp://127.0.0.1:5555"  # subscribers connect here (broker XPUB)


# Messages the broker may queue per subscriber (and per publisher): enough for a
# recorder to fall 3 s behind a 150k msgs/s flood and lose nothing. The memory is
# only used while a subscriber lags (up to ~150 MB per subscriber at 300 B).
DEFAULT_HWM = 500_000


ENDPOINT_FORMS = "tcp://HOST:PORT, ipc://PATH or inproc://NAME"
_TCP = re.compile(r"tcp://(?:[^\s;]+;)?(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\];]+):(\*|\d{1,5})")


def check_endpoint(endpoint: str, option: str = "endpoint") -> str:
    """`endpoint` if it is a ZeroMQ endpoint we can bind or connect, else `BadOption`
    naming `option` (the flag or field it came from). The one check for every command."""
    text = str(endpoint)
    ok = False
    if text.startswith("tcp://"):
        match = _TCP.fullmatch(text)
        ok = match is not None and (match[2] == "*" or int(match[2]) <= 65535)
    elif text.startswith(("ipc://", "inproc://")):
        rest = text.split("://", 1)[1]
        ok = bool(rest.strip()) and "\0" not in rest
    if not ok:
        raise BadOption(
            f"{option} {text!r} is not a ZeroMQ endpoint (use {ENDPOINT_FORMS})".lstrip()
        )
    if text.startswith("ipc://"):
        size = len(os.fsencode(text[len("ipc://") :]))
        if size > IPC_PATH_MAX:  # libzmq: "File name too long", whether bound or connected
            raise BadOption(
                f"{option} {text!r}: the ipc path is {size} bytes, longer than the "
                f"{IPC_PATH_MAX} a socket address holds; use a shorter path".lstrip()
            )
    return text


# The longest ipc path a Unix socket address holds (sun_path, 108 bytes with its NUL)
IPC_PATH_MAX = 107


def check_connect_endpoint(endpoint: str, option: str = "endpoint") -> str:
    """`check_endpoint`, and refuse what can be bound but never connected to: a host or
    a port of `*`, port 0 (libzmq refuses the first two, "Invalid argument"; with port
    0 a connection is never made)."""
    text = check_endpoint(endpoint, option)
    match = _TCP.fullmatch(text)
    if match is not None:
        why = ""
        if match[1] == "*":
            why = "a host of * is for binding (every address)"
        elif match[2] == "*":
            why = "a port of * is for binding (any free port)"
        elif int(match[2]) == 0:
            why = "port 0 is for binding (any free port)"
        if why:
            raise BadOption(
                f"{option} {text!r} cannot be connected to: {why}; name the host and "
                "the port to connect to".lstrip()
            )
    return text


_LOOPBACK_NAMES = ("localhost", "ip6-localhost", "ip6-loopback")


def is_local_endpoint(endpoint: str) -> bool:
    """True if binding `endpoint` can only be reached from this machine: ipc, inproc,
    or tcp on a loopback address (127.0.0.0/8, ::1, localhost). A wildcard (`*`,
    0.0.0.0, ::), an interface name or any other host is not local."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    match = _TCP.fullmatch(endpoint)
    if match is None or ";" in endpoint:  # a source address: connect-only syntax
        return False
    host = match[1].strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # an interface name, a host name, `*`


def check_bind_endpoint(endpoint: str, option: str, *, allow_public: bool = False) -> str:
    """`check_endpoint`, and refuse one that would listen beyond this machine unless
    `allow_public` (private by default: publishers elsewhere must be let in on purpose)."""
    check_endpoint(endpoint, option)
    if not allow_public and not is_local_endpoint(endpoint):
        raise BadOption(
            f"{option} {endpoint} would listen beyond this machine; bind a loopback "
            "address (tcp://127.0.0.1:PORT) or ipc://PATH, or add --bind-public to mean it"
        )
    return endpoint


def same_socket_key(endpoint: str, ipv6: bool, resolve: bool = True) -> tuple[object, ...]:
    """What `endpoint` reaches, as libzmq would connect to it: two endpoints with the
    same key are one socket (one broker) under two spellings. tcp: the address and port
    the host resolves to (`localhost` is 127.0.0.1 on a socket without IPV6; with it,
    the first address the resolver gives, as libzmq takes; 127.0.0.1 and ::1 are two
    sockets), the destination only (a source address `SRC;` aside); a name that does
    not resolve (or `resolve` false) stays a name. ipc: the socket file (its device and
    inode when it exists, else its real path), or the abstract name; inproc: the name.
    A broker bound to a wildcard is reached through several addresses: that cannot be
    told from the endpoints."""
    if endpoint.startswith("ipc://"):
        path = endpoint[len("ipc://") :]
        if path.startswith("@"):
            return ("ipc-abstract", path)
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return ("ipc", os.path.realpath(path))
        return ("ipc-file", st.st_dev, st.st_ino)
    match = _TCP.fullmatch(endpoint)
    if match is None:
        return ("other", endpoint)
    host, port = match[1].strip("[]").lower(), match[2]
    port_key: object = port if port == "*" else int(port)
    try:
        return ("tcp", ipaddress.ip_address(host).compressed, port_key)
    except ValueError:
        pass
    if not resolve or host == "*":
        return ("tcp-name", host, port_key)
    family = socket.AF_UNSPEC if ipv6 else socket.AF_INET
    try:
        found = socket.getaddrinfo(host, None, family, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return ("tcp-name", host, port_key)
    address = str(found[0][4][0]).split("%", 1)[0] if found else host
    return ("tcp", ipaddress.ip_address(address).compressed if found else host, port_key)


def reached(key: tuple[object, ...]) -> str:
    """What a `same_socket_key` names, for people."""
    kind = key[0]
    if kind == "tcp":
        address = str(key[1])
        return f"both reach {f'[{address}]' if ':' in address else address}:{key[2]}"
    if kind == "ipc-file" or kind == "ipc":
        return "both name the same socket file"
    return "both name the same socket"


_ANY_V4 = ("*", "0.0.0.0")  # the IPv4 wildcards


def _binds_clash(first: tuple[object, ...], second: tuple[object, ...]) -> str | None:
    """The wildcard of two tcp binds on one port whose addresses differ but collide, or
    None: a wildcard takes the port on every address (`*` and 0.0.0.0 on IPv4; `::` on
    both families, libzmq's IPv6 sockets being dual-stack)."""
    if first[0] not in ("tcp", "tcp-name") or second[0] not in ("tcp", "tcp-name"):
        return None
    port = first[2]
    if port != second[2]:
        return None
    for wild, other in ((first, second), (second, first)):
        host, address = str(wild[1]), str(other[1])
        if host == "::" or (host in _ANY_V4 and other[0] == "tcp" and ":" not in address):
            return host
    return None


def bind_twice_problem(first: tuple[str, str], second: tuple[str, str], *, why: str) -> str | None:
    """Why binding two (option, endpoint) pairs, each on a socket of its own (a broker's
    two sides), would bind one socket twice, or None: the same endpoint, one under two
    spellings (`same_socket_key`, resolved as each socket resolves it), or a wildcard
    and an address on its port. A port of `*` or 0 and `ipc://*` take a free one at
    each bind: never one. `why` says what needs them apart."""
    (first_option, first_ep), (option, endpoint) = first, second
    keys = [same_socket_key(ep, wants_ipv6([ep])) for ep in (first_ep, endpoint)]
    anywhere = any(k[0] in ("tcp", "tcp-name") and k[2] in ("*", 0) for k in keys)
    if anywhere or "ipc://*" in (first_ep, endpoint):
        return None
    given = f"{option} {endpoint} is given to {first_option} and {option}"
    if endpoint == first_ep:
        return f"{given}: {why}"
    if keys[0] == keys[1]:
        return (
            f"{given}: {first_option} {first_ep} under another spelling ({reached(keys[0])}); {why}"
        )
    wildcard = _binds_clash(*keys)
    if wildcard is None:
        return None
    return (
        f"{option} {endpoint} and {first_option} {first_ep} are on one port, which "
        f"{wildcard} takes on every address; {why}"
    )


def wants_ipv6(endpoints: Iterable[str]) -> bool:
    """Whether a tcp endpoint among `endpoints` names an IPv6 host (`tcp://[::1]:5555`,
    ip6-localhost): a libzmq socket then needs its IPV6 option, off by default (the
    bind failed with "No such device"). Only then: with it on, `localhost` could
    resolve to ::1 where a broker listens on 127.0.0.1."""
    for endpoint in endpoints:
        match = _TCP.fullmatch(endpoint)
        if match is not None and (match[1][:1] == "[" or match[1].lower() in _LOOPBACK_NAMES[1:]):
            return True
    return False


def endpoint_free(endpoint: str) -> bool:
    """True if nothing listens on a tcp:// or ipc:// endpoint."""
    url = urlparse(endpoint)
    if url.scheme == "ipc":
        return _ipc_free(endpoint[len("ipc://") :])
    if url.scheme != "tcp" or not url.port:
        return False
    try:  # every address of the host, IPv6 ones too
        socket.create_connection((url.hostname or "127.0.0.1", url.port), timeout=0.3).close()
    except OSError:
        return True
    return False


# What a ZMTP 3 peer sends first, whatever it hears: 0xFF, 8 bytes, 0x7F (ZeroMQ 4's
# signature; what libzmq sends, asking for the same)
ZMTP_SIGNATURE = b"\xff" + (1).to_bytes(8, "big") + b"\x7f"


def speaks_zmtp(endpoint: str, timeout: float = 1.0) -> bool | None:
    """Whether what listens on a tcp:// or ipc:// endpoint greets as a ZeroMQ 4 peer
    does: True, False when its first bytes are something else (a web server's answer),
    None when that cannot be told (nothing listens, nothing came within `timeout`)."""
    url = urlparse(endpoint)
    try:
        if url.scheme == "tcp" and url.port:
            sock = socket.create_connection((url.hostname or "127.0.0.1", url.port), timeout)
        elif url.scheme == "ipc":
            path = endpoint[len("ipc://") :]
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect("\0" + path[1:] if path.startswith("@") else path)
            except OSError:
                sock.close()
                raise
        else:
            return None
    except (OSError, ValueError):
        return None
    greeting = b""
    with sock:
        # it may have answered and hung up already: what it said is read all the same
        with contextlib.suppress(OSError):
            sock.sendall(ZMTP_SIGNATURE)  # something to answer to
        with contextlib.suppress(OSError):
            while len(greeting) < len(ZMTP_SIGNATURE):
                got = sock.recv(len(ZMTP_SIGNATURE) - len(greeting))
                if not got:
                    break
                greeting += got
    if not greeting:
        return None
    if greeting[:1] != b"\xff":
        return False
    if len(greeting) < len(ZMTP_SIGNATURE):
        return None
    return greeting[9] & 1 == 1  # 0x7F: ZMTP 2 and later (libzmq reads only its low bit)


def _ipc_free(path: str) -> bool:
    """Whether nothing listens on this ipc path: no file, or a socket file nobody
    accepts on (left by a broker that stopped: zmq does not always remove it, and a
    file alone must not pass for a broker, or no embedded broker would start there
    again). A file that is not a socket is not free: binding would replace it."""
    address = "\0" + path[1:] if path.startswith("@") else path  # `@name`: abstract
    if address == path:
        try:
            if not stat.S_ISSOCK(os.stat(path).st_mode):
                return False
        except FileNotFoundError:
            return True
        except OSError:
            return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(0.3)
        try:
            s.connect(address)
        except (ConnectionRefusedError, FileNotFoundError):
            return True
        except OSError:
            return False
    return False


def ipc_bind_problem(endpoint: str) -> str | None:
    """Why binding an ipc:// endpoint would do harm, or None. zmq removes whatever is at
    the path before it binds: a file of the user's, or the socket of a broker that is
    running (whose publishers and subscribers would then reach nobody). A socket file
    nobody accepts on (left by a stopped broker) is free."""
    if not endpoint.startswith("ipc://"):
        return None
    path = endpoint[len("ipc://") :]
    if not path.startswith("@"):
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"{path}: {exc.strerror}"
        if not stat.S_ISSOCK(mode):
            return f"{path} exists and is not a socket (binding would delete it)"
    if not _ipc_free(path):
        return f"something is listening on {path} already"
    return None


_LOWEST_PORT = 20000
_PORT_TRIES = 64


def ephemeral_low() -> int:
    """The first port of the range the kernel hands outgoing connections (Linux's
    own figure; else 32768, Linux's default, below the 49152 of the BSDs and macOS)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def bindable_port(candidates: Iterable[int]) -> int | None:
    """The first of `candidates` a loopback TCP socket can bind now; None if none."""
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return None


def free_loopback_port() -> int:
    """A loopback TCP port nothing listens on now, below the ephemeral range: every
    outgoing connection takes its source port from that range, so a port found free
    there can be taken before a broker binds it. Picked at random among
    `_PORT_TRIES`; the kernel's pick when none of them is free."""
    low = ephemeral_low()
    if low > _LOWEST_PORT:
        tries = random.sample(range(_LOWEST_PORT, low), min(_PORT_TRIES, low - _LOWEST_PORT))
        port = bindable_port(tries)
        if port is not None:
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
