"""Start persistence when an agent connects; hand control back with the chosen checkpoint.

    from recorder.launch.launcher import PersistenceLauncher

    launcher = PersistenceLauncher()                      # default log folder and broker
    result = launcher.on_agent_connected(agent_name="coder")
    if result.kind == "checkpoint":
        for record in result.messages():                  # read lazily from the journal
            ...
    ...                                                   # the agent does its work
    launcher.on_agent_exit()

`on_agent_connected` makes sure a healthy recorder holds the log folder (starting
one in the background, with the embedded broker when asked to or when nothing
answers at the broker endpoint), registers the agent, shows the launch menu on
the terminal and returns the choice as a `LaunchResult`. Without a terminal it
never draws and never waits: it applies the no-terminal policy (`fresh`, `latest`
or `cancel`; default `fresh`, or `$PERSIST_NO_TTY_POLICY`) and says so on stderr.

Agents register in `<log-dir>/agents/` (one 0600 file per connected agent, named
after its PID; files of dead processes are ignored and removed). A recorder
started by a launcher is noted in `agents/owner.json`. `on_agent_exit` takes a
checkpoint labelled after the agent, unregisters, and stops the recorder only if
a launcher started it and no other registered agent is still connected: the last
agent out stops it. A recorder started by hand or by systemd is never stopped.

This module imports neither zmq nor textual; the menu runs as a `persist-tui`
child process on the same terminal (started while the recorder starts), which is
handed back in a clean state.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from recorder.errors import LaunchError
from recorder.launch.menu import Menu, PickerFailed, is_interactive, run_menu
from recorder.launch.registry import (
    AGENTS_DIR,
    OWNER_FILE,
    _launch_lock,
    _proc_started,
    _slug,
    live_agents,
    recorder_owner,
)
from recorder.store.fsutil import atomic_write, ensure_private_dir, open_private
from recorder.store.layout import Layout, default_log_dir

if TYPE_CHECKING:
    from recorder.export.restore import Bundle
    from recorder.store.checkpoints import Checkpoint
    from recorder.store.reader import Record

POLICIES = ("fresh", "latest", "cancel")
POLICY_ENV = "PERSIST_NO_TTY_POLICY"
KIND_CHECKPOINT, KIND_FRESH, KIND_CANCELLED = "checkpoint", "fresh", "cancelled"
# A picker is a callable (log_dir, agent) -> the `persist-tui --print` JSON object,
# or None when the user quit without a choice. It may raise PickerFailed.
Picker = Callable[[Path, str | None], dict[str, Any] | None]


@dataclass
class LaunchResult:
    """What the user (or the no-terminal policy) chose for this agent."""

    kind: str  # "checkpoint", "fresh" or "cancelled"
    log_dir: Path
    agent: str | None = None
    checkpoint: Checkpoint | None = None
    bundle: Bundle | None = None  # the restore bundle, for a checkpoint
    decided_by: str = "user"  # "user" (the menu) or "policy" (no terminal)
    reason: str = ""
    selection: dict[str, Any] | None = None  # the menu's JSON, as `persist-tui --print`
    endpoints: dict[str, str] = field(default_factory=dict)  # publish / subscribe

    @property
    def cancelled(self) -> bool:
        return self.kind == KIND_CANCELLED

    @property
    def checkpoint_id(self) -> str | None:
        return self.checkpoint.id if self.checkpoint is not None else None

    @property
    def restore_file(self) -> Path | None:
        """The conversation up to the checkpoint (JSONL, records as stored)."""
        return self.bundle.jsonl if self.bundle is not None else None

    @property
    def verified(self) -> bool | None:
        if self.bundle is None:
            return None
        return bool(self.bundle.manifest["integrity"]["verified"])

    def messages(self) -> Iterator[Record]:
        """The messages up to the checkpoint, read lazily from the journal."""
        if self.checkpoint is None:
            return
        from recorder.store.reader import Store

        with Store(self.log_dir) as store:
            store.refresh()
            for rec in store.records(0, store.checkpoint_index(self.checkpoint)):
                if rec.is_message:
                    yield rec

    def env(self) -> dict[str, str]:
        """The `PERSIST_*` variables `persist launch` gives the agent."""
        b = self.bundle
        verified = self.verified
        return {
            "PERSIST_LOG_DIR": str(self.log_dir),
            "PERSIST_CHECKPOINT": self.checkpoint_id or "",
            "PERSIST_RESTORE_FILE": str(b.jsonl) if b else "",
            "PERSIST_RESTORE_DIR": str(b.dir) if b else "",
            "PERSIST_RESTORE_MANIFEST": str(b.manifest_path) if b else "",
            "PERSIST_RESTORE_TRANSCRIPT": str(b.transcript) if b else "",
            "PERSIST_RESTORE_VERIFIED": "" if verified is None else str(int(verified)),
            "PERSIST_CHOICE": self.kind,
            "PERSIST_AGENT": self.agent or "",
            "PERSIST_PUBLISH_ENDPOINT": self.endpoints.get("publish", ""),
            "PERSIST_SUBSCRIBE_ENDPOINT": self.endpoints.get("subscribe", ""),
        }


@dataclass
class ExitResult:
    stopped: bool
    reason: str
    checkpoint: str | None = None






















class PersistenceLauncher:
    """Recorder lifecycle and restore choice for one agent (see the module docstring)."""

    def __init__(
        self,
        log_dir: Path | str | None = None,
        *,
        broker: str | None = None,  # the broker's subscriber endpoint (XPUB)
        publish_endpoint: str | None = None,  # where publishers connect (XSUB)
        embedded: str = "auto",  # host the broker: "yes", "no", "auto" (when none answers)
        no_tty_policy: str | None = None,  # "fresh" | "latest" | "cancel"; env, else fresh
        interactive: bool | None = None,  # None: decide from the terminal
        picker: Picker | None = None,  # how the menu is shown (tests inject one)
        start_timeout: float = 10.0,  # seconds for a started recorder to say it records
        stop_timeout: float = 10.0,  # seconds for it to stop cleanly
        checkpoint_on_exit: bool = True,  # a checkpoint labelled after the agent at exit
        recorder_args: tuple[str, ...] = (),  # more `persist record` options
        build_bundle: bool = True,  # write restore/<checkpoint>/ for a chosen checkpoint
        stderr: IO[str] | None = None,
    ) -> None:
        self.log_dir = Path(log_dir).expanduser() if log_dir else default_log_dir()
        self.log_dir = self.log_dir.absolute()
        self.layout = Layout(self.log_dir)
        if broker is None or publish_endpoint is None:
            from recorder.bus.endpoints import DEFAULT_PUBLISH, DEFAULT_SUBSCRIBE

            broker = broker or DEFAULT_SUBSCRIBE
            publish_endpoint = publish_endpoint or DEFAULT_PUBLISH
        self.broker = broker
        self.publish_endpoint = publish_endpoint
        if embedded not in ("auto", "yes", "no"):
            raise ValueError("embedded must be auto, yes or no")
        self.embedded = embedded
        policy = no_tty_policy or os.environ.get(POLICY_ENV) or "fresh"
        if policy not in POLICIES:
            raise ValueError(f"no-terminal policy must be one of {', '.join(POLICIES)}")
        self.policy = policy
        self.interactive = interactive
        self.picker = picker or run_menu
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.checkpoint_on_exit = checkpoint_on_exit
        self.recorder_args = tuple(recorder_args)
        self.build_bundle = build_bundle
        self._stderr = stderr
        self.agent: str | None = None
        self.started_recorder = False  # this launcher started the recorder
        self.recorder_pid: int | None = None
        self.timings: dict[str, float] = {}  # seconds, for the bench
        self._registration: Path | None = None
        self._held: list[str] | None = None  # messages kept while the menu is on screen

    # -- messages -------------------------------------------------------------------
    def say(self, message: str) -> None:
        if self._held is not None:  # the menu owns the terminal
            self._held.append(message)
            return
        out = self._stderr or sys.stderr
        with contextlib.suppress(OSError, ValueError):
            print(f"persist: {message}", file=out, flush=True)

    def _release_messages(self) -> None:
        held, self._held = self._held, None
        for message in held or ():
            self.say(message)

    @property
    def connected(self) -> bool:
        return self._registration is not None

    # -- the recorder -----------------------------------------------------------------
    def ensure_recorder(self) -> bool:
        """Make sure a healthy recorder holds the folder; True if we started it."""
        from recorder.store.status import HEALTHY, STALE, assess

        t0 = time.perf_counter()
        with _launch_lock(self.layout):
            health = assess(self.layout)
            if health.state == HEALTHY or health.state == STALE:
                if health.state == STALE:
                    self.say(f"the recorder is alive but silent ({health.reason}); using it")
                self.recorder_pid = health.pid
                self.started_recorder = False
                self.timings["recorder"] = time.perf_counter() - t0
                return False
            proc = self._spawn_recorder()
            pid = self._wait_recording(proc)
            if pid == proc.pid:
                started = _proc_started(proc.pid)
                atomic_write(
                    self.layout.root / AGENTS_DIR / OWNER_FILE,
                    orjson.dumps({
                        "recorder_pid": proc.pid,
                        "recorder_started": started,
                        "launcher_pid": os.getpid(),
                        "launcher_started": _proc_started(os.getpid()),
                        "agent": self.agent,
                        "started": time.time(),
                    }),
                    durable=False,
                )  # fmt: skip
                self.started_recorder = True
            self.recorder_pid = pid
        self.timings["recorder"] = time.perf_counter() - t0
        return self.started_recorder

    def _spawn_recorder(self) -> subprocess.Popen[bytes]:
        embedded = self.embedded
        if embedded == "auto":
            from recorder.bus.endpoints import _endpoint_free

            embedded = "yes" if _endpoint_free(self.broker) else "no"
        argv = [
            sys.executable, "-m", "recorder.cli", "record",
            "--broker", self.broker, "--log-dir", str(self.log_dir),
            "--embedded", embedded, "--publish-endpoint", self.publish_endpoint,
            *self.recorder_args,
        ]  # fmt: skip
        ensure_private_dir(self.log_dir)
        out = open_private(self.log_dir / "recorder.out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,  # outlives this terminal; never gets its Ctrl-C
                close_fds=True,
            )
        finally:
            os.close(out)

    def _wait_recording(self, proc: subprocess.Popen[bytes]) -> int:
        from recorder.store.status import HEALTHY, assess

        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            health = assess(self.layout)
            recording = health.state == HEALTHY and health.status.get("state") == "recording"
            if recording and health.pid is not None and (
                health.pid == proc.pid or proc.poll() is not None
            ):
                return health.pid  # ours, or one that won a race with ours
            code = proc.poll()
            if code is not None and health.state != HEALTHY:
                time.sleep(0.05)
                if assess(self.layout).state == HEALTHY:
                    continue
                tail = _tail(self.log_dir / "recorder.out")
                raise LaunchError(
                    f"the recorder exited with code {code}: {tail or 'no output'} "
                    f"(see {self.log_dir / 'recorder.out'})"
                )
            time.sleep(0.02)
        with contextlib.suppress(OSError):
            proc.terminate()
        raise LaunchError(
            f"the recorder (PID {proc.pid}) did not report within {self.start_timeout:.0f}s; "
            f"see {self.layout.log}"
        )

    def _register(self) -> None:
        folder = ensure_private_dir(self.log_dir / AGENTS_DIR)
        name = f"{os.getpid()}-{_slug(self.agent)}-{uuid.uuid4().hex[:6]}.agent.json"
        path = folder / name
        atomic_write(
            path,
            orjson.dumps({
                "pid": os.getpid(),
                "started": _proc_started(os.getpid()),
                "agent": self.agent,
                "connected": time.time(),
                "recorder_pid": self.recorder_pid,
                "started_recorder": self.started_recorder,
            }),
            durable=False,
        )  # fmt: skip
        self._registration = path

    # -- connect ------------------------------------------------------------------------
    def on_agent_connected(self, agent_name: str | None = None) -> LaunchResult:
        """Recorder running, agent registered, choice made (menu or policy).

        On a terminal the menu starts at once, while the recorder starts: it reads
        the journal from disk and does not need the recorder to draw. Messages for
        the user wait until the menu has given the terminal back.
        """
        t0 = time.perf_counter()
        self.agent = agent_name
        interactive, why = (
            (self.interactive, "told not to draw") if self.interactive is not None
            else is_interactive()
        )  # fmt: skip
        menu = None
        if interactive and self.picker is run_menu and not self.connected:
            menu = Menu(self.log_dir, self.agent)
            self._held = []
        try:
            if not self.connected:
                self.ensure_recorder()
                with _launch_lock(self.layout):
                    self._register()
                atexit.register(self._exit_quietly)
        except BaseException:
            if menu is not None:
                menu.cancel()
            self._release_messages()
            raise
        self.timings["ready"] = time.perf_counter() - t0
        if interactive:
            try:
                result = self._from_menu(menu)
            except PickerFailed as exc:
                self._release_messages()
                result = self._from_policy(f"{exc}")
        else:
            result = self._from_policy(why)
        result.endpoints = {"publish": self.publish_endpoint, "subscribe": self.broker}
        self.timings["connected"] = time.perf_counter() - t0
        return result

    def _from_menu(self, menu: Menu | None) -> LaunchResult:
        try:
            data = menu.result() if menu is not None else self.picker(self.log_dir, self.agent)
        finally:
            self._release_messages()
        if data is None:
            return LaunchResult(KIND_CANCELLED, self.log_dir, self.agent, reason="quit the menu")
        if data.get("kind") == KIND_CHECKPOINT and data.get("checkpoint_id"):
            return self._restore(str(data["checkpoint_id"]), "user", "chosen in the menu", data)
        return LaunchResult(KIND_FRESH, self.log_dir, self.agent, reason="chosen in the menu",
                            selection=data)  # fmt: skip

    def _from_policy(self, why: str) -> LaunchResult:
        from recorder.store.checkpoints import list_checkpoints

        what = {
            "fresh": "starting fresh",
            "latest": "restoring the latest checkpoint",
            "cancel": "cancelling",
        }[self.policy]
        if self.policy == "latest":
            cps = list_checkpoints(self.layout)
            if cps:
                self.say(f"no menu ({why}); no-terminal policy 'latest': {what} ({cps[0].id})")
                return self._restore(cps[0].id, "policy", f"no menu ({why}); policy latest")
            what = "no checkpoint yet, starting fresh"
        self.say(
            f"no menu ({why}); no-terminal policy '{self.policy}': {what} "
            f"(--no-tty-policy or ${POLICY_ENV}: fresh, latest, cancel)"
        )
        kind = KIND_CANCELLED if self.policy == "cancel" else KIND_FRESH
        return LaunchResult(kind, self.log_dir, self.agent, decided_by="policy",
                            reason=f"no menu ({why}); policy {self.policy}")  # fmt: skip

    def _restore(
        self, checkpoint_id: str, decided_by: str, reason: str, data: dict[str, Any] | None = None
    ) -> LaunchResult:
        from recorder.store.checkpoints import resolve_checkpoint

        cp = resolve_checkpoint(self.layout, checkpoint_id)
        bundle = None
        if self.build_bundle:
            from recorder.export.restore import build_bundle

            t0 = time.perf_counter()
            bundle = build_bundle(self.log_dir, cp, agent=self.agent)
            self.timings["bundle"] = time.perf_counter() - t0
            integrity = bundle.manifest["integrity"]
            if not integrity["ok"]:
                self.say(
                    f"restoring {cp.id} with problems: {'; '.join(integrity['problems'])} "
                    f"(listed in {bundle.manifest_path})"
                )
        return LaunchResult(KIND_CHECKPOINT, self.log_dir, self.agent, cp, bundle, decided_by,
                            reason, data)  # fmt: skip

    # -- exit ---------------------------------------------------------------------------
    def on_agent_exit(self) -> ExitResult:
        """Checkpoint, unregister, and stop the recorder if we are the last agent out of
        a launcher-started recorder. Safe to call more than once."""
        from recorder.store.status import HEALTHY, assess

        if not self.connected:
            return ExitResult(False, "not connected")
        cp_id = None
        if self.checkpoint_on_exit and assess(self.layout).state == HEALTHY:
            from recorder.daemon.control import CheckpointError, request_checkpoint

            try:
                cp_id = request_checkpoint(self.layout, f"{self.agent or 'agent'} exited").id
            except (CheckpointError, OSError, StopIteration) as exc:
                self.say(f"no exit checkpoint: {exc}")
        with _launch_lock(self.layout):
            if self._registration is not None:
                with contextlib.suppress(OSError):
                    self._registration.unlink()
                self._registration = None
            others = live_agents(self.layout)
            owner = recorder_owner(self.layout)
            if owner is None:
                if not assess(self.layout).running:
                    return ExitResult(False, "the recorder is not running", cp_id)
                reason = "the recorder was not started by a launcher; leaving it running"
                return ExitResult(False, reason, cp_id)
            if others:
                names = ", ".join(str(a.get("agent") or a.get("pid")) for a in others[:5])
                return ExitResult(False, f"still connected: {names}", cp_id)
            stopped = self._stop(int(owner["recorder_pid"]), owner.get("recorder_started"))
            if stopped:
                with contextlib.suppress(OSError):
                    (self.log_dir / AGENTS_DIR / OWNER_FILE).unlink()
                return ExitResult(True, "last agent out: recorder stopped", cp_id)
            return ExitResult(False, "the recorder did not stop in time", cp_id)

    def stop_started_recorder(self) -> bool:
        """Stop the recorder this launcher started (the demo uses it); True if stopped."""
        owner = recorder_owner(self.layout)
        if not self.started_recorder or owner is None or owner["recorder_pid"] != self.recorder_pid:
            return False
        if self._stop(int(owner["recorder_pid"]), owner.get("recorder_started")):
            with contextlib.suppress(OSError):
                (self.log_dir / AGENTS_DIR / OWNER_FILE).unlink()
            return True
        return False

    def _stop(self, pid: int, started: Any) -> bool:
        from recorder.daemon.control import stop_recorder

        return stop_recorder(self.layout, pid, started, self.stop_timeout, self.say)

    def _exit_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self.on_agent_exit()

    def __enter__(self) -> PersistenceLauncher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.on_agent_exit()


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""




