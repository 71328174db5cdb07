"""Running the agent under `persist launch`: same terminal, signals forwarded, its exit code."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

# -- running the agent (persist launch) ------------------------------------------------
FORWARDED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def run_agent(argv: list[str], env: dict[str, str], cwd: str | None = None) -> int:
    """Run the agent in this terminal and process group; forward signals; its exit code.

    A signal someone sends to us is forwarded to the agent. A signal the terminal
    sends (Ctrl-C, hang-up) already reaches the agent, which shares our process
    group, so it is not sent a second time. A signal death becomes 128 + signal.
    """
    waited = {*FORWARDED, signal.SIGCHLD}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    try:
        try:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd or None,
                preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_SETMASK, old_mask),
            )
        except (FileNotFoundError, NotADirectoryError) as exc:
            if cwd and exc.filename == cwd:
                print(f"persist: {cwd}: no such folder to run {argv[0]} in", file=sys.stderr)
            else:
                print(f"persist: {argv[0]}: command not found", file=sys.stderr)
            return 127
        except PermissionError:
            print(f"persist: {argv[0]}: permission denied", file=sys.stderr)
            return 126
        same_group = True
        with contextlib.suppress(OSError):
            same_group = os.getpgid(proc.pid) == os.getpgrp()
        while proc.poll() is None:
            info = signal.sigtimedwait(waited, 0.25)
            if info is None or info.si_signo == signal.SIGCHLD:
                continue
            from_terminal = info.si_code > 0  # sent by the kernel: tty, hang-up
            if not (from_terminal and same_group):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, info.si_signo)
        code = proc.returncode
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    return 128 - code if code < 0 else code
