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
