"""`persist hook` when an answer or a session end finds nobody to hear it, with a real
broker and recorder, real transcript files and the hook run as the agents run it: an
ended session's rest reaches the journal through the next hook call of any session
(once, in order, also with hooks running at once), and a streamed Claude answer is one
record whatever line a hook call comes between."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from recorder.hooks.publish import READY_TIMEOUT
from recorder.hooks.samples import ClaudeSession, GeminiSession
from tests.process.test_hooks_flow import (
    append,
    bus_messages,
    cli_at_home,
    failures,
    quiet,
    run_hook,
)
from tests.support import Bus, journal_records, past_broker_death, wait_for


def _stop_recorder(bus: Bus) -> None:
    assert bus.recorder is not None
    bus.recorder.signal(signal.SIGTERM)
    assert bus.recorder.wait(10) == 0


def _heard(bus: Bus, session: ClaudeSession, event: str) -> None:
    """A hook call the running recorder hears. A fresh hook process gives the broker
    `READY_TIMEOUT` (1 s) to hand it the recorder's subscription; a loaded machine may
    not schedule the broker that soon (seen under parallel runs: "timed out waiting for
    session a"): the call then says so in a failure line and keeps what it owed, and it
    is made again. Any other failure line fails the test."""
    nobody = f"no subscriber at {bus.front} within {READY_TIMEOUT:g}s"
    said: list[str] = []
    for _ in range(5):
        before = len(failures(bus.log_dir))
        payload = session.payload(event)
        quiet(run_hook(bus.log_dir, "claude", payload, endpoints=(bus.front, bus.back)))
        said = [f["error"] for f in failures(bus.log_dir)[before:]]
        if not said:
            return
        assert all(nobody in line for line in said), said
    raise AssertionError(f"{event} was not heard in 5 calls: {said}")


def _pending(log_dir: Path) -> list[str]:
    folder = log_dir / "hooks" / "pending"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _session_of(bus: Bus, session: str) -> list[dict[str, Any]]:
    return [m for m in bus_messages(bus.log_dir) if m.get("session") == session]


def _ended_session(bus: Bus, tmp_path: Path, name: str, turns: int) -> ClaudeSession:
    """A Claude session whose last turns and end came while no recorder listened."""
    ends = (bus.front, bus.back)
    c = ClaudeSession(transcript=str(tmp_path / f"{name}.jsonl"))
    append(Path(c.transcript), c.user(f"{name} first") + c.assistant(f"{name} answer"))
    for i in range(turns):
        append(Path(c.transcript), c.user(f"{name} q{i}") + c.assistant(f"{name} a{i}"))
    quiet(run_hook(bus.log_dir, "claude", c.payload("SessionEnd"), endpoints=ends))
    return c


def _texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["text"] if m["type"] == "agent.message" else m["type"] for m in messages]


def test_an_ended_sessions_rest_goes_with_the_next_hook_of_another_session(
    bus: Bus, tmp_path: Path
) -> None:
    bus.start_broker()
    bus.start_recorder()
    ends = (bus.front, bus.back)
    a = ClaudeSession(transcript=str(tmp_path / "a.jsonl"))
    quiet(run_hook(bus.log_dir, "claude", a.payload("SessionStart"), endpoints=ends))
    append(Path(a.transcript), a.user("before") + a.assistant("heard"))
    quiet(run_hook(bus.log_dir, "claude", a.payload("Stop"), endpoints=ends))
    wait_for(lambda: len(_session_of(bus, a.session)) == 3, what="session a's start")
    _stop_recorder(bus)
    for i in range(9):  # 18 messages nobody hears, then the end
        append(Path(a.transcript), a.user(f"q{i}") + a.assistant(f"a{i}"))
    quiet(run_hook(bus.log_dir, "claude", a.payload("Stop"), endpoints=ends))
    quiet(run_hook(bus.log_dir, "claude", a.payload("SessionEnd"), endpoints=ends))
    said = [f["error"] for f in failures(bus.log_dir) if f["event"] == "SessionEnd"]

    bus.start_recorder()
    g = GeminiSession(transcript=str(tmp_path / "g.jsonl"))  # another agent's session
    quiet(run_hook(bus.log_dir, "gemini", g.payload("SessionStart"), endpoints=ends))
    wanted = ["session.started", "before", "heard"]
    wanted += [t for i in range(9) for t in (f"q{i}", f"a{i}")] + ["session.ended"]
    wait_for(lambda: len(_session_of(bus, a.session)) >= len(wanted), what="session a's end")
    got = _session_of(bus, a.session)
    assert _texts(got) == wanted
    assert [m["_persist"]["seq"] for m in got] == list(range(1, len(wanted) + 1))
    assert got[-1]["messages"] == 20 and got[-1]["reason"] == "prompt_input_exit"
    assert _pending(bus.log_dir) == []
    # the failure line said so
    (line,) = said
    assert "session end not delivered: no subscriber" in line
    assert "the next hook call of any session sends them" in line
    # the calls after it send nothing again
    quiet(run_hook(bus.log_dir, "gemini", g.payload("AfterAgent"), endpoints=ends))
    quiet(run_hook(bus.log_dir, "claude", a.payload("SessionEnd"), endpoints=ends))
    ended = [m for m in _session_of(bus, a.session) if m["type"] == "session.ended"]
    assert len(_session_of(bus, a.session)) == len(wanted) + 1 and len(ended) == 2


def test_one_hook_call_finishes_two_ended_sessions_and_hooks_at_once_send_each_once(
    bus: Bus, tmp_path: Path
) -> None:
    bus.start_broker()  # no recorder: five sessions end unheard
    ended = [_ended_session(bus, tmp_path, f"s{n}", turns=3) for n in range(5)]
    assert len(_pending(bus.log_dir)) == 5
    bus.start_recorder()
    ends = (bus.front, bus.back)
    live = ClaudeSession(transcript=str(tmp_path / "live.jsonl"))
    append(Path(live.transcript), live.user("hello") + live.assistant("hi"))
    stop = live.payload("Stop", last_assistant_message="hi")
    quiet(run_hook(bus.log_dir, "claude", stop, endpoints=ends))
    assert len(_pending(bus.log_dir)) == 3  # the bound: two ended sessions a call
    others = [ClaudeSession(transcript=str(tmp_path / f"o{n}.jsonl")) for n in range(4)]
    argv = [sys.executable, "-m", "recorder.cli", "hook", "SessionStart", "--agent", "claude"]
    argv += ["--log-dir", str(bus.log_dir), "--publish-endpoint", ends[0], "--broker", ends[1]]
    calls = [
        subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in others
    ]
    for call, other in zip(calls, others, strict=True):
        out, err = call.communicate(orjson.dumps(other.payload("SessionStart")), timeout=60)
        assert call.returncode == 0 and out == err == b""
    for _ in range(3):  # what the round left (a session another call held)
        if _pending(bus.log_dir):
            quiet(run_hook(bus.log_dir, "claude", stop, endpoints=ends))
    assert _pending(bus.log_dir) == []
    for c in ended:
        n, name = c.session, Path(c.transcript).stem
        want = [f"{name} first", f"{name} answer"]
        want += [t for i in range(3) for t in (f"{name} q{i}", f"{name} a{i}")]
        wait_for(lambda n=n, w=want: len(_session_of(bus, n)) >= len(w) + 1, what=f"{n}'s end")
        got = _session_of(bus, n)
        assert _texts(got) == [*want, "session.ended"]
        assert [m["_persist"]["seq"] for m in got] == list(range(1, len(want) + 2))


def test_a_streamed_answer_split_by_hook_calls_is_one_record(bus: Bus, tmp_path: Path) -> None:
    bus.start_broker()
    bus.start_recorder()
    ends = (bus.front, bus.back)
    c = ClaudeSession(transcript=str(tmp_path / "s.jsonl"))
    path = Path(c.transcript)
    quiet(run_hook(bus.log_dir, "claude", c.payload("SessionStart"), endpoints=ends))
    append(path, c.user("run the tests"))
    first = c.assistant("I will run them", tool=("Bash", {"command": "pytest"}))
    append(path, first[:1])  # the text block is written, the tool call not yet
    quiet(run_hook(bus.log_dir, "claude", c.payload("UserPromptSubmit"), endpoints=ends))
    # a Stop naming an answer that is not what was read (a batch not yet flushed) too
    late = c.payload("Stop", last_assistant_message="All pass")
    quiet(run_hook(bus.log_dir, "claude", late, endpoints=ends))
    append(path, first[1:])
    second = c.assistant("All pass")
    append(path, second)
    # Stop names its answer: the last message is complete and goes now
    stop = c.payload("Stop", last_assistant_message="All pass")
    quiet(run_hook(bus.log_dir, "claude", stop, endpoints=ends))
    wait_for(lambda: len(_session_of(bus, c.session)) >= 4, what="the answers")
    got = [m for m in _session_of(bus, c.session) if m["type"] == "agent.message"]
    assert [(m["text"], len(m.get("tool_calls", []))) for m in got] == [
        ("run the tests", 0),
        ("I will run them", 1),
        ("All pass", 0),
    ]
    # a last answer that may go on waits for the session's end, and is not lost there
    third = c.assistant("Then", tool=("Read", {"file_path": "x"}))
    append(path, third[:1])
    quiet(run_hook(bus.log_dir, "claude", c.payload("UserPromptSubmit"), endpoints=ends))
    append(path, third[1:])
    quiet(run_hook(bus.log_dir, "claude", c.payload("SessionEnd"), endpoints=ends))
    wait_for(lambda: _session_of(bus, c.session)[-1]["type"] == "session.ended", what="end")
    got = [m for m in _session_of(bus, c.session) if m["type"] == "agent.message"]
    assert [(m["text"], len(m.get("tool_calls", []))) for m in got][-1] == ("Then", 1)
    assert len(got) == 4 and len({m["uuid"] for m in got}) == 4
    assert failures(bus.log_dir) == []


def test_a_resumed_session_sends_its_unheard_end_before_it_starts_again(
    bus: Bus, tmp_path: Path
) -> None:
    bus.start_broker()
    c = _ended_session(bus, tmp_path, "r", turns=1)
    bus.start_recorder()
    ends = (bus.front, bus.back)
    resumed = c.payload("SessionStart", source="resume")
    quiet(run_hook(bus.log_dir, "claude", resumed, endpoints=ends))
    want = ["r first", "r answer", "r q0", "r a0", "session.ended", "session.started"]
    wait_for(lambda: len(_session_of(bus, c.session)) >= len(want), what="the resumed session")
    assert _texts(_session_of(bus, c.session)) == want
    assert _pending(bus.log_dir) == []
    (cp,) = _checkpoints(bus.log_dir, f"claude {c.session[:8]} ended")  # once it was sent
    ended = [
        r for r in journal_records(bus.log_dir) if r.get("topic") == f"agents.claude.{c.session}"
    ]
    assert ended[4]["frames"][-1]["json"]["type"] == "session.ended"
    assert ended[4]["seq"] <= cp["position"]["seq"] < ended[5]["seq"]  # before it started again


KILLED_AT_THE_END = """
import os, sys
import recorder.hooks.lifecycle as lifecycle
lifecycle._finish = lambda *a, **k: os._exit(9)  # killed before it sends anything
from recorder.cli.main import main
sys.exit(main())
"""


def test_a_hook_killed_during_session_end_leaves_the_end_to_the_next_call(
    bus: Bus, tmp_path: Path
) -> None:
    """A SessionEnd killed after its mark but before it sent the end: the mark was kept
    but the state file, saved only at the call's end, did not say the session ended,
    so the next call cleared the mark and `session.ended` was never sent (nor said)."""
    bus.start_broker()
    bus.start_recorder()
    ends = (bus.front, bus.back)
    c = ClaudeSession(transcript=str(tmp_path / "k.jsonl"))
    append(Path(c.transcript), c.user("hello") + c.assistant("hi"))
    quiet(run_hook(bus.log_dir, "claude", c.payload("Stop"), endpoints=ends))
    wait_for(lambda: len(_session_of(bus, c.session)) == 2, what="the first turn")
    argv = [sys.executable, "-c", KILLED_AT_THE_END, "hook", "SessionEnd", "--agent", "claude"]
    argv += ["--log-dir", str(bus.log_dir), "--publish-endpoint", ends[0], "--broker", ends[1]]
    killed = subprocess.run(
        argv, input=orjson.dumps(c.payload("SessionEnd")), capture_output=True, timeout=60
    )
    assert killed.returncode == 9 and len(_pending(bus.log_dir)) == 1
    other = ClaudeSession(transcript=str(tmp_path / "o.jsonl"))
    quiet(run_hook(bus.log_dir, "claude", other.payload("SessionStart"), endpoints=ends))
    wait_for(lambda: len(_session_of(bus, c.session)) == 3, what="the end")
    assert _texts(_session_of(bus, c.session)) == ["hello", "hi", "session.ended"]
    assert _pending(bus.log_dir) == []


def test_hooks_status_says_how_many_ended_sessions_wait(bus: Bus, tmp_path: Path) -> None:
    bus.start_broker()  # no recorder: two sessions end unheard
    for name in ("w1", "w2"):
        _ended_session(bus, tmp_path, name, turns=1)
    home = tmp_path / "home"
    home.mkdir()
    cli_at_home(home, "hooks", "install", "claude", "--log-dir", str(bus.log_dir))
    said = cli_at_home(home, "hooks", "status", "claude").stdout
    assert "2 sessions owe the bus what their hooks could not send yet" in said, said
    assert said.count(": ended, waits in hooks/pending/, since ") == 2, said


# A SessionEnd hook call whose socket already sent one message of the session (the
# transcript's rest), told by a line on stdin to go on once the broker is gone.
END_AFTER_BROKER_LEFT = r"""
import io, json, sys
from pathlib import Path
from recorder.hooks import publish
from recorder.hooks.run import main
from recorder.hooks.state import load_state, pending_path, save_state, state_path
from recorder.store.layout import Layout

endpoint, log, sid = sys.argv[1], Path(sys.argv[2]), "s-left"
spath = state_path(log, "claude", sid)
spath.parent.mkdir(parents=True, exist_ok=True)
state = load_state(spath, "claude", sid)
layout = Layout(log)
layout.agents.mkdir(parents=True, exist_ok=True)
registration = layout.agents / "claude-test.json"
registration.write_text("{}")
state.registration = registration.name
state.seq = publish.send(endpoint, state.publisher, 0, "claude", f"agents.claude.{sid}",
                         [publish.Outgoing("m1", {"text": "last answer"})], ready_timeout=20)
save_state(spath, state)
print("sent", flush=True)
sys.stdin.readline()
sys.stdin = io.TextIOWrapper(io.BytesIO(json.dumps(
    {"session_id": sid, "hook_event_name": "SessionEnd", "reason": "exit"}).encode()))
main(["SessionEnd", "--agent", "claude", "--log-dir", str(log), "--publish-endpoint", endpoint])
print(json.dumps({
    "pending": pending_path(spath).exists(),
    "ending": json.loads(spath.read_text()).get("ending"),
    "registered": registration.exists(),
}), flush=True)
"""


def test_a_session_end_whose_broker_left_during_the_call_stays_owed_and_the_agent_leaves(
    bus: Bus, tmp_path: Path
) -> None:
    """The broker went away during a SessionEnd call whose socket had sent already: the
    session-ended message was dropped by that socket, yet the pending mark was cleared
    (never sent again), and the failure that surfaced later skipped the deregistration."""
    log = tmp_path / "logs"
    log.mkdir(mode=0o700)
    code, out, err = past_broker_death(bus, END_AFTER_BROKER_LEFT, str(log), ready="sent")
    assert code == 0, err
    assert orjson.loads(out) == {"pending": True, "ending": "exit", "registered": False}
    failures = (log / "hooks" / "failures.jsonl").read_text()
    assert "went away" in failures


def _checkpoints(log_dir: Path, label: str) -> list[dict[str, Any]]:
    folder = log_dir / "checkpoints"
    found = [orjson.loads(p.read_bytes()) for p in folder.glob("*.json")]
    return [cp for cp in found if cp["label"] == label]


@pytest.mark.parametrize("agent", ["claude", "gemini"])
def test_an_unheard_session_ends_checkpoint_is_taken_once_its_end_is_in_the_journal(
    bus: Bus, tmp_path: Path, agent: str
) -> None:
    """A session that ended while no recorder listened got its `... ended` checkpoint
    at once, from the journal as it was (another session's end): restoring it handed
    over that other session, and the session's own messages, sent later from
    hooks/pending/, came after it with no checkpoint at their end."""
    bus.start_broker()
    bus.start_recorder()
    ends = (bus.front, bus.back)
    a = ClaudeSession(transcript=str(tmp_path / "a.jsonl"))
    quiet(run_hook(bus.log_dir, "claude", a.payload("SessionStart"), endpoints=ends))
    append(Path(a.transcript), a.user("the other session") + a.assistant("heard"))
    quiet(run_hook(bus.log_dir, "claude", a.payload("SessionEnd"), endpoints=ends))
    wait_for(lambda: len(_session_of(bus, a.session)) == 4, what="session a")
    _stop_recorder(bus)
    # session c: its turns and its end while nobody listens
    if agent == "claude":
        c: Any = ClaudeSession(transcript=str(tmp_path / "c.jsonl"))
        lines = c.user("c asks") + c.assistant("c answers")
    else:
        c = GeminiSession(transcript=str(tmp_path / "session-2026-12-07T10-00-cccc1234.jsonl"))
        lines = c.start() + c.user("c asks")[1] + c.gemini("c answers")[1]
    append(Path(c.transcript), lines)
    quiet(run_hook(bus.log_dir, agent, c.payload("SessionEnd"), endpoints=ends))
    label = f"{agent} {c.session[:8]} ended"
    assert _checkpoints(bus.log_dir, label) == []  # not before its messages are journaled
    (said,) = [f["error"] for f in failures(bus.log_dir) if f["session"] == c.session]
    assert f"then takes the checkpoint '{label}'" in said

    bus.start_recorder()
    other = ClaudeSession(transcript=str(tmp_path / "o.jsonl"))
    quiet(run_hook(bus.log_dir, "claude", other.payload("SessionStart"), endpoints=ends))
    assert _pending(bus.log_dir) == []
    (cp,) = _checkpoints(bus.log_dir, label)
    mine = [
        r
        for r in journal_records(bus.log_dir)
        if r["kind"] == "msg" and r.get("topic") == f"agents.{agent}.{c.session}"
    ]
    assert [r["frames"][-1]["json"].get("text") for r in mine][:2] == ["c asks", "c answers"]
    assert mine[-1]["frames"][-1]["json"]["type"] == "session.ended"
    assert cp["position"]["seq"] >= mine[-1]["seq"]  # at its end, not before it
    # what restoring it hands over is this session
    out = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "restore", cp["id"], "--log-dir", str(bus.log_dir)],
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    held = (bus.log_dir / "restore" / cp["id"] / "conversation.jsonl").read_text()
    assert "c asks" in held and "c answers" in held
    # taken once: the next calls take it again neither
    quiet(run_hook(bus.log_dir, "claude", other.payload("SessionEnd"), endpoints=ends))
    assert len(_checkpoints(bus.log_dir, label)) == 1


def test_a_compaction_nobody_hears_takes_no_checkpoint_that_holds_none_of_it(
    bus: Bus, tmp_path: Path
) -> None:
    """PreCompact with no recorder listening took its `... before compaction` checkpoint
    from the journal as it was (another session's end): named after this session,
    holding none of its messages. Now none is taken; the failure line says why and
    where the transcript's copy is."""
    bus.start_broker()
    bus.start_recorder()
    ends = (bus.front, bus.back)
    a = ClaudeSession(transcript=str(tmp_path / "a.jsonl"))
    _heard(bus, a, "SessionStart")
    append(Path(a.transcript), a.user("the other session") + a.assistant("heard"))
    _heard(bus, a, "SessionEnd")
    wait_for(lambda: len(_session_of(bus, a.session)) == 4, what="session a")
    _stop_recorder(bus)
    c = ClaudeSession(transcript=str(tmp_path / "c.jsonl"))
    append(Path(c.transcript), c.user("c asks") + c.assistant("c answers"))
    quiet(run_hook(bus.log_dir, "claude", c.payload("PreCompact", trigger="auto"), endpoints=ends))
    label = f"claude {c.session[:8]} before compaction"
    assert _checkpoints(bus.log_dir, label) == []
    assert not (bus.log_dir / "hooks" / "compactions").exists()
    said = " ".join(f["error"] for f in failures(bus.log_dir) if f["session"] == c.session)
    assert f"no checkpoint '{label}'" in said and "sessions/copies" in said
    # heard again: its next call sends what it owed, nothing was skipped
    bus.start_recorder()
    _heard(bus, c, "Stop")
    wait_for(lambda: len(_session_of(bus, c.session)) >= 2, what="session c")
    assert _texts(_session_of(bus, c.session))[:2] == ["c asks", "c answers"]
