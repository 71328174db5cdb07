"""A healthy log folder for the doctor and backup tests: several segments (closed ones
over 1 MiB, so they get line-index caches), digest caches, checkpoints in a base chain,
a search index level with the journal, a protected agent-session copy, and a status
file of a live recorder (this test process)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from recorder.search.indexer import Indexer
from recorder.sources.copies import protect
from recorder.sources.discover import Roots, scan
from recorder.store.checkpoints import Checkpoint, write_checkpoint
from recorder.store.layout import Layout, list_segments
from recorder.store.reader import Store
from recorder.store.status import StatusSnapshot, process_start_time
from tests.demo_journal import DemoWriter, healthy_status
from tests.session_fixtures import ClaudeSession, text

SEGMENT_BYTES = 1_100_000


@dataclass
class Folder:
    root: Path
    layout: Layout
    checkpoints: list[Checkpoint]
    units: Path  # an empty systemd unit folder (never the machine's own)


def add_messages(w: DemoWriter, count: int, t: float, start: int = 0) -> float:
    for i in range(start, start + count):
        t += 0.5
        w.message(t, ("planner", "coder")[i % 2], f"message {i} " + "lorem ipsum " * 80)
    return t


def checkpoint(w: DemoWriter, label: str, base: Checkpoint | None) -> Checkpoint:
    pos = w.journal.flush()
    return write_checkpoint(
        w.layout,
        segment=pos.segment,
        offset=pos.offset,
        seq=pos.seq,
        messages=pos.messages,
        label=label,
        reason="manual",
        digests=w.digests,
        base=base,
    )


def healthy_folder(tmp: Path, *, messages: int = 2400, session: bool = True) -> Folder:
    root = tmp / "logs"
    now = time.time()
    w = DemoWriter.open(root, segment_bytes=SEGMENT_BYTES)
    t = now - 3600
    cps: list[Checkpoint] = []
    step = messages // 3
    for n in range(3):
        t = add_messages(w, step, t, n * step)
        cps.append(checkpoint(w, f"cp {n}", cps[-1] if cps else None))
    w.close()
    layout = Layout(root)
    assert len(list_segments(layout)) >= 3
    with Store(root) as store:  # line-index caches of the closed segments
        store.refresh()
    if session:
        claude = tmp / "claude"
        s = ClaudeSession(claude)
        s.user("hello")
        s.assistant(text("hi there"))
        s.write()
        [found] = scan(Roots(claude, None, None)).sessions
        protect(layout, found)
    indexer = Indexer(root, Roots(None, None, None))
    indexer.catch_up()
    indexer.close()
    mark_running(root)
    units = tmp / "units"
    units.mkdir()
    return Folder(root, layout, cps, units)


def mark_running(root: Path, age: float = 0.4) -> None:
    """A status.json of a recorder that is this very process, written `age` s ago."""
    pid = os.getpid()
    status = healthy_status(root, time.time() - age + 0.4, pid, process_start_time(pid) or 0.0)
    StatusSnapshot.from_json(status).write(Layout(root))
