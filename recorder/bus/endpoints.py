"""The broker's default endpoints and queue limit, and probing an endpoint.

Pure Python: publishers, the CLI and the launcher read these without loading zmq."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

DEFAULT_PUBLISH = "tcp://127.0.0.1:5559"  # publishers connect here (broker XSUB)


DEFAULT_SUBSCRIBE = "tcp://127.0.0.1:5555"  # subscribers connect here (broker XPUB)


# Messages the broker may queue per subscriber (and per publisher): enough for a
# recorder to fall 3 s behind a 150k msgs/s flood and lose nothing. The memory is
# only used while a subscriber lags (up to ~150 MB per subscriber at 300 B).
DEFAULT_HWM = 500_000


def endpoint_free(endpoint: str) -> bool:
    """True if nothing listens on a tcp:// endpoint (ipc: true if no socket file)."""
    url = urlparse(endpoint)
    if url.scheme == "ipc":
        return not os.path.exists(endpoint[len("ipc://") :])
    if url.scheme != "tcp" or not url.port:
        return False
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((url.hostname or "127.0.0.1", url.port)) != 0
