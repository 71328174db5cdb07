"""Polish: one Quit in the palette, palette entries that act (export, copy, checkpoint
now), --version on both commands, help text for every option and examples."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.screenshots import settle
from tests.tui_fixtures import SIZE, demo_dir, make_app, pilot_test
from tui.cli import build_parser as tui_parser
from tui.screens.main import MainScreen


@pilot_test
async def test_palette_has_one_quit_and_working_entries(tmp_path: Path) -> None:
    root = demo_dir(tmp_path)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = app.screen
        assert isinstance(main, MainScreen)
        commands = {c.title: c for c in app.get_system_commands(main)}
        titles = [c.title for c in app.get_system_commands(main)]
        assert titles.count("Quit") == 1
        for title in ("Checkpoint now", "Export checkpoint range", "Copy record", "Conversation"):
            assert title in commands
        commands["Export checkpoint range"].callback()
        await settle(pilot)
        (md,) = list((root / "exports").glob("checkpoint-*.md"))
        assert "# Conversation up to auto #7" in md.read_text()
        await pilot.press("3")
        commands["Copy record"].callback()
        await pilot.pause()
        (saved,) = list((root / "exports").glob("record-*.jsonl"))
        assert app.clipboard.encode() == saved.read_bytes()  # the stored line, newline too
        before = len(app.journal.checkpoints or [])
        commands["Checkpoint now"].callback()  # no recorder runs: taken offline
        await settle(pilot)
        app.poll()
        await settle(pilot)
        assert len(app.journal.checkpoints or []) == before + 1


def _options(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += [(f"{name} {n}", a) for n, a in _options(sub)]
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            found.append(("/".join(action.option_strings) or action.dest, action))
    return found


def test_every_option_has_help_and_every_command_examples() -> None:
    from recorder.cli.main import build_parser

    for parser in (build_parser(), tui_parser()):
        missing = [name for name, action in _options(parser) if not action.help]
        assert missing == []
    assert "examples:" in (tui_parser().epilog or "")
    persist = build_parser()
    sub = next(a for a in persist._actions if isinstance(a, argparse._SubParsersAction))
    no_examples = [name for name, p in sub.choices.items() if "examples:" not in (p.epilog or "")]
    assert no_examples == []


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and subcommand, at every depth (`keys`, `keys init`, ...)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += [(*path, name), *_commands(sub, (*path, name))]
    return found


def test_every_commands_help_ends_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    """README: every command's --help ends with examples. `persist hook --help` (its own
    small parser) and the subcommands (`keys init|list|allow`, `hooks install|uninstall|
    status`) ended with their options. Walks every command at every depth, so a new one
    cannot miss them; each is asked for its help as a user does."""
    from recorder.cli.main import build_parser, main

    commands = _commands(build_parser())
    assert ("keys", "init") in commands and ("hook",) in commands
    missing = []
    for command in commands:
        try:
            main([*command, "--help"])
        except SystemExit as exc:
            assert exc.code in (0, None), command
        lines = capsys.readouterr().out.rstrip("\n").split("\n")
        block = lines[max(i for i, line in enumerate(lines) if not line.strip()) + 1 :]
        if (
            block[0] != "examples:"
            or len(block) < 2
            or not all(line.startswith(f"  persist {' '.join(command)}") for line in block[1:])
        ):
            missing.append(f"persist {' '.join(command)}: {lines[-1]}")
    assert missing == []


def _example_argv(line: str, command: str) -> list[str]:
    """The arguments of one help example: its words before a pipe, a redirection or
    the note after it (two spaces, as the help lays notes out)."""
    words = shlex.split(re.split(r"\s{2,}", line.strip())[0])
    for stop in ("|", ">"):
        if stop in words:
            words = words[: words.index(stop)]
    assert words[0] == command, line
    return words[1:]


def test_every_help_example_parses(capsys: pytest.CaptureFixture[str]) -> None:
    """Each example the help prints is a command line its parser takes (`persist send
    notes --text remember the migration` once failed with 'unrecognized arguments')."""
    from recorder.cli.main import EXAMPLES, build_parser

    tried = []
    persist = build_parser()
    for lines in EXAMPLES.values():
        for line in lines:
            tried.append(line)
            persist.parse_args(_example_argv(line, "persist"))  # exits 2 on a bad example
    tui = tui_parser()
    for line in (tui.epilog or "").splitlines()[1:]:
        tried.append(line)
        tui.parse_args(_example_argv(line, "persist-tui"))
    assert len(tried) > 50
    assert capsys.readouterr().err == ""


def test_version_on_both_commands() -> None:
    bindir = Path(sys.executable).parent
    for command in ("persist", "persist-tui"):
        out = subprocess.run(
            [str(bindir / command), "--version"], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0
        assert out.stdout.startswith(f"{command} 0.") or out.stdout.startswith(f"{command} 1.")


@pilot_test
async def test_the_query_filters_are_described_alike_in_the_readme_the_cli_and_the_tui(
    tmp_path: Path,
) -> None:
    """`source:S` read "where it came from (bus)" and `session:ID` "the payload's session
    id" in the TUI help, while README and `persist search --help` named claude, gemini,
    codex and an agent session's id. One table (`recorder.search.syntax`) says it now."""
    from rich.console import Console
    from textual.widgets import Static

    from tui.screens.help import QUERY_HELP, HelpScreen

    cli = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "search", "--help"],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert cli.returncode == 0, cli.stderr
    readme = (Path(__file__).parents[2] / "README.md").read_text().replace("`", "")
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        console = Console(width=300, record=True)
        for static in app.screen.query(Static):
            console.print(static.content)
        shown = " ".join(console.export_text().split())
    for key in ("source:S", "session:ID"):
        meaning = dict(QUERY_HELP)[key]
        assert "claude" in meaning if key == "source:S" else "agent session" in meaning
        assert f"{key} {meaning}" in shown
        assert f"{key} {meaning}" in " ".join(cli.stdout.split())
        assert f"| {key} | {meaning} |" in readme
