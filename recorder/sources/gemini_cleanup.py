"""What Gemini CLI's startup cleanup deletes, read as Gemini CLI reads it.

When Gemini CLI starts in a project it deletes, from that project's `chats/`
(`packages/cli/src/utils/sessionCleanup.ts`, the same in @google/gemini-cli 0.61.0):

- every file its own listing takes for no session, whatever its age
  (`getAllSessionFiles` gives it `sessionInfo: null`: not parsable, no `sessionId`, no
  prompt or answer to resume, `kind: "subagent"`; see `gemini.AgentView`): "All
  corrupted files should be deleted";
- of the others, those whose `lastUpdated` is older than `maxAge`, and all but the
  `maxCount` newest (by `lastUpdated`);
- with each file it deletes, every other `session-…-<id8>.json[l]` of the same short id
  (a legacy `.json` and the `.jsonl` it was migrated to go together).

The policy is `general.sessionRetention` of the settings Gemini CLI merges (schema
defaults < system defaults < user < the project's `.gemini/settings.json`, only in a
trusted folder < system settings), each file read through strip-json-comments, `$VAR`
and `${VAR:-default}` expanded in its strings. The cleanup does not run when it is
disabled or its settings do not validate (`validateRetentionConfig`: a `maxAge` that
is not `<n>h|d|w|m` with n > 0 or is below `minRetention` (1d), a `maxCount` below 1,
neither of them set). A settings file Gemini CLI cannot read stops it from starting.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recorder.sources.jsonl import read_bytes
from recorder.sources.model import ReadReport, Session

_PERIOD = re.compile(r"\A([0-9]+)([dhwm])\Z")
_UNIT_SECONDS = {"h": 3600.0, "d": 86400.0, "w": 7 * 86400.0, "m": 30 * 86400.0}
DEFAULT_MIN_RETENTION = "1d"
# the schema's defaults since v0.33 (commit 06ddfa5c4c: 30 days, enabled)
DEFAULTS: dict[str, Any] = {
    "general": {"sessionRetention": {"enabled": True, "maxAge": "30d", "minRetention": "1d"}},
    "security": {"folderTrust": {"enabled": True}},
}
_SHORT_ID = re.compile(r"-([a-zA-Z0-9]{8})\.jsonl?\Z")
_ENV = re.compile(r"\$(?:([A-Za-z0-9_]+)|\{([^}]+?)(?::-([^}]*))?\})")
_JS_NUMBER = re.compile(r"\A[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
TRUST_LEVELS = ("TRUST_FOLDER", "TRUST_PARENT", "DO_NOT_TRUST")


def system_settings_path(env: Mapping[str, str]) -> Path:
    """`getSystemSettingsPath`."""
    if env.get("GEMINI_CLI_SYSTEM_SETTINGS_PATH"):
        return Path(env["GEMINI_CLI_SYSTEM_SETTINGS_PATH"])
    if sys.platform == "darwin":
        return Path("/Library/Application Support/GeminiCli/settings.json")
    if sys.platform == "win32":
        return Path("C:\\ProgramData\\gemini-cli\\settings.json")
    return Path("/etc/gemini-cli/settings.json")


def system_defaults_path(env: Mapping[str, str]) -> Path:
    """`getSystemDefaultsPath`."""
    if env.get("GEMINI_CLI_SYSTEM_DEFAULTS_PATH"):
        return Path(env["GEMINI_CLI_SYSTEM_DEFAULTS_PATH"])
    return system_settings_path(env).parent / "system-defaults.json"


def strip_json_comments(text: str) -> str:
    """`text` with its `//` and `/* */` comments made blanks (strip-json-comments: what
    is inside a string stays; line breaks inside a block comment are kept)."""
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        c = text[i]
        if in_string:
            if c == "\\":
                out.append(text[i : i + 2])
                i += 2
                continue
            if c == '"':
                in_string = False
            out.append(c)
            i += 1
        elif c == '"':
            in_string = True
            out.append(c)
            i += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            if end > i and text[end - 1] == "\r":
                end -= 1
            out.append(" " * (end - i))
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(re.sub(r"[^\r\n]", " ", text[i:end]))
            i = end
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _expand(value: Any, env: Mapping[str, str]) -> Any:
    """`resolveEnvVarsInObject`: `$VAR`, `${VAR}`, `${VAR:-default}` in every string
    (a variable that is not set, with no default, stays as written)."""
    if isinstance(value, str):

        def one(m: re.Match[str]) -> str:
            name = m.group(1) or m.group(2) or ""
            if name in env:
                return env[name]
            return m.group(3) if m.group(3) is not None else m.group(0)

        return _ENV.sub(one, value)
    if isinstance(value, list):
        return [_expand(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, env) for k, v in value.items()}
    return value


def read_settings(path: Path, env: Mapping[str, str]) -> tuple[dict[str, Any], str]:
    """A Gemini CLI settings file as it loads one: ({} , "") when there is none; ({},
    why) when it cannot be read, is not JSON (comments allowed) or not an object."""
    if not os.path.exists(path):  # fs.existsSync: a dangling link is no file
        return {}, ""
    report = ReadReport()
    data, _ = read_bytes(path, report, 16 << 20)
    if report.errors:
        return {}, report.unread or "not a regular file"
    try:
        text = data.decode("utf-8", "replace")
        value = json.loads(strip_json_comments(text), parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        return {}, f"not JSON: {exc}"
    if not isinstance(value, dict):
        return {}, "not a JSON object"
    return _expand(value, env), ""


def deep_merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """`customDeepMerge`: objects merged key by key, anything else replaced (a JSON
    null too), later layers winning."""
    out: dict[str, Any] = {}
    for layer in layers:
        _merge_into(out, layer)
    return out


def _merge_into(target: dict[str, Any], source: Mapping[str, Any]) -> None:
    for key, value in source.items():
        if key in ("__proto__", "constructor", "prototype"):
            continue
        if isinstance(value, dict):
            if not isinstance(target.get(key), dict):
                target[key] = {}
            _merge_into(target[key], value)
        else:
            target[key] = value


def _truthy(value: Any) -> bool:
    return True if isinstance(value, list | dict) else bool(value)


def js_number(value: Any) -> float:
    """JavaScript's `Number(value)` for a JSON value (NaN when it is none)."""
    if value is None:
        return 0.0
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0.0
        if _JS_NUMBER.match(text):
            return float(text)
        if re.fullmatch(r"[+-]?Infinity", text):
            return -math.inf if text.startswith("-") else math.inf
        for prefix, base in (("0x", 16), ("0o", 8), ("0b", 2)):
            if text.lower().startswith(prefix):
                try:
                    return float(int(text[2:], base))
                except ValueError:
                    return math.nan
        return math.nan
    if isinstance(value, list):
        return 0.0 if not value else js_number(value[0]) if len(value) == 1 else math.nan
    return math.nan


def parse_period(value: Any) -> float:
    """`parseRetentionPeriod` in seconds; ValueError with its message when it throws."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a period (`<n>h`, `d`, `w` or `m`)")
    m = _PERIOD.match(value)
    if not m:
        raise ValueError(f"{value!r} is not a period (`<n>h`, `d`, `w` or `m`)")
    if int(m.group(1)) == 0:
        raise ValueError(f"{value!r}: a period must be more than 0")
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


@dataclass(frozen=True)
class Policy:
    """The cleanup Gemini CLI runs at its start in one project."""

    max_age: float | None = None  # seconds after lastUpdated (None: no age limit)
    max_age_text: str = ""
    max_count: float | None = None  # the newest kept (None: no count limit)
    off: str = ""  # why it does not run ("" when it runs)
    invalid: bool = False  # `off` is a setting Gemini CLI refuses, not a choice
    source: str = ""  # the settings file the policy comes from ("" for the defaults)

    @classmethod
    def of(cls, merged: Mapping[str, Any], source: str = "") -> Policy:
        """`cleanupExpiredSessions`' checks on the merged settings."""
        general = merged.get("general")
        policy = general.get("sessionRetention") if isinstance(general, dict) else None
        if not isinstance(policy, dict) or not _truthy(policy.get("enabled")):
            return cls(off="general.sessionRetention.enabled is false", source=source)
        max_age: float | None = None
        text = policy.get("maxAge")
        if _truthy(text):
            try:
                max_age = parse_period(text)
            except ValueError as exc:
                return cls(off=f"maxAge {exc}", invalid=True, source=source)
            least = policy.get("minRetention") if _truthy(policy.get("minRetention")) else None
            try:
                floor = parse_period(least or DEFAULT_MIN_RETENTION)
            except ValueError:
                floor = parse_period(DEFAULT_MIN_RETENTION)
            if max_age < floor:
                shown = least if isinstance(least, str) else DEFAULT_MIN_RETENTION
                return cls(
                    off=f"maxAge {text!r} is less than minRetention {shown!r}",
                    invalid=True,
                    source=source,
                )
        count: float | None = None
        if "maxCount" in policy:
            count = js_number(policy["maxCount"])
            if count < 1:
                return cls(
                    off=f"maxCount {policy['maxCount']!r} is less than 1",
                    invalid=True,
                    source=source,
                )
            if math.isnan(count):
                count = None  # `i >= NaN` is never true: it keeps them all
        elif max_age is None:
            return cls(off="neither maxAge nor maxCount is set", invalid=True, source=source)
        return cls(max_age, str(text) if max_age else "", count, source=source)


NO_RULE = "no rule in "  # how `_trust`'s reason begins when Gemini CLI would ask


@dataclass
class GeminiSettings:
    """Gemini CLI's settings for each project: the global layers read once, a project's
    own `.gemini/settings.json` when Gemini CLI would take it (a trusted folder)."""

    root: Path  # the Gemini CLI folder (~/.gemini)
    env: Mapping[str, str]
    layers: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    _known: dict[str, Policy] = field(default_factory=dict)
    _trusted: dict[str, Any] | None = None
    _rules_problem: str = ""

    @classmethod
    def read(cls, root: Path, env: Mapping[str, str] | None = None) -> GeminiSettings:
        env = os.environ if env is None else env
        found = cls(root, env)
        for path in (
            system_defaults_path(env),
            root / "settings.json",
            system_settings_path(env),
        ):
            found.layers.append((path, found._read(path)))
        return found

    def _read(self, path: Path) -> dict[str, Any]:
        data, problem = read_settings(path, self.env)
        if problem:
            self._say(
                f"Gemini CLI's settings {path} cannot be read ({problem}): Gemini CLI "
                "does not start while it is so; its cleanup is shown as if that file "
                "set nothing"
            )
        return data

    def _say(self, problem: str) -> None:
        if problem not in self.problems:
            self.problems.append(problem)

    def policy(self, project: str) -> Policy:
        """The cleanup Gemini CLI runs when it starts in `project` ("" when unknown:
        the global settings only)."""
        if project not in self._known:
            self._known[project] = self._policy(project)
        return self._known[project]

    def _policy(self, project: str) -> Policy:
        (defaults_path, system_defaults), (user_path, user), (system_path, system) = self.layers
        layers: list[tuple[Path | None, dict[str, Any]]] = [
            (None, DEFAULTS),
            (defaults_path, system_defaults),
            (user_path, user),
        ]
        own = self._workspace(project)
        if own is not None:
            path, data = own
            if self._is_trusted(project, deep_merge(DEFAULTS, system_defaults, user, system)):
                layers.append((path, data))
            elif _sets_retention(data):
                self._say(
                    f"{path} sets general.sessionRetention, which Gemini CLI ignores while "
                    f"{project} is not a trusted folder"
                )
        layers.append((system_path, system))
        source = next((str(p) for p, d in reversed(layers) if p and _sets_retention(d)), "")
        policy = Policy.of(deep_merge(*(d for _, d in layers)), source)
        if policy.invalid:
            where = f" in {project}" if project else ""
            self._say(
                f"Gemini CLI's session cleanup does not run{where}: {policy.off} "
                f"({source or 'its defaults'}); it deletes nothing there"
            )
        return policy

    def _workspace(self, project: str) -> tuple[Path, dict[str, Any]] | None:
        """The project's own settings file and what it holds (None: none to read: no
        project, or the project is the home folder, whose is the user's)."""
        if not project:
            return None
        try:
            if os.path.realpath(project) == os.path.realpath(self.root.parent):
                return None
        except (OSError, ValueError):
            return None
        path = Path(project) / ".gemini" / "settings.json"
        data = self._read(path)
        return (path, data) if data else None

    def _is_trusted(self, project: str, merged: Mapping[str, Any]) -> bool:
        return self._trust(project, merged)[0]

    def trust(self, project: str) -> tuple[bool, str]:
        """Whether Gemini CLI started in `project` takes it for a trusted folder, and
        why not ("" when it does). Untrusted, it reads none of the project's settings
        and runs no hook from any settings file (user and system ones too)."""
        defaults, user, system = (data for _, data in self.layers)
        return self._trust(project, deep_merge(DEFAULTS, defaults, user, system))

    def trusted_folders_path(self) -> Path:
        return Path(
            self.env.get("GEMINI_CLI_TRUSTED_FOLDERS_PATH") or self.root / "trustedFolders.json"
        )

    def _trust(self, project: str, merged: Mapping[str, Any]) -> tuple[bool, str]:
        """`checkPathTrust` (the IDE's word, which only a running IDE gives, left out):
        $GEMINI_RESTRICTED_MODE or $GEMINI_CLI_TRUST_WORKSPACE, folder trust turned off,
        else the longest rule of trustedFolders.json that holds the project."""
        if self.env.get("GEMINI_RESTRICTED_MODE") == "true":
            return False, "$GEMINI_RESTRICTED_MODE is true"
        said = self.env.get("GEMINI_CLI_TRUST_WORKSPACE")
        if said in ("true", "false"):
            return said == "true", "" if said == "true" else "$GEMINI_CLI_TRUST_WORKSPACE is false"
        security = merged.get("security")
        trust = security.get("folderTrust") if isinstance(security, dict) else None
        enabled = trust.get("enabled") if isinstance(trust, dict) else None
        if not _truthy(True if enabled is None else enabled):
            return True, ""
        rules = self._rules()
        where = self.trusted_folders_path()
        if self._rules_problem:
            return False, f"{where} cannot be read ({self._rules_problem})"
        real = os.path.realpath(project)
        best, verdict = -1, (False, f"{NO_RULE}{where} holds it")
        for rule, level in rules.items():
            folder = os.path.dirname(rule) if level == "TRUST_PARENT" else rule
            relative = os.path.relpath(real, os.path.realpath(folder))
            inside = relative != ".." and not relative.startswith(".." + os.sep)
            if inside and len(rule) > best:
                trusted = level != "DO_NOT_TRUST"
                best, verdict = (
                    len(rule),
                    (trusted, "" if trusted else f"{where}: {rule!r} is {level}"),
                )
        return verdict

    def trusted_folders_problem(self) -> str:
        """Why the trust rules' file cannot be read, once `trust` read it ("" if it can:
        Gemini CLI does not start while it cannot)."""
        return self._rules_problem

    def _rules(self) -> dict[str, Any]:
        if self._trusted is None:
            path = self.trusted_folders_path()
            data, problem = read_settings(path, {})
            bad = [k for k, v in data.items() if v not in TRUST_LEVELS]
            if problem or bad:
                why = problem or f"{bad[0]!r} has no trust level Gemini CLI knows"
                self._say(
                    f"Gemini CLI's trusted folders {path} cannot be read ({why}): Gemini CLI "
                    "does not start while it is so; no folder is taken as trusted"
                )
                self._rules_problem = why
                data = {}
            self._trusted = {os.path.abspath(k): v for k, v in data.items()}
        return self._trusted


def _sets_retention(data: Mapping[str, Any]) -> bool:
    general = data.get("general")
    return isinstance(general, dict) and "sessionRetention" in general


@dataclass(frozen=True)
class Due:
    """When Gemini CLI's cleanup deletes a file, and why."""

    at: float  # epoch seconds (`now` for "at its next start")
    why: str


def plan(files: Iterable[Session], policy: Policy, now: float) -> dict[Path, Due]:
    """For each of one project's chat files (as `scan` reads them, one entry per file,
    all of its `chats/`), when Gemini CLI's cleanup deletes it (`identifySessionsToDelete`
    and the deletion by short id). Nothing when the cleanup does not run."""
    found: dict[Path, Due] = {}
    if policy.off:
        return found
    entries = sorted(files, key=lambda s: s.path.name)  # readdir, then .sort()
    valid = []
    for s in entries:
        if s.agent_drop:
            found[s.path] = Due(now, s.agent_drop)
        else:
            valid.append(s)
    # newest first by lastUpdated (a stable sort: ties keep the names' order)
    valid.sort(key=lambda s: -(now if s.agent_time is None else s.agent_time))
    for i, s in enumerate(valid):
        at, why = math.inf, ""
        if policy.max_age is not None and s.agent_time is not None:
            at = s.agent_time + policy.max_age
            why = f"maxAge {policy.max_age_text} after its lastUpdated"
            if at <= now:
                why = f"older than maxAge {policy.max_age_text} (by its lastUpdated)"
        if policy.max_count is not None and i >= policy.max_count:
            count = int(policy.max_count) if policy.max_count.is_integer() else policy.max_count
            at = min(at, now)
            why = f"beyond maxCount {count}: {i} newer session file(s) in this project"
        if at < math.inf:
            found[s.path] = Due(at, why)
    # a file deleted takes every other file of its short id with it
    groups: dict[str, list[Path]] = {}
    for s in entries:
        m = _SHORT_ID.search(s.path.name)
        if m and s.path.name.startswith("session-"):
            groups.setdefault(m.group(1), []).append(s.path)
    for paths in groups.values():
        first = min((found[p] for p in paths if p in found), key=lambda d: d.at, default=None)
        if first is None:
            continue
        for p in paths:
            if p not in found or found[p].at > first.at:
                cause = next(q for q in paths if found.get(q) is first)
                found[p] = Due(first.at, f"deleted with {cause.name} ({first.why})")
    return found
