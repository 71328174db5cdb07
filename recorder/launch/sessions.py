"""Resuming an agent's own session from `persist launch -- claude|gemini|codex`.

The launch menu offers the sessions the agent keeps for this project (its cwd), newest
first. The latest point of a session resumes it as it is (`claude --resume <id>`,
`gemini --resume <id>`, `codex resume <id>`); an earlier point, or a session that only
survives in our copy, is forked first (`recorder.sources.fork`: a new session file,
read back with our parser) and the fork is resumed; so is one the agent would not find
by its id (a Claude file not named `<id>.jsonl`), at any point, as `persist fork` does.
The fork's id is chosen before the confirmation, so the command the confirmation shows
is the one that runs.
"""

from __future__ import annotations

import os
import uuid as uuidlib
from collections.abc import Sequence
from dataclasses import dataclass

from recorder.errors import PersistError
from recorder.sources.discover import Roots
from recorder.sources.fork import ForkResult, fork_row, not_resumable, resume_fork_reason
from recorder.sources.listing import SessionNotFound, SessionRow, find_session, list_sessions
from recorder.sources.model import Source, shell_line
from recorder.store.layout import Layout

AGENT_COMMANDS = {"claude": Source.CLAUDE, "gemini": Source.GEMINI, "codex": Source.CODEX}


class ResumeError(PersistError):
    """The chosen session cannot be found, forked or resumed."""


def agent_source(command: Sequence[str]) -> Source | None:
    """The agent whose sessions a command resumes (by the executable's name), or None."""
    return AGENT_COMMANDS.get(os.path.basename(command[0])) if command else None


# The agents' own arguments that already say what the session is (resume, continue)
# or that run no interactive session of theirs (print mode, help, version, a
# subcommand): `persist launch` then runs the command as it is, without a menu.
# Read from the help of Claude Code 2.1.197, Gemini CLI 0.61.0 (its yargs options) and
# Codex 0.171.0, their npm packages (2026-12-06); `config` is Claude Code 1.x/2.0's.
# Anything else (a prompt, a model) gets the menu.
_DECIDING_OPTIONS = {
    Source.CLAUDE: frozenset(
        (
            *("-c", "--continue", "-r", "--resume", "--from-pr", "-p", "--print"),
            *("--bg", "--background", "-h", "--help", "-v", "--version"),
        )
    ),
    Source.GEMINI: frozenset(
        (
            *("-r", "--resume", "--session-file", "--list-sessions", "--delete-session"),
            *("-p", "--prompt", "-l", "--list-extensions", "-h", "--help", "-v", "--version"),
        )
    ),
    Source.CODEX: frozenset(("-h", "--help", "-V", "--version")),
}
_DECIDING_COMMANDS = {
    Source.CLAUDE: frozenset(
        (
            *("agents", "auth", "auto-mode", "config", "doctor", "gateway", "install", "mcp"),
            *("plugin", "plugins", "project", "setup-token", "ultrareview", "update", "upgrade"),
        )
    ),
    Source.GEMINI: frozenset(("mcp", "extensions", "skills", "hooks", "gemma")),
    Source.CODEX: frozenset(
        (
            *("agents", "exec", "e", "review", "login", "logout", "mcp", "plugin", "app-server"),
            *("remote-control", "completion", "update", "doctor", "sandbox", "debug", "apply"),
            *("a", "resume", "queue", "archive", "delete", "migrate-rollouts", "migrate-nfs-db"),
            *("unarchive", "fork", "cloud", "exec-server", "features", "help"),
        )
    ),
}


def own_choice(source: Source, command: Sequence[str]) -> str | None:
    """The argument of the agent's command that already decides what it runs (`-c`,
    `--resume`, `exec`, ...), so that no launch menu is shown; None when there is none."""
    args = list(command[1:])
    words = [a for a in args if not a.startswith("-")]
    # a subcommand is the first word, or the second after an option's value (`codex -c
    # model=o3 exec`); a prompt is one word, so it names a subcommand only as the agent
    # would read it too
    for word in words[:2]:
        if word in _DECIDING_COMMANDS[source]:
            return word
    options = _DECIDING_OPTIONS[source]
    for arg in args:
        if arg == "--":
            break
        if arg.partition("=")[0] in options:
            return arg
    return None


def same_project(recorded: str, project: str) -> bool:
    """Whether the project an agent recorded is this folder (symlinks resolved)."""
    if not recorded:
        return False
    if recorded == project:
        return True
    try:
        return os.path.realpath(recorded) == os.path.realpath(project)
    except (OSError, ValueError):
        return False


def project_sessions(
    roots: Roots, layout: Layout, source: Source, project: str, *, now: float | None = None
) -> tuple[list[SessionRow], list[str]]:
    """The agent's sessions of this project that it can resume, newest first (ours-only
    copies included; a sub-agent's conversation or one with no user or assistant
    message is not one), and the problems met while scanning."""
    rows, problems = list_sessions(roots, layout, source=source, now=now)
    return [
        r for r in rows if r.session.resumable and same_project(r.session.project_path, project)
    ], problems


def resume_argv(command: Sequence[str], source: Source, session_id: str) -> list[str]:
    """The user's command with the agent's resume arguments after the executable."""
    exe, rest = command[0], list(command[1:])
    if source is Source.CODEX:
        return [exe, "resume", session_id, *rest]
    return [exe, "--resume", session_id, *rest]


def needs_fork(row: SessionRow, at: int | None) -> bool:
    """An earlier point (`at` not None), or a session that resumes only through a fork
    (`resume_fork_reason`: one only our copy holds, a Claude file not named by its id),
    as `persist fork` forks it."""
    return at is not None or bool(resume_fork_reason(row.session, deleted=row.deleted))


@dataclass(frozen=True)
class ResumePlan:
    """What choosing a point of a session does: the command shown, then run."""

    key: str
    source: Source
    at: int | None  # the message forked at (None: the latest point)
    new_id: str | None  # the fork's id (None: no fork, the session itself is resumed)
    argv: list[str]
    cwd: str  # the session's project: resume looks for the session there
    command: tuple[str, ...] = ()  # the user's command the resume arguments went into

    @property
    def shell(self) -> str:
        return shell_line(self.cwd, self.argv)


def plan(
    row: SessionRow, command: Sequence[str], at: int | None, new_id: str | None = None
) -> ResumePlan:
    """The plan for a point of a listed session (`at` None: the latest point)."""
    s = row.session
    if not s.resumable:
        raise ResumeError(not_resumable(s))
    fork_id = (new_id or str(uuidlib.uuid4())) if needs_fork(row, at) else None
    argv = resume_argv(command, s.source, fork_id or s.id)
    return ResumePlan(s.key, s.source, at, fork_id, argv, s.project_path, tuple(command))


@dataclass(frozen=True)
class Resumed:
    """A plan carried out: what to run, where, and the fork written for it if any."""

    plan: ResumePlan
    fork: ForkResult | None


def carry_out(layout: Layout, row: SessionRow, p: ResumePlan) -> Resumed:
    """Write the fork the plan needs (read back before anything runs), or nothing."""
    if p.new_id is None:
        return Resumed(p, None)
    from recorder.sources.copies import CopyError
    from recorder.sources.fork import ForkError

    try:
        result = fork_row(layout, row, None if p.at is None else str(p.at), new_id=p.new_id)
    except (ForkError, CopyError) as exc:
        raise ResumeError(str(exc)) from None
    except OSError as exc:
        raise ResumeError(f"the fork of {p.key} could not be written: {exc}") from None
    if result.latest:  # `at` was the last message after all: resume the session itself
        s = row.session
        argv = resume_argv(p.command or p.argv[:1], s.source, s.id)
        return Resumed(ResumePlan(p.key, p.source, None, None, argv, p.cwd, p.command), None)
    return Resumed(p, result)


def find_row(roots: Roots, layout: Layout, key: str) -> SessionRow:
    """A listed session by `source:id`, an id, or a unique prefix (`find_session`)."""
    source = AGENT_COMMANDS.get(key.partition(":")[0])
    rows, _ = list_sessions(roots, layout, source=source)
    try:
        return find_session(rows, key)
    except SessionNotFound as exc:
        raise ResumeError(str(exc)) from None
