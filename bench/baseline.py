"""The code as it was at another commit, for benches that run it beside ours."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def extract(ref: str, into: Path, *paths: str) -> Path:
    """The tree at git `ref` (only `paths` of it, if given), extracted under `into`
    (created if missing; a `git archive`, so nothing in the repository changes)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, *paths], capture_output=True, check=True
    ).stdout
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into
