"""One pass over records (`write_records`) views a message once and hands that view
to every writer and to the range summary: what it writes and counts is what each
writer writes alone, record by record, and what `summarize` counts, whatever the
record's shape (odd senders, missing fields, several frames, text or binary
payloads, events, gaps, damaged lines)."""

from __future__ import annotations

import io
from itertools import pairwise
from typing import Any

import orjson
import pytest

from recorder.export import writers as writers_module
from recorder.export.writers import (
    PROGRESS_EVERY,
    RUN,
    CsvWriter,
    ExportStats,
    HtmlWriter,
    JsonlWriter,
    MarkdownWriter,
    Writer,
    write_records,
)
from recorder.store.ranges import summarize
from recorder.store.reader import Record
from recorder.store.records import encode_frames, encode_record

T0 = 1_800_000_000.0
WRITERS: list[type[Writer]] = [MarkdownWriter, HtmlWriter, CsvWriter, JsonlWriter]


def message(seq: int, frames: list[bytes], meta: dict[str, Any] | None, **head: Any) -> bytes:
    fields: dict[str, Any] = {"v": 1, "seq": seq, "ts": T0 + seq * 3600.5, "kind": "msg"}
    fields["topic"] = frames[0].decode()
    if meta is not None:
        fields["meta"] = meta
    fields.update(head)
    return encode_record(fields, encode_frames(frames))


def lines() -> list[bytes]:
    json = orjson.dumps
    long_name = "s" * 300  # a participant's name is cut to 200 characters
    out = [
        message(1, [b"chat", json({"text": "hi\n\nthere <b> & ]"})], {"sender": "ann"}),
        message(2, [b"chat", json({"content": "no sender", "n": 1})], {}),
        message(3, [b"chat", json({"text": 7, "message": "m"})], {"sender": 42}),
        message(4, [b"chat", json({"text": "x", "tool": {"a": [1, 2]}})], {"sender": ""}),
        message(5, [b"tools", json({"_persist": {"pub": "p", "seq": 1}})], None),
        message(6, [b"chat", json({"text": "replayed"})], {"sender": "bob", "replay_of": 3}),
        message(7, [b"chat", json({"text": "chained"})], {"sender": "bob", "chain": "tool"}),
        message(8, [b"chat", json({"text": long_name})], {"sender": long_name}),
        message(9, [b"chat", b"plain text, not JSON"], {"sender": "cat"}),
        message(10, [b"chat", b"\x00\xff binary"], {"sender": "cat"}),
        message(11, [b"multi", json({"text": "one"}), json({"text": "two"})], {"sender": "m"}),
        message(12, [b"chat", json([1, 2, 3])], {"sender": "list"}),
        message(13, [b"chat", json({"text": "no time"})], {"sender": "ann"}, ts=None),
        message(14, [b"chat", b"null"], {"sender": "ann"}),
        json({"v": 1, "seq": 15, "ts": T0 + 99_000, "kind": "gap", "missed": 4, "agent": "a"}),
        json({"v": 1, "seq": 16, "ts": T0 + 99_001, "kind": "event", "event": "started"}),
        json({"v": 1, "seq": 17, "ts": T0 + 99_002, "kind": "heartbeat"}),
        b'{"v": 1, "seq": "torn',
        message(18, [b"chat", json({"text": "last"})], {"sender": "zed"}),
    ]
    return [line + b"\n" for line in out]


def records() -> list[Record]:
    return [Record(i, 1, i * 1000, line) for i, line in enumerate(lines())]


def alone(cls: type[Writer]) -> bytes:
    """What a writer writes given every record through `record`, one by one."""
    out = io.BytesIO()
    w = cls(out)
    for rec in records():
        w.record(rec)
    w.flush()
    return out.getvalue()


@pytest.mark.parametrize("cap", [1000, 2])
def test_a_pass_counts_what_the_summary_counts(cap: int) -> None:
    stats = ExportStats()
    stats.participants_cap = cap
    write_records(records(), [MarkdownWriter(io.BytesIO())], summary=stats)
    want = ExportStats()
    want.participants_cap = cap
    summarize(records(), want)
    assert stats == want
    assert list(stats.participants.items()) == list(want.participants.items())  # order too
    assert stats.messages == 15 and stats.bad_lines == 1 and stats.missed == 4
    assert ("s" * 200 in stats.participants) is (cap > 2)


def test_each_writer_in_a_shared_pass_writes_what_it_writes_alone() -> None:
    """The pass views a message once, with its JSON body when any writer shows one:
    a writer that does not (CSV) writes the same bytes beside one that does."""
    outs = [io.BytesIO() for _ in WRITERS]
    writers = [cls(out) for cls, out in zip(WRITERS, outs, strict=True)]
    write_records(records(), writers)
    for w in writers:
        w.flush()
    for cls, out in zip(WRITERS, outs, strict=True):
        assert out.getvalue() == alone(cls), cls.__name__
    for cls in WRITERS:
        out = io.BytesIO()
        w = cls(out)
        write_records(records(), [w])
        w.flush()
        assert out.getvalue() == alone(cls), cls.__name__
    md = alone(MarkdownWriter).decode()
    assert "```json" in md and '"tool"' in md  # a body was shown where there is one
    assert "**?** · `chat`" in md and "**42** · `chat`" in md and "· replay" in md


@pytest.mark.parametrize(("run", "run_bytes"), [(1, 1 << 20), (3, 1 << 20), (256, 300)])
def test_runs_of_any_length_write_and_count_what_one_by_one_does(
    monkeypatch: pytest.MonkeyPatch, run: int, run_bytes: int
) -> None:
    """Messages go to the writers in runs, cut by count (`RUN`) and by bytes
    (`RUN_BYTES`: a run of big messages is handed over before it is held whole):
    where a run ends never changes what is written or counted."""
    monkeypatch.setattr(writers_module, "RUN", run)
    monkeypatch.setattr(writers_module, "RUN_BYTES", run_bytes)
    outs = [io.BytesIO() for _ in WRITERS]
    writers = [cls(out) for cls, out in zip(WRITERS, outs, strict=True)]
    stats = write_records(records(), writers)
    for w in writers:
        w.flush()
    for cls, out in zip(WRITERS, outs, strict=True):
        assert out.getvalue() == alone(cls), cls.__name__
    want = ExportStats()
    summarize(records(), want)
    assert stats == want


def test_progress_is_reported_along_a_long_run_of_messages() -> None:
    json = orjson.dumps
    many = [
        Record(i, 1, i * 100, message(i, [b"chat", json({"text": f"m{i}"})], {"sender": "a"}))
        for i in range(5000)
    ]
    seen: list[tuple[int, int]] = []
    write_records(
        many, [MarkdownWriter(io.BytesIO())], total=5000, progress=lambda d, t: seen.append((d, t))
    )
    assert len(seen) >= 3 and seen[-1] == (5000, 5000)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    steps = [later - earlier for (earlier, _), (later, _) in pairwise(seen)]
    assert max(steps) <= PROGRESS_EVERY + RUN  # every run of messages moves it on


def test_a_run_of_messages_counts_as_one_by_one() -> None:
    """`add_messages` of a run is `add_message` of each: the first time is the first
    one given (a message may have none), the last time the last message's."""
    run = [(None, "a"), (T0, "b"), (T0 + 1, "a"), (None, "c"), (T0 + 2, "d")]
    expected = {  # by participant cap, in order of first appearance
        1000: [("a", 2), ("b", 1), ("c", 1), ("d", 1)],
        2: [("a", 2), ("b", 1), ("(others)", 2)],
    }
    for cap, participants in expected.items():
        one_by_one = ExportStats(participants_cap=cap)
        for ts, who in run:
            one_by_one.add_message(ts, who)
        at_once = ExportStats(participants_cap=cap)
        at_once.add_messages(run[:2])
        at_once.add_messages(run[2:])
        for stats in (one_by_one, at_once):
            assert (stats.messages, stats.records, stats.kinds["msg"]) == (5, 5, 5)
            assert (stats.first_ts, stats.last_ts) == (T0, T0 + 2)
            assert list(stats.participants.items()) == participants


def test_the_day_headings_say_the_times_under_them_are_utc() -> None:
    """Markdown and HTML write a record's time as hh:mm:ss under its day's heading:
    the heading says UTC (the TUI shows local time; before 2026-12-07 it did not)."""
    from recorder.export.render import iso

    day = iso(T0 + 3600.5)[:10]
    assert f"## {day} (UTC)\n" in alone(MarkdownWriter).decode()
    assert f"<h2>{day} (UTC)</h2>" in alone(HtmlWriter).decode()
