"""Which records a list shows: bookkeeping (heartbeats, recorder events) hidden by kind.

The kind is read from the line's bytes (`"kind":"…"` near its start), never by
parsing it, so a scan of the journal costs a read and a byte search per line. The
result is an array of record indices, built once in a worker and extended as the
journal grows. A publisher says goodbye twice (a full queue may drop one): when
heartbeats are shown, an identical second goodbye is not listed again (it stays in
the journal, like every record).
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Iterable

from recorder.store.reader import Record, Store

BOOKKEEPING = frozenset((b"heartbeat", b"event", b"segment"))
"""Hidden until asked for: publisher heartbeats, the recorder's own events, segment starts."""


def line_kind(line: bytes) -> bytes | None:
    """The record kind in a journal line (None for a line without one: shown)."""
    at = line.find(b'"kind":"', 0, 200)
    if at < 0:
        return None
    end = line.find(b'"', at + 8, at + 64)
    return line[at + 8 : end] if end > 0 else None


class RecordFilter:
    """Indices of the records to show, in journal order."""

    def __init__(self, hidden: frozenset[bytes] = BOOKKEEPING) -> None:
        self.hidden = hidden
        self.indices: array[int] = array("Q")
        """Records shown by default: no bookkeeping."""
        self.everything: array[int] = array("Q")
        """Every record but a repeated goodbye (shown when bookkeeping is)."""
        self.scanned = 0  # records looked at so far (the next one to look at)
        self._last_bye: bytes | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def add(self, records: Iterable[Record], cancelled: Callable[[], bool] = lambda: False) -> bool:
        """Look at `records` (the ones after `scanned`, in order); False if cancelled."""
        hidden = self.hidden
        keep = self.indices.append
        keep_all = self.everything.append
        for n, rec in enumerate(records):
            if n & 4095 == 0:
                if cancelled():
                    return False
                time.sleep(0)  # let the UI thread run between chunks (the GIL)
            line = rec.line
            kind = line_kind(line)
            self.scanned = rec.index + 1
            if kind == b"heartbeat" and b'"bye":true' in line:
                payload = line[line.find(b'"frames":') :]
                if payload == self._last_bye:
                    continue
                self._last_bye = payload
            keep_all(rec.index)
            if kind not in hidden:
                keep(rec.index)
        return True

    def extend(self, store: Store, cancelled: Callable[[], bool] = lambda: False) -> bool:
        """Look at every record of `store` not looked at yet."""
        return self.add(store.records(self.scanned), cancelled)

    def row_of(self, index: int) -> int:
        """The row of record `index`, or of the nearest shown record before it (0 if none)."""
        lo, hi = 0, len(self.indices)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.indices[mid] <= index:
                lo = mid + 1
            else:
                hi = mid
        return max(0, lo - 1)
