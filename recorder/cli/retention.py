"""`persist checkpoints`, `pin`, `unpin`, `prune` and `trash`: what is kept, and for how long."""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path
from typing import Any

from recorder.cli.common import (
    EXIT_USAGE,
    add_log_dir,
    existing_log_dir,
    fail,
    print_json,
    say,
    shown,
)
from recorder.store.layout import Layout, segment_number

FORGET_WAIT = 30.0  # seconds `trash empty` waits for another writer of the search index


def _iso(ts: float | None) -> str:
    """UTC to the second, marked `Z` as `persist search` prints times: `--since`,
    `--until` and `since:` read it back as the same time in any zone."""
    return "-" if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


# -- checkpoints, pin, unpin ---------------------------------------------------------------
def cmd_checkpoints(args: argparse.Namespace) -> int:
    from recorder.store.checkpoints import journal_and_session_checkpoints
    from recorder.store.pins import PinsUnreadable, read_pins

    layout = Layout(existing_log_dir(args.log_dir))
    skipped: list[str] = []
    # the session monitor's checkpoints name a protected copy of an agent's session,
    # not a journal range: listed after the journal's, marked, never pinned or pruned
    cps, of_sessions = journal_and_session_checkpoints(layout, skipped)
    try:
        pins = read_pins(layout)
        unknown = None
    except PinsUnreadable as exc:  # the list is still worth showing, the pins are not known
        pins, unknown = {}, exc
    for line in skipped:
        say(f"warning: {line}")
    known = {cp.id for cp in cps}
    if args.json:
        print_json(
            {
                "checkpoints": [
                    {
                        "id": cp.id,
                        "label": cp.label,
                        "reason": cp.reason,
                        "created": cp.created,
                        "seq": cp.seq,
                        "segment": cp.to_json()["position"]["segment"],
                        "messages": cp.messages,
                        "pinned": pins[cp.id].pinned if cp.id in pins else None,
                    }
                    for cp in cps
                ],
                "session_checkpoints": [
                    {
                        "id": cp.id,
                        "label": cp.label,
                        "reason": cp.reason,
                        "created": cp.created,
                        "session": cp.session.key,
                        "copy_version": cp.session.copy_version,
                        "messages": cp.session.messages,
                    }
                    for cp in of_sessions
                    if cp.session is not None
                ],
                "pins_without_checkpoint": sorted(set(pins) - known),
                "pins_unreadable": None if unknown is None else str(unknown),
            },
            indent=True,
        )
        return 0 if unknown is None else fail(str(unknown))
    if not cps and not of_sessions:
        print(f"no checkpoints in {layout.root}")
    width = max((len(cp.id) for cp in cps), default=0)  # ids end with their label's slug
    for cp in cps:
        mark = "pinned" if cp.id in pins else "      "
        label = f"  {cp.label}" if cp.label else ""
        print(
            f"{mark}  {cp.id:<{width}}  seq {cp.seq:>9}  {cp.messages:>8} msgs  "
            f"{_iso(cp.created)}{label}"
        )
    width = max((len(cp.id) for cp in of_sessions), default=0)
    for cp in of_sessions:
        if cp.session is None:
            continue
        label = f"  {cp.label}" if cp.label else ""
        print(
            f"session {cp.id:<{width}}  {shown(cp.session.key)}  copy v{cp.session.copy_version}  "
            f"{cp.session.messages:>8} msgs  {_iso(cp.created)}{label}"
        )
    for cp_id in sorted(set(pins) - known):
        print(f"pinned  {cp_id}  (checkpoint no longer exists; `persist unpin` it)")
    return 0 if unknown is None else fail(str(unknown))


def _set_pin(args: argparse.Namespace, pinned: bool) -> int:
    from recorder.store.checkpoints import resolve_checkpoint
    from recorder.store.pins import read_pins, set_pin

    layout = Layout(Path(args.log_dir))
    if not pinned and args.checkpoint in read_pins(layout):
        cp_id = args.checkpoint  # a pin whose checkpoint is gone can still be removed
    else:
        cp_id = resolve_checkpoint(layout, args.checkpoint).id
    changed = set_pin(layout, cp_id, pinned)
    word = "pinned" if pinned else "unpinned"
    print(f"{word} {cp_id}" if changed else f"{cp_id} was already {word}")
    return 0


def cmd_pin(args: argparse.Namespace) -> int:
    return _set_pin(args, True)


def cmd_unpin(args: argparse.Namespace) -> int:
    return _set_pin(args, False)


# -- prune ---------------------------------------------------------------------------------
def cmd_prune(args: argparse.Namespace) -> int:
    from recorder.daemon.maintenance import prune
    from recorder.store.retention_config import Policy, load_config, parse_duration, parse_size

    if args.forget_missing:
        if args.older_than is not None or args.max_size is not None:
            return fail("--forget-missing goes alone (no --older-than or --max-size)", EXIT_USAGE)
        return _forget_missing(args)

    layout = Layout(Path(args.log_dir))
    config = load_config(layout)  # as the recorder: BadOption names the file and key
    policy = Policy(
        config.older_than
        if args.older_than is None
        else parse_duration(args.older_than, "--older-than"),
        config.max_size if args.max_size is None else parse_size(args.max_size, "--max-size"),
    )
    if not policy.active:
        return fail(
            "nothing to prune by: give --older-than AGE and/or --max-size SIZE "
            f"(or set them in {layout.retention_config.name}, or --forget-missing)",
            EXIT_USAGE,
        )
    result = prune(layout, policy, dry_run=args.dry_run)
    plan = result.plan_json()
    if args.json:
        print_json(
            {"dry_run": args.dry_run, "via": result.via, "trash": result.trash, **plan}, indent=True
        )
        return 0
    print(describe_plan(plan, args.dry_run, result.trash))
    return 0


def _forget_missing(args: argparse.Namespace) -> int:
    """`persist prune --forget-missing`: segments someone removed by hand, said so."""
    from recorder.daemon.maintenance import forget_missing
    from recorder.store import bundles

    layout = Layout(Path(args.log_dir))
    names = forget_missing(layout, dry_run=args.dry_run)
    numbers = [n for n in map(segment_number, names) if n is not None]
    holding = [b.name for b in bundles.spanning(layout, numbers)] if numbers else []
    if args.json:
        doc = {"dry_run": args.dry_run, "forgotten": names, "bundles_holding": holding}
        print_json(doc, indent=True)
    elif not names:
        print("no segment is missing from segments/: nothing to forget")
    else:
        head = "would write down" if args.dry_run else "wrote down"
        print(
            f"{head} {len(names)} missing segment(s) as removed by hand: {', '.join(names)}\n"
            "  their records are gone; checkpoints are taken again and verify without "
            "them, and restores and exports name them"
        )
        if holding:
            print(
                f"  restore bundles spanning them, which may hold the last copy of their "
                f"messages: {', '.join(holding)} (restores keep them; persist restore "
                "--clean removes them)"
            )
    return 0


def describe_plan(plan: dict[str, Any], dry_run: bool, trash: str | None) -> str:
    """The plan for people: every segment with its bytes, seq and time range."""
    segments = plan.get("segments") or []
    lines: list[str] = []
    if not segments:
        lines.append("nothing to prune" + (" (dry run)" if dry_run else ""))
    else:
        head = "would prune" if dry_run else "pruned"
        into = f" into trash/{trash}" if trash else ""
        lines.append(f"{head} {len(segments)} segments, {_mib(int(plan['bytes']))}{into}:")
        for s in segments:
            lines.append(
                f"  {s['name']}  {s['bytes']:>12,} bytes  seq {s['first_seq']}-{s['last_seq']}  "
                f"{_iso(s['first_ts'])} -> {_iso(s['last_ts'])}"
            )
        from recorder.store.retention import seq_ranges_words

        # (a recorder of before 2026-12-07 answers without `seq_ranges`)
        seqs = seq_ranges_words(plan.get("seq_ranges") or [], plan["from_seq"], plan["to_seq"])
        lines.append(f"  messages seq {seqs}, {_iso(plan['from_ts'])} -> {_iso(plan['to_ts'])}")
        cps = plan.get("checkpoints") or []
        lines.append(f"  checkpoints ({len(cps)}): " + (", ".join(cps) if cps else "none"))
        if plan.get("restated"):
            lines.append(
                "  re-stated with their whole segment list: " + ", ".join(plan["restated"])
            )
    if plan.get("held"):
        lines.append(f"  {plan['held']}")
    for kept in plan.get("kept") or []:
        lines.append(f"  kept {kept['segment']}: {kept['why']}")
    lines.append(
        f"  journal {_mib(int(plan['journal_bytes']))} -> {_mib(int(plan['journal_bytes_after']))}"
    )
    if plan.get("over_by"):
        lines.append(f"  still {_mib(int(plan['over_by']))} over --max-size (kept segments above)")
    return "\n".join(lines)


# -- trash ---------------------------------------------------------------------------------
def cmd_trash(args: argparse.Namespace) -> int:
    from recorder.daemon import maintenance
    from recorder.store.retention import EMPTYING
    from recorder.store.retention_config import DEFAULT_GRACE, load_config, parse_duration

    layout = Layout(existing_log_dir(args.log_dir))
    if args.action == "list":
        return _trash_list(layout, args.json)
    if args.action == "restore":
        if not args.id:
            return fail("trash restore needs the ID of an entry (see `persist trash list`)", 2)
        restored = maintenance.restore(layout, args.id)
        if args.json:
            print_json({"trash": restored.entry.id, "restored": restored.moved}, indent=True)
            return 0
        if restored.already_journaled:
            print(
                f"finished the restore of trash/{restored.entry.id}: its files were back and "
                "its record in the journal already"
            )
        else:
            print(maintenance.restore_event(restored)["detail"])  # what the journal says
        for cp_id in restored.kept_restated:
            say(f"warning: {cp_id} changed since it was re-stated; kept as it is now")
        return 0
    if args.id:
        return fail(f"trash empty takes no ID (got {args.id!r}); use --older-than", EXIT_USAGE)
    if args.older_than is None:  # the grace the recorder empties by (retention.toml)
        grace = load_config(layout).trash_grace  # BadOption names the file and key
        older = DEFAULT_GRACE if grace is None else grace
    else:
        older = parse_duration(args.older_than, "--older-than")
    from recorder.search.indexer import forget_pruned_words

    done = maintenance.empty_by_hand(
        layout, older, lambda: forget_pruned_words(layout.root, FORGET_WAIT)
    )
    gone = done.gone
    if done.unforgotten:
        say(
            f"warning: the search index still holds words of the emptied messages "
            f"({done.unforgotten}): `persist reindex{_flag(layout)}` rebuilds it without them"
        )
    if args.json:
        print_json(
            {
                "emptied": [e.id for e in gone],
                "bytes": sum(e.bytes for e in gone),
                "leftovers": done.leftovers,
                "kept_pinned": done.pinned,
                "bundles_removed": done.bundles,
                "bundles_removed_in_use": done.bundle_users,  # name -> agents handed it
            },
            indent=True,
        )
        return 0
    if not gone:
        print(f"nothing in the trash older than {older / 86400:g} days")
    for e in gone:
        again = ", finishing an interrupted empty" if e.state == EMPTYING else ""
        if e.id in done.already_journaled:
            again += " (its record was in the journal already)"
        print(f"emptied trash/{e.id} ({_mib(e.bytes)}){again}")
    for entry_id in done.leftovers:
        print(f"deleted what an interrupted deletion of trash/{entry_id} left")
    for line in done.bundle_lines():
        print(line)
    for entry_id, cp_ids in done.pinned.items():
        print(pinned_in_trash(entry_id, cp_ids))
    return 0


def _flag(layout: Layout) -> str:
    from recorder.store.layout import default_log_dir

    if layout.root.resolve() == default_log_dir().resolve():
        return ""
    return f" --log-dir {shlex.quote(str(layout.root))}"


def pinned_in_trash(entry_id: str, cp_ids: list[str]) -> str:
    """A trash entry holding pinned checkpoints, which no empty deletes: what to do."""
    return (
        f"kept trash/{entry_id}: it holds pinned checkpoint(s) {', '.join(cp_ids)}, never "
        f"emptied while pinned; `persist trash restore {entry_id}` puts them back, "
        f"`persist unpin` lets them go"
    )


def _trash_list(layout: Layout, as_json: bool) -> int:
    """One line per entry, of the files that are in it now; an entry a prune or an
    empty left half done says so and what finishes it."""
    from recorder.store.pruned import ledger_problem, retention_at_work
    from recorder.store.retention import DONE
    from recorder.store.trash import files_here, list_trash, unfinished

    problems: list[str] = []
    entries = list_trash(layout, problems)
    unreadable = bool(problems)  # entries there that cannot be read (warned of below)
    ledger = ledger_problem(layout)  # restore and empty refuse while it is so
    if ledger is not None:
        problems.insert(0, str(ledger))
    for p in problems:
        say(f"warning: {p}")
    at_work = retention_at_work(layout)  # a prune or an empty at it now: not interrupted
    now = time.time()
    if as_json:
        out = []
        for e in entries:
            here = files_here(e)
            out.append(
                {
                    **e.to_json(),
                    "bytes": e.bytes,
                    "interrupted": None if at_work else unfinished(layout, e) is not None,
                    "segments_here": [f["name"] for f in here if f["kind"] == "segment"],
                    "bytes_here": sum(int(f["size"]) for f in here),
                    "dated_ahead": e.dated_ahead(now),
                    "age_s": e.age(now),
                }
            )
        print_json(out, indent=True)
        return 0
    if not entries:
        print("no trash entry can be listed" if unreadable else "the trash is empty")
    for e in entries:
        plan, here = e.plan, files_here(e)
        names = {f["name"] for f in here if f["kind"] == "segment"}
        infos = [s for s in plan.get("segments") or [] if s.get("name") in names]
        firsts = [s["first_seq"] for s in infos if s.get("first_seq") is not None]
        lasts = [s["last_seq"] for s in infos if s.get("last_seq") is not None]
        total = len(plan.get("segments") or [])
        count = (
            f"{len(names)} segments" if len(names) == total else f"{len(names)} of {total} segments"
        )
        print(
            f"{e.id}  {_iso(e.created)}  {count}  {_mib(sum(int(f['size']) for f in here))}  "
            f"seq {min(firsts, default='-')}-{max(lasts, default='-')}  "
            f"{len(plan.get('checkpoints') or [])} checkpoints  by {e.by}"
        )
        if e.dated_ahead(now):
            print(
                f"  dated in the future (the clock was ahead when it was made, or is behind "
                f"now): its age is counted on the boot clock, {e.age(now) / 86400:.1f} days"
            )
        left = None if at_work else unfinished(layout, e)
        if at_work and e.state != DONE:
            print(f"  {e.state} now (another process holds retention's lock): look again")
        elif left is not None:
            print(f"  INTERRUPTED {left.what}: {left.held}; `{left.command}` {left.does}")
        elif not at_work and len(names) < total:
            print(f"  {total - len(names)} segment(s) missing: `persist doctor` says more")
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("checkpoints", help="list checkpoints, newest first, pinned ones marked")
    add_log_dir(p)
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.set_defaults(func=cmd_checkpoints)

    for name, func, what in (
        ("pin", cmd_pin, "keep a checkpoint and the journal range it needs through any pruning"),
        ("unpin", cmd_unpin, "let retention take a checkpoint again"),
    ):
        p = sub.add_parser(name, help=what)
        p.add_argument("checkpoint", help="id, unique id prefix, exact label, or latest")
        add_log_dir(p)
        p.set_defaults(func=func)

    p = sub.add_parser(
        "prune", help="move old closed segments and their checkpoints to the trash (retention)"
    )
    p.add_argument(
        "--older-than",
        metavar="AGE",
        help="segments whose last record is older (90d; default: retention.toml's older_than)",
    )
    p.add_argument(
        "--max-size",
        metavar="SIZE",
        help="oldest segments go until the journal fits (default: retention.toml's max_size)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print exactly what would go; change nothing"
    )
    p.add_argument(
        "--forget-missing",
        action="store_true",
        help="write down segments deleted or moved out of segments/ by hand as removed on "
        "purpose (checkpoints are refused while one is missing unexplained)",
    )
    p.add_argument("--json", action="store_true", help="the plan as one JSON object")
    add_log_dir(p)
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("trash", help="what pruning moved aside: list, restore ID, empty")
    p.add_argument("action", choices=("list", "restore", "empty"), help="what to do")
    p.add_argument("id", nargs="?", help="for restore: the trash entry (id or unique prefix)")
    p.add_argument(
        "--older-than",
        metavar="AGE",
        help="for empty: entries older than AGE (default: retention.toml's trash_grace, "
        "else 14d; 0 = all)",
    )
    p.add_argument("--json", action="store_true", help="JSON instead of text")
    add_log_dir(p)
    p.set_defaults(func=cmd_trash, late_positional="id")
