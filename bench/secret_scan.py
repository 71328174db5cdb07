#!/usr/bin/env python3
"""Secret detection: its cost on the recorder's hot path, its recall and false positives.

    .venv/bin/python bench/secret_scan.py                 # all three parts (a few minutes)
    .venv/bin/python bench/secret_scan.py --only accuracy # recall + false positives only
    .venv/bin/python bench/secret_scan.py --only cost     # hot-path CPU, in this process
    .venv/bin/python bench/secret_scan.py --only long     # one long frame (seconds)

1. cost: `Recorder.record_batch` (the receiving thread's work: parse, enrich, detect,
   format; the writer thread's too, in the same process) on batches of 256 messages,
   detection on and off alternating in the same run, CPU seconds per message (the
   best of --rounds rounds each), for the payload `bench/record.py` sends (prose) and
   for agent-like traffic (tool calls with code, ids, hashes, base64), 300 B and 2 KB.
2. e2e: real `persist broker` + `persist record` processes at full speed through
   `bench/record.py` (`--recorder-arg=--secrets=off` vs on), alternating, msgs/s each,
   and how many messages the recorder left unscanned because it was behind.
   cpu: the same recorder at fixed rates (below a flood: every message scanned) through
   `bench/cpu.py`, its CPU (% of one core) with detection on and off.
3. accuracy: recall on generated real-format keys (`tests/secret_samples.py`: every
   kind, in prose, code, URLs, punctuation, each also inside a JSON message), and false
   positives on realistic messages that hold no secret: Python standard library source
   (non-test modules of this interpreter), this repository's Markdown, and agent-like
   JSON tool calls full of UUIDs, git SHAs, hex digests, base64 blobs and ids.

4. long: one frame's scan on long payloads a prefilter pass hits by chance (a base64
   image, a hex dump, a PEM body; 64 KiB as the recorder scans them, and whole as an
   export does), ours (the regex tried near each prefilter hit) next to the regex tried
   at every byte (`finditer`, as before), the same spans checked, the best of --rounds.

The machine may be shared: the load average is printed with each part.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from recorder.daemon.core import Recorder  # noqa: E402
from recorder.daemon.options import RecorderOptions  # noqa: E402
from recorder.store import secrets as S  # noqa: E402
from tests.secret_samples import cases, found  # noqa: E402

FILLER = (
    "the planner agent asked the coder agent to refactor the journal writer and run the "
    "tests again; the reviewer agent replied with three comments about error handling, "
    "fsync intervals and segment rotation, then a tool call returned the diff summary. "
)
BATCH = 256


def load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


# -- realistic messages --------------------------------------------------------------------
def stdlib_lines() -> list[str]:
    """Source lines of the standard library's non-test modules."""
    lib = Path(sysconfig.get_paths()["stdlib"])
    lines: list[str] = []
    for path in sorted(lib.glob("*.py")) + sorted(lib.glob("*/*.py")):
        if "test" in path.parts[-2] or path.name.startswith("test"):
            continue
        try:
            lines += path.read_text("utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
    return [line for line in lines if line.strip()]


def docs_paragraphs() -> list[str]:
    paras: list[str] = []
    for path in sorted(ROOT.glob("*.md")) + sorted((ROOT / "docs").glob("*.md")):
        paras += [p for p in path.read_text("utf-8").split("\n\n") if p.strip()]
    return paras


def tool_call(rnd: random.Random, code: list[str]) -> bytes:
    """An agent-like tool call or result: code, ids, hashes, base64 (and no secret)."""
    sha = hashlib.sha1(rnd.randbytes(8)).hexdigest()
    body: dict[str, Any] = {
        "_persist": {"pub": f"claude-{rnd.randrange(99999)}-{rnd.randbytes(4).hex()}", "seq": 7},
        "type": rnd.choice(["tool_use", "tool_result"]),
        "id": "toolu_01" + base64.b32encode(rnd.randbytes(15)).decode(),
        "session_id": str(uuid.UUID(bytes=rnd.randbytes(16))),
        "name": rnd.choice(["Bash", "Read", "Edit", "Grep"]),
    }
    pick = rnd.random()
    if pick < 0.3:
        start = rnd.randrange(len(code) - 30)
        body["content"] = "\n".join(code[start : start + rnd.randint(3, 30)])
    elif pick < 0.5:
        body["input"] = {"command": f"git show {sha} --stat && git log -3 --format=%H"}
        body["content"] = "\n".join(
            f"{hashlib.sha1(rnd.randbytes(8)).hexdigest()} commit {i}" for i in range(5)
        )
    elif pick < 0.7:
        body["content"] = {
            "type": "image",
            "source": {
                "data": base64.b64encode(rnd.randbytes(rnd.choice([48, 300, 1200]))).decode()
            },
        }
    elif pick < 0.85:
        body["content"] = {
            "sha256": hashlib.sha256(rnd.randbytes(8)).hexdigest(),
            "etag": base64.urlsafe_b64encode(rnd.randbytes(24)).decode(),
            "request_id": "req_" + base64.b32encode(rnd.randbytes(10)).decode().lower(),
            "trace": str(uuid.UUID(bytes=rnd.randbytes(16))),
        }
    else:
        body["content"] = FILLER[: rnd.randint(40, len(FILLER))]
    return orjson.dumps(body)


def realistic(n: int, seed: int = 5) -> list[tuple[str, bytes]]:
    """`n` messages with no secret in them: (source, payload)."""
    rnd = random.Random(seed)
    code = stdlib_lines()
    docs = docs_paragraphs()
    out: list[tuple[str, bytes]] = []
    for i in range(n):
        which = i % 3
        if which == 0:
            start = rnd.randrange(len(code) - 8)
            text = "\n".join(code[start : start + rnd.randint(1, 8)])
            out.append(("stdlib", orjson.dumps({"type": "message", "text": text})))
        elif which == 1:
            out.append(("docs", orjson.dumps({"type": "message", "text": rnd.choice(docs)})))
        else:
            out.append(("tool", tool_call(rnd, code)))
    return out


# -- 1. hot-path cost ----------------------------------------------------------------------
def bench_payload(size: int, seq: int) -> bytes:
    head = {"_persist": {"pub": "bench-4242-9f2c1a", "seq": seq, "mid": f"bench-4242-9f2c1a:{seq}"}}
    body = {**head, "type": "message", "sender": "bench-agent", "text": ""}
    fixed = len(orjson.dumps(body))
    body["text"] = (FILLER * (size // len(FILLER) + 1))[: max(0, size - fixed)]
    return orjson.dumps(body)


def agent_payload(size: int, rnd: random.Random, code: list[str]) -> bytes:
    body = orjson.loads(tool_call(rnd, code))
    body["content"] = ""
    fixed = len(orjson.dumps(body))
    start = rnd.randrange(len(code) - 200)
    text = "\n".join(code[start : start + 200])
    body["content"] = text[: max(0, size - fixed)]
    return orjson.dumps(body)


def cost(rounds: int, sizes: list[int]) -> dict[str, Any]:
    print(f"\n1. hot-path cost (in-process record_batch; load {load()})")
    code = stdlib_lines()
    rnd = random.Random(9)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for traffic in ("bench", "agent"):
            for size in sizes:
                if traffic == "bench":
                    payloads = [bench_payload(size, 1000 + i) for i in range(BATCH)]
                else:
                    payloads = [agent_payload(size, rnd, code) for _ in range(BATCH)]
                per: dict[bool, list[float]] = {False: [], True: []}
                for r in range(rounds):
                    for on in (r % 2 == 0, r % 2 == 1):
                        log_dir = Path(tmp) / f"{traffic}-{size}-{r}-{on}"
                        rec = Recorder(
                            RecorderOptions(
                                log_dir=log_dir, fsync="never", search_index=False, secrets=on
                            )
                        )
                        rec.open()
                        batches = max(4, 40_000 // BATCH // max(1, size // 300))
                        t0 = time.process_time()
                        for _ in range(batches):
                            rec.record_batch(time.time(), [[b"agents.bench", p] for p in payloads])
                        per[on].append((time.process_time() - t0) / (batches * BATCH))
                        rec.close()
                off, on_ = min(per[False]), min(per[True])
                key = f"{traffic} {size} B"
                results[key] = {
                    "off_us": round(off * 1e6, 3),
                    "on_us": round(on_ * 1e6, 3),
                    "off_median_us": round(statistics.median(per[False]) * 1e6, 3),
                    "on_median_us": round(statistics.median(per[True]) * 1e6, 3),
                    "cost_pct": round((on_ / off - 1) * 100, 1),
                }
                row = results[key]
                print(
                    f"  {key:<14} off {row['off_us']:7.2f} us/msg  on {row['on_us']:7.2f} us/msg"
                    f"  on/off {on_ / off:.3f} (+{row['cost_pct']} %)   medians "
                    f"{row['off_median_us']:.2f} / {row['on_median_us']:.2f}"
                )
    return results


# -- 2. end to end -------------------------------------------------------------------------
def e2e(repeat: int, sizes: list[int], messages: int | None) -> dict[str, Any]:
    print(f"\n2. full speed through real processes (bench/record.py; load {load()})")
    runs: dict[str, list[dict[str, Any]]] = {}
    for r in range(repeat):
        for on in (r % 2 == 0, r % 2 == 1):
            with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
                out = Path(f.name)
            argv = [
                sys.executable, str(HERE / "record.py"), "--only", "full", "--variants", "ours",
                "--sizes", ",".join(map(str, sizes)), "--repeat", "1", "--quiet-wait", "5",
                "--out", str(out), f"--recorder-arg=--secrets={'on' if on else 'off'}",
            ]  # fmt: skip
            if messages:
                argv += ["--messages", str(messages)]
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
            data = json.loads(out.read_text())
            out.unlink()
            for fs in data["results"]["full_speed"]:
                row = fs["variants"]["ours"]
                key = f"{fs['size']} B {'on' if on else 'off'}"
                runs.setdefault(key, []).append(row)
                print(
                    f"  run {r + 1}: {key:<10} {row['msgs_per_s']:>9,} msgs/s, "
                    f"lost {row['lost']}, unscanned {row.get('secrets_unscanned')}, "
                    f"others {row['others_cpu_pct']} % CPU"
                )
    results: dict[str, Any] = {}
    for size in sizes:
        off = statistics.median(r["msgs_per_s"] for r in runs[f"{size} B off"])
        on = statistics.median(r["msgs_per_s"] for r in runs[f"{size} B on"])
        unscanned = [r.get("secrets_unscanned") or 0 for r in runs[f"{size} B on"]]
        sent = [r["sent"] for r in runs[f"{size} B on"]]
        results[f"{size} B"] = {
            "off_msgs_per_s": off,
            "on_msgs_per_s": on,
            "ratio": round(on / off, 3),
            "unscanned_pct": round(100 * sum(unscanned) / max(1, sum(sent)), 1),
            "runs": {k: [r["msgs_per_s"] for r in v] for k, v in runs.items() if str(size) in k},
        }
        row = results[f"{size} B"]
        print(
            f"  {size} B: off {off:,.0f} msgs/s, on {on:,.0f} msgs/s (medians): on/off "
            f"{row['ratio']:.3f}; left unscanned (behind a flood) {row['unscanned_pct']} %"
        )
    return results


# -- 2b. recorder CPU at fixed rates -------------------------------------------------------
def cpu(repeat: int, rates: str, window: float, size: int) -> dict[str, Any]:
    print(f"\n2b. recorder CPU at fixed rates (bench/cpu.py, {size} B; load {load()})")
    rows: dict[str, list[float]] = {}
    for r in range(repeat):
        for on in (r % 2 == 0, r % 2 == 1):
            with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
                out = Path(f.name)
            argv = [
                sys.executable, str(HERE / "cpu.py"), "--rates", rates, "--window", str(window),
                "--size", str(size), "--out", str(out),
                f"--recorder-arg=--secrets={'on' if on else 'off'}",
            ]  # fmt: skip
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
            for row in json.loads(out.read_text())["rows"]:
                key = f"{row['phase']} {'on' if on else 'off'}"
                rows.setdefault(key, []).append(row["ours"])
                print(f"  run {r + 1}: {key:<12} ours {row['ours']:6.2f} % of a core "
                      f"(others {row['others']:.0f} %)")  # fmt: skip
            out.unlink()
    results: dict[str, Any] = {}
    for phase in dict.fromkeys(k.rsplit(" ", 1)[0] for k in rows):
        off = statistics.median(rows[f"{phase} off"])
        on = statistics.median(rows[f"{phase} on"])
        results[phase] = {"off_pct": round(off, 2), "on_pct": round(on, 2), "runs": rows}
        print(f"  {phase}: off {off:.2f} %, on {on:.2f} % of a core (medians)")
    return results


# -- 4. long payloads ----------------------------------------------------------------------
def long_payloads() -> list[tuple[str, bytes]]:
    """Payloads where detection used to cost most: long tokens a prefilter pass hits by
    chance (the "eyJ" one in four 64 KiB base64 images holds), at the recorder's scan
    cap (64 KiB) and whole (what an export or a hook scans)."""
    rnd = random.Random(11)
    image = base64.b64encode(rnd.randbytes(300_000))
    image = image[:1000] + b"eyJ" + image[1003:]
    hexed = rnd.randbytes(200_000).hex().encode()
    hexed = hexed[:1000] + b"sk-" + hexed[1003:]
    pem = b"-----BEGIN PRIVATE KEY-----\n" + base64.b64encode(rnd.randbytes(48_000))
    out: list[tuple[str, bytes]] = []
    for name, body in (("base64 image", image), ("hex dump", hexed), ("PEM body", pem)):
        payload = orjson.dumps({"type": "tool_result", "content": body.decode()})
        out += [(f"{name} 64 KiB", payload[: S.DEFAULT_SCAN_CAP]), (f"{name} whole", payload)]
    return out


def every_byte(data: bytes) -> list[S.SecretSpan]:
    """The baseline: the detector's regex tried at every byte (`finditer`), as before."""
    return [
        S.SecretSpan(S._GROUPS[m.lastgroup], 0, *m.span(m.lastgroup))
        for m in S._FIND.finditer(data)
        if m.lastgroup is not None
        and S._plausible(S._GROUPS[m.lastgroup], data[slice(*m.span(m.lastgroup))])
    ]


def long_cost(rounds: int) -> dict[str, Any]:
    print(f"\n4. long payloads: one frame's scan, ours vs the regex at every byte (load {load()})")
    results: dict[str, Any] = {}
    for name, data in long_payloads():
        assert S._found(data, 0) == every_byte(data), name
        times: dict[str, list[float]] = {"ours": [], "every byte": []}
        for _ in range(rounds):
            for label, scan in (("ours", S._found), ("every byte", lambda d, _f: every_byte(d))):
                t0 = time.perf_counter()
                scan(data, 0)
                times[label].append(time.perf_counter() - t0)
        ours, base = min(times["ours"]), min(times["every byte"])
        print(
            f"  {name:<22} {len(data):>8,} B  ours {ours * 1e3:8.2f} ms  "
            f"every byte {base * 1e3:8.2f} ms  ratio {ours / base:.3f}"
        )
        results[name] = {"bytes": len(data), "ours_ms": ours * 1e3, "every_byte_ms": base * 1e3}
    return results


# -- 3. accuracy ---------------------------------------------------------------------------
def accuracy(per_kind: int, negatives: int) -> dict[str, Any]:
    print(f"\n3. accuracy (load {load()})")
    total: Counter[str] = Counter()
    hit: Counter[str] = Counter()
    misses: list[str] = []
    for case in cases(per_kind=per_kind, seed=1234):
        total[case.kind] += 1
        if found(case, list(S.scan_frames([case.frame], cap=None).spans)):
            hit[case.kind] += 1
        elif len(misses) < 10:
            misses.append(f"{case.kind} in {case.context}")
    recall = sum(hit.values()) / sum(total.values())
    print(f"  recall {sum(hit.values()):,} / {sum(total.values()):,} = {recall:.4f}")
    for kind in S.KINDS:
        print(f"    {kind:<18} {hit[kind]:>5} / {total[kind]}")
    for m in misses:
        print(f"    missed: {m}")
    msgs = realistic(negatives)
    flagged: Counter[str] = Counter()
    by_source: Counter[str] = Counter(src for src, _ in msgs)
    examples: list[str] = []
    t0 = time.perf_counter()
    for src, payload in msgs:
        spans = S.scan_frames([payload], cap=None).spans
        if spans:
            flagged[src] += 1
            s = spans[0]
            around = payload[max(0, s.start - 30) : s.end + 10].decode("utf-8", "replace")
            example = f"{src}: {s.kind}: …{around}…"
            if len(examples) < 15 and example not in examples:
                examples.append(example)
    seconds = time.perf_counter() - t0
    fp = sum(flagged.values())
    volume = sum(len(p) for _, p in msgs)
    print(
        f"  false positives {fp:,} of {len(msgs):,} messages = {fp / len(msgs):.5%} "
        f"({volume / 1e6:.1f} MB scanned in {seconds:.1f} s)"
    )
    for src in by_source:
        print(f"    {src:<7} {flagged[src]:>5} of {by_source[src]:,}")
    for e in examples:
        print(f"    flagged: {e!r}")
    return {
        "recall": round(recall, 5),
        "cases": sum(total.values()),
        "recall_by_kind": {k: [hit[k], total[k]] for k in S.KINDS},
        "negatives": len(msgs),
        "false_positives": fp,
        "false_positive_rate": fp / len(msgs),
        "by_source": {k: [flagged[k], v] for k, v in by_source.items()},
        "examples": examples,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--only", default="cost,e2e,cpu,accuracy,long", help="parts: cost,e2e,cpu,accuracy,long"
    )
    p.add_argument("--rates", default="1000,5000", help="cpu: fixed rates, msgs/s")
    p.add_argument("--window", type=float, default=10.0, help="cpu: seconds per phase")
    p.add_argument("--rounds", type=int, default=6, help="cost: rounds per setting")
    p.add_argument("--sizes", default="300,2048", help="message sizes in bytes")
    p.add_argument("--repeat", type=int, default=4, help="e2e: runs per setting")
    p.add_argument("--messages", type=int, help="e2e: messages per run (record.py's default)")
    p.add_argument("--per-kind", type=int, default=100, help="accuracy: keys per kind")
    p.add_argument("--negatives", type=int, default=100_000, help="accuracy: clean messages")
    p.add_argument("--out", type=Path, default=HERE / "out" / "secrets-latest.json")
    args = p.parse_args()
    parts = {s.strip() for s in args.only.split(",")}
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, Any] = {"load_at_start": load(), "cpus": os.cpu_count()}
    if "cost" in parts:
        results["cost"] = cost(args.rounds, sizes)
    if "e2e" in parts:
        results["e2e"] = e2e(args.repeat, sizes, args.messages)
    if "cpu" in parts:
        results["cpu"] = cpu(args.repeat, args.rates, args.window, max(sizes))
    if "accuracy" in parts:
        results["accuracy"] = accuracy(args.per_kind, args.negatives)
    if "long" in parts:
        results["long"] = long_cost(args.rounds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
