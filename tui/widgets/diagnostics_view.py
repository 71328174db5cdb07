"""Recorder health as text: state, process, traffic, disk, and how to start it."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from recorder.store.status import StatusSnapshot

from ..diagnostics import Diagnostics
from ..text import Clock, age, count, one_line, size

STATE_STYLES = {
    "healthy": "bold green",
    "degraded": "bold yellow",
    "stale": "bold yellow",
    "stopped": "bold red",
}
STATE_ICONS = {"healthy": "●", "degraded": "◑", "stale": "◐", "stopped": "○"}


def _ts_age(clock: Clock, ts: Any) -> str:
    if not isinstance(ts, int | float):
        return "—"
    return f"{clock.stamp(ts)} ({age(clock.now() - ts)} ago)"


def val(v: Any, fmt: Any = str) -> str:
    """`fmt(v)`, or a dash for a figure nobody knows."""
    return "—" if v is None else fmt(v)


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

    if st is not None:
        parts.append(_status_table(st, diag, clock))

    cp = st.last_checkpoint if st is not None else None
    cp_text = Text("Last checkpoint: ", style="bold")
    if cp is not None:
        cp_text.append(f"{one_line(cp.label or cp.id, 80)} · {_ts_age(clock, cp.created)}")
    else:
        cp_text.append("none yet", "dim")
    parts.append(cp_text)
    disk = Text("Disk: ", style="bold")
    disk.append(
        f"log folder uses {val(diag.disk_used, size)}, "
        f"{val(diag.disk_free, size)} free of {val(diag.disk_total, size)}"
    )
    disk.append(f"\n      {one_line(str(diag.log_dir), 300)}", "dim")
    parts.append(disk)
    err = st.last_error if st is not None else None
    err_text = Text("Last error: ", style="bold")
    if err is not None:
        err_text.append(f"{_ts_age(clock, err.time)}  ", "dim")
        err_text.append(one_line(err.message, 300), "red")
    else:
        err_text.append("none", "green")
    parts.append(err_text)
    return Group(*parts)


def _connection(st: StatusSnapshot, diag: Diagnostics) -> str:
    """The broker connection, as of now: a stopped recorder has none, whatever its
    last heartbeat said."""
    if not diag.health.running:
        return "none (recorder not running)"
    return str(st.connection)


def _status_table(st: StatusSnapshot, diag: Diagnostics, clock: Clock) -> Table:
    """Process and traffic figures side by side."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    counts = st.counts
    rates = st.rates
    proc = diag.process

    rows = [
        ("PID", val(st.pid), "Broker", one_line(st.broker or "—", 60)),
        ("Uptime", val(proc and proc.uptime, age), "Connection", _connection(st, diag)),
        (
            "CPU",
            val(proc and proc.cpu_percent, lambda v: f"{v:.1f} %"),
            "Rate",
            f"{rates.received_per_s:,.1f} msg/s received, {rates.written_per_s:,.1f} written",
        ),
        ("RSS", val(proc and proc.rss, size), "Received", count(counts.received)),
        ("Open files", val(proc and proc.open_files), "Written", count(counts.written)),
        ("Threads", val(proc and proc.threads), "Durable", count(counts.durable)),
        (
            "Fsync",
            (st.fsync or "—") + (f" {st.fsync_interval_ms} ms" if st.fsync_interval_ms else ""),
            "Backlog",
            size(st.backlog_bytes),
        ),
        (
            "Last fsync",
            _ts_age(clock, st.last_fsync),
            "Gaps",
            f"{count(counts.gaps)} ({count(counts.missed)} missed)",
        ),
        ("Heartbeat", _ts_age(clock, st.updated), "Refused", count(counts.refused)),
    ]
    if counts.unsequenced or counts.implausible:
        undetectable = f"{count(counts.unsequenced)} without sequence numbers: loss not detectable"
        if counts.implausible:
            undetectable += f"; {count(counts.implausible)} envelopes not believed"
        rows.append(("", "", "Unchecked", undetectable))
    for row in rows:
        table.add_row(*row)
    return table
