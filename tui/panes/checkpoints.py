"""The checkpoint timeline: activity strip, checkpoint list and the preview of one."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Static
from textual.worker import get_current_worker

from recorder.launch.selection import Selection
from recorder.store.checkpoints import Checkpoint
from recorder.store.reader import Record
from recorder.store.shell import shell_quote
from recorder.store.status import Health

from ..activity import Activity, compute_activity
from ..diagnostics import HealthUnknown
from ..preview import Preview, build_preview, messages_after
from ..text import AGE_TICK, Clock, count, one_line, plural
from ..widgets.activity_strip import ActivityStrip
from ..widgets.checkpoint_list import CheckpointList, timeline
from ..widgets.preview_pane import render_preview
from ..widgets.virtual_list import VirtualList
from .base import Pane

ACTIVITY_EVERY = 5.0
"""Seconds between recounts of the activity strip while the journal grows."""


def session_preview(cp: Checkpoint, clock: Clock) -> Text:
    """What a checkpoint of an agent session holds (the monitor's protected copy)."""
    ref = cp.session
    assert ref is not None
    t = Text()
    t.append(f"{one_line(cp.label or ref.key)}\n", "bold")
    t.append(f"{one_line(ref.key)}\n{one_line(ref.path)}\n\n", "dim")
    rows = [
        ("Taken", f"{clock.stamp(cp.created)} ({clock.ago(cp.created)})"),
        ("Why", cp.reason),
        ("Messages", f"{ref.messages:,}"),
        ("Context", f"about {ref.context_tokens:,} tokens"),
        ("Copy", f"version {ref.copy_version}, {ref.size:,} bytes, {ref.lines:,} lines"),
        (
            "Files",
            ", ".join(ref.files_modified[:8]) + (" …" if len(ref.files_modified) > 8 else ""),
        ),
    ]
    for key, value in rows:
        t.append(f"{key:>9}  ", "bold")
        t.append(f"{one_line(value or '-')}\n")
    t.append("\nEnter reads the session there; r: the command that continues from it.", "dim")
    return t


class CheckpointsPane(Pane):
    """Checkpoints newest first; the highlighted one is previewed and can be restored."""

    BINDINGS = [
        Binding("r", "restore", "Restore", tooltip="Restore the highlighted checkpoint"),
        Binding(
            "enter", "conversation", "Conversation", show=False, tooltip="Read the conversation"
        ),
    ]

    class PreviewReady(Message):
        """The preview worker read a checkpoint's range."""

        def __init__(self, preview: Preview) -> None:
            super().__init__()
            self.preview = preview

    class AfterReady(Message):
        """The rows after a checkpoint, read again as the journal grew."""

        def __init__(self, checkpoint_id: str, after: list[Record], more: bool) -> None:
            super().__init__()
            self.checkpoint_id = checkpoint_id
            self.after = after
            self.more = more

    class ActivityReady(Message):
        """The activity worker counted messages over time (None: an empty journal)."""

        def __init__(self, activity: Activity | None) -> None:
            super().__init__()
            self.activity = activity

    def __init__(self) -> None:
        super().__init__("1 Checkpoints", id="checkpoints")
        self.preview: Preview | None = None
        self.preview_problem: tuple[str, str] | None = None
        """(checkpoint id, why its preview could not be built)."""
        self._preview_for: str | None = None  # the checkpoint the preview worker reads

    def compose(self) -> ComposeResult:
        clock = self.papp.clock
        yield ActivityStrip(clock, id="activity")
        with Horizontal(id="cp-body") as body:
            body.display = False
            yield CheckpointList(clock, id="cp-list")
            with VerticalScroll(id="preview-pane") as preview_pane:
                preview_pane.can_focus = True
                yield Static(Text("Opening the journal…", style="dim"), id="preview")
        empty = Static(id="cp-empty", classes="empty")
        empty.display = False
        yield empty

    _activity_at = 0.0  # when the activity strip was last computed (monotonic)
    _recount_due = False  # a recount is set for the end of the current window

    def _recount(self) -> None:
        self._recount_due = False
        self._activity_at = time.monotonic()
        self.compute_activity()

    def on_mount(self) -> None:
        if self.papp.live:  # "15s ago" keeps counting
            self.set_interval(AGE_TICK, self.show_preview, name="age-tick")

    @property
    def checkpoint_list(self) -> CheckpointList:
        return self.query_one("#cp-list", CheckpointList)

    def journal_changed(self, what: str) -> None:
        if what == "grew":  # the strip follows new messages, at most every few seconds
            wait = self._activity_at + ACTIVITY_EVERY - time.monotonic()
            if wait <= 0:
                self._recount()
            elif not self._recount_due:  # the end of a burst is counted too
                self._recount_due = True
                self.set_timer(wait, self._recount, name="activity-recount")
            if self.query_one("#cp-empty").display:  # its count of records follows too
                self.show_empty()
            self.follow_after()
            return
        if what not in ("loaded", "checkpoints"):
            return
        self._activity_at = time.monotonic()
        state = self.papp.journal
        stale = what == "loaded" and self.preview is not None
        if stale:  # loaded anew (the journal changed under it): a preview from before
            self.preview = None  # may show records that are gone, or call a damaged range whole
        checkpoints = timeline(state.checkpoints or [], state.session_checkpoints)
        self.checkpoint_list.set_checkpoints(checkpoints, state.pins)
        self.show_preview()  # a pin or unpin shows at once
        cp = self.checkpoint_list.highlighted
        if stale and cp is not None and cp.session is None:
            self._preview_for = cp.id
            self.load_preview(cp, self.previous_checkpoint(cp))
        has_cps = bool(checkpoints)
        self.query_one("#cp-body").display = has_cps
        self.query_one("#activity").display = has_cps
        self.query_one("#cp-empty").display = not has_cps
        if not has_cps:
            self.show_empty()
        self.compute_activity()

    def select(self, checkpoint_id: str) -> None:
        self.checkpoint_list.select_id(checkpoint_id)

    # -- no checkpoints ----------------------------------------------------------
    def show_empty(self) -> None:
        """Say why there is nothing to show (when the list is empty)."""
        if not (self.papp.journal.checkpoints or []):
            self.query_one("#cp-empty", Static).update(self.empty_message())

    def empty_message(self) -> Text:
        papp = self.papp
        state = papp.journal
        text = Text()
        if state.error:  # the folder cannot be read: whether a recorder runs is unknown too
            text.append(f"{state.error}\n\n", "bold red")
            text.append(f"{papp.folder}\n", "dim")
            text.append("This view updates by itself once the folder can be read.\n")
            return text
        health = papp.health()
        known = isinstance(health, Health)
        if state.store is None and state.removed:
            text.append("The journal was removed\n", "bold red")
            text.append(f"{papp.folder} has no segments/ folder any more\n\n", "dim")
            if known:
                text.append(
                    "Start the recorder to record a new one (this view updates by itself):\n\n"
                )
        elif state.store is None:
            text.append("No journal here yet\n", "bold")
            text.append(f"{papp.folder}\n\n", "dim")
            if known:
                text.append("Start the recorder, then come back (this view updates by itself):\n\n")
        else:
            text.append("No checkpoints yet\n", "bold")
            text.append(f"{count(len(state.store))} records in {papp.folder}\n\n", "dim")
            text.append(
                "The recorder writes one periodically; press 3 to see the recent messages.\n\n"
            )
            if isinstance(health, Health) and health.running:
                return text
            if known:
                text.append("The recorder is not running. Start it with:\n\n")
        if isinstance(health, HealthUnknown):  # a start command could start a second one
            text.append(f"Whether a recorder runs here is unknown: {health.reason}\n", "yellow")
            return text
        text.append(f"  {health.start_command(Path(papp.folder))}\n", "bold cyan")
        if state.store is None and not papp.launch:
            # what someone who runs Claude Code, Gemini CLI or Codex came for needs no
            # recorder (a launch menu lists the agent's sessions itself)
            text.append("\nYour Claude Code, Gemini CLI and Codex sessions: press ")
            text.append("S", "bold cyan")
            text.append(" (no recorder needed)\n")
        return text

    # -- preview -----------------------------------------------------------------
    @on(VirtualList.Highlighted, "#cp-list")
    def checkpoint_highlighted(self, event: VirtualList.Highlighted) -> None:
        cp = self.checkpoint_list.highlighted
        self.query_one("#activity", ActivityStrip).selected = cp.created if cp else None
        stale = cp is not None and (self.preview is None or self.preview.checkpoint.id != cp.id)
        if stale:
            self.preview_problem = None
        self.show_preview()
        if cp is not None and stale and cp.session is None:
            self._preview_for = cp.id
            self.load_preview(cp, self.previous_checkpoint(cp))

    @on(VirtualList.Selected, "#cp-list")
    def checkpoint_selected(self, event: VirtualList.Selected) -> None:
        self.action_conversation()

    def action_conversation(self) -> None:
        """The conversation around the highlighted checkpoint (its last record selected)."""
        from ..screens.conversation import ConversationScreen

        cp = self.checkpoint_list.highlighted
        store = self.papp.journal.store
        if cp is not None and cp.session is not None:
            from ..screens.session_conversation import SessionConversationScreen

            at = max(0, cp.session.messages - 1)
            self.app.push_screen(SessionConversationScreen(cp.session.key, at))
            return
        if cp is None or store is None or not len(store):
            self.notify("Nothing recorded to show yet.", severity="warning")
            return
        index = max(0, store.checkpoint_index(cp) - 1)
        self.app.push_screen(ConversationScreen(index, cp))

    def previous_checkpoint(self, cp: Checkpoint) -> Checkpoint | None:
        """The checkpoint taken just before `cp` (the next one in the newest-first list),
        even at the same position: then nothing happened since, and the preview says 0."""
        cps = self.papp.journal.checkpoints or []
        if cp.session is not None:
            return None
        for i, c in enumerate(cps):
            if c.id == cp.id:
                return cps[i + 1] if i + 1 < len(cps) else None
        older = [c for c in cps if c.seq < cp.seq]
        return older[0] if older else None

    @work(thread=True, exclusive=True, group="preview", exit_on_error=False)
    def load_preview(self, cp: Checkpoint, previous: Checkpoint | None) -> None:
        worker = get_current_worker()
        pv = self.papp.with_reader(
            lambda store: build_preview(store, cp, previous, lambda: worker.is_cancelled)
        )
        if pv is not None and not worker.is_cancelled:
            self.post_message(self.PreviewReady(pv))

    def on_checkpoints_pane_preview_ready(self, message: PreviewReady) -> None:
        self.preview = message.preview
        self.show_preview()

    _after_reading = False  # a `load_after` worker runs
    _after_again = False  # the journal grew while it ran

    def follow_after(self) -> None:
        """The journal grew: read the rows "first after" the checkpoint again while they
        are not full, one read at a time (one more if it grew during a read)."""
        pv = self.preview
        if pv is None or not pv.after_open:
            return
        if self._after_reading:
            self._after_again = True
            return
        self._after_reading = True
        self.load_after(pv.checkpoint.id, pv.index)

    @work(thread=True, group="preview-after", exit_on_error=False)
    def load_after(self, checkpoint_id: str, index: int) -> None:
        """Read again the few messages after a checkpoint (not its whole range)."""
        after, more = self.papp.with_reader(lambda store: messages_after(store, index))
        self.post_message(self.AfterReady(checkpoint_id, after, more))

    def _after_done(self) -> None:
        self._after_reading = False
        if self._after_again:
            self._after_again = False
            self.follow_after()

    def on_checkpoints_pane_after_ready(self, message: AfterReady) -> None:
        self.show_after(message)
        self._after_done()

    def show_after(self, message: AfterReady) -> None:
        pv = self.preview
        if pv is None or pv.checkpoint.id != message.checkpoint_id:
            return  # another checkpoint's preview is shown (or read) now
        if [r.index for r in message.after] != [r.index for r in pv.after]:
            self.preview = replace(pv, after=message.after, after_open=message.more)
            self.show_preview()
        elif not message.more:
            pv.after_open = False

    def show_preview(self) -> None:
        cp = self.checkpoint_list.highlighted
        if cp is not None and cp.session is not None:
            self.query_one("#preview", Static).update(session_preview(cp, self.papp.clock))
            return
        failed = self.preview_problem
        shown = failed[1] if failed is not None and cp is not None and failed[0] == cp.id else None
        self.query_one("#preview", Static).update(
            render_preview(
                self.preview,
                cp,
                self.papp.clock,
                problem=shown,
                rules=self.papp.reading,
                pinned=cp is not None and cp.id in self.papp.journal.pins,
            )
        )

    # -- activity ----------------------------------------------------------------
    @work(thread=True, exclusive=True, group="activity", exit_on_error=False)
    def compute_activity(self) -> None:
        marks = [cp.created for cp in self.papp.journal.checkpoints or []]
        act = self.papp.with_reader(lambda store: compute_activity(store, marks))
        self.post_message(self.ActivityReady(act))

    def on_checkpoints_pane_activity_ready(self, message: ActivityReady) -> None:
        strip = self.query_one("#activity", ActivityStrip)
        strip.problem = None
        strip.activity = message.activity

    # -- export ------------------------------------------------------------------
    def export_highlighted(self) -> None:
        """The highlighted checkpoint's range as Markdown, in the exports folder."""
        cp = self.checkpoint_list.highlighted
        if cp is None:
            self.notify("No checkpoint to export yet.", severity="warning")
            return
        if cp.session is not None:
            self.notify("An agent session: persist export covers the journal only.")
            return
        self.export(cp, self.previous_checkpoint(cp))

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def export(self, cp: Checkpoint, previous: Checkpoint | None) -> None:
        from ..records_io import export_checkpoint

        folder = self.papp.exports_dir
        path, n = self.papp.with_reader(
            lambda store: export_checkpoint(store, folder, cp, previous)
        )
        self.app.call_from_thread(
            self.notify, f"Exported {plural(n, 'record')} to {path}", timeout=10
        )

    def worker_failed(self, group: str, problem: str) -> None:
        if group == "preview" and self._preview_for is not None:
            self.preview_problem = (self._preview_for, f"could not read this range: {problem}")
            self.show_preview()
        elif group == "preview-after":  # said once: the rows stay as first read
            if self.preview is not None:
                self.preview.after_open = False
            super().worker_failed("reading the messages after the checkpoint", problem)
            self._after_done()
        elif group == "activity":
            self.query_one(
                "#activity", ActivityStrip
            ).problem = f"could not count the messages: {problem}"
        else:
            super().worker_failed(group, problem)

    # -- restore -----------------------------------------------------------------
    def action_restore(
        self, checkpoint: Checkpoint | None = None, on_cancel: Callable[[], None] | None = None
    ) -> None:
        """Confirm, then exit with the checkpoint (the highlighted one by default);
        `on_cancel` runs when the user backs out (the launch menu comes back)."""
        from ..screens.restore import RestoreConfirmed, RestoreScreen

        cp = checkpoint or self.checkpoint_list.highlighted
        if cp is None:
            self.notify("No checkpoint to restore yet.", severity="warning")
            return
        if cp.session is not None:  # the agent's own session, at that point: a fork
            at = max(0, cp.session.messages - 1)
            fork = f"persist fork {shell_quote(cp.session.key)} --at {at}"  # as it is typed
            self.notify(fork, title="Continue it with")
            return
        papp = self.papp

        def done(confirmed: RestoreConfirmed | None) -> None:
            if confirmed is not None:
                v = confirmed.verification
                papp.choose(
                    Selection.from_checkpoint(
                        cp,
                        papp.log_dir,
                        verified=v.ok,
                        problems=confirmed.problems,
                        agent=papp.agent,
                        redact=confirmed.redact,
                    )
                )
            elif on_cancel is not None:
                on_cancel()

        self.app.push_screen(RestoreScreen(cp), done)
