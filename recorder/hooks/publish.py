"""Putting a session's messages on the bus from a short-lived hook process.

One publisher id per session (`SessionState.publisher`) and sequence numbers that
carry on from the last call, so the recorder tracks it like one long-lived
publisher: no false gap between hook processes, a real loss still shows. Each call
ends with a heartbeat naming the last sequence number (a loss at the end of a burst
shows too). zmq is imported here only, when there is something to send.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from recorder.errors import PersistError
from recorder.sources.model import Sender, SessionMessage

if TYPE_CHECKING:
    from recorder.bus.publisher import Publisher

READY_TIMEOUT = 1.0  # seconds to wait for the broker to pass on a subscription
# seconds a call waits, as it ends, for the broker to take what it sent (a hook's process
# exits next, and what libzmq still holds goes with it); at least MIN_CLOSE_WAIT each
CLOSE_WAIT = 3.0
MIN_CLOSE_WAIT = 0.2
SILENT: set[str] = set()  # endpoints nobody listened at in this process (a hook's one call)


class NotDelivered(PersistError):
    """Nobody was subscribed (no broker, or no recorder behind it): nothing was sent.
    `owed`: whether what was not sent is kept for a later call (the transcript's
    messages, a session's end) or not (a session's start or compaction message: said so;
    before 2026-12-07 those lines too said the message waited for the next call)."""

    def __init__(self, endpoint: str, timeout: float, count: int, owed: bool = True) -> None:
        self.endpoint, self.timeout, self.count = endpoint, timeout, count
        then = "wait for this session's next hook call" if owed else "not sent, then or later"
        super().__init__(
            f"no subscriber at {endpoint} within {timeout:g}s ({count} message(s) {then})"
        )

    def nobody(self) -> str:
        """What happened, without what waits (the caller knows better)."""
        return f"no subscriber at {self.endpoint} within {self.timeout:g}s"


@dataclass(frozen=True)
class Outgoing:
    mid: str  # the message id in the envelope (the agent's own uuid)
    body: dict[str, Any]


def topic_for(agent: str, session: str) -> str:
    return f"agents.{agent}.{session}"


def message_body(
    agent: str, msg: SessionMessage, transcript: str, *, revision: bool = False
) -> dict[str, Any]:
    """A session message as the bus sees it: who, the text first, then the rest.
    `revision`: a later version of a message already sent under its id (`revises`)."""
    sender = {Sender.USER: "user", Sender.TOOL: f"{agent}:tool"}.get(msg.sender, agent)
    body: dict[str, Any] = {
        "type": "agent.message",
        "sender": sender,
        "role": msg.sender.value,
        "text": msg.text,
        "agent": agent,
        "session": msg.session_id,
        "uuid": msg.uuid,
    }
    if msg.ts is not None:
        body["time"] = msg.ts
    if msg.tool_calls:
        body["tool_calls"] = [
            {"name": c.name, "id": c.id, "arguments": c.arguments} for c in msg.tool_calls
        ]
    if msg.thinking:
        body["thinking"] = msg.thinking
    if msg.note:
        body["note"] = msg.note
    if msg.sidechain:
        body["sidechain"] = msg.agent_id or True
    if revision:
        body["revises"] = msg.uuid
    body["transcript"] = transcript
    return body


def version_of(agent: str, msg: SessionMessage) -> str:
    """A digest of what a message's body says (not which file it was read from: a
    legacy Gemini file and the `.jsonl` it is migrated to hold the same messages)."""
    import hashlib

    import orjson  # the readers loaded it already

    body = message_body(agent, msg, "")
    try:
        blob = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer beyond 64 bits (the readers keep them exact)
        import json

        blob = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.blake2b(blob, digest_size=8).hexdigest()


_OPEN: dict[tuple[str, str], Publisher] = {}  # (endpoint, publisher id): its socket


def send(
    endpoint: str,
    publisher_id: str,
    last_seq: int,
    agent: str,
    topic: str,
    messages: list[Outgoing],
    ready_timeout: float = READY_TIMEOUT,
    *,
    owed: bool = True,
) -> int:
    """Send `messages` in order with sequence numbers after `last_seq`; returns the last
    one sent. Raises NotDelivered (nothing sent; `owed`: whether the caller keeps them
    for a later call, which its message says) when no subscriber answers in time.

    A session's sends in one call go through one socket, kept open until `close_all`:
    the broker fair-queues between connections, so a second socket's message (the
    session-ended one after the transcript's rest) could reach the journal before the
    first socket's."""
    from recorder.bus.publisher import Publisher

    pub = _OPEN.get((endpoint, publisher_id))
    if pub is None:
        pub = Publisher(endpoint, agent=agent, heartbeat_interval=0)
        pub.id = publisher_id
        if not pub.wait_ready(ready_timeout):
            SILENT.add(endpoint)
            pub.close(bye=False)
            raise NotDelivered(endpoint, ready_timeout, len(messages), owed)
        _OPEN[(endpoint, publisher_id)] = pub
    pub.seq = last_seq
    for item in messages:
        pub.send(topic, item.body, mid=item.mid)
    return pub.seq


class Undelivered(PersistError):
    """A socket's broker did not take all it held (gone, or frozen past the wait): the
    rest is dropped."""


def close_all(within: float = CLOSE_WAIT) -> None:
    """Close the sockets `send` kept open, each once its broker has taken what it holds,
    waiting `within` seconds for them all (at least `MIN_CLOSE_WAIT` each): at the end
    of a hook call, and before anything waits on the recorder. Before 2026-12-08 a
    socket was closed with a linger nothing waited for: the hook's process exited, and
    what a frozen or starved broker had not taken yet went with it, unsaid (the state
    said sent). Raises Undelivered, once all are closed, when a broker went away or had
    not taken all within the wait (`Publisher.undelivered`): the hook's failure log says
    which messages, the recorder shows the hole as a gap once the publisher is heard
    from again."""
    import time

    until = time.monotonic() + within
    dropped = []
    while _OPEN:
        (_, publisher_id), pub = _OPEN.popitem()
        pub.close(bye=False, wait=max(MIN_CLOSE_WAIT, until - time.monotonic()))
        if pub.undelivered:
            dropped.append(f"{publisher_id}: {pub.undelivered}")
    if dropped:
        raise Undelivered("; ".join(dropped))
