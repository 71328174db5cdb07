"""Confirm a restore: what the checkpoint holds and whether the journal still matches it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Static

from recorder.export.restore import RangeIntegrity, check_range
from recorder.export.scope import BundleScope, RangeVerification, first_message_ts
from recorder.store.checkpoints import Checkpoint, Verification
from recorder.store.layout import segment_name

from ..text import AGE_TICK, count, one_line, plural
from ..widgets.keys_footer import AppFooter
from ..worker_errors import ShowsWorkerErrors

if TYPE_CHECKING:
    from ..app import PersistApp


def handed_over(
    cp: Checkpoint, scope: BundleScope, integrity: RangeIntegrity | None = None
) -> tuple[str, bool]:
    """What a bundle of `cp` in `scope` holds, in `persist restore`'s words with the
    counts, and whether that is the whole conversation. The counts are the
    checkpoint's; once `integrity` found the journal holding another number of them
    (a damaged line is no message), the whole conversation is counted as it holds it."""
    total = cp.messages
    if scope.since is not None:
        part = max(0, total - scope.since.messages)
        return f"{scope.describe()} ({count(part)} of {plural(total, 'message')})", False
    if scope.full or scope.last is None or scope.last >= total:
        if integrity is not None and integrity.count_mismatch() is not None:
            held = plural(integrity.messages, "message")
            journal = f"{held} in the journal; the checkpoint counts {count(total)}"
            return f"the whole conversation ({journal})", True
        return f"the whole conversation ({plural(total, 'message')})", True
    return f"{scope.describe()} (of {count(total)}; the earlier ones stay in the journal)", False


@dataclass(frozen=True)
class RestoreConfirmed:
    """The user restores: how the integrity check came out, and whether the bundle
    handed over has its secrets redacted."""

    verification: Verification
    redact: bool
    range_problems: tuple[str, ...] = ()  # what the dialog said of the range

    @property
    def problems(self) -> list[str]:
        """Everything the dialog warned of: the digest's, then the range's (gaps,
        damaged lines), as the launcher's own line lists them."""
        return [*self.verification.problems, *self.range_problems]


class RestoreScreen(ShowsWorkerErrors, ModalScreen[RestoreConfirmed | None]):
    """Dismisses a `RestoreConfirmed` to restore `checkpoint` (once its integrity check
    ran), None to go back."""

    BINDINGS = [
        Binding("enter,y", "confirm", "Restore", tooltip="Restore this checkpoint"),
        Binding("escape,n,q", "cancel", "Cancel", tooltip="Back without restoring"),
        Binding(
            "x",
            "toggle_redact",
            "Redact secrets",
            tooltip="Secrets become [REDACTED:kind] in the bundle handed over (or not)",
        ),
        Binding("tab,right,l", "app.focus_next", "Next button", show=False),
        Binding("shift+tab,left,h", "app.focus_previous", "Previous button", show=False),
    ]

    class RangeStart(Message):
        """When the first message handed over was received (a part of the conversation)."""

        def __init__(self, first_ts: float | None) -> None:
            super().__init__()
            self.first_ts = first_ts

    class Verified(Message):
        def __init__(self, verification: Verification, integrity: RangeIntegrity | None) -> None:
            super().__init__()
            self.verification = verification
            self.integrity = integrity

    def __init__(self, checkpoint: Checkpoint) -> None:
        super().__init__()
        self.checkpoint = checkpoint
        self.verification: Verification | None = None
        self.integrity: RangeIntegrity | None = None
        """Gaps, damaged lines, quarantined tails and refused messages up to the checkpoint."""
        self.scope: BundleScope = self.papp.restore_scope
        """What the bundle will hold (`persist launch --last N`/`--full`, or the default)."""
        self.words, self.whole = handed_over(checkpoint, self.scope)
        self.first_ts: float | str | None = None
        """The first message handed over: its time, None while looking, or why unknown."""

    @property
    def papp(self) -> PersistApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with Vertical(id="restore-dialog", classes="dialog"):
            yield Static("Restore this checkpoint?", classes="dialog-title")
            yield Static(self.summary(), id="restore-summary")
            yield Static(Text("Integrity: checking…", style="dim"), id="restore-integrity")
            with Horizontal(classes="buttons"):
                yield Checkbox(
                    "Redact secrets (x)",
                    self.papp.redact,
                    id="restore-redact",
                    tooltip="In the bundle handed over, API keys, tokens, passwords... "
                    "become [REDACTED:kind]; off, the agent continues with what was said, "
                    "byte for byte",
                )
                yield Button("Restore", variant="primary", id="confirm", disabled=True)
                yield Button("Cancel", id="cancel")
        yield AppFooter()

    def summary(self) -> Text:
        cp = self.checkpoint
        clock = self.papp.clock
        t = Text()
        rows = [
            ("Label", one_line(cp.label or "(no label)", 200)),
            ("Reason", one_line(cp.reason, 40)),
            ("Created", f"{clock.stamp(cp.created)} ({clock.ago(cp.created)})"),
            ("Hands over", self.words),
            ("Time range", f"{self.range_start()} → {clock.stamp(cp.last_ts)}"),
            ("Position", f"{segment_name(cp.segment)} @ {cp.offset:,} (seq {cp.seq:,})"),
            ("ID", cp.id),
        ]
        for i, (key, value) in enumerate(rows):
            if i:
                t.append("\n")
            t.append(f"{key:>11}  ", "bold")
            t.append(value)
        return t

    def range_start(self) -> str:
        if self.whole:
            return self.papp.clock.stamp(self.checkpoint.first_ts)
        if isinstance(self.first_ts, str):
            return f"(unknown: {self.first_ts})"
        return "…" if self.first_ts is None else self.papp.clock.stamp(self.first_ts)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()
        if not self.whole:
            self.find_range_start()
        self.verify()
        if self.papp.live:  # "Created … (15s ago)" keeps counting
            self.set_interval(AGE_TICK, self.show_summary, name="age-tick")

    def show_summary(self) -> None:
        self.query_one("#restore-summary", Static).update(self.summary())

    @work(thread=True, exclusive=True, group="range", exit_on_error=False)
    def find_range_start(self) -> None:
        cp, scope = self.checkpoint, self.scope
        first = self.papp.with_reader(lambda store: first_message_ts(store, cp, scope))
        self.post_message(self.RangeStart(first))

    def on_restore_screen_range_start(self, message: RangeStart) -> None:
        self.first_ts = message.first_ts
        self.show_summary()

    @work(thread=True, exclusive=True, group="verify", exit_on_error=False)
    def verify(self) -> None:
        """What the bundle will say of its range (the segments it reads re-hashed, the
        history before it checked by the digest cache, its records scanned), not a
        pass over the whole journal: the same checks, and as cheap as the restore."""
        cp, scope = self.checkpoint, self.scope
        try:
            integrity = self.papp.with_reader(lambda store: check_range(store, cp, scope))
        except (OSError, IndexError) as exc:  # anything else: `worker_failed` says it
            self.post_message(self.Verified(Verification(False, [f"cannot verify: {exc}"]), None))
            return
        assert integrity is not None and integrity.verification is not None
        self.post_message(self.Verified(integrity.verification, integrity))

    def worker_failed(self, group: str, problem: str) -> None:
        """The check itself failed: say so; restoring stays possible, unverified."""
        if group == "range":
            self.first_ts = one_line(problem, 200)
            self.show_summary()
            return
        self.on_restore_screen_verified(
            self.Verified(Verification(False, [f"cannot verify: {problem}"]), None)
        )

    def on_restore_screen_verified(self, message: Verified) -> None:
        self.verification = v = message.verification
        self.integrity = integrity = message.integrity
        self.words, self.whole = handed_over(self.checkpoint, self.scope, integrity)
        self.show_summary()
        text = Text("Integrity: ", style="bold")
        if v.ok:
            text.append(f"✔ {_verified_words(v)}", "bold green")
        else:
            text.append("✘ " + one_line(v.summary, 400), "bold red")
        problems = integrity.problems() if integrity is not None else []
        if problems:
            text.append("\n In range: ", style="bold")
            text.append("⚠ " + one_line(" · ".join(problems), 400), "bold yellow")
        for caveat in integrity.caveats() if integrity is not None else []:
            text.append("\n Note: " + one_line(caveat, 400), "yellow")
        if not v.ok or problems:
            text.append("\nYou can still restore; the restore manifest lists every problem.", "dim")
        self.query_one("#restore-integrity", Static).update(text)
        button = self.query_one("#confirm", Button)
        button.disabled = False
        button.focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "confirm":
            self.action_confirm()
        else:
            self.action_cancel()

    def action_confirm(self) -> None:
        if self.verification is None:
            self.notify("Still checking integrity…", timeout=2)
            return
        in_range = self.integrity.problems() if self.integrity is not None else []
        self.dismiss(RestoreConfirmed(self.verification, self.redact, tuple(in_range)))

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_toggle_redact(self) -> None:
        self.query_one("#restore-redact", Checkbox).toggle()

    @property
    def redact(self) -> bool:
        return self.query_one("#restore-redact", Checkbox).value


def _verified_words(v: Verification) -> str:
    """What was verified, no more: the segments handed over were re-hashed; those
    before them were checked by the digest cache, or not at all."""
    if not isinstance(v, RangeVerification):
        return "journal matches the checkpoint digest"
    words = f"matches the checkpoint digest ({len(v.segments)} segment(s) re-hashed"
    if v.history_cached:
        words += f", {len(v.history_cached)} earlier verified by the digest cache"
    if v.history_unchecked:
        words += f", {len(v.history_unchecked)} earlier not read"
    return words + ")"
