"""Message volume over time, computed without reading the whole journal.

Records are in time order, so the number of records in a time bucket is the
difference of two binary searches: a few thousand reads for any journal size.

Only messages (kind "msg") are counted, not heartbeats, events, gaps or segment
markers. Telling them apart never parses a line: every writer puts `kind` right
after `v`, `seq` and `ts` (numbers), so the first ~100 bytes of a line (`Store.head`:
one small read at an offset the store's line index already has) say what it is. A
bucket of up to SAMPLE records is counted exactly; a bigger one is estimated from SAMPLE
evenly spaced lines (busy buckets are where non-messages are rarest: a heartbeat a
second per publisher, a segment marker per 64 MiB). Cost: at most BUCKETS x SAMPLE
small reads whatever the journal's size (see `Activity.exact`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from recorder.store.reader import Store, index_at_time
from recorder.store.records import KIND_MESSAGE

BUCKETS = 480
SAMPLE = 32
"""Lines looked at per bucket at most; buckets with more are estimated."""

_HEAD_BYTES = 96
_KIND_KEY = b'"kind":"'
_MSG = KIND_MESSAGE.encode()


@dataclass(frozen=True)
class Activity:
    """Messages per time bucket between `start` and `end`, plus checkpoint times."""

    start: float
    end: float
    counts: list[int]
    """Messages (kind "msg") per bucket; estimated in buckets of more than SAMPLE records."""
    marks: list[float] = field(default_factory=list)
    records: int | None = None
    """Every record in the span, whatever its kind (exact)."""
    exact: bool = True
    """False when some bucket's message count is an estimate."""

    @property
    def messages(self) -> int:
        return sum(self.counts)

    @property
    def total(self) -> int:
        """Records of every kind in the span (exact): what the strip's axis calls "records"."""
        return self.records if self.records is not None else sum(self.counts)

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


def is_message(store: Store, index: int) -> bool:
    """Whether record `index` is a message, from the first bytes of its line."""
    head = store.head(index, _HEAD_BYTES)
    if head.startswith(b'{"v":'):
        # Only numbers come before `kind`, so the first match is the record's own key
        # (a `"kind":"` inside a string would have its quotes escaped).
        k = head.find(_KIND_KEY)
        if k >= 0:
            stop = head.find(b'"', k + len(_KIND_KEY))
            if stop >= 0:
                return head[k + len(_KIND_KEY) : stop] == _MSG
    return store.record(index).is_message  # an unusual line: parse it


def count_messages(store: Store, lo: int, hi: int, sample: int = SAMPLE) -> tuple[int, bool]:
    """Messages among records [lo, hi): (count, exact). At most `sample` reads."""
    n = hi - lo
    if n <= 0:
        return 0, True
    if n <= sample:
        return sum(is_message(store, i) for i in range(lo, hi)), True
    step = n / sample
    hits = sum(is_message(store, lo + int((k + 0.5) * step)) for k in range(sample))
    return round(n * hits / sample), False


def compute_activity(
    store: Store,
    marks: list[float],
    buckets: int = BUCKETS,
    sample: int = SAMPLE,
    *,
    messages_only: bool = True,
) -> Activity | None:
    """Bucketed message counts over the journal's whole time span
    (`messages_only=False`: records of every kind, exact, as before)."""
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
    counts = []
    exact = True
    for i in range(buckets):
        if not messages_only:
            counts.append(edges[i + 1] - edges[i])
            continue
        c, ok = count_messages(store, edges[i], edges[i + 1], sample)
        counts.append(c)
        exact = exact and ok
    return Activity(start, end, counts, sorted(marks), records=edges[-1], exact=exact)
