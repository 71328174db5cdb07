"""The layering contracts: declared in pyproject (import-linter), checked here and in CI.

`lint-imports` checks every import statement, including those inside functions.
The fresh-interpreter checks below add what a static check cannot see: what
importing a module really loads.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def tops(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_import_contracts_hold() -> None:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        found = shutil.which("lint-imports")
        if found is None:
            pytest.skip("import-linter is not installed (pip install -e '.[test]')")
        exe = Path(found)
    out = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_the_publisher_agents_embed_loads_only_the_bus() -> None:
    mods = loaded_after("import recorder.bus.publisher")
    ours = {m for m in mods if m.startswith("recorder.")}
    assert ours <= {
        "recorder.bus",
        "recorder.bus.publisher",
        "recorder.bus.envelope",
        "recorder.bus.endpoints",
        "recorder.errors",
    }, ours
    assert not tops(mods) & {"textual", "rich", "tui", "psutil"}


def test_the_launcher_is_light() -> None:
    mods = loaded_after(
        "from recorder.launch.launcher import PersistenceLauncher; "
        "from recorder import PersistenceLauncher as P; assert P is PersistenceLauncher"
    )
    assert not tops(mods) & {"zmq", "textual", "rich", "tui", "psutil"}
    assert "recorder.daemon.core" not in mods and "recorder.bus.receiver" not in mods


@pytest.mark.parametrize(
    "module",
    [
        "recorder.store.reader",
        "recorder.store.checkpoints",
        "recorder.store.status",
        "recorder.daemon.core",
        "recorder.search.engine",
        "recorder.search.indexer",
        "recorder.export.restore",
        "recorder.export.writers",
        "recorder.daemon.systemd",
        "recorder.launch.demo",
        "recorder.cli.main",
    ],
)
def test_store_daemon_core_and_tools_never_load_zmq_or_textual(module: str) -> None:
    assert not tops(loaded_after(f"import {module}")) & {"zmq", "textual", "rich", "tui"}


@pytest.mark.parametrize("module", ["tui.app", "tui.cli", "tui.screens.main"])
def test_the_tui_never_loads_zmq(module: str) -> None:
    mods = loaded_after(f"import {module}")
    assert module == "tui.cli" or "textual" in mods
    assert "zmq" not in tops(mods)


def test_the_tuis_first_screen_loads_no_search_engine_or_agent_reader() -> None:
    """The first screen needs neither: they load when first searched or listed (about
    0.1 s of imports off every start)."""
    mods = loaded_after("import tui.app, tui.screens.main")
    heavy = {"recorder.search.engine", "recorder.search.indexer", "recorder.search.hits"}
    heavy |= {"recorder.search.sessions", "recorder.sources.discover", "rapidfuzz"}
    heavy |= {"recorder.sources.claude", "recorder.sources.gemini", "recorder.sources.codex"}
    assert not mods & heavy
    assert "tui.panes.search" in mods and "tui.panes.agent_sources" in mods


def test_the_search_engine_is_imported_once_the_first_screen_is_up(tmp_path: Path) -> None:
    """...on a thread, so the first search does not wait for the import either."""
    code = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from tui.app import create_app\n"
        "async def main():\n"
        f"    app = create_app(Path({str(tmp_path)!r}), live=False)\n"
        "    async with app.run_test(size=(80, 24)) as pilot:\n"
        "        while app.ready_at is None:\n"
        "            await asyncio.sleep(0.01)\n"
        "        await app.workers.wait_for_complete()\n"
        "        print('recorder.search.engine' in sys.modules)\n"
        "        app.exit()\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "True"
