"""The checkpoint preview: what it holds, who talked, and trouble in its range."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.text import Text

from recorder.store.checkpoints import Checkpoint, sanitize_participants
from recorder.store.layout import segment_name
from recorder.store.reader import Record

from ..preview import Preview
from ..reading import ReadingRules
from ..text import Clock, count, one_line, plural, safe_text
from ..transcript import Turn, turn_of
from .checkpoint_list import REASON_STYLES
from .record_list import KIND_STYLES, SECRET_BADGE, SECRET_STYLE, describe, sender_style

PREVIEW_CHARS = 400
"""Characters of a message's text in the preview (the conversation view has it all)."""


def turn_parts(turn: Turn, clock: Clock, limit: int = PREVIEW_CHARS) -> tuple[Text, Text | None]:
    """A turn as a head line `HH:MM:SS speaker  topic [kind]` and a body: a tool call
    as `⚙ name(arguments)`, thinking folded to one line, then the text (cut at `limit`)."""
    head = Text()
    head.append(clock.hms(turn.ts), "dim")
    head.append(" ")
    if not turn.is_message:
        head.append(turn.speaker, KIND_STYLES.get(turn.kind, "bold"))
        head.append(" ")
        head.append_text(safe_text(turn.text[:limit]))
        return head, None
    speaker = one_line(turn.speaker, 40)
    head.append(speaker, f"bold {sender_style(speaker)}")
    if turn.topic:
        head.append(f"  {one_line(turn.topic, 120)}", "dim")
    if turn.kind != "message":
        head.append(f"  [{one_line(turn.kind, 40)}]", "italic")
    if turn.secrets:
        head.append(f"  {SECRET_BADGE.strip()}", SECRET_STYLE)
    body = Text()
    calls = [(turn.tool, turn.args)] if turn.tool is not None or turn.args else []
    for name, args in calls + turn.calls:
        if body:
            body.append("\n")
        body.append("⚙ ", "bold magenta")
        body.append(one_line(name or "?", 80), "bold")
        if args is not None:
            body.append("(")
            body.append_text(safe_text(args[:limit]))
            body.append(")")
    if turn.thinking:
        if body:
            body.append("\n")
        body.append(f"▸ thinking ({len(turn.thinking):,} characters, folded)", "dim italic")
    if turn.text:
        if body:
            body.append("\n")
        text = turn.text if len(turn.text) <= limit else turn.text[:limit] + " …"
        body.append_text(safe_text(text, newlines=True))
    return head, body if body else None


def _row(rec: Record, clock: Clock, rules: ReadingRules | None = None) -> RenderableType:
    head, body = turn_parts(turn_of(rec, rules), clock)
    return head if body is None else Group(head, Padding(body, (0, 0, 0, 2)))


def _who_spoke(pv: Preview | None, cp: Checkpoint) -> Text | None:
    """Senders since the previous checkpoint, most first: the journal's once its range is
    read (what "Since the previous checkpoint" counts: a damaged line is no one's
    message), else the checkpoint's own count (FORMAT.md), said to be."""
    journal = pv is not None and (not pv.truncated or not cp.participants)
    talkers = sanitize_participants(pv.talkers) if pv is not None and journal else cp.participants
    if not talkers:
        return None
    who = Text("Who spoke since the previous checkpoint: ", style="bold")
    items = sorted(talkers.items(), key=lambda kv: (-kv[1], kv[0]))
    for i, (name, n) in enumerate(items[:8]):
        if i:
            who.append(" · ")
        who.append(one_line(name, 30), sender_style(name))
        who.append(f" {n:,}", "dim")
    if len(items) > 8:
        who.append(f" · +{len(items) - 8} more", "dim")
    if pv is not None and not journal:
        who.append("  (the checkpoint's count: the journal's range is read in part)", "dim")
    elif journal and pv is not None and pv.truncated:
        who.append(f"  (in the newest {pv.scanned:,} lines)", "dim")
    return who


def rule(title: str) -> Text:
    return Text(f"── {title} ", style="bold dim")


def checkpoint_header(cp: Checkpoint, clock: Clock) -> Text:
    head = Text()
    head.append(one_line(cp.label or "(no label)", 200), "bold")
    head.append("  ")
    head.append(f"[{one_line(cp.reason, 30)}]", REASON_STYLES.get(cp.reason, "italic"))
    head.append("\n")
    head.append(f"{clock.stamp(cp.created)} · {clock.ago(cp.created)}", "")
    head.append(
        f"\n{plural(cp.messages, 'message')} · seq {cp.seq:,} · "
        f"{segment_name(cp.segment)}@{cp.offset:,}",
        "dim",
    )
    return head


def render_preview(
    pv: Preview | None,
    cp: Checkpoint | None,
    clock: Clock,
    *,
    problem: str | None = None,
    rules: ReadingRules | None = None,
    pinned: bool = False,
) -> RenderableType:
    """The preview, or a placeholder while it loads, or `problem` if it could not load."""
    if cp is None:
        return Text("No checkpoint selected.", style="dim")
    parts: list[RenderableType] = [checkpoint_header(cp, clock)]
    if pinned:
        parts.append(
            Text("⚑ pinned: kept through pruning, with its last 1,000 messages", "bold yellow")
        )
    parts.append(Text("Enter reads the conversation here · r restores it", style="dim italic"))
    loaded = pv is not None and pv.checkpoint.id == cp.id
    who = _who_spoke(pv if loaded else None, cp)
    if who is not None:
        parts.append(who)
    if pv is None or not loaded:
        if problem is not None:
            parts.append(Text(problem, style="bold red"))
        else:
            parts.append(Text("reading its range…", style="dim italic"))
        return Group(*parts)
    since = Text("Since the previous checkpoint: ", style="bold")
    since.append(f"{plural(pv.messages, 'message')} in the journal")
    counted = sum(cp.participants.values())
    if cp.participants and counted != pv.messages and not pv.truncated:
        since.append(f" (the checkpoint counted {count(counted)})", "yellow")
    parts.append(since)
    trouble = Text("Integrity of range: ", style="bold")
    if not pv.problem_counts and not pv.moved:
        trouble.append("no gaps, no corruption", "green")
    else:
        bits = ["the journal changed before its position"] if pv.moved else []
        for kind, label in (
            ("gap", "gap"),
            ("corrupt", "corrupt tail"),
            ("bad-line", "unreadable line"),
            ("refused", "refused"),
        ):
            n = pv.problem_counts.get(kind, 0)
            if n:
                bits.append(f"{n} {label}{'s' if n != 1 else ''}")
        trouble.append(", ".join(bits), "bold red")
        if pv.missed:
            trouble.append(f" ({plural(pv.missed, 'message')} missed)", "red")
    if pv.truncated:
        trouble.append(f" (newest {pv.scanned:,} lines checked)", "dim")
    parts.append(trouble)
    if pv.moved:
        line = Text("  ⚠ ", style="red")
        line.append(
            f"{segment_name(cp.segment)}@{cp.offset:,} is not where its last record ", "red"
        )
        line.append(f"(seq {cp.seq:,}) ends: shown up to that record, r checks its digest")
        parts.append(line)
    for rec in pv.problems[:3]:
        line = Text("  ⚠ ", style="red")
        line.append(f"{clock.hms(rec.ts)} {rec.kind}: ", "red")
        line.append(one_line(describe(rec), 160))
        parts.append(line)
    parts.append(rule("last messages before"))
    if not pv.before:
        parts.append(Text("  (none)", style="dim"))
    parts.extend(_row(r, clock, rules) for r in pv.before)
    parts.append(rule("◆ checkpoint ─ first after"))
    if not pv.after:
        parts.append(Text("  (nothing recorded after it yet)", style="dim"))
    parts.extend(_row(r, clock, rules) for r in pv.after)
    return Group(*parts)
