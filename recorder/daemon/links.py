"""The recorder's links to the bus: each broker it connects to, each endpoint it binds.

One SUB socket follows them all (zmq queues fairly between them). The transport
reports what its monitor sees, per endpoint; `Links` keeps each one's state and
says which journal records that calls for: a `broker-outage` gap when a broker
comes back after an outage (for that broker only), or when the recorder stops while
it is still out of reach (`stop`), and an event for every change.
No zmq and no clock of its own: the caller passes the time, so tests drive it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recorder.store.records import KIND_EVENT, KIND_GAP
from recorder.store.status import Connection, EndpointState, LinkMode


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

    def state(self) -> EndpointState:
        return EndpointState(
            endpoint=self.endpoint,
            mode=self.mode,
            connection=self.connection,
            since=self.since,
            subscribed_since=self.first_connected,
            peers=self.peers,
            handshake_failed=self.handshake_failed,
        )


class Links:
    """Every endpoint of the recorder's socket, by the name the user gave it."""

    def __init__(self, connects: tuple[str, ...], binds: tuple[str, ...], heartbeat_ms: int):
        self.links: dict[str, Link] = {ep: Link(ep, LinkMode.CONNECT) for ep in connects}
        self.links.update({ep: Link(ep, LinkMode.BIND) for ep in binds})
        self.noticed_after = 3 * heartbeat_ms / 1000  # the ZMTP heartbeat timeout

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
            link.peers = max(0, link.peers - 1)
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

    def handshake_failed(self, ts: float, endpoint: str, why: str) -> list[dict[str, Any]]:
        """A handshake with a broker failed (`why`); returns the records to journal: a
        `handshake-failed` event the first time, and when the reason changes, not at each
        retry. A handshake that succeeds ends it. A bound endpoint's (a publisher refused)
        is not followed here."""
        link = self.find(endpoint)
        if (
            link is None
            or link.mode is LinkMode.BIND
            or link.connection == Connection.CONNECTED
            or link.handshake_failed == why
        ):
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
