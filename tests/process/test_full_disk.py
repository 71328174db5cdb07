"""A full disk is reported, not hidden: degraded within a second or two, recording again
once space returns; a stop waits for room to write what it holds, and a forced one
counts what it could not write, which the next start records as a gap.

A real size-limited tmpfs (root only; skipped otherwise) under real processes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from tests.process.test_stalls import fill, small_disk, start, stream
from tests.support import Bus, free_port, journal_records, read_status, wait_for


def status(log_dir: Path) -> tuple[int, dict]:
    out = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "status", "--json", "--log-dir", str(log_dir)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return out.returncode, orjson.loads(out.stdout)


def test_a_full_disk_is_degraded_with_its_reason_then_recording_again(
    bus: Bus, tmp_path: Path
) -> None:
    with small_disk(tmp_path / "disk", 16) as disk:
        bus.log_dir = disk / "logs"
        start(bus)
        s = stream(bus, rate=1000, seconds=9)
        time.sleep(1.0)
        fill(disk / "filler")
        t_full = time.monotonic()
        _code, report = wait_for(
            lambda: (r := status(bus.log_dir))[0] == 6 and r,
            timeout=10,
            what="status to say degraded",
        )  # type: ignore[misc]
        noticed = time.monotonic() - t_full
        assert "cannot write its journal" in report["reason"]
        assert "No space left" in report["status"]["disk_error"]
        # what it took in but could not write is said to wait, not to be written
        time.sleep(0.5)
        text = subprocess.run(
            [sys.executable, "-m", "recorder.cli", "status", "--log-dir", str(bus.log_dir)],
            capture_output=True,
            text=True,
        ).stdout
        (line,) = [x for x in text.splitlines() if x.startswith("  messages")]
        assert " taken in this run" in line and "bytes of them wait in memory" in line, line
        (disk / "filler").unlink()
        t_free = time.monotonic()
        _code, report = wait_for(
            lambda: (r := status(bus.log_dir))[0] == 0 and r,
            timeout=10,
            what="status to say healthy again",
        )  # type: ignore[misc]
        resumed = time.monotonic() - t_free
        assert report["status"]["disk_error"] is None
        # the error of a recovery-state write that failed on the full disk stays until
        # the recorder's next tick writes the state again (not always before "healthy")
        wait_for(
            lambda: status(bus.log_dir)[1]["status"]["last_error"] is None,
            timeout=5,
            what="no error to be current any more",
        )
        sent = s.finish()
        wait_for(
            lambda: status(bus.log_dir)[1]["status"]["counts"]["written"] >= sent,
            timeout=30,
            what="every message written",
        )
        assert bus.recorder is not None
        bus.recorder.signal(signal.SIGTERM)
        assert bus.recorder.wait(10) == 0
        seqs = steady_seqs(bus.log_dir)
        assert sorted(seqs) == list(range(1, sent + 1))  # nothing lost meanwhile
    print(f"\ndegraded {noticed:.2f} s after the disk filled, healthy {resumed:.2f} s after")


def steady_seqs(log_dir: Path) -> list[int]:
    return [
        r["frames"][1]["json"]["_persist"]["seq"]
        for r in journal_records(log_dir)
        if r["kind"] == "msg" and r["topic"] == "agents.steady"
    ]


def persist(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args], capture_output=True, text=True, timeout=60
    )


def held_on_a_full_disk(bus: Bus, disk: Path, *extra: str) -> int:
    """A recorder holding lines its full disk refuses, asked to stop; returns how many
    messages were sent."""
    bus.log_dir = disk / "logs"
    start(bus, *extra)
    s = stream(bus, rate=1000, seconds=3)
    time.sleep(0.5)
    fill(disk / "filler")
    wait_for(lambda: status(bus.log_dir)[0] == 6, timeout=10, what="degraded")
    sent = s.finish()
    wait_for(
        lambda: status(bus.log_dir)[1]["status"]["counts"]["received"] >= sent,
        timeout=30,
        what="every message received",
    )
    assert bus.recorder is not None
    bus.recorder.signal(signal.SIGTERM)
    return sent


def test_a_stop_on_a_full_disk_waits_for_room_then_loses_nothing(bus: Bus, tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", 16) as disk:
        sent = held_on_a_full_disk(bus, disk)
        assert bus.recorder is not None
        code, report = wait_for(
            lambda: (r := status(bus.log_dir))[1]["status"]["state"] == "stopping" and r,
            timeout=10,
            what="the status to say stopping",
        )  # type: ignore[misc]
        assert code == 6 and "is stopping, and waits for room" in report["reason"]
        assert "persist stop --force" in report["reason"]
        time.sleep(2.0)
        assert bus.recorder.popen.poll() is None  # waiting, not giving up on a timer
        stop = persist("stop", "--log-dir", str(bus.log_dir), "--timeout", "1")
        assert stop.returncode == 1 and "waits for room" in stop.stderr, stop.stderr
        (disk / "filler").unlink()
        assert bus.recorder.wait(30) == 0  # room again: it writes all and stops cleanly
        code, report = status(bus.log_dir)
        assert code == 3 and report["reason"].startswith("stopped cleanly")
        assert sorted(steady_seqs(bus.log_dir)) == list(range(1, sent + 1))


def test_a_forced_stop_on_a_full_disk_counts_what_it_lost(bus: Bus, tmp_path: Path) -> None:
    """`persist stop --force` gives up what the disk refused: exit 1, the status names
    how many messages were lost, and the next start records exactly those as a gap."""
    with small_disk(tmp_path / "disk", 16) as disk:
        sent = held_on_a_full_disk(bus, disk)
        assert bus.recorder is not None
        forced = persist("stop", "--log-dir", str(bus.log_dir), "--force", "--timeout", "20")
        assert forced.returncode == 1, forced.stderr
        assert "gave up:" in forced.stderr and "could not be written" in forced.stderr
        assert bus.recorder.wait(10) == 1
        assert "NOT a clean stop" in bus.recorder.output()
        code, report = status(bus.log_dir)
        lost = report["status"]["unwritten"]
        assert code == 3 and "NOT cleanly" in report["reason"] and lost["messages"] > 0
        assert "stopped without writing everything" in report["status"]["last_error"]["message"]
        (disk / "filler").unlink()
        bus.start_recorder()  # the next start records the loss
        bus.recorder.signal(signal.SIGTERM)
        assert bus.recorder.wait(10) == 0
        gaps = [r for r in journal_records(bus.log_dir) if r["kind"] == "gap"]
        unwritten = [g for g in gaps if g["cause"] == "unwritten-at-stop"]
        assert len(unwritten) == 1 and unwritten[0]["missed"] == lost["messages"]
        down = [g for g in gaps if g["cause"] == "recorder-down"]
        assert down[-1]["clean_stop"] is False and "unwritten-at-stop" in down[-1]["detail"]
        kept = steady_seqs(bus.log_dir)
        assert len(set(kept)) == len(kept)
        assert len(kept) + lost["messages"] == sent  # every message: kept, or counted lost


def test_stop_wait_bounds_the_wait_for_room(bus: Bus, tmp_path: Path) -> None:
    """`--stop-wait 1` (what the systemd unit sets, under its TimeoutStopSec): a SIGTERM
    on a full disk gives up after a second, counted, with no second request."""
    with small_disk(tmp_path / "disk", 16) as disk:
        held_on_a_full_disk(bus, disk, "--stop-wait", "1")
        assert bus.recorder is not None
        t0 = time.monotonic()
        assert bus.recorder.wait(15) == 1
        assert 0.9 <= time.monotonic() - t0 < 10
        code, report = status(bus.log_dir)
        assert code == 3 and report["status"]["unwritten"]["messages"] > 0


def test_checkpoint_and_pin_on_a_full_disk_say_what_failed_and_leave_no_temp_file(
    tmp_path: Path,
) -> None:
    """A bare `[Errno 28] No space left on device` said neither what failed nor what
    was kept, and a pin's temp file stayed behind: its bytes, still in the buffer,
    failed again when the temp file was closed, before it was removed."""
    from tests.demo_journal import build_demo

    with small_disk(tmp_path / "disk", 16) as disk:
        log_dir = build_demo(disk / "logs")
        fill(disk / "filler")
        before = sorted(p.name for p in (log_dir / "checkpoints").iterdir())
        made = persist("checkpoint", "--label", "full", "--log-dir", str(log_dir))
        pinned = persist("pin", "latest", "--log-dir", str(log_dir))
        for out, what in ((made, "checkpoint"), (pinned, "pin")):
            assert out.returncode == 1, out.stderr
            (line,) = out.stderr.splitlines()
            assert line.startswith(f"persist: {what}") and "No space left" in line, line
        assert "no checkpoint was made" in made.stderr
        assert sorted(p.name for p in (log_dir / "checkpoints").iterdir()) == before
        assert not [p for p in log_dir.rglob("*") if p.name.endswith(".tmp")]


def test_search_stats_and_catch_up_on_a_full_disk_fail_in_one_line_every_time(
    tmp_path: Path,
) -> None:
    """A catch-up whose index write found the disk full reset the index and started
    again, with no end: the first search failed in one line, leaving a small index,
    and every later search, stats or catch-up spun at full CPU. A full disk is no
    damage: each says so and exits 1, and once there is room the search works."""
    from tests.unit.test_search_index import write_journal

    with small_disk(tmp_path / "disk", 4) as disk:
        log_dir = disk / "logs"
        write_journal(log_dir, 3000, segment_bytes=256 * 1024).close()
        filler = disk / "filler"
        fill(filler)
        with open(filler, "r+b") as f:  # room for an empty index, not for its rows
            f.truncate(filler.stat().st_size - 256 * 1024)
        for cmd in (["search", "deployment"],) * 2 + (["stats"], ["reindex", "--catch-up"]):
            out = subprocess.run(
                [sys.executable, "-m", "recorder.cli", *cmd, "--log-dir", str(log_dir)],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert out.returncode == 1, (cmd, out.stderr)
            (line,) = out.stderr.splitlines()
            assert line.startswith("persist: cannot use the search index in ") and line.endswith(
                "database or disk is full; free some space"
            ), line
        filler.unlink()
        out = persist("search", "--count", "deployment", "--log-dir", str(log_dir))
        assert out.returncode == 0, out.stderr
        assert "60 exact matches" in out.stderr, out.stderr


def _recorded_then_full(bus: Bus, disk: Path, seconds: float) -> int:
    """1,000 msgs/s for `seconds`, all written, then the disk filled; how many."""
    sent = stream(bus, rate=1000, seconds=seconds).finish()
    wait_for(
        lambda: status(bus.log_dir)[1]["status"]["counts"]["written"] >= sent,
        timeout=30,
        what="the first messages written",
    )
    fill(disk / "filler")
    return sent


def test_prune_and_trash_empty_free_a_full_disk_under_a_running_recorder(
    bus: Bus, tmp_path: Path
) -> None:
    """The disk fills under a running recorder, which holds what it cannot write: the
    request of `persist prune` is written in the room the recorder kept for retention,
    its writer resumes in that room, it prunes and journals it, and `persist trash
    empty` then frees the space: healthy again, nothing lost, each change one record.
    (Before: "persist: prune: No space left on device", the request never written.)"""
    with small_disk(tmp_path / "disk", 16) as disk:
        bus.log_dir = disk / "logs"
        start(
            bus,
            "--segment-mb",
            "0.05",
            "--compress",
            "off",
            "--search-index",
            "off",
            "--monitor",
            "off",
        )
        n1 = _recorded_then_full(bus, disk, seconds=2)
        more = stream(bus, rate=200, seconds=1)
        wait_for(lambda: status(bus.log_dir)[0] == 6, timeout=10, what="degraded")
        n2 = more.finish()  # a publisher of its own: seq 1 to n2
        log = str(bus.log_dir)
        pruned = persist("prune", "--max-size", "100K", "--log-dir", log)
        assert pruned.returncode == 0 and pruned.stdout.startswith("pruned "), pruned.stderr
        emptied = persist("trash", "empty", "--older-than", "0s", "--log-dir", log)
        assert emptied.returncode == 0 and "emptied trash/" in emptied.stdout, emptied.stderr
        wait_for(lambda: status(bus.log_dir)[0] == 0, timeout=10, what="healthy again")
        wait_for(
            lambda: status(bus.log_dir)[1]["status"]["counts"]["written"] >= n1 + n2,
            timeout=30,
            what="every message written",
        )
        assert status(bus.log_dir)[1]["status"]["counts"]["missed"] == 0  # none lost
        assert bus.recorder is not None
        bus.recorder.signal(signal.SIGTERM)
        assert bus.recorder.wait(10) == 0
        records = journal_records(bus.log_dir)
        events = [r for r in records if r["kind"] == "event"]
        [prune] = [e for e in events if e["event"] == "prune"]
        assert [e["event"] for e in events].count("trash-empty") == 1
        assert [r for r in records if r["kind"] == "gap" and r["cause"] != "recorder-down"] == []
        # the journal goes on from where the prune ended, without a hole
        seqs = [r["seq"] for r in records]
        assert seqs == list(range(prune["to_seq"] + 1, seqs[-1] + 1)) and prune["from_seq"] == 1


def test_a_prune_the_full_disk_leaves_no_room_to_journal_does_nothing_and_says_so(
    bus: Bus, tmp_path: Path
) -> None:
    """More waits in the recorder's memory than the room kept for retention: no prune
    could be journaled, so none begins (no entry left "moving" to block the next ones):
    one line saying nothing was done and to free space, exit 1."""
    with small_disk(tmp_path / "disk", 16) as disk:
        bus.log_dir = disk / "logs"
        start(bus, "--segment-mb", "0.05", "--compress", "off", "--search-index", "off")
        _recorded_then_full(bus, disk, seconds=1)
        more = stream(bus, rate=2000, seconds=3)
        wait_for(
            lambda: status(bus.log_dir)[1]["status"]["backlog_bytes"] > 2 << 20,
            timeout=20,
            what="more than the room kept to wait in memory",
        )
        pruned = persist("prune", "--max-size", "100K", "--log-dir", str(bus.log_dir))
        more.finish()
        assert pruned.returncode == 1 and pruned.stdout == ""
        err = pruned.stderr
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert "nothing was done" in err and "free some space" in err, err
        trash = bus.log_dir / "trash"
        assert not trash.exists() or [p for p in trash.iterdir() if p.name[0] != "."] == []
        (disk / "filler").unlink()
        wait_for(lambda: status(bus.log_dir)[0] == 0, timeout=60, what="healthy again")
        assert bus.recorder is not None
        bus.recorder.signal(signal.SIGTERM)
        assert bus.recorder.wait(10) == 0
        records = journal_records(bus.log_dir)
        assert [r for r in records if r["kind"] == "event" and r["event"] == "prune"] == []


def test_messages_dropped_over_the_backlog_budget_stay_counted_after_a_forced_stop(
    bus: Bus, tmp_path: Path
) -> None:
    """Beyond `--max-backlog-mb` messages are dropped into a `recorder-backlog` gap, whose
    line waits with the rest on a full disk. A forced stop gave it up with them, and its
    `missed` was in no record of the journal (the hunter's run: 500 sent, 482 missing,
    the unwritten-at-stop gap said 261). Now that gap counts those messages too."""
    with small_disk(tmp_path / "disk", 16) as disk:
        bus.log_dir = disk / "logs"
        start(bus, "--max-backlog-mb", "0.05")
        s = stream(bus, rate=1000, seconds=3)
        time.sleep(0.5)
        fill(disk / "filler")
        wait_for(lambda: status(bus.log_dir)[0] == 6, timeout=10, what="degraded")
        sent = s.finish()
        last = -1
        while (now := status(bus.log_dir)[1]["status"]["counts"]["received"]) != last:
            last = now  # until nothing more comes in (most are dropped, uncounted yet)
            time.sleep(1.0)
        assert bus.recorder is not None
        forced = persist("stop", "--log-dir", str(bus.log_dir), "--force", "--timeout", "20")
        assert forced.returncode == 1, forced.stderr
        assert bus.recorder.wait(10) == 1
        code, report = status(bus.log_dir)
        lost, counts = report["status"]["unwritten"], report["status"]["counts"]
        # the backlog's drops (the envelope keeps sequences whole), the last of them in
        # the gap given up (a slow machine may have written an earlier one)
        dropped = counts["missed"]
        assert code == 3 and lost["messages"] > 0
        assert lost["gaps"] >= 1 and 0 < lost["missed"] <= dropped, (lost, dropped)
        assert f"counted {lost['missed']:,} more messages lost" in report["reason"]
        (disk / "filler").unlink()
        bus.start_recorder()
        bus.recorder.signal(signal.SIGTERM)
        assert bus.recorder.wait(10) == 0
        gaps = [r for r in journal_records(bus.log_dir) if r["kind"] == "gap"]
        (unwritten,) = [g for g in gaps if g["cause"] == "unwritten-at-stop"]
        assert unwritten["missed"] == lost["messages"] + lost["missed"]
        kept = steady_seqs(bus.log_dir)
        assert len(set(kept)) == len(kept)
        missed = sum(g.get("missed") or 0 for g in gaps if g["cause"] != "before-first-seen")
        assert len(kept) + missed == sent  # every message: kept, or in a gap of the journal


def test_a_start_into_a_new_folder_on_a_full_disk_ends_in_one_line(tmp_path: Path) -> None:
    """Nothing received yet, no room for the journal's first line (nor a status, nor the
    lock's PID, so no `persist stop` could find it): the start ends in one line, exit 1,
    and leaves no torn line behind. Before 2026-12-07 it waited silently in the retry
    loop, deaf to SIGTERM, Ctrl-C and `persist stop --force`."""
    with small_disk(tmp_path / "disk", 4) as disk:
        log_dir = disk / "logs"
        argv = [
            sys.executable,
            "-m",
            "recorder.cli",
            "record",
            "--log-dir",
            str(log_dir),
            "--broker",
            f"tcp://127.0.0.1:{free_port()}",
            "--embedded",
            "no",
            "--search-index",
            "off",
            "--monitor",
            "off",
        ]
        fill(disk / "filler")
        started = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert started.returncode == 1, started.stderr  # before: killed by the timeout
        (line,) = started.stderr.splitlines()
        assert line == (
            f"persist: cannot start recording into {log_dir}: writing seg-000001.jsonl "
            "failed (No space left on device); nothing was received yet: free some room "
            "on its disk and start again"
        )
        assert (log_dir / "segments" / "seg-000001.jsonl").stat().st_size == 0
        # detached, its line cannot be written in recorder.out: the start says why
        detached = subprocess.run([*argv, "--detach"], capture_output=True, text=True, timeout=60)
        assert detached.returncode == 1, detached.stderr
        (line,) = detached.stderr.splitlines()
        assert line.startswith("persist: the recorder stopped (exit code 1): no output: its disk")
        assert "bytes free, too few for its journal and recorder.out; free some room" in line
        code, _report = status(log_dir)
        assert code == 3  # stopped: nothing runs
        assert journal_records(log_dir) == []
        (disk / "filler").unlink()  # room again: the next start records
        again = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: read_status(log_dir).get("pid") == again.pid, what="recording")
        finally:
            again.send_signal(signal.SIGTERM)
            assert again.wait(10) == 0
        kinds = [(r["kind"], r.get("event")) for r in journal_records(log_dir)]
        assert kinds == [("segment", None), ("event", "start"), ("event", "stop")]
