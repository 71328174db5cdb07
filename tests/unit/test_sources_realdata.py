"""Every real session file in /work/shared/realdata reads correctly (skipped when the
folder is absent, as in a user's clone). The expected facts were checked by hand: the
message counts against an independent count (user lines + distinct assistant
message ids off the sidechains, minus lines of abandoned branches)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from recorder.export.render import record_text, view
from recorder.sources import claude, codex, gemini
from recorder.sources.discover import Roots, scan
from recorder.sources.journal_view import to_records
from recorder.sources.jsonl import parse_time
from recorder.sources.model import Sender, Source

REAL = Path(os.environ.get("PERSIST_REALDATA", "/work/shared/realdata"))
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} is absent")
C = REAL / "claude"
MOREDIP = C / "moredip-session-share_project"

# file -> (messages on the active chain (user/assistant/tool), sidechain messages,
#          branches, title kind, title start, git branch, unreadable lines)
CLAUDE = {
    "moredip-session-share_project/0ccf1a04-1b4c-43b6-8aa5-79e41db43a68.jsonl": (
        33,
        20,
        2,
        "summary",
        "Spawn curry poem agents, write sushi",
        "",
        0,
    ),
    "moredip-session-share_project/4b2030ed-5563-49ea-b703-6a002f2d3cc8.jsonl": (
        4,
        4,
        1,
        "first-prompt",
        "spawn a subagent to perform a websearch",
        "main",
        0,
    ),
    "v1.0.108_claude-code-viewer_5c0375b4_inline-sidechains.jsonl": (
        25,
        20,
        1,
        "first-prompt",
        "/orchestrator",
        "main",
        0,
    ),
    "v1.0.98_claude-code-viewer_fe5e1c67_inline-sidechains.jsonl": (
        23,
        322,
        1,
        "first-prompt",
        "Thanks! Please update CLAUDE.md",
        "",
        0,
    ),
    "v2.0.24_yoavf-ai-sessions_pomodoro.jsonl": (
        83,
        0,
        1,
        "first-prompt",
        "Build a simple Pomodoro timer web app",
        "",
        0,
    ),
    "v2.0.60_m-claude_97b0ffde_compact-boundary_windows-cwd.jsonl": (
        131,
        0,
        1,
        "first-prompt",
        "ssh into my router",
        "",
        0,
    ),
    "v2.0.72_m-claude_abc757d1_image-queueop.jsonl": (
        190,
        0,
        1,
        "first-prompt",
        "review, proposal improvemets",
        "unruffled-mcclintock",
        0,
    ),
    "v2.1.1_m-claude_f225835b.jsonl": (
        58,
        0,
        1,
        "first-prompt",
        "when running gitleaks scan",
        "claude/redact-gitleaks-secrets-b4NWV",
        0,
    ),
    "v2.1.3_m-claude_0a8fc187_api-errors-foreign-summary.jsonl": (
        3,
        0,
        1,
        "first-prompt",
        "fix this: 0 [main] bash (31320)",
        "",
        0,
    ),
    "v2.1.5_m-claude_3af9b1a7_compact-boundary_BROKEN-LINES.jsonl": (
        277,
        0,
        1,
        "first-prompt",
        "sync you repo (M-Claude)",
        "",
        35,
    ),
    "v2.1.6_m-claude_343e3472_208-foreign-summaries.jsonl": (
        55,
        0,
        1,
        "first-prompt",
        "change my display-off timeout",
        "",
        0,
    ),
    "v2.1.9_m-claude_b8d44276_progress.jsonl": (
        14,
        0,
        1,
        "first-prompt",
        "Update available! Run: brew upgrade",
        "",
        1,
    ),
}


@pytest.mark.parametrize("name", sorted(CLAUDE))
def test_claude_real_file(name: str) -> None:
    count, side, branches, kind, title, branch, bad = CLAUDE[name]
    flat = sorted(C.glob("agent-*.jsonl")) if "/" not in name else []
    t = claude.read_transcript(C / name, flat_agents=flat)
    s = t.session
    assert s.message_count == count
    assert len(t.sidechain) == side
    assert s.branches == branches
    assert (s.title_kind, s.title[: len(title)]) == (kind, title)
    assert s.git_branch == branch
    assert len(t.report.bad_lines) == bad
    assert s.id[:8] in name or "pomodoro" in name  # the lines' sessionId, not the file name
    # the chain is consistent: each message's uuid is a line of the file, seqs run 0..n
    assert [m.seq for m in t.messages] == list(range(len(t.messages)))
    assert all(m.session_id == s.id for m in t.messages)
    # every message renders through the journal's own renderer
    for rec in to_records(t.messages):
        v = view(rec)
        assert v.topic == f"claude:{s.id}" and v.sender in ("user", "assistant", "tool", "system")
        record_text(rec)


def test_claude_real_details() -> None:
    # streamed blocks merged: 0ccf1a04 line 75 (thinking) and 76 (text) share a message.id
    t = claude.read_transcript(MOREDIP / "0ccf1a04-1b4c-43b6-8aa5-79e41db43a68.jsonl")
    merged = [m for m in t.messages if m.text.startswith("You're right to question that")]
    assert len(merged) == 1 and merged[0].has_thinking
    # five Task calls (the five sub-agent files), every one with its result on the chain,
    # including those whose results hang off sibling assistant lines (parallel calls)
    tasks = [c for m in t.messages for c in m.tool_calls if c.name == "Task"]
    assert len(tasks) == 5
    answered = {
        b["tool_use_id"]
        for e in t.raw_chain
        if e["type"] == "user" and isinstance(e["message"]["content"], list)
        for b in e["message"]["content"]
        if b.get("type") == "tool_result"
    }
    assert {c.id for m in t.messages for c in m.tool_calls} <= answered
    # the queued prompt abandoned by the interrupt is a branch, not on the chain
    assert not any(m.text == "are they still being written?" for m in t.messages)
    assert len(t.session.extra_paths) == 5  # the five sub-agent files (>= 2.1.2 layout)
    # Windows cwd, compaction boundary kept and marked
    t = claude.read_transcript(C / "v2.0.60_m-claude_97b0ffde_compact-boundary_windows-cwd.jsonl")
    assert t.session.project_path.startswith("C:\\Users\\")
    notes = [m.note for m in t.messages]
    assert notes.count("compact-boundary") == 1 and notes.count("compact-summary") == 1
    assert notes.index("compact-boundary") + 1 == notes.index("compact-summary")
    # the image is a placeholder, never its base64
    t = claude.read_transcript(C / "v2.0.72_m-claude_abc757d1_image-queueop.jsonl")
    images = [m for m in t.messages if "[image: image/" in m.text]
    assert images and all(len(m.text) < 20000 for m in images)
    # a summary in another file never titles this one
    t = claude.read_transcript(C / "v2.1.6_m-claude_343e3472_208-foreign-summaries.jsonl")
    assert len(t.summaries) > 100 and t.session.title_kind == "first-prompt"


def test_gemini_real_files(tmp_path: Path) -> None:
    chats = tmp_path / "gem" / "tmp" / ("ab" * 32) / "chats"
    chats.mkdir(parents=True)
    for i, f in enumerate(sorted((REAL / "gemini").glob("*.json"))):
        (chats / f"session-2026-01-0{i + 1}T00-00-{f.stem[-8:]}.json").symlink_to(f)
    got = {t.session.id[:8]: t for t in map(gemini.read_transcript, sorted(chats.iterdir()))}
    facts = {  # id prefix -> (messages, title kind, title, resumable, files modified)
        "b36c9e17": (40, "first-prompt", "hello", True, 3),
        "29f3682e": (13, "summary", "Understand Gemini CLI TUI 'sandbox' section.", False, 0),
        "76d8ed24": (0, "", "", False, 0),
        "0b23371a": (19, "first-prompt", "Build a simple Pomodoro timer web app", True, 3),
    }
    for prefix, (count, kind, title, resumable, files) in facts.items():
        s = got[prefix].session
        assert (s.message_count, s.title_kind, s.resumable, len(s.files_modified)) == (
            count,
            kind,
            resumable,
            files,
        ), prefix
        assert s.title.startswith(title)
    warning = got["76d8ed24"].messages
    assert [(m.sender, m.note) for m in warning] == [(Sender.SYSTEM, "warning")]
    assert got["b36c9e17"].session.context_tokens > 0
    # Gemini CLI's listing takes two of them for no session: its cleanup deletes them
    # at its next start whatever their age (sessionUtils.ts getAllSessionFiles); the
    # same documents written as JSONL logs (v0.39 on) are read alike
    drops = {
        "b36c9e17": "",
        "29f3682e": 'a sub-agent\'s chat (kind "subagent"), never resumed',
        "76d8ed24": gemini.NOTHING_TO_RESUME,
        "0b23371a": "",
    }
    for prefix, drop in drops.items():
        s = got[prefix].session
        assert s.agent_drop == drop, prefix
        doc = json.loads(s.path.read_text())
        assert s.agent_time == parse_time(doc["lastUpdated"]), prefix
        log = chats / f"{s.path.stem}.jsonl"
        head = {k: v for k, v in doc.items() if k != "messages"}
        log.write_text("".join(json.dumps(x) + "\n" for x in [head, *doc["messages"]]))
        again = gemini.read_transcript(log).session
        assert (again.agent_drop, again.agent_time) == (drop, s.agent_time), prefix


def test_codex_real_file(tmp_path: Path) -> None:
    src = next((REAL / "codex").glob("*.jsonl"))
    day = tmp_path / "cx" / "sessions" / "2025" / "10" / "21"
    day.mkdir(parents=True)
    link = day / "rollout-2025-10-21T20-02-50-019a085e-04c1-7f81-a09e-9555f6a1fb40.jsonl"
    link.symlink_to(src)
    t = codex.read_transcript(link)
    s = t.session
    assert s.id == "019a085e-04c1-7f81-a09e-9555f6a1fb40"
    assert s.project_path == "/Users/yoavfarhi/dev/pomodoro/codex"
    users = [m for m in t.messages if m.sender is Sender.USER and not m.note]
    assert len(users) == 3  # 4 user response_items, one the injected environment_context
    assert sum(len(m.tool_calls) for m in t.messages) == 18  # 11 custom + 7 function calls
    assert s.files_modified[:3] == ("index.html", "styles.css", "script.js")
    assert s.model == "gpt-5-codex" and s.version == "0.47.0"
    assert s.title.startswith("Build a simple Pomodoro timer")


def test_scan_finds_every_real_session(tmp_path: Path) -> None:
    """Discovery over roots laid out as the agents do, with the real files linked in."""
    projects = tmp_path / "claude" / "projects"
    projects.mkdir(parents=True)
    (projects / "-Users-me-flat").symlink_to(C)
    (projects / "-Users-pete-share").symlink_to(MOREDIP)
    roots = Roots(tmp_path / "claude", tmp_path / "nothing", tmp_path / "nothing")
    result = scan(roots, tmp_path / "cache.json")
    ids = {s.id[:8] for s in result.sessions}
    # 12 main sessions; the sub-agent files of the >= 2.1.2 layout are part of theirs;
    # the 2.0.76 flat sub-agent file's session (18240050) is not among the files, so
    # that sub-agent's conversation is listed on its own, not resumable
    assert len(result.sessions) == 13 and "18240050" not in ids
    (orphan,) = [s for s in result.sessions if s.subagent]
    assert (orphan.id, orphan.parent_id[:8], orphan.resumable) == ("a00ad96", "18240050", False)
    assert orphan.message_count == 2 and orphan.title_kind == "first-prompt"
    assert all(s.source is Source.CLAUDE for s in result.sessions)
    again = scan(roots, tmp_path / "cache.json")
    assert again.read == 0 and again.cached == 13  # 13 files: 12 sessions + 1 sub-agent
    assert [s.title for s in again.sessions] == [s.title for s in result.sessions]


@pytest.mark.parametrize("name", sorted(CLAUDE))
def test_fork_every_real_claude_session_halfway(name: str, tmp_path: Path) -> None:
    """A fork at the middle message reads back as exactly that prefix (compaction
    boundaries, broken lines, parallel tool results and branches included)."""
    from recorder.sources.fork import fork

    t = claude.read_transcript(C / name)
    half = len(t.messages) // 2
    result = fork(t, str(half), target_dir=tmp_path)
    back = claude.read_transcript(result.path)
    assert back.session.id == result.new_id and not back.report.skipped
    assert [(m.sender, m.text) for m in back.messages] == [
        (m.sender, m.text) for m in t.messages[: half + 1]
    ]


@pytest.mark.parametrize("name", sorted(CLAUDE))
def test_listing_mode_gives_the_same_session(name: str) -> None:
    """The scan's listing mode (counts, no messages) agrees with the full read."""
    from recorder.sources.model import session_to_json

    flat = sorted(C.glob("agent-*.jsonl")) if "/" not in name else []
    full = claude.read_transcript(C / name, flat_agents=flat)
    quick = claude.read_transcript(C / name, flat_agents=flat, listing=True)
    assert session_to_json(quick.session) == session_to_json(full.session)


@pytest.mark.parametrize(
    "path",
    sorted((REAL / "gemini").glob("*.json")) + sorted((REAL / "codex").glob("*.jsonl")),
    ids=lambda p: p.name,
)
def test_gemini_and_codex_listing_mode_gives_the_same_session(path: Path) -> None:
    """Their listing mode (no tool output turned into text) agrees with the full read."""
    from recorder.sources.model import session_to_json

    if path.suffix == ".json":
        full, quick = (gemini.read_transcript(path, "/p", listing=x) for x in (False, True))
    else:
        full, quick = (codex.read_transcript(path, listing=x) for x in (False, True))
    assert session_to_json(quick.session) == session_to_json(full.session)
    assert quick.report.summary() == full.report.summary()
