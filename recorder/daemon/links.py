"""The recorder's links to the bus: each broker it connects to, each endpoint it binds.

One SUB socket follows them all (zmq queues fairly between them). The transport
reports what its monitor sees, per endpoint; `Links` keeps each one's state and
says which journal records that calls for: a `broker-outage` gap when a broker
comes back after an outage (for that broker only), or when the recorder stops while
it is still out of reach (`stop`), and an event for every change.
No zmq and no clock of its own: the caller passes the time, so tests drive it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recorder.store.records import KIND_EVENT, KIND_GAP
from recorder.store.status import (
    WITHOUT_CURVE,
    Connection,
    EndpointState,
    LinkMode,
    RefusedPeers,
)

if TYPE_CHECKING:
    from recorder.bus.keys import Refused

# A publisher refused at a bound endpoint is journaled (and logged) at once, then at
# most once a minute per endpoint while refusals go on: a publisher retrying every
# 100 ms would write a line each time. The ones in between are counted, and the next
# record says how many there were and names their keys: the recorder's tick writes it
# once the minute is over (`due`), or its stop, whichever comes first.
REFUSED_EVERY = 60.0
_KEYS_NAMED = 10  # keys one `publisher-refused` event names; the others are counted


@dataclass
class Link:
    endpoint: str
    mode: LinkMode
    connection: Connection = Connection.CONNECTING
    since: float | None = None  # when `connection` began (None: still trying)
    outage_from: float | None = None  # when the current outage began (connect links)
    first_connected: float | None = None  # since then we have been subscribed here
    peers: int = 0  # publishers connected to a bound endpoint
    handshake_failed: str | None = None  # why, when one failed and none succeeded since
    refused: RefusedPeers | None = None  # publishers refused here (a bound endpoint)
    unclosed: int = 0  # refused publishers' connections whose end is still to come
    journaled_at: float | None = None  # the last `publisher-refused` event's time
    pending: int = 0  # refusals since then, not journaled yet
    pending_since: float | None = None
    pending_keys: dict[str, None] = field(default_factory=dict)  # in order, at most 1,000
    pending_without_curve: bool = False  # one of them spoke no CURVE at all

    def state(self) -> EndpointState:
        return EndpointState(
            endpoint=self.endpoint,
            mode=self.mode,
            connection=self.connection,
            since=self.since,
            subscribed_since=self.first_connected,
            peers=self.peers,
            handshake_failed=self.handshake_failed,
            refused=self.refused,
        )


class Links:
    """Every endpoint of the recorder's socket, by the name the user gave it."""

    def __init__(self, connects: tuple[str, ...], binds: tuple[str, ...], heartbeat_ms: int):
        self.links: dict[str, Link] = {ep: Link(ep, LinkMode.CONNECT) for ep in connects}
        self.links.update({ep: Link(ep, LinkMode.BIND) for ep in binds})
        self.noticed_after = 3 * heartbeat_ms / 1000  # the ZMTP heartbeat timeout
        # refusals are counted on the transport's thread and journaled by the
        # recorder's tick (`due`): one lock keeps a count from falling between them
        self._refusals = threading.Lock()

    def find(self, endpoint: str) -> Link | None:
        """The link an event names; an event without a name goes to a lone broker."""
        link = self.links.get(endpoint)
        if link is None and not endpoint:
            connects = [ln for ln in self.links.values() if ln.mode is LinkMode.CONNECT]
            link = connects[0] if len(connects) == 1 else None
        return link

    def event(
        self, event: str, ts: float, endpoint: str, last_ts: float | None
    ) -> list[dict[str, Any]]:
        """Apply a monitor event; returns the records to journal (heads, without `ts`).

        `last_ts` is when the last message arrived: an outage noticed by the
        heartbeat timeout began at that moment, or at most the timeout before now.
        """
        link = self.find(endpoint)
        if link is None:
            return [{"kind": KIND_EVENT, "event": event, "endpoint": endpoint}]
        if link.mode is LinkMode.BIND:
            return self._bind_event(link, event, ts)
        records: list[dict[str, Any]] = []
        if event == "connected":
            if link.connection == Connection.DISCONNECTED and link.outage_from is not None:
                records.append(_outage(link, link.outage_from, ts))
            link.outage_from = None
            link.connection = Connection.CONNECTED
            link.handshake_failed = None
            if link.first_connected is None:
                link.first_connected = ts
        elif event == "disconnected":
            if link.connection != Connection.CONNECTED:
                return []
            link.connection = Connection.DISCONNECTED
            last = last_ts if last_ts is not None else ts
            link.outage_from = max(min(last, ts), ts - self.noticed_after)
        else:
            return []
        link.since = link.outage_from if event == "disconnected" else ts
        records.append(
            {"kind": KIND_EVENT, "event": event, "broker": link.endpoint, "detail": endpoint}
        )
        return records

    def stop(self, ts: float) -> list[dict[str, Any]]:
        """The recorder stops at `ts`: a `broker-outage` gap for each broker still out of
        reach, from its outage's start to now (no later event writes another). What its
        publishers sent meanwhile is a sequence hole when the next recorder hears from
        them, as after an outage that ends while it runs."""
        records = []
        for link in self.links.values():
            if link.pending:
                with self._refusals:
                    records.append(_refused_event(link, ts))
            if link.connection == Connection.DISCONNECTED and link.outage_from is not None:
                gap = _outage(link, link.outage_from, ts)
                gap["detail"] += ": still out of reach when the recorder stopped"
                records.append(gap)
                link.outage_from = None
        return records

    def _bind_event(self, link: Link, event: str, ts: float) -> list[dict[str, Any]]:
        """A bound endpoint: listening once, then publishers coming and going."""
        if event == "listening":
            link.connection = Connection.LISTENING
            link.since = link.first_connected = ts
            return [{"kind": KIND_EVENT, "event": "listening", "endpoint": link.endpoint}]
        if event == "connected":
            link.peers += 1
        elif event == "disconnected":
            if link.unclosed:  # a refused publisher's connection: it never was a peer
                link.unclosed -= 1
                return []
            if not link.peers:  # nor one whose handshake never ended (a port scan)
                return []
            link.peers -= 1
        else:
            return []
        return [
            {
                "kind": KIND_EVENT,
                "event": f"peer-{event}",
                "endpoint": link.endpoint,
                "peers": link.peers,
            }
        ]

    def handshake_failed(
        self, ts: float, endpoint: str, why: str, refused: Refused | None = None
    ) -> list[dict[str, Any]]:
        """A handshake with a broker failed (`why`); returns the records to journal: a
        `handshake-failed` event the first time, and when the reason changes, not at each
        retry. A handshake that succeeds ends it. At a bound endpoint a publisher was
        refused (`refused`: the key our allow-list refused, its key "" when the
        handshake failed before one was asked for), or the connection ended during its
        handshake (None): see `_refused`."""
        link = self.find(endpoint)
        if link is not None and link.mode is LinkMode.BIND:
            return self._refused(link, ts, refused)
        if link is None or link.connection == Connection.CONNECTED or link.handshake_failed == why:
            return []
        link.handshake_failed = why
        if link.connection == Connection.CONNECTING:
            link.since = link.since or ts
        return [
            {
                "kind": KIND_EVENT,
                "event": "handshake-failed",
                "broker": link.endpoint,
                "detail": why,
            }
        ]

    def _refused(self, link: Link, ts: float, refused: Refused | None) -> list[dict[str, Any]]:
        """A publisher refused at bound `link`: counted (`persist status`), and a
        `publisher-refused` event at once, then at most every `REFUSED_EVERY` seconds
        for those that came since (their number and keys). Its connection's end that
        follows is no `peer-disconnected`: it never was connected. Nor is that of a
        connection that ended during its handshake (`refused` None), which is not
        counted: libzmq says nothing of why."""
        link.unclosed += 1
        if refused is None:  # a connection that ended during its handshake: not refused
            return []
        with self._refusals:
            return self._count_refusal(link, ts, refused)

    def _count_refusal(self, link: Link, ts: float, refused: Refused) -> list[dict[str, Any]]:
        key, address = refused.key or None, refused.address or None
        before = link.refused
        link.refused = RefusedPeers(
            count=(before.count if before else 0) + 1,
            last_ts=ts,
            key=key,
            address=address,
            without_curve=refused.without_curve,
        )
        link.pending += 1
        link.pending_since = link.pending_since or ts
        if refused.without_curve:
            link.pending_without_curve = True
        elif len(link.pending_keys) < 1000:
            link.pending_keys[key or ""] = None
        if link.journaled_at is not None and ts - link.journaled_at < REFUSED_EVERY:
            return []
        return [_refused_event(link, ts)]

    def due(self, ts: float) -> list[dict[str, Any]]:
        """The `publisher-refused` events whose minute is over at `ts`: refusals counted
        since the last one are journaled though no other refusal comes (before
        2026-12-07 they waited for the next refusal or the recorder's stop, and a
        recorder killed meanwhile never journaled them)."""
        records = []
        for link in self.links.values():
            if not link.pending:
                continue
            with self._refusals:
                last = link.journaled_at
                # (a wall clock set back since: due now, not a minute after it came back)
                if link.pending and (last is None or not 0 <= ts - last < REFUSED_EVERY):
                    records.append(_refused_event(link, ts))
        return records

    def retry(self, ts: float, endpoint: str) -> None:
        """A connection attempt failed: still connecting since the first attempt."""
        link = self.find(endpoint)
        if link is not None and link.connection == Connection.CONNECTING:
            link.since = link.since or ts

    def overall(self) -> tuple[Connection, float | None]:
        """One state for the status line: the worst broker link and since when.

        Bound endpoints never make it worse (no publisher connected is normal);
        a recorder that only binds is `listening` once every endpoint is."""
        connects = [ln for ln in self.links.values() if ln.mode is LinkMode.CONNECT]
        if not connects:
            binds = list(self.links.values())
            if all(ln.connection == Connection.LISTENING for ln in binds):
                return Connection.LISTENING, max((ln.since or 0.0) for ln in binds) or None
            return Connection.CONNECTING, None
        for worst in (Connection.DISCONNECTED, Connection.CONNECTING):
            down = [ln for ln in connects if ln.connection == worst]
            if down:
                known = [ln.since for ln in down if ln.since is not None]
                return worst, min(known) if known else None
        return Connection.CONNECTED, max((ln.since or 0.0) for ln in connects) or None

    def states(self) -> tuple[EndpointState, ...]:
        return tuple(link.state() for link in self.links.values())


def _outage(link: Link, from_ts: float, to_ts: float) -> dict[str, Any]:
    return {
        "kind": KIND_GAP,
        "cause": "broker-outage",
        "broker": link.endpoint,
        "from_ts": from_ts,
        "to_ts": to_ts,
        "detail": f"no connection to {link.endpoint}",
    }


def _refused_event(link: Link, ts: float) -> dict[str, Any]:
    """The `publisher-refused` event for the refusals at `link` not journaled yet (it
    takes them): how many since when, the keys (the last one first), and what to do."""
    keys = [k for k in link.pending_keys if k]
    last = link.refused
    if last is not None and last.key in keys:
        keys.remove(last.key)
        keys.insert(0, last.key)
    unknown = "" in link.pending_keys
    record: dict[str, Any] = {
        "kind": KIND_EVENT,
        "event": "publisher-refused",
        "endpoint": link.endpoint,
        "refusals": link.pending,
        "since": link.pending_since,
        "keys": keys[:_KEYS_NAMED],
    }
    if len(keys) > _KEYS_NAMED:
        record["other_keys"] = len(keys) - _KEYS_NAMED
    if link.pending_without_curve:
        record["without_curve"] = True
    if last is not None and last.address:
        record["address"] = last.address
    record["detail"] = refused_words(
        link.endpoint,
        link.pending,
        keys,
        unknown,
        last.address if last else None,
        link.pending_without_curve,
    )
    link.journaled_at = ts
    link.pending, link.pending_since, link.pending_keys = 0, None, {}
    link.pending_without_curve = False
    return record


def refused_words(
    endpoint: str,
    n: int,
    keys: list[str],
    unknown: bool,
    address: str | None,
    without_curve: bool = False,
) -> str:
    """One line on publishers refused at a bound endpoint, for the journal and the log."""
    times = "a publisher's handshake" if n == 1 else f"{n} publisher handshakes"
    named = ", ".join(keys[:_KEYS_NAMED]) + (
        f" and {len(keys) - _KEYS_NAMED} more" if len(keys) > _KEYS_NAMED else ""
    )
    why = []
    if keys:
        whose = "key" if len(keys) == 1 else "keys"
        why.append(f"CURVE client {whose} {named} not on the allow-list")
    if without_curve:
        why.append(WITHOUT_CURVE)
    if unknown:
        why.append("no key asked for: the handshake failed first, another server key?")
    where = f" from {address}" if address else ""
    return (
        f"{endpoint}: refused {times}{where} ({'; '.join(why)}); "
        "`persist keys allow FILE` lets a client key in, from the recorder's next start"
    )
