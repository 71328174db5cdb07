"""Rules-based enrichment: chain type, ACE tier, tags and sender, from a TOML file.

Enrichment only produces the record's `meta` field. It runs on the recorder's
hot path, so the rules are compiled into lookup tables: topic rules are resolved
once per topic, and a message costs a few dict lookups over its top-level keys,
a handful of fields and the words of a bounded prefix.
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from recorder.errors import BadOption
from recorder.store.ranges import MAX_KEY_CHARS

DEFAULT_CHAIN = "message"
_MAX_TOPIC_CACHE = 4096
# Per-key memory is bounded by key count *and* key length: longer topics are looked
# up every time instead of cached, and senders are cut to MAX_KEY_CHARS.
_MAX_META_CACHE = 8192
_TEXT_KEYS = ("text", "content", "message", "body")
_MAX_SHAPES = 1024
_MAX_SHAPE_KEYS = 64
_MAX_SHAPE_CHARS = 2048  # so the shapes kept hold at most 2 M characters of keys
_NONE: frozenset[int] = frozenset()
# Lower-cases ASCII letters and turns everything but [a-z0-9_] into a space, in C.
_WORDS_TABLE = bytes(
    c + 32 if 65 <= c <= 90 else c if (97 <= c <= 122 or 48 <= c <= 57 or c == 95) else 32
    for c in range(256)
)


# each group of rules, and the field that holds a rule's result (with its type)
_RESULTS: dict[str, tuple[str, type]] = {
    "chain": ("type", str),
    "ace": ("layer", int),
    "tags": ("tag", str),
}
_MATCHERS = ("topics", "keys", "keywords")  # lists of strings
_SCALARS = (str, int, float, bool)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


def _all_scalars(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, _SCALARS) for x in value)


def _setting_problem(key: str, value: Any) -> str | None:
    if key == "scan_bytes":
        return None if type(value) is int and value >= 0 else "is not a whole number of bytes"
    if key == "sender_keys":
        return None if _strings(value) else "is not a list of strings"
    return "is not a setting (scan_bytes, sender_keys are)"


def _rule_key_problem(group: str, key: str, value: Any) -> str | None:
    """What is wrong with one key of a rule of `group` (None: nothing)."""
    field, _kind = _RESULTS[group]
    if key in _MATCHERS:
        return None if _strings(value) else f"{key} is not a list of strings"
    if key == "values":
        accepted = value.values() if isinstance(value, dict) else [None]
        ok = all(isinstance(a, _SCALARS) or _all_scalars(a) for a in accepted)
        return None if ok else "values is not a table of values or lists of them"
    if key == "name" and group == "ace":
        return None if isinstance(value, str) else "name is not a string"
    if key == field:
        return None
    return f"{key} is not a rule key ({field}, {', '.join(_MATCHERS)}, values)"


def check_rules(data: dict[str, Any], source: str) -> None:
    """Refuse rules the recorder would crash on or silently misread: raises `BadOption`
    naming the file, the rule and the key (a typo in a key name is refused too, as it
    would otherwise be a rule that never matches)."""

    def bad(where: str, problem: str) -> BadOption:
        return BadOption(f"{source}: {where} {problem}")

    for name, value in data.items():
        if name == "settings":
            if not isinstance(value, dict):
                raise bad("settings", "is not a table")
            for key, v in value.items():
                if problem := _setting_problem(key, v):
                    raise bad(f"settings.{key}", problem)
            continue
        if name not in _RESULTS:
            raise bad(name, "is not a table of rules (settings, chain, ace and tags are)")
        field, kind = _RESULTS[name]
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise bad(name, f"is not a list of rules ([[{name}]] tables)")
        for n, rule in enumerate(value, 1):
            where = f"[[{name}]] rule {n}:"
            if type(rule.get(field)) is not kind:
                noun = "string" if kind is str else "whole number"
                raise bad(where, f"{field} is missing or not a {noun}")
            for key, v in rule.items():
                if problem := _rule_key_problem(name, key, v):
                    raise bad(where, problem)


@dataclass(frozen=True)
class Rule:
    group: str  # "chain", "ace" or "tags"
    result: Any
    topics: tuple[str, ...]


def _is_word(keyword: bytes) -> bool:
    return keyword.translate(_WORDS_TABLE) == keyword and b" " not in keyword


# (value tables of the fields present, key rules matched, sender keys, text keys)
_Shape = tuple[
    tuple[tuple[str, dict[Any, frozenset[int]]], ...],
    frozenset[int],
    tuple[str, ...],
    tuple[str, ...],
]


class Enricher:
    """Compiled enrichment rules. `enrich()` is what the recorder calls."""

    def __init__(self, data: dict[str, Any], source: str = "built-in defaults") -> None:
        settings = data.get("settings") or {}
        self.source = source
        self.scan_bytes = int(settings.get("scan_bytes", 64))
        self.sender_keys = tuple(
            settings.get("sender_keys") or ("sender", "from", "agent", "source", "author")
        )
        self.rules: list[Rule] = []
        keys_lists: dict[str, list[int]] = {}
        values: dict[tuple[str, Any], list[int]] = {}
        value_fields: set[str] = set()
        word_lists: dict[bytes, list[int]] = {}
        phrase_list: list[tuple[bytes, int]] = []
        results: dict[str, Callable[[dict[str, Any]], Any]] = {
            "chain": lambda r: str(r["type"]),
            "ace": lambda r: (int(r["layer"]), str(r.get("name", ""))),
            "tags": lambda r: str(r["tag"]),
        }
        for group, result_of in results.items():
            for raw in data.get(group) or ():
                rid = len(self.rules)
                self.rules.append(Rule(group, result_of(raw), tuple(raw.get("topics") or ())))
                for key in raw.get("keys") or ():
                    keys_lists.setdefault(str(key), []).append(rid)
                for field, accepted in (raw.get("values") or {}).items():
                    value_fields.add(str(field))
                    for value in accepted if isinstance(accepted, list) else [accepted]:
                        values.setdefault((str(field), value), []).append(rid)
                for keyword in raw.get("keywords") or ():
                    kw = str(keyword).lower().encode()
                    if _is_word(kw):
                        word_lists.setdefault(kw, []).append(rid)
                    else:
                        phrase_list.append((kw, rid))
        self._value_tables = tuple(
            (f, {v: frozenset(rids) for (ff, v), rids in values.items() if ff == f})
            for f in sorted(value_fields)
        )
        self._keys = {k: frozenset(v) for k, v in keys_lists.items()}
        self._words = {k: frozenset(v) for k, v in word_lists.items()}
        self._phrases = [(p, frozenset([rid])) for p, rid in phrase_list]
        self._scan = bool(self._words or self._phrases)
        self._word_set = frozenset(self._words)
        self._key_set = frozenset(self._keys)
        self._phrases_cased = any(p.lower() != p.upper() for p, _ in phrase_list)
        self._topic_cache: dict[str, tuple[int, tuple[Any, Any, tuple[str, ...]]]] = {}
        self._topic_ids: dict[tuple[Any, Any, tuple[str, ...]], int] = {}
        self._meta_cache: dict[tuple[Any, ...], bytes] = {}
        self._shapes: dict[tuple[str, ...], _Shape] = {}

    @property
    def has_keyword_rules(self) -> bool:
        """Whether `classify(scan=False)` marks its result `"partial": true`."""
        return self._scan

    @classmethod
    def from_toml(cls, text: str, source: str = "rules") -> Enricher:
        """Rules from TOML text; `BadOption` names what is wrong with them."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise BadOption(f"{source} is not valid TOML: {exc}") from None
        check_rules(data, source)
        return cls(data, source)

    @classmethod
    def load(cls, path: Path | None = None) -> Enricher:
        """Rules from `path` when given, else the packaged defaults."""
        if path is not None:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                raise BadOption(f"cannot read the rules file {path}: {problem}") from None
            return cls.from_toml(text, str(path))
        text = resources.files("recorder.daemon").joinpath("default_rules.toml").read_text("utf-8")
        return cls.from_toml(text, "built-in defaults")

    def _resolve(self, matched: Collection[int]) -> tuple[Any, Any, tuple[str, ...]]:
        chain = ace = None
        tags: list[str] = []
        for rid in sorted(matched):
            rule = self.rules[rid]
            if rule.group == "chain":
                chain = rule.result if chain is None else chain
            elif rule.group == "ace":
                ace = rule.result if ace is None else ace
            elif rule.result not in tags:
                tags.append(rule.result)
        return chain, ace, tuple(tags)

    def _by_topic(self, topic: str) -> tuple[int, tuple[Any, Any, tuple[str, ...]]]:
        """What the topic rules say, with a small id for it (cheap to hash)."""
        matched = [
            rid
            for rid, rule in enumerate(self.rules)
            if any(fnmatch.fnmatchcase(topic, p) for p in rule.topics)
        ]
        result = self._resolve(matched)
        result_id = self._topic_ids.setdefault(result, len(self._topic_ids))
        if len(topic) <= MAX_KEY_CHARS:  # a hostile topic of megabytes is never kept
            if len(self._topic_cache) >= _MAX_TOPIC_CACHE:
                self._topic_cache.clear()
            self._topic_cache[topic] = (result_id, result)
        return result_id, result

    def _shape(self, keys: tuple[str, ...]) -> _Shape:
        """What the rules read of an object with these top-level keys (in this order):
        the value tables of the keys it has, the key rules it matches, its sender
        keys and text keys in their order of precedence. Remembered per key tuple:
        messages of one kind share their keys, so a message costs a lookup, not a
        look at every rule's field."""
        present = frozenset(keys)
        matched: frozenset[int] = _NONE
        for key in self._key_set.intersection(present):
            matched = matched | self._keys[key]
        shape = (
            tuple((f, table) for f, table in self._value_tables if f in present),
            matched,
            tuple(k for k in self.sender_keys if k in present),
            tuple(k for k in _TEXT_KEYS if k in present),
        )
        # a hostile object of many or long keys is never kept
        if (
            len(keys) <= _MAX_SHAPE_KEYS
            and sum(len(k) for k in keys if type(k) is str) <= _MAX_SHAPE_CHARS
        ):
            if len(self._shapes) >= _MAX_SHAPES:
                self._shapes.clear()
            self._shapes[keys] = shape
        return shape

    def enrich(self, topic: str, obj: Any, payload: bytes) -> dict[str, Any]:
        """Metadata for one message, as a dict. `obj` is the parsed payload or None."""
        return orjson.loads(self.classify(topic, obj, payload)[0])  # type: ignore[no-any-return]

    def classify(
        self, topic: str, obj: Any, payload: bytes, scan: bool = True
    ) -> tuple[bytes, str | None]:
        """Metadata for one message as JSON bytes, and its sender (the hot path).

        Everything that can be is looked up rather than computed: the topic's
        result, the rule ids a field value or key maps to, and the final JSON
        for each distinct (topic result, matched rules, sender). `scan=False`
        skips the keyword rules (the recorder does that only while it is behind)
        and marks the result `"partial": true`.
        """
        scan = scan and self._scan
        cached = self._topic_cache.get(topic)
        if cached is None:
            cached = self._by_topic(topic)
        topic_id, by_topic = cached
        matched: frozenset[int] = _NONE
        sender = None
        text = payload
        if type(obj) is dict:
            keys = tuple(obj)
            shape = self._shapes.get(keys)
            if shape is None:
                shape = self._shape(keys)
            value_tables, matched, senders, text_keys = shape
            for field, table in value_tables:
                value = obj[field]
                if type(value) is str or type(value) is int:
                    hit = table.get(value)
                    if hit:
                        matched = matched | hit if matched else hit
            for key in senders:
                value = obj[key]
                if value and type(value) is str:
                    sender = value[:MAX_KEY_CHARS]
                    break
            else:
                envelope = obj.get("_persist")
                if type(envelope) is dict and type(envelope.get("agent")) is str:
                    sender = envelope["agent"][:MAX_KEY_CHARS]
            if scan:
                for key in text_keys:  # keywords are looked for in the message's text
                    value = obj[key]
                    if type(value) is str:
                        text = value[: self.scan_bytes].encode("utf-8", "replace")
                        break
        if scan:
            head = text[: self.scan_bytes]
            if self._words:
                words = head.translate(_WORDS_TABLE).split()
                if not self._word_set.isdisjoint(words):  # most messages: no set made
                    for word in self._word_set.intersection(words):
                        matched = matched | self._words[word] if matched else self._words[word]
            if self._phrases:
                lowered = head.lower() if self._phrases_cased else head
                # `find`, not `in`: bytes `in` first tries its operand as an integer
                # and clears the TypeError, about 80 ns more a test (CPython 3.11)
                find = lowered.find
                for phrase, rids in self._phrases:
                    if find(phrase) >= 0:
                        matched = matched | rids if matched else rids
        partial = self._scan and not scan
        meta_key = (topic_id, matched, sender, partial)
        meta = self._meta_cache.get(meta_key)
        if meta is None:
            meta = self._meta_json(by_topic, matched, sender, partial)
            if len(self._meta_cache) >= _MAX_META_CACHE:
                self._meta_cache.clear()
            self._meta_cache[meta_key] = meta
        return meta, sender

    def _meta_json(
        self,
        by_topic: tuple[Any, Any, tuple[str, ...]],
        matched: frozenset[int],
        sender: Any,
        partial: bool,
    ) -> bytes:
        chain, ace, tags = by_topic
        if matched:
            c_chain, c_ace, c_tags = self._resolve(matched)
            chain = chain or c_chain
            ace = ace or c_ace
            tags = tags + tuple(t for t in c_tags if t not in tags)
        fields: dict[str, Any] = {"chain": chain or DEFAULT_CHAIN}
        if ace is not None:
            fields["ace"] = ace[0]
            fields["ace_name"] = ace[1]
        if tags:
            fields["tags"] = list(tags)
        if sender is not None:
            fields["sender"] = sender
        if partial:
            fields["partial"] = True
        return orjson.dumps(fields)
