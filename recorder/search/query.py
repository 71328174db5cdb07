"""The search query language: one parser for every surface, and match spans.

    words             every word must match (AND)
    "exact phrase"    the words together, in this order
    prefix*           any word starting with `prefix`
    -word, -"phrase"  leave out records that match
    a OR b            either (binds tighter than the implicit AND: `x a OR b` = x AND (a OR b))
    a AND b           both, as `a b` (upper case, as OR; `and`, `or`, `"AND"` are words)
    from:/sender:NAME to:NAME topic:T kind:K tier:N tag:T source:S session:ID has:secret
    after:/since:WHEN before:/until:WHEN   (2024-05-14, 2024-05-14T10:30, 10:30, 2h, 3d)

Field values match case-insensitively and whole (`from:cod*` for a prefix; a topic
also matches its dotted children, `topic:agents` matches `agents.claude`). Repeated
values of one field are alternatives (`from:a from:b`), different fields all apply,
`-from:a` leaves a field value out. A query that cannot be understood raises
`QueryError` (one line saying why); user text reaches FTS5 only as quoted strings
(`fts_string`), never as query syntax.

Just over 400 lines: the tokenizer, the parser and the match spans must agree on
every term, so they stay in one module.
"""

from __future__ import annotations

import bisect
import functools
import re
import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import Enum

from recorder.errors import BadOption
from recorder.search.unicode61 import FOLDS, WORD_RANGES

_AGE_RE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_SURROGATE = re.compile("[\ud800-\udfff]")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Scripts written without spaces between words (Chinese, Japanese, Korean): each of
# their characters is a word of its own, in the index (`fts_text`) as in queries, so
# that any part of a run is found (`漢字` in `漢字漢字`, `학교` in `학교에서`).
SPLIT_RANGES = (
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3100, 0x318F),  # Bopomofo, Hangul compatibility Jamo
    (0x31A0, 0x31BF),  # Bopomofo extended
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xA960, 0xA97F),  # Hangul Jamo extended A
    (0xAC00, 0xD7FF),  # Hangul syllables, Jamo extended B
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFFDC),  # halfwidth Katakana and Hangul
    (0x1B000, 0x1B16F),  # Kana supplement and extensions
    (0x20000, 0x323AF),  # CJK extensions B-H, compatibility supplement
)

FIELD_KEYS = {
    "from": "sender",
    "sender": "sender",
    "to": "recipient",
    "topic": "topic",
    "kind": "kind",
    "tier": "tier",
    "tag": "tag",
    "source": "source",
    "session": "session",
    "has": "has",
}
# what `key:` alone is told to look like (time keys: 2h)
VALUE_EXAMPLES = {
    "sender": "coder",
    "recipient": "reviewer",
    "topic": "agents",
    "kind": "error",
    "tier": "3",
    "tag": "deploy",
    "source": "claude",
    "session": "3f2a",
    "has": "secret",
}
HAS_VALUES = ("secret",)  # `has:secret` (also `has:secrets`): records holding one
SOURCES = ("bus", "claude", "gemini", "codex")  # the journal, then `recorder.sources.Source`
TIME_KEYS = {"after": "since", "since": "since", "before": "until", "until": "until"}
MAX_FIELDS = 5000
"""Field filters a query may hold: each is up to two SQL parameters, and the query's
filters are given twice (`SearchEngine._ranked`): within SQLite's 32766."""


class QueryError(BadOption):
    """A query that cannot be understood; the message says why in one line (exit 2)."""


class TermKind(Enum):
    WORD = "word"
    PHRASE = "phrase"
    PREFIX = "prefix"


@dataclass(frozen=True)
class Term:
    """One word, phrase or prefix as typed (lowercased), with its FTS tokens."""

    text: str
    kind: TermKind = TermKind.WORD

    @property
    def tokens(self) -> tuple[str, ...]:
        return tokenize(self.text)

    def fts(self) -> str:
        """This term as an FTS5 expression: always a quoted string (plus `*`)."""
        quoted = fts_string(" ".join(self.tokens))
        return quoted + " *" if self.kind is TermKind.PREFIX else quoted


@dataclass(frozen=True)
class FieldFilter:
    """`key:value` (key is the canonical field: sender, topic, ...)."""

    key: str
    value: str
    negated: bool = False

    @property
    def prefix(self) -> bool:
        return self.value.endswith("*")


@dataclass(frozen=True)
class Query:
    """A parsed search: groups of terms (AND of ORs), exclusions, fields, a time range."""

    text: str = ""
    groups: tuple[tuple[Term, ...], ...] = ()
    excluded: tuple[Term, ...] = ()
    fields: tuple[FieldFilter, ...] = ()
    since: float | None = None
    until: float | None = None
    fuzzy: bool = True

    @property
    def terms(self) -> tuple[str, ...]:
        """Every positive word and phrase (lowercase), for highlighting."""
        return tuple(t.text for group in self.groups for t in group)

    @property
    def empty(self) -> bool:
        return not (self.groups or self.fields or self.since or self.until or self.excluded)

    def values(self, key: str, *, negated: bool = False) -> tuple[str, ...]:
        return tuple(f.value for f in self.fields if f.key == key and f.negated == negated)

    def fts(self) -> str | None:
        """The whole text part as one FTS5 MATCH expression (None: no words)."""
        if not self.groups:
            return None
        parts = []
        for group in self.groups:
            if len(group) == 1:
                parts.append(group[0].fts())
            else:
                parts.append("(" + " OR ".join(t.fts() for t in group) + ")")
        expr = " AND ".join(parts)
        if self.excluded:
            expr = f"({expr}) NOT (" + " OR ".join(t.fts() for t in self.excluded) + ")"
        return expr

    def excluded_fts(self) -> str | None:
        if not self.excluded:
            return None
        return " OR ".join(t.fts() for t in self.excluded)


def fts_string(text: str) -> str:
    """`text` as an FTS5 string literal: quoted, inner quotes doubled (never syntax)."""
    return '"' + text.replace('"', '""') + '"'


def _parse_ranges(text: str) -> list[tuple[int, int]]:
    return [(int(a, 16), int(b, 16)) for a, _, b in (r.partition("-") for r in text.split())]


def _without(
    ranges: list[tuple[int, int]], cut: tuple[tuple[int, int], ...]
) -> list[tuple[int, int]]:
    """`ranges` less every code point of `cut` (both ascending, inclusive)."""
    out = []
    for lo, hi in ranges:
        for a, b in cut:
            if b < lo or a > hi:
                continue
            if a > lo:
                out.append((lo, a - 1))
            lo = b + 1
            if lo > hi:
                break
        if lo <= hi:
            out.append((lo, hi))
    return out


def _within(
    ranges: list[tuple[int, int]], keep: tuple[tuple[int, int], ...]
) -> list[tuple[int, int]]:
    """The code points of `ranges` that are also in `keep`."""
    return [(max(lo, a), min(hi, b)) for lo, hi in ranges for a, b in keep if a <= hi and b >= lo]


def _char_class(ranges: list[tuple[int, int]]) -> str:
    return "[" + "".join(f"\\U{lo:08X}-\\U{hi:08X}" for lo, hi in ranges) + "]"


@dataclass(frozen=True)
class _Words:
    """The tables of `unicode61` made into what tokenizing uses; made once, at the first
    text that is not ASCII or the first tokenizing (compiling them takes about 10 ms)."""

    token: re.Pattern[str]  # a character of SPLIT_RANGES alone, or a run of other word parts
    split: re.Pattern[str]  # a run of characters of SPLIT_RANGES that are parts of words
    greek: dict[int, str]  # for str.translate: a Greek letter as the index is given it
    folds: dict[int, str | None]  # for str.translate: what a part of a word folds to


def _greek_letters(words: list[tuple[int, int]]) -> dict[int, str]:
    """Greek letters with an accent, a breathing, a diaeresis or an iota subscript
    (monotonic and polytonic) as the plain small letter, and final sigma as sigma.
    SQLite's unicode61 keeps them, and Greek is typed without its accents as often as
    with them (and in capitals, where a final sigma is Σ): `καλημερα` and `ΛΟΓΟΣ` would
    never find `καλημέρα` and `λόγος`. Only parts of words, each to a part of a word,
    so that no word boundary moves."""
    letters = {0x03C2: "\u03c3"}  # final sigma: sigma
    for lo, hi in _within(words, ((0x0370, 0x03FF), (0x1F00, 0x1FFF))):
        for cp in range(lo, hi + 1):
            parts = unicodedata.normalize("NFD", chr(cp))
            base = parts[0].lower()
            if parts != chr(cp) and "\u03b1" <= base <= "\u03c9":  # alpha to omega
                letters[cp] = base
    return letters


@functools.cache
def _words() -> _Words:
    words = _parse_ranges(WORD_RANGES)
    split = _char_class(_within(words, SPLIT_RANGES))
    greek = _greek_letters(words)
    folds: dict[int, str | None] = {
        int(c, 16): chr(int(f, 16)) if f else None
        for c, _, f in (pair.partition(">") for pair in FOLDS.split())
    }
    for cp, folded in list(folds.items()):  # what SQLite folds to a Greek letter, folded on
        if folded is not None and ord(folded) in greek:
            folds[cp] = greek[ord(folded)]
    for cp, letter in greek.items():
        folds.setdefault(cp, letter)
    return _Words(
        token=re.compile(f"{split}|{_char_class(_without(words, SPLIT_RANGES))}+"),
        split=re.compile(split + "+"),
        greek=greek,
        folds=folds,
    )


def fold(text: str) -> str:
    """Lowercase and without the diacritics the index's tokenizer drops: each code
    point as SQLite's unicode61 (remove_diacritics 2) folds it, and Greek letters
    without their accents (`_greek_letters`, as `fts_text` gives them to the index);
    nothing more (kana voicing marks and full-width letters stay, as there)."""
    return text.lower() if text.isascii() else text.translate(_words().folds)


def tokenize(text: str) -> tuple[str, ...]:
    """The index's tokens of `text` (parts of words, folded)."""
    return tuple(t for t in _words().token.findall(fold(text)) if t)


def fts_text(text: str) -> str:
    """`text` as the full-text index is given it (and, to delete it, given it again):
    each character of SPLIT_RANGES set apart by spaces, and Greek letters without their
    accents, which is how `tokenize` sees it. ASCII text pays nothing, other text a
    regex pass, Greek text a `translate` too (about 0.15 µs a character in all)."""
    if text.isascii():
        return text
    words = _words()
    text = words.split.sub(_spaced, text)
    return text.translate(words.greek) if _may_hold_greek(text) else text


def _spaced(run: re.Match[str]) -> str:
    return " " + " ".join(run.group()) + " "  # one call a run, not one a character


# The UTF-8 lead bytes of U+0340-03FF and U+1F00-1FFF, where every letter `_greek_letters`
# folds is; memchr-fast tests, where a regex looking for them takes 15 ns a character.
_GREEK_LEADS = (b"\xcd", b"\xce", b"\xcf", b"\xe1\xbc", b"\xe1\xbd", b"\xe1\xbe", b"\xe1\xbf")


def _may_hold_greek(text: str) -> bool:
    raw = text.encode("utf-8", "surrogatepass")
    return any(lead in raw for lead in _GREEK_LEADS)


def parse_time(value: str, now: float, tz: tzinfo | None = None, *, bound: str = "since") -> float:
    """`2024-05-14`, `2024-05-14T10:30[:00]`, `10:30` (today) or an age (`2h`). A time of
    day later than now is today's for an `until` bound, yesterday's for a `since` one."""
    try:
        return _parse_time(value, now, tz, bound)
    except QueryError:
        raise
    except (ValueError, OverflowError):  # a date the clock cannot hold (year 1 in UTC-x)
        raise QueryError(f"time {value!r} is out of range") from None


def _parse_time(value: str, now: float, tz: tzinfo | None, bound: str) -> float:
    m = _AGE_RE.match(value.lower())
    if m:
        if value.endswith("M"):  # as `persist prune` refuses it
            raise QueryError(f"time {value!r}: M could be minutes or months; use m or d")
        return now - float(m.group(1)) * _AGE_UNITS[m.group(2)]
    if _DATE_RE.match(value):
        # every ISO 8601 form persist prints: `T` or a space, seconds' fractions (CSV
        # exports, restore summaries), `Z` (search, checkpoints) or `+00:00` (the TUI's
        # --print); before 2026-12-07 fractions and offsets were refused
        try:
            dt = datetime.fromisoformat(value[:-1] + "Z" if value[-1:] == "z" else value)
        except ValueError:
            pass
        else:
            if dt.tzinfo is None and tz is not None:
                dt = dt.replace(tzinfo=tz)
            return dt.timestamp()
    found = _time_of_day(value, tz)
    if found is not None:
        clock, tz = found
        today = datetime.fromtimestamp(now, tz)
        dt = today.replace(hour=clock.hour, minute=clock.minute, second=clock.second)
        dt = dt.replace(microsecond=clock.microsecond)
        if bound == "since" and dt.timestamp() > now:  # since 23:00, just after midnight
            dt -= timedelta(days=1)
        return dt.timestamp()
    raise QueryError(f"cannot read time {value!r} (try 2024-05-14, 10:30 or 2h)")


_DATE_RE = re.compile(r"\A\d{4}-\d\d-\d\d(?:[T ]|\Z)")


def _time_of_day(value: str, tz: tzinfo | None) -> tuple[datetime, tzinfo | None] | None:
    """`HH:MM[:SS[.ffffff]]` as a datetime (its date meaningless) and the zone it is in:
    `tz`, or UTC when it ends in `Z`; None for anything else."""
    if value[-1:] in ("Z", "z"):
        value, tz = value[:-1], UTC
    for fmt in ("%H:%M:%S.%f", "%H:%M:%S", "%H:%M"):
        try:
            return datetime.strptime(value, fmt), tz
        except ValueError:
            continue
    return None


def time_window(
    bounds: list[tuple[str, str]], now: float, tz: tzinfo | None = None
) -> tuple[float | None, float | None]:
    """(since, until) from `(bound, text)` pairs ("since" or "until"): the latest since
    and the earliest until, each read by `parse_time`, except that an `until` time of
    day given with a `since` time of day is the first such time after that since: at
    09:00, `since 13:00 until 14:00` is yesterday's hour (since 13:00 is yesterday's),
    not the 25 hours to today's 14:00, and `since 23:00 until 01:00` runs past midnight."""
    since: float | None = None
    since_clock = False
    for bound, text in bounds:
        if bound == "since":
            when = parse_time(text, now, tz, bound="since")
            if since is None or when >= since:
                since, since_clock = when, _time_of_day(text, tz) is not None
    until: float | None = None
    for bound, text in bounds:
        if bound != "since":
            clock = _time_of_day(text, tz)
            if since is not None and since_clock and clock is not None:
                when = _first_after(*clock, since)
            else:
                when = parse_time(text, now, tz, bound="until")
            until = when if until is None else min(until, when)
    return since, until


def _first_after(clock: datetime, tz: tzinfo | None, since: float) -> float:
    """The first time `clock` (a time of day) comes after `since`."""
    start = datetime.fromtimestamp(since, tz)
    dt = start.replace(
        hour=clock.hour, minute=clock.minute, second=clock.second, microsecond=clock.microsecond
    )
    if dt.timestamp() <= since:
        dt += timedelta(days=1)
    return dt.timestamp()


@dataclass
class _Piece:
    """One whitespace-separated piece of the query, quotes resolved."""

    text: str
    quoted: bool = False
    negated: bool = False
    key: str = ""  # `key:` before the value, when there was one


def _pieces(text: str) -> list[_Piece]:
    """Split on whitespace outside quotes; an unclosed quote runs to the end."""
    out: list[_Piece] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        piece = _Piece("")
        if text[i] == "-" and i + 1 < n and not text[i + 1].isspace():
            piece.negated = True
            i += 1
        m = re.match(r"([A-Za-z]+):", text[i:])
        if m and m.group(1).lower() in FIELD_KEYS.keys() | TIME_KEYS.keys():
            piece.key = m.group(1).lower()
            i += m.end()
        if i < n and text[i] == '"':
            end = text.find('"', i + 1)
            end = n if end < 0 else end
            piece.text, piece.quoted = text[i + 1 : end], True
            i = end + 1
        else:
            start = i
            while i < n and not text[i].isspace():
                i += 1
            piece.text = text[start:i]
        out.append(piece)
    return out


_AND_ALONE = (
    "AND needs something to search for on each side (a word, phrase or field; "
    'quote it for the word: "AND")'
)


def parse_query(
    text: str, *, now: float | None = None, fuzzy: bool = True, tz: tzinfo | None = None
) -> Query:
    """Parse `text` (see the module docstring); raises QueryError saying what is wrong."""
    now = time.time() if now is None else now
    bounds: list[tuple[str, str]] = []  # (since/until, the time as typed), in order
    groups: list[list[Term]] = []
    excluded: list[Term] = []
    fields: list[FieldFilter] = []
    since = until = None
    pending_or = pending_and = False
    for piece in _pieces(text):
        operator = not (piece.quoted or piece.key or piece.negated)
        if piece.text == "OR" and operator:
            if not groups or pending_or or pending_and:
                raise QueryError("OR needs a word or phrase on each side")
            pending_or = True
            continue
        if piece.text == "AND" and operator:  # the default, said out loud
            if pending_or:
                raise QueryError("OR needs a word or phrase on each side")
            something = groups or excluded or fields or since is not None or until is not None
            if pending_and or not something:
                raise QueryError(_AND_ALONE)
            pending_and = True
            continue
        pending_and = False
        if piece.key:
            if pending_or:
                raise QueryError(f"OR joins words or phrases, not {piece.key}: (repeat the field)")
            if not piece.text:
                example = VALUE_EXAMPLES.get(FIELD_KEYS.get(piece.key, ""), "2h")
                raise QueryError(f"{piece.key}: needs a value (for example {piece.key}:{example})")
            if piece.key in TIME_KEYS:
                if piece.negated:
                    raise QueryError(f"-{piece.key}: cannot be negated (use the other bound)")
                bounds.append((TIME_KEYS[piece.key], piece.text))
                since, until = time_window(bounds, now, tz)
                continue
            key = FIELD_KEYS[piece.key]
            value = piece.text.lower()
            if _SURROGATE.search(value):  # a byte that is not UTF-8 (from the shell)
                raise QueryError(f"{piece.key}: value is not valid UTF-8")
            if key == "tier" and value not in ("1", "2", "3", "4", "5", "6"):
                raise QueryError(f"tier:{piece.text} is not a tier number (ACE tiers are 1-6)")
            if key == "has":
                if value == "secrets":
                    value = "secret"
                if value not in HAS_VALUES:
                    raise QueryError(f"has:{piece.text} is not known (has:secret is)")
            if key == "source" and not value.endswith("*") and value not in SOURCES:
                raise QueryError(
                    f"source:{piece.text} is not a source (one of {', '.join(SOURCES)})"
                )
            if len(fields) == MAX_FIELDS:
                raise QueryError(f"too large a query: at most {MAX_FIELDS} fields (from:, to:...)")
            fields.append(FieldFilter(key, value, piece.negated))
            continue
        term = _term(piece)
        if term is None:
            continue
        if piece.negated:
            if pending_or:
                raise QueryError("OR joins words or phrases, not an exclusion")
            excluded.append(term)
        elif pending_or:
            groups[-1].append(term)
            pending_or = False
        else:
            groups.append([term])
    if pending_or:
        raise QueryError("OR needs a word or phrase on each side")
    if pending_and:
        raise QueryError(_AND_ALONE)
    wanted = any(not f.negated for f in fields) or since is not None or until is not None
    if (excluded or fields) and not (groups or wanted):
        raise QueryError("nothing to search for besides the exclusions: add a word or a field")
    if since is not None and until is not None and since > until:
        raise QueryError("the time range is empty (since/after is later than until/before)")
    return Query(
        text,
        tuple(tuple(g) for g in groups),
        tuple(excluded),
        tuple(fields),
        since,
        until,
        fuzzy,
    )


def _term(piece: _Piece) -> Term | None:
    raw = piece.text.lower()
    if not raw.strip():
        if piece.quoted:
            return None  # `""` while typing
        raise QueryError("empty word in the query")
    if piece.quoted:
        kind = TermKind.PHRASE
    elif raw.endswith("*") and len(raw) > 1:
        kind, raw = TermKind.PREFIX, raw.rstrip("*")
    else:
        kind = TermKind.WORD
    if not tokenize(raw):
        raise QueryError(f"{piece.text!r} has no letters or digits to search for")
    if kind is TermKind.WORD and len(tokenize(raw)) > 1:
        kind = TermKind.PHRASE  # `foo-bar`, `/usr/bin`: its tokens together
    return Term(raw, kind)


# -- match spans -------------------------------------------------------------------------
@dataclass(frozen=True)
class Span:
    """Characters [start, end) of a text that match; `fuzzy` when by a typo-tolerant term."""

    start: int
    end: int
    fuzzy: bool = False


def token_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, folded token) of every token of `text`."""
    spans = [(m.start(), m.end(), fold(m.group())) for m in _words().token.finditer(text)]
    return [span for span in spans if span[2]]  # diacritics alone make no token


_Terms = tuple[tuple[tuple[str, ...], bool], ...]  # (tokens, prefix) of each exact term


def find_spans(text: str, query: Query, fuzzy_terms: frozenset[str] = frozenset()) -> list[Span]:
    """Where `query`'s words and phrases match in `text`, plus the fuzzy stand-ins.

    A term matches where its tokens follow one another (anything that is not a
    token between them), as the index sees them. ASCII text (folding it keeps every
    offset) is matched by one compiled pattern per term; other text token by token."""
    terms: _Terms = tuple(
        (term.tokens, term.kind is TermKind.PREFIX)
        for group in query.groups
        for term in group
        if term.tokens
    )
    if not terms and not fuzzy_terms:
        return []
    if text.isascii():
        spans = _ascii_spans(text.lower(), _term_patterns(terms, fuzzy_terms))
    else:
        spans = _token_spans(text, terms, fuzzy_terms)
    return _outside_placeholders(text, _merged(spans))


# What redaction puts where a secret was (`recorder.store.secrets.redact_frames`).
_PLACEHOLDER = re.compile(r"\[REDACTED:[a-z0-9-]+\]")


def _outside_placeholders(text: str, spans: list[Span]) -> list[Span]:
    """`spans` less those within a `[REDACTED:kind]`: its words (`key`, `token`) are
    redaction's, not the message's."""
    if not spans or "[REDACTED:" not in text:
        return spans
    holes = [(m.start(), m.end()) for m in _PLACEHOLDER.finditer(text)]
    starts = [start for start, _ in holes]

    def inside(span: Span) -> bool:
        # the placeholders do not overlap: the last one starting before the span ends is
        # the only one that can reach into it (one bisect a span, not a pass over all)
        k = bisect.bisect_left(starts, span.end) - 1
        return k >= 0 and holes[k][1] > span.start

    return [s for s in spans if not inside(s)]


@functools.lru_cache(maxsize=64)
def _term_patterns(
    terms: _Terms, fuzzy_terms: frozenset[str]
) -> tuple[tuple[re.Pattern[str], bool], ...]:
    """One lookahead pattern per term (finding overlapping occurrences too), and
    whether it is a fuzzy stand-in."""
    patterns = []
    for tokens, prefix in terms:
        body = r"[\W_]+".join(re.escape(t) for t in tokens)
        tail = r"[^\W_]*" if prefix else r"(?![^\W_])"
        patterns.append((re.compile(rf"(?<![^\W_])(?=({body}{tail}))"), False))
    for word in sorted(fuzzy_terms):
        patterns.append((re.compile(rf"(?<![^\W_])(?=({re.escape(word)})(?![^\W_]))"), True))
    return tuple(patterns)


def _ascii_spans(folded: str, patterns: tuple[tuple[re.Pattern[str], bool], ...]) -> list[Span]:
    spans: list[Span] = []
    for pattern, fuzzy in patterns:
        spans.extend(Span(m.start(1), m.end(1), fuzzy) for m in pattern.finditer(folded))
    return spans


def _token_spans(text: str, terms: _Terms, fuzzy_terms: frozenset[str]) -> list[Span]:
    toks = token_spans(text)
    words = [t[2] for t in toks]
    spans: list[Span] = []
    for tokens, prefix in terms:
        n = len(tokens)
        for i in range(len(words) - n + 1):
            if words[i : i + n - 1] != list(tokens[:-1]):
                continue
            last = words[i + n - 1]
            if last == tokens[-1] or (prefix and last.startswith(tokens[-1])):
                spans.append(Span(toks[i][0], toks[i + n - 1][1]))
    if fuzzy_terms:
        for start, end, word in toks:
            if word in fuzzy_terms:
                spans.append(Span(start, end, True))
    return spans


def _merged(spans: list[Span]) -> list[Span]:
    spans.sort(key=lambda s: (s.start, -s.end))
    merged: list[Span] = []
    for s in spans:
        if merged and s.start < merged[-1].end:
            last_span = merged[-1]
            if s.end > last_span.end:
                merged[-1] = Span(last_span.start, s.end, last_span.fuzzy and s.fuzzy)
        else:
            merged.append(s)
    return merged


def match_spans(text: str, query: Query) -> list[tuple[int, int]]:
    """Character spans of `text` to highlight for `query` (its exact words and phrases)."""
    return [(s.start, s.end) for s in find_spans(text, query)]
