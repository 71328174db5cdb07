"""The persist-tui application: state, background work and the result it exits with.

The app owns the journal reader (used only on the UI thread), a second reader
for background work, and the searcher (which has its own). Thread workers never
touch widgets: they post messages, handled here or on the screen that asked.

Just over 400 lines: the app's state, its workers and the exit contract belong
together; everything pane-specific lives in `panes/`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field, replace
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.driver import Driver
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.signal import Signal

from recorder.export.scope import BundleScope
from recorder.launch.selection import Selection
from recorder.search.query import Query
from recorder.store.checkpoints import (
    Checkpoint,
    journal_and_session_checkpoints,
)
from recorder.store.layout import Layout
from recorder.store.pins import PinsUnreadable, read_pins
from recorder.store.reader import Record, Store, open_store
from recorder.store.status import Health

from .diagnostics import Diagnostics, HealthUnknown, Probe, sense_health
from .reading import ReadingRules
from .text import Clock, sanitize
from .worker_errors import ShowsWorkerErrors

if TYPE_CHECKING:
    from recorder.search.engine import SearchEngine
    from recorder.sources.discover import Roots
    from recorder.sources.listing import SessionRow

    from .screens.detail import DetailScreen, Navigate


def _import_search() -> None:
    """The search engine and the agents' readers, imported on a thread once the first
    screen is up, so the first search does not wait for them (they are left out of
    the first screen's imports)."""
    import recorder.search.engine  # noqa: F401


def open_searcher(root: Path, roots: Roots | None = None) -> SearchEngine:
    """The one search engine for a log folder and the agents' sessions (tests replace it).
    Imported here, when first searched: the index and the agents' readers are not needed
    for the first screen."""
    from recorder.search.engine import SearchEngine

    return SearchEngine(root, roots)


_FEW_RECORDS = 128


def holds_messages(store: Store) -> bool:
    """Whether `store` holds a message: a journal of a few records is read through
    (those of a recorder just started are its own); a longer one has been in use."""
    n = len(store)
    return n > _FEW_RECORDS or any(r.is_message for r in store.records(0, n))


@dataclass
class JournalState:
    """What the UI thread knows about the journal right now."""

    store: Store | None = None
    checkpoints: list[Checkpoint] | None = None
    session_checkpoints: list[Checkpoint] = field(default_factory=list)
    """Checkpoints of agent sessions (the monitor's): in the timeline, no journal range."""
    boundaries: dict[str, int] | None = None
    pins: frozenset[str] = frozenset()  # ids of pinned checkpoints (`persist pin`)
    loaded: bool = False
    error: str | None = None
    recorded: bool = False
    """Whether the journal holds a message (a recorder just started writes records of
    its own: a launch menu does not greet that as a history to come back to)."""
    removed: bool = False
    """The journal's segments/ folder was removed while it was open (the view is empty
    until a journal is recorded there again: it is then loaded afresh)."""
    unreadable: bool = False
    """`error` is a poll's: the folder could not be read (another user's); the first
    poll that reads it again takes the error back."""


class PersistApp(ShowsWorkerErrors, App[Selection]):
    """Browse checkpoints, search, follow and diagnose; exit with a Selection."""

    CSS_PATH = "persist.tcss"
    TITLE = "persist-tui"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]  # dialogs tighten under 30 rows
    ENABLE_COMMAND_PALETTE = True

    BINDINGS = [
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("S", "sessions", "Agent sessions", show=False),
    ]

    class JournalLoaded(Message):
        """The store finished opening (in a thread)."""

        def __init__(
            self,
            store: Store | None,
            checkpoints: list[Checkpoint],
            error: str | None,
            session_checkpoints: list[Checkpoint] | None = None,
            recorded: bool = False,
        ):
            super().__init__()
            self.store = store
            self.checkpoints = checkpoints
            self.error = error
            self.session_checkpoints = session_checkpoints or []
            self.recorded = recorded

    def __init__(
        self,
        log_dir: Path,
        *,
        launch: bool = False,
        agent: str | None = None,
        clock: Clock | None = None,
        probe: Probe | None = None,
        poll_interval: float = 0.25,
        diagnostics_interval: float = 1.0,
        live: bool = True,
        display_dir: str | None = None,
        agent_command: list[str] | None = None,
        project: str | None = None,
        roots: Roots | None = None,
        redact: bool = False,
        restore_scope: BundleScope | None = None,
    ) -> None:
        super().__init__()
        self.log_dir = Path(log_dir).expanduser()
        self.display_dir = display_dir
        """Shown instead of `log_dir` (screenshots show a stable name, not a temp folder)."""
        self.layout = Layout(self.log_dir)
        self.launch = launch
        self.agent = agent
        self.agent_command = list(agent_command or [])
        """The agent's command line (`persist launch -- claude ...`): its sessions are offered."""
        self.project = project or os.getcwd()
        """The project the agent starts in: the sessions offered are this folder's."""
        self.roots = roots
        """Where the agents keep their sessions (None: their defaults)."""
        self.redact = redact
        """What the restore dialog's "redact secrets" starts as (`persist launch --redact`)."""
        self.restore_scope = restore_scope or BundleScope()
        """What a restore bundle holds (`--last N`, `--full`): the restore dialog says it."""
        self.project_sessions: list[SessionRow] = []
        """The agent's sessions of `project`, as the launch menu listed them."""
        self.clock = clock or Clock()
        self.probe = probe or Probe(self.clock.monotonic)
        self.poll_interval = poll_interval
        self.diagnostics_interval = diagnostics_interval
        self.live = live
        self.journal = JournalState()
        self.journal_changed: Signal[str] = Signal(self, "journal_changed")
        """Published with "loaded", "grew" or "checkpoints"."""
        self._reader: Store | None = None
        self._reader_lock = threading.Lock()
        self._searcher: SearchEngine | None = None
        self._search_imported = False
        self._loading = False
        self._cp_mtime: tuple[int | None, int | None] | None = None
        self._generation = 0  # the journal store's view the screens were told of
        self._detail_screen: DetailScreen | None = None
        self.reading = ReadingRules.load(self.log_dir)
        """How messages without an enriched sender read (Jupyter, `reading.toml`)."""
        self.ready_at: float | None = None
        """perf_counter() when the first screen had its data (for the bench)."""

    def get_driver_class(self) -> type[Driver]:
        from .terminal import sized_driver

        return sized_driver(super().get_driver_class())

    # -- lifecycle ---------------------------------------------------------------
    def on_mount(self) -> None:
        from .screens.main import MainScreen

        self.push_screen(MainScreen())
        if self.launch:
            self.show_launch_menu()
        self.start_loading()
        if self.reading.problem:
            self.notify(f"reading rules not used: {self.reading.problem}", severity="warning")
        if self.live:
            self.set_interval(self.poll_interval, self.poll, name="poll")

    def on_unmount(self) -> None:
        if self.journal.store is not None:
            self.journal.store.close()
        if self._reader is not None:
            self._reader.close()
        if self._searcher is not None:
            self._searcher.close()

    def start_loading(self) -> None:
        if self._loading:
            return
        self._loading = True
        self.run_worker(self._load, thread=True, group="load", exit_on_error=False)

    def _load(self) -> None:
        store: Store | None = None
        error = None
        recorded = False
        try:
            if self.layout.segments.is_dir():
                store = open_store(self.log_dir)
                recorded = holds_messages(store)
            checkpoints, sessions = journal_and_session_checkpoints(self.layout)
        except OSError as exc:
            checkpoints, sessions, error = [], [], f"cannot read {self.log_dir}: {exc}"
        self.post_message(self.JournalLoaded(store, checkpoints, error, sessions, recorded))

    def worker_failed(self, group: str, problem: str) -> None:
        if group == "load":  # the main screen shows the error where the checkpoints would be
            self.on_persist_app_journal_loaded(
                self.JournalLoaded(None, [], f"cannot read {self.folder}: {problem}")
            )
        else:
            self.notify(f"{group} failed: {problem}", severity="error")

    def on_persist_app_journal_loaded(self, message: JournalLoaded) -> None:
        self._loading = False
        state = self.journal
        if state.store is not None:
            state.store.close()
        state.store = message.store
        state.error = message.error
        state.unreadable = False
        state.loaded = True
        state.removed = False
        self._generation = message.store.generation if message.store is not None else 0
        state.session_checkpoints = message.session_checkpoints
        state.recorded = message.recorded
        self._set_checkpoints(message.checkpoints)
        self.journal_changed.publish("loaded")
        if not self._search_imported:  # after the first screen, before the first search
            self._search_imported = True
            self.run_worker(_import_search, thread=True, group="import", exit_on_error=False)

    def _set_checkpoints(self, checkpoints: list[Checkpoint]) -> None:
        store = self.journal.store
        self.journal.checkpoints = checkpoints
        # every checkpoint on the UI thread: a record read only for one off a line start
        self.journal.boundaries = (
            {cp.id: store.checkpoint_index(cp, quick=True) for cp in checkpoints} if store else {}
        )
        try:
            self.journal.pins = frozenset(read_pins(self.layout))
        except PinsUnreadable as exc:  # said once a change of the file, not at every poll
            self.journal.pins = frozenset()
            self.notify(str(exc), title="pins unknown", severity="error", timeout=30)
        self._cp_mtime = self._checkpoints_mtime()

    def _checkpoints_mtime(self) -> tuple[int | None, int | None]:
        """When the checkpoints folder and the pins file last changed."""
        out: list[int | None] = []
        for path in (self.layout.checkpoints, self.layout.pins):
            try:
                out.append(os.stat(path).st_mtime_ns)
            except OSError:
                out.append(None)
        return out[0], out[1]

    def poll(self) -> None:
        """Follow the journal: new lines, new segments, new checkpoints. A folder that
        can no longer be read (handed to another user) is said where the checkpoints
        would be, as a load's failure is; before 2026-12-08 the poll ended the app with
        a traceback."""
        try:
            self._follow()
        except OSError as exc:
            self._cannot_read(exc)
        else:
            self._can_read()

    def _cannot_read(self, exc: OSError) -> None:
        state = self.journal
        error = f"cannot read {self.log_dir}: {exc}"
        state.unreadable = True
        if state.error != error:  # said once, not at every poll
            state.error = error
            self.journal_changed.publish("loaded")

    def _can_read(self) -> None:
        """The folder a poll could not read can be read again: its error goes (before
        2026-12-08 it stayed while the journal was shown again)."""
        state = self.journal
        if not state.unreadable:
            return
        state.unreadable = False
        if self._loading:  # the load under way says what it finds
            return
        state.error = None
        self.journal_changed.publish("loaded")

    def _follow(self) -> None:
        state = self.journal
        if not state.loaded:
            return
        if state.store is None:
            if self.layout.segments.is_dir():
                self.start_loading()
            return
        told = self._generation
        added = self.refresh_journal()
        if state.store is None or self._generation != told:
            return  # told as loaded anew
        if self._checkpoints_mtime() != self._cp_mtime:
            checkpoints, state.session_checkpoints = journal_and_session_checkpoints(self.layout)
            self._set_checkpoints(checkpoints)
            self.journal_changed.publish("checkpoints")
        if added:
            self.journal_changed.publish("grew")

    def refresh_journal(self) -> int:
        """Refresh the journal's store (UI thread); returns the lines added. A change
        other than growth is told to the screens at once, as the journal loaded anew,
        so that no list shows an index the store no longer has."""
        store = self.journal.store
        if store is None:
            return 0
        added = store.refresh()
        if store.generation != self._generation:
            self._journal_replaced()
        return added

    def _journal_replaced(self) -> None:
        """The journal changed under the open view other than by growing: segments
        removed, pruned, truncated or replaced by other files (the log folder removed
        and recorded into afresh). The store has already dropped what is gone; the
        screens show it as loaded anew, as a TUI started now would, never records that
        are no longer in the journal. With segments/ itself gone, the journal is
        said to be removed until one is recorded there again (`poll` then loads it)."""
        state = self.journal
        store = state.store
        assert store is not None
        self._generation = store.generation
        if not self.layout.segments.is_dir():
            store.close()
            state.store = None
            state.removed = True
            state.recorded = False
        else:
            with contextlib.suppress(OSError):  # changing still: keep what it said
                state.recorded = holds_messages(store)
        try:
            checkpoints, state.session_checkpoints = journal_and_session_checkpoints(self.layout)
        except OSError:  # removed with the folder: none to show
            checkpoints, state.session_checkpoints = [], []
        self._set_checkpoints(checkpoints)
        self.journal_changed.publish("loaded")

    # -- background readers (one thread at a time each) --------------------------
    def with_reader(self, fn: Any) -> Any:
        """Run `fn(store)` with the background reader (call from a worker thread)."""
        with self._reader_lock:
            if self._reader is None:
                self._reader = Store(self.log_dir)
            self._reader.refresh()
            return fn(self._reader)

    @property
    def searcher(self) -> SearchEngine:
        """The search engine (its own index connections and journal reads)."""
        if self._searcher is None:
            self._searcher = (
                open_searcher(self.log_dir)
                if self.roots is None
                else open_searcher(self.log_dir, self.roots)
            )
        return self._searcher

    def health(self) -> Health | HealthUnknown:
        return sense_health(self.layout, self.clock.now(), self.clock.monotonic())

    def show_record(
        self,
        record: Record,
        query: Query | None = None,
        *,
        navigate: Navigate | None = None,
    ) -> None:
        """The record view, one screen reused (composing and styling a new one each
        time is most of the cost of opening it)."""
        from .screens.detail import DetailScreen

        screen = self._detail_screen
        if screen is None:
            screen = self._detail_screen = DetailScreen(
                record, self.clock, query, navigate=navigate, save_dir=self.exports_dir
            )
            self.install_screen(screen, "detail")
        else:
            screen.prepare(record, query, navigate, self.exports_dir)
        self.push_screen("detail")

    @property
    def exports_dir(self) -> Path:
        """Where records and ranges saved from the UI go (private, beside the journal)."""
        return self.log_dir / "exports"

    @property
    def folder(self) -> str:
        """The log folder as the screens show it."""
        return self.display_dir or str(self.log_dir)

    def collect_diagnostics(self, *, journal: bool = True) -> Diagnostics:
        """A diagnostics sample (call from a worker thread), naming the folder as shown;
        `journal`: with the damage the journal's index shows (the background reader
        catches up with the journal for it: only while the pane is on screen)."""
        diag = self.probe.collect(self.log_dir, self.clock.now())
        if journal and isinstance(diag.health, Health):
            diag.journal_damage = self._journal_damage(diag.running)
        if self.display_dir is not None:
            diag = replace(diag, log_dir=Path(self.display_dir))
        return diag

    def _journal_damage(self, writer_running: bool) -> list[str] | None:
        """What the journal's index shows is damaged (no line is read: `persist doctor`
        reads them all); None: no journal yet."""
        from recorder.store.ranges import JournalRange, journal_damage

        def look(store: Store) -> list[str]:
            return journal_damage(
                store, JournalRange(0, len(store), None, None), writer_running=writer_running
            )

        try:
            if not self.layout.segments.is_dir():
                return None
            return list(self.with_reader(look))
        except OSError as exc:
            return [f"the journal cannot be read ({exc.strerror or exc})"]

    # -- results -----------------------------------------------------------------
    def choose(self, selection: Selection | None) -> None:
        """Exit with a selection (None: quit without a choice)."""
        self.exit(selection)

    def show_launch_menu(self) -> None:
        """The launch menu (again, when the user comes back to it)."""
        from .screens.launch import LaunchScreen

        if not isinstance(self.screen, LaunchScreen):
            self.push_screen(LaunchScreen(), self._launch_choice)

    def start_fresh(self) -> None:
        self.choose(Selection.fresh(self.log_dir, self.agent))

    def _launch_choice(self, choice: str | None) -> None:
        from .screens.main import MainScreen

        main = next((s for s in self.screen_stack if isinstance(s, MainScreen)), None)
        if choice == "fresh":
            self.start_fresh()
        elif choice == "quit" or choice is None:
            self.choose(None)
        elif choice.startswith("session:"):
            key = choice.removeprefix("session:")
            row = next((r for r in self.project_sessions if r.session.key == key), None)
            if row is not None:
                self.resume_session(row)
        elif choice == "sessions":
            self.show_project_sessions()
        elif main is not None:
            self.call_after_refresh(main.launch_action, choice)

    # -- command palette ---------------------------------------------------------
    def get_system_commands(self, screen: Screen[Any]) -> Any:
        from .screens.main import MainScreen

        if isinstance(screen, MainScreen):
            yield from screen.commands()
        if self.launch:
            yield SystemCommand(
                "Start fresh",
                "Exit with a fresh start (no checkpoint restored)",
                self.start_fresh,
            )
        yield SystemCommand(
            "Checkpoint now", "Ask the recorder for a checkpoint", self.checkpoint_now
        )
        yield SystemCommand(
            "Agent sessions", "Claude Code, Gemini CLI and Codex sessions", self.action_sessions
        )
        yield SystemCommand("Help", "Show every key binding", self.action_help)
        yield SystemCommand("Quit", "Quit without choosing a checkpoint", self.action_quit)
        for command in super().get_system_commands(screen):
            if command.title != "Quit":  # ours says what quitting means here
                yield command

    def checkpoint_now(self) -> None:
        self.run_worker(self._checkpoint_now, thread=True, group="checkpoint", exit_on_error=False)

    def _checkpoint_now(self) -> None:
        from recorder.daemon.control import request_checkpoint

        cp = request_checkpoint(self.layout, "from persist-tui")
        self.call_from_thread(self.notify, f"Checkpoint {cp.id} taken", timeout=6)

    def action_sessions(self) -> None:
        from .panes.sessions import SessionsScreen

        if not isinstance(self.screen, SessionsScreen):
            self.push_screen(SessionsScreen(Layout(self.log_dir), self.roots))

    def resume_session(self, row: SessionRow, *, back_to_menu: bool = True) -> None:
        """The points of an agent session to resume from; a confirmed one is the result."""
        from .screens.resume import SessionPointsScreen

        def done(selection: Selection | None) -> None:
            if selection is not None:
                self.choose(selection)
            elif back_to_menu:
                self.show_launch_menu()

        self.push_screen(SessionPointsScreen(row), done)

    def show_project_sessions(self) -> None:
        """Every session of the launching agent in this project (the launch menu's `a`)."""
        from recorder.launch.sessions import agent_source

        from .panes.sessions import SessionsScreen

        source = agent_source(self.agent_command)
        screen = SessionsScreen(
            Layout(self.log_dir), self.roots, source=source, project=self.project, picking=True
        )
        self.push_screen(screen, lambda _: self.show_launch_menu())

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notification, from any widget, as the plain text it is: they carry
        paths, commands, errors and what was typed, and Textual would take the
        `[USER]` of a path (`cd '/Users/[USER]/…' && claude --resume …`) for markup and
        drop it. None of ours uses markup. Control characters (a session's folder may
        hold escape sequences) are shown as visible escapes, never sent to the terminal."""
        del markup
        message, title = sanitize(message, newlines=True), sanitize(title)
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        self.choose(None)


def create_app(
    log_dir: Path,
    *,
    launch: bool = False,
    agent: str | None = None,
    now: Any = None,
    tz: tzinfo | None = None,
    probe: Probe | None = None,
    live: bool = True,
    poll_interval: float = 0.25,
    display_dir: str | None = None,
    agent_command: list[str] | None = None,
    project: str | None = None,
    roots: Roots | None = None,
    redact: bool = False,
    restore_scope: BundleScope | None = None,
) -> PersistApp:
    """The app factory used by the CLI, `run_picker`, the tests and the screenshots
    (`display_dir`: what the screens call the log folder, default its path)."""
    return PersistApp(
        log_dir,
        launch=launch,
        agent=agent,
        clock=Clock(now, tz),
        probe=probe,
        live=live,
        poll_interval=poll_interval,
        display_dir=display_dir,
        agent_command=agent_command,
        project=project,
        roots=roots,
        redact=redact,
        restore_scope=restore_scope,
    )
