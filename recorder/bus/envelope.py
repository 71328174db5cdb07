"""The optional publisher envelope and the per-publisher gap tracker.

A publisher that wants its losses to be visible puts one extra key in its JSON
object payloads (the `Publisher` helper does it):

    {"_persist": {"pub": "<id chosen at process start>", "seq": 17, "mid": "<message id>",
                  "agent": "claude"}, ...the message...}

and, on the topic `_persist.heartbeat`, a heartbeat carrying its last sequence
number (`{"_persist": {"pub": ..., "seq": <last sent>, "hb": true}}`), so that a
loss at the very end of a burst still shows. `"bye": true` marks its last ones
(sent twice, in case a full queue drops one).
Messages without the envelope are recorded exactly as they are, untracked.

Only a well-formed, plausible envelope is trusted: known fields only, a publisher id
of 1 to 128 printable characters, a sequence number from 1 to 2**53 and, for a
publisher already seen, no jump of more than `MAX_JUMP`. Anything else is a foreign
payload that happens to use the key: recorded like any message, never allowed to
invent a gap or change a count (the recorder counts them as `implausible`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

ENVELOPE_KEY = "_persist"
HEARTBEAT_TOPIC = "_persist.heartbeat"
MAX_PUBLISHERS = 10_000
MAX_SEQ = 2**53  # sequence numbers at or above this are not believed
MAX_JUMP = 10_000_000  # a hole wider than this (a forged seq, say) is not believed
NOT_SUBSCRIBED = "before-first-seen"  # the hole cause of messages sent before we subscribed
UNCONFIRMED_END = "publisher-silent"  # the gap cause of a publisher silent with an unconfirmed tail
_FIELDS = frozenset(("pub", "seq", "mid", "agent", "hb", "bye", "replay_of"))


@dataclass(frozen=True)
class Hole:
    publisher: str
    first: int  # first missing sequence number
    last: int  # last missing sequence number
    cause: str

    @property
    def missed(self) -> int:
        return self.last - self.first + 1


class GapTracker:
    """Next expected sequence per publisher; reports holes as they become visible."""

    def __init__(self, expected: dict[str, int] | None = None) -> None:
        self.expected: dict[str, int] = dict(expected or {})
        self.implausible = 0  # sequence jumps not believed (no hole, nothing changed)

    def _remember(self, publisher: str, next_seq: int) -> None:
        expected = self.expected
        if publisher not in expected and len(expected) >= MAX_PUBLISHERS:
            del expected[next(iter(expected))]  # forget the longest-known publisher
        expected[publisher] = next_seq

    def message(self, publisher: str, seq: int) -> Hole | None:
        want = self.expected.get(publisher)
        if want is None:
            self._remember(publisher, seq + 1)
            if seq > MAX_JUMP:
                self.implausible += 1  # followed from here, but no hole before it
            elif seq > 1:
                return Hole(publisher, 1, seq - 1, NOT_SUBSCRIBED)
            return None
        if seq < want:  # duplicate or reordered: recorded, never a hole
            return None
        if seq - want > MAX_JUMP:
            self.implausible += 1
            return None
        self.expected[publisher] = seq + 1
        if seq > want:
            return Hole(publisher, want, seq - 1, "publisher-sequence")
        return None

    def heartbeat(self, publisher: str, last_sent: int) -> Hole | None:
        """A heartbeat (or a final "bye", which may be repeated) with the last seq sent."""
        want = self.expected.get(publisher)
        hole = None
        if want is not None and last_sent - want >= MAX_JUMP:
            self.implausible += 1
            return None
        if want is None:
            if last_sent > MAX_JUMP:
                self.implausible += 1
            elif last_sent >= 1:
                hole = Hole(publisher, 1, last_sent, NOT_SUBSCRIBED)
        elif last_sent >= want:
            hole = Hole(publisher, want, last_sent, "publisher-heartbeat")
        if want is None or last_sent >= want:
            self._remember(publisher, last_sent + 1)
        return hole


@dataclass(frozen=True)
class SilentTail:
    """A publisher that went silent with messages no heartbeat of its own confirmed."""

    publisher: str
    agent: str | None
    confirmed: int  # the last seq a heartbeat named (0: none named one yet)
    last: int  # the last seq received
    silent: float  # seconds since anything came from it (as far as the watch saw)


class TailWatch:
    """Publishers whose last messages no heartbeat confirmed, once they fall silent.

    A heartbeat names the last seq its publisher sent, so a loss at the end of a burst
    shows when the next one arrives (`GapTracker.heartbeat`). When none arrives (the
    broker's full queue dropped the burst's tail and every heartbeat after it, or the
    publisher died with messages still in its socket), nothing would ever say so. A
    publisher that has sent heartbeats (it follows the protocol: `Publisher` beats every
    second after a message, and a hook's publisher once as it ends) and then, for
    `after` seconds, neither a message nor a heartbeat covering its last one, is
    reported once, until it is heard from again. Publishers that never beat are not
    watched (their silence says nothing).

    The receiving thread calls `beat`; `silent` runs on the main thread with the
    recorder's append lock held, and learns that a publisher was heard from by its
    next expected seq changing (the hot path moves it with no call here)."""

    def __init__(self) -> None:
        self.confirmed: dict[str, int] = {}  # publisher -> the highest seq a heartbeat named
        self.agents: dict[str, str] = {}  # publisher -> the agent its heartbeats name
        self._seen: dict[str, tuple[int, float]] = {}  # publisher -> (next seq, since when)
        self._reported: set[str] = set()

    def beat(self, publisher: str, last_sent: int, agent: Any) -> None:
        confirmed = self.confirmed
        if publisher not in confirmed and len(confirmed) >= MAX_PUBLISHERS:
            gone = next(iter(confirmed))  # forget the longest-known publisher
            del confirmed[gone]
            self.agents.pop(gone, None)
            self._seen.pop(gone, None)
            self._reported.discard(gone)
        confirmed[publisher] = max(last_sent, confirmed.get(publisher, 0))
        if isinstance(agent, str):
            self.agents[publisher] = agent
        self._seen.pop(publisher, None)  # heard from: its silence starts again
        self._reported.discard(publisher)

    def deaf(self) -> None:
        """Nothing could be heard (no broker, messages dropped on a full backlog): every
        silence counts again from when the watch is next asked."""
        self._seen.clear()

    def silent(self, expected: dict[str, int], now: float, after: float) -> list[SilentTail]:
        """The watched publishers silent for `after` seconds with an unconfirmed tail
        (by `expected`, the next seq of each), each reported once per silence."""
        found = []
        for publisher, confirmed in self.confirmed.items():
            following = expected.get(publisher)
            if following is None or following - 1 <= confirmed:
                self._seen.pop(publisher, None)  # every message it sent is confirmed
                continue
            seen = self._seen.get(publisher)
            if seen is None or seen[0] != following:
                self._seen[publisher] = (following, now)
                self._reported.discard(publisher)
                continue
            if now - seen[1] >= after and publisher not in self._reported:
                self._reported.add(publisher)
                found.append(
                    SilentTail(
                        publisher,
                        self.agents.get(publisher),
                        confirmed,
                        following - 1,
                        now - seen[1],
                    )
                )
        return found


def read_envelope(obj: Any, first: int = 1) -> dict[str, Any] | None:
    """The envelope of a parsed payload, if it carries a well-formed one (see above);
    `first`: the lowest seq it may carry (a heartbeat's is the last seq sent: 0 before
    the first message)."""
    if type(obj) is not dict:
        return None
    env = obj.get(ENVELOPE_KEY)
    if type(env) is not dict or not _FIELDS.issuperset(env):
        return None
    pub, seq = env.get("pub"), env.get("seq")
    if type(pub) is not str or type(seq) is not int or not first <= seq < MAX_SEQ:
        return None
    if not 1 <= len(pub) <= 128 or not pub.isprintable():
        return None
    for name, kind, limit in (("mid", str, 300), ("agent", str, 200)):
        value = env.get(name)
        if value is not None and (type(value) is not kind or len(value) > limit):
            return None
    for flag in ("hb", "bye"):
        if flag in env and type(env[flag]) is not bool:
            return None
    if "replay_of" in env and type(env["replay_of"]) is not dict:
        return None
    return env


_HEAD_ENVELOPE = re.compile(rb'\A\s*\{\s*"_persist"\s*:\s*(\{[^{}]{0,1000}\})')
HEAD_BYTES = 1100  # what `envelope_in_head` reads of a payload


def envelope_in_head(payload: bytes) -> dict[str, Any] | None:
    """The envelope of a payload too large to parse (a refused message), when the
    object begins with it, as `Publisher` writes it; None otherwise."""
    found = _HEAD_ENVELOPE.match(payload[:HEAD_BYTES])
    if found is None:
        return None
    try:
        return read_envelope({ENVELOPE_KEY: orjson.loads(found.group(1))})
    except orjson.JSONDecodeError:
        return None


def read_heartbeat(obj: Any) -> dict[str, Any] | None:
    """A publisher heartbeat's envelope (`"hb": true`), or None for anything else."""
    env = read_envelope(obj, first=0)  # `Publisher` beats from its start: seq 0 then
    return env if env is not None and env.get("hb") is True and "replay_of" not in env else None
