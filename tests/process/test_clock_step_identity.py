"""A wall-clock step (NTP, `date -s`, a resume) while the recorder, its monitor, agents
and writers run: every process is still known for the one recorded.

Linux recomputes its boot time (`btime` in /proc/stat) from the wall clock, so a step
moves it by the step, and psutil's `create_time()` (boot time + the start ticks of
/proc/<pid>/stat) with it. The tests play such a step in this process by moving the
boot time psutil reads (`psutil._pslinux.boot_time`), the machine's clock untouched;
the processes are real. Before 2026-12-07 a step of a second or more made `persist
status` call a running recorder STOPPED (exit 3), `persist stop` say "no recorder
running" and leave it running, agents and the launcher's ownership be dropped as dead,
the monitor child be called not running, and a live writer's temp file be removed.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from recorder.cli.main import main
from recorder.launch.registry import live_agents, recorder_owner, register_agent, write_owner
from recorder.sources.monitor_status import read_status as read_monitor_status
from recorder.store.fsutil import remove_stale_temp_files
from recorder.store.layout import Layout
from recorder.store.status import read_status
from tests.support import Bus, Proc, endpoints, healthy, wait_for

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and btime: Linux"),
]

STATUS_STOPPED = 3  # recorder/cli/main.py


@pytest.fixture
def step(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """`step(seconds)`: the wall clock (as the kernel's boot time shows it) is stepped."""
    import psutil._pslinux as pslinux

    real = pslinux.boot_time

    def stepped(seconds: float) -> None:
        monkeypatch.setattr(pslinux, "boot_time", lambda: real() + seconds)

    return stepped


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


def test_status_and_stop_know_the_recorder_after_the_clock_is_set_back(
    bus: Bus, step: Callable[[float], None], capsys: pytest.CaptureFixture[str]
) -> None:
    bus.start_broker()
    rec = bus.start_recorder()
    step(-3600)
    assert main(["status", "--log-dir", str(bus.log_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("HEALTHY"), out
    assert main(["stop", "--log-dir", str(bus.log_dir)]) == 0
    out = capsys.readouterr().out
    assert f"persist: recorder PID {rec.pid} stopped" in out, out
    assert rec.wait(30) == 0
    status = read_status(Layout(bus.log_dir))
    assert status is not None and status.process_start_key  # written since 2026-12-07


def test_agents_and_the_launchers_ownership_outlive_a_step(
    bus: Bus, step: Callable[[float], None], sleeper: subprocess.Popen[bytes]
) -> None:
    bus.start_broker()
    rec = bus.start_recorder()
    layout = Layout(bus.log_dir)
    register_agent(layout, "claude", rec.pid, True, pid=sleeper.pid)
    write_owner(layout, rec.pid, "claude")
    for seconds in (-3600, 3600):
        step(seconds)
        assert [a["pid"] for a in live_agents(layout)] == [sleeper.pid], seconds
        owner = recorder_owner(layout)
        assert owner is not None and owner["recorder_pid"] == rec.pid, seconds
    sleeper.kill()
    sleeper.wait()
    assert live_agents(layout) == []  # a dead one is still dead


def test_the_monitor_child_runs_after_the_clock_is_set_ahead(
    tmp_path: Path,
    procs: Callable[..., Proc],
    step: Callable[[float], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PERSIST_MONITOR")  # the default: on
    log_dir = tmp_path / "log"
    layout = Layout(log_dir)
    eps = endpoints()
    rec = procs(
        "record", "--log-dir", str(log_dir), "--broker", eps["broker"], "--embedded", "yes",
        "--publish-endpoint", eps["publish_endpoint"], "--search-index", "off",
        name="recorder",
    )  # fmt: skip
    wait_for(lambda: healthy(log_dir), timeout=60, what="recorder")
    wait_for(lambda: read_monitor_status(layout) is not None, timeout=120, what="a round")
    status = read_monitor_status(layout)
    assert status is not None and status.parent == rec.pid and status.alive
    step(3600)
    status = read_monitor_status(layout)
    assert status is not None and status.alive and status.start_key


def test_a_live_writers_temp_file_is_kept_after_the_clock_is_set_ahead(
    tmp_path: Path, step: Callable[[float], None]
) -> None:
    target = tmp_path / "big.json"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from recorder.store.fsutil import AtomicFile\n"
            "f = AtomicFile(sys.argv[1])\n"
            "f.file.write(b'half'); f.file.flush()\n"
            "print(f.tmp.name, flush=True)\n"
            "time.sleep(120)\n",
            str(target),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert writer.stdout is not None
        name = writer.stdout.readline().decode().strip()
        assert (tmp_path / name).exists()
        step(3600)
        assert remove_stale_temp_files(tmp_path) == []
        assert (tmp_path / name).exists()
    finally:
        writer.kill()
        writer.wait()
    assert remove_stale_temp_files(tmp_path) == [tmp_path / name]  # its writer is gone


def test_a_live_renderers_work_folder_is_kept_after_the_clock_is_set_ahead(
    tmp_path: Path, step: Callable[[float], None], sleeper: subprocess.Popen[bytes]
) -> None:
    from recorder.export.render_cache import ensure_folder
    from recorder.store.procstart import start_ticks

    folder = tmp_path / "cache"
    work = folder / f".warm-{sleeper.pid}-T{start_ticks(sleeper.pid)}-abc_123"  # warm_renders
    work.mkdir(parents=True)
    step(3600)
    ensure_folder(folder)
    assert work.is_dir()
    sleeper.kill()
    sleeper.wait()
    ensure_folder(folder)
    assert not work.exists()  # its renderer is gone
