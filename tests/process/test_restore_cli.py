"""`persist restore` from the shell."""

from __future__ import annotations

import json
from pathlib import Path

from tests.demo_journal import restore_journal as journal


def test_persist_restore_command(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = tmp_path / "logs"
    cp, _ = journal(root, gap=True)
    out = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "restore", "latest", "--log-dir", str(root)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert cp.id in out.stdout and "warning: 1 gap, 3 messages known lost" in out.stdout
    data = json.loads((root / "restore" / cp.id / "manifest.json").read_text())
    assert data["integrity"]["gaps"] == 1
