"""Words as the index sees them: `query.tokenize` and `query.fts_text` agree with SQLite's
unicode61 tokenizer for every code point and for mixed text; Chinese, Japanese and
Korean are found by any part of a run of characters; Greek is found with or without
its accents, kana and full-width words are found at all (before, the query folded them
as SQLite does not); an index of the
previous schema is rebuilt once, and called outdated, not damaged."""

# ruff: noqa: RUF001 - full-width letters are what some of these tests are about

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from recorder.doctor.derived import search_findings
from recorder.doctor.model import Severity
from recorder.search.engine import SearchEngine, search
from recorder.search.index import SCHEMA_VERSION, SearchIndex
from recorder.search.query import fold, fts_text, match_spans, parse_query, tokenize
from recorder.search.unicode61 import FOLDS, WORD_RANGES
from recorder.store.layout import Layout
from tests.demo_journal import BASE_TS, DemoClock, DemoWriter
from tests.unicode61 import code_points, derive, module_text

pytestmark = pytest.mark.unit


class Unicode61:
    """SQLite's own tokens of a text (`unicode61 remove_diacritics 2`, as the index)."""

    def __init__(self) -> None:
        self.db = sqlite3.connect(":memory:")
        self.db.execute(
            "CREATE VIRTUAL TABLE t USING fts5 (body, tokenize='unicode61 remove_diacritics 2')"
        )
        self.db.execute("CREATE VIRTUAL TABLE v USING fts5vocab (t, instance)")

    def tokens(self, text: str) -> tuple[str, ...]:
        self.db.execute("DELETE FROM t")
        self.db.execute("INSERT INTO t (rowid, body) VALUES (1, ?)", (text,))
        return tuple(term for (term,) in self.db.execute("SELECT term FROM v ORDER BY offset"))


def test_the_tables_are_what_this_sqlite_does_with_every_code_point() -> None:
    words, folds = derive(code_points())
    text = module_text(words, folds)
    generated: dict[str, str] = {}
    exec(text.split('"""', 2)[2], generated)  # the tables alone, not the docstring's version
    assert generated["WORD_RANGES"] == WORD_RANGES, "regenerate: python -m tests.unicode61"
    assert generated["FOLDS"] == FOLDS, "regenerate: python -m tests.unicode61"


SAMPLES = [
    ("がっこう", ("が", "っ", "こ", "う")),  # voicing marks stay, as in SQLite
    ("ｶﾞｯｺｳ", ("ｶ", "ﾞ", "ｯ", "ｺ", "ｳ")),
    ("ＡＢＣ１２３", ("ａｂｃ１２３",)),  # full-width: case folded, not narrowed
    ("café Ǆ", ("cafe", "ǆ")),
    ("漢字漢字", ("漢", "字", "漢", "字")),
    ("학교에서", ("학", "교", "에", "서")),
    ("καλημέρα Κόσμε", ("καλημερα", "κοσμε")),  # Greek without its accents (schema 5)
    ("ΛΌΓΟΣ λόγος ἄνθρωπος ᾠδή Ϊ", ("λογοσ", "λογοσ", "ανθρωποσ", "ωδη", "ι")),
    ("İstanbul ÅNGSTRÖM", ("istanbul", "angstrom")),
    ("abc漢字def", ("abc", "漢", "字", "def")),
    ("a\u0301 \u0301 b", ("a", "b")),  # a diacritic alone makes no word
    ("ﬁle x²", ("ﬁle", "x²")),
]


@pytest.mark.parametrize(("text", "tokens"), SAMPLES)
def test_tokens_of_samples_are_sqlites(text: str, tokens: tuple[str, ...]) -> None:
    assert tokenize(text) == tokens
    assert Unicode61().tokens(fts_text(text)) == tokens


def test_tokens_of_mixed_random_text_are_sqlites() -> None:
    """Runs of letters of many scripts, marks, symbols and spaces: the query side and
    the index side never disagree, and highlights cover exactly the tokens."""
    blocks = [
        (0x20, 0x250),
        (0x300, 0x370),
        (0x370, 0x500),
        (0x1F00, 0x2000),  # polytonic Greek
        (0x3040, 0x3100),
        (0x4E00, 0x4E40),
        (0xAC00, 0xAC40),
        (0xFF00, 0xFFEF),
        (0x1F600, 0x1F650),
        (0x20000, 0x20010),
    ]
    pool = [chr(c) for lo, hi in blocks for c in range(lo, hi)] + [" "] * 40
    rng = random.Random(7)
    sqlite = Unicode61()
    for _ in range(3000):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(1, 24)))
        assert sqlite.tokens(fts_text(text)) == tokenize(text), repr(text)


def test_fold_is_idempotent() -> None:
    for pair in FOLDS.split():
        once = fold(chr(int(pair.partition(">")[0], 16)))
        assert fold(once) == once, pair


def journal_of(root: Path, texts: list[str]) -> Path:
    w = DemoWriter.open(root, clock=DemoClock(BASE_TS))
    for i, text in enumerate(texts):
        w.message(BASE_TS + i, "alice", text)
    w.close()
    return root


TEXTS = [
    "漢字漢字の練習をしました",
    "学校で勉強します",
    "저는 학교에서 공부합니다",
    "καλημέρα κόσμε",
    "ＦＵＬＬ width ｗｏｒｄｓ",
    "plain english about schools",
]


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("漢字", [0]),  # a part of a longer run
        ("練習", [0]),
        ("学校", [1]),
        ("勉強", [1]),
        ("学", [1]),
        ("学校で", [1]),
        ("校学", []),  # the characters must follow one another
        ("학교", [2]),  # Korean: the word without its particle
        ("공부", [2]),
        ("καλημέρα", [3]),
        ("ΚΑΛΗΜΈΡΑ", [3]),
        ("καλημερα", [3]),  # as Greek is often typed: without its accents
        ("ΚΑΛΗΜΕΡΑ", [3]),
        ('"κόσμε"', [3]),
        ("ｆｕｌｌ", [4]),
        ("ＷＩＤＴＨ", []),  # full-width is not ASCII: width is another word
        ("width", [4]),
        ("school*", [5]),
    ],
)
def test_search_finds_words_of_every_script(tmp_path: Path, query: str, found: list[int]) -> None:
    root = journal_of(tmp_path / "logs", TEXTS)
    hits = search(root, query, limit=20).hits
    assert sorted(TEXTS.index(h.snippet) for h in hits) == found
    want = tokenize(query.rstrip("*"))
    for hit in hits:  # each highlight marks the query's words (once, or more in a row)
        assert hit.spans
        for span in hit.spans:
            marked = tokenize(hit.snippet[span.start : span.end])
            if query.endswith("*"):
                assert marked[0].startswith(want[0]), marked
            else:
                assert marked == want * (len(marked) // len(want)), marked


def test_highlights_in_cjk_text() -> None:
    assert match_spans("漢字漢字の練習", parse_query("漢字")) == [(0, 2), (2, 4)]
    assert match_spans("저는 학교에서 공부", parse_query("학교")) == [(3, 5)]
    assert match_spans("Καλημέρα κόσμε", parse_query("καλημέρα")) == [(0, 8)]
    assert match_spans("Καλημέρα κόσμε", parse_query("ΚΟΣΜΕ")) == [(9, 14)]


def test_an_index_of_the_previous_schema_is_rebuilt_and_called_outdated(tmp_path: Path) -> None:
    root = journal_of(tmp_path / "logs", TEXTS)
    assert [h.snippet for h in search(root, "学校").hits] == [TEXTS[1]]
    with SearchIndex(root, writable=True) as index, index.transaction() as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION - 1,))
    [finding] = search_findings(Layout(root), "")
    assert finding.check == "search.outdated" and finding.severity is Severity.WARNING
    assert f"earlier version of agent-persist (schema {SCHEMA_VERSION - 1}" in finding.summary
    with SearchEngine(root) as engine:
        done = engine.catch_up()
    assert done.rebuilt is not None and done.rebuilt.startswith("the index was made by an earlier")
    assert [h.snippet for h in search(root, "学校").hits] == [TEXTS[1]]
    [finding] = search_findings(Layout(root), "")
    assert finding.severity is Severity.OK, finding
