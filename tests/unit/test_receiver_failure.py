"""A receiver that dies, and a broker out of reach, make the recorder degraded, not healthy."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from recorder.bus.receiver import ReceiverSettings, Transport
from recorder.daemon.core import Recorder
from recorder.daemon.options import RecorderOptions
from recorder.store.status import (
    DEGRADED,
    HEALTHY,
    Connection,
    StatusSnapshot,
    assess,
    process_start_time,
)
from tests.support import journal_records


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
        snap = dataclasses.replace(base, connection=connection, connection_since=since)
        StatusSnapshot.write(snap, rec.layout)
        h = assess(rec.layout, now)
        return h.state, h.reason

    assert health(Connection.CONNECTED, now - 60)[0] == HEALTHY
    assert health(Connection.DISCONNECTED, now - 1)[0] == HEALTHY  # a blip: a warning only
    state, reason = health(Connection.DISCONNECTED, now - 30)
    assert state == DEGRADED and "unreachable (lost for 30.0s" in reason
    state, reason = health(Connection.CONNECTING, now - 30)
    assert state == DEGRADED and "never reached" in reason
    rec.close()
