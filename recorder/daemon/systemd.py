"""A systemd user unit for the recorder, so the system's supervisor keeps it alive.

`persist service install` writes `~/.config/systemd/user/agent-persist-recorder.service`
and runs `systemctl --user daemon-reload` and `enable --now`; `uninstall` reverses
it. `Restart=on-failure` restarts a recorder that crashed or was killed, but not
one stopped cleanly (`persist stop` or `systemctl --user stop`): a clean SIGTERM
exits 0. No zmq, no textual.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from recorder.daemon.options import RecorderOptions, recorder_argv
from recorder.errors import BadOption
from recorder.store.fsutil import atomic_write, make_private_dirs
from recorder.store.jsontext import utf8_problem
from recorder.store.shell import shell_quote
from recorder.store.xdg import config_home

UNIT_NAME = "agent-persist-recorder.service"


def unit_dir() -> Path:
    return config_home() / "systemd" / "user"


def quote(arg: str) -> str:
    """One ExecStart= word: `%` and `$` escaped, quoted when it holds spaces or quotes.
    A control character is refused: a newline would end the line, and the rest would
    be read as a directive of its own."""
    if any(ord(c) < 0x20 or c == "\x7f" for c in arg):
        raise BadOption(f"{arg!r} holds a control character, which a systemd unit cannot carry")
    if not_utf8 := utf8_problem(arg):
        raise BadOption(
            f"{shell_quote(arg)} {not_utf8}: a systemd unit, UTF-8 text, cannot name it"
        )
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if escaped and not any(c in escaped for c in " \t\"'\\;"):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


UNIT_STOP_WAIT = 10.0
"""Seconds a stopping unit waits for room on a full disk (`--stop-wait`): under its
TimeoutStopSec=15, after which systemd kills it."""


@dataclass(frozen=True)
class UnitConfig:
    options: RecorderOptions  # what the recorder is told (its argv: `recorder_argv`)
    python: str = sys.executable
    restart_sec: float = 2.0  # seconds before a restart

    @property
    def log_dir(self) -> Path:
        return self.options.log_dir

    def exec_start(self) -> list[str]:
        # a stop on a full disk gives up, counted, before systemd's SIGKILL would
        # lose what it holds uncounted (TimeoutStopSec)
        wait = UNIT_STOP_WAIT if self.options.stop_wait is None else self.options.stop_wait
        return recorder_argv(replace(self.options, stop_wait=wait), python=self.python)


def unit_text(cfg: UnitConfig) -> str:
    exec_start = " ".join(quote(a) for a in cfg.exec_start())
    return f"""\
# Written by `persist service install`; `persist service uninstall` removes it.
[Unit]
Description=agent-persist recorder (journal of the ZeroMQ agent bus into {quote(str(cfg.log_dir))})
Documentation=man:systemd.service(5)
StartLimitIntervalSec=60
StartLimitBurst=10

[Service]
Type=simple
ExecStart={exec_start}
ExecReload=/bin/kill -HUP $MAINPID
# Crashed or killed: start again. Stopped cleanly (exit 0 after SIGTERM): stay stopped.
Restart=on-failure
RestartSec={cfg.restart_sec:g}
# SIGTERM drains, fsyncs and takes the shutdown checkpoint within 2 s (on a full disk
# it waits --stop-wait seconds for room, then counts what it gives up).
KillSignal=SIGTERM
TimeoutStopSec=15
UMask=0077
Environment=PYTHONUNBUFFERED=1
NoNewPrivileges=yes

[Install]
WantedBy=default.target
"""


@dataclass
class Step:
    argv: list[str]
    ran: bool
    code: int | None = None
    output: str = ""

    @property
    def command(self) -> str:
        return " ".join(self.argv)


def systemctl_available() -> bool:
    if shutil.which("systemctl") is None:
        return False
    try:
        out = subprocess.run(
            ["systemctl", "--user", "is-system-running"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    state = out.stdout.strip()
    return state not in ("", "offline") and "Failed to connect" not in out.stderr


def run_steps(commands: list[list[str]], execute: bool) -> list[Step]:
    steps = []
    for argv in commands:
        if not execute:
            steps.append(Step(argv, False))
            continue
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
            steps.append(Step(argv, True, out.returncode, (out.stdout + out.stderr).strip()))
        except (OSError, subprocess.SubprocessError) as exc:
            steps.append(Step(argv, True, None, str(exc)))
            break
    return steps


def install(
    cfg: UnitConfig,
    directory: Path | None = None,
    *,
    start: bool = True,
    execute: bool | None = None,
) -> tuple[Path, list[Step]]:
    """Write the unit; then reload, enable and start it if systemctl can reach the user bus."""
    text = unit_text(cfg)  # BadOption before anything is made
    directory = directory or unit_dir()
    make_private_dirs(directory)  # the folders it makes 0700 whatever the umask; others kept
    path = directory / UNIT_NAME
    atomic_write(path, text.encode())
    os.chmod(path, 0o644)  # systemd reads it; it holds no secret
    commands = [["systemctl", "--user", "daemon-reload"]]
    commands.append(["systemctl", "--user", "enable", *(["--now"] if start else []), UNIT_NAME])
    execute = systemctl_available() if execute is None else execute
    return path, run_steps(commands, execute)


def uninstall(
    directory: Path | None = None, *, execute: bool | None = None
) -> tuple[Path, bool, list[Step]]:
    directory = directory or unit_dir()
    path = directory / UNIT_NAME
    execute = systemctl_available() if execute is None else execute
    steps = run_steps([["systemctl", "--user", "disable", "--now", UNIT_NAME]], execute)
    existed = path.exists()
    path.unlink(missing_ok=True)
    steps += run_steps([["systemctl", "--user", "daemon-reload"]], execute)
    return path, existed, steps


def status(
    directory: Path | None = None, *, execute: bool | None = None
) -> tuple[Path, bool, list[Step]]:
    directory = directory or unit_dir()
    path = directory / UNIT_NAME
    execute = systemctl_available() if execute is None else execute
    steps = run_steps(
        [
            ["systemctl", "--user", "is-enabled", UNIT_NAME],
            ["systemctl", "--user", "is-active", UNIT_NAME],
        ],
        execute,
    )
    return path, path.exists(), steps


def _exec_start(path: Path) -> list[str] | None:
    """The words of the unit's ExecStart (systemd's `%%` and `$$` read back), if any."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            try:
                words = shlex.split(line[len("ExecStart=") :])
            except ValueError:
                return None
            return [w.replace("%%", "%").replace("$$", "$") for w in words]
    return None


def unit_log_dir(path: Path) -> Path | None:
    """The log folder the unit at `path` records (its ExecStart's --log-dir), if any."""
    words = _exec_start(path) or []
    for k, word in enumerate(words[:-1]):
        if word == "--log-dir":
            return Path(words[k + 1])
    return None


def records(path: Path, folder: Path) -> bool:
    """Whether the unit at `path` records `folder` (its ExecStart's --log-dir, both
    resolved; False when either cannot be)."""
    recorded = unit_log_dir(path)
    try:
        return recorded is not None and recorded.resolve() == folder.resolve()
    except OSError:
        return False


def _unit_word(query: str) -> str:
    """What `systemctl --user QUERY` says of the unit (`is-enabled`: enabled, disabled...;
    `is-active`: active, inactive...), "" when it cannot say."""
    try:
        out = subprocess.run(
            ["systemctl", "--user", query, UNIT_NAME],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


NO_MANAGER = (
    "no systemd user manager answers here (`systemctl --user` reaches no user bus: a "
    "container, WSL, SSH without lingering)"
)


@dataclass(frozen=True)
class ManagerView:
    """What the user's systemd manager says of the unit: whether one can be reached, and
    its `is-enabled` and `is-active` words."""

    reachable: bool
    enabled: str = ""
    active: str = ""

    @property
    def is_enabled(self) -> bool:
        """Started at login."""
        return self.enabled in ("enabled", "enabled-runtime")

    @property
    def started(self) -> bool:
        """The manager starts the unit: enabled, or active (running, starting, or
        waiting to restart)."""
        return self.reachable and (
            self.is_enabled or self.active in ("active", "activating", "reloading")
        )

    def start_command(self) -> str | None:
        """The `systemctl --user` command that has the manager start the unit (and start
        it at login), None when no manager answers or it does not know the unit."""
        if not self.reachable or self.enabled in ("", "not-found"):
            return None
        if self.is_enabled:
            return f"systemctl --user start {UNIT_NAME}"
        enable = f"systemctl --user enable --now {UNIT_NAME}"
        if self.enabled == "masked":  # enable refuses a masked unit
            return f"systemctl --user unmask {UNIT_NAME} && {enable}"
        return enable

    def sentence(self) -> str:
        """What the manager makes of the unit, in words (no command)."""
        if not self.reachable:
            return f"{NO_MANAGER}: nothing starts the unit"
        active = self.active or "state unknown"
        if self.is_enabled:
            return f"{self.enabled}: started at login, now {active}"
        if self.enabled in ("", "not-found"):
            return (
                "the user manager does not find the unit (is its folder one systemd "
                f"reads?): nothing starts it, now {active}"
            )
        if self.started:
            return f"{self.enabled}: {active} now, but not started at login"
        return f"{self.enabled}: nothing starts the unit, now {active}"


def manager_view() -> ManagerView:
    """Ask the user's systemd manager about the unit (`is-enabled`, `is-active`)."""
    if not systemctl_available():
        return ManagerView(False)
    return ManagerView(True, _unit_word("is-enabled"), _unit_word("is-active"))


def unit_started() -> bool:
    """Whether the user's systemd manager starts the unit: one can be reached, and the
    unit is enabled (started at login) or active (running, starting, or waiting to
    restart). A unit file only written (`--print-only`), disabled, or with no user
    manager to reach (a container, WSL, SSH without lingering) is never started."""
    return manager_view().started


def recording_unit(folder: Path) -> Path | None:
    """The user unit installed for `folder` (`persist service install`) whose program is
    there and which the user's systemd manager starts (`unit_started`): the folder is
    meant to be recorded all the time, so the last agent out leaves a launcher's
    recorder running rather than the folder unrecorded. None if there is none: a unit
    whose program is gone, or that nothing starts, records nothing (before 2026-12-08 a
    unit file alone kept the recorder running for good where no user manager runs)."""
    unit = unit_dir() / UNIT_NAME
    if not records(unit, folder) or unit_program_problem(unit) is not None:
        return None
    return unit if unit_started() else None


def unit_program_problem(path: Path) -> str | None:
    """Why systemd cannot start the unit at `path`: the program its ExecStart names (the
    Python of the virtualenv `persist service install` ran from) is gone or not
    executable, a virtualenv removed or moved; None when it can, or there is no unit.
    Before 2026-12-07 `persist service status` and doctor called such a unit installed."""
    words = _exec_start(path)
    if not words or not os.path.isabs(words[0]):
        return None
    program = words[0]
    if os.path.isfile(program) and os.access(program, os.X_OK):
        return None
    what = "is not there" if not os.path.lexists(program) else "is not an executable file"
    return (
        f"the unit runs {program}, which {what} (persist moved or uninstalled?): systemd "
        "cannot start the recorder"
    )


def reinstall_command(path: Path) -> str:
    """The `persist service install` that writes the unit at `path` again with this
    persist's program, for the same folder and bus."""
    words = _exec_start(path) or []
    argv = ["persist", "service", "install"]
    for name in ("--log-dir", "--broker", "--publish-endpoint", "--embedded"):
        for k, word in enumerate(words[:-1]):
            if word == name:
                argv += [name, words[k + 1]]
    if path.parent != unit_dir():
        argv += ["--unit-dir", str(path.parent)]
    return shlex.join(argv)
