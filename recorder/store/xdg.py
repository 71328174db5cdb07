"""The XDG base folders (state, data, config) our defaults live under. Imports only `os`
and `pathlib`: the hooks reach it."""

from __future__ import annotations

import os
from pathlib import Path


def xdg_dir(var: str, default: str) -> Path:
    """`$var` when it is an absolute path, else `~/default`. A relative value is
    ignored, as the XDG spec says: taken from the current folder it put our files
    into whatever folder a command ran in (an agent's project, for a hook)."""
    value = os.environ.get(var, "")
    if os.path.isabs(value):
        return Path(value)
    return Path(os.path.expanduser("~")) / default


def state_home() -> Path:
    return xdg_dir("XDG_STATE_HOME", ".local/state")


def data_home() -> Path:
    return xdg_dir("XDG_DATA_HOME", ".local/share")


def config_home() -> Path:
    return xdg_dir("XDG_CONFIG_HOME", ".config")
