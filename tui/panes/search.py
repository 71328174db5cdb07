"""Search the journal: a query field, its status line and the matching records."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input, Static
from textual.worker import get_current_worker

from recorder.search.query import Query, QueryError, parse_query
from recorder.search.scan import SearchProgress

from ..text import count
from ..widgets.record_list import RecordList
from ..widgets.virtual_list import VirtualList
from .base import Pane

SEARCH_DEBOUNCE = 0.12


class SearchPane(Pane):
    """Results stream in newest first while the search worker scans; Enter jumps to one."""

    BINDINGS = [
        Binding("ctrl+t", "toggle_fuzzy", "Fuzzy", tooltip="Typo-tolerant matching on/off"),
        Binding("escape", "leave_search", "Back", show=False),
    ]

    class Batch(Message):
        """More of the search `generation` was scanned (from the search worker)."""

        def __init__(self, generation: int, progress: SearchProgress) -> None:
            super().__init__()
            self.generation = generation
            self.progress = progress

    class ResultChosen(Message):
        """Enter on a result: show record `index` with `query` highlighted (the screen does)."""

        def __init__(self, index: int, query: Query | None) -> None:
            super().__init__()
            self.index = index
            self.query = query

    def __init__(self) -> None:
        super().__init__("2 Search", id="search")
        self.fuzzy = True
        self.hits: list[int] = []
        """Record indices of the current search's matches, newest first."""
        self.search_generation = 0
        self.search_state = ""
        self.search_query: Query | None = None
        self._search_timer: Any = None

    def compose(self) -> ComposeResult:
        yield Input(
            placeholder='words  "a phrase"  from:NAME  topic:NAME  since:2h  until:10:30',
            id="search-input",
        )
        yield Static(id="search-status", classes="status-line")
        yield RecordList(self.papp.clock, id="results")

    def on_mount(self) -> None:
        self.update_status()

    @property
    def results(self) -> RecordList:
        return self.query_one("#results", RecordList)

    def journal_changed(self, what: str) -> None:
        state = self.papp.journal
        if what in ("loaded", "checkpoints"):
            self.results.boundaries = frozenset((state.boundaries or {}).values())
        if what == "loaded":
            self.results.attach(state.store, self.hits)
            if self.search_query is not None:
                self.start_search()

    # -- the field ---------------------------------------------------------------
    @on(Input.Changed, "#search-input")
    def search_changed(self, event: Input.Changed) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        self._search_timer = self.set_timer(SEARCH_DEBOUNCE, self.start_search)

    @on(Input.Submitted, "#search-input")
    def search_submitted(self, event: Input.Submitted) -> None:
        self.results.focus()

    def action_leave_search(self) -> None:
        inp = self.query_one("#search-input", Input)
        if inp.has_focus and inp.value:
            inp.value = ""
        elif inp.has_focus:
            self.results.focus()
        else:
            inp.focus()

    def action_toggle_fuzzy(self) -> None:
        self.fuzzy = not self.fuzzy
        self.notify(f"Fuzzy matching {'on' if self.fuzzy else 'off'}", timeout=2)
        self.start_search()

    # -- searching ---------------------------------------------------------------
    def start_search(self) -> None:
        """Parse the query and (re)start the search worker; old results are dropped."""
        papp = self.papp
        text = self.query_one("#search-input", Input).value
        self.search_generation += 1
        self.hits.clear()
        results = self.results
        try:
            query = parse_query(text, now=papp.clock.now(), fuzzy=self.fuzzy, tz=papp.clock.tz)
        except QueryError as exc:
            self.search_query = None
            self.search_state = f"[error]{exc}"
            results.highlight = None
            results.sync()
            self.update_status()
            return
        self.search_query = None if query.empty else query
        results.highlight = self.search_query
        results.sync()
        results.move_to(0)
        if self.search_query is None:
            self.search_state = ""
            self.workers.cancel_group(self, "search")
        elif papp.journal.store is None:
            self.search_state = "no journal to search yet"
        else:
            self.search_state = "searching…"
            self.run_search(self.search_query, self.search_generation)
        self.update_status()

    @work(thread=True, exclusive=True, group="search", exit_on_error=False)
    def run_search(self, query: Query, generation: int) -> None:
        worker = get_current_worker()
        for progress in self.papp.searcher.search(query, cancelled=lambda: worker.is_cancelled):
            if worker.is_cancelled:
                return
            self.post_message(self.Batch(generation, progress))

    def on_search_pane_batch(self, message: Batch) -> None:
        if message.generation != self.search_generation:
            return
        p = message.progress
        self.hits.extend(h.index for h in p.hits)
        results = self.results
        results.sync()
        if results.cursor < 0 and self.hits:
            results.move_to(0)
        pct = 100 * p.scanned // p.total if p.total else 100
        if p.done:
            self.search_state = "done" + (" (result limit reached)" if p.limited else "")
        else:
            self.search_state = f"searching… {pct}% of {count(p.total)} records"
        self.update_status()

    def worker_failed(self, group: str, problem: str) -> None:
        if group == "search":
            self.search_state = f"[error]search failed: {problem}"
            self.update_status()
        else:
            super().worker_failed(group, problem)

    def update_status(self) -> None:
        status = Text()
        state = self.search_state
        if state.startswith("[error]"):
            status.append(state[7:], "bold red")
        elif self.search_query is None:
            status.append(
                "Type to search. Enter: results · Esc: back to the field · ctrl+t: fuzzy", "dim"
            )
        else:
            status.append(f"{count(len(self.hits))} matches", "bold")
            status.append(f" · {state}", "dim")
        status.append(f"   fuzzy {'on' if self.fuzzy else 'off'}", "cyan" if self.fuzzy else "dim")
        self.query_one("#search-status", Static).update(status)

    @on(VirtualList.Selected, "#results")
    def result_selected(self, event: VirtualList.Selected) -> None:
        index = self.results.record_index(event.row)
        if index is not None:
            self.post_message(self.ResultChosen(index, self.search_query))
