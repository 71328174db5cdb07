"""`persist record`, `status`, `stop` and `checkpoint`: running and asking the recorder.

Just over 400 lines: one command group, whose options and their validation are most of it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

from recorder.bus.endpoints import DEFAULT_PUBLISH, DEFAULT_SUBSCRIBE
from recorder.bus.refusal import DEFAULT_MAX_FRAMES
from recorder.cli.common import (
    add_curve,
    add_log_dir,
    endpoint,
    fail,
    non_negative,
    positive,
    print_json,
    say,
    shown,
    state_exit_code,
)
from recorder.daemon.options import MIB, EmbeddedMode, FsyncMode, RecorderOptions
from recorder.errors import PersistError
from recorder.sources.monitor_status import MonitorStatus
from recorder.store.checkpoints import last_checkpoint
from recorder.store.fsutil import PRIVATE_UMASK
from recorder.store.indexer_status import (
    MONITOR,
    ChildStatus,
    read_child_status,
    read_indexer_status,
)
from recorder.store.layout import Layout
from recorder.store.lock import TOOL_WAIT
from recorder.store.status import (
    STALE,
    STOPPED,
    LinkMode,
    assess,
    format_age,
    read_status,
)
from recorder.store.waiting import Waiting, read_waiting

# seconds the recorder's retention waits for the search indexer to let go of the index
# before it empties the trash (the indexer writes in short transactions)
RETENTION_FORGET_WAIT = 2.0


# -- record -----------------------------------------------------------------------
def _options(args: argparse.Namespace) -> RecorderOptions:
    from recorder.daemon.priority import background_priority
    from recorder.store.retention_config import Policy, parse_duration, parse_size

    if args.monitor not in ("on", "off"):
        raise ValueError(f"$PERSIST_MONITOR must be on or off (got {args.monitor!r})")
    if args.search_index not in ("on", "off"):
        raise ValueError(f"$PERSIST_SEARCH_INDEX must be on or off (got {args.search_index!r})")
    background_priority()  # $PERSIST_BACKGROUND_PRIORITY: refused here, not in a child
    brokers = args.broker or ([] if args.bind else [DEFAULT_SUBSCRIBE])
    older, size = args.retention_older_than, args.retention_max_size
    interval, grace = args.retention_interval, args.trash_grace
    return RecorderOptions(
        log_dir=Path(args.log_dir),
        broker=brokers[0] if brokers else None,
        more_brokers=tuple(brokers[1:]),
        bind=tuple(args.bind or ()),
        bind_public=args.bind_public,
        fsync=args.fsync,
        fsync_interval=args.fsync_interval_ms / 1000,
        segment_bytes=int(args.segment_mb * MIB),
        max_message_bytes=int(args.max_message_mb * MIB),
        max_frames=args.max_frames,
        checkpoint_interval=args.checkpoint_interval,
        unconfirmed_after=args.unconfirmed_after,
        max_backlog_bytes=int(args.max_backlog_mb * MIB),
        stop_wait=args.stop_wait,
        rules=Path(args.rules) if args.rules else None,
        embedded=args.embedded,
        publish_endpoint=args.publish_endpoint,
        search_index=args.search_index == "on",
        monitor=args.monitor == "on",
        secrets=args.secrets == "on",
        compress=args.compress == "on",
        curve=args.curve,
        keys=Path(args.keys) if args.keys else None,
        retention=Policy(
            None if older is None else parse_duration(older, "--retention-older-than"),
            None if size is None else parse_size(size, "--retention-max-size"),
        ),
        retention_interval=None
        if interval is None
        else parse_duration(interval, "--retention-interval"),
        trash_grace=None if grace is None else parse_duration(grace, "--trash-grace"),
    )


def cmd_record(args: argparse.Namespace) -> int:
    # the ipc socket files it binds (--bind, an embedded broker) are its user's alone:
    # libzmq makes them with the umask's mode (0777 under umask 000); every file of
    # the log folder has its own mode already
    os.umask(PRIVATE_UMASK)
    try:
        options = _options(args)
    except ValueError as exc:
        return fail(str(exc), 2)
    from recorder.bus.publisher import ConnectFailed, check_connectable

    for broker in options.connects:  # an address libzmq cannot read fails no later start
        try:
            check_connectable(broker)
        except ConnectFailed as exc:
            return fail(f"--broker: {exc}", 2)
    if args.detach:
        return _detach(options, args.wait)
    import faulthandler
    import signal

    from recorder.daemon.runner import run_recorder

    # `persist stop` sends SIGUSR1 before killing a recorder that lingers after its
    # clean stop: every thread's stack goes to stderr (recorder.out when detached).
    faulthandler.register(signal.SIGUSR1, all_threads=True)

    from recorder.cli.children import search_indexer, session_monitor, stop_children

    warm = search_indexer(options.log_dir)
    monitor = session_monitor(options.log_dir)

    def ready(embedded: str | None) -> None:
        where = options.describe_endpoints()
        if embedded:
            where = f"embedded broker (publish to {embedded})"
        print(
            f"persist: recording {where} into {options.log_dir} (PID {os.getpid()}); Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )
        if options.search_index:
            warm.watch(Layout(options.log_dir))
        if options.monitor:  # reaped and started again as the indexer is (it was not)
            monitor.watch(Layout(options.log_dir))

    try:
        return run_recorder(
            options,
            on_ready=ready,
            to_stderr=args.verbose,
            forget_words=lambda: _forget_words(options.log_dir),
        )
    except PersistError as exc:  # another recorder holds the folder, a broker cannot bind
        return fail(str(exc))
    except OSError as exc:
        return fail(f"cannot record into {options.log_dir}: {exc}")
    finally:
        stop_children([warm, monitor])


def _forget_words(log_dir: Path) -> str | None:
    """The recorder's retention, before it empties the trash: the words of what goes
    leave the search index (imported only then: the recorder never loads it otherwise)."""
    from recorder.search.indexer import forget_pruned_words

    return forget_pruned_words(log_dir, RETENTION_FORGET_WAIT)


def _detach(options: RecorderOptions, wait: float) -> int:
    """Start the recorder as a background process and wait until it records."""
    from recorder.daemon.spawn import SpawnError, spawn_recorder

    try:
        spawned = spawn_recorder(options, timeout=wait)
    except SpawnError as exc:
        code = exc.exit_code
        return fail(str(exc), code if code is not None and code > 0 else 1)  # killed: 1
    except KeyboardInterrupt:  # spawn_recorder stopped it
        say("interrupted as the recorder started: it was stopped")
        raise
    print(
        f"persist: recorder started in the background (PID {spawned.pid}), "
        f"log folder {options.log_dir}"
    )
    return 0


# -- status / stop / checkpoint -------------------------------------------------------
def _waiting_recorder(layout: Layout) -> tuple[Waiting | None, str]:
    """A recorder that waits for a `persist` command holding the folder (it has
    written no status yet), and a line that says so."""
    waiting = read_waiting(layout)
    if waiting is None:
        return None, ""
    since = format_age(max(0.0, time.time() - waiting.since))
    return waiting, (
        f"recorder PID {waiting.pid} waits for {waiting.what()} to finish with "
        f"{layout.root} (for {since}, up to {TOOL_WAIT:g} s), then records"
    )


def cmd_status(args: argparse.Namespace) -> int:
    layout = Layout(Path(args.log_dir))
    health = assess(layout)
    waiter, waits = _waiting_recorder(layout) if health.state == STOPPED else (None, "")
    if waiter is not None:  # not recording yet (exit 3), but not left for nobody
        health = replace(
            health, reason=f"not recording yet: {waits}; `persist stop` stops it ({health.reason})"
        )
    code = state_exit_code(health.state)
    from recorder.hooks.failures import read_failures

    hook_failures = read_failures(layout.root)
    from recorder.sources.monitor_status import read_status

    monitor = read_status(layout)
    recorder_pid = health.pid if health.running else None
    child = read_child_status(layout, MONITOR)
    if child is not None and child.parent != recorder_pid:
        child = None  # another recorder's (an earlier run's)
    monitor_line = _monitor_line(monitor, recorder_pid, child)
    indexer = read_indexer_status(layout)
    other = read_status(layout, standalone=True)
    if other is not None and other.alive:
        monitor_line += f"; a standalone persist monitor runs too (PID {other.pid})"
    # the newest in checkpoints/ when status.json names an older one, or none, or one
    # that no longer reads as a checkpoint (said in `warnings`)
    unread: list[str] = []
    cp = last_checkpoint(layout, health.status.last_checkpoint if health.status else None, unread)
    warnings = [*health.warnings, *unread]
    if args.json:
        out = {
            "health": health.state,
            "reason": health.reason,
            "warnings": warnings,
            "log_dir": str(layout.root),
            "status": health.status.to_json() if health.status is not None else {},
            # a recorder that waits for a `persist` command holding the folder
            "waiting": None
            if waiter is None
            else {
                "pid": waiter.pid,
                "for_pid": waiter.holder,
                "for_command": waiter.role,
                "since": waiter.since,
            },
            "last_checkpoint": cp.to_json() if cp is not None else None,
            "hook_failures": {
                "count": hook_failures.total,
                "count_is_at_least": hook_failures.at_least,
                "last": hook_failures.last or None,
                "last_time": hook_failures.last_time,
                "files": [str(f) for f in hook_failures.files],
            },
            "monitor": {
                **(monitor.to_json() if monitor is not None else {}),
                "running": bool(monitor and monitor.alive),
                "summary": monitor_line,
                # the recorder's monitor child: its pid, restarts, how the last ended
                "child": child.to_json() if child is not None else None,
            },
            # the recorder's search indexer child: its pid, restarts, how the last ended
            "indexer": indexer.to_json() if indexer is not None else None,
        }
        print_json(out, indent=True)
        return code
    s = health.status
    print(f"{health.state.upper()}: {shown(health.reason)}")
    if s is not None:
        counts = s.counts
        # a stale or stopped recorder's status is its last report, not the present
        live = health.current
        when = "" if live else " when last heard of"
        print(f"  log folder   {layout.root}")
        if len(s.endpoints) > 1 or any(e.mode is LinkMode.BIND for e in s.endpoints):
            for e in s.endpoints:
                label = "broker" if e.mode is LinkMode.CONNECT else "bound at"
                publishers = "publisher" if e.peers == 1 else "publishers"
                peers = f", {e.peers} {publishers}" if e.mode is LinkMode.BIND else ""
                if e.refused:  # the warning below names them, when lately
                    peers += f", {e.refused.count} refused"
                print(f"  {label:<12} {e.endpoint} ({e.connection}{peers}{when})")
        else:
            print(f"  broker       {s.broker} ({s.connection}{when})")
        rate = f", {s.rates.written_per_s:.0f}/s" if live else ""
        run = "this run" if live else "during its last run"
        # taken in: written, or waiting in memory for the disk (a full one)
        waiting = f"; {s.backlog_bytes:,} bytes of them wait in memory" if s.backlog_bytes else ""
        print(
            f"  messages     {counts.messages_total} in journal{when}, "
            f"{counts.written} taken in {run}{rate}{waiting}"
        )
        print(
            f"  durable      up to seq {s.last_durable_seq} "
            f"(fsync {s.fsync}, every {s.fsync_interval_ms} ms)"
        )
        print(
            f"  gaps         {counts.gaps} {run} "
            f"({counts.missed} {'message' if counts.missed == 1 else 'messages'} known lost), "
            f"refused {counts.refused} "
            "(the journal's: persist search kind:gap kind:refused --all-kinds)"
        )
        if counts.unconfirmed:
            print(
                f"  unconfirmed  {counts.unconfirmed} {run}: publishers fell silent with "
                "messages no heartbeat of theirs confirmed; what they sent after is unknown "
                "(publisher-silent gaps)"
            )
        if counts.not_subscribed:
            print(
                f"  not subscribed yet  {counts.not_subscribed} messages from "
                f"{counts.not_subscribed_publishers} publishers were sent before the recorder "
                f"listened, {run} (not in the journal, not counted as gaps)"
            )
        if counts.secrets or counts.secrets_capped or counts.secrets_unscanned:
            print(
                f"  secrets      {counts.secrets} messages hold some (named in meta.secrets); "
                f"{counts.secrets_unscanned} left to the readers (behind a flood), "
                f"{counts.secrets_capped} scanned in part (too large)"
            )
    if cp is not None:
        print(f"  checkpoint   {cp.id} ({format_age(time.time() - cp.created)} ago)")
    if s is not None and s.last_error:
        print(f"  last error   {shown(s.last_error.message)}")
    # what the monitor and the hooks saw: agents' session ids, file names, hook stdin
    print(f"  sessions     {shown(monitor_line)}")
    for warning in warnings:
        print(f"  warning: {shown(warning)}")
    if hook_failures.total:
        age = format_age(time.time() - (hook_failures.last_time or time.time()))
        count = f"{'at least ' if hook_failures.at_least else ''}{hook_failures.total}"
        print(f"  hook failures {count}, last {age} ago: {shown(hook_failures.last)}")
        print(f"               (in {shown(', '.join(map(str, hook_failures.files)))})")
    if health.state in (STALE, STOPPED) and waiter is None:
        print(f"  start it with: {health.start_command(layout.root)}")
    elif broker := health.broker_command(layout.root):  # not the recorder's to fix
        print(f"  broker: {broker}")
    return code


def _monitor_line(
    m: MonitorStatus | None, recorder_pid: int | None, child: ChildStatus | None = None
) -> str:
    """The session monitor in one line: where it runs and what its last round did;
    `child`: what the running recorder wrote of its monitor child (restarts)."""
    ended = ""
    if child is not None and child.last_error is not None:
        times = "once" if child.restarts == 1 else f"{child.restarts} times"
        ended = f"; it ended {times} since the recorder started, last: {child.last_error}"
    if child is not None and child.pid is None:  # ended, waits to be started again
        wait = max(0.0, (child.next_start or time.time()) - time.time())
        return f"monitor not running: started again in {wait:.0f} s{ended}"
    if child is not None and (m is None or m.pid != child.pid):  # its first round comes
        return f"monitor in the recorder (PID {child.pid}), starting{ended}"
    if m is None:
        if recorder_pid is None:
            return "monitor not running (persist record runs it; or persist monitor)"
        return "monitor starting, or off (persist record --monitor on)"
    if not m.alive:
        where = "monitor not running"
        if recorder_pid is not None and child is None:
            where += " (the recorder was started with --monitor off?)"
    elif m.parent is not None and m.parent == recorder_pid:
        where = f"monitor in the recorder (PID {m.pid}, every {m.interval_minutes:g} min)"
    else:
        where = f"monitor PID {m.pid} (every {m.interval_minutes:g} min)"
    if m.last_round is None:
        return f"{where}; no round yet"
    age = format_age(time.time() - m.last_round)
    line = (
        f"{where}; last round {age} ago over {m.sessions} sessions; "
        f"{m.taken} checkpoints since it started"
    )
    if m.last_taken:
        line += f" (newest {m.last_taken.get('key')})"
    if m.problems:
        line += f"; problem: {m.problems[0]}"
    return line + ended


def cmd_stop(args: argparse.Namespace) -> int:
    layout = Layout(Path(args.log_dir))
    health = assess(layout)
    if health.state == STOPPED or health.pid is None:
        waiting, waits = _waiting_recorder(layout)
        if waiting is not None:
            return _stop_waiting(layout, waiting, waits, args.timeout)
        print(f"persist: no recorder running ({health.reason})")
        return 0
    from recorder.daemon.control import stop_recorder

    started = health.status.process_started if health.status is not None else None
    key = health.status.process_start_key if health.status is not None else None
    if not stop_recorder(
        layout,
        health.pid,
        started,
        args.timeout,
        say=lambda m: fail(m),
        force=args.force,
        key=key,
    ):
        return 1
    print(f"persist: recorder PID {health.pid} stopped")
    after = read_status(layout)  # it gave up what a full disk refused: lost (said above)
    return 1 if after and after.pid == health.pid and after.unwritten else 0


def _stop_waiting(layout: Layout, waiting: Waiting, waits: str, timeout: float) -> int:
    """Stop a recorder that waits for the folder: it holds nothing yet, and ends on
    SIGTERM (one that took the folder meanwhile stops cleanly on it). Before 2026-12-07
    `persist stop` said no recorder was running, and it recorded a moment later."""
    from recorder.store.procstart import same_process

    def gone() -> bool:
        return not same_process(waiting.pid, waiting.started, waiting.key)

    try:
        os.kill(waiting.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except OSError as exc:
        return fail(f"cannot stop the {waits}: {exc.strerror or exc}")
    deadline = time.monotonic() + timeout
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not gone():
        return fail(f"the {waits}: it did not end within {timeout:g}s of SIGTERM")
    print(f"persist: recorder PID {waiting.pid} stopped (it waited for {waiting.what()})")
    return 0


def cmd_checkpoint(args: argparse.Namespace) -> int:
    from recorder.daemon.control import request_checkpoint
    from recorder.errors import CheckpointError
    from recorder.store.checkpoints import SegmentMissing
    from recorder.store.pruned import ledger_problem

    layout = Layout(Path(args.log_dir))
    ledger = ledger_problem(layout)  # missing segments are then told by the trash alone
    if ledger is not None:
        say(f"warning: {ledger.reader_line()}")
    try:
        cp = request_checkpoint(layout, args.label or "")
    except (CheckpointError, SegmentMissing) as exc:  # each says it was refused, and why
        return fail(str(exc))
    except OSError as exc:  # a full disk, an unreadable segment: nothing is half made
        where = f" ({exc.filename})" if exc.filename else ""
        return fail(f"checkpoint: {exc.strerror or exc}{where}; no checkpoint was made")
    if args.json:
        print_json(cp.to_json())
    else:
        print(f"checkpoint {cp.id}: {cp.messages} messages, up to seq {cp.seq}")
    return 0


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    p = sub.add_parser("record", help="run the recorder")
    p.add_argument(
        "--broker",
        type=endpoint,
        action="append",
        help=f"a broker's subscriber endpoint to connect to; repeat to follow several "
        f"(default {DEFAULT_SUBSCRIBE} unless --bind is given)",
    )
    p.add_argument(
        "--bind",
        type=endpoint,
        action="append",
        help="listen here for publishers that connect out (loopback or ipc); repeatable",
    )
    p.add_argument(
        "--bind-public",
        action="store_true",
        help="allow --bind on addresses other machines can reach",
    )
    add_log_dir(p)
    p.add_argument("--detach", action="store_true", help="run in the background")
    p.add_argument("--wait", type=positive, default=10.0, help="with --detach: seconds to wait")
    p.add_argument(
        "--fsync",
        choices=[m.value for m in FsyncMode],
        default=FsyncMode.INTERVAL,
        help="when lines reach the disk: interval (group commit, default), always, never",
    )
    p.add_argument(
        "--fsync-interval-ms",
        type=positive,
        default=200,
        help="group commit period in ms (default 200), e.g. 50",
    )
    p.add_argument(
        "--segment-mb", type=positive, default=64, help="close a segment at this size (MB), e.g. 16"
    )
    p.add_argument(
        "--max-message-mb",
        type=positive,
        default=16,
        help="larger messages are refused and recorded as such (MB, default 16)",
    )
    p.add_argument(
        "--max-frames",
        type=int,
        default=DEFAULT_MAX_FRAMES,
        help="messages of more frames are refused and recorded as such "
        f"(at least 2, default {DEFAULT_MAX_FRAMES})",
    )
    p.add_argument("--checkpoint-interval", type=non_negative, default=300, help="seconds; 0 = off")
    p.add_argument(
        "--unconfirmed-after",
        type=positive,
        default=60,
        help="a publisher silent this long (s) after messages no heartbeat of its own "
        "confirmed gets a publisher-silent gap record (default 60)",
    )
    p.add_argument("--rules", help="enrichment rules (TOML)")
    p.add_argument(
        "--max-backlog-mb",
        type=positive,
        default=256,
        help="lines held in memory while the disk is behind; beyond, messages are dropped",
    )
    p.add_argument(
        "--stop-wait",
        type=non_negative,
        metavar="SECONDS",
        help="how long a stop waits for room on a full disk to write what it holds before "
        "giving it up (counted as lost, a gap at the next start); default: until there is room",
    )
    p.add_argument(
        "--embedded",
        choices=[m.value for m in EmbeddedMode],
        default=EmbeddedMode.AUTO,
        help="host the broker in the recorder: auto = when the default endpoint is free",
    )
    p.add_argument(
        "--publish-endpoint", type=endpoint, default=DEFAULT_PUBLISH, help="embedded broker's XSUB"
    )
    p.add_argument(
        "--search-index",
        choices=("on", "off"),
        default=os.environ.get("PERSIST_SEARCH_INDEX") or "on",
        help="keep the search index warm in an idle-priority child process (default on, "
        "or $PERSIST_SEARCH_INDEX)",
    )
    p.add_argument(
        "--secrets",
        choices=("on", "off"),
        default="on",
        help="detect secrets (API keys, tokens, private keys, passwords) and name their kind "
        "and place in each record's meta, never altering the message (default on)",
    )
    p.add_argument(
        "--compress",
        choices=("on", "off"),
        default="on",
        help="compress closed segments in the background (default on; see persist compact)",
    )
    p.add_argument(
        "--retention-older-than",
        metavar="AGE",
        help="prune closed segments whose last record is older than AGE (90d, 12h); off by "
        "default; also `older_than` in <log folder>/retention.toml",
    )
    p.add_argument(
        "--retention-max-size",
        metavar="SIZE",
        help="prune the oldest closed segments while the journal is over SIZE (20G, 500M)",
    )
    p.add_argument(
        "--retention-interval",
        metavar="EVERY",
        help="how often retention runs (default 10m); pruned files go to the trash",
    )
    p.add_argument(
        "--trash-grace",
        metavar="AGE",
        help="with retention on, trash entries older than AGE are emptied (default 14d)",
    )
    p.add_argument(
        "--monitor",
        choices=("on", "off"),
        default=os.environ.get("PERSIST_MONITOR") or "on",
        help="checkpoint Claude Code, Gemini CLI and Codex sessions by the session monitor's "
        "policy, in an idle-priority child process (default on, or $PERSIST_MONITOR; "
        "settings in <log-dir>/sessions/monitor.toml)",
    )
    add_curve(p)
    p.add_argument("-v", "--verbose", action="store_true", help="log to stderr too")
    p.set_defaults(func=cmd_record)

    p = sub.add_parser(
        "status",
        help="is the recorder healthy (exit 0), stale (1), stopped (3) or degraded (6)?",
    )
    add_log_dir(p)
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("stop", help="stop the recorder (SIGTERM, waits for a clean exit)")
    add_log_dir(p)
    p.add_argument(
        "--timeout", type=positive, default=5.0, help="seconds to wait for a clean exit, e.g. 10"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="when its disk is full, do not wait for room: what it holds is lost (and "
        "recorded as a gap by the next start)",
    )
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("checkpoint", help="take a checkpoint now")
    add_log_dir(p)
    p.add_argument("--label", default="", help='a name for it, e.g. "before the refactor"')
    p.add_argument("--json", action="store_true", help="print the checkpoint as JSON")
    p.set_defaults(func=cmd_checkpoint)
