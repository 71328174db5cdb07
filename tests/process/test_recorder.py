"""Real `persist broker` and `persist record` processes on loopback."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import zmq

from recorder.bus.publisher import Publisher
from recorder.store.reader import open_store
from tests.support import PYTHON, Bus, journal_records, read_status, wait_for


def messages(log_dir: Path) -> list[dict]:
    return [r for r in journal_records(log_dir) if r["kind"] == "msg"]


def written(log_dir: Path) -> int:
    return int((read_status(log_dir).get("counts") or {}).get("written", 0))


def test_100k_messages_each_recorded_exactly_once(bus: Bus) -> None:
    bus.start_broker()
    bus.start_recorder()
    n = 100_000
    with Publisher(bus.front, agent="flood", heartbeat_interval=0.5) as pub:
        assert pub.wait_ready(5)
        for i in range(n):
            pub.send("agents.flood", {"id": f"m{i}", "text": "x" * 200})
    wait_for(lambda: written(bus.log_dir) >= n, timeout=60, what="all messages written")
    bus.recorder.signal(signal.SIGTERM)
    assert bus.recorder.wait(5) == 0
    ids = [r["frames"][1]["json"]["id"] for r in messages(bus.log_dir)]
    assert len(ids) == n
    assert len(set(ids)) == n
    assert not [r for r in journal_records(bus.log_dir) if r["kind"] == "gap"]


def test_frames_of_any_shape_round_trip_exactly(bus: Bus) -> None:
    bus.start_broker()
    bus.start_recorder()
    sent = [
        [b"agents.a", b'{"text": "spaced  json", "n": 1.50}'],
        [b"agents.b", b"plain text, not json"],
        [b"agents.c", b"\xff\xfe\x00invalid utf-8\x80"],
        [b"single frame message"],
        [b"agents.d", b'{"a":1}', b"second", b"\x00\x01\x02", b"[1,2,3]"],
        [b"agents.e", b'{"pretty":\n  true}'],
        [b"agents.f", b'{"unterminated": '],
        [b"agents.g", b""],
        [b"agents.h", "emoji \u2603 \U0001f600 and \x1b[31mred\x1b[0m".encode()],
    ]
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.linger = 1000
    pub.connect(bus.front)
    try:
        assert pub.poll(5000)  # the broker forwarded the recorder's subscription
        for frames in sent:
            pub.send_multipart(frames)
        wait_for(lambda: written(bus.log_dir) >= len(sent), what="messages written")
    finally:
        pub.close()
        ctx.term()
    bus.recorder.signal(signal.SIGTERM)
    bus.recorder.wait(5)
    with open_store(bus.log_dir) as store:
        got = [rec.frames for rec in store.records() if rec.is_message]
    assert got == sent
    # Every line is plain JSON that jq can read.
    seg = next((bus.log_dir / "segments").glob("seg-*.jsonl"))
    out = subprocess.run(
        ["jq", "-c", 'select(.kind=="msg") | .frames[-1]'],
        input=seg.read_bytes(),
        capture_output=True,
        check=True,
    )
    assert out.stdout.count(b"\n") == len(sent)


def test_sigkill_then_restart_records_gap_and_resumes(bus: Bus) -> None:
    bus.start_broker()
    first = bus.start_recorder()
    sent = 0
    with Publisher(bus.front, agent="steady", heartbeat_interval=0.2) as pub:
        assert pub.wait_ready(5)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            pub.send("agents.steady", {"text": "before"})
            sent += 1
            time.sleep(0.0005)
        first.signal(signal.SIGKILL)
        first.wait(5)
        # Keep talking while the recorder is down: these are lost, and must show.
        for _ in range(200):
            pub.send("agents.steady", {"text": "while down"})
            time.sleep(0.001)
        second = bus.start_recorder(wait=False)
        wait_for(
            lambda: (
                read_status(bus.log_dir).get("pid") == second.pid
                and read_status(bus.log_dir).get("connection") == "connected"
            ),
            what="restart",
        )
        for _ in range(100):
            pub.send("agents.steady", {"text": "after"})
            time.sleep(0.001)
        last_seq = pub.seq
    wait_for(
        lambda: any(
            r["kind"] == "heartbeat" and r["frames"][-1]["json"]["_persist"].get("bye")
            for r in journal_records(bus.log_dir)
        ),
        what="final heartbeat recorded",
    )
    second.signal(signal.SIGTERM)
    assert second.wait(5) == 0
    records = journal_records(bus.log_dir)  # every line parses
    gaps = [r for r in records if r["kind"] == "gap"]
    assert any(g["cause"] == "recorder-down" and g["clean_stop"] is False for g in gaps)
    seqs = {
        r["frames"][1]["json"]["_persist"]["seq"]
        for r in records
        if r["kind"] == "msg" and r["topic"] == "agents.steady"
    }
    missed = {s for g in gaps if g.get("from_seq") for s in range(g["from_seq"], g["to_seq"] + 1)}
    # Every message the publisher sent is either in the journal or inside a gap.
    assert seqs | missed == set(range(1, last_seq + 1))
    assert any(
        r["frames"][1]["json"]["text"] == "after"
        for r in records
        if r["kind"] == "msg" and r["topic"] == "agents.steady"
    )


def test_broker_restart_is_recorded_as_outage_and_recording_resumes(bus: Bus) -> None:
    broker = bus.start_broker()
    bus.start_recorder()
    broker.signal(signal.SIGKILL)
    broker.wait(5)
    wait_for(
        lambda: read_status(bus.log_dir).get("connection") == "disconnected", what="disconnect seen"
    )
    bus.start_broker()
    wait_for(lambda: read_status(bus.log_dir).get("connection") == "connected", what="reconnect")
    with Publisher(bus.front, agent="late", heartbeat_interval=0) as pub:
        assert pub.wait_ready(5)
        pub.send("agents.late", {"text": "after the outage"})
        wait_for(lambda: written(bus.log_dir) >= 1, what="message after outage")
    bus.recorder.signal(signal.SIGTERM)
    bus.recorder.wait(5)
    records = journal_records(bus.log_dir)
    events = [r.get("event") for r in records if r["kind"] == "event"]
    assert "disconnected" in events and events.count("connected") >= 2
    outage = [r for r in records if r["kind"] == "gap" and r["cause"] == "broker-outage"]
    assert len(outage) == 1 and outage[0]["to_ts"] > outage[0]["from_ts"]
    assert any(r["kind"] == "msg" and r["topic"] == "agents.late" for r in records)


def test_second_recorder_is_refused_naming_the_pid(bus: Bus) -> None:
    bus.start_broker()
    first = bus.start_recorder()
    second = bus.start_recorder(wait=False)
    assert second.wait(10) == 1
    assert f"PID {first.pid}" in second.output()
    assert "Traceback" not in second.output()
    assert read_status(bus.log_dir)["pid"] == first.pid


def test_a_label_that_is_not_utf8_is_cleaned_as_without_a_recorder(bus: Bus) -> None:
    """Asking a running recorder put the label in a JSON request as it came (bytes the
    shell passed through as surrogates): a traceback. Without one it was kept as
    `a b`, as every label is cleaned."""
    bus.start_broker()
    bus.start_recorder()
    label = ["--label", "a\udcffb", "--json"]
    out = subprocess.run(
        [PYTHON, "-m", "recorder.cli", "checkpoint", "--log-dir", str(bus.log_dir), *label],
        capture_output=True,
        text=True,
        errors="surrogateescape",
    )
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert orjson.loads(out.stdout)["label"] == "a b"


def test_stale_pid_file_and_status_never_block_a_start(bus: Bus, tmp_path: Path) -> None:
    bus.log_dir.mkdir(mode=0o700)
    dead = subprocess.Popen([PYTHON, "-c", "pass"])
    dead.wait()
    # A lock file naming a dead PID, and one naming a live but unrelated process (us).
    (bus.log_dir / "recorder.lock").write_text(f"{dead.pid}\n")
    (bus.log_dir / "status.json").write_bytes(
        orjson.dumps(
            {
                "pid": os.getpid(),
                "updated": time.time(),
                "state": "recording",
                "process_started": 1.0,
            }
        )
    )
    out = subprocess.run(
        [PYTHON, "-m", "recorder.cli", "status", "--log-dir", str(bus.log_dir)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 3 and "gone" in out.stdout  # PID reuse is not mistaken for life
    bus.start_broker()
    bus.start_recorder()
    assert read_status(bus.log_dir)["state"] == "recording"


def test_sigterm_stops_cleanly_with_a_shutdown_checkpoint(bus: Bus) -> None:
    """How fast it stops is measured by bench/record.py (SIGTERM -> clean exit)."""
    bus.start_broker()
    rec = bus.start_recorder()
    with Publisher(bus.front, agent="a", heartbeat_interval=0) as pub:
        assert pub.wait_ready(5)
        for i in range(1000):
            pub.send("agents.a", {"i": i})
    wait_for(lambda: written(bus.log_dir) >= 1000, what="written")
    rec.signal(signal.SIGTERM)
    assert rec.wait(5) == 0
    status = read_status(bus.log_dir)
    assert status["state"] == "stopped"
    cps = sorted((bus.log_dir / "checkpoints").glob("*shutdown*.json"))
    assert cps and orjson.loads(cps[-1].read_bytes())["messages"] >= 1000
    out = subprocess.run(
        [PYTHON, "-m", "recorder.cli", "status", "--log-dir", str(bus.log_dir)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 3 and "stopped cleanly" in out.stdout


def test_checkpoint_command_with_and_without_a_running_recorder(bus: Bus) -> None:
    bus.start_broker()
    rec = bus.start_recorder()
    with Publisher(bus.front, agent="a", heartbeat_interval=0) as pub:
        assert pub.wait_ready(5)
        for i in range(10):
            pub.send("agents.a", {"i": i})
    wait_for(lambda: written(bus.log_dir) >= 10, what="written")

    def checkpoint(label: str) -> dict:
        out = subprocess.run(
            [
                PYTHON,
                "-m",
                "recorder.cli",
                "checkpoint",
                "--log-dir",
                str(bus.log_dir),
                "--label",
                label,
                "--json",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return orjson.loads(out.stdout)

    live = checkpoint("while running")
    assert live["reason"] == "manual" and live["messages"] >= 10
    rec.signal(signal.SIGTERM)
    rec.wait(5)
    offline = checkpoint("after stop")
    assert offline["messages"] == live["messages"]  # no message since; only the stop event
    assert offline["position"]["seq"] > live["position"]["seq"]


def test_detach_starts_a_background_recorder(bus: Bus) -> None:
    bus.start_broker()
    out = subprocess.run(
        [
            PYTHON,
            "-m",
            "recorder.cli",
            "record",
            "--broker",
            bus.back,
            "--log-dir",
            str(bus.log_dir),
            "--embedded",
            "no",
            "--detach",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 0, out.stderr
    pid = read_status(bus.log_dir)["pid"]
    try:
        assert f"PID {pid}" in out.stdout
        status = subprocess.run(
            [PYTHON, "-m", "recorder.cli", "status", "--log-dir", str(bus.log_dir), "--json"],
            capture_output=True,
            text=True,
        )
        assert status.returncode == 0
        assert orjson.loads(status.stdout)["health"] == "healthy"
    finally:
        stop = subprocess.run(
            [PYTHON, "-m", "recorder.cli", "stop", "--log-dir", str(bus.log_dir)],
            capture_output=True,
            text=True,
        )
    assert stop.returncode == 0
    assert read_status(bus.log_dir)["state"] == "stopped"


@pytest.mark.skipif(sys.platform != "linux", reason="ipc endpoints")
def test_ipc_endpoints(procs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    front = f"ipc://{tmp_path}/pub.sock"
    back = f"ipc://{tmp_path}/sub.sock"
    procs("broker", "--frontend", front, "--backend", back, name="broker")
    wait_for(lambda: Path(f"{tmp_path}/sub.sock").exists(), what="ipc broker")
    log_dir = tmp_path / "logs"
    procs("record", "--broker", back, "--log-dir", str(log_dir), name="rec")
    wait_for(lambda: read_status(log_dir).get("connection") == "connected", what="connected")
    with Publisher(front, agent="ipc", heartbeat_interval=0) as pub:
        assert pub.wait_ready(5)
        pub.send("agents.ipc", {"text": "over ipc"})
    wait_for(lambda: written(log_dir) >= 1, what="written")
    line = next(r for r in journal_records(log_dir) if r["kind"] == "msg")
    assert line["topic"] == "agents.ipc"
    assert line["frames"][1]["json"]["text"] == "over ipc"


def test_sighup_reopens_files_and_recording_goes_on(bus: Bus) -> None:
    bus.start_broker()
    rec = bus.start_recorder()
    with Publisher(bus.front, agent="hup", heartbeat_interval=0) as pub:
        assert pub.wait_ready(5)
        pub.send("agents.hup", {"text": "before"})
        wait_for(lambda: written(bus.log_dir) >= 1, what="first message")
        rec.signal(signal.SIGHUP)
        wait_for(
            lambda: "reopened files on SIGHUP" in (bus.log_dir / "recorder.log").read_text(),
            what="reopen logged",
        )
        pub.send("agents.hup", {"text": "after"})
        wait_for(lambda: written(bus.log_dir) >= 2, what="message after SIGHUP")
    rec.signal(signal.SIGTERM)
    assert rec.wait(5) == 0
    texts = [r["frames"][1]["json"]["text"] for r in messages(bus.log_dir)]
    assert texts == ["before", "after"]


def test_store_follows_the_live_journal(bus: Bus) -> None:
    import threading

    bus.start_broker()
    bus.start_recorder()
    store = open_store(bus.log_dir)
    stop = threading.Event()
    seen: list[str] = []

    def follow() -> None:
        for batch in store.follow(poll=0.02, stop=stop):
            seen.extend(r.payload["text"] for r in batch if r.is_message)

    reader = threading.Thread(target=follow)
    reader.start()
    try:
        with Publisher(bus.front, agent="tail", heartbeat_interval=0) as pub:
            assert pub.wait_ready(5)
            for i in range(50):
                pub.send("agents.tail", {"text": f"line {i}"})
        wait_for(lambda: len(seen) >= 50, what="tail caught up")
    finally:
        stop.set()
        reader.join(5)
        store.close()
    assert seen == [f"line {i}" for i in range(50)]


def test_recorder_with_embedded_broker_stops_cleanly_every_time(procs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.support import free_port

    # Stopping the embedded broker once tore down sockets its thread still used
    # (libzmq aborted in about 1 stop out of 7); each stop must now exit 0.
    for i in range(6):
        log_dir = tmp_path / f"logs{i}"
        rec = procs(
            "record",
            "--log-dir",
            str(log_dir),
            "--embedded",
            "yes",
            "--broker",
            f"tcp://127.0.0.1:{free_port()}",
            "--publish-endpoint",
            f"tcp://127.0.0.1:{free_port()}",
            name="embedded",
        )
        wait_for(
            lambda d=log_dir: read_status(d).get("connection") == "connected",
            what="embedded broker connected",
        )
        rec.signal(signal.SIGTERM)
        assert rec.wait(5) == 0, rec.output()
        assert read_status(log_dir)["state"] == "stopped"


def persist_quiet(*args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI, without the session monitor."""
    env = {**os.environ, "PERSIST_MONITOR": "off"}
    return subprocess.run(
        [PYTHON, "-m", "recorder.cli", *args],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip


def started_then_stopped(log_dir: Path, *start: str) -> list[str]:
    """`persist record START --detach`, then `persist stop`: the start command `persist
    status` then suggests (checked to be one line, also doctor's fix), as argv."""
    out = persist_quiet("record", "--log-dir", str(log_dir), *start, "--detach")
    assert out.returncode == 0, out.stderr
    assert persist_quiet("stop", "--log-dir", str(log_dir)).returncode == 0
    status = persist_quiet("status", "--log-dir", str(log_dir))
    assert status.returncode == 3, status.stdout
    said = [x for x in status.stdout.splitlines() if x.startswith("  start it with: ")]
    assert len(said) == 1, status.stdout
    command = said[0].removeprefix("  start it with: ")
    doctor = persist_quiet("doctor", "--dir", str(log_dir))
    assert f"fix: {command}" in doctor.stdout, doctor.stdout
    argv = shlex.split(command)
    assert argv[:2] == ["persist", "record"] and "--detach" in argv, argv
    return argv


def test_the_start_command_status_suggests_starts_it_as_it_ran(tmp_path: Path) -> None:
    """A stopped recorder that hosted its broker (`--embedded yes`, a publish endpoint
    of its own): `persist status` said `persist record --broker P1 --log-dir D
    --detach`, which hosts no broker (DEGRADED, unreachable) and leaves publishers of
    P2 without a listener. The printed command, run as printed, records again (its
    log folder's name has a space: the words were not quoted)."""
    from tests.support import free_port

    log_dir = tmp_path / "recorded logs"
    sub, pub = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    start = ["--embedded", "yes", "--broker", sub, "--publish-endpoint", pub]
    try:
        argv = started_then_stopped(log_dir, *start, "--search-index", "off")
        out = persist_quiet(*argv[1:])
        assert out.returncode == 0, out.stderr
        wait_for(  # the broker it follows is the one it hosts again
            lambda: read_status(log_dir).get("connection") == "connected",
            what="connected to its own broker",
        )
        assert read_status(log_dir)["embedded_broker"] == pub
        status = persist_quiet("status", "--log-dir", str(log_dir))
        assert status.returncode == 0 and status.stdout.startswith("HEALTHY"), status.stdout
        sent = persist_quiet("send", "--endpoint", pub, "--wait", "10", "agents.x", "after")
        assert sent.returncode == 0, sent.stderr
        wait_for(lambda: messages(log_dir), what="the message recorded")
        assert messages(log_dir)[0]["frames"][1]["json"]["text"] == "after"
    finally:
        persist_quiet("stop", "--log-dir", str(log_dir))


def test_the_start_command_keeps_bind_public_and_curve(tmp_path: Path) -> None:
    """A recorder run with `--bind-public` (bound at `tcp://lo:PORT`: an interface name,
    which is loopback here but not known to be, so it needs the flag): `persist status`
    and `persist doctor` suggested the command without `--bind-public`, which refused
    the endpoint (exit 2). With it but without `--keys`, a recorder whose CURVE keys
    are in another folder would have listened there unencrypted. Run as printed, it
    records again, bound there, with CURVE."""
    from tests.support import free_port

    log_dir = tmp_path / "logs"
    keys = tmp_path / "my keys"
    bound = f"tcp://lo:{free_port()}"
    made = persist_quiet("keys", "init", "--keys", str(keys), "--log-dir", str(log_dir))
    assert made.returncode == 0, made.stderr
    start = ["--bind", bound, "--bind-public", "--keys", str(keys), "--search-index", "off"]
    try:
        argv = started_then_stopped(log_dir, *start)
        assert "--curve" in argv and argv[argv.index("--keys") + 1] == str(keys), argv
        out = persist_quiet(*argv[1:])
        assert out.returncode == 0, out.stderr
        wait_for(
            lambda: read_status(log_dir).get("connection") == "listening",
            what="listening again",
        )
        assert [e["endpoint"] for e in read_status(log_dir)["endpoints"]] == [bound]
        assert read_status(log_dir)["curve"] is True
    finally:
        persist_quiet("stop", "--log-dir", str(log_dir))


def test_json_our_parser_refuses_keeps_its_envelope_and_is_no_gap(bus: Bus) -> None:
    """A payload holding an escaped lone surrogate (what JavaScript's JSON.stringify
    writes for a string cut inside an emoji) is kept as text, byte for byte; its
    envelope still counts, so the next message is no "1 message lost" gap (before
    2026-12-07 the gap named a message that is in the journal)."""
    bus.start_broker()
    bus.start_recorder("--search-index", "off", "--monitor", "off")
    with Publisher(bus.front, agent="node-agent", heartbeat_interval=0) as pub:
        assert pub.wait_ready(5)
        pub.send("agents.x", {"text": "first"})
        env = orjson.dumps(pub.envelope()).decode()
        cut = f'{{"_persist": {env}, "text": "cut emoji \\ud83d"}}'.encode()
        pub.send_raw([b"agents.x", cut])
        pub.send("agents.x", {"text": "third"})
        wait_for(lambda: written(bus.log_dir) >= 3, what="three messages written")
    bus.recorder.signal(signal.SIGTERM)
    assert bus.recorder.wait(10) == 0
    (kept,) = [r for r in messages(bus.log_dir) if "json" not in r["frames"][1]]
    assert kept["frames"][1]["text"].encode() == cut
    assert [r for r in journal_records(bus.log_dir) if r["kind"] == "gap"] == []
    assert read_status(bus.log_dir)["counts"]["unsequenced"] == 0
