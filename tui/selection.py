"""What the picker hands back: a checkpoint to restore, or a fresh start.

Plain data, no Textual: the launcher imports this without loading the UI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from recorder.store.checkpoints import Checkpoint
from recorder.store.layout import segment_name

KIND_CHECKPOINT = "checkpoint"
KIND_FRESH = "fresh"


@dataclass(frozen=True)
class Selection:
    """The picker's result; `to_json()` is the `--print` contract."""

    kind: Literal["checkpoint", "fresh"]
    log_dir: Path
    checkpoint_id: str | None = None
    label: str | None = None
    reason: str | None = None
    time: float | None = None
    position: dict[str, Any] | None = None
    messages: int | None = None
    verified: bool | None = None
    problems: list[str] = field(default_factory=list)
    agent: str | None = None

    @classmethod
    def from_checkpoint(
        cls,
        cp: Checkpoint,
        log_dir: Path,
        *,
        verified: bool,
        problems: list[str] | None = None,
        agent: str | None = None,
    ) -> Selection:
        return cls(
            kind=KIND_CHECKPOINT,
            log_dir=Path(log_dir),
            checkpoint_id=cp.id,
            label=cp.label,
            reason=cp.reason,
            time=cp.created,
            position={"segment": segment_name(cp.segment), "offset": cp.offset, "seq": cp.seq},
            messages=cp.messages,
            verified=verified,
            problems=list(problems or []),
            agent=agent,
        )

    @classmethod
    def fresh(cls, log_dir: Path, agent: str | None = None) -> Selection:
        return cls(kind=KIND_FRESH, log_dir=Path(log_dir), agent=agent)

    def to_json(self) -> dict[str, Any]:
        iso = (
            datetime.fromtimestamp(self.time, UTC).isoformat(timespec="seconds")
            if self.time is not None
            else None
        )
        return {
            "kind": self.kind,
            "checkpoint_id": self.checkpoint_id,
            "label": self.label,
            "reason": self.reason,
            "time": iso,
            "created": self.time,
            "log_dir": str(self.log_dir),
            "position": self.position,
            "messages": self.messages,
            "verified": self.verified,
            "problems": self.problems,
            "agent": self.agent,
        }

    def dumps(self) -> str:
        return orjson.dumps(self.to_json()).decode()
