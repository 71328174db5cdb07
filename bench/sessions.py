"""Scanning agent sessions: 300 sessions, about 1 GB, first scan and warm rescan.

    .venv/bin/python bench/sessions.py [--sessions 300] [--mb 1024] [--keep DIR]
                                          [--baseline-ref REF]

Generates Claude Code transcripts (80 %), Gemini CLI JSONL chats (10 %) and Codex
rollouts (10 %) of realistic shape (streamed assistant blocks, thinking, tool calls,
large tool results) under a temporary home, then times, in the same run:

* baseline: a naive full parse, stdlib `json.loads` of every line of every file (what
  a listing without a cache does each time);
* ours, first scan: `recorder.sources.discover.scan` with no scan cache (every file
  read: orjson, chain rules, titles, metrics), writing the cache;
* ours, warm rescan: the same call again, nothing changed (stat only);
* ours, one session appended: rescan after one file grew (that file is read again);
* `persist sessions` as a user runs it, with no scan cache (median of --cli-runs);
  with --baseline-ref, alternating with the same command at REF (a `git archive`).

The files are in the page cache after generation in every case (a listing right after
the agents wrote them); a cold disk adds its read time to the first scan only.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.baseline import extract  # noqa: E402
from recorder.sources.discover import Roots, scan  # noqa: E402
from tests.session_fixtures import iso, new_uuid  # noqa: E402

WORDS = ["the", "session", "reads", "a", "file", "and", "writes", "the", "patch", "then"]


def prose(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def claude_file(path: Path, rng: random.Random, target: int, t0: float) -> None:
    sid = path.stem
    last: str | None = None
    t = t0
    size = 0
    lines: list[str] = []
    code = "\n".join(f"def f{i}(x):\n    return x * {i}  # {prose(rng, 6)}" for i in range(40))

    def base(kind: str) -> dict:
        nonlocal t, last
        t += 2
        line = {
            "parentUuid": last,
            "isSidechain": False,
            "userType": "external",
            "cwd": "/home/dev/project",
            "sessionId": sid,
            "version": "2.1.16",
            "gitBranch": "main",
            "type": kind,
            "uuid": new_uuid(),
            "timestamp": iso(t),
        }
        last = line["uuid"]
        return line

    turn = 0
    while size < target:
        turn += 1
        u = base("user")
        u["message"] = {"role": "user", "content": f"step {turn}: {prose(rng, 30)}"}
        batch = [u]
        mid = f"msg_{rng.getrandbits(64):016x}"
        for block in (
            {"type": "thinking", "thinking": prose(rng, 120), "signature": "s" * 200},
            {"type": "text", "text": prose(rng, 60)},
            {
                "type": "tool_use",
                "id": f"toolu_{turn}",
                "name": "Edit",
                "input": {
                    "file_path": f"/home/dev/project/m{turn % 20}.py",
                    "old_string": code[:400],
                    "new_string": code[:420],
                },
            },
        ):
            a = base("assistant")
            a["message"] = {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5",
                "content": [block],
                "usage": {"input_tokens": 3000 + turn, "output_tokens": 200},
            }
            a["requestId"] = "req_" + mid
            batch.append(a)
        r = base("user")
        r["message"] = {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": f"toolu_{turn}",
                    "content": code * rng.randint(2, 6),
                }
            ],
        }
        batch.append(r)
        for line in batch:
            text = json.dumps(line)
            lines.append(text)
            size += len(text) + 1
    lines.append(json.dumps({"type": "summary", "summary": prose(rng, 5), "leafUuid": last}))
    path.write_text("\n".join(lines) + "\n")


def gemini_file(path: Path, rng: random.Random, target: int, t0: float) -> None:
    sid = new_uuid()
    out = [
        json.dumps(
            {
                "sessionId": sid,
                "projectHash": "ab" * 32,
                "startTime": iso(t0),
                "lastUpdated": iso(t0),
            }
        )
    ]
    size, t, i = 0, t0, 0
    while size < target:
        i += 1
        t += 5
        recs = [
            {
                "id": new_uuid(),
                "timestamp": iso(t),
                "type": "user",
                "content": [{"text": prose(rng, 30)}],
            },
            {
                "id": new_uuid(),
                "timestamp": iso(t + 2),
                "type": "gemini",
                "content": prose(rng, 80),
                "thoughts": [{"subject": "plan", "description": prose(rng, 40)}],
                "tokens": {"input": 2000 + i, "output": 100, "total": 2100 + i},
                "toolCalls": [
                    {
                        "id": f"c{i}",
                        "name": "write_file",
                        "args": {"file_path": f"/p/f{i % 30}", "content": prose(rng, 400)},
                        "status": "success",
                    }
                ],
            },
        ]
        for r in recs:
            text = json.dumps(r)
            out.append(text)
            size += len(text) + 1
    path.write_text("\n".join(out) + "\n")


def codex_file(path: Path, rng: random.Random, target: int, t0: float, tid: str) -> None:
    t = t0
    out = [
        json.dumps(
            {
                "timestamp": iso(t),
                "type": "session_meta",
                "payload": {"id": tid, "cwd": "/home/dev/cx", "cli_version": "0.47.0"},
            }
        )
    ]
    size, i = 0, 0
    while size < target:
        i += 1
        t += 3
        for kind, payload in (
            (
                "response_item",
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": prose(rng, 30)}],
                },
            ),
            (
                "response_item",
                {
                    "type": "reasoning",
                    "summary": [{"type": "summary_text", "text": prose(rng, 20)}],
                    "encrypted_content": "g" * 2000,
                },
            ),
            (
                "response_item",
                {
                    "type": "custom_tool_call",
                    "call_id": f"c{i}",
                    "name": "apply_patch",
                    "input": f"*** Begin Patch\n*** Update File: f{i % 30}.py\n" + prose(rng, 600),
                },
            ),
            (
                "response_item",
                {
                    "type": "custom_tool_call_output",
                    "call_id": f"c{i}",
                    "output": json.dumps({"output": prose(rng, 300)}),
                },
            ),
            (
                "response_item",
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": prose(rng, 60)}],
                },
            ),
            (
                "event_msg",
                {
                    "type": "token_count",
                    "info": {"last_token_usage": {"input_tokens": 4000 + i, "output_tokens": 90}},
                },
            ),
        ):
            text = json.dumps({"timestamp": iso(t), "type": kind, "payload": payload})
            out.append(text)
            size += len(text) + 1
    path.write_text("\n".join(out) + "\n")


def generate(home: Path, sessions: int, total_mb: float) -> int:
    rng = random.Random(7)
    per = int(total_mb * 1024 * 1024 / sessions)
    t0 = time.time() - 86400 * 5
    for i in range(sessions):
        target = int(per * rng.uniform(0.5, 1.5))
        if i % 10 < 8:
            folder = home / "claude" / "projects" / f"-home-dev-project{i % 12}"
            folder.mkdir(parents=True, exist_ok=True)
            claude_file(folder / f"{new_uuid()}.jsonl", rng, target, t0 + i * 60)
        elif i % 10 == 8:
            chats = home / "gemini" / "tmp" / f"proj{i % 5}" / "chats"
            chats.mkdir(parents=True, exist_ok=True)
            gemini_file(chats / f"session-2026-01-10T12-00-{i:08d}.jsonl", rng, target, t0 + i * 60)
        else:
            day = home / "codex" / "sessions" / "2026" / "01" / "10"
            day.mkdir(parents=True, exist_ok=True)
            tid = new_uuid()
            codex_file(
                day / f"rollout-2026-01-10T12-00-00-{tid}.jsonl", rng, target, t0 + i * 60, tid
            )
    return sum(p.stat().st_size for p in home.rglob("*") if p.is_file())


def naive(home: Path) -> int:
    count = 0
    for path in home.rglob("*.jsonl"):
        with open(path, encoding="utf-8") as f:
            for line in f:
                json.loads(line)
                count += 1
    return count


def floor(home: Path) -> int:
    """orjson.loads of every line and nothing else: the least any full parse costs."""
    import orjson

    count = 0
    for path in home.rglob("*.jsonl"):
        for line in path.read_bytes().split(b"\n"):
            if line:
                orjson.loads(line)
                count += 1
    return count


CPU: dict[str, float] = {}  # CPU seconds of the one-process measures (less shaken by load)


def timed(fn, name: str = ""):  # type: ignore[no-untyped-def]
    t, c = time.perf_counter(), time.process_time()
    value = fn()
    if name:
        CPU[name] = time.process_time() - c
    return time.perf_counter() - t, value


def persist_sessions(home: Path, code: Path = ROOT) -> float:
    """`persist sessions` as a user runs it, in a fresh log folder (no scan cache):
    interpreter start, the scan (one process per core), the table; wall seconds. `code`:
    the tree whose code runs (another ref's, from `git archive`)."""
    log = home / "log-cli"
    shutil.rmtree(log, ignore_errors=True)
    roots = [f"--{n}-root={home / n}" for n in ("claude", "gemini", "codex")]
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "recorder.cli", "sessions", *roots, "--log-dir", str(log)],
        check=True, stdout=subprocess.DEVNULL, cwd=code,
        env={**os.environ, "PYTHONPATH": str(code)},
    )  # fmt: skip
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=300)
    ap.add_argument("--mb", type=float, default=1024)
    ap.add_argument("--keep", help="generate into (or reuse) this folder and keep it")
    ap.add_argument("--cli-runs", type=int, default=5, help="`persist sessions` runs (median)")
    ap.add_argument(
        "--baseline-ref",
        help="also run `persist sessions` with the code at this git ref, alternating",
    )
    args = ap.parse_args()
    home = (
        Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="persist-bench-sessions-"))
    )
    try:
        if not (home / "claude").exists():
            t, size = timed(lambda: generate(home, args.sessions, args.mb))
            print(f"generated {args.sessions} sessions, {size / 1e6:,.0f} MB in {t:.1f} s")
        else:
            size = sum(p.stat().st_size for p in home.rglob("*.jsonl"))
        roots = Roots(home / "claude", home / "gemini", home / "codex")
        cache = home / "log" / "scan-cache.json"
        cache.unlink(missing_ok=True)
        t_naive, lines = timed(lambda: naive(home), "baseline")
        t_floor, _ = timed(lambda: floor(home), "floor")
        workers = os.cpu_count() or 1
        t_one_proc, _ = timed(lambda: scan(roots, None), "ours")
        t_first, first = timed(lambda: scan(roots, cache, workers=workers))
        t_warm, warm = timed(lambda: scan(roots, cache, workers=workers))
        grown = next(iter(sorted((home / "claude" / "projects").rglob("*.jsonl"))))
        with open(grown, "a") as f:
            f.write(
                json.dumps(
                    {"type": "custom-title", "customTitle": "renamed", "sessionId": grown.stem}
                )
                + "\n"
            )
        t_one, one = timed(lambda: scan(roots, cache))
        ref_code = None
        if args.baseline_ref:
            shutil.rmtree(home / "ref-code", ignore_errors=True)
            ref_code = extract(args.baseline_ref, home / "ref-code")
        t_cli: list[float] = []
        t_ref: list[float] = []
        for _ in range(args.cli_runs):
            if ref_code is not None:
                t_ref.append(persist_sessions(home, ref_code))
            t_cli.append(persist_sessions(home))
        assert len(first.sessions) == len(warm.sessions) == args.sessions
        assert warm.read == 0 and one.read == 1
        print(f"{len(first.sessions)} sessions, {size / 1e6:,.0f} MB, {lines:,} lines")
        print(f"baseline (stdlib json, every line):    {t_naive:7.3f} s")
        print(f"floor (orjson.loads of every line):     {t_floor:7.3f} s")
        print(
            f"ours, first scan, one process:         {t_one_proc:7.3f} s "
            f"({t_naive / t_one_proc:.2f}x the baseline's speed, "
            f"{t_one_proc / t_floor:.2f}x the floor's time)"
        )
        print(
            f"ours, first scan, {workers} processes:        {t_first:7.3f} s "
            f"({t_naive / t_first:.2f}x the baseline's speed)"
        )
        print(
            f"ours, warm rescan (nothing changed):   {t_warm:7.3f} s "
            f"({t_naive / t_warm:.0f}x faster than the baseline)"
        )
        print(f"ours, rescan after one file grew:      {t_one:7.3f} s")
        if t_cli:
            runs = ", ".join(f"{t:.2f}" for t in t_cli)
            print(
                f"`persist sessions`, first scan, whole command: median "
                f"{statistics.median(t_cli):.2f} s (runs {runs}; {os.cpu_count()} processes)"
            )
        if t_ref:
            runs = ", ".join(f"{t:.2f}" for t in t_ref)
            ratio = statistics.median(t_ref) / statistics.median(t_cli)
            print(
                f"the same with {args.baseline_ref}, alternating: median "
                f"{statistics.median(t_ref):.2f} s (runs {runs}); "
                f"{args.baseline_ref} / ours {ratio:.2f}x"
            )
        cpu = ", ".join(f"{k} {v:.3f} s" for k, v in CPU.items())
        print(f"CPU time, one process: {cpu} (ours {CPU['ours'] / CPU['floor']:.2f}x the floor)")
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"load average at the end (1, 5, 15 min): {load} on {os.cpu_count()} cores")
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
