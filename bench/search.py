"""Search at scale: the index against ripgrep and a Python scan, on the same journal.

    .venv/bin/python bench/search.py [--messages 1000000] [--dir /tmp/persist-bench-search]
                                     [--runs 5] [--no-rebuild] [--scan-queries 1]
                                     [--baseline-ref main]

Generates once (cached under --dir, printed) a journal in the real format, written
by the real `recorder.store.journal.Journal`: message texts of 50-2,000 characters
from a Zipf vocabulary (very common words down to words seen in a few messages,
plus hex ids), eight senders, several topics, one message in eight a tool call or
a tool result, heartbeats; and 400 planted rare words, each in 1-3 known messages.

Then, in one run: a full rebuild of the index by the code at `--baseline-ref` (a
git ref, extracted to a temporary folder) and by ours, each in a fresh process, on
the same journal (msgs/s, CPU, the ratio; size against the journal),
a fixed query set by class (common words, two-word ANDs, phrases, field filters,
rare words, one-typo rare words), each timed `--runs` times in a fresh searching
process (p50/p99 per class, RSS), ripgrep over the same segments (the ground
truth for every exact query's hit count, which must be equal) and a Python scan
(for the first `--scan-queries` queries of each class), with the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.baseline import extract  # noqa: E402

BASE_TS = 1_767_225_600.0  # 2026-01-01 UTC
SENDERS = ("planner", "coder", "reviewer", "tester", "claude", "gemini", "codex", "ops")
COMMON = [
    "the",
    "be",
    "to",
    "of",
    "and",
    "a",
    "in",
    "that",
    "have",
    "it",
    "for",
    "not",
    "on",
    "with",
    "he",
    "as",
    "you",
    "do",
    "at",
    "this",
    "but",
    "his",
    "by",
    "from",
    "they",
    "we",
    "say",
    "her",
    "she",
    "or",
    "an",
    "will",
    "my",
    "one",
    "all",
    "would",
    "there",
    "their",
    "what",
    "so",
    "up",
    "out",
    "if",
    "about",
    "who",
    "get",
    "which",
    "go",
    "me",
    "when",
    "make",
    "can",
    "like",
    "time",
    "no",
    "just",
    "him",
    "know",
    "take",
    "people",
    "into",
    "year",
    "your",
    "good",
    "some",
    "could",
    "them",
    "see",
    "other",
    "than",
    "then",
    "now",
    "look",
    "only",
    "come",
    "its",
    "over",
    "think",
    "also",
    "back",
    "after",
    "use",
    "two",
    "how",
    "our",
    "work",
    "first",
    "well",
    "way",
    "even",
    "new",
    "want",
    "because",
    "any",
    "these",
    "give",
    "day",
    "most",
    "us",
    "error",
    "test",
    "file",
    "build",
    "deploy",
    "cache",
    "server",
    "client",
    "request",
    "response",
    "patch",
    "branch",
    "commit",
    "merge",
    "review",
    "config",
    "database",
    "schema",
    "migration",
    "rollback",
    "retry",
    "timeout",
    "latency",
    "queue",
    "worker",
    "token",
    "budget",
    "parser",
    "journal",
    "checkpoint",
    "agent",
    "plan",
]
SYLLABLES = [
    "ka",
    "ra",
    "to",
    "mi",
    "su",
    "ne",
    "lo",
    "pa",
    "ri",
    "ve",
    "zo",
    "da",
    "fe",
    "gu",
    "hi",
    "jo",
    "ku",
    "le",
    "mo",
    "nu",
    "pi",
    "qua",
    "re",
    "si",
    "te",
    "vu",
    "wo",
    "xi",
    "ya",
    "ze",
    "bra",
    "cle",
    "dro",
    "fli",
    "gra",
    "kro",
    "pla",
    "stri",
    "tra",
    "ven",
    "mar",
    "tel",
    "gon",
    "dal",
    "vor",
    "sen",
    "lin",
    "dex",
]
N_TAIL = 60_000
N_RARE = 400
STRUCTURAL = {"text", "from", "sender", "tool", "call", "result", "name", "arguments", "command"}


def vocabulary(rng: random.Random) -> list[str]:
    words = list(dict.fromkeys(COMMON))
    seen = set(words)
    while len(words) < len(COMMON) + N_TAIL:
        w = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 2, 3, 3, 4))))
        if w not in seen and w not in STRUCTURAL:
            seen.add(w)
            words.append(w)
    return words


def rare_words(rng: random.Random, vocab: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < N_RARE:
        w = "".join(rng.choice(SYLLABLES) for _ in range(5)) + rng.choice(("ix", "on", "ar"))
        if w not in vocab and w not in out:
            out.append(w)
    return out


def generate(root: Path, n: int, seed: int = 42) -> dict[str, object]:
    """Write the journal; returns what the queries need (planted rare words)."""
    import orjson

    from recorder.store.journal import Journal
    from recorder.store.layout import Layout
    from recorder.store.records import encode_frames

    rng = random.Random(seed)
    vocab = vocabulary(rng)
    rare = rare_words(rng, set(vocab))
    weights = [1.0 / (r + 1) ** 1.07 for r in range(len(vocab))]
    stream = rng.choices(range(len(vocab)), weights=weights, k=4_000_000)
    planted: dict[str, list[int]] = {}
    plant_at: dict[int, list[str]] = {}
    for w in rare:
        for _ in range(rng.choice((1, 1, 2, 3))):
            plant_at.setdefault(rng.randrange(n), []).append(w)
    layout = Layout(root)
    journal = Journal(layout, clock=lambda: BASE_TS)
    journal.open()
    pos = 0
    punct = (" ", " ", " ", " ", " ", " ", ", ", ". ", ": ", "; ", " (", ") ")
    t0 = time.perf_counter()
    for i in range(n):
        ts = BASE_TS + i * 0.5
        sender = SENDERS[i % len(SENDERS) if i % 3 else rng.randrange(len(SENDERS))]
        length = int(50 * (40 ** rng.random()))  # 50-2,000 characters, log-uniform
        words: list[str] = []
        size = 0
        while size < length:
            if pos >= len(stream):
                pos = 0
            w = vocab[stream[pos]]
            pos += 1
            words.append(w)
            size += len(w) + 1
        if i % 10 == 0:
            words.insert(rng.randrange(len(words)), f"{rng.getrandbits(32):08x}")
        for w in plant_at.get(i, ()):
            words.insert(rng.randrange(len(words) + 1), w)
        text = words[0]
        for w in words[1:]:
            text += rng.choice(punct) + w
        kind = i % 8
        if kind == 3:
            topic, chain = "tools.call", "tool_call"
            payload = {"tool_call": {"name": "bash", "arguments": {"command": text}}}
        elif kind == 4:
            topic, chain = "tools.result", "tool_result"
            payload = {"tool_result": text, "status": "ok"}
        else:
            topic = ("agents." + sender) if kind % 2 else ("tasks." + rng.choice(("a", "b", "c")))
            chain = ("request", "reply", "broadcast")[kind % 3]
            payload = {"text": text}
        payload["sender"] = sender
        meta = {"sender": sender, "chain": chain, "ace": 1 + kind % 6, "tags": []}
        seq = journal.append(
            {"kind": "msg", "ts": ts, "topic": topic, "meta": meta},
            encode_frames([topic.encode(), orjson.dumps(payload)]),
        )
        for w in plant_at.get(i, ()):
            planted.setdefault(w, []).append(seq)
        if i % 200 == 199:
            hb = {"_persist": {"pub": sender, "seq": i, "hb": True}}
            journal.append(
                {"kind": "heartbeat", "ts": ts, "topic": "_persist.heartbeat", "meta": {}},
                encode_frames([b"_persist.heartbeat", orjson.dumps(hb)]),
            )
        if i % 4096 == 0:
            journal.flush()
            if i % 100_000 == 0:
                print(f"  generated {i:,} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    journal.close()
    info = {"messages": n, "seed": seed, "planted": planted, "vocab_head": vocab[:400]}
    (root / "bench-info.json").write_text(json.dumps(info))
    return info


def journal_ready(root: Path, n: int) -> dict[str, object] | None:
    try:
        info = json.loads((root / "bench-info.json").read_text())
    except (OSError, ValueError):
        return None
    return info if info.get("messages") == n else None


def queries(info: dict[str, object]) -> list[tuple[str, str, list[str]]]:
    """(class, query, rg pipeline patterns: each a (-w) regex every line must match)."""
    head = [w for w in info["vocab_head"] if w not in STRUCTURAL]  # type: ignore[union-attr]
    planted: dict[str, list[int]] = info["planted"]  # type: ignore[assignment]
    rare = sorted(planted)[:6]
    common = ["error", "deploy", "migration", "people", "think", "database"]
    out: list[tuple[str, str, list[str]]] = []
    for w in common:
        out.append(("common word", w, [rf"\b{w}\b"]))
    for a, b in (
        ("error", "database"),
        ("deploy", "rollback"),
        ("cache", "timeout"),
        ("schema", "migration"),
        ("agent", "budget"),
        (head[60], head[120]),
    ):
        out.append(("two-word AND", f"{a} {b}", [rf"\b{a}\b", rf"\b{b}\b"]))
    for a, b in (
        ("schema", "migration"),
        ("the", "server"),
        ("retry", "queue"),
        ("deploy", "branch"),
        ("worker", "token"),
        ("to", "deploy"),
    ):
        out.append(("phrase", f'"{a} {b}"', [rf"\b{a}[^\w]+{b}\b"]))
    for who, w in (("coder", "error"), ("gemini", "deploy"), ("ops", "rollback")):
        out.append(("field filter", f"from:{who} {w}", [rf'"sender":"{who}"', rf"\b{w}\b"]))
    for topic, w in (("tools.call", "cache"), ("agents.claude", "migration"), ("tasks", "timeout")):
        pat = rf'"topic":"{topic}(\.[^"]*)?"'
        out.append(("field filter", f"topic:{topic} {w}", [pat, rf"\b{w}\b"]))
    for w in rare:
        out.append(("rare word", w, [rf"\b{w}\b"]))
    return out


def typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    return word[:i] + word[i + 1 :] if rng.random() < 0.5 else word[:i] + "q" + word[i + 1 :]


CHILD = r"""
import json, sys, time
import psutil
from recorder.search.engine import SearchEngine
from recorder.search.query import parse_query
root, spec, runs = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
out = []
with SearchEngine(root) as engine:
    engine.catch_up()
    for item in spec:
        q = parse_query(item["query"], now=2e9)
        fuzzy = item.get("fuzzy")
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            r = engine.search(q, limit=10, fuzzy=fuzzy, catch_up=True, budget=0.5)
            times.append((time.perf_counter() - t) * 1000)
        counted = engine.search(q, limit=10, fuzzy=False, count=True, catch_up=False)
        t = time.perf_counter()
        engine.search(q, limit=10, fuzzy=False, count=True, catch_up=False)
        count_ms = (time.perf_counter() - t) * 1000
        out.append({"times": times, "total": counted.total, "count_ms": count_ms,
                    "seqs": [h.seq for h in r.hits], "fuzzy": [h.fuzzy for h in r.hits]})
print(json.dumps({"results": out, "rss": psutil.Process().memory_info().rss}))
"""


def rg_count(patterns: list[str], segments: list[str]) -> tuple[int, float]:
    """Lines of message records matching every pattern (ripgrep, -i), and the time."""
    t = time.perf_counter()
    first = subprocess.Popen(
        ["rg", "-i", "--no-filename", "-e", patterns[0], *segments], stdout=subprocess.PIPE
    )
    prev = first
    procs = [first]
    for pat in [*patterns[1:], '"kind":"msg"']:
        p = subprocess.Popen(["rg", "-i", "-e", pat], stdin=prev.stdout, stdout=subprocess.PIPE)
        assert prev.stdout is not None
        prev.stdout.close()
        procs.append(p)
        prev = p
    p = subprocess.Popen(["rg", "-c", ""], stdin=prev.stdout, stdout=subprocess.PIPE)
    assert prev.stdout is not None
    prev.stdout.close()
    data, _ = p.communicate()
    for proc in procs:
        proc.wait()
    return int(data.strip() or 0), time.perf_counter() - t


def python_scan(patterns: list[str], segments: list[str]) -> tuple[int, float]:
    """The naive approach: read every line, lowercase it, test every regex."""
    import re

    regs = [re.compile(p.encode()) for p in [*patterns, '"kind":"msg"']]
    t = time.perf_counter()
    n = 0
    for seg in segments:
        with open(seg, "rb") as f:
            for line in f:
                low = line.lower()
                if all(r.search(low) for r in regs):
                    n += 1
    return n, time.perf_counter() - t


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


REBUILD = """
import json, resource, sys, time
from pathlib import Path
from recorder.search.indexer import Indexer
def children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
indexer = Indexer(Path(sys.argv[1]))
t, cpu, child = time.perf_counter(), time.process_time(), children()
done = indexer.catch_up(rebuild=True)
# CPU of this process and of any worker processes it ran (reaped by now)
wall, cpu = time.perf_counter() - t, time.process_time() - cpu + children() - child
indexer.close()
print(json.dumps({"added": done.added, "wall": wall, "cpu": cpu}))
"""


def rebuild(code: Path, root: Path, label: str) -> float:
    """A full rebuild by the `recorder` package under `code`, in a fresh process;
    prints its figures and returns its records per second (wall)."""
    out = subprocess.run(
        [sys.executable, "-c", REBUILD, str(root)],
        capture_output=True,
        text=True,
        cwd=code,
        env={**os.environ, "PYTHONPATH": str(code)},
        check=True,
    )
    r = json.loads(out.stdout)
    rate = r["added"] / r["wall"]
    print(
        f"rebuild ({label}): {r['added']:,} records in {r['wall']:.1f} s = {rate:,.0f} records/s "
        f"({r['cpu']:.1f} CPU s with its workers = "
        f"{r['added'] / r['cpu']:,.0f} records per CPU second; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    return float(rate)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--dir", default="/tmp/persist-bench-search")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-rebuild", action="store_true", help="reuse the index if present")
    ap.add_argument("--scan-queries", type=int, default=1)
    ap.add_argument("--baseline-ref", default="main", help="git ref whose rebuild is compared")
    args = ap.parse_args()
    if not shutil.which("rg"):
        print("ripgrep (rg) is needed: apt-get install -y ripgrep", file=sys.stderr)
        return 1
    root = Path(args.dir) / f"journal-{args.messages}"
    print(f"journal: {root}")
    info = journal_ready(root, args.messages)
    if info is None:
        shutil.rmtree(root, ignore_errors=True)
        t = time.perf_counter()
        info = generate(root, args.messages)
        print(f"generated {args.messages:,} messages in {time.perf_counter() - t:.0f} s")
    segments = sorted(str(p) for p in (root / "segments").glob("seg-*.jsonl"))
    journal_bytes = sum(os.path.getsize(s) for s in segments)

    from recorder.search.engine import SearchEngine

    index_path = root / "search" / "index.sqlite3"
    if not (args.no_rebuild and index_path.exists()):
        with tempfile.TemporaryDirectory(prefix="persist-bench-base-") as tmp:
            base = rebuild(
                extract(args.baseline_ref, Path(tmp), "recorder"), root, args.baseline_ref
            )
        ours = rebuild(ROOT, root, "ours")
        print(f"rebuild speed-up: {ours / base:.2f}x")
    with SearchEngine(root) as engine:
        engine.catch_up()
        index_bytes = engine.index.size_bytes()
    print(
        f"index {index_bytes / 2**20:,.0f} MiB / journal {journal_bytes / 2**20:,.0f} MiB "
        f"= {index_bytes / journal_bytes:.2f}x"
    )

    qs = queries(info)
    rng = random.Random(5)
    planted: dict[str, list[int]] = info["planted"]  # type: ignore[assignment]
    typos = [(w, typo(w, rng)) for w in sorted(planted)[6:12]]
    spec = [{"query": q} for _c, q, _p in qs] + [{"query": t} for _w, t in typos]
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), json.dumps(spec), str(args.runs)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    res = json.loads(child.stdout)
    results = res["results"]
    by_class: dict[str, dict[str, list[float]]] = {}
    mismatches = 0
    print()
    print(f"{'class':<14} {'query':<32} {'ours p50':>9} {'count':>8} {'rg':>8} {'rg hits':>8}")
    scanned: dict[str, int] = {}
    for (cls, q, pats), r in zip(qs, results, strict=False):
        rg_n, rg_s = rg_count(pats, segments)
        entry = by_class.setdefault(cls, {"ours": [], "rg": [], "scan": []})
        entry["ours"] += r["times"]
        entry["rg"].append(rg_s * 1000)
        if scanned.get(cls, 0) < args.scan_queries:
            scanned[cls] = scanned.get(cls, 0) + 1
            scan_n, scan_s = python_scan(pats, segments)
            entry["scan"].append(scan_s * 1000)
            assert scan_n == rg_n, (q, scan_n, rg_n)
        ok = "" if r["total"] == rg_n else "  MISMATCH"
        mismatches += bool(ok)
        print(
            f"{cls:<14} {q[:32]:<32} {statistics.median(r['times']):>7.1f}ms "
            f"{r['total']:>8,} {rg_s * 1000:>6.0f}ms {rg_n:>8,}{ok}"
        )
    print()
    typo_times: list[float] = []
    found = 0
    for (word, t), r in zip(typos, results[len(qs) :], strict=False):
        want = planted[word]
        hit_words = r["seqs"]
        ok = any(seq in want and fz for seq, fz in zip(r["seqs"], r["fuzzy"], strict=False))
        found += ok
        typo_times += r["times"]
        print(
            f"one typo  {t:<20} (for {word}, in {len(want)} message(s)): hits {len(hit_words)}"
            f"{' fuzzy' if any(r['fuzzy']) else ''} p50 {statistics.median(r['times']):.1f} ms"
        )
    print()
    print(
        f"{'class':<14} {'p50':>8} {'p99':>8} {'rg p50':>9} {'rg/ours':>8} "
        f"{'scan p50':>9} {'scan/ours':>9}"
    )
    for cls, e in by_class.items():
        p50 = statistics.median(e["ours"])
        rg50 = statistics.median(e["rg"])
        scan = (
            f"{statistics.median(e['scan']):>7.0f}ms {statistics.median(e['scan']) / p50:>8.0f}x"
            if e["scan"]
            else ""
        )
        print(
            f"{cls:<14} {p50:>6.1f}ms {pct(e['ours'], 0.99):>6.1f}ms {rg50:>7.0f}ms "
            f"{rg50 / p50:>7.0f}x {scan}"
        )
    all_exact = [t for e in by_class.values() for t in e["ours"]]
    print(
        f"{'all exact':<14} {statistics.median(all_exact):>6.1f}ms {pct(all_exact, 0.99):>6.1f}ms"
    )
    print(
        f"{'one typo':<14} {statistics.median(typo_times):>6.1f}ms {pct(typo_times, 0.99):>6.1f}ms"
        f"  intended message found (fuzzy) for {found}/{len(typos)}"
    )
    print(f"searching process RSS: {res['rss'] / 2**20:.0f} MiB")
    print(f"exact hit counts equal to ripgrep: {len(qs) - mismatches}/{len(qs)}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
