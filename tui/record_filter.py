"""Which records a list shows: bookkeeping (heartbeats, recorder events) hidden by kind.

The bookkeeping lines are found by `recorder.store.marks` (a byte search per segment,
kept for closed segments in `metadata_index/`), never by reading every record, and are
rare: the filter holds the hidden indices and shows the rest, as a sequence computed
from them (`Shown`), so millions of records cost neither a scan nor an array of their
indices. It is extended as the journal grows. A publisher says goodbye twice (a full
queue may drop one): when heartbeats are shown, an identical second goodbye is not
listed again (it stays in the journal, like every record).
"""

from __future__ import annotations

import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from typing import overload

from recorder.store.marks import Marks, scan_lines, segment_marks
from recorder.store.reader import Store


class Shown(Sequence[int]):
    """Record indices from 0 to the filter's `scanned`, but `left_out` (ascending)."""

    def __init__(self, owner: RecordFilter, left_out: array[int]) -> None:
        self.owner = owner
        self.left_out = left_out

    def __len__(self) -> int:
        return self.owner.scanned - len(self.left_out)

    @overload
    def __getitem__(self, row: int) -> int: ...
    @overload
    def __getitem__(self, row: slice) -> Sequence[int]: ...
    def __getitem__(self, row: int | slice) -> int | Sequence[int]:
        if isinstance(row, slice):
            return [self[r] for r in range(*row.indices(len(self)))]
        size = len(self)
        if row < 0:
            row += size
        if not 0 <= row < size:
            raise IndexError(row)
        # Left-out index j has `left_out[j] - j` shown records before it: the row-th
        # shown one comes after exactly the left-out ones with at most `row` before them.
        out = self.left_out
        lo, hi = 0, len(out)
        while lo < hi:
            mid = (lo + hi) // 2
            if out[mid] - mid <= row:
                lo = mid + 1
            else:
                hi = mid
        return row + lo

    def __iter__(self) -> Iterator[int]:
        return (self[r] for r in range(len(self)))

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int) or not 0 <= value < self.owner.scanned:
            return False
        at = bisect_left(self.left_out, value)
        return at == len(self.left_out) or self.left_out[at] != value

    def rows_from(self, index: int) -> int:
        """How many records from `index` on are shown."""
        index = min(index, self.owner.scanned)
        return len(self) - (index - bisect_left(self.left_out, index))

    def index(self, value: int, start: int = 0, stop: int | None = None) -> int:
        if value not in self:
            raise ValueError(value)
        row = value - bisect_left(self.left_out, value)
        if row < start or (stop is not None and row >= stop):
            raise ValueError(value)
        return row


class RecordFilter:
    """Which records are shown, in journal order."""

    def __init__(self) -> None:
        self.hidden: array[int] = array("Q")
        """Bookkeeping records (hidden by default), ascending."""
        self.repeated: array[int] = array("Q")
        """Goodbyes identical to the one before (never listed), ascending."""
        self.indices = Shown(self, self.hidden)
        """Records shown by default: no bookkeeping."""
        self.everything = Shown(self, self.repeated)
        """Every record but a repeated goodbye (shown when bookkeeping is)."""
        self.scanned = 0  # records looked at so far (the next one to look at)
        self._last_bye: int | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def extend(self, store: Store, cancelled: Callable[[], bool] = lambda: False) -> bool:
        """Look at every record of `store` not looked at yet; False if cancelled. A
        closed segment looked at from its start uses (or writes) its cached marks."""
        total = len(store)
        segments = store.segments
        cache = store.layout.index if store.cache_index else None
        while self.scanned < total:
            if cancelled():
                return False
            seg, i = store.locate(self.scanned)
            base = self.scanned - i
            stop = min(len(seg), total - base)
            whole = i == 0 and seg is not segments[-1] and stop == len(seg)  # and closed
            marks = segment_marks(seg, cache) if whole else scan_lines(seg, i, stop)
            self._take(self.scanned, marks)
            time.sleep(0)  # let the UI thread run between segments (the GIL)
        return True

    def _take(self, base: int, marks: Marks) -> None:
        self.hidden.extend(base + k for k in marks.hidden)
        for k, key in marks.byes:
            if key == self._last_bye:
                self.repeated.append(base + k)
            self._last_bye = key
        self.scanned = base + marks.lines

    def row_of(self, index: int) -> int:
        """The row of record `index`, or of the nearest shown record before it (0 if none)."""
        index = min(index, self.scanned - 1)  # one not looked at yet: the last shown
        shown_upto = index + 1 - bisect_right(self.hidden, index)  # shown in [0, index]
        return max(0, shown_upto - 1)
