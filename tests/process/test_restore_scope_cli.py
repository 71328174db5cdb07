"""`persist restore --last/--since/--full` from the shell: what the bundle holds, what
was verified, and exit 5 only when the journal is damaged where it was checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.unit.test_partial_bundles import MESSAGES, journal, segments

EXIT_DAMAGE = 5


def persist(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args], capture_output=True, text=True, timeout=60
    )


def manifest(out: subprocess.CompletedProcess[str]) -> dict:  # type: ignore[type-arg]
    data = orjson.loads(out.stdout)
    assert isinstance(data, dict)
    return data


def test_scopes_from_the_shell(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    half, end = journal(root)
    out = persist("restore", "latest", "--last", "7", "--log-dir", str(root))
    assert out.returncode == 0, out.stderr
    assert "holds       the last 7 messages" in out.stdout
    assert "earlier records not read" in out.stdout and "--full reads and verifies" in out.stdout
    m = manifest(persist("restore", "latest", "--last", "7", "--json", "--log-dir", str(root)))
    assert m["messages"] == 7 and m["range"]["complete"] is False
    m = manifest(persist("restore", "end", "--since", half.id, "--json", "--log-dir", str(root)))
    assert m["messages"] == MESSAGES - 30 and m["scope"] == {"kind": "since", "since": half.id}
    m = manifest(persist("restore", end.id, "--full", "--json", "--log-dir", str(root)))
    assert m["messages"] == MESSAGES and m["range"]["complete"] is True
    bad = persist("restore", "latest", "--last", "0", "--log-dir", str(root))
    assert bad.returncode == 2 and "--last" in bad.stderr
    both = persist("restore", "latest", "--last", "3", "--full", "--log-dir", str(root))
    assert both.returncode == 2 and "not allowed with" in both.stderr


def test_since_a_later_checkpoint_exits_2_and_since_itself_says_it_holds_nothing(
    tmp_path: Path,
) -> None:
    """`--since` a later checkpoint exited 1 (export's reversed range: 2, a bad
    argument); `--since` the checkpoint itself printed `messages 0 ( → )` and
    `seq None to None`."""
    root = tmp_path / "logs"
    half, end = journal(root)
    later = persist("restore", half.id, "--since", end.id, "--log-dir", str(root))
    assert later.returncode == 2, later.stderr
    assert later.stderr == f"persist: --since {end.id} comes after {half.id}: " + (
        "give an earlier checkpoint (everything after it up to the one restored)\n"
    )
    same = persist("restore", half.id, "--since", half.id, "--log-dir", str(root))
    assert same.returncode == 0, same.stderr
    assert "None" not in same.stdout and "( → )" not in same.stdout, same.stdout
    (line,) = [ln for ln in same.stdout.splitlines() if "holds" in ln or "messages" in ln]
    assert line == f"  holds       nothing: no record in its range (everything after {half.id})"


@pytest.mark.parametrize("where", ["inside", "outside"])
def test_a_damaged_line_inside_the_range_exits_5_and_outside_only_full_finds_it(
    tmp_path: Path, where: str
) -> None:
    root = tmp_path / "logs"
    journal(root, bad_at=55 if where == "inside" else 3)
    partial = persist("restore", "latest", "--last", "10", "--log-dir", str(root))
    full = persist("restore", "latest", "--full", "--log-dir", str(root))
    assert full.returncode == EXIT_DAMAGE and "1 damaged line" in full.stdout, full.stderr
    if where == "inside":
        assert partial.returncode == EXIT_DAMAGE, partial.stderr
        assert "integrity   PROBLEMS" in partial.stdout and "1 damaged line" in partial.stdout
        assert "the journal is damaged in range" in partial.stderr
    else:
        # not read, and said so: never "verified" for what was not checked
        assert partial.returncode == 0, partial.stderr
        assert "earlier records not read" in partial.stdout


def test_a_changed_byte_in_the_range_fails_the_digest(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    _half, end = journal(root)
    seg = next(p for p in segments(root) if p.name == f"seg-{end.segment:06d}.jsonl")
    data = seg.read_bytes()
    seg.write_bytes(data.replace(b"message 5", b"massage 5", 1))  # still valid JSON
    out = persist("restore", "latest", "--last", "3", "--json", "--log-dir", str(root))
    assert out.returncode == EXIT_DAMAGE, out.stderr
    m = manifest(out)
    assert m["integrity"]["verified"] is False and m["integrity"]["ok"] is False
    assert f"{seg.name} differs from the checkpoint" in m["integrity"]["problems"]
    human = persist("restore", "latest", "--last", "3", "--log-dir", str(root))
    # which segment differs, not "digest does NOT match for N segments re-hashed"
    assert "digest re-checked over" in human.stdout, human.stdout
    assert f"{seg.name} differs from the checkpoint" in human.stdout


def test_a_gap_is_a_recorded_loss_not_a_problem(tmp_path: Path) -> None:
    """A gap (messages the bus lost, recorded as such) is reported with exit 0: the
    journal is whole, so the verdict is not PROBLEMS, which goes with exit 5."""
    from tests.demo_journal import restore_journal

    root = tmp_path / "logs"
    cp, _messages = restore_journal(root, gap=True)
    out = persist("restore", cp.id, "--full", "--log-dir", str(root))
    assert out.returncode == 0, out.stderr
    assert "integrity   losses recorded (digest matches" in out.stdout
    assert "warning: 1 gap, 3 messages known lost" in out.stdout
    assert "PROBLEMS" not in out.stdout
