"""Recorder health, sampled by a worker every `diagnostics_interval` seconds."""

from __future__ import annotations

from collections import deque
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Sparkline, Static

from recorder.search.stats import Stats, collect_stats

from ..diagnostics import Diagnostics, HealthUnknown
from ..widgets.diagnostics_view import render_breakdown, render_diagnostics
from .base import Pane

RATE_HISTORY = 120
BREAKDOWN_WINDOW = 24 * 3600.0  # the breakdown counts the messages of the last day
BREAKDOWN_INTERVAL = 60.0  # seconds between recounts while the tab is shown
BREAKDOWN_CATCH_UP = 2.0  # seconds of indexing before counting (the rest at the next count)


class DiagnosticsPane(Pane):
    """The recorder's state, process, disk and message rate over the last two minutes."""

    class Counted(Message):
        """The breakdown of the last day's messages (from the search index)."""

        def __init__(self, stats: Stats, behind: bool) -> None:
            super().__init__()
            self.stats = stats
            self.behind = behind  # the index is still catching up: counts so far

    class Sampled(Message):
        """A new sample (from the worker); it bubbles on to the screen's top bar."""

        def __init__(self, diagnostics: Diagnostics, periodic: bool) -> None:
            super().__init__()
            self.diagnostics = diagnostics
            self.periodic = periodic  # one of the once-a-second samples the graph plots

    def __init__(self) -> None:
        super().__init__("4 Diagnostics", id="diagnostics")
        self.diagnostics: Diagnostics | None = None
        self.rates: deque[float] = deque(maxlen=RATE_HISTORY)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="diag-pane"):
            yield Static(id="diag")
            with Vertical(id="rate-box") as rate_box:
                rate_box.display = False
                yield Static("Message rate (received/s, last 2 min)", id="rate-title")
                yield Sparkline([], id="rate-graph")
            yield Static(render_breakdown(None, self.papp.clock), id="breakdown")

    def on_mount(self) -> None:
        self.sample()
        if self.papp.live:
            self.set_interval(self.papp.diagnostics_interval, self.sample)
            self.set_interval(BREAKDOWN_INTERVAL, self.recount)

    def on_show(self) -> None:
        """The tab is shown: count (not before, so opening the app indexes nothing), and
        sample again with the journal's damage, looked at only while on screen."""
        self.count()
        self.sample(periodic=False)

    def recount(self) -> None:
        if self.display:
            self.count()

    @work(thread=True, exclusive=True, group="diagnostics", exit_on_error=False)
    def sample(self, periodic: bool = True) -> None:
        diagnostics = self.papp.collect_diagnostics(journal=self.display)
        self.post_message(self.Sampled(diagnostics, periodic))

    @work(thread=True, exclusive=True, group="breakdown", exit_on_error=False)
    def count(self) -> None:
        """Messages of the last day per sender, topic, chain and tier, from the search
        index (caught up first, for at most a few seconds)."""
        now = self.papp.clock.now()
        since = now - BREAKDOWN_WINDOW
        if not self.papp.layout.segments.is_dir():  # no journal: nothing to index or count
            self.post_message(self.Counted(Stats(since, now), behind=False))
            return
        engine = self.papp.searcher
        done = engine.catch_up(budget=BREAKDOWN_CATCH_UP, wait=0.0)
        # up to now: the messages stamped later are named apart (a clock set back)
        stats = collect_stats(engine.index, since=since, now=now)
        self.post_message(self.Counted(stats, behind=done.behind > 0))

    def on_diagnostics_pane_counted(self, message: Counted) -> None:
        self.query_one("#breakdown", Static).update(
            render_breakdown(message.stats, self.papp.clock, behind=message.behind)
        )

    def on_diagnostics_pane_sampled(self, message: Sampled) -> None:
        diag = message.diagnostics
        self.diagnostics = diag
        if message.periodic:
            self.rates.append(float(diag.rate or 0.0) if diag.running else 0.0)
        self.show()

    def show(self) -> None:
        diag = self.diagnostics
        narrow = 0 < self.size.width < 100
        self.query_one("#diag", Static).update(
            render_diagnostics(diag, self.papp.clock, narrow=narrow)
        )
        rates = list(self.rates)
        self.query_one("#rate-graph", Sparkline).data = rates
        running = diag is not None and diag.running
        self.query_one("#rate-box").display = running and len(rates) > 1
        if rates:
            title = Text("Message rate", style="bold")
            title.append(
                f"  received/s, last {len(rates)} s · top {max(rates):,.0f}/s · "
                f"bottom {min(rates):,.0f}/s · now {rates[-1]:,.0f}/s",
                "dim",
            )
            self.query_one("#rate-title", Static).update(title)

    def on_resize(self) -> None:
        if self.diagnostics is not None:
            self.show()

    def worker_failed(self, group: str, problem: str) -> None:
        if group == "breakdown":
            text = Text(f"could not count the last day's messages: {problem}", style="red")
            self.query_one("#breakdown", Static).update(text)
        elif group == "diagnostics":  # not the last sample's health: an unknown one
            papp = self.papp
            why = HealthUnknown(f"could not read the recorder's state: {problem}")
            unknown = Diagnostics(papp.clock.now(), Path(papp.folder), why)
            self.post_message(self.Sampled(unknown, periodic=True))
        else:
            super().worker_failed(group, problem)
