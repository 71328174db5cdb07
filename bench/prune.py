"""Prune on a folder with pins: the dry run against the real run, and the trash round trip.

    .venv/bin/python bench/prune.py [--days 120] [--segments 240] [--segment-kb 1024] [--pins 5]

Builds (once, kept under bench/out/prune-*) a journal written by the recorder's own
core with an injected clock: `--days` days of traffic (agent messages of about 500
bytes, a checkpoint at the end of each day) in about `--segments` x 1.25 segments of
`--segment-kb`, and pins
`--pins` checkpoints spread over the older half. On a copy of it, in the same run:
- dry run: `persist prune --older-than <days/2>d --dry-run` (the plan: the first and
  last record of each segment, message heads before each pin; changes nothing), once
  with no line index caches (`metadata_index/`, which a running recorder keeps warm)
  and once with them;
- the real run with the same policy: the same plan, then every file renamed into
  the trash, re-stated checkpoints, the ledger, and the journal's `prune` record;
- checks: the segments and checkpoints gone are exactly those the dry run listed,
  and their bytes are the bytes it announced; every pinned checkpoint verifies and
  its default restore bundle (1000 messages) is intact;
- `persist trash restore`: every segment back with the same SHA-256, every
  checkpoint file identical to before, then `persist trash empty --older-than 0`.
Prints each time, the bytes, and real run / dry run.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import time
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from recorder.daemon import maintenance  # noqa: E402
from recorder.daemon.core import Recorder  # noqa: E402
from recorder.daemon.options import RecorderOptions  # noqa: E402
from recorder.export.restore import build_bundle  # noqa: E402
from recorder.store.checkpoints import list_checkpoints, verify_checkpoint  # noqa: E402
from recorder.store.layout import Layout, list_segments  # noqa: E402
from recorder.store.pins import set_pin  # noqa: E402
from recorder.store.retention_config import Policy  # noqa: E402

DAY = 86400.0
WORDS = [
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


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def build(root: Path, days: int, segments: int, segment_kb: int) -> None:
    per_day = max(1, segments * segment_kb * 1024 // days // 450)
    clock = Clock(time.time() - days * DAY)
    rec = Recorder(
        RecorderOptions(
            log_dir=root, segment_bytes=segment_kb * 1024, checkpoint_interval=0, broker=None,
            bind=("ipc:///tmp/unused-bench-prune",),
        ),
        clock=clock,
    )  # fmt: skip
    rec.open()
    n = 0
    for day in range(days):
        left = per_day
        while left:
            batch = []
            for _ in range(min(256, left)):
                n += 1
                words = " ".join(WORDS[(n * k) % len(WORDS)] for k in range(1, 40))
                body = {"text": f"day {day} #{n}: {words}", "sender": "coder", "to": "reviewer"}
                batch.append([b"agents.coder", orjson.dumps(body)])
            rec.record_batch(clock.now, batch)
            left -= len(batch)
            clock.now += 30
        rec.checkpoint(f"day {day}", "manual", clock.now, force=True)
        clock.now = time.time() - (days - day - 1) * DAY
    rec.close()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--segments", type=int, default=240)
    ap.add_argument("--segment-kb", type=int, default=1024)
    ap.add_argument("--pins", type=int, default=5)
    args = ap.parse_args()
    cache = HERE / "out" / f"prune-{args.days}d-{args.segments}x{args.segment_kb}k"
    if not (cache / "segments").is_dir():
        shutil.rmtree(cache, ignore_errors=True)
        t0 = time.perf_counter()
        build(cache, args.days, args.segments, args.segment_kb)
        print(f"built {cache} in {time.perf_counter() - t0:.1f} s")
    root = HERE / "out" / "prune-run"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(cache, root, symlinks=True)
    layout = Layout(root)
    cps = sorted(list_checkpoints(layout), key=lambda c: c.seq)
    older = cps[: len(cps) // 2]
    pinned = [older[k * len(older) // args.pins] for k in range(args.pins)]
    for cp in pinned:
        set_pin(layout, cp.id, True)
    segs = list_segments(layout)
    total = sum(p.stat().st_size for p in segs)
    print(
        f"journal: {len(segs)} segments, {total / 2**20:,.1f} MiB, {len(cps)} checkpoints, "
        f"{len(pinned)} pinned"
    )
    before_segs = {p.name: sha(p) for p in segs}
    before_cps = {p.name: sha(p) for p in layout.checkpoints.iterdir()}
    policy = Policy(older_than=args.days / 2 * DAY)

    t0 = time.perf_counter()
    cold = maintenance.prune(layout, policy, dry_run=True).plan_json()
    t_cold = time.perf_counter() - t0  # builds the line index caches a recorder keeps warm
    t0 = time.perf_counter()
    dry = maintenance.prune(layout, policy, dry_run=True).plan_json()
    t_dry = time.perf_counter() - t0
    assert cold == dry
    t0 = time.perf_counter()
    real = maintenance.prune(layout, policy, dry_run=False)
    t_real = time.perf_counter() - t0
    plan = real.plan_json()

    after = {p.name: p.stat().st_size for p in list_segments(layout)}
    gone = sorted(set(before_segs) - set(after))
    gone_bytes = sum(f["size"] for f in real_files(layout, real.trash, "segment"))
    gone_cps = sorted(
        n[:-5] for n in set(before_cps) - {p.name for p in layout.checkpoints.iterdir()}
    )
    same_list = gone == [s["name"] for s in dry["segments"]] and gone_cps == dry["checkpoints"]
    same_plan = dry == plan
    print(f"dry run, line indexes cold: {t_cold * 1000:8.1f} ms")
    print(f"dry run : {t_dry * 1000:8.1f} ms  would prune {len(dry['segments'])} segments, "
          f"{dry['bytes']:,} bytes, seq {dry['from_seq']}-{dry['to_seq']}, "
          f"{len(dry['checkpoints'])} checkpoints, {len(dry['restated'])} re-stated, "
          f"{len(dry['kept'])} kept for pins or the newest checkpoint")  # fmt: skip
    print(f"real run: {t_real * 1000:8.1f} ms  pruned {len(gone)} segments, {gone_bytes:,} bytes "
          f"into trash/{real.trash}")  # fmt: skip
    print(f"real / dry: {t_real / t_dry:.2f}x")
    print(f"dry-run list == removed (segments and checkpoints): {same_list}; "
          f"bytes equal: {gone_bytes == dry['bytes']}; same plan: {same_plan}")  # fmt: skip
    ok_pins = True
    t0 = time.perf_counter()
    for cp in pinned:
        live = {c.id: c for c in list_checkpoints(layout)}.get(cp.id)
        bundle = build_bundle(root, cp.id, durable=False) if live else None
        ok = live is not None and verify_checkpoint(layout, live).ok and bundle is not None
        ok_pins = ok_pins and ok and bool(bundle and bundle.ok)
    print(f"pinned checkpoints verified and restorable: {ok_pins} "
          f"({(time.perf_counter() - t0) * 1000:.0f} ms for {len(pinned)})")  # fmt: skip
    assert real.trash is not None
    t0 = time.perf_counter()
    maintenance.restore(layout, real.trash)
    t_restore = time.perf_counter() - t0
    active = list_segments(layout)[-1].name
    back = {p.name: sha(p) for p in list_segments(layout)}
    identical = {k: v for k, v in back.items() if k != active} == {
        k: v for k, v in before_segs.items() if k != active
    } and {p.name: sha(p) for p in layout.checkpoints.iterdir()} == before_cps
    print(f"trash restore: {t_restore * 1000:.1f} ms, bit-identical: {identical}")
    maintenance.prune(layout, policy, dry_run=False)
    t0 = time.perf_counter()
    emptied = maintenance.empty(layout, 0.0).gone
    print(f"trash empty: {(time.perf_counter() - t0) * 1000:.1f} ms, "
          f"{sum(e.bytes for e in emptied):,} bytes freed")  # fmt: skip
    shutil.rmtree(root, ignore_errors=True)
    return 0 if same_list and same_plan and ok_pins and identical else 1


def real_files(layout: Layout, trash: str | None, kind: str) -> list[dict]:
    manifest = orjson.loads((layout.trash / str(trash) / "manifest.json").read_bytes())
    return [f for f in manifest["files"] if f["kind"] == kind]


if __name__ == "__main__":
    sys.exit(main())
