"""An agent session's conversation, opened at a message (a search hit in the session).

The same transcript view as the journal's, over the session's messages turned into
journal-shaped records as they are drawn (`recorder.sources.journal_view`), with the
same keys (`TranscriptScreen`: Enter shows the message in full, t jumps to a time, v
marks a range, y copies, e exports); `n/N` step through the search's hits in this
session, each match highlighted.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from recorder.launch.sessions import find_row
from recorder.search.query import Query, match_spans
from recorder.sources.discover import Roots
from recorder.sources.fork import not_resumable
from recorder.sources.journal_view import to_record
from recorder.sources.listing import SessionRow, read_row
from recorder.sources.model import SessionMessage, notes_phrase, seq_of
from recorder.store.reader import Record
from recorder.store.shell import shell_quote

from ..records_io import Records
from ..text import one_line, plural
from ..widgets.conversation_view import ConversationView
from ..widgets.keys_footer import AppFooter
from .conversation import TRANSCRIPT_BINDINGS, TranscriptScreen


class SessionRecords:
    """A session's messages as records, made when drawn (a `RecordSource`)."""

    def __init__(self, messages: list[SessionMessage]) -> None:
        self.messages = messages
        self.record = lru_cache(maxsize=256)(self._record)

    def _record(self, index: int) -> Record:
        return to_record(self.messages[index], index)

    def __len__(self) -> int:
        return len(self.messages)

    def records(self, start: int = 0, stop: int | None = None) -> Iterator[Record]:
        """The messages from `start` to `stop` (excluded) as records, in order."""
        stop = len(self) if stop is None else min(stop, len(self))
        return (self._record(i) for i in range(start, stop))

    def first_at(self, ts: float) -> int:
        """The first message at or after time `ts` (one without a time counts as at the
        time of the one before it); past the end: the length."""
        times: list[float] = []
        last = float("-inf")
        for msg in self.messages:
            last = last if msg.ts is None else msg.ts
            times.append(last)
        return bisect_left(times, ts)


class SessionConversationScreen(TranscriptScreen):
    """Session `key` (`claude:<id>`) around message `seq` (None: its last)."""

    BINDINGS = [
        Binding("escape,q", "back", "Back"),
        *TRANSCRIPT_BINDINGS,
        Binding("r", "resume", "Resume command", tooltip="How to resume this session"),
        Binding("question_mark", "app.help", "Help"),
    ]
    COPIED_LINES = "its messages as journal-shaped records"

    class Read(Message):
        def __init__(self, row: SessionRow, messages: list[SessionMessage]) -> None:
            super().__init__()
            self.row = row
            self.messages = messages

    def __init__(
        self,
        key: str,
        seq: int | None,
        *,
        matches: Sequence[int] = (),
        query: Query | None = None,
    ) -> None:
        super().__init__()
        self.key = key
        self.seq = seq
        self.matches = sorted(matches)
        """The search's hits in this session (message numbers) that n/N step through."""
        self.search_query = query
        self.row: SessionRow | None = None
        self.notes = ""  # how many messages are the agent's notes (notes_phrase)
        self.messages: list[SessionMessage] = []

    def compose(self) -> ComposeResult:
        yield Static(
            Text(f"Reading {one_line(self.key)}…"),  # a Text: no markup made of the key
            id="session-conversation-status",
            classes="status-line",
        )
        yield AppFooter()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, group="session", exclusive=True, exit_on_error=False)
    def load(self) -> None:
        papp = self.papp
        row = find_row(papp.roots or Roots.default(), papp.layout, self.key)
        self.post_message(self.Read(row, read_row(papp.layout, row).messages))

    @on(Read)
    def read(self, event: Read) -> None:
        self.row = event.row
        self.notes = notes_phrase(event.messages)
        self.messages = event.messages
        records = SessionRecords(event.messages)
        last = len(records) - 1
        at = max(0, last if self.seq is None else min(self.seq, last))
        view = ConversationView(
            records, self.papp.clock, at, rules=self.papp.reading, id="session-conversation"
        )
        self.mount(view, before=self.query_one(AppFooter))
        query = self.search_query
        if query is not None and self.matches:
            view.set_matches(self.matches, lambda text: match_spans(text, query))
        view.focus()
        self.update_status()

    @on(ConversationView.Moved)
    def moved(self, _event: ConversationView.Moved) -> None:
        self.update_status()

    def update_status(self) -> None:
        row = self.row
        if row is None:
            return
        s = row.session
        view = self.query_one(ConversationView)
        status = Text()
        status.append(f" {s.source.value} session ", "bold reverse")
        status.append(f" {one_line(s.shown_title or '(untitled)', 50)}", "bold")
        if row.deleted:
            status.append("  deleted by the agent: from our copy", "bold red")
        # numbered from 0, as `persist fork --at` and `persist launch --at` take it
        status.append(f"  message {view.selected:,} of 0-{len(view.store) - 1:,}", "dim")
        if self.notes:
            status.append(f" ({self.notes})", "dim")
        if self.matches:
            status.append(f"  {plural(len(self.matches), 'hit')} (n/N)", "cyan")
        self.status_tail(status)
        self.query_one("#session-conversation-status", Static).update(status)

    def worker_failed(self, group: str, problem: str) -> None:
        if group != "session":  # a copy or an export
            super().worker_failed(group, problem)
            return
        self.query_one("#session-conversation-status", Static).update(
            Text(f"cannot open {one_line(self.key)}: {one_line(problem)}", "bold red")
        )

    def job_records(self) -> AbstractContextManager[Records]:
        return nullcontext(SessionRecords(self.messages))  # its own cache, for the thread

    def time_index(self, ts: float) -> int:
        return SessionRecords(self.messages).first_at(ts)

    def export_about(self) -> list[tuple[str, str]]:
        about = [("session", self.key)]
        if self.row is not None and self.row.session.shown_title:
            about.append(("title", one_line(self.row.session.shown_title, 200)))
        return about

    def action_back(self) -> None:
        self.dismiss(None)

    def action_resume(self) -> None:
        if self.row is not None:
            notify_resume(self, self.row)


def notify_resume(node: Widget, row: SessionRow) -> None:
    """`r`: the command that resumes `row`'s session, or why the agent cannot."""
    if not row.session.resumable:
        node.notify(not_resumable(row.session), severity="warning")
    elif row.deleted:
        fork = f"persist fork {shell_quote(row.session.key)}"  # as it must be typed
        node.notify(f"{fork}  (writes it back from our copy)")
    elif row.session.fork_to_resume:  # the agent's resume would not find it by its id
        fork = f"persist fork {shell_quote(row.session.key)}"
        why = row.session.fork_to_resume
        node.notify(f"{fork}  (resumes it through a fork: {why})", title="Resume with")
    else:
        node.notify(row.session.resume_shell(), title="Resume with")


def open_session_message(
    node: Widget,
    topic: str,
    origin: str | None,
    *,
    matches: Sequence[int] = (),
    query: Query | None = None,
) -> None:
    """The conversation of the session `origin` names (`<key>#<seq>`) at that message,
    `matches` (message numbers) a n/N away; a line when `origin` names no position.
    The session is named by the origin's key as written: `topic` is kept in lower case,
    and two project folders' keys may differ only in case."""
    seq = seq_of(origin)
    if origin is None or seq is None:
        node.notify(f"A message of {topic} without a position in it: {origin}")
        return
    key = origin.rpartition("#")[0]
    node.app.push_screen(SessionConversationScreen(key, seq, matches=matches, query=query))
