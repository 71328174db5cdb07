"""ZeroMQ CURVE on our sockets: making keys, a listening socket as a CURVE server
behind pyzmq's authenticator (an allow-list of client public keys), a connecting
socket as a CURVE client. The keys folder itself is `recorder.bus.keys`."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import zmq
from zmq.auth.thread import ThreadAuthenticator

from recorder.bus.keys import (
    ALLOWED,
    CLIENT,
    PUBLIC_SUFFIX,
    SECRET_SUFFIX,
    SERVER,
    ClientKeys,
    CurvePair,
    KeyFileError,
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
    replaced: list[str] = field(default_factory=list)  # files there that made no whole pair
    kept: list[str] = field(default_factory=list)  # roles whose whole pair was there
    mode_was: int | None = None  # the folder's mode before it was made 0700, if another


def init_keys(folder: Path) -> KeysMade:
    """Make a server and a client key pair in `folder` (0700; secret files 0600) and
    allow this client. Refuses when both pairs are there, and a folder holding other
    files (BadOption: it is not a keys folder). Makes only what is missing: a pair whose
    secret file is whole is kept (an init killed half-way), public keys without their
    secret halves (a restored backup leaves the secrets out) and half-written secret
    files are replaced, and the folder's mode, if it changes, is reported."""
    pairs = {role: whole_pair(folder / f"{role}{SECRET_SUFFIX}") for role in (SERVER, CLIENT)}
    if all(pairs.values()):
        raise KeyFileError(f"CURVE keys already exist in {folder} (see `persist keys list`)")
    if folder.exists() and not folder.is_dir():
        raise KeyFileError(f"cannot create CURVE keys in {folder}: it is not a folder")
    if foreign := foreign_files(folder):
        raise BadOption(
            f"{folder} holds other files ({', '.join(foreign[:3])}): CURVE keys go into a new "
            "or empty folder, or one `persist keys init` made (--keys FOLDER)"
        )
    done = KeysMade()
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
            if pair is None:
                done.replaced += [p.name for p in (public, secret) if os.path.lexists(p)]
                pair = new_pair()  # the secret file first: whole, it is what is kept
                write_key(secret, certificate_text(pair, secret=True, what=f"{role} key"))
                done.made.append(secret)
            else:
                done.kept.append(role)
            if public_in(public) != pair.public:
                write_key(public, certificate_text(pair, secret=False, what=f"{role} key"))
                done.made.append(public)
        allowed = set((folder / ALLOWED).iterdir())
        client = allow_key(folder, folder / f"{CLIENT}{PUBLIC_SUFFIX}")
        if client not in allowed:
            done.made.append(client)
    except OSError as exc:
        raise KeyFileError(f"cannot create CURVE keys in {folder}: {exc}") from None
    return done


def start_authenticator(
    ctx: zmq.Context[zmq.Socket[bytes]], keys: ServerKeys
) -> ThreadAuthenticator:
    """pyzmq's ZAP handler on `ctx`, letting in only the client keys in the allow-list
    (read once, now: `persist keys allow` takes effect at the next start). Start it
    before binding: without a handler libzmq lets every CURVE client in."""
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain=ZAP_DOMAIN, location=str(keys.allowed))
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
