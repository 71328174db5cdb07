"""`persist launch` and `persist demo`."""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

from recorder.bus.endpoints import DEFAULT_PUBLISH, DEFAULT_SUBSCRIBE
from recorder.cli.common import (
    add_log_dir,
    add_redact,
    add_scope,
    connect_endpoint,
    count,
    endpoint,
    fail,
    non_negative,
    positive,
    say,
    scope_of,
)


# -- launch / restore / replay / export / service / demo --------------------------------
def cmd_launch(args: argparse.Namespace) -> int:
    from recorder.cli.tools import bundle_not_written
    from recorder.errors import BundleNotWritten, LaunchError
    from recorder.launch.launcher import LAUNCHER_PID_ENV, PersistenceLauncher
    from recorder.launch.run_agent import run_agent

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        return fail("nothing to launch: persist launch [--agent NAME] -- COMMAND [ARGS...]", 2)
    agent = args.agent or os.path.basename(command[0])
    from recorder.launch.selection import Selection
    from recorder.launch.sessions import ResumeError, agent_source, own_choice

    scope = scope_of(args)
    source = agent_source(command)
    if args.session is not None and source is None:
        return fail("--session resumes claude, gemini or codex: name one as COMMAND", 2)
    if args.at is not None and args.session is None:
        return fail("--at needs --session", 2)
    chosen = None
    if args.session is not None:  # the choice is made: no menu, no policy
        key = args.session if ":" in args.session else f"{source}:{args.session}"
        chosen = Selection.resume(args.log_dir, key, [], "", at=args.at, agent=agent)
    decided = own_choice(source, command) if source is not None and chosen is None else None
    if decided is not None:  # `claude -c`, `codex exec ...`: run as it is, no menu
        say(f"{command[0]} {decided} decides what runs: no launch menu")
        chosen = Selection.fresh(args.log_dir, agent)
    try:
        launcher = PersistenceLauncher(
            args.log_dir,
            broker=args.broker,
            publish_endpoint=args.publish_endpoint,
            embedded=args.embedded,
            no_tty_policy=args.no_tty_policy,
            start_timeout=args.wait,
            restore_scope=scope,
            agent_command=command if source is not None else None,
            chosen=chosen,
            redact=args.redact,
        )
    except ValueError as exc:
        return fail(str(exc), 2)

    leaving: list[int] = []

    def leave(signum: int, _frame: object) -> None:  # before the agent runs: clean exit step
        # once: a second SIGTERM (GNU timeout signals the group too) while the first is
        # acted on cut the recorder's stop short, its SIGKILL for a frozen one skipped
        if leaving:
            return
        leaving.append(signum)
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, leave) for sig in (signal.SIGTERM, signal.SIGHUP)}
    ran: list[bool] = []  # the agent's process started: its exit is worth a checkpoint

    def started() -> None:
        ran.append(True)

    try:
        try:
            result = launcher.on_agent_connected(agent)
        except ResumeError as exc:
            return fail(f"cannot resume: {exc}")
        except LaunchError as exc:
            return fail(f"cannot start persistence: {exc}")
        except BundleNotWritten as exc:
            return fail(bundle_not_written(exc, launcher.layout.restore))
        finally:
            for sig, handler in previous.items():  # ignored still once one ends the launch
                signal.signal(sig, signal.SIG_IGN if leaving else handler)
        if result.cancelled:
            say(f"launch cancelled ({result.reason}); {command[0]} not started")
            return 1
        if result.bundle is not None:
            say(
                f"restoring {result.checkpoint_id} for {agent} "
                f"({result.bundle.manifest['messages']} messages, {result.bundle.jsonl})"
            )
            if source is not None and result.resumed is None:
                unheard = _unheard(source.value, Path(result.log_dir), result.bundle.transcript)
                if unheard:
                    say(unheard)
        env = {**os.environ, **result.env()}
        if decided is None:  # else nobody chose: the agent's start hook keeps its policy
            env[LAUNCHER_PID_ENV] = str(os.getpid())
        if result.resumed is not None:
            plan, fork = result.resumed.plan, result.resumed.fork
            if fork is not None:
                say(
                    f"forked {plan.key} at message {fork.at.seq} into {fork.path} "
                    f"({fork.messages} messages, read back)"
                )
            say(f"running {plan.shell}")
            return run_agent(plan.argv, env, plan.cwd, started=started)
        return run_agent(command, env, started=started)
    finally:  # whatever happens here, the exit code stays the agent's
        try:
            outcome = launcher.on_agent_exit(agent_ran=bool(ran))
        except (LaunchError, OSError) as exc:  # never a traceback, never exit 1 instead
            say(f"at the agent's exit: {exc}")
        else:
            if outcome.worth_saying:
                say(outcome.reason)


def _unheard(source: str, log_dir: Path, transcript: Path) -> str:
    """What to tell the person when the agent will not hear of the checkpoint they
    chose (it reads no `PERSIST_*` variable; our start hook offers it the checkpoint),
    or "" when it will."""
    if source == "codex":
        return f"codex reads no PERSIST_* variable and has no hooks: point it at {transcript}"
    from recorder.hooks.agents import Agent, Scope, settings_path
    from recorder.hooks.settings import claude_off, start_hook_for, start_hook_off

    if start_hook_for(Agent(source), log_dir, Path.cwd()):
        return ""
    user = settings_path(Agent.CLAUDE, Scope.USER)
    off = claude_off(user, Path.cwd()) if source == "claude" else None
    if off is not None and off.managed:  # installed or not: Claude Code runs none of ours
        return (
            f"claude will not run our hooks ({off.text}), so it is not offered the "
            f"checkpoint: point it at {transcript}"
        )
    if off is not None:
        return (
            f"claude runs no hooks (disableAllHooks is true in {off.file}), so it is not "
            f"offered the checkpoint: point it at {transcript}"
        )
    why = start_hook_off(Agent(source), log_dir, Path.cwd())
    if why is not None:  # installed, but not run here (a folder Gemini CLI does not trust)
        return (
            f"{source} will not run our start hook ({why}), so it is not offered the "
            f"checkpoint: point it at {transcript}"
        )
    return (
        f"{source} reads no PERSIST_* variable: with our hooks (persist hooks install "
        f"{source}) it is offered the checkpoint when it starts; now, point it at {transcript}"
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from recorder.errors import LaunchError
    from recorder.launch.demo import DemoError, run_demo

    if args.agents:
        from recorder.hooks.demo import run_agents_demo

        try:
            run_agents_demo(
                Path(args.dir) if args.dir else None, open_tui=False if args.no_tui else None
            )
        except (DemoError, LaunchError, OSError) as exc:
            return fail(str(exc))
        return 0
    try:
        run_demo(
            Path(args.dir) if args.dir else None,
            pace=0 if args.fast else args.pace,
            open_tui=False if args.no_tui else None,
            keep_running=args.keep_running,
        )
    except (DemoError, LaunchError, OSError) as exc:
        return fail(str(exc))
    return 0


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    p = sub.add_parser(
        "launch",
        help="start persistence for an agent, offer its history, then run it",
        description="Make sure a recorder runs, show the launch menu (or apply the "
        "no-terminal policy), write the restore bundle, then run COMMAND with "
        "PERSIST_LOG_DIR, PERSIST_CHECKPOINT and PERSIST_RESTORE_FILE in its environment. "
        "Signals are forwarded; the exit code is COMMAND's; quitting the menu does not "
        "run COMMAND (exit 1).",
    )
    p.add_argument("--agent", help="the agent's name (default: the command's name)")
    add_log_dir(p)
    p.add_argument(
        "--broker",
        type=connect_endpoint,
        help=f"broker's subscriber endpoint (default: the running recorder's, else "
        f"{DEFAULT_SUBSCRIBE})",
    )
    p.add_argument(
        "--publish-endpoint",
        type=endpoint,
        help="where publishers connect, the embedded broker binds it (default: the running "
        f"recorder's embedded broker, else {DEFAULT_PUBLISH})",
    )
    p.add_argument(
        "--embedded",
        choices=("auto", "yes", "no"),
        default="auto",
        help="host the broker in the recorder (auto: when none answers)",
    )
    p.add_argument(
        "--no-tty-policy",
        choices=("fresh", "latest", "cancel"),
        default=None,
        help="without a terminal: fresh (default, or $PERSIST_NO_TTY_POLICY), "
        "latest checkpoint, or cancel",
    )
    p.add_argument("--wait", type=positive, default=10.0, help="seconds for the recorder to start")
    add_scope(p, since=False)
    p.add_argument(
        "--session",
        metavar="SESSION",
        help="claude/gemini/codex: resume this session of the agent without the menu "
        "(id, source:id or id prefix)",
    )
    p.add_argument(
        "--at",
        type=count,
        metavar="MESSAGE",
        help="with --session: fork it at this message number first, then resume the fork",
    )
    add_redact(p)
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    p.set_defaults(func=cmd_launch)

    p = sub.add_parser("demo", help="a recorded multi-agent conversation in seconds")
    p.add_argument("--dir", help="demo folder (default ~/.local/share/agent-persist/demo)")
    p.add_argument("--pace", type=non_negative, default=0.06, help="seconds between messages")
    p.add_argument("--fast", action="store_true", help="no pauses")
    p.add_argument("--no-tui", action="store_true", help="print a summary instead of the TUI")
    p.add_argument("--keep-running", action="store_true", help="leave the recorder running")
    p.add_argument(
        "--agents",
        action="store_true",
        help="Claude Code and Gemini CLI through their hooks, with sample payloads "
        "(default folder ~/.local/share/agent-persist/demo-agents)",
    )
    p.set_defaults(func=cmd_demo)
