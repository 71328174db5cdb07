"""One recorder, several endpoints: brokers it follows (`--broker` repeated), endpoints
it binds for publishers that connect out (`--bind`), and what was sent before it
subscribed ("not subscribed yet", counted apart from gaps)."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from recorder.bus.publisher import Publisher
from tests.support import PYTHON, Proc, free_port, journal_records, read_status, wait_for

pytestmark = pytest.mark.timeout(90)


def persist(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "recorder.cli", *args], capture_output=True, text=True, timeout=30
    )


def broker(procs: Callable[..., Proc], name: str) -> tuple[Proc, str, str]:
    front, back = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    proc = procs("broker", "--frontend", front, "--backend", back, name=name)
    for ep in (front, back):
        port = int(ep.rsplit(":", 1)[1])
        wait_for(lambda p=port: _listening(p), what=f"{name} listening")
    return proc, front, back


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def endpoint_states(log_dir: Path) -> dict[str, dict]:
    return {e["endpoint"]: e for e in read_status(log_dir).get("endpoints", [])}


def test_one_recorder_follows_two_brokers_and_a_bound_endpoint(
    procs: Callable[..., Proc], tmp_path: Path
) -> None:
    log_dir = tmp_path / "logs"
    _, front_a, back_a = broker(procs, "broker-a")
    broker_b, front_b, back_b = broker(procs, "broker-b")
    bound = f"ipc://{tmp_path}/recorder.ipc"
    rec = procs(
        "record",
        "--broker", back_a,
        "--broker", back_b,
        "--bind", bound,
        "--log-dir", str(log_dir),
        "--embedded", "no",
        name="recorder",
    )  # fmt: skip
    wait_for(
        lambda: (
            [e.get("connection") for e in endpoint_states(log_dir).values()]
            == ["connected", "connected", "listening"]
        ),
        what="both brokers connected and the endpoint bound",
    )
    sent: dict[str, list[int]] = {}
    for name, endpoint in (("via-a", front_a), ("via-b", front_b), ("direct", bound)):
        with Publisher(endpoint, agent=name, heartbeat_interval=0) as pub:
            assert pub.wait_ready(10), name
            sent[name] = [pub.send(f"agents.{name}", {"text": f"hello from {name}"}) for _ in "abc"]
    wait_for(
        lambda: read_status(log_dir).get("counts", {}).get("written", 0) >= 9,
        what="nine messages written",
    )
    msgs = [r for r in journal_records(log_dir) if r["kind"] == "msg"]
    by_topic = {t: sum(1 for r in msgs if r["topic"] == t) for t in {r["topic"] for r in msgs}}
    assert by_topic == {"agents.via-a": 3, "agents.via-b": 3, "agents.direct": 3}
    states = endpoint_states(log_dir)
    assert [(e["mode"], e["connection"]) for e in states.values()] == [
        ("connect", "connected"),
        ("connect", "connected"),
        ("bind", "listening"),
    ]
    out = persist("status", "--log-dir", str(log_dir))
    assert out.returncode == 0, out.stdout
    assert f"broker       {back_a} (connected)" in out.stdout
    assert f"broker       {back_b} (connected)" in out.stdout
    assert f"bound at     {bound} (listening" in out.stdout

    # One broker down: the other and the bound endpoint still record; status names it.
    broker_b.kill()
    wait_for(
        lambda: endpoint_states(log_dir)[back_b]["connection"] == "disconnected",
        timeout=15,
        what="broker b seen down",
    )
    with Publisher(front_a, agent="via-a2", heartbeat_interval=0) as pub:
        assert pub.wait_ready(10)
        pub.send("agents.after", {"text": "still recorded"})
    wait_for(
        lambda: any(r.get("topic") == "agents.after" for r in journal_records(log_dir)),
        what="a message through broker a while b is down",
    )
    degraded = wait_for(
        lambda: (r := persist("status", "--log-dir", str(log_dir))).returncode == 6 and r,
        timeout=20,
        what="degraded once broker b has been down for 5 s",
    )
    assert isinstance(degraded, subprocess.CompletedProcess)
    assert f"records nothing from it: the broker at {back_b} is unreachable" in degraded.stdout

    rec.signal(15)
    assert rec.wait(15) == 0, rec.output()
    events = [r for r in journal_records(log_dir) if r["kind"] == "event"]
    first = events[0]
    assert first["event"] == "start" and first["brokers"] == [back_a, back_b]
    assert first["bind"] == [bound]
    assert any(e["event"] == "listening" and e["endpoint"] == bound for e in events)
    assert any(e["event"] == "disconnected" and e["broker"] == back_b for e in events)
    assert any(e["event"] == "peer-connected" and e["endpoint"] == bound for e in events)


def test_messages_sent_before_the_recorder_subscribed_are_a_window_not_a_gap(
    procs: Callable[..., Proc], tmp_path: Path
) -> None:
    log_dir = tmp_path / "logs"
    bound = f"tcp://127.0.0.1:{free_port()}"
    # A publisher that connects out to where the recorder will bind, and starts talking
    # before anyone listens: zmq drops those messages without a word.
    pub = Publisher(bound, agent="early", heartbeat_interval=0)
    try:
        for _ in range(5):
            pub.send("agents.early", {"text": "nobody hears this"})
        rec = procs("record", "--bind", bound, "--log-dir", str(log_dir), name="recorder")
        wait_for(
            lambda: read_status(log_dir).get("connection") == "listening", what="recorder bound"
        )
        assert pub.wait_ready(10)
        for _ in range(3):
            pub.send("agents.early", {"text": "heard"})
        wait_for(
            lambda: read_status(log_dir).get("counts", {}).get("written", 0) >= 3,
            what="three messages written",
        )
    finally:
        pub.close()
    counts = read_status(log_dir)["counts"]
    assert counts["not_subscribed"] == 5 and counts["not_subscribed_publishers"] == 1
    assert counts["gaps"] == 0 and counts["missed"] == 0
    out = persist("status", "--log-dir", str(log_dir))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "not subscribed yet  5 messages from 1 publishers were sent before" in out.stdout
    assert "gaps         0 this run (0 messages known lost)" in out.stdout
    assert "were sent before the recorder listened, this run (not in" in out.stdout
    rec.signal(15)
    assert rec.wait(15) == 0, rec.output()
    # stopped: its status is its last report, and says so (no link, no rate as if now)
    out = persist("status", "--log-dir", str(log_dir))
    assert out.returncode == 3, out.stdout + out.stderr
    lines = {line.split()[0]: line.strip() for line in out.stdout.splitlines()[1:] if line.strip()}
    assert lines["bound"].endswith(" when last heard of)"), lines["bound"]
    assert lines["messages"].endswith(
        " in journal when last heard of, 3 taken in during its last run"
    )
    assert lines["gaps"].startswith("gaps         0 during its last run (0 messages known lost)")
    windows = [r for r in journal_records(log_dir) if r["kind"] == "gap"]
    assert [(g["cause"], g["from_seq"], g["to_seq"], g["missed"]) for g in windows] == [
        ("before-first-seen", 1, 5, 5)
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["--broker", "tcp://127.0.0.1:5001", "--broker", "tcp://127.0.0.1:5001"],
            "--broker tcp://127.0.0.1:5001 is given twice",
        ),
        (
            ["--broker", "tcp://127.0.0.1:5002", "--bind", "tcp://127.0.0.1:5002"],
            "--bind tcp://127.0.0.1:5002 is given to --broker and --bind",
        ),
        (["--bind", "tcp://0.0.0.0:5003"], "--bind tcp://0.0.0.0:5003 would listen beyond"),
        (["--bind", "tcp://*:5004"], "--bind tcp://*:5004 would listen beyond"),
        (["--bind", "tcp://eth0:5005"], "--bind tcp://eth0:5005 would listen beyond"),
        (["--broker", "udp://x:1"], "is not a ZeroMQ endpoint"),
        (["--bind", "garbage"], "is not a ZeroMQ endpoint"),
        (["--bind", "ipc:///tmp/x.ipc", "--embedded", "yes"], "--embedded yes needs a --broker"),
        # one broker under two spellings: every message was journaled twice, "healthy"
        (
            ["--broker", "tcp://127.0.0.1:5008", "--broker", "tcp://localhost:5008"],
            "--broker tcp://localhost:5008 is given twice: --broker tcp://127.0.0.1:5008 "
            "under another spelling (both reach 127.0.0.1:5008); every message would be "
            "recorded twice",
        ),
        (
            ["--broker", "tcp://LocalHost:05009", "--bind", "tcp://127.0.0.1:5009"],
            "--bind tcp://127.0.0.1:5009 is given to --broker and --bind: --broker "
            "tcp://LocalHost:05009 under another spelling (both reach 127.0.0.1:5009)",
        ),
        # a wildcard or port 0 can be bound, never connected to (libzmq: "Invalid
        # argument", exit 1, or a recorder that waited for nothing); an ipc path longer
        # than a socket address holds cannot be either ("File name too long", exit 1)
        (["--broker", "tcp://*:5006"], "--broker 'tcp://*:5006' cannot be connected to: "),
        (["--broker", "tcp://127.0.0.1:*"], "cannot be connected to: a port of * is for"),
        (["--broker", "tcp://127.0.0.1:*", "--detach"], "--broker 'tcp://127.0.0.1:*' cannot"),
        (["--broker", "tcp://127.0.0.1:0"], "cannot be connected to: port 0 is for binding"),
        (["--broker", f"ipc:///tmp/{'a' * 120}"], "is 125 bytes, longer than the 107"),
        (["--broker", f"ipc:///tmp/{'a' * 120}", "--detach"], "longer than the 107"),
        (["--bind", f"ipc:///tmp/{'a' * 120}"], "is 125 bytes, longer than the 107"),
        (
            ["--embedded", "no", "--publish-endpoint", "tcp://*:5007"],
            "--publish-endpoint 'tcp://*:5007' cannot be connected to",
        ),
    ],
)
def test_bad_or_duplicate_endpoints_are_one_line_and_exit_2(
    tmp_path: Path, args: list[str], says: str
) -> None:
    out = persist("record", *args, "--log-dir", str(tmp_path / "logs"))
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("persist: ") and says in lines[0], out.stderr
    assert not (tmp_path / "logs" / "segments").exists()  # refused before anything is written


def test_a_bind_that_cannot_be_made_stops_the_start_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        out = persist(
            "record", "--bind", f"tcp://127.0.0.1:{port}", "--log-dir", str(tmp_path / "logs")
        )
    assert out.returncode == 1, out.stderr
    assert time.monotonic() - started < 15
    line = out.stderr.strip().splitlines()[-1]
    assert f"cannot bind tcp://127.0.0.1:{port}" in line and "Address already in use" in line
    assert "Traceback" not in out.stderr
    assert read_status(tmp_path / "logs").get("state") == "stopped"


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_loopback_endpoints_work_end_to_end(
    procs: Callable[..., Proc], tmp_path: Path
) -> None:
    """`tcp://[::1]:PORT` passes the loopback check; binding it failed with "No such
    device" (libzmq's IPV6 option is off by default), followed by a wrong hint ("is
    another broker running?"). Now a broker binds it, a recorder follows it and
    `persist send` reaches it."""
    log_dir = tmp_path / "logs"
    front, back = f"tcp://[::1]:{free_port()}", f"tcp://[::1]:{free_port()}"
    procs("broker", "--frontend", front, "--backend", back, name="broker")
    procs("record", "--broker", back, "--log-dir", str(log_dir), "--embedded", "no", name="rec")
    wait_for(lambda: read_status(log_dir).get("connection") == "connected", what="connected")
    sent = persist("send", "agents.v6", "--text", "over", "ipv6", "--endpoint", front)
    assert sent.returncode == 0, sent.stderr
    wait_for(
        lambda: any(r.get("topic") == "agents.v6" for r in journal_records(log_dir)),
        what="the message recorded",
    )


def test_ipc_sockets_are_private_whatever_the_umask(
    procs: Callable[..., Proc], tmp_path: Path
) -> None:
    """The ipc socket files a broker and a recorder bind took the umask's mode (0777
    under umask 000: any local user could publish or listen); now only their user's.
    A bind that fails for another reason than a taken address gets no "is another
    broker running?" hint."""
    import os

    old = os.umask(0)
    try:
        front, back = f"ipc://{tmp_path}/front.ipc", f"ipc://{tmp_path}/back.ipc"
        procs("broker", "--frontend", front, "--backend", back, name="broker")
        bound = f"ipc://{tmp_path}/bound.ipc"
        log_dir = tmp_path / "logs"
        procs("record", "--bind", bound, "--log-dir", str(log_dir), "--embedded", "no", name="r")
        names = ("front.ipc", "back.ipc", "bound.ipc")
        wait_for(lambda: all((tmp_path / n).exists() for n in names), what="sockets bound")
        for name in names:
            assert (tmp_path / name).stat().st_mode & 0o077 == 0, name
    finally:
        os.umask(old)
    out = persist("broker", "--frontend", f"ipc://{tmp_path}/no/such/dir.ipc", "--backend", back)
    assert out.returncode == 1
    (line,) = out.stderr.splitlines()
    assert line.startswith("persist: cannot bind the broker") and "another broker" not in line


def test_one_endpoint_for_both_sides_of_a_broker_is_one_line_and_exit_2(
    procs: Callable[..., Proc], tmp_path: Path
) -> None:
    """`persist broker --frontend ipc://P --backend ipc://P` started: its subscribers'
    bind replaced its publishers' socket file, nothing sent reached anyone (`persist
    send` exit 7) while a recorder following it said healthy; on one tcp port (or
    `localhost` and 127.0.0.1) it failed with "is another broker running?", exit 1,
    though none ran. A recorder's embedded broker did the same with `--publish-endpoint`
    and `--broker`. Now one line naming the pair, exit 2, nothing bound."""
    port = free_port()
    sock = f"ipc://{tmp_path}/bus.sock"
    why = "the broker needs one endpoint for publishers and another for subscribers"
    embedded = (
        "the embedded broker needs one endpoint for publishers (--publish-endpoint) and "
        "another for subscribers (--broker)"
    )
    logs = str(tmp_path / "logs")
    cases = [
        (
            ["broker", "--frontend", sock, "--backend", sock],
            f"--backend {sock} is given to --frontend and --backend: {why}",
        ),
        (
            ["broker", "--frontend", f"tcp://127.0.0.1:{port}", "--backend", f"tcp://localhost:{port}"],
            f"--backend tcp://localhost:{port} is given to --frontend and --backend: --frontend "
            f"tcp://127.0.0.1:{port} under another spelling (both reach 127.0.0.1:{port}); {why}",
        ),
        (
            ["broker", "--frontend", f"tcp://*:{port}", "--backend", f"tcp://127.0.0.1:{port}",
             "--bind-public"],
            f"--backend tcp://127.0.0.1:{port} and --frontend tcp://*:{port} are on one port, "
            f"which * takes on every address; {why}",
        ),
        (
            ["record", "--embedded", "yes", "--publish-endpoint", sock, "--broker", sock,
             "--log-dir", logs],
            f"--broker {sock} is given to --publish-endpoint and --broker: {embedded}",
        ),
        (
            ["record", "--embedded", "yes", "--publish-endpoint", f"tcp://localhost:{port}",
             "--broker", f"tcp://127.0.0.1:{port}", "--log-dir", logs, "--detach"],
            f"--broker tcp://127.0.0.1:{port} is given to --publish-endpoint and --broker: "
            f"--publish-endpoint tcp://localhost:{port} under another spelling (both reach "
            f"127.0.0.1:{port}); {embedded}",
        ),
    ]  # fmt: skip
    for args, says in cases:
        out = persist(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr == f"persist: {says}\n", args
        assert not (tmp_path / "bus.sock").exists()
        assert not (tmp_path / "logs" / "segments").exists()
    # a port of * is a free one at each bind: one endpoint, two sockets
    any_port = "tcp://127.0.0.1:*"
    proc = procs("broker", "--frontend", any_port, "--backend", any_port, name="any")
    wait_for(lambda: "subscribers to" in proc.output(), what="the broker started")
    ports = re.findall(r"tcp://127\.0\.0\.1:(\d+)", proc.output())
    assert len(ports) == 2 and ports[0] != ports[1], proc.output()
