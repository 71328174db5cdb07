"""An agent's session messages listed in a pane, in time order, from the search index:
the Recent pane's `ctrl+o` sources (claude, gemini, codex, every agent).

A source's order (ids and times) is read by a thread worker (`recorder.search.feed`),
which then catches the index up in slices as a search does and reads the order again if
sessions came in; a timer does that again every `FEED_FOLLOW_SECONDS` while the source
is listed (an agent writing its session shows up like the journal's newest records);
the rows on screen are read by another worker as they are drawn (`FeedRows` says which
it lacks). Failures are shown in the status line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.message import Message
from textual.timer import Timer
from textual.worker import get_current_worker

from recorder.search.feed import AGENTS, FeedDocument, SessionFeed
from recorder.search.index import SOURCE_BUS
from recorder.sources.journal_view import session_record
from recorder.store.layout import sessions_searchable_without_journal
from recorder.store.reader import Record

from ..text import plural
from ..widgets.record_list import RecordList
from .base import Pane
from .search import CATCH_UP_SLICE

if TYPE_CHECKING:
    from recorder.search.indexer import CatchUp

FEED_MARGIN = 60  # rows read above and below the screen with the rows on it
FEED_KEPT = 3000  # rows of an agent source kept read (more: the old ones are let go)
FEED_FOLLOW_SECONDS = 2.0  # how often a listed agent source looks for new messages


class FeedRows:
    """An agent source's rows as records for the `RecordList` (a `RecordSource`): the
    rows read so far, and for the others a stand-in with the time alone, `wanted`
    being told (the pane then reads the rows on screen)."""

    def __init__(self, feed: SessionFeed, wanted: Callable[[int], None]) -> None:
        self.feed = feed
        self.wanted = wanted
        self.documents: dict[int, FeedDocument | None] = {}
        self._records: dict[int, Record] = {}

    def __len__(self) -> int:
        return len(self.feed)

    def has(self, row: int) -> bool:
        return row in self._records

    def record(self, index: int) -> Record:
        rec = self._records.get(index)
        if rec is None:
            self.wanted(index)
            return self._stand_in(index, "reading…")
        return rec

    def _stand_in(self, row: int, text: str) -> Record:
        meta = {"sender": "…", "source": self.feed.source}
        ts = self.feed.times[row] if 0 <= row < len(self.feed) else None
        return session_record("", None, ts, meta, {"text": text}, {"text": text}, row)

    def take_over(self, old: FeedRows) -> None:
        """Keep the rows `old` read that this order still holds (at their new rows), so
        a source read again after new messages came in is not drawn unread."""
        rows = {doc_id: row for row, doc_id in enumerate(self.feed.ids)}
        for doc in old.documents.values():
            row = rows.get(doc.id) if doc is not None else None
            if row is not None:
                self.add(row, [doc])

    def add(self, start: int, documents: list[FeedDocument | None]) -> None:
        if len(self._records) + len(documents) > FEED_KEPT:
            self._records.clear()
            self.documents.clear()
        for row, doc in enumerate(documents, start):
            self.documents[row] = doc
            self._records[row] = (
                self._stand_in(row, "(changed since listed: ctrl+o round again re-reads)")
                if doc is None
                else doc.record(row)
            )


class AgentSourcesPane(Pane):
    """A pane whose `#messages` list shows the journal (`source` bus, the subclass's
    business) or an agent source (`list_source`)."""

    class FeedLoaded(Message):
        """The worker read the order of an agent source (`done`: the index caught up)."""

        def __init__(self, generation: int, feed: SessionFeed, done: bool) -> None:
            super().__init__()
            self.generation = generation
            self.feed = feed
            self.done = done

    class FeedIndexing(Message):
        """The index is catching up (`state`: how far) before the source is read again."""

        def __init__(self, generation: int, state: str) -> None:
            super().__init__()
            self.generation = generation
            self.state = state

    class RowsRead(Message):
        """Rows `start`… of `feed`, read for the screen."""

        def __init__(
            self, feed: SessionFeed, start: int, documents: list[FeedDocument | None]
        ) -> None:
            super().__init__()
            self.feed = feed
            self.start = start
            self.documents = documents

    def __init__(self, title: str, *, id: str) -> None:
        super().__init__(title, id=id)
        self.source = SOURCE_BUS
        """What is listed: the journal (`bus`) or an agent source (`FEED_SOURCES`)."""
        self.feed_rows: FeedRows | None = None
        self.feed_state = ""
        """The agent source's loading state for the status line ("[error]…" on failure)."""
        self._feed_generation = 0
        self._rows_pending: tuple[int, int] | None = None  # rows being read
        self._follow_timer: Timer | None = None
        self._rows_asked = False

    @property
    def messages(self) -> RecordList:
        return self.query_one("#messages", RecordList)

    def update_status(self) -> None:
        """Draw the status line (`feed_status` for an agent source)."""
        raise NotImplementedError

    def list_source(self, source: str) -> None:
        """Empty the list for `source`; an agent source is then read (bus: the caller
        shows the journal)."""
        self.source = source
        self._feed_generation += 1
        self.workers.cancel_group(self, "recent-feed")
        self.feed_rows = None
        self._rows_pending = None
        messages = self.messages
        messages.show_source = source != SOURCE_BUS
        messages.attach(None)  # the row under the cursor is of the other source
        if self._follow_timer is not None:
            self._follow_timer.stop()
            self._follow_timer = None
        if source != SOURCE_BUS:
            messages.highlight = None
            messages.boundaries = frozenset()
            papp = self.papp
            if papp.journal.store is None and not sessions_searchable_without_journal(
                papp.log_dir
            ):  # as `persist search`: a reader makes no folder (its index) for a typo
                self.feed_state = f"[error]{papp.log_dir} does not exist: nothing is indexed"
                return
            self.feed_state = "reading the search index…"
            self.load_feed(source, self._feed_generation)
            self._follow_timer = self.set_interval(FEED_FOLLOW_SECONDS, self._look_for_new_messages)

    def _not_for_agents(self, key: str) -> bool:
        """True (and says so) when an agent source is listed: `key` is for the journal."""
        if self.source == SOURCE_BUS:
            return False
        self.notify(f"{key} applies to the bus view (ctrl+o back to it)", timeout=3)
        return True

    def feed_document(self, row: int) -> FeedDocument | None:
        """Row `row` of the agent source, once read."""
        return self.feed_rows.documents.get(row) if self.feed_rows is not None else None

    def feed_record(self, row: int) -> Record | None:
        doc = self.feed_document(row)
        return None if doc is None else doc.record(row)

    @work(thread=True, exclusive=True, group="recent-feed", exit_on_error=False)
    def load_feed(self, source: str, generation: int) -> None:
        """What the index holds of `source` now; then the index caught up in slices
        (sessions are indexed after the journal) and read again if anything came in."""
        engine = self.papp.searcher
        feed = SessionFeed(engine.index, source)
        feed.load()
        self.post_message(self.FeedLoaded(generation, feed, False))
        caught_up = self._catch_up(generation)
        if caught_up is None:
            return
        if caught_up[0] or feed.missing:
            feed = SessionFeed(engine.index, source)
            feed.load()
        self.post_message(self.FeedLoaded(generation, feed, True))

    @work(thread=True, exclusive=True, group="recent-feed", exit_on_error=False)
    def follow_feed(self, listed: SessionFeed, generation: int) -> None:
        """The index caught up (session files that grew are read again) and, if session
        messages came in, the source read again: posted only if its order changed (the
        journal's records, another agent's messages change nothing listed)."""
        caught_up = self._catch_up(generation)
        if caught_up is None:
            return
        sessions, shown = caught_up
        if sessions:
            feed = SessionFeed(self.papp.searcher.index, listed.source)
            feed.load()
            if feed.ids != listed.ids or feed.times != listed.times:
                self.post_message(self.FeedLoaded(generation, feed, True))
                return
        if shown:  # the progress it showed is over
            self.post_message(self.FeedIndexing(generation, ""))

    def _catch_up(self, generation: int) -> tuple[int, bool] | None:
        """In a worker: the index caught up in slices, progress posted; how many session
        documents came in and whether progress was shown (None: cancelled)."""
        worker = get_current_worker()
        engine = self.papp.searcher
        sessions, shown = 0, False
        while not worker.is_cancelled:
            done = engine.catch_up(budget=CATCH_UP_SLICE, wait=CATCH_UP_SLICE)
            sessions += done.sessions
            if not (done.behind or done.sessions_pending or done.busy):
                return sessions, shown
            self.post_message(self.FeedIndexing(generation, indexing_state(done)))
            shown = True
            if done.busy and not done.waited:
                # answered at once (the journal all indexed, another process writing:
                # its sessions maybe): wait as a slice would have, not a spin
                time.sleep(CATCH_UP_SLICE)
        return None

    def _look_for_new_messages(self) -> None:
        """Every `FEED_FOLLOW_SECONDS` while an agent source is listed (and read)."""
        if self.source == SOURCE_BUS or self.feed_rows is None:
            return
        running = (w for w in self.workers if w.node is self and not w.is_finished)
        if not any(w.group == "recent-feed" for w in running):
            self.follow_feed(self.feed_rows.feed, self._feed_generation)

    def on_agent_sources_pane_feed_loaded(self, message: FeedLoaded) -> None:
        if message.generation != self._feed_generation:
            return
        messages = self.messages
        old = self.feed_rows
        if old is None or old.feed is not message.feed:
            # Read again: the cursor stays on its message, on the same line of the
            # list, unless it was on the newest (then it moves to the new newest).
            doc = old.documents.get(messages.cursor) if old is not None else None
            at_end = messages.cursor >= messages.row_count - 1
            line = messages.cursor_line
            rows = self.feed_rows = FeedRows(message.feed, self._want_row)
            if old is not None:
                rows.take_over(old)
            self._rows_pending = None
            messages.attach(rows)
            row = None if at_end or doc is None else message.feed.row_of(doc.id)
            if row is None:
                messages.move_to(len(rows) - 1, -1)
            else:
                messages.move_to(row, line=line)
        self._set_feed_state("" if message.done else "catching the search index up…")

    def on_agent_sources_pane_feed_indexing(self, message: FeedIndexing) -> None:
        if message.generation == self._feed_generation:
            self._set_feed_state(message.state)

    def _set_feed_state(self, state: str) -> None:
        """Progress for the status line; a failure stays until another source is shown."""
        if not self.feed_state.startswith("[error]"):
            self.feed_state = state
        self.update_status()

    def _want_row(self, row: int) -> None:
        """Row `row` was drawn unread: read the rows on screen (once per refresh)."""
        pending = self._rows_pending
        if pending is not None and pending[0] <= row < pending[1]:
            return
        if not self._rows_asked:
            self._rows_asked = True
            self.call_after_refresh(self._read_rows_on_screen)

    def _read_rows_on_screen(self) -> None:
        self._rows_asked = False
        rows = self.feed_rows
        if rows is None:
            return
        messages = self.messages
        top = int(messages.scroll_y)
        height = max(1, messages.scrollable_content_region.height)
        span = range(max(0, top - FEED_MARGIN), min(len(rows), top + height + FEED_MARGIN))
        unread = [r for r in span if not rows.has(r)]
        if unread:
            self._rows_pending = (unread[0], unread[-1] + 1)
            self.read_rows(rows.feed, unread[0], unread[-1] + 1)

    @work(thread=True, exclusive=True, group="recent-rows", exit_on_error=False)
    def read_rows(self, feed: SessionFeed, start: int, stop: int) -> None:
        self.post_message(self.RowsRead(feed, start, feed.documents(start, stop)))

    def on_agent_sources_pane_rows_read(self, message: RowsRead) -> None:
        rows = self.feed_rows
        if rows is None or rows.feed is not message.feed:
            return
        rows.add(message.start, message.documents)
        self._rows_pending = None
        self.messages.refresh()

    def open_feed_message(self, row: int) -> None:
        """Enter on an agent's message: its session's conversation, there."""
        from ..screens.session_conversation import open_session_message

        doc = self.feed_document(row)
        if doc is None:
            self.notify("This message is not read yet (or changed since listed).")
            return
        open_session_message(self, doc.topic, doc.origin)

    def worker_failed(self, group: str, problem: str) -> None:
        if group in ("recent-feed", "recent-rows"):
            self.feed_state = f"[error]cannot read the {self.source} sessions: {problem}"
            self.update_status()
        else:
            super().worker_failed(group, problem)

    def feed_status(self) -> Text:
        """The status line of an agent source: what is listed, or why nothing is."""
        source = self.source
        who = "agent" if source == AGENTS else source
        status = Text()
        status.append(f"◆ {who} sessions", "bold cyan")
        state = self.feed_state
        if state.startswith("[error]"):
            status.append(f"  {state[7:]}", "bold red")
            return status
        rows = self.feed_rows
        if rows is None:
            status.append(f"  {state}", "dim")
        elif len(rows):
            status.append(f"  {plural(len(rows), 'message')}, oldest first", "bold")
            status.append(" · Enter opens its session", "dim")
            if state:
                status.append(f" · {state}", "dim")
        elif state:
            status.append(f"  none indexed yet · {state}", "dim")
        else:
            status.append(f"  no {who} sessions indexed yet", "bold yellow")
            status.append(" (none found where `persist sessions` looks)", "dim")
        return status


def indexing_state(done: CatchUp) -> str:
    """How far a catch-up of the search index is, in a few words."""
    if done.busy:
        return "waiting for another process indexing"
    if done.behind:
        return f"indexing the journal ({done.behind / 2**20:,.0f} MiB to go)"
    return f"indexing the sessions ({plural(done.sessions_pending, 'file')} to go)"
