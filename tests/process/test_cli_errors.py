"""Bad invocations of the real CLI: one `persist:` line naming the problem, the
documented exit code, never a traceback."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import orjson
import psutil
import pytest

from recorder.daemon.options import RecorderOptions
from recorder.daemon.spawn import SpawnError, _stop, spawn_recorder
from recorder.launch.menu import Menu, PickerFailed
from tests.support import free_port, wait_for

pytestmark = pytest.mark.timeout(120)

USAGE, FAILED = 2, 1  # recorder/cli/main.py
EXIT_STOPPED = 3  # recorder/cli/common.py: `persist status` of a stopped recorder

# (argv, exit code, what the line must name); {file} is a file in the test's folder
BAD = [
    (["record", "--segment-mb", "0"], USAGE, "--segment-mb"),
    (["record", "--segment-mb", "0.0001"], USAGE, "--segment-mb"),
    (["record", "--segment-mb", "nan"], USAGE, "--segment-mb"),
    (["record", "--max-message-mb", "-1"], USAGE, "--max-message-mb"),
    (["record", "--checkpoint-interval", "-5"], USAGE, "--checkpoint-interval"),
    (["record", "--fsync-interval-ms", "-200"], USAGE, "--fsync-interval-ms"),
    (["record", "--broker", "garbage://x"], USAGE, "--broker"),
    (["record", "--publish-endpoint", "tcp://nope"], USAGE, "--publish-endpoint"),
    (["record", "--log-dir", "{file}"], USAGE, "--log-dir"),
    (["status", "--log-dir", "{file}"], USAGE, "--log-dir"),
    (["record", "--log-dir", "{file}/sub", "--detach"], USAGE, "cannot be a folder: "),
    (["checkpoint", "--log-dir", "{file}"], USAGE, "--log-dir"),
    (["send", "agents.x", "hi", "--endpoint", "garbage://x"], USAGE, "--endpoint"),
    (["send", "agents.x", "hi", "--wait", "-1"], USAGE, "--wait"),
    (["send", "agents.x", "{bad json"], USAGE, "MESSAGE"),
    (["send", "agents.x", "bad \udcff"], USAGE, "MESSAGE is not valid UTF-8 (byte 0xff"),
    (["send", "agents.x", "--text", "\udcfe"], USAGE, "MESSAGE is not valid UTF-8"),
    (["send", "agents.\udcff", "hi"], USAGE, "TOPIC is not valid UTF-8"),
    (["send", "agents.x", "[" * 1021 + "]" * 1021], USAGE, "MESSAGE cannot be sent"),
    (["export", "latest", "--all", "--format", "md"], USAGE, "--all is the whole journal"),
    (["export", "--from", "a", "--all", "--format", "md"], USAGE, "--all is the whole journal"),
    (["replay", "latest", "--endpoint", "garbage://x"], USAGE, "--endpoint"),
    (["replay", "latest", "--speed", "0"], USAGE, "--speed"),
    (["broker", "--frontend", "garbage://x"], USAGE, "--frontend"),
    (["broker", "--hwm", "0"], USAGE, "--hwm"),
    (["broker", "--hwm", "3000000000"], USAGE, "--hwm: must be at most 2,147,483,647"),
    (["search", "x", "--limit", "9223372036854775808"], USAGE, "--limit"),
    (["send", "agents.x", '{"k":' * 1020 + "{}" + "}" * 1020], USAGE, "MESSAGE cannot be sent"),
    (["send", "agents.x", "hi", "--agent", "\udcff"], USAGE, "--agent is not valid UTF-8"),
    (["send", "agents.x", "hi", "--agent", "x" * 201], USAGE, "--agent must be 1 to 200"),
    (["search", "since:0001-01-01"], USAGE, "time '0001-01-01' is out of range"),
    (["search", "tier:7"], USAGE, "tier:7 is not a tier number"),
    (["search", "from:\udcff"], USAGE, "from: value is not valid UTF-8"),
    (["search", "topic:a\udcfe"], USAGE, "topic: value is not valid UTF-8"),
    (["stats", "--since", "0001-01-01"], USAGE, "out of range"),
    (["record", "--log-dir", ""], USAGE, "--log-dir: an empty folder name"),
    (["status", "--log-dir", " "], USAGE, "--log-dir: an empty folder name"),
    (["record", "--max-backlog-mb", "0"], USAGE, "--max-backlog-mb"),
    (["replay", "latest", "--verbatim", "--retopic", "\udcff"], USAGE, "--retopic is not valid"),
    (["launch", "--broker", "garbage://x", "--", "true"], USAGE, "--broker"),
    (["demo", "--pace", "-1"], USAGE, "--pace"),
    (["stop", "--timeout", "-1"], USAGE, "--timeout"),
    (["service", "install", "--unit-dir", "/proc/nope", "--print-only"], FAILED, "--unit-dir"),
    (["service", "install", "--broker", "garbage://x", "--print-only"], USAGE, "--broker"),
    (["record", "--no-such-option"], USAGE, "--no-such-option"),
    (["record", "--rules", "{file}"], USAGE, "a-file is not valid TOML"),
    (["record", "--rules", "{file}", "--detach"], USAGE, "a-file is not valid TOML"),
    (["record", "--rules", "no-such.toml", "--detach"], USAGE, "cannot read the rules file"),
    (["search", "deploy OR"], USAGE, "bad query: OR needs a word"),
    (["search", "tier:high"], USAGE, "not a tier number"),
    (["search", "-only -exclusions"], USAGE, "besides the exclusions"),
    (["search", "-only", "-exclusions"], USAGE, "besides the exclusions"),
    (["search", "-from:coder"], USAGE, "besides the exclusions"),
    (["search", "-has:secret -redis"], USAGE, "besides the exclusions"),
    (["search"], USAGE, "empty query"),
    (["search", "x", "--limt", "3"], USAGE, "unrecognized arguments: --limt"),
    (["search", "since:someday x"], USAGE, "cannot read time"),
    (["search", "--limit", "0", "x"], USAGE, "--limit"),
    (["search", "--fuzzy", "--no-fuzzy", "x"], USAGE, "--no-fuzzy"),
    (["search", "x", "--log-dir", "{file}"], USAGE, "--log-dir"),
    (["search", "x", "--log-dir", "{file}-gone"], FAILED, "(a folder that does not exist)"),
    (["checkpoints", "--log-dir", "{file}-gone"], FAILED, "(a folder that does not exist)"),
    (["trash", "list", "--log-dir", "{file}-gone"], FAILED, "(a folder that does not exist)"),
    (["restore", "--list", "--log-dir", "{file}-gone"], FAILED, "(a folder that does not exist)"),
    (["restore", "--clean", "--log-dir", "{file}-gone"], FAILED, "(a folder that does not exist)"),
    (["trash", "empty", "--log-dir", "{file}-gone"], FAILED, "(a folder that does not exist)"),
    (
        ["trash", "restore", "x", "--log-dir", "{file}-gone"],
        FAILED,
        "(a folder that does not exist)",
    ),
    (["stats", "--since", "someday"], USAGE, "cannot read time"),
    (["stats", "--since", "1M"], USAGE, "M could be minutes or months"),
    (["search", "since:1M x"], USAGE, "M could be minutes or months"),
    (["stats", "--since", ""], USAGE, "--since is empty"),
    (["stats", "--until", "2026-12-07T25:43:33Z"], USAGE, "'2026-12-07T25:43:33Z'"),
    (["stats", "--since", "1h", "--until", "2h"], USAGE, "--since 1h is not before --until 2h"),
    (["pin", ""], FAILED, "an empty checkpoint name"),
    (["reindex"], FAILED, "no journal"),
    (["reindex", "--workers", "0"], USAGE, "--workers"),
    (["export", "latest", "--format", "md", "-o", ""], USAGE, "an empty file name"),
    (["reindex", "--workers", "5"], USAGE, "at most 4"),
]


def run(args: list[str], tmp: Path, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PERSIST_LOG_DIR": str(tmp / "logs"), "XDG_CONFIG_HOME": str(tmp)}
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args],
        stdin=subprocess.DEVNULL,
        capture_output="stdout" not in kw,
        stderr=subprocess.PIPE if "stdout" in kw else None,
        text=True,
        timeout=60,
        env=env,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(("argv", "code", "names"), BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_invocation_is_one_line_naming_the_option(
    tmp_path: Path, argv: list[str], code: int, names: str
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    args = [a.replace("{file}", str(a_file)) for a in argv]
    out = run(args, tmp_path)
    lines = out.stderr.splitlines()
    assert "Traceback" not in out.stderr
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("persist: ") and names in lines[0], lines[0]
    assert out.returncode == code, out.stderr
    assert not Path(f"{a_file}-gone").exists()  # a mistyped folder is never made


def test_an_ipc_endpoint_is_never_bound_over_a_file_or_a_listening_socket(
    tmp_path: Path,
) -> None:
    """zmq removes whatever is at an ipc path before it binds: a user's file was
    deleted, and a second broker took over a running one's sockets (its publishers
    then reached nobody, and `persist send` failed while status said healthy)."""
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    port = free_port()
    for argv in (
        ["broker", "--frontend", f"ipc://{precious}", "--backend", f"tcp://127.0.0.1:{port}"],
        ["record", "--bind", f"ipc://{precious}", "--embedded", "no", "--log-dir", "L"],
    ):
        out = run(argv, tmp_path, cwd=tmp_path)
        assert out.returncode == FAILED and "Traceback" not in out.stderr, out.stderr
        assert f"{precious} exists and is not a socket (binding would delete it)" in out.stderr
        assert precious.read_text() == "keep me"
    pub, sub = f"ipc://{tmp_path}/bus.pub", f"ipc://{tmp_path}/bus.sub"
    first = subprocess.Popen(
        [sys.executable, "-m", "recorder.cli", "broker", "--frontend", pub, "--backend", sub],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: (tmp_path / "bus.sub").exists(), timeout=20)
        out = run(["broker", "--frontend", pub, "--backend", sub], tmp_path)
        assert out.returncode == FAILED
        assert out.stderr == (
            f"persist: cannot bind the broker on {pub}: something is listening on "
            f"{tmp_path}/bus.pub already\n"
        )
    finally:
        first.terminate()
        first.wait(10)


def test_a_read_only_log_folder_is_named_as_such(tmp_path: Path) -> None:
    """On a read-only mount, search advised `persist doctor --fix` (which cannot move
    anything there) and doctor called the index unusable, a problem --fix repairs."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root for a read-only bind mount")
    from tests.demo_journal import build_demo

    root = build_demo(tmp_path / "logs")
    assert run(["search", "migration", "--log-dir", str(root)], tmp_path).returncode == 0
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "--bind", str(root), str(ro)], check=False).returncode:
        pytest.skip("cannot bind-mount here")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        out = run(["search", "migration", "--log-dir", str(ro)], tmp_path)
        assert out.returncode == FAILED and "Traceback" not in out.stderr
        assert out.stderr.startswith(f"persist: cannot use the search index in {ro}/search: ")
        assert out.stderr.endswith("in the log folder, which must be writable\n")
        doctor = run(["doctor", "--log-dir", str(ro)], tmp_path)
        assert "the log folder is on a read-only file system" in doctor.stdout
        assert "search index not checked: the log folder is read-only" in doctor.stdout
        assert "would be rebuilt" not in doctor.stdout and doctor.returncode == 9
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


def test_a_closed_stdout_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before we write: `persist status | head -0`
    try:
        out = run(["status", "--log-dir", str(tmp_path)], tmp_path, stdout=write)
    finally:
        os.close(write)
    assert "Traceback" not in out.stderr and "Exception ignored" not in out.stderr
    assert out.stderr.splitlines() == [
        "persist: stdout was closed before all output was written (broken pipe)"
    ]
    assert out.returncode == FAILED


@pytest.mark.parametrize("command", [["status"], ["checkpoints"], ["doctor"]])
def test_a_stdout_closed_from_the_start_is_one_line_not_a_traceback(
    tmp_path: Path, command: list[str]
) -> None:
    """`persist status >&-`: Python starts with no sys.stdout at all."""
    argv = " ".join([sys.executable, "-m", "recorder.cli", *command, "--log-dir", str(tmp_path)])
    out = subprocess.run(
        ["sh", "-c", f"exec {argv} >&-"], capture_output=True, text=True, timeout=60
    )
    assert "Traceback" not in out.stderr, out.stderr
    assert out.stderr.splitlines()[-1] == (
        "persist: stdout was closed before all output was written (broken pipe)"
    )
    assert out.returncode == FAILED


def test_a_background_recorder_that_cannot_start_says_why(tmp_path: Path) -> None:
    """`persist record --detach` whose recorder cannot listen (its port is taken): one
    line naming the endpoint and the file that says more, exit 1, and no recorder
    left behind. The recorder either exits before it is looked at ("stopped (exit
    code 1)") or is seen running without receiving first, and is stopped ("was
    stopped: PID ... records nothing")."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    logs = tmp_path / "logs"
    try:
        out = run(["record", "--detach", "--bind", f"tcp://127.0.0.1:{port}"], tmp_path)
        lines = out.stderr.splitlines()
        assert "Traceback" not in out.stderr and len(lines) == 1, out.stderr
        line = lines[0]
        assert f"cannot bind tcp://127.0.0.1:{port}: Address already in use" in line, line
        assert line.count("persist: ") == 1, line  # the recorder's own line, not its prefix
        assert line.startswith(
            (
                "persist: the recorder stopped (exit code 1): ",
                "persist: the recorder was stopped: PID ",
            )
        ), line
        assert f"(see {logs / 'recorder.out'})" in line or f"see {logs / 'recorder.log'}" in line
        assert out.returncode == FAILED
        wait_for(
            lambda: run(["status", "--log-dir", str(logs)], tmp_path).returncode == EXIT_STOPPED,
            what="the recorder gone",
        )
    finally:
        taken.close()


def test_a_second_background_recorder_is_refused_and_keeps_the_first_ones_output(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    ports = [f"tcp://127.0.0.1:{free_port()}" for _ in range(2)]
    start = ["record", "--detach", "--embedded", "yes", "--log-dir", str(logs)]
    start += ["--broker", ports[0], "--publish-endpoint", ports[1], "--search-index", "off"]
    first = run(start, tmp_path)
    assert first.returncode == 0, first.stderr
    try:
        before = (logs / "recorder.out").read_text()
        assert "recording embedded broker" in before
        second = run(start, tmp_path)
        assert second.returncode == FAILED and len(second.stderr.splitlines()) == 1
        assert "a recorder is already recording into" in second.stderr
        after = (logs / "recorder.out").read_text()
        assert after.startswith(before) and "already recording" in after[len(before) :]
    finally:
        run(["stop", "--log-dir", str(logs)], tmp_path)


def test_a_recorder_that_does_not_report_in_time_is_stopped_and_reaped(tmp_path: Path) -> None:
    """Started, but not recording within the time it was given: the one line names
    its PID, and by then that process is gone (stopped and reaped, not left
    recording on its own)."""
    options = RecorderOptions(log_dir=tmp_path / "logs", search_index=False, monitor=False)
    with pytest.raises(SpawnError) as err:
        spawn_recorder(options, timeout=0.05)
    said = re.fullmatch(
        r"the recorder \(PID (\d+)\) did not report within 0.05s; it was stopped "
        r"\(see .*/recorder\.out(?: and .*/recorder\.log)?\)",
        str(err.value),
    )  # recorder.out, which the start wrote (before 2026-12-07 only a recorder.log, absent)
    assert said, str(err.value)
    assert not psutil.pid_exists(int(said.group(1)))


def test_a_recorder_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    """What `_stop` does with a process that does not end on SIGTERM (frozen, or
    stuck in a write): SIGKILL once the grace period is over, then reaped."""
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
    _stop(stubborn, grace=0.2)
    assert stubborn.returncode == -9
    stubborn.stdout.close()


def test_a_launch_menu_that_is_killed_says_so(tmp_path: Path) -> None:
    """The real menu process (`persist-tui --launch --print`) killed before it answers
    (the OOM killer, a `kill -9`): one line saying how it ended, not a traceback."""
    menu = Menu(tmp_path / "logs", "claude")
    menu.proc.send_signal(signal.SIGKILL)
    with pytest.raises(PickerFailed) as err:
        menu.result()
    assert str(err.value) == "the menu stopped (killed by SIGKILL)"


IN_THE_WAY = {  # what stands where the search index keeps a file or its folder
    "a file for the search folder": ("search", "is a file, not a folder"),
    "a folder for its index": ("search/index.sqlite3", "is a folder, not a file"),
    "a folder for its lock": ("search/index.lock", "is a folder, not a file"),
    "a folder for its write-ahead log": ("search/index.sqlite3-wal", "is a folder, not a file"),
}


def put_in_the_way(root: Path, thing: str) -> Path:
    search = root / "search"
    if search.exists():
        shutil.rmtree(search)
    place = root / IN_THE_WAY[thing][0]
    if thing.startswith("a file"):
        place.write_text("not the index")
    else:
        place.mkdir(parents=True)
        (place / "kept.txt").write_text("someone's")  # moved aside, never deleted
    return place


@pytest.mark.parametrize("thing", list(IN_THE_WAY))
def test_something_else_in_the_search_index_place_is_one_line_then_moved_aside(
    tmp_path: Path, thing: str
) -> None:
    """Something other than the index's file where it keeps one: search and stats say
    it in one line naming the path and what is there (exit 1), and the two commands
    that rebuild the index, `persist reindex` and `persist doctor --fix`, move it into
    recovery/doctor/ (its content kept) and build the index again. reindex failed on
    it (exit 1, naming `index.sqlite3.new` for a folder at `index.sqlite3`); a folder
    at `index.lock` or at the `-wal` was 'ok' to doctor, and --fix said all was well
    while every search failed."""
    from tests.demo_journal import build_demo

    root = build_demo(tmp_path / "logs")
    where, what = IN_THE_WAY[thing]
    place = put_in_the_way(root, thing)
    for command in (["search", "migration"], ["stats"]):
        out = run([*command, "--log-dir", str(root)], tmp_path)
        assert "Traceback" not in out.stderr and out.returncode == FAILED, out.stderr
        line = out.stderr.splitlines()
        assert len(line) == 1 and line[0].startswith("persist: cannot use the search index")
        assert f"{place} {what}" in line[0], line[0]
        assert f"`persist reindex --log-dir {root}`" in line[0], line[0]
    doctor = run(["doctor", "--log-dir", str(root)], tmp_path)
    assert doctor.returncode == 9, doctor.stdout
    assert f"search index would be rebuilt: {place} {what}" in doctor.stdout, doctor.stdout

    rebuilt = run(["reindex", "--log-dir", str(root)], tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    said = rebuilt.stderr.splitlines()
    assert len(said) == 1 and said[0].startswith(f"persist: {place} {what}"), said
    aside = Path(said[0].split(": moved aside to ")[1])
    assert aside.relative_to(root / "recovery" / "doctor").parts[1:] == Path(where).parts
    assert aside.is_dir() == (not thing.startswith("a file"))
    assert (aside / "kept.txt" if aside.is_dir() else aside).read_text() in (
        "someone's",
        "not the index",
    )
    assert rebuilt.stdout.startswith("search index rebuilt: "), rebuilt.stdout
    found = run(["search", "migration", "--log-dir", str(root)], tmp_path)
    assert found.returncode == 0 and "exact matches" in found.stderr, found.stderr

    put_in_the_way(root, thing)
    fixed = run(["doctor", "--fix", "--log-dir", str(root)], tmp_path)
    assert "fixed     search.damaged" in fixed.stdout, fixed.stdout
    assert "search index: " in fixed.stdout and "level with the journal" in fixed.stdout
    # both kept, the second as `<name>.1` when both moves came within one second (one
    # recovery/doctor/<time>/ folder)
    name = Path(where).name
    kept = [
        p
        for p in (root / "recovery" / "doctor").rglob(f"{name}*")
        if re.fullmatch(rf"{re.escape(name)}(\.[0-9]+)?", p.name)
    ]
    assert len(kept) == 2, kept
    found = run(["search", "migration", "--log-dir", str(root)], tmp_path)
    assert found.returncode == 0 and "exact matches" in found.stderr, found.stderr


@pytest.mark.parametrize(
    ("folder", "command"), [("checkpoints", ["checkpoints"]), ("trash", ["trash", "list"])]
)
def test_a_folder_of_ours_that_is_a_file_is_one_line(
    tmp_path: Path, folder: str, command: list[str]
) -> None:
    from tests.demo_journal import build_demo

    root = build_demo(tmp_path / "logs")
    shutil.rmtree(root / folder, ignore_errors=True)
    (root / folder).write_text("not a folder")
    out = run([*command, "--log-dir", str(root)], tmp_path)
    assert "Traceback" not in out.stderr and out.returncode == FAILED
    assert out.stderr.splitlines() == [f"persist: {command[0]}: Not a directory ({root / folder})"]


def test_an_exclusion_given_as_its_own_word_is_part_of_the_query(tmp_path: Path) -> None:
    """`persist search migration -rollback`, unquoted, as the README writes queries."""
    from tests.demo_journal import build_demo

    root = build_demo(tmp_path / "logs")

    def found(*query: str) -> tuple[int, list[int]]:
        out = run(["search", "--json", "--count", *query, "--log-dir", str(root)], tmp_path)
        assert out.returncode == 0, out.stderr
        result = orjson.loads(out.stdout)
        return result["total"], [h["seq"] for h in result["hits"]]

    words = found("migration", "-schema")
    assert words == found("migration -schema")
    assert 0 < words[0] < found("migration")[0]


def test_a_log_folder_from_the_environment_is_named_as_such(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    out = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "status"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PERSIST_LOG_DIR": str(a_file)},
    )
    assert out.returncode == USAGE
    assert f"{a_file} (from $PERSIST_LOG_DIR) exists and is not a folder" in out.stderr


def folder_out_of_reach(tmp_path: Path) -> Path:
    """A folder name that cannot be looked at (stat says EACCES): below a 0000 folder for a
    normal user; as root, below another process's root (when the kernel refuses it)."""
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0)
        return locked / "logs"
    candidate = Path("/proc/1/root/logs")
    try:
        os.stat(candidate)
    except PermissionError:
        return candidate
    except OSError:
        pass
    pytest.skip("no folder this root user is refused to look at")


REACH = [
    ["status", "--log-dir"],
    ["doctor", "--dir"],
    ["reindex", "--log-dir"],
    ["search", "redis", "--log-dir"],
    ["stats", "--log-dir"],
    ["export", "latest", "--format", "md", "--log-dir"],
    ["restore", "latest", "--log-dir"],
    ["record", "--detach", "--log-dir"],
    ["status"],  # $PERSIST_LOG_DIR
]


@pytest.mark.parametrize("argv", REACH, ids=[" ".join(a) for a in REACH])
def test_a_log_folder_out_of_reach_is_one_line(tmp_path: Path, argv: list[str]) -> None:
    """A log folder that cannot be stat'ed (EACCES: inside another user's 0700 folder) was
    a 52-line PermissionError traceback, exit 1, raised while the option was checked; a
    name too long for the file system was an OSError traceback the same way."""
    for place in (folder_out_of_reach(tmp_path), tmp_path / ("x" * 300)):
        args = [*argv, str(place)] if argv[-1].startswith("--") else argv
        env = {**os.environ, "PERSIST_LOG_DIR": str(place)}
        out = subprocess.run(
            [sys.executable, "-m", "recorder.cli", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert out.returncode == USAGE, out.stderr
        lines = out.stderr.splitlines()
        assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
        assert f"{place}" in lines[0] and "cannot be reached" in lines[0], lines[0]
        reason = "permission denied" if place.name == "logs" else "file name too long"
        assert reason in lines[0], lines[0]
        if argv == ["status"]:
            assert "(from $PERSIST_LOG_DIR)" in lines[0]


def test_the_browser_refuses_a_log_folder_out_of_reach_in_one_line(tmp_path: Path) -> None:
    place = folder_out_of_reach(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "tui.cli", "--log-dir", str(place)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == USAGE, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith("persist-tui: --log-dir ") and "permission denied" in lines[0]


def test_an_export_file_out_of_reach_is_one_line(tmp_path: Path) -> None:
    """`export -o FILE` below a folder that cannot be looked into was a PermissionError
    traceback (resolving FILE, to refuse one inside the log folder)."""
    from tests.demo_journal import DemoWriter

    place = folder_out_of_reach(tmp_path)
    log_dir = tmp_path / "logs-here"
    w = DemoWriter.open(log_dir)
    w.message(1_800_000_000.0, "coder", "hello")
    w.close()
    argv = ["export", "--all", "--format", "md", "-o", str(place / "x.md")]
    out = run([*argv, "--log-dir", str(log_dir)], tmp_path)
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith(f"persist: cannot write {place / 'x.md'}: "), lines[0]
    assert "ermission denied" in lines[0] and out.returncode == FAILED, out.stderr


_TWICE = r"""
import os, signal, sys, time

import recorder.bus.keys as keys
import recorder.cli.common as common

where = sys.argv.pop(1)


def allow_key(*a, **k):  # the command, busy when the first SIGTERM comes
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    finally:
        if where == "unwinding":  # the second, as the first unwinds the command
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
        open(os.environ["CLEANED"], "w").close()  # the clean-up a `finally` does


real_say = common.say


def say(message):  # the second, as the first is being said
    if where == "said":
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
    real_say(message)


keys.allow_key = allow_key
common.say = say
from recorder.cli.main import main

sys.exit(main())
"""


@pytest.mark.parametrize("where", ["unwinding", "said"])
def test_a_second_sigterm_while_the_first_is_handled_is_ignored(tmp_path: Path, where: str) -> None:
    """GNU `timeout` sends its SIGTERM to the child and to its process group: a second
    one that came while the first was unwinding the command or being said (`fail`
    imports lazily) printed two tracebacks and exited 1, or cut the command's clean-up
    short. Now, once one SIGTERM is acted on, the next are ignored: the clean-up done,
    one line, exit 143."""
    (tmp_path / "client.key").write_text("")
    cleaned = tmp_path / "cleaned"
    argv = ["keys", "allow", str(tmp_path / "client.key"), "--log-dir", str(tmp_path / "logs")]
    run = subprocess.run(
        [sys.executable, "-c", _TWICE, where, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CLEANED": str(cleaned)},
    )
    assert "Traceback" not in run.stderr, run.stderr
    assert cleaned.exists()
    assert run.stderr.splitlines() == [
        "persist: keys: ended by SIGTERM (`persist doctor` names anything it left half done)"
    ]
    assert run.returncode == 143


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize(
    "command",
    [
        ["status", "--json"],
        ["checkpoints", "--json"],
        ["restore", "latest", "--json"],
        ["search", "--json", "schema"],
        ["sessions", "--json"],
    ],
)
def test_a_full_stdout_is_named(tmp_path: Path, command: list[str]) -> None:
    """`persist status --json > /dev/full` said "status: No space left on device",
    naming no file: the catch-all handler could not tell stdout from any other."""
    from tests.demo_journal import build_demo

    root = build_demo(tmp_path / "logs")
    env = {**os.environ, "HOME": str(tmp_path / "home")}  # sessions: no real agent folders
    with open("/dev/full", "w") as full:
        out = subprocess.run(
            [sys.executable, "-m", "recorder.cli", *command, "--log-dir", str(root)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=env,
        )
    assert "Traceback" not in out.stderr, out.stderr
    # the demo journal is damaged on purpose: restore says so first
    assert out.stderr.splitlines()[-1] == "persist: cannot write stdout: No space left on device"
    assert out.stderr.count("No space left") == 1
    assert out.returncode == FAILED


# argparse's own output: what --help and --version print (`persist hook` has its own)
ARGPARSE_OUTPUT = [
    ("recorder.cli", ["--version"]),
    ("recorder.cli", ["--help"]),
    ("recorder.cli", ["status", "--help"]),
    ("recorder.cli", ["export", "--help"]),
    ("recorder.cli", ["keys", "init", "--help"]),
    ("recorder.cli", ["search", "-h"]),
    ("recorder.cli", ["hook", "--help"]),
    ("tui.cli", ["--version"]),
    ("tui.cli", ["--help"]),
]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize(
    ("module", "argv"), ARGPARSE_OUTPUT, ids=[f"{m} {' '.join(a)}" for m, a in ARGPARSE_OUTPUT]
)
def test_help_and_version_to_a_full_stdout_are_named(
    tmp_path: Path, module: str, argv: list[str]
) -> None:
    """`persist --version > /dev/full` was a traceback (OSError 28), and every `--help`
    (persist-tui's --version too) exit 0 with nothing written: argparse drops the error."""
    prog = "persist-tui" if module == "tui.cli" else "persist"
    with open("/dev/full", "w") as full:
        out = subprocess.run(
            [sys.executable, "-m", module, *argv],
            stdin=subprocess.DEVNULL,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env={**os.environ, "PERSIST_LOG_DIR": str(tmp_path / "logs")},
        )
    assert out.stderr.splitlines() == [f"{prog}: cannot write stdout: No space left on device"]
    assert out.returncode == FAILED


@pytest.mark.parametrize(
    ("module", "argv"), ARGPARSE_OUTPUT, ids=[f"{m} {' '.join(a)}" for m, a in ARGPARSE_OUTPUT]
)
def test_help_and_version_to_a_closed_pipe_are_one_line(
    tmp_path: Path, module: str, argv: list[str]
) -> None:
    """`persist --version | true` (the reader gone first) was a BrokenPipeError traceback."""
    prog = "persist-tui" if module == "tui.cli" else "persist"
    read, write = os.pipe()
    os.close(read)
    try:
        out = subprocess.run(
            [sys.executable, "-m", module, *argv],
            stdin=subprocess.DEVNULL,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env={**os.environ, "PERSIST_LOG_DIR": str(tmp_path / "logs")},
        )
    finally:
        os.close(write)
    assert out.stderr.splitlines() == [
        f"{prog}: stdout was closed before all output was written (broken pipe)"
    ]
    assert out.returncode == FAILED


@pytest.mark.parametrize(
    ("module", "argv"), ARGPARSE_OUTPUT, ids=[f"{m} {' '.join(a)}" for m, a in ARGPARSE_OUTPUT]
)
def test_help_and_version_to_a_closed_stdout_are_one_line(
    tmp_path: Path, module: str, argv: list[str]
) -> None:
    """`persist-tui --help >&-` wrote its help to stderr and exited 0 (argparse falls back
    to stderr when there is no `sys.stdout`); `persist` said one line. Both do now."""
    prog = "persist-tui" if module == "tui.cli" else "persist"
    out = subprocess.run(
        [sys.executable, "-m", module, *argv],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        env={**os.environ, "PERSIST_LOG_DIR": str(tmp_path / "logs")},
        preexec_fn=lambda: os.close(1),  # `>&-`
    )
    assert out.stderr.splitlines() == [
        f"{prog}: stdout was closed before all output was written (broken pipe)"
    ]
    assert out.returncode == FAILED


@pytest.mark.parametrize("toml", [None, "[monitor]\nidle_minutes = 20\n", "context_fraction = 2\n"])
def test_a_bad_monitor_flag_is_named_not_the_settings_file(
    tmp_path: Path, toml: str | None
) -> None:
    """`persist monitor --context 150` blamed `<log>/sessions/monitor.toml` (there was
    none) and a `context_fraction 1.5` nobody typed, also when the file exists and the
    flag replaced its value."""
    logs = tmp_path / "logs"
    if toml is not None:
        (logs / "sessions").mkdir(parents=True)
        (logs / "sessions" / "monitor.toml").write_text(toml)
    out = run(["monitor", "--once", "--log-dir", str(logs), "--context", "150"], tmp_path)
    assert out.stderr.splitlines() == [
        "persist: argument --context: a percent of the context window, at most 100 (got 150) "
        "(see persist monitor --help)"
    ]
    assert out.returncode == USAGE


def paste(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`command` as a user pastes it into a shell (`sh -c`), `persist` being this one."""
    persist = f'persist() {{ {shlex.quote(sys.executable)} -m recorder.cli "$@"; }}; '
    return subprocess.run(
        ["sh", "-c", persist + command],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def test_the_commands_printed_for_a_folder_named_with_a_space_and_a_quote_paste_as_given(
    tmp_path: Path,
) -> None:
    """Commands printed with a folder in them, each pasted into a shell: before
    2026-12-08 several named the folder unquoted (the backup's and restore-backup's
    `persist keys init --keys`, a key open to others, doctor's `mv` and `ls` fixes,
    search's `persist doctor --fix`), so a folder named with a space broke the pasted
    command, or ran it on another folder."""
    import argparse
    import contextlib
    import io
    import sqlite3

    from recorder.cli.search import _index_failures
    from recorder.doctor.run import diagnose
    from tests.demo_journal import build_demo

    root = build_demo(tmp_path / "it's my logs")
    keys = root / "keys"
    assert run(["keys", "init", "--keys", str(keys)], tmp_path).returncode == 0
    (keys / "client.key_secret").chmod(0o644)  # open to others: may have leaked

    def pasted_fix(out: str) -> str:
        """The command in backticks after the folder's key line."""
        (line,) = [ln for ln in out.splitlines() if "open to others" in ln]
        command = line.split("`")[-2]
        assert command.startswith("persist keys init --keys "), line
        return command

    # a key that may have leaked: the command that reads it, the backup, the restore
    sent = run(["send", "agents.x", "hi", "--curve", "--keys", str(keys)], tmp_path)
    assert sent.returncode != 0 and "open to others" in sent.stderr, sent.stderr
    backup = tmp_path / "the backup's copy"
    out = run(["backup", str(backup), "--include-secret-keys", "--log-dir", str(root)], tmp_path)
    assert out.returncode == 0, out.stderr
    backed = pasted_fix(out.stdout + out.stderr)
    restored = tmp_path / "it's restored"
    out = run(["restore-backup", str(backup), str(restored)], tmp_path)
    assert out.returncode == 0, out.stderr
    for command, folder in (
        (pasted_fix(sent.stderr), keys),
        (backed, keys),
        (pasted_fix(out.stdout + out.stderr), restored / "keys"),
    ):
        done = paste(command, tmp_path)
        assert done.returncode == 0, (command, done.stderr)
        assert (folder / "client.key_secret").stat().st_mode & 0o077 == 0, command
        (folder / "client.key_secret").chmod(0o644)  # for the next one

    # the search index unusable: its line's `persist doctor --fix` on this folder
    def broken(args: argparse.Namespace) -> int:
        raise sqlite3.DatabaseError("database disk image is malformed")

    args = argparse.Namespace(log_dir=str(root))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert _index_failures(broken)(args) == FAILED
    command = err.getvalue().split(": ")[-1].split(" moves it aside")[0]
    assert command.startswith("persist doctor --fix --log-dir "), err.getvalue()
    done = paste(command, tmp_path)
    assert f"persist doctor: {root}" in done.stdout, (command, done.stdout, done.stderr)

    # doctor's fixes that are shell commands: things where our folders and files go
    shutil.rmtree(root / "sessions" / "copies", ignore_errors=True)
    (root / "sessions").mkdir(exist_ok=True)
    (root / "sessions" / "copies").write_text("not a folder")
    (root / "retention").mkdir(exist_ok=True)
    (root / "retention" / "pins.json").write_text("{not json")
    shutil.rmtree(root / "checkpoints")
    (root / "checkpoints").write_text("not a folder")
    shutil.rmtree(root / "segments")
    (root / "segments").write_text("not a folder")
    (root / "recovery").mkdir(exist_ok=True)
    fixes = {f.check: f.fix for f in diagnose(root).findings if f.fix}
    for check in ("journal.folder", "checkpoints.folder", "checkpoints.pins", "sessions.copies"):
        assert check in fixes, (check, fixes)
        done = paste(fixes[check], tmp_path)
        assert done.returncode == 0, (check, fixes[check], done.stderr)
    assert (root / "segments").is_dir() and (root / "checkpoints").is_dir()
    assert (root / "recovery" / "segments.file").read_text() == "not a folder"
    assert not (root / "retention" / "pins.json").exists()
