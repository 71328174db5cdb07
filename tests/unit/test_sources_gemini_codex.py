"""Gemini CLI chats (legacy JSON, JSONL with $set / $rewindTo, slug and hashed project
folders) and Codex rollouts, written at test time."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest

from recorder.sources import codex, gemini
from recorder.sources.discover import Roots, read_session, scan
from recorder.sources.model import Sender, Source
from tests.session_fixtures import (
    BASE,
    codex_rollout,
    gemini_jsonl,
    gemini_legacy,
    gemini_messages,
    gemini_project,
    iso,
    new_uuid,
)


def test_gemini_jsonl_rewrites_set_and_rewind(tmp_path: Path) -> None:
    chats = gemini_project(tmp_path, "/home/me/My App")
    m = gemini_messages(3)
    sid = new_uuid()
    updated = {**m[1], "content": "answer 0, revised", "tokens": {"total": 999}}
    lines = [
        m[0],
        m[1],
        m[2],
        m[3],
        updated,  # the same id again: the last line wins, the first position stays
        {"$set": {"summary": "Gemini's summary", "lastUpdated": "2026-01-10T13:00:00Z"}},
        m[4],
        m[5],
        {"$rewindTo": m[4]["id"]},  # drops question 2 and its answer
        {"unexpected": True},
    ]
    path = gemini_jsonl(chats, sid, lines)
    with open(path, "a") as f:
        f.write('{"id": "torn", "type": "us')
    t = gemini.read_transcript(path, "/home/me/My App")
    assert [x.text.split("\n")[0] for x in t.messages] == [
        "question 0",
        "answer 0, revised",
        "question 1",
        "answer 1",
    ]
    s = t.session
    assert (s.title, s.title_kind) == ("Gemini's summary", "summary")
    assert s.message_count == 4 and s.context_tokens == 111
    assert t.messages[1].has_thinking and t.messages[1].tool_calls[0].name == "write_file"
    assert s.files_modified == ("/p/f0.txt", "/p/f1.txt")
    assert t.report.torn_tail > 0 and t.report.unknown_types == {"unexpected": 1}


def test_gemini_set_messages_replaces_the_list(tmp_path: Path) -> None:
    chats = gemini_project(tmp_path, "/x/proj")
    m = gemini_messages(2)
    path = gemini_jsonl(chats, new_uuid(), [m[0], m[1], {"$set": {"messages": [m[2], m[3]]}}])
    t = gemini.read_transcript(path)
    assert [x.text.split("\n")[0] for x in t.messages] == ["question 1", "answer 1"]


def test_gemini_legacy_and_migrated_jsonl_count_once(tmp_path: Path) -> None:
    chats = gemini_project(tmp_path, "/home/me/app")
    sid = new_uuid()
    m = gemini_messages(2)
    gemini_legacy(chats, sid, m[:2])
    gemini_jsonl(chats, sid, [*m, {"$set": {"lastUpdated": "2026-02-01T00:00:00Z"}}])
    sessions = scan(Roots(None, tmp_path, None)).sessions
    assert len(sessions) == 1
    s = sessions[0]
    assert s.path.suffix == ".jsonl" and s.message_count == 4 and len(s.extra_paths) == 1
    assert s.project_path == "/home/me/app" and s.source is Source.GEMINI


def test_gemini_legacy_file_with_a_lone_surrogate_is_read(tmp_path: Path) -> None:
    chats = gemini_project(tmp_path, "/home/me/app")
    m = gemini_messages(1)
    path = gemini_legacy(chats, new_uuid(), m)
    path.write_bytes(path.read_bytes().replace(b"answer 0", b"answer \\udc00 0"))
    t = gemini.read_transcript(path)
    assert [x.text.split("\n")[0] for x in t.messages] == ["question 0", "answer \ufffd 0"]
    assert t.report.repaired == [1] and not t.report.errors


def test_gemini_legacy_file_cut_short_keeps_what_it_holds(tmp_path: Path) -> None:
    """A crash while Gemini CLI rewrote its whole session file leaves the start of it:
    listed before as an untitled session of 0 messages named `session-…`, no warning."""
    chats = gemini_project(tmp_path, "/home/me/app")
    sid = new_uuid()
    path = gemini_legacy(chats, sid, gemini_messages(3))
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"answer 2")])  # inside the last message
    t = gemini.read_transcript(path)
    assert t.session.id == sid
    assert [m.text.split("\n")[0] for m in t.messages] == [
        "question 0",
        "answer 0",
        "question 1",
        "answer 1",
        "question 2",
    ]
    assert any("is cut short" in e and "first 5 message(s)" in e for e in t.report.errors)
    path.write_bytes(data[:40])  # not even the id: as before, nothing but the error
    t = gemini.read_transcript(path)
    assert not t.messages and any("is not a JSON document" in e for e in t.report.errors)


def test_gemini_hashed_folder_takes_its_path_from_projects_json(tmp_path: Path) -> None:
    project = "/home/me/old"
    chats = gemini_project(tmp_path, project, slug=False)
    assert chats.parent.name == hashlib.sha256(project.encode()).hexdigest()
    (tmp_path / "projects.json").write_text(json.dumps({"projects": {project: "old"}}))
    gemini_legacy(chats, new_uuid(), gemini_messages(1))
    gemini_legacy(chats, "b" * 36, [], kind="subagent")  # not resumable, still listed
    (chats / "session-broken.json").write_text("{not json")
    result = scan(Roots(None, tmp_path, None))
    good = [s for s in result.sessions if s.message_count]
    assert [s.project_path for s in good] == [project]
    assert any("session-broken.json is not a JSON document" in p for p in result.problems)


def test_gemini_hashed_folder_of_the_working_folder_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gemini CLI before 0.29 named the folder sha256(project path), with no
    projects.json: run from the project (as `persist launch` is), it is recognised."""
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    chats = gemini_project(tmp_path / "gemini", str(project), slug=False)
    gemini_legacy(chats, new_uuid(), gemini_messages(1))
    monkeypatch.chdir(project / "src")
    [session] = scan(Roots(None, tmp_path / "gemini", None)).sessions
    assert session.project_path == str(project)
    monkeypatch.chdir(tmp_path)
    [session] = scan(Roots(None, tmp_path / "gemini", None)).sessions
    assert session.project_path == ""  # from elsewhere: unknown, as before


def test_codex_rollout_and_thread_name(tmp_path: Path) -> None:
    tid = "019a085e-0000-7000-8000-000000000001"
    path = codex_rollout(tmp_path, tid, 3)
    with open(tmp_path / "session_index.jsonl", "w") as f:
        f.write(json.dumps({"id": tid, "thread_name": "old", "updated_at": "x"}) + "\n")
        f.write(json.dumps({"id": tid, "thread_name": "Renamed thread", "updated_at": "y"}) + "\n")
    with open(path, "a") as f:
        f.write(
            json.dumps({"timestamp": "2026-01-10T13:00:00Z", "type": "future_kind", "payload": {}})
            + "\n"
        )
        f.write("garbage\n")
    [s] = scan(Roots(None, None, tmp_path)).sessions
    assert (s.id, s.title, s.title_kind) == (tid, "Renamed thread", "thread-name")
    # 1 injected context + 3 x (task, reasoning + call, tool output, reply)
    assert s.message_count == 13
    assert s.files_modified == ("file0.txt", "file1.txt", "file2.txt")
    assert s.git_branch == "dev" and s.context_tokens == 1052 and s.skipped == 2
    t = read_session(s)
    assert t.session.title == "Renamed thread"  # the index is found from the rollout's path
    assert t.messages[0].note == "meta"
    call, reply = [m for m in t.messages if m.sender is Sender.ASSISTANT][:2]
    assert call.thinking == "plan 0" and call.tool_calls[0].name == "apply_patch"
    assert reply.text == "done 0" and not reply.tool_calls
    assert next(m.text for m in t.messages if m.sender is Sender.TOOL) == "Success"
    assert codex.thread_names(tmp_path / "absent") == {}


def test_patch_files_match_the_line_anchored_rule() -> None:
    """`_patch_files` (searched without `^` for speed) finds exactly the lines that
    `^\\*\\*\\* (Add|Update|Delete) File: (.+)$` (re.MULTILINE) finds, on random texts."""
    import random
    import re

    from recorder.sources.codex import _patch_files

    anchored = re.compile(r"^\*\*\* (?:Add|Update|Delete) File: (.+)$", re.MULTILINE)
    parts = ["*** ", "Update File: ", "Add File: ", "Delete File: ", "\n", "\r\n", "x"]
    parts += [" a/b.py", "*", "** ", "Move to: "]
    rng = random.Random(5)
    matched = 0
    for _ in range(5000):
        patch = "".join(rng.choice(parts) for _ in range(rng.randint(0, 24)))
        expected = [f.strip() for f in anchored.findall(patch)]
        assert list(_patch_files(patch)) == expected, repr(patch)
        matched += bool(expected)
    assert matched > 100  # the random texts do name files


def test_listing_mode_gives_the_full_reads_session(tmp_path: Path) -> None:
    """The scan reads Gemini chats and Codex rollouts in listing mode (tool outputs and
    arguments not turned into text): the same `Session` as a full read, every shape; a
    file recording no token usage is read in full (its estimate needs the text)."""
    from recorder.sources.model import session_to_json

    chats = gemini_project(tmp_path / "g", "/home/me/app")
    m = gemini_messages(3)
    injected = {**m[0], "id": "inj", "content": [{"text": "<session_context> x"}]}
    empty = {**m[0], "id": "empty", "content": ""}
    tool = {**m[0], "id": "fr", "content": [{"functionResponse": {"response": {"x": 1}}}]}
    info = {"id": "i", "type": "info", "content": "Switched model", "timestamp": m[0]["timestamp"]}
    shapes = {
        "injected and empty prompts": [injected, empty, *m],
        "tool response, info, odd": [tool, info, {"id": "o", "type": "odd"}, *m],
        "no token usage": [{k: v for k, v in x.items() if k != "tokens"} for x in m],
    }
    for n, (name, records) in enumerate(shapes.items()):
        path = gemini_legacy(chats, new_uuid(n + 1), records)
        full = gemini.read_transcript(path, "/home/me/app")
        quick = gemini.read_transcript(path, "/home/me/app", listing=True)
        assert session_to_json(quick.session) == session_to_json(full.session), name
        assert quick.report.summary() == full.report.summary(), name
        assert bool(quick.messages) == (name == "no token usage"), name  # full read: fallback
    assert full.session.first_prompt == "question 0"
    path = codex_rollout(tmp_path / "c", "019a085e-0000-7000-8000-0000000000cc", 3)
    full, quick = codex.read_transcript(path), codex.read_transcript(path, listing=True)
    assert session_to_json(quick.session) == session_to_json(full.session)
    assert full.session.files_modified == ("file0.txt", "file1.txt", "file2.txt")
    assert quick.messages == []  # counted, not built
    lines = [x for x in path.read_text().splitlines() if "token_count" not in x]
    path.write_text("\n".join(lines) + "\n")
    full, quick = codex.read_transcript(path), codex.read_transcript(path, listing=True)
    assert session_to_json(quick.session) == session_to_json(full.session)
    assert all(m.text for m in quick.messages if m.sender is Sender.TOOL)  # read in full


def test_codex_listing_counts_agree_with_the_full_read_on_random_rollouts(tmp_path: Path) -> None:
    """The listing counts turns, outputs and prompts in its own loop: on 300 random
    rollouts of every line shape (turns interrupted by prompts, outputs and
    compaction, developer messages, injected context, arguments as JSON text, dicts
    and patches, unknown and malformed lines, odd timestamps) it gives exactly the
    `Session` of the full read."""
    from recorder.sources.model import session_to_json

    def item(payload: dict[str, Any]) -> dict[str, Any]:
        return {"type": "response_item", "payload": payload}

    def msg(role: str, text: str) -> dict[str, Any]:
        return item({"type": "message", "role": role, "content": [{"type": "x", "text": text}]})

    patch = "*** Begin Patch\n*** Update File: src/a.py\n*** Add File: b.md\n*** End Patch"
    shapes: list[dict[str, Any]] = [
        msg("user", "fix the bug"),
        msg("user", "  <environment_context>cwd</environment_context>"),
        msg("user", ""),
        msg("assistant", "done"),
        msg("developer", "rules"),
        item({"type": "reasoning", "summary": [{"text": "plan"}]}),
        item({"type": "reasoning"}),
        item({"type": "function_call", "name": "shell", "arguments": '{"cmd": ["ls"]}'}),
        item({"type": "custom_tool_call", "name": "apply_patch", "input": patch}),
        item({"type": "function_call", "name": "shell", "arguments": {"cmd": patch}}),
        item({"type": "local_shell_call", "action": {"command": ["ls"]}}),
        item({"type": "web_search_call", "action": {"query": "q"}}),
        item({"type": "function_call_output", "output": '{"output": "ok"}'}),
        item({"type": "custom_tool_call_output", "output": "plain"}),
        item({"type": "other_item"}),
        {"type": "compacted", "payload": {"message": "summary"}},
        {"type": "turn_context", "payload": {"model": "gpt-5", "cwd": "/w"}},
        {"type": "event_msg", "payload": {"type": "token_count", "info": None}},
        {"type": "event_msg", "payload": {"type": "agent_message", "message": "hi"}},
        {"type": "mystery", "payload": {}},
        {"type": "response_item", "payload": "not a dict"},
    ]
    usage = {"type": "token_count", "info": {"last_token_usage": {"input_tokens": 900}}}
    stamps: list[Any] = [None, 1768000000, "garbage", "2026-01-10T12:00:00+02:00"]
    stamps += ["2026-13-10T12:00:00.000Z", "2026-01-10 12:00:00.000Z"]
    rng = random.Random(11)
    counts, prompts, files, estimated = set(), set(), 0, 0
    for n in range(300):
        t = BASE + rng.randint(0, 10**6)
        lines = [{"type": "session_meta", "payload": {"id": f"s{n}", "cwd": "/p"}}]
        lines += [dict(rng.choice(shapes)) for _ in range(rng.randint(0, 40))]
        if rng.random() < 0.8:
            lines.insert(rng.randint(1, len(lines)), {"type": "event_msg", "payload": usage})
        text = []
        for line in lines:
            t += rng.randint(-5, 50)
            line["timestamp"] = rng.choice(stamps) if rng.random() < 0.1 else iso(t)
            text.append(json.dumps(line))
            if rng.random() < 0.03:
                text.append("{torn")
        path = tmp_path / f"rollout-2026-01-10T12-00-00-{n:036d}.jsonl"
        path.write_text("\n".join(text) + "\n")
        full, quick = codex.read_transcript(path), codex.read_transcript(path, listing=True)
        assert session_to_json(quick.session) == session_to_json(full.session), path.read_text()
        assert quick.report.summary() == full.report.summary()
        counts.add(full.session.message_count)
        prompts.add(full.session.first_prompt)
        files += bool(full.session.files_modified)
        estimated += quick.messages != []  # no token usage: the listing read it in full
    assert len(counts) > 20 and prompts == {"", "fix the bug"}  # every kind of start
    assert 30 < estimated < 100 and files > 100


def test_gemini_sub_agents_are_read_with_their_session(tmp_path: Path) -> None:
    """Sub-agents' sessions in `chats/<parent id>/` (`<id>.jsonl`, `kind: "subagent"`)
    are the parent's `extra_paths`, their edits among its files, their messages its
    `sidechain`, the listing agreeing with the full read; a bad line in one is counted
    with the parent's. A folder named for no session file holds sub-agents whose
    session is gone: each is a session of its own, not resumable."""
    from recorder.sources.model import session_to_json

    chats = gemini_project(tmp_path, "/home/me/app")
    parent = new_uuid()
    path = gemini_jsonl(chats, parent, gemini_messages(2))
    (chats / parent).mkdir()
    agent = new_uuid()
    sub = gemini_messages(1)
    sub[1]["toolCalls"][0]["args"]["file_path"] = "/p/by-the-agent.txt"
    head = {"sessionId": agent, "projectHash": "ab" * 32, "kind": "subagent"}
    lines = [json.dumps(x) for x in (head, *sub)]
    (chats / parent / f"{agent}.jsonl").write_text("\n".join([*lines, "{bad"]) + "\n")
    (chats / parent / "notes.txt").write_text("not a session")
    full = gemini.read_transcript(path, "/home/me/app")
    quick = gemini.read_transcript(path, "/home/me/app", listing=True)
    assert session_to_json(quick.session) == session_to_json(full.session)
    s = full.session
    assert s.extra_paths == (chats / parent / f"{agent}.jsonl",) and s.resumable
    assert s.files_modified == ("/p/f0.txt", "/p/f1.txt", "/p/by-the-agent.txt")
    assert s.message_count == 4 and s.skipped == 1 and full.report.bad_lines == [4]
    assert [(m.text.split("\n")[0], m.sidechain, m.agent_id) for m in full.sidechain] == [
        ("question 0", True, agent),
        ("answer 0", True, agent),
    ]
    # the parent's file gone: its sub-agent is listed on its own
    path.unlink()
    (orphan,) = scan(Roots(None, tmp_path, None)).sessions
    assert (orphan.id, orphan.parent_id, orphan.subagent, orphan.resumable) == (
        agent,
        parent,
        True,
        False,
    )
    assert orphan.message_count == 2 and orphan.extra_paths == ()
    again = read_session(orphan)
    assert again.session.subagent and [m.text.split("\n")[0] for m in again.messages] == [
        "question 0",
        "answer 0",
    ]
