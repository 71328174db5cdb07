"""Claude Code's managed (policy) settings: whether they keep it from running our hooks.

Read only, as Claude Code 2.1.110 reads them on Linux (docs/hooks.md, "managed
settings"). Its policy is the first of these that holds any setting:

1. its remote managed settings, cached in `<config dir>/remote-settings.json`
   (`$CLAUDE_CONFIG_DIR` or ~/.claude). Claude Code reads the cache only for an account
   it fetches them for (Anthropic's API with an API key, or a Team or Enterprise
   login); we take a cache that holds settings as in effect.
2. (the macOS plist and the Windows registry: not on Linux)
3. `/etc/claude-code/managed-settings.json`, then the `*.json` files of
   `/etc/claude-code/managed-settings.d/` in name order (not those whose name starts
   with `.`), merged: a later file's value wins, lists are joined. Claude Code has no
   variable that moves that folder; `$PERSIST_CLAUDE_MANAGED_DIR` (ours, for tests)
   does, for us only.

The policy runs none of the user's hooks when its `disableAllHooks` is true (no hooks
at all), its `allowManagedHooksOnly` is true, or its `strictPluginOnlyCustomization`
is true or lists "hooks" (only managed and plugin hooks). Its `disableAllHooks`,
merged after the user's, project and local settings, also decides theirs: a managed
`false` overrides a user's `true`.

A missing file is normal. One that cannot be read, is not JSON or not an object, or
whose `disableAllHooks` / `allowManagedHooksOnly` is no boolean (Claude Code's schema
then refuses the whole file) is ignored by Claude Code; we say so in a warning naming
it. Its other keys are not checked: a file Claude Code refuses for one of them is
still read by us.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANAGED_DIR = Path("/etc/claude-code")  # Claude Code's `NW()` on Linux
MANAGED_DIR_ENV = "PERSIST_CLAUDE_MANAGED_DIR"  # ours: moves it for tests
REMOTE_CACHE = "remote-settings.json"
ADMIN = "(the administrator's policy)"

_BOOLEANS = ("disableAllHooks", "allowManagedHooksOnly")
_SURFACES = ("skills", "agents", "hooks", "mcp")  # strictPluginOnlyCustomization's


def managed_dir() -> Path:
    """The folder of Claude Code's managed settings files."""
    moved = os.environ.get(MANAGED_DIR_ENV)
    return Path(moved) if moved else MANAGED_DIR


@dataclass(frozen=True)
class ClaudeOff:
    """Why Claude Code runs none of our hooks."""

    file: Path  # the settings file that says so
    key: str
    managed: bool  # the administrator's (managed settings) or the user's own switch
    text: str


@dataclass
class Policy:
    """Claude Code's managed settings as far as hooks go."""

    remote: bool = False  # the remote settings' cache is the policy
    files: list[Path] = field(default_factory=list)  # those whose settings it is, in order
    # managed settings files Claude Code does not read because the remote cache is in effect
    passed_over: list[Path] = field(default_factory=list)
    # key -> (the file that set it last, its value)
    values: dict[str, tuple[Path, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def off(self) -> ClaudeOff | None:
        """The managed setting that keeps Claude Code from running any hook of ours."""
        where = "remote managed settings (cached in" if self.remote else "managed settings"
        close = ")" if self.remote else ""

        def said(key: str, what: str) -> ClaudeOff:
            file = self.values[key][0]
            text = f"{what} in Claude Code's {where} {file}{close}"
            return ClaudeOff(file, key, True, text)

        if self._true("disableAllHooks"):
            off = said("disableAllHooks", "disableAllHooks is true")
            return _with(off, f"it runs no hooks, ours included {ADMIN}")
        if self._true("allowManagedHooksOnly"):
            off = said("allowManagedHooksOnly", "allowManagedHooksOnly is true")
            return _with(off, f"it runs only the managed settings' hooks, none of ours {ADMIN}")
        strict = self.values.get("strictPluginOnlyCustomization")
        if strict is not None and (strict[1] is True or "hooks" in strict[1]):
            off = said("strictPluginOnlyCustomization", "strictPluginOnlyCustomization locks hooks")
            return _with(off, f"it runs only managed and plugin hooks, none of ours {ADMIN}")
        return None

    def holds(self, path: Path) -> bool:
        """Whether `path` is one of the files the policy is read from: Claude Code runs
        the hooks there whatever `allowManagedHooksOnly`, `strictPluginOnlyCustomization`
        or a user's `disableAllHooks` say; only the policy's `disableAllHooks` stops them."""
        return os.path.realpath(path) in {os.path.realpath(f) for f in self.files}

    def skips(self, path: Path) -> ClaudeOff | None:
        """Why Claude Code does not read `path`, a managed settings file, when the remote
        settings' cache is its policy instead (the first source holding any setting)."""
        if os.path.realpath(path) not in {os.path.realpath(f) for f in self.passed_over}:
            return None
        text = (
            f"Claude Code's managed settings are its remote ones (cached in {self.files[0]}), "
            f"so it does not read {path}: it runs none of its hooks"
        )
        return ClaudeOff(path, "", True, text)

    def overrides_user_switch(self) -> bool:
        """Whether the managed `disableAllHooks` is false: merged after the user's,
        project and local settings, it wins over their true."""
        value = self.values.get("disableAllHooks")
        return value is not None and value[1] is False

    def _true(self, key: str) -> bool:
        value = self.values.get(key)
        return value is not None and value[1] is True


def _with(off: ClaudeOff, consequence: str) -> ClaudeOff:
    return ClaudeOff(off.file, off.key, off.managed, f"{off.text}: {consequence}")


def read_policy() -> Policy:
    """Claude Code's managed settings, read as it reads them (see the module's text)."""
    from recorder.hooks.agents import Agent, config_root

    policy = Policy()
    remote = config_root(Agent.CLAUDE) / REMOTE_CACHE
    layer = _layer(remote, policy.warnings)
    folder = managed_dir()
    if layer:
        policy.remote = True
        _merge(policy, remote, layer)
        policy.passed_over = [folder / "managed-settings.json", *_drop_ins(folder, [])]
        return policy
    for file in [folder / "managed-settings.json", *_drop_ins(folder, policy.warnings)]:
        layer = _layer(file, policy.warnings)
        if layer:
            _merge(policy, file, layer)
    return policy


def _drop_ins(folder: Path, warnings: list[str]) -> list[Path]:
    """`managed-settings.d/*.json` as Claude Code lists them: files and symlinks (to
    anything), not named `.…`, in JavaScript's sort order (UTF-16 code units)."""
    drop = folder / "managed-settings.d"
    try:
        with os.scandir(drop) as entries:
            names = [
                e.name
                for e in entries
                if (e.is_file(follow_symlinks=False) or e.is_symlink())
                and e.name.endswith(".json")
                and not e.name.startswith(".")
            ]
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        warnings.append(
            f"{drop} cannot be listed ({exc.strerror}): whether Claude Code's managed "
            "settings there stop our hooks is not known"
        )
        return []
    names.sort(key=lambda n: n.encode("utf-16-be", "surrogatepass"))
    return [drop / n for n in names]


def _layer(path: Path, warnings: list[str]) -> dict[str, Any] | None:
    """One managed settings file's settings that matter to hooks (None: absent, empty
    or ignored by Claude Code, with a warning saying why)."""
    from recorder.hooks.settings import _parse, _read, _Unreadable

    try:
        raw = _read(path)
    except FileNotFoundError:
        return None  # no managed settings: the usual case
    except _Unreadable as exc:
        warnings.append(
            f"{path} {exc}: Claude Code ignores it unless it can read it; whether its "
            "managed settings stop our hooks is not known"
        )
        return None
    if not raw.strip():
        return None
    try:
        data = _parse(raw, finite=False)
    except RecursionError:  # json's own limit (about 1,000 levels)
        warnings.append(f"{path}: a value is nested too deep to be read; not read")
        return None
    except ValueError as exc:  # UnicodeDecodeError too
        warnings.append(f"{path} is not valid JSON ({exc}): Claude Code ignores it")
        return None
    if not isinstance(data, dict):
        warnings.append(f"{path} does not hold a JSON object: Claude Code ignores it")
        return None
    if not data:
        return None
    for key in _BOOLEANS:
        if key in data and not isinstance(data[key], bool):
            warnings.append(
                f"{path}: {key} is {data[key]!r}, not true or false: Claude Code's "
                "settings schema refuses it, and it ignores the whole file"
            )
            return None
    out = {k: data[k] for k in _BOOLEANS if k in data}
    strict = data.get("strictPluginOnlyCustomization")
    if isinstance(strict, list):  # unknown surfaces dropped, as Claude Code does
        out["strictPluginOnlyCustomization"] = [s for s in strict if s in _SURFACES]
    elif isinstance(strict, bool):
        out["strictPluginOnlyCustomization"] = strict
    # any other value: Claude Code's schema drops it (`.catch(void 0)`)
    return out or {"": None}  # settings, none of them about hooks


def _merge(policy: Policy, file: Path, layer: dict[str, Any]) -> None:
    """`layer` over what came before (lodash `mergeWith`: a later value wins, two
    lists are joined)."""
    policy.files.append(file)
    for key, value in layer.items():
        if not key:
            continue
        before = policy.values.get(key)
        if before is not None and isinstance(before[1], list) and isinstance(value, list):
            joined = list(dict.fromkeys([*before[1], *value]))
            # the file named is one whose list locks hooks, if any does
            file = file if "hooks" in value or "hooks" not in before[1] else before[0]
            policy.values[key] = (file, joined)
        else:
            policy.values[key] = (file, value)
