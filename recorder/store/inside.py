"""Whether writing at a path of the log folder stays inside it: a symlink on the way
that leads out of the folder (`recovery/` linked elsewhere, say) would put what is
written there outside, where its modes are not ours to keep. `persist doctor` warns
about such links (`permissions.symlinks`) and `--fix` never writes through them."""

from __future__ import annotations

import os
from pathlib import Path


def link_out(root: Path, path: Path) -> str | None:
    """The first symlink among the folders from `root` down to `path`'s parent (not
    `path` itself: a link there is replaced or removed, never written through) that
    leads out of `root`, as `rel -> target`; None when there is none."""
    real_root = os.path.realpath(root)
    try:
        parts = path.relative_to(root).parts[:-1]
    except ValueError:
        return str(path)  # not under the log folder at all
    at = Path(root)
    for part in parts:
        at = at / part
        if not os.path.islink(at):
            continue
        target = os.path.realpath(at)
        if os.path.commonpath([real_root, target]) != real_root:
            return f"{at.relative_to(root)} -> {target}"
    return None
