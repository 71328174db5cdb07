"""The main screen's tabs, one widget each: its bindings, workers, state and messages."""

from .checkpoints import CheckpointsPane
from .diagnostics import DiagnosticsPane
from .recent import RecentPane
from .search import SearchPane

__all__ = ["CheckpointsPane", "DiagnosticsPane", "RecentPane", "SearchPane"]
