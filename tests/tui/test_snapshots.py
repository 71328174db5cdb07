"""Snapshot tests: every screen at a fixed size, on the fixed demo journal and clock.

The scenes are the ones `python -m tests.screenshots` renders for the README.
Each scene's log folder is under pytest's tmp_path; the app shows it as
`SHOWN_DIR`, so the images do not depend on where it is. Update with
`pytest tests/tui/test_snapshots.py --snapshot-update` after looking at the report.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.demo_journal import build_demo
from tests.screenshots import SCENES, Scene, prepare

pytestmark = pytest.mark.timeout(180)
BY_NAME = {s.name: s for s in SCENES}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo(tmp_path_factory.mktemp("snap") / "demo")


def check(snap_compare, scene: Scene, tmp_path: Path, demo: Path) -> None:
    app = prepare(scene, tmp_path, demo)
    assert snap_compare(app, terminal_size=scene.size, run_before=scene.steps)


class TestCheckpoints:
    @pytest.mark.parametrize(
        "name", ["checkpoints", "checkpoints-80x24", "corrupt", "restore", "restore-80x24"]
    )
    def test_screen(self, snap_compare, tmp_path: Path, demo: Path, name: str) -> None:
        check(snap_compare, BY_NAME[name], tmp_path, demo)


class TestMessages:
    @pytest.mark.parametrize(
        "name", ["search", "recent", "detail", "conversation", "conversation-80x24"]
    )
    def test_screen(self, snap_compare, tmp_path: Path, demo: Path, name: str) -> None:
        check(snap_compare, BY_NAME[name], tmp_path, demo)


class TestDiagnostics:
    @pytest.mark.parametrize("name", ["diagnostics", "diagnostics-stopped"])
    def test_screen(self, snap_compare, tmp_path: Path, demo: Path, name: str) -> None:
        check(snap_compare, BY_NAME[name], tmp_path, demo)


class TestLaunchHelpEmpty:
    @pytest.mark.parametrize("name", ["launch", "help", "empty"])
    def test_screen(self, snap_compare, tmp_path: Path, demo: Path, name: str) -> None:
        check(snap_compare, BY_NAME[name], tmp_path, demo)


class TestAgentSessions:
    @pytest.mark.parametrize("name", ["launch-claude", "resume"])
    def test_screen(self, snap_compare, tmp_path: Path, demo: Path, name: str) -> None:
        check(snap_compare, BY_NAME[name], tmp_path, demo)


def test_every_scene_is_snapshotted() -> None:
    covered = {
        "launch-claude",
        "resume",
        "checkpoints",
        "checkpoints-80x24",
        "corrupt",
        "restore",
        "restore-80x24",
        "search",
        "recent",
        "detail",
        "conversation",
        "conversation-80x24",
        "diagnostics",
        "diagnostics-stopped",
        "launch",
        "help",
        "empty",
    }
    assert covered == set(BY_NAME)
