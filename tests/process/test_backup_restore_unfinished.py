"""A `persist restore-backup` killed part-way leaves `.restore-backup-unfinished` in its
DEST_DIR: nothing writes into that folder (record, the launcher, checkpoint, prune,
backup), doctor names the mark and the command that finishes the restore, and that
command never deletes what it did not write. Two restores into one folder at once:
the second is refused. Real CLI processes, real kills."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import Popen

import orjson
import pytest

from recorder.store.unfinished import MARKER
from tests.log_folder import healthy_folder
from tests.support import PYTHON, free_port

pytestmark = pytest.mark.timeout(180)


def persist(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "recorder.cli", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=90,
    )


def files_in(folder: Path) -> dict[str, int]:
    return {
        p.relative_to(folder).as_posix(): p.lstat().st_size
        for p in folder.rglob("*")
        if not p.is_dir() or p.is_symlink()
    }


@pytest.fixture
def backup(tmp_path: Path) -> Path:
    folder = healthy_folder(tmp_path, messages=6000, session=False)
    dest = tmp_path / "backup"
    made = persist("backup", str(dest), "--log-dir", str(folder.root))
    assert made.returncode == 0, made.stderr
    return dest


def stopped_at(backup: Path, dest: Path, reached: Callable[[Path], bool]) -> Popen[bytes]:
    """A restore stopped (SIGSTOP) once `reached(DEST_DIR)`: it runs in bursts of a few
    milliseconds from the moment its mark is there, and holds whatever it holds until
    it is killed or let go on."""
    proc = subprocess.Popen(
        [PYTHON, "-m", "recorder.cli", "restore-backup", str(backup), str(dest)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not (dest / MARKER).exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the restore never began"
        time.sleep(0.0005)
    proc.send_signal(signal.SIGSTOP)
    while not reached(dest):
        assert proc.poll() is None and time.monotonic() < deadline, "the restore ended"
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.002)
        proc.send_signal(signal.SIGSTOP)
    return proc


@pytest.fixture
def killed(backup: Path, tmp_path: Path) -> Iterator[Path]:
    """DEST_DIR of a restore SIGKILLed part-way (not every file is there)."""
    dest = tmp_path / "restored"
    proc = stopped_at(backup, dest, lambda d: (d / "segments" / "seg-000002.jsonl").exists())
    proc.kill()
    proc.wait(30)
    assert (dest / MARKER).is_file()
    manifest = orjson.loads((backup / "manifest.json").read_bytes())
    assert len(files_in(dest)) < len(manifest["files"])  # part-way
    yield dest


def one_line(out: subprocess.CompletedProcess[str]) -> str:
    [line] = out.stderr.strip().splitlines()
    return line


def test_nothing_writes_into_an_unfinished_restore_and_doctor_names_it(
    backup: Path, killed: Path, tmp_path: Path
) -> None:
    finish = f"persist restore-backup {backup.resolve()} {killed}"
    doctor = persist("doctor", "--log-dir", str(killed))
    assert doctor.returncode == 9, doctor.stdout
    assert f"problem  journal      a persist restore-backup of {backup.resolve()}" in doctor.stdout
    assert f"fix: {finish}" in doctor.stdout
    assert "forget-missing" not in doctor.stdout  # segments not restored yet: not "removed"
    before = files_in(killed)
    bus = ["--broker", f"tcp://127.0.0.1:{free_port()}"]
    bus += ["--publish-endpoint", f"tcp://127.0.0.1:{free_port()}", "--embedded", "yes"]
    writers = [
        ["record", "--log-dir", str(killed), *bus, "--detach", "--search-index", "off"],
        ["record", "--log-dir", str(killed), *bus, "--search-index", "off"],
        ["launch", "--log-dir", str(killed), "--no-tty-policy", "fresh", *bus, "--", "true"],
        ["checkpoint", "--log-dir", str(killed), "--label", "mine"],
        ["prune", "--log-dir", str(killed), "--forget-missing"],
        ["compact", "--log-dir", str(killed)],
        ["backup", str(tmp_path / "backup-of-half"), "--log-dir", str(killed)],
        ["keys", "init", "--log-dir", str(killed)],
        ["keys", "allow", str(tmp_path / "client.key"), "--log-dir", str(killed)],
    ]
    try:
        for argv in writers:
            out = persist(*argv)
            assert out.returncode == 1, (argv, out.stdout, out.stderr)
            line = one_line(out)
            assert MARKER in line and line.endswith(finish), (argv, line)
    finally:
        persist("stop", "--log-dir", str(killed))  # (had one started)
    # an agent's hooks (installed, the folder their default): nothing written there,
    # their failure goes to the fallback file (it went into the folder, and the restore
    # that finishes it then refused a file it had not written)
    state = tmp_path / "state"
    payload = b'{"session_id": "s1", "hook_event_name": "SessionEnd"}'
    for event in ("SessionStart", "Stop", "SessionEnd"):
        hook = ["hook", event, "--agent", "claude", "--log-dir", str(killed)]
        subprocess.run(
            [PYTHON, "-m", "recorder.cli", *hook],
            input=payload,
            capture_output=True,
            timeout=60,
            env={**os.environ, "XDG_STATE_HOME": str(state), "HOME": str(tmp_path / "home")},
            check=True,
        )
    assert files_in(killed) == before
    (killed / "exports").mkdir(exist_ok=True)  # persist-tui's place for exports
    before = files_in(killed)
    export = ["export", "--all", "--format=md", "--log-dir", str(killed)]
    out = persist(*export, "-o", str(killed / "exports" / "x.md"))
    assert out.returncode == 2 and "holds an unfinished restore" in one_line(out), out.stderr
    derived = "metadata_index/"  # line-index caches its reading kept: a restore drops them
    assert {k: v for k, v in files_in(killed).items() if not k.startswith(derived)} == {
        k: v for k, v in before.items() if not k.startswith(derived)
    }
    for reader in (["stats"], ["status"], ["export", "--all", "--format=md"]):
        out = persist(*reader, "--log-dir", str(killed))
        warned = [line for line in out.stderr.splitlines() if "unfinished restore" in line]
        assert len(warned) == 1 and warned[0].endswith(finish), (reader, out.stderr)
        assert "may be partial" in warned[0]
    failures = (state / "agent-persist" / "hook-failures.jsonl").read_text().splitlines()
    assert len(failures) == 3 and all(MARKER in line for line in failures)
    assert not (tmp_path / "backup-of-half").exists()

    again = persist("restore-backup", str(backup), str(killed), "--json")
    assert again.returncode == 0, again.stderr
    assert orjson.loads(again.stdout)["ok"]
    assert not (killed / MARKER).exists()
    doctor = persist("doctor", "--log-dir", str(killed))
    assert "problem" not in doctor.stdout.replace("0 problem(s)", ""), doctor.stdout


def test_finishing_a_restore_never_deletes_what_it_did_not_write(
    backup: Path, killed: Path
) -> None:
    """What an older persist recorded into the half-restored folder (a segment that
    grew, a new one, a checkpoint) is kept: the run that would start over is refused."""
    manifest = orjson.loads((backup / "manifest.json").read_bytes())
    restored = next(killed / e["path"] for e in manifest["files"] if (killed / e["path"]).is_file())
    with open(restored, "ab") as f:
        f.write(b'{"seq": 999999, "text": "recorded after the kill"}\n')
    (killed / "checkpoints").mkdir(exist_ok=True)
    (killed / "checkpoints" / "later.json").write_bytes(b"{}")
    (killed / "search").mkdir()  # derived: rebuilt from the journal, may go
    (killed / "search" / "index.db").write_bytes(b"x")
    before = files_in(killed)
    out = persist("restore-backup", str(backup), str(killed))
    assert out.returncode == 1
    line = one_line(out)
    rel = restored.relative_to(killed).as_posix()
    assert "did not write, or that changed since" in line, line
    assert rel in line and "checkpoints/later.json" in line and "search" not in line
    assert files_in(killed) == before  # nothing deleted
    restored.unlink()
    (killed / "checkpoints" / "later.json").unlink()
    done = persist("restore-backup", str(backup), str(killed))
    assert done.returncode == 0, done.stderr
    assert not (killed / "search").exists() and not (killed / MARKER).exists()


def test_a_second_restore_into_the_same_folder_is_refused(backup: Path, tmp_path: Path) -> None:
    dest = tmp_path / "restored"
    first = stopped_at(backup, dest, lambda d: True)  # mid-restore
    try:
        second = persist("restore-backup", str(backup), str(dest))
        assert second.returncode == 1
        assert one_line(second) == (
            f"persist: another persist restore-backup is writing into {dest}: let it finish"
        )
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(60) == 0
    assert not (dest / MARKER).exists()
    doctor = persist("doctor", "--log-dir", str(dest), "--json")
    report = orjson.loads(doctor.stdout)
    assert [f for f in report["findings"] if f["severity"] == "problem"] == []


def test_two_restores_started_together_leave_one_whole_restore(
    backup: Path, tmp_path: Path
) -> None:
    """Started a moment apart, again and again: one restores everything, the other is
    refused in one line (never 'nothing was restored' beside a restore, nor exit 5)."""
    for k in range(4):
        dest = tmp_path / f"restored-{k}"
        a = subprocess.Popen(
            [PYTHON, "-m", "recorder.cli", "restore-backup", str(backup), str(dest)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.05 * k)
        b = persist("restore-backup", str(backup), str(dest))
        a_out, a_err = a.communicate(timeout=90)
        codes = sorted([a.returncode, b.returncode])
        said = a_err + b.stderr
        assert "nothing was restored" not in said and "damaged" not in a_out + b.stdout, said
        assert codes in ([0, 1], [0, 2]), (codes, said)  # 2: the first had finished
        assert not (dest / MARKER).exists()
    assert os.listdir(tmp_path / "restored-0")
