"""The message bus: a ZeroMQ XSUB/XPUB proxy (libzmq's own, not a Python loop).

Publishers connect to the frontend (XSUB), subscribers to the backend (XPUB).
The broker keeps nothing; the recorder is an ordinary subscriber. Send limits
are raised well above zmq's default of 1000 so a briefly slow subscriber loses
nothing; beyond them zmq drops for that subscriber only, which the envelope's
sequence numbers make visible.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from typing import TYPE_CHECKING

import zmq

from recorder.bus.curve import serve, start_authenticator
from recorder.bus.endpoints import (
    DEFAULT_HWM,
    DEFAULT_PUBLISH,
    DEFAULT_SUBSCRIBE,
    bind_twice_problem,
    ipc_bind_problem,
    wants_ipv6,
)
from recorder.bus.keys import ServerKeys
from recorder.errors import BadOption, BusError

if TYPE_CHECKING:
    from zmq.auth.thread import ThreadAuthenticator


# seconds a stop waits for the proxy to take TERMINATE before ending its context
TERMINATE_WAIT = 0.25
BIND_FAILED = "cannot bind the broker"  # how a bind failure begins (the demo retries on it)


class Broker:
    def __init__(
        self,
        frontend: str = DEFAULT_PUBLISH,
        backend: str = DEFAULT_SUBSCRIBE,
        *,
        hwm: int = DEFAULT_HWM,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        curve: ServerKeys | None = None,  # both sides CURVE servers, allow-listed clients only
    ) -> None:
        self.frontend = frontend
        self.backend = backend
        self.hwm = hwm
        # Its own context: stopping the broker must never tear down sockets that
        # another part of the process (the recorder's receiver) still owns.
        self._own_context = context is None
        self.ctx = context or zmq.Context()
        self._control = f"inproc://persist-broker-{uuid.uuid4().hex}"
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.curve = curve
        self._auth: ThreadAuthenticator | None = None

    def _run(self) -> None:
        xsub = self.ctx.socket(zmq.XSUB)
        xpub = self.ctx.socket(zmq.XPUB)
        control = self.ctx.socket(zmq.PAIR)
        try:
            for sock in (xsub, xpub, control):
                sock.linger = 0
            xsub.rcvhwm = self.hwm
            if self.curve is not None:
                serve(xsub, self.curve)
                serve(xpub, self.curve)
            xpub.sndhwm = self.hwm
            xsub.ipv6 = wants_ipv6([self.frontend])
            xpub.ipv6 = wants_ipv6([self.backend])
            xsub.bind(self.frontend)
            xpub.bind(self.backend)
            control.bind(self._control)
            self.frontend = xsub.getsockopt_string(zmq.LAST_ENDPOINT)
            self.backend = xpub.getsockopt_string(zmq.LAST_ENDPOINT)
        except Exception as exc:  # any (a bad option value too): `start` must not wait forever
            self._error = exc
            self._ready.set()
            for sock in (xsub, xpub, control):
                sock.close()
            return
        self._ready.set()
        try:
            zmq.proxy_steerable(xsub, xpub, None, control)
        except zmq.ZMQError as exc:
            if exc.errno != zmq.ETERM:
                self._error = exc
        finally:
            for sock in (xsub, xpub, control):
                sock.close()

    def start(self) -> Broker:
        """Bind both endpoints and start proxying; raises if an endpoint is taken
        (`BusError`), or if the two are one (`BadOption`): the second bind would replace
        the first's ipc socket file, or fail as if another broker held it."""
        problem = bind_twice_problem(
            ("frontend", self.frontend),
            ("backend", self.backend),
            why="a broker needs one endpoint for publishers and another for subscribers",
        )
        if problem is not None:
            raise BadOption(problem)
        for endpoint in (self.frontend, self.backend):
            problem = ipc_bind_problem(endpoint)
            if problem is not None:
                raise BusError(f"{BIND_FAILED} on {endpoint}: {problem}")
        if self.curve is not None:
            self._auth = start_authenticator(self.ctx, self.curve)
        self._thread = threading.Thread(target=self._run, name="persist-broker", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._stop_auth()
            taken = isinstance(self._error, zmq.ZMQError) and self._error.errno == zmq.EADDRINUSE
            hint = "; is another broker running?" if taken else ""
            raise BusError(f"{BIND_FAILED} ({self._error}){hint}")
        return self

    def stop(self, timeout: float = TERMINATE_WAIT) -> None:
        """Stop the proxy and wait for its thread to close its own sockets.

        TERMINATE goes over the control socket, which stays open until the proxy
        thread has ended: closing it right after the send lost the command about one
        stop in five (libzmq 4.3.5, inproc PAIR; a linger does not help). If the
        proxy still runs `timeout` after it, terminating the broker's private
        context ends it (the proxy returns ETERM). That wait is short: a recorder
        stops its broker after reporting a clean stop, and `persist stop` (or an
        agent's SessionEnd hook) kills a recorder that lingers `STOPPED_GRACE` (2 s)
        after that; the 2 s wait this had was as long as that grace.
        """
        if self._thread is None:
            return
        cmd = self.ctx.socket(zmq.PAIR)
        cmd.linger = 0
        try:
            cmd.connect(self._control)
            with contextlib.suppress(zmq.ZMQError):
                cmd.send(b"TERMINATE")
            self._thread.join(timeout)
        finally:
            cmd.close()
        self._stop_auth()
        if self._own_context:
            self.ctx.term()  # returns once the proxy thread has closed its sockets
        self._thread.join()
        self._thread = None

    def _stop_auth(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
