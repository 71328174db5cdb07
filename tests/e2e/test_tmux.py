"""End to end: the real `persist-tui` command in tmux (send-keys, capture-pane)."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import orjson
import pytest

from tests.support import Tmux
from tests.tui_fixtures import demo_dir
from tui.cli import EXIT_CANCELLED, EXIT_CHOSEN

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]
BIN = Path(sys.executable).parent / "persist-tui"


def wait_file(path: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text()
        time.sleep(0.1)
    raise AssertionError(f"{path} was never written")


def run_in_tmux(tmp_path: Path, args: str) -> tuple[Tmux, Path, Path]:
    out, rc = tmp_path / "stdout.json", tmp_path / "rc"
    cmd = f"{BIN} {args} > {out}; echo $? > {rc}"
    return Tmux(cmd, tmp_path), out, rc


def test_restore_prints_selection_on_stdout(tmp_path: Path) -> None:
    root = demo_dir(tmp_path)
    tmux, out, rc = run_in_tmux(tmp_path, f"--log-dir {root} --print")
    try:
        screen = tmux.wait_for("release candidate approved")
        assert "auto #7" in screen and "Checkpoints" in screen
        tmux.keys("j")
        tmux.keys("r")
        tmux.wait_for("matches the checkpoint digest (")
        tmux.keys("Enter")
        assert int(wait_file(rc)) == EXIT_CHOSEN
    finally:
        tmux.kill()
    data = orjson.loads(out.read_bytes())
    assert data["kind"] == "checkpoint" and data["label"] == "release candidate approved"
    assert data["verified"] is True and data["log_dir"] == str(root)
    assert set(data["position"]) == {"segment", "offset", "seq"}
    assert out.read_text().count("\n") == 1  # one JSON object, nothing else


def test_restore_without_print_writes_the_bundle_and_says_where(tmp_path: Path) -> None:
    """The README says Enter restores: without --print that wrote nothing (exit 0)."""
    root = demo_dir(tmp_path)
    tmux, out, rc = run_in_tmux(tmp_path, f"--log-dir {root}")
    try:
        tmux.wait_for("release candidate approved")
        tmux.keys("j")
        tmux.keys("Enter")  # the conversation around it
        tmux.wait_for("conversation  ◆")  # its status line (the preview names it too)
        tmux.keys("r")  # restore the checkpoint it was opened from
        tmux.wait_for("matches the checkpoint digest (")
        tmux.keys("Enter")
        assert int(wait_file(rc)) == EXIT_CHOSEN
    finally:
        tmux.kill()
    text = out.read_text()
    bundles = list((root / "restore").iterdir())
    assert len(bundles) == 1, text
    bundle = bundles[0]
    manifest = orjson.loads((bundle / "manifest.json").read_bytes())
    assert manifest["checkpoint"]["label"] == "release candidate approved"
    assert f"{bundle}/" in text and "verified" in text
    assert f"PERSIST_RESTORE_FILE={bundle / 'conversation.jsonl'}" in text
    assert (bundle / "conversation.jsonl").stat().st_size > 0


def test_launch_fresh_and_quit(tmp_path: Path) -> None:
    root = demo_dir(tmp_path)
    tmux, out, rc = run_in_tmux(tmp_path, f"--log-dir {root} --launch --agent coder --json")
    try:
        tmux.wait_for("Welcome back, coder")
        tmux.wait_for("auto #7")
        tmux.keys("f")
        assert int(wait_file(rc)) == EXIT_CHOSEN
    finally:
        tmux.kill()
    assert orjson.loads(out.read_bytes())["kind"] == "fresh"

    sub = tmp_path / "quit"
    sub.mkdir()
    tmux, out, rc = run_in_tmux(sub, f"--log-dir {root} --print")
    try:
        tmux.wait_for("auto #7")
        tmux.keys("q")
        assert int(wait_file(rc)) == EXIT_CANCELLED
    finally:
        tmux.kill()
    assert out.read_bytes() == b""


def test_a_restore_in_a_log_folder_not_named_in_utf8_says_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log folder whose name is not UTF-8 (a Latin-1 é): the bundle was written, then
    saying where was a UnicodeEncodeError traceback, exit 1, on a UTF-8 locale's stdout.
    It is printed as the bytes the name is."""
    root = demo_dir(tmp_path).rename(tmp_path / "caf\udce9")
    monkeypatch.setenv("PERSIST_LOG_DIR", str(root))  # the tmux server's, so its shell's
    monkeypatch.setenv("PYTHONIOENCODING", "utf-8:strict")  # what a UTF-8 locale gives
    tmux, out, rc = run_in_tmux(tmp_path, "")
    try:
        tmux.wait_for("release candidate approved")
        tmux.keys("j")
        tmux.keys("r")
        tmux.wait_for("matches the checkpoint digest (")
        tmux.keys("Enter")
        assert int(wait_file(rc)) == EXIT_CHOSEN, out.read_bytes()
    finally:
        tmux.kill()
    (bundle,) = (root / "restore").iterdir()
    assert os.fsencode(bundle) + b"/" in out.read_bytes()
