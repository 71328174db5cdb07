"""README's list of `persist doctor` check names is every name the doctor can emit: the
names are collected from the code (each `Finding(...)`'s `check`), so a new check not
listed, or a listed one the doctor no longer has, fails here."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import orjson

import recorder
from recorder.doctor.model import Area
from tests.log_folder import healthy_folder

ROOT = Path(recorder.__file__).parent
README = ROOT.parent / "README.md"
# The names an f-string check makes, by its source text: a new one fails the test until
# its names are written here (and in README).
EXPANDED = {
    'f"caches.{kind}"': ["caches.idx", "caches.sha256", "caches.check", "caches.marks"],
    'f"journal.interrupted-{left.what}"': [  # `store.trash.Unfinished.what`
        "journal.interrupted-prune",
        "journal.interrupted-restore",
        "journal.interrupted-empty",
    ],
    "f\"permissions.{'files' if kind == 'f' else 'folders'}\"": [
        "permissions.files",
        "permissions.folders",
    ],
    'f"service.{health.state}"': ["service.stale", "service.degraded"],  # STALE, DEGRADED
    # `diagnose`'s checks that met a path they cannot read (`recorder.doctor.run.Check`)
    "check": [
        "journal.not-run",
        "checkpoints.not-run",
        "caches.not-run",
        "search.not-run",
        "sessions.not-run",
        "permissions.not-run",
        "disk.not-run",
        "service.not-run",
    ],
}


def code_names() -> set[str]:
    """Every check name a `Finding(...)` under recorder/ can carry: a string, an
    f-string of `EXPANDED`, or a parameter of the function it is in (`_more(area,
    check, count)`), whose callers' arguments are collected the same way."""
    trees = {p: (p.read_text(), ast.parse(p.read_text())) for p in sorted(ROOT.rglob("*.py"))}
    makers: dict[str, int] = {"Finding": 1}  # function -> the position of its check argument
    passed_on: set[int] = set()  # the Finding calls inside those functions
    for _source, tree in trees.values():
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef):
                continue
            params = [a.arg for a in func.args.args]
            for node in ast.walk(func):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Finding":
                    check = node.args[1] if len(node.args) > 1 else None
                    if isinstance(check, ast.Name) and check.id in params:
                        makers[func.name] = params.index(check.id)
                        passed_on.add(id(node))
    names: set[str] = set()
    unknown: list[str] = []
    for path, (source, tree) in trees.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            at = makers.get(getattr(node.func, "id", None) or "")
            if at is None:
                continue
            check = node.args[at] if len(node.args) > at else None
            check = next((k.value for k in node.keywords if k.arg == "check"), check)
            if isinstance(check, ast.Constant) and isinstance(check.value, str):
                names.add(check.value)
                continue
            text = ast.get_source_segment(source, check) if check is not None else None
            if text in EXPANDED:
                names.update(EXPANDED[text])
            elif id(node) not in passed_on:
                unknown.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: {text}")
    assert unknown == [], "check names the test cannot tell: add them to EXPANDED"
    return names


def readme_names() -> set[str]:
    """The names README's "Doctor and backups" lists as stable."""
    text = README.read_text()
    start = text.index("The `check` names are stable")
    listed = text[start : text.index("\n\n", start)]
    areas = "|".join(a.value for a in Area)
    return set(re.findall(rf"`((?:{areas})\.[a-z0-9-]+)`", listed))


def test_readme_lists_every_check_name_the_doctor_can_emit() -> None:
    code, listed = code_names(), readme_names()
    assert sorted(code - listed) == [], "emitted by the doctor, missing from README's list"
    assert sorted(listed - code) == [], "in README's list, emitted by no check"


def test_a_real_run_emits_only_names_the_code_collection_finds(tmp_path: Path) -> None:
    """The collection above misses nothing a real `persist doctor --json` prints."""
    folder = healthy_folder(tmp_path, session=False)
    done = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "doctor", "--json", "--dir", str(folder.root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    emitted = {f["check"] for f in orjson.loads(done.stdout)["findings"]}
    assert emitted and emitted <= code_names(), emitted - code_names()
