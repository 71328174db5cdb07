"""`persist COMMAND` builds the parser of its own group only (a faster start for the
recorder and the launcher); the table saying which group adds which command is right."""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys

from recorder.cli.main import COMMAND_GROUP, GROUPS, build_parser


def commands(parser: argparse.ArgumentParser) -> set[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_the_table_names_every_command_and_the_group_that_adds_it() -> None:
    assert commands(build_parser()) == set(COMMAND_GROUP)
    assert set(COMMAND_GROUP.values()) == set(GROUPS)
    for command, group in COMMAND_GROUP.items():
        alone = commands(build_parser(command))
        assert command in alone
        assert alone == {c for c, g in COMMAND_GROUP.items() if g == group}
    assert commands(build_parser("no-such-command")) == set(COMMAND_GROUP)  # its error lists all


def test_persist_record_does_not_load_the_other_groups() -> None:
    code = (
        "import sys; from recorder.cli.main import build_parser; build_parser('record'); "
        "print(sorted(m for m in sys.modules if m.startswith('recorder.cli.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {m.rsplit(".", 1)[1] for m in ast.literal_eval(out.stdout)}
    assert "record" in loaded
    assert not loaded & (set(GROUPS) - {"record"})
