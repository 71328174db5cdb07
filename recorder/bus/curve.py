"""ZeroMQ CURVE on our sockets: making keys, a listening socket as a CURVE server
behind pyzmq's authenticator (an allow-list of client public keys), a connecting
socket as a CURVE client. The keys folder itself is `recorder.bus.keys`."""

from __future__ import annotations

import os
import stat
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import zmq
from zmq.auth.thread import ThreadAuthenticator

from recorder.bus.keys import (
    ALLOWED,
    CLIENT,
    NOT_PRIVATE,
    PUBLIC_SUFFIX,
    SECRET_SUFFIX,
    SERVER,
    ClientKeys,
    CurvePair,
    KeyFileError,
    Refused,
    ServerKeys,
    allow_key,
    certificate_text,
    foreign_files,
    public_in,
    whole_pair,
    write_key,
)
from recorder.errors import BadOption

ZAP_DOMAIN = "persist"  # our servers' ZAP domain; the authenticator's allow-list is for it


def new_pair() -> CurvePair:
    public, secret = zmq.curve_keypair()
    return CurvePair(public, secret)


@dataclass
class KeysMade:
    """What `init_keys` did."""

    made: list[Path] = field(default_factory=list)  # files written
    replaced: list[str] = field(default_factory=list)  # "name (why)": files that made no pair
    kept: list[str] = field(default_factory=list)  # roles whose whole, private pair was there
    exposed: dict[str, int] = field(default_factory=dict)  # role -> mode: pair open to others
    disallowed: list[Path] = field(default_factory=list)  # its old client key, off the list
    allowed_kept: int = 0  # client keys on the allow-list before, still on it
    mode_was: int | None = None  # the folder's mode before it was made 0700, if another


def init_keys(folder: Path) -> KeysMade:
    """Make a server and a client key pair in `folder` (0700; secret files 0600) and
    allow this client. Refuses when both pairs are there and private, and a folder
    holding other files (BadOption: it is not a keys folder). Makes only what is missing:
    a pair whose secret file is whole and private is kept (an init killed half-way; its
    public file written again from it if it holds another key), public keys without
    their secret halves (a restored backup leaves the secrets out) and half-written
    secret files are replaced, and so is a pair whose secret file others could read (it
    may have leaked: the old client key leaves the allow-list). The allow-list is kept
    otherwise (a client's key does not change when the server's does), and counted in
    `allowed_kept`; the folder's mode, if it changes, is reported."""
    pairs = {role: whole_pair(folder / f"{role}{SECRET_SUFFIX}") for role in (SERVER, CLIENT)}
    exposed = {
        role: mode
        for role, pair in pairs.items()
        if pair is not None and (mode := _open_mode(folder / f"{role}{SECRET_SUFFIX}"))
    }
    if all(pairs.values()) and not exposed:
        raise KeyFileError(f"CURVE keys already exist in {folder} (see `persist keys list`)")
    if folder.exists() and not folder.is_dir():
        raise KeyFileError(f"cannot create CURVE keys in {folder}: it is not a folder")
    if foreign := foreign_files(folder):
        raise BadOption(
            f"{folder} holds other files ({', '.join(foreign[:3])}): CURVE keys go into a new "
            "or empty folder, or one `persist keys init` made (--keys FOLDER)"
        )
    done = KeysMade(exposed=exposed)
    try:
        for parent in [*reversed(folder.parents), folder]:
            if not parent.exists():  # every folder we make is private (the log folder too)
                parent.mkdir(mode=0o700)
                os.chmod(parent, 0o700)
        mode = stat.S_IMODE(folder.stat().st_mode)
        if mode != 0o700:
            done.mode_was = mode
            os.chmod(folder, 0o700)
        (folder / ALLOWED).mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder / ALLOWED, 0o700)
        for role in (SERVER, CLIENT):
            public = folder / f"{role}{PUBLIC_SUFFIX}"
            secret = folder / f"{role}{SECRET_SUFFIX}"
            pair = pairs[role]
            if pair is not None and role not in exposed:
                done.kept.append(role)
                if os.path.lexists(public) and public_in(public) != pair.public:
                    done.replaced.append(f"{public.name} (held another key than {secret.name}'s)")
            else:
                if pair is None:
                    done.replaced += [
                        f"{p.name} ({why})"
                        for p, why in (
                            (public, "without a whole secret half"),
                            (secret, "not a whole key pair"),
                        )
                        if os.path.lexists(p)
                    ]
                elif role == CLIENT:  # its secret may have leaked: let the old key in no more
                    done.disallowed = _disallow(folder / ALLOWED, pair.public)
                pair = new_pair()  # the secret file first: whole, it is what is kept
                write_key(secret, certificate_text(pair, secret=True, what=f"{role} key"))
                done.made.append(secret)
            if public_in(public) != pair.public:
                write_key(public, certificate_text(pair, secret=False, what=f"{role} key"))
                done.made.append(public)
        allowed = set((folder / ALLOWED).iterdir())
        done.allowed_kept = sum(p.name.endswith(PUBLIC_SUFFIX) for p in allowed)
        client = allow_key(folder, folder / f"{CLIENT}{PUBLIC_SUFFIX}")
        if client not in allowed:
            done.made.append(client)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise KeyFileError(
            f"cannot create CURVE keys in {folder}: {exc.strerror or exc}{where}"
        ) from None
    return done


def _open_mode(secret: Path) -> int | None:
    """The mode of a secret key file others may read or write (its secret may have
    leaked: readers refuse it), else None."""
    try:
        mode = stat.S_IMODE(secret.stat().st_mode)
    except OSError as exc:
        raise KeyFileError(f"cannot read CURVE key {secret}: {exc}") from None
    return mode if mode & NOT_PRIVATE else None


def _disallow(allowed: Path, public: bytes) -> list[Path]:
    """Take a client public key off the allow-list; the files removed."""
    gone = [p for p in sorted(allowed.glob(f"*{PUBLIC_SUFFIX}")) if public_in(p) == public]
    for path in gone:
        path.unlink()
    return gone


class _AllowList:
    """pyzmq's credentials provider: the client keys `load_server` read and checked.
    Each key it refuses is kept (the last 64) until the socket's monitor reports that
    refused handshake (`take_refused`): the monitor names no key."""

    def __init__(self, clients: frozenset[bytes]) -> None:
        self.clients = clients
        self.address = ""  # the request being answered's, set by the authenticator
        self.refused: deque[Refused] = deque(maxlen=64)

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self.clients:
            return True
        self.refused.append(Refused(key.decode("ascii", "replace"), self.address))
        return False


class _Authenticator(ThreadAuthenticator):
    """pyzmq's ZAP handler, telling the allow-list each request's peer address."""

    allow_list: _AllowList | None = None

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        if self.allow_list is not None:
            address = msg[3] if len(msg) > 3 else b""
            self.allow_list.address = address.decode("utf-8", "replace")
        await super().handle_zap_message(msg)


def take_refused(auth: ThreadAuthenticator | None) -> Refused | None:
    """The oldest refused key `auth` holds that no caller took yet (None: none)."""
    allow_list = getattr(auth, "allow_list", None)
    if allow_list is None:
        return None
    try:
        return allow_list.refused.popleft()  # type: ignore[no-any-return]
    except IndexError:
        return None


def start_authenticator(
    ctx: zmq.Context[zmq.Socket[bytes]], keys: ServerKeys
) -> ThreadAuthenticator:
    """pyzmq's ZAP handler on `ctx`, letting in only the client keys of the allow-list
    as `load_server` read them (once: `persist keys allow` takes effect at the next
    start). Not pyzmq's own loader (`configure_curve`): it reads the folder again, and
    a file it cannot read empties the whole list with only a log line, so every client
    is refused by a server that started as if fine. Start it before binding: without a
    handler libzmq lets every CURVE client in. The keys it refuses: `take_refused`."""
    auth = _Authenticator(ctx)
    auth.allow_list = _AllowList(keys.clients)
    auth.start()
    auth.configure_curve_callback(domain=ZAP_DOMAIN, credentials_provider=auth.allow_list)
    return auth


def serve(sock: zmq.Socket[bytes], keys: ServerKeys) -> None:
    """Make `sock` a CURVE server (set before bind/connect)."""
    sock.curve_secretkey = keys.pair.secret
    sock.curve_publickey = keys.pair.public
    sock.curve_server = True
    sock.zap_domain = ZAP_DOMAIN.encode()


def connect_as_client(sock: zmq.Socket[bytes], keys: ClientKeys) -> None:
    """Make `sock` a CURVE client of the server whose public key is in `keys`."""
    sock.curve_secretkey = keys.pair.secret
    sock.curve_publickey = keys.pair.public
    sock.curve_serverkey = keys.server_public
