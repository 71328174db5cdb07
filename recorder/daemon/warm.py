"""Line index caches of closed segments, kept warm by the recorder.

Readers (the TUI, export, restore) index each segment's line starts and save the
index beside it (`index/seg-NNNNNN.jsonl.idx`, see `store.reader.SegmentIndex`).
Before, only readers wrote those caches, so the first open after a week of
recording indexed a week of segments. Now the recorder indexes each segment once
it is closed, on a background thread at the lowest CPU priority, so a reader only
indexes the segment being written; with the index it writes the segment's marks
(which lines are bookkeeping, `store.marks`), so a list that hides them reads none of
the closed segments either, and its check (every line has a record's shape,
`store.linecheck`), so a JSONL export copies it without reading it. The caches are
derived: wrong or missing ones are rebuilt by readers as before.

The same thread compresses each closed segment (`store.compact`, on by default,
`--compress off`): a thread rather than a child process because it is told exactly
which segment is being written (never compressed) without guessing from the folder,
and because zstd and SHA-256 do their work in C without the GIL, so the receive
path does not wait on them; at the lowest CPU priority it takes only idle time.

It waits while the recorder is busy (`busy()`: a flood is coming in) and starts or
goes on only after it has been quiet for a while, or after MAX_DEFER s of waiting
(traffic that never stops still gets its segments compressed). A thread at the lowest priority
that holds the GIL for its Python parts, on a machine whose cores the flood keeps
busy, is scheduled late and the receive thread waits for it: with compression
running, a 2 KB flood on 2 cores was recorded at 51k msgs/s, against 76k without.
Closed segments are not urgent: they wait for the flood to end. For the same reason
they wait while other processes keep every core busy (`others_busy`): nice values do
not reach across sessions where Linux groups by session (`priority`), and this thread
lives in the recorder's. Both waits end at MAX_DEFER.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from recorder.daemon.priority import BUSY_POLL, MAX_DEFER, Deferral, lower_thread_priority
from recorder.store.compact import compact, compact_lock, repair
from recorder.store.layout import Layout, list_segments, segment_number
from recorder.store.linecheck import write_check
from recorder.store.marks import write_marks
from recorder.store.reader import SegmentIndex

log = logging.getLogger("agent_persist.recorder")


class IndexWarmer:
    def __init__(
        self,
        layout: Layout,
        *,
        compress: bool = False,
        busy: Callable[[], bool] = lambda: False,
        others_busy: Callable[[], bool] = lambda: False,
    ) -> None:
        """`busy()`: whether background work should wait (the recorder is in a flood);
        `others_busy()`: whether it should wait because other processes leave no core
        idle (the recorder gives `priority.other_work_gate()`)."""
        self.layout = layout
        self.compress = compress
        self.busy = busy
        self.others_busy = others_busy
        self.done: set[int] = set()  # segments indexed (or found cached) by this process
        self.below = 0  # segments under this number have been asked for
        self.stopping = threading.Event()
        self._deferral = Deferral(lambda: self.busy() or self.others_busy(), most=MAX_DEFER)
        self._pause = _Pause(self.stopping, self._deferral.should_wait)
        self._thread: threading.Thread | None = None

    def warm(self, below: int) -> int:
        """Index and cache every closed segment numbered under `below` not done yet;
        returns how many were looked at. Stops early when asked to, or when `busy()`
        (after the segment it is on). With `compress`, plain closed segments are
        compressed first (which writes their cache)."""
        looked = 0
        if not self.compress:  # leftovers of an interrupted `persist compact` all the same
            with compact_lock(self.layout) as held:
                for line in repair(self.layout) if held else ():
                    log.warning("compaction: %s", line)
        else:
            report = compact(self.layout, below=below, stop=self._pause)
            for line in (*report.repaired, *report.problems):
                log.warning("compaction: %s", line)
            if report.done:
                log.info(
                    "compressed %d segments: %d -> %d bytes",
                    len(report.done),
                    report.size,
                    report.stored,
                )
        for path in list_segments(self.layout):
            number = segment_number(path.name) or 0
            if number >= below or number in self.done:
                continue
            if self._pause.is_set():
                break
            seg = SegmentIndex(path, self.layout.index)  # loads a cache that is right
            try:
                seg.update()  # nothing to do when the cache was right
                seg.close_tail()
                seg.save_cache()  # a no-op when it is already on disk
                write_marks(seg, self.layout.index)
                write_check(seg, self.layout.index)
            finally:
                seg.close()
            self.done.add(number)
            looked += 1
        return looked

    def start(self, below: int) -> None:
        """Warm segments under `below` in the background (one thread at a time)."""
        if below <= self.below or (self._thread is not None and self._thread.is_alive()):
            return
        self.below = below
        self._thread = threading.Thread(
            target=self._run, args=(below,), name="persist-indexer", daemon=True
        )
        self._thread.start()

    def _run(self, below: int) -> None:
        lower_thread_priority()
        self._deferral.done()  # a new pass: its waits count from now
        try:
            while not self.stopping.is_set():
                if self._deferral.should_wait():
                    self.stopping.wait(BUSY_POLL)
                    continue
                self.warm(below)
                if not self._deferral.should_wait():
                    return  # done (a pass a flood cut short is taken again once quiet)
        except Exception as exc:  # a cache is only an optimisation: say it, go on
            log.warning("could not index closed segments: %s", exc)

    def stop(self, timeout: float = 0.2) -> None:
        """Ask the thread to stop after the segment it is on; a stop never waits long
        for it (a cache left half-written is a temp file, removed at the next start)."""
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)


class _Pause:
    """Set while the warmer should not start another segment: stopping, or waiting."""

    def __init__(self, stopping: threading.Event, wait: Callable[[], bool]) -> None:
        self.stopping = stopping
        self.wait = wait

    def is_set(self) -> bool:
        return self.stopping.is_set() or self.wait()
