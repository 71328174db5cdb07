"""The Recent list marks messages holding secrets (`[secret]`, values shown redacted) and
the record view names their kinds and places; records the recorder never scanned are
scanned when shown."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson

from recorder.store import secrets as S
from recorder.store.reader import Store
from recorder.store.records import encode_frames
from tests.demo_journal import BASE_TS, DemoWriter
from tests.screenshots import settle
from tests.secret_samples import make
from tests.tui_fixtures import SIZE, make_app, pilot_test
from tui.screens.detail import DetailScreen
from tui.screens.main import MainScreen

RND = random.Random(5)


def journal(root: Path) -> tuple[str, str]:
    """A clean message, one with a key named by the recorder's meta, one without meta."""
    key = make(S.GITHUB, RND).secret
    old = make(S.AWS, RND).secret
    w = DemoWriter.open(root)
    w.message(BASE_TS, "coder", "nothing secret here")
    payload = orjson.dumps({"text": f"token {key} works", "from": "coder"})
    start = payload.index(key.encode())
    w.journal.append(
        {
            "kind": "msg",
            "ts": BASE_TS + 1,
            "topic": "chat",
            "meta": {
                "sender": "coder",
                "chain": "message",
                "secrets": [
                    {"kind": S.GITHUB, "frame": 1, "start": start, "end": start + len(key)}
                ],
            },
        },
        encode_frames([b"chat", payload]),
    )
    w.message(BASE_TS + 2, "ops", f"aws id {old} (from before detection)")
    w.checkpoint(BASE_TS + 3, "end", "manual")
    w.close()
    return key, old


def row_text(messages: object, row: int) -> str:
    return str(messages.render_row(row, 160).plain)  # type: ignore[attr-defined]


async def open_recent(app: Any, pilot: Any) -> tuple[Any, Store]:
    """Tab 3 opened: the Recent pane's list and the journal's store."""
    await pilot.press("3")
    await pilot.pause()
    main = app.screen
    assert isinstance(main, MainScreen)
    store = app.journal.store
    assert store is not None
    return main.recent_pane.messages, store


@pilot_test
async def test_recent_rows_and_the_record_view_mark_secrets(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    key, old = journal(root)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        messages, store = await open_recent(app, pilot)
        rows = {}
        for rec in store.records():
            row = messages.row_of(rec.index)
            if rec.kind == "msg" and row is not None:
                rows[rec.index] = row_text(messages, row)
        texts = list(rows.values())
        assert len(texts) == 3
        assert "[secret]" not in texts[0] and "nothing secret here" in texts[0]
        assert "[secret]" in texts[1] and "[REDACTED:github-token]" in texts[1]
        assert key not in texts[1]
        assert "[secret]" in texts[2] and "[REDACTED:aws-access-key-id]" in texts[2]
        assert old not in texts[2]
        # The record view names kind and place; the frames below are as recorded.
        index = list(rows)[1]
        messages.move_to(messages.row_of(index) or 0)
        await pilot.press("enter")
        await pilot.pause()
        detail = app.screen
        assert isinstance(detail, DetailScreen)
        shown = detail.view.plain_text()
        assert f"⚠ 1 secret: {S.GITHUB} (frame 1, bytes" in shown
        assert "found now" not in shown
        assert key in shown  # the raw record, opened on purpose
        await pilot.press("right_square_bracket")
        await pilot.pause()
        shown = detail.view.plain_text()
        assert f"⚠ 1 secret: {S.AWS} (frame 1" in shown and "found now" in shown


def test_a_record_too_long_to_scan_whole_says_what_was_looked_at(tmp_path: Path) -> None:
    """A record the recorder did not scan, longer than the view scans: a key in its
    first MiB is named; one past it is not, and the view says it looked at the first
    MiB only instead of showing nothing, as for a clean record."""
    from datetime import UTC

    from recorder.store.reader import open_store
    from tui.screens.detail import VIEW_SCAN_BYTES, record_blocks
    from tui.text import Clock

    early, late = make(S.AWS, RND).secret, make(S.GITHUB, RND).secret
    pad = "x " * (VIEW_SCAN_BYTES // 2)
    root = tmp_path / "logs"
    w = DemoWriter.open(root)
    w.message(BASE_TS, "ops", f"aws id {early} {pad} token {late}")
    w.message(BASE_TS + 1, "ops", f"short, aws id {early}")
    w.close()
    store = open_store(root)
    shown = [
        " ".join(str(getattr(b.text, "plain", "")) for b in record_blocks(rec, Clock(tz=UTC)))
        for rec in store.records()
        if rec.kind == "msg"
    ]
    assert f"⚠ 1 secret: {S.AWS}" in shown[0] and S.GITHUB not in shown[0]
    assert "secrets looked for in its first 1 MiB only" in shown[0]
    assert f"⚠ 1 secret: {S.AWS}" in shown[1] and "first 1 MiB only" not in shown[1]


def sender_journal(root: Path) -> tuple[str, str]:
    """Messages whose sender is a key (one named by the recorder's meta, one the
    readers scan), before two checkpoints whose files name the senders as recorders
    wrote them before 2026-12-06: the first with the keys, the second none (the
    preview then counts the range's senders itself)."""
    named, found = make(S.AWS, RND).secret, make(S.GITHUB, RND).secret
    w = DemoWriter.open(root)
    w.message(BASE_TS, "planner", "plan the rollout", scan=True)
    w.message(BASE_TS + 60, named, "deploying now", scan=True)
    first = w.checkpoint(BASE_TS + 61, "deployed", "manual")
    w.message(BASE_TS + 120, found, "checking the deploy")
    second = w.checkpoint(BASE_TS + 121, "checked", "manual")
    w.close()
    for cp, participants in ((first, {"planner": 1, named: 1}), (second, {})):
        assert cp.path is not None
        data = orjson.loads(cp.path.read_bytes())
        cp.path.write_bytes(orjson.dumps({**data, "participants": participants}))
    return named, found


@pilot_test
async def test_a_secret_in_the_sender_is_redacted_as_the_text_is(tmp_path: Path) -> None:
    """A sender holding a key shows as `[REDACTED:kind]` in the Recent rows, the
    checkpoint list and preview (who spoke, and the range's own count of senders) and
    the conversation view, as the text does."""
    from tests.tui.test_conversation import screen_text
    from tests.tui_fixtures import plain
    from tui.screens.conversation import ConversationScreen
    from tui.widgets.checkpoint_list import CheckpointList

    root = tmp_path / "logs"
    keys = sender_journal(root)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = app.screen
        assert isinstance(main, MainScreen)
        cps = main.query_one("#cp-list", CheckpointList)
        listed = "\n".join(str(cps.render_row(row, 160).plain) for row in range(len(cps.rows)))
        previews = []
        for _ in range(2):  # the second checkpoint's preview, then the first's
            await settle(pilot)
            previews.append(plain(main.query_one("#preview")))
            await pilot.press("down")
        await pilot.press("enter")
        await settle(pilot)
        conv = app.screen
        assert isinstance(conv, ConversationScreen)
        conversation = screen_text(conv.view)
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("3")
        await pilot.pause()
        messages = main.recent_pane.messages
        store = app.journal.store
        assert store is not None
        rows = [messages.row_of(rec.index) for rec in store.records() if rec.kind == "msg"]
        recent = [row_text(messages, row) for row in rows if row is not None]
    aws, github = f"[REDACTED:{S.AWS}]", f"[REDACTED:{S.GITHUB}]"
    assert aws[:20] in listed  # a name cut to 20 there
    # the range's own count (the journal's, as the preview's counts are), as redacted
    assert f"previous checkpoint: {github} 1" in previews[0]
    assert f"previous checkpoint: {aws} 1 · planner 1" in previews[1]  # the journal agrees
    assert aws in conversation and github in conversation
    assert len(recent) == 3 and aws[:12] in recent[1] and github[:12] in recent[2]
    for text in (listed, *previews, conversation, *recent):
        for key in keys:
            assert key[:8] not in text, text


@pilot_test
async def test_a_damaged_line_shows_its_secret_redacted_whatever_its_bytes(
    tmp_path: Path,
) -> None:
    """A damaged line's Recent row shows its bytes: a key in it is `[REDACTED:kind]` with
    a `[secret]` badge, with bytes that are not UTF-8 in the line too (before, a damaged
    line's row was never scanned, and readers skipped a line that was not UTF-8)."""
    root = tmp_path / "logs"
    key = make(S.OPENAI, RND).secret
    w = DemoWriter.open(root)
    w.message(BASE_TS, "coder", "before")
    w.bad_line(b'{"v":1,"torn damagedword ' + key.encode() + b" \xff\xfe\n")
    w.bad_line(b'{"v":1,"torn plainword ' + key.encode() + b"\n")
    w.close()
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        messages, store = await open_recent(app, pilot)
        bad = [r.index for r in store.records() if r.data is None]
        rows = [messages.row_of(i) for i in bad]
        assert len(rows) == 2 and None not in rows
        for row in rows:
            text = row_text(messages, row or 0)
            assert "[secret]" in text and f"[REDACTED:{S.OPENAI}]" in text, text
            assert key not in text


@pilot_test
async def test_a_secret_in_a_gap_or_a_refused_record_is_redacted(tmp_path: Path) -> None:
    """A gap names its publisher's agent and a refused message keeps its topic, both
    from the wire: the Recent rows and the conversation view show a key there as
    `[REDACTED:kind]` with a `[secret]` badge, as they show a message's sender (before
    2026-12-07 they showed it)."""
    from tests.tui.test_conversation import screen_text
    from tui.screens.conversation import ConversationScreen

    agent, topic = make(S.GITHUB, RND).secret, make(S.GITHUB, RND).secret
    root = tmp_path / "logs"
    w = DemoWriter.open(root)
    w.message(BASE_TS, "planner", "plan the rollout", scan=True)
    w.record(BASE_TS + 1, "gap", cause="publisher-sequence", publisher="p1")
    w.record(
        BASE_TS + 2,
        "gap",
        cause="publisher-sequence",
        publisher="p1",
        agent=f"bot {agent}",
        from_seq=2,
        to_seq=4,
        missed=3,
    )
    w.record(BASE_TS + 3, "refused", topic=f"deploy-{topic}", size=20_000_000, reason="big")
    w.message(BASE_TS + 4, "planner", "after the gap", scan=True)
    w.checkpoint(BASE_TS + 5, "end", "manual")
    w.close()
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = app.screen
        assert isinstance(main, MainScreen)
        await pilot.press("enter")
        await settle(pilot)
        conv = app.screen
        assert isinstance(conv, ConversationScreen)
        conversation = screen_text(conv.view)
        await pilot.press("escape")
        await settle(pilot)
        messages, store = await open_recent(app, pilot)
        kinds = {rec.index: rec.kind for rec in store.records()}
        rows = {i: messages.row_of(i) for i, kind in kinds.items() if kind in ("gap", "refused")}
        recent = [row_text(messages, row) for row in rows.values() if row is not None]
    assert len(recent) == 3, recent
    assert "[secret]" not in recent[0]  # the gap that names no agent
    assert all("[secret]" in text for text in recent[1:]), recent  # a refused row: its reason
    assert f"bot [REDACTED:{S.GITHUB}]" in recent[1]
    assert f"bot [REDACTED:{S.GITHUB}]" in conversation, conversation
    for text in (conversation, *recent):
        for key in (agent, topic):
            assert key[:12] not in text, text


@pilot_test
async def test_the_record_view_of_a_gap_refused_or_damaged_record_names_its_secrets(
    tmp_path: Path,
) -> None:
    """A record that is not a message and holds a secret (a gap's agent, a refused
    message's topic and envelope, a damaged line) opens (Enter) on the line a message's
    record view has: `⚠ N secrets: kind (place, bytes a-b)`, its place the field (bytes
    of that text), above the fields shown as recorded. Before 2026-12-07 only a
    message's view had it: the refused record's token was shown with no warning."""
    agent, topic, pub = (make(S.GITHUB, RND).secret for _ in range(3))
    cut = f"agents.{'a' * 220}.{topic}"[:256]
    damaged = make(S.OPENAI, RND).secret
    root = tmp_path / "logs"
    w = DemoWriter.open(root)
    w.message(BASE_TS, "planner", "plan the rollout", scan=True)
    w.record(BASE_TS + 1, "gap", cause="publisher-sequence", publisher="p1", agent=f"bot {agent}")
    w.record(
        BASE_TS + 2,
        "refused",
        topic=f"agents.{topic}",
        envelope={"pub": pub, "seq": 3},
        size=4,
        frame_count=4,
        reason="4 frames is over the 3 frame limit",
    )
    w.record(BASE_TS + 3, "refused", topic=cut, topic_cut=True, size=9, reason="big")
    w.bad_line(b'{"v":1,"torn ' + damaged.encode() + b"\n")
    w.message(BASE_TS + 4, "planner", "after", scan=True)
    w.close()
    app = make_app(root)
    shown: list[str] = []
    rows: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        messages, store = await open_recent(app, pilot)
        for rec in store.records():
            if rec.kind in ("gap", "refused", "bad-line"):
                rows.append(row_text(messages, messages.row_of(rec.index) or 0))
                messages.move_to(messages.row_of(rec.index) or 0)
                await pilot.press("enter")
                await pilot.pause()
                assert isinstance(app.screen, DetailScreen)
                shown.append(app.screen.view.plain_text())
                await pilot.press("escape")
                await pilot.pause()
    gap, refused, refused_cut, bad = shown
    assert f"⚠ 1 secret: {S.GITHUB} (agent, bytes 4-44)" in gap, gap
    assert (
        f"⚠ 2 secrets: {S.GITHUB} (topic, bytes 7-47), {S.GITHUB} (envelope.pub, bytes 0-40)"
    ) in refused, refused
    assert f"⚠ 1 secret: {S.CUT_SECRET} (topic, bytes 228-256)" in refused_cut, refused_cut
    assert f"⚠ 1 secret: {S.OPENAI} (line, bytes 13-" in bad, bad
    for text in shown:
        assert "found now: the recorder did not scan this record" in text
        assert "shown below as recorded" in text
    assert all("[secret]" in row for row in rows), rows
    assert all(topic[4:28] not in row for row in rows), rows  # (a refused row: its reason)
