#!/usr/bin/env python3
"""Recorder benchmark: ours against a bare counting SUB and a naive recorder.

    .venv/bin/python bench/record.py            # full run (a few minutes)
    .venv/bin/python bench/record.py --quick    # smoke run (under a minute)
    .venv/bin/python bench/record.py --only full --baseline-ref 8542ce5
        # and that commit's recorder at full speed too, alternating with ours

Everything goes through a real `persist broker` (a fresh one per run, on free
loopback ports), and every participant is its own process on this machine:

1. full speed, 300-byte messages: bare SUB (the ceiling), naive recorder, ours;
2. the same with 2 KB messages;
3. ours at a fixed rate (default 50k msgs/s for 30 s, 300 B), default durability:
   loss (must be 0) and the recorder's RSS, sampled every 0.5 s;
4. SIGKILL: ours records a paced stream (with the publisher envelope and
   heartbeats), is killed mid-stream and restarted at once; time until it records
   again, messages lost, and the gap record(s) the journal holds about it.

Loss is exact: every payload carries the envelope {"_persist": {"pub", "seq",
"mid"}}, and after each run the journal (or the naive recorder's file) is parsed
for the distinct sequence numbers it holds. Like the `Publisher` helper, the
publisher also sends a heartbeat every second and a "bye" one at the end, so our
recorder can see (and write down as gaps) what it missed. Throughput is messages kept over the
time from the first message received to the last one consumed (received for the
bare SUB, written for the recorders); a variant that falls behind is waited for
until it makes no progress for about a second.

Our recorder is flooded once its helper processes (search indexer, session monitor)
have started, their CPU time still for 0.2 s (since 2026-12-06 02:50; about 0.3 s of
a core at their start, which used to overlap the flood's first moments), and the CPU
they use while it is recorded is printed ("helpers' CPU while recording", by helper):
it showed the indexer taking 0.5 s of a 2 KB flood of 1.4 s before it learnt to wait.

Every run first waits (up to --quiet-wait s) for the machine to be idle, and
reports how much CPU other processes used during it ("others CPU %"): on a
shared 2-core machine a busy neighbour changes every number.

Prints a table per scenario and a markdown summary, and writes the results as
JSON to bench/out/record-latest.json. Only wall-clock measurements live here;
the unit tests never time anything.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil
import zmq

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
OUT_DIR = HERE / "out"
DATA_TOPIC = b"agents.bench"
END_TOPIC = b"bench.end"
HEARTBEAT_TOPIC = b"_persist.heartbeat"
GAP_FIELDS = (
    "cause",
    "missed",
    "publisher",
    "from_seq",
    "to_seq",
    "from_ts",
    "to_ts",
    "clean_stop",
)
IDLE_SECONDS = 1.0  # "no progress for this long" = the variant has consumed all it will get
SUB_RCVHWM = 100_000  # same receive queue limit as our recorder, for the bare and naive SUBs
FILLER = (
    "the planner agent asked the coder agent to refactor the journal writer and run the "
    "tests again; the reviewer agent replied with three comments about error handling, "
    "fsync intervals and segment rotation, then a tool call returned the diff summary. "
)


class BenchError(Exception):
    """A failure with a message meant for the person running the bench."""


# ---------------------------------------------------------------------------------------
# payloads
# ---------------------------------------------------------------------------------------
def payload_template(pub: str, size: int, max_seq: int) -> bytes:
    """A bytes %-template (seq, seq) for a JSON object of about `size` bytes.

    It is exactly `size` bytes for sequence numbers as wide as `max_seq`; the
    envelope gives every message a unique id and a per-publisher sequence number.
    """
    head = (
        '{"_persist":{"pub":"' + pub + '","seq":%d,"mid":"' + pub + ':%d"},"type":"message",'
        '"sender":"bench-agent","text":"'
    )
    tail = '"}'
    width = len(str(max_seq))
    fixed = len(head) - 4 + 2 * width + len(tail)  # each %d becomes `width` digits
    n = max(0, size - fixed)
    text = (FILLER * (n // len(FILLER) + 1))[:n]
    return (head + text + tail).encode()


# ---------------------------------------------------------------------------------------
# child roles (run as `record.py --child ROLE JSON`)
# ---------------------------------------------------------------------------------------
def child_publisher(cfg: dict[str, Any]) -> None:
    """Send `count` messages flat out (rate 0) or paced, then the end marker."""
    count, size, rate = int(cfg["count"]), int(cfg["size"]), float(cfg["rate"])
    hb_interval = float(cfg.get("heartbeat") or 0)
    pub = f"bench-{os.getpid()}-{os.urandom(3).hex()}"
    tmpl = payload_template(pub, size, count)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.XPUB)
    sock.sndhwm = 100_000  # as the Publisher helper
    sock.setsockopt(zmq.XPUB_NODROP, 1)  # never drop here: loss must be the subscriber's
    sock.linger = 10_000
    sock.connect(cfg["frontend"])
    if not sock.poll(int(cfg.get("ready_timeout", 10) * 1000)):
        print(json.dumps({"error": "no subscription reached the publisher"}), flush=True)
        sys.exit(2)
    while sock.poll(0):
        sock.recv()
    payloads: list[bytes] | None = None
    if rate <= 0 and count * size <= 600 * 1024 * 1024:
        payloads = [tmpl % (i, i) for i in range(1, count + 1)]  # pre-built: flat out
    send = sock.send_multipart
    send1 = sock.send  # two plain sends are ~1.5x faster than send_multipart here
    more = zmq.SNDMORE
    topic = DATA_TOPIC
    next_hb = time.monotonic() + hb_interval if hb_interval else float("inf")

    def heartbeat(seq: int, bye: bool = False) -> None:
        env: dict[str, Any] = {"pub": pub, "seq": seq, "hb": True}
        if bye:
            env["bye"] = True
        send([HEARTBEAT_TOPIC, orjson.dumps({"_persist": env})])

    print(json.dumps({"start": time.time(), "pub": pub}), flush=True)
    t0 = time.time()
    p0 = time.perf_counter()
    if rate <= 0:
        step = 4096  # look at the clock (heartbeats) every `step` messages
        for i in range(0, count, step):
            end = min(count, i + step)
            if payloads is not None:
                for p in payloads[i:end]:
                    send1(topic, more)
                    send1(p)
            else:
                for j in range(i + 1, end + 1):
                    send1(topic, more)
                    send1(tmpl % (j, j))
            if time.monotonic() >= next_hb:
                heartbeat(end)
                next_hb = time.monotonic() + hb_interval
    else:
        batch = max(1, int(rate / 500))  # sleep every ~2 ms worth of messages
        sleep = time.sleep
        clock = time.perf_counter
        i = 0
        while i < count:
            end = min(count, i + batch)
            for j in range(i + 1, end + 1):
                send1(topic, more)
                send1(tmpl % (j, j))
            i = end
            ahead = p0 + i / rate - clock()
            if ahead > 0:
                sleep(ahead)
            if time.monotonic() >= next_hb:
                heartbeat(i)
                next_hb = time.monotonic() + hb_interval
    p1 = time.perf_counter()
    t1 = time.time()
    send([END_TOPIC, orjson.dumps({"end": True, "sent": count, "pub": pub})])
    if hb_interval:
        heartbeat(count, bye=True)
    sock.close()  # linger: waits until everything has left for the broker
    ctx.term()
    print(
        json.dumps({"sent": count, "pub": pub, "t0": t0, "t1": t1, "send_seconds": p1 - p0}),
        flush=True,
    )


def _sub_socket(ctx: zmq.Context, backend: str) -> zmq.Socket:
    sock = ctx.socket(zmq.SUB)
    sock.rcvhwm = SUB_RCVHWM
    sock.setsockopt(zmq.RCVBUF, 4 * 1024 * 1024)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(backend)
    return sock


def child_bare(cfg: dict[str, Any]) -> None:
    """The ceiling: receive and count, nothing else."""
    ctx = zmq.Context()
    sock = _sub_socket(ctx, cfg["backend"])
    time.sleep(0.3)
    print("READY", flush=True)
    sock.rcvtimeo = int(IDLE_SECONDS * 1000)
    recv = sock.recv_multipart
    now = time.time
    count = 0
    first = last = 0.0
    end = False
    give_up = time.monotonic() + float(cfg.get("start_timeout", 60))
    while True:
        try:
            frames = recv()
        except zmq.Again:
            if count or time.monotonic() > give_up:
                break
            continue
        if frames[0] != DATA_TOPIC:
            if frames[0] == END_TOPIC:
                end = True
                break
            continue  # a heartbeat
        last = now()
        if not count:
            first = last
        count += 1
    sock.close(0)
    ctx.term()
    print(json.dumps({"kept": count, "first": first, "last": last, "end_seen": end}), flush=True)


def child_naive(cfg: dict[str, Any]) -> None:
    """The original design: json.loads, add metadata, json.dumps, write + flush per message."""
    ctx = zmq.Context()
    sock = _sub_socket(ctx, cfg["backend"])
    time.sleep(0.3)
    print("READY", flush=True)
    sock.rcvtimeo = int(IDLE_SECONDS * 1000)
    count = 0
    first = last = 0.0
    end = False
    give_up = time.monotonic() + float(cfg.get("start_timeout", 60))
    with open(cfg["path"], "a", encoding="utf-8") as f:
        while True:
            try:
                frames = sock.recv_multipart()
            except zmq.Again:
                if count or time.monotonic() > give_up:
                    break
                continue
            if frames[0] != DATA_TOPIC:
                if frames[0] == END_TOPIC:
                    end = True
                    break
                continue  # a heartbeat
            topic, payload = frames[0], frames[-1]
            message = json.loads(payload)
            count += 1
            record = {
                "seq": count,
                "received": time.time(),
                "topic": topic.decode("utf-8", "replace"),
                "size": len(payload),
                "message": message,
            }
            f.write(json.dumps(record) + "\n")
            f.flush()
            last = record["received"]
            if count == 1:
                first = last
    sock.close(0)
    ctx.term()
    print(json.dumps({"kept": count, "first": first, "last": last, "end_seen": end}), flush=True)


CHILDREN = {"pub": child_publisher, "bare": child_bare, "naive": child_naive}


# ---------------------------------------------------------------------------------------
# process management
# ---------------------------------------------------------------------------------------
@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    err_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr_tail(self, lines: int = 15) -> str:
        try:
            text = self.err_path.read_text(errors="replace").strip()
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def readline(self, timeout: float) -> str:
        """One line of stdout, waiting at most `timeout` seconds."""
        out = self.proc.stdout
        assert out is not None
        ready, _, _ = select.select([out], [], [], timeout)
        if not ready:
            raise BenchError(
                f"{self.name} said nothing within {timeout:.0f}s\n{self.stderr_tail()}"
            )
        line = out.readline().decode(errors="replace").strip()
        if not line:
            code = self.proc.wait(5)
            raise BenchError(f"{self.name} exited with {code}\n{self.stderr_tail()}")
        return line

    def result(self, timeout: float) -> dict[str, Any]:
        """The JSON object a child prints last, once it has exited."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"{self.name} did not finish within {timeout:.0f}s") from exc
        lines = out.decode(errors="replace").strip().splitlines()
        if self.proc.returncode != 0 or not lines:
            raise BenchError(
                f"{self.name} exited with {self.proc.returncode}\n"
                f"{lines[-1] if lines else ''}\n{self.stderr_tail()}"
            )
        return json.loads(lines[-1])


class Procs:
    """Every child process we start, so that `finally` can end them all."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.children: list[Child] = []
        self._n = 0

    def spawn(self, name: str, argv: list[str], cwd: Path = ROOT) -> Child:
        self._n += 1
        err_path = self.work / f"{self._n:02d}-{name}.stderr"
        with open(err_path, "wb") as err:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, cwd=cwd
            )
        child = Child(name, proc, err_path)
        self.children.append(child)
        return child

    def child(self, role: str, cfg: dict[str, Any]) -> Child:
        argv = [sys.executable, str(Path(__file__).resolve()), "--child", role, json.dumps(cfg)]
        return self.spawn(role, argv)

    def kill_all(self) -> None:
        for c in self.children:
            if c.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    c.proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    c.proc.wait(5)
            if c.proc.stdout is not None:
                c.proc.stdout.close()
        self.children.clear()


def persist_argv() -> list[str]:
    exe = Path(sys.executable).with_name("persist")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("persist")
    return [found] if found else [sys.executable, "-m", "recorder.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class BrokerProc:
    def __init__(self, procs: Procs, hwm: int | None) -> None:
        self.procs = procs
        self.hwm = hwm
        self.child: Child | None = None
        self.frontend = self.backend = ""

    def __enter__(self) -> BrokerProc:
        for _attempt in range(5):
            fport, bport = free_port(), free_port()
            if fport == bport:
                continue
            self.frontend = f"tcp://127.0.0.1:{fport}"
            self.backend = f"tcp://127.0.0.1:{bport}"
            argv = [*persist_argv(), "broker"]
            argv += ["--frontend", self.frontend, "--backend", self.backend]
            if self.hwm:
                argv += ["--hwm", str(self.hwm)]
            self.child = self.procs.spawn("broker", argv)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if self.child.proc.poll() is not None:
                    break
                if port_open(fport) and port_open(bport):
                    return self
                time.sleep(0.05)
            tail = self.child.stderr_tail()
            self.child.proc.kill()
            if "cannot bind" not in tail:
                raise BenchError(f"the broker did not start:\n{tail}")
        raise BenchError("could not find free ports for the broker")

    def __exit__(self, *exc: object) -> None:
        if self.child and self.child.proc.poll() is None:
            self.child.proc.terminate()
            try:
                self.child.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.child.proc.kill()
                self.child.proc.wait(3)


# ---------------------------------------------------------------------------------------
# our recorder
# ---------------------------------------------------------------------------------------
def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def segment_lines(log_dir: Path) -> Iterator[bytes]:
    """Every line of the journal in order, from plain and compressed segments alike
    (the recorder compresses closed segments: reading only `seg-*.jsonl` would count
    every message in a compressed one as lost)."""
    from recorder.store.layout import Layout, list_segments
    from recorder.store.segfile import open_segment

    for path in list_segments(Layout(log_dir)):
        with open_segment(path) as seg:
            data = seg.read(0, seg.size)
        yield from data.splitlines(keepends=True)


def journal_bytes(log_dir: Path) -> int:
    total = 0
    with contextlib.suppress(FileNotFoundError), os.scandir(log_dir / "segments") as it:
        for entry in it:
            if entry.name.startswith("seg-"):
                with contextlib.suppress(FileNotFoundError):
                    total += entry.stat().st_size
    return total


class OtherLoad:
    """CPU used by processes other than the bench's own during a run (percent of all CPUs).

    System-wide busy time minus this process's and its reaped children's CPU time:
    read `value` only after every child started in the run has been waited for.
    """

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.busy0 = self._busy()
        self.ours0 = self._ours()

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0)

    @staticmethod
    def _ours() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    @property
    def value(self) -> float:
        wall = (time.monotonic() - self.t0) * (os.cpu_count() or 1)
        others = (self._busy() - self.busy0) - (self._ours() - self.ours0)
        return round(max(0.0, 100 * others / wall), 1) if wall > 0 else 0.0


class HelperCpu:
    """CPU seconds the recorder's helper processes (its children: the search indexer, the
    session monitor) used from `settle()` to the last `mark()`: called at each growth of
    the journal, so what they took while the flood was being recorded, not after it.
    Children are looked for by `settle()` (and again at a `mark()` while none was
    found, every 0.5 s at most): scanning every process at each mark would cost the
    flood's two cores more than what it measures."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.base: dict[int, float] = {}
        self.kids: list[psutil.Process] = []
        self.names: dict[int, str] = {}
        self.looked = 0.0
        self.used: dict[str, float] = {}  # by helper: the indexer, the monitor

    @property
    def seconds(self) -> float:
        return sum(self.used.values())

    @staticmethod
    def _cpu(p: psutil.Process) -> float | None:
        try:
            t = p.cpu_times()
        except psutil.Error:
            return None
        return t.user + t.system

    def _find(self) -> None:
        self.looked = time.monotonic()
        try:
            self.kids = self.proc.children(recursive=True)
        except psutil.Error:
            self.kids = []
        for kid in self.kids:
            self.base.setdefault(kid.pid, self._cpu(kid) or 0.0)
            try:
                argv = kid.cmdline()
            except psutil.Error:
                argv = []
            name = "indexer" if "reindex" in argv else "monitor" if "monitor" in argv else ""
            self.names[kid.pid] = name or f"pid {kid.pid}"

    def settle(self, timeout: float = 5.0) -> float:
        """Wait until the helpers have started (their start-up, about 0.3 s of a core
        here, is not recording work): until their CPU time stops growing for 0.2 s,
        `timeout` at most (1 s when there are none: `--search-index off --monitor
        off`); returns the seconds waited."""
        t0 = time.monotonic()
        last = None
        while time.monotonic() - t0 < timeout:
            self._find()
            now = tuple(self._cpu(kid) for kid in self.kids)
            if now == last and (self.kids or time.monotonic() - t0 >= 1.0):
                break
            last = now
            time.sleep(0.2)
        self.base = {kid.pid: self._cpu(kid) or 0.0 for kid in self.kids}
        return time.monotonic() - t0

    def mark(self) -> None:
        if not self.kids and time.monotonic() - self.looked >= 0.5:
            self._find()
        for kid in self.kids:
            cpu = self._cpu(kid)
            if cpu is not None:
                self.used[self.names[kid.pid]] = cpu - self.base[kid.pid]


class RssSampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        try:
            proc = psutil.Process(self.pid)
            while not self.halt.is_set():
                self.samples.append((time.time(), proc.memory_info().rss))
                self.halt.wait(self.interval)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass

    def stop(self) -> dict[str, Any]:
        self.halt.set()
        self.join(2)
        rss = [r for _, r in self.samples]
        if not rss:
            return {}
        mb = 1024 * 1024
        return {
            "peak_rss_mb": round(max(rss) / mb, 1),
            "median_rss_mb": round(statistics.median(rss) / mb, 1),
            "last_rss_mb": round(rss[-1] / mb, 1),
            "rss_samples": len(rss),
        }


def start_recorder(
    procs: Procs, backend: str, log_dir: Path, extra: list[str], tree: Path | None = None
) -> Child:
    """`persist record`; with `tree`, the `recorder` package found there (`--baseline-ref`)."""
    command = [sys.executable, "-m", "recorder.cli"] if tree is not None else persist_argv()
    argv = [
        *command,
        "record",
        "--broker",
        backend,
        "--log-dir",
        str(log_dir),
        "--embedded",
        "no",
        *extra,
    ]
    return procs.spawn("recorder", argv, cwd=tree or ROOT)


def recorder_status(log_dir: Path, pid: int) -> dict[str, Any] | None:
    status = read_json(log_dir / "status.json")
    if status is None or status.get("pid") != pid:
        return None
    return status


def wait_recording(rec: Child, log_dir: Path, timeout: float = 15.0, poll: float = 0.02) -> float:
    """Wait for status.json to say recording + connected (this PID); returns the time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rec.proc.poll() is not None:
            raise BenchError(f"the recorder exited with {rec.proc.returncode}\n{rec.stderr_tail()}")
        s = recorder_status(log_dir, rec.pid)
        if s and s.get("state") == "recording" and s.get("connection") == "connected":
            return time.time()
        time.sleep(poll)
    raise BenchError(f"the recorder did not report recording+connected within {timeout:.0f}s")


def stop_recorder(rec: Child, timeout: float = 30.0) -> float:
    """SIGTERM the recorder and wait for a clean exit; returns the seconds it took."""
    if rec.proc.poll() is not None:
        raise BenchError(
            f"the recorder died during the run ({rec.proc.returncode})\n{rec.stderr_tail()}"
        )
    t0 = time.monotonic()
    rec.proc.send_signal(signal.SIGTERM)
    try:
        rec.proc.wait(timeout)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"the recorder did not stop within {timeout:.0f}s of SIGTERM") from exc
    if rec.proc.returncode != 0:
        raise BenchError(f"the recorder exited with {rec.proc.returncode}\n{rec.stderr_tail()}")
    return time.monotonic() - t0


def wait_consumed(
    log_dir: Path, pub: Child, rec: Child, max_wait: float, helpers: HelperCpu | None = None
) -> float:
    """Wait for the publisher to finish and the journal to stop growing; returns the
    time the journal last grew (polled every 20 ms; `helpers` marked at each growth)."""
    size = journal_bytes(log_dir)
    grew = time.time()
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        time.sleep(0.02)
        if rec.proc.poll() is not None:
            raise BenchError(f"the recorder died ({rec.proc.returncode})\n{rec.stderr_tail()}")
        now_size = journal_bytes(log_dir)
        now = time.time()
        if now_size != size:
            size, grew = now_size, now
            if helpers is not None:
                helpers.mark()
        elif pub.proc.poll() is not None and now - grew >= IDLE_SECONDS:
            return grew
    raise BenchError(f"the recorder was still writing after {max_wait:.0f}s")


# ---------------------------------------------------------------------------------------
# reading what was recorded
# ---------------------------------------------------------------------------------------
@dataclass
class Tally:
    """Distinct sequence numbers per publisher, as a bitmap."""

    max_seq: int
    maps: dict[str, bytearray] = field(default_factory=dict)
    unique: int = 0
    duplicates: int = 0
    out_of_range: int = 0

    def add(self, pub: str, seq: int) -> None:
        bm = self.maps.get(pub)
        if bm is None:
            bm = self.maps[pub] = bytearray(self.max_seq + 1)
        if not 1 <= seq <= self.max_seq:
            self.out_of_range += 1
        elif bm[seq]:
            self.duplicates += 1
        else:
            bm[seq] = 1
            self.unique += 1

    def missing_ranges(self, pub: str, limit: int = 10) -> list[tuple[int, int]]:
        bm = self.maps.get(pub, bytearray(self.max_seq + 1))
        ranges: list[tuple[int, int]] = []
        start = None
        for seq in range(1, self.max_seq + 1):
            if not bm[seq]:
                if start is None:
                    start = seq
            elif start is not None:
                ranges.append((start, seq - 1))
                start = None
        if start is not None:
            ranges.append((start, self.max_seq))
        return ranges[:limit]


def parse_journal(log_dir: Path, max_seq: int) -> dict[str, Any]:
    """Walk every segment: message ids, gaps, events, first/last message times."""
    tally = Tally(max_seq)
    gaps: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    corrupt = bad_lines = heartbeats = 0
    first_ts = last_ts = None
    loads = orjson.loads
    order = 0
    first_msg_after: dict[int, float] = {}  # start-event order -> first message ts after it
    starts: list[tuple[int, dict[str, Any]]] = []
    for line in segment_lines(log_dir):
        try:
            rec = loads(line)
        except orjson.JSONDecodeError:
            bad_lines += 1
            continue
        order += 1
        kind = rec.get("kind")
        if kind == "msg":
            frames = rec.get("frames") or ()
            body = frames[-1].get("json") if frames else None
            env = body.get("_persist") if isinstance(body, dict) else None
            if not isinstance(env, dict):
                continue  # the end marker
            if env.get("hb"):
                heartbeats += 1
                continue
            tally.add(env["pub"], env["seq"])
            ts = rec["ts"]
            if first_ts is None:
                first_ts = ts
            last_ts = ts
            if starts and starts[-1][0] not in first_msg_after:
                first_msg_after[starts[-1][0]] = ts
        elif kind == "gap":
            gaps.append(rec)
        elif kind == "event":
            events.append({k: rec.get(k) for k in ("ts", "event", "pid", "detail")})
            if rec.get("event") == "start":
                starts.append((order, rec))
        elif kind == "corrupt":
            corrupt += 1
    return {
        "tally": tally,
        "gaps": gaps,
        "events": events,
        "corrupt": corrupt,
        "bad_lines": bad_lines,
        "heartbeats": heartbeats,
        "first_ts": first_ts,
        "last_ts": last_ts,
        "starts": [(o, r.get("pid"), r.get("ts")) for o, r in starts],
        "first_msg_after_start": first_msg_after,
    }


def parse_naive(path: Path, max_seq: int) -> Tally:
    tally = Tally(max_seq)
    with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
        for line in f:
            with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError):
                env = orjson.loads(line)["message"]["_persist"]
                tally.add(env["pub"], env["seq"])
    return tally


# ---------------------------------------------------------------------------------------
# runs
# ---------------------------------------------------------------------------------------
@dataclass
class Bench:
    args: argparse.Namespace
    work: Path
    procs: Procs
    ref_tree: Path | None = None  # `--baseline-ref`: that commit's `recorder/`, extracted

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def wait_quiet(self) -> float:
        """Wait (up to --quiet-wait s) until other processes leave the CPUs mostly idle.

        Returns the machine's CPU use (percent of all CPUs) just before the run;
        the bench shares the machine, so a busy neighbour skews every number.
        """
        deadline = time.monotonic() + self.args.quiet_wait
        load = psutil.cpu_percent(interval=0.3)
        warned = False
        while load > self.args.quiet_cpu and time.monotonic() < deadline:
            if not warned:
                self.log(f"    (machine busy: {load:.0f} % CPU used by other processes; waiting)")
                warned = True
            load = psutil.cpu_percent(interval=1.0)
        if load > self.args.quiet_cpu:
            self.log(f"    (still {load:.0f} % CPU busy before this run: numbers are skewed)")
        return round(load, 1)

    def publisher(self, frontend: str, count: int, size: int, rate: float, hb: float = 1) -> Child:
        cfg = {"frontend": frontend, "count": count, "size": size, "rate": rate, "heartbeat": hb}
        return self.procs.child("pub", cfg)

    def _finish_pub(self, pub: Child, count: int, size: int, rate: float) -> dict[str, Any]:
        expected = count / rate if rate > 0 else count * size / 20e6
        res = pub.result(timeout=60 + 3 * expected)
        if "error" in res:
            raise BenchError(f"publisher: {res['error']}")
        return res

    def run_sub(self, variant: str, size: int, count: int, rate: float = 0) -> dict[str, Any]:
        """bare or naive: a SUB child against a fresh broker."""
        busy = self.wait_quiet()
        load = OtherLoad()
        with BrokerProc(self.procs, self.args.hwm) as broker:
            cfg: dict[str, Any] = {"backend": broker.backend}
            out = self.work / f"naive-{size}-{time.monotonic_ns()}.jsonl"
            if variant == "naive":
                cfg["path"] = str(out)
            sub = self.procs.child(variant, cfg)
            line = sub.readline(20)
            if line != "READY":
                raise BenchError(f"{variant}: unexpected output {line!r}")
            pub = self.publisher(broker.frontend, count, size, rate)
            pres = self._finish_pub(pub, count, size, rate)
            sres = sub.result(timeout=120 + count / 5000)
        others = load.value
        kept = sres["kept"]
        if variant == "naive":
            tally = parse_naive(out, count)
            kept = tally.unique
            with contextlib.suppress(OSError):
                out.unlink()
        window = sres["last"] - sres["first"]
        row = self._row(variant, size, count, kept, window, pres)
        return {**row, "busy_before_pct": busy, "others_cpu_pct": others}

    def run_ours(
        self,
        size: int,
        count: int,
        rate: float = 0,
        tag: str = "ours",
        hb: float = 1,
        tree: Path | None = None,
    ) -> dict[str, Any]:
        busy = self.wait_quiet()
        load = OtherLoad()
        with BrokerProc(self.procs, self.args.hwm) as broker:
            log_dir = self.work / f"{tag}-{size}-{time.monotonic_ns()}"
            rec = start_recorder(self.procs, broker.backend, log_dir, self.args.recorder_arg, tree)
            wait_recording(rec, log_dir)
            rss = RssSampler(rec.pid)
            rss.start()
            helpers = HelperCpu(rec.pid)
            helpers.settle()
            pub = self.publisher(broker.frontend, count, size, rate, hb)
            max_wait = 120 + (count / rate if rate > 0 else count / 5000)
            last_growth = wait_consumed(log_dir, pub, rec, max_wait, helpers)
            pres = self._finish_pub(pub, count, size, rate)
            mem = rss.stop()
            stop_recorder(rec)
        others = load.value
        status = read_json(log_dir / "status.json") or {}
        j = parse_journal(log_dir, count)
        tally: Tally = j["tally"]
        window = last_growth - (j["first_ts"] or last_growth)
        row = self._row(
            tag if tree is not None else "ours", size, count, tally.unique, window, pres
        )
        counts = status.get("counts") or {}
        row.update(mem)
        row.update(
            busy_before_pct=busy,
            others_cpu_pct=others,
            catchup_s=round(last_growth - pres["t1"], 3),
            status_received=counts.get("received"),
            status_written=counts.get("written"),
            status_gaps=counts.get("gaps"),
            status_missed=counts.get("missed"),
            backlog_pauses=counts.get("backlog_pauses"),
            secrets_unscanned=counts.get("secrets_unscanned"),
            journal_gaps=len(j["gaps"]),
            journal_missed=sum(int(g.get("missed") or 0) for g in j["gaps"]),
            duplicates=tally.duplicates,
            journal_mb=round(journal_bytes(log_dir) / 1e6, 1),
            helpers_cpu_s=round(helpers.seconds, 2),
            helpers_cpu=helpers.used,
        )
        if not self.args.keep:
            shutil.rmtree(log_dir, ignore_errors=True)
        return row

    def _row(
        self, variant: str, size: int, count: int, kept: int, window: float, pres: dict[str, Any]
    ) -> dict[str, Any]:
        lost = count - kept
        return {
            "variant": variant,
            "size": size,
            "sent": count,
            "kept": kept,
            "lost": lost,
            "loss_pct": round(100 * lost / count, 2) if count else 0.0,
            "seconds": round(window, 3),
            "msgs_per_s": round(kept / window) if window > 0 else None,
            "pub_msgs_per_s": round(count / pres["send_seconds"]) if pres["send_seconds"] else None,
        }

    # -- scenarios ---------------------------------------------------------------
    def full_speed(self, size: int, count: int) -> dict[str, Any]:
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in self.args.variants}
        for r in range(self.args.repeat):
            for variant in self.args.variants:
                self.log(f"  full speed {size} B, {variant} (run {r + 1}/{self.args.repeat}) ...")
                if variant == "ours":
                    row = self.run_ours(size, count)
                elif variant == "ref":
                    row = self.run_ours(size, count, tag="ref", tree=self.ref_tree)
                else:
                    row = self.run_sub(variant, size, count)
                self.log(
                    f"    {row['msgs_per_s'] or 0:>9,} msgs/s, lost {row['lost']:,} "
                    f"({row['loss_pct']} %), publisher {row['pub_msgs_per_s'] or 0:,} msgs/s, "
                    f"other processes {row['others_cpu_pct']} % CPU"
                )
                runs[variant].append(row)
        best = {v: _median_row(rows) for v, rows in runs.items()}
        ours = best["ours"]["msgs_per_s"] if "ours" in best else None
        result = {
            "size": size,
            "messages": count,
            "variants": best,
            "runs": runs,
            "ours_vs_bare": _ratio(ours, best["bare"]["msgs_per_s"] if "bare" in best else None),
            "ours_vs_naive": _ratio(ours, best["naive"]["msgs_per_s"] if "naive" in best else None),
            "ours_vs_ref": _ratio(ours, best["ref"]["msgs_per_s"] if "ref" in best else None),
        }
        return result

    def sustained(self, rate: float, seconds: float, size: int) -> dict[str, Any]:
        count = int(rate * seconds)
        self.log(f"  fixed rate {rate:,.0f} msgs/s for {seconds:g} s ({count:,} x {size} B) ...")
        row = self.run_ours(size, count, rate=rate, tag="sustain")
        row.update(rate=rate, target_seconds=seconds)
        self.log(
            f"    lost {row['lost']:,}, publisher {row['pub_msgs_per_s']:,} msgs/s, "
            f"peak RSS {row.get('peak_rss_mb')} MB"
        )
        return row

    def sigkill(self, rate: float, seconds: float, kill_after: float, size: int) -> dict[str, Any]:
        count = int(rate * seconds)
        self.log(
            f"  SIGKILL: {rate:,.0f} msgs/s for {seconds:g} s, kill after {kill_after:.1f} s ..."
        )
        extra = self.args.recorder_arg
        busy = self.wait_quiet()
        load = OtherLoad()
        with BrokerProc(self.procs, self.args.hwm) as broker:
            log_dir = self.work / f"sigkill-{time.monotonic_ns()}"
            first = start_recorder(self.procs, broker.backend, log_dir, extra)
            wait_recording(first, log_dir)
            pub = self.publisher(broker.frontend, count, size, rate, hb=1.0)
            start = json.loads(pub.readline(30))
            if "start" not in start:
                raise BenchError(f"publisher: {start}")
            time.sleep(max(0.0, start["start"] + kill_after - time.time()))
            if first.proc.poll() is not None:
                raise BenchError(f"the recorder died before the kill\n{first.stderr_tail()}")
            t_kill = time.time()
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(5)
            t_spawn = time.time()
            second = start_recorder(self.procs, broker.backend, log_dir, extra)
            t_status = wait_recording(second, log_dir, poll=0.005)
            last_growth = wait_consumed(log_dir, pub, second, 120 + seconds)
            del last_growth
            pres = self._finish_pub(pub, count, size, rate)
            stopped_in = stop_recorder(second)
        others = load.value
        j = parse_journal(log_dir, count)
        tally: Tally = j["tally"]
        pubs = list(tally.maps)
        lost = count - tally.unique
        missing = tally.missing_ranges(pubs[0], limit=1000) if pubs else []
        # The publisher is paced: seq s left it at about t0 + (s - 1) / rate (within one
        # ~2 ms batch). Messages sent before the kill and missing were lost with the killed
        # process (its queues, its unwritten buffers); the rest were sent while no recorder
        # was subscribed, so the broker had nobody to deliver them to.
        sent_at_kill = int((t_kill - pres["t0"]) * rate) + 1
        lost_in_process = sum(
            max(0, min(b, sent_at_kill) - a + 1) for a, b in missing if a <= sent_at_kill
        )
        lost_while_down = lost - lost_in_process
        starts = j["starts"]
        second_start = next((s for s in starts if s[1] == second.pid), None)
        if second_start is None:
            raise BenchError("the restarted recorder wrote no start event")
        order, _pid, start_ts = second_start
        first_new = j["first_msg_after_start"].get(order)
        connected = next(
            (e["ts"] for e in j["events"] if e["event"] == "connected" and e["ts"] >= start_ts),
            None,
        )
        restart_gaps = [g for g in j["gaps"] if g.get("ts", 0) >= t_kill - 1]
        last_before = _last_msg_before(log_dir, t_kill)
        missed = sum(int(g.get("missed") or 0) for g in j["gaps"])
        fsync_ms = _fsync_ms(extra)
        res = {
            "busy_before_pct": busy,
            "others_cpu_pct": others,
            "rate": rate,
            "sent": count,
            "kept": tally.unique,
            "lost": lost,
            "lost_in_killed_process": lost_in_process,
            "lost_while_down": lost_while_down,
            "missing_ranges": missing[:10],
            "duplicates": tally.duplicates,
            "gap_records": [{k: g.get(k) for k in GAP_FIELDS if k in g} for g in restart_gaps],
            "gap_causes": sorted({g.get("cause") for g in restart_gaps}),
            "gaps_missed_total": missed,
            "gap_matches_loss": missed == lost,
            "corrupt_tails": j["corrupt"],
            "spawn_to_start_event_s": _round(start_ts - t_spawn),
            "spawn_to_connected_event_s": _round(connected - t_spawn) if connected else None,
            "spawn_to_first_message_s": _round(first_new - t_spawn) if first_new else None,
            "spawn_to_status_recording_s": _round(t_status - t_spawn),
            "kill_to_first_message_s": _round(first_new - t_kill) if first_new else None,
            "downtime_s": _round(first_new - last_before) if first_new and last_before else None,
            "fsync_interval_ms": fsync_ms,
            "loss_bound_fsync": int(rate * fsync_ms / 1000),
            "loss_restart_estimate": int(rate * (t_status - t_kill)),
            "sigterm_to_exit_s": _round(stopped_in),
        }
        if not self.args.keep:
            shutil.rmtree(log_dir, ignore_errors=True)
        self.log(
            f"    first new message {res['spawn_to_first_message_s']} s after the restart; "
            f"lost {lost:,} ({lost_in_process:,} with the killed process, "
            f"{lost_while_down:,} while none ran); gaps {res['gap_causes']} missed {missed:,}"
        )
        return res


def _last_msg_before(log_dir: Path, t: float) -> float | None:
    """The receive time of the last message recorded before time `t` (scans the journal)."""
    last = None
    for line in segment_lines(log_dir):
        if b'"kind":"msg"' not in line:
            continue
        with contextlib.suppress(orjson.JSONDecodeError):
            ts = orjson.loads(line)["ts"]
            if ts < t:
                last = ts if last is None else max(last, ts)
    return last


def _fsync_ms(extra: list[str]) -> int:
    if "--fsync-interval-ms" in extra:
        return int(extra[extra.index("--fsync-interval-ms") + 1])
    return 200  # the recorder's default


def _round(x: float) -> float:
    return round(x, 3)


def _ratio(a: float | None, b: float | None) -> float | None:
    """a / b to three places, rounded down: a target compared with it is never passed by
    rounding (0.598 of a bare SUB, rounded to 0.6, passed ">= 0.6" before 2026-12-06)."""
    return math.floor(a / b * 1000) / 1000 if a and b else None


def _median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    rows = sorted(rows, key=lambda r: r["msgs_per_s"] or 0)
    return rows[len(rows) // 2]


# ---------------------------------------------------------------------------------------
# reporting
# ---------------------------------------------------------------------------------------
def fmt_int(x: Any) -> str:
    return f"{x:,}" if isinstance(x, int) else ("-" if x is None else str(x))


def fmt_size(size: int) -> str:
    return f"{size // 1024} KB" if size >= 1024 and size % 1024 == 0 else f"{size} B"


def check(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def build_summary(results: dict[str, Any], meta: dict[str, Any]) -> tuple[str, dict[str, bool]]:
    lines = [
        f"Recorder benchmark ({meta['when']}, {meta['cpus']} CPUs, Python {meta['python']}, "
        f"pyzmq {meta['pyzmq']} / libzmq {meta['libzmq']}, broker hwm "
        f"{meta['broker_hwm'] or 'default'}, commit {meta['commit']})",
    ]
    if results.get("full_speed") or results.get("sustained"):
        lines += [
            "",
            "| scenario | variant | msgs/s | lost | ours / variant | others' CPU |",
            "|---|---|---:|---:|---:|---:|",
        ]
    targets: dict[str, bool] = {}
    for fs in results.get("full_speed", []):
        size = fmt_size(fs["size"])
        ours = (fs["variants"].get("ours") or {}).get("msgs_per_s")
        for variant, row in fs["variants"].items():
            ratio = "" if variant == "ours" else f"{_ratio(ours, row['msgs_per_s']) or '-'}"
            label = {
                "bare": "bare SUB (ceiling)",
                "naive": "naive recorder",
                "ours": "ours",
                "ref": f"ours at {meta.get('baseline_ref')}",
            }
            lines.append(
                f"| full speed, {fmt_int(fs['messages'])} x {size} | {label[variant]} | "
                f"{fmt_int(row['msgs_per_s'])} | {fmt_int(row['lost'])} ({row['loss_pct']} %) | "
                f"{ratio} | {row.get('others_cpu_pct', '-')} % |"
            )
        vb, vn = fs["ours_vs_bare"], fs["ours_vs_naive"]
        if vb is not None:  # issue 13: at least 0.6 of a bare SUB, aim 0.75, any size
            targets[f"{size}: ours >= 0.6 x bare (aim 0.75): {vb}"] = vb >= 0.6
        if vn is not None:
            targets[f"{size}: ours >= 1.5 x naive: {vn}"] = vn >= 1.5
    sus = results.get("sustained")
    if sus:
        lines.append(
            f"| {fmt_int(int(sus['rate']))} msgs/s for {sus['target_seconds']:g} s, "
            f"{fmt_size(sus['size'])} | ours | {fmt_int(sus['msgs_per_s'])} | "
            f"{fmt_int(sus['lost'])} ({sus['loss_pct']} %) | last write {sus['catchup_s']} s "
            f"after the last send | {sus.get('others_cpu_pct')} % |"
        )
        targets[
            f"zero loss at {sus['rate']:,.0f} msgs/s for {sus['target_seconds']:g} s: "
            f"lost {sus['lost']}"
        ] = sus["lost"] == 0
        targets[
            f"recorder RSS < 100 MB: peak {sus.get('peak_rss_mb')} MB, "
            f"last {sus.get('last_rss_mb')} MB, journal {sus.get('journal_mb')} MB"
        ] = (sus.get("peak_rss_mb") or 1e9) < 100
    kill = results.get("sigkill")
    if kill:
        lines += [
            "",
            "| SIGKILL + restart | |",
            "|---|---|",
            f"| stream | {fmt_int(int(kill['rate']))} msgs/s, {fmt_int(kill['sent'])} messages |",
            f"| restart spawn -> journal open (start event) | {kill['spawn_to_start_event_s']} s |",
            f"| restart spawn -> broker connected | {kill['spawn_to_connected_event_s']} s |",
            f"| SIGTERM -> clean exit (drained, fsynced, shutdown checkpoint) | "
            f"{kill.get('sigterm_to_exit_s')} s |",
            f"| restart spawn -> first new message recorded | "
            f"{kill['spawn_to_first_message_s']} s |",
            f"| restart spawn -> status.json recording+connected | "
            f"{kill['spawn_to_status_recording_s']} s |",
            f"| messages lost | {fmt_int(kill['lost'])}: "
            f"{fmt_int(kill['lost_in_killed_process'])} with the killed process (fsync bound "
            f"{kill['rate']:,.0f}/s x {kill['fsync_interval_ms']} ms = "
            f"{fmt_int(kill['loss_bound_fsync'])}), {fmt_int(kill['lost_while_down'])} sent "
            f"while no recorder was subscribed |",
            f"| gap records | {', '.join(map(str, kill['gap_causes'])) or 'none'}; "
            f"missed {fmt_int(kill['gaps_missed_total'])} "
            f"({'matches' if kill['gap_matches_loss'] else 'DOES NOT match'} the loss) |",
        ]
        first = kill["spawn_to_first_message_s"]
        targets[f"recording again < 1 s after SIGKILL: first message after {first} s"] = bool(
            first is not None and first < 1.0
        )
        bound = kill["loss_bound_fsync"]
        targets[
            f"loss of the killed process bounded by the fsync interval: "
            f"{kill['lost_in_killed_process']} <= {bound} (total incl. downtime {kill['lost']})"
        ] = kill["lost_in_killed_process"] <= bound
        targets[
            f"loss written down as a gap: {kill['gap_causes']}, missed "
            f"{kill['gaps_missed_total']} of {kill['lost']}"
        ] = bool(kill["gap_causes"] and kill["gap_matches_loss"])
    lines += ["", "| target | result |", "|---|---|"]
    lines += [f"| {name} | {check(ok)} |" for name, ok in targets.items()]
    return "\n".join(lines), targets


def print_full_speed(fs: dict[str, Any]) -> None:
    print(f"\nFull speed, {fs['messages']:,} messages of {fmt_size(fs['size'])}:")
    print(
        f"  {'variant':<8} {'msgs/s':>10} {'lost':>10} {'loss %':>7} {'window s':>9} "
        f"{'pub msgs/s':>11} {'ours/x':>7} {'others CPU %':>12}"
    )
    ours = (fs["variants"].get("ours") or {}).get("msgs_per_s")
    for variant, row in fs["variants"].items():
        ratio = "" if variant == "ours" else str(_ratio(ours, row["msgs_per_s"]) or "-")
        print(
            f"  {variant:<8} {fmt_int(row['msgs_per_s']):>10} {fmt_int(row['lost']):>10} "
            f"{row['loss_pct']:>7} {row['seconds']:>9} {fmt_int(row['pub_msgs_per_s']):>11} "
            f"{ratio:>7} {row.get('others_cpu_pct', '-'):>12}"
        )
    for variant, rows in fs["runs"].items():
        if len(rows) > 1:
            each = ", ".join(fmt_int(r["msgs_per_s"]) for r in rows)
            print(f"  {variant} runs, msgs/s: {each} (median shown)")
    o = fs["variants"].get("ours")
    if o is None:
        return
    print(
        f"  ours: status received {fmt_int(o.get('status_received'))}, written "
        f"{fmt_int(o.get('status_written'))}, gaps {o.get('status_gaps')} (missed "
        f"{fmt_int(o.get('status_missed'))}), backlog pauses {o.get('backlog_pauses')}, "
        f"peak RSS {o.get('peak_rss_mb')} MB"
    )
    by_helper = ", ".join(f"{k} {v:.2f} s" for k, v in (o.get("helpers_cpu") or {}).items())
    print(f"  ours: helpers' CPU while recording {o.get('helpers_cpu_s')} s ({by_helper})")


# ---------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a short smoke run")
    p.add_argument("--sizes", default="300,2048", help="payload sizes in bytes (default 300,2048)")
    p.add_argument(
        "--messages",
        type=int,
        help="messages per full-speed run (default 300k up to 1 KB, 150k above; --quick: 1/6)",
    )
    p.add_argument(
        "--variants", default="bare,naive,ours", help="full-speed variants (default all three)"
    )
    p.add_argument(
        "--baseline-ref",
        help="git ref whose recorder also runs at full speed, alternating with ours (ours / REF)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        help="full-speed runs per variant, median reported (default 3; quick 1)",
    )
    p.add_argument("--rate", type=float, default=50_000, help="fixed rate for scenario 3")
    p.add_argument("--sustain-seconds", type=float, help="scenario 3 length (default 30; quick 5)")
    p.add_argument("--kill-rate", type=float, default=5_000, help="scenario 4 rate")
    p.add_argument("--hwm", type=int, help="broker queue limit (default: the broker's)")
    p.add_argument(
        "--only", default="full,sustain,kill", help="scenarios to run: full,sustain,kill"
    )
    p.add_argument(
        "--recorder-arg",
        action="append",
        default=[],
        help="extra argument for `persist record` (repeat; e.g. --recorder-arg=--fsync=always)",
    )
    p.add_argument(
        "--quiet-cpu",
        type=float,
        default=25.0,
        help="before each run, wait until the machine's CPU use is below this percent",
    )
    p.add_argument("--quiet-wait", type=float, default=15.0, help="... for at most this long (s)")
    p.add_argument("--keep", action="store_true", help="keep the work folder (journals, logs)")
    p.add_argument("--out", type=Path, default=OUT_DIR / "record-latest.json")
    args = p.parse_args(argv)
    args.recorder_arg = [a for arg in args.recorder_arg for a in arg.split("=", 1)]
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if args.sustain_seconds is None:
        args.sustain_seconds = 5.0 if args.quick else 30.0
    try:
        args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        p.error("--sizes takes comma-separated byte counts, e.g. 300,2048")
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not args.variants or not set(args.variants) <= {"bare", "naive", "ours"}:
        p.error("--variants takes bare, naive and/or ours")
    if args.baseline_ref:
        args.variants.append("ref")
    args.only = {s.strip() for s in args.only.split(",") if s.strip()}
    if not args.only <= {"full", "sustain", "kill"}:
        p.error("--only takes full, sustain and/or kill")
    return args


def default_messages(size: int, quick: bool) -> int:
    n = 300_000 if size <= 1024 else 150_000
    return n // 6 if quick else n


def metadata(args: argparse.Namespace) -> dict[str, Any]:
    commit = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            or "unknown"
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "recorder"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        if dirty:
            commit += "+dirty"
    return {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "broker_hwm": args.hwm,
        "commit": commit,
        "quick": args.quick,
        "recorder_args": args.recorder_arg,
        "baseline_ref": args.baseline_ref,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # so that `finally` ends every child process

    signal.signal(signal.SIGTERM, on_term)
    meta = metadata(args)
    work = Path(tempfile.mkdtemp(prefix="persist-bench-"))
    procs = Procs(work)
    bench = Bench(args, work, procs)
    if args.baseline_ref:
        from bench.baseline import extract

        bench.ref_tree = extract(args.baseline_ref, work / "baseline", "recorder")
    results: dict[str, Any] = {"full_speed": []}
    started = time.monotonic()
    ok = False
    try:
        if "full" in args.only:
            for size in args.sizes:
                count = args.messages or default_messages(size, args.quick)
                bench.log(f"scenario: full speed, {count:,} x {fmt_size(size)}")
                fs = bench.full_speed(size, count)
                results["full_speed"].append(fs)
                print_full_speed(fs)
        if "sustain" in args.only:
            bench.log("scenario: fixed rate")
            sus = bench.sustained(args.rate, args.sustain_seconds, 300)
            results["sustained"] = sus
            print(
                f"\nFixed rate {args.rate:,.0f} msgs/s x {args.sustain_seconds:g} s of 300 B "
                f"(default durability): sent {sus['sent']:,}, recorded {sus['kept']:,}, "
                f"lost {sus['lost']:,}; publisher {fmt_int(sus['pub_msgs_per_s'])} msgs/s; "
                f"recorder RSS peak {sus.get('peak_rss_mb')} MB, median "
                f"{sus.get('median_rss_mb')} MB, last {sus.get('last_rss_mb')} MB; "
                f"last write {sus.get('catchup_s')} s after the last send; "
                f"journal {sus.get('journal_mb')} MB; {sus.get('journal_gaps')} gap records "
                f"saying {fmt_int(sus.get('journal_missed'))} missed, "
                f"backlog pauses {sus.get('backlog_pauses')}"
            )
        if "kill" in args.only:
            bench.log("scenario: SIGKILL and restart")
            seconds = 4.0 if args.quick else 8.0
            kill = bench.sigkill(args.kill_rate, seconds, seconds / 3, 300)
            results["sigkill"] = kill
            print(
                f"\nSIGKILL at {args.kill_rate:,.0f} msgs/s: lost {kill['lost']:,} "
                f"({kill['lost_in_killed_process']:,} with the killed process) "
                f"(missing seqs {kill['missing_ranges']}), first new message "
                f"{kill['spawn_to_first_message_s']} s after spawning the new recorder "
                f"(connected {kill['spawn_to_connected_event_s']} s, status.json "
                f"{kill['spawn_to_status_recording_s']} s); gap records: "
                f"{json.dumps(kill['gap_records'])}"
            )
        ok = True
    except BenchError as exc:
        print(f"\nrecord.py: FAILED: {exc}", file=sys.stderr)
        print(f"(logs of every process are in {work})", file=sys.stderr)
        args.keep = True
    except KeyboardInterrupt:
        print("\nrecord.py: interrupted", file=sys.stderr)
        args.keep = True
    finally:
        procs.kill_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if not ok:
        return 1
    summary, targets = build_summary(results, meta)
    print("\n" + "-" * 30 + " summary (markdown) " + "-" * 30)
    print(summary)
    meta["wall_seconds"] = round(time.monotonic() - started, 1)
    out = {"meta": meta, "results": results, "targets": targets, "summary_markdown": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    print(f"\nwritten to {args.out} ({meta['wall_seconds']} s)")
    if args.keep:
        print(f"work folder kept: {work}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--child":
        CHILDREN[sys.argv[2]](json.loads(sys.argv[3]))
        sys.exit(0)
    sys.exit(main())
