"""The segment being written, deleted or replaced from outside while the recorder runs:
it is put back from the recorder's open file within a couple of seconds, every message
is kept, the status says what happened, and a checkpoint of a folder whose segment is
missing is refused rather than digesting nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from recorder.bus.publisher import Publisher
from recorder.store.layout import Layout
from tests.support import Bus, journal_records, read_status, wait_for


def texts(log_dir: Path) -> list[str]:
    return [
        r["frames"][1]["json"]["text"]
        for r in journal_records(log_dir)
        if r["kind"] == "msg" and r["topic"] == "agents.x"
    ]


def last_error(log_dir: Path) -> str:
    return str((read_status(log_dir).get("last_error") or {}).get("message", ""))


@pytest.mark.parametrize("change", ["deleted", "replaced"])
def test_the_segment_being_written_is_put_back(bus: Bus, change: str) -> None:
    bus.start_broker()
    bus.start_recorder()
    segment = Layout(bus.log_dir).segment_path(1)
    with Publisher(bus.front, agent="x", heartbeat_interval=0) as pub:
        assert pub.wait_ready(5)
        for i in range(10):
            pub.send("agents.x", {"text": f"before {i}"})
        wait_for(lambda: len(texts(bus.log_dir)) == 10, what="ten messages written")
        if change == "deleted":
            segment.unlink()
        else:
            other = segment.with_name("other")
            other.write_bytes(b"not ours\n")
            other.replace(segment)
        for i in range(10):
            pub.send("agents.x", {"text": f"after {i}"})
        wait_for(
            lambda: (
                f"was {change} from outside while being written: put back"
                in last_error(bus.log_dir)
            ),
            timeout=10,
            what="the recorder to put the segment back",
        )
    assert bus.recorder is not None
    bus.recorder.signal(signal.SIGTERM)
    assert bus.recorder.wait(10) == 0
    expected = [f"before {i}" for i in range(10)] + [f"after {i}" for i in range(10)]
    assert texts(bus.log_dir) == expected
    found = list((bus.log_dir / "recovery").glob("seg-000001.jsonl.found-*"))
    if change == "replaced":
        assert len(found) == 1 and found[0].read_bytes() == b"not ours\n"
    else:
        assert not found
    doctor = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "doctor", "--log-dir", str(bus.log_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "every digest verified" in doctor.stdout, doctor.stdout


def test_a_checkpoint_of_a_missing_segment_is_refused(tmp_path: Path) -> None:
    from recorder.store.checkpoints import write_checkpoint
    from tests.demo_journal import build_demo

    root = build_demo(tmp_path / "logs")
    layout = Layout(root)
    last = sorted(layout.segments.glob("seg-*"))[-1]
    number = int(last.name[4:10])
    last.unlink()
    with pytest.raises(FileNotFoundError, match="the segment the checkpoint ends in is missing"):
        write_checkpoint(
            layout, segment=number, offset=10, seq=1, messages=1, label="", reason="manual"
        )


def test_a_checkpoint_over_a_closed_segment_moved_away_is_refused(tmp_path: Path) -> None:
    """`persist checkpoint` (no recorder) with a closed segment moved away by hand: one
    line naming it, exit 1, no checkpoint; segments pruned by retention are no hole."""
    from tests.demo_journal import DemoWriter

    root = tmp_path / "logs"
    w = DemoWriter.open(root, segment_bytes=4096)
    for i in range(150):
        w.message(1_800_000_000.0 + i, "coder", f"message {i}")
    w.close()
    layout = Layout(root)
    segments = sorted(layout.segments.glob("seg-*.jsonl"))
    assert len(segments) >= 5
    aside = tmp_path / segments[2].name
    segments[2].rename(aside)

    def checkpoint(label: str) -> subprocess.CompletedProcess[str]:
        argv = ["checkpoint", "--log-dir", str(root), "--label", label]
        return subprocess.run(
            [sys.executable, "-m", "recorder.cli", *argv],
            capture_output=True,
            text=True,
            timeout=60,
        )

    out = checkpoint("hole")
    assert out.returncode == 1 and out.stdout == ""
    (line,) = out.stderr.splitlines()
    assert line.startswith("persist: checkpoint refused: seg-000003.jsonl is missing from ")
    assert not list(layout.checkpoints.glob("*.json"))
    aside.rename(segments[2])
    prune = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "prune", "--max-size=8192B", f"--log-dir={root}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert prune.returncode == 0, prune.stderr
    left = sorted(p.name for p in layout.segments.glob("seg-*.jsonl"))
    assert segments[0].name not in left  # pruned: not a hole
    out = checkpoint("after the prune")
    assert out.returncode == 0, out.stderr
    [cp] = layout.checkpoints.glob("*.json")
    names = [s["name"] for s in orjson.loads(cp.read_bytes())["digest"]["segments"]]
    assert names == left


def persist(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_segments_deleted_by_hand_are_forgotten_on_request(tmp_path: Path) -> None:
    """The oldest segment and one in the middle deleted by hand (to free room): doctor
    names both, with the command that says they are gone on purpose; checkpoints are
    refused until then. `persist prune --forget-missing --dry-run` names them and
    changes nothing; without --dry-run it writes them down (and a journal record), and
    checkpoints are taken again, restores name the holes as gone on purpose (exit 0)."""
    from tests.demo_journal import DemoWriter

    root = tmp_path / "logs"
    w = DemoWriter.open(root, segment_bytes=4096)
    for i in range(150):
        w.message(1_800_000_000.0 + i, "coder", f"message {i}")
    w.checkpoint(1_800_000_200.0, "end", "manual")
    w.close()
    layout = Layout(root)
    segments = sorted(layout.segments.glob("seg-*.jsonl"))
    assert len(segments) >= 5
    for gone in (segments[0], segments[2]):
        gone.unlink()
    log = f"--log-dir={root}"
    doctor = persist("doctor", "--json", log)
    findings = orjson.loads(doctor.stdout)["findings"]
    missing = [f for f in findings if f["check"] == "journal.missing-segment"]
    assert [f["summary"].split()[0] for f in missing] == [segments[0].name, segments[2].name]
    assert all(f["fix"] == f"persist prune --forget-missing --log-dir {root}" for f in missing)
    [old] = [f for f in findings if f["check"] == "checkpoints.digest"]
    assert old["severity"] == "problem" and old["fix"] == missing[0]["fix"]
    refused = persist("checkpoint", log, "--label", "before")
    assert refused.returncode == 1 and "persist prune --forget-missing" in refused.stderr
    dry = persist("prune", "--forget-missing", "--dry-run", log)
    assert dry.returncode == 0, dry.stderr
    assert f"would write down 2 missing segment(s) as removed by hand: {segments[0].name}, " in (
        dry.stdout
    )
    assert not layout.pruned.exists()
    both = persist("prune", "--forget-missing", "--older-than", "1d", log)
    assert both.returncode == 2 and "--forget-missing goes alone" in both.stderr
    done = persist("prune", "--forget-missing", "--json", log)
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout) == {
        "dry_run": False,
        "forgotten": [segments[0].name, segments[2].name],
        "bundles_holding": [],
    }
    again = persist("prune", "--forget-missing", log)
    assert again.returncode == 0 and "nothing to forget" in again.stdout
    events = [r for r in journal_records(root) if r.get("event") == "forget-missing"]
    assert [e["segments"] for e in events] == [[segments[0].name, segments[2].name]]
    assert events[0]["offline"] is True  # no recorder: written under the folder's lock
    taken = persist("checkpoint", log, "--label", "after")
    assert taken.returncode == 0, taken.stderr
    restored = persist("restore", "latest", log)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    [manifest] = (root / "restore").glob("*/manifest.json")
    said = " ".join(orjson.loads(manifest.read_bytes())["integrity"]["caveats"])
    assert "removed by hand" in said
    doctor = persist("doctor", "--json", log)
    findings = orjson.loads(doctor.stdout)["findings"]
    assert not [f for f in findings if f["check"] == "journal.missing-segment"]
    [digests] = [f for f in findings if f["check"] == "checkpoints.digest"]
    assert digests["severity"] == "ok", digests  # the old one verifies without them
    [gone] = [f for f in findings if f["check"] == "journal.pruned"]
    assert gone["severity"] == "ok" and "removed by hand" in gone["summary"]


def test_forgetting_a_missing_segment_through_the_running_recorder(bus: Bus) -> None:
    """With a recorder running, `persist prune --forget-missing` goes through it (the
    journal record is its own, not offline), and its next checkpoint is taken."""
    from tests.demo_journal import DemoWriter

    w = DemoWriter.open(bus.log_dir, segment_bytes=4096)
    for i in range(100):
        w.message(1_800_000_000.0 + i, "coder", f"message {i}")
    w.close()
    layout = Layout(bus.log_dir)
    first = layout.segment_path(1)
    assert first.exists() and layout.segment_path(3).exists()
    bus.start_broker()
    bus.start_recorder("--compress", "off")
    first.unlink()
    log = f"--log-dir={bus.log_dir}"
    refused = persist("checkpoint", log)
    assert refused.returncode == 1 and "seg-000001.jsonl is missing" in refused.stderr
    done = persist("prune", "--forget-missing", log)
    assert done.returncode == 0, done.stderr
    assert "wrote down 1 missing segment(s) as removed by hand: seg-000001.jsonl" in done.stdout
    taken = persist("checkpoint", log, "--label", "after")
    assert taken.returncode == 0, taken.stderr
    assert bus.recorder is not None
    bus.recorder.signal(signal.SIGTERM)
    assert bus.recorder.wait(30) == 0
    [event] = [r for r in journal_records(bus.log_dir) if r.get("event") == "forget-missing"]
    assert event["segments"] == ["seg-000001.jsonl"] and "offline" not in event
