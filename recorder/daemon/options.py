"""What a recorder can be told (`RecorderOptions`), and the argv that tells a recorder process.

`recorder_argv()` is the one place that turns options into a `persist record`
command line: `persist record --detach`, the launcher, the demo and the systemd
unit all start recorders with it, so a new option reaches all of them at once.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from recorder.bus.endpoints import (
    DEFAULT_PUBLISH,
    DEFAULT_SUBSCRIBE,
    bind_twice_problem,
    check_bind_endpoint,
    check_connect_endpoint,
    endpoint_free,
    reached,
    same_socket_key,
    wants_ipv6,
)
from recorder.bus.keys import curve_wanted, keys_folder
from recorder.bus.refusal import DEFAULT_MAX_FRAMES
from recorder.errors import BadOption
from recorder.store.journal import DEFAULT_SEGMENT_BYTES
from recorder.store.layout import Layout
from recorder.store.retention_config import DEFAULT_GRACE, DEFAULT_INTERVAL, Policy, load_config
from recorder.store.secrets import DEFAULT_SCAN_CAP

MIB = 1024 * 1024
MIN_SEGMENT_BYTES = 4096  # smaller segments would rotate on almost every line


class FsyncMode(StrEnum):
    INTERVAL = "interval"  # group commit every `fsync_interval`
    ALWAYS = "always"  # after every write batch
    NEVER = "never"  # leave it to the OS


class EmbeddedMode(StrEnum):
    """Whether the recorder hosts the broker itself."""

    AUTO = "auto"  # only when the default endpoint is free (nothing answers there)
    YES = "yes"
    NO = "no"


def _port(endpoint: str) -> str | None:
    """A tcp endpoint's port as written, None for any other endpoint."""
    if not endpoint.startswith("tcp://"):
        return None
    return str(int(endpoint.rsplit(":", 1)[1])) if endpoint[-1:] != "*" else "*"


@dataclass
class RecorderOptions:
    """Everything a recorder can be told. Units are in the names or comments."""

    log_dir: Path
    broker: str | None = DEFAULT_SUBSCRIBE  # the broker's XPUB endpoint; None: only `bind`
    more_brokers: tuple[str, ...] = ()  # further brokers followed (`--broker` repeated)
    bind: tuple[str, ...] = ()  # endpoints we listen on, for publishers that connect out
    bind_public: bool = False  # allow `bind` endpoints beyond loopback and ipc
    fsync: FsyncMode = FsyncMode.INTERVAL
    fsync_interval: float = 0.2  # seconds between group commits in "interval" mode
    segment_bytes: int = DEFAULT_SEGMENT_BYTES  # a segment is closed once it reaches this
    max_message_bytes: int = 16 * MIB  # larger messages become "refused" records
    max_frames: int = DEFAULT_MAX_FRAMES  # messages of more frames become "refused" records
    checkpoint_interval: float = 300.0  # seconds; 0 = no periodic checkpoints
    # A publisher that sent heartbeats, then this long neither a message nor a heartbeat
    # confirming its last ones, gets a `publisher-silent` record (`TailWatch`): twice the
    # 30 s between an idle `Publisher`'s heartbeats.
    unconfirmed_after: float = 60.0
    status_interval: float = 1.0  # seconds between status.json / state.json writes
    # Journal bytes waiting for the disk, in memory; beyond, received messages are
    # dropped (a `recorder-backlog` gap). 256 MiB is about 55 s at 10k msgs/s of 300 B.
    max_backlog_bytes: int = 256 * MIB
    # A stop waits this long for room on a full disk to write what is held, then gives
    # it up (counted, the next start records the gap); None: until there is room.
    stop_wait: float | None = None
    rcvhwm: int = 10_000  # messages zmq queues inside the recorder; beyond, the broker holds them
    zmq_heartbeat_ms: int = 1000  # ZMTP heartbeat interval; the timeout is 3x this
    rules: Path | None = None  # enrichment rules (default: <log_dir>/enrich.toml or built-in)
    embedded: EmbeddedMode = EmbeddedMode.NO  # host the broker (see `EmbeddedMode`)
    publish_endpoint: str = DEFAULT_PUBLISH  # where publishers connect to a broker we host
    search_index: bool = True  # `persist record` keeps the search index warm (an idle-priority
    # child process; the daemon itself never touches the index)
    monitor: bool = True  # `persist record` runs the session monitor's policy (an idle-priority
    # child process, `persist monitor --parent`; the daemon itself never reads agent sessions)
    compress: bool = True  # compress closed segments on the background indexing thread
    curve: bool | None = None  # `--curve` / `--no-curve`; None: on with keys + a public endpoint
    keys: Path | None = None  # CURVE keys folder (default `<log_dir>/keys`)
    secrets: bool = True  # detect secrets in messages (meta.secrets: kinds and spans)
    secret_scan_bytes: int = DEFAULT_SCAN_CAP  # bytes of one message scanned for secrets
    use_curve: bool = field(init=False, default=False)  # `curve` decided (see `curve_wanted`)
    # Retention (off by default), as given on the command line (None: not given); an
    # option given wins over that key of `<log_dir>/retention.toml`. `recorder_argv`
    # passes these only: a recorder started with it (a unit, `--detach`) reads the
    # file itself when it starts, so an edit of the file reaches its next start.
    retention: Policy = field(default_factory=Policy)  # what may be pruned
    retention_interval: float | None = None  # seconds between passes (None: file, else 600)
    trash_grace: float | None = None  # seconds before the recorder empties a trash entry
    # What this recorder does: the options over the file over the defaults (`_merge_retention`).
    effective_retention: Policy = field(init=False, default_factory=Policy)
    effective_retention_interval: float = field(init=False, default=DEFAULT_INTERVAL)
    effective_trash_grace: float = field(init=False, default=DEFAULT_GRACE)

    def __post_init__(self) -> None:
        """Every option checked in one place; `BadOption` (a ValueError) names the
        command-line flag it comes from."""
        self.log_dir = Path(self.log_dir).expanduser()
        if self.log_dir.exists() and not self.log_dir.is_dir():
            raise BadOption(f"--log-dir {self.log_dir} exists and is not a folder")
        try:
            self.fsync = FsyncMode(self.fsync)
        except ValueError:
            modes = ", ".join(m.value for m in FsyncMode)
            raise BadOption(f"--fsync must be one of {modes}") from None
        try:
            self.embedded = EmbeddedMode(self.embedded)
        except ValueError:
            modes = ", ".join(m.value for m in EmbeddedMode)
            raise BadOption(f"--embedded must be one of {modes}") from None
        self._check_endpoints()
        if self.embedded is EmbeddedMode.NO:
            check_connect_endpoint(self.publish_endpoint, "--publish-endpoint")
        else:  # a broker we host listens there: private unless asked
            check_bind_endpoint(
                self.publish_endpoint, "--publish-endpoint", allow_public=self.bind_public
            )
        if self.embedded is EmbeddedMode.YES and self.broker is not None:
            # the hosted broker binds its subscriber side there: anyone who reaches it
            # reads every message (AUTO hosts one only on the loopback default)
            check_bind_endpoint(self.broker, "--broker", allow_public=self.bind_public)
        hosted = self.embedded is EmbeddedMode.YES or (
            self.embedded is EmbeddedMode.AUTO and self.broker == DEFAULT_SUBSCRIBE
        )
        if hosted and self.broker is not None:
            # its publishers' side bound where its subscribers' is: the second bind
            # replaced the first's ipc socket file (nothing sent reached anyone) or
            # failed as if another broker ran
            problem = bind_twice_problem(
                ("--publish-endpoint", self.publish_endpoint),
                ("--broker", self.broker),
                why="the embedded broker needs one endpoint for publishers "
                "(--publish-endpoint) and another for subscribers (--broker)",
            )
            if problem is not None:
                raise BadOption(problem)
        self._check_curve()
        # `not x > 0` rather than `x <= 0`: NaN is refused too.
        if not self.fsync_interval > 0:
            raise BadOption(
                f"--fsync-interval-ms must be above 0 (got {self.fsync_interval * 1000:g})"
            )
        if not self.segment_bytes >= MIN_SEGMENT_BYTES:
            raise BadOption(
                f"--segment-mb must be at least {MIN_SEGMENT_BYTES / MIB:.4f} "
                f"({MIN_SEGMENT_BYTES} bytes; got {self.segment_bytes} bytes)"
            )
        if not self.max_message_bytes > 0:
            raise BadOption(
                f"--max-message-mb must be above 0 (got {self.max_message_bytes} bytes)"
            )
        if not self.max_frames >= 2:
            raise BadOption(
                f"--max-frames must be at least 2: a topic and a payload (got {self.max_frames})"
            )
        if not self.unconfirmed_after > 0:
            raise BadOption(
                f"--unconfirmed-after must be a number of seconds above 0 "
                f"(got {self.unconfirmed_after:g})"
            )
        if not self.checkpoint_interval >= 0:
            raise BadOption(
                f"--checkpoint-interval must be 0 (off) or a number of seconds "
                f"(got {self.checkpoint_interval:g})"
            )
        self._merge_retention()
        self._check_rules()
        for name in (
            "status_interval",
            "max_backlog_bytes",
            "rcvhwm",
            "zmq_heartbeat_ms",
            "secret_scan_bytes",
        ):
            if not getattr(self, name) > 0:
                raise BadOption(f"{name} must be above 0")

    def _check_rules(self) -> None:
        """The enrichment rules load (BadOption names the file, rule and key): a bad
        file is a bad option, said before a background recorder is started."""
        from recorder.daemon.enrich import Enricher

        own = Layout(self.log_dir).rules
        path = Path(self.rules) if self.rules else own if own.exists() else None
        if path is not None:
            Enricher.load(path)

    def _merge_retention(self) -> None:
        """The retention in force (`effective_*`): each option given, else the file's
        key, else the default. The options themselves are left as given."""
        config = load_config(Layout(self.log_dir))  # BadOption names the file and key
        policy = self.retention
        self.effective_retention = Policy(
            policy.older_than if policy.older_than is not None else config.older_than,
            policy.max_size if policy.max_size is not None else config.max_size,
        )
        interval = self.retention_interval
        self.effective_retention_interval = (
            interval if interval is not None else config.interval or DEFAULT_INTERVAL
        )
        grace = self.trash_grace
        if grace is None:
            grace = config.trash_grace if config.trash_grace is not None else DEFAULT_GRACE
        self.effective_trash_grace = grace
        if not self.effective_retention_interval > 0:
            raise BadOption(
                f"--retention-interval must be above 0 (got {self.effective_retention_interval:g})"
            )

    def _check_endpoints(self) -> None:
        self.more_brokers = tuple(self.more_brokers)
        self.bind = tuple(self.bind)
        if self.broker is None and self.more_brokers:
            self.broker, self.more_brokers = self.more_brokers[0], self.more_brokers[1:]
        if self.broker is None and not self.bind:
            raise BadOption("nothing to record: give --broker ENDPOINT or --bind ENDPOINT")
        given = [
            *(("--broker", ep) for ep in self.connects),
            *(("--bind", ep) for ep in self.bind),
        ]
        seen: dict[str, str] = {}
        for option, endpoint in given:
            if option == "--bind":
                check_bind_endpoint(endpoint, option, allow_public=self.bind_public)
            else:
                check_connect_endpoint(endpoint, option)
            if endpoint in seen:
                twice = "twice" if seen[endpoint] == option else f"to {seen[endpoint]} and {option}"
                raise BadOption(f"{option} {endpoint} is given {twice}")
            seen[endpoint] = option
        # one broker under two spellings (localhost and 127.0.0.1, a symlink to an ipc
        # socket): every message would be journaled twice. Names are resolved as the
        # recorder's one socket will (its IPV6 option), and only where a port is shared.
        ipv6 = wants_ipv6(self.connects + self.bind)
        ports = [_port(ep) for _, ep in given]
        keys: dict[tuple[object, ...], tuple[str, str]] = {}
        for (option, endpoint), port in zip(given, ports, strict=True):
            key = same_socket_key(endpoint, ipv6, resolve=port is None or ports.count(port) > 1)
            if key in keys:
                first_option, first = keys[key]
                twice = "twice" if first_option == option else f"to {first_option} and {option}"
                raise BadOption(
                    f"{option} {endpoint} is given {twice}: {first_option} {first} under "
                    f"another spelling ({reached(key)})"
                    + ("; every message would be recorded twice" if option == "--broker" else "")
                )
            keys[key] = option, endpoint
        if self.embedded is EmbeddedMode.YES and self.broker is None:
            raise BadOption("--embedded yes needs a --broker (where the recorder subscribes)")

    @property
    def keys_folder(self) -> Path:
        return keys_folder(self.log_dir, self.keys)

    def _check_curve(self) -> None:
        hosted = () if self.embedded is EmbeddedMode.NO else (self.publish_endpoint,)
        endpoints = (*self.connects, *self.bind, *hosted)
        self.use_curve = curve_wanted(self.curve, self.keys_folder, endpoints)
        if self.use_curve and self.bind and self.connects:
            raise BadOption(
                "--curve with both --bind and --broker: one socket is either a CURVE server "
                "(--bind) or a client (--broker); run two recorders, or refuse it with --no-curve"
            )

    @property
    def connects(self) -> tuple[str, ...]:
        """Every broker endpoint the recorder connects to, the first one first."""
        return (self.broker, *self.more_brokers) if self.broker is not None else ()

    def describe_endpoints(self) -> str:
        """What the recorder follows, for people: "tcp://a, tcp://b, bound at ipc://c"."""
        parts = list(self.connects)
        parts += [f"bound at {ep}" for ep in self.bind]
        return ", ".join(parts)

    def embedded_broker(self) -> str | None:
        """The publisher endpoint of the broker to host, or None; probes the endpoint for AUTO."""
        if self.embedded is EmbeddedMode.YES:
            return self.publish_endpoint
        if (
            self.embedded is EmbeddedMode.AUTO
            and self.broker == DEFAULT_SUBSCRIBE
            and endpoint_free(self.broker)
        ):
            return self.publish_endpoint
        return None


def recorder_argv(
    options: RecorderOptions, *, python: str = sys.executable, extra: tuple[str, ...] = ()
) -> list[str]:
    """`python -m recorder.cli record ...` with every option that differs between callers.

    Retention is passed only as given (`options.retention`, not `effective_retention`):
    the started recorder reads `retention.toml` itself, so the file's values and the
    defaults are never written into a unit's ExecStart as options that would win over
    a later edit of the file. Sizes are given in MiB on the command line; bytes / 2**20
    is exact in a float, so every byte count survives the round trip.
    """
    flags = [
        *(("--broker", ep) for ep in options.connects),
        *(("--bind", ep) for ep in options.bind),
        ("--log-dir", str(options.log_dir.resolve())),
        ("--embedded", options.embedded.value),
        ("--publish-endpoint", options.publish_endpoint),
        ("--fsync", options.fsync.value),
        ("--fsync-interval-ms", f"{options.fsync_interval * 1000:g}"),
        ("--segment-mb", repr(options.segment_bytes / MIB)),
        ("--max-message-mb", repr(options.max_message_bytes / MIB)),
        ("--max-frames", str(options.max_frames)),
        ("--max-backlog-mb", repr(options.max_backlog_bytes / MIB)),
        ("--checkpoint-interval", repr(options.checkpoint_interval)),
        ("--unconfirmed-after", repr(options.unconfirmed_after)),
    ]
    if options.stop_wait is not None:
        flags.append(("--stop-wait", repr(options.stop_wait)))
    if options.rules:
        flags.append(("--rules", str(Path(options.rules).resolve())))
    if not options.search_index:
        flags.append(("--search-index", "off"))
    if not options.secrets:
        flags.append(("--secrets", "off"))
    if not options.compress:
        flags.append(("--compress", "off"))
    if options.retention.older_than is not None:
        flags.append(("--retention-older-than", f"{options.retention.older_than!r}s"))
    if options.retention.max_size is not None:
        flags.append(("--retention-max-size", f"{options.retention.max_size}B"))
    if options.retention_interval is not None:
        flags.append(("--retention-interval", f"{options.retention_interval!r}s"))
    if options.trash_grace is not None:
        flags.append(("--trash-grace", f"{options.trash_grace!r}s"))
    if not options.monitor:
        flags.append(("--monitor", "off"))
    argv = [python, "-m", "recorder.cli", "record"]
    for flag, value in flags:
        argv += [flag, value]
    if options.bind_public:
        argv.append("--bind-public")
    if options.curve is not None:
        argv.append("--curve" if options.curve else "--no-curve")
    if options.keys is not None:
        argv += ["--keys", str(Path(options.keys).expanduser().resolve())]
    return [*argv, *extra]
