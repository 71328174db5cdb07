"""Signals acted on by `SignalRelay`'s thread: a process whose main thread keeps taking
the lock of the Event a signal sets is never stuck by the signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# The main thread spends its time inside `Event.clear`'s lock, as the recorder's main
# loop does (`attention.clear()` at every wake-up): a handler that set the Event itself
# would, landing there, wait for that lock for ever.
CHILD = """
import os, signal, sys, threading
from recorder.daemon.signals import SignalRelay

attention = threading.Event()
acted = []
def act(signum):
    acted.append(signum)
    attention.set()

flag = sys.argv[1]
with SignalRelay((signal.SIGUSR2,), act):
    print("ready", flush=True)
    while not os.path.exists(flag):
        attention.clear()
print(f"acted {len(acted)}", flush=True)
print("handler", signal.getsignal(signal.SIGUSR2), signal.set_wakeup_fd(-1), flush=True)
"""


def test_a_signal_landing_inside_the_lock_of_the_event_it_sets_is_acted_on(
    tmp_path: Path,
) -> None:
    flag = tmp_path / "stop"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(flag)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        end = time.monotonic() + 2.0
        sent = 0
        while time.monotonic() < end:
            os.kill(child.pid, signal.SIGUSR2)
            sent += 1
            time.sleep(0.0005)
        flag.touch()
        out, _ = child.communicate(timeout=10)
    finally:
        child.kill()
    acted, restored = out.splitlines()
    assert child.returncode == 0, out
    # signals of one kind sent faster than they are taken merge: some, not all, are acted on
    assert 0 < int(acted.removeprefix("acted ")) <= sent, (acted, sent)
    # the handler and wake-up fd from before are back once the relay ends
    assert restored == f"handler {signal.SIG_DFL!s} -1", restored
