"""Reading a file some other program is writing: every good line, the rest counted.

The size is taken once at the start, so a file appended while it is read yields the
lines that were complete then (the rest is read next time); bytes after the last
newline are an unfinished line unless they parse on their own (a file written
without a final newline).
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from recorder.sources.model import ReadReport

_loads = orjson.loads


@dataclass(frozen=True)
class FileState:
    """What identifies a version of a file for the scan cache."""

    size: int
    mtime_ns: int
    ino: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileState:
        return cls(st.st_size, st.st_mtime_ns, st.st_ino)


# O_NONBLOCK: opening a named pipe waits for a writer without it (a regular file
# ignores the flag); O_NOCTTY: a terminal device never becomes ours
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


def read_bytes(path: Path, report: ReadReport, limit: int | None = None) -> tuple[bytes, FileState]:
    """The file's bytes up to its size when opened (or `limit`); b"" when it cannot be
    read or is not a regular file (a named pipe, a device, a folder: never waited on),
    named in `report.errors`."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        report.errors.append(f"{path} cannot be read ({exc.strerror})")
        report.unread = exc.strerror or str(exc)
        try:  # stat needs no read permission: the agent's cleanup goes by this mtime
            st = os.stat(path)
        except OSError:
            return b"", FileState(0, 0, 0)
        return b"", FileState(0, st.st_mtime_ns, st.st_ino)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            report.errors.append(f"{path} is not a regular file; skipped")
            return b"", FileState(0, 0, 0)
        size = st.st_size if limit is None else min(st.st_size, limit)
        chunks = []
        pos = 0
        while pos < size:
            chunk = os.pread(fd, min(size - pos, 1 << 24), pos)
            if not chunk:
                break  # truncated while reading: keep what was there
            chunks.append(chunk)
            pos += len(chunk)
        return b"".join(chunks), FileState(pos, st.st_mtime_ns, st.st_ino)
    except OSError as exc:
        report.errors.append(f"{path} cannot be read ({exc.strerror})")
        report.unread = exc.strerror or str(exc)
        return b"", FileState(0, 0, 0)
    finally:
        os.close(fd)


def read_small(path: Path, limit: int = 16 << 20) -> bytes | None:
    """A small file of an agent's folder (settings, a registry entry, a marker), or
    None when it is absent, unreadable or not a regular file (`read_bytes`' rules:
    never blocks on a named pipe); at most `limit` bytes."""
    report = ReadReport()
    data, _ = read_bytes(path, report, limit)
    return None if report.errors else data


def is_regular(path: Path | os.DirEntry[str]) -> bool:
    """Whether `path` is a regular file (symlinks followed); False for anything else,
    and when it cannot be told (a symlink loop, a vanished file)."""
    try:
        return path.is_file()
    except OSError:
        return False


_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _repaired(value: Any) -> Any:
    """`value` with each lone surrogate in its strings (keys too) made U+FFFD."""
    if isinstance(value, str):
        if _SURROGATE.search(value) is None:
            return value
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if isinstance(value, dict):
        return {_repaired(k): _repaired(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_repaired(v) for v in value]
    return value


def loads_repaired(raw: bytes | memoryview) -> Any:
    """JSON that orjson refuses but the agents' own readers (JavaScript's JSON.parse)
    accept: an escaped lone surrogate (`"\\ud83d"`: Claude Code writes one when it cuts
    text in the middle of an emoji) or bytes that are not UTF-8, each such character
    read as U+FFFD. Raises ValueError when it is not JSON at all."""
    text = bytes(raw).decode("utf-8", "replace")
    return _repaired(json.loads(text, parse_constant=_no_constant))


_UNREADABLE: Any = object()  # what `_repair` gives for a line that is not JSON at all

# 19 digits in a row: where an integer orjson reads as a float (beyond 64 bits) may be
_LONG_DIGITS = re.compile(rb"\d{19}")


def _exact(raw: bytes | memoryview, value: Any) -> Any:
    """`value` (orjson's reading of `raw`) read again by the stdlib json module, which
    keeps an integer beyond 64 bits exact where orjson gives a float; `value` when that
    fails (nested deeper than the interpreter reads)."""
    try:
        return loads_repaired(raw)
    except (ValueError, RecursionError):
        return value


def _repair(raw: bytes | memoryview, number: int, report: ReadReport) -> Any:
    """A line orjson refused: its value by `loads_repaired` (counted in
    `report.repaired`), or _UNREADABLE (counted in `report.bad_lines`)."""
    try:
        value = loads_repaired(raw)
    except (ValueError, RecursionError):
        report.bad_lines.append(number)
        return _UNREADABLE
    report.repaired.append(number)
    return value


def loads_exact(raw: bytes) -> Any:
    """`raw` parsed by orjson (JSONDecodeError when it cannot), integers beyond 64 bits
    kept as they are written (see `iter_objects`'s `exact`)."""
    value = _loads(raw)
    return _exact(raw, value) if _LONG_DIGITS.search(raw) is not None else value


def iter_objects(
    data: bytes, report: ReadReport, *, exact: bool = False
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based line number, object) for every line of `data` that is a JSON object.
    Lines are parsed in place (memoryview slices: no copy of each line).

    orjson reads an integer beyond 64 bits as a float. `exact`: such integers are kept
    as they are written (lines holding 19 digits in a row are read again by the stdlib),
    for what is written out again, as the hooks publish a message: the search over all
    of `data` costs about a sixth of the reading, which the other readers spare."""
    view = memoryview(data)
    find = data.find
    number = 0
    pos = 0
    # one search over the whole of it: almost never found, and then only its lines are
    # read a second time, by the stdlib (integers beyond 64 bits kept exact)
    digits = exact and _LONG_DIGITS.search(data) is not None
    while True:
        nl = find(b"\n", pos)
        if nl < 0:
            break
        number += 1
        if nl > pos:
            try:
                obj = _loads(view[pos:nl])
            except orjson.JSONDecodeError:
                blank = data[pos:nl].isspace()
                obj = _UNREADABLE if blank else _repair(view[pos:nl], number, report)
            else:
                if digits and _LONG_DIGITS.search(data, pos, nl) is not None:
                    obj = _exact(view[pos:nl], obj)
            if isinstance(obj, dict):
                report.lines += 1
                yield number, obj
            elif obj is not _UNREADABLE:
                report.bad_lines.append(number)
        pos = nl + 1
    tail = data[pos:]
    if tail.strip():
        try:
            obj = _loads(tail)
            if digits and _LONG_DIGITS.search(tail) is not None:
                obj = _exact(tail, obj)
        except orjson.JSONDecodeError:
            try:  # a whole line with a lone surrogate, written without a final newline
                obj = loads_repaired(tail)
            except (ValueError, RecursionError):
                report.torn_tail = len(tail)
                return
            report.repaired.append(number + 1)
        if isinstance(obj, dict):
            report.lines += 1
            yield number + 1, obj
        else:
            report.bad_lines.append(number + 1)


def parse_time(value: Any) -> float | None:
    """An ISO-8601 timestamp ("2026-01-10T23:53:42.214Z") or epoch number as epoch seconds."""
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / 1000.0 if value > 1e11 else float(value)
    return None


# "2026-01-10T23:53:42.214Z", the shape every agent here writes: such strings sort as
# the times they name, so the span of many needs only two of them parsed.
_USUAL_STAMPS = re.compile(rb"(?:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)*")


def time_span(stamps: list[Any]) -> tuple[float | None, float | None]:
    """The earliest and latest of `stamps` by `parse_time` (values that do not parse
    are left out), as if each were parsed: the usual UTC strings are compared as text
    (one regular-expression pass checks their shape) and only the first and the last
    are parsed; anything else, or a usual-looking one that does not parse at the ends,
    is parsed one by one."""
    usual = [s for s in stamps if type(s) is str and len(s) == 24]
    times: list[float] = []
    if usual and _USUAL_STAMPS.fullmatch("".join(usual).encode("ascii", "replace")):
        lo, hi = parse_time(min(usual)), parse_time(max(usual))
        if lo is not None and hi is not None:
            times += (lo, hi)
            stamps = [s for s in stamps if not (type(s) is str and len(s) == 24)]
    for s in stamps:
        t = parse_time(s)
        if t is not None:
            times.append(t)
    return (min(times), max(times)) if times else (None, None)


TEXT_LIMIT = 1 << 20  # characters of one text a reader keeps (`text_of`)
_CUT = re.compile(r"\n\[… ([0-9,]+) more characters not kept here\]")


def cut_text(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters and a line saying how many more there
    were (a message's text is published, indexed and exported: never cut unseen)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[… {len(text) - limit:,} more characters not kept here]"


def was_cut(text: str) -> bool:
    """Whether `text` holds the line `cut_text` puts where it cut."""
    return "more characters not kept here]" in text and _CUT.search(text) is not None


def cut_sizes(text: str) -> tuple[int, int] | None:
    """(characters kept, characters not kept) of a text that ends with the line
    `cut_text` puts where it cut; None for any other text."""
    if not text.endswith("more characters not kept here]"):
        return None
    tail = text[-80:]  # the line is at most 63 characters (a count under 10**18)
    found = list(_CUT.finditer(tail))
    if not found or found[-1].end() != len(tail):
        return None
    line = found[-1]
    kept = len(text) - len(tail) + line.start()
    return kept, int(line.group(1).replace(",", ""))


TOO_DEEP = "[nested too deep to show]"
TEXT_DEPTH = 64  # levels of lists and parts `text_of` walks into before giving up


def json_text(value: Any) -> str | None:
    """`value` as compact JSON text: by orjson, else (nested deeper than the 255
    levels orjson writes) by the stdlib json module; None when neither can write it
    (the stdlib stops at the interpreter's recursion limit)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        pass
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (RecursionError, ValueError, TypeError):
        return None


def dump_line(value: Any) -> bytes | None:
    """`value` as one JSONL line (newline included), written by `json_text`'s rules;
    None when it cannot be written."""
    text = json_text(value)
    if text is None:
        return None
    try:
        return text.encode() + b"\n"
    except UnicodeEncodeError:
        return None


def text_of(value: Any, limit: int = TEXT_LIMIT) -> str:
    """Readable text out of a string, a list of parts/blocks, or anything else; at
    most `limit` characters of it (`cut_text`). A value nested more than
    `TEXT_DEPTH` levels (a file may hold up to the 1,024 orjson reads) is shown as
    `TOO_DEEP` below that level."""
    return _text(value, limit, 0)


def _text(value: Any, limit: int, depth: int) -> str:
    if isinstance(value, str):
        return cut_text(value, limit)
    if value is None:
        return ""
    if depth >= TEXT_DEPTH:
        return TOO_DEEP
    if isinstance(value, list):
        parts = [_text(v, limit, depth + 1) for v in value]
        return cut_text("\n".join(p for p in parts if p), limit)
    if isinstance(value, dict):
        for key in ("text", "output", "content", "error", "message"):
            if key in value:
                return _text(value[key], limit, depth + 1)
        if "functionResponse" in value:
            return _text(value["functionResponse"], limit, depth + 1)
        if "response" in value:
            return _text(value["response"], limit, depth + 1)
    text = json_text(value)
    return TOO_DEEP if text is None else cut_text(text, limit)


def as_list(value: Any) -> list[Any]:
    """`value` if it is a list, else [] (a field another version typed differently)."""
    return value if isinstance(value, list) else []


def estimate_tokens(chars: int) -> int:
    """About four characters per token, the rule of thumb for English and code."""
    return (chars + 3) // 4
