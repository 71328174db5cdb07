"""The CURVE keys folder (`recorder.bus.keys`): when CURVE is on, and reading keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder.bus.curve import init_keys
from recorder.bus.keys import KeyFileError, curve_wanted, load_client, load_server, read_key_file


def test_curve_is_on_with_keys_and_a_public_endpoint_unless_refused(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    public, local = ["tcp://0.0.0.0:5559"], ["tcp://127.0.0.1:5559", "ipc:///tmp/x"]
    assert not curve_wanted(None, keys, public)  # no keys yet
    init_keys(keys)
    assert curve_wanted(None, keys, public)
    assert curve_wanted(None, keys, ["tcp://broker-host:5555"])
    assert not curve_wanted(None, keys, local)
    assert not curve_wanted(False, keys, public)
    assert curve_wanted(True, keys, local)


def test_keys_read_back_and_bad_keys_are_named(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    made = init_keys(keys).made
    assert len(made) == 5
    server, client = load_server(keys), load_client(keys)
    assert client.server_public == server.pair.public
    assert len(client.pair.secret) == 40 and client.pair.public != server.pair.public
    with pytest.raises(KeyFileError, match="already exist"):
        init_keys(keys)
    (keys / "server.key_secret").chmod(0o640)
    with pytest.raises(
        KeyFileError, match=r"mode 0640\), so its secret may have leaked: run `persist keys init"
    ):
        load_server(keys)
    (keys / "server.key_secret").chmod(0o600)
    (keys / "client.key_secret").write_text('public-key = "short"\n')
    with pytest.raises(KeyFileError, match="holds no CURVE public key"):
        load_client(keys)
    with pytest.raises(KeyFileError, match="persist keys init"):
        read_key_file(tmp_path / "missing.key", secret=False)


def test_z85_problem_agrees_with_libzmq() -> None:
    """`z85_problem` refuses exactly the 40-character keys libzmq refuses."""
    import random

    import zmq

    from recorder.bus.keys import _Z85, z85_problem

    rng = random.Random(117)
    keys = [zmq.curve_keypair()[0], b"0" * 40, b"~" * 40, b"#" * 40, b"\xc3\xa9" * 20]
    keys += [b"%nSc0" * 8, b"%nSc1" * 8]  # groups of 2**32 - 1 (taken) and 2**32
    # the last 20 digits: about one key in five takes (a group of them overflows 32 bits)
    keys += ["".join(rng.choice(_Z85[-20:]) for _ in range(40)).encode() for _ in range(200)]
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    try:
        for key in keys:
            try:
                sock.curve_serverkey = key
                takes = True
            except zmq.ZMQError:
                takes = False
            assert (z85_problem(key) is None) is takes, key
    finally:
        sock.close(0)
        ctx.term()
