"""A message the recorder refuses, as the receiver hands it on: what its `refused`
record says, without its frames.

A message over `--max-message-mb` or `--max-frames` is hashed as it is received,
frame by frame, and none of its frames is kept: a burst of them costs the recorder
the frame being hashed, not the burst (before 2026-12-07 every frame was copied, up to
256 messages at a time, before the size was looked at), and a message of a million
empty frames costs a receive per frame, not a journal line of 12 MB.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from recorder.bus.envelope import HEAD_BYTES
from recorder.store.records import REFUSED_TOPIC_BYTES

# Messages of more frames are refused (`--max-frames`): agents send two (a topic and
# a payload). Each frame costs a receive, a hash and a JSON object in its line, so a
# message of a million empty frames (2 MB on the wire, "size" 10 bytes) kept the
# receiving thread 12 s and 350 MB busy and made a 12 MB line (before 2026-12-07).
DEFAULT_MAX_FRAMES = 1000
# Receiving a message of millions of frames takes seconds (about 2 us a frame): one
# still being received this long after a stop began is given up, its refusal saying
# what came (`cut_short`), so that the stop ends within 2 s; the rest of it, and what
# zmq held behind it, is lost, as what is sent after a stop is.
CUT_SHORT_AFTER = 1.0
TOPIC_BYTES = REFUSED_TOPIC_BYTES  # what a refused record keeps of the topic
SHOWN_BYTES = 256  # what it shows of the last frame (`head_b64`)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused message: `size` bytes in `frame_count` frames, `sha256` of them all in
    order, the first bytes of its topic (b"" for a one-frame message) and of its last
    frame (enough for `envelope_in_head`), and the `reason` in words; `cut_short`: see
    `CUT_SHORT_AFTER`."""

    size: int
    frame_count: int
    sha256: str
    topic: bytes
    head: bytes
    reason: str
    # the recorder stopped before the rest of it came: `size` and `frame_count` are
    # what came, `sha256` is "" (and `head` is of the last frame that came)
    cut_short: bool = False
    # the topic frame was longer than `TOPIC_BYTES`: `topic` is its first bytes
    topic_cut: bool = False


def over_limits(size: int, frame_count: int, max_bytes: int, max_frames: int) -> str | None:
    """Why a message of `size` bytes in `frame_count` frames is refused, None if it is not."""
    why = []
    if size > max_bytes:
        why.append(f"{size} bytes is over the {max_bytes} byte limit")
    if frame_count > max_frames:
        why.append(f"{frame_count} frames is over the {max_frames} frame limit")
    return "; ".join(why) or None


def refusal_of(frames: list[bytes], reason: str) -> Refusal:
    """The refusal of a message whose frames are all at hand."""
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(frame)
    return Refusal(
        size=sum(map(len, frames)),
        frame_count=len(frames),
        sha256=digest.hexdigest(),
        topic=frames[0][:TOPIC_BYTES] if len(frames) > 1 else b"",
        head=frames[-1][:HEAD_BYTES],
        reason=reason,
        topic_cut=len(frames) > 1 and len(frames[0]) > TOPIC_BYTES,
    )
