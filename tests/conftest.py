"""Fixtures (real broker and recorder processes on loopback), and test kinds by folder.

Each folder is a kind with a marker of the same name: `unit` (in-process, no
child processes), `process` (real broker, recorder and CLI processes), `tui`
(the real app through `App.run_test()`), `e2e` (tmux: what a person sees).
`pytest -m unit` runs the fast ones alone.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support import PYTHON, Bus, Proc

KINDS = ("unit", "process", "tui", "e2e")

# Property tests draw new examples on every run here, where a counterexample they find
# becomes a fix and an `@example`; CI (`.ci/run` sets PERSIST_CI) draws the same ones
# each time, so that what lands does not hang on a draw.
settings.register_profile("ci", derandomize=True)
if os.environ.get("PERSIST_CI"):
    settings.load_profile("ci")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.parts
        kind = next((k for k in KINDS if k in parts[parts.index("tests") + 1 :]), None)
        if kind is None:
            raise pytest.UsageError(f"{item.nodeid}: every test lives in one of {KINDS}")
        item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(autouse=True)
def no_agent_sessions(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Searches index the agents' sessions: point every agent root at an empty folder so
    no test (nor its child processes) reads this machine's own ~/.claude, ~/.gemini or
    ~/.codex. A test wanting sessions passes its roots or sets these again."""
    empty = tmp_path_factory.mktemp("no-agents")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(empty / "claude"))
    monkeypatch.setenv("GEMINI_CLI_HOME", str(empty / "gemini"))
    # Gemini CLI's system settings and folder trust, which decide whether it runs hooks
    monkeypatch.setenv("GEMINI_CLI_SYSTEM_SETTINGS_PATH", str(empty / "gemini-system.json"))
    # Claude Code's managed settings (/etc/claude-code), which may switch hooks off: it
    # has no variable that moves them, this one is ours (recorder/hooks/claude_policy.py)
    monkeypatch.setenv("PERSIST_CLAUDE_MANAGED_DIR", str(empty / "claude-managed"))
    for name in ("GEMINI_CLI_TRUST_WORKSPACE", "GEMINI_RESTRICTED_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("GEMINI_CLI_TRUSTED_FOLDERS_PATH", raising=False)
    monkeypatch.setenv("CODEX_HOME", str(empty / "codex"))
    # recorders started by tests run no session monitor child (nothing to monitor, and one
    # more process per recorder on a loaded machine); its own tests turn it back on
    monkeypatch.setenv("PERSIST_MONITOR", "off")
    # nor a search indexer child (about a fifth of the CPU of the tests that record); the
    # tests of what it does (a warm index, renderings, terms, pruned words) turn it on
    monkeypatch.setenv("PERSIST_SEARCH_INDEX", "off")
    # the recorder's helper processes at normal priority: at idle priority they are not
    # scheduled while every core runs tests (`-n 3`), and tests waiting on them time out;
    # tests/process/test_background_priority.py checks the idle default
    monkeypatch.setenv("PERSIST_BACKGROUND_PRIORITY", "normal")


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    started: list[Proc] = []

    def start(*args: str, name: str = "proc") -> Proc:
        proc = Proc([PYTHON, "-m", "recorder.cli", *args], tmp_path / f"{name}-{len(started)}.out")
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.signal(signal.SIGKILL)
        proc.kill()


@pytest.fixture
def bus(procs: Callable[..., Proc], tmp_path: Path) -> Bus:
    return Bus(procs, tmp_path)
