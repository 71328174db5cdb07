"""`persist restore`, `replay` and `export`: what was recorded, out again.

About 500 lines: the three commands share the checkpoint lookup, the damage exit and
the warnings, and `export --session` writes through the same output path as a range.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from recorder.bus.endpoints import DEFAULT_PUBLISH
from recorder.cli.common import (
    EXIT_DAMAGE,
    EXIT_USAGE,
    add_agent_roots,
    add_curve,
    add_log_dir,
    add_redact,
    add_scope,
    check_utf8,
    connect_endpoint,
    curve_keys_folder,
    existing_log_dir,
    fail,
    output_file,
    output_in_place,
    positive,
    print_json,
    progress_bar,
    say,
)
from recorder.errors import BadOption, StdoutFailed
from recorder.store.layout import Layout

if TYPE_CHECKING:
    from recorder.bus.replay import ReplayStats
    from recorder.export.writers import ExportStats, Progress
    from recorder.store.ranges import JournalRange
    from recorder.store.reader import Store


def _warn(warnings: list[str]) -> None:
    """Derived files found wrong and ignored: one warning line each on stderr."""
    for warning in warnings:
        say(f"warning: {warning}")


def _skipped_checkpoints(layout: Layout) -> list[str]:
    from recorder.store.checkpoints import list_checkpoints

    skipped: list[str] = []
    list_checkpoints(layout, skipped)
    return skipped


def cmd_restore(args: argparse.Namespace) -> int:
    if args.list or args.clean:
        if args.checkpoint is not None:
            return fail("--list and --clean take no CHECKPOINT", EXIT_USAGE)
        return _bundles(args)
    if args.older_than is not None:
        return fail("--older-than goes with --list or --clean", EXIT_USAGE)
    if args.checkpoint is None:
        return fail("persist restore needs a CHECKPOINT (or --list, --clean)", EXIT_USAGE)
    return _restore(args)


def _bundles(args: argparse.Namespace) -> int:
    """`persist restore --list` / `--clean`: the bundles in restore/, each with whether
    it stays or why it goes; `--clean` removes those that go."""
    import time

    from recorder.doctor.journal import mb
    from recorder.store import bundles
    from recorder.store.retention_config import parse_duration

    layout = Layout(existing_log_dir(args.log_dir))  # a mistyped one: said, exit 1
    older = (
        bundles.BUNDLES_KEPT_FOR
        if args.older_than is None
        else parse_duration(args.older_than, "--older-than")  # BadOption: exit 2
    )
    now = time.time()
    try:
        judged = bundles.judge(layout, older, now)
    except OSError as exc:
        return fail(f"cannot read {layout.restore} ({exc.strerror or exc})")
    sizes = {b.path: bundles.folder_bytes(b.path) for b, _ in judged}
    newest = bundles.newest_of_kind([b for b, _ in judged])
    if args.list:
        users = bundles.in_use(layout, [b for b, _ in judged])
        return _list_bundles(args, judged, sizes, newest, users, now, mb)
    doomed = [b for b, why in judged if why is not None]
    gone = {b.path for b in bundles.remove(layout, doomed)}
    kept = [b for b, _ in judged if b.path not in gone]
    kept_bytes = mb(sum(sizes[b.path] for b in kept))
    if args.json:
        removed = [{"name": b.name, "why": why} for b, why in judged if b.path in gone]
        print_json({"removed": removed, "kept": [b.name for b in kept]}, indent=True)
    else:
        for b, why in judged:
            if b.path in gone:
                print(f"removed restore bundle {b.name} ({why}, {mb(sizes[b.path])})")
        if gone:
            print(f"{_n(len(gone), 'bundle')} removed, {len(kept)} kept ({kept_bytes})")
        else:
            print(f"no restore bundle to remove ({len(kept)} kept, {kept_bytes})")
    missed = [b.name for b in doomed if b.path not in gone]
    if missed:
        return fail(f"{_n(len(missed), 'bundle')} could not be removed: {', '.join(missed)}")
    return 0


def _list_bundles(
    args: argparse.Namespace,
    judged: list[tuple[Any, str | None]],
    sizes: dict[Path, int],
    newest: set[Path],
    users: dict[Path, list[str]],
    now: float,
    mb: Callable[[float], str],
) -> int:
    """One line per bundle: kind, messages, size, when last used, and its fate (a
    bundle agents still running were handed: kept, naming them)."""
    from recorder.export.render import iso
    from recorder.store.bundles import age_words

    def fate(b: Any, why: str | None) -> str:
        if why is not None:
            return f"goes: {why} (--clean)"
        if b.path in users:
            return f"kept: in use by {', '.join(users[b.path])}"
        if b.path in newest:
            return f"kept: the newest {b.kind}"
        return f"kept: used {age_words(now - b.used)} ago"

    if args.json:
        rows = [
            {
                "name": b.name,
                "checkpoint": b.checkpoint,
                "kind": b.kind,
                "messages": b.messages,
                "bytes": sizes[b.path],
                "created": b.created,
                "used": b.used,
                "newest_of_kind": b.path in newest,
                "in_use_by": users.get(b.path, []),
                "goes": why,
            }
            for b, why in judged
        ]
        print_json(rows, indent=True)
        return 0
    total = mb(sum(sizes.values()))
    going = sum(why is not None for _, why in judged)
    print(
        f"{_n(len(judged), 'restore bundle')}, {total}"
        + (f"; {going} would go (persist restore --clean)" if going else "")
    )
    for b, why in judged:
        print(
            f"  {b.name}  {b.kind}, {_n(b.messages, 'message')}, {mb(sizes[b.path])}, "
            f"used {iso(b.used)}: {fate(b, why)}"
        )
    return 0


def _restore(args: argparse.Namespace) -> int:
    from recorder.export.restore import build_bundle, held_words
    from recorder.export.scope import BundleScope
    from recorder.export.writers import ExportError
    from recorder.store.checkpoints import resolve_checkpoint
    from recorder.store.reader import Store
    from recorder.store.segfile import SegmentGone

    store = Store(Path(args.log_dir))
    layout = Layout(Path(args.log_dir))
    skipped: list[str] = []
    try:
        with store:
            cp = resolve_checkpoint(layout, args.checkpoint, skipped)
            if args.full:
                scope = BundleScope.whole()
            elif args.since:
                since = resolve_checkpoint(layout, args.since)
                if since.seq > cp.seq:  # a bad argument, as export's reversed range
                    return fail(
                        f"--since {since.id} comes after {cp.id}: give an earlier "
                        "checkpoint (everything after it up to the one restored)",
                        EXIT_USAGE,
                    )
                scope = BundleScope(last=None, since=since)
            else:
                scope = BundleScope(last=args.last)
            bundle = build_bundle(args.log_dir, cp, store=store, scope=scope, redact=args.redact)
    except (ExportError, SegmentGone) as exc:  # a read error: no write error
        return fail(str(exc))
    except OSError as exc:  # named, with what stands in the bundle's way
        return fail(bundle_not_written(exc, layout.restore))
    finally:
        _warn(skipped + store.warnings)
    m = bundle.manifest
    integrity = m["integrity"]
    code = _damage_exit(args, bool(integrity.get("damaged", not integrity.get("ok"))))
    if args.json:
        print_json({"dir": str(bundle.dir), **m})
        return code
    print(f"restore bundle for {bundle.checkpoint_id}: {bundle.dir}")
    seqs, history, times = m["seq_range"], m["history"], m["time_range"]
    if not m["records"]:  # (`--since` the checkpoint itself, or one at the same place)
        print(f"  holds       nothing: no record in its range ({held_words(m)})")
    else:
        span = f" ({times['first_iso']} → {times['last_iso']})" if m["messages"] else ""
        print(f"  messages    {m['messages']}{span}")
        print(f"  holds       {held_words(m)} (seq {seqs['first']} to {seqs['last']})")
    hashed = _n(len(integrity["segments_verified"] or []), "segment")
    digest = (
        f"digest matches for {hashed} re-hashed"
        if integrity["verified"]
        else f"digest re-checked over {hashed}: {'; '.join(integrity['digest_problems'])}"
    )
    # PROBLEMS: the journal is damaged (exit 5); gaps, quarantined tails and refused
    # messages are losses it recorded, reported with exit 0 (the journal is whole)
    verdict = "PROBLEMS" if integrity["damaged"] else "losses recorded"
    print(f"  integrity   {'ok' if integrity['ok'] else verdict} ({digest})")
    if not history["read"]:
        cached, unchecked = history["verified_by_cache"], history["not_checked"]
        uncovered = history.get("not_covered") or []  # (a bundle kept from before 2026-12-07)
        known = (
            [f"{_n(len(cached), 'earlier segment')} verified by the digest cache"] * bool(cached)
            + [f"{_n(len(unchecked), 'earlier segment')} not checked"] * bool(unchecked)
            + [f"{_n(len(uncovered), 'earlier segment')} not covered by its digest"]
            * bool(uncovered)
        )
        print(
            f"  history     {history['records']} earlier records not read"
            f"{': ' if known else ''}{', '.join(known)}"
            + (" (--full reads and verifies them)" if cached or unchecked or not uncovered else "")
        )
    for note in integrity["caveats"]:
        print(f"  note: {note}")
    for problem in integrity["problems"]:
        print(f"  warning: {problem}")
    return code


def bundle_not_written(exc: OSError, restore: Path) -> str:
    """One line for an OSError while writing a bundle: a file where the `restore/`
    folder goes is named as such ("[Errno 17] File exists" said nothing of what to do)."""
    if restore.exists() and not restore.is_dir():
        return (
            f"cannot write the restore bundle: {restore} is a file, not the folder bundles "
            "go into: move it aside and restore again"
        )
    where = f" ({exc.filename})" if exc.filename else f" (in {restore})"
    return f"cannot write the restore bundle: {exc.strerror or exc}{where}"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _damage_exit(args: argparse.Namespace, damaged: bool) -> int:
    """EXIT_DAMAGE (with a line on stderr saying so) unless --allow-damage."""
    if not damaged:
        return 0
    if args.allow_damage:
        say("the journal is damaged in range (--allow-damage: exit 0)")
        return 0
    say(f"the journal is damaged in range; output written anyway (exit {EXIT_DAMAGE})")
    return EXIT_DAMAGE


def cmd_replay(args: argparse.Namespace) -> int:
    from recorder.bus.publisher import ConnectFailed
    from recorder.bus.replay import BrokerLost, ReplayError, ReplayOptions, replay
    from recorder.export.writers import ExportError
    from recorder.store.checkpoints import resolve_checkpoint
    from recorder.store.ranges import journal_range
    from recorder.store.reader import open_store
    from recorder.store.status import assess

    if args.speed is not None and args.speed <= 0:
        return fail("--speed must be above 0", 2)
    if args.retopic and not args.verbatim:
        return fail("--retopic goes with --verbatim (marked replays keep their topics)", 2)
    if args.retopic:
        check_utf8(args.retopic, "--retopic")  # BadOption: exit 2
    if args.verbatim and args.unmarked_prefix is not None:
        return fail("--unmarked-prefix does not apply with --verbatim (nothing is marked)", 2)
    layout = Layout(Path(args.log_dir))
    bad_checkpoints: list[str] = []
    try:
        upto = resolve_checkpoint(layout, args.checkpoint, bad_checkpoints)
        after = resolve_checkpoint(layout, args.from_checkpoint) if args.from_checkpoint else None
        store = open_store(layout.root)
        rng = journal_range(store, after, upto)
    except (ExportError, OSError) as exc:
        return fail(str(exc))
    finally:
        _warn(bad_checkpoints)
    from recorder.bus.keys import load_client

    folder = curve_keys_folder(args, [args.endpoint])
    keys = load_client(folder) if folder is not None else None  # KeyFileError: exit 1
    options = ReplayOptions(
        endpoint=args.endpoint,
        curve=keys,
        speed=None if args.as_fast_as_possible else args.speed,
        topic_prefix=args.topic_prefix,
        unmarked_prefix=args.unmarked_prefix,
        include_replays=args.include_replays,
        verbatim=args.verbatim,
        retopic=args.retopic or "",
        wait_subscribers=args.wait,
    )
    try:
        with store:
            stats = replay(store.records(rng.start, rng.stop), options)
    except ConnectFailed as exc:  # an address libzmq cannot read: the option's fault
        return fail(f"--endpoint: {exc}", 2)
    except BrokerLost as exc:
        if args.json:  # what a script reads: how far it got, and that it stopped, and why
            print_json(
                {
                    **exc.stats.to_json(),
                    "stopped": "broker_lost",
                    "error": str(exc),
                }
            )
            sys.stdout.flush()
        return fail(str(exc))
    except ReplayError as exc:
        return fail(str(exc))
    damage = _replay_damage(store, rng, stats, writer_running=assess(layout).running)
    if args.json:
        print_json({**stats.to_json(), "damage": damage})
    elif args.verbatim:
        where = f" under the topic prefix {args.retopic!r}" if args.retopic else ""
        print(
            f"replayed {stats.verbatim_sent} messages ({rng.describe()}) to {args.endpoint} "
            f"in {stats.seconds:.2f}s, verbatim (frames exactly as recorded){where}"
        )
    else:
        print(
            f"replayed {stats.sent} messages ({rng.describe()}) to {args.endpoint} "
            f"in {stats.seconds:.2f}s, marked with replay_of"
        )
        if stats.unmarked_sent:
            print(
                f"  {stats.unmarked_sent} sent unmarked under the topic prefix "
                f"{args.unmarked_prefix!r}"
            )
        skipped = [
            (stats.skipped_heartbeats, "heartbeats"),
            (stats.skipped_replays, "earlier replays (--include-replays sends them)"),
            (stats.skipped_topic, f"outside --topic-prefix {args.topic_prefix!r}"),
        ]
        for n, what in skipped:
            if n:
                print(f"  skipped {n} {what}")
    held_back = stats.skipped_single_frame + stats.skipped_unmarkable
    damaged = EXIT_DAMAGE if damage and not args.allow_damage else 0
    code = damaged or (4 if held_back else 0)  # damage first: the list in main.py's docstring
    if damage:
        sys.stdout.flush()
        allowed = " (--allow-damage: exit 0)" if args.allow_damage else f" (exit {EXIT_DAMAGE})"
        if args.allow_damage and code:
            allowed = f" (--allow-damage; exit {code}: messages were skipped, below)"
        say(f"NOT replayed, the journal is damaged in range: {'; '.join(damage)}{allowed}")
    if stats.skipped_single_frame:
        print(
            f"persist: {stats.skipped_single_frame} single-frame messages were NOT replayed: "
            "they have no topic frame to put the prefix on without altering them",
            file=sys.stderr,
        )
    if stats.skipped_unmarkable:
        named = sorted(stats.unmarkable_topics.items())
        topics = ", ".join(f"{t or '(none)'} ({n})" for t, n in named[:5])
        if len(named) > 5:
            topics += f" and {len(named) - 5} more"
        whys = sorted(stats.unmarkable_why.items(), key=lambda item: -item[1])
        why = (
            whys[0][0]
            if len(whys) == 1
            else "; ".join(f"{n} because {phrase}" for phrase, n in whys)
        )
        say(  # the topics are the recorded messages' own: escaped
            f"{stats.skipped_unmarkable} messages were NOT replayed: {why}, so they cannot "
            f"carry the replay mark without being altered (topics: {topics}). "
            f"--unmarked-prefix P sends them as they are under the topic P<topic>."
        )
    return code


def _replay_damage(
    store: Store, rng: JournalRange, stats: ReplayStats, *, writer_running: bool
) -> list[str]:
    """What a replay of `rng` could not send, one phrase each, as an export names it:
    its damaged lines, missing segments and torn tails."""
    from recorder.export.parallel import range_bytes
    from recorder.store.ranges import journal_damage, records_held

    out: list[str] = []
    if stats.bad_lines:
        lines = f"{stats.bad_lines} damaged line{'' if stats.bad_lines == 1 else 's'}"
        try:
            good_bytes = range_bytes(store, rng.start, rng.stop) - stats.bad_bytes
        except OSError:
            good_bytes = 0
        held = records_held(
            stats.bad_bytes, stats.bad_lines, good_bytes, stats.records - stats.bad_lines
        )
        out.append(lines if held is None else f"{lines} (about {held:,} records)")
    try:
        out += journal_damage(store, rng, writer_running=writer_running)
    except OSError as exc:
        out.append(f"cannot read the end of the journal ({exc})")
    return out


def _inside_the_journal(path: Path, log_dir: Path) -> str | None:
    """Why writing `path` (symlinks resolved) would overwrite the log folder's own files,
    or None: anywhere in it but `exports/` (where persist-tui writes), or a hard link to
    one of its files. `current_session.jsonl` leads to the segment being written."""
    try:
        root = log_dir.resolve()
    except OSError:
        return None
    if root in path.parents:
        exports = root / "exports"
        if exports not in path.parents:
            return f"is inside the log folder {root} (its exports/ folder is the place for it)"
        from recorder.store.unfinished import MARKER, marked

        if marked(root):  # the restore that finishes it would find a file it did not write
            return f"is inside {root}, which holds an unfinished restore ({MARKER})"
    try:
        st = path.stat()
    except OSError:
        return None
    if st.st_nlink > 1:
        for folder in (root / "segments", root / "checkpoints"):
            with contextlib.suppress(OSError):
                for entry in os.scandir(folder):
                    other = entry.stat(follow_symlinks=False)
                    if (other.st_ino, other.st_dev) == (st.st_ino, st.st_dev):
                        return f"is a hard link to {folder.name}/{entry.name} of {root}"
    return None


def _resolved_output(output: str) -> Path:
    """`output` with every symlink on its way followed, as `os.path.realpath` follows
    them, but a symlink another user made in a folder all may write to (sticky, as
    /tmp), anywhere on the way, is refused (`BadOption`): Linux's protected_symlinks
    would not follow it, and realpath reads it whatever that says (root's export then
    replaced a file of that user's choosing)."""
    todo = os.path.join(os.getcwd(), output).split("/")[1:]
    done = "/"
    hops = 0
    while todo:
        part = todo.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            done = os.path.dirname(done)
            continue
        here = os.path.join(done, part)
        try:
            link = os.lstat(here)
        except OSError:  # not there (yet): nothing on from here can be a link
            return Path(os.path.join(here, *todo))
        if not stat.S_ISLNK(link.st_mode):
            done = here
            continue
        hops += 1
        folder = os.stat(done)
        shared = folder.st_mode & stat.S_ISVTX and folder.st_mode & stat.S_IWOTH
        if (shared and link.st_uid not in (os.geteuid(), folder.st_uid)) or hops > 40:
            why = (
                "a symlink loop" if hops > 40 else f"a symlink of another user (uid {link.st_uid})"
            )
            raise BadOption(
                f"-o {output}: {here} is {why} in a folder everyone may write to: not "
                "followed; write to a path of your own"
            )
        target = os.readlink(here)
        if target.startswith("/"):
            done = "/"
        todo = target.split("/") + todo
    return Path(done)


_OUTPUT_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
"""What only a write fails with: the output (or the pieces beside it) had no room."""


@contextlib.contextmanager
def _output_named(output: str) -> Iterator[None]:
    """A write to -o FILE (or to the pieces of a parallel export, beside it) that finds
    no room, a full disk, a quota, a file size limit, says so naming FILE (it said
    "[Errno 28] No space left on device", naming nothing). On stdout both are main's
    lines (`StdoutFailed`, a broken pipe); a named pipe whose reader went away is named
    (it said "[Errno 32] Broken pipe")."""
    from recorder.export.writers import ExportError

    try:
        yield
    except BrokenPipeError:
        if output == "stdout":  # main's line, as every command's
            raise
        # -o FIFO whose reader went away: named, not main's line about stdout
        raise ExportError(
            f"cannot write {output}: its reader went away before all was written (broken pipe)"
        ) from None
    except OSError as exc:
        if exc.errno not in _OUTPUT_FULL:
            raise
        if output == "stdout":  # main says it, and drops what stdout still holds (it
            # said it twice: the bytes it kept failed again at the last flush)
            raise StdoutFailed(exc.errno, exc.strerror or str(exc)) from None
        raise ExportError(f"cannot write {output}: {exc.strerror or exc}") from None


def _write_output(
    args: argparse.Namespace, write: Callable[[IO[bytes], Progress | None], ExportStats]
) -> tuple[ExportStats, str]:
    """Run `write` into -o FILE (atomically: the old content or the new, never a mix)
    or stdout, with a progress bar when asked (default: on a terminal); returns its
    statistics and where the output went."""
    from recorder.export.leftovers import remove_stale_export_leftovers
    from recorder.export.writers import ExportError
    from recorder.store.fsutil import AtomicFile

    show = args.progress if args.progress is not None else sys.stderr.isatty()
    progress = progress_bar("exporting") if show else None
    if args.output and args.output != "-":
        try:
            path = _resolved_output(args.output)  # through a symlink, not over it
        except OSError as exc:  # a link on the way that cannot be read (EACCES)
            raise ExportError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        log_dir = getattr(args, "log_dir", None)
        problem = _inside_the_journal(path, Path(log_dir)) if log_dir else None
        if problem is not None:
            raise BadOption(f"-o {args.output} {problem}: write it elsewhere")
        try:
            special = not stat.S_ISREG(os.stat(path).st_mode)
        except FileNotFoundError:
            special = False
        except OSError as exc:
            raise ExportError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        if special and not path.is_dir():
            # /dev/null, a FIFO, a terminal: written to as it is. Renaming a file over
            # it would replace /dev/null itself (as root) with a regular file.
            try:
                device = open(path, "wb")  # noqa: SIM115 - closed below, after the export
            except OSError as exc:
                raise ExportError(f"cannot write {args.output}: {exc.strerror or exc}") from None
            with device, _output_named(args.output):
                stats = write(device, progress)
            return stats, args.output
        remove_stale_export_leftovers(path)  # of exports to it that were killed
        target: AtomicFile | None = None
        try:  # one `try` from the temp file's making: a signal anywhere leaves none
            try:  # the output's folder: missing, not writable, a file
                target = AtomicFile(path, durable=False)
            except OSError as exc:  # named, not our temp file beside it
                raise ExportError(f"cannot write {args.output}: {exc.strerror or exc}") from None
            with _output_named(args.output):
                stats = write(target.file, progress)
                with output_in_place():  # done: a signal from now on no longer undoes it
                    target.commit()
        except BaseException:  # the temp file removed (after a commit: nothing to do)
            if target is not None:
                target.abort()
            raise
        return stats, args.output
    with _output_named("stdout"):
        stats = write(sys.stdout.buffer, progress)
        sys.stdout.flush()
    return stats, "stdout"


def cmd_export(args: argparse.Namespace) -> int:
    from recorder.export.writers import ExportError, export_range
    from recorder.store.checkpoints import resolve_checkpoint
    from recorder.store.ranges import journal_damage, journal_range
    from recorder.store.reader import open_store
    from recorder.store.status import assess
    from recorder.store.trash import reader_notes

    if args.session is not None:
        return _export_session(args)
    if args.at is not None:
        return fail("--at goes with --session (a message of an agent session)", 2)
    layout = Layout(Path(args.log_dir))
    if args.checkpoint and (args.from_checkpoint or args.to_checkpoint):
        return fail("give a CHECKPOINT or --from/--to, not both", 2)
    if args.all and (args.checkpoint or args.from_checkpoint or args.to_checkpoint):
        return fail("--all is the whole journal: give it alone, or a range without it", 2)
    if not (args.checkpoint or args.from_checkpoint or args.to_checkpoint or args.all):
        return fail(
            "say what to export: CHECKPOINT, --from A [--to B], --to B, --all or --session S", 2
        )
    skipped: list[str] = []
    try:
        upto_ref = args.checkpoint or args.to_checkpoint
        upto = resolve_checkpoint(layout, upto_ref, skipped) if upto_ref else None
        skipped = skipped or ([] if upto_ref else _skipped_checkpoints(layout))
        after = resolve_checkpoint(layout, args.from_checkpoint) if args.from_checkpoint else None
        if not layout.segments.is_dir():
            raise ExportError(f"no journal in {layout.root}")
        store = open_store(layout.root)
        _warn(store.warnings)
        _warn(reader_notes(layout))  # an unreadable ledger, a prune a kill cut short
        rng = journal_range(store, after, upto)
        warned = len(store.warnings)
    except (ExportError, OSError) as exc:
        return fail(str(exc))
    finally:
        _warn(skipped)
    damage: list[str] = []

    def write(out: IO[bytes], progress: Progress | None) -> ExportStats:
        stats = export_range(store, rng, args.format, out, progress=progress, redact=args.redact)
        # read before -o FILE is put in place: after it, signals are ignored, and a read
        # that waits (a named pipe) could never be interrupted
        try:
            damage.extend(journal_damage(store, rng, writer_running=assess(layout).running))
        except OSError as exc:
            damage.append(f"cannot read the end of the journal ({exc})")
        return stats

    try:
        with store:
            stats, where = _write_output(args, write)
    except (BrokenPipeError, StdoutFailed):  # stdout: main's lines, as every command's
        raise
    except (ExportError, OSError) as exc:
        return fail(str(exc))
    finally:
        _warn(store.warnings[warned:])  # derived files found wrong on the way (render cache)
    # a JSONL copy leaves damaged lines out (the other formats mark them): not records of it
    records = stats.records - (stats.bad_lines if args.format == "jsonl" else 0)
    say(
        f"exported {stats.messages} messages ({records} records, "
        f"{rng.describe()}) as {args.format} to {where}"
    )
    if stats.bad_lines:
        from recorder.export.parallel import range_bytes

        words = stats.damaged_words(range_bytes(store, rng.start, rng.stop))
        say(f"{words} in range ({'left out' if args.format == 'jsonl' else 'marked'})")
    for sentence in damage:
        say(f"damage: {sentence}")
    return _damage_exit(args, bool(stats.bad_lines or damage))


def _export_session(args: argparse.Namespace) -> int:
    """`persist export --session S`: the session `persist fork S` would fork, read from
    the agent's file or, when the agent deleted it, from our protected copy."""
    from recorder.cli.sessions import load_rows
    from recorder.export.session import export_session, messages_up_to, which_messages
    from recorder.export.writers import ExportError
    from recorder.sources.copies import CopyError
    from recorder.sources.fork import cannot_read
    from recorder.sources.jsonl import TEXT_LIMIT, was_cut
    from recorder.sources.listing import find_session, read_row

    if args.checkpoint or args.from_checkpoint or args.to_checkpoint or args.all:
        return fail("--session exports an agent session: no CHECKPOINT, --from, --to or --all", 2)
    row = find_session(load_rows(args), args.session)  # SessionNotFound: one line, exit 1
    key = row.session.key
    try:
        transcript = read_row(Layout(Path(args.log_dir)), row)
    except (CopyError, OSError) as exc:
        return fail(f"{key} cannot be read: {exc}")
    if transcript.session.unread:  # no permission: an empty export would say it is empty
        return fail(cannot_read(transcript.session))
    if transcript.report.summary():
        say(f"warning: {key}: {transcript.report.summary()}")
    shown = messages_up_to(transcript, args.at)  # a bad --at: ForkError, one line, exit 1
    try:
        stats, where = _write_output(
            args,
            lambda out, progress: export_session(
                transcript,
                shown,
                args.format,
                out,
                from_copy=row.deleted,
                progress=progress,
                redact=args.redact,
            ),
        )
    except (BrokenPipeError, StdoutFailed):  # stdout: main's lines, as every command's
        raise
    except (ExportError, OSError) as exc:
        return fail(str(exc))
    which = which_messages(shown, len(transcript.messages))
    say(f"exported {stats.messages} messages ({key}, {which}) as {args.format} to {where}")
    cut = sum(1 for m in shown if was_cut(m.text) or was_cut(m.thinking))
    if cut:
        say(
            f"warning: {cut} message(s) exported with a text cut at {TEXT_LIMIT:,} characters "
            "(each says where and how much); the agent's own file holds them whole"
        )
    return 0


EXPORT_HELP = """\
A journal range: CHECKPOINT exports from the beginning up to it; --from A starts
after A; --to B ends with B (default: the end of the journal); --all is everything.
JSONL lines are exactly as stored.

An agent session: --session S (Claude Code, Gemini CLI or Codex; found as `persist
fork S` finds it, also when only our protected copy is left) exports its main
conversation, up to message --at N if given, through the same writers: one
journal-shaped record per message (topic = source:id, meta.sender = user, assistant,
tool or system; the text first, then tool calls and thinking). With --format jsonl
these records are written, not the agent's own lines: to keep those, copy the
session's file (its path is in `persist sessions --json`) with cp.

Secrets are [REDACTED:kind] by default in md, html and csv, kept in jsonl. CSV cells
starting with = + - @ get a leading ' (spreadsheet safety).
"""


REPLAY_HELP = """\
Republish the recorded messages of a range (after --from, up to CHECKPOINT) to the
broker with their original frames, marked as replays: `replay_of` (the original
journal seq and message id) is added to the `_persist` envelope of each JSON object
payload; the recorder records them with meta.replay_of and never sequence-checks
them. Messages whose payload is not a one-line JSON object, or whose `_persist`
member is not an envelope the recorder reads (a number, an unknown field), cannot
carry the mark without being altered: they are skipped and counted, with why
(exit code 4), unless
--unmarked-prefix P sends them unchanged under the topic P<topic>. Heartbeats and
earlier replays are not replayed.

--verbatim sends every message exactly as recorded instead (no mark, every frame
byte for byte, so signed foreign traffic stays valid), meant for another broker
(--endpoint): on the recorder's own bus the copies are recorded as new messages.
--retopic P prepends P to the topic frame only; single-frame messages cannot take
it without being altered and are skipped and counted (exit code 4), as they are
under --unmarked-prefix.

Damaged lines, missing segments and torn tails in the range cannot be sent: the rest
is, then one line on stderr names what was not (exit code 5; --allow-damage: 0).
"""


RESTORE_HELP = """\
Write the restore bundle of CHECKPOINT into <log folder>/restore/ (by default the last
1000 messages up to it, verified), or keep the one there that holds exactly that.

Bundles are derived from the journal: every restore removes those neither written nor
handed back for a week, except the newest of each kind (scope and redaction), and
those holding messages a `persist trash empty` deleted (`trash empty` removes those
itself). One holding segments removed by hand and written off (`persist prune
--forget-missing`) may be the last copy of messages lost by accident: restores keep
it, whatever its age. A bundle an agent still running was handed (its registration in
agents/ names it) stays while it runs. --list shows them, --clean removes them now,
the one of segments removed by hand too
(--older-than AGE: another bound).
"""


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    p = sub.add_parser(
        "restore",
        help="write the restore bundle of a checkpoint (--list, --clean: the bundles kept)",
        description=RESTORE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", nargs="?", help="checkpoint id, id prefix, label, or 'latest'")
    add_log_dir(p)
    p.add_argument("--json", action="store_true", help="print the manifest (or the list)")
    kept = p.add_mutually_exclusive_group()
    kept.add_argument(
        "--list",
        action="store_true",
        help="list the bundles in restore/: size, last use, whether they stay",
    )
    kept.add_argument(
        "--clean",
        action="store_true",
        help="remove the bundles unused for a week (but the newest of each kind) and "
        "those holding deleted messages or segments removed by hand (never one a running "
        "agent was handed)",
    )
    p.add_argument(
        "--older-than",
        metavar="AGE",
        help="with --list/--clean: unused for longer than AGE instead of a week (0: all "
        "but the newest of each kind)",
    )
    add_scope(p)
    add_redact(p)
    _add_allow_damage(p)
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser(
        "replay",
        help="republish a recorded range to the broker",
        description=REPLAY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", help="replay up to this checkpoint (id, prefix, label, latest)")
    p.add_argument("--from", dest="from_checkpoint", help="start after this checkpoint")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument(
        "--speed",
        type=positive,
        default=None,
        help="N times the recorded pace (silences capped at 10 s)",
    )
    pace.add_argument("--as-fast-as-possible", action="store_true", help="no pauses (the default)")
    p.add_argument("--topic-prefix", default="", help="only topics that start with this")
    p.add_argument(
        "--unmarked-prefix",
        default=None,
        help="send messages that cannot carry the mark unchanged under this "
        "topic prefix (default: skip them)",
    )
    p.add_argument(
        "--include-replays",
        action="store_true",
        help="also replay records that were replays themselves",
    )
    p.add_argument(
        "--verbatim",
        action="store_true",
        help="send every message exactly as recorded, unmarked (to another broker)",
    )
    p.add_argument(
        "--retopic",
        default=None,
        help="with --verbatim: prepend this to each message's topic frame",
    )
    p.add_argument(
        "--endpoint",
        type=connect_endpoint,
        default=DEFAULT_PUBLISH,
        help="broker's publisher endpoint",
    )
    add_log_dir(p)
    p.add_argument("--wait", type=positive, default=5.0, help="seconds to wait for subscribers")
    _add_allow_damage(p)
    p.add_argument("--json", action="store_true", help="a summary as one JSON object at the end")
    add_curve(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser(
        "export",
        help="write a journal range or an agent session as Markdown, JSONL, CSV or HTML",
        description=EXPORT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", nargs="?", help="up to this checkpoint")
    p.add_argument("--from", dest="from_checkpoint", help="start after this checkpoint")
    p.add_argument("--to", dest="to_checkpoint", help="end with this checkpoint")
    p.add_argument("--all", action="store_true", help="the whole journal")
    p.add_argument(
        "--session",
        metavar="SESSION",
        help="a Claude Code, Gemini CLI or Codex session instead of the journal: id, "
        "source:id or id prefix, as `persist fork` takes it",
    )
    p.add_argument(
        "--at",
        metavar="MESSAGE",
        help="with --session: stop at this message (number or agent uuid, as `persist fork "
        "--at`; default: the last)",
    )
    p.add_argument(
        "--format",
        choices=("md", "jsonl", "csv", "html"),
        default="md",
        help="md (default), jsonl (journal lines as stored; with --session one "
        "journal-shaped record per message), csv or html",
    )
    p.add_argument(
        "-o", "--output", type=output_file, help="file (written atomically); - or none: stdout"
    )
    p.add_argument(
        "--redact",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="replace secrets (API keys, tokens, private keys, passwords) by [REDACTED:kind] "
        "in the output; default on for md, html and csv (meant to be shared), off for jsonl "
        "(a byte-exact copy); the journal and the agent's files are never changed",
    )
    add_agent_roots(p)
    p.set_defaults(source=None)  # `persist fork`'s lookup, over every agent's sessions
    add_log_dir(p)
    prog = p.add_mutually_exclusive_group()
    prog.add_argument(
        "--progress",
        action="store_true",
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    prog.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar on stderr"
    )
    _add_allow_damage(p)
    p.set_defaults(func=cmd_export)


def _add_allow_damage(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-damage",
        action="store_true",
        help=f"exit 0 even when the journal is damaged in range (default: exit {EXIT_DAMAGE}; "
        "the damage is reported on stderr either way)",
    )
