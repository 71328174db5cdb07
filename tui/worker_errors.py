"""The one place where a failed thread worker becomes a line the user sees."""

from __future__ import annotations

from textual.worker import Worker, WorkerState

from recorder.errors import PersistError

from .text import one_line


def describe_failure(error: BaseException | None) -> str:
    """One line naming what went wrong (never a traceback)."""
    if error is None:
        return "unknown error"
    text = str(error)
    if isinstance(error, OSError | PersistError) and text:  # their text names the problem
        return one_line(text, 200)
    name = type(error).__name__
    return one_line(f"{name}: {text}" if text else name, 200)


class ShowsWorkerErrors:
    """Mixin for every app, screen or pane that runs thread workers (`exit_on_error=False`).

    Textual posts `Worker.StateChanged` to the node that started the worker (it does
    not bubble). On ERROR this calls `worker_failed(group, problem)`, which the node
    implements by showing `problem` where that worker's result would have appeared.
    A cancelled worker's failure is dropped: a newer worker of its group owns that place.
    """

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state is not WorkerState.ERROR or worker.is_cancelled:
            return
        self.worker_failed(worker.group, describe_failure(worker.error))

    def worker_failed(self, group: str, problem: str) -> None:
        """Show that the worker of `group` failed with `problem` (one line)."""
        raise NotImplementedError
