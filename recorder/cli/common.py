"""Shared by the command groups: the one-line failure, exit codes, the progress bar."""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from stat import S_ISDIR
from typing import TYPE_CHECKING, Any, NoReturn

import orjson

from recorder.bus.endpoints import check_connect_endpoint, check_endpoint
from recorder.cli.streams import stdout_is_utf8
from recorder.errors import BadOption, PersistError, StdoutFailed
from recorder.store.jsontext import dumps as json_dumps
from recorder.store.jsontext import utf8_text
from recorder.store.layout import default_log_dir

if TYPE_CHECKING:
    from recorder.export.scope import BundleScope

EXIT_FAILED = 1
EXIT_USAGE = 2  # bad options or arguments
EXIT_STOPPED = 3  # like `systemctl status` for a unit that is not running
EXIT_DAMAGE = 5  # export/restore wrote their output, but the journal is damaged in range
EXIT_DEGRADED = 6  # `persist status`: running but not recording (receiver dead, no broker),
# or recording without its recovery state
EXIT_NO_SUBSCRIBER = 7  # `persist send`: nobody subscribed within --wait, nothing was sent


def state_exit_code(state: str) -> int:
    """What `persist status` (and `persist service status`) exit with for the
    recorder's state (`store.status`: healthy, stale, stopped, degraded)."""
    from recorder.store.status import DEGRADED, HEALTHY, STALE, STOPPED

    return {HEALTHY: 0, STALE: EXIT_FAILED, STOPPED: EXIT_STOPPED, DEGRADED: EXIT_DEGRADED}[state]


def shown(text: str) -> str:
    """Text read from files or sent by others (a session's id, a hook's stdin, a topic)
    for one line of output: control and format characters as visible escapes, as
    `render.clean` writes them; text that needs none is unchanged (a session key prints
    as `persist fork KEY` takes it). Escape before cutting to a column's width: a cut
    sequence (`\\x1b]0;` without its end) would hold the terminal's title open. A byte
    of a file's name that is not UTF-8 shows as `\\xNN` (`utf8_text`), as the shell's
    `$'...'` takes it back."""
    from recorder.export.render import clean

    if not text.isascii():
        text = utf8_text(text)
    return clean(text, newlines=False)


def say(message: str) -> None:
    """One line for the person at the terminal, on stderr; what it names (a session's
    id, a file's name, a hook's failure) is `shown`, never raw."""
    print(f"persist: {shown(message)}", file=sys.stderr)


# C1 controls (U+009B is CSI to some terminals) and the bidi controls (marks,
# embeddings, overrides, isolates): orjson writes them as they are, C0 as \u00XX
_JSON_UNSHOWN = re.compile("[\x80-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_json(value: Any, *, indent: bool = False, ascii_only: bool = False) -> str:
    """`value` as JSON for stdout, which may be a terminal: orjson's text with the
    characters a terminal acts on but orjson leaves raw as `\\uXXXX` (the same values
    to any JSON reader); `ascii_only`: every character past ASCII so (a character
    past U+FFFF as its UTF-16 pair, as JSON writes it)."""
    text = json_dumps(value, option=orjson.OPT_INDENT_2 if indent else None).decode()
    if text.isascii():  # O(1): most output
        return text
    if ascii_only:
        return _NOT_ASCII.sub(_json_escape, text)
    return _JSON_UNSHOWN.sub(_json_escape, text)


_NOT_ASCII = re.compile("[^\x00-\x7f]")


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def print_json(value: Any, *, indent: bool = False, flush: bool = False) -> None:
    """The one way a `--json` output is printed (`terminal_json`): to a stdout that is
    not UTF-8 (a Latin-1 locale's) in ASCII, which any reader takes as the same values
    (JSON is UTF-8: a Latin-1 `é` byte is not JSON to a reader of JSON)."""
    print(terminal_json(value, indent=indent, ascii_only=not stdout_is_utf8()), flush=flush)


def fail(message: str, code: int = 1) -> int:
    """Say what went wrong; returns the exit code to use."""
    say(message)
    return code


# SIGINT and SIGTERM that came while a command put its finished output in place
# (`output_in_place`); None: no output is being put in place, a signal acts at once.
_held: list[int] | None = None


def held(signum: int) -> bool:
    """For the CLI's SIGINT and SIGTERM handlers: True (the signal noted) when it must
    not interrupt, because an output is being put in place or already is."""
    if _held is None:
        return False
    _held.append(signum)
    return True


def release() -> None:
    """Signals interrupt again (a new command in this process)."""
    global _held
    _held = None


@contextmanager
def output_in_place() -> Iterator[None]:
    """Around the commit of a command's finished output (the rename over -o FILE).
    A SIGINT or SIGTERM that comes during it waits: if the commit fails, it acts then
    (130/143, the old content kept, as an exit 130/143 promises); once it succeeded the
    command has done what it was asked, and signals no longer cut it short: it ends
    as it would have (its line said, its exit code), with its output whole."""
    global _held
    _held = []
    try:
        yield
    except BaseException:
        waiting, _held = _held, None
        for signum in waiting[:1]:
            signal.raise_signal(signum)  # its handler raises: the commit's error with it
        raise
    if threading.current_thread() is threading.main_thread():
        # to the end: the interpreter's exit puts back the default of a signal that has
        # a Python handler, and a SIGTERM then would still kill the process (143); in
        # a caller's process `main(argv)` puts its handlers back as it returns
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)


class Parser(argparse.ArgumentParser):
    """argparse with its errors as one `persist:` line (exit 2) instead of usage + error,
    and its own output (--help, --version) failing as any command's output does."""

    def error(self, message: str) -> NoReturn:
        say(f"{message} (see {self.prog} --help)")
        sys.exit(EXIT_USAGE)

    def _print_message(self, message: str, file: Any = None) -> None:
        """What argparse prints (the help, the version) written and flushed at once, and
        a stdout that fails raising as a command's output does (`stdout_lost` says it):
        argparse drops the error, and `--help > /dev/full` exited 0 with nothing written."""
        if not message:
            return
        if file is None or file is sys.stderr:
            super()._print_message(message, file)
            return
        try:
            file.write(message)
            file.flush()
        except (BrokenPipeError, StdoutFailed):
            raise
        except OSError as exc:
            raise StdoutFailed(exc.errno, exc.strerror or str(exc)) from None


def stdout_lost(exc: OSError) -> str:
    """The line for a stdout that failed (a reader gone, `| head -1`, or no room, `>
    /dev/full`); what is still buffered for it then goes nowhere (its descriptor on
    /dev/null), or the interpreter's last flush would fail again, as a traceback. The
    one handling of both, for `persist` and `persist-tui`."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # an embedding's stand-in: no descriptor to fail
        fd = -1
    if fd >= 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    if isinstance(exc, BrokenPipeError):
        return "stdout was closed before all output was written (broken pipe)"
    return f"cannot write stdout: {exc.strerror or exc}"


# -- argparse types: each names the bad value; argparse adds the option ------------------
def _number(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"{value!r} is not a finite number")
    return number


def positive(value: str) -> float:
    """A number above 0."""
    number = _number(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0 (got {value})")
    return number


def non_negative(value: str) -> float:
    """A number of 0 or more."""
    number = _number(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {value})")
    return number


def check_utf8(value: str, what: str) -> None:
    """An argument holding bytes that are not UTF-8 (the shell passes them through as
    surrogates) cannot go into a JSON message or a topic frame as typed."""
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        byte = value[exc.start].encode("utf-8", "surrogateescape")
        raise BadOption(
            f"{what} is not valid UTF-8 (byte 0x{byte.hex()} at character {exc.start})"
        ) from None


MAX_INT = 2**31 - 1  # what a count goes into: a zmq socket option, an SQLite LIMIT


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0 (got {value})")
    if number > MAX_INT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_INT:,} (got {value})")
    return number


def count(value: str) -> int:
    """A whole number of 0 or more (a message number)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {value})")
    return number


def endpoint(value: str) -> str:
    """A ZeroMQ endpoint (tcp://HOST:PORT, ipc://PATH, inproc://NAME)."""
    try:
        return check_endpoint(value, "")
    except BadOption as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def connect_endpoint(value: str) -> str:
    """A ZeroMQ endpoint to connect to: no wildcard, no port 0 (`check_connect_endpoint`)."""
    try:
        return check_connect_endpoint(value, "")
    except BadOption as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def output_file(value: str) -> str:
    """A file to write: a name (an empty one is refused, not taken as stdout)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("an empty file name (give - for stdout)")
    return value


def folder(value: str) -> str:
    """A folder that exists or can be made: not an existing file, nor below one. A
    value from $PERSIST_LOG_DIR (the default) is named as such."""
    if not value.strip():  # not the current folder, which `Path("")` would be
        raise argparse.ArgumentTypeError("an empty folder name")
    path = Path(value).expanduser()
    source = " (from $PERSIST_LOG_DIR)" if value == os.environ.get("PERSIST_LOG_DIR") else ""
    try:
        blocking = file_in_the_way(path)
    except FolderOutOfReach as exc:
        raise argparse.ArgumentTypeError(f"{value}{source} {exc}") from None
    if blocking == path:
        raise argparse.ArgumentTypeError(f"{value}{source} exists and is not a folder")
    if blocking is not None:
        raise argparse.ArgumentTypeError(
            f"{value}{source} cannot be a folder: {blocking} is a file"
        )
    return value


class FolderOutOfReach(Exception):
    """A folder name that cannot be looked at: the message goes after the name."""

    def __init__(self, exc: OSError, path: Path, place: Path) -> None:
        reason = (exc.strerror or str(exc)).lower()
        where = f" (at {place})" if place != path else ""
        super().__init__(f"cannot be reached: {reason}{where}")


def file_in_the_way(path: Path) -> Path | None:
    """What keeps `path` from being a folder: itself, a file already, or the nearest
    existing folder above it being a file; None when it is or can be made one.
    FolderOutOfReach when it cannot be looked at (a PermissionError: inside another
    user's folder; a name too long; a loop of symlinks)."""
    for place in (path, *path.parents):
        try:
            mode = os.stat(place).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise FolderOutOfReach(exc, path, place) from None
        return None if S_ISDIR(mode) else place
    return None


def progress_bar(label: str) -> Callable[[int, int], None]:
    """A progress callback (records done, records in all) drawing a bar on stderr."""
    state = {"last": 0.0}

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - state["last"] < 0.1:
            return
        state["last"] = now
        frac = done / total if total else 1.0
        bar = "#" * int(frac * 30)
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\r{label} [{bar:<30}] {frac:4.0%} {done:,}/{total:,} records{end}")
        sys.stderr.flush()

    return show


def add_log_dir(parser: argparse.ArgumentParser) -> None:
    """`--log-dir`, defaulting to `$PERSIST_LOG_DIR` or the XDG data folder."""
    parser.add_argument(
        "--log-dir",
        type=folder,
        default=str(default_log_dir()),
        help="log folder (default: %(default)s)",
    )


def existing_log_dir(log_dir: str) -> Path:
    """The log folder a reader lists from: a mistyped one that does not exist is said
    (exit 1), not shown as an empty list nor made by a lock taken in it."""
    if not os.path.lexists(log_dir):
        raise PersistError(f"no journal in {log_dir} (a folder that does not exist)")
    return Path(log_dir)


def add_agent_roots(parser: argparse.ArgumentParser) -> None:
    """`--claude-root`, `--gemini-root`, `--codex-root`: where agent sessions are read
    (`recorder.cli.sessions.roots_from` turns them into `Roots`)."""
    parser.add_argument(
        "--claude-root", help="Claude Code folder (default: $CLAUDE_CONFIG_DIR or ~/.claude)"
    )
    parser.add_argument(
        "--gemini-root", help="Gemini CLI folder (default: $GEMINI_CLI_HOME/.gemini or ~/.gemini)"
    )
    parser.add_argument("--codex-root", help="Codex CLI folder (default: $CODEX_HOME or ~/.codex)")


def add_scope(parser: argparse.ArgumentParser, *, since: bool = True) -> None:
    """What a restore bundle holds: --last N (default 1000), --since CHECKPOINT, --full."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--last",
        type=positive_int,
        default=1000,
        metavar="N",
        help="the bundle holds the last N messages up to the checkpoint (default 1000); "
        "earlier records stay in the journal",
    )
    if since:
        group.add_argument(
            "--since", metavar="CHECKPOINT", help="everything after this earlier checkpoint"
        )
    group.add_argument(
        "--full",
        action="store_true",
        help="the whole conversation from the beginning of the journal, every segment verified",
    )


def scope_of(args: argparse.Namespace) -> BundleScope:
    """What a restore bundle holds, as `add_scope(since=False)`'s options say."""
    from recorder.export.scope import BundleScope

    return BundleScope.whole() if args.full else BundleScope(last=args.last)


def add_redact(parser: argparse.ArgumentParser) -> None:
    """`--redact` / `--no-redact` for what hands a conversation back (off by default)."""
    parser.add_argument(
        "--redact",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="replace secrets (API keys, tokens, private keys, passwords) by [REDACTED:kind] "
        "in the bundle (default off: the agent continues with what was said, byte for byte; "
        "the journal is never changed)",
    )


def add_curve(parser: argparse.ArgumentParser) -> None:
    """`--curve` / `--no-curve` and `--keys FOLDER` (see README, "Security: CURVE")."""
    parser.add_argument(
        "--curve",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ZeroMQ CURVE encryption and an allow-list of client keys (default: on when "
        "keys exist and an endpoint is beyond loopback; --no-curve refuses it)",
    )
    parser.add_argument(
        "--keys",
        type=folder,
        default=None,
        metavar="FOLDER",
        help="CURVE keys folder (default: <log folder>/keys, made by `persist keys init`)",
    )


def curve_keys_folder(args: argparse.Namespace, endpoints: list[str]) -> Path | None:
    """The keys folder to use if CURVE is on for these endpoints, else None."""
    from recorder.bus.keys import curve_wanted, keys_folder

    log_dir = getattr(args, "log_dir", None) or str(default_log_dir())
    folder_path = keys_folder(Path(log_dir), args.keys)
    return folder_path if curve_wanted(args.curve, folder_path, endpoints) else None
