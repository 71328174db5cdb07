"""The newest messages, followed live like `tail -f`, or paused on one record; or,
`ctrl+o`, an agent's session messages in time order (`agent_sources.py`), the journal
kept as it was left for when it shows again."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Static
from textual.worker import get_current_worker

from recorder.search.feed import AGENTS, FEED_SOURCES
from recorder.search.index import SOURCE_BUS
from recorder.search.query import Query
from recorder.store.checkpoints import Checkpoint
from recorder.store.reader import Record

from ..record_filter import RecordFilter
from ..text import count, one_line, plural
from ..widgets.record_list import RecordList
from ..widgets.virtual_list import VirtualList
from .agent_sources import AgentSourcesPane

RECENT_SOURCES = (SOURCE_BUS, *FEED_SOURCES)
"""What ctrl+o cycles through: the journal, each agent's sessions, all of them."""


class RecentPane(AgentSourcesPane):
    """Every record; the cursor follows the newest until the user moves it."""

    BINDINGS = [
        Binding(
            "p",
            "toggle_follow",
            "Pause/follow",
            tooltip="Pause, or follow again: every record (m's filter ends)",
        ),
        Binding(
            "h",
            "toggle_bookkeeping",
            "Heartbeats",
            tooltip="Show or hide heartbeats and the recorder's own events",
        ),
        Binding("c", "context_checkpoint", "Checkpoint", tooltip="Show the nearest checkpoint"),
        Binding(
            "m",
            "toggle_matches_only",
            "Matches only",
            tooltip="Only the hits of the search that led here, paused (until m or p), "
            "or every record again",
        ),
        Binding(
            "o", "conversation", "Conversation", show=False, tooltip="Read the conversation here"
        ),
        Binding(
            "ctrl+o",
            "cycle_source",
            "Source",
            tooltip="The journal (bus), one agent's session messages, or every agent's",
        ),
    ]

    STATUS_KEYS = (
        "toggle_follow",
        "toggle_bookkeeping",
        "context_checkpoint",
        "toggle_matches_only",
    )
    """The actions whose keys the status line names where they apply: a narrow footer
    leaves them out (`KeysFooter`)."""

    class ShowCheckpoint(Message):
        """`c`: show `checkpoint` in the timeline (the screen switches tabs)."""

        def __init__(self, checkpoint: Checkpoint) -> None:
            super().__init__()
            self.checkpoint = checkpoint

    class FilterReady(Message):
        """The worker found which records to show (bookkeeping hidden)."""

        def __init__(self, record_filter: RecordFilter) -> None:
            super().__init__()
            self.record_filter = record_filter

    def __init__(self) -> None:
        super().__init__("3 Recent", id="recent")
        self._bus_at: int | None = None  # the journal's record under the cursor, away from it
        self._records = 0  # the journal's records taken in: "N new" counts those after
        self._bus_highlight: Query | None = None
        self.record_filter: RecordFilter | None = None
        """The records shown when bookkeeping is hidden (None until the worker is done)."""
        self.show_bookkeeping = False
        self.following = True
        self.context_checkpoint: Checkpoint | None = None
        """The nearest checkpoint before a record reached from search."""
        self.search_matches: list[int] = []
        """Every hit of the search that led here (record indices, journal order)."""
        self.matches_only = False
        """Filter mode: only `search_matches` are listed."""
        self._auto_row: int | None = None  # where following last put the cursor
        self._unseen = 0

    def compose(self) -> ComposeResult:
        yield Static(id="recent-status", classes="status-line")
        messages = RecordList(self.papp.clock, id="messages")
        messages.rules = self.papp.reading
        yield messages

    def on_mount(self) -> None:
        self.update_status()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "context_checkpoint":
            return self.context_checkpoint is not None
        if action == "toggle_matches_only":
            return bool(self.search_matches)
        return True

    def journal_changed(self, what: str) -> None:
        state = self.papp.journal
        messages = self.messages
        if self.source != SOURCE_BUS:  # kept up to date for when the journal shows again
            if what == "loaded":
                self.record_filter = None
                self._bus_at = None
                self._records = len(state.store or ())
                if state.store is not None and len(state.store):
                    self.build_filter()
            elif what == "grew":
                if self.record_filter is not None and state.store is not None:
                    self.record_filter.extend(state.store)
                self._count_new()
            self.update_status()
            return
        if what in ("loaded", "checkpoints"):
            messages.boundaries = frozenset((state.boundaries or {}).values())
        if what == "loaded":
            self.record_filter = None
            self._records = len(state.store or ())
            messages.attach(state.store)
            if state.store is not None and len(state.store):
                messages.move_to(len(state.store) - 1, -1)
                self.build_filter()
            self._auto_row = messages.cursor
        elif what == "grew":
            if self.following and messages.cursor != self._auto_row:
                self.following = False  # the user moved since our last move: stay there
            if self.record_filter is not None and state.store is not None:
                self.record_filter.extend(state.store)
            messages.sync()
            if self.following:
                messages.move_to(messages.row_count - 1, -1)
                self._auto_row = messages.cursor
            self._count_new()
        self.update_status()

    def _count_new(self) -> None:
        """Paused, "N new" counts the records that arrived and that the journal's list
        has without `m`'s filter (bookkeeping as `h` has it): those below the cursor
        once it ends, whether or not the search's hits alone are listed (or an agent's
        messages)."""
        store = self.papp.journal.store
        if store is None:
            return
        start, self._records = self._records, len(store)
        if self.following:
            return
        f = self.record_filter
        if f is None:
            self._unseen += len(store) - start
        else:
            self._unseen += (f.everything if self.show_bookkeeping else f.indices).rows_from(start)

    # -- bookkeeping hidden or shown -------------------------------------------------
    @work(thread=True, exclusive=True, group="recent-filter", exit_on_error=False)
    def build_filter(self) -> None:
        worker = get_current_worker()
        found = RecordFilter()
        done = self.papp.with_reader(lambda store: found.extend(store, lambda: worker.is_cancelled))
        if done and not worker.is_cancelled:
            self.post_message(self.FilterReady(found))

    def on_recent_pane_filter_ready(self, message: FilterReady) -> None:
        store = self.papp.journal.store
        if store is None:
            return
        message.record_filter.extend(store)  # what arrived meanwhile
        self.record_filter = message.record_filter
        if self.source == SOURCE_BUS:
            self._show_rows()
        self.update_status()

    def action_toggle_matches_only(self) -> None:
        if self._not_for_agents("m"):
            return
        self.matches_only = not self.matches_only and bool(self.search_matches)
        self._show_rows()  # when following: on the newest hit
        if self.matches_only:
            self.following = False  # a search's hits are not followed: p ends the filter
        self.update_status()

    def action_toggle_bookkeeping(self) -> None:
        if self._not_for_agents("h"):
            return
        self.show_bookkeeping = not self.show_bookkeeping
        self._show_rows()
        self.update_status()

    def _show_rows(self, at: int | None = None) -> None:
        """Attach all records or the filtered ones, the cursor on the same record (or
        record `at`)."""
        messages = self.messages
        store = self.papp.journal.store
        current = messages.record_index(messages.cursor) if at is None else at
        f = self.record_filter
        if self.matches_only:
            messages.attach(store, self.search_matches, ascending=True)
        elif f is None:
            messages.attach(store)
        else:
            messages.attach(
                store, f.everything if self.show_bookkeeping else f.indices, ascending=True
            )
        if self.following or current is None:
            messages.move_to(messages.row_count - 1, -1)
            self._auto_row = messages.cursor
        else:
            row = messages.row_of(current)
            if row is None and f is not None:
                row = f.row_of(current)
            messages.move_to(row or 0, center=True)

    def row_for(self, index: int) -> int:
        """The row of record `index`; bookkeeping is shown when it is one (a search hit)."""
        row = self.messages.row_of(index)
        if row is None and not self.show_bookkeeping:
            self.show_bookkeeping = True
            self._show_rows()
            row = self.messages.row_of(index)
        return index if row is None else row

    def jump_to(self, index: int, query: Query | None, matches: list[int] | None = None) -> None:
        """Show record `index` paused, `query` highlighted, with its nearest checkpoint;
        the conversation opened from here steps through `matches` with n/N."""
        self.show_source(SOURCE_BUS)
        self.search_matches = matches or []
        if self.matches_only:
            self._show_rows()  # the new search's hits
        state = self.papp.journal
        self.following = False
        self._unseen = 0
        bounds = state.boundaries or {}
        before = [cp for cp in state.checkpoints or [] if bounds.get(cp.id, 1 << 62) <= index]
        self.context_checkpoint = before[0] if before else None
        messages = self.messages
        messages.highlight = query
        messages.move_to(self.row_for(index), center=True)
        self.update_status()
        self.refresh_bindings()

    def action_conversation(self) -> None:
        from ..screens.conversation import ConversationScreen

        if self.source != SOURCE_BUS:
            self.open_feed_message(self.messages.cursor)
            return
        index = self.messages.record_index(self.messages.cursor)
        if index is not None and self.papp.journal.store is not None:
            query = self.messages.highlight
            matches = self.search_matches if query is not None else []
            self.app.push_screen(ConversationScreen(index, matches=matches, query=query))

    def copy_highlighted(self) -> None:
        """The highlighted record: its stored line to the clipboard (OSC 52) and a file."""
        from ..records_io import save_records

        rec = self.highlighted_record()
        if rec is None:
            self.notify("No record to copy.", severity="warning")
            return
        try:
            path = save_records(self.papp.exports_dir, [rec], f"record-{rec.seq}")
        except OSError as exc:
            self.notify(f"Could not save the record: {exc}", severity="error")
            return
        self.app.copy_to_clipboard(rec.line.decode("utf-8", "replace"))
        self.notify(f"Record copied (OSC 52); also saved to {path}", timeout=10)

    def highlighted_record(self) -> Record | None:
        """The record under the cursor (an agent's message once read), if any."""
        messages = self.messages
        if self.source != SOURCE_BUS:
            return self.feed_record(messages.cursor)
        index = messages.record_index(messages.cursor)
        store = self.papp.journal.store
        return None if index is None or store is None else store.record(index)

    def action_context_checkpoint(self) -> None:
        if self._not_for_agents("c"):
            return
        if self.context_checkpoint is not None:
            self.post_message(self.ShowCheckpoint(self.context_checkpoint))

    @on(VirtualList.Highlighted, "#messages")
    def message_highlighted(self, event: VirtualList.Highlighted) -> None:
        messages = self.messages
        if self.source != SOURCE_BUS:
            return  # an agent source is not followed
        if event.row != messages.cursor or event.row == self._auto_row:
            return  # a stale message, or the move following made itself
        self._auto_row = None
        at_end = event.row >= messages.row_count - 1
        if self.following and not at_end:
            self.following = False
            self.update_status()
        elif at_end and not (self.following or self.matches_only or self.context_checkpoint):
            self.resume_following()  # G: but a search's hits (m) stay until m

    @on(VirtualList.Selected, "#messages")
    def message_selected(self, event: VirtualList.Selected) -> None:
        if self.source != SOURCE_BUS:
            self.open_feed_message(event.row)
            return
        messages = self.messages
        index = messages.record_index(event.row)
        store = self.papp.journal.store
        if index is not None and store is not None:
            record = store.record(index)
            self.papp.show_record(record, messages.highlight, navigate=self.neighbour)

    def neighbour(self, index: int, step: int) -> Record | None:
        """The record after (step 1) or before (-1) record `index` in this list."""
        messages = self.messages
        store = self.papp.journal.store
        row = messages.row_of(index)
        if row is None or store is None:
            return None
        found = messages.record_index(row + step) if row + step >= 0 else None
        if found is None:
            return None
        messages.move_to(row + step, step)
        return store.record(found)

    def action_toggle_follow(self) -> None:
        if self._not_for_agents("p"):
            return
        if self.following:
            self.following = False
            self.update_status()
        else:
            self.resume_following()

    def resume_following(self) -> None:
        """Follow the newest record: a search's checkpoint, highlight and hits-only list
        (m) end, since the live journal is every record."""
        self.following = True
        self._unseen = 0
        self.context_checkpoint = None
        if self.matches_only:
            self.matches_only = False
            self._show_rows()
        messages = self.messages
        messages.highlight = None
        messages.move_to(messages.row_count - 1, -1)
        self._auto_row = messages.cursor
        self.update_status()
        self.refresh_bindings()

    # -- agent sources ------------------------------------------------------------
    def action_cycle_source(self) -> None:
        """ctrl+o: bus → claude → gemini → codex → every agent → bus."""
        order = RECENT_SOURCES
        source = order[(order.index(self.source) + 1) % len(order)]
        self.show_source(source)
        what = {SOURCE_BUS: "the journal (bus)", AGENTS: "every agent's sessions"}
        self.notify(f"Recent: {what.get(source, f'{source} sessions')}", timeout=2)

    def show_source(self, source: str) -> None:
        """List `source`; back on the journal, as it was left (following or on the
        same record, filters as they were)."""
        if source == self.source:
            return
        messages = self.messages
        if self.source == SOURCE_BUS:
            self._bus_at = None if self.following else messages.record_index(messages.cursor)
            self._bus_highlight = messages.highlight
        self.list_source(source)
        if source == SOURCE_BUS:
            messages.highlight = self._bus_highlight
            messages.boundaries = frozenset((self.papp.journal.boundaries or {}).values())
            self._show_rows(self._bus_at)
        self.update_status()
        self.refresh_bindings()

    def on_resize(self) -> None:
        self.update_status()  # its wording depends on the width

    def update_status(self) -> None:
        """Who is listed and what the keys do now (two lines at most at 80 columns); a
        search's nearest checkpoint on a line of its own, cut rather than wrapped (its
        key first on a narrow screen), so that it always shows."""
        status_line = self.query_one("#recent-status", Static)
        if self.source != SOURCE_BUS:
            status_line.update(self.feed_status())
            return
        store = self.papp.journal.store
        status = Text()
        if store is None and self.papp.journal.removed:
            status.append("✖ the journal was removed", "bold red")
            status.append("  (segments/ is gone: a new one shows once recorded)", "dim")
        elif store is None:
            status.append("No journal yet.", "dim")
        elif self.following:
            status.append("● following", "bold green")
            status.append(f"  {count(len(store))} records · p pauses", "dim")
        else:
            status.append("❚❚ paused", "bold yellow")
            if self._unseen:
                status.append(f"  {count(self._unseen)} new", "bold")
            # G is the newest hit in filter mode, and p ends the filter
            keys = "p follows every record" if self.matches_only else "p or G follows"
            status.append(f"  {keys} again", "dim")
        if store is not None and self.record_filter is not None:
            hidden = self.record_filter.scanned - len(self.record_filter)
            if self.show_bookkeeping:
                status.append("  · h hides heartbeats and events", "dim")
            elif hidden:
                what = plural(hidden, "heartbeat or event", "heartbeats and events")
                status.append(f"  · {what} hidden (h shows)", "dim")
        if self.matches_only:
            shown = plural(len(self.search_matches), "search hit", "search hits")
            status.append(f"  · only the {shown} (m shows every record)", "bold cyan")
        elif self.search_matches:
            status.append("  · m lists only the search's hits", "dim")
        cp = self.context_checkpoint
        if cp is None:
            status_line.update(status)
            return
        line = Text(no_wrap=True, overflow="ellipsis")
        label = one_line(cp.label or cp.id, 60)
        if self.screen.has_class("-narrow"):  # the key first: a long label is what is cut
            line.append("◆ c shows the checkpoint before: ", "cyan")
            line.append(f"{label} ", "bold")
            line.append(self.papp.clock.when(cp.created).strip(), "dim")
        else:
            line.append("◆ nearest checkpoint before: ", "cyan")
            line.append(f"{label} ", "bold")
            line.append(f"{self.papp.clock.stamp(cp.created)} — c shows it", "dim")
        status_line.update(Group(status, line))
