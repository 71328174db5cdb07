"""`persist keys init` by the real CLI: after `persist restore-backup` (public keys
back, secret halves left out of the backup) and after an init killed half-way it
makes what is missing, saying so; a folder of other files is refused, untouched."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import orjson
import pytest

from recorder.bus.keys import load_client, load_server, read_key_file
from tests.log_folder import healthy_folder
from tests.process.test_backup_restore_unfinished import persist

pytestmark = pytest.mark.timeout(120)


def test_keys_init_after_a_restore_and_after_a_killed_init(tmp_path: Path) -> None:
    """The restored public keys stayed and init's O_EXCL write failed on server.key
    ("File exists") while `persist send --curve` said to run `persist keys init`."""
    logs = healthy_folder(tmp_path, messages=2400, session=False).root
    assert persist("keys", "init", "--log-dir", str(logs)).returncode == 0
    backup, restored = tmp_path / "backup", tmp_path / "restored"
    assert persist("backup", str(backup), "--dir", str(logs)).returncode == 0
    assert persist("restore-backup", str(backup), str(restored)).returncode == 0
    keys = restored / "keys"
    assert (keys / "server.key").exists() and not (keys / "server.key_secret").exists()
    done = persist("keys", "init", "--log-dir", str(restored))
    assert done.returncode == 0, done.stderr
    assert (
        "replaced what made no whole pair: server.key (without a whole secret half), "
        "client.key (without a whole secret half)"
    ) in done.stdout
    server, client = load_server(keys), load_client(keys)
    assert client.server_public == server.pair.public
    assert server.pair.public != load_server(logs / "keys").pair.public
    allowed = {read_key_file(p, secret=False).public for p in (keys / "allowed").iterdir()}
    assert client.pair.public in allowed  # and the restored allow-list is kept
    assert load_client(logs / "keys").pair.public in allowed
    # an init killed while it wrote the client's pair: the server's pair is kept
    server_key = (keys / "server.key_secret").read_text()
    (keys / "client.key").unlink()
    (keys / "client.key_secret").write_text("#   ****  agent-persist CURVE client key\n")
    done = persist("keys", "init", "--log-dir", str(restored))
    assert done.returncode == 0, done.stderr
    assert "kept the server key pair already there" in done.stdout
    assert "replaced what made no whole pair: client.key_secret (not a whole key pair)" in (
        done.stdout
    )
    assert (keys / "server.key_secret").read_text() == server_key
    assert load_client(keys).server_public == load_server(keys).pair.public
    again = persist("keys", "init", "--log-dir", str(restored))
    assert again.returncode == 1 and "CURVE keys already exist" in again.stderr


def test_keys_init_refuses_a_folder_of_other_files(tmp_path: Path) -> None:
    """`--keys` on a shared folder (1777, other files) was made 0700 silently and the
    keys written among the other files."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (shared / "notes.txt").write_text("someone's")
    done = persist("keys", "init", "--log-dir", str(tmp_path / "logs"), "--keys", str(shared))
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1 and "holds other files (notes.txt)" in done.stderr
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert os.listdir(shared) == ["notes.txt"]
    mine = tmp_path / "mine"
    mine.mkdir()
    mine.chmod(0o755)
    done = persist("keys", "init", "--log-dir", str(tmp_path / "logs"), "--keys", str(mine))
    assert done.returncode == 0, done.stderr
    assert f"made {mine} private (it was 0755, now 0700)" in done.stdout
    assert stat.S_IMODE(mine.stat().st_mode) == 0o700


def test_keys_init_replaces_a_pair_others_could_read_and_names_a_public_key_rewritten(
    tmp_path: Path,
) -> None:
    """A whole server pair whose secret file was 0644 was kept ("secret files 0600",
    exit 0) and the recorder then refused it; a kept pair whose public file held another
    key had it rewritten without naming it."""
    logs = tmp_path / "logs"
    logs.mkdir()
    keys = logs / "keys"
    assert persist("keys", "init", "--log-dir", str(logs)).returncode == 0
    old_server = load_server(keys).pair
    (keys / "client.key_secret").unlink()
    (keys / "client.key").unlink()
    (keys / "server.key_secret").chmod(0o644)
    done = persist("keys", "init", "--log-dir", str(logs))
    assert done.returncode == 0, done.stderr
    assert "kept the server key pair" not in done.stdout
    assert (
        f"made a new server key pair: {keys / 'server.key_secret'} is open to others (mode "
        "0644), so its secret may have leaked; clients holding the old server.key need the "
        "new one"
    ) in done.stdout
    assert "(secret files yours alone, folder 0700)" in done.stdout
    for name in ("server.key_secret", "client.key_secret"):
        assert stat.S_IMODE((keys / name).stat().st_mode) == 0o600
    server, client = load_server(keys), load_client(keys)  # as the recorder loads them
    assert server.pair.public != old_server.public
    assert client.server_public == server.pair.public
    # both pairs whole, the client's secret open to others: replaced, not "already exist";
    # the old client key leaves the allow-list
    old_client = client.pair.public
    (entry,) = (
        p
        for p in (keys / "allowed").iterdir()
        if read_key_file(p, secret=False).public == old_client
    )
    (keys / "client.key_secret").chmod(0o640)
    done = persist("keys", "init", "--log-dir", str(logs))
    assert done.returncode == 0, done.stderr
    assert (
        f"made a new client key pair: {keys / 'client.key_secret'} is open to others (mode 0640)"
    ) in done.stdout
    assert f"took the old client key off the allow-list: {entry}" in done.stdout
    allowed = {read_key_file(p, secret=False).public for p in (keys / "allowed").iterdir()}
    assert load_client(keys).pair.public in allowed and old_client not in allowed
    assert load_server(keys).pair.public == server.pair.public  # the private one is kept
    # a kept pair whose public file held another key: rewritten, and named
    (keys / "server.key").write_text((keys / "client.key").read_text())
    (keys / "client.key_secret").unlink()
    done = persist("keys", "init", "--log-dir", str(logs))
    assert done.returncode == 0, done.stderr
    assert "kept the server key pair already there" in done.stdout
    assert "server.key (held another key than server.key_secret's)" in done.stdout
    assert load_client(keys).server_public == load_server(keys).pair.public


def test_a_secret_key_open_to_others_is_one_policy_and_the_allow_list_kept_is_said(
    tmp_path: Path,
) -> None:
    """The recorder, broker and clients told to `chmod 600` a secret key file others
    could read, and `persist doctor --fix` did so, while `persist keys init` replaced
    such a pair as possibly leaked; and keys init kept the allow-list without a word
    when it made new keys (and called a pair kept beside an exposed one "a keys init
    that did not finish")."""
    logs = healthy_folder(tmp_path, messages=2400, session=False).root
    keys = logs / "keys"
    assert persist("keys", "init", "--log-dir", str(logs)).returncode == 0
    other = tmp_path / "other-host"
    assert persist("keys", "init", "--keys", str(other)).returncode == 0
    assert persist("keys", "allow", str(other / "client.key"), "--keys", str(keys)).returncode == 0
    (keys / "server.key_secret").chmod(0o644)
    leaked = (
        f"{keys / 'server.key_secret'} is open to others (mode 0644), so its secret may have leaked"
    )
    refused = persist(
        "broker", "--curve", "--keys", str(keys),
        "--frontend", f"ipc://{tmp_path}/f.ipc", "--backend", f"ipc://{tmp_path}/b.ipc",
    )  # fmt: skip
    assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1, refused.stderr
    assert refused.stderr == (
        f"persist: {leaked}: run `persist keys init --keys {keys}` to replace the pair "
        "(chmod would not make it secret again)\n"
    )
    # doctor names it the same way and its --fix does not chmod it back to "private"
    found = persist("doctor", "--dir", str(logs), "--json")
    (finding,) = [
        f for f in orjson.loads(found.stdout)["findings"] if f["check"] == "permissions.secret-keys"
    ]
    assert finding["severity"] == "problem" and finding["auto_fix"] is False
    assert finding["summary"] == f"{leaked}; the recorder and broker refuse it"
    assert finding["fix"] == f"persist keys init --keys {keys}"
    persist("doctor", "--dir", str(logs), "--fix")
    assert stat.S_IMODE((keys / "server.key_secret").stat().st_mode) == 0o644
    done = persist("keys", "init", "--keys", str(keys))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert (
        f"made a new server key pair: {leaked}; clients holding the old server.key need the new one"
        in lines
    )
    assert "kept the client key pair already there (whole and private)" in lines
    kept = (
        f"kept the allow-list: 2 client keys in {keys / 'allowed'} still get in (a client's "
        "key does not change when the server's does; `persist keys list` shows them)"
    )
    assert kept in lines
    load_server(keys)  # as the recorder reads it: accepted
    # after a restore (secrets left out): new pairs, the allow-list kept, said once
    for name in ("server.key_secret", "client.key_secret"):
        (keys / name).unlink()
    done = persist("keys", "init", "--keys", str(keys))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("kept the allow-list: ") == 1
    assert "kept the allow-list: 2 client keys in " in done.stdout
    allowed = {read_key_file(p, secret=False).public for p in (keys / "allowed").iterdir()}
    assert load_client(other).pair.public in allowed and load_client(keys).pair.public in allowed


def test_keys_that_cannot_be_written_say_why_without_an_errno(tmp_path: Path) -> None:
    """A full disk (here a file size limit: EFBIG, as ENOSPC) under --keys said "cannot
    create CURVE keys in DIR: [Errno 28] No space left on device"; now the reason as
    words, as every other line says it, exit 1."""
    import resource
    import signal
    import subprocess
    import sys

    keys = tmp_path / "keys"

    def small_files() -> None:  # the child's writes past 64 bytes fail
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "recorder.cli",
            "keys",
            "init",
            "--keys",
            str(keys),
            "--log-dir",
            str(tmp_path / "logs"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=small_files,
    )
    assert run.returncode == 1, run.stderr
    assert run.stderr.splitlines() == [
        f"persist: cannot create CURVE keys in {keys}: File too large"
    ]
