"""`persist hook EVENT --agent A`: what Claude Code and Gemini CLI run at each event.

The agent writes a JSON object on our stdin (`session_id`, `transcript_path`, `cwd`,
`hook_event_name` and the event's own fields). Whatever happens we exit 0, and stdout
carries nothing but the JSON answer the agent reads (only a SessionStart offering a
checkpoint has one); stderr stays empty too (Gemini CLI reads it when stdout is
empty). A failure is written to `<log-dir>/hooks/failures.jsonl` (or the fallback
file, see `failures`) and shows in `persist status` and `persist hooks status`.

Turn hooks run on every prompt and reply, so this module and what it imports first
are kept small: no Textual, no SQLite, zmq only when there is something to send, and
the stdlib json for the payload and the state (orjson loads dataclasses, uuid and
datetime with it: most of a start-up; it comes with the readers when lines are new).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recorder.hooks.agents import EVENTS, Agent, Role
from recorder.hooks.failures import record_failure
from recorder.hooks.state import (
    SessionState,
    StateInTheWay,
    load_state,
    owe_subagent,
    owed_marks,
    pending_states,
    save_state,
    session_lock,
    state_path,
    take_owed,
)
from recorder.store.unfinished import marked, refuse_unfinished_restore

if TYPE_CHECKING:
    from collections.abc import Callable

    from recorder.hooks.publish import NotDelivered

MAX_PAYLOAD = 64 << 20  # bytes of stdin read; an agent sends a few hundred

# The classes of the turn path are plain classes with __slots__, not dataclasses:
# importing dataclasses (and inspect with it) is a fifth of a turn hook's start-up.


class HookArgs:
    __slots__ = ("agent", "broker", "event", "log_dir", "publish_endpoint", "restore")

    def __init__(
        self,
        event: str,
        agent: Agent,
        log_dir: Path,
        publish_endpoint: str | None = None,
        broker: str | None = None,
        restore: str | None = None,  # the no-terminal policy for restore: latest, fresh, cancel
    ) -> None:
        self.event = event
        self.agent = agent
        self.log_dir = log_dir
        self.publish_endpoint = publish_endpoint
        self.broker = broker
        self.restore = restore


class Payload:
    """The agent's stdin, the fields we use (`raw` holds all of it)."""

    __slots__ = ("cwd", "event", "raw", "session", "transcript")

    def __init__(
        self, session: str, transcript: str, cwd: str, event: str, raw: dict[str, Any]
    ) -> None:
        self.session = session
        self.transcript = transcript
        self.cwd = cwd
        self.event = event
        self.raw = raw

    @classmethod
    def parse(cls, data: bytes, event: str) -> Payload:
        obj = json.loads(data) if data.strip() else None
        if not isinstance(obj, dict):
            raise ValueError("the hook's stdin is not a JSON object")
        session = obj.get("session_id")
        if not isinstance(session, str) or not session:
            raise ValueError("the hook's stdin has no session_id")
        transcript = obj.get("transcript_path")
        cwd = obj.get("cwd")
        name = obj.get("hook_event_name")
        return cls(
            session,
            transcript if isinstance(transcript, str) else "",
            cwd if isinstance(cwd, str) else "",
            name if isinstance(name, str) and name else event,
            obj,
        )

    def text(self, key: str) -> str:
        value = self.raw.get(key)
        return value if isinstance(value, str) else ""


def parse_args(argv: list[str]) -> HookArgs:
    """A small parser of our own (argparse and the CLI groups cost start-up time).
    Raises ValueError naming the bad argument."""
    values: dict[str, str] = {}
    flags = set()
    positional = []
    it = iter(argv)
    for arg in it:
        if arg in ("--agent", "--log-dir", "--publish-endpoint", "--broker"):
            value = next(it, None)
            if value is None:
                raise ValueError(f"{arg} needs a value")
            values[arg] = value
        elif arg == "--restore":
            flags.add(arg)
        elif arg.startswith("--restore="):
            values["--restore"] = arg.split("=", 1)[1]
        elif arg.startswith("--"):
            raise ValueError(f"unknown option {arg}")
        else:
            positional.append(arg)
    if len(positional) != 1:
        raise ValueError("persist hook takes one EVENT")
    try:
        agent = Agent(values.get("--agent", ""))
    except ValueError:
        raise ValueError("--agent must be claude or gemini") from None
    restore = values.get("--restore") or ("latest" if "--restore" in flags else None)
    if "--log-dir" in values:  # always, in the installed commands
        log_dir = Path(values["--log-dir"]).expanduser()
    else:
        from recorder.store.layout import default_log_dir

        log_dir = default_log_dir()
    return HookArgs(
        positional[0],
        agent,
        log_dir.absolute(),
        values.get("--publish-endpoint"),
        values.get("--broker"),
        restore,
    )


USAGE = """usage: persist hook EVENT --agent claude|gemini [--log-dir DIR]
                    [--publish-endpoint EP] [--broker EP] [--restore[=latest|fresh|cancel]]

Run by Claude Code and Gemini CLI (see `persist hooks install`): reads the agent's JSON
on stdin, always exits 0, prints nothing but the SessionStart answer; failures go to
<log-dir>/hooks/failures.jsonl and `persist status`.
"""


def main(argv: list[str], epilog: str = "") -> int:
    """Run one hook; always 0 (see the module docstring). `epilog` ends the help (the
    examples of `persist hook`, kept with every command's in `recorder.cli.main`)."""
    if "-h" in argv or "--help" in argv:
        sys.stdout.write(USAGE + (f"\n{epilog}\n" if epilog else ""))
        return 0
    real_err = sys.stderr
    sys.stderr = captured = io.StringIO()  # nothing of ours reaches the agent
    try:  # nor anything written below Python (libzmq, interpreter shutdown)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    except OSError:
        pass
    args: HookArgs | None = None
    payload: Payload | None = None
    try:
        args = parse_args(argv)
        data = sys.stdin.buffer.read(MAX_PAYLOAD)
        payload = Payload.parse(data, args.event)
        answer = handle(args, payload)
        if answer:
            out = sys.stdout
            out.write(json.dumps(answer) + "\n")
            out.flush()
    except BaseException as exc:  # a hook never breaks the agent, whatever went wrong
        _fail(args, payload, argv, f"{type(exc).__name__}: {exc}")
    finally:
        publish = sys.modules.get("recorder.hooks.publish")  # imported only if it sent
        if publish is not None:
            try:
                publish.close_all()  # what this call sent is taken by the broker (or said)
            except Exception as exc:
                _fail(args, payload, argv, f"{type(exc).__name__}: {exc}")
        notes = captured.getvalue().strip()
        sys.stderr = real_err
        if notes and args is not None:
            _fail(args, payload, argv, f"said: {notes[-1000:]}")
    return 0


def _fail(args: HookArgs | None, payload: Payload | None, argv: list[str], error: str) -> None:
    from recorder.store.layout import default_log_dir

    log_dir = args.log_dir if args is not None else default_log_dir()
    event = args.event if args is not None else " ".join(argv[:1])
    agent = args.agent.value if args is not None else "?"
    session = payload.session if payload is not None else ""
    record_failure(log_dir, event, agent, session, error)


def handle(args: HookArgs, payload: Payload) -> dict[str, Any] | None:
    if marked(args.log_dir):  # a half-restored backup: nothing is written into it
        refuse_unfinished_restore(Path(args.log_dir))
    role = EVENTS[args.agent].get(args.event)
    if role is None:
        raise ValueError(f"{args.event} is not a {args.agent.value} event persist handles")
    deadline = None  # a SessionEnd's steps share the timeout the agent gives it
    if role is Role.TURN:
        turn(args, payload)
        answer = None
    else:
        from recorder.hooks import lifecycle

        deadline = lifecycle.end_deadline() if role is Role.END else None
        answer = lifecycle.handle(role, args, payload, deadline)
    if pending_states(args.log_dir):  # ended sessions that still owe the bus something
        from recorder.hooks.lifecycle import finish_ended

        finish_ended(args, deadline)
    return answer


def publish_endpoint(args: HookArgs) -> str:
    """The hosted broker's publisher endpoint if the recorder hosts one, else ours, else
    the endpoint the recorder listens at (`--bind`) when it follows no broker whose
    publisher side we know (none, or not the default one), else the default.
    (status.json read as a plain object: `StatusSnapshot` costs a turn hook ~10 ms.)"""
    from recorder.bus.endpoints import DEFAULT_PUBLISH, DEFAULT_SUBSCRIBE
    from recorder.store.fsutil import read_json_object
    from recorder.store.layout import Layout

    status = read_json_object(Layout(args.log_dir).status) or {}
    hosted = status.get("embedded_broker")
    if isinstance(hosted, str) and hosted:
        return hosted
    if args.publish_endpoint:
        return args.publish_endpoint
    links = status.get("endpoints")
    bound = [
        e["endpoint"]
        for e in (links if isinstance(links, list) else ())
        if isinstance(e, dict) and e.get("mode") == "bind" and isinstance(e.get("endpoint"), str)
    ]
    if bound and status.get("broker") != DEFAULT_SUBSCRIBE:
        return str(bound[0])
    return DEFAULT_PUBLISH


TURN_BUDGET = 2.0  # seconds a turn hook goes on reading a large backlog (then: next call)


def transcript_messages(
    args: HookArgs,
    state: SessionState,
    path: Path,
    *,
    final: bool = False,
    settled: bool = False,
    answer: str = "",
    budget: float | None = TURN_BUDGET,
    save: Callable[[], None] | None = None,
) -> bool:
    """Publish what `path` gained since `state`, and move `state` past it, a chunk
    (`MAX_READ`) at a time for about `budget` seconds (None: all of it, as at session
    end and before compaction); True when nothing is left to read. `final`,
    `settled` and `answer` say whether the last answer is complete (`read_new`).
    `save` keeps the state after each chunk but the last (the caller saves that), so
    a hook killed meanwhile never sends a chunk twice. Raises NotDelivered (`state`
    as after the last chunk sent: the next call sends the rest) when nobody listens."""
    from recorder.hooks.transcript import read_new

    deadline = time.monotonic() + (budget or 0.0)
    while True:
        delta = read_new(args.agent, path, state, final=final, settled=settled, answer=answer)
        if delta.messages:  # the publisher (and zmq) only when there is something to send
            from recorder.hooks.publish import Outgoing, message_body, send, topic_for

            out = []
            for m in delta.messages:
                revision = m.uuid in delta.revised  # its envelope id names this version
                mid = f"{m.uuid}#{delta.versions[m.uuid]}" if revision else m.uuid
                body = message_body(args.agent.value, m, str(path), revision=revision)
                out.append(Outgoing(mid, body))
            state.seq = send(  # raises NotDelivered: the state stays, the next call retries
                publish_endpoint(args),
                state.publisher,
                state.seq,
                args.agent.value,
                topic_for(args.agent.value, state.session),
                out,
            )
        delta.taken(state, path)
        if not delta.more:
            return True
        if budget is not None and time.monotonic() >= deadline:
            return False
        if save is not None:
            save()


def subagent_state_path(args: HookArgs, session: str, agent_id: str) -> Path:
    """Where a Claude sub-agent's own state is (its session `<session>.<agent id>`)."""
    return state_path(args.log_dir, args.agent.value, f"{session}.{agent_id}")


def send_subagents(
    args: HookArgs,
    state: SessionState,
    which: list[str],
    budget: float | None,
    note: Callable[[str], None],
    *,
    final: bool = False,
    tried: list[str] | None = None,
) -> bool:
    """Send what the sub-agents `which` (ids in `state.subagents`, the session's owed
    ones, in that order) have not sent yet of their transcripts, each under its own
    lock and state, for about `budget` seconds together (None: all; the first tried
    reads at least once); each one sent whole leaves `state.subagents` (the caller holds
    the session's lock and saves `state`). A file gone is noted and no longer owed; one
    that cannot be read is noted, and stays owed unless `final` (the session's end).
    True when none of them is left. Raises NotDelivered (those not sent stay owed; the
    last id appended to `tried` is the one whose send failed)."""
    deadline = None if budget is None else time.monotonic() + budget
    began = False
    for agent_id in which:
        transcript = state.subagents.get(agent_id)
        if transcript is None:
            continue
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if left == 0.0 and began:
            return False  # the rest waits for the next call
        began = True
        spath = subagent_state_path(args, state.session, agent_id)
        path = Path(transcript)
        with session_lock(spath):
            sub = load_state(spath, args.agent.value, f"{state.session}.{agent_id}")
            if not path.exists():
                if sub.offset:
                    note(
                        f"sub-agent {agent_id}'s transcript {path} is gone: what it held after "
                        f"byte {sub.offset} was never published"
                    )
                del state.subagents[agent_id]  # (never created: the sub-agent wrote nothing)
                continue
            before = (sub.offset, sub.seq, len(sub.published), len(sub.versions))
            if tried is not None:
                tried.append(agent_id)
            unreadable = False
            try:
                done = transcript_messages(
                    args,
                    sub,
                    path,
                    final=final,
                    settled=True,  # a finished sub-agent: its answers are complete
                    budget=left,
                    save=partial(save_state, spath, sub),
                )
            except Exception as exc:
                if _nobody_listened(exc):
                    raise
                again = "not tried again" if final else "the session's next hook call tries again"
                note(
                    f"sub-agent {agent_id}'s transcript {path} not published (from byte "
                    f"{sub.offset}): {type(exc).__name__}: {exc}; {again}"
                )
                done, unreadable = final, not final
            finally:
                after = (sub.offset, sub.seq, len(sub.published), len(sub.versions))
                if after != before or not os.path.exists(spath):
                    save_state(spath, sub)
        if unreadable:
            continue  # (it stays owed; the others still go)
        if not done:
            return False  # out of time: the rest waits for the next call
        del state.subagents[agent_id]
    return not any(a in state.subagents for a in which)


def owed_subagents(args: HookArgs, state: SessionState, failed: tuple[str, int] = ("", 0)) -> str:
    """The sub-agent transcripts `state` still owes, in words ("" if none); `failed`: the
    one whose send just failed, and how many messages that send had."""
    said = []
    for agent_id in state.subagents:
        sub = load_state(
            subagent_state_path(args, state.session, agent_id),
            args.agent.value,
            f"{state.session}.{agent_id}",
        )
        count = f"{failed[1]} message(s) of " if agent_id == failed[0] else ""
        said.append(f"{count}sub-agent {agent_id}'s transcript from byte {sub.offset}")
    return "; ".join(said)


def turn(args: HookArgs, payload: Payload) -> None:
    """Publish what the transcript gained. A Claude Code SubagentStop names a finished
    sub-agent's transcript: it is owed by its session (`SessionState.subagents`) until
    all of it is sent, by this call or a later one of the session (its turns, its end,
    the pending path of an ended session): the sub-agents owed from earlier calls go
    first, then the session's own transcript, then this call's sub-agent."""
    if not payload.transcript:
        raise ValueError(f"{args.event} without a transcript_path")
    # Claude Code's Stop ends a turn and names the text of its last answer (older
    # versions do not: then the Stop alone says the answer is complete)
    said = payload.text("last_assistant_message") if args.event == "Stop" else ""
    ended_turn = args.event == "Stop" and not said.strip()
    path = Path(payload.transcript)
    agent_id = payload.text("agent_id")
    sub = payload.text("agent_transcript_path") if agent_id else ""  # Claude Code SubagentStop
    spath = state_path(args.log_dir, args.agent.value, payload.session)

    def note(error: str) -> None:
        record_failure(args.log_dir, args.event, args.agent.value, payload.session, error)

    with contextlib.ExitStack() as held:
        try:
            held.enter_context(session_lock(spath))
        except TimeoutError as exc:
            if not sub:
                raise  # (nothing lost: the state's offsets make the next call send it)
            _owe_subagent_or_go_on(held, spath, agent_id, sub, exc, note)
        state = load_state(spath, args.agent.value, payload.session)
        take_owed(spath, state, note)  # what calls that found the session busy left
        if state.announce:  # a start or a compaction such a call could not send: first
            from recorder.hooks.lifecycle import deliver_owed

            deliver_owed(args, spath, state, note)
        earlier = [a for a in state.subagents if a != agent_id]
        if sub and state.subagents.get(agent_id) != sub:
            # owed before anything is tried: a hook killed meanwhile leaves it owed
            state.subagents[agent_id] = sub
            save_state(spath, state)
        before = (state.offset, state.seq, len(state.published), len(state.versions))
        owed = dict(state.subagents)
        tried: list[str] = []
        reading = time.monotonic() + TURN_BUDGET  # the sub-agents' share of the call
        unsent: Exception | None = None  # the session's own, while its sub-agent goes on
        try:
            if earlier:
                send_subagents(args, state, earlier, TURN_BUDGET, note, tried=tried)
            tried.append("")  # the session's own transcript
            try:
                if path.exists():  # Claude Code creates the file at the first message
                    transcript_messages(
                        args,
                        state,
                        path,
                        settled=ended_turn,
                        answer=said,
                        save=partial(save_state, spath, state),
                    )
            except Exception as exc:
                if _nobody_listened(exc) or not sub:
                    raise  # (the sub-agent stays owed: nobody would hear it either)
                unsent = exc  # an unreadable transcript: the sub-agent's is still sent
            if sub:
                left = max(0.0, reading - time.monotonic())  # (it reads at least once)
                send_subagents(args, state, [agent_id], left, note, tried=tried)
        except Exception as exc:
            if unsent is not None:  # (said too, before what this one says)
                note(f"{type(unsent).__name__}: {unsent}")
            if _nobody_listened(exc):
                raise _owed(args, state, exc, tried[-1]) from None  # type: ignore[arg-type]
            raise
        finally:
            after = (state.offset, state.seq, len(state.published), len(state.versions))
            created = path.exists() and not os.path.exists(spath)
            if after != before or state.subagents != owed or created:
                save_state(spath, state)
        if owed_marks(spath):  # left during this hold (a SessionEnd that found it busy)
            from recorder.hooks.lifecycle import settle_owed

            settle_owed(args, spath, state, note)
        if unsent is not None:
            raise unsent


def _owe_subagent_or_go_on(
    held: contextlib.ExitStack,
    spath: Path,
    agent_id: str,
    sub: str,
    busy: TimeoutError,
    note: Callable[[str], None],
) -> None:
    """A SubagentStop that found its session busy: its sub-agent marked owed beside the
    state (`owe_subagent`), then the lock tried once more (its holder may have let go
    before the mark was there: this call then goes on, and takes the mark itself).
    Raises TimeoutError saying what is owed and who sends it."""
    try:
        owe_subagent(spath, agent_id, sub)
        marked = True
    except (StateInTheWay, OSError) as exc:  # a named pipe at the folder, a full disk
        note(str(exc) if isinstance(exc, StateInTheWay) else f"{type(exc).__name__}: {exc}")
        marked = False
    try:
        held.enter_context(session_lock(spath, timeout=0))
    except TimeoutError:
        if not marked:
            raise TimeoutError(
                f"{busy}: sub-agent {agent_id}'s transcript {sub} could not be marked owed "
                "(the line before says what to move): nothing sends it later"
            ) from None
        raise TimeoutError(
            f"{busy}: sub-agent {agent_id}'s transcript {sub} is owed by this session (marked "
            f"in hooks/sessions/{spath.name}.owed/): this session's next hook call sends it "
            "(a turn or its end; if the session has ended meanwhile, the next hook call of "
            "any session)"
        ) from None


def _nobody_listened(exc: Exception) -> bool:
    """Whether `exc` is a send nobody heard (NotDelivered: publish is imported then)."""
    publish = sys.modules.get("recorder.hooks.publish")
    return publish is not None and isinstance(exc, publish.NotDelivered)


def _owed(args: HookArgs, state: SessionState, exc: NotDelivered, failed: str) -> NotDelivered:
    """`exc` saying what waits: the session's messages (`failed` "") and the sub-agents'
    transcripts (`failed`: the one whose send failed)."""
    if not state.subagents:
        return exc
    waits = owed_subagents(args, state, (failed, exc.count))
    if not failed:
        waits = f"{exc.count} message(s) of its transcript; {waits}"
    exc.args = (f"{exc.nobody()} (these wait for this session's next hook call: {waits})",)
    return exc
