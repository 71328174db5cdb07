"""Claude Code transcripts in every documented shape, written at test time."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recorder.sources import claude
from recorder.sources.discover import Roots, scan
from recorder.sources.jsonl import read_bytes
from recorder.sources.model import ReadReport, Sender, Transcript, session_to_json
from tests.session_fixtures import ClaudeSession, new_uuid, text, thinking, tool_use

LISTING_CHECKS: list[str] = []


@pytest.fixture(autouse=True)
def listing_equals_full_read(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[None]:
    """Every full read in this module (every fixture shape it writes) is also read in
    the scan's listing mode, which must give exactly the same `Session` (unless the file
    changed between the two reads). Not in the worker-process test: it pickles the
    reader."""
    if "worker_processes" in request.node.name:
        yield
        return
    full_read = claude.read_transcript

    def checked(path: Path, **kw: Any) -> Transcript:
        before = path.stat()
        full = full_read(path, **kw)
        if not kw.get("listing"):
            quick = full_read(path, **{**kw, "listing": True})
            after = path.stat()
            if (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns):
                assert session_to_json(quick.session) == session_to_json(full.session), path
                LISTING_CHECKS.append(str(path))
        return full

    monkeypatch.setattr(claude, "read_transcript", checked)
    yield


def test_the_project_is_the_cwd_the_session_is_filed_under(tmp_path: Path) -> None:
    """A `cd` during the session moves its later lines' cwd on, but Claude Code keeps
    the file in the folder of the cwd it started in, where `claude --resume` looks:
    the resume commands and the launch menu used the last cwd, a folder without it."""
    s = ClaudeSession(tmp_path, cwd="/home/me/proj")
    s.user("start here")
    s.assistant(text("ok"))
    s.cwd = "/home/me/proj/src"  # the lines written after the cd
    s.user("now in src")
    s.assistant(text("ok"))
    s.cwd = "/home/me/proj"  # where the file is
    path = s.write()
    assert path.parent.name == claude.encode_project("/home/me/proj")
    t = claude.read_transcript(path)
    assert t.session.project_path == "/home/me/proj"
    listed = claude.read_transcript(path, listing=True)
    assert listed.session.project_path == "/home/me/proj"


def test_rewind_branch_follows_the_last_written_line(tmp_path: Path) -> None:
    s = ClaudeSession(tmp_path)
    s.user("first question")
    b = s.assistant(text("first answer"))
    s.user("abandoned follow-up")
    s.assistant(text("abandoned answer"))
    s.user("edited follow-up", parent=b)  # Esc-Esc: the new line hangs off b
    s.assistant(text("final answer"))
    t = claude.read_transcript(s.write())
    assert [m.text for m in t.messages] == [
        "first question",
        "first answer",
        "edited follow-up",
        "final answer",
    ]
    assert t.session.branches == 2 and t.session.message_count == 4


def test_explicit_last_prompt_leaf_wins(tmp_path: Path) -> None:
    s = ClaudeSession(tmp_path)
    a = s.user("q")
    b = s.assistant(text("a"))
    s.user("newer branch")
    s.assistant(text("newer answer"))
    s.meta("last-prompt", lastPrompt="q", leafUuid=b, explicit=True, rewound=True)
    t = claude.read_transcript(s.write())
    assert [m.uuid for m in t.messages] == [a, b]


def test_compaction_boundary_is_bridged_and_marked(tmp_path: Path) -> None:
    s = ClaudeSession(tmp_path)
    s.user("before")
    s.assistant(text("old answer"))
    s.compact()
    s.user("after")
    s.assistant(
        text("new answer"),
        usage={"input_tokens": 900, "cache_read_input_tokens": 100, "output_tokens": 7},
    )
    t = claude.read_transcript(s.write())
    assert [m.note for m in t.messages] == ["", "", "compact-boundary", "compact-summary", "", ""]
    assert t.messages[0].text == "before" and t.session.message_count == 5
    assert t.session.context_tokens == 1007


def test_streamed_blocks_merge_into_one_message(tmp_path: Path) -> None:
    s = ClaudeSession(tmp_path)
    s.user("edit it")
    call = tool_use("Edit", {"file_path": "/p/a.py", "old_string": "x", "new_string": "y"}, "t1")
    s.assistant(thinking("let me look"), text("I will edit"), call)
    s.tool_result("t1", "done")
    s.assistant(text("ok"))
    t = claude.read_transcript(s.write())
    assert [m.sender for m in t.messages] == [
        Sender.USER,
        Sender.ASSISTANT,
        Sender.TOOL,
        Sender.ASSISTANT,
    ]
    merged = t.messages[1]
    assert merged.text == "I will edit" and merged.thinking == "let me look"
    assert [c.name for c in merged.tool_calls] == ["Edit"] and merged.tool_calls[0].id == "t1"
    assert t.session.files_modified == ("/p/a.py",)
    assert merged.uuid == t.raw_chain[3]["uuid"]  # the uuid of its last line
    assert merged.merged == (t.raw_chain[1]["uuid"], t.raw_chain[2]["uuid"])
    # `--at` takes the uuid of any of its lines (the thinking one was refused)
    from recorder.sources.fork import ForkError, choose

    for line in t.raw_chain[1:4]:
        assert choose(t, line["uuid"]) is merged
        assert choose(t, line["uuid"][:13]) is merged
    with pytest.raises(ForkError, match="--at needs a message number"):
        choose(t, "")


def test_parallel_tool_results_off_the_chain_are_recovered(tmp_path: Path) -> None:
    s = ClaudeSession(tmp_path)
    s.user("two things")
    a1 = s.assistant(tool_use("Read", {"file_path": "/a"}, "r1"))
    # the second call is a sibling line of the same message, chained after the first
    line = dict(s.lines[-1])
    line.update(uuid="a2-uuid", parentUuid=a1)
    line["message"] = {**line["message"], "content": [tool_use("Read", {"file_path": "/b"}, "r2")]}
    s.add(line)
    s.tool_result("r1", "content a", parent=a1)  # hangs off the first line
    s.tool_result("r2", "content b", parent="a2-uuid")
    s.assistant(text("both read"))
    t = claude.read_transcript(s.write())
    texts = [m.text for m in t.messages]
    assert "content a" in texts and "content b" in texts and texts[-1] == "both read"
    assert t.session.branches == 1


def test_torn_last_line_and_bad_middle_line(tmp_path: Path) -> None:
    s = ClaudeSession(tmp_path)
    s.user("one")
    s.assistant(text("two"))
    s.user("three")
    s.assistant(text("four"))
    path = s.write(raw_tail=b'{"type":"user","message":{"role":"us')
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1][:40]  # the assistant line "two" is cut (as a redaction tool did)
    path.write_bytes(b"\n".join(lines))
    t = claude.read_transcript(path)
    assert t.report.bad_lines == [2] and t.report.torn_tail > 0
    # "three" lost its parent: the chain falls back to the nearest earlier line
    assert [m.text for m in t.messages] == ["one", "three", "four"]
    assert "1 unreadable line(s) (2)" in t.report.summary()


def test_a_lone_surrogate_or_bytes_not_utf8_keep_their_message(tmp_path: Path) -> None:
    """Claude Code writes an escaped lone surrogate when it cuts text in the middle of
    an emoji (JSON.parse takes it, orjson does not): the line was counted unreadable and
    its message lost from listing, export, search and fork. Now it is read, with U+FFFD
    for the bad character, and counted as repaired (said with the other warnings)."""
    s = ClaudeSession(tmp_path)
    s.user("cat the log")
    s.assistant(text("PLACEHOLDER-A"))
    s.user("PLACEHOLDER-B")
    s.assistant(text("done"))
    path = s.write()
    data = path.read_bytes()
    data = data.replace(b"PLACEHOLDER-A", b"cut \\ud83d here")  # the JSON escape, as written
    data = data.replace(b"PLACEHOLDER-B", b"raw \xff byte")
    path.write_bytes(data)
    t = claude.read_transcript(path)
    assert [m.text for m in t.messages] == [
        "cat the log",
        "cut \ufffd here",
        "raw \ufffd byte",
        "done",
    ]
    assert t.report.bad_lines == [] and t.report.repaired == [2, 3]
    assert "2 line(s) read with U+FFFD" in t.report.summary()
    # a line that is not JSON at all is still one
    path.write_bytes(data.replace(b"raw \xff byte", b'raw", broken'))
    t = claude.read_transcript(path)
    assert t.report.bad_lines == [3] and t.report.repaired == [2]


def test_unknown_types_and_fields_are_skipped_and_counted(tmp_path: Path) -> None:
    s = ClaudeSession(tmp_path)
    s.user("hello", brandNewField={"x": 1})
    s.meta("hologram-snapshot", data=[1, 2])
    s.meta("hologram-snapshot", data=[3])
    s.lines.append({"type": 7})
    s.lines.append(["not", "an", "object"])  # type: ignore[arg-type]
    s.assistant({"type": "future_block", "x": 1}, text("hi"))
    t = claude.read_transcript(s.write())
    assert t.session.message_count == 2 and t.messages[1].text == "hi"
    assert t.report.unknown_types == {"hologram-snapshot": 2, "?": 1}
    assert t.report.bad_lines == [5]


def test_renamed_or_mistyped_fields_never_raise(tmp_path: Path) -> None:
    s = ClaudeSession(tmp_path)
    s.user("ok")
    s.lines.append({"type": "assistant", "uuid": "u2", "parentUuid": s.last, "message": "flat"})
    s.lines.append({"type": "user", "uuid": "u3", "parentUuid": 5, "message": {"content": 3}})
    s.lines.append(
        {
            "type": "system",
            "uuid": "u4",
            "subtype": "compact_boundary",
            "parentUuid": None,
            "logicalParentUuid": "nowhere",
        }
    )
    t = claude.read_transcript(s.write())
    assert t.session.id == s.session_id and t.messages  # read, nothing raised


def test_three_subagent_layouts(tmp_path: Path) -> None:
    main = ClaudeSession(tmp_path, version="1.0.98")
    main.user("delegate")
    main.assistant(tool_use("Task", {"prompt": "go"}, "task1"))
    side = ClaudeSession(tmp_path, session_id=main.session_id, sidechain=True, path=main.path)
    side.user("go", parent=None)
    side.assistant(text("inline sub-agent done"))
    main.lines.extend(side.lines)  # <= 1.0: inline sidechain lines
    main.tool_result("task1", "sub-agent result")
    path = main.write()
    assert main.path is not None
    flat = ClaudeSession(
        tmp_path,
        session_id=main.session_id,
        sidechain=True,
        agent_id="a1234567",
        path=main.path.parent / "agent-a1234567.jsonl",
    )
    flat.user("flat layout", parent=None)
    flat.write()
    other = ClaudeSession(
        tmp_path,
        sidechain=True,
        agent_id="b7654321",
        path=main.path.parent / "agent-b7654321.jsonl",
    )
    other.user("another session's agent", parent=None)
    other.write()
    nested_dir = path.with_suffix("") / "subagents"
    nested_dir.mkdir(parents=True)
    nested = ClaudeSession(
        tmp_path,
        session_id=main.session_id,
        sidechain=True,
        agent_id="ac0ffee",
        path=nested_dir / "agent-ac0ffee.jsonl",
    )
    nested.user("nested layout", parent=None)
    nested.write()
    result = scan(Roots(tmp_path, None, None))
    # the sub-agents of a session are part of it; one whose session has no file is
    # listed on its own (`test_a_sub_agent_whose_session_file_is_gone_is_listed`)
    assert sorted(s.id for s in result.sessions) == sorted([main.session_id, "b7654321"])
    t = claude.read_transcript(path, flat_agents=sorted(path.parent.glob("agent-*.jsonl")))
    assert t.session.message_count == 3
    assert sorted(m.text for m in t.sidechain) == [
        "flat layout",
        "go",
        "inline sub-agent done",
        "nested layout",
    ]
    assert {p.name for p in t.session.extra_paths} == {
        "agent-a1234567.jsonl",
        "agent-ac0ffee.jsonl",
    }


def test_titles_custom_ai_summary_and_cross_file(tmp_path: Path) -> None:
    s = ClaudeSession(tmp_path)
    s.user("prompt one")
    s.meta("ai-title", aiTitle="AI title")
    s.meta("custom-title", customTitle="Old name")
    s.meta("custom-title", customTitle="New name")  # re-appended: the last wins
    assert claude.read_transcript(s.write()).session.title == "New name"
    a = ClaudeSession(tmp_path, cwd=s.cwd)
    a.user("untitled prompt")
    leaf = a.assistant(text("answer"))
    a.write()
    b = ClaudeSession(tmp_path, cwd=s.cwd)
    b.meta("summary", summary="Summary kept in another file", leafUuid=leaf)
    b.user("b prompt")
    b.write()
    titles = {x.id: (x.title, x.title_kind) for x in scan(Roots(tmp_path, None, None)).sessions}
    assert titles[a.session_id] == ("Summary kept in another file", "summary")
    assert titles[b.session_id] == ("b prompt", "first-prompt")
    assert titles[s.session_id] == ("New name", "custom-title")


def test_images_are_placeholders(tmp_path: Path) -> None:
    s = ClaudeSession(tmp_path)
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "A" * 4000},
    }
    s.user([text("look"), image])
    t = claude.read_transcript(s.write())
    assert t.messages[0].text == "look\n[image: image/png, 3000 bytes]"


def test_fifty_megabyte_session(tmp_path: Path) -> None:
    s = ClaudeSession(tmp_path)
    blob = "x" * 100_000
    for i in range(500):
        s.user(f"q{i}")
        s.assistant(text(f"a{i} {blob}"))
    path = s.write()
    assert path.stat().st_size > 50_000_000
    t = claude.read_transcript(path)
    assert t.session.message_count == 1000 and t.messages[-1].text.startswith("a499 ")


def test_file_appended_while_reading(tmp_path: Path) -> None:
    """A writer appends whole lines (in pieces, as a crash or a slow disk would leave
    them) while the reader reads again and again: every read is a clean prefix."""
    s = ClaudeSession(tmp_path)
    s.user("start")
    path = s.write()
    stop = threading.Event()

    def writer() -> None:
        w = ClaudeSession(tmp_path, session_id=s.session_id, path=path, last=s.last)
        with open(path, "ab", buffering=0) as f:
            for i in range(400):
                w.lines.clear()
                w.assistant(text(f"answer {i}"))
                w.user(f"question {i}")
                data = b"".join(json.dumps(x).encode() + b"\n" for x in w.lines)
                half = len(data) // 2
                f.write(data[:half])
                f.write(data[half:])
        stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    counts = []
    while not stop.is_set():
        t = claude.read_transcript(path)
        assert t.report.bad_lines == []
        counts.append(t.session.message_count)
    thread.join()
    assert counts == sorted(counts)
    assert claude.read_transcript(path).session.message_count == 801


def test_missing_or_unreadable_file_is_reported(tmp_path: Path) -> None:
    report = ReadReport()
    data, _ = read_bytes(tmp_path / "gone.jsonl", report)
    assert data == b"" and "cannot be read" in report.errors[0]
    assert scan(Roots(tmp_path / "absent", tmp_path / "absent", tmp_path / "absent")).sessions == []


def test_encode_project_matches_claude_code() -> None:
    assert claude.encode_project("/Users/me/.cfg") == "-Users-me--cfg"
    assert claude.encode_project("C:\\Users\\x") == "C--Users-x"
    assert claude.encode_project("/tmp/a\U0001f600b é") == "-tmp-a--b--"  # UTF-16 units
    # over 200 characters: the value Claude Code's own function (2.1.110 `J$`, run in
    # node) gives for this path
    long = "/" + "a" * 250 + "/é\U0001f600"
    assert claude.encode_project(long) == "-" + "a" * 199 + "-ltwk50"


def test_scan_in_worker_processes_gives_the_same_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recorder.sources import discover
    from recorder.sources.model import session_to_json

    monkeypatch.setattr(discover, "POOL_MIN_BYTES", 0)  # small files, through the pool all the same
    for i in range(10):
        s = ClaudeSession(tmp_path, cwd=f"/p/{i % 3}")
        s.user(f"q{i}" + " longer" * i)  # sizes differ: the largest go first, order kept
        s.assistant(text("a"), tool_use("Write", {"file_path": f"/f{i}"}))
        s.write()
    one = scan(Roots(tmp_path, None, None))
    two = scan(Roots(tmp_path, None, None), workers=2)
    assert one.read == two.read == 10
    assert [session_to_json(s) for s in one.sessions] == [session_to_json(s) for s in two.sessions]


def test_the_listing_check_runs_on_every_full_read(tmp_path: Path) -> None:
    """The autouse check compares the two modes on each file a test here reads in full."""
    s = ClaudeSession(tmp_path)
    s.user("q")
    s.assistant(text("a"), tool_use("Write", {"file_path": "/w"}, "t1"))
    s.tool_result("t1", "written")
    path = s.write()
    before = len(LISTING_CHECKS)
    claude.read_transcript(path)
    assert LISTING_CHECKS[before:] == [str(path)]


def test_a_text_too_long_to_keep_whole_says_what_was_left_out(tmp_path: Path) -> None:
    """Texts are kept up to 1 MiB characters (published by the hooks, indexed,
    exported): a longer one was cut with no word of it."""
    s = ClaudeSession(tmp_path)
    s.user("y" * ((1 << 20) + 12_345))
    path = s.write()
    (m,) = claude.read_transcript(path).messages
    kept, note = m.text.rsplit("\n", 1)
    assert kept == "y" * (1 << 20)
    assert note == "[… 12,345 more characters not kept here]"


def test_a_file_named_by_a_session_id_is_that_session_whatever_its_first_lines_say(
    tmp_path: Path,
) -> None:
    """History copied in from another session keeps that session's id on its lines:
    the file was listed under the other id (hiding the other file), and the resume
    command printed for it resumed the other file."""
    original = ClaudeSession(tmp_path)
    original.user("the original question")
    original.assistant(text("the original answer"))
    original.write()
    assert original.path is not None
    copy = ClaudeSession(
        tmp_path, session_id=original.session_id, path=original.path.parent / f"{new_uuid()}.jsonl"
    )
    copy.lines.extend(original.lines)  # copied history, the original's sessionId on each line
    copy.last = original.last
    copy.user("and a new question here")
    copy.write()
    assert copy.path is not None
    found = {s.id: s for s in scan(Roots(tmp_path, None, None)).sessions}
    assert set(found) == {original.session_id, copy.path.stem}
    assert (
        found[copy.path.stem].path == copy.path and found[original.session_id].path == original.path
    )
    assert (
        found[copy.path.stem].message_count == 3 and found[original.session_id].message_count == 2
    )
