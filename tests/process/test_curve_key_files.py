"""CURVE key files that are not what they should be: a named pipe, a key outside
ZeroMQ's Z85 alphabet, a bad file on the allow-list. Each is one line naming the
file, exit 1, from the real CLI (`persist send`, `keys`, `broker`, `record`)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support import PYTHON, free_port

pytestmark = pytest.mark.timeout(120)


def persist(*args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    # the timeout only ends a hang (a named pipe opened to read waits for a writer)
    return subprocess.run(
        [PYTHON, "-m", "recorder.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def keys_init(folder: Path) -> None:
    out = persist("keys", "init", "--keys", str(folder))
    assert out.returncode == 0, out.stderr


def one_line(out: subprocess.CompletedProcess[str], *words: str) -> None:
    assert out.returncode == 1, out
    assert out.stderr.startswith("persist: ") and out.stderr.count("\n") == 1, out.stderr
    for word in words:
        assert word in out.stderr, out.stderr


def test_a_key_file_that_is_a_named_pipe_is_one_line_not_a_hang(tmp_path: Path) -> None:
    """Before: `send`, `keys init`, `keys allow` and `broker --curve` waited forever for
    a writer to the pipe."""
    keys = tmp_path / "a"
    keys_init(keys)
    secret = keys / "client.key_secret"
    secret.unlink()
    os.mkfifo(secret, 0o600)
    port = free_port()
    sent = persist("send", "agents.x", "hi", "--endpoint", f"tcp://127.0.0.1:{port}",
                   "--curve", "--keys", str(keys))  # fmt: skip
    one_line(sent, str(secret), "a named pipe, not a regular file")
    again = persist("keys", "init", "--keys", str(keys))
    one_line(again, str(secret), "a named pipe, not a regular file")

    pipe = tmp_path / "other.key"
    os.mkfifo(pipe, 0o600)
    allowed = persist("keys", "allow", str(pipe), "--keys", str(keys))
    one_line(allowed, str(pipe), "a named pipe, not a regular file")

    server = tmp_path / "b"
    keys_init(server)
    (server / "server.key_secret").unlink()
    os.mkfifo(server / "server.key_secret", 0o600)
    front, back = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    broker = persist("broker", "--frontend", front, "--backend", back, "--curve",
                     "--keys", str(server))  # fmt: skip
    one_line(broker, str(server / "server.key_secret"), "a named pipe, not a regular file")


BAD_KEY = "~" * 40  # the right length, but `~` is not in ZeroMQ's Z85 alphabet


def _spoil(path: Path, field: str, value: str = BAD_KEY) -> None:
    lines = path.read_text().splitlines()
    lines = [f'    {field} = "{value}"' if ln.strip().startswith(field) else ln for ln in lines]
    path.write_text("\n".join(lines) + "\n")


def test_a_key_outside_the_z85_alphabet_is_named_everywhere_it_is_read(tmp_path: Path) -> None:
    """Before: `send` printed a traceback (`ZMQError: Invalid argument`), `record` said its
    receiver stopped, `broker` could not bind, none naming the file; `keys list` showed
    the key as fine."""
    keys = tmp_path / "a"
    keys_init(keys)
    server_public = keys / "server.key"  # the server's public key, as a client holds it
    _spoil(server_public, "public-key")
    why = "is not a ZeroMQ Z85 key"
    port = free_port()
    sent = persist("send", "agents.x", "hi", "--endpoint", f"tcp://127.0.0.1:{port}",
                   "--curve", "--keys", str(keys))  # fmt: skip
    one_line(sent, str(server_public), why, "'~'")
    recorded = persist("record", "--log-dir", str(tmp_path / "logs"), "--broker",
                       f"tcp://127.0.0.1:{free_port()}", "--curve", "--keys", str(keys),
                       "--embedded", "no", "--detach")  # fmt: skip
    one_line(recorded, str(server_public), why)
    listed = persist("keys", "list", "--keys", str(keys))
    one_line(listed, str(server_public), why)

    server = tmp_path / "b"
    keys_init(server)
    secret = server / "server.key_secret"
    _spoil(secret, "secret-key", "#" * 40)  # in the alphabet, but beyond 32 bits a group
    front, back = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    broker = persist("broker", "--frontend", front, "--backend", back, "--curve",
                     "--keys", str(server))  # fmt: skip
    one_line(broker, str(secret), why)
    one_line(persist("keys", "list", "--keys", str(server)), str(secret), why)


def test_a_bad_file_on_the_allow_list_stops_a_curve_server_from_starting(
    tmp_path: Path,
) -> None:
    """Before: pyzmq's authenticator failed to load the whole allow-list, logged it, and
    the broker started as if fine, refusing every client (the allowed ones too)."""
    keys = tmp_path / "keys"
    keys_init(keys)
    typo = keys / "allowed" / "typo.key"
    typo.write_text("not a certificate\n")
    typo.chmod(0o600)
    why = "holds no CURVE public key"
    front, back = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    broker = persist("broker", "--frontend", front, "--backend", back, "--curve",
                     "--keys", str(keys))  # fmt: skip
    one_line(broker, str(typo), why)
    for n, how in enumerate(
        (
            ("--broker", back, "--publish-endpoint", front, "--embedded", "yes"),
            ("--bind", f"tcp://127.0.0.1:{free_port()}"),
        )
    ):
        recorded = persist("record", "--log-dir", str(tmp_path / f"logs{n}"), *how,
                           "--curve", "--keys", str(keys), "--detach")  # fmt: skip
        one_line(recorded, str(typo), why)
