"""`persist export --session`: an agent session written by the journal's writers.

The session's main conversation (as `persist fork` numbers it) becomes journal-shaped
records (`recorder.sources.journal_view`, one per message, as the search index reads
them) and goes through `write_export`, so escaping and redaction are the journal
export's. JSONL is those records too, not the agent's own lines: its file can be
copied as it is.
"""

from __future__ import annotations

from typing import IO

from recorder.export.render import iso
from recorder.export.writers import ExportStats, Progress, export_redact, write_export
from recorder.sources.fork import choose
from recorder.sources.journal_view import to_records
from recorder.sources.model import Session, SessionMessage, Transcript, notes_phrase
from recorder.store.secrets import redacted_text


def messages_up_to(t: Transcript, at: str | None) -> list[SessionMessage]:
    """The messages to export: all of them, or up to message `at` (its number, its
    uuid or a unique uuid prefix, as `persist fork --at` takes it)."""
    if at is None:
        return t.messages
    return t.messages[: choose(t, at).seq + 1]


def which_messages(shown: list[SessionMessage], total: int) -> str:
    """Which messages of a session of `total` are exported (the header's and the
    summary line's words)."""
    if len(shown) == total:
        return "the whole session"
    return f"messages {shown[0].seq} to {shown[-1].seq} of {total}"


def session_facts(
    s: Session, shown: list[SessionMessage], total: int, *, from_copy: bool
) -> list[tuple[str, str]]:
    """The header of a session export (where a journal export names its range)."""
    notes = f": {phrase}" if (phrase := notes_phrase(shown)) else ""
    facts = [
        ("Source", s.source.agent_name),
        ("Session", s.id),
        ("Project", s.project_path or "(unknown)"),
        ("Messages", f"{len(shown)} ({which_messages(shown, total)}{notes})"),
    ]
    times = [m.ts for m in shown if m.ts is not None]
    if times:
        facts += [("First message", iso(min(times))), ("Last message", iso(max(times)))]
    facts.append(
        (
            "Read from",
            "our protected copy (the agent deleted the session)" if from_copy else str(s.path),
        )
    )
    return facts


def export_session(
    t: Transcript,
    shown: list[SessionMessage],
    fmt: str,
    out: IO[bytes],
    *,
    from_copy: bool = False,
    progress: Progress | None = None,
    redact: bool | None = None,
) -> ExportStats:
    """Write messages `shown` of session `t` (`messages_up_to`) to `out` in `fmt`;
    `redact` as a journal export takes it (None: on for md, html and csv, off for
    jsonl)."""
    s = t.session
    title = s.title or s.first_prompt or f"{s.source.agent_name} session"
    return write_export(
        to_records(shown),
        fmt,
        out,
        title=redacted_text(title) if export_redact(fmt, redact) else title,
        facts=session_facts(s, shown, len(t.messages), from_copy=from_copy),
        total=len(shown),
        progress=progress,
        redact=redact,
    )
