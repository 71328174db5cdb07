"""Searching agent sessions: what indexing them costs, and what they add to a search.

    .venv/bin/python bench/search_sessions.py [--sessions 300] [--mb 100] [--messages 20000]

Generates a journal (`--messages`) and agent sessions as `bench/sessions.py` does
(Claude 80 %, Gemini 10 %, Codex 10 %), then times, in the same run:

* baseline: the journal alone (`Roots(None, None, None)`): first index, then a warm
  search (catch-up included: nothing new, so stat only);
* ours: the same journal plus the sessions: first index (every session read and
  indexed), a warm search (every session file stat'ed, none read), a search from a
  new engine (the progress rows compared instead of remembered), and a catch-up after
  one session grew (that file alone read again).

The warm overhead is ours minus the baseline, per search.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sessions import generate  # noqa: E402
from recorder.search.engine import SearchEngine  # noqa: E402
from recorder.sources.discover import Roots  # noqa: E402
from tests.demo_journal import BASE_TS, DemoClock, DemoWriter  # noqa: E402

WORDS = ["deploy", "migration", "schema", "review", "patch", "session", "agent", "build"]


def journal(root: Path, n: int) -> None:
    w = DemoWriter.open(root, clock=DemoClock(BASE_TS))
    for i in range(n):
        w.message(BASE_TS + i, f"agent{i % 7}", f"{WORDS[i % 8]} step {i} of the {WORDS[i % 5]}")
    w.close()


def warm_ms(engine: SearchEngine, runs: int) -> tuple[float, float]:
    """Median ms of a search's catch-up (nothing new) and of a whole search."""
    catch, whole = [], []
    for i in range(runs):
        t = time.perf_counter()
        engine.catch_up()
        catch.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        engine.search(f"{WORDS[i % len(WORDS)]} step", limit=20)
        whole.append((time.perf_counter() - t) * 1000)
    return statistics.median(catch), statistics.median(whole)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=300)
    ap.add_argument("--mb", type=float, default=100)
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="persist-bench-ss-"))
    try:
        home = tmp / "home"
        size = generate(home, args.sessions, args.mb)
        print(f"{args.sessions} sessions, {size / 2**20:.0f} MiB; journal {args.messages:,} msgs")
        roots = Roots(home / "claude", home / "gemini", home / "codex")
        base_log, ours_log = tmp / "base", tmp / "ours"
        journal(base_log, args.messages)
        shutil.copytree(base_log, ours_log)

        with SearchEngine(base_log, Roots(None, None, None)) as base:
            t = time.perf_counter()
            base.catch_up()
            base_first = time.perf_counter() - t
            base_warm = warm_ms(base, args.runs)
        with SearchEngine(ours_log, roots) as ours:
            t = time.perf_counter()
            done = ours.catch_up()
            ours_first = time.perf_counter() - t
            ours_warm = warm_ms(ours, args.runs)
        new_engine = []
        for _ in range(5):
            with SearchEngine(ours_log, roots) as fresh:
                t = time.perf_counter()
                result = fresh.catch_up()
                new_engine.append((time.perf_counter() - t) * 1000)
                assert result.sessions == 0
        grown = next((home / "codex" / "sessions").rglob("rollout-*.jsonl"))
        item = {"type": "message", "role": "user", "content": [{"type": "input_text"}]}
        item["content"][0]["text"] = "one more question about the grown session"
        line = {"timestamp": "2026-01-10T13:00:00.000Z", "type": "response_item", "payload": item}
        with open(grown, "ab") as f:
            f.write(json.dumps(line).encode() + b"\n")
        with SearchEngine(ours_log, roots) as ours:
            t = time.perf_counter()
            again = ours.catch_up()
            grew_ms = (time.perf_counter() - t) * 1000
            docs = ours.index.query("SELECT count(*) FROM docs WHERE source != 'bus'")[0][0]

        print(f"session documents indexed: {done.sessions:,} (now {docs:,})")
        print(f"{'':34}{'baseline (journal)':>20}{'ours (+ sessions)':>20}")
        print(f"{'first index':<34}{base_first:>18.2f} s{ours_first:>18.2f} s")
        print(
            f"{'warm catch-up (nothing new)':<34}{base_warm[0]:>17.2f} ms{ours_warm[0]:>17.2f} ms"
        )
        print(
            f"{'warm search, catch-up included':<34}"
            f"{base_warm[1]:>17.2f} ms{ours_warm[1]:>17.2f} ms"
        )
        print(
            f"catch-up overhead of {args.sessions} sessions: "
            f"{ours_warm[0] - base_warm[0]:+.2f} ms per search "
            f"({ours_warm[0] / base_warm[0]:.1f}x the baseline's catch-up)"
        )
        print(
            f"first catch-up of a new engine (nothing new): {statistics.median(new_engine):.1f} ms"
        )
        print(f"catch-up after one session grew: {grew_ms:.1f} ms ({again.sessions} doc(s) added)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
