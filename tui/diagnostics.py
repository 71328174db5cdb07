"""Recorder health for the diagnostics view: status file + psutil + disk (no Textual)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from recorder.store.checkpoints import last_checkpoint
from recorder.store.layout import Layout
from recorder.store.status import CheckpointRef, Health, HolderUnknown, StatusSnapshot, assess

UNKNOWN = "unknown"


@dataclass(frozen=True)
class HealthUnknown:
    """Whether a recorder runs cannot be told: the folder's status and lock file may not
    be read (it became another user's), or the sample failed; `reason` says why. Shown
    as such, never as the last health read (before 2026-12-08 the top bar and
    Diagnostics went on saying "healthy")."""

    reason: str
    state: ClassVar[str] = UNKNOWN


def sense_health(
    layout: Layout, now: float, monotonic: float | None = None
) -> Health | HealthUnknown:
    """`assess`, or why it cannot tell whether a recorder runs."""
    try:
        return assess(layout, now, monotonic)
    except HolderUnknown as exc:
        return HealthUnknown(str(exc))
    except OSError as exc:  # a part of the folder it looks at may not be read
        return HealthUnknown(f"cannot read {layout.root}: {exc}")


@dataclass
class ProcessInfo:
    pid: int
    uptime: float | None = None
    cpu_percent: float | None = None
    rss: int | None = None
    open_files: int | None = None
    threads: int | None = None


@dataclass
class Diagnostics:
    """One sample of everything the diagnostics view shows."""

    now: float
    log_dir: Path
    health: Health | HealthUnknown
    process: ProcessInfo | None = None
    disk_used: int | None = None
    disk_free: int | None = None
    disk_total: int | None = None
    rate: float | None = None
    # damage the journal's index shows (missing segments, torn tails, damaged compressed
    # frames), one sentence each; None: not looked at (no journal yet)
    journal_damage: list[str] | None = None
    # the newest checkpoint: status.json's, or a newer one in checkpoints/ (one taken
    # while no recorder ran, or status.json deleted)
    last_checkpoint: CheckpointRef | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> StatusSnapshot | None:
        return self.health.status if isinstance(self.health, Health) else None

    @property
    def running(self) -> bool:
        """Whether a recorder is known to run (not when that cannot be told)."""
        return isinstance(self.health, Health) and self.health.running

    @property
    def start_command(self) -> str | None:
        """What starts the recorder, when one is known not to run."""
        health = self.health
        if not isinstance(health, Health) or health.running:
            return None
        return health.start_command(self.log_dir)


def folder_bytes(root: Path) -> int:
    """Disk space used by a folder tree (allocated blocks, symlinks not followed)."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            total += st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size
    return total


class Probe:
    """Samples diagnostics; keeps the psutil handle so CPU % is measured between samples."""

    def __init__(self, monotonic: Callable[[], float | None] | None = None) -> None:
        self._proc: Any = None
        self._pid: int | None = None
        # the system's monotonic clock, read with each sample's `now` (see `assess`);
        # None: `now` alone (a test's clock)
        self._monotonic = monotonic

    def _process(self, pid: int, started: float | None, now: float) -> ProcessInfo:
        import psutil

        info = ProcessInfo(pid)
        try:
            if self._pid != pid or self._proc is None:
                self._proc = psutil.Process(pid)
                self._pid = pid
                self._proc.cpu_percent(None)
            proc = self._proc
            with proc.oneshot():
                info.cpu_percent = proc.cpu_percent(None)
                info.rss = proc.memory_info().rss
                info.threads = proc.num_threads()
                info.uptime = now - (started or proc.create_time())
                try:
                    info.open_files = proc.num_fds()
                except (AttributeError, psutil.AccessDenied):
                    info.open_files = len(proc.open_files())
        except (psutil.NoSuchProcess, psutil.AccessDenied, OSError):
            self._proc = None
            self._pid = None
        return info

    def collect(self, log_dir: Path, now: float) -> Diagnostics:
        layout = Layout(Path(log_dir))
        health = sense_health(layout, now, self._monotonic() if self._monotonic else None)
        diag = Diagnostics(now, Path(log_dir), health)
        if isinstance(health, HealthUnknown):  # nothing else in the folder can be read
            return diag
        status = health.status
        diag.last_checkpoint = last_checkpoint(
            layout, status.last_checkpoint if status is not None else None
        )
        if health.running and health.pid:
            started = status.process_started if status is not None else None
            diag.process = self._process(health.pid, started, now)
        # a stale or stopped recorder's rate is its last, not the present
        diag.rate = status.rates.received_per_s if status is not None and health.current else None
        if layout.root.is_dir():
            diag.disk_used = folder_bytes(layout.root)
            try:
                usage = shutil.disk_usage(layout.root)
                diag.disk_free, diag.disk_total = usage.free, usage.total
            except OSError:
                pass
        return diag
