"""`persist doctor`, `persist backup`, `persist restore-backup`."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

from recorder.cli.common import EXIT_DAMAGE, EXIT_USAGE, fail, folder, print_json, say
from recorder.store.layout import default_log_dir
from recorder.store.shell import shell_quote

EXIT_WARNINGS = 8  # `persist doctor`: warnings, no problem
EXIT_PROBLEMS = 9  # `persist doctor`: at least one problem


def _log_dir(args: argparse.Namespace) -> Path:
    return Path(args.log_dir).expanduser()


def cmd_doctor(args: argparse.Namespace) -> int:
    from recorder.doctor.model import Severity
    from recorder.doctor.run import (
        NoRoomToFix,
        diagnose,
        fix,
        fix_at_work,
        fix_lock,
        not_repaired,
    )
    from recorder.store.fsutil import LockInTheWay
    from recorder.store.unfinished import read_mark

    root = _log_dir(args)
    # --fix: one at a time, from the diagnosis to the re-check (not in a folder that is
    # not there, nor in one a restore-backup has not finished: nothing is repaired there)
    locked = args.fix and root.is_dir() and read_mark(root) is None
    other = None if args.fix else fix_at_work(root)
    if other is not None:  # its repairs in progress may show as wrong here
        say(f"{other} is repairing {root} now: what it repairs may show as wrong until it ends")
    try:
        try:
            with fix_lock(root, waiting=say) if locked else contextlib.nullcontext():
                report = diagnose(root)
                if args.fix:
                    fixed = fix(report)
                    if fixed:
                        report = diagnose(root)
                        report.fixed = fixed
        except NoRoomToFix as exc:  # a full disk: diagnosed all the same, nothing repaired
            report = diagnose(root)
            report.fixed = not_repaired(report, str(exc))
    except LockInTheWay as exc:  # at doctor.lock: what it is and how to move it, one line
        return fail(f"cannot repair {root}: {exc}")
    except OSError as exc:
        return fail(f"cannot examine {root}: {exc.strerror or exc} ({exc.filename or root})")
    code = {Severity.OK: 0, Severity.WARNING: EXIT_WARNINGS, Severity.PROBLEM: EXIT_PROBLEMS}[
        report.result
    ]
    if args.json:
        out = report.to_json()
        out["exit_code"] = code
        print_json(out, indent=True)
        return code
    # one line per repair: the findings one step repaired together share its words
    steps: dict[tuple[bool, str], list[str]] = {}
    for done in report.fixed:
        checks = steps.setdefault((done.ok, done.done), [])
        if done.finding.check not in checks:
            checks.append(done.finding.check)
    for (ok, what), checks in steps.items():
        print(f"{'fixed' if ok else 'NOT FIXED':<9} {', '.join(checks)}: {what}")
    if report.fixed:
        print()
    print(f"persist doctor: {report.log_dir} ({report.took:.1f}s)")
    for f in report.findings:
        print(f"{f.severity.label:<8} {f.area.value:<12} {f.summary}")
        if f.fix and f.severity is not Severity.OK:
            auto = (
                "  (or: persist doctor --fix)"
                if f.repair is not None and not args.fix and "doctor --fix" not in f.fix
                else ""
            )
            print(f"{'':<21} fix: {f.fix}{auto}")
    counts = {s: sum(f.severity is s for f in report.findings) for s in Severity}
    print(
        f"result: {report.result.label} ({counts[Severity.PROBLEM]} problem(s), "
        f"{counts[Severity.WARNING]} warning(s), {counts[Severity.OK]} ok)"
    )
    return code


def cmd_backup(args: argparse.Namespace) -> int:
    from recorder.backup.copy import make_backup

    dest = Path(args.dest).expanduser()
    try:
        result = make_backup(
            _log_dir(args),
            dest,
            secret_keys=args.include_secret_keys,
            verify=args.verify,
            replace_other_source=args.replace_other_source,
            progress=_bytes_bar("backing up") if sys.stderr.isatty() else None,
        )
    except OSError as exc:  # DEST full or failing: nothing replaced the previous manifest
        where = f" ({exc.filename})" if exc.filename else ""
        return fail(
            f"backup into {dest} failed: {exc.strerror or exc}{where}; the previous backup "
            "there (if any) is intact"
        )
    for rel, mode in result.exposed_keys.items():  # as `persist doctor` and the key readers say
        key = result.log_dir / rel
        say(
            f"warning: {key} is open to others (mode {mode:04o}), so its secret may have "
            "leaked: copied marked so, and restore-backup brings it back as open, refused as "
            f"here; `persist keys init --keys {shell_quote(str(key.parent))}` replaces the pair"
        )
    if args.json:
        print_json(result.to_json(), indent=True)
        return 0
    pos = result.position
    damaged = result.damaged_replaced
    replaced = (
        f", {len(damaged)} damaged object{'s' * (len(damaged) > 1)} replaced ({', '.join(damaged)})"
        if damaged
        else ""
    )
    print(
        f"backed up {result.log_dir} to {result.dest} in {result.took:.1f}s: "
        f"{result.files} files, {result.copied_bytes:,} bytes copied, "
        f"{result.reused_bytes:,} bytes reused (already there){replaced}"
    )
    print(
        "every copy read back against its SHA-256, every object reused hashed"
        if result.verified or result.damaged_manifest is not None
        else "every copy read back against its SHA-256; objects reused for unchanged files "
        "checked by size (--verify hashes them)"
    )
    if result.damaged_manifest is not None:
        print(
            f"the manifest there was damaged ({result.damaged_manifest}): replaced, "
            "every object already there hashed before it was reused"
        )
    if result.made_private:  # reused as they were before 2026-12-07
        fixed = result.made_private
        more = f" and {len(fixed) - 3} more" if fixed[3:] else ""
        opened = all(int(f.rsplit(" ", 1)[1], 8) & 0o077 for f in fixed)
        print(
            f"{len(fixed)} files and folders in DEST "
            f"{'were open to others' if opened else 'had other modes'}: made 0600/0700 "
            f"({', '.join(fixed[:3])}{more})"
        )
    if result.garbage_kept:  # removed before 2026-12-07, failing the restore
        n = result.garbage_kept
        print(
            f"{n} object{'s' * (n > 1)} the new manifest no longer names kept: a persist "
            f"restore-backup is reading this backup (the next backup removes "
            f"{'them' if n > 1 else 'it'})"
        )
    if pos is not None:
        print(f"consistent at {pos.segment} byte {pos.offset:,} (record seq {pos.seq})")
    print(f"left out (rebuildable or private): {', '.join(result.left_out)}")
    if result.links_rewritten:  # absolute or `..` into the log folder, other journal names
        print(
            "symlinks into the log folder kept as relative links (restored as links, "
            f"their bytes stored once): {'; '.join(result.links_rewritten)}"
        )
    if result.symlinks_left_out:  # leading nowhere, to the log folder itself, or round
        print(f"symlinks left out: {'; '.join(result.symlinks_left_out)}")
    if result.not_regular_left_out:  # FIFOs, sockets, devices: never read
        print(f"left out (not a regular file): {', '.join(result.not_regular_left_out)}")
    if result.vanished:  # deleted while it ran, not segments (those fail the backup)
        print(f"gone before they were copied: {', '.join(result.vanished)}")
    return 0


def cmd_restore_backup(args: argparse.Namespace) -> int:
    from recorder.backup.restore import BackupDamaged, restore_backup

    try:
        result = restore_backup(Path(args.src).expanduser(), Path(args.dest_dir).expanduser())
    except BackupDamaged as exc:
        return fail(str(exc), EXIT_DAMAGE)
    except OSError as exc:  # DEST_DIR full or failing: what was written is removed
        where = f" ({exc.filename})" if exc.filename else ""
        return fail(f"restore failed: {exc.strerror or exc}{where}; nothing was restored")
    for rel, mode in result.exposed.items():
        key = result.dest / rel
        say(
            f"warning: {key} is open to others (mode {mode:04o}), so its secret may have "
            "leaked: restored so, as the backup marks it (the recorder and broker refuse it); "
            f"`persist keys init --keys {shell_quote(str(key.parent))}` replaces the pair"
        )
    if args.json:
        print_json(result.to_json(), indent=True)
    else:
        print(
            f"restored {result.files} files ({result.bytes:,} bytes) into {result.dest}, "
            f"every file matching the manifest; {result.checkpoints} checkpoint(s) verified"
        )
        if result.links:  # relative, inside DEST_DIR: what they lead to is restored
            print(
                "symlinks made again (relative, as the backup holds them): "
                + "; ".join(result.links)
            )
        if result.links_left_out:  # made by a backup from before they were left out
            print(
                "symlinks not made (what they lead to is not in the backup): "
                + "; ".join(result.links_left_out)
            )
        for problem in result.problems:
            print(f"  damaged: {problem}")
    if result.problems:
        return fail(f"{len(result.problems)} checkpoint(s) or copies do not verify", EXIT_DAMAGE)
    return 0


def _bytes_bar(label: str) -> Callable[[int, int], None]:
    """A progress callback (bytes done, bytes in all) drawing a bar on stderr."""
    last = [0.0]

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < 0.1:
            return
        last[0] = now
        frac = min(1.0, done / total) if total else 1.0
        end = "\n" if done >= total else ""
        mib = 1 << 20
        sys.stderr.write(
            f"\r{label} [{'#' * int(frac * 30):<30}] {frac:4.0%} "
            f"{done // mib:,}/{total // mib:,} MiB{end}"
        )
        sys.stderr.flush()

    return show


def _add_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log-dir",
        "--dir",
        dest="log_dir",
        type=folder,
        default=str(default_log_dir()),
        help="log folder (default: %(default)s)",
    )


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "doctor",
        help="check journals, caches, checkpoints, the index, copies, modes, disk, service",
        description="Check the log folder; each finding: ok, warning or problem, why, and "
        f"the command that fixes it. Exit 0 all ok, {EXIT_WARNINGS} warnings, "
        f"{EXIT_PROBLEMS} problems.",
    )
    _add_dir(p)
    p.add_argument("--json", action="store_true", help="one JSON object (stable fields)")
    p.add_argument(
        "--fix",
        action="store_true",
        help="move wrong derived files (caches, search index, an unreadable status.json) to "
        "recovery/doctor/ and rebuild them, set modes to 0600/0700; never touches journal data",
    )
    p.set_defaults(func=cmd_doctor)

    b = sub.add_parser(
        "backup",
        help="a consistent, verified, incremental copy of the log folder (while it records)",
    )
    b.add_argument("dest", metavar="DEST", help="backup folder (made if missing, 0700)")
    _add_dir(b)
    b.add_argument(
        "--include-secret-keys",
        action="store_true",
        help="also copy the CURVE secret keys (keys/*.key_secret); left out by default",
    )
    b.add_argument(
        "--verify",
        action="store_true",
        help="hash every object already in DEST that is reused (reads the whole backup); "
        "a damaged one is copied again",
    )
    b.add_argument(
        "--replace-other-source",
        action="store_true",
        help="DEST holds the backup of another log folder: replace it (refused by default)",
    )
    b.add_argument("--json", action="store_true", help="what was done, as one JSON object")
    b.set_defaults(func=cmd_backup)

    r = sub.add_parser(
        "restore-backup",
        help="restore a backup into an empty folder, every file and checkpoint verified",
    )
    r.add_argument("src", metavar="SRC", help="a folder made by persist backup")
    r.add_argument("dest_dir", metavar="DEST_DIR", help="an empty or new folder")
    r.add_argument("--json", action="store_true", help="the result as one JSON object")
    r.set_defaults(func=cmd_restore_backup)


__all__ = ["EXIT_PROBLEMS", "EXIT_USAGE", "EXIT_WARNINGS", "add_parsers"]
