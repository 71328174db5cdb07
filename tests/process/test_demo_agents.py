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
        umask=0o022,  # the usual default: files 0644 unless made 0600 on purpose
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
    # every file it made 0600, every folder 0700, whatever the umask (before 2026-12-07
    # samples/*-payloads.jsonl and *-session.jsonl were 0644: the first doctor warned)
    loose = [
        f"{p.relative_to(root)} {p.stat().st_mode & 0o777:o}"
        for p in [root, *root.rglob("*")]
        if not p.is_symlink() and p.stat().st_mode & 0o777 != (0o700 if p.is_dir() else 0o600)
    ]
    assert loose == []
    doctor = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "doctor", "--json", "--dir", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    modes = [f for f in json.loads(doctor.stdout)["findings"] if f["area"] == "permissions"]
    assert [f["severity"] for f in modes] == ["ok"], modes
