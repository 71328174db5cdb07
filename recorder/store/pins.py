"""Pinned checkpoints: retention never deletes them, nor the journal range they need.

Pins live in one small file, `retention/pins.json` (atomic writes, under the
retention lock), not in the checkpoint files. A checkpoint file is a record of a
point in the journal with a digest that later checkpoints reference by id
(`digest.base`); rewriting it to flip a flag would put the recorder's checkpoint
writes and a person's pin in a race over the same file, and a pin would change a
file that is otherwise never changed. A pin naming a checkpoint that is gone
(deleted by hand) is shown as such and ignored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson

from recorder.store.fsutil import atomic_write, ensure_private_dir
from recorder.store.layout import Layout
from recorder.store.pruned import retention_lock


@dataclass(frozen=True)
class Pin:
    checkpoint: str  # the checkpoint's id
    pinned: float  # when


def read_pins(layout: Layout) -> dict[str, Pin]:
    """Checkpoint id -> its pin ({} when none, or when the file cannot be read)."""
    try:
        data = orjson.loads(layout.pins.read_bytes())
    except (OSError, ValueError):
        return {}
    pins = data.get("pins") if isinstance(data, dict) else None
    if not isinstance(pins, dict):
        return {}
    out: dict[str, Pin] = {}
    for cp_id, entry in pins.items():
        when = entry.get("pinned") if isinstance(entry, dict) else None
        if isinstance(when, (int, float)):
            out[cp_id] = Pin(cp_id, float(when))
    return out


def _write(layout: Layout, pins: dict[str, Pin]) -> None:
    ensure_private_dir(layout.retention)
    body = {"v": 1, "pins": {k: {"pinned": pins[k].pinned} for k in sorted(pins)}}
    atomic_write(layout.pins, orjson.dumps(body, option=orjson.OPT_INDENT_2))


def set_pin(layout: Layout, checkpoint_id: str, pinned: bool, now: float | None = None) -> bool:
    """Pin or unpin; returns whether anything changed (pinning twice changes nothing)."""
    with retention_lock(layout):
        pins = read_pins(layout)
        if pinned == (checkpoint_id in pins):
            return False
        if pinned:
            pins[checkpoint_id] = Pin(checkpoint_id, time.time() if now is None else now)
        else:
            del pins[checkpoint_id]
        _write(layout, pins)
        return True
