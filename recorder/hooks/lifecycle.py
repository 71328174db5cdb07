"""Session start, compaction and end, for `persist hook` (turns are in `run`).

- start: a recorder for the log folder (started detached, as the launcher does, if
  none is healthy), the agent registered (its process is the hook's nearest ancestor
  that is not a shell), a session-started message on the bus, a checkpoint named
  after the session. The checkpoint chosen in `persist launch`'s menu, or with
  `--restore` the one the no-terminal policy picks, is offered to the agent as
  context (a summary and the restore transcript).
- compaction: what the transcript gained is published, then a verified copy of the
  transcript as it is now (`recorder.sources.copies`), a message naming it, and a
  checkpoint: the detail compaction drops stays on disk and on the bus.
- end: the rest of the transcript, a session-ended message, a final checkpoint, the
  agent deregistered; the recorder is stopped only if a launcher (or a start hook)
  started it and no registered agent is left.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from recorder.hooks.agents import Role
from recorder.hooks.failures import record_failure
from recorder.hooks.publish import Outgoing, send, topic_for
from recorder.hooks.run import HookArgs, Payload, publish_endpoint, transcript_messages
from recorder.hooks.state import SessionState, load_state, save_state, session_lock, state_path
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


def handle(role: Role, args: HookArgs, payload: Payload) -> dict[str, Any] | None:
    spath = state_path(args.log_dir, args.agent.value, payload.session)
    with session_lock(spath):
        state = load_state(spath, args.agent.value, payload.session)
        try:
            if role is Role.START:
                return start(args, payload, state)
            if role is Role.COMPACT:
                compact(args, payload, state)
            elif role is Role.END:
                end(args, payload, state)
            return None
        finally:
            save_state(spath, state)


def _saver(args: HookArgs, state: SessionState) -> Callable[[], None]:
    """Keeps `state` where `handle` keeps it (between the chunks of a long transcript)."""
    return partial(save_state, state_path(args.log_dir, args.agent.value, state.session), state)


def _note(args: HookArgs, payload: Payload, error: str) -> None:
    """A step that failed while the others went on: written down, never raised."""
    record_failure(args.log_dir, args.event, args.agent.value, payload.session, error)


def _announce(args: HookArgs, state: SessionState, kind: str, text: str, **extra: Any) -> None:
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
    )


def _checkpoint(args: HookArgs, payload: Payload, state: SessionState, label: str) -> str | None:
    """A checkpoint that holds what this session published last (the message just
    announced): the recorder answers once it has that message."""
    from recorder.daemon.control import request_checkpoint
    from recorder.errors import CheckpointError

    after = (state.publisher, state.seq) if state.seq else None
    try:
        return request_checkpoint(Layout(args.log_dir), label, after=after).id
    except (CheckpointError, OSError) as exc:
        _note(args, payload, f"no checkpoint '{label}': {exc}")
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
        stderr=io.StringIO(),
    )


def _short(session: str) -> str:
    return session[:8]


# -- start --------------------------------------------------------------------------------
def start(args: HookArgs, payload: Payload, state: SessionState) -> dict[str, Any] | None:
    from recorder.launch.registry import launch_lock, register_agent

    source = payload.text("source") or payload.text("trigger") or "startup"
    offer = None
    if source == "startup":  # before our own checkpoint is taken
        launched, offer = _launch_choice(args, payload)
        if not launched and args.restore:
            offer = _choose(args, payload)
    launcher = _launcher(args)
    launcher.agent = args.agent.value
    launcher.ensure_recorder()
    layout = Layout(args.log_dir)
    with launch_lock(layout):
        state.registration = register_agent(
            layout,
            args.agent.value,
            launcher.recorder_pid,
            launcher.started_recorder,
            pid=agent_process(),
            key=state.publisher,
        ).name
    if not state.started:
        state.started = time.time()
    text = f"{args.agent.value} session {state.session} started ({source})"
    if payload.cwd:
        text += f" in {payload.cwd}"
    try:
        _announce(
            args,
            state,
            "session.started",
            text,
            source=source,
            cwd=payload.cwd,
            transcript=payload.transcript,
            recorder_started=launcher.started_recorder,
            **(
                {"model": payload.raw["model"]} if isinstance(payload.raw.get("model"), str) else {}
            ),
        )
    except Exception as exc:
        _note(args, payload, f"session-started message not sent: {exc}")
    _checkpoint(args, payload, state, f"{args.agent.value} {_short(state.session)} started")
    if offer is None:
        return None
    return answer(*offer)


def _launch_choice(args: HookArgs, payload: Payload) -> tuple[bool, tuple[str, str] | None]:
    """What `persist launch` chose for the agent it started for this log folder
    (`PERSIST_*`, which the agent passes on to its hooks): (True, the chosen
    checkpoint's context, or None for a fresh start); (False, None) when the agent was
    not started that way. The person's choice in the launch menu wins over the
    installed no-terminal policy. An agent started by that agent (its own tool running
    `claude -p`) inherits the variables but was not launched: it is left alone."""
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
    from recorder.export.restore import Bundle
    from recorder.store.checkpoints import resolve_checkpoint

    try:
        bundle = Bundle.load(Path(env.get("PERSIST_RESTORE_DIR", "")))
        cp = resolve_checkpoint(Layout(args.log_dir), bundle.checkpoint_id)
    except (PersistError, OSError) as exc:
        _note(args, payload, f"the checkpoint persist launch chose is not offered: {exc}")
        return True, None
    return True, (cp.id, restore_context(cp, bundle))


def _choose(args: HookArgs, payload: Payload) -> tuple[str, str] | None:
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
    return cp.id, restore_context(cp, bundle)


def restore_context(cp: Any, bundle: Any) -> str:
    """A short summary of the checkpoint and where its conversation is."""
    m = bundle.manifest
    integrity = m["integrity"]
    names = ", ".join(sorted(m.get("participants") or {})[:8]) or "none recorded"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(cp.created))
    lines = [
        "agent-persist: a checkpoint of the agent bus is available to continue from.",
        f"Checkpoint {cp.id} ({cp.label or cp.reason}), taken {when}: "
        f"{m.get('messages', cp.messages)} messages; participants: {names}.",
        f"Integrity: {'verified' if integrity.get('verified') else 'NOT verified'}"
        + (f" ({'; '.join(integrity.get('problems') or [])})" if not integrity.get("ok") else ""),
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
def compact(args: HookArgs, payload: Payload, state: SessionState) -> None:
    path = Path(payload.transcript) if payload.transcript else None
    if path is not None and path.exists():
        try:
            transcript_messages(args, state, path, whole=True, save=_saver(args, state))
        except Exception as exc:
            _note(args, payload, f"transcript not published before compaction: {exc}")
    copy = _protect(args, payload, path)
    trigger = payload.text("trigger") or "auto"
    try:
        _announce(
            args,
            state,
            "session.compacting",
            f"{args.agent.value} session {state.session} is about to compact ({trigger})",
            trigger=trigger,
            transcript=payload.transcript,
            **copy,
        )
    except Exception as exc:
        _note(args, payload, f"compaction message not sent: {exc}")
    label = f"{args.agent.value} {_short(state.session)} before compaction"
    cp = _checkpoint(args, payload, state, label)
    if cp is not None and copy:
        _remember_copy(args.log_dir, cp, state.session, copy)


def _protect(args: HookArgs, payload: Payload, path: Path | None) -> dict[str, Any]:
    """A verified copy of the transcript in `sessions/copies/`; what it is, or {}."""
    if path is None or not path.is_file():  # (a FIFO's copy would wait forever)
        _note(args, payload, f"no transcript to copy before compaction ({payload.transcript!r})")
        return {}
    from recorder.sources.copies import load_manifest, protect, session_dir, verify
    from recorder.sources.model import Session, Source

    layout = Layout(args.log_dir)
    session = Session(Source(args.agent.value), payload.session, path, project_path=payload.cwd)
    try:
        protect(layout, session)
        folder = session_dir(layout, session.key)
        problems = verify(folder)
    except Exception as exc:
        _note(args, payload, f"transcript copy failed: {exc}")
        return {}
    if problems:
        _note(args, payload, f"transcript copy does not verify: {'; '.join(problems)}")
    manifest = load_manifest(folder) or {}
    return {
        "copy": str(folder),
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
def end(args: HookArgs, payload: Payload, state: SessionState) -> None:
    path = Path(payload.transcript) if payload.transcript else None
    if path is not None and path.exists():
        try:
            transcript_messages(args, state, path, final=True, save=_saver(args, state))
        except Exception as exc:
            _note(args, payload, f"transcript not published at session end: {exc}")
    reason = payload.text("reason") or "exit"
    try:
        _announce(
            args,
            state,
            "session.ended",
            f"{args.agent.value} session {state.session} ended ({reason})",
            reason=reason,
            messages=len(state.published),
        )
    except Exception as exc:
        _note(args, payload, f"session-ended message not sent: {exc}")
    _checkpoint(args, payload, state, f"{args.agent.value} {_short(state.session)} ended")
    _leave(args, payload, state)


def _leave(args: HookArgs, payload: Payload, state: SessionState) -> None:
    """Deregister; stop the recorder if a launcher started it and nobody is left."""
    from recorder.launch.registry import forget_owner, launch_lock, live_agents, recorder_owner

    layout = Layout(args.log_dir)
    with launch_lock(layout):
        if state.registration:
            (layout.agents / state.registration).unlink(missing_ok=True)
            state.registration = ""
        owner = recorder_owner(layout)
        if owner is None or live_agents(layout):
            return
        from recorder.daemon.control import stop_recorder

        notes: list[str] = []
        if stop_recorder(
            layout, int(owner["recorder_pid"]), owner.get("recorder_started"), 10.0, notes.append
        ):
            forget_owner(layout)
        elif notes:
            _note(args, payload, "; ".join(notes))
