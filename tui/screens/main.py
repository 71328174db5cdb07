"""The main screen: checkpoints, search, recent messages and diagnostics in tabs."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Sparkline, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from recorder.launch.selection import Selection
from recorder.search.query import Query, QueryError, parse_query
from recorder.search.scan import SearchProgress
from recorder.store.checkpoints import Checkpoint

from ..activity import Activity, compute_activity
from ..diagnostics import Diagnostics
from ..preview import Preview, build_preview
from ..text import count, one_line
from ..widgets.activity_strip import ActivityStrip
from ..widgets.checkpoint_list import CheckpointList
from ..widgets.diagnostics_view import STATE_ICONS, STATE_STYLES, render_diagnostics
from ..widgets.preview_pane import render_preview
from ..widgets.record_list import RecordList
from ..widgets.virtual_list import VirtualList

if TYPE_CHECKING:
    from ..app import PersistApp

TABS = ("checkpoints", "search", "recent", "diagnostics")
SEARCH_DEBOUNCE = 0.12
RATE_HISTORY = 120


class MainScreen(Screen[None]):
    """Four panes in tabs; number keys switch, Tab moves between panes."""

    BINDINGS = [
        Binding("1", "show_tab('checkpoints')", "Checkpoints", tooltip="Checkpoint timeline"),
        Binding("2", "show_tab('search')", "Search", show=False),
        Binding("slash", "search", "Search", tooltip="Search the journal"),
        Binding("3", "show_tab('recent')", "Recent", tooltip="Newest messages, live"),
        Binding("4", "show_tab('diagnostics')", "Diagnostics", tooltip="Recorder health"),
        Binding("r", "restore", "Restore", tooltip="Restore the highlighted checkpoint"),
        Binding("p", "toggle_follow", "Pause/follow", tooltip="Pause or resume following"),
        Binding("c", "context_checkpoint", "Checkpoint", tooltip="Show the nearest checkpoint"),
        Binding("ctrl+t", "toggle_fuzzy", "Fuzzy", tooltip="Typo-tolerant matching on/off"),
        Binding("escape", "leave_search", "Back", show=False),
        Binding("question_mark", "app.help", "Help"),
        Binding("q", "app.quit", "Quit", tooltip="Quit without choosing"),
    ]

    class PreviewReady(Message):
        def __init__(self, preview: Preview) -> None:
            super().__init__()
            self.preview = preview

    class ActivityReady(Message):
        def __init__(self, activity: Activity | None) -> None:
            super().__init__()
            self.activity = activity

    class SearchBatch(Message):
        def __init__(self, generation: int, progress: SearchProgress) -> None:
            super().__init__()
            self.generation = generation
            self.progress = progress

    class DiagnosticsSample(Message):
        def __init__(self, diagnostics: Diagnostics) -> None:
            super().__init__()
            self.diagnostics = diagnostics

    def __init__(self) -> None:
        super().__init__()
        self.following = True
        self._auto_row: int | None = None  # where following last put the cursor
        self.fuzzy = True
        self.preview: Preview | None = None
        self.diagnostics: Diagnostics | None = None
        self.rates: deque[float] = deque(maxlen=RATE_HISTORY)
        self.hits: list[int] = []
        self.search_generation = 0
        self.search_state = ""
        self.search_query: Query | None = None
        self.context_checkpoint: Checkpoint | None = None
        self._pending_launch: str | None = None
        self._unseen = 0
        self._search_timer: Any = None

    @property
    def papp(self) -> PersistApp:
        return self.app  # type: ignore[return-value]

    # -- layout ------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        clock = self.papp.clock
        yield Static(id="top-bar")
        with TabbedContent(initial="checkpoints", id="tabs"):
            with TabPane("1 Checkpoints", id="checkpoints"):
                yield ActivityStrip(clock, id="activity")
                with Horizontal(id="cp-body"):
                    yield CheckpointList(clock, id="cp-list")
                    with VerticalScroll(id="preview-pane"):
                        yield Static(id="preview")
                yield Static(id="cp-empty", classes="empty")
            with TabPane("2 Search", id="search"):
                yield Input(
                    placeholder='words  "a phrase"  from:NAME  topic:NAME  since:2h  until:10:30',
                    id="search-input",
                )
                yield Static(id="search-status", classes="status-line")
                yield RecordList(clock, id="results")
            with TabPane("3 Recent", id="recent"):
                yield Static(id="recent-status", classes="status-line")
                yield RecordList(clock, id="messages")
            with TabPane("4 Diagnostics", id="diagnostics"), VerticalScroll(id="diag-pane"):
                yield Static(id="diag")
                with Vertical(id="rate-box"):
                    yield Static("Message rate (received/s, last 2 min)", id="rate-title")
                    yield Sparkline([], id="rate-graph")
        yield Footer()

    def on_mount(self) -> None:
        self.papp.journal_changed.subscribe(self, self.on_journal_changed)
        self.query_one("#cp-body").display = False
        self.query_one("#cp-empty").display = False
        self.query_one("#preview-pane").can_focus = True
        self.query_one("#rate-box").display = False
        self.update_top_bar()
        self.update_recent_status()
        self.update_search_status()
        self.query_one("#preview", Static).update(Text("Opening the journal…", style="dim"))
        self.sample_diagnostics()
        if self.papp.live:
            self.set_interval(self.papp.diagnostics_interval, self.sample_diagnostics)
        if self.papp.journal.loaded:
            self.on_journal_changed("loaded")
        self.query_one("#cp-list").focus()

    # -- journal updates (from the app) ------------------------------------------
    def on_journal_changed(self, what: str) -> None:
        state = self.papp.journal
        cp_list = self.query_one("#cp-list", CheckpointList)
        messages = self.query_one("#messages", RecordList)
        results = self.query_one("#results", RecordList)
        if what in ("loaded", "checkpoints"):
            checkpoints = state.checkpoints or []
            boundaries = frozenset((state.boundaries or {}).values())
            messages.boundaries = results.boundaries = boundaries
            cp_list.set_checkpoints(checkpoints)
            has_cps = bool(checkpoints)
            self.query_one("#cp-body").display = has_cps
            self.query_one("#activity").display = has_cps
            self.query_one("#cp-empty").display = not has_cps
            if not has_cps:
                self.query_one("#cp-empty", Static).update(self.empty_message())
            self.compute_activity()
        if what == "loaded":
            messages.attach(state.store)
            results.attach(state.store, self.hits)
            if state.store is not None and len(state.store):
                messages.move_to(len(state.store) - 1, -1)
            self._auto_row = messages.cursor
            if self.papp.ready_at is None:
                self.papp.ready_at = time.perf_counter()
            if self._pending_launch:
                choice, self._pending_launch = self._pending_launch, None
                self.launch_action(choice)
            if self.search_query is not None:
                self.start_search()
        elif what == "grew":
            before = messages.row_count
            if self.following and messages.cursor != self._auto_row:
                self.following = False  # the user moved since our last move: stay there
            messages.sync()
            if self.following:
                messages.move_to(messages.row_count - 1, -1)
                self._auto_row = messages.cursor
            else:
                self._unseen += messages.row_count - before
        self.update_top_bar()
        self.update_recent_status()

    def empty_message(self) -> Text:
        papp = self.papp
        state = papp.journal
        text = Text()
        if state.error:
            text.append(f"{state.error}\n\n", "bold red")
        if state.store is None:
            text.append("No journal here yet\n", "bold")
            text.append(f"{papp.log_dir}\n\n", "dim")
            text.append("Start the recorder, then come back (this view updates by itself):\n\n")
        else:
            text.append("No checkpoints yet\n", "bold")
            text.append(f"{count(len(state.store))} records in {papp.log_dir}\n\n", "dim")
            text.append("The recorder writes one periodically; "
                        "press 3 to see the recent messages.\n\n")
            if papp.health().running:
                return text
            text.append("The recorder is not running. Start it with:\n\n")
        text.append(f"  {papp.start_command()}\n", "bold cyan")
        return text

    def update_top_bar(self) -> None:
        papp = self.papp
        bar = Text()
        bar.append(" persist ", "bold reverse")
        if papp.agent:
            bar.append(f" {one_line(papp.agent, 40)} ·", "bold")
        bar.append(f" {one_line(str(papp.log_dir), 200)}", "dim")
        diag = self.diagnostics
        if diag is not None:
            state = diag.health.state
            bar.append(f"  {STATE_ICONS[state]} {state}", STATE_STYLES[state])
        store = papp.journal.store
        if store is not None:
            bar.append(f"  {count(len(store))} records", "")
        cps = papp.journal.checkpoints
        if cps is not None:
            bar.append(f" · {len(cps)} checkpoints", "")
        self.query_one("#top-bar", Static).update(bar)

    # -- checkpoints -------------------------------------------------------------
    @on(VirtualList.Highlighted, "#cp-list")
    def checkpoint_highlighted(self, event: VirtualList.Highlighted) -> None:
        cp = self.query_one("#cp-list", CheckpointList).highlighted
        self.query_one("#activity", ActivityStrip).selected = cp.created if cp else None
        self.show_preview()
        if cp is not None and (self.preview is None or self.preview.checkpoint.id != cp.id):
            self.load_preview(cp, self.previous_checkpoint(cp))

    @on(VirtualList.Selected, "#cp-list")
    def checkpoint_selected(self, event: VirtualList.Selected) -> None:
        self.action_restore()

    def previous_checkpoint(self, cp: Checkpoint) -> Checkpoint | None:
        cps = self.papp.journal.checkpoints or []
        older = [c for c in cps if c.seq < cp.seq]
        return older[0] if older else None

    @work(thread=True, exclusive=True, group="preview", exit_on_error=False)
    def load_preview(self, cp: Checkpoint, previous: Checkpoint | None) -> None:
        worker = get_current_worker()
        pv = self.papp.with_reader(
            lambda store: build_preview(store, cp, previous, lambda: worker.is_cancelled)
        )
        if pv is not None and not worker.is_cancelled:
            self.post_message(self.PreviewReady(pv))

    def on_main_screen_preview_ready(self, message: PreviewReady) -> None:
        self.preview = message.preview
        self.show_preview()

    def show_preview(self) -> None:
        cp = self.query_one("#cp-list", CheckpointList).highlighted
        self.query_one("#preview", Static).update(render_preview(self.preview, cp, self.papp.clock))

    @work(thread=True, exclusive=True, group="activity", exit_on_error=False)
    def compute_activity(self) -> None:
        marks = [cp.created for cp in self.papp.journal.checkpoints or []]
        act = self.papp.with_reader(lambda store: compute_activity(store, marks))
        self.post_message(self.ActivityReady(act))

    def on_main_screen_activity_ready(self, message: ActivityReady) -> None:
        self.query_one("#activity", ActivityStrip).activity = message.activity

    def action_restore(self, checkpoint: Checkpoint | None = None) -> None:
        from .restore import RestoreScreen

        cp = checkpoint or self.query_one("#cp-list", CheckpointList).highlighted
        if cp is None:
            self.notify("No checkpoint to restore yet.", severity="warning")
            return
        papp = self.papp

        def done(confirmed: bool | None) -> None:
            if confirmed and screen.verification is not None:
                v = screen.verification
                papp.choose(Selection.from_checkpoint(
                    cp, papp.log_dir, verified=v.ok, problems=v.problems, agent=papp.agent))

        screen = RestoreScreen(cp)
        self.app.push_screen(screen, done)

    # -- tabs --------------------------------------------------------------------
    @property
    def active_tab(self) -> str:
        return self.query_one("#tabs", TabbedContent).active

    def action_show_tab(self, tab: str) -> None:
        tabs = self.query_one("#tabs", TabbedContent)
        tabs.active = tab
        focus = {"checkpoints": "#cp-list", "search": "#search-input", "recent": "#messages",
                 "diagnostics": "#diag-pane"}[tab]
        self.query_one(focus).focus()

    @on(TabbedContent.TabActivated)
    def tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        tab = self.active_tab if self.is_mounted else "checkpoints"
        if action == "restore":
            return tab == "checkpoints"
        if action == "toggle_follow":
            return tab == "recent"
        if action == "context_checkpoint":
            return tab == "recent" and self.context_checkpoint is not None
        if action == "toggle_fuzzy":
            return tab == "search"
        if action == "leave_search":
            return tab == "search"
        return True

    def action_search(self) -> None:
        self.action_show_tab("search")

    def action_leave_search(self) -> None:
        inp = self.query_one("#search-input", Input)
        if inp.has_focus and inp.value:
            inp.value = ""
        elif inp.has_focus:
            self.query_one("#results").focus()
        else:
            inp.focus()

    # -- search ------------------------------------------------------------------
    @on(Input.Changed, "#search-input")
    def search_changed(self, event: Input.Changed) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        self._search_timer = self.set_timer(SEARCH_DEBOUNCE, self.start_search)

    @on(Input.Submitted, "#search-input")
    def search_submitted(self, event: Input.Submitted) -> None:
        results = self.query_one("#results", RecordList)
        results.focus()

    def action_toggle_fuzzy(self) -> None:
        self.fuzzy = not self.fuzzy
        self.notify(f"Fuzzy matching {'on' if self.fuzzy else 'off'}", timeout=2)
        self.start_search()

    def start_search(self) -> None:
        """Parse the query and (re)start the search worker; old results are dropped."""
        papp = self.papp
        text = self.query_one("#search-input", Input).value
        self.search_generation += 1
        self.hits.clear()
        results = self.query_one("#results", RecordList)
        try:
            query = parse_query(text, now=papp.clock.now(), fuzzy=self.fuzzy, tz=papp.clock.tz)
        except QueryError as exc:
            self.search_query = None
            self.search_state = f"[error]{exc}"
            results.highlight = None
            results.sync()
            self.update_search_status()
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
        self.update_search_status()

    @work(thread=True, exclusive=True, group="search", exit_on_error=False)
    def run_search(self, query: Query, generation: int) -> None:
        worker = get_current_worker()
        for progress in self.papp.searcher.search(query, cancelled=lambda: worker.is_cancelled):
            if worker.is_cancelled:
                return
            self.post_message(self.SearchBatch(generation, progress))

    def on_main_screen_search_batch(self, message: SearchBatch) -> None:
        if message.generation != self.search_generation:
            return
        p = message.progress
        self.hits.extend(h.index for h in p.hits)
        results = self.query_one("#results", RecordList)
        results.sync()
        if results.cursor < 0 and self.hits:
            results.move_to(0)
        pct = 100 * p.scanned // p.total if p.total else 100
        if p.done:
            self.search_state = "done" + (" (result limit reached)" if p.limited else "")
        else:
            self.search_state = f"searching… {pct}% of {count(p.total)} records"
        self.update_search_status()

    def update_search_status(self) -> None:
        status = Text()
        state = self.search_state
        if state.startswith("[error]"):
            status.append(state[7:], "bold red")
        elif self.search_query is None:
            status.append("Type to search. Enter: results · Esc: back to the field · "
                          "ctrl+t: fuzzy", "dim")
        else:
            status.append(f"{count(len(self.hits))} matches", "bold")
            status.append(f" · {state}", "dim")
        status.append(f"   fuzzy {'on' if self.fuzzy else 'off'}", "cyan" if self.fuzzy else "dim")
        self.query_one("#search-status", Static).update(status)

    @on(VirtualList.Selected, "#results")
    def result_selected(self, event: VirtualList.Selected) -> None:
        results = self.query_one("#results", RecordList)
        index = results.record_index(event.row)
        if index is not None:
            self.jump_to(index)

    def jump_to(self, index: int) -> None:
        """Show record `index` in the recent view, paused, with its nearest checkpoint."""
        state = self.papp.journal
        self.following = False
        self._unseen = 0
        bounds = state.boundaries or {}
        before = [cp for cp in state.checkpoints or [] if bounds.get(cp.id, 1 << 62) <= index]
        self.context_checkpoint = before[0] if before else None
        self.action_show_tab("recent")
        messages = self.query_one("#messages", RecordList)
        messages.highlight = self.search_query
        messages.move_to(index, center=True)
        self.update_recent_status(jumped=index)
        self.refresh_bindings()

    def action_context_checkpoint(self) -> None:
        cp = self.context_checkpoint
        if cp is None:
            return
        self.action_show_tab("checkpoints")
        self.query_one("#cp-list", CheckpointList).select_id(cp.id)

    # -- recent ------------------------------------------------------------------
    @on(VirtualList.Highlighted, "#messages")
    def message_highlighted(self, event: VirtualList.Highlighted) -> None:
        messages = self.query_one("#messages", RecordList)
        if event.row != messages.cursor or event.row == self._auto_row:
            return  # a stale message, or the move following made itself
        self._auto_row = None
        at_end = event.row >= messages.row_count - 1
        if self.following and not at_end:
            self.following = False
            self.update_recent_status()
        elif not self.following and at_end and self.context_checkpoint is None:
            self.resume_following()

    @on(VirtualList.Selected, "#messages")
    def message_selected(self, event: VirtualList.Selected) -> None:
        from .detail import DetailScreen

        messages = self.query_one("#messages", RecordList)
        index = messages.record_index(event.row)
        store = self.papp.journal.store
        if index is not None and store is not None:
            record = store.record(index)
            self.app.push_screen(DetailScreen(record, self.papp.clock, messages.highlight))

    def action_toggle_follow(self) -> None:
        if self.following:
            self.following = False
            self.update_recent_status()
        else:
            self.resume_following()

    def resume_following(self) -> None:
        self.following = True
        self._unseen = 0
        self.context_checkpoint = None
        messages = self.query_one("#messages", RecordList)
        messages.highlight = None
        messages.move_to(messages.row_count - 1, -1)
        self._auto_row = messages.cursor
        self.update_recent_status()
        self.refresh_bindings()

    def update_recent_status(self, jumped: int | None = None) -> None:
        store = self.papp.journal.store
        status = Text()
        if store is None:
            status.append("No journal yet.", "dim")
        elif self.following:
            status.append("● following", "bold green")
            status.append(f"  {count(len(store))} records · p pauses", "dim")
        else:
            status.append("❚❚ paused", "bold yellow")
            if self._unseen:
                status.append(f"  {count(self._unseen)} new", "bold")
            status.append("  p or G follows again", "dim")
        cp = self.context_checkpoint
        if cp is not None:
            status.append("\n◆ nearest checkpoint before: ", "cyan")
            status.append(f"{one_line(cp.label or cp.id, 60)} ", "bold")
            status.append(f"{self.papp.clock.stamp(cp.created)} — c shows it", "dim")
        self.query_one("#recent-status", Static).update(status)

    # -- diagnostics -------------------------------------------------------------
    @work(thread=True, exclusive=True, group="diagnostics", exit_on_error=False)
    def sample_diagnostics(self) -> None:
        papp = self.papp
        diag = papp.probe.collect(papp.log_dir, papp.clock.now())
        self.post_message(self.DiagnosticsSample(diag))

    def on_main_screen_diagnostics_sample(self, message: DiagnosticsSample) -> None:
        diag = message.diagnostics
        was_running = self.diagnostics.health.running if self.diagnostics else None
        self.diagnostics = diag
        self.rates.append(float(diag.rate or 0.0) if diag.health.running else 0.0)
        self.query_one("#diag", Static).update(render_diagnostics(diag, self.papp.clock))
        graph = self.query_one("#rate-graph", Sparkline)
        graph.data = list(self.rates)
        self.query_one("#rate-box").display = diag.health.running and len(self.rates) > 1
        self.update_top_bar()
        if was_running != diag.health.running and not (self.papp.journal.checkpoints or []):
            self.query_one("#cp-empty", Static).update(self.empty_message())

    # -- launch menu and palette -------------------------------------------------
    def launch_action(self, choice: str) -> None:
        """Act on a launch-menu choice other than fresh/quit."""
        if choice == "continue":
            state = self.papp.journal
            if not state.loaded:
                self._pending_launch = choice
                return
            if state.checkpoints:
                self.action_show_tab("checkpoints")
                self.action_restore(state.checkpoints[0])
            else:
                self.notify("There is no checkpoint yet.", severity="warning")
        elif choice in ("pick", "checkpoints"):
            self.action_show_tab("checkpoints")
        elif choice in TABS:
            self.action_show_tab(choice)

    def commands(self) -> Iterator[SystemCommand]:
        yield SystemCommand("Checkpoints", "Show the checkpoint timeline (1)",
                            lambda: self.action_show_tab("checkpoints"))
        yield SystemCommand("Search", "Search the journal (/)", self.action_search)
        yield SystemCommand("Recent messages", "Follow the newest messages (3)",
                            lambda: self.action_show_tab("recent"))
        yield SystemCommand("Diagnostics", "Recorder health (4)",
                            lambda: self.action_show_tab("diagnostics"))
        yield SystemCommand("Restore checkpoint", "Restore the highlighted checkpoint (r)",
                            lambda: self.action_restore())
        yield SystemCommand("Restore latest checkpoint", "Confirm and restore the newest one",
                            lambda: self.launch_action("continue"))
        yield SystemCommand("Pause / resume following", "Toggle tail -f in Recent (p)",
                            self.action_toggle_follow)
        yield SystemCommand("Toggle fuzzy matching", "Typo-tolerant search on/off (ctrl+t)",
                            self.action_toggle_fuzzy)
