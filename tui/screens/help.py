"""Every key binding, read from the screens and widgets that declare them."""

from __future__ import annotations

from collections.abc import Callable

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from recorder.search.syntax import QUERY_SYNTAX

from ..widgets.virtual_list import VirtualList

QUERY_HELP = QUERY_SYNTAX  # one table for the help screen and the docs

KEY_NAMES = {
    "question_mark": "?",
    "slash": "/",
    "escape": "esc",
    "pageup": "PgUp",
    "pagedown": "PgDn",
    "right_square_bracket": "]",
    "left_square_bracket": "[",
}


def keys(binding: Binding) -> str:
    return " ".join(KEY_NAMES.get(k.strip(), k.strip()) for k in binding.key.split(","))


def binding_table(
    title: str, bindings: list[BindingType], shown: Callable[[str], bool] | None = None
) -> Table:
    """The bindings with a description; `shown(action name)` leaves out those that do
    nothing in this run (the launch menu's keys outside a launch, say)."""
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold cyan",
        show_header=False,
        box=None,
        padding=(0, 2),
    )
    table.add_column(style="bold", no_wrap=True, min_width=14)
    table.add_column()
    for b in bindings:
        if not isinstance(b, Binding) or not (b.tooltip or b.description):
            continue  # the hidden fallbacks
        if shown is None or shown(b.action.split("(")[0]):
            table.add_row(keys(b), b.tooltip or b.description)
    return table


class HelpScreen(ModalScreen[None]):
    """Key bindings and the search syntax."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        from ..panes import CheckpointsPane, RecentPane, SearchPane
        from ..panes.sessions import SessionsScreen
        from ..widgets.conversation_view import ConversationView
        from .conversation import ConversationScreen
        from .detail import DetailScreen
        from .launch import LaunchScreen
        from .main import MainScreen
        from .restore import RestoreScreen
        from .session_conversation import SessionConversationScreen

        main = next((s for s in self.app.screen_stack if isinstance(s, MainScreen)), None)

        def on_main(action: str) -> bool:
            return main is None or main.check_action(action, ()) is True

        with VerticalScroll(id="help", classes="dialog"):
            yield Static(Text("persist-tui — keys", style="bold"))
            yield Static(binding_table("Everywhere (main screen)", MainScreen.BINDINGS, on_main))
            for title, pane in (
                ("Checkpoints tab", CheckpointsPane),
                ("Search tab", SearchPane),
                ("Recent tab", RecentPane),
            ):
                yield Static(binding_table(title, pane.BINDINGS))
            yield Static(
                binding_table("Lists (checkpoints, results, messages)", VirtualList.BINDINGS)
            )
            queries = Table(
                title="Search syntax",
                title_justify="left",
                title_style="bold cyan",
                show_header=False,
                box=None,
                padding=(0, 2),
            )
            queries.add_column(style="bold", no_wrap=True, min_width=14)
            queries.add_column()
            for k, v in QUERY_HELP:
                queries.add_row(k, v)
            yield Static(queries)
            yield Static(
                binding_table(
                    "Conversation (Enter on a checkpoint, o in Recent)",
                    [*ConversationScreen.BINDINGS, *ConversationView.BINDINGS],
                )
            )
            yield Static(binding_table("Record detail", DetailScreen.BINDINGS))
            yield Static(binding_table("Restore dialog", RestoreScreen.BINDINGS))
            yield Static(
                binding_table(
                    "Agent sessions (S; in a launch: a in the menu)", SessionsScreen.BINDINGS
                )
            )
            yield Static(
                binding_table(
                    "A session's transcript (Enter on a session)",
                    [*SessionConversationScreen.BINDINGS, *ConversationView.BINDINGS],
                )
            )
            if getattr(self.app, "launch", False):
                yield Static(binding_table("Launch menu", LaunchScreen.BINDINGS))
            yield Static(
                Text(
                    "Tab / shift+Tab move between panes · ctrl+p opens the command "
                    "palette · Esc closes this",
                    style="dim",
                )
            )

    def on_mount(self) -> None:
        self.query_one("#help").focus()

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
