"""Metadata counts from the search index: per sender, topic, chain type and ACE tier.

Senders and topics are counted as the index keeps them, case-folded (as `from:` and
`topic:` match them): `ReviewBot` and `reviewbot` are one sender here. Only the
journal's records are counted: the agents' session files the index also holds would
count the same conversation twice (once from the bus, once from the agent's file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recorder.search.index import SearchIndex

# a message's kind is its chain type; a record that is no message (--all-kinds) is
# counted under its own kind (heartbeat, event, gap, ...), not as "(none)"
GROUPS = (
    ("sender", "sender"),
    ("topic", "topic"),
    ("kind", "CASE WHEN msg = 0 AND coalesce(chain, '') = '' THEN kind ELSE chain END"),
    ("tier", "tier"),
)


@dataclass
class Stats:
    """Counts of indexed records in [since, until] (messages only unless all_kinds)."""

    since: float | None
    until: float | None
    records: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    by: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # most first
    after_now: int = 0
    """Records stamped after now, left out of a window that ends now (`collect_stats`'s
    `now`): a clock set back since they were written, or a journal copied from a machine
    whose clock ran ahead."""
    after_now_first: float | None = None
    after_now_last: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "records": self.records,
            "first_time": self.first_ts,
            "last_time": self.last_ts,
            **{key: dict(rows) for key, rows in self.by.items()},
            "after_now": self.after_now,
        }


def collect_stats(
    index: SearchIndex,
    *,
    since: float | None = None,
    until: float | None = None,
    all_kinds: bool = False,
    now: float | None = None,
) -> Stats:
    """Counts in [since, until]; with `now` and no `until` the window ends at `now`, and
    the records stamped after it are counted apart (`Stats.after_now`), not silently
    left out."""
    where = ["origin IS NULL"] if all_kinds else ["msg = 1 AND origin IS NULL"]
    ahead: list[Any] = [0, None, None]
    if now is not None and until is None:
        until = now
        ahead = index.query(
            f"SELECT count(*), min(ts), max(ts) FROM docs WHERE {' AND '.join(where)} AND ts > ?",
            [now],
        )[0]
    params: list[Any] = []
    if since is not None:
        where.append("ts >= ?")
        params.append(since)
    if until is not None:
        where.append("ts <= ?")
        params.append(until)
    cond = " AND ".join(where)
    stats = Stats(since, until)
    n, first, last = index.query(
        f"SELECT count(*), min(ts), max(ts) FROM docs WHERE {cond}", params
    )[0]
    stats.records, stats.first_ts, stats.last_ts = int(n), first, last
    stats.after_now, stats.after_now_first, stats.after_now_last = ahead
    stats.after_now = int(stats.after_now)
    for key, column in GROUPS:
        rows = index.query(
            f"SELECT coalesce({column}, ''), count(*) FROM docs WHERE {cond} "
            f"GROUP BY 1 ORDER BY 2 DESC, 1",
            params,
        )
        stats.by[key] = [(_shown(str(v)) if v != "" else "(none)", int(c)) for v, c in rows]
    return stats


def _shown(value: str) -> str:
    """A value as the index keeps it (case-folded; a secret in a sender or topic
    redacted, `indexer.journal_document`), with its `[REDACTED:kind]` marks as written."""
    return value.replace("[redacted:", "[REDACTED:")
