"""The recorder core driven directly, with an injected clock and no ZeroMQ."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from recorder.bus.envelope import HEARTBEAT_TOPIC
from recorder.bus.keys import Refused
from recorder.daemon import recovery
from recorder.daemon.core import STATUS_REWRITE, Recorder
from recorder.daemon.enrich import Enricher
from recorder.daemon.options import RecorderOptions
from recorder.store.checkpoints import Checkpoint
from recorder.store.journal import Position
from recorder.store.ranges import MAX_KEY_CHARS, MAX_PARTICIPANTS, OTHERS, summarize
from recorder.store.reader import Store, open_store
from recorder.store.recovery import RecoveryState
from recorder.store.status import (
    DEGRADED,
    HEALTHY,
    STALE,
    STALE_AFTER,
    StatusSnapshot,
    assess,
)
from tests.support import journal_records


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def stores_recovery_opens(monkeypatch: pytest.MonkeyPatch) -> list[Store]:
    """The stores `recovery` opens from now on (each refresh noted), to see where they
    start reading."""
    opened: list[Store] = []

    class Spy(Store):
        def refresh(self) -> int:
            opened.append(self)
            return super().refresh()

    monkeypatch.setattr(recovery, "Store", Spy)
    return opened


def env_msg(pub: str, seq: int, text: str = "hi", topic: bytes = b"agents.x") -> list[bytes]:
    return [topic, orjson.dumps({"_persist": {"pub": pub, "seq": seq, "agent": pub}, "text": text})]


def heartbeat(pub: str, seq: int) -> list[bytes]:
    body = {"_persist": {"pub": pub, "seq": seq, "hb": True}}
    return [HEARTBEAT_TOPIC.encode(), orjson.dumps(body)]


def make(tmp_path: Path, clock: Clock, **opts: object) -> Recorder:
    rec = Recorder(RecorderOptions(log_dir=tmp_path / "logs", **opts), clock=clock)  # type: ignore[arg-type]
    rec.open()
    return rec


def feed(rec: Recorder, clock: Clock, *messages: list[bytes]) -> None:
    rec.record_batch(clock.now, list(messages))


def wait_compressed(rec: Recorder, closed: int, timeout: float = 30.0) -> None:
    """Until the background thread has compressed `closed` segments (or `timeout` s)."""
    import time

    from recorder.store.layout import list_segments

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(p.name.endswith(".zst") for p in list_segments(rec.layout)) == closed:
            return
        time.sleep(0.05)


def test_publisher_holes_and_tail_loss_become_gap_records(tmp_path: Path) -> None:
    clock = Clock()
    rec = make(tmp_path, clock)
    feed(rec, clock, env_msg("p", 1), env_msg("p", 2), env_msg("p", 5), env_msg("p", 6))
    feed(rec, clock, heartbeat("p", 9))  # 7..9 were lost at the end of a burst
    feed(rec, clock, env_msg("p", 6), [b"untracked", b"no envelope"])  # a duplicate: no hole
    rec.close()
    gaps = [r for r in journal_records(tmp_path / "logs") if r["kind"] == "gap"]
    assert [(g["cause"], g["from_seq"], g["to_seq"], g["missed"]) for g in gaps] == [
        ("publisher-sequence", 3, 4, 2),
        ("publisher-heartbeat", 7, 9, 3),
    ]
    assert rec.counters.gaps == 2 and rec.counters.missed == 5


def test_a_publisher_silent_with_an_unconfirmed_tail_gets_one_record_per_silence(
    tmp_path: Path,
) -> None:
    """A burst's tail and every heartbeat after it dropped (a full broker queue), or a
    publisher dead before its last heartbeat: nothing later would show the loss, so the
    silence itself is written down, once, and counted."""
    clock = Clock()
    rec = make(tmp_path, clock, unconfirmed_after=60.0)
    rec.on_connection("connected", clock.now)
    feed(rec, clock, heartbeat("p", 0), env_msg("p", 1), env_msg("p", 2))
    feed(rec, clock, heartbeat("p", 2), env_msg("p", 3), env_msg("p", 4))  # 3, 4: unconfirmed
    feed(rec, clock, env_msg("quiet", 1))  # never beats: its silence says nothing
    feed(rec, clock, heartbeat("done", 0), env_msg("done", 1), heartbeat("done", 1))

    def silent_records() -> list[dict[str, Any]]:
        return [
            r
            for r in journal_records(tmp_path / "logs")
            if r["kind"] == "gap" and r["cause"] == "publisher-silent"
        ]

    rec.tick(clock.now)  # the watch sees 3 and 4 unconfirmed
    for _ in range(59):  # under a minute of silence: nothing yet
        clock.now += 1
        rec.tick(clock.now)
        assert silent_records() == []
    clock.now += 1
    rec.tick(clock.now)
    (silent,) = silent_records()
    assert (silent["publisher"], silent["last_seq"], silent["confirmed_seq"]) == ("p", 4, 2)
    assert silent["agent"] is None and "after seq 4" in silent["detail"]
    assert rec.counters.unconfirmed == 1 and rec.counters.gaps == 0  # not a known loss
    clock.now += 120
    rec.tick(clock.now)
    assert len(silent_records()) == 1  # once per silence
    feed(rec, clock, env_msg("p", 5))  # heard from again, then silent again
    clock.now += 1
    rec.tick(clock.now)
    clock.now += 61
    rec.tick(clock.now)
    assert [r["last_seq"] for r in silent_records()] == [4, 5]
    feed(rec, clock, heartbeat("p", 7))  # it beats again: 6 and 7 are a known loss
    clock.now += 61
    rec.tick(clock.now)
    rec.close()
    assert len(silent_records()) == 2
    assert rec.counters.gaps == 1 and rec.counters.missed == 2
    assert rec.status(clock.now).counts.unconfirmed == 2


def test_no_publisher_is_called_silent_while_the_recorder_could_not_hear_it(
    tmp_path: Path,
) -> None:
    """A broker outage has a record of its own; a publisher's silence counts only from
    when the recorder can hear it again."""
    clock = Clock()
    rec = make(tmp_path, clock, unconfirmed_after=60.0)
    rec.on_connection("connected", clock.now)
    feed(rec, clock, heartbeat("p", 0), env_msg("p", 1))
    rec.tick(clock.now)  # 1 is unconfirmed from here
    clock.now += 30
    rec.on_connection("disconnected", clock.now)
    for _ in range(120):  # two minutes without a broker
        clock.now += 1
        rec.tick(clock.now)
    rec.on_connection("connected", clock.now)
    for _ in range(59):
        clock.now += 1
        rec.tick(clock.now)
    assert rec.counters.unconfirmed == 0
    clock.now += 2
    rec.tick(clock.now)
    rec.close()
    assert rec.counters.unconfirmed == 1
    causes = [r["cause"] for r in journal_records(tmp_path / "logs") if r["kind"] == "gap"]
    assert causes == ["broker-outage", "publisher-silent"]


def test_heartbeats_before_the_first_message_are_heartbeats(tmp_path: Path) -> None:
    """`Publisher` beats from its start with seq 0 (nothing sent yet): those were journaled
    as messages on `_persist.heartbeat`, found by search, counted by stats and exported."""
    clock = Clock()
    rec = make(tmp_path, clock)
    feed(rec, clock, heartbeat("p", 0), heartbeat("p", 0))
    feed(rec, clock, env_msg("p", 1))
    rec.close()
    kinds = [
        r["kind"]
        for r in journal_records(tmp_path / "logs")
        if r["kind"] not in ("segment", "event")
    ]
    assert kinds == ["heartbeat", "heartbeat", "msg"]
    assert rec.counters.heartbeats == 2 and rec.counters.gaps == 0 and rec.journal.messages == 1


def test_foreign_and_forged_envelopes_never_open_a_gap_or_change_a_count(tmp_path: Path) -> None:
    clock = Clock()
    rec = make(tmp_path, clock)
    hb = HEARTBEAT_TOPIC.encode()
    forged = [
        [b"jupyter.iopub", orjson.dumps({"_persist": {"pub": "k", "seq": 9, "header": {}}})],
        [b"x", orjson.dumps({"_persist": {"pub": "p", "seq": 1e12}})],  # a float
        [b"x", orjson.dumps({"_persist": {"pub": "", "seq": 3}})],
        [b"x", orjson.dumps({"_persist": {"pub": "p", "seq": True}})],
        [b"x", orjson.dumps({"_persist": "just a string"})],
        [hb, orjson.dumps({"_persist": {"pub": "ghost", "seq": 10**12, "hb": True}})],
        [hb, orjson.dumps({"text": "a chat message on the heartbeat topic"})],
        [hb, b"plain text on the heartbeat topic"],
    ]
    pub = "Claude Code-1-ab"  # agent names may hold spaces
    feed(rec, clock, env_msg(pub, 1), env_msg(pub, 2))
    feed(rec, clock, *forged)
    # a known publisher: a believable hole opens a gap, an absurd jump does not
    feed(rec, clock, env_msg(pub, 10**12), env_msg(pub, 5))
    feed(rec, clock, heartbeat(pub, 10**12))
    rec.close()
    records = journal_records(tmp_path / "logs")
    gaps = [(g["cause"], g["from_seq"], g["to_seq"]) for g in records if g["kind"] == "gap"]
    assert gaps == [("publisher-sequence", 3, 4)]
    assert rec.counters.missed == 2
    # 5 malformed, a heartbeat from nowhere at 10**12, 2 absurd jumps of a known publisher
    assert rec.counters.implausible == 5 + 1 + 2
    messages = [r for r in records if r["kind"] == "msg"]
    assert len(messages) == 2 + len(forged) - 1 + 2  # all but the well-formed heartbeat
    assert rec.counters.heartbeats == 2 and rec.journal.messages == len(messages)
    status = rec.status(clock.now)
    assert status.counts.missed == 2 and status.counts.implausible == 8


def test_a_broker_outage_gap_starts_at_the_outage_not_when_it_was_noticed(
    tmp_path: Path,
) -> None:
    clock = Clock(1000.0)
    rec = make(tmp_path, clock)
    rec.on_connection("connected", 1000.0)
    clock.now = 1001.0
    feed(rec, clock, [b"jupyter.iopub", b'{"msg_type": "stream"}'])  # no envelope
    # frozen broker: heartbeats time out 3 s later; reconnected at 1012
    rec.on_connection("disconnected", 1004.5)
    rec.on_connection("connected", 1012.0)
    # a lively bus: the disconnect is seen right after the last message
    clock.now = 1020.0
    feed(rec, clock, env_msg("p", 1))
    rec.on_connection("disconnected", 1020.2)
    rec.on_connection("connected", 1021.0)
    rec.close()
    gaps = [g for g in journal_records(tmp_path / "logs") if g["kind"] == "gap"]
    outages = [(g["from_ts"], g["to_ts"]) for g in gaps if g["cause"] == "broker-outage"]
    assert outages == [(1001.5, 1012.0), (1020.0, 1021.0)]
    assert rec.counters.unsequenced == 1


def test_publishers_refused_after_the_first_are_journaled_by_the_tick_once_a_minute(
    tmp_path: Path,
) -> None:
    """Not at the recorder's stop only: one killed before it would never say them."""
    endpoint = "tcp://127.0.0.1:5560"
    clock = Clock(1000.0)
    rec = make(tmp_path, clock, broker=None, bind=(endpoint,))
    rec.on_connection("listening", 1000.0, endpoint)
    for ts in (1001.0, 1002.0, 1003.0):
        rec.on_handshake_failed(ts, endpoint, "refused", Refused("KEY", "127.0.0.1"))
    clock.now = 1030.0
    rec.tick(clock.now)  # the minute since the first is not over
    clock.now = 1061.0
    rec.tick(clock.now)
    clock.now = 1100.0
    rec.close()
    refused = [
        r for r in journal_records(tmp_path / "logs") if r.get("event") == "publisher-refused"
    ]
    assert [(r["ts"], r["refusals"], r["since"]) for r in refused] == [
        (1001.0, 1, 1001.0),
        (1061.0, 2, 1002.0),
    ]


def test_messages_without_an_envelope_are_reported_as_undetectable_loss(tmp_path: Path) -> None:
    from recorder.export.restore import build_bundle

    clock = Clock()
    rec = make(tmp_path, clock)
    feed(rec, clock, env_msg("p", 1), [b"jupyter.iopub", b'{"msg_type": "stream"}'])
    feed(rec, clock, [b"raw", b"\x00\x01binary"], [b"x", b'{"_persist": "foreign"}'])
    assert rec.status(clock.now).counts.unsequenced == 3
    rec.checkpoint("now", "manual", clock.now, force=True)
    rec.close()
    bundle = build_bundle(tmp_path / "logs", "latest")
    integrity = bundle.manifest["integrity"]
    assert integrity["unsequenced"] == 3
    assert integrity["caveats"] == [
        "3 messages from publishers without sequence numbers: loss not detectable"
    ]


def test_status_and_periodic_checkpoints_follow_the_injected_clock(tmp_path: Path) -> None:
    clock = Clock()
    rec = make(tmp_path, clock, checkpoint_interval=300.0, status_interval=1.0)
    layout = rec.layout
    rec.tick(clock.now)
    first = orjson.loads(layout.status.read_bytes())
    assert first["updated"] == clock.now and first["state"] == "recording"
    clock.now += 0.5
    rec.tick(clock.now)  # not a second yet: status untouched
    assert orjson.loads(layout.status.read_bytes())["updated"] == first["updated"]
    clock.now += 300
    rec.tick(clock.now)  # interval passed but nothing new: no checkpoint
    assert not list(layout.checkpoints.glob("*.json"))
    feed(rec, clock, env_msg("p", 1), env_msg("p", 2))
    clock.now += 300
    rec.tick(clock.now)
    cps = list(layout.checkpoints.glob("*.json"))
    assert len(cps) == 1
    cp = orjson.loads(cps[0].read_bytes())
    assert cp["reason"] == "periodic" and cp["messages"] == 2 and cp["created"] == clock.now
    assert cp["participants"] == {"p": 2}
    status = orjson.loads(layout.status.read_bytes())
    assert status["counts"]["written"] == 2 and status["last_checkpoint"]["id"] == cp["id"]
    rec.close()


def test_periodic_work_keeps_its_intervals_when_the_wall_clock_is_stepped(
    tmp_path: Path,
) -> None:
    """Scheduled on the monotonic clock: a wall clock set back an hour stops neither the
    status nor the checkpoints (which are stamped with it), and one set forward runs
    nothing early; each step writes the status whole at once, with the new time."""
    wall, mono = Clock(), Clock(500.0)
    rec = Recorder(
        RecorderOptions(log_dir=tmp_path / "logs", checkpoint_interval=10.0, status_interval=1.0),
        clock=wall,
        monotonic=mono,
    )
    rec.open()
    layout = rec.layout
    rec.tick(wall.now)

    def advance(seconds: float) -> None:
        wall.now += seconds
        mono.now += seconds

    def status() -> dict[str, Any]:
        return orjson.loads(layout.status.read_bytes())

    feed(rec, wall, env_msg("p", 1))
    advance(10)
    rec.tick(wall.now)
    assert len(list(layout.checkpoints.glob("*.json"))) == 1
    wall.now -= 3600  # set back an hour
    rec.tick(wall.now)
    assert status()["updated"] == wall.now  # written whole at once, with the new time
    feed(rec, wall, env_msg("p", 2), env_msg("p", 3))
    advance(2)  # (idle before: the status is due every other second)
    rec.tick(wall.now)
    assert status()["counts"]["written"] == 3 and status()["updated"] == wall.now
    advance(8)
    rec.tick(wall.now)
    cps = [orjson.loads(p.read_bytes()) for p in layout.checkpoints.glob("*.json")]
    assert sorted(cp["messages"] for cp in cps) == [1, 3]
    newest = next(cp for cp in cps if cp["messages"] == 3)
    assert newest["created"] == wall.now  # stamped with the wall clock
    feed(rec, wall, env_msg("p", 4))
    wall.now += 7200  # set forward two hours: the next checkpoint is still 10 s away
    rec.tick(wall.now)
    assert status()["updated"] == wall.now
    assert len(list(layout.checkpoints.glob("*.json"))) == 2
    advance(10)
    rec.tick(wall.now)
    assert len(list(layout.checkpoints.glob("*.json"))) == 3
    rec.close()


def test_an_idle_recorder_touches_its_unchanged_status_and_readers_take_that_as_its_heartbeat(
    tmp_path: Path,
) -> None:
    clock = Clock()
    rec = make(tmp_path, clock, status_interval=1.0)
    layout = rec.layout
    rec.tick(clock.now)
    clock.now += 1
    feed(rec, clock, env_msg("p", 1))
    rec.tick(clock.now)  # a message since the last one: written whole

    def on_disk() -> tuple[dict[str, Any], int, float]:
        st = layout.status.stat()
        return orjson.loads(layout.status.read_bytes()), st.st_ino, st.st_mtime

    busy, busy_inode, _ = on_disk()
    assert busy["updated"] == clock.now and busy["counts"]["written"] == 1
    assert busy["rates"]["received_per_s"] == 1.0
    clock.now += 2
    rec.tick(clock.now)  # nothing new, but its rate fell to 0: written whole again
    idle, idle_inode, _ = on_disk()
    assert idle_inode != busy_inode and idle["updated"] == clock.now
    assert idle["rates"] == {"received_per_s": 0.0, "written_per_s": 0.0}
    for _ in range(3):
        clock.now += 2
        rec.tick(clock.now)  # nothing new at all: only touched
        data, inode, mtime = on_disk()
        assert (data, inode) == (idle, idle_inode) and mtime == clock.now
        read = StatusSnapshot.read(layout)
        assert read is not None and read.updated == clock.now
        assert assess(layout, clock.now + 1).state != STALE  # never stale while it beats
        assert assess(layout, clock.now + STALE_AFTER + 1).state == STALE

    layout.status.unlink()  # gone from outside: written whole at once
    clock.now += 2
    rec.tick(clock.now)
    assert on_disk()[0]["updated"] == clock.now
    # replaced from outside (an old copy put back, say): never made to look fresh
    stale = {**on_disk()[0], "updated": clock.now - 3600, "pid": 1}
    layout.status.write_bytes(orjson.dumps(stale))
    clock.now += 2
    rec.tick(clock.now)
    mended = on_disk()[0]
    assert mended["updated"] == clock.now and mended["pid"] == idle["pid"]
    # changed in place, the same size, between two touches: rewritten too
    clock.now += 2
    rec.tick(clock.now)
    assert on_disk()[2] == clock.now  # touched
    same_size = layout.status.read_bytes().replace(b'"state":"recording"', b'"state":"stopped"  ')
    assert (
        same_size != layout.status.read_bytes() and len(same_size) == layout.status.stat().st_size
    )
    layout.status.write_bytes(same_size)
    clock.now += 2
    rec.tick(clock.now)
    assert on_disk()[0]["state"] == "recording" and on_disk()[0]["updated"] == clock.now
    written_at = clock.now

    clock.now += STATUS_REWRITE  # and whole at least every STATUS_REWRITE s
    rec.tick(clock.now)
    assert on_disk()[0]["updated"] == clock.now > written_at
    clock.now += 2
    rec.error("the disk said no")  # any change is written whole at the next status
    rec.tick(clock.now)
    data = on_disk()[0]
    assert data["updated"] == clock.now and data["last_error"]["message"] == "the disk said no"
    rec.close()


def test_oversized_messages_are_refused_with_a_record(tmp_path: Path) -> None:
    clock = Clock()
    rec = make(tmp_path, clock, max_message_bytes=1000)
    feed(rec, clock, [b"big", b"x" * 5000], [b"small", b"ok"])
    rec.close()
    records = journal_records(tmp_path / "logs")
    refused = [r for r in records if r["kind"] == "refused"]
    assert len(refused) == 1 and refused[0]["size"] == 5003 and refused[0]["topic"] == "big"
    assert [r["topic"] for r in records if r["kind"] == "msg"] == ["small"]
    assert rec.counters.refused == 1


def test_a_refused_message_is_read_as_a_refusal_and_its_sequence_as_received(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its record named the frame count `frames`, a number, where every reader wants a
    list: every export and restore of its range called it a damaged line (exit 5). And
    the envelope it carried was never read: the publisher's next message made a hole of
    its sequence number, counted as "sent before the recorder subscribed"."""
    from recorder.cli.main import main
    from recorder.store.reader import KIND_BAD_LINE
    from recorder.store.records import parse_line

    def enveloped(seq: int, text: str) -> list[bytes]:
        env = {"pub": "p1", "seq": seq, "mid": f"m{seq}"}
        return [b"agents.a", orjson.dumps({"_persist": env, "text": text})]

    clock = Clock()
    rec = make(tmp_path, clock, max_message_bytes=1000)
    feed(rec, clock, enveloped(1, "small"), enveloped(2, "x" * 5000), enveloped(3, "after"))
    assert rec.counters.refused == 1 and rec.counters.gaps == 0
    assert rec.counters.not_subscribed == 0 and rec.counters.missed == 0
    feed(rec, clock, enveloped(10**12, "y" * 5000))  # a jump not believed: counted as such
    assert rec.counters.implausible == 1 and rec.counters.refused == 2
    rec.close()
    root = tmp_path / "logs"
    refused, _ = [r for r in journal_records(root) if r["kind"] == "refused"]
    assert refused["frame_count"] == 2 and "frames" not in refused
    assert refused["envelope"] == {"pub": "p1", "seq": 2, "mid": "m2"}
    store = open_store(root)
    kinds = [r.kind for r in store.records(0, len(store))]
    assert "refused" in kinds and KIND_BAD_LINE not in kinds
    assert main(["export", "--all", "--format", "md", "--log-dir", str(root)]) == 0
    assert "refused" in capsys.readouterr().out
    # a record written before, with its count as `frames`, reads the same way
    old = {k: v for k, v in refused.items() if k not in ("frame_count", "envelope")}
    parsed = parse_line(orjson.dumps({**old, "frames": 2}))
    assert parsed is not None and parsed["frame_count"] == 2 and "frames" not in parsed
    assert parse_line(orjson.dumps({**old, "kind": "msg", "frames": 2})) is None


def test_segments_rotating_inside_batches_keep_every_line_whole_in_order_and_placed(
    tmp_path: Path,
) -> None:
    """The hot path appends lines straight into the journal's chunk; the records other
    calls append in between (refusals, heartbeats, gap records), which may end that
    chunk or its segment, must neither be lost nor reorder anything, and every
    position handed to the writer must be where its chunk really ends."""
    clock = Clock()
    rec = make(tmp_path, clock, segment_bytes=4096, max_message_bytes=1000)
    handed: list[tuple[int, int]] = []
    put = rec.journal.sink.put

    def spy(command: tuple[Any, ...], nbytes: int = 0) -> None:
        put(command, nbytes)  # the sink is not started: it writes at once
        if command[0] == "write":
            end = command[2]
            handed.append((end.segment, rec.layout.segment_path(end.segment).stat().st_size))
            assert handed[-1][1] == end.offset

    rec.journal.sink.put = spy  # type: ignore[method-assign]
    batch: list[list[bytes]] = []
    kept = []  # the messages that must come out as `msg` records, in order
    seq_a = seq_b = 0
    shapes = random.Random(3)  # every kind of record before and after every other
    for i in range(1500):
        shape = shapes.randrange(7)
        pad = "." * (i * 37 % 300)  # lines of many lengths: rotations fall anywhere
        if shape == 0:
            batch.append([b"big", b"x" * 2000])  # refused: a `refused` record
        elif shape == 6:
            batch.append(heartbeat("a", seq_a))  # a heartbeat record
        elif shape == 2:
            seq_b += 3  # a hole in b's sequence: a gap record
            kept.append(f"b{seq_b}{pad}")
            batch.append(env_msg("b", seq_b, text=kept[-1]))
        elif shape == 3:
            kept.append(f"raw{i}{pad}")
            batch.append([b"agents.x", b"not json " + kept[-1].encode()])
        elif shape == 4:
            kept.append(f"three{i}{pad}")
            batch.append([b"agents.x", b"mid", orjson.dumps({"text": kept[-1]})])
        else:
            seq_a += 1
            kept.append(f"a{seq_a}{pad}")
            batch.append(env_msg("a", seq_a, text=kept[-1]))
        if len(batch) == 10 + i % 31:  # batches of 10 to 40 messages
            rec.record_batch(clock.now, batch, more=i % 2 == 0)
            batch = []
    rec.record_batch(clock.now, batch)
    rec.close()

    records = journal_records(tmp_path / "logs")  # fails on any torn or invalid line
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))

    def text(r: dict[str, Any]) -> str:
        last = r["frames"][-1]
        return last["json"]["text"] if "json" in last else last["text"].removeprefix("not json ")

    assert [text(r) for r in records if r["kind"] == "msg"] == kept
    kinds = [r["kind"] for r in records]
    segments = [i for i, kind in enumerate(kinds) if kind == "segment"]
    assert len(segments) > 10
    # rotations came right after each kind of record, the hot path's and the others'
    assert {kinds[i - 1] for i in segments[1:]} >= {"msg", "refused", "heartbeat", "gap"}
    assert len({segment for segment, _ in handed}) == len(segments)


def test_restart_restores_publisher_sequences_and_records_downtime(tmp_path: Path) -> None:
    clock = Clock()
    rec = make(tmp_path, clock)
    feed(rec, clock, env_msg("p", 1), env_msg("p", 2))
    rec.tick(clock.now)
    feed(rec, clock, env_msg("p", 3))  # after the last state write: found in the journal
    rec.journal.close()  # no clean stop: as if killed
    clock.now += 60
    again = make(tmp_path, clock)
    assert again.journal.messages == 3
    feed(again, clock, env_msg("p", 4), env_msg("p", 7))
    again.close()
    gaps = [r for r in journal_records(tmp_path / "logs") if r["kind"] == "gap"]
    assert gaps[0]["cause"] == "recorder-down" and gaps[0]["clean_stop"] is False
    assert gaps[0]["to_ts"] - gaps[0]["from_ts"] == pytest.approx(60, abs=1)
    assert [(g["from_seq"], g["to_seq"]) for g in gaps[1:]] == [(5, 6)]


def test_a_crash_while_the_clock_was_ahead_leaves_no_gap_that_ends_before_it_begins(
    tmp_path: Path,
) -> None:
    """Killed while the clock was a year ahead, started again once it is right: the
    recorder-down gap's start (the last record's stamp) is a year after its end (this
    start). It was written so; its start is now its end, and its detail says why."""
    year = 365 * 86400.0
    clock = Clock()
    clock.now += year
    rec = make(tmp_path, clock)
    feed(rec, clock, env_msg("p", 1))
    rec.tick(clock.now)
    rec.journal.close()  # no clean stop: as if killed
    clock.now -= year - 60  # the clock put right, a minute later
    make(tmp_path, clock).close()
    (down,) = [r for r in journal_records(tmp_path / "logs") if r.get("cause") == "recorder-down"]
    assert down["from_ts"] <= down["to_ts"] == pytest.approx(clock.now)
    assert down["from_ts"] == down["to_ts"]
    assert "the clock was set back" in down["detail"] and "not known" in down["detail"]
    assert down["detail"].startswith("the previous recorder ended without a clean stop")


@pytest.mark.parametrize("status", ["kept", "garbage"])
def test_an_unreadable_recovery_state_does_not_make_a_clean_stop_a_crash(
    tmp_path: Path, status: str
) -> None:
    """The recorder-down gap said "ended without a clean stop (crash or kill)" after a
    clean stop whenever recovery/state.json could not be read; the status file the
    stop wrote says how it ended, and with neither, the gap says it is not known."""
    clock = Clock()
    rec = make(tmp_path, clock)
    feed(rec, clock, env_msg("p", 1))
    rec.close()  # a clean stop
    layout = rec.layout
    layout.state.write_bytes(b"{torn")
    if status == "garbage":
        layout.status.write_bytes(b"{torn")
    clock.now += 60
    make(tmp_path, clock).close()
    (down,) = [r for r in journal_records(layout.root) if r.get("cause") == "recorder-down"]
    if status == "kept":
        assert (
            down["clean_stop"] is True and down["detail"] == "the previous recorder stopped cleanly"
        )
    else:
        assert down["clean_stop"] is False and "a clean stop or not is not known" in down["detail"]


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"{torn",
        b"[]",
        b'{"position": {"segment": "1", "offset": 0, "seq": 0, "messages": 0}}',
        b'{"position": {"segment": 1, "offset": 0, "seq": 0, "messages": -5}}',
        b'{"position": {"segment": 1, "offset": 0, "seq": 0, "messages": 2}, "publishers": []}',
        b'{"position": {"segment": 1, "offset": 0, "seq": 0, "messages": 2},'
        b' "publishers": {"p": "x"}}',
        b'{"position": {"segment": 1, "offset": 0, "seq": 0, "messages": 2}, "first_ts": "y"}',
    ],
)
def test_a_wrongly_typed_recovery_state_is_ignored_and_the_journal_recounted(
    tmp_path: Path, garbage: bytes
) -> None:
    clock = Clock()
    rec = make(tmp_path, clock)
    feed(rec, clock, env_msg("p", 1), env_msg("p", 2), env_msg("p", 3))
    rec.close()
    state = RecoveryState.read(rec.layout)
    assert state is not None and state.clean and state.publishers == {"p": 4}
    rec.layout.state.write_bytes(garbage)
    assert RecoveryState.read(rec.layout) is None
    clock.now += 10
    again = make(tmp_path, clock)  # starts: the journal and the checkpoints are the truth
    assert again.journal.messages == 3
    feed(again, clock, env_msg("p", 4), env_msg("p", 6))
    again.close()
    gaps = [r for r in journal_records(tmp_path / "logs") if r["kind"] == "gap"]
    assert [g.get("from_seq") for g in gaps if g["cause"] == "publisher-sequence"] == [5]


def test_a_restart_indexes_only_the_segments_after_the_recovery_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    rec = make(tmp_path, clock, segment_bytes=4096)
    for i in range(200):  # about 17 segments
        feed(rec, clock, env_msg("p", i + 1, text="x" * 100))
    rec.journal.flush()
    rec.sync()
    rec._take_snapshot()
    rec.write_state(clock.now)
    state = RecoveryState.read(rec.layout)
    assert state is not None and state.position.segment > 10
    feed(rec, clock, env_msg("p", 201), env_msg("p", 202))  # after the state: read back
    rec.journal.close()  # killed

    opened = stores_recovery_opens(monkeypatch)
    again = make(tmp_path, clock, segment_bytes=4096)
    assert again.journal.messages == 202
    total = len(list(again.layout.segments.iterdir()))
    assert len(opened) == 1 and 0 < len(opened[0].segments) <= total - 10
    # and within the state's segment, only what follows its position
    first = opened[0].segments[0]
    assert first.number == state.position.segment
    assert first.start == state.position.offset > 0
    assert all(offset >= state.position.offset for offset in first.starts)
    feed(again, clock, env_msg("p", 203))
    again.close()
    gaps = [r for r in journal_records(tmp_path / "logs") if r["kind"] == "gap"]
    assert [g["cause"] for g in gaps] == ["recorder-down"]  # no invented sequence hole


def test_hostile_topics_and_senders_cannot_grow_memory_or_checkpoints(tmp_path: Path) -> None:
    clock = Clock()
    rec = make(tmp_path, clock, max_message_bytes=64 * 1024 * 1024)
    huge = [b"t%d" % i + b"x" * (2 * 1024 * 1024) for i in range(20)]
    feed(rec, clock, *([topic, b'{"text": "hi"}'] for topic in huge))
    senders = ([b"chat", orjson.dumps({"from": f"s{i}-" + "y" * 5000})] for i in range(3000))
    feed(rec, clock, *senders)
    # no 2 MiB topic is kept by the topic caches; names are cut to MAX_KEY_CHARS
    assert all(len(k) <= MAX_KEY_CHARS for k in rec._topics)
    assert all(len(k) <= MAX_KEY_CHARS for k in rec.enricher._topic_cache)
    cp = rec.checkpoint("after the flood", "manual", clock.now, force=True)
    assert cp is not None and cp.path is not None
    assert cp.path.stat().st_size < 300_000  # was megabytes: names unbounded
    assert sum(cp.participants.values()) == 3020  # every message counted, some as others
    assert len(cp.participants) <= MAX_PARTICIPANTS + 1 and cp.participants[OTHERS] > 0
    rec.close()
    with open_store(tmp_path / "logs") as store:
        summary = summarize(store.records())
    assert summary is not None and summary.messages == 3020
    assert len(summary.participants) <= MAX_PARTICIPANTS + 1
    assert all(len(name) <= MAX_KEY_CHARS for name in summary.participants)
    # and nothing was altered: the 2 MiB topics are in the journal whole
    assert sorted(
        r["topic"] for r in journal_records(tmp_path / "logs") if len(r.get("topic", "")) > 1000
    ) == sorted(t.decode() for t in huge)


def test_a_full_disk_delays_writes_but_loses_and_tears_nothing(tmp_path: Path) -> None:
    clock = Clock()
    rec = make(tmp_path, clock)
    sink = rec.journal.sink
    sink.retry_delay = 0.001
    real_writev = sink.writev
    failures = {"left": 3}

    def full_then_half(fd: int, chunks: list[memoryview]) -> int:
        if failures["left"]:
            failures["left"] -= 1
            if failures["left"] == 1:  # a short write: half a line reaches the disk
                return real_writev(fd, [chunks[0][: len(chunks[0]) // 2]])
            raise OSError(28, "No space left on device")
        return real_writev(fd, chunks)

    sink.writev = full_then_half  # type: ignore[method-assign]
    said: list[str] = []
    sink.on_error = lambda message: (said.append(message), rec.error(message))  # type: ignore[func-returns-value]
    feed(rec, clock, env_msg("p", 1), env_msg("p", 2), env_msg("p", 3))
    rec.close()
    records = journal_records(tmp_path / "logs")  # every line is whole and valid
    seqs = [r["frames"][1]["json"]["_persist"]["seq"] for r in records if r["kind"] == "msg"]
    assert seqs == [1, 2, 3]
    # said once per episode (not once per retry), and no longer current once writes work
    assert len(said) == 1 and "No space left" in said[0]
    assert rec.last_error is None and sink.stalled is None
    assert not [r for r in records if r["kind"] == "gap"]


def test_messages_dropped_beyond_the_backlog_budget_are_one_gap_not_sequence_holes(
    tmp_path: Path,
) -> None:
    clock = Clock()
    rec = make(tmp_path, clock)
    feed(rec, clock, env_msg("p", 1), env_msg("p", 2))
    clock.now += 1
    rec.drop_batch(clock.now, [env_msg("p", 3), heartbeat("p", 3), [b"t", b"no envelope"]])
    clock.now += 2
    rec.drop_batch(clock.now, [env_msg("p", 4), env_msg("p", 7)])  # 5..6 never reached us
    clock.now += 1
    feed(rec, clock, env_msg("p", 8))  # back under the budget: the drop is written down
    rec.drop_batch(clock.now, [env_msg("p", 9)])  # a second episode, ended by the close
    rec.close()
    records = journal_records(tmp_path / "logs")
    gaps = [r for r in records if r["kind"] == "gap"]
    assert [(g["cause"], g.get("from_seq"), g["missed"]) for g in gaps] == [
        ("publisher-sequence", 5, 2),
        ("recorder-backlog", None, 4),  # 3, the unsequenced one, 4 and 7; not the heartbeat
        ("recorder-backlog", None, 1),
    ]
    assert gaps[1]["from_ts"] == 1_800_000_001.0 and gaps[1]["to_ts"] == 1_800_000_003.0
    seqs = [r["frames"][1]["json"]["_persist"]["seq"] for r in records if r["kind"] == "msg"]
    assert seqs == [1, 2, 8]
    assert rec.counters.missed == 7 and rec.counters.backlog_pauses == 2


def test_enrichment_adds_meta_and_never_touches_the_message(tmp_path: Path) -> None:
    clock = Clock()
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[chain]]\ntype = "vote"\nvalues = { type = ["ballot"] }\n'
        '[[ace]]\nlayer = 2\nname = "global strategy"\ntopics = ["strategy.*"]\n'
        '[[tags]]\ntag = "urgent"\nkeywords = ["asap"]\n'
    )
    rec = make(tmp_path, clock, rules=rules)
    body = b'{"type": "ballot", "text": "Do it ASAP", "from": "gemini"}'
    feed(rec, clock, [b"strategy.vote", body])
    rec.close()
    msg = next(r for r in journal_records(tmp_path / "logs") if r["kind"] == "msg")
    assert msg["meta"] == {
        "chain": "vote",
        "ace": 2,
        "ace_name": "global strategy",
        "tags": ["urgent"],
        "sender": "gemini",
        "secrets": [],  # scanned in full and clean
    }
    line = next((tmp_path / "logs/segments").glob("*.jsonl")).read_bytes()
    assert body in line  # spliced byte for byte


def test_default_rules_classify_common_shapes() -> None:
    e = Enricher.load()
    assert e.enrich("agents.x", {"tool_calls": []}, b"{}")["chain"] == "tool_call"
    assert e.enrich("agents.x", {"error": "boom"}, b"{}")["chain"] == "error"
    assert e.enrich("agents.x", {"in_reply_to": "m1"}, b"{}")["chain"] == "reply"
    assert e.enrich("broadcast.all", None, b"hello")["chain"] == "broadcast"
    meta = e.enrich("agents.x", {"text": "our mission"}, b'{"text": "our mission"}')
    assert meta["ace"] == 1
    assert e.enrich("agents.x", None, b"what now?")["tags"] == ["question"]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.binary(max_size=20) | st.text(max_size=20).map(str.encode),
            st.binary(max_size=40)
            | st.text(max_size=40).map(str.encode)
            | st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3).map(
                lambda d: json.dumps(d).encode()
            ),
        ),
        min_size=1,
        max_size=20,
    )
)
@example([(b"100%d%%s%", b'{"%s":"%d"}'), (b"%", b"[1]")])  # a topic is part of a format
def test_the_fast_path_and_the_general_encoder_both_keep_frames_exact(
    tmp_path_factory: pytest.TempPathFactory, pairs: list[tuple[bytes, bytes]]
) -> None:
    tmp = tmp_path_factory.mktemp("fast")
    clock = Clock()
    rec = make(tmp, clock)
    sent = [[topic, payload] for topic, payload in pairs]
    feed(rec, clock, *sent)
    rec.close()
    with open_store(tmp / "logs") as store:
        # A message on the heartbeat topic is kept under the heartbeat kind: frames exact too.
        got = [r.frames for r in store.records() if r.kind in ("msg", "heartbeat")]
        for r in store.records():
            json.loads(r.line)  # the standard library agrees every line is JSON
    assert got == sent


def test_recovery_state_never_gets_ahead_of_what_is_durable(tmp_path: Path) -> None:
    clock = Clock()
    rec = make(tmp_path, clock, status_interval=1.0)
    state_file = rec.layout.state
    rec.tick(clock.now)
    before = orjson.loads(state_file.read_bytes())["position"]
    clock.now += 2
    feed(rec, clock, env_msg("p", 1), env_msg("p", 2))
    rec._snapshot_due = 0  # take the snapshot now rather than in a second
    feed(rec, clock, env_msg("p", 3))
    rec.tick(clock.now)  # written, not yet fsynced: the state must not move
    assert orjson.loads(state_file.read_bytes())["position"] == before
    rec.sync()
    clock.now += 2
    rec.tick(clock.now)
    state = orjson.loads(state_file.read_bytes())
    assert state["position"]["seq"] == rec.journal.durable.seq
    assert state["publishers"] == {"p": 4}
    rec.close()


def test_a_recovery_state_that_cannot_be_written_is_said_once_and_retried_at_the_tick(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each failure to write recovery/state.json (no inode left, a read-only mount)
    asked for the status at once, whose tick wrote the state again, which failed
    again: a busy loop (30% of a core, ~1,000 identical ERROR lines a second) while
    the status said healthy. Now the failure is said once, the state tried again at
    each status tick, and the recorder is degraded, naming it, until it is written."""
    import logging
    import shutil

    caplog.set_level(logging.INFO, logger="agent_persist.recorder")
    clock = Clock()
    rec = make(tmp_path, clock, status_interval=1.0)
    rec.on_connection("connected", clock.now)
    rec.tick(clock.now)
    shutil.rmtree(rec.layout.recovery)
    rec.layout.recovery.write_text("in the way")  # recovery/state.json cannot be made
    feed(rec, clock, env_msg("p", 1))
    rec.sync()
    rec._snapshot_due = 0
    feed(rec, clock, env_msg("p", 2))
    rec.sync()
    woken = 0
    clock.now += 1.0  # the status, and the state, are due
    for _ in range(20):  # the runner's loop: a tick, then asleep unless woken
        clock.now += 0.01
        rec.attention.clear()
        rec.tick(clock.now)
        woken += rec.attention.is_set()
    assert woken == 1  # once: the status says it at once
    said = [r for r in caplog.records if "cannot write recovery state" in r.getMessage()]
    assert len(said) == 1, said
    health = assess(rec.layout, now=clock.now)
    assert health.state == DEGRADED, health
    assert "cannot write its recovery state" in health.reason, health.reason
    assert str(rec.layout.recovery) in health.reason
    rec.layout.recovery.unlink()  # out of the way: written at the next status tick
    clock.now += 2.5  # (idle: every other second)
    rec.tick(clock.now)
    assert orjson.loads(rec.layout.state.read_bytes())["publishers"] == {"p": 3}  # next seq
    assert assess(rec.layout, now=clock.now).state == HEALTHY
    assert any("recovery state is written again" in r.getMessage() for r in caplog.records)
    rec.close()


@pytest.mark.parametrize("compress", [False, True])
def test_the_recorder_keeps_line_indexes_of_closed_segments_warm(
    tmp_path: Path, compress: bool
) -> None:
    """Closed segments get their line index cache; with compression on (the default)
    they are compressed too, and the cache describes the compressed file."""
    from recorder.store.layout import list_segments
    from recorder.store.reader import SegmentIndex

    clock = Clock()
    rec = make(tmp_path, clock, segment_bytes=1 << 20, compress=compress)
    body = b'{"text": "' + b"x" * 2000 + b'"}'
    for _chunk in range(14):
        feed(rec, clock, *[[b"agents.t", body] for _ in range(100)])
    plain = sorted(rec.layout.segments.glob("seg-*.jsonl"))
    assert len(plain) >= 3
    current = rec.journal.written.segment
    assert rec.warmer.warm(current) == len(plain) - 1  # every closed one, not the open one
    segments = list_segments(rec.layout)
    assert [p.name.endswith(".zst") for p in segments] == [compress] * (len(plain) - 1) + [False]
    for path in segments[:-1]:
        assert (rec.layout.index / f"{path.name}.idx").exists()
        cached = SegmentIndex(path, rec.layout.index)  # what a reader finds: used as it is
        assert cached.warning is None and len(cached) > 0 and cached.update() == 0
        cached.close()
    assert not (rec.layout.index / f"{segments[-1].name}.idx").exists()
    assert rec.warmer.warm(current) == 0  # done once
    rec.close()


def test_background_work_on_closed_segments_waits_while_a_flood_comes_in(tmp_path: Path) -> None:
    """Batches of BUSY_BATCH messages or more (a flood) keep compression and line
    indexes of closed segments waiting until none came for QUIET_AFTER s (by the
    recorder's clock); then the background thread does them all."""
    import time

    from recorder.daemon.core import BUSY_BATCH, QUIET_AFTER
    from recorder.store.layout import list_segments

    clock = Clock()
    rec = make(tmp_path, clock, segment_bytes=1 << 20, compress=True)
    body = b'{"text": "' + b"x" * 2000 + b'"}'
    for _chunk in range(6):
        feed(rec, clock, *[[b"agents.t", body] for _ in range(BUSY_BATCH - 1)])
    assert not rec.busy()  # small batches: no flood
    for _chunk in range(4):
        feed(rec, clock, *[[b"agents.t", body] for _ in range(BUSY_BATCH)])
    closed = len(list_segments(rec.layout)) - 1
    assert closed >= 2 and rec.busy()
    rec.warmer.start(rec.journal.written.segment)  # what the main loop does at each tick
    time.sleep(1.5)  # three looks at busy()
    assert not any(p.name.endswith(".zst") for p in list_segments(rec.layout))
    assert not any(rec.layout.index.glob("*.idx"))
    clock.now += QUIET_AFTER * 0.9
    assert rec.busy()
    clock.now += QUIET_AFTER * 0.2  # quiet for QUIET_AFTER now
    assert not rec.busy()
    wait_compressed(rec, closed)
    rec.warmer.stop(timeout=30)
    segments = list_segments(rec.layout)
    assert [p.name.endswith(".zst") for p in segments] == [True] * closed + [False]
    assert all((rec.layout.index / f"{p.name}.idx").exists() for p in segments[:-1])
    clock.now -= 3600  # a clock set back an hour does not make it wait an hour
    assert not rec.busy()
    rec.close()


def test_background_work_waits_for_quiet_only_so_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Traffic that never lets up still gets its closed segments compressed: after
    MAX_DEFER s of waiting the work goes on regardless."""
    import time

    from recorder.daemon import warm
    from recorder.daemon.core import BUSY_BATCH
    from recorder.store.layout import list_segments

    monkeypatch.setattr(warm, "MAX_DEFER", 1.0)
    clock = Clock()
    rec = make(tmp_path, clock, segment_bytes=1 << 20, compress=True)
    body = b'{"text": "' + b"x" * 2000 + b'"}'
    for _chunk in range(10):
        feed(rec, clock, *[[b"agents.t", body] for _ in range(BUSY_BATCH)])
    closed = len(list_segments(rec.layout)) - 1
    assert closed >= 2 and rec.busy()  # and it stays busy: the clock does not move
    started = time.monotonic()
    rec.warmer.start(rec.journal.written.segment)
    wait_compressed(rec, closed)
    waited = time.monotonic() - started
    rec.warmer.stop(timeout=30)
    assert rec.busy()
    assert sum(p.name.endswith(".zst") for p in list_segments(rec.layout)) == closed
    assert waited >= 1.0
    rec.close()


def test_a_partial_segment_index_starts_at_a_line_start_or_not_at_all(tmp_path: Path) -> None:
    from recorder.store.reader import SegmentIndex

    path = tmp_path / "seg-000001.jsonl"
    path.write_bytes(b'{"a":1}\n{"b":2}\n{"c":3}\n')
    tail = SegmentIndex(path, start=8)  # just after the first newline
    assert tail.update() == 2 and list(tail.starts) == [8, 16]
    mid_line = SegmentIndex(path, start=5)  # inside the first line: indexed whole instead
    assert mid_line.update() == 3 and list(mid_line.starts) == [0, 8, 16]
    beyond = SegmentIndex(path, start=100)  # past the end (a repaired tail): whole again
    assert beyond.update() == 3


def test_a_periodic_checkpoint_over_a_missing_closed_segment_is_refused_and_said(
    tmp_path: Path,
) -> None:
    """A closed segment moved away by hand (not pruned): the recorder's own checkpoint
    is refused, its status's last error names the segment, and once it is back the
    next checkpoint names it in its digest."""
    clock = Clock()
    rec = make(tmp_path, clock, checkpoint_interval=300.0, status_interval=1.0, segment_bytes=4096)
    layout = rec.layout
    for n in range(1, 120):
        feed(rec, clock, env_msg("p", n, "x" * 100))
    rec.journal.flush()
    [second] = layout.segments.glob("seg-000002.jsonl*")
    assert len(list(layout.segments.glob("seg-*"))) >= 4
    aside = tmp_path / second.name
    second.rename(aside)
    clock.now += 300
    rec.tick(clock.now)
    assert not list(layout.checkpoints.glob("*.json"))
    status = orjson.loads(layout.status.read_bytes())
    message = status["last_error"]["message"]
    assert message.startswith("checkpoint failed: checkpoint refused: seg-000002.jsonl is missing")
    assert "retention did not prune it" in message
    aside.rename(second)
    clock.now += 300
    rec.tick(clock.now)
    [cp] = layout.checkpoints.glob("*.json")
    names = [s["name"] for s in orjson.loads(cp.read_bytes())["digest"]["segments"]]
    assert names[:3] == ["seg-000001.jsonl", "seg-000002.jsonl", "seg-000003.jsonl"]
    rec.close()


def power_cut(tmp_path: Path, tail: str = "cut") -> tuple[Recorder, Checkpoint, Position]:
    """100 messages of publisher "p", synced up to the 60th; a checkpoint at the 100th;
    a power cut (the unsynced tail cut off, or left as NUL bytes); a restart and 10
    messages "AFTER restart". The restarted recorder (stopped), the checkpoint and
    where the last sync left the journal."""
    from recorder.store.layout import segment_name
    from tests.support import wait_for

    clock = Clock()
    rec = make(tmp_path, clock, checkpoint_interval=0)
    for i in range(60):
        feed(rec, clock, env_msg("p", i + 1, text=f"before {i}"))
        clock.now += 1
    rec.journal.flush()
    wait_for(lambda: rec.journal.written.seq == rec.journal.next_seq - 1)
    synced = rec.sync()  # the last group commit before the power went
    rec._take_snapshot()
    rec.write_state(clock.now)
    for i in range(60, 100):
        feed(rec, clock, env_msg("p", i + 1, text=f"before {i}"))
        clock.now += 1
    rec.journal.flush()
    wait_for(lambda: rec.journal.written.seq == rec.journal.next_seq - 1)
    cp = rec.checkpoint("before the cut", "manual", clock.now, force=True)
    assert cp is not None and cp.messages == 100 and cp.seq > synced.seq
    rec.journal.close()  # the power went: nothing after the last sync reached the disk
    path = rec.layout.segments / segment_name(synced.segment)
    data = path.read_bytes()
    kept = data[: synced.offset]
    path.write_bytes(kept + (b"\x00" * (len(data) - len(kept)) if tail == "zeros" else b""))

    clock.now += 100
    again = make(tmp_path, clock, checkpoint_interval=0)
    assert again.journal.messages == 60  # not the checkpoint's 100
    for i in range(10):
        feed(again, clock, env_msg("p", 101 + i, text=f"AFTER restart {i}"))
        clock.now += 1
    again.close()
    return again, cp, synced


@pytest.mark.parametrize("tail", ["cut", "zeros"])
def test_seqs_a_power_cut_took_after_a_checkpoint_are_never_given_again(
    tmp_path: Path, tail: str
) -> None:
    """A checkpoint is taken at what was written, not what was synced: a power cut took
    the segment's unsynced tail, the restarted recorder went on at its last good record,
    and the records written after the restart got the seqs the checkpoint had claimed.
    Its restore (and preview) then held messages received after it. Now the journal goes
    on after the newest seq anything named, one `journal-lost` gap says which seqs are
    gone, the messages are counted as the journal holds them, and the checkpoint's
    bundle ends at its own records and says the journal is damaged."""
    from recorder.export.restore import build_bundle
    from recorder.export.scope import BundleScope
    from tui.preview import build_preview

    again, cp, synced = power_cut(tmp_path, tail)
    with open_store(tmp_path / "logs") as store:  # what persist-tui's preview shows
        index, moved = store.checkpoint_end(cp)
        assert moved and store.record(index - 1).seq == synced.seq
        preview = build_preview(store, cp, None)
        assert preview is not None
        assert not any(b"AFTER" in r.line for r in preview.before)
    bundle = build_bundle(tmp_path / "logs", cp, scope=BundleScope.whole())
    assert b"AFTER" not in bundle.jsonl.read_bytes()
    assert bundle.manifest["seq_range"]["last"] == synced.seq
    assert bundle.manifest["messages"] == 60 and bundle.manifest["integrity"]["damaged"]

    records = journal_records(tmp_path / "logs")
    seqs = [r["seq"] for r in records]
    assert seqs == sorted(set(seqs))
    assert seqs[seqs.index(synced.seq) + 1] == cp.seq + 1  # the restart's first record
    (lost,) = [r for r in records if r.get("cause") == "journal-lost"]
    assert (lost["from_journal_seq"], lost["to_journal_seq"]) == (synced.seq + 1, cp.seq)
    assert f"checkpoint {cp.id} named seq {cp.seq}" in lost["detail"]
    # p's 40 messages among them: the hole its next message shows, as after any crash
    gaps = [(g["cause"], g.get("missed")) for g in records if g["kind"] == "gap"]
    assert gaps == [("journal-lost", None), ("recorder-down", None), ("publisher-sequence", 40)]
    assert again.counters.gaps == 3 and again.counters.missed == 40
    assert (tail == "zeros") == any(r["kind"] == "corrupt" for r in records)
    # the restart's shutdown checkpoint counts what the journal holds, new ones with it
    end = again.last_checkpoint
    assert end is not None and end.id != cp.id and end.messages == 70
    bundle = build_bundle(tmp_path / "logs", end, scope=BundleScope.whole())
    integrity = bundle.manifest["integrity"]
    assert bundle.manifest["messages"] == 70 and integrity["verified"]
    assert not integrity["damaged"] and integrity["problems"][0] == "3 gaps, 40 messages known lost"


def test_a_recovery_state_past_what_a_power_cut_left_is_not_where_counting_starts(
    tmp_path: Path,
) -> None:
    """With `--fsync never` the recovery state names what was written: a power cut left
    the journal short of it, and the restart counted on from the state as if its
    messages were all there (each later checkpoint then counted 30 more than it held).
    The newest checkpoint the journal still holds (or its start) is where it counts."""
    from recorder.export.restore import build_bundle
    from recorder.export.scope import BundleScope
    from recorder.store.layout import segment_name
    from tests.support import wait_for

    clock = Clock()
    rec = make(tmp_path, clock, checkpoint_interval=0, fsync="never")
    for i in range(40):
        feed(rec, clock, [b"agents.a", orjson.dumps({"text": f"before {i}"})])
    first = rec.checkpoint("held", "manual", clock.now, force=True)
    for i in range(40, 100):
        feed(rec, clock, [b"agents.a", orjson.dumps({"text": f"before {i}"})])
    rec.journal.flush()
    wait_for(lambda: rec.journal.written.seq == rec.journal.next_seq - 1)
    rec._take_snapshot()
    rec.write_state(clock.now)
    state = RecoveryState.read(rec.layout)
    assert first is not None and state is not None and state.position.messages == 100
    rec.journal.close()  # the power went, and the last 30 messages with it
    path = rec.layout.segments / segment_name(state.position.segment)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-30]))

    clock.now += 60
    again = make(tmp_path, clock, checkpoint_interval=0)
    assert again.journal.messages == 70
    feed(again, clock, [b"agents.a", b"AFTER restart"])
    again.close()
    end = again.last_checkpoint
    assert end is not None and end.messages == 71
    bundle = build_bundle(tmp_path / "logs", end, scope=BundleScope.whole())
    assert bundle.manifest["messages"] == 71 and not bundle.manifest["integrity"]["damaged"]
    (lost,) = [r for r in journal_records(tmp_path / "logs") if r.get("cause") == "journal-lost"]
    assert (lost["from_journal_seq"], lost["to_journal_seq"]) == (
        first.seq + 31,
        state.position.seq,
    )
    assert "recovery/state.json named" in lost["detail"]


def test_after_a_power_cut_the_start_reads_from_the_newest_checkpoint_left_not_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `--fsync never` a power cut takes the recovery state's position and the
    newest checkpoint's with the unsynced tail: the restart then counted from the
    journal's first segment (1.3 s and 327 MB read at 100,000 messages, growing with
    the journal). It now counts from the newest checkpoint the journal still holds, and
    gives no seq twice."""
    from recorder.store.layout import segment_name
    from tests.support import wait_for

    clock = Clock()
    rec = make(tmp_path, clock, checkpoint_interval=0, fsync="never", segment_bytes=4096)
    for i in range(100):  # about 6 segments
        feed(rec, clock, [b"agents.a", orjson.dumps({"text": f"before {i} " + "x" * 150})])
    held = rec.checkpoint("held", "manual", clock.now, force=True)
    for i in range(100, 140):
        feed(rec, clock, [b"agents.a", orjson.dumps({"text": f"before {i}"})])
    rec.journal.flush()
    wait_for(lambda: rec.journal.written.seq == rec.journal.next_seq - 1)
    taken = rec.checkpoint("taken by the cut", "manual", clock.now, force=True)
    rec._take_snapshot()
    rec.write_state(clock.now)
    state = RecoveryState.read(rec.layout)
    assert held is not None and taken is not None and state is not None
    assert held.segment > 3 and state.position.segment == taken.segment
    rec.journal.close()  # the power went, and the last 10 lines with it
    path = rec.layout.segments / segment_name(state.position.segment)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-10]))
    left = 140 - sum(b"before 1" in line for line in lines[-10:])  # messages 1xx only

    opened = stores_recovery_opens(monkeypatch)
    clock.now += 60
    again = make(tmp_path, clock, checkpoint_interval=0, segment_bytes=4096)
    assert 130 <= again.journal.messages == left < 140
    [store] = opened
    assert (store.segments[0].number, store.segments[0].start) == (held.segment, held.offset)
    feed(again, clock, [b"agents.a", b"AFTER restart"])
    again.close()
    assert again.last_checkpoint is not None and again.last_checkpoint.messages == left + 1
    records = journal_records(tmp_path / "logs")
    seqs = [r["seq"] for r in records]
    assert seqs == sorted(set(seqs)) and seqs[-1] > taken.seq
    (lost,) = [r for r in records if r.get("cause") == "journal-lost"]
    assert lost["to_journal_seq"] == taken.seq


def test_a_checkpoint_counts_exactly_the_messages_up_to_its_position(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages are counted as their lines are made, before the writer writes them: a
    checkpoint taken at what was written then counted messages after its position
    (the next one missed them, and the TUI said "the checkpoint counted N"). Now it is
    taken at what was received, once written; a writer that does not get there in time
    fails it, and the counts go to the next one."""
    import threading

    from recorder.daemon import core

    clock = Clock()
    rec = make(tmp_path, clock)
    sink = rec.journal.sink
    sink.start()
    feed(rec, clock, env_msg("p", 1), env_msg("p", 2))
    assert sink.wait_idle(5)
    gate = threading.Event()
    real_writev = sink.writev

    def slow(fd: int, chunks: list[memoryview]) -> int:
        gate.wait(10)
        return real_writev(fd, chunks)

    sink.writev = slow  # type: ignore[method-assign]
    feed(rec, clock, env_msg("q", 1), env_msg("q", 2), env_msg("q", 3))  # made, not written
    monkeypatch.setattr(core, "CHECKPOINT_WAIT", 0.2)
    with pytest.raises(OSError, match=r"did not write up to it within 0\.2 s"):
        rec.checkpoint("", "manual", clock.now, force=True)
    threading.Timer(0.3, gate.set).start()
    monkeypatch.setattr(core, "CHECKPOINT_WAIT", 10.0)
    cp = rec.checkpoint("", "manual", clock.now, force=True)
    assert cp is not None
    assert (cp.messages, cp.participants) == (5, {"p": 2, "q": 3})
    feed(rec, clock, env_msg("q", 4))
    second = rec.checkpoint("", "manual", clock.now)
    assert second is not None and (second.messages, second.participants) == (6, {"q": 1})
    rec.close()
    with open_store(tmp_path / "logs") as store:  # the messages up to each one's seq
        seqs = [r.seq or 0 for r in store.records() if r.is_message]
    assert [sum(s <= c.seq for s in seqs) for c in (cp, second)] == [5, 6]


def test_the_recovery_state_takes_in_the_end_of_a_burst_once_the_bus_is_quiet(
    tmp_path: Path,
) -> None:
    """Snapshots (what the recovery state is written from) were taken only as batches
    were handed over, one a status interval: a burst's later batches, within that of
    the first, stayed out of the state until another message came, hours later on a
    quiet bus (a restart then read them again, and their participants were not saved)."""
    clock = Clock()
    rec = make(tmp_path, clock, status_interval=1.0)
    sink = rec.journal.sink
    sink.start()
    feed(rec, clock, env_msg("p", 1))
    feed(rec, clock, env_msg("q", 1), env_msg("q", 2))  # the same second: no snapshot
    assert sink.wait_idle(5)
    sink.sync()
    clock.now += 2
    rec.tick(clock.now)
    state = orjson.loads(rec.layout.state.read_bytes())
    assert state["participants"]["counts"] == {"p": 1, "q": 2}, state
    assert state["position"]["seq"] == rec.journal.next_seq - 1
    rec.close()


@pytest.mark.parametrize("state", ["kept", "gone"])
def test_the_start_reads_each_checkpoint_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: str
) -> None:
    """The start read the newest checkpoint (and its base) three or four times: for the
    seqs it claims (`claimed_seq`), twice in `recover` (the newest, then the newest the
    journal still holds, the same file) and once more for `last_checkpoint`. It is read
    once and handed along."""
    from recorder.store import checkpoints

    clock = Clock()
    rec = make(tmp_path, clock, checkpoint_interval=0)
    feed(rec, clock, env_msg("p", 1), env_msg("p", 2))
    first = rec.checkpoint("first", "manual", clock.now, force=True)
    feed(rec, clock, env_msg("p", 3))
    newest = rec.checkpoint("newest", "manual", clock.now, force=True)
    assert first is not None and newest is not None
    feed(rec, clock, env_msg("p", 4))
    rec.journal.flush()
    rec.sync()
    rec._take_snapshot()
    rec.write_state(clock.now)
    rec.journal.close()  # killed
    if state == "gone":
        rec.layout.state.unlink()

    reads: list[str] = []
    real = checkpoints._load

    def spy(path: Path, skipped: list[str] | None) -> Checkpoint | None:
        reads.append(path.stem)
        return real(path, skipped)

    monkeypatch.setattr(checkpoints, "_load", spy)
    clock.now += 10
    again = make(tmp_path, clock, checkpoint_interval=0)
    assert again.journal.messages == 4
    assert again.last_checkpoint is not None and again.last_checkpoint.id == newest.id
    assert again._participants == {"p": 1} and again._participants_since == newest.seq
    assert reads == [newest.id]  # the older one not at all: its seq is in its name
    again.close()


@pytest.mark.parametrize("early_checkpoint", [False, True])
def test_after_a_power_cut_with_no_checkpoint_the_start_reads_only_the_last_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, early_checkpoint: bool
) -> None:
    """With `--fsync never` the recovery state names what was written, and a power cut
    takes its position with the unsynced tail; with no checkpoint at all the restart
    then counted messages and participants from the journal's first segment (seconds at
    1M messages). Closed segments are synced as they close: the state now also keeps
    its last snapshot in one (`floor`), and the start counts from there, also past an
    older checkpoint (`early_checkpoint`: its participants are counted since it)."""
    from recorder.store.layout import segment_name
    from tests.support import wait_for

    clock = Clock()
    rec = make(tmp_path, clock, checkpoint_interval=0, fsync="never", segment_bytes=4096)
    senders = ["ann", "bob", "cy"]
    early: Checkpoint | None = None
    for i in range(140):  # about 8 segments, a snapshot every 10 messages (the status tick)
        sender = senders[i % 3] if i < 120 else "late"
        body = {"from": sender, "text": f"before {i} " + "x" * 150}
        feed(rec, clock, [b"agents.a", orjson.dumps(body)])
        if early_checkpoint and i == 29:
            early = rec.checkpoint("early", "manual", clock.now, force=True)
            assert early is not None and early.segment < 4
        if i % 10 == 9:
            rec.journal.flush()
            wait_for(lambda: rec.journal.written.seq == rec.journal.next_seq - 1)
            rec._take_snapshot()
            rec.write_state(clock.now)
    state = RecoveryState.read(rec.layout)
    assert state is not None and state.position.messages == 140
    active = state.position.segment
    assert active > 6 and rec.layout.checkpoints.is_dir()
    assert len(list(rec.layout.checkpoints.iterdir())) == early_checkpoint
    rec.journal.close()  # the power went, and the last 5 lines with it ("late" ones)
    path = rec.layout.segments / segment_name(active)
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) > 5 and all(b'"late"' in line for line in lines[-5:])
    path.write_bytes(b"".join(lines[:-5]))

    opened = stores_recovery_opens(monkeypatch)
    clock.now += 60
    again = make(tmp_path, clock, checkpoint_interval=0, segment_bytes=4096)
    assert again.journal.messages == 135
    [store] = opened
    assert store.segments[0].number >= active - 2  # not seg-000001: the old ones unread
    before = 10 if early_checkpoint else 0  # each sender's messages the checkpoint counted
    counts = {"ann": 40 - before, "bob": 40 - before, "cy": 40 - before, "late": 15}
    assert again._participants == counts
    assert again._participants_since == (early.seq if early else 0)
    feed(again, clock, [b"agents.a", orjson.dumps({"from": "ann", "text": "AFTER restart"})])
    again.close()
    end = again.last_checkpoint
    assert end is not None and end.messages == 136
    assert end.participants == counts | {"ann": counts["ann"] + 1}
    records = journal_records(tmp_path / "logs")
    seqs = [r["seq"] for r in records]
    assert seqs == sorted(set(seqs)) and seqs[-1] > state.position.seq
    (lost,) = [r for r in records if r.get("cause") == "journal-lost"]
    assert lost["to_journal_seq"] == state.position.seq
