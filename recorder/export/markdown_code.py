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
  and no HTML block can be open: every `<` outside code is an entity). It runs to its
  closing line (0-3 spaces, the same character, at least as many, nothing after) or
  to the end of the text (the end of the quote ends it). A fence-like line indented
  1-3 spaces outside a fence (inside a list item, where indentation decides what it
  closes) makes the whole text escaped.
- A code span, in a stretch of text between fences: a run of backticks and the next
  run of the same length. Only when, in that stretch, every run pairs on its own line
  (a run left open could pair with one on a later line of the same paragraph), no
  backtick follows a backslash (an escaped backtick opens nothing) and, if a line has
  a `|`, no line could be a table's delimiter row (a table row splits its cells at
  pipes before it looks for code; without a delimiter row there is no table).
"""

from __future__ import annotations


def code_ranges(text: str) -> list[tuple[int, int]]:
    """The (start, end) offsets, in order, of the code in `text` (cleaned: no tabs, no
    control characters but newlines), as the module docstring says; [] when there is
    none, or when a fence cannot be told apart for sure."""
    ranges: list[tuple[int, int]] = []
    stretches: list[tuple[int, int]] = []  # the text between fences
    fence: tuple[str, int] | None = None
    opened = prose = 0
    for line, indent, char, length, info, end in _fence_like_lines(text):
        if fence is None:
            if char == "`" and "`" in info:
                continue  # not a fence: a line with code spans
            if indent:
                return []
            fence, opened = (char, length), line
            stretches.append((prose, opened))
        elif char == fence[0] and length >= fence[1] and not info.strip(" "):
            ranges.append((opened, end))
            fence, prose = None, end
    if fence is not None:
        ranges.append((opened, len(text)))
    else:
        stretches.append((prose, len(text)))
    for start, end in stretches:
        ranges += _spans(text, start, end)
    ranges.sort()
    return ranges


def _fence_like_lines(text: str) -> list[tuple[int, int, str, int, str, int]]:
    """(line start, indent, character, run length, the rest, line end) of each line
    that starts, after at most 3 spaces, with 3 or more backticks or tildes, in order.
    (`str.find` loops: a regex search for them took 3-6x as long on long text.)"""
    found = []
    for mark in ("```", "~~~"):
        char = mark[0]
        at = text.find(mark)
        while at >= 0:
            stop = at + 3
            while stop < len(text) and text[stop] == char:
                stop += 1
            line = text.rfind("\n", 0, at) + 1
            if at - line <= 3 and text.count(" ", line, at) == at - line:
                end = text.find("\n", stop)
                end = len(text) if end < 0 else end
                found.append((line, at - line, char, stop - at, text[stop:end], end))
            at = text.find(mark, stop)
    found.sort()
    return found


def _spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The code spans of `text[start:end]` (text between fences), or [] unless every
    one of them is certain."""
    stretch = text[start:end]
    if "`" not in stretch or "\\`" in stretch or ("|" in stretch and _may_be_table(stretch)):
        return []
    spans: list[tuple[int, int]] = []
    runs: list[tuple[int, int]] = []  # the backtick runs of one line
    line = None
    at = text.find("`", start, end)
    while at >= 0:
        stop = at + 1
        while stop < end and text[stop] == "`":
            stop += 1
        where = text.rfind("\n", start, at)
        if where != line:
            if not _pair(runs, spans):
                return []
            runs, line = [], where
        runs.append((at, stop))
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
