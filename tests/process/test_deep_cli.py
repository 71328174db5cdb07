"""The real CLI on a journal holding messages nested 300 and 1,023 levels deep."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from recorder.daemon.core import Recorder
from recorder.daemon.options import RecorderOptions
from recorder.export.render import TOO_DEEP
from recorder.store.reader import open_store

T0 = 1_800_000_000.0


def nested(depth: int, sender: str) -> bytes:
    return (
        b'{"from":"' + sender.encode() + b'","x":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
    )


def deep_journal(root: Path) -> dict[str, bytes]:
    """Recorded by the recorder core (the real encoder and fast path), then closed cleanly."""
    payloads = {"deep-300": nested(300, "deep-300"), "deep-1023": nested(1023, "deep-1023")}
    rec = Recorder(RecorderOptions(log_dir=root), clock=lambda: T0)
    rec.open()
    rec.record_batch(T0, [[b"agents.deep", p] for p in payloads.values()])
    rec.record_batch(T0 + 1, [[b"agents.deep", b'{"from":"after","text":"still here"}']])
    rec.close()  # takes the shutdown checkpoint
    return payloads


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("deep") / "logs"
    deep_journal(root)
    return root


def persist(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args], capture_output=True, timeout=60
    )


def test_every_record_reads_back(root: Path) -> None:
    with open_store(root) as store:
        assert all(r.valid for r in store.records())
        assert [r.sender for r in store.records() if r.is_message] == [
            "deep-300",
            "deep-1023",
            "after",
        ]


@pytest.mark.parametrize("fmt", ["md", "html", "csv", "jsonl"])
def test_export_writes_a_readable_file(root: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"out.{fmt}"
    run = persist("export", "--all", "--format", fmt, "-o", str(out), "--log-dir", str(root))
    assert run.returncode == 0, run.stderr
    assert b"Traceback" not in run.stderr
    text = out.read_text()
    if fmt == "jsonl":
        assert [orjson.loads(line)["seq"] for line in text.splitlines()][:1] == [1]
        return
    assert "still here" in text and "deep-1023" in text
    if fmt == "csv":  # the payload cell is the frame as stored (since 2026-12-07)
        rows = list(csv.DictReader(io.StringIO(text)))
        payloads = [r["payload"] for r in rows if r["kind"] == "msg"]
        assert payloads[0].startswith('{"from":"deep-300"') and payloads[0].endswith("]}")
    else:
        assert TOO_DEEP in text  # the 300-deep payload, shown as its stored text


def test_restore_writes_a_bundle(root: Path) -> None:
    run = persist("restore", "latest", "--json", "--log-dir", str(root))
    assert run.returncode == 0, run.stderr
    manifest = orjson.loads(run.stdout)
    assert manifest["messages"] == 3 and manifest["integrity"]["ok"]
    bundle = Path(manifest["dir"])
    transcript = (bundle / "transcript.md").read_text()
    assert TOO_DEEP in transcript and "still here" in transcript
    with open_store(root) as store:
        stored = b"".join(r.line for r in store.records() if r.valid)
    assert (bundle / "conversation.jsonl").read_bytes() == stored
