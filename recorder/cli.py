"""`persist`: the broker, the recorder, and the tools around them."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import orjson

from .daemon import DEFAULT_HWM, DEFAULT_PUBLISH, DEFAULT_SUBSCRIBE, FSYNC_MODES, RecorderOptions
from .format import Layout, default_log_dir
from .status import HEALTHY, STALE, STOPPED, assess, format_age, process_matches

EXIT_STOPPED = 3  # like `systemctl status` for a unit that is not running


def _fail(message: str, code: int = 1) -> int:
    print(f"persist: {message}", file=sys.stderr)
    return code


def _endpoint_free(endpoint: str) -> bool:
    """True if nothing listens on a tcp:// endpoint (ipc: true if no socket file)."""
    url = urlparse(endpoint)
    if url.scheme == "ipc":
        return not os.path.exists(endpoint[len("ipc://") :])
    if url.scheme != "tcp" or not url.port:
        return False
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((url.hostname or "127.0.0.1", url.port)) != 0


# -- broker ---------------------------------------------------------------------
def cmd_broker(args: argparse.Namespace) -> int:
    import zmq

    from .broker import Broker

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
        args.embedded == "auto" and args.broker == DEFAULT_SUBSCRIBE and _endpoint_free(args.broker)
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
    from .lock import AlreadyRunning

    try:
        options = _options(args)
    except ValueError as exc:
        return _fail(str(exc), 2)
    if args.detach:
        return _detach(args, options)
    from .service import run_recorder

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
    from .fsutil import ensure_private_dir, open_private

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
    os.kill(health.pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not process_matches(health.pid, health.status.get("process_started")):
            print(f"persist: recorder PID {health.pid} stopped")
            return 0
        time.sleep(0.05)
    return _fail(f"recorder PID {health.pid} did not stop within {args.timeout}s")


def cmd_checkpoint(args: argparse.Namespace) -> int:
    from .control import CheckpointError, request_checkpoint

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
    from .publisher import Publisher

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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
