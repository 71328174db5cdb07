"""Rendered pieces of closed segments, kept so that an export of them is a copy.

A piece (whole lines of one segment, `parallel.Piece`) renders to the same bytes
whenever its lines, the format, redaction and the day heading it starts after are the
same, and the renderer's code is. The recorder's indexer (`persist reindex --follow`,
its helper at idle priority) renders each closed segment's pieces as `export --all`
cuts them and keeps them here (`render_cache/seg-NNNNNN/LINE.FMT.r|p.zst`, zstd with
its checksum; `warm_renders`), in Markdown redacted (what `persist export` writes by
default) and in every format and redaction an export has asked for (`FMT.r|p.wanted`,
left by an export that had to render closed segments). An export copies what is kept
and renders the rest; it never writes an entry, so it is never slower for keeping.

Derived, like every cache: the journal stays the single source of truth. An entry is
used only when its header names this renderer (a digest of the rendering modules'
source), the same format, redaction and starting day, and the same lines: their
segment, first line, count, byte span and the CRC-32 of their bytes, read again for
every use. An entry for lines that changed since (a segment repaired, damaged or
edited by hand) is removed; a wrong or damaged one too, with a warning; either is
rendered again, and the indexer keeps it again later. Pieces holding damaged lines
are never kept (their rendering names byte offsets of the damage, and the damage
report must come from reading the journal). `$PERSIST_RENDER_CACHE=off` neither reads
nor writes entries. The folder can be deleted at any time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

import orjson
import zstandard

from recorder.store.fsutil import AtomicFile, ensure_private_dir, open_private, writer_may_live
from recorder.store.layout import Layout
from recorder.store.ranges import RangeSummary

CACHE_ENV = "PERSIST_RENDER_CACHE"
LEVEL = 3  # zstd level: Markdown compresses about 14x at 800 MB/s (bench/compress.py)
MAX_HEADER = 1 << 20  # bytes an entry's header line may take
_COPY = 1 << 20
# the modules whose code decides a rendering's bytes: any change to them is a new renderer
_RENDERING = (
    "recorder.export.writers",
    "recorder.export.markdown_code",
    "recorder.export.render",
    "recorder.export.redact",
    "recorder.export.render_cache",
    "recorder.export.parallel",
    "recorder.store.secrets",
    "recorder.store.records",
    "recorder.store.ranges",
    "recorder.export.restore",  # a restore's integrity summary, kept in entries' headers
    "recorder.bus.envelope",  # ... which counts messages without an envelope
)
# ... and a restore bundle's besides: its header, footer and manifest (`restore`, above),
# what its header says it holds (`scope`) and its files' descriptions (`bundle_file`).
# A bundle's manifest names this digest (`renderer`): one of other code is built again.
_BUNDLE_RENDERING = (*_RENDERING, "recorder.export.scope", "recorder.export.bundle_file")
_digests: dict[tuple[str, ...], str] = {}


def enabled() -> bool:
    """Whether renderings are kept and reused (`$PERSIST_RENDER_CACHE` is not `off`)."""
    return os.environ.get(CACHE_ENV, "on").strip().lower() != "off"


def folder_of(log_root: Path) -> Path:
    return Layout(Path(log_root)).render_cache


def renderer_version() -> str:
    """A digest of the rendering modules' source: entries of other code are not used."""
    return _code_digest(_RENDERING)


def bundle_renderer() -> str:
    """The same digest over the modules that decide a restore bundle's bytes: a bundle
    of other code is neither kept nor gone on from (`restore`, `continuation`)."""
    return _code_digest(_BUNDLE_RENDERING)


def _code_digest(names: tuple[str, ...]) -> str:
    found = _digests.get(names)
    if found is None:
        import importlib

        digest = hashlib.sha256()
        for name in names:
            module = importlib.import_module(name)
            digest.update(Path(str(module.__file__)).read_bytes())
        found = _digests[names] = digest.hexdigest()[:32]
    return found


@dataclass(frozen=True)
class PieceKey:
    """What a piece's rendering depends on, as its cache entry must name it."""

    fmt: str
    redact: bool
    day: str | None  # the day heading the writer starts after (None: it keeps none)
    segment: int
    line: int  # the piece's first line in its segment
    count: int
    start: int  # byte offset of the first line
    end: int  # byte offset where the last line ends
    crc: int  # CRC-32 of the lines' bytes

    def fields(self) -> dict[str, Any]:
        return {
            "v": renderer_version(),
            "fmt": self.fmt,
            "redact": self.redact,
            "day": self.day,
            "segment": self.segment,
            "line": self.line,
            "count": self.count,
            "start": self.start,
            "end": self.end,
            "crc": self.crc,
        }


def crc_of(data: bytes) -> int:
    return zlib.crc32(data)


def segment_folder(folder: Path, segment: int) -> Path:
    """Where the entries of one segment's pieces are."""
    return folder / f"seg-{segment:06d}"


def entry_path(folder: Path, key: PieceKey) -> Path:
    """One entry per piece start, format and redaction: a new rendering replaces it."""
    tag = "r" if key.redact else "p"
    return segment_folder(folder, key.segment) / f"{key.line:09d}.{key.fmt}.{tag}.zst"


@dataclass
class Cached:
    """An entry that matches its piece: its rendering is `size` bytes after the header
    line `head`, made from lines whose CRC-32 was `crc`."""

    path: Path
    head: bytes  # the header line as read: `copy_out` uses the entry only if it still is
    size: int
    day_after: str | None
    summary: dict[str, Any]
    crc: int


class BadEntry(Exception):
    """An entry that names its piece but cannot be used (damaged, wrongly typed)."""


def look_up(folder: Path, key: PieceKey, *, check_crc: bool = True) -> Cached | None:
    """The entry for `key` (None: none, or one for other lines, code or options).
    Raises BadEntry for a file that is not a well-formed entry. Without `check_crc`,
    an entry for the same span is taken whatever the CRC of its bytes (to know that
    a piece is kept without reading it; never to use the entry)."""
    path = entry_path(folder, key)
    found = _header(path)
    if found is None:
        return None
    head, header = found
    want = key.fields()
    if not check_crc:
        want["crc"] = header["key"]["crc"]
    if header["key"] != want:
        return None  # another rendering (other code, lines or starting day): replaced
    size, day_after, summary = header["size"], header["day_after"], header["summary"]
    return Cached(path, head, size, day_after, summary, header["key"]["crc"])


def entry_problem(path: Path) -> str | None:
    """What is wrong with the entry file at `path`, as far as its header shows (None:
    nothing); its rendering's checksum is checked when it is used."""
    try:
        _header(path)
    except BadEntry as exc:
        return str(exc)
    return None


def _open_entry(path: Path) -> BinaryIO:
    """An entry file opened to read; BadEntry when it is not a regular file (a FIFO
    there must not block a reader: it is opened without waiting)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BadEntry(f"{path}: not a regular file")
    return open(fd, "rb")


def _header(path: Path) -> tuple[bytes, dict[str, Any]] | None:
    """An entry's header line and its fields, type-checked (None: no such file);
    BadEntry when the file is not an entry."""
    try:
        with _open_entry(path) as f:
            head = f.readline(MAX_HEADER)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BadEntry(f"{path}: {exc.strerror or exc}") from None
    try:
        header = orjson.loads(head)
    except orjson.JSONDecodeError:
        raise BadEntry(f"{path}: its header is not JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("key"), dict):
        raise BadEntry(f"{path}: its header is not an entry's")
    size, day_after, summary = header.get("size"), header.get("day_after"), header.get("summary")
    if (
        type(header["key"].get("crc")) is not int
        or type(size) is not int
        or size < 0
        or not (day_after is None or isinstance(day_after, str))
        or not isinstance(summary, dict)
    ):
        raise BadEntry(f"{path}: its header is wrongly typed")
    try:
        summary_from(summary, RangeSummary())
    except BadEntry as exc:
        raise BadEntry(f"{path}: {exc}") from None
    return head, header


def copy_out(cached: Cached, out: IO[bytes]) -> None:
    """Decompress an entry's rendering into `out`. BadEntry when the entry is damaged
    (the zstd checksum, or not the size its header gives) or was replaced since it was
    looked up; `out` may then hold a part. Errors writing `out` are raised as they are."""
    written = 0
    buf = bytearray(_COPY)
    view = memoryview(buf)
    for n in _rendering(cached, buf):
        written += n
        if written > cached.size:
            break  # more than its header says: damaged, whatever follows
        out.write(view[:n])
    if written != cached.size:
        raise BadEntry(f"{cached.path}: {written} bytes instead of {cached.size}")


def _rendering(cached: Cached, buf: bytearray) -> Iterator[int]:
    """The entry's rendering, a block at a time into `buf` (yields each block's size);
    BadEntry for whatever goes wrong reading it."""
    try:
        with _open_entry(cached.path) as f:
            if f.readline(MAX_HEADER) != cached.head:
                raise BadEntry(f"{cached.path}: replaced while it was being read")
            dctx = zstandard.ZstdDecompressor()
            with dctx.stream_reader(f, read_across_frames=False) as reader:
                while n := reader.readinto(buf):
                    yield n
    except (zstandard.ZstdError, OSError) as exc:
        raise BadEntry(f"{cached.path}: {exc}") from None


def keep(
    folder: Path, key: PieceKey, rendered: Path, size: int, day_after: str | None, summary: Any
) -> bool:
    """Keep a rendering (the file `rendered`, `size` bytes) as `key`'s entry; False
    when its header would be over MAX_HEADER (a piece with tens of thousands of
    participants): such a piece is rendered at every export."""
    header = {"key": key.fields(), "size": size, "day_after": day_after}
    header["summary"] = summary_fields(summary)
    head = orjson.dumps(header) + b"\n"
    if len(head) > MAX_HEADER:
        return False
    path = entry_path(folder, key)
    ensure_private_dir(path.parent)
    cctx = zstandard.ZstdCompressor(level=LEVEL, write_checksum=True, write_content_size=True)
    with AtomicFile(path, durable=False) as target:
        target.file.write(head)
        with open(rendered, "rb") as src:
            cctx.copy_stream(src, target.file, size=size)
    return True


def summary_fields(summary: RangeSummary) -> dict[str, Any]:
    """A range summary as JSON (participants and kinds in order of first appearance),
    with what its kind keeps beyond the counts (`RangeSummary.piece_state`)."""
    fields: dict[str, Any] = {
        "records": summary.records,
        "messages": summary.messages,
        "first_ts": summary.first_ts,
        "last_ts": summary.last_ts,
        "participants": list(summary.participants.items()),
        "kinds": list(summary.kinds.items()),
        "missed": summary.missed,
    }
    state = summary.piece_state()
    if state:
        fields["state"] = state
    return fields


def summary_from(fields: dict[str, Any], into: RangeSummary) -> RangeSummary:
    """`into` with the counts (and state) `summary_fields` wrote; BadEntry when they
    are wrongly typed, or lack the state `into` needs."""
    try:
        records, messages, missed = fields["records"], fields["messages"], fields["missed"]
        first, last = fields["first_ts"], fields["last_ts"]
        if not all(type(n) is int for n in (records, messages, missed)):
            raise TypeError
        if not all(t is None or type(t) in (int, float) for t in (first, last)):
            raise TypeError
        participants = Counter({str(k): int(v) for k, v in _pairs(fields["participants"])})
        kinds = Counter({str(k): int(v) for k, v in _pairs(fields["kinds"])})
        into.take_piece_state(fields.get("state"))
    except (KeyError, TypeError, ValueError):
        raise BadEntry("its summary is wrongly typed") from None
    into.records, into.messages, into.missed = records, messages, missed
    into.first_ts, into.last_ts = first, last
    into.participants, into.kinds = participants, kinds
    return into


def _pairs(value: Any) -> list[tuple[Any, Any]]:
    if not isinstance(value, list):
        raise TypeError
    out = []
    for item in value:
        if not isinstance(item, list) or len(item) != 2 or type(item[1]) is not int:
            raise TypeError
        out.append((item[0], item[1]))
    return out


def ensure_folder(folder: Path) -> None:
    """The cache's folder (0700), without the work folders of renderers that died."""
    ensure_private_dir(folder)
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            # .warm-<pid>-T<start ticks>-<random> (.warm-<pid>-<random> before 2026-12-07;
            # mkdtemp's random part has no capitals)
            parts = entry.name.split("-") if entry.name.startswith(".warm-") else ["", ""]
            owner, tag = parts[1], (parts[2] if len(parts) > 3 else "")
            tag = f"t{tag[1:]}" if tag.startswith("T") and tag[1:].isdigit() else ""
            if owner.isdigit() and not writer_may_live(int(owner), entry.stat().st_mtime, tag):
                shutil.rmtree(entry.path, ignore_errors=True)


def drop(folder: Path, key: PieceKey) -> None:
    with contextlib.suppress(OSError):
        entry_path(folder, key).unlink()


def want(folder: Path, fmt: str, redact: bool) -> None:
    """Say that an export rendered closed segments in this format and redaction: the
    indexer keeps them warm from now on (`wanted`). Nothing when it cannot be said."""
    with contextlib.suppress(OSError):
        ensure_private_dir(folder)
        marker = folder / f"{fmt}.{'r' if redact else 'p'}.wanted"
        if not marker.exists():
            os.close(open_private(marker, os.O_WRONLY | os.O_CREAT))


def wanted(folder: Path) -> set[tuple[str, bool]]:
    """(format, redact) of every rendering an export has asked for."""
    found: set[tuple[str, bool]] = set()
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            parts = entry.name.split(".")
            if len(parts) == 3 and parts[2] == "wanted" and parts[1] in ("r", "p"):
                found.add((parts[0], parts[1] == "r"))
    return found


def remove_orphans(folder: Path, live: set[int]) -> None:
    """Remove the entries of segments no longer in the journal."""
    with contextlib.suppress(OSError):
        for seg in os.scandir(folder):
            name = seg.name
            if name.startswith("seg-") and name[4:].isdigit() and int(name[4:]) not in live:
                shutil.rmtree(seg.path, ignore_errors=True)
