"""Something other than a file of ours where the search index keeps one: a folder at
`search/index.sqlite3` or `search/index.lock`, a FIFO at its `-wal`, a file where the
`search/` folder goes. SQLite and the writers' flock cannot use it, and a search, a
catch-up or the recorder's indexer stopped with the OS's words ("Is a directory") on
some other path (`index.sqlite3.new`), pointing to a fix that left it there.

Reading commands and the recorder's indexer refuse it in one line naming the path and
what is there (`IndexInTheWay`); the commands asked to rebuild the index (`persist
reindex`, `persist doctor --fix`) move it aside, never delete it: the index is derived,
the thing in its place is someone's, kept in `recovery/doctor/<time>/` for inspection.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path

from recorder.errors import PersistError
from recorder.search.index import SHARD_PREFIX
from recorder.store.fsutil import ensure_private_dir
from recorder.store.inside import link_out
from recorder.store.layout import Layout

# The index's files beside `index.sqlite3` (SQLite's logs, the rebuild's new file).
_COMPANIONS = ("", "-wal", "-shm", "-journal")


@dataclass(frozen=True)
class InTheWay:
    path: Path
    what: str  # "a folder", "a FIFO"...
    should_be: str  # "a file", "a folder"

    def sentence(self) -> str:
        return f"{self.path} is {self.what}, not {self.should_be}"


class IndexInTheWay(PersistError):
    """The search index cannot be used: something else stands where it keeps a file."""

    def __init__(self, layout: Layout, found: list[InTheWay]) -> None:
        more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
        flag = f" --log-dir {shlex.quote(str(layout.root))}"
        super().__init__(
            f"cannot use the search index: {found[0].sentence()}{more}; "
            f"`persist reindex{flag}` moves it aside and builds the index again"
        )
        self.found = found


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISREG(mode):
        return "a file"
    return "not a regular file"


def _not_regular(path: Path) -> str | None:
    """What `path` is when it is there and not a regular file (a symlink is followed:
    one to a file is used as that file; a dangling one is nothing yet)."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:  # a loop of links, a name too long: nothing SQLite could open either
        return "a path that cannot be followed"
    return None if stat.S_ISREG(mode) else _kind(mode)


def in_the_way(layout: Layout) -> list[InTheWay]:
    """Every path where the index keeps a file (or `search/`, a folder) that holds
    something else; a few stats and one listing of `search/`."""
    try:
        mode = os.stat(layout.search).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError:
        return [InTheWay(layout.search, "a path that cannot be followed", "a folder")]
    if not stat.S_ISDIR(mode):
        return [InTheWay(layout.search, _kind(mode), "a folder")]
    names = [f"{layout.search_index.name}{s}" for s in _COMPANIONS]
    names += [f"{layout.search_index.name}.new{s}" for s in _COMPANIONS]
    names.append(layout.search_lock.name)
    with contextlib.suppress(OSError):  # unreadable: SQLite says so when it opens the index
        names += sorted(n for n in os.listdir(layout.search) if n.startswith(SHARD_PREFIX))
    found = []
    for name in names:
        what = _not_regular(layout.search / name)
        if what is not None:
            found.append(InTheWay(layout.search / name, what, "a file"))
    return found


def refuse_what_is_in_the_way(layout: Layout) -> None:
    """Raise IndexInTheWay when something else stands where the index keeps a file."""
    found = in_the_way(layout)
    if found:
        raise IndexInTheWay(layout, found)


def move_aside(layout: Layout, aside: Path) -> list[tuple[InTheWay, Path]]:
    """Move everything in the index's way into `aside` (under its path in the log
    folder, `aside/search/index.sqlite3`; a name taken there gets `.1`, `.2`...); each
    with where it went. Only what is not a regular file moves, so no writer of the
    index can be using it: the writers' lock is not needed (and may be what moves)."""
    moved = []
    for thing in in_the_way(layout):
        target = aside / thing.path.relative_to(layout.root)
        outside = link_out(layout.root, target)
        if outside is not None:  # (before 2026-12-07 moved there, out of the folder)
            raise PersistError(
                f"cannot move {thing.path} ({thing.what}) aside: {outside} leads out of the "
                "log folder, and nothing is moved through such a link; move or remove it "
                "by hand, the search index is derived from the journal and is built again"
            )
        ensure_private_dir(target.parent)
        n = 0
        while os.path.lexists(target):
            n += 1
            target = target.with_name(f"{thing.path.name}.{n}")
        try:
            os.rename(thing.path, target)
        except FileNotFoundError:
            continue  # another process moved it first
        except OSError as exc:
            raise PersistError(
                f"cannot move {thing.path} ({thing.what}) aside to {target}: "
                f"{exc.strerror or exc}; move or remove it by hand, the search index is "
                "derived from the journal and is built again"
            ) from None
        moved.append((thing, target))
    return moved
