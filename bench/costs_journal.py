"""The journals `bench/costs.py` measures: realistic agent traffic, built once, reused.

    .venv/bin/python bench/costs_journal.py --messages 100000 [--root DIR]

Messages are written with the recorder's own journal writer (`Journal` +
`encode_frames`, through `tests.demo_journal.DemoWriter`), 64 MiB segments, a
checkpoint every 10,000 messages, each payload about 2 KB: prose with several
lines and Markdown, code blocks with backticks and tabs, tool calls with JSON
arguments, tool results with long output, all with a publisher envelope; one
message in 5,000 holds control characters or bidi marks (as real terminals' output
does). Each message's `meta` carries the secret scan's result as the recorder writes
it (`--unscanned`: without, as recorders before 2026-12-02 wrote clean messages). The
content is seeded, so a journal of N messages is always the same.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.demo_journal import DemoClock, DemoWriter  # noqa: E402

T0 = 1_800_000_000.0
AGENTS = ("planner", "coder", "reviewer", "tester", "claude", "gemini")
CHECKPOINT_EVERY = 10_000
_WORD_TEXT = (
    "deploy migration schema rollback cache latency parser token budget retry timeout "
    "benchmark refactor database index checkpoint journal agent review approve reject "
    "patch branch release config rotate queue worker the a of to and in is that for it "
    "with as on be this by we are function return value error test file line change"
)
WORDS = _WORD_TEXT.split()


def _prose(rng: random.Random, chars: int) -> str:
    lines = []
    size = 0
    while size < chars:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 16)))
        if rng.random() < 0.2:
            line = f"- {line} `{rng.choice(WORDS)}()`"
        lines.append(line.capitalize() + ".")
        size += len(lines[-1]) + 1
    return "\n".join(lines)


def _code(rng: random.Random, lines: int) -> str:
    body = [f"def {rng.choice(WORDS)}_{n}(x):\n\treturn x + {n}" for n in range(lines // 2)]
    return "```python\n" + "\n".join(body) + "\n```"


def message_pool(size: int = 512, seed: int = 1) -> list[tuple[str, str, dict[str, object]]]:
    """(chain, text, extra payload fields) for `size` distinct messages of about 2 KB."""
    rng = random.Random(seed)
    pool: list[tuple[str, str, dict[str, object]]] = []
    for n in range(size):
        shape = n % 4
        if shape == 0:
            pool.append(("broadcast", _prose(rng, rng.randint(1400, 2400)), {}))
        elif shape == 1:
            text = _prose(rng, 600) + "\n\n" + _code(rng, rng.randint(16, 30))
            pool.append(("reply", text, {}))
        elif shape == 2:
            command = " && ".join(f"pytest -q tests/{rng.choice(WORDS)}" for _ in range(4))
            args = {"command": command, "cwd": "/work/project", "timeout": 120}
            notes = _prose(rng, rng.randint(900, 1500))
            pool.append(("tool_call", notes, {"tool_call": {"name": "bash", "args": args}}))
        else:
            out = "\n".join(
                f"tests/{rng.choice(WORDS)}_{k}.py::{rng.choice(WORDS)} PASSED [{k:3d}%]"
                for k in range(rng.randint(24, 40))
            )
            pool.append(("tool_result", out, {"exit_code": 0}))
    return pool


HOSTILE = "colour \x1b[31mred\x1b[0m, bidi \u202eevil\u202c, bell \x07 and a tab\tend"


def build(root: Path, messages: int, *, progress: bool = True, scanned: bool = True) -> None:
    """Write `messages` messages into a new journal at `root`, checkpoints along the way.

    `scanned`: each message's `meta` names its secrets as the recorder writes them
    (`"secrets": []` when it holds none, since 2026-12-02), so readers take the scan as
    done; without it, every reader scans every message (journals of older recorders)."""
    pool = message_pool()
    clock = DemoClock(T0)
    w = DemoWriter.open(root, clock=clock)
    t = T0
    started = time.perf_counter()
    for i in range(messages):
        t += 0.25
        clock.now = t
        chain, text, extra = pool[i % len(pool)]
        if i % 5000 == 4999:
            text = HOSTILE + "\n" + text
        sender = AGENTS[i % len(AGENTS)]
        envelope = {"_persist": {"pub": f"{sender}-1", "seq": i // len(AGENTS) + 1}}
        w.message(
            t,
            sender,
            f"#{i} {text}",
            topic=f"agents.{sender}",
            chain=chain,
            extra={**extra, **envelope},
            scan=scanned,
        )
        if (i + 1) % CHECKPOINT_EVERY == 0 or i + 1 == messages:
            w.checkpoint(t + 0.1, f"after {i + 1} messages", "periodic")
            if progress:
                rate = (i + 1) / (time.perf_counter() - started)
                print(f"\r  built {i + 1:,} messages ({rate:,.0f}/s)", end="", file=sys.stderr)
    w.close()
    if progress:
        print(file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument(
        "--unscanned", action="store_true", help="no scan result in meta (older recorders)"
    )
    args = parser.parse_args()
    build(args.root, args.messages, scanned=not args.unscanned)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
