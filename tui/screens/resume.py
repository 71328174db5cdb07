"""Resume an agent's own session from the launch menu: pick its point, confirm the command.

`SessionPointsScreen` lists the session's messages newest first (virtual: only the rows
on screen are drawn); the top row, the latest point, resumes the session as it is, an
earlier one forks it there first. `ResumeScreen` shows exactly what will run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Static

from recorder.export.render import record_text
from recorder.launch.selection import Selection
from recorder.launch.sessions import ResumePlan, needs_fork, plan
from recorder.sources.journal_view import to_record
from recorder.sources.listing import SessionRow, read_row
from recorder.sources.model import SessionMessage
from recorder.store.secrets import redacted_text

from ..text import one_line, plural, sanitize
from ..widgets.keys_footer import AppFooter
from ..widgets.virtual_list import VirtualList
from ..worker_errors import ShowsWorkerErrors

if TYPE_CHECKING:
    from ..app import PersistApp

SENDER_STYLES = {"user": "bold cyan", "assistant": "bold", "tool": "dim", "system": "dim italic"}
ROW_CHARS = 4096
"""Characters of a message read for its one-line row (a row shows its start): scanned
for secrets, which show as [REDACTED:kind] as everywhere else."""


class PointList(VirtualList):
    """A session's messages, newest first: each row a point to resume from."""

    def __init__(self, papp: PersistApp, *, forks: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.papp = papp
        self.forks = forks  # the latest point forks too (`needs_fork`)
        self.messages: list[SessionMessage] = []

    def show(self, messages: list[SessionMessage]) -> None:
        self.messages = messages
        self.set_row_count(len(messages))
        if messages:
            self.move_to(0)

    def message_at(self, row: int) -> SessionMessage:
        return self.messages[len(self.messages) - 1 - row]

    def render_row(self, row: int, width: int) -> Text:
        m = self.message_at(row)
        text = Text()
        text.append(f"{m.seq:>5} ", "dim")
        text.append(f"{self.papp.clock.stamp(m.ts)[-8:] if m.ts else '':<9}", "dim")
        text.append(f"{m.sender.value:<10}", SENDER_STYLES.get(m.sender.value, "bold"))
        resumes = row == 0 and not self.forks
        text.append("resume  " if resumes else "fork    ", "green" if resumes else "yellow")
        words = record_text(to_record(m))  # its tool calls when it has no text
        text.append(one_line(redacted_text(words[:ROW_CHARS]) or "(empty)", max(10, width)))
        text.truncate(width)
        return text


class SessionPointsScreen(ShowsWorkerErrors, Screen[Selection | None]):
    """Dismisses with the confirmed `Selection`, or None (back to the menu)."""

    BINDINGS = [
        Binding("escape,q", "back", "Back"),
        Binding("l", "latest", "Latest", tooltip="Resume the session where it ends"),
    ]

    class Read(Message):
        def __init__(self, messages: list[SessionMessage]) -> None:
            super().__init__()
            self.messages = messages

    def __init__(self, row: SessionRow) -> None:
        super().__init__()
        self.row = row

    @property
    def papp(self) -> PersistApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        s = self.row.session
        head = Text()
        head.append(one_line(s.shown_title or "(untitled)", 200), "bold")
        head.append(f"\n{one_line(f'{s.key} · {s.project_path}')}", "dim")
        if self.row.deleted:
            head.append("\ndeleted by the agent: our copy is forked back", "bold red")
        elif s.fork_to_resume:
            head.append(f"\n{one_line(s.fork_to_resume)}: every point forks it", "yellow")
        head.append(
            "\nEnter on the latest message resumes the session; on an earlier one it forks "
            "the session there (a new session, the original untouched) and resumes that.",
            "dim",
        )
        yield Static(head, id="points-title")
        yield Static("Reading the session…", id="points-status", classes="status-line")
        yield PointList(self.papp, forks=needs_fork(self.row, None), id="points-list")
        yield AppFooter()

    def on_mount(self) -> None:
        self.query_one(PointList).focus()
        self.load()

    @work(thread=True, group="session", exclusive=True, exit_on_error=False)
    def load(self) -> None:
        transcript = read_row(self.papp.layout, self.row)
        self.post_message(self.Read(transcript.messages))

    @on(Read)
    def read(self, event: Read) -> None:
        self.query_one(PointList).show(event.messages)
        status = f"{plural(len(event.messages), 'message')}, newest first"
        self.query_one("#points-status", Static).update(status)

    def worker_failed(self, group: str, problem: str) -> None:
        self.query_one("#points-status", Static).update(
            Text(f"cannot read the session: {problem}", "bold red")
        )

    @on(VirtualList.Selected, "#points-list")
    def chosen(self, event: VirtualList.Selected) -> None:
        points = self.query_one(PointList)
        if 0 <= event.row < len(points.messages):
            self.confirm(points.message_at(event.row), latest=event.row == 0)

    def action_latest(self) -> None:
        points = self.query_one(PointList)
        if points.messages:
            self.confirm(points.messages[-1], latest=True)

    def confirm(self, message: SessionMessage, *, latest: bool) -> None:
        wanted = plan(self.row, self.papp.agent_command, None if latest else message.seq)

        def answered(yes: bool | None) -> None:
            if yes:
                self.dismiss(
                    Selection.resume(
                        self.papp.log_dir,
                        wanted.key,
                        wanted.argv,
                        wanted.cwd,
                        at=wanted.at,
                        new_id=wanted.new_id,
                        agent=self.papp.agent,
                    )
                )

        total = len(self.query_one(PointList).messages)
        self.app.push_screen(ResumeScreen(self.row, wanted, message, total), answered)

    def action_back(self) -> None:
        self.dismiss(None)


class ResumeScreen(ModalScreen[bool]):
    """Dismisses True to run the plan's command (after writing its fork, if any)."""

    BINDINGS = [
        Binding("enter,y", "confirm", "Run it"),
        Binding("escape,n,q", "cancel", "Cancel"),
        Binding("tab,right,l", "app.focus_next", "Next button", show=False),
        Binding("shift+tab,left,h", "app.focus_previous", "Previous button", show=False),
    ]

    def __init__(
        self, row: SessionRow, wanted: ResumePlan, message: SessionMessage, total: int
    ) -> None:
        super().__init__()
        self.row = row
        self.plan = wanted
        self.message = message
        self.total = total

    def compose(self) -> ComposeResult:
        title = "Fork and resume this session?" if self.plan.new_id else "Resume this session?"
        with Vertical(id="resume-dialog", classes="dialog"):
            yield Static(title, classes="dialog-title")
            yield Static(self.summary(), id="resume-summary")
            with Horizontal(classes="buttons"):
                yield Button(
                    "Fork and resume" if self.plan.new_id else "Resume", "primary", id="confirm"
                )
                yield Button("Cancel", id="cancel")
        yield AppFooter()

    def summary(self) -> Text:
        s, p, m = self.row.session, self.plan, self.message
        rows = [
            ("Session", one_line(s.shown_title or "(untitled)", 120)),
            ("Id", s.key),
            (
                "From",
                # numbered from 0, as `persist fork --at` takes it: "of 0-82", not "of 83"
                f"message {m.seq} of 0-{self.total - 1} ({m.sender.value}): "
                f"{one_line(redacted_text(m.text[:ROW_CHARS]) or '(tool call)', 80)}",
            ),
        ]
        if p.new_id:
            source = "our copy (the agent deleted it)" if self.row.deleted else "it"
            if p.at is None and not self.row.deleted:  # the latest point: not found by its id
                source += f" ({s.fork_to_resume})"
            rows.append(
                (
                    "Writes",
                    f"a new session {p.new_id} from {source}, messages 0-{m.seq}, "
                    "read back before anything runs; the original is not changed",
                )
            )
        rows.append(("Runs", p.shell))
        t = Text()
        for i, (key, value) in enumerate(rows):
            if i:
                t.append("\n")
            t.append(f"{key:>8}  ", "bold")
            t.append(sanitize(value), "bold green" if key == "Runs" else "")  # a path's escapes
        return t

    def on_mount(self) -> None:
        self.query_one("#confirm", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
