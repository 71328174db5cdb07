"""Damage to the journal's files is reported by `persist export` and `persist restore`
(the real CLI, on real files), which write their output and exit 5 unless --allow-damage."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from recorder.store.checkpoints import DigestCache, write_checkpoint
from recorder.store.layout import Layout
from recorder.store.reader import open_store
from tests.demo_journal import restore_journal

EXIT_DAMAGE = 5


def persist(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args], capture_output=True, text=True, timeout=60
    )


def segments(root: Path) -> list[Path]:
    return sorted((root / "segments").glob("seg-*.jsonl"))


def checkpoint_now(root: Path, label: str) -> str:
    """A checkpoint of the whole journal as it is now (as `persist checkpoint` would)."""
    with open_store(root) as store:
        last = store.record(-1)
        cp = write_checkpoint(
            Layout(root),
            segment=last.segment,
            offset=store.segments[-1].size,
            seq=int(last.seq or 0),
            messages=sum(1 for r in store.records() if r.is_message),
            label=label,
            reason="manual",
            digests=DigestCache(Layout(root)),
        )
    return cp.id


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    restore_journal(root)
    assert len(segments(root)) >= 3
    return root


def torn_closed(root: Path) -> str:
    with open(segments(root)[0], "ab") as f:
        f.write(b'{"v":1,"seq":999,"ts":1800000000.5,"kind":"msg","top')
    return "seg-000001.jsonl (closed) ends with 52 bytes of a torn line"


def nul_closed(root: Path) -> str:
    with open(segments(root)[1], "ab") as f:
        f.write(b"\x00" * 300)
    return "seg-000002.jsonl (closed) ends with 300 bytes of NUL bytes"


def nul_last(root: Path) -> str:
    last = segments(root)[-1]
    with open(last, "ab") as f:
        f.write(b"\x00" * 4096)
    return f"{last.name} ends with 4096 bytes of NUL bytes"


def torn_last(root: Path) -> str:
    last = segments(root)[-1]
    with open(last, "ab") as f:
        f.write(b'{"v":1,"seq":9999,"ts":1')
    return f"{last.name} ends with 24 bytes of a torn line"


def deleted(root: Path) -> str:
    segments(root)[1].unlink()
    return "seg-000002.jsonl is missing from segments/"


@pytest.mark.parametrize("damage", [torn_closed, nul_closed, nul_last, torn_last, deleted])
@pytest.mark.parametrize("fmt", ["jsonl", "md"])
def test_export_reports_damage_and_exits_5(
    root: Path, damage: Callable[[Path], str], fmt: str
) -> None:
    clean = persist("export", "--all", "--format", fmt, "--log-dir", str(root))
    assert clean.returncode == 0 and "damage" not in clean.stderr, clean.stderr
    sentence = damage(root)
    out = persist("export", "--all", "--format", fmt, "--log-dir", str(root))
    assert out.returncode == EXIT_DAMAGE, out.stderr
    assert f"persist: damage: {sentence}" in out.stderr
    assert "exported" in out.stdout + out.stderr and out.stdout  # written all the same
    allowed = persist("export", "--all", "--format", fmt, "--allow-damage", "--log-dir", str(root))
    assert allowed.returncode == 0 and sentence in allowed.stderr
    assert allowed.stdout == out.stdout


def test_torn_closed_tail_is_a_damaged_line_and_restore_exits_5(root: Path) -> None:
    torn_closed(root)
    cp = checkpoint_now(root, "after the damage")  # its digest covers the torn bytes
    out = persist("restore", cp, "--log-dir", str(root))
    assert out.returncode == EXIT_DAMAGE, out.stderr
    assert "digest matches" in out.stdout  # the bytes did not change since the checkpoint
    assert "1 damaged line" in out.stdout and "seg-000001.jsonl (closed) ends with" in out.stdout
    manifest = orjson.loads((root / "restore" / cp / "manifest.json").read_bytes())
    assert manifest["integrity"]["damaged"] and manifest["integrity"]["bad_lines"] == 1
    assert manifest["bad_lines"][0]["segment"] == "seg-000001.jsonl"
    assert persist("restore", cp, "--allow-damage", "--log-dir", str(root)).returncode == 0
    # the journal itself was left as it was (closed segments are never rewritten)
    assert segments(root)[0].read_bytes().endswith(b'"kind":"msg","top')


def test_restore_with_a_failed_digest_exits_5(root: Path) -> None:
    seg = segments(root)[0]
    data = seg.read_bytes()
    seg.write_bytes(data.replace(b"message 1 ", b"massage 1 ", 1))  # still valid JSON
    out = persist("restore", "latest", "--json", "--log-dir", str(root))
    assert out.returncode == EXIT_DAMAGE, out.stderr
    manifest = orjson.loads(out.stdout)
    assert not manifest["integrity"]["verified"]
    assert "seg-000001.jsonl differs from the checkpoint" in manifest["integrity"]["problems"]
    assert (Path(manifest["dir"]) / "conversation.jsonl").is_file()  # bundle still written


def test_restore_with_a_deleted_segment_exits_5(root: Path) -> None:
    deleted(root)
    out = persist("restore", "latest", "--log-dir", str(root))
    assert out.returncode == EXIT_DAMAGE, out.stderr
    assert "seg-000002.jsonl is missing" in out.stdout
    assert "the journal is damaged in range" in out.stderr


def test_gaps_alone_are_not_damage(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    restore_journal(root, gap=True)
    out = persist("restore", "latest", "--log-dir", str(root))
    assert out.returncode == 0 and "1 gap" in out.stdout, out.stderr


def test_garbage_checkpoint_files_are_named_not_silently_skipped(root: Path) -> None:
    (root / "checkpoints" / "zz-garbage.json").write_bytes(b"\x00\x01 not json")
    (root / "checkpoints" / "zz-typed.json").write_bytes(b'{"id": 5, "position": "x"}')
    for args in (["export", "--all"], ["restore", "latest"]):
        out = persist(*args, "--log-dir", str(root))
        assert out.returncode == 0, out.stderr
        assert "warning: checkpoints/zz-garbage.json is not a valid checkpoint (not JSON)" in (
            out.stderr
        )
        assert "warning: checkpoints/zz-typed.json is not a valid checkpoint" in out.stderr
