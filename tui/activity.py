"""Message volume over time, computed without reading the whole journal.

Records are in time order, so the number of records in a time bucket is the
difference of two binary searches: a few thousand reads for any journal size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from recorder.search import index_at_time
from recorder.store import Store

BUCKETS = 480


@dataclass(frozen=True)
class Activity:
    """Records per time bucket between `start` and `end`, plus checkpoint times."""

    start: float
    end: float
    counts: list[int]
    marks: list[float] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts)

    def resample(self, width: int) -> list[int]:
        """Counts summed into `width` columns."""
        n = len(self.counts)
        if width <= 0 or n == 0:
            return []
        out = [0] * width
        for i, c in enumerate(self.counts):
            out[min(width - 1, i * width // n)] += c
        return out

    def column(self, ts: float, width: int) -> int:
        if self.end <= self.start:
            return width - 1
        frac = (ts - self.start) / (self.end - self.start)
        return max(0, min(width - 1, int(frac * width)))


def first_ts(store: Store, lo: int = 0) -> float | None:
    for i in range(lo, min(len(store), lo + 64)):
        ts = store.record(i).ts
        if ts is not None:
            return float(ts)
    return None


def last_ts(store: Store) -> float | None:
    n = len(store)
    for i in range(n - 1, max(-1, n - 65), -1):
        ts = store.record(i).ts
        if ts is not None:
            return float(ts)
    return None


def compute_activity(store: Store, marks: list[float], buckets: int = BUCKETS) -> Activity | None:
    """Bucketed record counts over the journal's whole time span."""
    start, end = first_ts(store), last_ts(store)
    if start is None or end is None:
        return None
    end = max(end, start + 1.0)
    step = (end - start) / buckets
    edges = [0]
    lo = 0
    for b in range(1, buckets):
        lo = index_at_time(store, start + b * step, lo)
        edges.append(lo)
    edges.append(len(store))
    counts = [edges[i + 1] - edges[i] for i in range(buckets)]
    return Activity(start, end, counts, sorted(marks))
