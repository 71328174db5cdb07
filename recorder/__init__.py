"""agent-persist: the recorder, the journal and the tools around them.

`from recorder import PersistenceLauncher` is lazy: importing the package loads
neither zmq nor textual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recorder.launch.launcher import LaunchResult, PersistenceLauncher

__all__ = ["LaunchResult", "PersistenceLauncher"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from recorder.launch import launcher

        return getattr(launcher, name)
    raise AttributeError(f"module 'recorder' has no attribute {name!r}")
