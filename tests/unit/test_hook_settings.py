"""`persist hooks install/uninstall/status` against real settings files in a temp HOME:
other settings and hooks kept exactly, idempotent, exact uninstall, malformed refused."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from recorder.hooks.agents import EVENTS, Agent, Scope, settings_path
from recorder.hooks.settings import (
    BACKUP_SUFFIX,
    MARKER,
    HookCommand,
    SettingsError,
    inspect,
    install,
    start_hook_for,
    uninstall,
)

pytestmark = pytest.mark.unit

CLAUDE_SETTINGS = """{
    "model": "opus",
    "env": {"FOO": "1"},
    "hooks": {
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "echo pre"}]}],
        "Stop": [{"hooks": [{"type": "command", "command": "notify-send done", "timeout": 5}]}]
    },
    "permissions": {"allow": ["Bash(ls)"], "deny": []},
    "cleanupPeriodDays": 30
}
"""

GEMINI_SETTINGS = """{
  "general": {"vimMode": true},
  "hooks": {
    "BeforeTool": [
      {"matcher": "run_shell_command",
       "hooks": [{"type": "command", "command": "./guard.sh", "name": "guard"}]}
    ],
    "AfterAgent": [{"hooks": [{"type": "command", "command": "./after.sh"}]}]
  },
  "ui": {"theme": "GitHub"}
}
"""

# a program that is there (`hooks status` names one that is not as a problem)
COMMAND = HookCommand((sys.executable, "-m", "recorder.cli"), Path("/var/lib/persist logs"))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def ours(data: dict, event: str) -> list[dict]:
    return [
        h
        for group in data.get("hooks", {}).get(event, [])
        for h in group.get("hooks", [])
        if MARKER in h.get("command", "")
    ]


@pytest.mark.parametrize(
    ("agent", "text"), [(Agent.CLAUDE, CLAUDE_SETTINGS), (Agent.GEMINI, GEMINI_SETTINGS)]
)
def test_install_keeps_everything_else_and_uninstall_gives_the_bytes_back(
    tmp_path: Path, agent: Agent, text: str
) -> None:
    path = write(tmp_path / "settings.json", text)
    before = json.loads(text)
    change = install(agent, path, COMMAND)
    assert change.added == list(EVENTS[agent]) and change.written
    assert change.backup is not None and change.backup.read_text() == text
    after = json.loads(path.read_text())
    # every other setting, in the same order, unchanged
    assert [k for k in after if k in before] == list(before)
    for key in before:
        if key != "hooks":
            assert after[key] == before[key]
    # every other hook, unchanged and first in its event
    for event, groups in before["hooks"].items():
        assert after["hooks"][event][: len(groups)] == groups
    for event in EVENTS[agent]:
        (entry,) = ours(after, event)
        assert f"hook {event} --agent {agent.value}" in entry["command"]
        assert "'/var/lib/persist logs'" in entry["command"]  # quoted for the shell
        seconds = {"SessionStart": 30, "PreCompact": 60, "PreCompress": 60}.get(event, 10)
        assert entry["timeout"] == seconds * (1 if agent is Agent.CLAUDE else 1000)
    if agent is Agent.GEMINI:
        assert after["hooksConfig"] == {"enabled": True}
        assert change.enabled_hooks

    again = install(agent, path, COMMAND)
    assert not again.changed and not again.written
    assert json.loads(path.read_text()) == after

    removed = uninstall(agent, path)
    assert sorted(removed.removed) == sorted(EVENTS[agent])
    assert path.read_text() == text  # byte for byte, formatting included
    assert not uninstall(agent, path).changed


@pytest.mark.parametrize(
    "text",
    [
        '{"model": "opus", "hooks": {}}\n',
        '{"model": "opus",\n "hooks": {"Stop": [], "Notification": []}, "hooksConfig": {}}\n',
    ],
)
@pytest.mark.parametrize("agent", [Agent.CLAUDE, Agent.GEMINI])
def test_empty_hooks_the_file_held_before_the_install_come_back(
    tmp_path: Path, agent: Agent, text: str
) -> None:
    """Uninstall drops the containers it emptied; those the file held empty before the
    install (`"hooks": {}`, an event's `[]`) were lost with them, and the bytes did not
    come back (before 2026-12-07)."""
    path = write(tmp_path / "settings.json", text)
    install(agent, path, COMMAND)
    assert json.loads(path.read_text()) != json.loads(text)
    uninstall(agent, path)
    assert path.read_text() == text


def test_uninstall_after_other_edits_removes_only_ours(tmp_path: Path) -> None:
    path = write(tmp_path / "settings.json", CLAUDE_SETTINGS)
    install(Agent.CLAUDE, path, COMMAND)
    data = json.loads(path.read_text())
    data["theme"] = "dark"  # the user changed something meanwhile
    data["hooks"]["Stop"].append({"hooks": [{"type": "command", "command": "say bye"}]})
    path.write_text(json.dumps(data, indent=4))
    uninstall(Agent.CLAUDE, path)
    result = json.loads(path.read_text())
    expected = json.loads(CLAUDE_SETTINGS)
    expected["theme"] = "dark"
    expected["hooks"]["Stop"].append({"hooks": [{"type": "command", "command": "say bye"}]})
    assert result == expected
    assert list(result) == list(expected)


def test_reinstall_with_other_options_updates_in_place(tmp_path: Path) -> None:
    path = write(tmp_path / "settings.json", CLAUDE_SETTINGS)
    install(Agent.CLAUDE, path, COMMAND)
    other = HookCommand(COMMAND.program, Path("/elsewhere"), restore="latest")
    change = install(Agent.CLAUDE, path, other)
    assert sorted(change.updated) == sorted(EVENTS[Agent.CLAUDE]) and not change.added
    data = json.loads(path.read_text())
    for event in EVENTS[Agent.CLAUDE]:
        (entry,) = ours(data, event)
        assert "/elsewhere" in entry["command"]
        assert ("--restore=latest" in entry["command"]) == (event == "SessionStart")


def test_gemini_hooks_disabled_by_the_user_is_left_alone_and_reported(tmp_path: Path) -> None:
    text = '{"hooksConfig": {"enabled": false, "disabled": ["agent-persist-AfterAgent"]}}\n'
    path = write(tmp_path / "settings.json", text)
    change = install(Agent.GEMINI, path, COMMAND)
    assert change.warnings and "hooksConfig.enabled is false" in change.warnings[0]
    data = json.loads(path.read_text())
    assert data["hooksConfig"] == {"enabled": False, "disabled": ["agent-persist-AfterAgent"]}
    found = inspect(Agent.GEMINI, path)
    assert any("enabled is false" in p for p in found.problems)
    assert any("agent-persist-AfterAgent" in p for p in found.problems)
    uninstall(Agent.GEMINI, path)
    assert json.loads(path.read_text()) == json.loads(text)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "is not valid JSON"),
        ('{"hooks": []}', '"hooks" is a list'),
        ('{"hooks": {"Stop": {"hooks": []}}}', '"hooks.Stop" is a dict'),
        ('{"hooksConfig": true}', '"hooksConfig" is not an object'),
        ("[1, 2]", "does not hold a JSON object"),
        ('{"a": 1,}', "is not valid JSON"),  # comments/trailing commas: refused, not guessed
    ],
)
def test_malformed_settings_are_refused_and_never_written(
    tmp_path: Path, text: str, says: str
) -> None:
    path = write(tmp_path / "settings.json", text)
    for run in (
        lambda: install(Agent.GEMINI, path, COMMAND),
        lambda: uninstall(Agent.GEMINI, path),
    ):
        with pytest.raises(SettingsError, match=says.replace("[", r"\[").replace("(", r"\(")):
            run()
    assert path.read_text() == text
    assert not path.with_name(path.name + BACKUP_SUFFIX).exists()


def test_a_missing_file_is_created_and_a_symlink_written_through(tmp_path: Path) -> None:
    path = tmp_path / "new" / "settings.json"
    install(Agent.CLAUDE, path, COMMAND)
    assert set(json.loads(path.read_text())["hooks"]) == set(EVENTS[Agent.CLAUDE])
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)

    real = write(tmp_path / "dotfiles" / "claude.json", CLAUDE_SETTINGS)
    os.chmod(real, 0o644)
    link = tmp_path / "home" / "settings.json"
    link.parent.mkdir()
    link.symlink_to(real)
    install(Agent.CLAUDE, link, COMMAND)
    assert link.is_symlink()
    assert ours(json.loads(real.read_text()), "Stop")
    assert real.stat().st_mode & 0o777 == 0o644  # the mode is kept


def test_settings_paths_follow_the_agents_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "cc"))
    monkeypatch.setenv("GEMINI_CLI_HOME", str(tmp_path / "gh"))
    assert settings_path(Agent.CLAUDE, Scope.USER) == tmp_path / "cc" / "settings.json"
    assert settings_path(Agent.GEMINI, Scope.USER) == tmp_path / "gh" / ".gemini" / "settings.json"
    assert (
        settings_path(Agent.GEMINI, Scope.PROJECT, tmp_path)
        == tmp_path / ".gemini" / "settings.json"
    )


def test_one_file_with_both_agents_keeps_them_apart(tmp_path: Path) -> None:
    path = write(tmp_path / "settings.json", "{}")
    install(Agent.CLAUDE, path, COMMAND)
    install(Agent.GEMINI, path, COMMAND)
    data = json.loads(path.read_text())
    both = ours(data, "SessionStart")
    assert sorted(" --agent claude " in h["command"] for h in both) == [False, True]
    assert inspect(Agent.CLAUDE, path).missing == ()
    assert inspect(Agent.GEMINI, path).missing == ()
    uninstall(Agent.CLAUDE, path)
    after = json.loads(path.read_text())
    assert all(" --agent gemini " in h["command"] for h in ours(after, "SessionStart"))
    assert set(after["hooks"]) == set(EVENTS[Agent.GEMINI])
    assert inspect(Agent.CLAUDE, path).events == ()


def test_start_hook_for_a_log_folder_in_any_scope(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What `persist launch` asks before saying the agent will not hear of its choice:
    our SessionStart entry for that folder, in user, project or Claude Code's
    project-local settings, and hooks not switched off."""
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "cc"))
    monkeypatch.setenv("GEMINI_CLI_HOME", str(tmp_path / "gh"))
    project, logs = tmp_path / "proj", COMMAND.log_dir
    for agent in Agent:
        assert not start_hook_for(agent, logs, project)  # no settings at all
    local = project / ".claude" / "settings.local.json"
    for path in (settings_path(Agent.CLAUDE, Scope.USER), local):
        install(Agent.CLAUDE, path, COMMAND)
        assert start_hook_for(Agent.CLAUDE, logs, project)
        assert not start_hook_for(Agent.CLAUDE, tmp_path / "other logs", project)
        uninstall(Agent.CLAUDE, path)
        assert not start_hook_for(Agent.CLAUDE, logs, project)
    path = write(settings_path(Agent.GEMINI, Scope.PROJECT, project), "{}")
    install(Agent.GEMINI, path, COMMAND)
    assert not start_hook_for(Agent.GEMINI, logs, project)  # a folder it does not trust
    trusted = {str(project): "TRUST_FOLDER"}
    write(tmp_path / "gh" / ".gemini" / "trustedFolders.json", json.dumps(trusted))
    assert start_hook_for(Agent.GEMINI, logs, project)
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "hooksConfig": {"enabled": False}}))
    assert not start_hook_for(Agent.GEMINI, logs, project)


def test_claude_disable_all_hooks_is_left_alone_and_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`"disableAllHooks": true` (Claude Code then runs no hook of ours) went unnoticed:
    no warning, no problem, and the launcher counted on a start hook that never runs.
    The value in effect is the one of the file Claude Code reads last that sets it."""
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "cc"))
    project, logs = tmp_path / "proj", COMMAND.log_dir
    monkeypatch.chdir(write(project / "README", "").parent)
    user = write(settings_path(Agent.CLAUDE, Scope.USER), '{"disableAllHooks": true}\n')
    change = install(Agent.CLAUDE, user, COMMAND)
    assert any(f"{user}: disableAllHooks is true" in w for w in change.warnings), change
    assert json.loads(user.read_text())["disableAllHooks"] is True  # left as it is
    found = inspect(Agent.CLAUDE, user, project)
    assert set(found.events) == set(EVENTS[Agent.CLAUDE])
    assert f"disableAllHooks is true in {user}: Claude Code runs no hooks" in found.problems
    assert not start_hook_for(Agent.CLAUDE, logs, project)

    # the project's local settings turn them back on; its shared ones off again
    local = write(project / ".claude" / "settings.local.json", '{"disableAllHooks": false}')
    assert inspect(Agent.CLAUDE, user, project).problems == ()
    assert start_hook_for(Agent.CLAUDE, logs, project)
    assert not install(Agent.CLAUDE, user, COMMAND).warnings
    local.unlink()
    shared = write(project / ".claude" / "settings.json", '{"disableAllHooks": true}')
    assert not start_hook_for(Agent.CLAUDE, logs, project)
    assert any(str(shared) in p for p in inspect(Agent.CLAUDE, user, project).problems)
    shared.write_text("{}")  # sets nothing: the user's true is in effect again
    assert not start_hook_for(Agent.CLAUDE, logs, project)
    shared.write_text('{"disableAllHooks": false}')
    assert start_hook_for(Agent.CLAUDE, logs, project)
    # a settings file Claude Code is pointed at some other way is judged by itself
    other = write(tmp_path / "elsewhere.json", '{"disableAllHooks": true}')
    assert any(
        "disableAllHooks is true" in w for w in install(Agent.CLAUDE, other, COMMAND).warnings
    )
