"""The launch menu: `persist-tui --launch --print` on this terminal, handed back clean."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson

from recorder.errors import PersistError, how_it_ended
from recorder.export.scope import BundleScope
from recorder.launch.selection import Selection


class PickerFailed(PersistError):
    """The menu ended without a usable answer (crashed, killed, printed nonsense)."""


def cannot_draw() -> str | None:
    """Why `$TERM` says this terminal cannot draw a full-screen UI (the alternate screen,
    cursor movement, colours): unset or empty, or `dumb` (Emacs' M-x shell, some IDE
    consoles: every escape sequence would reach the person as text); else None."""
    term = os.environ.get("TERM", "")
    if not term.strip():
        return "TERM is not set"
    if term == "dumb":
        return "TERM=dumb"
    return None


def is_interactive() -> tuple[bool, str]:
    """(True, "") when stdin, stdout and stderr are terminals that can draw the menu, else
    why not: which one is not a terminal, or what `$TERM` says (before 2026-12-07 a
    `TERM=dumb` terminal was drawn on: some 200 KB of escape sequences)."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            tty = os.isatty(fd)
        except OSError:
            tty = False
        if not tty:
            return False, f"{name} is not a terminal"
    why = cannot_draw()
    if why is not None:
        return False, f"{why}: this terminal cannot draw the menu"
    return True, ""


class Menu:
    """`persist-tui --launch --print` running on this terminal.

    The menu draws on stderr and prints its result on stdout (a pipe to us). The
    terminal's settings are saved before it starts and put back after it ends,
    whatever happened; Ctrl-C belongs to the menu meanwhile.
    """

    def __init__(
        self,
        log_dir: Path,
        agent: str | None,
        *,
        launch: bool = True,
        command: Sequence[str] = (),
        redact: bool = False,
        scope: BundleScope | None = None,
    ) -> None:
        argv = [sys.executable, "-m", "tui.cli", "--log-dir", str(log_dir), "--print"]
        if launch:  # the launch menu; without it, the browser picks a checkpoint
            argv.append("--launch")
        if agent:
            argv += ["--agent", agent]
        if command:  # claude/gemini/codex: the menu offers its sessions, resumed with it
            argv += ["--agent-command", shlex.join(command)]
        if scope is not None and scope.full:  # what the restore dialog says is handed over
            argv.append("--full")
        elif scope is not None and scope.last is not None:
            argv += ["--last", str(scope.last)]
        if redact:  # what the restore dialog's redaction starts as
            argv.append("--redact")
        self._saved = None
        with contextlib.suppress(Exception):
            import termios

            self._saved = termios.tcgetattr(0)
        self._previous = signal.signal(signal.SIGINT, lambda *_: None)
        try:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
        except BaseException:
            self._restore_terminal()
            raise

    def _restore_terminal(self) -> None:
        with contextlib.suppress(Exception):
            signal.signal(signal.SIGINT, self._previous)
        if self._saved is not None:
            with contextlib.suppress(Exception):
                import termios

                termios.tcsetattr(0, termios.TCSADRAIN, self._saved)
            self._saved = None

    def cancel(self) -> None:
        """Close the menu without a result (the launch failed meanwhile)."""
        with contextlib.suppress(OSError):
            self.proc.terminate()
        try:
            self.proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
        self._restore_terminal()
        if self.proc.returncode != 0:
            with contextlib.suppress(OSError):  # leave the alternate screen, show the cursor
                os.write(2, b"\x1b[?1049l\x1b[?25h\x1b[0m\r\n")

    def result(self) -> Selection | None:
        """Wait for the choice (the `--print` JSON, read back), or None if the user quit."""
        try:
            out, _ = self.proc.communicate()
        except BaseException:  # SIGTERM, SIGHUP (the launch ends): the menu with it
            # before 2026-12-07 the menu ran on, drawing on a terminal given back cooked,
            # deaf to its keys, until killed
            self.cancel()
            raise
        finally:
            self._restore_terminal()
        code = self.proc.returncode
        if code < 0:  # killed: leave the alternate screen, show the cursor
            with contextlib.suppress(OSError):
                os.write(2, b"\x1b[?1049l\x1b[?25h\x1b[0m\r\n")
        if code == 1 and not out.strip():
            return None
        if code != 0:
            raise PickerFailed(f"the menu stopped ({how_it_ended(code)})")
        try:
            return Selection.from_json(orjson.loads(out))
        except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
            raise PickerFailed(f"the menu printed something unexpected: {exc}") from None


def run_menu(log_dir: Path, agent: str | None) -> Selection | None:
    """Run the launch menu on this terminal; the choice, or None if cancelled."""
    return Menu(log_dir, agent).result()
