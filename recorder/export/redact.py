"""Redaction of secrets in what leaves the journal (exports, bundles, hand-backs).

The journal is never changed: a record with secrets is re-encoded for the output only,
each secret's bytes replaced by `[REDACTED:kind]`. Where a secret is comes from the
record's `meta.secrets` (the recorder's scan: `[]` for a message it scanned in full and
found clean); a record the recorder did not scan in full (written before detection or
before the `[]` marker existed, with `--secrets off`, behind a flood, larger than the
scan cap) is scanned here, in full, and so is a damaged line (readers show its bytes
as they are). What the recorder took from the frames into `meta` (the sender, a
replay's reference) is shown with the same secrets replaced.

A record that is not a message (a `gap` naming a publisher and its agent, a `refused`
message's topic, envelope and first bytes, an event) is never scanned by the recorder:
its text values are scanned here, each one a part (`other_parts`), and a redacted copy
has them replaced; a `refused` record's copy leaves out `head_b64` (the message's first
256 bytes, where a secret may be cut off by the 256th byte, past what a scan knows),
and has the end of a topic the recorder cut at 256 bytes (`topic_cut`) that may be a
secret's beginning as `[REDACTED:cut-secret]` (`cut_secret`: a span of that kind).
Before 2026-12-07 every record that was not a message was shown as stored.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from recorder.store.ranges import MAX_KEY_CHARS
from recorder.store.reader import Record
from recorder.store.records import (
    KIND_HEARTBEAT,
    KIND_MESSAGE,
    KIND_REFUSED,
    KIND_SEGMENT,
    REFUSED_TOPIC_BYTES,
    encode_frames,
    encode_record,
)
from recorder.store.secrets import (
    SecretScanner,
    SecretSpan,
    cut_secret,
    redact_frames,
    scan_frames,
    spans_from_meta,
)

_SCANNER = SecretScanner()  # its batch prefilter only (no cap: readers scan in full)

# Formats meant to be read and shared redact by default; JSONL is a byte-exact copy.
REDACT_BY_DEFAULT = {"md": True, "html": True, "csv": True, "jsonl": False}

REDACTION = 4
"""What a redacted copy covers, for copies kept and reused (restore bundles): 1, the
frames and the topic; 2 (2026-12-06), the meta taken from the frames too (the sender);
3 (2026-12-07), the records that are not messages too (`other_parts`); 4 (2026-12-07),
a secret's beginning at the end of a refused message's cut topic (`cut-secret`)."""


def named_secrets(rec: Record) -> list[SecretSpan] | None:
    """The secrets a record's meta names when the recorder scanned all of it ([] when
    it found none, and for a segment's first record, which holds only names of ours);
    None when it must be scanned now (`scanned_parts`), as a damaged line and a record
    that is not a message (`other_parts`) always are."""
    data = rec.data
    if data is None:
        return None
    meta = data.get("meta")
    kind = data.get("kind")
    if kind not in (KIND_MESSAGE, KIND_HEARTBEAT):
        return [] if kind == KIND_SEGMENT else None
    if meta and meta.get("secrets") == [] and not meta.get("secrets_capped"):
        return []  # the common record: scanned in full by the recorder, found clean
    spans = spans_from_meta(meta)
    if spans is not None and isinstance(meta, dict) and not meta.get("secrets_capped"):
        return spans
    return None


def scanned_parts(rec: Record) -> list[bytes]:
    """What a scan of `rec` reads: its frames, a damaged line whole (frame 0 of a span
    is then the line), or the text values of a record that is not a message
    (`other_parts`: a span's frame is then the part's index)."""
    data = rec.data
    if data is None:
        return [rec.line]
    if data.get("kind") in (KIND_MESSAGE, KIND_HEARTBEAT):
        return rec.frames
    return other_parts(data)


_OURS = frozenset(("v", "seq", "ts", "kind", "meta", "spans", "frames", "head_b64"))
"""Fields of a record that is not a message that hold no text from the wire (or, for
`head_b64`, not as text: `other_parts` decodes it)."""


def _texts(value: Any, out: list[str]) -> None:
    """Every string in `value` (an object's keys too), in order."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            out.append(k)
            _texts(v, out)
    elif isinstance(value, list):
        for v in value:
            _texts(v, out)


def _named_texts(value: Any, name: str, out: list[str]) -> None:
    """What each text `_texts` collects from `value` is, in the same order: `topic`,
    `envelope.agent`, `envelope (a key)`, `detail[2]`."""
    if isinstance(value, str):
        out.append(name)
    elif isinstance(value, dict):
        for k, v in value.items():
            out.append(f"{name} (a key)")
            _named_texts(v, f"{name}.{k}", out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _named_texts(v, f"{name}[{i}]", out)


def other_part_names(data: dict[str, Any]) -> list[str]:
    """What each of `other_parts(data)` is, by the field it comes from (`head_b64` for
    a refused message's first bytes): where a span of a record that is not a message
    is, for the TUI's record view."""
    names: list[str] = []
    for key, value in data.items():
        if key not in _OURS:
            _named_texts(value, key, names)
    if isinstance(data.get("head_b64"), str):
        names.append("head_b64")
    return names


def other_parts(data: dict[str, Any]) -> list[bytes]:
    """What is scanned of a record that is not a message: each text in its fields but
    `_OURS` (a gap's `publisher` and `agent`, a refused message's `topic` and
    `envelope`, any `detail`), in order, then a refused message's first bytes
    (`head_b64` decoded), the last part."""
    texts: list[str] = []
    for key, value in data.items():
        if key not in _OURS:
            _texts(value, texts)
    parts = [t.encode("utf-8", "surrogatepass") for t in texts]
    head = data.get("head_b64")
    if isinstance(head, str):
        with contextlib.suppress(binascii.Error, ValueError):
            parts.append(base64.b64decode(head, validate=True))
    return parts


def record_secrets(rec: Record, cap: int | None = None) -> list[SecretSpan]:
    """The secrets of one record: named by its meta when the recorder scanned all of
    it and found some, else found now (a full scan, or the first `cap` bytes)."""
    spans = named_secrets(rec)
    if spans is not None:
        return spans
    return scan_record(rec, cap)


def scan_record(rec: Record, cap: int | None = None) -> list[SecretSpan]:
    """The secrets a scan finds in `rec` now: in its text frames, or in a damaged
    line's bytes whatever their encoding (readers show them decoded with replacement
    characters; before 2026-12-07 a line holding a byte that is not UTF-8 was skipped,
    so its secret was shown)."""
    parts = scanned_parts(rec)
    spans = list(scan_frames(parts, cap=cap, text_only=rec.data is not None).spans)
    at = cut_topic_part(rec.data)
    if at is not None:  # the end of a topic cut at 256 bytes: maybe a secret's beginning
        cut = cut_secret(parts[at], spans, at)
        if cut is not None:
            spans.append(cut)
    return spans


def topic_cut(data: dict[str, Any]) -> bool:
    """Whether a refused record's topic was cut short (its first 256 bytes are kept):
    `topic_cut` says so since 2026-12-07; a record written before, that has no
    `topic_cut`, was when its topic holds 256 bytes or more (a character cut by the
    256th byte is U+FFFD, 3 bytes)."""
    if data.get("kind") != KIND_REFUSED or not isinstance(data.get("topic"), str):
        return False
    if "topic_cut" in data:
        return data["topic_cut"] is True
    return len(data["topic"].encode("utf-8", "surrogatepass")) >= REFUSED_TOPIC_BYTES


def cut_topic_part(data: dict[str, Any] | None) -> int | None:
    """The index in `other_parts` of a refused record's topic when it was cut short
    (`topic_cut`), else None."""
    if data is None or not topic_cut(data):
        return None
    texts: list[str] = []
    for key, value in data.items():
        if key == "topic":
            return len(texts)
        if key not in _OURS:
            _texts(value, texts)
    return None


def scanned_by_recorder(rec: Record) -> bool:
    """Whether the recorder named this record's secrets (else they were found now)."""
    meta = rec.get("meta")
    return isinstance(meta, dict) and isinstance(meta.get("secrets"), list)


@dataclass
class RedactedRecord(Record):
    """A record whose line, with its secrets redacted, replaces the `stored` bytes of
    the journal at `offset` (what a copy of the journal's bytes writes instead)."""

    stored: int = 0


def redact_record(rec: Record, spans: list[SecretSpan] | None = None) -> Record:
    """`rec` itself when it holds no secret, else a copy whose line has each secret
    replaced by `[REDACTED:kind]`, in its frames, its topic and the meta taken from
    them (`_FROM_FRAMES`), and `meta.redacted`: how many. `spans`: the record's secrets
    when already known."""
    spans = record_secrets(rec) if spans is None else spans
    data = rec.data
    if not spans and (data is None or data.get("kind") != KIND_REFUSED or "head_b64" not in data):
        return rec
    if data is None:  # a damaged line: its own bytes redacted (it stays as damaged)
        (line,) = redact_frames([rec.line], spans)
        return RedactedRecord(rec.index, rec.segment, rec.offset, line, stored=len(rec.line))
    if data.get("kind") not in (KIND_MESSAGE, KIND_HEARTBEAT):
        line = encode_record(_redacted_other(data, spans))
        return RedactedRecord(rec.index, rec.segment, rec.offset, line, stored=len(rec.line))
    original = rec.frames
    frames = redact_frames(original, spans)
    head: dict[str, Any] = {k: v for k, v in data.items() if k not in ("spans", "frames")}
    if len(frames) > 1 and isinstance(head.get("topic"), str):
        head["topic"] = frames[0].decode("utf-8", "replace")
    meta = head.get("meta")
    head["meta"] = {**_shown_meta(meta, original, spans), "redacted": len(spans)}
    line = encode_record(head, encode_frames(frames))
    return RedactedRecord(rec.index, rec.segment, rec.offset, line, stored=len(rec.line))


def _redacted_other(data: dict[str, Any], spans: list[SecretSpan]) -> dict[str, Any]:
    """A record that is not a message with the secrets of its parts (`other_parts`)
    replaced where they are, `head_b64` left out, and `meta.redacted`: how many."""
    by_part: dict[int, list[SecretSpan]] = {}
    for s in spans:
        by_part.setdefault(s.frame, []).append(s)
    count = [0]  # the index of the next text, in `other_parts`' order

    def shown(value: Any) -> Any:
        if isinstance(value, str):
            found = by_part.get(count[0])
            count[0] += 1
            if not found:
                return value
            raw = value.encode("utf-8", "surrogatepass")
            (out,) = redact_frames([raw], [SecretSpan(s.kind, 0, s.start, s.end) for s in found])
            return out.decode("utf-8", "replace")
        if isinstance(value, dict):
            return {shown(k): shown(v) for k, v in value.items()}
        if isinstance(value, list):
            return [shown(v) for v in value]
        return value

    head = {k: v if k in _OURS else shown(v) for k, v in data.items() if k != "head_b64"}
    if spans:
        meta = head.get("meta")
        head["meta"] = {**(meta if isinstance(meta, dict) else {}), "redacted": len(spans)}
    return head


_FROM_FRAMES = ("sender", "replay_of")
"""The `meta` values the recorder takes from a message's frames (the payload's sender
field or its envelope's agent, the envelope's `replay_of`): shown with the frames'
secrets replaced, as the frames are. (The rest of `meta` comes from the rules.)"""


def _shown_meta(meta: Any, frames: list[bytes], spans: list[SecretSpan]) -> dict[str, Any]:
    """`meta` with the secrets of `frames` replaced in its `_FROM_FRAMES` values, where
    they are text (a sender `AKIA...`, an agent named by its token): each secret's
    value by its `[REDACTED:kind]`, longest first, and for a sender the recorder cut
    to `MAX_KEY_CHARS`, a secret's beginning left at its end by the cut."""
    shown: dict[str, Any] = dict(meta) if isinstance(meta, dict) else {}
    marks: dict[str, str] = {}
    for s in spans:  # as `redact_frames`: spans out of range are ignored
        if s.frame < len(frames) and s.start < s.end <= len(frames[s.frame]):
            raw = frames[s.frame][s.start : s.end]
            mark = f"[REDACTED:{s.kind}]"
            marks[raw.decode("utf-8", "replace")] = mark
            if b"\\" in raw:  # escaped in the frame's JSON: `meta` holds it decoded
                with contextlib.suppress(orjson.JSONDecodeError):
                    marks[orjson.loads(b'"' + raw + b'"')] = mark
    secrets = sorted(marks.items(), key=lambda item: -len(item[0]))
    for key in _FROM_FRAMES:
        if key in shown:
            shown[key] = _replaced(shown[key], secrets)
    sender = meta.get("sender") if isinstance(meta, dict) else None
    if isinstance(sender, str) and len(sender) >= MAX_KEY_CHARS:
        cut = shown["sender"]
        for secret, mark in secrets:
            # a secret's beginning at the end of the cut, only where the frame goes on
            # with its rest (the sender really was cut inside it: a last character that
            # merely equals a secret's first is not one)
            k = next(
                (
                    k
                    for k in range(len(secret) - 1, 0, -1)
                    if cut.endswith(secret[:k])
                    and any((cut + secret[k:]).encode() in f for f in frames)
                ),
                0,
            )
            if k:
                shown["sender"] = cut[:-k] + mark
                break
    return shown


def _replaced(value: Any, secrets: list[tuple[str, str]]) -> Any:
    """`value` (text, or JSON holding text) with each (secret, mark) replaced."""
    if isinstance(value, str):
        for secret, mark in secrets:
            if secret in value:
                value = value.replace(secret, mark)
        return value
    if isinstance(value, list):
        return [_replaced(v, secrets) for v in value]
    if isinstance(value, dict):
        return {_replaced(k, secrets): _replaced(v, secrets) for k, v in value.items()}
    return value


REDACT_BATCH = 256  # records sharing one set of prefilter passes ...
REDACT_BATCH_BYTES = 8 << 20  # ... and at most about this many bytes of them (big records)


def redacted(records: Iterable[Record]) -> Iterator[Record]:
    """`records` with their secrets redacted, in order.

    A record whose secrets the recorder named goes on at once, while its parsed line is
    still in the processor's caches (a batch held up to 256 parsed records, about 1.7 MB
    of them in the bench journal, before the first was rendered). Records that must be
    scanned now are taken in batches: one set of prefilter passes over the frames of a
    batch (as the recorder does per receive batch), so a full scan runs only on the few
    a pass hits; a pass over joined frames can only add candidates, never lose one (so
    where batches begin never changes the result). The records after one that waits,
    wait with it (the order stays)."""
    pending: list[tuple[Record, list[SecretSpan] | None]] = []
    size = 0
    for rec in records:
        spans = named_secrets(rec)
        if spans is not None and not pending:
            yield redact_record(rec, spans) if spans else rec
            continue
        pending.append((rec, spans))
        size += len(rec.line)
        if len(pending) >= REDACT_BATCH or size >= REDACT_BATCH_BYTES:
            yield from _redact_batch(pending)
            pending, size = [], 0
    yield from _redact_batch(pending)


def _redact_batch(batch: list[tuple[Record, list[SecretSpan] | None]]) -> Iterator[Record]:
    """Records with their named secrets (None: to be scanned now), redacted in order."""
    todo = [i for i, (_, spans) in enumerate(batch) if spans is None]
    parts = [b"".join(scanned_parts(batch[i][0])) for i in todo]
    hit = {todo[k] for k in _SCANNER.candidates(b"".join(parts), map(len, parts))} if todo else ()
    for i, (rec, spans) in enumerate(batch):
        if spans is None:  # (the end of a cut topic is no prefilter's hit: a `user:`)
            spans = scan_record(rec) if i in hit or cut_topic_part(rec.data) is not None else []
        yield redact_record(rec, spans)  # (a refused record is a copy even without)
