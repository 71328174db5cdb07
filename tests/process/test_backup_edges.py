"""`persist backup` / `persist restore-backup` at their edges, by the real CLI on real
folders: a damaged object in DEST is replaced rather than reused, a DEST holding what
backup did not make is refused, symlinks leading out of the log folder are followed
or named, a full DEST_DIR is a full disk (not a damaged backup), and a tampered
manifest or a SRC that is a file get the exit code main.py documents."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import orjson
import pytest

from recorder.backup.manifest import Manifest
from tests.log_folder import healthy_folder
from tests.process.test_backup_restore_unfinished import persist
from tests.support import PYTHON

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    return healthy_folder(tmp_path, messages=2400, session=False).root


def flip_a_byte(path: Path, at: int = 500) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 1
    path.write_bytes(bytes(data))


def test_a_damaged_object_is_replaced_not_reused(logs: Path, tmp_path: Path) -> None:
    """An object that went bad in DEST was kept as "already there" (same name and
    size) and the backup said "every copy verified"; only restore-backup found it."""
    dest = tmp_path / "backup"
    assert persist("backup", str(dest), "--dir", str(logs)).returncode == 0
    entry = next(e for e in Manifest.read(dest).files if e.path == "segments/seg-000001.jsonl")
    flip_a_byte(dest / entry.object)
    os.utime(logs / entry.path)  # the file looks changed: it is read and copied again
    again = persist("backup", str(dest), "--dir", str(logs))
    assert again.returncode == 0, again.stderr
    assert "1 damaged object replaced (segments/seg-000001.jsonl)" in again.stdout
    assert "every copy verified" not in again.stdout
    restored = persist("restore-backup", str(dest), str(tmp_path / "r1"))
    assert restored.returncode == 0, restored.stderr
    # an unchanged file's object is checked by size only, unless --verify: said so
    flip_a_byte(dest / entry.object, 700)
    plain = persist("backup", str(dest), "--dir", str(logs), "--json")
    assert orjson.loads(plain.stdout)["damaged_replaced"] == []
    verified = persist("backup", str(dest), "--dir", str(logs), "--verify", "--json")
    done = orjson.loads(verified.stdout)
    assert done["damaged_replaced"] == ["segments/seg-000001.jsonl"]
    assert done["copied_bytes"] == entry.size and done["verified"] is True
    restored = persist("restore-backup", str(dest), str(tmp_path / "r2"))
    assert restored.returncode == 0, restored.stderr
    text = persist("backup", str(dest), "--dir", str(logs)).stdout
    assert "objects reused for unchanged files checked by size (--verify hashes them)" in text


def test_a_dest_holding_what_backup_did_not_make_is_refused(logs: Path, tmp_path: Path) -> None:
    """Only DEST's top-level names were checked: the object clean-up deleted a file in
    objects/<aa>/ and the folder objects/tmp/, and a manifest.json of something else,
    or the backup of another log folder, was replaced."""
    photos = tmp_path / "photos"
    (photos / "objects" / "ab").mkdir(parents=True)
    (photos / "objects" / "tmp").mkdir()
    (photos / "objects" / "ab" / "photo.jpg").write_text("precious")
    (photos / "objects" / "tmp" / "draft.txt").write_text("draft")
    web = tmp_path / "web"
    web.mkdir()
    (web / "manifest.json").write_text('{"name": "my web app"}')
    for dest, named in (
        (photos, "objects/ab/photo.jpg, objects/tmp/draft.txt"),
        (web, "manifest.json"),
    ):
        refused = persist("backup", str(dest), "--dir", str(logs))
        assert refused.returncode == 2, refused.stderr
        assert (
            len(refused.stderr.splitlines()) == 1
            and f"holds other files ({named}" in refused.stderr
        )
        assert not (dest / "backup.lock").exists()
    assert (photos / "objects" / "ab" / "photo.jpg").read_text() == "precious"
    assert (photos / "objects" / "tmp" / "draft.txt").read_text() == "draft"
    assert (web / "manifest.json").read_text() == '{"name": "my web app"}'
    # the backup of another log folder is replaced only when asked
    dest = tmp_path / "backup"
    assert persist("backup", str(dest), "--dir", str(logs)).returncode == 0
    other = tmp_path / "other-logs"
    shutil.copytree(logs, other, symlinks=True)
    refused = persist("backup", str(dest), "--dir", str(other))
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1
    assert f"holds the backup of another log folder ({logs})" in refused.stderr
    assert "--replace-other-source" in refused.stderr
    assert Manifest.read(dest).source == str(logs)
    replaced = persist("backup", str(dest), "--dir", str(other), "--replace-other-source")
    assert replaced.returncode == 0, replaced.stderr
    assert Manifest.read(dest).source == str(other)


def test_a_full_dest_dir_is_a_full_disk_not_a_damaged_backup(logs: Path, tmp_path: Path) -> None:
    """A write that wrote part of the last chunk (the disk filled up) was not continued:
    the read-back then found the file short, "reads back differently after restoring",
    and the restore called the backup damaged (exit 5)."""
    from tests.process.test_stalls import small_disk

    backup = tmp_path / "backup"
    assert persist("backup", str(backup), "--dir", str(logs)).returncode == 0
    last = Manifest.read(backup).files[-1]
    assert last.path.startswith("segments/") and last.size % (1 << 20) > 64 * 1024

    def free(disk: Path) -> int:
        st = os.statvfs(disk)
        return st.f_bavail * st.f_frsize

    with small_disk(tmp_path / "disk", 16) as disk:
        empty = free(disk)
        assert persist("restore-backup", str(backup), str(disk / "r")).returncode == 0
        needed = empty - free(disk)
        shutil.rmtree(disk / "r")
        # room for all but the last 32 KiB: the disk fills up within the last chunk
        (disk / "filler").write_bytes(b"\0" * (free(disk) - needed + 32 * 1024))
        done = persist("restore-backup", str(backup), str(disk / "r"))
        assert done.returncode == 1, done.stderr
        assert done.stderr.startswith("persist: restore failed: No space left on device")
        assert "nothing was restored" in done.stderr and len(done.stderr.splitlines()) == 1
        assert not (disk / "r").exists()


def test_restore_backup_exit_codes_tampered_and_no_backup(logs: Path, tmp_path: Path) -> None:
    """A manifest naming one path as both a link and a file failed as "restore failed:
    File exists" (exit 1, as a full disk) instead of tampered (5); a SRC that is a file
    was "manifest.json cannot be read (Not a directory)" (5) instead of no backup (1);
    and a backup of a journal whose segment is a relative symlink named it both ways."""
    segments = logs / "segments"
    (segments / "kept").mkdir()
    os.rename(segments / "seg-000001.jsonl", segments / "kept" / "seg-000001.jsonl")
    os.symlink("kept/seg-000001.jsonl", segments / "seg-000001.jsonl")
    backup = tmp_path / "backup"
    assert persist("backup", str(backup), "--dir", str(logs)).returncode == 0
    restored = persist("restore-backup", str(backup), str(tmp_path / "r"))
    assert restored.returncode == 0, restored.stderr
    assert (tmp_path / "r" / "segments" / "seg-000001.jsonl").read_bytes() == (
        segments / "kept" / "seg-000001.jsonl"
    ).read_bytes()
    manifest = orjson.loads((backup / "manifest.json").read_bytes())
    for name, target, says in (
        ("segments/seg-000002.jsonl", "seg-000001.jsonl", "is also listed in files"),
        ("segments", "elsewhere", "lies inside segments, a link"),
    ):
        tampered = {**manifest, "links": {**manifest["links"], name: target}}
        (backup / "manifest.json").write_bytes(orjson.dumps(tampered))
        done = persist("restore-backup", str(backup), str(tmp_path / "t"))
        assert done.returncode == 5, done.stderr
        assert says in done.stderr and len(done.stderr.splitlines()) == 1
        assert not (tmp_path / "t").exists()
    (tmp_path / "afile").write_text("not a backup")
    done = persist("restore-backup", str(tmp_path / "afile"), str(tmp_path / "t"))
    assert done.returncode == 1 and "afile is not a folder: give the backup's folder" in done.stderr


def test_symlinks_leading_out_of_the_log_folder_are_followed_or_named(
    logs: Path, tmp_path: Path
) -> None:
    """A symlink whose target was absolute or held `..` (enrich.toml kept elsewhere, a
    linked folder) was left out silently: not in the manifest, not named anywhere."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "notes" / "sub").mkdir(parents=True)
    (elsewhere / "my-enrich.toml").write_text('[[rule]]\nmatch = "x"\n')
    (elsewhere / "notes" / "a.txt").write_text("a note")
    (elsewhere / "notes" / "sub" / "b.txt").write_text("another")
    os.symlink(elsewhere / "my-enrich.toml", logs / "enrich.toml")
    os.symlink("../elsewhere/notes", logs / "notes")
    os.symlink("..", elsewhere / "notes" / "sub" / "up")  # round in a loop
    os.symlink("/nowhere/at/all.toml", logs / "reading.toml")
    os.symlink(logs / "segments", logs / "old-segments")  # back into the log folder
    backup = tmp_path / "backup"
    done = persist("backup", str(backup), "--dir", str(logs), "--json")
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["symlinks_left_out"] == [
        "notes/sub/up -> .. (leads back into a folder it is in)",
        "reading.toml -> /nowhere/at/all.toml (leads nowhere)",
    ]
    assert Manifest.read(backup).links["old-segments"] == "segments"  # back into it: a link
    paths = {e.path for e in Manifest.read(backup).files}
    assert {"enrich.toml", "notes/a.txt", "notes/sub/b.txt"} <= paths
    text = persist("backup", str(backup), "--dir", str(logs)).stdout
    assert "symlinks left out: notes/sub/up -> .. (leads back into a folder it is in)" in text
    restored = tmp_path / "r"
    assert persist("restore-backup", str(backup), str(restored)).returncode == 0
    assert not (restored / "enrich.toml").is_symlink()
    assert (restored / "enrich.toml").read_text() == '[[rule]]\nmatch = "x"\n'
    assert (restored / "notes" / "sub" / "b.txt").read_text() == "another"


def test_a_backup_with_a_torn_manifest_is_repaired_another_programs_refused(
    logs: Path, tmp_path: Path
) -> None:
    """A backup whose manifest.json was torn (half written, bit-rotted) was refused as
    "not a backup's" (exit 2) while restore-backup called it a damaged backup (5); a
    manifest.json of another program was "damaged" (5) to restore-backup."""
    dest = tmp_path / "backup"
    assert persist("backup", str(dest), "--dir", str(logs)).returncode == 0
    whole = (dest / "manifest.json").read_bytes()
    for torn in (whole[: len(whole) // 2], whole[:20], b"\0" * len(whole)):
        (dest / "manifest.json").write_bytes(torn)
        damaged = persist("restore-backup", str(dest), str(tmp_path / "r"))
        assert damaged.returncode == 5 and "manifest.json is not JSON" in damaged.stderr
        again = persist("backup", str(dest), "--dir", str(logs))
        assert again.returncode == 0, again.stderr
        assert "the manifest there was damaged (" in again.stdout
        assert "replaced, every object already there hashed before it was reused" in again.stdout
        assert Manifest.read(dest).source == str(logs)
    done = persist("restore-backup", str(dest), str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    # a torn manifest still naming another log folder is that backup's: not replaced
    other = tmp_path / "other-logs"
    shutil.copytree(logs, other, symlinks=True)
    whole = (dest / "manifest.json").read_bytes()
    (dest / "manifest.json").write_bytes(whole[: len(whole) // 2])
    refused = persist("backup", str(dest), "--dir", str(other))
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1
    assert f"holds the backup of another log folder ({logs})" in refused.stderr
    assert (dest / "manifest.json").read_bytes() == whole[: len(whole) // 2]
    # another program's manifest.json: refused by backup (2), no backup to restore (1)
    for name, text in (("web", b'{"name": "my web app"}'), ("yaml", b"name: my app\n")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "manifest.json").write_bytes(text)
        refused = persist("backup", str(folder), "--dir", str(logs))
        assert refused.returncode == 2, refused.stderr
        assert "holds other files (manifest.json, not a backup's)" in refused.stderr
        assert (folder / "manifest.json").read_bytes() == text
        assert sorted(os.listdir(folder)) == ["manifest.json"]
        done = persist("restore-backup", str(folder), str(tmp_path / "x"))
        assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
        assert f"{folder} is not a backup (its manifest.json is another program's" in done.stderr
    # valid JSON of another shape is another program's even among a backup's objects
    (dest / "manifest.json").write_bytes(b'{"name": "my web app"}')
    refused = persist("backup", str(dest), "--dir", str(logs))
    assert refused.returncode == 2 and "manifest.json, not a backup's" in refused.stderr


def test_what_is_not_a_regular_file_is_named_never_read(logs: Path, tmp_path: Path) -> None:
    """A symlink to a FIFO or to /dev/null, a FIFO in a folder reached through a link,
    and a FIFO or socket in the log folder were left out silently (in neither the
    manifest nor `symlinks_left_out`); a link to itself "led nowhere"."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "notes").mkdir(parents=True)
    os.mkfifo(elsewhere / "fifo")
    os.mkfifo(elsewhere / "notes" / "fifo")
    (elsewhere / "notes" / "a.txt").write_text("a note")
    os.symlink(elsewhere / "fifo", logs / "pipe")
    os.symlink("/dev/null", logs / "devnull")
    os.symlink(elsewhere / "notes", logs / "notes")
    os.symlink(logs / "self", logs / "self")
    os.mkfifo(logs / "localfifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(logs / "bus.sock"))
        backup = tmp_path / "backup"
        done = persist("backup", str(backup), "--dir", str(logs), "--json")
        text = persist("backup", str(backup), "--dir", str(logs)).stdout
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout)
    assert result["symlinks_left_out"] == [
        "devnull -> /dev/null (leads to a character device, not a regular file)",
        f"pipe -> {elsewhere / 'fifo'} (leads to a FIFO, not a regular file)",
        f"self -> {logs / 'self'} (leads round in a loop)",
    ]
    assert result["not_regular_left_out"] == [
        "bus.sock (a socket)",
        "localfifo (a FIFO)",
        "notes/fifo (a FIFO)",
    ]
    assert (
        "left out (not a regular file): bus.sock (a socket), localfifo (a FIFO), "
        "notes/fifo (a FIFO)"
    ) in text
    assert "symlinks left out: devnull -> /dev/null (leads to a character device" in text
    manifest = Manifest.read(backup)
    assert "notes/a.txt" in {e.path for e in manifest.files}
    named = {e.path for e in manifest.files} | set(manifest.links)
    assert not named & {"pipe", "devnull", "self", "notes/fifo", "localfifo", "bus.sock"}
    assert "notes/fifo (a FIFO)" in manifest.left_out
    assert persist("restore-backup", str(backup), str(tmp_path / "r")).returncode == 0


def test_links_into_the_log_folder_and_a_linked_journal_come_back(tmp_path: Path) -> None:
    """A symlink whose absolute target (or `..`) led back into the log folder was only
    named as left out ("backed up there"), so `enrich.toml -> /logs/other.toml` was gone
    after a restore; a `checkpoints` linked below the log folder (`-> data/checkpoints`)
    or by an absolute path into it was dropped (0 checkpoints restored), and a
    `segments` so linked was stored twice (the active segment past the consistent
    end too) and restored twice."""
    logs = healthy_folder(tmp_path / "a", messages=2400, session=False).root
    (logs / "other.toml").write_text('[[rule]]\nmatch = "x"\n')
    os.symlink(logs / "other.toml", logs / "enrich.toml")
    (logs / "conf").mkdir()
    os.symlink("../other.toml", logs / "conf" / "monitor.toml")
    first = sorted((logs / "segments").iterdir())[0]
    os.symlink(first, logs / "first.jsonl")
    (logs / "data").mkdir()
    os.rename(logs / "checkpoints", logs / "data" / "checkpoints")
    os.symlink("data/checkpoints", logs / "checkpoints")
    os.rename(logs / "segments", logs / "data" / "segments")
    os.symlink(logs / "data" / "segments", logs / "segments")
    backup = tmp_path / "backup"
    done = persist("backup", str(backup), "--dir", str(logs), "--json")
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout)
    assert result["symlinks_left_out"] == []
    manifest = Manifest.read(backup)
    assert manifest.links == {
        "current_session.jsonl": "segments/seg-000003.jsonl",
        "enrich.toml": "other.toml",
        "conf/monitor.toml": "../other.toml",
        "first.jsonl": f"segments/{first.name}",
        "data/checkpoints": "../checkpoints",
        "data/segments": "../segments",
    }
    paths = sorted(e.path for e in manifest.files)
    assert [p for p in paths if p.startswith("checkpoints/")] == sorted(
        f"checkpoints/{p.name}" for p in (logs / "data" / "checkpoints").iterdir()
    )
    assert not [p for p in paths if p.startswith(("data/", "conf/"))]
    assert result["copied_bytes"] == sum(e.size for e in manifest.files)  # no bytes twice
    text = persist("backup", str(backup), "--dir", str(logs)).stdout
    assert "kept as relative links (restored as links, their bytes stored once): " in text
    assert "enrich.toml -> other.toml" in text and "symlinks left out" not in text
    restored = tmp_path / "r"
    back = persist("restore-backup", str(backup), str(restored))
    assert back.returncode == 0, back.stderr
    assert "3 checkpoint(s) verified" in back.stdout
    assert "symlinks made again (relative, as the backup holds them): " in back.stdout
    assert "enrich.toml -> other.toml" in back.stdout
    for name in ("segments", "checkpoints"):
        assert (restored / name).is_dir() and not (restored / name).is_symlink()
    assert os.readlink(restored / "enrich.toml") == "other.toml"
    for name in ("enrich.toml", "conf/monitor.toml"):
        assert (restored / name).read_text() == '[[rule]]\nmatch = "x"\n'
    assert (restored / "first.jsonl").read_bytes() == first.read_bytes()
    assert sorted(os.listdir(restored / "data" / "segments")) == sorted(
        os.listdir(logs / "segments")
    )
    # such targets climb no higher than the folders the link is in: a tampered one is refused
    raw = orjson.loads((backup / "manifest.json").read_bytes())
    for name, target in (
        ("conf/x", "../../outside"),
        ("y", "../y"),
        ("conf/z", "../conf/../../outside"),
        ("w", "/etc/passwd"),
    ):
        tampered = {**raw, "links": {**raw["links"], name: target}}
        (backup / "manifest.json").write_bytes(orjson.dumps(tampered))
        refused = persist("restore-backup", str(backup), str(tmp_path / "t"))
        assert refused.returncode == 5 and "outside the folder" in refused.stderr, refused.stderr
        assert not (tmp_path / "t").exists()


def test_a_link_to_what_backups_leave_out_is_named_not_restored_dangling(
    logs: Path, tmp_path: Path
) -> None:
    """A link to what the backup leaves out on purpose (the search index, a CURVE secret
    key, the recovery state) was stored as a link, and restore-backup made it again
    leading nowhere, said by neither. Now it is left out of the backup and named, with
    why (so is a link to such a link); with --include-secret-keys the key's link is kept.
    A backup made before, holding such a link, is restored without it, said in one line."""
    (logs / "search").mkdir(exist_ok=True)
    (logs / "search" / "index.sqlite3").write_bytes(b"not really an index")
    (logs / "keys").mkdir(exist_ok=True, mode=0o700)
    (logs / "keys" / "server.key").write_text("public")
    (logs / "keys" / "server.key_secret").write_text("secret")
    os.chmod(logs / "keys" / "server.key_secret", 0o600)
    os.symlink("search/index.sqlite3", logs / "index-link")
    os.symlink(logs / "keys" / "server.key_secret", logs / "my-secret-key")  # absolute
    os.symlink("index-link", logs / "via-a-link")
    os.symlink("keys/server.key", logs / "my-public-key")  # held: kept as it is
    backup = tmp_path / "backup"
    done = persist("backup", str(backup), "--dir", str(logs), "--json")
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout)
    assert result["symlinks_left_out"] == [
        "index-link -> search/index.sqlite3 (leads to what backups leave out: "
        "search index (rebuilt from the journal: persist reindex))",
        "my-secret-key -> keys/server.key_secret (leads to what backups leave out: "
        "CURVE secret keys (--include-secret-keys))",
        "via-a-link -> index-link (leads to a link left out)",
    ]
    assert result["links_made_relative"] == []
    manifest = Manifest.read(backup)
    assert set(manifest.links) == {"current_session.jsonl", "my-public-key"}
    text = persist("backup", str(backup), "--dir", str(logs)).stdout
    (line,) = [t for t in text.splitlines() if t.startswith("symlinks left out: ")]
    assert "index-link -> search/index.sqlite3" in line and "via-a-link" in line
    restored = tmp_path / "r"
    back = persist("restore-backup", str(backup), str(restored))
    assert back.returncode == 0, back.stderr
    for name in ("index-link", "my-secret-key", "via-a-link"):
        assert not os.path.lexists(restored / name)
    assert (restored / "my-public-key").read_text() == "public"

    with_keys = tmp_path / "with-keys"
    done = persist("backup", str(with_keys), "--dir", str(logs), "--include-secret-keys", "--json")
    assert done.returncode == 0, done.stderr
    assert [s.split(" ")[0] for s in orjson.loads(done.stdout)["symlinks_left_out"]] == [
        "index-link",
        "via-a-link",
    ]
    assert Manifest.read(with_keys).links["my-secret-key"] == "keys/server.key_secret"
    restored = tmp_path / "r-keys"
    assert persist("restore-backup", str(with_keys), str(restored)).returncode == 0
    assert (restored / "my-secret-key").read_text() == "secret"

    # a backup made before this, holding such links: not made, named in one line
    raw = orjson.loads((backup / "manifest.json").read_bytes())
    raw["links"] |= {"index-link": "search/index.sqlite3", "via-a-link": "index-link"}
    (backup / "manifest.json").write_bytes(orjson.dumps(raw))
    restored = tmp_path / "r-old"
    back = persist("restore-backup", str(backup), str(restored))
    assert back.returncode == 0, back.stderr
    (line,) = [t for t in back.stdout.splitlines() if "index-link" in t]
    assert line == (
        "symlinks not made (what they lead to is not in the backup): "
        "index-link -> search/index.sqlite3; via-a-link -> index-link"
    )
    assert not os.path.lexists(restored / "index-link")
    assert not os.path.lexists(restored / "via-a-link")
    back = persist("restore-backup", str(backup), str(tmp_path / "r-json"), "--json")
    assert orjson.loads(back.stdout)["links_left_out"] == [
        "index-link -> search/index.sqlite3",
        "via-a-link -> index-link",
    ]


def test_a_backup_whose_object_or_manifest_is_a_fifo_is_damaged_not_waited_on(
    logs: Path, tmp_path: Path
) -> None:
    """An object of the backup replaced by a named pipe made restore-backup wait on it
    forever (opened without O_NONBLOCK, never checked to be a regular file); so did a
    manifest.json that is one."""
    backup = tmp_path / "backup"
    assert persist("backup", str(backup), "--dir", str(logs)).returncode == 0
    entry = next(e for e in Manifest.read(backup).files if e.path == "segments/seg-000001.jsonl")
    (backup / entry.object).unlink()
    os.mkfifo(backup / entry.object)
    done = subprocess.run(
        [PYTHON, "-m", "recorder.cli", "restore-backup", str(backup), str(tmp_path / "r")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 5, done.stderr
    assert done.stderr.splitlines() == [
        f"persist: the backup is damaged: {entry.path} ({backup / entry.object}) is a named "
        "pipe, not a regular file; nothing was restored"
    ]
    assert not (tmp_path / "r").exists()
    (backup / "manifest.json").unlink()
    os.mkfifo(backup / "manifest.json")
    done = subprocess.run(
        [PYTHON, "-m", "recorder.cli", "restore-backup", str(backup), str(tmp_path / "r")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 5, done.stderr
    assert done.stderr.splitlines() == [
        f"persist: {backup / 'manifest.json'} cannot be read (a named pipe, not a regular file)"
    ]
