"""Pinned checkpoints: retention never deletes them, nor the journal range they need.

Pins live in one small file, `retention/pins.json` (atomic writes, under the
retention lock), not in the checkpoint files. A checkpoint file is a record of a
point in the journal with a digest that later checkpoints reference by id
(`digest.base`); rewriting it to flip a flag would put the recorder's checkpoint
writes and a person's pin in a race over the same file, and a pin would change a
file that is otherwise never changed. A pin naming a checkpoint that is gone
(deleted by hand) is shown as such and ignored.

A pin is written only when its checkpoint is in `checkpoints/` under the retention
lock: a prune that took it while `persist pin` waited for the lock is said, and the
pin refused (`PinRefused`). A pinned checkpoint found in the trash (a prune before
2026-12-07 could take one so) is never emptied (`trash.pinned_entries`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson

from recorder.errors import CheckpointError, PersistError
from recorder.store.fsutil import NotRegularFile, atomic_write, ensure_private_dir
from recorder.store.layout import Layout
from recorder.store.pruned import read_retention_file, retention_lock
from recorder.store.shell import shell_quote


@dataclass(frozen=True)
class Pin:
    checkpoint: str  # the checkpoint's id
    pinned: float  # when


class PinsUnreadable(PersistError):
    """`retention/pins.json` is there but cannot be read or is not a pins file: which
    checkpoints are pinned is unknown, so nothing that deletes or rewrites pins goes on
    (prune, the recorder's retention, pin, unpin) until it is fixed or moved aside."""

    def __init__(self, layout: Layout, why: str) -> None:
        super().__init__(
            f"{layout.pins} {why}: which checkpoints are pinned is unknown, so pruning and "
            f"pinning refuse until it is fixed (or moved aside, dropping every pin: "
            f"`mv {shell_quote(str(layout.pins))} {shell_quote(str(layout.recovery))}/`, "
            "then pin again)"
        )


def read_pins(layout: Layout) -> dict[str, Pin]:
    """Checkpoint id -> its pin ({} when there is no pins file). Raises PinsUnreadable
    when there is one that cannot be read or holds anything but pins: a pin silently
    lost would let retention delete what it protects."""
    try:
        raw = read_retention_file(layout.pins)  # a named pipe there is never waited on
        if raw is None:
            return {}
        data = orjson.loads(raw)
    except NotRegularFile as exc:
        raise PinsUnreadable(layout, f"is {exc.strerror}") from None
    except OSError as exc:
        raise PinsUnreadable(layout, f"cannot be read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise PinsUnreadable(layout, f"is not JSON ({exc})") from None
    pins = data.get("pins") if isinstance(data, dict) else None
    if not isinstance(pins, dict):
        raise PinsUnreadable(layout, 'is not a pins file (no "pins" object)')
    out: dict[str, Pin] = {}
    for cp_id, entry in pins.items():
        when = entry.get("pinned") if isinstance(entry, dict) else None
        if not isinstance(when, int | float) or isinstance(when, bool):
            raise PinsUnreadable(layout, f"has a pin of {cp_id!r} without a time")
        out[cp_id] = Pin(cp_id, float(when))
    return out


class PinRefused(CheckpointError):
    """The checkpoint to pin is no longer in `checkpoints/` (a prune took it, or it was
    removed) when the pin would be written: nothing is pinned."""


def _still_there(layout: Layout, checkpoint_id: str) -> None:
    """PinRefused unless the checkpoint's file is in `checkpoints/` (the caller holds
    the retention lock, so no prune can take it before the pin is written)."""
    if (layout.checkpoints / f"{checkpoint_id}.json").is_file():
        return
    from recorder.store.trash import list_trash  # (trash -> retention -> pins)

    name = f"{checkpoint_id}.json"
    for entry in reversed(list_trash(layout)):  # the newest entry that took it
        if any(f.get("kind") == "checkpoint" and f.get("name") == name for f in entry.files):
            raise PinRefused(
                f"not pinned: a prune moved {checkpoint_id} to trash/{entry.id} before the "
                f"pin could be written; `persist trash restore {entry.id}` puts it back, "
                "then pin it again"
            )
    raise PinRefused(
        f"not pinned: {checkpoint_id} is no longer in {layout.checkpoints} (removed "
        "before the pin could be written)"
    )


def _write(layout: Layout, pins: dict[str, Pin]) -> None:
    ensure_private_dir(layout.retention)
    body = {"v": 1, "pins": {k: {"pinned": pins[k].pinned} for k in sorted(pins)}}
    atomic_write(layout.pins, orjson.dumps(body, option=orjson.OPT_INDENT_2))


def set_pin(layout: Layout, checkpoint_id: str, pinned: bool, now: float | None = None) -> bool:
    """Pin or unpin; returns whether anything changed (pinning twice changes nothing).
    PinRefused when the checkpoint to pin is no longer there once the lock is held
    (the caller resolved it before: a prune holding the lock may have taken it)."""
    with retention_lock(layout):
        pins = read_pins(layout)
        if pinned == (checkpoint_id in pins):
            return False
        if pinned:
            _still_there(layout, checkpoint_id)
            pins[checkpoint_id] = Pin(checkpoint_id, time.time() if now is None else now)
        else:
            del pins[checkpoint_id]
        _write(layout, pins)
        return True
