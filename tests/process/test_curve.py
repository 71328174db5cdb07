"""CURVE (`persist keys`, `--curve`): a client with no key or a key not on the allow-list
can neither read nor inject, while an allowed one works end to end. Real broker and
recorder processes, over tcp on 127.0.0.1 and over ipc; the counts are printed (-s)
and quoted in RELIABILITY.md."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import zmq

from recorder.bus.keys import ClientKeys, load_client
from recorder.bus.publisher import Publisher
from tests.demo_journal import build_demo
from tests.support import (
    PYTHON,
    Proc,
    free_port,
    journal_records,
    not_zeromq,
    read_status,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)

ATTEMPTS = 200  # messages each intruder publisher tries to inject


def persist(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "recorder.cli", *args], capture_output=True, text=True, timeout=60
    )


def keys_init(folder: Path) -> None:
    out = persist("keys", "init", "--keys", str(folder))
    assert out.returncode == 0, out.stderr


def endpoints(kind: str, tmp_path: Path) -> tuple[str, str]:
    if kind == "tcp":
        return f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    return f"ipc://{tmp_path}/front.ipc", f"ipc://{tmp_path}/back.ipc"


def subscriber(ctx: zmq.Context, endpoint: str, keys: ClientKeys | None) -> zmq.Socket:
    sock = ctx.socket(zmq.SUB)
    sock.linger = 0
    if keys is not None:
        sock.curve_secretkey = keys.pair.secret
        sock.curve_publickey = keys.pair.public
        sock.curve_serverkey = keys.server_public
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(endpoint)
    return sock


def drain(sock: zmq.Socket, seconds: float) -> list[list[bytes]]:
    got: list[list[bytes]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if sock.poll(int(left * 1000) + 1):
            got.append(sock.recv_multipart())
    return got


def test_replay_names_a_refused_handshake_as_send_does(
    procs: Callable[..., Proc], tmp_path: Path
) -> None:
    """Refused by a CURVE broker, `persist replay` says so in `persist send`'s words
    (before: "no subscriber reached us ... is the broker (and the recorder) running?")."""
    keys = tmp_path / "keys"
    keys_init(keys)
    front, back = endpoints("tcp", tmp_path)
    broker = procs(
        "broker", "--frontend", front, "--backend", back, "--curve", "--keys", str(keys),
        name="broker",
    )  # fmt: skip
    wait_for(lambda: "CURVE" in broker.output(), what="broker up with CURVE")
    root = build_demo(tmp_path / "logs")
    sent = persist("send", "x.y", "hi", "--endpoint", front, "--no-curve", "--wait", "2")
    assert sent.returncode == 7 and sent.stderr.startswith("persist: nothing sent: "), sent
    why = sent.stderr.removeprefix("persist: nothing sent: ")
    assert why.startswith(f"the broker at {front} refused us: "), why
    replayed = persist(
        "replay", "latest", "--log-dir", str(root), "--endpoint", front, "--no-curve",
        "--wait", "2",
    )  # fmt: skip
    assert (replayed.returncode, replayed.stdout) == (1, ""), replayed
    assert replayed.stderr == f"persist: nothing replayed: {why}"


@pytest.mark.parametrize("kind", ["tcp", "ipc"])
def test_no_key_and_wrong_key_clients_neither_read_nor_inject(
    procs: Callable[..., Proc], tmp_path: Path, kind: str
) -> None:
    keys, other = tmp_path / "keys", tmp_path / "other-keys"
    keys_init(keys)
    keys_init(other)  # a real key pair, not on our allow-list
    allowed = load_client(keys)
    # The wrong client even knows our server's public key: only the allow-list stops it.
    wrong = ClientKeys(load_client(other).pair, allowed.server_public)
    log_dir = tmp_path / "logs"
    front, back = endpoints(kind, tmp_path)
    broker = procs(
        "broker", "--frontend", front, "--backend", back, "--curve", "--keys", str(keys),
        name="broker",
    )  # fmt: skip
    wait_for(lambda: "CURVE" in broker.output(), what="broker up with CURVE")
    rec = procs(
        "record", "--broker", back, "--log-dir", str(log_dir), "--embedded", "no",
        "--curve", "--keys", str(keys), "--search-index", "off",
        name="recorder",
    )  # fmt: skip
    wait_for(
        lambda: read_status(log_dir).get("connection") == "connected",
        timeout=20,
        what="the recorder's CURVE handshake",
    )

    ctx = zmq.Context()
    try:
        readers = {
            "no key": subscriber(ctx, back, None),
            "wrong key": subscriber(ctx, back, wrong),
            "allowed": subscriber(ctx, back, allowed),
        }
        intruders = {
            "no key": Publisher(front, agent="nokey", heartbeat_interval=0, context=ctx),
            "wrong key": Publisher(
                front, agent="wrongkey", heartbeat_interval=0, context=ctx, curve=wrong
            ),
        }
        # An intruder never sees a subscription: its handshake is refused.
        for name, pub in intruders.items():
            assert not pub.wait_ready(2), f"{name} publisher saw a subscriber"
            for i in range(ATTEMPTS):
                pub.send(f"intruder.{name.replace(' ', '-')}", {"i": i})

        # The allowed client, through the CLI and through the helper.
        sent = persist(
            "send", "agents.cli", "hello", "--endpoint", front, "--curve", "--keys", str(keys),
            "--wait", "10",
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        # refused clients are told so, not "is the broker running?"
        # at once: a refused handshake ends the wait (it waited out --wait before)
        for refused in (["--no-curve"], ["--curve", "--keys", str(other)]):
            began = time.monotonic()
            out = persist("send", "x.y", "hi", "--endpoint", front, *refused, "--wait", "60")
            assert out.returncode == 7, out.stderr
            assert f"the broker at {front} refused us" in out.stderr, (refused, out.stderr)
            assert time.monotonic() - began < 30, refused
        with Publisher(front, agent="ok", heartbeat_interval=0, curve=allowed, context=ctx) as pub:
            assert pub.wait_ready(10)
            for i in range(ATTEMPTS):
                pub.send("agents.ok", {"i": i})

        wait_for(
            lambda: (
                sum(r.get("topic") == "agents.ok" for r in journal_records(log_dir)) == ATTEMPTS
            ),
            timeout=30,
            what="the allowed publisher's messages in the journal",
        )
        received = {name: drain(sock, 1.5) for name, sock in readers.items()}
        for pub in intruders.values():
            pub.close(bye=False)
    finally:
        for sock in readers.values():
            sock.close()
        ctx.term()

    msgs = [r for r in journal_records(log_dir) if r["kind"] == "msg"]
    injected = sum(r["topic"].startswith("intruder.") for r in msgs)
    topics = {r["topic"] for r in msgs}
    print(
        f"\nCURVE over {kind}: received by no-key subscriber {len(received['no key'])}, "
        f"by wrong-key subscriber {len(received['wrong key'])}; injected into the journal "
        f"{injected} of {2 * ATTEMPTS} intruder messages; allowed subscriber received "
        f"{sum(f[0] == b'agents.ok' for f in received['allowed'])} of {ATTEMPTS}"
    )
    assert received["no key"] == [] and received["wrong key"] == []
    assert injected == 0
    assert {"agents.cli", "agents.ok"} <= topics
    assert sum(f[0] == b"agents.ok" for f in received["allowed"]) == ATTEMPTS
    assert rec.popen.poll() is None and broker.popen.poll() is None


def test_embedded_broker_with_curve(procs: Callable[..., Proc], tmp_path: Path) -> None:
    """`persist record --curve --embedded yes`: the recorder hosts a CURVE broker and
    is its allowed client; a publisher without keys injects nothing."""
    keys = tmp_path / "keys"
    keys_init(keys)
    log_dir = tmp_path / "logs"
    front, back = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    procs(
        "record", "--broker", back, "--publish-endpoint", front, "--embedded", "yes",
        "--log-dir", str(log_dir), "--curve", "--keys", str(keys), "--search-index", "off",
        name="recorder",
    )  # fmt: skip
    wait_for(lambda: read_status(log_dir).get("connection") == "connected", timeout=20)
    with Publisher(front, agent="nokey", heartbeat_interval=0) as bad:
        assert not bad.wait_ready(1.5)
        for i in range(50):
            bad.send("intruder.nokey", {"i": i})
    with Publisher(front, agent="ok", heartbeat_interval=0, curve=load_client(keys)) as pub:
        assert pub.wait_ready(10)
        for i in range(50):
            pub.send("agents.ok", {"i": i})
    wait_for(
        lambda: sum(r.get("topic") == "agents.ok" for r in journal_records(log_dir)) == 50,
        timeout=20,
    )
    assert not any(r.get("topic") == "intruder.nokey" for r in journal_records(log_dir))

    # `persist replay --curve` gets in; the same replay without keys does not.
    assert persist("checkpoint", "--log-dir", str(log_dir)).returncode == 0
    common = ("replay", "latest", "--endpoint", front, "--log-dir", str(log_dir))
    refused = persist(*common, "--no-curve", "--wait", "1.5")
    assert refused.returncode == 1 and f"the broker at {front} refused us" in refused.stderr
    replayed = persist(*common, "--curve", "--keys", str(keys), "--wait", "10")
    assert replayed.returncode == 0, replayed.stderr

    def replays() -> int:
        return sum(
            r["kind"] == "msg" and "replay_of" in r.get("meta", {})
            for r in journal_records(log_dir)
        )

    wait_for(lambda: replays() == 50, timeout=20, what="50 replayed messages journaled")


def test_keys_and_curve_errors_are_one_line(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys_init(keys)
    assert (keys.stat().st_mode & 0o777) == 0o700
    for secret in keys.glob("*.key_secret"):
        assert (secret.stat().st_mode & 0o777) == 0o600
    again = persist("keys", "init", "--keys", str(keys))
    assert again.returncode == 1 and "already exist" in again.stderr

    listed = persist("keys", "list", "--keys", str(keys))
    assert listed.returncode == 0
    roles = [line.split()[0] for line in listed.stdout.splitlines()]
    assert roles == ["server", "client", "allowed"]

    other = tmp_path / "other"
    keys_init(other)
    allowed = persist("keys", "allow", str(other / "client.key"), "--keys", str(keys))
    assert allowed.returncode == 0, allowed.stderr
    assert len(list((keys / "allowed").glob("*.key"))) == 2
    bad = tmp_path / "bad.key"
    bad.write_text("not a certificate\n")
    refused = persist("keys", "allow", str(bad), "--keys", str(keys))
    assert refused.returncode == 1 and "holds no CURVE public key" in refused.stderr
    absent = persist("keys", "allow", str(tmp_path / "absent.key"), "--keys", str(keys))
    assert absent.returncode == 1
    assert absent.stderr == (
        f"persist: no key file at {tmp_path / 'absent.key'}: give the public key of the "
        "client to let in (the client.key that `persist keys init` made on its machine)\n"
    )

    port = f"tcp://127.0.0.1:{free_port()}"
    missing = persist(
        "send", "t", "x", "--curve", "--keys", str(tmp_path / "none"), "--endpoint", port
    )
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1 and "persist keys init" in missing.stderr

    (keys / "client.key_secret").chmod(0o644)
    loose = persist("send", "t", "x", "--curve", "--keys", str(keys), "--endpoint", port)
    assert loose.returncode == 1
    assert loose.stderr.count("\n") == 1 and "so its secret may have leaked" in loose.stderr
    assert f"run `persist keys init --keys {keys}` to replace the pair" in loose.stderr
    (keys / "client.key_secret").chmod(0o600)

    both = persist(
        "record", "--broker", port, "--bind", f"ipc://{tmp_path}/r.ipc", "--curve",
        "--keys", str(keys), "--log-dir", str(tmp_path / "logs"),
    )  # fmt: skip
    assert both.returncode == 2 and "--curve with both --bind and --broker" in both.stderr

    public = persist("broker", "--frontend", "tcp://0.0.0.0:1", "--backend", port)
    assert public.returncode == 2 and "--bind-public" in public.stderr


def test_keys_and_a_public_endpoint_turn_curve_on_unless_refused(
    procs: Callable[..., Proc], tmp_path: Path
) -> None:
    log_dir = tmp_path / "logs"
    assert persist("keys", "init", "--log-dir", str(log_dir)).returncode == 0
    for choice, expect in (((), True), (("--no-curve",), False)):
        front = f"tcp://0.0.0.0:{free_port()}"
        back = f"tcp://127.0.0.1:{free_port()}"
        proc = procs(
            "broker", "--frontend", front, "--backend", back, "--bind-public",
            "--log-dir", str(log_dir), *choice, name="broker",
        )  # fmt: skip
        wait_for(lambda p=proc: "publishers connect" in p.output(), what="broker up")
        assert ("CURVE" in proc.output()) is expect, proc.output()
        proc.signal(15)
        assert proc.wait(10) == 0


def test_a_recorder_refused_by_curve_says_so_and_gets_in_once_allowed(
    procs: Callable[..., Proc], tmp_path: Path
) -> None:
    """A recorder whose client key the broker does not allow: `persist status`, `doctor`
    and recorder.log say the broker refused its handshake, in `persist send`'s words
    (before: "unreachable ... is it running, or frozen?", and only "disconnected" in the
    log). libzmq never tries a refused handshake again; the recorder does, so once the
    key is allowed and the broker restarted, it records."""
    keys, other = tmp_path / "keys", tmp_path / "other"
    keys_init(keys)
    keys_init(other)
    (other / "server.key").write_text((keys / "server.key").read_text())  # knows the server
    front, back = endpoints("tcp", tmp_path)
    broker_args = ("broker", "--frontend", front, "--backend", back, "--curve",
                   "--keys", str(keys))  # fmt: skip
    broker = procs(*broker_args, name="broker")
    wait_for(lambda: "CURVE" in broker.output(), what="broker up with CURVE")
    log_dir = tmp_path / "logs"
    procs(
        "record", "--broker", back, "--log-dir", str(log_dir), "--embedded", "no",
        "--curve", "--keys", str(other), "--search-index", "off", name="recorder",
    )  # fmt: skip
    sent = persist("send", "x.y", "hi", "--endpoint", front, "--curve", "--keys", str(other))
    assert sent.returncode == 7, sent
    words = sent.stderr.removeprefix("persist: nothing sent: ").strip()
    assert words.startswith(f"the broker at {front} refused us: its CURVE authentication"), words
    said = words.replace(front, back)  # the recorder's broker endpoint is the backend

    status = wait_for(
        lambda: (out := persist("status", "--log-dir", str(log_dir))).returncode == 6 and out,
        timeout=30,
        what="persist status degraded",
    )
    assert said in status.stdout.splitlines()[0], status.stdout
    assert "is it running, or frozen" not in status.stdout
    doctor = persist("doctor", "--log-dir", str(log_dir))
    assert said in doctor.stdout, doctor.stdout
    log = (log_dir / "recorder.log").read_text()
    assert log.count(said) == 1, log  # said once, not at every try
    journaled = [r for r in journal_records(log_dir) if r.get("event") == "handshake-failed"]
    assert journaled and journaled[0]["broker"] == back, journaled

    allowed = persist("keys", "allow", str(other / "client.key"), "--keys", str(keys))
    assert allowed.returncode == 0, allowed.stderr
    broker.signal(15)
    assert broker.wait(10) == 0
    broker = procs(*broker_args, name="broker")
    wait_for(
        lambda: read_status(log_dir).get("connection") == "connected",
        timeout=30,
        what="the recorder let in once its key is allowed",
    )
    ok = persist("status", "--log-dir", str(log_dir))
    assert ok.returncode == 0 and "refused us" not in ok.stdout, ok.stdout


def test_a_recorder_bound_with_curve_names_the_publisher_keys_it_refuses(
    procs: Callable[..., Proc], tmp_path: Path
) -> None:
    """`persist record --bind ... --curve`, a publisher whose client key is not allowed:
    the first refusal is a `publisher-refused` event naming its key and address, and one
    line in recorder.log; the refusals after it, within a minute, are counted and named
    by one more event when their minute is over or, as here, when the recorder stops
    first (a publisher retrying every 100 ms cannot flood the journal). `persist status`
    counts them and warns with the last key. The refused connections' ends are no
    `peer-disconnected`: an allowed publisher stays counted connected. Before 2026-12-07
    nothing named a refusal: status HEALTHY with "0 publishers", `peer-disconnected`
    events for peers never connected, and only "disconnected" in the log."""
    log_dir, stranger = tmp_path / "logs", tmp_path / "stranger"
    keys = log_dir / "keys"
    keys_init(keys)
    keys_init(stranger)
    (stranger / "server.key").write_text((keys / "server.key").read_text())  # knows ours
    bound = f"tcp://127.0.0.1:{free_port()}"
    recorder = procs(
        "record", "--bind", bound, "--curve", "--log-dir", str(log_dir),
        "--search-index", "off", "--monitor", "off", name="recorder",
    )  # fmt: skip
    wait_for(lambda: read_status(log_dir).get("connection") == "listening", what="recorder bound")
    friend = Publisher(bound, agent="friend", curve=load_client(keys))
    try:
        assert friend.wait_ready(10)
        wait_for(lambda: read_status(log_dir)["endpoints"][0]["peers"] == 1, what="friend in")
        theirs = load_client(stranger).pair.public.decode()

        def refused() -> list[dict]:
            return [r for r in journal_records(log_dir) if r.get("event") == "publisher-refused"]

        tries = 4
        for i in range(tries):
            sent = persist(
                "send", "agents.bad", "not allowed", "--endpoint", bound, "--curve",
                "--keys", str(stranger), "--wait", "2",
            )  # fmt: skip
            assert sent.returncode == 7 and "refused this client's key" in sent.stderr, sent
            if i == 0:
                wait_for(lambda: refused(), what="the first refusal journaled")
        (first,) = refused()  # the others within the minute: counted, not journaled yet
        assert (first["endpoint"], first["refusals"], first["keys"]) == (bound, 1, [theirs])
        assert first["address"] == "127.0.0.1", first
        assert theirs in first["detail"] and "persist keys allow" in first["detail"]
        log = (log_dir / "recorder.log").read_text()
        assert [line for line in log.splitlines() if "refused" in line] == [
            line for line in log.splitlines() if theirs in line
        ] and log.count(theirs) == 1, log

        status = wait_for(
            lambda: (
                (out := persist("status", "--log-dir", str(log_dir)))
                and f"{tries} refused" in out.stdout
                and out
            ),
            what="persist status counting the refusals",
        )
        assert status.returncode == 0, status
        assert f"bound at     {bound} (listening, 1 publisher, {tries} refused)" in status.stdout
        (warning,) = [ln for ln in status.stdout.splitlines() if ln.startswith("  warning:")]
        assert f"refused {tries} publisher handshakes at {bound}" in warning, warning
        assert f"from 127.0.0.1 (CURVE client key {theirs} not on the allow-list)" in warning
        said = read_status(log_dir)["endpoints"][0]
        assert said["peers"] == 1 and said["refused"]["count"] == tries, said
        assert said["refused"]["key"] == theirs, said
        events = [r.get("event") for r in journal_records(log_dir) if r["kind"] == "event"]
        assert "peer-disconnected" not in events, events
    finally:
        friend.close()
    wait_for(lambda: read_status(log_dir)["endpoints"][0]["peers"] == 0, what="friend gone")
    recorder.signal(15)
    assert recorder.wait(30) == 0
    first, rest = refused()
    assert (rest["refusals"], rest["keys"]) == (tries - 1, [theirs]), rest
    log = (log_dir / "recorder.log").read_text()  # the log says what the journal says
    assert [ln.split(" WARNING ")[1] for ln in log.splitlines() if theirs in ln] == [
        first["detail"],
        rest["detail"],
    ], log
    peers = [
        (r["event"], r["peers"])
        for r in journal_records(log_dir)
        if r.get("event", "").startswith("peer-")
    ]
    assert peers == [("peer-connected", 1), ("peer-disconnected", 0)], peers


def test_a_publisher_without_curve_is_named_as_such_by_a_recorder_bound_with_curve(
    procs: Callable[..., Proc], tmp_path: Path
) -> None:
    """The usual first mistake with CURVE: a publisher started without CURVE. libzmq
    reports it as a protocol failure whose value is a mechanism mismatch; the journal's
    event, recorder.log and `persist status` say "a publisher without CURVE" and how to
    give it CURVE (before 2026-12-07: "no key asked for ... another server key?").
    (A publisher that sees the mismatch first and hangs up is, for the recorder, a
    connection reset during its handshake, which it cannot tell from a port scan: an
    agent's publisher, connected for its life, is seen at one of its tries. So here, a
    publisher's tries, not one `persist send`.)"""
    log_dir = tmp_path / "logs"
    keys_init(log_dir / "keys")
    bound = f"tcp://127.0.0.1:{free_port()}"
    recorder = procs(
        "record", "--bind", bound, "--curve", "--log-dir", str(log_dir),
        "--search-index", "off", "--monitor", "off", name="recorder",
    )  # fmt: skip
    wait_for(lambda: read_status(log_dir).get("connection") == "listening", what="recorder bound")

    def refused() -> list[dict]:
        return [r for r in journal_records(log_dir) if r.get("event") == "publisher-refused"]

    ctx = zmq.Context()
    try:
        for _ in range(60):  # a publisher's tries, each a new connection
            plain = ctx.socket(zmq.PUB)
            plain.linger = 0
            plain.connect(bound)
            plain.send_multipart([b"agents.plain", b'{"text": "no curve"}'])
            deadline = time.monotonic() + 0.5
            while not (seen := refused()) and time.monotonic() < deadline:
                time.sleep(0.02)
            plain.close()
            if seen:
                break
    finally:
        ctx.term()
    assert seen, "no publisher-refused event after 60 tries of a publisher without CURVE"
    event = refused()[0]
    assert event["without_curve"] is True and event["keys"] == [], event
    assert "a publisher without CURVE" in event["detail"], event
    assert "another server key" not in event["detail"], event
    assert "persist send --curve" in event["detail"], event
    status = persist("status", "--log-dir", str(log_dir))
    (warning,) = [ln for ln in status.stdout.splitlines() if ln.startswith("  warning:")]
    assert "a publisher without CURVE" in warning, status.stdout
    assert read_status(log_dir)["endpoints"][0]["refused"]["without_curve"] is True
    recorder.signal(15)
    assert recorder.wait(30) == 0
    assert not [r for r in journal_records(log_dir) if r.get("topic") == "agents.plain"]


def test_a_recorder_following_a_service_that_is_not_zeromq_names_it_not_curve(
    procs: Callable[..., Proc], tmp_path: Path
) -> None:
    """Where a web server answers (HTTP 400, then it hangs up), `persist send` says it is
    no ZeroMQ broker; a recorder following it said "the handshake failed (CURVE on one
    side only?)" with the --curve/--keys advice, in `persist status` (exit 6), `doctor`,
    recorder.log and its `handshake-failed` event. Now the same words as send's. A
    ZeroMQ broker whose handshake fails alike (its CURVE server key another than the
    recorder's) is still a refusal."""
    with not_zeromq() as endpoint:
        log_dir = tmp_path / "logs"
        procs(
            "record", "--broker", endpoint, "--log-dir", str(log_dir), "--embedded", "no",
            "--search-index", "off", "--monitor", "off", name="recorder",
        )  # fmt: skip
        said = (  # `persist send`'s words (tests/process/test_send.py)
            f"{endpoint} is not a ZeroMQ broker: what answers there does not speak ZMTP 3, "
            "the protocol of ZeroMQ 4 (another service on that port?)"
        )
        status = wait_for(
            lambda: (out := persist("status", "--log-dir", str(log_dir))).returncode == 6 and out,
            timeout=30,
            what="persist status degraded",
        )
        first = status.stdout.splitlines()[0]
        assert f"records nothing: {said}; not connected for " in first, first
        assert "CURVE" not in status.stdout and "refused us" not in status.stdout
        doctor = persist("doctor", "--log-dir", str(log_dir))
        assert said in doctor.stdout and "CURVE" not in doctor.stdout, doctor.stdout
        log = (log_dir / "recorder.log").read_text()
        assert log.count(said) == 1 and "CURVE" not in log, log
        events = [r for r in journal_records(log_dir) if r.get("event") == "handshake-failed"]
        assert [(e["broker"], e["detail"]) for e in events] == [(endpoint, said.split(": ", 1)[1])]

    keys, other = tmp_path / "keys", tmp_path / "other"
    keys_init(keys)
    keys_init(other)  # another server's key: the handshake fails with no detail too
    front, back = endpoints("tcp", tmp_path)
    procs("broker", "--frontend", front, "--backend", back, "--curve", "--keys", str(keys),
          name="broker")  # fmt: skip
    log_dir = tmp_path / "logs-curve"
    procs(
        "record", "--broker", back, "--log-dir", str(log_dir), "--embedded", "no", "--curve",
        "--keys", str(other), "--search-index", "off", "--monitor", "off", name="recorder",
    )  # fmt: skip
    status = wait_for(
        lambda: (out := persist("status", "--log-dir", str(log_dir))).returncode == 6 and out,
        timeout=30,
        what="persist status degraded",
    )
    assert (
        f"the broker at {back} refused us: the handshake failed (CURVE on one side only?)"
        in status.stdout.splitlines()[0]
    ), status.stdout
