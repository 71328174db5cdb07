"""A checkpoint's `participants` (senders and their messages since the previous
checkpoint) after the recorder was killed and started again: real `persist broker`,
`persist record` and `persist checkpoint` processes."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import orjson

from recorder.bus.publisher import Publisher
from tests.support import PYTHON, Bus, read_status, wait_for


def _written(log_dir: Path) -> int:
    return int((read_status(log_dir).get("counts") or {}).get("written", 0))


def _send(bus: Bus, senders: dict[str, int]) -> None:
    before = _written(bus.log_dir)
    with Publisher(bus.front, agent="pub", heartbeat_interval=0) as pub:
        assert pub.wait_ready(5)
        for who, n in senders.items():
            for i in range(n):
                pub.send("agents.chat", {"sender": who, "text": f"{who} {i}"})
    total = before + sum(senders.values())
    wait_for(lambda: _written(bus.log_dir) >= total, what="messages written")


def _checkpoint(log_dir: Path, label: str) -> dict:
    argv = ["checkpoint", "--log-dir", str(log_dir), "--label", label, "--json"]
    out = subprocess.run(
        [PYTHON, "-m", "recorder.cli", *argv],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    return dict(orjson.loads(out.stdout))


def test_participants_after_a_crash_count_the_messages_from_before_it(bus: Bus) -> None:
    """The per-sender counts lived only in the recorder's memory: after a SIGKILL and a
    restart the next checkpoint counted only what came after the restart (30 of 80)."""
    bus.start_broker()
    first = bus.start_recorder()
    _send(bus, {"alice": 20})
    before = _checkpoint(bus.log_dir, "before")
    assert before["participants"] == {"alice": 20}
    _send(bus, {"bob": 15, "alice": 5})  # after that checkpoint, before the crash

    # saved with the recovery state, with the checkpoint they count since
    def state() -> dict:
        return dict(orjson.loads((bus.log_dir / "recovery" / "state.json").read_bytes()))

    wait_for(
        lambda: state().get("participants", {}).get("counts") == {"alice": 5, "bob": 15},
        what="participants in the recovery state",
    )
    assert state()["participants"]["since"] == before["position"]["seq"]
    first.signal(signal.SIGKILL)
    first.wait(5)
    second = bus.start_recorder()
    _send(bus, {"carol": 10})
    after = _checkpoint(bus.log_dir, "after crash")
    assert after["messages"] == 50
    assert after["participants"] == {"bob": 15, "alice": 5, "carol": 10}
    # and the counts start again after it
    _send(bus, {"dave": 3})
    second.signal(signal.SIGKILL)
    second.wait(5)
    # taken with no recorder running: counted from the journal
    offline = _checkpoint(bus.log_dir, "offline")
    assert offline["messages"] == 53 and offline["participants"] == {"dave": 3}
    # a recorder started after a checkpoint it did not take counts from that one (its
    # state's counts are since an older one), and so does one whose state has none
    bus.start_recorder()
    _send(bus, {"erin": 2})
    last = _checkpoint(bus.log_dir, "last")
    assert last["messages"] == 55 and last["participants"] == {"erin": 2}


def test_participants_are_counted_from_the_checkpoint_when_the_state_has_none(
    bus: Bus,
) -> None:
    """A recovery state without saved counts (written before they were saved, or
    deleted): the restarted recorder counts them from the newest checkpoint on."""
    bus.start_broker()
    first = bus.start_recorder()
    _send(bus, {"alice": 4})
    _checkpoint(bus.log_dir, "before")
    _send(bus, {"bob": 7})
    first.signal(signal.SIGKILL)
    first.wait(5)
    path = bus.log_dir / "recovery" / "state.json"
    state = orjson.loads(path.read_bytes())
    state.pop("participants", None)
    path.write_bytes(orjson.dumps(state))
    bus.start_recorder()
    _send(bus, {"carol": 1})
    after = _checkpoint(bus.log_dir, "after")
    assert after["messages"] == 12 and after["participants"] == {"bob": 7, "carol": 1}
