"""`persist launch` ended by a signal while its menu is on a real terminal (tmux): the menu
ends with it and the terminal is given back as it was."""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path

import pytest

from recorder.store.layout import Layout
from recorder.store.status import assess
from tests.support import Tmux, endpoints, wait_for
from tests.tui_fixtures import demo_dir

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]
PERSIST = Path(sys.executable).parent / "persist"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_launch_signalled_while_its_menu_shows_ends_the_menu(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """Before 2026-12-07 the launcher exited (143, 129) with the menu still running and
    drawing on the terminal it had put back in cooked mode: `q` did nothing, the menu
    stayed until killed."""
    import psutil

    log_dir = demo_dir(tmp_path)
    eps = endpoints()
    pid, rc = tmp_path / "pid", tmp_path / "rc"
    launch = (
        f"{PERSIST} launch --agent coder --log-dir {log_dir} --broker {eps['broker']} "
        f"--publish-endpoint {eps['publish_endpoint']} --embedded yes -- true"
    )
    tmux = Tmux(f"bash -c 'echo $$ > {pid}; exec {launch}'; echo $? > {rc}; sleep 60", tmp_path)
    menus: list[psutil.Process] = []
    try:
        tmux.wait_for("Welcome back, coder")
        launcher = psutil.Process(int(pid.read_text()))
        menus = [p for p in launcher.children() if "tui.cli" in " ".join(p.cmdline())]
        assert len(menus) == 1, launcher.children()
        launcher.send_signal(sig)
        wait_for(lambda: rc.exists() and rc.read_text().strip(), timeout=30, what="exit code")
        assert rc.read_text().strip() == str(128 + sig)
        _gone, left = psutil.wait_procs(menus, timeout=5)
        assert left == [], "the menu ran on"
        screen = tmux.wait_for("recorder stopped")
        assert "Welcome back" not in screen, screen  # the alternate screen was left
    finally:
        for menu in menus:
            if menu.is_running():
                menu.kill()
        tmux.kill()
    assert not assess(Layout(log_dir)).running
