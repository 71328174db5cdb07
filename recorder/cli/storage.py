"""`persist compact`: compress closed segments now (the recorder does it by itself)."""

from __future__ import annotations

import argparse
from pathlib import Path

from recorder.cli.common import EXIT_FAILED, add_log_dir, fail, say


def _mib(n: int) -> str:
    """MiB, or KiB below one (a small segment compressed is not "0.0 MiB")."""
    return f"{n / 2**20:,.1f} MiB" if n >= 2**20 else f"{n / 1024:,.1f} KiB"


def cmd_compact(args: argparse.Namespace) -> int:
    from recorder.store.compact import compact
    from recorder.store.layout import Layout
    from recorder.store.status import older_refusal, running_older

    layout = Layout(Path(args.log_dir))
    if not layout.segments.is_dir():
        return fail(f"no journal in {layout.root}")
    if not 1 <= args.level <= 19:
        return fail(f"--level must be from 1 to 19 (got {args.level})", 2)
    older = running_older(layout)
    if older is not None:  # it may not read a compressed segment (before 2026-12-02 none)
        return fail(
            older_refusal(
                layout,
                older,
                "it may not read compressed segments, and its checkpoints would leave "
                "them out, so nothing is compressed",
            )
        )
    try:
        report = compact(layout, dry_run=args.dry_run, level=args.level)
    except OSError as exc:
        return fail(f"cannot compress segments in {layout.root}: {exc}")
    if report.busy:
        return fail(
            f"another compactor is at work in {layout.root} (the recorder's background "
            "thread or another persist compact); try again when it is done"
        )
    for line in report.repaired:
        say(line)
    verb = "would compress" if args.dry_run else "compressed"
    for c in report.done:
        detail = (
            "" if args.dry_run else f" -> {_mib(c.stored)} ({c.ratio:.1f}:1, {c.seconds:.1f} s)"
        )
        print(f"{verb} {c.name}: {_mib(c.size)}{detail}")
    for problem in report.problems:
        say(problem)
    total = f"{len(report.done)} segment{'s' * (len(report.done) != 1)}, {_mib(report.size)}"
    if args.dry_run:
        print(f"{verb} {total}; {report.already} already compressed; the active one never")
    elif report.done:
        ratio = report.size / report.stored if report.stored else 0.0
        print(f"{verb} {total} into {_mib(report.stored)} ({ratio:.1f}:1)")
    elif report.problems:
        print(f"none compressed ({report.already} already were; the active one never is)")
    else:
        print(f"nothing to compress ({report.already} already compressed; the active one never)")
    return EXIT_FAILED if report.problems else 0


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    p = sub.add_parser(
        "compact",
        help="compress closed journal segments now (the recorder does it by itself)",
        description="Compress every closed segment (seg-N.jsonl -> seg-N.jsonl.zst, FORMAT.md) "
        "that is still plain; the segment being written is never touched. Each copy is "
        "read back and its SHA-256 compared with the original's before the original goes. "
        "Every reader reads both forms; checkpoints keep verifying.",
    )
    add_log_dir(p)
    p.add_argument("--dry-run", action="store_true", help="list what would be compressed")
    p.add_argument("--level", type=int, default=3, help="zstd level, 1-19 (default 3)")
    p.set_defaults(func=cmd_compact)
