"""`persist`: the broker, the recorder, and the tools around them."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson

from recorder.bus.endpoints import DEFAULT_HWM, DEFAULT_PUBLISH, DEFAULT_SUBSCRIBE, endpoint_free
from recorder.daemon.options import FSYNC_MODES, RecorderOptions
from recorder.store.layout import Layout, default_log_dir
from recorder.store.status import HEALTHY, STALE, STOPPED, assess, format_age

EXIT_STOPPED = 3  # like `systemctl status` for a unit that is not running


def _fail(message: str, code: int = 1) -> int:
    print(f"persist: {message}", file=sys.stderr)
    return code




# -- broker ---------------------------------------------------------------------
def cmd_broker(args: argparse.Namespace) -> int:
    import zmq

    from recorder.bus.broker import Broker

    broker = Broker(args.frontend, args.backend, hwm=args.hwm)
    try:
        broker.start()
    except zmq.ZMQError as exc:
        return _fail(f"cannot bind the broker ({exc}); is another broker running?")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(
        f"persist broker: publishers connect to {broker.frontend}, "
        f"subscribers to {broker.backend} (queue limit {args.hwm})",
        file=sys.stderr,
        flush=True,
    )
    while not stop.is_set():
        stop.wait(0.2)
        if not broker.running:
            return _fail("the proxy stopped unexpectedly")
    broker.stop()
    print("persist broker: stopped", file=sys.stderr)
    return 0


# -- record -----------------------------------------------------------------------
def _options(args: argparse.Namespace) -> RecorderOptions:
    embedded = None
    if args.embedded == "yes" or (
        args.embedded == "auto" and args.broker == DEFAULT_SUBSCRIBE and endpoint_free(args.broker)
    ):
        embedded = args.publish_endpoint
    return RecorderOptions(
        log_dir=Path(args.log_dir),
        broker=args.broker,
        fsync=args.fsync,
        fsync_interval=args.fsync_interval_ms / 1000,
        segment_bytes=int(args.segment_mb * 1024 * 1024),
        max_message_bytes=int(args.max_message_mb * 1024 * 1024),
        checkpoint_interval=args.checkpoint_interval,
        rules=Path(args.rules) if args.rules else None,
        embedded_broker=embedded,
    )


def cmd_record(args: argparse.Namespace) -> int:
    from recorder.store.lock import AlreadyRunning

    try:
        options = _options(args)
    except ValueError as exc:
        return _fail(str(exc), 2)
    if args.detach:
        return _detach(args, options)
    from recorder.daemon.runner import run_recorder

    def ready(recorder: object) -> None:
        where = (
            f"embedded broker (publish to {options.embedded_broker})"
            if (options.embedded_broker)
            else options.broker
        )
        print(
            f"persist: recording {where} into {options.log_dir} (PID {os.getpid()}); Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )

    try:
        return run_recorder(options, on_ready=ready, to_stderr=args.verbose)
    except AlreadyRunning as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot record into {options.log_dir}: {exc}")
    except Exception as exc:  # a clear message, never a traceback
        import zmq

        if isinstance(exc, zmq.ZMQError):
            return _fail(f"cannot use {options.broker}: {exc}")
        raise


def _detach(args: argparse.Namespace, options: RecorderOptions) -> int:
    """Start the recorder as a background process and wait until it records."""
    from recorder.store.fsutil import ensure_private_dir, open_private

    layout = Layout(options.log_dir)
    ensure_private_dir(layout.root)
    argv = [sys.executable, "-m", "recorder.cli", *_record_argv(args)]
    out = open_private(layout.root / "recorder.out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(out)
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            tail = (layout.root / "recorder.out").read_text(errors="replace").strip()
            return _fail(tail.splitlines()[-1] if tail else f"recorder exited with {code}", code)
        health = assess(layout)
        if health.state == HEALTHY and health.pid == proc.pid:
            print(
                f"persist: recorder started in the background (PID {proc.pid}), "
                f"log folder {options.log_dir}"
            )
            return 0
        time.sleep(0.05)
    return _fail(f"recorder PID {proc.pid} did not report within {args.wait}s; see {layout.log}")


def _record_argv(args: argparse.Namespace) -> list[str]:
    argv = [
        "record",
        "--broker", args.broker,
        "--log-dir", str(Path(args.log_dir).expanduser().resolve()),
        "--fsync", args.fsync,
        "--fsync-interval-ms", str(args.fsync_interval_ms),
        "--segment-mb", str(args.segment_mb),
        "--max-message-mb", str(args.max_message_mb),
        "--checkpoint-interval", str(args.checkpoint_interval),
        "--embedded", args.embedded,
        "--publish-endpoint", args.publish_endpoint,
    ]  # fmt: skip
    if args.rules:
        argv += ["--rules", str(Path(args.rules).resolve())]
    return argv


# -- status / stop / checkpoint -------------------------------------------------------
def cmd_status(args: argparse.Namespace) -> int:
    layout = Layout(Path(args.log_dir))
    health = assess(layout)
    code = {HEALTHY: 0, STALE: 1, STOPPED: EXIT_STOPPED}[health.state]
    if args.json:
        out = {
            "health": health.state,
            "reason": health.reason,
            "warnings": health.warnings,
            "log_dir": str(layout.root),
            "status": health.status,
        }
        print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
        return code
    s = health.status
    print(f"{health.state.upper()}: {health.reason}")
    if s:
        counts = s.get("counts") or {}
        rates = s.get("rates") or {}
        print(f"  log folder   {layout.root}")
        print(f"  broker       {s.get('broker')} ({s.get('connection')})")
        print(
            f"  messages     {counts.get('messages_total', 0)} in journal, "
            f"{counts.get('written', 0)} written this run, "
            f"{rates.get('written_per_s', 0):.0f}/s"
        )
        print(
            f"  durable      up to seq {s.get('last_durable_seq')} "
            f"(fsync {s.get('fsync')}, every {s.get('fsync_interval_ms')} ms)"
        )
        print(
            f"  gaps         {counts.get('gaps', 0)} "
            f"({counts.get('missed', 0)} messages known lost), refused {counts.get('refused', 0)}"
        )
        cp = s.get("last_checkpoint")
        if cp:
            print(f"  checkpoint   {cp['id']} ({format_age(time.time() - cp['created'])} ago)")
        if s.get("last_error"):
            print(f"  last error   {s['last_error'].get('message')}")
    for warning in health.warnings:
        print(f"  warning: {warning}")
    if health.state != HEALTHY:
        print(f"  start it with: {health.start_command(layout.root)}")
    return code


def cmd_stop(args: argparse.Namespace) -> int:
    layout = Layout(Path(args.log_dir))
    health = assess(layout)
    if health.state == STOPPED or health.pid is None:
        print(f"persist: no recorder running ({health.reason})")
        return 0
    from recorder.daemon.control import stop_recorder

    started = health.status.get("process_started")
    if stop_recorder(layout, health.pid, started, args.timeout, say=lambda m: _fail(m)):
        print(f"persist: recorder PID {health.pid} stopped")
        return 0
    return 1


def cmd_checkpoint(args: argparse.Namespace) -> int:
    from recorder.daemon.control import CheckpointError, request_checkpoint

    layout = Layout(Path(args.log_dir))
    try:
        cp = request_checkpoint(layout, args.label or "")
    except (CheckpointError, OSError) as exc:
        return _fail(str(exc))
    if args.json:
        print(orjson.dumps(cp.to_json()).decode())
    else:
        print(f"checkpoint {cp.id}: {cp.messages} messages, up to seq {cp.seq}")
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    """Publish one message through the broker (handy for trying things out)."""
    from recorder.bus.publisher import Publisher

    try:
        body = orjson.loads(args.message)
    except orjson.JSONDecodeError:
        body = {"text": args.message}
    if not isinstance(body, dict):
        body = {"value": body}
    with Publisher(args.endpoint, agent=args.agent, heartbeat_interval=0) as pub:
        pub.wait_ready(args.wait)
        seq = pub.send(args.topic, body)
    print(f"sent {args.topic} seq {seq} as {pub.id}")
    return 0


# -- launch / restore / replay / export / service / demo --------------------------------
def cmd_launch(args: argparse.Namespace) -> int:
    from recorder.launch.launcher import LaunchError, PersistenceLauncher
    from recorder.launch.run_agent import run_agent

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        return _fail("nothing to launch: persist launch [--agent NAME] -- COMMAND [ARGS...]", 2)
    agent = args.agent or os.path.basename(command[0])
    try:
        launcher = PersistenceLauncher(
            args.log_dir,
            broker=args.broker,
            publish_endpoint=args.publish_endpoint,
            embedded=args.embedded,
            no_tty_policy=args.no_tty_policy,
            start_timeout=args.wait,
        )
    except ValueError as exc:
        return _fail(str(exc), 2)

    def leave(signum: int, _frame: object) -> None:  # before the agent runs: clean exit step
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, leave) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        try:
            result = launcher.on_agent_connected(agent)
        except LaunchError as exc:
            return _fail(f"cannot start persistence: {exc}")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if result.cancelled:
            print(f"persist: launch cancelled ({result.reason}); {command[0]} not started",
                  file=sys.stderr)  # fmt: skip
            return 1
        if result.bundle is not None:
            print(f"persist: restoring {result.checkpoint_id} for {agent} "
                  f"({result.bundle.manifest['messages']} messages, {result.bundle.jsonl})",
                  file=sys.stderr)  # fmt: skip
        return run_agent(command, {**os.environ, **result.env()})
    finally:
        outcome = launcher.on_agent_exit()
        if outcome.stopped:
            print(f"persist: {outcome.reason}", file=sys.stderr)


def cmd_restore(args: argparse.Namespace) -> int:
    from recorder.export.restore import build_bundle
    from recorder.export.writers import ExportError

    try:
        bundle = build_bundle(args.log_dir, args.checkpoint)
    except (ExportError, OSError) as exc:
        return _fail(str(exc))
    m = bundle.manifest
    if args.json:
        print(orjson.dumps({"dir": str(bundle.dir), **m}).decode())
        return 0
    integrity = m["integrity"]
    print(f"restore bundle for {bundle.checkpoint_id}: {bundle.dir}")
    print(f"  messages    {m['messages']} ({m['time_range']['first_iso']} → "
          f"{m['time_range']['last_iso']})")  # fmt: skip
    print(f"  integrity   {'ok' if integrity['ok'] else 'PROBLEMS'}"
          f" (digest {'matches' if integrity['verified'] else 'does NOT match'})")  # fmt: skip
    for problem in integrity["problems"]:
        print(f"  warning: {problem}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from recorder.bus.replay import ReplayError, ReplayOptions, replay
    from recorder.export.writers import ExportError
    from recorder.store.checkpoints import resolve_checkpoint
    from recorder.store.ranges import journal_range
    from recorder.store.reader import open_store

    if args.speed is not None and args.speed <= 0:
        return _fail("--speed must be above 0", 2)
    layout = Layout(Path(args.log_dir))
    try:
        upto = resolve_checkpoint(layout, args.checkpoint)
        after = resolve_checkpoint(layout, args.from_checkpoint) if args.from_checkpoint else None
        store = open_store(layout.root)
        rng = journal_range(store, after, upto)
    except (ExportError, OSError) as exc:
        return _fail(str(exc))
    options = ReplayOptions(
        endpoint=args.endpoint,
        speed=None if args.as_fast_as_possible else args.speed,
        topic_prefix=args.topic_prefix,
        unmarked_prefix=args.unmarked_prefix,
        include_replays=args.include_replays,
        wait_subscribers=args.wait,
    )
    try:
        with store:
            stats = replay(store.records(rng.start, rng.stop), options)
    except ReplayError as exc:
        return _fail(str(exc))
    if args.json:
        print(orjson.dumps(stats.to_json()).decode())
    else:
        print(f"replayed {stats.sent} messages ({rng.describe()}) to {args.endpoint} "
              f"in {stats.seconds:.2f}s, marked with replay_of")  # fmt: skip
        if stats.unmarked_sent:
            print(f"  {stats.unmarked_sent} sent unmarked under the topic prefix "
                  f"{args.unmarked_prefix!r}")  # fmt: skip
        skipped = [
            (stats.skipped_heartbeats, "heartbeats"),
            (stats.skipped_replays, "earlier replays (--include-replays sends them)"),
            (stats.skipped_topic, f"outside --topic-prefix {args.topic_prefix!r}"),
        ]
        for n, what in skipped:
            if n:
                print(f"  skipped {n} {what}")
    if stats.skipped_unmarkable:
        topics = ", ".join(f"{t or '(none)'} ({n})" for t, n in
                           sorted(stats.unmarkable_topics.items())[:5])  # fmt: skip
        print(
            f"persist: {stats.skipped_unmarkable} messages were NOT replayed: their payload is "
            f"not a one-line JSON object, so it cannot carry the replay mark without being "
            f"altered (topics: {topics}). --unmarked-prefix P sends them as they are under "
            f"the topic P<topic>.",
            file=sys.stderr,
        )
        return 4
    return 0


def _progress_bar(label: str) -> object:
    state = {"last": 0.0}

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - state["last"] < 0.1:
            return
        state["last"] = now
        frac = done / total if total else 1.0
        bar = "#" * int(frac * 30)
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\r{label} [{bar:<30}] {frac:4.0%} {done:,}/{total:,} records{end}")
        sys.stderr.flush()

    return show


def cmd_export(args: argparse.Namespace) -> int:
    from recorder.export.writers import ExportError, export_range
    from recorder.store.checkpoints import resolve_checkpoint
    from recorder.store.fsutil import AtomicFile
    from recorder.store.ranges import journal_range
    from recorder.store.reader import open_store

    layout = Layout(Path(args.log_dir))
    if args.checkpoint and (args.from_checkpoint or args.to_checkpoint):
        return _fail("give a CHECKPOINT or --from/--to, not both", 2)
    if not (args.checkpoint or args.from_checkpoint or args.to_checkpoint or args.all):
        return _fail("say what to export: CHECKPOINT, --from A [--to B], --to B or --all", 2)
    try:
        upto_ref = args.checkpoint or args.to_checkpoint
        upto = resolve_checkpoint(layout, upto_ref) if upto_ref else None
        after = resolve_checkpoint(layout, args.from_checkpoint) if args.from_checkpoint else None
        if not layout.segments.is_dir():
            raise ExportError(f"no journal in {layout.root}")
        store = open_store(layout.root)
        rng = journal_range(store, after, upto)
    except (ExportError, OSError) as exc:
        return _fail(str(exc))
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    progress = _progress_bar("exporting") if show else None
    try:
        with store:
            if args.output and args.output != "-":
                with AtomicFile(Path(args.output), durable=False) as target:
                    stats = export_range(store, rng, args.format, target.file,
                                         progress=progress)  # type: ignore[arg-type]
            else:
                stats = export_range(store, rng, args.format, sys.stdout.buffer,
                                     progress=progress)  # type: ignore[arg-type]
                sys.stdout.flush()
    except (ExportError, OSError) as exc:
        return _fail(str(exc))
    where = args.output if args.output and args.output != "-" else "stdout"
    print(f"persist: exported {stats.messages} messages ({stats.records} records, "
          f"{rng.describe()}) as {args.format} to {where}", file=sys.stderr)  # fmt: skip
    if stats.bad_lines:
        print(f"persist: {stats.bad_lines} damaged lines in range "
              f"({'left out' if args.format == 'jsonl' else 'marked'})", file=sys.stderr)
    return 0


def cmd_service(args: argparse.Namespace) -> int:
    from recorder.daemon import systemd

    directory = Path(args.unit_dir) if args.unit_dir else None
    execute = False if args.print_only else None
    if args.action == "install":
        embedded = args.embedded
        cfg = systemd.UnitConfig(
            log_dir=Path(args.log_dir).expanduser().absolute(),
            broker=args.broker,
            publish_endpoint=args.publish_endpoint,
            embedded=embedded,
        )
        path, steps = systemd.install(cfg, directory, start=not args.no_start, execute=execute)
        print(f"wrote {path}")
    elif args.action == "uninstall":
        path, existed, steps = systemd.uninstall(directory, execute=execute)
        print(f"removed {path}" if existed else f"{path} was not installed")
    else:
        path, exists, steps = systemd.status(directory, execute=execute)
        print(f"unit file   {path} ({'installed' if exists else 'not installed'})")
        health = assess(Layout(Path(args.log_dir)))
        print(f"recorder    {health.state}: {health.reason}")
    failed = False
    for step in steps:
        if step.ran:
            result = "ok" if step.code == 0 else f"exit {step.code}"
            print(f"ran: {step.command}  [{result}]{(': ' + step.output) if step.output else ''}")
            failed |= step.code != 0 and args.action != "status"
        else:
            print(f"run: {step.command}")
    if steps and not steps[0].ran and not args.print_only:
        print("(systemctl --user cannot reach a user service manager here; run the commands "
              "above in your login session)")  # fmt: skip
    return 1 if failed else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from recorder.launch.demo import DemoError, run_demo
    from recorder.launch.launcher import LaunchError

    try:
        run_demo(
            Path(args.dir) if args.dir else None,
            pace=0 if args.fast else args.pace,
            open_tui=False if args.no_tui else None,
            keep_running=args.keep_running,
        )
    except (DemoError, LaunchError, OSError) as exc:
        return _fail(str(exc))
    return 0


# -- parser -----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="persist",
        description="Record every message of a ZeroMQ agent bus into a crash-safe journal.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    log_dir = {"default": str(default_log_dir()), "help": "log folder (default: %(default)s)"}

    p = sub.add_parser("broker", help="run the XSUB/XPUB broker")
    p.add_argument("--frontend", default=DEFAULT_PUBLISH, help="where publishers connect")
    p.add_argument("--backend", default=DEFAULT_SUBSCRIBE, help="where subscribers connect")
    p.add_argument("--hwm", type=int, default=DEFAULT_HWM, help="messages queued per peer")
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("record", help="run the recorder")
    p.add_argument("--broker", default=DEFAULT_SUBSCRIBE, help="broker's subscriber endpoint")
    p.add_argument("--log-dir", **log_dir)
    p.add_argument("--detach", action="store_true", help="run in the background")
    p.add_argument("--wait", type=float, default=10.0, help="with --detach: seconds to wait")
    p.add_argument("--fsync", choices=FSYNC_MODES, default="interval")
    p.add_argument("--fsync-interval-ms", type=int, default=200)
    p.add_argument("--segment-mb", type=float, default=64)
    p.add_argument("--max-message-mb", type=float, default=16)
    p.add_argument("--checkpoint-interval", type=float, default=300, help="seconds; 0 = off")
    p.add_argument("--rules", help="enrichment rules (TOML)")
    p.add_argument(
        "--embedded",
        choices=("auto", "yes", "no"),
        default="auto",
        help="host the broker in the recorder: auto = when the default endpoint is free",
    )
    p.add_argument("--publish-endpoint", default=DEFAULT_PUBLISH, help="embedded broker's XSUB")
    p.add_argument("-v", "--verbose", action="store_true", help="log to stderr too")
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("status", help="is the recorder healthy, stale or stopped?")
    p.add_argument("--log-dir", **log_dir)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("stop", help="stop the recorder (SIGTERM, waits for a clean exit)")
    p.add_argument("--log-dir", **log_dir)
    p.add_argument("--timeout", type=float, default=5.0)
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("checkpoint", help="take a checkpoint now")
    p.add_argument("--log-dir", **log_dir)
    p.add_argument("--label", default="")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_checkpoint)

    p = sub.add_parser("send", help="publish one message (JSON object or text)")
    p.add_argument("topic")
    p.add_argument("message")
    p.add_argument("--endpoint", default=DEFAULT_PUBLISH)
    p.add_argument("--agent", default="cli")
    p.add_argument("--wait", type=float, default=1.0, help="seconds to wait for subscribers")
    p.set_defaults(func=cmd_send)
    _add_tool_parsers(sub, log_dir)
    return parser


REPLAY_HELP = """\
Republish the recorded messages of a range (after --from, up to CHECKPOINT) to the
broker with their original frames, marked as replays: `replay_of` (the original
journal seq and message id) is added to the `_persist` envelope of each JSON object
payload; the recorder records them with meta.replay_of and never sequence-checks
them. Messages whose payload is not a one-line JSON object cannot carry the mark
without being altered: they are skipped and counted (exit code 4) unless
--unmarked-prefix P sends them unchanged under the topic P<topic>. Heartbeats and
earlier replays are not replayed.
"""


def _add_tool_parsers(sub: argparse._SubParsersAction, log_dir: dict[str, str]) -> None:
    endpoints = {"broker": DEFAULT_SUBSCRIBE, "publish": DEFAULT_PUBLISH}

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
    p.add_argument("--log-dir", **log_dir)
    p.add_argument("--broker", default=endpoints["broker"], help="broker's subscriber endpoint")
    p.add_argument("--publish-endpoint", default=endpoints["publish"],
                   help="where publishers connect (the embedded broker binds it)")  # fmt: skip
    p.add_argument("--embedded", choices=("auto", "yes", "no"), default="auto",
                   help="host the broker in the recorder (auto: when none answers)")
    p.add_argument("--no-tty-policy", choices=("fresh", "latest", "cancel"), default=None,
                   help="without a terminal: fresh (default, or $PERSIST_NO_TTY_POLICY), "
                        "latest checkpoint, or cancel")  # fmt: skip
    p.add_argument("--wait", type=float, default=10.0, help="seconds for the recorder to start")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    p.set_defaults(func=cmd_launch)

    p = sub.add_parser("restore", help="write the restore bundle of a checkpoint")
    p.add_argument("checkpoint", help="checkpoint id, id prefix, label, or 'latest'")
    p.add_argument("--log-dir", **log_dir)
    p.add_argument("--json", action="store_true", help="print the manifest")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("replay", help="republish a recorded range to the broker",
                       description=REPLAY_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("checkpoint", help="replay up to this checkpoint (id, prefix, label, latest)")
    p.add_argument("--from", dest="from_checkpoint", help="start after this checkpoint")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=None,
                      help="N times the recorded pace (silences capped at 10 s)")
    pace.add_argument("--as-fast-as-possible", action="store_true",
                      help="no pauses (the default)")
    p.add_argument("--topic-prefix", default="", help="only topics that start with this")
    p.add_argument("--unmarked-prefix", default=None,
                   help="send messages that cannot carry the mark unchanged under this "
                        "topic prefix (default: skip them)")  # fmt: skip
    p.add_argument("--include-replays", action="store_true",
                   help="also replay records that were replays themselves")
    p.add_argument("--endpoint", default=endpoints["publish"], help="broker's publisher endpoint")
    p.add_argument("--log-dir", **log_dir)
    p.add_argument("--wait", type=float, default=5.0, help="seconds to wait for subscribers")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser(
        "export",
        help="write a range as Markdown, JSONL, CSV or HTML",
        description="CHECKPOINT exports from the beginning up to it; --from A starts after A; "
        "--to B ends with B (default: the end of the journal). JSONL lines are exactly as "
        "stored. CSV cells starting with = + - @ get a leading ' (spreadsheet safety).",
    )
    p.add_argument("checkpoint", nargs="?", help="up to this checkpoint")
    p.add_argument("--from", dest="from_checkpoint", help="start after this checkpoint")
    p.add_argument("--to", dest="to_checkpoint", help="end with this checkpoint")
    p.add_argument("--all", action="store_true", help="the whole journal")
    p.add_argument("--format", choices=("md", "jsonl", "csv", "html"), default="md")
    p.add_argument("-o", "--output", help="file (written atomically); default stdout")
    p.add_argument("--log-dir", **log_dir)
    prog = p.add_mutually_exclusive_group()
    prog.add_argument("--progress", action="store_true", default=None,
                      help="progress bar on stderr (default: when stderr is a terminal)")
    prog.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("service", help="install, remove or check a systemd user unit")
    p.add_argument("action", choices=("install", "uninstall", "status"))
    p.add_argument("--log-dir", **log_dir)
    p.add_argument("--broker", default=endpoints["broker"])
    p.add_argument("--publish-endpoint", default=endpoints["publish"])
    p.add_argument("--embedded", choices=("auto", "yes", "no"), default="auto")
    p.add_argument("--unit-dir", help="where the unit goes (default ~/.config/systemd/user)")
    p.add_argument("--no-start", action="store_true", help="enable without starting now")
    p.add_argument("--print-only", action="store_true",
                   help="write the unit file but only print the systemctl commands")
    p.set_defaults(func=cmd_service)

    p = sub.add_parser("demo", help="a recorded multi-agent conversation in seconds")
    p.add_argument("--dir", help="demo folder (default ~/.local/share/agent-persist/demo)")
    p.add_argument("--pace", type=float, default=0.06, help="seconds between messages")
    p.add_argument("--fast", action="store_true", help="no pauses")
    p.add_argument("--no-tui", action="store_true", help="print a summary instead of the TUI")
    p.add_argument("--keep-running", action="store_true", help="leave the recorder running")
    p.set_defaults(func=cmd_demo)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
