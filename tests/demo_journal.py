"""Fixed demo journals for tests, screenshots and the bench (no Textual).

Everything is deterministic: times start at `BASE_TS`, content comes from a
seeded generator, and checkpoints get fixed creation times.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from recorder.store.checkpoints import Checkpoint, DigestCache, write_checkpoint
from recorder.store.journal import Journal
from recorder.store.layout import Layout
from recorder.store.records import encode_frames
from recorder.store.secrets import scan_frames

BASE_TS = 1_715_677_200.0  # 2024-05-14 09:00:00 UTC
AGENTS = ("planner", "coder", "reviewer", "tester")
TOPICS = ("chat", "tools", "status")
CHAINS = ("request", "reply", "broadcast", "tool_call", "tool_result")
_WORDS = (
    "deploy",
    "migration",
    "schema",
    "rollback",
    "cache",
    "latency",
    "parser",
    "token",
    "budget",
    "retry",
    "timeout",
    "benchmark",
    "refactor",
    "database",
    "index",
    "checkpoint",
    "journal",
    "agent",
    "review",
    "approve",
    "reject",
    "patch",
    "branch",
    "release",
    "config",
    "secret",
    "rotate",
    "queue",
    "worker",
)


class DemoClock:
    """The journal's clock while building demo data, so its own records get demo times."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class DemoWriter:
    """A Journal plus helpers to add messages, gaps and checkpoints."""

    layout: Layout
    journal: Journal
    digests: DigestCache
    participants: dict[str, int]
    first_ts: float | None = None
    last_ts: float | None = None

    @classmethod
    def open(
        cls,
        root: Path,
        segment_bytes: int = 64 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> DemoWriter:
        layout = Layout(Path(root))
        journal = Journal(layout, segment_bytes=segment_bytes, clock=clock)
        journal.open()
        return cls(layout, journal, DigestCache(layout), {})

    def message(
        self,
        ts: float,
        sender: str,
        text: str,
        *,
        topic: str = "chat",
        chain: str = "broadcast",
        ace: int = 3,
        tags: list[str] | None = None,
        extra: dict[str, Any] | None = None,
        scan: bool = False,
    ) -> int:
        """`scan`: name the message's secrets in `meta` as the recorder does (`[]` when
        it holds none), so readers take the scan as done."""
        payload = {"text": text, "from": sender, **(extra or {})}
        meta: dict[str, Any] = {"sender": sender, "chain": chain, "ace": ace, "tags": tags or []}
        frames = [topic.encode(), orjson.dumps(payload)]
        if scan:  # what the recorder adds (`_secrets_meta`)
            found = scan_frames(frames)
            if found.spans or not found.capped:
                meta["secrets"] = [span.as_json() for span in found.spans]
            if found.capped:
                meta["secrets_capped"] = True
        seq = self.journal.append(
            {"kind": "msg", "ts": ts, "topic": topic, "meta": meta},
            encode_frames(frames),
        )
        self.journal.messages += 1
        self.participants[sender] = self.participants.get(sender, 0) + 1
        self.first_ts = ts if self.first_ts is None else self.first_ts
        self.last_ts = ts
        return seq

    def record(self, ts: float, kind: str, **fields: Any) -> int:
        return self.journal.append({"kind": kind, "ts": ts, **fields})

    def gap(self, ts: float, publisher: str, from_seq: int, to_seq: int) -> int:
        return self.record(
            ts,
            "gap",
            cause="publisher sequence jumped",
            publisher=publisher,
            from_seq=from_seq,
            to_seq=to_seq,
            missed=to_seq - from_seq - 1,
            from_ts=ts - 1,
            to_ts=ts,
        )

    def bad_line(self, raw: bytes = b'{"v":1,"seq":\x00\x00 torn write\n') -> None:
        self.journal.append_line(raw)

    def checkpoint(self, created: float, label: str, reason: str) -> Checkpoint:
        pos = self.journal.flush()
        participants, self.participants = self.participants, {}  # since the previous one
        return write_checkpoint(
            self.layout,
            segment=pos.segment,
            offset=pos.offset,
            seq=pos.seq,
            messages=pos.messages,
            label=label,
            reason=reason,
            digests=self.digests,
            participants=participants,
            first_ts=self.first_ts,
            last_ts=self.last_ts,
            created=created,
        )

    def close(self) -> None:
        self.journal.close()


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def build_demo(root: Path, *, seed: int = 7) -> Path:
    """A small journal over two days with every kind of record and 7 checkpoints."""
    _build(Path(root), random.Random(seed), DemoClock(BASE_TS))
    return Path(root)


def _build(root: Path, rng: random.Random, clock: DemoClock) -> None:
    w = DemoWriter.open(root, segment_bytes=24 * 1024, clock=clock)
    t = BASE_TS
    w.record(t, "event", event="recorder-started", detail="broker tcp://127.0.0.1:5555")
    plan = [
        ("periodic", "", 40),
        ("manual", "before schema migration", 35),
        ("policy", "ace-6 decision", 30),
        ("shutdown", "recorder stopped", 25),
        ("periodic", "", 45),
        ("manual", "release candidate approved", 30),
        ("periodic", "", 20),
    ]
    seq_by_sender = dict.fromkeys(AGENTS, 0)
    for n, (reason, label, count) in enumerate(plan):
        if n == 4:  # next day, a new session
            t = BASE_TS + 86400 + 3600
            w.record(t, "event", event="recorder-started", detail="after restart")
        for i in range(count):
            t += rng.uniform(2, 40)
            clock.now = t
            sender = AGENTS[(i + n) % len(AGENTS)]
            seq_by_sender[sender] += 1
            w.message(
                t,
                sender,
                f"{_sentence(rng, rng.randint(4, 14))}",
                topic=TOPICS[i % 3],
                chain=CHAINS[(i * 7 + n) % len(CHAINS)],
                ace=1 + (i % 6),
                tags=["demo"] if i % 5 == 0 else [],
                extra={"_persist": {"enriched": True, "lang": "en"}} if i % 4 == 0 else None,
            )
            if n == 1 and i == 10:
                w.gap(t + 0.5, "coder", 12, 17)
            if n == 2 and i == 5:
                w.bad_line()
            if n == 2 and i == 8:
                w.message(
                    t + 0.2,
                    "mallory",
                    "innocent \x1b[2J\x1b[31mred alert\x1b]0;owned\x07 text\u202egnp.exe",
                    topic="chat",
                    chain="error",
                    ace=6,
                )
            if n == 5 and i == 3:
                w.record(t + 0.1, "refused", reason="frame too large", size=17_000_000)
        t += 5
        w.checkpoint(t, label or f"auto #{n + 1}", reason)
    t += 30
    for i in range(6):
        t += 7
        w.message(t, AGENTS[i % 4], f"after the last checkpoint: {_sentence(rng, 6)}")
    w.close()


def write_status(root: Path, status: dict[str, Any]) -> None:
    """Write a status.json as the recorder would (its mtime is its `updated`)."""
    path = Path(root) / "status.json"
    path.write_bytes(orjson.dumps(status))
    os.utime(path, (status["updated"], status["updated"]))


def _last_seq(root: Path) -> int:
    from recorder.store.journal import last_record
    from recorder.store.layout import list_segments

    segments = list_segments(Layout(root))
    record = last_record(segments[-1]) if segments else None
    return int(record["seq"]) if record else 0


def _newest_checkpoint(root: Path) -> dict[str, Any] | None:
    """The journal's newest checkpoint as the status names it (a status naming another
    is passed over: `last_checkpoint`)."""
    from recorder.store.checkpoints import newest_checkpoint

    cp = newest_checkpoint(Layout(root))
    return None if cp is None else {"id": cp.id, "created": cp.created, "label": cp.label}


def stopped_status(root: Path, updated: float) -> dict[str, Any]:
    from recorder.store.status import RECORDER_LEVEL

    return {
        "v": 1,
        "program": {"level": RECORDER_LEVEL, "version": "0.1.0"},  # (a recorder of today's)
        "pid": 999_999_999,
        "process_started": updated - 7200,
        "updated": updated,
        "log_dir": str(root),
        "broker": "tcp://127.0.0.1:5555",
        "state": "stopped",
        "connection": "disconnected",
        "counts": {
            "received": 231,
            "written": 231,
            "durable": 231,
            "gaps": 1,
            "missed": 4,
            "refused": 1,
        },
        "rates": {"received_per_s": 0.0, "written_per_s": 0.0},
        "backlog_bytes": 0,
        # the journal's own: a status naming a seq past it says a power cut took it (and
        # the next writer records a `journal-lost` gap)
        "last_durable_seq": _last_seq(root),
        "last_fsync": updated - 1,
        "last_checkpoint": _newest_checkpoint(root),
        "last_error": {"time": updated - 600, "message": "broker restarted (ECONNRESET)"},
        "fsync": "interval",
        "fsync_interval_ms": 200,
    }


NOW = BASE_TS + 86400 + 3 * 3600  # "now" for demo screens: 2024-05-15 12:00 UTC


def healthy_status(root: Path, now: float, pid: int, started: float) -> dict[str, Any]:
    """A status.json for a live recorder (process `pid` started at `started`)."""
    status = stopped_status(root, now)
    status.update(
        pid=pid,
        process_started=started,
        updated=now - 0.4,
        state="recording",
        connection="connected",
        rates={"received_per_s": 412.5, "written_per_s": 412.5},
        backlog_bytes=3 * 1024,
        last_error=None,
    )
    return status


class FixedProbe:
    """A diagnostics probe with fixed process and disk figures (screenshots, snapshots)."""

    PID = 4242

    def __init__(self) -> None:
        from tui.diagnostics import Probe

        self._probe = Probe()
        self.samples = 0

    def collect(self, log_dir: Path, now: float) -> Any:
        import dataclasses
        import math

        from recorder.store.status import Health
        from tui.diagnostics import ProcessInfo

        diag = self._probe.collect(log_dir, now)
        h = diag.health
        if isinstance(h, Health) and h.pid and h.status is not None:
            status = dataclasses.replace(h.status, pid=self.PID)
            reason = h.reason.replace(str(h.pid), str(self.PID))
            diag.health = Health(h.state, reason, status, h.warnings)
        if diag.process is not None:
            diag.process = ProcessInfo(self.PID, 7260.0, 3.2, 48 * 1024 * 1024, 14, 5)
        if diag.running:
            diag.rate = 400 + 150 * math.sin(self.samples / 3) + 60 * math.sin(self.samples)
        self.samples += 1
        if diag.disk_used is not None:
            diag.disk_used, diag.disk_free, diag.disk_total = 118_784, 85 << 30, 250 << 30
        return diag


RESTORE_T0 = 1_800_000_000.0


def restore_journal(root: Path, *, gap: bool = False, bad: bool = False) -> tuple[Checkpoint, int]:
    """Messages, a checkpoint, then messages after it; returns (checkpoint, messages in it)."""
    clock = DemoClock(RESTORE_T0)
    w = DemoWriter.open(root, segment_bytes=4096, clock=clock)  # several segments
    t = RESTORE_T0
    for i in range(40):
        t += 1
        clock.now = t
        w.message(t, ("planner", "coder")[i % 2], f"message {i} \x1b[31mred\x1b[0m", topic="chat")
        if gap and i == 10:
            w.gap(t, "coder", 3, 7)
        if bad and i == 20:
            w.bad_line()
            w.record(
                t,
                "corrupt",
                segment="seg-000002.jsonl",
                offset=10,
                length=99,
                quarantine="recovery/seg-000002.jsonl.10.corrupt",
                reason="torn tail",
            )
    cp = w.checkpoint(t + 1, "half way", "manual")
    for i in range(5):
        w.message(t + 10 + i, "coder", f"after the checkpoint {i}")
    w.close()
    return cp, 40
