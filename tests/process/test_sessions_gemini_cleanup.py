"""`persist sessions` says what Gemini CLI's own startup cleanup deletes, as Gemini CLI
decides it (packages/cli/src/utils/sessionCleanup.ts and sessionUtils.ts, the same in
@google/gemini-cli 0.61.0): the chat files its listing takes for no session, whatever
their age, and the policy of the settings it merges (comments allowed, maxCount,
minRetention, the project's own settings in a trusted folder, system settings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from recorder.sources.jsonl import parse_time
from tests.session_fixtures import gemini_messages, gemini_project, iso, new_uuid

pytestmark = pytest.mark.timeout(180)

HOUR = 3600.0
DAY = 86400.0


def persist(
    tmp: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real CLI on the Gemini folder under `tmp`; system settings looked for under
    `tmp` too (never the machine's /etc/gemini-cli)."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GEMINI_CLI_") and k not in ("KEEP_CHATS",)
    }
    base["GEMINI_CLI_SYSTEM_SETTINGS_PATH"] = str(tmp / "etc" / "settings.json")
    roots = ["--gemini-root", str(tmp / "gemini"), "--log-dir", str(tmp / "log")]
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", "sessions", "--source", "gemini", *args, *roots],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **(env or {})},
    )


def rows(tmp: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    out = persist(tmp, "--json", *args, env=env)
    assert out.returncode == 0, out.stderr
    return {r["id"]: r for r in json.loads(out.stdout)}


def legacy(
    chats: Path, sid: str, messages: list[dict[str, Any]], updated: float, **meta: Any
) -> Path:
    path = chats / f"session-2026-12-01T10-00-{sid[:8]}.json"
    doc = {
        "sessionId": sid,
        "projectHash": "ab" * 32,
        "startTime": iso(updated - 60),
        "lastUpdated": iso(updated),
        "messages": messages,
        **meta,
    }
    path.write_text(json.dumps(doc, indent=2))
    return path


def jsonl(chats: Path, sid: str, lines: list[dict[str, Any]], updated: float, **head: Any) -> Path:
    path = chats / f"session-2026-12-01T10-00-{sid[:8]}.jsonl"
    meta = {
        "sessionId": sid,
        "projectHash": "ab" * 32,
        "startTime": iso(updated - 60),
        "lastUpdated": iso(updated),
        **head,
    }
    meta = {k: v for k, v in meta.items() if v is not None}
    path.write_text("".join(json.dumps(x) + "\n" for x in [meta, *lines]))
    return path


def sub_agent(chats: Path, parent: str, sid: str, updated: float) -> Path:
    """A sub-agent's chat as Gemini CLI writes it: `chats/<parent id>/<id>.jsonl`."""
    (chats / parent).mkdir(exist_ok=True)
    path = chats / parent / f"{sid}.jsonl"
    head = {"sessionId": sid, "projectHash": "ab" * 32, "kind": "subagent"}
    head |= {"startTime": iso(updated - 60), "lastUpdated": iso(updated)}
    lines = [head, *gemini_messages(1, updated - 60)]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def note(kind: str, text: str, t: float) -> dict[str, Any]:
    return {"id": new_uuid(), "timestamp": iso(t), "type": kind, "content": text}


def ids(n: int) -> list[str]:
    """`n` session ids of different short ids (Gemini CLI deletes by the first 8)."""
    return [f"{i:x}{i:x}{i:x}{i:x}aaaa-0000-4000-8000-{i:012x}" for i in range(1, n + 1)]


def test_files_gemini_cli_takes_for_no_session_are_due_at_its_next_start(tmp_path: Path) -> None:
    """Gemini CLI's startup cleanup deletes, whatever their age, the chat files its
    listing takes for no session: persist listed such files, written an hour ago, as
    deleted "in 30d", and `--expiring 1` found none of them."""
    now = time.time()
    chats = gemini_project(tmp_path / "gemini", "/home/me/proj")
    kept, warning, sub, torn, chatter, headless = ids(6)
    legacy(chats, kept, gemini_messages(2, now - 2 * HOUR), now - HOUR)
    legacy(chats, warning, [note("warning", "Quota almost used", now - HOUR)], now - HOUR)
    legacy(chats, sub, gemini_messages(2, now - 2 * HOUR), now - HOUR, kind="subagent")
    cut = legacy(chats, torn, gemini_messages(3, now - 2 * HOUR), now - HOUR)
    cut.write_bytes(cut.read_bytes()[:-400])  # a crash while the document was rewritten
    jsonl(  # injected context, a slash command and an info line: nothing to resume
        chats,
        chatter,
        [
            {**note("user", "<session_context>cwd: /home/me/proj</session_context>", now - HOUR)},
            note("user", "/help", now - HOUR),
            note("info", "Help shown", now - HOUR),
        ],
        now - HOUR,
    )
    # a JSONL log whose first line has no projectHash string: Gemini CLI falls back to reading
    # it as one JSON document, which it is not
    jsonl(chats, headless, gemini_messages(1, now - HOUR), now - HOUR, projectHash=12345)
    doomed = {warning, sub, torn, chatter, headless}
    # sub-agents' chats in `chats/<session id>/` (kind "subagent"): Gemini CLI deletes
    # them with their session, and never one whose session's file is gone
    nested_id, orphan_id = ids(8)[6:]
    sub_agent(chats, kept, nested_id, now - HOUR)
    sub_agent(chats, "gone-session", orphan_id, now - HOUR)

    listed = rows(tmp_path)
    assert set(listed) == {kept, orphan_id, *doomed}
    assert listed[kept]["extra_paths"] == [str(chats / kept / f"{nested_id}.jsonl")]
    assert listed[orphan_id]["sub_agent_of"] == "gone-session"
    assert listed[orphan_id]["agent_cleanup_at"] is None
    del listed[orphan_id]
    for sid in doomed:
        at = parse_time(listed[sid]["agent_cleanup_at"])
        assert at is not None and at <= time.time() + 1, (sid, listed[sid])
    why = {sid: listed[sid]["agent_cleanup_reason"] for sid in listed}
    assert "no prompt or answer to resume" in why[warning]
    assert "no prompt or answer to resume" in why[chatter]
    assert 'kind "subagent"' in why[sub]
    assert "not a session Gemini CLI can read" in why[torn]
    assert "not a session Gemini CLI can read" in why[headless]
    # the session it keeps is deleted 30 days after its lastUpdated
    at = parse_time(listed[kept]["agent_cleanup_at"])
    assert at is not None and abs(at - (now - HOUR + 30 * DAY)) < 2
    assert why[kept] == "maxAge 30d after its lastUpdated"

    assert set(rows(tmp_path, "--expiring", "1")) == doomed
    table = persist(tmp_path, "--expiring", "1")
    assert table.returncode == 0, table.stderr
    body, _, notes = table.stdout.partition("\n\n")
    assert body.count("next start") == len(doomed)
    assert notes.startswith("next start: the agent deletes these the next time it starts")
    assert 'a sub-agent\'s chat (kind "subagent")' in notes and len(notes.splitlines()) == 6

    # with the cleanup turned off Gemini CLI deletes nothing, damaged files neither
    (tmp_path / "gemini" / "settings.json").write_text(
        json.dumps({"general": {"sessionRetention": {"enabled": False}}})
    )
    assert rows(tmp_path, "--expiring", "1") == {}
    assert all(r["agent_cleanup_at"] is None for r in rows(tmp_path).values())


def write_three(chats: Path, now: float) -> list[str]:
    """Sessions updated 1, 2 and 3 days ago (newest first)."""
    sids = ids(3)
    for n, sid in enumerate(sids, 1):
        jsonl(chats, sid, gemini_messages(1, now - n * DAY), now - n * DAY)
    return sids


def due_now(listed: dict[str, dict[str, Any]]) -> set[str]:
    soon = time.time() + 1
    return {
        sid
        for sid, r in listed.items()
        if r["agent_cleanup_at"] is not None and parse_time(r["agent_cleanup_at"]) <= soon  # type: ignore[operator]
    }


def test_gemini_settings_are_read_as_gemini_cli_merges_them(tmp_path: Path) -> None:
    """maxCount was not read, a settings file with a comment was taken for the
    defaults without a word, and neither a project's own settings, system settings, a
    maxAge below minRetention nor a "0d" (both turn the cleanup off) were heeded."""
    now = time.time()
    project = tmp_path / "myproj"
    project.mkdir()
    chats = gemini_project(tmp_path / "gemini", str(project))
    one, two, three = write_three(chats, now)
    user = tmp_path / "gemini" / "settings.json"

    def set_user(text: str) -> None:
        user.write_text(text)

    # maxCount: all but the newest ones of the project go at the next start
    set_user(json.dumps({"general": {"sessionRetention": {"maxCount": 1}}}))
    listed = rows(tmp_path)
    assert due_now(listed) == {two, three}
    assert "beyond maxCount 1" in listed[three]["agent_cleanup_reason"]
    assert set(rows(tmp_path, "--expiring", "7")) == {two, three}
    at = parse_time(listed[one]["agent_cleanup_at"])  # the 30d default still holds
    assert at is not None and abs(at - (now - DAY + 30 * DAY)) < 2

    # comments, as strip-json-comments takes them out ("//" in a string stays)
    set_user(
        "{\n  // keep chats two days only\n  /* and no more */\n"
        '  "general": {"sessionRetention": {"maxAge": "2d"}},\n'
        '  "mcpServers": {"x": {"httpUrl": "http://example.com//y"}}\n}\n'
    )
    out = persist(tmp_path, "--json")
    assert out.returncode == 0 and "warning" not in out.stderr, out.stderr
    listed = {r["id"]: r for r in json.loads(out.stdout)}
    assert due_now(listed) == {two, three}
    at = parse_time(listed[one]["agent_cleanup_at"])
    assert at is not None and abs(at - (now - DAY + 2 * DAY)) < 2
    assert set(rows(tmp_path, "--expiring", "7")) == {one, two, three}

    # a maxAge below minRetention (1d), or of 0: Gemini CLI turns its cleanup off
    for age, extra in (("12h", {}), ("0d", {})):
        set_user(json.dumps({"general": {"sessionRetention": {"maxAge": age, **extra}}}))
        out = persist(tmp_path, "--json")
        assert out.returncode == 0, out.stderr
        assert all(r["agent_cleanup_at"] is None for r in json.loads(out.stdout))
        assert "session cleanup does not run" in out.stderr and str(user) in out.stderr
    set_user(json.dumps({"general": {"sessionRetention": {"maxAge": "12h", "minRetention": "6h"}}}))
    assert due_now(rows(tmp_path)) == {one, two, three}

    # a settings file that cannot be read is named, never silently taken for defaults
    set_user('{"general": {"sessionRetention": {"maxAge": "2d",}}}')
    out = persist(tmp_path, "--json")
    assert out.returncode == 0, out.stderr
    assert f"Gemini CLI's settings {user} cannot be read (not JSON" in out.stderr
    assert "Traceback" not in out.stderr
    user.unlink()

    # the project's own settings count in a trusted folder only
    own = project / ".gemini" / "settings.json"
    own.parent.mkdir()
    own.write_text(json.dumps({"general": {"sessionRetention": {"maxAge": "36h"}}}))
    out = persist(tmp_path, "--json")
    assert "which Gemini CLI ignores while" in out.stderr and str(own) in out.stderr
    assert due_now({r["id"]: r for r in json.loads(out.stdout)}) == set()
    assert due_now(rows(tmp_path, env={"GEMINI_CLI_TRUST_WORKSPACE": "true"})) == {two, three}
    trusted = tmp_path / "gemini" / "trustedFolders.json"
    trusted.write_text(json.dumps({str(project): "TRUST_FOLDER"}))
    assert due_now(rows(tmp_path)) == {two, three}
    trusted.write_text(json.dumps({str(project / "sub"): "TRUST_PARENT"}))
    assert due_now(rows(tmp_path)) == {two, three}
    trusted.write_text(json.dumps({str(tmp_path): "TRUST_FOLDER", str(project): "DO_NOT_TRUST"}))
    assert due_now(rows(tmp_path)) == set()
    trusted.unlink()

    # system settings override them all; $VAR and ${VAR:-default} are expanded
    system = tmp_path / "etc" / "settings.json"
    system.parent.mkdir()
    system.write_text(
        json.dumps({"general": {"sessionRetention": {"maxAge": "${KEEP_CHATS:-3w}"}}})
    )
    env = {"GEMINI_CLI_TRUST_WORKSPACE": "true"}
    assert due_now(rows(tmp_path, env=env)) == set()
    assert due_now(rows(tmp_path, env={**env, "KEEP_CHATS": "60h"})) == {three}
    system.write_text(json.dumps({"general": {"sessionRetention": {"enabled": False}}}))
    assert all(r["agent_cleanup_at"] is None for r in rows(tmp_path, env=env).values())


def test_a_file_gemini_cli_deletes_takes_its_short_id_namesakes_along(tmp_path: Path) -> None:
    """Gemini CLI deletes a chat file together with every `session-…-<id8>.json[l]` of
    the same short id: a legacy `.json` left beside the `.jsonl` it was migrated to
    counts as a file of its own for maxCount, and its deletion takes the session."""
    now = time.time()
    chats = gemini_project(tmp_path / "gemini", "/home/me/proj")
    old, new = ids(2)
    legacy(chats, old, gemini_messages(1, now - 3 * DAY), now - 3 * DAY)
    migrated = jsonl(chats, old, gemini_messages(2, now - 3 * DAY), now - HOUR)
    jsonl(chats, new, gemini_messages(1, now - 2 * HOUR), now - 2 * HOUR)
    (tmp_path / "gemini" / "settings.json").write_text(
        json.dumps({"general": {"sessionRetention": {"maxCount": 2}}})
    )
    listed = rows(tmp_path)
    assert set(listed) == {old, new} and listed[old]["path"] == str(migrated)
    assert due_now(listed) == {old}
    assert listed[old]["agent_cleanup_reason"].startswith("deleted with session-2026-12-01")
