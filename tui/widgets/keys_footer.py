"""The footer, narrower: on a screen under 110 columns (the app's `-narrow` breakpoint)
it leaves out the keys a pane's status line names where they apply, so that the keys
shown nowhere else (`/`, `?`, `q`, ...) are not cut off. `?` lists every key.

Those keys are marked (`-status-named`) and the style sheet hides them on a narrow
screen: the footer is never composed again for a width. (It was, from its `on_resize`,
and the launch menu then stayed drawn at 80x24 in a 120x36 terminal about one start
in two on a busy machine.)"""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.widgets import Footer


class AppFooter(Footer):
    """Textual's `Footer`, letting go of the keys it replaces (every screen's footer)."""

    async def recompose(self) -> None:
        """Compose again (Footer does at each change of the bindings: each key typed
        into the search field) and let go of the keys it replaced. Footer binds each
        key's `compact` to its own (`data_bind`), and that binding's watcher keeps the
        key after it is removed: Textual drops the watchers of removed widgets only
        when `compact` changes, which it never does here. Each search typed kept
        ~50 keys (0.35-0.7 MB) for as long as the app ran; checking the watchers now
        drops them."""
        await super().recompose()
        self.mutate_reactive(Footer.compact)


class KeysFooter(AppFooter):
    """A footer whose keys for `status_named` actions a narrow screen hides."""

    def __init__(self, status_named: Iterable[str]) -> None:
        super().__init__()
        self.status_named = frozenset(status_named)

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            if getattr(widget, "action", None) in self.status_named:  # a FooterKey's action
                widget.add_class("-status-named")
            yield widget
