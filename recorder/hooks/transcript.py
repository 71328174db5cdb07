"""What a transcript gained since the last hook call, as session messages.

Read from the remembered offset to the end of the last complete line (a torn last
line waits for the next call; at session end a last line that parses on its own is
taken). If the bytes before the offset changed, the file shrank or was replaced, it
is read again from the start and the ids already published are skipped: a rewrite
never publishes a message twice, nor part of one (a streamed answer cut after its
first lines ends on an earlier line's uuid: those are remembered too). Lines are
turned into messages by the session readers of `recorder.sources` (Claude Code:
streamed blocks merged by message id, the uuid of the last line is the message's id;
Gemini CLI: the last version of each record id wins, `$set.messages` checkpoints
included; a legacy `.json` document is read whole every time).

Gemini CLI writes a message again under its id whenever it changes (its text
completed, tool calls added or their results), also after the hook sent it: a message
whose version (`publish.version_of`) differs from the one sent is sent again, whole,
as a revision of that id; one written again unchanged is not.

Claude Code writes a streamed answer one content block per line, in batches, so a
call may come between two lines of one answer. The last message of what was read
is held back (the offset stays before its first line, nothing of it is sent) while
it is an assistant message that may go on: until a later line follows it, or the
agent says it is done (session end, before compaction, a finished sub-agent, a Stop
whose `last_assistant_message` is its text, or a Stop that names no text). One
answer is one message.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recorder.hooks.agents import Agent
from recorder.hooks.state import ANCHOR_BYTES, SessionState, anchor_of

if TYPE_CHECKING:  # imported when there is something to parse (a turn hook's start-up)
    from recorder.sources.model import SessionMessage

MAX_READ = 16 << 20  # bytes read per call; the rest waits for the next one


class Delta:
    """What one call found (a plain class: see run.py)."""

    __slots__ = (
        "anchor",
        "bad_lines",
        "inode",
        "messages",
        "more",
        "offset",
        "revised",
        "rewritten",
        "torn",
        "versions",
    )

    def __init__(self, inode: int = 0) -> None:
        self.messages: list[SessionMessage] = []
        self.offset = 0
        self.anchor = ""
        self.inode = inode
        self.rewritten = False
        self.torn = 0  # bytes of an unfinished last line, left for the next call
        self.bad_lines = 0
        self.more = False  # MAX_READ was reached: more waits in the file
        self.revised: set[str] = set()  # ids of `messages` sent before (a later version)
        self.versions: dict[str, str] = {}  # Gemini CLI: versions to remember once sent

    def taken(self, state: SessionState, path: Path) -> None:
        """Move `state` past what this call read, its messages sent."""
        state.published.extend(m.uuid for m in self.messages if m.uuid not in self.revised)
        state.merged.extend(u for m in self.messages for u in m.merged)
        state.versions.update(self.versions)
        if self.rewritten:
            state.rewrites += 1
        state.transcript = str(path)
        state.offset, state.anchor, state.inode = self.offset, self.anchor, self.inode


def _pread_all(fd: int, length: int, offset: int) -> bytes:
    chunks = []
    while length > 0:
        chunk = os.pread(fd, min(length, 1 << 24), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
        length -= len(chunk)
    return b"".join(chunks)


def read_new(
    agent: Agent,
    path: Path,
    state: SessionState,
    *,
    final: bool = False,
    settled: bool = False,
    answer: str = "",
) -> Delta:
    """New messages of `path` after `state` (not yet published). `final`: the session
    ended; `settled`: the agent writes no more of its last answer; `answer`: the
    text the agent says its last answer is (see the module docstring). Raises OSError
    (and for what is not a regular file: a FIFO would hold the agent's hook forever)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path} is not a regular file")
        delta = Delta(inode=st.st_ino)
        if agent is Agent.GEMINI and path.suffix == ".json":
            return _legacy_gemini(fd, st.st_size, state, delta)
        start = state.offset
        if start and state.transcript == str(path):
            if st.st_ino != state.inode or st.st_size < start:
                delta.rewritten = True
            else:
                keep = min(ANCHOR_BYTES, start)
                if anchor_of(_pread_all(fd, keep, start - keep)) != state.anchor:
                    delta.rewritten = True
        elif state.transcript != str(path):
            start = 0  # a new transcript file for the session (first call, or moved)
        if delta.rewritten:
            start = 0
        end = min(st.st_size, start + MAX_READ)
        data = _pread_all(fd, end - start, start)
        cut = data.rfind(b"\n") + 1
        if cut == 0 and end < st.st_size:  # one line longer than MAX_READ: read it whole
            data = _pread_all(fd, st.st_size - start, start)
            end = start + len(data)
            cut = data.rfind(b"\n") + 1
        tail = data[cut:]
        if not data[:cut].strip() and not (final and tail.strip()):
            delta.offset, delta.torn = start + cut, len(data) - cut
            keep = min(ANCHOR_BYTES, delta.offset)
            delta.anchor = anchor_of(_pread_all(fd, keep, delta.offset - keep))
            return delta  # nothing new: no reader is imported
        from recorder.sources.jsonl import iter_objects
        from recorder.sources.model import ReadReport

        report = ReadReport()
        # at the end a last line without a newline counts if it parses
        lines = data if final and tail.strip() else data[:cut]
        numbered = list(iter_objects(lines, report, exact=True))  # published as written
        objects = [obj for _, obj in numbered]
        used = len(data) if final and tail.strip() and not report.torn_tail else cut
        delta.torn = len(data) - used
        delta.bad_lines = len(report.bad_lines)
        delta.offset = start + used
        delta.more = end < st.st_size and delta.offset < st.st_size - delta.torn
        keep = min(ANCHOR_BYTES, delta.offset)
        before = (
            lines[used - keep : used] if used >= keep else _pread_all(fd, keep, delta.offset - keep)
        )
        delta.anchor = anchor_of(before)
        if not objects:
            return delta  # nothing new: the readers are not even imported
        messages = (
            _claude(objects, state.session) if agent is Agent.CLAUDE else _gemini(objects, state)
        )
        seen = _sent(state)
        if agent is Agent.CLAUDE and messages and messages[-1].uuid not in seen:
            said = answer.strip()
            done = final or settled or (said and messages[-1].text.strip() == said)
            if delta.more or not done:
                _hold_back(fd, delta, messages, numbered, lines, start)
    finally:
        os.close(fd)
    _unsent(agent, delta, messages, state)
    return delta


def _unsent(
    agent: Agent, delta: Delta, messages: list[SessionMessage], state: SessionState
) -> None:
    """Put in `delta` the messages not sent yet and, for Gemini CLI, those whose version
    changed since it was sent (revisions)."""
    if agent is not Agent.GEMINI:  # Claude Code never writes a line again under its uuid
        seen = _sent(state)
        delta.messages = [m for m in messages if m.uuid and m.uuid not in seen]
        return
    from recorder.hooks.publish import version_of

    seen = set(state.published)
    for m in messages:  # one per id (`_gemini_records`)
        if not m.uuid:
            continue
        version = version_of(agent.value, m)
        sent = state.versions.get(m.uuid)
        if m.uuid in seen and sent is None:
            # sent by a version of persist that kept no digests: whether it changed
            # since is unknown, so this one is taken as the version sent
            delta.versions[m.uuid] = version
        elif version != sent:
            if m.uuid in seen:
                delta.revised.add(m.uuid)
            delta.versions[m.uuid] = version
            delta.messages.append(m)


def _sent(state: SessionState) -> set[str]:
    """Ids of messages sent, or of part of one: a streamed answer read again with only
    its first lines (the transcript cut inside it) ends on an earlier line's uuid."""
    return {*state.published, *state.merged}


def _hold_back(
    fd: int,
    delta: Delta,
    messages: list[SessionMessage],
    numbered: list[tuple[int, dict[str, Any]]],
    lines: bytes,
    start: int,
) -> None:
    """Leave the last message, an answer that may still be streaming, for a later
    read: drop it from `messages` and move `delta` back to its first line. Not when
    more of the file waits and it starts at the first line read (no progress)."""
    from recorder.sources.claude_messages import message_id
    from recorder.sources.model import Sender

    last = messages[-1]
    first = last.merged[0] if last.merged else last.uuid
    number, obj = next(((n, o) for n, o in numbered if o.get("uuid") == first), (0, {}))
    if last.sender is not Sender.ASSISTANT or not message_id(obj):
        return  # not a streamed answer: nothing can be added to it
    if number == 1 and delta.more:
        return
    cut = 0
    for _ in range(number - 1):  # the byte where line `number` starts
        cut = lines.index(b"\n", cut) + 1
    messages.pop()
    delta.offset = start + cut
    keep = min(ANCHOR_BYTES, delta.offset)
    delta.anchor = anchor_of(_pread_all(fd, keep, delta.offset - keep))


def _claude(objects: list[dict[str, Any]], session: str) -> list[SessionMessage]:
    from recorder.sources.claude import CONVERSATION
    from recorder.sources.claude_messages import build_messages

    entries = [
        o for o in objects if o.get("type") in CONVERSATION and isinstance(o.get("uuid"), str)
    ]
    return build_messages(entries, session)


def _gemini_records(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    order: list[str] = []
    records: dict[str, dict[str, Any]] = {}

    def put(record: Any) -> None:
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            if record["id"] not in records:
                order.append(record["id"])
            records[record["id"]] = record

    for obj in objects:
        update = obj.get("$set")
        if isinstance(update, dict):
            for record in update.get("messages") or ():
                put(record)
        elif "$rewindTo" not in obj and not ("sessionId" in obj and "id" not in obj):
            put(obj)
    return [records[i] for i in order]


def _gemini(objects: list[dict[str, Any]], state: SessionState) -> list[SessionMessage]:
    # the one reader that turns a Gemini record into a message (private there: no copy here)
    from recorder.sources.gemini import message_of

    out: list[SessionMessage] = []
    for record in _gemini_records(objects):
        msg = message_of(record, state.session, len(state.published) + len(out))
        if msg is not None:
            out.append(msg)
    return out


def _legacy_gemini(fd: int, size: int, state: SessionState, delta: Delta) -> Delta:
    import orjson

    data = _pread_all(fd, size, 0)
    delta.offset = len(data)
    delta.anchor = anchor_of(data)
    from recorder.sources.jsonl import loads_exact

    try:
        doc = loads_exact(data)  # published as written: integers beyond 64 bits too
    except orjson.JSONDecodeError:
        delta.torn = len(data)  # being rewritten: the next call reads it whole again
        return delta
    raw = doc.get("messages") if isinstance(doc, dict) else None
    records = [m for m in raw if isinstance(m, dict)] if isinstance(raw, list) else []
    _unsent(Agent.GEMINI, delta, _gemini(records, state), state)
    return delta
