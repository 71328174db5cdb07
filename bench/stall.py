#!/usr/bin/env python3
"""Receive stalls: a stopped recorder and a full disk, ours against the previous settings.

    sudo .venv/bin/python bench/stall.py             # full figures (about 3 minutes)
    sudo .venv/bin/python bench/stall.py --quick     # shorter stalls, lower rate

Everything goes through a real `persist broker` (fresh per run, free loopback ports),
a real `persist record` process and a publisher process at a fixed rate with the
envelope (`bench/record.py`'s publisher child), for two scenarios:

1. stop: the recorder gets SIGSTOP for `--stop-seconds` (5) and then SIGCONT;
2. disk: the log folder is a size-limited tmpfs (needs root to mount), filled with a
   filler file for `--disk-seconds` (20), then freed.

Each scenario runs for "ours" (this tree) and for the baseline, the commit given by
`--baseline` (default: the commit before the fix) extracted with `git archive` into
the bench's temporary folder and run from there with the same Python. Loss is exact:
every envelope sequence number is looked up in the journal afterwards; gap records
and whether the recorder aborted are reported too. Prints a table and writes JSON to
bench/out/stall-latest.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import record as rb  # noqa: E402  (bench/record.py: publisher, broker, journal parsing)

ROOT = HERE.parent
OUT_DIR = HERE / "out"
BASELINE = "59391c7"  # the commit before the stall fix


def extract_baseline(commit: str, dest: Path) -> Path:
    """The baseline tree (only `recorder/`), outside the repository."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit, "recorder"],
        check=True,
        capture_output=True,
    ).stdout
    dest.mkdir(parents=True)
    tar_path = dest / "tree.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(dest, filter="data")
    tar_path.unlink()
    return dest


def start_recorder(
    procs: rb.Procs, variant: str, tree: Path, backend: str, log_dir: Path
) -> rb.Child:
    """`python -m recorder.cli record` run from `tree` (cwd comes first on sys.path)."""
    argv = [sys.executable, "-m", "recorder.cli", "record", "--broker", backend]
    argv += ["--log-dir", str(log_dir), "--embedded", "no"]
    procs._n += 1
    err_path = procs.work / f"{procs._n:02d}-recorder-{variant}.stderr"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, cwd=tree
        )
    child = rb.Child(f"recorder-{variant}", proc, err_path)
    procs.children.append(child)
    return child


def wait_done(log_dir: Path, pub: rb.Child, rec: rb.Child, max_wait: float) -> None:
    """Until the publisher has finished and the journal stopped growing (or the recorder died)."""
    size = rb.journal_bytes(log_dir)
    grew = time.time()
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if rec.proc.poll() is not None and pub.proc.poll() is not None:
            return
        now_size = rb.journal_bytes(log_dir)
        if now_size != size:
            size, grew = now_size, time.time()
        elif pub.proc.poll() is not None and time.time() - grew >= 1.5:
            return
    raise rb.BenchError(f"still writing after {max_wait:.0f}s")


def finish(rec: rb.Child, log_dir: Path, count: int, extra: dict[str, Any]) -> dict[str, Any]:
    aborted = rec.proc.poll() is not None
    code = rec.proc.returncode
    if not aborted:
        rec.proc.send_signal(signal.SIGTERM)
        try:
            code = rec.proc.wait(30)
        except subprocess.TimeoutExpired:
            rec.proc.kill()
            code = rec.proc.wait(5)
    stderr = rec.stderr_tail(40)
    j = rb.parse_journal(log_dir, count)
    tally: rb.Tally = j["tally"]
    pubs = list(tally.maps)
    gaps = j["gaps"]
    row = {
        "sent": count,
        "kept": tally.unique,
        "lost": count - tally.unique,
        "duplicates": tally.duplicates,
        "gap_records": len(gaps),
        "gap_causes": sorted({str(g.get("cause")) for g in gaps}),
        "gaps_missed": sum(int(g.get("missed") or 0) for g in gaps),
        "missing_ranges": tally.missing_ranges(pubs[0], limit=5) if pubs else [],
        "died_during_run": aborted,
        "exit_code": code,
        "assertion": "Assertion failed" in stderr,
        "disconnects": sum(1 for e in j["events"] if e["event"] == "disconnected"),
        **extra,
    }
    if row["assertion"]:
        row["stderr"] = [line for line in stderr.splitlines() if "ssert" in line][:3]
    return row


def run_stop(
    procs: rb.Procs, variant: str, tree: Path, work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    rate, before, stop_s, after = args.rate, args.before, args.stop_seconds, args.after
    count = int(rate * (before + stop_s + after))
    with rb.BrokerProc(procs, None) as broker:
        log_dir = work / f"stop-{variant}"
        rec = start_recorder(procs, variant, tree, broker.backend, log_dir)
        rb.wait_recording(rec, log_dir)
        pub, start = start_publisher(procs, broker.frontend, count, rate, args.size)
        time.sleep(max(0.0, start + before - time.time()))
        rec.proc.send_signal(signal.SIGSTOP)
        time.sleep(stop_s)
        rec.proc.send_signal(signal.SIGCONT)
        wait_done(log_dir, pub, rec, 120 + count / rate)
        pub.result(60)
        return finish(rec, log_dir, count, {"scenario": "stop", "variant": variant})


def start_publisher(
    procs: rb.Procs, frontend: str, count: int, rate: float, size: int
) -> tuple[rb.Child, float]:
    """The enveloped publisher child at `rate`; returns it and the time it started sending."""
    pub = procs.child(
        "pub",
        {"frontend": frontend, "count": count, "size": size, "rate": rate, "heartbeat": 1.0},
    )
    return pub, float(json.loads(pub.readline(30))["start"])


def fill(path: Path) -> int:
    """Write zeros to `path` until the file system is full; returns the bytes added."""
    added = 0
    chunk = b"\0" * (1 << 20)
    with open(path, "ab", buffering=0) as f:
        for size in (1 << 20, 4096, 1):
            while True:
                try:
                    added += f.write(chunk[:size])
                except OSError:
                    break
    return added


def run_disk(
    procs: rb.Procs, variant: str, tree: Path, work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    rate, before, full_s, after = args.rate, args.before, args.disk_seconds, args.after
    count = int(rate * (before + full_s + after))
    mnt = work / f"disk-{variant}"
    mnt.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={args.tmpfs_mb}m,mode=0700", "tmpfs", str(mnt)],
        check=True,
    )
    try:
        with rb.BrokerProc(procs, None) as broker:
            log_dir = mnt / "logs"
            rec = start_recorder(procs, variant, tree, broker.backend, log_dir)
            rb.wait_recording(rec, log_dir)
            rss = rb.RssSampler(rec.pid)
            rss.start()
            pub, start = start_publisher(procs, broker.frontend, count, rate, args.size)
            time.sleep(max(0.0, start + before - time.time()))
            filler = mnt / "filler"
            full_until = time.monotonic() + full_s
            while time.monotonic() < full_until:  # keep it full (the recorder frees temp files)
                fill(filler)
                time.sleep(0.2)
            filler.unlink()
            wait_done(log_dir, pub, rec, 120 + count / rate)
            pub.result(60)
            mem = rss.stop()
            return finish(rec, log_dir, count, {"scenario": "disk", "variant": variant, **mem})
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def ratio(base: int, ours: int) -> str:
    if ours == 0:
        return "ours lost nothing" if base else "both lost nothing"
    return f"{base / ours:.1f}x"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 s stop, 5 s full disk, 5k msgs/s")
    p.add_argument("--rate", type=float, default=10_000)
    p.add_argument("--size", type=int, default=300)
    p.add_argument("--stop-seconds", type=float, default=5.0)
    p.add_argument("--disk-seconds", type=float, default=20.0)
    p.add_argument("--before", type=float, default=3.0, help="stream seconds before the stall")
    p.add_argument("--after", type=float, default=4.0, help="stream seconds after the stall")
    p.add_argument("--tmpfs-mb", type=int, default=512)
    p.add_argument("--baseline", default=BASELINE, help="commit to compare with")
    p.add_argument("--scenarios", default="stop,disk")
    p.add_argument("--variants", default="baseline,ours")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--out", type=Path, default=OUT_DIR / "stall-latest.json")
    args = p.parse_args(argv)
    if args.quick:
        args.rate, args.stop_seconds, args.disk_seconds = 5_000, 2.0, 5.0
    scenarios = args.scenarios.split(",")
    if "disk" in scenarios and os.geteuid() != 0:
        print("the disk scenario mounts a tmpfs: run as root (or --scenarios stop)")
        return 2
    work = Path(tempfile.mkdtemp(prefix="persist-stall-"))
    procs = rb.Procs(work)
    trees = {"ours": ROOT}
    rows: list[dict[str, Any]] = []
    t0 = time.monotonic()
    try:
        if "baseline" in args.variants:
            trees["baseline"] = extract_baseline(args.baseline, work / "baseline")
        for scenario in scenarios:
            for variant in args.variants.split(","):
                print(f"  {scenario} / {variant} ...", file=sys.stderr, flush=True)
                run = run_stop if scenario == "stop" else run_disk
                row = run(procs, variant, trees[variant], work, args)
                print(f"    {json.dumps(row)}", file=sys.stderr, flush=True)
                rows.append(row)
                procs.kill_all()
    finally:
        procs.kill_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work folder kept: {work}", file=sys.stderr)
    stall = {
        "stop": f"{args.stop_seconds:g} s SIGSTOP",
        "disk": f"{args.disk_seconds:g} s full disk",
    }
    print(f"\n{args.rate:,.0f} msgs/s x {args.size} B, baseline {args.baseline}")
    print("| stall | variant | sent | lost | gaps (missed) | recorder died | peak RSS | ratio |")
    print("|---|---|---:|---:|---:|---|---:|---|")
    for scenario in scenarios:
        by = {r["variant"]: r for r in rows if r["scenario"] == scenario}
        for variant, r in by.items():
            died = (
                "yes (assertion)" if r["assertion"] else ("yes" if r["died_during_run"] else "no")
            )
            rat = ""
            if variant == "ours" and "baseline" in by:
                rat = ratio(by["baseline"]["lost"], r["lost"])
            print(
                f"| {stall[scenario]} | {variant} | {r['sent']:,} | {r['lost']:,} | "
                f"{r['gap_records']} ({r['gaps_missed']:,}) | {died} | "
                f"{r.get('peak_rss_mb', '-')} MB | {rat} |"
            )
    OUT_DIR.mkdir(exist_ok=True)
    meta = {"args": {k: str(v) for k, v in vars(args).items()}, "seconds": time.monotonic() - t0}
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
