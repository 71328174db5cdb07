"""A recorder started before the upgrade still running: its status.json names no program
level (`program`, since 2026-12-07). `persist status` says it is older and that a restart
brings it level; `persist compact` does not compress under it (it may not read compressed
segments, and its checkpoints would leave them out); `persist prune` and `persist trash
restore|empty` say at once that it does not take their requests, changing nothing,
instead of waiting 60 s and blaming an overload."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from recorder.store.layout import Layout, list_segments
from recorder.store.status import RECORDER_LEVEL, StatusSnapshot
from recorder.store.trash import list_trash
from tests.support import PYTHON
from tests.unit.test_daemon import Clock, feed, make
from tests.unit.test_retention import digests, run

# A recorder as one from before 2026-12-07 is seen by others: it holds the folder's
# lock (a bare PID in it) and keeps a status.json without `program`, written by hand
# here as those recorders wrote it; it answers no request in control/.
OLD_RECORDER = """
import os, sys, time
from pathlib import Path
import orjson
from recorder.store.fsutil import atomic_write
from recorder.store.layout import Layout
from recorder.store.lock import InstanceLock
from recorder.store.status import process_start_key, process_start_time

layout = Layout(Path(sys.argv[1]))
lock = InstanceLock(layout.lock)
lock.acquire()
pid = os.getpid()
started, key = process_start_time(pid), process_start_key(pid)
first = True
while True:
    now = time.time()
    status = {
        "v": 1, "pid": pid, "process_started": started, "process_start_key": key,
        "updated": now, "updated_monotonic": time.monotonic(), "log_dir": str(layout.root),
        "broker": "tcp://127.0.0.1:36011", "embedded_broker": None, "state": "recording",
        "connection": "connected", "connection_since": now - 10, "counts": {},
        "rates": {}, "backlog_bytes": 0, "last_seq": 0, "last_durable_seq": 0,
        "segment": "seg-000009.jsonl", "last_checkpoint": None, "last_error": None,
    }
    atomic_write(layout.status, orjson.dumps(status), durable=False)
    if first:
        print("ready", flush=True)
        first = False
    time.sleep(0.3)
"""


@pytest.fixture
def folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[tuple[Layout, str]]:
    """A journal of plain closed segments with one trash entry (pruned while no recorder
    ran), and the old recorder holding it. Yields the layout and the trash entry's id."""
    clock = Clock(time.time() - 86400)
    rec = make(tmp_path, clock, segment_bytes=16 * 1024, compress=False, checkpoint_interval=0)
    for n in range(300):
        body = {"text": f"message {n} " + "words " * 30, "sender": "coder"}
        feed(rec, clock, [b"agents.coder", orjson.dumps(body)])
        clock.now += 1
    rec.checkpoint("end", "manual", clock.now, force=True)
    rec.close()
    layout = rec.layout
    code, out, err = run(
        capsys, "prune", "--max-size", "80K", "--json", "--log-dir", str(layout.root)
    )
    assert code == 0, err
    trash = orjson.loads(out)["trash"]
    old = subprocess.Popen(
        [PYTHON, "-c", OLD_RECORDER, str(layout.root)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert old.stdout is not None and old.stdout.readline() == b"ready\n"
        yield layout, trash
    finally:
        os.kill(old.pid, signal.SIGKILL)
        old.wait()


def test_status_says_the_running_recorder_is_older(
    folder: tuple[Layout, str], capsys: pytest.CaptureFixture[str]
) -> None:
    layout, _ = folder
    code, out, _ = run(capsys, "status", "--log-dir", str(layout.root))
    assert code == 0, out
    line = next(x for x in out.splitlines() if "started before 2026-12-07" in x)
    assert "names no program level" in line and "restarting it brings it level" in line
    code, out, _ = run(capsys, "status", "--json", "--log-dir", str(layout.root))
    doc = orjson.loads(out)
    assert doc["status"]["program"] is None
    assert any("older than this persist" in w for w in doc["warnings"])


def test_compact_refuses_under_an_older_recorder(
    folder: tuple[Layout, str], capsys: pytest.CaptureFixture[str]
) -> None:
    layout, _ = folder
    before = digests(layout.segments)
    code, out, err = run(capsys, "compact", "--log-dir", str(layout.root))
    assert code == 1, out + err
    assert len(err.strip().splitlines()) == 1 and out == ""
    assert "started before 2026-12-07" in err and "nothing is compressed" in err
    assert "persist stop --log-dir" in err and "persist record" in err
    assert digests(layout.segments) == before
    assert not any(p.name.endswith(".zst") for p in list_segments(layout))


def test_prune_and_trash_say_at_once_that_the_older_recorder_takes_no_request(
    folder: tuple[Layout, str], capsys: pytest.CaptureFixture[str]
) -> None:
    layout, trash = folder
    log = str(layout.root)
    segments, checkpoints = digests(layout.segments), digests(layout.checkpoints)
    for argv in (
        ["prune", "--max-size", "40K"],
        ["prune", "--forget-missing"],
        ["trash", "restore", trash],
        ["trash", "empty", "--older-than", "0"],
    ):
        code, out, err = run(capsys, *argv, "--log-dir", log)
        assert code == 1, (argv, out, err)
        assert len(err.strip().splitlines()) == 1, (argv, err)
        assert "started before 2026-12-07" in err and "may not take prune or trash" in err
        assert "restarting it brings it level" in err and "did not answer" not in err
    assert digests(layout.segments) == segments and digests(layout.checkpoints) == checkpoints
    assert [e.id for e in list_trash(layout)] == [trash]
    assert not layout.control.exists() or list(layout.control.glob("*.maint")) == []


def test_a_status_names_the_program_that_wrote_it(tmp_path: Path) -> None:
    clock = Clock()
    rec = make(tmp_path, clock)
    snap = rec.status(clock.now)
    assert snap.program is not None and snap.program.level == RECORDER_LEVEL
    again = StatusSnapshot.from_json(orjson.loads(orjson.dumps(snap.to_json())))
    assert again.program == snap.program and again.level == RECORDER_LEVEL
    rec.close()
