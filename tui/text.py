"""Making recorded content safe and short for the screen; times and ages.

Nothing recorded is ever sent to the terminal as-is: control characters
(escape sequences, bidi overrides, bells) are shown as visible escapes.
"""

from __future__ import annotations

import itertools
import time
import unicodedata
from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo
from functools import lru_cache

from rich.cells import cell_len, set_cell_size
from rich.style import Style
from rich.text import Span, Text

ESCAPE_STYLE = Style(color="magenta", dim=False, italic=True)
_NAMED = {"\n": "⏎", "\t": "⇥", "\r": "␍"}


@lru_cache(maxsize=512)
def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def is_unsafe(ch: str) -> bool:
    """Control, format (bidi) and unassigned/surrogate characters."""
    if ch.isprintable():
        return False
    return ch != " " and unicodedata.category(ch) not in ("Zs",)


# VARIATION SELECTOR-16 asks for the emoji form of the character before it: some
# terminals then draw a character Rich counts as one cell (⚠, ✔, ❤) in two, so a row
# holding `⚠️` overflows its column by one. Dropped from what is shown (never from what is
# kept), every terminal draws the character in one cell, as Rich counts it.
_EMOJI_FORM = "\ufe0f"


def sanitize(text: str, *, newlines: bool = False) -> str:
    """Replace every unsafe character with a visible escape (keep `\\n` if asked)."""
    if _EMOJI_FORM in text:
        text = text.replace(_EMOJI_FORM, "")
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() or (newlines and ch == "\n"):
            out.append(ch)
        elif ch in _NAMED and not newlines:
            out.append(_NAMED[ch])
        elif ch == "\t":
            out.append("    ")
        elif is_unsafe(ch):
            out.append(_escape(ch))
        else:
            out.append(ch)
    return "".join(out)


def safe_text(text: str, style: str | Style = "", *, newlines: bool = False) -> Text:
    """A Rich Text of `text` with unsafe characters shown as styled escapes."""
    if _EMOJI_FORM in text:
        text = text.replace(_EMOJI_FORM, "")
    if text.isprintable():
        return Text(text, style=style, end="\n")
    # Built as one string and one styled span per run of escapes (a span per escape
    # made a text of 200,000 control characters 200,000 spans, each walked whenever a
    # row of it was cut; a `Text.append` per piece cost seconds).
    pieces: list[str] = []
    spans: list[Span] = []
    at = 0
    escaping = -1  # where the current run of escapes started, -1 outside one
    for ch in text:
        if ch.isprintable() or (newlines and ch == "\n") or ch == "\t":
            if escaping >= 0:
                spans.append(Span(escaping, at, ESCAPE_STYLE))
                escaping = -1
            piece = "    " if ch == "\t" else ch
        else:
            if escaping < 0:
                escaping = at
            piece = _NAMED[ch] if ch in _NAMED and not newlines else _escape(ch)
        pieces.append(piece)
        at += len(piece)
    if escaping >= 0:
        spans.append(Span(escaping, at, ESCAPE_STYLE))
    return Text("".join(pieces), style=style, spans=spans)


def highlighted_text(text: str, spans: Sequence[tuple[int, int, str | Style]]) -> Text:
    """`safe_text(text)` with each (start, end, style) span of `text` styled: the
    escapes make the shown text longer than `text`, so each piece between span edges
    is made safe on its own and the styles land on what they marked."""
    edges = sorted({0, len(text), *(p for s, e, _ in spans for p in (s, e) if 0 <= p <= len(text))})
    result = Text()
    for start, end in itertools.pairwise(edges):
        piece = safe_text(text[start:end])
        for s, e, style in spans:
            if s <= start and end <= e:
                piece.stylize(style)
        result.append_text(piece)
    return result


def window_on(text: str, start: int, end: int, room: int) -> int:
    """Where to start showing `text` so that its characters `start` to `end` (a match)
    fit in `room` terminal cells after a `…` put before them, a third of the room or
    what is left of it kept for the words before the match: 0 when the text fits from
    its first character to the match's end."""
    cells = [safe_text(ch).cell_len for ch in text[:end]]  # escapes and wide characters
    if sum(cells) <= room:
        return 0
    left = room - 1 - sum(cells[start:end])  # for the words before the match
    if left <= 0:
        return start
    context, at = min(left, room // 3), start
    while at > 0 and cells[at - 1] <= context:
        at -= 1
        context -= cells[at]
    if at > 0 and text[at - 1] != " ":  # not the end of a word: from the next one
        space = text.find(" ", at, start)
        if space >= 0:
            at = space + 1
    return at


def fit(text: str, width: int, *, ellipsis: bool = False) -> str:
    """`text` cut and padded to exactly `width` terminal cells, for a column: a wide
    character (CJK, most emoji) takes two, so the number of characters is no measure.
    `ellipsis`: a cut shows as `…`."""
    size = cell_len(text)
    if size <= width:
        return text + " " * (width - size)
    if ellipsis and width > 0:
        cut = set_cell_size(text, width - 1).rstrip(" ")  # a wide character cut leaves a space
        return cut + "…" + " " * (width - 1 - cell_len(cut))
    return set_cell_size(text, width)


def cut(text: str, width: int) -> str:
    """`text` sanitised, then cut to at most `width` terminal cells with `…` (an escape
    made visible takes 4 to 10 cells, a wide character 2: cutting characters first
    leaves a line too long for its row)."""
    clean = sanitize(text)
    if cell_len(clean) <= width:
        return clean
    return fit(clean, width, ellipsis=True).rstrip(" ")


def one_line(text: str, limit: int = 2000) -> str:
    """Sanitised and cut to `limit` characters, for list rows."""
    return sanitize(text[:limit])


def path_end(path: str, limit: int) -> str:
    """A path in at most `limit` characters: its end, where a long one differs from
    its neighbours, after "…" (a cut end would name another folder)."""
    if len(path) > limit:
        path = "…" + path[len(path) - limit + 1 :]
    return one_line(path)


AGE_TICK = 1.0
"""Seconds between redraws of the ages shown ("15s ago" keeps counting)."""


class Clock:
    """`now()` and the time zone used for display; tests pass fixed ones."""

    def __init__(self, now: Callable[[], float] | None = None, tz: tzinfo | None = None) -> None:
        self._now = now or time.time
        self.tz = tz

    def now(self) -> float:
        return self._now()

    def monotonic(self) -> float | None:
        """The system's monotonic clock with the real `now`; None with a test's (whose
        `now` is then the only clock: see `status.assess`)."""
        return time.monotonic() if self._now is time.time else None

    def dt(self, ts: float | None) -> datetime | None:
        """`ts` as a local (or `tz`) time; None for no time, or a number no date can
        hold (a record's time is shown as missing, never as a failure)."""
        if type(ts) is not float and type(ts) is not int:
            return None
        try:
            return datetime.fromtimestamp(ts, self.tz) if self.tz else datetime.fromtimestamp(ts)
        except (OverflowError, ValueError, OSError):
            return None

    def hms(self, ts: float | None) -> str:
        dt = self.dt(ts)
        return "--:--:--" if dt is None else dt.strftime("%H:%M:%S")

    def when(self, ts: float | None) -> str:
        """11 characters that tell the day apart in a list of many days: `   HH:MM:SS`
        today, `MM-DD HH:MM` this year, `YYYY-MM-DD ` before."""
        dt = self.dt(ts)
        if dt is None:
            return "   --:--:--"
        now = self.dt(self.now())
        if now is not None and dt.date() == now.date():
            return dt.strftime("   %H:%M:%S")
        if now is not None and dt.year == now.year:
            return dt.strftime("%m-%d %H:%M")
        return dt.strftime("%Y-%m-%d ")

    def day(self, ts: float) -> str:
        dt = self.dt(ts)
        return "—" if dt is None else dt.strftime("%a %d %b %Y")

    def stamp(self, ts: float | None) -> str:
        dt = self.dt(ts)
        return "—" if dt is None else dt.strftime("%Y-%m-%d %H:%M:%S")

    def iso(self, ts: float | None) -> str | None:
        dt = self.dt(ts)
        return None if dt is None else dt.isoformat(timespec="seconds")

    def ago(self, ts: float | None) -> str:
        """`5m 14s ago`; a time after this clock's (another machine's clock, a clock set
        back) is `5m 14s in the future`, never `0s ago`."""
        if ts is None:
            return "never"
        seconds = self.now() - ts
        if seconds <= -1:
            return f"{age(-seconds)} in the future"
        return f"{age(seconds)} ago"


def age(seconds: float) -> str:
    """Compact human age: 42s, 7m, 3h 05m, 2d 4h."""
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s" if s < 600 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def size(n: float) -> str:
    """Bytes as 1.2 KB / 34 MB / 1.1 GB."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def count(n: int) -> str:
    return f"{n:,}"


def short_count(n: int) -> str:
    """`n` in at most 4 characters, for a narrow column: 9999, 30k, 999k, 1.2M."""
    if n < 10_000:
        return str(n)
    if n < 1_000_000:
        return f"{n // 1000}k"
    if n < 9_950_000:  # 9.9M at most: 9,950,000 would round to "10.0M"
        return f"{n / 1_000_000:.1f}M"
    millions = round(n / 1_000_000)
    return f"{millions}M" if millions < 1000 else f"{round(n / 1_000_000_000)}G"


def plural(n: int, noun: str, many: str | None = None) -> str:
    """`1 message`, `2 messages`, `1,024 checkpoints`."""
    return f"{n:,} {noun if n == 1 else many or noun + 's'}"
