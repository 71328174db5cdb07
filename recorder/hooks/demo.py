"""`persist demo --agents`: Claude Code and Gemini CLI on the bus, no agent binary needed.

The hooks are installed into settings files inside the demo folder (never ~/.claude
or ~/.gemini), and each step runs the installed command exactly as the agent would
(`sh -c "<command>"`, the agent's JSON on stdin), against transcripts that grow
between calls in each agent's own format. The payloads and transcripts are kept in
`<demo>/samples/` to look at. The flow: Claude's SessionStart starts the recorder
(embedded broker on free loopback ports), Gemini joins, both work a few turns (a
streamed reply with a tool call, a torn line completed later, a Gemini reply
rewritten by id), Claude compacts (copy + checkpoint), both end (the last one out
stops the recorder), then a new Claude session is offered the latest checkpoint.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import orjson

from recorder.hooks.agents import Agent
from recorder.hooks.samples import ClaudeSession, GeminiSession
from recorder.hooks.settings import HookCommand, install
from recorder.store.fsutil import ensure_private_dir, open_private
from recorder.store.layout import Layout


class AgentsDemo:
    def __init__(self, root: Path, publish: str, subscribe: str, say: Callable[[str], None]):
        self.root = root
        self.samples = ensure_private_dir(root / "samples")  # 0700, its files 0600
        self.say = say
        self.commands: dict[tuple[Agent, str], str] = {}
        program: tuple[str, ...] = (sys.executable, "-m", "recorder.cli")
        script = Path(sys.executable).parent / "persist"
        if script.is_file():
            program = (str(script),)
        for agent in Agent:
            settings = self.samples / f"{agent.value}-settings.json"
            restore = "latest" if agent is Agent.CLAUDE else None
            command = HookCommand(program, root, restore, publish, subscribe)
            install(agent, settings, command)
            data = json.loads(settings.read_text())
            for event, groups in data["hooks"].items():
                self.commands[(agent, event)] = groups[0]["hooks"][0]["command"]
        self.timings: list[float] = []

    def hook(self, agent: Agent, event: str, payload: dict[str, Any], note: str = "") -> str:
        _append(
            str(self.samples / f"{agent.value}-payloads.jsonl"), [orjson.dumps(payload) + b"\n"]
        )
        command = self.commands[(agent, event)]
        t0 = time.perf_counter()
        out = subprocess.run(
            ["sh", "-c", command],
            input=orjson.dumps(payload),
            capture_output=True,
            timeout=60,
            env={**os.environ, "PERSIST_MONITOR": "off"},  # the demo's recorder: not your sessions
        )
        took = time.perf_counter() - t0
        self.timings.append(took)
        extra = f" · {note}" if note else ""
        self.say(
            f"  {agent.value:>6} {event:<17} exit {out.returncode}, {took * 1000:5.0f} ms{extra}"
        )
        return out.stdout.decode()


def _append(path: str, lines: list[bytes]) -> None:
    """Append to a sample file, made 0600 whatever the umask (before 2026-12-07 the
    umask's 0644, which the first `persist doctor` warned about)."""
    with open(open_private(Path(path), os.O_WRONLY | os.O_CREAT | os.O_APPEND), "ab") as f:
        f.write(b"".join(lines))


def run_agents_demo(
    directory: Path | None = None,
    *,
    open_tui: bool | None = None,
    out: IO[str] | None = None,
) -> dict[str, Any]:
    from recorder.bus.endpoints import free_loopback_port
    from recorder.launch.demo import default_demo_dir, next_steps, prepare_dir
    from recorder.store.shell import shell_quote

    out = out or sys.stderr

    def say(message: str) -> None:
        print(message, file=out, flush=True)

    root = prepare_dir(directory or default_demo_dir().with_name("demo-agents"))
    publish = f"tcp://127.0.0.1:{free_loopback_port()}"
    subscribe = f"tcp://127.0.0.1:{free_loopback_port()}"
    demo = AgentsDemo(root, publish, subscribe, say)
    say(f"persist demo --agents: hooks installed into {demo.samples}/*-settings.json")
    c = ClaudeSession(cwd=str(root), transcript=str(demo.samples / "claude-session.jsonl"))
    g = GeminiSession(cwd=str(root), transcript=str(demo.samples / "gemini-session.jsonl"))
    claude, gemini = Agent.CLAUDE, Agent.GEMINI

    demo.hook(claude, "SessionStart", c.payload("SessionStart"), "recorder started")
    demo.hook(gemini, "SessionStart", g.payload("SessionStart"), "registered")
    prompt = "The parser test fails on input without a final newline. Fix it."
    _append(c.transcript, c.user(prompt))
    demo.hook(claude, "UserPromptSubmit", c.payload("UserPromptSubmit", prompt=prompt))
    _append(c.transcript, c.assistant("Running the tests first.", ("Bash", {"command": "pytest"})))
    _append(c.transcript, c.tool_result("toolu_demo", "1 failed, 41 passed"))
    reply = c.assistant("The tokenizer dropped the last token; fixed in parser.py.")[0]
    _append(c.transcript, [reply[:50]])  # Claude is still writing this line
    demo.hook(claude, "Stop", c.payload("Stop"), "a torn last line waits")
    _append(c.transcript, [reply[50:]])

    _append(g.transcript, g.start())
    _, lines = g.user("Review the parser fix for edge cases.")
    _append(g.transcript, lines)
    demo.hook(gemini, "BeforeAgent", g.payload("BeforeAgent", prompt="Review the parser fix."))
    _, lines = g.gemini(
        "Empty input and a lone newline are covered.",
        ("read_file", {"absolute_path": f"{root}/parser.py"}, "def tokenize(text): ..."),
    )
    _append(g.transcript, lines)
    demo.hook(gemini, "AfterAgent", g.payload("AfterAgent"), "a reply written twice, sent once")

    demo.hook(claude, "UserPromptSubmit", c.payload("UserPromptSubmit"), "the torn line, now whole")
    demo.hook(claude, "PreCompact", c.payload("PreCompact", trigger="manual"), "copy + checkpoint")
    demo.hook(claude, "SessionEnd", c.payload("SessionEnd"), "gemini still connected")
    demo.hook(gemini, "SessionEnd", g.payload("SessionEnd"), "last agent out: recorder stopped")

    again = ClaudeSession(cwd=str(root), transcript=str(demo.samples / "claude-next.jsonl"))
    answer = demo.hook(claude, "SessionStart", again.payload("SessionStart"), "--restore=latest")
    context = ""
    if answer.strip():
        context = json.loads(answer)["hookSpecificOutput"]["additionalContext"]
        say("  what the new Claude session is given (additionalContext):")
        for line in context.splitlines():
            say(f"    | {line}")
    demo.hook(claude, "SessionEnd", again.payload("SessionEnd"))

    summary = _summarize(root)
    say(
        f"persist demo --agents: {summary['messages']} messages on the bus "
        f"({', '.join(f'{t} x{n}' for t, n in summary['topics'].items())}), "
        f"{summary['checkpoints']} checkpoints, hook failures: {summary['failures']}"
    )
    if open_tui is None:
        from recorder.launch.menu import is_interactive

        open_tui = is_interactive()[0]
    if open_tui:
        from recorder.launch.demo import open_browser

        open_browser(root, say)
    else:
        say(next_steps(root, "", False))
        settings = shell_quote(str(demo.samples / "claude-settings.json"))
        say(f"  persist hooks status --settings {settings}")
    summary["context"] = context
    summary["root"] = str(root)
    return summary


def _summarize(root: Path) -> dict[str, Any]:
    from recorder.hooks.failures import read_failures
    from recorder.store.checkpoints import list_checkpoints
    from recorder.store.layout import list_segments
    from recorder.store.segfile import open_segment

    topics: dict[str, int] = {}
    messages = 0
    for path in list_segments(Layout(root)):  # plain or compressed
        with open_segment(path) as seg:
            data = seg.read(0, seg.size)
        for line in data.splitlines():
            rec = orjson.loads(line)
            topic = str(rec.get("topic", ""))
            if rec.get("kind") == "msg" and topic.startswith("agents."):
                short = ".".join(topic.split(".")[:2])
                topics[short] = topics.get(short, 0) + 1
                messages += 1
    return {
        "messages": messages,
        "topics": topics,
        "checkpoints": len(list_checkpoints(Layout(root))),
        "failures": read_failures(root).total,
        "shell": shlex.join(["persist-tui", "--log-dir", str(root)]),
    }
