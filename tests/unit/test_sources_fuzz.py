"""No session file, however damaged, makes a reader raise: files cut at random points,
bytes flipped, fields given values of other types, lines spliced in (deterministic
seeds; FUZZ_SEEDS=400 for a longer run)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from recorder.sources import claude, codex, gemini
from recorder.sources.discover import Roots, scan
from recorder.sources.model import session_to_json
from tests.session_fixtures import (
    ClaudeSession,
    codex_rollout,
    gemini_jsonl,
    gemini_legacy,
    gemini_messages,
    gemini_project,
    new_uuid,
    text,
    thinking,
    tool_use,
)

SEEDS = int(os.environ.get("FUZZ_SEEDS", "60"))  # 400 passed before a commit
ODD_VALUES = [None, 0, -1, 1.5, True, "", "x", [], {}, [1, [2]], {"a": {"b": None}}]


def damaged(data: bytes, rng: random.Random) -> bytes:
    lines = data.split(b"\n")
    for _ in range(rng.randint(1, 6)):
        kind = rng.randrange(5)
        i = rng.randrange(len(lines))
        if kind == 0:
            lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)]
        elif kind == 1 and lines[i]:
            b = bytearray(lines[i])
            b[rng.randrange(len(b))] = rng.randrange(256)
            lines[i] = bytes(b)
        elif kind == 2:
            try:
                obj = json.loads(lines[i])
            except ValueError:
                continue
            if isinstance(obj, dict) and obj:
                key = rng.choice(sorted(obj))
                obj[key] = rng.choice(ODD_VALUES)
                lines[i] = json.dumps(obj).encode()
        elif kind == 3:
            lines.insert(
                i,
                json.dumps(
                    {
                        "type": rng.choice(["user", "assistant", "x"]),
                        "uuid": rng.choice([*ODD_VALUES, "u"]),
                        "message": rng.choice(ODD_VALUES),
                    }
                ).encode(),
            )
        else:
            lines.insert(i, bytes(rng.randrange(256) for _ in range(rng.randrange(40))))
    out = b"\n".join(lines)
    return out[: rng.randrange(len(out) + 1)] if rng.random() < 0.3 else out


@pytest.mark.parametrize("seed", range(SEEDS))
def test_damaged_files_never_raise(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    c = ClaudeSession(tmp_path / "claude")
    c.user("q")
    c.assistant(thinking("t"), text("a"), tool_use("Edit", {"file_path": "/f"}, "t1"))
    c.tool_result("t1", [{"type": "text", "text": "ok"}, {"type": "image", "source": {}}])
    c.compact()
    c.user("after", parent=c.last)
    c.meta("custom-title", customTitle="T")
    c.meta("summary", summary="S", leafUuid=c.last)
    path = c.write()
    path.write_bytes(damaged(path.read_bytes(), rng))
    full = claude.read_transcript(path)
    quick = claude.read_transcript(path, listing=True)  # the scan's mode: the same figures
    assert session_to_json(quick.session) == session_to_json(full.session)
    chats = gemini_project(tmp_path / "gemini", "/p")
    m = gemini_messages(2)
    g1 = gemini_jsonl(
        chats, new_uuid(), [*m, {"$set": {"summary": "s"}}, {"$rewindTo": m[2]["id"]}]
    )
    g1.write_bytes(damaged(g1.read_bytes(), rng))
    g2 = gemini_legacy(chats, new_uuid(), m)
    g2.write_bytes(damaged(g2.read_bytes(), rng))
    gemini.read_transcript(g1)
    gemini.read_transcript(g2)
    x = codex_rollout(tmp_path / "codex", "019a085e-0000-7000-8000-000000000001", 2)
    x.write_bytes(damaged(x.read_bytes(), rng))
    codex.read_transcript(x)
    result = scan(Roots(tmp_path / "claude", tmp_path / "gemini", tmp_path / "codex"))
    assert all(s.id for s in result.sessions)
