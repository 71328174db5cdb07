"""A message over `--max-frames` (1,000 by default) is refused as one over
`--max-message-mb` is: a `refused` record with its frame count, its size, its hash and
its envelope (its sequence number counts as received), counted in `persist status`;
the recorder goes on with the next message. Before 2026-12-07 a message of a million
empty frames passed the size limit (10 bytes) and took the recorder 12 s and 350 MB
to make one 12 MB line of it."""

from __future__ import annotations

import hashlib
import signal

import orjson

from recorder.bus.publisher import Publisher
from tests.support import Bus, journal_records, read_status, run_cli, wait_for


def written(bus: Bus) -> int:
    return int((read_status(bus.log_dir).get("counts") or {}).get("written", 0))


def test_a_message_of_too_many_frames_is_journaled_refused_and_counted(bus: Bus) -> None:
    bus.start_broker()
    bus.start_recorder("--search-index", "off", "--monitor", "off")
    parts = [b"part %d" % i for i in range(998)]
    with Publisher(bus.front, agent="many-parts", heartbeat_interval=0) as pub:
        assert pub.wait_ready(5)
        pub.send("agents.x", {"text": "first"})
        # 1,000 frames: a message; 100,001: refused, its envelope read from its last frame
        pub.send_raw([b"agents.parts", *parts, orjson.dumps({"_persist": pub.envelope()})])
        last = orjson.dumps({"_persist": pub.envelope(), "text": "the last of many"})
        many = [b"agents.many"] + [b""] * 99_999 + [last]
        pub.send_raw(many)
        pub.send("agents.x", {"text": "after"})
        wait_for(lambda: written(bus) >= 3, timeout=30, what="the message after it")
    assert read_status(bus.log_dir)["counts"]["refused"] == 1
    status = run_cli("status", "--log-dir", str(bus.log_dir))
    assert "refused 1" in status.stdout
    bus.recorder.signal(signal.SIGTERM)
    assert bus.recorder.wait(20) == 0
    records = journal_records(bus.log_dir)
    (refused,) = [r for r in records if r["kind"] == "refused"]
    assert refused["topic"] == "agents.many" and refused["frame_count"] == 100_001
    assert refused["size"] == len(b"agents.many") + len(last)
    assert refused["sha256"] == hashlib.sha256(b"".join(many)).hexdigest()
    assert refused["reason"] == "100001 frames is over the 1000 frame limit"
    assert refused["envelope"]["seq"] == 3  # refused, not lost: no gap before "after"
    assert [r for r in records if r["kind"] == "gap"] == []
    msgs = [r for r in records if r["kind"] == "msg"]
    assert [len(r["frames"]) for r in msgs] == [2, 1000, 2]
    assert msgs[-1]["frames"][1]["json"]["text"] == "after"


def test_max_frames_is_an_option_of_its_own(bus: Bus) -> None:
    """`--max-frames 3`, also through `--detach` (the recorder it starts is told it): a
    message of 4 frames is refused; a limit below 2 is one line, exit 2."""
    log_dir = str(bus.log_dir)
    bad = run_cli("record", "--log-dir", log_dir, "--max-frames", "1")
    assert bad.returncode == 2
    assert bad.stderr.strip().endswith(
        "--max-frames must be at least 2: a topic and a payload (got 1)"
    ), bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    bus.start_broker()
    started = run_cli(
        *("record", "--broker", bus.back, "--log-dir", log_dir, "--embedded", "no"),
        *("--detach", "--wait", "20", "--search-index", "off", "--monitor", "off"),
        *("--max-frames", "3"),
    )
    assert started.returncode == 0, started.stderr
    try:
        wait_for(lambda: read_status(bus.log_dir).get("connection") == "connected")
        with Publisher(bus.front, heartbeat_interval=0) as pub:
            assert pub.wait_ready(5)
            pub.send_raw([b"t", b"a", b"b"])
            pub.send_raw([b"t", b"a", b"b", b"c"])
            pub.send("agents.x", {"text": "after"})
            wait_for(lambda: written(bus) >= 2, timeout=30, what="the message after it")
    finally:
        assert run_cli("stop", "--log-dir", log_dir).returncode == 0
    records = journal_records(bus.log_dir)
    (refused,) = [r for r in records if r["kind"] == "refused"]
    assert refused["frame_count"] == 4 and refused["reason"] == "4 frames is over the 3 frame limit"
    assert [len(r["frames"]) for r in records if r["kind"] == "msg"] == [3, 2]


def test_status_and_restore_say_why_a_message_was_refused_and_where_to_find_it(
    bus: Bus,
) -> None:
    """`persist status` names the search that lists the journal's refused messages
    (`kind:refused`), and `persist restore` (its output, the bundle's manifest and
    transcript, what the agent is given) says why they were refused: a message of 4
    small frames was "too large" before 2026-12-07, and status named `kind:gap`, which
    finds none of them."""
    log = ("--log-dir", str(bus.log_dir))
    bus.start_broker()
    bus.start_recorder("--max-frames", "3", "--max-message-mb", "1")
    with Publisher(bus.front, heartbeat_interval=0) as pub:
        assert pub.wait_ready(5)
        pub.send("agents.ok", {"text": "hi"})
        pub.send_raw([b"agents.x", b"a", b"b", b'{"text": "four small frames"}'])
        pub.send("agents.ok", {"text": "after"})
        wait_for(lambda: written(bus) >= 2, timeout=30, what="the message after it")
    status = run_cli("status", *log)
    (line,) = [x for x in status.stdout.splitlines() if "refused 1" in x]
    search = line.split("the journal's: ")[1].rstrip(")").split()
    assert search[:2] == ["persist", "search"], line
    found = run_cli(*search[1:], "--json", *log)
    assert [h["kind"] for h in orjson.loads(found.stdout)["hits"]] == ["refused"], found.stdout
    assert run_cli("checkpoint", *log).returncode == 0
    restored = run_cli("restore", "latest", *log)
    assert restored.returncode == 0, restored.stderr
    why = "1 refused message (4 frames is over the 3 frame limit, not recorded)"
    assert f"warning: {why}" in restored.stdout, restored.stdout
    (bundle,) = (bus.log_dir / "restore").iterdir()
    manifest = orjson.loads((bundle / "manifest.json").read_bytes())
    assert why in manifest["integrity"]["problems"], manifest["integrity"]
    assert f"- ⚠ {why}" in (bundle / "transcript.md").read_text()
    with Publisher(bus.front, heartbeat_interval=0) as pub:
        assert pub.wait_ready(5)
        pub.send("agents.big", {"text": "B" * 1_200_000})
        pub.send("agents.ok", {"text": "after the big one"})
        wait_for(lambda: written(bus) >= 3, timeout=30, what="the message after it")
    assert run_cli("checkpoint", *log).returncode == 0
    restored = run_cli("restore", "latest", *log)
    assert restored.returncode == 0, restored.stderr
    assert (
        "warning: 2 refused messages (too large or of too many frames, not recorded)"
        in restored.stdout
    ), restored.stdout
