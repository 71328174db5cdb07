"""`persist backup` while a real recorder records (1 MiB segments, so segments close
during the backup, and checkpoints every second): `persist restore-backup` verifies
every file and checkpoint, and the restored journal is a prefix of the live one."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import orjson
import pytest

from recorder.bus.publisher import Publisher
from recorder.store.layout import Layout, list_segments, segment_number
from recorder.store.segfile import open_segment
from tests.support import PYTHON, Bus

pytestmark = pytest.mark.timeout(120)


def persist(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "recorder.cli", *args], capture_output=True, text=True, timeout=60
    )


def lines_of(path: Path) -> bytes:
    """A segment's lines, whether its file is plain or compressed."""
    with open_segment(path) as seg:
        return seg.read(0, seg.size)


def test_backup_while_recording_restores_a_verified_prefix(bus: Bus, tmp_path: Path) -> None:
    bus.start_broker()
    bus.start_recorder("--segment-mb", "1", "--checkpoint-interval", "1")
    stop = threading.Event()
    sent = [0]

    def publish() -> None:
        with Publisher(bus.front, agent="live") as pub:
            pub.wait_ready(5)
            while not stop.is_set():  # about 1,000 msgs/s of 600 bytes
                for _ in range(50):
                    pub.send("agents.live", {"text": f"message {sent[0]} " + "x" * 560})
                    sent[0] += 1
                time.sleep(0.05)

    thread = threading.Thread(target=publish)
    thread.start()
    try:
        time.sleep(2.5)
        dest = tmp_path / "backup"
        first = persist("backup", str(dest), "--log-dir", str(bus.log_dir), "--json")
        assert first.returncode == 0, first.stderr
        time.sleep(1.5)
        second = persist("backup", str(dest), "--log-dir", str(bus.log_dir), "--json")
        assert second.returncode == 0, second.stderr
        doctor = persist("doctor", "--log-dir", str(bus.log_dir), "--json")
    finally:
        stop.set()
        thread.join(10)
    one, two = orjson.loads(first.stdout), orjson.loads(second.stdout)
    assert two["reused_bytes"] > 0  # closed segments and old checkpoints were not copied again
    # the active segment's end, past its last complete line: at 0 (no line, no seq) only
    # when the backup came just as a segment was begun (one every 1.7 s here)
    end = two["position"]
    assert (end["offset"] > 0 and type(end["seq"]) is int) or (end["offset"], end["seq"]) == (
        0,
        None,
    )
    report = orjson.loads(doctor.stdout)
    assert [f for f in report["findings"] if f["severity"] == "problem"] == []
    assert doctor.returncode in (0, 8), report

    restored = tmp_path / "restored"
    back = persist("restore-backup", str(dest), str(restored), "--json")
    assert back.returncode == 0, back.stderr
    result = orjson.loads(back.stdout)
    assert result["ok"] and result["checkpoints_verified"] >= 2
    # The live recorder's indexer may compress a closed segment after the backup copied
    # it plain (or before): segments are compared by number, as their lines.
    live = {segment_number(p.name): lines_of(p) for p in list_segments(Layout(bus.log_dir))}
    ours = list_segments(Layout(restored))
    assert len(ours) >= 2 and ours[-1].name == two["position"]["segment"]
    for path in ours:
        data = lines_of(path)
        assert live[segment_number(path.name)].startswith(data)
        if path != ours[-1]:
            assert live[segment_number(path.name)] == data  # closed: the whole segment
    assert ours[-1].stat().st_size == two["position"]["offset"]
    assert sent[0] > 3000 and one["files"] > 2


def test_a_full_backup_disk_fails_in_one_line_and_keeps_the_previous_backup(
    tmp_path: Path,
) -> None:
    from recorder.backup.manifest import Manifest
    from tests.demo_journal import DemoWriter
    from tests.log_folder import add_messages, healthy_folder
    from tests.process.test_stalls import small_disk

    folder = healthy_folder(tmp_path, session=False)
    with small_disk(tmp_path / "disk", 4) as disk:
        dest = disk / "backup"
        first = persist("backup", str(dest), "--log-dir", str(folder.root))
        assert first.returncode == 0, first.stderr
        before = Manifest.read(dest)
        w = DemoWriter.open(folder.root, segment_bytes=1_100_000)
        add_messages(w, 1500, 1_800_000_000.0, 10_000)
        w.close()
        second = persist("backup", str(dest), "--log-dir", str(folder.root))
        assert second.returncode == 1
        [line] = second.stderr.strip().splitlines()
        assert "No space left on device" in line and "previous backup there" in line
        assert Manifest.read(dest) == before
        back = persist("restore-backup", str(dest), str(tmp_path / "restored"))
        assert back.returncode == 0, back.stderr
        restored = tmp_path / "restored" / "segments"
        assert sorted(p.name for p in restored.iterdir()) == sorted(
            e.path.split("/")[1] for e in before.files if e.path.startswith("segments/")
        )
