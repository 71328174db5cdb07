"""Options for several brokers and bound endpoints: checked once, and carried whole by
the argv every recorder is started with (`recorder_argv`: detach, launcher, unit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder.bus.endpoints import is_local_endpoint
from recorder.cli.main import build_parser
from recorder.cli.record import _options
from recorder.daemon.options import EmbeddedMode, RecorderOptions, recorder_argv
from recorder.errors import BadOption


@pytest.mark.parametrize(
    ("endpoint", "local"),
    [
        ("tcp://127.0.0.1:5555", True),
        ("tcp://127.8.9.1:*", True),
        ("tcp://localhost:1", True),
        ("tcp://[::1]:1", True),
        ("ipc:///tmp/x", True),
        ("inproc://x", True),
        ("tcp://0.0.0.0:1", False),
        ("tcp://*:1", False),
        ("tcp://[::]:1", False),
        ("tcp://eth0:1", False),
        ("tcp://192.168.1.4:1", False),
        ("tcp://example.com:1", False),
        ("tcp://127.0.0.1;10.0.0.1:1", False),
    ],
)
def test_what_counts_as_loopback_for_a_bind(endpoint: str, local: bool) -> None:
    assert is_local_endpoint(endpoint) is local


def test_a_public_bind_needs_the_flag(tmp_path: Path) -> None:
    with pytest.raises(BadOption, match=r"--bind tcp://0\.0\.0\.0:7000 would listen beyond"):
        RecorderOptions(log_dir=tmp_path, broker=None, bind=("tcp://0.0.0.0:7000",))
    opts = RecorderOptions(
        log_dir=tmp_path, broker=None, bind=("tcp://0.0.0.0:7000",), bind_public=True
    )
    assert opts.connects == () and opts.describe_endpoints() == "bound at tcp://0.0.0.0:7000"


def test_a_hosted_broker_on_a_public_address_needs_the_flag(tmp_path: Path) -> None:
    """With `--embedded yes` the broker we host binds `--broker` (its subscriber side:
    whoever reaches it reads every message); it listened on 0.0.0.0 without a word."""
    for public in ("tcp://0.0.0.0:7001", "tcp://192.0.2.2:7001"):
        with pytest.raises(BadOption, match=f"--broker {public} would listen beyond"):
            RecorderOptions(log_dir=tmp_path, broker=public, embedded=EmbeddedMode.YES)
        RecorderOptions(
            log_dir=tmp_path, broker=public, embedded=EmbeddedMode.YES, bind_public=True
        )
        RecorderOptions(log_dir=tmp_path, broker=public, embedded=EmbeddedMode.NO)  # connects


def test_nothing_to_record_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadOption, match="nothing to record"):
        RecorderOptions(log_dir=tmp_path, broker=None)


def test_every_endpoint_survives_the_argv_every_recorder_is_started_with(tmp_path: Path) -> None:
    options = RecorderOptions(
        log_dir=tmp_path,
        broker="tcp://127.0.0.1:5001",
        more_brokers=("ipc:///tmp/b", "tcp://127.0.0.1:5002"),
        bind=("tcp://0.0.0.0:6000", "ipc:///tmp/c"),
        bind_public=True,
    )
    argv = recorder_argv(options)
    args = build_parser().parse_args(argv[3:])
    back = _options(args)
    assert back.connects == options.connects and back.bind == options.bind
    assert back.bind_public and back.broker == "tcp://127.0.0.1:5001"
    only_bind = RecorderOptions(log_dir=tmp_path, broker=None, bind=("ipc:///tmp/d",))
    back = _options(build_parser().parse_args(recorder_argv(only_bind)[3:]))
    assert back.broker is None and back.bind == ("ipc:///tmp/d",)


def test_an_ipc_endpoint_is_free_unless_something_accepts_on_it(tmp_path: Path) -> None:
    import socket

    from recorder.bus.endpoints import endpoint_free

    path = tmp_path / "bus.pub"
    assert endpoint_free(f"ipc://{path}")  # no file
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    assert not endpoint_free(f"ipc://{path}")  # a broker there
    listener.close()  # the file stays, as after a broker that stopped
    assert path.exists() and endpoint_free(f"ipc://{path}")
    path.unlink()
    path.write_text("not a socket")
    assert not endpoint_free(f"ipc://{path}")  # binding would replace someone's file
    name = f"@persist-test-{tmp_path.name}"
    assert endpoint_free(f"ipc://{name}")  # the abstract namespace: no file at all
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind("\0" + name[1:])
    abstract.listen(1)
    try:
        assert not endpoint_free(f"ipc://{name}")
    finally:
        abstract.close()


def test_one_broker_under_two_spellings_is_refused_and_two_sockets_are_not(
    tmp_path: Path,
) -> None:
    """Two spellings of one socket were accepted, and every message journaled twice:
    localhost and 127.0.0.1, two IPv6 spellings, an ipc path and a symlink to it, a
    path with `.` in it. 127.0.0.1 and ::1 are two sockets (a broker bound on one is
    not on the other), and so are two ports or two socket files: those are accepted."""
    import socket

    folder = tmp_path / "bus"
    folder.mkdir()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(folder / "sub"))
    (tmp_path / "link").symlink_to(folder / "sub")
    (tmp_path / "dirlink").symlink_to(folder)
    try:
        for first, second in [
            ("tcp://127.0.0.1:7101", "tcp://localhost:7101"),
            ("tcp://[::1]:7102", "tcp://[0:0:0:0:0:0:0:1]:7102"),
            ("tcp://127.0.0.1:7103", "tcp://10.0.0.1;127.0.0.1:7103"),
            (f"ipc://{folder}/sub", f"ipc://{tmp_path}/link"),
            (f"ipc://{folder}/gone", f"ipc://{tmp_path}/dirlink/./gone"),
        ]:
            with pytest.raises(BadOption, match=r"is given twice: --broker .* under another"):
                RecorderOptions(log_dir=tmp_path / "logs", broker=first, more_brokers=(second,))
        for first, second in [
            ("tcp://127.0.0.1:7104", "tcp://[::1]:7104"),
            ("tcp://127.0.0.1:7105", "tcp://127.0.0.2:7105"),
            ("tcp://127.0.0.1:7106", "tcp://localhost:7107"),
            (f"ipc://{folder}/sub", f"ipc://{folder}/other"),
        ]:
            options = RecorderOptions(
                log_dir=tmp_path / "logs", broker=first, more_brokers=(second,)
            )
            assert options.connects == (first, second)
    finally:
        sock.close()


def test_a_broker_s_two_sides_on_one_socket_are_told_from_two_sockets() -> None:
    """One socket bound twice: the same endpoint, one under two spellings, a wildcard
    and an address on its port (`::` takes IPv4 too: libzmq's IPv6 sockets are
    dual-stack). Two sockets: a port or an ipc path taken free at each bind, two
    addresses or families on one port."""
    from recorder.bus.endpoints import bind_twice_problem

    def problem(front: str, back: str) -> str | None:
        return bind_twice_problem(("--frontend", front), ("--backend", back), why="apart")

    for front, back in [
        ("ipc:///tmp/a.sock", "ipc:///tmp/a.sock"),
        ("ipc:///tmp/a.sock", "ipc:///tmp/./a.sock"),
        ("ipc://@bus", "ipc://@bus"),
        ("tcp://127.0.0.1:7201", "tcp://localhost:7201"),
        ("tcp://[::1]:7202", "tcp://[0:0:0:0:0:0:0:1]:7202"),
        ("tcp://*:7203", "tcp://127.0.0.1:7203"),
        ("tcp://0.0.0.0:7204", "tcp://127.0.0.2:7204"),
        ("tcp://[::]:7205", "tcp://127.0.0.1:7205"),
        ("tcp://[::1]:7206", "tcp://[::]:7206"),
    ]:
        said = problem(front, back)
        assert said is not None and said.startswith(f"--backend {back} "), (front, back)
        assert said.endswith("; apart") or said.endswith(": apart"), said
    for front, back in [
        ("tcp://127.0.0.1:*", "tcp://127.0.0.1:*"),
        ("tcp://127.0.0.1:0", "tcp://127.0.0.1:0"),
        ("ipc://*", "ipc://*"),
        ("ipc:///tmp/a.sock", "ipc:///tmp/b.sock"),
        ("tcp://127.0.0.1:7207", "tcp://127.0.0.1:7208"),
        ("tcp://127.0.0.1:7209", "tcp://127.0.0.2:7209"),
        ("tcp://127.0.0.1:7210", "tcp://[::1]:7210"),
        ("tcp://0.0.0.0:7211", "tcp://[::1]:7211"),
        ("tcp://*:7212", "tcp://[::1]:7212"),
    ]:
        assert problem(front, back) is None, (front, back)
