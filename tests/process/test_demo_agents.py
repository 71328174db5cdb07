"""`persist demo --agents` through the real CLI: the hook flow with sample payloads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(240)


def test_demo_agents_runs_the_hooks_end_to_end(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    out = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "demo", "--agents", "--dir", str(root), "--no-tui"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert out.returncode == 0, out.stderr
    steps = [line for line in out.stderr.splitlines() if " exit " in line]
    assert len(steps) == 12 and all("exit 0," in s for s in steps), out.stderr
    assert "13 messages on the bus (agents.claude x9, agents.gemini x4)" in out.stderr
    assert "hook failures: 0" in out.stderr
    assert "Integrity: verified" in out.stderr
    # the settings the demo installed into are its own, and hold our entries
    settings = json.loads((root / "samples" / "claude-settings.json").read_text())
    assert "--restore=latest" in settings["hooks"]["SessionStart"][0]["hooks"][0]["command"]
    payloads = (root / "samples" / "claude-payloads.jsonl").read_text().splitlines()
    assert [json.loads(p)["hook_event_name"] for p in payloads][:3] == [
        "SessionStart",
        "UserPromptSubmit",
        "Stop",
    ]
    status = json.loads((root / "status.json").read_text())
    assert status["state"] == "stopped"  # the last agent out stopped it
