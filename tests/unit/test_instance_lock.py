"""The folder's lock when its file is removed or replaced from outside: still one holder
(the guard refuses a second one, in this process as in another), and the holder takes a
new file when it looks (`InstanceLock.keep`)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from recorder.store.lock import AlreadyRunning, InstanceLock, holder_pid

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets")


@linux
@pytest.mark.parametrize("removed", ["file", "folder"])
def test_a_second_holder_is_refused_after_the_lock_file_is_removed(
    tmp_path: Path, removed: str
) -> None:
    path = tmp_path / "logs" / "recorder.lock"
    path.parent.mkdir()
    first = InstanceLock(path)
    first.acquire()
    try:
        if removed == "file":
            path.unlink()
        else:
            shutil.rmtree(path.parent)
            path.parent.mkdir()
        second = InstanceLock(path)
        with pytest.raises(AlreadyRunning):
            second.acquire()
        said = first.keep()
        # the refused one left a new file: the holder locks the file in its place
        assert said is not None and "recorder.lock was replaced from outside" in said
        assert holder_pid(path) is not None
        assert first.keep() is None  # all is well again: nothing more to say
        with pytest.raises(AlreadyRunning):
            second.acquire()
    finally:
        first.release()
    second.acquire()  # released: the next one takes it
    second.release()


def test_a_lock_file_that_cannot_be_made_again_is_said_once(tmp_path: Path) -> None:
    path = tmp_path / "recorder.lock"
    lock = InstanceLock(path)
    lock.acquire()
    try:
        path.unlink()
        path.mkdir()  # something else in its place
        said = lock.keep()
        assert said is not None and "could not be made again" in said
        assert lock.keep() is None  # not said at every wake-up
        path.rmdir()
        said = lock.keep()
        assert said is not None and "was deleted from outside while held: made again" in said
        assert path.is_file() and holder_pid(path) is not None
    finally:
        lock.release()


def test_a_command_holding_the_folder_is_waited_for_then_named(tmp_path: Path) -> None:
    """A `persist` command (no recorder) holding the lock was taken for a recorder."""
    import os

    from recorder.store.lock import FolderBusy

    path = tmp_path / "recorder.lock"
    command = InstanceLock(path, "prune")
    command.acquire()
    try:
        with pytest.raises(FolderBusy) as busy:
            InstanceLock(path, "checkpoint").acquire(attempts=1, wait=0.2)
        assert str(busy.value) == (
            f"another `persist prune` (PID {os.getpid()}) is working on {tmp_path} (it held "
            "recorder.lock for more than 0.2s); try again when it is done"
        )
    finally:
        command.release()
    recorder = InstanceLock(path)
    recorder.acquire()
    try:
        with pytest.raises(AlreadyRunning, match=f"PID {os.getpid()} holds"):
            InstanceLock(path, "checkpoint").acquire(attempts=1, wait=5.0)
    finally:
        recorder.release()
