"""`persist demo`: the whole product working within seconds, nothing to configure.

A recorder with its embedded broker on free loopback ports (never the default
ones, so a real bus is left alone) records into a demo folder while four
simulated agents (planner, coder, reviewer, tester) work on a task through the
broker: requests, replies, tool calls and results, a failing test run, a lost
message (shown as a gap) and checkpoints along the way. Then the TUI opens on it;
without a terminal a summary is printed instead.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from recorder.bus.endpoints import free_loopback_port
from recorder.errors import PersistError
from recorder.launch.demo_script import AGENTS, SCRIPT
from recorder.launch.registry import forget_owner
from recorder.store.fsutil import ensure_private_dir
from recorder.store.layout import Layout
from recorder.store.shell import shell_quote
from recorder.store.xdg import data_home

if TYPE_CHECKING:
    from recorder.launch.launcher import PersistenceLauncher

MARKER = ".persist-demo"


def default_demo_dir() -> Path:
    return data_home() / "agent-persist" / "demo"


class DemoError(PersistError):
    pass


_BIND_TRIES = 3


def _start_recorder(root: Path, out: IO[str]) -> tuple[PersistenceLauncher, str, str]:
    """A recorder with its embedded broker on two free loopback ports; returns the
    launcher and the publish and subscribe endpoints.

    A port found free can be taken by another process before the broker binds it
    (seen in CI with tests running side by side), so a bind failure tries new ports,
    up to `_BIND_TRIES` times; any other failure is raised at once."""
    from recorder.bus.broker import BIND_FAILED
    from recorder.daemon.spawn import SpawnError
    from recorder.launch.launcher import PersistenceLauncher

    attempt = 1
    while True:
        publish = f"tcp://127.0.0.1:{free_loopback_port()}"
        subscribe = f"tcp://127.0.0.1:{free_loopback_port()}"
        launcher = PersistenceLauncher(
            root,
            broker=subscribe,
            publish_endpoint=publish,
            embedded="yes",
            interactive=False,
            checkpoint_on_exit=False,
            recorder_args=("--checkpoint-interval", "0", "--monitor", "off"),  # the demo only
            stderr=out,
        )
        try:
            launcher.ensure_recorder()
            return launcher, publish, subscribe
        except SpawnError as exc:
            if BIND_FAILED not in str(exc) or attempt == _BIND_TRIES:
                raise
        attempt += 1


@dataclass
class DemoSummary:
    log_dir: Path
    messages: int = 0
    checkpoints: list[str] = field(default_factory=list)
    gaps: int = 0
    records: int = 0
    seconds: float = 0.0
    publish: str = ""
    subscribe: str = ""


def prepare_dir(path: Path) -> Path:
    """An empty demo folder; only a folder this command made is ever wiped."""
    path = Path(path).expanduser().absolute()
    if path.exists() and any(path.iterdir()):
        if not (path / MARKER).exists():
            raise DemoError(f"{path} is not empty and is not a demo folder; choose another --dir")
        from recorder.store.status import assess

        if assess(Layout(path)).running:
            raise DemoError(
                f"a recorder is still recording into {path}: "
                f"persist stop --log-dir {shell_quote(str(path))}"
            )
        shutil.rmtree(path)
    ensure_private_dir(path)  # and each folder it makes above: 0700 whatever the umask
    (path / MARKER).write_text("made by `persist demo`; wiped by the next run\n")
    os.chmod(path / MARKER, 0o600)
    return path


def _wait_recorded(layout: Layout, mids: set[str], timeout: float = 10.0) -> None:
    """Until every message id in `mids` is in the journal."""
    from recorder.store.reader import Store

    wanted = {f'"mid":"{m}"'.encode() for m in mids}
    deadline = time.monotonic() + timeout
    with Store(layout.root, cache_index=False) as store:
        seen = 0
        while wanted and time.monotonic() < deadline:
            store.refresh()
            for rec in store.records(seen):
                wanted = {w for w in wanted if w not in rec.line}
            seen = len(store)
            if wanted:
                time.sleep(0.02)
    if wanted:
        raise DemoError(f"the recorder did not record {len(wanted)} demo messages in time")


def simulate(
    layout: Layout,
    publish: str,
    *,
    pace: float = 0.06,
    say: Callable[[str], None] = lambda _m: None,
) -> DemoSummary:
    """Run the scripted conversation through the broker; checkpoints as scripted."""
    from recorder.bus.publisher import Publisher
    from recorder.daemon.control import request_checkpoint

    summary = DemoSummary(layout.root)
    t0 = time.monotonic()
    pubs = {name: Publisher(publish, agent=name, heartbeat_interval=0) for name in AGENTS}
    try:
        for pub in pubs.values():
            if not pub.wait_ready(10):
                raise DemoError(f"no subscriber reached the demo agents through {publish}")
        pending: set[str] = set()
        for step in SCRIPT:
            if step[0] == "checkpoint":
                _wait_recorded(layout, pending)
                pending.clear()
                cp = request_checkpoint(layout, step[1])
                summary.checkpoints.append(cp.id)
                say(f"  ✔ checkpoint “{step[1]}” ({cp.messages} messages)")
                continue
            if step[0] == "lose":
                pubs[step[1]].seq += 1  # a sequence number that never goes out
                continue
            agent, topic, payload = step
            pub = pubs[agent]
            seq = pub.send(topic, {"from": agent, **payload})
            pending.add(f"{pub.id}:{seq}")
            summary.messages += 1
            text = payload.get("text") or f"{payload.get('tool')} {payload.get('args', '')}"
            say(f"  {agent:>8} · {topic:<24} {str(text)[:60]}")
            if pace:
                time.sleep(pace)
        _wait_recorded(layout, pending)
    finally:
        for pub in pubs.values():
            pub.close()
    summary.seconds = time.monotonic() - t0
    return summary


def run_demo(
    directory: Path | None = None,
    *,
    pace: float = 0.06,
    open_tui: bool | None = None,
    keep_running: bool = False,
    out: IO[str] | None = None,
) -> DemoSummary:
    """The whole demo; returns what was recorded. The recorder is stopped at the end
    unless `keep_running`."""
    from recorder.launch.menu import is_interactive

    out = out or sys.stderr

    def say(message: str) -> None:
        print(message, file=out, flush=True)

    root = prepare_dir(directory or default_demo_dir())
    layout = Layout(root)
    t0 = time.monotonic()
    launcher, publish, subscribe = _start_recorder(root, out)
    say(
        f"persist demo: recorder and broker up in {time.monotonic() - t0:.2f}s "
        f"(publish to {publish}), recording into {root}"
    )
    try:
        summary = simulate(layout, publish, pace=pace, say=say)
        summary.publish, summary.subscribe = publish, subscribe
        _count(summary)
        say(
            f"persist demo: {summary.messages} messages from {len(AGENTS)} agents, "
            f"{len(summary.checkpoints)} checkpoints, {summary.gaps} gap (a message lost "
            f"on purpose) in {summary.seconds:.1f}s"
        )
        if open_tui is None:
            open_tui = is_interactive()[0]
        if open_tui:
            open_browser(root, say)
        else:
            say(next_steps(root, publish, keep_running))
    finally:
        if not keep_running:
            launcher.stop_started_recorder()
        else:  # left to the user: no launcher's agent leaving may stop it
            forget_owner(layout)
    return summary


def _count(summary: DemoSummary) -> None:
    from recorder.store.ranges import RangeSummary, summarize
    from recorder.store.reader import open_store

    with open_store(summary.log_dir) as store:
        counted = summarize(store.records()) or RangeSummary()
    summary.records = counted.records
    summary.gaps = counted.gaps


def open_browser(root: Path, say: Callable[[str], None]) -> None:
    """The browser on this terminal (a `persist-tui --print` child: we never load Textual)."""
    from recorder.export.restore import build_bundle
    from recorder.launch.menu import Menu, PickerFailed

    try:
        selection = Menu(root, None, launch=False).result()
    except PickerFailed as exc:
        say(f"persist demo: {exc}")
        selection = None
    if selection is None or selection.checkpoint_id is None:
        say(next_steps(root, "", False))
        return
    bundle = build_bundle(root, selection.checkpoint_id, agent="demo")
    say(f"persist demo: restored “{selection.label or ''}” into {bundle.dir}")
    say(
        f"  {bundle.transcript.name}: the conversation as Markdown; {bundle.jsonl.name}: "
        f"its records as stored; {bundle.manifest_path.name}: range, integrity and gaps"
    )


def next_steps(root: Path, publish: str, running: bool) -> str:
    """Commands to paste into a shell, the folder and endpoint quoted for it."""
    folder = shell_quote(str(root))
    lines = [
        "Look around:",
        f"  persist-tui --log-dir {folder}                  browse, search, restore",
        f"  persist export latest --log-dir {folder} --format md",
        f"  persist restore latest --log-dir {folder}       write the restore bundle",
    ]
    if running and publish:
        lines.append(
            f"  persist replay latest --log-dir {folder} --endpoint {shell_quote(publish)}"
        )
        lines.append(f"  persist stop --log-dir {folder}")
    return "\n".join(lines)
