"""A message's own code reads as typed in Markdown transcripts (`Vec<T>`, not
`Vec&lt;T&gt;`), and no text, however it mixes backticks, fences, lists, tables and
tags, makes markup: checked with a CommonMark renderer (markdown-it-py, with GFM
tables)."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from recorder.export.markdown_code import code_ranges
from recorder.export.render import clean
from recorder.export.writers import md_escaped, md_message, md_quote_parts
from tests.support import markdown_markup, markdown_tokens


def quoted(text: str) -> str:
    """The text as a transcript quotes it, followed by the blank line after it."""
    first, rest = md_quote_parts(md_message(text))
    return (first + rest).decode() + "\n\n"


def code_shown(text: str) -> list[str]:
    """What the renderer shows as code of the quoted text (spans and blocks, in order)."""
    return [t.content for t in markdown_tokens(quoted(text)) if t.type in ("code_inline", "fence")]


def test_code_reads_as_typed_and_the_rest_stays_escaped() -> None:
    text = (
        "The folder `/Users/[USER]` holds `Vec<T>`, and <b> is not bold.\n"
        "\n"
        "```rust\n"
        "fn f() -> Vec<T> { a && b }\n"
        "```\n"
        "~~~\n"
        "<div>[x](y)</div>\n"
        "~~~\n"
        "after <i>x</i> & [link](javascript:alert(1))"
    )
    assert code_shown(text) == [
        "/Users/[USER]",
        "Vec<T>",
        "fn f() -> Vec<T> { a && b }\n",
        "<div>[x](y)</div>\n",
    ]
    md = quoted(text)
    assert "and &lt;b&gt; is not bold" in md and "after &lt;i&gt;x&lt;/i&gt; &amp; [link&#93;" in md
    # A pipe is text where no line could be a table's delimiter row.
    assert code_shown("run `grep x | head -1 > out` then <b>") == ["grep x | head -1 > out"]
    # Text without code, or without anything to escape, is what it was.
    for plain in ("no code <b> & ]", "code `x()` but nothing to escape", ""):
        assert md_message(plain) == md_escaped(plain)


def test_an_unclosed_fence_runs_to_the_end_of_the_message() -> None:
    assert code_shown("look:\n```\n<script>alert(1)</script>\n[a](b)") == [
        "<script>alert(1)</script>\n[a](b)\n"
    ]


def test_a_fence_in_a_list_item_reads_as_typed() -> None:
    """What agents write under numbered steps: the fence indented to the item's text."""
    text = (
        "Next steps:\n"
        "\n"
        "1. **Check the router:**\n"
        "   ```bash\n"
        "   ssh root@[IP] 'service dockerd status 2>/dev/null || ps | grep -E \"a|b\"'\n"
        "   ```\n"
        "   (it may ask <password>)\n"
        "\n"
        "10. **Build:**\n"
        "    ```\n"
        "    make && ./run <in >out\n"
        "\n"
        "    ```\n"
        "#### Later\n"
        "9. then\n"
        "   ~~~\n"
        "   Vec<T>\n"
        "   ~~~\n"
        "- a bullet\n"
        "  ```\n"
        "  a < b"
    )
    assert code_shown(text) == [
        "ssh root@[IP] 'service dockerd status 2>/dev/null || ps | grep -E \"a|b\"'\n",
        "make && ./run <in >out\n\n",
        "Vec<T>\n",
        "a < b\n",  # an unclosed fence runs to the end of the item
    ]
    assert "(it may ask &lt;password&gt;)" in quoted(text)


def test_what_cannot_be_told_apart_for_sure_stays_escaped() -> None:
    cases = {
        # a line indented less than the item's text ends the item, and the code
        "- item\n  ```\n  <code>\n<script>\n  ```": [],
        # indented to neither the item's text nor column 0
        "1. a\n  ```\n  <b>\n  ```": [],
        # "2." after a line of text continues that paragraph: no list item
        "so\n2. x\n   ```\n   <b>\n   ```": [],
        "#tag\n2. x\n   ```\n   <b>\n   ```": [],
        # an item fence left open when the item ends: the code ends with the item
        "- a\n  ```\n  x\n<b>": [],
        # a fence line indented less than the item's text closes nothing there
        "- a\n  ```\n  <b>\n```\n<i>": [],
        # 5 spaces after a marker: the item's text starts after one, the rest is
        # indented code
        "-     x\n      ```\n      <b>\n      ```": [],
        # a thematic break, not a list item; an item with no text on its line
        "- - -\n  ```\n  <b>\n  ```": [],
        "-\n  ```\n  <b>\n  ```": [],
        # a backtick left open on its line could pair with one on the next
        "a `b\nc` <i>d` e`": [],
        # an escaped backtick opens nothing
        "\\`<b>`": [],
        # a table row splits at pipes before it looks for code ("---" under a header
        # with pipes is a delimiter row too)
        "| `<b>|x` |\n|---|---|": [],
        "| a |\n---\n| `<b>|x` |": [],
        # a backtick fence whose info string has a backtick is a line of prose
        "```x`y\n<b>`": [],
    }
    for text, ranges in cases.items():
        assert code_ranges(text) == ranges, text
        assert md_message(text) == md_escaped(text), text


def test_a_text_past_the_bounds_is_escaped_whole() -> None:
    """A message may be 16 MB: the work per text is bounded, and past a bound the
    text is escaped whole (as before code was told apart), never slower."""
    step = "1. step\n   ```\n   a < b\n   ```\n\n"
    assert len(code_ranges(step * 64)) == 64
    assert code_ranges(step * 65) == []  # more indented fences than are placed
    far = "- a\n" + "  x\n" * 400 + "  ```\n  <b>\n  ```"
    assert code_ranges(far.replace("  x\n" * 400, "  x\n" * 398)) != []
    assert code_ranges(far) == []  # its item further back than lines are looked through
    assert len(code_ranges("`<` " * 5000)) == 5000
    assert code_ranges("`<` " * 5001) == []  # more backtick runs than are paired
    for text in (step * 65, far, "`<` " * 5001):
        assert md_message(text) == md_escaped(text)


def test_fences_close_as_commonmark_closes_them() -> None:
    text = "````\n```\n<a>\n  ````  \n<b>\n~~~ x\n<c>\n~~~~\n`<d>`"
    # a shorter run is inside; a closer may be indented 3 spaces and end in spaces;
    # a tilde fence is closed by tildes only
    assert code_shown(text) == ["```\n<a>\n", "<c>\n", "<d>"]
    assert "&lt;b&gt;" in quoted(text)


MARKDOWN_BITS = st.sampled_from(
    [
        "`", "``", "```", "~~~", "\n", " ", "  ", "   ", "    ", "<b>", "</b>", "<script>",
        "<!--", "&", "&lt;", "]", "[", "(", ")", "[a](b)", "|", "|-|", ":-", "\\", "- ",
        "1. ", "> ", "# ", "x", "*", "_", "---", "<http://e.com>", "\t", "\x1b",
    ]
)  # fmt: skip


LIST_LINES = st.builds(
    "".join,
    st.lists(
        st.sampled_from(
            [
                "", " ", "  ", "   ", "    ", "     ", "- ", "* ", "1. ", "2. ", "10. ", "3) ",
                "- - -", "# h", "#h", "```", "~~~", "````", "``` x`", "<b>", "& ", "x", "`",
                "]", "|", "---", "\t",
            ]
        ),
        max_size=4,
    ),
)  # fmt: skip


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        st.lists(MARKDOWN_BITS, max_size=40).map("".join),
        # lines of list markers, indents and fences: where a fence sits in a list item
        st.lists(LIST_LINES, max_size=14).map("\n".join),
    )
)
@example("```\n<b>\n```\n<i>")
@example("  ```\n<b>\n```\n<i>\n```")
@example("`<b>` `` ` `` <i>")
@example("- a\n```\n<b>\n```")
@example("> ```\n<b>\n```")
@example("- item\n  ```\n  <code>\n<script>\n  ```")  # each of these made markup
@example("| a |\n|---|\n| `<b>|x` |")  # with one of the rules above left out
@example("| a |\n---\n| `<b>|x` |")
@example("a `b\nc` <i>d` e`")
@example("\\`<b>`")
@example("1. a\n   ```\n   <b>\n   ```\n<i>")
@example("2. a\n   ```\n<b>\n   ```")
@example("x\n2. a\n   ```\n   <b>\n   ```")
@example("- a\n\n  ```\n\n  <b>\n   ```\n<i>")
@example("- a\n  ```\n  x\n<b>")
@example("```|\n---\n<b>")  # a table's header row, not a fence (markdown-it)
def test_no_text_makes_markup(text: str) -> None:
    assert markdown_markup(quoted(text)) == []
    if not code_ranges(clean(text)):  # no code told apart: escaped as before
        assert md_message(text) == md_escaped(text)
