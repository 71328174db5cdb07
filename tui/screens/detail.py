"""One record in full: header, metadata, enrichment, payload, frames and the raw line."""

from __future__ import annotations

import base64
from collections.abc import Callable
from functools import partial
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from recorder.export.render import json_text, payload_bytes, record_text
from recorder.search.query import Query, match_spans
from recorder.store.layout import segment_name
from recorder.store.reader import Record

from ..text import Clock, safe_text
from ..widgets.record_list import HIGHLIGHT

ENRICH_KEYS = ("_persist", "_enrich", "enrichment")


def pretty(value: Any, raw: Callable[[], bytes]) -> str:
    """Indented JSON, or the stored text it came from (marked) when nested too deep."""
    return json_text(value, raw, indent=True)


def section(title: str) -> Text:
    return Text(f"\n── {title} ", style="bold cyan")


def frame_summary(i: int, raw: bytes, encoded: dict[str, Any]) -> Text:
    kind = "json" if "json" in encoded else "text" if "text" in encoded else "binary"
    t = Text(f"#{i} ", style="bold")
    t.append(f"{kind}, {len(raw):,} bytes\n", "dim")
    if kind == "binary":
        t.append(base64.b16encode(raw[:48]).decode().lower(), "magenta")
        if len(raw) > 48:
            t.append(" …", "dim")
    else:
        t.append_text(safe_text(raw[:4000].decode("utf-8", "replace"), newlines=True))
    return t


def render_record(rec: Record, clock: Clock, query: Query | None = None) -> RenderableType:
    head = Text()
    head.append(f"{rec.kind.upper()}", "bold reverse")
    head.append(f"  seq {rec.seq}  ", "")
    head.append(clock.stamp(rec.ts), "")
    head.append(f"  {segment_name(rec.segment)} @ {rec.offset:,}", "dim")
    if rec.is_message:
        head.append("\nsender ", "dim")
        head.append_text(safe_text(rec.sender or "?", "bold"))
        head.append("  topic ", "dim")
        head.append_text(safe_text(rec.topic))
    parts: list[RenderableType] = [head]
    if rec.data is None:
        parts.append(section("unreadable line (shown escaped)"))
        parts.append(safe_text(rec.line.decode("utf-8", "replace"), "red"))
        return Group(*parts)
    if rec.is_message:
        body = safe_text(record_text(rec), newlines=True)
        if query is not None:
            for s, e in match_spans(body.plain, query):
                body.stylize(HIGHLIGHT, s, e)
        parts += [section("text"), body]
        stored = partial(payload_bytes, rec)
        meta = pretty(rec.meta, lambda: rec.line)
        parts += [section("metadata (enrichment)"), safe_text(meta, newlines=True)]
        payload = rec.payload
        if isinstance(payload, dict):
            extra = {k: payload[k] for k in ENRICH_KEYS if k in payload}
            if extra:
                shown_extra = pretty(extra, stored)
                parts += [section("payload enrichment"), safe_text(shown_extra, newlines=True)]
        shown = base64.b16encode(payload).decode() if isinstance(payload, bytes) else payload
        parts += [section("payload"), safe_text(pretty(shown, stored), newlines=True)]
        frames = rec.frames
        encoded = rec.get("frames") or []
        parts.append(section(f"frames ({len(frames)})"))
        for i, (raw, enc) in enumerate(zip(frames, encoded, strict=False)):
            parts.append(frame_summary(i, raw, enc))
    else:
        fields = {k: v for k, v in rec.data.items() if k not in ("v",)}
        fields_text = pretty(fields, lambda: rec.line)
        parts += [section("fields"), safe_text(fields_text, newlines=True)]
    parts += [
        section("raw line"),
        safe_text(rec.line.decode("utf-8", "replace").rstrip("\n"), "dim"),
    ]
    return Group(*parts)


class DetailScreen(ModalScreen[None]):
    """The full record; Esc goes back."""

    BINDINGS = [
        Binding("escape,q,enter", "dismiss", "Back"),
        Binding("j,down", "scroll('down')", "Down", show=False),
        Binding("k,up", "scroll('up')", "Up", show=False),
        Binding("g,home", "scroll('home')", "Top", show=False),
        Binding("G,end", "scroll('end')", "Bottom", show=False),
    ]

    def __init__(self, record: Record, clock: Clock, query: Query | None = None) -> None:
        super().__init__()
        self.record = record
        self.clock = clock
        self.search_query = query

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail", classes="dialog"):
            yield Static(render_record(self.record, self.clock, self.search_query))
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#detail").focus()

    def action_scroll(self, where: str) -> None:
        view = self.query_one("#detail", VerticalScroll)
        {
            "down": view.scroll_down,
            "up": view.scroll_up,
            "home": view.scroll_home,
            "end": view.scroll_end,
        }[where](animate=False)

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
