"""Secrets: the detector per kind (and near misses that must not match), the recorder's
meta (kind and span, the message untouched), and redaction on export."""

from __future__ import annotations

import base64
import io
import random
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.daemon.core import Recorder
from recorder.daemon.options import RecorderOptions
from recorder.export import redact
from recorder.export.redact import REDACT_BATCH, record_secrets, redact_record, redacted
from recorder.export.writers import export_range
from recorder.store import secrets as S
from recorder.store.checkpoints import Checkpoint
from recorder.store.ranges import journal_range
from recorder.store.reader import open_store
from tests.demo_journal import BASE_TS, DemoClock, DemoWriter
from tests.secret_samples import CONTEXTS, cases, found, make
from tests.support import journal_records

RND = random.Random(3)


@pytest.mark.parametrize("kind", S.KINDS)
def test_every_kind_is_found_in_every_context_with_its_exact_span(kind: str) -> None:
    tried = 0
    for case in cases(per_kind=3, seed=11):
        if case.kind != kind:
            continue
        tried += 1
        assert S.maybe_secret(case.frame), case  # the prefilter never hides one
        spans = list(S.scan_frames([case.frame]).spans)
        assert found(case, spans), (case, spans)
    assert tried == 3 * len(CONTEXTS) * 2


NEAR_MISSES = [
    b"the task-runner uses sk-learn and risk-free defaults",
    b"sk-this-is-a-very-long-kebab-case-identifier-name",  # no digit, one case
    b"ghp_short and gho_ and ghp_" + b"a" * 36,  # too short; one case, no digit
    b"AKIAIOSFODNN7EXAMPL is 19 characters; AKIA" + b"a" * 16 + b" is lower case",
    b"AIzaTooShort123",
    b"xoxb- xoxb-short xoxq-123456789012-1234567890123",
    b"-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----",
    b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
    b"the bearer of bad news; Bearer token_here_please; Bearer <token>; Bearer ${TOKEN}",
    b"eyJub3RoaW5nIjoxfQ.eyJzdWIiOjF9.c2lnbmF0dXJl",  # a JWT shape without "alg"
    b'API_KEY = "sk-ant-api03-real-key-here" xoxb-TEST-token-value-here sk-proj-v2-beta-build',
    b're.compile(r"-----BEGIN RSA PRIVATE KEY-----.*?-----END RSA PRIVATE KEY-----")',
    b"-----BEGIN OPENSSH PRIVATE KEY----- (the header alone)",
    b"ANTHROPIC_API_KEY=sk-ant-api03-test1234abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    b"eyJhbGciOiJIUzI1NiJ9 alone is only a header",
    b"password= password==x password=${DB_PASSWORD} password=%s pwd=$(pwd) passwords",
    b"login(user=None, password=None) open(name, pwd=pwd) auth(password=self.password)",
    b"in Markdown: `password=None`, `pwd=pwd` and `password=${DB_PASSWORD}`",
    b"https://user@host/path git@github.com:org/repo.git http://host:8080/a@b",
    b"the password of `scheme://user:pass@host` and postgres://app:secret@db",
    b"550e8400-e29b-41d4-a716-446655440000 da39a3ee5e6b4b0d3255bfef95601890afd80709",
    b"aGVsbG8gd29ybGQgdGhpcyBpcyBhIGJhc2U2NCBibG9iIG9mIHNvbWUgbGVuZ3Ro==",
]


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_are_not_secrets(text: str) -> None:
    assert S.scan_frames([text]).spans == ()
    assert S.scan_frames([orjson.dumps({"text": text.decode()})]).spans == ()


def test_binary_frames_are_not_scanned_and_the_cap_is_said() -> None:
    key = make(S.OPENAI, RND).secret.encode()
    assert S.scan_frames([b"\xff\xfe " + key]).spans == ()  # not text
    big = b"x " * 1000 + key
    capped = S.scan_frames([big], cap=1000)
    assert capped.spans == () and capped.capped
    full = S.scan_frames([big], cap=None)
    assert [s.kind for s in full.spans] == [S.OPENAI] and not full.capped


def test_batch_candidates_name_exactly_the_messages_with_a_hit() -> None:
    key = make(S.GITHUB, RND).secret.encode()
    lasts = [b'{"text":"hello"}', b'{"text":"' + key + b'"}', b"plain", b"end " + key]
    hits = S.SecretScanner().candidates(b"".join(lasts), map(len, lasts))
    assert hits == [1, 3]


def test_redaction_replaces_only_the_secret_bytes() -> None:
    frame = b'{"text":"key sk-proj-Qm3xT9vLw2ZpR7kNc4HsY8bJdF, ok"}'
    spans = S.scan_frames([b"topic", frame]).spans
    assert [(s.kind, s.frame) for s in spans] == [(S.OPENAI, 1)]
    out = S.redact_frames([b"topic", frame], spans)
    assert out == [b"topic", b'{"text":"key [REDACTED:openai-key], ok"}']
    assert orjson.loads(out[1])  # still JSON


ESCAPED = [
    # PHP's json_encode writes `/` as `\/`: a bearer token was cut at its first one
    (
        S.BEARER,
        b'"Authorization: Bearer Zt7Qm2Lw9XcR4\\/bN8vKp3YdJ6Hs\\/Fg1TuE5aW0"',
        "Zt7Qm2Lw9XcR4/bN8vKp3YdJ6Hs/Fg1TuE5aW0",
        2,
    ),
    # ... and a URL as `https:\/\/`: the prefilter never let its password be looked for
    (
        S.URL_PASSWORD,
        b'"connect with https:\\/\\/alice:S3cretPassw0rd@db.example.com\\/app"',
        "S3cretPassw0rd",
        0,
    ),
    # Go's encoding/json writes `&` as `\u0026`: a URL's password was not found at all
    (S.URL_PASSWORD, b'"dsn: postgres://app:Vr9\\u0026kT2mQx@db.internal/prod"', "Vr9&kT2mQx", 1),
]


@pytest.mark.parametrize(("kind", "text", "secret", "escapes"), ESCAPED)
def test_a_secret_with_json_escapes_inside_is_found_and_redacted_whole(
    kind: str, text: bytes, secret: str, escapes: int, tmp_path: Path
) -> None:
    payload = b'{"text":' + text + b"}"
    spans = S.scan_frames([b"agents.x", payload]).spans
    assert [(s.kind, s.frame) for s in spans] == [(kind, 1)]
    (span,) = spans
    assert orjson.loads(b'"' + payload[span.start : span.end] + b'"') == secret
    assert payload[span.start : span.end].count(b"\\") == escapes
    redacted = orjson.loads(S.redact_frames([b"agents.x", payload], spans)[1])["text"]
    assert f"[REDACTED:{kind}]" in redacted
    assert all(piece not in redacted for piece in secret.replace("&", "/").split("/"))
    # what the recorder names in meta, readers redact: the same span
    root = tmp_path / "logs"
    rec = recorder(root)
    rec.record_batch(1.0, [[b"agents.x", payload]])
    rec.close()
    (msg,) = [r for r in journal_records(root) if r["kind"] == "msg"]
    assert msg["meta"]["secrets"] == [span.as_json()]


def test_a_sender_holding_an_escaped_secret_is_shown_redacted(tmp_path: Path) -> None:
    # the sender is the payload's decoded text (`/`), the span the frame's bytes (`\/`)
    token, escaped = "Zt7Qm2Lw9XcR4/bN8vKp3YdJ6Hs", b"Zt7Qm2Lw9XcR4\\/bN8vKp3YdJ6Hs"
    root = tmp_path / "logs"
    rec = recorder(root)
    rec.record_batch(1.0, [[b"agents.x", b'{"from":"Bearer ' + escaped + b'","text":"hi"}']])
    rec.close()
    store = open_store(root)
    out = io.BytesIO()
    export_range(store, journal_range(store, None, None), "md", out)
    md = out.getvalue().decode()
    assert "REDACTED:bearer-token" in md  # (Markdown escapes its brackets)
    assert all(piece not in md for piece in token.split("/"))


def test_secrets_in_json_quoted_inside_a_text_are_found_through_both_escapes() -> None:
    # a tool's output holding PHP's JSON: `\/` in the text is `\\/` in the frame
    text = 'curl said {"auth":"Bearer Qx7Lp2Zw9Rk\\/Tm4Vb8Nc3Jh\\/Yd6Fs1Ab","db":"postgres:'
    text += '\\/\\/admin:Hq9xZp2Lw9@db\\/x","path":"C:\\\\Users"}'
    frame = orjson.dumps({"text": text, "sender": "tool"})
    spans = S.scan_frames([frame]).spans
    assert [s.kind for s in spans] == [S.BEARER, S.URL_PASSWORD]
    shown = orjson.loads(S.redact_frames([frame], spans)[0])["text"]
    assert shown == (
        'curl said {"auth":"Bearer [REDACTED:bearer-token]","db":"postgres:\\/\\/admin:'
        '[REDACTED:url-password]@db\\/x","path":"C:\\\\Users"}'
    )


def recorder(root: Path, **opts: object) -> Recorder:
    rec = Recorder(RecorderOptions(log_dir=root, fsync="never", search_index=False, **opts))  # type: ignore[arg-type]
    rec.open()
    return rec


def test_the_recorder_names_kind_and_span_and_keeps_the_message_byte_for_byte(
    tmp_path: Path,
) -> None:
    root = tmp_path / "logs"
    samples = {kind: make(kind, RND) for kind in S.KINDS}
    payloads = [
        orjson.dumps({"text": f"see {s.text} there", "sender": "coder"}) for s in samples.values()
    ]
    rec = recorder(root)
    messages = [[b"agents.coder", p] for p in payloads]
    messages.append([b"agents.coder", b'{"text":"nothing to see"}'])
    messages.append([b"multi", b"frame 1 " + samples[S.SLACK].text.encode(), b"\xff binary"])
    rec.record_batch(1.0, messages)
    assert rec.counters.secrets == len(S.KINDS) + 1
    rec.close()
    msgs = [r for r in journal_records(root) if r["kind"] == "msg"]
    store = open_store(root)
    records = [r for r in store.records(0, len(store)) if r.kind == "msg"]
    for kind, rec_json, record in zip(samples, msgs, records, strict=False):
        assert record.frames == [b"agents.coder", payloads[list(samples).index(kind)]]
        named = rec_json["meta"]["secrets"]
        assert [s["kind"] for s in named] == [kind]
        s = named[0]
        assert (
            record.frames[s["frame"]][s["start"] : s["end"]]
            == orjson.dumps(samples[kind].secret)[1:-1]
        )
        assert samples[kind].secret.encode()[:12] not in orjson.dumps(named)  # never the value
    assert msgs[len(S.KINDS)]["meta"]["secrets"] == []  # scanned in full, clean
    multi = msgs[-1]["meta"]["secrets"]
    assert [(s["kind"], s["frame"]) for s in multi] == [(S.SLACK, 1)]


def test_a_flood_leaves_the_scan_to_the_readers_and_says_so(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    key = make(S.AWS, RND).secret
    rec = recorder(root)
    rec.record_batch(1.0, [[b"t", orjson.dumps({"text": key})]], behind=True)
    assert rec.counters.secrets_unscanned == 1 and rec.counters.secrets == 0
    rec.close()
    (msg,) = [r for r in journal_records(root) if r["kind"] == "msg"]
    assert msg["meta"]["partial"] is True and "secrets" not in msg["meta"]
    store = open_store(root)
    (record,) = [r for r in store.records(0, len(store)) if r.kind == "msg"]
    assert [s.kind for s in record_secrets(record)] == [S.AWS]  # found at read time


def test_a_message_scanned_clean_says_so_and_readers_do_not_scan_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`"secrets": []` only where the recorder scanned all of a message: clean ones,
    whether the batch prefilter passed them or the full scan found nothing; never on
    one over the scan budget or left to the readers behind a flood. Readers take it
    as it is (no scan of their own), and scan every other."""

    root = tmp_path / "logs"
    rec = recorder(root, secret_scan_bytes=4096)
    clean = orjson.dumps({"text": "nothing to see here"})
    near_miss = orjson.dumps({"text": "the sk- prefix and Bearer words, but no key"})
    big = orjson.dumps({"text": "x" * 5000})
    rec.record_batch(1.0, [[b"a.t", clean], [b"a.t", near_miss], [b"a.t", big]])
    rec.record_batch(2.0, [[b"a.t", clean]], behind=True)
    rec.close()
    metas = [r["meta"] for r in journal_records(root) if r["kind"] == "msg"]
    assert [m.get("secrets") for m in metas] == [[], [], None, None]
    assert metas[2]["secrets_capped"] is True and metas[3]["partial"] is True
    scanned: list[int] = []
    real = redact.scan_frames
    monkeypatch.setattr(
        redact,
        "scan_frames",
        lambda frames, cap, **kw: scanned.append(len(frames)) or real(frames, cap, **kw),
    )
    store = open_store(root)
    records = [r for r in store.records(0, len(store)) if r.kind == "msg"]
    assert [redact.record_secrets(r) for r in records] == [[], [], [], []]
    assert len(scanned) == 2  # the capped one and the flood's one


def test_export_redacts_md_by_default_and_jsonl_stays_byte_exact(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    key = make(S.ANTHROPIC, RND).secret
    rec = recorder(root)
    rec.record_batch(1.0, [[b"agents.a", orjson.dumps({"text": f"key {key}", "sender": "a"})]])
    rec.close()
    store = open_store(root)
    rng = journal_range(store, None, None)
    outputs = {}
    for fmt in ("md", "html", "csv", "jsonl"):
        out = io.BytesIO()
        export_range(store, rng, fmt, out)
        outputs[fmt] = out.getvalue()
    for fmt in ("md", "html", "csv"):
        assert key.encode() not in outputs[fmt]
        assert b"[REDACTED:anthropic-key" in outputs[fmt]  # `]` is `&#93;` in Markdown
    assert outputs["jsonl"] == b"".join(r.line for r in store.records(0, len(store)))
    assert key.encode() in outputs["jsonl"]
    md = io.BytesIO()
    export_range(store, rng, "md", md, redact=False)
    assert key.encode() in md.getvalue()
    redacted = io.BytesIO()
    export_range(store, rng, "jsonl", redacted, redact=True)
    lines = [orjson.loads(line) for line in redacted.getvalue().splitlines()]
    (msg,) = [r for r in lines if r["kind"] == "msg"]
    assert msg["frames"][1]["json"]["text"] == "key [REDACTED:anthropic-key]"
    assert msg["meta"]["redacted"] == 1
    assert (root / "segments").is_dir() and key.encode() in b"".join(
        p.read_bytes() for p in (root / "segments").iterdir()
    )  # the journal is never changed


def test_records_written_before_detection_are_redacted_too(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    key = make(S.JWT, RND).secret
    rec = recorder(root, secrets=False)  # as a journal from before detection existed
    rec.record_batch(1.0, [[b"agents.a", orjson.dumps({"text": f"Authorization: {key}"})]])
    rec.close()
    (msg,) = [r for r in journal_records(root) if r["kind"] == "msg"]
    assert "secrets" not in msg["meta"] and "secrets_unscanned" not in msg["meta"]
    store = open_store(root)
    (record,) = [r for r in store.records(0, len(store)) if r.kind == "msg"]
    assert b"[REDACTED:jwt]" in redact_record(record).line
    out = io.BytesIO()
    export_range(store, journal_range(store, None, None), "html", out)
    assert key.encode() not in out.getvalue()


def damaged_line_with_a_secret(root: Path) -> tuple[str, Checkpoint]:
    """A journal whose second record is a damaged line holding a GitHub token, and a
    checkpoint after it: (the token, the checkpoint)."""
    key = make(S.GITHUB, RND).secret
    w = DemoWriter.open(root, clock=DemoClock(BASE_TS))
    w.message(BASE_TS, "a", "before")
    w.bad_line(b'{"torn": "token ' + key.encode() + b"\n")
    w.message(BASE_TS + 1, "a", "after")
    cp = w.checkpoint(BASE_TS + 2, "after the damage", "manual")
    w.close()
    return key, cp


def test_a_damaged_line_is_redacted_where_it_is_shown_as_it_is(tmp_path: Path) -> None:
    """A damaged line has no meta and no frames: readers show its bytes, so they scan
    them whole; redacted, it stays a damaged line (JSONL copies leave it out)."""
    root = tmp_path / "logs"
    key, _cp = damaged_line_with_a_secret(root)
    store = open_store(root)
    (bad,) = [r for r in store.records() if r.data is None]
    assert bad.data is None and [s.kind for s in record_secrets(bad)] == [S.GITHUB]
    shown = redact_record(bad)
    assert shown.data is None and shown.line == b'{"torn": "token [REDACTED:github-token]\n'
    rng = journal_range(store, None, None)
    for fmt in ("md", "html", "csv"):
        out = io.BytesIO()
        export_range(store, rng, fmt, out)
        assert key.encode() not in out.getvalue(), fmt
    copy, redacted = io.BytesIO(), io.BytesIO()
    export_range(store, rng, "jsonl", copy)
    export_range(store, rng, "jsonl", redacted, redact=True)
    good = b"".join(r.line for r in store.records() if r.data is not None)
    assert copy.getvalue() == redacted.getvalue() == good  # a JSONL copy leaves it out


def test_restore_bundles_redact_only_when_asked(tmp_path: Path) -> None:
    from recorder.export.restore import build_bundle

    root = tmp_path / "logs"
    key = make(S.PRIVATE_KEY, RND).secret
    rec = recorder(root)
    rec.record_batch(1.0, [[b"agents.a", orjson.dumps({"text": f"use\n{key}\nthanks"})]])
    cp = rec.checkpoint("with a key", "manual", 2.0, force=True)
    rec.close()
    assert cp is not None
    escaped = orjson.dumps(key)[1:-1]
    plain = build_bundle(root, cp.id, durable=False)
    assert plain.manifest["redacted"] is False
    assert escaped in plain.jsonl.read_bytes()  # the hand-back is byte for byte by default
    red = build_bundle(root, cp.id, durable=False, redact=True)  # not the plain one kept
    assert red.manifest["redacted"] is True
    for path in (red.jsonl, red.transcript):
        data = path.read_bytes()
        assert b"PRIVATE KEY" not in data and b"[REDACTED:private-key" in data
    again = build_bundle(root, cp.id, durable=False)
    assert escaped in again.jsonl.read_bytes()


def test_a_redacted_bundle_leaves_a_damaged_line_out_as_a_plain_one_does(
    tmp_path: Path,
) -> None:
    """Redacted, a damaged line is still left out of the bundle's JSONL, over exactly its
    stored bytes, and reported at its stored length."""
    from recorder.export.restore import build_bundle
    from recorder.export.scope import BundleScope

    root = tmp_path / "logs"
    key, cp = damaged_line_with_a_secret(root)
    whole = BundleScope.whole()
    plain = build_bundle(root, cp.id, durable=False, scope=whole)
    plain_jsonl = plain.jsonl.read_bytes()
    red = build_bundle(root, cp.id, durable=False, scope=whole, redact=True)
    assert red.jsonl.read_bytes() == plain_jsonl and key.encode() not in plain_jsonl
    assert key.encode() not in red.transcript.read_bytes()
    assert red.manifest["redacted"] is True
    bad_lines = [m["bad_lines"] for m in (plain.manifest, red.manifest)]
    assert bad_lines[0] == bad_lines[1] and bad_lines[0][0]["length"] == 17 + len(key)


def test_without_keyword_rules_an_unscanned_record_says_so_itself(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[chain]]\ntype = "request"\ntopics = ["asks.*"]\n')
    rec = recorder(tmp_path / "logs", rules=rules)
    rec.record_batch(1.0, [[b"asks.x", b'{"text":"hi"}']], behind=True)
    rec.close()
    (msg,) = [r for r in journal_records(tmp_path / "logs") if r["kind"] == "msg"]
    assert msg["meta"] == {"chain": "request", "secrets_unscanned": True}


def test_a_message_over_the_budget_is_marked_capped_and_scanned_in_full_on_export(
    tmp_path: Path,
) -> None:
    root = tmp_path / "logs"
    early, late = make(S.OPENAI, RND).secret, make(S.GOOGLE, RND).secret
    rec = recorder(root, secret_scan_bytes=1024)
    big_early = orjson.dumps({"text": f"{early} " + "word " * 400})
    big_late = orjson.dumps({"text": "word " * 400 + late})
    rec.record_batch(1.0, [[b"t", big_early], [b"t", big_late], [b"t", b'{"text":"small"}']])
    assert rec.counters.secrets_capped == 2 and rec.counters.secrets == 1
    rec.close()
    metas = [r["meta"] for r in journal_records(root) if r["kind"] == "msg"]
    assert [m.get("secrets_capped") for m in metas] == [True, True, None]
    assert [s["kind"] for s in metas[0]["secrets"]] == [S.OPENAI] and "secrets" not in metas[1]
    store = open_store(root)
    out = io.BytesIO()
    export_range(store, journal_range(store, None, None), "md", out)
    assert early.encode() not in out.getvalue() and late.encode() not in out.getvalue()


@pytest.mark.parametrize("batch_bytes", [8 << 20, 3000])
def test_batched_redaction_equals_redacting_each_record_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_bytes: int
) -> None:
    """`redacted` shares one prefilter per batch (of 256 records, or fewer when they are
    big): every sample of every kind, scattered among clean messages across several
    batches, is redacted exactly as alone."""
    monkeypatch.setattr(redact, "REDACT_BATCH_BYTES", batch_bytes)
    root = tmp_path / "logs"
    rec = recorder(root, secrets=False)  # nothing named by the recorder: all scanned now
    frames = [c.frame for c in cases(1)]
    rnd = random.Random(3)
    clean = [
        orjson.dumps({"text": f"plain talk {i} about pass=words, A tasks and sk-etches"})
        for i in range(600)
    ]
    mixed = clean + frames
    rnd.shuffle(mixed)
    rec.record_batch(1.0, [[b"agents.a", frame] for frame in mixed])
    rec.close()
    store = open_store(root)
    records = list(store.records(0, len(store)))
    assert len(records) > 2 * REDACT_BATCH
    together = [r.line for r in redacted(records)]
    alone = [redact_record(r).line for r in records]
    assert together == alone
    assert sum(b"[REDACTED:" in line for line in together) == len(frames)


def test_records_the_recorder_scanned_keep_their_place_among_those_scanned_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record whose secrets the recorder named goes on at once unless a record before
    it waits for a batch scan: then it waits too, so the order never changes."""
    monkeypatch.setattr(redact, "REDACT_BATCH", 7)  # many batch ends among the records
    root = tmp_path / "logs"
    rec = recorder(root)
    frames = [c.frame for c in cases(2)]
    rnd = random.Random(11)
    for i in range(40):  # runs of scanned and of unscanned (behind) records, mixed
        batch = [orjson.dumps({"text": f"talk {i}.{k}"}) for k in range(rnd.randrange(1, 9))]
        if frames and rnd.random() < 0.6:
            batch.insert(rnd.randrange(len(batch) + 1), frames.pop())
        rec.record_batch(float(i), [[b"agents.a", f] for f in batch], behind=rnd.random() < 0.5)
    rec.close()
    records = list(open_store(root).records())
    named = [r for r in records if r.kind == "msg" and "secrets" in r.get("meta", {})]
    assert 0 < len(named) < len([r for r in records if r.kind == "msg"])  # both kinds
    together = [(r.index, r.line) for r in redacted(records)]
    assert together == [(r.index, redact_record(r).line) for r in records]
    assert sum(b"[REDACTED:" in line for _, line in together) >= 10


def test_a_long_sender_is_marked_only_where_it_was_cut_inside_a_secret(tmp_path: Path) -> None:
    """A sender kept whole at 200 characters whose last one equals a secret's first
    (the secret only in the text) got a `[REDACTED:...]` in place of that character;
    a sender the recorder cut inside a secret still loses the secret's beginning."""
    import random

    from recorder.export.redact import redacted
    from recorder.store import secrets as kinds
    from recorder.store.reader import open_store
    from tests.demo_journal import DemoWriter
    from tests.secret_samples import make

    secret = make(kinds.GITHUB, random.Random(1)).secret
    whole = "release-bot-" + "x" * 187 + secret[0]  # 200 characters, no secret in it
    root = tmp_path / "logs"
    w = DemoWriter.open(root)
    w.message(1.0, whole, "here is the token " + secret, scan=True)
    full = "bot-" + "y" * 189 + " " + secret  # the payload's sender; meta has it cut
    w.message(2.0, full[:200], "nothing here", extra={"from": full}, scan=True)
    w.close()
    with open_store(root) as store:
        senders = [r.sender for r in redacted(store.records()) if r.kind == "msg"]
    assert senders[0] == whole
    assert senders[1] == full[:194] + "[REDACTED:github-token]"


# Pieces that start, end or sit next to secrets, and ones that look like them: texts made
# of them put every prefilter literal next to every other and to the letters and
# punctuation the detector's lookbehinds and plausibility checks turn on.
_PIECES = [
    *(make(kind, random.Random(i)).text for i, kind in enumerate(S.KINDS)),
    *(make(kind, random.Random(50 + i)).secret for i, kind in enumerate(S.KINDS)),
    "sk-", "sk-ant-", "ghp_", "github_pat_", "AKIA", "ASIA", "AIza", "xoxb-1-",
    "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----", "Bearer ", "eyJ",
    "password=", "PASSWORD=", "passwd=", "pwd=", "db_", "my_db_", "x", "_", "=", "@",
    "://", "https://", "postgres://u:", ":\\/\\/", "\\/", "\\u0026", "\\\\", '"', " ",
    "\n", ".", "-", "A1b2C3d4E5f6G7h8", "0123456789abcdef", "QmFzZTY0IGJsb2I=",
]  # fmt: skip


@given(st.lists(st.sampled_from(_PIECES), max_size=12))
@settings(max_examples=400, deadline=None)
def test_the_scan_tries_every_place_a_secret_can_start(pieces: list[str]) -> None:
    """`_found` tries the detector's regex only near prefilter hits: it must find what
    trying it at every byte finds, whatever stands around the hits."""
    data = "".join(pieces).encode()
    everywhere = [
        S.SecretSpan(S._GROUPS[m.lastgroup], 0, *m.span(m.lastgroup))
        for m in S._FIND.finditer(data)
        if m.lastgroup is not None
        and S._plausible(S._GROUPS[m.lastgroup], data[slice(*m.span(m.lastgroup))])
    ]
    assert S._found(data, 0) == everywhere


def test_a_key_after_a_long_base64_image_holding_a_prefilter_hit_is_found() -> None:
    """A 400 KB image whose base64 holds "eyJ" (one in four of 64 KiB does by chance)
    and a real key after it: the key is found, the image's bytes are not a secret."""
    image = base64.b64encode(random.Random(3).randbytes(300_000)).decode()
    key = make(S.GITHUB, RND).secret
    text = f'{{"type":"image","data":"{image[:1000]}eyJ{image[1000:]}"}} {key}'
    spans = S.find_secrets(text.encode())
    assert [(s.kind, text.encode()[s.start : s.end]) for s in spans] == [(S.GITHUB, key.encode())]


def test_a_refused_topic_cut_inside_a_secret_is_redacted_also_when_written_before_it_said_so(
    tmp_path: Path,
) -> None:
    """A refused record keeps its topic's first 256 bytes: one written before 2026-12-07
    does not say `topic_cut`, and is taken as cut when its topic holds 256 bytes. The
    beginning of a secret at the cut (a GitHub token's first 28 characters, a URL's
    password before its `@`) is `[REDACTED:cut-secret]`; a token that ends before the
    end, or a topic not cut, is left as it is."""
    root = tmp_path / "logs"
    token, password = make(S.GITHUB, RND).secret, "hunter2secret"
    cut = f"agents.{'a' * 220}.{token}"[:256]
    url = f"agents.{'b' * 227}.https://bob:{password}@h/"[:256]
    assert cut.endswith(token[:28]) and url.endswith(password[:9])
    whole = f"agents.ghp_{'x' * 20}.{'c' * 240}"[:256]  # too short for a token: not one
    w = DemoWriter.open(root, clock=DemoClock(BASE_TS))
    common = {"size": 900, "frame_count": 4, "sha256": "0" * 64, "reason": "4 frames"}
    w.record(BASE_TS, "refused", topic=cut, **common)
    w.record(BASE_TS, "refused", topic=url, **common)
    w.record(BASE_TS, "refused", topic=whole, **common)
    w.record(BASE_TS, "refused", topic=cut, topic_cut=False, **common)  # said: not cut
    w.close()
    store = open_store(root)
    recs = [r for r in store.records() if r.kind == "refused"]
    assert [[s.kind for s in record_secrets(r)] for r in recs] == [
        [S.CUT_SECRET],
        [S.CUT_SECRET],
        [],
        [],
    ]
    shown = [orjson.loads(redact_record(r).line)["topic"] for r in recs]
    assert shown[0] == cut[:-28] + "[REDACTED:cut-secret]"
    assert shown[1] == url[:-9] + "[REDACTED:cut-secret]"
    assert shown[2:] == [whole, cut]
    out = io.BytesIO()
    export_range(store, journal_range(store, None, None), "html", out)
    assert out.getvalue().count(token[4:28].encode()) == 1  # the one said not to be cut
    assert password[:9].encode() not in out.getvalue()
