"""Finding every session of every agent, with an incremental cache.

The cache (`<log folder>/sessions/scan-cache.json`, 0600, derived: deleting it only
costs a full scan) keeps each file's listing entry under its size, mtime and inode;
a rescan stats every file and reads again only those that changed. A cache that
cannot be read, or of another version, is rebuilt, and rewritten even when no session
is left (so its warning is given once). A file name that is not UTF-8 is kept as the name it is
(`jsontext.dumps_names`).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from recorder.sources import claude, codex, gemini
from recorder.sources.model import (
    Session,
    SessionMessage,
    Source,
    Transcript,
    session_from_json,
    session_to_json,
)
from recorder.store.fsutil import atomic_write, ensure_private_dir
from recorder.store.jsontext import dumps_names, loads_names

CACHE_VERSION = 6  # 2: titles made of prompts have their keys redacted (`prompt_title`)
# 3: a Claude sub-agent's own file is read as its conversation (id: its agentId)
# 4: a Claude file named by a session id is that session, whatever its lines carry
# 5: each entry counts its unreadable lines (`Session.bad_lines`)
# 6: a Gemini file as Gemini CLI's own listing reads it (`agent_drop`, `agent_time`)


@dataclass(frozen=True)
class Roots:
    """Where each agent keeps its sessions (None: do not look)."""

    claude: Path | None
    gemini: Path | None
    codex: Path | None

    @classmethod
    def default(cls) -> Roots:
        """The agents' own defaults and environment overrides (`CLAUDE_CONFIG_DIR`,
        `GEMINI_CLI_HOME`, `CODEX_HOME`)."""
        return cls(claude.default_root(), gemini.default_root(), codex.default_root())

    def only(self, source: Source | None) -> Roots:
        if source is None:
            return self
        return Roots(
            self.claude if source is Source.CLAUDE else None,
            self.gemini if source is Source.GEMINI else None,
            self.codex if source is Source.CODEX else None,
        )

    def root(self, source: Source) -> Path | None:
        return {Source.CLAUDE: self.claude, Source.GEMINI: self.gemini, Source.CODEX: self.codex}[
            source
        ]


@dataclass
class Unit:
    """One session's files and how to read them."""

    source: Source
    path: Path
    key: list[Any]  # the stat signature the cache entry must match
    read: Callable[[], Transcript]  # for the listing (no messages, where a reader can)
    project: str = ""  # project folder (Claude titles across files, Gemini duplicates)
    full: Callable[[], Transcript] | None = None  # with its messages (default: `read`)
    named_id: str = ""  # the session id a Claude session file's name gives (`<uuid>.jsonl`)

    @property
    def size(self) -> int:
        """The session file's size in bytes (from the stat signature)."""
        sig = self.key[0]
        return int(sig[0]) if isinstance(sig, list) and sig else 0

    def read_all(self) -> Transcript:
        """The session with its messages (for the search index)."""
        return (self.full or self.read)()


def _sig(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


class AgentOwners:
    """Which session each 2.0.x sub-agent file (`agent-<id>.jsonl` beside the sessions)
    belongs to: its first lines name it, read once per version of the file (`known`:
    path -> [stat signature, session id], from an earlier scan; `fresh`: this scan's)."""

    def __init__(self, known: dict[str, Any] | None = None) -> None:
        self.known = known if isinstance(known, dict) else {}
        self.fresh: dict[str, list[Any]] = {}

    def by_session(self, paths: list[Path]) -> dict[str, list[tuple[Path, list[int]]]]:
        """session id -> its agent files (with their stat signatures), in `paths` order."""
        owners: dict[str, list[tuple[Path, list[int]]]] = {}
        for path in paths:
            sig = _sig(path)
            if sig is None:
                continue
            entry = self.known.get(str(path))
            if isinstance(entry, list) and len(entry) == 2 and entry[0] == sig:
                sid = str(entry[1])
            else:
                sid = claude.file_session_id(path)
            self.fresh[str(path)] = [sig, sid]
            owners.setdefault(sid, []).append((path, sig))
        return owners


def units(
    roots: Roots, problems: list[str] | None = None, agents: AgentOwners | None = None
) -> Iterator[Unit]:
    """Every session file under `roots`; a folder that cannot be listed is named in
    `problems`. A Claude session is handed only its own 2.0.x agent files (found once
    per folder: `agents` remembers them across scans), and its stat signature holds
    only theirs: a new agent file changes only its session's."""
    if roots.claude is not None:
        agents = agents if agents is not None else AgentOwners()
        for proj in claude.projects(roots.claude):
            if proj.error and problems is not None:
                problems.append(proj.error)
            owners = agents.by_session(proj.flat_agents)
            every = {sid: [p for p, _ in found] for sid, found in owners.items()}
            every_sig = [sig for found in owners.values() for _, sig in found]
            for path in proj.sessions:
                sig = _sig(path)
                if sig is None:
                    continue
                nested = [_sig(p) for p in claude.subagent_files(path)]
                named = claude.named_session_id(path)
                # a file not named by its id: which agent files are its is known once read
                own: claude.FlatAgents = every.get(named, []) if named else every
                flat = [s for _, s in owners.get(named, [])] if named else every_sig
                yield Unit(
                    Source.CLAUDE,
                    path,
                    [sig, nested, flat],
                    partial(claude.read_transcript, path, flat_agents=own, listing=True),
                    str(proj.folder),
                    full=partial(claude.read_transcript, path, flat_agents=own),
                    named_id=named,
                )
            # each sub-agent's own file: listed only when its session's file is gone
            for path in [*proj.flat_agents, *proj.orphan_nested]:
                sig = _sig(path)
                if sig is not None:
                    yield Unit(
                        Source.CLAUDE,
                        path,
                        [sig],
                        partial(claude.read_transcript, path, listing=True),
                        str(proj.folder),
                    )
    if roots.gemini is not None:
        for gp in gemini.projects(roots.gemini):
            if problems is not None:
                problems.extend([gp.error] if gp.error else gp.problems)
            for path in gp.chats:
                sig = _sig(path)
                if sig is not None:
                    # its sub-agents' files: a new or grown one changes its entry
                    nested = [_sig(p) for p in gp.nested_of(path)]
                    yield Unit(
                        Source.GEMINI,
                        path,
                        [sig, gp.project_path, nested],
                        partial(gemini.read_transcript, path, gp.project_path, listing=True),
                        str(gp.folder),
                        partial(gemini.read_transcript, path, gp.project_path),
                    )
            # a sub-agent's own file: listed only when its session's file is gone
            for parent, paths in gp.orphans().items():
                for path in paths:
                    sig = _sig(path)
                    if sig is None:
                        continue
                    read = partial(gemini.read_transcript, path, gp.project_path, parent=parent)
                    yield Unit(
                        Source.GEMINI,
                        path,
                        [sig, gp.project_path],
                        partial(read, listing=True),
                        str(gp.folder),
                        read,
                    )
    if roots.codex is not None:
        names_sig = _sig(roots.codex / "session_index.jsonl")
        names = _LazyNames(roots.codex)
        for path in codex.rollouts(roots.codex):
            sig = _sig(path)
            if sig is not None:
                yield Unit(
                    Source.CODEX,
                    path,
                    [sig, names_sig],
                    partial(names.read, path, listing=True),
                    full=partial(names.read, path),
                )


class _LazyNames:
    """Codex thread names, read once and only if a rollout has to be read."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.names: dict[str, str] | None = None

    def read(self, path: Path, *, listing: bool = False) -> Transcript:
        if self.names is None:
            self.names = codex.thread_names(self.root)
        return codex.read_transcript(path, self.names, listing=listing)


@dataclass
class ScanResult:
    sessions: list[Session]
    # every file's own entry, before a session's files are merged into one (Gemini
    # CLI's cleanup goes file by file)
    files: list[Session] = field(default_factory=list)
    read: int = 0  # files read this time
    cached: int = 0  # files whose cached entry was still valid
    problems: list[str] = field(default_factory=list)


class ScanCache:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        self.agents: dict[str, Any] = {}  # `AgentOwners.known`
        self.problem = ""
        # the file on disk is not what `save` would write (unreadable, another format,
        # malformed parts): it is rewritten even when the scan finds nothing to keep
        self.stale = False
        if path is None:
            return
        try:
            data = loads_names(path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            self.problem = f"the session scan cache {path} was unreadable ({exc}); rebuilt"
            self.stale = True
            return
        if not isinstance(data, dict) or data.get("v") != CACHE_VERSION:
            self.problem = f"the session scan cache {path} had another format; rebuilt"
            self.stale = True
            return
        entries = data.get("entries")
        if isinstance(entries, dict):
            self.entries = entries
        else:
            self.stale = True
        agents = data.get("agents")
        if isinstance(agents, dict):
            self.agents = agents
        else:
            self.stale = True

    def save(self, entries: dict[str, dict[str, Any]], agents: dict[str, Any]) -> None:
        if self.path is None:
            return
        ensure_private_dir(self.path.parent)
        data = {"v": CACHE_VERSION, "entries": entries, "agents": agents}
        atomic_write(self.path, dumps_names(data), durable=False)


Entry = tuple[dict[str, Any], dict[str, str], list[str]] | None


def _entry(read: Callable[[], Transcript]) -> Entry:
    """A file's listing entry (what a worker process sends back: no message bodies);
    None when the file's values are nested too deep for the reader (a file is
    untrusted: it must never stop the others from being listed).

    The cyclic garbage collector is paused while the file is read: its parsed lines are
    hundreds of thousands of dicts and lists with no cycles among them (reference
    counting frees them), which the collector would otherwise walk again and again."""
    paused = gc.isenabled()
    gc.disable()
    try:
        t = read()
    except RecursionError:
        return None
    finally:
        if paused:
            gc.enable()
    t.session.unread = t.report.unread
    return session_to_json(t.session), t.summaries, t.report.errors


POOL_MIN_BYTES = 32 << 20  # less to read than this: starting processes costs more than it saves


def _read_all(todo: list[Unit], workers: int) -> list[Entry]:
    if workers <= 1 or len(todo) < 8 or sum(u.size for u in todo) < POOL_MIN_BYTES:
        return [_entry(u.read) for u in todo]
    from concurrent.futures import ProcessPoolExecutor

    # Largest files first, handed out one at a time, so the workers finish together
    # (one big session last would leave the other cores idle while it is read).
    order = sorted(range(len(todo)), key=lambda i: todo[i].size, reverse=True)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        done = list(pool.map(_entry, [todo[i].read for i in order], chunksize=1))
    entries: list[Entry] = [done[0]] * len(todo)
    for i, entry in zip(order, done, strict=True):
        entries[i] = entry
    return entries


def scan(roots: Roots, cache_path: Path | None = None, *, workers: int = 1) -> ScanResult:
    """Every session of every root, newest activity first. `workers` > 1 reads changed
    files in that many processes (only from a single-threaded caller: it forks)."""
    cache = ScanCache(cache_path)
    agents = AgentOwners(cache.agents)
    result = ScanResult([])
    if cache.problem:
        result.problems.append(cache.problem)
    fresh: dict[str, dict[str, Any]] = {}
    summaries: dict[str, dict[str, str]] = {}  # Claude project folder -> leafUuid -> summary
    found: list[tuple[Unit, Session]] = []
    todo: list[Unit] = []
    for unit in units(roots, result.problems, agents):
        entry = cache.entries.get(str(unit.path))
        if isinstance(entry, dict) and entry.get("key") == unit.key:
            try:
                session = session_from_json(entry["session"])
                own = entry.get("summaries") or {}
            except (KeyError, ValueError, TypeError):
                todo.append(unit)
                continue
            result.cached += 1
            fresh[str(unit.path)] = entry
            if own and isinstance(own, dict):
                summaries.setdefault(unit.project, {}).update(own)
            found.append((unit, session))
        else:
            todo.append(unit)
    for unit, read in zip(todo, _read_all(todo, workers), strict=True):
        if read is None:
            result.problems.append(f"{unit.path} is nested too deep to read; left out")
            continue
        data, own, errors = read
        if not errors:  # a file that could not be read is read again (and named) next time
            fresh[str(unit.path)] = {"key": unit.key, "session": data, "summaries": own}
        result.read += 1
        result.problems.extend(errors)
        if own:
            summaries.setdefault(unit.project, {}).update(own)
        found.append((unit, session_from_json(data)))
    result.files = [s for _, s in found]
    sessions = _dedupe(found)
    qualify(sessions)
    for unit, s in found:
        project = summaries.get(unit.project)
        if project and s.source is Source.CLAUDE and s.title_kind in ("first-prompt", ""):
            for uuid in s.leaf_uuids:
                if uuid in project:
                    s.title, s.title_kind = project[uuid], "summary"
                    break
    if cache.stale or fresh != cache.entries or agents.fresh != cache.agents:
        try:
            cache.save(fresh, agents.fresh)
        except OSError as exc:
            result.problems.append(f"the session scan cache could not be written ({exc})")
    sessions.sort(key=lambda s: s.last_ts or s.mtime, reverse=True)
    result.sessions = sessions
    return result


def _dedupe(found: list[tuple[Unit, Session]]) -> list[Session]:
    """One entry per session: a Gemini legacy `.json` and its `.jsonl` share an id (the
    later one wins); a Claude or Gemini sub-agent's file is part of its session, and a
    session of its own (not resumable) only when its session's file is gone (deleted by
    hand or by the agent's cleanup), so that no conversation on disk goes unlisted. One
    Claude id in two project folders is two sessions (`Session.ident`)."""
    best: dict[tuple[Source, str, str], Session] = {}
    parents = {s.ident for _, s in found if not s.subagent}
    # a Gemini sub-agent's `parent_id` is its folder's name: the id as Gemini names files
    parents |= {
        (s.source, gemini.safe_name(s.id), s.folder)
        for _, s in found
        if s.source is Source.GEMINI and not s.subagent
    }
    for _, s in found:
        if not s.id or (s.subagent and (s.source, s.parent_id, s.folder) in parents):
            continue
        other = best.get(s.ident)
        if other is None:
            best[s.ident] = s
            continue
        newer, older = (s, other) if (s.last_ts or 0) >= (other.last_ts or 0) else (other, s)
        newer.extra_paths = (*newer.extra_paths, older.path)
        best[s.ident] = newer
    return list(best.values())


def shared_ids(pairs: Iterable[tuple[str, str]]) -> set[str]:
    """The ids of these (Claude session id, project folder) pairs found in more than one
    folder."""
    folders: dict[str, set[str]] = {}
    for sid, folder in pairs:
        folders.setdefault(sid, set()).add(folder)
    return {sid for sid, seen in folders.items() if len(seen) > 1}


def _scopable(s: Session) -> bool:
    return s.source is Source.CLAUDE and not s.subagent


def qualify(sessions: Iterable[Session]) -> None:
    """Scope each Claude session whose id is also in another project folder: its key
    becomes `claude:<id>@<folder>` (each is its own session: Claude resolves `--resume`
    in the current project's folder). A unique id keeps the key `claude:<id>`."""
    found = list(sessions)
    shared = shared_ids((s.id, s.folder) for s in found if _scopable(s))
    for s in found:
        s.scope = s.folder if _scopable(s) and s.id in shared else ""


def read_session(session: Session, *, exact: bool = False) -> Transcript:
    """A listed session in full (`session.unread` says why when its file could not be
    read: its messages are unknown, not none). `exact`: integers beyond 64 bits in its
    raw lines kept as written, not read as floats (a fork writes those lines again)."""
    t = _read_session(session, exact)
    t.session.unread = t.report.unread
    return t


def _read_session(session: Session, exact: bool) -> Transcript:
    if session.source is Source.CLAUDE:
        flat = claude.agents_by_session(claude.flat_agent_files(session.path.parent))
        t = claude.read_transcript(session.path, flat_agents=flat, exact=exact)
        return t.scoped(session.scope)
    if session.source is Source.GEMINI:
        parent = session.parent_id if session.subagent else ""
        return gemini.read_transcript(
            session.path, session.project_path, exact=exact, parent=parent
        )
    # Codex: a fork reads the file again itself (`fork._fork_codex`)
    root = next(
        (p.parent for p in session.path.parents if p.name in ("sessions", "archived_sessions")),
        None,
    )
    return codex.read_transcript(session.path, codex.thread_names(root) if root else {})


def iter_messages(roots: Roots) -> Iterator[SessionMessage]:
    """Every message of every session (for the search index): `stable_id` stays the
    same across rescans of a growing session."""
    for s in scan(roots).sessions:
        yield from read_session(s).messages
