"""One record in full: header, metadata, enrichment, payload, frames and the raw line.

The record is shown in a `TextView` (virtual: only the rows on screen are cut and
drawn, each long block up to a budget with "show more"), so a record of the
recorder's full size limit opens as fast as a small one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen

from recorder.export.redact import (
    named_secrets,
    other_part_names,
    record_secrets,
    scanned_by_recorder,
)
from recorder.export.render import TOO_DEEP, json_text, record_text
from recorder.search.query import Query, match_spans
from recorder.sources.jsonl import cut_sizes
from recorder.store.layout import segment_name
from recorder.store.reader import Record
from recorder.store.records import KIND_HEARTBEAT, KIND_MESSAGE, KIND_SEGMENT
from recorder.store.secrets import SecretSpan

from ..jsontext import reindent
from ..reading import frame_range
from ..records_io import save_records
from ..text import Clock, safe_text
from ..widgets.keys_footer import AppFooter
from ..widgets.text_view import Block, TextView

ENRICH_KEYS = ("_persist", "_enrich", "enrichment")
FRAMES_SHOWN = 100
"""Frames of a message shown at first (`m` shows four times as many, and so on)."""
HEX_BYTES = 4096
"""Bytes of a binary frame shown in hex (the rest can be saved)."""
VIEW_SCAN_BYTES = 1 << 20
"""Bytes of a record the view scans for secrets the recorder did not name (a 16 MB one
would take half a second; exports and bundles scan all of it)."""

Navigate = Callable[[int, int], Record | None]
"""(record index, +1 or -1) → the next or previous record, or None at an end."""


def pretty(value: Any, raw: Callable[[], bytes]) -> str:
    """Indented JSON, or the stored text it came from (marked) when nested too deep."""
    return json_text(value, raw, indent=True)


def section(title: str) -> Block:
    return Block(Text(f"\n── {title} ", style="bold cyan"), limit=None)


def _hex(raw: bytes) -> str:
    rows = []
    for at in range(0, min(len(raw), HEX_BYTES), 32):
        chunk = raw[at : at + 32]
        rows.append(f"{at:08x}  {chunk.hex(' ', 4)}")
    if len(raw) > HEX_BYTES:
        rows.append(f"… {len(raw) - HEX_BYTES:,} more bytes (s saves the record)")
    return "\n".join(rows)


def frame_blocks(i: int, raw: bytes, encoded: dict[str, Any]) -> list[Block]:
    kind = "json" if "json" in encoded else "text" if "text" in encoded else "binary"
    head = Text(f"#{i} ", style="bold")
    head.append(f"{kind}, {len(raw):,} bytes", "dim")
    if kind == "binary":
        return [Block(head, limit=None), Block(_hex(raw), "magenta", limit=None)]
    return [Block(head, limit=None), Block(raw)]


def frames_blocks(rec: Record, start: int, stop: int) -> list[Block]:
    """Frames `start:stop` of a message, then a note of those after (`m` shows them:
    as many again as shown, times the factor less one)."""
    encoded = rec.get("frames") or []
    stop = min(stop, len(encoded))
    blocks: list[Block] = []
    raws = frame_range(rec, start, stop)
    for i, (raw, enc) in enumerate(zip(raws, encoded[start:stop], strict=False), start):
        blocks += frame_blocks(i, raw, enc)
    left = len(encoded) - stop
    if left > 0:
        noun = "frame" if left == 1 else "frames"
        note = f"… {left:,} more {noun} not shown (m shows more, s saves the record)"
        blocks.append(
            Block(
                Text(note, "bold yellow"),
                limit=None,
                more=lambda factor: frames_blocks(rec, stop, stop * factor),
            )
        )
    return blocks


def secrets_line(rec: Record, secrets: list[SecretSpan]) -> Text:
    """`⚠ 2 secrets: openai-key (frame 1, bytes 19-55), …`: kinds and places, never the
    values (those are in the frames below, as recorded). A place of a record that is
    not a message is its field (`topic, bytes 7-47`: bytes of that text), of a damaged
    line the line."""
    data = rec.data
    frames = data is None or rec.kind in (KIND_MESSAGE, KIND_HEARTBEAT)
    names = [] if frames or data is None else other_part_names(data)

    def place(s: SecretSpan) -> str:
        if data is None:
            return "line"
        if frames:
            return f"frame {s.frame}"
        return names[s.frame] if s.frame < len(names) else f"part {s.frame}"

    line = Text()
    noun = "secret" if len(secrets) == 1 else "secrets"
    line.append(f"⚠ {len(secrets)} {noun}: ", "bold red")
    line.append(
        ", ".join(f"{s.kind} ({place(s)}, bytes {s.start}-{s.end})" for s in secrets),
        "red",
    )
    if not scanned_by_recorder(rec):
        line.append("  found now: the recorder did not scan this record", "dim")
    line.append("\n  shown below as recorded; exports replace them by [REDACTED:kind]", "dim")
    return line


def record_blocks(rec: Record, clock: Clock) -> list[Block]:
    """The record as blocks for a `TextView` (nothing here is cut or wrapped yet)."""
    head = Text()
    head.append(f"{rec.kind.upper()}", "bold reverse")
    head.append(f"  seq {rec.seq}  ", "")
    head.append(clock.stamp(rec.ts), "")
    if rec.segment < 0:  # made in memory of an agent session's message (`journal_view`)
        head.append("  an agent session's message, not in the journal", "dim")
    else:
        head.append(f"  {segment_name(rec.segment)} @ {rec.offset:,}", "dim")
    if rec.is_message:
        head.append("\nsender ", "dim")
        head.append_text(safe_text(rec.sender or "?", "bold"))
        head.append("  topic ", "dim")
        head.append_text(safe_text(rec.topic))
    blocks = [Block(head, limit=None)]
    if rec.kind != KIND_SEGMENT:  # (a segment's first record holds only names of ours)
        secrets = record_secrets(rec, VIEW_SCAN_BYTES)
        if secrets:
            blocks.append(Block(secrets_line(rec, secrets), limit=None))
        if len(rec.line) > VIEW_SCAN_BYTES and named_secrets(rec) is None:
            # never a silent "no secrets" for what was not looked at
            note = f"secrets looked for in its first {VIEW_SCAN_BYTES >> 20} MiB only"
            blocks.append(
                Block(Text(f"{note}; exports and bundles scan all of it", "dim"), limit=None)
            )
    if rec.data is None:
        blocks.append(section("unreadable line (shown escaped)"))
        blocks.append(Block(rec.line, "red"))
        return blocks
    if rec.is_message:
        text = record_text(rec)
        cut = cut_sizes(text)
        if cut is not None:  # its last line says so, past what a block shows at first
            kept, more = cut
            note = (
                f"text cut by the session reader: {kept:,} of its {kept + more:,} characters kept"
            )
            blocks.append(Block(Text(note, "yellow"), limit=None))
        blocks += [section("text"), Block(text, highlight=True)]
        meta = pretty(rec.meta, lambda: rec.line)
        blocks += [section("metadata (enrichment)"), Block(meta)]
        payload = rec.payload
        encoded = rec.get("frames") or []
        if isinstance(payload, dict):
            extra = {k: payload[k] for k in ENRICH_KEYS if k in payload}
            if extra:
                shown_extra = pretty(extra, lambda: frame_range(rec, -1, None)[0])
                blocks += [section("payload enrichment"), Block(shown_extra)]
        if encoded:
            last = frame_range(rec, -1, None)[0]
            if isinstance(payload, bytes):
                shown = Block(_hex(last), "magenta", limit=None)
            elif last[:1] in (b"{", b"[") or isinstance(payload, dict | list):
                shown = Block(last, transform=reindent)  # indented, tokens as sent
            else:
                shown = Block(last)
            blocks += [section("payload (last frame)"), shown]
        blocks.append(section(f"frames ({len(encoded):,})"))
        blocks += frames_blocks(rec, 0, FRAMES_SHOWN)
    else:
        fields = {k: v for k, v in rec.data.items() if k not in ("v",)}
        blocks += [section("fields"), Block(pretty(fields, lambda: rec.line))]
    blocks += [section("raw line"), Block(rec.line.rstrip(b"\n"), "dim")]
    return blocks


class DetailScreen(Screen[None]):
    """The full record; Esc goes back, ] and [ step to the next and previous record."""

    BINDINGS = [
        Binding("escape,q,enter", "dismiss", "Back"),
        Binding("right_square_bracket", "step(1)", "Next record"),
        Binding("left_square_bracket", "step(-1)", "Previous record"),
        Binding("m", "show_more", "Show more"),
        Binding("s", "save", "Save record"),
        Binding("j,down", "scroll('down')", "Down", show=False),
        Binding("k,up", "scroll('up')", "Up", show=False),
        Binding("g,home", "scroll('home')", "Top", show=False),
        Binding("G,end", "scroll('end')", "Bottom", show=False),
        Binding("pageup,ctrl+b", "scroll('page_up')", "Page up", show=False),
        Binding("pagedown,ctrl+f,space", "scroll('page_down')", "Page down", show=False),
    ]

    def __init__(
        self,
        record: Record,
        clock: Clock,
        query: Query | None = None,
        *,
        navigate: Navigate | None = None,
        save_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.record = record
        self.clock = clock
        self.search_query = query
        self.navigate = navigate
        self.save_dir = save_dir

    def compose(self) -> ComposeResult:
        yield TextView(id="detail")
        yield AppFooter()

    @property
    def view(self) -> TextView:
        return self.query_one("#detail", TextView)

    def prepare(
        self,
        record: Record,
        query: Query | None,
        navigate: Navigate | None,
        save_dir: Path | None,
    ) -> None:
        """Show another record the next time this (installed, reused) screen is pushed."""
        self.record = record
        self.search_query = query
        self.navigate = navigate
        self.save_dir = save_dir
        self._shown = False

    def on_mount(self) -> None:
        self.show(self.record)
        self._shown = True
        self.view.focus()

    def on_screen_resume(self) -> None:
        if not getattr(self, "_shown", False):
            self.show(self.record)
            self._shown = True
            self.refresh_bindings()
        self.view.focus()

    def show(self, record: Record) -> None:
        self.record = record
        view = self.view
        query = self.search_query
        view.set_highlighter(
            (lambda line: match_spans(line, query)) if query is not None and query.terms else None
        )
        view.set_blocks(record_blocks(record, self.clock))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "step":
            return self.navigate is not None
        if action == "save":
            return self.save_dir is not None
        if action == "show_more" and self.is_mounted:
            return self.view.has_more()
        return True

    def action_step(self, step: int) -> None:
        if self.navigate is None:
            return
        found = self.navigate(self.record.index, step)
        if found is None:
            self.notify("No more records that way.", timeout=2)
            return
        self.show(found)
        self.refresh_bindings()

    def action_show_more(self) -> None:
        if self.view.show_more():
            self.refresh_bindings()

    def action_save(self) -> None:
        if self.save_dir is None:
            return
        try:
            path = save_records(self.save_dir, [self.record], f"record-{self.record.seq}")
        except OSError as exc:
            self.notify(f"Could not save the record: {exc}", severity="error")
            return
        self.notify(f"Saved the record as stored to {path}", timeout=8)

    def action_scroll(self, where: str) -> None:
        view = self.view
        {
            "down": view.scroll_down,
            "up": view.scroll_up,
            "home": view.scroll_home,
            "end": view.scroll_end,
            "page_up": view.scroll_page_up,
            "page_down": view.scroll_page_down,
        }[where](animate=False)

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)


__all__ = ["TOO_DEEP", "DetailScreen", "record_blocks"]
