"""The last checkpoint `persist status` and the TUI's Diagnostics name: the newest in
checkpoints/, also one `persist checkpoint` took while no recorder ran, and also when
status.json (derived, may be deleted) is gone. Real recorder and CLI processes, and
the app on the folder they left."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import orjson

from recorder.bus.publisher import Publisher
from tests.support import PYTHON, Bus, read_status, wait_for
from tests.tui.test_diagnostics_narrow import diagnostics_lines
from tests.tui_fixtures import pilot_test


def _cli(log_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "recorder.cli", argv[0], "--log-dir", str(log_dir), *argv[1:]],
        capture_output=True,
        text=True,
    )


def _recorded(bus: Bus, text: str, written: int) -> None:
    """`text` sent to the bus, and the recorder's count of written records at `written`."""
    with Publisher(bus.front, agent="a", heartbeat_interval=0) as pub:
        assert pub.wait_ready(5)
        pub.send("agents.a", {"text": text})
    wait_for(
        lambda: (read_status(bus.log_dir).get("counts") or {}).get("written", 0) >= written,
        what="written",
    )


def _folder_with_an_offline_checkpoint(bus: Bus) -> tuple[str, str]:
    """A recorder's checkpoint, then (the recorder stopped) one taken without it."""
    bus.start_broker()
    rec = bus.start_recorder()
    _recorded(bus, "hello one", 1)
    first = _cli(bus.log_dir, "checkpoint", "--label", "first with recorder", "--json")
    assert first.returncode == 0, first.stderr
    rec.signal(signal.SIGTERM)
    assert rec.wait(5) == 0
    second = _cli(bus.log_dir, "checkpoint", "--label", "second offline", "--json")
    assert second.returncode == 0, second.stderr
    return orjson.loads(first.stdout)["id"], orjson.loads(second.stdout)["id"]


def test_status_names_a_checkpoint_taken_while_no_recorder_ran(bus: Bus) -> None:
    first, second = _folder_with_an_offline_checkpoint(bus)
    out = _cli(bus.log_dir, "status")
    assert out.returncode == 3 and "Traceback" not in out.stderr, out.stderr
    assert f"checkpoint   {second} (" in out.stdout and first not in out.stdout
    data = orjson.loads(_cli(bus.log_dir, "status", "--json").stdout)
    assert data["last_checkpoint"]["id"] == second
    # status.json is derived: without it the checkpoint is still named
    (bus.log_dir / "status.json").unlink()
    out = _cli(bus.log_dir, "status")
    assert out.returncode == 3 and f"checkpoint   {second} (" in out.stdout, out.stdout


@pilot_test
async def test_diagnostics_name_the_newest_checkpoint(tmp_path: Path, bus: Bus) -> None:
    _folder_with_an_offline_checkpoint(bus)
    text = "\n".join(await diagnostics_lines(bus.log_dir, (120, 48)))
    assert "Last checkpoint: second offline ·" in text, text
    (bus.log_dir / "status.json").unlink()
    text = "\n".join(await diagnostics_lines(bus.log_dir, (120, 48)))
    assert "Last checkpoint: second offline ·" in text, text


def test_status_passes_over_a_newest_checkpoint_that_no_longer_reads_as_restore_does(
    bus: Bus,
) -> None:
    """status.json names the recorder's shutdown checkpoint; its file cut short, `persist
    status` still named it, with no warning, though `restore latest` passes over it and
    takes the one before. Now status names that one too, and says in one line why the
    newer file is not (also without status.json, and when the file is gone)."""
    bus.start_broker()
    rec = bus.start_recorder()
    _recorded(bus, "hello one", 1)
    first = _cli(bus.log_dir, "checkpoint", "--label", "first", "--json")
    assert first.returncode == 0, first.stderr
    first_id = orjson.loads(first.stdout)["id"]
    _recorded(bus, "hello two", 2)
    rec.signal(signal.SIGTERM)  # its shutdown checkpoint: status.json's last
    assert rec.wait(5) == 0
    last = read_status(bus.log_dir)["last_checkpoint"]["id"]
    assert last != first_id
    path = bus.log_dir / "checkpoints" / f"{last}.json"
    path.write_bytes(path.read_bytes()[:100])
    restored = _cli(bus.log_dir, "restore", "latest")
    assert restored.returncode == 0 and first_id in restored.stdout, restored
    warning = f"checkpoints/{last}.json is not a valid checkpoint (not JSON); skipped"
    for status_json in (True, False):
        out = _cli(bus.log_dir, "status")
        assert out.returncode == 3 and "Traceback" not in out.stderr, out.stderr
        assert f"checkpoint   {first_id} (" in out.stdout and last not in out.stdout.replace(
            warning, ""
        ), (status_json, out.stdout)
        assert out.stdout.count(f"  warning: {warning}\n") == 1, out.stdout
        data = orjson.loads(_cli(bus.log_dir, "status", "--json").stdout)
        assert data["last_checkpoint"]["id"] == first_id and warning in data["warnings"]
        if status_json:
            kept = (bus.log_dir / "status.json").read_bytes()
            (bus.log_dir / "status.json").unlink()
    (bus.log_dir / "status.json").write_bytes(kept)
    path.unlink()
    out = _cli(bus.log_dir, "status")
    assert f"checkpoint   {first_id} (" in out.stdout, out.stdout
    assert f"  warning: checkpoint {last} (status.json's last) is no longer in checkpoints/\n" in (
        out.stdout
    )
