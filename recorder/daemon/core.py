"""The recorder's core: turns received messages into journal records.

No ZeroMQ here (the transport hands batches in through `record_batch`), so the
whole loop can be driven by tests with an injected clock:

- `record_batch()` / `append_record()` encode, enrich, track gaps and hand whole
  chunks of lines to the journal's sink (the receiving thread);
- the sink writes them on its own thread, so the disk never stalls receiving;
- `sync()` makes written lines durable (syncer thread, or the sink in `always` mode);
- `tick(now)` does the periodic work: status, recovery state, checkpoints, requests,
  scheduled on a clock that does not step (`monotonic`), while what it writes is
  stamped with `now`, the wall clock.

Longer than our usual 400 lines on purpose: the receive path, the periodic work and
the counters they share are one object. The hot path (`_write_messages`) reads a
dozen of its attributes per batch; splitting it into collaborators would add a call
per message or spread one state over several classes. What could leave did:
options, recovery (`recovery.py`), the control protocol, enrichment, zmq.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from recorder.bus.envelope import (
    ENVELOPE_KEY,
    HEARTBEAT_TOPIC,
    NOT_SUBSCRIBED,
    UNCONFIRMED_END,
    GapTracker,
    Hole,
    SilentTail,
    TailWatch,
    envelope_in_head,
    read_envelope,
    read_heartbeat,
)
from recorder.bus.keys import Refused
from recorder.bus.refusal import SHOWN_BYTES, TOPIC_BYTES, Refusal, over_limits, refusal_of
from recorder.daemon import maintenance
from recorder.daemon.control import (
    AFTER_WAIT,
    MAINTENANCE_SUFFIX,
    CheckpointReply,
    ControlError,
    answer_request,
    control_names,
    pending_requests,
    read_request,
    requests_named,
)
from recorder.daemon.enrich import Enricher
from recorder.daemon.links import Links
from recorder.daemon.options import RecorderOptions
from recorder.daemon.priority import other_work_gate
from recorder.daemon.recovery import recover
from recorder.daemon.warm import IndexWarmer
from recorder.errors import PersistError, refused_by
from recorder.store.checkpoints import Checkpoint, DigestCache, newest_checkpoint, write_checkpoint
from recorder.store.fsutil import ensure_private_dir, remove_stale_temp_files
from recorder.store.journal import ABANDON_WAIT, Journal, Position, UnwrittenData
from recorder.store.layout import Layout
from recorder.store.ranges import MAX_KEY_CHARS, MAX_PARTICIPANTS, count_participant
from recorder.store.records import (
    DEEP_BYTES,
    KIND_EVENT,
    KIND_GAP,
    KIND_HEARTBEAT,
    KIND_MESSAGE,
    KIND_REFUSED,
    SCHEMA_VERSION,
    encode_frames,
    encode_record,
    fits_by_text,
    splice_value,
)
from recorder.store.recovery import Floor, JournalPoint, Named, RecoveryState
from recorder.store.room import keep_room
from recorder.store.secrets import (
    DEFAULT_SCAN_CAP,
    SecretScanner,
    maybe_secret,
    meta_field,
    redacted_cut_text,
    scan_frames,
)
from recorder.store.status import (
    STATE_FAILED,
    CheckpointRef,
    Connection,
    Counts,
    ErrorNote,
    LostLines,
    Program,
    Rates,
    RecorderState,
    StatusFile,
    StatusSnapshot,
    process_start_key,
    process_start_time,
    read_status,
    reserve_status_space,
    status_remedy,
    touch_status,
)

log = logging.getLogger("agent_persist.recorder")

Clock = Callable[[], float]
# Seconds between the main thread's wake-ups when nothing asks for it sooner
# (`Recorder.sleep_for`): while messages come in (or requests are found only by looking),
TICK = 0.5
# ... at most this when idle and clients wake it for their requests (`wakeup`): it
# then wakes for the status only,
IDLE_TICK = 2.0
WAITING_TICK = 0.02  # ... and this while a checkpoint request waits for its message
TAIL_CHECK = 1.0  # seconds between looks for publishers silent with an unconfirmed tail
CONTROL_INTERVAL = 0.5  # seconds between looks for `persist checkpoint` requests
# A batch this large means messages arrive faster than the receiver takes them: a full
# one (`bus.receiver`: 256), about 2,500 msgs/s and up, since small batches gather for
# 0.1 s. Background work on closed segments (compression, line indexes) then waits
# until none has come for QUIET_AFTER s.
BUSY_BATCH = 256
QUIET_AFTER = 2.0
# An idle recorder touches its unchanged status.json rather than rewriting it; it still
# writes it whole this often (a file damaged or replaced from outside is mended).
STATUS_REWRITE = 60.0
# The wall clock moved by more than this against the monotonic one between two looks:
# it was stepped (set by hand, or by NTP). Periodic work is scheduled on the monotonic
# clock and never waits for it; the status is then written whole (`write_status`).
CLOCK_STEP = 1.0
_JSON_OPENERS = (b"{", b"[")
# A message line up to its payload, for one topic and receive time (`_line_head`):
# what stays a format then takes (seq, size, meta, span start, span length).
_MSG_PREFIX = (
    b'{"v":1,"seq":%%d,"ts":%s,"kind":"msg","topic":%s,"size":%%d,"meta":%%s,'
    b'"spans":[[%%d,%%d]],"frames":[%s,{"json":'
)
_MSG_END = b"}]}\n"
# In a flood, lines go to the writer in chunks of at least this much rather than one
# per batch (about 100 KB): each hand-over wakes the writer thread, which then takes
# the GIL from the receiving thread a few times, and on a busy machine every such
# switch is a wait in the run queue. At 80 MB/s of lines this holds them 12 ms.
CHUNK_BYTES = 1 << 20
# The end of `meta` for a message scanned in full and found clean: readers then need
# not scan it again (a record without `secrets` may never have been scanned).
_SCANNED_CLEAN = b',"secrets":[]}'
_RETENTION_SKIPPED = "retention pass skipped"  # the status's last error until one works
RECORD_WAIT = 10.0  # seconds a retention change waits for its journal record to be written
JOURNAL_READY_WAIT = 1.5  # seconds a prune waits for a failing journal writer to resume
JOURNAL_READY_BACKLOG = 256 << 10  # bytes that may wait for the disk when a prune begins
# seconds a checkpoint waits for the writer to write what it covers (on the main thread:
# well under the status file's stale age)
CHECKPOINT_WAIT = 2.0
# seconds a stop waits for the receiver to journal what it took in before the log says so
RECEIVER_SLOW = 2.0
_REPLAY_TOO_DEEP = "(nested too deep to copy: see the payload's _persist.replay_of)"


def _in_order(head: dict[str, Any]) -> dict[str, Any]:
    """A gap whose start is stamped after its end (the wall clock was set back in
    between: a recorder killed while the clock ran ahead, a broker lost before a step)
    is written from its end to its end, its detail saying so: how long it lasted is not
    known, and a window that ends before it begins is none."""
    start, end = head.get("from_ts"), head.get("to_ts")
    if not isinstance(start, int | float) or not isinstance(end, int | float) or start <= end:
        return head
    try:
        stamped = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(start))
    except (OverflowError, ValueError, OSError):  # no date holds it
        stamped = f"{start:g}"
    why = (
        f"its start was stamped {stamped}, {start - end:.0f} s after its end: the clock was "
        "set back in between, so how long it lasted is not known"
    )
    detail = head.get("detail")
    return {**head, "from_ts": end, "detail": f"{detail}; {why}" if detail else why}


def _failure(exc: BaseException) -> str:
    """What failed, in one line: an ImportError in a recorder that has run for a while is
    most likely the package upgraded under it (a module it had not loaded yet changed)."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ImportError):
        text += " (was agent-persist upgraded while this recorder ran? restart it)"
    return text


@dataclass
class Counters:
    received: int = 0
    written: int = 0
    gaps: int = 0
    missed: int = 0  # messages known to be lost (from publisher sequence holes)
    refused: int = 0
    backlog_pauses: int = 0  # times the writer's backlog went over its budget (messages dropped)
    partial: int = 0  # messages enriched without keyword rules because we were behind
    heartbeats: int = 0  # publisher heartbeats recorded (not counted as messages)
    implausible: int = 0  # `_persist` envelopes not believed (malformed, impossible jumps)
    unsequenced: int = 0  # messages without a believed envelope: their loss is undetectable
    not_subscribed: int = 0  # sent by publishers before we subscribed (first seen past seq 1)
    not_subscribed_publishers: int = 0
    unconfirmed: int = 0  # publishers gone silent with messages no heartbeat confirmed
    secrets: int = 0  # messages with a secret detected (named in meta.secrets)
    secrets_capped: int = 0  # messages larger than the scan cap: scanned in part
    secrets_unscanned: int = 0  # written while behind a flood: left to the readers to scan


@dataclass
class _Rate:
    last_time: float = 0.0
    last_received: int = 0
    last_written: int = 0
    received_per_s: float = 0.0
    written_per_s: float = 0.0


@dataclass
class _Overflow:
    """Messages received and dropped while the writer's backlog was over its budget."""

    from_ts: float
    to_ts: float
    dropped: int = 0


@dataclass
class _Snapshot:
    """Tracker state that matches a journal position (taken on the receiving thread)."""

    position: Position
    publishers: dict[str, int]
    first_ts: float | None
    last_ts: float | None
    participants: dict[str, int]  # since the checkpoint of seq `since` (0: none)
    since: int


@dataclass
class Recorder:
    options: RecorderOptions
    clock: Clock = time.time
    counters: Counters = field(default_factory=Counters)
    # The clock periodic work is scheduled on: it must not step when the wall clock is
    # set (`clock` stamps what is written). None: the system's monotonic clock with the
    # real `clock`, the injected `clock` itself otherwise (a test clock does not step
    # unless the test steps it; one that does passes a `monotonic` of its own).
    monotonic: Clock | None = None
    # what takes the words of pruned segments out of the search index before its
    # retention empties the trash (given by `persist record`; None: no index to tell)
    forget_words: maintenance.ForgetWords | None = None

    def __post_init__(self) -> None:
        self._mono: Clock = self.monotonic or (
            time.monotonic if self.clock is time.time else self.clock
        )
        # the status carries the monotonic stamp only when it is the system's, which
        # readers on this machine compare with theirs (`status.assess`)
        self._mono_shared = self._mono is time.monotonic
        self._clock_offset: float | None = None  # wall - monotonic, at the last look
        self.layout = Layout(self.options.log_dir)
        self.journal = Journal(
            self.layout, segment_bytes=self.options.segment_bytes, clock=self.clock
        )
        self.journal.sink.on_error = self.error
        self.journal.sink.on_recovered = self._disk_recovered
        self.journal.sink.sync_every_write = self.options.fsync == "always"
        rules = self.options.rules or (self.layout.rules if self.layout.rules.exists() else None)
        self.enricher = Enricher.load(rules)
        self.scanner = (
            SecretScanner(self.options.secret_scan_bytes) if self.options.secrets else None
        )
        self.tracker = GapTracker()
        self.tail_watch = TailWatch()
        self._tail_check_due = 0.0
        self.digests = DigestCache(self.layout)
        # line index caches of closed segments, and their compression
        self._busy_until = 0.0  # the clock's time until which background work waits
        self.warmer = IndexWarmer(
            self.layout,
            compress=self.options.compress,
            busy=self.busy,
            others_busy=other_work_gate(),
        )
        self.embedded_broker: str | None = None  # publisher endpoint of the broker we host
        self.links = Links(self.options.connects, self.options.bind, self.options.zmq_heartbeat_ms)
        self._late_publishers: set[str] = set()  # first seen past seq 1 (bounded below)
        self.state = RecorderState.STARTING
        self.last_error: ErrorNote | None = None
        self.receiver_error: str | None = None  # the receiving thread died of this
        # a stop no longer waits for room on a full disk: set by `persist stop --force`
        # (SIGUSR2), Ctrl-C twice, or past `--stop-wait`
        self.give_up = threading.Event()
        self.unwritten: LostLines | None = None  # what that stop could not write
        self._stop_waiting_since: float | None = None  # (monotonic)
        self._stop_began: float | None = None  # (monotonic) the stop's start (`begin_stop`)
        self._gave_up_at: float | None = None  # (monotonic) when the stop first saw give_up
        self._slow_drain_said = False
        # False once a stop went on without a receiver that did not end: what it hands
        # over after that is dropped (counted in `late`), never put under a closed journal
        self._taking = True
        self.late = 0  # messages a receiver handed over once the stop went on without it
        self.last_checkpoint: Checkpoint | None = None
        self._checkpointed = 0  # messages the last checkpoint counts (as this run does)
        self.process_started = process_start_time(os.getpid())
        self.process_start_key = process_start_key(os.getpid())
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self._participants: dict[str, int] = {}  # since the checkpoint of this seq:
        self._participants_since = 0  # (0: since the journal's start)
        self._topics: dict[bytes, tuple[str, bytes, bytes | None, bool]] = {}
        self._snapshot: _Snapshot | None = None
        # the last snapshot in a segment before the newest snapshot's (see `Floor`)
        self._floor: _Snapshot | None = None
        self._overflow: _Overflow | None = None
        self._snapshot_due = 0.0
        self._rate = _Rate()
        self._next_status = 0.0
        self._next_control = 0.0
        self.attention = threading.Event()  # wakes the main loop early (see `status_soon`)
        self._state_key: tuple[Any, ...] | None = None  # what the last recovery state said
        self._state_publishers: dict[str, int] = {}
        # why recovery/state.json cannot be written, until it is again (`write_state`)
        self._state_unwritable: str | None = None
        self._status_received = -1  # counters.received at the last status written
        # what status.json holds, and which file that is (see `write_status`)
        self._status_written: tuple[StatusSnapshot, StatusFile] | None = None
        self._status_unwritable = False  # status.json could not be written: said once
        self._status_mono: float | None = None  # the monotonic clock as it was written
        self._tick_received = -1  # ... at the main thread's last wake-up
        # checkpoint requests waiting for the message they name: name -> first seen
        self._waiting_requests: dict[str, float] = {}
        self._checkpoint_due = 0.0
        # Journal appends come from the receiving thread, and from the main thread only
        # for retention events (`maintenance`): one lock, taken once per batch.
        self._appending = threading.RLock()
        self._retention_due = 0.0

    # -- lifecycle -------------------------------------------------------------
    def open(self) -> None:
        """Open the journal, recover from the previous run and record the start."""
        ensure_private_dir(self.layout.root)
        problem = reserve_status_space(self.layout)  # while there is room (see its doc)
        if problem:
            log.warning(problem)
        problem = keep_room(self.layout)  # for retention's writes on a full disk
        if problem:
            log.info("%s", problem)
        self._caches_folder_aside()
        for sub in (self.layout.checkpoints, self.layout.control, self.layout.index):
            ensure_private_dir(sub)
        self._remove_stale_temp_files()
        now = self.clock()
        state = RecoveryState.read(self.layout)
        previous = read_status(self.layout)  # the last run's, before ours replaces it
        lost = previous.unwritten if previous and previous.state == RecorderState.STOPPED else None
        newest = newest_checkpoint(self.layout)  # read once, handed along
        last = self.journal.open(Named(newest, state, previous))
        if self.journal.lost is not None:
            self.counters.gaps += 1  # its `journal-lost` record is the journal's own
        recovered = recover(self.layout, state, last, newest)
        self.journal.messages = recovered.messages
        self.first_ts, self.last_ts = recovered.first_ts, recovered.last_ts
        self.tracker = recovered.tracker
        # counted again after a crash: they lived only here (and in the state)
        self._participants = recovered.participants
        self._participants_since = recovered.participants_since
        self.last_checkpoint = cp = newest
        # a checkpoint that counts messages a power cut took does not hold back the next
        self._checkpointed = min(cp.messages, recovered.messages) if cp else 0
        self.journal.append(
            {
                "ts": now,
                "kind": KIND_EVENT,
                "event": "start",
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "broker": self.options.broker,
                **({"brokers": list(self.options.connects)} if self.options.more_brokers else {}),
                **({"bind": list(self.options.bind)} if self.options.bind else {}),
                "fsync": self.options.fsync,
                "rules": self.enricher.source,
            }
        )
        if lost is not None:
            self._hole_record(
                {
                    "cause": "unwritten-at-stop",
                    # with what the gap records given up among them counted (the
                    # messages dropped over the backlog budget, say): in no record else
                    "missed": lost.total,
                    "from_ts": lost.first_ts,
                    "to_ts": lost.last_ts,
                    "detail": f"the previous recorder (PID {previous.pid if previous else '?'}) "
                    f"was stopped while its disk was full: {lost.sentence()}",
                },
                now,
            )
        if last is not None:
            clean = state is not None and state.clean
            # state.json unreadable: the last status says whether that stop was clean
            unknown = state is None and self.layout.state.exists()
            if unknown and previous is not None:
                clean = previous.state == RecorderState.STOPPED and lost is None
                unknown = False
            self._hole_record(
                {
                    "cause": "recorder-down",
                    # an offline retention event (`persist prune` with no recorder)
                    # came after the stop: the state says when the recorder was last up
                    "from_ts": state.updated
                    if state is not None and last.get("offline")
                    else last.get("ts"),
                    "to_ts": now,
                    "clean_stop": clean,
                    "detail": "the previous recorder stopped cleanly"
                    if clean
                    else "the previous recorder stopped without writing all it had received "
                    "(the unwritten-at-stop gap)"
                    if lost is not None
                    else "recovery/state.json could not be read, nor status.json say how the "
                    "previous recorder ended: a clean stop or not is not known"
                    if unknown
                    else "the previous recorder ended without a clean stop (crash or kill)",
                },
                now,
            )
        self.journal.flush()
        self.journal.sync()
        self.state = RecorderState.RECORDING
        mono = self._mono()
        self._checkpoint_due = mono + self.options.checkpoint_interval
        self._retention_due = mono + min(30.0, self.options.effective_retention_interval)
        self._take_snapshot()

    def _caches_folder_aside(self) -> None:
        """A file where the caches folder goes (derived, rebuilt from the journal) is
        moved into recovery/ rather than stopping the recorder from starting."""
        index = self.layout.index
        if index.is_dir() or not os.path.lexists(index):
            return
        ensure_private_dir(self.layout.recovery)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.clock()))
        aside = self.layout.recovery / f"{index.name}.{stamp}.not-a-folder"
        os.replace(index, aside)
        log.warning("%s was not a folder: moved to %s (caches are rebuilt)", index, aside)

    def _remove_stale_temp_files(self) -> None:
        """Temp files of atomic writes whose process died before the rename (a kill)."""
        layout = self.layout
        folders = (layout.root, layout.recovery, layout.checkpoints, layout.control, layout.index)
        for folder in folders:
            for path in remove_stale_temp_files(folder):
                log.info("removed %s, left by a process that ended before renaming it", path)

    def close(self) -> Position:
        """Drain, make durable, take the shutdown checkpoint and mark a clean stop."""
        now = self.clock()
        self.state = RecorderState.STOPPING
        self.warmer.stop()
        self._end_overflow(now)
        # a broker still out of reach: its outage ends here (the receiver has stopped);
        # publishers refused since the last record that named them: named now
        for head in self.links.stop(now):
            self.append_record(head, now)
            if head.get("event") == "publisher-refused":
                log.warning("%s", head["detail"])
        self.append_record({"kind": KIND_EVENT, "event": "stop", "pid": os.getpid()}, now)
        try:
            position = self.journal.close(self.give_up, self._waiting_for_room)
        except UnwrittenData as exc:
            # Not a clean stop: no shutdown checkpoint, no clean state. The status (in
            # its reserve) names what was lost; the next start records it as a gap.
            self.error(f"stopped without writing everything: {exc}")
            self.unwritten = exc.lost
            self.state = RecorderState.STOPPED
            self.write_status(self.clock())
            raise
        now = self.clock()  # the wait for room may have been long: the status is newer
        with contextlib.suppress(OSError):
            # only after new messages, as the periodic ones: a launcher that starts and
            # stops the recorder around each agent run left one of 0 messages each time
            self.checkpoint("shutdown", "shutdown", now)
        self.state = RecorderState.STOPPED
        self._take_snapshot()
        self.write_state(now, clean=True)
        self.write_status(now)
        return position

    def begin_stop(self) -> None:
        """The stop begins: the status says "stopping" from now on (see `draining`)."""
        self.state = RecorderState.STOPPING
        self._stop_began = time.monotonic()

    def draining(self) -> bool:
        """Called while a stop waits for the receiver to journal what it took in (after
        draining what zmq held; a large backlog of big messages can take it a while):
        the status is kept fresh, saying "stopping" and what waits (not taken for a
        stale recorder), and the log says once that the stop waits for it. False (the
        stop goes on without it) only once the stop gives up (`persist stop --force`,
        Ctrl-C twice, or `--stop-wait` seconds since the stop began) and the receiver
        has not ended within `ABANDON_WAIT` seconds more: a receiver that never ends
        would otherwise keep the recorder from stopping at all."""
        mono = time.monotonic()
        began = self._stop_began if self._stop_began is not None else mono
        self._stop_began = began
        wait = self.options.stop_wait
        if wait is not None and mono - began >= wait:
            self.give_up.set()
        if not self._slow_drain_said and mono - began >= RECEIVER_SLOW:
            self._slow_drain_said = True
            log.warning(
                "stopping: the receiver is still journaling what it took in "
                "(%d messages taken in, %d written so far; %s bytes wait)",
                self.counters.received,
                self.counters.written,
                f"{self.journal.held_bytes + self.backlog_bytes:,}",
            )
        if self.give_up.is_set():
            self._gave_up_at = self._gave_up_at if self._gave_up_at is not None else mono
            if mono - self._gave_up_at >= ABANDON_WAIT:
                return False
        self.write_status(self.clock())
        return True

    def stop_taking(self) -> bool:
        """The stop goes on without a receiver that did not end (`draining`): what it
        hands over from now on is dropped and counted (`late`), never appended while the
        journal closes. Waits for the batch it is in, for at most `ABANDON_WAIT` s; False
        when it is still in it (it holds the journal: see `abandon`)."""
        locked = self._appending.acquire(timeout=ABANDON_WAIT)
        self._taking = False
        if locked:
            self._appending.release()
        return locked

    def abandon(self) -> None:
        """The stop's last resort, when the receiver never let go of the journal
        (`stop_taking` False): the journal is closed as it is (what the receiver was
        adding to it is lost), with no stop record, shutdown checkpoint or clean state:
        the next start records the stop as not clean. The status says it stopped."""
        self.warmer.stop()
        with contextlib.suppress(UnwrittenData):
            self.journal.close(self.give_up, self._waiting_for_room)
        self.state = RecorderState.STOPPED
        self.write_status(self.clock())

    def _late(self, messages: list[list[bytes]]) -> int:
        self.counters.received += len(messages)
        self.late += len(messages)
        return 0

    def leave(self) -> None:
        """Another process holds the folder now (`LockLost`): what was received until now
        is written, nothing after it (the other recorder records it too), and no stop
        record, checkpoint, recovery state or status follows: each would be taken for
        the other recorder's. The caller then closes the journal."""
        with self._appending:
            self.journal.flush()
            self.journal.sink.put(("leave",))
        self.state = RecorderState.STOPPED
        self.warmer.stop()

    def _waiting_for_room(self) -> None:
        """A stop waits for room on a full disk: the status says so (`persist status`
        tells how to end it), refreshed as its heartbeat; past `--stop-wait` it gives
        up what it holds."""
        now, mono = self.clock(), self._mono()
        if self._stop_waiting_since is None:
            self._stop_waiting_since = mono
            log.warning("stopping: waiting for room on the disk to write what is held")
        wait = self.options.stop_wait
        if wait is not None and mono - self._stop_waiting_since >= wait:
            self.give_up.set()
        began = self._stop_began
        if wait is not None and began is not None and time.monotonic() - began >= wait:
            self.give_up.set()  # (the wait for the receiver counts too: systemd's limit)
        self.write_status(now)

    # -- the receiving thread ----------------------------------------------
    def record_batch(
        self, ts: float, messages: list[list[bytes]], *, behind: bool = False, more: bool = False
    ) -> int:
        """Journal messages (lists of frames) received at `ts`; returns how many.

        The lines go to the journal's sink as one chunk, or, when `more` says more
        messages are waiting, are held until `CHUNK_BYTES` of them gather (or
        `hand_over` is called). `behind` (the receiver keeps finding full batches
        waiting) skips keyword rules until it catches up.
        """
        with self._appending:
            if not self._taking:
                return self._late(messages)
            return self._record_batch(ts, messages, behind, more)

    def hand_over(self) -> None:
        """Hand the writer the lines `record_batch(more=True)` held (nothing more came)."""
        with self._appending:
            if self.journal.held_bytes and self._taking:
                self._hand_over()

    def _hand_over(self) -> None:
        self.journal.flush()
        if time.monotonic() >= self._snapshot_due:
            self._take_snapshot()

    def _record_batch(
        self, ts: float, messages: list[list[bytes]], behind: bool, more: bool
    ) -> int:
        if self._overflow is not None:
            self._end_overflow(ts)
        self.counters.received += len(messages)
        if len(messages) >= BUSY_BATCH:
            self._busy_until = ts + QUIET_AFTER
        if behind:
            self.counters.partial += len(messages)
        written = self._write_messages(ts, messages, scan=not behind)
        if written:
            if self.first_ts is None:
                self.first_ts = ts
            self.last_ts = ts
        self.counters.written += written
        if not more or self.journal.held_bytes >= CHUNK_BYTES:
            self._hand_over()
        return written

    def busy(self) -> bool:
        """Whether a flood is coming in (a large batch less than QUIET_AFTER s ago, by
        the recorder's clock; a clock set back cannot make it wait longer)."""
        return 0.0 < self._busy_until - self.clock() <= QUIET_AFTER

    def append_record(self, head: dict[str, Any], ts: float) -> None:
        """Journal a non-message record (event, gap) right away (any thread)."""
        with self._appending:
            if head.get("kind") == KIND_GAP:
                self._hole_record(head, ts)
            else:
                self.journal.append({**head, "ts": ts})
            self.journal.flush()

    def append_record_written(self, head: dict[str, Any], ts: float) -> None:
        """`append_record`, then wait until the writer has written it (to the kernel):
        the record of a retention change, which is made, or answered as journaled, only
        after. OSError when it is not written within `RECORD_WAIT` (a full or stalled
        disk): the change is then left as it is (a prune stays interrupted, a request
        gets an error) rather than done without its record."""
        with self._appending:
            self.journal.append({**head, "ts": ts})
            pos = self.journal.flush()
        self._wait_written(pos, RECORD_WAIT, "the record of this change")

    def journal_ready(self, timeout: float = JOURNAL_READY_WAIT) -> None:
        """Before a prune moves anything: MaintenanceError when its record could not be
        journaled now: after `timeout` seconds more of retries (the room retention gave
        back may be all it needed) the writer fails (a full disk) and is still behind."""
        sink = self.journal.sink

        def caught_up() -> bool:  # (between two batches a stalled writer is not stalled)
            return sink.stalled is None and sink.pending_bytes < JOURNAL_READY_BACKLOG

        deadline = time.monotonic() + timeout
        seen = sink.stalled
        while not caught_up() and time.monotonic() < deadline:
            seen = seen or sink.stalled
            time.sleep(0.02)
        stalled = sink.stalled or seen
        if not caught_up() and stalled is not None:
            raise maintenance.MaintenanceError(
                f"nothing was done: the recorder cannot write its journal ({stalled}; "
                f"{sink.pending_bytes:,} bytes wait in memory), so no prune could be "
                "journaled: free some space on that disk (the recorder then writes what "
                "waits) and run it again"
            )

    def _wait_written(self, pos: Position, timeout: float, what: str = "up to it") -> None:
        """Until the writer has written the journal up to `pos` (to the kernel); OSError
        after `timeout` seconds (a full or stalled disk)."""
        sink = self.journal.sink
        deadline = time.monotonic() + timeout
        while sink.written.seq < pos.seq:  # (a segment just begun holds none of it yet)
            if time.monotonic() >= deadline:
                why = f": {sink.stalled}" if sink.stalled else f" within {timeout:g} s"
                raise OSError(f"the journal did not write {what}{why}")
            time.sleep(0.005)

    @property
    def backlog_bytes(self) -> int:
        """Journal bytes handed to the writer and not yet written."""
        return self.journal.sink.pending_bytes

    @property
    def connection(self) -> Connection:
        """The worst link to a broker (see `Links.overall`)."""
        return self.links.overall()[0]

    @property
    def connection_since(self) -> float | None:
        return self.links.overall()[1]

    def on_connection(self, event: str, ts: float, detail: str = "") -> None:
        """Called by the transport (its thread) when a link goes up or down; `detail`
        names the endpoint. A broker back after an outage is a `broker-outage` gap."""
        heads = self.links.event(event, ts, detail, self.last_ts)
        for head in heads:
            self.append_record(head, ts)
        self.status_soon()
        if heads:  # not each refused or failed try's end: a link that was never up
            log.info("%s: %s", detail or self.options.broker, event)

    def _write_messages(self, ts: float, messages: list[list[bytes]], scan: bool) -> int:
        """The hot path; returns how many messages it wrote (refused ones excluded).

        Two-frame messages with a one-line JSON payload (what agents send) are
        formatted straight into a line; every other shape goes through the general
        `encode_frames`, which produces the same bytes for them. A payload long
        enough to be nested too deep for its line (`DEEP_BYTES`) is parsed with
        that nesting added, and goes to `encode_frames` (as text) when it fails;
        one whose `text` is most of it is proven shallow by that (`fits_by_text`)
        and parsed once, until a payload of the batch is not.
        """
        journal = self.journal
        classify = self.enricher.classify
        expected = self.tracker.expected
        limit = self.options.max_message_bytes
        most = self.options.max_frames
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        deep, splice, by_text = DEEP_BYTES, splice_value, True
        ts_text = b"%.6f" % ts
        line_heads: dict[bytes, tuple[str, bytes, bool]] = {}  # per topic, this batch
        # One search for line breaks over the whole batch instead of one per message.
        lasts = [frames[-1] for frames in messages]
        payloads = b"".join(lasts)
        one_line = b"\n" not in payloads and b"\r" not in payloads
        # Behind a flood the secret scan waits for the readers, as keyword rules do:
        # those records say `"partial": true` (or `"secrets_unscanned": true` when there
        # are no keyword rules to say it) and every reader scans them.
        scanner = self.scanner if scan else None
        unscanned = self.scanner is not None and not scan
        mark = unscanned and not self.enricher.has_keyword_rules
        cap = scanner.cap if scanner is not None else 0
        suspects = self._secret_suspects(messages, lasts, payloads) if scanner is not None else ()
        del payloads, lasts
        skipped = unsequenced = run = 0
        last_who = ""
        # Lines go straight into the journal's chunk (a call per line was about 950
        # of 33,000 instructions a message). Whatever else appends (gap and heartbeat
        # records, a refusal) may start a new chunk, so the chunk is asked for again
        # after each such call.
        buf, full = journal.chunk()
        for frames in messages:
            if len(frames) == 2:
                topic_bytes, payload = frames
                n = len(payload)
                size = len(topic_bytes) + n
            else:
                topic_bytes = frames[0] if len(frames) > 1 else b""
                payload = frames[-1]
                n = len(payload)
                size = sum(map(len, frames))
                if len(frames) > most:  # (`--max-frames` is at least 2)
                    self._refuse(ts, frames, size)
                    buf, full = journal.chunk()
                    skipped += 1
                    continue
            if size > limit:
                self._refuse(ts, frames, size)
                buf, full = journal.chunk()
                skipped += 1
                continue
            entry = line_heads.get(topic_bytes)
            if entry is None:
                entry = line_heads[topic_bytes] = self._line_head(topic_bytes, ts_text)
            topic, line_head, topic_suspect = entry
            if topic == HEARTBEAT_TOPIC:
                beat = self._heartbeat(ts, frames, size)
                buf, full = journal.chunk()
                if beat:
                    skipped += 1
                    continue  # a well-formed heartbeat; anything else on its topic is a message
            encoded = None
            if (
                len(frames) == 2
                and line_head
                and payload[:1] in _JSON_OPENERS
                and (one_line or (b"\n" not in payload and b"\r" not in payload))
            ):
                try:
                    if n < deep:
                        obj = loads(payload)
                    elif by_text:  # one parse, its depth bounded by its text
                        obj = loads(payload)
                        if not fits_by_text(n, obj):
                            by_text = False  # this batch's others: `splice` at once
                            obj = splice(payload)
                    else:
                        obj = splice(payload)
                except decode_error:
                    encoded = encode_frames(frames)
                    obj = encoded.payload
            else:
                encoded = encode_frames(frames)
                obj = encoded.payload
            meta, sender = classify(topic, obj, payload, scan)
            if type(obj) is dict and "_persist" in obj:
                env = obj["_persist"]
                try:  # a known publisher's next message, which `_track` would only count
                    pub, pub_seq = env["pub"], env["seq"]
                    in_order = (
                        expected[pub] == pub_seq and type(pub_seq) is int and "replay_of" not in env
                    )
                except (KeyError, TypeError):  # a new publisher, or not an envelope
                    in_order = False
                if in_order:
                    expected[pub] = pub_seq + 1
                else:
                    meta = self._track(obj, topic, ts, meta)
                    buf, full = journal.chunk()
            elif encoded is not None and (env_head := envelope_in_head(payload)) is not None:
                # JSON our parser refused, kept as text (an escaped lone surrogate, as
                # JavaScript writes a string cut inside an emoji): its envelope still
                # counts, or its sequence number would be a false "1 message lost"
                meta = self._track({ENVELOPE_KEY: env_head}, topic, ts, meta)
                buf, full = journal.chunk()
            else:
                unsequenced += 1
            if mark:
                meta = meta[:-1] + b',"secrets_unscanned":true}'
            elif scanner is not None:
                if topic_suspect or len(frames) > 2 or id(frames) in suspects:
                    meta = self._secrets_meta(frames, meta)
                elif size > cap:  # its first `cap` bytes passed the batch prefilter
                    self.counters.secrets_capped += 1
                    meta = meta[:-1] + b',"secrets_capped":true}'
                else:  # all of it passed the prefilter, which never misses a secret
                    meta = meta[:-1] + _SCANNED_CLEAN
            seq = journal.next_seq
            journal.next_seq = seq + 1
            # counted before the line is handed over: a segment rotation after it
            # hands the sink a position whose message count must include this batch's
            # messages so far (a checkpoint taken there counted too few otherwise)
            journal.messages += 1
            if encoded is None:
                head = line_head % (seq, size, meta, -4 - n, n)
                buf += head
                buf += payload
                buf += _MSG_END
            else:
                record = {
                    "v": SCHEMA_VERSION,
                    "seq": seq,
                    "ts": round(ts, 6),
                    "kind": KIND_MESSAGE,
                    "topic": topic,
                    "size": size,
                    "meta": orjson.Fragment(meta),
                }
                buf += encode_record(record, encoded)
            if len(buf) >= full:
                journal.rotate_if_full()
                buf, full = journal.chunk()
            who = sender or topic[:MAX_KEY_CHARS]
            if who == last_who:  # counted per run of one sender: a compare, not three lookups
                run += 1
            else:
                if run:
                    self._count_participant(last_who, run)
                last_who, run = who, 1
        if run:
            self._count_participant(last_who, run)
        written = len(messages) - skipped
        self.counters.unsequenced += unsequenced
        if unscanned:
            self.counters.secrets_unscanned += written
        return written

    def _count_participant(self, who: str, n: int) -> None:
        """`n` more messages from `who` (or from others, once MAX_PARTICIPANTS are known)."""
        count_participant(self._participants, who, n)

    def _secret_suspects(
        self, messages: list[list[bytes]], lasts: list[bytes], joined: bytes
    ) -> set[int]:
        """ids of the messages (frame lists) whose last frame a secret prefilter hits.

        One set of prefilter passes over the whole batch (the joined last frames);
        a frame over the scan cap takes part with its first `cap` bytes only.
        """
        assert self.scanner is not None
        cap = self.scanner.cap
        if len(joined) > cap and max(map(len, lasts)) > cap:
            lasts = [p[:cap] for p in lasts]
            joined = b"".join(lasts)
        return {id(messages[i]) for i in self.scanner.candidates(joined, map(len, lasts))}

    def _secrets_meta(self, frames: list[bytes], meta: bytes) -> bytes:
        """`meta` with the secrets found in `frames` (kinds and spans) added."""
        assert self.scanner is not None
        result = scan_frames(frames, self.scanner.cap)
        if result.spans:
            self.counters.secrets += 1
        if result.capped:
            self.counters.secrets_capped += 1
        extra = meta_field(result) or _SCANNED_CLEAN[:-1]
        return meta[:-1] + extra + b"}"

    def _heartbeat(self, ts: float, frames: list[bytes], size: int) -> bool:
        """A publisher heartbeat: kept like any message, under its own kind.

        False (nothing written) when the payload is not a well-formed heartbeat: a
        foreign message on the topic is recorded and counted as a message.
        """
        if len(frames) != 2:
            return False
        encoded = encode_frames(frames)
        env = read_heartbeat(encoded.payload)
        if env is None:
            return False
        before = self.tracker.implausible
        hole = self.tracker.heartbeat(env["pub"], env["seq"])
        believed = self.tracker.implausible == before
        self.counters.implausible += self.tracker.implausible - before
        if hole is not None:
            self._publisher_hole(hole, ts, env.get("agent"))
        if believed:
            self.tail_watch.beat(env["pub"], env["seq"], env.get("agent"))
        self.journal.append(
            {"ts": ts, "kind": KIND_HEARTBEAT, "topic": HEARTBEAT_TOPIC, "size": size}, encoded
        )
        self.counters.heartbeats += 1
        return True

    def _line_head(self, topic_bytes: bytes, ts_text: bytes) -> tuple[str, bytes, bool]:
        """(topic, what its messages' lines start with at this receive time, up to
        their payload, as a format of (seq, size, meta, span start, span length),
        or b"" when the fast path may not be used, whether it may hold a secret)."""
        entry = self._topics.get(topic_bytes)
        if entry is None:
            entry = self._topic_entry(topic_bytes)
        topic, topic_json, piece, suspect = entry
        if piece is None:
            return topic, b"", suspect
        head = _MSG_PREFIX % (ts_text, topic_json.replace(b"%", b"%%"), piece.replace(b"%", b"%%"))
        return topic, head, suspect

    def _topic_entry(self, topic_bytes: bytes) -> tuple[str, bytes, bytes | None, bool]:
        """(topic, topic as JSON, its frame encoding when the fast path may use it,
        whether it may hold a secret)."""
        try:
            topic = topic_bytes.decode("utf-8")
            plain = topic_bytes[:1] not in (b"{", b"[")
        except UnicodeDecodeError:
            topic = topic_bytes.decode("utf-8", "replace")
            plain = False
        topic_json = orjson.dumps(topic)
        piece = b'{"text":' + topic_json + b"}" if plain else None
        entry = (topic, topic_json, piece, maybe_secret(topic_bytes[:DEFAULT_SCAN_CAP]))
        if len(topic_bytes) <= MAX_KEY_CHARS:  # hostile megabyte topics are never kept
            if len(self._topics) > 4096:
                self._topics.clear()
            self._topics[topic_bytes] = entry
        return entry

    def on_connect_retry(self, ts: float, detail: str = "") -> None:
        """Called by the transport when a connection attempt failed (still connecting)."""
        self.links.retry(ts, detail)

    def on_handshake_failed(
        self, ts: float, detail: str, why: str, refused: Refused | None = None
    ) -> None:
        """Called by the transport when a handshake failed (a CURVE key the broker does
        not allow, say): journaled and logged once, until one succeeds or the reason
        changes, in `persist send`'s words; `persist status` says it too. A publisher
        refused at an endpoint we bind: `Links` says when (its key, rate-limited)."""
        heads = self.links.handshake_failed(ts, detail, why, refused)
        for head in heads:
            self.append_record(head, ts)
        if heads:
            self.status_soon()
        for head in heads:
            if head["event"] == "publisher-refused":
                log.warning("%s", head["detail"])
            else:
                log.warning("%s", refused_by(detail or self.options.broker or "", why))

    def drop_batch(self, ts: float, messages: list[list[bytes]]) -> None:
        """Messages received while the writer's backlog is over `max_backlog_bytes`.

        The transport keeps reading (a reader that stops makes libzmq stop its
        heartbeats and lose the connection, see `bus.receiver`), so beyond the budget
        messages are not kept. Their envelopes still move the publishers' expected
        sequences on, so the loss is one `recorder-backlog` gap, written when the
        backlog is back under the budget, rather than holes in every sequence.
        """
        self._busy_until = ts + QUIET_AFTER
        with self._appending:
            if not self._taking:
                self._late(messages)
                return
            self._drop_batch(ts, messages)

    def _drop_batch(self, ts: float, messages: list[list[bytes]]) -> None:
        ov = self._overflow
        if ov is None:
            ov = self._overflow = _Overflow(ts, ts)
            self.counters.backlog_pauses += 1
            self.error(
                f"the disk is behind by more than {self.options.max_backlog_bytes} bytes; "
                "messages are dropped (and written down as a gap) until it catches up"
            )
        ov.to_ts = ts
        tracker = self.tracker
        heartbeat_topic = HEARTBEAT_TOPIC.encode()
        for frames in messages:
            if len(frames) > 1 and frames[0] == heartbeat_topic:
                continue
            ov.dropped += 1
            payload = frames[-1]
            if b'"_persist"' not in payload:
                continue
            try:
                env = read_envelope(orjson.loads(payload))
            except orjson.JSONDecodeError:
                continue
            if env is None or "replay_of" in env or env.get("hb"):
                continue
            hole = tracker.message(env["pub"], env["seq"])
            if hole is not None:
                self._publisher_hole(hole, ts, env.get("agent"))

    def _end_overflow(self, ts: float) -> None:
        ov, self._overflow = self._overflow, None
        if ov is None:
            return
        self._hole_record(
            {
                "cause": "recorder-backlog",
                "from_ts": ov.from_ts,
                "to_ts": ov.to_ts,
                "missed": ov.dropped,
                "detail": f"the disk was behind by more than {self.options.max_backlog_bytes} "
                "bytes; messages received meanwhile were dropped",
            },
            ts,
        )
        self.journal.flush()

    def on_receiver_failed(self, message: str) -> None:
        """Called by the transport (its dying thread): nothing is received any more.

        An event record, `last_error` and the status's `receiver_error` say so, and
        `persist status` reports the recorder degraded instead of healthy."""
        now = self.clock()
        self.receiver_error = message
        self.error(f"the receiver stopped, nothing is being recorded: {message}")
        try:
            self.append_record(
                {"kind": KIND_EVENT, "event": "receiver-failed", "detail": message}, now
            )
        except Exception as exc:  # the status still says it
            log.error("cannot journal the receiver failure: %s", exc)
        self.write_status(now)

    def request_reopen(self) -> None:
        """SIGHUP: the sink reopens the active segment, in order with the writes."""
        self.journal.reopen()

    def _track(self, obj: dict[str, Any], topic: str, ts: float, meta: bytes) -> bytes:
        """Check the envelope's sequence; returns the meta (marked for a replay).

        A `_persist` key that is not a well-formed envelope, or a sequence jump too
        large to believe, changes nothing but the `implausible` count.
        """
        env = read_envelope(obj)
        if env is None:
            self.counters.implausible += 1
            self.counters.unsequenced += 1
            return meta
        if "replay_of" in env:
            try:
                return orjson.dumps({**orjson.loads(meta), "replay_of": env["replay_of"]})
            except TypeError:  # nested too deep to serialise: the payload still holds it
                return orjson.dumps({**orjson.loads(meta), "replay_of": _REPLAY_TOO_DEEP})
        before = self.tracker.implausible
        hole = self.tracker.message(env["pub"], env["seq"])
        self.counters.implausible += self.tracker.implausible - before
        if hole is not None:
            self._publisher_hole(hole, ts, env.get("agent"))
        return meta

    def _publisher_hole(self, hole: Hole, ts: float, agent: Any) -> None:
        if hole.cause == NOT_SUBSCRIBED:
            self._not_subscribed(hole, ts, agent)
            return
        self._hole_record(
            {
                "cause": hole.cause,
                "publisher": hole.publisher,
                "agent": agent if isinstance(agent, str) else None,
                "from_seq": hole.first,
                "to_seq": hole.last,
                "missed": hole.missed,
            },
            ts,
        )

    def _not_subscribed(self, hole: Hole, ts: float, agent: Any) -> None:
        """A publisher first seen past seq 1: what it sent before we subscribed.

        Written down like a gap (readers show it), but counted apart: it is not a
        loss of ours, and a recorder that starts after its publishers is normal."""
        self.journal.append(
            {
                "ts": ts,
                "kind": KIND_GAP,
                "cause": NOT_SUBSCRIBED,
                "publisher": hole.publisher,
                "agent": agent if isinstance(agent, str) else None,
                "from_seq": hole.first,
                "to_seq": hole.last,
                "missed": hole.missed,
                "detail": "sent before the recorder subscribed",
            }
        )
        self.counters.not_subscribed += hole.missed
        if len(self._late_publishers) < MAX_PARTICIPANTS:
            self._late_publishers.add(hole.publisher)
        self.counters.not_subscribed_publishers = len(self._late_publishers)
        log.info("%d messages from %s were sent before we subscribed", hole.missed, hole.publisher)

    def _silent_tails(self, now: float, mono: float) -> None:
        """A `publisher-silent` record for each publisher that fell silent with messages
        no heartbeat confirmed (`TailWatch`): whatever it sent after them is unknown.
        Not while nothing can be heard (a broker outage, the receiver dead, messages
        dropped on a full backlog): those have records of their own, and a publisher
        is only silent when it could have been heard. Silences are timed on the
        monotonic clock (`mono`); records are stamped `now`."""
        hearing = self.connection in (Connection.CONNECTED, Connection.LISTENING)
        with self._appending:
            if not hearing or self._overflow is not None or self.receiver_error is not None:
                self.tail_watch.deaf()
                return
            expected = self.tracker.expected
            tails = self.tail_watch.silent(expected, mono, self.options.unconfirmed_after)
            for tail in tails:
                self._silent_tail_record(tail, now)
            if tails:
                self.journal.flush()

    def _silent_tail_record(self, tail: SilentTail, ts: float) -> None:
        after = "no heartbeat" if not tail.confirmed else f"no heartbeat after seq {tail.confirmed}"
        self.journal.append(
            {
                "ts": ts,
                "kind": KIND_GAP,
                "cause": UNCONFIRMED_END,
                "publisher": tail.publisher,
                "agent": tail.agent,
                "last_seq": tail.last,
                "confirmed_seq": tail.confirmed,
                "detail": (
                    f"its messages up to seq {tail.last} arrived, then nothing for "
                    f"{tail.silent:.0f} s: {after} confirmed them, nor said goodbye; "
                    f"whatever it sent after seq {tail.last} did not arrive (a full queue "
                    "dropped it, or the publisher ended before its last heartbeat)"
                ),
            }
        )
        self.counters.unconfirmed += 1
        log.warning("publisher %s went silent after seq %d, unconfirmed", tail.publisher, tail.last)

    def _hole_record(self, fields: dict[str, Any], ts: float) -> None:
        head = _in_order({k: v for k, v in fields.items() if k not in ("kind", "ts")})
        self.journal.append({"ts": ts, "kind": KIND_GAP, **head})
        self.counters.gaps += 1
        self.counters.missed += int(head.get("missed") or 0)
        log.warning("gap recorded: %s", head)

    def _refuse(self, ts: float, frames: list[bytes], size: int) -> None:
        """A message over `--max-message-mb` or `--max-frames` that reached the core whole
        (the receiver refuses them before: `refuse`)."""
        o = self.options
        reason = over_limits(size, len(frames), o.max_message_bytes, o.max_frames)
        self._refused(ts, refusal_of(frames, reason or "over a limit"))

    def refuse(self, ts: float, refusal: Refusal, *, more: bool = False) -> None:
        """A message the receiver refused at `ts` (over `--max-message-mb` or
        `--max-frames`), hashed as it came: its `refused` record is journaled in order
        with the messages around it, also while the backlog is over its budget (a
        refusal is no loss). `more`: more messages are waiting (see `record_batch`)."""
        with self._appending:
            if not self._taking:
                self.counters.received += 1
                self.late += 1
                return
            self.counters.received += 1
            self._refused(ts, refusal)
            if not more or self.journal.held_bytes >= CHUNK_BYTES:
                self._hand_over()

    def _refused(self, ts: float, refusal: Refusal) -> None:
        topic = refusal.topic.decode("utf-8", "replace")
        record: dict[str, Any] = {
            "ts": ts,
            "kind": KIND_REFUSED,
            "topic": topic,
            "size": refusal.size,
            "frame_count": refusal.frame_count,
            "sha256": refusal.sha256,
            "head_b64": base64.b64encode(refusal.head[:SHOWN_BYTES]).decode(),
            "reason": refusal.reason,
        }
        if refusal.cut_short:  # its count and size are what came; no hash of a part
            del record["sha256"]
            record["cut_short"] = True
        if refusal.topic_cut:  # `topic` is its first 256 bytes
            record["topic_cut"] = True
        # its sequence number was sent: refused, not lost (nor "sent before we listened")
        whole = refusal.frame_count > 1 and not refusal.cut_short  # (head: its last frame)
        env = envelope_in_head(refusal.head) if whole else None
        if env is not None and "replay_of" not in env and not env.get("hb"):
            record["envelope"] = env
            before = self.tracker.implausible
            hole = self.tracker.message(env["pub"], env["seq"])  # a hole before it first
            self.counters.implausible += self.tracker.implausible - before
            if hole is not None:
                self._publisher_hole(hole, ts, env.get("agent"))
        self.journal.append(record)
        self.counters.refused += 1
        # its topic as a redacted copy shows it: recorder.log is read, copied and pasted
        log.warning(
            "refused a message on %r%s: %s",
            redacted_cut_text(refusal.topic, refusal.topic_cut),
            f" (its first {TOPIC_BYTES} bytes)" if refusal.topic_cut else "",
            refusal.reason,
        )

    def _take_snapshot(self) -> None:
        """Publisher sequences as of the end of the chunk just handed to the writer."""
        before, self._snapshot = (
            self._snapshot,
            _Snapshot(
                self.journal.handed,
                dict(self.tracker.expected),
                self.first_ts,
                self.last_ts,
                dict(self._participants),
                self._participants_since,
            ),
        )
        if before is not None and before.position.segment < self._snapshot.position.segment:
            self._floor = before  # its segment is closed: synced, even with --fsync never
        self._snapshot_due = time.monotonic() + self.options.status_interval

    # -- durability (syncer thread) -------------------------------------------
    def sync(self) -> Position:
        try:
            return self.journal.sync()
        except OSError as exc:
            self.error(f"fsync failed: {exc}")
            return self.journal.durable

    # -- periodic work (main thread) ------------------------------------------
    def poked(self) -> None:
        """Another process left a request in `control/` and said so (`wakeup`): look
        for it now."""
        self._next_control = 0.0
        self.attention.set()

    def sleep_for(self, *, poked: bool) -> float:
        """How long the main thread may sleep before its next `tick`: `TICK` while
        messages come in, or when requests are only found by looking (`poked` is
        False: no `control/wake`); otherwise until the next status is due, at most
        `IDLE_TICK`. An idle recorder then wakes every other second, not twice a
        second."""
        received = self.counters.received
        busy = received != self._tick_received
        self._tick_received = received
        if self._waiting_requests:
            return WAITING_TICK
        if busy or not poked:
            return TICK
        # a little past the status' time: a wait may end a hair early, and a wake-up
        # just before it would only sleep again
        return min(IDLE_TICK, max(0.0, self._next_status - self._mono()) + 0.01)

    def tick(self, now: float) -> None:
        """The periodic work, due by the monotonic clock (a wall clock set back an hour
        must not stop the heartbeat and checkpoints for an hour, nor one set forward run
        them all at once); what it writes is stamped `now`."""
        mono = self._mono()
        self._clock_stepped(now, mono)
        self.warmer.start(self.journal.written.segment)  # once per newly closed segment
        if self.tail_watch.confirmed and mono >= self._tail_check_due:
            self._tail_check_due = mono + TAIL_CHECK
            self._silent_tails(now, mono)
        for head in self.links.due(now):  # publishers refused in the last minute
            self.append_record(head, now)
            log.warning("%s", head["detail"])
        if mono >= self._next_control:
            self._next_control = mono + CONTROL_INTERVAL
            names = control_names(self.layout)
            self.handle_requests(now, names)
            self.handle_maintenance(now, names)
        if self.options.checkpoint_interval and mono >= self._checkpoint_due:
            self._checkpoint_due = mono + self.options.checkpoint_interval
            with contextlib.suppress(OSError):  # said in the status (`error`); next time
                self.checkpoint("", "periodic", now)
        if self.options.effective_retention.active and mono >= self._retention_due:
            self._retention_due = mono + self.options.effective_retention_interval
            self.retention_pass(now)
        if mono >= self._next_status:
            # Idle (nothing received since the last one): every other second. The
            # heartbeat only has to beat well within `STALE_AFTER`, and replacing the
            # file (a rename) is most of an idle recorder's CPU.
            received = self.counters.received
            idle = received == self._status_received
            self._status_received = received
            interval = self.options.status_interval
            self._next_status = mono + (2 * interval if idle else interval)
            self.journal.sink.put(("check",))  # the segment being written is still there
            self._snapshot_if_behind()
            self.write_state(now)
            self.write_status(now)

    def _clock_stepped(self, now: float, mono: float) -> None:
        """Journal and log a step of the wall clock (against the monotonic one) since
        the last tick: a reader then knows why the stamps after it jump (before
        2026-12-07 only recorder.log said so). The status is written whole at once,
        stamped with the new time."""
        offset = now - mono
        before, self._clock_offset = self._clock_offset, offset
        if before is not None and abs(offset - before) > CLOCK_STEP:
            step = offset - before
            way = "forward" if step > 0 else "back"
            said = f"the wall clock was set {way} by {abs(step):.1f} s"
            log.warning("%s", said)
            self.append_record(
                {
                    "kind": KIND_EVENT,
                    "event": "clock-step",
                    "step_s": round(step, 3),
                    # seen at the main thread's next look: records received between
                    # the step and this one are stamped on the new time already
                    "detail": f"{said} since the recorder's last look, seconds before this "
                    "record: the records stamped since then are on the new time",
                },
                now,
            )
            self._next_status = 0.0

    def _snapshot_if_behind(self) -> None:
        """Hand over what is held and take the snapshot the recovery state is written
        from, when the last one is behind: snapshots are taken as batches are handed
        over, at most one a `status_interval`, so the end of a burst that came within
        that of the last one stayed out of the state until the next message came."""
        with self._appending:
            snap = self._snapshot
            if self.journal.held_bytes:
                self.journal.flush()
            if snap is not None and snap.position != self.journal.handed:
                self._take_snapshot()

    def checkpoint(
        self, label: str, reason: str, now: float, *, force: bool = False
    ) -> Checkpoint | None:
        """Checkpoint at the last record received, once it is written; periodic ones only
        after new messages.

        Its participants are counted as lines are made, before the writer writes them:
        the position and the counts are taken together, with what was made handed over,
        and the checkpoint waits (`CHECKPOINT_WAIT`) until the writer has written up to
        it. Taken at what was written instead, a checkpoint in a steady flow counted a
        few messages that came after its position (and the next one missed them).
        OSError when the writer is not there in time (a full or slow disk): the counts
        go to the next checkpoint."""
        with self._appending:  # the counts and the position they end at, as one
            pos = self.journal.flush()
            if pos.segment == 0:
                return None
            if not force and pos.messages <= self._checkpointed:
                return None  # nothing new since the last checkpoint
            participants, self._participants = self._participants, {}
            since, self._participants_since = self._participants_since, pos.seq
        try:
            self._wait_written(pos, CHECKPOINT_WAIT)
            if pos.offset == 0:  # a segment begun, nothing handed to it: the last one's end
                pos = self.journal.written
            cp = write_checkpoint(
                self.layout,
                segment=pos.segment,
                offset=pos.offset,
                seq=pos.seq,
                messages=pos.messages,
                label=label,
                reason=reason,
                digests=self.digests,
                participants=participants,
                first_ts=self.first_ts,
                last_ts=self.last_ts,
                created=now,
                base=self.last_checkpoint,
            )
        except OSError as exc:
            self.error(f"checkpoint failed: {exc}")
            with self._appending:  # not taken: the next one counts them
                for who, n in participants.items():
                    self._count_participant(who, n)
                self._participants_since = since
            raise
        self.last_checkpoint, self._checkpointed = cp, cp.messages
        log.info("checkpoint %s (%s, %d messages)", cp.id, reason, cp.messages)
        for warning in self.digests.warnings:
            log.warning("%s", warning)
        self.digests.warnings.clear()
        return cp

    def handle_requests(self, now: float, names: list[str] | None = None) -> None:
        """On-demand checkpoints asked for by `persist checkpoint` (see `daemon.control`),
        among `names` (the tick's listing of control/) or a listing of its own.

        Every request gets a reply, a malformed one an error reply: a bad file in
        control/ must never stop the tick.
        """
        waiting: dict[str, float] = {}  # (first seen, on the monotonic clock)
        mono = self._mono()
        for path in pending_requests(self.layout, names):
            try:
                request = read_request(path)
                if request.after is not None and not self._received(request.after):
                    since = self._waiting_requests.get(path.name, mono)
                    if mono - since < AFTER_WAIT:
                        waiting[path.name] = since  # its message is still on its way
                        continue
                self.drain_wait()
                cp = self.checkpoint(request.label, "manual", now, force=True)
                reply = CheckpointReply.taken(cp)
            except (OSError, ValueError, ControlError) as exc:
                reply = CheckpointReply.failed(str(exc))
            answer_request(path, reply)
        self._waiting_requests = waiting
        if waiting:
            self._next_control = mono  # looked at again at the next tick, soon (`sleep_for`)

    def _received(self, after: tuple[str, int]) -> bool:
        """Whether message `seq` of publisher `pub` (or a later one) has been received."""
        pub, seq = after
        return self.tracker.expected.get(pub, 0) > seq

    def retention_pass(self, now: float) -> None:
        """Prune what the policy says (closed segments only), then empty trash entries
        past their grace; each change is an event record. Failures are logged (an
        interrupted prune's entry in the trash stops both until it is restored)."""

        def journal(event: dict[str, Any]) -> None:
            self.append_record_written(event, now)

        try:
            result = maintenance.recorder_prune(
                self.layout,
                self.options.effective_retention,
                "recorder",
                now,
                journal,
                self.journal_ready,
            )
            if result.trash is not None:
                names = [s["name"] for s in result.plan_json()["segments"]]
                log.info("pruned %s (trash %s)", ", ".join(names), result.trash)
            grace = self.options.effective_trash_grace
            done = maintenance.empty(
                self.layout, grace, now, journal, wait=0.0, forget=self.forget_words
            )
            for line in done.bundle_lines():
                log.info("%s", line)
            if done.unforgotten:  # as `persist trash empty` says it
                log.warning(
                    "the search index still holds words of the emptied messages (%s): "
                    "`persist reindex` rebuilds it without them",
                    done.unforgotten,
                )
        except Exception as exc:  # never the end of the recorder: tried next time, and
            # `persist status` shows it meanwhile (a policy that never runs fills the disk)
            self.error(f"{_RETENTION_SKIPPED}: {_failure(exc)}")
            return
        if self.error_over(_RETENTION_SKIPPED):  # a pass worked
            self.status_soon()

    def handle_maintenance(self, now: float, names: list[str] | None = None) -> None:
        """`persist prune` / `persist trash` asking the running recorder (see
        `daemon.maintenance`), among `names` or a listing of its own: every request
        gets a reply."""
        paths = requests_named(self.layout, MAINTENANCE_SUFFIX, names)
        if not paths:
            return  # none asked (an idle recorder's every look)
        for path in paths:
            try:
                request = maintenance.read_request(path)
                if request["kind"] == "event":
                    event = request.get("event")
                    if not isinstance(event, dict) or event.get("kind") != KIND_EVENT:
                        raise maintenance.MaintenanceError("the event is not an event record")
                    self.append_record_written(
                        {k: v for k, v in event.items() if k not in ("v", "seq", "ts")}, now
                    )
                    reply: dict[str, Any] = {"ok": True}
                else:
                    policy = maintenance.policy_from_json(request.get("policy"))
                    by = str(request.get("by") or "persist prune")
                    result = maintenance.recorder_prune(
                        self.layout,
                        policy,
                        by,
                        now,
                        lambda e: self.append_record_written(e, now),
                        self.journal_ready,
                    )
                    reply = {"ok": True, "plan": result.plan_json(), "trash": result.trash}
            except (OSError, ValueError, PersistError) as exc:
                reply = {"ok": False, "error": str(exc)}
            except Exception as exc:  # every request gets a reply; the recorder goes on
                log.exception("maintenance request %s failed", path.name)
                reply = {"ok": False, "error": _failure(exc)}
            maintenance.answer(path, reply)

    def drain_wait(self, timeout: float = 1.0) -> None:
        """Let the writer catch up with what was received (for a manual checkpoint),
        lines held for a fuller chunk included."""
        self.hand_over()
        self.journal.sink.wait_idle(timeout)

    def _disk_recovered(self) -> None:
        """The writer's thread: journal writes work again; the error is no longer current."""
        self.error_over("journal write failed", "cannot open ")
        log.info("journal writes resumed")

    def error_over(self, *kinds: str) -> bool:
        """The last error, when it begins with one of `kinds`, is no longer current:
        cleared. Whether it was."""
        if self.last_error is None or not self.last_error.message.startswith(kinds):
            return False
        self.last_error = None
        return True

    def error(self, message: str) -> None:
        self.last_error = ErrorNote(self.clock(), message)
        log.error(message)
        self.status_soon()

    def status_soon(self) -> None:
        """Something a reader must know (an error, a link lost): the main thread writes
        the status at its next wake-up, which this brings forward, instead of up to
        `status_interval` later."""
        self._next_status = 0.0
        self.attention.set()

    def write_state(self, now: float, *, clean: bool = False) -> None:
        """Save the recovery state, but only once its position is on disk: a state
        ahead of the journal would hide, after a power cut, the loss of what the
        journal did not keep."""
        snap = self._snapshot
        if snap is None:
            return
        pos = snap.position
        kept = self.journal.written if self.options.fsync == "never" else self.journal.durable
        if (pos.segment, pos.offset) > (kept.segment, kept.offset):
            return  # the next tick, after the next group commit

        # with --fsync never the state names what was written, which a power cut can
        # take: the last snapshot in a closed segment (synced as it closed) goes with it
        floor = None
        under, durable = self._floor, self.journal.durable
        if self.options.fsync == "never" and under is not None:
            at = under.position
            if (at.segment, at.offset) <= (durable.segment, durable.offset):
                point = JournalPoint(at.segment, at.offset, at.seq, at.messages)
                floor = Floor(point, under.last_ts, under.since, under.participants)
        key = (pos, clean, durable.seq, snap.first_ts, snap.last_ts, floor and floor.position)
        if (
            key == self._state_key
            and snap.publishers == self._state_publishers
            and self.layout.state.exists()  # not removed from outside (an rm -rf)
        ):
            return  # nothing new (idle): two fsyncs a second saved
        state = RecoveryState(
            position=JournalPoint(pos.segment, pos.offset, pos.seq, pos.messages),
            updated=now,
            clean=clean,
            pid=os.getpid(),
            durable_seq=self.journal.durable.seq,
            first_ts=snap.first_ts,
            last_ts=snap.last_ts,
            publishers=snap.publishers,
            participants_since=snap.since,
            participants=snap.participants,
            floor=floor,
        )
        try:
            try:
                state.write(self.layout)
            except FileNotFoundError:  # recovery/ removed from outside: made again
                ensure_private_dir(self.layout.recovery)
                state.write(self.layout)
        except OSError as exc:
            self._state_failed(exc)
            return
        self._state_key, self._state_publishers = key, snap.publishers
        if self._state_unwritable is not None:
            self._state_unwritable = None
            log.info("the recovery state is written again (%s)", self.layout.state)
            self.error_over(STATE_FAILED)
            self.status_soon()

    def _state_failed(self, exc: OSError) -> None:
        """recovery/state.json cannot be written (no inode left, a read-only mount): said
        once (recorder.log, the status's last error, and `recovery_error`: degraded)
        and tried again at each status tick until it is. Each failure used to ask for
        the status at once, whose tick tried again: a busy loop, a third of a core and
        ~1,000 identical lines a second in recorder.log (before 2026-12-08)."""
        first = self._state_unwritable is None
        self._state_unwritable = f"{exc.strerror or exc} ({self.layout.state})"
        if first:
            self.error(f"{STATE_FAILED}: {exc}")

    def status(
        self, now: float, updated: float | None = None, mono: float | None = None
    ) -> StatusSnapshot:
        """The status at `now` (saying it was taken at `updated`, when given, and at
        `mono` on the monotonic clock)."""
        c = self.counters
        rate = self._rate
        clock = self._mono()  # rates over time that does not step
        elapsed = clock - rate.last_time
        if rate.last_time and elapsed > 0:
            rate.received_per_s = (c.received - rate.last_received) / elapsed
            rate.written_per_s = (c.written - rate.last_written) / elapsed
        rate.last_time, rate.last_received, rate.last_written = clock, c.received, c.written
        if mono is None and updated is None:
            mono = clock
        shared = mono if self._mono_shared else None
        durable = self.journal.durable
        cp = self.last_checkpoint
        return StatusSnapshot(
            v=SCHEMA_VERSION,
            program=Program.this(),
            pid=os.getpid(),
            process_started=self.process_started,
            process_start_key=self.process_start_key,
            updated=now if updated is None else updated,
            updated_monotonic=shared,
            log_dir=str(self.layout.root),
            broker=self.options.broker,
            embedded_broker=self.embedded_broker,
            bind_public=self.options.bind_public,
            curve=self.options.use_curve,
            keys=str(self.options.keys_folder.resolve()) if self.options.keys else None,
            state=self.state,
            connection=self.connection,
            connection_since=self.connection_since,
            counts=Counts(
                received=c.received,
                written=c.written,
                durable=durable.messages,
                messages_total=self.journal.written.messages,
                gaps=c.gaps,
                missed=c.missed,
                refused=c.refused,
                backlog_pauses=c.backlog_pauses,
                partial_enrichment=c.partial,
                secrets=c.secrets,
                secrets_capped=c.secrets_capped,
                secrets_unscanned=c.secrets_unscanned,
                heartbeats=c.heartbeats,
                implausible=c.implausible,
                unsequenced=c.unsequenced,
                not_subscribed=c.not_subscribed,
                not_subscribed_publishers=c.not_subscribed_publishers,
                unconfirmed=c.unconfirmed,
            ),
            rates=Rates(
                received_per_s=round(rate.received_per_s, 1),
                written_per_s=round(rate.written_per_s, 1),
            ),
            backlog_bytes=self.backlog_bytes,
            last_seq=self.journal.written.seq,
            last_durable_seq=durable.seq,
            last_fsync=self.journal.last_sync_time or None,
            segment=self.journal.written.segment_name,
            last_checkpoint=CheckpointRef(cp.id, cp.created, cp.label) if cp else None,
            last_error=self.last_error,
            fsync=self.options.fsync.value,
            fsync_interval_ms=int(self.options.fsync_interval * 1000),
            quarantined=tuple(str(q.path) for q in self.journal.quarantined),
            receiver_error=self.receiver_error,
            disk_error=self.journal.sink.stalled,
            recovery_error=self._state_unwritable,
            endpoints=self.links.states(),
            unwritten=self.unwritten,
        )

    def write_status(self, now: float) -> None:
        """Write the status. When nothing in it but its time would change (an idle
        recorder), status.json is only touched (`touch_status`); it is written whole
        again at least every `STATUS_REWRITE` seconds all the same, and at once when the
        wall clock was stepped since it was (readers take a touch's time, the file's
        mtime, as on the clock of the `updated` and `updated_monotonic` it holds)."""
        written = self._status_written
        self._status_written = None
        mono = self._mono()
        try:
            if written is not None and self._may_touch(written[0], now, mono):
                last, file = written
                status = self.status(now, updated=last.updated, mono=last.updated_monotonic)
                touched = touch_status(self.layout, now, file) if status == last else None
                if touched is not None:
                    self._status_written = (last, touched)
                    return
                status = status.stamped(now, mono if self._mono_shared else None)
            else:
                status = self.status(now, mono=mono)
            fell_back: list[str] = []
            written_to = status.write(self.layout, fell_back)
            self._say_status_place(fell_back)
            if written_to is not None:
                self._status_written, self._status_mono = (status, written_to), mono
        except OSError as exc:
            self.last_error = ErrorNote(now, f"cannot write status: {exc}")

    def _say_status_place(self, fell_back: list[str]) -> None:
        """Say once in recorder.log that status.json cannot be written (a folder in its
        place, a full disk) and the status goes to status.reserve, and once that it is
        written again; readers (`persist status`, `stop`, doctor) read the reserve."""
        if fell_back and not self._status_unwritable:
            in_the_way = os.path.isdir(self.layout.status)  # else a full disk, most likely
            log.warning(
                "cannot write %s (%s): the status goes to %s until it can; %s",
                self.layout.status,
                fell_back[0],
                self.layout.status_reserve.name,
                status_remedy(self.layout) if in_the_way else "free some space on its disk",
            )
        elif not fell_back and self._status_unwritable:
            log.info("%s is written again", self.layout.status)
        self._status_unwritable = bool(fell_back)

    def _may_touch(self, last: StatusSnapshot, now: float, mono: float) -> bool:
        """Whether the status written whole last (`last`) may be touched now: written
        less than `STATUS_REWRITE` ago, on a wall clock that has not stepped since."""
        if not 0.0 <= now - last.updated < STATUS_REWRITE:
            return False
        at = self._status_mono
        return at is not None and abs((now - mono) - (last.updated - at)) <= CLOCK_STEP
