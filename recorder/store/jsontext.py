"""JSON of values that may hold a file name that is not UTF-8.

On Linux a name is bytes; Python reads the bytes that are not UTF-8 as lone surrogates
(U+DC80-U+DCFF, `surrogateescape`), which orjson refuses ("str is not valid UTF-8"). A
log folder so named is written down, in status.json, a manifest or a `--json` output,
as text every JSON reader takes: such a byte as `\\xNN` (as `ls -b` shows it).
"""

from __future__ import annotations

from typing import Any

import orjson


def utf8_text(text: str) -> str:
    """`text` itself when it is UTF-8; else each byte that was not UTF-8 as `\\xNN` and
    any other lone surrogate as `\\uXXXX`."""
    try:
        text.encode()
    except UnicodeEncodeError:
        pass
    else:
        return text
    out = []
    for ch in text:
        if "\udc80" <= ch <= "\udcff":
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif "\ud800" <= ch <= "\udfff":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def utf8_problem(text: str) -> str | None:
    """None when `text` is UTF-8; else what is wrong, for a message that names it:
    "is not valid UTF-8 (byte 0xe9 at character 3)"."""
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        ch = text[exc.start]
        if "\udc80" <= ch <= "\udcff":
            return f"is not valid UTF-8 (byte 0x{ord(ch) - 0xDC00:02x} at character {exc.start})"
        return f"is not valid UTF-8 (a lone surrogate U+{ord(ch):04X} at character {exc.start})"
    return None


def _utf8_only(value: Any) -> Any:
    if isinstance(value, str):
        return utf8_text(value)
    if isinstance(value, dict):
        return {utf8_text(k) if isinstance(k, str) else k: _utf8_only(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_utf8_only(v) for v in value]
    return value


def dumps(value: Any, option: int | None = None) -> bytes:
    """`orjson.dumps(value, option=option)`; a string in it that is not UTF-8 (a path
    read from a name that is not) is written as `utf8_text` gives it."""
    try:
        return orjson.dumps(value, option=option)
    except orjson.JSONEncodeError as exc:
        if "not valid UTF-8" not in str(exc):
            raise
    return orjson.dumps(_utf8_only(value), option=option)


def dumps_names(value: Any, option: int | None = None) -> bytes:
    """`orjson.dumps(value, option=option)` for a file we read back ourselves (a cache, a
    manifest), where a name that is not UTF-8 must come back as the name it is: such a
    string is written as JSON's `\\udcXX` escape of each byte that is not UTF-8 (JSON's
    grammar; Python's `json` reads it back, `loads_names` does). Only then is the
    document written by `json` (ASCII, keys in order); else it is orjson's, as always."""
    try:
        return orjson.dumps(value, option=option)
    except orjson.JSONEncodeError as exc:
        if "not valid UTF-8" not in str(exc):
            raise
    import json

    indent = 2 if option is not None and option & orjson.OPT_INDENT_2 else None
    separators = (",", ": ") if indent else (",", ":")
    return json.dumps(value, indent=indent, separators=separators).encode()


def loads_names(data: bytes | str) -> Any:
    """What `dumps_names` wrote (or any JSON): `orjson.loads`, or, for a document with
    a name that is not UTF-8 in it (`\\udcXX`, which orjson refuses), Python's `json`.
    Raises orjson.JSONDecodeError (a ValueError) for what is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "surrogate" not in str(exc):
            raise
        first = exc
    import json

    try:
        return json.loads(data)
    except ValueError:
        raise first from None
