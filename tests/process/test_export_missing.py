"""A segment missing from segments/ (deleted by hand, lost in a copy; not pruned) is
said where it stands in md, html and csv exports, as a damaged line is: before
2026-12-07 only stderr named it and the document jumped over its records without a
word. JSONL stays the records as stored (stderr names the hole)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from recorder.export.parallel import SERIAL, Parallel
from recorder.export.writers import export_range
from recorder.store.ranges import journal_range
from recorder.store.reader import open_store
from tests.demo_journal import DemoClock, DemoWriter

T0 = 1_800_000_000.0
EXPORT = [sys.executable, "-m", "recorder.cli", "export", "--all", "--no-progress"]


def journal(root: Path) -> dict[int, list[int]]:
    """Messages over at least six small segments; the seqs of each segment's records."""
    w = DemoWriter.open(root, segment_bytes=1500, clock=DemoClock(T0))
    for i in range(40):
        w.message(T0 + i, "coder", f"message {i}")
    w.close()
    seqs: dict[int, list[int]] = {}
    with open_store(root) as store:
        for rec in store.records():
            seqs.setdefault(rec.segment, []).append(rec.seq)
    assert len(seqs) >= 6
    return seqs


def gone(root: Path, *numbers: int) -> None:
    for n in numbers:
        (root / "segments" / f"seg-{n:06d}.jsonl").unlink()


def texts(doc: str) -> list[str]:
    """The message texts and the markers of a document, in order."""
    out = []
    for line in doc.splitlines():
        if "message " in line or "missing from segments/" in line:
            out.append(line)
    return out


def test_md_html_and_csv_say_where_a_segment_is_missing(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    seqs = journal(root)
    gone(root, 2)
    lost = seqs[2]
    sentence = f"seg-000002.jsonl is missing from segments/: its records (seq {lost[0]} to "
    sentence += f"{lost[-1]}) are lost"
    docs = {}
    for fmt in ("md", "html", "csv", "jsonl"):
        out = tmp_path / f"all.{fmt}"
        run = subprocess.run(
            [*EXPORT, "--format", fmt, "--log-dir", str(root), "-o", str(out)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 5, run.stderr
        assert "damage: seg-000002.jsonl is missing from segments/" in run.stderr
        docs[fmt] = out.read_text()
    last_before = max(i for i in range(40) if f"message {i}\n" in _segment_text(root, 1))
    md = texts(docs["md"])
    at = md.index(f"> ✘ **{sentence}**")
    assert md[at - 1] == f"> message {last_before}"
    assert md.count(f"> ✘ **{sentence}**") == 1
    html_lines = [line for line in docs["html"].splitlines() if "missing from" in line]
    assert html_lines == [f'<div class="bad">✘ {sentence}</div>']
    rows = list(csv.DictReader(io.StringIO(docs["csv"], newline="")))
    (k,) = [i for i, row in enumerate(rows) if row["kind"] == "missing"]
    assert rows[k] | {"text": ""} == dict.fromkeys(rows[k], "") | {"kind": "missing"}
    assert rows[k]["text"] == sentence
    assert rows[k - 1]["text"] == f"message {last_before}"
    assert int(rows[k + 1]["seq"]) > lost[-1]
    assert "missing" not in docs["jsonl"]  # records as stored, nothing else
    with open_store(root) as store:
        assert docs["jsonl"].encode() == b"".join(r.line for r in store.records())


def _segment_text(root: Path, number: int) -> str:
    """The message texts of a segment, one a line."""
    lines = (root / "segments" / f"seg-{number:06d}.jsonl").read_bytes().splitlines()
    records = [orjson.loads(line) for line in lines]
    return "".join(f"{r['frames'][1]['json']['text']}\n" for r in records if r["kind"] == "msg")


@pytest.mark.parametrize("fmt", ["md", "html", "csv", "jsonl"])
def test_a_parallel_export_says_them_as_the_one_pass_does(tmp_path: Path, fmt: str) -> None:
    """The first segment, two in a row and the last one named by nothing but the hole
    before the end: the same bytes, rendered in pieces on two workers or in one pass."""
    root = tmp_path / "logs"
    seqs = journal(root)
    last = max(seqs)
    gone(root, 1, 3, 4)
    with open_store(root) as store:
        rng = journal_range(store, None, None)
        outs = []
        for parallel in (SERIAL, Parallel(workers=2, min_bytes=0, piece_bytes=300)):
            out = io.BytesIO()
            export_range(store, rng, fmt, out, parallel=parallel, redact=fmt == "jsonl")
            outs.append(out.getvalue().decode())
    assert outs[0] == outs[1]
    said = [line for line in outs[0].splitlines() if "missing from segments/" in line]
    if fmt == "jsonl":
        assert said == []
        return
    first = seqs[2][0]
    assert len(said) == 2
    assert (
        f"seg-000001.jsonl is missing from segments/: its records (seq before {first})" in (said[0])
    )
    assert (
        f"seg-000003.jsonl and seg-000004.jsonl are missing from segments/: their records "
        f"(seq {seqs[3][0]} to {seqs[4][-1]}) are lost"
    ) in said[1]
    assert last > 4
