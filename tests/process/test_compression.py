"""A real recorder rotating small segments compresses the closed ones while it records
(the active one never), and `persist export` and the TUI's Store read them all."""

from __future__ import annotations

import signal
import stat
import subprocess
from pathlib import Path

import orjson

from recorder.bus.publisher import Publisher
from recorder.store.layout import Layout, list_segments
from recorder.store.reader import open_store
from tests.support import PYTHON, Bus, journal_records, read_status, wait_for


def written(log_dir: Path) -> int:
    return int((read_status(log_dir).get("counts") or {}).get("written", 0))


def forms(log_dir: Path) -> tuple[int, int]:
    """(compressed, plain) segments as readers list them."""
    segments = list_segments(Layout(log_dir))
    zst = sum(p.name.endswith(".zst") for p in segments)
    return zst, len(segments) - zst


def test_recorder_compresses_closed_segments_while_recording(bus: Bus) -> None:
    bus.start_broker()
    bus.start_recorder("--segment-mb", "0.05", "--search-index", "off")  # ~50 KB segments
    n = 3_000
    with Publisher(bus.front, agent="coder", heartbeat_interval=0.5) as pub:
        assert pub.wait_ready(5)
        for i in range(n // 2):
            pub.send("agents.coder", {"id": f"m{i}", "text": f"step {i}: ran the tests " * 12})
        # while it records: closed segments compressed behind it, the active one plain
        wait_for(lambda: forms(bus.log_dir)[0] >= 5, timeout=60, what="segments compressed")
        for i in range(n // 2, n):
            pub.send("agents.coder", {"id": f"m{i}", "text": f"step {i}: ran the tests " * 12})
        wait_for(lambda: written(bus.log_dir) >= n, timeout=60, what="all messages written")
    # every closed segment compressed in the end; the one being written stays plain
    wait_for(lambda: forms(bus.log_dir)[1] == 1, timeout=60, what="every closed one compressed")
    zst, _plain = forms(bus.log_dir)
    assert zst > 20
    segments = list_segments(Layout(bus.log_dir))
    assert segments[-1].name.endswith(".jsonl")
    assert not [p for p in (bus.log_dir / "segments").iterdir() if p.name.endswith(".tmp")]
    for p in (bus.log_dir / "segments").iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    ids = [r["frames"][1]["json"]["id"] for r in journal_records(bus.log_dir) if r["kind"] == "msg"]
    assert ids == [f"m{i}" for i in range(n)]

    # `persist export` while the recorder still runs reads every record once
    out = bus.log_dir.parent / "all.jsonl"
    export = ["export", "--all", "--format", "jsonl", "--log-dir", str(bus.log_dir)]
    done = subprocess.run(
        [PYTHON, "-m", "recorder.cli", *export, "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    exported = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    got = [r["frames"][1]["json"]["id"] for r in exported if r["kind"] == "msg"]
    assert got[:n] == ids
    seqs = [r["seq"] for r in exported]
    assert seqs == list(range(1, len(seqs) + 1))
    # what the TUI opens: the Store, no warning, the same lines
    with open_store(bus.log_dir) as store:
        assert store.warnings == []
        assert [r.line for r in store.records()][: len(exported)] == out.read_bytes().splitlines(
            keepends=True
        )
    bus.recorder.signal(signal.SIGTERM)
    assert bus.recorder.wait(10) == 0
    assert "compaction" not in (bus.log_dir / "recorder.log").read_text()  # no problem logged


def test_persist_compact_killed_at_any_moment_leaves_one_readable_copy(tmp_path: Path) -> None:
    """SIGKILL `persist compact` at spread moments: after each kill every segment is
    listed once and the journal reads the same; the next run cleans up and finishes."""
    from tests.demo_journal import DemoClock, DemoWriter

    root = tmp_path / "logs"
    clock = DemoClock(1_800_000_000.0)
    w = DemoWriter.open(root, segment_bytes=1 << 20, clock=clock)
    for i in range(30_000):
        clock.now += 0.1
        w.message(clock.now, "coder", f"step {i}: " + "ran the tests and they passed " * 30)
    w.close()
    layout = Layout(root)
    with open_store(root) as store:
        want = [r.line for r in store.records()]
    numbers = [p.name[:10] for p in list_segments(layout)]
    assert len(numbers) > 25
    argv = [PYTHON, "-m", "recorder.cli", "compact", "--log-dir", str(root)]
    killed = torn = 0  # runs killed; of them, killed while writing a copy (a .tmp left)
    # zstd level 19 is slow enough that every kill lands in the middle of a run (most
    # inside a segment's write); then level 3 runs, cut short between segments
    rounds = [("19", d) for d in (0.4, 0.6, 0.8, 1.0)] + [("3", d) for d in (0.25, 0.3)]
    for level, delay in rounds:
        if all(p.name.endswith(".zst") for p in list_segments(layout)[:-1]):
            break
        proc = subprocess.Popen(
            [*argv, "--level", level], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            proc.wait(delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            killed += 1
            torn += any(p.name.endswith(".tmp") for p in layout.segments.iterdir())
        assert [p.name[:10] for p in list_segments(layout)] == numbers
        with open_store(root) as store:
            assert [r.line for r in store.records()] == want
            assert store.warnings == []
    assert killed >= 4 and torn >= 1  # cut short mid-way, some inside a segment's write
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in layout.segments.iterdir())
    assert len(names) == len(numbers) and all(n.endswith(".zst") for n in names[:-1])
    with open_store(root) as store:
        assert [r.line for r in store.records()] == want
