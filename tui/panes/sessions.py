"""Agent sessions (Claude Code, Gemini CLI, Codex): one row per conversation, newest
first, with a transcript preview; Enter shows the whole transcript, `r` the command
that resumes it. A screen of its own (`S` from anywhere) while the tabs are reworked."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from recorder.export.redact import redacted
from recorder.export.render import view
from recorder.launch.sessions import project_sessions
from recorder.sources.discover import Roots
from recorder.sources.journal_view import to_records
from recorder.sources.listing import SessionRow, list_sessions, read_row
from recorder.sources.model import Source, Transcript
from recorder.store.layout import Layout

from ..text import Clock, cut, one_line, sanitize, short_count
from ..widgets.keys_footer import AppFooter
from ..widgets.record_list import SOURCE_STYLES
from ..widgets.virtual_list import VirtualList
from ..worker_errors import ShowsWorkerErrors

if TYPE_CHECKING:
    from ..app import PersistApp

PREVIEW_MESSAGES = 40


class SessionList(VirtualList):
    """Sessions, newest first; only the rows on screen are drawn."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[SessionRow] = []

    @property
    def clock(self) -> Clock:
        """The app's clock: its time zone, and a fixed one in tests."""
        return self.app.clock  # type: ignore[attr-defined,no-any-return]

    def show(self, rows: list[SessionRow]) -> None:
        self.rows = rows
        self.set_row_count(len(rows))
        if rows and self.cursor < 0:
            self.move_to(0)

    def render_row(self, row: int, width: int) -> Text:
        r = self.rows[row]
        s = r.session
        last = self.clock.when(s.last_ts or s.mtime)
        text = Text()
        text.append(f"{s.source.value:<7}", SOURCE_STYLES.get(s.source.value, "bold"))
        text.append(f"{last}  {short_count(s.message_count):>4} ", "dim")
        if r.deleted:
            text.append("deleted ", "bold red")
        elif r.protected:
            text.append("kept ", "green")
        if s.bad_lines:  # before the title, as `persist sessions` flags it: never cut off
            text.append(f"({s.bad_lines} unreadable line{'s' * (s.bad_lines > 1)}) ", "yellow")
        title = s.shown_title or "(untitled)"
        if s.subagent:  # listed on its own: its session has no file any more
            label = f"  sub-agent of {sanitize(s.parent_id)[:8]} (file gone)"  # escaped, then cut
            if width - text.cell_len - len(label) < 10:  # narrow: the parent is in the preview
                label = "  sub-agent (file gone)"
            room = max(10, width - text.cell_len - len(label))  # the label stays whole
            text.append(cut(one_line(title), room))
            text.append(label, "yellow")
        else:
            text.append(one_line(title, max(10, width)))
        text.truncate(width)
        return text


class SessionsScreen(ShowsWorkerErrors, Screen[None]):
    """Every agent session; `picking` (from the launch menu: one agent, one project):
    Enter chooses the point to resume from instead of showing the whole transcript."""

    BINDINGS = [
        Binding("escape,q", "back", "Back"),
        Binding("r", "resume", "Resume command", tooltip="Show how to resume this session"),
        Binding("question_mark", "app.help", "Help"),
    ]

    class Listed(Message):
        def __init__(self, rows: list[SessionRow], problems: list[str]) -> None:
            super().__init__()
            self.rows = rows
            self.problems = problems

    class Previewed(Message):
        def __init__(self, key: str, text: Text) -> None:
            super().__init__()
            self.key = key
            self.text = text

    def __init__(
        self,
        layout: Layout,
        roots: Roots | None = None,
        *,
        source: Source | None = None,
        project: str | None = None,
        picking: bool = False,
    ) -> None:
        super().__init__()
        self.log_layout = layout
        self.roots = roots or Roots.default()
        self.source = source
        self.project = project
        self.picking = picking

    def compose(self) -> ComposeResult:
        yield Static("Reading agent sessions…", id="sessions-status", classes="status-line")
        with Horizontal():
            yield SessionList(id="sessions-list")
            with VerticalScroll(id="sessions-preview-scroll"):
                yield Static(id="sessions-preview")
        yield AppFooter()

    def on_mount(self) -> None:
        self.query_one(SessionList).focus()
        self.load()

    @work(thread=True, group="sessions", exclusive=True, exit_on_error=False)
    def load(self) -> None:
        if self.project is not None and self.source is not None:
            rows, problems = project_sessions(
                self.roots, self.log_layout, self.source, self.project
            )
        else:
            rows, problems = list_sessions(self.roots, self.log_layout, source=self.source)
        self.post_message(self.Listed(rows, problems))

    @on(Listed)
    def listed(self, event: Listed) -> None:
        sessions = self.query_one(SessionList)
        sessions.show(event.rows)
        by_source: dict[str, int] = {}
        for r in event.rows:
            by_source[r.session.source.value] = by_source.get(r.session.source.value, 0) + 1
        counts = ", ".join(f"{n} {src}" for src, n in sorted(by_source.items())) or "none"
        status = f"{len(event.rows)} agent sessions ({counts}), newest first"
        if event.problems:
            status += f" · {len(event.problems)} problem(s): {one_line(event.problems[0], 80)}"
        self.query_one("#sessions-status", Static).update(status)
        if event.rows:
            self.preview(event.rows[sessions.cursor])

    @on(VirtualList.Highlighted, "#sessions-list")
    def highlighted(self, event: VirtualList.Highlighted) -> None:
        rows = self.query_one(SessionList).rows
        if 0 <= event.row < len(rows):
            self.preview(rows[event.row])

    @on(VirtualList.Selected, "#sessions-list")
    def selected(self, event: VirtualList.Selected) -> None:
        rows = self.query_one(SessionList).rows
        if 0 <= event.row < len(rows):
            if self.picking:
                self.papp.resume_session(rows[event.row], back_to_menu=False)
                return
            from ..screens.session_conversation import SessionConversationScreen

            # the whole conversation in the transcript view, at its last message
            self.app.push_screen(SessionConversationScreen(rows[event.row].session.key, None))

    @work(thread=True, group="preview", exclusive=True, exit_on_error=False)
    def preview(self, row: SessionRow) -> None:
        s = row.session
        text = Text()
        text.append(f"{one_line(s.shown_title or '(untitled)')}\n", "bold")
        text.append(f"{one_line(s.key)}\n{one_line(f'{s.project_path}  {s.git_branch}')}\n", "dim")
        if row.deleted:
            text.append("deleted by the agent: shown from our copy\n", "bold red")
        transcript = self.read(row)
        messages = transcript.messages
        shown = messages[:PREVIEW_MESSAGES]
        for rec in redacted(to_records(shown)):  # secrets as [REDACTED:kind], as elsewhere
            v = view(rec)
            style = "bold cyan" if v.sender == "user" else "bold"
            text.append(f"\n{v.seq} {one_line(v.sender, 40)}", style)
            if rec.meta.get("thinking"):
                text.append(" (thinking folded)", "dim")
            if rec.meta.get("redacted"):
                text.append(" [secret]", "bold red")
            text.append(f"\n{one_line(v.text, 2000)}\n")
        if len(shown) < len(messages):
            enter = "Enter picks where to resume" if self.picking else "Enter reads them all"
            text.append(f"\n… {len(messages) - len(shown)} more ({enter})", "dim")
        self.post_message(self.Previewed(s.key, text))

    def read(self, row: SessionRow) -> Transcript:
        """The session in full, from our copy when the agent deleted it."""
        return read_row(self.log_layout, row)

    @on(Previewed)
    def previewed(self, event: Previewed) -> None:
        """Shown only if it is still the highlighted row's: a thread worker that was
        replaced still finishes (a long session's read), and its preview came in under
        the next row's highlight and stayed there."""
        rows, at = self.query_one(SessionList).rows, self.query_one(SessionList).cursor
        if 0 <= at < len(rows) and rows[at].session.key != event.key:
            return
        self.query_one("#sessions-preview", Static).update(event.text)

    @property
    def papp(self) -> PersistApp:
        return self.app  # type: ignore[return-value]

    def action_back(self) -> None:
        self.dismiss(None)

    def action_resume(self) -> None:
        sessions = self.query_one(SessionList)
        if self.picking and 0 <= sessions.cursor < len(sessions.rows):
            self.papp.resume_session(sessions.rows[sessions.cursor], back_to_menu=False)
            return
        if 0 <= sessions.cursor < len(sessions.rows):
            from ..screens.session_conversation import notify_resume

            notify_resume(self, sessions.rows[sessions.cursor])

    def worker_failed(self, group: str, problem: str) -> None:
        target = "#sessions-status" if group == "sessions" else "#sessions-preview"
        self.query_one(target, Static).update(Text(f"{group} failed: {problem}", "bold red"))
