"""`persist hooks install|uninstall|status` and `persist hook EVENT` (see recorder.hooks)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from recorder.cli.common import add_log_dir, connect_endpoint, say, shown
from recorder.hooks.agents import Agent, Scope, settings_path
from recorder.hooks.settings import (
    Change,
    HookCommand,
    claude_managed_files,
    inspect,
    install,
    install_options,
    log_dir_of,
    uninstall,
)


def _program() -> tuple[str, ...]:
    """How the agent should run us: the `persist` beside this interpreter, else -m."""
    script = Path(sys.executable).parent / "persist"
    if script.is_file() and os.access(script, os.X_OK):
        return (str(script),)
    return (sys.executable, "-m", "recorder.cli")


def _targets(args: argparse.Namespace) -> list[tuple[Agent, Path]]:
    agents = _agents(args)
    if args.settings:
        return [(a, Path(args.settings).expanduser()) for a in agents]
    scope = Scope(args.scope)
    return [(a, settings_path(a, scope)) for a in agents]


def _report(verb: str, agent: Agent, change: Change) -> None:
    done = change.added or change.updated or change.removed
    if not change.changed:
        print(f"{agent.value}: {change.path}: nothing to change ({verb} already done)")
    else:
        parts = []
        if change.added:
            parts.append(f"added {', '.join(change.added)}")
        if change.updated:
            parts.append(f"updated {', '.join(change.updated)}")
        if change.removed:
            parts.append(f"removed {', '.join(change.removed)}")
        if change.enabled_hooks:
            parts.append(
                "set hooksConfig.enabled" if verb == "install" else "unset hooksConfig.enabled"
            )
        backup = f" (previous file kept as {change.backup})" if change.backup else ""
        if change.backup_kept:
            backup = f" (the file as it was before our entries stays in {change.backup})"
        print(f"{agent.value}: {change.path}: {'; '.join(parts) or done}{backup}")
    for warning in change.warnings:
        say(f"warning: {warning}")


def cmd_install(args: argparse.Namespace) -> int:
    command = HookCommand(
        _program(),
        Path(args.log_dir).expanduser().absolute(),
        restore=args.restore,
        publish_endpoint=args.publish_endpoint,
        broker=args.broker,
    )
    for agent, path in _targets(args):
        _report("install", agent, install(agent, path, command, say))
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    taken: dict[Path, tuple[Agent, str]] = {}  # log folder: an agent and a line taken out
    for agent, path in _targets(args):
        change = uninstall(agent, path, say)
        _report("uninstall", agent, change)
        for line in change.commands:
            log_dir = log_dir_of(line)
            if log_dir is not None:
                taken.setdefault(log_dir.expanduser().absolute(), (agent, line))
    _left_unsent(args, taken)
    return 0


def _left_unsent(args: argparse.Namespace, taken: dict[Path, tuple[Agent, str]]) -> None:
    """One warning per log folder whose ended sessions wait in hooks/pending/ while no
    hook of ours records into it any more (none of either agent in the user's or this
    project's settings, Claude Code's managed settings files (an administrator's
    install, run as the user's own: before 2026-12-08 not counted), nor the
    `--settings` file): the next hook call of any session sends them, and there is none
    now. Before 2026-12-07 uninstall said nothing, and `hooks status` no longer showed
    the folder. Left as they are; installing again gets them sent."""
    from recorder.hooks.state import pending_states

    if not taken:
        return
    places = [settings_path(a, s) for a in Agent for s in Scope]
    places += claude_managed_files()
    if args.settings:
        places.append(Path(args.settings).expanduser())
    still: set[Path] = set()
    for agent in Agent:
        for path in places:
            still.update(d.expanduser().resolve() for d in inspect(agent, path).log_dirs)
    for log_dir, (agent, line) in taken.items():
        waiting = len(pending_states(log_dir))
        if not waiting or log_dir.resolve() in still:
            continue
        where = ["--settings", args.settings] if args.settings else []
        if not args.settings and args.scope != Scope.USER.value:
            where = ["--scope", args.scope]
        again = shlex.join(["persist", "hooks", "install", agent.value, *where])
        again = " ".join([again, *map(shlex.quote, install_options(line))])
        sessions, it = (
            ("ended session waits", "it") if waiting == 1 else ("ended sessions wait", "them")
        )
        say(
            f"warning: {waiting} {sessions} in {log_dir}/hooks/pending/ to be sent, and no "
            f"hook of ours records into {log_dir} any more: nothing sends {it} until you "
            f"run `{again}` (then the next hook call of any session sends {it}, once a "
            "recorder listens)"
        )


def cmd_status(args: argparse.Namespace) -> int:
    from recorder.hooks.failures import read_failures
    from recorder.store.layout import Layout
    from recorder.store.status import HEALTHY, HolderUnknown, assess, format_age

    if args.settings:
        places = [(a, Path(args.settings).expanduser()) for a in _agents(args)]
    else:
        places = []
        for agent in _agents(args):
            places += [(agent, settings_path(agent, scope)) for scope in Scope]
            if agent is Agent.CLAUDE:  # an administrator's install in its managed settings
                managed = claude_managed_files()
                places += [(agent, f) for f in managed if inspect(agent, f).events]
    found_any = False
    healthy = True
    log_dirs: list[Path] = []
    for agent, path in places:
        found = inspect(agent, path)
        where = shown(str(path))  # a project's settings come with its repository
        if not found.exists and not found.events and not found.problems:
            print(f"{agent.value}: {where}: no settings file")
            continue
        if found.events:
            found_any = True
            complete = "all events" if not found.missing else f"missing {', '.join(found.missing)}"
            print(f"{agent.value}: {where}: installed ({complete})")
        else:
            print(f"{agent.value}: {where}: not installed")
        for problem in (*found.problems, *([found.outdated] if found.outdated else [])):
            print(f"  problem: {shown(problem)}")
            healthy = False
        for doubt in found.doubts:  # up to the user's answer: said, not a failure
            print(f"  warning: {shown(doubt)}")
        for warning in found.warnings:  # a file the agent ignores: said, not a failure
            print(f"  warning: {shown(warning)}")
        for log_dir in found.log_dirs:
            if log_dir not in log_dirs:
                log_dirs.append(log_dir)
    for log_dir in log_dirs:
        try:
            health = assess(Layout(log_dir))
        except HolderUnknown as exc:  # another user's folder: the rest cannot be read either
            print(f"log folder {shown(str(log_dir))}: recorder unknown ({shown(str(exc))})")
            healthy = False
            continue
        print(f"log folder {shown(str(log_dir))}: recorder {health.state} ({shown(health.reason)})")
        healthy = healthy and health.state == HEALTHY
        failures = read_failures(log_dir)
        if failures.total:
            age = format_age(time.time() - (failures.last_time or time.time()))
            count = f"{'at least ' if failures.at_least else ''}{failures.total}"
            print(f"  hook failures: {count}, last {age} ago: {shown(failures.last)}")
            print(f"  (in {shown(', '.join(map(str, failures.files)))})")
        _print_waiting(log_dir)
    if not found_any:
        print("no agent-persist hooks installed (persist hooks install claude|gemini)")
        return 3
    return 0 if healthy else 1


def _print_waiting(log_dir: Path) -> None:
    """What the folder's sessions owe the bus and who sends it: a line per session
    (`waiting_sessions`), "warning:" once one waits longer than `OWED_WARN_AGE`."""
    from recorder.hooks.lifecycle import PENDING_PER_CALL
    from recorder.hooks.state import OWED_WARN_AGE, waiting_sessions
    from recorder.store.status import format_age

    waiting = waiting_sessions(log_dir)
    if not waiting:
        return
    now = time.time()
    old = now - waiting[0].since > OWED_WARN_AGE
    sessions = "session owes" if len(waiting) == 1 else "sessions owe"
    print(
        f"  {'warning: ' if old else ''}{len(waiting)} {sessions} the bus what "
        f"{'its' if len(waiting) == 1 else 'their'} hooks "
        f"could not send yet: a mark in hooks/sessions/<session>.json.owed/ is sent by the "
        f"session's next hook call; an ended session in hooks/pending/ by the next hook "
        f"call of any session (up to {PENDING_PER_CALL} a call), once a recorder listens"
    )
    for w in waiting[:20]:
        print(f"    {shown(w.name)}: {w.what()}, since {format_age(now - w.since)} ago")
    if len(waiting) > 20:
        print(f"    and {len(waiting) - 20} more")


def _agents(args: argparse.Namespace) -> list[Agent]:
    return [Agent(args.agent)] if args.agent else list(Agent)


def cmd_hook(args: argparse.Namespace) -> int:
    from recorder.hooks.run import main

    return main(args.hook_args)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hooks = sub.add_parser(
        "hooks", help="Claude Code / Gemini CLI hooks that put their sessions on the bus"
    )
    verbs = hooks.add_subparsers(dest="verb", required=True)
    agents = [a.value for a in Agent]

    def where(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--scope",
            choices=[s.value for s in Scope],
            default=Scope.USER.value,
            help="user: ~/.claude or ~/.gemini; project: .claude/ or .gemini/ here",
        )
        p.add_argument("--settings", help="this settings.json instead (tests, other homes)")

    p = verbs.add_parser("install", help="add our hook entries to the agent's settings.json")
    p.add_argument("agent", choices=agents, help="e.g. claude")
    where(p)
    add_log_dir(p)
    p.add_argument(
        "--restore",
        nargs="?",
        const="latest",
        choices=["latest", "fresh", "cancel"],
        help="offer a checkpoint at session start (the no-terminal policy; default latest; "
        "$PERSIST_NO_TTY_POLICY overrides it per run)",
    )
    p.add_argument(
        "--publish-endpoint",
        type=connect_endpoint,
        help="where the hooks publish when the recorder does not host the broker",
    )
    p.add_argument(
        "--broker",
        type=connect_endpoint,
        help="the broker's subscriber endpoint, for a recorder the start hook launches",
    )
    p.set_defaults(func=cmd_install)

    p = verbs.add_parser("uninstall", help="remove our hook entries, and only those")
    p.add_argument("agent", choices=agents, help="e.g. gemini")
    where(p)
    p.set_defaults(func=cmd_uninstall)

    p = verbs.add_parser("status", help="where our hooks are installed, and their recorder")
    p.add_argument("agent", nargs="?", choices=agents, help="only this agent (default: both)")
    p.add_argument("--settings", help="look at this settings.json only")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "hook",
        help="run by the agents: EVENT --agent claude|gemini, JSON on stdin; always exits 0",
        add_help=False,
    )
    p.add_argument(
        "hook_args", nargs=argparse.REMAINDER, help="EVENT --agent AGENT (what the agent passes)"
    )
    p.set_defaults(func=cmd_hook)
