"""The recorder's own retention: its periodic pass driven by an injected clock, the
trash emptied after its grace, and its configuration (options over retention.toml)."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from recorder.cli.main import main
from recorder.daemon.core import Recorder
from recorder.daemon.options import RecorderOptions
from recorder.errors import BadOption
from recorder.store.layout import list_segments
from recorder.store.pruned import read_pruned
from recorder.store.retention import TrashEntry
from recorder.store.retention_config import DEFAULT_GRACE, DEFAULT_INTERVAL, Policy
from recorder.store.trash import list_trash
from tests.support import journal_records
from tests.unit.test_daemon import Clock, feed, make

BODY = orjson.dumps({"text": "y" * 400, "sender": "coder"})


def pruning(
    tmp_path: Path, clock: Clock, *, writer_thread: bool = False, **opts: object
) -> Recorder:
    """A recorder on 8 KiB segments with a 40 KiB size policy looked at every minute,
    uncompressed (sizes on disk are asserted), fed 400 messages (over 150 KiB);
    `writer_thread`: its writer on a thread of its own, as in the recorder."""
    rec = make(
        tmp_path,
        clock,
        **{
            "segment_bytes": 8 * 1024,
            "retention": Policy(max_size=40 * 1024),
            "retention_interval": 60.0,
            "compress": False,
            **opts,
        },
    )
    if writer_thread:
        rec.journal.sink.start()
    for _ in range(10):
        feed(rec, clock, *[[b"agents.coder", BODY] for _ in range(40)])
        rec.drain_wait()
    return rec


def test_the_recorder_prunes_on_its_interval_and_empties_the_trash_after_the_grace(
    tmp_path: Path,
) -> None:
    clock = Clock()
    rec = pruning(tmp_path, clock, trash_grace=3600.0)
    assert sum(p.stat().st_size for p in list_segments(rec.layout)) > 150 * 1024
    rec.tick(clock.now)  # before its first pass is due (30 s after the start): nothing
    assert not rec.layout.trash.exists()
    clock.now += 31
    first_pass = clock.now
    rec.tick(clock.now)
    rec.drain_wait()
    assert sum(p.stat().st_size for p in list_segments(rec.layout)[:-1]) <= 40 * 1024
    (entry,) = list_trash(rec.layout)
    assert entry.by == "recorder"
    feed(rec, clock, *[[b"agents.coder", BODY] for _ in range(200)])
    rec.drain_wait()
    clock.now += 30
    rec.tick(clock.now)  # not due again yet
    assert len(list_trash(rec.layout)) == 1
    clock.now += 31
    rec.tick(clock.now)
    assert len(list_trash(rec.layout)) == 2
    clock.now = first_pass + 3600  # the first entry is an hour old: past its grace
    rec.tick(clock.now)
    (second,) = list_trash(rec.layout)
    assert second.id != entry.id
    clock.now += 120  # and now the second
    rec.tick(clock.now)
    assert list_trash(rec.layout) == []
    assert all(n.emptied is not None for n in read_pruned(rec.layout).values())
    written = rec.counters.written
    rec.close()
    events = [r for r in journal_records(rec.layout.root) if r["kind"] == "event"]
    assert [e["event"] for e in events][-3:] == ["trash-empty", "trash-empty", "stop"]
    assert written == 600 and rec.counters.gaps == 0 and rec.counters.missed == 0


def test_options_win_over_the_folder_file_and_a_bad_file_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "logs"
    log.mkdir()
    defaults = RecorderOptions(log_dir=log)
    assert not defaults.effective_retention.active
    in_force = (defaults.effective_retention_interval, defaults.effective_trash_grace)
    assert in_force == (DEFAULT_INTERVAL, DEFAULT_GRACE)
    (log / "retention.toml").write_text(
        '[retention]\nolder_than = "90d"\nmax_size = "20G"\ninterval = "5m"\n'
    )
    options = RecorderOptions(log_dir=log, retention=Policy(max_size=1024))
    assert options.effective_retention == Policy(older_than=90 * 86400.0, max_size=1024)
    assert options.effective_retention_interval == 300.0
    # left as given: the argv a recorder is started with carries no value of the file
    assert options.retention == Policy(max_size=1024) and options.retention_interval is None
    for body, words in [
        ('[retention]\nolder_than = "ninety days"\n', "retention.older_than 'ninety days' is not"),
        ("[retention]\nmax_size = true\n", "retention.max_size must be a string"),
        ("[retention]\nkeep = 3\n", "unknown key 'keep'"),
        ("[retention\n", "cannot be read as TOML"),
    ]:
        (log / "retention.toml").write_text(body)
        with pytest.raises(BadOption, match=r"retention\.toml") as caught:
            RecorderOptions(log_dir=log)
        assert words in str(caught.value)
        capsys.readouterr()
        assert main(["record", "--log-dir", str(log), "--embedded", "no"]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and words in err
    (log / "retention.toml").unlink()
    capsys.readouterr()
    assert main(["record", "--log-dir", str(log), "--retention-max-size", "big"]) == 2
    assert "--retention-max-size 'big' is not a size" in capsys.readouterr().err


def test_an_unexpected_failure_of_a_request_is_its_reply_not_the_recorders_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prune request that fails with what no code expects (here the ImportError of a
    package upgraded under a running recorder, when maintenance was imported lazily at
    the first request) ended the recorder; its retention pass likewise. Now the request
    gets a reply naming the failure, the pass is logged, and the recorder goes on."""
    from recorder.daemon import maintenance

    clock = Clock()
    rec = make(tmp_path, clock, retention=Policy(max_size=1024), retention_interval=60.0)
    feed(rec, clock, [b"agents.coder", BODY])

    def upgraded(*_args: object, **_kwargs: object) -> None:
        raise ImportError("cannot import name 'new_helper' from 'recorder.store.pruned'")

    monkeypatch.setattr(maintenance, "recorder_prune", upgraded)
    control = rec.layout.control
    control.mkdir(exist_ok=True)
    request = control / "0123.maint"
    request.write_bytes(orjson.dumps({"kind": "prune", "policy": {"older_than_s": 60.0}}))
    rec.handle_maintenance(clock.now)
    reply = orjson.loads((control / "0123.maint-done").read_bytes())
    assert reply["ok"] is False and "ImportError: cannot import name 'new_helper'" in reply["error"]
    assert "upgraded while this recorder ran" in reply["error"]
    rec.retention_pass(clock.now)  # logged and skipped, not raised
    feed(rec, clock, [b"agents.coder", BODY])  # still recording
    rec.close()
    assert sum(r["kind"] == "msg" for r in journal_records(rec.layout.root)) == 2


def state(entry: TrashEntry) -> str:
    assert entry.path is not None
    return str(orjson.loads((entry.path / "manifest.json").read_bytes())["state"])


def test_a_retention_pass_that_cannot_run_is_the_status_last_error_until_one_works(
    tmp_path: Path,
) -> None:
    """The recorder's retention skipped at every pass (here its ledger of pruned
    segments is torn) only logged a warning: `persist status` said HEALTHY with nothing
    more while the size policy never ran. Now the skip is the status's last error,
    shown by `persist status` as a warning, until a pass works again."""
    from recorder.store.status import assess

    clock = Clock()
    rec = pruning(tmp_path, clock)
    ledger = rec.layout.root / "retention" / "pruned.json"
    ledger.parent.mkdir(exist_ok=True)
    ledger.write_text('{"segm')
    clock.now += 31
    rec.tick(clock.now)
    assert not rec.layout.trash.exists()
    rec.write_status(clock.now)
    [warning] = assess(rec.layout, clock.now).warnings
    assert warning.startswith("last error: retention pass skipped: ")
    assert "pruned.json" in warning and "persist doctor" in warning
    ledger.unlink()  # mended: the next pass prunes, and the error is no longer current
    clock.now += 61
    rec.tick(clock.now)
    assert len(list_trash(rec.layout)) == 1
    rec.write_status(clock.now)
    assert assess(rec.layout, clock.now).warnings == []
    rec.close()


def test_the_recorder_neither_prunes_nor_empties_past_an_interrupted_prune(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The recorder's own prune cut short (its 3rd rename fails, as if it was killed)
    left an entry "moving"; its next pass wrote a second entry for the segments still
    there (overlapping, neither journaled). Now every pass refuses, saying which entry
    and the command, until `persist trash restore` undoes it."""
    import os

    from recorder.store import retention

    clock = Clock()
    rec = pruning(tmp_path, clock, trash_grace=0.0)
    real_rename, calls = os.rename, {"n": 0}

    def failing(src: object, dst: object) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("killed")
        real_rename(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(retention.os, "rename", failing)
    clock.now += 31
    rec.tick(clock.now)
    monkeypatch.setattr(retention.os, "rename", real_rename)
    (entry,) = list_trash(rec.layout)
    assert state(entry) == "moving"
    for _ in range(2):  # due again: refused, the entry neither emptied nor overlapped
        feed(rec, clock, *[[b"agents.coder", BODY] for _ in range(40)])
        rec.drain_wait()
        clock.now += 61
        rec.tick(clock.now)
        assert [(e.id, state(e)) for e in list_trash(rec.layout)] == [(entry.id, "moving")]
    assert f"trash/{entry.id}: a prune was interrupted" in caplog.text
    assert f"persist trash restore {entry.id}" in caplog.text
    rec.close()
    assert main(["trash", "restore", entry.id, "--log-dir", str(rec.layout.root)]) == 0
    events = [r for r in journal_records(rec.layout.root) if r["kind"] == "event"]
    assert [e["event"] for e in events if e["event"] != "stop"][-1] == "trash-restore"
    assert not [e for e in events if e["event"] in ("prune", "trash-empty")]
    assert list_trash(rec.layout) == [] and read_pruned(rec.layout) == {}


def test_a_prune_is_done_only_once_its_record_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recorder's prune marked its trash entry done as soon as its record was
    handed to the writer thread: a recorder that died before the writer wrote it (a
    slow or full disk) left a finished prune that no record names. Now the entry is
    done only once the writer has written the record; a record not written in time
    leaves the prune interrupted (listed, refused, restorable)."""
    import threading

    from recorder.daemon import core

    clock = Clock()
    rec = pruning(tmp_path, clock, writer_thread=True)
    held = threading.Event()
    real = rec.journal.sink.writev

    def stalled(fd: int, chunks: object) -> int:
        held.wait()  # a disk that does not take the write (yet)
        return real(fd, chunks)  # type: ignore[arg-type]

    monkeypatch.setattr(rec.journal.sink, "writev", stalled)
    monkeypatch.setattr(core, "RECORD_WAIT", 0.3)
    clock.now += 61
    rec.tick(clock.now)
    (entry,) = list_trash(rec.layout)
    assert state(entry) == "moving"  # its record not written: not done
    held.set()
    rec.close()
    prunes = [r for r in journal_records(rec.layout.root) if r.get("event") == "prune"]
    assert len(prunes) == 1  # written late: the entry still says interrupted, restorable
    assert main(["trash", "restore", entry.id, "--log-dir", str(rec.layout.root)]) == 0


YEAR = 365 * 86400.0


def test_a_clock_a_year_ahead_for_a_moment_neither_prunes_nor_empties_the_trash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """90 days, 14 days of grace: the wall clock a year ahead for a few seconds (an RTC
    wrong at boot, NTP a moment later) finds every segment and the trash entry made a
    minute ago a year old. The recorder sees the step against the boot clock and
    waits; once the clock is right, nothing recorded today goes. (Before 2026-12-07
    that pass pruned every closed segment and deleted the trash entry for good.)"""
    clock = Clock(time.time())
    rec = pruning(
        tmp_path,
        clock,
        retention=Policy(older_than=90 * 86400.0, max_size=40 * 1024),
        trash_grace=14 * 86400.0,
    )
    clock.now += 31
    rec.tick(clock.now)  # the size rule: a trash entry made now
    rec.drain_wait()
    (entry,) = list_trash(rec.layout)
    segments = [p.name for p in list_segments(rec.layout)]
    assert len(segments) > 3
    real = time.clock_gettime
    ahead = {"by": YEAR}

    def stepped(clk: int) -> float:  # the wall clock as this process sees it
        return real(clk) + (ahead["by"] if clk == time.CLOCK_REALTIME else 0.0)

    monkeypatch.setattr(time, "clock_gettime", stepped)
    clock.now += YEAR
    rec.tick(clock.now)
    rec.drain_wait()
    assert [p.name for p in list_segments(rec.layout)] == segments
    assert [e.id for e in list_trash(rec.layout)] == [entry.id]
    assert rec.last_error is not None and "the wall clock stepped" in rec.last_error.message
    ahead["by"] = 0.0  # put right
    clock.now -= YEAR
    clock.now += 61
    rec.retention_pass(clock.now)  # (when its next pass is due is the scheduler's)
    rec.drain_wait()
    left = [p.name for p in list_segments(rec.layout)]  # the size rule may take one more
    assert len(left) >= len(segments) - 1 and left[-1] == segments[-1]
    assert entry.id in [e.id for e in list_trash(rec.layout)]
    assert rec.last_error is None
    rec.close()
