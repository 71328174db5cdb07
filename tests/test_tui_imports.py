"""Layering: the TUI never loads zmq; the store and search never load textual or zmq."""

from __future__ import annotations

import subprocess
import sys

import pytest


def loaded_after(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", ["tui.app", "tui.cli", "tui.screens.main"])
def test_tui_never_imports_zmq(module: str) -> None:
    mods = loaded_after(module)
    assert module == "tui.cli" or "textual" in mods
    assert not {m for m in mods if m == "zmq" or m.startswith("zmq.")}


@pytest.mark.parametrize("module", ["recorder.store.reader", "recorder.search.scan", "tui", "tui.demo"])
def test_readers_never_import_textual_or_zmq(module: str) -> None:
    mods = loaded_after(module)
    assert not {m for m in mods if m.split(".")[0] in ("textual", "zmq")}
