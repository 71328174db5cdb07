"""Search the journal: a query field, its status line and the ranked hits.

The search engine (`recorder.search.engine`, the same one as `persist search`)
runs in a thread worker: results as you type (debounced), exact hits first and
fuzzy ones after them (marked ~), each row a snippet around its match. While the
index is behind the journal, the worker searches what is indexed, keeps catching
up in slices and shows a progress line, then searches again.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input, Static
from textual.worker import get_current_worker

from recorder.search.query import Query, QueryError, parse_query
from recorder.sources.model import seq_of
from recorder.store.layout import sessions_searchable_without_journal

from ..text import count, fit, highlighted_text, one_line, window_on
from ..widgets.record_list import HIGHLIGHT, sender_style, shown_topic, source_label
from ..widgets.virtual_list import VirtualList
from .base import Pane

if TYPE_CHECKING:
    from recorder.search.hits import SearchHit, SearchResult

SEARCH_DEBOUNCE = 0.03  # seconds of quiet typing before a search starts
RESULT_LIMIT = 200
FIRST_PAGE = 50  # hits shown first (a screenful); the rest up to RESULT_LIMIT right after
CATCH_UP_SLICE = 0.25  # seconds of indexing between progress updates
FUZZY_STYLE = "bold black on bright_cyan"
SOURCES = ("bus", "claude", "gemini", "codex")  # what ctrl+o cycles the `source:` filter through
_SOURCE_TERM = re.compile(r"(?<!\S)-?source:\S*")


def cycle_source(text: str) -> tuple[str, str]:
    """The query with its `source:` filter moved on to the next source (after the last:
    none), and that source ("" for none)."""
    current = [
        m.group().removeprefix("-").removeprefix("source:") for m in _SOURCE_TERM.finditer(text)
    ]
    order = ["", *SOURCES]
    now = current[0] if len(current) == 1 and current[0] in order else ""
    following = order[(order.index(now) + 1) % len(order)]
    rest = " ".join(_SOURCE_TERM.sub("", text).split())
    if not following:
        return rest, ""
    return (f"source:{following} {rest}" if rest else f"source:{following} "), following


class ResultList(VirtualList):
    """Search hits: `HH:MM:SS ~ sender topic …snippet…` with the matches highlighted."""

    def __init__(self, pane: SearchPane, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.pane = pane

    def render_row(self, row: int, width: int) -> Text:
        hits = self.pane.result_hits
        if not 0 <= row < len(hits):
            return Text()
        hit = hits[row]
        clock = self.pane.papp.clock
        wide = width >= 100
        sw, tw = (12, 10) if wide else (9, 6)
        line = Text()
        line.append(clock.when(hit.ts), "dim")  # hits span days and years
        line.append(" ~ " if hit.fuzzy else "   ", "bold cyan")
        line.append_text(source_label(hit.source or "bus", wide=wide))
        who = one_line(hit.sender or hit.kind.upper(), 40)
        line.append(fit(who, sw) + " ", sender_style(who) if hit.sender else "dim")
        line.append(fit(one_line(shown_topic(hit.topic, hit.source), 40), tw) + " ", "dim")
        marks = [(s.start, s.end, FUZZY_STYLE if s.fuzzy else HIGHLIGHT) for s in hit.spans]
        snippet = hit.snippet
        if marks:  # the first match on the row, the words before it cut if need be
            first, end, _style = min(marks, key=lambda m: m[:2])
            at = window_on(snippet, first, end, width - line.cell_len)
            if at > 0:
                snippet = "…" + snippet[at:]
                marks = [(max(s, at) - at + 1, e - at + 1, st) for s, e, st in marks if e > at]
        line.append_text(highlighted_text(snippet, marks))
        return line


class QueryField(Input):
    """The query: every way in (`/`, `2`, Esc from the hits, Tab) keeps it, the cursor
    at its end and nothing selected, so a key adds to the query instead of replacing
    it. `/` into an empty field is the Search key that led there: nothing is typed (a
    query's leading `/` has no letters or digits and finds nothing more); in a query
    it is typed (`usr/bin`)."""

    BINDINGS = [Binding("slash", "search_key", show=False, priority=True)]

    def __init__(self, *, placeholder: str, id: str) -> None:
        super().__init__(placeholder=placeholder, id=id, select_on_focus=False)

    def on_focus(self, event: events.Focus) -> None:  # before Input's own (the MRO's order)
        self.cursor_position = len(self.value)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "search_key":
            return not self.value  # else the key is typed
        return super().check_action(action, parameters)

    def action_search_key(self) -> None:
        """`/` into the empty field: already where it leads."""


class SearchPane(Pane):
    """Results while you type; Enter on one shows it in context (Recent)."""

    BINDINGS = [
        Binding("ctrl+t", "toggle_fuzzy", "Fuzzy", tooltip="Typo-tolerant matching on/off"),
        Binding(
            "ctrl+o",
            "cycle_source",
            "Source",
            tooltip="Only the journal (bus), or one agent's sessions, or everything",
        ),
        Binding("escape", "leave_search", "Back", show=False),
    ]

    class Results(Message):
        """The search `generation` answered (from the search worker)."""

        def __init__(self, generation: int, result: SearchResult) -> None:
            super().__init__()
            self.generation = generation
            self.result = result

    class Indexing(Message):
        """The index is catching up: `behind` journal bytes left of `total`; `waiting`:
        another process holds the index's writers' lock (a `persist reindex`)."""

        def __init__(self, generation: int, behind: int, total: int, waiting: bool = False) -> None:
            super().__init__()
            self.generation = generation
            self.behind = behind
            self.total = total
            self.waiting = waiting

    class ResultChosen(Message):
        """Enter on a result: show record `index` with `query` highlighted (the screen does);
        `matches` are every hit's record index in journal order (for n/N further on)."""

        def __init__(self, index: int, query: Query | None, matches: list[int]) -> None:
            super().__init__()
            self.index = index
            self.query = query
            self.matches = matches

    def __init__(self) -> None:
        super().__init__("2 Search", id="search")
        self.fuzzy = True
        self.result_hits: list[SearchHit] = []
        """The current search's hits, best first (exact, then fuzzy)."""
        self.hits: list[int] = []
        """The journal's hits as record indices of the app's store."""
        self.rows: list[int | None] = []
        """Per result row, its record index (None: a message of an agent session)."""
        self.result: SearchResult | None = None
        self.search_generation = 0
        self._shown_generation = -1  # the search whose hits the list shows
        self.search_state = ""
        self.search_query: Query | None = None
        self._search_timer: Any = None

    def compose(self) -> ComposeResult:
        yield QueryField(
            placeholder='words  "a phrase"  pre*  -not  a OR b  from:NAME  topic:T  since:2h',
            id="search-input",
        )
        yield Static(id="search-status", classes="status-line")
        yield ResultList(self, id="results")

    def on_mount(self) -> None:
        self.update_status()

    @property
    def results(self) -> ResultList:
        return self.query_one("#results", ResultList)

    def journal_changed(self, what: str) -> None:
        if what == "loaded" and self.search_query is not None:
            self.start_search()

    # -- the field ---------------------------------------------------------------
    def focus_field(self) -> None:
        """`/`: the field, its query kept (the cursor at its end)."""
        self.query_one("#search-input", Input).focus()

    def focus_tab(self) -> None:
        """`2`: the tab as it was left: on the hits when there are some (`j`, Enter,
        `/` to the field), else in the field to type a query."""
        if self.result_hits:
            self.results.focus()
        else:
            self.focus_field()

    @on(Input.Changed, "#search-input")
    def search_changed(self, event: Input.Changed) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        self._search_timer = self.set_timer(SEARCH_DEBOUNCE, self.start_search)
        self.refresh_bindings()  # an empty field's Esc is the launch menu's

    @on(Input.Submitted, "#search-input")
    def search_submitted(self, event: Input.Submitted) -> None:
        self.results.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "leave_search" and self.papp.launch:
            # in a launch, Esc goes back to the menu (the screen's "esc Menu") from the
            # results, or from a field with nothing typed; from a query it goes to its results
            inp = self.query_one("#search-input", Input)
            return inp.has_focus and bool(inp.value)
        return True

    def action_leave_search(self) -> None:
        """Esc: out of the field to the results, the query kept; from the results, back
        to the field (in a launch the screen's Esc takes over there: the menu)."""
        inp = self.query_one("#search-input", Input)
        if inp.has_focus:
            self.results.focus()
        else:
            inp.focus()

    def action_toggle_fuzzy(self) -> None:
        self.fuzzy = not self.fuzzy
        self.notify(f"Fuzzy matching {'on' if self.fuzzy else 'off'}", timeout=2)
        self.start_search()

    def action_cycle_source(self) -> None:
        """ctrl+o: the `source:` filter in the query, bus → claude → gemini → codex → all."""
        inp = self.query_one("#search-input", Input)
        inp.value, source = cycle_source(inp.value)
        inp.cursor_position = len(inp.value)
        self.notify(f"Source: {source or 'everything'}", timeout=2)

    # -- searching ---------------------------------------------------------------
    def start_search(self) -> None:
        """Parse the query and (re)start the search worker; old results are dropped."""
        papp = self.papp
        text = self.query_one("#search-input", Input).value
        self.search_generation += 1
        try:
            query = parse_query(text, now=papp.clock.now(), fuzzy=self.fuzzy, tz=papp.clock.tz)
        except QueryError as exc:
            self.search_query = None
            self._show(None)
            self.search_state = f"[error]{exc}"
            self.update_status()
            return
        self.search_query = None if query.empty else query
        if self.search_query is None:
            self.search_state = ""
            self.workers.cancel_group(self, "search")
            self._show(None)
        elif papp.journal.store is None and not sessions_searchable_without_journal(papp.log_dir):
            self.search_state = "no journal to search yet"
        else:  # with no journal yet, the agents' sessions alone (as `persist search`)
            alone = papp.journal.store is None
            self.search_state = (
                "searching the agents' sessions (no journal yet)…" if alone else "searching…"
            )
            self.run_search(self.search_query, self.search_generation)
        self.update_status()

    @work(thread=True, exclusive=True, group="search", exit_on_error=False)
    def run_search(self, query: Query, generation: int) -> None:
        """Search what is indexed now (after a short catch-up), then, while the index
        is behind, index more in slices (progress) and search again when level."""
        worker = get_current_worker()
        engine = self.papp.searcher
        fuzzy = None if self.fuzzy else False

        def cancelled() -> bool:  # a newer search replaced this one
            return worker.is_cancelled

        result = engine.search(
            query,
            limit=FIRST_PAGE,
            fuzzy=fuzzy,
            budget=CATCH_UP_SLICE,
            wait=0.0,
            cancelled=cancelled,
        )
        if worker.is_cancelled:
            return
        self.post_message(self.Results(generation, result))
        behind = result.behind
        if not behind:
            if len(result.hits) == FIRST_PAGE:  # a screenful now, the rest of the list next
                more = engine.search(
                    query, limit=RESULT_LIMIT, fuzzy=fuzzy, catch_up=False, cancelled=cancelled
                )
                if not worker.is_cancelled:
                    self.post_message(self.Results(generation, more))
            return
        total = behind
        while behind and not worker.is_cancelled:
            done = engine.catch_up(budget=CATCH_UP_SLICE, wait=CATCH_UP_SLICE)
            behind = done.behind if not done.busy else engine.indexer.behind()
            self.post_message(self.Indexing(generation, behind, max(total, behind), done.busy))
        if worker.is_cancelled:
            return
        result = engine.search(
            query, limit=RESULT_LIMIT, fuzzy=fuzzy, catch_up=False, cancelled=cancelled
        )
        if not worker.is_cancelled:
            self.post_message(self.Results(generation, result))

    def on_search_pane_results(self, message: Results) -> None:
        if message.generation != self.search_generation:
            return
        self._show(message.result, keep_cursor=message.generation == self._shown_generation)
        self._shown_generation = message.generation
        self.search_state = "index catching up…" if message.result.behind else "done"
        self.update_status()

    def on_search_pane_indexing(self, message: Indexing) -> None:
        if message.generation != self.search_generation:
            return
        pct = 100 - 100 * message.behind // message.total if message.total else 100
        if message.behind and message.waiting:  # not ours to index: not "indexing" (0%)
            self.search_state = (
                "waiting for another process updating the index "
                f"({message.behind / 2**20:,.1f} MiB to go)"
            )
        elif message.behind:
            self.search_state = (
                f"indexing the journal {pct}% ({message.behind / 2**20:,.0f} MiB to go)"
            )
        else:
            self.search_state = "index caught up"
        self.update_status()

    def _show(self, result: SearchResult | None, *, keep_cursor: bool = False) -> None:
        """Show `result`'s hits; `keep_cursor`: more hits of the search already shown
        (the same ranking, longer), so the highlighted row stays where the user put it."""
        self.result = result
        self.result_hits = list(result.hits) if result else []
        self.papp.refresh_journal()  # a change other than growth is told as loaded anew
        store = self.papp.journal.store
        self.rows = [None] * len(self.result_hits)
        if store is not None:
            self.rows = [
                None
                if h.segment is None or h.offset is None
                else store.index_of(h.segment, h.offset)
                for h in self.result_hits
            ]
        self.hits = [i for i in self.rows if i is not None]
        results = self.results
        row = max(0, results.cursor) if keep_cursor else 0
        results.set_row_count(len(self.result_hits))
        results.move_to(min(row, max(0, len(self.result_hits) - 1)))
        results.refresh()

    def worker_failed(self, group: str, problem: str) -> None:
        if group == "search":
            self.search_state = f"[error]search failed: {problem}"
            self.update_status()
        else:
            super().worker_failed(group, problem)

    def update_status(self) -> None:
        status = Text()
        state = self.search_state
        r = self.result
        if state.startswith("[error]"):
            status.append(state[7:], "bold red")
        elif self.search_query is None:
            # 76 cells with the fuzzy switch after it: one line in an 80-column terminal
            status.append("Type to search · Enter: results · Esc: results and back", "dim")
        else:
            if r is not None:
                exact = sum(1 for h in r.hits if not h.fuzzy)
                total = f"{count(r.total)}{'' if r.total_exact else '+'}"
                one = r.total == 1 and r.total_exact
                status.append(f"{total} exact {'match' if one else 'matches'}", "bold")
                if exact < len(r.hits):
                    status.append(f" · {len(r.hits) - exact} typo-tolerant (~)", "cyan")
                if len(r.hits) < r.total:
                    status.append(f" · {len(r.hits)} shown", "dim")
                if r.left_out:  # not found there: no silent gap in the hits
                    numbers = ", ".join(map(str, r.left_out))
                    status.append(f" · segment {numbers} unreadable, not searched", "bold yellow")
                status.append(" · ", "dim")
            status.append(state, "dim")
        status.append(
            f"   fuzzy {'on' if self.fuzzy else 'off'} (ctrl+t)", "cyan" if self.fuzzy else "dim"
        )
        self.query_one("#search-status", Static).update(status)

    def open_session_hit(self, hit: SearchHit) -> None:
        """A message of an agent session: its conversation there, the session's other
        hits a n/N away."""
        from ..screens.session_conversation import open_session_message

        same = (seq_of(h.origin) for h in self.result_hits if h.origin and h.topic == hit.topic)
        matches = sorted({m for m in same if m is not None})
        open_session_message(self, hit.topic, hit.origin, matches=matches, query=self.search_query)

    @on(VirtualList.Selected, "#results")
    def result_selected(self, event: VirtualList.Selected) -> None:
        if not 0 <= event.row < len(self.rows):
            return
        index = self.rows[event.row]
        if index is None:
            self.open_session_hit(self.result_hits[event.row])
            return
        chosen = self.ResultChosen(index, self.search_query, sorted(self.hits))
        self.post_message(chosen)
