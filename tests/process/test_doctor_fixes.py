"""`persist doctor --fix` repairs what it says it repaired, once, and only inside the
log folder: an unreadable closed segment is left out of the search index for good (not
rebuilt at every catch-up), a full disk is no damage and still gets a report, a
symlink out of the folder is never written through, and a symlinked status.json is
removed, not kept as a link. The real CLI on real files (a size-limited tmpfs for the
full disk: root only, skipped otherwise)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from recorder.store.layout import Layout, list_segments
from tests.unit.test_search_index import write_journal


def persist(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args], capture_output=True, text=True, timeout=120
    )


def doctor_json(log_dir: Path, *extra: str) -> dict:
    out = persist("doctor", "--json", "--log-dir", str(log_dir), *extra)
    assert out.returncode in (0, 8, 9), out.stderr
    return orjson.loads(out.stdout)


def checks(report: dict, prefix: str) -> dict[str, str]:
    return {f["check"]: f["summary"] for f in report["findings"] if f["check"].startswith(prefix)}


def indexed_journal(tmp_path: Path) -> Path:
    """A stopped recorder's folder: several closed segments, compressed, and a search
    index level with them."""
    log_dir = tmp_path / "logs"
    write_journal(log_dir, 400, segment_bytes=16 * 1024).close()
    assert len(list_segments(Layout(log_dir))) >= 4
    done = persist("compact", "--log-dir", str(log_dir))
    assert done.returncode == 0, done.stderr
    done = persist("reindex", "--log-dir", str(log_dir))
    assert done.returncode == 0, done.stderr
    return log_dir


def test_an_unreadable_closed_segment_is_left_out_of_the_index_once(tmp_path: Path) -> None:
    """A rebuild with an unreadable closed segment kept no row for it, so every later
    catch-up found it "below indexed ones" and rebuilt the whole index: `doctor --fix`
    said "fixed search.stale" and its own re-check showed it again, each run keeping
    another copy of the index in recovery/doctor/, and `reindex --catch-up` rebuilt
    every time. Now the rebuild records it as left out, named, until it can be read."""
    log_dir = indexed_journal(tmp_path)
    second = list_segments(Layout(log_dir))[1]
    assert second.name.endswith(".zst")
    saved = second.read_bytes()
    with open(second, "r+b") as f:
        f.truncate(300)  # no trailer: it cannot be opened
    before = checks(doctor_json(log_dir), "search.")
    assert "segment 2 cannot be read" in before["search.stale"], before

    fixed = doctor_json(log_dir, "--fix")
    [repair] = [f for f in fixed["fixed"] if f["check"] == "search.stale"]
    assert repair["ok"] and "segment 2 left out: it cannot be read" in repair["done"], repair
    after = checks(fixed, "search.")
    assert list(after) == ["search.index"], after
    assert "segment 2 left out: unreadable (see journal)" in after["search.index"], after

    again = doctor_json(log_dir, "--fix")
    assert not [f for f in again["fixed"] if f["check"].startswith("search.")], again["fixed"]
    assert len(list((log_dir / "recovery" / "doctor").iterdir())) == 1
    for _ in range(2):
        out = persist("reindex", "--catch-up", "--log-dir", str(log_dir))
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("search index caught up: 0 records"), out.stdout
        assert "rebuilt because" not in out.stderr, out.stderr
        assert "segment 2 left out: it cannot be read" in out.stderr, out.stderr

    second.write_bytes(saved)  # back from a backup: indexed again, whole
    back = checks(doctor_json(log_dir), "search.")
    assert "segment 2, left out as unreadable, can be read now" in back["search.stale"], back
    out = persist("reindex", "--catch-up", "--log-dir", str(log_dir))
    assert out.returncode == 0, out.stderr
    assert (
        out.stderr
        == "persist: rebuilt because segment 2, left out as unreadable, can be read now\n"
    )
    assert "left out" not in checks(doctor_json(log_dir), "search.")["search.index"]
    found = persist("search", "--count", "deployment", "--log-dir", str(log_dir))
    assert "8 exact matches" in found.stderr, found.stderr
