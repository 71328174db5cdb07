"""Running the agent under `persist launch`: same terminal, signals forwarded, its exit code."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable

# -- running the agent (persist launch) ------------------------------------------------
FORWARDED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def run_agent(
    argv: list[str],
    env: dict[str, str],
    cwd: str | None = None,
    *,
    started: Callable[[], None] = lambda: None,
) -> int:
    """Run the agent in this terminal and process group; forward signals; its exit code.
    `started` is called once the agent's process runs (not when it cannot be started).

    A signal someone sends to us is forwarded to the agent. A signal the terminal
    sends (Ctrl-C, hang-up) already reaches the agent, which shares our process
    group, so it is not sent a second time. A signal death becomes 128 + signal.

    When the agent stops (Ctrl-Z: the terminal's SIGTSTP, or an agent that stops itself
    with SIGSTOP as Claude Code does), the launcher stops too, so the shell gets the
    terminal back and reports the job stopped; `fg` (or `bg`) continues the launcher,
    which continues the agent. The launcher does not stop on a SIGTSTP of its own: it
    stops when, and only when, the agent does.
    """
    waited = {*FORWARDED, signal.SIGTSTP, signal.SIGCHLD}
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
        started()
        same_group = True
        with contextlib.suppress(OSError):
            same_group = os.getpgid(proc.pid) == os.getpgrp()
        while proc.poll() is None:
            info = signal.sigtimedwait(waited, 0.25)
            if info is None or info.si_signo == signal.SIGCHLD:
                _stop_with(proc.pid)
                continue
            from_terminal = info.si_code > 0  # sent by the kernel: tty, hang-up
            if not (from_terminal and same_group):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, info.si_signo)
        code = proc.returncode
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    return 128 - code if code < 0 else code


def _stop_with(pid: int) -> None:
    """If the agent has stopped, stop this process too, and continue the agent when
    this process is continued.

    The shell waits for the launcher, not for the agent: without this an agent that
    stops itself left the launcher holding the terminal, the shell waiting on it.
    `fg` sends SIGCONT to the whole job (the agent shares our process group), and the
    agent is sent one more in case it runs in a group of its own.
    """
    try:  # reports a stop (only), once; an exit is left for proc.poll() to reap
        stopped = os.waitid(os.P_PID, pid, os.WSTOPPED | os.WNOHANG)
    except ChildProcessError:
        return
    if stopped is None:
        return
    os.kill(os.getpid(), signal.SIGSTOP)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)
