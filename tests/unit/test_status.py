"""status.json: one class writes and reads it, and a wrongly typed file never crashes a reader."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

from recorder.cli.record import cmd_status
from recorder.daemon.core import Recorder
from recorder.daemon.options import RecorderOptions
from recorder.store.layout import Layout
from recorder.store.status import (
    DEGRADED,
    HEALTHY,
    RECORDER_LEVEL,
    STALE,
    STOPPED,
    Connection,
    Health,
    HolderUnknown,
    RecorderState,
    StatusSnapshot,
    UnreadableStatus,
    assess,
    read_status,
)
from tests.unit.test_daemon import Clock, env_msg, feed

STATUS_KEYS = [
    "v",
    "pid",
    "process_started",
    "process_start_key",
    "updated",
    "updated_monotonic",
    "log_dir",
    "broker",
    "embedded_broker",
    "bind_public",
    "curve",
    "keys",
    "state",
    "connection",
    "connection_since",
    "counts",
    "rates",
    "backlog_bytes",
    "last_seq",
    "last_durable_seq",
    "last_fsync",
    "segment",
    "last_checkpoint",
    "last_error",
    "fsync",
    "fsync_interval_ms",
    "quarantined",
    "receiver_error",
    "disk_error",
    "recovery_error",
    "endpoints",
    "unwritten",
    "program",
]
COUNT_KEYS = [
    "received",
    "written",
    "durable",
    "messages_total",
    "gaps",
    "missed",
    "refused",
    "backlog_pauses",
    "partial_enrichment",
    "heartbeats",
    "implausible",
    "unsequenced",
    "not_subscribed",
    "not_subscribed_publishers",
    "unconfirmed",
    "secrets",
    "secrets_capped",
    "secrets_unscanned",
]


def busy_recorder(tmp_path: Path, clock: Clock) -> Recorder:
    """A recorder with messages, a connection, a checkpoint and an error to report."""
    rec = Recorder(RecorderOptions(log_dir=tmp_path / "logs"), clock=clock)
    rec.open()
    rec.on_connection("connected", clock.now)
    feed(rec, clock, env_msg("p", 1), env_msg("p", 2), env_msg("p", 5))
    rec.sync()
    rec.checkpoint("by hand", "manual", clock.now)
    rec.error("something went wrong")
    return rec


def test_the_status_the_recorder_writes_reads_back_equal(tmp_path: Path) -> None:
    clock = Clock()
    rec = busy_recorder(tmp_path, clock)
    clock.now += 1
    rec.tick(clock.now)
    raw = rec.layout.status.read_bytes()
    read = StatusSnapshot.read(rec.layout)
    assert read is not None
    assert orjson.dumps(read.to_json()) == raw  # writing it back gives the same bytes
    # The same snapshot the daemon builds (rates are measured between two calls: both 0 here).
    assert read == rec.status(clock.now)
    assert read.state == RecorderState.RECORDING and read.connection == Connection.CONNECTED
    assert read.counts.written == 3 and read.counts.gaps == 1 and read.counts.missed == 2
    assert read.last_checkpoint is not None and read.last_checkpoint.label == "by hand"
    assert read.last_error is not None and read.last_error.message == "something went wrong"
    rec.close()
    stopped = StatusSnapshot.read(rec.layout)
    assert stopped is not None and stopped.state == RecorderState.STOPPED


def test_the_file_keeps_its_documented_shape(tmp_path: Path) -> None:
    clock = Clock()
    rec = busy_recorder(tmp_path, clock)
    rec.write_status(clock.now)
    data = orjson.loads(rec.layout.status.read_bytes())
    assert list(data) == STATUS_KEYS
    assert list(data["counts"]) == COUNT_KEYS
    assert list(data["rates"]) == ["received_per_s", "written_per_s"]
    assert list(data["last_checkpoint"]) == ["id", "created", "label"]
    assert list(data["last_error"]) == ["time", "message"]
    assert data["state"] == "recording" and data["connection"] == "connected"
    assert data["fsync"] == "interval" and data["pid"] == os.getpid()
    rec.close()


def test_status_json_prints_the_file_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = Clock(psutil.Process().create_time() + 5)
    rec = busy_recorder(tmp_path, clock)
    rec.write_status(clock.now)
    raw = orjson.loads(rec.layout.status.read_bytes())
    args = argparse.Namespace(log_dir=str(rec.layout.root), json=True)
    cmd_status(args)
    out = orjson.loads(capsys.readouterr().out)
    assert out["status"] == raw
    rec.close()


def good_status(**changes: Any) -> dict[str, Any]:
    status: dict[str, Any] = {
        "v": 1,
        "program": {"level": RECORDER_LEVEL, "version": "0.1.0"},
        "pid": 4242,
        "process_started": 1.0,
        "updated": 2.0,
        "state": "recording",
        "connection": "connected",
        "counts": {"received": 1, "written": 1},
        "rates": {"received_per_s": 0.5, "written_per_s": 0},
        "last_checkpoint": {"id": "x", "created": 1.5, "label": ""},
        "last_error": {"time": 1.5, "message": "boom"},
        "quarantined": ["segments/seg-1.torn"],
    }
    status.update(changes)
    return {k: v for k, v in status.items() if v is not ...}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"not json{", "it is not valid JSON"),
        (b"[1, 2]", "it is not a JSON object"),
        (b'"recording"', "it is not a JSON object"),
        (orjson.dumps(good_status(pid="abc")), "pid is not an integer"),
        (orjson.dumps(good_status(pid=True)), "pid is not an integer"),
        (orjson.dumps(good_status(pid=...)), "pid is missing"),
        (orjson.dumps(good_status(updated=None)), "updated is not a number"),
        (orjson.dumps(good_status(state="flying")), "state is not one of"),
        (orjson.dumps(good_status(state=3)), "state is not a string"),
        (orjson.dumps(good_status(connection=["up"])), "connection is not a string"),
        (orjson.dumps(good_status(counts=[])), "counts is not an object"),
        (orjson.dumps(good_status(counts={"written": "1"})), "counts.written is not an integer"),
        (orjson.dumps(good_status(rates={"written_per_s": "fast"})), "rates.written_per_s"),
        (orjson.dumps(good_status(broker=5)), "broker is not a string"),
        (orjson.dumps(good_status(bind_public=1)), "bind_public is not true or false"),
        (orjson.dumps(good_status(curve="yes")), "curve is not true or false"),
        (orjson.dumps(good_status(keys=7)), "keys is not a string"),
        (orjson.dumps(good_status(last_checkpoint="x")), "last_checkpoint is not an object"),
        (orjson.dumps(good_status(last_checkpoint={"id": 1})), "last_checkpoint.id"),
        (orjson.dumps(good_status(last_error={"time": 1, "message": 5})), "last_error.message"),
        (orjson.dumps(good_status(quarantined="a")), "quarantined is not a list of strings"),
        (orjson.dumps(good_status(quarantined=[1])), "quarantined is not a list of strings"),
        (orjson.dumps(good_status(endpoints={})), "endpoints is not a list"),
        (orjson.dumps(good_status(unwritten=3)), "unwritten is not an object"),
        (orjson.dumps(good_status(unwritten={"lines": 1})), "unwritten.messages is missing"),
        (orjson.dumps(good_status(endpoints=["tcp://x:1"])), "endpoints holds something"),
        (orjson.dumps(good_status(endpoints=[{"endpoint": 1}])), "endpoints.endpoint is not"),
        (
            orjson.dumps(good_status(endpoints=[{"endpoint": "a", "mode": "dance"}])),
            "mode is not one of",
        ),
    ],
)
def test_a_wrongly_typed_status_is_unreadable_never_a_crash(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    layout = Layout(tmp_path)
    layout.status.write_bytes(content)
    health = assess(layout)
    assert health.state == STOPPED and health.status is None
    assert health.reason.startswith("status.json is unreadable: ")
    assert problem in health.reason
    assert read_status(layout) is None
    with pytest.raises(UnreadableStatus, match=problem.split(":")[0]):
        StatusSnapshot.read(layout)
    assert health.pid is None and "--broker tcp://127.0.0.1:5555" in health.start_command(
        layout.root
    )


def test_a_status_missing_optional_fields_still_reads(tmp_path: Path) -> None:
    """A file written by a recorder that predates some fields: defaults fill them."""
    layout = Layout(tmp_path)
    layout.status.write_bytes(orjson.dumps({"pid": 0, "updated": 1.0, "state": "stopped"}))
    status = StatusSnapshot.read(layout)
    assert status is not None and status.counts.written == 0 and status.last_error is None
    assert status.connection == Connection.CONNECTING and status.quarantined == ()
    assert assess(layout).reason.startswith("stopped cleanly")


def write_as_recorder(layout: Layout, data: dict[str, Any]) -> None:
    """status.json with its mtime at its `updated`, as the recorder writes it (a later
    mtime is a touch: the heartbeat)."""
    layout.status.write_bytes(orjson.dumps(data))
    os.utime(layout.status, (data["updated"], data["updated"]))


def test_a_good_status_of_a_live_process_is_healthy(tmp_path: Path) -> None:
    me = psutil.Process()
    layout = Layout(tmp_path)
    data = good_status(pid=me.pid, process_started=me.create_time(), updated=1000.0)
    write_as_recorder(layout, data)
    health = assess(layout, now=1001.0)
    assert health.state == HEALTHY and health.pid == me.pid
    assert health.warnings == ["last error: boom"]
    assert health.status is not None and health.status.rates.received_per_s == 0.5
    assert health.status.to_json()["counts"]["written"] == 1


def test_no_status_is_no_snapshot(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    assert StatusSnapshot.read(layout) is None
    health = assess(layout)
    assert health == Health(STOPPED, "no journal in this folder yet")
    assert health.pid is None


def test_a_status_and_lock_that_may_not_be_opened_leave_the_holder_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `sudo persist record` leaves status.json and recorder.lock root's (0600) in a
    folder of ours: neither may be opened, so whether a recorder holds the folder is
    unknown (before 2026-12-08 it was STOPPED, and `persist stop` said none ran). As
    root the modes do not apply: the OS's refusal is made here."""
    layout = Layout(tmp_path)
    write_as_recorder(layout, good_status(pid=os.getpid(), updated=1000.0))
    layout.lock.write_bytes(b"")
    refused = {str(layout.status), str(layout.lock)}
    real_open = os.open

    def open_as_another(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if os.fspath(path) in refused:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_as_another)
    with pytest.raises(HolderUnknown) as caught:
        assess(layout, now=1001.0)
    assert str(caught.value) == (
        f"{layout.lock} cannot be opened (permission denied): whether a recorder holds "
        f"{tmp_path} cannot be told from here"
    )


def test_a_stop_waiting_for_room_and_one_that_gave_up_say_so(tmp_path: Path) -> None:
    me = psutil.Process()
    layout = Layout(tmp_path)
    live = {"pid": me.pid, "process_started": me.create_time(), "updated": 1000.0}
    waiting = good_status(**live, state="stopping", disk_error="No space left on device")
    write_as_recorder(layout, {**waiting, "backlog_bytes": 2048})
    health = assess(layout, now=1001.0)
    assert health.state == DEGRADED and "is stopping, and waits for room" in health.reason
    assert "2,048 bytes wait" in health.reason and "persist stop --force" in health.reason
    lost = {"lines": 9, "messages": 8, "bytes": 9000, "first_ts": 990.0, "last_ts": 995.0}
    layout.status.write_bytes(orjson.dumps(good_status(state="stopped", unwritten=lost)))
    health = assess(layout, now=1001.0)
    assert health.state == STOPPED and "NOT cleanly: 8 messages (9 journal lines" in health.reason
    assert health.status is not None and health.status.to_json()["unwritten"] == lost


def test_a_heartbeat_stamped_in_the_future_is_not_taken_for_a_fresh_one(tmp_path: Path) -> None:
    """The clock set back an hour under a recorder: a status without the monotonic stamp
    (an older recorder's) stamped in the future is stale, not healthy."""
    me = psutil.Process()
    layout = Layout(tmp_path)
    data = good_status(pid=me.pid, process_started=me.create_time(), updated=1000.0)
    write_as_recorder(layout, data)
    health = assess(layout, now=1000.0 - 3600 + 10)
    assert health.state == STALE
    assert "stamped 60m in the future: the clock was set back since" in health.reason
    assert assess(layout, now=1000.5).state == HEALTHY  # a second's rounding is not a step


def test_the_heartbeat_age_is_told_by_the_monotonic_clock(tmp_path: Path) -> None:
    """With `updated_monotonic`, a wall clock set back or forward since the heartbeat
    changes nothing: a recorder silent for 10 s is stale, one that wrote a second ago is
    healthy, whatever the wall clock says; a touch (a later mtime) moves both."""
    me = psutil.Process()
    layout = Layout(tmp_path)
    live = {"pid": me.pid, "process_started": me.create_time()}
    write_as_recorder(layout, good_status(**live, updated=5000.0, updated_monotonic=700.0))
    back, forward = 5000.0 - 3600, 5000.0 + 3600
    assert assess(layout, now=back + 10, monotonic=710.0).state == STALE
    assert "silent for 10.0s" in assess(layout, now=back + 10, monotonic=710.0).reason
    assert assess(layout, now=back + 1, monotonic=701.0).state == HEALTHY
    assert assess(layout, now=forward, monotonic=701.0).state == HEALTHY
    os.utime(layout.status, (5008.0, 5008.0))  # touched 8 s after the whole write
    assert assess(layout, now=back, monotonic=709.0).state == HEALTHY
    assert "silent for 7.0s" in assess(layout, now=back, monotonic=715.0).reason


def test_a_broker_lost_before_the_clock_was_set_back_is_degraded(tmp_path: Path) -> None:
    """The status written after the step says a link lost at a time later than its own
    stamp: lost before the step, for how long is not known; degraded all the same."""
    me = psutil.Process()
    layout = Layout(tmp_path)
    link = {"endpoint": "tcp://127.0.0.1:9", "mode": "connect", "connection": "disconnected"}
    data = good_status(
        pid=me.pid,
        process_started=me.create_time(),
        updated=5000.0 - 3600,  # written after the clock was set back an hour
        updated_monotonic=700.0,
        connection="disconnected",
        endpoints=[{**link, "since": 4990.0}],  # lost 10 s before the step
    )
    write_as_recorder(layout, data)
    for health in (
        assess(layout, now=5000.0 - 3600 + 1, monotonic=701.0),
        assess(layout, now=5000.0 - 3600 + 1),
    ):
        assert health.state == DEGRADED, health.reason
        assert "(lost since before the clock was set back;" in health.reason
    # put right: the recorder writes its status again, and the outage's length is told
    write_as_recorder(layout, {**data, "updated": 5004.0, "updated_monotonic": 704.0})
    health = assess(layout, now=5005.0, monotonic=705.0)
    assert health.state == DEGRADED and "(lost for 15.0s;" in health.reason


def test_a_recorder_older_than_this_persist_is_said_so(tmp_path: Path) -> None:
    """A status without `program` (a recorder started before 2026-12-07) or of a lower
    level: `persist status` says it is older and that a restart brings it level."""
    me = psutil.Process()
    layout = Layout(tmp_path)
    live = {"pid": me.pid, "process_started": me.create_time(), "updated": 1000.0}
    for program, older in (
        (None, "was started before 2026-12-07 (its status.json names no program level)"),
        ({"level": 0, "version": "0.0.9"}, "runs program level 0, version 0.0.9, older"),
    ):
        data = {k: v for k, v in good_status(**live).items() if k != "program"}
        if program is not None:
            data["program"] = program
        write_as_recorder(layout, data)
        health = assess(layout, now=1001.0)
        assert health.state == HEALTHY
        assert older in health.warnings[0] and "restarting it brings it level" in health.warnings[0]
    write_as_recorder(layout, good_status(**live))
    assert assess(layout, now=1001.0).warnings == ["last error: boom"]
