"""`persist service`: the generated systemd user unit, checked and actually run."""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from recorder.daemon.options import RecorderOptions, recorder_argv
from recorder.daemon.systemd import UNIT_NAME, UNIT_STOP_WAIT, UnitConfig, quote, unit_text
from tests.demo_journal import build_demo
from tests.support import Bus, read_status, wait_for

pytestmark = pytest.mark.timeout(60)


def persist(
    *args: str, env: dict[str, str] | None = None, umask: int | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        preexec_fn=None if umask is None else lambda: os.umask(umask),
    )


def parse(text: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string(text)
    return cp


def exec_argv(unit: configparser.ConfigParser) -> list[str]:
    """ExecStart= as systemd splits it (quotes, then %% and $$ unescaped)."""
    words = shlex.split(unit["Service"]["ExecStart"])
    return [w.replace("%%", "%").replace("$$", "$") for w in words]


def test_quoting_follows_systemd_rules() -> None:
    assert quote("/usr/bin/python3") == "/usr/bin/python3"
    assert quote("/tmp/with space") == '"/tmp/with space"'
    assert quote("100%") == "100%%" and quote("$HOME") == "$$HOME"
    assert quote('say "hi"') == '"say \\"hi\\""'


def test_unit_restarts_on_failure_only_and_runs_the_recorder(tmp_path: Path) -> None:
    log_dir = tmp_path / "log dir with space%"
    options = RecorderOptions(
        log_dir=log_dir,
        broker="tcp://127.0.0.1:5555",
        publish_endpoint="tcp://127.0.0.1:5559",
        embedded="auto",
    )
    cfg = UnitConfig(options)
    unit = parse(unit_text(cfg))
    service = unit["Service"]
    assert service["Restart"] == "on-failure" and service["Type"] == "simple"
    assert service["KillSignal"] == "SIGTERM" and service["UMask"] == "0077"
    assert unit["Install"]["WantedBy"] == "default.target"
    argv = exec_argv(unit)
    # the one argv every recorder is started with; a stop on a full disk gives up (and
    # counts it) before systemd's SIGKILL at TimeoutStopSec would lose it uncounted
    assert argv == recorder_argv(replace(options, stop_wait=UNIT_STOP_WAIT))
    assert argv[:4] == [sys.executable, "-m", "recorder.cli", "record"]
    flags = dict(zip(argv[4::2], argv[5::2], strict=True))
    assert flags["--broker"] == "tcp://127.0.0.1:5555" and flags["--log-dir"] == str(log_dir)
    assert flags["--embedded"] == "auto" and flags["--publish-endpoint"] == "tcp://127.0.0.1:5559"
    assert float(flags["--stop-wait"]) < float(service["TimeoutStopSec"])


def test_install_status_uninstall(tmp_path: Path, bus: Bus) -> None:
    units = tmp_path / "units"
    log_dir = tmp_path / "unit-logs"
    bus.start_broker()
    out = persist(
        "service",
        "install",
        "--unit-dir",
        str(units),
        "--print-only",
        "--log-dir",
        str(log_dir),
        "--broker",
        bus.back,
        "--publish-endpoint",
        bus.front,
        "--embedded",
        "no",
    )
    assert out.returncode == 0, out.stderr
    path = units / UNIT_NAME
    assert f"wrote {path}" in out.stdout
    assert "run: systemctl --user daemon-reload" in out.stdout
    assert f"run: systemctl --user enable --now {UNIT_NAME}" in out.stdout
    assert oct(path.stat().st_mode & 0o777) == "0o644"

    # What systemd would start: the real command line, run here.
    argv = exec_argv(parse(path.read_text()))
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(
            lambda: (
                read_status(log_dir).get("pid") == proc.pid
                and read_status(log_dir).get("state") == "recording"
            ),
            what="unit's recorder",
        )
        status = persist(
            "service", "status", "--unit-dir", str(units), "--print-only", "--log-dir", str(log_dir)
        )
        assert f"(installed, records {log_dir})" in status.stdout
        assert "recorder    healthy" in status.stdout
        assert status.returncode == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0  # a clean stop exits 0: Restart=on-failure leaves it stopped
        status = persist(
            "service", "status", "--unit-dir", str(units), "--print-only", "--log-dir", str(log_dir)
        )
        assert "recorder    stopped" in status.stdout
        assert status.returncode == 3  # as `persist status`: a script sees it is not running
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    out = persist("service", "uninstall", "--unit-dir", str(units), "--print-only")
    assert out.returncode == 0 and f"removed {path}" in out.stdout
    assert f"run: systemctl --user disable --now {UNIT_NAME}" in out.stdout
    assert not path.exists()
    out = persist("service", "uninstall", "--unit-dir", str(units), "--print-only")
    assert "was not installed" in out.stdout


def test_a_unit_whose_program_is_gone_is_a_problem_until_installed_again(tmp_path: Path) -> None:
    """The virtualenv `persist service install` ran from removed or moved: systemd cannot
    start the unit (203/EXEC). Before 2026-12-07 `persist service status` said
    "installed" and doctor "ok", naming `systemctl --user start` as the fix."""
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    log_dir = build_demo(tmp_path / "logs")  # a folder recorded before, now stopped
    bus = ["--broker", "tcp://127.0.0.1:5999", "--publish-endpoint", "tcp://127.0.0.1:5998"]
    args = ("--print-only", "--log-dir", str(log_dir), *bus, "--embedded", "no")
    assert persist("service", "install", *args, env=env).returncode == 0
    unit = tmp_path / "config" / "systemd" / "user" / UNIT_NAME
    gone = tmp_path / "old-venv" / "bin" / "python3"
    text = unit.read_text()
    unit.write_text(text.replace(f"ExecStart={exec_argv(parse(text))[0]} ", f"ExecStart={gone} "))
    assert exec_argv(parse(unit.read_text()))[0] == str(gone)
    status = persist("service", "status", "--print-only", "--log-dir", str(log_dir), env=env)
    (problem,) = [ln for ln in status.stdout.splitlines() if ln.startswith("  problem:")]
    assert f"the unit runs {gone}, which is not there" in problem, status.stdout
    fix = problem.split("`")[1]
    assert shlex.split(fix) == [
        "persist", "service", "install", "--log-dir", str(log_dir.resolve()), "--broker",
        "tcp://127.0.0.1:5999", "--publish-endpoint", "tcp://127.0.0.1:5998", "--embedded", "no",
    ]  # fmt: skip
    assert status.returncode == 1
    doctor = persist("doctor", "--log-dir", str(log_dir), env=env)
    assert doctor.returncode == 9, doctor.stdout
    assert f"the unit runs {gone}, which is not there" in doctor.stdout, doctor.stdout
    assert f"systemctl --user start {UNIT_NAME}" not in doctor.stdout, doctor.stdout
    assert f"fix: {fix}" in doctor.stdout
    again = persist(*shlex.split(fix)[1:], "--print-only", env=env)  # (no systemd here)
    assert again.returncode == 0, again.stderr
    status = persist("service", "status", "--print-only", "--log-dir", str(log_dir), env=env)
    assert "problem:" not in status.stdout and status.returncode == 3, status.stdout


def test_install_while_another_recorder_records_the_folder_warns_how_to_hand_it_over(
    tmp_path: Path, bus: Bus
) -> None:
    """The unit's recorder cannot start while another holds the folder (systemd gives up
    after 10 tries in a minute); before 2026-12-07 install said nothing of it."""
    bus.start_broker()
    bus.start_recorder()
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    args = ("--print-only", "--log-dir", str(bus.log_dir), "--broker", bus.back)
    out = persist("service", "install", *args, env=env)
    assert out.returncode == 0, out.stderr
    (warning,) = [ln for ln in out.stdout.splitlines() if ln.startswith("warning:")]
    assert bus.recorder is not None and f"recorder PID {bus.recorder.pid}" in warning, warning
    assert f"persist stop --log-dir {bus.log_dir} && systemctl --user restart {UNIT_NAME}" in (
        warning
    )
    again = persist("service", "install", *args, env=env)  # the unit's own recorder, maybe
    assert "warning:" not in again.stdout, again.stdout

    # no user manager to reach: no systemctl command can hand it over (before
    # 2026-12-08 the line named one, which failed "Failed to connect to bus")
    from tests.support import fake_systemctl

    assert persist("service", "uninstall", "--print-only", env=env).returncode == 0
    fake_systemctl(tmp_path / "bin", bus=False)
    env["PATH"] = f"{tmp_path / 'bin'}:{env['PATH']}"
    out = persist("service", "install", *args[1:], env=env)
    (warning,) = [ln for ln in out.stdout.splitlines() if ln.startswith("warning:")]
    assert "no systemd user manager answers here" in warning, warning
    assert "systemctl --user restart" not in warning, warning


def test_default_unit_dir_is_the_user_config(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    out = persist("service", "install", "--print-only", "--log-dir", str(tmp_path / "l"), env=env)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "config" / "systemd" / "user" / UNIT_NAME).is_file()


def test_the_unit_folders_it_makes_are_private_whatever_the_umask(tmp_path: Path) -> None:
    """Under umask 000 the unit's folder and those above it (~/.config, ~/.config/systemd)
    were made 0777: another local user could put a unit of theirs there, run as you.
    They are made 0700; one that exists keeps its mode."""
    config = tmp_path / "config"
    env = {**os.environ, "XDG_CONFIG_HOME": str(config)}
    args = ("service", "install", "--print-only", "--log-dir", str(tmp_path / "l"))
    out = persist(*args, env=env, umask=0)
    assert out.returncode == 0, out.stderr
    for folder in (config, config / "systemd", config / "systemd" / "user"):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    assert (config / "systemd" / "user" / UNIT_NAME).stat().st_mode & 0o777 == 0o644
    shutil.rmtree(config / "systemd")
    os.chmod(config, 0o755)
    assert persist(*args, env=env, umask=0).returncode == 0
    assert config.stat().st_mode & 0o777 == 0o755
    assert (config / "systemd" / "user").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("manager", "counted"),
    [
        ("no systemctl", False),
        ("no user bus", False),
        ("disabled, inactive", False),
        ("enabled, inactive", True),  # started at the next login
        ("disabled, active", True),  # started by hand: it runs, or will when free
        ("disabled, activating", True),  # waiting to restart
    ],
)
def test_a_unit_records_the_folder_only_if_a_user_manager_starts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, manager: str, counted: bool
) -> None:
    """`recording_unit` keeps a launcher's recorder running past its last agent, for the
    unit to take the folder over. Before 2026-12-08 the file alone was enough: a unit
    only written (`--print-only`), disabled, or on a machine with no user manager to
    reach (a container, WSL, SSH without lingering) left the recorder running for good,
    the line naming a `systemctl --user start` that could not work."""
    from recorder.daemon.systemd import install, recording_unit
    from tests.support import fake_systemctl

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    log_dir = tmp_path / "logs"
    path, _ = install(UnitConfig(RecorderOptions(log_dir=log_dir)), execute=False)
    bin_dir = tmp_path / "bin"
    if manager == "no systemctl":
        bin_dir.mkdir()
    elif manager == "no user bus":
        fake_systemctl(bin_dir, bus=False)
    else:
        enabled, active = manager.split(", ")
        fake_systemctl(bin_dir, enabled=enabled, active=active)
    monkeypatch.setenv("PATH", str(bin_dir))  # the only systemctl there is
    assert recording_unit(log_dir) == (path if counted else None)
    assert recording_unit(tmp_path / "other") is None  # a unit for another folder: never


@pytest.mark.parametrize(
    ("manager", "line", "command"),
    [
        ("no user bus", "no systemd user manager answers here", "persist record"),
        ("disabled, inactive", "disabled: nothing starts the unit", "systemctl --user enable"),
        ("enabled, inactive", "enabled: started at login", None),
    ],
)
def test_service_status_says_whether_the_user_manager_starts_the_unit(
    tmp_path: Path, manager: str, line: str, command: str | None
) -> None:
    """A unit only written (`--print-only`), disabled, or on a machine with no user
    manager to reach was "installed", nothing more: `persist service status` now says
    what the manager makes of it and the command that works there (before 2026-12-08
    the only hint named commands that fail with no user bus). The exit code stays the
    recorder's (3: not running)."""
    from tests.support import fake_systemctl

    bin_dir = tmp_path / "bin"
    if manager == "no user bus":
        fake_systemctl(bin_dir, bus=False)
    else:
        enabled, active = manager.split(", ")
        fake_systemctl(bin_dir, enabled=enabled, active=active)
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
    }
    log_dir = build_demo(tmp_path / "logs")  # recorded before, now stopped
    assert persist("service", "install", "--print-only", "--log-dir", str(log_dir), env=env)
    status = persist("service", "status", "--log-dir", str(log_dir), env=env)
    assert status.returncode == 3, status.stdout + status.stderr
    (said,) = [ln for ln in status.stdout.splitlines() if ln.startswith("manager ")]
    assert line in said, status.stdout
    if command is None:
        assert "`" not in said
    else:
        assert said.split("`")[-2].startswith(command), said  # the last one named
    if manager == "no user bus":
        start = shlex.split(said.split("`")[-2])
        assert start[-3:] == ["--log-dir", str(log_dir), "--detach"], start
        assert "run the commands above" not in status.stdout  # they cannot run here either


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    path = tmp_path / UNIT_NAME
    cfg = UnitConfig(
        RecorderOptions(
            log_dir=tmp_path / "logs",
            broker="tcp://127.0.0.1:5555",
            publish_endpoint="tcp://127.0.0.1:5559",
        )
    )
    path.write_text(unit_text(cfg))
    out = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=30
    )
    if out.returncode != 0 and UNIT_NAME not in out.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {out.stderr.strip()[:200]}")
    assert out.returncode == 0, out.stderr
    assert UNIT_NAME not in out.stderr  # no warning about our unit


def test_one_unit_one_folder(tmp_path: Path) -> None:
    """There is one unit per user: installing it for a second folder replaced the first
    folder's unit without a word (that folder stopped being recorded), and status and
    uninstall did not say which folder the unit records."""
    units = tmp_path / "units"
    first, second = tmp_path / "j3", tmp_path / "j4"
    opts = ["--unit-dir", str(units), "--print-only"]
    assert persist("service", "install", *opts, "--log-dir", str(first)).returncode == 0
    again = persist("service", "install", *opts, "--log-dir", str(first))
    assert again.returncode == 0  # the same folder: rewritten, as an update
    out = persist("service", "install", *opts, "--log-dir", str(second))
    assert out.returncode == 1 and f"records {first}" in out.stderr, out.stderr
    assert str(first) in (units / UNIT_NAME).read_text()
    status = persist("service", "status", *opts, "--log-dir", str(second))
    assert f"records {first}" in status.stdout and "not this folder" in status.stdout
    gone = persist("service", "uninstall", *opts, "--log-dir", str(second))
    assert gone.returncode == 0 and f"(it recorded {first})" in gone.stdout
    assert persist("service", "install", *opts, "--log-dir", str(second)).returncode == 0


def test_the_recorder_argv_reads_back_as_the_same_options(tmp_path: Path) -> None:
    """`recorder_argv` (`record --detach`, the launcher, the systemd unit) gave
    `--retention-max-size` in bytes without a unit, which the recorder refuses since
    sizes need one: every detached recorder with a size policy exited 2 at once. Every
    option set, the argv parses back through `persist record` to the same options."""
    from recorder.cli.main import build_parser
    from recorder.cli.record import _options
    from recorder.store.retention_config import Policy

    options = RecorderOptions(
        log_dir=tmp_path / "logs",
        broker="tcp://127.0.0.1:5555",
        publish_endpoint="tcp://127.0.0.1:5559",
        embedded="auto",
        stop_wait=7.5,
        search_index=False,
        secrets=False,
        compress=False,
        monitor=False,
        retention=Policy(older_than=90 * 86400.0, max_size=600 * 1024),
        retention_interval=600.0,
        trash_grace=14 * 86400.0,
    )
    argv = recorder_argv(options)
    assert argv[:4] == [sys.executable, "-m", "recorder.cli", "record"]
    back = _options(build_parser("record").parse_args(argv[3:]))
    for name in ("retention", "retention_interval", "trash_grace", "stop_wait", "log_dir"):
        assert getattr(back, name) == getattr(options, name), name
    for name in ("search_index", "secrets", "compress", "monitor", "broker", "embedded"):
        assert getattr(back, name) == getattr(options, name), name


def test_a_control_character_in_the_log_folder_is_refused_not_written(tmp_path: Path) -> None:
    """A newline in --log-dir cut ExecStart= in two: the unit recorded another folder
    (its first line) and ran a stray line, and install said nothing (exit 0)."""
    units = tmp_path / "units"
    odd = tmp_path / "new\nline"
    out = persist(
        "service", "install", "--unit-dir", str(units), "--print-only", "--log-dir", str(odd)
    )
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.splitlines()
    assert "control character" in line and repr(str(odd)) in line, line
    assert not (units / UNIT_NAME).exists()


RETENTION_FLAGS = ("--retention-older-than", "--retention-max-size", "--retention-interval")


def test_the_unit_carries_no_retention_so_retention_toml_edits_reach_its_recorder(
    tmp_path: Path, bus: Bus
) -> None:
    """`service install` wrote retention.toml's values, and the defaults, into ExecStart
    as options (`--retention-older-than 7776000.0s --retention-interval 600.0s
    --trash-grace 1209600.0s`): options win over the file, so a later edit of the file
    never reached the unit's recorder, which went on pruning after retention was turned
    off, and a shorter interval written later was not heeded. The unit passes only what
    was given; its recorder reads the file when it starts."""
    from tests.demo_journal import DemoWriter

    units, log_dir = tmp_path / "units", tmp_path / "logs"
    w = DemoWriter.open(log_dir, segment_bytes=4096)  # closed segments, an hour old
    for i in range(40):
        w.message(time.time() - 3600 + i, "coder", f"message {i} " + "x" * 400)
    w.close()
    before = sorted(p.name for p in (log_dir / "segments").iterdir())
    toml = log_dir / "retention.toml"
    toml.write_text('[retention]\nolder_than = "90d"\n')
    bus.start_broker()
    out = persist(
        "service", "install", "--unit-dir", str(units), "--print-only", "--log-dir",
        str(log_dir), "--broker", bus.back, "--publish-endpoint", bus.front, "--embedded", "no",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    argv = exec_argv(parse((units / UNIT_NAME).read_text()))
    baked = [a for a in argv if a.startswith(RETENTION_FLAGS) or a == "--trash-grace"]
    assert baked == [], argv
    # retention is now asked of the file: every second, what is older than 1 s
    toml.write_text('[retention]\nolder_than = "1s"\ninterval = "1s"\n')
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        trash = log_dir / "trash"
        # its first pass comes after min(30 s, the interval): before, the 600 s baked in
        wait_for(lambda: trash.is_dir() and any(trash.iterdir()), timeout=15, what="a prune")
        after = sorted(p.name for p in (log_dir / "segments").iterdir())
        assert not set(before) <= set(after), (before, after)  # the oldest went
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_detached_recorder_reads_retention_toml_itself(tmp_path: Path, bus: Bus) -> None:
    """`persist record --detach` (and the launcher and demo, through the same argv)
    started its recorder with retention.toml's values and the defaults as options; it
    is started with the options given only, and reads the file itself."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir(mode=0o700)
    (log_dir / "retention.toml").write_text('[retention]\nolder_than = "90d"\n')
    bus.start_broker()
    out = persist(
        "record", "--detach", "--log-dir", str(log_dir), "--broker", bus.back,
        "--publish-endpoint", bus.front, "--embedded", "no", "--search-index", "off",
        "--monitor", "off", "--trash-grace", "3d",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    try:
        pid = read_status(log_dir)["pid"]
        words = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        assert not [w for w in words if w.startswith(RETENTION_FLAGS)], words
        assert words[words.index("--trash-grace") + 1] == f"{3 * 86400.0!r}s"  # as given
    finally:
        persist("stop", "--log-dir", str(log_dir))
