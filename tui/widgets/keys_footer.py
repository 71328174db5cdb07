"""The footer, narrower: on a screen under 110 columns (the app's `-narrow` breakpoint)
it leaves out the keys a pane's status line names where they apply, so that the keys
shown nowhere else (`/`, `?`, `q`, ...) are not cut off. `?` lists every key."""

from __future__ import annotations

from collections.abc import Iterable

from textual import events
from textual.app import ComposeResult
from textual.widgets import Footer


class KeysFooter(Footer):
    """A `Footer` without the bindings of `status_named` actions when narrow."""

    def __init__(self, status_named: Iterable[str]) -> None:
        super().__init__()
        self.status_named = frozenset(status_named)
        self._narrow: bool | None = None

    def compose(self) -> ComposeResult:
        self._narrow = self.screen.has_class("-narrow")
        for widget in super().compose():
            if self._narrow and getattr(widget, "action", None) in self.status_named:
                continue  # a FooterKey's action
            yield widget

    def on_resize(self, event: events.Resize) -> None:
        if self._narrow is not None and self._narrow != self.screen.has_class("-narrow"):
            self.refresh(recompose=True)
