"""Ctrl-Z under `persist launch` in a real terminal (tmux, an interactive bash): the
shell gets the terminal back when the agent stops, and `fg` continues the agent."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.support import Tmux, endpoints

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]
PERSIST = Path(sys.executable).parent / "persist"


def shell_with_launch(tmp_path: Path, agent: str) -> tuple[Tmux, str]:
    """An interactive bash in tmux (job control on), and the launch line to type."""
    script = tmp_path / "agent"
    script.write_text(agent)
    script.chmod(0o755)
    eps = endpoints()
    line = (
        f"{PERSIST} launch --agent coder --log-dir {tmp_path / 'logs'} "
        f"--broker {eps['broker']} --publish-endpoint {eps['publish_endpoint']} "
        f"--embedded yes -- {script}"
    )
    tmux = Tmux("env PS1='PROMPT$ ' PERSIST_MONITOR=off bash --norc -i", tmp_path, width=200)
    tmux.wait_for("PROMPT$")
    return tmux, line


def test_an_agent_that_stops_itself_gives_the_shell_back_and_fg_continues_it(
    tmp_path: Path,
) -> None:
    """Claude Code handles Ctrl-Z itself (its terminal is raw): it sends itself SIGSTOP.
    The launcher kept the terminal, the shell waiting on it: no prompt, keys unanswered."""
    tmux, line = shell_with_launch(
        tmp_path,
        "#!/bin/bash\necho agent-stopping-itself\nkill -STOP $$\necho agent-resumed\nexit 5\n",
    )
    try:
        tmux.keys(line, "Enter")
        tmux.wait_for("Welcome, coder")
        tmux.keys("f")  # start fresh
        tmux.wait_for("agent-stopping-itself")
        screen = tmux.wait_for("Stopped", timeout=20)  # bash: [1]+ Stopped ...
        assert screen.rstrip().endswith("PROMPT$"), screen
        tmux.keys("fg; echo rc=$?", "Enter")
        screen = tmux.wait_for("rc=5", timeout=60)  # the agent's own exit code
        assert "agent-resumed" in screen, screen
    finally:
        tmux.kill()


def test_ctrl_z_at_a_cooked_terminal_stops_the_job_and_fg_continues_it(tmp_path: Path) -> None:
    """The terminal's SIGTSTP reaches the agent and the launcher alike: the job stops as
    one, and the agent reads the next line after `fg`."""
    tmux, line = shell_with_launch(
        tmp_path, "#!/bin/bash\necho agent-reading\nread -r x\necho agent-got-$x\n"
    )
    try:
        tmux.keys(line, "Enter")
        tmux.wait_for("Welcome, coder")
        tmux.keys("f")  # start fresh
        tmux.wait_for("agent-reading")
        tmux.keys("C-z")
        screen = tmux.wait_for("Stopped", timeout=20)
        assert screen.rstrip().endswith("PROMPT$"), screen
        tmux.keys("fg; echo rc=$?", "Enter")
        tmux.wait_for("agent-reading\n", timeout=10)  # bash prints the job on fg
        tmux.keys("hello", "Enter")
        screen = tmux.wait_for("rc=0", timeout=60)
        assert "agent-got-hello" in screen, screen
    finally:
        tmux.kill()
