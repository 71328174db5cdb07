"""`persist doctor --fix` repairs what it says it repaired, once, and only inside the
log folder: an unreadable closed segment is left out of the search index for good (not
rebuilt at every catch-up), a full disk is no damage and still gets a report, a
symlink out of the folder is never written through, and a symlinked status.json is
removed, not kept as a link. The real CLI on real files (a size-limited tmpfs for the
full disk: root only, skipped otherwise)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from recorder.store.layout import Layout, list_segments
from tests.process.test_stalls import fill, small_disk
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
    # a search says what it cannot find (before 2026-12-07 nothing, exit 0)
    partial = persist("search", "--count", "deployment", "--log-dir", str(log_dir))
    assert (
        partial.returncode == 0
        and (
            "persist: warning: segment 2 left out of the index: it cannot be read, so its "
            "messages are not searched (persist doctor says why)\n"
        )
        in partial.stderr
    ), partial.stderr

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


def test_a_full_disk_is_no_damage_and_fix_still_reports(tmp_path: Path) -> None:
    """On a full disk SQLite cannot make a reader's shared-memory file
    (SQLITE_IOERR_SHMSIZE, "disk I/O error"): doctor called the healthy index damaged
    (a problem, "--fix moves it aside and builds it again"), and `doctor --fix`, with or
    without --json, printed only "cannot examine ...: No space left on device". Now the
    index is "not checked" (the disk finding names the cause), --fix diagnoses, repairs
    what needs no room and says what it could not do and why."""
    with small_disk(tmp_path / "disk", 4, 400) as disk:
        log_dir = indexed_journal(disk)
        filler = disk / "filler"
        fill(filler)
        plain = persist("doctor", "--log-dir", str(log_dir))
        assert plain.returncode == 9, plain.stderr  # disk.free
        assert "search.damaged" not in plain.stdout and "unusable" not in plain.stdout
        report = doctor_json(log_dir)
        assert report["exit_code"] == 9
        search = checks(report, "search.")
        assert list(search) == ["search.disk-full"], search
        assert search["search.disk-full"].startswith("search index not checked: the disk is full")
        assert checks(report, "disk.")["disk.free"].startswith("0.0 KB free")

        first = list_segments(Layout(log_dir))[0]
        first.chmod(0o644)  # a repair that needs no room
        fixed = doctor_json(log_dir, "--fix")
        assert fixed["exit_code"] == 9
        assert [(f["check"], f["ok"]) for f in fixed["fixed"]] == [("permissions.files", True)]
        assert "search.disk-full" in checks(fixed, "search.")
        text = persist("doctor", "--fix", "--log-dir", str(log_dir))
        assert text.returncode == 9 and "persist doctor: " in text.stdout, text

        # an index really damaged: not moved aside with no room to build it again
        index = log_dir / "search" / "index.sqlite3"
        with open(index, "r+b") as f:
            head = f.read(100)
            f.seek(0)
            f.write(b"garbage!" * 12)
        fixed = doctor_json(log_dir, "--fix")
        assert [(f["check"], f["ok"], f["done"]) for f in fixed["fixed"]] == [
            (
                "search.damaged",
                False,
                "not done: the disk is full (No space left on device); free some space (see disk)",
            )
        ]
        assert index.read_bytes().startswith(b"garbage!")
        with open(index, "r+b") as f:
            f.write(head)

        # no inode left either: doctor.lock cannot be made, nothing is repaired, and
        # each repair it would have made is named with why
        (log_dir / "doctor.lock").unlink()
        first.chmod(0o644)
        with contextlib.suppress(OSError):
            for n in range(1000):
                (disk / f"inode-{n}").touch()
        out = persist("doctor", "--fix", "--json", "--log-dir", str(log_dir))
        assert out.returncode == 9, out.stderr
        report = orjson.loads(out.stdout)
        [(check, ok, done)] = [(f["check"], f["ok"], f["done"]) for f in report["fixed"]]
        assert (check, ok) == ("permissions.files", False)
        assert done.startswith("not repaired: the disk is full (No space left on device)")
        assert "search.disk-full" in checks(report, "search.")
        filler.unlink()
        for n in range(1000):
            (disk / f"inode-{n}").unlink(missing_ok=True)
        after = doctor_json(log_dir)
        assert list(checks(after, "search.")) == ["search.index"], after


def test_fix_never_writes_through_a_symlink_out_of_the_log_folder(tmp_path: Path) -> None:
    """`recovery/` a symlink leading out of the log folder: doctor warned that "what is
    written through them lands there", then `--fix` moved the damaged search index
    (every message's text) into `<outside>/doctor/<time>/`. Now each repair that would
    write through it is refused in one line saying why; the others (modes) are done,
    and `persist reindex` moves nothing out either."""
    log_dir = indexed_journal(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    recovery = log_dir / "recovery"
    if recovery.exists():
        shutil.rmtree(recovery)
    recovery.symlink_to(outside)
    index = log_dir / "search" / "index.sqlite3"
    index.write_bytes(b"garbage, not an index" * 100)
    first = list_segments(Layout(log_dir))[0]
    first.chmod(0o644)

    report = doctor_json(log_dir, "--fix")
    done = {f["check"]: (f["ok"], f["done"]) for f in report["fixed"]}
    assert done["permissions.files"][0] is True, done
    ok, why = done["search.damaged"]
    assert not ok
    assert why == (
        f"not done: recovery -> {outside} leads out of the log folder, and --fix writes "
        "nothing through such a link (make it a folder of the log folder again, then run "
        "persist doctor --fix again)"
    )
    assert list(outside.iterdir()) == []
    assert index.read_bytes().startswith(b"garbage")
    assert "search.damaged" in checks(report, "search.")
    text = persist("doctor", "--fix", "--log-dir", str(log_dir))
    assert f"NOT FIXED search.damaged: not done: recovery -> {outside} leads" in text.stdout

    index.unlink()
    (log_dir / "search" / "index.lock").unlink(missing_ok=True)
    (log_dir / "search" / "index.lock").mkdir()  # in the index's way: reindex moves it aside
    out = persist("reindex", "--log-dir", str(log_dir))
    assert out.returncode == 1
    (line,) = out.stderr.splitlines()
    assert f"aside: recovery -> {outside} leads out of the log folder" in line, line
    assert list(outside.iterdir()) == []

    recovery.unlink()  # a folder of its own again: repaired, kept inside
    recovery.mkdir(mode=0o700)
    report = doctor_json(log_dir, "--fix")
    assert all(f["ok"] for f in report["fixed"]), report["fixed"]
    assert list(checks(report, "search.")) == ["search.index"]
    assert list(outside.iterdir()) == []
    kept = list((recovery / "doctor").rglob("index.lock"))
    assert len(kept) == 1 and kept[0].is_dir()


def test_fix_removes_a_symlinked_status_json_and_keeps_the_start_command(
    tmp_path: Path,
) -> None:
    """`status.json` a symlink to a file that is not a status: `--fix` moved it aside as
    the same link into recovery/doctor/<time>/, and every later doctor warned
    `permissions.symlinks` about it, a warning --fix made and could not clear. Now the
    link is removed (what it leads to left as it is), and the start command the service
    finding names is the one the status reserve holds (the recorder's last status
    written while the disk was full), or said to be unknown when nothing names it."""
    from recorder.store.status import RESERVE_BYTES, StatusSnapshot, _write_reserved
    from tests.demo_journal import stopped_status

    log_dir = indexed_journal(tmp_path)
    layout = Layout(log_dir)
    elsewhere = tmp_path / "hostname"
    elsewhere.write_text("a host name, not a status\n")
    layout.status.unlink(missing_ok=True)
    layout.status.symlink_to(elsewhere)
    before = doctor_json(log_dir)
    assert "status.json -> " in checks(before, "permissions.")["permissions.symlinks"]
    assert "status.json is unreadable" in checks(before, "service.")["service.status-file"]

    report = doctor_json(log_dir, "--fix")
    [(ok, done)] = [(f["ok"], f["done"]) for f in report["fixed"]]
    assert ok, done
    assert done == (
        f"removed status.json, a symlink to {elsewhere} (what it leads to is left as it is); "
        "nothing readable here names the brokers its recorder followed: check the start "
        "command named below before running it"
    )
    assert not layout.status.is_symlink() and not layout.status.exists()
    assert elsewhere.read_text() == "a host name, not a status\n"
    links = [p for p in log_dir.rglob("*") if p.is_symlink()]
    assert all(p.name == "current_session.jsonl" for p in links), links
    again = doctor_json(log_dir, "--fix")
    assert again["fixed"] == [] and not checks(again, "permissions.symlinks"), again

    # a status written into the reserve while the disk was full names the brokers
    status = stopped_status(log_dir, 1_800_000_000.0)
    status.update(broker="tcp://127.0.0.1:45001", embedded_broker="tcp://127.0.0.1:45002")
    layout.status_reserve.write_bytes(b" " * RESERVE_BYTES)
    data = orjson.dumps(StatusSnapshot.from_json(status).to_json())
    assert _write_reserved(layout, data)
    layout.status_reserve.chmod(0o600)
    layout.status.symlink_to(elsewhere)
    report = doctor_json(log_dir, "--fix")
    [(ok, done)] = [(f["ok"], f["done"]) for f in report["fixed"]]
    assert ok and done == (
        f"removed status.json, a symlink to {elsewhere} (what it leads to is left as it is)"
    ), done
    [stopped] = [f for f in report["findings"] if f["check"] == "service.stopped"]
    assert stopped["fix"].startswith(
        "persist record --broker tcp://127.0.0.1:45001 --embedded yes "
        "--publish-endpoint tcp://127.0.0.1:45002 --log-dir "
    ), stopped


@pytest.mark.parametrize(
    "parts",
    [["checkpoints"], ["segments"], ["recovery"], ["status.json", "recorder.lock"]],
    ids=lambda parts: "+".join(parts),
)
def test_a_part_of_the_folder_another_user_owns_is_the_chown_finding(
    tmp_path: Path, parts: list[str]
) -> None:
    """`sudo persist record` left checkpoints/, segments/, recovery/, or status.json and
    recorder.lock root's (0700, 0600) in a folder of ours: doctor, run as a user the
    modes apply to, gives the permissions.owner finding with its `sudo chown`, and says
    which checks it could not run. Before 2026-12-08 it stopped at the first unreadable
    path, "persist: cannot examine ...: Permission denied", exit 1, no finding, --json
    printing nothing; with the status and lock refused it would have said no recorder
    ran (now: whether one does cannot be told)."""
    from recorder.store.fsutil import user_name
    from tests.log_folder import healthy_folder
    from tests.support import as_another_user, run_cli_unprivileged

    folder = healthy_folder(tmp_path, session=False)
    (folder.root / "recovery" / "state.json").write_text("{}")
    (folder.root / "recorder.lock").write_text("")
    for part in parts:
        as_another_user(folder.root / part)
    out = run_cli_unprivileged("doctor", "--json", "--log-dir", str(folder.root))
    assert out.returncode == 9, out.stderr
    report = orjson.loads(out.stdout)
    found = {f["check"]: f for f in report["findings"]}
    owner = found["permissions.owner"]
    said = f"{len(parts)} path(s) belong to another user ({', '.join(sorted(parts))})"
    assert said in owner["summary"], owner
    assert owner["fix"] == f"sudo chown -R {user_name(os.geteuid())} {folder.root}"
    not_run = [f for f in report["findings"] if f["check"].endswith(".not-run")]
    assert not_run, report["findings"]
    for finding in not_run:
        assert finding["severity"] == "problem"
        assert finding["summary"].startswith("not checked: "), finding
        assert any(str(folder.root / part) in finding["summary"] for part in parts), finding
        assert finding["fix"] == owner["fix"]
