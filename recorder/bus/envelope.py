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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ENVELOPE_KEY = "_persist"
HEARTBEAT_TOPIC = "_persist.heartbeat"
MAX_PUBLISHERS = 10_000


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

    def _remember(self, publisher: str, next_seq: int) -> None:
        expected = self.expected
        if publisher not in expected and len(expected) >= MAX_PUBLISHERS:
            del expected[next(iter(expected))]  # forget the longest-known publisher
        expected[publisher] = next_seq

    def message(self, publisher: str, seq: int) -> Hole | None:
        want = self.expected.get(publisher)
        if want is None:
            self._remember(publisher, seq + 1)
            if seq > 1:
                return Hole(publisher, 1, seq - 1, "before-first-seen")
            return None
        if seq < want:  # duplicate or reordered: recorded, never a hole
            return None
        self.expected[publisher] = seq + 1
        if seq > want:
            return Hole(publisher, want, seq - 1, "publisher-sequence")
        return None

    def heartbeat(self, publisher: str, last_sent: int) -> Hole | None:
        """A heartbeat (or a final "bye", which may be repeated) with the last seq sent."""
        want = self.expected.get(publisher)
        hole = None
        if want is None:
            if last_sent >= 1:
                hole = Hole(publisher, 1, last_sent, "before-first-seen")
        elif last_sent >= want:
            hole = Hole(publisher, want, last_sent, "publisher-heartbeat")
        if want is None or last_sent >= want:
            self._remember(publisher, last_sent + 1)
        return hole


def read_envelope(obj: Any) -> dict[str, Any] | None:
    """The envelope of a parsed payload, if it carries a usable one."""
    if not isinstance(obj, dict):
        return None
    env = obj.get(ENVELOPE_KEY)
    if (
        isinstance(env, dict)
        and isinstance(env.get("pub"), str)
        and isinstance(env.get("seq"), int)
        and not isinstance(env.get("seq"), bool)
    ):
        return env
    return None
