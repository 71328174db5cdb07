"""Recorder health as text: state, process, traffic, disk, and how to start it."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from recorder.search.stats import Stats
from recorder.store.status import Connection, Health, LinkMode, StatusSnapshot

from ..diagnostics import UNKNOWN, Diagnostics, HealthUnknown
from ..text import Clock, age, count, one_line, plural, size

STATE_STYLES = {
    "healthy": "bold green",
    "degraded": "bold yellow",
    "stale": "bold yellow",
    "stopped": "bold red",
    UNKNOWN: "bold yellow",
}
STATE_ICONS = {"healthy": "●", "degraded": "◑", "stale": "◐", "stopped": "○", UNKNOWN: "?"}


def _ts_age(clock: Clock, ts: Any) -> str:
    if not isinstance(ts, int | float):
        return "—"
    return f"{clock.stamp(ts)} ({clock.ago(ts)})"


def val(v: Any, fmt: Any = str) -> str:
    """`fmt(v)`, or a dash for a figure nobody knows."""
    return "—" if v is None else fmt(v)


def render_diagnostics(
    diag: Diagnostics | None, clock: Clock, *, narrow: bool = False
) -> RenderableType:
    """The diagnostics; `narrow` (under 100 columns) puts the figures in one column."""
    if diag is None:
        return Text("Reading the recorder's status…", style="dim")
    h = diag.health
    head = Text()
    head.append(f"{STATE_ICONS.get(h.state, '?')} {h.state.upper()}", STATE_STYLES.get(h.state, ""))
    head.append(f"  {one_line(h.reason, 300)}")
    if isinstance(h, HealthUnknown):  # nothing read from the folder: no figure to show
        head.append(f"\n{one_line(str(diag.log_dir), 300)}", "dim")
        head.append("\nThis view updates by itself once the folder can be read.")
        return head
    st = diag.status
    parts: list[RenderableType] = [head]
    for w in h.warnings:
        parts.append(Text(f"⚠ {one_line(w, 300)}", style="yellow"))
    if diag.start_command:
        cmd = Text("Start the recorder with:\n", style="bold")
        cmd.append(f"  {diag.start_command}", "bold cyan")
        parts.append(cmd)

    if st is not None:
        parts.append(_status_table(st, h, diag, clock, narrow=narrow))
        links = _endpoints(st, h, clock)
        if links is not None:
            parts.append(links)
        difference = _received_vs_written(st)
        if difference is not None:
            parts.append(difference)
        if st.counts.not_subscribed:
            c = st.counts
            late = Text("Not subscribed yet: ", style="bold")
            publishers = plural(c.not_subscribed_publishers, "publisher")
            late.append(
                f"{count(c.not_subscribed)} messages from {publishers} "
                "were sent before the recorder listened"
            )
            late.append("\n  not in the journal, and not a loss: no gap counts them", "dim")
            parts.append(late)

    cp = diag.last_checkpoint
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
    if diag.journal_damage is not None:
        journal = Text("Journal: ", style="bold")
        if diag.journal_damage:
            for k, sentence in enumerate(diag.journal_damage[:3]):
                journal.append(("\n  " if k else "") + one_line(sentence, 300), "red")
            more = len(diag.journal_damage) - 3
            if more > 0:
                journal.append(f"\n  and {more} more", "red")
            journal.append("\n  persist doctor names each with its fix", "dim")
        else:
            journal.append("no missing segment, torn tail or damaged frame", "green")
            journal.append(" (persist doctor also reads every line)", "dim")
        parts.append(journal)
    err = st.last_error if st is not None else None
    err_text = Text("Last error: ", style="bold")
    if err is not None:
        err_text.append(f"{_ts_age(clock, err.time)}  ", "dim")
        err_text.append(one_line(err.message, 300), "red")
    else:
        err_text.append("none", "green")
    parts.append(err_text)
    return Group(*parts)


NOT_RUNNING = "none (recorder not running)"
LAST_HEARD = " when last heard of"
"""After a stale recorder's connection: what its last heartbeat said (`persist status`
says the same), not the present."""


def _connection(connection: Connection, health: Health) -> str:
    """A connection as of now: a stopped recorder has none, whatever its last heartbeat
    said; a stale one's is the one it had when last heard of."""
    if not health.running:
        return NOT_RUNNING
    return str(connection) + ("" if health.current else LAST_HEARD)


def _rate(st: StatusSnapshot, health: Health, clock: Clock) -> str:
    """Messages a second now; a stale or stopped recorder has no rate now, only the
    last one it wrote (none after a clean stop), as old as its heartbeat."""
    r = st.rates
    figures = f"{r.received_per_s:,.1f}/s received, {r.written_per_s:,.1f}/s written"
    if health.current:
        return figures
    now = "none" if not health.running else "unknown (silent)"
    if r.received_per_s or r.written_per_s:
        now += f"; last {figures}, {clock.ago(st.updated)}"
    return now


def _endpoints(st: StatusSnapshot, health: Health, clock: Clock) -> Text | None:
    """Every broker followed and endpoint bound, when there is more than the one broker
    the table shows."""
    if len(st.endpoints) < 2 and all(e.mode is LinkMode.CONNECT for e in st.endpoints):
        return None
    text = Text("Endpoints:", style="bold")
    current = health.current
    for e in st.endpoints:
        connect = e.mode is LinkMode.CONNECT
        text.append(f"\n  {'broker' if connect else 'bound at':<9}", "dim")
        text.append(f"{one_line(e.endpoint, 80)}  ")
        if not health.running:
            text.append(NOT_RUNNING, "yellow")
            continue
        good = e.connection == Connection.CONNECTED or not connect
        text.append(str(e.connection), "green" if good and current else "yellow")
        if not connect:
            text.append(f", {plural(e.peers, 'publisher')} connected", "dim")
        if not current:
            text.append(LAST_HEARD, "yellow")
        elif e.since is not None:
            text.append(f" since {_ts_age(clock, e.since)}", "dim")
    return text


def _received_vs_written(st: StatusSnapshot) -> Text | None:
    """Why received and written differ: heartbeats and refused messages are journalled
    as records of their own kind, not as messages; the rest is dropped (a gap says so)
    or still on its way to the disk."""
    c = st.counts
    if c.received == c.written:
        return None
    rest = c.received - c.written - c.heartbeats - c.refused
    text = Text("Received but not written as messages: ", style="bold")
    bits = [plural(c.heartbeats, "heartbeat")] if c.heartbeats else []
    if c.refused:
        bits.append(f"{plural(c.refused, 'message')} refused (too big)")
    if rest > 0:
        bits.append(f"{count(rest)} dropped or not yet written (gaps name any loss)")
    text.append(f"{count(c.received - c.written)} = " + " + ".join(bits or ["0"]))
    text.append(
        "\n  heartbeats and refused messages are kept as records of their own kind, "
        "not counted as messages",
        "dim",
    )
    return text


def _status_table(
    st: StatusSnapshot, health: Health, diag: Diagnostics, clock: Clock, *, narrow: bool = False
) -> Table:
    """Process and traffic figures side by side (one pair per line when `narrow`)."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="ellipsis", no_wrap=narrow)
    if not narrow:
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
    counts = st.counts
    proc = diag.process

    rows: list[tuple[str, str, str, str | Text]] = [
        ("PID", val(st.pid), "Broker", Text(one_line(st.broker or "—", 60))),  # not markup
        (
            "Uptime",
            val(proc and proc.uptime, age),
            "Connection",
            _connection(st.connection, health),
        ),
        (
            "CPU",
            val(proc and proc.cpu_percent, lambda v: f"{v:.1f} %"),
            "Rate",
            _rate(st, health, clock),
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
    if counts.unconfirmed:
        silent = plural(counts.unconfirmed, "publisher")
        rows.append(("", "", "Unconfirmed", f"{silent} fell silent unconfirmed: tail unknown"))
    if narrow:
        left = [(a, b) for a, b, _, _ in rows if a]
        right = [(c, d) for _, _, c, d in rows if c]
        for pair in left + right:
            table.add_row(*pair)
        return table
    for row in rows:
        table.add_row(*row)
    return table


BREAKDOWN_TOP = 4  # values shown per group; the rest are summed


def render_breakdown(stats: Stats | None, clock: Clock, *, behind: bool = False) -> RenderableType:
    """The last day's messages per sender, topic, chain type and tier, most first
    (`behind`: the search index has not caught up with the journal yet)."""
    title = Text("Last 24 hours: ", style="bold")
    if stats is None:
        title.append("counting…", "dim")
        return title
    ahead = None
    if stats.after_now:  # not in the window, not silently left out either
        ahead = Text(
            f"  + {plural(stats.after_now, 'message')} after now, not counted: "
            f"{clock.stamp(stats.after_now_first)} → {clock.stamp(stats.after_now_last)} "
            "(clock set back? copied journal?)",
            style="yellow",
        )
    if not stats.records:
        title.append("no messages" + (" indexed yet" if behind else ""), "dim")
        return title if ahead is None else Group(title, ahead)
    title.append(f"{plural(stats.records, 'message')}")
    title.append(f"  {clock.stamp(stats.first_ts)} → {clock.stamp(stats.last_ts)}", "dim")
    if behind:
        title.append("  (indexed so far: the index is catching up)", "yellow")
    table = Table.grid(padding=(0, 2))
    # the labels keep their width: a long line of values is cut, never "sender"
    widest = max((len(key) + 2 for key in stats.by), default=0)
    table.add_column(style="bold", no_wrap=True, min_width=widest)
    table.add_column(overflow="ellipsis", no_wrap=True, ratio=1)
    for key, rows in stats.by.items():
        line = Text()
        for value, n in rows[:BREAKDOWN_TOP]:
            if line:
                line.append(" · ", "dim")
            line.append(one_line(value, 24))
            line.append(f" {count(n)} ({100 * n / stats.records:.0f} %)", "dim")
        if len(rows) > BREAKDOWN_TOP:
            rest = sum(n for _v, n in rows[BREAKDOWN_TOP:])
            line.append(f" · {len(rows) - BREAKDOWN_TOP} more {count(rest)}", "dim")
        table.add_row(f"  {key}", line)
    return Group(title, table) if ahead is None else Group(title, ahead, table)
