"""`persist launch -- AGENT ARGS`: the arguments that already say what the agent runs
(resume, continue, print mode, other subcommands) skip the launch menu."""

from __future__ import annotations

import pytest

from recorder.launch.sessions import own_choice
from recorder.sources.model import Source

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("source", "command", "decided"),
    [
        (Source.CLAUDE, ["claude"], None),
        (Source.CLAUDE, ["claude", "fix the failing test"], None),  # a new session's prompt
        (Source.CLAUDE, ["claude", "--model", "opus"], None),
        (Source.CLAUDE, ["claude", "-c"], "-c"),
        (Source.CLAUDE, ["claude", "--model", "opus", "--resume"], "--resume"),
        (Source.CLAUDE, ["claude", "--resume=4b2030ed"], "--resume=4b2030ed"),
        (Source.CLAUDE, ["claude", "-p", "summarise"], "-p"),
        (Source.CLAUDE, ["claude", "mcp", "list"], "mcp"),
        (Source.CLAUDE, ["claude", "--", "-p"], None),  # after `--`: the prompt's words
        (Source.CLAUDE, ["claude", "explain mcp"], None),  # a subcommand only comes first
        (Source.GEMINI, ["gemini", "-i", "go on"], None),  # interactive, with a prompt
        (Source.GEMINI, ["gemini", "--list-sessions"], "--list-sessions"),
        (Source.GEMINI, ["gemini", "-r", "latest"], "-r"),
        (Source.CODEX, ["codex", "write a parser"], None),
        (Source.CODEX, ["codex", "exec", "write a parser"], "exec"),
        (Source.CODEX, ["codex", "resume", "--last"], "resume"),
        (Source.CODEX, ["codex", "-c"], None),  # codex's -c is a config override
        (Source.CODEX, ["codex", "-c", "model=o3", "exec", "go"], "exec"),
        (Source.CLAUDE, ["claude", "--from-pr", "12"], "--from-pr"),
        (Source.GEMINI, ["gemini", "skills", "list"], "skills"),
    ],
)
def test_own_choice(source: Source, command: list[str], decided: str | None) -> None:
    assert own_choice(source, command) == decided
