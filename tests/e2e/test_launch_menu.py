"""The launch menu in a real terminal (tmux): the menu shows, a choice is made, the agent
gets the terminal."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from recorder.store.layout import Layout
from recorder.store.reader import open_store
from recorder.store.status import assess
from tests.support import FAKE_AGENT, Tmux, endpoints, healthy, wait_for
from tests.tui_fixtures import demo_dir


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_launch_menu_on_a_terminal_then_the_agent_gets_the_terminal(tmp_path: Path) -> None:
    log_dir = demo_dir(tmp_path)
    eps = endpoints()
    report, rc = tmp_path / "report.json", tmp_path / "rc"
    persist = Path(sys.executable).parent / "persist"
    command = (
        f"{persist} launch --agent coder --log-dir {log_dir} --broker {eps['broker']} "
        f"--publish-endpoint {eps['publish_endpoint']} --embedded yes -- "
        f"{sys.executable} {FAKE_AGENT} {report}; echo $? > {rc}"
    )
    tmux = Tmux(command, tmp_path)
    try:
        tmux.wait_for("Welcome back, coder")
        tmux.wait_for("auto #7")
        assert healthy(log_dir)  # the recorder was started before the menu
        tmux.keys("c")  # continue from the latest checkpoint
        tmux.wait_for("In range:")
        tmux.keys("Enter")
        wait_for(lambda: rc.exists() and rc.read_text().strip(), timeout=30, what="exit code")
    finally:
        tmux.kill()
    assert rc.read_text().strip() == "0"
    data = json.loads(report.read_text())
    latest = open_store(log_dir).checkpoints()
    assert data["env"]["PERSIST_CHECKPOINT"] in {c.id for c in latest}
    assert data["env"]["PERSIST_CHOICE"] == "checkpoint"
    assert data["stdin_tty"] and data["stdout_tty"]  # the terminal was handed over
    assert data["bundle"]["manifest"]["integrity"]["gaps"] == 1
    assert assess(Layout(log_dir)).state == "stopped"


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_launch_menu_uses_the_whole_terminal(tmp_path: Path) -> None:
    """stdout is a pipe to the launcher: the menu still measures the real terminal
    (it drew at 80x24 in a 120x36 pane, its footer cut to "? Hel")."""
    log_dir = demo_dir(tmp_path)
    eps = endpoints()
    persist = Path(sys.executable).parent / "persist"
    command = (
        f"{persist} launch --agent coder --log-dir {log_dir} --broker {eps['broker']} "
        f"--publish-endpoint {eps['publish_endpoint']} --embedded yes -- true"
    )
    tmux = Tmux(command, tmp_path, width=120, height=36)
    try:
        tmux.wait_for("auto #7")
        screen = tmux.wait_for("Quit")
        lines = screen.split("\n")
        footer = next(line for line in reversed(lines) if line.strip())
        assert lines.index(footer) == 35, screen  # the footer is on the last line
        assert "Help" in footer, footer
        assert max(len(line.rstrip()) for line in lines) > 80, screen
        tmux.keys("p")  # the browser, with its checkpoints, at the same size
        screen = tmux.wait_for("1 Checkpoints")
        assert any(len(line.rstrip()) > 100 for line in screen.split("\n")), screen
        tmux.keys("q")
    finally:
        tmux.kill()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_launch_menu_resumes_a_claude_session_with_the_command_it_showed(tmp_path: Path) -> None:
    """`persist launch -- claude` in a project: its session on the menu, the command shown
    in the confirmation, then that command run (a fake `claude` records its argv)."""
    from tests.process.test_launch_sessions import fake_agents
    from tests.session_fixtures import ClaudeSession, text

    proj = tmp_path / "proj"
    proj.mkdir()
    c = ClaudeSession(tmp_path / "claude", cwd=str(proj))
    c.user("fix the flaky test")
    c.assistant(text("done"))
    c.write()
    eps = endpoints()
    rc, log = tmp_path / "rc", tmp_path / "agent.log"
    persist = Path(sys.executable).parent / "persist"
    command = (
        f"CLAUDE_CONFIG_DIR={tmp_path / 'claude'} FAKE_AGENT_LOG={log} "
        f"PATH={fake_agents(tmp_path)}:$PATH {persist} launch --log-dir {tmp_path / 'logs'} "
        f"--broker {eps['broker']} --publish-endpoint {eps['publish_endpoint']} --embedded yes "
        f"-- claude --verbose; echo $? > {rc}"
    )
    tmux = Tmux(command, proj, width=120, height=36)
    try:
        tmux.wait_for("Resume Claude Code: fix the flaky test")
        tmux.keys("Enter")  # the newest session is the default
        tmux.wait_for("resume  done")
        tmux.keys("Enter")  # its latest point
        shown = tmux.wait_for("Runs  cd")
        flat = "".join(line.strip(" │") for line in shown.splitlines()).replace(" ", "")
        assert f"&&claude--resume{c.session_id}--verbose" in flat, shown  # wrapped in the box
        tmux.keys("y")
        wait_for(lambda: rc.exists() and rc.read_text().strip(), timeout=30, what="exit code")
    finally:
        tmux.kill()
    assert rc.read_text().strip() == "3"  # the fake agent's exit code
    assert (tmp_path / "agent.log.claude").read_text().splitlines() == [
        str(proj), "--resume", c.session_id, "--verbose",
    ]  # fmt: skip
