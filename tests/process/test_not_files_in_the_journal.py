"""Something other than a regular file (a named pipe, a folder) where the journal keeps
a file: a segment, a trash entry's manifest, a cache in `metadata_index/`, a restore
bundle's files. Opening a named pipe to read waits for a writer that never comes:
before 2026-12-07 doctor, search, export, restore, `trash list` and prune waited
forever on one. Now each reader names it in one line (or passes over what is derived),
never waits on it, and what doctor proposes does something."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from pathlib import Path

import orjson
import pytest

from tests.demo_journal import DemoClock, DemoWriter
from tests.process.test_export_sessions import write_claude
from tests.support import free_port, run_cli

pytestmark = pytest.mark.timeout(240)

T0 = 1_800_000_000.0


persist = run_cli


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A stopped recorder's folder as a user has it: segments 1 and 2 pruned into the
    trash, 3 and 4 closed and compressed, 5 the active one; two checkpoints, a search
    index, line checks in `metadata_index/`."""
    root = tmp_path / "logs"
    w = DemoWriter.open(root, segment_bytes=4096, clock=DemoClock(T0))
    for i in range(60):
        w.message(T0 + i, "coder", f"message {i} " + "x" * 100)
        if i % 20 == 19:
            w.checkpoint(T0 + i + 0.5, f"cp{i}", "manual")
    w.close()
    for argv in (
        ["prune", "--max-size", "14K"],
        ["compact"],
        ["reindex"],
        ["export", "--all", "--format", "jsonl", "-o", str(tmp_path / "first.jsonl")],
    ):
        done = persist(*argv, "--log-dir", str(root))
        assert done.returncode == 0, (argv, done)
    names = sorted(p.name for p in (root / "segments").iterdir())
    assert names == ["seg-000003.jsonl.zst", "seg-000004.jsonl.zst", "seg-000005.jsonl"]
    assert len(list((root / "trash").glob("*/manifest.json"))) == 1
    return root


def _pipe(path: Path) -> None:
    path.unlink()
    os.mkfifo(path, 0o600)


@pytest.mark.parametrize("name", ["seg-000003.jsonl.zst", "seg-000005.jsonl"])
def test_a_named_pipe_in_a_segments_place_is_named_and_never_waited_on(
    root: Path, tmp_path: Path, name: str
) -> None:
    """A closed (compressed) or the active segment replaced by a named pipe: doctor,
    search, export and restore opened it with a blocking open and never ended. Now
    each says what is there in one line; doctor's fix moves it out of segments/."""
    path = root / "segments" / name
    _pipe(path)
    doctor = persist("doctor", "--log-dir", str(root))
    assert doctor.returncode == 9, doctor
    assert (
        f"problem  journal      segments/{name} is a named pipe, not a regular file: "
        in doctor.stdout
    ), doctor.stdout
    assert f"fix: mv {path} {root / 'recovery'}/" in doctor.stdout
    search = persist("search", "message", "--log-dir", str(root))
    assert "Traceback" not in search.stderr, search
    out = tmp_path / "out.jsonl"
    export = persist("export", "--all", "--format", "jsonl", "-o", str(out), "--log-dir", str(root))
    assert export.returncode == 5, export
    assert f"{name} cannot be read: a named pipe, not a regular file" in export.stderr, export
    restore = persist("restore", "latest", "--log-dir", str(root))
    assert restore.returncode == 5 and "Traceback" not in restore.stderr, restore


def test_a_named_pipe_for_a_trash_manifest_is_named_and_never_waited_on(root: Path) -> None:
    """`trash/<id>/manifest.json` a named pipe: doctor, `trash list`, prune and `trash
    empty` read it with a blocking open and never ended. Now it is one warning naming
    it (`persist trash restore` would refuse the entry), and the rest goes on."""
    manifest = next((root / "trash").glob("*/manifest.json"))
    entry = manifest.parent.name
    _pipe(manifest)
    said = f"trash/{entry}/manifest.json is unreadable (a named pipe, not a regular file)"
    doctor = persist("doctor", "--log-dir", str(root))
    assert doctor.returncode == 8 and f"warning  journal      {said}" in doctor.stdout, doctor
    listed = persist("trash", "list", "--log-dir", str(root))
    assert listed.returncode == 0 and f"warning: {said}" in listed.stderr, listed
    # not "the trash is empty" (as before 2026-12-07) after naming an entry it holds
    assert listed.stdout == "no trash entry can be listed\n", listed
    for argv in (["prune", "--max-size", "1K"], ["trash", "empty", "--older-than", "0s"]):
        done = persist(*argv, "--log-dir", str(root))
        assert "Traceback" not in done.stderr, (argv, done)
    assert stat.S_ISFIFO(os.lstat(manifest).st_mode)  # someone's: never removed


def test_named_pipes_among_the_caches_are_passed_over_named_and_moved_by_fix(
    root: Path, tmp_path: Path
) -> None:
    """A line-index cache, the list of verified caches and a line check as named pipes:
    readers opened the first two with a blocking open (export, restore, doctor, prune
    never ended). Now readers pass over them as caches that are not there, doctor names
    them (a warning: derived) and --fix moves them aside."""
    index = root / "metadata_index"
    pipes = [index / "seg-000003.jsonl.zst.idx", index / "verified.json"]
    for path in pipes:
        os.mkfifo(path, 0o600)
    _pipe(index / "seg-000004.jsonl.check")
    pipes.append(index / "seg-000004.jsonl.check")
    doctor = persist("doctor", "--log-dir", str(root))
    assert doctor.returncode == 8, doctor
    for said in (
        "warning  caches       2 caches in metadata_index/ (seg-000003.jsonl.zst.idx, "
        "verified.json): each is a named pipe, not a regular file (derived: moved aside",
        "warning  caches       metadata_index/seg-000004.jsonl.check is a named pipe, not a "
        "regular file (derived: moved aside",
    ):
        assert said in doctor.stdout, doctor.stdout
    out = tmp_path / "out.jsonl"
    export = persist("export", "--all", "--format", "jsonl", "-o", str(out), "--log-dir", str(root))
    assert export.returncode == 0, export
    assert out.read_bytes() == (tmp_path / "first.jsonl").read_bytes()
    fixed = persist("doctor", "--fix", "--log-dir", str(root))
    assert "Traceback" not in fixed.stderr and fixed.returncode in (0, 8), fixed
    assert not any(stat.S_ISFIFO(os.lstat(p).st_mode) for p in pipes if os.path.lexists(p))


def test_named_pipes_in_a_restore_bundle_are_never_waited_on(root: Path) -> None:
    """A restore bundle's manifest and transcript as named pipes: the next `persist
    restore` read them (to reuse or go on from the bundle) and never ended. Now the
    bundle is built again beside it (the one in place is never replaced: an agent may be
    reading it)."""
    first = persist("restore", "latest", "--log-dir", str(root))
    assert first.returncode == 0, first
    (bundle,) = (root / "restore").iterdir()
    for name in ("manifest.json", "conversation.jsonl"):
        _pipe(bundle / name)
    again = persist("restore", "latest", "--log-dir", str(root))
    assert again.returncode == 0, again
    rebuilt = bundle.with_name(f"{bundle.name}.2")
    assert sorted(p.name for p in (root / "restore").iterdir()) == [bundle.name, rebuilt.name]
    for name in ("manifest.json", "conversation.jsonl", "transcript.md"):
        assert stat.S_ISREG(os.lstat(rebuilt / name).st_mode), name


@pytest.mark.parametrize("kind", ["pipe", "folder"])
def test_a_recorder_refuses_to_start_on_what_is_no_segment(root: Path, kind: str) -> None:
    """The active segment a named pipe or a folder: the recorder stopped with "[Errno 22]
    Invalid argument" (an fsync of the pipe) or "Is a directory", naming nothing. Now
    it says what stands where, and how to move it out of the way."""
    path = root / "segments" / "seg-000005.jsonl"
    if kind == "pipe":
        _pipe(path)
    else:
        path.unlink()
        path.mkdir(mode=0o700)
    broker = f"tcp://127.0.0.1:{free_port()}"
    record = persist("record", "--broker", broker, "--embedded", "no", "--log-dir", str(root))
    what = "a named pipe" if kind == "pipe" else "a folder"
    assert record.returncode == 1, record
    assert (
        f"cannot start recording into {root}: segments/seg-000005.jsonl is {what}, not a "
        f"regular file, where the segment written last should be; move it out of segments/ "
        f"(mv {path} {root / 'recovery'}/) and start again"
    ) in record.stderr, record


def test_a_folder_in_a_closed_segments_place_is_not_missing_and_its_fix_works(
    root: Path,
) -> None:
    """A folder where a closed segment should be: the journal finding said "not a regular
    file", but every checkpoint finding called the segment "missing" and named
    `persist prune --forget-missing`, which answered "no segment is missing" and changed
    nothing. Now each says what stands there and names the command that moves it; done,
    the segment is missing, and the fix doctor names then (forget-missing) clears it."""
    path = root / "segments" / "seg-000003.jsonl.zst"
    path.unlink()
    path.mkdir(mode=0o700)
    doctor = persist("doctor", "--json", "--log-dir", str(root))
    assert doctor.returncode == 9, doctor
    problems = [f for f in orjson.loads(doctor.stdout)["findings"] if f["severity"] == "problem"]
    move = f"mv {path} {root / 'recovery'}/"
    assert [(f["check"], f["fix"]) for f in problems] == [
        ("journal.unreadable", move),
        ("checkpoints.digest", move),
        ("checkpoints.digest", move),
    ], problems
    assert problems[0]["summary"].startswith(
        "segments/seg-000003.jsonl.zst is a folder, not a regular file: no record of that "
        "segment can be read while it stands there"
    ), problems[0]
    for f in problems[1:]:
        assert (
            "seg-000003.jsonl cannot be read: segments/seg-000003.jsonl.zst is a folder, "
            in (f["summary"])
        ), f
        assert "is missing" not in f["summary"], f
    subprocess.run(shlex.split(move), check=True)
    doctor = persist("doctor", "--json", "--log-dir", str(root))
    problems = [f for f in orjson.loads(doctor.stdout)["findings"] if f["severity"] == "problem"]
    forget = f"persist prune --forget-missing --log-dir {root}"
    assert {(f["check"], f["fix"]) for f in problems} == {
        ("journal.missing-segment", forget),
        ("checkpoints.digest", forget),
    }, problems
    done = persist(*shlex.split(forget)[1:])
    assert done.returncode == 0 and "wrote down 1 missing segment(s)" in done.stdout, done
    doctor = persist("doctor", "--log-dir", str(root))
    assert doctor.returncode == 8 and "result: warning (0 problem(s)" in doctor.stdout, doctor


LOCKS = (
    "recorder.lock",
    "retention/retention.lock",
    "compact.lock",
    "doctor.lock",
    "sessions/monitor.lock",
    "agents/launch.lock",
)


@pytest.mark.parametrize("kind", ["folder", "pipe"])
def test_what_stands_at_a_lock_file_is_named_by_doctor_and_each_command_taking_it(
    root: Path, kind: str
) -> None:
    """A folder (or a named pipe) at each of the folder's lock files: doctor found
    nothing ("no recorder running", whose fix `persist record` failed on that folder),
    and record, pin, prune, compact and doctor --fix ended with "Is a directory" (a
    named pipe was even taken as a lock). Now doctor names each (one problem each, the
    command that moves it), and each command says it in one line naming the path,
    exit 1; once moved, each works again."""
    recovery = root / "recovery"
    recovery.mkdir(exist_ok=True)
    for name in LOCKS:
        (root / name).parent.mkdir(mode=0o700, exist_ok=True)
        (root / name).unlink(missing_ok=True)
        if kind == "folder":
            (root / name).mkdir(mode=0o700)
        else:
            os.mkfifo(root / name, 0o600)
    what = "a folder" if kind == "folder" else "a named pipe"
    doctor = persist("doctor", "--json", "--log-dir", str(root))
    assert doctor.returncode == 9, doctor
    found = [
        f for f in orjson.loads(doctor.stdout)["findings"] if f["check"] == "service.lock-file"
    ]
    assert [(f["severity"], f["fix"]) for f in found] == [
        ("problem", f"mv {root / name} {recovery}/") for name in LOCKS
    ], found
    for f, name in zip(found, LOCKS, strict=True):
        assert f["summary"].startswith(
            f"{name} is {what}, not a regular file, where a lock file goes: until it is moved "
            "out of the way, "
        ), f
    cp = sorted(p.stem for p in (root / "checkpoints").iterdir())[0]
    broker = f"tcp://127.0.0.1:{free_port()}"
    write_claude(root.parent)  # a session the monitor checkpoints (under its lock)
    roots = ["--claude-root", str(root.parent / "claude"), "--gemini-root", str(root.parent / "g")]
    roots += ["--codex-root", str(root.parent / "c")]
    for argv, name in (
        (["record", "--broker", broker, "--embedded", "no"], "recorder.lock"),
        (["prune", "--max-size", "1K"], "recorder.lock"),
        (["pin", cp], "retention/retention.lock"),
        (["compact"], "compact.lock"),
        (["doctor", "--fix"], "doctor.lock"),
        (["monitor", "--once", *roots], "sessions/monitor.lock"),
    ):
        done = persist(*argv, "--log-dir", str(root))
        path = root / name
        said = (
            f"{path} is {what}, not a regular file, where a lock file goes: nothing can take "
            f"that lock; move it out of the way (mv {path} {recovery}/) and run this again"
        )
        assert done.returncode == 1 and said in done.stderr, (argv, done)
        assert len(done.stderr.strip().splitlines()) == 1, (argv, done.stderr)
    for name in LOCKS:
        subprocess.run(["mv", str(root / name), f"{recovery}/"], check=True)
    for argv in (
        ["pin", cp],
        ["prune", "--max-size", "1K"],
        ["compact"],
        ["doctor", "--fix"],
        ["monitor", "--once", *roots],
    ):
        done = persist(*argv, "--log-dir", str(root))
        assert done.returncode in (0, 8) and "lock" not in done.stderr, (argv, done)
    doctor = persist("doctor", "--json", "--log-dir", str(root))
    assert "service.lock-file" not in doctor.stdout, doctor
