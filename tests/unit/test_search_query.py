"""The query language: words, phrases, prefixes, exclusions, OR, fields, dates, errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from recorder.search.query import (
    FieldFilter,
    Query,
    QueryError,
    Term,
    TermKind,
    find_spans,
    fts_string,
    match_spans,
    parse_query,
    parse_time,
    time_window,
    tokenize,
)

pytestmark = pytest.mark.unit
TS = datetime(2024, 5, 15, 12, 0, tzinfo=UTC).timestamp()


def q(text: str) -> Query:
    return parse_query(text, now=TS, tz=UTC)


def test_words_phrases_prefixes_and_case() -> None:
    query = q('Deploy "Schema  Migration" mig* foo-bar')
    assert query.groups == (
        (Term("deploy"),),
        (Term("schema  migration", TermKind.PHRASE),),
        (Term("mig", TermKind.PREFIX),),
        (Term("foo-bar", TermKind.PHRASE),),  # several tokens: kept together
    )
    assert query.terms == ("deploy", "schema  migration", "mig", "foo-bar")
    assert query.fts() == '"deploy" AND "schema migration" AND "mig" * AND "foo bar"'


def test_or_binds_tighter_than_and_and_exclusions() -> None:
    query = q('cache a OR b OR "c d" -slow -"very old"')
    assert [tuple(t.text for t in g) for g in query.groups] == [("cache",), ("a", "b", "c d")]
    assert [t.text for t in query.excluded] == ["slow", "very old"]
    assert query.fts() == '("cache" AND ("a" OR "b" OR "c d")) NOT ("slow" OR "very old")'
    assert q("x AND y").fts() == '"x" AND "y"'  # AND is the default, accepted
    assert q("x or y").terms == ("x", "or", "y")  # lowercase or is a word


def test_and_is_an_operator_between_anything_a_query_joins() -> None:
    """AND (upper case, as OR) joins what the query would join anyway: words, phrases,
    fields, exclusions; `x AND y OR z` is x and one of y, z. Lower case or quoted, it is
    the word. Before, an AND with nothing on a side was dropped without a word: `JOIN
    AND` searched JOIN alone and `AND` said "empty query"."""
    assert q("x AND from:a AND -y").fts() == '("x") NOT ("y")'
    assert q("x AND from:a AND -y").fields == (FieldFilter("sender", "a"),)
    assert [len(g) for g in q("x AND y OR z").groups] == [1, 2]
    assert q("since:2h AND x").terms == ("x",)
    assert q("x and y").terms == ("x", "and", "y")
    assert q('JOIN "AND"').terms == ("join", "and")


def test_fields_all_keys_negation_and_alternatives() -> None:
    query = q(
        "from:Coder sender:bob to:reviewer topic:agents.claude kind:tool_call tier:4 "
        "tag:question source:bus session:S-1 -from:ops words"
    )
    assert query.fields == (
        FieldFilter("sender", "coder"),
        FieldFilter("sender", "bob"),
        FieldFilter("recipient", "reviewer"),
        FieldFilter("topic", "agents.claude"),
        FieldFilter("kind", "tool_call"),
        FieldFilter("tier", "4"),
        FieldFilter("tag", "question"),
        FieldFilter("source", "bus"),
        FieldFilter("session", "s-1"),
        FieldFilter("sender", "ops", negated=True),
    )
    assert query.values("sender") == ("coder", "bob")
    assert query.values("sender", negated=True) == ("ops",)
    assert q('topic:"with space"').values("topic") == ("with space",)
    assert q("from:cod*").fields[0].prefix
    # Not a field: a word with a colon (URLs, paths) stays a word.
    assert q("http://example.com").terms == ("http://example.com",)


def test_dates_and_ages() -> None:
    query = q("since:2h until:11:30")
    assert query.since == TS - 7200
    assert query.until == datetime(2024, 5, 15, 11, 30, tzinfo=UTC).timestamp()
    assert q("after:2024-05-14").since == datetime(2024, 5, 14, tzinfo=UTC).timestamp()
    assert (
        q("before:2024-05-14T10:30").until == datetime(2024, 5, 14, 10, 30, tzinfo=UTC).timestamp()
    )
    # HH:MM is today's; a since: later than now is yesterday's (since 13:00 at noon), an
    # until: stays today's (until 13:00 at noon: up to an hour from now; before 2026-12-07
    # it was yesterday's, so `since:11:00 until:13:00` was an empty range)
    assert q("until:13:00").until == TS + 3600
    assert q("since:13:00").since == TS + 3600 - 86400
    both = q("since:11:00 until:13:00")
    assert (both.since, both.until) == (TS - 3600, TS + 3600)
    # and as `persist stats --since/--until` read them
    assert parse_time("13:00", TS, UTC, bound="until") == TS + 3600
    assert parse_time("13:00", TS, UTC, bound="since") == TS + 3600 - 86400
    assert q("since:3d").since == TS - 3 * 86400
    assert q("since:1w since:2d").since == TS - 2 * 86400  # the later bound wins
    assert q("since:2h").empty is False


def test_an_until_time_of_day_goes_with_a_since_time_of_day() -> None:
    """At noon, `since:13:00` is yesterday's 13:00: `until:14:00` with it is yesterday's
    hour, not the 25 hours to today's 14:00 (so on 2026-12-07, for a day, since each
    bound chose its day alone); a range over midnight ends the next day."""
    hour = q("since:13:00 until:14:00")
    assert (hour.since, hour.until) == (TS + 3600 - 86400, TS + 7200 - 86400)
    assert q("until:14:00 since:13:00").until == TS + 7200 - 86400  # in either order
    night = q("since:23:00 until:01:00")
    assert (night.since, night.until) == (TS + 11 * 3600 - 86400, TS + 13 * 3600 - 86400)
    assert q("since:2h until:14:00").until == TS + 7200  # an age: until is today's
    # and as `persist stats --since/--until` read them
    assert time_window([("since", "13:00"), ("until", "14:00")], TS, UTC) == (
        TS + 3600 - 86400,
        TS + 7200 - 86400,
    )


def test_every_iso_time_persist_prints_is_read_back() -> None:
    """CSV exports and restore summaries print milliseconds and `Z`, the TUI's --print
    `+00:00`; before 2026-12-07 `--since/--until` and `since:` refused them (exit 2)."""
    at = datetime(2024, 5, 14, 8, 0, 0, 250000, tzinfo=UTC).timestamp()
    assert q("since:2024-05-14T08:00:00.250Z").since == at
    assert q("since:2024-05-14T10:00:00.250+02:00").since == at
    assert parse_time("2024-05-14 08:00:00.25+00:00", TS, None) == at
    assert parse_time("08:00:00.250Z", TS, None, bound="since") == at + 86400


def test_a_time_ending_in_z_is_utc_whatever_the_local_zone() -> None:
    """`persist search` prints times in UTC; they read local time when typed back."""
    from datetime import timedelta, timezone

    tokyo = timezone(timedelta(hours=9))
    local = parse_query("since:2024-05-14T16:24", now=TS, tz=tokyo)
    utc = parse_query("since:2024-05-14T16:24Z", now=TS, tz=tokyo)
    assert utc.since == datetime(2024, 5, 14, 16, 24, tzinfo=UTC).timestamp()
    assert local.since == datetime(2024, 5, 14, 16, 24, tzinfo=tokyo).timestamp()
    assert parse_query("until:11:30z", now=TS, tz=tokyo).until == (
        datetime(2024, 5, 15, 11, 30, tzinfo=UTC).timestamp()
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("since:someday", "cannot read time"),
        ("from:", "needs a value (for example from:coder)"),
        ("has:", "needs a value (for example has:secret)"),
        ("topic:", "needs a value (for example topic:agents)"),
        ("since:", "needs a value (for example since:2h)"),
        ("OR cache", "OR needs a word"),
        ("cache OR", "OR needs a word"),
        ("a OR OR b", "OR needs a word"),
        ("a OR from:x", "OR joins words"),
        ("AND", "AND needs something to search for on each side"),
        ("JOIN AND", "AND needs something to search for on each side"),
        ("AND JOIN", "AND needs something to search for on each side"),
        ("a AND AND b", "AND needs something to search for on each side"),
        ("a OR AND b", "OR needs a word"),
        ("a AND OR b", "OR needs a word"),
        ("-cache", "nothing to search for besides the exclusions"),
        ("-from:coder", "nothing to search for besides the exclusions"),
        ("-source:bus -has:secret", "nothing to search for besides the exclusions"),
        pytest.param(
            " ".join(f"to:a{i}" for i in range(5001)),
            "too large a query: at most 5000 fields",
            id="5001-fields",
        ),
        ("tier:high", "not a tier number"),
        ("!!! ???", "has no letters or digits"),
        ("since:1h until:2h", "the time range is empty"),
        ("-since:2h x", "cannot be negated"),
    ],
)
def test_bad_queries_say_why_in_one_line(text: str, says: str) -> None:
    with pytest.raises(QueryError) as err:
        q(text)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_unclosed_quote_and_empty_query() -> None:
    assert q('"unclosed phr').groups == ((Term("unclosed phr", TermKind.PHRASE),),)
    assert q("").empty and q('""').empty


@pytest.mark.parametrize(
    "text",
    ['a"b', "NEAR(a b)", "a:b", "^start", "col:x", "x AND", "{body}: y", '"" x', "a*b", "*"],
)
def test_user_text_never_becomes_fts_syntax(text: str) -> None:
    """Every term reaches FTS5 as a quoted string: operators and quotes are inert."""
    try:
        expr = q(text).fts()
    except QueryError:
        return
    assert expr is not None
    import sqlite3

    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(body)")
    db.execute("INSERT INTO t VALUES ('near a b start col x body y')")
    db.execute("SELECT * FROM t WHERE t MATCH ?", (expr,)).fetchall()  # never a syntax error


def test_fts_string_and_tokenize() -> None:
    assert fts_string('say "hi"') == '"say ""hi"""'
    assert tokenize("Café_au-lait 42x") == ("cafe", "au", "lait", "42x")


def test_spans_exact_prefix_phrase_and_fuzzy() -> None:
    text = "Rolled back the Migration, retry later; migrations done"
    assert [text[s:e] for s, e in match_spans(text, q("migration retry"))] == [
        "Migration",
        "retry",
    ]
    assert [text[s:e] for s, e in match_spans(text, q("migr*"))] == ["Migration", "migrations"]
    assert [text[s:e] for s, e in match_spans(text, q('"back the migration"'))] == [
        "back the Migration"
    ]
    spans = find_spans(text, q("retyr"), frozenset({"retry"}))
    assert [(text[s.start : s.end], s.fuzzy) for s in spans] == [("retry", True)]


@example(text=":", terms=["000"])
@given(st.text(max_size=60), st.lists(st.text(min_size=1, max_size=8), max_size=3))
def test_spans_are_ordered_and_in_bounds(text: str, terms: list[str]) -> None:
    words = [t for t in terms if tokenize(t)]
    query = Query(groups=tuple((Term(w.lower()),) for w in words))
    spans = find_spans(text, query, frozenset(tokenize(" ".join(terms))))
    for s, nxt in zip(spans, [*spans[1:], None], strict=False):
        assert 0 <= s.start < s.end <= len(text)
        if nxt is not None:
            assert s.end <= nxt.start


ASCII_WORDS = st.sampled_from(["a", "ab", "retry", "Retry", "x1", "42", "migr", "migration"])
ASCII_GAPS = st.sampled_from([" ", "-", "_", ", ", "/", "\n", "'", ""])


@given(
    st.lists(st.tuples(ASCII_WORDS, ASCII_GAPS), max_size=25),
    st.lists(
        st.sampled_from(["a", "retry", "migr*", '"a a"', '"retry migration"', "x1"]),
        min_size=1,
        max_size=3,
    ),
    st.frozensets(st.sampled_from(["ab", "retry", "42"]), max_size=2),
)
def test_the_pattern_path_for_ascii_text_finds_what_the_token_path_finds(
    pieces: list[tuple[str, str]], terms: list[str], fuzzy: frozenset[str]
) -> None:
    # ASCII text goes through compiled patterns (fast); other text token by token.
    # Both must agree: same spans, same fuzzy marks.
    from recorder.search.query import _merged, _token_spans

    text = "".join(w + g for w, g in pieces)
    query = q(" ".join(terms))
    ours = find_spans(text, query, fuzzy)
    exact = tuple(
        (t.tokens, t.kind is TermKind.PREFIX) for g in query.groups for t in g if t.tokens
    )
    assert ours == _merged(_token_spans(text, exact, fuzzy))


def test_every_fields_example_is_a_value_it_accepts() -> None:
    """The example a bare `key:` is given must itself be a good query."""
    from recorder.search.query import FIELD_KEYS, TIME_KEYS, VALUE_EXAMPLES

    for key in [*FIELD_KEYS, *TIME_KEYS]:
        example = VALUE_EXAMPLES.get(FIELD_KEYS.get(key, ""), "2h")
        q(f"x {key}:{example}")
