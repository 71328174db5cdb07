"""A stand-in agent for `persist launch` tests.

    python tests/fake_agent.py REPORT [--wait READY_FILE] [--exit N]

Checks its PERSIST_* environment, reads the restore bundle when there is one,
and writes what it found to REPORT as JSON. With --wait it writes READY_FILE
and waits for SIGTERM/SIGINT/SIGHUP (the signal is reported, exit code 42).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("report")
    parser.add_argument("--wait")
    parser.add_argument("--exit", type=int, default=0)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k.startswith("PERSIST_")}
    report: dict = {
        "env": env,
        "pid": os.getpid(),
        "stdin_tty": os.isatty(0),
        "stdout_tty": os.isatty(1),
    }
    restore = env.get("PERSIST_RESTORE_FILE")
    if restore:
        lines = Path(restore).read_bytes().splitlines(keepends=True)
        manifest = json.loads(Path(env["PERSIST_RESTORE_MANIFEST"]).read_text())
        report["bundle"] = {
            "lines": [line.decode() for line in lines],
            "messages": sum(1 for line in lines if json.loads(line)["kind"] == "msg"),
            "manifest": manifest,
            "transcript": Path(env["PERSIST_RESTORE_TRANSCRIPT"]).read_text(),
        }
    agents = Path(env.get("PERSIST_LOG_DIR", ".")) / "agents"
    report["registrations"] = [  # the launcher's, while this agent runs
        json.loads(p.read_text()) for p in sorted(agents.glob("*.agent.json"))
    ]
    if args.wait:
        got = threading.Event()
        received: list[int] = []

        def handler(signum: int, _frame: object) -> None:
            received.append(signum)
            got.set()

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, handler)
        Path(args.wait).write_text(str(os.getpid()))
        got.wait(60)
        report["signals"] = received
        Path(args.report).write_text(json.dumps(report))
        return 42
    Path(args.report).write_text(json.dumps(report))
    return args.exit


if __name__ == "__main__":
    sys.exit(main())
