"""The query language in one table, (what is typed, what it matches): `persist search
--help`, the TUI's help and README's Search table say the same. Apart from `query`, so
that the CLI builds its help without loading the parser's tables."""

from __future__ import annotations

QUERY_SYNTAX = (
    ("words", "every word must match; typos tolerated when exact finds few (fuzzy)"),
    ('"a phrase"', "the words together, in this order"),
    ("pre*", "any word starting with pre"),
    ("-word", 'leave out records with word (also -"a phrase", -from:NAME)'),
    ("a OR b", "either word (x a OR b: x and one of a, b)"),
    ("a AND b", 'both, as a b (upper case, as OR: and, or, "AND" are words)'),
    ("from:NAME", "sent by NAME (also sender:); NAME* for a prefix"),
    ("to:NAME", "addressed to NAME (the payload's to)"),
    ("topic:T", "topic T or below it (topic:agents matches agents.claude)"),
    ("kind:K", "chain type (request, reply, tool_call, error...) or record kind (gap...)"),
    ("tier:N", "ACE tier 1-6"),
    ("tag:T", "tagged T"),
    (
        "source:S",
        "where it came from: bus (the journal), claude, gemini, codex (agent sessions); "
        "another value is a bad query, S* a prefix",
    ),
    (
        "session:ID",
        "the payload's session / session_id (else meta.session), or an agent session's id",
    ),
    ("has:secret", "holds a secret (an API key, token, password...); -has:secret: none"),
    ("since:WHEN", "WHEN = 2024-05-14, 2024-05-14T10:30, 10:30 or 2h / 3d ago (also after:)"),
    ("until:WHEN", "up to WHEN (also before:)"),
)
