"""JSON as it was sent, re-indented for reading without being parsed.

Parsing and writing JSON again changes what was sent: duplicate keys collapse,
big integers become floats, key order and escapes may change. `reindent` only
moves whitespace, token by token, so every key and number reads exactly as in
the stored bytes, and it works on a prefix (a cut string runs to the end).

Indentation stops at `MAX_INDENT_DEPTH` levels: a value nested deeper is written on
one line (compact, a space after each `,` and `:`), so the output grows with the
input, never with the square of its depth (a JSON array nested 100,000 deep, 200 KB,
would be 10 GB indented).
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|"[^\n]*|[{}\[\],:]|[^\s{}\[\],:"]+|\s+', re.S)

MAX_INDENT_DEPTH = 20
"""Levels of nesting shown indented (40 columns of indentation); deeper is one line."""


def reindent(text: str, indent: str = "  ", max_depth: int = MAX_INDENT_DEPTH) -> str:
    """`text` (JSON, or the start of it) with one member per line, down to `max_depth`
    levels; a value nested deeper stays on its parent's line."""
    out: list[str] = []
    depth = 0
    opened = False  # the previous token opened an object or array on its own line
    for match in _TOKEN.finditer(text):
        token = match.group()
        first = token[0]
        if first.isspace():
            continue
        if first in "{[":
            out.append(token)
            depth += 1
            opened = depth <= max_depth
            if opened:
                out.append("\n" + indent * depth)
            continue
        if first in "}]":
            depth = max(0, depth - 1)
            if depth >= max_depth:  # closes a value written on one line
                out.append(token)
            elif opened:
                out.pop()  # {} and [] stay on one line
                out.append(token)
            else:
                out.append("\n" + indent * depth + token)
        elif first == ",":
            out.append(", " if depth > max_depth else ",\n" + indent * depth)
        elif first == ":":
            out.append(": ")
        else:
            out.append(token)
        opened = False
    return "".join(out)


def compact(text: str) -> str:
    """`text` (JSON) on one line: whitespace between tokens removed, tokens as sent."""
    if "\n" not in text and "  " not in text:
        return text
    return "".join(m.group() for m in _TOKEN.finditer(text) if not m.group()[0].isspace())
