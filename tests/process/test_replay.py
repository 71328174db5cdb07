"""`persist replay` through a real broker: subscribers get the original frames marked as
replays, the recorder records them as replays, and nothing loops, duplicates or gaps."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import zmq

from recorder.bus.publisher import Publisher
from recorder.bus.replay import mark
from recorder.store.records import encode_frames
from tests.demo_journal import RESTORE_T0, DemoClock, DemoWriter, build_demo
from tests.support import Bus, Proc, journal_records, not_zeromq, read_status, wait_for

pytestmark = pytest.mark.timeout(120)


def persist(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args], capture_output=True, text=True, timeout=60
    )


class Subscriber:
    """A SUB socket on the broker's backend, known to be subscribed before use."""

    def __init__(self, bus: Bus) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.linger = 0
        self.sock.subscribe(b"")
        self.sock.connect(bus.back)
        with Publisher(bus.front, agent="probe", heartbeat_interval=0, context=self.ctx) as pub:
            pub.wait_ready(5)

            def probe() -> bool:
                pub.send("probe", {"text": "probe"})
                return bool(self.sock.poll(50))

            wait_for(probe, what="subscriber connected")
        self.drain()

    def drain(self) -> list[list[bytes]]:
        got = []
        while self.sock.poll(200):
            got.append(self.sock.recv_multipart())
        return got

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()


def test_replay_marks_messages_and_the_recorder_records_them_as_replays(bus: Bus) -> None:
    bus.start_broker()
    bus.start_recorder()
    sub = Subscriber(bus)
    try:
        n = 50
        with Publisher(bus.front, agent="coder", heartbeat_interval=0) as pub:
            pub.wait_ready(5)
            for i in range(n):
                pub.send("agents.coder", {"text": f"message {i}", "n": i})
            pub.send_raw([b"raw.topic", b"not json at all"])  # cannot carry the mark
            wait_for(
                lambda: sum(
                    1
                    for r in journal_records(bus.log_dir)
                    if r["kind"] == "msg" and r["topic"] == "raw.topic"
                ),
                what="messages recorded",
            )
            cp = persist("checkpoint", "--log-dir", str(bus.log_dir), "--label", "before", "--json")
            assert cp.returncode == 0, cp.stderr
            cp_id = orjson.loads(cp.stdout)["id"]
            originals = {
                r["seq"]: r
                for r in journal_records(bus.log_dir)
                if r["kind"] == "msg" and r["topic"] == "agents.coder"
            }
            sub.drain()
            gaps_before = read_status(bus.log_dir)["counts"]["gaps"]

            out = persist(
                "replay",
                cp_id,
                "--log-dir",
                str(bus.log_dir),
                "--endpoint",
                bus.front,
                "--topic-prefix",
                "agents.",
                "--json",
            )
            assert out.returncode == 0, out.stderr
            stats = orjson.loads(out.stdout)
            assert stats["sent"] == n and stats["skipped_topic"] >= 2  # probe + raw

            # the subscriber sees the original frames with replay_of in the envelope
            got = []
            wait_for(lambda: got.extend(sub.drain()) or len(got) >= n, what="replays delivered")
            assert len(got) == n
            by_seq = {}
            for topic, payload in got:
                assert topic == b"agents.coder"
                body = orjson.loads(payload)
                ref = body["_persist"]["replay_of"]
                by_seq[ref["seq"]] = body
                original = originals[ref["seq"]]["frames"][1]["json"]
                assert ref["mid"] == original["_persist"]["mid"]
                assert {k: v for k, v in body.items() if k != "_persist"} == {
                    k: v for k, v in original.items() if k != "_persist"
                }
                assert {k: v for k, v in body["_persist"].items() if k != "replay_of"} == (
                    original["_persist"]
                )
            assert sorted(by_seq) == sorted(originals)

            # the recorder marks them, and sequence tracking is untouched
            def replays() -> list[dict]:
                return [
                    r
                    for r in journal_records(bus.log_dir)
                    if r["kind"] == "msg" and "replay_of" in r["meta"]
                ]

            wait_for(lambda: len(replays()) >= n, what="replays recorded")
            assert len(replays()) == n
            assert {r["meta"]["replay_of"]["seq"] for r in replays()} == set(originals)
            # the publisher carries on in sequence: no gap, no duplicate
            pub.send("agents.coder", {"text": "after the replay"})
            wait_for(
                lambda: any(
                    r.get("frames", [{}])[-1].get("json", {}).get("text") == "after the replay"
                    for r in journal_records(bus.log_dir)
                ),
                what="next message recorded",
            )
        assert not [r for r in journal_records(bus.log_dir) if r["kind"] == "gap"]
        wait_for(
            lambda: (
                read_status(bus.log_dir)["counts"]["gaps"] == gaps_before == 0
                and read_status(bus.log_dir)["counts"]["messages_total"] >= 2 * n + 2
            ),
            what="status counted",
        )

        # a second replay of everything skips the earlier replays; the raw message is
        # refused without a prefix (exit 4) and sent unchanged under one with it
        cp2 = orjson.loads(persist("checkpoint", "--log-dir", str(bus.log_dir), "--json").stdout)
        out = persist(
            "replay",
            cp2["id"],
            "--from",
            cp_id,
            "--log-dir",
            str(bus.log_dir),
            "--endpoint",
            bus.front,
            "--json",
        )
        assert out.returncode == 0, out.stderr
        assert orjson.loads(out.stdout)["skipped_replays"] == n
        out = persist(
            "replay",
            cp_id,
            "--log-dir",
            str(bus.log_dir),
            "--endpoint",
            bus.front,
            "--topic-prefix",
            "raw.",
        )
        assert out.returncode == 4 and "1 messages were NOT replayed" in out.stderr
        out = persist(
            "replay",
            cp_id,
            "--log-dir",
            str(bus.log_dir),
            "--endpoint",
            bus.front,
            "--topic-prefix",
            "raw.",
            "--unmarked-prefix",
            "replay.",
        )
        assert out.returncode == 0 and "1 sent unmarked" in out.stdout
        wait_for(
            lambda: [
                r
                for r in journal_records(bus.log_dir)
                if r.get("topic") == "replay.raw.topic"
                and r["frames"][1] == {"text": "not json at all"}
            ],
            what="unmarked replay recorded",
        )
    finally:
        sub.close()


def test_replay_without_a_broker_fails_clearly(bus: Bus, tmp_path: Path) -> None:
    bus.start_broker()
    bus.start_recorder()
    with Publisher(bus.front, agent="a", heartbeat_interval=0) as pub:
        pub.wait_ready(5)
        pub.send("agents.a", {"text": "x"})
    wait_for(lambda: any(r["kind"] == "msg" for r in journal_records(bus.log_dir)), what="msg")
    assert persist("checkpoint", "--log-dir", str(bus.log_dir)).returncode == 0
    out = persist(
        "replay",
        "latest",
        "--log-dir",
        str(bus.log_dir),
        "--endpoint",
        "tcp://127.0.0.1:9",
        "--wait",
        "0.3",
    )
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == (
        "persist: nothing replayed: no subscriber reached tcp://127.0.0.1:9 within 0.3s (is "
        "the broker running, with a recorder subscribed? --wait waits longer)\n"
    )


def test_replay_to_a_server_that_is_not_zeromq_sends_nothing(tmp_path: Path) -> None:
    """What libzmq takes for an old ZMTP 1.0 peer (a web server's answer) gets a made-up
    subscription: no subscriber. Before, the replay sent to it and libzmq aborted the
    process as it closed (exit 134, no summary)."""
    root = build_demo(tmp_path / "logs")
    with not_zeromq() as endpoint:
        out = persist(
            "replay", "latest", "--log-dir", str(root), "--endpoint", endpoint, "--wait", "1"
        )
    assert (out.returncode, out.stdout) == (1, ""), out
    assert out.stderr == (
        f"persist: nothing replayed: {endpoint} is not a ZeroMQ broker: what answers there "
        "does not speak ZMTP 3, the protocol of ZeroMQ 4 (another service on that port?)\n"
    )


def test_mark_keeps_the_rest_of_the_payload_byte_for_byte() -> None:
    raw = b'{"_persist": {"pub":"a","seq":3,"mid":"a:3"}, "text":"hi  there", "n": 1.50}'
    out = mark(raw, {"seq": 9}, "r", 1)
    assert out == (
        b'{"_persist": {"pub":"a","seq":3,"mid":"a:3","replay_of":{"seq":9,'
        b'"mid":"a:3"}}, "text":"hi  there", "n": 1.50}'
    )
    assert mark(b'{"text":"x"}', {"seq": 1}, "r", 5) == (
        b'{"_persist":{"pub":"r","seq":5,"replay_of":{"seq":1}},"text":"x"}'
    )
    empty = mark(b"{}", {"seq": 1}, "r", 5)
    assert empty == b'{"_persist":{"pub":"r","seq":5,"replay_of":{"seq":1}}}'
    later = orjson.loads(mark(b'{"text":"x","_persist":{"pub":"p","seq":2}}', {"seq": 1}, "r", 5))
    assert later == {"text": "x", "_persist": {"pub": "p", "seq": 2, "replay_of": {"seq": 1}}}
    assert mark(b"[1,2]", {}, "r", 1) is None and mark(b"text", {}, "r", 1) is None
    assert mark(b'{"a":\n1}', {}, "r", 1) is None


def signed(key: bytes, topic: bytes, n: int) -> list[bytes]:
    """A Jupyter-style message: HMAC over the JSON frames, which keep their own spacing."""
    parts = [
        b'{"msg_id": "m%d", "msg_type": "stream",  "session": "s1"}' % n,
        b"{}",
        b'{ "started": "2024-05-14T09:00:00Z" }',
        b'{"name": "stdout", "text": "line %d\\n"}' % n,
    ]
    mac = hmac.new(key, b"".join(parts), hashlib.sha256).hexdigest().encode()
    return [topic, b"<IDS|MSG>", mac, *parts]


def test_verbatim_replay_sends_every_frame_exactly_as_recorded(
    bus: Bus, procs: Callable[..., Proc], tmp_path: Path
) -> None:
    key = b"secret-kernel-key"
    bus.start_broker()
    bus.start_recorder()
    sent = [signed(key, b"kernel.k1.iopub", i) for i in range(20)]
    sent.append([b"a single frame, no topic"])
    with Publisher(bus.front, agent="kernel", heartbeat_interval=0) as pub:
        pub.wait_ready(5)
        for frames in sent:
            pub.send_raw(frames)
    wait_for(
        lambda: sum(1 for r in journal_records(bus.log_dir) if r["kind"] == "msg") >= len(sent),
        what="messages recorded",
    )
    assert persist("checkpoint", "--log-dir", str(bus.log_dir)).returncode == 0
    other = Bus(procs, tmp_path / "other")  # another broker: nobody records there
    other.start_broker()
    sub = Subscriber(other)
    try:
        args = ["replay", "latest", "--log-dir", str(bus.log_dir), "--endpoint", other.front]
        out = persist(*args, "--verbatim")
        assert out.returncode == 0, out.stderr
        assert f"replayed {len(sent)} messages" in out.stdout and "verbatim" in out.stdout
        got = sub.drain()
        assert got == sent  # every frame byte for byte, in order
        for frames in got[:-1]:
            mac = hmac.new(key, b"".join(frames[3:]), hashlib.sha256).hexdigest().encode()
            assert frames[2] == mac  # the signatures still verify
        # A topic prefix goes on the topic frame only; a single frame cannot take it.
        out = persist(*args, "--verbatim", "--retopic", "test.")
        assert out.returncode == 4 and "1 single-frame messages were NOT replayed" in out.stderr
        got = sub.drain()
        assert got == [[b"test." + f[0], *f[1:]] for f in sent[:-1]]
        bad = persist(*args, "--retopic", "test.")
        assert bad.returncode == 2 and "--retopic goes with --verbatim" in bad.stderr
    finally:
        sub.close()


def test_replay_over_damage_says_what_was_not_sent_and_exits_5(
    procs: Callable[..., Proc], tmp_path: Path
) -> None:
    """A segment gone and a damaged line in range: the rest is sent, as export writes
    every good record, and one line names what was not (exit 5 unless --allow-damage)."""
    root = tmp_path / "logs"
    clock = DemoClock(RESTORE_T0)
    w = DemoWriter.open(root, segment_bytes=4096, clock=clock)
    for i in range(100):
        clock.now = RESTORE_T0 + i
        w.message(clock.now, "coder", f"message {i}")
        if i == 90:
            w.bad_line()
    w.checkpoint(clock.now + 1, "end", "manual")
    w.close()
    segments = sorted((root / "segments").glob("seg-*.jsonl"))
    assert len(segments) >= 4 and any(b"torn write" in p.read_bytes() for p in segments[2:])
    segments[1].unlink()  # seg-000002.jsonl
    left = sum(p.read_bytes().count(b'"kind":"msg"') for p in segments[:1] + segments[2:])
    assert 0 < left < 100
    other = Bus(procs, tmp_path / "other")  # a broker nobody records
    other.start_broker()
    sub = Subscriber(other)
    try:
        args = ["replay", "end", "--log-dir", str(root), "--endpoint", other.front]
        out = persist(*args)
        assert out.returncode == 5, out.stderr
        assert f"replayed {left} messages" in out.stdout
        (line,) = out.stderr.splitlines()
        assert line.startswith("persist: NOT replayed, the journal is damaged in range: ")
        assert "1 damaged line; seg-000002.jsonl is missing from segments/" in line
        assert line.endswith("(exit 5)")
        assert len(sub.drain()) == left  # every good message was sent all the same
        out = persist(*args, "--allow-damage", "--json")
        assert out.returncode == 0, out.stderr
        report = orjson.loads(out.stdout)
        assert report["sent"] == left and report["bad_lines"] == 1
        assert any("seg-000002.jsonl is missing" in d for d in report["damage"])
        assert "(--allow-damage: exit 0)" in out.stderr
        assert len(sub.drain()) == left
    finally:
        sub.close()


def test_replay_over_damage_and_skipped_messages_exits_as_its_stderr_says(
    procs: Callable[..., Proc], tmp_path: Path
) -> None:
    """Damage in range and messages skipped: the exit code is the one stderr names (5 for
    the damage; 4 for the skipped ones with --allow-damage), and every topic of the
    unmarkable ones is counted, the ones past the fifth as "and N more"."""
    root = tmp_path / "logs"
    clock = DemoClock(RESTORE_T0)
    w = DemoWriter.open(root, clock=clock)
    w.message(RESTORE_T0, "coder", "one")
    w.bad_line()
    single = w.journal.append(
        {"kind": "msg", "ts": RESTORE_T0 + 1, "topic": "", "meta": {}},
        encode_frames([b"a single frame"]),
    )
    assert single
    for i in range(7):  # payloads that are no JSON object: they cannot carry the mark
        w.journal.append(
            {"kind": "msg", "ts": RESTORE_T0 + 2 + i, "topic": f"raw.t{i}", "meta": {}},
            encode_frames([f"raw.t{i}".encode(), b"not json"]),
        )
    w.journal.messages += 8
    w.message(RESTORE_T0 + 10, "coder", "two")
    w.checkpoint(RESTORE_T0 + 11, "end", "manual")
    w.close()
    other = Bus(procs, tmp_path / "other")  # a broker nobody records
    other.start_broker()
    sub = Subscriber(other)
    try:
        args = ["replay", "end", "--log-dir", str(root), "--endpoint", other.front]
        out = persist(*args, "--unmarked-prefix", "R.")
        assert "damaged in range: 1 damaged line" in out.stderr
        assert "1 single-frame messages were NOT replayed" in out.stderr
        assert "(exit 5)" in out.stderr and out.returncode == 5, out.stderr
        out = persist(*args, "--unmarked-prefix", "R.", "--allow-damage")
        assert "exit 0" not in out.stderr and "exit 4" in out.stderr
        assert out.returncode == 4, out.stderr
        out = persist(*args)
        assert "8 messages were NOT replayed" in out.stderr  # the single frame too
        assert "topics: (none) (1), raw.t0 (1)" in out.stderr
        assert "raw.t3 (1) and 3 more)" in out.stderr
        assert "(exit 5)" in out.stderr and out.returncode == 5, out.stderr
        out = persist(*args, "--allow-damage")
        assert "exit 0" not in out.stderr and out.returncode == 4, out.stderr
        sub.drain()
    finally:
        sub.close()


def test_mark_keeps_a_payload_whose_envelope_is_not_first_byte_for_byte() -> None:
    """An envelope after other keys gets its mark where it is; nothing else of the
    payload is written again. Before, the whole object was parsed and written again:
    an integer beyond 64 bits became a float, `1.50` became `1.5`, spacing was lost."""
    raw = (
        b'{"text": "x", "n": 123456789012345678901234567890, '
        b'"_persist": {"pub":"p","seq":2}, "f": 1.50, "e": 1E+2}'
    )
    assert mark(raw, {"seq": 1}, "r", 5) == (
        b'{"text": "x", "n": 123456789012345678901234567890, '
        b'"_persist": {"pub":"p","seq":2,"replay_of":{"seq":1}}, "f": 1.50, "e": 1E+2}'
    )
    # two envelopes: the one a parser keeps (the last) is the one marked
    twice = b'{"_persist": 1, "a": [1, {"_persist": 2}], "_persist": {"pub":"p","seq":2}}'
    assert mark(twice, {"seq": 1}, "r", 5) == (
        b'{"_persist": 1, "a": [1, {"_persist": 2}], '
        b'"_persist": {"pub":"p","seq":2,"replay_of":{"seq":1}}}'
    )
    # the key spelt with an escape is the same key: the envelope a parser keeps is marked
    escaped = b'{"_persist": {"pub":"a","seq":1}, "_pers\\u0069st": {"pub":"p","seq":2}}'
    assert orjson.loads(mark(escaped, {"seq": 1}, "r", 5))["_persist"] == {
        "pub": "p",
        "seq": 2,
        "replay_of": {"seq": 1},
    }


@pytest.mark.parametrize("as_json", [False, True])
def test_a_replay_whose_broker_goes_away_stops_and_says_how_far_it_got(
    procs: Callable[..., Proc], tmp_path: Path, as_json: bool
) -> None:
    """The broker killed while a paced replay sent: it went on "sending" into nothing,
    said "replayed 300 messages" and exited 0, after waiting its 30 s linger for a broker
    that was gone. Now it notices the lost connection, stops, and one line says how many
    messages were sent before and that the rest were not, exit 1, without the linger.
    With --json it printed no JSON at all: now the summary it documents, counting what
    was sent, with `stopped` saying why it stopped."""
    import signal
    import time

    root = tmp_path / "logs"
    clock = DemoClock(RESTORE_T0)
    w = DemoWriter.open(root, clock=clock)
    for i in range(300):  # 6 s at the recorded pace
        clock.now = RESTORE_T0 + i * 0.02
        w.message(clock.now, "coder", f"message {i}")
    w.checkpoint(clock.now + 0.01, "end", "manual")
    w.close()
    other = Bus(procs, tmp_path / "other")
    broker = other.start_broker()
    sub = Subscriber(other)
    try:
        argv = ["replay", "end", "--log-dir", str(root), "--endpoint", other.front, "--speed", "1"]
        argv += ["--json"] if as_json else []
        replay = subprocess.Popen(
            [sys.executable, "-m", "recorder.cli", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        got: list[list[bytes]] = []
        deadline = time.monotonic() + 30
        while len(got) < 20 and time.monotonic() < deadline:
            if sub.sock.poll(100):
                got.append(sub.sock.recv_multipart())
        assert len(got) >= 20
        broker.signal(signal.SIGKILL)
        killed = time.monotonic()
        out, err = replay.communicate(timeout=60)
        assert time.monotonic() - killed < 20  # no 30 s linger for a broker that is gone
        got += sub.drain()
        assert replay.returncode == 1, err
        (line,) = err.splitlines()
        prefix = f"persist: replay stopped: the broker at {other.front} went away after "
        assert line.startswith(prefix), line
        sent = int(line[len(prefix) :].split()[0])
        assert len(got) <= sent < 300
        assert line.endswith(
            " messages had been sent (what it had not passed on yet is lost); the rest of "
            "the range was NOT replayed"
        )
        if not as_json:
            assert out == ""
        else:
            summary = orjson.loads(out)
            assert summary["stopped"] == "broker_lost"
            assert summary["sent"] == sent
            assert summary["error"] == line.removeprefix("persist: ")
    finally:
        sub.close()


def test_a_broker_that_goes_away_while_the_last_messages_are_delivered_is_not_waited_for(
    procs: Callable[..., Proc], tmp_path: Path
) -> None:
    """The broker frozen as a replay sent its last messages (queued, not taken), then
    killed: the replay had checked the broker after its last send, closed its socket
    and waited its whole 30 s linger for a broker that was gone, then said "replayed N
    messages", exit 0. Now the close watches the connection: it stops at once, one line
    says the messages still queued were not delivered, exit 1."""
    import signal
    import time

    root = tmp_path / "logs"
    clock = DemoClock(RESTORE_T0)
    w = DemoWriter.open(root, clock=clock)
    w.message(RESTORE_T0, "coder", "first")
    text = "x" * 20_000
    for i in range(3000):  # 60 MB, 2 s later: more than the broker's socket takes frozen
        w.message(RESTORE_T0 + 2, "coder", f"{i} {text}")
    w.checkpoint(RESTORE_T0 + 2.01, "end", "manual")
    w.close()
    other = Bus(procs, tmp_path / "other")
    broker = other.start_broker()
    sub = Subscriber(other)
    try:
        argv = ["replay", "end", "--log-dir", str(root), "--endpoint", other.front, "--speed", "1"]
        replay = subprocess.Popen(
            [sys.executable, "-m", "recorder.cli", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert sub.sock.poll(30_000), "the first message"
        broker.signal(signal.SIGSTOP)  # takes nothing more
        time.sleep(4)  # the pause (2 s), the rest sent into the queue, the socket closing
        assert replay.poll() is None  # lingering: the queue is not delivered
        broker.signal(signal.SIGKILL)
        killed = time.monotonic()
        out, err = replay.communicate(timeout=60)
        assert time.monotonic() - killed < 10  # no 30 s linger for a broker that is gone
        assert replay.returncode == 1, err
        assert out == ""
        assert err.splitlines() == [
            f"persist: replay stopped: the broker at {other.front} went away before the last "
            "of the 3001 messages sent had reached it (those still queued then, an unknown "
            "number, were NOT delivered)"
        ]
    finally:
        sub.close()


def test_a_null_or_odd_envelope_is_replayed_marked_or_skipped_for_what_it_is(bus: Bus) -> None:
    """`{"_persist": null, ...}` was replayed with a new envelope before the first key:
    the payload held the key twice, the later null won, and the recorder journaled the
    copy as a new message without `meta.replay_of` (a duplicate looking original, sent
    again by the next replay). Now the null is replaced in place, as an envelope whose
    `pub` or `seq` the recorder would not take gets stand-ins for them: every replay
    sent is recorded as one. What cannot be marked without altering it (a `_persist`
    that is a number; an envelope with a field the recorder does not read) is skipped
    with the reason said, not "not a one-line JSON object"."""
    bus.start_broker()
    bus.start_recorder()
    log = str(bus.log_dir)
    sent = {
        "e.null": b'{"_persist": null, "text": "null envelope"}',
        "e.plain": b'{"text": "no envelope"}',
        "e.seq0": b'{"text": "seq 0", "_persist": {"pub": "p", "seq": 0}}',
        "e.five": b'{"_persist": 5, "text": "five"}',
        "e.field": b'{"_persist": {"pub": "p", "seq": 3, "color": "red"}, "text": "field"}',
    }
    with Publisher(bus.front, agent="coder", heartbeat_interval=0) as pub:
        pub.wait_ready(5)
        cp = persist("checkpoint", "--log-dir", log, "--label", "before", "--json")
        assert cp.returncode == 0, cp.stderr
        for topic, payload in sent.items():
            pub.send_raw([topic.encode(), payload])

        def recorded() -> list[dict]:
            return [r for r in journal_records(bus.log_dir) if r.get("topic", "")[:2] == "e."]

        wait_for(lambda: len(recorded()) == len(sent), what="messages recorded")
    originals = {r["topic"]: r["seq"] for r in recorded()}
    assert persist("checkpoint", "--log-dir", log, "--label", "sent").returncode == 0
    out = persist("replay", "sent", "--from", "before", "--log-dir", log, "--endpoint", bus.front)
    assert out.returncode == 4, out.stderr
    assert "replayed 3 messages" in out.stdout
    assert out.stderr.splitlines() == [
        "persist: 2 messages were NOT replayed: 1 because their `_persist` member is a "
        "number, not an envelope object; 1 because their `_persist` object is not an "
        "envelope the recorder reads (see FORMAT.md), so they cannot carry the replay mark "
        "without being altered (topics: e.field (1), e.five (1)). --unmarked-prefix P sends "
        "them as they are under the topic P<topic>."
    ]
    wait_for(lambda: len(recorded()) == len(sent) + 3, what="replays recorded")
    replays = [r for r in recorded() if r["seq"] not in originals.values()]
    assert {r["topic"]: r["meta"].get("replay_of") for r in replays} == {
        topic: {"seq": originals[topic]} for topic in ("e.null", "e.plain", "e.seq0")
    }
    by_topic = {r["topic"]: r["frames"][-1]["json"] for r in replays}
    assert by_topic["e.null"]["text"] == "null envelope"
    assert by_topic["e.null"]["_persist"]["replay_of"] == {"seq": originals["e.null"]}
    assert by_topic["e.seq0"]["_persist"]["pub"] == "p"  # the seq alone is a stand-in
    # a replay of the originals and their replays sends the replays none again
    assert persist("checkpoint", "--log-dir", log, "--label", "after").returncode == 0
    args = ["--from", "before", "--log-dir", log, "--endpoint", bus.front, "--json"]
    report = orjson.loads(persist("replay", "after", *args).stdout)
    assert (report["sent"], report["skipped_replays"]) == (3, 3)
    assert report["unmarkable_why"] == {
        "their `_persist` member is a number, not an envelope object": 1,
        "their `_persist` object is not an envelope the recorder reads (see FORMAT.md)": 1,
    }


def test_mark_replaces_a_null_envelope_where_it_stands() -> None:
    assert mark(b'{"a": 1, "_persist": null, "b": 2}', {"seq": 4}, "r", 7) == (
        b'{"a": 1, "_persist": {"replay_of":{"seq":4},"pub":"r","seq":7}, "b": 2}'
    )
    twice = b'{"_persist": {"pub": "p", "seq": 1}, "_persist": null}'  # the null is kept
    assert mark(twice, {"seq": 4}, "r", 7) == (
        b'{"_persist": {"pub": "p", "seq": 1}, '
        b'"_persist": {"replay_of":{"seq":4},"pub":"r","seq":7}}'
    )
