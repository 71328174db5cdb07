"""The search pane: one engine for every surface (same hits as the CLI and the API),
typing never lost to shortcuts, Esc keeps the query, progress while indexing."""

from __future__ import annotations

import gc
import io
import os
from contextlib import redirect_stdout
from pathlib import Path

import orjson
import pytest
from textual.widgets import Input
from textual.widgets._footer import FooterKey

from recorder.cli.main import main as persist
from recorder.search.engine import search
from tests.demo_journal import BASE_TS, DemoClock, DemoWriter
from tests.screenshots import settle
from tests.tui_fixtures import SIZE, demo_dir, main_screen, make_app, pilot_test, plain
from tui.panes.search import RESULT_LIMIT
from tui.widgets.conversation_view import ConversationView

QUERIES = [
    "migration",
    '"schema migration"',
    "deploy OR rollback -cache",
    "migraton from:coder",  # a typo: fuzzy hits
    "mig* topic:chat",
    "kind:gap",
]


def cli_seqs(root: Path, query: str) -> list[int]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = persist(
            ["search", "--json", "--log-dir", str(root), "--limit", str(RESULT_LIMIT), query]
        )
    assert code == 0
    return [h["seq"] for h in orjson.loads(out.getvalue())["hits"]]


@pilot_test
async def test_cli_api_and_tui_give_the_same_hits(tmp_path: Path) -> None:
    root = demo_dir(tmp_path)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = main_screen(app)
        await pilot.press("slash")
        field = main.query_one("#search-input", Input)
        for query in QUERIES:  # pasted: typing is test_typing_never_loses_keys's
            field.value = query
            await settle(pilot, 0.4)
            tui = [h.seq for h in main.search_pane.result_hits]
            api = [h.seq for h in search(root, query, limit=RESULT_LIMIT).hits]
            assert tui, f"{query!r} found nothing"
            assert tui == api == cli_seqs(root, query), query


@pilot_test
async def test_typing_never_loses_keys_and_esc_keeps_the_query(tmp_path: Path) -> None:
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = main_screen(app)
        await pilot.press("slash")
        typed = "1234 /c?q jkgG rp from:x"  # every one a shortcut somewhere
        await pilot.press(
            *[{" ": "space", "/": "slash", "?": "question_mark"}.get(c, c) for c in typed]
        )
        await settle(pilot, 0.3)
        field = main.query_one("#search-input", Input)
        assert field.value == typed and main.active_tab == "search"
        await pilot.press("escape")  # one Esc: out of the field, the query kept
        assert not field.has_focus and field.value == typed
        assert main.query_one("#results").has_focus
        await pilot.press("escape")
        assert field.has_focus and field.value == typed


@pilot_test
async def test_bad_query_is_one_line_and_progress_while_indexing(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    w = DemoWriter.open(root, segment_bytes=256 * 1024, clock=DemoClock(BASE_TS))
    for i in range(30_000):
        w.message(BASE_TS + i, "bob", f"line {i} with some words to index, marker{i % 100}")
    w.close()
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = main_screen(app)
        await pilot.press("slash")
        # Pasted at once: one search, which finds the index behind (typed key by key,
        # the searches of "m", "ma"... would have caught it up before the last key).
        main.query_one("#search-input", Input).value = "marker7"
        seen: set[str] = set()
        for _ in range(400):
            await pilot.pause(0.05)
            status = plain(main.query_one("#search-status"))
            seen.add(status)
            result = main.search_pane.result
            if "indexing" not in status and result is not None and not result.behind:
                break
        assert any("indexing the journal" in s or "catching up" in s for s in seen), seen
        await settle(pilot)
        assert main.search_pane.result is not None
        result = main.search_pane.result
        assert (result.total, result.total_exact) == (200, False)  # 300 match: "200+"
        assert len(result.hits) == 200 and all("marker7" in h.snippet for h in result.hits)
        assert "200+ exact matches" in plain(main.query_one("#search-status"))
        await pilot.press("space", *"OR")
        await settle(pilot, 0.3)
        status = plain(main.query_one("#search-status"))
        assert "OR needs a word or phrase on each side" in status


@pilot_test
async def test_n_and_N_step_through_the_hits_in_the_conversation(tmp_path: Path) -> None:
    """Enter on a hit shows it in Recent; `o` opens the conversation there, where n/N
    move to the next and previous hit of the same search, in journal order."""
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = main_screen(app)
        await pilot.press("slash", *"migration")
        await settle(pilot, 0.4)
        hits = sorted(main.search_pane.hits)
        assert len(hits) >= 3
        middle = hits[len(hits) // 2]
        results = main.query_one("#results")
        results.focus()
        results.move_to(main.search_pane.hits.index(middle))  # type: ignore[attr-defined]
        await pilot.press("enter")
        await settle(pilot)
        assert main.active_tab == "recent"
        await pilot.press("o")
        await settle(pilot)
        view = app.screen.query_one(ConversationView)
        assert view.selected == middle
        await pilot.press("n")
        await settle(pilot)
        assert view.selected == hits[hits.index(middle) + 1]
        await pilot.press("N", "N")
        await settle(pilot)
        assert view.selected == hits[hits.index(middle) - 1]


@pilot_test
async def test_recent_lists_only_the_hits_in_filter_mode(tmp_path: Path) -> None:
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = main_screen(app)
        await pilot.press("slash", *"migration")
        await settle(pilot, 0.4)
        hits = sorted(main.search_pane.hits)
        results = main.query_one("#results")
        results.focus()
        await pilot.press("enter")
        await settle(pilot)
        recent = main.recent_pane
        everything = recent.messages.row_count
        assert everything > len(hits)
        await pilot.press("m")
        await settle(pilot)
        listed = [recent.messages.record_index(r) for r in range(recent.messages.row_count)]
        assert listed == hits
        assert f"only the {len(hits)} search hits" in plain(main.query_one("#recent-status"))
        await pilot.press("m")
        await settle(pilot)
        assert recent.messages.row_count == everything


pytestmark = pytest.mark.timeout(300)


@pilot_test
async def test_with_no_journal_yet_the_agents_sessions_are_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pane said "no journal to search yet" in a log folder no recorder wrote in,
    while `persist search` and the Recent pane found the agents' sessions there."""
    from tests.session_fixtures import ClaudeSession

    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    s = ClaudeSession(tmp_path / "claude")
    s.user("a pomodoro timer in rust, please")
    s.write()
    root = tmp_path / "logs"
    root.mkdir(mode=0o700)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = main_screen(app)
        await pilot.press("slash", *"pomodoro")
        await settle(pilot, 0.4)
        hits = main.search_pane.result_hits
        assert [h.session for h in hits] == [s.session_id], main.search_pane.search_state
        assert not (root / "segments").exists()


@pilot_test
async def test_every_row_shows_its_first_match_highlighted(tmp_path: Path) -> None:
    """A hit's snippet keeps about 50 characters before its match: after the time,
    source, sender and topic columns of an 80-column row, that cut the row before the
    match (`… the publi…`, no highlight). The row now leaves words out before the match
    (`…`) until it fits, counting cells, not characters (wide text, escapes)."""
    from rich.style import Style

    from tests.tui_fixtures import SMALL
    from tui.widgets.record_list import HIGHLIGHT

    root = tmp_path / "logs"
    w = DemoWriter.open(root, clock=DemoClock(BASE_TS))
    texts = {
        "planner": "New task from the user: rate-limit the public API to 100 requests per "
        "minute and split the work between the coder and the tester, then review it all.",
        "coder": "数据库迁移" * 12 + " then split the schema file in two, and rerun the suite",
        "tester": "\x1b[2J\x1b[31m" * 6 + "escapes before the word: split here, then more words",
        "reviewer": "split first, nothing to leave out",
    }
    for i, (sender, text) in enumerate(texts.items()):
        w.message(BASE_TS + i, sender, text)
    w.close()
    app = make_app(root)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        main = main_screen(app)
        await pilot.press("slash", *"split")
        await settle(pilot, 0.4)
        assert len(main.search_pane.result_hits) == 4
        results = main.query_one("#results")
        marked = Style.parse(HIGHLIGHT)
        rows: dict[str, tuple[str, list[str]]] = {}
        for strip in app.screen._compositor.render_strips():
            segments = [seg for seg in strip if not seg.control]
            shown = "".join(seg.text for seg in segments)
            sender = next((s for s in texts if f" {s[:9]}" in shown), None)
            if sender is None or strip.cell_length < results.size.width:
                continue
            # a match is yellow; on the cursor's row, whose colour wins, it stays bold
            lit = [
                seg.text
                for seg in segments
                if seg.style and (seg.style.bgcolor == marked.bgcolor or seg.style.bold)
            ]
            rows[sender] = (shown, lit)
        assert sorted(rows) == sorted(texts), rows
        for sender, (shown, lit) in rows.items():
            assert "split" in lit, (sender, shown)
            cut = sender != "reviewer"  # its match is at the start: nothing left out
            assert ("… " in shown or "…" in shown.split("split")[0]) is cut, shown
        assert "   …per minute and split the work between the c…" in rows["planner"][0]


@pytest.mark.parametrize("width", [80, 120])
@pilot_test
async def test_session_hits_show_the_session_id_as_recent_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    """At 80 columns every agent-session hit showed `claude` as its topic (its topic is
    `claude:<session id>`, cut to 6 cells), so sessions could not be told apart; at 120
    `claude:36d`. Now the session id, as the Recent pane shows it."""
    from tests.session_fixtures import claude_steps
    from tui.widgets.record_list import RecordList

    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    sessions = [claude_steps(tmp_path / "claude", 1, cwd=f"/home/me/p{i}") for i in range(2)]
    root = tmp_path / "logs"
    root.mkdir(mode=0o700)
    app = make_app(root)
    async with app.run_test(size=(width, 30)) as pilot:
        await settle(pilot)
        main = main_screen(app)
        await pilot.press("slash", *"carry")
        await settle(pilot, 0.4)
        results = main.query_one("#results")
        rows = [results.render_row(r, width).plain for r in range(2)]  # type: ignore[attr-defined]
        shown = {s.session_id for s in sessions for row in rows if f" {s.session_id[:6]}" in row}
        assert shown == {s.session_id for s in sessions}, rows
        await pilot.press("escape", "3", "ctrl+o")
        await settle(pilot, 0.4)
        recent = main.query_one("#recent").query_one(RecordList)
        listed = [recent.render_row(r, width).plain for r in range(recent.row_count)]
        for s in sessions:  # the same column, the same id
            assert any(f" {s.session_id[:6]}" in row for row in listed), listed


@pilot_test
async def test_every_way_to_the_search_keeps_the_query(tmp_path: Path) -> None:
    """`2` shows the Search tab as it was left: with hits, on them (`j` moves, `/` goes
    to the field); the field never selects its query on arrival (`/`, `2`, Esc), so
    the next key adds to it instead of replacing it. Before 2026-12-07 `2` focused the
    field with the query selected: `/` or `j` there replaced "migration" by "/" or "j"."""
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        main = main_screen(app)
        field = main.query_one("#search-input", Input)
        results = main.query_one("#results")
        await pilot.press("slash", *"migration")
        await settle(pilot, 0.4)
        hits = [h.seq for h in main.search_pane.result_hits]
        assert len(hits) >= 3
        await pilot.press("escape", "enter")  # the first hit in Recent
        await settle(pilot)
        assert main.active_tab == "recent"

        await pilot.press("2")
        await settle(pilot)
        assert main.active_tab == "search" and results.has_focus
        assert field.value == "migration"
        await pilot.press("j")  # a list key moves in the hits
        await settle(pilot, 0.2)
        assert field.value == "migration" and main.search_pane.results.cursor == 1
        await pilot.press("slash")  # the footer's "/ Search": to the field, query kept
        await settle(pilot, 0.2)
        assert field.has_focus and field.value == "migration"
        assert field.selection.is_empty and field.cursor_position == len("migration")
        assert [h.seq for h in main.search_pane.result_hits] == hits
        assert "no letters or digits" not in plain(main.query_one("#search-status"))
        await pilot.press("space", *"from:coder")  # typing adds to the query
        assert field.value == "migration from:coder"
        await pilot.press("escape", "escape")  # to the hits and back: kept, not selected
        assert field.has_focus and field.selection.is_empty
        await pilot.press("escape", "3", "slash")  # `/` from Recent: the same
        await settle(pilot, 0.2)
        assert field.has_focus and field.selection.is_empty
        await pilot.press("space", "x")
        assert field.value == "migration from:coder x"

        await pilot.press("ctrl+u")  # ctrl+u clears it
        await settle(pilot, 0.2)
        await pilot.press("escape", "1", "2")  # no query: `2` is the field, to type in
        await settle(pilot, 0.2)
        assert field.has_focus and main.active_tab == "search"
        await pilot.press("slash")  # the Search key there: nothing typed, no error
        await settle(pilot, 0.2)
        assert field.value == "" and "no letters" not in plain(main.query_one("#search-status"))
        await pilot.press(*"usr", "slash", *"bin")  # within a query `/` is typed
        assert field.value == "usr/bin"


@pilot_test
async def test_the_empty_query_hint_is_one_line_at_80_columns(tmp_path: Path) -> None:
    """The hint and the fuzzy switch share one line in an 80x24 terminal (before
    2026-12-07 the hint wrapped to a second line, pushing the hits down)."""
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        main = main_screen(app)
        await pilot.press("slash")
        await settle(pilot)
        status = main.query_one("#search-status")
        assert "Type to search" in plain(status) and "fuzzy on (ctrl+t)" in plain(status)
        assert status.size.height == 1, plain(status)


@pilot_test
async def test_searches_typed_leave_no_replaced_footer_keys_behind(tmp_path: Path) -> None:
    """Each key typed changes the bindings, and the footer is composed again: the keys
    it replaced must go. Footer's binding of each key's `compact` kept every one for as
    long as the app ran (~50 a search, 0.35-0.7 MB; a TUI left open grew without end)."""
    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash")
        for i in range(6):
            await pilot.press("ctrl+u", *f"deploy {i}")
            await settle(pilot, 0.3)
        gc.collect()
        keys = [o for o in gc.get_objects() if isinstance(o, FooterKey)]
        attached = [k for k in keys if k.is_attached]
        assert attached, "no footer key shown"
        assert len(keys) == len(attached), f"{len(keys) - len(attached)} replaced keys kept"


@pilot_test
async def test_a_segment_left_out_of_the_index_is_said_beside_the_hits(tmp_path: Path) -> None:
    """A closed segment the index left out (it cannot be read) holds messages no search
    finds: the status line says so, as `persist search` does, not a silent gap."""
    from recorder.store.layout import Layout, list_segments
    from tests.unit.test_search_index import write_journal

    root = tmp_path / "logs"
    write_journal(root, 400, segment_bytes=16 * 1024).close()
    for argv in (["compact"], ["reindex"]):
        with redirect_stdout(io.StringIO()):
            assert persist([*argv, "--log-dir", str(root)]) == 0
    second = list_segments(Layout(root))[1]
    assert second.name.endswith(".zst")
    with open(second, "r+b") as f:
        f.truncate(300)  # no trailer: it cannot be opened
    with redirect_stdout(io.StringIO()):
        assert persist(["reindex", "--log-dir", str(root)]) == 0  # records it left out
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = main_screen(app)
        await pilot.press("slash")
        main.query_one("#search-input", Input).value = "deployment"
        await settle(pilot, 0.4)
        assert main.search_pane.result_hits
        status = plain(main.query_one("#search-status"))
        assert "segment 2 unreadable, not searched" in status, status


@pilot_test
async def test_a_search_waiting_for_another_writer_says_so_and_shows_what_is_held(
    tmp_path: Path,
) -> None:
    """Another process holds the index's writers' lock (a `persist reindex`; a `flock`
    here) while the index lacks the newest record: the pane shows the hits the index
    holds at once and says it waits for that process (before 2026-12-07: "indexing the
    journal 0%", for as long as the lock was held), then searches again once it may."""
    import fcntl

    root = tmp_path / "logs"
    w = DemoWriter.open(root, clock=DemoClock(BASE_TS))
    w.message(BASE_TS, "bob", "the first zanzibar")
    w.close()
    with redirect_stdout(io.StringIO()):
        assert persist(["reindex", "--log-dir", str(root)]) == 0
    w = DemoWriter.open(root, clock=DemoClock(BASE_TS + 1))
    w.message(BASE_TS + 1, "bob", "the second zanzibar")
    w.close()
    lock = os.open(root / "search" / "index.lock", os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        app = make_app(root)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            main = main_screen(app)
            await pilot.press("slash")
            main.query_one("#search-input", Input).value = "zanzibar"
            status = ""
            for _ in range(400):
                await pilot.pause(0.05)
                status = plain(main.query_one("#search-status"))
                if "waiting for another process" in status:
                    break
            assert "waiting for another process updating the index" in status, status
            assert [h.snippet for h in main.search_pane.result_hits] == ["the first zanzibar"]
            os.close(lock)
            lock = -1
            for _ in range(400):
                await pilot.pause(0.05)
                if len(main.search_pane.result_hits) == 2:
                    break
            await settle(pilot)
            snippets = {h.snippet for h in main.search_pane.result_hits}
            assert snippets == {"the first zanzibar", "the second zanzibar"}
            assert "waiting" not in plain(main.query_one("#search-status"))
    finally:
        if lock >= 0:
            os.close(lock)
