"""The control-file protocol: both ends, with a real recorder core and an injected clock."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
import pytest

from recorder.daemon import core
from recorder.daemon.control import (
    AFTER_WAIT,
    REPLY_SUFFIX,
    REQUEST_SUFFIX,
    CheckpointReply,
    CheckpointRequest,
    ControlError,
    pending_requests,
    request_checkpoint,
)
from recorder.daemon.core import Recorder
from recorder.daemon.options import RecorderOptions
from recorder.store.checkpoints import Checkpoint, list_checkpoints
from recorder.store.lock import InstanceLock
from tests.support import journal_records
from tests.unit.test_daemon import Clock, env_msg, feed


def recording(tmp_path: Path, clock: Clock) -> Recorder:
    rec = Recorder(RecorderOptions(log_dir=tmp_path / "logs"), clock=clock)
    rec.open()
    feed(rec, clock, env_msg("p", 1), env_msg("p", 2))
    return rec


def ask(rec: Recorder, name: str, content: bytes) -> Path:
    request = rec.layout.control / f"{name}{REQUEST_SUFFIX}"
    request.write_bytes(content)
    return request


def answer(request: Path) -> CheckpointReply:
    return CheckpointReply.from_json(orjson.loads(request.with_suffix(REPLY_SUFFIX).read_bytes()))


def test_a_request_is_answered_with_the_checkpoint_on_the_next_tick(tmp_path: Path) -> None:
    clock = Clock()
    rec = recording(tmp_path, clock)
    request = ask(rec, "a", orjson.dumps(CheckpointRequest("before the refactor").to_json()))
    assert pending_requests(rec.layout) == [request]
    clock.now += 1
    rec.tick(clock.now)
    reply = answer(request)
    assert reply.ok and reply.checkpoint is not None and reply.error is None
    assert reply.checkpoint.label == "before the refactor" and reply.checkpoint.messages == 2
    assert reply.checkpoint.reason == "manual" and reply.checkpoint.created == clock.now
    assert [c.id for c in list_checkpoints(rec.layout)] == [reply.checkpoint.id]
    assert not request.exists() and pending_requests(rec.layout) == []
    rec.close()


def test_malformed_requests_get_error_replies_and_the_tick_goes_on(tmp_path: Path) -> None:
    clock = Clock()
    rec = recording(tmp_path, clock)
    bad = {
        "a-not-json": (b"{label", "not valid JSON"),
        "b-list": (b"[]", "not a JSON object"),
        "c-number-label": (b'{"label": 5}', "label is not a string"),
    }
    requests = {name: ask(rec, name, content) for name, (content, _) in bad.items()}
    good = ask(rec, "z-good", b'{"label": "fine"}')
    clock.now += 1
    rec.tick(clock.now)
    for name, (_, problem) in bad.items():
        reply = answer(requests[name])
        assert not reply.ok and reply.checkpoint is None
        assert reply.error is not None and problem in reply.error
        assert not requests[name].exists()
    reply = answer(good)
    assert reply.ok and reply.checkpoint is not None and reply.checkpoint.label == "fine"
    assert orjson.loads(rec.layout.status.read_bytes())["state"] == "recording"  # tick finished
    rec.close()


def test_the_client_gets_its_checkpoint_from_a_running_recorder(tmp_path: Path) -> None:
    """`request_checkpoint` end to end: the folder is locked, so it asks the recorder."""
    clock = Clock()
    rec = recording(tmp_path, clock)
    lock = InstanceLock(rec.layout.lock)  # what the running recorder's process holds
    lock.acquire()
    got: list[Checkpoint] = []
    client = threading.Thread(target=lambda: got.append(request_checkpoint(rec.layout, "live")))
    client.start()
    try:
        while client.is_alive():
            clock.now += 0.2
            rec.tick(clock.now)
            client.join(0.02)
    finally:
        lock.release()
    assert got and got[0].label == "live" and got[0].messages == 2
    # the recorder took it (the client, holding no lock, never checkpoints itself)
    assert rec.last_checkpoint is not None and rec.last_checkpoint.id == got[0].id
    assert got[0].path is not None and got[0].path.parent == rec.layout.checkpoints
    assert list(rec.layout.control.iterdir()) == []  # request and reply both gone
    rec.close()


def test_a_request_waits_for_the_message_it_names(tmp_path: Path) -> None:
    """A hook publishes, then asks: the recorder answers once it has that message (the
    broker may still hold it), or after `AFTER_WAIT` without it."""
    clock = Clock()
    rec = recording(tmp_path, clock)  # publisher p, messages 1 and 2
    waits = ask(rec, "waits", orjson.dumps({"label": "a", "after": {"pub": "p", "seq": 3}}))
    ready = ask(rec, "ready", orjson.dumps({"label": "b", "after": {"pub": "p", "seq": 2}}))
    rec.tick(clock.now)
    assert answer(ready).checkpoint is not None and answer(ready).checkpoint.messages == 2
    assert waits.exists() and not waits.with_suffix(REPLY_SUFFIX).exists()
    assert rec.sleep_for(poked=True) == core.WAITING_TICK  # looked at soon
    clock.now += 0.1
    feed(rec, clock, env_msg("p", 3))  # here it comes
    rec.tick(clock.now)
    cp = answer(waits).checkpoint
    assert cp is not None and cp.label == "a" and cp.messages == 3
    # a message that never comes: answered anyway, AFTER_WAIT later
    lost = ask(rec, "lost", orjson.dumps({"label": "c", "after": {"pub": "q", "seq": 1}}))
    rec.poked()  # what the client's byte in control/wake does
    rec.tick(clock.now)
    clock.now += AFTER_WAIT - 0.1
    rec.tick(clock.now)
    assert not lost.with_suffix(REPLY_SUFFIX).exists()
    clock.now += 0.2
    rec.tick(clock.now)
    assert answer(lost).ok and not rec._waiting_requests
    assert rec.sleep_for(poked=True) != core.WAITING_TICK
    rec.close()


def test_request_and_reply_round_trip_through_json() -> None:
    request = CheckpointRequest("a label")
    assert CheckpointRequest.from_json(orjson.loads(orjson.dumps(request.to_json()))) == request
    assert CheckpointRequest.from_json({}) == CheckpointRequest("")
    after = CheckpointRequest("x", ("pub-1", 7))
    assert CheckpointRequest.from_json(orjson.loads(orjson.dumps(after.to_json()))) == after
    for bad in ({"pub": 1, "seq": 2}, {"pub": "p", "seq": "2"}, {"pub": "p", "seq": True}, [1]):
        with pytest.raises(ControlError, match='"after"'):
            CheckpointRequest.from_json({"after": bad})
    failed = CheckpointReply.failed("disk full")
    assert failed.to_json() == {"ok": False, "error": "disk full"}
    assert CheckpointReply.from_json(failed.to_json()) == failed
    nothing = CheckpointReply.taken(None)
    assert nothing.to_json() == {"ok": True, "checkpoint": None}
    assert CheckpointReply.from_json(nothing.to_json()) == nothing


@pytest.mark.parametrize(
    "reply",
    [[], {"ok": "yes"}, {"ok": True, "checkpoint": {"id": "x"}}, {"ok": False, "error": 3}],
)
def test_a_malformed_reply_is_a_control_error(reply: object) -> None:
    with pytest.raises(ControlError):
        CheckpointReply.from_json(reply)


def test_one_look_at_control_answers_both_kinds_of_request_and_nothing_else(
    tmp_path: Path,
) -> None:
    from recorder.daemon import maintenance

    clock = Clock()
    rec = recording(tmp_path, clock)
    control = rec.layout.control
    checkpoint = ask(rec, "a", orjson.dumps(CheckpointRequest("both").to_json()))
    event = {"kind": "event", "event": "pruned", "segments": []}
    prune = control / f"b{maintenance.REQUEST_SUFFIX}"
    prune.write_bytes(orjson.dumps({"kind": "event", "event": event}))
    # what else control/ holds: an old reply of each kind and a writer's temp file
    others = [f"old{REPLY_SUFFIX}", f"old{maintenance.REPLY_SUFFIX}", f".c{REQUEST_SUFFIX}.1.2.tmp"]
    for name in others:
        (control / name).write_bytes(b"{}")
    assert pending_requests(rec.layout) == [checkpoint]
    assert maintenance.pending_requests(rec.layout) == [prune]
    clock.now += 1
    rec.tick(clock.now)
    assert answer(checkpoint).ok
    assert orjson.loads(prune.with_suffix(maintenance.REPLY_SUFFIX).read_bytes()) == {"ok": True}
    assert not checkpoint.exists() and not prune.exists()
    assert all((control / name).read_bytes() == b"{}" for name in others)
    rec.close()
    records = journal_records(tmp_path / "logs")
    assert "pruned" in [r.get("event") for r in records if r["kind"] == "event"]


def test_an_unanswered_request_says_whether_it_was_withdrawn_or_taken(tmp_path: Path) -> None:
    """A recorder that never looks (SIGSTOPped before it listed control/): the request
    is withdrawn, nothing will be done. One that took the request and then stalled:
    the caller is told it may still be done, not that it failed."""
    import time

    from recorder.daemon.control import exchange, no_answer
    from recorder.store.layout import Layout

    layout = Layout(tmp_path)
    assert exchange(layout, b"{}", 0.05, ".req", ".rep") is False
    assert not list(layout.control.iterdir())  # withdrawn

    def take() -> None:  # a recorder that reads the request, then stalls
        for _ in range(200):
            for path in layout.control.glob("*.req"):
                path.unlink()
                return
            time.sleep(0.005)

    taker = threading.Thread(target=take)
    taker.start()
    assert exchange(layout, b"{}", 0.3, ".req", ".rep") is True
    taker.join()
    assert "withdrawn, nothing was done" in no_answer("checkpoint", 5, False)
    assert "may still be done" in no_answer("checkpoint", 5, True)
