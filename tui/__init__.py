"""persist-tui: browse the journal's checkpoints and hand one back.

`import tui` stays light (no Textual): `run_picker` imports the app lazily.
"""

from __future__ import annotations

from pathlib import Path

from recorder.launch.selection import Selection

__all__ = ["Selection", "run_picker"]


def run_picker(
    log_dir: Path | str | None = None, *, launch: bool = False, agent: str | None = None
) -> Selection | None:
    """Run the full-screen picker; the chosen checkpoint, a fresh start, or None."""
    from recorder.store.layout import default_log_dir

    from .app import create_app

    app = create_app(
        Path(log_dir) if log_dir is not None else default_log_dir(), launch=launch, agent=agent
    )
    return app.run()
