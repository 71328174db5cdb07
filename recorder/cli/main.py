"""`persist`: the broker, the recorder, and the tools around them.

Exit codes: 0 done; 1 failed (one line on stderr says why; also when stdout is closed
early, `persist status | head -1`, or has no room, `> /dev/full`: "cannot write
stdout"; `persist stop` when the recorder did not stop in time, or `--force` made it
give up lines a full disk refused); 2 bad options (one line naming the option); 3
`persist status` found no recorder running (1 when that cannot be told: a folder, or its
status and lock file, of another user's); 4 `persist replay`
skipped messages it could not mark (1 when nobody heard it, or the broker went away
while it sent: the line says how many were sent); 5 `persist export` / `persist restore` wrote their
output (`persist replay` sent the rest) but found the journal damaged in range (damaged
lines, torn or NUL-filled tails, missing segments, a checkpoint whose position is not
where its seq ends; for restore also a failed digest or
fewer messages than the checkpoint counts), each named on stderr (`--allow-damage` makes
it 0); 6 `persist status`: the recorder runs but is not recording (its receiver died, or
the broker has been unreachable for a while), or records but cannot write its recovery
state; 7 `persist send` found no subscriber
within --wait (nothing was sent); 8 `persist doctor` found warnings (and no problem), 9
it found at least one problem (each finding names the command that fixes it); `persist
restore-backup` exits 5 when the backup is damaged or tampered with (one line names the
file; nothing is restored; 1 when SRC is no backup at all) or a restored checkpoint does
not verify, and 2 when DEST_DIR is not empty; `persist prune` and `persist trash` use 0,
1 and 2 only (2: no policy given, a bad AGE or SIZE; 1: a trash entry missing or not
restorable, retention busy, `retention/pins.json` or `retention/pruned.json`
unreadable); `persist launch` returns the agent's own code (126/127 when it cannot be
run). Interrupted, a command stops as it does on an error, removing what
it was writing (an `-o FILE` keeps its old content): 130 on Ctrl-C, 143 on SIGTERM
(`persist record` and `persist broker` stop cleanly on SIGTERM and exit 0; one that
is still starting dies of the signal). A second SIGTERM while the first is acted on
(`timeout` signals the command and its process group) is ignored. Once `persist
export` has put its `-o FILE` in place it has succeeded: a signal during that
rename waits for it, one after it is ignored, and the export ends as it would have
(its line said, 0 or 5).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from recorder.errors import StdoutFailed

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

EXAMPLES = {
    "search": [
        "persist search 'redis timeout from:coder since:3d'",
        "persist search --json '\"schema migration\" -rollback' --limit 5",
    ],
    "keys": [
        "persist keys init",
        "persist keys allow /path/to/other-machine-client.key",
        "persist keys list",
    ],
    "keys init": ["persist keys init", "persist keys init --log-dir ~/logs --keys ~/bus-keys"],
    "keys list": ["persist keys list", "persist keys list --keys ~/bus-keys"],
    "keys allow": [
        "persist keys allow /path/to/other-machine-client.key",
        "persist keys allow client.key --log-dir ~/logs",
    ],
    "reindex": ["persist reindex", "persist reindex --catch-up"],
    "compact": ["persist compact --dry-run", "persist compact --log-dir /var/lib/bus-logs"],
    "stats": ["persist stats --since 24h", "persist stats --json --all-kinds"],
    "broker": ["persist broker", "persist broker --frontend ipc:///tmp/bus.pub --hwm 500000"],
    "send": [
        'persist send agents.claude \'{"text": "hello", "sender": "claude"}\'',
        "persist send notes --text remember the migration",
    ],
    "record": [
        "persist record --detach",
        "persist record --log-dir ~/logs --fsync always --checkpoint-interval 60",
        "persist record --secrets off",
    ],
    "status": ["persist status", "persist status --json | jq .counts"],
    "stop": ["persist stop --timeout 10"],
    "checkpoint": ['persist checkpoint --label "before the refactor"'],
    "launch": [
        "persist launch --agent claude -- claude",
        "persist launch --no-tty-policy latest -- ./agent.sh",
        "persist launch -- claude                      (the menu offers this project's sessions)",
        "persist launch --session 3f2a --at 12 -- claude   (fork at message 12, resume the fork)",
    ],
    "demo": ["persist demo", "persist demo --fast --no-tui"],
    "restore": [
        "persist restore latest",
        "persist restore 20240514T092553Z --allow-damage",
        "persist restore latest --full --redact",
    ],
    "replay": ["persist replay latest --speed 10", "persist replay latest --from auto-1 --json"],
    "export": [
        "persist export latest --format md -o chat.md",
        "persist export --all --format jsonl | jq -c .topic",
        "persist export --all --format jsonl --redact -o shared.jsonl",
        "persist export --session 3f2a --format html -o session.html",
        "persist export --session claude:3f2a --at 12 --format jsonl | jq -r .meta.sender",
    ],
    "service": ["persist service install --log-dir ~/logs", "persist service status"],
    "sessions": ["persist sessions", "persist sessions --source claude --json"],
    "protect": ["persist protect --all", "persist protect claude:1f2e3d4c"],
    "fork": ["persist fork 1f2e3d4c", "persist fork 1f2e3d4c --at 12 --json"],
    "monitor": ["persist monitor --once --explain", "persist monitor --interval 10"],
    "hooks": ["persist hooks install claude --restore latest", "persist hooks status"],
    "hooks install": [
        "persist hooks install claude",
        "persist hooks install claude --restore latest",
        "persist hooks install gemini --scope project",
    ],
    "hooks uninstall": [
        "persist hooks uninstall claude",
        "persist hooks uninstall gemini --scope project",
    ],
    "hooks status": [
        "persist hooks status",
        "persist hooks status claude --settings ~/.claude/settings.json",
    ],
    "hook": [
        "persist hook SessionStart --agent claude < event.json",
        "persist hook SessionEnd --agent gemini --log-dir ~/logs < event.json",
    ],
    "doctor": ["persist doctor", "persist doctor --fix", "persist doctor --json | jq .findings"],
    "backup": ["persist backup /mnt/backup/agent-persist", "persist backup ~/bk --dir ~/logs"],
    "restore-backup": ["persist restore-backup /mnt/backup/agent-persist ~/logs-restored"],
    "checkpoints": ["persist checkpoints", "persist checkpoints --json | jq '.checkpoints[0]'"],
    "pin": ['persist pin "before the refactor"', "persist pin latest"],
    "unpin": ["persist unpin 20261202T101500Z"],
    "prune": [
        "persist prune --older-than 90d --dry-run",
        "persist prune --max-size 20G --json",
        "persist prune --forget-missing --dry-run",
    ],
    "trash": [
        "persist trash list",
        "persist trash restore 20261202T101500Z-1a2b3c",
        "persist trash empty --older-than 0",
    ],
}
"""The examples that end each command's --help, by its name (a subcommand's after its
command's: "keys init"); `build_parser` gives every command at every depth its own,
and `persist hook`'s small parser prints its own the same way (`examples_epilog`)."""


def examples_epilog(name: str) -> str:
    """The end of `persist NAME --help`: "examples:" and each example indented."""
    return "examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES.get(name, ()))


GROUPS = (
    "bus",
    "record",
    "launch",
    "tools",
    "storage",
    "retention",
    "search",
    "service",
    "sessions",
    "hooks",
    "keys",
    "doctor",
)
"""The modules of `recorder.cli` that add commands, in the order `persist --help` lists them."""

COMMAND_GROUP = {
    "broker": "bus",
    "send": "bus",
    "record": "record",
    "status": "record",
    "stop": "record",
    "checkpoint": "record",
    "launch": "launch",
    "demo": "launch",
    "restore": "tools",
    "replay": "tools",
    "export": "tools",
    "compact": "storage",
    "checkpoints": "retention",
    "pin": "retention",
    "unpin": "retention",
    "prune": "retention",
    "trash": "retention",
    "search": "search",
    "reindex": "search",
    "stats": "search",
    "service": "service",
    "sessions": "sessions",
    "protect": "sessions",
    "fork": "sessions",
    "monitor": "sessions",
    "hooks": "hooks",
    "hook": "hooks",
    "keys": "keys",
    "doctor": "doctor",
    "backup": "doctor",
    "restore-backup": "doctor",
}
"""Which group adds each command: `persist record` imports the record group alone (the
recorder, the launcher and the hooks start sooner); anything else builds them all."""


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("agent-persist")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of `command` alone when it is one we know."""
    # Imported here, not at the top: `persist hook` (run by Claude Code and Gemini CLI
    # on every turn) must not pay for argparse and the command groups.
    import argparse
    import importlib

    from recorder.cli.common import Parser

    class Version(argparse.Action):
        """--version, looked up only when asked (importlib.metadata takes a tenth of a second)."""

        def __call__(self, parser: argparse.ArgumentParser, *_args: object) -> None:
            # as argparse prints: a stdout that fails says so (`Parser._print_message`)
            parser._print_message(f"{parser.prog} {version()}\n", sys.stdout)
            parser.exit()

    parser = Parser(
        prog="persist",
        description="Record every message of a ZeroMQ agent bus into a crash-safe journal.",
    )
    parser.add_argument("--version", action=Version, nargs=0, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    groups = (COMMAND_GROUP[command],) if command in COMMAND_GROUP else GROUPS
    for name in groups:
        importlib.import_module(f"recorder.cli.{name}").add_parsers(sub)

    def add_examples(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        for action in parser._actions:  # each command, then its subcommands
            if isinstance(action, argparse._SubParsersAction):
                for name, command_parser in action.choices.items():
                    if " ".join((*path, name)) in EXAMPLES:
                        command_parser.formatter_class = argparse.RawDescriptionHelpFormatter
                        command_parser.epilog = examples_epilog(" ".join((*path, name)))
                    add_examples(command_parser, (*path, name))

    add_examples(parser, ())
    return parser


class _NamedStdout:
    """Stands for stdout (its text stream or its `buffer`), telling a write that failed
    there from one to any other file: the catch-all handler cannot (it said
    "status: No space left on device", naming nothing). A broken pipe passes as it is."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __iter__(self) -> Any:
        return iter(self._stream)

    @property
    def buffer(self) -> Any:
        # the real one: `persist export` writes it under its own name ("cannot write
        # stdout"), and copies JSONL into it in the kernel only when it is a plain file
        # object (`jsonl_copy`: a wrapper's fileno() is not trusted)
        return self._stream.buffer

    def write(self, data: Any) -> Any:
        # what the stream returns, as it returns it: a stand-in's `write` (Textual's
        # capture of stdout, an embedding's) may return None
        return _named(self._stream.write, data)

    def writelines(self, lines: Any) -> None:
        _named(self._stream.writelines, lines)

    def flush(self) -> None:
        _named(self._stream.flush)


def _named(call: Callable[..., Any], *args: Any) -> Any:
    try:
        return call(*args)
    except (BrokenPipeError, StdoutFailed):
        raise
    except OSError as exc:
        raise StdoutFailed(exc.errno, exc.strerror or str(exc)) from None


_DAEMONS = ("record", "broker")  # they stop on SIGTERM by handlers of their own


_READERS = ("export", "search", "stats", "status", "checkpoints", "restore", "replay")
"""Commands that read a log folder (the writers refuse a half-restored one)."""


def _output_inside(args: argparse.Namespace, log_dir: str) -> bool:
    """Whether `-o` names a file in the log folder (refused there: said once, by that)."""
    output = getattr(args, "output", None)
    if not isinstance(output, str) or output == "-":
        return False
    try:
        return os.path.realpath(output).startswith(os.path.realpath(log_dir) + os.sep)
    except OSError:  # a link on the way that cannot be read (EACCES): the write says so
        return False


def _warn_if_half_restored(log_dir: str) -> None:
    """A folder a `persist restore-backup` did not finish holds part of the journal:
    what a reader shows of it may be partial, which it says once."""
    from recorder.store.unfinished import MARKER, finish_command, marked, read_mark

    if marked(log_dir):
        from pathlib import Path

        from recorder.cli.common import say

        mark = read_mark(Path(log_dir))
        finish = finish_command(Path(log_dir), mark) if mark else "persist restore-backup"
        say(
            f"warning: {log_dir} holds an unfinished restore ({MARKER}): what is read there "
            f"may be partial; finish it: {finish}"
        )


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread like KeyboardInterrupt is for SIGINT."""


def _held(signum: int) -> bool:
    """Whether the signal waits: a command is putting its output in place, or has."""
    common = sys.modules.get("recorder.cli.common")  # imported by then if it matters
    return common is not None and bool(common.held(signum))


_ending: list[bool] = []
"""Not empty once a SIGTERM is being acted on (the command unwinding, its line being
said): a second one (GNU `timeout` signals the child and its process group; systemd
and shells do likewise) is ignored, where it cut the clean-up short, or the line with
two tracebacks (exit 1). A new command in this process empties it."""


def _terminated(signum: int, _frame: object) -> None:
    if _ending or _held(signum):
        return
    _ending.append(True)
    raise _Terminated


def _interrupted(signum: int, _frame: object) -> None:
    if not _held(signum):
        raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """`persist`. Without `argv` it is the program (the `persist` script, `python -m
    recorder.cli`): it reads sys.argv, and the signal handling it sets up lasts until
    the process exits (an export in place stays done). Given `argv` it runs in its
    caller's process (tests, an embedding), whose SIGINT and SIGTERM handlers it puts
    back when it ends, returning or raising."""
    if argv is None:
        from recorder.cli.streams import show_everything_on_stdout
        from recorder.store.fsutil import raise_open_files_limit

        show_everything_on_stdout()
        raise_open_files_limit()
        return _command(sys.argv[1:])
    if threading.current_thread() is not threading.main_thread():
        return _command(argv)  # no handler can be set here: none to put back
    before = [(signum, signal.getsignal(signum)) for signum in (signal.SIGINT, signal.SIGTERM)]
    try:
        return _command(argv)
    finally:
        for signum, handler in before:
            if handler is not None:  # None: set from C, not Python: left as it is
                signal.signal(signum, handler)


def _command(argv: list[str]) -> int:
    from recorder.cli.streams import guard_closed_streams

    guard_closed_streams()
    if argv[:1] == ["hook"] and "-h" not in argv and "--help" not in argv:
        # the agents' hook: its own small parser, exit 0 whatever happens (its help,
        # for a person, is written as every command's output below)
        from recorder.hooks.run import main as hook_main

        return hook_main(argv[1:], epilog=examples_epilog("hook"))
    stdout = sys.stdout
    sys.stdout = _NamedStdout(stdout)
    try:
        return _run(argv)
    finally:
        if isinstance(sys.stdout, _NamedStdout):  # put back for an embedding, as it was
            sys.stdout = stdout


def _parse_and_run(argv: list[str]) -> int:
    if argv[:1] == ["hook"]:  # its --help
        from recorder.hooks.run import main as hook_main

        return hook_main(argv[1:], epilog=examples_epilog("hook"))
    from recorder.cli.common import release

    parser = build_parser(argv[0] if argv else None)
    args, extra = parser.parse_known_args(argv)
    if argv[:1] == ["search"] and args.query + extra == ["-h"]:
        parser.parse_args(["search", "--help"])  # `-h` alone still asks for help (exits)
    if extra and isinstance(getattr(args, "query", None), list):
        # `persist search kafka -redis`: an exclusion the shell passed as its own word
        # looks like an option to argparse; a single-dash word is the query's
        words = [w for w in extra if not (w.startswith("-") and not w.startswith("--"))]
        if not words:
            args.query += extra
            extra = []
    late = getattr(args, "late_positional", None)
    if late and getattr(args, late) is None and len(extra) == 1 and extra[0][:1] != "-":
        # `persist trash restore --log-dir X ID`: argparse gives an optional positional
        # its empty match as soon as an option follows the word before it
        setattr(args, late, extra.pop())
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    # SIGTERM ends a command the way Ctrl-C does, through every `finally` and `with`
    # (a temp file beside -o FILE was left behind). Not the daemons: a SIGTERM while one
    # starts, before its own handler is in, must end it as a signal does, which
    # systemd's Restart=on-failure takes for a stop (an exit 143 would restart it).
    if argv[0] not in _DAEMONS:
        _ending.clear()
        signal.signal(signal.SIGTERM, _terminated)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored
            signal.signal(signal.SIGINT, _interrupted)  # as Python's, but can wait
    log_dir = getattr(args, "log_dir", None)
    if argv[0] in _READERS and log_dir and not _output_inside(args, log_dir):
        _warn_if_half_restored(log_dir)
    release()  # nothing of an earlier command in this process is still held
    from recorder.cli.common import say
    from recorder.store.lock import tell_waits

    tell_waits(say)  # a wait for another `persist` command holding the folder is said
    return int(args.func(args))


def _run(argv: list[str]) -> int:
    """The command, from its arguments to its last byte on stdout, each failure one
    line: argparse's own output (--help, --version) is held to the same as a command's."""
    from recorder.cli.common import EXIT_USAGE, fail, stdout_lost
    from recorder.errors import BadOption, PersistError

    name = argv[0] if argv else "persist"
    try:
        code = _parse_and_run(argv)
        sys.stdout.flush()  # a closed pipe shows here, not as a traceback at exit
        return code
    except BadOption as exc:
        return fail(str(exc), EXIT_USAGE)
    except PersistError as exc:  # every domain error is one clear line, never a traceback
        return fail(str(exc))
    except (BrokenPipeError, StdoutFailed) as exc:
        # the reader went away (`persist status | head -1`), or no room for it (`persist
        # status --json > /dev/full`): said once, naming stdout
        return fail(stdout_lost(exc))
    except KeyboardInterrupt:
        return 130
    except _Terminated:  # said, as a command cut short may leave work half done
        return fail(
            f"{name}: ended by SIGTERM (`persist doctor` names anything it left half done)",
            128 + signal.SIGTERM,
        )
    except OSError as exc:
        # what no command anticipated (a folder of ours that is a file, a read-only
        # disk): one line naming the file, not a traceback
        where = f" ({exc.filename})" if exc.filename else ""
        return fail(f"{name}: {exc.strerror or exc}{where}")


if __name__ == "__main__":
    sys.exit(main())
