"""The render cache kept warm: closed segments rendered before anyone exports them.

Run by the search indexer (`persist reindex --follow`, the recorder's helper at idle
CPU and I/O priority) whenever it has nothing to index. It renders the pieces an
`export --all` cuts from each closed segment (`parallel.plan`), one piece per step,
in Markdown redacted as exports write it by default, and in every (format, redaction)
an export has asked for (`render_cache.wanted`). A piece whose entry is there already
is not read again; an entry that is wrong is found at its use (its lines' CRC is
checked then), removed, and rendered here again.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from recorder.export import render_cache
from recorder.export.parallel import (
    PIECE_BYTES,
    Job,
    Piece,
    WorkerFailed,
    day_before,
    piece_key,
    plan,
    render_piece,
)
from recorder.export.redact import REDACT_BY_DEFAULT
from recorder.export.restore import RangeIntegrity
from recorder.export.writers import WRITERS, DayWriter
from recorder.store import renderings
from recorder.store.fsutil import writer_tag
from recorder.store.layout import Layout, list_segments, segment_number
from recorder.store.reader import Store, open_store

DEFAULT_KINDS = frozenset({("md", REDACT_BY_DEFAULT["md"])})  # what `persist export` writes


class RenderWarmer:
    """Renders what is missing, a step at a time (`step`), remembering what is done."""

    def __init__(
        self,
        root: Path,
        piece_bytes: int = PIECE_BYTES,
        only: frozenset[tuple[str, bool]] | None = None,
    ) -> None:
        """`only`: render just these (format, redact), not the defaults and the wanted."""
        self.root = Path(root)
        self.only = only
        self.folder = render_cache.folder_of(self.root)
        self.piece_bytes = piece_bytes
        # closed segments whose every entry was there, with their folder's mtime then:
        # an entry removed since (found wrong by an export, moved aside by the doctor)
        # changes it, and that segment is looked at again
        self.done: dict[int, int | None] = {}
        self.never_kept: set[tuple[int, int]] = set()  # (segment, line): pieces never kept
        self.kinds: frozenset[tuple[str, bool]] = DEFAULT_KINDS

    def step(self, budget: float, stop: Callable[[], bool] = lambda: False) -> int:
        """Render missing pieces for up to about `budget` seconds (at least one piece
        when one is missing); returns how many were rendered (0: nothing to do)."""
        if not render_cache.enabled():
            return 0
        kinds = self.only or DEFAULT_KINDS | {
            k for k in render_cache.wanted(self.folder) if k[0] in WRITERS and k[0] != "jsonl"
        }
        if kinds != self.kinds:
            self.kinds, self.done = frozenset(kinds), {}
        for number, mtime in list(self.done.items()):
            if self._mtime(number) != mtime:
                del self.done[number]
        numbers = [segment_number(p.name) or 0 for p in list_segments(Layout(self.root))]
        closed = set(numbers[:-1])
        if closed <= self.done.keys():
            return 0
        render_cache.remove_orphans(self.folder, set(numbers))
        deadline = time.monotonic() + budget
        rendered = 0
        with open_store(self.root) as store:
            for number, pieces in _closed_pieces(store, self.piece_bytes):
                if number in self.done:
                    continue
                for fmt, redact in sorted(self.kinds):
                    for piece, day in _with_days(store, fmt, pieces):
                        if stop() or (rendered and time.monotonic() >= deadline):
                            return rendered
                        if (piece.segment, piece.line) in self.never_kept:
                            continue
                        if self._kept(fmt, redact, day, piece):
                            continue
                        self._render(fmt, redact, day, piece)
                        rendered += 1
                self.done[number] = self._mtime(number)
        return rendered

    def _mtime(self, number: int) -> int | None:
        try:
            return render_cache.segment_folder(self.folder, number).stat().st_mtime_ns
        except OSError:
            return None

    def _kept(self, fmt: str, redact: bool, day: str | None, piece: Piece) -> bool:
        key = piece_key(fmt, redact, day, piece)
        try:
            return render_cache.look_up(self.folder, key, check_crc=False) is not None
        except render_cache.BadEntry:
            return False

    def _render(self, fmt: str, redact: bool, day: str | None, piece: Piece) -> None:
        try:
            render_cache.ensure_folder(self.folder)
        except OSError as exc:
            raise WarmingFailed(f"{self.folder}: {exc.strerror or exc}") from None
        tag = writer_tag().upper()  # a clock that does not step tells its writer (fsutil)
        prefix = f".warm-{os.getpid()}-{tag}-" if tag else f".warm-{os.getpid()}-"
        scratch = tempfile.mkdtemp(prefix=prefix, dir=self.folder)
        try:
            # the integrity summary: its entries serve restores as well as exports
            job = Job((fmt,), redact, RangeIntegrity, scratch, str(self.folder), keep=True)
            result = render_piece(job, piece, [day])
        except WorkerFailed as exc:
            raise WarmingFailed(f"seg-{piece.segment:06d}: {exc.message}") from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if result.kept:
            # a prune that took the segment meanwhile (this store read it from where it
            # was) dropped its renderings before this one was kept: drop it too
            renderings.drop(Layout(self.root), [piece.segment])
            return
        if result.notes:  # a full disk: rendering it again would not keep it either
            raise WarmingFailed(result.notes[-1])
        # never kept: damaged (the damage must be read to be reported), or too many
        # participants for an entry's header (`render_cache.keep`)
        self.never_kept.add((piece.segment, piece.line))


class WarmingFailed(Exception):
    """A piece could not be rendered or kept (the message says why, in one line)."""


def _closed_pieces(store: Store, piece_bytes: int) -> list[tuple[int, list[Piece]]]:
    """The pieces `export --all` cuts from each closed segment, by segment number."""
    if len(store.segments) < 2:
        return []
    stop = len(store) - len(store.segments[-1])
    by_segment: dict[int, list[Piece]] = {}
    for piece in plan(store, 0, stop, piece_bytes):
        by_segment.setdefault(piece.segment, []).append(piece)
    return sorted(by_segment.items())


def _with_days(store: Store, fmt: str, pieces: list[Piece]) -> list[tuple[Piece, str | None]]:
    """Each piece with the day heading its writer starts after in `export --all`, as
    `render_parallel` works it out (`day_before`)."""
    writer = WRITERS[fmt](io.BytesIO())
    if not isinstance(writer, DayWriter):
        return [(piece, None) for piece in pieces]
    return [(piece, day_before(store, writer, piece.index, 0, writer.day)) for piece in pieces]
