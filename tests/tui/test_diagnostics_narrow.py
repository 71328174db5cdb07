"""Diagnostics explain themselves and fit 80x24: the health word stays in the top bar,
figures do not wrap, received vs written says where the difference went, the rate
graph has a scale."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.demo_journal import NOW, FixedProbe, healthy_status, write_status
from tests.screenshots import settle
from tests.tui_fixtures import SMALL, demo_dir, make_app, pilot_test, plain
from tui.screens.main import MainScreen


async def diagnostics_lines(root: Path, size: tuple[int, int]) -> list[str]:
    """The Diagnostics tab's lines as a person sees them, the app on `root` at `size`."""
    app = make_app(root)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        diag = app.screen.query_one("#diag")
        return [diag.render_line(y).text.rstrip() for y in range(diag.size.height)]


@pilot_test
async def test_diagnostics_at_80x24(tmp_path: Path) -> None:
    root = demo_dir(tmp_path, status=None)
    me = psutil.Process()
    status = healthy_status(root, NOW, me.pid, me.create_time())
    status["counts"].update(received=300, written=231, heartbeats=60, refused=1)
    status["broker"] = "ipc:///tmp/[b]bus"  # shown as it is, never as markup
    write_status(root, status)
    app = make_app(root)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        main = app.screen
        assert isinstance(main, MainScreen)
        bar = main.query_one("#top-bar")
        assert "healthy" in bar.render_line(0).text  # on screen, not pushed off by the path
        await pilot.press("4")
        for _ in range(3):  # a few samples: the rate graph appears with its scale
            main.diagnostics_pane.sample()
            await settle(pilot)
        diag = main.query_one("#diag")
        lines = [diag.render_line(y).text.rstrip() for y in range(diag.size.height)]
        text = "\n".join(lines)
        assert (
            "Received but not written as messages: 69 = 60 heartbeats + 1 message refused" in text
        )
        assert "8 dropped or not yet written" in text
        assert "ipc:///tmp/[b]bus" in text
        rate = next(line for line in lines if line.lstrip().startswith("Rate"))
        assert "received" in rate and "written" in rate  # one line, not wrapped
        title = plain(main.query_one("#rate-title"))
        assert "top " in title and "bottom " in title and "/s" in title


@pilot_test
async def test_diagnostics_list_every_endpoint_and_the_not_subscribed_window(
    tmp_path: Path,
) -> None:
    root = demo_dir(tmp_path, status=None)
    me = psutil.Process()
    status = healthy_status(root, NOW, me.pid, me.create_time())
    status["counts"].update(not_subscribed=41, not_subscribed_publishers=2)
    status["endpoints"] = [
        {"endpoint": "tcp://127.0.0.1:5556", "mode": "connect", "connection": "connected"},
        {"endpoint": "ipc:///tmp/b.pub", "mode": "connect", "connection": "disconnected"},
        {"endpoint": "tcp://127.0.0.1:7000", "mode": "bind", "connection": "listening", "peers": 3},
    ]
    status["counts"].update(unconfirmed=2)
    write_status(root, status)
    text = "\n".join(await diagnostics_lines(root, (120, 48)))
    assert "broker   tcp://127.0.0.1:5556  connected" in text
    assert "broker   ipc:///tmp/b.pub  disconnected" in text
    assert "bound at tcp://127.0.0.1:7000  listening, 3 publishers connected" in text
    assert "Not subscribed yet: 41 messages from 2 publishers were sent before" in text
    # publisher-silent records: publishers whose last messages no heartbeat confirmed
    assert "Unconfirmed  2 publishers fell silent unconfirmed: tail unknown" in text


@pilot_test
async def test_the_breakdown_counts_when_its_tab_is_shown_not_at_open(tmp_path: Path) -> None:
    root = demo_dir(tmp_path)
    index = root / "search" / "index.sqlite3"
    app = make_app(root)
    async with app.run_test(size=(120, 48)) as pilot:
        await settle(pilot)
        assert not index.exists()  # opening the app indexes nothing
        await pilot.press("4")
        await settle(pilot)
        text = plain(app.screen.query_one("#breakdown"))
    assert index.exists()
    assert text.startswith("Last 24 hours: ") and "sender" in text and "tier" in text
    assert "catching up" not in text


def test_the_last_days_breakdown_keeps_its_labels_when_values_are_long() -> None:
    """80 columns of long senders and topics: the values are cut, never the labels."""
    from datetime import UTC

    from rich.console import Console

    from recorder.search.stats import Stats
    from tui.text import Clock
    from tui.widgets.diagnostics_view import render_breakdown

    long = [(f"a-rather-long-name-{i}-of-an-agent", 10 - i) for i in range(6)]
    stats = Stats(None, None, records=45, first_ts=NOW - 3600, last_ts=NOW)
    stats.by = {"sender": long, "topic": long, "kind": long, "tier": [("6", 7), ("(none)", 38)]}
    for width in (80, 60):
        console = Console(width=width, file=open(os.devnull, "w"), record=True)  # noqa: SIM115
        console.print(render_breakdown(stats, Clock(lambda: NOW, UTC)))
        lines = console.export_text().splitlines()
        for key in stats.by:
            assert any(line.startswith(f"  {key}  ") for line in lines), lines


@pilot_test
async def test_a_breakdown_of_an_index_still_catching_up_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pane knew the index was behind and never said it: a partial count read as
    the day's total."""
    import tui.panes.diagnostics as pane

    monkeypatch.setattr(pane, "BREAKDOWN_CATCH_UP", 0.0)  # no time to index anything
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=(120, 48)) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        text = plain(app.screen.query_one("#breakdown"))
    assert "indexed yet" in text or "the index is catching up" in text, text


@pytest.mark.parametrize("size", [SMALL, (120, 36)])
@pilot_test
async def test_a_killed_recorder_shows_its_last_rate_as_the_last_not_as_now(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    """After `kill -9` the status file still says "recording" at 6.9/s: the recorder is
    gone, so the rate is none now, its last figures named as such, with their age."""
    root = demo_dir(tmp_path, status=None)
    gone = psutil.Popen(["true"])
    gone.wait()  # a PID that no longer runs
    status = healthy_status(root, NOW, gone.pid, NOW - 3600)
    status.update(updated=NOW - 23, rates={"received_per_s": 6.9, "written_per_s": 2.0})
    write_status(root, status)
    lines = await diagnostics_lines(root, size)
    text = "\n".join(lines)
    assert "gone without a clean stop" in text
    rate = next(line for line in lines if "Rate" in line)
    assert "none; last 6.9/s received, 2.0/s written, 23s ago" in rate, rate


@pytest.mark.parametrize("size", [SMALL, (120, 36)])
@pilot_test
async def test_a_stale_recorders_connection_is_as_last_heard_of(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    """Alive but silent for 8 s (SIGSTOP): its status's "connected" is from its last
    heartbeat, and Diagnostics said "Connection connected" as if it were now, where
    `persist status` said "(connected when last heard of)"."""
    root = demo_dir(tmp_path, status=None)
    me = psutil.Process()
    status = healthy_status(root, NOW, me.pid, me.create_time())
    status.update(updated=NOW - 8)
    status["endpoints"] = [
        {"endpoint": "tcp://127.0.0.1:5556", "mode": "connect", "connection": "connected"},
        {"endpoint": "tcp://127.0.0.1:7000", "mode": "bind", "connection": "listening", "peers": 3},
    ]
    write_status(root, status)
    lines = await diagnostics_lines(root, size)
    text = "\n".join(lines)
    assert "STALE" in text and "silent for 8.0s" in text, text
    connection = next(line for line in lines if "Connection" in line)
    assert "Connection  connected when last heard of" in connection, connection
    flat = " ".join(line.strip() for line in lines)  # 80 columns wrap the endpoints
    assert "broker   tcp://127.0.0.1:5556  connected when last heard of" in flat, text
    assert "7000  listening, 3 publishers connected when last heard of" in flat, text


@pilot_test
async def test_a_monitor_child_that_ended_is_a_warning_with_its_count(tmp_path: Path) -> None:
    """The recorder's session monitor child ended and waits to be started again (the
    keeper's `sessions/monitor-child.json`, test_monitor_in_recorder): the diagnostics
    say so, how many times and how; they said nothing (healthy, no warning)."""
    import orjson

    root = demo_dir(tmp_path, status=None)
    me = psutil.Process()
    write_status(root, healthy_status(root, NOW, me.pid, me.create_time()))
    child = {
        "parent": me.pid,
        "pid": None,
        "started": None,
        "restarts": 3,
        "last_error": "killed by SIGKILL",
        "failed": NOW - 1,
        "next_start": NOW + 7,
    }
    (root / "sessions").mkdir(exist_ok=True)
    (root / "sessions" / "monitor-child.json").write_bytes(orjson.dumps(child))
    text = " ".join(line.strip() for line in await diagnostics_lines(root, (160, 48)))
    assert "session monitor not running: the recorder's session monitor" in text, text
    assert "ended: killed by SIGKILL (3 times since the recorder started)" in text, text


@pilot_test
async def test_the_last_24_hours_end_now_and_name_the_messages_stamped_later(
    tmp_path: Path,
) -> None:
    """ "Last 24 hours" had no upper bound: a journal stamped days ahead of the clock (a
    clock set back, a copied journal) showed those days under that label."""
    from tests.demo_journal import DemoWriter

    root = tmp_path / "logs"
    w = DemoWriter.open(root)
    for i in range(3):
        w.message(NOW - 3600 + i, "coder", f"within the last day {i}")
    for i in range(5):
        w.message(NOW + 2 * 86400 + i, "reviewer", f"stamped ahead {i}")
    w.close()
    app = make_app(root)
    async with app.run_test(size=(120, 48)) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        text = plain(app.screen.query_one("#breakdown"), width=120)
    assert text.startswith("Last 24 hours: 3 messages  2024-05-15 11:00:00 → "), text
    assert "5 messages after now, not counted: 2024-05-17 12:00:00 → " in text
    assert "reviewer" not in text


class FailingProbe(FixedProbe):
    """A probe whose samples fail once `failing` is set (a bug, a folder half read)."""

    failing = False

    def collect(self, log_dir: Path, now: float) -> Any:
        if self.failing:
            raise OSError(5, "Input/output error")
        return super().collect(log_dir, now)


@pilot_test
async def test_a_failed_sample_shows_the_health_unknown_not_the_last_one(tmp_path: Path) -> None:
    """The top bar went on saying "healthy" from the sample before one that failed
    (before 2026-12-08); the health is unknown until a sample reads it again."""
    probe = FailingProbe()
    app = make_app(demo_dir(tmp_path, status="healthy"), probe=probe)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        assert "● healthy" in plain(screen.query_one("#top-bar"))
        probe.failing = True
        await pilot.press("4")  # a sample as the tab is shown
        await settle(pilot)
        assert "? unknown" in plain(screen.query_one("#top-bar"))
        diag = " ".join(plain(screen.query_one("#diag")).split())
        assert (
            "? UNKNOWN could not read the recorder's state: [Errno 5] Input/output error" in diag
        ), diag
        probe.failing = False
        screen.diagnostics_pane.sample()
        await settle(pilot)
        assert "● healthy" in plain(screen.query_one("#top-bar"))
