"""A `persist` command that holds the folder's lock while no recorder runs (a prune, a
checkpoint, a trash change) is waited for by the next command and by a recorder
starting, never taken for a running recorder: before 2026-12-07 a second checkpoint
asked that "recorder" and failed after 5 s (or said it ended, naming a recorder.log
that never existed), and `persist record` refused "a recorder is already recording"."""

from __future__ import annotations

import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recorder.store.checkpoints import list_checkpoints
from recorder.store.layout import Layout
from recorder.store.pruned import retention_lock
from tests.support import wait_for
from tests.unit.test_control import recording
from tests.unit.test_daemon import Clock


def journal(tmp_path: Path) -> Layout:
    """A folder with a journal and no recorder (the one that wrote it stopped)."""
    rec = recording(tmp_path, Clock())
    rec.close()
    return rec.layout


def cli(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "recorder.cli", *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def said(proc: subprocess.Popen[str], words: str, timeout: float = 20.0) -> str:
    """The first line of the process' stderr holding `words`; fails at once when the
    process ends without saying it (what it said instead is in the message)."""
    assert proc.stderr is not None
    lines: list[str] = []
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not sel.select(deadline - time.monotonic()):
                break
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if words in line:
                return line
    proc.kill()
    out, err = proc.communicate()
    raise AssertionError(f"never said {words!r}: rc={proc.returncode} {lines} {err!r} {out!r}")


def holder(layout: Layout) -> str:
    try:
        return layout.lock.read_text().strip()
    except OSError:
        return ""


def prune_holding_the_folder(layout: Layout) -> subprocess.Popen[str]:
    """A real `persist prune` (no recorder) that holds the folder's lock and waits for
    retention's lock, which the caller holds: as long as the caller wants."""
    prune = cli("prune", "--max-size", "1G", "--json", "--log-dir", str(layout.root))
    wait_for(lambda: holder(layout).split()[:1] == [str(prune.pid)], what="the prune's lock")
    return prune


@pytest.mark.parametrize(
    "argv",
    [["checkpoint", "--label", "hook2"], ["prune", "--max-size", "1G", "--json"]],
    ids=["checkpoint", "prune"],
)
def test_a_command_waits_for_another_holding_the_folder(tmp_path: Path, argv: list[str]) -> None:
    layout = journal(tmp_path)
    with retention_lock(layout):
        first = prune_holding_the_folder(layout)
        assert holder(layout) == f"{first.pid} prune"  # named as a command, not a recorder
        proc = cli(*argv, "--log-dir", str(layout.root))
        line = said(proc, "waiting for `persist prune`")
        assert f"(PID {first.pid}) to finish with {layout.root}" in line
        # nothing was asked of a recorder
        assert not (layout.control.is_dir() and list(layout.control.glob("*.request")))
    out, err = first.communicate(timeout=30)
    assert first.returncode == 0 and '"via": "offline"' in out, err
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    if argv[0] == "checkpoint":
        assert "hook2" in [cp.label for cp in list_checkpoints(layout)]
    else:
        assert '"via": "offline"' in out
    assert "recorder" not in err


def recorder_argv(tmp_path: Path, layout: Layout) -> list[str]:
    return [
        "record",
        "--embedded",
        "no",
        "--broker",
        f"ipc://{tmp_path}/b.sock",
        "--search-index",
        "off",
        "--monitor",
        "off",
        "--log-dir",
        str(layout.root),
    ]


def test_persist_record_waits_for_a_prune_holding_the_folder(tmp_path: Path) -> None:
    layout = journal(tmp_path)
    with retention_lock(layout):
        prune = prune_holding_the_folder(layout)
        proc = cli(*recorder_argv(tmp_path, layout))
        line = said(proc, "waiting for `persist prune`")
        assert f"(PID {prune.pid})" in line
    try:
        said(proc, "recording")
        assert holder(layout) == str(proc.pid)  # the recorder: a bare PID
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert prune.wait(timeout=30) == 0


def test_record_detach_waits_as_long_as_its_recorder_waits_for_a_prune(tmp_path: Path) -> None:
    """Before 2026-12-07 the start gave up after --wait (10 s by default) while its
    recorder waited (30 s) for the prune, stopped it, and named a recorder.log that did
    not exist."""
    layout = journal(tmp_path)
    with retention_lock(layout):
        prune = prune_holding_the_folder(layout)
        start = cli(*recorder_argv(tmp_path, layout), "--detach", "--wait", "1")
        line = said(start, "waits for `persist prune`")
        assert "the recorder (PID " in line and f"(PID {prune.pid}) to finish" in line
        time.sleep(1.5)  # past --wait: the start waits on, as its recorder does
        assert start.poll() is None
    out, err = start.communicate(timeout=30)
    assert start.returncode == 0, err
    assert "recorder started in the background" in out
    assert prune.wait(timeout=30) == 0
    stop = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "stop", "--log-dir", str(layout.root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert stop.returncode == 0 and "stopped" in stop.stdout, stop


def test_status_and_stop_see_a_recorder_waiting_for_a_prune(tmp_path: Path) -> None:
    """Before 2026-12-07 `persist stop` said "no recorder running" (exit 0), and the
    recorder it did not see recorded once the prune was done."""
    layout = journal(tmp_path)

    def persist(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "recorder.cli", *argv, "--log-dir", str(layout.root)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    with retention_lock(layout):
        prune = prune_holding_the_folder(layout)
        rec = cli(*recorder_argv(tmp_path, layout))
        said(rec, "waiting for `persist prune`")
        status = persist("status")
        assert status.returncode == 3, status  # not recording (yet)
        assert (
            f"recorder PID {rec.pid} waits for `persist prune` (PID {prune.pid})" in status.stdout
        ), status
        assert "start it with" not in status.stdout
        stop = persist("stop")
        assert stop.returncode == 0, stop
        assert f"recorder PID {rec.pid} stopped" in stop.stdout, stop
        rec.wait(timeout=10)  # ended, not waiting on
        assert persist("stop").stdout.startswith("persist: no recorder running")
    assert prune.wait(timeout=30) == 0
    assert "STOPPED" in persist("status").stdout


def test_launch_waits_as_long_as_its_recorder_waits_for_a_prune(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`persist launch` starts its recorder as `record --detach` does: before 2026-12-07
    it gave up after --wait, stopped that recorder, and never ran the agent."""
    monkeypatch.setenv("PERSIST_NO_TTY_POLICY", "fresh")
    monkeypatch.setenv("PERSIST_MONITOR", "off")
    layout = journal(tmp_path)
    with retention_lock(layout):
        prune = prune_holding_the_folder(layout)
        launch = cli(
            "launch",
            "--wait",
            "1",
            "--log-dir",
            str(layout.root),
            "--broker",
            f"ipc://{tmp_path}/b.sub",
            "--publish-endpoint",
            f"ipc://{tmp_path}/b.pub",
            "--",
            "echo",
            "AGENT-RAN",
        )
        line = said(launch, "waits for `persist prune`")
        assert f"(PID {prune.pid}) to finish" in line
        time.sleep(1.5)  # past --wait: the launch waits on, as its recorder does
        assert launch.poll() is None
    out, err = launch.communicate(timeout=60)
    assert launch.returncode == 0, err
    assert "AGENT-RAN" in out
    assert prune.wait(timeout=30) == 0


def test_a_start_with_a_limit_stops_its_waiting_recorder_at_that_limit(tmp_path: Path) -> None:
    """A hook's start (`limit`: its budget) does not wait as long as its recorder does:
    at the limit it stops it, and says what it waited for and where its output is."""
    from recorder.daemon.options import EmbeddedMode, RecorderOptions
    from recorder.daemon.spawn import SpawnError, spawn_recorder

    layout = journal(tmp_path)
    options = RecorderOptions(
        log_dir=layout.root,
        broker=f"ipc://{tmp_path}/b.sock",
        embedded=EmbeddedMode.NO,
        search_index=False,
        monitor=False,
    )
    with retention_lock(layout):
        prune = prune_holding_the_folder(layout)
        with pytest.raises(SpawnError) as err:
            # (the limit leaves a loaded machine the seconds a recorder takes to start and
            # say it waits: at 1 s, under a load of 12, it had not said so yet)
            spawn_recorder(options, timeout=3.0, limit=3.0)
        assert layout.lock.read_text().split() == [str(prune.pid), "prune"]  # still its
    assert prune.wait(timeout=30) == 0
    message = str(err.value)
    assert f"waiting for `persist prune` (PID {prune.pid}); it was stopped" in message
    assert f"(see {layout.recorder_out})" in message
