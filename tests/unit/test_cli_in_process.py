"""The CLI's `main(argv)` called in a process of its caller's (tests, an embedding)
leaves that process's SIGINT and SIGTERM handlers as it found them."""

from __future__ import annotations

import gc
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder.cli.main import main
from recorder.store import fsutil
from tests.demo_journal import DemoClock, DemoWriter

T0 = 1_800_000_000.0


@pytest.fixture
def caught() -> Iterator[list[int]]:
    """Handlers of the caller's own for SIGINT and SIGTERM, noting what they get."""
    got: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        got.append(signum)

    before = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield got
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def journal(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    w = DemoWriter.open(root, clock=DemoClock(T0))
    for i in range(20):
        w.message(T0 + i, "coder", f"message {i}")
    w.close()
    return root


def test_an_export_in_process_gives_back_the_callers_signal_handlers(
    tmp_path: Path,
    caught: list[int],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Once an export was in place its SIGINT and SIGTERM were left ignored (SIG_IGN,
    for the interpreter's exit), in the caller's process too: its own handlers were gone
    and it could no longer be interrupted. Now `main(argv)` puts back the handlers it
    found when it ends; a SIGTERM right after the commit still does not undo the export."""
    root = journal(tmp_path)
    out = tmp_path / "x.csv"
    real = fsutil.os.replace

    def replace(src: object, dst: object) -> None:
        real(src, dst)  # type: ignore[arg-type]
        if Path(str(dst)) == out:  # -o FILE in place: then a SIGTERM
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(fsutil.os, "replace", replace)
    argv = ["export", "--all", "--format", "csv", "--no-progress"]
    code = main([*argv, "--log-dir", str(root), "-o", str(out)])
    err = capsys.readouterr().err.splitlines()
    assert code == 0 and len(err) == 1 and err[0].startswith("persist: exported 20 messages")
    assert "message 19" in out.read_text()
    assert caught == []  # held by the export, not handed on
    for s in (signal.SIGINT, signal.SIGTERM):
        os.kill(os.getpid(), s)
    assert caught == [signal.SIGINT, signal.SIGTERM]
    # a command that fails (argparse's exit) gives them back too
    with pytest.raises(SystemExit):
        main(["export", "--no-such-option"])
    os.kill(os.getpid(), signal.SIGTERM)
    assert caught == [signal.SIGINT, signal.SIGTERM, signal.SIGTERM]


def test_a_second_command_in_process_can_still_be_interrupted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Python's own SIGINT handler (KeyboardInterrupt) is back after an export, so the
    caller, and the next command it runs, can be interrupted with Ctrl-C."""
    root = journal(tmp_path)
    argv = ["export", "--all", "--format", "csv", "--no-progress", "--log-dir", str(root)]
    assert main([*argv, "-o", str(tmp_path / "a.csv")]) == 0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    gc.disable()  # else the KeyboardInterrupt may be raised in a gc callback (Hypothesis
    try:  # has one), which swallows it: "Exception ignored in ... gc_callback"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler runs at the next bytecode: never this long
    finally:
        gc.enable()
    capsys.readouterr()
