"""`persist backup` of a ~1 GB log folder while a recorder records at 1,000 msgs/s.

    .venv/bin/python bench/backup.py [--messages N] [--rate 1000]

Uses the journal bench/tui_open.py builds (1,000,000 messages, ~0.9 GiB, a checkpoint
every 10,000; built once under bench/out/), copied to a scratch folder that a real
`persist record` (behind a real `persist broker`) then appends to while a publisher
process sends `--rate` messages of 600 bytes a second. In the same run:
- baseline: `cp -a` of the live folder (what people do), then every checkpoint of the
  copy verified against the copied journal (a copy taken while the journal grows may
  hold a checkpoint naming bytes it lacks);
- ours: `persist backup DEST` (time, bytes), then a second, incremental run;
- the consistency check: `persist restore-backup` (every file against the manifest,
  every checkpoint digest) and the restored journal a prefix of the live one;
- `persist doctor` on the live folder (the recorder still running).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

PUBLISHER = r"""
import sys, time
from recorder.bus.publisher import Publisher
endpoint, rate = sys.argv[1], float(sys.argv[2])
body = "x" * 560
with Publisher(endpoint, agent="bench") as pub:
    pub.wait_ready(10)
    t0 = time.monotonic()
    n = 0
    while True:
        due = int((time.monotonic() - t0) * rate)
        while n < due:
            pub.send("agents.bench", {"text": f"message {n} {body}", "sender": "bench"})
            n += 1
        time.sleep(0.005)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def persist(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args], capture_output=True, text=True, cwd=ROOT
    )
    return time.perf_counter() - t0, out


def status(log_dir: Path) -> dict:
    try:
        return json.loads((log_dir / "status.json").read_bytes())
    except (OSError, ValueError):
        return {}


def verify_copy(root: Path) -> tuple[int, list[str]]:
    """Every checkpoint of a copied folder against its journal (one read per segment)."""
    from recorder.store.checkpoints import list_checkpoints, prefix_digests, verify_checkpoint
    from recorder.store.layout import Layout, list_segments

    layout = Layout(root)
    cps = list_checkpoints(layout)
    sizes: dict[str, list[int]] = {}
    for cp in cps:
        for e in cp.segments:
            sizes.setdefault(str(e["name"]), []).append(int(e["size"]))
    known = {
        (p.name, n): d
        for p in list_segments(layout)
        for n, d in prefix_digests(p, sizes.get(p.name, [])).items()
    }
    bad = [cp.id for cp in cps if not verify_checkpoint(layout, cp, known).ok]
    return len(cps), bad


def main() -> int:
    from tui_open import build

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args()
    source = args.out / f"journal-{args.messages}"
    build(source, args.messages)
    work = args.out / "backup-bench"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    live = work / "live"
    shutil.copytree(source, live, symlinks=True)
    (live / ".complete").unlink(missing_ok=True)
    front, back = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    py = sys.executable
    procs: list[subprocess.Popen[bytes]] = []

    def start(*argv: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        procs.append(proc)
        return proc

    rows: list[tuple[str, str]] = []
    try:
        start(py, "-m", "recorder.cli", "broker", "--frontend", front, "--backend", back)
        time.sleep(0.5)
        rec = start(
            py, "-m", "recorder.cli", "record", "--broker", back, "--log-dir", str(live),
            "--embedded", "no",
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while status(live).get("connection") != "connected" or status(live).get("pid") != rec.pid:
            if time.monotonic() > deadline:
                raise SystemExit("the recorder did not start")
            time.sleep(0.1)
        start(py, "-c", PUBLISHER, front, str(args.rate))
        time.sleep(3)
        size = sum(p.stat().st_size for p in live.rglob("*") if p.is_file())
        seq0 = status(live).get("last_seq", 0)
        t_cp0 = time.perf_counter()
        subprocess.run(["cp", "-a", str(live), str(work / "cp-copy")], check=True)
        t_cp = time.perf_counter() - t_cp0
        subprocess.run(["sync"], check=True)  # cp -a does not make its copy durable
        t_sync = time.perf_counter() - t_cp0 - t_cp
        cps, bad = verify_copy(work / "cp-copy")
        dest = work / "backup"
        t1, first = persist("backup", str(dest), "--log-dir", str(live), "--json")
        if first.returncode:
            raise SystemExit(first.stderr)
        time.sleep(2)
        t2, second = persist("backup", str(dest), "--log-dir", str(live), "--json")
        if second.returncode:
            raise SystemExit(second.stderr)
        t_doc, doctor = persist("doctor", "--log-dir", str(live), "--json")
        seq1 = status(live).get("last_seq", 0)
        counts = status(live).get("counts", {})
        for proc in procs[2:]:
            proc.kill()
        t3, back_out = persist("restore-backup", str(dest), str(work / "restored"), "--json")
        one, two = json.loads(first.stdout), json.loads(second.stdout)
        restored = json.loads(back_out.stdout) if back_out.returncode in (0, 5) else {}
        prefix = all(
            (live / "segments" / p.name).read_bytes().startswith(p.read_bytes())
            for p in (work / "restored" / "segments").iterdir()
        )
        report = json.loads(doctor.stdout)
        rate = (seq1 - seq0) / (t_cp + t_sync + t1 + 2 + t2 + t_doc)
        rows += [
            ("log folder", f"{size / 2**30:.2f} GiB, recorder writing {rate:,.0f} records/s"),
            (
                "baseline: cp -a",
                f"{t_cp:.1f} s (+ {t_sync:.1f} s of sync); checkpoints of the copy verified: "
                f"{cps - len(bad)}/{cps}"
                + (f" ({len(bad)} name bytes the copy lacks)" if bad else ""),
            ),
            (
                "ours: persist backup",
                f"{t1:.1f} s, {one['copied_bytes'] / 2**20:,.0f} MiB copied and verified, "
                f"{one['files']} files, consistent at {one['position']['segment']} "
                f"byte {one['position']['offset']:,}",
            ),
            (
                "ours: second run (incremental)",
                f"{t2:.1f} s, {two['copied_bytes'] / 2**20:,.1f} MiB copied, "
                f"{two['reused_bytes'] / 2**20:,.0f} MiB reused",
            ),
            (
                "restore-backup (consistency)",
                f"exit {back_out.returncode} in {t3:.1f} s: {restored.get('files')} files match "
                f"the manifest, {restored.get('checkpoints_verified')} checkpoints verified, "
                f"problems {restored.get('problems')}; restored journal a prefix of the live "
                f"one: {prefix}",
            ),
            (
                "persist doctor (recorder running)",
                f"{t_doc:.1f} s, exit {doctor.returncode}, result {report['result']} "
                f"({report['counts']})",
            ),
            (
                "recorder while backing up",
                f"missed {counts.get('missed')}, gaps {counts.get('gaps')}",
            ),
        ]
        for f in report["findings"]:
            if f["severity"] != "ok":
                rows.append(("  doctor finding", f"{f['severity']}: {f['summary']}"))
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print(
        f"ratio: (cp -a + sync) / persist backup = {(t_cp + t_sync) / t1:.2f}; "
        f"first / incremental = {t1 / t2:.1f}"
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
