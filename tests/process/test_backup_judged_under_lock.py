"""`persist backup DEST` judges DEST (its own backup, another folder's, foreign files)
while it holds `DEST/backup.lock`, by real processes: a backup paused just before it
takes the lock (a wrapper around the real CLI waits in `fcntl.flock` until told to go)
while DEST changes must judge DEST as it is once it holds the lock."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recorder.backup.manifest import Manifest
from tests.log_folder import healthy_folder
from tests.process.test_backup_restore_unfinished import persist

pytestmark = pytest.mark.timeout(180)

# The real CLI in a process of its own whose flock on a backup.lock waits, once it has
# said so (READY), until GO exists: what DEST holds can change there, as another
# program (or another backup) would change it.
WRAPPER = """
import fcntl, os, sys, time
from pathlib import Path
ready, go = Path(sys.argv[1]), Path(sys.argv[2])
real = fcntl.flock
def flock(fd, op):
    if os.readlink(f"/proc/self/fd/{fd}").endswith("/backup.lock") and not go.exists():
        ready.touch()
        while not go.exists():
            time.sleep(0.01)
    return real(fd, op)
fcntl.flock = flock
sys.argv = ["persist", *sys.argv[3:]]
from recorder.cli.main import main
sys.exit(main())
"""


def paused_backup(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], Path, Path]:
    ready, go = tmp_path / "ready", tmp_path / "go"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRAPPER, str(ready), str(go), "backup", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not ready.exists():  # it has judged DEST (before the fix) and waits at the lock
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    return proc, ready, go


def test_dest_is_judged_under_the_lock(tmp_path: Path) -> None:
    """DEST was judged before backup.lock was taken: what came into DEST between the
    judging and the lock (another program's manifest.json and a file in objects/) was
    written over (the manifest replaced, exit 0) instead of refused."""
    logs = healthy_folder(tmp_path / "a", messages=2400, session=False).root
    dest = tmp_path / "backup"
    assert persist("backup", str(dest), "--dir", str(logs)).returncode == 0
    proc, _ready, go = paused_backup(tmp_path, str(dest), "--dir", str(logs))
    # while it waits for the lock, DEST becomes another program's folder
    (dest / "manifest.json").write_text('{"name": "my web app"}')
    (dest / "objects" / "ab").mkdir(exist_ok=True)
    (dest / "objects" / "ab" / "photo.jpg").write_text("precious")
    go.touch()
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 2, (out, err)
    assert len(err.splitlines()) == 1 and "holds other files (" in err, err
    assert "manifest.json, not a backup's" in err and "objects/ab/photo.jpg" in err
    assert (dest / "manifest.json").read_text() == '{"name": "my web app"}'
    assert (dest / "objects" / "ab" / "photo.jpg").read_text() == "precious"


def test_a_new_dest_filled_meanwhile_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    """A DEST that did not exist when the backup looked, and into which another program
    wrote before the backup held the lock, was written into all the same; refused now,
    the backup.lock this run made removed again."""
    logs = healthy_folder(tmp_path / "a", messages=2400, session=False).root
    dest = tmp_path / "new"
    proc, _ready, go = paused_backup(tmp_path, str(dest), "--dir", str(logs))
    (dest / "manifest.json").write_text('{"name": "my web app"}')
    go.touch()
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 2, (out, err)
    assert "holds other files (manifest.json, not a backup's)" in err
    assert sorted(os.listdir(dest)) == ["manifest.json"]
    assert (dest / "manifest.json").read_text() == '{"name": "my web app"}'


def test_a_second_backup_while_one_holds_the_lock_is_refused(tmp_path: Path) -> None:
    """Two real `persist backup` processes into one DEST: while one holds the lock (paused
    inside its run), the other is refused at once (exit 1), and the first's backup is
    whole afterwards."""
    logs = healthy_folder(tmp_path / "a", messages=2400, session=False).root
    dest = tmp_path / "backup"
    assert persist("backup", str(dest), "--dir", str(logs)).returncode == 0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
            str(dest / "backup.lock"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    refused = persist("backup", str(dest), "--dir", str(logs))
    assert refused.returncode == 1 and "another persist backup is writing into" in refused.stderr
    holder.communicate("")
    assert persist("backup", str(dest), "--dir", str(logs)).returncode == 0
    assert Manifest.read(dest).source == str(logs)
