"""How long a recorder takes to open a big journal after a crash: ours against a full index.

    .venv/bin/python bench/restart.py [--messages N] [--runs N]

Uses the journal bench/tui_open.py builds (1,000,000 messages, ~0.9 GiB, a
checkpoint every 10,000; built once under bench/out/). Each measurement runs
`Recorder.open()` in a fresh interpreter, then records nothing and leaves
without a clean stop (as a SIGKILL would), so every run is a crash restart:
- ours: catching up reads only the segments from the recovery state (or, without
  one, the newest checkpoint) on;
- baseline, in the same run: the same start-up indexing every segment of the
  journal, as it did before (the recovery pass given a store of all segments).
Runs alternate between the two; medians and worst are printed, with the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

CHILD = r"""
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from recorder.daemon import recovery
from recorder.daemon.core import Recorder
from recorder.daemon.options import RecorderOptions
from recorder.store.reader import Store

if sys.argv[2] == "baseline":
    class WholeStore(Store):
        def __post_init__(self):
            super().__post_init__()
            self.first_segment = 0   # index every segment, as start-up did before
    recovery.Store = WholeStore
imported = time.perf_counter()
rec = Recorder(RecorderOptions(log_dir=Path(sys.argv[1]), checkpoint_interval=0))
rec.open()
opened = time.perf_counter()
rec.journal.sink.start()
rec.journal.sync()
rec.tick(time.time())
rec.write_state(time.time())  # the state a running recorder leaves behind
rec.journal.close()  # no clean stop
print(json.dumps({"open_s": opened - imported, "messages": rec.journal.messages}))
"""


def run(root: Path, variant: str) -> dict[str, float]:
    from tui_open import child  # one way to run a measurement in a fresh interpreter

    return child(CHILD, str(root), variant)


def main() -> int:
    from tui_open import build

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args()
    root = args.out / f"journal-{args.messages}"
    build(root, args.messages)
    size = sum(p.stat().st_size for p in (root / "segments").iterdir())
    run(root, "ours")  # leaves a recovery state behind, as a running recorder does
    times: dict[str, list[float]] = {"ours": [], "baseline": []}
    for _ in range(args.runs):
        for variant in ("ours", "baseline"):
            result = run(root, variant)
            times[variant].append(result["open_s"])
    print(f"journal: {size / 2**30:.2f} GiB, {len(list((root / 'segments').iterdir()))} segments")
    for variant, ts in times.items():
        print(
            f"{variant:>8}: Recorder.open() median {statistics.median(ts) * 1000:.0f} ms, "
            f"worst {max(ts) * 1000:.0f} ms over {len(ts)} crash restarts"
        )
    ratio = statistics.median(times["baseline"]) / statistics.median(times["ours"])
    print(f"baseline / ours: {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
