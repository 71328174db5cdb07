"""Start persistence when an agent connects; hand control back with the chosen checkpoint.

    from recorder.launch.launcher import PersistenceLauncher

    launcher = PersistenceLauncher()                      # default log folder and broker
    result = launcher.on_agent_connected(agent_name="coder")
    if result.kind == "checkpoint":
        for record in result.messages():                  # read lazily from the journal
            ...
    ...                                                   # the agent does its work
    launcher.on_agent_exit()

(Over 400 lines: `LaunchResult` and the launcher that fills it; the menu,
the agents/ registry, spawning and running the agent are in their own modules.)

`on_agent_connected` makes sure a healthy recorder holds the log folder (starting
one in the background, with the embedded broker when asked to or when nothing
answers at the broker endpoint), registers the agent, shows the launch menu on
the terminal and returns the choice as a `LaunchResult`. Without a terminal it
never draws and never waits: it applies the no-terminal policy (`fresh`, `latest`
or `cancel`; default `fresh`, or `$PERSIST_NO_TTY_POLICY`) and says so on stderr.

Agents register in `<log-dir>/agents/` (see `registry`). `on_agent_exit` takes a
checkpoint labelled after the agent, unregisters, and stops the recorder only if
a launcher started it and no other registered agent is still connected: the last
agent out stops it, unless it hosts the broker another folder's recorder follows
(`peers`): that one's last agent out stops it then. A recorder started by hand or by
systemd is never stopped.

This module imports neither zmq nor textual; the menu runs as a `persist-tui`
child process on the same terminal (started while the recorder starts), which is
handed back in a clean state.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from recorder.bus.endpoints import (
    DEFAULT_PUBLISH,
    DEFAULT_SUBSCRIBE,
    check_connect_endpoint,
    endpoint_free,
)
from recorder.daemon.control import stop_recorder
from recorder.daemon.options import EmbeddedMode, RecorderOptions
from recorder.daemon.spawn import Spawned, SpawnError, spawn_recorder
from recorder.errors import BundleNotWritten, LaunchError, PersistError
from recorder.launch.menu import Menu, PickerFailed, is_interactive, run_menu
from recorder.launch.peers import Peer, hosted_broker_users, stop_unused_host
from recorder.launch.registry import (
    LockBusy,
    forget_owner,
    hooks_at_work,
    launch_lock,
    live_agents,
    note_bundle,
    recorder_owner,
    register_agent,
    write_owner,
)
from recorder.launch.selection import LaunchChoice, NoTtyPolicy, Selection
from recorder.store.layout import Layout, default_log_dir
from recorder.store.shell import shell_quote
from recorder.store.status import (
    DEGRADED,
    HEALTHY,
    STALE,
    Health,
    LinkMode,
    StatusSnapshot,
    assess,
)
from recorder.store.unfinished import refuse_unfinished_restore

if TYPE_CHECKING:
    from recorder.export.restore import Bundle
    from recorder.export.scope import BundleScope
    from recorder.launch.sessions import Resumed, ResumePlan
    from recorder.sources.discover import Roots
    from recorder.sources.listing import SessionRow
    from recorder.store.checkpoints import Checkpoint
    from recorder.store.reader import Record

POLICY_ENV = "PERSIST_NO_TTY_POLICY"
LAUNCHER_PID_ENV = "PERSIST_LAUNCHER_PID"
"""Set by `persist launch` for the agent it starts, so that the agent's start hook can
tell that agent from one its own tools start (which inherits the same variables)."""
# A picker is a callable (log_dir, agent) -> the menu's choice, or None when the
# user quit without one. It may raise PickerFailed.
Picker = Callable[[Path, str | None], Selection | None]


@dataclass
class LaunchResult:
    """What the user (or the no-terminal policy) chose for this agent."""

    kind: LaunchChoice
    log_dir: Path
    agent: str | None = None
    checkpoint: Checkpoint | None = None
    bundle: Bundle | None = None  # the restore bundle, for a checkpoint
    decided_by: Literal["user", "policy"] = "user"  # the menu, or the no-terminal policy
    reason: str = ""
    selection: Selection | None = None  # what the menu chose (as `persist-tui --print`)
    endpoints: dict[str, str] = field(default_factory=dict)  # publish / subscribe
    resumed: Resumed | None = None  # SESSION: the agent's session to resume, fork written

    @property
    def cancelled(self) -> bool:
        return self.kind is LaunchChoice.CANCELLED

    @property
    def checkpoint_id(self) -> str | None:
        return self.checkpoint.id if self.checkpoint is not None else None

    @property
    def restore_file(self) -> Path | None:
        """The bundle's conversation (JSONL, records as stored): the range it holds,
        by default the last 1000 messages up to the checkpoint (`bundle.complete`
        says whether that is all of it; `messages()` reads everything lazily)."""
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
            # what the bundle holds: its scope, its records' seq range, and whether it
            # starts at the beginning (else the rest is in the journal at PERSIST_LOG_DIR)
            "PERSIST_RESTORE_SCOPE": _scope_env(b.manifest) if b else "",
            "PERSIST_RESTORE_FIRST_SEQ": _seq_env(b.manifest, "first") if b else "",
            "PERSIST_RESTORE_LAST_SEQ": _seq_env(b.manifest, "last") if b else "",
            "PERSIST_RESTORE_COMPLETE": (str(int(b.complete)) if b else ""),
            "PERSIST_CHOICE": self.kind.value,
            "PERSIST_SESSION": self._session_env(),
            "PERSIST_AGENT": self.agent or "",
            "PERSIST_PUBLISH_ENDPOINT": self.endpoints.get("publish", ""),
            "PERSIST_SUBSCRIBE_ENDPOINT": self.endpoints.get("subscribe", ""),
        }

    def _session_env(self) -> str:
        """The agent session resumed (`claude:<id>`; a fork's new id), or ""."""
        if self.resumed is None:
            return ""
        p = self.resumed.plan
        return f"{p.source.value}:{p.new_id}" if p.new_id else p.key


def _scope_env(manifest: dict[str, object]) -> str:
    scope = manifest.get("scope")
    if not isinstance(scope, dict):
        return "full"
    kind = str(scope.get("kind", "full"))
    return kind if kind == "full" else f"{kind} {scope.get(kind)}"


def _seq_env(manifest: dict[str, object], end: str) -> str:
    seqs = manifest.get("seq_range")
    value = seqs.get(end) if isinstance(seqs, dict) else None
    return "" if value is None else str(value)


class _BundleJob:
    """A restore bundle built on a thread (see `PersistenceLauncher._prefetch_latest`)."""

    def __init__(self, launcher: PersistenceLauncher, cp: Checkpoint) -> None:
        self.checkpoint_id = cp.id
        self.seconds = 0.0
        self._bundle: Bundle | None = None
        self._error: BaseException | None = None
        self._args = (launcher.log_dir, cp, launcher.agent, launcher.restore_scope)
        self.redact = launcher.redact
        self.thread = threading.Thread(target=self._run, name="persist-bundle", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from recorder.export.restore import build_bundle

        log_dir, cp, agent, scope = self._args
        t0 = time.perf_counter()
        try:
            self._bundle = build_bundle(log_dir, cp, agent=agent, scope=scope, redact=self.redact)
        except BaseException as exc:  # handed to the caller by result()
            self._error = exc
        self.seconds = time.perf_counter() - t0

    def result(self) -> Bundle:
        self.thread.join()
        if self._error is not None:
            raise self._error
        assert self._bundle is not None
        return self._bundle


def messages_since_last_checkpoint(layout: Layout) -> bool:
    """Whether a message was recorded after the newest checkpoint (or there is none and
    the journal holds one). The recorder's own records (start, stop, connected, gaps
    over its downtime) are not news: an exit with nothing new takes no checkpoint, so
    launches that only open the menu do not pile up identical ones."""
    from recorder.store.checkpoints import newest_checkpoint
    from recorder.store.reader import Store

    newest = newest_checkpoint(layout)
    with Store(layout.root) as store:
        store.refresh()
        start = store.checkpoint_index(newest) if newest else 0
        return any(rec.is_message for rec in store.records(start))


# seconds the launcher waits at the agent's exit for its hooks still holding a session's
# lock (a turn reads 2 s, then a SessionEnd left to it: 1 s, a checkpoint, the stop)
HOOKS_WAIT = 20.0


@dataclass
class ExitResult:
    stopped: bool
    reason: str
    checkpoint: str | None = None
    # the recorder this agent was given ended during its session (crashed, killed, or
    # stopped by someone else): `reason` says so, and that later messages went unrecorded
    lost: bool = False
    # the launch lock was held all the wait: unregistered, nothing stopped (`reason`)
    lock_busy: bool = False
    # the last agent out, but its recorder hosts the broker other folders' recorders
    # follow, or a systemd unit is installed for the folder (whose own recorder cannot
    # start while this one runs): left running (`reason` says for whom)
    shared: bool = False

    @property
    def worth_saying(self) -> bool:
        """Whether `persist launch` prints `reason` at exit."""
        return self.stopped or self.lost or self.lock_busy or self.shared


def _names(peers: list[Peer]) -> str:
    """The first three of `peers`, and how many more."""
    more = f" and {len(peers) - 3} more" if len(peers) > 3 else ""
    return ", ".join(str(peer) for peer in peers[:3]) + more


def _kept_for(followers: list[Peer], broker: str | None, layout: Layout) -> str:
    """The line of a last agent out that leaves the host running for `followers` (other
    folders' recorders, or processes that cannot be named): who stops it then. The last
    agent out of a follower's folder does when a launcher or a start hook started that
    recorder; else no agent's exit does (before 2026-12-08 the line promised it would
    all the same)."""
    s = "s" if len(followers) == 1 else ""
    said = f"last agent out, but the recorder hosts the broker at {broker} that "
    said += f"{_names(followers)} still follow{s}: left running"
    lasting = [peer for peer in followers if not peer.stopped_by_its_agents()]
    if not lasting:
        return said + " (the last agent out of there stops it)"
    if lasting == followers and len(lasting) == 1:
        who = "that recorder" if lasting[0].recorder else "that process"
    elif lasting == followers:
        who = "they"
    else:
        who = _names(lasting)
    follows = "follows" if len(lasting) == 1 else "follow"
    stop = f"persist stop --log-dir {shell_quote(str(layout.root))}"
    return f"{said}, and no agent's exit stops it while {who} {follows} it (`{stop}` does)"


class PersistenceLauncher:
    """Recorder lifecycle and restore choice for one agent (see the module docstring)."""

    def __init__(
        self,
        log_dir: Path | str | None = None,
        *,
        broker: str | None = None,  # the broker's subscriber endpoint (XPUB)
        publish_endpoint: str | None = None,  # where publishers connect (XSUB)
        embedded: EmbeddedMode | str = "auto",  # host the broker; auto: when none answers
        no_tty_policy: NoTtyPolicy | str | None = None,  # None: $PERSIST_NO_TTY_POLICY or fresh
        interactive: bool | None = None,  # None: decide from the terminal
        picker: Picker | None = None,  # how the menu is shown (tests inject one)
        chosen: Selection | None = None,  # made already (`launch --session`): no menu, no policy
        start_timeout: float = 10.0,  # seconds for a started recorder to say it records
        start_limit: float | None = None,  # at most, also while it waits for the folder
        stop_timeout: float = 10.0,  # seconds for it to stop cleanly
        checkpoint_on_exit: bool = True,  # a checkpoint labelled after the agent at exit
        recorder_args: tuple[str, ...] = (),  # more `persist record` options
        build_bundle: bool = True,  # write restore/<checkpoint>[...]/ for a chosen checkpoint
        agent_command: Sequence[str] | None = None,  # claude/gemini/codex: offer its sessions
        roots: Roots | None = None,  # where the agents keep them (default: theirs)
        restore_scope: BundleScope | None = None,  # what it holds (default: the last 1000)
        redact: bool = False,  # secrets replaced by [REDACTED:kind] in the bundle handed over
        stderr: IO[str] | None = None,
    ) -> None:
        self.log_dir = Path(log_dir).expanduser() if log_dir else default_log_dir()
        self.log_dir = self.log_dir.absolute()
        self.layout = Layout(self.log_dir)
        self.broker = check_connect_endpoint(broker or DEFAULT_SUBSCRIBE, "--broker")
        self.publish_endpoint = check_connect_endpoint(
            publish_endpoint or DEFAULT_PUBLISH, "--publish-endpoint"
        )
        # not given: a recorder already running says which bus it records
        self._endpoints_given = (broker is not None, publish_endpoint is not None)
        try:
            self.embedded = EmbeddedMode(embedded)
        except ValueError:
            raise ValueError("embedded must be auto, yes or no") from None
        policy = no_tty_policy or os.environ.get(POLICY_ENV) or NoTtyPolicy.FRESH
        try:
            self.policy = NoTtyPolicy(policy)
        except ValueError:
            names = ", ".join(p.value for p in NoTtyPolicy)
            raise ValueError(f"no-terminal policy must be one of {names}") from None
        self.interactive = interactive
        self.picker = picker or run_menu
        self.chosen = chosen
        self.start_timeout = start_timeout
        self.start_limit = start_limit
        self.stop_timeout = stop_timeout
        self.hooks_wait = HOOKS_WAIT  # for a hook still sending at the agent's exit
        self.checkpoint_on_exit = checkpoint_on_exit
        self.recorder_args = tuple(recorder_args)
        self.build_bundle = build_bundle
        self.restore_scope = restore_scope
        self.agent_command = list(agent_command or ())
        self._roots = roots
        self.redact = redact
        self._stderr = stderr
        self.agent: str | None = None
        self.started_recorder = False  # this launcher started the recorder
        self.recorder_pid: int | None = None
        self.timings: dict[str, float] = {}  # seconds, for the bench
        self._registration: Path | None = None
        self._held: list[str] | None = None  # messages kept while the menu is on screen
        self._prefetch: _BundleJob | None = None  # the "latest" bundle, built meanwhile

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
    def ensure_recorder(self, then: Callable[[], object] | None = None) -> bool:
        """Make sure a healthy recorder holds the folder; True if we started it. `then`
        (registering the agent) runs under the same hold of the launch lock, so that the
        last agent leaving cannot stop the recorder between the check and it."""
        t0 = time.perf_counter()
        with launch_lock(self.layout):
            health = assess(self.layout)
            if health.state in (HEALTHY, STALE, DEGRADED):
                if health.state != HEALTHY:  # it holds the folder: a second one cannot start
                    self.say(f"the recorder is {health.state} ({health.reason}); using it")
                if health.status is not None:
                    self._bus_of(health.status)
                self.recorder_pid = health.pid
                self.started_recorder = False
            else:

                def own(spawned: Spawned) -> None:
                    # part of the start: an interruption before it is written stops the
                    # recorder (it ran on with no owner, and no launcher ever stopped it)
                    if spawned.ours:
                        write_owner(self.layout, spawned.pid, self.agent)

                def spawn(options: RecorderOptions) -> Spawned:
                    return spawn_recorder(
                        options,
                        timeout=self.start_timeout,
                        limit=self.start_limit,
                        extra=self.recorder_args,
                        accept_running=True,  # another launcher's recorder won the race
                        on_ready=own,
                    )

                options = self._recorder_options()
                try:
                    try:
                        spawned = spawn(options)
                    except SpawnError:
                        if not self._lost_the_broker(options):
                            raise
                        # another launch (of another folder, on this bus) bound it first:
                        # `auto` hosts the broker only when none answers, and one does now
                        self.say(
                            f"another broker answers at {self.broker} now (it was free a "
                            "moment ago): the recorder follows it (--embedded auto)"
                        )
                        spawned = spawn(replace(options, embedded=EmbeddedMode.NO))
                except Exception:
                    raise
                except BaseException:  # Ctrl-C, SIGTERM: spawn_recorder stopped it
                    self.say("interrupted as the recorder started: it was stopped")
                    raise
                self.recorder_pid = spawned.pid
                self.started_recorder = spawned.ours
                if not spawned.ours:  # another recorder won the folder: its bus, not ours
                    won = assess(self.layout)
                    if won.status is not None:
                        self._bus_of(won.status)
            if then is not None:
                then()
        self.timings["recorder"] = time.perf_counter() - t0
        return self.started_recorder

    def _bus_of(self, status: StatusSnapshot) -> None:
        """The endpoints handed to the agent are those of the bus the running recorder
        records (unless given): defaults would send the agent's messages where no
        broker listens, and zmq drops them without a word. A recorder that listens
        (`--bind`) is reached there: publishers connect to its bound endpoint, and with
        no broker followed there is nothing to subscribe to (the subscribe endpoint is
        then empty, and said so)."""
        broker_given, publish_given = self._endpoints_given
        bound = [e.endpoint for e in status.endpoints if e.mode is LinkMode.BIND]
        if not broker_given:
            if status.broker:
                self.broker = status.broker
            elif bound:
                self.broker = ""  # it follows no broker: no bus to subscribe to
        if not publish_given:
            if status.embedded_broker:
                self.publish_endpoint = status.embedded_broker
            elif bound and status.broker != DEFAULT_SUBSCRIBE:
                self.publish_endpoint = bound[0]  # the broker's publisher side is not known
            elif not status.broker and not bound:
                self.say(
                    "the running recorder's status names no broker and no endpoint it "
                    f"listens at: PERSIST_PUBLISH_ENDPOINT says {self.publish_endpoint} "
                    "(--publish-endpoint sets it)"
                )
            elif self.broker != DEFAULT_SUBSCRIBE:
                self.say(
                    f"the running recorder follows the broker at {self.broker}; where "
                    "publishers connect to it is not known here: PERSIST_PUBLISH_ENDPOINT "
                    f"says {self.publish_endpoint} (--publish-endpoint sets it)"
                )
        if not self.broker:
            self.say(
                f"the running recorder listens at {', '.join(bound)} (--bind) and follows "
                "no broker: PERSIST_SUBSCRIBE_ENDPOINT is empty (--broker names one)"
            )

    def _lost_the_broker(self, options: RecorderOptions) -> bool:
        """Whether our recorder, told to host the broker because nothing answered at its
        endpoint (`--embedded auto`), failed because something answers there now."""
        return (
            self.embedded is EmbeddedMode.AUTO
            and options.embedded is EmbeddedMode.YES
            and not endpoint_free(self.broker)
        )

    def _recorder_options(self) -> RecorderOptions:
        """Our recorder: auto hosts the broker when nothing answers at its endpoint."""
        embedded = self.embedded
        if embedded is EmbeddedMode.AUTO:
            embedded = EmbeddedMode.YES if endpoint_free(self.broker) else EmbeddedMode.NO
        return RecorderOptions(
            log_dir=self.log_dir,
            broker=self.broker,
            embedded=embedded,
            publish_endpoint=self.publish_endpoint,
        )

    def _register(self) -> None:
        self._registration = register_agent(
            self.layout, self.agent, self.recorder_pid, self.started_recorder
        )

    # -- connect ------------------------------------------------------------------------
    def on_agent_connected(self, agent_name: str | None = None) -> LaunchResult:
        """Recorder running, agent registered, choice made (menu or policy).

        On a terminal the menu starts at once, while the recorder starts: it reads
        the journal from disk and does not need the recorder to draw. Messages for
        the user wait until the menu has given the terminal back. A choice made
        already (`chosen`) shows no menu; a session it names that cannot be resumed
        (unknown, a sub-agent's) is refused (`ResumeError`) before any recorder starts.
        """
        refuse_unfinished_restore(self.layout.root)  # before any lock or menu is made
        t0 = time.perf_counter()
        self.agent = agent_name
        chosen, planned = self.chosen, None
        if chosen is not None and chosen.kind is LaunchChoice.SESSION and chosen.session:
            planned = self._plan_session(chosen)  # nothing started, nothing to undo
        if chosen is not None:
            interactive, why = False, "chosen already"
        elif self.interactive is not None:
            interactive, why = self.interactive, "told not to draw"
        else:
            interactive, why = is_interactive()
        menu = None
        if interactive and self.picker is run_menu and not self.connected:
            menu = Menu(
                self.log_dir,
                self.agent,
                command=self.agent_command,
                redact=self.redact,
                scope=self.restore_scope,
            )
            self._held = []
        if (
            chosen is None
            and not interactive
            and self.policy is NoTtyPolicy.LATEST
            and not self.connected
        ):
            self._prefetch_latest()
        try:
            if not self.connected:
                self.ensure_recorder(then=self._register)  # one hold: see ensure_recorder
                atexit.register(self._exit_quietly)
        except BaseException:
            if menu is not None:
                menu.cancel()
            self._release_messages()
            if self._prefetch is not None:
                self._prefetch.thread.join()
                self._prefetch = None
            raise
        self.timings["ready"] = time.perf_counter() - t0
        if chosen is not None:
            result = self._from_selection(chosen, planned)
        elif interactive:
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
            chosen = menu.result() if menu is not None else self.picker(self.log_dir, self.agent)
        finally:
            self._release_messages()
        return self._from_selection(chosen)

    def _from_selection(
        self, chosen: Selection | None, planned: tuple[SessionRow, ResumePlan] | None = None
    ) -> LaunchResult:
        if chosen is None:
            return self._result(LaunchChoice.CANCELLED, reason="quit the menu")
        if chosen.kind is LaunchChoice.CHECKPOINT and chosen.checkpoint_id:
            return self._restore(chosen.checkpoint_id, "user", "chosen in the menu", chosen)
        if chosen.kind is LaunchChoice.SESSION and chosen.session:
            return self._resume_session(chosen, planned)
        return self._result(LaunchChoice.FRESH, reason="chosen in the menu", selection=chosen)

    def _from_policy(self, why: str) -> LaunchResult:
        from recorder.store.checkpoints import list_checkpoints

        what = {
            NoTtyPolicy.FRESH: "starting fresh",
            NoTtyPolicy.LATEST: "restoring the latest checkpoint",
            NoTtyPolicy.CANCEL: "cancelling",
        }[self.policy]
        if self.policy is NoTtyPolicy.LATEST:
            cps = list_checkpoints(self.layout)
            if cps:
                self.say(f"no menu ({why}); no-terminal policy 'latest': {what} ({cps[0].id})")
                return self._restore(cps[0].id, "policy", f"no menu ({why}); policy latest")
            what = "no checkpoint yet, starting fresh"
        self.say(
            f"no menu ({why}); no-terminal policy '{self.policy}': {what} "
            f"(--no-tty-policy or ${POLICY_ENV}: fresh, latest, cancel)"
        )
        kind = LaunchChoice.CANCELLED if self.policy is NoTtyPolicy.CANCEL else LaunchChoice.FRESH
        return self._result(
            kind, decided_by="policy", reason=f"no menu ({why}); policy {self.policy}"
        )

    def _result(
        self,
        kind: LaunchChoice,
        *,
        decided_by: Literal["user", "policy"] = "user",
        reason: str = "",
        selection: Selection | None = None,
    ) -> LaunchResult:
        return LaunchResult(
            kind,
            self.log_dir,
            self.agent,
            decided_by=decided_by,
            reason=reason,
            selection=selection,
        )

    def _restore(
        self,
        checkpoint_id: str,
        decided_by: Literal["user", "policy"],
        reason: str,
        selection: Selection | None = None,
    ) -> LaunchResult:
        from recorder.store.checkpoints import resolve_checkpoint

        cp = resolve_checkpoint(self.layout, checkpoint_id)
        redact = self.redact if selection is None or selection.redact is None else selection.redact
        bundle = None
        job, self._prefetch = self._prefetch, None
        try:
            if job is not None and job.checkpoint_id == cp.id and job.redact == redact:
                t0 = time.perf_counter()
                bundle = job.result()
                self.timings["bundle_wait"] = time.perf_counter() - t0
                self.timings["bundle"] = job.seconds
            elif self.build_bundle:
                from recorder.export.restore import build_bundle

                if job is not None:
                    job.thread.join()  # another checkpoint, or the dialog changed the redaction
                t0 = time.perf_counter()
                bundle = build_bundle(
                    self.log_dir, cp, agent=self.agent, scope=self.restore_scope, redact=redact
                )
                self.timings["bundle"] = time.perf_counter() - t0
        except OSError as exc:
            if isinstance(exc, PersistError):  # a segment gone as it was read: said as it is
                raise
            raise BundleNotWritten.of(exc) from exc
        if bundle is not None:
            self._say_integrity(cp.id, bundle)
            self._note_bundle(bundle)
        result = self._result(
            LaunchChoice.CHECKPOINT, decided_by=decided_by, reason=reason, selection=selection
        )
        result.checkpoint, result.bundle = cp, bundle
        return result

    def _note_bundle(self, bundle: Bundle) -> None:
        """The agent's registration names the bundle it is handed: no restore removes it
        while the agent runs (`store.bundles.in_use`). Not noted, that is said."""
        if self._registration is None:
            return
        try:
            note_bundle(self.layout, self._registration, bundle.dir)
        except (OSError, LaunchError) as exc:
            self.say(
                f"the restore bundle {bundle.dir.name} is not noted in the agent's "
                f"registration ({exc}): a restore may remove it after a week unused, or "
                "persist restore --clean, while the agent runs"
            )

    def _say_integrity(self, cp_id: str, bundle: Bundle) -> None:
        """What `persist restore` says of the range, in its words: damage ("with
        problems", which makes restore exit 5) apart from losses the journal recorded
        (gaps, quarantined tails, refused messages: "losses recorded", exit 0), which
        leave the range verified (PERSIST_RESTORE_VERIFIED=1). A prefetched bundle
        is said too."""
        integrity = bundle.manifest["integrity"]
        if integrity["ok"]:
            return
        damaged = integrity.get("damaged", True)  # bundles before the field: as before
        verdict = " with problems:" if damaged else ": losses recorded:"
        self.say(
            f"restoring {cp_id}{verdict} {'; '.join(integrity['problems'])} "
            f"(listed in {bundle.manifest_path})"
        )

    def _plan_session(self, chosen: Selection) -> tuple[SessionRow, ResumePlan]:
        """The chosen agent session found again and what resuming it runs. Raises
        `ResumeError` (one line) when it cannot be: unknown, or not resumable."""
        from recorder.launch.sessions import ResumeError, find_row, plan
        from recorder.sources.discover import Roots

        assert chosen.session is not None
        command = self.agent_command or chosen.command
        if not command:
            raise ResumeError(f"no agent command to resume {chosen.session} with")
        row = find_row(self._roots or Roots.default(), self.layout, chosen.session)
        return row, plan(row, command, chosen.at, chosen.new_id)

    def _resume_session(
        self, chosen: Selection, planned: tuple[SessionRow, ResumePlan] | None = None
    ) -> LaunchResult:
        """Write the fork the chosen session needs (`planned`, or planned now), and say
        what runs. Raises `ResumeError` (one line) when it cannot."""
        from recorder.launch.sessions import carry_out

        row, wanted = planned or self._plan_session(chosen)
        if chosen.command and chosen.command != wanted.argv:  # [] when no menu showed one
            self.say(f"the menu showed {chosen.command}, running {wanted.argv}")
        if row.live is not None:
            self.say(row.live_warning())
        resumed = carry_out(self.layout, row, wanted)
        result = self._result(LaunchChoice.SESSION, reason="chosen in the menu", selection=chosen)
        result.resumed = resumed
        return result

    def _prefetch_latest(self) -> None:
        """Without a menu and with the policy "latest", the choice is known before the
        recorder runs: build that bundle on a thread while the recorder starts (it
        reads the journal only up to the checkpoint, which the recorder never changes),
        so connecting costs the longer of the two instead of their sum."""
        if not self.build_bundle:
            return
        from recorder.store.checkpoints import list_checkpoints

        cps = list_checkpoints(self.layout)
        if cps:
            self._prefetch = _BundleJob(self, cps[0])

    # -- exit ---------------------------------------------------------------------------
    def on_agent_exit(self, *, agent_ran: bool = True) -> ExitResult:
        """Checkpoint (only if the agent ran: `agent_ran`), unregister, and stop the
        recorder if we are the last agent out of a launcher-started recorder. Safe to
        call more than once."""
        if not self.connected:
            return ExitResult(False, "not connected")
        cp_id = None
        checkpoint = self.checkpoint_on_exit and agent_ran
        if checkpoint and assess(self.layout).state in (HEALTHY, DEGRADED):
            from recorder.daemon.control import request_checkpoint
            from recorder.errors import CheckpointError

            try:
                if messages_since_last_checkpoint(self.layout):
                    label = f"{self.agent or 'agent'} exited"
                    cp_id = request_checkpoint(self.layout, label).id
            except (CheckpointError, OSError, StopIteration) as exc:
                self.say(f"no exit checkpoint: {exc}")
        self._wait_for_hooks()  # (outside the launch lock: a hook may need it to finish)
        try:
            with launch_lock(self.layout):
                return self._leave(cp_id)
        except LockBusy as exc:
            # held all the wait (a launcher stopped with Ctrl-Z as it started a recorder):
            # unregistered all the same, so no later exit step waits again (before
            # 2026-12-07 the atexit one did, 30 s more, and the launch exited 1, not with
            # the agent's code); a launcher that holds it is starting or joining the
            # recorder, so this agent was not the last one out of it
            self._unregister()
            left = ", the recorder left running" if assess(self.layout).running else ""
            reason = f"{exc}: this launch ended without it{left}"
            return ExitResult(False, reason, cp_id, lock_busy=True)

    def _wait_for_hooks(self) -> None:
        """Until no hook of this folder holds its session's lock (one may still send the
        session's messages: its end, left by a SessionEnd that found it busy), for at
        most `hooks_wait` seconds, said when it waits at all."""
        deadline = time.monotonic() + self.hooks_wait
        held = hooks_at_work(self.layout)
        if held:
            self.say(
                f"waiting for the hooks of {len(held)} session(s) still sending to the "
                f"recorder ({', '.join(held[:3])}; at most {self.hooks_wait:g} s)"
            )
        while held and time.monotonic() < deadline:
            time.sleep(0.05)
            held = hooks_at_work(self.layout)

    def _unregister(self) -> None:
        if self._registration is not None:
            with contextlib.suppress(OSError):
                self._registration.unlink()
            self._registration = None

    def _leave(self, cp_id: str | None) -> ExitResult:
        """`on_agent_exit` under the launch lock: unregister, then stop the recorder if
        this launcher's agent was the last one out of a launcher-started recorder."""
        self._unregister()
        others = live_agents(self.layout)
        owner = recorder_owner(self.layout)
        if owner is None:
            health = assess(self.layout)
            if not health.running:
                # the recorder died (or was stopped) under its agents: the host of the
                # broker it followed, left running for it, is stopped by its last agent
                # all the same (before 2026-12-08 it ran on for nobody)
                host, kept = (None, "") if others else self._stop_host(health.status)
                also = (
                    f"; the recorder of {host}, which hosted the broker it followed, was stopped"
                    if host
                    else kept and f"; {kept}"
                )
                lost = self._lost(health)
                if lost is not None:
                    return ExitResult(False, lost + also, cp_id, lost=True)
                return ExitResult(False, "the recorder is not running" + also, cp_id)
            reason = "the recorder was not started by a launcher; leaving it running"
            return ExitResult(False, reason, cp_id)
        if others:
            names = ", ".join(str(a.get("agent") or a.get("pid")) for a in others[:5])
            return ExitResult(False, f"still connected: {names}", cp_id)
        status = assess(self.layout).status
        users = hosted_broker_users(status, int(owner["recorder_pid"]))
        followers = [peer for peer in users if peer.keeps_host]
        if followers:  # before 2026-12-07 stopped all the same: their recording ended with it
            assert status is not None
            return ExitResult(
                False, _kept_for(followers, status.broker, self.layout), cp_id, shared=True
            )
        from recorder.daemon.systemd import recording_unit

        unit = recording_unit(self.layout.root)
        if unit is not None:  # before 2026-12-07 stopped: the folder then went unrecorded
            root = shell_quote(str(self.layout.root))
            return ExitResult(
                False,
                f"last agent out, but the systemd unit {unit.name} records {self.layout.root}"
                f": the recorder is left running (`persist stop --log-dir {root} && "
                f"systemctl --user start {unit.name}` hands the folder to the unit)",
                cp_id,
                shared=True,
            )
        held = hooks_at_work(self.layout)
        if held:  # before 2026-12-07 stopped under them: what they still sent was lost
            return ExitResult(
                False,
                f"last agent out, but a hook still holds the lock of {len(held)} session(s) "
                f"({', '.join(held[:3])}) after {self.hooks_wait:g} s, and may still send to "
                "the recorder: it is left running (the hook that sends a session's end stops "
                f"it; else `persist stop --log-dir {shell_quote(str(self.layout.root))}`)",
                cp_id,
                shared=True,
            )
        stopped = self._stop(owner)
        if stopped:
            forget_owner(self.layout)
            host, kept = self._stop_host(status)
            also = f", and so was that of {host}, which hosted its broker for it" if host else ""
            also += kept and f"; {kept}"
            if users:  # none records: not kept for them (before 2026-12-08 kept for good)
                assert status is not None
                names = _names(users)
                also += (
                    f", and with it the broker at {status.broker} that {names} "
                    f"{'was' if len(users) == 1 else 'were'} subscribed to (not a recorder: "
                    f"{'it hears' if len(users) == 1 else 'they hear'} nothing more)"
                )
            return ExitResult(True, f"last agent out: recorder stopped{also}", cp_id)
        return ExitResult(False, "the recorder did not stop in time", cp_id)

    def _stop_host(self, status: StatusSnapshot | None) -> tuple[Path | None, str]:
        """`stop_unused_host` of the broker this folder's recorder (`status`) followed:
        the folder of the host it stopped, and why it left it running ("" when it had
        nothing to say)."""
        why: list[str] = []
        host = stop_unused_host(status, self.log_dir, self.stop_timeout, self.say, why.append)
        return host, "; ".join(why)

    def _lost(self, health: Health) -> str | None:
        """One line when the recorder this agent was given (`recorder_pid`) stopped during
        the session: what `persist status` says of it, and that what the agent sent after
        it was not recorded. None when there is no such recorder to speak of."""
        status = health.status
        if self.recorder_pid is None or status is None or status.pid != self.recorder_pid:
            return None
        return (
            f"the recorder ended during this session: {health.reason}; what was sent "
            "after that was not recorded"
        )

    def stop_started_recorder(self) -> bool:
        """Stop the recorder this launcher started (the demo uses it); True if stopped."""
        owner = recorder_owner(self.layout)
        if not self.started_recorder or owner is None or owner["recorder_pid"] != self.recorder_pid:
            return False
        if self._stop(owner):
            forget_owner(self.layout)
            return True
        return False

    def _stop(self, owner: dict[str, Any]) -> bool:
        """Stop the recorder `owner` (agents/owner.json) names."""
        return stop_recorder(
            self.layout,
            int(owner["recorder_pid"]),
            owner.get("recorder_started"),
            self.stop_timeout,
            self.say,
            key=owner.get("recorder_start_key"),
        )

    def _exit_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self.on_agent_exit()

    def __enter__(self) -> PersistenceLauncher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.on_agent_exit()
