"""Regenerate screenshots/*.svg from the fixed demo journal: `python -m tests.screenshots`.

The same scenes drive the snapshot tests, so what the README shows is what is tested.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
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

Steps = Callable[[Any], Awaitable[None]]
SHOWN_DIR = "~/.local/share/agent-persist/conversation_logs"
"""What the scenes call their log folder (the real one is a different temporary folder
each run): the default location, so images are identical between runs."""


async def settle(pilot: Any, delay: float = 0.0) -> None:
    """Let timers up to `delay` fire, then wait until no worker runs and messages are handled."""
    await pilot.pause(delay or None)
    for _ in range(50):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if not any(w.is_running for w in pilot.app.workers):
            break
    await pilot.pause()


def keys(*presses: str, delay: float = 0.0) -> Steps:
    async def run(pilot: Any) -> None:
        await settle(pilot)
        for key in presses:
            await pilot.press(key)
        await settle(pilot, delay)
        from textual.widgets import Input

        for inp in pilot.app.screen.query(Input):
            inp.cursor_blink = False
        await pilot.pause()

    return run


def diagnostics_history(samples: int) -> Steps:
    """The diagnostics tab after `samples` heartbeats (the rate graph fills up)."""

    async def run(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("4")
        from tui.screens.main import MainScreen

        main = next(s for s in pilot.app.screen_stack if isinstance(s, MainScreen))
        for _ in range(samples):
            main.diagnostics_pane.sample()
            await settle(pilot)

    return run


@dataclass(frozen=True)
class Scene:
    """One screen to capture: which journal, which app options, which keys."""

    name: str
    steps: Steps
    size: tuple[int, int] = (120, 36)
    status: str | None = "healthy"
    journal: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    sessions: bool = False  # Claude Code sessions of /home/me/web, offered to `claude`


SCENES = [
    Scene("launch", keys(), options={"launch": True, "agent": "coder"}),
    Scene("checkpoints", keys("j")),
    Scene("checkpoints-80x24", keys(), size=(80, 24)),
    Scene("search", keys("slash", *"migraton from:coder", delay=0.4)),
    Scene("recent", keys("3", "k", "k")),
    Scene("detail", keys("3", *"kkkkkkkk", "enter")),
    Scene("conversation", keys("j", "enter", "k")),
    Scene("conversation-80x24", keys("j", "enter", "k"), size=(80, 24)),
    Scene("corrupt", keys("1", "G", "k", "k")),
    Scene("restore", keys("r")),
    Scene("restore-80x24", keys("r"), size=(80, 24)),
    Scene("diagnostics", diagnostics_history(40)),
    Scene("diagnostics-stopped", keys("4"), status="stopped"),
    Scene("empty", keys(), journal=False, status=None, size=(80, 24)),
    Scene("help", keys("question_mark")),
    Scene("launch-claude", keys(), options={"launch": True, "agent": "claude"}, sessions=True),
    Scene(
        "resume",
        keys("enter", "enter"),
        options={"launch": True, "agent": "claude"},
        sessions=True,
        size=(100, 30),
    ),
]

PROJECT = "/home/me/web"


def claude_sessions(root: Path) -> None:
    """Three Claude Code sessions of PROJECT and one of another project (fixed ids)."""
    import uuid

    from tests.session_fixtures import ClaudeSession, text, tool_use

    talks = [
        ["make the landing page load faster", "Profiled it: the hero image is 4 MB."],
        ["fix the flaky login test", "The test raced the session cookie; it waits now."],
        ["add dark mode to the settings page", "Added a theme toggle and the CSS variables."],
    ]
    for n, (ask, answer) in enumerate(talks):
        sid = str(uuid.UUID(int=(0x3F2A9C1E + 0x1111 * n) << 96 | 0xC0DE, version=4))
        c = ClaudeSession(root, cwd=PROJECT, session_id=sid, t=NOW - 86400 * (3 - n) - 600)
        for turn in range(3 + 2 * n):
            c.user(ask if turn == 0 else f"go on with step {turn}")
            c.assistant(
                text(answer if turn == 0 else f"Step {turn} done."),
                tool_use("Edit", {"file_path": f"src/page{turn}.tsx"}, f"t{n}-{turn}"),
            )
            c.tool_result(f"t{n}-{turn}", "ok")
        c.write()
    other = ClaudeSession(root, cwd="/home/me/other", t=NOW - 3600)
    other.user("not this project")
    other.write()


def prepare(scene: Scene, base: Path, demo: Path) -> PersistApp:
    """A log folder for `scene` under `base` and an app on it with the fixed clock
    (showing the folder as SHOWN_DIR)."""
    root = base / scene.name / "conversation_logs"
    shutil.rmtree(root.parent, ignore_errors=True)
    root.parent.mkdir(parents=True)
    if scene.journal:
        shutil.copytree(demo, root, symlinks=True)
        if scene.status == "stopped":
            write_status(root, stopped_status(root, NOW - 300))
        elif scene.status == "healthy":
            import psutil

            me = psutil.Process()
            write_status(root, healthy_status(root, NOW, me.pid, me.create_time()))
    options = dict(scene.options)
    if scene.sessions:
        from recorder.sources.discover import Roots

        claude_sessions(base / scene.name / "claude")
        options.update(
            agent_command=["claude"],
            project=PROJECT,
            roots=Roots(base / scene.name / "claude", None, None),
        )
    return create_app(
        root,
        now=lambda: NOW,
        tz=UTC,
        probe=FixedProbe(),
        live=False,
        display_dir=SHOWN_DIR,
        **options,
    )


async def capture(scene: Scene, app: PersistApp) -> str:
    async with app.run_test(size=scene.size) as pilot:
        await scene.steps(pilot)
        return app.export_screenshot(title=f"persist-tui — {scene.name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    parser.add_argument("--png", action="store_true", help="also write PNGs (cairosvg)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="persist-shots-") as tmp:
        base = Path(tmp)
        demo = build_demo(base / "demo")
        for scene in SCENES:
            svg = asyncio.run(capture(scene, prepare(scene, base, demo)))
            path = args.out / f"{scene.name}.svg"
            path.write_text(svg)
            if args.png:
                import cairosvg

                cairosvg.svg2png(bytestring=svg.encode(), write_to=str(path.with_suffix(".png")))
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
