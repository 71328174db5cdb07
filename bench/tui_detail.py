"""How fast persist-tui's detail view opens one large record, and what it costs in RSS.

    .venv/bin/python bench/tui_detail.py [--mb 16] [--baseline-mb 1]

Writes a journal holding one message of `--mb` MB (a JSON object whose text has a
newline every ~120 characters, like a long Jupyter print, plus a few ANSI colour
escapes) under a temporary folder. Each variant runs in a fresh interpreter:
- ours: the real app headless at 120x36, Recent view, Enter on the record; the time
  from the key to the first screen of the detail view drawn (the first time, and the
  median of 4 more: the screen is reused), RSS growth, the time to draw a page while
  scrolling 200 pages, and Esc back to the list;
- baseline (the way the view worked before): a `Static` holding the whole record
  in a scrolling container, at `--baseline-mb` (quadratic, so smaller) and killed
  after `--timeout` seconds. The ratio compares time per MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

CHILD = r"""
import asyncio, json, sys, time
from pathlib import Path
import psutil
from tui.app import create_app
root, variant = Path(sys.argv[1]), sys.argv[2]

async def main():
    app = create_app(root, live=False)
    async with app.run_test(size=(120, 36)) as pilot:
        while app.ready_at is None:
            await pilot.pause(0.01)
        await pilot.press("3")
        await pilot.pause()
        store = app.journal.store
        big = max(range(len(store)), key=lambda i: len(store.record(i).line))
        messages = app.screen.query_one("#messages")
        messages.move_to(big)
        await pilot.pause()
        store.record(big).data  # parsed once before, as the list row does
        rss0 = psutil.Process().memory_info().rss
        opens, backs = [], []
        rss1 = rss0
        scroll = None
        for attempt in range(5 if variant == "ours" else 1):
            t = time.perf_counter()
            if variant == "ours":
                await pilot.press("enter")
                await pilot.pause()
                from tui.screens.detail import DetailScreen
                assert isinstance(app.screen, DetailScreen)
            else:
                from textual.containers import VerticalScroll
                from textual.screen import ModalScreen
                from textual.widgets import Static
                from old_detail import render_record

                class Old(ModalScreen):
                    BINDINGS = [("escape", "app.pop_screen", "Back")]
                    def compose(self):
                        with VerticalScroll(id="detail", classes="dialog"):
                            yield Static(render_record(store.record(big), app.clock))
                app.push_screen(Old())
                await pilot.pause()
            await pilot.pause()
            opens.append(time.perf_counter() - t)
            rss1 = max(rss1, psutil.Process().memory_info().rss)
            if variant == "ours" and attempt == 0:
                t = time.perf_counter()
                view = app.screen.query_one("#detail")
                for _ in range(200):
                    down = view.scroll_y + view.size.height
                    view.scroll_to(y=down, animate=False, immediate=True)
                    for y in range(view.size.height):
                        view.render_line(y)
                scroll = (time.perf_counter() - t) / 200
            t = time.perf_counter()
            await pilot.press("escape")
            await pilot.pause()
            backs.append(time.perf_counter() - t)
        opens_sorted = sorted(opens[1:]) or opens
        print(json.dumps({"open": opens[0], "again": opens_sorted[len(opens_sorted) // 2],
                          "rss_growth": rss1 - rss0, "page": scroll,
                          "esc": sorted(backs)[len(backs) // 2], "rss": rss1}))

asyncio.run(main())
"""

OLD_DETAIL_COMMIT = "0433dc4"  # the last commit with the Static-based detail view


def build(root: Path, mb: float) -> int:
    import orjson

    from tests.demo_journal import BASE_TS, DemoWriter

    w = DemoWriter.open(root)
    for i in range(20):
        w.message(BASE_TS + i, "coder", f"small message {i}")
    line = "step \x1b[32mok\x1b[0m " + "x" * 100 + "\n"
    text = line * int(mb * 1024 * 1024 / len(line))
    w.message(BASE_TS + 30, "kernel", text, topic="kernel.stream")
    w.checkpoint(BASE_TS + 40, "after the big one", "manual")
    w.close()
    return len(orjson.dumps({"text": text}))


def old_detail_module() -> str:
    """The detail view's rendering as it was before the virtual view (from git)."""
    return subprocess.run(
        ["git", "show", f"{OLD_DETAIL_COMMIT}:tui/screens/detail.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def run(root: Path, variant: str, timeout: float, shim: Path | None) -> dict[str, float] | None:
    env_path = [str(ROOT)] + ([str(shim)] if shim else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(env_path)}
    try:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(root), variant],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=16.0, help="size of the big record (MB)")
    parser.add_argument("--baseline-mb", type=float, default=0.25, help="its size for the baseline")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up on a variant after")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="persist-bench-detail-") as tmp:
        big, small = Path(tmp) / "big", Path(tmp) / "small"
        size_big = build(big, args.mb)
        size_small = build(small, args.baseline_mb)
        shim = Path(tmp) / "shim"
        shim.mkdir()
        (shim / "old_detail.py").write_text(old_detail_module().replace("from ..", "from tui."))
        rows = []
        ours_small = run(small, "ours", args.timeout, None)
        base = run(small, "baseline", args.timeout, shim)
        ours = run(big, "ours", args.timeout, None)
        rows.append(("ours", size_big, ours))
        rows.append(("ours", size_small, ours_small))
        rows.append(("baseline (Static)", size_small, base))
        print(
            f"{'variant':<20} {'record':>10} {'open s':>8} {'again s':>8} {'RSS +MB':>8} "
            f"{'page ms':>8} {'Esc s':>6}"
        )
        for name, n, r in rows:
            if r is None:
                print(f"{name:<20} {n / 1e6:>8.1f}MB  timed out after {args.timeout:.0f} s")
                continue
            page = f"{r['page'] * 1000:.1f}" if r.get("page") else "-"
            again = f"{r['again']:.3f}" if name == "ours" else "-"
            print(
                f"{name:<20} {n / 1e6:>8.1f}MB {r['open']:>8.3f} {again:>8} "
                f"{r['rss_growth'] / 1e6:>8.1f} {page:>8} {r['esc']:>6.3f}"
            )
        if ours and base and ours_small:
            print(
                f"same record ({size_small / 1e6:.1f} MB): baseline / ours = "
                f"{base['open'] / ours_small['open']:.1f}x"
            )
            print(
                f"per MB: baseline at {size_small / 1e6:.1f} MB / "
                f"ours at {size_big / 1e6:.1f} MB = "
                f"{(base['open'] / size_small) / (ours['open'] / size_big):.0f}x"
            )
        if ours:
            ok = ours["open"] < 0.5 and ours["rss_growth"] < 100e6
            print(
                f"target (< 0.5 s, < 100 MB RSS growth) at {size_big / 1e6:.1f} MB: "
                f"{'met' if ok else 'NOT met'}"
            )


if __name__ == "__main__":
    main()
