"""`persist launch -- claude|gemini|codex` resumes the agent's own session, or forks it at
an earlier message and resumes the fork: fake agents on PATH record the argv and cwd they
were started with, through the real CLI and a real recorder."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from recorder.sources import claude, codex
from recorder.sources.copies import protect
from recorder.sources.discover import Roots, scan
from recorder.store.layout import Layout
from tests.session_fixtures import (
    ClaudeSession,
    codex_rollout,
    gemini_legacy,
    gemini_messages,
    gemini_project,
    new_uuid,
    text,
)
from tests.support import Proc, endpoints, healthy, wait_for

pytestmark = pytest.mark.timeout(120)

FAKE = """#!/bin/sh
out="$FAKE_AGENT_LOG.$(basename "$0")"
printf '%s\\n' "$PWD" > "$out"
for a in "$@"; do printf '%s\\n' "$a" >> "$out"; done
exit 3
"""


def fake_agents(tmp: Path) -> Path:
    """`claude`, `gemini` and `codex` that write their cwd and argv, one per line."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for name in ("claude", "gemini", "codex"):
        path = bin_dir / name
        path.write_text(FAKE)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def ran(tmp: Path, agent: str) -> tuple[str, list[str]]:
    lines = (tmp / f"agent.log.{agent}").read_text().splitlines()
    return lines[0], lines[1:]


def test_launch_resumes_and_forks_each_agents_sessions(
    tmp_path: Path, procs: Callable[..., Proc]
) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    homes = {"CLAUDE_CONFIG_DIR": tmp_path / "claude", "CODEX_HOME": tmp_path / "codex"}
    homes["GEMINI_CLI_HOME"] = tmp_path / "ghome"
    c = ClaudeSession(tmp_path / "claude", cwd=str(proj))
    for i in range(3):
        c.user(f"question {i}")
        c.assistant(text(f"answer {i}"))
    c.write()
    gid = new_uuid()
    chats = gemini_project(tmp_path / "ghome" / ".gemini", str(proj))
    gemini_legacy(chats, gid, gemini_messages(2))
    sub = new_uuid()  # `kind: "subagent"`: Gemini CLI does not resume it
    gemini_legacy(chats, sub, gemini_messages(1), kind="subagent")
    tid = "019a085e-0000-7000-8000-0000000000bb"
    codex_rollout(tmp_path / "codex", tid, 2, cwd=str(proj))
    log_dir = tmp_path / "log"
    eps = endpoints()
    recorder = procs(
        "record", "--log-dir", str(log_dir), "--broker", eps["broker"], "--embedded", "yes",
        "--publish-endpoint", eps["publish_endpoint"], "--search-index", "off", name="recorder",
    )  # fmt: skip
    wait_for(lambda: healthy(log_dir), timeout=30, what="recorder")
    env = {
        **os.environ,
        **{k: str(v) for k, v in homes.items()},
        "PATH": f"{fake_agents(tmp_path)}:{os.environ['PATH']}",
        "FAKE_AGENT_LOG": str(tmp_path / "agent.log"),
    }
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def launch(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "recorder.cli", "launch", "--log-dir", str(log_dir), *args],
            capture_output=True, text=True, env=env, cwd=elsewhere, timeout=60,
        )  # fmt: skip

    # the latest point: the session itself, resumed in its project, the user's arguments kept
    out = launch("--session", c.session_id[:8], "--", "claude", "--model", "opus")
    assert out.returncode == 3, out.stderr  # the agent's own exit code
    assert ran(tmp_path, "claude") == (str(proj), ["--resume", c.session_id, "--model", "opus"])
    assert f"running cd {proj} && claude --resume {c.session_id} --model opus" in out.stderr

    # an earlier point: a fork read back, then resumed; the original untouched
    original = c.path.read_bytes()  # type: ignore[union-attr]
    out = launch("--session", c.session_id, "--at", "2", "--", "claude")
    assert out.returncode == 3, out.stderr
    cwd, argv = ran(tmp_path, "claude")
    assert cwd == str(proj) and argv[0] == "--resume" and argv[1] != c.session_id
    fork_path = c.path.parent / f"{argv[1]}.jsonl"  # type: ignore[union-attr]
    back = claude.read_transcript(fork_path)
    assert [m.text for m in back.messages] == ["question 0", "answer 0", "question 1"]
    assert c.path.read_bytes() == original  # type: ignore[union-attr]
    assert f"forked claude:{c.session_id} at message 2 into {fork_path}" in out.stderr

    # Codex: its own resume syntax (Gemini's is Claude's: resume_argv below)
    out = launch("--session", tid, "--at", "1", "--", "codex", "-m", "o3")
    assert out.returncode == 3, out.stderr
    cwd, argv = ran(tmp_path, "codex")
    assert cwd == str(proj) and argv[0] == "resume" and argv[2:] == ["-m", "o3"]
    forks = [p for p in codex.rollouts(tmp_path / "codex") if argv[1] in p.name]
    assert len(forks) == 1
    rollout = codex.read_transcript(
        next(p for p in codex.rollouts(tmp_path / "codex") if tid in p.name)
    )
    want = [m.text for m in rollout.messages[:2]]
    assert [m.text for m in codex.read_transcript(forks[0]).messages] == want

    # a session the agent deleted, only in our copy: forked back, the fork resumed
    layout = Layout(log_dir)
    roots = Roots(tmp_path / "claude", None, None)
    (listed,) = [s for s in scan(roots).sessions if s.id == c.session_id]
    protect(layout, listed)
    c.path.unlink()  # type: ignore[union-attr]
    out = launch("--session", c.session_id, "--", "claude")
    assert out.returncode == 3, out.stderr
    cwd, argv = ran(tmp_path, "claude")
    assert cwd == str(proj) and argv[1] not in (c.session_id, fork_path.stem)
    back = claude.read_transcript(c.path.parent / f"{argv[1]}.jsonl")  # type: ignore[union-attr]
    assert len(back.messages) == 6 and back.messages[-1].text == "answer 2"

    # mistakes are one line each, nothing runs
    (tmp_path / "agent.log.claude").unlink()
    out = launch("--session", "nope", "--", "claude")
    assert out.returncode == 1 and out.stderr.strip() == (
        "persist: cannot resume: no session 'claude:nope' (see `persist sessions`)"
    )
    out = launch("--session", sub, "--at", "0", "--", "gemini")
    assert out.returncode == 1 and out.stderr.strip().endswith(
        "is a sub-agent's session (kind subagent, which Gemini CLI leaves out of its resume "
        f"lists): the agent cannot resume a sub-agent; `persist export --session gemini:{sub}` "
        "writes it out"
    ), out.stderr
    assert not (tmp_path / "agent.log.gemini").exists()
    out = launch("--session", c.session_id, "--", "./agent.sh")
    assert out.returncode == 2 and "--session resumes claude, gemini or codex" in out.stderr
    out = launch("--at", "1", "--", "claude")
    assert out.returncode == 2 and "--at needs --session" in out.stderr
    assert not (tmp_path / "agent.log.claude").exists()
    assert healthy(log_dir) and recorder.popen.poll() is None  # not ours to stop


def test_agent_command_and_resume_arguments() -> None:
    from recorder.launch.sessions import agent_source, resume_argv
    from recorder.sources.model import Source

    assert agent_source(["/usr/local/bin/claude", "-p"]) is Source.CLAUDE
    assert agent_source(["./agent.sh"]) is None and agent_source([]) is None
    assert resume_argv(["codex", "--full-auto"], Source.CODEX, "T") == [
        "codex", "resume", "T", "--full-auto",
    ]  # fmt: skip
    assert json.dumps(resume_argv(["gemini"], Source.GEMINI, "G")) == '["gemini", "--resume", "G"]'


def test_a_session_it_cannot_resume_is_refused_before_any_recorder_starts(
    tmp_path: Path,
) -> None:
    """`launch --session` of a session the agent does not resume (or of none) is refused
    before a recorder is started: no log folder made, no lock, no status, nothing to stop
    (it started one, refused, then stopped it)."""
    proj = tmp_path / "proj"
    proj.mkdir()
    chats = gemini_project(tmp_path / "ghome" / ".gemini", str(proj))
    sub = new_uuid()  # `kind: "subagent"`: Gemini CLI does not resume it
    gemini_legacy(chats, sub, gemini_messages(1), kind="subagent")
    eps = endpoints()
    env = {
        **os.environ,
        "GEMINI_CLI_HOME": str(tmp_path / "ghome"),
        "CLAUDE_CONFIG_DIR": str(tmp_path / "claude"),
        "PATH": f"{fake_agents(tmp_path)}:{os.environ['PATH']}",
        "FAKE_AGENT_LOG": str(tmp_path / "agent.log"),
    }

    def launch(log_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "recorder.cli", "launch", "--log-dir", str(log_dir),
             "--broker", eps["broker"], "--publish-endpoint", eps["publish_endpoint"], *args],
            capture_output=True, text=True, env=env, cwd=proj, timeout=60,
        )  # fmt: skip

    missing = tmp_path / "no-log-yet"
    out = launch(missing, "--session", sub, "--", "gemini")
    assert out.returncode == 1, out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith(
        f"persist: cannot resume: gemini:{sub} is a sub-agent's session"
    ), out.stderr
    assert not missing.exists()
    empty = tmp_path / "log"
    empty.mkdir()
    out = launch(empty, "--session", "nope", "--", "claude")
    assert out.returncode == 1 and out.stderr == (
        "persist: cannot resume: no session 'claude:nope' (see `persist sessions`)\n"
    ), out.stderr
    assert list(empty.iterdir()) == []
    assert not list(tmp_path.glob("agent.log.*"))


def test_launch_warns_only_for_the_namesake_a_running_claude_is_in(
    tmp_path: Path, procs: Callable[..., Proc]
) -> None:
    """One id in two project folders, Claude Code running it from A's project: resuming
    A says so, resuming B does not."""
    from tests.process.test_sessions_duplicate_ids import key_of, running, two_folders

    a, b = two_folders(tmp_path)
    for s in (a, b):
        Path(s.cwd).mkdir()
    running(tmp_path, cwd=a.cwd)
    log_dir = tmp_path / "log"
    eps = endpoints()
    procs(
        "record", "--log-dir", str(log_dir), "--broker", eps["broker"], "--embedded", "yes",
        "--publish-endpoint", eps["publish_endpoint"], "--search-index", "off", name="recorder",
    )  # fmt: skip
    wait_for(lambda: healthy(log_dir), timeout=30, what="recorder")
    env = {
        **os.environ,
        "CLAUDE_CONFIG_DIR": str(tmp_path / "claude"),
        "PATH": f"{fake_agents(tmp_path)}:{os.environ['PATH']}",
        "FAKE_AGENT_LOG": str(tmp_path / "agent.log"),
    }
    warning = f"warning: Claude Code (PID {os.getpid()}) is running this session now"
    for s, warned in ((b, False), (a, True)):
        out = subprocess.run(
            [sys.executable, "-m", "recorder.cli", "launch", "--log-dir", str(log_dir),
             "--session", key_of(s), "--", "claude"],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        assert out.returncode == 3, out.stderr
        assert ran(tmp_path, "claude") == (s.cwd, ["--resume", s.session_id])
        assert (f"PID {os.getpid()}" in out.stderr) is warned, out.stderr
        assert (warning in out.stderr) is warned, out.stderr


def test_launch_session_of_a_claude_file_not_named_by_its_id_resumes_a_fork(
    tmp_path: Path, procs: Callable[..., Proc]
) -> None:
    """`backup-of-<id>.jsonl` (the original gone): `claude --resume <id>` finds no
    `<id>.jsonl`. `launch --session` ran it anyway; now it forks the copy at its latest
    point, as `persist fork` does, and resumes the fork."""
    proj = tmp_path / "proj"
    proj.mkdir()
    c = ClaudeSession(tmp_path / "claude", cwd=str(proj))
    for i in range(2):
        c.user(f"question {i}")
        c.assistant(text(f"answer {i}"))
    c.write()
    assert c.path is not None
    copy = c.path.with_name(f"backup-of-{c.session_id}.jsonl")
    c.path.rename(copy)
    original = copy.read_bytes()
    log_dir = tmp_path / "log"
    eps = endpoints()
    procs(
        "record", "--log-dir", str(log_dir), "--broker", eps["broker"], "--embedded", "yes",
        "--publish-endpoint", eps["publish_endpoint"], "--search-index", "off", name="recorder",
    )  # fmt: skip
    wait_for(lambda: healthy(log_dir), timeout=30, what="recorder")
    env = {
        **os.environ,
        "CLAUDE_CONFIG_DIR": str(tmp_path / "claude"),
        "PATH": f"{fake_agents(tmp_path)}:{os.environ['PATH']}",
        "FAKE_AGENT_LOG": str(tmp_path / "agent.log"),
    }
    out = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "launch", "--log-dir", str(log_dir),
         "--session", c.session_id[:8], "--", "claude"],
        capture_output=True, text=True, env=env, cwd=proj, timeout=60,
    )  # fmt: skip
    assert out.returncode == 3, out.stderr  # the fake agent's exit code
    cwd, argv = ran(tmp_path, "claude")
    assert cwd == str(proj) and argv[0] == "--resume" and argv[1] != c.session_id, argv
    fork_path = copy.with_name(f"{argv[1]}.jsonl")
    assert f"forked claude:{c.session_id} at message 3 into {fork_path}" in out.stderr
    back = claude.read_transcript(fork_path)
    assert [m.text for m in back.messages] == ["question 0", "answer 0", "question 1", "answer 1"]
    assert copy.read_bytes() == original
