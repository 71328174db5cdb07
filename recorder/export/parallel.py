"""Rendering a large range of the journal on every core: the same bytes as one pass.

The range is cut into pieces (whole lines of one segment, about `Parallel.piece_bytes`
each). Worker processes (fresh interpreters running `serve`, fed pickled tasks on
their stdin: callers run threads, so never `fork`, and a caller's main module is never
imported again, as multiprocessing's spawn would) each read a piece's lines straight
from its segment, at the line starts the parent's index gave them, redact them if
asked, and render them with the formats' own writers. Into an output that is a plain
file written where it stands (an export's `-o FILE`), a worker holds each piece's
rendering in memory and writes it into the file itself, at the place the parent gives
once the sizes of the pieces before it are known (`HeldOutput`): every byte is copied
once. Into anything else (a pipe, memory, a restore bundle's hashed files) pieces go
to private files in a scratch folder beside the output, and the parent copies them in,
in journal order. Either way they land between the header the parent wrote and the
footer it writes, and the parent merges each piece's range summary into its own.

Writers carry one thing from record to record: the day of the last day heading
(Markdown, HTML). A piece's writers start with the day the parent works out for its
first record (the day of the last dated record before it, read from the journal), so
headings come out exactly where one pass puts them. Range summaries merge exactly
(`RangeSummary.merge`): pieces count participants without the cap and the merge
applies it in journal order. A failure in a worker (a damaged segment, a full disk)
is raised in the parent as the same error the one pass gives; the scratch folder is
removed whatever happens.

Over 400 lines (about 1,000): the parent's cutting, feeding, placing and merging and the
worker's `serve` loop speak one task format and one error convention, which one module
keeps in step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import io
import json
import os
import pickle
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import traceback
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

from recorder.errors import PersistError
from recorder.store.fsutil import NO_KERNEL_COPY
from recorder.store.ranges import RangeSummary, summarize
from recorder.store.reader import Record, Store
from recorder.store.segfile import open_segment

if TYPE_CHECKING:
    from recorder.export.render_cache import PieceKey

PARALLEL_MIN_BYTES = 64 << 20  # smaller ranges are rendered in one pass
PIECE_BYTES = 16 << 20  # of journal per piece (progress moves once per piece)
MAX_WORKERS = 4
PIECE_PARTICIPANTS = 100_000  # distinct participants a piece counts before it gives up
_COPY = 1 << 20


@dataclass(frozen=True)
class Parallel:
    """How a range is rendered: `workers` processes (None: one per core, at most
    `MAX_WORKERS`; 1: one pass in this process) when it holds at least `min_bytes`
    of journal, in pieces of about `piece_bytes`. Tests pass small sizes."""

    workers: int | None = None
    min_bytes: int = PARALLEL_MIN_BYTES
    piece_bytes: int = PIECE_BYTES

    def worker_count(self) -> int:
        if self.workers is not None:
            return max(1, self.workers)
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cores = os.cpu_count() or 1
        return min(cores, MAX_WORKERS)


SERIAL = Parallel(workers=1)


@dataclass(frozen=True)
class Piece:
    """Lines `line` to `line + count` of one segment, record `index` on in the range."""

    n: int
    path: str
    segment: int
    line: int
    index: int
    starts: bytes  # the lines' start offsets (array "Q"), the parent's index of them
    end: int  # where the last line ends
    closed: bool = False  # of a segment before the last (its rendering may be kept)

    @property
    def count(self) -> int:
        return len(self.starts) // 8

    @property
    def starts_at(self) -> int:
        """Where the first line begins."""
        return int.from_bytes(self.starts[:8], sys.byteorder)


def plan(store: Store, start: int, stop: int, piece_bytes: int) -> list[Piece]:
    """Records `start` to `stop` as pieces of whole lines, none across a segment."""
    pieces: list[Piece] = []
    index = start
    last_segment = store.segments[-1].number if store.segments else -1
    while index < stop:
        seg, i = store.locate(index)
        last = min(len(seg), i + (stop - index))
        while i < last:
            target = seg.starts[i] + piece_bytes
            j = i + 1
            if j < last:
                j = max(j, min(last, _first_at_or_after(seg.starts, target, j, last)))
            pieces.append(
                Piece(
                    len(pieces),
                    str(seg.path),
                    seg.number,
                    i,
                    index,
                    seg.starts[i:j].tobytes(),
                    seg.span(j - 1)[1],
                    seg.number != last_segment,
                )
            )
            index += j - i
            i = j
    return pieces


def _first_at_or_after(starts: array[int], offset: int, lo: int, hi: int) -> int:
    import bisect

    return bisect.bisect_left(starts, offset, lo, hi)


def range_bytes(store: Store, start: int, stop: int) -> int:
    """Bytes of journal that records `start` to `stop` take (from the index, no reads)."""
    if start >= stop:
        return 0
    total = 0
    index = start
    while index < stop:
        seg, i = store.locate(index)
        last = min(len(seg), i + (stop - index))
        total += seg.span(last - 1)[1] - seg.starts[i]
        index += last - i
    return total


def use_parallel(store: Store, start: int, stop: int, parallel: Parallel | None) -> int:
    """How many workers render records `start` to `stop` (0: one pass here)."""
    parallel = parallel or Parallel()
    workers = parallel.worker_count()
    if workers < 2 or stop - start < 2 or not sys.executable:
        return 0
    if range_bytes(store, start, stop) < parallel.min_bytes:
        return 0
    return workers


# -- in a worker ------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """What every piece of one rendering shares."""

    formats: tuple[str, ...]
    redact: bool
    summary: type[RangeSummary]
    scratch: str
    cache: str | None = None  # the render cache's folder (None: neither read nor kept)
    keep: bool = False  # keep what is rendered there (the indexer's warming; exports: no)
    # the outputs' descriptors, inherited: a piece is held in memory and written into
    # them where the parent says (`HeldOutput`); empty: into files in `scratch`
    outputs: tuple[int, ...] = ()


@dataclass
class PieceResult:
    n: int
    files: list[str]
    sizes: list[int]
    days: list[str | None]  # each writer's day after the piece (None: it keeps none)
    summary: RangeSummary
    damaged: list[int]  # compressed frames of its segment found damaged
    notes: list[str] = field(default_factory=list)  # render cache entries found wrong
    kept: bool = False  # its renderings are in the render cache (now or from before)
    missed: bool = False  # rendered though the render cache was asked first
    held: list[HeldOutput] = field(default_factory=list)  # stays in the worker


class HeldOutput:
    """A piece's rendering in one format, held in memory until the parent says where
    in the output it goes (`place`): its bytes go once into the output, instead of
    into a scratch file and then again, by the parent, into the output.

    What is held goes into one buffer that outlives the piece (`_SPARE`): a worker
    reuses the same memory for piece after piece. Memory taken afresh for each piece
    cost a page fault and a page cleared for every 4 KiB of it."""

    def __init__(self) -> None:
        self.buffer = _SPARE.pop() if _SPARE else bytearray()
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        n = len(data)
        end = self.size + n
        if end <= len(self.buffer):
            self.buffer[self.size : end] = data  # a copy into memory already there
        else:
            self.buffer[self.size :] = data  # the buffer grows
        self.size = end
        return n

    def place(self, fd: int, offset: int) -> None:
        """Write everything held into `fd` from `offset` on, then give the buffer back.
        A MiB a call, so that the file's lock, which another worker placing its own
        piece may wait on, is held briefly (short writes are continued)."""
        view = memoryview(self.buffer)[: self.size]
        try:
            while view:
                n = os.pwrite(fd, view[:_PLACE_BYTES], offset)
                if n <= 0:
                    raise OSError(errno.EIO, "a rendered piece could not be written")
                offset += n
                view = view[n:]
        finally:
            view.release()
            self.release()

    def release(self) -> None:
        """Give the buffer back for the next piece (once)."""
        if self.size >= 0:
            self.size = -1
            _SPARE.append(self.buffer)


_SPARE: list[bytearray] = []  # a worker's buffers, free for the next piece's renderings
_PLACE_BYTES = 1 << 20


class WorkerFailed(Exception):
    """A piece could not be rendered: `kind` says which error the parent raises."""

    def __init__(self, kind: str, message: str, errno: int | None = None) -> None:
        super().__init__(kind, message, errno)
        self.kind, self.message, self.errno = kind, message, errno


def read_piece(piece: Piece) -> tuple[bytes, set[int]]:
    """All of a piece's bytes, and the compressed frames found damaged on the way."""
    from recorder.export.writers import ExportError

    size = piece.end - piece.starts_at
    with open_segment(Path(piece.path)) as seg:
        data = seg.read(piece.starts_at, size)
        damaged = set(getattr(seg, "damaged", ()))
    if len(data) != size:
        raise ExportError(
            f"{Path(piece.path).name} is shorter than when the export began "
            "(changed while it was being read)"
        )
    return data, damaged


def records_in(piece: Piece, data: bytes) -> Iterator[Record]:
    """The piece's lines as records, cut from all of its bytes (`read_piece`)."""
    starts = array("Q")
    starts.frombytes(piece.starts)
    ends = starts[1:]  # a line ends where the next begins; the last, at the piece's end
    ends.append(piece.end)
    base, index, segment = piece.starts_at, piece.index, piece.segment
    for m, (s, e) in enumerate(zip(starts, ends, strict=True)):
        yield Record(index + m, segment, s, data[s - base : e - base])


def render_piece(job: Job, piece: Piece, days: list[str | None]) -> PieceResult:
    """Render one piece into private files in the scratch folder (run in a worker):
    copied from the render cache when it holds this piece's renderings for the lines
    as they are now, else by the writers (and then kept there when `job.keep`, the
    indexer's warming, and the piece is undamaged)."""
    from recorder.export import render_cache as rc

    if job.cache is None or not piece.closed:
        data, damaged = _read(piece)
        return _render(job, piece, days, records_in(piece, data), damaged)
    folder = Path(job.cache)
    notes: list[str] = []
    spans = [
        piece_key(fmt, job.redact, day, piece) for fmt, day in zip(job.formats, days, strict=True)
    ]
    found = _kept_entries(folder, spans, notes)
    data, damaged = _read(piece)
    if found is None and not job.keep:  # nothing kept to check the lines against
        result = _render(job, piece, days, records_in(piece, data), damaged)
        result.notes, result.missed = notes, True
        return result
    crc = rc.crc_of(data)
    keys = [dataclasses.replace(key, crc=crc) for key in spans]
    if found is not None:
        if not damaged and all(c.crc == crc for c in found):
            copied = _copy_kept(job, piece, folder, found, notes)
            if copied is not None:
                return copied
        else:  # the lines changed since (repaired, edited): that rendering is no more
            for key in spans:
                rc.drop(folder, key)
    result = _render(job, piece, days, records_in(piece, data), damaged)
    result.notes, result.missed = notes, True
    if not job.keep or damaged or result.summary.bad_lines:
        return result  # a damaged piece's rendering names the damage, read to be reported
    for key, path, size, day in zip(keys, result.files, result.sizes, result.days, strict=True):
        try:
            if not rc.keep(folder, key, Path(path), size, day, result.summary):
                return result  # not keepable (`keep`): no failure
        except OSError as exc:
            notes.append(f"render cache: could not keep a rendering ({exc.strerror or exc})")
            return result
    result.kept = True
    return result


def piece_key(fmt: str, redact: bool, day: str | None, piece: Piece, crc: int = 0) -> PieceKey:
    """The render cache key of `piece` in `fmt` (a `render_cache.PieceKey`; crc 0: the
    span only, as a look-up that has not read the lines uses it)."""
    from recorder.export import render_cache as rc

    return rc.PieceKey(
        fmt, redact, day, piece.segment, piece.line, piece.count, piece.starts_at, piece.end, crc
    )


def _read(piece: Piece) -> tuple[bytes, set[int]]:
    """`read_piece`, its failures as the worker's error convention has them."""
    try:
        return read_piece(piece)
    except PersistError as exc:
        raise WorkerFailed("persist", str(exc)) from None
    except OSError as exc:
        raise WorkerFailed("os", exc.strerror or str(exc), exc.errno) from None


def _kept_entries(folder: Path, spans: list[Any], notes: list[str]) -> list[Any] | None:
    """The kept entries for these spans, whatever their CRC (None: one is missing, or
    wrong: that one is removed and said in `notes`)."""
    from recorder.export import render_cache as rc

    found = []
    for key in spans:
        try:
            cached = rc.look_up(folder, key, check_crc=False)
        except rc.BadEntry as exc:
            rc.drop(folder, key)
            notes.append(f"render cache: {exc}; rendered again")
            return None
        if cached is None:
            return None
        found.append(cached)
    return found


def _copy_kept(
    job: Job, piece: Piece, folder: Path, found: list[Any], notes: list[str]
) -> PieceResult | None:
    """The piece from its kept renderings (None: one was found damaged on the way:
    all are removed and it is said in `notes`)."""
    from recorder.export import render_cache as rc

    files: list[str] = []
    outs: list[Any] = []
    try:
        summary = rc.summary_from(found[0].summary, job.summary())
        outs = _open_outputs(job, piece, files)
        for cached, out in zip(found, outs, strict=True):
            rc.copy_out(cached, out)
        _close(outs)
    except rc.BadEntry as exc:
        for cached in found:
            with contextlib.suppress(OSError):
                cached.path.unlink()
        notes.append(f"render cache: {exc}; rendered again")
        return None
    except OSError as exc:
        raise WorkerFailed("os", exc.strerror or str(exc), exc.errno) from None
    finally:
        _close(outs, quiet=True)
    summary.participants_cap = PIECE_PARTICIPANTS
    return PieceResult(
        piece.n,
        files,
        [c.size for c in found],
        [c.day_after for c in found],
        summary,
        [],
        notes,
        kept=True,
        held=[out for out in outs if isinstance(out, HeldOutput)],
    )


def _render(
    job: Job, piece: Piece, days: list[str | None], records: Iterator[Record], damaged: set[int]
) -> PieceResult:
    from recorder.export.writers import WRITERS, DayWriter, write_records

    files: list[str] = []
    outs: list[Any] = []
    try:
        outs = _open_outputs(job, piece, files)
        writers = [WRITERS[fmt](out) for fmt, out in zip(job.formats, outs, strict=True)]
        for w, day in zip(writers, days, strict=True):
            if isinstance(w, DayWriter) and day is not None:
                w.continue_after(day)
        summary = job.summary()
        summary.participants_cap = PIECE_PARTICIPANTS
        write_records(records, writers, redact=job.redact, summary=summary)
        for w in writers:
            w.flush()
        _close(outs)
    except PersistError as exc:
        raise WorkerFailed("persist", str(exc)) from None
    except OSError as exc:
        raise WorkerFailed("os", exc.strerror or str(exc), exc.errno) from None
    finally:
        _close(outs, quiet=True)
    return PieceResult(
        piece.n,
        files,
        [w.bytes for w in writers],
        [w.day if isinstance(w, DayWriter) else None for w in writers],
        summary,
        sorted(damaged),
        held=[out for out in outs if isinstance(out, HeldOutput)],
    )


def _open_outputs(job: Job, piece: Piece, files: list[str]) -> list[Any]:
    """Where the piece's renderings go, one per format: held in memory when the
    parent places them (`job.outputs`), else new private files in the scratch folder
    (their paths appended to `files` as each is made)."""
    if job.outputs:
        return [HeldOutput() for _ in job.formats]
    outs: list[Any] = []
    try:
        for k in range(len(job.formats)):
            path = os.path.join(job.scratch, f"piece-{piece.n:06d}-{k}")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # a part a damaged cache entry left
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            files.append(path)
            outs.append(os.fdopen(fd, "wb"))
    except BaseException:
        _close(outs, quiet=True)
        raise
    return outs


def _close(outs: list[Any], *, quiet: bool = False) -> None:
    """Close the scratch files among `outs` (what is held stays held); `quiet`: on the
    way out of a failure, which is the one reported."""
    for out in outs:
        if not isinstance(out, HeldOutput) and not out.closed:
            if quiet:
                with contextlib.suppress(OSError):
                    out.close()
            else:
                out.close()


_SIZE = struct.Struct("<Q")


def _send(out: IO[bytes], value: object) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_SIZE.pack(len(data)) + data)
    out.flush()


def _receive(src: IO[bytes]) -> Any:
    """The next message (None at the end of the stream)."""
    head = src.read(_SIZE.size)
    if len(head) < _SIZE.size:
        return None
    (size,) = _SIZE.unpack(head)
    data = src.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


def serve() -> None:
    """A worker's loop until stdin closes: a task in (render a piece, or write a piece
    it holds where the parent says), its reply out. What the rendering code prints
    goes to stderr, so nothing mixes with the replies."""
    results = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    tasks = sys.stdin.buffer
    held: dict[int, tuple[tuple[int, ...], list[HeldOutput]]] = {}
    while True:
        task = _receive(tasks)
        if task is None:
            return
        if task[0] == "place":
            _, n, offsets = task
            fds, outs = held.pop(n)
            _send(results, ("placed", n, _place(fds, outs, offsets)))
            continue
        _, job, piece, days = task
        try:
            result = render_piece(job, piece, days)
            if result.held:
                held[piece.n] = (job.outputs, result.held)
                result.held = []
            reply: tuple[str, Any] = ("ok", result)
        except WorkerFailed as exc:
            reply = ("failed", exc)
        except Exception:  # a bug: its traceback goes back, shown as one line
            reply = ("crashed", traceback.format_exc())
        _send(results, reply)


def _place(fds: tuple[int, ...], outs: list[HeldOutput], offsets: list[int]) -> Any:
    """Write a held piece into the outputs at `offsets`: None, or what failed."""
    try:
        for fd, out, offset in zip(fds, outs, offsets, strict=True):
            out.place(fd, offset)
    except OSError as exc:
        return WorkerFailed("os", exc.strerror or str(exc), exc.errno)
    except Exception:  # a bug: its traceback's last line
        return WorkerFailed("persist", traceback.format_exc().strip().splitlines()[-1])
    return None


# -- in the parent ----------------------------------------------------------------------
def scratch_folder(outs: list[IO[bytes]]) -> str:
    """Where the pieces go: beside the first output that is a file, else the temp dir."""
    for out in outs:
        name = getattr(out, "name", None)
        if isinstance(name, int):  # opened from a descriptor (`AtomicFile`): its path
            try:
                name = os.readlink(f"/proc/self/fd/{name}")
            except OSError:
                name = None
        if isinstance(name, str) and os.path.isdir(os.path.dirname(os.path.abspath(name))):
            return os.path.dirname(os.path.abspath(name))
        path = getattr(out, "path", None)
        if isinstance(path, Path) and path.parent.is_dir():
            return str(path.parent)
    return tempfile.gettempdir()


def day_before(store: Store, writer: Any, index: int, floor: int, initial: str) -> str:
    """The day `writer` holds after records `floor` to `index` (it held `initial`
    before them): that of the last record before `index` that sets it."""
    day_of = writer.day_of
    for j in range(index - 1, floor - 1, -1):
        day = day_of(store.record(j))
        if day:
            return str(day)
    return initial


_BOOT = (
    "import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
    "from recorder.export.parallel import serve; serve()"
)


MAX_HELD = 2  # pieces a worker holds, not yet placed, before it takes another


class _Workers:
    """`count` worker processes (`serve`), fed the tasks in turn by one thread each;
    results are taken in task order. Plain child processes (`python -c`), never a
    fork, and never a re-import of the caller's main module (which multiprocessing's
    spawn does, so a caller without a `__main__` guard would run again).

    When the job's outputs are placed (`Job.outputs`, inherited by the workers, each
    written from `starts` on), each worker holds what it rendered until it is told
    where it goes: as soon as the sizes of every piece before it are known, by the
    thread that learns the last of them, so a worker is told before it takes its next
    piece. Each feeding thread takes its worker's acknowledgements (`placed`) along
    with its results, and gives it no new piece while it holds `MAX_HELD`. `ends`:
    where each output's next byte goes after the pieces placed so far."""

    def __init__(
        self,
        count: int,
        tasks: list[tuple[Job, Piece, list[str | None]]],
        pass_fds: tuple[int, ...] = (),
        starts: list[int] | None = None,
    ) -> None:
        self.tasks = tasks
        self.placing = bool(pass_fds)
        self.ends = list(starts or ())
        self.sizes: dict[int, list[int]] = {}  # pieces rendered, not yet given a place
        self.to_place = 0  # the first piece not given its place
        self.next = 0
        self.results: dict[int, tuple[str, Any]] = {}
        self.owner: dict[int, int] = {}  # piece: the worker that took it
        self.held: list[set[int]] = [set() for _ in range(count)]  # rendered, not placed
        self.placed: dict[int, WorkerFailed | None] = {}  # piece: None, or what failed
        self.cond = threading.Condition()
        self.stopping = False
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-c", _BOOT, json.dumps(sys.path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # never over a TUI; errors come back as results
                pass_fds=pass_fds,
            )
            for _ in range(count)
        ]
        self.sending = [threading.Lock() for _ in self.procs]
        self.threads = [
            threading.Thread(target=self._feed, args=(k,), daemon=True, name="export-piece")
            for k in range(count)
        ]
        for t in self.threads:
            t.start()

    def _feed(self, k: int) -> None:
        proc = self.procs[k]
        assert proc.stdin is not None and proc.stdout is not None
        try:
            while True:
                while len(self.held[k]) >= MAX_HELD:
                    if not self._take_reply(k, None):
                        return
                with self.cond:
                    if self.stopping or self.next >= len(self.tasks):
                        break
                    n = self.next
                    self.next += 1
                    self.owner[n] = k
                try:
                    with self.sending[k]:
                        _send(proc.stdin, ("render", *self.tasks[n]))
                except Exception:  # a broken pipe, a closed file
                    self._take_result(k, n, None)
                    return
                if not self._take_reply(k, n):
                    return
            while self.held[k]:  # the last pieces' places are still to come
                if not self._take_reply(k, None):
                    return
        finally:
            with self.cond:  # nothing waits for a piece this thread no longer hears of
                for m in self.held[k]:
                    self.placed.setdefault(m, WorkerFailed("persist", "a rendering worker failed"))
                self.held[k].clear()
                self.cond.notify_all()
            with self.sending[k], contextlib.suppress(OSError):
                proc.stdin.close()

    def _take_reply(self, k: int, n: int | None) -> bool:
        """Read worker `k`'s replies until piece `n`'s result (None: one acknowledgement
        of a placement); False when the worker stopped (what it held is failed) or
        piece `n` failed."""
        proc = self.procs[k]
        assert proc.stdout is not None
        while True:
            try:
                reply = _receive(proc.stdout)
            except Exception:  # a torn message, a closed file
                reply = None
            if reply is None:
                self._take_result(k, n, None)
                return False
            if reply[0] == "placed":
                with self.cond:
                    self.held[k].discard(reply[1])
                    self.placed[reply[1]] = reply[2]
                    self.cond.notify_all()
                if n is None:
                    return True
                continue
            assert n is not None
            self._take_result(k, n, reply)
            return bool(reply[0] == "ok")

    def _take_result(self, k: int, n: int | None, reply: tuple[str, Any] | None) -> None:
        """Record piece `n`'s result (None: the worker stopped; then what it holds
        is failed too), and tell the workers where the pieces it lets be placed go."""
        places: list[tuple[int, list[int]]] = []
        stopped = ""
        if reply is None:
            try:  # its output ended: it is exiting
                code: int | None = self.procs[k].wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = None
            stopped = f"a rendering worker stopped (exit code {code})"
        with self.cond:
            if reply is None:
                if n is not None:
                    self.results[n] = ("stopped", stopped)
                for m in self.held[k]:
                    self.placed[m] = WorkerFailed("persist", stopped)
                self.held[k].clear()
            else:
                assert n is not None
                self.results[n] = reply
                if reply[0] == "ok" and self.placing:
                    self.held[k].add(n)
                    self.sizes[n] = reply[1].sizes
                    while self.to_place in self.sizes:
                        sizes = self.sizes.pop(self.to_place)
                        places.append((self.to_place, self.ends))
                        self.ends = [at + size for at, size in zip(self.ends, sizes, strict=True)]
                        self.to_place += 1
            self.cond.notify_all()
        for m, offsets in places:
            self._place(m, offsets)

    def result(self, n: int) -> tuple[str, Any]:
        with self.cond:
            while n not in self.results:
                self.cond.wait()
            return self.results.pop(n)

    def _place(self, n: int, offsets: list[int]) -> None:
        """Have the worker holding piece `n` write it at `offsets` (one per output)."""
        k = self.owner[n]
        proc = self.procs[k]
        assert proc.stdin is not None
        try:
            with self.sending[k]:
                _send(proc.stdin, ("place", n, offsets))
        except Exception:  # the worker is gone: its feeding thread says so
            pass

    def placed_failure(self, wait: bool = False) -> WorkerFailed | None:
        """What failed placing a piece so far (`wait`: once every piece is placed)."""
        with self.cond:
            while wait and len(self.placed) < len(self.tasks):
                self.cond.wait()
            return next((f for f in self.placed.values() if f is not None), None)

    def close(self, abort: bool) -> None:
        """Stop the workers (they are ours): at once when `abort`, else once their
        input ends; all are reaped and every thread joined."""
        with self.cond:
            self.stopping = True
        for p in self.procs:
            if abort:
                p.kill()
            with contextlib.suppress(OSError, ValueError):
                p.stdin.close()  # type: ignore[union-attr]
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for t in self.threads:
            t.join()
        for p in self.procs:
            if p.stdout is not None:
                p.stdout.close()


def render_parallel(
    store: Store,
    start: int,
    stop: int,
    writers: list[Any],
    summary: RangeSummary,
    *,
    workers: int,
    redact: bool,
    parallel: Parallel | None = None,
    progress: Any = None,
    total: int = 0,
    after_piece: Callable[[Piece, RangeSummary], None] | None = None,
) -> None:
    """Records `start` to `stop` through `writers` (begun, not ended) and into
    `summary`, rendered by `workers` processes: the same bytes and the same summary
    as `write_records` over them. `after_piece` is called with each piece and its own
    summary once the piece is in the outputs, in journal order. Raises what the one
    pass would (ExportError for a journal error, OSError for a file error)."""
    from recorder.export.writers import WRITERS, DayWriter

    parallel = parallel or Parallel()
    kinds = {cls: name for name, cls in WRITERS.items()}
    formats = tuple(kinds[type(w)] for w in writers)
    pieces = plan(store, start, stop, parallel.piece_bytes)
    initial = [w.day if isinstance(w, DayWriter) else None for w in writers]
    for w in writers:
        w.flush()
    folder = scratch_folder([w.out for w in writers])
    scratch = tempfile.mkdtemp(prefix=".persist-pieces-", dir=folder)
    places = _placed_outputs(writers) if after_piece is None else None
    job = Job(
        formats,
        redact,
        type(summary),
        scratch,
        _cache_folder(store, summary, redact),
        outputs=tuple(fd for fd, _ in places or ()),
    )
    starts = [at for _, at in places or ()]  # where each placed output's pieces begin
    tasks = []
    days, floor = initial, start
    for piece in pieces:  # each scan stops where the one before began: linear
        days = [
            None if d is None else day_before(store, w, piece.index, floor, d)
            for w, d in zip(writers, days, strict=True)
        ]
        floor = piece.index
        tasks.append((job, piece, days))
    overflow = missed = False
    before = Counter(summary.participants)
    done = 0
    pool: _Workers | None = None
    finished = False
    try:
        pool = _Workers(min(workers, len(pieces)), tasks, job.outputs, starts)
        for piece in pieces:
            status, result = pool.result(piece.n)
            if status != "ok":
                _raise_failure(status, result)
            if job.outputs:  # the workers place the pieces themselves
                _raise_failure("failed", pool.placed_failure())
            else:
                for w, path, size in zip(writers, result.files, result.sizes, strict=True):
                    _append(path, w.out, size)
                    os.unlink(path)
            for w, size, day in zip(writers, result.sizes, result.days, strict=True):
                w.bytes += size
                if isinstance(w, DayWriter) and day is not None:
                    w.continue_after(day)
            for note in result.notes:
                if note not in store.warnings:
                    store.warnings.append(note)
            missed = missed or result.missed
            if result.damaged:  # known to the parent's index, as if it had read them
                _note_damaged(store, piece.segment, result.damaged)
            if after_piece is not None:
                after_piece(piece, result.summary)
            overflow = overflow or len(result.summary.participants) > PIECE_PARTICIPANTS
            summary.merge(result.summary)
            done += piece.count
            if progress is not None:
                progress(done, total)
        if job.outputs:  # every piece in its place before the writers go on after them
            _raise_failure("failed", pool.placed_failure(wait=True))
            for w, at in zip(writers, pool.ends, strict=True):
                w.out.seek(at)
        finished = True
    finally:
        if pool is not None:
            pool.close(abort=not finished)
        shutil.rmtree(scratch, ignore_errors=True)
    if missed and job.cache is not None:  # the indexer renders this kind from now on
        from recorder.export import render_cache

        for fmt in formats:
            render_cache.want(Path(job.cache), fmt, redact)
    if overflow:  # a piece gave up counting participants: count them in one pass
        exact = RangeSummary()
        exact.participants = before
        summarize(store.records(start, stop), exact)
        summary.participants = exact.participants


def _raise_failure(status: str, failure: Any) -> None:
    """Raise what a worker's failure is to the one pass (nothing for no failure):
    OSError for a file error, ExportError for the rest."""
    from recorder.export.writers import ExportError

    if failure is None:
        return
    if status == "failed":
        if failure.kind == "os":
            raise OSError(failure.errno, failure.message)
        raise ExportError(failure.message)
    lines = str(failure).strip().splitlines()
    raise ExportError(lines[-1] if lines else "a rendering worker failed")


def _placed_outputs(writers: list[Any]) -> list[tuple[int, int]] | None:
    """Each writer's output as (descriptor, where its next byte goes) when every one
    is a plain file written where it stands, so workers write their pieces into it
    themselves (`HeldOutput`); None: they go through scratch files."""
    places = []
    for w in writers:
        out = w.out
        fd = _file_in_place(out) if isinstance(out, io.BufferedWriter) else None
        if fd is None:
            return None
        out.flush()
        places.append((fd, out.tell()))
    return places


def _cache_folder(store: Store, summary: RangeSummary, redact: bool) -> str | None:
    """Where pieces' renderings are kept and looked for (None: not for this rendering).
    A restore's integrity summary also says where lines are left out of the bundle's
    copy of the journal (damaged, redacted): only an unredacted one uses the cache,
    whose pieces never hold a damaged line."""
    from recorder.export import render_cache
    from recorder.export.restore import RangeIntegrity
    from recorder.export.writers import ExportStats

    cacheable = type(summary) in (RangeSummary, ExportStats)
    cacheable = cacheable or (type(summary) is RangeIntegrity and not redact)
    if not cacheable or not render_cache.enabled():
        return None
    return str(render_cache.folder_of(store.root))


def _note_damaged(store: Store, number: int, frames: list[int]) -> None:
    """Frames of segment `number` a worker read as damaged: the parent's index names
    them (`journal_damage`) as it does the frames its own reads found damaged."""
    for seg in store.segments:
        if seg.number == number:
            with contextlib.suppress(OSError, PersistError):
                known = getattr(seg.file, "damaged", None)
                if isinstance(known, set):
                    known.update(frames)


@runtime_checkable
class CopiesRanges(Protocol):
    """An output that copies from another file itself (in the kernel, say)."""

    def copy_range(self, src: int, offset: int, count: int) -> int: ...


def _append(path: str, out: Any, size: int) -> None:
    """Copy a piece's file to `out`: inside the kernel when `out` is a plain file
    (`copy_file_range`, no bytes through Python) or copies ranges itself, else read
    and written in blocks (a pipe, memory)."""
    with open(path, "rb") as f:
        if isinstance(out, CopiesRanges):
            copied = out.copy_range(f.fileno(), 0, size)
            f.seek(copied)
        elif isinstance(out, io.BufferedWriter):
            copied = _copy_in_kernel(f, out, size)
        else:
            copied = 0
        while True:
            data = f.read(_COPY)
            if not data:
                break
            out.write(data)
            copied += len(data)
    if copied != size:
        raise OSError(f"a rendered piece ({path}) holds {copied} bytes, not {size}")


def _file_in_place(out: io.BufferedWriter) -> int | None:
    """The descriptor of `out` when it is a regular file written where it stands: one
    opened to append (`>>`) is refused by `copy_file_range` (EBADF)."""
    try:
        fd = out.fileno()
        if stat.S_ISREG(os.fstat(fd).st_mode) and not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND:
            return fd
    except (OSError, ValueError, io.UnsupportedOperation):
        pass
    return None


def _copy_in_kernel(src: IO[bytes], out: io.BufferedWriter, size: int) -> int:
    """Bytes of `src` copied to `out`'s file by `copy_file_range` (0 when the file
    system cannot: the caller copies the rest; `src` is left where this stopped)."""
    fd = _file_in_place(out)
    if fd is None:
        return 0
    out.flush()
    copied = 0
    try:
        while copied < size:
            n = os.copy_file_range(src.fileno(), fd, size - copied)
            if n == 0:
                break
            copied += n
    except OSError as exc:
        if exc.errno in NO_KERNEL_COPY:
            src.seek(copied)  # the rest through Python
            return copied
        raise
    except (AttributeError, io.UnsupportedOperation):  # no fd, or no copy_file_range
        return 0
    src.seek(copied)
    return copied
