"""The render cache's folders of segments no longer in the journal, found and removed.

A segment's renderings (`render_cache/seg-NNNNNN/`, `recorder.export.render_cache`)
are derived data of its messages: once a prune moves the segment to the trash they are
never used (no export reads a trashed segment), and once `trash empty` deletes it they
are the last copy of its messages' text. A prune drops them (a `trash restore` puts
the segment back without them: the recorder's indexer renders it again when idle),
and `trash empty` drops those of the segments it deletes (kept by a version before
2026-12-07's prune). Here, below the export layer, so the retention code reaches it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from recorder.store.layout import Layout, list_segments, segment_number

PREFIX = "seg-"


def segment_folder(folder: Path, segment: int) -> Path:
    """Where the renderings of one segment are in the render cache `folder`."""
    return folder / f"{PREFIX}{segment:06d}"


def folder_number(name: str) -> int | None:
    """The segment a render cache folder name is of (None: not a segment's folder)."""
    digits = name[len(PREFIX) :]
    return int(digits) if name.startswith(PREFIX) and digits.isdigit() else None


def in_journal(layout: Layout) -> set[int]:
    """Numbers of the segments in segments/ now, whatever their form."""
    return {segment_number(p.name) or 0 for p in list_segments(layout)}


def orphans(layout: Layout) -> list[Path]:
    """Render cache folders of segments no longer in segments/ (pruned, emptied, or
    removed by hand), in name order. OSError when the cache cannot be listed."""
    live = in_journal(layout)
    try:
        found = list(os.scandir(layout.render_cache))
    except FileNotFoundError:
        return []
    out = []
    for entry in found:
        number = folder_number(entry.name)
        if number is not None and number not in live and entry.is_dir(follow_symlinks=False):
            out.append(Path(entry.path))
    return sorted(out)


def drop(layout: Layout, numbers: Iterable[int]) -> list[int]:
    """Remove the renderings of the segments `numbers` that are not in segments/ (one
    that is, a trash restore put back meanwhile, keeps them); returns those removed.
    Best effort: derived data, and a leftover is named by `persist doctor`."""
    live = in_journal(layout)
    gone = []
    for number in sorted(set(numbers) - live):
        path = segment_folder(layout.render_cache, number)
        if path.is_dir() and not path.is_symlink():
            with contextlib.suppress(OSError):
                shutil.rmtree(path)
                gone.append(number)
    return gone


def drop_orphans(layout: Layout) -> list[Path]:
    """Remove every render cache folder of a segment not in segments/; returns them.
    OSError when one cannot be removed."""
    removed = []
    for path in orphans(layout):
        shutil.rmtree(path)
        removed.append(path)
    return removed
