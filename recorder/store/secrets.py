"""Secrets in messages: where they are (kind and span, never the value), and redaction.

The recorder calls `SecretScanner.scan_batch` on its hot path, so detection is in two
stages. The prefilter runs over a whole batch of payloads joined into one buffer (the
buffer the recorder already builds): a handful of regex passes, each with a literal
prefix (the one form `re` searches with a tight byte loop), some skipped when a
byte they need is absent (`in` on one byte is a memchr). Only the messages a pass
hits go to `find_secrets`, one combined regex with a named group per kind plus a
plausibility check (token bodies must look random: kebab-case words are not keys).

A span is `(frame, start, end)` in the frame's original bytes: `frames[frame][start:end]`
is the secret. Only text frames are scanned (valid UTF-8; a JSON frame is text), and
at most `scan_cap` bytes per message (the record says when it was capped).
"""

from __future__ import annotations

import base64
import binascii
import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise
from operator import itemgetter

import orjson

DEFAULT_SCAN_CAP = 64 * 1024  # bytes of one message scanned at record time (and in TUI rows)

# Kinds, as written in the journal (`meta.secrets[].kind`) and in `[REDACTED:kind]`.
OPENAI = "openai-key"
ANTHROPIC = "anthropic-key"
GITHUB = "github-token"
GITHUB_PAT = "github-pat"
AWS = "aws-access-key-id"
GOOGLE = "google-api-key"
SLACK = "slack-token"
PRIVATE_KEY = "private-key"
BEARER = "bearer-token"
JWT = "jwt"
PASSWORD = "password"
URL_PASSWORD = "url-password"
# Not a kind a scan finds: the end of a text cut short (a refused message's topic, cut
# at 256 bytes) where a secret the cut split may begin (`cut_secret`).
CUT_SECRET = "cut-secret"
KINDS = (
    OPENAI,
    ANTHROPIC,
    GITHUB,
    GITHUB_PAT,
    AWS,
    GOOGLE,
    SLACK,
    PRIVATE_KEY,
    BEARER,
    JWT,
    PASSWORD,
    URL_PASSWORD,
)

_T = rb"A-Za-z0-9_\-"  # token characters (base64url and friends)
_GROUPS = {
    "anthropic": ANTHROPIC,
    "openai": OPENAI,
    "github_pat": GITHUB_PAT,
    "github": GITHUB,
    "aws": AWS,
    "google": GOOGLE,
    "slack": SLACK,
    "private_key": PRIVATE_KEY,
    "bearer": BEARER,
    "jwt": JWT,
    "password": PASSWORD,
    "url_password": URL_PASSWORD,
}
# One regex, one named group per kind; a group is the secret itself (for a bearer
# token, a password, a URL's password: the value only, not the words around it).
_FIND = re.compile(
    rb"(?P<anthropic>(?<![" + _T + rb"])sk-ant-[" + _T + rb"]{32,})"
    rb"|(?P<openai>(?<![" + _T + rb"])sk-(?:proj-|svcacct-|admin-)?[" + _T + rb"]{20,})"
    rb"|(?P<github_pat>(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{40,255})"
    rb"|(?P<github>(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36,255})(?![A-Za-z0-9_])"
    rb"|(?P<aws>(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z2-7]{16})(?![A-Za-z0-9])"
    rb"|(?P<google>(?<![" + _T + rb"])AIza[" + _T + rb"]{35})(?![" + _T + rb"])"
    rb"|(?P<slack>(?<![" + _T + rb"])xox[baprs]-[0-9]+-[A-Za-z0-9-]{8,250})"
    rb"|(?P<private_key>-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
    rb"(?:[\s\S]{0,32768}?-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
    rb"|(?:[A-Za-z0-9+/=\s:,.\-]|\\[nrt])*))"
    rb"|Bearer[ \t]+(?P<bearer>[A-Za-z0-9._~+/\-]{15,}[A-Za-z0-9_~+/\-]=*)"
    rb"|(?P<jwt>(?<![" + _T + rb"])eyJ[" + _T + rb"]{8,}\.[" + _T + rb"]{2,}\.[" + _T + rb"]*)"
    rb"|(?i:(?<![A-Za-z0-9])(?:password|passwd|pwd))=(?P<password>[^\s&\"'<>;,\\]{3,256})"
    rb"|[A-Za-z][A-Za-z0-9+.\-]{0,20}://[^\s/:@\"'<>\\]{1,128}:"
    rb"(?P<url_password>[^\s/@\"'<>\\]{1,256})@"
)
# Prefilter passes: (bytes the pass needs, each found by memchr, or b""; a regex with a
# literal prefix, which `re` finds with a tight byte loop and checks inline, so a pass
# costs about one read of the data; how far before a hit a `_FIND` match holding it can
# start). Every secret `_FIND` matches contains a hit of one, at most that far in.
_PW = rb"(?:(?<=[Pp][Aa][Ss][Ss][Ww][Oo][Rr]%s)|(?<=[Pp][Aa][Ss][Ss][Ww]%s)|(?<=[Pp][Ww]%s))"
_PASSES: tuple[tuple[bytes, re.Pattern[bytes], int], ...] = (
    (b"k-", re.compile(rb"sk-"), 0),
    (b"_h", re.compile(rb"gh[pousr]_"), 0),
    (b"_p", re.compile(rb"github_pat_"), 0),
    (b"AI", re.compile(rb"A(?:KIA|SIA|Iza)"), 0),
    (b"x-", re.compile(rb"xox[baprs]-"), 0),
    (b"V", re.compile(rb"PRIVATE KEY"), len(b"-----BEGIN") + 40),
    (b"B", re.compile(rb"Bearer[ \t]"), 0),
    (b"J", re.compile(rb"eyJ"), 0),
    (b"=", re.compile(rb"d=" + _PW % (b"d=", b"d=", b"d=")), len(b"passwor")),
    (b"D=", re.compile(rb"D=" + _PW % (b"D=", b"D=", b"D=")), len(b"PASSWOR")),
    (b"@", re.compile(rb"://[^\s/@]{1,400}@"), 21),  # the scheme: 1 + {0,20}
    # ... and as PHP's JSON encoder writes it, `:\/\/`, also in JSON quoted in a text
    # (`find_secrets` reads those escapes as JSON does: `_FIND` matches the reading)
    (b"@\\", re.compile(rb":\\+/\\+/[^\s/@]{1,400}@"), 0),
)
# The same, each needed byte on its own (what `in` looks for with memchr).
_GATED = tuple(
    (tuple(need[i : i + 1] for i in range(len(need))), rx, back) for need, rx, back in _PASSES
)
# Values that stand for a password rather than being one: $VAR, ${VAR}, %s, {name}, <...>,
# `user:pass@host` in docs, and code passing one along: password=None, pwd=pwd,
# password=self.password.
_PLACEHOLDER = re.compile(
    rb"(?:\$\{[^}]*\}|\$[A-Za-z_]\w*|\$\(.*\)|%(?:\(\w+\))?[sdr]|\{\{?[^}]*\}?\}|<[^>]*>"
    rb"|\*+|x{3,}|\.\.\.|\[\w*\]|none|null|nil|true|false|undefined|pwd|pass(?:w(?:or)?d)?"
    rb"|secret|changeme"
    rb"|[a-z_]\w*\.[a-z_][\w.]*)[.,;:)\]`]*",  # the end of a sentence, `code` in Markdown
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SecretSpan:
    """One secret: its kind and where its bytes are (never the bytes themselves)."""

    kind: str
    frame: int  # index of the frame (0 = the topic frame of a multi-frame message)
    start: int  # byte offsets in that frame's original bytes
    end: int

    def as_json(self) -> dict[str, object]:
        return {"kind": self.kind, "frame": self.frame, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class ScanResult:
    spans: tuple[SecretSpan, ...]
    capped: bool  # only the first `scan_cap` bytes of the message's text were scanned


def _classes(token: bytes) -> tuple[bool, bool, bool]:
    """(has a digit, an upper case letter, a lower case letter)."""
    return (
        any(48 <= c <= 57 for c in token),
        any(65 <= c <= 90 for c in token),
        any(97 <= c <= 122 for c in token),
    )


def _sequential(token: bytes, run: int = 6) -> bool:
    """`abcdef`, `UVWXYZ`, `123456` inside: a made-up test key (odds of six ascending
    characters in a row in a random base62 body of 100: about 1 in 10^7)."""
    count = 1
    for a, b in pairwise(token):
        count = count + 1 if b == a + 1 else 1
        if count >= run:
            return True
    return False


def _mixed(token: bytes) -> bool:
    """A base62/base64url key body, not words: digits and both cases (random bodies of
    20+ characters have all three with overwhelming odds; `sk-my-kebab-name-v2` not),
    and not a made-up sequence."""
    return all(_classes(token)) and not _sequential(token)


def _opaque(token: bytes) -> bool:
    """A token that may be hex (bearer tokens, Slack's last part): a digit, a letter,
    and at least ten distinct characters."""
    digit, upper, lower = _classes(token)
    return digit and (upper or lower) and len(set(token)) >= 10 and not _sequential(token)


_KEY_BODY = re.compile(rb"[A-Za-z0-9+/]{40}")


def _jwt_header_ok(token: bytes) -> bool:
    head = token.split(b".", 1)[0]
    try:
        value = orjson.loads(base64.urlsafe_b64decode(head + b"=" * (-len(head) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return False
    return isinstance(value, dict) and "alg" in value


def _plausible(kind: str, value: bytes) -> bool:
    if kind in (OPENAI, ANTHROPIC, GITHUB_PAT):
        body = value.split(b"_", 2)[-1] if kind == GITHUB_PAT else value
        return len(body) >= 16 and _mixed(body)
    if kind == GITHUB:  # 36 characters: one in 500 random ones has no digit
        _, upper, lower = _classes(value[4:])
        return upper and lower and not _sequential(value)
    if kind in (SLACK, BEARER):
        return _opaque(value)
    if kind == PRIVATE_KEY:  # a header alone (in a regex, a test) is not a key
        return _KEY_BODY.search(value) is not None
    if kind == JWT:
        return _jwt_header_ok(value)
    if kind in (PASSWORD, URL_PASSWORD):
        return _PLACEHOLDER.fullmatch(value) is None
    return True


def find_secrets(data: bytes, frame: int = 0) -> list[SecretSpan]:
    """Every secret in one frame's bytes (the full regex: use after a prefilter hit).

    A JSON frame may hold a secret with some of its characters escaped (`\\/` from
    PHP's encoder, `\\u0026` from Go's), once more for JSON quoted in a message's text
    (a tool's output): the frame is read again as those escapes say (`_unescaped`), up
    to `UNESCAPE_LEVELS` times, and a secret found in a reading covers its escapes in
    the original bytes (a token cut at its first `\\/` left the rest of it visible).
    Where readings disagree, the most decoded one wins."""
    readings = [_found(data, frame)]
    text = data
    back: list[list[tuple[int, int]]] = []  # the anchors of each reading, the first's first
    while len(back) < UNESCAPE_LEVELS and b"\\" in text:
        view = _unescaped(text)
        if view is None:
            break
        text, anchors = view
        back.append(anchors)
        readings.append(
            [
                SecretSpan(s.kind, frame, _original(back, s.start), _original(back, s.end))
                for s in _found(text, frame)
            ]
        )
    if len(readings) == 1:
        return readings[0]
    kept: list[SecretSpan] = []
    for spans in reversed(readings):
        kept += [s for s in spans if not any(s.start < k.end and k.start < s.end for k in kept)]
    return sorted(kept, key=lambda s: s.start)


def _original(back: list[list[tuple[int, int]]], pos: int) -> int:
    """A position in the last reading of `back` as a position in the frame's bytes."""
    for anchors in reversed(back):
        at, was = anchors[bisect_right(anchors, pos, key=itemgetter(0)) - 1]
        pos = was + pos - at
    return pos


def _starts(data: bytes) -> list[int]:
    """Every position where a `_FIND` match can start, in order: a few before each hit
    of a prefilter pass (hits found from each one's next byte, so none hides another)."""
    starts: set[int] = set()
    for need, rx, back in _GATED:
        for byte in need:
            if byte not in data:
                break
        else:
            m = rx.search(data)
            while m is not None:
                at = m.start()
                starts.update(range(max(0, at - back), at + 1))
                m = rx.search(data, at + 1)
    return sorted(starts)


def _found(data: bytes, frame: int) -> list[SecretSpan]:
    """What `_FIND.finditer(data)` finds, trying only where `_starts` says a match can
    start: a regex of a dozen alternatives tried at every byte of a 64 KiB base64 image
    took 20 ms, for the "eyJ" one in four such images holds by chance."""
    found: list[SecretSpan] = []
    done = 0  # where the last match ended (matches do not overlap, as in `finditer`)
    for at in _starts(data):
        if at < done or (m := _FIND.match(data, at)) is None:
            continue
        done = m.end()
        group = m.lastgroup
        if group is None:
            continue
        kind = _GROUPS[group]
        start, end = m.span(group)
        if _plausible(kind, data[start:end]):
            found.append(SecretSpan(kind, frame, start, end))
    return found


UNESCAPE_LEVELS = 3  # readings of a frame's JSON escapes (see `find_secrets`)
# A JSON escape of a printable ASCII character (`\\u0020` to `\\u007f`), of `/`, or of
# a backslash (matched as one, so the character after it is never taken for another).
_ESCAPE = re.compile(rb"\\(?:u00([2-7][0-9a-fA-F])|(/)|\\)")


def _unescaped(data: bytes) -> tuple[bytes, list[tuple[int, int]]] | None:
    """`data` with its `_ESCAPE`s decoded, and anchors (position in it, position in
    `data`) after which the two advance together; None when there is none."""
    pieces: list[bytes] = []
    anchors = [(0, 0)]
    pos = size = 0
    for m in _ESCAPE.finditer(data):
        code, slash = m.groups()
        char = b"/" if slash else b"\\" if code is None else bytes((int(code, 16),))
        pieces.append(data[pos : m.start()])
        size += m.start() - pos + 1
        pieces.append(char)
        pos = m.end()
        anchors.append((size, pos))
    if len(anchors) == 1:
        return None
    pieces.append(data[pos:])
    return b"".join(pieces), anchors


def maybe_secret(data: bytes) -> bool:
    """The prefilter: False means `find_secrets(data)` finds nothing. (Plain loops: this
    runs once per record in readers, where generator frames cost more than the passes.)"""
    for need, rx, _ in _GATED:
        for byte in need:
            if byte not in data:
                break
        else:
            if rx.search(data) is not None:
                return True
    return False


def scan_frames(
    frames: Sequence[bytes], cap: int | None = DEFAULT_SCAN_CAP, *, text_only: bool = True
) -> ScanResult:
    """Secrets in one message's text frames, at most `cap` bytes in all (None: no cap).
    `text_only=False` scans a part that is not UTF-8 too: a damaged line, which readers
    show as its bytes decoded whatever they hold (an ASCII byte is never lost to a
    replacement character, so a span of the bytes is the span shown)."""
    spans: list[SecretSpan] = []
    budget = cap
    capped = False
    for i, raw in enumerate(frames):
        if budget is not None:
            if budget <= 0:
                capped = capped or bool(raw)
                continue
            if len(raw) > budget:
                raw = raw[:budget]
                capped = True
        if budget is not None:
            budget -= len(raw)
        if not maybe_secret(raw) or (text_only and not _is_text_prefix(raw)):
            continue
        spans.extend(find_secrets(raw, i))
    return ScanResult(tuple(spans), capped)


def _is_text_prefix(raw: bytes) -> bool:
    """Valid UTF-8, allowing a character cut at the end by the scan cap."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start >= len(raw) - 3 and e.reason == "unexpected end of data"
    return True


class SecretScanner:
    """What the recorder runs per batch; `cap` bytes per message at most."""

    def __init__(self, cap: int = DEFAULT_SCAN_CAP) -> None:
        self.cap = cap

    def candidates(self, joined: bytes, lengths: Iterable[int]) -> list[int]:
        """Indexes of the messages whose part of `joined` (their last frames, one
        after the other, `lengths` bytes each) a prefilter pass hits; usually none."""
        hits: list[int] = []
        ends: list[int] | None = None
        for need, rx, _ in _GATED:
            if not all(b in joined for b in need):
                continue
            pos = 0
            while (m := rx.search(joined, pos)) is not None:
                if ends is None:
                    ends = list(accumulate(lengths))
                i = bisect_right(ends, m.start())
                hits.append(i)
                pos = ends[i] if i < len(ends) else len(joined)
        return sorted(set(hits))


def meta_field(result: ScanResult) -> bytes:
    """The JSON members the recorder adds to `meta` (b"" when there is nothing to say)."""
    parts = b""
    if result.spans:
        parts += b',"secrets":' + orjson.dumps([s.as_json() for s in result.spans])
    if result.capped:
        parts += b',"secrets_capped":true'
    return parts


def spans_from_meta(meta: object) -> list[SecretSpan] | None:
    """The spans a record's `meta` names ([] when the recorder scanned it and found
    none); None when it has no `secrets` (not known to be scanned: a reader that must
    be sure scans the record itself)."""
    if not isinstance(meta, dict):
        return None
    raw = meta.get("secrets")
    if not isinstance(raw, list):
        return None
    spans: list[SecretSpan] = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        kind, frame, start, end = (item.get(k) for k in ("kind", "frame", "start", "end"))
        if (
            isinstance(kind, str)
            and type(frame) is int
            and type(start) is int
            and type(end) is int
            and 0 <= start <= end
            and frame >= 0
        ):
            spans.append(SecretSpan(kind, frame, start, end))
    return spans


def redact_frames(frames: Sequence[bytes], spans: Iterable[SecretSpan]) -> list[bytes]:
    """`frames` with each span's bytes replaced by `[REDACTED:kind]` (out of range
    spans are ignored: a hand-edited record never breaks an export)."""
    out = list(frames)
    by_frame: dict[int, list[SecretSpan]] = {}
    for s in spans:
        if s.frame < len(out) and s.end <= len(out[s.frame]):
            by_frame.setdefault(s.frame, []).append(s)
    for i, items in by_frame.items():
        data = out[i]
        pieces: list[bytes] = []
        pos = 0
        for s in sorted(items, key=lambda s: s.start):
            if s.start < pos:  # overlapping spans: the earlier one already covers it
                continue
            pieces.append(data[pos : s.start])
            pieces.append(b"[REDACTED:" + s.kind.encode() + b"]")
            pos = s.end
        pieces.append(data[pos:])
        out[i] = b"".join(pieces)
    return out


def redacted_text(text: str, cap: int | None = None) -> str:
    """`text` with the secrets in its first `cap` UTF-8 bytes (None: all of it) as
    `[REDACTED:kind]`: for what is shown rather than stored (a session's title, a
    search hit's snippet)."""
    raw = text.encode("utf-8", "surrogatepass")
    spans = scan_frames([raw], cap=cap).spans
    if not spans:
        return text
    return redact_frames([raw], spans)[0].decode("utf-8", "replace")


# The beginning of a secret running up to the end of a cut text, for each kind the
# lead-in that names it and then only characters its secret may hold (a secret that
# ended before the cut was seen whole by the scan: found, or not a secret). The group
# is what a redacted copy drops: the token from its prefix on, a bearer token, a
# password, a URL's password (after its `user:`).
_CUT_END = re.compile(
    rb"(?:(?<![" + _T + rb"])((?:sk-|AIza|xox[baprs]-)[" + _T + rb"]*|eyJ[" + _T + rb".]*)"
    rb"|(?<![A-Za-z0-9_])((?:github_pat_|gh[pousr]_)[A-Za-z0-9_]*)"
    rb"|(?<![A-Za-z0-9])((?:AKIA|ASIA)[A-Z2-7]*)"
    rb"|(-----BEGIN(?:(?!-----END)[\s\S])*)"
    rb"|Bearer[ \t]+([A-Za-z0-9._~+/\-=]*)"
    rb"|(?i:(?<![A-Za-z0-9])(?:password|passwd|pwd))=([^\s&\"'<>;,\\]*)"
    rb"|[A-Za-z][A-Za-z0-9+.\-]{0,20}://[^\s/:@\"'<>\\]{1,128}:([^\s/@\"'<>\\]*)"
    rb")\Z"
)


def cut_secret(data: bytes, found: Iterable[SecretSpan] = (), frame: int = 0) -> SecretSpan | None:
    """In `data`, a text the recorder cut short (a refused message's topic: its first
    256 bytes), the tail where a secret may begin that the cut split: past what a scan
    recognises (a token of 28 characters is no GitHub token), yet its beginning. From
    the first lead-in of a kind (`ghp_`, `sk-`, `AKIA`, `Bearer `, `password=`, a URL's
    `user:` ...) followed only by characters that kind's secret holds, up to the end;
    None when there is none, or when a secret `found` already ends at the end. (A key
    of no kind the scan knows is not recognised whole either.)"""
    m = _CUT_END.search(data)
    if m is None:
        return None
    start = next(m.start(g) for g in range(1, len(m.groups()) + 1) if m.start(g) >= 0)
    if start == len(data):
        return None  # `Bearer ` or `password=` and nothing yet
    for s in found:
        if s.frame == frame and s.start < len(data) and s.end > start:
            if s.end >= len(data):
                return None  # found up to the cut: shown as that kind
            start = max(start, s.end)
    return SecretSpan(CUT_SECRET, frame, start, len(data))


def redacted_cut_text(raw: bytes, cut: bool) -> str:
    """`raw` (text the recorder may have cut short: a refused message's topic) decoded,
    with its secrets as `[REDACTED:kind]` and, when `cut`, a secret's beginning at its
    end as `[REDACTED:cut-secret]` (`cut_secret`): for recorder.log."""
    spans = list(scan_frames([raw], cap=None).spans)
    end = cut_secret(raw, spans) if cut else None
    if end is not None:
        spans.append(end)
    return redact_frames([raw], spans)[0].decode("utf-8", "replace")
