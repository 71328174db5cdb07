"""Columns stay in line whatever the script: a CJK character or an emoji takes two
terminal cells, so a label, sender or topic padded by its number of characters pushed
the rest of its row right (the timeline cut `4 msgs` to `4 ms…`). And `⚠️`-style
emoji (a one-cell character asking for its emoji form) are shown in one cell, as Rich
counts them, since some terminals draw them in two."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.cells import cell_len
from textual.widgets import Input

from tests.demo_journal import NOW, DemoClock, DemoWriter
from tests.screenshots import settle
from tests.tui_fixtures import SIZE, SMALL, main_screen, make_app, pilot_test, wait_until
from tui.app import PersistApp
from tui.text import fit, safe_text, sanitize

LABELS = (
    "🚀 שלום deploy 👩\u200d💻 ✔\ufe0f v2",
    "東京タワーの夜景を見ながらリリース作業をしました本当に長いラベル",
    "plain",
)
BODY = "שלום 🚀 message ✔\ufe0f 漢字 done"


def wide_journal(root: Path) -> Path:
    start = NOW - 600
    w = DemoWriter.open(root, clock=DemoClock(start))
    for i in range(9):
        sender = "田中太郎" if i % 2 else "alice"
        topic = "会議.議事録" if i % 3 == 0 else "chat"
        w.message(start + i, sender, f"{BODY} {i}", topic=topic)
        if i % 3 == 2:
            w.checkpoint(start + i, LABELS[i // 3], "manual")
    w.close()
    return root


def screen_lines(app: PersistApp) -> list[str]:
    strips = app.screen._compositor.render_strips()
    return ["".join(seg.text for seg in strip if not seg.control) for strip in strips]


def column_of(line: str, marker: str) -> int:
    """The terminal cell where `marker` starts in `line`."""
    return cell_len(line[: line.index(marker)])


@pytest.mark.parametrize("size", [SIZE, SMALL, (120, 36)])
@pilot_test
async def test_columns_stay_in_line_with_wide_characters(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    app = make_app(wide_journal(tmp_path / "logs"))
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        rows = [line for line in screen_lines(app) if " msgs" in line]
        assert len(rows) == 3, screen_lines(app)
        ends = {column_of(row, " msgs") for row in rows}
        assert len(ends) == 1, rows  # each count where the others are, none cut
        assert any("…" in row for row in rows)  # the long label is cut, in cells
        assert not any("\ufe0f" in line for line in screen_lines(app))

        await pilot.press("3")  # Recent: sender and topic columns
        await settle(pilot)
        rows = [line for line in screen_lines(app) if "message ✔" in line]
        assert len(rows) >= 6, screen_lines(app)
        assert len({column_of(row, "שלום") for row in rows}) == 1, rows

        await pilot.press("slash")  # search hits: the same columns
        main_screen(app).query_one("#search-input", Input).value = "漢字"
        await wait_until(pilot, lambda: len(main_screen(app).search_pane.result_hits) == 9, "hits")
        await settle(pilot)
        rows = [line for line in screen_lines(app) if "message ✔" in line]
        assert len(rows) == 9, screen_lines(app)
        assert len({column_of(row, "שלום") for row in rows}) == 1, rows


def test_fit_counts_cells() -> None:
    assert fit("abc", 5) == "abc  "
    assert fit("東京", 5) == "東京 "
    assert cell_len(fit("東京タワー", 5)) == 5
    assert fit("東京タワー", 5, ellipsis=True) == "東京…"
    assert fit("東京タワー", 6, ellipsis=True) == "東京… "  # no half character before …
    assert fit("abcdef", 4, ellipsis=True) == "abc…"
    assert fit("", 0) == ""


def test_emoji_form_is_shown_in_one_cell() -> None:
    assert sanitize("⚠\ufe0f careful") == "⚠ careful"
    assert safe_text("✔\ufe0f done\x1b").plain == "✔ done\\x1b"


@pilot_test
async def test_the_reason_column_does_not_move_with_the_counts_width(tmp_path: Path) -> None:
    """Checkpoints of 3, 12 and 1,234 messages: every row's reason starts in the same
    cell and every count ends in the same cell."""
    start = NOW - 6000
    root = tmp_path / "logs"
    w = DemoWriter.open(root, clock=DemoClock(start))
    for i in range(1234):
        w.message(start + i, "alice", f"message {i}")
        if i + 1 in (3, 12, 1234):
            w.checkpoint(start + i, f"after {i + 1}", "manual")
    w.close()
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        rows = [line for line in screen_lines(app) if " msgs" in line and "after " in line]
        assert len(rows) == 3, screen_lines(app)
        assert len({column_of(row, "manual") for row in rows}) == 1, rows
        assert len({column_of(row, " msgs") for row in rows}) == 1, rows
