"""Restore bundles: a range of the conversation up to a checkpoint, verified, in
`restore/<id>/` (another scope or a redacted one beside it: `bundle_name`).

(Over 400 lines, about 850: the integrity report, its damage checks, the bundle they
go into and keeping or continuing an earlier bundle are one feature; choosing and
verifying the range is in `scope`, finding an earlier bundle in `continuation`, the
bundle's files (hashed, copied in the kernel, written back) in `bundle_file`, the
writers and the range summary elsewhere.)

    bundle = build_bundle(log_dir, "latest")              # the last 1000 messages
    bundle = build_bundle(log_dir, "latest", scope=BundleScope.whole())
    bundle.jsonl        # the range's records, byte for byte as stored
    bundle.transcript   # the same conversation as readable Markdown
    bundle.manifest     # checkpoint, scope, range, counts, integrity, history, gaps
    bundle.history()    # the records before the range, lazily from the journal

Before anything is written, every segment the range touches is re-hashed and
compared with the checkpoint's digest (see `scope`); the one pass that writes the
files also collects every gap, damaged (bad) line, quarantined tail and refused
message in the range. None of that stops a restore, and all of it goes into the
manifest. A large range is rendered by worker processes (`parallel`); they render
only the transcript, and the JSONL is the journal's bytes copied from the segments
(in the kernel), less the damaged lines the workers found and with the lines they
redacted (if asked to) written in place of the stored ones: the same bytes as the
one pass. A damaged journal (see `RangeIntegrity.damaged`)
makes `persist restore` exit 5 after writing the bundle. The bundle is built in a
temporary folder and renamed into place, so a reader never sees half of one; one in
place that holds the same range, intact, made by this code (the manifest's `renderer`),
its manifest as written (`manifest_sha256`) and saying what the range says now, is
kept. A bundle in place is never replaced nor changed (an agent may be reading it):
one that differs from what would be built stays, and the new one goes beside it
(`<name>.2`). Every restore then removes the bundles unused for a week but the newest
of each kind, and those holding deleted messages (`store.bundles`). No zmq, no textual.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from recorder.bus.envelope import read_envelope
from recorder.export.bundle_file import BundleFile
from recorder.export.continuation import Earlier, StaleBundle, find_earlier
from recorder.export.leftovers import maker, remove_stale_builds
from recorder.export.parallel import Parallel, Piece, render_parallel, use_parallel
from recorder.export.redact import REDACTION, RedactedRecord
from recorder.export.render import clean, gap_sentence, iso
from recorder.export.render_cache import bundle_renderer
from recorder.export.scope import (
    DEFAULT_LAST,
    BundleScope,
    RangeVerification,
    bundle_start,
    describe_scope,
    held_segments,
    verify_range,
)
from recorder.export.writers import (
    ExportError,
    JsonlWriter,
    MarkdownWriter,
    md_text,
    write_records,
)
from recorder.store import bundles
from recorder.store.checkpoints import (
    Checkpoint,
    Verification,
    resolve_checkpoint,
    segment_digest,
    segment_runs,
    verify_checkpoint,
)
from recorder.store.fsutil import ensure_private_dir, fsync_dir, open_regular, read_regular
from recorder.store.jsontext import dumps as json_dumps
from recorder.store.layout import Layout, segment_name, segment_number
from recorder.store.ranges import (
    JournalRange,
    RangeSummary,
    journal_damage,
    pruned_in_range,
    summarize,
)
from recorder.store.reader import KIND_BAD_LINE, Record, Store, open_store
from recorder.store.records import KIND_MESSAGE, frame_value, parse_line
from recorder.store.trash import reader_notes

JSONL_NAME = "conversation.jsonl"
TRANSCRIPT_NAME = "transcript.md"
MANIFEST_NAME = "manifest.json"
SEAL = "manifest_sha256"  # the manifest's digest of its other fields (`manifest_digest`)
_CHECKPOINT_FIELDS = ("id", "label", "reason", "created", "position", "messages")
MAX_LISTED = 1000  # problems listed one by one in a manifest (all are counted)


@dataclass
class RangeIntegrity(RangeSummary):
    """Whether the journal up to a checkpoint is whole: digest, gaps, damage (listed)."""

    verification: Verification | None = None
    gap_records: list[dict[str, Any]] = field(default_factory=list)
    bad_line_records: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    expected_messages: int | None = None  # what the checkpoint says
    # from the conversation's first record, none pruned before or in it: the range holds
    # every message the checkpoint counts (`expected_messages` is then compared)
    complete: bool = False
    damage: list[str] = field(default_factory=list)  # missing segments, torn tails
    pruned: list[str] = field(default_factory=list)  # segments retention took from the range
    unsequenced: int = 0  # messages without a publisher envelope: their loss is undetectable
    first_seq: int | None = None  # the range's first and last record sequence numbers
    last_seq: int | None = None
    # what a copy of the range's bytes leaves out, as (segment, start, end): every
    # damaged line (a run of them as one) and every line redaction replaced, whose new
    # line is in `replaced` by (segment, start). Not capped; `merge` leaves them: a
    # worker's piece hands its own to the parent's copy.
    left_out: array[int] = field(default_factory=lambda: array("Q"), repr=False, compare=False)
    replaced: dict[tuple[int, int], bytes] = field(default_factory=dict, repr=False, compare=False)

    def add(self, rec: Record) -> None:
        """Count one record of the range (in journal order) and list it if it is trouble."""
        super().add(rec)
        data = rec.data  # parsed once; read directly (the same values as rec.seq, .kind, ...)
        if data is not None:
            seq = data.get("seq")
            if type(seq) is int:
                if self.first_seq is None:
                    self.first_seq = seq
                self.last_seq = seq
        # the bytes the record has in the journal (a redacted one's line is its new one)
        stored = rec.stored if type(rec) is RedactedRecord else len(rec.line)
        # a redacted damaged line is left out below, as every damaged line is
        if type(rec) is RedactedRecord and data is not None:
            self.left_out.extend((rec.segment, rec.offset, rec.offset + stored))
            self.replaced[rec.segment, rec.offset] = rec.line
        kind = KIND_BAD_LINE if data is None else str(data.get("kind"))
        if kind == KIND_MESSAGE:
            frames = data.get("frames") if data is not None else None
            payload = frame_value(frames[-1]) if frames else None
            if read_envelope(payload) is None:
                self.unsequenced += 1
            return
        if kind == KIND_BAD_LINE:
            spans, start = self.left_out, rec.offset
            if spans and spans[-1] == start and spans[-3] == rec.segment:
                # joined to the span before, even one whose line is replaced: the new
                # line is written where that span starts, and the rest is left out
                spans[-1] = start + stored
            else:
                spans.extend((rec.segment, start, start + stored))
            if len(self.bad_line_records) < MAX_LISTED:
                self.bad_line_records.append(
                    {
                        "segment": segment_name(rec.segment),
                        "offset": rec.offset,
                        "length": stored,
                        "index": rec.index,
                    }
                )
        elif data is None:
            return
        elif kind == "gap" and len(self.gap_records) < MAX_LISTED:
            self.gap_records.append({k: v for k, v in data.items() if k != "v"})
        elif kind == "corrupt" and len(self.quarantined) < MAX_LISTED:
            self.quarantined.append({k: v for k, v in data.items() if k != "v"})
        elif kind == "refused" and len(self.refused) < MAX_LISTED:
            self.refused.append({k: v for k, v in data.items() if k not in ("v", "head_b64")})

    def merge(self, later: RangeSummary) -> None:
        """`RangeSummary.merge`, and the lists and sequence numbers of `later` too."""
        super().merge(later)
        if not isinstance(later, RangeIntegrity):
            raise TypeError("a range integrity merges only another one")
        if self.first_seq is None:
            self.first_seq = later.first_seq
        if later.last_seq is not None:
            self.last_seq = later.last_seq
        self.unsequenced += later.unsequenced
        for mine, theirs in (
            (self.gap_records, later.gap_records),
            (self.bad_line_records, later.bad_line_records),
            (self.quarantined, later.quarantined),
            (self.refused, later.refused),
        ):
            mine.extend(theirs[: max(0, MAX_LISTED - len(mine))])

    def piece_state(self) -> dict[str, Any] | None:
        """What a piece's kept rendering keeps beyond the counts: sequence numbers and
        the listed records. None when the piece leaves lines out of a copy of its bytes
        (damaged or redacted ones), which only reading it finds."""
        if self.left_out or self.replaced or self.bad_line_records:
            return None
        return {
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "unsequenced": self.unsequenced,
            "gaps": self.gap_records,
            "quarantined": self.quarantined,
            "refused": self.refused,
        }

    def take_piece_state(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise TypeError("no integrity state")
        first, last, unsequenced = state["first_seq"], state["last_seq"], state["unsequenced"]
        if (
            not all(n is None or type(n) is int for n in (first, last))
            or type(unsequenced) is not int
        ):
            raise TypeError("wrongly typed sequence numbers")
        lists = [state[name] for name in ("gaps", "quarantined", "refused")]
        if not all(isinstance(x, list) and all(isinstance(r, dict) for r in x) for x in lists):
            raise TypeError("wrongly typed records")
        self.first_seq, self.last_seq, self.unsequenced = first, last, unsequenced
        self.gap_records, self.quarantined, self.refused = lists

    def state_json(self) -> dict[str, Any]:
        """The counters, so that a later bundle can go on from this one's end."""
        return {
            "records": self.records,
            "messages": self.messages,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "kinds": dict(self.kinds),
            "missed": self.missed,
            "unsequenced": self.unsequenced,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
        }

    def go_on_from(self, manifest: dict[str, Any]) -> None:
        """Take over the counts and lists of an earlier bundle of the same records
        (raises KeyError/TypeError/ValueError for a manifest without them)."""
        state = manifest["summary"]
        self.records = int(state["records"])
        self.messages = int(state["messages"])
        self.first_ts, self.last_ts = state["first_ts"], state["last_ts"]
        self.kinds.update({str(k): int(v) for k, v in dict(state["kinds"]).items()})
        self.missed = int(state["missed"])
        self.unsequenced = int(state["unsequenced"])
        self.first_seq, self.last_seq = state["first_seq"], state["last_seq"]
        self.participants.update({str(k): int(v) for k, v in manifest["participants"].items()})
        self.gap_records = list(manifest["gaps"])
        self.bad_line_records = list(manifest["bad_lines"])
        self.quarantined = list(manifest["quarantined"])
        self.refused = list(manifest["refused"])

    @property
    def verified(self) -> bool:
        return self.verification is not None and self.verification.ok

    @property
    def ok(self) -> bool:
        return self.verified and not self.problems()

    @property
    def damaged(self) -> bool:
        """The journal itself is damaged in range (digest, damaged lines, missing segments,
        torn tails, fewer messages than the checkpoint counts): what makes `persist
        restore` exit 5. Gaps, quarantined tails and refused messages are recorded
        losses, reported but not damage."""
        return (
            not self.verified
            or bool(self.bad_lines)
            or bool(self.damage)
            or self.count_mismatch() is not None
        )

    def count_mismatch(self) -> str | None:
        if self.expected_messages is None or self.expected_messages == self.messages:
            return None
        return (
            f"the checkpoint counts {self.expected_messages} messages, "
            f"the journal holds {self.messages} up to it"
        )

    def problems(self) -> list[str]:
        """Everything wrong in the range except the digest, one sentence each."""
        out = list(self.damage)
        if self.gaps:
            lost = f", {_n(self.missed, 'message')} known lost" if self.missed else ""
            out.append(f"{_n(self.gaps, 'gap')}{lost}")
        if self.bad_lines:
            out.append(f"{_n(self.bad_lines, 'damaged line')} (not restored)")
        if self.quarantined:
            out.append(
                f"{_n(len(self.quarantined), 'torn tail')} quarantined in recovery/ "
                "(lost from the journal)"
            )
        if self.refused:
            out.append(f"{_n(len(self.refused), 'refused message')} ({_refused_why(self.refused)})")
        mismatch = self.count_mismatch()
        if mismatch:
            out.append(mismatch)
        return out

    def caveats(self) -> list[str]:
        """What the journal cannot tell or no longer holds: not a problem found, a limit
        of what was checked or of what there is (segments pruned on purpose)."""
        out = list(self.pruned)
        v = self.verification
        out += v.vouched if v is not None else []
        if isinstance(v, RangeVerification) and v.history_uncovered:
            out.append(
                f"{segment_runs([segment_number(n) or 0 for n in v.history_uncovered])}, "
                "before the range, not covered by the checkpoint's digest: unverified"
            )
        if self.unsequenced:
            out.append(
                f"{_n(self.unsequenced, 'message')} from publishers without sequence numbers: "
                "loss not detectable"
            )
        return out

    def digest_problems(self) -> list[str]:
        return list(self.verification.problems) if self.verification else ["not verified"]

    def summary(self) -> str:
        parts = ["digest matches" if self.verified else "; ".join(self.digest_problems())]
        parts += self.problems() or ["no gaps or damage"]
        return "; ".join(parts + self.caveats())

    def to_json(self) -> dict[str, Any]:
        v = self.verification
        return {
            "scope": "range",  # what was checked: the records handed over (see "history")
            "segments_verified": v.segments if isinstance(v, RangeVerification) else None,
            "damage": list(self.damage),
            "ok": self.ok,
            "damaged": self.damaged,
            "verified": self.verified,
            "digest_problems": [] if self.verified else self.digest_problems(),
            "problems": ([] if self.verified else self.digest_problems()) + self.problems(),
            "gaps": self.gaps,
            "missed": self.missed,
            "bad_lines": self.bad_lines,
            "quarantined": len(self.quarantined),
            "refused": len(self.refused),
            "unsequenced": self.unsequenced,
            "pruned": list(self.pruned),  # each hole pruning left in the range, in words
            "caveats": self.caveats(),
        }


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _verify(layout: Layout, cp: Checkpoint) -> Verification:
    try:
        return verify_checkpoint(layout, cp)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Verification(False, [f"cannot verify: {exc}"])


def range_integrity(
    store: Store, cp: Checkpoint, scope: BundleScope
) -> tuple[int, int, RangeIntegrity]:
    """The records a bundle of `cp` in `scope` hands over (start, stop), and what is
    known of their integrity before they are read: the range's segments re-hashed
    against the checkpoint's digest, the history before it checked by stat and the
    digest cache, missing segments and torn tails up to the checkpoint (the index has
    them), and what pruning took from the range."""
    start, stop = bundle_start(store, cp, scope)
    # a complete range owns every segment the checkpoint names, even a missing first one
    first_segment = (
        0 if start == 0 else store.locate(start)[0].number if start < stop else cp.segment
    )
    # the segments as the store holds them: what the bundle reads is what is verified,
    # whatever a prune running meanwhile moves
    held = held_segments(store, first_segment)
    verification = verify_range(store.layout, cp, first_segment, held)
    pruned = pruned_in_range(store, start, stop, cp)
    # with segments gone on purpose before it or inside it (pruned, or removed by hand
    # and said so), named by its digest or not (a checkpoint taken after the prune
    # counts on from an older one), the journal no longer holds every message counted
    whole = start == 0 and not verification.pruned and not pruned
    integrity = RangeIntegrity(
        verification=verification,
        expected_messages=cp.messages if whole else None,
        complete=whole,
    )
    rng = JournalRange(start, stop, None, cp)
    integrity.damage = journal_damage(store, rng, writer_running=True)
    integrity.damage += [p for p in verification.history_problems if not p.endswith("missing")]
    integrity.pruned = pruned + reader_notes(store.layout)  # an unreadable ledger, a kill
    return start, stop, integrity


def check_range(
    store: Store,
    cp: Checkpoint,
    scope: BundleScope,
    *,
    cancelled: Callable[[], bool] = lambda: False,
) -> RangeIntegrity | None:
    """What a bundle of `cp` in `scope` would say of its integrity, without writing it
    (the restore dialog): `range_integrity`, then one pass over the records it hands
    over, not the whole journal before them (None if cancelled)."""
    start, stop, integrity = range_integrity(store, cp, scope)
    if summarize(store.records(start, stop), integrity, cancelled) is None:
        return None
    return integrity


def held_words(manifest: dict[str, Any]) -> str:
    """What a bundle holds, from its manifest, as `persist restore` and persist-tui say
    it: its scope, and "the journal still holds" when pruning left holes in its range
    (`integrity.pruned`, absent from manifests written before 2026-12-06, which a bundle
    still in place may have)."""
    still = " the journal still holds" if manifest["integrity"].get("pruned") else ""
    return describe_scope(manifest["scope"]) + still


# -- bundles ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bundle:
    """A restore bundle on disk. `messages()` reads the conversation lazily."""

    dir: Path
    manifest: dict[str, Any]

    @property
    def jsonl(self) -> Path:
        return self.dir / JSONL_NAME

    @property
    def transcript(self) -> Path:
        return self.dir / TRANSCRIPT_NAME

    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST_NAME

    @property
    def checkpoint_id(self) -> str:
        return str(self.manifest["checkpoint"]["id"])

    @property
    def ok(self) -> bool:
        return bool(self.manifest["integrity"]["ok"])

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record of the bundle, parsed one line at a time."""
        with os.fdopen(open_regular(self.jsonl)[0], "rb") as f:  # never waits on a FIFO
            for line in f:
                rec = parse_line(line)
                if rec is not None:
                    yield rec

    def messages(self) -> Iterator[dict[str, Any]]:
        return (r for r in self.records() if r.get("kind") == "msg")

    @property
    def complete(self) -> bool:
        """The bundle holds the conversation from the beginning of the journal."""
        return bool(self.manifest.get("range", {}).get("complete", True))

    def history(self) -> Iterator[Record]:
        """The records before the bundle's range, read lazily from the journal (as
        stored: bad lines come as records whose `data` is None). ExportError if the
        log folder holds no journal (moved or removed since)."""
        rng = self.manifest.get("range", {})
        start = rng.get("start") or {}
        number = segment_number(str(start.get("segment", "")))
        if number is None:
            return
        log_dir = Path(self.manifest["log_dir"])
        with Store(log_dir) as store:
            store.refresh()
            before = rng.get("start_index") or 0
            if before and not len(store):  # (the newest segments are never pruned)
                raise ExportError(
                    f"{log_dir} holds no journal to read the {before} records before the "
                    "bundle's range from (moved or removed since?)"
                )
            yield from store.records(0, store.index_of(number, int(start.get("offset", 0))))

    @classmethod
    def load(cls, path: Path) -> Bundle:
        """Raises ExportError for a manifest that is not a bundle's (wrong types too)."""
        path = Path(path)
        try:
            data = orjson.loads(read_regular(path / MANIFEST_NAME)[0])
        except OSError as exc:
            raise ExportError(
                f"{path / MANIFEST_NAME} cannot be read ({exc.strerror or exc})"
            ) from None
        except ValueError as exc:
            raise ExportError(f"{path / MANIFEST_NAME} cannot be read ({exc})") from None
        if not _well_formed(data):
            raise ExportError(f"{path / MANIFEST_NAME} is not a restore bundle manifest")
        return cls(path, data)


def build_bundle(
    log_dir: Path | str,
    checkpoint: Checkpoint | str,
    *,
    agent: str | None = None,
    store: Store | None = None,
    durable: bool = True,
    now: float | None = None,
    scope: BundleScope | None = None,
    redact: bool = False,
    parallel: Parallel | None = None,
) -> Bundle:
    """Verify the range `scope` picks (default: the last `DEFAULT_LAST` messages) up to
    `checkpoint` and write its restore bundle, or keep the one in place when it holds
    exactly that, intact. `redact`: secrets replaced by `[REDACTED:kind]` in both files
    (off by default: the agent continues with what was said, byte for byte). A large
    range is rendered on every core (`parallel`; the same bytes as one pass)."""
    # absolute: the manifest's `log_dir` and the bundle's paths hold from any folder
    layout = Layout(Path(log_dir).expanduser().absolute())
    cp = (
        checkpoint if isinstance(checkpoint, Checkpoint) else resolve_checkpoint(layout, checkpoint)
    )
    own_store = store is None
    store = store or open_store(layout.root)
    try:
        store.refresh()
        when = time.time() if now is None else now
        return _build(
            layout, store, cp, agent, durable, when, scope or BundleScope(), redact, parallel
        )
    finally:
        if own_store:
            store.close()


def _build(
    layout: Layout,
    store: Store,
    cp: Checkpoint,
    agent: str | None,
    durable: bool,
    now: float,
    scope: BundleScope,
    redact: bool = False,
    parallel: Parallel | None = None,
) -> Bundle:
    start, stop, integrity = range_integrity(store, cp, scope)
    verification = integrity.verification
    assert isinstance(verification, RangeVerification)
    remove_stale_builds(layout)  # work folders of restores killed before (never a live one's)
    known = (list(integrity.damage), list(integrity.pruned))  # before the range is read
    whole = integrity.complete
    name = bundle_name(cp.id, scope, redact)
    position = _position(store, start, stop, cp, whole=whole)
    for folder in reversed(_generations(layout.restore, name)):  # the newest first
        kept = _reusable(folder, cp, scope, position, integrity, redact)
        if kept is not None:
            _tidy(layout, kept.dir)
            return kept
    root = ensure_private_dir(layout.restore)
    earlier = (
        find_earlier(layout, store, cp, stop, lambda m: _copy_of(m, redact) and _sealed(m))
        if start == 0 and integrity.verified
        else None
    )
    work = root / f".building-{cp.id}-{maker()}{time.monotonic_ns()}"

    def write(earlier: Earlier | None) -> dict[str, Any]:
        return _write_files(
            work,
            layout,
            store,
            (start, stop),
            cp,
            scope,
            integrity,
            earlier,
            durable,
            redact,
            parallel,
        )

    try:
        try:
            files = write(earlier)
        except StaleBundle:  # the earlier bundle's files changed: build it all
            shutil.rmtree(work, ignore_errors=True)
            integrity = RangeIntegrity(
                verification=verification,
                expected_messages=integrity.expected_messages,
                complete=integrity.complete,
            )
            integrity.damage, integrity.pruned = list(known[0]), list(known[1])
            files = write(None)
        manifest = _manifest(layout, cp, scope, position, integrity, files, agent, now)
        manifest["redacted"] = redact
        if redact:
            manifest["redaction"] = REDACTION
        if earlier is not None and files.get("reused_from") is not None:
            manifest["reused"] = files.pop("reused_from")
        manifest[SEAL] = manifest_digest(manifest)
        data = json_dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n"
        out = BundleFile(work / MANIFEST_NAME, durable)
        try:
            out.write(data)
        finally:
            out.close()
        if durable:
            fsync_dir(work)
        final = _install(work, root, name, manifest, durable)
        _tidy(layout, final)
        return Bundle(final, _current_manifest(final, manifest))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _tidy(layout: Layout, handed: Path) -> None:
    """The bundle handed back is new again (its folder's time), and the stale ones go
    (`bundles.remove_stale`); best effort: what is left is named by `persist doctor`."""
    bundles.mark_used(handed)
    with contextlib.suppress(OSError):
        bundles.remove_stale(layout, keep=[handed])


def _write_files(
    work: Path,
    layout: Layout,
    store: Store,
    span: tuple[int, int],
    cp: Checkpoint,
    scope: BundleScope,
    integrity: RangeIntegrity,
    earlier: Earlier | None,
    durable: bool = True,
    redact: bool = False,
    parallel: Parallel | None = None,
) -> dict[str, Any]:
    """Write conversation.jsonl and transcript.md of records `span` into `work`, going
    on from `earlier` (its files copied, checked) when given; returns their descriptions."""
    first, stop = span
    start = earlier.stop if earlier is not None else first
    ensure_private_dir(work)
    jsonl = BundleFile(work / JSONL_NAME, durable)
    md = BundleFile(work / TRANSCRIPT_NAME, durable)
    try:
        jw, mw = JsonlWriter(jsonl), MarkdownWriter(md)  # type: ignore[arg-type]
        title = f"Conversation up to “{cp.label or cp.id}”"
        mw.begin(title, _facts(layout, cp, scope, first, integrity))
        mw.flush()
        md.start_body()
        if earlier is not None:
            _go_on_from(earlier, jsonl, md, mw, integrity)
        workers = use_parallel(store, start, stop, parallel)
        if workers:
            # The JSONL is the journal's lines as stored, copied from the segments, less
            # the damaged lines the workers found (the one pass leaves out the same) and
            # with the lines they redacted in place of the stored ones.
            def copy_piece(piece: Piece, summary: RangeSummary) -> None:
                assert isinstance(summary, RangeIntegrity)
                span = (piece.segment, piece.starts_at, piece.end)
                jsonl.copy_lines(
                    Path(piece.path), *span, summary.left_out, summary.replaced, fd=piece.fd
                )

            render_parallel(
                store,
                start,
                stop,
                [mw],
                integrity,
                workers=workers,
                redact=redact,
                parallel=parallel,
                after_piece=copy_piece,
            )
        else:
            records = store.records(start, stop)
            write_records(records, [jw, mw], redact=redact, summary=integrity)
        jw.end()
        mw.flush()
        md.end_body()
        _transcript_footer(mw, integrity, first)
        mw.end()
    finally:
        try:
            jsonl.close()
        finally:
            md.close()
    markdown = md.describe(last_day=mw.day)
    files = {
        "jsonl": jsonl.describe(records=integrity.records - integrity.bad_lines),
        "markdown": markdown,
    }
    if earlier is not None:
        files["reused_from"] = {
            "bundle": earlier.dir.name,
            "records": earlier.stop,
            "rendered": stop - earlier.stop,
        }
    return files


def _go_on_from(
    earlier: Earlier,
    jsonl: BundleFile,
    md: BundleFile,
    mw: MarkdownWriter,
    integrity: RangeIntegrity,
) -> None:
    """Copy the earlier bundle's records (JSONL whole, the transcript's body) and take
    over its counts; StaleBundle if its files are not what its manifest says."""
    m = earlier.manifest
    try:
        j, body = m["files"]["jsonl"], m["files"]["markdown"]["body"]
        integrity.go_on_from(m)
        day = str(m["files"]["markdown"].get("last_day") or "")
        jsonl.copy_checked(earlier.dir / JSONL_NAME, 0, int(j["bytes"]), str(j["sha256"]))
        # "prefix_sha256" covers bytes 0 to end; "sha256" (bundles before 2026-12-03)
        # the body alone
        prefix = "prefix_sha256" in body
        md.copy_checked(
            earlier.dir / TRANSCRIPT_NAME,
            int(body["start"]),
            int(body["end"]),
            str(body["prefix_sha256" if prefix else "sha256"]),
            hashed_from=0 if prefix else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise StaleBundle(f"the earlier manifest cannot be used ({exc})") from None
    mw.continue_after(day)


def _position(
    store: Store, start: int, stop: int, cp: Checkpoint, *, whole: bool
) -> dict[str, Any]:
    """Where the range lies in the journal: indexes, and (segment, offset) of its start
    and end, which stay true as the journal grows."""
    if start < stop:
        seg, i = store.locate(start)
        first = {"segment": seg.name, "offset": seg.span(i)[0]}  # plain name, whatever form
    else:
        first = {"segment": segment_name(cp.segment), "offset": cp.offset}
    return {
        "start_index": start,
        "stop_index": stop,
        "start": first,
        "stop": {"segment": segment_name(cp.segment), "offset": cp.offset, "seq": cp.seq},
        "complete": whole,  # from the conversation's first record, none pruned before or in it
    }


def _reusable(
    final: Path,
    cp: Checkpoint,
    scope: BundleScope,
    position: dict[str, Any],
    integrity: RangeIntegrity,
    redact: bool = False,
) -> Bundle | None:
    """The bundle in place, if this code built it (`_copy_of`) for this checkpoint,
    scope and range from a journal that matched the digest then and matches it now (so
    the same records), its manifest is as written (`_sealed`) and says of the range's
    integrity what it would say now (`_integrity_now`: damage outside the records, what
    pruning took, caveats), and its files hash as its manifest says. Then nothing is
    rebuilt: the range was re-hashed, the files are re-hashed."""
    if not integrity.verified:
        return None
    try:
        m = orjson.loads(read_regular(final / MANIFEST_NAME)[0])
    except (OSError, ValueError):
        return None
    if not (
        _well_formed(m)
        and _sealed(m)
        and m["checkpoint"].get("id") == cp.id
        and m["checkpoint"].get("digest") == cp.digest
        and m.get("scope") == scope.to_json()
        and _copy_of(m, redact)
        and m.get("range") == position
        and m["integrity"].get("verified") is True
        and m["integrity"] == _integrity_now(integrity, m)
        and m.get("history") == _history(integrity, position)
        and _files_intact(final, m)
    ):
        return None
    return Bundle(final, m)


def _integrity_now(integrity: RangeIntegrity, m: dict[str, Any]) -> dict[str, Any] | None:
    """The integrity block a bundle of the records of manifest `m` would have now: the
    range as checked now (`integrity`, before its records are read: digest, damage,
    pruning, its ledger's notes) with the counts and lists `m` holds of those same
    records (None if it holds none)."""
    now = RangeIntegrity(
        verification=integrity.verification,
        expected_messages=integrity.expected_messages,
        complete=integrity.complete,
        damage=list(integrity.damage),
        pruned=list(integrity.pruned),
    )
    try:
        now.go_on_from(m)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return now.to_json()


def manifest_digest(m: dict[str, Any]) -> str:
    """The SHA-256 of manifest `m`'s fields but `SEAL` (JSON, keys sorted), written in
    it as `SEAL`: a manifest changed since (by hand, by an agent) no longer matches, and
    is neither handed back nor gone on from (a bundle's files are checked by the
    digests it holds)."""
    rest = {k: v for k, v in m.items() if k != SEAL}
    return hashlib.sha256(json_dumps(rest, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _sealed(m: dict[str, Any]) -> bool:
    """Manifest `m` is as it was written: its `SEAL` matches its other fields."""
    try:
        return m.get(SEAL) == manifest_digest(m)
    except (TypeError, ValueError):  # (orjson's JSONEncodeError is a TypeError)
        return False


def _refused_why(refused: list[dict[str, Any]]) -> str:
    """Why the messages of `refused` records were not recorded, as a clause: one's own
    `reason` ("4 frames is over the 3 frame limit"), else the limits they were over
    ("too large or of too many frames"). Before 2026-12-07 every one was "too large"."""
    reasons = [str(r.get("reason") or "") for r in refused]
    if len(reasons) == 1 and reasons[0]:
        # (a message given up at a stop says so after a "; ": its counts are what came)
        reason = clean(reasons[0].split("; the recorder stopped")[0], newlines=False)
        return f"{reason[:200]}, not recorded"
    size = any("byte limit" in r for r in reasons)
    frames = any("frame limit" in r for r in reasons)
    over = [w for w, hit in (("too large", size), ("of too many frames", frames)) if hit]
    return f"{' or '.join(over) or 'over a limit of the recorder'}, not recorded"


def _copy_of(m: dict[str, Any], redact: bool) -> bool:
    """Whether the bundle of manifest `m` holds the copy asked for: rendered by this
    code (`renderer`: a bundle of an older version keeps that version's transcript, its
    Markdown bugs included; one without it was written before 2026-12-07), unredacted,
    or redacted as this code redacts (`REDACTION`: one redacted before the sender was
    would keep a secret there)."""
    return (
        m.get("renderer") == bundle_renderer()
        and bool(m.get("redacted")) == redact
        and (not redact or m.get("redaction") == REDACTION)
    )


def _files_intact(folder: Path, manifest: dict[str, Any]) -> bool:
    """The bundle's files are as its manifest describes them (size and SHA-256)."""
    return _changed_file(folder, manifest) is None


def _changed_file(folder: Path, manifest: dict[str, Any]) -> str | None:
    """The first of the bundle's files that is not as its manifest describes it (size
    and SHA-256; unreadable, or not described), as a path; None when all are."""
    for name in ("jsonl", "markdown"):
        path = folder / {"jsonl": JSONL_NAME, "markdown": TRANSCRIPT_NAME}[name]
        try:
            entry = manifest["files"][name]
            path = folder / str(entry["name"])
            if path.stat().st_size != entry["bytes"]:
                return str(path)
            if segment_digest(path, int(entry["bytes"])) != entry["sha256"]:
                return str(path)
        except (OSError, ValueError, KeyError, TypeError):
            return str(path)
    return None


def changed_since_written(bundle: Bundle) -> str | None:
    """What changed in `bundle` since it was written, as a clause naming the file, or
    None: checked as a restore checks a bundle in place before handing it back (its
    manifest as written, `_sealed`; its files as the manifest says, `_changed_file`).
    For a bundle loaded from a path handed over (`PERSIST_RESTORE_DIR`)."""
    m = bundle.manifest
    if SEAL not in m:
        return (
            f"its manifest was written before {SEAL} (2026-12-08) and cannot be checked: "
            f"{bundle.manifest_path}"
        )
    if not _sealed(m):
        return (
            f"its manifest was changed since it was written ({SEAL} does not match): "
            f"{bundle.manifest_path}"
        )
    changed = _changed_file(bundle.dir, m)
    if changed is not None:
        return f"its files do not match its manifest (size or SHA-256): {changed}"
    return None


def _facts(
    layout: Layout, cp: Checkpoint, scope: BundleScope, start: int, integrity: RangeIntegrity
) -> list[tuple[str, str]]:
    v = integrity.verification
    names = v.segments if isinstance(v, RangeVerification) else []
    where = f" ({names[0]} to {names[-1]})" if len(names) > 1 else f" ({names[0]})" if names else ""
    digest = (
        f"✔ the segments of this range{where} match the checkpoint digest"
        if integrity.verified
        else "✘ " + "; ".join(integrity.digest_problems())
    )
    held = scope.describe()
    if integrity.pruned:
        held += f" of what the journal still holds ({'; '.join(integrity.pruned)})"
    if start:
        held += (
            f"; the {start} records before them are in the journal "
            f"(persist export --to {cp.id} --format jsonl)"
        )
    return [
        ("Checkpoint", f"{cp.id} ({cp.reason}, {iso(cp.created)})"),
        ("Messages", f"{cp.messages} ({iso(cp.first_ts)} → {iso(cp.last_ts)})"),
        ("In this bundle", held),
        ("Log folder", str(layout.root)),
        ("Digest", digest),
        ("Gaps and damage", "listed inline and at the end (see also manifest.json)"),
    ]


def _transcript_footer(mw: MarkdownWriter, integrity: RangeIntegrity, start: int) -> None:
    lines = ["---", "", "## Integrity", ""]
    lines.append(
        "- ✔ digest matches"
        if integrity.verified
        else "- ✘ digest: " + md_text("; ".join(integrity.digest_problems()), newlines=False)
    )
    problems = integrity.problems()
    lines += [f"- ⚠ {md_text(p, newlines=False)}" for p in problems] or [
        "- ✔ no gaps or damaged lines in range"
    ]
    lines += [f"- note: {md_text(note, newlines=False)}" for note in integrity.pruned]
    for gap in integrity.gap_records[:50]:
        lines.append(f"  - #{gap.get('seq')}: {md_text(gap_sentence(gap), newlines=False)}")
    if start:
        lines.append(f"- the {start} records before this range were not read (see manifest.json)")
    lines.append("")
    mw.emit("\n".join(lines).encode())


def _history(integrity: RangeIntegrity, position: dict[str, Any]) -> dict[str, Any]:
    """What is known about the records before the range (not read unless it is empty)."""
    v = integrity.verification
    known = v.history_json() if isinstance(v, RangeVerification) else {}
    return {
        "records": position["start_index"],
        "read": position["start_index"] == 0,
        **known,
        "problems": [p for p in known.get("problems", []) if not p.endswith("missing")],
    }


def _manifest(
    layout: Layout,
    cp: Checkpoint,
    scope: BundleScope,
    position: dict[str, Any],
    integrity: RangeIntegrity,
    files: dict[str, Any],
    agent: str | None,
    now: float,
) -> dict[str, Any]:
    cpj = cp.to_json()
    return {
        "v": 1,
        "kind": "restore-bundle",
        "renderer": bundle_renderer(),  # the code that made it: other code builds it again
        "created": now,
        "created_iso": iso(now),
        "agent": agent,
        "log_dir": str(layout.root),
        "checkpoint": {k: cpj[k] for k in _CHECKPOINT_FIELDS} | {"digest": cp.digest},
        "scope": scope.to_json(),
        "messages": integrity.messages,
        "records": integrity.records - integrity.bad_lines,
        "range": position,
        "seq_range": {"first": integrity.first_seq, "last": integrity.last_seq},
        "history": _history(integrity, position),
        "time_range": {
            "first": integrity.first_ts,
            "last": integrity.last_ts,
            "first_iso": iso(integrity.first_ts),
            "last_iso": iso(integrity.last_ts),
        },
        "participants": dict(integrity.participants),
        "integrity": integrity.to_json(),
        "summary": integrity.state_json(),
        "gaps": integrity.gap_records,
        "bad_lines": integrity.bad_line_records,
        "quarantined": integrity.quarantined,
        "refused": integrity.refused,
        "files": files,
    }


def _well_formed(m: Any) -> bool:
    """The fields readers of a manifest use, with their types."""
    try:
        return (
            isinstance(m, dict)
            and isinstance(m["checkpoint"]["id"], str)
            and isinstance(m["integrity"]["ok"], bool)
            and isinstance(m["integrity"]["problems"], list)
            and type(m["messages"]) is int
            and isinstance(m["time_range"], dict)
            and all(isinstance(m["files"][f]["sha256"], str) for f in ("jsonl", "markdown"))
        )
    except (KeyError, TypeError):
        return False


def _same_content(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = (
        "checkpoint",
        "scope",
        "range",
        "history",
        "integrity",
        "gaps",
        "bad_lines",
        "quarantined",
        "refused",
        "redacted",  # a redacted bundle with nothing to redact says so, as asked
        "redaction",
        "renderer",  # one of other code, even with the same bytes, is replaced
    )
    return (
        _well_formed(a)
        and _sealed(a)
        and all(a.get(k) == b.get(k) for k in keys)
        and all(a["files"][f]["sha256"] == b["files"][f]["sha256"] for f in ("jsonl", "markdown"))
    )


def _current_manifest(final: Path, built: dict[str, Any]) -> dict[str, Any]:
    """The manifest in place (an identical bundle may have been left there), if it is
    well formed and says what `built` says; else `built` (the files are ours)."""
    try:
        current = orjson.loads(read_regular(final / MANIFEST_NAME)[0])
        if isinstance(current, dict) and _same_content(current, built):
            return current  # `_install` kept it: its files were checked there
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return built


def bundle_name(checkpoint_id: str, scope: BundleScope, redact: bool) -> str:
    """The name of the folder in `restore/` of `checkpoint_id`'s bundle of `scope` and
    redaction: `<id>` for the default (the last 1000 messages, unredacted), else
    `<id>.last-N`, `<id>.full` or `<id>.since-<checkpoint id>`, then `.redacted` for a
    redacted one. One that differs from what a restore would build now is never
    replaced (an agent may be reading it): the new one goes to `<name>.2`, `.3`, ..."""
    kind = scope.to_json()
    if kind["kind"] == "full":
        name = f"{checkpoint_id}.full"
    elif kind["kind"] == "since":
        name = f"{checkpoint_id}.since-{kind['since']}"
    elif kind["last"] == DEFAULT_LAST:
        name = checkpoint_id
    else:
        name = f"{checkpoint_id}.last-{kind['last']}"
    return f"{name}.redacted" if redact else name


MAX_GENERATIONS = 1000  # bundles of one name (`<name>.2` ...) a restore looks through


def _generation(name: str, folder: str) -> int | None:
    """1 for `name`, N for `name.N` (N >= 2), None for any other folder name."""
    if folder == name:
        return 1
    rest = folder[len(name) + 1 :] if folder.startswith(f"{name}.") else ""
    return int(rest) if rest.isascii() and rest.isdigit() and rest[0] != "0" else None


def _generations(root: Path, name: str) -> list[Path]:
    """The bundles of `name` in `root`, oldest first (`name`, `name.2`, ...)."""
    try:
        entries = os.listdir(root)
    except OSError:
        return []
    found = sorted((n, e) for e in entries if (n := _generation(name, e)) is not None)
    return [root / e for _, e in found]


def _install(work: Path, root: Path, name: str, manifest: dict[str, Any], durable: bool) -> Path:
    """Rename the new bundle into the first free folder of `name`, `name.2`, ... and
    return where it went. A bundle in place is never replaced nor changed (an agent may
    be reading it): one identical to the new one, intact (a restore of the same range
    that finished first), is used instead; a different one is left as it is."""
    for n in range(1, MAX_GENERATIONS + 1):
        final = root / (name if n == 1 else f"{name}.{n}")
        try:
            os.rename(work, final)  # onto an empty folder (nothing to read) too
        except OSError:
            if not os.path.lexists(final):
                raise
            try:
                existing = orjson.loads(read_regular(final / MANIFEST_NAME)[0])
                if _same_content(existing, manifest) and _files_intact(final, existing):
                    return final
            except (OSError, ValueError, KeyError, TypeError):
                pass
            continue
        if durable:
            fsync_dir(root)
        return final
    raise ExportError(f"{MAX_GENERATIONS} bundles named {name}* are in {root} already")
