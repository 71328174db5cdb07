"""The main screen: the top bar and four panes in tabs (see tui/panes/), wired together."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static, TabbedContent

from ..diagnostics import HealthUnknown
from ..panes import CheckpointsPane, DiagnosticsPane, RecentPane, SearchPane
from ..text import one_line, plural
from ..widgets.diagnostics_view import STATE_ICONS, STATE_STYLES
from ..widgets.keys_footer import KeysFooter

if TYPE_CHECKING:
    from ..app import PersistApp

TABS = ("checkpoints", "search", "recent", "diagnostics")
FOCUS = {
    "checkpoints": "#cp-list",
    "recent": "#messages",
    "diagnostics": "#diag-pane",
}
"""What gets the focus when a tab is shown (Search: its pane's `focus_tab`)."""


class MainScreen(Screen[None]):
    """Four panes in tabs; number keys switch, Tab moves between panes.

    Each pane has its own keys, workers and state; the screen passes journal changes
    to them and carries what one pane asks of another (a search result to show in
    Recent, a checkpoint to show in the timeline).
    """

    BINDINGS = [
        # the tab bar shows the number keys ("1 Checkpoints"): the footer leaves them out
        # so that an 80-column footer has room for the keys shown nowhere else
        Binding(
            "1", "show_tab('checkpoints')", "Checkpoints", show=False, tooltip="Checkpoint timeline"
        ),
        Binding(
            "2",
            "show_tab('search')",
            "Search",
            show=False,
            tooltip="Search tab: its hits (the field when there are none)",
        ),
        Binding("slash", "search", "Search", tooltip="The search field, its query kept"),
        Binding("3", "show_tab('recent')", "Recent", show=False, tooltip="Newest messages, live"),
        Binding(
            "4", "show_tab('diagnostics')", "Diagnostics", show=False, tooltip="Recorder health"
        ),
        Binding("question_mark", "app.help", "Help"),
        Binding("q", "app.quit", "Quit", tooltip="Quit without choosing"),
        Binding("escape", "launch_menu", "Menu", tooltip="Back to the launch menu"),
        Binding("f", "fresh", "Start fresh", tooltip="Start the agent with no history"),
        # the app's `S`, named here so that the footer shows it (but for a launch: its
        # menu lists the agent's sessions)
        Binding("S", "sessions", "Sessions", tooltip="Claude Code, Gemini CLI and Codex sessions"),
        # A pane's own keys, for when focus is outside it (on the tab bar, say): they
        # act on the pane of the tab on show. The pane's bindings are the ones listed.
        Binding("r", "in_pane('checkpoints', 'restore')", show=False),
        Binding("p", "in_pane('recent', 'toggle_follow')", show=False),
        Binding("c", "in_pane('recent', 'context_checkpoint')", show=False),
        Binding("ctrl+t", "in_pane('search', 'toggle_fuzzy')", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._pending_launch: str | None = None
        # (running, unknown) as the checkpoints pane last said it: whether to start one
        self._recorder_said: tuple[bool, bool] | None = None
        self._error_seen: str | None = None  # the journal error the last sample followed

    @property
    def papp(self) -> PersistApp:
        return self.app  # type: ignore[return-value]

    @property
    def checkpoints_pane(self) -> CheckpointsPane:
        return self.query_one(CheckpointsPane)

    @property
    def search_pane(self) -> SearchPane:
        return self.query_one(SearchPane)

    @property
    def recent_pane(self) -> RecentPane:
        return self.query_one(RecentPane)

    @property
    def diagnostics_pane(self) -> DiagnosticsPane:
        return self.query_one(DiagnosticsPane)

    # -- layout ------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="top-bar")
        with TabbedContent(initial="checkpoints", id="tabs"):
            yield CheckpointsPane()
            yield SearchPane()
            yield RecentPane()
            yield DiagnosticsPane()
        yield KeysFooter(RecentPane.STATUS_KEYS)

    def on_mount(self) -> None:
        self.papp.journal_changed.subscribe(self, self.on_journal_changed)
        self.update_top_bar()
        if self.papp.journal.loaded:
            self.on_journal_changed("loaded")
        self.query_one("#cp-list").focus()

    # -- journal updates (from the app) ------------------------------------------
    def on_journal_changed(self, what: str) -> None:
        self.checkpoints_pane.journal_changed(what)
        self.search_pane.journal_changed(what)
        self.recent_pane.journal_changed(what)
        error = self.papp.journal.error
        if error != self._error_seen:  # the folder unreadable, or readable again: the
            self._error_seen = error  # recorder's health may have become unknown, or known
            self.diagnostics_pane.sample(periodic=False)  # now, not at the next sample
        if what == "loaded":
            if self.papp.ready_at is None:
                self.papp.ready_at = time.perf_counter()
            if self._pending_launch:
                choice, self._pending_launch = self._pending_launch, None
                self.launch_action(choice)
        self.update_top_bar()

    def update_top_bar(self) -> None:
        papp = self.papp
        bar = Text(no_wrap=True, overflow="ellipsis")
        bar.append(" persist ", "bold reverse")
        diag = self.diagnostics_pane.diagnostics
        if diag is not None:  # first: it must survive a narrow terminal
            state = diag.health.state
            bar.append(f" {STATE_ICONS[state]} {state}", STATE_STYLES[state])
        if papp.agent:
            bar.append(f"  {one_line(papp.agent, 40)}", "bold")
        store = papp.journal.store
        if papp.journal.error:  # what was read before is not counted as the present
            bar.append("  cannot read the log folder", "bold red")
        elif store is not None:
            bar.append(f"  {plural(len(store), 'record')}", "")
        elif papp.journal.removed:
            bar.append("  journal removed", "bold red")
        cps = papp.journal.checkpoints
        if cps is not None and not papp.journal.error:
            bar.append(f" · {plural(len(cps), 'checkpoint')}", "")
            sessions = len(papp.journal.session_checkpoints)
            if sessions:  # the timeline lists them too: its count is the sum
                bar.append(f" + {sessions:,} of agent sessions", "")
        bar.append(f"  {one_line(papp.folder, 200)}", "dim")
        self.query_one("#top-bar", Static).update(bar)

    # -- between panes -----------------------------------------------------------
    def on_diagnostics_pane_sampled(self, message: DiagnosticsPane.Sampled) -> None:
        diag = message.diagnostics
        said = (diag.running, isinstance(diag.health, HealthUnknown))
        self.update_top_bar()
        if said != self._recorder_said:
            self._recorder_said = said
            self.checkpoints_pane.show_empty()  # it says whether to start the recorder

    def on_search_pane_result_chosen(self, message: SearchPane.ResultChosen) -> None:
        self.action_show_tab("recent")
        self.recent_pane.jump_to(message.index, message.query, message.matches)

    def on_recent_pane_show_checkpoint(self, message: RecentPane.ShowCheckpoint) -> None:
        self.action_show_tab("checkpoints")
        self.checkpoints_pane.select(message.checkpoint.id)

    # -- tabs --------------------------------------------------------------------
    @property
    def active_tab(self) -> str:
        return self.query_one("#tabs", TabbedContent).active

    def action_show_tab(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = tab
        if tab == "search":
            self.search_pane.focus_tab()  # its hits, or the field when there are none
        else:
            self.query_one(FOCUS[tab]).focus()

    def action_search(self) -> None:
        """`/`: the search field, its query kept."""
        self.query_one("#tabs", TabbedContent).active = "search"
        self.search_pane.focus_field()

    def action_in_pane(self, tab: str, action: str) -> None:
        """Run a pane's action when its tab is on show (else the key does nothing)."""
        if self.active_tab == tab:
            getattr(self.query_one(f"#{tab}"), f"action_{action}")()

    # -- launch menu and palette -------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("launch_menu", "fresh"):
            return self.papp.launch  # only when an agent is being launched
        if action == "sessions":
            return not self.papp.launch  # the app's own `S` still opens them there
        return True

    def action_launch_menu(self) -> None:
        self.papp.show_launch_menu()

    def action_fresh(self) -> None:
        self.papp.start_fresh()

    def action_sessions(self) -> None:
        self.papp.action_sessions()

    def launch_action(self, choice: str) -> None:
        """Act on a launch-menu choice other than fresh/quit."""
        if choice == "continue":
            state = self.papp.journal
            if not state.loaded:
                self._pending_launch = choice
                return
            if state.checkpoints:
                self.action_show_tab("checkpoints")
                self.checkpoints_pane.action_restore(
                    state.checkpoints[0], on_cancel=self.papp.show_launch_menu
                )
            else:
                self.notify("There is no checkpoint yet.", severity="warning")
        elif choice in ("pick", "checkpoints"):
            self.action_show_tab("checkpoints")
        elif choice == "search":  # the menu's `s` or `/`: the field, as `/` here
            self.action_search()
        elif choice in TABS:
            self.action_show_tab(choice)

    def commands(self) -> Iterator[SystemCommand]:
        yield SystemCommand(
            "Checkpoints",
            "Show the checkpoint timeline (1)",
            lambda: self.action_show_tab("checkpoints"),
        )
        yield SystemCommand("Search", "Search the journal (/)", self.action_search)
        yield SystemCommand(
            "Recent messages",
            "Follow the newest messages (3)",
            lambda: self.action_show_tab("recent"),
        )
        yield SystemCommand(
            "Diagnostics", "Recorder health (4)", lambda: self.action_show_tab("diagnostics")
        )
        yield SystemCommand(
            "Restore checkpoint",
            "Restore the highlighted checkpoint (r)",
            lambda: self.checkpoints_pane.action_restore(),
        )
        yield SystemCommand(
            "Restore latest checkpoint",
            "Confirm and restore the newest one",
            lambda: self.launch_action("continue"),
        )
        yield SystemCommand(
            "Conversation",
            "Read the conversation around the highlighted checkpoint (Enter)",
            lambda: self.checkpoints_pane.action_conversation(),
        )
        yield SystemCommand(
            "Export checkpoint range",
            "The highlighted checkpoint's range as Markdown, in the exports folder",
            lambda: self.checkpoints_pane.export_highlighted(),
        )
        yield SystemCommand(
            "Copy record",
            "The highlighted record in Recent to the clipboard and a file",
            lambda: self.recent_pane.copy_highlighted(),
        )
        yield SystemCommand(
            "Pause / resume following",
            "Toggle tail -f in Recent (p)",
            self.recent_pane.action_toggle_follow,
        )
        yield SystemCommand(
            "Toggle fuzzy matching",
            "Typo-tolerant search on/off (ctrl+t)",
            self.search_pane.action_toggle_fuzzy,
        )
