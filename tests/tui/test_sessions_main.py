"""Agent sessions in the main browser: search hits with their source (ctrl+o filters by
source) that open the session's conversation at the hit, and the monitor's checkpoints
of sessions in the timeline with a source column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input

from recorder.sources.discover import Roots, scan
from recorder.sources.monitor import Decision, Monitor, MonitorSettings
from recorder.store.layout import Layout
from tests.screenshots import settle
from tests.session_fixtures import ClaudeSession, text
from tests.tui_fixtures import (
    SIZE,
    demo_dir,
    make_app,
    pilot_test,
    plain,
    wait_for_session_conversation,
    wait_until,
)
from tui.panes.search import ResultList, SearchPane, cycle_source
from tui.screens.session_conversation import SessionConversationScreen
from tui.widgets.checkpoint_list import CheckpointList
from tui.widgets.conversation_view import ConversationView


def agents_at(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Claude Code's folder under `tmp`; no Gemini CLI or Codex sessions."""
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp / "claude"))
    monkeypatch.setenv("GEMINI_CLI_HOME", str(tmp / "no-gemini"))
    monkeypatch.setenv("CODEX_HOME", str(tmp / "no-codex"))


async def searched(pilot: Any, word: str, hits: int) -> SearchPane:
    """The Search tab once `word` typed in it has found `hits` hits."""
    await settle(pilot)
    await pilot.press("2")
    pane = pilot.app.screen.query_one(SearchPane)
    await pilot.press(*word)
    await wait_until(pilot, lambda: len(pane.result_hits) == hits, f"{hits} hits")
    return pane


def claude_home(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> ClaudeSession:
    agents_at(tmp, monkeypatch)
    c = ClaudeSession(tmp / "claude", cwd="/home/me/web")
    for i in range(6):
        c.user(f"step {i}: " + ("tune the zeppelin cache" if i in (2, 4) else "carry on"))
        c.assistant(text(f"done with step {i}"))
    c.write()
    return c


def test_ctrl_o_cycles_the_source_filter_in_the_query() -> None:
    steps = []
    query = "cache -from:bob"
    for _ in range(5):
        query, source = cycle_source(query)
        steps.append((query, source))
    assert steps == [
        ("source:bus cache -from:bob", "bus"),
        ("source:claude cache -from:bob", "claude"),
        ("source:gemini cache -from:bob", "gemini"),
        ("source:codex cache -from:bob", "codex"),
        ("cache -from:bob", ""),
    ]
    assert cycle_source("") == ("source:bus ", "bus")
    assert cycle_source("source:claude source:bus x")[0] == "source:bus x"  # two: start over


@pilot_test
async def test_a_session_hit_opens_its_conversation_at_the_hit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = claude_home(tmp_path, monkeypatch)
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        pane = await searched(pilot, "zeppelin", 2)
        results = pane.query_one(ResultList)
        rows = [results.render_row(i, 100).plain for i in range(2)]
        assert all(r[14:21] == "claude " for r in rows), rows  # the source column
        await pilot.press("ctrl+o")  # source:bus: the session's hits go
        assert pane.query_one("#search-input", Input).value == "source:bus zeppelin"
        await wait_until(pilot, lambda: not pane.result_hits, "no hits")
        await pilot.press("ctrl+o")  # source:claude
        await wait_until(pilot, lambda: len(pane.result_hits) == 2, "the hits again")
        first = pane.result_hits[0]
        assert first.topic == f"claude:{c.session_id}"
        hit_seq = int((first.origin or "").rpartition("#")[2])
        await pilot.press("enter", "enter")  # to the results, then open the first one
        screen = await wait_for_session_conversation(pilot)
        view = screen.query_one(ConversationView)
        assert view.selected == hit_seq
        assert "tune the zeppelin cache" in view.store.record(view.selected).line.decode()
        status = plain(screen.query_one("#session-conversation-status"))
        assert "claude session" in status and f"message {hit_seq} of 0-11" in status
        assert "2 hits (n/N)" in status
        await pilot.press("n" if hit_seq == 4 else "N")
        await pilot.pause()
        assert view.selected == (8 if hit_seq == 4 else 4)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, SessionConversationScreen)


@pilot_test
async def test_session_checkpoints_sit_in_the_timeline_with_their_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = claude_home(tmp_path, monkeypatch)
    log_dir = demo_dir(tmp_path)
    layout = Layout(log_dir)
    roots = Roots(tmp_path / "claude", None, None)
    (session,) = scan(roots).sessions
    monitor = Monitor(roots, layout, MonitorSettings())
    decision = Decision(session.key, True, "idle 100%", {"idle": 1.0}, 0.2)
    cp = monitor.checkpoint(session, decision, session.last_ts or 0)
    app = make_app(log_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        cps = app.screen.query_one(CheckpointList)
        rows = [r for r in cps.rows if r.checkpoint is not None]
        assert cp.id in [r.checkpoint.id for r in rows if r.checkpoint]
        texts = {r.checkpoint.id: cps.render_row(cps.rows.index(r), 96).plain for r in rows}
        assert texts[cp.id][11:18] == "claude " and "monitor" in texts[cp.id]
        # its label ("claude 1a2b3c4d title") without the source the column shows
        assert cp.label.startswith("claude ")
        assert texts[cp.id][18:].startswith(cp.label.removeprefix("claude ")[:20])
        top = plain(app.screen.query_one("#top-bar"))
        assert f"· {len(rows) - 1} checkpoints + 1 of agent sessions" in top
        bus = [t for i, t in texts.items() if i != cp.id]
        assert bus and all(t[11:18] == "bus    " for t in bus)
        assert app.journal.checkpoints and cp.id not in {x.id for x in app.journal.checkpoints}
        assert cps.select_id(cp.id)
        await pilot.pause()
        preview = plain(app.screen.query_one("#preview"))
        assert f"claude:{c.session_id}" in preview and "Messages  12" in preview
        await pilot.press("enter")
        screen = await wait_for_session_conversation(pilot)
        assert screen.query_one(ConversationView).selected == 11


@pilot_test
async def test_r_on_a_session_checkpoint_gives_the_fork_command_as_it_is_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`r` on the monitor's checkpoint of a session whose id holds escape sequences
    showed `persist fork KEY --at N` with the key escaped: no shell turns that back
    into the key. It is `$'...'`-quoted, as a resume command is."""
    from tests.session_fixtures import gemini_legacy, gemini_messages, gemini_project

    hostile = "\x1b]0;IDTITLE\x07\x1b[2Jid"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "no-claude"))
    monkeypatch.setenv("GEMINI_CLI_HOME", str(tmp_path / "ghome"))
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "no-codex"))
    gemini_root = tmp_path / "ghome" / ".gemini"
    gemini_legacy(gemini_project(gemini_root, "/home/me/gem"), hostile, gemini_messages(2))
    log_dir = demo_dir(tmp_path)
    roots = Roots(None, gemini_root, None)
    (session,) = scan(roots).sessions
    monitor = Monitor(roots, Layout(log_dir), MonitorSettings())
    decision = Decision(session.key, True, "idle 100%", {"idle": 1.0}, 0.2)
    cp = monitor.checkpoint(session, decision, session.last_ts or 0)
    app = make_app(log_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.screen.query_one(CheckpointList).select_id(cp.id)
        await pilot.pause()
        await pilot.press("r")
        await settle(pilot)
        [shown] = [n.message for n in app._notifications]
        assert shown == "persist fork $'gemini:\\x1b]0;IDTITLE\\x07\\x1b[2Jid' --at 3"


@pilot_test
async def test_a_hit_in_one_of_two_folders_differing_in_case_opens_its_own_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One session id in two project folders whose names differ only in case: a hit
    was opened by its topic, kept in lower case, which names both (refused as
    ambiguous); its origin names the one it came from."""
    agents_at(tmp_path, monkeypatch)
    sid = "33333333-2222-3333-4444-555555555555"
    for cwd, words in (("/tmp/Pa", "tune the zeppelin cache"), ("/tmp/pa", "carry on")):
        c = ClaudeSession(tmp_path / "claude", cwd=cwd, session_id=sid)
        c.user(words)
        c.assistant(text(f"done in {cwd}"))
        c.write()
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await searched(pilot, "zeppelin", 1)
        await pilot.press("enter", "enter")
        screen = await wait_for_session_conversation(pilot)
        view = screen.query_one(ConversationView)
        assert "tune the zeppelin cache" in view.store.record(view.selected).line.decode()
        assert screen.row is not None and screen.row.session.project_path == "/tmp/Pa"
