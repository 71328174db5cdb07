"""`persist demo`: a real recorder, broker and simulated agents, without a terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from recorder.store.layout import Layout
from recorder.store.reader import open_store
from recorder.store.status import assess
from tests.support import journal_records

pytestmark = pytest.mark.timeout(120)


def demo(
    *args: str, env: dict[str, str] | None = None, umask: int | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", "demo", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        preexec_fn=None if umask is None else lambda: os.umask(umask),
    )


def test_demo_records_a_conversation_with_checkpoints_and_a_gap(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    out = demo("--dir", str(root), "--fast")
    assert out.returncode == 0, out.stderr
    assert "22 messages from 4 agents, 3 checkpoints, 1 gap" in out.stderr
    assert "persist-tui --log-dir" in out.stderr  # no terminal: a summary, not the TUI
    records = journal_records(root)
    msgs = [r for r in records if r["kind"] == "msg"]
    assert len(msgs) == 22
    assert {r["meta"]["sender"] for r in msgs} == {"planner", "coder", "reviewer", "tester"}
    chains = {r["meta"]["chain"] for r in msgs}
    assert {"request", "reply", "tool_call", "tool_result", "error", "broadcast"} <= chains
    gaps = [r for r in records if r["kind"] == "gap"]
    assert [(g["cause"], g["agent"], g["missed"]) for g in gaps] == [
        ("publisher-sequence", "tester", 1)
    ]
    labels = [cp.label for cp in reversed(open_store(root).checkpoints())]
    assert labels[:3] == ["plan agreed", "tests green", "review approved"]
    cps = {cp.label: cp for cp in open_store(root).checkpoints()}
    assert cps["plan agreed"].messages == 6 and cps["review approved"].messages == 20
    assert assess(Layout(root)).state == "stopped"  # the demo stops its recorder

    # a second run starts over in its own folder; a folder it did not make is refused
    again = demo("--dir", str(root), "--fast")
    assert again.returncode == 0, again.stderr
    assert len([r for r in journal_records(root) if r["kind"] == "msg"]) == 22
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    refused = demo("--dir", str(other), "--fast")
    assert refused.returncode == 1 and "not a demo folder" in refused.stderr
    assert (other / "notes.txt").read_text() == "keep me"


def test_the_folders_above_the_demo_folder_are_private_whatever_the_umask(
    tmp_path: Path,
) -> None:
    """Under umask 000 the demo made ~/.local, ~/.local/share and
    ~/.local/share/agent-persist 0777 (the mode given to mkdir applies to the last folder
    only), and a later `persist record` into the real log folder there kept them so:
    every folder it makes is 0700, as `persist record` makes them."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_DATA_HOME", "PERSIST_LOG_DIR")}
    env["HOME"] = str(home)
    out = demo("--fast", env=env, umask=0)
    assert out.returncode == 0, out.stderr
    root = home / ".local" / "share" / "agent-persist" / "demo"
    assert str(root) in out.stdout + out.stderr
    for folder in (home, *root.relative_to(home).parents, root.relative_to(home)):
        assert (home / folder).stat().st_mode & 0o777 == 0o700, folder


def test_demo_tries_new_ports_when_one_is_taken_before_the_broker_binds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The port race CI met: a port found free is taken before the broker binds it."""
    import io
    import socket

    from recorder.launch import demo as demo_module

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    real_free_port = demo_module.free_loopback_port
    handed: list[int] = []

    def first_one_taken() -> int:
        port = int(taken.getsockname()[1]) if not handed else real_free_port()
        handed.append(port)
        return port

    monkeypatch.setattr(demo_module, "free_loopback_port", first_one_taken)
    out = io.StringIO()
    with taken:
        summary = demo_module.run_demo(tmp_path / "demo", pace=0.0, open_tui=False, out=out)
    assert summary.messages == 22, out.getvalue()
    assert str(handed[0]) not in summary.publish + summary.subscribe
    assert len(handed) == 4  # two ports refused with the first, two that bound


_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


@pytest.mark.skipif(not _PORT_RANGE.exists(), reason="Linux's ephemeral port range")
def test_demo_ports_are_free_and_below_the_range_outgoing_connections_take() -> None:
    import socket

    from recorder.bus.endpoints import ephemeral_low, free_loopback_port

    low = ephemeral_low()
    assert low == int(_PORT_RANGE.read_text().split()[0])
    ports = {free_loopback_port() for _ in range(20)}
    assert all(20000 <= port < low for port in ports)
    assert len(ports) > 1  # picked at random: two demos rarely try the same one
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # nothing holds it


def test_a_demo_left_running_is_not_stopped_by_the_next_launch(tmp_path: Path) -> None:
    """`persist demo --keep-running` hands the recorder to the user: an agent that
    `persist launch` runs there and leaves does not stop it."""
    root = tmp_path / "demo"
    out = demo("--dir", str(root), "--fast", "--keep-running")
    assert out.returncode == 0, out.stderr
    try:
        assert assess(Layout(root)).state == "healthy"
        argv = ["launch", "--log-dir", str(root), "--no-tty-policy", "fresh", "--", "true"]
        launch = subprocess.run(
            [sys.executable, "-m", "recorder.cli", *argv],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert launch.returncode == 0, launch.stderr
        assert "recorder stopped" not in launch.stderr
        assert assess(Layout(root)).state == "healthy"
    finally:
        subprocess.run(
            [sys.executable, "-m", "recorder.cli", "stop", "--log-dir", str(root)],
            capture_output=True,
            timeout=60,
        )


def test_the_commands_shown_to_look_around_are_shell_quoted(tmp_path: Path) -> None:
    """A demo folder named with a space (or a quote) was printed raw in the "Look
    around" commands: pasted, `--log-dir /tmp/my demo` named the wrong folder."""
    import shlex

    from recorder.launch.demo import next_steps

    root = tmp_path / "my demo's"
    publish = "tcp://127.0.0.1:20001"
    commands = [
        line.split("   ")[0].strip() for line in next_steps(root, publish, True).splitlines()[1:]
    ]
    assert len(commands) == 5
    for command in commands:
        words = shlex.split(command)
        assert words[words.index("--log-dir") + 1] == str(root), command
    assert shlex.split(commands[3])[-1] == publish
