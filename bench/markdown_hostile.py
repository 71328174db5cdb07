"""Markdown transcripts of hostile messages: the time to quote one message made to
cost the most in `recorder/export/markdown_code.py`, this tree against a git ref.

    .venv/bin/python bench/markdown_hostile.py [--baseline-ref REF] [--sizes 160000,640000]

A message may be 16 MB (the recorder's `--max-message-mb`), and an export quotes it
whole. Each shape is one message of SIZE characters:

- `fences`: "~~~<" repeated on one line (a backward search for each run's line start
  made this quadratic until 2026-12-06);
- `spans`: "`<` " repeated on one line (the same, per backtick run);
- `indented`: "    ~~~<" lines (each one looked for its list item through every line
  before it, in the first version of list-item fences);
- `items`: numbered steps with a fence each (the case the list-item rules are for).

Each (tree, shape, size) runs in a fresh interpreter started in the tree; a run over
`--limit` seconds (default 60) is stopped and printed as "> limit". The best of
`--runs` (default 3) is printed with the ratio baseline / ours.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.baseline import extract, run_in_tree  # noqa: E402

SHAPES = {
    "fences": 'lambda n: "~~~<" * (n // 4)',
    "spans": 'lambda n: "`<` " * (n // 4)',
    "indented": 'lambda n: "    ~~~<\\n" * (n // 9)',
    "items": (
        'lambda n: "".join(f"{i}. step\\n   ```\\n   a < b && c\\n   ```\\n\\n"'
        " for i in range(1, n // 36))"
    ),
}

RUN = r"""
import json, sys, time
from recorder.export.writers import md_message
make = eval(sys.argv[1])
text = make(int(sys.argv[2]))
t0 = time.perf_counter()
md_message(text)
seconds = time.perf_counter() - t0
import recorder
print(json.dumps({"code": recorder.__file__, "seconds": seconds, "chars": len(text)}))
"""


def run(tree: Path, shape: str, size: int, limit: float) -> float | None:
    try:
        return float(run_in_tree(tree, RUN, SHAPES[shape], str(size), timeout=limit)["seconds"])
    except subprocess.TimeoutExpired:
        return None


def best(tree: Path, shape: str, size: int, runs: int, limit: float) -> float | None:
    times = []
    for _ in range(runs):
        t = run(tree, shape, size, limit)
        if t is None:
            return None
        times.append(t)
    return min(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline-ref", default="5ee93f6", help="git ref to compare with")
    p.add_argument("--sizes", default="160000,640000", help="characters a message")
    p.add_argument("--shapes", default=",".join(SHAPES), help="which shapes")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--limit", type=float, default=60.0, help="seconds before a run stops")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    shapes = args.shapes.split(",")
    if not set(shapes) <= set(SHAPES):
        p.error(f"--shapes takes {', '.join(SHAPES)}")
    with tempfile.TemporaryDirectory() as tmp:
        base = extract(args.baseline_ref, Path(tmp) / "base", "recorder")
        print(f"{'shape':9} {'chars':>9}  {'ours':>9}  {args.baseline_ref:>9}  ratio")
        for shape in shapes:
            for size in sizes:
                ours = best(ROOT, shape, size, args.runs, args.limit)
                theirs = best(base, shape, size, args.runs, args.limit)

                def show(t: float | None) -> str:
                    return f"> {args.limit:.0f} s" if t is None else f"{t:.3f} s"

                ratio = f"{theirs / ours:.1f}x" if ours and theirs else "-"
                print(f"{shape:9} {size:>9}  {show(ours):>9}  {show(theirs):>9}  {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
