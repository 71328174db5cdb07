"""Session start, compaction and end, for `persist hook` (turns are in `run`).

- start: a recorder for the log folder (started detached, as the launcher does, if
  none is healthy), the agent registered (its process is the hook's nearest ancestor
  that is not a shell), a session-started message on the bus, a checkpoint named
  after the session. The checkpoint chosen in `persist launch`'s menu, or with
  `--restore` the one the no-terminal policy picks, is offered to the agent as
  context (a summary and the restore transcript).
- compaction: what the transcript gained is published, then a verified copy of the
  transcript as it is now (`recorder.sources.copies`), a message naming it, and a
  checkpoint: the detail compaction drops stays on disk and on the bus (with nobody
  listening, the copy only: no checkpoint that would hold none of the session).
- end: the rest of the transcript, a session-ended message, a final checkpoint, the
  agent deregistered; the recorder is stopped only if a launcher (or a start hook)
  started it and no registered agent is left (nor another folder's recorder following
  the broker it hosts), and then the recorder whose broker it followed, if that one
  was left running for it alone (`peers.stop_unused_host`). What nobody listened to is
  marked pending (`state.set_pending`): an ended session has no next call of its own, so
  every hook call of any session finishes a few of them (`finish_ended`), and the
  final checkpoint is taken then, once its end is in the journal. An end that cannot
  take its session's lock (another hook holds it past 5 s) is left as a mark beside
  the state (`state.owe_end`) and marked pending the same way, the agent's
  deregistration with it: the lock's holder sends it as it lets go (`settle_owed`),
  else any session's next call; no recorder is stopped while a hook holds a lock.
- a start or a compaction that cannot take the lock does what needs none (the offer,
  the recorder, the registration; the transcript's copy) and leaves its message and
  checkpoint as a mark (`state.owe_announcement`): the next holder sends them first
  (`deliver_owed`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from recorder.hooks.agents import TIMEOUT_OTHER, Agent, Role
from recorder.hooks.failures import record_failure
from recorder.hooks.publish import (
    CLOSE_WAIT,
    SILENT,
    NotDelivered,
    Outgoing,
    Undelivered,
    close_all,
    send,
    topic_for,
)
from recorder.hooks.run import (
    HookArgs,
    Payload,
    owed_subagents,
    publish_endpoint,
    send_subagents,
    transcript_messages,
)
from recorder.hooks.state import (
    SessionState,
    StateInTheWay,
    load_state,
    owe_announcement,
    owe_end,
    owed_end_state,
    owed_marks,
    pending_path,
    pending_states,
    read_state,
    save_state,
    session_lock,
    set_pending,
    state_path,
    take_owed,
)
from recorder.store.layout import Layout

SHELLS = frozenset(("sh", "bash", "dash", "zsh", "fish", "ksh", "busybox", "env", "timeout"))


def _name_and_parent(pid: int) -> tuple[str, int] | None:
    """A process's name and its parent's PID (None: gone, or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    end = stat.rindex(")")
    return stat[stat.index("(") + 1 : end], int(stat[end + 2 :].split()[1])


def agent_process(start: int | None = None) -> int:
    """The agent's PID: the nearest ancestor that is not a shell (agents run hooks
    through `sh -c` / `bash -c`)."""
    pid = os.getppid() if start is None else start
    for _ in range(8):
        found = _name_and_parent(pid)
        if found is None:
            return pid
        comm, parent = found
        if comm not in SHELLS or parent <= 1:
            return pid
        pid = parent
    return pid


def started_by(launcher: int, agent: int) -> bool:
    """Whether `launcher` started the agent process `agent` (itself, or through
    shells: a wrapper script), rather than some process the agent started in turn."""
    found = _name_and_parent(agent)
    return found is not None and agent_process(found[1]) == launcher


def handle(
    role: Role, args: HookArgs, payload: Payload, deadline: float | None = None
) -> dict[str, Any] | None:
    """`deadline` (monotonic): when a SessionEnd must be done (`end_deadline`)."""
    if role is Role.COMPACT:
        _compact_or_say_what_is_not_done(args, payload)
        return None
    spath = state_path(args.log_dir, args.agent.value, payload.session)
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(session_lock(spath))
        except TimeoutError as exc:
            if role is Role.START:
                return _start_busy(held, args, payload, spath, exc)
            if role is not Role.END:
                raise  # (nothing lost: the state's offsets make the next call send it)
            _owe_end_or_go_on(held, args, payload, spath, exc, deadline)
        state = load_state(spath, args.agent.value, payload.session)
        take_owed(spath, state, partial(_note, args, payload))
        try:
            deliver_owed(args, spath, state, partial(_note, args, payload))
            if role is Role.START:
                return start(args, payload, state)
            if role is Role.END:
                end(args, payload, state, deadline)
            return None
        finally:
            save_state(spath, state)
            if role is Role.END and owed_marks(spath):  # left while this end held the lock
                _mark_pending(args, payload, spath)
            elif role is Role.START:
                settle_owed(args, spath, state, partial(_note, args, payload))
    return None


def _mark_pending(args: HookArgs, payload: Payload, spath: Path) -> bool:
    """`set_pending`; a named pipe or a folder at the mark is a failure line (False)."""
    try:
        set_pending(spath, True)
    except StateInTheWay as exc:
        _note(args, payload, str(exc))
        return False
    return True


def _owe_end_or_go_on(
    held: contextlib.ExitStack,
    args: HookArgs,
    payload: Payload,
    spath: Path,
    busy: TimeoutError,
    deadline: float | None,
) -> None:
    """A SessionEnd that found its session busy: its end marked owed beside the state
    (`owe_end`, with the agent's registration, read from the state without the lock)
    and the session marked pending (`set_pending`), then the lock tried once more (its
    holder may have let go before the mark was there: the end then goes on here). Else
    the end, and the agent's deregistration with it, is left to whoever sends it: the
    lock's holder as it lets go (`settle_owed`), or the next hook call of any session
    (`finish_ended`); the recorder is not stopped meanwhile, while the holder may still
    be sending to it (before 2026-12-07 this call deregistered the agent at once and,
    the last one out, stopped the recorder under the holder). TimeoutError says what
    waits and who sends it. An end that could not be marked deregisters the agent here
    (`_leave`: no stop while a hook of the folder holds its session's lock)."""
    label = f"{args.agent.value} {_short(payload.session)} ended"
    # what the holder left saved: the registration, and where the transcript was read to
    state = read_state(spath)
    if state is None or state.agent != args.agent.value or state.session != payload.session:
        state = SessionState.new(args.agent.value, payload.session)
    try:
        owe_end(spath, args.agent.value, payload, label, state.registration)
        owed = True
    except (StateInTheWay, OSError) as exc:  # a named pipe at the folder, a full disk
        _note(
            args,
            payload,
            str(exc) if isinstance(exc, StateInTheWay) else f"{type(exc).__name__}: {exc}",
        )
        owed = False
    marked = owed and _mark_pending(args, payload, spath)
    try:
        held.enter_context(session_lock(spath, timeout=0))
        return
    except TimeoutError:
        pass
    state.ending, state.end_checkpoint = payload.text("reason") or "exit", label
    if not state.transcript:
        state.transcript = payload.transcript
    if owed:
        waiting = (
            f"{_waiting(args, state, marked, holder=True)}; the agent stays registered "
            "until then, so the recorder is not stopped while the holder sends to it"
        )
    else:
        waiting = (
            f"its end (session.ended, the checkpoint '{label}') could not be marked owed "
            "(the line before says what to move): nothing sends it later; the rest of its "
            "transcript goes with a later call of this session, if one comes (a resume)"
        )
        try:
            _leave(args, partial(_note, args, payload), state, deadline, None)
        except Exception as exc:
            _note(args, payload, f"not deregistered: {type(exc).__name__}: {exc}")
    raise TimeoutError(f"{busy}: this session's end is not delivered now; {waiting}") from None


def _saver(args: HookArgs, state: SessionState) -> Callable[[], None]:
    """Keeps `state` where `handle` keeps it (between the chunks of a long transcript)."""
    return partial(save_state, state_path(args.log_dir, args.agent.value, state.session), state)


def _note(args: HookArgs, payload: Payload, error: str) -> None:
    """A step that failed while the others went on: written down, never raised."""
    record_failure(args.log_dir, args.event, args.agent.value, payload.session, error)


def _announce(
    args: HookArgs, state: SessionState, kind: str, text: str, *, owed: bool = True, **extra: Any
) -> None:
    """`owed`: whether the caller keeps the message for a later call when nobody hears it
    (the session-ended one, in hooks/pending/), or not (NotDelivered says which)."""
    body = {
        "type": kind,
        "sender": args.agent.value,
        "text": text,
        "agent": args.agent.value,
        "session": state.session,
        **extra,
    }
    mid = f"{args.agent.value}:{state.session}:{kind}:{state.seq + 1}"
    state.seq = send(
        publish_endpoint(args),
        state.publisher,
        state.seq,
        args.agent.value,
        topic_for(args.agent.value, state.session),
        [Outgoing(mid, body)],
        owed=owed,
    )


def _checkpoint(
    args: HookArgs,
    state: SessionState,
    label: str,
    note: Callable[[str], None],
    deadline: float | None = None,
) -> str | None:
    """A checkpoint that holds what this session published last (the message just
    announced): the recorder answers once it has that message (within
    `CHECKPOINT_TIMEOUT`, and what `deadline` leaves for it, see `_time_for`)."""
    from recorder.daemon.control import request_checkpoint
    from recorder.errors import CheckpointError

    after = (state.publisher, state.seq) if state.seq else None
    try:
        close_all(_close_wait(deadline))  # what was sent is taken before the recorder is asked
        timeout = _time_for(deadline, CHECKPOINT_TIMEOUT, STOP_RESERVE)
        if timeout < MIN_WAIT:
            note(f"no checkpoint '{label}': {_out_of_time()}, none was asked for")
            return None
        return request_checkpoint(Layout(args.log_dir), label, timeout, after=after).id
    except (CheckpointError, OSError, Undelivered) as exc:
        # Undelivered: the recorder would wait for a message that never comes
        note(f"no checkpoint '{label}': {exc}")
        return None


def _launcher(args: HookArgs) -> Any:
    import io

    from recorder.launch.launcher import PersistenceLauncher

    return PersistenceLauncher(
        args.log_dir,
        broker=args.broker,
        publish_endpoint=args.publish_endpoint,
        interactive=False,
        start_timeout=20.0,  # within the 30 s the agents give a SessionStart hook
        start_limit=20.0,  # also while it waits for a `persist` command holding the folder
        stderr=io.StringIO(),
    )


def _short(session: str) -> str:
    return session[:8]


# -- start --------------------------------------------------------------------------------
def start(args: HookArgs, payload: Payload, state: SessionState) -> dict[str, Any] | None:
    """The offer (a checkpoint to continue from) needs no recorder: it is computed first
    and answered whatever the start's other steps do; a step that fails is a failure
    line (before 2026-12-07 a recorder that could not be started, as when a `persist`
    command held the folder, threw the offer away, and a bundle that could not be built
    left the session with no recorder)."""
    source = _source(payload)
    offer = _offer(args, payload, source)
    try:
        _begin(args, payload, state, source, offer.bundle if offer else None)
    except Exception as exc:
        if offer is None:
            raise  # (the failure line `persist hook` writes for any failure)
        _note(args, payload, f"{type(exc).__name__}: {exc} (the checkpoint is offered still)")
    if offer is None:
        return None
    return offer.answer()


def _source(payload: Payload) -> str:
    return payload.text("source") or payload.text("trigger") or "startup"


class Offer(NamedTuple):
    """A checkpoint offered at a start: its context for the agent, and the restore
    bundle it names (which the agent's registration notes: no restore removes it while
    the agent runs)."""

    checkpoint_id: str
    context: str
    bundle: Path

    def answer(self) -> dict[str, Any]:
        return answer(self.checkpoint_id, self.context)


def _offer(args: HookArgs, payload: Payload, source: str) -> Offer | None:
    """The checkpoint offered at a start (`_launch_choice`, else `--restore`), or None;
    a failure is a line, never raised."""
    if source != "startup":  # (computed before our own checkpoint is taken)
        return None
    try:
        launched, offer = _launch_choice(args, payload)
        if not launched and args.restore:
            offer = _choose(args, payload)
    except Exception as exc:
        _note(args, payload, f"no checkpoint offered: {type(exc).__name__}: {exc}")
        return None
    return offer


def _start_busy(
    held: contextlib.ExitStack,
    args: HookArgs,
    payload: Payload,
    spath: Path,
    busy: TimeoutError,
) -> dict[str, Any] | None:
    """A SessionStart that found its session busy does what needs no lock: the offer,
    the recorder found or started, the agent registered (`_register`); the
    session-started message and its checkpoint it marks owed (`owe_announcement`, with
    the registration), then tries the lock once more: got, it sends them itself; else
    the next holder of the lock sends them first (`deliver_owed`). Before 2026-12-07
    such a start did nothing at all: no offer, no recorder (the session went unrecorded
    if none ran), no registration, no message."""
    note = partial(_note, args, payload)
    source = _source(payload)
    offer = _offer(args, payload, source)
    publisher = SessionState.new(args.agent.value, payload.session).publisher
    registration, launcher = "", None
    try:
        registration, launcher = _register(
            args, payload, publisher, offer.bundle if offer else None
        )
    except Exception as exc:
        note(f"not registered: {type(exc).__name__}: {exc}")
    label = f"{args.agent.value} {_short(payload.session)} started"
    fields = _start_fields(args, payload, source, launcher)
    announcement = {
        "type": "session.started",
        "text": _start_text(args, payload, source),
        "checkpoint": label if launcher is not None else "",
        "at": time.time(),
        "fields": fields,
    }
    try:
        owe_announcement(spath, "start", announcement, registration)
    except (StateInTheWay, OSError) as exc:
        note(str(exc) if isinstance(exc, StateInTheWay) else f"{type(exc).__name__}: {exc}")
        note(
            f"TimeoutError: {busy}: "
            f"the session-started message and the checkpoint '{label}' could not be "
            "marked owed (the line before says what to move): nothing sends them later; "
            f"the agent is {'registered' if registration else 'not registered'}"
        )
        return offer.answer() if offer else None
    try:
        held.enter_context(session_lock(spath, timeout=0))
    except TimeoutError:
        recorder = "the recorder runs" if launcher is not None else "no recorder runs"
        note(
            f"TimeoutError: {busy}: "
            f"the agent is {'registered' if registration else 'not registered'} and "
            f"{recorder}; the session-started message "
            f"and the checkpoint '{label}' are owed (marked in hooks/sessions/{spath.name}"
            ".owed/): the session's next hook call sends them first, before its own lines"
        )
        return offer.answer() if offer else None
    state = load_state(spath, args.agent.value, payload.session)
    take_owed(spath, state, note)
    try:
        deliver_owed(args, spath, state, note)
    finally:
        save_state(spath, state)
        settle_owed(args, spath, state, note)
    return offer.answer() if offer else None


def _register(
    args: HookArgs, payload: Payload, publisher: str, bundle: Path | None = None
) -> tuple[str, Any]:
    """The recorder found or started, the agent registered under the same hold of the
    launch lock (the last agent leaving cannot stop it in between), with the restore
    `bundle` it was offered (none: the one registered before stays); the registration's
    file name, and the launcher (None: no recorder, said in a failure line; the agent
    is registered all the same, so a recorder started later by another session's start
    is not stopped by another session's end while this agent runs)."""
    from recorder.launch.registry import launch_lock, register_agent

    launcher = _launcher(args)
    launcher.agent = args.agent.value
    layout = Layout(args.log_dir)
    registered: list[str] = []
    failed: list[Exception] = []  # the registration's own error, not the recorder's

    def register() -> None:
        registered.append(
            register_agent(
                layout,
                args.agent.value,
                launcher.recorder_pid,
                launcher.started_recorder,
                pid=agent_process(),
                key=publisher,
                bundle=bundle,
            ).name
        )

    def register_after_the_check() -> None:
        try:
            register()
        except Exception as exc:
            failed.append(exc)

    recording = True
    try:
        launcher.ensure_recorder(then=register_after_the_check)
    except Exception as exc:
        recording = False
        label = f"{args.agent.value} {_short(payload.session)} started"
        _note(
            args,
            payload,
            f"recorder not started: {type(exc).__name__}: {exc}; no session-started message "
            f"(not later either) and no checkpoint '{label}': this session's transcript "
            "waits for its next hook call",
        )
    if failed:
        raise failed[0]
    if not registered:
        with launch_lock(layout):
            register()
    return registered[-1], launcher if recording else None


def _start_text(args: HookArgs, payload: Payload, source: str) -> str:
    text = f"{args.agent.value} session {payload.session} started ({source})"
    return text + (f" in {payload.cwd}" if payload.cwd else "")


def _start_fields(args: HookArgs, payload: Payload, source: str, launcher: Any) -> dict[str, Any]:
    model = payload.raw.get("model")
    return {
        "source": source,
        "cwd": payload.cwd,
        "transcript": payload.transcript,
        "recorder_started": bool(launcher is not None and launcher.started_recorder),
        **({"model": model} if isinstance(model, str) else {}),
    }


def deliver_owed(
    args: HookArgs, spath: Path, state: SessionState, note: Callable[[str], None]
) -> None:
    """Under the session's lock, after `take_owed`: the messages a SessionStart or a
    PreCompact that found the session busy left (`SessionState.announce`), sent first,
    in order, each marked `late` with the time of its event (`at`), then its checkpoint
    (a compaction's linked to its transcript copy). A start that came after an end not
    delivered yet waits for it (`_finish`, as a resumed session's start does; lines the
    resumed session wrote before this call then go before that end's message: the
    transcript is read to its end). One try
    each: nobody listening, the line says it is not sent later (it would come after the
    turns it began). Raises nothing a caller did not expect (failures are lines)."""
    while state.announce:
        owed = state.announce[0]
        if owed.get("after_end") and (state.ending or state.end_checkpoint):
            path = Path(state.transcript) if state.transcript else None
            try:
                if not _finish(args, state, path, PENDING_BUDGET, note):
                    return  # the start waits with the end, for the next call
            except Exception as exc:
                note(f"the previous end of this session not delivered: {exc}")
                return
            if not owed_marks(spath):
                set_pending(spath, False)
        state.announce.pop(0)
        kind, label = str(owed["type"]), str(owed["checkpoint"])
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(owed["at"])))
        what = "session-started message" if kind == "session.started" else "compaction message"
        try:
            _announce(
                args,
                state,
                kind,
                str(owed["text"]),
                owed=False,
                late=True,
                at=owed["at"],
                **owed["fields"],
            )
        except NotDelivered as exc:
            note(
                f"{what} of {at} not sent: {exc.nobody()}; it is not sent later, and no "
                f"checkpoint '{label}' is taken"
            )
            continue
        except Exception as exc:
            note(f"{what} of {at} not sent: {exc}; it is not sent later")
            continue
        if label:
            cp = _checkpoint(args, state, label, note)
            copy = {k: v for k, v in owed["fields"].items() if k.startswith("copy")}
            if cp is not None and kind == "session.compacting" and copy.get("copy"):
                _remember_copy(args.log_dir, cp, state.session, copy)
    save_state(spath, state)


def _begin(
    args: HookArgs, payload: Payload, state: SessionState, source: str, bundle: Path | None
) -> None:
    """The recorder, the registration (naming the `bundle` offered), a pending end, the
    message and the checkpoint."""
    label = f"{args.agent.value} {_short(state.session)} started"
    state.registration, launcher = _register(args, payload, state.publisher, bundle)
    recording = launcher is not None
    if not state.started:
        state.started = time.time()
    if not recording:
        return
    spath = state_path(args.log_dir, args.agent.value, state.session)
    if pending_path(spath).exists():  # resumed after an end nobody heard: that goes first
        path = Path(state.transcript) if state.transcript else None
        try:
            if _finish(args, state, path, PENDING_BUDGET, partial(_note, args, payload)):
                set_pending(spath, False)
        except Exception as exc:  # still marked: a later call sends it
            _note(args, payload, f"the previous end of this session not delivered: {exc}")
    # not kept for a later call: sent then, it would come after the turns it began (said)
    lost = (
        "it is not sent later (the session's transcript is, from its next hook call on), "
        f"and no checkpoint '{label}' is taken (it would not hold the session's start)"
    )
    try:
        _announce(
            args,
            state,
            "session.started",
            _start_text(args, payload, source),
            owed=False,
            **_start_fields(args, payload, source, launcher),
        )
    except NotDelivered as exc:
        _note(args, payload, f"session-started message not sent: {exc.nobody()}; {lost}")
    except Exception as exc:
        _note(args, payload, f"session-started message not sent: {exc}; {lost}")
    else:  # a checkpoint that holds the session's start
        _checkpoint(args, state, label, partial(_note, args, payload))


def _launch_choice(args: HookArgs, payload: Payload) -> tuple[bool, Offer | None]:
    """What `persist launch` chose for the agent it started for this log folder
    (`PERSIST_*`, which the agent passes on to its hooks): (True, the chosen
    checkpoint's offer, or None for a fresh start); (False, None) when the agent was
    not started that way. The person's choice in the launch menu wins over the
    installed no-terminal policy. An agent started by that agent (its own tool running
    `claude -p`) inherits the variables but was not launched: it is left alone. The
    bundle in PERSIST_RESTORE_DIR is checked as a restore checks one before handing it
    back (`changed_since_written`): changed, it is offered as NOT verified, and the
    failure line says what changed (before 2026-12-08 an edited manifest saying
    "verified" was offered as verified)."""
    from recorder.launch.launcher import LAUNCHER_PID_ENV

    env = os.environ
    choice, launcher = env.get("PERSIST_CHOICE"), env.get(LAUNCHER_PID_ENV, "")
    folder = env.get("PERSIST_LOG_DIR")
    if not choice or not launcher.isdigit() or not folder:
        return False, None
    if Path(folder).expanduser().resolve() != Path(args.log_dir).expanduser().resolve():
        return False, None  # launched for another log folder than our hooks record into
    if not started_by(int(launcher), agent_process()):
        return False, None
    if choice != "checkpoint":
        return True, None
    from recorder.errors import PersistError
    from recorder.export.restore import Bundle, changed_since_written
    from recorder.store.checkpoints import resolve_checkpoint

    try:
        bundle = Bundle.load(Path(env.get("PERSIST_RESTORE_DIR", "")))
        cp = resolve_checkpoint(Layout(args.log_dir), bundle.checkpoint_id)
    except (PersistError, OSError) as exc:
        _note(args, payload, f"the checkpoint persist launch chose is not offered: {exc}")
        return True, None
    changed = changed_since_written(bundle)
    if changed is not None:
        _note(
            args,
            payload,
            f"the restore bundle of the checkpoint persist launch chose ({cp.id}) is not "
            f"offered as verified: {changed}",
        )
    return True, Offer(cp.id, restore_context(cp, bundle, changed), bundle.dir)


def _choose(args: HookArgs, payload: Payload) -> Offer | None:
    """The context offered to the agent for the checkpoint the no-terminal policy
    picks (`$PERSIST_NO_TTY_POLICY` overrides the installed one), or None."""
    from recorder.launch.launcher import POLICY_ENV
    from recorder.launch.selection import NoTtyPolicy
    from recorder.store.checkpoints import list_checkpoints

    try:
        policy = NoTtyPolicy(os.environ.get(POLICY_ENV) or args.restore or "fresh")
    except ValueError:
        _note(args, payload, f"unknown no-terminal policy {args.restore!r}; starting fresh")
        return None
    if policy is not NoTtyPolicy.LATEST:
        return None
    checkpoints = list_checkpoints(Layout(args.log_dir))
    if not checkpoints:
        return None
    from recorder.export.restore import build_bundle

    cp = checkpoints[0]
    bundle = build_bundle(args.log_dir, cp, agent=args.agent.value)
    return Offer(cp.id, restore_context(cp, bundle), bundle.dir)


def restore_context(cp: Any, bundle: Any, changed: str | None = None) -> str:
    """A short summary of the checkpoint and where its conversation is; `changed`:
    what changed in the bundle since it was written (then never "verified")."""
    m = bundle.manifest
    integrity = m["integrity"]
    if changed is not None:
        state = f"NOT verified ({changed})"
    elif integrity.get("verified"):
        state = "verified"
    else:
        state = "NOT verified"
    if changed is None and not integrity.get("ok"):
        state += f" ({'; '.join(integrity.get('problems') or [])})"
    names = ", ".join(sorted(m.get("participants") or {})[:8]) or "none recorded"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(cp.created))
    lines = [
        "agent-persist: a checkpoint of the agent bus is available to continue from.",
        f"Checkpoint {cp.id} ({cp.label or cp.reason}), taken {when}: "
        f"{m.get('messages', cp.messages)} messages; participants: {names}.",
        f"Integrity: {state}",
        _what_it_holds(bundle) + f", readable: {bundle.transcript}",
        f"As JSONL records: {bundle.jsonl}",
        "Read the transcript when the user wants to continue from where it left off.",
    ]
    return "\n".join(lines)


def _what_it_holds(bundle: Any) -> str:
    if bundle.complete:
        return "The conversation up to it"
    if not bundle.manifest["range"].get("start_index"):  # from the first record still held
        return (
            "The conversation up to it that the journal still holds (older parts were pruned;"
            " the transcript's notes say which)"
        )
    return (
        "The latest part of the conversation up to it (earlier messages stay in the"
        " journal; `persist restore --full` writes them all)"
    )


def answer(checkpoint_id: str, context: str) -> dict[str, Any]:
    """SessionStart output: Claude Code and Gemini CLI both read
    hookSpecificOutput.additionalContext; systemMessage is shown to the user."""
    return {
        "hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": context},
        "systemMessage": f"agent-persist: offered checkpoint {checkpoint_id} to continue from",
    }


# -- compaction ---------------------------------------------------------------------------
# The agent waits for PreCompact up to the timeout the install gives it (TIMEOUT_COMPACT,
# 60 s) and then ends it with SIGTERM. Its steps share that time: publishing what the
# transcript gained (PUBLISH_BUDGET), the copy (until COPY_UNTIL, at least one member of
# it), then the message and the checkpoint (the recorder's answer: 5 s at most).
PUBLISH_BUDGET = 20.0
COPY_UNTIL = 35.0  # seconds after the hook began (reading it back takes a fifth more)


class _Stopped(BaseException):
    """The agent ended the hook (SIGTERM at its timeout): raised where it was."""


def _compact_or_say_what_is_not_done(args: HookArgs, payload: Payload) -> None:
    """`compact` under the session lock; ended by a signal, it leaves a failure line
    naming the steps not done (before, a killed PreCompact left nothing at all)."""
    import signal

    left = ["transcript published", "transcript copied", "session.compacting message sent"]
    left.append("checkpoint 'before compaction' taken")

    def stopped(signum: int, _frame: object) -> None:
        raise _Stopped(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, stopped) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        spath = state_path(args.log_dir, args.agent.value, payload.session)
        note = partial(_note, args, payload)
        with contextlib.ExitStack() as held:
            copied = None
            try:
                held.enter_context(session_lock(spath))
            except TimeoutError as exc:
                copied = _compact_busy(held, args, payload, spath, exc, left)
                if copied is None:
                    return  # (owed, said)
            state = load_state(spath, args.agent.value, payload.session)
            take_owed(spath, state, note)
            deliver_owed(args, spath, state, note)
            try:
                compact(args, payload, state, left, copied)
            finally:
                save_state(spath, state)
            settle_owed(args, spath, state, note)
    except _Stopped as exc:
        for sig in previous:  # a second signal while the line is written ends it as asked
            signal.signal(sig, signal.SIG_DFL)
        _note(
            args,
            payload,
            f"stopped by {exc} (the agent's timeout for the hook?) before compaction: "
            f"not done: {', '.join(left)}",
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _compact_busy(
    held: contextlib.ExitStack,
    args: HookArgs,
    payload: Payload,
    spath: Path,
    busy: TimeoutError,
    left: list[str],
) -> dict[str, Any] | None:
    """A PreCompact that found its session busy does what needs no lock: the copy of
    the transcript as it is (what compaction drops stays on disk); the
    session.compacting message naming it and the checkpoint it marks owed
    (`owe_announcement`), for the next holder of the lock to send first
    (`deliver_owed`); the transcript's lines not sent yet go with that call as with
    any (its state's offset). Then the lock tried once more: got, the mark is taken
    back and the compaction goes on here with this copy (returned); else None, said in
    one line. Before 2026-12-07 such a PreCompact did nothing at all: no copy, no
    message, no checkpoint (and a Gemini CLI compression may drop from its file lines
    no call had sent yet)."""
    note = partial(_note, args, payload)
    path = Path(payload.transcript) if payload.transcript else None
    # (the lock's wait counts: the copy's time is counted from the hook's start)
    copy = _protect(args, payload, path, time.monotonic() + COPY_UNTIL - 5.0)
    _done(left, "transcript copied")
    trigger = payload.text("trigger") or "auto"
    label = f"{args.agent.value} {_short(payload.session)} before compaction"
    kept = f"the transcript as it was is kept in {copy['copy']}" if copy else "no copy"
    announcement = {
        "type": "session.compacting",
        "text": _compacting_text(args, payload.session, trigger),
        "checkpoint": label,
        "at": time.time(),
        "fields": {"trigger": trigger, "transcript": payload.transcript, **copy},
    }
    try:
        mark = owe_announcement(spath, "compact", announcement)
    except (StateInTheWay, OSError) as exc:
        note(str(exc) if isinstance(exc, StateInTheWay) else f"{type(exc).__name__}: {exc}")
        note(
            f"TimeoutError: {busy}: "
            f"{kept}; the compaction message and the checkpoint '{label}' could "
            "not be marked owed (the line before says what to move): nothing sends them "
            "later; the transcript's lines not sent yet go with this session's next hook call"
        )
        return None
    try:
        held.enter_context(session_lock(spath, timeout=0))
    except TimeoutError:
        left.clear()  # (owed: the line says who sends what)
        note(
            f"TimeoutError: {busy}: "
            f"{kept}; the transcript's lines not sent yet go with this session's "
            "next hook call (from where its state was read to), and the compaction message "
            f"and the checkpoint '{label}' are owed (marked in hooks/sessions/{spath.name}"
            ".owed/): that call sends them first"
        )
        return None
    mark.unlink(missing_ok=True)  # (the lock is ours: nobody took it) sent here after all
    return copy


def _compacting_text(args: HookArgs, session: str, trigger: str) -> str:
    return f"{args.agent.value} session {session} is about to compact ({trigger})"


def compact(
    args: HookArgs,
    payload: Payload,
    state: SessionState,
    left: list[str] | None = None,
    copied: dict[str, Any] | None = None,
) -> None:
    """Publish, copy (unless `copied`: made already), announce, checkpoint; each step
    done is taken out of `left`."""
    began = time.monotonic()
    left = left if left is not None else []
    path = Path(payload.transcript) if payload.transcript else None
    unheard: NotDelivered | None = None  # nobody listened: the session is not journaled
    if path is not None and path.exists():
        try:
            if not transcript_messages(
                args,
                state,
                path,
                settled=True,
                budget=PUBLISH_BUDGET,
                save=_saver(args, state),
            ):
                _note(
                    args,
                    payload,
                    f"transcript not all published before compaction (more than "
                    f"{PUBLISH_BUDGET:.0f}s of it): the next hook call sends the rest",
                )
        except NotDelivered as exc:
            unheard = exc
            _note(args, payload, f"transcript not published before compaction: {exc}")
        except Exception as exc:
            _note(args, payload, f"transcript not published before compaction: {exc}")
    _done(left, "transcript published")
    copy = _protect(args, payload, path, began + COPY_UNTIL) if copied is None else copied
    _done(left, "transcript copied")
    trigger = payload.text("trigger") or "auto"
    try:
        _announce(
            args,
            state,
            "session.compacting",
            _compacting_text(args, state.session, trigger),
            owed=False,
            trigger=trigger,
            transcript=payload.transcript,
            **copy,
        )
    except NotDelivered as exc:
        unheard = unheard or exc
        _note(args, payload, f"compaction message not sent: {exc.nobody()}; {_NOT_LATER}")
    except Exception as exc:
        _note(args, payload, f"compaction message not sent: {exc}; {_NOT_LATER}")
    _done(left, "session.compacting message sent")
    label = f"{args.agent.value} {_short(state.session)} before compaction"
    if unheard is not None:  # one taken now would hold none of it, yet bear its name
        kept = f"the transcript as it was is kept in {copy['copy']}" if copy else "no copy"
        _note(
            args,
            payload,
            f"no checkpoint '{label}': {unheard.nobody()}, so the session is not in the "
            f"journal (its next hook call sends it); {kept}",
        )
        return
    cp = _checkpoint(args, state, label, partial(_note, args, payload))
    if cp is not None and copy:
        _remember_copy(args.log_dir, cp, state.session, copy)
    left.clear()


# a compaction message is not kept for a later call: it says what the transcript was
# before the compaction, and a later call comes after it
_NOT_LATER = "it is not sent later"


def _done(left: list[str], step: str) -> None:
    if step in left:
        left.remove(step)


def _protect(
    args: HookArgs, payload: Payload, path: Path | None, deadline: float | None = None
) -> dict[str, Any]:
    """A copy of the transcript in `sessions/copies/`, what this call wrote of it read
    back; what it is, or {}. Past `deadline` the rest waits for the next call (noted)."""
    if path is None or not path.is_file():  # (a FIFO's copy would wait forever)
        _note(args, payload, f"no transcript to copy before compaction ({payload.transcript!r})")
        return {}
    from recorder.sources.copies import copy_folder, load_manifest, protect, verify_written
    from recorder.sources.model import Session, Source

    layout = Layout(args.log_dir)
    session = Session(Source(args.agent.value), payload.session, path, project_path=payload.cwd)
    try:
        result = protect(layout, session, deadline)
        folder = copy_folder(layout, session)
        problems = verify_written(folder, result)
    except Exception as exc:
        _note(args, payload, f"transcript copy failed: {exc}")
        return {}
    if problems:
        _note(args, payload, f"transcript copy does not verify: {'; '.join(problems)}")
    if result.left:
        _note(
            args,
            payload,
            f"transcript copy incomplete: {result.left:,} bytes of {path} not copied within "
            f"{COPY_UNTIL:.0f}s (the next PreCompact, or `persist protect`, copies "
            "them)",
        )
    manifest = load_manifest(folder) or {}
    return {
        "copy": str(folder),
        "copy_complete": not result.left,
        "copy_verified": not problems,
        "copy_bytes": path.stat().st_size,
        "copy_files": sorted((manifest.get("files") or {}).keys())
        if isinstance(manifest.get("files"), dict)
        else [],
    }


def _remember_copy(log_dir: Path, cp: str, session: str, copy: dict[str, Any]) -> None:
    """`hooks/compactions/<checkpoint>.json`: which transcript copy goes with it."""
    import orjson

    from recorder.store.fsutil import atomic_write, ensure_private_dir

    folder = ensure_private_dir(log_dir / "hooks" / "compactions")
    atomic_write(
        folder / f"{cp}.json", orjson.dumps({"checkpoint": cp, "session": session, **copy})
    )


# -- end ----------------------------------------------------------------------------------
PENDING_PER_CALL = 2  # ended sessions one hook call finishes at most
PENDING_BUDGET = 1.0  # seconds of transcript one hook call reads for them


# SessionEnd: the agent gives it the timeout the install wrote (`TIMEOUT_OTHER`; Claude
# Code waits that long for all SessionEnd hooks, then kills them, and the user's exit
# waits meanwhile). Counted from the hook's process start, its steps share it:
END_MARGIN = 1.5  # seconds kept back: start-up before the count, exit, the agent's clock
CHECKPOINT_TIMEOUT = 5.0  # seconds the recorder has to answer a checkpoint request
STOP_RESERVE = 1.5  # seconds kept for the recorder's stop, after the end's checkpoint
END_RESERVE = 3.0  # ... kept after the transcript's rest: the end's message and checkpoint
MIN_WAIT = 0.3  # a wait shorter than this is not begun: the step is left undone (said)


def end_deadline(start: float | None = None) -> float:
    """When (monotonic) a SessionEnd hook must be done: `TIMEOUT_OTHER` seconds after
    its process started (`start`, seconds since the epoch: by default this process's),
    less `END_MARGIN`."""
    from recorder.store.status import process_start_time

    started = process_start_time(os.getpid()) if start is None else start
    age = min(max(0.0, time.time() - started), TIMEOUT_OTHER) if started else 0.0
    return time.monotonic() + TIMEOUT_OTHER - END_MARGIN - age


def _time_for(deadline: float | None, most: float, keep: float = 0.0) -> float:
    """Seconds a step may take: `most`, or less, keeping `keep` for the steps after it."""
    if deadline is None:
        return most
    return max(0.0, min(most, deadline - time.monotonic() - keep))


def _close_wait(deadline: float | None) -> float:
    """Seconds `close_all` may wait for the broker to take what was sent."""
    return _time_for(deadline, CLOSE_WAIT, STOP_RESERVE)


def _out_of_time() -> str:
    return f"SessionEnd's {TIMEOUT_OTHER} s were nearly up (the time the agent gives it)"


def end(
    args: HookArgs, payload: Payload, state: SessionState, deadline: float | None = None
) -> None:
    path = Path(payload.transcript) if payload.transcript else None
    if path is not None and not state.transcript:
        state.transcript = str(path)  # where a later call reads the rest from
    state.ending = payload.text("reason") or "exit"
    # taken once the session's end is in the journal (`_finish`): one taken now, with
    # nobody listening, would hold none of this session and bear its name
    state.end_checkpoint = f"{args.agent.value} {_short(state.session)} ended"
    spath = state_path(args.log_dir, args.agent.value, state.session)
    # first the state that says it ended, then the mark: a hook killed meanwhile leaves
    # both to the next call (a mark beside a state without `ending` is taken as done)
    save_state(spath, state)
    marked = _mark_pending(args, payload, spath)  # (a named pipe there: said, it goes on)
    # all of the transcript's rest when there is time; else what fits, and the rest waits
    # in hooks/pending/ for the next hook call (said below)
    budget = None if deadline is None else _time_for(deadline, float("inf"), END_RESERVE)
    try:
        if _finish(args, state, path, budget, partial(_note, args, payload), deadline):
            set_pending(spath, False)
        else:
            _note(
                args,
                payload,
                f"session end not delivered: {_out_of_time()}; {_waiting(args, state, marked)}",
            )
    except NotDelivered as exc:
        _note(
            args,
            payload,
            f"session end not delivered: {exc.nobody()}; {_waiting(args, state, marked)}",
        )
    except Exception as exc:  # the end goes on: deregistration
        _note(args, payload, f"session end not delivered: {exc}; {_waiting(args, state, marked)}")
    try:  # what the time let it send (the rest waits) taken before the recorder may stop
        close_all(_close_wait(deadline))
    except Undelivered as exc:
        _note(args, payload, f"{type(exc).__name__}: {exc}")
    _leave(args, partial(_note, args, payload), state, deadline, spath)


def _waiting(
    args: HookArgs, state: SessionState, marked: bool = True, *, holder: bool = False
) -> str:
    """What an end not delivered leaves, and who sends it (`holder`: the hook holding
    the session's lock does first, as it lets go)."""
    subagents = owed_subagents(args, state)
    if not marked:  # (the line before says why, and what to move)
        return (
            (f"{subagents}; " if subagents else "")
            + f"the rest of {state.transcript or 'its transcript'} (from byte {state.offset}) "
            "and the session-ended message could not be marked as waiting in hooks/pending/: "
            "nothing sends them later"
        )
    return (
        (f"{subagents}; " if subagents else "")
        + f"the rest of {state.transcript or 'its transcript'} (from byte {state.offset}) "
        "and the session-ended message wait in hooks/pending/: "
        + ("the hook holding the session's lock sends them as it lets go, else " if holder else "")
        + f"the next hook call of any session sends them (at most {PENDING_PER_CALL} ended "
        f"sessions a call), then takes the checkpoint '{state.end_checkpoint or 'ended'}'"
    )


def _finish(
    args: HookArgs,
    state: SessionState,
    path: Path | None,
    budget: float | None,
    note: Callable[[str], None],
    deadline: float | None = None,
) -> bool:
    """Publish what an ended session still owes, in order: its Claude sub-agents'
    transcripts not all sent yet (`SessionState.subagents`), the rest of its transcript
    (for about `budget` seconds together, None: all), then the session-ended message, then its
    `... ended` checkpoint (taken once, only after the end is sent; its wait bounded by
    `deadline`, see `_checkpoint`). True when nothing is
    left. Raises NotDelivered (`state` as far as it got) when nobody listens,
    Undelivered when the broker went away, or had not taken all within the wait,
    before the socket passed the end on (the end still owed); a transcript that cannot
    be read is noted and the message sent without it."""
    if state.subagents:
        until = None if budget is None else time.monotonic() + budget
        if not send_subagents(args, state, list(state.subagents), budget, note, final=True):
            return False
        close_all(_close_wait(deadline))  # passed on before the session's own (its socket)
        budget = None if until is None else max(0.0, until - time.monotonic())
    if path is not None and path.exists():
        try:
            if not transcript_messages(
                args, state, path, final=True, budget=budget, save=_saver(args, state)
            ):
                return False
        except NotDelivered:
            raise
        except Exception as exc:
            note(f"transcript not published at session end: {exc}")
    elif path is not None and state.offset:  # (never created: the agent wrote nothing)
        note(f"{path} is gone: what it held after byte {state.offset} was never published")
    if state.ending:
        _announce(
            args,
            state,
            "session.ended",
            f"{args.agent.value} session {state.session} ended ({state.ending})",
            reason=state.ending,
            messages=len(state.published),
        )
        # passed on before the end counts as sent: a broker gone meanwhile (Undelivered)
        # or frozen past the wait leaves it owed, for a later call (which the recorder
        # sees after the hole of what this one dropped: a gap)
        close_all(_close_wait(deadline))
        state.ending = ""
    if state.end_checkpoint:  # (a failure to take it is noted, not tried again)
        label, state.end_checkpoint = state.end_checkpoint, ""
        _checkpoint(args, state, label, note, deadline)
    return True


def finish_ended(args: HookArgs, deadline: float | None = None) -> None:
    """Deliver what ended sessions (of any agent) still owe the bus: the oldest
    `PENDING_PER_CALL` marks, `PENDING_BUDGET` seconds of reading (at least one read
    each), nothing more once nobody listens. A session another hook holds is left to
    it; a mark tried goes to the back of the queue. Never raises (a hook's own work is
    done by now)."""
    if publish_endpoint(args) in SILENT:
        return  # this call found nobody listening: a retry would wait for nothing
    # a SessionEnd (`deadline`) lends them only what its own steps left: they wait
    if _time_for(deadline, PENDING_BUDGET, STOP_RESERVE) < PENDING_BUDGET:
        return
    reading = time.monotonic() + PENDING_BUDGET
    for spath in pending_states(args.log_dir)[:PENDING_PER_CALL]:
        try:
            if not _finish_one(args, spath, max(0.0, reading - time.monotonic()), deadline):
                return
        except Exception as exc:
            record_failure(args.log_dir, args.event, args.agent.value, spath.stem, str(exc))


def _finish_one(args: HookArgs, spath: Path, budget: float, deadline: float | None = None) -> bool:
    """One pending session (see `finish_ended`); False when nobody listens."""
    mark = pending_path(spath)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(session_lock(spath, timeout=0))
        except TimeoutError:
            return True  # another hook is at it
        if not mark.exists():
            return True  # finished by another hook meanwhile
        os.utime(mark)  # to the back: a session that keeps failing blocks no other
        state = read_state(spath)
        if state is None and not spath.exists():  # ended before any call saved a state
            state = owed_end_state(spath)
        if state is None:
            set_pending(spath, False)  # (the failure line below says what is lost)
            raise ValueError(f"{spath} is unreadable: its session's end was never published")
        them = HookArgs(
            args.event, Agent(state.agent), args.log_dir, args.publish_endpoint, args.broker
        )

        def note(error: str) -> None:
            record_failure(args.log_dir, args.event, state.agent, state.session, error)

        # what calls that found the session busy left (an end: before this, a mark
        # beside a state without `ending` was taken as done)
        take_owed(spath, state, note)
        try:
            deliver_owed(them, spath, state, note)
            done = _finish(
                them,
                state,
                Path(state.transcript) if state.transcript else None,
                budget,
                note,
                deadline,
            )
        except NotDelivered:
            return False
        finally:
            save_state(spath, state)
        if done and not owed_marks(spath):  # (left meanwhile: the next call takes them)
            set_pending(spath, False)
        if done and state.leaving:  # a busy SessionEnd left its agent to this call
            try:
                _leave(them, note, state, deadline, spath)
            finally:
                save_state(spath, state)
    return True


def settle_owed(
    args: HookArgs, spath: Path, state: SessionState, note: Callable[[str], None]
) -> None:
    """Under the session's lock, as the call holding it lets go: the marks left during
    its hold are taken (`take_owed`), a start's or a compaction's message sent
    (`deliver_owed`), and an end a SessionEnd that found the session busy left is sent
    (`_finish`, `PENDING_BUDGET` of reading), then its agent
    deregistered and the recorder stopped if nobody is left (`_leave`): the end does
    not wait for another session's call, and the recorder is stopped only once the
    session's messages are sent. What is not sent stays in hooks/pending/ (the next
    hook call of any session). Never raises."""
    if not owed_marks(spath):
        return
    try:
        take_owed(spath, state, note)
        deliver_owed(args, spath, state, note)
        if not state.ending and not state.end_checkpoint and not state.leaving:
            return
        path = Path(state.transcript) if state.transcript else None
        if not _finish(args, state, path, PENDING_BUDGET, note):
            return  # (the rest waits in hooks/pending/, marked by the SessionEnd)
        if not owed_marks(spath):
            set_pending(spath, False)
        if state.leaving:
            _leave(args, note, state, None, spath)
    except Exception as exc:  # NotDelivered too: still marked pending, a later call sends it
        note(f"the end a busy SessionEnd left not delivered: {type(exc).__name__}: {exc}")
    finally:
        save_state(spath, state)


def _leave(
    args: HookArgs,
    note: Callable[[str], None],
    state: SessionState,
    deadline: float | None,
    held: Path | None,
) -> None:
    """Deregister (`state.registration`, and `state.leaving`, which a busy SessionEnd
    left); stop the recorder if a launcher started it, nobody is left, and no other
    hook of the folder holds its session's lock (one may still be sending to it; this
    call holds `held`'s), and then the recorder whose broker it followed, if left
    running for it alone (`stop_unused_host`; also when the folder's recorder is found
    dead, a crash under its sessions). A subscriber at the broker it hosts that is no
    recorder does not keep it running (`Peer.keeps_host`). The stop waits what `deadline` leaves
    (10 s without one): a recorder that has not stopped by then (frozen, or still
    journaling a large backlog) was sent SIGTERM and finishes its stop by itself; the
    failure line says so."""
    from recorder.launch.registry import (
        forget_owner,
        hooks_at_work,
        launch_lock,
        live_agents,
        recorder_owner,
    )

    layout = Layout(args.log_dir)
    with launch_lock(layout):
        for registration in {state.registration, state.leaving} - {""}:
            (layout.agents / registration).unlink(missing_ok=True)
        state.registration = state.leaving = ""
        owner = recorder_owner(layout)
        if live_agents(layout) or hooks_at_work(layout, held):
            return
        from recorder.launch.peers import hosted_broker_users, stop_unused_host
        from recorder.store.status import assess

        health = assess(layout)
        status = health.status
        if owner is None:
            if not health.running:
                # the folder's recorder died (or was stopped) under its sessions: the host
                # of the broker it followed, left running for it, is stopped all the same
                # (before 2026-12-08 it ran on for nobody)
                host_notes: list[str] = []
                stop_unused_host(status, layout.root, _time_for(deadline, 10.0), host_notes.append)
                if host_notes:
                    note("; ".join(host_notes))
            return
        # other folders' recorders follow the broker it hosts: stopping it would end their
        # recording without a word (before 2026-12-07 it was stopped all the same); the
        # last agent out of theirs stops it (`stop_unused_host`). A subscriber that is no
        # recorder does not keep it (before 2026-12-08 it did, for good)
        users = hosted_broker_users(status, int(owner["recorder_pid"]))
        if any(peer.keeps_host for peer in users):
            return
        from recorder.daemon.systemd import recording_unit

        if recording_unit(layout.root) is not None:  # the folder is to be recorded always
            return
        from recorder.daemon.control import stop_recorder

        notes: list[str] = []
        pid = int(owner["recorder_pid"])
        wait = _time_for(deadline, 10.0)
        if stop_recorder(
            layout,
            pid,
            owner.get("recorder_started"),
            wait,
            notes.append,
            key=owner.get("recorder_start_key"),
        ):
            forget_owner(layout)
            # it followed another folder's recorder's broker, left running for it: stopped
            # too if nobody uses it now (before 2026-12-07 only a launcher's exit did)
            host_notes = []
            stop_unused_host(status, layout.root, _time_for(deadline, 10.0), host_notes.append)
            if host_notes:
                note("; ".join(host_notes))
        elif deadline is None:
            if notes:
                note("; ".join(notes))
        else:
            said = "; ".join(n for n in notes if "did not stop within" not in n)
            note(
                f"recorder PID {pid} was sent SIGTERM but had not stopped when "
                f"{_out_of_time()}"
                + (f" ({said})" if said else "")
                + ": it finishes its stop by itself (writing all it took in first; a "
                "frozen one once it runs again), and `persist status` says when it has",
            )
