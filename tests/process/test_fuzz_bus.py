"""A hypothesis fuzzer of multipart messages through a real broker and recorder: every
frame comes back byte for byte, in order; no line is unparsable; nothing crashes.

Frames are anything: binary, invalid UTF-8, text with line breaks and escapes, JSON
objects and arrays (one line or several, nested up to past the reader's limit),
JSON scalars, empty frames; one to six frames a message, 10 to 60 messages an
example. CI runs 40 examples (about 500 messages); `PERSIST_FAULT_ROUNDS` scales it
(100 rounds: 400 examples, about 5,000 messages).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.bus.publisher import Publisher
from recorder.store.records import decode_frames
from tests.process.test_faults import ROUNDS
from tests.support import Bus, Proc, wait_for

EXAMPLES = max(40, 4 * ROUNDS)
pytestmark = pytest.mark.timeout(120 + 3 * EXAMPLES)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


def deep(depth: int, opener: bytes, closer: bytes) -> bytes:
    return opener * depth + closer * depth


frames = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: t.encode("utf-8")),
    st.sampled_from(
        [
            b"",
            b"\n",
            b"\r\n",
            b"\x00",
            b"\xff\xfe",
            b'{"a":1}\n',
            b"[1,\n2]",
            b'{"n":123456789012345678901234567890}',
            b'{"_persist": 1}',
        ]
    ),
    json_values.map(lambda v: orjson.dumps(v)),
    st.dictionaries(st.text(max_size=10), json_values, max_size=5).map(orjson.dumps),
    st.dictionaries(st.text(max_size=10), json_values, max_size=3).map(
        lambda v: orjson.dumps(v, option=orjson.OPT_INDENT_2)
    ),
    st.integers(1, 1100).map(lambda n: deep(n, b"[", b"]")),
    st.integers(1, 1100).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
)
messages = st.lists(st.lists(frames, min_size=1, max_size=6), min_size=10, max_size=60)


class JournalTail:
    """New complete lines of the recorder's one segment, as (line, record)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.offset = 0
        self.unparsable = 0

    def messages(self) -> Iterator[tuple[bytes, dict]]:
        segments = sorted((self.log_dir / "segments").glob("seg-*.jsonl"))
        assert len(segments) == 1  # 64 MiB segments: the fuzzer never fills one
        with open(segments[0], "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        for line in data[:end].splitlines():
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                self.unparsable += 1
                continue
            if record.get("kind") in ("msg", "heartbeat", "refused"):
                yield line + b"\n", record  # spans count from the end, its \n included


@pytest.fixture
def recording(bus: Bus, procs: Callable[..., Proc]) -> Iterator[tuple[Bus, Publisher]]:
    bus.start_broker()
    bus.start_recorder()
    with Publisher(bus.front, heartbeat_interval=0) as pub:
        assert pub.wait_ready(10)
        yield bus, pub


def test_fuzzed_multipart_messages_come_back_byte_for_byte(
    recording: tuple[Bus, Publisher],
) -> None:
    bus, pub = recording
    tail = JournalTail(bus.log_dir)
    total = {"messages": 0, "frames": 0}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(batch=messages)
    def roundtrip(batch: list[list[bytes]]) -> None:
        for frames_sent in batch:
            pub.send_raw(frames_sent)
        got: list[tuple[bytes, dict]] = []

        def arrived() -> bool:
            got.extend(tail.messages())
            return len(got) >= len(batch)

        wait_for(arrived, timeout=20, what=f"{len(batch)} messages recorded")
        assert len(got) == len(batch)
        for frames_sent, (line, record) in zip(batch, got, strict=True):
            assert record["kind"] == "msg", record
            assert decode_frames(line, record) == frames_sent
        total["messages"] += len(batch)
        total["frames"] += sum(map(len, batch))

    roundtrip()
    assert tail.unparsable == 0
    assert bus.recorder is not None and bus.recorder.popen.poll() is None
    assert "Traceback" not in bus.recorder.output()
    print(f"\n{total['messages']} fuzzed messages, {total['frames']} frames: all byte-exact")
