"""`persist launch` at its edges: what stands where its agents/ folder goes, a recorder that
dies under the agent, a launch lock held at the agent's exit, a terminal that cannot draw
the menu, and signals while the menu is on screen."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recorder.store.layout import Layout
from recorder.store.status import assess
from tests.process.test_launcher import run_launch
from tests.support import endpoints, read_status, run_cli

pytestmark = pytest.mark.timeout(120)


def test_a_file_where_the_agents_folder_goes_is_one_line_naming_the_mv(tmp_path: Path) -> None:
    """It was `persist: launch: File exists (.../agents)`, naming nothing to do."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir(mode=0o700)
    (log_dir / "agents").write_text("someone's")
    report = tmp_path / "report.json"
    proc = run_launch(log_dir, endpoints(), agent_args=[str(report)])
    _out, err = proc.communicate(timeout=60)
    agents = log_dir / "agents"
    assert proc.returncode == 1
    assert err.splitlines() == [
        f"persist: cannot start persistence: {agents} is a file, not a folder: launchers "
        f"register their agents there; move it out of the way (mv {agents} {agents}.aside) "
        "and run this again"
    ]
    assert not report.exists() and (log_dir / "agents").read_text() == "someone's"


def launch(log_dir: Path, eps: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    """`persist launch` (no terminal: policy fresh) of `command`, to its end."""
    argv = [sys.executable, "-m", "recorder.cli", "launch", "--log-dir", str(log_dir)]
    argv += ["--broker", eps["broker"], "--publish-endpoint", eps["publish_endpoint"]]
    argv += ["--embedded", "yes", "--", *command]
    return subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90
    )


_KILLS_THE_RECORDER = r"""
import json, os, signal, sys, time
from pathlib import Path

pid = json.loads(Path(os.environ["PERSIST_LOG_DIR"], "status.json").read_text())["pid"]
os.kill(pid, signal.SIGKILL)  # the OOM killer, say
while Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
    time.sleep(0.05)
sys.exit(3)
"""


def test_a_recorder_that_dies_under_the_agent_is_said_at_exit(tmp_path: Path) -> None:
    """Before 2026-12-07 the launch ended silently (the agent's exit code, nothing said)
    while nothing the agent sent after the crash was recorded."""
    log_dir = tmp_path / "logs"
    run = launch(log_dir, endpoints(), sys.executable, "-c", _KILLS_THE_RECORDER)
    assert run.returncode == 3, run.stderr  # still the agent's
    said = [line for line in run.stderr.splitlines() if "no menu" not in line]
    assert len(said) == 1, run.stderr
    assert re.fullmatch(
        r"persist: the recorder ended during this session: recorder PID \d+ is gone without "
        r"a clean stop \(last heartbeat .* ago\); what was sent after that was not recorded",
        said[0],
    ), said
    assert not assess(Layout(log_dir)).running


def test_a_recorder_stopped_by_hand_under_the_agent_is_said_at_exit(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    stop = f"{sys.executable} -m recorder.cli stop --log-dir {log_dir} >/dev/null; exit 0"
    run = launch(log_dir, endpoints(), "sh", "-c", stop)
    assert run.returncode == 0, run.stderr
    said = [line for line in run.stderr.splitlines() if "no menu" not in line]
    assert len(said) == 1, run.stderr
    assert said[0].startswith("persist: the recorder ended during this session: stopped cleanly")
    assert said[0].endswith("; what was sent after that was not recorded")


_HOLDS_THE_LOCK_THEN_EXITS = r"""
import os, subprocess, sys, time
from pathlib import Path

lock, pid_file = Path(os.environ["PERSIST_LOG_DIR"], "agents", "launch.lock"), sys.argv[1]
holder = subprocess.Popen([sys.executable, "-c", '''
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)  # another launcher stuck holding it (stopped with Ctrl-Z)
print("held", flush=True)
time.sleep(120)
''', str(lock)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
  text=True, start_new_session=True)  # not our stderr: the test reads it to its end
Path(pid_file).write_text(str(holder.pid))
assert holder.stdout.readline() == "held\n"
sys.exit(5)
"""


def test_a_launch_lock_held_at_the_agents_exit_is_one_line_and_the_agents_code(
    tmp_path: Path,
) -> None:
    """Before 2026-12-07 the launch waited 30 s for the lock, printed `persist: another
    launcher holds .../launch.lock`, its atexit step waited 30 s more, and it exited 1."""
    log_dir, holder = tmp_path / "logs", tmp_path / "holder.pid"
    try:
        t0 = time.monotonic()
        run = launch(
            log_dir, endpoints(), sys.executable, "-c", _HOLDS_THE_LOCK_THEN_EXITS, str(holder)
        )
        took = time.monotonic() - t0
    finally:
        if holder.exists():
            os.kill(int(holder.read_text()), signal.SIGKILL)
    assert run.returncode == 5, run.stderr  # the agent's
    said = [line for line in run.stderr.splitlines() if "no menu" not in line]
    lock = log_dir / "agents" / "launch.lock"
    assert said == [
        f"persist: another launcher holds {lock} (waited 30 s): this launch ended without "
        "it, the recorder left running"
    ], run.stderr
    assert took < 55, took  # one wait, not two
    assert list((log_dir / "agents").glob("*.agent.json")) == []  # unregistered all the same
    stopped = run_cli("stop", "--log-dir", str(log_dir))  # the lock is free now
    assert stopped.returncode == 0, stopped.stderr


def test_a_recorder_hosting_the_broker_another_folder_follows_outlives_its_last_agent(
    tmp_path: Path,
) -> None:
    """Agent A launched into folder a (its recorder hosts the embedded broker), agent B
    into folder b (its recorder follows that broker). Before 2026-12-07 A's exit stopped
    a's recorder and its broker with it: b went DEGRADED, nothing B sent was recorded,
    and no one was told. Now a's recorder is left running while b's follows it (one
    line naming b), and B's exit, the last on that bus, stops both."""
    from recorder.bus.publisher import Publisher
    from recorder.launch.launcher import PersistenceLauncher
    from recorder.launch.registry import recorder_owner
    from tests.support import healthy, journal_records, wait_for

    eps = endpoints()
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a = PersistenceLauncher(a_dir, embedded="auto", interactive=False, stderr=io.StringIO(), **eps)
    a.on_agent_connected("A")
    assert a.started_recorder and read_status(a_dir).get("embedded_broker")
    b = PersistenceLauncher(b_dir, embedded="auto", interactive=False, stderr=io.StringIO(), **eps)
    b.on_agent_connected("B")
    assert b.started_recorder and not read_status(b_dir).get("embedded_broker")
    wait_for(lambda: read_status(b_dir).get("connection") == "connected", what="b follows a")

    out = a.on_agent_exit()
    assert not out.stopped and out.worth_saying, out
    assert re.fullmatch(
        rf"last agent out, but the recorder hosts the broker at {re.escape(eps['broker'])} "
        rf"that the recorder of {re.escape(str(b_dir))} \(PID {b.recorder_pid}\) still "
        r"follows: left running \(the last agent out of there stops it\)",
        out.reason,
    ), out.reason
    assert healthy(a_dir) and recorder_owner(Layout(a_dir)) is not None
    with Publisher(eps["publish_endpoint"], agent="B") as pub:  # B goes on working
        pub.wait_ready()
        pub.send("agents.b", {"text": "B still working"})
    wait_for(lambda: any(r.get("kind") == "msg" for r in journal_records(b_dir)), what="B recorded")
    assert healthy(b_dir)

    out = b.on_agent_exit()
    assert out.stopped, out
    assert out.reason == (
        f"last agent out: recorder stopped, and so was that of {a_dir}, which hosted its "
        "broker for it"
    )
    assert not assess(Layout(a_dir)).running and not assess(Layout(b_dir)).running
    assert recorder_owner(Layout(a_dir)) is None


def test_a_session_end_leaves_running_a_recorder_hosting_the_broker_another_folder_follows(
    tmp_path: Path,
) -> None:
    """The same through the agents' hooks: a Claude session's SessionStart hook started
    folder a's recorder, which hosts the embedded broker; folder b's recorder follows it.
    Before 2026-12-07 that session's SessionEnd, the last agent out of a, stopped a's
    recorder and the broker with it, and b recorded nothing more."""
    from recorder.hooks.samples import ClaudeSession
    from recorder.launch.launcher import PersistenceLauncher
    from recorder.launch.registry import recorder_owner
    from tests.process.test_hooks_flow import append, run_hook
    from tests.support import healthy, wait_for

    eps = endpoints()
    ends = (eps["publish_endpoint"], eps["broker"])
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    c = ClaudeSession(transcript=str(tmp_path / "main.jsonl"))
    append(Path(c.transcript), c.user("hello"))
    start = run_hook(a_dir, "claude", c.payload("SessionStart"), endpoints=ends)
    assert start.returncode == 0, start.stderr
    assert read_status(a_dir).get("embedded_broker"), read_status(a_dir)
    b = PersistenceLauncher(b_dir, embedded="auto", interactive=False, stderr=io.StringIO(), **eps)
    b.on_agent_connected("B")
    try:
        wait_for(lambda: read_status(b_dir).get("connection") == "connected", what="b follows a")
        end = run_hook(a_dir, "claude", c.payload("SessionEnd", reason="exit"), endpoints=ends)
        assert end.returncode == 0, end.stderr
        # (the hook waits for a stop it asks for: had it asked, a would be stopped now)
        assert healthy(a_dir) and recorder_owner(Layout(a_dir)) is not None
        assert healthy(b_dir)
    finally:
        out = b.on_agent_exit()  # the last agent on that bus: stops both
    assert out.stopped, out
    wait_for(lambda: not assess(Layout(a_dir)).running, what="a's recorder stopped by b's exit")


@pytest.mark.parametrize("manager", ["enabled", "no user bus"])
def test_the_last_agent_out_leaves_running_the_recorder_of_a_folder_a_systemd_unit_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, manager: str
) -> None:
    """A unit installed and enabled for the folder (`persist service install`) cannot
    start its own recorder while the launcher's runs; before 2026-12-07 the last agent
    out stopped the launcher's all the same, and the folder the user meant to record all
    the time was not recorded. Now it is left running, one line saying how to hand it to
    the unit; a session's SessionEnd hook leaves it running too. A unit file no user
    manager starts (here none to reach: a container, WSL, SSH without lingering) records
    nothing: before 2026-12-08 it kept the recorder running for good all the same, the
    line naming a `systemctl --user start` that failed; now it is stopped as without one."""
    from recorder.hooks.samples import ClaudeSession
    from recorder.launch.launcher import PersistenceLauncher
    from tests.process.test_hooks_flow import append, run_hook
    from tests.support import fake_systemctl, healthy

    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    fake_systemctl(tmp_path / "bin", bus=manager != "no user bus")  # enabled, or no bus
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    eps = endpoints()
    log_dir = tmp_path / "logs"
    unit = run_cli("service", "install", "--print-only", "--log-dir", str(log_dir))
    assert unit.returncode == 0, unit.stderr
    a = PersistenceLauncher(
        log_dir, embedded="auto", interactive=False, stderr=io.StringIO(), **eps
    )
    a.on_agent_connected("A")
    assert a.started_recorder
    out = a.on_agent_exit()
    c = ClaudeSession(transcript=str(tmp_path / "main.jsonl"))  # a session through hooks
    append(Path(c.transcript), c.user("hello"))
    ends = (eps["publish_endpoint"], eps["broker"])
    if manager == "no user bus":
        assert out.stopped and out.reason == "last agent out: recorder stopped", out
        assert not assess(Layout(log_dir)).running
        start = run_hook(log_dir, "claude", c.payload("SessionStart"), endpoints=ends)
        assert start.returncode == 0, start.stderr
        assert healthy(log_dir)  # the session's hook started one
        end = run_hook(log_dir, "claude", c.payload("SessionEnd"), endpoints=ends)
        assert end.returncode == 0, end.stderr
        assert not assess(Layout(log_dir)).running  # and its end stopped it
        return
    assert not out.stopped and out.worth_saying, out
    assert out.reason.startswith(
        f"last agent out, but the systemd unit agent-persist-recorder.service records {log_dir}"
    ), out.reason
    assert f"persist stop --log-dir {log_dir} && systemctl --user start" in out.reason
    assert healthy(log_dir)

    for event in ("SessionStart", "SessionEnd"):
        done = run_hook(log_dir, "claude", c.payload(event), endpoints=ends)
        assert done.returncode == 0, done.stderr
    assert healthy(log_dir)
    stop = run_cli("stop", "--log-dir", str(log_dir))
    assert stop.returncode == 0, stop.stderr


def _stop_all(*log_dirs: Path) -> None:
    """Whatever a failed test left running: `persist stop` of each folder."""
    for log_dir in log_dirs:
        if assess(Layout(log_dir)).running:
            run_cli("stop", "--log-dir", str(log_dir))


def test_the_last_session_end_of_a_following_folder_stops_the_host_left_for_it(
    tmp_path: Path,
) -> None:
    """Folder a's recorder (a launcher's, hosting the embedded broker) is left running at
    A's exit because b's recorder (a SessionStart hook's) follows it. Before 2026-12-07
    the SessionEnd of b's last session stopped b's recorder only: a's ran on with no agent
    and no follower, started for agents and never stopped (a launcher's exit did stop it)."""
    from recorder.hooks.samples import ClaudeSession
    from recorder.launch.launcher import PersistenceLauncher
    from recorder.launch.registry import recorder_owner
    from tests.process.test_hooks_flow import append, run_hook
    from tests.support import wait_for

    eps = endpoints()
    ends = (eps["publish_endpoint"], eps["broker"])
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    try:
        a = PersistenceLauncher(
            a_dir, embedded="auto", interactive=False, stderr=io.StringIO(), **eps
        )
        a.on_agent_connected("A")
        assert read_status(a_dir).get("embedded_broker"), read_status(a_dir)
        c = ClaudeSession(transcript=str(tmp_path / "main.jsonl"))
        append(Path(c.transcript), c.user("hello"))
        start = run_hook(b_dir, "claude", c.payload("SessionStart"), endpoints=ends)
        assert start.returncode == 0, start.stderr
        assert not read_status(b_dir).get("embedded_broker"), read_status(b_dir)
        wait_for(lambda: read_status(b_dir).get("connection") == "connected", what="b follows")
        out = a.on_agent_exit()
        assert out.shared and not out.stopped, out
        end = run_hook(b_dir, "claude", c.payload("SessionEnd", reason="exit"), endpoints=ends)
        assert end.returncode == 0, end.stderr
        assert not assess(Layout(b_dir)).running
        assert not assess(Layout(a_dir)).running, "a's recorder outlived every user of it"
        assert recorder_owner(Layout(a_dir)) is None and not (a_dir / "agents/owner.json").exists()
    finally:
        _stop_all(a_dir, b_dir)


def test_a_host_a_systemd_unit_records_outlives_its_followers_last_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host is stopped for its followers only when nothing else wants it: a unit
    installed for its folder and enabled does (its own recorder cannot start while this
    one runs). Before 2026-12-07 the follower's last agent out stopped it all the same."""
    from recorder.launch.launcher import PersistenceLauncher
    from tests.support import fake_systemctl, healthy, wait_for

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    fake_systemctl(tmp_path / "bin")  # a user manager that has the unit enabled
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    eps = endpoints()
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    try:
        a = PersistenceLauncher(
            a_dir, embedded="auto", interactive=False, stderr=io.StringIO(), **eps
        )
        a.on_agent_connected("A")
        b = PersistenceLauncher(
            b_dir, embedded="auto", interactive=False, stderr=io.StringIO(), **eps
        )
        b.on_agent_connected("B")
        wait_for(lambda: read_status(b_dir).get("connection") == "connected", what="b follows")
        unit = run_cli("service", "install", "--print-only", "--log-dir", str(a_dir))
        assert unit.returncode == 0, unit.stderr
        assert a.on_agent_exit().shared
        out = b.on_agent_exit()
        assert out.stopped and out.reason == "last agent out: recorder stopped", out
        assert healthy(a_dir)
    finally:
        _stop_all(a_dir, b_dir)


def test_followers_of_an_ipc_broker_keep_its_host_running_and_the_last_one_stops_it(
    tmp_path: Path,
) -> None:
    """The broker a's recorder hosts (started by a SessionStart hook) is on ipc://; b's
    recorder (a launcher's) follows it. Before 2026-12-07 only tcp:// followers were
    looked for: a's SessionEnd stopped a's recorder and its broker, and b recorded
    nothing more without a word; b's exit could not find the host to stop it."""
    from recorder.hooks.samples import ClaudeSession
    from recorder.launch.launcher import PersistenceLauncher
    from tests.process.test_hooks_flow import append, run_hook
    from tests.support import healthy, wait_for

    eps = {"broker": f"ipc://{tmp_path}/bus.sub", "publish_endpoint": f"ipc://{tmp_path}/bus.pub"}
    ends = (eps["publish_endpoint"], eps["broker"])
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    try:
        c = ClaudeSession(transcript=str(tmp_path / "main.jsonl"))
        append(Path(c.transcript), c.user("hello"))
        start = run_hook(a_dir, "claude", c.payload("SessionStart"), endpoints=ends)
        assert start.returncode == 0, start.stderr
        assert read_status(a_dir).get("embedded_broker") == eps["publish_endpoint"]
        b = PersistenceLauncher(
            b_dir, embedded="auto", interactive=False, stderr=io.StringIO(), **eps
        )
        b.on_agent_connected("B")
        wait_for(lambda: read_status(b_dir).get("connection") == "connected", what="b follows")
        end = run_hook(a_dir, "claude", c.payload("SessionEnd", reason="exit"), endpoints=ends)
        assert end.returncode == 0, end.stderr
        assert healthy(a_dir), "a's SessionEnd stopped the broker b follows"
        assert healthy(b_dir)
        out = b.on_agent_exit()
        assert out.stopped, out
        assert out.reason == (
            f"last agent out: recorder stopped, and so was that of {a_dir}, which hosted "
            "its broker for it"
        )
        assert not assess(Layout(a_dir)).running
    finally:
        _stop_all(a_dir, b_dir)


def test_a_host_whose_folder_a_hook_still_works_in_outlives_its_followers_last_agent(
    tmp_path: Path,
) -> None:
    """a's recorder (a launcher's, hosting the broker) is left running for b's; a hook of
    a still holds its session's lock (a SessionEnd sending the session's end, say) when
    B, b's last agent, leaves. Before 2026-12-08 B's exit stopped a's recorder under the
    hook (`stop_unused_host` looked for registered agents only): what it still sent was
    lost."""
    import fcntl

    from recorder.launch.launcher import PersistenceLauncher
    from tests.support import healthy, wait_for

    eps = endpoints()
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    try:
        a = PersistenceLauncher(
            a_dir, embedded="auto", interactive=False, stderr=io.StringIO(), **eps
        )
        a.on_agent_connected("A")
        b = PersistenceLauncher(
            b_dir, embedded="auto", interactive=False, stderr=io.StringIO(), **eps
        )
        b.on_agent_connected("B")
        wait_for(lambda: read_status(b_dir).get("connection") == "connected", what="b follows")
        assert a.on_agent_exit().shared
        (a_dir / "hooks/sessions").mkdir(parents=True)
        lock = os.open(a_dir / "hooks/sessions/claude-abc.json.lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the hook's (a file description of its own)
            out = b.on_agent_exit()
        finally:
            os.close(lock)
        assert out.stopped, out
        assert out.reason == (
            f"last agent out: recorder stopped; the recorder of {a_dir}, which hosted its "
            "broker for it, is left running: a hook there still holds the lock of 1 "
            "session(s) (claude-abc) and may still send to it (the hook that sends a "
            f"session's end stops it; else `persist stop --log-dir {a_dir}`)"
        )
        assert healthy(a_dir), "a's recorder was stopped under the hook"
        assert not assess(Layout(b_dir)).running
    finally:
        _stop_all(a_dir, b_dir)


def _ipc_endpoints(folder: Path) -> dict[str, str]:
    return {"broker": f"ipc://{folder}/bus.sub", "publish_endpoint": f"ipc://{folder}/bus.pub"}


@pytest.mark.parametrize("started_by", ["launcher, tcp", "start hook, ipc"])
def test_a_subscriber_that_is_no_recorder_does_not_keep_the_host_running(
    tmp_path: Path, started_by: str
) -> None:
    """A plain zmq SUB (a dashboard, a tail of the user's) subscribed at the broker a's
    recorder hosts. Before 2026-12-08 it counted as a follower: a's last agent out left
    the recorder running, the line saying "the last agent out of there stops it", and
    nothing ever did (the SUB had no agents; a's ran on after it left). Nothing is
    recorded for such a subscriber: the recorder started for agents stops with them."""
    import zmq

    from recorder.hooks.samples import ClaudeSession
    from recorder.launch.launcher import PersistenceLauncher
    from recorder.launch.peers import subscribers
    from tests.process.test_hooks_flow import append, run_hook
    from tests.support import wait_for

    hook = started_by.startswith("start hook")
    eps = _ipc_endpoints(tmp_path) if hook else endpoints()
    ends = (eps["publish_endpoint"], eps["broker"])
    a_dir = tmp_path / "a"
    c = ClaudeSession(transcript=str(tmp_path / "main.jsonl"))
    sub: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    sub.linger = 0
    try:
        if hook:
            append(Path(c.transcript), c.user("hello"))
            start = run_hook(a_dir, "claude", c.payload("SessionStart"), endpoints=ends)
            assert start.returncode == 0, start.stderr
        else:
            a = PersistenceLauncher(
                a_dir, embedded="auto", interactive=False, stderr=io.StringIO(), **eps
            )
            a.on_agent_connected("A")
        host = read_status(a_dir)
        assert host.get("embedded_broker"), host
        sub.subscribe(b"")
        sub.connect(eps["broker"])
        wait_for(lambda: subscribers(eps["broker"], host["pid"]), what="the SUB connected")
        if hook:
            end = run_hook(a_dir, "claude", c.payload("SessionEnd", reason="exit"), endpoints=ends)
            assert end.returncode == 0, end.stderr
        else:
            out = a.on_agent_exit()
            assert out.stopped, out
            assert out.reason == (
                f"last agent out: recorder stopped, and with it the broker at {eps['broker']} "
                f"that PID {os.getpid()} was subscribed to (not a recorder: it hears nothing "
                "more)"
            )
        assert not assess(Layout(a_dir)).running, "kept running for a plain subscriber"
    finally:
        sub.close()
        _stop_all(a_dir)


def _users_recorder(how: str, folder: Path, broker: str) -> subprocess.Popen[bytes] | None:
    """The user's own `persist record` of `folder`, following `broker`, started `how`:
    detached (`--detach --log-dir X`, as a launcher's), or in the foreground named by
    `--log-dir=X`, `$PERSIST_LOG_DIR` or the XDG default (`folder` is where that leads),
    run by the `persist` entry script or `python -m recorder.cli`. The process, for
    one in the foreground."""
    follow = ["--broker", broker, "--embedded", "no"]
    if how == "detached":
        record = run_cli("record", "--detach", "--log-dir", str(folder), *follow)
        assert record.returncode == 0, record.stderr
        return None
    env = {k: v for k, v in os.environ.items() if k != "PERSIST_LOG_DIR"}
    if how == "entry script, --log-dir=X":
        argv = [str(Path(sys.executable).parent / "persist"), "record", f"--log-dir={folder}"]
    elif how == "python -m, $PERSIST_LOG_DIR":
        argv = [sys.executable, "-m", "recorder.cli", "record"]
        env["PERSIST_LOG_DIR"] = str(folder)
    else:  # the XDG default: $XDG_DATA_HOME/agent-persist/conversation_logs
        argv = [sys.executable, "-m", "recorder.cli", "record"]
        env["XDG_DATA_HOME"] = str(folder.parent.parent)
    return subprocess.Popen(
        [*argv, *follow],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    "how",
    ["detached", "entry script, --log-dir=X", "python -m, $PERSIST_LOG_DIR", "XDG default"],
)
def test_a_host_kept_for_a_recorder_no_agent_stops_says_persist_stop_does(
    tmp_path: Path, how: str
) -> None:
    """b's recorder is the user's own (`persist record`), following the broker a's
    launcher-started recorder hosts: no agent's exit ever stops it, so none stops a's.
    Before 2026-12-08 A's line promised "the last agent out of there stops it"; and a
    `persist record` in the foreground whose folder was not given as `--log-dir X` was
    taken for a plain subscriber: a's last agent out stopped the broker under it."""
    from recorder.launch.launcher import PersistenceLauncher
    from tests.support import healthy, wait_for

    eps = endpoints()
    a_dir = tmp_path / "a"
    b_dir = (
        tmp_path / "data/agent-persist/conversation_logs"
        if how == "XDG default"
        else tmp_path / "b"
    )
    user = None
    try:
        a = PersistenceLauncher(
            a_dir, embedded="auto", interactive=False, stderr=io.StringIO(), **eps
        )
        a.on_agent_connected("A")
        user = _users_recorder(how, b_dir, eps["broker"])
        wait_for(lambda: read_status(b_dir).get("connection") == "connected", what="b follows")
        b_pid = read_status(b_dir)["pid"]
        out = a.on_agent_exit()
        assert out.shared and not out.stopped, out
        assert out.reason == (
            f"last agent out, but the recorder hosts the broker at {eps['broker']} that the "
            f"recorder of {b_dir} (PID {b_pid}) still follows: left running, and no agent's "
            f"exit stops it while that recorder follows it (`persist stop --log-dir {a_dir}` "
            "does)"
        )
        assert healthy(a_dir) and healthy(b_dir)
    finally:
        _stop_all(a_dir, b_dir)
        if user is not None:
            user.wait(timeout=30)


@pytest.mark.parametrize("follower", ["launcher", "start hook"])
def test_a_follower_whose_recorder_died_stops_the_host_at_its_last_agents_exit(
    tmp_path: Path, follower: str
) -> None:
    """a's recorder (a launcher's, hosting the broker) is left running for b's, which
    follows it; b's recorder is then killed (the OOM killer, say) while its agent runs.
    Before 2026-12-08 b's last agent out found no recorder of its own to stop and left
    a's running for nobody, for good."""
    from recorder.hooks.samples import ClaudeSession
    from recorder.launch.launcher import PersistenceLauncher
    from tests.process.test_hooks_flow import append, run_hook
    from tests.support import wait_for

    eps = endpoints()
    ends = (eps["publish_endpoint"], eps["broker"])
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    c = ClaudeSession(transcript=str(tmp_path / "main.jsonl"))
    try:
        a = PersistenceLauncher(
            a_dir, embedded="auto", interactive=False, stderr=io.StringIO(), **eps
        )
        a.on_agent_connected("A")
        if follower == "launcher":
            b = PersistenceLauncher(
                b_dir, embedded="auto", interactive=False, stderr=io.StringIO(), **eps
            )
            b.on_agent_connected("B")
        else:
            append(Path(c.transcript), c.user("hello"))
            start = run_hook(b_dir, "claude", c.payload("SessionStart"), endpoints=ends)
            assert start.returncode == 0, start.stderr
        wait_for(lambda: read_status(b_dir).get("connection") == "connected", what="b follows")
        assert a.on_agent_exit().shared
        os.kill(read_status(b_dir)["pid"], signal.SIGKILL)
        wait_for(lambda: not assess(Layout(b_dir)).running, what="b's recorder gone")
        if follower == "launcher":
            out = b.on_agent_exit()
            assert out.lost and not out.stopped, out
            assert out.reason.endswith(
                f"what was sent after that was not recorded; the recorder of {a_dir}, which "
                "hosted the broker it followed, was stopped"
            ), out.reason
        else:
            end = run_hook(b_dir, "claude", c.payload("SessionEnd", reason="exit"), endpoints=ends)
            assert end.returncode == 0, end.stderr
        assert not assess(Layout(a_dir)).running, "a's recorder outlived every user of it"
    finally:
        _stop_all(a_dir, b_dir)
