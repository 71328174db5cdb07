"""Costs that should not grow with the journal: restore, exports, continuing an agent.

    .venv/bin/python bench/costs.py [--sizes 100k,1M,3M] [--runs 1] [--skip launch,full,cpu]

For each size, a journal of that many messages (about 2 KB each: prose, code, tool
calls and results; a checkpoint every 10,000; each message's meta with the secret
scan's result as the recorder writes it, or without with `--unscanned`, as older
recorders wrote clean messages) is built once with the recorder's own
journal writer (`bench/costs_journal.py`) and cached under the folder printed first
(`$PERSIST_COSTS_DIR`, default /tmp/persist-costs). Its segments are read once so
that every variant runs from the page cache. Then, ours next to a baseline in the
same run, each in its own process (interpreter start included, both sides), each
after a `sync` (untimed: no run pays for writing back the one before's output):

- restore "latest" (`persist restore latest`, default: the last 1000 messages) and
  restore latest `--full` (the whole transcript), against `cat` of every segment into
  a JSONL file plus a naive Markdown loop (orjson.loads each line, one f-string per
  message), the baseline the issue names;
- a repeated restore of the same checkpoint (the bundle in place is verified and kept);
- export md, html and csv (`persist export --all --format FMT`) against the naive
  Markdown loop: first with nothing kept (the render cache removed first), then with
  the closed segments kept warm as the recorder's indexer keeps them
  (`export.warm_renders`, run untimed before the row, its CPU time printed); each also
  "in one process" (`Parallel(workers=1)`, the path a range under 64 MiB takes, which
  reads no render cache), checked to be the same bytes;
  restore `--full` likewise (nothing kept, then kept warm in Markdown unredacted, as
  a restore asks the indexer to keep it, then in one process);
- export jsonl (`persist export --all --format jsonl`) against `cat`;
- `on_agent_connected` → the agent running with the checkpoint: a child process
  makes a `PersistenceLauncher` (its recorder starts on free loopback ports, with the
  embedded broker; no terminal, policy "latest"), calls `on_agent_connected`, starts
  an agent process that reads its `PERSIST_RESTORE_FILE`, and reports the times.
  It runs on a fresh folder whose closed segments are hard links to the cached
  journal (never modified) and whose last segment is a copy. `--full` runs with
  nothing kept, then with the closed segments kept warm in Markdown unredacted (the
  render cache is copied into that folder with the other derived files);
- persist-tui's first screen (`bench/tui_cold.py`'s run of the app, headless at
  120x36 in a fresh interpreter): the journal as a real recorder leaves it (it
  compressed and indexed the closed segments first, untimed) against the same
  journal with no cache at all, on two such folders made like the one above.

Then, once (`--skip cpu` leaves it out): the recorder's CPU at idle, 100/s and
1000/s of 2 KB messages next to a bare SUB, as `bench/cpu.py` measures it.

Each row prints the machine's load average, which other agents share, and the CPU
seconds (user + system, every process of the row) of ours and of the baseline.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.costs_journal import build  # noqa: E402
from recorder.daemon.warm import IndexWarmer  # noqa: E402
from recorder.export import render_cache  # noqa: E402
from recorder.export.warm_renders import RenderWarmer  # noqa: E402
from recorder.store.checkpoints import list_checkpoints  # noqa: E402
from recorder.store.layout import Layout, list_segments, segment_number  # noqa: E402
from recorder.store.reader import open_store  # noqa: E402

CACHE = Path(os.environ.get("PERSIST_COSTS_DIR", "/tmp/persist-costs"))
PERSIST = [sys.executable, "-m", "recorder.cli"]

NAIVE_MD = r"""
import sys, orjson
from pathlib import Path
root, out_path = Path(sys.argv[1]), sys.argv[2]
with open(out_path, "w") as out:
    for seg in sorted((root / "segments").glob("seg-*.jsonl")):
        with open(seg, "rb") as f:
            for line in f:
                rec = orjson.loads(line)
                if rec.get("kind") != "msg":
                    continue
                payload = rec["frames"][-1].get("json") or {}
                out.write(f"**{rec['meta'].get('sender')}** · {rec['topic']} · {rec['ts']}"
                          f"\n\n> {payload.get('text', '')}\n\n")
"""

ONE_PROCESS = r"""
import shutil, sys
from pathlib import Path
from recorder.export.parallel import SERIAL
from recorder.store.reader import open_store
root, what, out_path = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
if what == "full":  # `persist restore latest --full --allow-damage`, one process
    from recorder.export.restore import build_bundle
    from recorder.export.scope import BundleScope
    from recorder.store.checkpoints import resolve_checkpoint
    from recorder.store.layout import Layout
    shutil.rmtree(root / "restore", ignore_errors=True)
    cp = resolve_checkpoint(Layout(root), "latest")
    build_bundle(root, cp, scope=BundleScope.whole(), parallel=SERIAL)
else:  # `persist export --all --format FMT -o OUT`, one process
    from recorder.export.writers import export_range
    from recorder.store.ranges import JournalRange
    from recorder.store.fsutil import AtomicFile
    store = open_store(root)
    with AtomicFile(Path(out_path), durable=False) as target:
        export_range(store, JournalRange(0, len(store)), what, target.file, parallel=SERIAL)
"""

CHILD_LAUNCH = r"""
import json, os, subprocess, sys, time
t0 = time.perf_counter()
from recorder.export.scope import BundleScope
from recorder.launch.launcher import PersistenceLauncher
log_dir, broker, publish, scope = sys.argv[1:5]
pl = PersistenceLauncher(log_dir, broker=broker, publish_endpoint=publish, embedded="yes",
                         no_tty_policy="latest", interactive=False,
                         restore_scope=BundleScope.whole() if scope == "full" else None)
t1 = time.perf_counter()
res = pl.on_agent_connected("bench")
t2 = time.perf_counter()
agent = subprocess.run(
    [sys.executable, "-c", "import os, time; n = len(open(os.environ['PERSIST_RESTORE_FILE'],"
     " 'rb').read()); print(time.perf_counter(), n)"],
    env={**os.environ, **res.env()}, capture_output=True, text=True, check=True)
t3 = time.perf_counter()
gone = pl.on_agent_exit()
m = res.bundle.manifest if res.bundle else {}
print(json.dumps({"import": t1 - t0, "connected": t2 - t1, "agent_read": t3 - t1,
                  "timings": pl.timings, "kind": str(res.kind), "messages": m.get("messages"),
                  "bundle_bytes": int(agent.stdout.split()[1]),
                  "ok": m.get("integrity", {}).get("ok"), "stopped": gone.stopped}))
"""


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


def label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


CPU: list[float] = []  # CPU seconds (user + system) of each `timed` run, children included


def timed(argv: list[str], **kw: object) -> float:
    # Untimed, every contender starts with nothing waiting to be written back: the
    # outputs of the run before (1.6-3 GiB) would otherwise be written back by the
    # kernel during this one, on the same two cores (by hand, a 1M md export right after
    # the naive loop took 7.68-8.13 s, and 7.33-7.57 s with a `sync` between them).
    os.sync()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, check=False, cwd=ROOT, **kw)  # type: ignore[call-overload]
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall


def cpu_since(mark: int) -> float:
    """CPU seconds of the `timed` runs since `len(CPU)` was `mark`."""
    return sum(CPU[mark:])


def cat(root: Path, out: Path) -> float:
    segs = sorted(str(p) for p in (root / "segments").glob("seg-*.jsonl"))
    out.unlink(missing_ok=True)  # a new file, as every contender writes
    with open(out, "wb") as f:
        return timed(["cat", *segs], stdout=f)


def naive_md(root: Path, out: Path) -> float:
    out.unlink(missing_ok=True)  # every contender writes a new file, its old one gone untimed
    return timed([sys.executable, "-c", NAIVE_MD, str(root), str(out)])


def same_bytes(a: Path, b: Path) -> bool:
    """Whether two outputs hold the same bytes, read in blocks; both are then removed.

    Outputs of 1.6-3 GiB each would otherwise pile up in the page cache row after row
    (and a whole-file read would push the journal out of it), so the later rows would
    run with less free memory than the earlier ones."""
    try:
        return filecmp.cmp(a, b, shallow=False)
    finally:
        a.unlink(missing_ok=True)
        b.unlink(missing_ok=True)


def best(fn, runs: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """The fastest of `runs` runs of `fn`: (wall seconds, its CPU seconds)."""
    out = []
    for _ in range(runs):
        mark = len(CPU)
        wall = fn()
        out.append((wall, cpu_since(mark)))
    return min(out)


def journal(n: int, scanned: bool = True) -> Path:
    """The cached journal of `n` messages (`scanned`: with the recorder's scan result
    in each message's meta, as recorders write them since 2026-12-02; else as before)."""
    name = f"j{n}-scanned" if scanned else f"j{n}"
    root = CACHE / name
    if not (root / "checkpoints").is_dir():
        building = CACHE / f"{name}.building"
        shutil.rmtree(building, ignore_errors=True)
        print(f"building a journal of {n:,} messages in {root} (once)", file=sys.stderr)
        build(building, n, scanned=scanned)
        building.rename(root)
    return root


def warm(root: Path) -> None:
    """Segments in the page cache, and their derived files as the recorder leaves them:
    each closed segment's line index, marks and check, written by the recorder's
    background thread (`IndexWarmer`, issue 13 item 3; without compression, as the
    journal is plain)."""
    for seg in sorted((root / "segments").glob("seg-*.jsonl")):
        with open(seg, "rb") as f:
            while f.read(1 << 24):
                pass
    layout = Layout(root)
    last = max(segment_number(p.name) or 0 for p in list_segments(layout))
    IndexWarmer(layout).warm(below=last)
    open_store(root).close()


def bundle_hashes(root: Path) -> dict[str, str]:
    """The SHA-256 of each file of the one restore bundle in place (its manifest's)."""
    [manifest] = (root / "restore").glob("*/manifest.json")
    files = json.loads(manifest.read_bytes())["files"]
    return {name: files[name]["sha256"] for name in ("jsonl", "markdown")}


def warm_renders(root: Path, fmt: str, redact: bool = True) -> float:
    """What the recorder's indexer renders of the closed segments in `fmt` (redacted,
    as exports write it by default; unredacted, as `restore --full` asks for it) when
    it has nothing to index (`export.warm_renders`); its CPU seconds."""
    t0 = time.process_time()
    warmer = RenderWarmer(root, only=frozenset({(fmt, redact)}))
    while warmer.step(60.0):
        pass
    return time.process_time() - t0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch_copy(root: Path, into: Path) -> Path:
    """A log folder sharing the journal's closed segments (hard links, never written)."""
    log = into / "logs"
    (log / "segments").mkdir(parents=True)
    segs = sorted((root / "segments").glob("seg-*.jsonl"))
    for seg in segs[:-1]:
        os.link(seg, log / "segments" / seg.name)
    shutil.copy2(segs[-1], log / "segments" / segs[-1].name)
    # derived files too, but not the last segment's: they describe the cached file,
    # and the last segment here is a copy (a reader would find them for another file)
    stale = shutil.ignore_patterns(f"{segs[-1].name}.*")
    for sub in ("checkpoints", "metadata_index", "recovery", "render_cache"):
        if (root / sub).is_dir():
            shutil.copytree(root / sub, log / sub, ignore=stale)
    os.symlink(f"segments/{segs[-1].name}", log / "current_session.jsonl")
    for path in [log, *log.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o700 if path.is_dir() else 0o600)
    return log


@dataclass
class LaunchRun:
    connected: float  # on_agent_connected, seconds
    agent_read: float  # from the call to the agent having read its bundle
    timings: dict[str, float]
    messages: int | None
    ok: bool | None


def launch_once(root: Path, scope: str) -> LaunchRun:
    with tempfile.TemporaryDirectory(prefix="persist-costs-launch-", dir=CACHE) as tmp:
        log = launch_copy(root, Path(tmp))
        argv = [sys.executable, "-c", CHILD_LAUNCH, str(log)]
        argv += [f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}", scope]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
        if out.returncode != 0:
            raise RuntimeError(f"launch child failed: {out.stderr[-2000:]}")
        data = json.loads(out.stdout.strip().splitlines()[-1])
        return LaunchRun(
            data["connected"], data["agent_read"], data["timings"], data["messages"], data["ok"]
        )


def row(
    name: str,
    ours: float,
    base: float | None,
    base_name: str,
    note: str = "",
    cpu: tuple[float, float] | None = None,
) -> None:
    """One table row; `cpu`: (ours, baseline) CPU seconds, shown with their ratio."""
    ratio = f"{ours / base:5.2f}x" if base else "     "
    base_text = f"{base:8.2f} s" if base is not None else " " * 10
    cpu_text = ""
    if cpu is not None:
        cpu_text = f"cpu {cpu[0]:.2f} s vs {cpu[1]:.2f} s ({cpu[0] / max(cpu[1], 1e-9):.2f}x) "
    print(
        f"| {name:<36} | {ours:8.2f} s | {base_text} {base_name:<22} | {ratio} | {load():>14} |"
        f" {cpu_text}{note}",
        flush=True,
    )


def measure(root: Path, out: Path, runs: int, skip: set[str]) -> None:
    """Every row for one journal (`out`: a scratch folder). The machine is shared, so
    each row measures its baseline right before ours (best of `runs` each)."""
    restore = [*PERSIST, "restore", "latest", "--log-dir", str(root), "--allow-damage"]
    export = [*PERSIST, "export", "--all", "--allow-damage", "--no-progress"]
    export += ["--log-dir", str(root)]

    def base_restore() -> float:
        return cat(root, out / "cat.jsonl") + naive_md(root, out / "naive.md")

    def fresh(argv: list[str]) -> float:
        shutil.rmtree(root / "restore", ignore_errors=True)
        return timed(argv, stdout=subprocess.DEVNULL)

    def exported(fmt: str, kept: bool = True) -> float:
        # The last run's output is removed first, untimed, as `cat` truncates its own
        # before the clock starts: unlinking a 1.6 GiB file costs about 0.7 s, which
        # the export (it writes a temporary file and renames it over the old one)
        # would otherwise pay inside its time. The same for every contender.
        (out / f"x.{fmt}").unlink(missing_ok=True)
        if not kept:  # nothing rendered before (an export itself keeps nothing)
            shutil.rmtree(render_cache.folder_of(root), ignore_errors=True)
        argv = [*export, "--format", fmt, "-o", str(out / f"x.{fmt}")]
        return timed(argv, stderr=subprocess.DEVNULL)

    def one_process(what: str) -> float:
        if what == "full":
            shutil.rmtree(root / "restore", ignore_errors=True)
        (out / f"y.{what}").unlink(missing_ok=True)
        return timed([sys.executable, "-c", ONE_PROCESS, str(root), what, str(out / f"y.{what}")])

    def pair(name: str, ours: Callable[[], float], base: Callable[[], float], what: str) -> None:
        b, b_cpu = best(base, runs)
        o, o_cpu = best(ours, runs)
        row(name, o, b, what, cpu=(o_cpu, b_cpu))

    if "restore" not in skip:
        pair('restore "latest" (last 1000)', lambda: fresh(restore), base_restore, "cat + naive md")
        again, _cpu = best(lambda: timed(restore, stdout=subprocess.DEVNULL), runs)
        row("  again (kept, re-verified)", again, None, "")
    if "full" not in skip:
        shutil.rmtree(render_cache.folder_of(root), ignore_errors=True)
        pair(
            'restore "latest" --full, nothing kept',
            lambda: fresh([*restore, "--full"]),
            base_restore,
            "cat + naive md",
        )
        shutil.rmtree(render_cache.folder_of(root), ignore_errors=True)
        seconds = warm_renders(root, "md", redact=False)
        pair(
            "  --full, kept warm by the indexer",
            lambda: fresh([*restore, "--full"]),
            base_restore,
            "cat + naive md",
        )
        print(
            f"  (the indexer rendered md unredacted before that row, untimed: {seconds:.2f} s CPU)"
        )
        kept_warm = bundle_hashes(root)
        shutil.rmtree(render_cache.folder_of(root), ignore_errors=True)
        pair("  --full in one process", lambda: one_process("full"), base_restore, "cat + naive md")
        same = kept_warm == bundle_hashes(root)
        print(f"  (the kept-warm bundle's files are the one-process ones, by SHA-256: {same})")
        # an earlier full bundle in place (the checkpoint before): the rest is rendered
        earlier = list_checkpoints(Layout(root))[1].id

        def after_previous() -> float:
            # the earlier bundle is made untimed (before 2026-12-06 it was a `timed`
            # run, whose CPU the row printed as its own)
            shutil.rmtree(root / "restore", ignore_errors=True)
            previous = [*PERSIST, "restore", earlier, *restore[len(PERSIST) + 2 :], "--full"]
            subprocess.run(previous, check=False, cwd=ROOT, stdout=subprocess.DEVNULL)
            return timed([*restore, "--full"], stdout=subprocess.DEVNULL)

        pair("  --full after the previous one's", after_previous, base_restore, "cat + naive md")
        shutil.rmtree(root / "restore", ignore_errors=True)
    for fmt in ("md", "html", "csv"):
        if fmt not in skip:
            pair(
                f"export {fmt}, nothing kept",
                lambda f=fmt: exported(f, kept=False),
                lambda: naive_md(root, out / "naive.md"),
                "naive md loop",
            )
            shutil.rmtree(render_cache.folder_of(root), ignore_errors=True)
            seconds = warm_renders(root, fmt)
            pair(
                f"  {fmt}, kept warm by the indexer",
                lambda f=fmt: exported(f),
                lambda: naive_md(root, out / "naive.md"),
                "naive md loop",
            )
            print(f"  (the indexer rendered {fmt} before that row, untimed: {seconds:.2f} s CPU)")
            shutil.rmtree(render_cache.folder_of(root), ignore_errors=True)
            pair(
                f"  {fmt} in one process",
                lambda f=fmt: one_process(f),
                lambda: naive_md(root, out / "naive.md"),
                "naive md loop",
            )
            same = same_bytes(out / f"x.{fmt}", out / f"y.{fmt}")
            print(f"  (the {fmt} export is byte for byte the one-process one: {same})")
    if "jsonl" not in skip:
        pair("export jsonl", lambda: exported("jsonl"), lambda: cat(root, out / "cat.jsonl"), "cat")
        same = same_bytes(out / "x.jsonl", out / "cat.jsonl")
        print(f"  (the JSONL export is byte for byte the cat of the segments: {same})")
    if "launch" not in skip:
        shutil.rmtree(render_cache.folder_of(root), ignore_errors=True)
        for scope, warm in (("last", False), ("full", False), ("full", True)):
            if scope in skip:
                continue
            if warm:  # what a first `--full` asks the recorder's indexer to keep
                seconds = warm_renders(root, "md", redact=False)
                print(f"  (the indexer rendered md unredacted, untimed: {seconds:.2f} s CPU)")
            base_time = base_restore() if scope == "full" else None
            r = min((launch_once(root, scope) for _ in range(runs)), key=lambda x: x.agent_read)
            note = (
                f"connect {r.connected:.2f} s: recorder {r.timings.get('recorder', 0):.2f} s, "
                f"bundle {r.timings.get('bundle', 0):.2f} s (built meanwhile); "
                f"{r.messages} msgs, ok={r.ok}"
            )
            name = f"on_agent_connected → agent ({scope}{', kept warm' if warm else ''})"
            row(name, r.agent_read, base_time, "cat + naive md" if base_time else "", note)
        shutil.rmtree(render_cache.folder_of(root), ignore_errors=True)
    if "tui" not in skip:
        tui_rows(root, out, runs)


def tui_rows(root: Path, out: Path, runs: int) -> None:
    """persist-tui's first screen (`bench/tui_cold.py`): the journal as a real recorder
    leaves it (it compressed and indexed the closed segments, untimed) against the
    same journal with no cache at all; best of `runs`, alternating."""
    from bench.tui_cold import first_screen, recorder_leaves

    base, ours = launch_copy(root, out / "tui-base"), launch_copy(root, out / "tui-ours")
    for folder in (base, ours):
        shutil.rmtree(folder / "metadata_index", ignore_errors=True)
        shutil.rmtree(render_cache.folder_of(folder), ignore_errors=True)
    took = recorder_leaves(ours)
    print(f"  (a recorder compressed and indexed the closed segments first, untimed: {took:.0f} s)")
    got: dict[str, list[dict[str, float]]] = {"base": [], "ours": []}
    for _ in range(runs):
        shutil.rmtree(base / "metadata_index", ignore_errors=True)  # its open writes them
        got["base"].append(first_screen(base))
        got["ours"].append(first_screen(ours))
    b, o = (min(got[k], key=lambda r: r["ready_s"]) for k in ("base", "ours"))
    note = f"RSS {o['rss_mb']:.0f} MB vs {b['rss_mb']:.0f} MB; {int(o['records']):,} records"
    row("TUI first screen", o["ready_s"], b["ready_s"], "no cache at all", note)
    shutil.rmtree(out / "tui-base")
    shutil.rmtree(out / "tui-ours")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1M,3M", help="e.g. 100k,1M,3M")
    parser.add_argument("--runs", type=int, default=1, help="best of N for each variant")
    parser.add_argument(
        "--skip",
        default="",
        help="rows to leave out: restore,full,md,html,csv,jsonl,launch,tui,cpu",
    )
    parser.add_argument(
        "--unscanned",
        action="store_true",
        help="journals without the recorder's scan result in meta (every reader scans)",
    )
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"journals cached in {CACHE}; {os.cpu_count()} cores; load {load()} (1/5/15 min)")
    for n in (parse_size(s) for s in args.sizes.split(",")):
        root = journal(n, scanned=not args.unscanned)
        warm(root)
        size = sum(p.stat().st_size for p in (root / "segments").glob("seg-*.jsonl"))
        segs = len(list((root / "segments").glob("seg-*.jsonl")))
        print(f"\n## {label(n)} messages: {size / 2**30:.2f} GiB in {segs} segments ({root})\n")
        print(f"| {'operation':<36} | {'ours':>10} | {'baseline':>10} {'':<22} | ratio  | load")
        print(f"|{'-' * 38}|{'-' * 12}|{'-' * 35}|--------|----------------|")
        with tempfile.TemporaryDirectory(prefix="persist-costs-", dir=CACHE) as tmp:
            measure(root, Path(tmp), max(1, args.runs), skip)
    if "cpu" not in skip:
        from bench import cpu

        print("\n## Recorder CPU when traffic is light (bench/cpu.py)\n", flush=True)
        return cpu.main([])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
