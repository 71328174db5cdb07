"""A real recorder journals messages holding secrets byte for byte and names each one's
kind and span in meta; `persist export` redacts Markdown by default, JSONL never."""

from __future__ import annotations

import random
import signal
import subprocess
import sys

import orjson
import zmq

from recorder.store import secrets as S
from recorder.store.reader import open_store
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
