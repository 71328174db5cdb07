"""`persist hooks install/uninstall/status` through the real CLI in a temp HOME (user and
project scope); malformed files refused with one line and exit 2."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import Bus
from tests.unit.test_hook_settings import CLAUDE_SETTINGS, GEMINI_SETTINGS, write

pytestmark = pytest.mark.process


def persist(
    home: Path,
    cwd: Path,
    *args: str,
    timeout: float = 60,
    max_memory: int | None = None,
    umask: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CLAUDE_CONFIG_DIR", "GEMINI_CLI_HOME")}
    env["HOME"] = str(home)
    env.update(extra_env or {})

    def cap() -> None:  # a reader of /dev/zero must not take the test machine's memory
        if max_memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (max_memory, max_memory))
        if umask is not None:
            os.umask(umask)

    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=cap if max_memory is not None or umask is not None else None,
    )


def test_cli_user_and_project_scope(tmp_path: Path) -> None:
    home, project = tmp_path / "home", tmp_path / "project"
    project.mkdir()
    user_claude = write(home / ".claude" / "settings.json", CLAUDE_SETTINGS)
    project_gemini = write(project / ".gemini" / "settings.json", GEMINI_SETTINGS)
    logs = tmp_path / "logs"

    out = persist(home, project, "hooks", "install", "claude", "--log-dir", str(logs))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"claude: {user_claude}: added SessionStart")
    out = persist(
        home, project, "hooks", "install", "gemini", "--scope", "project", "--log-dir", str(logs)
    )
    assert out.returncode == 0, out.stderr
    assert "set hooksConfig.enabled" in out.stdout
    assert not (home / ".gemini").exists()  # the user scope of the other agent untouched
    assert not (project / ".claude").exists()

    status = persist(home, project, "hooks", "status")
    assert f"claude: {user_claude}: installed (all events)" in status.stdout
    assert f"gemini: {project_gemini}: installed (all events)" in status.stdout
    assert f"log folder {logs.absolute()}: recorder stopped" in status.stdout
    assert status.returncode == 1  # installed, but the recorder is not running

    again = persist(home, project, "hooks", "install", "claude", "--log-dir", str(logs))
    assert "nothing to change" in again.stdout

    persist(home, project, "hooks", "uninstall", "claude")
    persist(home, project, "hooks", "uninstall", "gemini", "--scope", "project")
    assert user_claude.read_text() == CLAUDE_SETTINGS
    assert project_gemini.read_text() == GEMINI_SETTINGS
    none = persist(home, project, "hooks", "status")
    assert none.returncode == 3 and "no agent-persist hooks installed" in none.stdout


def test_the_folders_an_install_makes_are_private_whatever_the_umask(tmp_path: Path) -> None:
    """Under umask 000 `persist hooks install` made the agents' settings folders 0777:
    another local user could put a settings.json of theirs, with a hook command that runs
    as you, in place of ours. The folders it makes (and those above them) are 0700; a
    folder that exists is the agent's and keeps its mode."""
    home, project, logs = tmp_path / "home", tmp_path / "project", tmp_path / "logs"
    home.mkdir()
    (project / ".gemini").mkdir(parents=True)
    os.chmod(project / ".gemini", 0o755)
    gemini_home = tmp_path / "gemini-home" / "me"  # $GEMINI_CLI_HOME, missing, as its parent
    for agent in ("claude", "gemini"):
        for scope in ("user", "project"):
            out = persist(
                home,
                project,
                *("hooks", "install", agent, "--scope", scope, "--log-dir", str(logs)),
                umask=0,
                extra_env={"GEMINI_CLI_HOME": str(gemini_home)},
            )
            assert out.returncode == 0, out.stderr
    made = [home / ".claude", project / ".claude", gemini_home.parent, gemini_home]
    made.append(gemini_home / ".gemini")
    for folder in made:
        assert folder.stat().st_mode & 0o777 == 0o700, folder
        assert (folder / "settings.json").exists() == (folder.name in (".claude", ".gemini"))
    assert (project / ".gemini").stat().st_mode & 0o777 == 0o755
    for settings in [
        *(f / "settings.json" for f in made if f.name[0] == "."),
        project / ".gemini" / "settings.json",
    ]:
        assert settings.stat().st_mode & 0o777 == 0o600


def test_cli_refuses_malformed_with_one_line_and_exit_2(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = write(home / ".claude" / "settings.json", '{"hooks": ["x"]}')
    out = persist(home, tmp_path, "hooks", "install", "claude")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and '"hooks" is a list' in out.stderr
    assert path.read_text() == '{"hooks": ["x"]}'
    status = persist(home, tmp_path, "hooks", "status", "claude")
    assert "problem:" in status.stdout and '"hooks" is a list' in status.stdout


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ('{"hooks": {"Stop": [1]}}', '"hooks.Stop[0]" is not an object with "hooks" (it is a int)'),
        ('{"hooks": {"Stop": [{"hooks": "x"}]}}', '"hooks.Stop[0].hooks" is not a list of objects'),
        ('{"hooks": {"Stop": [{"hooks": [2]}]}}', '"hooks.Stop[0].hooks" is not a list of objects'),
    ],
)
def test_a_wrongly_typed_hook_group_is_refused(tmp_path: Path, text: str, names: str) -> None:
    """Only `hooks` and `hooks.EVENT` were checked: our entries went in beside these."""
    home = tmp_path / "home"
    path = write(home / ".claude" / "settings.json", text)
    out = persist(home, tmp_path, "hooks", "install", "claude")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and names in out.stderr, out.stderr
    assert path.read_text() == text


def test_a_lone_surrogate_escape_in_the_settings_is_written_back_as_it_was(
    tmp_path: Path,
) -> None:
    """Node writes `"\\ud83d"` for half an emoji; writing it back as UTF-8 failed with a
    traceback (exit 1), and the settings were left without our hooks."""
    home = tmp_path / "home"
    text = '{"permissions": {"note": "\\ud83d cut emoji", "ok": "é"}}\n'
    path = write(home / ".claude" / "settings.json", text)
    out = persist(home, tmp_path, "hooks", "install", "claude")
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    written = path.read_text()
    assert '"note": "\\ud83d cut emoji"' in written and '"ok": "é"' in written
    assert json.loads(written)["permissions"]["note"] == "\ud83d cut emoji"
    assert persist(home, tmp_path, "hooks", "uninstall", "claude").returncode == 0
    assert path.read_text() == text


@pytest.mark.parametrize(
    ("before", "edited"),
    [
        ('{\n  "includeCoAuthoredBy": 0,\n  "model": "opus"\n}\n', '"includeCoAuthoredBy": false'),
        ('{\n  "cleanupPeriodDays": 1,\n  "model": "opus"\n}\n', '"cleanupPeriodDays": 1.0'),
        ('{\n  "cleanupPeriodDays": 1,\n  "model": "opus"\n}\n', '"cleanupPeriodDays": true'),
        ('{\n  "cleanupPeriodDays": 30,\n  "model": "opus"\n}\n', '"cleanupPeriodDays": 30'),
    ],
)
def test_uninstall_keeps_the_users_later_edits_that_compare_equal_in_python(
    tmp_path: Path, before: str, edited: str
) -> None:
    """Uninstall gave back the pre-install backup's bytes whenever `json.loads(backup) ==
    data`: 0 == False, 1 == 1.0 == True and key order ignored, so a user's edit made
    after install (0 -> false, a key moved) was silently undone."""
    home = tmp_path / "home"
    path = write(home / ".claude" / "settings.json", before)
    assert persist(home, tmp_path, "hooks", "install", "claude").returncode == 0
    data = json.loads(path.read_text())
    key = edited.split('"')[1]
    # the user's edit after install: the value's type changed (or kept), "model" moved first
    data = {"model": data.pop("model"), **data}
    data[key] = json.loads(edited.split(": ", 1)[1])
    path.write_text(json.dumps(data, indent=2) + "\n")
    assert edited in path.read_text()
    out = persist(home, tmp_path, "hooks", "uninstall", "claude")
    assert out.returncode == 0, out.stderr
    text = path.read_text()
    assert edited in text, text
    assert list(json.loads(text)) == ["model", key]
    assert "hooks" not in json.loads(text)


def test_uninstall_gives_back_the_backup_bytes_only_when_nothing_else_changed(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    text = '{"includeCoAuthoredBy":0,   "model":"opus", "n": 1.50}\n'
    path = write(home / ".claude" / "settings.json", text)
    assert persist(home, tmp_path, "hooks", "install", "claude").returncode == 0
    assert persist(home, tmp_path, "hooks", "uninstall", "claude").returncode == 0
    assert path.read_text() == text


def test_a_second_install_keeps_the_backup_of_the_users_own_file(tmp_path: Path) -> None:
    """Install, install again (another command: `--restore`), uninstall: the second
    install put the already-changed file in `settings.json.persist-backup`, so
    uninstall no longer found the user's bytes there and wrote the settings again
    (compact arrays expanded, `1e3` became `1000.0`). Both agents, user and project."""
    home = tmp_path / "home"
    text = (
        '{\n    "model": "opus",\n    "permissions": {"allow": ["Read"], "deny": []},\n'
        '    "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "notify-send'
        ' done", "timeout": 5}]}]},\n    "cleanupPeriodDays": 1e3\n}\n'
    )
    for agent, path, scope in (
        ("claude", home / ".claude" / "settings.json", "user"),
        ("gemini", home / ".gemini" / "settings.json", "user"),
        ("claude", tmp_path / ".claude" / "settings.json", "project"),
    ):
        write(path, text)
        args = ("--scope", scope)
        assert persist(home, tmp_path, "hooks", "install", agent, *args).returncode == 0
        once = path.read_bytes()
        out = persist(home, tmp_path, "hooks", "install", agent, *args, "--restore")
        assert out.returncode == 0 and "updated" in out.stdout, out.stdout + out.stderr
        backup = path.with_name(path.name + ".persist-backup")
        assert backup.read_text() == text, (agent, scope)  # the user's file, not `once`
        assert path.read_bytes() != once
        out = persist(home, tmp_path, "hooks", "uninstall", agent, *args)
        assert out.returncode == 0, out.stderr
        assert path.read_text() == text, (agent, scope, path.read_text())


def test_a_fifo_or_a_device_as_settings_file_is_never_waited_on(tmp_path: Path) -> None:
    """`settings.load` read the file whole with no check: a named pipe held status,
    install and uninstall forever, a link to /dev/zero was read until memory ran out."""
    home = tmp_path / "home"
    fifo = home / ".claude" / "settings.json"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    for verb in ("install", "uninstall"):
        out = persist(home, tmp_path, "hooks", verb, "claude", timeout=20)
        assert out.returncode == 2 and out.stdout == "", (verb, out)
        assert out.stderr.count("\n") == 1 and "is not a regular file" in out.stderr, out.stderr
        assert str(fifo) in out.stderr
    for args in (("hooks", "status"), ("hooks", "status", "claude")):
        status = persist(home, tmp_path, *args, timeout=20)
        assert status.returncode == 3, status
        assert f"claude: {fifo}: not installed" in status.stdout
        assert "problem:" in status.stdout and "is not a regular file" in status.stdout
    assert fifo.is_fifo()

    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    for args in (
        ("hooks", "status", "claude", "--settings", str(zero)),
        ("hooks", "install", "gemini", "--settings", str(zero)),
    ):
        out = persist(home, tmp_path, *args, timeout=20, max_memory=1 << 30)
        assert out.returncode in (2, 3) and "Traceback" not in out.stderr, out
        assert "is not a regular file" in out.stdout + out.stderr, out

    big = tmp_path / "big.json"
    with big.open("wb") as f:
        f.truncate(17 << 20)  # sparse: larger than any settings file
    out = persist(home, tmp_path, "hooks", "install", "claude", "--settings", str(big))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out
    assert "larger than 16 MiB" in out.stderr, out.stderr


def test_a_fifo_in_place_of_the_backup_holds_nothing(tmp_path: Path) -> None:
    """Uninstall read `settings.json.persist-backup` to compare it: a named pipe there
    held it forever; install copied into it (`shutil` refuses a named pipe: exit 1)."""
    home = tmp_path / "home"
    path = write(home / ".claude" / "settings.json", CLAUDE_SETTINGS)
    backup = path.with_name(path.name + ".persist-backup")
    os.mkfifo(backup)
    out = persist(home, tmp_path, "hooks", "install", "claude", timeout=20)
    assert out.returncode == 0, out
    assert backup.is_file() and backup.read_text() == CLAUDE_SETTINGS
    backup.unlink()
    os.mkfifo(backup)
    out = persist(home, tmp_path, "hooks", "uninstall", "claude", timeout=20)
    assert out.returncode == 0, out
    assert json.loads(path.read_text()) == json.loads(CLAUDE_SETTINGS)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"model": "opus", "feedbackSurveyRate": 1e400}\n', "1e400 is out of range"),
        ('{"model": "opus", "x": -2E+999}\n', "-2E+999 is out of range"),
        ('{"model": "opus", "x": NaN}\n', "is not valid JSON (NaN is not JSON)"),
        ('{"model": "opus", "x": Infinity}\n', "is not valid JSON (Infinity is not JSON)"),
        ('{"model": "opus", "x": [-Infinity]}\n', "is not valid JSON (-Infinity is not JSON)"),
    ],
)
def test_numbers_the_agent_cannot_read_back_are_refused(
    tmp_path: Path, text: str, says: str
) -> None:
    """`1e400` (valid JSON; JSON.parse reads it as Infinity) was written back as the bare
    word `Infinity`, and a file holding `NaN` (not JSON) was accepted: the agent's
    JSON.parse then failed on its own settings."""
    home = tmp_path / "home"
    path = write(home / ".claude" / "settings.json", text)
    for verb in ("install", "uninstall"):
        out = persist(home, tmp_path, "hooks", verb, "claude")
        assert out.returncode == 2 and out.stdout == "", out
        assert out.stderr.count("\n") == 1 and says in out.stderr, out.stderr
        assert "nothing was written" in out.stderr
    assert path.read_text() == text
    assert not path.with_name(path.name + ".persist-backup").exists()


@pytest.mark.parametrize(
    ("agent", "text", "says"),
    [
        ("claude", '{"model": "opus", "hooks": null}', '"hooks" is null'),
        ("gemini", '{"hooks": null}', '"hooks" is null'),
        ("claude", '{"hooks": {"Stop": null}}', '"hooks.Stop" is null'),
        ("gemini", '{"theme": "x", "hooksConfig": null}', '"hooksConfig" is not an object'),
    ],
)
def test_null_hooks_are_refused_in_one_line(
    tmp_path: Path, agent: str, text: str, says: str
) -> None:
    """`"hooks": null` passed the shape check and install's setdefault met None: a
    traceback (AttributeError), exit 1. Claude Code 2.1.110 rejects such a file whole
    (`hooks: aN().optional()`, zod: null is not optional), Gemini CLI 0.61.0 names it
    invalid configuration: refused like any other wrongly typed `hooks`."""
    home = tmp_path / "home"
    path = write(home / f".{agent}" / "settings.json", text)
    for verb in ("install", "uninstall"):
        out = persist(home, tmp_path, "hooks", verb, agent)
        assert out.returncode == 2 and out.stdout == "", out
        assert out.stderr.count("\n") == 1 and says in out.stderr, out.stderr
    status = persist(home, tmp_path, "hooks", "status", agent)
    assert "Traceback" not in status.stderr and says in status.stdout, status
    assert path.read_text() == text


def test_settings_nested_too_deep_are_refused_in_one_line(tmp_path: Path) -> None:
    """json.loads raises RecursionError (no ValueError) for a value nested about 1,000
    levels deep: install, uninstall and status ended in a traceback, exit 1."""
    home = tmp_path / "home"
    text = '{"a": ' + "[" * 5000 + "]" * 5000 + "}\n"
    path = write(home / ".claude" / "settings.json", text)
    for verb in ("install", "uninstall"):
        out = persist(home, tmp_path, "hooks", verb, "claude")
        assert out.returncode == 2 and out.stdout == "", out
        assert out.stderr.count("\n") == 1 and "nested too deep" in out.stderr, out.stderr
    status = persist(home, tmp_path, "hooks", "status", "claude")
    assert "Traceback" not in status.stderr and "nested too deep" in status.stdout, status
    assert path.read_text() == text


def test_a_settings_file_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    """A full disk (here a file size limit: EFBIG, as ENOSPC) under the agent's settings
    said "persist: hooks: No space left on device", naming no file. Now the line names
    the settings file and says it is unchanged, exit 1."""
    import signal

    home, project = tmp_path / "home", tmp_path / "project"
    project.mkdir()
    settings = write(home / ".claude" / "settings.json", CLAUDE_SETTINGS)
    before = settings.read_bytes()

    def small_files() -> None:  # the child's writes past 64 bytes fail
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "recorder.cli",
            "hooks",
            "install",
            "claude",
            "--log-dir",
            str(tmp_path / "logs"),
            "--settings",
            str(settings),
        ],
        cwd=project,
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=small_files,
    )
    assert run.returncode == 1, run.stderr
    assert run.stderr.splitlines() == [
        f"persist: cannot write {settings}: File too large; it is unchanged"
    ]
    assert settings.read_bytes() == before
    assert sorted(p.name for p in settings.parent.iterdir()) == ["settings.json"]


def test_claude_disable_all_hooks_is_named_by_install_and_status(tmp_path: Path) -> None:
    """As Gemini's hooksConfig.enabled: false is: a warning at install, a problem line
    and exit 1 at status (it said "installed (all events)", nothing else)."""
    home, project = tmp_path / "home", tmp_path / "project"
    project.mkdir()
    user_claude = write(home / ".claude" / "settings.json", '{"disableAllHooks": true}\n')
    logs = tmp_path / "logs"
    out = persist(home, project, "hooks", "install", "claude", "--log-dir", str(logs))
    assert out.returncode == 0, out.stderr
    assert f"warning: {user_claude}: disableAllHooks is true, Claude Code runs no hooks" in (
        out.stderr
    )
    for args in (
        ("hooks", "status", "claude"),
        ("hooks", "status", "--settings", str(user_claude)),
    ):
        status = persist(home, project, *args)
        assert f"claude: {user_claude}: installed (all events)" in status.stdout
        problem = f"  problem: disableAllHooks is true in {user_claude}: Claude Code runs no hooks"
        assert problem in status.stdout, status.stdout
        assert status.returncode == 1


def test_an_older_installs_short_precompact_timeout_is_named_and_updated(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Installs before 2026-12-07 gave PreCompact 10 s, too short for a long transcript's
    copy: status names it, install again updates it; the start hook still counts."""
    from recorder.hooks.agents import Agent
    from recorder.hooks.settings import start_hook_for

    home, project = tmp_path / "home", tmp_path / "project"
    project.mkdir()
    logs = tmp_path / "logs"
    out = persist(home, project, "hooks", "install", "claude", "--log-dir", str(logs))
    assert out.returncode == 0, out.stderr
    settings = home / ".claude" / "settings.json"
    data = json.loads(settings.read_text())
    data["hooks"]["PreCompact"][0]["hooks"][0]["timeout"] = 10  # as the older install wrote
    settings.write_text(json.dumps(data))
    status = persist(home, project, "hooks", "status", "claude")
    problem = (
        "  problem: timeout shorter than this version installs (PreCompact 10 s): "
        f"`persist hooks install claude --log-dir {logs}` again updates it"
    )
    assert problem in status.stdout and status.returncode == 1, status.stdout
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(home / ".claude"))
    assert start_hook_for(Agent.CLAUDE, logs, project)  # its start hook runs all the same
    again = persist(home, project, "hooks", "install", "claude", "--log-dir", str(logs))
    assert "updated PreCompact" in again.stdout, again.stdout
    assert "problem:" not in persist(home, project, "hooks", "status", "claude").stdout


@pytest.mark.parametrize("agent", ["claude", "gemini"])
def test_hooks_whose_program_is_gone_are_a_problem_until_installed_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, agent: str
) -> None:
    """The persist the hooks run was removed (a virtualenv deleted or moved): the agent
    fails every hook and records nothing, and status said "installed (all events)",
    exit as healthy. Now one problem line names the program, the start hook does not
    count for the launcher, and installing again puts this persist back."""
    from recorder.hooks.agents import Agent
    from recorder.hooks.settings import start_hook_for

    home, project = tmp_path / "home", tmp_path / "project"
    project.mkdir()
    logs = tmp_path / "logs"
    out = persist(home, project, "hooks", "install", agent, "--log-dir", str(logs))
    assert out.returncode == 0, out.stderr
    settings = home / f".{agent}" / "settings.json"
    if agent == "gemini":  # Gemini CLI runs no hooks at all in a folder it does not trust
        (home / ".gemini" / "trustedFolders.json").write_text(
            json.dumps({str(project): "TRUST_FOLDER"})
        )
    text = settings.read_text()
    program = json.loads(text)["hooks"]["SessionStart"][0]["hooks"][0]["command"].split()[0]
    assert os.path.isabs(program) and program in text
    gone = str(tmp_path / "old-venv" / "bin" / "persist")
    settings.write_text(text.replace(program, gone))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(home / ".claude"))
    monkeypatch.setenv("GEMINI_CLI_HOME", str(home))
    assert not start_hook_for(Agent(agent), logs, project)
    status = persist(home, project, "hooks", "status", agent)
    problem = f"  problem: the hooks run {gone}, which is not there (persist moved or uninstalled?)"
    assert status.stdout.count(problem) == 1 and status.returncode == 1, status.stdout
    logs.mkdir(mode=0o700)  # doctor of the folder the hooks record into names them too
    doctor = persist(home, project, "doctor", "--json", "--log-dir", str(logs))
    [found] = [f for f in json.loads(doctor.stdout)["findings"] if f["check"] == "service.hooks"]
    assert found["severity"] == "problem" and gone in found["summary"], found
    assert found["fix"] == f"persist hooks install {agent} --log-dir {logs}"
    assert doctor.returncode == 9, doctor
    (tmp_path / "old-venv" / "bin").mkdir(parents=True)
    Path(gone).write_text("#!/bin/sh\n")  # there, but not executable
    status = persist(home, project, "hooks", "status", agent)
    assert f"{gone}, which is not an executable file" in status.stdout, status.stdout
    again = persist(home, project, "hooks", "install", agent, "--log-dir", str(logs))
    assert again.returncode == 0 and "updated SessionStart" in again.stdout, again.stdout
    assert "problem:" not in persist(home, project, "hooks", "status", agent).stdout
    assert start_hook_for(Agent(agent), logs, project)
    doctor = persist(home, project, "doctor", "--json", "--log-dir", str(logs))
    assert "service.hooks" not in doctor.stdout, doctor.stdout


@pytest.mark.parametrize("where", ["project", "settings", "user"])
def test_the_fix_named_for_hooks_whose_program_is_gone_installs_them_as_they_were(
    tmp_path: Path, where: str
) -> None:
    """The fix `hooks status` named was always `persist hooks install claude`: for
    project-scope or `--settings FILE` hooks it wrote new entries into the user's
    settings and left the broken ones (status then said the same again), and in any
    scope it dropped the hooks' `--log-dir` (sessions then recorded into the default
    folder) and `--restore`. Now the command names the file, the log folder and the
    restore policy the hooks had, quoted for a shell; run as shown, it fixes them."""
    import shlex

    home, project = tmp_path / "home", tmp_path / "project"
    project.mkdir()
    logs = tmp_path / "my logs"  # a space: the command must be quoted
    custom = tmp_path / "custom.json"
    place = {"project": ["--scope", "project"], "settings": ["--settings", str(custom)]}
    settings = {
        "project": project / ".claude" / "settings.json",
        "settings": custom,
        "user": home / ".claude" / "settings.json",
    }[where]
    args = [*place.get(where, []), "--log-dir", str(logs), "--restore"]
    assert persist(home, project, "hooks", "install", "claude", *args).returncode == 0
    text = settings.read_text()
    program = json.loads(text)["hooks"]["SessionStart"][0]["hooks"][0]["command"].split()[0]
    gone = str(tmp_path / "old-venv" / "bin" / "persist")
    settings.write_text(text.replace(program, gone))
    look = ["--settings", str(custom)] if where == "settings" else []
    status = persist(home, project, "hooks", "status", "claude", *look)
    options = [*place.get(where, []), "--log-dir", str(logs), "--restore=latest"]
    again = shlex.join(["persist", "hooks", "install", "claude", *options])
    problems = [line for line in status.stdout.splitlines() if "problem:" in line]
    assert len(problems) == 1 and status.returncode == 1, status.stdout
    assert problems[0].endswith(f"`{again}` again installs this persist's"), problems[0]
    if where == "user":  # doctor's fix for the folder they record into: the same command
        logs.mkdir(mode=0o700)
        doctor = persist(home, project, "doctor", "--json", "--log-dir", str(logs))
        findings = json.loads(doctor.stdout)["findings"]
        [found] = [f for f in findings if f["check"] == "service.hooks"]
        assert found["fix"] == again, found
    fixed = persist(home, project, *shlex.split(again)[1:])  # as a person pastes it
    assert fixed.returncode == 0, fixed.stderr
    status = persist(home, project, "hooks", "status", "claude", *look)
    assert "problem:" not in status.stdout, status.stdout
    start = json.loads(settings.read_text())["hooks"]["SessionStart"][0]["hooks"][0]
    words = shlex.split(start["command"])
    assert words[0] == program and "--restore=latest" in words
    assert words[words.index("--log-dir") + 1] == str(logs)
    if where != "user":  # nothing written into the user's settings
        assert not (home / ".claude" / "settings.json").exists()


@pytest.mark.parametrize("agent", ["claude", "gemini"])
def test_a_users_empty_group_keeps_its_place_through_install_and_uninstall(
    tmp_path: Path, agent: str
) -> None:
    """An event whose list holds an empty group of the user's (`{"hooks": []}`, as
    Claude Code's /hooks leaves one) before a group equal to the one we empty: taking
    ours out removed the first equal group, the user's, so its empty group moved to the
    end and uninstall did not give back the user's bytes. Install twice (our duplicate
    taken out), then uninstall: the file is as it was."""
    home = tmp_path / "home"
    text = (
        '{\n  "hooks": {\n    "SessionStart": [\n      {\n        "hooks": []\n      },\n'
        '      {\n        "matcher": "startup",\n        "hooks": [\n          {\n'
        '            "type": "command",\n            "command": "echo hello"\n'
        "          }\n        ]\n      }\n    ]\n  }\n}\n"
    )
    path = write(home / f".{agent}" / "settings.json", text)
    assert persist(home, tmp_path, "hooks", "install", agent).returncode == 0
    assert persist(home, tmp_path, "hooks", "uninstall", agent).returncode == 0
    assert path.read_text() == text
    # our entry twice, in groups of their own after the user's empty one: install keeps one
    data = json.loads(text)
    assert persist(home, tmp_path, "hooks", "install", agent).returncode == 0
    ours = json.loads(path.read_text())["hooks"]["SessionStart"][-1]
    data["hooks"]["SessionStart"] += [ours, json.loads(json.dumps(ours))]
    path.write_text(json.dumps(data))
    assert persist(home, tmp_path, "hooks", "install", agent).returncode == 0
    groups = json.loads(path.read_text())["hooks"]["SessionStart"]
    assert groups[0] == {"hooks": []} and groups[1]["matcher"] == "startup", groups
    assert groups[2:] == [ours], groups


def _waiting_on(folder: Path) -> int:
    """How many processes wait for an flock on `folder` (/proc/locks' "->" lines)."""
    st = folder.stat()
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(1 for line in lines if "->" in line and f" {inode} " in line)


def _hooks_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CLAUDE_CONFIG_DIR", "GEMINI_CLI_HOME")}
    env["HOME"] = str(tmp_path / "home")
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    return env


def _held_lock(path: Path) -> int:
    """An flock held on the file our `persist hooks` runs lock for the settings file
    `path` (with $XDG_STATE_HOME as `_hooks_env` sets it); close it to let go."""
    import fcntl

    from recorder.hooks.settings import lock_file
    from recorder.store.fsutil import make_private_dirs

    lock = lock_file(path)
    make_private_dirs(lock.parent)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_two_installs_at_once_into_one_file_keep_both_agents_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`hooks install claude` and `hooks install gemini` at once on one settings file
    (both agents in one `--settings` file): each read the file, and the second replace
    dropped the first one's entries, while both said "added". Now each holds an flock on
    the file's lock file in our state folder from its read to its replace: held here,
    both wait (and say so), nothing is written; let go, both agents' entries are there.
    An uninstall waits too. Nothing is added to the agent's folder."""
    from recorder.hooks.settings import lock_file
    from tests.support import wait_for

    folder, logs = tmp_path / "agents", tmp_path / "logs"
    settings = write(folder / "settings.json", '{"model": "opus"}\n')
    env = _hooks_env(tmp_path)
    monkeypatch.setenv("XDG_STATE_HOME", env["XDG_STATE_HOME"])
    lock = lock_file(settings)
    assert lock.parent == tmp_path / "state" / "agent-persist" / "hooks-locks"
    fd = _held_lock(settings)
    where = ("--settings", str(settings), "--log-dir", str(logs))
    installs = [
        subprocess.Popen(
            [sys.executable, "-m", "recorder.cli", "hooks", "install", agent, *where],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for agent in ("claude", "gemini")
    ]
    try:
        wait_for(lambda: _waiting_on(lock) == 2, 30, "both installs waiting for the lock")
        assert settings.read_text() == '{"model": "opus"}\n'
    finally:
        os.close(fd)
    for agent, proc in zip(("claude", "gemini"), installs, strict=True):
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert f"{agent}: {settings}: added SessionStart" in out
        assert f"persist: waiting for another `persist hooks` run that changes {settings}" in err
    data = json.loads(settings.read_text())
    text = json.dumps(data["hooks"]["SessionStart"])
    assert "--agent claude " in text and "--agent gemini " in text and data["model"] == "opus"
    assert sorted(p.name for p in folder.iterdir()) == [
        "settings.json",
        "settings.json.persist-backup",
    ]
    assert oct(lock.stat().st_mode & 0o777) == "0o600"
    fd = _held_lock(settings)
    try:
        uninstall = subprocess.Popen(
            [sys.executable, "-m", "recorder.cli", "hooks", "uninstall", "claude", *where[:2]],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: _waiting_on(lock) == 1, 30, "the uninstall waiting for the lock")
        assert "--agent claude " in settings.read_text()
    finally:
        os.close(fd)
    out, err = uninstall.communicate(timeout=60)
    assert uninstall.returncode == 0 and "removed SessionStart" in out, err
    text = settings.read_text()
    assert "--agent claude " not in text and "--agent gemini " in text


def test_an_install_waits_for_one_that_makes_the_settings_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs into a settings file whose folder is not there yet take turns too. The
    first run here is this test, holding what a run holds (`_one_at_a_time`) while it
    makes the folder and writes the file, as an install's write does; an install then
    waits for it and keeps what it wrote. Before 2026-12-07 the first run locked the
    folder above (the file's was not there) and the second the new folder, which no one
    held: both wrote at once, both said "added", and one agent's entries were lost."""
    from recorder.hooks.settings import _one_at_a_time
    from tests.support import wait_for

    settings, logs = tmp_path / "new" / "settings.json", tmp_path / "logs"
    where = ("--settings", str(settings), "--log-dir", str(logs))
    env = _hooks_env(tmp_path)
    monkeypatch.setenv("XDG_STATE_HOME", env["XDG_STATE_HOME"])
    err_file = tmp_path / "install.err"
    with _one_at_a_time(settings, None):
        settings.parent.mkdir(mode=0o700)  # what the first run's write makes...
        with err_file.open("w") as err:
            install = subprocess.Popen(
                [sys.executable, "-m", "recorder.cli", "hooks", "install", "gemini", *where],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        wait_for(
            lambda: install.poll() is not None or "waiting for another" in err_file.read_text(),
            30,
            "the install waiting or done",
        )
        assert install.poll() is None, err_file.read_text()  # it waits
        settings.write_text('{"model": "opus"}\n')  # ...and what it writes
    out, _ = install.communicate(timeout=60)
    said = err_file.read_text()
    assert install.returncode == 0 and f"gemini: {settings}: added SessionStart" in out, said
    assert f"persist: waiting for another `persist hooks` run that changes {settings}" in said
    data = json.loads(settings.read_text())
    assert data["model"] == "opus" and "--agent gemini " in json.dumps(data["hooks"])


def test_uninstall_names_ended_sessions_it_leaves_unsent(bus: Bus, tmp_path: Path) -> None:
    """An ended session waits in hooks/pending/ (its end came while no recorder ran);
    the next hook call of any session sends it. `hooks uninstall` took the last hooks
    recording into that folder out and said nothing: no hook call would ever send it,
    and `hooks status` no longer showed the folder. Now the uninstall that leaves no
    hook of ours recording there says, in one warning line per folder, how many wait
    and the install that gets them sent; while other hooks of ours (another agent's)
    still record there, they send them and nothing is said."""
    from tests.process.test_hooks_flow import cli_at_home
    from tests.process.test_hooks_pending import _ended_session, _pending

    bus.start_broker()  # no recorder: the session's end is heard by nobody
    _ended_session(bus, tmp_path, "w1", turns=1)
    assert len(_pending(bus.log_dir)) == 1
    home, logs = tmp_path / "home", str(bus.log_dir)
    home.mkdir()
    options = ("--log-dir", logs, "--publish-endpoint", bus.front, "--broker", bus.back)
    for agent in ("claude", "gemini"):
        assert cli_at_home(home, "hooks", "install", agent, *options).returncode == 0
    out = cli_at_home(home, "hooks", "uninstall", "claude")
    assert out.returncode == 0 and "removed SessionStart" in out.stdout, out.stderr
    assert out.stderr == ""  # gemini's hooks still send it
    out = cli_at_home(home, "hooks", "uninstall", "gemini")
    assert out.returncode == 0 and "removed SessionStart" in out.stdout, out.stderr
    again = f"persist hooks install gemini {' '.join(options)}"
    assert out.stderr == (
        f"persist: warning: 1 ended session waits in {logs}/hooks/pending/ to be sent, and "
        f"no hook of ours records into {logs} any more: nothing sends it until you run "
        f"`{again}` (then the next hook call of any session sends it, once a recorder "
        "listens)\n"
    ), out.stderr
    assert len(_pending(bus.log_dir)) == 1  # left as it was
    out = cli_at_home(home, "hooks", "install", "gemini", *options)
    assert out.returncode == 0 and "added SessionStart" in out.stdout


def test_status_names_the_sessions_that_owe_the_bus_and_since_when(tmp_path: Path) -> None:
    """A mark a busy hook call left (`hooks/sessions/<file>.owed/`) and an ended session
    in `hooks/pending/`: `hooks status` names each session, what it owes and since when,
    with a warning once one waits over an hour. Before 2026-12-07 it counted the pending
    ones only, and showed no mark at all."""
    from recorder.hooks.state import owe_subagent, set_pending, state_path

    home, logs = tmp_path / "home", tmp_path / "logs"
    write(home / ".claude" / "settings.json", CLAUDE_SETTINGS)
    assert (
        persist(home, tmp_path, "hooks", "install", "claude", "--log-dir", str(logs)).returncode
        == 0
    )
    mark = owe_subagent(state_path(logs, "claude", "busy"), "a5bdbc1", "/tmp/agent.jsonl")
    set_pending(state_path(logs, "claude", "ended"), True)
    out = persist(home, tmp_path, "hooks", "status", "claude")
    lines = out.stdout.splitlines()
    assert "  2 sessions owe the bus what their hooks could not send yet: a mark in " in out.stdout
    [busy] = [line for line in lines if line.startswith("    claude-busy: ")]
    assert busy.startswith(
        "    claude-busy: owes 1 sub-agent transcript (marked in claude-busy.json.owed/), since "
    ), busy
    assert any(
        line.startswith("    claude-ended: ended, waits in hooks/pending/, since ")
        for line in lines
    )
    assert "warning:" not in out.stdout
    os.utime(mark, (mark.stat().st_mtime - 7200,) * 2)
    out = persist(home, tmp_path, "hooks", "status", "claude")
    assert "  warning: 2 sessions owe the bus" in out.stdout, out.stdout
    assert "(marked in claude-busy.json.owed/), since 2.0h ago" in out.stdout, out.stdout


def test_gemini_hooks_in_a_folder_it_does_not_trust_are_a_problem(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Gemini CLI runs no hook from its settings (the project's, the user's, the
    system's) in a folder it does not trust. `hooks install gemini --scope project` in
    such a folder said "added", `hooks status` "installed (all events)", and the
    launcher counted on the start hook. Now: a warning at install, a problem line at
    status (exit 1), the start hook not counted; trusted (a rule in trustedFolders.json,
    the longest one holding the folder wins, or $GEMINI_CLI_TRUST_WORKSPACE), all well.
    The problem line names the fix that works: unset the variable that overrides every
    rule, repair a trustedFolders.json Gemini CLI cannot read (before 2026-12-07 it
    always named a TRUST_FOLDER rule, there already or of no use)."""
    from recorder.hooks.agents import Agent
    from recorder.hooks.settings import start_hook_for

    home, project, logs = tmp_path / "home", tmp_path / "work" / "project", tmp_path / "logs"
    project.mkdir(parents=True)
    args = ("hooks", "install", "gemini", "--scope", "project", "--log-dir", str(logs))
    out = persist(home, project, *args)
    assert out.returncode == 0 and "added SessionStart" in out.stdout, out.stderr
    rules = home / ".gemini" / "trustedFolders.json"
    asks = (
        f"Gemini CLI started in {project} asks whether to trust the folder (no rule in "
        f"{rules} holds it): unless trusted it runs no hooks from its settings"
    )
    assert out.stderr.startswith(f"persist: warning: {asks}"), out.stderr
    monkeypatch.setenv("GEMINI_CLI_HOME", str(home))
    monkeypatch.chdir(project)

    def said(kind: str, *env: tuple[str, str]) -> list[str]:
        """The status lines of `kind` ("problem" or "warning"); a problem is exit 1."""
        status = persist(home, project, "hooks", "status", "gemini", extra_env=dict(env))
        assert "installed (all events)" in status.stdout
        lines = status.stdout.splitlines()
        return [line for line in lines if line.startswith(f"  {kind}:")]

    def problems(*env: tuple[str, str]) -> list[str]:
        return said("problem", *env)

    # no rule: up to the user's answer at Gemini CLI's start, a warning; not counted on
    [doubt] = said("warning")
    assert doubt.startswith(f"  warning: {asks}"), doubt
    assert problems() == []
    assert not start_hook_for(Agent.GEMINI, logs, project)
    assert problems(("GEMINI_CLI_TRUST_WORKSPACE", "true")) == []
    assert said("warning", ("GEMINI_CLI_TRUST_WORKSPACE", "true")) == []
    write(rules, json.dumps({str(tmp_path / "work"): "TRUST_FOLDER"}))
    assert problems() == []
    assert start_hook_for(Agent.GEMINI, logs, project)
    # a variable overrides every rule: the fix is to unset it (the rule is there already)
    [problem] = problems(("GEMINI_CLI_TRUST_WORKSPACE", "false"))
    assert "not a trusted folder ($GEMINI_CLI_TRUST_WORKSPACE is false)" in problem
    assert problem.endswith(
        "whatever trustedFolders.json says; unset $GEMINI_CLI_TRUST_WORKSPACE: without it "
        "Gemini CLI trusts the folder and runs them"
    ), problem
    assert "TRUST_FOLDER rule" not in problem
    [problem] = problems(
        ("GEMINI_RESTRICTED_MODE", "true"), ("GEMINI_CLI_TRUST_WORKSPACE", "false")
    )
    assert problem.endswith(
        "unset $GEMINI_RESTRICTED_MODE and $GEMINI_CLI_TRUST_WORKSPACE: without them Gemini "
        "CLI trusts the folder and runs them"
    ), problem
    # a file Gemini CLI cannot read: it does not start at all; the fix is to repair it
    rules.write_text("{")
    [problem] = problems()
    assert f"Gemini CLI does not start at all while {rules} cannot be read (not JSON" in problem
    assert problem.endswith(
        "repair that file (JSON: each folder TRUST_FOLDER, TRUST_PARENT "
        "or DO_NOT_TRUST) or remove it"
    ), problem
    rules.write_text(
        json.dumps({str(tmp_path / "work"): "TRUST_FOLDER", str(project): "DO_NOT_TRUST"})
    )
    [problem] = problems()
    assert f"not a trusted folder ({rules}: '{project}' is DO_NOT_TRUST)" in problem, problem
    assert not start_hook_for(Agent.GEMINI, logs, project)


def test_gemini_hooks_switched_off_in_another_settings_file_are_a_problem(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Gemini CLI merges system defaults, user settings, a trusted project's own, then
    system settings: `hooksConfig.enabled` is the last one's that sets it, the
    `hooksConfig.disabled` lists are joined. Hooks installed in the user's settings
    were called installed, and counted on by the launcher, while a trusted project's
    `"enabled": false` or the system settings' `disabled` list kept Gemini CLI from
    running them; doctor's service.hooks said nothing either."""
    from recorder.hooks.agents import Agent
    from recorder.hooks.settings import start_hook_for

    home, project, logs = tmp_path / "home", tmp_path / "project", tmp_path / "logs"
    own = write(project / ".gemini" / "settings.json", '{"hooksConfig": {"enabled": false}}\n')
    write(home / ".gemini" / "trustedFolders.json", json.dumps({str(project): "TRUST_FOLDER"}))
    system = tmp_path / "etc" / "settings.json"
    env = {"GEMINI_CLI_SYSTEM_SETTINGS_PATH": str(system)}
    monkeypatch.setenv("GEMINI_CLI_HOME", str(home))
    monkeypatch.setenv("GEMINI_CLI_SYSTEM_SETTINGS_PATH", str(system))
    monkeypatch.chdir(project)
    out = persist(home, project, "hooks", "install", "gemini", "--log-dir", str(logs))
    assert out.returncode == 0 and "added SessionStart" in out.stdout, out.stderr
    off = f"hooksConfig.enabled is false in {own}: Gemini CLI runs no hooks"
    assert out.stderr == f"persist: warning: {off} (left as it is)\n", out.stderr

    user = home / ".gemini" / "settings.json"

    def status() -> str:
        said = persist(home, project, "hooks", "status", "gemini", extra_env=env)
        assert said.returncode == 1  # the recorder is stopped, or a problem
        return said.stdout

    assert f"gemini: {user}: installed (all events)\n  problem: {off}\n" in status()
    assert not start_hook_for(Agent.GEMINI, logs, project)
    write(system, '{"hooksConfig": {"enabled": true}}')  # read last: it wins
    assert "problem:" not in status()
    assert start_hook_for(Agent.GEMINI, logs, project)
    write(system, '{"hooksConfig": {"disabled": ["agent-persist-SessionStart"]}}')
    own.write_text('{"hooksConfig": {"disabled": ["agent-persist-AfterAgent"]}}')
    said = status()
    for file, name in ((own, "AfterAgent"), (system, "SessionStart")):
        assert f"  problem: disabled in hooksConfig.disabled of {file}: agent-persist-{name}\n" in (
            said
        ), said
    assert not start_hook_for(Agent.GEMINI, logs, project)
    logs.mkdir(mode=0o700)  # doctor of the folder the hooks record into names them too
    doctor = persist(home, project, "doctor", "--json", "--log-dir", str(logs), extra_env=env)
    found = [f for f in json.loads(doctor.stdout)["findings"] if f["check"] == "service.hooks"]
    assert [f["severity"] for f in found] == ["problem", "problem"], found
    assert (
        "agent-persist-SessionStart" in found[1]["summary"] and str(system) in found[1]["summary"]
    )
    # an untrusted project's own settings are not read: its "enabled": false counts no more
    own.write_text('{"hooksConfig": {"enabled": false}}')
    system.unlink()
    (home / ".gemini" / "trustedFolders.json").write_text("{}")
    said = persist(home, project, "hooks", "status", "gemini", extra_env=env).stdout
    assert "problem: hooksConfig.enabled" not in said, said
    assert "warning: Gemini CLI started in" in said and "asks whether to trust" in said, said


def test_claude_managed_settings_that_stop_user_hooks_are_a_problem(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Claude Code's managed (policy) settings were not read: with `disableAllHooks` or
    `allowManagedHooksOnly` true in /etc/claude-code/managed-settings.json (or a file of
    managed-settings.d/, merged in name order, a later file's value winning), Claude
    Code runs none of the user's hooks, yet install said nothing, status "installed (all
    events)" and no problem, doctor nothing, and the launcher counted on the start hook.
    Now each is named with its file and key; a managed `disableAllHooks: false` wins
    over the user's true (merged after it); a malformed managed file is a warning
    naming it (Claude Code ignores it), never a traceback."""
    from recorder.hooks.agents import Agent
    from recorder.hooks.settings import start_hook_for

    home, project, logs = tmp_path / "home", tmp_path / "project", tmp_path / "logs"
    project.mkdir()
    managed = tmp_path / "etc-claude-code"  # /etc/claude-code, moved for the test
    env = {"PERSIST_CLAUDE_MANAGED_DIR": str(managed)}
    monkeypatch.setenv("PERSIST_CLAUDE_MANAGED_DIR", str(managed))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(home / ".claude"))
    monkeypatch.chdir(project)
    base = write(managed / "managed-settings.json", '{"disableAllHooks": true}\n')
    args = ("hooks", "install", "claude", "--log-dir", str(logs))
    out = persist(home, project, *args, extra_env=env)
    assert out.returncode == 0 and "added SessionStart" in out.stdout, out.stderr
    off = (
        f"disableAllHooks is true in Claude Code's managed settings {base}: it runs no "
        "hooks, ours included (the administrator's policy)"
    )
    assert out.stderr == f"persist: warning: {off}\n", out.stderr
    user = home / ".claude" / "settings.json"

    def said(kind: str) -> list[str]:
        """The status lines of `kind` ("problem" or "warning")."""
        status = persist(home, project, "hooks", "status", "claude", extra_env=env)
        assert "Traceback" not in status.stderr, status.stderr
        assert f"claude: {user}: installed (all events)" in status.stdout, status.stdout
        assert status.returncode == 1  # the recorder is stopped, or a problem
        return [line for line in status.stdout.splitlines() if line.startswith(f"  {kind}:")]

    assert said("problem") == [f"  problem: {off}"]
    assert not start_hook_for(Agent.CLAUDE, logs, project)
    logs.mkdir(mode=0o700)  # doctor of the folder the hooks record into names it: no fix
    doctor = persist(home, project, "doctor", "--json", "--log-dir", str(logs), extra_env=env)
    found = [f for f in json.loads(doctor.stdout)["findings"] if f["check"] == "service.hooks"]
    assert [(f["severity"], f["summary"], f["fix"]) for f in found] == [
        ("problem", f"claude hooks in {user}: {off}", None)
    ], found

    # a drop-in read after the base file: its false wins, its allowManagedHooksOnly stops ours
    drop = managed / "managed-settings.d"
    ten = write(drop / "10-hooks.json", '{"disableAllHooks": false, "allowManagedHooksOnly": true}')
    only = (
        f"allowManagedHooksOnly is true in Claude Code's managed settings {ten}: it runs only "
        "the managed settings' hooks, none of ours (the administrator's policy)"
    )
    assert said("problem") == [f"  problem: {only}"]
    write(drop / "20-more.json", '{"allowManagedHooksOnly": false}')
    write(drop / ".30-hidden.json", '{"disableAllHooks": true}')  # not read by Claude Code
    write(drop / "40-other.txt", '{"disableAllHooks": true}')  # neither
    assert said("problem") == []
    assert start_hook_for(Agent.CLAUDE, logs, project)
    locked = write(drop / "50-lock.json", '{"strictPluginOnlyCustomization": ["skills", "hooks"]}')
    [problem] = said("problem")
    assert (
        f"strictPluginOnlyCustomization locks hooks in Claude Code's managed settings {locked}"
        in (problem)
    ), problem
    locked.unlink()

    # the user's own switch, overridden by the managed false (merged after it)
    write(user, json.dumps({**json.loads(user.read_text()), "disableAllHooks": True}))
    assert said("problem") == []
    assert start_hook_for(Agent.CLAUDE, logs, project)
    ten.unlink()  # the base file's true again: the managed switch is named
    assert said("problem") == [f"  problem: {off}"]

    # the remote managed settings' cache, when it holds settings, is the policy instead
    remote = write(home / ".claude" / "remote-settings.json", '{"allowManagedHooksOnly": true}')
    [problem] = said("problem")
    assert problem.startswith(
        "  problem: allowManagedHooksOnly is true in Claude Code's remote managed settings "
        f"(cached in {remote}): it runs only the managed settings' hooks"
    ), problem
    remote.write_text('{"model": "opus"}')  # /etc's disableAllHooks is not read then
    assert said("problem") == [
        f"  problem: disableAllHooks is true in {user}: Claude Code runs no hooks"
    ]
    remote.unlink()

    # a malformed managed file: Claude Code ignores it, we say so
    base.write_text("{not json")
    [warning] = said("warning")
    assert warning.startswith(f"  warning: {base} is not valid JSON"), warning
    assert "Claude Code ignores it" in warning, warning
    assert said("problem") == [
        f"  problem: disableAllHooks is true in {user}: Claude Code runs no hooks"
    ]
    base.write_text('{"disableAllHooks": "yes"}')  # no boolean: its schema refuses the file
    [warning] = said("warning")
    assert f"{base}: disableAllHooks is 'yes', not true or false" in warning, warning


def test_claude_hooks_installed_in_the_managed_settings_themselves_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An administrator enforcing recording installs our hooks into Claude Code's managed
    settings file itself, beside `allowManagedHooksOnly: true`: Claude Code runs exactly
    those (docs/hooks.md, `if(q?.allowManagedHooksOnly===!0)return q.hooks??{}`), and
    whatever the user's own `disableAllHooks` says. Before 2026-12-08 install warned
    "none of ours", `hooks status --settings` of that file said so as a problem (exit 1),
    plain `hooks status` "no agent-persist hooks installed", and the launcher did not
    count on the start hook. Only the managed `disableAllHooks`, or another source of
    managed settings in effect (the remote settings' cache), keeps them from running."""
    from recorder.hooks.agents import Agent
    from recorder.hooks.settings import start_hook_for

    home, project, logs = tmp_path / "home", tmp_path / "project", tmp_path / "logs"
    project.mkdir()
    managed = tmp_path / "etc-claude-code"  # /etc/claude-code, moved for the test
    env = {"PERSIST_CLAUDE_MANAGED_DIR": str(managed)}
    monkeypatch.setenv("PERSIST_CLAUDE_MANAGED_DIR", str(managed))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(home / ".claude"))
    monkeypatch.chdir(project)
    base = write(managed / "managed-settings.json", '{"allowManagedHooksOnly": true}\n')
    args = ("hooks", "install", "claude", "--settings", str(base), "--log-dir", str(logs))
    out = persist(home, project, *args, extra_env=env)
    assert out.returncode == 0 and "added SessionStart" in out.stdout, out.stderr
    assert out.stderr == "", out.stderr

    def status(*where: str) -> str:
        said = persist(home, project, "hooks", "status", "claude", *where, extra_env=env)
        assert "Traceback" not in said.stderr, said.stderr
        assert f"claude: {base}: installed (all events)\n" in said.stdout, said.stdout
        assert said.returncode == 1  # the recorder is stopped
        return said.stdout

    assert "problem:" not in status("--settings", str(base))
    plain = status()  # the user's and the project's settings, and the managed ones
    assert "problem:" not in plain and "no agent-persist hooks installed" not in plain, plain
    assert start_hook_for(Agent.CLAUDE, logs, project)
    user = write(home / ".claude" / "settings.json", '{"disableAllHooks": true}')
    assert "problem:" not in status("--settings", str(base))  # managed hooks run all the same
    assert start_hook_for(Agent.CLAUDE, logs, project)
    user.unlink()

    off = write(managed / "managed-settings.d" / "10-off.json", '{"disableAllHooks": true}')
    problems = [ln for ln in status().splitlines() if ln.startswith("  problem:")]
    assert problems == [
        f"  problem: disableAllHooks is true in Claude Code's managed settings {off}: it runs "
        "no hooks, ours included (the administrator's policy)"
    ], problems
    assert not start_hook_for(Agent.CLAUDE, logs, project)
    off.unlink()

    remote = write(home / ".claude" / "remote-settings.json", '{"model": "opus"}')
    problems = [ln for ln in status("--settings", str(base)).splitlines() if "problem:" in ln]
    assert problems == [
        f"  problem: Claude Code's managed settings are its remote ones (cached in {remote}), "
        f"so it does not read {base}: it runs none of its hooks"
    ], problems
    assert not start_hook_for(Agent.CLAUDE, logs, project)


def test_hooks_in_claude_managed_settings_count_for_doctor_and_uninstall(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Our hooks installed in Claude Code's managed settings file (an administrator's
    install) run as the user's own. Before 2026-12-08 doctor's `service.hooks` read only
    the user's settings, so it said nothing of managed hooks recording the folder that
    Claude Code does not run; and `hooks uninstall` of the user's hooks warned that the
    ended sessions waiting in hooks/pending/ had no hook of ours left to send them,
    while the managed hooks still record there."""
    from recorder.hooks.state import set_pending, state_path

    home, project, logs = tmp_path / "home", tmp_path / "project", tmp_path / "logs"
    project.mkdir()
    managed = tmp_path / "etc-claude-code"  # /etc/claude-code, moved for the test
    env = {"PERSIST_CLAUDE_MANAGED_DIR": str(managed), "CLAUDE_CONFIG_DIR": str(home / ".claude")}
    monkeypatch.chdir(project)
    base = write(managed / "managed-settings.json", '{"allowManagedHooksOnly": true}\n')
    for where in (("--settings", str(base)), ()):  # the managed file's, and the user's
        args = ("hooks", "install", "claude", *where, "--log-dir", str(logs))
        out = persist(home, project, *args, extra_env=env)
        assert out.returncode == 0 and "added SessionStart" in out.stdout, out.stderr
    set_pending(state_path(logs, "claude", "ended"), True)  # an ended session waits

    def hooks_found() -> list[tuple[str, str]]:
        doctor = persist(home, project, "doctor", "--json", "--log-dir", str(logs), extra_env=env)
        findings = json.loads(doctor.stdout)["findings"]
        return [(f["severity"], f["summary"]) for f in findings if f["check"] == "service.hooks"]

    user = home / ".claude" / "settings.json"
    only = f"allowManagedHooksOnly is true in Claude Code's managed settings {base}"
    found = hooks_found()  # the user's hooks do not run; the managed ones do
    assert [s for s, _ in found] == ["problem"] and f"hooks in {user}: {only}" in found[0][1]

    out = persist(home, project, "hooks", "uninstall", "claude", extra_env=env)
    assert out.returncode == 0 and "removed SessionStart" in out.stdout, out.stderr
    assert "warning" not in out.stderr, out.stderr  # the managed hooks still send it

    off = write(managed / "managed-settings.d" / "10-off.json", '{"disableAllHooks": true}')
    found = hooks_found()
    assert len(found) == 1 and found[0][0] == "problem", found
    assert f"claude hooks in {base}: disableAllHooks is true in" in found[0][1], found
    assert str(off) in found[0][1], found
