"""What every pane of the main screen shares."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import TabPane

from ..worker_errors import ShowsWorkerErrors

if TYPE_CHECKING:
    from ..app import PersistApp


class Pane(ShowsWorkerErrors, TabPane):
    """A tab of the main screen; its failed workers are shown in it (`worker_failed`)."""

    @property
    def papp(self) -> PersistApp:
        return self.app  # type: ignore[return-value]

    def journal_changed(self, what: str) -> None:
        """The journal was "loaded", "grew" or has new "checkpoints" (called by the screen)."""

    def worker_failed(self, group: str, problem: str) -> None:
        self.notify(f"{group} failed: {problem}", severity="error")
