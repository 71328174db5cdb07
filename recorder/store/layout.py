"""Every path of a log folder (see FORMAT.md), and where the folder is by default."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from recorder.store.xdg import data_home

SEGMENT_PREFIX = "seg-"
SEGMENT_SUFFIX = ".jsonl"
COMPRESSED_SUFFIX = ".zst"  # a closed segment compressed (`store.segfile`, FORMAT.md)
SEGMENT_RE = re.compile(r"^seg-(\d{6,})\.jsonl(?:\.zst)?$")


def sessions_searchable_without_journal(log_dir: Path) -> bool:
    """Whether a search may go on in a log folder that holds no journal yet, over the
    agents' sessions alone (`persist sessions` needs no recorder either): one that
    exists, or the built-in default one (`standard_log_dir`: made 0700 for the index, as
    a recorder would). A folder named that does not exist, by `--log-dir` or by
    `$PERSIST_LOG_DIR` alike, is more likely a typo: nothing is made there (before
    2026-12-07 the variable's folder counted as the default, and was made)."""
    return log_dir.is_dir() or log_dir.absolute() == standard_log_dir().absolute()


def default_log_dir() -> Path:
    """`$PERSIST_LOG_DIR`, else `standard_log_dir()`."""
    env = os.environ.get("PERSIST_LOG_DIR")
    if env:
        return Path(env).expanduser()
    return standard_log_dir()


def standard_log_dir() -> Path:
    """The log folder no one named: $XDG_DATA_HOME (else ~/.local/share)
    /agent-persist/conversation_logs."""
    return data_home() / "agent-persist" / "conversation_logs"


@dataclass(frozen=True)
class Layout:
    """Where everything lives under a log folder."""

    root: Path

    @property
    def segments(self) -> Path:
        return self.root / "segments"

    @property
    def current(self) -> Path:
        """Symlink to the active segment (`current_session.jsonl`)."""
        return self.root / "current_session.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def recovery(self) -> Path:
        return self.root / "recovery"

    @property
    def index(self) -> Path:
        return self.root / "metadata_index"

    @property
    def search(self) -> Path:
        """The derived search index (rebuildable from the journal at any time)."""
        return self.root / "search"

    @property
    def render_cache(self) -> Path:
        """Renderings of closed segments' pieces (`recorder.export.render_cache`)."""
        return self.root / "render_cache"

    @property
    def search_index(self) -> Path:
        """SQLite FTS5 file of `recorder.search.index` (its -wal/-shm files beside it)."""
        return self.search / "index.sqlite3"

    @property
    def search_lock(self) -> Path:
        """flock held by whoever writes the search index (one writer at a time)."""
        return self.search / "index.lock"

    @property
    def compact_lock(self) -> Path:
        """flock held by whoever compresses closed segments (`store.compact`)."""
        return self.root / "compact.lock"

    @property
    def doctor_lock(self) -> Path:
        """flock held by a `persist doctor --fix` from its diagnosis to its re-check
        (one repairer at a time); it holds the holder's PID."""
        return self.root / "doctor.lock"

    @property
    def control(self) -> Path:
        """Requests to a running recorder (on-demand checkpoints)."""
        return self.root / "control"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def status_reserve(self) -> Path:
        """Space for the status while the disk is full (see `StatusSnapshot.write`)."""
        return self.root / "status.reserve"

    @property
    def state(self) -> Path:
        return self.recovery / "state.json"

    @property
    def lock(self) -> Path:
        return self.root / "recorder.lock"

    @property
    def log(self) -> Path:
        return self.root / "recorder.log"

    @property
    def rules(self) -> Path:
        return self.root / "enrich.toml"

    @property
    def waiting(self) -> Path:
        """Names a recorder that waits for a `persist` command holding the folder
        (`store.waiting`): gone once it holds the folder, or ends."""
        return self.root / "recorder.waiting"

    @property
    def recorder_out(self) -> Path:
        """Output of a recorder started in the background (its last line says why it exited)."""
        return self.root / "recorder.out"

    @property
    def agents(self) -> Path:
        """One registration file per connected agent (`<pid>-<name>-<id>.agent.json`)."""
        return self.root / "agents"

    @property
    def owner(self) -> Path:
        """Written by the launcher that started the running recorder."""
        return self.agents / "owner.json"

    @property
    def launch_lock(self) -> Path:
        """Serializes launchers of this folder while they start or stop the recorder."""
        return self.agents / "launch.lock"

    @property
    def restore(self) -> Path:
        """Restore bundles, one folder per checkpoint, scope and redaction."""
        return self.root / "restore"

    @property
    def sessions(self) -> Path:
        """Other agents' sessions: the scan cache, protected copies, the monitor's state."""
        return self.root / "sessions"

    @property
    def retention(self) -> Path:
        """Retention's own files: pins, the ledger of pruned segments, its lock."""
        return self.root / "retention"

    @property
    def pins(self) -> Path:
        """Pinned checkpoints (`persist pin`): never pruned, nor the range they need."""
        return self.retention / "pins.json"

    @property
    def pruned(self) -> Path:
        """Ledger of pruned segments: when, into which trash entry, emptied or not."""
        return self.retention / "pruned.json"

    @property
    def retention_lock(self) -> Path:
        """flock of whoever changes pins, prunes, restores or empties the trash."""
        return self.retention / "retention.lock"

    @property
    def room_reserve(self) -> Path:
        """Space kept for retention's own writes on a full disk (`store.room`)."""
        return self.retention / "room.reserve"

    @property
    def retention_config(self) -> Path:
        """The recorder's retention policy (`[retention]` in TOML), optional."""
        return self.root / "retention.toml"

    @property
    def trash(self) -> Path:
        """Pruned segments and checkpoints, one folder per prune, until emptied."""
        return self.root / "trash"

    def bundle(self, checkpoint_id: str) -> Path:
        """The first folder of the checkpoint's default bundle (the last 1000 messages,
        unredacted); the others are beside it (`recorder.export.restore.bundle_name`)."""
        return self.restore / checkpoint_id

    def segment_path(self, number: int) -> Path:
        return self.segments / segment_name(number)


def segment_name(number: int) -> str:
    return f"{SEGMENT_PREFIX}{number:06d}{SEGMENT_SUFFIX}"


def segment_number(name: str) -> int | None:
    """The number of a segment file, plain or compressed (None for any other name)."""
    m = SEGMENT_RE.match(name)
    return int(m.group(1)) if m else None


def is_compressed(path: Path) -> bool:
    return path.name.endswith(COMPRESSED_SUFFIX)


def compressed_path(path: Path) -> Path:
    """Where a plain segment's compressed form goes (`seg-N.jsonl.zst`)."""
    return path.with_name(segment_name(segment_number(path.name) or 0) + COMPRESSED_SUFFIX)


def find_segment(layout: Layout, name: str) -> Path | None:
    """The file that holds segment `name` (`seg-N.jsonl`, as checkpoints name it), plain
    or compressed; None if neither exists or `name` is not a segment's."""
    if segment_number(name) is None or name.endswith(COMPRESSED_SUFFIX):
        return None
    for path in (layout.segments / name, layout.segments / (name + COMPRESSED_SUFFIX)):
        if path.is_file():
            return path
    return None


def list_segments(layout: Layout) -> list[Path]:
    """Segment files in journal order, one per segment whatever its form. While a
    segment is being compressed both forms exist for a moment: the plain one is
    listed until it is removed (the compressed one is complete by then)."""
    try:
        found = [(segment_number(p.name), is_compressed(p), p) for p in layout.segments.iterdir()]
    except FileNotFoundError:
        return []
    chosen: dict[int, Path] = {}
    for number, _compressed, path in sorted((t for t in found if t[0] is not None), reverse=True):
        assert number is not None
        chosen[number] = path  # plain (False) sorts last in reverse order: it wins
    return [chosen[n] for n in sorted(chosen)]
