"""`persist backup` / `persist restore-backup` on real folders: the round trip verifies,
later runs reuse what is there, an interrupted run leaves the previous backup valid, a
tampered backup and a non-empty target are refused with one line."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import orjson
import pytest

import recorder.backup.copy as backup_copy
from recorder.backup.copy import BackupError, make_backup
from recorder.backup.manifest import Entry, Manifest
from recorder.backup.restore import restore_backup
from recorder.cli.main import main
from recorder.errors import BadOption
from recorder.store.layout import Layout, list_segments
from tests.demo_journal import DemoWriter
from tests.log_folder import Folder, add_messages, healthy_folder


@pytest.fixture
def folder(tmp_path: Path) -> Folder:
    f = healthy_folder(tmp_path)
    keys = f.root / "keys"
    keys.mkdir(mode=0o700)
    for name in ("server.key", "server.key_secret"):
        (keys / name).write_bytes(b"curve key " + name.encode())
    return f


def files_under(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


def test_round_trip_restores_the_source_of_truth_and_verifies(
    folder: Folder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "backup"
    kept_rendering = folder.root / "render_cache" / "seg-000001" / "000000000.md.r.zst"
    kept_rendering.parent.mkdir(parents=True)
    kept_rendering.write_bytes(b"a rendering of a closed segment: derived, left out")
    assert main(["backup", str(dest), "--log-dir", str(folder.root), "--json"]) == 0
    done = orjson.loads(capsys.readouterr().out)
    source = files_under(folder.root)
    assert done["reused_bytes"] == 0 and done["copied_bytes"] > 2_000_000
    last = list_segments(folder.layout)[-1]
    assert done["position"]["segment"] == last.name
    assert done["position"]["offset"] == last.stat().st_size
    for path in dest.rglob("*"):  # private: 0600 files in 0700 folders
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path
    restored = tmp_path / "restored"
    assert main(["restore-backup", str(dest), str(restored), "--json"]) == 0
    result = orjson.loads(capsys.readouterr().out)
    assert result["ok"] and result["checkpoints_verified"] == 3
    assert result["session_copies_verified"] == 1
    back = files_under(restored)
    kept = {k for k in source if k.split("/")[0] in ("segments", "checkpoints", "sessions", "keys")}
    kept -= {"keys/server.key_secret", "sessions/scan-cache.json"}
    assert set(back) == kept  # nothing derived: no search index, caches, status
    assert all(back[k] == source[k] for k in back)
    assert os.readlink(restored / "current_session.jsonl") == os.readlink(
        folder.root / "current_session.jsonl"
    )
    manifest = Manifest.read(dest)
    assert {e.path for e in manifest.files} == kept
    assert any("secret keys" in line for line in manifest.left_out)


def test_secret_keys_only_when_asked(folder: Folder, tmp_path: Path) -> None:
    make_backup(folder.root, tmp_path / "b", secret_keys=True)
    assert "keys/server.key_secret" in {e.path for e in Manifest.read(tmp_path / "b").files}


def test_later_runs_reuse_what_is_there(folder: Folder, tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    calls: list[tuple[int, int]] = []
    first = make_backup(folder.root, dest, progress=lambda done, todo: calls.append((done, todo)))
    assert calls[-1] == (first.copied_bytes, first.copied_bytes)  # the bar ends full
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    again = make_backup(folder.root, dest)
    assert again.copied_bytes == 0 and again.reused_bytes == first.copied_bytes
    w = DemoWriter.open(folder.root, segment_bytes=1_100_000)
    add_messages(w, 50, 1_800_000_000.0, 10_000)
    w.close()
    active = list_segments(folder.layout)[-1].stat().st_size
    third = make_backup(folder.root, dest)
    # only the active segment and the session scan state changed: copied again
    assert active <= third.copied_bytes < active + 4096
    objects = [p for p in (dest / "objects").rglob("*") if p.is_file()]
    assert len(objects) == len(Manifest.read(dest).files)  # the old active copy is gone


def test_a_backup_makes_what_it_keeps_in_dest_private_again(
    folder: Folder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A DEST whose objects were opened to others (moved with `rsync -r` under umask
    022, a `chmod -R go+rX`): the next backup reused them as they were, the secret
    key's object 0644 among them, and said nothing."""
    dest = tmp_path / "backup"
    make_backup(folder.root, dest, secret_keys=True)
    opened = [dest, *dest.rglob("*")]
    for path in opened:
        path.chmod(0o755 if path.is_dir() else 0o644)
    secret = next(e for e in Manifest.read(dest).files if e.path == "keys/server.key_secret")
    assert main(["backup", str(dest), "--log-dir", str(folder.root), "--include-secret-keys"]) == 0
    said = capsys.readouterr().out
    for path in [dest, *dest.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path
    assert stat.S_IMODE((dest / secret.object).stat().st_mode) == 0o600
    assert (
        f"{len(opened)} files and folders in DEST were open to others: made 0600/0700 "
        f"(DEST was 0755, backup.lock was 0644, manifest.json was 0644 and {len(opened) - 3} more)"
    ) in said
    done = make_backup(folder.root, dest, secret_keys=True)  # nothing left to fix
    assert done.made_private == []


def test_an_interrupted_backup_leaves_the_previous_one_valid(
    folder: Folder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "backup"
    make_backup(folder.root, dest)
    before = Manifest.read(dest)
    w = DemoWriter.open(folder.root, segment_bytes=1_100_000)
    add_messages(w, 50, 1_800_000_000.0, 10_000)
    w.close()

    def dies(*args: object) -> str:
        raise BackupError("the power went out")

    monkeypatch.setattr(backup_copy, "_copy_verified", dies)
    with pytest.raises(BackupError):
        make_backup(folder.root, dest)
    assert Manifest.read(dest) == before
    restore_backup(dest, tmp_path / "restored")  # verifies every file: still whole


def test_a_tampered_backup_is_refused_naming_the_file(
    folder: Folder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "backup"
    make_backup(folder.root, dest)
    entry = next(e for e in Manifest.read(dest).files if e.path.endswith("seg-000002.jsonl"))
    obj = dest / entry.object
    data = bytearray(obj.read_bytes())
    data[1000] ^= 1
    obj.write_bytes(bytes(data))
    target = tmp_path / "restored"
    assert main(["restore-backup", str(dest), str(target)]) == 5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "the backup is damaged: segments/seg-000002.jsonl" in err[0]
    assert "does not match its SHA-256" in err[0] and "nothing was restored" in err[0]
    assert not target.exists()
    obj.unlink()
    target.mkdir()
    assert main(["restore-backup", str(dest), str(target)]) == 5
    assert "seg-000002.jsonl" in capsys.readouterr().err and list(target.iterdir()) == []
    manifest = orjson.loads((dest / "manifest.json").read_bytes())
    manifest["files"][0]["path"] = "../outside"
    (dest / "manifest.json").write_bytes(orjson.dumps(manifest))
    assert main(["restore-backup", str(dest), str(target)]) == 5
    assert "outside the folder" in capsys.readouterr().err


def test_a_non_empty_target_is_refused(
    folder: Folder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "backup"
    make_backup(folder.root, dest)
    target = tmp_path / "busy"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    assert main(["restore-backup", str(dest), str(target)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert (target / "mine.txt").read_text() == "keep me"
    assert main(["backup", str(folder.root / "inside"), "--log-dir", str(folder.root)]) == 2
    capsys.readouterr()
    assert main(["backup", str(target), "--log-dir", str(folder.root)]) == 2
    assert "holds other files (mine.txt)" in capsys.readouterr().err
    assert main(["restore-backup", str(dest), str(dest / "inside")]) == 2
    assert "is inside the backup" in capsys.readouterr().err
    # not a backup at all: a wrong argument (1), not a damaged backup (5)
    assert main(["restore-backup", str(tmp_path / "no-backup"), str(tmp_path / "x")]) == 1
    assert "no-backup is not a folder: give the backup's folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["restore-backup", str(tmp_path / "empty"), str(tmp_path / "x")]) == 1
    assert "is not a backup (no manifest.json)" in capsys.readouterr().err


def test_checkpoints_written_after_the_journal_end_are_left_out(
    folder: Folder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint that appears while the backup runs names bytes past its end."""
    from tests.log_folder import checkpoint

    real_end = backup_copy._journal_end

    def end_then_more(path: Path) -> tuple[int, int | None] | None:
        end = real_end(path)
        w = DemoWriter.open(folder.root, segment_bytes=1_100_000)
        add_messages(w, 20, 1_800_000_000.0, 20_000)
        checkpoint(w, "late", None)
        w.close()
        return end

    monkeypatch.setattr(backup_copy, "_journal_end", end_then_more)
    dest = tmp_path / "backup"
    make_backup(folder.root, dest)
    names = {e.path for e in Manifest.read(dest).files}
    assert not any("late" in n for n in names)
    result = restore_backup(dest, tmp_path / "restored")
    assert result.problems == [] and result.checkpoints == 3
    restored = list_segments(Layout(tmp_path / "restored"))[-1].read_bytes()
    live = list_segments(folder.layout)[-1].read_bytes()
    assert live.startswith(restored) and len(live) > len(restored)


def test_a_backup_onto_a_full_disk_says_so(folder: Folder, tmp_path: Path) -> None:
    """os.write wrote part of a chunk on a filling disk and the rest was dropped: the
    copy then "read back differently (a failing disk at DEST?)"."""
    from tests.process.test_stalls import small_disk

    with small_disk(tmp_path / "disk", 1) as disk:
        (disk / "filler").write_bytes(b"x" * 700_000)
        code = main(["backup", str(disk / "bk"), "--dir", str(folder.root)])
        assert code == 1
        with pytest.raises(BackupError, match=r"no space left on .*bk while copying"):
            make_backup(folder.root, disk / "bk")
        assert not list((disk / "bk" / "objects" / "tmp").glob("*"))  # no partial object


def test_a_prune_waits_for_a_backup_and_the_backup_holds_every_segment(
    folder: Folder, tmp_path: Path
) -> None:
    """A prune run while a backup copied moved segments out from under it: the backup
    said "every copy verified" and its checkpoints named segments it did not hold."""
    from recorder.daemon.maintenance import _prune_here
    from recorder.store.pruned import RetentionBusy
    from recorder.store.retention_config import Policy

    tried: list[str] = []

    def prune_meanwhile(done: int, todo: int) -> None:
        if tried:
            return
        try:
            _prune_here(folder.layout, Policy(max_size=1), "test", None, print, "x", wait=0.0)
            tried.append("pruned")
        except RetentionBusy as exc:
            tried.append(str(exc))

    make_backup(folder.root, tmp_path / "backup", progress=prune_meanwhile)
    assert tried and "or backing it up" in tried[0], tried
    restore_backup(tmp_path / "backup", tmp_path / "restored")  # every checkpoint verifies
    # once the backup is done, the prune goes ahead
    events: list[dict] = []
    result = _prune_here(folder.layout, Policy(max_size=1), "test", None, events.append, "x")
    assert result.trash is not None and [e["event"] for e in events] == ["prune"]


def test_a_segment_that_vanishes_during_a_backup_fails_it(folder: Folder, tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    make_backup(folder.root, dest)
    before = Manifest.read(dest)
    first = list_segments(folder.layout)[0]

    def deleted_meanwhile(done: int, todo: int) -> None:
        first.unlink(missing_ok=True)  # not by retention: by hand, say

    with pytest.raises(BackupError, match=f"segments/{first.name} vanished while the backup ran"):
        make_backup(folder.root, dest, progress=deleted_meanwhile)
    assert Manifest.read(dest) == before  # the previous backup is still the one there


def test_a_restore_killed_part_way_is_finished_by_running_it_again(
    folder: Folder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A killed `restore-backup` (nothing removed what it wrote) left a half-restored
    folder, and running it again was refused: "DEST_DIR ... is not empty"."""
    import recorder.backup.restore as backup_restore

    dest = tmp_path / "backup"
    make_backup(folder.root, dest)
    target = tmp_path / "restored"
    real_restore_file = backup_restore._restore_file
    calls = {"n": 0}

    def killed_at_the_third(src: Path, to: Path, entry: object) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # as a kill: the undo below never runs
        real_restore_file(src, to, entry)  # type: ignore[arg-type]

    monkeypatch.setattr(backup_restore, "_restore_file", killed_at_the_third)
    monkeypatch.setattr(backup_restore, "_undo", lambda dest, created: None)
    with pytest.raises(KeyboardInterrupt):
        restore_backup(dest, target)
    assert (target / backup_restore.PARTIAL).is_file()
    monkeypatch.undo()
    (target / "stray").write_bytes(b"not written by the killed run")
    with pytest.raises(backup_restore.RestoreError, match=r"did not write.*\(stray\)"):
        restore_backup(dest, target)  # never deleted to start over
    assert (target / "stray").read_bytes() == b"not written by the killed run"
    (target / "stray").unlink()
    written = next(p for p in target.rglob("*") if p.is_file() and p.name != backup_restore.PARTIAL)
    leftover = written.with_name(f".{written.name}.4242.tmp")  # a copy it was making
    leftover.write_bytes(b"half a segment")
    result = restore_backup(dest, target)
    assert not result.problems and result.checkpoints == 3
    assert not (target / backup_restore.PARTIAL).exists()
    assert not leftover.exists()
    other = tmp_path / "someone-elses"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(BadOption, match="is not empty"):
        restore_backup(dest, other)  # no marker: never emptied


def test_a_backup_ending_while_a_restore_reads_the_same_folder_fails_neither(
    folder: Folder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The next `persist backup` into a folder a restore was reading removed the old
    copy of the active segment, which the manifest the restore had read still named:
    "the backup is damaged: ... is missing; nothing was restored" (exit 5), though the
    backup was whole. Now the backup keeps those objects while a restore reads (an
    flock on objects/), says so, and the next backup removes them."""
    import recorder.backup.restore as backup_restore

    dest = tmp_path / "backup"
    make_backup(folder.root, dest)
    w = DemoWriter.open(folder.root, segment_bytes=1_100_000)
    add_messages(w, 5, 1_800_000_000.0, 10_000)  # the active segment grows: a new object
    w.close()
    real_restore_file = backup_restore._restore_file
    said: list[str] = []

    def backup_meanwhile(src: Path, to: Path, entry: Entry) -> None:
        if entry.path.startswith("segments/") and not said:
            assert main(["backup", str(dest), "--log-dir", str(folder.root)]) == 0
            said.append(capsys.readouterr().out)
        real_restore_file(src, to, entry)

    monkeypatch.setattr(backup_restore, "_restore_file", backup_meanwhile)
    restore_backup(dest, tmp_path / "restored")  # every file as the manifest it read says
    assert (
        "1 object the new manifest no longer names kept: a persist restore-backup is "
        "reading this backup (the next backup removes it)"
    ) in said[0]
    objects = [p for p in (dest / "objects").rglob("*") if p.is_file()]
    assert len(objects) == len(Manifest.read(dest).files) + 1
    monkeypatch.setattr(backup_restore, "_restore_file", real_restore_file)
    assert make_backup(folder.root, dest).garbage_kept == 0
    objects = [p for p in (dest / "objects").rglob("*") if p.is_file()]
    assert len(objects) == len(Manifest.read(dest).files)
    restore_backup(dest, tmp_path / "again")


def test_a_secret_key_open_to_others_stays_refused_through_backup_and_restore(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A client secret key at 0644 is refused everywhere (it may have leaked); `backup
    --include-secret-keys` copied it unsaid and restore-backup wrote it back 0600, so
    doctor found nothing and `load_client` took the possibly leaked key again."""
    from recorder.bus.curve import init_keys
    from recorder.bus.keys import KeyFileError, load_client
    from recorder.doctor.system import permission_findings

    logs = healthy_folder(tmp_path, session=False).root
    init_keys(logs / "keys")
    secret = logs / "keys" / "client.key_secret"
    secret.chmod(0o644)
    dest, restored = tmp_path / "backup", tmp_path / "restored"
    args = ["backup", str(dest), "--log-dir", str(logs), "--include-secret-keys"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"persist: warning: {secret} is open to others (mode 0644), so its secret may have "
        "leaked: copied marked so, and restore-backup brings it back as open, refused as "
        f"here; `persist keys init --keys {secret.parent}` replaces the pair"
    ]
    assert Manifest.read(dest).exposed == {"keys/client.key_secret": 0o644}
    assert stat.S_IMODE(next((dest / "objects").rglob("*")).stat().st_mode) in (0o600, 0o700)
    assert main([*args, "--json"]) == 0  # reused: marked all the same
    done = capsys.readouterr()
    assert orjson.loads(done.out)["exposed_secret_keys"] == {"keys/client.key_secret": "0644"}
    assert "may have leaked" in done.err
    assert main(["restore-backup", str(dest), str(restored)]) == 0
    said = capsys.readouterr()
    back = restored / "keys" / "client.key_secret"
    assert back.read_bytes() == secret.read_bytes()
    assert stat.S_IMODE(back.stat().st_mode) == 0o644
    assert stat.S_IMODE(back.parent.stat().st_mode) == 0o700
    assert said.err.splitlines() == [
        f"persist: warning: {back} is open to others (mode 0644), so its secret may have "
        "leaked: restored so, as the backup marks it (the recorder and broker refuse it); "
        f"`persist keys init --keys {back.parent}` replaces the pair"
    ]
    with pytest.raises(KeyFileError, match="may have leaked"):
        load_client(restored / "keys")
    found = [
        f for f in permission_findings(Layout(restored)) if f.check == "permissions.secret-keys"
    ]
    assert found and "may have leaked" in found[0].summary
    made = init_keys(restored / "keys")  # replaces it, and takes the old key off the list
    assert made.exposed == {"client": 0o644} and made.disallowed
    # a private key is restored private, unmarked
    secret.chmod(0o600)
    assert main([*args, "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["exposed_secret_keys"] == {}
    assert Manifest.read(dest).exposed == {}
    assert main(["restore-backup", str(dest), str(tmp_path / "again")]) == 0
    assert capsys.readouterr().err == ""
    assert stat.S_IMODE((tmp_path / "again" / "keys" / "client.key_secret").stat().st_mode) == 0o600
    load_client(tmp_path / "again" / "keys")
    # a manifest marking what is no secret key is tampered with: refused, nothing chmodded
    manifest = orjson.loads((dest / "manifest.json").read_bytes())
    manifest["exposed_secret_keys"] = {"segments/seg-000001.jsonl": "0644"}
    (dest / "manifest.json").write_bytes(orjson.dumps(manifest))
    assert main(["restore-backup", str(dest), str(tmp_path / "tampered")]) == 5
    assert "exposed_secret_keys.segments/seg-000001.jsonl is no secret key listed in files" in (
        capsys.readouterr().err
    )
