"""`persist sessions`, `protect`, `fork`: other agents' sessions (Claude Code, Gemini
CLI, Codex CLI), read-only except for the explicit fork."""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recorder.cli.common import (
    add_agent_roots,
    add_log_dir,
    non_negative,
    positive,
    print_json,
    say,
    shown,
)
from recorder.errors import BadOption, PersistError
from recorder.sources.discover import Roots
from recorder.sources.listing import (
    GitState,
    SessionRow,
    find_session,
    list_sessions,
    short_refs,
)
from recorder.sources.model import Session, Source, session_to_json
from recorder.store.layout import Layout
from recorder.store.procstart import start_key


def roots_from(args: argparse.Namespace) -> Roots:
    base = Roots.default()
    return Roots(
        Path(args.claude_root).expanduser() if args.claude_root else base.claude,
        Path(args.gemini_root).expanduser() if args.gemini_root else base.gemini,
        Path(args.codex_root).expanduser() if args.codex_root else base.codex,
    )


def add_roots(p: argparse.ArgumentParser) -> None:
    add_log_dir(p)
    add_agent_roots(p)
    p.add_argument("--source", choices=[s.value for s in Source], help="only this agent's sessions")


def scan_workers() -> int:
    """Processes for a scan with much to read: one per core (on 2 cores, 1.6x faster
    than one process in `bench/sessions.py` since the largest files go first)."""
    return os.cpu_count() or 1


def load_rows(args: argparse.Namespace, *, git: bool = False) -> list[SessionRow]:
    source = Source(args.source) if args.source else None
    rows, problems = list_sessions(
        roots_from(args),
        Layout(Path(args.log_dir)),
        git=GitState() if git else None,
        source=source,
        workers=scan_workers(),
    )
    for problem in problems:
        say(f"warning: {problem}")
    return rows


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def row_json(r: SessionRow) -> dict[str, Any]:
    from recorder.sources.fork import fork_hint, resume_fork_reason

    s = r.session
    data = session_to_json(s)
    through_fork = resume_fork_reason(s, deleted=r.deleted) if s.resumable else ""
    return {
        "key": s.key,
        **{k: data[k] for k in ("source", "id", "title_kind", "project_path", "path")},
        "title": s.shown_title,  # a key in a first prompt shows as [REDACTED:kind]
        # null when its file could not be read: its messages are unknown, not none
        "messages": None if s.unread else s.message_count,
        "first_activity": _iso(s.first_ts),
        "last_activity": _iso(s.last_ts),
        "idle_minutes": None if r.idle_minutes is None else round(r.idle_minutes, 1),
        "files_modified": list(s.files_modified),
        "context_tokens": s.context_tokens,
        "git_branch": s.git_branch,
        "uncommitted_changes": r.dirty,
        "branches": s.branches,
        "protected": r.protected,
        "deleted_by_agent": r.deleted,
        "agent_cleanup_at": _iso(r.expires),
        # the rule that date follows, or what makes the agent delete it at its next start
        "agent_cleanup_reason": r.cleanup_why or None,
        # null too when it resumes only through a fork: `resume_through_fork` says why
        "resume": s.resume_shell() if s.resumable and not through_fork else None,
        "resume_through_fork": fork_hint(s, through_fork) if through_fork else None,
        "resumable": None if s.unread else s.resumable,
        "unreadable": s.unread or None,  # why its file could not be read (strerror)
        # a sub-agent's conversation listed on its own: its session, whose file is gone
        "sub_agent_of": s.parent_id if s.subagent else None,
        "live_pid": r.live_pid,
        # an id in several project folders run from a folder none of them is filed under
        "maybe_live_pid": r.maybe_live_pid,
        "extra_paths": [str(p) for p in s.extra_paths],
        "skipped_lines": s.skipped,
        "unreadable_lines": s.bad_lines,  # of those, lines that are not JSON records
    }


def _short(text: str, width: int) -> str:
    """One line of at most `width` characters, control characters shown as escapes
    (a title is the agent's first prompt: anything may be in it, `\x1b]0;…` too)."""
    text = shown(" ".join(text.split()))
    return text if len(text) <= width else text[: width - 1] + "…"


def cmd_sessions(args: argparse.Namespace) -> int:
    rows = load_rows(args, git=True)
    now = time.time()
    if args.expiring is not None:
        horizon = now + args.expiring * 86400
        rows = [r for r in rows if r.expires is not None and r.expires <= horizon]
    if args.json:
        print_json([row_json(r) for r in rows])
        return 0
    if not rows:
        roots = roots_from(args).only(Source(args.source) if args.source else None)
        where = [str(r) for r in (roots.claude, roots.gemini, roots.codex) if r is not None]
        expiring = " expiring in that time" if args.expiring is not None else ""
        print(f"no sessions found{expiring} (looked in {', '.join(where)})")
        return 0
    refs = [shown(ref) for ref in short_refs(rows)]  # each names its row alone
    wide = max(8, *map(len, refs))
    print(
        f"{'SOURCE':<7} {'ID':<{wide + 1}} {'LAST ACTIVITY':<17} {'IDLE':>6} {'MSGS':>5} "
        f"{'TOKENS':>7} {'FILES':>5} {'GIT':<14} {'COPY':<8} {'CLEANUP':<11} TITLE / PROJECT"
    )
    due: list[tuple[str, SessionRow]] = []
    for r, ref in zip(rows, refs, strict=True):
        s = r.session
        last = datetime.fromtimestamp(s.last_ts or s.mtime).strftime("%Y-%m-%d %H:%M")
        idle = "" if r.idle_minutes is None else _idle(r.idle_minutes)
        if r.live is not None:
            idle = "live?" if r.live_unsure else "live"
        git = _short(s.git_branch or "-", 12) + ("*" if r.dirty else "")
        copy = "deleted" if r.deleted else ("kept" if r.protected else "-")
        cleanup = "-" if r.expires is None else _until(r.expires - now)
        if r.expires is not None and r.expires <= now:
            due.append((ref, r))
        count = "?" if s.unread else s.message_count
        print(
            f"{s.source.value:<7} {ref:<{wide + 1}} {last:<17} {idle:>6} {count:>5} "
            f"{s.context_tokens:>7} {len(s.files_modified):>5} {git:<14} {copy:<8} {cleanup:<11} "
            f"{_short(_title(s), 60)}  [{_short(s.project_path or '?', 40)}]"
        )
    if due:
        print("\nnext start: the agent deletes these the next time it starts in their project:")
        for ref, r in due:
            print(f"  {ref:<{wide}} {shown(r.cleanup_why)}")
    return 0


def _title(s: Session) -> str:
    if s.unread:
        return f"(cannot be read: {s.unread})"
    title = s.shown_title or "(untitled)"
    if s.subagent:
        title = f"sub-agent of {shown(s.parent_id)[:8]} (file gone): {title}"
    elif s.resumable and s.fork_to_resume:  # `claude --resume <id>` would not find it
        title = f"(resumes through a fork) {title}"
    if s.bad_lines:  # before the title: a column's cut never hides it
        title = f"({s.bad_lines} unreadable line{'s' * (s.bad_lines > 1)}) {title}"
    return title


def _idle(minutes: float) -> str:
    if minutes < 60:
        return f"{minutes:.0f}m"
    if minutes < 48 * 60:
        return f"{minutes / 60:.0f}h"
    return f"{minutes / 1440:.0f}d"


def _until(seconds: float) -> str:
    if seconds <= 0:
        return "next start"  # the agents clean up when they start
    return f"in {_idle(seconds / 60)}"


def cmd_protect(args: argparse.Namespace) -> int:
    from recorder.sources.copies import copy_folder, protect, verify

    if not args.sessions and not args.all:
        raise BadOption("name one or more sessions, or --all")
    rows = load_rows(args)
    chosen = rows if args.all else [find_session(rows, ref) for ref in args.sessions]
    layout = Layout(Path(args.log_dir))
    failed = 0
    for r in chosen:
        result = protect(layout, r.session)
        problems = verify(copy_folder(layout, r.session))
        state = (
            "deleted by the agent, copy kept" if r.deleted else f"{result.copied_bytes:,} new bytes"
        )
        if result.new_versions and not r.deleted:
            state += f", {result.new_versions} rewritten file(s) kept as a new version"
        bad = r.session.bad_lines
        if bad:  # copied byte for byte: what the listing names, the copy holds as it is
            state += (
                f", {bad} unreadable line{'s kept as they are' if bad > 1 else ' kept as it is'}"
            )
        if problems:
            failed += 1
            say(f"{r.session.key}: the copy does not verify: {'; '.join(problems)}")
        elif args.json:
            print_json(
                {
                    "key": r.session.key,
                    "copied_bytes": result.copied_bytes,
                    "new_versions": result.new_versions,
                    "verified": True,
                    "deleted_by_agent": r.deleted,
                    # lines that are not JSON records, copied byte for byte as they are
                    "unreadable_lines": r.session.bad_lines,
                }
            )
        else:
            print(f"protected {shown(r.session.key)}: {state}, verified")
    return 1 if failed else 0


def cmd_fork(args: argparse.Namespace) -> int:
    from recorder.sources.copies import CopyError
    from recorder.sources.fork import ForkError, fork_row

    rows = load_rows(args)
    row = find_session(rows, args.session)
    try:
        result = fork_row(Layout(Path(args.log_dir)), row, args.at)
    except (ForkError, CopyError) as exc:
        raise PersistError(str(exc)) from None
    except OSError as exc:
        raise PersistError(f"the fork could not be written: {exc}") from None
    problems = result.report.summary()  # as `export --session` says it
    if problems:
        written = result.report.bad_lines and not result.latest
        left_out = "; the unreadable lines are not in the fork" if written else ""
        say(f"warning: {row.session.key}: {problems}{left_out}")
    if args.json:
        print_json(
            {
                "source": row.session.source.value,
                "from": row.session.id,
                "id": result.new_id,
                "path": str(result.path),
                "at": {"seq": result.at.seq, "uuid": result.at.uuid},
                "messages": result.messages,
                "forked": not result.latest,
                "resume": result.command,
                # lines of the original that could not be read, so are in no fork
                "unreadable_lines": result.report.bad_lines,
            }
        )
        return 0
    if row.live is not None:
        say(row.live_warning())
    key = shown(row.session.key)
    if result.latest:
        print(f"{key}: the latest point is the session itself; resume it with:")
    else:
        print(
            f"forked {key} at message {result.at.seq} into {shown(str(result.path))} "
            f"({result.messages} messages, read back); resume it with:"
        )
    print(result.command)
    return 0


def context_percent(value: str) -> float:
    """`--context`: the percent of the context window that fires (a settings file's
    `context_fraction` is the same as a fraction, checked where the file is read)."""
    number = positive(value)
    if number > 100:
        raise argparse.ArgumentTypeError(
            f"a percent of the context window, at most 100 (got {value})"
        )
    return number


def cmd_monitor(args: argparse.Namespace) -> int:
    from recorder.daemon.priority import background_priority
    from recorder.sources.monitor import Monitor, MonitorSettings
    from recorder.sources.monitor_status import MonitorStatus, write_status
    from recorder.store.unfinished import refuse_unfinished_restore

    if args.parent is not None:  # the recorder's own monitor runs at its priority
        background_priority()  # $PERSIST_BACKGROUND_PRIORITY: a bad one refused, as record does
    layout = Layout(Path(args.log_dir))
    refuse_unfinished_restore(layout.root)  # its checkpoints and log would be written there
    config = Path(args.config) if args.config else layout.sessions / "monitor.toml"
    if args.config and not config.exists():  # named: a typo must not run on the defaults
        raise BadOption(f"--config {config}: no such file")
    settings = MonitorSettings.load(
        config,
        interval_minutes=args.interval,
        time_hours=args.time_hours,
        files_changed=args.files,
        context_fraction=None if args.context is None else args.context / 100,
        idle_minutes=args.idle,
        cooldown_minutes=args.cooldown,
    )
    if args.parent is not None:  # the recorder's own monitor: only when nothing else runs
        from recorder.daemon.priority import lower_process_priority

        lower_process_priority()
    roots = roots_from(args).only(Source(args.source) if args.source else None)
    monitor = Monitor(roots, layout, settings)
    status = MonitorStatus(
        os.getpid(),
        args.parent,
        time.time(),
        settings.interval_minutes,
        start_key=start_key(os.getpid()),
    )
    while True:
        t0 = time.time()
        result = monitor.tick(t0)
        for problem in result.problems:
            say(f"warning: {problem}")
        for d in result.decisions:
            if args.explain:
                print(shown(d.explain()))
        for cp in result.taken:
            ref = cp.session
            assert ref is not None
            print(f"checkpoint {cp.id}: {shown(ref.key)}, {ref.messages} messages, {cp.reason}")
            status.last_taken = {"id": cp.id, "key": ref.key, "time": cp.created}
        sys.stdout.flush()
        status.rounds += 1
        status.last_round, status.round_seconds = time.time(), time.time() - t0
        status.sessions, status.taken = len(result.decisions), status.taken + len(result.taken)
        status.problems = list(result.problems[:3])
        try:
            write_status(layout, status)
        except OSError as exc:
            say(f"warning: the monitor's status cannot be written: {exc}")
        if args.once:
            return 0
        if not _wait_round(settings.interval_minutes * 60, args.parent):
            return 0


PARENT_CHECK = 5.0  # seconds between looks at whether the recorder we run for is gone


def _wait_round(seconds: float, parent: int | None) -> bool:
    """Sleep until the next round; False when the recorder we run for is gone (seen
    within PARENT_CHECK: a recorder that stops ends us at once, one killed leaves us
    to notice)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if parent is not None and os.getppid() != parent:
            return False
        time.sleep(min(PARENT_CHECK, left))
    return parent is None or os.getppid() == parent


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sessions", help="list Claude Code, Gemini CLI and Codex sessions")
    add_roots(p)
    p.add_argument("--json", action="store_true", help="one JSON document instead of text")
    p.add_argument(
        "--expiring",
        type=positive,
        nargs="?",
        const=7.0,
        metavar="DAYS",
        help="only sessions the agent's own cleanup deletes within DAYS (default 7)",
    )
    p.set_defaults(func=cmd_sessions)

    p = sub.add_parser("protect", help="keep a verified copy of sessions in the log folder")
    add_roots(p)
    p.add_argument("sessions", nargs="*", metavar="SESSION", help="id, source:id or id prefix")
    p.add_argument("--all", action="store_true", help="every session found")
    p.add_argument("--json", action="store_true", help="one JSON document instead of text")
    p.set_defaults(func=cmd_protect)

    p = sub.add_parser(
        "fork", help="resume a session, or fork it at an earlier message into a new one"
    )
    add_roots(p)
    p.add_argument("session", metavar="SESSION", help="id, source:id or id prefix")
    p.add_argument("--at", metavar="MESSAGE", help="message number or agent uuid (default: last)")
    p.add_argument("--json", action="store_true", help="one JSON document instead of text")
    p.set_defaults(func=cmd_fork)

    p = sub.add_parser(
        "monitor", help="checkpoint agent sessions when time, activity, context or idleness say so"
    )
    add_roots(p)
    p.add_argument("--once", action="store_true", help="one round, then exit")
    p.add_argument("--interval", type=positive, metavar="MIN", help="minutes between rounds (5)")
    p.add_argument("--explain", action="store_true", help="print every decision with its scores")
    p.add_argument("--config", help="TOML settings (default: <log-dir>/sessions/monitor.toml)")
    p.add_argument(
        "--time-hours", type=positive, help="time trigger (2 h since the last checkpoint)"
    )
    p.add_argument("--files", type=positive, help="activity trigger (15 files changed)")
    p.add_argument(
        "--context",
        type=context_percent,
        metavar="PERCENT",
        help="context trigger, in percent of the context window (75)",
    )
    p.add_argument("--idle", type=positive, metavar="MIN", help="idle trigger (30 min)")
    p.add_argument("--cooldown", type=non_negative, metavar="MIN", help="between checkpoints (30)")
    p.add_argument("--parent", type=int, help=argparse.SUPPRESS)  # the recorder it runs for
    p.set_defaults(func=cmd_monitor)
