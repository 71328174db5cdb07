"""What a transcript gained since the last hook call (`recorder.hooks.transcript`), on
real files in each agent's shape: torn lines, rewrites, Gemini records rewritten by id,
`$set.messages` checkpoints, legacy `.json` documents; and the state file round trip."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import orjson

from recorder.hooks.agents import Agent
from recorder.hooks.samples import ClaudeSession, GeminiSession
from recorder.hooks.state import SessionState, load_state, save_state, state_path
from recorder.hooks.transcript import read_new


def consume(agent: Agent, path: Path, state: SessionState, final: bool = False) -> list[str]:
    """One hook call as `run.transcript_messages` makes it, minus the bus: the texts."""
    delta = read_new(agent, path, state, final=final)
    delta.taken(state, path)
    return [m.text for m in delta.messages]


def test_claude_torn_line_waits_and_final_takes_an_unterminated_line(tmp_path: Path) -> None:
    c = ClaudeSession(transcript=str(tmp_path / "s.jsonl"))
    path = Path(c.transcript)
    state = SessionState.new("claude", c.session)
    path.write_bytes(b"".join(c.user("one") + c.metadata()))
    line = c.assistant("two")[0]
    with open(path, "ab") as f:
        f.write(line[:-30])
    assert consume(Agent.CLAUDE, path, state) == ["one"]
    assert consume(Agent.CLAUDE, path, state) == []  # still torn
    with open(path, "ab") as f:
        f.write(line[-30:-1])  # complete JSON, but no newline yet
    assert consume(Agent.CLAUDE, path, state) == []
    assert consume(Agent.CLAUDE, path, state, final=True) == ["two"]  # session end
    assert state.offset == path.stat().st_size


def test_claude_bad_lines_are_skipped_and_the_rest_kept(tmp_path: Path) -> None:
    c = ClaudeSession(transcript=str(tmp_path / "s.jsonl"))
    path = Path(c.transcript)
    path.write_bytes(b"".join([*c.user("one"), b"{garbage\n", b"[1,2]\n", *c.user("two")]))
    state = SessionState.new("claude", c.session)
    delta = read_new(Agent.CLAUDE, path, state)
    assert [m.text for m in delta.messages] == ["one", "two"] and delta.bad_lines == 2


def test_claude_streamed_blocks_are_one_message_with_the_last_uuid(tmp_path: Path) -> None:
    c = ClaudeSession(transcript=str(tmp_path / "s.jsonl"))
    path = Path(c.transcript)
    lines = c.assistant("looking", ("Read", {"file_path": "/a.py"}))
    path.write_bytes(b"".join(lines))
    state = SessionState.new("claude", c.session)
    assert read_new(Agent.CLAUDE, path, state).messages == []  # it may go on: held back
    (msg,) = read_new(Agent.CLAUDE, path, state, settled=True).messages
    assert msg.uuid == json.loads(lines[-1])["uuid"] and msg.tool_calls[0].name == "Read"


def test_rewrites_are_noticed_and_nothing_is_read_twice(tmp_path: Path) -> None:
    c = ClaudeSession(transcript=str(tmp_path / "s.jsonl"))
    path = Path(c.transcript)
    state = SessionState.new("claude", c.session)
    a, b = c.user("a"), c.user("b")
    path.write_bytes(b"".join(a + b))
    assert consume(Agent.CLAUDE, path, state) == ["a", "b"]
    # same size, different bytes before the offset (an in-place tail rewrite)
    changed = b"".join(a + b).replace(b'"b"', b'"B"')
    path.write_bytes(changed)
    assert consume(Agent.CLAUDE, path, state) == [] and state.rewrites == 1
    path.write_bytes(b"".join(a))  # truncated
    assert consume(Agent.CLAUDE, path, state) == [] and state.rewrites == 2
    with open(path, "ab") as f:
        f.write(b"".join(c.user("c")))
    assert consume(Agent.CLAUDE, path, state) == ["c"]


def test_a_transcript_cut_inside_a_sent_answer_sends_no_part_of_it_again(
    tmp_path: Path,
) -> None:
    """A streamed answer's id is the uuid of its last line: a transcript rewritten with
    only its first lines (cut in the middle of the answer) made a message whose id was
    an earlier line's, never sent, so its first blocks were published again."""
    c = ClaudeSession(transcript=str(tmp_path / "s.jsonl"))
    path = Path(c.transcript)
    where = state_path(tmp_path, "claude", c.session)
    where.parent.mkdir(parents=True)
    question, answer = c.user("question"), c.assistant("looking", ("Read", {"file_path": "/a"}))
    path.write_bytes(b"".join(question + answer + c.user("next")))
    state = SessionState.new("claude", c.session)
    assert consume(Agent.CLAUDE, path, state) == ["question", "looking", "next"]
    save_state(where, state)  # each hook call is a new process: the state goes by its file
    path.write_bytes(b"".join(question + answer[:1]))  # cut after the answer's first block
    with open(path, "ab") as f:
        f.write(b"".join(c.user("again")))
    state = load_state(where, "claude", c.session)
    assert consume(Agent.CLAUDE, path, state) == ["again"] and state.rewrites == 1
    save_state(where, state)
    path.write_bytes(b"".join(question + answer[:1]))  # cut again, ending on that block
    state = load_state(where, "claude", c.session)
    assert consume(Agent.CLAUDE, path, state, final=True) == []
    with open(path, "ab") as f:
        f.write(b"".join(c.user("last")))
    assert consume(Agent.CLAUDE, path, state) == ["last"]


def test_gemini_last_version_wins_and_set_messages_do_not_repeat(tmp_path: Path) -> None:
    g = GeminiSession(transcript=str(tmp_path / "session-x.jsonl"))
    path = Path(g.transcript)
    state = SessionState.new("gemini", g.session)
    _, user = g.user("hi")
    _, reply = g.gemini("hello", ("ls", {"path": "."}, "a b"))
    path.write_bytes(b"".join(g.start() + user + reply))
    texts = consume(Agent.GEMINI, path, state)
    assert texts[0] == "hi" and "a b" in texts[1] and len(texts) == 2
    full = [json.loads(reply[1])]
    rewind = orjson.dumps({"$rewindTo": full[0]["id"]}) + b"\n"
    with open(path, "ab") as f:
        f.write(orjson.dumps({"$set": {"messages": full}}) + b"\n" + rewind)
    assert consume(Agent.GEMINI, path, state) == []


def test_gemini_legacy_json_document_is_read_whole_each_time(tmp_path: Path) -> None:
    path = tmp_path / "session-2025-01-01T10-00-abcd1234.json"
    doc = {
        "sessionId": "legacy",
        "projectHash": "0" * 64,
        "messages": [
            {"id": "m1", "timestamp": "2025-01-01T10:00:00Z", "type": "user", "content": "q"},
        ],
    }
    path.write_text(json.dumps(doc, indent=2))
    state = SessionState.new("gemini", "legacy")
    assert consume(Agent.GEMINI, path, state) == ["q"]
    doc["messages"].append(
        {"id": "m2", "timestamp": "2025-01-01T10:00:05Z", "type": "gemini", "content": "a"}
    )
    path.write_text(json.dumps(doc, indent=2))  # Gemini < 0.39 rewrites the whole file
    assert consume(Agent.GEMINI, path, state) == ["a"]
    path.write_text('{"sessionId": "legacy", "mess')  # caught mid-rewrite
    assert consume(Agent.GEMINI, path, state) == []


def test_gemini_a_changed_message_is_sent_again_after_a_state_without_versions(
    tmp_path: Path,
) -> None:
    """A state saved before versions were kept: what it sent is taken as sent as it is
    now (never sent again), and a later change is sent as a revision."""
    path = tmp_path / "session-2025-01-01T10-00-abcd1234.json"
    reply = {"id": "m2", "timestamp": "2025-01-01T10:00:05Z", "type": "gemini", "content": "a"}
    user = {"id": "m1", "timestamp": "2025-01-01T10:00:00Z", "type": "user", "content": "q"}
    doc = {"sessionId": "legacy", "projectHash": "0" * 64, "messages": [user, reply]}
    path.write_text(json.dumps(doc, indent=2))
    spath = state_path(tmp_path, "gemini", "legacy")
    spath.parent.mkdir(parents=True)
    state = SessionState.new("gemini", "legacy")
    assert consume(Agent.GEMINI, path, state) == ["q", "a"]
    save_state(spath, state)
    older = json.loads(spath.read_text())
    del older["versions"]
    spath.write_text(json.dumps(older))
    state = load_state(spath, "gemini", "legacy")
    assert state.published == ["m1", "m2"] and state.versions == {}
    assert consume(Agent.GEMINI, path, state) == []
    assert set(state.versions) == {"m1", "m2"}
    reply["content"] = "a, and more"
    path.write_text(json.dumps(doc, indent=2))
    delta = read_new(Agent.GEMINI, path, state)
    assert [m.text for m in delta.messages] == ["a, and more"] and delta.revised == {"m2"}
    delta.taken(state, path)
    assert state.published == ["m1", "m2"]
    assert consume(Agent.GEMINI, path, state) == []


def test_state_round_trip_private_and_a_bad_file_starts_afresh(tmp_path: Path) -> None:
    path = state_path(tmp_path, "claude", "a/b session")
    assert path.parent == tmp_path / "hooks" / "sessions" and "/" not in path.name
    path.parent.mkdir(parents=True)
    state = SessionState.new("claude", "a/b session")
    state.seq, state.offset, state.published = 7, 120, ["u1", "u2"]
    save_state(path, state)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_state(path, "claude", "a/b session") == state
    path.write_text('{"agent": "claude", "session": "a/b session", "seq": -3}')
    fresh = load_state(path, "claude", "a/b session")
    assert fresh.seq == 0 and fresh.publisher == state.publisher


def test_a_turn_hook_with_nothing_new_loads_no_zmq_textual_or_sqlite(tmp_path: Path) -> None:
    """What `persist hook Stop` imports when the transcript has nothing new."""
    transcript = tmp_path / "t.jsonl"
    transcript.write_bytes(b"")
    payload = {"session_id": "s", "transcript_path": str(transcript), "cwd": "/"}
    code = (
        "import io, sys\n"
        f"sys.stdin = io.TextIOWrapper(io.BytesIO({orjson.dumps(payload)!r}))\n"
        "from recorder.cli.main import main\n"
        f"main(['hook', 'Stop', '--agent', 'claude', '--log-dir', {str(tmp_path / 'logs')!r}])\n"
        "print(repr(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    loaded = set(ast.literal_eval(out.stdout))
    assert "recorder.hooks.run" in loaded
    heavy_modules = ("zmq", "textual", "sqlite3", "argparse", "dataclasses", "psutil", "orjson")
    for heavy in (*heavy_modules, "recorder.sources.claude"):
        assert heavy not in loaded, heavy
    assert not (tmp_path / "logs" / "hooks" / "failures.jsonl").exists()
