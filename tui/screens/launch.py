"""The launch menu an agent sees when it connects: continue, pick, fresh, search, diagnose."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from ..text import one_line, plural

if TYPE_CHECKING:
    from ..app import PersistApp

CHOICES = ("continue", "pick", "fresh", "search", "diagnostics", "quit")


class LaunchScreen(Screen[str]):
    """Dismisses with one of `CHOICES`."""

    BINDINGS = [
        Binding("c", "choose('continue')", "Continue"),
        Binding("p", "choose('pick')", "Pick"),
        Binding("f", "choose('fresh')", "Fresh"),
        Binding("s,slash", "choose('search')", "Search"),
        Binding("d", "choose('diagnostics')", "Diagnostics"),
        Binding("q,escape", "choose('quit')", "Quit"),
        Binding("j", "cursor('down')", "Down", show=False),
        Binding("k", "cursor('up')", "Up", show=False),
        Binding("question_mark", "app.help", "Help"),
    ]

    _default: int | None = None

    @property
    def papp(self) -> PersistApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with Vertical(id="launch-box"):
            yield Static(id="launch-title")
            yield OptionList(*self.options(), id="launch-menu")
            yield Static(id="launch-hint")
        yield Footer()

    def on_mount(self) -> None:
        self.papp.journal_changed.subscribe(self, self.refresh_menu)
        self.refresh_menu("mount")
        self.query_one(OptionList).focus()

    def options(self) -> list[Option]:
        papp = self.papp
        state = papp.journal
        latest = state.checkpoints[0] if state.checkpoints else None
        clock = papp.clock
        if not state.loaded:
            detail, can_continue = Text("reading checkpoints…", "dim"), False
        elif latest is None:
            detail, can_continue = Text("no checkpoint yet", "dim"), False
        else:
            detail = Text(
                f"{one_line(latest.label or 'no label', 50)} · {clock.stamp(latest.created)} "
                f"({clock.ago(latest.created)}) · {plural(latest.messages, 'message')}",
                "dim",
            )
            can_continue = True

        def item(key: str, title: str, sub: Text | str) -> Text:
            t = Text()
            t.append(f" {key} ", "bold reverse")
            t.append(f"  {title}\n", "bold")
            t.append("     ")
            t.append_text(sub if isinstance(sub, Text) else Text(sub, "dim"))
            return t

        return [
            Option(
                item("c", "Continue from the latest checkpoint", detail),
                id="continue",
                disabled=not can_continue,
            ),
            Option(
                item(
                    "p",
                    "Pick another checkpoint" if can_continue else "Pick a checkpoint",
                    f"{plural(len(state.checkpoints or []), 'checkpoint')}, newest first"
                    if state.checkpoints
                    else "none yet",
                ),
                id="pick",
                disabled=state.loaded and not state.checkpoints,
            ),
            Option(item("f", "Start fresh", "no history restored"), id="fresh"),
            Option(item("s", "Search the conversation", "keyword and fuzzy"), id="search"),
            Option(item("d", "Diagnostics", "is the recorder healthy?"), id="diagnostics"),
            Option(item("q", "Quit", "exit without a choice"), id="quit"),
        ]

    def refresh_menu(self, _what: str) -> None:
        papp = self.papp
        title = Text()
        title.append("persist", "bold reverse")
        state = papp.journal
        history = bool(state.checkpoints) or (state.store is not None and len(state.store) > 0)
        greeting = "Welcome back" if history else "Welcome"
        name = f", {one_line(papp.agent, 40)}" if papp.agent else ""
        title.append(f"  {greeting}{name}", "bold")
        if state.loaded and not history:
            title.append("  · nothing recorded in this folder yet", "dim")
        title.append(f"\n{one_line(papp.folder, 200)}", "dim")
        self.query_one("#launch-title", Static).update(title)
        menu = self.query_one(OptionList)
        highlighted = menu.highlighted
        menu.clear_options()
        menu.add_options(self.options())
        default = 0 if papp.journal.checkpoints else CHOICES.index("fresh")
        if highlighted is None or self._default is None or highlighted == self._default:
            highlighted = default
        self._default = default
        menu.highlighted = highlighted
        hint = Text(
            "Enter or the letter chooses · the result is printed for the launcher", style="dim"
        )
        self.query_one("#launch-hint", Static).update(hint)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.action_choose(event.option.id)

    def action_choose(self, choice: str) -> None:
        if choice in ("continue", "pick"):
            state = self.papp.journal
            if state.loaded and not state.checkpoints:
                self.notify("There is no checkpoint yet: start fresh (f).", severity="warning")
                return
        self.dismiss(choice)

    def action_cursor(self, direction: str) -> None:
        menu = self.query_one(OptionList)
        (menu.action_cursor_down if direction == "down" else menu.action_cursor_up)()
