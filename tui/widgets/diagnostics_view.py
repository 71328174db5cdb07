"""Recorder health as text: state, process, traffic, disk, and how to start it."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..diagnostics import Diagnostics
from ..text import Clock, age, count, one_line, size

STATE_STYLES = {"healthy": "bold green", "stale": "bold yellow", "stopped": "bold red"}
STATE_ICONS = {"healthy": "●", "stale": "◐", "stopped": "○"}


def _ts_age(clock: Clock, ts: Any) -> str:
    if not isinstance(ts, int | float):
        return "—"
    return f"{clock.stamp(ts)} ({age(clock.now() - ts)} ago)"


def render_diagnostics(diag: Diagnostics | None, clock: Clock) -> RenderableType:
    if diag is None:
        return Text("Reading the recorder's status…", style="dim")
    h = diag.health
    st = diag.status
    head = Text()
    head.append(f"{STATE_ICONS.get(h.state, '?')} {h.state.upper()}", STATE_STYLES.get(h.state, ""))
    head.append(f"  {one_line(h.reason, 300)}")
    parts: list[RenderableType] = [head]
    for w in h.warnings:
        parts.append(Text(f"⚠ {one_line(w, 300)}", style="yellow"))
    if diag.start_command:
        cmd = Text("Start the recorder with:\n", style="bold")
        cmd.append(f"  {diag.start_command}", "bold cyan")
        parts.append(cmd)

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    counts = st.get("counts") or {}
    rates = st.get("rates") or {}
    proc = diag.process

    def val(v: Any, fmt: Any = str) -> str:
        return "—" if v is None else fmt(v)

    rows = [
        ("PID", val(st.get("pid")), "Broker", one_line(str(st.get("broker") or "—"), 60)),
        ("Uptime", val(proc and proc.uptime, age), "Connection", str(st.get("connection") or "—")),
        ("CPU", val(proc and proc.cpu_percent, lambda v: f"{v:.1f} %"),
         "Rate", f"{rates.get('received_per_s', 0) or 0:,.1f} msg/s received, "
                 f"{rates.get('written_per_s', 0) or 0:,.1f} written"),
        ("RSS", val(proc and proc.rss, size), "Received", val(counts.get("received"), count)),
        ("Open files", val(proc and proc.open_files), "Written", val(counts.get("written"), count)),
        ("Threads", val(proc and proc.threads), "Durable", val(counts.get("durable"), count)),
        ("Fsync", f"{st.get('fsync', '—')}" + (f" {st['fsync_interval_ms']} ms"
                                                if st.get("fsync_interval_ms") else ""),
         "Backlog", val(st.get("backlog_bytes"), size)),
        ("Last fsync", _ts_age(clock, st.get("last_fsync")),
         "Gaps", f"{val(counts.get('gaps'), count)} ({val(counts.get('missed'), count)} missed)"),
        ("Heartbeat", _ts_age(clock, st.get("updated")),
         "Refused", val(counts.get("refused"), count)),
    ]
    for row in rows:
        table.add_row(*row)
    if st:
        parts.append(table)

    cp = st.get("last_checkpoint")
    cp_text = Text("Last checkpoint: ", style="bold")
    if isinstance(cp, dict):
        cp_text.append(f"{one_line(str(cp.get('label') or cp.get('id')), 80)} · "
                       f"{_ts_age(clock, cp.get('created'))}")
    else:
        cp_text.append("none yet", "dim")
    parts.append(cp_text)
    disk = Text("Disk: ", style="bold")
    disk.append(f"log folder uses {val(diag.disk_used, size)}, "
                f"{val(diag.disk_free, size)} free of {val(diag.disk_total, size)}")
    disk.append(f"\n      {one_line(str(diag.log_dir), 300)}", "dim")
    parts.append(disk)
    err = st.get("last_error")
    err_text = Text("Last error: ", style="bold")
    if isinstance(err, dict):
        err_text.append(f"{_ts_age(clock, err.get('time'))}  ", "dim")
        err_text.append(one_line(str(err.get("message")), 300), "red")
    else:
        err_text.append("none", "green")
    parts.append(err_text)
    return Group(*parts)
