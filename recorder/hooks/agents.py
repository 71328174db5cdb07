"""What each agent expects of a hook: its events, where its settings live, its units.

Facts and their sources are listed in `docs/hooks.md`.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path


class Agent(StrEnum):
    CLAUDE = "claude"
    GEMINI = "gemini"


class Role(StrEnum):
    """What `persist hook` does for an event."""

    START = "start"  # recorder up, agent registered, checkpoint, session-started message
    TURN = "turn"  # publish what the transcript gained since the last call
    COMPACT = "compact"  # publish, checkpoint, verified copy of the transcript
    END = "end"  # publish, final checkpoint, deregister, maybe stop the recorder


class Scope(StrEnum):
    USER = "user"
    PROJECT = "project"


# event -> role, in the order the entries are written into the settings
EVENTS: dict[Agent, dict[str, Role]] = {
    Agent.CLAUDE: {
        "SessionStart": Role.START,
        "UserPromptSubmit": Role.TURN,
        "Stop": Role.TURN,
        "SubagentStop": Role.TURN,
        "PreCompact": Role.COMPACT,
        "SessionEnd": Role.END,
    },
    Agent.GEMINI: {
        "SessionStart": Role.START,
        "BeforeAgent": Role.TURN,
        "AfterAgent": Role.TURN,
        "PreCompress": Role.COMPACT,
        "SessionEnd": Role.END,
    },
}

# seconds the agent waits for our command before killing it: a start may have to
# spawn the recorder (up to 10 s) and build a restore bundle; the rest is quick
TIMEOUT_START = 30
TIMEOUT_COMPACT = 60  # a long transcript's first copy takes seconds per 100 MiB
TIMEOUT_OTHER = 10


def timeout_value(agent: Agent, role: Role) -> int:
    """The `timeout` field: Claude Code counts seconds, Gemini CLI milliseconds."""
    seconds = {Role.START: TIMEOUT_START, Role.COMPACT: TIMEOUT_COMPACT}.get(role, TIMEOUT_OTHER)
    return seconds if agent is Agent.CLAUDE else seconds * 1000


def config_root(agent: Agent) -> Path:
    """`$CLAUDE_CONFIG_DIR` or ~/.claude; `$GEMINI_CLI_HOME/.gemini` or ~/.gemini."""
    if agent is Agent.CLAUDE:
        env = os.environ.get("CLAUDE_CONFIG_DIR")
        return Path(env).expanduser() if env else Path.home() / ".claude"
    home = os.environ.get("GEMINI_CLI_HOME")
    return (Path(home).expanduser() if home else Path.home()) / ".gemini"


def settings_path(agent: Agent, scope: Scope, project: Path | None = None) -> Path:
    """The settings.json a scope means (project: `.claude/` or `.gemini/` of `project`)."""
    if scope is Scope.USER:
        return config_root(agent) / "settings.json"
    base = (project or Path.cwd()).absolute()
    return base / f".{agent.value}" / "settings.json"
