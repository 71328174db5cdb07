"""`persist`: the broker, the recorder, and the tools around them.

Exit codes: 0 done; 1 failed (one line on stderr says why); 2 bad options;
3 `persist status` found no recorder running; 4 `persist replay` skipped messages
it could not mark; 5 `persist export` / `persist restore` wrote their output but found
the journal damaged in range (damaged lines, torn or NUL-filled tails, missing
segments; for restore also a failed digest or fewer messages than the checkpoint
counts), each named on stderr (`--allow-damage` makes it 0); `persist launch`
returns the agent's own code (126/127 when it cannot be run).
"""

from __future__ import annotations

import argparse
import sys

from recorder.cli import bus, launch, record, service, tools
from recorder.cli.common import fail
from recorder.errors import PersistError

GROUPS = (bus, record, launch, tools, service)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="persist",
        description="Record every message of a ZeroMQ agent bus into a crash-safe journal.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except PersistError as exc:  # every domain error is one clear line, never a traceback
        return fail(str(exc))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
