"""How long restoring ~10 MB of conversation (about 20,000 messages) into a bundle takes.

    .venv/bin/python bench/restore.py [--messages 20000] [--size 500] [--runs 5]

Builds a journal once under bench/out/ (Journal + encode_frames, the recorder's own
encoder; a checkpoint at the end) and times, in the same run:
- ours: `build_bundle` of the whole conversation (`--full`: digest check of the
  range, conversation.jsonl with every record byte for byte, transcript.md,
  manifest.json, fsyncs, atomic rename);
- baseline: the naive way: `json.loads` every line, `json.dumps` each record back
  into a JSONL file and format a Markdown line per message (no digest, no fsync).
Best of `--runs` for both (each run rebuilds from scratch), and the ratio.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from recorder.export.restore import build_bundle  # noqa: E402
from recorder.export.scope import BundleScope  # noqa: E402
from recorder.store.checkpoints import list_checkpoints  # noqa: E402
from recorder.store.layout import Layout  # noqa: E402
from tests.demo_journal import DemoClock, DemoWriter  # noqa: E402

WORDS = (
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
    "timeout",
    "benchmark",
    "refactor",
    "database",
    "index",
    "agent",
)


def build(root: Path, messages: int, size: int) -> None:
    rng = random.Random(1)
    clock = DemoClock(1_800_000_000.0)
    w = DemoWriter.open(root, clock=clock)
    t = clock.now
    for i in range(messages):
        t += 0.05
        clock.now = t
        text = " ".join(rng.choice(WORDS) for _ in range(size // 7))[:size]
        w.message(
            t,
            ("planner", "coder", "reviewer", "tester")[i % 4],
            text,
            topic=f"agents.{i % 4}",
            extra={"_persist": {"pub": "p", "seq": i + 1}},
        )
    w.checkpoint(t + 1, "bench", "manual")
    w.close()


def naive(root: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    md = []
    with open(out / "conversation.jsonl", "w") as jf:
        for seg in sorted((root / "segments").glob("seg-*.jsonl")):
            with open(seg) as f:
                for line in f:
                    rec = json.loads(line)
                    jf.write(json.dumps(rec) + "\n")
                    if rec["kind"] == "msg":
                        payload = rec["frames"][-1].get("json") or {}
                        md.append(
                            f"**{rec['meta']['sender']}** {rec['ts']}\n\n> "
                            f"{payload.get('text', '')}\n"
                        )
    (out / "transcript.md").write_text("\n".join(md))


def best(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=250, help="bytes of text per message")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    root = HERE / "out" / f"restore-{args.messages}-{args.size}"
    if not (root / "checkpoints").is_dir():
        shutil.rmtree(root, ignore_errors=True)
        build(root, args.messages, args.size)
    journal_bytes = sum(p.stat().st_size for p in (root / "segments").glob("*.jsonl"))
    cp = list_checkpoints(Layout(root))[0]

    def ours() -> None:
        shutil.rmtree(root / "restore", ignore_errors=True)
        build_bundle(root, cp, scope=BundleScope.whole())

    def baseline() -> None:
        shutil.rmtree(root / "naive", ignore_errors=True)
        naive(root, root / "naive")

    t_ours = best(ours, args.runs)
    t_naive = best(baseline, args.runs)
    bundle = build_bundle(root, cp, scope=BundleScope.whole())
    m = bundle.manifest
    print(f"journal: {cp.messages:,} messages, {journal_bytes / 1e6:.1f} MB")
    print(
        f"bundle: {m['files']['jsonl']['bytes'] / 1e6:.1f} MB jsonl + "
        f"{m['files']['markdown']['bytes'] / 1e6:.1f} MB markdown, "
        f"integrity ok={m['integrity']['ok']}"
    )
    print(f"ours (verify + jsonl + md + manifest, fsynced): {t_ours * 1000:.0f} ms")
    print(f"naive (json.loads/json.dumps every line, no verify, no fsync): {t_naive * 1000:.0f} ms")
    print(f"ratio naive/ours: {t_naive / t_ours:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
