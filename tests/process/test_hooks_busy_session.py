"""A hook call that cannot take its session's lock (`session_lock`: another hook of the
session holds it past 5 s, as parallel sub-agents finishing at once or a long
PreCompact do) leaves what it owes beside the session's state, as a mark the lock's
next holder merges into the state. Real broker and recorder, real transcript files,
the hook run as the agent runs it, the lock held by the test. Before 2026-12-07 such a
`SubagentStop` lost its sub-agent's transcript for good (nothing recorded it as owed),
and such a `SessionEnd` its end (no session.ended message, no end checkpoint)."""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from recorder.hooks.samples import ClaudeSession
from recorder.hooks.state import owed_dir, state_path
from tests.process.test_hooks_flow import append, failures, quiet, run_hook
from tests.process.test_hooks_subagents_owed import (
    AGENT_ID,
    SUB_TEXTS,
    _pending,
    _seqs,
    _session_with_a_sub_agent,
    _subagent_stop,
    _texts,
    _topics,
)
from tests.support import Bus, free_port, journal_records, read_status, wait_for

pytestmark = pytest.mark.timeout(180)


@contextmanager
def _held(log_dir: Path, session: str) -> Iterator[None]:
    """The session's lock, held as another hook of the session holds it."""
    spath = state_path(log_dir, "claude", session)
    spath.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(spath.with_name(spath.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _owed(log_dir: Path, session: str) -> list[str]:
    folder = owed_dir(state_path(log_dir, "claude", session))
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _checkpoints(log_dir: Path, label: str) -> list[dict[str, Any]]:
    found = [orjson.loads(p.read_bytes()) for p in (log_dir / "checkpoints").glob("*.json")]
    return [cp for cp in found if cp["label"] == label]


def _started(bus: Bus, tmp_path: Path) -> tuple[ClaudeSession, tuple[str, str], Path, str]:
    """A broker and recorder, and a session whose start and first turn are journaled:
    the session, the hooks' endpoints, its state file and its agent's registration."""
    bus.start_broker()
    bus.start_recorder()
    ends = (bus.front, bus.back)
    c = ClaudeSession(transcript=str(tmp_path / "main.jsonl"))
    append(Path(c.transcript), c.user("hello") + c.assistant("hi"))
    quiet(run_hook(bus.log_dir, "claude", c.payload("SessionStart"), endpoints=ends))
    quiet(run_hook(bus.log_dir, "claude", c.payload("Stop"), endpoints=ends))
    topic = f"agents.claude.{c.session}"
    wait_for(lambda: len(_topics(bus.log_dir).get(topic, [])) == 3, what="the start")
    spath = state_path(bus.log_dir, "claude", c.session)
    return c, ends, spath, orjson.loads(spath.read_bytes())["registration"]


def test_a_subagent_stop_that_finds_its_session_busy_leaves_the_sub_agent_owed(
    bus: Bus, tmp_path: Path
) -> None:
    bus.start_broker()
    bus.start_recorder()
    ends = (bus.front, bus.back)
    c, sub = _session_with_a_sub_agent(tmp_path)
    quiet(run_hook(bus.log_dir, "claude", c.payload("SessionStart"), endpoints=ends))
    quiet(run_hook(bus.log_dir, "claude", c.payload("Stop"), endpoints=ends))
    main_topic, sub_topic = f"agents.claude.{c.session}", f"agents.claude.{c.session}.{AGENT_ID}"
    wait_for(lambda: len(_topics(bus.log_dir).get(main_topic, [])) == 2, what="the start")
    with _held(bus.log_dir, c.session):
        quiet(run_hook(bus.log_dir, "claude", _subagent_stop(c, sub), endpoints=ends))
    (line,) = [f["error"] for f in failures(bus.log_dir)]
    assert line.startswith("TimeoutError: another hook holds "), line
    assert f"sub-agent {AGENT_ID}'s transcript {sub.transcript}" in line, line
    assert "this session's next hook call sends it" in line, line
    assert "lost" not in line, line
    assert len(_owed(bus.log_dir, c.session)) == 1
    assert sub_topic not in _topics(bus.log_dir)

    append(Path(c.transcript), c.assistant("it is in src/parse.py"))
    quiet(run_hook(bus.log_dir, "claude", c.payload("Stop"), endpoints=ends))
    wait_for(lambda: len(_topics(bus.log_dir).get(sub_topic, [])) >= 4, what="the sub-agent")
    quiet(run_hook(bus.log_dir, "claude", c.payload("Stop"), endpoints=ends))  # nothing again
    wait_for(lambda: len(_topics(bus.log_dir).get(main_topic, [])) >= 3, what="the answer")
    topics = _topics(bus.log_dir)
    assert _texts(topics[sub_topic]) == SUB_TEXTS
    assert _seqs(topics[sub_topic]) == [1, 2, 3, 4]
    assert _texts(topics[main_topic]) == [
        "session.started",
        "delegate the search",
        "it is in src/parse.py",
    ]
    assert _owed(bus.log_dir, c.session) == []
    assert len(failures(bus.log_dir)) == 1


def test_a_session_end_that_finds_its_session_busy_is_finished_by_another_sessions_call(
    bus: Bus, tmp_path: Path
) -> None:
    c, ends, spath, registration = _started(bus, tmp_path)
    topic = f"agents.claude.{c.session}"
    assert registration and (bus.log_dir / "agents" / registration).exists()
    append(Path(c.transcript), c.user("bye") + c.assistant("see you"))
    with _held(bus.log_dir, c.session):
        quiet(run_hook(bus.log_dir, "claude", c.payload("SessionEnd"), endpoints=ends))
    (line,) = [f["error"] for f in failures(bus.log_dir)]
    assert line.startswith("TimeoutError: another hook holds "), line
    label = f"claude {c.session[:8]} ended"
    assert (
        "hooks/pending/: the hook holding the session's lock sends them as it lets go, else "
        "the next hook call of any session sends them"
    ) in line, line
    assert f"then takes the checkpoint '{label}'" in line, line
    assert "lost" not in line, line
    assert _pending(bus.log_dir) == [spath.name]
    assert "the agent stays registered until then" in line, line
    assert (bus.log_dir / "agents" / registration).exists()  # left to whoever sends the end
    assert "session.ended" not in _texts(_topics(bus.log_dir)[topic])

    other = ClaudeSession(transcript=str(tmp_path / "other.jsonl"))
    append(Path(other.transcript), other.user("another"))
    quiet(run_hook(bus.log_dir, "claude", other.payload("UserPromptSubmit"), endpoints=ends))
    wait_for(lambda: "session.ended" in _texts(_topics(bus.log_dir).get(topic, [])), what="the end")
    got = _topics(bus.log_dir)[topic]
    assert _texts(got) == ["session.started", "hello", "hi", "bye", "see you", "session.ended"]
    assert _seqs(got) == [1, 2, 3, 4, 5, 6]
    wait_for(lambda: _checkpoints(bus.log_dir, label), what="the end's checkpoint")
    assert _pending(bus.log_dir) == []
    assert _owed(bus.log_dir, c.session) == []
    assert not (bus.log_dir / "agents" / registration).exists()  # by the call that sent it
    assert len(failures(bus.log_dir)) == 1


def test_a_busy_session_end_leaves_the_recorder_running_until_its_end_is_sent(
    tmp_path: Path,
) -> None:
    """The recorder the start hook started (the last agent's): a SessionEnd that finds
    the session busy leaves the agent registered, so the recorder keeps recording what
    the lock's holder sends; the call that sends the end deregisters the agent and stops
    the recorder. Before 2026-12-07 the busy end deregistered the agent at once and
    stopped the recorder under the holder: what it still sent was lost."""
    log_dir = tmp_path / "logs"
    ends = (f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}")
    c = ClaudeSession(transcript=str(tmp_path / "main.jsonl"))
    append(Path(c.transcript), c.user("hello") + c.assistant("hi"))
    try:
        quiet(run_hook(log_dir, "claude", c.payload("SessionStart"), endpoints=ends))
        pid = read_status(log_dir)["pid"]
        assert (log_dir / "agents" / "owner.json").exists()  # started by the hook
        quiet(run_hook(log_dir, "claude", c.payload("Stop"), endpoints=ends))
        topic = f"agents.claude.{c.session}"
        wait_for(lambda: len(_topics(log_dir).get(topic, [])) == 3, what="the turn")
        append(Path(c.transcript), c.user("bye") + c.assistant("see you"))
        with _held(log_dir, c.session):
            quiet(run_hook(log_dir, "claude", c.payload("SessionEnd"), endpoints=ends))
            status = read_status(log_dir)  # the holder may still be sending to it
            assert status.get("state") == "recording" and status.get("pid") == pid, status
            assert list((log_dir / "agents").glob("*.agent.json"))
        # the next hook call of any session sends the end, then stops the recorder
        other = ClaudeSession(transcript=str(tmp_path / "other.jsonl"))
        quiet(run_hook(log_dir, "claude", other.payload("UserPromptSubmit"), endpoints=ends))
        assert read_status(log_dir).get("state") == "stopped"
        assert not list((log_dir / "agents").glob("*.agent.json"))
        got = _topics(log_dir)[topic]
        assert _texts(got) == ["session.started", "hello", "hi", "bye", "see you", "session.ended"]
        assert _pending(log_dir) == []
        (line,) = [f["error"] for f in failures(log_dir)]
        assert line.startswith("TimeoutError: another hook holds "), line
    finally:
        pid = read_status(log_dir).get("pid")
        if isinstance(pid, int) and read_status(log_dir).get("state") != "stopped":
            os.kill(pid, 9)


def test_the_lock_holder_sends_the_end_a_busy_session_end_left_as_it_lets_go(
    bus: Bus, tmp_path: Path
) -> None:
    """The hook holding the lock (here the test, calling what every holder calls as it
    lets go: `settle_owed`) takes the end mark left during its hold, sends the rest of
    the transcript and session.ended, takes the end's checkpoint and deregisters the
    agent: the end waits for no other session's call."""
    from recorder.hooks.agents import Agent
    from recorder.hooks.lifecycle import settle_owed
    from recorder.hooks.run import HookArgs
    from recorder.hooks.state import load_state

    c, ends, spath, registration = _started(bus, tmp_path)
    topic = f"agents.claude.{c.session}"
    append(Path(c.transcript), c.user("bye") + c.assistant("see you"))
    noted: list[str] = []
    with _held(bus.log_dir, c.session):
        quiet(run_hook(bus.log_dir, "claude", c.payload("SessionEnd"), endpoints=ends))
        assert _owed(bus.log_dir, c.session) == ["end.json"]
        args = HookArgs("Stop", Agent.CLAUDE, bus.log_dir, bus.front, bus.back)
        state = load_state(spath, "claude", c.session)
        settle_owed(args, spath, state, noted.append)
    assert noted == []
    wait_for(lambda: "session.ended" in _texts(_topics(bus.log_dir).get(topic, [])), what="end")
    got = _topics(bus.log_dir)[topic]
    assert _texts(got) == ["session.started", "hello", "hi", "bye", "see you", "session.ended"]
    assert _seqs(got) == [1, 2, 3, 4, 5, 6]
    wait_for(lambda: _checkpoints(bus.log_dir, f"claude {c.session[:8]} ended"), what="checkpoint")
    assert _pending(bus.log_dir) == [] and _owed(bus.log_dir, c.session) == []
    assert not (bus.log_dir / "agents" / registration).exists()


def test_a_busy_session_start_registers_starts_the_recorder_and_leaves_its_message_owed(
    tmp_path: Path,
) -> None:
    """No recorder runs; the session's lock is held: the SessionStart still starts the
    recorder and registers the agent (neither needs the lock), and leaves its
    session-started message and checkpoint owed; the session's next call sends them
    first. Before 2026-12-07 such a start did nothing: no recorder, so none of the
    session was recorded, no registration, no message."""
    log_dir = tmp_path / "logs"
    ends = (f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}")
    c = ClaudeSession(transcript=str(tmp_path / "main.jsonl"))
    try:
        with _held(log_dir, c.session):
            quiet(run_hook(log_dir, "claude", c.payload("SessionStart"), endpoints=ends))
            assert read_status(log_dir).get("state") == "recording"
            assert list((log_dir / "agents").glob("*.agent.json"))
            assert [n.split("-")[0] for n in _owed(log_dir, c.session)] == ["start"]
        (line,) = [f["error"] for f in failures(log_dir)]
        label = f"claude {c.session[:8]} started"
        assert line.startswith("TimeoutError: another hook holds "), line
        assert "the agent is registered and the recorder runs" in line, line
        assert f"the checkpoint '{label}' are owed (marked in hooks/sessions/" in line, line
        assert "the session's next hook call sends them first" in line, line
        append(Path(c.transcript), c.user("hello") + c.assistant("hi"))
        quiet(run_hook(log_dir, "claude", c.payload("Stop"), endpoints=ends))
        topic = f"agents.claude.{c.session}"
        wait_for(lambda: len(_topics(log_dir).get(topic, [])) == 3, what="the turn")
        got = _topics(log_dir)[topic]
        assert _texts(got) == ["session.started", "hello", "hi"] and _seqs(got) == [1, 2, 3]
        wait_for(lambda: _checkpoints(log_dir, label), what="the start's checkpoint")
        assert _owed(log_dir, c.session) == [] and len(failures(log_dir)) == 1
        quiet(run_hook(log_dir, "claude", c.payload("SessionEnd"), endpoints=ends))
        assert read_status(log_dir).get("state") == "stopped"  # registered: its end stops it
    finally:
        pid = read_status(log_dir).get("pid")
        if isinstance(pid, int) and read_status(log_dir).get("state") != "stopped":
            os.kill(pid, 9)


def test_a_busy_resume_after_an_end_nobody_heard_sends_that_end_first(
    bus: Bus, tmp_path: Path
) -> None:
    """The session ended with no recorder listening (pending), then resumed while its
    lock was held: the next hook call (another session's) sends the old end (the rest,
    session.ended), then the owed session.started; the session's own lines follow."""
    bus.start_broker()  # no recorder: the end is heard by nobody
    ends = (bus.front, bus.back)
    c = ClaudeSession(transcript=str(tmp_path / "main.jsonl"))
    append(Path(c.transcript), c.user("hello") + c.assistant("hi"))
    quiet(run_hook(bus.log_dir, "claude", c.payload("SessionEnd"), endpoints=ends))
    assert len(_pending(bus.log_dir)) == 1
    bus.start_recorder()
    with _held(bus.log_dir, c.session):
        quiet(
            run_hook(
                bus.log_dir, "claude", c.payload("SessionStart", source="resume"), endpoints=ends
            )
        )
    other = ClaudeSession(transcript=str(tmp_path / "other.jsonl"))
    quiet(run_hook(bus.log_dir, "claude", other.payload("UserPromptSubmit"), endpoints=ends))
    topic = f"agents.claude.{c.session}"
    wait_for(lambda: len(_topics(bus.log_dir).get(topic, [])) == 4, what="the end, the start")
    append(Path(c.transcript), c.user("back") + c.assistant("welcome back"))
    quiet(run_hook(bus.log_dir, "claude", c.payload("Stop"), endpoints=ends))
    wait_for(lambda: len(_topics(bus.log_dir).get(topic, [])) == 6, what="all of it")
    got = _topics(bus.log_dir)[topic]
    assert _texts(got) == [
        "hello",
        "hi",
        "session.ended",
        "session.started",
        "back",
        "welcome back",
    ]
    assert _seqs(got) == [1, 2, 3, 4, 5, 6]
    assert _pending(bus.log_dir) == [] and _owed(bus.log_dir, c.session) == []


def test_a_busy_precompact_copies_the_transcript_and_leaves_its_message_owed(
    bus: Bus, tmp_path: Path
) -> None:
    """The session's lock is held at PreCompact: the transcript is copied all the same
    (what compaction drops stays on disk), the session.compacting message naming the
    copy and the checkpoint are owed, and the session's next call sends them first,
    then the lines. Before 2026-12-07 such a PreCompact did nothing at all."""
    bus.start_broker()
    bus.start_recorder()
    ends = (bus.front, bus.back)
    c = ClaudeSession(transcript=str(tmp_path / "main.jsonl"))
    append(Path(c.transcript), c.user("hello") + c.assistant("hi"))
    quiet(run_hook(bus.log_dir, "claude", c.payload("Stop"), endpoints=ends))
    topic = f"agents.claude.{c.session}"
    wait_for(lambda: len(_topics(bus.log_dir).get(topic, [])) == 2, what="the turn")
    append(Path(c.transcript), c.user("more") + c.assistant("so much more"))
    with _held(bus.log_dir, c.session):
        quiet(
            run_hook(bus.log_dir, "claude", c.payload("PreCompact", trigger="auto"), endpoints=ends)
        )
        assert [n.split("-")[0] for n in _owed(bus.log_dir, c.session)] == ["compact"]
    (line,) = [f["error"] for f in failures(bus.log_dir)]
    label = f"claude {c.session[:8]} before compaction"
    copies = bus.log_dir / "sessions" / "copies"
    assert line.startswith("TimeoutError: another hook holds "), line
    assert f"the transcript as it was is kept in {copies}" in line, line
    assert f"the checkpoint '{label}' are owed" in line and "sends them first" in line, line
    assert "session.compacting" not in _texts(_topics(bus.log_dir)[topic])

    quiet(run_hook(bus.log_dir, "claude", c.payload("Stop"), endpoints=ends))
    wait_for(lambda: len(_topics(bus.log_dir).get(topic, [])) == 5, what="the rest")
    got = _topics(bus.log_dir)[topic]
    assert _texts(got) == ["hello", "hi", "session.compacting", "more", "so much more"]
    assert _seqs(got) == [1, 2, 3, 4, 5]
    compacting = next(
        r["frames"][-1]["json"]
        for r in journal_records(bus.log_dir)
        if r["kind"] == "msg" and r["frames"][-1]["json"].get("type") == "session.compacting"
    )
    assert compacting["late"] is True and compacting["copy_complete"] is True
    assert compacting["copy"].startswith(str(copies))
    wait_for(lambda: _checkpoints(bus.log_dir, label), what="the checkpoint")
    (cp,) = _checkpoints(bus.log_dir, label)
    assert (bus.log_dir / "hooks" / "compactions" / f"{cp['id']}.json").exists()
    assert _owed(bus.log_dir, c.session) == [] and len(failures(bus.log_dir)) == 1


@pytest.mark.parametrize("kind", ["garbage", "named pipe"])
def test_a_mark_that_is_garbage_or_a_named_pipe_is_one_line_never_a_wait(
    bus: Bus, tmp_path: Path, kind: str
) -> None:
    bus.start_broker()
    bus.start_recorder()
    ends = (bus.front, bus.back)
    c = ClaudeSession(transcript=str(tmp_path / "main.jsonl"))
    append(Path(c.transcript), c.user("hello") + c.assistant("hi"))
    folder = owed_dir(state_path(bus.log_dir, "claude", c.session))
    folder.mkdir(parents=True, mode=0o700)
    mark = folder / "subagent-x-00000000.json"
    if kind == "garbage":
        mark.write_bytes(b"\x00{not json")
    else:
        os.mkfifo(mark, 0o600)
    quiet(run_hook(bus.log_dir, "claude", c.payload("Stop"), endpoints=ends))
    topic = f"agents.claude.{c.session}"
    wait_for(lambda: len(_topics(bus.log_dir).get(topic, [])) == 2, what="the turn")
    (line,) = [f["error"] for f in failures(bus.log_dir)]
    assert str(mark) in line, line
    if kind == "garbage":
        assert "not a mark the hooks wrote" in line and "recovery" in line, line
        assert not mark.exists()
        quiet(run_hook(bus.log_dir, "claude", c.payload("Stop"), endpoints=ends))
        assert len(failures(bus.log_dir)) == 1  # said once
    else:
        assert "a named pipe, not a regular file" in line, line
        assert f"mv {mark} {bus.log_dir / 'recovery'}/" in line, line
        assert stat.S_ISFIFO(mark.lstat().st_mode)  # left to the person the line names it to


@pytest.mark.parametrize("event", ["SubagentStop", "SessionEnd"])
def test_a_busy_call_whose_marks_folder_is_a_named_pipe_says_nothing_sends_it(
    tmp_path: Path, event: str
) -> None:
    """No recorder needed: the call waits its 5 s, cannot mark what it owes (a named pipe
    where the marks go), says so, and never waits on the pipe."""
    log_dir = tmp_path / "logs"
    c, sub = _session_with_a_sub_agent(tmp_path)
    folder = owed_dir(state_path(log_dir, "claude", c.session))
    folder.parent.mkdir(parents=True, mode=0o700)
    os.mkfifo(folder, 0o600)
    payload = _subagent_stop(c, sub) if event == "SubagentStop" else c.payload(event)
    nobody = ("tcp://127.0.0.1:57901", "tcp://127.0.0.1:57902")  # (nothing is sent)
    with _held(log_dir, c.session):
        quiet(run_hook(log_dir, "claude", payload, endpoints=nobody))
    first, busy = [f["error"] for f in failures(log_dir)]
    assert str(folder) in first and "a named pipe, not a folder" in first, first
    assert f"mv {folder} {log_dir / 'recovery'}/" in first, first
    assert busy.startswith("TimeoutError: another hook holds "), busy
    assert "could not be marked owed" in busy and "nothing sends it later" in busy, busy
    assert stat.S_ISFIFO(folder.lstat().st_mode)
    assert _pending(log_dir) == []
