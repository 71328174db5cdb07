"""Does persist-tui keep up with a recorder appending 10,000 msgs/s, and stay responsive?

    .venv/bin/python bench/tui_follow.py [--rate 10000] [--seconds 20] [--idle-seconds 6]

Everything is real: a fresh `persist broker` on free loopback ports, a `persist record`
into a temporary folder, a publisher in its own process (recorder.bus.publisher.Publisher,
~300-byte JSON payloads {"text", "sender"} with the envelope, paced in 5 ms batches),
and the app from `tui.app.create_app(log_dir)` run headless (`run_test`, 120x36) in
this process, in the Recent view, following live with its normal 250 ms poll.

Every ~100 ms, on the app's own event loop, the bench samples:
- lag in records: journal lines (a separate `recorder.store.Store`, refreshed) minus
  the rows the Recent list knows (`RecordList.row_count`);
- lag in seconds: age (now - the recorder's receive `ts`) of the oldest journal
  record the list does not have yet (0 when it has them all);
- whether the cursor is on the last row while following;
- event-loop delay: how late the 100 ms sleep woke up.
Every ~300 ms it presses `p` (pause / follow) the way a terminal does (the driver
posts a Key event from outside the loop) and times (a) until the screen's
`following` flag flipped, the key handled, and (b) until the next screen update was
rendered by the compositor after that (headless: everything but the final write).
`pilot.press` is not used for timing: it waits for the whole process to go idle
(>= 20 ms, up to 1 s under load). Changes of `following` that no key caused are
counted and logged (a late Highlighted message flips it).

The journal count is exact even across segment rotation (every known segment is
brought up to date before `Store.refresh`); the view's is whatever the app has.
The fixes this bench motivated (lines lost at segment rotation, index caches
rewritten on every poll, following switched off by late cursor messages) are in
the code now.

The same measurements run first with the stream off (idle baseline: recorder
running, nothing published), so the ratio shows the cost of following. CPU% and
RSS are for this process (the app plus the sampler, whose own time is reported).
Writes bench/out/tui-follow-latest.json (gitignored) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import psutil  # noqa: E402

from recorder.store.layout import Layout, list_segments  # noqa: E402
from recorder.store.segfile import open_segment  # noqa: E402

SAMPLE_S = 0.1
KEY_EVERY = 3  # samples between key probes (~300 ms)

PUBLISHER = r"""
import sys, time, json, orjson
from recorder.bus.publisher import Publisher
endpoint = sys.argv[1]
rate, seconds, batch_ms = (float(a) for a in sys.argv[2:5])
senders = ("planner", "coder", "reviewer", "tester")
pub = Publisher(endpoint, agent="bench")
ok = pub.wait_ready(10.0)
# ~300 bytes on the wire per message, envelope included
probe = {"_persist": {"pub": pub.id, "seq": 1234567, "mid": f"{pub.id}:1234567", "agent": "bench"},
         "text": "", "sender": "reviewer"}
room = max(20, 300 - len(orjson.dumps(probe)))
words = "deploy migration schema rollback cache latency parser token budget retry ".split()
filler = " ".join(words[i % len(words)] for i in range(80))
total = int(rate * seconds)
print(json.dumps({"ready": ok, "payload_bytes": len(orjson.dumps(probe)) + room}), flush=True)
t0 = time.perf_counter()
sent = 0
late_max = 0.0
while sent < total:
    now = time.perf_counter() - t0
    due = min(total, int(now * rate) + 1)
    late_max = max(late_max, (due - sent) / rate)
    while sent < due:
        text = f"{sent:08d} " + filler[sent % 64:]
        pub.send("agents.bench", {"text": text[:room - 9], "sender": senders[sent % 4]})
        sent += 1
    time.sleep(batch_ms / 1000)
elapsed = time.perf_counter() - t0
pub.close()
print(json.dumps({"sent": sent, "seconds": elapsed, "rate": sent / elapsed,
                  "max_behind_s": late_max, "last_seq": pub.seq}), flush=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def read_status(log_dir: Path) -> dict[str, Any]:
    try:
        return orjson.loads((log_dir / "status.json").read_bytes())
    except (OSError, ValueError):
        return {}


def wait_for(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise SystemExit(f"timed out after {timeout}s waiting for {what}")


def persist_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "persist"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "recorder.cli"]


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": pct(values, 50),
        "p99": pct(values, 99),
        "max": max(values, default=0.0),
        "n": len(values),
    }


class Phase:
    """Samples of one phase (idle or stream)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lag_records: list[float] = []
        self.lag_seconds: list[float] = []
        self.loop_delay: list[float] = []
        self.key_handled: list[float] = []
        self.key_painted: list[float] = []
        self.key_not_handled = 0  # `following` did not flip within 2 s
        self.key_not_painted = 0  # no screen update within 2 s after it flipped
        self.flips: list[tuple[float, bool, bool]] = []  # (time, following, during our key)
        self.presses = 0
        self.rss: list[float] = []
        self.not_at_end = 0
        self.following_samples = 0
        self.sampler_s = 0.0
        self.wall = 0.0
        self.cpu_s = 0.0
        self.sys_cpu_pct = 0.0
        self.polls: list[float] = []
        self.journal_start = 0
        self.journal_end = 0
        self.t0 = time.perf_counter()

    def result(self) -> dict[str, Any]:
        return {
            "wall_s": self.wall,
            "records_appended": self.journal_end - self.journal_start,
            "lag_records": summary(self.lag_records),
            "lag_seconds": summary(self.lag_seconds),
            "key_handled_ms": summary([x * 1000 for x in self.key_handled]),
            "key_painted_ms": summary([x * 1000 for x in self.key_painted]),
            "key_not_handled": self.key_not_handled,
            "key_not_painted": self.key_not_painted,
            "follow_changes": len(self.flips),
            "follow_changes_not_from_a_key": sum(1 for f in self.flips if not f[2]),
            "key_presses": self.presses,
            "follow_change_log": [
                {"t": round(t - self.t0, 3), "following": f, "from_key": k}
                for t, f, k in self.flips
            ],
            "loop_delay_ms": summary([x * 1000 for x in self.loop_delay]),
            "poll_ms": summary([x * 1000 for x in self.polls]),
            "polls": len(self.polls),
            "cursor_not_on_last_row_while_following": self.not_at_end,
            "following_samples": self.following_samples,
            "cpu_pct": 100 * self.cpu_s / self.wall if self.wall else 0.0,
            "sampler_cpu_pct_upper_bound": 100 * self.sampler_s / self.wall if self.wall else 0.0,
            "rss_mb_max": max(self.rss, default=0.0),
            "rss_mb_end": self.rss[-1] if self.rss else 0.0,
            "system_cpu_pct": self.sys_cpu_pct,
        }


async def run_app(
    log_dir: Path, args: argparse.Namespace, pub_endpoint: str, children: list[Any]
) -> dict[str, Any]:
    from textual import events

    from recorder.store.reader import Store
    from tui.app import create_app
    from tui.screens.main import MainScreen
    from tui.widgets.record_list import RecordList

    me = psutil.Process()
    app = create_app(log_dir)
    poll_times: list[float] = []
    real_poll = app.poll

    def timed_poll() -> None:  # set before mount: the app's interval timer calls this
        t = time.perf_counter()
        real_poll()
        poll_times.append(time.perf_counter() - t)

    app.poll = timed_poll  # type: ignore[method-assign]
    sampler = Store(log_dir)
    out: dict[str, Any] = {}
    async with app.run_test(size=(120, 36)) as pilot:
        deadline = time.monotonic() + 30
        while app.ready_at is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        main = next(s for s in app.screen_stack if isinstance(s, MainScreen))
        recent = main.recent_pane
        await pilot.press("3")
        await pilot.pause()
        # Every record shown (heartbeats and the recorder's events too), so the view's
        # rows can be compared with the journal's lines.
        await pilot.press("h")
        await pilot.pause()
        assert main.active_tab == "recent" and recent.following and recent.show_bookkeeping
        messages = main.query_one("#messages", RecordList)
        driver = app._driver
        assert driver is not None
        # A screen update: the compositor has rendered the changed lines and hands them to
        # the terminal (headless: the same work, the final write is skipped).
        paints: list[float] = []
        real_display = app._display

        def display(screen: Any, renderable: Any) -> None:
            if renderable is not None:
                paints.append(time.perf_counter())
            real_display(screen, renderable)

        app._display = display  # type: ignore[method-assign]

        in_key = [False]
        current: list[Phase] = []
        real_status = recent.update_status
        last_state = [recent.following]

        def status_hook(*a: Any, **k: Any) -> None:
            # Every change of `following` goes through here (pause, resume, cursor moves).
            if recent.following != last_state[0] and current:
                current[0].flips.append((time.perf_counter(), recent.following, in_key[0]))
            last_state[0] = recent.following
            real_status(*a, **k)

        recent.update_status = status_hook  # type: ignore[method-assign]

        async def press_p(phase: Phase) -> None:
            before = recent.following
            n_paint = len(paints)
            phase.presses += 1
            in_key[0] = True
            t0 = time.perf_counter()
            driver.send_message(events.Key("p", "p"))  # as the terminal's input thread does
            limit = t0 + 2.0
            try:
                while recent.following == before and time.perf_counter() < limit:
                    await asyncio.sleep(0.0005)
            finally:
                in_key[0] = False
            if recent.following == before:
                phase.key_not_handled += 1
                return
            t1 = time.perf_counter()
            phase.key_handled.append(t1 - t0)
            while time.perf_counter() < limit:
                later = [p for p in paints[n_paint:] if p >= t1]
                if later:
                    phase.key_painted.append(later[0] - t0)
                    return
                await asyncio.sleep(0.0005)
            phase.key_not_painted += 1

        def repeated_goodbyes() -> int:
            """A publisher's second, identical goodbye: in the journal, never listed."""
            f = recent.record_filter
            return len(f.repeated) if f is not None else 0

        def journal_len() -> int:
            # Bring every known segment up to date first: `Store.refresh` alone misses
            # lines appended to a segment after its last refresh once a newer one exists.
            for seg in sampler.segments:
                seg.update()
            sampler.refresh()
            return len(sampler)

        async def sample(phase: Phase, until: Any) -> None:
            """Sample until `until()` says stop; then leave the app following."""
            current[:] = [phase]
            phase.t0 = time.perf_counter()
            phase.journal_start = journal_len()
            wall0, cpu0 = time.perf_counter(), sum(me.cpu_times()[:2])
            psutil.cpu_percent(None)
            polls0 = len(poll_times)
            tick = 0
            next_at = time.perf_counter()
            while not until():
                next_at += SAMPLE_S
                delay = next_at - time.perf_counter()
                await asyncio.sleep(max(0.0, delay))
                woke = time.perf_counter()
                phase.loop_delay.append(max(0.0, woke - next_at))
                if woke - next_at > SAMPLE_S:
                    next_at = woke  # do not burst to catch up
                n = journal_len()
                rows = messages.row_count
                lag = max(0, n - rows)
                age = 0.0
                if lag:
                    ts = sampler.record(rows).ts
                    age = max(0.0, time.time() - float(ts)) if ts is not None else 0.0
                phase.lag_records.append(lag)
                phase.lag_seconds.append(age)
                if recent.following:
                    phase.following_samples += 1
                    if messages.cursor != messages.row_count - 1:
                        phase.not_at_end += 1
                phase.rss.append(me.memory_info().rss / 2**20)
                phase.sampler_s += time.perf_counter() - woke
                tick += 1
                if tick % KEY_EVERY == 0:
                    await press_p(phase)
                    next_at = time.perf_counter()  # the key's wait is not loop delay
            if not recent.following:
                await press_p(phase)
            phase.wall = time.perf_counter() - wall0
            phase.cpu_s = sum(me.cpu_times()[:2]) - cpu0
            phase.sys_cpu_pct = psutil.cpu_percent(None)
            phase.polls = poll_times[polls0:]
            phase.journal_end = journal_len()

        # -- idle baseline: recorder running, nothing published ----------------
        idle = Phase("idle")
        t_end = time.perf_counter() + args.idle_seconds
        await sample(idle, lambda: time.perf_counter() >= t_end)

        # -- the stream ---------------------------------------------------------
        pub = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            PUBLISHER,
            pub_endpoint,
            str(args.rate),
            str(args.seconds),
            str(args.batch_ms),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.PIPE,
        )
        children.append(pub)
        assert pub.stdout is not None
        ready = json.loads(await asyncio.wait_for(pub.stdout.readline(), 30))
        if not ready.get("ready"):
            raise SystemExit("publisher: no subscriber reached it through the broker")
        rec_proc = psutil.Process(read_status(log_dir)["pid"])
        rec_cpu0 = sum(rec_proc.cpu_times()[:2])
        stream = Phase("stream")
        waiter = asyncio.ensure_future(pub.wait())
        await sample(stream, waiter.done)
        rec_cpu = sum(rec_proc.cpu_times()[:2]) - rec_cpu0
        line = (await pub.stdout.read()).decode().strip().splitlines()
        published = json.loads(line[-1]) if line else {}

        # -- after the stream: how long until the view has everything ------------
        t_stop = time.perf_counter()
        caught_up = None
        while time.perf_counter() - t_stop < 15:
            await asyncio.sleep(0.02)
            if messages.row_count >= journal_len() - repeated_goodbyes() and (
                read_status(log_dir).get("counts", {}).get("received", 0)
                >= published.get("sent", 0)
            ):
                caught_up = time.perf_counter() - t_stop
                break
        await asyncio.sleep(1.5)  # the closing heartbeats, the recorder's flush
        final_rows = messages.row_count
        final_lines = 0
        for path in list_segments(Layout(log_dir)):  # plain or compressed by the recorder
            with open_segment(path) as seg:
                final_lines += seg.read(0, seg.size).count(b"\n")
        at_end = messages.cursor == messages.row_count - 1 and recent.following
        out = {
            "idle": idle.result(),
            "stream": stream.result(),
            "published": published,
            "payload_bytes": ready.get("payload_bytes"),
            "recorder_cpu_pct_during_stream": 100 * rec_cpu / stream.wall if stream.wall else 0,
            "caught_up_after_stream_s": caught_up,
            "final": {
                "view_rows": final_rows,
                "journal_lines": final_lines,
                "repeated_goodbyes": repeated_goodbyes(),
                "cursor_on_last_row_following": at_end,
            },
            "recorder_status": read_status(log_dir).get("counts", {}),
        }
        app._display = real_display  # type: ignore[method-assign]
    sampler.close()
    return out


def table(r: dict[str, Any], rate: float) -> str:
    i, s = r["idle"], r["stream"]

    def trio(d: dict[str, float], fmt: str) -> str:
        return f"{d['p50']:{fmt}} / {d['p99']:{fmt}} / {d['max']:{fmt}}"

    def ratio(a: float, b: float) -> str:
        return f"{b / a:.1f}x" if a > 0 else "-"

    rows = [
        (f"| measure | idle (stream off) | stream {rate:,.0f} msgs/s | stream / idle |"),
        "|---|---:|---:|---:|",
        f"| records appended to the journal | {i['records_appended']:,} | "
        f"{s['records_appended']:,} | |",
        f"| lag, records p50 / p99 / max | {trio(i['lag_records'], ',.0f')} | "
        f"{trio(s['lag_records'], ',.0f')} | |",
        f"| lag, seconds p50 / p99 / max | {trio(i['lag_seconds'], '.2f')} | "
        f"{trio(s['lag_seconds'], '.2f')} | |",
        f"| key `p` handled, ms p50 / p99 | {i['key_handled_ms']['p50']:.1f} / "
        f"{i['key_handled_ms']['p99']:.1f} | {s['key_handled_ms']['p50']:.1f} / "
        f"{s['key_handled_ms']['p99']:.1f} | "
        f"{ratio(i['key_handled_ms']['p50'], s['key_handled_ms']['p50'])} (p50) |",
        f"| key `p` to next screen update, ms p50 / p99 | {i['key_painted_ms']['p50']:.1f} / "
        f"{i['key_painted_ms']['p99']:.1f} | {s['key_painted_ms']['p50']:.1f} / "
        f"{s['key_painted_ms']['p99']:.1f} | "
        f"{ratio(i['key_painted_ms']['p50'], s['key_painted_ms']['p50'])} (p50) |",
        f"| key presses: not handled in 2 s / no update in 2 s | {i['key_presses']}: "
        f"{i['key_not_handled']} / {i['key_not_painted']} | {s['key_presses']}: "
        f"{s['key_not_handled']} / {s['key_not_painted']} | |",
        f"| follow state changes not caused by a key | {i['follow_changes_not_from_a_key']} | "
        f"{s['follow_changes_not_from_a_key']} | |",
        f"| event-loop delay, ms p50 / p99 / max | {trio(i['loop_delay_ms'], '.1f')} | "
        f"{trio(s['loop_delay_ms'], '.1f')} | |",
        f"| app `poll()` (refresh + view update), ms p50 / p99 / max | "
        f"{trio(i['poll_ms'], '.2f')} | {trio(s['poll_ms'], '.2f')} | |",
        f"| cursor not on last row while following (samples) | "
        f"{i['cursor_not_on_last_row_while_following']}/{i['following_samples']} | "
        f"{s['cursor_not_on_last_row_while_following']}/{s['following_samples']} | |",
        f"| app process CPU % (of one core) | {i['cpu_pct']:.1f} | {s['cpu_pct']:.1f} | "
        f"{ratio(i['cpu_pct'], s['cpu_pct'])} |",
        f"| of which the bench's sampler, at most | {i['sampler_cpu_pct_upper_bound']:.1f} | "
        f"{s['sampler_cpu_pct_upper_bound']:.1f} | |",
        f"| app RSS MB, max / end | {i['rss_mb_max']:.0f} / {i['rss_mb_end']:.0f} | "
        f"{s['rss_mb_max']:.0f} / {s['rss_mb_end']:.0f} | |",
        f"| whole machine CPU % (all cores, other load included) | {i['system_cpu_pct']:.0f} | "
        f"{s['system_cpu_pct']:.0f} | |",
    ]
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=10_000, help="messages per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the stream")
    parser.add_argument("--idle-seconds", type=float, default=6.0, help="idle baseline length")
    parser.add_argument("--batch-ms", type=float, default=5.0, help="publisher pacing step")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "tui-follow-latest.json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary log folder")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="persist-follow-"))
    log_dir = tmp / "logs"
    front, back = free_port(), free_port()
    children: list[Any] = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t_start = time.time()
    load_before = os.getloadavg()
    try:
        broker = subprocess.Popen(
            [
                *persist_cmd(),
                "broker",
                "--frontend",
                f"tcp://127.0.0.1:{front}",
                "--backend",
                f"tcp://127.0.0.1:{back}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=open(tmp / "broker.out", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
        children.append(broker)
        wait_for(lambda: listening(front) and listening(back), 15, "the broker")
        recorder = subprocess.Popen(
            [
                *persist_cmd(),
                "record",
                "--broker",
                f"tcp://127.0.0.1:{back}",
                "--log-dir",
                str(log_dir),
                "--embedded",
                "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=open(tmp / "recorder.out", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
        children.append(recorder)
        wait_for(
            lambda: (
                read_status(log_dir).get("pid") == recorder.pid
                and read_status(log_dir).get("connection") == "connected"
            ),
            20,
            "the recorder to connect",
        )
        result = asyncio.run(run_app(log_dir, args, f"tcp://127.0.0.1:{front}", children))
    finally:
        for child in reversed(children):
            try:
                if isinstance(child, subprocess.Popen):
                    if child.poll() is None:
                        child.send_signal(signal.SIGTERM)
                        try:
                            child.wait(5)
                        except subprocess.TimeoutExpired:
                            child.kill()
                            child.wait(5)
                elif child.returncode is None:  # asyncio process (loop is gone): by pid
                    os.kill(child.pid, signal.SIGKILL)
            except (ProcessLookupError, OSError):
                pass
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    result.update(
        {
            "when": t_start,
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "machine": {
                "cpus": os.cpu_count(),
                "loadavg_before": load_before,
                "loadavg_after": os.getloadavg(),
            },
        }
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    pub = result["published"]
    print(
        f"published {pub.get('sent', 0):,} messages of ~{result['payload_bytes']} B in "
        f"{pub.get('seconds', 0):.1f} s ({pub.get('rate', 0):,.0f}/s); recorder received "
        f"{result['recorder_status'].get('received', 0):,}, gaps "
        f"{result['recorder_status'].get('gaps', 0)}; recorder CPU "
        f"{result['recorder_cpu_pct_during_stream']:.0f} %"
    )
    print()
    print(table(result, args.rate))
    print()
    caught = result["caught_up_after_stream_s"]
    fin = result["final"]
    print(
        f"view had every record {caught:.2f} s after the publisher finished"
        if caught is not None
        else "view did NOT catch up within 15 s after the stream"
    )
    print(
        f"final: {fin['view_rows']:,} rows in the view, {fin['journal_lines']:,} journal "
        f"lines on disk, {fin['repeated_goodbyes']:,} of them repeated goodbyes (never listed): "
        f"{fin['journal_lines'] - fin['repeated_goodbyes'] - fin['view_rows']:,} missing, "
        f"cursor on the last row and following: {fin['cursor_on_last_row_following']}"
    )
    print(
        f"load average before / after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} cores; JSON: {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
