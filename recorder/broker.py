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

import zmq

from .daemon import DEFAULT_HWM, DEFAULT_PUBLISH, DEFAULT_SUBSCRIBE


class Broker:
    def __init__(
        self,
        frontend: str = DEFAULT_PUBLISH,
        backend: str = DEFAULT_SUBSCRIBE,
        *,
        hwm: int = DEFAULT_HWM,
        context: zmq.Context | None = None,
    ) -> None:
        self.frontend = frontend
        self.backend = backend
        self.hwm = hwm
        self.ctx = context or zmq.Context.instance()
        self._control = f"inproc://persist-broker-{uuid.uuid4().hex}"
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        xsub = self.ctx.socket(zmq.XSUB)
        xpub = self.ctx.socket(zmq.XPUB)
        control = self.ctx.socket(zmq.PAIR)
        try:
            for sock in (xsub, xpub, control):
                sock.linger = 0
            xsub.rcvhwm = self.hwm
            xpub.sndhwm = self.hwm
            xsub.bind(self.frontend)
            xpub.bind(self.backend)
            control.bind(self._control)
            self.frontend = xsub.last_endpoint.decode()
            self.backend = xpub.last_endpoint.decode()
        except zmq.ZMQError as exc:
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
        """Bind both endpoints and start proxying; raises if an endpoint is taken."""
        self._thread = threading.Thread(target=self._run, name="persist-broker", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 1.0) -> None:
        if self._thread is None:
            return
        cmd = self.ctx.socket(zmq.PAIR)
        cmd.linger = 0
        try:
            cmd.connect(self._control)
            with contextlib.suppress(zmq.ZMQError):
                cmd.send(b"TERMINATE", zmq.NOBLOCK)
        finally:
            cmd.close()
        self._thread.join(timeout)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
