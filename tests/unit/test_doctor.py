"""`persist doctor` on real log folders: healthy says ok (exit 0); each injected fault is
found with the command that fixes it; `--fix` repairs the derived ones (a re-run shows
them fixed) and never touches journal data; garbage never makes a traceback."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import time
from pathlib import Path

import orjson
import pytest

from recorder.cli.main import main
from recorder.doctor.model import Report, Severity
from recorder.doctor.run import diagnose, fix
from recorder.store.layout import Layout, list_segments
from recorder.store.status import StatusSnapshot
from tests.demo_journal import healthy_status
from tests.log_folder import Folder, healthy_folder, mark_running


@pytest.fixture
def folder(tmp_path: Path) -> Folder:
    return healthy_folder(tmp_path)


def run(f: Folder) -> Report:
    return diagnose(f.root, unit_dir=f.units)


def bad(report: Report) -> dict[str, list[str]]:
    """check -> summaries of every finding that is not ok."""
    out: dict[str, list[str]] = {}
    for finding in report.findings:
        if finding.severity is not Severity.OK:
            out.setdefault(finding.check, []).append(finding.summary)
    return out


def finding(report: Report, check: str):  # type: ignore[no-untyped-def]
    [found] = [f for f in report.findings if f.check == check and f.severity is not Severity.OK]
    return found


def journal_bytes(f: Folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in list_segments(f.layout)}


def test_a_healthy_folder_is_ok_and_exits_0(
    folder: Folder, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run(folder)
    assert bad(report) == {}
    areas = {f.area.value for f in report.findings}
    assert areas == {
        "journal",
        "checkpoints",
        "caches",
        "search",
        "sessions",
        "permissions",
        "disk",
        "service",
    }
    text = {f.check: f.summary for f in report.findings}
    assert (
        "3 checkpoint(s), every digest verified (1 named by a base chain"
        in text["checkpoints.digest"]
    )
    assert "1 protected session copies, every member verified" in text["sessions.copy"]
    mark_running(folder.root)
    assert main(["doctor", "--log-dir", str(folder.root), "--json"]) == 0
    out = orjson.loads(capsys.readouterr().out)
    assert out["result"] == "ok" and out["exit_code"] == 0 and out["v"] == 1
    assert set(out["findings"][0]) == {"area", "check", "severity", "summary", "fix", "auto_fix"}


def test_torn_tails_are_found_with_their_fix(folder: Folder) -> None:
    segments = list_segments(folder.layout)
    with open(segments[-1], "ab") as f:
        f.write(b'{"v":1,"seq":99999,"ts":1')  # a torn write at the end of the active segment
    # With the recorder running this is a write in progress: nothing to say.
    assert bad(run(folder)) == {}
    (folder.root / "status.json").unlink()
    report = run(folder)
    torn = finding(report, "journal.torn-tail")
    assert torn.severity is Severity.WARNING
    assert "moves them to recovery/" in torn.summary
    assert torn.fix is not None and torn.fix.startswith("persist record ")
    assert f"--log-dir {folder.root}" in torn.fix
    # A closed segment that ends in NUL bytes (a power cut) is damage: a problem.
    with open(segments[0], "ab") as f:
        f.write(b"\x00" * 100)
    report = run(folder)
    closed = [
        x for x in report.findings if x.check == "journal.torn-tail" and "closed" in x.summary
    ]
    assert closed[0].severity is Severity.PROBLEM and "100 bytes of NUL bytes" in closed[0].summary
    # ... which also breaks no checkpoint (they cover the bytes before it).
    assert "checkpoints.digest" not in bad(report)


def test_a_damaged_line_and_a_changed_segment_break_their_checkpoints(folder: Folder) -> None:
    first = list_segments(folder.layout)[0]
    data = bytearray(first.read_bytes())
    at = data.index(b"message 5 ")
    data[at : at + 9] = b"MESSAGE 5"  # keeps the line's shape: only the digest sees it
    lines = bytes(data).split(b"\n")
    lines[30] = b"garbage, not a record".ljust(len(lines[30]), b"#")  # same size
    first.write_bytes(b"\n".join(lines))
    report = run(folder)
    found = bad(report)
    assert "holds 1 damaged line(s)" in found["journal.bad-lines"][0]
    assert len(found["checkpoints.digest"]) == 3  # every checkpoint names the first segment
    assert all(
        "seg-000001.jsonl differs from the checkpoint" in s for s in found["checkpoints.digest"]
    )
    fixes = [x.fix for x in report.findings if x.check == "checkpoints.digest"]
    assert all(x and x.startswith("persist restore ") and x.endswith(" --full") for x in fixes)


def test_a_broken_base_chain_and_a_garbage_checkpoint_are_named(folder: Folder) -> None:
    base = folder.checkpoints[1]  # the base of the last one
    assert base.path is not None
    base.path.unlink()
    (folder.layout.checkpoints / "garbage.json").write_bytes(b"\x00not json")
    os.chmod(folder.layout.checkpoints / "garbage.json", 0o600)
    report = run(folder)
    (broken,) = [
        x
        for x in report.findings
        if x.check == "checkpoints.digest"
        and f"its base checkpoint {base.id} is missing" in x.summary
    ]
    # not `prune --forget-missing`, offered before: no segment is missing, it did nothing
    assert broken.fix is None and "segment(s) it lists itself verify" in broken.summary
    assert "persist restore-backup" in broken.summary
    unreadable = finding(report, "checkpoints.unreadable")
    assert "garbage.json is not a valid checkpoint (not JSON)" in unreadable.summary
    assert (
        unreadable.fix
        == f"mv {folder.layout.checkpoints / 'garbage.json'} {folder.layout.recovery}/"
    )


def test_bad_caches_are_found_and_fix_rebuilds_them(folder: Folder) -> None:
    before = journal_bytes(folder)
    idx = sorted(folder.layout.index.glob("*.idx"))[0]
    raw = bytearray(idx.read_bytes())
    raw[60:68] = b"\xff" * 8  # a line start in the body: the CRC no longer matches
    idx.write_bytes(bytes(raw))
    sha = sorted(folder.layout.index.glob("*.sha256"))
    wrong = orjson.loads(sha[0].read_bytes())
    wrong["sha256"] = "0" * 64  # matches the file's stat, not its bytes
    sha[0].write_bytes(orjson.dumps(wrong))
    sha[1].write_bytes(b"{not json")
    report = run(folder)
    found = bad(report)
    assert found["caches.idx"] == [
        f"metadata_index/{idx.name} its checksum does not match (derived: moved aside and "
        "rebuilt by --fix)"
    ]
    assert "a restore would trust it" in " ".join(found["caches.sha256"])
    assert "malformed" in " ".join(found["caches.sha256"])
    assert finding(report, "caches.idx").fix == f"persist doctor --fix --log-dir {folder.root}"
    assert report.result is Severity.PROBLEM
    results = fix(report)
    assert results and all(r.ok for r in results)
    assert bad(run(folder)) == {}
    aside = list((folder.layout.recovery / "doctor").rglob("*"))
    assert {p.name for p in aside if p.is_file()} == {idx.name, sha[0].name, sha[1].name}
    assert journal_bytes(folder) == before


def test_fix_says_once_what_one_repair_did_for_several_findings(
    folder: Folder, capsys: pytest.CaptureFixture[str]
) -> None:
    """Line-index and digest caches are rebuilt in one step: its words came out under
    each finding it repaired, as if each had been repaired on its own. (A line index of
    7 bytes passed as "an older cache format" that matched its segment.)"""
    for idx in folder.layout.index.glob("*.idx"):
        idx.write_bytes(b"garbage")
    sorted(folder.layout.index.glob("*.sha256"))[0].write_bytes(b"{not json")
    main(["doctor", "--fix", "--log-dir", str(folder.root)])
    out = capsys.readouterr().out
    fixed = [line for line in out.splitlines() if line.startswith("fixed")]
    assert len(fixed) == 1, out
    assert fixed[0].startswith("fixed     caches.idx, caches.sha256: moved 3 cache file(s) to ")
    assert bad(run(folder)) == {}


def test_a_symlink_out_of_the_log_folder_is_named(folder: Folder, tmp_path: Path) -> None:
    """`restore/` as a symlink to a folder elsewhere (0755, its bundle 0644): doctor
    said "every folder 0700, every file 0600" while bundles were written there. Now
    the link is named; the link inside the folder (current_session.jsonl) is not."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    (elsewhere / "transcript.md").write_text("shared")
    os.chmod(elsewhere / "transcript.md", 0o644)
    shutil.rmtree(folder.layout.restore, ignore_errors=True)
    folder.layout.restore.symlink_to(elsewhere)
    report = run(folder)
    found = finding(report, "permissions.symlinks")
    assert found.severity is Severity.WARNING
    assert f"1 symlink(s) lead out of the log folder (restore -> {elsewhere})" in found.summary
    assert not [
        f
        for f in report.findings
        if f.check == "permissions.files" and f.severity is not Severity.OK
    ]
    folder.layout.restore.unlink()
    assert "permissions" not in " ".join(bad(run(folder)))


def test_wrong_modes_are_found_and_fixed(folder: Folder) -> None:
    cp = folder.checkpoints[1].path
    assert cp is not None
    os.chmod(cp, 0o644)
    os.chmod(folder.layout.segments, 0o755)
    report = run(folder)
    files = finding(report, "permissions.files")
    assert files.fix == f"chmod 600 {cp}" and "others on this machine may read" in files.summary
    assert finding(report, "permissions.folders").fix == f"chmod 700 {folder.layout.segments}"
    os.chmod(cp, 0o000)  # nobody else may read it: the finding says what is wrong instead
    assert "we may not be able to read" in finding(run(folder), "permissions.files").summary
    fix(report)
    assert cp.stat().st_mode & 0o777 == 0o600
    assert folder.layout.segments.stat().st_mode & 0o777 == 0o700
    assert bad(run(folder)) == {}


def test_a_folder_above_the_log_folder_others_may_write_to_is_named(tmp_path: Path) -> None:
    """A folder above the log folder that others may write to (an older `persist demo`
    under umask 000 made ~/.local 0777) lets them put another folder in its place,
    whatever its own modes: doctor said "permissions ok". Now a warning naming it and
    the chmod; not `--fix`'s to change. The sticky bit (as /tmp has) makes it safe."""
    above = tmp_path / "home" / "share"
    f = healthy_folder(above)
    os.chmod(tmp_path / "home", 0o777)
    found = finding(run(f), "permissions.parents")
    assert found.severity is Severity.WARNING and found.repair is None
    assert f"{tmp_path / 'home'} (drwxrwxrwx, " in found.summary
    assert found.fix == f"chmod go-w {tmp_path / 'home'}"
    os.chmod(tmp_path / "home", 0o1777)  # sticky: nobody renames what is not theirs
    assert "permissions.parents" not in bad(run(f))
    os.chmod(tmp_path / "home", 0o755)
    assert bad(run(f)) == {}


def test_a_corrupt_search_index_is_rebuilt_by_fix(folder: Folder) -> None:
    index = folder.layout.search_index
    for suffix in ("-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    with open(index, "r+b") as f:
        f.write(b"garbage" * 20)
    report = run(folder)
    damaged = finding(report, "search.damaged")
    assert damaged.severity is Severity.PROBLEM and "not an SQLite file" in damaged.summary
    assert damaged.fix == f"persist reindex --log-dir {folder.root}"
    [done] = fix(report)
    assert done.ok and "rebuilt from the journal" in done.done
    report = run(folder)
    assert bad(report) == {}
    assert "level with the journal" in next(
        x.summary for x in report.findings if x.check == "search.index"
    )


def rot_a_page_of_docs(index: Path) -> None:
    """Bit rot where no cheap check reads: the first leaf page of the `docs` table gets
    a cell offset past the page's end (what `PRAGMA quick_check` calls malformed)."""
    import sqlite3

    db = sqlite3.connect(index)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = db.execute("PRAGMA page_size").fetchone()[0]
        leaf = min(
            page
            for name, page, kind in db.execute("SELECT name, pageno, pagetype FROM dbstat")
            if name == "docs" and kind == "leaf"
        )
    finally:
        db.close()
    with open(index, "r+b") as f:
        f.seek((leaf - 1) * size + 8)  # the first cell pointer of a leaf page
        f.write(b"\xff\xf0")


def test_a_bit_rotted_search_index_is_found_and_fix_rebuilds(folder: Folder) -> None:
    """A page that reads without an error and is wrong only drops hits: doctor reads
    every page (quick_check), and --fix rebuilds the index."""
    from recorder.search.index import SearchIndex

    rot_a_page_of_docs(folder.layout.search_index)
    with SearchIndex(folder.root, writable=False) as index:
        index.check()  # the cheap check every search makes does not see it
    report = run(folder)
    damaged = finding(report, "search.damaged")
    assert damaged.severity is Severity.PROBLEM
    assert "database disk image is malformed" in damaged.summary
    assert damaged.fix == f"persist reindex --log-dir {folder.root}"
    [done] = fix(report)
    assert done.ok and "rebuilt from the journal" in done.done
    assert bad(run(folder)) == {}


def test_reindex_catch_up_rebuilds_a_bit_rotted_index(
    folder: Folder, capsys: pytest.CaptureFixture[str]
) -> None:
    rot_a_page_of_docs(folder.layout.search_index)
    assert main(["reindex", "--catch-up", "--log-dir", str(folder.root)]) == 0
    err = capsys.readouterr().err
    assert "rebuilt because the index file is unusable (database disk image is malformed" in err
    assert bad(run(folder)) == {}


def test_a_damaged_shard_of_the_search_index_is_found_and_fix_rebuilds(folder: Folder) -> None:
    from recorder.search.indexer import Indexer
    from recorder.sources.discover import Roots

    indexer = Indexer(folder.root, Roots(None, None, None))
    indexer.workers = 2  # a parallel rebuild: one shard file beside the index
    assert indexer.catch_up(rebuild=True).rebuilt
    [shard] = indexer.index.shards()
    indexer.close()
    assert bad(run(folder)) == {}
    (folder.layout.search / shard.name).write_bytes(b"garbage" * 20)
    report = run(folder)
    damaged = finding(report, "search.damaged")
    assert damaged.severity is Severity.PROBLEM
    assert f"shard {shard.name}: not an SQLite file" in damaged.summary
    [done] = fix(report)
    assert done.ok and "rebuilt from the journal" in done.done
    assert bad(run(folder)) == {}
    assert not (folder.layout.search / shard.name).exists()


def test_stale_and_unreadable_status(folder: Folder) -> None:
    mark_running(folder.root, age=60)
    report = run(folder)
    stale = finding(report, "service.stale")
    assert stale.severity is Severity.PROBLEM and "silent for" in stale.summary
    assert stale.fix is not None
    assert stale.fix.startswith(f"persist stop --log-dir {folder.root} && persist record ")
    # a wrongly typed status.json: reported, and moved aside by --fix (no recorder holds it)
    status = healthy_status(folder.root, time.time(), os.getpid(), 0.0)
    status["counts"] = "many"
    folder.layout.status.write_bytes(orjson.dumps(status))
    os.chmod(folder.layout.status, 0o600)
    folder.layout.state.write_bytes(b'{"position": {"segment": "one"}}')
    os.chmod(folder.layout.state, 0o600)
    report = run(folder)
    unreadable = finding(report, "service.status-file")
    assert "counts is not an object" in unreadable.summary
    state = finding(report, "caches.recovery-state")
    assert state.fix == f"persist doctor --fix --log-dir {folder.root}"
    done = fix(report)
    assert [d.ok for d in done] == [True, True]
    assert not folder.layout.status.exists() and not folder.layout.state.exists()
    assert StatusSnapshot.read(folder.layout) is None
    assert "caches.recovery-state" not in bad(run(folder))


def test_garbage_everywhere_is_reported_never_raised(
    folder: Folder, capsys: pytest.CaptureFixture[str]
) -> None:
    folder.layout.status.write_bytes(b"[1, 2")
    manifest = next((folder.layout.sessions / "copies").rglob("manifest.json"))
    manifest.write_bytes(orjson.dumps({"files": {"main": {"versions": [{"n": "x"}]}}}))
    (folder.layout.index / "seg-000001.jsonl.idx").write_bytes(b"APIDX002short")
    (folder.layout.index / "seg-000009.jsonl.sha256").write_bytes(b"{}")
    (folder.layout.recovery / "seg-000001.jsonl.5.corrupt").write_bytes(b"torn")
    (folder.layout.checkpoints / "folder.json").mkdir()  # a folder where a file should be
    for suffix in ("", "-wal", "-shm"):
        Path(f"{folder.layout.search_index}{suffix}").unlink(missing_ok=True)
    folder.layout.search_index.mkdir()
    os.mkfifo(folder.layout.segments / "seg-000004.jsonl")  # opening it to read would block
    code = main(["doctor", "--log-dir", str(folder.root)])
    out = capsys.readouterr().out
    assert code == 9
    assert "checkpoints/folder.json is not a valid checkpoint (a folder, not a regular" in out
    assert (
        "search index would be rebuilt: " in out and "index.sqlite3 is a folder, not a file" in out
    )
    assert "status.json is unreadable" in out
    assert "segments/seg-000004.jsonl is a named pipe, not a regular file: no record" in out
    assert "problem  sessions     protected copy claude:" in out
    assert "shorter than its header" in out
    assert "describes a segment that is not there" in out
    assert "1 torn tail(s) quarantined in recovery/" in out
    assert "result: problem" in out
    shutil.rmtree(folder.layout.segments)
    assert main(["doctor", "--log-dir", str(folder.root / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert "is not a log folder (it does not exist: nothing was recorded there yet" in err
    start = f"persist record --broker tcp://127.0.0.1:5555 --log-dir {folder.root}/nowhere --detach"
    assert f"start recording with: {start})" in err
    assert len(err.strip().splitlines()) == 1


def test_disk_headroom_from_the_journals_rate_over_the_last_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two days of records at 100 per hour: the rate is taken over the last day only."""
    import recorder.doctor.system as system
    from tests.demo_journal import DemoWriter

    now = time.time()
    clock = [now - 2 * 86400]
    w = DemoWriter.open(tmp_path / "logs", segment_bytes=200_000, clock=lambda: clock[0])
    t = now - 2 * 86400
    sizes = []
    while t < now:
        clock[0] = t
        w.message(t, "coder", "x" * 900)
        sizes.append(t)
        t += 36  # 100 records an hour
    w.close()
    layout = Layout(tmp_path / "logs")
    growth = system.journal_growth(layout, now)
    assert growth is not None and 86000 < growth.window <= 86400
    per_record = sum(p.stat().st_size for p in list_segments(layout)) / len(sizes)
    assert growth.per_hour == pytest.approx(100 * per_record, rel=0.1)

    class Full:
        f_bavail, f_frsize, f_flag = 10, 4096 * 1024, 0  # 40 MiB free

    monkeypatch.setattr(system.os, "statvfs", lambda path: Full)
    [disk] = system.disk_findings(layout, now)
    assert disk.severity is Severity.PROBLEM
    assert "40.0 MB free" in disk.summary and "full in" in disk.summary
    assert disk.fix == f"du -sh {layout.root}/* | sort -h"

    class Roomy:
        f_bavail, f_frsize, f_flag = 1 << 30, 4096 * 1024, 0  # 4 PiB: centuries at this pace

    monkeypatch.setattr(system.os, "statvfs", lambda path: Roomy)
    [disk] = system.disk_findings(layout, now)
    assert disk.severity is Severity.OK and disk.summary.endswith("full in over a year")


@pytest.mark.parametrize(
    ("manager", "unit_says", "start"),
    [
        ("enabled, inactive", "installed and enabled for this folder", "systemctl --user start"),
        ("disabled, inactive", "not enabled", "systemctl --user enable --now"),
        ("disabled, active", "not enabled", "systemctl --user enable --now"),
        ("masked, inactive", "masked", "systemctl --user unmask"),
        ("no user bus", "no systemd user manager answers here", "persist record"),
        ("no systemctl", "no systemd user manager answers here", "persist record"),
    ],
)
def test_the_systemd_unit_of_this_folder_is_told_as_the_user_manager_sees_it(
    folder: Folder, monkeypatch: pytest.MonkeyPatch, manager: str, unit_says: str, start: str
) -> None:
    """A unit only written (`--print-only`), disabled, masked, or on a machine with no
    user manager to reach (a container, WSL, SSH without lingering) starts nothing.
    Before 2026-12-08 doctor called each "installed for this folder" (ok), and its fix
    for a stopped recorder was `systemctl --user start`, which fails there."""
    from recorder.daemon import systemd
    from recorder.daemon.options import RecorderOptions
    from tests.support import fake_systemctl

    bin_dir = folder.root.parent / "bin"
    if manager == "no systemctl":
        bin_dir.mkdir()
    elif manager == "no user bus":
        fake_systemctl(bin_dir, bus=False)
    else:
        enabled, active = manager.split(", ")
        fake_systemctl(bin_dir, enabled=enabled, active=active)
    monkeypatch.setenv("PATH", str(bin_dir))  # the only systemctl there is
    systemd.install(
        systemd.UnitConfig(RecorderOptions(log_dir=folder.root)), folder.units, execute=False
    )
    (folder.root / "status.json").unlink()
    report = run(folder)
    [unit] = [f for f in report.findings if f.check == "service.unit"]
    assert unit_says in unit.summary, unit.summary
    assert (unit.severity is Severity.OK) == manager.startswith("enabled"), unit
    stopped = finding(report, "service.stopped")
    assert stopped.fix is not None and stopped.fix.startswith(start), stopped.fix
    if not manager.startswith("enabled"):  # it cannot start the unit there
        assert "systemctl --user start" not in f"{unit.fix} {stopped.fix}"
    if start == "persist record":
        assert shlex.split(stopped.fix)[-3:] == ["--log-dir", str(folder.root), "--detach"]


def test_what_sessions_owe_the_bus_is_shown_and_a_warning_after_an_hour(folder: Folder) -> None:
    """Marks a busy hook call left beside a session's state (`.owed/`) and ended
    sessions in `hooks/pending/`: named with their session and age, a warning once one
    waits over an hour. Before 2026-12-07 doctor said nothing of them."""
    from recorder.hooks.state import owe_subagent, set_pending, state_path

    busy = state_path(folder.root, "claude", "busy-session")
    mark = owe_subagent(busy, "a5bdbc1", "/tmp/agent-a5bdbc1.jsonl")
    ended = state_path(folder.root, "gemini", "ended-session")
    set_pending(ended, True)
    report = run(folder)
    assert "service.hooks-owed" not in bad(report)  # minutes old: shown, not a warning
    [shown] = [f for f in report.findings if f.check == "service.hooks-owed"]
    assert shown.severity is Severity.OK
    assert "2 session(s) owe the bus" in shown.summary, shown.summary
    assert "claude-busy-session: owes 1 sub-agent transcript" in shown.summary, shown.summary
    assert "gemini-ended-session: ended, waits in hooks/pending/" in shown.summary

    two_hours_ago = time.time() - 7200
    os.utime(mark, (two_hours_ago, two_hours_ago))
    old = finding(run(folder), "service.hooks-owed")
    assert old.severity is Severity.WARNING
    assert "the oldest for over 1.0h" in old.summary, old.summary
    assert "claude-busy-session: owes 1 sub-agent transcript (marked in " in old.summary
    assert ", since 2.0h ago" in old.summary, old.summary


def test_segments_pruned_by_retention_are_not_lost(tmp_path: Path) -> None:
    from recorder.store.pruned import PrunedNote, write_pruned

    f = healthy_folder(tmp_path, messages=4000, session=False)
    segments = list_segments(f.layout)
    assert len(segments) >= 4
    gone, lost = segments[1], segments[2]
    gone.unlink()  # as if retention moved it to the trash (its ledger says so)
    write_pruned(f.layout, {gone.name: PrunedNote(gone.name, time.time(), "20261202T000000Z-abc")})
    lost.unlink()  # deleted by hand: the ledger knows nothing of it
    report = run(f)
    missing = finding(report, "journal.missing-segment")
    assert lost.name in missing.summary and gone.name not in missing.summary
    [pruned] = [x for x in report.findings if x.check == "journal.pruned"]
    assert pruned.severity is Severity.OK and gone.name in pruned.summary
    assert not [x for x in report.findings if x.check == "journal.segments"]  # one is lost
    lost.write_bytes(b"")  # put back (empty), and pruned alone: still every line whole
    write_pruned(f.layout, {gone.name: PrunedNote(gone.name, time.time(), "20261202T000000Z-abc")})
    report = run(f)
    assert [x.summary for x in report.findings if x.check == "journal.segments"], bad(report)


def test_line_checks_that_lie_or_are_garbage_are_found_and_moved_aside(folder: Folder) -> None:
    """A `.check` lets a JSONL export copy a segment unread, so doctor checks each one
    that describes its segment as it is: one that says every line is whole when one is
    not (the file changed in place, its stat kept) and one that is not a check are
    named; one of an older version of the file is only out of date (ignored)."""
    from recorder.daemon.warm import IndexWarmer
    from recorder.store.layout import segment_number

    segments = list_segments(folder.layout)
    assert len(segments) >= 3
    IndexWarmer(folder.layout).warm(below=segment_number(segments[-1].name) or 0)
    checks = sorted(folder.layout.index.glob("*.check"))
    assert len(checks) == len(segments) - 1
    assert "caches.check" not in bad(run(folder))
    good = checks[0].read_bytes()
    doc = orjson.loads(good)
    doc["others"] = [*doc["others"], [doc["segment"][3] - 1, "gap"]]  # a message called a gap
    checks[0].write_bytes(orjson.dumps(doc))
    report = run(folder)
    [summary] = bad(report)["caches.check"]
    assert checks[0].name in summary and "lists other lines" in summary
    # an export counts from it: a problem, as the README says, not a warning
    assert finding(report, "caches.check").severity is Severity.PROBLEM
    checks[0].write_bytes(good)
    lying, garbage = checks[0], checks[1]
    old = folder.layout.index / f"{segments[-1].name}.check"  # the open segment's, stale
    segment = folder.layout.segments / lying.name.removesuffix(".check")
    st = segment.stat()
    with open(segment, "r+b") as f:  # one line's head broken in place, same size
        data = f.read()
        at = data.index(b'\n{"v":') + 1
        f.seek(at)
        f.write(b"[")
    os.utime(segment, ns=(st.st_atime_ns, st.st_mtime_ns))
    doc = orjson.loads(checks[1].read_bytes())
    doc["segment"][1] += 1  # another mtime: another version of the file
    old.write_bytes(orjson.dumps(doc))
    garbage.write_bytes(b'{"v": 1, "segment": "no"}')
    report = run(folder)
    summaries = bad(report)["caches.check"]
    assert any(
        lying.name in s and "says every line of its segment has a record's shape" in s
        for s in summaries
    ), summaries
    assert any(garbage.name in s and "is not a line check" in s for s in summaries), summaries
    assert not any(old.name in s for s in summaries)
    fix(report)
    assert "caches.check" not in bad(run(folder))
    assert not lying.exists() and not garbage.exists()


def test_marks_that_hide_other_lines_or_are_garbage_are_found_and_moved_aside(
    folder: Folder,
) -> None:
    """Marks tell the Recent list which lines to hide: doctor finds the bookkeeping
    lines of each segment whose marks describe it as it is again and compares, so
    marks that would hide a message are named; garbage is named; marks of an older
    version of the segment are only out of date (readers ignore them)."""
    from recorder.daemon.warm import IndexWarmer
    from recorder.store.layout import segment_number

    segments = list_segments(folder.layout)
    IndexWarmer(folder.layout).warm(below=segment_number(segments[-1].name) or 0)
    marks = sorted(folder.layout.index.glob("*.marks"))
    assert len(marks) == len(segments) - 1 >= 2
    assert "caches.marks" not in bad(run(folder))
    wrong, garbage = marks[0], marks[1]
    doc = orjson.loads(wrong.read_bytes())
    message = next(k for k in range(doc["segment"][0]) if k not in doc["hidden"])
    doc["hidden"] = sorted([*doc["hidden"], message])  # would hide a message
    wrong.write_bytes(orjson.dumps(doc))
    garbage.write_bytes(b"[1, 2")
    old = folder.layout.index / f"{segments[-1].name}.marks"
    stale = {**doc, "segment": [doc["segment"][0] + 1, *doc["segment"][1:]]}
    old.write_bytes(orjson.dumps(stale))
    report = run(folder)
    summaries = bad(report)["caches.marks"]
    assert any(wrong.name in s and "names other bookkeeping lines" in s for s in summaries)
    assert any(garbage.name in s and "is not a marks file" in s for s in summaries)
    severities = {f.summary: f.severity for f in report.findings if f.check == "caches.marks"}
    assert {sev for text, sev in severities.items() if wrong.name in text} == {Severity.PROBLEM}
    assert {sev for text, sev in severities.items() if garbage.name in text} == {Severity.WARNING}
    assert not any(old.name in s for s in summaries), summaries
    fix(report)
    assert "caches.marks" not in bad(run(folder))
    assert not wrong.exists() and not garbage.exists()


def test_the_render_cache_is_counted_and_its_damaged_entries_named(folder: Folder) -> None:
    """The doctor says how much of the closed journal is kept rendered and its size;
    an entry whose header is wrong, or a FIFO in its place, is a warning naming it
    (read without blocking), and the journal is untouched."""
    from recorder.export import render_cache
    from recorder.export.warm_renders import RenderWarmer

    before = journal_bytes(folder)
    text = {f.check: f.summary for f in run(folder).findings}
    assert text["caches.render"].startswith("no render cache yet")
    warmer = RenderWarmer(folder.root)
    while warmer.step(60.0):
        pass
    closed = len(list_segments(folder.layout)) - 1
    kept = sorted(render_cache.folder_of(folder.root).rglob("*.zst"))
    report = run(folder)
    assert bad(report) == {}
    text = {f.check: f.summary for f in report.findings}
    assert (
        f"render cache: {len(kept)} kept renderings, {closed} of {closed} closed"
        in (text["caches.render"])
    )
    kept[0].write_bytes(b'{"key": {"crc": "x"}}\n')
    assert render_cache.entry_problem(kept[0]) == f"{kept[0]}: its header is wrongly typed"
    os.mkfifo(kept[0].with_name("000000000.html.r.zst"))
    started = time.monotonic()
    damaged = finding(run(folder), "caches.render-damaged")
    assert time.monotonic() - started < 10
    assert damaged.severity is Severity.WARNING and "2 damaged: " in damaged.summary
    assert "000000000.html.r.zst: not a regular file (+1 more)" in damaged.summary
    assert damaged.fix.startswith("persist doctor --fix")
    # --fix moves both aside (a recorder holds the folder: it need not stop for it)
    [fixed] = [r for r in fix(run(folder)) if r.finding.check == "caches.render-damaged"]
    assert fixed.ok and fixed.done.startswith("2 render cache entries moved aside to ")
    assert not kept[0].exists() and not kept[0].with_name("000000000.html.r.zst").exists()
    assert list((folder.layout.recovery / "doctor").rglob("000000000.md.r.zst"))
    assert bad(run(folder)) == {}
    assert warmer.step(60.0) == 1  # the running warmer sees the entry gone: kept again
    text = {f.check: f.summary for f in run(folder).findings}
    assert f"{closed} of {closed} closed" in text["caches.render"]
    assert journal_bytes(folder) == before


@pytest.mark.parametrize(
    ("folder_name", "check", "fixed"),
    [
        ("segments", "journal.folder", False),  # the journal itself: only by hand
        ("checkpoints", "checkpoints.folder", False),
        ("metadata_index", "caches.folder", True),  # derived: moved aside
    ],
)
def test_a_file_where_a_folder_goes_is_a_problem_not_an_aborted_report(
    folder: Folder, folder_name: str, check: str, fixed: bool
) -> None:
    """`checkpoints/` or `segments/` as a file stopped doctor with "cannot examine"
    (exit 1, no report); `metadata_index/` as a file was a warning --fix left alone
    while the recorder would not start."""
    place = folder.root / folder_name
    shutil.rmtree(place)
    place.write_text("not a folder")
    report = run(folder)
    found = finding(report, check)
    assert found.severity is Severity.PROBLEM and "not a folder" in found.summary
    assert report.result is Severity.PROBLEM
    if fixed:
        [result] = [r for r in fix(report) if r.finding.check == check]
        assert result.ok and not place.exists()
        assert check not in bad(run(folder))
    else:
        assert "mkdir -m 700" in (found.fix or "")


def test_a_recorder_starting_moves_aside_a_file_where_its_caches_go(folder: Folder) -> None:
    from recorder.daemon.core import Recorder
    from recorder.daemon.options import RecorderOptions

    shutil.rmtree(folder.layout.index)
    folder.layout.index.write_text("not a folder")
    rec = Recorder(RecorderOptions(log_dir=folder.root))
    rec.open()
    try:
        assert folder.layout.index.is_dir()
        [aside] = folder.layout.recovery.glob("metadata_index.*.not-a-folder")
        assert aside.read_text() == "not a folder"
    finally:
        rec.close()


def test_a_segment_compressed_while_doctor_reads_is_not_a_problem(
    folder: Folder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`persist compact` (or the recorder) swapped a closed segment for its compressed
    form between doctor's listing and its read: doctor said "cannot be read (No such
    file or directory)", a problem (exit 9), of a healthy segment."""
    from recorder.doctor import journal as doctor_journal
    from recorder.store.compact import compact_segment

    real_scan = doctor_journal.scan_segment
    swapped: list[str] = []

    def compressed_first(path: Path, closed: bool, sizes: object = ()) -> object:
        if closed and not swapped and path.name.endswith(".jsonl"):
            compact_segment(folder.layout, path)  # the plain file is gone from here on
            swapped.append(path.name)
        return real_scan(path, closed, sizes)  # type: ignore[arg-type]

    monkeypatch.setattr(doctor_journal, "scan_segment", compressed_first)
    report = run(folder)
    assert swapped and bad(report) == {}, bad(report)


def test_what_an_interrupted_compaction_left_is_named_and_persist_compact_removes_it(
    folder: Folder, capsys: pytest.CaptureFixture[str]
) -> None:
    """A compaction killed part-way left `seg-N.jsonl.zst.tmp` (up to 64 MiB) that only
    the next compaction removed; doctor said nothing of it."""
    import fcntl

    first = list_segments(folder.layout)[0]
    tmp = first.with_name(first.name + ".zst.tmp")
    tmp.write_bytes(b"\x28\xb5\x2f\xfd half a frame")
    found = finding(run(folder), "journal.compaction-leftover")
    assert found.severity is Severity.WARNING
    assert f"{tmp.name} (a compression that did not finish)" in found.summary
    assert found.fix == f"persist compact --log-dir {shlex.quote(str(folder.root))}"
    with open(folder.layout.compact_lock, "a") as lock:  # a compactor at work: its own file
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert "journal.compaction-leftover" not in bad(run(folder))
    assert main(["compact", "--log-dir", str(folder.root)]) == 0
    assert f"removed {tmp.name}" in capsys.readouterr().err
    assert not tmp.exists() and "journal.compaction-leftover" not in bad(run(folder))


def test_the_compaction_leftover_fix_runs_in_a_folder_with_a_space(tmp_path: Path) -> None:
    """The fix command named the folder unquoted: `--log-dir /tmp/my logs` was
    "unrecognized arguments: logs" when run."""
    import subprocess
    import sys

    spaced = tmp_path / "my logs"
    shutil.copytree(healthy_folder(tmp_path / "src").root, spaced)
    tmp = sorted((spaced / "segments").iterdir())[0]
    leftover = tmp.with_name(tmp.name + ".zst.tmp")
    leftover.write_bytes(b"half a frame")
    found = finding(diagnose(spaced, unit_dir=tmp_path), "journal.compaction-leftover")
    argv = shlex.split(found.fix)
    assert argv[:1] == ["persist"]
    out = subprocess.run(
        [sys.executable, "-m", "recorder.cli", *argv[1:]], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert not leftover.exists()


def hold_doctor_lock(f: Folder, pid: int) -> int:
    """Hold `doctor.lock` as a `persist doctor --fix` (PID `pid`) repairing does."""
    import fcntl

    fd = os.open(f.root / "doctor.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.pwrite(fd, f"{pid}\n".encode(), 0)
    return fd


def doctor_cli(f: Folder, *args: str) -> tuple[int, str, str]:
    import subprocess
    import sys

    argv = [sys.executable, "-m", "recorder.cli.main", "doctor", *args, "--log-dir", f.root]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def test_a_second_fix_waits_for_the_one_repairing_then_checks_again(folder: Folder) -> None:
    """Two `persist doctor --fix` at once: the second waits (one line naming the first)
    while the first holds the folder from its diagnosis to its re-check, repairs
    nothing meanwhile, then diagnoses afresh: what the first repaired is not redone
    (before, it moved aside the search index the first had just rebuilt)."""
    import subprocess
    import sys

    cp = folder.checkpoints[1].path
    assert cp is not None
    os.chmod(cp, 0o644)
    fd = hold_doctor_lock(folder, 4242)  # the first one, repairing
    try:
        second = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "recorder.cli.main",
                "doctor",
                "--fix",
                "--log-dir",
                folder.root,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert second.stderr is not None
        line = second.stderr.readline()
        assert line == (
            f"persist: another persist doctor --fix (PID 4242) is repairing {folder.root}: "
            "waiting for it to finish, then checking again\n"
        )
        assert cp.stat().st_mode & 0o777 == 0o644  # the second repairs nothing meanwhile
        _code, _out, err = doctor_cli(folder)  # a plain doctor meanwhile says so
        assert err == (
            f"persist: another persist doctor --fix (PID 4242) is repairing {folder.root} now: "
            "what it repairs may show as wrong until it ends\n"
        )
        os.chmod(cp, 0o600)  # the first one's repair
    finally:
        os.close(fd)  # the first one ends
    out, err = second.communicate(timeout=120)
    assert "fixed" not in out and "permissions.files" not in out, out  # nothing to redo
    assert err == "" and "result: " in out, (out, err)


def test_a_fix_that_waits_too_long_is_refused_in_one_line(folder: Folder) -> None:
    from recorder.doctor.run import FixBusy, fix_lock

    fd = hold_doctor_lock(folder, 4242)
    try:
        with pytest.raises(FixBusy) as err, fix_lock(folder.root, wait=0):
            pytest.fail("the lock was taken twice")
    finally:
        os.close(fd)
    assert str(err.value) == (
        f"another persist doctor --fix (PID 4242) is still repairing {folder.root} after 0s; "
        "run it again when it has finished"
    )
    with fix_lock(folder.root, wait=0):  # free again: taken at once, and it says by whom
        assert (folder.root / "doctor.lock").read_text() == f"{os.getpid()}\n"
