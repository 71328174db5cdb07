"""`persist-tui` without a terminal refuses at once (it used to spin a core forever), and a
bad option is one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tui.cli import EXIT_NO_TERMINAL, EXIT_USAGE

pytestmark = pytest.mark.timeout(60)


def persist_tui(log_dir: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    """`persist-tui --log-dir DIR ARGS` with no terminal (stdin from /dev/null)."""
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", "--log-dir", str(log_dir), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=20,
    )


@pytest.mark.parametrize("args", [[], ["--print"], ["--launch", "--print"]])
def test_persist_tui_without_a_terminal_is_one_line_and_exit_3(
    tmp_path: Path, args: list[str]
) -> None:
    out = persist_tui(tmp_path, args)
    assert out.returncode == EXIT_NO_TERMINAL
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("persist-tui: stdin is not a terminal")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--print", "--json"], "argument --json: not allowed with argument --print"),
        (["--agent"], "argument --agent: expected one argument"),
    ],
)
def test_persist_tui_with_a_bad_option_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], says: str
) -> None:
    out = persist_tui(tmp_path, args)
    assert out.returncode == EXIT_USAGE
    assert out.stdout == ""
    assert out.stderr == f"persist-tui: {says} (see persist-tui --help)\n"


@pytest.mark.parametrize("below", [False, True])
def test_a_log_dir_that_is_a_file_is_one_line_and_exit_2(tmp_path: Path, below: bool) -> None:
    """No errno, no `persist record --log-dir FILE` suggestion that cannot work: one line
    saying the path is a file, before any terminal is needed."""
    file = tmp_path / "notes.txt"
    file.write_text("not a log folder\n")
    target = file / "logs" if below else file
    out = persist_tui(target, [])
    assert out.returncode == EXIT_USAGE and out.stdout == ""
    said = (
        f"--log-dir {target} cannot be a log folder: {file} is a file"
        if below
        else f"--log-dir {file} is a file, not a log folder"
    )
    assert out.stderr == f"persist-tui: {said} (see persist-tui --help)\n"


@pytest.mark.parametrize(("term", "why"), [("dumb", "TERM=dumb"), (None, "TERM is not set")])
def test_persist_tui_on_a_terminal_that_cannot_draw_is_one_line_and_exit_3(
    tmp_path: Path, term: str | None, why: str
) -> None:
    """A real terminal (a pty) whose TERM cannot draw (Emacs' M-x shell, some IDE
    consoles): before 2026-12-07 the browser was drawn anyway, escape sequences as text."""
    import os
    import pty

    env = {k: v for k, v in os.environ.items() if k != "TERM"}
    if term is not None:
        env["TERM"] = term
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tui.cli", "--log-dir", str(tmp_path)],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=slave,
            env=env,
            timeout=20,
        )
        os.close(slave)
        said = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the other side is closed and all of it read
                break
            if not chunk:
                break
            said += chunk
    finally:
        os.close(master)
    assert proc.returncode == EXIT_NO_TERMINAL, said
    assert proc.stdout == b""
    assert said.decode().splitlines() == [
        f"persist-tui: {why}: this terminal cannot draw the browser (full screen, colours); "
        "run it in a terminal emulator, or use persist export, persist restore or persist "
        "status."
    ]


@pytest.mark.parametrize("whose", ["folder", "status"])
def test_a_log_dir_of_another_user_is_one_line_and_exit_2(tmp_path: Path, whose: str) -> None:
    """A log folder that is another user's (0700), or whose status.json and
    recorder.lock a `sudo persist record` left root's: refused before any terminal is
    needed. Before 2026-12-08 the browser started, and its first poll crashed with a Rich
    traceback (PermissionError from segments/), exit 1; with the status and lock refused,
    whether a recorder ran was taken for no."""
    from recorder.store.fsutil import user_name
    from tests.support import DROP_READ_ANYTHING, NOBODY, as_another_user

    logs = tmp_path / "logs"
    (logs / "segments").mkdir(parents=True)
    (logs / "status.json").write_text("{}")
    (logs / "recorder.lock").write_text("")
    if whose == "folder":
        as_another_user(logs)
        said = (
            f"--log-dir {logs} cannot be read: permission denied (it belongs to another "
            f"user, {user_name(NOBODY)}) (see persist-tui --help)"
        )
    else:
        as_another_user(logs / "status.json")
        as_another_user(logs / "recorder.lock")
        said = (
            f"{logs / 'recorder.lock'} belongs to another user ({user_name(NOBODY)}): "
            f"whether a recorder holds {logs} cannot be told from here; run this as that "
            f"user (sudo -u {user_name(NOBODY)})"
        )
    out = subprocess.run(
        [*DROP_READ_ANYTHING, sys.executable, "-m", "tui.cli", "--log-dir", str(logs)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == EXIT_USAGE, out.stderr
    assert out.stdout == ""
    assert out.stderr == f"persist-tui: {said}\n"
