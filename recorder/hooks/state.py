"""What a hook remembers of a session between calls: `<log-dir>/hooks/sessions/*.json`.

The transcript offset read so far (with a fingerprint of the bytes before it, so a
rewritten or truncated file is noticed), the publisher id and last sequence number
(so the recorder sees one publisher with no false gaps across hook processes), the
ids already published (so a re-read never publishes a message twice), and the
agent's registration. One file per session, 0600, replaced atomically; calls for
the same session are serialized by an flock on `<file>.lock`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from recorder.hooks.failures import hooks_dir
from recorder.store.fsutil import atomic_write, ensure_private_dir, open_private

ANCHOR_BYTES = 256  # bytes before the offset whose hash must not change
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def anchor_of(data: bytes) -> str:
    """A fingerprint of the last ANCHOR_BYTES of `data` (with the size and inode, enough
    to notice a rewrite; crc32 because hashlib alone costs a turn hook ~5 ms to import)."""
    tail = data[-ANCHOR_BYTES:]
    return f"{len(tail)}:{zlib.crc32(tail):08x}"


@dataclass
class SessionState:
    agent: str
    session: str
    publisher: str  # envelope publisher id, the same for every call of this session
    seq: int = 0  # last sequence number sent
    transcript: str = ""
    offset: int = 0  # bytes of the transcript read (up to the end of a complete line)
    anchor: str = ""  # anchor_of(the bytes before offset)
    inode: int = 0
    published: list[str] = field(default_factory=list)  # agent message ids sent, in order
    registration: str = ""  # agents/<file> of this session's agent
    started: float = 0.0
    rewrites: int = 0  # times the transcript was found rewritten or truncated

    @classmethod
    def new(cls, agent: str, session: str) -> SessionState:
        return cls(agent, session, f"{agent}-{_SAFE.sub('_', session)[:100]}")

    @classmethod
    def from_json(cls, data: Any) -> SessionState | None:
        if not isinstance(data, dict):
            return None
        try:
            state = cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except TypeError:
            return None
        ints = (state.seq, state.offset, state.inode, state.rewrites)
        if not all(type(v) is int and v >= 0 for v in ints):
            return None
        if not isinstance(state.published, list) or not isinstance(state.publisher, str):
            return None
        return state

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))


def state_path(log_dir: Path, agent: str, session: str) -> Path:
    name = f"{_SAFE.sub('_', agent)}-{_SAFE.sub('_', session)[:120]}.json"
    return hooks_dir(log_dir) / "sessions" / name


def load_state(path: Path, agent: str, session: str) -> SessionState:
    """The saved state, or a new one (a missing or unreadable file starts afresh)."""
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return SessionState.new(agent, session)
    state = SessionState.from_json(data)
    if state is None or state.agent != agent or state.session != session:
        return SessionState.new(agent, session)
    return state


def save_state(path: Path, state: SessionState) -> None:
    # not fsynced: a hook runs on every turn; after a power cut the worst is one
    # turn published again (same message ids, sequence numbers seen as duplicates)
    atomic_write(path, state.to_json(), durable=False)


@contextlib.contextmanager
def session_lock(path: Path, timeout: float = 5.0) -> Iterator[None]:
    """Serialize the hooks of one session (Stop and SubagentStop may overlap)."""
    import time

    ensure_private_dir(path.parent)
    fd = open_private(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another hook holds {path.name}.lock") from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)
