"""Real-format test secrets (random, generated here: none is a live credential) and the
places they hide in messages, for the detector's tests and `bench/secret_scan.py`."""

from __future__ import annotations

import base64
import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson

from recorder.store import secrets as S

B62 = string.ascii_letters + string.digits
B64URL = B62 + "-_"
B32 = string.ascii_uppercase + "234567"


def _pick(rnd: random.Random, alphabet: str, n: int) -> str:
    return "".join(rnd.choice(alphabet) for _ in range(n))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class Sample:
    kind: str
    secret: str  # what must be found (the span's bytes), as written in plain text
    text: str  # the secret in its usual surroundings (`Authorization: Bearer …`)


def make(kind: str, rnd: random.Random) -> Sample:
    """One secret of `kind` in its usual surroundings."""
    if kind == S.OPENAI:
        if rnd.random() < 0.5:
            key = "sk-" + _pick(rnd, B62, 20) + "T3BlbkFJ" + _pick(rnd, B62, 20)
        else:
            key = "sk-proj-" + _pick(rnd, B64URL, 156)
        return Sample(kind, key, key)
    if kind == S.ANTHROPIC:
        key = "sk-ant-api03-" + _pick(rnd, B64URL, 93) + "AA"
        return Sample(kind, key, key)
    if kind == S.GITHUB:
        key = "gh" + rnd.choice("pousr") + "_" + _pick(rnd, B62, 36)
        return Sample(kind, key, key)
    if kind == S.GITHUB_PAT:
        key = "github_pat_11" + _pick(rnd, B32, 20) + "_" + _pick(rnd, B62, 59)
        return Sample(kind, key, key)
    if kind == S.AWS:
        key = rnd.choice(["AKIA", "ASIA"]) + _pick(rnd, B32, 16)
        return Sample(kind, key, key)
    if kind == S.GOOGLE:
        key = "AIza" + _pick(rnd, B64URL, 35)
        return Sample(kind, key, key)
    if kind == S.SLACK:
        if rnd.random() < 0.5:
            key = f"xoxb-{_pick(rnd, string.digits, 12)}-{_pick(rnd, string.digits, 13)}-"
            key += _pick(rnd, B62, 24)
        else:
            key = f"xoxp-{_pick(rnd, string.digits, 12)}-{_pick(rnd, string.digits, 12)}-"
            key += f"{_pick(rnd, string.digits, 13)}-{_pick(rnd, '0123456789abcdef', 32)}"
        return Sample(kind, key, key)
    if kind == S.PRIVATE_KEY:
        label = rnd.choice(["RSA ", "EC ", "OPENSSH ", ""])
        body = base64.b64encode(rnd.randbytes(rnd.choice([121, 400, 1190]))).decode()
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        key = "\n".join(
            [f"-----BEGIN {label}PRIVATE KEY-----", *lines, f"-----END {label}PRIVATE KEY-----"]
        )
        return Sample(kind, key, key)
    if kind == S.BEARER:
        token = _pick(rnd, B62, rnd.choice([32, 40, 64])) + rnd.choice(["", "=="])
        return Sample(kind, token, f"Authorization: Bearer {token}")
    if kind == S.JWT:
        head = _b64url(orjson.dumps({"alg": rnd.choice(["HS256", "RS256"]), "typ": "JWT"}))
        claims = {"sub": _pick(rnd, string.digits, 10), "name": "Test User", "iat": 1516239022}
        key = f"{head}.{_b64url(orjson.dumps(claims))}.{_b64url(rnd.randbytes(32))}"
        return Sample(kind, key, key)
    if kind == S.PASSWORD:
        value = _pick(rnd, B62 + "!#%^*()[]{}~", rnd.randint(8, 20))
        field = rnd.choice(["password", "passwd", "pwd", "PASSWORD", "db_password"])
        return Sample(kind, value, f"{field}={value}")
    if kind == S.URL_PASSWORD:
        value = _pick(rnd, B62 + "!$*()~", rnd.randint(8, 20))
        scheme = rnd.choice(["postgres", "https", "redis", "mysql"])
        return Sample(kind, value, f"{scheme}://admin:{value}@db.internal.example:5432/app")
    raise ValueError(kind)


def _prose(s: Sample, rnd: random.Random) -> str:
    return rnd.choice(
        [
            f"Here is the credential you asked for: {s.text}. Please rotate it tomorrow.",
            f"I found ({s.text}) in the old config, is that still in use?",
            f"the deploy failed with {s.text}, retrying",
        ]
    )


def _code(s: Sample, rnd: random.Random) -> str:
    if s.kind == S.PASSWORD:
        return f"export {s.text}\npython manage.py migrate"
    if s.kind == S.BEARER:
        return f'curl -H "{s.text}" https://api.example.com/v1/models'
    if s.kind == S.PRIVATE_KEY:
        return f'KEY = """{s.text}"""\n'
    return rnd.choice(
        [f'API_KEY = "{s.text}"', f"token: '{s.text}'", f"os.environ['T']='{s.text}'"]
    )


def _url(s: Sample, rnd: random.Random) -> str:
    if s.kind in (S.PASSWORD, S.URL_PASSWORD):
        return (
            f"see https://example.com/login?user=bob&{s.text}&next=/home"
            if s.kind == (S.PASSWORD)
            else f"DATABASE_URL={s.text}"
        )
    if s.kind in (S.PRIVATE_KEY, S.BEARER):
        return f"<{s.text}>"
    return f"https://api.example.com/v1/run?key={s.text}&mode=fast"


CONTEXTS: dict[str, Callable[[Sample, random.Random], str]] = {
    "prose": _prose,
    "code": _code,
    "url": _url,
    "punctuation": lambda s, rnd: (
        rnd.choice(["[", "(", '"', "'", "<", "`"])
        + s.text
        + rnd.choice(["]", ")", '"', "'", ">", "`", ".", ",", ";"])
    ),
}


@dataclass(frozen=True)
class Case:
    kind: str
    context: str  # prose, code, url, punctuation, each also as a JSON message ("json-…")
    frame: bytes  # the message's frame as sent
    expected: bytes  # the secret's bytes as they stand in the frame


def cases(per_kind: int, seed: int = 7) -> Iterator[Case]:
    """`per_kind` secrets of every kind, each in every context, as plain text and as
    a JSON message (where escapes change the bytes: a PEM block's newlines)."""
    rnd = random.Random(seed)
    for kind in S.KINDS:
        for _ in range(per_kind):
            sample = make(kind, rnd)
            for name, place in CONTEXTS.items():
                text = place(sample, rnd)
                yield Case(kind, name, text.encode(), sample.secret.encode())
                body = {"type": "message", "sender": "coder", "text": text}
                yield Case(
                    kind,
                    "json-" + name,
                    orjson.dumps(body),
                    orjson.dumps(sample.secret)[1:-1],
                )


def found(case: Case, spans: list[S.SecretSpan]) -> bool:
    """Whether a span of the case's kind covers its secret: exactly, or with at most two
    bytes of the punctuation after it (a password may end in `.` or `)` too: redacting
    one byte more is the safe side)."""
    for s in spans:
        got = case.frame[s.start : s.end]
        if s.kind == case.kind and got.startswith(case.expected):
            extra = got[len(case.expected) :]
            if len(extra) <= 2 and not any(chr(c).isalnum() for c in extra):
                return True
    return False
