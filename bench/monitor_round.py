"""The session monitor's round against a long history of checkpoints.

    .venv/bin/python bench/monitor_round.py [--checkpoints 5000] [--sessions 20] [--runs 5]

A log folder with CHECKPOINTS checkpoint files (the journal's and the sessions', as a
recorder and its monitor leave them after months) and SESSIONS Claude Code sessions
that changed nothing since their last checkpoint (the common round: every one waits).
Ours: one `Monitor` whose rounds follow each other (it keeps what it read: a round
reads only the checkpoints written since the last). Baseline: each round reading every
checkpoint file again, as a round did before 2026-12-07 (a `SessionCheckpoints` made
anew per round, which is what `Monitor.tick` did). Both in this process, alternating,
best of RUNS; the scan of the agents' folders (cached) is in both.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recorder.sources.discover import Roots
from recorder.sources.monitor import Monitor, MonitorSettings, SessionCheckpoints
from recorder.store.checkpoints import write_checkpoint
from recorder.store.layout import Layout
from tests.session_fixtures import ClaudeSession, text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoints", type=int, default=5000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="persist-monitor-") as tmp:
        root = Path(tmp)
        for i in range(args.sessions):
            s = ClaudeSession(root / "claude", cwd=f"/home/me/p{i}")
            s.user(f"task {i}")
            s.assistant(text("ok"))
            s.write()
        layout = Layout(root / "log")
        roots = Roots(root / "claude", None, None)
        settings = MonitorSettings(idle_minutes=1, cooldown_minutes=0)
        now = time.time() + 3600
        ours = Monitor(roots, layout, settings)
        ours.tick(now)  # each session checkpointed once
        for k in range(args.checkpoints - args.sessions):
            write_checkpoint(
                layout, segment=0, offset=0, seq=k + 1, messages=0, label=f"j{k}", reason="bench"
            )
        ours.tick(now)  # the first round after them reads them all, once
        base = Monitor(roots, layout, settings)
        ours_s, base_s = [], []
        for _ in range(args.runs):
            t = time.perf_counter()
            base.known = None  # as before: every round read checkpoints/ whole
            base.tick(now)
            base_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            ours.tick(now)
            ours_s.append(time.perf_counter() - t)
        assert isinstance(ours.known, SessionCheckpoints)
        b, o = min(base_s), min(ours_s)
        print(
            f"monitor round, {args.checkpoints:,} checkpoints, {args.sessions} sessions "
            f"unchanged: ours {o * 1000:.1f} ms, every file read again {b * 1000:.1f} ms, "
            f"ratio {o / b:.3f} (best of {args.runs})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
