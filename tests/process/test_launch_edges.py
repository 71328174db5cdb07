"""`persist launch` at its edges: what stands where its agents/ folder goes, a recorder that
dies under the agent, a launch lock held at the agent's exit, a terminal that cannot draw
the menu, and signals while the menu is on screen."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.process.test_launcher import run_launch
from tests.support import endpoints

pytestmark = pytest.mark.timeout(120)


def test_a_file_where_the_agents_folder_goes_is_one_line_naming_the_mv(tmp_path: Path) -> None:
    """It was `persist: launch: File exists (.../agents)`, naming nothing to do."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir(mode=0o700)
    (log_dir / "agents").write_text("someone's")
    report = tmp_path / "report.json"
    proc = run_launch(log_dir, endpoints(), agent_args=[str(report)])
    _out, err = proc.communicate(timeout=60)
    agents = log_dir / "agents"
    assert proc.returncode == 1
    assert err.splitlines() == [
        f"persist: cannot start persistence: {agents} is a file, not a folder: launchers "
        f"register their agents there; move it out of the way (mv {agents} {agents}.aside) "
        "and run this again"
    ]
    assert not report.exists() and (log_dir / "agents").read_text() == "someone's"
