"""Our entries in an agent's settings.json: merged in, found, taken out, nothing else touched.

Both agents read `{"hooks": {"<Event>": [{"matcher"?, "hooks": [{"type": "command",
"command": ..., "timeout": ...}]}]}}`. Our entries are recognised by `MARKER`, a shell
comment at the end of the command; everything else in the file (other settings,
other hooks, key order) is written back as it was read. A file that is not a JSON
object, or whose `hooks` has the wrong shape, is refused and never rewritten. The
new file replaces the old atomically, after a copy of the old one is kept beside it
(`settings.json.persist-backup`); a symlinked settings file is written through the link.

Gemini CLI runs hooks only while `hooksConfig.enabled` is true (default true in
0.61.0; older versions may default to false, see docs/hooks.md): when it is absent we
set it, and say so in our SessionStart entry's description (`ENABLED_NOTE`), so
uninstall takes out exactly what install put in. An explicit `false` is left alone and reported.

Claude Code runs no hooks of ours while `"disableAllHooks": true` is in effect: the
value of the settings file read last that sets it (user, then the project's
`.claude/settings.json`, then its `settings.local.json`). It is left alone and
reported, as Gemini's switch is. Its managed (policy) settings come before them:
`disableAllHooks`, `allowManagedHooksOnly` or `strictPluginOnlyCustomization` there
keeps it from running any hook of ours whatever the user's files say, and a managed
`disableAllHooks: false` wins over the user's true (`recorder.hooks.claude_policy`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import re
import shlex
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recorder.errors import BadOption, PersistError
from recorder.hooks.agents import EVENTS, Agent, Role, timeout_value
from recorder.hooks.claude_policy import ClaudeOff, Policy
from recorder.hooks.failures import fallback_file
from recorder.store.fsutil import make_private_dirs, open_private
from recorder.store.jsontext import utf8_problem
from recorder.store.shell import shell_quote

if TYPE_CHECKING:
    from recorder.sources.gemini_cleanup import GeminiSettings

MARKER = "# agent-persist hook"
ENABLED_NOTE = "(set hooksConfig.enabled)"
BACKUP_SUFFIX = ".persist-backup"


class SettingsNotWritten(PersistError):
    """The settings file could not be written (a full disk, a read-only one): exit 1."""


class SettingsError(BadOption):
    """The settings file cannot be used as it is (the CLI exits 2; nothing is written)."""


@dataclass(frozen=True)
class HookCommand:
    """How the agent runs us: `persist hook EVENT --agent A [--log-dir ...]`."""

    program: tuple[str, ...]  # the persist executable (or python -m recorder.cli)
    log_dir: Path
    restore: str | None = None  # SessionStart offers a checkpoint (no-terminal policy)
    publish_endpoint: str | None = None  # None: the default, or the hosted broker's
    broker: str | None = None  # the subscriber endpoint a started recorder uses

    def line(self, agent: Agent, event: str, role: Role) -> str:
        argv = [*self.program, "hook", event, "--agent", agent.value]
        argv += ["--log-dir", str(self.log_dir)]
        if self.publish_endpoint:
            argv += ["--publish-endpoint", self.publish_endpoint]
        if self.broker:
            argv += ["--broker", self.broker]
        if self.restore and role is Role.START:
            argv.append(f"--restore={self.restore}")
        for word in argv:  # JSON text: a name that is not UTF-8 would reach the agent changed
            if not_utf8 := utf8_problem(word):
                raise SettingsError(
                    f"{shell_quote(word)} {not_utf8}: the agent's settings.json, UTF-8 text, "
                    "cannot name it (rename the folder, or choose another)"
                )
        return f"{shlex.join(argv)}  {MARKER}"


def is_ours(hook: Any, agent: Agent) -> bool:
    """An entry we installed for `agent` (one file may hold both agents' entries)."""
    if not isinstance(hook, dict):
        return False
    command = str(hook.get("command") or "")
    return MARKER in command and f" --agent {agent.value} " in command


@dataclass
class Loaded:
    path: Path  # where it is written (a symlink resolved)
    data: dict[str, Any]
    raw: bytes | None  # None: the file does not exist
    indent: int | str = 2


@dataclass
class Change:
    """What install or uninstall did (or would do) to one settings file."""

    path: Path
    added: list[str] = field(default_factory=list)  # events
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    enabled_hooks: bool = False  # Gemini: hooksConfig.enabled set by us
    written: bool = False
    backup: Path | None = None
    backup_kept: bool = False  # the backup already held the file as it was before us
    warnings: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)  # uninstall: the lines taken out

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.enabled_hooks)


def _indent_of(raw: bytes) -> int | str:
    for line in raw.decode("utf-8", "replace").splitlines()[1:]:
        stripped = line.lstrip(" \t")
        if stripped and len(stripped) < len(line):
            lead = line[: len(line) - len(stripped)]
            return "\t" if lead.startswith("\t") else len(lead)
    return 2


MAX_SETTINGS = 16 << 20  # settings files are small; more is not one (a log, an image)

# O_NONBLOCK: opening a named pipe waits for a writer without it (a regular file ignores
# the flag); O_NOCTTY: a terminal never becomes ours
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


class _Unreadable(Exception):
    """A settings (or backup) file that is not read: why, in a few words."""


def _read(path: Path) -> bytes:
    """A regular file's bytes, at most MAX_SETTINGS; a named pipe, a device or a folder
    is never read nor waited on (raises _Unreadable; FileNotFoundError when absent)."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _Unreadable(f"cannot be read ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _Unreadable("is not a regular file (a named pipe, a device or a folder)")
        if st.st_size > MAX_SETTINGS:
            raise _Unreadable(f"is larger than {MAX_SETTINGS >> 20} MiB ({st.st_size} bytes)")
        chunks, total = [], 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            total += len(chunk)
            if total > MAX_SETTINGS:  # grew while read
                raise _Unreadable(f"is larger than {MAX_SETTINGS >> 20} MiB")
        return b"".join(chunks)
    except OSError as exc:
        raise _Unreadable(f"cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)


class _NotJson(ValueError):
    """A number the agent's JSON.parse reads as Infinity (refused, never written back)."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJson(text)
    return value


def _parse(raw: bytes, *, finite: bool) -> Any:
    """JSON as the agents read it: NaN and Infinity are not JSON (Python takes them);
    `finite`: a number too large for a double (JSON.parse makes it Infinity, which has
    no JSON to be written back as) raises _NotJson."""
    return json.loads(raw, parse_constant=_no_constant, parse_float=_finite if finite else None)


def load(path: Path, *, to_write: bool = True) -> Loaded:
    """Read and check a settings file; raises SettingsError naming what is wrong.
    `to_write`: refuse also what could be read but not written back as it was."""
    target = Path(os.path.realpath(path))
    try:
        raw = _read(target)
    except FileNotFoundError:
        return Loaded(target, {}, None)
    except _Unreadable as exc:
        raise SettingsError(f"{path} {exc}; nothing was written") from None
    if not raw.strip():
        return Loaded(target, {}, raw)
    try:
        data = _parse(raw, finite=to_write)
    except _NotJson as exc:
        raise SettingsError(
            f"{path}: the number {exc} is out of range (the agent reads it as Infinity, "
            "which cannot be written back as JSON); nothing was written"
        ) from None
    except RecursionError:  # json's own limit (about 1,000 levels), no ValueError
        raise SettingsError(
            f"{path}: a value is nested too deep to be read; nothing was written"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise SettingsError(
            f"{path} is not valid JSON ({exc}); fix it or use --settings FILE, nothing was written"
        ) from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path} does not hold a JSON object; nothing was written")
    _check_shape(path, data)
    return Loaded(target, data, raw, _indent_of(raw))


def _check_shape(path: Path, data: dict[str, Any]) -> None:
    # null is no "absent": Claude Code (2.1.110) refuses such a file whole, Gemini CLI
    # (0.61.0) calls it invalid configuration; refused as any other wrong type
    hooks = data.get("hooks", {})
    if not isinstance(hooks, dict):
        raise SettingsError(
            f'{path}: "hooks" is {_kind(hooks)}, an object of events was expected; '
            "nothing was written"
        )
    for event, groups in hooks.items():
        if not isinstance(groups, list):
            raise SettingsError(
                f'{path}: "hooks.{event}" is {_kind(groups)}, a list was expected; '
                "nothing was written"
            )
        for n, group in enumerate(groups):
            where = f"hooks.{event}[{n}]"
            if not isinstance(group, dict):
                raise SettingsError(
                    f'{path}: "{where}" is not an object with "hooks" (it is a '
                    f"{type(group).__name__}); nothing was written"
                )
            entries = group.get("hooks", [])
            if not isinstance(entries, list) or not all(isinstance(h, dict) for h in entries):
                raise SettingsError(
                    f'{path}: "{where}.hooks" is not a list of objects; nothing was written'
                )
    if not isinstance(data.get("hooksConfig", {}), dict):
        raise SettingsError(f'{path}: "hooksConfig" is not an object; nothing was written')


def _kind(value: Any) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


def _entry(agent: Agent, event: str, role: Role, command: str, note: str) -> dict[str, Any]:
    hook: dict[str, Any] = {"type": "command", "command": command}
    if agent is Agent.GEMINI:
        hook["name"] = f"agent-persist-{event}"
        description = f"agent-persist: {role.value} (persist hook)"
        hook["description"] = f"{description} {note}".strip()
    hook["timeout"] = timeout_value(agent, role)
    return hook


def _ours_in(groups: list[Any], agent: Agent) -> list[tuple[dict[str, Any], int]]:
    """(group, index in its hooks) of every entry of ours under one event."""
    found = []
    for group in groups:
        if isinstance(group, dict) and isinstance(group.get("hooks"), list):
            for i, hook in enumerate(group["hooks"]):
                if is_ours(hook, agent):
                    found.append((group, i))
    return found


def we_enabled_hooks(data: dict[str, Any]) -> bool:
    """Gemini: whether our SessionStart entry says install set hooksConfig.enabled."""
    groups = (data.get("hooks") or {}).get("SessionStart")
    if not isinstance(groups, list):
        return False
    return any(
        ENABLED_NOTE in str(g["hooks"][i].get("description") or "")
        for g, i in _ours_in(groups, Agent.GEMINI)
    )


def merge(agent: Agent, data: dict[str, Any], command: HookCommand, change: Change) -> None:
    """Put our entries into `data` (in place); existing ones are updated where they differ."""
    enable = False
    if agent is Agent.GEMINI:
        config = data.get("hooksConfig")
        enabled = config.get("enabled") if isinstance(config, dict) else None
        if enabled is None:
            enable = True
        elif enabled is False:
            change.warnings.append(
                f"{change.path}: hooksConfig.enabled is false, Gemini CLI runs no hooks "
                "until it is true (left as it is)"
            )
        enable = enable or we_enabled_hooks(data)
    hooks = data.setdefault("hooks", {})
    for event, role in EVENTS[agent].items():
        note = ENABLED_NOTE if enable and role is Role.START else ""
        wanted = _entry(agent, event, role, command.line(agent, event, role), note)
        groups = hooks.setdefault(event, [])
        ours = _ours_in(groups, agent)
        if not ours:
            groups.append({"hooks": [wanted]})
            change.added.append(event)
            continue
        group, i = ours[0]
        if group["hooks"][i] != wanted or len(ours) > 1:
            group["hooks"][i] = wanted
            change.updated.append(event)
        for extra_group, j in reversed(ours[1:]):  # duplicates of ours: keep one
            del extra_group["hooks"][j]
            if not extra_group["hooks"] and set(extra_group) <= {"hooks", "matcher"}:
                _drop(groups, extra_group)
    if agent is Agent.GEMINI and enable:
        config = data.setdefault("hooksConfig", {})
        if config.get("enabled") is None:
            config["enabled"] = True
            change.enabled_hooks = True


def _drop(groups: list[Any], group: dict[str, Any]) -> None:
    """Take out the very group we emptied: `groups.remove` took the first one equal to
    it, an empty group of the user's (`{"hooks": []}`) before ours, which then moved to
    the end (before 2026-12-07 uninstall did not give back the user's bytes so)."""
    for k, other in enumerate(groups):
        if other is group:
            del groups[k]
            return


def unmerge(agent: Agent, data: dict[str, Any], change: Change) -> None:
    """Take our entries out of `data` (in place), and what install added around them."""
    hooks = data.get("hooks")
    if not isinstance(hooks, dict):
        return
    enabled_by_us = agent is Agent.GEMINI and we_enabled_hooks(data)
    for event in list(hooks):
        groups = hooks[event]
        if not isinstance(groups, list):
            continue
        ours = _ours_in(groups, agent)
        if not ours:
            continue
        for group, i in reversed(ours):
            line = str(group["hooks"][i].get("command"))
            if line not in change.commands:
                change.commands.append(line)
            del group["hooks"][i]
            if not group["hooks"] and set(group) <= {"hooks", "matcher"}:
                _drop(groups, group)
        change.removed.append(event)
        if not groups:
            del hooks[event]
    if not hooks and change.removed:
        del data["hooks"]
    config = data.get("hooksConfig")
    if enabled_by_us and isinstance(config, dict) and config.get("enabled") is True:
        del config["enabled"]
        change.enabled_hooks = True
        if not config:
            del data["hooksConfig"]


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def dump(data: dict[str, Any], indent: int | str = 2) -> bytes:
    """The settings as JSON text in UTF-8; a lone surrogate (Node writes `"\\ud83d"` for
    half an emoji) stays the escape it was read from, the one way to write it."""
    text = json.dumps(data, indent=indent, ensure_ascii=False, allow_nan=False) + "\n"
    text = _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text.encode()


def write(
    loaded: Loaded,
    data: dict[str, Any],
    change: Change,
    exact: bytes | None = None,
    *,
    keep_backup: bool = False,
) -> None:
    """Back up the old file beside it, then replace it atomically (mode kept).
    `exact`: bytes that hold `data` as they should be written (a backup given back).
    `keep_backup`: the backup is left as it is (it holds the user's own file, and the
    old one differs from it only by our entries). SettingsNotWritten names the file
    when that fails ("hooks: No space left on device" named nothing); the file is then
    as it was."""
    try:
        _write(loaded, data, change, exact, keep_backup)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and exc.filename != str(loaded.path) else ""
        raise SettingsNotWritten(
            f"cannot write {loaded.path}: {exc.strerror or exc}{where}; it is unchanged"
        ) from None


def _write(
    loaded: Loaded, data: dict[str, Any], change: Change, exact: bytes | None, keep_backup: bool
) -> None:
    path = loaded.path
    new = exact if exact is not None else dump(data, loaded.indent)
    if loaded.raw is not None and new == loaded.raw:
        return
    # folders made 0700 whatever the umask (a writable one lets another user swap the
    # file for theirs); one that exists is the agent's and keeps its mode
    make_private_dirs(path.parent)
    mode = 0o600
    if loaded.raw is not None:
        # the bytes read, put in place as a new file: whatever the backup's name held
        # (a named pipe, a link elsewhere) is replaced, never opened nor written through
        backup = path.with_name(path.name + BACKUP_SUFFIX)
        st = path.stat()
        mode = st.st_mode & 0o777
        if keep_backup:
            change.backup_kept = True
        else:
            _replace(backup, loaded.raw, mode, (st.st_atime_ns, st.st_mtime_ns))
        change.backup = backup
    _replace(path, new, mode)
    dirfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)
    change.written = True


def _replace(path: Path, content: bytes, mode: int, times: tuple[int, int] | None = None) -> None:
    """`path` replaced atomically by a new regular file holding `content`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.persist-tmp")
    tmp.unlink(missing_ok=True)  # one left by a killed run of this pid
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fchmod(f.fileno(), mode)
            if times is not None:
                os.utime(f.fileno(), ns=times)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


LOCKS = "hooks-locks"  # in our state folder: one lock file per settings file


def lock_file(path: Path) -> Path:
    """The file our runs that change the settings file `path` lock (`_one_at_a_time`):
    in our own state folder, `$XDG_STATE_HOME/agent-persist/hooks-locks/` (beside
    `failures.fallback_file`), named by a hash of the file's real path, so it is there
    whatever exists yet of the file's folder, and nothing is added to that folder."""
    digest = hashlib.sha256(os.fsencode(os.path.realpath(path))).hexdigest()[:32]
    return fallback_file().parent / LOCKS / f"{digest}.lock"


def _lock(fd: int, on_wait: Callable[[str], None] | None, what: Path) -> None:
    """An flock on `fd`, waited for (`on_wait` told first); none where there are no locks."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if on_wait is not None:
            on_wait(f"waiting for another `persist hooks` run that changes {what}")
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        pass  # no locks there: as before


@contextmanager
def _one_at_a_time(path: Path, on_wait: Callable[[str], None] | None) -> Iterator[None]:
    """Our installs and uninstalls of one settings file run one at a time: each holds
    an flock on the file's own lock file in our state folder (`lock_file`: the link's
    target's, for a symlinked one) from its read to its replace. Two at once (both
    agents into one `--settings` file) each read the file, and the second replace
    dropped the first one's entries while both said "added" (before 2026-12-07).

    Each also holds an flock on the folder that holds the file (the nearest one above
    it that is there, for a folder the write makes), as runs before 2026-12-07 did
    alone: it keeps them in turn with ours, and ours in turn when the lock file cannot
    be made (no state folder) or our state folders differ (another HOME). That alone
    was not enough: a run that made the folder let the next run lock the new folder,
    which no one held, while it still wrote (both said "added", one agent's entries
    were lost). A folder or lock file we cannot open (no read right) or lock (a file
    system without locks) is passed over; with neither the file is written unlocked."""
    fds: list[int] = []
    try:
        lock = lock_file(path)
        try:
            make_private_dirs(lock.parent)
            fds.append(open_private(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW))
        except OSError:
            pass  # the folder's lock alone, as before
        else:
            _lock(fds[-1], on_wait, path)
        folder = Path(os.path.realpath(path)).parent
        while not folder.is_dir() and folder != folder.parent:
            folder = folder.parent  # a folder the write makes: the one it is made in, locked
        try:
            fds.append(os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        except OSError:
            pass  # the write names what is wrong, if anything is
        else:
            _lock(fds[-1], on_wait, folder)
        yield
    finally:
        for fd in reversed(fds):
            os.close(fd)  # the locks go with them


def install(
    agent: Agent, path: Path, command: HookCommand, on_wait: Callable[[str], None] | None = None
) -> Change:
    """Our entries into `path`; `on_wait` is told when another install or uninstall of
    the same folder holds it (this one then waits for it)."""
    with _one_at_a_time(path, on_wait):
        return _install(agent, path, command)


def _install(agent: Agent, path: Path, command: HookCommand) -> Change:
    loaded = load(path)
    data = json.loads(json.dumps(loaded.data))  # a copy: the loaded data stays as read
    change = Change(loaded.path)
    merge(agent, data, command, change)
    if agent is Agent.CLAUDE:
        from recorder.hooks.claude_policy import read_policy

        policy = read_policy()
        change.warnings.extend(policy.warnings)
        claude = claude_off(path, policy=policy)
        if claude is not None and claude.managed:
            change.warnings.append(claude.text)
        elif claude is not None:
            change.warnings.append(
                f"{claude.file}: disableAllHooks is true, Claude Code runs no hooks (ours "
                "included) until it is false or removed (left as it is)"
            )
    if change.changed or loaded.raw is None:
        write(loaded, data, change, keep_backup=_backup_is_before_ours(agent, loaded))
    if agent is Agent.GEMINI:  # read as written: our hooksConfig.enabled counts
        for off in gemini_hooks_off(path):
            said = (
                off.kind == "enabled"
                and off.file is not None
                and (
                    os.path.realpath(off.file) == str(loaded.path)  # merge said it already
                )
            )
            if not said:
                change.warnings.append(off.text + (" (left as it is)" if off.file else ""))
    return change


def _backup_is_before_ours(agent: Agent, loaded: Loaded) -> bool:
    """Whether the file already holds our entries and its backup is the file as it was
    before them (an install again, another `--restore`): that backup is kept, so
    uninstall still gives back the user's own bytes (replaced by the changed file, it
    gave back the settings written again: `1e3` as `1000.0`, arrays expanded)."""
    if loaded.raw is None:
        return False
    before = json.loads(json.dumps(loaded.data))
    ours = Change(loaded.path)
    unmerge(agent, before, ours)
    return ours.changed and _same_as_backup(loaded.path, before) is not None


def uninstall(agent: Agent, path: Path, on_wait: Callable[[str], None] | None = None) -> Change:
    """Our entries out of `path` (one at a time with installs, as `install`)."""
    if not os.path.lexists(path):
        return Change(Path(os.path.realpath(path)))  # nothing to take out, no folder made
    with _one_at_a_time(path, on_wait):
        return _uninstall(agent, path)


def _uninstall(agent: Agent, path: Path) -> Change:
    loaded = load(path)
    change = Change(loaded.path)
    if loaded.raw is None:
        return change
    data = json.loads(json.dumps(loaded.data))
    unmerge(agent, data, change)
    if change.changed:
        write(loaded, data, change, _same_as_backup(loaded.path, data))
    return change


def _same_as_backup(path: Path, data: dict[str, Any]) -> bytes | None:
    """The backup's bytes if it holds exactly `data` (the file as it was before we
    installed): then uninstall gives back the very bytes, formatting included."""
    try:
        raw = _read(path.with_name(path.name + BACKUP_SUFFIX))
        backup = _parse(raw, finite=True)
        # compared as text: `==` takes 0 for false, 1 for 1.0 and ignores key order, so
        # a later edit of the user's (0 -> false, a key moved) would be undone
        wanted = _canonical(data)
        if wanted in (_canonical(backup), _canonical(_emptied(backup, data))):
            return raw
        return None
    except (OSError, ValueError, RecursionError, _Unreadable):
        return None


def _emptied(backup: Any, data: dict[str, Any]) -> Any:
    """`backup` without the empty containers `unmerge` drops once it emptied them (an
    event's empty list, an empty `hooks` or `hooksConfig`) where `data` has none: a file
    that held them before the install (`"hooks": {}`) is given back as it was (before
    2026-12-07 it lost them)."""
    if not isinstance(backup, dict):
        return backup
    out = dict(backup)
    hooks, now = out.get("hooks"), data.get("hooks")
    if isinstance(hooks, dict):
        kept = now if isinstance(now, dict) else {}
        hooks = {e: groups for e, groups in hooks.items() if groups != [] or e in kept}
        if hooks or "hooks" in data:
            out["hooks"] = hooks
        else:
            del out["hooks"]
    if out.get("hooksConfig") == {} and "hooksConfig" not in data:
        del out["hooksConfig"]
    return out


def _canonical(data: Any) -> str:
    """The data as one text: types (false/0, 1/1.0) and key order kept."""
    return json.dumps(data, ensure_ascii=True, allow_nan=False)


@dataclass(frozen=True)
class Installed:
    """What `status` finds in one settings file."""

    path: Path
    exists: bool
    events: tuple[str, ...]  # events that have an entry of ours
    missing: tuple[str, ...]  # events of ours without one
    commands: tuple[str, ...]  # our distinct command lines
    log_dirs: tuple[Path, ...]  # the log folders they point at
    problems: tuple[str, ...] = ()
    outdated: str = ""  # entries an older install wrote that want installing again
    # whether the agent runs them depends on what the user answers at its start (a
    # Gemini CLI folder with no trust rule): a warning, and not counted on
    doubts: tuple[str, ...] = ()
    # said, and still counted on: a file the agent ignores (a malformed managed settings file)
    warnings: tuple[str, ...] = ()
    # the `persist hooks install` that writes these entries again as they are, with this
    # persist (`install_again`); "" when there are none
    again: str = ""


def claude_off(
    path: Path, project: Path | None = None, policy: Policy | None = None
) -> ClaudeOff | None:
    """Why Claude Code, started in `project` (default: here) and reading `path`, runs
    no hook of ours; None when it runs them. First its managed settings (`policy`, read
    when not given): the administrator's switches. Then `"disableAllHooks": true` in
    user, project, then project-local settings, a later file's value winning, and the
    managed settings' own value, merged after them, winning over all; a `path` outside
    those is judged by itself. A `path` the managed settings are read from is run unless
    their own `disableAllHooks` is true (before 2026-12-08 their `allowManagedHooksOnly`
    was taken to stop the hooks there too). Before 2026-12-07 managed settings were not
    read."""
    from recorder.hooks.agents import Scope, settings_path
    from recorder.hooks.claude_policy import read_policy

    policy = policy or read_policy()
    managed = policy.off()
    if policy.holds(path):  # hooks in the managed settings themselves
        return managed if managed is not None and managed.key == "disableAllHooks" else None
    skipped = policy.skips(path)
    if skipped is not None:
        return skipped
    if managed is not None:
        return managed
    user = settings_path(Agent.CLAUDE, Scope.USER)
    shared = settings_path(Agent.CLAUDE, Scope.PROJECT, project)
    files = [user, shared, shared.with_name("settings.local.json")]
    if os.path.realpath(path) not in {os.path.realpath(f) for f in files}:
        files = [path]
    off: Path | None = None
    for file in files:
        try:
            value = load(file, to_write=False).data.get("disableAllHooks")
        except SettingsError:  # reported for that file on its own
            continue
        if isinstance(value, bool):
            off = file if value else None
    if off is None or policy.overrides_user_switch():
        return None
    text = f"disableAllHooks is true in {off}: Claude Code runs no hooks"
    return ClaudeOff(off, "disableAllHooks", False, text)


@dataclass(frozen=True)
class GeminiOff:
    """One reason Gemini CLI runs not all of our hooks in a settings file."""

    kind: str  # "ask" (no trust rule: Gemini CLI asks), "trust", "enabled" or "disabled"
    file: Path | None  # the settings file that says so (None: the folder's trust)
    text: str


# The variables that make Gemini CLI distrust every folder, whatever its rules say.
_DISTRUST = (("GEMINI_RESTRICTED_MODE", "true"), ("GEMINI_CLI_TRUST_WORKSPACE", "false"))


def _untrusted(settings: GeminiSettings, where: Path, why: str) -> str:
    """The problem line of a folder Gemini CLI does not trust (`why`, from
    `GeminiSettings.trust`), with what makes it trust it: the variable that overrides
    every rule unset, the trust rules' file repaired, or a TRUST_FOLDER rule. Before
    2026-12-07 it always named the rule, which cannot help in the first two cases."""
    from recorder.sources.gemini_cleanup import NO_RULE, GeminiSettings

    head = f"Gemini CLI started in {where} runs no hooks from its settings"
    env = settings.env
    set_ = [name for name, value in _DISTRUST if env.get(name) == value]
    if set_:
        names = " and ".join(f"${name}" for name in set_)
        it = "them" if len(set_) > 1 else "it"
        rest = {k: v for k, v in env.items() if k not in set_}
        then, then_why = GeminiSettings.read(settings.root, rest).trust(str(where))
        if then:
            after = f"without {it} Gemini CLI trusts the folder and runs them"
        elif then_why.startswith(NO_RULE):
            after = (
                f"without {it} Gemini CLI asks whether to trust the folder (a TRUST_FOLDER "
                "rule in trustedFolders.json settles it)"
            )
        else:
            after = f"without {it} the folder is still not trusted ({then_why})"
        return (
            f"{head}: it is not a trusted folder ({why}), whatever trustedFolders.json "
            f"says; unset {names}: {after}"
        )
    if settings.trusted_folders_problem():
        return (
            f"{head}: Gemini CLI does not start at all while {why}; repair that file (JSON: "
            "each folder TRUST_FOLDER, TRUST_PARENT or DO_NOT_TRUST) or remove it"
        )
    return (
        f"{head}: it is not a trusted folder ({why}); once trusted (a TRUST_FOLDER rule "
        "in trustedFolders.json) it runs them"
    )


def gemini_hooks_off(path: Path, project: Path | None = None) -> list[GeminiOff]:
    """Why Gemini CLI, started in `project` (default: here), runs not all of the hooks
    of ours in `path` ([] when it runs them), as Gemini CLI 0.61.0 reads its settings
    (docs/hooks.md): in a folder it does not trust it runs no hook from any settings
    file, user and system ones too; `hooksConfig.enabled` is the value of the last of
    system defaults, user settings, the project's own (trusted only), system settings
    that sets it; `hooksConfig.disabled` lists of all of them are joined. A `path` that
    is none of those files (`--settings`) is judged by itself. Before 2026-12-07 only
    `path` itself was read: a folder not trusted, or a switch in another file, went
    unnoticed (install and status said nothing, the launcher counted on the hook)."""
    from recorder.hooks.agents import config_root
    from recorder.sources.gemini_cleanup import NO_RULE, GeminiSettings, read_settings

    env = os.environ
    where = project or Path.cwd()
    files = _gemini_files(where)
    own = files[2]
    out: list[GeminiOff] = []
    if not _gemini_layer(path, where):
        layers = [path]
    else:
        settings = GeminiSettings.read(config_root(Agent.GEMINI), env)
        trusted, why = settings.trust(str(where))
        if not trusted and why.startswith(NO_RULE):  # the user's answer at its start decides
            out.append(
                GeminiOff(
                    "ask",
                    None,
                    f"Gemini CLI started in {where} asks whether to trust the folder ({why}): "
                    "unless trusted it runs no hooks from its settings (a TRUST_FOLDER rule "
                    "in trustedFolders.json settles it)",
                )
            )
        elif not trusted:
            out.append(GeminiOff("trust", None, _untrusted(settings, where, why)))
        home = os.path.realpath(config_root(Agent.GEMINI).parent)
        workspace = trusted and os.path.realpath(where) != home  # home's is the user's
        layers = [f for f in files if f is not own or workspace]
    enabled: tuple[Path, Any] | None = None
    for file in layers:
        config = read_settings(file, env)[0].get("hooksConfig")
        if not isinstance(config, dict):
            continue
        if "enabled" in config:
            enabled = (file, config["enabled"])
        disabled = config.get("disabled")
        if not isinstance(disabled, list):
            continue
        names = [n for n in disabled if isinstance(n, str) and n.startswith("agent-persist")]
        if names:
            text = f"disabled in hooksConfig.disabled of {file}: {', '.join(names)}"
            out.append(GeminiOff("disabled", file, text))
    if enabled is not None and not _js_truthy(enabled[1]):
        text = f"hooksConfig.enabled is false in {enabled[0]}: Gemini CLI runs no hooks"
        out.append(GeminiOff("enabled", enabled[0], text))
    return out


def _gemini_files(project: Path) -> list[Path]:
    """The settings files Gemini CLI started in `project` merges, in its order."""
    from recorder.hooks.agents import Scope, settings_path
    from recorder.sources.gemini_cleanup import system_defaults_path, system_settings_path

    user = settings_path(Agent.GEMINI, Scope.USER)
    own = settings_path(Agent.GEMINI, Scope.PROJECT, project)
    return [system_defaults_path(os.environ), user, own, system_settings_path(os.environ)]


def _gemini_layer(path: Path, project: Path | None) -> bool:
    """Whether `path` is one of the files Gemini CLI started in `project` merges."""
    files = _gemini_files(project or Path.cwd())
    return os.path.realpath(path) in {os.path.realpath(f) for f in files}


def _js_truthy(value: Any) -> bool:
    return True if isinstance(value, list | dict) else bool(value)


def inspect(agent: Agent, path: Path, project: Path | None = None) -> Installed:
    """Our entries in `path`; a malformed file is reported, not raised. `project`: the
    folder the agent starts in (default: here), for the settings it reads beside `path`."""
    try:
        loaded = load(path, to_write=False)  # 1e400 is read as Infinity, still JSON
    except SettingsError as exc:
        return Installed(path, path.exists(), (), tuple(EVENTS[agent]), (), (), (str(exc),))
    hooks = loaded.data.get("hooks") or {}
    events, commands, log_dirs, short = [], [], [], []
    for event, role in EVENTS[agent].items():
        groups = hooks.get(event)
        ours = _ours_in(groups, agent) if isinstance(groups, list) else []
        if ours:
            events.append(event)
        for group, i in ours:
            given = group["hooks"][i].get("timeout")
            wanted = timeout_value(agent, role)
            if isinstance(given, int | float) and given < wanted and event not in short:
                short.append(f"{event} {given:g}")  # an older install's, too short now
            line = str(group["hooks"][i].get("command"))
            if line not in commands:
                commands.append(line)
                log_dir = _log_dir_of(line)
                if log_dir is not None and log_dir not in log_dirs:
                    log_dirs.append(log_dir)
    again = install_again(agent, path, commands, project)
    problems = list(dict.fromkeys(filter(None, (_program_problem(c, again) for c in commands))))
    unit = "s" if agent is Agent.CLAUDE else "ms"
    outdated = (
        f"timeout shorter than this version installs ({', '.join(short)} {unit}): "
        f"`{again}` again updates it"
        if short
        else ""
    )
    doubts: list[str] = []
    if agent is Agent.GEMINI and events:
        for off in gemini_hooks_off(path, project):
            (doubts if off.kind == "ask" else problems).append(off.text)
    elif agent is Agent.GEMINI and not _gemini_layer(path, project):
        # none of ours in a file Gemini CLI does not merge: its own switches, as before
        # (one it merges is read for the files that hold ours)
        config = loaded.data.get("hooksConfig")
        if isinstance(config, dict) and config.get("enabled") is False:
            problems.append("hooksConfig.enabled is false: Gemini CLI runs no hooks")
        disabled = config.get("disabled") if isinstance(config, dict) else None
        if isinstance(disabled, list):
            names = [n for n in disabled if isinstance(n, str) and n.startswith("agent-persist")]
            if names:
                problems.append(f"disabled in hooksConfig.disabled: {', '.join(names)}")
    warnings: list[str] = []
    if agent is Agent.CLAUDE and (loaded.raw is not None or events):
        from recorder.hooks.claude_policy import read_policy

        policy = read_policy()
        claude = claude_off(path, project, policy)
        if claude is not None and (events or not claude.managed):  # managed: ours only
            problems.append(claude.text)
        if events:
            warnings += policy.warnings
    missing = tuple(e for e in EVENTS[agent] if e not in events)
    return Installed(
        path,
        loaded.raw is not None,
        tuple(events),
        missing,
        tuple(commands),
        tuple(log_dirs),
        tuple(problems),
        outdated,
        tuple(doubts),
        tuple(warnings),
        again if commands else "",
    )


PROGRAM_GONE = "the hooks run "  # how `_program_problem`'s sentence begins


def _program_problem(line: str, again: str) -> str | None:
    """Why the agent cannot run our hook command `line` (the program it names, by an
    absolute path as we install it, is gone or not executable: a virtualenv removed or
    moved, persist uninstalled); None when it can. The agent then fails every hook and
    records nothing; before 2026-12-07 `hooks status` called such hooks installed.
    `again`: the `persist hooks install` that puts them back (`install_again`)."""
    argv = _argv(line)
    if not argv:
        return f"a hook command cannot be read as a command line: {line!r}"
    program = argv[0]
    if not os.path.isabs(program):
        return None  # found on the agent's PATH, which is not ours to know
    if os.path.isfile(program) and os.access(program, os.X_OK):
        return None
    what = "is not there" if not os.path.lexists(program) else "is not an executable file"
    return (
        f"{PROGRAM_GONE}{program}, which {what} (persist moved or uninstalled?): every "
        f"hook fails and no session is recorded; `{again}` again installs this persist's"
    )


def install_again(
    agent: Agent, path: Path, commands: Sequence[str], project: Path | None = None
) -> str:
    """The `persist hooks install` that writes our entries in `path` (their command
    lines `commands`) again as they were, running this persist: into the same file (the
    user's settings, `--scope project` for the project's of `project`, default here, or
    `--settings FILE`), with the same log folder, endpoints and restore policy (on the
    start hook's line only); quoted for a shell. Before 2026-12-07 `hooks status` named
    `persist hooks install AGENT` alone: for project-scope hooks it installed into the
    user's settings and left them broken, and it dropped `--log-dir` and `--restore`."""
    from recorder.hooks.agents import Scope, settings_path

    words = ["persist", "hooks", "install", agent.value]
    here = Path(os.path.abspath(path))
    if here == Path(os.path.abspath(settings_path(agent, Scope.USER))):
        pass
    elif here == Path(os.path.abspath(settings_path(agent, Scope.PROJECT, project))):
        words += ["--scope", Scope.PROJECT.value]
    else:
        words += ["--settings", str(here)]
    options: dict[str, list[str]] = {}
    for line in commands:  # each option as the first line holding it has it
        taken = install_options(line)
        while taken:
            word = taken.pop(0)
            value = [taken.pop(0)] if not word.startswith("--restore=") else []
            options.setdefault(word.split("=", 1)[0], [word, *value])
    for name in ("--log-dir", "--publish-endpoint", "--broker", "--restore"):
        words += options.get(name, [])
    return " ".join(map(shell_quote, words))


def log_dir_of(line: str) -> Path | None:
    """The log folder our hook command `line` records into (None: none named)."""
    return _log_dir_of(line)


def install_options(line: str) -> list[str]:
    """The `persist hooks install` options that write our hook command `line` again
    (its log folder, endpoints and restore policy)."""
    argv = _argv(line)
    out: list[str] = []
    for name in ("--log-dir", "--publish-endpoint", "--broker"):
        if name in argv and argv.index(name) + 1 < len(argv):
            out += [name, argv[argv.index(name) + 1]]
    out += [a for a in argv if a.startswith("--restore=")][:1]
    return out


def _argv(line: str) -> list[str]:
    """Our hook command `line` as words, our marker comment left out ([] when it
    cannot be read as a command line)."""
    try:
        return shlex.split(line.split(MARKER, 1)[0])
    except ValueError:
        return []


def _log_dir_of(line: str) -> Path | None:
    argv = _argv(line)
    if "--log-dir" in argv:
        i = argv.index("--log-dir")
        if i + 1 < len(argv):
            return Path(argv[i + 1])
    return None


def claude_managed_files() -> list[Path]:
    """The managed settings files Claude Code reads its policy from (an administrator
    may install our hooks there: it runs them as the user's own)."""
    from recorder.hooks.claude_policy import read_policy

    return read_policy().files


def start_hook_for(agent: Agent, log_dir: Path, project: Path) -> bool:
    """Whether the agent, started in `project`, runs our start hook for `log_dir` (its
    user settings, its project's, or Claude Code's project-local ones): only then is
    the checkpoint chosen in `persist launch`'s menu offered to it."""
    found = _start_hooks(agent, log_dir, project)
    return any(not f.problems and not f.doubts for f in found)


def start_hook_off(agent: Agent, log_dir: Path, project: Path) -> str | None:
    """Why the agent, started in `project`, runs none of the start hooks of ours for
    `log_dir` installed for it (hooks switched off, a folder Gemini CLI does not
    trust, the program gone); None when one runs, or none is installed."""
    found = _start_hooks(agent, log_dir, project)
    if not found or any(not f.problems and not f.doubts for f in found):
        return None
    return (*found[0].problems, *found[0].doubts)[0]


def _start_hooks(agent: Agent, log_dir: Path, project: Path) -> list[Installed]:
    from recorder.hooks.agents import Scope, settings_path

    want = log_dir.expanduser().resolve()
    paths = [settings_path(agent, scope, project) for scope in Scope]
    if agent is Agent.CLAUDE:
        paths.append(paths[-1].with_name("settings.local.json"))
        paths += claude_managed_files()
    out = []
    for path in paths:
        found = inspect(agent, path, project)
        if "SessionStart" in found.events and any(
            d.expanduser().resolve() == want for d in found.log_dirs
        ):
            out.append(found)
    return out
