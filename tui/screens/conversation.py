"""The conversation around a checkpoint or a record, as a readable transcript.

Keys: j/k per message, t jumps to a time, Enter shows the record in full (] and [
step on from there), v marks one end of a range, y copies the turn or the range
(OSC 52 to the terminal's clipboard, and always a file: terminals may refuse it),
e exports what is on screen (or the range) as Markdown, r restores the checkpoint
the view was opened from. Copies and exports run on a thread with a reader of their
own, written as they are read (`records_io`), their progress in the status line.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Input, Static
from textual.worker import get_current_worker

from recorder.search.query import Query, match_spans
from recorder.store.checkpoints import Checkpoint
from recorder.store.reader import Record, Store

from ..records_io import Copied, Records, Stopped, copy_turns, export_turns
from ..text import one_line, plural
from ..widgets.conversation_view import ConversationView
from ..widgets.keys_footer import AppFooter
from ..worker_errors import ShowsWorkerErrors

if TYPE_CHECKING:
    from ..app import PersistApp

OSC52_LIMIT = 256 * 1024
"""Bytes copied to the terminal's clipboard at most (terminals cap OSC 52); a file always."""
RANGE_COUNTED = 2000
"""Records in a marked range up to which the status line counts its turns."""


def parse_time(text: str, around: float | None, clock_dt: datetime | None) -> float | None:
    """`HH:MM`, `HH:MM:SS` (on the day of `clock_dt`) or `YYYY-MM-DD HH:MM[:SS]`."""
    text = text.strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        tz = clock_dt.tzinfo if clock_dt is not None else None
        return parsed.replace(tzinfo=tz).timestamp()
    for fmt in ("%H:%M:%S", "%H:%M"):
        try:
            clock = datetime.strptime(text, fmt)
        except ValueError:
            continue
        base = clock_dt or datetime.fromtimestamp(around or time.time())
        return base.replace(
            hour=clock.hour, minute=clock.minute, second=clock.second, microsecond=0
        ).timestamp()
    return None


class TimePrompt(ModalScreen[str | None]):
    """Asks for a time; dismisses with the text, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="time-dialog", classes="dialog"):
            yield Static(
                "Jump to a time: HH:MM, HH:MM:SS or YYYY-MM-DD HH:MM", classes="dialog-title"
            )
            yield Input(placeholder="09:30", id="time-input")

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


TRANSCRIPT_BINDINGS = [
    Binding("enter", "open_record", "Record"),
    Binding("t", "jump_time", "Time"),
    Binding("v", "mark", "Mark"),
    Binding("y", "copy", "Copy"),
    Binding("e", "export", "Export"),
]
"""The keys of every transcript: the journal's (`ConversationScreen`) and an agent
session's (`SessionConversationScreen`)."""


class TranscriptScreen(ShowsWorkerErrors, Screen[None]):
    """What a screen showing a `ConversationView` does with it: the record in full, a
    jump to a time, a range marked, copied and exported on a thread. Its subclasses say
    where the records come from (`job_records`, `time_index`, `export_about`) and list
    `TRANSCRIPT_BINDINGS` among their keys."""

    class JobProgress(Message):
        """The copy or export read `done` of its `total` records."""

        def __init__(self, done: int, total: int) -> None:
            super().__init__()
            self.done = done
            self.total = total

    class JobDone(Message):
        """The copy (`Copied`) or export (its path and turns) is written."""

        def __init__(self, result: Copied | tuple[Path, int]) -> None:
            super().__init__()
            self.result = result

    COPIED_LINES = "stored lines"
    """What the file a copy writes holds, as its notice names it."""

    def __init__(self) -> None:
        super().__init__()
        self.job: str | None = None
        """"copying" or "exporting" while that runs on a thread (one at a time)."""
        self.job_done: tuple[int, int] | None = None
        """(records read, records in range) of the job, as last told."""

    @property
    def papp(self) -> PersistApp:
        return self.app  # type: ignore[return-value]

    @property
    def transcript(self) -> ConversationView | None:
        """The transcript, once it is there (a session's is mounted when it was read)."""
        return next(iter(self.query(ConversationView)), None)

    # -- what a subclass says -----------------------------------------------------
    def job_records(self) -> AbstractContextManager[Records]:
        """The records a copy or export reads on its thread (a reader of their own)."""
        raise NotImplementedError

    def time_index(self, ts: float) -> int:
        """The first record at or after time `ts` (past the end: the length)."""
        raise NotImplementedError

    def export_about(self) -> list[tuple[str, str]]:
        """The rows an export's head names its origin with."""
        raise NotImplementedError

    def update_status(self) -> None:
        raise NotImplementedError

    def status_tail(self, status: Text) -> None:
        """The marked range and the job running, at the end of the status line."""
        view = self.transcript
        if view is not None and view.mark is not None:
            first, last = view.selection_range()
            if last - first < RANGE_COUNTED:
                status.append(
                    f"  range: {plural(len(list(view.records(first, last))), 'turn')}", "cyan"
                )
            else:  # counting its turns would read all of it at every key
                status.append(f"  range: {last - first + 1:,} records", "cyan")
        if self.job is not None:
            done, total = self.job_done or (0, 1)
            status.append(f"  {self.job}… {100 * done // max(total, 1)}%", "bold yellow")

    # -- actions ----------------------------------------------------------------
    def action_open_record(self) -> None:
        view = self.transcript
        if view is None or not len(view.store):
            return
        store = view.store

        def neighbour(index: int, step: int) -> Record | None:
            found = view._next(index, step)
            if found is None:
                return None
            view.select(found)
            return store.record(found)

        self.papp.show_record(store.record(view.selected), navigate=neighbour)

    def action_jump_time(self) -> None:
        view = self.transcript
        if view is None or not len(view.store):
            return
        store = view.store
        current = store.record(view.selected).ts

        def jump(answer: str | None) -> None:
            if not answer:
                return
            dt = self.papp.clock.dt(current) if current is not None else None
            ts = parse_time(answer, current, dt)
            if ts is None:
                self.notify(f"Not a time: {one_line(answer, 40)} (try 09:30)", severity="warning")
                return
            index = self.time_index(ts)
            view.select(min(index, len(store) - 1))
            self.notify(self._landed(view, ts, index >= len(store)), timeout=4)

        self.app.push_screen(TimePrompt(), jump)

    def _landed(self, view: ConversationView, asked: float, past_the_end: bool) -> str:
        """Where a jump to time `asked` landed, in words: the turn's own time, and why it
        is not the time asked for."""
        clock = self.papp.clock
        at = clock.stamp(view.store.record(view.selected).ts)
        wanted = clock.stamp(asked)
        if past_the_end:
            return f"Nothing recorded at or after {wanted}: at the last turn, {at}"
        if at == wanted:
            return f"At {at}"
        return f"At {at}, the first turn at or after {wanted}"

    def action_mark(self) -> None:
        view = self.transcript
        if view is None:
            return
        view.mark = None if view.mark == view.selected else view.selected
        view._cache.clear()
        view.refresh_layout()
        self.update_status()

    def action_copy(self) -> None:
        """The turn (or the marked range) as Markdown to the clipboard, and as the
        stored lines to a file (the fallback that always works); on a thread, with
        its progress in the status line."""
        view = self.transcript
        if view is None or not len(view.store):
            return
        first, last = view.selection_range()
        self._start_job("copying", first, last)

    def action_export(self) -> None:
        """What is on screen (or the marked range) as a Markdown transcript file."""
        view = self.transcript
        if view is None:
            return
        if view.mark is not None:
            first, last = view.selection_range()
        elif view.shown:
            first, last = view.shown[0], view.shown[-1]
        else:
            return
        self._start_job("exporting", first, last)

    def _start_job(self, what: str, first: int, last: int) -> None:
        if self.job is not None:
            self.notify(f"Still {self.job}…", timeout=2)
            return
        self.job = what
        self.update_status()
        about = self.export_about()
        self.run_worker(
            lambda: self._run_job(what, first, last, about),
            thread=True,
            group="copy",
            exit_on_error=False,
        )

    def _run_job(self, what: str, first: int, last: int, about: list[tuple[str, str]]) -> None:
        """Copy or export records `first` to `last` with a reader of its own (the UI's
        is the UI thread's), telling the screen how far it got every 0.1 s."""
        worker = get_current_worker()
        folder = self.papp.exports_dir
        total = last - first + 1
        told = [0.0]

        def progress(done: int) -> bool:
            now = time.monotonic()
            if now - told[0] >= 0.1:
                told[0] = now
                self.post_message(self.JobProgress(done, total))
            return not worker.is_cancelled

        with self.job_records() as store:
            try:
                if what == "copying":
                    copied = copy_turns(store, folder, first, last, OSC52_LIMIT, progress)
                    self.post_message(self.JobDone(copied))
                else:
                    path, turns = export_turns(store, folder, first, last, about, progress)
                    self.post_message(self.JobDone((path, turns)))
            except Stopped:
                return

    def on_transcript_screen_job_progress(self, message: JobProgress) -> None:
        if self.job is not None:
            self.job_done = (message.done, message.total)
            self.update_status()

    def on_transcript_screen_job_done(self, message: JobDone) -> None:
        result = message.result
        self.job, self.job_done = None, None
        self.update_status()
        if isinstance(result, Copied):
            if result.markdown is not None:
                self.app.copy_to_clipboard(result.markdown)
            clip = (
                "copied to the clipboard (OSC 52)"
                if result.markdown is not None
                else "too big for the clipboard"
            )
            what = plural(result.turns, "turn")
            self.notify(f"{what} {clip}; {self.COPIED_LINES} in {result.path}", timeout=10)
        else:
            path, turns = result
            self.notify(f"Exported {plural(turns, 'turn')} to {path}", timeout=10)

    def worker_failed(self, group: str, problem: str) -> None:
        what = "copy" if self.job == "copying" else "export"
        self.job, self.job_done = None, None
        self.update_status()
        self.notify(f"Could not {what}: {problem}", severity="error")


class ConversationScreen(TranscriptScreen):
    """A transcript around record `index` (from `checkpoint`, when opened from one)."""

    BINDINGS = [
        Binding("escape,q", "back", "Back"),
        *TRANSCRIPT_BINDINGS,
        Binding("r", "restore", "Restore", tooltip="Restore the checkpoint this view is at"),
    ]

    def __init__(
        self,
        index: int,
        checkpoint: Checkpoint | None = None,
        *,
        matches: Sequence[int] = (),
        query: Query | None = None,
    ) -> None:
        super().__init__()
        self.index = index
        self.checkpoint = checkpoint
        self.matches = matches
        """Search hits (record indices, journal order) that n/N step through."""
        self.search_query = query
        self.at: Record | None = None
        """The record under the cursor, as last shown: found again by its place in the
        journal when the journal changes under the view."""
        self.generation = 0
        """The journal store's `generation` the view's indices were taken in."""

    @property
    def view(self) -> ConversationView:
        return self.query_one(ConversationView)

    def compose(self) -> ComposeResult:
        store = self.papp.journal.store
        assert store is not None
        yield Static(id="conversation-status", classes="status-line")
        yield ConversationView(
            store, self.papp.clock, self.index, rules=self.papp.reading, id="conversation"
        )
        yield AppFooter()

    def on_mount(self) -> None:
        view = self.view
        self.generation = view.store.generation if isinstance(view.store, Store) else 0
        self.label_checkpoints()
        query = self.search_query
        if query is not None and self.matches:
            view.set_matches(self.matches, lambda text: match_spans(text, query))
        view.refresh_layout()
        view.focus()
        self.update_status()
        # at once, on the poll that saw the change: no key is taken on the old indices
        self.papp.journal_changed.subscribe(self, self.journal_changed, immediate=True)

    def label_checkpoints(self) -> None:
        """The rules drawn after the records checkpoints end at."""
        view = self.view
        state = self.papp.journal
        bounds = state.boundaries or {}
        labels: dict[int, str] = {}
        for cp in reversed(state.checkpoints or []):  # oldest first: the newest label wins
            at = bounds.get(cp.id)
            if at:
                labels[view.nearest_turn(at - 1)] = one_line(cp.label or cp.id, 80)
        view.checkpoint_after = labels

    def journal_changed(self, what: str) -> None:
        """The journal changed under the open view other than by growing (the app tells
        it as loaded anew): the view moves to the record it was at, now at another index,
        or, that record gone with its segment (or the journal removed), it is closed and
        says why. Before 2026-12-07 it kept its indices, and a prune under it stopped
        persist-tui with an IndexError."""
        if what != "loaded":
            return
        view = self.view
        store = self.papp.journal.store
        if store is not view.store:  # the journal removed (or loaded afresh)
            self.close_with("The journal was removed: the conversation open on it was closed.")
            return
        if store.generation == self.generation:
            return
        self.generation = store.generation
        at = self.at
        index = store.index_of(at.segment, at.offset) if at is not None else len(store)
        if index >= len(store) or at is None or store.record(index).line != at.line:
            self.close_with(
                "The message this conversation was at is no longer in the journal (its "
                "segment was removed or pruned): the conversation was closed."
            )
            return
        had_matches = bool(view.matches)
        view.moved_in_journal(index)
        self.label_checkpoints()
        view.refresh_layout()
        self.update_status()
        self.notify(
            "Older records were pruned or removed: the conversation stays at the same "
            "message"
            + (" (n/N no longer step through the search's hits)." if had_matches else "."),
            timeout=8,
        )

    def close_with(self, notice: str) -> None:
        """Close this view and the screens opened over it (the record view), saying why."""
        while self.app.screen is not self and len(self.app.screen_stack) > 1:
            self.app.pop_screen()
        self.notify(notice, severity="warning", timeout=15)
        self.dismiss(None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "restore":
            return self.checkpoint is not None
        return True

    @on(ConversationView.Moved)
    def moved(self, _event: ConversationView.Moved) -> None:
        self.update_status()

    def update_status(self) -> None:
        view = self.view
        store = view.store
        rec = self.at = store.record(view.selected) if len(store) else None
        status = Text()
        status.append(" conversation ", "bold reverse")
        if self.checkpoint is not None:
            status.append(
                f" ◆ {one_line(self.checkpoint.label or self.checkpoint.id, 40)}", "green"
            )
        if rec is not None:
            status.append(f"  {self.papp.clock.stamp(rec.ts)}")
            status.append(f"  {view.selected + 1:,}/{len(store):,}", "dim")
        self.status_tail(status)
        self.query_one("#conversation-status", Static).update(status)

    @contextmanager
    def job_records(self) -> Iterator[Records]:
        with Store(self.papp.log_dir) as store:
            store.refresh()
            yield store

    def time_index(self, ts: float) -> int:
        store = self.papp.journal.store
        assert store is not None
        return store.bisect(ts, lambda r: r.ts)

    def export_about(self) -> list[tuple[str, str]]:
        return [("log folder", self.papp.folder)]

    # -- actions ----------------------------------------------------------------
    def action_back(self) -> None:
        self.dismiss(None)

    def action_restore(self) -> None:
        if self.checkpoint is None:
            return
        from .main import MainScreen

        main = next((s for s in self.app.screen_stack if isinstance(s, MainScreen)), None)
        if main is not None:  # the dialog over this view: backing out comes back here
            main.checkpoints_pane.action_restore(self.checkpoint)
