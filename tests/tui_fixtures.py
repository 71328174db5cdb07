"""Shared helpers for the TUI tests: demo journals, a fixed clock, app builders."""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC
from pathlib import Path
from typing import Any

from tests.demo_journal import (
    NOW,
    FixedProbe,
    build_demo,
    healthy_status,
    stopped_status,
    write_status,
)
from tui.app import PersistApp, create_app
from tui.screens.main import MainScreen

SIZE = (100, 30)
SMALL = (80, 24)
_CACHE: dict[str, Path] = {}


def demo_dir(tmp_path: Path, *, status: str | None = "stopped") -> Path:
    """A copy of the demo journal (built once per session) with a status file."""
    if "demo" not in _CACHE:
        base = Path(os.environ.get("PYTEST_DEMO_CACHE", "/tmp")) / f"persist-demo-{os.getpid()}"
        shutil.rmtree(base, ignore_errors=True)
        build_demo(base)
        _CACHE["demo"] = base
    root = tmp_path / "logs"
    shutil.copytree(_CACHE["demo"], root, symlinks=True)
    if status == "stopped":
        write_status(root, stopped_status(root, NOW - 300))
    elif status == "healthy":
        import psutil

        me = psutil.Process()
        write_status(root, healthy_status(root, NOW, me.pid, me.create_time()))
    return root


def make_app(root: Path, **kwargs: Any) -> PersistApp:
    """The app as the CLI builds it, but with a fixed clock, UTC, no timers."""
    kwargs.setdefault("live", False)
    kwargs.setdefault("probe", FixedProbe())
    return create_app(root, now=lambda: NOW, tz=UTC, **kwargs)


def main_screen(app: PersistApp) -> MainScreen:
    """The main screen, under whatever dialog or menu is on top of it."""
    return next(s for s in app.screen_stack if isinstance(s, MainScreen))


def pilot_test(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async pilot test in its own event loop (no asyncio plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


def plain(widget: Any, width: int = 200) -> str:
    """What a Static shows, as plain text."""
    from rich.console import Console
    from rich.text import Text

    content = widget.content
    if isinstance(content, Text):
        return content.plain
    if isinstance(content, str):
        return content
    with open(os.devnull, "w") as sink:
        console = Console(width=width, record=True, force_terminal=False, file=sink)
        console.print(content)
        return console.export_text()


async def wait_until(pilot: Any, predicate: Callable[[], Any], what: str) -> None:
    """Poll `predicate` every 20 ms (up to 8 s): a worker's result without a fixed sleep."""
    for _ in range(400):
        await pilot.pause(0.02)
        if predicate():
            return
    raise AssertionError(f"timed out waiting for {what}")


async def wait_for_session_conversation(pilot: Any) -> Any:
    """The agent session's conversation screen, once its transcript is shown."""
    from tui.screens.session_conversation import SessionConversationScreen
    from tui.widgets.conversation_view import ConversationView

    app = pilot.app
    await wait_until(
        pilot,
        lambda: (
            isinstance(app.screen, SessionConversationScreen) and app.screen.query(ConversationView)
        ),
        "the session's conversation",
    )
    return app.screen


def screen_chars(app: PersistApp) -> str:
    """Every character the app's current screen would put on the terminal: the text
    of each segment the compositor renders (not its style codes)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip if not seg.control) for strip in strips)
