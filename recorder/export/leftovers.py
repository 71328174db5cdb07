"""What a killed `persist restore` or `persist export -o FILE` leaves behind, found and
removed once the process that made it is gone (a live one's is never touched).

A restore builds its bundle in `restore/.building-<checkpoint>-<pid>-t<ticks>-<ns>/` and
renames it into place; killed (SIGKILL, the OOM killer, a power cut) it leaves that
folder, partial files tens of MB big (a bundle being removed, `restore/.removing-<name>-
<pid>-t<ticks>-<ns>/`, likewise). An export to FILE writes
`.FILE.<thread>.t<ticks>.<pid>.tmp` beside it (`AtomicFile`) and, rendered in parallel,
a folder of pieces `.persist-pieces-<pid>-t<ticks>-<random>/` there too. Each name
carries its maker's PID and start ticks since boot (`t<ticks>`, where there is /proc;
names without them, from before, are read too); one whose process is gone (or whose PID
now belongs to another process: a reused PID, `writer_may_live`) is stale. The next
restore removes the stale work folders (`persist doctor` names them, `--fix` removes
them); the next export to the same FILE removes that file's stale temp file and the
stale folders of pieces beside it.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from recorder.store.fsutil import remove_stale_temp_files, stale_entries, writer_tag
from recorder.store.layout import Layout

BUILDING = ".building-"  # a restore's work folder in restore/
PIECES = ".persist-pieces-"  # a parallel rendering's scratch folder
# the maker's PID and (when there) its `writer_tag()`'s start ticks, for `stale_entries`
# (a bundle being removed, `store.bundles.REMOVING`, is named as one being built)
_BUILDING_NAME = re.compile(
    r"\A\.(?:building|removing)-.+-(?P<pid>\d+)-(?:t(?P<ticks>\d+)-)?\d+\Z", re.DOTALL
)
_PIECES_NAME = re.compile(r"\A\.persist-pieces-(?P<pid>\d+)-(?:t(?P<ticks>\d+)-)?.+\Z", re.DOTALL)


def maker() -> str:
    """`<pid>-` and, where there is /proc, `t<start ticks>-`: what the names of the
    folders this process works in carry, so that `writer_may_live` tells it from a
    process that took its PID since without the wall clock (which steps)."""
    tag = writer_tag()
    return f"{os.getpid()}-{tag}-" if tag else f"{os.getpid()}-"


def pieces_prefix() -> str:
    """The name a scratch folder of pieces starts with: this process's `maker()`."""
    return f"{PIECES}{maker()}"


def stale_builds(layout: Layout) -> list[Path]:
    """The work folders in `restore/` that killed restores left."""
    return stale_entries(layout.restore, _BUILDING_NAME, folders=True)


def remove(folders: list[Path]) -> list[Path]:
    """Remove each folder (what it holds is partial: nothing of it is used); returns
    those gone afterwards."""
    gone = []
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
        if not os.path.lexists(folder):
            gone.append(folder)
    return gone


def remove_stale_builds(layout: Layout) -> list[Path]:
    """Remove the work folders killed restores left in `restore/`."""
    return remove(stale_builds(layout))


def remove_stale_export_leftovers(output: Path) -> list[Path]:
    """Remove what killed exports to `output` left beside it: its temp files and the
    folders of pieces of processes that are gone (another FILE's temp files, and any
    file of another program, are never touched)."""
    removed = remove(stale_entries(output.parent, _PIECES_NAME, folders=True))
    # `AtomicFile`'s name for it: `.FILE.<thread>[.t<start ticks>].<pid>.tmp`
    temp = rf"\A\.{re.escape(output.name)}\.\d+(?:\.t(?P<ticks>\d+))?\.(?P<pid>\d+)\.tmp\Z"
    return removed + remove_stale_temp_files(output.parent, re.compile(temp, re.DOTALL))
