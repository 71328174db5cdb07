"""A terminal that cannot draw (TERM=dumb: Emacs' M-x shell, some IDE consoles; TERM not
set) under `persist launch` and `persist-tui`, in a real terminal (tmux)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.support import FAKE_AGENT, Tmux, endpoints, wait_for
from tests.tui_fixtures import demo_dir

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]
BIN = Path(sys.executable).parent
TERMS = {"TERM=dumb": ("env TERM=dumb", "TERM=dumb"), "no TERM": ("env -u TERM", "TERM is not set")}


@pytest.mark.parametrize("term", list(TERMS))
def test_a_launch_on_a_terminal_that_cannot_draw_applies_the_no_terminal_policy(
    tmp_path: Path, term: str
) -> None:
    """Before 2026-12-07 the full-screen menu was drawn anyway: some 200 KB of escape
    sequences reached an Emacs shell buffer."""
    env, why = TERMS[term]
    log_dir = demo_dir(tmp_path)
    eps = endpoints()
    report, rc, typescript = tmp_path / "report.json", tmp_path / "rc", tmp_path / "typescript"
    launch = (
        f"{env} {BIN / 'persist'} launch --agent coder --log-dir {log_dir} "
        f"--broker {eps['broker']} --publish-endpoint {eps['publish_endpoint']} --embedded yes "
        f"-- {sys.executable} {FAKE_AGENT} {report}"
    )
    # what reaches the terminal, byte for byte, through script(1) inside the pane
    tmux = Tmux(
        f"script -qfec '{launch}' {typescript}; echo $? > {rc}; sleep 60", tmp_path, width=250
    )
    try:
        wait_for(lambda: rc.exists() and rc.read_text().strip(), timeout=60, what="exit code")
        screen = tmux.screen()
    finally:
        tmux.kill()
    assert rc.read_text().strip() == "0", screen
    flat = " ".join(screen.split())
    assert (
        f"persist: no menu ({why}: this terminal cannot draw the menu); no-terminal policy "
        "'fresh': starting fresh"
    ) in flat, screen
    assert json.loads(report.read_text())["env"]["PERSIST_CHOICE"] == "fresh"
    drawn = typescript.read_bytes()
    assert b"\x1b[?1049h" not in drawn and b"\x1b[38;2;" not in drawn, len(drawn)
