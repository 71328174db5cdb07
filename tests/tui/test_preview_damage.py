"""A checkpoint whose journal changed before its position: a byte lost or added in a
line, a line lost. Its byte offset then falls elsewhere (inside a line, or on another
line's start), and the preview placed the checkpoint by it alone: one byte less put the
first record written after the checkpoint among "the last messages before" it, and
counted it since the previous checkpoint. It now shows what is before the checkpoint
(placed by the records' seqs), never a record written after it, and names the damage;
the restore dialog's digest check names it too."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from recorder.store.layout import Layout, segment_name
from tests.demo_journal import BASE_TS, DemoWriter
from tests.screenshots import settle
from tests.tui_fixtures import SIZE, main_screen, make_app, pilot_test, plain
from tui.screens.restore import RestoreScreen

LAST = 10  # the checkpoint's last message; 11-14 are written after it
LABEL = "after message ten"


def line_of(data: bytes, text: bytes) -> tuple[int, int]:
    """(start, end) of the line holding `text`, its newline included."""
    at = data.index(text)
    return data.rindex(b"\n", 0, at) + 1, data.index(b"\n", at) + 1


def byte_lost(text: bytes) -> Callable[[bytes], bytes]:
    def cut(data: bytes) -> bytes:
        at = data.index(text)
        return data[:at] + data[at + 1 :]

    return cut


def line_lost(data: bytes) -> bytes:
    start, end = line_of(data, b"message 3 ")
    return data[:start] + data[end:]


def bytes_added(data: bytes) -> bytes:
    at = data.index(b"message 3 ")
    return data[:at] + b"x" * 300 + data[at:]


DAMAGE = {
    "a byte lost in a line before it": byte_lost(b"message 3 "),
    "a byte lost in its last line": byte_lost(b"message 10 "),
    "a line lost before it": line_lost,
    "300 bytes added in a line before it": bytes_added,
}


def damaged_journal(root: Path, damage: Callable[[bytes], bytes]) -> Path:
    """Messages 1-10, a checkpoint, messages 11-14 (the recorder's journal writer), then
    the segment's bytes changed by `damage`, as a script on the file would."""
    w = DemoWriter.open(root, clock=lambda: BASE_TS)
    for i in range(1, LAST + 1):
        w.message(BASE_TS + i, "coder", f"message {i} before")
    cp = w.checkpoint(BASE_TS + LAST + 0.5, LABEL, "manual")
    for i in range(LAST + 1, LAST + 5):
        w.message(BASE_TS + i, "coder", f"message {i} after")
    w.close()
    path = Layout(root).segments / segment_name(cp.segment)
    path.write_bytes(damage(path.read_bytes()))
    return root


@pytest.mark.parametrize("how", list(DAMAGE))
@pilot_test
async def test_the_preview_never_shows_a_record_after_the_checkpoint(
    tmp_path: Path, how: str
) -> None:
    root = damaged_journal(tmp_path / "logs", DAMAGE[how])
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = main_screen(app)
        pv = main.checkpoints_pane.preview
        assert pv is not None and pv.checkpoint.label == LABEL
        shown = plain(main.query_one("#preview"), 300)
        before = shown.split("── last messages before")[1].split("── ◆ checkpoint")[0]
        after = shown.split("── ◆ checkpoint ─ first after")[1]
        assert re.findall(r"m?essage (\d+)", before) == ["7", "8", "9", str(LAST)], shown
        assert re.findall(r"message (\d+)", after) == ["11", "12", "13", "14"], shown
        messages = LAST - 1 if how == "a line lost before it" else LAST
        assert f"Since the previous checkpoint: {messages} messages in the journal" in shown
        assert "the journal changed before its position" in shown, shown
        assert "is not where its last record (seq" in shown, shown
        assert app.journal.boundaries == {pv.checkpoint.id: pv.index}  # the quick map

        await pilot.press("r")  # the dialog's digest check names the damage too
        await settle(pilot)
        assert isinstance(app.screen, RestoreScreen)
        said = plain(app.screen.query_one("#restore-integrity"), 300)
        assert "seg-000001.jsonl differs from the checkpoint" in said, said


@pilot_test
async def test_a_line_as_long_as_the_next_lost_before_it_moves_no_checkpoint_mark(
    tmp_path: Path,
) -> None:
    """Message 9's line, as long as message 11's, removed: the checkpoint's position
    falls on the start of the line after message 11. The timeline's quick map of every
    checkpoint (the list's ◆ marks, the conversation's labels, the checkpoint a search
    hit is shown with) took it as it was and put the checkpoint after message 11, one
    record written after it; it now reads the line before the position and places it
    after message 10, as the preview does."""

    def lost(data: bytes) -> bytes:
        start, end = line_of(data, b"message 9 ")
        assert end - start == len(data[slice(*line_of(data, b"message 11 "))])
        return data[:start] + data[end:]

    root = damaged_journal(tmp_path / "logs", lost)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = main_screen(app)
        pv = main.checkpoints_pane.preview
        assert pv is not None and pv.checkpoint.label == LABEL
        store = app.journal.store
        assert store is not None and app.journal.boundaries is not None
        mark = app.journal.boundaries[pv.checkpoint.id]
        assert b"message 10 before" in store.record(mark - 1).line
        assert b"message 11 after" in store.record(mark).line
        assert mark == pv.index
