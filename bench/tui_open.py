"""How fast persist-tui opens a 1,000,000-message (~0.9 GB) journal, and how big it gets.

    .venv/bin/python bench/tui_open.py [--messages N] [--rows-baseline N]

Builds the journal once under bench/out/ (gitignored) and reuses it. Each
measurement runs in a fresh interpreter so imports and RSS are honest:
- persist-tui: time from process start to the first screen with checkpoints and
  recent messages (headless, 120x36), RSS then, the cost of rendering a screenful
  at random positions, and of following 10,000 newly appended messages;
- baselines in the same run: parsing every line with orjson, and a Textual
  DataTable filled eagerly with N rows (the approach the TUI avoids).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

CHILD_TUI = r"""
import time, sys, os
t0 = time.perf_counter()
import asyncio, random, json
from pathlib import Path
import psutil
from tui.app import create_app
root = Path(sys.argv[1])

async def main():
    app = create_app(root, live=False)
    async with app.run_test(size=(120, 36)) as pilot:
        while app.ready_at is None:
            await pilot.pause(0.005)
        await pilot.pause()
        ready = app.ready_at - t0
        rss = psutil.Process().memory_info().rss
        from tui.screens.main import MainScreen
        main = next(s for s in app.screen_stack if isinstance(s, MainScreen))
        await pilot.press("3")
        await pilot.pause()
        messages = main.query_one("#messages")
        n = messages.row_count
        rng = random.Random(1)
        times = []
        for _ in range(200):
            row = rng.randrange(n)
            t = time.perf_counter()
            messages.move_to(row)
            messages.scroll_to(y=max(0, row - 10), animate=False, immediate=True)
            for y in range(messages.size.height):
                messages.render_line(y)
            times.append(time.perf_counter() - t)
        times.sort()
        # Follow: append 10k messages, then one poll + one screen render.
        from tests.demo_journal import DemoWriter
        w = DemoWriter.open(root)
        for i in range(10_000):
            w.message(time.time(), "bench", "x" * 700 + f" {i}")
        w.journal.flush()
        t = time.perf_counter()
        app.poll()
        for y in range(messages.size.height):
            messages.render_line(y)
        follow = time.perf_counter() - t
        w.close()
        await app.workers.wait_for_complete()
        print(json.dumps({
            "ready_s": ready, "rss_mb": rss / 2**20,
            "records": n, "checkpoints": len(app.journal.checkpoints or []),
            "screen_p50_ms": times[len(times)//2] * 1000,
            "screen_p99_ms": times[int(len(times)*0.99)] * 1000,
            "follow_10k_ms": follow * 1000,
            "rss_after_mb": psutil.Process().memory_info().rss / 2**20,
        }))
asyncio.run(main())
"""

CHILD_PARSE = r"""
import time, sys, orjson
from pathlib import Path
t = time.perf_counter()
n = 0
for seg in sorted((Path(sys.argv[1]) / "segments").glob("seg-*.jsonl")):
    with open(seg, "rb") as f:
        for line in f:
            orjson.loads(line)
            n += 1
print(f'{{"parse_all_s": {time.perf_counter() - t}, "lines": {n}}}')
"""

CHILD_TABLE = r"""
import time, sys
t0 = time.perf_counter()
import asyncio, json, psutil
from textual.app import App
from textual.widgets import DataTable
from recorder.export.render import record_text
from recorder.store.reader import open_store
rows = int(sys.argv[2])
store = open_store(sys.argv[1])

class Eager(App):
    def compose(self):
        yield DataTable()
    def on_mount(self):
        t = self.query_one(DataTable)
        t.add_columns("time", "sender", "topic", "text")
        n = len(store)
        t.add_rows(
            (str(r.ts), r.sender, r.topic, record_text(r)[:200]) for r in store.records(n - rows, n)
        )

async def main():
    app = Eager()
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        ready = time.perf_counter() - t0
        print(json.dumps({"datatable_rows": rows, "datatable_ready_s": ready,
                          "datatable_rss_mb": psutil.Process().memory_info().rss / 2**20}))
asyncio.run(main())
"""


def build(root: Path, messages: int) -> None:
    """A journal like a busy day: ~900-byte messages, a checkpoint every 10k."""
    from tests.demo_journal import AGENTS, DemoWriter

    marker = root / ".complete"
    if marker.exists() and int(marker.read_text()) == messages:
        return
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(5)
    words = [
        "deploy",
        "migration",
        "schema",
        "rollback",
        "cache",
        "latency",
        "parser",
        "token",
        "budget",
        "retry",
    ]
    filler = [" ".join(rng.choice(words) for _ in range(110)) for _ in range(64)]
    w = DemoWriter.open(root)
    t = time.time() - messages / 50
    t_build = time.perf_counter()
    for i in range(messages):
        t += 0.02
        w.message(t, AGENTS[i % 4], filler[i % 64][: 700 + i % 90], topic="chat", tags=["bench"])
        if i and i % 10_000 == 0:
            w.checkpoint(t, f"periodic {i // 10_000}", "periodic")
    w.checkpoint(t, "end of bench", "manual")
    w.close()
    size = sum(p.stat().st_size for p in (root / "segments").iterdir())
    print(
        f"built {messages:,} messages, {size / 2**30:.2f} GiB in "
        f"{time.perf_counter() - t_build:.0f}s",
        file=sys.stderr,
    )
    marker.write_text(str(messages))


def child(code: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--rows-baseline", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args()
    root = args.out / f"journal-{args.messages}"
    build(root, args.messages)
    # The follow step appends to the journal: bench a copy-free fresh state each time.
    tui = child(CHILD_TUI, str(root))
    parse = child(CHILD_PARSE, str(root))
    table = child(CHILD_TABLE, str(root), str(args.rows_baseline))
    size = sum(p.stat().st_size for p in (root / "segments").iterdir())
    print(
        f"journal: {tui['records']:,} records, {size / 2**30:.2f} GiB, "
        f"{tui['checkpoints']} checkpoints"
    )
    print(f"persist-tui first screen:       {tui['ready_s']:.2f} s   RSS {tui['rss_mb']:.0f} MB")
    print(
        f"  screenful at random position: p50 {tui['screen_p50_ms']:.1f} ms, "
        f"p99 {tui['screen_p99_ms']:.1f} ms"
    )
    print(f"  follow 10,000 new messages:   {tui['follow_10k_ms']:.0f} ms (poll + repaint)")
    print(f"  RSS after the bench:          {tui['rss_after_mb']:.0f} MB")
    print(
        f"baseline: orjson every line:    {parse['parse_all_s']:.2f} s  "
        f"({parse['parse_all_s'] / tui['ready_s']:.1f}x the TUI's first screen)"
    )
    print(
        f"baseline: eager DataTable, {table['datatable_rows']:,} rows: "
        f"{table['datatable_ready_s']:.2f} s, RSS {table['datatable_rss_mb']:.0f} MB "
        f"({table['datatable_ready_s'] / tui['ready_s']:.1f}x slower for "
        f"{table['datatable_rows'] / tui['records']:.0%} of the rows)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
