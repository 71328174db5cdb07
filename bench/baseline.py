"""The code as it was at another commit, for benches that run it beside ours."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def run_in_tree(tree: Path, code: str, *args: str, timeout: float | None = None) -> Any:
    """Run `code` (`python -c`) in `tree` and return what its last line prints as JSON,
    a mapping whose "code" is `recorder.__file__`, which must be `tree`'s. Run in the
    tree (its folder and `PYTHONPATH`): `python -c` puts its working folder first on
    `sys.path`, so from the repository's root a baseline's run would import our code.
    A run over `timeout` seconds raises `subprocess.TimeoutExpired`."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=dict(os.environ, PYTHONPATH=str(tree)),
        capture_output=True,
        text=True,
        check=True,
        cwd=tree,
        timeout=timeout,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if not Path(result["code"]).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"a run meant for {tree} imported {result['code']}")
    return result
