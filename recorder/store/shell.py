"""Words of a command people copy into a shell (a resume command, a start command)."""

from __future__ import annotations

import shlex


def shell_quote(word: str) -> str:
    """`word` for a POSIX shell, as `shlex.quote` writes it, but a word holding a control
    or other unprintable character (an escape sequence in a folder's name) in bash's
    `$'...'` form with that character's UTF-8 bytes as `\\xHH` (a byte that was not
    UTF-8, read as a lone surrogate, as itself): the same bytes to the shell in any
    locale, and nothing a terminal acts on when the command is shown."""
    if word.isprintable():
        return shlex.quote(word)
    out = []
    for ch in word:
        if ch in "\\'":
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            raw = ch.encode(
                "utf-8", "surrogateescape" if "\udc80" <= ch <= "\udcff" else "surrogatepass"
            )
            out.append("".join(f"\\x{b:02x}" for b in raw))
    return "$'" + "".join(out) + "'"


def shell_path(path: str) -> str:
    """A path for a shell, as `shell_quote` writes it, but with a leading `~/` left for
    the shell to expand (quoted, it would name a folder called `~`)."""
    if path.startswith("~/"):
        return "~/" + shell_quote(path[2:])
    return shell_quote(path)
