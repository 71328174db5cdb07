"""Retention settings: ages ("90d") and sizes ("20G") as people write them, and the
recorder's `<log folder>/retention.toml`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from recorder.errors import BadOption
from recorder.store.fsutil import read_regular
from recorder.store.layout import Layout

DEFAULT_GRACE = 14 * 86400.0  # seconds a trash entry is kept before it may be emptied
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZES = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass(frozen=True)
class Policy:
    """What may go. Both None: retention is off (the default)."""

    older_than: float | None = None  # seconds: segments whose last record is older
    max_size: int | None = None  # bytes: oldest segments go until the journal fits

    @property
    def active(self) -> bool:
        return self.older_than is not None or self.max_size is not None

    def to_json(self) -> dict[str, Any]:
        return {"older_than_s": self.older_than, "max_size_bytes": self.max_size}


def parse_duration(text: str, option: str) -> float:
    """ "90d", "12h", "30m", "45s", "2w" (or 0); BadOption naming `option` otherwise.

    A unit is required: these decide what retention deletes, and `--older-than 90` read
    as 90 seconds would take everything. `M` is refused as well: minutes or months?"""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdwSHDWM]?)\s*", text)
    if not m:
        raise BadOption(f"{option} {text!r} is not a duration (like 90d, 12h, 30m, 45s, 2w)")
    number, unit = float(m.group(1)), m.group(2)
    if unit == "M":
        raise BadOption(f"{option} {text!r}: M could be minutes or months; use m or d (like 30d)")
    if not unit and number:
        raise BadOption(
            f"{option} {text!r} needs a unit: {m.group(1)}d, {m.group(1)}h... (a number alone "
            f"was seconds before 2026-12-06: {m.group(1)}s keeps that)"
        )
    return number * _UNITS[unit.lower() or "s"]


def parse_size(text: str, option: str) -> int:
    """ "20G", "500M", "64K", "1T" (powers of 1024), "4096B"; BadOption otherwise (a
    number alone too: `--max-size 20` read as 20 bytes would take everything)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*", text.lower())
    if not m:
        raise BadOption(f"{option} {text!r} is not a size (like 20G, 500M, 64K or 4096B)")
    value = int(float(m.group(1)) * _SIZES[m.group(2)])
    if value <= 0:
        raise BadOption(f"{option} must be above 0 (got {text!r})")
    if not m.group(2) and not text.strip().lower().endswith("b"):
        raise BadOption(
            f"{option} {text!r} needs a unit: {m.group(1)}G, {m.group(1)}M... (a number alone "
            f"was bytes before 2026-12-06: {m.group(1)}B keeps that)"
        )
    return value


DEFAULT_INTERVAL = 600.0  # seconds between a recorder's retention passes


@dataclass(frozen=True)
class RetentionConfig:
    """`[retention]` of `<log folder>/retention.toml`; a missing key is None."""

    older_than: float | None = None
    max_size: int | None = None
    interval: float | None = None
    trash_grace: float | None = None


def load_config(layout: Layout) -> RetentionConfig:
    """The folder's retention.toml ({} when absent); BadOption naming the file and key."""
    import tomllib

    path = layout.retention_config
    try:
        data = tomllib.loads(read_regular(path)[0].decode())  # never waits on a FIFO
    except FileNotFoundError:
        return RetentionConfig()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BadOption(f"{path} cannot be read as TOML ({exc})") from None
    section = data.get("retention", {})
    if not isinstance(section, dict):
        raise BadOption(f"{path}: [retention] is not a table")
    unknown = sorted(set(section) - {"older_than", "max_size", "interval", "trash_grace"})
    if unknown:
        raise BadOption(f"{path}: unknown key {unknown[0]!r} in [retention]")

    def value(key: str) -> str | None:
        v = section.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise BadOption(f'{path}: retention.{key} must be a string like "90d" or "20G"')
        return str(v)

    def duration(key: str) -> float | None:
        v = value(key)
        return None if v is None else parse_duration(v, f"{path.name} retention.{key}")

    size = value("max_size")
    return RetentionConfig(
        older_than=duration("older_than"),
        max_size=None if size is None else parse_size(size, f"{path.name} retention.max_size"),
        interval=duration("interval"),
        trash_grace=duration("trash_grace"),
    )
