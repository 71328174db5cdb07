"""The helpers every session reader shares (`recorder.sources.jsonl`)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import orjson

from recorder.sources.jsonl import TOO_DEEP, dump_line, parse_time, text_of, time_span


def test_time_span_is_the_span_of_every_stamp_parsed() -> None:
    """`time_span` compares the usual UTC strings as text and parses two of them; on
    random mixes of every shape (other widths, offsets, a space for the T, epoch
    numbers in s and ms, garbage, impossible dates of the usual width at either end,
    non-ASCII) it gives what parsing every stamp gives."""
    rng = random.Random(3)
    odd: list[object] = [None, True, "", "garbage", 1768000000, 1768000000123, 17.5]
    odd += ["2026-01-10T12:00:00+02:00", "2026-01-10 12:00:00.000Z", "2026-01-10T12:00:00Z"]
    odd += ["2026-13-10T12:00:00.000Z", "2026-01-10T24:00:00.000Z", "2026-01-10T12:00:00.00é"]
    odd += ["0000-01-10T12:00:00.000Z", "9999-12-31T23:59:59.999Z", "2026-01-10T12:00:00.0000"]
    for _ in range(2000):
        stamps: list[object] = []
        for _ in range(rng.randint(0, 12)):
            if rng.random() < 0.7:
                ms = rng.randint(1_700_000_000_000, 1_800_000_000_000)
                t = datetime.fromtimestamp(ms / 1000, UTC)
                stamps.append(t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z")
            else:
                stamps.append(rng.choice(odd))
        times = [t for s in stamps if (t := parse_time(s)) is not None]
        expected = (min(times), max(times)) if times else (None, None)
        assert time_span(stamps) == expected, stamps


def test_text_of_a_value_nested_as_deep_as_orjson_reads() -> None:
    """orjson reads 1,023 levels but writes 255, and Python recurses about 1,000 deep:
    the text of any value a file can hold is a string, never an exception."""
    for depth in (300, 1023):
        deep_list = orjson.loads("[" * depth + '"x"' + "]" * depth)
        deep_object = orjson.loads('{"k":' * depth + '"v"' + "}" * depth)
        assert text_of(deep_list) == TOO_DEEP
        assert text_of([deep_object]) in (TOO_DEEP, '{"k":' * depth + '"v"' + "}" * depth)
        assert text_of({"content": deep_list}) == TOO_DEEP
    # deeper than orjson writes, within what the stdlib writes: written in full
    deep = orjson.loads('{"k":' * 300 + '"v"' + "}" * 300)
    assert text_of([deep]) == '{"k":' * 300 + '"v"' + "}" * 300
    line = dump_line({"a": deep})
    assert line is not None and orjson.loads(line) == {"a": deep}
    assert dump_line({"a": orjson.loads("[" * 1023 + "]" * 1023)}) is None
