"""`persist-tui`: browse checkpoints and hand the chosen one back.

Usage: persist-tui [--log-dir DIR] [--print | --json] [--launch [--agent NAME]
                   [--agent-command COMMAND]] [--last N | --full] [--redact]

Exit codes:
  0  a choice was made (with --print/--json it is written to stdout as one JSON object:
     kind "checkpoint" or "fresh", checkpoint_id, label, time, log_dir, position,
     messages (the journal's up to the checkpoint, whatever --last says), verified;
     or kind "session" (with --agent-command): session, at, new_id, command, cwd: the
     agent session to resume, or to fork at `at` first)
  1  quit without a choice (nothing is written to stdout); also --help or --version
     to a stdout with no room or closed early (one line says which, as `persist` does)
     Without --print a chosen checkpoint's restore bundle is written
     (restore/<id>[.<scope>][.redacted]/ in the log folder) and stdout says where, and
     how an agent uses it.
  2  usage error (one line on stderr names the option), or a log folder that cannot
     be one (a file, or below a file), cannot be reached or read (another user's), or
     whose status and lock file may not be read (whether a recorder holds it cannot be
     told)
  3  no terminal: stdin or stderr is not a terminal, or $TERM is dumb or not set (one
     line on stderr says which)
  4  the restore bundle could not be written (one line on stderr says why)
The UI is drawn on stderr and reads keys from stdin, so stdout carries only the
result and may be a pipe (the launcher reads `--print` from one).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any, NoReturn

from recorder.cli.common import (
    FolderOutOfReach,
    Parser,
    add_scope,
    file_in_the_way,
    print_json,
    scope_of,
    stdout_lost,
)
from recorder.cli.streams import guard_closed_streams, show_everything_on_stdout
from recorder.errors import StdoutFailed
from recorder.export.scope import BundleScope
from recorder.launch.selection import LaunchChoice, Selection
from recorder.store.fsutil import raise_open_files_limit, user_name
from recorder.store.layout import default_log_dir
from recorder.store.shell import shell_quote

EXIT_CHOSEN = 0
EXIT_CANCELLED = 1
EXIT_USAGE = 2
EXIT_FAILED = 4
EXIT_NO_TERMINAL = 3


def missing_terminal() -> str | None:
    """Which of the streams the UI needs (stdin for keys, stderr to draw) is not a
    terminal, or None. Without them Textual would wait for input that never comes."""
    for fd, name in ((0, "stdin"), (2, "stderr")):
        try:
            tty = os.isatty(fd)
        except OSError:
            tty = False
        if not tty:
            return name
    return None


def version() -> str:
    """The installed version (as `persist --version`; not imported from it: that loads zmq)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("agent-persist")
    except PackageNotFoundError:
        return "unknown (not installed)"


class _Parser(Parser):
    """argparse with a usage error as one line and exit 2, as `persist` gives it
    (not the usage block and `error:`), and --help and --version to a stdout that fails
    raising as `persist`'s do (`Parser._print_message`)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="persist-tui",
        description="Browse the recorded conversation's checkpoints and pick one to restore.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  persist-tui                                   browse the default log folder\n"
        "  persist-tui --log-dir ~/logs                  another folder\n"
        "  persist-tui --print > choice.json             the choice as JSON (no bundle)\n"
        "  persist-tui --launch --agent claude --print   the launch menu, as persist "
        "launch shows it",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=None,
        help="log folder (default: $PERSIST_LOG_DIR or "
        "~/.local/share/agent-persist/conversation_logs), e.g. ~/logs",
    )
    out = parser.add_mutually_exclusive_group()
    out.add_argument(
        "--print",
        dest="print_json",
        action="store_true",
        help="write the choice as one JSON object on stdout (and no restore bundle), "
        "e.g. persist-tui --print | jq .checkpoint_id",
    )
    out.add_argument("--json", dest="print_json", action="store_true", help="same as --print")
    parser.add_argument(
        "--launch",
        action="store_true",
        help="start with the launch menu (continue / pick / fresh / ...)",
    )
    parser.add_argument(
        "--agent", default=None, help="name of the agent that is launching, e.g. claude"
    )
    parser.add_argument(
        "--agent-command",
        default=None,
        metavar="COMMAND",
        help="the agent's command line (what persist launch runs); for claude, gemini or "
        "codex the launch menu offers its sessions of this folder, resumed with it",
    )
    parser.add_argument(
        "--redact",
        action="store_true",
        help="the restore dialog starts with secrets redacted in the bundle handed over "
        "([REDACTED:kind]; what persist launch --redact passes); the dialog can change it",
    )
    add_scope(parser, since=False)  # what a restore hands over, as persist launch takes it
    return parser


def log_folder_problem(path: Path, named: str) -> str | None:
    """Why `path` cannot be a log folder (it is a file, or below one), or None: a folder
    that does not exist yet is fine (the browser says nothing is recorded there)."""
    try:
        blocking = file_in_the_way(path)
    except FolderOutOfReach as exc:
        return f"{named} {path} {exc}"
    if blocking == path:
        return f"{named} {path} is a file, not a log folder"
    if blocking is not None:
        return f"{named} {path} cannot be a log folder: {blocking} is a file"
    return _unreadable(path, named)


def _unreadable(path: Path, named: str) -> str | None:
    """Why the log folder at `path` may not be read or looked into (another user's, say),
    or None. Before 2026-12-08 the browser started, and its first poll crashed."""
    try:
        owner = os.stat(path).st_uid
    except OSError:  # not there yet (the browser says nothing is recorded there)
        return None
    if os.access(path, os.R_OK | os.X_OK, effective_ids=True):
        return None
    whose = f" (it belongs to another user, {user_name(owner)})" if owner != os.geteuid() else ""
    return f"{named} {path} cannot be read: permission denied{whose}"


def holder_unknown(path: Path) -> str | None:
    """Why whether a recorder holds the log folder cannot be told (its status and lock
    file are another user's: a `sudo persist record`'s), or None: the browser shows
    that recorder's health throughout."""
    from recorder.store.layout import Layout
    from recorder.store.status import HolderUnknown, assess

    try:
        assess(Layout(path))
    except HolderUnknown as exc:
        return str(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the program: whatever stdout cannot encode escaped, never an error
        guard_closed_streams()  # a closed stdout: --help says so, not on stderr, exit 1
        show_everything_on_stdout()
        raise_open_files_limit()  # a journal of thousands of segments: one file each
    try:
        args = build_parser().parse_args(argv)
    except (BrokenPipeError, StdoutFailed) as exc:  # --help, --version: as `persist` says it
        print(f"persist-tui: {stdout_lost(exc)}", file=sys.stderr)
        return EXIT_CANCELLED
    log_dir = (args.log_dir or default_log_dir()).expanduser()
    named = "--log-dir" if args.log_dir else "$PERSIST_LOG_DIR"
    if not args.log_dir and not os.environ.get("PERSIST_LOG_DIR"):
        named = "the default log folder"
    problem = log_folder_problem(log_dir, named)
    if problem is not None:  # before the UI: it would show an errno and a useless command
        print(f"persist-tui: {problem} (see persist-tui --help)", file=sys.stderr)
        return EXIT_USAGE
    unknown = holder_unknown(log_dir)
    if unknown is not None:
        print(f"persist-tui: {unknown}", file=sys.stderr)
        return EXIT_USAGE
    missing = missing_terminal()
    if missing is not None:
        print(
            f"persist-tui: {missing} is not a terminal; the browser needs one to draw on "
            "(stderr) and read keys from (stdin). Without a terminal use persist export, "
            "persist restore or persist status.",
            file=sys.stderr,
        )
        return EXIT_NO_TERMINAL
    from recorder.launch.menu import cannot_draw

    why = cannot_draw()
    if why is not None:  # before 2026-12-07 drawn anyway: escape sequences as text
        print(
            f"persist-tui: {why}: this terminal cannot draw the browser (full screen, "
            "colours); run it in a terminal emulator, or use persist export, persist "
            "restore or persist status.",
            file=sys.stderr,
        )
        return EXIT_NO_TERMINAL
    from .app import create_app

    command = shlex.split(args.agent_command) if args.agent_command else None
    scope = scope_of(args)
    app = create_app(
        log_dir,
        launch=args.launch,
        agent=args.agent,
        agent_command=command,
        redact=args.redact,
        restore_scope=scope,
    )
    selection = app.run()
    if selection is None:
        return EXIT_CANCELLED
    if args.print_json:
        print_json(selection.to_json(), flush=True)
        return EXIT_CHOSEN
    return restore(selection, log_dir, args.agent, scope, agent_command=command)


def restore(
    selection: Selection,
    log_dir: Path,
    agent: str | None,
    scope: BundleScope | None = None,
    *,
    agent_command: list[str] | None = None,
) -> int:
    """Without --print nobody reads the choice: write the restore bundle, say where,
    and how an agent continues from it (a session: the `persist launch` that does what
    the confirmation showed, with this log folder, which may hold the only copy)."""
    if selection.kind is LaunchChoice.SESSION and selection.command:
        command = agent_command or selection.command[:1]
        print(  # nobody carries it out here: say what to type
            f"persist-tui: resume it with: persist launch --log-dir {shell_quote(str(log_dir))}"
            f" --session {shell_quote(selection.session or '')}"
            + (f" --at {selection.at}" if selection.at is not None else "")
            + f" -- {' '.join(map(shell_quote, command))}"
            + (
                " (the fork is written, under an id of its own, when it runs)"
                if selection.new_id
                else ""
            )
        )
        return EXIT_CHOSEN
    if selection.kind is not LaunchChoice.CHECKPOINT or selection.checkpoint_id is None:
        print("persist-tui: fresh start, nothing restored.")
        return EXIT_CHOSEN
    from recorder.errors import PersistError
    from recorder.export.restore import build_bundle

    try:
        bundle = build_bundle(
            log_dir,
            selection.checkpoint_id,
            agent=agent,
            scope=scope,
            redact=bool(selection.redact),
        )
    except (PersistError, OSError) as exc:
        print(f"persist-tui: cannot write the restore bundle: {exc}", file=sys.stderr)
        return EXIT_FAILED
    m = bundle.manifest
    integrity = m["integrity"]
    messages = int(m["messages"])
    print(
        f"Restored checkpoint {bundle.checkpoint_id} ({messages:,} "
        f"message{'' if messages == 1 else 's'}, "
        f"{'verified' if integrity['verified'] else 'NOT verified: see the manifest'}) into\n"
        f"  {bundle.dir}/\n"
        f"    {bundle.jsonl.name:<20} {held(m)}, as stored\n"
        f"    {bundle.transcript.name:<20} the same messages, readable\n"
        f"    {bundle.manifest_path.name:<20} checkpoint, scope, counts, integrity, gaps"
    )
    if m.get("redacted"):
        print("  secrets redacted: each one is [REDACTED:kind] in both files")
    for problem in integrity.get("problems") or []:
        print(f"  warning: {problem}")
    env = {
        "PERSIST_LOG_DIR": str(log_dir.absolute()),  # the agent may run elsewhere
        "PERSIST_CHECKPOINT": bundle.checkpoint_id,
        "PERSIST_RESTORE_FILE": str(bundle.jsonl),
        "PERSIST_RESTORE_TRANSCRIPT": str(bundle.transcript),
    }
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    print(
        "An agent continues from it with these in its environment (what persist launch "
        f"gives it), e.g.:\n  {assignments} YOUR-AGENT-COMMAND"
    )
    return EXIT_CHOSEN


def held(manifest: dict[str, Any]) -> str:
    """What a bundle's conversation holds, from its manifest, in `persist restore`'s
    words: every record up to the checkpoint, or which part of them."""
    rng = manifest["range"]
    if rng.get("complete"):
        return "every record up to the checkpoint"
    total = manifest["checkpoint"].get("messages")
    notes = [f"of {total:,} messages"] if isinstance(total, int) else []
    if rng.get("start_index"):
        notes.append("the earlier records stay in the journal")
    from recorder.export.restore import held_words

    return f"{held_words(manifest)} up to the checkpoint" + (
        f" ({'; '.join(notes)})" if notes else ""
    )


if __name__ == "__main__":
    sys.exit(main())
