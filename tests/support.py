"""Helpers for tests that drive real processes: a broker and recorders on loopback,
waiting, reading journals."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from recorder.bus.endpoints import bindable_port

PYTHON = sys.executable


# Ports for test brokers: below Linux's ephemeral range (32768-60999), where every
# outgoing connection takes its source port (a port picked with bind(0) and freed could
# be taken that way before the broker binds it), and a block of its own per xdist
# worker, so two workers never pick the same one. Each run starts at its own place in
# the block (by process id), so two test runs on one machine rarely walk the same ports.
_PORT_BLOCK = 2000
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_PORT_FIRST = 20000 + _PORT_BLOCK * (_WORKER % 6)
_PORT_START = _PORT_FIRST + os.getpid() * 7919 % _PORT_BLOCK
_next_port = itertools.cycle(
    [*range(_PORT_START, _PORT_FIRST + _PORT_BLOCK), *range(_PORT_FIRST, _PORT_START)]
)


def free_port() -> int:
    """A loopback TCP port nothing listens on now (see above)."""
    port = bindable_port(next(_next_port) for _ in range(_PORT_BLOCK))
    if port is not None:
        return port
    raise RuntimeError(f"no free port in {_PORT_FIRST}-{_PORT_FIRST + _PORT_BLOCK - 1}")


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


def read_status(log_dir: Path) -> dict:
    try:
        return orjson.loads((log_dir / "status.json").read_bytes())
    except (OSError, ValueError):
        return {}


def status_json(log_dir: Path) -> tuple[int, dict]:
    """`persist status --json` run as a program: its exit code and what it printed."""
    out = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "status", "--json", "--log-dir", str(log_dir)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return out.returncode, orjson.loads(out.stdout)


def journal_records(log_dir: Path) -> list[dict]:
    """Every line of every segment, parsed (fails the test on an invalid line)."""
    from recorder.store.layout import Layout, list_segments
    from recorder.store.segfile import open_segment

    out = []
    for path in list_segments(Layout(log_dir)):  # plain or compressed
        with open_segment(path) as seg:
            data = seg.read_strict(0, seg.size)
        for line in data.splitlines():
            out.append(orjson.loads(line))
    return out


class Proc:
    """A child process of ours, killed at the end of the test whatever happens."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.argv = argv
        self.log = log
        self._out = open(log, "ab")  # noqa: SIM115 - closed in kill()
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, sig)

    def wait(self, timeout: float = 10.0) -> int:
        """Its exit code; a recorder still running after `timeout` fails the test with
        every thread's stack (its faulthandler, on SIGUSR1) and the end of its output."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            if "record" not in self.argv:
                raise
        self.signal(signal.SIGUSR1)
        time.sleep(1.0)  # the dump is written by the process itself
        raise AssertionError(
            f"the recorder (PID {self.pid}) was still running {timeout:g} s later; "
            f"its stacks and output:\n{self.output()[-8000:]}"
        )

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(5)
        self._out.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Bus:
    def __init__(self, procs: Callable[..., Proc], tmp_path: Path) -> None:
        self.procs = procs
        self.front = f"tcp://127.0.0.1:{free_port()}"
        self.back = f"tcp://127.0.0.1:{free_port()}"
        self.log_dir = tmp_path / "logs"
        self.broker: Proc | None = None
        self.recorder: Proc | None = None

    def start_broker(self, *extra: str) -> Proc:
        self.broker = self.procs(
            "broker", "--frontend", self.front, "--backend", self.back, *extra, name="broker"
        )
        wait_for(lambda: _listening(self.back) and _listening(self.front), what="broker")
        return self.broker

    def start_recorder(self, *extra: str, wait: bool = True) -> Proc:
        self.recorder = self.procs(
            "record",
            "--broker",
            self.back,
            "--log-dir",
            str(self.log_dir),
            "--embedded",
            "no",
            *extra,
            name="recorder",
        )
        if wait:
            pid = self.recorder.pid
            wait_for(
                lambda: (
                    read_status(self.log_dir).get("pid") == pid
                    and read_status(self.log_dir).get("connection") == "connected"
                ),
                what="recorder connected",
            )
        return self.recorder


def _listening(endpoint: str) -> bool:
    port = int(endpoint.rsplit(":", 1)[1])
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


# A web server's answer to what libzmq sends first (its first byte, "H", reads as the
# length of a ZMTP 1.0 message that the next 72 bytes complete)
HTTP_400 = (
    b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n"
    b"date: Sun, 06 Dec 2026 23:54:09 GMT\r\n\r\n"
)


# One shorter than the 72 bytes libzmq waits for after its "H": no made-up subscription
SHORT_HTTP_400 = b"HTTP/1.1 400 Bad\r\n\r\n"


@contextlib.contextmanager
def not_zeromq(
    port: int | None = None, accepted: list[int] | None = None, reply: bytes = HTTP_400
) -> Iterator[str]:
    """The tcp:// endpoint of a server that is no ZeroMQ peer (on `port`, else a free
    one): it answers whatever comes with `reply` (an HTTP 400) and hangs up (libzmq takes
    the answer for an old ZMTP 1.0 peer's); with `reply` b"", it says nothing for 1.5 s
    (a web server waiting for a whole request line) and hangs up. `accepted[0]` counts
    its connections."""
    server = socket.create_server(("127.0.0.1", port or free_port()))
    server.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            if accepted is not None:
                accepted[0] += 1
            with conn, contextlib.suppress(OSError):
                conn.settimeout(2)
                conn.recv(4096)
                if reply:
                    conn.sendall(reply)
                else:
                    stop.wait(1.5)

    thread = threading.Thread(target=serve, name="not-zeromq", daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        server.close()


FAKE_AGENT = Path(__file__).with_name("fake_agent.py")


def fake_systemctl(
    bin_dir: Path, *, enabled: str = "enabled", active: str = "inactive", bus: bool = True
) -> Path:
    """A `systemctl` in `bin_dir` (put it first on PATH) for a user manager no machine
    running the tests has: `--user is-system-running` says running, `is-enabled` and
    `is-active` print `enabled` and `active`, each exiting as systemctl does. Without
    `bus`, every command fails as systemctl does with no user bus to reach (a container,
    WSL, SSH without lingering)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / "systemctl"
    if not bus:
        body = 'echo "Failed to connect to bus: No medium found" >&2\nexit 1\n'
    else:
        body = (
            'case "$2" in\n'
            "  is-system-running) echo running ;;\n"
            f"  is-enabled) echo {enabled}; [ {enabled} = enabled ] || exit 1 ;;\n"
            f"  is-active) echo {active}; [ {active} = active ] || exit 3 ;;\n"
            "  *) exit 1 ;;\n"
            "esac\n"
        )
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`persist ARGS...` as a program, no standard input, its output captured; one that
    waits (on a named pipe, say) fails the test after 60 s (TimeoutExpired)."""
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


# As root, without the capabilities that let it read anything (CAP_DAC_OVERRIDE,
# CAP_DAC_READ_SEARCH): the file modes apply to it as to any user.
DROP_READ_ANYTHING = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--")
NOBODY = 65534  # a user id no test runs as: what it owns another user's


def as_another_user(path: Path) -> None:
    """Make `path` (not what is below it) another user's (uid `NOBODY`), a folder 0700,
    a file 0600: what `run_cli_unprivileged` cannot read (root skips the test without
    setpriv)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        import pytest

        pytest.skip("needs root and setpriv to hand a file to another user")
    os.chown(path, NOBODY, NOBODY)
    path.chmod(0o700 if path.is_dir() else 0o600)


def run_cli_unprivileged(*args: str) -> subprocess.CompletedProcess[str]:
    """`run_cli`, as a user the file modes apply to (root without the capabilities that
    pass them by)."""
    return subprocess.run(
        [*DROP_READ_ANYTHING, sys.executable, "-m", "recorder.cli", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def python_child(script: str, *args: str) -> subprocess.Popen[str]:
    """`python -c script args...`, its stdin, stdout and stderr pipes of text."""
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def past_broker_death(bus: Bus, script: str, *args: str, ready: str) -> tuple[int, str, str]:
    """Run `script` (Python, `bus.front` and `args` its arguments) while `bus`'s broker
    runs and someone subscribes behind it; once it prints `ready` (a line), SIGKILL the
    broker, give the script's sockets half a second to see it, and tell the script to
    go on (a line on its stdin). Its exit code, the rest of its stdout, its stderr."""
    import signal

    import zmq

    broker = bus.start_broker()
    sub = zmq.Context.instance().socket(zmq.SUB)  # the recorder's place: someone hears
    sub.linger = 0
    sub.connect(bus.back)
    sub.subscribe(b"")
    child = python_child(script, bus.front, *args)
    assert child.stdout is not None and child.stdin is not None
    try:
        assert child.stdout.readline() == ready + "\n"
        broker.signal(signal.SIGKILL)
        broker.wait()
        time.sleep(0.5)  # the socket's disconnection seen by its monitor
        child.stdin.write("go\n")
        child.stdin.flush()
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
        child.wait()
        sub.close()
    return child.returncode, out, err


def endpoints() -> dict[str, str]:
    """A broker's two endpoints on free loopback ports."""
    return {
        "broker": f"tcp://127.0.0.1:{free_port()}",
        "publish_endpoint": f"tcp://127.0.0.1:{free_port()}",
    }


def healthy(log_dir: Path) -> bool:
    from recorder.store.layout import Layout
    from recorder.store.status import assess

    return assess(Layout(log_dir)).state == "healthy"


class Tmux:
    """One detached tmux session running a command, on a tmux server of its own (a
    socket named after it: a test never races another test's server starting or
    exiting, which once failed a `new-session` under a loaded parallel run); killed at
    the end."""

    def __init__(self, command: str, cwd: Path, *, width: int = 100, height: int = 30) -> None:
        self.name = f"persist-e2e-{uuid.uuid4().hex[:8]}"
        self.tmux = ["tmux", "-L", self.name]
        env = {**os.environ, "TERM": "xterm-256color"}
        subprocess.run(
            [
                *self.tmux,
                "new-session",
                "-d",
                "-s",
                self.name,
                "-x",
                str(width),
                "-y",
                str(height),
                "-c",
                str(cwd),
                command,
            ],
            check=True,
            env=env,
        )

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *keys], check=True)

    def screen(self) -> str:
        out = subprocess.run(
            [*self.tmux, "capture-pane", "-p", "-t", self.name], capture_output=True, text=True
        )
        return out.stdout

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared on screen:\n{screen}")

    def kill(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)
        socket = Path(os.environ.get("TMUX_TMPDIR", "/tmp"), f"tmux-{os.getuid()}", self.name)
        socket.unlink(missing_ok=True)  # the server leaves it behind


def markdown_tokens(markdown: str) -> list[Any]:
    """The block tokens a CommonMark renderer (markdown-it-py, with GFM tables) makes
    of `markdown`, each followed by its inline ones."""
    from markdown_it import MarkdownIt

    out = []
    for block in MarkdownIt("commonmark").enable("table").parse(markdown):
        out += [block, *(block.children or [])]
    return out


def markdown_markup(markdown: str) -> list[str]:
    """The raw HTML, links and images a renderer makes of `markdown` (`markdown_tokens`),
    but the `<sub>` around the transcripts' record numbers."""
    return [
        f"{t.type}: {t.content!r}"
        for t in markdown_tokens(markdown)
        if t.type in ("html_inline", "html_block", "link_open", "image")
        and t.content not in ("<sub>", "</sub>")
    ]
