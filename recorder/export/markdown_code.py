"""Where a message's own Markdown is code: the parts a renderer shows as typed.

A Markdown transcript quotes each message's text as Markdown, with `& < > ]` as
entities so that no raw HTML or link is made of it (`writers.md_text`). Inside code
(a fenced block, a code span) a renderer shows text as it is typed, entities
included: `Vec<T>` would read `Vec&lt;T&gt;`. So those parts are left as they are,
where they can be told apart for sure; raw HTML in them is shown as text, never
run. Where a renderer could see them otherwise, everything stays escaped (shown
with entities, as before, but never markup).

What is taken as code (CommonMark, the text inside a block quote, as the
transcript puts it), with why each rule cannot disagree with a renderer:

- A fenced block opened by a line at column 0 (3 or more backticks or tildes; a
  backtick fence's info string has no backtick): such a line opens a fence whatever
  came before (it interrupts a paragraph, closes a list item that needed indentation,
  and no HTML block can be open: every `<` outside code is an entity, and so is every
  `>`: no block quote either). It runs to its closing line (0-3 spaces, the same
  character, at least as many, nothing after) or to the end of the text (the end of
  the quote ends it). Unless the line has a `|` after its run: over a delimiter
  row (`---`) it is a table's header row for markdown-it, which tries tables first;
  the whole text is then escaped.
- A fenced block in a list item (what agents write under "1. **Build:**"): a fence
  line indented exactly to the content of a list item begun at column 0 (`- `, `* `,
  `+ `, `1. ` or `1) ` followed by 1-4 spaces and text), where every line from that
  item's first to the fence is blank or indented at least as far (so it is still the
  item), and the item's first line is one for sure: a bullet that is not a thematic
  break, or a number after a blank line, the start, a heading, the number 1, or an
  item of the same list that is one for sure (any other number continues a
  paragraph). Its closing line is indented 0-3 spaces more than the item's content;
  a line indented less before it ends the item and the code with it, and then the
  whole text is escaped. Any other fence-like line indented 1-3 spaces outside a
  fence makes the whole text escaped; one indented 4 or more is text (indented code
  or a paragraph's line).
- A code span, in a stretch of text between fences: a run of backticks and the next
  run of the same length. Only when, in that stretch, every run pairs on its own line
  (a run left open could pair with one on a later line of the same paragraph), no
  backtick follows a backslash (an escaped backtick opens nothing) and, if a line has
  a `|`, no line could be a table's delimiter row (a table row splits its cells at
  pipes before it looks for code; without a delimiter row there is no table).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from itertools import accumulate


def code_ranges(text: str) -> list[tuple[int, int]]:
    """The (start, end) offsets, in order, of the code in `text` (cleaned: no tabs, no
    control characters but newlines), as the module docstring says; [] when there is
    none, or when a fence cannot be told apart for sure."""
    ranges: list[tuple[int, int]] = []
    stretches: list[tuple[int, int]] = []  # the text between fences
    fence: tuple[str, int, int] | None = None  # character, length, item content column
    opened = prose = 0
    lines: _Lines | None = None  # split once, when a fence is indented
    for line, indent, char, length, info, end in _fence_like_lines(text):
        if fence is None:
            if char == "`" and "`" in info:
                continue  # not a fence: a line with code spans
            if "|" in info:
                return []  # a table's header row, if a delimiter row follows: all escaped
            column = 0
            if indent:
                lines = lines or _Lines(text)
                placed = _in_item(lines, line, indent)
                if placed is None:
                    return []  # more than it is worth looking through: all escaped
                if not placed:
                    if indent <= 3:
                        return []
                    continue  # indented code, or a paragraph's line
                column = indent
            fence, opened = (char, length, column), line
            stretches.append((prose, opened))
        elif (
            char == fence[0]
            and length >= fence[1]
            and not info.strip(" ")
            and fence[2] <= indent <= fence[2] + 3
        ):
            if fence[2] and _leaves_item(text, opened, line, fence[2]):
                return []
            ranges.append((opened, end))
            fence, prose = None, end
    if fence is not None:
        if fence[2] and _leaves_item(text, opened, len(text), fence[2]):
            return []
        ranges.append((opened, len(text)))
    else:
        stretches.append((prose, len(text)))
    for start, end in stretches:
        spans = _spans(text, start, end, _MAX_RANGES - len(ranges))
        if spans is None:
            return []  # a text made of code spans: escaped whole
        ranges += spans
    ranges.sort()
    return ranges


def _fence_like_lines(text: str) -> list[tuple[int, int, str, int, str, int]]:
    """(line start, indent, character, run length, the rest, line end) of each line
    that starts, after spaces, with 3 or more backticks or tildes, in order; in time
    linear in the text (a line's start is found by walking back over spaces only).
    (`str.find` loops: a regex search for them took 3-6x as long on long text.)"""
    found = []
    for mark in ("```", "~~~"):
        char = mark[0]
        at = text.find(mark)
        while at >= 0:
            stop = at + 3
            while stop < len(text) and text[stop] == char:
                stop += 1
            line = at  # back over the spaces before it: only they may come first
            while line and text[line - 1] == " ":
                line -= 1
            if not line or text[line - 1] == "\n":
                end = text.find("\n", stop)
                end = len(text) if end < 0 else end
                found.append((line, at - line, char, stop - at, text[stop:end], end))
            at = text.find(mark, stop)
    found.sort()
    return found


_BULLETS = "-*+"
_MAX_RANGES = 10_000  # code parts of one text told apart; beyond: all escaped
_MAX_ITEMS_BACK = 64  # items of one list looked back through to find its certain start
_MAX_INDENTED_FENCES = 64  # indented fence lines placed in one text; beyond: all escaped
_ITEM_WALK = 400  # lines looked back through for a fence's list item; beyond: escaped
_LONG_LINE = 200  # characters of a line read to tell a thematic break
_SPACES = re.compile(" *")
_MARKER = re.compile(r"([-*+]|[0-9]{1,9}[.)])( {1,5})")
_HEADING = re.compile(r" {0,3}#{1,6}(?: |$)")
_THEMATIC = re.compile(r" {0,3}([-*_])(?: *\1){2,} *")


class _Lines:
    """The text's lines, split once, to place indented fences in list items; the work
    is bounded (`_MAX_INDENTED_FENCES`, `_ITEM_WALK`), so a hostile text of many
    indented fence lines costs no more than a few passes over it."""

    def __init__(self, text: str) -> None:
        self.rows = text.split("\n")
        self.starts = list(accumulate((len(r) + 1 for r in self.rows[:-1]), initial=0))
        self.placed = 0

    def index(self, at: int) -> int:
        """The number of the line that starts at offset `at`."""
        return bisect_right(self.starts, at) - 1


def _indent(line: str) -> int:
    match = _SPACES.match(line)
    return match.end() if match else 0


def _blank(line: str) -> bool:
    return _indent(line) == len(line)


def _marker(line: str) -> tuple[str, int] | None:
    """A list item's marker at column 0 and its content column: ("-", 2) for "- x",
    ("1.", 3) for "1. x"; None for anything else (1-4 spaces, then text, required)."""
    match = _MARKER.match(line)
    if match is None or len(match.group(2)) > 4 or match.end() == len(line):
        return None
    return match.group(1), match.end()


def _thematic_break(line: str) -> bool:
    """`---`, `* * *`, `___`: a line of 3 or more of one of them and spaces. A longer
    line than `_LONG_LINE` that begins like one is taken for one (not a list item)."""
    if len(line) > _LONG_LINE:
        probe = line[:_LONG_LINE]
        return bool(_THEMATIC.fullmatch(probe.rstrip(" ") or "x"))
    return _THEMATIC.fullmatch(line) is not None


def _heading(line: str) -> bool:
    """An ATX heading: 0-3 spaces, 1-6 `#`, then a space or the end of the line."""
    return _HEADING.match(line) is not None


def _starts_item(lines: list[str], i: int, depth: int = 0) -> bool:
    """Whether `lines[i]` (a marker line) begins a list item for a renderer: a bullet
    always (it may interrupt a paragraph) unless it is a thematic break; a number when
    it is 1 (a list's first item may interrupt a paragraph), after a blank line, the
    start, a heading or a thematic break, or after an item of the same list that
    begins one for sure; any other number continues a paragraph."""
    line = lines[i]
    found = _marker(line)
    if found is None or _thematic_break(line):
        return False
    marker = found[0]
    if marker in _BULLETS or int(marker[:-1]) == 1 or i == 0:
        return True
    previous = lines[i - 1]
    if _blank(previous) or _heading(previous) or _thematic_break(previous):
        return True
    before = _marker(previous)
    return (
        before is not None
        and before[0][-1] == marker[-1]  # the same delimiter: the same list
        and before[0] not in _BULLETS
        and depth < _MAX_ITEMS_BACK
        and _starts_item(lines, i - 1, depth + 1)
    )


def _in_item(lines: _Lines, at: int, column: int) -> bool | None:
    """Whether the line at `at`, indented `column` spaces, is at the content column of
    a list item begun at column 0 for sure, with nothing between that takes it out of
    the item (every line between blank or indented at least `column`); None when
    telling would take more than the bounds allow."""
    lines.placed += 1
    if lines.placed > _MAX_INDENTED_FENCES:
        return None
    rows = lines.rows
    i = lines.index(at) - 1
    stop = i - _ITEM_WALK
    while i >= 0 and (_blank(rows[i]) or _indent(rows[i]) >= column):
        i -= 1
        if i == stop:
            return None
    if i < 0:
        return False
    found = _marker(rows[i])
    return found is not None and found[1] == column and _starts_item(rows, i)


def _leaves_item(text: str, opened: int, until: int, column: int) -> bool:
    """Whether a line after the fence line at `opened` and before `until` is indented
    less than the item's content: it ends the item, and the code with it."""
    start = text.find("\n", opened, until)
    if start < 0:
        return False
    lines = text[start + 1 : until].split("\n")
    return any(not _blank(line) and _indent(line) < column for line in lines)


def _spans(text: str, start: int, end: int, most: int) -> list[tuple[int, int]] | None:
    """The code spans of `text[start:end]` (text between fences), or [] unless every
    one of them is certain; None when there are more than `most` backtick runs."""
    stretch = text[start:end]
    if "`" not in stretch or "\\`" in stretch or ("|" in stretch and _may_be_table(stretch)):
        return []
    spans: list[tuple[int, int]] = []
    runs: list[tuple[int, int]] = []  # the backtick runs of one line
    line_end = -1  # where the line of the runs so far ends (each line is searched once)
    at = text.find("`", start, end)
    while at >= 0:
        stop = at + 1
        while stop < end and text[stop] == "`":
            stop += 1
        if at > line_end:  # the first run of a later line
            if not _pair(runs, spans):
                return []
            runs = []
            line_end = text.find("\n", at, end)
            line_end = end if line_end < 0 else line_end
        runs.append((at, stop))
        most -= 1
        if most < 0:
            return None
        at = text.find("`", stop, end)
    return spans if _pair(runs, spans) else []


def _may_be_table(stretch: str) -> bool:
    """Whether a GFM table could be in `stretch`: a line of only `-`, `:`, `|` and
    spaces with a `-` in it, which could be a table's delimiter row (`---` alone is one
    under a header row with pipes). Without one, a `|` is text."""
    return any("-" in line and not line.strip(" -:|") for line in stretch.split("\n"))


def _pair(runs: list[tuple[int, int]], spans: list[tuple[int, int]]) -> bool:
    """Add the code spans of one line's backtick runs (each run and the next of its
    length); False when a run is left open (a later line could close it)."""
    i = 0
    while i < len(runs):
        length = runs[i][1] - runs[i][0]
        j = next((k for k in range(i + 1, len(runs)) if runs[k][1] - runs[k][0] == length), 0)
        if not j:
            return False
        spans.append((runs[i][0], runs[j][1]))
        i = j + 1
    return True
