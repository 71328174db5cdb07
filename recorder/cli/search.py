"""`persist search`, `persist reindex` and `persist stats`: the search index from the shell."""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import math
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from recorder.cli.common import (
    EXIT_USAGE,
    add_agent_roots,
    add_log_dir,
    fail,
    positive_int,
    print_json,
    say,
)
from recorder.errors import PersistError, StdoutFailed
from recorder.search.syntax import QUERY_SYNTAX
from recorder.store.layout import Layout, sessions_searchable_without_journal
from recorder.store.shell import shell_path

if TYPE_CHECKING:
    from recorder.daemon.priority import Deferral
    from recorder.search.engine import SearchEngine
    from recorder.search.stats import Stats
    from recorder.sources.discover import Roots


def _bytes_bar(label: str) -> Callable[[int, int], None] | None:
    """A progress bar on stderr (journal bytes indexed) when stderr is a terminal."""
    if not sys.stderr.isatty():
        return None
    state = {"last": 0.0, "drawn": False}

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - state["last"] < 0.1:
            return
        if total == 0 or (done >= total and not state["drawn"]):
            return
        state["last"], state["drawn"] = now, True
        frac = done / total
        bar = "#" * int(frac * 30)
        end = "\n" if done >= total else ""
        sys.stderr.write(
            f"\r{label} [{bar:<30}] {frac:4.0%} {done / 2**20:,.0f}/{total / 2**20:,.0f} MiB{end}"
        )
        sys.stderr.flush()

    return show


INDEX_WAIT = 60.0  # seconds a search or `stats` waits for another process's index update


def _say_waiting(limit: float | None) -> Callable[[], None]:
    """What a command says, at once, when another process holds the search index's
    writers' lock and the index lacks part of the journal (`Indexer.catch_up(waiting=)`):
    before 2026-12-07 it waited without a word, up to a minute."""
    upto = "" if limit is None else f" (up to {limit:.0f} s)"

    def waiting() -> None:
        say(f"another process is updating the search index: waiting for it{upto}...")

    return waiting


def _roots(args: argparse.Namespace) -> Roots:
    """The agents' session folders, as `persist sessions` finds them."""
    from recorder.cli.sessions import roots_from

    return roots_from(args)


def _index_failures(
    cmd: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """A search index that cannot be opened or written (a full disk, something else
    in its place) is one line naming it, not a traceback."""

    @functools.wraps(cmd)
    def run(args: argparse.Namespace) -> int:
        from recorder.search.index import disk_full, transient

        try:
            return cmd(args)
        except (BrokenPipeError, StdoutFailed):
            raise  # the reader went away, or stdout is full: main says so
        except (OSError, sqlite3.Error) as exc:
            where = Layout(Path(args.log_dir)).search
            problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            name = f" ({exc.filename})" if isinstance(exc, OSError) and exc.filename else ""
            full = (
                "full" in problem.lower()
                or getattr(exc, "errno", None) == errno.ENOSPC
                or disk_full(exc, where)  # "disk I/O error" where there is no room
            )
            read_only = "readonly" in problem.lower() or getattr(exc, "errno", None) == errno.EROFS
            if full:
                fix = "free some space"
            elif transient(exc):  # a lock another process held past our busy timeout
                fix = "another process holds it locked: try again once that process is done"
            elif read_only:  # a read-only mount or folder: nothing to move aside there
                fix = "the index is kept up to date in the log folder, which must be writable"
            else:
                fix = (
                    f"it is derived from the journal: persist doctor --fix --log-dir "
                    f"{shell_path(args.log_dir)} moves it aside and builds it again"
                )
            return fail(f"cannot use the search index in {where}: {problem}{name}; {fix}")

    return run


def _utc(ts: float | None) -> str:
    """A time as this command prints it: UTC to the second, marked `Z` (since:/until:
    read local time unless they end in `Z` too)."""
    from recorder.export.render import iso

    text = iso(ts)[:19]
    return f"{text}Z" if text else "-"


def _no_journal(log_dir: str) -> bool:
    return not (Path(log_dir) / "segments").is_dir()


@_index_failures
def cmd_search(args: argparse.Namespace) -> int:
    from recorder.export.render import clean, fit_cells
    from recorder.search.engine import SearchEngine
    from recorder.search.query import QueryError, parse_query

    text = " ".join(args.query)
    try:
        query = parse_query(text)
    except QueryError as exc:
        return fail(f"bad query: {exc}", EXIT_USAGE)
    if query.empty:
        return fail("empty query: give words, a phrase or a field (see persist search --help)", 2)
    if _no_journal(args.log_dir):
        if not sessions_searchable_without_journal(Path(args.log_dir)):
            return fail(f"no journal in {args.log_dir} (a folder that does not exist)")
        say(f"no journal in {args.log_dir}: searching the agents' sessions only")
    fuzzy = None if args.fuzzy is None else args.fuzzy
    with SearchEngine(args.log_dir, _roots(args)) as engine:
        done = engine.catch_up(
            progress=_bytes_bar("indexing"), wait=INDEX_WAIT, waiting=_say_waiting(INDEX_WAIT)
        )
        if done.busy and done.behind:  # (level: nothing it could add that we need)
            still = f" still after {done.waited:.0f} s" if done.waited >= 1 else ""
            say(
                f"another process is updating the search index{still}; "
                "searching what it holds so far"
            )
        for problem in done.problems:
            say(f"session not indexed: {problem}")
        result = engine.search(
            query,
            limit=args.limit,
            fuzzy=fuzzy,
            all_kinds=args.all_kinds,
            count=args.count,
            catch_up=False,
        )
    result.catch_up = done
    if result.left_out:  # what they hold is not found: not a silent gap in the hits
        say(
            f"warning: segment {', '.join(map(str, result.left_out))} left out of the index: "
            "it cannot be read, so its messages are not searched (persist doctor says why)"
        )
    if args.json:
        print_json(result.as_json())
        return 0
    color = sys.stdout.isatty()
    for hit in result.hits:
        snippet = clean(hit.snippet, newlines=False)
        if color and len(snippet) == len(hit.snippet):
            out = []
            pos = 0
            for s in hit.spans:
                style = "\x1b[4;33m" if s.fuzzy else "\x1b[1;33m"
                out += [snippet[pos : s.start], style, snippet[s.start : s.end], "\x1b[0m"]
                pos = s.end
            out.append(snippet[pos:])
            snippet = "".join(out)
        mark = "~" if hit.fuzzy else " "
        who = clean(hit.sender or hit.kind, newlines=False)
        print(
            f"{mark}{hit.seq if hit.seq is not None else '-':>9}  {_utc(hit.ts)}  "
            f"{fit_cells(who, 12)} {fit_cells(clean(hit.topic, newlines=False), 18)} {snippet}"
        )
        if hit.origin is not None:
            gone = "  (deleted by the agent: from our protected copy)" if hit.deleted else ""
            origin = clean(hit.origin, newlines=False)  # the agent's session id is in it
            print(f"{'':12}{hit.source} session message {origin}{gone}")
        if args.checkpoints and hit.checkpoint:
            print(f"{'':12}checkpoint before: {hit.checkpoint}")
    total = f"{result.total:,}" + ("" if result.total_exact else "+")
    fuzzy_note = ""
    if result.fuzzy_terms:
        fuzzy_note = " · fuzzy (~): " + ", ".join(
            f"{k} → {' '.join(v[:4])}" for k, v in result.fuzzy_terms.items()
        )
    took = f"{result.took_ms:.1f} ms"
    if done.waited:  # the query's time alone would hide where the rest went
        spent = f"{done.waited:.1f} s" if done.waited >= 1 else f"{done.waited * 1000:.0f} ms"
        took += f", after {spent} waiting for another process's index update"
    if not result.hits:
        say(f"no matches for {text!r} ({took}){fuzzy_note}")
    else:
        noun = "match" if result.total == 1 and result.total_exact else "matches"
        say(f"{total} exact {noun}, {len(result.hits)} shown ({took}){fuzzy_note}")
    return 0


FOLLOW_POLL = 1.0  # seconds between catch-ups when nothing new arrived
# ... doubling while nothing new arrives, up to this: an idle recorder's indexer wakes
# every 8 s (a search catches up by itself first, so none waits for it)
FOLLOW_IDLE_POLL = 8.0
FOLLOW_SLICE = 2.0  # seconds of indexing before the lock is let go (searches get a turn)
# A look at the machine's other work further apart than this says nothing of now: after
# a rest the indexer looks twice, BUSY_POLL apart, before it starts (`OtherWork`); one
# look would average the seconds of quiet it slept through with a flood just begun.
FRESH_LOOK = 1.0


def _follow(log_dir: str, parent: int | None) -> int:
    """Catch up, then keep up, until the parent (the recorder) is gone or SIGTERM."""
    from recorder.daemon.priority import (
        Deferral,
        background_priority,
        lower_process_priority,
        other_work_gate,
    )
    from recorder.daemon.signals import SignalRelay
    from recorder.search.engine import SearchEngine

    background_priority()  # $PERSIST_BACKGROUND_PRIORITY: a bad one refused, as record does
    lower_process_priority()
    stop = threading.Event()
    # set by a thread of its own: a handler setting it could land inside `stop.wait`'s lock
    with SignalRelay((signal.SIGTERM,), lambda _: stop.set()), SearchEngine(log_dir) as engine:
        follow_journal(
            engine,
            _RenderWarming(Path(log_dir)),
            stop,
            Deferral(other_work_gate(window=FRESH_LOOK)),
            parent,
        )
    return 0


def follow_journal(
    engine: SearchEngine,
    renders: _RenderWarming,
    stop: threading.Event,
    deferral: Deferral,
    parent: int | None = None,
) -> None:
    """The indexer's loop: index what is new, warm the render cache, rest, again.

    Before each round, and after each MiB of lines inside it (`catch_up(pause=...)`), it
    waits while `deferral` says so: at idle priority, while other processes leave no
    core idle (`priority.other_work_gate`, MAX_DEFER s at most).
    The scheduler gives an idle-priority process every moment a core is free, and a
    flood's pipeline (publisher, broker, recorder) leaves many such moments: the
    indexer filled them with half a core of 2 and slowed the recorder it indexes for.
    """
    from recorder.daemon.priority import BUSY_POLL

    pause = FOLLOW_POLL
    while not stop.is_set():
        if parent is not None and os.getppid() != parent:
            break
        if deferral.should_wait():
            stop.wait(BUSY_POLL)
            continue
        done = engine.catch_up(budget=FOLLOW_SLICE, wait=FOLLOW_POLL, pause=deferral.should_wait)
        level = not (done.behind or done.sessions_pending)
        if level:
            deferral.done()
        if level and renders.step(lambda: stop.is_set() or deferral.should_wait()):
            pause = FOLLOW_POLL
            continue  # more may be missing: look again at once (after new records)
        pause = idle_pause(pause, quiet=level and not done.added)
        if level or done.busy:
            stop.wait(pause)


def idle_pause(pause: float, *, quiet: bool) -> float:
    """The next wait between catch-ups: back to FOLLOW_POLL when something was done,
    twice the last (at most FOLLOW_IDLE_POLL) when nothing was."""
    return min(pause * 2, FOLLOW_IDLE_POLL) if quiet else FOLLOW_POLL


class _RenderWarming:
    """The render cache kept warm between catch-ups (`export.warm_renders`). A failure
    is one line in the indexer's log, and warming rests for a while; indexing goes on."""

    REST = 300.0  # seconds without warming after a failure

    def __init__(self, root: Path) -> None:
        from recorder.export.warm_renders import RenderWarmer

        self.warmer = RenderWarmer(root)
        self.resting_until = 0.0

    def step(self, stop: Callable[[], bool]) -> bool:
        """Whether it rendered something (so more may be missing); `stop()` ends it
        early."""
        if time.monotonic() < self.resting_until:
            return False
        from recorder.export.warm_renders import WarmingFailed

        try:
            return self.warmer.step(FOLLOW_SLICE, stop) > 0
        except Exception as exc:  # a cache is only an optimisation: say it, go on
            self.resting_until = time.monotonic() + self.REST
            if isinstance(exc, OSError) and exc.strerror:
                why = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
            elif isinstance(exc, WarmingFailed | PersistError):
                why = str(exc)
            else:  # a bug: its type helps
                why = f"{type(exc).__name__}: {exc}"
            say(f"render cache: could not render closed segments ({why})")
            return False


def _workers(value: str) -> int:
    from recorder.search.shards import MAX_SHARDS

    n = positive_int(value)
    if n > MAX_SHARDS:
        raise argparse.ArgumentTypeError(f"at most {MAX_SHARDS}, got {n}")
    return n


@_index_failures
def cmd_reindex(args: argparse.Namespace) -> int:
    from recorder.search.engine import SearchEngine
    from recorder.store.layout import list_segments
    from recorder.store.segfile import segment_size

    if args.follow:
        return _follow(args.log_dir, args.parent)
    if _no_journal(args.log_dir):
        return fail(f"no journal in {args.log_dir}")
    _clear_the_way(Layout(Path(args.log_dir)))
    t = time.perf_counter()
    with SearchEngine(args.log_dir, _roots(args)) as engine:
        engine.indexer.workers = args.workers
        done = engine.catch_up(
            rebuild=not args.catch_up,
            progress=_bytes_bar("indexing"),
            pages=args.catch_up,
            waiting=_say_waiting(None),
        )
        seconds = time.perf_counter() - t
        size = engine.index.size_bytes()
        docs = engine.index.indexed_rows()
        shard_problem = engine.indexer.shard_problem
        unread = engine.left_out()
    if done.busy:  # another process's SQLite lock (the sqlite3 shell, a backup tool)
        where = Layout(Path(args.log_dir)).search_index
        return fail(
            f"the search index {where} is locked by another process ({done.added:,} "
            "records indexed before it): run this again once that process is done"
        )
    journal = 0  # uncompressed bytes, whatever form each segment has
    for path in list_segments(Layout(Path(args.log_dir))):
        with contextlib.suppress(OSError, ValueError):
            journal += segment_size(path)
    ratio = size / journal if journal else 0.0
    what = "caught up" if args.catch_up and not done.rebuilt else "rebuilt"
    print(
        f"search index {what}: {done.added:,} records in {seconds:.1f} s "
        f"({done.added / seconds if seconds else 0:,.0f}/s); {docs:,} records indexed, "
        f"{size / 2**20:,.1f} MiB ({ratio:.2f}x the journal)"
    )
    for problem in done.problems:
        say(f"session not indexed: {problem}")
    if shard_problem:
        say(f"part of the journal was indexed by one process: a worker failed ({shard_problem})")
    if unread:
        say(
            f"segment {', '.join(map(str, unread))} left out: it cannot be read (persist "
            "doctor says why); indexed once it can be"
        )
    if done.rebuilt and args.catch_up:
        say(f"rebuilt because {done.rebuilt}")
    return 0


def _clear_the_way(layout: Layout) -> None:
    """What stands where the index keeps a file (a folder at `search/index.sqlite3` or
    `search/index.lock`, a file for `search/`), moved into `recovery/doctor/<time>/`,
    each in one line: asked to rebuild the index, reindex rebuilds it (a search refuses
    it, `IndexInTheWay`). Before 2026-12-07 reindex failed on it, naming another path."""
    from recorder.search.in_the_way import move_aside

    aside = layout.recovery / "doctor" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for thing, target in move_aside(layout, aside):
        say(f"{thing.sentence()}: moved aside to {target}")


@_index_failures
def cmd_stats(args: argparse.Namespace) -> int:
    from recorder.search.engine import SearchEngine
    from recorder.search.query import QueryError, time_window
    from recorder.search.stats import collect_stats

    now = time.time()
    for option, value in (("--since", args.since), ("--until", args.until)):
        if value is not None and not value.strip():  # not "no bound": a value lost
            return fail(f"{option} is empty: give a time (2024-05-14, 10:30 or 2h)", EXIT_USAGE)
    try:
        bounds = [("since", args.since)] if args.since else []
        since, until = time_window(bounds + ([("until", args.until)] if args.until else []), now)
    except QueryError as exc:
        return fail(str(exc), EXIT_USAGE)
    if since is not None and until is not None and since >= until:
        return fail(f"--since {args.since} is not before --until {args.until}", EXIT_USAGE)
    if _no_journal(args.log_dir):
        return fail(f"no journal in {args.log_dir}")
    with SearchEngine(args.log_dir) as engine:
        engine.catch_up(
            progress=_bytes_bar("indexing"), wait=INDEX_WAIT, waiting=_say_waiting(INDEX_WAIT)
        )
        # --since alone ends at now: records stamped later are named, not counted
        ends_now = since is not None and until is None and since < now
        stats = collect_stats(
            engine.index,
            since=since,
            until=until,
            all_kinds=args.all_kinds,
            now=now if ends_now else None,
        )
    if args.json:
        print_json(stats.as_json())
        return 0
    what = "records" if args.all_kinds else "messages"
    if not stats.records:
        when = f" since {args.since}" if args.since else ""
        print(f"no {what}{when}{f' until {args.until}' if args.until else ''}")
    else:
        _print_stats(stats, what, args.top)
    if stats.after_now and stats.after_now_last is not None:  # last: read after the counts
        last = stats.after_now_last
        sys.stdout.flush()
        say(
            f"{stats.after_now:,} {what} stamped after now ({_utc(stats.after_now_first)} → "
            f"{_utc(last)}) not counted: the clock was set back since they were written, or "
            f"the journal comes from a machine whose clock ran ahead; "
            f"--until {_utc(math.floor(last) + 1)} counts them"
        )
    return 0


def _print_stats(stats: Stats, what: str, top: int) -> None:
    from recorder.export.render import clean

    print(f"{stats.records:,} {what}, {_utc(stats.first_ts)} → {_utc(stats.last_ts)}")
    for key, rows in stats.by.items():
        print(f"\nby {key}:")
        shown = rows if len(rows) == top + 1 else rows[:top]  # not "(1 more)"
        for value, n in shown:
            print(f"  {n:>10,}  {clean(value, newlines=False)}")
        if len(rows) > len(shown):
            rest = sum(n for _v, n in rows[top:])
            print(f"  {rest:>10,}  ({len(rows) - top} more)")


SEARCH_HELP = (
    "query language:\n"
    + "\n".join(f"  {k:<12} {v}" for k, v in QUERY_SYNTAX)
    + """

Exact matches come first: ranked by relevance when the query matches at most 200
records, else the newest first; then typo-tolerant ones marked ~ (by default only
when exact matches are few). A bad query is one line on stderr, exit 2."""
)


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    p = sub.add_parser(
        "search",
        help="search the journal (through its index, caught up first)",
        description=SEARCH_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,  # no -h: `-has:secret` is an exclusion, not -h with "as:secret"
    )
    p.add_argument("--help", action="help", help="show this help message and exit")
    p.add_argument("query", nargs="*", help="the query (quote it for the shell)")
    add_log_dir(p)
    p.add_argument("--json", action="store_true", help="one JSON object: took_ms, total, hits")
    p.add_argument("--limit", type=positive_int, default=20, help="hits to show (default 20)")
    fz = p.add_mutually_exclusive_group()
    fz.add_argument(
        "--fuzzy", dest="fuzzy", action="store_true", default=None, help="always add typo matches"
    )
    fz.add_argument("--no-fuzzy", dest="fuzzy", action="store_false", help="exact matches only")
    p.add_argument(
        "--all-kinds", action="store_true", help="also heartbeats, events, gaps and other records"
    )
    p.add_argument("--count", action="store_true", help="count every exact match (slower)")
    p.add_argument(
        "--checkpoints", action="store_true", help="show each hit's nearest checkpoint before it"
    )
    add_agent_roots(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("reindex", help="rebuild the search index from the journal")
    add_log_dir(p)
    p.add_argument(
        "--catch-up", action="store_true", help="only index what is new (rebuild if damaged)"
    )
    p.add_argument(
        "--follow",
        action="store_true",
        help="keep indexing what arrives, at idle priority (what persist record runs)",
    )
    p.add_argument(
        "--workers",
        type=_workers,
        help="processes a full rebuild uses, 1 to 4 (default: one per core, up to 4, "
        "for a journal of 64 MiB or more; else 1)",
    )
    p.add_argument("--parent", type=positive_int, help=argparse.SUPPRESS)
    add_agent_roots(p)
    p.set_defaults(func=cmd_reindex)

    p = sub.add_parser("stats", help="counts per sender, topic, chain type and ACE tier")
    add_log_dir(p)
    p.add_argument("--since", help="from WHEN (2024-05-14, 10:30, 2h, 3d)")
    p.add_argument("--until", help="up to WHEN")
    p.add_argument("--all-kinds", action="store_true", help="count every record, not messages")
    p.add_argument("--top", type=positive_int, default=10, help="rows per group (default 10)")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_stats)
