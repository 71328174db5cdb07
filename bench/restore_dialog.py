#!/usr/bin/env python3
"""The restore dialog's integrity check on a large journal: ours against the check it
ran before 2026-12-06, in the same run.

    .venv/bin/python bench/restore_dialog.py --journal DIR [--runs 3]

DIR is a journal built by `bench/costs_journal.py` (e.g. /tmp/persist-costs/j1000000-
scanned, 1,000,000 messages). For its newest checkpoint:

* ours: `check_range(store, cp, BundleScope())`, what the dialog runs now: the range a
  default bundle hands over (the last 1000 messages) re-hashed and scanned, the
  segments before it checked by the digest cache, as `persist restore` checks them;
* baseline: what the dialog ran before: `verify_checkpoint` (every segment re-hashed)
  and one pass over every record up to the checkpoint.

The confirm button stays greyed out until the check is done. Each run opens the store
anew; runs alternate baseline / ours; the best of each is printed with the ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recorder.export.restore import RangeIntegrity, check_range, journal_damage  # noqa: E402
from recorder.export.scope import BundleScope  # noqa: E402
from recorder.store.checkpoints import list_checkpoints, verify_checkpoint  # noqa: E402
from recorder.store.layout import Layout  # noqa: E402
from recorder.store.ranges import journal_range, summarize  # noqa: E402
from recorder.store.reader import open_store  # noqa: E402


def ours(root: Path) -> tuple[float, int]:
    with open_store(root) as store:
        cp = max(list_checkpoints(Layout(root)), key=lambda c: c.seq)
        t0 = time.perf_counter()
        result = check_range(store, cp, BundleScope())
        took = time.perf_counter() - t0
    assert result is not None
    return took, result.messages


def baseline(root: Path) -> tuple[float, int]:
    with open_store(root) as store:
        layout = Layout(root)
        cp = max(list_checkpoints(layout), key=lambda c: c.seq)
        t0 = time.perf_counter()
        verify_checkpoint(layout, cp)
        result = RangeIntegrity(expected_messages=cp.messages)
        rng = journal_range(store, None, cp)
        result.damage = journal_damage(store, rng, writer_running=True)
        summarize(store.records(rng.start, rng.stop), result)
        took = time.perf_counter() - t0
    return took, result.messages


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--journal", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    base, mine = [], []
    for _ in range(args.runs):
        base.append(baseline(args.journal))
        mine.append(ours(args.journal))
    b, o = min(base), min(mine)
    print(f"journal {args.journal}, newest checkpoint, best of {args.runs}")
    print(f"  baseline (whole journal): {b[0]:7.2f} s  ({b[1]:,} messages read)")
    print(f"  ours (the bundle's range): {o[0]:7.2f} s  ({o[1]:,} messages read)")
    print(f"  baseline / ours: {b[0] / o[0]:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
