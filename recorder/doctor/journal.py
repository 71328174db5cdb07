"""Doctor checks of the journal and what hangs off it: segments (lines, tails, holes),
quarantined tails, checkpoints (every digest, every base chain) and the caches in
`metadata_index/` (line-index and digest caches against their segments). Read only."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from recorder.doctor.model import Area, Finding, Repair, RepairKind, Severity
from recorder.doctor.scan import SegmentScan, scan_segment
from recorder.store.checkpoints import (
    Checkpoint,
    DigestCache,
    list_checkpoints,
    verify_checkpoint,
)
from recorder.store.compact import compactor_at_work, leftovers
from recorder.store.fsutil import not_regular, read_regular
from recorder.store.layout import (
    Layout,
    find_segment,
    list_segments,
    segment_name,
    segment_number,
)
from recorder.store.linecheck import CHECK_VERSION, cached_check, identity_of
from recorder.store.marks import (
    BOOKKEEPING,
    MARKS_VERSION,
    Marks,
    cached_marks,
    marks_identity,
    scan_lines,
)
from recorder.store.pins import PinsUnreadable
from recorder.store.pruned import (
    PrunedUnreadable,
    ledger_problem,
    pruned_by_number,
    retention_at_work,
    unexplained_holes,
)
from recorder.store.ranges import records_held
from recorder.store.reader import VERIFIED_CACHES, SegmentIndex
from recorder.store.recovery import RecoveryState
from recorder.store.retention import EMPTYING
from recorder.store.segfile import SegmentDamaged
from recorder.store.shell import shell_quote
from recorder.store.trash import (
    TrashError,
    article,
    discarded,
    list_trash,
    pinned_entries,
    rebuild_ledger,
    restore_plan,
    unfinished,
)

_MAX_NAMED = 5  # findings of one kind named one by one; the rest are counted
_CACHE_NAME = re.compile(
    r"\A(seg-\d{6,})\..*\.(idx|sha256|check|marks)\Z|\A(seg-\d{6,})\.(idx|sha256|check|marks)\Z"
)


def _quoted(path: Path) -> str:
    """`path` as one word of a command pasted into a shell."""
    return shell_quote(str(path))


def mb(nbytes: float) -> str:
    if nbytes < 1 << 20:
        return f"{nbytes / 1024:.1f} KB"
    if nbytes < 1 << 30:
        return f"{nbytes / (1 << 20):.1f} MB"
    return f"{nbytes / (1 << 30):.2f} GB"


@dataclass
class JournalScan:
    """Every segment read once, plus the checkpoints whose digests it took."""

    scans: list[SegmentScan]
    checkpoints: list[Checkpoint]
    skipped: list[str]  # checkpoint files that are not checkpoints
    segments_folder: bool = True  # False: a file is where `segments/` should be

    def digests(self) -> dict[tuple[str, int], str]:
        """By (segment name as checkpoints give it, size)."""
        return {(s.name, n): d for s in self.scans for n, d in s.digests.items()}


NOT_A_FOLDER = (
    "checkpoints/ is not a folder (a file is in its place): no checkpoint can be read or taken"
)


def scan_journal(layout: Layout) -> JournalScan:
    skipped: list[str] = []
    try:
        checkpoints = list_checkpoints(layout, skipped)
    except NotADirectoryError:
        checkpoints, skipped = [], [NOT_A_FOLDER]
    sizes: dict[str, set[int]] = {}
    for cp in checkpoints:
        for entry in cp.segments:
            sizes.setdefault(str(entry.get("name")), set()).add(_int(entry.get("size")))
    try:
        paths = list_segments(layout)
    except NotADirectoryError:
        return JournalScan([], checkpoints, skipped, segments_folder=False)
    scans = [
        _scan_by_number(layout, path, k < len(paths) - 1, sizes.get(_plain_name(path), set()))
        for k, path in enumerate(paths)
    ]
    return JournalScan(scans, checkpoints, skipped)


def _scan_by_number(layout: Layout, path: Path, closed: bool, sizes: set[int]) -> SegmentScan:
    """`scan_segment` of a segment whose file may be replaced by its other form while
    doctor reads (`persist compact` and the recorder compress closed segments): a file
    gone is looked up again by number, as `persist backup` does, instead of reported
    unreadable. One gone in every form stays unreadable (it vanished as doctor read)."""
    name = _plain_name(path)
    for _attempt in range(5):
        scan = scan_segment(path, closed, sizes)
        if scan.error is None or path.exists():
            return scan
        again = find_segment(layout, name)
        if again is None:
            return scan
        path = again
    return scan


def _lost_words(scan: SegmentScan) -> str:
    """`, 262,144 bytes: about 190 records`: a damaged compressed frame reads as one
    damaged line of NULs that held as many records as its bytes do at the segment's
    average line size."""
    good_bytes = scan.size - scan.bad_bytes - scan.tail
    estimate = records_held(scan.bad_bytes, scan.bad_lines, good_bytes, scan.lines - scan.bad_lines)
    if estimate is None:
        return ""
    return f", {scan.bad_bytes:,} bytes: about {estimate:,} records at its average line size"


def _plain_name(path: Path) -> str:
    return segment_name(segment_number(path.name) or 0)


def _int(value: object) -> int:
    return value if type(value) is int else -1


def journal_findings(
    layout: Layout, journal: JournalScan, writer_running: bool, start_command: str
) -> list[Finding]:
    out: list[Finding] = []
    scans = journal.scans
    if not journal.segments_folder:
        return [
            Finding(
                Area.JOURNAL,
                "journal.folder",
                Severity.PROBLEM,
                "segments/ is not a folder (a file is in its place): the journal cannot be "
                "read, and a recorder cannot write it",
                f"mv {_quoted(layout.segments)} {_quoted(layout.recovery)}/segments.file && "
                f"mkdir -m 700 {_quoted(layout.segments)}",
            )
        ]
    if not scans:
        return [Finding(Area.JOURNAL, "journal.segments", Severity.OK, "no journal here yet")]
    left = leftovers(layout)
    if left and not compactor_at_work(layout):
        names = ", ".join(f"{name} ({why})" for name, why in left[:_MAX_NAMED])
        more = f" and {len(left) - _MAX_NAMED} more" if len(left) > _MAX_NAMED else ""
        out.append(
            Finding(
                Area.JOURNAL,
                "journal.compaction-leftover",
                Severity.WARNING,
                f"an interrupted compaction left {names}{more} in segments/: the records "
                "are in the segments kept, this only takes room",
                f"persist compact --log-dir {shlex.quote(str(layout.root))}",
            )
        )
    numbers = [segment_number(s.path.name) or 0 for s in scans]
    # the journal's first segment is number 1: a hole before the first one there is
    # missing too (the oldest segment, deleted by hand to free room)
    absent = sorted(set(range(1, numbers[-1] + 1)) - set(numbers))
    pruned = pruned_by_number(layout)  # moved to the trash by retention: not lost
    missing = unexplained_holes(layout, set(numbers), numbers[-1] + 1)
    root = shlex.quote(str(layout.root))
    ledger = ledger_problem(layout)
    forget = f"persist prune --forget-missing --log-dir {root}"
    if ledger is not None:
        finding = _ledger_finding(layout, ledger)
        forget = finding.fix or forget
        out.append(finding)
    if len(absent) > len(missing):
        gone = [n for n in absent if n in pruned]
        out.append(
            Finding(
                Area.JOURNAL,
                "journal.pruned",
                Severity.OK,
                f"{len(gone)} segment(s) before the last are gone on purpose "
                f"({segment_name(gone[0])}: {pruned[gone[0]].describe()})",
            )
        )
    for number in missing[:_MAX_NAMED]:
        out.append(
            Finding(
                Area.JOURNAL,
                "journal.missing-segment",
                Severity.PROBLEM,
                f"{segment_name(number)} is missing from segments/ and retention did not "
                "prune it: its records are lost, and no checkpoint is taken while it is "
                "unexplained (put it back or restore the folder from a backup: persist "
                "restore-backup; if it was removed on purpose, the command below says so)"
                if ledger is None
                else f"{segment_name(number)} is missing from segments/ and no trash entry "
                "holds it: pruned and emptied, removed by hand or lost, the unreadable "
                f"{layout.pruned.name} would have said",
                forget,
            )
        )
    if len(missing) > _MAX_NAMED:
        out.append(_more(Area.JOURNAL, "journal.missing-segment", len(missing) - _MAX_NAMED))
    for scan in scans:
        name = f"segments/{scan.path.name}"
        if scan.error is not None and scan.not_a_file:
            out.append(
                Finding(
                    Area.JOURNAL,
                    "journal.unreadable",
                    Severity.PROBLEM,
                    f"{name} is {scan.error}: no record of that segment can be read while it "
                    "stands there (it is not missing: `persist prune --forget-missing` leaves "
                    "it); move it out of segments/ (the command below), then put the segment "
                    "back from a backup (persist restore-backup) or, if it is lost, doctor "
                    "names the command that writes it down as such",
                    f"mv {shlex.quote(str(scan.path))} {shlex.quote(str(layout.recovery))}/",
                )
            )
            continue
        if scan.error is not None:
            out.append(
                Finding(
                    Area.JOURNAL,
                    "journal.unreadable",
                    Severity.PROBLEM,
                    f"{name} cannot be read ({scan.error})",
                    f"ls -l {_quoted(layout.segments / scan.path.name)}",
                )
            )
            continue
        repaired_at_start = not scan.closed and (scan.tail or scan.trailing_bad)
        inner_bad = scan.bad_lines - (scan.trailing_bad if not scan.closed else 0)
        if inner_bad:
            out.append(
                Finding(
                    Area.JOURNAL,
                    "journal.bad-lines",
                    Severity.PROBLEM,
                    f"{name} holds {inner_bad} damaged line(s){_lost_words(scan)} (the first "
                    f"at byte {scan.first_bad}); every other record reads, and journal data "
                    "is never rewritten: a backup (persist restore-backup) has the lines as "
                    "written",
                )
            )
        if scan.damaged:
            out.append(
                Finding(
                    Area.JOURNAL,
                    "journal.damaged-frames",
                    Severity.PROBLEM,
                    f"{name}: {scan.damaged}: read as NUL bytes, counted as damaged lines "
                    "(every other frame reads; a backup, persist restore-backup, has them "
                    "as written)",
                )
            )
        if scan.closed and scan.tail and not scan.tail_damaged:
            out.append(
                Finding(
                    Area.JOURNAL,
                    "journal.torn-tail",
                    Severity.PROBLEM,
                    f"{name} (closed) ends with {scan.tail} bytes of "
                    f"{'NUL bytes' if scan.tail_nul else 'a torn line'}, read as a damaged line",
                )
            )
        if repaired_at_start and (scan.tail_nul or scan.trailing_bad or not writer_running):
            what = []
            if scan.trailing_bad:
                what.append(f"{scan.trailing_bad} unreadable line(s)")
            if scan.tail:
                what.append(
                    f"{scan.tail} bytes of {'NUL bytes' if scan.tail_nul else 'a torn line'}"
                )
            fix = start_command if not writer_running else None
            out.append(
                Finding(
                    Area.JOURNAL,
                    "journal.torn-tail",
                    Severity.WARNING,
                    f"{name} ends with {' and '.join(what)}: the recorder moves them to "
                    "recovery/ (and writes a `corrupt` record) when it next starts",
                    fix,
                )
            )
    if all(f.severity is Severity.OK for f in out):  # a prune note is no damage
        lines = sum(s.lines for s in scans)
        size = sum(s.size for s in scans)
        out.append(
            Finding(
                Area.JOURNAL,
                "journal.segments",
                Severity.OK,
                f"{len(scans)} segment(s), {mb(size)}, {lines:,} lines, every line whole",
            )
        )
    out.append(_quarantined(layout))
    return out


def _ledger_finding(layout: Layout, ledger: PrunedUnreadable) -> Finding:
    """An unreadable `retention/pruned.json`, and `--fix` when the journal and the trash
    tell every segment gone (`rebuild_ledger`): else no rebuild would be whole."""
    text = (
        f"{ledger.path} (the ledger of pruned segments) {ledger.why}: which segments "
        "retention pruned is unknown (those a trash entry holds are told from its "
        "manifest); prune, prune --forget-missing, trash restore and trash empty refuse "
        "until it is mended"
    )
    root = shlex.quote(str(layout.root))
    try:
        rebuild_ledger(layout)
    except TrashError as exc:
        return Finding(
            Area.JOURNAL,
            "journal.pruned-ledger",
            Severity.PROBLEM,
            f"{text}; it cannot be rebuilt: {exc}",
            f"persist restore-backup a backup's copy of it, or mv {shlex.quote(str(ledger.path))} "
            f"{shlex.quote(str(layout.recovery))}/ and then persist prune --forget-missing "
            f"--log-dir {root} (what it noted is then lost)",
        )
    return Finding(
        Area.JOURNAL,
        "journal.pruned-ledger",
        Severity.PROBLEM,
        f"{text} (--fix rebuilds it from the journal's prune, restore and empty records "
        "and the trash, keeping this one in recovery/doctor/)",
        f"persist doctor --fix --log-dir {root}",
        Repair(RepairKind.REBUILD_LEDGER, (layout.pruned,)),
    )


def _more(area: Area, check: str, count: int) -> Finding:
    return Finding(area, check, Severity.PROBLEM, f"... and {count} more like this")


def trash_findings(layout: Layout) -> list[Finding]:
    """Each trash entry a prune, restore or empty left half done (and what ends it), and
    each `persist trash restore` would refuse (an unreadable manifest, a file missing
    from it or of another size), known before the day it is needed."""
    problems: list[str] = []
    try:
        entries = list_trash(layout, problems)
    except OSError as exc:
        entries, problems = [], [f"trash/ cannot be read ({exc.strerror or exc})"]
    out: list[Finding] = []
    at_work = retention_at_work(layout)  # a prune or an empty is at it now: not interrupted
    caches = layout.index if layout.index.is_dir() else None
    for entry in entries:
        left = None if at_work else unfinished(layout, entry)
        if left is not None:
            out.append(
                Finding(
                    Area.JOURNAL,
                    f"journal.interrupted-{left.what}",
                    Severity.PROBLEM if left.blocks else Severity.WARNING,
                    f"trash/{entry.id}: {article(left.what)} {left.what} was interrupted "
                    f"({left.held})"
                    + (
                        "; `persist prune`, `persist trash empty` and the recorder's "
                        "retention refuse to run until it is ended"
                        if left.blocks
                        else ": its files take room until it is finished"
                    ),
                    left.command,
                )
            )
        if entry.state == EMPTYING:
            continue  # restore refuses it on purpose
        try:
            restore_plan(layout, entry, caches)
        except TrashError as exc:
            problems.append(str(exc))
        except OSError as exc:
            problems.append(f"trash/{entry.id} cannot be read ({exc.strerror or exc})")
    discards = [f"trash/{p.name}" for p in discarded(layout)]
    if discards and not at_work:
        out.append(
            Finding(
                Area.JOURNAL,
                "journal.trash-leftover",
                Severity.WARNING,
                f"a deletion was interrupted and left {', '.join(discards)}: journaled "
                "already, its files take room",
                f"persist trash empty --log-dir {shlex.quote(str(layout.root))}",
            )
        )
    return out + [
        Finding(
            Area.JOURNAL,
            "journal.trash",
            Severity.WARNING,
            f"{problem.removesuffix('; nothing restored')}: `persist trash restore` would "
            "refuse this entry",
            f"ls -lR {_quoted(layout.trash)}",
        )
        for problem in problems[:_MAX_NAMED]
    ]


def recovery_state_finding(layout: Layout, fix_command: str) -> Finding:
    """`recovery/state.json`: derived (a restart without it recounts from the newest
    checkpoint), so a file that is not a recovery state is only a warning."""
    if not layout.state.exists() or RecoveryState.read(layout) is not None:
        return Finding(
            Area.CACHES,
            "caches.recovery-state",
            Severity.OK,
            "recovery/state.json is readable"
            if layout.state.exists()
            else "no recovery/state.json (a running recorder writes it)",
        )
    what = "a recovery state" if layout.state.is_file() else "a regular file"
    return Finding(
        Area.CACHES,
        "caches.recovery-state",
        Severity.WARNING,
        f"recovery/state.json is not {what} (a restart ignores it and recounts the "
        "journal from the newest checkpoint; --fix moves it aside when no recorder runs)",
        fix_command,
        Repair(RepairKind.QUARANTINE, (layout.state,)),
    )


def _quarantined(layout: Layout) -> Finding:
    try:
        found = [
            (e.name, e.stat().st_size)
            for e in os.scandir(layout.recovery)
            if e.name.endswith(".corrupt") and e.is_file(follow_symlinks=False)
        ]
    except FileNotFoundError:
        found = []
    except OSError as exc:
        return Finding(
            Area.JOURNAL,
            "journal.quarantine",
            Severity.PROBLEM,
            f"recovery/ cannot be read ({exc.strerror})",
            f"ls -ld {_quoted(layout.recovery)}",
        )
    if not found:
        return Finding(Area.JOURNAL, "journal.quarantine", Severity.OK, "nothing quarantined")
    total = sum(size for _, size in found)
    names = ", ".join(sorted(name for name, _ in found)[:3])
    return Finding(
        Area.JOURNAL,
        "journal.quarantine",
        Severity.OK,
        f"{len(found)} torn tail(s) quarantined in recovery/ ({mb(total)}: {names}), kept "
        "for inspection; each has a `corrupt` record in the journal",
    )


def checkpoint_findings(layout: Layout, journal: JournalScan) -> list[Finding]:
    out: list[Finding] = []
    try:
        for entry_id, cp_ids in pinned_entries(layout).items():
            out.append(
                Finding(
                    Area.CHECKPOINTS,
                    "checkpoints.pinned-in-trash",
                    Severity.PROBLEM,
                    f"pinned checkpoint(s) {', '.join(cp_ids)} are in trash/{entry_id}, not "
                    "in checkpoints/ (a prune took them as they were pinned; before "
                    "2026-12-07 `persist pin` could race a prune): restores and exports "
                    "cannot use them; `persist trash empty` keeps that entry",
                    f"persist trash restore {entry_id} --log-dir {shlex.quote(str(layout.root))}",
                )
            )
    except PinsUnreadable as exc:
        out.append(
            Finding(
                Area.CHECKPOINTS,
                "checkpoints.pins",
                Severity.PROBLEM,
                str(exc),
                f"mv {_quoted(layout.pins)} {_quoted(layout.recovery)}/  "
                "# drops every pin; then persist pin again",
            )
        )
    if NOT_A_FOLDER in journal.skipped:
        out.append(
            Finding(
                Area.CHECKPOINTS,
                "checkpoints.folder",
                Severity.PROBLEM,
                NOT_A_FOLDER,
                f"mv {_quoted(layout.checkpoints)} {_quoted(layout.recovery)}/checkpoints.file && "
                f"mkdir -m 700 {_quoted(layout.checkpoints)}",
            )
        )
    for line in [s for s in journal.skipped if s != NOT_A_FOLDER][:_MAX_NAMED]:
        name = line.split(" ", 1)[0]
        out.append(
            Finding(
                Area.CHECKPOINTS,
                "checkpoints.unreadable",
                Severity.WARNING,
                line,
                f"mv {_quoted(layout.root / name)} {_quoted(layout.recovery)}/",
            )
        )
    known = journal.digests()
    failed = 0
    for cp in journal.checkpoints:
        result = verify_checkpoint(layout, cp, known)
        if result.ok:
            continue
        failed += 1
        if failed <= _MAX_NAMED:
            # only segments gone (by hand: pruned ones verify): nothing a restore can
            # mend; the journal's missing-segment finding says what to do
            gone = not cp.base_problem and all(p.endswith(" is missing") for p in result.problems)
            summary = f"checkpoint {cp.id} does not verify: {result.summary}"
            fix: str | None = f"persist restore {cp.id} --full"
            if result.not_files:
                # a folder, a named pipe where a segment should be: no command of ours
                # moves it (a restore reads it, --forget-missing sees no segment missing)
                things = " ".join(shlex.quote(str(p)) for p in result.not_files)
                fix = f"mv {things} {shlex.quote(str(layout.recovery))}/"
                summary += (
                    " (what stands in a segment's place is no segment: move it out of "
                    "segments/, then doctor says what is left to do)"
                )
            elif gone:
                fix = f"persist prune --forget-missing --log-dir {shlex.quote(str(layout.root))}"
            elif result.uncovered and len(result.problems) == 1:
                # its digest vouches for nothing in them, and no command of ours can
                # make it: a new checkpoint names every segment
                path = cp.path or layout.checkpoints / f"{cp.id}.json"
                summary += (
                    " (restores from it say so; a new checkpoint names every segment; "
                    f"move this one to recovery/ once you no longer need it: mv "
                    f"{shlex.quote(str(path))} {shlex.quote(str(layout.recovery))}/)"
                )
                fix = f"persist checkpoint --log-dir {shlex.quote(str(layout.root))}"
            elif result.problems == [cp.base_problem]:
                # the segments its base alone listed have no digest left here: no
                # command of ours brings one back (a prune would not, a restore neither)
                own = len(cp.segments)  # not joined to its base: its own list alone
                summary += (
                    f" (the {own} segment(s) it lists itself verify; the base's file comes "
                    "back only from a backup made before: persist restore-backup; a new "
                    "checkpoint lists every segment itself)"
                )
                fix = None
            out.append(
                Finding(Area.CHECKPOINTS, "checkpoints.digest", Severity.PROBLEM, summary, fix)
            )
    if failed > _MAX_NAMED:
        out.append(_more(Area.CHECKPOINTS, "checkpoints.digest", failed - _MAX_NAMED))
    if not out:
        count = len(journal.checkpoints)
        chained = sum(cp.base is not None for cp in journal.checkpoints)
        text = (
            f"{count} checkpoint(s), every digest verified ({chained} named by a base chain, "
            "every chain intact)"
            if count
            else "no checkpoints yet"
        )
        out.append(Finding(Area.CHECKPOINTS, "checkpoints.digest", Severity.OK, text))
    return out


def cache_findings(layout: Layout, journal: JournalScan, fix_command: str) -> list[Finding]:
    """Line-index (`.idx`), digest (`.sha256`), line-check (`.check`) and marks
    (`.marks`) caches in `metadata_index/`."""
    not_files: list[tuple[str, int]] = []  # caches' names held by a folder, a named pipe
    try:
        names = []
        for e in sorted(os.scandir(layout.index), key=lambda e: e.name):
            if e.is_file():
                names.append(e.name)
            elif _CACHE_NAME.match(e.name) or e.name == VERIFIED_CACHES:
                with contextlib.suppress(OSError):  # a dangling link: nothing is read there
                    not_files.append((e.name, os.stat(e.path).st_mode))
    except FileNotFoundError:
        names = []
    except NotADirectoryError:
        return [
            Finding(
                Area.CACHES,
                "caches.folder",
                Severity.PROBLEM,
                "metadata_index/ is not a folder (a file is in its place): no cache can be "
                "kept (derived: --fix moves it aside; a recorder starting moves it aside too)",
                fix_command,
                Repair(RepairKind.QUARANTINE, (layout.index,)),
            )
        ]
    except OSError as exc:
        return [
            Finding(
                Area.CACHES,
                "caches.unreadable",
                Severity.WARNING,
                f"metadata_index/ cannot be read ({exc.strerror})",
                f"ls -ld {_quoted(layout.index)}",
            )
        ]
    by_number = {segment_number(s.path.name): s for s in journal.scans}
    last = journal.scans[-1] if journal.scans else None
    digests = DigestCache(layout)
    out: list[Finding] = []
    checked = 0
    # (kind, problem, severity) -> the cache files it was found in: one finding each
    groups: dict[tuple[str, str, Severity], list[Path]] = {}
    for name, mode in not_files:  # readers pass over it (never waited on); --fix moves it
        match = _CACHE_NAME.match(name)
        kind = "idx" if match is None else match.group(2) or match.group(4)  # verified.json
        key = (kind, f"is {not_regular(mode)}", Severity.WARNING)
        groups.setdefault(key, []).append(layout.index / name)
    for name in names:
        match = _CACHE_NAME.match(name)
        if match is None:
            continue
        stem = match.group(1) or match.group(3)
        kind = match.group(2) or match.group(4)
        scan = by_number.get(segment_number(f"{stem}.jsonl"))
        problem: str | None
        severity = Severity.WARNING
        if scan is None:
            problem = "describes a segment that is not there"
        elif kind == "idx":
            index = SegmentIndex(scan.path, layout.index, recheck=True)
            index.close()
            problem = index.warning.split(": ", 1)[1].rsplit(";", 1)[0] if index.warning else None
        elif kind in ("check", "marks"):
            judge = _line_check_problem if kind == "check" else _marks_problem
            problem = _judged(layout, scan, judge, layout.index / name)
            if problem in (_CHECK_WRONG, _CHECK_SHAPE, _MARKS_WRONG):
                # trusted as it is: an export counts from it, the Recent list hides by it
                severity = Severity.PROBLEM
        else:
            problem, severity = _digest_cache_problem(digests, scan, scan is last)
        checked += 1
        if problem is not None:
            groups.setdefault((kind, problem, severity), []).append(layout.index / name)
    for (kind, problem, severity), paths in groups.items():
        if len(paths) == 1:
            what = f"metadata_index/{paths[0].name} {problem}"
        else:
            names_shown = ", ".join(p.name for p in paths[:3])
            more = ", ..." if len(paths) > 3 else ""
            what = f"{len(paths)} caches in metadata_index/ ({names_shown}{more}): each {problem}"
        out.append(
            Finding(
                Area.CACHES,
                f"caches.{kind}",
                severity,
                f"{what} (derived: moved aside and rebuilt by --fix)",
                fix_command,
                Repair(RepairKind.REBUILD_CACHES, tuple(paths)),
            )
        )
    if not out:
        out.append(
            Finding(
                Area.CACHES,
                "caches.idx",
                Severity.OK,
                f"{checked} cache file(s) in metadata_index/ match their segments",
            )
        )
    return out


_Judge = Callable[[SegmentIndex, SegmentScan, Path, Path], str | None]


def _judged(layout: Layout, scan: SegmentScan, judge: _Judge, path: Path) -> str | None:
    """`judge` of cache file `path` against the scanned segment, indexed to its end:
    the problem found in it, or None."""
    seg = SegmentIndex(scan.path, layout.index)
    try:
        seg.update()
        seg.close_tail()
        return judge(seg, scan, layout.index, path)
    except (OSError, SegmentDamaged) as exc:
        return f"cannot be checked ({exc})"
    finally:
        seg.close()


_CHECK_SHAPE = "says every line of its segment has a record's shape, and one does not"
_CHECK_WRONG = "lists other lines than its segment's non-message lines"
_MARKS_WRONG = "names other bookkeeping lines than its segment holds"


def _line_check_problem(
    seg: SegmentIndex, scan: SegmentScan, index: Path, path: Path
) -> str | None:
    """A line check (`store.linecheck`) that describes the segment as it is must be
    true, since a JSONL export then copies the segment unread: compared with what the
    scan found (`SegmentScan.shaped`, `.others`). One that describes another version
    of the file is only out of date (ignored by readers, written again by the
    recorder); one that is not a check at all is reported."""
    check = cached_check(seg, index)
    if check is None:
        stale = _names_another_version(path, CHECK_VERSION, identity_of(seg))
        return None if stale else "is not a line check"
    if not scan.shaped or scan.error is not None or scan.lines != len(seg):
        return _CHECK_SHAPE
    if scan.others != check.others:
        return _CHECK_WRONG
    return None


def _marks_problem(seg: SegmentIndex, scan: SegmentScan, index: Path, path: Path) -> str | None:
    """Marks (`store.marks`) that describe their segment as it is must name exactly its
    bookkeeping lines: the Recent list hides the lines they name, so a wrong one would
    hide messages. Compared with what the scan found (in a damaged segment, found
    again). Out-of-date marks (another version of the segment) are only ignored by
    readers; a file that is not marks is reported."""
    kept = cached_marks(seg, index)
    if kept is None:
        stale = _names_another_version(path, MARKS_VERSION, marks_identity(seg))
        return None if stale else "is not a marks file of its segment"
    if scan.shaped and scan.error is None and scan.lines == len(seg):  # from the scan
        hidden = [n for n, kind in scan.others if kind.encode() in BOOKKEEPING]
        found = Marks(len(seg), hidden, scan.byes)
    else:  # a damaged segment: its lines read again
        found = scan_lines(seg, 0, len(seg))
    if (kept.hidden, kept.byes) != (found.hidden, found.byes):
        return _MARKS_WRONG
    return None


def _names_another_version(path: Path, version: int, identity: Sequence[int] | None) -> bool:
    """Whether cache file `path` (`.check`, `.marks`) is of its format and names
    another version of its segment than `identity` (out of date, not wrong)."""
    try:
        doc = orjson.loads(read_regular(path)[0])
        named = doc["segment"] if doc["v"] == version else None
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return isinstance(named, list) and named != list(identity or ())


def _digest_cache_problem(
    digests: DigestCache, scan: SegmentScan, active: bool
) -> tuple[str | None, Severity]:
    cache = digests.layout.index / f"{scan.path.name}.sha256"
    try:
        st = scan.path.stat()
    except OSError:
        return "describes a segment that cannot be read", Severity.WARNING
    before = len(digests.warnings)
    cached = digests.cached_digest(scan.path, st)
    if len(digests.warnings) > before:
        return "is not a digest cache (malformed)", Severity.WARNING
    if not cache.exists():
        return None, Severity.OK
    if cached is None:
        if active:
            return None, Severity.OK  # the active segment's cache is rewritten when it closes
        return (
            "is stale: it describes another file (the segment changed, or the folder was copied)",
            Severity.WARNING,
        )
    if scan.full_digest is not None and cached != scan.full_digest:
        return (
            "holds a wrong SHA-256 for the segment as it is (a restore would trust it)",
            Severity.PROBLEM,
        )
    return None, Severity.OK


def cache_paths(layout: Layout) -> list[Path]:
    """Every cache file in `metadata_index/` (for --fix)."""
    try:
        return [Path(e.path) for e in os.scandir(layout.index) if _CACHE_NAME.match(e.name)]
    except OSError:
        return []
