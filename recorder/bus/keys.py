"""The CURVE keys folder: where the keys live, reading them, and when CURVE is on.

Pure Python (no zmq): the CLI and the daemon's options decide and check here;
`recorder.bus.curve` makes keys and sets sockets up. The files are ZeroMQ
certificates (the format pyzmq's `zmq.auth` reads):

    KEYS/server.key          the server's public key (give it to clients)
    KEYS/server.key_secret   the server's public + secret key (0600)
    KEYS/client.key          this machine's client public key
    KEYS/client.key_secret   this machine's client public + secret key (0600)
    KEYS/allowed/*.key       client public keys the server lets in (the allow-list)

The folder is 0700; a secret file open to anyone but its owner (any group or other bit)
is refused, and `persist keys init` replaces its pair: its secret may have leaked.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from recorder.bus.endpoints import is_local_endpoint
from recorder.errors import PersistError

SERVER = "server"
CLIENT = "client"
ALLOWED = "allowed"
PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
_Z85_LEN = 40  # a 32-byte key in Z85
_Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
_Z85_DIGIT = {c: i for i, c in enumerate(_Z85)}
NOT_PRIVATE = 0o077  # a secret file with any group or other bit is refused


class KeyFileError(PersistError):
    """A CURVE key is missing, unreadable, malformed or not private enough."""


@dataclass(frozen=True)
class CurvePair:
    public: bytes  # Z85, 40 bytes
    secret: bytes


@dataclass(frozen=True)
class ServerKeys:
    """What a listening socket needs: its own pair, the folder of allowed client keys and
    the public keys it held when read (the only clients let in)."""

    pair: CurvePair
    allowed: Path
    clients: frozenset[bytes]


@dataclass(frozen=True)
class Refused:
    """A client key the allow-list refused: its public key (z85, as in a key file) and
    the peer's address as libzmq's ZAP request gives it (an IP; "" for ipc). A handshake
    that failed before a key was asked for has neither; `without_curve`: it failed
    because the peer spoke no CURVE at all (libzmq's mechanism mismatch)."""

    key: str
    address: str
    without_curve: bool = False


@dataclass(frozen=True)
class ClientKeys:
    """What a connecting socket needs: its own pair and the server's public key."""

    pair: CurvePair
    server_public: bytes


def keys_folder(log_dir: Path, keys: str | Path | None = None) -> Path:
    """`--keys` if given, else `<log folder>/keys`."""
    return Path(keys).expanduser() if keys else Path(log_dir).expanduser() / "keys"


# O_NONBLOCK: opening a named pipe waits for a writer without it (a regular file ignores
# the flag). `recorder.store.fsutil.read_regular` does the same; not imported here: the
# publisher agents embed loads no store module.
_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
_KINDS = {stat.S_IFIFO: "a named pipe", stat.S_IFDIR: "a folder", stat.S_IFSOCK: "a socket"}


def _key_text(path: Path) -> tuple[str, os.stat_result]:
    """The text of a key file and its `fstat`. What is not a regular file (a named pipe
    would hold its reader forever) and what cannot be read is KeyFileError, naming the
    file; a missing file is FileNotFoundError, for the caller to word."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise KeyFileError(f"cannot read CURVE key {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _KINDS.get(stat.S_IFMT(info.st_mode), "a device")
            raise KeyFileError(f"cannot read CURVE key {path}: it is {kind}, not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(1 << 20)  # a certificate is a few hundred bytes
        return data.decode("utf-8"), info
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read CURVE key {path}: {exc}") from None
    finally:
        os.close(fd)


def whole_pair(path: Path) -> CurvePair | None:
    """The pair in a secret key file, or None when there is none or it is not whole (a
    `keys init` killed while writing it). Its mode is not judged here: readers do."""
    try:
        text = _key_text(path)[0]
    except FileNotFoundError:
        return None
    public, secret = _field(text, "public-key"), _field(text, "secret-key")
    if public is None or secret is None or len(public) != _Z85_LEN or len(secret) != _Z85_LEN:
        return None
    if z85_problem(public) or z85_problem(secret):
        return None
    return CurvePair(public, secret)


def public_in(path: Path) -> bytes | None:
    """The public key in a certificate file, or None when it holds none (or is missing)."""
    try:
        return read_key_file(path, secret=False).public
    except KeyFileError:
        return None


_KEY_FILES = {f"{r}{s}" for r in (SERVER, CLIENT) for s in (PUBLIC_SUFFIX, SECRET_SUFFIX)}
_TEMP = re.compile(r"\A\.(?:server|client)\.key(?:_secret)?\.\d+\.tmp\Z")  # see write_key


def foreign_files(folder: Path) -> list[str]:
    """What a keys folder holds that `persist keys init` does not make (sorted names): a
    folder holding them is not a keys folder, and keys are not written into it."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n not in _KEY_FILES and n != ALLOWED and not _TEMP.match(n))


def write_key(path: Path, text: str) -> None:
    """A key file, 0600, replaced in one rename: whole or not there. The temp file of a
    writer killed before the rename is removed."""
    for name in os.listdir(path.parent):
        if _TEMP.match(name) and name.startswith(f".{path.name}."):
            (path.parent / name).unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write_private(tmp, text)
    os.replace(tmp, path)


def keys_present(folder: Path) -> bool:
    """True once `persist keys init` has made keys in `folder`."""
    return (folder / f"{SERVER}{SECRET_SUFFIX}").exists() or (
        folder / f"{CLIENT}{SECRET_SUFFIX}"
    ).exists()


def curve_wanted(choice: bool | None, folder: Path, endpoints: Iterable[str]) -> bool:
    """`--curve` / `--no-curve` as given; unset: on when keys exist in `folder` and an
    endpoint reaches beyond this machine (off the loopback, not ipc)."""
    if choice is not None:
        return choice
    return keys_present(folder) and any(not is_local_endpoint(ep) for ep in endpoints)


def z85_problem(key: bytes) -> str | None:
    """Why `key` (40 characters) is no Z85 key libzmq takes, or None: a character outside
    ZeroMQ's Z85 alphabet (a key mangled in a copy and paste), or a group of five that
    encodes more than 4 bytes (libzmq refuses either: "Invalid argument")."""
    text = key.decode("utf-8", "replace")
    for start in range(0, len(text), 5):
        value = 0
        for n, char in enumerate(text[start : start + 5], start + 1):
            digit = _Z85_DIGIT.get(char)
            if digit is None:
                return f"{char!r}, character {n}, is not in ZeroMQ's Z85 alphabet"
            value = value * 85 + digit
        if value >> 32:
            return f"characters {start + 1}-{start + 5} encode more than 4 bytes"
    return None


def _field(text: str, name: str) -> bytes | None:
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(name):
            value = line.split("=", 1)[1].strip(" \t'\"") if "=" in line else ""
            return value.encode()
    return None


def open_to_others(secret: Path, mode: int) -> str:
    """Why a secret key file with group or other bits is never used again, in the words
    every place says it (readers refuse it, `persist keys init` replaces its pair,
    `persist doctor` names it): a chmod would not make a secret that may have leaked
    secret again."""
    return f"{secret} is open to others (mode {mode:04o}), so its secret may have leaked"


def read_key_file(path: Path, *, secret: bool) -> CurvePair:
    """The key pair in a certificate file (`secret=False`: the public key only, the
    secret left empty). A secret file must be private (no group or other bits)."""
    try:
        text, info = _key_text(path)
    except FileNotFoundError:
        raise KeyFileError(
            f"no CURVE key at {path}: run `persist keys init` (or pass --keys FOLDER)"
        ) from None
    if secret and info.st_mode & NOT_PRIVATE:
        raise KeyFileError(
            f"{open_to_others(path, stat.S_IMODE(info.st_mode))}: run `persist keys init "
            f"--keys {shlex.quote(str(path.parent))}` to replace the pair (chmod would not "
            "make it secret again)"
        )
    public = _field(text, "public-key")
    private = _field(text, "secret-key") if secret else b""
    if public is None or len(public) != _Z85_LEN:
        raise KeyFileError(f"{path} holds no CURVE public key (not a ZeroMQ certificate)")
    if secret and (private is None or len(private) != _Z85_LEN):
        raise KeyFileError(f"{path} holds no CURVE secret key (not a *.key_secret file)")
    for what, key in (("public", public), ("secret", private or b"")):
        if problem := z85_problem(key):
            raise KeyFileError(
                f"{path}: its CURVE {what} key is not a ZeroMQ Z85 key ({problem}): copy the "
                "file again whole from where it was made, or make new keys (`persist keys init`)"
            )
    return CurvePair(public, private or b"")


def load_server(folder: Path) -> ServerKeys:
    """The server's keys and its allow-list, checked: a file on the list that is no
    public key is KeyFileError naming it (a server that started without it would let
    in fewer clients than the list names, or, behind pyzmq's loader, none)."""
    pair = read_key_file(folder / f"{SERVER}{SECRET_SUFFIX}", secret=True)
    allowed = folder / ALLOWED
    if not allowed.is_dir():
        raise KeyFileError(
            f"no allow-list folder {allowed}: run `persist keys init` or `persist keys allow FILE`"
        )
    try:
        listed = sorted(allowed.glob(f"*{PUBLIC_SUFFIX}"))
    except OSError as exc:
        raise KeyFileError(f"cannot read the allow-list {allowed}: {exc}") from None
    clients = frozenset(read_key_file(path, secret=False).public for path in listed)
    return ServerKeys(pair, allowed, clients)


def load_client(folder: Path) -> ClientKeys:
    """This machine's client keys and the server's public key, checked."""
    pair = read_key_file(folder / f"{CLIENT}{SECRET_SUFFIX}", secret=True)
    server = read_key_file(folder / f"{SERVER}{PUBLIC_SUFFIX}", secret=False)
    return ClientKeys(pair, server.public)


def certificate_text(pair: CurvePair, *, secret: bool, what: str) -> str:
    """A ZeroMQ certificate file (the format `zmq.auth.load_certificate` reads)."""
    kind = "Secret" if secret else "Public"
    lines = [
        f"#   ****  agent-persist CURVE {what}  ****",
        f"#   ZeroMQ CURVE **{kind}** Certificate",
        "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions."
        if secret
        else "#   Exchange securely, or use a secure mechanism to verify the contents",
        "",
        "metadata",
        "curve",
        f'    public-key = "{pair.public.decode()}"',
    ]
    if secret:
        lines.append(f'    secret-key = "{pair.secret.decode()}"')
    return "\n".join(lines) + "\n"


def write_private(path: Path, text: str) -> None:
    """Create `path` 0600 (never overwrite: O_EXCL)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, 0o600)  # whatever the umask was


@dataclass(frozen=True)
class KeyInfo:
    role: str  # "server", "client" or "allowed"
    path: Path
    public: str
    has_secret: bool


def list_keys(folder: Path) -> list[KeyInfo]:
    """Every key in `folder`: the server's, the client's, then the allow-list; the first
    file no reader would take (its secret half too) is KeyFileError."""
    out: list[KeyInfo] = []
    for role in (SERVER, CLIENT):
        path = folder / f"{role}{PUBLIC_SUFFIX}"
        if path.exists():
            secret = folder / f"{role}{SECRET_SUFFIX}"
            if secret.exists():  # checked as its readers check it
                read_key_file(secret, secret=True)
            out.append(
                KeyInfo(
                    role, path, read_key_file(path, secret=False).public.decode(), secret.exists()
                )
            )
    allowed = folder / ALLOWED
    if allowed.is_dir():
        for path in sorted(allowed.glob(f"*{PUBLIC_SUFFIX}")):
            out.append(
                KeyInfo(ALLOWED, path, read_key_file(path, secret=False).public.decode(), False)
            )
    return out


def allow_key(folder: Path, source: Path) -> Path:
    """Copy the public key in `source` into the allow-list (only its public part)."""
    if not source.exists():  # another machine's key: `keys init` here would not make it
        raise KeyFileError(
            f"no key file at {source}: give the public key of the client to let in "
            f"(the {CLIENT}{PUBLIC_SUFFIX} that `persist keys init` made on its machine)"
        )
    pair = read_key_file(source, secret=False)
    allowed = folder / ALLOWED
    if not allowed.is_dir():
        raise KeyFileError(f"no keys folder at {folder}: run `persist keys init` first")
    for existing in allowed.glob(f"*{PUBLIC_SUFFIX}"):
        if read_key_file(existing, secret=False).public == pair.public:
            return existing
    name = source.name if source.name.endswith(PUBLIC_SUFFIX) else f"{source.stem}{PUBLIC_SUFFIX}"
    target = allowed / name
    n = 1
    while target.exists():
        n += 1
        target = allowed / f"{Path(name).stem}-{n}{PUBLIC_SUFFIX}"
    write_private(
        target, certificate_text(CurvePair(pair.public, b""), secret=False, what="allowed client")
    )
    return target
