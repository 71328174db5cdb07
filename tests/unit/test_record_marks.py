"""Bookkeeping found by a byte search (`recorder.store.marks`) and the Recent filter
built on it (`tui.record_filter`) list exactly what reading every record lists: random
journals of several segments, plain and compressed, with bookkeeping kinds hidden in
payloads, odd line shapes and repeated goodbyes; cached marks used only when they
describe the segment as it is."""

from __future__ import annotations

import json
import random
from bisect import bisect_right
from pathlib import Path

from recorder.daemon.warm import IndexWarmer
from recorder.store.compact import compact
from recorder.store.layout import Layout, list_segments
from recorder.store.marks import BOOKKEEPING, line_kind
from recorder.store.reader import Store, open_store
from tui.record_filter import RecordFilter


def reading_every_record(store: Store) -> tuple[list[int], list[int]]:
    """What the filter lists, by the rule itself: every record read (the oracle)."""
    shown, everything, last = [], [], None
    for rec in store.records():
        line = rec.line
        kind = line_kind(line)
        if kind == b"heartbeat" and b'"bye":true' in line:
            payload = line[line.find(b'"frames":') :]
            if payload == last:
                continue
            last = payload
        everything.append(rec.index)
        if kind not in BOOKKEEPING:
            shown.append(rec.index)
    return shown, everything


def random_line(rng: random.Random, seq: int) -> str:
    head = f'{{"v":1,"seq":{seq},"ts":{1.8e9 + seq}'
    roll = rng.random()
    if roll < 0.06:
        return head + ',"kind":"heartbeat","pub":"p","frames":["alive"]}'
    if roll < 0.12:  # goodbyes, often identical to the one before
        return head + f',"kind":"heartbeat","bye":true,"frames":["{rng.choice("ab")}"]}}'
    if roll < 0.15:
        return head + f',"kind":"{rng.choice(["event", "segment", "gap"])}","detail":"x"}}'
    if roll < 0.2:  # the kinds inside a message's payload: a message all the same
        inner = rng.choice(["heartbeat", "event", "segment"])
        return head + f',"kind":"msg","payload":{{"kind":"{inner}","x":"{"y" * 250}"}}}}'
    if roll < 0.22:  # a kind first in the line (odd writer): that one counts
        return f'{{"meta":{{"kind":"event"}},"kind":"msg","seq":{seq}}}'
    if roll < 0.24:  # the kind beyond the 200 bytes looked at: shown
        return '{"pad":"' + "z" * 220 + '","kind":"heartbeat"}'
    if roll < 0.25:
        return "not json at all"
    return head + f',"kind":"msg","topic":"t","frames":["{"w" * rng.randint(0, 400)}"]}}'


def write_journal(root: Path, rng: random.Random, segments: int, per: int) -> Layout:
    layout = Layout(root)
    layout.segments.mkdir(parents=True, exist_ok=True)
    seq = 0
    for n in range(1, segments + 1):
        lines = []
        for _ in range(rng.randint(per // 2, per)):
            lines.append(random_line(rng, seq))
            seq += 1
        tail = "" if n < segments or rng.random() < 0.5 else random_line(rng, seq)[:30]
        (layout.segments / f"seg-{n:06d}.jsonl").write_text("\n".join(lines) + "\n" + tail)
    return layout


def check(store: Store, f: RecordFilter, rng: random.Random) -> None:
    shown, everything = reading_every_record(store)
    assert list(f.indices) == shown and list(f.everything) == everything
    assert len(f) == len(shown) and f.scanned == len(store)
    for _ in range(200):
        index = rng.randrange(len(store))
        assert f.row_of(index) == max(0, bisect_right(shown, index) - 1)
        assert (index in f.indices) == (index in shown)
        if index in shown:
            assert f.indices.index(index) == shown.index(index)
        beyond = len(store) + rng.randrange(3)  # not looked at yet: the last shown row
        assert f.row_of(beyond) == len(shown) - 1
        row = rng.randrange(len(shown))
        assert f.indices[row] == shown[row] and f.indices[-1] == shown[-1]


def test_the_filter_lists_what_reading_every_record_lists(tmp_path: Path) -> None:
    for seed in range(6):
        rng = random.Random(seed)
        layout = write_journal(tmp_path / str(seed), rng, rng.randint(1, 5), 400)
        with open_store(layout.root) as store:
            fresh = RecordFilter()
            assert fresh.extend(store)
            check(store, fresh, rng)
            marks = sorted(p.name for p in layout.index.glob("*.marks"))
            closed = [p.name for p in list_segments(layout)][:-1]
            assert marks == [f"{name}.marks" for name in closed]  # the closed ones kept
            cached = RecordFilter()
            assert cached.extend(store)  # from the marks files
            assert list(cached.indices) == list(fresh.indices)
            assert list(cached.everything) == list(fresh.everything)


def test_marks_follow_growth_compression_and_wrong_cache_files(tmp_path: Path) -> None:
    rng = random.Random(11)
    layout = write_journal(tmp_path, rng, 3, 300)
    store = open_store(layout.root)
    f = RecordFilter()
    f.extend(store)
    # The journal grows: the open segment, then a new one (the old one now closed).
    with open(list_segments(layout)[-1], "a") as out:
        out.write("\n".join(random_line(rng, 10_000 + k) for k in range(50)) + "\n")
    (layout.segments / "seg-000004.jsonl").write_text(
        "\n".join(random_line(rng, 20_000 + k) for k in range(80)) + "\n"
    )
    store.refresh()
    f.extend(store)
    check(store, f, rng)
    store.close()
    with open_store(layout.root) as store:  # segment 3 is closed now: its marks kept too
        RecordFilter().extend(store)

    def kept() -> dict[str, tuple[int, int, bytes]]:
        return {
            p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
            for p in layout.index.glob("*.marks")
        }

    before = kept()
    assert len(before) == 3
    # Compressed: the same bytes, so the same marks (used, not found and written again).
    report = compact(layout, below=4)
    assert len(report.done) == 3
    with open_store(layout.root) as store:
        again = RecordFilter()
        again.extend(store)
        check(store, again, rng)
    assert kept() == before
    # Wrong files: garbage, another segment's, a number out of range: found again.
    marks = sorted(layout.index.glob("*.marks"))
    marks[0].write_bytes(b"\x00garbage")
    doc = json.loads(marks[1].read_bytes())
    marks[2].write_bytes(json.dumps(doc).encode())  # names segment 2, is segment 3's file
    doc["hidden"] = [10**9]
    marks[1].write_bytes(json.dumps(doc).encode())
    with open_store(layout.root) as store:
        wrong = RecordFilter()
        wrong.extend(store)
        check(store, wrong, rng)
    assert {name: data for name, (_, _, data) in kept().items()} == {
        name: data for name, (_, _, data) in before.items()
    }


def test_the_recorder_writes_the_marks_of_closed_segments(tmp_path: Path) -> None:
    """`IndexWarmer` (the recorder's background thread) writes each closed segment's
    marks with its line index, so a reader opening the journal reads no closed segment."""
    rng = random.Random(5)
    layout = write_journal(tmp_path, rng, 4, 300)
    IndexWarmer(layout).warm(below=4)
    assert sorted(p.name for p in layout.index.glob("*.marks")) == [
        f"seg-{n:06d}.jsonl.marks" for n in (1, 2, 3)
    ]
    with open_store(layout.root) as store:
        f = RecordFilter()
        f.extend(store)
        check(store, f, rng)
