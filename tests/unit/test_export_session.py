"""`recorder.export.session`: which messages, the header, and the journal export's
writers and redaction defaults applied to a session read in-process."""

from __future__ import annotations

import io
import random
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from recorder.export.session import (
    export_session,
    messages_up_to,
    session_facts,
    which_messages,
)
from recorder.export.writers import ExportError
from recorder.sources import claude
from recorder.sources.fork import ForkError
from recorder.sources.journal_view import to_record
from recorder.sources.model import Transcript
from recorder.store import secrets
from tests.secret_samples import make
from tests.session_fixtures import ClaudeSession, text, thinking

SECRET = make(secrets.GITHUB, random.Random(5)).secret


def transcript(tmp: Path) -> Transcript:
    s = ClaudeSession(tmp / "claude", cwd="/home/me/proj")
    s.user("hello")
    s.assistant(thinking("hmm"), text("hi"))
    s.user(f"token {SECRET}")
    s.assistant(text("thanks"))
    assert s.path is not None
    s.write()
    return claude.read_transcript(s.path)


def test_messages_up_to_and_what_the_header_says(tmp_path: Path) -> None:
    t = transcript(tmp_path)
    assert messages_up_to(t, None) == t.messages and len(t.messages) == 4
    shown = messages_up_to(t, "1")
    assert [m.text for m in shown] == ["hello", "hi"]
    assert messages_up_to(t, t.messages[2].uuid[:12]) == t.messages[:3]
    assert which_messages(t.messages, 4) == "the whole session"
    assert which_messages(shown, 4) == "messages 0 to 1 of 4"
    facts = dict(session_facts(t.session, shown, 4, from_copy=False))
    assert facts == {
        "Source": "Claude Code",
        "Session": t.session.id,
        "Project": "/home/me/proj",
        "Messages": "2 (messages 0 to 1 of 4)",
        "First message": "2026-01-10T12:00:01.500Z",
        "Last message": "2026-01-10T12:00:03.000Z",
        "Read from": str(t.session.path),
    }
    undated = [replace(m, ts=None) for m in shown]
    facts = dict(session_facts(t.session, undated, 4, from_copy=True))
    assert "First message" not in facts and "Last message" not in facts
    assert facts["Read from"] == "our protected copy (the agent deleted the session)"
    with pytest.raises(ForkError, match="has no message 4 "):  # a number, never a uuid prefix
        messages_up_to(t, "4")
    empty = Transcript(t.session, [])
    assert messages_up_to(empty, None) == []
    with pytest.raises(ForkError, match="holds no messages"):
        messages_up_to(empty, "0")


def test_the_header_counts_the_agents_notes_apart(tmp_path: Path) -> None:
    """A compaction is a message of the export (numbered, as `--at` counts) that a
    session's message count leaves out: the header says how the two differ."""
    s = ClaudeSession(tmp_path / "claude", cwd="/home/me/proj")
    s.user("hello")
    s.assistant(text("hi"))
    s.compact()
    s.user("go on")
    s.write()
    assert s.path is not None
    t = claude.read_transcript(s.path)
    total = len(t.messages)
    assert total == t.session.message_count + 1
    whole = dict(session_facts(t.session, t.messages, total, from_copy=False))
    assert whole["Messages"] == (
        f"{total} (the whole session: {total - 1} of conversation, 1 system note)"
    )
    first = dict(session_facts(t.session, t.messages[:2], total, from_copy=False))
    assert first["Messages"] == f"2 (messages 0 to 1 of {total})"


@pytest.mark.parametrize("fmt", ["md", "html", "csv"])
def test_readable_formats_redact_by_default(tmp_path: Path, fmt: str) -> None:
    t = transcript(tmp_path)
    out = io.BytesIO()
    stats = export_session(t, t.messages, fmt, out)
    doc = out.getvalue().decode()
    assert stats.messages == 4 and stats.bytes == len(out.getvalue())
    assert SECRET not in doc and "REDACTED:github-token" in doc
    out = io.BytesIO()
    export_session(t, t.messages, fmt, out, redact=False)
    assert SECRET in out.getvalue().decode()


def test_jsonl_is_the_journal_shaped_records(tmp_path: Path) -> None:
    t = transcript(tmp_path)
    shown = messages_up_to(t, "2")
    out = io.BytesIO()
    stats = export_session(t, shown, "jsonl", out)
    assert out.getvalue() == b"".join(to_record(m, i).line for i, m in enumerate(shown))
    assert stats.messages == 3 and SECRET.encode() in out.getvalue()
    out = io.BytesIO()
    export_session(t, shown, "jsonl", out, redact=True)
    last = orjson.loads(out.getvalue().splitlines()[-1])
    assert SECRET.encode() not in out.getvalue() and last["meta"]["redacted"] == 1
    with pytest.raises(ExportError, match="unknown format 'pdf'"):
        export_session(t, shown, "pdf", io.BytesIO())
