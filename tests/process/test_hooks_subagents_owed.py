"""A Claude sub-agent's transcript that its `SubagentStop` could not send (no recorder
listening at that moment) is owed by its session and sent by the session's later hook
calls (a turn, `SessionEnd`, or the `hooks/pending/` path of an ended session): once,
in order, with the sequence numbers carrying on. Real broker and recorder, real
transcript files, the hook run as the agent runs it. Before 2026-12-07 a sub-agent had
one chance, its `SubagentStop`: the failure line said its messages waited for the
session's next hook call, and none ever sent them."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from recorder.hooks.samples import ClaudeSession
from tests.process.test_hooks_flow import append, failures, quiet, run_hook
from tests.support import Bus, journal_records, wait_for

pytestmark = pytest.mark.timeout(180)

AGENT_ID = "a5bdbc1"


def _stop_recorder(bus: Bus) -> None:
    assert bus.recorder is not None
    bus.recorder.signal(signal.SIGTERM)
    assert bus.recorder.wait(10) == 0


def _topics(log_dir: Path) -> dict[str, list[tuple[str, int]]]:
    """topic -> (text, or the type of a message that is not the agent's, seq) in order."""
    out: dict[str, list[tuple[str, int]]] = {}
    for r in journal_records(log_dir):
        topic = str(r.get("topic", ""))
        if r["kind"] == "msg" and topic.startswith("agents.claude."):
            body = r["frames"][-1]["json"]
            what = body["text"] if body["type"] == "agent.message" else body["type"]
            out.setdefault(topic, []).append((what, r["frames"][-1]["json"]["_persist"]["seq"]))
    return out


def _texts(got: list[tuple[str, int]]) -> list[str]:
    return [t for t, _ in got]


def _seqs(got: list[tuple[str, int]]) -> list[int]:
    return [s for _, s in got]


def _pending(log_dir: Path) -> list[str]:
    folder = log_dir / "hooks" / "pending"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _session_with_a_sub_agent(tmp_path: Path) -> tuple[ClaudeSession, ClaudeSession]:
    c = ClaudeSession(transcript=str(tmp_path / "main.jsonl"))
    append(Path(c.transcript), c.user("delegate the search"))
    folder = tmp_path / "main" / "subagents"
    folder.mkdir(parents=True)
    sub = ClaudeSession(session=c.session, transcript=str(folder / f"agent-{AGENT_ID}.jsonl"))
    append(Path(sub.transcript), sub.user("find the parser") + sub.assistant("in src/parse.py"))
    append(Path(sub.transcript), sub.user("and the lexer?") + sub.assistant("src/lex.py"))
    return c, sub


def _subagent_stop(c: ClaudeSession, sub: ClaudeSession) -> dict[str, Any]:
    return c.payload(
        "SubagentStop",
        agent_id=AGENT_ID,
        agent_type="general-purpose",
        agent_transcript_path=sub.transcript,
    )


SUB_TEXTS = ["find the parser", "in src/parse.py", "and the lexer?", "src/lex.py"]


def test_a_sub_agent_unheard_at_its_subagent_stop_goes_with_the_sessions_next_turn(
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
    _stop_recorder(bus)  # a moment with nobody listening: the sub-agent finishes then
    quiet(run_hook(bus.log_dir, "claude", _subagent_stop(c, sub), endpoints=ends))
    (line,) = [f["error"] for f in failures(bus.log_dir) if f["event"] == "SubagentStop"]
    assert line.startswith("NotDelivered: no subscriber at "), line
    assert f"sub-agent {AGENT_ID}'s transcript" in line and "4 message(s)" in line, line
    assert "wait for this session's next hook call" in line, line

    bus.start_recorder()
    append(Path(c.transcript), c.assistant("it is in src/parse.py"))
    quiet(run_hook(bus.log_dir, "claude", c.payload("Stop"), endpoints=ends))
    wait_for(lambda: len(_topics(bus.log_dir).get(sub_topic, [])) >= 4, what="the sub-agent")
    quiet(run_hook(bus.log_dir, "claude", c.payload("Stop"), endpoints=ends))  # nothing again
    quiet(run_hook(bus.log_dir, "claude", _subagent_stop(c, sub), endpoints=ends))
    wait_for(lambda: len(_topics(bus.log_dir).get(main_topic, [])) >= 3, what="the answer")
    topics = _topics(bus.log_dir)
    assert _texts(topics[sub_topic]) == SUB_TEXTS
    assert _seqs(topics[sub_topic]) == [1, 2, 3, 4]
    assert _texts(topics[main_topic]) == [
        "session.started",
        "delegate the search",
        "it is in src/parse.py",
    ]
    assert len(failures(bus.log_dir)) == 1


def test_a_sub_agent_is_kept_owed_when_the_main_transcripts_send_fails_first(
    bus: Bus, tmp_path: Path
) -> None:
    """The main transcript's new lines fail first: the sub-agent is not even tried (nobody
    listens), stays owed, and the failure line names it too."""
    bus.start_broker()  # no recorder
    ends = (bus.front, bus.back)
    c, sub = _session_with_a_sub_agent(tmp_path)
    quiet(run_hook(bus.log_dir, "claude", _subagent_stop(c, sub), endpoints=ends))
    (line,) = [f["error"] for f in failures(bus.log_dir)]
    assert "1 message(s) of its transcript" in line, line
    assert f"sub-agent {AGENT_ID}'s transcript from byte 0" in line, line

    bus.start_recorder()
    append(Path(c.transcript), c.user("thanks"))
    quiet(run_hook(bus.log_dir, "claude", c.payload("UserPromptSubmit"), endpoints=ends))
    main_topic, sub_topic = f"agents.claude.{c.session}", f"agents.claude.{c.session}.{AGENT_ID}"
    wait_for(lambda: len(_topics(bus.log_dir).get(sub_topic, [])) >= 4, what="the sub-agent")
    wait_for(lambda: len(_topics(bus.log_dir).get(main_topic, [])) >= 2, what="the main one")
    topics = _topics(bus.log_dir)
    assert _texts(topics[sub_topic]) == SUB_TEXTS and _seqs(topics[sub_topic]) == [1, 2, 3, 4]
    assert _texts(topics[main_topic]) == ["delegate the search", "thanks"]


def test_an_owed_sub_agent_goes_before_session_ended_at_session_end(
    bus: Bus, tmp_path: Path
) -> None:
    bus.start_broker()
    ends = (bus.front, bus.back)
    c, sub = _session_with_a_sub_agent(tmp_path)
    quiet(run_hook(bus.log_dir, "claude", _subagent_stop(c, sub), endpoints=ends))
    bus.start_recorder()
    quiet(run_hook(bus.log_dir, "claude", c.payload("SessionEnd"), endpoints=ends))
    main_topic, sub_topic = f"agents.claude.{c.session}", f"agents.claude.{c.session}.{AGENT_ID}"
    wait_for(
        lambda: "session.ended" in _texts(_topics(bus.log_dir).get(main_topic, [])),
        what="the end",
    )
    topics = _topics(bus.log_dir)
    assert _texts(topics[sub_topic]) == SUB_TEXTS
    assert _texts(topics[main_topic]) == ["delegate the search", "session.ended"]
    assert _pending(bus.log_dir) == []


def test_an_ended_session_owing_a_sub_agent_is_finished_by_another_sessions_call(
    bus: Bus, tmp_path: Path
) -> None:
    """SubagentStop and SessionEnd both unheard: the session is pending, and the next
    hook call of another session sends the sub-agent's transcript, then the end."""
    bus.start_broker()
    ends = (bus.front, bus.back)
    c, sub = _session_with_a_sub_agent(tmp_path)
    quiet(run_hook(bus.log_dir, "claude", _subagent_stop(c, sub), endpoints=ends))
    quiet(run_hook(bus.log_dir, "claude", c.payload("SessionEnd"), endpoints=ends))
    assert len(_pending(bus.log_dir)) == 1
    (line,) = [f["error"] for f in failures(bus.log_dir) if f["event"] == "SessionEnd"]
    assert f"sub-agent {AGENT_ID}'s transcript" in line, line

    bus.start_recorder()
    other = ClaudeSession(transcript=str(tmp_path / "other.jsonl"))
    append(Path(other.transcript), other.user("hello"))
    quiet(run_hook(bus.log_dir, "claude", other.payload("UserPromptSubmit"), endpoints=ends))
    main_topic, sub_topic = f"agents.claude.{c.session}", f"agents.claude.{c.session}.{AGENT_ID}"
    wait_for(
        lambda: "session.ended" in _texts(_topics(bus.log_dir).get(main_topic, [])),
        what="the end",
    )
    topics = _topics(bus.log_dir)
    assert _texts(topics[sub_topic]) == SUB_TEXTS and _seqs(topics[sub_topic]) == [1, 2, 3, 4]
    assert _texts(topics[main_topic]) == ["delegate the search", "session.ended"]
    assert _pending(bus.log_dir) == []


def test_a_main_transcript_that_cannot_be_read_does_not_keep_its_sub_agent_back(
    bus: Bus, tmp_path: Path
) -> None:
    """The session's own transcript fails (a FIFO where it should be): the sub-agent this
    SubagentStop names is still sent, and the failure line names the main one. Before,
    the first failure ended the call before the sub-agent was tried."""
    bus.start_broker()
    bus.start_recorder()
    ends = (bus.front, bus.back)
    c, sub = _session_with_a_sub_agent(tmp_path)
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    c.transcript = str(fifo)
    quiet(run_hook(bus.log_dir, "claude", _subagent_stop(c, sub), endpoints=ends))
    sub_topic = f"agents.claude.{c.session}.{AGENT_ID}"
    wait_for(lambda: len(_topics(bus.log_dir).get(sub_topic, [])) >= 4, what="the sub-agent")
    assert _texts(_topics(bus.log_dir)[sub_topic]) == SUB_TEXTS
    errors = [f["error"] for f in failures(bus.log_dir)]
    assert errors == [f"OSError: {fifo} is not a regular file"], errors
