"""The launch menu an agent sees when it connects: continue, pick, fresh, search, diagnose."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.css.scalar import Scalar
from textual.message import Message
from textual.screen import Screen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option, OptionDoesNotExist

from recorder.launch.sessions import agent_source, project_sessions
from recorder.sources.discover import Roots
from recorder.sources.listing import SessionRow
from recorder.sources.model import Source

from ..text import AGE_TICK, cut, one_line, path_end, plural
from ..widgets.keys_footer import AppFooter
from ..worker_errors import ShowsWorkerErrors

if TYPE_CHECKING:
    from ..app import PersistApp

CHOICES = ("continue", "pick", "fresh", "search", "diagnostics", "quit")
SESSIONS_SHOWN = 5  # the newest sessions offered in the menu; `a` lists them all
# Cells for the text after an option's key: the 76-cell box less its border and padding,
# the menu's padding (OptionList's own), the option's padding, the key and the scrollbar
# a short terminal adds. A longer line would wrap under the key.
LINE_CELLS = 76 - 2 - 2 - 2 - 2 - 5 - 2


LAUNCH_BOX_WIDTH = 76  # #launch-box's width in persist.tcss
LAUNCH_HINTS = (  # the hint under the launch menu, longest first: the first that fits
    "Enter or the letter chooses · the result is printed for the launcher",
    "Enter or the letter chooses · printed for the launcher",
    "Enter or the letter chooses",
)


class LaunchScreen(ShowsWorkerErrors, Screen[str]):
    """Dismisses with one of `CHOICES`, `sessions` (all of them) or `session:<key>`."""

    BINDINGS = [
        # the menu shows every letter; the footer keeps what fits at 80 columns
        Binding("c", "choose('continue')", "Continue"),
        Binding("p", "choose('pick')", "Pick", show=False),
        Binding("f", "choose('fresh')", "Fresh"),
        Binding("s,slash", "choose('search')", "Search", show=False),
        Binding("d", "choose('diagnostics')", "Diagnostics", show=False),
        Binding("q,escape", "choose('quit')", "Quit"),
        Binding("j", "cursor('down')", "Down", show=False),
        Binding("k", "cursor('up')", "Up", show=False),
        Binding("question_mark", "app.help", "Help"),
        Binding("a", "choose('sessions')", "All sessions", show=False),
        *(Binding(str(n), f"session({n - 1})", show=False) for n in range(1, SESSIONS_SHOWN + 1)),
    ]

    _default: int | None = None
    sessions: list[SessionRow] | None = None  # the agent's sessions of this project
    sessions_problem = ""

    class SessionsListed(Message):
        def __init__(self, rows: list[SessionRow], problems: list[str]) -> None:
            super().__init__()
            self.rows = rows
            self.problems = problems

    @property
    def papp(self) -> PersistApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with Vertical(id="launch-box"):
            yield Static(id="launch-title")
            yield OptionList(*self.options(), id="launch-menu")
            yield Static(id="launch-hint")
        yield AppFooter()

    @property
    def source(self) -> Source | None:
        """The agent whose sessions the menu offers (claude, gemini, codex), or None."""
        return agent_source(self.papp.agent_command)

    def on_resize(self) -> None:
        self.show_hint()
        self.call_after_refresh(self.fit_menu)

    def show_hint(self) -> None:
        """The line under the menu, in words that fit one line of the box (76 columns
        wide, its border and padding 4 of them; a narrower terminal, a narrower box)."""
        room = min(LAUNCH_BOX_WIDTH, self.size.width) - 4
        words = next((h for h in LAUNCH_HINTS if len(h) <= room), LAUNCH_HINTS[-1])
        self.query_one("#launch-hint", Static).update(Text(words, style="dim"))

    def fit_menu(self) -> None:
        """Give the options the rows the title, hint and box leave on screen, so a
        long menu (sessions listed, 80x24) scrolls to the highlighted row instead of
        running off the bottom (Textual does not shrink an auto-height child); an even
        number of them, so the last row shown is never a title without its detail."""
        box = self.query_one("#launch-box")
        menu = self.query_one(OptionList)
        others = box.styles.gutter.height + sum(
            w.outer_size.height + w.styles.margin.top + w.styles.margin.bottom
            for w in (self.query_one("#launch-title"), self.query_one("#launch-hint"))
        )
        room = self.size.height - self.query_one(AppFooter).outer_size.height - others
        rows = max(4, room - room % 2)  # whole options (two rows each): no title alone
        if menu.styles.max_height != Scalar.from_number(rows):
            menu.styles.max_height = rows
            menu.scroll_to_highlight()

    def on_mount(self) -> None:
        self.papp.journal_changed.subscribe(self, self.refresh_menu)
        self.refresh_menu("mount")
        if self.papp.live:  # "5m 14s ago" keeps counting
            self.set_interval(AGE_TICK, self.tick_ages, name="age-tick")
        self.query_one(OptionList).focus()
        if self.source is not None and self.sessions is None:
            self.list_sessions()

    @work(thread=True, group="sessions", exclusive=True, exit_on_error=False)
    def list_sessions(self) -> None:
        papp = self.papp
        assert self.source is not None
        roots = papp.roots or Roots.default()
        rows, problems = project_sessions(roots, papp.layout, self.source, papp.project)
        self.post_message(self.SessionsListed(rows, problems))

    @on(SessionsListed)
    def sessions_listed(self, event: SessionsListed) -> None:
        self.sessions = self.papp.project_sessions = event.rows
        self.sessions_problem = event.problems[0] if event.problems else ""
        self._default = None  # the newest session becomes the default choice
        self.refresh_menu("sessions")

    def worker_failed(self, group: str, problem: str) -> None:
        self.sessions, self.sessions_problem = [], f"cannot list sessions: {problem}"
        self.refresh_menu("sessions")

    def session_options(self, item: Callable[[str, str, Text | str], Text]) -> list[Option]:
        source = self.source
        if source is None:
            return []
        name = source.agent_name
        if self.sessions is None:
            return [Option(item(" ", f"{name} sessions", "reading…"), id="sessions", disabled=True)]
        clock = self.papp.clock
        options = []
        for n, r in enumerate(self.sessions[:SESSIONS_SHOWN], 1):
            s = r.session
            last = s.last_ts or s.mtime
            mark = " · deleted by the agent, from our copy" if r.deleted else ""
            if not r.deleted and s.fork_to_resume:  # `claude --resume <id>` would not find it
                mark = f" · resumes through a fork ({one_line(s.path.name)})"
            count = plural(s.message_count, "message")
            detail = Text(f"{clock.ago(last)} · {count} · {one_line(s.id[:8])}{mark}", "dim")
            title = f"Resume {name}: "
            title += cut(s.shown_title or "(untitled)", LINE_CELLS - cell_len(title))
            options.append(Option(item(str(n), title, detail), id=f"session:{s.key}"))
        total = len(self.sessions)
        where = path_end(self.papp.project, 60)
        if total > SESSIONS_SHOWN or not total:
            sub = (
                f"{total} sessions of {where}, newest first"
                if total
                else self.sessions_problem or f"none in {where}"
            )
            title = f"All {name} sessions" if total else f"{name} sessions"
            options.append(Option(item("a", title, sub), id="sessions", disabled=not total))
        return options

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
            when = (
                f" · {clock.stamp(latest.created)} ({clock.ago(latest.created)}) · "
                f"{plural(latest.messages, 'message')}"
            )
            label = cut(latest.label or "no label", max(12, LINE_CELLS - cell_len(when)))
            detail = Text(label + when, "dim")
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
            *self.session_options(item),
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
        history = state.recorded or any(cp.messages for cp in state.checkpoints or [])
        greeting = "Welcome back" if history else "Welcome"
        name = f", {one_line(papp.agent, 40)}" if papp.agent else ""
        title.append(f"  {greeting}{name}", "bold")
        if state.error:  # it names the folder, and what in it cannot be read
            title.append(f"\n{one_line(state.error, 300)}", "bold red")
        else:
            if state.loaded and not history:
                title.append("  · nothing recorded in this folder yet", "dim")
            title.append(f"\n{one_line(papp.folder, 200)}", "dim")
        self.query_one("#launch-title", Static).update(title)
        menu = self.query_one(OptionList)
        highlighted = menu.highlighted
        menu.clear_options()
        menu.add_options(self.options())
        ids = [menu.get_option_at_index(i).id for i in range(menu.option_count)]
        if self.sessions:
            default = ids.index(f"session:{self.sessions[0].session.key}")
        else:
            # continue, unless there is nothing to continue (no checkpoint, nor a message)
            default = 0 if history and papp.journal.checkpoints else ids.index("fresh")
        if highlighted is None or self._default is None or highlighted == self._default:
            highlighted = default
        self._default = default
        menu.highlighted = highlighted
        self.show_hint()
        self.call_after_refresh(self.fit_menu)  # the title may have changed its height

    def tick_ages(self) -> None:
        """Redraw the options whose ages changed, in place (highlight and scroll kept)."""
        menu = self.query_one(OptionList)
        for option in self.options():
            if option.id is None:
                continue
            try:
                shown = menu.get_option(option.id)
            except OptionDoesNotExist:
                continue
            if str(shown.prompt) != str(option.prompt):
                menu.replace_option_prompt(option.id, option.prompt)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.action_choose(event.option.id)

    def action_choose(self, choice: str) -> None:
        if choice in ("continue", "pick"):
            state = self.papp.journal
            if state.loaded and not state.checkpoints:
                self.notify("There is no checkpoint yet: start fresh (f).", severity="warning")
                return
        if choice == "sessions" and not self.sessions:  # not an agent's launch, or none here
            return
        self.dismiss(choice)

    def action_session(self, index: int) -> None:
        if self.sessions and index < min(len(self.sessions), SESSIONS_SHOWN):
            self.dismiss(f"session:{self.sessions[index].session.key}")

    def action_cursor(self, direction: str) -> None:
        menu = self.query_one(OptionList)
        (menu.action_cursor_down if direction == "down" else menu.action_cursor_up)()
