"""Rendering a large range of the journal on every core: the same bytes as one pass.

The range is cut into pieces (whole lines of one segment, about `Parallel.piece_bytes`
each). Worker processes (fresh interpreters running `serve`, fed pickled tasks on
their stdin: callers run threads, so never `fork`, and a caller's main module is never
imported again, as multiprocessing's spawn would) each read a piece's lines straight
from its segment (through the descriptor the parent's index opened, passed to them:
a prune that moves the file meanwhile changes nothing), at the line starts the
parent's index gave them, redact them if asked, and render them with the formats'
own writers into private files in a scratch folder beside the output. The parent
copies the pieces into the real outputs in journal order, between the header it wrote
and the footer it writes, and merges each piece's range summary into its own.

Writers carry one thing from record to record: the day of the last day heading
(Markdown, HTML). A piece's writers start with the day the parent works out for its
first record (the day of the last dated record before it, read from the journal), so
headings come out exactly where one pass puts them. Range summaries merge exactly
(`RangeSummary.merge`): pieces count participants without the cap and the merge
applies it in journal order. A failure in a worker (a damaged segment, a full disk)
is raised in the parent as the same error the one pass gives; the scratch folder is
removed whatever happens.

Over 400 lines (about 550): the parent's cutting, feeding and merging and the worker's
`serve` loop speak one task format and one error convention, which one module keeps
in step.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

from recorder.errors import PersistError, how_it_ended
from recorder.export.leftovers import pieces_prefix
from recorder.store.fsutil import NO_KERNEL_COPY, write_whole
from recorder.store.ranges import RangeSummary, summarize
from recorder.store.reader import Record, Store
from recorder.store.segfile import SegmentGone, open_segment

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
    fd: int = -1  # the segment as the parent holds it open (-1: opened by `path`)

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


class WorkerFailed(Exception):
    """A piece could not be rendered: `kind` says which error the parent raises."""

    def __init__(self, kind: str, message: str, errno: int | None = None) -> None:
        super().__init__(kind, message, errno)
        self.kind, self.message, self.errno = kind, message, errno


def read_piece(piece: Piece) -> tuple[bytes, set[int]]:
    """All of a piece's bytes, and the compressed frames found damaged on the way."""
    from recorder.export.writers import ExportError

    size = piece.end - piece.starts_at
    with open_segment(Path(piece.path), None if piece.fd < 0 else piece.fd) as seg:
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
    """`read_piece`, its failures as the worker's error convention has them: a read
    that fails names the segment (it is no write error, as a full disk's is)."""
    try:
        return read_piece(piece)
    except PersistError as exc:
        raise WorkerFailed("persist", str(exc)) from None
    except FileNotFoundError:
        raise WorkerFailed("persist", str(SegmentGone(Path(piece.path)))) from None
    except OSError as exc:
        name = Path(piece.path).name
        raise WorkerFailed("persist", f"cannot read {name}: {exc.strerror or exc}") from None


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

    try:
        summary = rc.summary_from(found[0].summary, job.summary())
        files = []
        for k, cached in enumerate(found):
            path = os.path.join(job.scratch, f"piece-{piece.n:06d}-{k}")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            files.append(path)
            with os.fdopen(fd, "wb") as out:
                rc.copy_out(cached, out)
    except rc.BadEntry as exc:
        for cached in found:
            with contextlib.suppress(OSError):
                cached.path.unlink()
        notes.append(f"render cache: {exc}; rendered again")
        return None
    except OSError as exc:
        raise WorkerFailed("os", exc.strerror or str(exc), exc.errno) from None
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
    )


def _render(
    job: Job, piece: Piece, days: list[str | None], records: Iterator[Record], damaged: set[int]
) -> PieceResult:
    from recorder.export.writers import WRITERS, DayWriter, write_records

    files: list[str] = []
    outs: list[IO[bytes]] = []
    try:
        for k in range(len(job.formats)):
            path = os.path.join(job.scratch, f"piece-{piece.n:06d}-{k}")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # a part a damaged cache entry left
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            files.append(path)
            outs.append(os.fdopen(fd, "wb"))
        writers = [WRITERS[fmt](out) for fmt, out in zip(job.formats, outs, strict=True)]
        for w, day in zip(writers, days, strict=True):
            if isinstance(w, DayWriter) and day is not None:
                w.continue_after(day)
        summary = job.summary()
        summary.participants_cap = PIECE_PARTICIPANTS
        write_records(records, writers, redact=job.redact, summary=summary)
        for w in writers:
            w.flush()
        for out in outs:
            out.close()
    except PersistError as exc:
        raise WorkerFailed("persist", str(exc)) from None
    except OSError as exc:
        raise WorkerFailed("os", exc.strerror or str(exc), exc.errno) from None
    finally:
        for out in outs:
            if not out.closed:
                out.close()
    return PieceResult(
        piece.n,
        files,
        [w.bytes for w in writers],
        [w.day if isinstance(w, DayWriter) else None for w in writers],
        summary,
        sorted(damaged),
    )


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
    """A worker's loop: a task in on stdin, its result out, until stdin closes. What
    the rendering code prints goes to stderr, so nothing mixes with the results."""
    results = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    tasks = sys.stdin.buffer
    while True:
        task = _receive(tasks)
        if task is None:
            return
        try:
            reply: tuple[str, Any] = ("ok", render_piece(*task))
        except WorkerFailed as exc:
            reply = ("failed", exc)
        except Exception:  # a bug: its traceback goes back, shown as one line
            reply = ("crashed", traceback.format_exc())
        _send(results, reply)


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


class _Workers:
    """`count` worker processes (`serve`), fed the tasks in turn by one thread each;
    results are taken in task order. Plain child processes (`python -c`), never a
    fork, and never a re-import of the caller's main module (which multiprocessing's
    spawn does, so a caller without a `__main__` guard would run again)."""

    def __init__(
        self,
        count: int,
        tasks: list[tuple[Job, Piece, list[str | None]]],
        fds: tuple[int, ...] = (),
    ) -> None:
        self.tasks = tasks
        self.next = 0
        self.results: dict[int, tuple[str, Any]] = {}
        self.cond = threading.Condition()
        self.stopping = False
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-c", _BOOT, json.dumps(sys.path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # never over a TUI; errors come back as results
                pass_fds=fds,  # the segments the parent holds open (`_hold`)
            )
            for _ in range(count)
        ]
        self.threads = [
            threading.Thread(target=self._feed, args=(p,), daemon=True, name="export-piece")
            for p in self.procs
        ]
        for t in self.threads:
            t.start()

    def _feed(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        while True:
            with self.cond:
                if self.stopping or self.next >= len(self.tasks):
                    break
                n = self.next
                self.next += 1
            try:
                _send(proc.stdin, self.tasks[n])
                reply = _receive(proc.stdout)
            except Exception:  # a broken pipe, a closed file, a torn message
                reply = None
            if reply is None:  # its output ended: it is exiting (its code is not yet read)
                try:
                    code: int | None = proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    code = None
                reply = ("stopped", f"a rendering worker stopped ({how_it_ended(code)})")
            with self.cond:
                self.results[n] = reply
                self.cond.notify_all()
            if reply[0] != "ok":
                break
        with contextlib.suppress(OSError):
            proc.stdin.close()

    def result(self, n: int) -> tuple[str, Any]:
        with self.cond:
            while n not in self.results:
                self.cond.wait()
            return self.results.pop(n)

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


def _close(pool: _Workers, *, abort: bool) -> None:
    """`pool.close`, which a signal's exception may cut short: then the workers are
    killed and reaped all the same, and the exception goes on."""
    try:
        pool.close(abort)
    except BaseException:
        pool.close(abort=True)
        raise


def _remove(scratch: str) -> None:
    """Remove the pieces' folder, again when a signal's exception cut that short."""
    try:
        shutil.rmtree(scratch, ignore_errors=True)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


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
    missing: Sequence[int] = (),
) -> None:
    """Records `start` to `stop` through `writers` (begun, not ended) and into
    `summary`, rendered by `workers` processes: the same bytes and the same summary
    as `write_records` over them (segments `missing` said where they stand, between
    pieces, as it says them). `after_piece` is called with each piece and its own
    summary once the piece is in the outputs, in journal order. Raises what the one
    pass would (ExportError for a journal error, OSError for a file error)."""
    from recorder.export.writers import WRITERS, DayWriter, ExportError, missing_sentence

    holes = sorted(missing)

    def say_missing(before_segment: int | None, index: int) -> None:
        """The missing segments before `before_segment` (None: all that are left),
        said by every writer, with the seqs of records `index - 1` and `index`, as
        `write_records` says them; written out before the next piece goes in."""
        run = [n for n in holes if before_segment is None or n < before_segment]
        if not run:
            return
        del holes[: len(run)]
        before = store.record(index - 1).seq if index > start else None
        after = store.record(index).seq if index < stop else None
        sentence = missing_sentence(run, before, after)
        for w in writers:
            w.missing(sentence)
            w.flush()

    parallel = parallel or Parallel()
    kinds = {cls: name for name, cls in WRITERS.items()}
    formats = tuple(kinds[type(w)] for w in writers)
    held: dict[int, int] = {}
    initial = [w.day if isinstance(w, DayWriter) else None for w in writers]
    for w in writers:
        w.flush()
    folder = scratch_folder([w.out for w in writers])
    overflow = missed = False
    before = Counter(summary.participants)
    done = 0
    pool: _Workers | None = None
    finished = False
    scratch = tempfile.mkdtemp(prefix=pieces_prefix(), dir=folder)  # its PID: see leftovers
    try:  # from here on: an interruption (SIGTERM, Ctrl-C) anywhere removes `scratch`
        pieces = _hold(store, plan(store, start, stop, parallel.piece_bytes), held)
        job = Job(formats, redact, type(summary), scratch, _cache_folder(store, summary, redact))
        tasks = []
        days, floor = initial, start
        for piece in pieces:  # each scan stops where the one before began: linear
            days = [
                None if d is None else day_before(store, w, piece.index, floor, d)
                for w, d in zip(writers, days, strict=True)
            ]
            floor = piece.index
            tasks.append((job, piece, days))
        pool = _Workers(min(workers, len(pieces)), tasks, tuple(held.values()))
        for piece in pieces:
            say_missing(piece.segment, piece.index)
            status, result = pool.result(piece.n)
            if status == "failed":
                if result.kind == "os":
                    raise OSError(result.errno, result.message)
                raise ExportError(result.message)
            if status != "ok":
                lines = str(result).strip().splitlines()
                raise ExportError(lines[-1] if lines else "a rendering worker failed")
            for w, path, size, day in zip(
                writers, result.files, result.sizes, result.days, strict=True
            ):
                _append(path, w.out, size)
                w.bytes += size
                if isinstance(w, DayWriter) and day is not None:
                    w.continue_after(day)
                os.unlink(path)
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
        say_missing(None, stop)
        finished = True
    finally:  # a signal in here (SIGTERM, Ctrl-C) must not leave workers or `scratch`
        try:
            if pool is not None:
                _close(pool, abort=not finished)
        finally:
            for fd in held.values():
                os.close(fd)
            _remove(scratch)
    if missed and job.cache is not None:  # the indexer renders this kind from now on
        from recorder.export import render_cache

        for fmt in formats:
            render_cache.want(Path(job.cache), fmt, redact)
    if overflow:  # a piece gave up counting participants: count them in one pass
        exact = RangeSummary()
        exact.participants = before
        summarize(store.records(start, stop), exact)
        summary.participants = exact.participants


def _hold(store: Store, pieces: list[Piece], held: dict[int, int]) -> list[Piece]:
    """The pieces, each with a descriptor of its segment as `store` opened it when it
    indexed it (one per segment, kept in `held` by number; the caller closes them):
    workers read those, so a segment pruned into the trash (or compressed) while the
    rendering runs is read as it was planned. `SegmentGone` names one the store had not
    opened and that is gone."""
    paths: dict[int, str] = {}
    for piece in pieces:
        if piece.segment not in held:
            seg = next((s for s in store.segments if s.number == piece.segment), None)
            if seg is None:  # left the view since it was planned (a refresh elsewhere)
                raise SegmentGone(Path(piece.path))
            f = seg.file
            held[piece.segment], paths[piece.segment] = os.dup(f.fd), str(f.path)
    return [dataclasses.replace(p, fd=held[p.segment], path=paths[p.segment]) for p in pieces]


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
            write_whole(out, data)  # a raw stdout (`python -u`) may take part
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
