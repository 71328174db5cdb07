"""A running recorder applying retention (and `persist prune` through it) while it records."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import orjson

from recorder.bus.publisher import Publisher
from recorder.export.restore import build_bundle
from recorder.store.checkpoints import list_checkpoints, verify_checkpoint
from recorder.store.layout import Layout
from tests.support import PYTHON, Bus, journal_records, read_status, wait_for


def persist(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "recorder.cli", *argv], capture_output=True, text=True, timeout=60
    )


def lines(folder: Path) -> list[dict]:
    return [
        orjson.loads(x) for p in sorted(folder.glob("seg-*")) for x in p.read_bytes().splitlines()
    ]


def test_a_recorder_prunes_by_size_while_recording_and_loses_nothing(bus: Bus) -> None:
    bus.start_broker()
    log = bus.log_dir
    bus.start_recorder(
        "--segment-mb", "0.02", "--retention-max-size", "1000K", "--retention-interval", "0.5s",
        "--checkpoint-interval", "1", "--search-index", "off",
        "--compress", "off",  # sizes are on disk: compressed, these messages take 59 KB
    )  # fmt: skip
    n = 3000
    pinned = None
    with Publisher(bus.front, agent="steady", heartbeat_interval=0.5) as pub:
        assert pub.wait_ready(5)
        for i in range(n):
            pub.send("agents.steady", {"id": i, "text": "x" * 250})
            if i % 100 == 99:
                time.sleep(0.1)  # about 1,000 msgs/s for 3 s
            if i == 1500:
                done = persist("pin", "latest", "--log-dir", str(log))
                assert done.returncode == 0, done.stderr
                pinned = done.stdout.split()[-1]
    counts = lambda: read_status(log).get("counts") or {}  # noqa: E731
    wait_for(lambda: counts().get("written", 0) >= n, timeout=30, what="all written")
    # and by hand, through the running recorder (it is the journal's only writer)
    done = persist("prune", "--max-size", "100K", "--json", "--log-dir", str(log))
    assert done.returncode == 0, done.stderr
    by_hand = orjson.loads(done.stdout)
    assert by_hand["via"] == "recorder"
    wait_for(lambda: read_status(log).get("state") == "recording", what="still recording")

    status = read_status(log)
    assert status["counts"]["gaps"] == 0 and status["counts"]["missed"] == 0
    assert status["counts"]["written"] == n and status["last_error"] is None
    layout = Layout(log)
    pruned_events = [r for r in journal_records(log) if r.get("event") == "prune"]
    assert not [r for r in journal_records(log) if r["kind"] == "gap"]
    # every message is in the journal or in the trash, exactly once, in order
    kept = [r for r in journal_records(log) if r["kind"] == "msg"]
    trashed: list[dict] = []
    for entry in layout.trash.iterdir():
        trashed += lines(entry / "segments")
    # a prune's event record is in the active segment of its time: later prunes may
    # have taken it to the trash too
    pruned_events += [r for r in trashed if r.get("event") == "prune"]
    trashed = [r for r in trashed if r["kind"] == "msg"]
    ids = sorted(r["frames"][1]["json"]["id"] for r in kept + trashed)
    assert ids == list(range(n))
    assert trashed and kept[-1]["frames"][1]["json"]["id"] == n - 1
    seqs = [r["seq"] for r in kept]
    assert seqs == sorted(seqs) and seqs[0] > 1
    # the pinned checkpoint and its range are still there; every checkpoint verifies
    cps = {cp.id: cp for cp in list_checkpoints(layout)}
    assert pinned in cps
    for cp in cps.values():
        assert verify_checkpoint(layout, cp).ok
    bundle = build_bundle(log, str(pinned), durable=False)
    assert bundle.ok and bundle.manifest["messages"] == min(1000, cps[str(pinned)].messages)
    assert any("pinned" in k["why"] for k in by_hand["kept"])
    assert {e["by"] for e in pruned_events} == {"recorder", "persist prune"}
    done = persist("trash", "list", "--json", "--log-dir", str(log))
    assert done.returncode == 0 and len(orjson.loads(done.stdout)) == len(
        {e["trash"] for e in pruned_events}
    )


def test_a_recorder_that_ends_before_it_answers_is_noticed_at_once(bus: Bus) -> None:
    """`persist prune` and `persist checkpoint` ask the running recorder and waited their
    whole timeout (60 s for a prune) when it died meanwhile, then blamed an overloaded
    or stopped recorder: now they notice within a second, name the PID and its log, and
    withdraw the request."""
    import signal

    bus.start_broker()
    control = bus.log_dir / "control"
    for argv, suffix in (
        (["prune", "--older-than", "90d"], ".maint"),
        (["checkpoint"], ".request"),
    ):
        recorder = bus.start_recorder("--search-index", "off", "--monitor", "off")
        recorder.signal(signal.SIGSTOP)  # it takes no request now
        asking = subprocess.Popen(
            [PYTHON, "-m", "recorder.cli", *argv, "--log-dir", str(bus.log_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda s=suffix: list(control.glob(f"*{s}")), what="the request left")
        recorder.signal(signal.SIGKILL)
        recorder.wait(10)
        started = time.monotonic()
        _out, err = asking.communicate(timeout=60)
        assert asking.returncode == 1, err
        assert time.monotonic() - started < 3
        assert f"the recorder (PID {recorder.pid}) ended before it answered" in err, err
        assert "recorder.out" in err or "recorder.log" in err
        assert not list(control.glob(f"*{suffix}"))  # the request withdrawn
