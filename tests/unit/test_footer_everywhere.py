"""Every screen's footer is `AppFooter` (or `KeysFooter`, built on it): Textual's own
`Footer` kept every key it replaced alive, about 0.5 MB a search typed, for as long as
persist-tui ran (`tui/widgets/keys_footer.py`). A new screen using it directly would
bring that back, so no module but keys_footer.py may import it."""

from __future__ import annotations

import ast
from pathlib import Path

import tui

ALLOWED = {"widgets/keys_footer.py"}


def footer_imports(path: Path) -> list[str]:
    """Where `path` takes Textual's `Footer` (an import of it, or `widgets.Footer`)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("textual"):
            found += [f"line {node.lineno}" for a in node.names if a.name == "Footer"]
        elif isinstance(node, ast.Attribute) and node.attr == "Footer":
            found.append(f"line {node.lineno}")
    return found


def test_only_keys_footer_uses_textuals_footer() -> None:
    root = Path(tui.__file__).parent
    modules = sorted(root.rglob("*.py"))
    assert len(modules) > 20
    offenders = {
        str(p.relative_to(root)): where
        for p in modules
        if str(p.relative_to(root)) not in ALLOWED and (where := footer_imports(p))
    }
    assert offenders == {}, f"use tui.widgets.keys_footer.AppFooter instead: {offenders}"
    assert footer_imports(root / "widgets/keys_footer.py")  # the check sees an import
