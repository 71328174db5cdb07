"""The conversation view: Enter on a checkpoint opens the transcript around it; j/k per
message, t jumps to a time, Enter shows the record ( ] steps on), v/y/e copy and export
a range, n/N step through matches plugged in with `set_matches`; only what is on
screen is read."""

from __future__ import annotations

import random
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from recorder.store import secrets as S
from recorder.store.records import encode_frames
from tests.demo_journal import BASE_TS, DemoWriter
from tests.screenshots import settle
from tests.secret_samples import make
from tests.tui_fixtures import SIZE, make_app, pilot_test, plain, wait_until
from tui.screens.conversation import ConversationScreen
from tui.screens.detail import DetailScreen
from tui.screens.main import MainScreen
from tui.widgets.conversation_view import ConversationView

MESSAGES = 30_000


def long_journal(root: Path) -> None:
    """30,000 messages, a minute apart, a heartbeat after every one, checkpoints."""
    w = DemoWriter.open(root)
    beat = encode_frames(
        [b"_persist.heartbeat", orjson.dumps({"_persist": {"pub": "p", "seq": 1, "hb": True}})]
    )
    for i in range(MESSAGES):
        ts = BASE_TS + 60 * i
        extra = {"thinking": "let me think " * 50} if i == 15_001 else None
        w.message(ts, ("planner", "coder")[i % 2], f"message number {i}", extra=extra)
        w.journal.append({"kind": "heartbeat", "ts": ts + 1, "topic": "_persist.heartbeat"}, beat)
        if i in (10_000, 15_000):
            w.checkpoint(ts + 2, f"after {i}", "manual")
    w.close()


async def conversation_of_the_first_checkpoint(pilot: Any) -> ConversationView:
    """Enter on the highlighted checkpoint: the conversation view it opens."""
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)
    conv = pilot.app.screen
    assert isinstance(conv, ConversationScreen)
    return conv.view


def screen_text(view: ConversationView) -> str:
    return "\n".join(
        "".join(seg.text for seg in view.render_line(y)) for y in range(view.size.height)
    )


@pilot_test
async def test_conversation_around_a_checkpoint(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    long_journal(root)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = app.screen
        assert isinstance(main, MainScreen)
        store = app.journal.store
        assert store is not None
        reads = [0]
        record = store.record

        def counting(index: int):  # type: ignore[no-untyped-def]
            reads[0] += 1
            return record(index)

        store.record = counting  # type: ignore[method-assign]
        await pilot.press("enter")  # the newest checkpoint: "after 15000"
        await settle(pilot)
        conv = app.screen
        assert isinstance(conv, ConversationScreen)
        view = conv.view
        assert reads[0] < 400, reads[0]  # a screenful, not 60,000 records
        text = screen_text(view)
        assert "message number 15000" in text and "◆ checkpoint: after 15000" in text
        assert "HEARTBEAT" not in text
        assert store.record(view.selected).get("kind") == "msg"
        assert "15000" in store.record(view.selected).payload["text"]
        # j: the next message (the heartbeat between is skipped); thinking is folded.
        await pilot.press("j")
        assert store.record(view.selected).payload["text"] == "message number 15001"
        assert "▸ thinking (650 characters, folded)" in screen_text(view)
        await pilot.press("z")
        assert "let me think let me think" in screen_text(view)
        await pilot.press("k", "k")
        assert store.record(view.selected).payload["text"] == "message number 14999"
        # t: jump to a time.
        target = datetime.fromtimestamp(BASE_TS + 60 * 20_000, UTC).strftime("%Y-%m-%d %H:%M")
        await pilot.press("t")
        await pilot.pause()
        for ch in target:
            await pilot.press("space" if ch == " " else ch)
        await pilot.press("enter")
        await settle(pilot)
        assert store.record(view.selected).payload["text"] == "message number 20000"
        # Enter: the record in full; ] steps to the next turn, and the view follows.
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        await pilot.press("right_square_bracket")
        await pilot.pause()
        assert app.screen.record.payload["text"] == "message number 20001"
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is conv and store.record(view.selected).payload["text"].endswith("20001")
        # v marks, j j extends, y copies (clipboard and a file), e exports the range.
        await pilot.press("v", "j", "j", "y")
        await wait_until(pilot, lambda: conv.job is None, "the copy")
        assert app.clipboard.count("message number 2000") == 3
        copies = list((root / "exports").glob("copy-*.jsonl"))
        assert len(copies) == 1
        lines = copies[0].read_bytes().splitlines()
        assert [orjson.loads(x)["frames"][1]["json"]["text"] for x in lines] == [
            "message number 20001",
            "message number 20002",
            "message number 20003",
        ]
        assert copies[0].stat().st_mode & 0o777 == 0o600
        await pilot.press("e")
        await wait_until(pilot, lambda: conv.job is None, "the export")
        (md,) = list((root / "exports").glob("conversation-*.md"))
        assert md.read_text().count("message number 2000") == 3
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


@pilot_test
async def test_search_matches_plug_in(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    long_journal(root)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        view = await conversation_of_the_first_checkpoint(pilot)
        store = app.journal.store
        assert store is not None
        hits = [
            r.index for r in store.records(29_000) if r.is_message and "2999" in r.payload["text"]
        ]
        view.set_matches(hits, lambda text: [m.span() for m in re.finditer("2999", text)])
        await pilot.press("n")
        assert view.selected == hits[0]
        await pilot.press("n")
        assert view.selected == hits[1]
        await pilot.press("N")
        assert view.selected == hits[0]


@pilot_test
async def test_a_secret_is_redacted_in_the_preview_and_the_conversation(tmp_path: Path) -> None:
    """The checkpoint preview and the conversation view show a message's secrets as
    `[REDACTED:kind]` with a `[secret]` badge, as Recent rows do (the record view, Enter,
    shows the record as stored)."""
    key = make(S.AWS, random.Random(4)).secret
    root = tmp_path / "logs"
    w = DemoWriter.open(root)  # writes no meta.secrets: the view scans the record itself
    w.message(BASE_TS, "planner", "plan the rollout")
    w.message(BASE_TS + 60, "coder", f"deploying with {key} as asked")
    w.checkpoint(BASE_TS + 120, "after the deploy", "manual")
    w.close()
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = app.screen
        assert isinstance(main, MainScreen)
        preview = plain(main.query_one("#preview"))
        assert "deploying with" in preview and key not in preview
        assert "[REDACTED:aws-access-key-id]" in preview and "[secret]" in preview
        await pilot.press("enter")
        await settle(pilot)
        conv = app.screen
        assert isinstance(conv, ConversationScreen)
        text = screen_text(conv.view)
        assert "deploying with" in text and key not in text
        assert "[REDACTED:aws-access-key-id]" in text and "[secret]" in text


@pilot_test
async def test_backing_out_of_the_restore_dialog_returns_to_the_conversation(
    tmp_path: Path,
) -> None:
    from tests.tui_fixtures import demo_dir
    from tui.screens.restore import RestoreScreen

    app = make_app(demo_dir(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("enter")  # the highlighted checkpoint's conversation
        await settle(pilot)
        conv = app.screen
        assert isinstance(conv, ConversationScreen)
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, RestoreScreen)
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is conv  # still reading where it was


@pilot_test
async def test_copying_and_exporting_a_big_range_runs_on_a_thread_with_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """v at the first turn, G, y: the 30,000 turns (60,000 records with the heartbeats)
    are copied on a thread: the status line shows how far it got, keys still move the
    view meanwhile (the copy is held at its first progress report until they did), the
    file holds every stored line and the clipboard nothing (too big); e exports the
    same range as Markdown the same way."""
    from tui.screens import conversation

    gate = threading.Event()
    for name in ("copy_turns", "export_turns"):
        real = getattr(conversation, name)

        def held(*args: Any, real: Any = real) -> Any:
            *head, progress = args

            def report(done: int) -> bool:
                going = bool(progress(done))
                gate.wait(10)
                return going

            return real(*head, report)

        monkeypatch.setattr(conversation, name, held)
    root = tmp_path / "logs"
    long_journal(root)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        view = await conversation_of_the_first_checkpoint(pilot)
        conv = app.screen
        assert isinstance(conv, ConversationScreen)
        store = app.journal.store
        assert store is not None
        status = conv.query_one("#conversation-status")
        await pilot.press("g", "v", "G")
        await pilot.pause()
        assert re.search(r"range: 59,9\d\d records", plain(status))  # not counted per key
        await pilot.press("y")
        await wait_until(pilot, lambda: "copying… 3%" in plain(status), "the progress")
        await pilot.press("k")  # the view still answers
        assert store.record(view.selected).payload["text"] == "message number 29998"
        gate.set()
        await wait_until(pilot, lambda: conv.job is None, "the copy")
        assert "copying" not in plain(status)
        (copy,) = list((root / "exports").glob("copy-*.jsonl"))
        lines = copy.read_bytes().splitlines()
        assert len(lines) == MESSAGES  # the range when y was pressed (k came after)
        assert orjson.loads(lines[-1])["frames"][1]["json"]["text"] == "message number 29999"
        assert not app.clipboard  # 30,000 turns are more than OSC 52 takes
        gate.clear()
        await pilot.press("e")
        await wait_until(pilot, lambda: "exporting… 3%" in plain(status), "the progress")
        gate.set()
        await wait_until(pilot, lambda: conv.job is None, "the export")
        (md,) = list((root / "exports").glob("conversation-*.md"))
        text = md.read_text()
        assert "message number 0\n" in text and "message number 29998\n" in text
        assert "message number 29999" not in text  # the range now ends where k left it
        assert "heartbeat" not in text.lower()


@pilot_test
async def test_jumping_to_a_time_says_where_it_landed(tmp_path: Path) -> None:
    """`t` to a time after the last record lands on the last turn and says nothing was
    recorded then (not "At <the time asked>"); between two turns it names the one's time."""
    root = tmp_path / "logs"
    w = DemoWriter.open(root)
    for i in range(5):
        w.message(BASE_TS + 600 * i, "coder", f"message {i}")
    w.checkpoint(BASE_TS + 3000, "end", "manual")
    w.close()
    app = make_app(root)
    said: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.notify = lambda message, **_kw: said.append(message)  # type: ignore[method-assign]
        await pilot.press("enter")
        await settle(pilot)
        conv = app.screen
        assert isinstance(conv, ConversationScreen)

        async def jump(text: str) -> str:
            await pilot.press("t")
            await pilot.pause()
            await pilot.press(*["space" if ch == " " else ch for ch in text], "enter")
            await settle(pilot)
            return said[-1]

        stamp = app.clock.stamp
        after = await jump("2030-01-01 10:00")
        last = stamp(BASE_TS + 2400)
        assert (
            after == f"Nothing recorded at or after 2030-01-01 10:00:00: at the last turn, {last}"
        )
        between = datetime.fromtimestamp(BASE_TS + 60, UTC).strftime("%Y-%m-%d %H:%M")
        assert await jump(between) == (
            f"At {stamp(BASE_TS + 600)}, the first turn at or after {between}:00"
        )
        exact = datetime.fromtimestamp(BASE_TS + 1200, UTC).strftime("%Y-%m-%d %H:%M")
        assert await jump(exact) == f"At {exact}:00"


@pilot_test
async def test_a_folded_long_turn_says_how_long_it_is(tmp_path: Path) -> None:
    """The folded note counted the rows of the first 4,000 characters only: a message
    of 60,000 lines said "… 29 more lines"."""
    root = tmp_path / "logs"
    w = DemoWriter.open(root)
    w.message(BASE_TS, "coder", "\n".join(f"row {i}" for i in range(60_000)))
    w.message(BASE_TS + 1, "planner", "short " * 300)  # 1,800 characters, one paragraph
    w.checkpoint(BASE_TS + 2, "end", "manual")
    w.close()
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        view = await conversation_of_the_first_checkpoint(pilot)
        index = next(i for i in range(len(view.store)) if view.turn(i).text.startswith("row 0"))

        def note(i: int) -> str:
            return "".join(seg.text for seg in view._turn_strips(i, 100)[-2]).strip(" ▌┃")

        assert note(index) == (
            "… more: 60,000 lines, 588,889 characters in all (z unfolds, Enter shows the record)"
        )
        view.select(index)
        view.action_fold()  # unfolded: 64 KiB of it, and where the rest is
        assert (
            note(index)
            == "… more: 60,000 lines, 588,889 characters in all (Enter shows the record)"
        )
        # a turn drawn whole but taller than the fold counts its hidden rows, as before
        rows = ["".join(seg.text for seg in strip) for strip in view._turn_strips(index + 1, 100)]
        assert any(re.search(r"… \d+ more lines \(z unfolds", row) for row in rows), rows


@pilot_test
async def test_page_down_scrolls_through_an_unfolded_turn_taller_than_the_screen(
    tmp_path: Path,
) -> None:
    """An unfolded turn of 300 rows showed its first screenful only: page down selected
    the last turn on screen, which was that same turn, and nothing moved."""
    root = tmp_path / "logs"
    w = DemoWriter.open(root)
    w.message(BASE_TS, "planner", "before")
    w.message(BASE_TS + 1, "coder", "\n".join(f"row {i}" for i in range(300)))
    w.message(BASE_TS + 2, "planner", "after the long one")
    w.checkpoint(BASE_TS + 3, "end", "manual")
    w.close()
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        view = await conversation_of_the_first_checkpoint(pilot)
        long = next(i for i in range(len(view.store)) if view.turn(i).text.startswith("row 0"))
        view.select(long)
        await pilot.press("z")
        await settle(pilot)
        seen: set[int] = set()
        for _ in range(40):
            text = screen_text(view)
            seen |= {int(n) for n in re.findall(r"\brow (\d+)\b", text)}
            if "after the long one" in text and view.selected != long:
                break
            assert view.selected == long
            await pilot.press("pagedown")
            await settle(pilot)
        assert seen == set(range(300))  # every row was on screen, in some page
        assert view.selected > long and view.scroll == 0
        view.select(long)
        for _ in range(3):
            await pilot.press("pagedown")
            await settle(pilot)
        assert view.scroll > 0 and "row 0\n" not in screen_text(view) + "\n"
        for _ in range(3):
            await pilot.press("pageup")
            await settle(pilot)
        assert view.selected == long and view.scroll == 0
        assert re.search(r"\brow 0\b", screen_text(view))
        await pilot.press("j")  # moving by message starts the next turn at its top
        await settle(pilot)
        assert view.selected > long and view.scroll == 0
