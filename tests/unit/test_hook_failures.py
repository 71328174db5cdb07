"""Where hook failures are written down, and how `persist status` finds and counts them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recorder.hooks.failures import TAIL_BYTES, read_failures, record_failure


def test_a_folder_named_relative_or_through_a_symlink_finds_its_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry named its folder as the hook was given it; status compared strings."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "logs").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "logs")
    record_failure(Path("logs"), "Stop", "claude", "s1", "NotDelivered: nobody listened")
    for named in (Path("logs"), tmp_path / "logs", tmp_path / "link"):
        found = read_failures(named)
        assert found.total == 1 and found.last.startswith("Stop (claude s1): NotDelivered")


def test_every_failure_of_the_folder_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Status read the last 64 KiB and gave that as the total (39 of 100)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    log_dir = tmp_path / "logs"
    for i in range(100):
        record_failure(log_dir, "Stop", "claude", f"s{i}", "x" * 1900)
    assert (log_dir / "hooks" / "failures.jsonl").stat().st_size > TAIL_BYTES
    found = read_failures(log_dir)
    assert (found.total, found.at_least) == (100, False)
    assert found.last.startswith("Stop (claude s99): ")


def test_the_shared_file_of_an_unusable_folder_says_at_least(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    log_dir = tmp_path / "a-file"
    log_dir.write_text("not a folder")
    for i in range(60):
        record_failure(log_dir, "Stop", "claude", f"s{i}", "y" * 1900)
    shared = tmp_path / "state" / "agent-persist" / "hook-failures.jsonl"
    assert shared.stat().st_size > TAIL_BYTES
    found = read_failures(log_dir)
    assert found.files == (shared,) and found.at_least and 0 < found.total < 60
    other = read_failures(tmp_path / "elsewhere")
    assert other.total == 0
    assert os.stat(shared).st_mode & 0o777 == 0o600


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_failures_are_private_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask: int
) -> None:
    """The log folder a failure creates, and the fallback file's folders, were made with
    the umask's mode (0777 under umask 000): now 0700, the file 0600."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    old = os.umask(umask)
    try:
        where = record_failure(tmp_path / "new" / "logs", "Stop", "claude", "s1", "boom")
        (tmp_path / "file").write_text("not a folder")
        fallback = record_failure(tmp_path / "file", "Stop", "claude", "s2", "boom")
    finally:
        os.umask(old)
    assert where == tmp_path / "new" / "logs" / "hooks" / "failures.jsonl"
    assert fallback is not None and fallback.is_relative_to(tmp_path / "state")
    for path in (where, fallback):
        assert path.stat().st_mode & 0o777 == 0o600
        for folder in path.relative_to(tmp_path).parents:
            if folder != Path("."):
                assert (tmp_path / folder).stat().st_mode & 0o777 == 0o700, folder


def test_a_relative_xdg_folder_is_ignored_as_the_spec_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """XDG_STATE_HOME=relstate was taken from the current folder: a hook run in an
    agent's project wrote `relstate/agent-persist/hook-failures.jsonl` into it. A
    relative value is ignored (the XDG spec), for every XDG folder we read."""
    from recorder.daemon.systemd import unit_dir
    from recorder.hooks.settings import lock_file
    from recorder.launch.demo import default_demo_dir
    from recorder.store.layout import standard_log_dir

    home = tmp_path / "home"
    project = home / "proj"
    project.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.setenv(var, "rel" + var)
    monkeypatch.chdir(project)
    (project / "a-file").write_text("not a folder")
    where = record_failure(project / "a-file", "UserPromptSubmit", "claude", "s1", "boom")
    assert where == home / ".local/state/agent-persist/hook-failures.jsonl"
    assert lock_file(project / "settings.json").is_relative_to(home / ".local/state")
    assert standard_log_dir() == home / ".local/share/agent-persist/conversation_logs"
    assert default_demo_dir() == home / ".local/share/agent-persist/demo"
    assert unit_dir() == home / ".config/systemd/user"
    assert sorted(p.name for p in project.iterdir()) == ["a-file"]
