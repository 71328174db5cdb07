"""persist-tui's first screen on a big journal that no reader has opened before.

    .venv/bin/python bench/tui_cold.py --journal DIR [--runs 3] [--work DIR] [--baseline-ref REF]

DIR is a journal built by `bench/costs_journal.py` (e.g. 3,000,000 messages). Two
copies of its folder are made under --work (segments hard-linked, never written):

* baseline, "no cache": the folder as a writer without the recorder leaves it, no line
  index cache at all (what every first open paid before the recorder kept them warm);
* ours, "as the recorder leaves it": a real `persist record` (defaults: closed segments
  compressed and their line index caches written by its background thread, at idle
  priority) ran on the folder until that work was done, then stopped.

With --baseline-ref, each run also opens the recorder's folder with the code at REF
(a `git archive` of it): the same folder, this code against that one, same minutes.

Each run opens the real app headless at 120x36 in a fresh interpreter and times from
interpreter start to the first screen with checkpoints and recent messages (RSS then;
the harness waits with plain sleeps, since `pilot.pause` runs a refresh cycle each
time and that competes with the opening for the GIL, which no terminal does);
the baseline's caches are removed before each of its runs (its first open writes
them). Runs alternate baseline / ours.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.baseline import extract  # noqa: E402

CHILD = r"""
import time, sys
t0 = time.perf_counter()
import asyncio, json
from pathlib import Path
import psutil
from tui.app import create_app

async def main():
    app = create_app(Path(sys.argv[1]), live=False)
    async with app.run_test(size=(120, 36)) as pilot:
        while app.ready_at is None:  # a plain sleep: pilot.pause would run a refresh
            await asyncio.sleep(0.005)  # cycle each time, competing with the opening
        ready = app.ready_at - t0
        rss = psutil.Process().memory_info().rss
        records = len(app.journal.store) if app.journal.store is not None else 0
        app.exit()
    print(json.dumps({"ready_s": ready, "rss_mb": rss / 2**20, "records": records}))

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def link_copy(src: Path, dst: Path) -> None:
    """The folder with its closed segments hard-linked (a reader never writes them)
    and its last one copied: the recorder that runs on the copy appends to it, which
    must not reach the cached journal through a shared inode."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, copy_function=os.link)
    shutil.rmtree(dst / "metadata_index", ignore_errors=True)  # no cache of any kind
    last = sorted((dst / "segments").glob("seg-*.jsonl"))[-1]
    last.unlink()
    shutil.copy2(src / "segments" / last.name, last)


def recorder_leaves(folder: Path, timeout: float = 900) -> float:
    """Run a real recorder with default settings on `folder` until every closed segment
    is compressed and has its line index cache; stop it. Seconds it took."""
    t0 = time.perf_counter()
    front, back = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PERSIST_MONITOR": "off"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "recorder.cli", "record", "--log-dir", str(folder),
         "--embedded", "yes", "--broker", f"tcp://127.0.0.1:{back}",
         "--publish-endpoint", f"tcp://127.0.0.1:{front}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while time.perf_counter() - t0 < timeout:
            segs = sorted((folder / "segments").glob("seg-*"))
            closed = [p for p in segs[:-1] if not p.name.endswith(".tmp")]
            plain = [p for p in closed if p.suffix == ".jsonl"]
            caches = list((folder / "metadata_index").glob("*.idx"))
            if closed and not plain and len(caches) >= len(closed):
                break
            time.sleep(1)
        else:
            raise SystemExit("the recorder did not finish compressing and indexing in time")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return time.perf_counter() - t0


def first_screen(folder: Path, code: Path = ROOT) -> dict[str, float]:
    """One run of the app in a fresh interpreter, with the code in `code`."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder)],
        capture_output=True, text=True, cwd=code,
        env={**os.environ, "PYTHONPATH": str(code)},
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(out.stderr)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journal", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/persist-bench-tui-cold"))
    parser.add_argument(
        "--baseline-ref",
        help="also open the recorder's folder with the code at this git ref, in the same runs",
    )
    args = parser.parse_args()
    base, ours = args.work / "no-cache", args.work / "recorded"
    args.work.mkdir(parents=True, exist_ok=True)
    link_copy(args.journal, base)
    if not (ours / "segments").is_dir():
        link_copy(args.journal, ours)
        took = recorder_leaves(ours)
        print(f"recorder compressed and indexed the closed segments in {took:.0f} s")
    segs = list((ours / "segments").iterdir())
    size = sum(p.stat().st_size for p in (base / "segments").iterdir())
    print(f"journal: {size / 2**30:.2f} GiB in {len(segs)} segments")
    results: dict[str, list[dict[str, float]]] = {"baseline": [], "ours": []}
    ref_code = None
    if args.baseline_ref:
        shutil.rmtree(args.work / "ref-code", ignore_errors=True)
        ref_code = extract(args.baseline_ref, args.work / "ref-code")
        results[args.baseline_ref] = []
    for _ in range(args.runs):
        shutil.rmtree(base / "metadata_index", ignore_errors=True)
        results["baseline"].append(first_screen(base))
        results["ours"].append(first_screen(ours))
        if ref_code is not None:  # the same folder as ours, opened by the code at the ref
            results[str(args.baseline_ref)].append(first_screen(ours, ref_code))
    for name, runs in results.items():
        times = [r["ready_s"] for r in runs]
        print(
            f"{name:9s} first screen: median {statistics.median(times):.2f} s "
            f"(runs {', '.join(f'{t:.2f}' for t in times)}), "
            f"RSS {max(r['rss_mb'] for r in runs):.0f} MB, {runs[0]['records']:,} records"
        )
    b = statistics.median(r["ready_s"] for r in results["baseline"])
    o = statistics.median(r["ready_s"] for r in results["ours"])
    print(f"baseline / ours: {b / o:.1f}x; load average {os.getloadavg()[0]:.1f} on 2 cores")
    if args.baseline_ref:
        r = statistics.median(x["ready_s"] for x in results[args.baseline_ref])
        print(f"{args.baseline_ref} / ours, the recorder's folder: {r / o:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
