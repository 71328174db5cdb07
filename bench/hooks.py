"""How long `persist hook` keeps Claude Code and Gemini CLI waiting.

    .venv/bin/python bench/hooks.py [--turns 40] [--starts 5]

A real `persist broker` and `persist record` run on free loopback ports in a temp
folder. The package is byte-compiled first, as `pip install` leaves it (this machine
sets PYTHONDONTWRITEBYTECODE, so an editable checkout would otherwise compile every
module from source on every hook; `--source` measures that). Each turn appends a
real-shaped turn to a transcript (Claude Code: a prompt,
a reply streamed as two lines with a tool call, the tool's result, the final reply,
a file-history line; Gemini CLI: a prompt, a reply written twice by id with its tool
result) and runs the hook exactly as the agent does (`sh -c "<installed command>"`,
the payload on stdin), timing it from spawn to exit. Baselines in the same run:
`true`, `python -c pass` and `python -c 'import zmq, orjson'` (the floor of any Python
publisher) through the same `sh -c`. Session starts run in fresh
folders where the hook has to start the recorder (embedded broker), each followed by
the SessionEnd that stops it. At the end the journal is checked: every message once.
"""

from __future__ import annotations

import argparse
import resource
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recorder.hooks.samples import ClaudeSession, GeminiSession  # noqa: E402
from recorder.store.layout import Layout, list_segments  # noqa: E402
from recorder.store.segfile import open_segment  # noqa: E402

PERSIST = [sys.executable, "-m", "recorder.cli"]
_script = Path(sys.executable).parent / "persist"
if _script.exists():
    PERSIST = [str(_script)]
PROMPT = "Please fix the failing test in tests/test_parser.py and explain the cause. " * 3
FLOOR = "python -c 'import zmq, orjson'"  # what any Python publisher pays
REPLY = "The parser dropped the last token when the input ended without a newline. " * 12


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CPU: dict[str, list[float]] = {}  # CPU seconds (user + system) of each timed run


def timed(
    command: str, stdin: bytes = b"", name: str = ""
) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    """Wall time of `sh -c command`; its CPU time (with its children) goes to CPU[name]."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(["sh", "-c", command], input=stdin, capture_output=True, check=False)
    took = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    CPU.setdefault(name, []).append(cpu)
    return took, out


def hook_command(event: str, agent: str, log_dir: Path, ends: tuple[str, str]) -> str:
    argv = [*PERSIST, "hook", event, "--agent", agent, "--log-dir", str(log_dir)]
    argv += ["--publish-endpoint", ends[0], "--broker", ends[1]]
    return shlex.join(argv) + "  # agent-persist hook"


def stats(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p95 * 1000, ordered[-1] * 1000


def wait_recording(log_dir: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = orjson.loads((log_dir / "status.json").read_bytes())
            if status.get("state") == "recording" and status.get("connection") == "connected":
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise SystemExit("the recorder did not start")


def claude_turn(c: ClaudeSession, n: int) -> list[bytes]:
    lines = c.user(f"{PROMPT} (turn {n})")
    lines += c.assistant("Let me run the tests first.", ("Bash", {"command": "pytest -q"}))
    lines += c.tool_result("toolu_bench", "F" + "." * 40 + "\n1 failed, 41 passed in 0.52s")
    lines += c.assistant(REPLY)
    lines += c.metadata()[:1]
    return lines


def gemini_turn(g: GeminiSession, n: int) -> list[bytes]:
    _, lines = g.user(f"{PROMPT} (turn {n})")
    _, more = g.gemini(REPLY, ("run_shell_command", {"command": "pytest -q"}, "1 failed"))
    return lines + more


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--source", action="store_true", help="no byte-compiling first")
    args = parser.parse_args()
    if not args.source:
        import compileall

        compileall.compile_dir(ROOT / "recorder", quiet=1)
    tmp = Path(tempfile.mkdtemp(prefix="bench-hooks-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        front, back = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
        log_dir = tmp / "logs"
        out = open(tmp / "procs.out", "wb")  # noqa: SIM115 - closed with the processes
        procs.append(
            subprocess.Popen(
                [*PERSIST, "broker", "--frontend", front, "--backend", back],
                stdout=out,
                stderr=out,
            )
        )
        procs.append(
            subprocess.Popen(
                [*PERSIST, "record", "--broker", back, "--embedded", "no", *("--log-dir", log_dir)],
                stdout=out,
                stderr=out,
            )
        )
        wait_recording(log_dir)
        ends = (front, back)
        results: dict[str, list[float]] = {"true": [], "python -c pass": [], FLOOR: []}
        c = ClaudeSession(transcript=str(tmp / "claude.jsonl"))
        g = GeminiSession(transcript=str(tmp / "gemini.jsonl"))
        Path(g.transcript).write_bytes(b"".join(g.start()))
        for name in ("claude Stop (new turn)", "claude UserPromptSubmit (nothing new)"):
            results[name] = []
        results["gemini AfterAgent (new turn)"] = []
        failures = 0
        expected = 0
        for n in range(args.turns):
            results["true"].append(timed("true", name="true")[0])
            python = shlex.join([sys.executable, "-c", "pass"])
            results["python -c pass"].append(timed(python, name="python -c pass")[0])
            floor = shlex.join([sys.executable, "-c", "import zmq, orjson"])
            results[FLOOR].append(timed(floor, name=FLOOR)[0])
            with open(c.transcript, "ab") as f:
                f.write(b"".join(claude_turn(c, n)))
            expected += 4
            took, res = timed(
                hook_command("Stop", "claude", log_dir, ends),
                orjson.dumps(c.payload("Stop")),
                "claude Stop (new turn)",
            )
            results["claude Stop (new turn)"].append(took)
            failures += res.returncode != 0 or bool(res.stdout or res.stderr)
            took, res = timed(
                hook_command("UserPromptSubmit", "claude", log_dir, ends),
                orjson.dumps(c.payload("UserPromptSubmit", prompt=PROMPT)),
                "claude UserPromptSubmit (nothing new)",
            )
            results["claude UserPromptSubmit (nothing new)"].append(took)
            with open(g.transcript, "ab") as f:
                f.write(b"".join(gemini_turn(g, n)))
            expected += 2
            took, res = timed(
                hook_command("AfterAgent", "gemini", log_dir, ends),
                orjson.dumps(g.payload("AfterAgent", prompt=PROMPT, prompt_response=REPLY)),
                "gemini AfterAgent (new turn)",
            )
            results["gemini AfterAgent (new turn)"].append(took)
            failures += res.returncode != 0 or bool(res.stdout or res.stderr)

        starts, ends_taken = [], []
        notes: list[str] = []
        for n in range(args.starts):
            fresh = tmp / f"start-{n}"
            ports = (f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}")
            s = ClaudeSession(transcript=str(tmp / f"start-{n}.jsonl"))
            took, res = timed(
                hook_command("SessionStart", "claude", fresh, ports),
                orjson.dumps(s.payload("SessionStart")),
                "claude SessionStart (starts the recorder)",
            )
            failures += res.returncode != 0 or bool(res.stdout or res.stderr)
            status = orjson.loads((fresh / "status.json").read_bytes())
            if status.get("state") != "recording":
                raise SystemExit(f"start {n}: no recorder recording after the hook: {status}")
            starts.append(took)
            took, res = timed(
                hook_command("SessionEnd", "claude", fresh, ports),
                orjson.dumps(s.payload("SessionEnd")),
                "claude SessionEnd (stops it)",
            )
            ends_taken.append(took)
            failures += res.returncode != 0 or bool(res.stdout or res.stderr)
            # what the hooks wrote down (a recorder killed as lingering, a checkpoint
            # not taken): never shown to the agent, so looked at here
            noted = fresh / "hooks" / "failures.jsonl"
            if noted.exists():
                lines = noted.read_bytes().splitlines()
                notes.extend(
                    f"session {n} ({took * 1000:.0f} ms): {line.decode()}" for line in lines
                )
        results["claude SessionStart (starts the recorder)"] = starts
        results["claude SessionEnd (stops it)"] = ends_taken

        time.sleep(1.0)
        seen: dict[str, int] = {}
        for seg in list_segments(Layout(log_dir)):  # plain or compressed by the recorder
            with open_segment(seg) as f:
                lines = f.read(0, f.size).splitlines()
            for line in lines:
                rec = orjson.loads(line)
                if rec.get("kind") == "msg" and str(rec.get("topic", "")).startswith("agents."):
                    mid = rec["frames"][-1]["json"]["_persist"]["mid"]
                    seen[mid] = seen.get(mid, 0) + 1
        dupes = sum(1 for v in seen.values() if v > 1)

        base = statistics.median(results["python -c pass"]) * 1000
        cpu_base = statistics.median(CPU["python -c pass"]) * 1000
        print(
            f"{'what':42} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'/python':>8}"
            f" {'cpu p50':>8} {'/python':>8}"
        )
        for name, samples in results.items():
            p50, p95, worst = stats(samples)
            cpu = statistics.median(CPU[name]) * 1000
            print(
                f"{name:42} {p50:7.1f} {p95:7.1f} {worst:7.1f} {p50 / base:8.2f}"
                f" {cpu:8.1f} {cpu / cpu_base:8.2f}"
            )
        print("(cpu: user + system time of the hook and its shell, which waits less on load)")
        print(
            f"turns: {args.turns} per agent; messages in the journal {len(seen)} "
            f"(expected {expected}), duplicated {dupes}; hooks that failed or printed: "
            f"{failures}; failures the session start and end hooks noted: {len(notes)}"
        )
        for note in notes:
            print(f"  {note}")
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
