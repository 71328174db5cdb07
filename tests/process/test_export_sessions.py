"""`persist export --session`: Claude Code, Gemini CLI and Codex sessions written at test
time, exported by the real CLI through the journal's writers."""

from __future__ import annotations

import csv
import io
import json
import random
import re
from pathlib import Path

import pytest

from recorder.store import secrets
from tests.process.test_sessions_cli import persist
from tests.secret_samples import make
from tests.session_fixtures import (
    ClaudeSession,
    codex_rollout,
    gemini_legacy,
    gemini_messages,
    gemini_project,
    new_uuid,
    text,
    thinking,
    tool_use,
)

pytestmark = pytest.mark.timeout(120)

SECRET = make(secrets.GITHUB, random.Random(11)).secret
REDACTED = f"[REDACTED:{secrets.GITHUB}]"
CLAUDE_ID = new_uuid(1)
GEMINI_ID = new_uuid(2)
CODEX_ID = "019a085e-0000-7000-8000-00000000abcd"
# (sender, text) of every message of the Claude session, in order
CLAUDE = [
    ("user", "first question <b>bold</b> & more"),
    ("assistant", "first answer"),
    ("tool", "written"),
    ("user", f"please use {SECRET}"),
    ("assistant", "=1+1 is two"),
]


def write_claude(tmp: Path) -> ClaudeSession:
    s = ClaudeSession(tmp / "claude", cwd="/home/me/proj", session_id=CLAUDE_ID)
    s.user(CLAUDE[0][1])
    s.assistant(
        thinking("weighing the options"),
        text("first answer"),
        tool_use("Write", {"file_path": "/p/a.py", "content": "x"}, "w1"),
    )
    s.tool_result("w1", "written")
    s.user(CLAUDE[3][1])
    s.assistant(text(CLAUDE[4][1]))
    s.write()
    return s


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One session of each agent under temporary roots (only read by these tests)."""
    tmp = tmp_path_factory.mktemp("agents")
    write_claude(tmp)
    gemini_legacy(gemini_project(tmp / "gemini", "/home/me/gem"), GEMINI_ID, gemini_messages(2))
    codex_rollout(tmp / "codex", CODEX_ID, 2)
    return tmp


def in_order(doc: str, pieces: list[str]) -> bool:
    """Every piece is in `doc`, each after the one before."""
    at = 0
    for piece in pieces:
        at = doc.find(piece, at)
        if at < 0:
            return False
        at += len(piece)
    return True


def jsonl(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def said(rec: dict) -> tuple[str, str]:
    return rec["meta"]["sender"], rec["frames"][0]["json"]["text"]


def test_markdown_and_html_show_the_conversation_redacted(agents: Path) -> None:
    out = persist(agents, "export", "--session", CLAUDE_ID)
    assert out.returncode == 0, out.stderr
    md = out.stdout
    assert out.stderr == (
        f"persist: exported 5 messages (claude:{CLAUDE_ID}, the whole session) as md to stdout\n"
    )
    assert md.startswith("# first question &lt;b&gt;bold&lt;/b&gt; &amp; more\n")
    assert in_order(
        md,
        [
            "- **Source**: Claude Code",
            f"- **Session**: {CLAUDE_ID}",
            "- **Project**: /home/me/proj",
            "- **Messages**: 5 (the whole session)",
            "- **First message**: 2026-01-10T12:00:01.500Z",
            "- **Last message**: 2026-01-10T12:00:",
            "- **Read from**: ",
        ],
    )
    assert re.findall(r"^\*\*(\w+)\*\* · ", md, re.M) == [who for who, _ in CLAUDE]
    texts = [
        "> first question &lt;b&gt;bold&lt;/b&gt; &amp; more",
        "> first answer",
        '"thinking": "weighing the options"',  # in the message's body, below its text
        "> written",
        f"> please use {REDACTED[:-1]}&#93;",  # Markdown shows ] as an entity
        "> =1+1 is two",
    ]
    assert in_order(md, texts)
    assert SECRET not in md and "<b>" not in md

    out = persist(agents, "export", "--session", f"claude:{CLAUDE_ID[:30]}", "--format", "html")
    assert out.returncode == 0, out.stderr
    page = out.stdout
    assert re.findall(r'<span class="sender">(\w+)</span>', page) == [w for w, _ in CLAUDE]
    assert in_order(
        page,
        [
            "<title>first question &lt;b&gt;bold&lt;/b&gt; &amp; more</title>",
            "<dt>Source</dt><dd>Claude Code</dd>",
            '<div class="text">first question &lt;b&gt;bold&lt;/b&gt; &amp; more</div>',
            "&quot;thinking&quot;: &quot;weighing the options&quot;",
            f'<div class="text">please use {REDACTED}</div>',
        ],
    )
    assert SECRET not in page and "<b>" not in page


def test_jsonl_keeps_the_secret_and_csv_redacts_it(agents: Path) -> None:
    target = agents / "out" / "session.jsonl"
    target.parent.mkdir(exist_ok=True)
    out = persist(agents, "export", "--session", CLAUDE_ID, "--format", "jsonl", "-o", str(target))
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr.endswith(f"as jsonl to {target}\n")
    assert target.stat().st_mode & 0o777 == 0o600
    recs = jsonl(target.read_text())
    assert [said(r) for r in recs] == CLAUDE  # the secret kept: jsonl is not redacted
    assert [r["seq"] for r in recs] == [0, 1, 2, 3, 4]
    assert {r["topic"] for r in recs} == {f"claude:{CLAUDE_ID}"}
    assert recs[1]["meta"]["thinking"] is True
    assert recs[1]["frames"][0]["json"]["thinking"] == "weighing the options"
    assert recs[1]["frames"][0]["json"]["tool_calls"][0]["name"] == "Write"

    out = persist(agents, "export", "--session", CLAUDE_ID, "--format", "csv")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout, newline="")))
    assert [(r["sender"], r["text"]) for r in rows] == [
        ("user", CLAUDE[0][1]),
        ("assistant", "first answer"),
        ("tool", "written"),
        ("user", f"please use {REDACTED}"),
        ("assistant", "'=1+1 is two"),  # a spreadsheet must not run it
    ]
    assert SECRET not in out.stdout
    assert json.loads(rows[1]["payload"])["thinking"] == "weighing the options"


def test_gemini_and_codex_sessions(agents: Path) -> None:
    out = persist(agents, "export", "--session", f"gemini:{GEMINI_ID}")
    assert out.returncode == 0, out.stderr
    md = out.stdout
    assert "- **Source**: Gemini CLI" in md and "- **Project**: /home/me/gem" in md
    assert re.findall(r"^\*\*(\w+)\*\* · ", md, re.M) == ["user", "assistant"] * 2
    assert in_order(
        md,
        ["> question 0", "> answer 0", '"thinking": "Thinking: about 0"', "> question 1"],
    )

    out = persist(agents, "export", "--session", CODEX_ID[:8], "--format", "jsonl")
    assert out.returncode == 0, out.stderr
    recs = jsonl(out.stdout)
    assert [said(r) for r in recs if said(r)[1]] == [  # the tool-calling turns have no text
        ("user", "<environment_context>\n  <cwd>x</cwd>\n</environment_context>"),
        ("user", "task 0"),
        ("tool", "Success"),
        ("assistant", "done 0"),
        ("user", "task 1"),
        ("tool", "Success"),
        ("assistant", "done 1"),
    ]
    reasoning = [r["frames"][0]["json"] for r in recs if r["meta"].get("thinking")]
    assert [(p["thinking"], p["tool_calls"][0]["name"]) for p in reasoning] == [
        ("plan 0", "apply_patch"),
        ("plan 1", "apply_patch"),
    ]
    assert out.stderr.startswith(f"persist: exported 9 messages (codex:{CODEX_ID}, ")


def test_at_stops_at_a_message(agents: Path) -> None:
    out = persist(agents, "export", "--session", CLAUDE_ID, "--at", "3", "--no-redact")
    assert out.returncode == 0, out.stderr
    assert "- **Messages**: 4 (messages 0 to 3 of 5)" in out.stdout
    assert f"> please use {SECRET}" in out.stdout  # --no-redact
    assert "=1+1" not in out.stdout
    assert out.stderr == (
        f"persist: exported 4 messages (claude:{CLAUDE_ID}, messages 0 to 3 of 5) as md to stdout\n"
    )
    first = jsonl(persist(agents, "export", "--session", CLAUDE_ID, "--format", "jsonl").stdout)
    uuid = first[1]["meta"]["uuid"]
    out = persist(agents, "export", "--session", CLAUDE_ID, "--at", uuid[:13], "--format", "jsonl")
    assert out.returncode == 0, out.stderr
    assert [said(r) for r in jsonl(out.stdout)] == CLAUDE[:2]
    # past the end: a number is a message number, never a uuid prefix
    target = agents / "past-the-end.md"
    out = persist(agents, "export", "--session", CLAUDE_ID, "--at", "5", "-o", str(target))
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr == (f"persist: claude:{CLAUDE_ID} has no message 5 (its messages are 0..4)\n")
    assert not target.exists()


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--session", "nope"], 1, "no session 'nope' (see `persist sessions`)"),
        (["--session", "00000000"], 1, "'00000000' matches 2 sessions: "),
        (["latest", "--session", CODEX_ID], 2, "--session exports an agent session: no "),
        (["--all", "--session", CODEX_ID], 2, "--session exports an agent session: no "),
        (["--from", "a", "--session", CODEX_ID], 2, "--session exports an agent session: no "),
        (["--all", "--at", "3"], 2, "--at goes with --session"),
    ],
)
def test_bad_arguments_are_one_line(agents: Path, args: list[str], code: int, says: str) -> None:
    out = persist(agents, "export", *args)
    assert out.returncode == code
    assert out.stderr.startswith(f"persist: {says}") and out.stderr.count("\n") == 1
    assert out.stdout == ""


def test_a_session_the_agent_deleted_exports_from_our_copy(tmp_path: Path) -> None:
    s = write_claude(tmp_path)
    assert s.path is not None
    assert persist(tmp_path, "protect", CLAUDE_ID).returncode == 0
    s.path.unlink()
    out = persist(tmp_path, "export", "--session", CLAUDE_ID, "--format", "jsonl")
    assert out.returncode == 0, out.stderr
    assert [said(r) for r in jsonl(out.stdout)] == CLAUDE
    out = persist(tmp_path, "export", "--session", CLAUDE_ID, "--at", "1")
    assert out.returncode == 0, out.stderr
    assert "- **Read from**: our protected copy (the agent deleted the session)" in out.stdout
    assert in_order(out.stdout, ["> first question", "> first answer", "weighing the options"])
    assert not s.path.exists()  # exporting never writes into the agent's folder


def test_a_secret_in_the_first_prompt_is_redacted_in_the_title_too(tmp_path: Path) -> None:
    """The title of a Markdown export is the session's title, often its first prompt:
    redacted as the messages are. A title made of a prompt is redacted where it is made
    (a key cut by its 200 characters would be left half), so `--no-redact` keeps the
    messages' keys and not the title's."""
    s = ClaudeSession(tmp_path / "claude", cwd="/home/me/proj", session_id=new_uuid(7))
    s.user(f"deploy with {SECRET}")
    s.assistant(text("deployed"))
    s.write()
    out = persist(tmp_path, "export", "--session", s.session_id)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"# deploy with {REDACTED[:-1]}&#93;\n")
    assert SECRET not in out.stdout
    raw = persist(tmp_path, "export", "--session", s.session_id, "--no-redact")
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout.startswith(f"# deploy with {REDACTED[:-1]}&#93;\n")
    assert f"> deploy with {SECRET}" in raw.stdout  # the message as it was said


def test_a_text_cut_at_the_readers_limit_is_said_on_stderr(tmp_path: Path) -> None:
    """A message's text over 1,048,576 characters is exported cut (with a line saying
    how much is missing); stderr says how many messages were cut, and nothing when
    none was."""
    s = ClaudeSession(tmp_path / "claude", cwd="/home/me/big")
    s.user("x" * (1 << 20) + "y" * 10)  # over by ten characters
    s.assistant(text("a short answer"))
    s.user("again")
    s.assistant(text("z" * ((1 << 20) + 5)))
    s.write()
    out = persist(tmp_path, "export", "--session", s.session_id, "-o", str(tmp_path / "s.md"))
    assert out.returncode == 0, out.stderr
    exported = (tmp_path / "s.md").read_text()
    assert "[… 10 more characters not kept here" in exported
    warnings = [line for line in out.stderr.splitlines() if "cut at" in line]
    assert warnings == [
        "persist: warning: 2 message(s) exported with a text cut at 1,048,576 characters "
        "(each says where and how much); the agent's own file holds them whole"
    ]
    out = persist(
        tmp_path, "export", "--session", s.session_id, "--at", "0", "-o", str(tmp_path / "t.md")
    )
    assert out.returncode == 0 and out.stderr.count("cut at") == 1, out.stderr
    small = ClaudeSession(tmp_path / "claude", cwd="/home/me/small")
    small.user("short")
    small.write()
    out = persist(tmp_path, "export", "--session", small.session_id, "-o", str(tmp_path / "u.md"))
    assert out.returncode == 0 and "cut at" not in out.stderr, out.stderr
