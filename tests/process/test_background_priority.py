"""The recorder's helper processes run at idle priority by default, and at the normal
priority with `$PERSIST_BACKGROUND_PRIORITY=normal` (the rest of the suite sets it, so
tests on two busy workers do not wait on children that are never scheduled)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.support import Bus, wait_for

pytestmark = pytest.mark.timeout(120)


def helpers(pid: int) -> dict[str, psutil.Process]:
    found: dict[str, psutil.Process] = {}
    for child in psutil.Process(pid).children():
        argv = child.cmdline()
        if "reindex" in argv:
            found["indexer"] = child
        elif "monitor" in argv:
            found["monitor"] = child
    return found


def settled(pid: int, idle: bool) -> Callable[[], dict[str, psutil.Process] | None]:
    """Both helpers there, each having set its own priority (they do it first thing:
    CPU, then I/O)."""

    def at_priority(p: psutil.Process) -> bool:
        if not idle:
            return p.nice() == 0
        return (
            p.nice() == 19
            and p.ionice().ioclass == psutil.IOPRIO_CLASS_IDLE
            and autogroup_nice(p.pid) in (None, 19)
        )

    def check() -> dict[str, psutil.Process] | None:
        found = helpers(pid)
        return found if len(found) == 2 and all(map(at_priority, found.values())) else None

    return check


@pytest.mark.parametrize("setting", ["default", "normal"])
def test_helper_processes_priority(
    bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    monkeypatch.setenv("PERSIST_MONITOR", "on")
    monkeypatch.setenv("PERSIST_SEARCH_INDEX", "on")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    if setting == "default":
        monkeypatch.delenv("PERSIST_BACKGROUND_PRIORITY")
    bus.start_broker()
    rec = bus.start_recorder()
    idle = setting == "default"
    found = wait_for(settled(rec.pid, idle), what=f"both helpers at {setting} priority")
    assert found is not None
    for child in found.values():
        policy = os.sched_getscheduler(child.pid)
        assert policy == (os.SCHED_IDLE if idle else os.SCHED_OTHER)
        # a session of its own, so that the weight it lowers is its own
        assert os.getsid(child.pid) == child.pid != os.getsid(rec.pid)
        assert autogroup_nice(child.pid) in ((None, 19) if idle else (None, 0))


def autogroup_nice(pid: int) -> int | None:
    """The CPU weight (nice) of a process's session, where Linux groups by session."""
    try:
        text = Path(f"/proc/{pid}/autogroup").read_text()  # "/autogroup-42 nice 19"
    except OSError:
        return None
    # empty where the process's CPU group is not an autogroup (a container's cgroup)
    words = text.split()
    return int(words[-1]) if len(words) == 3 and words[1] == "nice" else None


@pytest.mark.skipif(autogroup_nice(os.getpid()) is None, reason="no autogroup on this kernel")
def test_only_a_session_of_its_own_is_lowered() -> None:
    """A helper lowers its session's weight only when the session is its own: run by
    hand from a terminal, it must not slow the terminal's whole session."""
    lower = "from recorder.daemon.priority import _lower_own_session; _lower_own_session()"
    show = "import os; print(open('/proc/self/autogroup').read().split()[-1])"
    leader = subprocess.run(
        [sys.executable, "-c", f"{lower}; {show}"],
        capture_output=True,
        text=True,
        check=True,
        start_new_session=True,
    )
    assert leader.stdout.strip() == "19"
    # a session of its own (so a failure cannot slow this one), in which a process that
    # does not lead it tries: the session keeps its weight
    member = (
        "import subprocess, sys; "
        f"subprocess.run([sys.executable, '-c', {lower!r}], check=True); {show}"
    )
    session = subprocess.run(
        [sys.executable, "-c", member],
        capture_output=True,
        text=True,
        check=True,
        start_new_session=True,
    )
    assert session.stdout.strip() == "0"


def test_a_bad_setting_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch, bus: Bus) -> None:
    monkeypatch.setenv("PERSIST_BACKGROUND_PRIORITY", "low")
    proc = bus.start_recorder(wait=False)
    assert proc.wait(30) == 2
    assert proc.output().strip() == (
        "persist: $PERSIST_BACKGROUND_PRIORITY must be idle or normal (got 'low')"
    )


@pytest.mark.parametrize(
    "argv",
    [["reindex", "--follow"], ["monitor", "--once"]],
    ids=["reindex-follow", "monitor"],
)
def test_a_bad_setting_is_refused_in_one_line_by_the_helpers_run_by_hand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    """`persist reindex --follow` and `persist monitor` as the recorder runs them (what
    `--parent` says; the README gives the first as what `persist record` runs, and either
    can be run by hand): a bad `$PERSIST_BACKGROUND_PRIORITY` is refused as `persist
    record` refuses it, one line, exit 2. Before 2026-12-07 they took it for `idle`
    without a word (the indexer then ran on, throttled)."""
    from tests.unit.test_search_index import write_journal

    monkeypatch.setenv("PERSIST_BACKGROUND_PRIORITY", "low")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    root = tmp_path / "logs"
    write_journal(root, 20).close()
    # --parent 1: a follower whose parent is not this process stops at its first look
    done = subprocess.run(
        [sys.executable, "-m", "recorder.cli", *argv, "--log-dir", str(root), "--parent", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr == (
        "persist: $PERSIST_BACKGROUND_PRIORITY must be idle or normal (got 'low')\n"
    )
    assert not (root / "search").exists()  # refused before anything was done


@pytest.mark.parametrize("setting", ["default", "normal"])
def test_a_helper_is_lowered_by_the_recorder_from_its_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    """The recorder lowers a helper as it starts it, before the helper's interpreter has
    imported anything (the helper lowers itself only after): here a child that never
    lowers itself reports what it was given."""
    from recorder.cli.children import IdleChild

    if setting == "default":
        monkeypatch.delenv("PERSIST_BACKGROUND_PRIORITY")
    out = tmp_path / "priority"
    report = (
        "import os, psutil; "
        "print(os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0), "
        f"int(psutil.Process().ionice().ioclass), file=open({str(out)!r}, 'w'))"
    )
    child = IdleChild([], tmp_path / "child.err", "no child")
    child.argv = [sys.executable, "-c", report]
    child.start()
    assert child.proc is not None and child.proc.wait(60) == 0
    policy, nice, ioclass = map(int, out.read_text().split())
    if setting == "default":
        assert (policy, nice, ioclass) == (os.SCHED_IDLE, 19, int(psutil.IOPRIO_CLASS_IDLE))
    else:
        assert (policy, nice) == (os.SCHED_OTHER, 0)
