"""Signals acted on by a thread of their own, not inside their handler.

A Python signal handler runs in the main thread between two bytecodes, also while that
thread holds a lock. One that sets a `threading.Event` the main thread also waits on or
clears deadlocks when the signal lands while the main thread is inside that Event's own
lock: the recorder's SIGTERM arrived during `attention.clear()` and was never acted on
(about one stop in fifteen of `test_lock_outside.py` under load; its stacks showed the
main thread waiting for the lock it held). Here the C-level handler writes the signal's
number into a pipe (`signal.set_wakeup_fd`, no Python code, no lock), and a thread reads
it and calls `act(signum)`, which may take any lock.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType, TracebackType
from typing import Any


def _nothing(_signum: int, _frame: FrameType | None) -> None:
    """The Python-level handler: the signal's work is done by the relay's thread."""


class SignalRelay:
    """`with SignalRelay({SIGTERM, SIGINT}, act):` calls `act(signum)` from a thread of
    its own for each of those signals while inside; the handlers and the wake-up fd
    there before come back after. In a thread other than the main one (where Python
    sets no handler) it does nothing."""

    def __init__(self, signals: Iterable[signal.Signals], act: Callable[[int], None]) -> None:
        self.signals = tuple(signals)
        self.act = act
        self._previous: dict[signal.Signals, Any] = {}
        self._old_fd = -1
        self._read = self._write = -1
        self._thread: threading.Thread | None = None

    def __enter__(self) -> SignalRelay:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> SignalRelay:
        if threading.current_thread() is not threading.main_thread():
            return self
        self._read, self._write = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self._write, False)  # what set_wakeup_fd requires
        self._thread = threading.Thread(target=self._run, name="persist-signals", daemon=True)
        self._thread.start()
        self._old_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, _nothing)
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        for sig, old in self._previous.items():
            signal.signal(sig, old)
        signal.set_wakeup_fd(self._old_fd)
        os.close(self._write)  # the thread reads an end of file and ends
        self._thread.join(1.0)
        if not self._thread.is_alive():  # never close what it may still read
            os.close(self._read)
        self._thread = None

    def _run(self) -> None:
        while True:
            try:
                data = os.read(self._read, 64)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum in self.signals:
                    self.act(signum)
