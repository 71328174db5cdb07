"""`persist search`, `persist reindex` and `persist stats` as a person runs them."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from recorder.store.reader import open_store
from tests.demo_journal import build_demo

pytestmark = pytest.mark.timeout(120)


def persist(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PERSIST_LOG_DIR": "/nonexistent"},
    )


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return build_demo(tmp_path / "logs")


def test_search_json_text_and_no_match(demo: Path) -> None:
    out = persist("search", "--json", "--log-dir", str(demo), '"schema migration"')
    assert out.returncode == 0, out.stderr
    result = orjson.loads(out.stdout)
    assert result["took_ms"] > 0 and result["total"] == len(result["hits"]) > 0
    store = open_store(demo)
    for hit in result["hits"]:
        assert {"seq", "time", "sender", "topic", "snippet", "checkpoint", "spans"} <= hit.keys()
        rec = store.by_seq(hit["seq"])
        assert rec is not None and rec.sender == hit["sender"] and rec.ts == hit["time"]
        start, end, how = hit["spans"][0]
        assert hit["snippet"][start:end].lower() == "schema migration" and how == "exact"
    text = persist("search", "--log-dir", str(demo), "--checkpoints", "migraton from:coder")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines and all("coder" in ln for ln in lines if not ln.startswith(" " * 12))
    assert lines[0].startswith("~")  # a typo: the hits are marked fuzzy
    # times in UTC, marked so (since:/until: read local time unless they end in Z)
    assert re.search(r"\s\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s", lines[0]), lines[0]
    assert "checkpoint before:" in text.stdout
    assert "fuzzy (~): migraton → migration" in text.stderr
    none = persist("search", "--log-dir", str(demo), "--no-fuzzy", "zzyzx")
    assert none.returncode == 0 and none.stdout == ""
    assert none.stderr.startswith("persist: no matches for 'zzyzx'")


def _without_took(text: str) -> object:
    got = orjson.loads(text)
    got.pop("took_ms")
    for hit in got["hits"]:
        hit.pop("doc", None)
    return got


def test_reindex_and_stats(demo: Path) -> None:
    out = persist("reindex", "--log-dir", str(demo))
    assert out.returncode == 0, out.stderr
    n = len(open_store(demo))
    assert out.stdout.startswith(f"search index rebuilt: {n:,} records in ")
    again = persist("reindex", "--catch-up", "--log-dir", str(demo))
    assert again.stdout.startswith("search index caught up: 0 records")
    before = persist("search", "--json", "--count", "--log-dir", str(demo), "deploy OR cache")
    two = persist("reindex", "--workers", "2", "--log-dir", str(demo))
    assert two.returncode == 0 and two.stderr == "", two.stderr
    assert two.stdout.startswith(f"search index rebuilt: {n:,} records in ")
    assert len(list((demo / "search").glob("shard-*.sqlite3"))) == 1
    after = persist("search", "--json", "--count", "--log-dir", str(demo), "deploy OR cache")
    assert _without_took(after.stdout) == _without_took(before.stdout)
    stats = persist("stats", "--json", "--log-dir", str(demo))
    assert stats.returncode == 0, stats.stderr
    got = orjson.loads(stats.stdout)
    messages = [r for r in open_store(demo).records() if r.is_message]
    assert got["records"] == len(messages)
    senders: dict[str, int] = {}
    for r in messages:
        senders[r.sender] = senders.get(r.sender, 0) + 1
    assert got["sender"] == senders
    assert sum(got["tier"].values()) == sum(got["kind"].values()) == len(messages)
    # every record: one that is no message counts under its own kind, not "(none)"
    every = orjson.loads(persist("stats", "--json", "--all-kinds", "--log-dir", str(demo)).stdout)
    records = [r for r in open_store(demo).records() if r.data is not None]
    others: dict[str, int] = {}
    for r in records:
        if not r.is_message and r.kind not in ("segment",):
            others[r.kind] = others.get(r.kind, 0) + 1
    assert others and all(every["kind"].get(k) == n for k, n in others.items()), every["kind"]
    assert "(none)" not in every["kind"]
    human = persist("stats", "--log-dir", str(demo), "--since", "2024-05-15")
    assert human.returncode == 0 and "by sender:" in human.stdout
    # one value past --top is shown, not summed up as "(1 more)"
    top = len(senders) - 1
    human = persist("stats", "--log-dir", str(demo), "--top", str(top))
    block = human.stdout.split("by sender:")[1].split("\n\n")[0]
    assert "more)" not in block and len(block.strip().splitlines()) == len(senders), block


def test_session_hits_from_the_cli_match_the_python_api(tmp_path: Path) -> None:
    from recorder.search.engine import search
    from recorder.sources.discover import Roots
    from tests.session_fixtures import ClaudeSession, codex_rollout, text

    demo = build_demo(tmp_path / "logs")
    s = ClaudeSession(tmp_path / "claude")
    s.user("is the schema migration finished")
    s.assistant(text("the schema migration is done"))
    s.write()
    codex_rollout(tmp_path / "codex", "0199aaaa-bbbb-7ccc-8ddd-eeeeffff0002", 2)
    roots = ["--claude-root", str(tmp_path / "claude"), "--codex-root", str(tmp_path / "codex")]
    query = '"schema migration" OR task'
    out = persist("search", "--json", "--log-dir", str(demo), *roots, "--limit", "50", query)
    assert out.returncode == 0, out.stderr
    hits = orjson.loads(out.stdout)["hits"]
    assert {h["source"] for h in hits} == {"bus", "claude", "codex"}
    api = search(
        demo, query, roots=Roots(tmp_path / "claude", None, tmp_path / "codex"), limit=50
    ).hits
    assert [h.as_json() for h in api] == hits
    for hit in hits:
        if hit["source"] == "bus":
            assert type(hit["seq"]) is int
        else:
            assert hit["seq"] is None and hit["origin"].startswith(f"{hit['source']}:")
            assert hit["origin"].startswith(f"{hit['source']}:{hit['session']}#")
    claude_hits = [h for h in hits if h["source"] == "claude"]
    assert [h["sender"] for h in sorted(claude_hits, key=lambda h: h["time"])] == [
        "user",
        "assistant",
    ]
    shown = persist("search", "--log-dir", str(demo), *roots, "source:claude schema")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("claude session message claude:") == 2
    bad = persist("search", "--log-dir", str(demo), "source:nope schema")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [
        "persist: bad query: source:nope is not a source (one of bus, claude, gemini, codex)"
    ]


def test_search_columns_stay_in_line_with_wide_senders_and_topics(tmp_path: Path) -> None:
    """The sender and topic columns were padded by their number of characters: a CJK
    sender (two cells a character) pushed the snippet right on its lines."""
    import unicodedata

    from tests.demo_journal import BASE_TS, DemoClock, DemoWriter

    root = tmp_path / "logs"
    w = DemoWriter.open(root, clock=DemoClock(BASE_TS))
    for i, (sender, topic) in enumerate(
        [("田中太郎", "会議.議事録"), ("alice", "chat"), ("😀 bot", "t"), ("a" * 30, "b" * 30)]
    ):
        w.message(BASE_TS + i, sender, f"zebra line {i}", topic=topic)
    w.close()
    out = persist("search", "zebra", "--log-dir", str(root))
    assert out.returncode == 0, out.stderr

    def cells(text: str) -> int:
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)

    rows = [line for line in out.stdout.splitlines() if "zebra line" in line]
    assert len(rows) == 4 and len({cells(r[: r.index("zebra line")]) for r in rows}) == 1, rows


def test_an_exclusion_starting_with_h_is_a_query_not_help(tmp_path: Path) -> None:
    """`-has:secret` (README's own example) was argparse's -h with "as:secret"."""
    demo = build_demo(tmp_path / "logs")
    out = persist("search", "-has:secret deploy", "--json", "--log-dir", str(demo))
    assert out.returncode == 0, out.stderr
    assert orjson.loads(out.stdout)["hits"]
    assert persist("search", "-has:secret", "deploy", "--log-dir", str(demo)).returncode == 0
    usage = persist("search", "-h")
    assert usage.returncode == 0 and usage.stdout.startswith("usage: persist search")


def test_stats_count_the_journal_not_the_agents_session_files(demo: Path, tmp_path: Path) -> None:
    """A Claude session file in the agent's folder made `persist stats` count its
    messages with the journal's (with hooks installed, every message twice)."""
    from tests.session_fixtures import ClaudeSession

    claude = tmp_path / "claude"  # the agent's default folder (CLAUDE_CONFIG_DIR)
    env = {**os.environ, "CLAUDE_CONFIG_DIR": str(claude), "PERSIST_LOG_DIR": "/nonexistent"}
    cli = [sys.executable, "-m", "recorder.cli"]
    s = ClaudeSession(claude)
    s.user("a question from the agent's own file")
    s.write()

    def run(*args: str) -> dict[str, object]:
        out = subprocess.run(
            [*cli, *args, "--json", "--log-dir", str(demo)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert out.returncode == 0, out.stderr
        return dict(orjson.loads(out.stdout))

    hits = run("search", "question", "source:claude")["hits"]
    assert isinstance(hits, list) and len(hits) == 1  # indexed, searchable
    messages = [r for r in open_store(demo).records() if r.is_message]
    got = run("stats")
    assert got["records"] == len(messages) and "user" not in dict(got["sender"])  # type: ignore[call-overload]


def test_more_matches_than_the_window_are_newest_first_across_journal_and_sessions(
    tmp_path: Path,
) -> None:
    """An agent session's messages get their index ids when indexed, whatever their
    time: past the ranked window, an old Codex rollout indexed after the journal came
    before the journal's newest messages (newest was taken as the highest id)."""
    from tests.demo_journal import DemoWriter
    from tests.session_fixtures import BASE, codex_rollout

    root = tmp_path / "logs"
    w = DemoWriter.open(root)
    for i in range(250):
        w.message(BASE + 86_400 + i, "bot", f"task number {i}")
    w.close()
    codex_rollout(tmp_path / "codex", "0199aaaa-bbbb-7ccc-8ddd-eeeeffff0003", 30)
    roots = ["--codex-root", str(tmp_path / "codex"), "--claude-root", str(tmp_path / "none")]
    roots += ["--gemini-root", str(tmp_path / "none")]
    # the journal first, then the (older) session: the session's ids are the highest
    assert persist("reindex", "--log-dir", str(root), *roots).returncode == 0
    out = persist("search", "--json", "--log-dir", str(root), *roots, "--limit", "4", "task")
    assert out.returncode == 0, out.stderr
    hits = orjson.loads(out.stdout)["hits"]
    assert [h["source"] for h in hits] == ["bus"] * 4
    assert [h["seq"] for h in hits] == sorted((h["seq"] for h in hits), reverse=True)
    every = persist(
        "search", "--json", "--count", "--log-dir", str(root), *roots, "--limit", "400", "task"
    )
    result = orjson.loads(every.stdout)
    assert result["total"] > 250 and {h["source"] for h in result["hits"]} == {"bus", "codex"}
    times = [h["time"] for h in result["hits"]]
    assert times == sorted(times, reverse=True)
    fields = persist(
        "search", "--json", "--log-dir", str(root), *roots, "--limit", "3", "since:2020-01-01"
    )
    assert fields.returncode == 0, fields.stderr
    assert [h["source"] for h in orjson.loads(fields.stdout)["hits"]] == ["bus"] * 3


def test_many_field_alternatives_work_and_too_many_are_a_bad_query(tmp_path: Path) -> None:
    """1000 `from:` alternatives made an OR chain SQLite refused as too deep, reported
    as a broken index (exit 1, "persist doctor --fix")."""
    from tests.demo_journal import BASE_TS, DemoWriter

    root = tmp_path / "logs"
    w = DemoWriter.open(root)
    w.message(BASE_TS, "bot", "the deploy went fine")
    w.close()
    many = " ".join(f"from:w{i}" for i in range(1000))
    out = persist("search", "--log-dir", str(root), f"{many} from:bot deploy")
    assert out.returncode == 0, out.stderr
    assert "the deploy went fine" in out.stdout and "index" not in out.stderr
    too_many = " ".join(f"from:w{i}" for i in range(5001))
    bad = persist("search", "--log-dir", str(root), too_many)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [
        "persist: bad query: too large a query: at most 5000 fields (from:, to:...)"
    ]


def test_fuzzy_is_added_by_the_exact_matches_found_not_by_the_limit(tmp_path: Path) -> None:
    """With --limit under 5 the fuzzy pass ran (and was announced) however many exact
    matches there were."""
    from tests.demo_journal import BASE_TS, DemoWriter

    root = tmp_path / "logs"
    w = DemoWriter.open(root)
    for i in range(20):
        w.message(BASE_TS + i, "bot", f"pomodoro number {i}")
    w.message(BASE_TS + 30, "bot", "two pomodoros")
    w.close()
    out = persist("search", "--log-dir", str(root), "--limit", "3", "pomodoro")
    assert out.returncode == 0, out.stderr
    assert "fuzzy" not in out.stderr and "~" not in out.stdout
    assert out.stderr.startswith("persist: 20 exact matches, 3 shown"), out.stderr
    few = persist("search", "--log-dir", str(root), "--limit", "3", "pomodoros")
    assert "fuzzy (~): pomodoros → pomodoro" in few.stderr, few.stderr


def test_a_damaged_line_that_is_not_utf8_shows_its_secret_redacted(tmp_path: Path) -> None:
    """A damaged line holding bytes that are not UTF-8 is shown decoded with replacement
    characters: its secret is redacted in search hits and CSV exports and counted by
    `has:secret`, as in a line without those bytes (before, the scan skipped it)."""
    from tests.demo_journal import BASE_TS, DemoClock, DemoWriter

    key = "sk-proj-Qw3Er4Ty5Ui6Op7As8Df9Gh0Jk1Lz2Xc3Vb4Nm5Qw6"
    root = tmp_path / "logs"
    w = DemoWriter.open(root, clock=DemoClock(BASE_TS))
    w.message(BASE_TS, "a", "first message")
    w.bad_line(b'{"v":1,"seq":2,"torn damagedword ' + key.encode() + b" \xff\xfe\n")
    w.message(BASE_TS + 1, "a", "second one")
    w.close()
    out = persist("search", "--log-dir", str(root), "--all-kinds", "damagedword")
    assert out.returncode == 0 and "damagedword" in out.stdout, out.stderr
    assert key not in out.stdout and "[REDACTED:openai-key]" in out.stdout
    has = persist("search", "--log-dir", str(root), "--all-kinds", "--json", "has:secret")
    assert orjson.loads(has.stdout)["total"] == 1, has.stderr
    csv = persist("export", "--log-dir", str(root), "--all", "--format", "csv")
    assert "damagedword" in csv.stdout, csv.stderr
    assert key not in csv.stdout and "[REDACTED:openai-key]" in csv.stdout


def test_a_typo_of_a_password_never_prints_it_as_a_fuzzy_term(tmp_path: Path) -> None:
    """A word found only inside a secret (a URL's password) is left out of the fuzzy
    vocabulary: a typo of it neither prints it on stderr nor in `--json`'s
    `fuzzy_terms` (before, both showed the password its hit redacts); ordinary words
    keep their stand-ins, a word outside a secret too in another record."""
    from tests.demo_journal import BASE_TS, DemoClock, DemoWriter

    root = tmp_path / "logs"
    w = DemoWriter.open(root, clock=DemoClock(BASE_TS))
    url = "postgres://admin:correcthorsebatterystaple@db.local/app"
    w.message(BASE_TS, "ops", f"connect with {url}")
    w.message(BASE_TS + 1, "ops", "another with postgres://root:purplemonkeydishwasher@db/x")
    w.message(BASE_TS + 2, "ops", "the word purplemonkeydishwasher said aloud")
    w.close()
    assert persist("reindex", "--log-dir", str(root)).returncode == 0
    text = persist("search", "--log-dir", str(root), "correcthorsebatterystapel")
    assert "correcthorsebatterystaple" not in text.stdout + text.stderr, text
    out = persist("search", "--log-dir", str(root), "--json", "correcthorsebatterystapel")
    assert "correcthorsebatterystaple" not in out.stdout, out.stdout
    ordinary = persist("search", "--log-dir", str(root), "--json", "conect")
    assert orjson.loads(ordinary.stdout)["fuzzy_terms"] == {"conect": ["connect"]}
    said = persist("search", "--log-dir", str(root), "--json", "purplemonkeydishwashr")
    assert orjson.loads(said.stdout)["fuzzy_terms"] == {
        "purplemonkeydishwashr": ["purplemonkeydishwasher"]
    }


def test_every_word_a_hit_shows_is_found(tmp_path: Path) -> None:
    """The index holds the text each record shows (`record_text`): every frame of a
    message of several (the fast path indexed the last one only, so `alphaword` was
    listed in `omegaword`'s hit and never found), and the tool calls of a turn whose
    text field is "" (OpenAI's `content: ""`: listed as `⚙ grepzzztool({})`, not found).
    A frame after a message's first 2,000 characters, which lists name only by count
    ("… +1 more frames"), is found too, and is in a CSV export's text cell (before
    2026-12-07 neither: the CSV held the frames up to the cut and the last one)."""
    from recorder.store.records import encode_frames
    from tests.demo_journal import BASE_TS, DemoClock, DemoWriter

    root = tmp_path / "logs"
    w = DemoWriter.open(root, clock=DemoClock(BASE_TS))
    first, last = b'{"text": "alphaword first", "sender": "c"}', b'{"text": "omegaword last"}'
    for frames in (
        [b"agents.multi", first, last],
        [b"agents.multi", b"header betaword", b"body gammaword"],
        [b"agents.long", b"x" * 2500, b"deltaword in the middle", b"last frame"],
        [
            b"agents.tools",
            orjson.dumps(
                {
                    "content": "",
                    "tool_calls": [{"function": {"name": "grepzzztool", "arguments": "{}"}}],
                }
            ),
        ],
    ):
        topic = frames[0].decode()
        w.journal.append({"kind": "msg", "ts": BASE_TS, "topic": topic}, encode_frames(frames))
    w.close()
    for word in ("alphaword", "omegaword", "betaword", "gammaword", "deltaword", "grepzzztool"):
        out = persist("search", "--log-dir", str(root), "--no-fuzzy", "--json", word)
        assert out.returncode == 0, out.stderr
        hits = orjson.loads(out.stdout)["hits"]
        assert len(hits) == 1 and word in hits[0]["snippet"], (word, out.stdout)
    out = persist("export", "--log-dir", str(root), "--all", "--format", "csv")
    assert out.returncode == 0, out.stderr
    (row,) = [r for r in csv.DictReader(io.StringIO(out.stdout)) if r["topic"] == "agents.long"]
    assert row["text"] == "x" * 2500 + " │ deltaword in the middle │ last frame"


def test_an_and_with_nothing_on_a_side_is_a_bad_query(demo: Path) -> None:
    """`persist search AND` said "empty query" and `JOIN AND` searched JOIN alone (the
    AND dropped without a word); AND is an operator as OR is, documented, and quoted
    it is the word."""
    for text in ("AND", "deploy AND"):
        out = persist("search", "--log-dir", str(demo), text)
        assert out.returncode == 2 and out.stdout == "", out.stderr
        assert out.stderr.startswith("persist: bad query: AND needs something to search for")
        assert out.stderr.count("\n") == 1, out.stderr
    both = persist("search", "--log-dir", str(demo), "--json", "--count", "deploy AND cache")
    implicit = persist("search", "--log-dir", str(demo), "--json", "--count", "deploy cache")
    assert both.returncode == 0 and orjson.loads(both.stdout)["total"] > 0, both.stderr
    assert orjson.loads(both.stdout)["total"] == orjson.loads(implicit.stdout)["total"]
    word = persist("search", "--log-dir", str(demo), "--no-fuzzy", '"AND"')
    assert word.returncode == 0, word.stderr


def test_a_word_at_the_end_of_a_long_message_is_found(tmp_path: Path) -> None:
    """A 1.26 MB message (under --max-message-mb 16): its words after the first
    1,048,576 characters were never found, with no word of it; its hit's snippet is
    cut around the match."""
    from tests.demo_journal import BASE_TS, DemoClock, DemoWriter

    root = tmp_path / "logs"
    w = DemoWriter.open(root, clock=DemoClock(BASE_TS))
    w.message(BASE_TS, "big", "headmarkerzz " + "lorem ipsum dolor " * 70000 + " tailmarkerzz")
    w.close()
    out = persist("search", "--log-dir", str(root), "--no-fuzzy", "--json", "tailmarkerzz")
    assert out.returncode == 0, out.stderr
    (hit,) = orjson.loads(out.stdout)["hits"]
    start, end, how = hit["spans"][0]
    assert hit["snippet"][start:end] == "tailmarkerzz" and how == "exact"
    assert hit["snippet"].startswith("…")


def test_stats_since_ends_now_and_names_the_messages_stamped_later(tmp_path: Path) -> None:
    """`--since 24h` counted every message newer than a day ago, those stamped days
    ahead of now too (a clock set back, a journal copied from a machine whose clock ran
    ahead). The window now ends now; the later ones are named, with the --until that
    counts them."""
    import time

    from tests.demo_journal import DemoWriter

    root = tmp_path / "logs"
    w = DemoWriter.open(root)
    now = time.time()
    for i in range(3):
        w.message(now - 3600 + i, "coder", f"within the last day {i}")
    for i in range(5):
        w.message(now + 2 * 86400 + i, "reviewer", f"stamped ahead {i}")
    w.close()
    out = persist("stats", "--log-dir", str(root), "--since", "24h")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("3 messages, "), out.stdout
    assert "reviewer" not in out.stdout
    assert "5 messages stamped after now (" in out.stderr and "not counted" in out.stderr
    until = re.search(r"--until (\S+) counts them", out.stderr)
    assert until is not None, out.stderr
    every = persist("stats", "--log-dir", str(root), "--since", "24h", "--until", until[1])
    assert every.returncode == 0 and every.stdout.startswith("8 messages, "), every.stdout
    assert "after now" not in every.stderr
    got = orjson.loads(persist("stats", "--json", "--log-dir", str(root), "--since", "24h").stdout)
    assert got["records"] == 3 and got["after_now"] == 5
    assert got["until"] is not None and abs(got["until"] - now) < 60
    whole = orjson.loads(persist("stats", "--json", "--log-dir", str(root)).stdout)
    assert whole["records"] == 8 and whole["after_now"] == 0  # no range: the whole journal
    ahead = persist("stats", "--log-dir", str(root), "--since", until[1][:10])
    assert ahead.returncode == 0 and ahead.stdout.startswith("5 messages, "), ahead.stdout


def test_a_session_changed_since_the_index_is_waited_for_though_the_journal_is_level(
    tmp_path: Path,
) -> None:
    """The index holds all of the journal, but an agent's session file gained lines
    since: while another process holds the writers' lock, the search says it waits and
    then reads the session (before this was fixed the same evening, it searched at once,
    without a word, and found nothing of the new lines)."""
    import fcntl
    import threading

    from recorder.hooks.samples import ClaudeSession
    from tests.demo_journal import BASE_TS, DemoClock, DemoWriter
    from tests.support import wait_for

    root = tmp_path / "logs"
    w = DemoWriter.open(root, clock=DemoClock(BASE_TS))
    w.message(BASE_TS, "bob", "a journal line about apples")
    w.close()
    projects = tmp_path / "claude" / "projects" / "-home-me-project"
    projects.mkdir(parents=True)
    c = ClaudeSession(session="11111111-2222-3333-4444-555555555555")
    session = projects / f"{c.session}.jsonl"
    session.write_bytes(b"".join(c.user("first words bananas") + c.assistant("ok")))
    roots = ("--claude-root", str(tmp_path / "claude"), "--gemini-root", str(tmp_path / "no"))
    roots += ("--codex-root", str(tmp_path / "no"), "--log-dir", str(root))
    first = persist("search", "bananas", *roots)
    assert first.returncode == 0 and "bananas" in first.stdout, first.stderr
    with open(session, "ab") as out:
        out.write(b"".join(c.user("later words cherries")))
    lock = os.open(root / "search" / "index.lock", os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held until this test lets go
        proc = subprocess.Popen(
            [sys.executable, "-m", "recorder.cli", "search", "cherries", *roots],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        said: list[str] = []
        reader = threading.Thread(target=lambda: said.extend(proc.stderr), daemon=True)
        reader.start()
        wait_for(lambda: said, timeout=30, what="a line while the lock is held")
        assert "another process is updating the search index: waiting" in said[0], said
        assert proc.poll() is None  # still waiting
    finally:
        os.close(lock)
    assert proc.wait(60) == 0
    reader.join(10)
    out = proc.stdout.read() if proc.stdout else ""
    assert "cherries" in out, (out, said)


def test_a_search_says_at_once_that_it_waits_for_another_writer_and_not_when_level(
    tmp_path: Path,
) -> None:
    """Another process holds the index's writers' lock (a long `persist reindex`; a
    `flock` here). An index that holds all of the journal is searched at once, without
    a word; one that lacks new records says so on stderr before it waits, and the
    summary line names the wait. Before 2026-12-07 both waited without a word, up to a
    minute, then showed the query's milliseconds alone."""
    import fcntl
    import threading

    from tests.demo_journal import BASE_TS, DemoClock, DemoWriter
    from tests.support import wait_for

    root = tmp_path / "logs"
    w = DemoWriter.open(root, clock=DemoClock(BASE_TS))
    w.message(BASE_TS, "bob", "the first zanzibar")
    w.close()
    assert persist("search", "zanzibar", "--log-dir", str(root)).returncode == 0  # indexed
    lock = os.open(root / "search" / "index.lock", os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held until this test lets go
        # level: searched at once (it waited the whole minute before: past the timeout)
        done = persist("search", "zanzibar", "--log-dir", str(root))
        assert done.returncode == 0 and "the first zanzibar" in done.stdout, done.stderr
        assert done.stderr.startswith("persist: 1 exact match, 1 shown ("), done.stderr
        assert "another process" not in done.stderr
        # a record the index lacks: said at once, then waited for
        w = DemoWriter.open(root, clock=DemoClock(BASE_TS + 1))
        w.message(BASE_TS + 1, "bob", "the second zanzibar")
        w.close()
        proc = subprocess.Popen(
            [sys.executable, "-m", "recorder.cli", "search", "zanzibar", "--log-dir", str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        said: list[str] = []
        reader = threading.Thread(target=lambda: said.extend(proc.stderr), daemon=True)
        reader.start()
        wait_for(lambda: said, timeout=30, what="a line while the lock is held")
        waiting = "another process is updating the search index: waiting for it (up to 60 s)"
        assert said == [f"persist: {waiting}...\n"]
        assert proc.poll() is None  # still waiting
    finally:
        os.close(lock)
    assert proc.wait(60) == 0
    reader.join(10)
    out = proc.stdout.read() if proc.stdout else ""
    assert "the first zanzibar" in out and "the second zanzibar" in out
    assert len(said) == 2 and said[1].startswith("persist: 2 exact matches, 2 shown ("), said
    assert "s waiting for another process's index update)" in said[1], said
