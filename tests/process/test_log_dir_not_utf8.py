"""A log folder whose name is not UTF-8 (names are bytes on Linux: a Latin-1 `é`, byte
0xE9, which Python reads as the lone surrogate U+DCE9): recorded into and read like any
other, in a UTF-8 locale whose stdout refuses what is not UTF-8; and a locale that is
not UTF-8 (Latin-1), whose stdout refuses most of what a message holds."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import orjson
import pytest

from recorder.bus.publisher import Publisher
from tests.support import PYTHON, Bus, read_status, wait_for

pytestmark = pytest.mark.timeout(180)

LATIN1 = "caf\udce9"  # b"caf\xe9"


def persist(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "recorder.cli", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=120,
        cwd=cwd,
        env=env,
    )


def test_a_log_folder_not_named_in_utf8_is_recorded_into_and_read(
    tmp_path: Path, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recorder stopped at start ("TypeError: str is not valid UTF-8": its status.json),
    and search, reindex, stats, doctor were a UnicodeEncodeError traceback (the search
    index's SQLite URI), status --json, restore and backup a TypeError."""
    monkeypatch.setenv("PYTHONIOENCODING", "utf-8:strict")  # what a UTF-8 locale gives
    log_dir = tmp_path / LATIN1
    bus.log_dir = log_dir
    bus.start_broker()
    bus.start_recorder()
    with Publisher(bus.front, agent="coder") as pub:
        assert pub.wait_ready(5)
        pub.send("agents.coder", {"text": "redis timeout when connecting to the cache"})
        wait_for(
            lambda: (read_status(log_dir).get("counts") or {}).get("written", 0) >= 1,
            what="the message written",
        )
    shown = os.fsencode(log_dir).decode("utf-8", "backslashreplace")  # ...caf\xe9
    out = persist("status", "--json", "--log-dir", str(log_dir))
    assert out.returncode == 0, out.stdout + out.stderr
    assert orjson.loads(out.stdout)["log_dir"] == shown
    out = persist("status", "--log-dir", str(log_dir))
    assert out.returncode == 0 and str(log_dir) in out.stdout, out.stderr
    assert persist("checkpoint", "--label", "first", "--log-dir", str(log_dir)).returncode == 0
    assert persist("stop", "--log-dir", str(log_dir)).returncode == 0
    runs = [
        ["search", "redis"],
        ["search", "redis", "--json"],
        ["reindex"],
        ["stats"],
        ["stats", "--json"],
        ["doctor", "--dir"],
        ["export", "latest", "--format", "md"],
        ["restore", "latest"],
        ["backup", str(tmp_path / "backup")],
        ["status"],
    ]
    for argv in runs:
        args = [*argv, str(log_dir)] if argv[-1] == "--dir" else [*argv, "--log-dir", str(log_dir)]
        out = persist(*args)
        assert "Traceback" not in out.stderr, (argv, out.stderr)
        code = {"status": 3, "doctor": 8}.get(argv[0], 0)  # stopped: said, a warning
        assert out.returncode == code, (argv, out.stderr)
        if argv[0] == "search":
            assert "redis timeout" in out.stdout, out.stdout
    assert (log_dir / "restore").is_dir()
    assert orjson.loads((tmp_path / "backup" / "manifest.json").read_bytes())["files"]


def test_a_log_folder_from_the_environment_not_in_utf8(tmp_path: Path) -> None:
    """PERSIST_LOG_DIR=$'\\xff' was a UnicodeEncodeError traceback in `persist search`."""
    env = {**os.environ, "PERSIST_LOG_DIR": "\udcff", "PYTHONIOENCODING": "utf-8:strict"}
    (tmp_path / "\udcff").mkdir(mode=0o700)
    # (argv, exit code): no journal there yet
    runs = [(["search", "x"], 0), (["status"], 3), (["stats"], 1), (["reindex"], 1)]
    for argv, code in runs:
        out = persist(*argv, cwd=tmp_path, env=env)
        assert "Traceback" not in out.stderr, (argv, out.stderr)
        assert out.returncode == code, (argv, out.stderr)


def test_what_must_name_it_in_utf8_text_refuses_it_in_one_line(tmp_path: Path) -> None:
    """The agents' settings.json and a systemd unit are UTF-8 text: `hooks install` wrote
    the name as a `\\udce9` escape, which the agent reads as another folder's name, and
    `service install` was a UnicodeEncodeError traceback. Both refuse it, exit 2, and
    write nothing."""
    log_dir = tmp_path / LATIN1
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "PYTHONIOENCODING": "utf-8:strict"}
    env.pop("CLAUDE_CONFIG_DIR", None)
    units = tmp_path / "units"
    for argv in (
        ["hooks", "install", "claude", "--log-dir", str(log_dir)],
        ["service", "install", "--unit-dir", str(units), "--print-only", "--log-dir", str(log_dir)],
    ):
        out = persist(*argv, env=env)
        assert out.returncode == 2, (argv, out.stdout, out.stderr)
        lines = out.stderr.splitlines()
        assert len(lines) == 1 and "is not valid UTF-8 (byte 0xe9 at character" in lines[0], lines
        assert "caf\\xe9" in lines[0], lines[0]  # the name as the shell takes it back
    assert not (home / ".claude").exists() and not units.exists()


SHOWN_TEXT = "日本語 → emoji 🎉 café"


def test_a_locale_that_is_not_utf8_never_ends_a_command_in_a_traceback(tmp_path: Path) -> None:
    """Under a Latin-1 locale (stdout encoded as Latin-1, refusing the rest) restore,
    stats and search were a UnicodeEncodeError traceback, exit 1: a "→" of their own
    (restore after its bundle was written) or of a message. A character the locale
    cannot show is escaped (`\\u2192`), a folder's name not UTF-8 printed as its bytes;
    JSON stays JSON, of the same values."""
    import time

    from tests.demo_journal import DemoWriter

    log_dir = tmp_path / LATIN1
    w = DemoWriter.open(log_dir)
    now = time.time()
    w.message(now - 3, "ag→nt", SHOWN_TEXT, topic="tøpic→")
    w.checkpoint(now - 2, "étape → 🎉", "manual")
    w.close()  # no recorder: status says stopped
    env = {**os.environ, "PYTHONIOENCODING": "latin-1"}  # what a Latin-1 locale gives
    runs = [
        (["restore", "latest"], 0),
        (["stats"], 0),
        (["search", "emoji"], 0),
        (["checkpoints"], 0),
        (["status"], 3),
        (["sessions"], 0),
        (["export", "latest", "--format", "md"], 0),
    ]
    for argv, code in runs:
        out = persist(*argv, "--log-dir", str(log_dir), env=env)
        assert "Traceback" not in out.stderr, (argv, out.stderr)
        assert out.returncode == code, (argv, out.stdout, out.stderr)
    out = persist("search", "emoji", "--log-dir", str(log_dir), env=env)
    assert "\\u2192 emoji" in out.stdout, out.stdout
    out = persist("export", "latest", "--format", "md", "--log-dir", str(log_dir), env=env)
    assert SHOWN_TEXT in out.stdout  # a file's bytes: UTF-8, whatever the locale
    out = persist("restore", "latest", "--log-dir", str(log_dir), env=env)
    restored = next(line for line in out.stdout.splitlines() if "restore" in line)
    assert str(log_dir) in restored  # its bytes (read back here as surrogates): é in Latin-1
    for argv in (["search", "emoji"], ["stats"], ["checkpoints"], ["status"]):
        out = persist(*argv, "--json", "--log-dir", str(log_dir), env=env)
        assert out.returncode in (0, 3) and "Traceback" not in out.stderr, (argv, out.stderr)
        value = json.loads(out.stdout.encode("latin-1", "surrogateescape"))
        assert out.stdout.isascii(), out.stdout  # JSON any reader takes, in any encoding
        if argv[0] == "search":
            assert value["hits"][0]["topic"] == "tøpic→", value
        if argv[0] == "checkpoints":
            assert value["checkpoints"][0]["label"] == "étape → 🎉", value
