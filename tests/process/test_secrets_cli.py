"""A real recorder journals messages holding secrets byte for byte and names each one's
kind and span in meta; `persist export` redacts Markdown by default, JSONL never."""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
from base64 import b64decode
from pathlib import Path

import orjson
import zmq

from recorder.store import secrets as S
from recorder.store.reader import open_store
from tests.demo_journal import BASE_TS, DemoWriter
from tests.secret_samples import make
from tests.support import Bus, journal_records, read_status, wait_for

RND = random.Random(21)


def persist(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args], capture_output=True, timeout=60
    )


def test_recorded_byte_for_byte_named_in_meta_and_redacted_on_export(bus: Bus) -> None:
    bus.start_broker()
    bus.start_recorder()
    keys = {kind: make(kind, RND) for kind in (S.OPENAI, S.PRIVATE_KEY, S.URL_PASSWORD)}
    sent = [
        [b"agents.coder", orjson.dumps({"text": f"here: {s.text} (done)", "sender": "coder"})]
        for s in keys.values()
    ]
    sent.append([b"agents.coder", b"plain text " + keys[S.OPENAI].secret.encode()])
    sent.append([b"agents.coder", b'{"text":"nothing here"}'])
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.linger = 1000
    pub.connect(bus.front)
    try:
        assert pub.poll(5000)  # the broker forwarded the recorder's subscription
        for frames in sent:
            pub.send_multipart(frames)
        wait_for(
            lambda: (read_status(bus.log_dir).get("counts") or {}).get("written", 0) >= len(sent),
            what="messages written",
        )
    finally:
        pub.close()
        ctx.term()
    assert (read_status(bus.log_dir).get("counts") or {}).get("secrets") == 4
    status = persist("status", "--log-dir", str(bus.log_dir))
    assert b"secrets      4 messages hold some" in status.stdout, status.stdout
    assert bus.recorder is not None
    bus.recorder.signal(signal.SIGTERM)
    assert bus.recorder.wait(5) == 0
    with open_store(bus.log_dir) as store:
        records = [rec for rec in store.records() if rec.is_message]
        assert [rec.frames for rec in records] == sent  # nothing altered
        for rec, sample in zip(records, [*keys.values(), keys[S.OPENAI]], strict=False):
            (named,) = rec.meta["secrets"]
            assert named["kind"] == sample.kind and named["frame"] == 1
            value = rec.frames[1][named["start"] : named["end"]]
            assert value in (sample.secret.encode(), orjson.dumps(sample.secret)[1:-1])
        assert records[-1].meta["secrets"] == []  # scanned in full, clean
    journal = b"".join(p.read_bytes() for p in (bus.log_dir / "segments").iterdir())
    for r in journal_records(bus.log_dir):
        meta = orjson.dumps(r.get("meta") or {})
        assert all(s.secret.encode()[:16] not in meta for s in keys.values())
    md = persist("export", "--all", "--log-dir", str(bus.log_dir))
    assert md.returncode == 0, md.stderr
    assert b"[REDACTED:openai-key" in md.stdout and b"[REDACTED:private-key" in md.stdout
    assert all(s.secret.encode()[:20] not in md.stdout for s in keys.values())
    raw = persist("export", "--all", "--format", "jsonl", "--log-dir", str(bus.log_dir))
    assert raw.returncode == 0 and raw.stdout == journal  # one segment: the journal itself
    plain = persist("export", "--all", "--no-redact", "--log-dir", str(bus.log_dir))
    assert keys[S.OPENAI].secret.encode() in plain.stdout


def test_a_secret_typed_into_a_checkpoint_label_is_never_kept_or_shown(bus: Bus) -> None:
    bus.start_broker()
    bus.start_recorder()
    key = make(S.AWS, RND).secret
    made = persist("checkpoint", "--log-dir", str(bus.log_dir), "--label", f"deploy {key} ok")
    assert made.returncode == 0, made.stderr
    listed = persist("checkpoints", "--log-dir", str(bus.log_dir))
    as_json = persist("checkpoints", "--log-dir", str(bus.log_dir), "--json")
    assert b"[REDACTED:" in listed.stdout, listed.stdout
    labels = [c["label"] for c in orjson.loads(as_json.stdout)["checkpoints"]]
    assert labels == [f"deploy [REDACTED:{S.AWS}] ok"]
    shown = made.stdout + made.stderr + listed.stdout + as_json.stdout
    files = list((bus.log_dir / "checkpoints").iterdir())
    assert files
    kept = b"".join(p.name.encode() + p.read_bytes() for p in files)
    for text in (shown, kept, (bus.log_dir / "status.json").read_bytes()):
        assert key.lower().encode() not in text.lower()  # the file's name is lowercased


def test_a_secret_in_the_sender_is_redacted_wherever_the_text_is(bus: Bus) -> None:
    """The sender is taken from the frames (a payload field, or the envelope's agent:
    `persist send --agent`), and so is a replay's reference: md, html and csv exports,
    a `restore --redact` bundle (transcript, conversation.jsonl, manifest), search hits
    and `persist stats` show them redacted, as they show the text and the topic. A
    sender the recorder cut to 200 characters inside a key loses that key's beginning
    too. The checkpoint's own count of senders holds none either."""
    bus.start_broker()
    bus.start_recorder()
    aws, agent, cut, in_topic, replayed = (
        make(kind, RND).secret for kind in (S.AWS, S.GITHUB, S.GITHUB, S.OPENAI, S.GITHUB)
    )
    log = ("--log-dir", str(bus.log_dir))
    for args in (
        ("agents.x", orjson.dumps({"text": "sender secret test", "sender": aws}).decode()),
        ("agents.y", "--agent", agent, "--text", "agent secret test"),
        (
            "agents.z",
            orjson.dumps({"text": "cut secret test", "from": "b" * 189 + "-" + cut}).decode(),
        ),
        (f"agents.{in_topic}", '{"text": "topic secret test"}'),
    ):
        sent = persist("send", *args, "--endpoint", bus.front, *log)
        assert sent.returncode == 0, sent.stderr
    replay = {
        "_persist": {"pub": "r", "seq": 1, "replay_of": {"pub": f"{replayed}-7-ab", "seq": 3}}
    }
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.linger = 1000
    pub.connect(bus.front)
    try:
        assert pub.poll(5000)
        pub.send_multipart([b"agents.r", orjson.dumps({**replay, "text": "replay secret test"})])
        wait_for(
            lambda: sum(r.get("kind") == "msg" for r in journal_records(bus.log_dir)) == 5,
            what="messages written",
        )
    finally:
        pub.close()
        ctx.term()
    senders = [r["meta"].get("sender") for r in journal_records(bus.log_dir) if r["kind"] == "msg"]
    assert senders[:3] == [
        aws,
        agent,
        "b" * 189 + "-" + cut[:10],
    ]  # as recorded: the journal is kept
    made = persist("checkpoint", *log)
    assert made.returncode == 0, made.stderr
    secrets = (aws, agent, cut[:10], in_topic, replayed)
    shown: dict[str, bytes] = {}
    for fmt in ("md", "html", "csv"):
        out = persist("export", "--all", "--format", fmt, *log)
        assert out.returncode == 0, out.stderr
        shown[fmt] = out.stdout
    restored = persist("restore", "latest", "--redact", *log)
    assert restored.returncode == 0, restored.stderr
    (bundle,) = (bus.log_dir / "restore").iterdir()
    for name in ("transcript.md", "conversation.jsonl", "manifest.json"):
        shown[name] = (bundle / name).read_bytes()
    manifest = orjson.loads(shown["manifest.json"])
    assert manifest["redacted"] is True
    assert manifest["participants"][f"[REDACTED:{S.AWS}]"] == 1
    lines = [orjson.loads(line) for line in shown["conversation.jsonl"].splitlines()]
    assert [r["meta"].get("sender") for r in lines if r["kind"] == "msg"] == [
        f"[REDACTED:{S.AWS}]",
        f"[REDACTED:{S.GITHUB}]",
        "b" * 189 + f"-[REDACTED:{S.GITHUB}]",
        "cli",
        None,
    ]
    assert lines[-1]["meta"]["replay_of"]["pub"] == f"[REDACTED:{S.GITHUB}]-7-ab"
    for args in (("search", "secret test"), ("search", "secret test", "--json"), ("stats",)):
        out = persist(*args, *log)
        assert out.returncode == 0, out.stderr
        shown[" ".join(args)] = out.stdout
    stats = orjson.loads(persist("stats", "--json", *log).stdout)
    assert stats["sender"][f"[REDACTED:{S.AWS}]"] == 1
    assert f"agents.[REDACTED:{S.OPENAI}]" in stats["topic"]
    hits = orjson.loads(shown["search secret test --json"])["hits"]
    assert {h["sender"] for h in hits} >= {f"[REDACTED:{S.AWS}]", f"[REDACTED:{S.GITHUB}]"}
    for where, out in shown.items():
        for secret in secrets:  # `stats` lists what the index keeps: case-folded
            assert secret.lower().encode() not in out.lower(), (where, secret)
        assert b"[REDACTED:" in out, where  # the search table cuts a sender to 12
    for path in (bus.log_dir / "checkpoints").iterdir():
        assert aws.encode() not in path.read_bytes() and agent.encode() not in path.read_bytes()


def as_before_senders_were_redacted(bundle: Path, key: str) -> None:
    """Make `bundle` what `restore --redact` wrote before senders were redacted: the
    sender as recorded in conversation.jsonl, its manifest without `redaction` (and
    naming the JSONL as it now is, so its files check as intact)."""
    manifest_path = bundle / "manifest.json"
    manifest = orjson.loads(manifest_path.read_bytes())
    entry = manifest["files"]["jsonl"]
    path = bundle / entry["name"]
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    data = data.replace(f'"sender":"[REDACTED:{S.AWS}]"'.encode(), f'"sender":"{key}"'.encode())
    path.write_bytes(data)
    entry["bytes"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    del manifest["redaction"]
    manifest_path.write_bytes(orjson.dumps(manifest))


def test_a_bundle_redacted_before_senders_were_is_neither_reused_nor_gone_on_from(
    tmp_path: Path,
) -> None:
    """A redacted bundle kept from before senders were redacted holds one in its
    conversation.jsonl: `restore --redact` builds it again rather than hand it back as
    it is, and a later checkpoint's bundle does not copy it as its beginning."""
    key = make(S.AWS, RND).secret
    root = tmp_path / "logs"
    log = ("--log-dir", str(root))
    w = DemoWriter.open(root)
    w.message(BASE_TS, key, "deploying now")
    first = w.checkpoint(BASE_TS + 1, "deployed", "manual")
    made = persist("restore", first.id, "--redact", *log)
    assert made.returncode == 0, made.stderr
    as_before_senders_were_redacted(root / "restore" / f"{first.id}.redacted", key)
    w.message(BASE_TS + 2, "ops", "all green")
    second = w.checkpoint(BASE_TS + 3, "checked", "manual")
    w.close()
    for cp in (second, first):  # the later one first: the earlier bundle is as left
        out = persist("restore", cp.id, "--redact", "--json", *log)
        assert out.returncode == 0, out.stderr
        assert "reused" not in orjson.loads(out.stdout)
        bundle = Path(orjson.loads(out.stdout)["dir"])
        for name in ("conversation.jsonl", "transcript.md", "manifest.json"):
            assert key.encode() not in (bundle / name).read_bytes(), (cp.label, name)


def test_refused_and_gap_records_are_redacted_wherever_messages_are(bus: Bus) -> None:
    """A record that is not a message holds text from the wire too: a message over
    `--max-message-mb` is journaled as `refused` with its topic, envelope and first 256
    bytes (`head_b64`), a gap names the publisher and agent of an envelope. md, html and
    csv exports (redacted by default), `export --format jsonl --redact`, a `restore
    --redact` bundle (its manifest's `refused` and `gaps` too) and search show them
    redacted, and leave `head_b64` out; the journal and an unredacted copy keep them."""
    bus.start_broker()
    bus.start_recorder("--max-message-mb", "1")
    in_topic, in_head, agent = (make(kind, RND).secret for kind in (S.GITHUB, S.OPENAI, S.GITHUB))
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.linger = 1000
    pub.connect(bus.front)
    try:
        assert pub.poll(5000)
        big = orjson.dumps({"text": f"my key is {in_head} " + "B" * 1_200_000})
        pub.send_multipart([f"deploy-{in_topic}".encode(), big])
        envelope = {"pub": "p1", "seq": 5, "agent": f"bot {agent}"}
        pub.send_multipart([b"g", orjson.dumps({"_persist": envelope, "text": "hello gap"})])
        wait_for(
            lambda: {"refused", "gap"} <= {r["kind"] for r in journal_records(bus.log_dir)},
            what="refused and gap records written",
        )
    finally:
        pub.close()
        ctx.term()
    log = ("--log-dir", str(bus.log_dir))
    made = persist("checkpoint", *log)
    assert made.returncode == 0, made.stderr
    (refused,) = [r for r in journal_records(bus.log_dir) if r["kind"] == "refused"]
    assert in_topic in refused["topic"] and in_head.encode() in b64decode(refused["head_b64"])
    shown: dict[str, bytes] = {}
    for fmt in ("md", "html", "csv"):
        out = persist("export", "--all", "--format", fmt, *log)
        assert out.returncode == 0, out.stderr
        shown[fmt] = out.stdout
    assert b"from bot [REDACTED:github-token" in shown["md"]  # the gap's sentence
    jsonl = persist("export", "--all", "--format", "jsonl", "--redact", *log)
    assert jsonl.returncode == 0, jsonl.stderr
    shown["jsonl --redact"] = jsonl.stdout
    lines = [orjson.loads(line) for line in jsonl.stdout.splitlines()]  # each valid JSON
    (copy,) = [r for r in lines if r["kind"] == "refused"]
    assert "head_b64" not in copy and copy["topic"] == "deploy-[REDACTED:github-token]"
    assert copy["meta"]["redacted"] == 2  # the topic's and the head's
    assert copy["sha256"] == refused["sha256"] and copy["size"] == refused["size"]
    (gap,) = [r for r in lines if r["kind"] == "gap" and r.get("publisher") == "p1"]
    assert gap["agent"] == "bot [REDACTED:github-token]"
    restored = persist("restore", "latest", "--redact", *log)
    assert restored.returncode == 0, restored.stderr
    (bundle,) = (bus.log_dir / "restore").iterdir()
    for name in ("transcript.md", "conversation.jsonl", "manifest.json"):
        shown[name] = (bundle / name).read_bytes()
    manifest = orjson.loads(shown["manifest.json"])
    assert manifest["refused"][0]["topic"] == "deploy-[REDACTED:github-token]"
    assert [g["agent"] for g in manifest["gaps"] if g.get("publisher") == "p1"] == [
        "bot [REDACTED:github-token]"
    ]
    for query in ("kind:gap bot", "kind:refused deploy"):
        found = persist("search", query, "--json", *log)
        assert found.returncode == 0, found.stderr
        assert orjson.loads(found.stdout)["hits"], found.stdout
        shown[query] = found.stdout
    for where, out in shown.items():
        for secret in (in_topic, in_head, agent):
            assert secret.encode() not in out, (where, secret)
        assert b"[REDACTED:" in out, where
    raw = persist("export", "--all", "--format", "jsonl", *log)  # unredacted: as stored
    assert raw.stdout.count(in_topic.encode()) == 1 and agent.encode() in raw.stdout
    assert b'"head_b64"' in raw.stdout


def test_a_token_cut_by_a_refused_topics_256th_byte_is_shown_nowhere(bus: Bus) -> None:
    """A refused record keeps the first 256 bytes of its topic: a token the cut splits is
    kept as a beginning no scan recognises (28 characters are no GitHub token). The
    record says `topic_cut`; every redacted output shows that beginning as
    `[REDACTED:cut-secret]`, `has:secret` finds the record, and recorder.log names the
    topic as a redacted copy does (before 2026-12-07 all of them showed it in clear)."""
    bus.start_broker()
    bus.start_recorder("--max-frames", "3")
    token = make(S.GITHUB, RND).secret
    whole_in_log = make(S.OPENAI, RND).secret  # a secret the cut leaves whole
    topic = f"agents.{whole_in_log}.{'a' * (220 - len(whole_in_log))}.{token}"
    start = topic.index(token)
    assert start < 256 < start + len(token)  # the cut splits it
    fragment = token[: 256 - start]
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.linger = 1000
    pub.connect(bus.front)
    try:
        assert pub.poll(5000)
        pub.send_multipart([topic.encode(), b"a", b"b", b'{"text": "four frames"}'])
        pub.send_multipart([b"agents.short", b"a", b"b", b'{"text": "four frames"}'])
        wait_for(
            lambda: sum(r["kind"] == "refused" for r in journal_records(bus.log_dir)) == 2,
            what="refused records written",
        )
    finally:
        pub.close()
        ctx.term()
    log = ("--log-dir", str(bus.log_dir))
    refused, short = [r for r in journal_records(bus.log_dir) if r["kind"] == "refused"]
    assert refused["topic"] == topic[:256] and refused["topic_cut"] is True
    assert short["topic"] == "agents.short" and "topic_cut" not in short
    shown: dict[str, bytes] = {}
    for fmt in ("md", "html", "csv"):
        out = persist("export", "--all", "--format", fmt, *log)
        assert out.returncode == 0, out.stderr
        shown[fmt] = out.stdout
    jsonl = persist("export", "--all", "--format", "jsonl", "--redact", *log)
    assert jsonl.returncode == 0, jsonl.stderr
    shown["jsonl --redact"] = jsonl.stdout
    (copy, _) = [orjson.loads(x) for x in jsonl.stdout.splitlines() if b'"refused"' in x]
    assert copy["topic"] == (
        f"agents.[REDACTED:openai-key].{'a' * (220 - len(whole_in_log))}.[REDACTED:cut-secret]"
    )
    assert copy["topic_cut"] is True and copy["meta"]["redacted"] == 2
    for args in (
        ("search", "kind:refused", "--all-kinds", "--json"),
        ("stats", "--all-kinds", "--json"),
    ):
        out = persist(*args, *log)
        assert out.returncode == 0, out.stderr
        shown[" ".join(args)] = out.stdout
    found = persist("search", "has:secret", "--all-kinds", "--json", *log)
    assert found.returncode == 0, found.stderr
    (hit,) = orjson.loads(found.stdout)["hits"]
    assert hit["topic"] == copy["topic"], hit
    shown["has:secret"] = found.stdout
    shown["recorder.log"] = (bus.log_dir / "recorder.log").read_bytes()
    assert b"[REDACTED:cut-secret]' (its first 256 bytes): 4 frames" in shown["recorder.log"]
    for where, out in shown.items():
        assert fragment[4:].encode() not in out, where
        assert whole_in_log.encode() not in out, where
    raw = persist("export", "--all", "--format", "jsonl", *log)  # unredacted: as stored
    assert fragment.encode() in raw.stdout


def test_a_search_index_built_before_cut_topics_were_counted_is_rebuilt(tmp_path: Path) -> None:
    """An index of schema 11 (written before 2026-12-07's `cut-secret`) holds a refused
    record's cut topic as stored, a token's beginning in it, and no secret for it: it is
    built again, so `persist stats` names the topic redacted and `has:secret` finds it."""
    import sqlite3

    root = tmp_path / "logs"
    log = ("--log-dir", str(root))
    token = make(S.GITHUB, RND).secret
    cut = f"agents.{'a' * 220}.{token}"[:256]
    w = DemoWriter.open(root)
    w.message(BASE_TS, "planner", "plan the rollout", scan=True)
    w.record(BASE_TS + 1, "refused", topic=cut, size=9, frame_count=4, reason="4 frames")
    w.close()
    first = persist("search", "has:secret", "--all-kinds", "--json", *log)
    assert len(orjson.loads(first.stdout)["hits"]) == 1, first.stdout
    db = sqlite3.connect(root / "search" / "index.sqlite3")  # as schema 11 wrote it
    db.execute("UPDATE docs SET secrets = 0, topic = ? WHERE kind = 'refused'", (cut.lower(),))
    db.execute("UPDATE meta SET value = 11 WHERE key = 'schema'")
    db.commit()
    db.close()
    found = persist("search", "has:secret", "--all-kinds", "--json", *log)
    assert len(orjson.loads(found.stdout)["hits"]) == 1, found.stdout
    stats = persist("stats", "--all-kinds", "--json", *log)
    assert stats.returncode == 0, stats.stderr
    assert b"[redacted:cut-secret]" in stats.stdout.lower(), stats.stdout
    assert token[4:28].lower().encode() not in stats.stdout.lower()
