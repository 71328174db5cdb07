"""Time from `on_agent_connected` to the launch menu on screen, recorder not yet running.

    .venv/bin/python bench/launch.py [--runs 5] [--journal DIR]

Each run gives a child process a real pseudo-terminal (120x36) as stdin, stdout and
stderr, with a log folder whose recorder is stopped (a fresh empty folder, or a copy
of --journal). The child notes `time.time()` and calls
`PersistenceLauncher(...).on_agent_connected("bench")`, which starts the recorder
(embedded broker on free loopback ports), waits for its status to say "recording",
then runs the menu (`persist-tui --launch`) on the terminal. This process reads the
terminal's output and stops the clock when the menu's greeting ("Welcome back,
bench") has been drawn, then presses `f` (start fresh) and lets the child run its
exit step. Reported: the recorder start (measured inside the launcher) and the
whole connect-to-menu time, median and worst of the runs.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import select
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
t0 = time.time()
from recorder.launch.launcher import PersistenceLauncher
log_dir, broker, publish, report = sys.argv[1:5]
pl = PersistenceLauncher(log_dir, broker=broker, publish_endpoint=publish, embedded="yes")
with open(report, "w") as f:
    f.write(json.dumps({"t0": t0}))
result = pl.on_agent_connected("bench")
exit_info = pl.on_agent_exit()
with open(report, "w") as f:
    f.write(json.dumps({"t0": t0, "recorder": pl.timings.get("recorder"),
                        "kind": result.kind, "stopped": exit_info.stopped}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_run(log_dir: Path, tmp: Path) -> dict[str, float]:
    report = tmp / "report.json"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 36, 120, 0, 0))
    argv = [
        sys.executable,
        "-c",
        CHILD,
        str(log_dir),
        f"tcp://127.0.0.1:{free_port()}",
        f"tcp://127.0.0.1:{free_port()}",
        str(report),
    ]
    env = {**os.environ, "TERM": "xterm-256color", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True, cwd=ROOT
    )
    os.close(slave)
    seen = b""
    drawn = None
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            seen = (seen + chunk)[-8192:]
            if drawn is None and b"Welcome back, bench" in seen:
                drawn = time.time()
                time.sleep(0.2)
                os.write(master, b"f")  # start fresh: the menu exits
        proc.wait(30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    data = json.loads(report.read_text())
    if drawn is None:
        raise RuntimeError(f"the menu never appeared: {seen[-400:]!r}")
    return {
        "menu": drawn - data["t0"],
        "recorder": data["recorder"],
        "kind": data["kind"],
        "stopped": data["stopped"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--journal", type=Path, help="copy this log folder for each run")
    args = parser.parse_args()
    results = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="persist-launch-") as tmp:
            log_dir = Path(tmp) / "logs"
            if args.journal:
                shutil.copytree(args.journal, log_dir, symlinks=True)
                (log_dir / "status.json").unlink(missing_ok=True)
            results.append(one_run(log_dir, Path(tmp)))
    menu = [r["menu"] for r in results]
    rec = [r["recorder"] for r in results]
    what = f"copy of {args.journal}" if args.journal else "empty folder"
    print(f"runs: {len(results)} ({what})")
    print(
        f"recorder started and recording: median {statistics.median(rec) * 1000:.0f} ms, "
        f"worst {max(rec) * 1000:.0f} ms"
    )
    print(
        f"on_agent_connected -> menu drawn: median {statistics.median(menu) * 1000:.0f} ms, "
        f"worst {max(menu) * 1000:.0f} ms"
    )
    print(
        f"every run chose fresh and stopped its recorder: "
        f"{all(r['kind'] == 'fresh' and r['stopped'] for r in results)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
