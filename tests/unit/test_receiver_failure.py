"""A receiver that dies, and a broker out of reach, make the recorder degraded, not healthy."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pytest

from recorder.bus.endpoints import speaks_zmtp
from recorder.bus.receiver import ReceiverSettings, Transport
from recorder.daemon.core import Recorder
from recorder.daemon.options import RecorderOptions
from recorder.errors import NOT_ZMTP, SILENT_PEER, refused_by
from recorder.store.status import (
    DEGRADED,
    HEALTHY,
    Connection,
    StatusSnapshot,
    assess,
    process_start_time,
)
from tests.support import journal_records, not_zeromq, wait_for


def test_a_receiver_that_dies_is_an_event_an_error_and_a_degraded_status(tmp_path: Path) -> None:
    rec = Recorder(RecorderOptions(log_dir=tmp_path / "logs"))
    rec.open()
    rec.journal.sink.start()
    # What options validation refuses up front; here it reaches zmq, which raises.
    transport = Transport(rec, ReceiverSettings(endpoint="garbage://x"))
    try:
        receiver = transport.start_receiver()
        receiver.join(5)
        assert not receiver.is_alive()
        assert rec.receiver_error is not None and "Protocol not supported" in rec.receiver_error
        assert rec.last_error is not None and "receiver stopped" in rec.last_error.message
        rec.write_status(time.time())
        health = assess(rec.layout)
        assert health.state == DEGRADED, health
        assert "receiver stopped" in health.reason and "Protocol not supported" in health.reason
    finally:
        rec.close()
        assert transport.close()
    events = [r for r in journal_records(tmp_path / "logs") if r.get("event") == "receiver-failed"]
    assert len(events) == 1 and "Protocol not supported" in events[0]["detail"]


def test_a_broker_out_of_reach_for_a_while_is_degraded(tmp_path: Path) -> None:
    rec = Recorder(RecorderOptions(log_dir=tmp_path / "logs"))
    rec.open()
    now = time.time()
    base = rec.status(now)
    assert base.pid == os.getpid() and base.process_started == process_start_time(os.getpid())

    def health(connection: Connection, since: float | None) -> tuple[str, str]:
        # a status file from before `endpoints` (one broker): its top-level fields decide
        snap = dataclasses.replace(
            base, connection=connection, connection_since=since, endpoints=()
        )
        StatusSnapshot.write(snap, rec.layout)
        h = assess(rec.layout, now)
        return h.state, h.reason

    assert health(Connection.CONNECTED, now - 60)[0] == HEALTHY
    assert health(Connection.DISCONNECTED, now - 0.5)[0] == HEALTHY  # a blip: a warning only
    assert health(Connection.DISCONNECTED, now - 2)[0] == DEGRADED  # lost: reported at once
    assert health(Connection.CONNECTING, now - 2)[0] == HEALTHY  # still starting up
    state, reason = health(Connection.DISCONNECTED, now - 30)
    assert state == DEGRADED and "unreachable (lost for 30.0s" in reason
    state, reason = health(Connection.CONNECTING, now - 30)
    assert state == DEGRADED and "never reached" in reason
    rec.close()


def test_one_broker_of_several_out_of_reach_is_degraded_and_named(tmp_path: Path) -> None:
    a, b = "tcp://127.0.0.1:1", "tcp://127.0.0.1:2"
    rec = Recorder(
        RecorderOptions(log_dir=tmp_path / "logs", broker=a, more_brokers=(b,), bind=("ipc://x",))
    )
    rec.open()
    now = time.time()
    rec.on_connection("listening", now - 60, "ipc://x")
    rec.on_connection("connected", now - 60, a)
    rec.on_connection("connected", now - 60, b)
    rec.write_status(now)
    health = assess(rec.layout, now)
    assert health.state == HEALTHY, health
    assert "--broker tcp://127.0.0.1:1 --broker tcp://127.0.0.1:2 --bind ipc://x" in (
        health.start_command(tmp_path)
    )
    rec.on_connection("disconnected", now - 0.5, b)
    rec.write_status(now)
    health = assess(rec.layout, now)
    assert health.state == HEALTHY and health.warnings[0] == f"not connected to the broker at {b}"
    rec.on_connection("connected", now - 1, b)
    rec.on_connection("disconnected", now - 30, a)  # the first one, for 30 s
    rec.write_status(now)
    health = assess(rec.layout, now)
    assert health.state == DEGRADED, health
    assert f"records nothing from it: the broker at {a} is unreachable (lost for 30.0s" in (
        health.reason
    )
    status = health.status
    assert status is not None
    assert [(e.endpoint, e.mode.value, e.connection.value) for e in status.endpoints] == [
        (a, "connect", "disconnected"),
        (b, "connect", "connected"),
        ("ipc://x", "bind", "listening"),
    ]
    stopped = time.time()
    rec.close()
    gaps = [r for r in journal_records(tmp_path / "logs") if r["kind"] == "gap"]
    # one per outage, for its broker only: b's when it came back, a's (still out of reach)
    # when the recorder stopped (before 2026-12-07 an outage on at the stop had none)
    assert [(g["cause"], g["broker"]) for g in gaps] == [
        ("broker-outage", b),
        ("broker-outage", a),
    ]
    assert gaps[1]["from_ts"] == now - 30 and stopped <= gaps[1]["to_ts"] <= time.time()
    assert "still out of reach when the recorder stopped" in gaps[1]["detail"]
    assert rec.status(time.time()).counts.gaps == 2


def test_a_service_that_is_not_zeromq_is_asked_for_a_greeting_once_not_at_each_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handshake that fails with no detail (a peer that hung up during it) was blamed
    on CURVE though what answered was a web server. The endpoint is now asked for a
    ZMTP greeting, as `persist send` asks, once while libzmq retries every 0.1 to 1 s
    (and again at most every `ASK_AGAIN` seconds): one `handshake-failed` event, in
    `persist send`'s words, whatever the retries."""
    from recorder.bus import receiver as receiver_module

    asked: list[str] = []

    def speaks(endpoint: str, timeout: float = 1.0) -> bool | None:
        asked.append(endpoint)
        return speaks_zmtp(endpoint, timeout)

    monkeypatch.setattr(receiver_module, "speaks_zmtp", speaks)
    accepted = [0]
    with not_zeromq(accepted=accepted) as endpoint:
        rec = Recorder(RecorderOptions(log_dir=tmp_path / "logs", broker=endpoint))
        rec.open()
        rec.journal.sink.start()
        transport = Transport(rec, ReceiverSettings(endpoint=endpoint))
        try:
            transport.start_receiver()
            wait_for(lambda: accepted[0] >= 12, timeout=60, what="libzmq retrying")
            wait_for(
                lambda: (
                    (link := rec.links.find(endpoint)) is not None
                    and link.handshake_failed is not None
                ),
                what="the failure said",
            )
        finally:
            transport.stop_receiver()
            rec.close()
            assert transport.close()
    assert asked == [endpoint]
    events = [r for r in journal_records(tmp_path / "logs") if r.get("event") == "handshake-failed"]
    assert [(e["broker"], e["detail"]) for e in events] == [(endpoint, NOT_ZMTP)]


def test_a_silent_service_is_not_blamed_on_curve(tmp_path: Path) -> None:
    """What listens sends nothing (Python's http.server waits for a request line; a
    frozen broker): the greeting probe gets nothing either. Before 2026-12-07 that was
    "CURVE on one side only?" with the --curve/--keys advice, though no side used CURVE."""
    with not_zeromq(reply=b"") as endpoint:
        rec = Recorder(RecorderOptions(log_dir=tmp_path / "logs", broker=endpoint))
        rec.open()
        rec.journal.sink.start()
        transport = Transport(rec, ReceiverSettings(endpoint=endpoint))
        try:
            transport.start_receiver()
            wait_for(
                lambda: (
                    (link := rec.links.find(endpoint)) is not None
                    and link.handshake_failed is not None
                ),
                timeout=60,
                what="the failure said",
            )
        finally:
            transport.stop_receiver()
            rec.close()
            assert transport.close()
    events = [r for r in journal_records(tmp_path / "logs") if r.get("event") == "handshake-failed"]
    assert [(e["broker"], e["detail"]) for e in events] == [(endpoint, SILENT_PEER)]
    assert "CURVE" not in refused_by(endpoint, SILENT_PEER)
