"""One range of the journal: which records, between which checkpoints, and the one
pass that summarises it."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from recorder.errors import BadOption, CheckpointError
from recorder.store.checkpoints import Checkpoint
from recorder.store.layout import segment_name, segment_number
from recorder.store.reader import KIND_BAD_LINE, Record, Store
from recorder.store.records import KIND_GAP, KIND_MESSAGE
from recorder.store.segfile import CompressedSegment


@dataclass(frozen=True)
class JournalRange:
    """Records `start` (inclusive) to `stop` (exclusive) of a store, with their ends named."""

    start: int
    stop: int
    after: Checkpoint | None = None  # the range begins just after this checkpoint
    upto: Checkpoint | None = None  # ... and ends with the last record this one covers

    def describe(self) -> str:
        a = f"after {self.after.id}" if self.after else "from the beginning"
        b = f"up to {self.upto.id}" if self.upto else "to the end of the journal"
        return f"{a} {b}"


class ReversedRange(CheckpointError, BadOption):
    """A range whose start comes after its end: the options are wrong (exit 2)."""


def journal_range(store: Store, after: Checkpoint | None, upto: Checkpoint | None) -> JournalRange:
    start = store.checkpoint_index(after) if after is not None else 0
    stop = store.checkpoint_index(upto) if upto is not None else len(store)
    if after is not None and upto is not None and after.seq > upto.seq:
        raise ReversedRange(
            f"the range is reversed: it would start after {after.id}, which comes after "
            f"{upto.id}, where it ends (give the earlier checkpoint as the start)"
        )
    return JournalRange(start, max(start, stop), after, upto)


MAX_PARTICIPANTS = 1000  # distinct participants kept by name; the rest count as OTHERS
MAX_KEY_CHARS = 200  # a participant's name is cut to this length
OTHERS = "(others)"


def message_participant(data: dict[str, Any]) -> str:
    """Whom a parsed message line counts for: its sender, else its topic (uncut)."""
    meta = data.get("meta")
    sender = meta.get("sender") if meta else None
    sender = sender if type(sender) is str else str(sender or "")
    return sender or data.get("topic") or ""


def count_participant(participants: dict[str, int], who: str, n: int = 1) -> None:
    """`n` more messages from `who` (cut to MAX_KEY_CHARS), or from others once
    MAX_PARTICIPANTS are known: as the recorder counts a checkpoint's participants."""
    who = who[:MAX_KEY_CHARS]
    if who in participants:
        participants[who] += n
    elif len(participants) < MAX_PARTICIPANTS:
        participants[who] = n
    else:
        participants[OTHERS] = participants.get(OTHERS, 0) + n


@dataclass
class RangeSummary:
    """One pass over records in journal order: what every reader of a range counts.

    Used by checkpoints taken offline, export statistics, restore integrity and the
    TUI's checkpoint preview, so "messages", "participants" and "gaps" mean the same
    everywhere. Participants are keyed by sender, else topic (as in checkpoints).
    """

    records: int = 0
    messages: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    participants: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)  # every record kind, bad lines included
    missed: int = 0  # messages that gap records say were lost
    bad_bytes: int = 0  # bytes of the damaged lines (a damaged compressed frame: all of it)
    participants_cap: int = field(default=MAX_PARTICIPANTS, repr=False, compare=False)

    def add(self, rec: Record) -> None:
        """Account for one record (call in journal order). Reads the parsed line once
        (the same values as `Record.kind`, `.ts`, `.sender`, `.topic`)."""
        data = rec.data
        # a parsed line's `kind` is a string, `ts` a number or null, `topic` a string
        # or absent, `meta` an object or absent (`parse_line`)
        kind = KIND_BAD_LINE if data is None else data["kind"]
        if kind == KIND_MESSAGE:
            assert data is not None
            self.add_message(data.get("ts"), message_participant(data))
            return
        self.records += 1
        self.kinds[kind] += 1
        if kind == KIND_BAD_LINE:
            self.bad_bytes += len(rec.line)
        elif kind == KIND_GAP:
            assert data is not None
            missed = data.get("missed")
            self.missed += missed if isinstance(missed, int) and missed > 0 else 0

    def add_message(self, ts: float | None, who: str) -> None:
        """`add` of a message record sent at `ts` by `who` (its sender, else its topic)."""
        self.add_messages(((ts, who),))

    def add_messages(self, messages: Sequence[tuple[float | None, str]]) -> None:
        """`add_message` of each (ts, who) in order: one call for a run of messages."""
        if not messages:
            return
        count = len(messages)
        self.records += count
        self.kinds[KIND_MESSAGE] += count
        self.messages += count
        if self.first_ts is None:
            for ts, _who in messages:  # the first time given (a message may have none)
                if ts is not None:
                    self.first_ts = ts
                    break
        self.last_ts = messages[-1][0]
        participants = self.participants
        cap = self.participants_cap
        for _ts, who in messages:
            if len(who) > MAX_KEY_CHARS:
                who = who[:MAX_KEY_CHARS]
            if who in participants:
                participants[who] += 1
            elif len(participants) < cap:
                participants[who] = 1
            else:
                participants[OTHERS] += 1

    def merge(self, later: RangeSummary) -> None:
        """Take in the summary of the records right after these (counted without the
        participant cap): the same result as adding those records here one by one."""
        self.records += later.records
        self.messages += later.messages
        self.bad_bytes += later.bad_bytes
        if self.first_ts is None:
            self.first_ts = later.first_ts
        if later.messages:
            self.last_ts = later.last_ts
        participants = self.participants
        cap = self.participants_cap
        for who, count in later.participants.items():  # in order of first appearance
            if who in participants or len(participants) < cap:
                participants[who] += count
            else:
                participants[OTHERS] += count
        self.kinds.update(later.kinds)
        self.missed += later.missed

    def piece_state(self) -> dict[str, Any] | None:
        """What a kept rendering of a piece keeps of this summary beyond the counts
        (`render_cache`), as JSON; None when a summary of this kind cannot be taken
        from a kept rendering of these records (see `RangeIntegrity`)."""
        return {}

    def take_piece_state(self, state: Any) -> None:
        """Take back what `piece_state` gave; TypeError, ValueError or KeyError when
        `state` is not that."""

    @property
    def gaps(self) -> int:
        return self.kinds[KIND_GAP]

    @property
    def bad_lines(self) -> int:
        return self.kinds[KIND_BAD_LINE]

    def damaged_words(self, range_bytes: int) -> str:
        """`N damaged lines`, and `(B bytes, about R records ...)` when they held more
        records than lines: a damaged compressed frame reads as one line of 256 KiB
        that held a few hundred records; R is estimated from the size of those that
        read."""
        lines = f"{self.bad_lines} damaged line{'' if self.bad_lines == 1 else 's'}"
        estimate = records_held(
            self.bad_bytes,
            self.bad_lines,
            range_bytes - self.bad_bytes,
            self.records - self.bad_lines,
        )
        if estimate is None:
            return lines
        return (
            f"{lines} ({self.bad_bytes:,} bytes, about {estimate:,} records at this "
            "range's average record size)"
        )


def records_held(bad_bytes: int, bad_lines: int, good_bytes: int, good_lines: int) -> int | None:
    """How many records `bad_lines` damaged lines of `bad_bytes` held, at the average
    size of the lines that read; None when that says no more than the lines counted
    (a damaged compressed frame reads as one line of NULs that held hundreds)."""
    if good_lines <= 0 or good_bytes <= 0:
        return None
    estimate = round(bad_bytes / (good_bytes / good_lines))
    return estimate if estimate > bad_lines else None


def summarize(
    records: Iterable[Record],
    summary: RangeSummary | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> RangeSummary | None:
    """Feed `records` to a summary; None if `cancelled()` said so (checked every 4096)."""
    summary = summary if summary is not None else RangeSummary()
    add = summary.add
    for n, rec in enumerate(records, 1):
        add(rec)
        if cancelled is not None and n % 4096 == 0 and cancelled():
            return None
    return summary


def _tail_words(tail: bytes) -> str:
    if tail and not tail.strip(b"\x00"):
        return "NUL bytes (a power cut or a disk that lost the write)"
    if b"\x00" in tail:
        return "a torn line with NUL bytes"
    return "a torn line"


def pruned_in_range(store: Store, start: int, stop: int, upto: Checkpoint | None) -> list[str]:
    """Where retention took segments out of records `start` to `stop`, one sentence
    each: what is inside the range (between two segments it holds) and, when the range
    starts at the journal's first record, what was before it. The range is then not
    the whole conversation, nor the last N messages there were, though nothing is
    damaged: said, never counted as damage."""
    from recorder.store.pruned import pruned_by_number

    notes = pruned_by_number(store.layout)
    segments = store.segments
    if not notes or not segments or start >= stop:
        return []
    first_seg = store.locate(start)[0]
    last_number = upto.segment if upto is not None else segments[-1].number
    out: list[str] = []
    before = sorted(n for n in notes if n < first_seg.number)
    if start == 0 and before:
        seq = store.record(0).seq
        out.append(
            f"{_segments(before)} before seq {seq} {notes[before[-1]].describe()}: the "
            "conversation began earlier than this range"
        )
    for a, b in itertools.pairwise(segments):
        if a.number < first_seg.number or b.number > last_number:
            continue
        hole = [n for n in range(a.number + 1, b.number) if n in notes]
        if not hole:
            continue
        at = store.index_of(b.number, 0)
        if not start < at < stop:
            continue
        after, resumed = store.record(at - 1).seq, store.record(at).seq
        out.append(
            f"{_segments(hole)} {notes[hole[-1]].describe()}: the records between seq "
            f"{after} and seq {resumed} are not in this range"
        )
    return out


def _segments(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return segment_name(numbers[0])
    return f"{len(numbers)} segments ({segment_name(numbers[0])} to {segment_name(numbers[-1])})"


def _segment_span(store: Store, rng: JournalRange) -> tuple[int, int]:
    """The first and last segment numbers `rng` may touch."""
    first = rng.after.segment if rng.after is not None else 1
    last = (
        rng.upto.segment
        if rng.upto is not None
        else max((seg.number for seg in store.segments), default=0)
    )
    return first, last


def missing_segments(store: Store, rng: JournalRange) -> list[int]:
    """The numbers of the segments of `rng` that are gone from segments/ and that
    retention did not prune (`pruned.json`): a hole in the numbers, or one the range's
    checkpoint digest names, in the order `journal_damage` names them."""
    from recorder.store.pruned import pruned_by_number

    present = {seg.number for seg in store.segments}
    first, last = _segment_span(store, rng)
    missing = sorted(n for n in range(first, last + 1) if n not in present)
    if rng.upto is not None:
        for entry in rng.upto.segments:
            number = segment_number(str(entry.get("name", ""))) if isinstance(entry, dict) else None
            if number is not None and number not in present and number not in missing:
                missing.append(number)
    pruned = pruned_by_number(store.layout)  # taken out by retention on purpose: not damage
    return [number for number in missing if number not in pruned]


def journal_damage(store: Store, rng: JournalRange, *, writer_running: bool) -> list[str]:
    """Damage to the journal's files in `rng`, one sentence each: segments that are gone
    (a hole in the numbers, or named in the range's checkpoint digest) and torn tails.

    Damaged lines inside segments are counted by the range summary (a torn tail of a
    closed segment is one of them); this names what no record can show. The last
    segment's unterminated tail is damage when it holds NUL bytes or nobody is writing
    it (`writer_running` False); otherwise it is a write in progress.
    """
    segments = store.segments
    first, last = _segment_span(store, rng)
    out = [
        f"{segment_name(number)} is missing from segments/ (its records are lost)"
        for number in missing_segments(store, rng)
    ]
    for k, seg in enumerate(segments):
        if not first <= seg.number <= last:
            continue
        if seg.unreadable:
            out.append(f"{seg.unreadable} (none of its records can be read)")
        file = seg.file if seg.damaged_frames else None
        if isinstance(file, CompressedSegment):
            out.append(
                f"{seg.path.name}: {file.damaged_words()}: read as NUL bytes, counted as "
                "damaged lines"
            )
        if seg.torn_tail and not (
            isinstance(file, CompressedSegment)
            and file.damaged_within(seg.end - seg.torn_tail, seg.end)
        ):  # NULs of a damaged frame are said above: no power cut
            out.append(
                f"{seg.path.name} (closed) ends with {seg.torn_tail} bytes of "
                f"{_tail_words(seg.tail(4096))}, counted as a damaged line"
            )
        elif k == len(segments) - 1 and rng.upto is None and seg.size > seg.end:
            tail = seg.tail(4096)
            if b"\x00" in tail or not writer_running:
                out.append(
                    f"{seg.path.name} ends with {seg.size - seg.end} bytes of "
                    f"{_tail_words(tail)}, not part of any record (the recorder "
                    "moves it to recovery/ when it next starts)"
                )
    for cp in (rng.after, rng.upto):
        if cp is not None and store.checkpoint_end(cp).moved:
            out.append(
                f"checkpoint {cp.id}'s position ({segment_name(cp.segment)} at byte "
                f"{cp.offset}) is not where its last record, seq {cp.seq}, ends (its file "
                "or the journal before it changed): the range ends by the seqs"
            )
    return out
