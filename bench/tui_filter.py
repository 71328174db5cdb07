"""The Recent pane's bookkeeping filter on a big journal: how long until it is ready.

    .venv/bin/python bench/tui_filter.py --journal DIR [--baseline-ref REF] [--runs 2]

DIR is a log folder as the recorder leaves it (e.g. `bench/tui_cold.py`'s
`<work>/recorded`: closed segments compressed, their line index caches written). It is
copied (segments hard-linked, never written; `metadata_index/` copied, since the runs
write to it) and opened headless at 120x36 in a fresh interpreter per run, timed from
interpreter start to the first screen and to the filter being ready (the list that
hides heartbeats, events and segment starts), with the CPU time spent in between:

* baseline: the code at REF (default `385ebd9`, before the marks), from a `git archive`
  of it, which reads every record of the journal to find the bookkeeping;
* ours, first open: no `.marks` files yet (a journal the recorder left before it wrote
  them): every closed segment searched once, and its marks written;
* ours: the marks in place (what the recorder writes for each closed segment).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.baseline import extract  # noqa: E402

CHILD = r"""
import time, sys
t0 = time.perf_counter()
import asyncio, json
from pathlib import Path
from tui.app import create_app
from tui.panes.recent import RecentPane

async def main():
    app = create_app(Path(sys.argv[1]), live=False)
    async with app.run_test(size=(120, 36)) as pilot:
        while app.ready_at is None:
            await asyncio.sleep(0.005)
        cpu = time.process_time()
        pane = app.screen.query_one(RecentPane)
        while pane.record_filter is None:
            await asyncio.sleep(0.01)
        done = time.perf_counter()
        result = {"ready_s": app.ready_at - t0, "filter_s": done - t0,
                  "filter_cpu_s": time.process_time() - cpu, "shown": len(pane.record_filter)}
        app.exit()
    print(json.dumps(result))

asyncio.run(main())
"""


def copy_folder(src: Path, dst: Path) -> None:
    """Segments hard-linked (never written), everything else copied."""
    shutil.copytree(src, dst, copy_function=os.link, ignore=shutil.ignore_patterns("*.lock"))
    shutil.rmtree(dst / "metadata_index", ignore_errors=True)
    if (src / "metadata_index").is_dir():
        shutil.copytree(src / "metadata_index", dst / "metadata_index")


def run(code_root: Path, folder: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder)],
        capture_output=True, text=True, cwd=code_root, timeout=1800,
        env={**os.environ, "PYTHONPATH": str(code_root)},
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journal", type=Path, required=True)
    parser.add_argument("--baseline-ref", default="385ebd9")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="persist-bench-filter-") as tmp:
        work = Path(tmp)
        base_code = extract(args.baseline_ref, work / "baseline-code")
        results: dict[str, list[dict[str, float]]] = {}
        for n in range(args.runs):
            for name, code in (("baseline", base_code), ("ours, first open", ROOT)):
                folder = work / f"{n}-{name.split(',')[0]}"
                copy_folder(args.journal, folder)
                for marks in (folder / "metadata_index").glob("*.marks"):
                    marks.unlink()
                results.setdefault(name, []).append(run(code, folder))
                if code is ROOT:  # the same folder again, its marks now written
                    results.setdefault("ours", []).append(run(ROOT, folder))
                shutil.rmtree(folder)
        shown = {r["shown"] for runs in results.values() for r in runs}
        for name, runs in results.items():
            each = ", ".join(f"{r['filter_s']:.2f}" for r in runs)
            print(
                f"{name:16s} first screen {statistics.median(r['ready_s'] for r in runs):5.2f} s"
                f" · filter ready {statistics.median(r['filter_s'] for r in runs):6.2f} s"
                f" (runs {each}),"
                f" CPU meanwhile {statistics.median(r['filter_cpu_s'] for r in runs):6.2f} s"
            )
        base = statistics.median(r["filter_s"] for r in results["baseline"])
        ours = statistics.median(r["filter_s"] for r in results["ours"])
        print(f"baseline / ours (filter ready): {base / ours:.1f}x; rows shown: {shown}")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
