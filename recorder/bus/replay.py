"""Republishing a recorded range onto the broker, marked as replays.

Every message goes out with its original frames. The one change is the replay
mark the recorder and the agents need to tell a replay from a new message: a
`replay_of` reference inside the `_persist` envelope of the last frame (the
original journal `seq`, and the original envelope's `mid` when there was one).
The original envelope fields stay as they were, so agents still see who sent
what. The recorder records these with `meta.replay_of` and never feeds them to
the per-publisher sequence tracker, so a replay cannot create gaps or duplicates.

The mark is spliced into the payload's bytes: a new envelope before the first key
when there is none, else the envelope (the last one, when the key is there twice:
the one a parser keeps) written again with the mark, wherever it is, and a `null`
one replaced by a new one where it stands; the rest of the payload stays byte for
byte the same. (Before 2026-12-07 an envelope that was not the first key had the
whole object parsed and written again: an integer beyond 64 bits became a float;
and a new envelope went before a `null` one, which won: the copy was recorded as a
new message.) An envelope whose `pub` or `seq` the recorder would not take gets
stand-ins for them; every marked payload is read back as the recorder reads it, so
what is sent marked is recorded as a replay.

A message whose last frame is not a one-line JSON object, or whose `_persist` member
is neither an object nor null, or an object the recorder does not read as an envelope
even with the mark (a field it does not know), cannot carry the mark without being
altered. Such messages are skipped and counted, with why, unless
`unmarked_prefix` is given: then they are sent as they are, under the topic
`<prefix><original topic>`, and recorded as ordinary messages under that topic.
Heartbeats (`_persist.heartbeat`) are never replayed, and neither are earlier
replays (records with `meta.replay_of`) unless asked.

`verbatim` sends every message exactly as recorded instead: no mark, no rewrite,
every frame byte for byte (foreign traffic such as Jupyter's HMAC-signed messages
stays valid). Meant for another broker: on the recorder's own bus, verbatim
copies are recorded as new messages. `retopic` then prepends a prefix to the
topic frame, and only there; a single-frame message has no topic frame to prefix
without altering its content, so with `retopic` it is skipped and counted.
Single-frame messages under `unmarked_prefix` are skipped and counted likewise
(they used to gain a frame).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import zmq

from recorder.bus.curve import connect_as_client
from recorder.bus.endpoints import DEFAULT_PUBLISH
from recorder.bus.envelope import ENVELOPE_KEY, HEARTBEAT_TOPIC, MAX_SEQ, read_envelope
from recorder.bus.keys import ClientKeys
from recorder.bus.publisher import Hearing, connect
from recorder.errors import PersistError
from recorder.store.reader import Record

_decoder = json.JSONDecoder()


class ReplayError(PersistError):
    pass


class BrokerLost(ReplayError):
    """The broker went away while the replay sent: it stopped there; `stats` holds what
    was sent before (some of it perhaps never passed on), the rest was not sent."""

    def __init__(self, message: str, stats: ReplayStats, done: int) -> None:
        super().__init__(message)
        self.stats = stats
        self.done = done  # messages sent before it stopped (the one in hand not among them)


LOSS_CHECK = 0.05
"""Seconds between two looks, as the replay sends, at whether the broker went away."""


@dataclass
class ReplayOptions:
    endpoint: str = DEFAULT_PUBLISH  # the broker's publisher (XSUB) endpoint
    speed: float | None = None  # None = as fast as possible; N = N times the recorded pace
    max_pause: float = 10.0  # seconds: the longest recorded silence kept (after speed)
    topic_prefix: str = ""  # only topics starting with this
    unmarked_prefix: str | None = None  # send unmarkable messages under this topic prefix
    include_replays: bool = False  # replay records that were themselves replays
    verbatim: bool = False  # frames exactly as recorded: no replay mark, nothing rewritten
    retopic: str = ""  # with verbatim: prepended to the topic frame of multi-frame messages
    wait_subscribers: float = 5.0  # seconds to wait for the broker to forward a subscription
    hwm: int = 1_000_000  # messages our socket may queue (it blocks beyond, never drops)
    linger: float = 30.0  # seconds to deliver what is queued when we close
    curve: ClientKeys | None = None  # connect as a CURVE client with these keys


@dataclass
class ReplayStats:
    sent: int = 0  # messages sent marked as replays
    unmarked_sent: int = 0  # sent as they are under `unmarked_prefix`
    verbatim_sent: int = 0  # sent exactly as recorded (`verbatim`)
    skipped_single_frame: int = 0  # one frame: no topic frame a prefix could go on
    skipped_unmarkable: int = 0
    skipped_heartbeats: int = 0
    skipped_replays: int = 0
    skipped_topic: int = 0
    other_records: int = 0  # gaps, events... (not messages)
    bad_lines: int = 0  # damaged lines: whatever they held was not sent
    bad_bytes: int = 0  # their size (how many records they held is estimated from it)
    records: int = 0  # every record of the range, damaged lines included
    unmarkable_topics: dict[str, int] = field(default_factory=dict)
    unmarkable_why: dict[str, int] = field(default_factory=dict)  # why (`mark_or_why`): how many
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def mark(payload: bytes, ref: dict[str, Any], replayer: str, n: int) -> bytes | None:
    """`payload` with `replay_of` added to its envelope; None if it cannot carry one
    (`mark_or_why` says why)."""
    marked = mark_or_why(payload, ref, replayer, n)
    return marked if isinstance(marked, bytes) else None


NOT_OBJECT = "their payload is not a one-line JSON object"
TOO_DEEP = "their payload is nested too deep to read or write back"
NOT_READ = "their `_persist` object is not an envelope the recorder reads (see FORMAT.md)"
_JSON_TYPES = {bool: "true or false", int: "a number", float: "a number", str: "a string"}


def mark_or_why(payload: bytes, ref: dict[str, Any], replayer: str, n: int) -> bytes | str:
    """`payload` with `replay_of` added to its envelope, such that the recorder reads it
    as a replay; else why it cannot carry the mark without being altered (a phrase,
    "their ...", of the messages skipped so): not a one-line JSON object, nested too
    deep (orjson reads and writes 1024 and 255 levels), a `_persist` member that is
    not an object, or one the recorder does not read as an envelope (an unknown field,
    say) even with the mark."""
    try:
        marked = _mark(payload, ref, replayer, n)
    except (TypeError, RecursionError):
        return TOO_DEEP
    if isinstance(marked, str):
        return marked
    try:  # as the recorder reads it: a replay, or the copy would be a new message
        env = read_envelope(orjson.loads(marked))
    except orjson.JSONDecodeError:
        return TOO_DEEP
    if env is None or env.get("replay_of", {}).get("seq") != ref.get("seq"):
        return NOT_READ
    return marked


def _mark(payload: bytes, ref: dict[str, Any], replayer: str, n: int) -> bytes | str:
    if payload[:1] != b"{" or b"\n" in payload or b"\r" in payload:
        return NOT_OBJECT
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return TOO_DEEP if "depth limit" in str(exc) else NOT_OBJECT
    if not isinstance(obj, dict):
        return NOT_OBJECT
    if ENVELOPE_KEY not in obj:
        new_env = {"pub": replayer, "seq": n, "replay_of": ref}
        inner = payload[1:].lstrip()
        sep = b"" if inner[:1] == b"}" else b","
        return b'{"' + ENVELOPE_KEY.encode() + b'":' + orjson.dumps(new_env) + sep + inner
    env = obj[ENVELOPE_KEY]
    if env is None:  # `"_persist": null`, no envelope: one is written in its place
        env = {}  # (a new one before it was the first of two keys: the null won)
    if not isinstance(env, dict):
        kind = "an array" if isinstance(env, list) else _JSON_TYPES.get(type(env), "no object")
        return f"their `_persist` member is {kind}, not an envelope object"
    if isinstance(env.get("mid"), str):
        ref = {**ref, "mid": env["mid"]}
    new_env = {**env, "replay_of": ref}
    pub, seq = new_env.get("pub"), new_env.get("seq")
    # the recorder reads a mark only beside these: a stand-in where they are not ones
    # it would take (absent, of another type, out of range)
    if type(pub) is not str or not 1 <= len(pub) <= 128 or not pub.isprintable():
        new_env["pub"] = replayer
    if type(seq) is not int or not 1 <= seq < MAX_SEQ:
        new_env["seq"] = n
    text = payload.decode("utf-8")
    span = _envelope_span(text)
    if span is None:
        return NOT_OBJECT
    start, end = span
    return (text[:start] + orjson.dumps(new_env).decode() + text[end:]).encode("utf-8")


_SPACE = re.compile(r"[ \t\n\r]*")


def _space(text: str, i: int) -> int:
    """Past the JSON whitespace at `i`."""
    return _SPACE.match(text, i).end()  # type: ignore[union-attr]  # `*` always matches


def _envelope_span(text: str) -> tuple[int, int] | None:
    """Where the value of the object's envelope member is in `text` (the last one when
    the key is there twice, or spelt with an escape: the one a parser keeps); None if
    the text cannot be read so. The stdlib's decoder finds the ends of the values
    (every key is decoded: an escaped spelling is the same key)."""
    found = None
    i = _space(text, 1)
    if text[i : i + 1] == "}":
        return None
    while True:
        key, i = _decoder.raw_decode(text, i)
        i = _space(text, i)
        if text[i : i + 1] != ":":
            return None
        start = _space(text, i + 1)
        _value, end = _decoder.raw_decode(text, start)
        if key == ENVELOPE_KEY:
            found = start, end
        i = _space(text, end)
        if text[i : i + 1] == ",":
            i = _space(text, i + 1)
        elif text[i : i + 1] == "}":
            return found
        else:
            return None


def plan(
    records: Iterable[Record], options: ReplayOptions, stats: ReplayStats, replayer: str
) -> Iterable[tuple[float | None, list[bytes]]]:
    """(recorded time, frames to send) for every message to replay."""
    n = 0
    for rec in records:
        stats.records += 1
        kind = rec.kind
        if kind == "heartbeat":
            stats.skipped_heartbeats += 1
            continue
        if kind != "msg":
            if kind == "bad-line":
                stats.bad_lines += 1
                stats.bad_bytes += len(rec.line)
            else:
                stats.other_records += 1
            continue
        topic = rec.topic
        if topic == HEARTBEAT_TOPIC:
            stats.skipped_heartbeats += 1
            continue
        if options.topic_prefix and not topic.startswith(options.topic_prefix):
            stats.skipped_topic += 1
            continue
        if "replay_of" in rec.meta and not options.include_replays:
            stats.skipped_replays += 1
            continue
        frames = rec.frames
        if not frames:
            continue
        if options.verbatim:
            if options.retopic:
                if len(frames) < 2:
                    stats.skipped_single_frame += 1
                    continue
                frames = [options.retopic.encode() + frames[0], *frames[1:]]
            stats.verbatim_sent += 1
            yield rec.ts, frames
            continue
        n += 1
        marked = mark_or_why(frames[-1], {"seq": rec.seq}, replayer, n)
        if isinstance(marked, bytes):
            stats.sent += 1
            yield rec.ts, [*frames[:-1], marked]
        elif options.unmarked_prefix is not None:
            if len(frames) < 2:
                stats.skipped_single_frame += 1
                continue
            stats.unmarked_sent += 1
            yield rec.ts, [options.unmarked_prefix.encode() + frames[0], *frames[1:]]
        else:
            stats.skipped_unmarkable += 1
            stats.unmarkable_topics[topic] = stats.unmarkable_topics.get(topic, 0) + 1
            stats.unmarkable_why[marked] = stats.unmarkable_why.get(marked, 0) + 1


def replay(
    records: Iterable[Record],
    options: ReplayOptions,
    *,
    context: zmq.Context[zmq.Socket[bytes]] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_progress: Callable[[ReplayStats], None] | None = None,
) -> ReplayStats:
    """Send the messages of `records` through the broker; returns what was done."""
    stats = ReplayStats()
    replayer = f"replay-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    ctx = context or zmq.Context()
    sock = ctx.socket(zmq.XPUB)
    sock.sndhwm = options.hwm
    sock.setsockopt(zmq.XPUB_NODROP, 1)  # block when the queue is full, never drop
    sock.linger = int(options.linger * 1000)
    if options.curve is not None:
        connect_as_client(sock, options.curve)
    hearing = Hearing(sock, options.endpoint)
    t0 = time.monotonic()

    sent_so_far = (0, 0, 0)  # sent, unmarked_sent, verbatim_sent once the last send returned

    def check_broker() -> None:
        """BrokerLost once the connection that heard us ended (the broker killed, its
        port taken over): messages sent from then on would be dropped without a word,
        as what was queued for it is, and a close would wait `linger` for nobody. The
        stats then count what was sent (not the message in hand)."""
        hearing.listen()
        if hearing.losses > losses_before:
            sock.linger = 0
            stats.sent, stats.unmarked_sent, stats.verbatim_sent = sent_so_far
            stats.seconds = time.monotonic() - t0
            done = sum(sent_so_far)
            raise BrokerLost(
                f"replay stopped: the broker at {options.endpoint} went away after "
                f"{done} message{'' if done == 1 else 's'} had been sent (what it had not "
                "passed on yet is lost); the rest of the range was NOT replayed",
                stats,
                done,
            )

    losses_before = 0
    try:
        connect(sock, options.endpoint)  # ConnectFailed: an address libzmq cannot read
        if not hearing.wait(options.wait_subscribers):
            sock.linger = 0  # nothing was sent: nothing to deliver
            raise ReplayError(f"nothing replayed: {hearing.why_not(options.wait_subscribers)}")
        losses_before = hearing.losses  # one before the first send lost nothing of ours
        first_ts: float | None = None
        start = 0.0
        checked = time.monotonic()
        for ts, frames in plan(records, options, stats, replayer):
            if options.speed and ts is not None:
                if first_ts is None:
                    first_ts, start = ts, time.monotonic()
                due = start + (ts - first_ts) / options.speed
                wait = due - time.monotonic()
                if wait > options.max_pause:  # keep long silences short
                    start -= wait - options.max_pause
                    wait = options.max_pause
                if wait > 0:
                    sleep(wait)
            now = time.monotonic()
            if now - checked >= LOSS_CHECK:
                check_broker()  # the message in hand is not sent
                checked = now
            sock.send_multipart(frames)
            sent_so_far = (stats.sent, stats.unmarked_sent, stats.verbatim_sent)
            done = stats.sent + stats.unmarked_sent + stats.verbatim_sent
            if on_progress is not None and done % 1024 == 0:
                on_progress(stats)
        check_broker()  # gone as the last were sent: said, and no linger for nobody
    except BaseException:
        hearing.close()
        sock.close()
        if context is None:
            ctx.term()
        raise
    # What is still queued goes out as the socket closes, for up to `linger`; a broker
    # that goes away meanwhile will never take it: said, without waiting on for nobody.
    sock.close()
    delivered = hearing.delivered(options.linger + 1.0)
    hearing.close()
    if context is None:
        if delivered:
            ctx.term()
        else:  # the socket lingers on for nobody: its end is not waited for
            threading.Thread(target=ctx.term, daemon=True).start()
    stats.seconds = time.monotonic() - t0
    if not delivered:
        done = sum(sent_so_far)
        raise BrokerLost(
            f"replay stopped: the broker at {options.endpoint} went away before the last of "
            f"the {done} message{'' if done == 1 else 's'} sent had reached it (those still "
            "queued then, an unknown number, were NOT delivered)",
            stats,
            done,
        )
    return stats
