"""What a recorder can be told: , and the argv that tells a recorder process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recorder.bus.endpoints import DEFAULT_SUBSCRIBE
from recorder.store.journal import DEFAULT_SEGMENT_BYTES

FSYNC_MODES = ("interval", "always", "never")


@dataclass
class RecorderOptions:
    """Everything a recorder can be told. Units are in the names or comments."""

    log_dir: Path
    broker: str = DEFAULT_SUBSCRIBE  # the broker's XPUB (subscriber) endpoint
    fsync: str = "interval"  # "interval" | "always" (after every write batch) | "never" (OS)
    fsync_interval: float = 0.2  # seconds between group commits in "interval" mode
    segment_bytes: int = DEFAULT_SEGMENT_BYTES  # a segment is closed once it reaches this
    max_message_bytes: int = 16 * 1024 * 1024  # larger messages become "refused" records
    checkpoint_interval: float = 300.0  # seconds; 0 = no periodic checkpoints
    status_interval: float = 1.0  # seconds between status.json / state.json writes
    max_backlog_bytes: int = 32 * 1024 * 1024  # receiving pauses beyond this (zmq queues)
    rcvhwm: int = 10_000  # messages zmq queues inside the recorder; beyond, the broker holds them
    zmq_heartbeat_ms: int = 1000  # ZMTP heartbeat interval; the timeout is 3x this
    rules: Path | None = None  # enrichment rules (default: <log_dir>/enrich.toml or built-in)
    embedded_broker: str | None = None  # publisher endpoint of a broker we host, if any

    def __post_init__(self) -> None:
        self.log_dir = Path(self.log_dir).expanduser()
        if self.fsync not in FSYNC_MODES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_MODES)}")

