"""The launch contract: what the picker (`persist-tui --print`) hands back, and the choices.

Plain data, no Textual: the TUI writes a `Selection`'s `to_json()` on stdout (as every
`--json` output, `recorder.cli.common.print_json`), the launcher reads it back with
`Selection.from_json`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from recorder.store.checkpoints import Checkpoint
from recorder.store.layout import segment_name


class LaunchChoice(StrEnum):
    """What an agent starts from."""

    CHECKPOINT = "checkpoint"  # a checkpoint, restored
    SESSION = "session"  # an agent's own session, resumed (or forked at an earlier message)
    FRESH = "fresh"  # nothing restored
    CANCELLED = "cancelled"  # the user quit the menu (or the policy said cancel)


class NoTtyPolicy(StrEnum):
    """What the launcher decides when there is no terminal to show the menu on."""

    FRESH = "fresh"
    LATEST = "latest"
    CANCEL = "cancel"


@dataclass(frozen=True)
class Selection:
    """The picker's result; `to_json()` is the `--print` contract."""

    kind: LaunchChoice  # CHECKPOINT or FRESH (quitting prints nothing)
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
    session: str | None = None  # SESSION: the session's key (`claude:<id>`)
    at: int | None = None  # SESSION: the message to fork at (None: the latest point)
    new_id: str | None = None  # SESSION: the fork's id, chosen before the confirmation
    command: list[str] | None = None  # SESSION: the command the confirmation showed
    cwd: str | None = None  # SESSION: where it runs (the session's project)
    # CHECKPOINT: secrets redacted in the bundle handed over, as the restore dialog said
    # (None: as the launcher was told, `PersistenceLauncher(redact=...)`)
    redact: bool | None = None

    @classmethod
    def from_checkpoint(
        cls,
        cp: Checkpoint,
        log_dir: Path,
        *,
        verified: bool,
        problems: list[str] | None = None,
        agent: str | None = None,
        redact: bool | None = None,
    ) -> Selection:
        return cls(
            kind=LaunchChoice.CHECKPOINT,
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
            redact=redact,
        )

    @classmethod
    def fresh(cls, log_dir: Path, agent: str | None = None) -> Selection:
        return cls(kind=LaunchChoice.FRESH, log_dir=Path(log_dir), agent=agent)

    @classmethod
    def resume(
        cls,
        log_dir: Path,
        session: str,
        command: list[str],
        cwd: str,
        *,
        at: int | None = None,
        new_id: str | None = None,
        agent: str | None = None,
    ) -> Selection:
        return cls(
            kind=LaunchChoice.SESSION,
            log_dir=Path(log_dir),
            agent=agent,
            session=session,
            at=at,
            new_id=new_id,
            command=list(command),
            cwd=cwd,
        )

    def to_json(self) -> dict[str, Any]:
        iso = (
            datetime.fromtimestamp(self.time, UTC).isoformat(timespec="seconds")
            if self.time is not None
            else None
        )
        return {
            "kind": self.kind.value,
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
            "session": self.session,
            "at": self.at,
            "new_id": self.new_id,
            "command": self.command,
            "cwd": self.cwd,
            "redact": self.redact,
        }

    @classmethod
    def from_json(cls, data: Any) -> Selection:
        """Read `to_json()` back; raises ValueError naming what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        try:
            kind = LaunchChoice(str(data.get("kind")))
        except ValueError:
            raise ValueError(f"unknown kind {data.get('kind')!r}") from None
        if kind is LaunchChoice.CANCELLED:
            raise ValueError("a cancelled choice is never printed")
        checkpoint_id = data.get("checkpoint_id")
        if kind is LaunchChoice.CHECKPOINT and not isinstance(checkpoint_id, str):
            raise ValueError("a checkpoint choice without a checkpoint id")
        session = data.get("session")
        if kind is LaunchChoice.SESSION and not isinstance(session, str):
            raise ValueError("a session choice without a session")
        command = data.get("command")
        if command is not None and not (
            isinstance(command, list) and all(isinstance(a, str) for a in command)
        ):
            raise ValueError("command is not a list of strings")
        at = data.get("at")
        created = data.get("created")
        messages = data.get("messages")
        return cls(
            kind=kind,
            log_dir=Path(str(data.get("log_dir") or "")),
            checkpoint_id=checkpoint_id if isinstance(checkpoint_id, str) else None,
            label=_str_or_none(data.get("label")),
            reason=_str_or_none(data.get("reason")),
            time=float(created) if isinstance(created, int | float) else None,
            position=data.get("position") if isinstance(data.get("position"), dict) else None,
            messages=messages if isinstance(messages, int) else None,
            verified=data.get("verified") if isinstance(data.get("verified"), bool) else None,
            problems=[str(p) for p in data.get("problems") or [] if isinstance(p, str)],
            agent=_str_or_none(data.get("agent")),
            session=session if isinstance(session, str) else None,
            at=at if isinstance(at, int) and not isinstance(at, bool) and at >= 0 else None,
            new_id=_str_or_none(data.get("new_id")),
            command=command,
            cwd=_str_or_none(data.get("cwd")),
            redact=data.get("redact") if isinstance(data.get("redact"), bool) else None,
        )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
