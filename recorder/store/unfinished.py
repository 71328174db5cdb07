"""The mark `persist restore-backup` leaves in its DEST_DIR until every file is restored
and verified (`.restore-backup-unfinished`, JSON: the backup it restores and that
backup's manifest).

A folder holding it is part of a backup, not a journal: nothing records, checkpoints,
prunes, compacts or protects sessions there (the run that finishes the restore empties
the folder first), and `persist doctor` names the mark instead of what is missing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, NamedTuple

from recorder.errors import PersistError
from recorder.store.fsutil import read_regular

# Light: every agent hook looks for the mark (`marked`) before it writes into a folder.

MARKER = ".restore-backup-unfinished"
_OLD_TEXT = re.compile(rb"\Apersist restore-backup (.+) did not finish here")  # before JSON


class UnfinishedRestore(PersistError):
    """The folder holds the mark of a `persist restore-backup` that did not finish."""


class RestoreMark(NamedTuple):
    src: str | None  # the backup being restored (None: the mark cannot be read)
    manifest: Any  # that backup's manifest when the restore started (JSON), or None


def marked(root: Path | str) -> bool:
    """Whether `root` holds the mark (one `lstat`)."""
    return os.path.lexists(os.path.join(root, MARKER))


def read_mark(root: Path) -> RestoreMark | None:
    """The mark in `root`, or None when there is none."""
    import orjson

    path = Path(root) / MARKER
    if not os.path.lexists(path):
        return None
    try:
        data = read_regular(path)[0]  # a named pipe is never waited on
    except OSError:
        return RestoreMark(None, None)
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        old = _OLD_TEXT.match(data)
        return RestoreMark(old.group(1).decode(errors="replace") if old else None, None)
    if not isinstance(body, dict):
        return RestoreMark(None, None)
    src = body.get("src")
    return RestoreMark(src if isinstance(src, str) else None, body.get("manifest"))


def finish_command(root: Path, mark: RestoreMark) -> str:
    """The command that finishes the restore (SRC when the mark does not name it)."""
    import shlex

    src = shlex.quote(mark.src) if mark.src else "SRC"
    return f"persist restore-backup {src} {shlex.quote(str(root))}"


def refuse_unfinished_restore(root: Path) -> None:
    """Raise `UnfinishedRestore` (one line, with the command that finishes it) when
    `root` holds the mark; called before anything writes into a log folder."""
    mark = read_mark(root)
    if mark is not None:
        raise UnfinishedRestore(
            f"{root} holds an unfinished restore ({MARKER}): nothing is written there until "
            f"it is finished: {finish_command(root, mark)}"
        )


__all__ = [
    "MARKER",
    "RestoreMark",
    "UnfinishedRestore",
    "finish_command",
    "read_mark",
    "refuse_unfinished_restore",
]
