"""ZeroMQ CURVE on our sockets: making keys, a listening socket as a CURVE server
behind pyzmq's authenticator (an allow-list of client public keys), a connecting
socket as a CURVE client. The keys folder itself is `recorder.bus.keys`."""

from __future__ import annotations

import os
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
    certificate_text,
    keys_present,
    write_private,
)

ZAP_DOMAIN = "persist"  # our servers' ZAP domain; the authenticator's allow-list is for it


def new_pair() -> CurvePair:
    public, secret = zmq.curve_keypair()
    return CurvePair(public, secret)


def init_keys(folder: Path) -> list[Path]:
    """Make a server and a client key pair in `folder` (0700; secret files 0600) and
    allow this client; refuses to overwrite keys already there."""
    if keys_present(folder):
        raise KeyFileError(f"CURVE keys already exist in {folder} (see `persist keys list`)")
    try:
        for parent in [*reversed(folder.parents), folder]:
            if not parent.exists():  # every folder we make is private (the log folder too)
                parent.mkdir(mode=0o700)
                os.chmod(parent, 0o700)
        os.chmod(folder, 0o700)
        (folder / ALLOWED).mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder / ALLOWED, 0o700)
        made: list[Path] = []
        pairs = {}
        for role in (SERVER, CLIENT):
            pair = pairs[role] = new_pair()
            public = folder / f"{role}{PUBLIC_SUFFIX}"
            secret = folder / f"{role}{SECRET_SUFFIX}"
            write_private(public, certificate_text(pair, secret=False, what=f"{role} key"))
            write_private(secret, certificate_text(pair, secret=True, what=f"{role} key"))
            made += [public, secret]
        allowed = folder / ALLOWED / f"{CLIENT}{PUBLIC_SUFFIX}"
        write_private(allowed, certificate_text(pairs[CLIENT], secret=False, what="allowed client"))
        made.append(allowed)
    except OSError as exc:
        raise KeyFileError(f"cannot create CURVE keys in {folder}: {exc}") from None
    return made


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
