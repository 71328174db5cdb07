"""Room kept on the log folder's disk for retention's own writes.

Pruning and emptying the trash are how one frees a full disk, yet each writes a little
before it deletes anything (a trash entry's manifest, the ledger of pruned segments,
its journal record): that order is what lets a kill at any step be finished or undone.
So the blocks for those writes are taken beforehand, while there is room, in
`retention/room.reserve`: a prune, restore or empty gives them back first (under the
retention lock) and takes them again once it is done, as many as there is room for.
Renaming and deleting need no new blocks, nor does the folder's lock (`store.lock`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from recorder.store.fsutil import ensure_private_dir, open_private
from recorder.store.layout import Layout

ROOM_BYTES = 1 << 20  # a manifest and ledger of some hundreds of segments, twice over
_CHUNK = 64 << 10


def keep_room(layout: Layout) -> str | None:
    """Fill `room.reserve` up to `ROOM_BYTES` with real blocks (random bytes: a
    compressing file system keeps them too), leaving at least as much free for the
    journal, which comes first: on a disk that stays full the reserve is not taken
    back from it. Returns why it is not full, or None."""
    path = layout.room_reserve
    try:
        ensure_private_dir(layout.retention)
        fd = open_private(path, os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        return f"cannot keep room for retention in {path}: {exc.strerror or exc}"
    try:
        size = os.fstat(fd).st_size
        if size >= ROOM_BYTES:
            return None
        disk = os.fstatvfs(fd)
        target = min(ROOM_BYTES, size + max(0, disk.f_bavail * disk.f_frsize - ROOM_BYTES))
        chunk = os.urandom(_CHUNK)
        while size < target:
            size += os.pwrite(fd, chunk[: target - size], size)
        os.fsync(fd)
        return None if size >= ROOM_BYTES else f"only {size:,} bytes of room kept in {path}"
    except OSError as exc:
        return f"cannot keep room for retention in {path}: {exc.strerror or exc}"
    finally:
        os.close(fd)


def give_back_room(layout: Layout) -> None:
    """Free the reserve's blocks for the writes about to be made (harmless at any
    time: `keep_room` takes them again)."""
    with contextlib.suppress(OSError):
        os.truncate(layout.room_reserve, 0)


def short_of_room(layout: Layout) -> bool:
    """Whether the disk has less free than twice the reserve (or cannot say)."""
    try:
        disk = os.statvfs(layout.root)
    except OSError:
        return True
    return disk.f_bavail * disk.f_frsize < 2 * ROOM_BYTES


@contextlib.contextmanager
def room_to_write(layout: Layout) -> Iterator[None]:
    """The reserve given back for the change made inside when the disk is short of
    room (else left alone: no churn at every retention pass), then kept again (also
    made, in a folder that had none)."""
    short = short_of_room(layout)
    if short:
        give_back_room(layout)
    try:
        yield
    finally:
        keep_room(layout)
