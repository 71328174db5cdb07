"""Compression of closed segments: codec by measurement, ratio, and read speed
compressed vs plain, on the same journal in the same run.

    .venv/bin/python bench/compress.py                      # 1M messages (~2 GB), ~5-10 min
    .venv/bin/python bench/compress.py --messages 100000    # a quick look
    .venv/bin/python bench/compress.py --root /tmp/j --keep # build once, reuse

1. Journals: `bench/costs_journal.py`'s realistic agent traffic (prose with Markdown,
   code blocks, JSON tool calls, test output; ~2 KB a message; 64 MiB segments), and,
   when `/work/shared/realdata` is there, real Claude Code / Gemini CLI / Codex session
   lines published as message payloads (as `persist hook` does), cycled to
   `--real-messages`.
2. Codecs on a sample of each journal, cut into frames of the size the format uses
   (independent frames, as random access needs): zlib levels (stdlib) and zstd levels,
   plus zstd with a dictionary trained on the first half of the sample.
3. Reads of the plain journal: opening it (a fresh Store's first refresh, every line
   index cache loaded and checked, as the TUI does), random records (one `record(i)` each),
   a full sequential scan (`Store.blocks`), `persist export --all --format jsonl`
   to /dev/null (the real CLI), and re-hashing every segment for the latest checkpoint.
4. `store.compact.compact` (what the recorder and `persist compact` run): ratio, MB/s.
5. The same reads again, now of the compressed journal; ratios printed.
6. The recorder's receive path with compression on and off (`--compress`): a real
   broker and `persist record --segment-mb 4` (a rotation every ~2,000 messages, so
   the background thread compresses all along) take a flood of `--flood` 2 KB
   messages; the rate is messages over the span of their receive times in the
   journal; the runs alternate off, on, off, on.

Both forms are read from the page cache (the machine has the RAM): this compares the
CPU cost of reading, not the disk. The machine is shared: run it twice.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import orjson
import zstandard

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.costs_journal import build  # noqa: E402
from recorder.store.checkpoints import list_checkpoints, verify_checkpoint  # noqa: E402
from recorder.store.compact import compact  # noqa: E402
from recorder.store.layout import Layout, list_segments  # noqa: E402
from recorder.store.reader import Store  # noqa: E402
from recorder.store.segfile import FRAME_BYTES, LEVEL, segment_size  # noqa: E402
from tests.demo_journal import DemoClock, DemoWriter  # noqa: E402

REALDATA = Path("/work/shared/realdata")
MB = 1e6


def real_journal(root: Path, messages: int) -> None:
    """Real agent session lines as message payloads, cycled, 64 MiB segments."""
    lines = [
        line
        for path in sorted(REALDATA.rglob("*.jsonl"))
        for line in path.read_bytes().splitlines()
        if line.startswith(b"{")
    ]
    payloads = []
    for line in lines:
        try:
            payloads.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    clock = DemoClock(1_800_000_000.0)
    w = DemoWriter.open(root, clock=clock)
    for i in range(messages):
        clock.now += 0.25
        payload = payloads[i % len(payloads)]
        sender = str(payload.get("type") or "agent") if isinstance(payload, dict) else "agent"
        w.message(clock.now, sender, "", topic="agents.claude", extra={"line": payload})
        if (i + 1) % 10_000 == 0 or i + 1 == messages:
            w.checkpoint(clock.now + 0.1, f"after {i + 1}", "periodic")
    w.close()


def journal_bytes(root: Path, limit: int) -> bytes:
    out = bytearray()
    for path in list_segments(Layout(root)):
        with open(path, "rb") as f:
            out += f.read(limit - len(out))
        if len(out) >= limit:
            break
    return bytes(out)


def codecs(sample: bytes) -> None:
    frames = [sample[i : i + FRAME_BYTES] for i in range(0, len(sample), FRAME_BYTES)]
    half = len(sample) // 2
    trained = zstandard.train_dictionary(
        112_640, [sample[i : i + 4096] for i in range(0, half, 4096)]
    )
    test_frames = [f for f in frames[len(frames) // 2 :]]
    rows: list[tuple[str, list[bytes], Callable[[bytes], bytes], Callable[[bytes], bytes]]] = []
    for level in (1, 6, 9):
        rows.append(
            (f"zlib {level}", frames, lambda b, lv=level: zlib.compress(b, lv), zlib.decompress)
        )
    for level in (1, 3, 6, 9):
        c = zstandard.ZstdCompressor(level=level)
        rows.append((f"zstd {level}", frames, c.compress, zstandard.ZstdDecompressor().decompress))
    for size in (64 << 10, 1 << 20):  # other frame sizes: random reads vs ratio
        c = zstandard.ZstdCompressor(level=LEVEL)
        other = [sample[i : i + size] for i in range(0, len(sample), size)]
        name = f"zstd {LEVEL}, {size >> 10} KiB frames"
        rows.append((name, other, c.compress, zstandard.ZstdDecompressor().decompress))
    cd = zstandard.ZstdCompressor(level=LEVEL, dict_data=trained)
    dd = zstandard.ZstdDecompressor(dict_data=trained)
    rows.append((f"zstd {LEVEL} + dict (2nd half)", test_frames, cd.compress, dd.decompress))
    c = zstandard.ZstdCompressor(level=LEVEL)
    rows.append(
        (
            f"zstd {LEVEL} (2nd half)",
            test_frames,
            c.compress,
            zstandard.ZstdDecompressor().decompress,
        )
    )
    print(f"  {'codec':<28} {'ratio':>7} {'compress':>12} {'decompress':>12} {'one frame':>10}")
    for name, fr, comp, decomp in rows:
        size = sum(map(len, fr))
        t = time.perf_counter()
        packed = [comp(f) for f in fr]
        tc = time.perf_counter() - t
        t = time.perf_counter()
        for p in packed:
            decomp(p)
        td = time.perf_counter() - t
        ratio = size / sum(map(len, packed))
        one = td / len(packed) * 1e3
        print(
            f"  {name:<28} {ratio:>6.2f}:1 {size / tc / MB:>8.0f} MB/s "
            f"{size / td / MB:>8.0f} MB/s {one:>7.2f} ms"
        )


def reads(root: Path, samples: int) -> dict[str, float]:
    """Seconds for each way of reading the journal (see the module docstring)."""
    out: dict[str, float] = {}
    with Store(root) as store:
        store.refresh()  # writes any line index cache still missing
    with Store(root) as store:
        t = time.perf_counter()
        store.refresh()  # what the TUI does first: every segment's cache loaded and checked
        out["open"] = time.perf_counter() - t
        n = len(store)
        rng = random.Random(5)
        picks = [rng.randrange(n) for _ in range(samples)]
        t = time.perf_counter()
        for i in picks:
            store.record(i).line  # noqa: B018
        out["random record"] = (time.perf_counter() - t) / samples
        t = time.perf_counter()
        total = sum(len(b.data) for b in store.blocks())
        out["full scan"] = time.perf_counter() - t
        out["scan bytes"] = total
    t = time.perf_counter()
    with open(os.devnull, "wb") as null:
        export = ["export", "--all", "--format", "jsonl", "--log-dir", str(root), "--no-progress"]
        subprocess.run(
            [sys.executable, "-m", "recorder.cli", *export],
            stdout=null,
            check=True,
        )
    out["export jsonl"] = time.perf_counter() - t
    layout = Layout(root)
    t = time.perf_counter()
    assert verify_checkpoint(layout, list_checkpoints(layout)[0]).ok
    out["verify digest"] = time.perf_counter() - t
    return out


def measure(label: str, root: Path, samples: int) -> None:
    layout = Layout(root)
    if any(p.name.endswith(".zst") for p in list_segments(layout)):
        raise SystemExit(f"{root} is compressed already: build a new one (no --root reuse)")
    print(f"\n== {label}: {root}")
    sample = journal_bytes(root, 64 << 20)
    print(f"codecs on the first {len(sample) / MB:.0f} MB, frames of {FRAME_BYTES // 1024} KiB:")
    codecs(sample)
    plain = reads(root, samples)
    size = sum(p.stat().st_size for p in list_segments(layout))
    t = time.perf_counter()
    report = compact(layout)
    seconds = time.perf_counter() - t
    assert not report.problems, report.problems
    if not report.done:
        raise SystemExit(f"{root} has no closed segment to compress: more messages, please")
    stored = sum(p.stat().st_size for p in list_segments(layout))
    whole = sum(segment_size(p) for p in list_segments(layout))
    assert whole == size
    print(
        f"compact (zstd {LEVEL}, write + read-back check + index): {len(report.done)} segments, "
        f"{report.size / MB:,.0f} MB -> {report.stored / MB:,.0f} MB, "
        f"ratio {report.size / report.stored:.2f}:1, {seconds:.1f} s "
        f"({report.size / seconds / MB:.0f} MB/s)"
    )
    print(
        f"journal on disk: {size / MB:,.0f} MB plain -> {stored / MB:,.0f} MB "
        f"({size / stored:.2f}:1 with the active segment plain)"
    )
    packed = reads(root, samples)
    print(f"  {'read':<16} {'plain':>12} {'compressed':>12} {'ratio':>7}")
    for key, unit, scale in (
        ("open", "ms", 1e3),
        ("random record", "µs", 1e6),
        ("full scan", "s", 1),
        ("export jsonl", "s", 1),
        ("verify digest", "s", 1),
    ):
        a, b = plain[key] * scale, packed[key] * scale
        print(f"  {key:<16} {a:>9.1f} {unit:<2} {b:>9.1f} {unit:<2} {b / a:>6.2f}x")
    mbs = plain["scan bytes"] / MB
    print(
        f"  full scan speed: {mbs / plain['full scan']:,.0f} MB/s plain, "
        f"{mbs / packed['full scan']:,.0f} MB/s compressed (uncompressed bytes)"
    )


def recorder_rate(compress: str, n: int) -> tuple[float, int, int]:
    """(messages/s received, segments compressed when the flood was written, segments)."""
    from recorder.bus.publisher import Publisher
    from tests.support import Proc, free_port, read_status, wait_for

    tmp = Path(tempfile.mkdtemp(prefix="persist-compress-rec-"))
    front, back = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    cli = [sys.executable, "-m", "recorder.cli"]
    log_dir = tmp / "logs"
    broker = Proc([*cli, "broker", "--frontend", front, "--backend", back], tmp / "b.out")
    rec = None
    try:
        time.sleep(1.0)
        options = ["--embedded", "no", "--segment-mb", "4", "--search-index", "off"]
        options += ["--compress", compress]
        rec = Proc(
            [*cli, "record", "--broker", back, "--log-dir", str(log_dir), *options],
            tmp / "r.out",
        )
        wait_for(lambda: read_status(log_dir).get("connection") == "connected", 30, "recorder")
        text = ("ran the tests, 3 failed: " + "x" * 40 + " ") * 30
        with Publisher(front, agent="flood", heartbeat_interval=0.5) as pub:
            assert pub.wait_ready(10)
            for i in range(n):
                pub.send("agents.flood", {"n": i, "text": text})

        def written() -> int:
            return int((read_status(log_dir).get("counts") or {}).get("written", 0))

        wait_for(lambda: written() >= n, 600, "the flood written")
        layout = Layout(log_dir)
        segments = list_segments(layout)
        packed = sum(p.name.endswith(".zst") for p in segments)
        with Store(log_dir) as store:
            store.refresh()
            ts = [r.ts for r in store.records() if r.is_message]
        assert len(ts) == n, (len(ts), n)
        return n / (ts[-1] - ts[0]), packed, len(segments)
    finally:
        if rec is not None:
            rec.kill()
        broker.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--real-messages", type=int, default=200_000)
    parser.add_argument("--samples", type=int, default=2_000, help="random record reads")
    parser.add_argument("--root", type=Path, help="build here (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the journals")
    parser.add_argument("--flood", type=int, default=100_000, help="messages (0: skip 6.)")
    parser.add_argument("--only-recorder", action="store_true", help="only 6.")
    args = parser.parse_args()
    if args.flood:
        print(f"recorder receive rate, {args.flood:,} messages of 2 KB, --segment-mb 4:")
        rates: dict[str, list[float]] = {"off": [], "on": []}
        for compress in ("off", "on", "off", "on"):
            rate, packed, segments = recorder_rate(compress, args.flood)
            rates[compress].append(rate)
            print(
                f"  --compress {compress:<3}: {rate:>8,.0f} msgs/s; "
                f"{packed} of {segments} segments compressed when all was written"
            )
        off, on = max(rates["off"]), max(rates["on"])
        print(f"  best of two: off {off:,.0f}, on {on:,.0f} msgs/s (on / off {on / off:.2f})")
    if args.only_recorder:
        return 0
    base = args.root or Path(tempfile.mkdtemp(prefix="persist-compress-"))
    try:
        synthetic = base / f"synthetic-{args.messages}"
        if not synthetic.exists():
            t = time.perf_counter()
            build(synthetic, args.messages)
            print(f"built {args.messages:,} messages in {time.perf_counter() - t:.0f} s")
        measure(f"synthetic agent traffic, {args.messages:,} messages", synthetic, args.samples)
        if REALDATA.is_dir() and args.real_messages:
            real = base / f"real-{args.real_messages}"
            if not real.exists():
                real_journal(real, args.real_messages)
            measure(
                f"real agent session lines, {args.real_messages:,} messages", real, args.samples
            )
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
