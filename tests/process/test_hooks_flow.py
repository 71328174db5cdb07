"""`persist hook EVENT` fed the agents' payloads against transcripts that grow between
calls, with a real broker and recorder: every new message once on the bus and in the
journal, in order, with the agent's ids; torn lines, rewrites, compaction, start, end,
restore, and a broken log folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
import zmq

from recorder.hooks.samples import ClaudeSession, GeminiSession
from tests.support import Bus, free_port, journal_records, read_status, wait_for

pytestmark = pytest.mark.timeout(180)


def run_hook(
    log_dir: Path,
    agent: str,
    payload: dict[str, Any],
    *extra: str,
    endpoints: tuple[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    argv = [sys.executable, "-m", "recorder.cli", "hook", payload["hook_event_name"]]
    argv += ["--agent", agent, "--log-dir", str(log_dir)]
    if endpoints is not None:
        argv += ["--publish-endpoint", endpoints[0], "--broker", endpoints[1]]
    return subprocess.run(
        [*argv, *extra],
        input=orjson.dumps(payload),
        capture_output=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def cli_at_home(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI with `home` as HOME (the agents' settings there), never a traceback."""
    env = {k: v for k, v in os.environ.items() if k not in ("CLAUDE_CONFIG_DIR", "GEMINI_CLI_HOME")}
    out = subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "HOME": str(home)},
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out


def quiet(out: subprocess.CompletedProcess[bytes]) -> None:
    """A hook exits 0 and says nothing the agent would read."""
    assert out.returncode == 0
    assert out.stdout == b"" and out.stderr == b"", (out.stdout, out.stderr)


def append(path: Path, lines: list[bytes]) -> None:
    with open(path, "ab") as f:
        f.write(b"".join(lines))


def bus_messages(log_dir: Path, topic_prefix: str = "agents.") -> list[dict[str, Any]]:
    out = []
    for r in journal_records(log_dir):
        topic = str(r.get("topic", ""))
        probe = topic.startswith("agents.probe")  # the listener's own
        if r["kind"] == "msg" and topic.startswith(topic_prefix) and not probe:
            out.append(r["frames"][-1]["json"])
    return out


def failures(log_dir: Path) -> list[dict[str, Any]]:
    path = log_dir / "hooks" / "failures.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


class Listener:
    """Another agent on the bus: a SUB socket on the broker's subscriber side."""

    def __init__(self, bus: Bus) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.linger = 0
        self.sock.subscribe(b"agents.")
        self.sock.connect(bus.back)
        from recorder.bus.publisher import Publisher

        with Publisher(bus.front, agent="probe", heartbeat_interval=0) as probe:
            probe.wait_ready()

            def heard() -> bool:
                probe.send("agents.probe", {"text": "probe"})
                return bool(self.sock.poll(100))

            wait_for(heard, what="the listener's subscription")
        self.drain()

    def drain(self) -> list[dict[str, Any]]:
        got = []
        while self.sock.poll(200):
            topic, body = self.sock.recv_multipart()
            if not topic.startswith(b"agents.probe"):
                got.append(orjson.loads(body))
        return got

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()


def test_claude_turns_publish_every_new_message_once_in_order(bus: Bus, tmp_path: Path) -> None:
    bus.start_broker()
    bus.start_recorder()
    listener = Listener(bus)
    ends = (bus.front, bus.back)
    c = ClaudeSession(transcript=str(tmp_path / "session.jsonl"))
    path = Path(c.transcript)
    try:
        quiet(run_hook(bus.log_dir, "claude", c.payload("SessionStart"), endpoints=ends))
        # UserPromptSubmit before the transcript exists (Claude creates it lazily)
        quiet(run_hook(bus.log_dir, "claude", c.payload("UserPromptSubmit"), endpoints=ends))

        expected: list[tuple[str, str]] = []  # (uuid, text)
        append(path, c.user("fix the failing test"))
        expected.append((c.last or "", "fix the failing test"))
        append(path, c.assistant("Running the tests.", ("Bash", {"command": "pytest -q"})))
        expected.append((c.last or "", "Running the tests."))  # two lines, one message
        quiet(run_hook(bus.log_dir, "claude", c.payload("Stop"), endpoints=ends))

        append(path, c.tool_result("toolu_1", "1 failed, 41 passed"))
        expected.append((c.last or "", "1 failed, 41 passed"))
        append(path, c.metadata())  # not messages
        # a torn last line: half of the next reply
        reply = c.assistant("Fixed the off-by-one.")[0]
        append(path, [reply[:40]])
        quiet(run_hook(bus.log_dir, "claude", c.payload("UserPromptSubmit"), endpoints=ends))
        got = wait_for(lambda: len(bus_messages(bus.log_dir)) >= 4, what="three messages")
        assert got
        assert [m.get("text") for m in bus_messages(bus.log_dir)][1:] == [t for _, t in expected]

        append(path, [reply[40:]])  # the line completed
        expected.append((c.last or "", "Fixed the off-by-one."))
        quiet(run_hook(bus.log_dir, "claude", c.payload("Stop"), endpoints=ends))
        quiet(run_hook(bus.log_dir, "claude", c.payload("Stop"), endpoints=ends))  # nothing new

        wait_for(lambda: len(bus_messages(bus.log_dir)) >= 5, what="four messages")
        time.sleep(0.5)  # anything duplicated would have arrived by now
        messages = bus_messages(bus.log_dir)
        started, turns = messages[0], messages[1:]
        assert started["type"] == "session.started" and started["session"] == c.session
        assert [(m["uuid"], m["text"]) for m in turns] == expected
        assert [m["_persist"]["mid"] for m in turns] == [u for u, _ in expected]
        assert [m["sender"] for m in turns] == ["user", "claude", "claude:tool", "claude"]
        assert turns[1]["tool_calls"][0]["name"] == "Bash"
        envs = [m["_persist"] for m in messages]
        assert {e["pub"] for e in envs} == {f"claude-{c.session}"}
        assert [e["seq"] for e in envs] == list(range(1, len(messages) + 1))
        assert {m["_persist"]["pub"] for m in messages} == {f"claude-{c.session}"}
        assert not [r for r in journal_records(bus.log_dir) if r["kind"] == "gap"]
        live = listener.drain()
        assert [m.get("uuid") for m in live if m.get("type") == "agent.message"] == [
            u for u, _ in expected
        ]
        assert not failures(bus.log_dir)
    finally:
        listener.close()


def test_hooks_publish_to_the_endpoint_a_binding_recorder_listens_at(
    bus: Bus, tmp_path: Path
) -> None:
    """A recorder that listens (`--bind`, no broker) and hooks given no endpoint: they
    published to the default broker endpoint, where nothing listens, so nothing of the
    session was recorded; now they publish to the recorder's bound endpoint."""
    bound = f"ipc://{tmp_path}/bound.ipc"
    bus.procs("record", "--bind", bound, "--log-dir", str(bus.log_dir), name="recorder")
    wait_for(
        lambda: read_status(bus.log_dir).get("connection") == "listening",
        what="recorder listening",
    )
    c = ClaudeSession(transcript=str(tmp_path / "session.jsonl"))
    quiet(run_hook(bus.log_dir, "claude", c.payload("SessionStart")))
    append(Path(c.transcript), c.user("hello over the bound endpoint"))
    quiet(run_hook(bus.log_dir, "claude", c.payload("Stop")))
    wait_for(lambda: len(bus_messages(bus.log_dir)) >= 2, what="the session's messages")
    messages = bus_messages(bus.log_dir)
    assert messages[0]["type"] == "session.started"
    assert [m.get("text") for m in messages[1:]] == ["hello over the bound endpoint"]
    assert not failures(bus.log_dir)


@pytest.mark.parametrize("event", ["SessionEnd", "PreCompact"])
def test_the_last_calls_publish_all_of_a_transcript_longer_than_one_read(
    bus: Bus, tmp_path: Path, event: str
) -> None:
    """A hook reads 16 MiB a call (`MAX_READ`); the rest waited for a next call that
    never comes after SessionEnd (and PreCompact's checkpoint needs it now): hooks
    installed late in a long session published half of it, silently. A SessionEnd on a
    machine too loaded to read it all within its 10 s leaves the rest pending, and says
    so: the next hook call of any session sends it (before, the test waited 60 s for it)."""
    from recorder.hooks.transcript import MAX_READ

    bus.start_broker()
    bus.start_recorder()
    ends = (bus.front, bus.back)
    c = ClaudeSession(transcript=str(tmp_path / "session.jsonl"))
    path = Path(c.transcript)
    pad = "x" * 4000
    with open(path, "wb") as f:
        n = 0
        while f.tell() < MAX_READ + (4 << 20):
            f.write(b"".join(c.user(f"prompt {n} {pad}") + c.assistant(f"answer {n}")))
            n += 1
    quiet(run_hook(bus.log_dir, "claude", c.payload(event), endpoints=ends))
    pending = bus.log_dir / "hooks" / "pending"
    said = [f["error"] for f in failures(bus.log_dir)]
    if said:
        assert event == "SessionEnd", said  # (PreCompact reads all of it, however long)
        # a machine too loaded to read it all within the 10 s the agent gives SessionEnd
        # (at load 8 on 2 cores): what fit is sent, the rest waits in hooks/pending/,
        # said; the next hook call of any session sends it (here another's first prompt)
        assert len(said) == 1, said
        assert said[0].startswith(
            "session end not delivered: SessionEnd's 10 s were nearly up (the time the agent "
            f"gives it); the rest of {path} (from byte "
        ), said
        assert "wait in hooks/pending/: the next hook call of any session sends them" in said[0]
        assert len(list(pending.glob("*"))) == 1
        other = ClaudeSession(transcript=str(tmp_path / "other.jsonl"))
        quiet(run_hook(bus.log_dir, "claude", other.payload("UserPromptSubmit"), endpoints=ends))
    assert [f["error"] for f in failures(bus.log_dir)] == said  # (nothing more said)
    assert not list(pending.glob("*"))
    wanted = [f"answer {n - 1}"]
    got = wait_for(  # taken by the broker (else a failure line): on its way to the journal
        lambda: (
            [m["text"] for m in bus_messages(bus.log_dir) if m.get("type") == "agent.message"][-1:]
            == wanted
        ),
        timeout=60,
        what="the last message",
    )
    assert got
    messages = bus_messages(bus.log_dir)
    texts = [m["text"] for m in messages if m.get("type") == "agent.message"]
    assert len(texts) == 2 * n and texts[0].startswith("prompt 0 ")
    seqs = [m["_persist"]["seq"] for m in messages if m["_persist"]["pub"] == f"claude-{c.session}"]
    assert seqs[: 2 * n] == list(range(1, 2 * n + 1))  # each once, in order (and then the end)


def test_a_turn_whose_broker_froze_says_what_it_could_not_pass_on(tmp_path: Path) -> None:
    """A broker that took the hook's handshake and subscription, then froze (SIGSTOP, a
    starved machine): the hook's socket closed with a linger nothing waited for, the
    process exited with what libzmq still held, the state said sent and the failure log
    nothing (found as a 60 s wait for a SessionEnd's last message, at load 8). Now the
    call waits `CLOSE_WAIT` for the broker to take it all, then names what it dropped.
    The frozen broker: an XSUB that subscribes and reads next to nothing."""
    from recorder.hooks.publish import CLOSE_WAIT

    ctx = zmq.Context()
    frozen = ctx.socket(zmq.XSUB)
    frozen.linger = 0
    frozen.rcvhwm = 1
    frozen.setsockopt(zmq.RCVBUF, 1 << 16)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    frozen.bind(endpoint)
    frozen.monitor("inproc://frozen", zmq.EVENT_HANDSHAKE_SUCCEEDED)
    handshakes = ctx.socket(zmq.PAIR)
    handshakes.connect("inproc://frozen")
    c = ClaudeSession(transcript=str(tmp_path / "session.jsonl"))
    n = 1500  # 6.6 MB: more than the kernel's buffers hold between the two
    append(Path(c.transcript), [b"".join(c.user(f"prompt {i} {'x' * 4000}")) for i in range(n)])
    log_dir = tmp_path / "logs"
    got = 0
    with ThreadPoolExecutor(1) as pool:
        try:
            call = pool.submit(
                run_hook, log_dir, "claude", c.payload("Stop"), endpoints=(endpoint,) * 2
            )
            assert handshakes.poll(30_000), "the hook never connected"
            frozen.send(b"\x01agents.")  # its subscription, then nothing more is read
            quiet(call.result(timeout=60))
            while frozen.poll(500):
                frozen.recv_multipart()
                got += 1
        finally:
            handshakes.close()
            frozen.close()
            ctx.term()
    assert 0 < got < n  # (the heartbeat after them too) the last ones were lost
    publisher = json.loads(next((log_dir / "hooks" / "sessions").glob("*.json")).read_text())
    assert publisher["seq"] == n
    assert [f["error"] for f in failures(log_dir)] == [
        f"Undelivered: {publisher['publisher']}: the broker at {endpoint} had not taken all "
        f"that was sent within {CLOSE_WAIT:g}s (frozen, or the machine overloaded?): what it "
        f"had not taken of messages 1..{n} (how many is unknown, the last ones) is dropped"
    ]


def test_a_transcript_that_is_a_fifo_is_a_failure_not_a_hang(tmp_path: Path) -> None:
    """Opening a FIFO to read it waits for a writer: the agent's hook hung until the
    agent's own timeout, and nothing was written down."""
    fifo = tmp_path / "transcript.jsonl"
    os.mkfifo(fifo)
    c = ClaudeSession(transcript=str(fifo))
    log_dir = tmp_path / "logs"
    for event in ("Stop", "PreCompact", "SessionEnd"):
        quiet(run_hook(log_dir, "claude", c.payload(event)))
    errors = [f["error"] for f in failures(log_dir)]
    assert f"OSError: {fifo} is not a regular file" in errors, errors
    assert any("no transcript to copy before compaction" in e for e in errors), errors


def test_a_hook_failure_from_hostile_stdin_is_shown_escaped(tmp_path: Path) -> None:
    """A failure names what the agent sent on the hook's stdin (its session id, its
    transcript's path): `persist status` and `persist hooks status` printed it raw, an
    OSC set the terminal's title and a CSI cleared the screen; `--json` let U+009B
    through. The id is escaped before it is cut to 8 characters."""
    odd = tmp_path / "\x1b]0;PWNED\x07\x1b[2J\x9b"
    odd.mkdir()  # not a regular file: the hook fails on it
    payload = {"session_id": "\x1b]0;X\x07", "transcript_path": str(odd)}
    log_dir = tmp_path / "logs"
    quiet(run_hook(log_dir, "claude", {**payload, "hook_event_name": "Stop"}))
    home = tmp_path / "home"
    home.mkdir()

    def cli(*args: str) -> str:
        out = cli_at_home(home, *args)
        assert not {"\x1b", "\x07", "\x9b"} & set(out.stdout + out.stderr), repr(out.stdout)
        return out.stdout

    said = (
        f"Stop (claude \\x1b]0;X): OSError: {tmp_path}/\\x1b]0;PWNED\\x07\\x1b[2J\\x9b "
        "is not a regular file"
    )
    assert said in cli("status", "--log-dir", str(log_dir))
    cli("hooks", "install", "claude", "--log-dir", str(log_dir))
    assert said in cli("hooks", "status", "claude")
    shown = cli("status", "--json", "--log-dir", str(log_dir))
    assert "\\u009b" in shown and "\\u001b" in shown
    assert f"{odd} is not a regular file" in json.loads(shown)["hook_failures"]["last"]


def test_a_rewritten_transcript_does_not_duplicate(bus: Bus, tmp_path: Path) -> None:
    bus.start_broker()
    bus.start_recorder()
    ends = (bus.front, bus.back)
    c = ClaudeSession(transcript=str(tmp_path / "session.jsonl"))
    path = Path(c.transcript)
    first = c.user("one") + c.assistant("two")
    second = c.user("three")
    append(path, first + second)
    quiet(run_hook(bus.log_dir, "claude", c.payload("Stop"), endpoints=ends))
    wait_for(lambda: len(bus_messages(bus.log_dir)) == 3, what="three messages")
    # Claude rewrites its tail (removeMessageByUuid): "three" dropped, a new line after
    path.write_bytes(b"".join(first))
    append(path, c.user("four"))
    quiet(run_hook(bus.log_dir, "claude", c.payload("Stop"), endpoints=ends))
    # a file replaced by a longer one with the same start (another inode)
    tmp = path.with_suffix(".new")
    tmp.write_bytes(path.read_bytes() + b"".join(c.assistant("five")))
    tmp.replace(path)
    quiet(run_hook(bus.log_dir, "claude", c.payload("Stop"), endpoints=ends))
    wait_for(lambda: len(bus_messages(bus.log_dir)) >= 5, what="five messages")
    time.sleep(0.5)
    assert [m["text"] for m in bus_messages(bus.log_dir)] == ["one", "two", "three", "four", "five"]
    state = json.loads(next((bus.log_dir / "hooks" / "sessions").glob("claude-*.json")).read_text())
    assert state["rewrites"] == 2 and state["seq"] == 5


def test_gemini_turns_publish_the_final_version_of_each_record_once(
    bus: Bus, tmp_path: Path
) -> None:
    bus.start_broker()
    bus.start_recorder()
    ends = (bus.front, bus.back)
    g = GeminiSession(transcript=str(tmp_path / "session-2026-12-02T07-00-abcd1234.jsonl"))
    path = Path(g.transcript)
    quiet(run_hook(bus.log_dir, "gemini", g.payload("SessionStart"), endpoints=ends))
    append(path, g.start())
    u1, lines = g.user("list the files")
    append(path, lines)
    quiet(run_hook(bus.log_dir, "gemini", g.payload("BeforeAgent"), endpoints=ends))
    m1, lines = g.gemini("Here they are.", ("list_directory", {"path": "."}, "a.py b.py"))
    append(path, lines)
    quiet(run_hook(bus.log_dir, "gemini", g.payload("AfterAgent"), endpoints=ends))
    # Gemini writes the reply again later (a $set checkpoint after masking): no duplicate
    record = json.loads(lines[1])
    append(path, [orjson.dumps({"$set": {"messages": [record]}}) + b"\n"])
    u2, lines = g.user("thanks")
    append(path, lines)
    quiet(run_hook(bus.log_dir, "gemini", g.payload("BeforeAgent"), endpoints=ends))
    wait_for(lambda: len(bus_messages(bus.log_dir)) >= 4, what="four messages")
    time.sleep(0.5)
    messages = bus_messages(bus.log_dir)
    turns = [m for m in messages if m.get("type") == "agent.message"]
    assert [m["uuid"] for m in turns] == [u1, m1, u2]
    assert [m["_persist"]["mid"] for m in turns] == [u1, m1, u2]
    assert "a.py b.py" in turns[1]["text"]  # the final version, with the tool result
    assert turns[1]["tool_calls"][0]["name"] == "list_directory"
    assert {m["_persist"]["pub"] for m in messages} == {f"gemini-{g.session}"}
    assert [m["_persist"]["seq"] for m in messages] == list(range(1, len(messages) + 1))
    assert all(
        r["topic"] == f"agents.gemini.{g.session}"
        for r in journal_records(bus.log_dir)
        if r["kind"] == "msg"
    )


def test_gemini_sends_a_record_again_when_its_content_changes_under_a_published_id(
    bus: Bus, tmp_path: Path
) -> None:
    """Gemini CLI writes a message again under its id as it changes (its text completed,
    tool calls added): the later version reaches the journal as a new record marked as
    a revision of that id; a record written again unchanged is not sent again."""
    bus.start_broker()
    bus.start_recorder()
    ends = (bus.front, bus.back)
    g = GeminiSession(transcript=str(tmp_path / "session-2026-12-02T07-00-abcd1234.jsonl"))
    path = Path(g.transcript)
    u1, user = g.user("list the files")
    append(path, g.start() + user)
    quiet(run_hook(bus.log_dir, "gemini", g.payload("BeforeAgent"), endpoints=ends))
    m1, versions = g.gemini("Here they are.", ("list_directory", {"path": "."}, "a.py b.py"))
    append(path, versions[:1])  # the reply as first written: text only
    quiet(run_hook(bus.log_dir, "gemini", g.payload("AfterAgent"), endpoints=ends))
    wait_for(lambda: len(bus_messages(bus.log_dir)) >= 2, what="two messages")
    # later: the reply with its tool call and result, the user's record written again as it was
    append(path, [user[0], *versions[1:]])
    quiet(run_hook(bus.log_dir, "gemini", g.payload("BeforeAgent"), endpoints=ends))
    wait_for(lambda: len(bus_messages(bus.log_dir)) >= 3, what="the reply's later version")
    quiet(run_hook(bus.log_dir, "gemini", g.payload("BeforeAgent"), endpoints=ends))
    time.sleep(0.5)
    messages = bus_messages(bus.log_dir)
    assert [m["uuid"] for m in messages] == [u1, m1, m1]
    first, later = messages[1], messages[2]
    assert first["text"] == "Here they are." and "tool_calls" not in first
    assert "revises" not in messages[0] and "revises" not in first
    assert later["revises"] == m1 and "a.py b.py" in later["text"]
    assert later["tool_calls"][0]["name"] == "list_directory"
    mids = [m["_persist"]["mid"] for m in messages]
    assert mids[:2] == [u1, m1] and mids[2].startswith(f"{m1}#") and len(set(mids)) == 3
    assert [m["_persist"]["seq"] for m in messages] == [1, 2, 3]


def test_gemini_legacy_document_rewritten_with_a_changed_message_sends_its_new_version(
    bus: Bus, tmp_path: Path
) -> None:
    """Gemini CLI before 0.39 rewrites the whole JSON document on every change."""
    bus.start_broker()
    bus.start_recorder()
    ends = (bus.front, bus.back)
    g = GeminiSession(transcript=str(tmp_path / "session-2025-10-21T20-04-abcd1234.json"))
    path = Path(g.transcript)
    u1, user = g.user("list the files")
    m1, versions = g.gemini("Here they are.", ("list_directory", {"path": "."}, "a.py b.py"))
    head = json.loads(g.start()[0])
    records = [json.loads(user[0]), json.loads(versions[0])]
    path.write_text(json.dumps({**head, "messages": records}, indent=2))
    quiet(run_hook(bus.log_dir, "gemini", g.payload("AfterAgent"), endpoints=ends))
    wait_for(lambda: len(bus_messages(bus.log_dir)) >= 2, what="two messages")
    records[1] = json.loads(versions[1])
    path.write_text(json.dumps({**head, "messages": records}, indent=2))
    quiet(run_hook(bus.log_dir, "gemini", g.payload("BeforeAgent"), endpoints=ends))
    wait_for(lambda: len(bus_messages(bus.log_dir)) >= 3, what="the reply's later version")
    head["lastUpdated"] = "2025-10-21T20:09:00.000Z"  # rewritten, no message changed
    path.write_text(json.dumps({**head, "messages": records}, indent=2))
    quiet(run_hook(bus.log_dir, "gemini", g.payload("AfterAgent"), endpoints=ends))
    time.sleep(0.5)
    messages = bus_messages(bus.log_dir)
    assert [m["uuid"] for m in messages] == [u1, m1, m1]
    assert [m.get("revises") for m in messages] == [None, None, m1]
    assert "a.py b.py" in messages[2]["text"] and messages[2]["tool_calls"]


def test_session_start_starts_the_recorder_and_end_stops_it(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    ends = (f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}")
    c = ClaudeSession(transcript=str(tmp_path / "session.jsonl"))
    try:
        t0 = time.monotonic()
        quiet(run_hook(log_dir, "claude", c.payload("SessionStart"), endpoints=ends))
        took = time.monotonic() - t0
        status = read_status(log_dir)
        assert status.get("state") == "recording" and status.get("embedded_broker") == ends[0]
        owner = json.loads((log_dir / "agents" / "owner.json").read_text())
        assert owner["recorder_pid"] == status["pid"]
        (registration,) = (log_dir / "agents").glob("*.agent.json")
        assert json.loads(registration.read_text())["pid"] == os.getpid()  # the agent: us
        labels = [
            json.loads(p.read_text())["label"] for p in (log_dir / "checkpoints").glob("*.json")
        ]
        assert f"claude {c.session[:8]} started" in labels
        wait_for(lambda: bus_messages(log_dir), what="the session-started message")
        assert bus_messages(log_dir)[0]["type"] == "session.started"
        assert took < 30

        append(Path(c.transcript), c.user("hello") + c.assistant("hi"))
        quiet(run_hook(log_dir, "claude", c.payload("SessionEnd"), endpoints=ends))
        assert not list((log_dir / "agents").glob("*.agent.json"))
        assert read_status(log_dir).get("state") == "stopped"
        texts = [m.get("type") or m.get("text") for m in bus_messages(log_dir)]
        assert texts == ["session.started", "agent.message", "agent.message", "session.ended"]
        labels = [
            json.loads(p.read_text())["label"] for p in (log_dir / "checkpoints").glob("*.json")
        ]
        assert f"claude {c.session[:8]} ended" in labels
        assert not failures(log_dir)
    finally:
        pid = read_status(log_dir).get("pid")
        if isinstance(pid, int) and read_status(log_dir).get("state") != "stopped":
            os.kill(pid, 9)


def test_precompact_leaves_a_checkpoint_with_a_verified_transcript_copy(
    bus: Bus, tmp_path: Path
) -> None:
    bus.start_broker()
    bus.start_recorder()
    ends = (bus.front, bus.back)
    c = ClaudeSession(transcript=str(tmp_path / "session.jsonl"))
    path = Path(c.transcript)
    append(path, c.user("a long conversation") + c.assistant("with detail"))
    before = path.read_bytes()
    quiet(
        run_hook(bus.log_dir, "claude", c.payload("PreCompact", trigger="manual"), endpoints=ends)
    )
    (note,) = (bus.log_dir / "hooks" / "compactions").glob("*.json")
    copy = json.loads(note.read_text())
    cps = {json.loads(p.read_text())["id"]: p for p in (bus.log_dir / "checkpoints").glob("*.json")}
    assert copy["checkpoint"] in cps and copy["copy_verified"] is True
    assert json.loads(cps[copy["checkpoint"]].read_text())["label"].endswith("before compaction")
    from recorder.sources.copies import read_copy, verify

    assert verify(Path(copy["copy"])) == []
    assert read_copy(Path(copy["copy"])) == before  # the transcript as it was
    messages = bus_messages(bus.log_dir)
    assert [m.get("text") for m in messages[:2]] == ["a long conversation", "with detail"]
    assert messages[2]["type"] == "session.compacting" and messages[2]["copy"] == copy["copy"]


def test_restore_offers_the_latest_checkpoint_as_context(
    bus: Bus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bus.start_broker()
    bus.start_recorder()
    ends = (bus.front, bus.back)
    first = ClaudeSession(transcript=str(tmp_path / "first.jsonl"))
    append(Path(first.transcript), first.user("remember the plan") + first.assistant("noted"))
    quiet(run_hook(bus.log_dir, "claude", first.payload("SessionEnd"), endpoints=ends))
    cp_label = f"claude {first.session[:8]} ended"

    second = ClaudeSession(transcript=str(tmp_path / "second.jsonl"))
    out = run_hook(
        bus.log_dir, "claude", second.payload("SessionStart"), "--restore=latest", endpoints=ends
    )
    assert out.returncode == 0 and out.stderr == b""
    answer = json.loads(out.stdout)
    context = answer["hookSpecificOutput"]["additionalContext"]
    assert answer["hookSpecificOutput"]["hookEventName"] == "SessionStart"
    assert cp_label in context and "Integrity: verified" in context
    transcript = Path(context.split("readable: ", 1)[1].splitlines()[0])
    assert "remember the plan" in transcript.read_text()
    # the agent's registration names the bundle it was handed: while it runs (this
    # process is the hook's agent), no restore removes it, though no longer the newest
    from recorder.cli.main import main
    from recorder.export.restore import build_bundle
    from recorder.launch.registry import live_agents
    from recorder.store.layout import Layout

    mine = [a for a in live_agents(Layout(bus.log_dir)) if a["pid"] == os.getpid()]
    assert [a["bundle"] for a in mine] == [transcript.parent.name]
    newer = build_bundle(bus.log_dir, "latest", durable=False)  # of "... started", later
    assert newer.dir != transcript.parent
    capsys.readouterr()
    assert main(["restore", "--clean", "--older-than", "0", "--log-dir", str(bus.log_dir)]) == 0
    assert capsys.readouterr().out.startswith("no restore bundle to remove")
    assert transcript.is_file()

    # $PERSIST_NO_TTY_POLICY overrides the installed policy; a resume never restores
    fresh = run_hook(
        bus.log_dir,
        "claude",
        second.payload("SessionStart"),
        "--restore=latest",
        endpoints=ends,
        env={"PERSIST_NO_TTY_POLICY": "fresh"},
    )
    quiet(fresh)
    resumed = second.payload("SessionStart", source="resume")
    quiet(run_hook(bus.log_dir, "claude", resumed, "--restore=latest", endpoints=ends))
    # registered again by those starts (the same agent): the bundle it was handed stays named
    mine = [a for a in live_agents(Layout(bus.log_dir)) if a["pid"] == os.getpid()]
    assert [a["bundle"] for a in mine] == [transcript.parent.name]


def test_a_launched_start_checks_the_bundle_it_is_handed_as_restore_does(
    bus: Bus, tmp_path: Path
) -> None:
    """The start hook of an agent `persist launch` started loads the bundle from
    PERSIST_RESTORE_DIR: one whose manifest was edited since it was written (its
    manifest_sha256 no longer matches), or whose files no longer hash as it says, is
    not offered as verified, and the failure line says which (before, an edited
    manifest saying "verified" was offered as verified)."""
    from recorder.export.restore import build_bundle
    from recorder.hooks.lifecycle import agent_process
    from recorder.launch.launcher import LAUNCHER_PID_ENV

    bus.start_broker()
    bus.start_recorder()
    ends = (bus.front, bus.back)
    first = ClaudeSession(transcript=str(tmp_path / "first.jsonl"))
    append(Path(first.transcript), first.user("remember the plan") + first.assistant("noted"))
    quiet(run_hook(bus.log_dir, "claude", first.payload("SessionEnd"), endpoints=ends))
    bundle = build_bundle(bus.log_dir, "latest", durable=False)  # as the launcher does
    env = {  # what `persist launch` gives the agent (this process: the hook's agent)
        "PERSIST_CHOICE": "checkpoint",
        "PERSIST_LOG_DIR": str(bus.log_dir),
        "PERSIST_RESTORE_DIR": str(bundle.dir),
        LAUNCHER_PID_ENV: str(agent_process(os.getppid())),
    }

    def offered() -> str:
        session = ClaudeSession(transcript=str(tmp_path / "second.jsonl"))
        out = run_hook(
            bus.log_dir, "claude", session.payload("SessionStart"), endpoints=ends, env=env
        )
        assert out.returncode == 0 and out.stderr == b"", out
        return str(json.loads(out.stdout)["hookSpecificOutput"]["additionalContext"])

    assert "Integrity: verified" in offered() and not failures(bus.log_dir)

    edited = orjson.loads(bundle.manifest_path.read_bytes())
    edited["messages"] = 999999
    bundle.manifest_path.write_bytes(orjson.dumps(edited))
    context = offered()
    assert "Integrity: NOT verified (its manifest was changed since it was written" in context
    (line,) = [f["error"] for f in failures(bus.log_dir)]
    assert str(bundle.manifest_path) in line and "manifest_sha256 does not match" in line
    assert "not offered as verified" in line

    edited["messages"] = bundle.manifest["messages"]
    bundle.manifest_path.write_bytes(orjson.dumps(edited))  # as written again
    with bundle.transcript.open("a") as f:
        f.write("a line an agent added\n")
    context = offered()
    assert "Integrity: NOT verified (its files do not match its manifest" in context
    line = failures(bus.log_dir)[-1]["error"]
    assert str(bundle.transcript) in line and "not offered as verified" in line

    del edited["manifest_sha256"]  # as if written before the field: it cannot be checked
    bundle.manifest_path.write_bytes(orjson.dumps(edited))
    assert "Integrity: NOT verified (its manifest was written before" in offered()


def test_turns_wait_while_no_recorder_listens_and_nothing_is_lost(bus: Bus, tmp_path: Path) -> None:
    bus.start_broker()  # a broker, no recorder yet
    ends = (bus.front, bus.back)
    c = ClaudeSession(transcript=str(tmp_path / "session.jsonl"))
    append(Path(c.transcript), c.user("first") + c.assistant("second"))
    quiet(run_hook(bus.log_dir, "claude", c.payload("Stop"), endpoints=ends))
    (failure,) = failures(bus.log_dir)
    assert "no subscriber" in failure["error"] and failure["event"] == "Stop"
    bus.start_recorder()
    append(Path(c.transcript), c.user("third"))
    quiet(run_hook(bus.log_dir, "claude", c.payload("Stop"), endpoints=ends))
    wait_for(lambda: len(bus_messages(bus.log_dir)) >= 3, what="three messages")
    assert [m["text"] for m in bus_messages(bus.log_dir)] == ["first", "second", "third"]
    assert [m["_persist"]["seq"] for m in bus_messages(bus.log_dir)] == [1, 2, 3]


def test_a_broken_log_folder_exits_0_quickly_and_shows_in_status(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {"XDG_STATE_HOME": str(state)}
    c = ClaudeSession(transcript=str(tmp_path / "session.jsonl"))
    append(Path(c.transcript), c.user("hello"))
    # a log folder that is a file, and one whose hooks/ is a file
    as_file = tmp_path / "not-a-folder"
    as_file.write_text("a file where the log folder should be")
    blocked = tmp_path / "logs"
    blocked.mkdir()
    (blocked / "hooks").write_text("in the way")
    for log_dir in (as_file, blocked):
        for event in ("SessionStart", "Stop", "PreCompact", "SessionEnd"):
            t0 = time.monotonic()
            quiet(run_hook(log_dir, "claude", c.payload(event), env=env))
            assert time.monotonic() - t0 < 10, event
    garbage = subprocess.run(
        [
            *(sys.executable, "-m", "recorder.cli", "hook", "Stop"),
            *("--agent", "claude"),
            "--log-dir",
            str(blocked),
        ],
        input=b"{not json",
        capture_output=True,
        timeout=60,
        env={**os.environ, **env},
    )
    quiet(garbage)
    fallback = state / "agent-persist" / "hook-failures.jsonl"
    logged = [json.loads(x) for x in fallback.read_text().splitlines()]
    for log_dir in (as_file, blocked):
        events = {e["event"] for e in logged if e["log_dir"] == str(log_dir)}
        assert events >= {"SessionStart", "Stop", "PreCompact", "SessionEnd"}, events
    status = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "status", "--log-dir", str(blocked)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert "hook failures" in status.stdout, status.stdout + status.stderr
    assert "not a JSON object" in status.stdout or "JSONDecodeError" in status.stdout
    assert str(fallback) in status.stdout


def test_subagent_stop_publishes_the_sub_agents_own_transcript(bus: Bus, tmp_path: Path) -> None:
    bus.start_broker()
    bus.start_recorder()
    ends = (bus.front, bus.back)
    c = ClaudeSession(transcript=str(tmp_path / "main.jsonl"))
    append(Path(c.transcript), c.user("delegate the search"))
    sub = ClaudeSession(session=c.session, transcript=str(tmp_path / "agent-a1b2c3d4.jsonl"))
    append(Path(sub.transcript), sub.user("find the parser") + sub.assistant("in src/parse.py"))
    payload = c.payload(
        "SubagentStop",
        agent_id="a1b2c3d4",
        agent_type="Explore",
        agent_transcript_path=sub.transcript,
    )
    quiet(run_hook(bus.log_dir, "claude", payload, endpoints=ends))
    quiet(run_hook(bus.log_dir, "claude", payload, endpoints=ends))  # nothing new
    wait_for(lambda: len(bus_messages(bus.log_dir)) >= 3, what="three messages")
    time.sleep(0.5)
    by_topic: dict[str, list[str]] = {}
    for r in journal_records(bus.log_dir):
        if r["kind"] == "msg" and str(r.get("topic", "")).startswith("agents.claude."):
            by_topic.setdefault(r["topic"], []).append(r["frames"][-1]["json"]["text"])
    assert by_topic == {
        f"agents.claude.{c.session}": ["delegate the search"],
        f"agents.claude.{c.session}.a1b2c3d4": ["find the parser", "in src/parse.py"],
    }


def test_a_hook_publishes_an_agents_big_integers_as_written(bus: Bus, tmp_path: Path) -> None:
    """A tool call's arguments holding integers beyond 64 bits reach the journal as the
    agent wrote them. Before, the transcript was read with orjson (which reads them as
    floats) and the message written again: 123456789012345678901234567890 was
    published as 1.2345678901234568e+29."""
    bus.start_broker()
    bus.start_recorder()
    ends = (bus.front, bus.back)
    c = ClaudeSession(transcript=str(tmp_path / "session.jsonl"))
    path = Path(c.transcript)
    quiet(run_hook(bus.log_dir, "claude", c.payload("SessionStart"), endpoints=ends))
    append(path, c.user("look these up"))
    reply = c.assistant("Looking.", ("Lookup", {"ids": [7, 8], "big": 9}))
    big = b"123456789012345678901234567890"
    reply = [
        r.replace(b'"big":9', b'"big":' + big + b',"neg":-18446744073709551617') for r in reply
    ]
    assert big in reply[1]
    append(path, reply)
    quiet(run_hook(bus.log_dir, "claude", c.payload("Stop"), endpoints=ends))

    def payloads() -> list[bytes]:
        from recorder.store.reader import open_store

        with open_store(bus.log_dir) as store:
            return [r.frames[-1] for r in store.records() if r.topic.startswith("agents.claude")]

    wait_for(lambda: len(payloads()) >= 3, what="three messages")
    sent = payloads()[-1]
    assert b'"big":' + big + b',"neg":-18446744073709551617' in sent, sent
    message = json.loads(sent)
    assert message["tool_calls"][0]["arguments"] == {
        "ids": [7, 8],
        "big": 123456789012345678901234567890,
        "neg": -18446744073709551617,
    }
    assert not failures(bus.log_dir)
    assert not [r for r in journal_records(bus.log_dir) if r["kind"] == "gap"]
