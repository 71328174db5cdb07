"""`has:secret`: the index counts each record's secrets as every reader finds them (the
recorder's scan where it did one in full, else a scan now), so the filter finds a
secret the recorder named, one in a record it left unscanned behind a flood, one past
its scan budget, one in a damaged line and one in an agent's session."""

from __future__ import annotations

import random
import re
from pathlib import Path

import orjson
import pytest

from recorder.daemon.core import Recorder
from recorder.daemon.options import RecorderOptions
from recorder.export.redact import record_secrets
from recorder.search.engine import search
from recorder.search.index import SearchIndex
from recorder.search.indexer import journal_document, journal_row
from recorder.search.query import QueryError, parse_query
from recorder.sources.discover import Roots
from recorder.store import secrets as S
from recorder.store.layout import Layout
from recorder.store.reader import open_store
from tests.secret_samples import make
from tests.session_fixtures import ClaudeSession, text

RND = random.Random(5)
AWS, OPENAI, GOOGLE, GITHUB = (make(k, RND).secret for k in (S.AWS, S.OPENAI, S.GOOGLE, S.GITHUB))


def _payload(words: str) -> list[bytes]:
    return [b"agents.ops", orjson.dumps({"text": words, "sender": "coder"})]


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    """Messages with and without secrets, written by the real recorder: scanned in full,
    left unscanned behind a flood, and over a small scan budget; then a damaged line."""
    root = tmp_path / "logs"
    rec = Recorder(
        RecorderOptions(log_dir=root, fsync="never", search_index=False, secret_scan_bytes=1024)
    )
    rec.open()
    rec.record_batch(
        1.0,
        [
            _payload(f"quarry key {AWS} for the deploy"),
            _payload("quarry notes, nothing secret: sk-learn and risk-free defaults"),
        ],
    )
    rec.record_batch(
        2.0, [_payload(f"quarry flood {OPENAI}"), _payload("quarry flood")], behind=True
    )
    rec.record_batch(3.0, [_payload("quarry " + "word " * 400 + GOOGLE)])  # past the budget
    rec.close()
    segment = sorted(Layout(root).segments.glob("seg-*.jsonl"))[-1]
    with open(segment, "ab") as f:
        f.write(b"torn quarry line token " + GITHUB.encode() + b"\n")
    return root


def test_the_recorder_left_each_kind_of_record_we_mean(journal: Path) -> None:
    metas = [
        r.get("meta") for r in open_store(journal).records() if r.kind == "msg"
    ]  # the fixture's premises: one named, one clean, two unscanned, one capped
    assert [len(m.get("secrets", ())) for m in metas[:2]] == [1, 0]
    assert [("secrets" in m) for m in metas[2:4]] == [False, False]
    assert metas[4].get("secrets_capped") is True and "secrets" not in metas[4]


def test_the_index_counts_what_readers_find(journal: Path) -> None:
    search(journal, "quarry")  # builds the index
    records = list(open_store(journal).records())
    want = [len(record_secrets(r)) for r in records]
    assert records[-1].data is None and want[-1] == 1  # a damaged line counts too
    with SearchIndex(journal) as index:
        got = [n for (n,) in index.query("SELECT secrets FROM docs ORDER BY id")]
    assert got == want
    assert sum(got) == 4


def test_has_secret_finds_every_one_and_only_those(journal: Path) -> None:
    def texts(query: str) -> list[str]:
        return sorted(h.snippet for h in search(journal, query, all_kinds=True).hits)

    found = texts("has:secret quarry")
    assert len(found) == 4
    assert all(any(k in t for k in ("key", "flood", "word", "torn")) for t in found)
    assert texts("has:secrets quarry") == found  # the plural too
    clean = texts("-has:secret quarry")
    assert len(clean) == 2 and not set(clean) & set(found)
    assert [h.sender for h in search(journal, "has:secret deploy").hits] == ["coder"]


def test_no_snippet_shows_a_secret(journal: Path) -> None:
    """A hit's text is shown redacted, as the TUI's rows show it (`has:secret` would
    otherwise print every secret of the journal)."""
    hits = search(journal, "has:secret", all_kinds=True).hits
    snippets = " ".join(h.snippet for h in hits)
    assert not any(key in snippets for key in (AWS, OPENAI, GITHUB))
    assert f"[REDACTED:{S.AWS}]" in snippets and f"[REDACTED:{S.OPENAI}]" in snippets
    assert f"[REDACTED:{S.GITHUB}]" in snippets  # the damaged line
    (flood,) = search(journal, "flood has:secret").hits  # the match is still found
    first = flood.spans[0]
    assert flood.snippet[first.start : first.end].lower() == "flood"


def test_no_highlight_lands_in_a_placeholder(journal: Path) -> None:
    """`key` is a word of `[REDACTED:aws-access-key-id]`, not of the message: only the
    message's own `key` is highlighted."""
    (hit,) = search(journal, "key deploy").hits
    assert f"quarry key [REDACTED:{S.AWS}] for the deploy" in hit.snippet
    shown = [hit.snippet[s.start : s.end] for s in hit.spans]
    assert shown == ["key", "deploy"]
    placeholder = hit.snippet.index("[REDACTED:")
    assert all(s.end <= placeholder or s.start >= hit.snippet.index("]") for s in hit.spans)
    (torn,) = search(journal, "torn token", all_kinds=True).hits  # redacted at reading
    assert [torn.snippet[s.start : s.end] for s in torn.spans] == ["torn", "token"]


@pytest.mark.parametrize("text", ["has:keys", "has:", "has:secret*"])
def test_anything_else_after_has_is_a_clear_error(text: str) -> None:
    with pytest.raises(QueryError) as err:
        parse_query(text)
    assert "\n" not in str(err.value) and "has:" in str(err.value)


def test_the_fast_row_counts_like_the_document(journal: Path) -> None:
    store = open_store(journal)
    for r in store.records():
        doc = journal_document(r.line, r.segment, r.offset)
        assert journal_row(r.line, r.segment, r.offset) == (doc.row(), doc.text)


def test_a_secret_in_an_agent_session_is_found(tmp_path: Path) -> None:
    log = tmp_path / "logs"
    Recorder(RecorderOptions(log_dir=log, fsync="never", search_index=False)).open()
    session = ClaudeSession(tmp_path / "claude")
    session.user(f"deploy with {AWS} please")
    session.assistant(text("done, the quarry is deployed"))
    session.write()
    roots = Roots(tmp_path / "claude", tmp_path / "gemini", tmp_path / "codex")
    hits = search(log, "has:secret", roots=roots).hits
    assert [(h.source, h.sender) for h in hits] == [("claude", "user")]
    assert AWS not in hits[0].snippet and f"[REDACTED:{S.AWS}]" in hits[0].snippet
    assert [h.sender for h in search(log, "-has:secret quarry", roots=roots).hits] == ["assistant"]


def test_a_secret_past_the_first_mebibyte_never_shows_in_a_snippet(tmp_path: Path) -> None:
    """A snippet is cut where the match is: a record the index counted a secret in is
    scanned in full before its text is shown, however long it is. (Its first million
    characters are indexed: in three-byte characters they end well past 1 MiB.)"""
    root = tmp_path / "logs"
    rec = Recorder(RecorderOptions(log_dir=root, fsync="never", search_index=False))
    rec.open()
    filler = "漢字 " * 170_000  # 510,000 characters, 1.19 MB: past SHOWN_SCAN_BYTES
    long_text = f"{filler} zephyr uses {AWS} today"
    rec.record_batch(1.0, [_payload(long_text)], behind=True)  # left unscanned
    rec.close()
    (only,) = [r for r in open_store(root).records() if r.kind == "msg"]
    assert "secrets" not in only.get("meta", {})  # the premise: the recorder named none
    assert only.line.index(b"zephyr") > 1 << 20
    (hit,) = search(root, "zephyr").hits
    assert "zephyr" in hit.snippet and AWS not in hit.snippet
    assert f"[REDACTED:{S.AWS}]" in hit.snippet


@pytest.mark.parametrize("word", ["lorem ", "漢字 "])
def test_a_word_past_the_first_million_characters_is_found_and_shown(
    tmp_path: Path, word: str
) -> None:
    """A message's whole text is indexed (its first 1,048,576 characters were: a word
    after them, well under --max-message-mb, was never found, with no word of it), and
    the hit's snippet is cut around that word, its secrets redacted: the text read for a
    hit is a window around its first match, not its first million characters."""
    root = tmp_path / "logs"
    rec = Recorder(RecorderOptions(log_dir=root, fsync="never", search_index=False))
    rec.open()
    filler = word * (1_300_000 // len(word))  # 1.3 M characters
    long_text = f"headmarkerzz {filler} tailmarkerzz uses {AWS} today"
    rec.record_batch(1.0, [_payload(long_text)], behind=True)  # left unscanned
    rec.record_batch(2.0, [_payload("a short one, tailmarkerzz too")], behind=True)
    rec.close()
    assert long_text.index("tailmarkerzz") > 1 << 20
    hits = {h.seq: h for h in search(root, "tailmarkerzz", fuzzy=False).hits}
    assert len(hits) == 2, hits
    hit = hits[min(hits)]
    assert hit.snippet.startswith("…") and "headmarkerzz" not in hit.snippet
    assert [hit.snippet[s.start : s.end] for s in hit.spans] == ["tailmarkerzz"], hit.snippet
    assert AWS not in hit.snippet and f"[REDACTED:{S.AWS}]" in hit.snippet
    (head,) = search(root, "headmarkerzz", fuzzy=False).hits
    assert head.snippet.startswith("headmarkerzz")
    assert [h.seq for h in search(root, '"tailmarkerzz uses" today', fuzzy=False).hits] == [
        min(hits)
    ]


def test_a_long_texts_window_holds_its_first_match_wherever_it_falls() -> None:
    """The window a long hit is shown in holds its first match whole (a phrase across
    the end of one window of the search too), and starts where a word does."""
    from recorder.search.engine import NEAR_MATCH_CHARS, SHOWN_CHARS, _window

    query = parse_query('"zebra quagga" OR agga*')
    for at in (0, 4, SHOWN_CHARS - 8, SHOWN_CHARS - NEAR_MATCH_CHARS - 3, 3 * SHOWN_CHARS + 1):
        text = "xy " * (at // 3) + "zebra quagga " + "yz " * (SHOWN_CHARS // 2)
        window = _window(text, query, frozenset())
        assert len(window) == SHOWN_CHARS and window in text, at
        assert "zebra quagga" in window and window[:2] in ("xy", "ze"), (at, window[:9])
    spaced = "xy " * SHOWN_CHARS
    assert _window(spaced, query, frozenset()) == spaced[:SHOWN_CHARS]  # no match: its start
    assert "quagg" in _window(spaced + "quagg", query, frozenset({"quagg"}))  # a stand-in


def test_spans_in_placeholders_are_dropped_as_a_pass_over_all_would_drop_them() -> None:
    """The check compared every match with every placeholder (a message quoting 20,000
    placeholders took 17 s to highlight); one bisect a match now, the same answer."""
    import random

    from recorder.search.query import Span, _outside_placeholders

    rng = random.Random(5)
    pieces = ["[REDACTED:api-key]", "token", " ", "key", "[REDACTED:github-token]", "x"]
    for _ in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 30)))
        ends = sorted(sorted(rng.sample(range(len(text) + 1), 2)) for _ in range(8))
        spans = [Span(a, b) for a, b in ends]
        holes = [(m.start(), m.end()) for m in re.finditer(r"\[REDACTED:[a-z0-9-]+\]", text)]
        brute = [s for s in spans if not any(s.start < e and b < s.end for b, e in holes)]
        assert _outside_placeholders(text, spans) == brute, (text, spans)
