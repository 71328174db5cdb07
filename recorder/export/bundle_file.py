"""A file of a restore bundle, written once: private, hashed as it is written
(SHA-256, as the manifest describes it), copied into in the kernel where it can be
(`sendfile`), and durable when asked, written back as it grows. No zmq, no textual.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from array import array
from pathlib import Path
from typing import Any

from recorder.export.continuation import StaleBundle
from recorder.export.writers import ExportError
from recorder.store.fsutil import NO_KERNEL_COPY, open_private, open_regular
from recorder.store.segfile import open_segment

_COPY_CHUNK = 1 << 20  # bytes per kernel copy, read back once to be hashed
_WRITE_BACK = 64 << 20  # a durable bundle file is synced in the background this often


class BundleFile:
    """A private file that hashes what goes into it. Bytes given to `write` are hashed
    as they go; `copy_range` copies inside the kernel and hashes what landed in the
    file, read back through one reused buffer (never the bytes through Python twice)."""

    def __init__(self, path: Path, durable: bool) -> None:
        self.path = path
        self.fd = open_private(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        self.hasher = hashlib.sha256()
        self.size = 0
        self.durable = durable
        self._buffer: memoryview | None = None
        self._kernel_copy = True  # until the file system says it cannot
        self._synced = 0  # bytes handed to a background fdatasync
        self._syncer: threading.Thread | None = None
        self._sync_error: OSError | None = None

    body: tuple[int, int, str] | None = None  # (start, end, SHA-256 of bytes 0 to end)
    _body_start: int | None = None

    def start_body(self) -> None:
        """Mark where the body begins (what a later bundle copies from this one)."""
        self._body_start = self.size

    def end_body(self) -> None:
        """Mark where it ends, with the digest of everything up to here: the same one
        pass of SHA-256 as the whole file's (a digest of the body alone was a second
        pass over the largest part of the largest file)."""
        if self._body_start is not None:
            self.body = (self._body_start, self.size, self.hasher.copy().hexdigest())

    def write(self, data: bytes | memoryview) -> int:
        self.hasher.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        self.size += len(data)
        self._write_back()
        return len(data)

    def _write_back(self) -> None:
        """A durable file's bytes go to the disk while the rest is written (a thread
        that calls fdatasync every `_WRITE_BACK` bytes), so `close` waits for the last
        of them only, not for gigabytes. A failure is raised by `close`: Linux reports
        a write-back error once, to whichever sync comes first."""
        if not self.durable or self.size - self._synced < _WRITE_BACK:
            return
        if self._syncer is not None:
            if self._syncer.is_alive():
                return
            self._syncer.join()
        self._synced = self.size

        def sync() -> None:
            try:
                os.fdatasync(self.fd)
            except OSError as exc:
                self._sync_error = self._sync_error or exc

        self._syncer = threading.Thread(target=sync, name="bundle-write-back", daemon=True)
        self._syncer.start()

    def copy_range(self, src: int, offset: int, count: int, also: Any = None) -> int:
        """Append up to `count` bytes of file `src` from `offset`; returns how many
        (fewer only where `src` ends). `also`: another hasher given the same bytes."""
        if self._buffer is None:
            self._buffer = memoryview(bytearray(_COPY_CHUNK))
        done = 0
        while done < count:
            want = min(_COPY_CHUNK, count - done)
            if self._kernel_copy:
                try:
                    n = os.sendfile(self.fd, src, offset + done, want)
                except OSError as exc:
                    if exc.errno not in NO_KERNEL_COPY:
                        raise
                    self._kernel_copy = False  # read and written from here on
                    continue
                if n and os.preadv(self.fd, [self._buffer[:n]], self.size) != n:
                    raise OSError(errno.EIO, f"{self.path.name} lost bytes just copied into it")
                self.hasher.update(self._buffer[:n])
                self.size += n
                self._write_back()
            else:
                n = os.preadv(src, [self._buffer[:want]], offset + done)
                self.write(self._buffer[:n])
            if also is not None:
                also.update(self._buffer[:n])
            if not n:
                break
            done += n
        return done

    def copy_checked(
        self, src: Path, start: int, end: int, sha256: str, hashed_from: int | None = None
    ) -> None:
        """Append bytes `start` to `end` of an earlier bundle's file `src`, checking the
        SHA-256 of its bytes `hashed_from` (default: `start`) to `end`; StaleBundle if
        it differs (what was written then must be thrown away). Copied in the kernel;
        when the copy is this file's first bytes, its own digest is the check."""
        first = start if hashed_from is None else min(hashed_from, start)
        own = first == start and self.size == 0
        checker = None if own else hashlib.sha256()
        try:
            fd = open_regular(src)[0]  # a named pipe there is never waited on
            try:
                if checker is not None and first < start:
                    head = os.pread(fd, start - first, first)
                    checker.update(head)
                    if len(head) != start - first:
                        raise StaleBundle(f"{src.name} is shorter than its manifest says")
                copied = self.copy_range(fd, start, end - start, also=checker)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StaleBundle(f"{src.name} cannot be read ({exc.strerror or exc})") from None
        if copied != end - start:
            raise StaleBundle(f"{src.name} is shorter than its manifest says")
        digest = (self.hasher.copy() if checker is None else checker).hexdigest()
        if digest != sha256:
            raise StaleBundle(f"{src.name} differs from its manifest")

    def copy_lines(
        self,
        path: Path,
        number: int,
        start: int,
        end: int,
        skip: array[int],
        instead: dict[tuple[int, int], bytes],
        fd: int = -1,
    ) -> None:
        """Append bytes `start` to `end` of segment `number` (file `path`, or `fd`, the
        file it named held open: read though it was pruned since), less the
        spans (segment, start, end) of `skip` that lie there, each replaced by
        `instead[segment, start]` when it has an entry: whole lines as stored, copied
        in the kernel when the segment is plain. ExportError if it holds fewer."""
        parts: list[tuple[int, int] | bytes] = []
        at = start
        for k in range(0, len(skip), 3):
            if skip[k] == number and start <= skip[k + 1] < end:
                parts.append((at, skip[k + 1]))
                line = instead.get((number, skip[k + 1]))
                if line is not None:
                    parts.append(line)
                at = skip[k + 2]
        parts.append((at, end))
        with open_segment(path, None if fd < 0 else fd) as seg:
            for part in parts:
                if isinstance(part, bytes):
                    self.write(part)
                    continue
                a, b = part
                if a >= b:
                    continue
                if seg.compressed:
                    for block in seg.chunks(a, b):
                        self.write(block)
                elif self.copy_range(seg.fd, a, b - a) != b - a:
                    raise ExportError(
                        f"{path.name} is shorter than when the export began "
                        "(changed while it was being read)"
                    )

    def close(self) -> None:
        """Close the file, durable when asked (OSError if a sync failed)."""
        if self.fd < 0:
            return
        try:
            if self._syncer is not None:
                self._syncer.join()
            if self._sync_error is not None:
                raise self._sync_error
            if self.durable:
                os.fsync(self.fd)
        finally:
            os.close(self.fd)
            self.fd = -1

    def describe(self, **extra: Any) -> dict[str, Any]:
        out = {"name": self.path.name, "bytes": self.size, "sha256": self.hasher.hexdigest()}
        if self.body is not None:
            start, end, digest = self.body
            out["body"] = {"start": start, "end": end, "prefix_sha256": digest}
        return out | extra
