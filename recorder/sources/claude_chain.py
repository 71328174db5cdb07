"""The active chain of a Claude Code transcript: the conversation Claude Code would
resume from the lines of a file (`parentUuid` tree, compaction boundaries bridged by
`logicalParentUuid`, progress lines transparent, parallel tool calls put back)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recorder.sources.claude_messages import is_tool_result, message_id


@dataclass
class Chain:
    lines: list[dict[str, Any]]  # the active conversation, in file order
    leaves: list[str]  # uuids of user/assistant lines nobody continues
    branches: int  # leaves off the active chain, plus one


def active_chain(
    entries: list[dict[str, Any]], explicit_leaf: str | None = None, *, sidechain: bool = False
) -> Chain:
    """The conversation Claude Code would resume, by its own rules. (Each line's fields
    are looked up once, and passes that only matter for rare lines (progress, lost
    parents, parallel tool calls) are skipped when there are none: this runs on every
    line of every file a scan reads.) `sidechain`: the chain of a sub-agent's own file,
    made of its sidechain lines (which a session's chain leaves out)."""
    n = len(entries)
    uuids = [e["uuid"] for e in entries]
    by_uuid = dict(zip(reversed(uuids), range(n - 1, -1, -1), strict=True))  # first wins
    kinds = [e["type"] for e in entries]
    find = by_uuid.get
    # raw[i]: the index of the line named as line i's parent; None: none named; -1: lost
    raw: list[int | None] = []
    add = raw.append
    for e in entries:
        p = e.get("parentUuid")
        if p is None and e.get("subtype") == "compact_boundary":
            p = e.get("logicalParentUuid")
        add(find(p, -1) if type(p) is str else None)
    parents = raw
    if "progress" in kinds:  # progress lines are transparent (a loop of them is cut off)
        parents = []
        for i in range(n):
            j = raw[i]
            seen = 0
            while j is not None and j >= 0 and kinds[j] == "progress" and seen <= n:
                j = raw[j]
                seen += 1
            parents.append(j)
    has_child = set(parents)
    main = [
        i
        for i, e in enumerate(entries)
        if kinds[i] != "progress" and (e.get("isSidechain") is True) is sidechain
    ]
    if not main:
        return Chain([], [], 0)
    explicit = find(explicit_leaf) if explicit_leaf else None
    start = main[-1] if explicit is None else explicit
    chain: list[int] = []
    on_chain: set[int] = set()
    at: int | None = start
    while at is not None and at not in on_chain:
        on_chain.add(at)
        chain.append(at)
        up = parents[at]
        if up == -1:  # parent line lost (cut off, unreadable): the nearest earlier line
            earlier = [j for j in main if j < at and j not in on_chain]
            up = earlier[-1] if earlier else None
        at = up
    # Parallel tool calls: sibling assistant lines and their results off the walked chain.
    off_main = [j for j in main if j not in on_chain]
    extra: set[int] = set()
    if off_main:
        ids = {message_id(entries[j]) for j in chain if kinds[j] == "assistant"}
        ids.discard("")
        if ids:
            extra = {
                j for j in off_main if kinds[j] == "assistant" and message_id(entries[j]) in ids
            }
        anchor = on_chain | extra
        for j in off_main:
            p = parents[j]
            if (
                p is not None
                and j not in extra
                and p in anchor
                and kinds[j] == "user"
                and is_tool_result(entries[j])
            ):
                extra.add(j)
    taken = on_chain | extra
    leaves: list[str] = []
    off = 0
    for j in main:
        if j not in has_child and kinds[j] in ("user", "assistant"):
            leaves.append(uuids[j])
            if j not in taken:
                off += 1
    return Chain([entries[j] for j in sorted(taken)], leaves, off + 1)
