"""The vectorised text cleaning (`clean`, fences, Markdown escaping) gives exactly the
output of the character-by-character versions it replaced, on random text full of
control characters, backticks, escape sequences, bidi marks and markup."""

from __future__ import annotations

import csv
import html
import io
import unicodedata

import orjson
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from recorder.export.render import clean, iso, iso_second
from recorder.export.writers import (
    _backtick_run,
    _fence,
    _h,
    _h_bytes,
    csv_cell,
    csv_json_cell,
    csv_row,
    md_code,
    md_escaped,
    md_quote_parts,
    md_text,
)


# -- the implementations as they were before (reference, kept verbatim) -------------------
def old_clean(text: str, *, newlines: bool = True) -> str:
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() or ch == " " or (newlines and ch == "\n"):
            out.append(ch)
        elif ch == "\t":
            out.append("    ")
        elif unicodedata.category(ch) == "Zs":
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return "".join(out)


def old_backtick_run(text: str) -> int:
    run = longest = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return longest


_OLD_MD_INERT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "]": "&#93;"})


def old_md_text(text: str, *, newlines: bool = True) -> str:
    return old_clean(text, newlines=newlines).translate(_OLD_MD_INERT)


def old_quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.split("\n"))


def old_md_code(text: str) -> str:
    text = old_clean(text, newlines=False)
    ticks = "`" * (old_backtick_run(text) + 1)
    pad = " " if text[:1] == "`" or text[-1:] == "`" else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


# -- random text that exercises every branch -----------------------------------------------
HOSTILE_PIECES = [
    "\x1b[31m",
    "\x1b]0;title\x07",
    "\x1b[2J",
    "<script>alert(1)</script>",
    "```",
    "`` ` ``",
    "~~~",
    "\u202e",
    "\u2028",
    "\u2029",
    "\u00a0",
    "\u3000",
    "\ufeff",
    "\t",
    "\n",
    "\n\n",
    "\r\n",
    "\x00",
    "\x7f",
    "\x85",
    "\ud800",
    "\U000e0001",
    "\U0010ffff",
    "&amp; ] [x](javascript:y)",
    "> ",
]
pieces = st.one_of(
    st.text(max_size=20),
    st.sampled_from(HOSTILE_PIECES),
    st.characters(min_codepoint=0, max_codepoint=0x10FFFF).map(str),
    st.text(alphabet="`\n \t<>", max_size=12),
)
texts = st.lists(pieces, max_size=12).map("".join)
# ASCII text takes its own fast paths (one bytes pass): plain, tabs only, escapes needed
ascii_texts = st.one_of(
    st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=60),
    st.lists(
        st.sampled_from(
            ["ab", " ", "\n", "\n\n", "\t", "&", "<", ">", "]", "\x00", "\x7f", "\x1b"]
        ),
        max_size=30,
    ).map("".join),
)


@settings(max_examples=600, deadline=None)
@given(st.one_of(texts, ascii_texts), st.booleans())
@example("a\tb\nc\x1b[0m", True)
@example("a\tb\nc", True)
@example("a\tb\nc", False)
@example("plain\nlines", False)
@example("\n", False)
@example("", True)
def test_clean_matches_the_character_loop(text: str, newlines: bool) -> None:
    assert clean(text, newlines=newlines) == old_clean(text, newlines=newlines)


@settings(max_examples=600, deadline=None)
@given(texts)
@example("`" * 1000)
@example("a ``` b ```` c `")
def test_fences_and_code_spans_match(text: str) -> None:
    assert _backtick_run(text) == old_backtick_run(text)
    assert _fence(text) == "`" * max(3, old_backtick_run(text) + 1)
    assert md_code(text) == old_md_code(text)


@settings(max_examples=600, deadline=None)
@given(st.one_of(texts, ascii_texts), st.booleans())
@example("\n\n\n\nx\n\n", True)
@example("<script>\n\n</script>", True)
@example("a > \nb", True)
@example("", True)
@example("x\n", True)
def test_markdown_text_and_quotes_match(text: str, newlines: bool) -> None:
    assert md_text(text, newlines=newlines) == old_md_text(text, newlines=newlines)
    want = old_quote(old_md_text(text)).encode()
    assert b"".join(md_quote_parts(md_text(text).encode())) == want
    assert b"".join(md_quote_parts(md_escaped(text))) == want  # as the writer quotes
    raw = text.encode("utf-8", "surrogatepass")  # the writer quotes md_text's, never raw
    assert b"".join(md_quote_parts(raw)) == old_quote(text).encode("utf-8", "surrogatepass")


def test_a_fence_cannot_be_closed_by_the_text_inside() -> None:
    body = clean('{"x": "```\\n````\\n`````"}\n`````` six')
    fence = _fence(body)
    assert len(fence) == 7 and all(line.strip() != fence for line in body.split("\n"))


@settings(max_examples=600, deadline=None)
@given(st.lists(texts, min_size=2, max_size=10))
@example(["", "", ""])
@example(['a "quoted", word', "line\r\nbreak", "=1+2", " lead", "tab\there"])
def test_csv_rows_match_the_csv_module(fields: list[str]) -> None:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(fields)
    assert csv_row(fields) == out.getvalue()


def old_csv_cell(text: str) -> bytes:
    """A cell as the writer made it before: `clean`, a quote before a formula (also
    after leading whitespace), then the csv module's quoting."""
    value = old_clean(text)
    value = "'" + value if value.lstrip()[:1] in ("=", "+", "-", "@") else value
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(["x", value])  # alone, "" is quoted
    return out.getvalue()[2:-2].encode("utf-8", "surrogatepass")


csv_texts = st.lists(
    st.sampled_from(["ab", " ", ",", '"', "\n", "\t", "=", "-", "+", "@", "\r", "\x7f", "é"]),
    max_size=12,
).map("".join)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.one_of(texts, csv_texts),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(csv_texts, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=800, deadline=None)
@given(st.one_of(texts, ascii_texts, csv_texts))
@example('=1+2,\t"x"')
@example("\tlead")
@example("")
@example(" \n=1+2")
@example("\u3000@SUM(A1)")
def test_csv_cells_match_cleaning_then_the_csv_module(text: str) -> None:
    assert csv_cell(text) == old_csv_cell(text)


@settings(max_examples=800, deadline=None)
@given(json_values)
@example(-1)
@example({"a": "\x7f"})
@example(["x", 1])
def test_json_csv_cells_match_cleaning_the_json_text(value: object) -> None:
    try:
        written = orjson.dumps(value)
    except TypeError:  # a lone surrogate: never in a payload orjson parsed
        assume(False)
    assert csv_json_cell(written) == old_csv_cell(written.decode())


@settings(max_examples=600, deadline=None)
@given(st.one_of(texts, ascii_texts, st.text(alphabet="ab \n\t&<>\"'", max_size=20)))
@example("plain text\nwith lines")
@example('it\'s "quoted"')
@example("\tx = a[0] & b < c > d \"e\" 'f'")
def test_html_text_matches_escaping_the_cleaned_text(text: str) -> None:
    want = html.escape(old_clean(text), quote=True)
    assert _h(text) == want
    assert _h_bytes(text) == want.encode("utf-8", "surrogatepass")


def old_iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(
        st.floats(min_value=-5e10, max_value=2.5e11, allow_nan=False),
        st.integers(min_value=0, max_value=4_102_444_800).map(lambda s: s + 0.9999995),
        st.integers(min_value=0, max_value=4_102_444_800).map(lambda s: s - 0.0000005),
        st.sampled_from(
            [0.0, -0.0, 1e-7, -1e-7, 1_800_000_000.0005, 1_800_000_000.9995, 3e11, 1e300, 1e20]
        ),
    )
)
def test_iso_matches_datetime(ts: float) -> None:
    """`iso` (the second's text kept, the milliseconds worked out) writes what
    datetime does, rounding and carrying included; where datetime fails (out of its
    range), `iso` writes "", as for a missing time."""
    try:
        expected = old_iso(ts)
    except (OverflowError, ValueError, OSError):
        expected = ""
    assert iso(ts) == expected


@pytest.mark.parametrize("start", [1_800_000_000.0, -3_000.2, 253_402_300_000.0])
def test_consecutive_times_share_their_minute_text_rightly(start: float) -> None:
    """`iso_second` keeps the text of the last minute: times stepping over several
    minutes (before 1970 too, and up to the last second datetime writes) match it."""
    from datetime import UTC, datetime

    for i in range(1000):
        ts = start + i * 0.97
        try:
            want = datetime.fromtimestamp(int(ts), UTC).isoformat()[:19]
        except (OverflowError, ValueError, OSError):
            want = ""
        assert iso_second(ts) == want
        assert iso(ts)[:19] == (old_iso(ts)[:19] if want else "")


@pytest.mark.parametrize(
    "ts", ["soon", None, True, [1], float("nan"), float("inf"), -1e300, 253402300800]
)
def test_what_is_no_time_is_written_as_none(ts: object) -> None:
    assert iso(ts) == "" and iso_second(ts) == ""  # type: ignore[arg-type]
