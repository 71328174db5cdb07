"""PersistenceLauncher and `persist launch` against real recorders, brokers and terminals."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from recorder.bus.publisher import Publisher
from recorder.launch.launcher import PersistenceLauncher
from recorder.launch.menu import PickerFailed
from recorder.launch.registry import live_agents, recorder_owner
from recorder.launch.selection import Selection
from recorder.store import secrets as S
from recorder.store.layout import Layout
from recorder.store.reader import open_store
from recorder.store.status import assess
from tests.demo_journal import BASE_TS, DemoWriter
from tests.secret_samples import make
from tests.support import (
    FAKE_AGENT,
    PYTHON,
    Bus,
    endpoints,
    healthy,
    journal_records,
    read_status,
    run_cli,
    wait_for,
)
from tests.tui_fixtures import demo_dir

pytestmark = pytest.mark.timeout(120)


def launcher(log_dir: Path, eps: dict[str, str], **kw: object) -> PersistenceLauncher:
    kw.setdefault("interactive", False)
    kw.setdefault("stderr", io.StringIO())
    return PersistenceLauncher(log_dir, embedded="yes", **eps, **kw)  # type: ignore[arg-type]


def test_started_reused_and_stopped_only_when_the_last_agent_leaves(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    eps = endpoints()
    a = launcher(log_dir, eps)
    ra = a.on_agent_connected(agent_name="alpha")  # its time is measured by bench/launch.py
    assert ra.kind == "fresh" and ra.decided_by == "policy"
    assert "no-terminal policy 'fresh'" in a._stderr.getvalue()  # type: ignore[union-attr]
    assert a.started_recorder and healthy(log_dir)
    status = read_status(log_dir)
    assert status["state"] == "recording" and status["pid"] == a.recorder_pid
    owner = recorder_owner(Layout(log_dir))
    assert owner is not None and owner["launcher_pid"] == os.getpid()
    assert oct((log_dir / "agents").stat().st_mode & 0o777) == "0o700"

    b = launcher(log_dir, eps)
    rb = b.on_agent_connected("beta")
    assert rb.kind == "fresh" and not b.started_recorder and b.recorder_pid == a.recorder_pid
    assert sorted(x["agent"] for x in live_agents(Layout(log_dir))) == ["alpha", "beta"]

    # the owner leaves first: beta is still connected, so the recorder stays; nothing was
    # said since the last checkpoint (there is none), so alpha's exit takes none
    out = a.on_agent_exit()
    assert not out.stopped and out.reason == "still connected: beta"
    assert out.checkpoint is None
    assert healthy(log_dir)
    with Publisher(eps["publish_endpoint"], agent="beta") as pub:
        pub.wait_ready()
        pub.send("agents.beta", {"text": "something new"})
    wait_for(
        lambda: any(r.get("kind") == "msg" for r in journal_records(log_dir)), what="the message"
    )
    # the last agent out stops the launcher-started recorder, after its exit checkpoint
    out = b.on_agent_exit()
    assert out.stopped, out.reason
    assert assess(Layout(log_dir)).state == "stopped"
    labels = [cp.label for cp in open_store(log_dir).checkpoints()]
    # the recorder's stop came right after beta's checkpoint: nothing new to take one of
    assert "alpha exited" not in labels and "beta exited" in labels and "shutdown" not in labels
    assert live_agents(Layout(log_dir)) == [] and recorder_owner(Layout(log_dir)) is None
    assert b.on_agent_exit().reason == "not connected"  # idempotent


def test_the_last_agent_out_never_stops_the_recorder_under_a_hook_still_sending(
    tmp_path: Path,
) -> None:
    """A hook of the folder holds its session's lock when the last agent leaves (a
    SessionEnd that found the session busy left the end to it): the launcher waits for
    it (`hooks_wait`), saying so, and stops the recorder once it lets go; still held
    then, it leaves the recorder running, saying why, and what the hook sends is
    recorded. Before 2026-12-07 it stopped the recorder under the hook."""
    import fcntl

    log_dir = tmp_path / "logs"
    eps = endpoints()
    a = launcher(log_dir, eps)
    a.on_agent_connected(agent_name="claude")
    lock = log_dir / "hooks" / "sessions" / "claude-s1.json.lock"
    lock.parent.mkdir(parents=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    a.hooks_wait = 0.2
    out = a.on_agent_exit()
    assert not out.stopped and out.shared, out.reason
    assert "a hook still holds the lock of 1 session(s) (claude-s1) after 0.2 s" in out.reason
    assert healthy(log_dir)
    with Publisher(eps["publish_endpoint"], agent="claude") as pub:  # the hook, still sending
        pub.wait_ready()
        pub.send("agents.claude.s1", {"text": "sent after the agent left"})
    wait_for(
        lambda: any(r.get("kind") == "msg" for r in journal_records(log_dir)), what="the message"
    )

    class HookLetsGo(io.StringIO):
        def write(self, text: str) -> int:
            if "waiting for the hooks of 1 session(s) still sending" in text:
                os.close(fd)  # the hook is done as the launcher starts waiting for it
            return super().write(text)

    b = launcher(log_dir, eps, stderr=HookLetsGo())
    b.on_agent_connected(agent_name="claude")
    assert b.on_agent_exit().stopped
    assert assess(Layout(log_dir)).state == "stopped"


def test_the_last_agent_leaving_as_another_connects_never_stops_the_recorder_under_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new launch of the folder checks the recorder and registers its agent under one
    hold of the launch lock: the last agent leaving waits for it, finds it registered
    and leaves the recorder running. Before 2026-12-07 the lock was let go in between,
    and the agent leaving in that gap (run there by the patched lock below) stopped the
    recorder the new agent had just been told was running."""
    import recorder.launch.launcher as launcher_module

    log_dir = tmp_path / "logs"
    eps = endpoints()
    a = launcher(log_dir, eps)
    a.on_agent_connected("alpha")
    assert a.started_recorder and healthy(log_dir)
    real = launcher_module.launch_lock
    holds: list[str] = []
    left: list[object] = []

    def lock(layout: Layout, *args: object, **kw: object) -> object:
        if holds == ["beta"]:  # beta let the lock go after one hold: alpha leaves now
            holds.append("alpha")
            left.append(a.on_agent_exit())
        elif not holds:
            holds.append("beta")
        return real(layout, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(launcher_module, "launch_lock", lock)
    b = launcher(log_dir, eps)
    b.on_agent_connected("beta")
    monkeypatch.setattr(launcher_module, "launch_lock", real)
    if not left:  # beta connected in one hold: alpha leaves after it
        left.append(a.on_agent_exit())
    (out,) = left
    assert isinstance(out, launcher_module.ExitResult)
    assert not out.stopped and out.reason == "still connected: beta", out
    assert healthy(log_dir) and assess(Layout(log_dir)).pid == a.recorder_pid
    assert [r.get("agent") for r in live_agents(Layout(log_dir))] == ["beta"]
    assert b.on_agent_exit().stopped  # the last one out stops it
    assert assess(Layout(log_dir)).state == "stopped"


_GAP_SHIM = """
import os, time
from pathlib import Path

import recorder.launch.launcher as launcher
import recorder.launch.registry as registry

_real, _calls = registry.launch_lock, []


def _lock(layout, *args, **kw):
    _calls.append(1)
    if len(_calls) == 2:  # the lock let go after the recorder was checked: wait there
        Path(os.environ["PERSIST_TEST_GAP"]).write_text("")
        while not Path(os.environ["PERSIST_TEST_GO"]).exists():
            time.sleep(0.01)
    return _real(layout, *args, **kw)


registry.launch_lock = launcher.launch_lock = _lock
"""


def test_the_last_agent_leaving_as_a_session_starts_never_stops_the_recorder_under_it(
    tmp_path: Path,
) -> None:
    """The same for an agent's SessionStart hook: it registers the session under the
    lock hold that found the recorder. Before 2026-12-07 it let the lock go in between
    (where the hook, patched, waits for alpha to leave), and alpha stopped the recorder
    under the session just started."""
    from recorder.hooks.samples import ClaudeSession
    from tests.process.test_hooks_flow import run_hook

    log_dir = tmp_path / "logs"
    eps = endpoints()
    a = launcher(log_dir, eps)
    a.on_agent_connected("alpha")
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(_GAP_SHIM)
    gap, go = tmp_path / "gap", tmp_path / "go"
    env = {
        "PYTHONPATH": os.pathsep.join([str(shim), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "PERSIST_TEST_GAP": str(gap),
        "PERSIST_TEST_GO": str(go),
    }
    c = ClaudeSession(transcript=str(tmp_path / "c.jsonl"))
    ends = (eps["publish_endpoint"], eps["broker"])
    done: list[subprocess.CompletedProcess[bytes]] = []
    hook = threading.Thread(
        target=lambda: done.append(
            run_hook(log_dir, "claude", c.payload("SessionStart"), endpoints=ends, env=env)
        )
    )
    hook.start()
    try:
        wait_for(lambda: gap.exists() or done, 60, "the hook at the gap, or done")
        out = a.on_agent_exit()
    finally:
        go.write_text("")
        hook.join(60)
    assert done and done[0].returncode == 0, done
    assert not out.stopped and out.reason.startswith("still connected: claude"), out
    assert healthy(log_dir)
    stopped = run_cli("stop", "--log-dir", str(log_dir))
    assert stopped.returncode == 0, stopped.stderr


def test_a_recorder_started_by_hand_is_reused_and_never_stopped(bus: Bus) -> None:
    bus.start_broker()
    bus.start_recorder()
    pl = PersistenceLauncher(
        bus.log_dir,
        broker=bus.back,
        publish_endpoint=bus.front,
        embedded="no",
        interactive=False,
        stderr=io.StringIO(),
    )
    result = pl.on_agent_connected("gamma")
    assert result.kind == "fresh" and not pl.started_recorder
    assert pl.recorder_pid == bus.recorder.pid
    with Publisher(bus.front, agent="gamma") as pub:
        pub.wait_ready()
        pub.send("agents.gamma", {"text": "worth a checkpoint"})
    wait_for(
        lambda: any(r.get("kind") == "msg" for r in journal_records(bus.log_dir)),
        what="the message",
    )
    out = pl.on_agent_exit()
    assert not out.stopped and "not started by a launcher" in out.reason
    assert bus.recorder.popen.poll() is None and healthy(bus.log_dir)
    assert out.checkpoint is not None  # the exit checkpoint was still taken
    # A second agent that leaves with nothing new adds no identical checkpoint.
    again = PersistenceLauncher(
        bus.log_dir,
        broker=bus.back,
        publish_endpoint=bus.front,
        embedded="no",
        interactive=False,
        stderr=io.StringIO(),
    )
    again.on_agent_connected("gamma")
    assert again.on_agent_exit().checkpoint is None
    assert [cp.label for cp in open_store(bus.log_dir).checkpoints()].count("gamma exited") == 1


def test_stale_registrations_are_ignored(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    agents = log_dir / "agents"
    agents.mkdir(parents=True)
    (agents / f"{dead.pid}-ghost-000000.agent.json").write_text(
        json.dumps({"pid": dead.pid, "started": time.time() - 5, "agent": "ghost"})
    )
    # a live PID whose start time does not match (PID reuse) is stale too
    (agents / f"{os.getpid()}-reused-000000.agent.json").write_text(
        json.dumps({"pid": os.getpid(), "started": 1.0, "agent": "reused"})
    )
    pl = launcher(log_dir, endpoints())
    pl.on_agent_connected("delta")
    assert [x["agent"] for x in live_agents(Layout(log_dir))] == ["delta"]
    assert [p.name.split("-")[1] for p in agents.glob("*.agent.json")] == ["delta"]  # pruned
    assert pl.on_agent_exit().stopped


def test_no_terminal_policies_and_lazy_messages(tmp_path: Path, monkeypatch) -> None:
    log_dir = demo_dir(tmp_path)  # a journal with 7 checkpoints, no recorder running
    eps = endpoints()
    owner = launcher(log_dir, eps, no_tty_policy="cancel")
    res = owner.on_agent_connected("owner")
    assert res.cancelled and res.decided_by == "policy" and res.bundle is None
    try:
        latest = launcher(log_dir, eps, no_tty_policy="latest")
        res = latest.on_agent_connected("coder")
        cps = open_store(log_dir).checkpoints()
        assert res.kind == "checkpoint" and res.checkpoint is not None
        assert res.checkpoint.id == cps[0].id
        assert res.bundle is not None and res.restore_file == res.bundle.jsonl
        assert res.bundle.manifest["integrity"]["gaps"] == 1  # the demo journal's gap
        msgs = res.messages()
        first = next(msgs)  # lazy: a generator over the journal
        assert first.is_message and 1 + sum(1 for _ in msgs) == res.checkpoint.messages
        env = res.env()
        assert env["PERSIST_CHECKPOINT"] == res.checkpoint.id
        assert env["PERSIST_RESTORE_FILE"] == str(res.bundle.jsonl)
        assert env["PERSIST_PUBLISH_ENDPOINT"] == eps["publish_endpoint"]
        assert "restoring" in latest._stderr.getvalue()  # type: ignore[union-attr]
        # no menu and policy latest: the bundle was built while the recorder started
        assert "bundle_wait" in latest.timings and latest.timings["bundle"] > 0
        latest.on_agent_exit()

        monkeypatch.setenv("PERSIST_NO_TTY_POLICY", "latest")
        from_env = launcher(log_dir, eps)
        assert from_env.on_agent_connected("env").kind == "checkpoint"
        from_env.on_agent_exit()

        # an injected menu: cancelled, chosen, and a failing menu falls back to the policy
        chosen = Selection.from_json({"kind": "checkpoint", "checkpoint_id": cps[2].id})
        redacted = replace(chosen, redact=True)  # the restore dialog's box ticked
        for picked, kind, redact in (
            (None, "cancelled", None),
            (Selection.fresh(log_dir), "fresh", None),
            (chosen, "checkpoint", False),  # the launcher's own setting (off)
            (redacted, "checkpoint", True),
        ):
            pl = launcher(log_dir, eps, interactive=True, picker=lambda *_a, p=picked: p)
            res = pl.on_agent_connected("menu")
            assert res.kind == kind and res.decided_by == "user"
            if kind == "checkpoint":
                assert res.checkpoint is not None and res.checkpoint.id == cps[2].id
                assert res.bundle is not None and res.bundle.manifest["redacted"] is redact
            pl.on_agent_exit()
        pl = launcher(log_dir, eps, interactive=True, picker=lambda *_a: chosen, redact=True)
        res = pl.on_agent_connected("menu")  # told to redact, and the dialog left it so
        assert res.bundle is not None and res.bundle.manifest["redacted"] is True
        pl.on_agent_exit()

        def broken(*_a: object) -> None:
            raise PickerFailed("the menu stopped (exit code 2)")

        pl = launcher(log_dir, eps, interactive=True, picker=broken, no_tty_policy="fresh")
        res = pl.on_agent_connected("broken")
        assert res.kind == "fresh" and res.decided_by == "policy"
        assert "the menu stopped (exit code 2)" in pl._stderr.getvalue()  # type: ignore[union-attr]
        pl.on_agent_exit()
    finally:
        assert owner.on_agent_exit().stopped


def run_launch(
    log_dir: Path, eps: dict[str, str], *extra: str, agent_args: list[str], **kw: object
) -> subprocess.Popen[str]:
    argv = [
        sys.executable,
        "-m",
        "recorder.cli",
        "launch",
        "--log-dir",
        str(log_dir),
        "--broker",
        eps["broker"],
        "--publish-endpoint",
        eps["publish_endpoint"],
        "--embedded",
        "yes",
        *extra,
        "--",
        sys.executable,
        str(FAKE_AGENT),
        *agent_args,
    ]
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )  # type: ignore[call-overload]


def test_persist_launch_gives_the_agent_its_restore_bundle(tmp_path: Path) -> None:
    log_dir = demo_dir(tmp_path)
    report = tmp_path / "report.json"
    proc = run_launch(
        log_dir,
        endpoints(),
        "--agent",
        "coder",
        "--no-tty-policy",
        "latest",
        agent_args=[str(report), "--exit", "3"],
    )
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err  # the agent's exit code
    assert "no-terminal policy 'latest'" in err
    data = json.loads(report.read_text())
    env = data["env"]
    cp = open_store(log_dir).checkpoints()
    restored = next(c for c in cp if c.id == env["PERSIST_CHECKPOINT"])
    assert env["PERSIST_LOG_DIR"] == str(log_dir) and env["PERSIST_AGENT"] == "coder"
    assert env["PERSIST_CHOICE"] == "checkpoint" and env["PERSIST_RESTORE_VERIFIED"] == "1"
    # what the bundle holds: the default scope, all of this small journal
    assert env["PERSIST_RESTORE_SCOPE"] == "last 1000" and env["PERSIST_RESTORE_COMPLETE"] == "1"
    seqs = data["bundle"]["manifest"]["seq_range"]
    assert (env["PERSIST_RESTORE_FIRST_SEQ"], env["PERSIST_RESTORE_LAST_SEQ"]) == (
        str(seqs["first"]),
        str(seqs["last"]),
    )
    assert json.loads(data["bundle"]["lines"][-1])["seq"] == seqs["last"]
    store = open_store(log_dir)
    expected = [
        r.line.decode() for r in store.records(0, store.checkpoint_index(restored)) if r.valid
    ]
    assert data["bundle"]["lines"] == expected
    assert data["bundle"]["messages"] == restored.messages
    assert data["bundle"]["manifest"]["checkpoint"]["id"] == restored.id
    assert data["bundle"]["manifest"]["integrity"]["bad_lines"] == 1
    # the launcher's registration names the bundle (no restore removes it while it runs)
    (registered,) = data["registrations"]
    assert registered["agent"] == "coder"
    assert registered["bundle"] == Path(env["PERSIST_RESTORE_DIR"]).name
    # the exit step ran: the launcher started the recorder, so it stopped it
    assert assess(Layout(log_dir)).state == "stopped"
    assert not list((log_dir / "agents").glob("*.agent.json"))


def test_persist_launch_fresh_by_default_and_forwards_signals(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    report, ready = tmp_path / "report.json", tmp_path / "ready"
    proc = run_launch(log_dir, endpoints(), agent_args=[str(report), "--wait", str(ready)])
    try:
        wait_for(ready.exists, timeout=30, what="agent started")
        assert healthy(log_dir)
        proc.send_signal(signal.SIGTERM)  # sent to the launcher, forwarded to the agent
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 42, err
    data = json.loads(report.read_text())
    assert data["signals"] == [signal.SIGTERM]
    assert data["env"]["PERSIST_CHECKPOINT"] == "" and data["env"]["PERSIST_RESTORE_FILE"] == ""
    assert data["env"]["PERSIST_CHOICE"] == "fresh"
    assert "no-terminal policy 'fresh'" in err and "recorder stopped" in err
    assert assess(Layout(log_dir)).state == "stopped"


def test_persist_launch_cancel_policy_does_not_run_the_agent(tmp_path: Path) -> None:
    """A launch that never runs its agent, cancelled or failing to write the bundle,
    takes no "<agent> exited" checkpoint of messages that agent never saw (before
    2026-12-08 it did; the recorder it stops takes its own, "shutdown"), and says a
    file in the bundles' place as `persist restore` does (before: "launch: File
    exists")."""
    log_dir = demo_dir(tmp_path)  # messages after its newest checkpoint
    before = set(os.listdir(log_dir / "checkpoints"))

    def exit_checkpoints() -> list[str]:
        new = set(os.listdir(log_dir / "checkpoints")) - before
        return [name for name in new if not name.endswith("-shutdown.json")]

    report = tmp_path / "report.json"
    proc = run_launch(log_dir, endpoints(), "--no-tty-policy", "cancel", agent_args=[str(report)])
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "not started" in err
    assert not report.exists()
    assert assess(Layout(log_dir)).state == "stopped"
    assert exit_checkpoints() == []
    (log_dir / "restore").write_bytes(b"")
    proc = run_launch(log_dir, endpoints(), "--no-tty-policy", "latest", agent_args=[str(report)])
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert (
        f"persist: cannot write the restore bundle: {log_dir / 'restore'} is a file, not the "
        "folder bundles go into: move it aside and restore again\n"
    ) in err
    assert not report.exists() and "Traceback" not in err
    assert assess(Layout(log_dir)).state == "stopped"
    assert exit_checkpoints() == []


def test_the_agent_is_given_the_running_recorders_bus(bus: Bus) -> None:
    """A recorder already running on its own embedded broker: `persist launch` without
    endpoints hands the agent that broker's, not the defaults where nothing listens,
    and what the agent publishes there is recorded."""
    bus.start_recorder("--embedded", "yes", "--publish-endpoint", bus.front)
    pl = PersistenceLauncher(bus.log_dir, interactive=False, stderr=io.StringIO())
    result = pl.on_agent_connected("delta")
    env = result.env()
    assert env["PERSIST_PUBLISH_ENDPOINT"] == bus.front
    assert env["PERSIST_SUBSCRIBE_ENDPOINT"] == bus.back
    with Publisher(env["PERSIST_PUBLISH_ENDPOINT"], agent="delta") as pub:
        assert pub.wait_ready(5)
        pub.send("agents.delta", {"text": "heard"})
    wait_for(
        lambda: any(r.get("kind") == "msg" for r in journal_records(bus.log_dir)),
        what="the agent's message recorded",
    )
    pl.on_agent_exit()


def test_a_recorder_that_won_the_race_to_start_hands_the_agent_its_bus(
    bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`persist record --detach` (or the systemd unit) on its own bus starting as a
    launch without endpoints looks: the launch saw no recorder, started one, and the
    other won the folder (`Spawned(ours=False)`). The agent gets the winner's endpoints,
    as when it ran before; before 2026-12-07 it got the defaults, where nothing records."""
    import recorder.launch.launcher as launcher_module

    real = launcher_module.assess
    looks = iter([Layout(tmp_path / "nothing-here")])  # the launch's look: before the start

    def racing(layout: Layout) -> object:
        return real(next(looks, layout))

    bus.start_recorder("--embedded", "yes", "--publish-endpoint", bus.front)
    monkeypatch.setattr(launcher_module, "assess", racing)
    pl = PersistenceLauncher(bus.log_dir, embedded="no", interactive=False, stderr=io.StringIO())
    result = pl.on_agent_connected("epsilon")  # its own recorder finds the folder held
    assert not pl.started_recorder and pl.recorder_pid == bus.recorder.pid
    env = result.env()
    assert env["PERSIST_PUBLISH_ENDPOINT"] == bus.front
    assert env["PERSIST_SUBSCRIBE_ENDPOINT"] == bus.back
    with Publisher(env["PERSIST_PUBLISH_ENDPOINT"], agent="epsilon") as pub:
        assert pub.wait_ready(5)
        pub.send("agents.epsilon", {"text": "heard"})
    wait_for(
        lambda: any(r.get("kind") == "msg" for r in journal_records(bus.log_dir)),
        what="the agent's message recorded",
    )
    pl.on_agent_exit()


def test_a_launch_that_loses_the_broker_to_another_follows_it(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--embedded auto` found nothing at the broker endpoint, and another launch (into
    another folder, on the same bus) bound it before this launch's recorder could: that
    recorder cannot bind, so it follows the broker that now answers and the agent
    starts. Before 2026-12-07 the launch failed ("cannot start persistence: the recorder
    stopped (exit code 1): cannot bind the broker (Address already in use)")."""
    import recorder.launch.launcher as launcher_module

    real = launcher_module.endpoint_free
    looks = iter([True])  # the look before the other broker bound the endpoint

    def racing(endpoint: str) -> bool:
        return next(looks, None) or real(endpoint)

    bus.start_broker()  # the other launch's
    monkeypatch.setattr(launcher_module, "endpoint_free", racing)
    err = io.StringIO()
    pl = PersistenceLauncher(
        bus.log_dir, broker=bus.back, publish_endpoint=bus.front, interactive=False, stderr=err
    )
    try:
        result = pl.on_agent_connected("zeta")
        assert pl.started_recorder and healthy(bus.log_dir)
        status = read_status(bus.log_dir)
        assert status["pid"] == pl.recorder_pid and not status.get("embedded_broker")
        assert f"another broker answers at {bus.back} now" in err.getvalue()
        with Publisher(result.env()["PERSIST_PUBLISH_ENDPOINT"], agent="zeta") as pub:
            assert pub.wait_ready(5)
            pub.send("agents.zeta", {"text": "heard"})
        wait_for(
            lambda: any(r.get("kind") == "msg" for r in journal_records(bus.log_dir)),
            what="the agent's message recorded",
        )
    finally:
        pl.on_agent_exit()
    assert assess(Layout(bus.log_dir)).state == "stopped"


def test_the_agent_is_given_the_endpoint_a_binding_recorder_listens_at(bus: Bus) -> None:
    """A recorder running with `--bind` (no broker): `persist launch` without endpoints
    handed the agent the default tcp endpoints, where nothing listens, without a word,
    and everything the agent published was lost. Now it gets the bound endpoint to
    publish to, an empty subscribe endpoint (there is no broker), and one line says so."""
    bound = f"ipc://{bus.log_dir.parent}/bound.ipc"
    bus.procs("record", "--bind", bound, "--log-dir", str(bus.log_dir), name="recorder")
    wait_for(lambda: healthy(bus.log_dir), what="recorder listening")
    agent = bus.log_dir.parent / "agent.sh"
    agent.write_text(
        "#!/bin/sh\n"
        'echo "pub=$PERSIST_PUBLISH_ENDPOINT sub=$PERSIST_SUBSCRIBE_ENDPOINT"\n'
        f'exec "{PYTHON}" -m recorder.cli.main send --endpoint "$PERSIST_PUBLISH_ENDPOINT" '
        "--wait 10 agents.bot 'hello from the agent'\n"
    )
    agent.chmod(0o755)
    argv = [PYTHON, "-m", "recorder.cli.main", "launch", "--log-dir", str(bus.log_dir)]
    out = subprocess.run(
        [*argv, "--no-tty-policy", "fresh", "--", str(agent)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"pub={bound} sub=\n" in out.stdout, out.stdout
    (line,) = [ln for ln in out.stderr.splitlines() if "PERSIST_SUBSCRIBE_ENDPOINT" in ln]
    assert f"listens at {bound} (--bind) and follows no broker" in line
    texts = [
        r["frames"][1]["json"]["text"] for r in journal_records(bus.log_dir) if r["kind"] == "msg"
    ]
    assert texts == ["hello from the agent"]


def test_every_launch_on_ipc_endpoints_records(tmp_path: Path) -> None:
    """The embedded broker's ipc socket files outlive it: a file alone passed for a
    running broker, so every launch after the first hosted none and its agent's
    messages went nowhere (`persist send`: exit 7)."""
    agent = tmp_path / "agent.sh"
    agent.write_text(
        "#!/bin/sh\n"
        f'exec "{PYTHON}" -m recorder.cli.main send --endpoint "$PERSIST_PUBLISH_ENDPOINT" '
        '--wait 10 agents.test "hello $1"\n'
    )
    agent.chmod(0o755)
    log_dir = tmp_path / "logs"
    eps = ["--broker", f"ipc://{tmp_path}/b.sub", "--publish-endpoint", f"ipc://{tmp_path}/b.pub"]
    for n in range(3):
        argv = [PYTHON, "-m", "recorder.cli.main", "launch", "--log-dir", str(log_dir), *eps]
        out = subprocess.run(
            [*argv, "--", str(agent), str(n)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert (tmp_path / "b.pub").exists()  # left behind: what the next launch must see past
    texts = [r["frames"][1]["json"]["text"] for r in journal_records(log_dir) if r["kind"] == "msg"]
    assert [t for t in texts if t.startswith("hello")] == [f"hello {n}" for n in range(3)], texts


_INTERRUPTED = r"""
import os, signal, sys

import recorder.daemon.spawn as spawn

sig, when = getattr(signal, sys.argv.pop(1)), sys.argv.pop(1)
real = spawn.assess
seen = []


def assess(layout):  # the launcher waiting for the recorder it started
    health = real(layout)
    seen.append(health)
    recording = health.pid is not None and health.state == "healthy"
    if (when == "starting" and len(seen) == 3) or (when == "recording" and recording):
        os.kill(os.getpid(), sig)
    return health


spawn.assess = assess
from recorder.cli.main import main

sys.exit(main())
"""


@pytest.mark.parametrize(
    ("command", "sig", "when", "code"),
    [
        ("launch", "SIGTERM", "starting", 143),
        ("launch", "SIGINT", "recording", 130),
        ("record", "SIGINT", "starting", 130),
    ],
)
def test_a_launch_interrupted_as_its_recorder_starts_stops_that_recorder(
    tmp_path: Path, command: str, sig: str, when: str, code: int
) -> None:
    """SIGTERM or Ctrl-C while `persist launch` waited for the recorder it had started:
    the launch ended (143/130, silently), the recorder ran on with no `agents/owner.json`,
    and no launcher ever stopped it ("not started by a launcher"). Now the launch stops
    it before it ends, and one line says so; `persist record --detach` on Ctrl-C too."""
    import psutil

    log_dir = tmp_path / "logs"
    eps = endpoints()
    argv = [command, "--log-dir", str(log_dir), "--broker", eps["broker"]]
    argv += ["--publish-endpoint", eps["publish_endpoint"], "--embedded", "yes"]
    if command == "launch":
        argv += ["--no-tty-policy", "fresh", "--", "sleep", "30"]
    else:
        argv += ["--detach"]
    run = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED, sig, when, *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    mine = [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(log_dir) in " ".join(p.info["cmdline"] or ())
    ]
    # the recorder is reaped before the launch ends; the search indexer it SIGKILLed at
    # its stop (waited for 0.2 s: `children.REAP_WAIT`) may take a moment more to end
    # on a loaded machine, and is then init's to reap
    _gone, left = psutil.wait_procs(mine, timeout=5)
    for proc in left:  # not left behind by a failure
        proc.kill()
    assert left == [], [p.info["cmdline"] for p in left]
    assert run.returncode == code, run.stderr
    assert not assess(Layout(log_dir)).running, run.stderr
    assert "Traceback" not in run.stderr
    assert run.stderr.splitlines()[:1] == [
        "persist: interrupted as the recorder started: it was stopped"
    ]


_STOPPED_TWICE = r"""
import os, signal, sys, threading

import recorder.daemon.spawn as spawn
import recorder.launch.launcher as launcher

where = sys.argv.pop(1)
real_assess, real_stop, real_owner = spawn.assess, spawn._stop, launcher.write_owner
seen = []


def assess(layout):  # the launcher waiting for the recorder it started
    health = real_assess(layout)
    seen.append(health)
    if where == "starting" and len(seen) == 3:
        os.kill(os.getpid(), signal.SIGTERM)
    return health


def stop(proc, grace=5.0):  # the recorder frozen; a second SIGTERM while it is stopped
    os.kill(proc.pid, signal.SIGSTOP)
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
    real_stop(proc, grace)


def write_owner(layout, pid, agent):  # the recorder ready, its owner not written yet
    if where == "owner":
        os.kill(os.getpid(), signal.SIGTERM)
    real_owner(layout, pid, agent)


spawn.assess, spawn._stop, launcher.write_owner = assess, stop, write_owner
from recorder.cli.main import main

sys.exit(main())
"""


@pytest.mark.parametrize("where", ["starting", "owner"])
def test_a_launch_sigtermed_twice_or_before_its_owner_is_written_stops_its_recorder(
    tmp_path: Path, where: str
) -> None:
    """`persist launch` SIGTERMed as its recorder started: a second SIGTERM while it
    stopped that recorder cut the wait short (its own handler raised again), so a frozen
    recorder was never SIGKILLed and ran on. And a SIGTERM between the recorder saying
    it was ready and `agents/owner.json` written left it running with no owner. Now the
    second SIGTERM is ignored, and the owner is written before the start is done."""
    import psutil

    log_dir = tmp_path / "logs"
    eps = endpoints()
    argv = ["launch", "--log-dir", str(log_dir), "--broker", eps["broker"]]
    argv += ["--publish-endpoint", eps["publish_endpoint"], "--embedded", "yes"]
    argv += ["--no-tty-policy", "fresh", "--", "sleep", "30"]
    run = subprocess.run(
        [sys.executable, "-c", _STOPPED_TWICE, where, *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )

    def running() -> list[psutil.Process]:
        return [
            p
            for p in psutil.process_iter(["cmdline", "status"])
            if str(log_dir) in " ".join(p.info["cmdline"] or ()) and p.info["status"] != "zombie"
        ]

    # the recorder itself at once; its children (the indexer) see it gone and end soon
    recorders = [p for p in running() if "record" in (p.info["cmdline"] or ())]
    deadline = time.monotonic() + 20
    while running() and time.monotonic() < deadline:
        time.sleep(0.1)
    left = recorders + running()
    said = [(p.pid, p.info["status"], p.info["cmdline"]) for p in left]
    for proc in left:  # not left behind by a failure
        proc.kill()
    assert said == [], run.stderr
    assert run.returncode == 143, run.stderr
    assert "Traceback" not in run.stderr
    assert run.stderr.splitlines()[:1] == [
        "persist: interrupted as the recorder started: it was stopped"
    ]


def test_a_running_agents_restore_bundle_never_changes_under_it(tmp_path: Path) -> None:
    """An agent launched with `--redact --last 2` keeps the files it was handed, byte
    for byte, while others restore the same checkpoint: another agent or person without
    `--redact` (what a Claude session's start hook builds), with `--last 1`, `--full`.
    Each gets a bundle of its own beside it. Before 2026-12-07 each of them replaced the
    agent's bundle in place: the AWS key appeared in its file, its transcript lost
    messages, its manifest said `full`."""
    key = make(S.AWS, random.Random(7)).secret
    log_dir = tmp_path / "logs"
    w = DemoWriter.open(log_dir)
    w.message(BASE_TS, "ops", f"the deploy key is {key}")
    for i in range(3):
        w.message(BASE_TS + 1 + i, "coder", f"step {i}")
    cp = w.checkpoint(BASE_TS + 9, "withsecret", "manual")
    w.close()
    report, ready = tmp_path / "report.json", tmp_path / "ready"
    proc = run_launch(
        log_dir,
        endpoints(),
        "--no-tty-policy",
        "latest",
        "--redact",
        "--last",
        "2",
        agent_args=[str(report), "--wait", str(ready)],
    )
    try:
        wait_for(lambda: ready.exists() or proc.poll() is not None, 60, "agent")
        assert proc.poll() is None, proc.communicate()
        files = {p: p.read_bytes() for p in (log_dir / "restore").rglob("*") if p.is_file()}
        assert files and not any(key.encode() in b for b in files.values())
        others = {}
        for extra in ([], ["--last", "1"], ["--full"], ["--last", "2"], ["--redact"]):
            out = run_cli("restore", "latest", "--json", "--log-dir", str(log_dir), *extra)
            assert out.returncode == 0, out.stderr
            others[" ".join(extra)] = json.loads(out.stdout)
        for path, data in files.items():  # nothing handed to the agent changed
            assert path.read_bytes() == data, path
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            run_cli("stop", "--log-dir", str(log_dir))  # the recorder it started
    assert proc.returncode == 42, err
    env = json.loads(report.read_text())["env"]
    mine = Path(env["PERSIST_RESTORE_DIR"])
    assert env["PERSIST_RESTORE_SCOPE"] == "last 2" and mine == log_dir / "restore" / (
        f"{cp.id}.last-2.redacted"
    )
    assert Path(env["PERSIST_RESTORE_FILE"]).parent == mine
    m = json.loads(Path(env["PERSIST_RESTORE_MANIFEST"]).read_text())
    assert m["redacted"] is True and m["scope"] == {"kind": "last", "last": 2}
    assert key.encode() not in Path(env["PERSIST_RESTORE_TRANSCRIPT"]).read_bytes()
    # each restore got its own folder, holding what it asked for
    folders = {name: Path(o["dir"]).name for name, o in others.items()}
    assert folders == {
        "": cp.id,
        "--last 1": f"{cp.id}.last-1",
        "--full": f"{cp.id}.full",
        "--last 2": f"{cp.id}.last-2",
        "--redact": f"{cp.id}.redacted",
    }
    assert key.encode() in (log_dir / "restore" / cp.id / "conversation.jsonl").read_bytes()
    assert others["--last 1"]["messages"] == 1 and others["--full"]["messages"] == 4
    assert others[""]["scope"] == {"kind": "last", "last": 1000}
