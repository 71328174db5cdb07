"""What `persist sessions` shows: each session with what the agent would do to it
(cleanup), what we hold of it (a protected copy), and the state of its project."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import orjson

from recorder.errors import PersistError
from recorder.sources.claude import encode_project
from recorder.sources.copies import copy_folder, list_copies, restore_to
from recorder.sources.discover import Roots, qualify, read_session, scan
from recorder.sources.gemini_cleanup import Due, GeminiSettings, plan
from recorder.sources.jsonl import read_small
from recorder.sources.model import Session, Source, Transcript, name_id
from recorder.store.layout import Layout, sessions_searchable_without_journal
from recorder.store.shell import shell_quote

CLAUDE_CLEANUP_DAYS = 30  # Claude Code's default cleanupPeriodDays


@dataclass
class Retention:
    """When each agent's own cleanup deletes a session, and why."""

    claude_days: float | None  # days after its last change (None: never)
    gemini: GeminiSettings | None
    due: dict[Path, Due] = field(default_factory=dict)  # Gemini files, by `plan_gemini`

    @classmethod
    def read(cls, roots: Roots) -> Retention:
        claude_days: float | None = CLAUDE_CLEANUP_DAYS
        if roots.claude is not None:
            settings = _json(roots.claude / "settings.json")
            days = settings.get("cleanupPeriodDays")
            if isinstance(days, int | float) and not isinstance(days, bool) and days > 0:
                claude_days = float(days)
        gemini = GeminiSettings.read(roots.gemini) if roots.gemini is not None else None
        return cls(claude_days, gemini)

    @property
    def problems(self) -> list[str]:
        """Settings that could not be read, policies the agent refuses (one line each)."""
        return self.gemini.problems if self.gemini is not None else []

    def plan_gemini(self, files: list[Session], now: float) -> None:
        """What Gemini CLI's cleanup deletes of these chat files (every file of every
        project, one entry each, as `scan` read them), project by project."""
        if self.gemini is None:
            return
        chats: dict[Path, list[Session]] = {}
        for s in files:
            # only `chats/session-*.json[l]`: a sub-agent's files, in `chats/<session
            # id>/`, go with their session, and stay when its file is gone
            if s.source is Source.GEMINI and not s.subagent and s.path.parent.name == "chats":
                chats.setdefault(s.path.parent, []).append(s)
        for group in chats.values():
            policy = self.gemini.policy(group[0].project_path)
            self.due.update(plan(group, policy, now))

    def expires(self, s: Session) -> tuple[float | None, str]:
        """When the agent's own cleanup would delete this session (epoch seconds), and
        why (the rule, or what makes it due)."""
        if s.source is Source.CLAUDE and self.claude_days is not None:
            at = s.mtime + self.claude_days * 86400  # by modification time
            return at, f"cleanupPeriodDays {self.claude_days:g} after its last change"
        if s.source is Source.GEMINI:
            due = self.due.get(s.path)
            return (due.at, due.why) if due is not None else (None, "")
        return None, ""


def _json(path: Path) -> dict[str, object]:
    raw = read_small(path)
    if raw is None:
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class LiveProcess:
    """An agent process running a session now, as its registry entry names it."""

    pid: int
    cwd: str  # its working folder ("" when the entry names none)


def live_claude_sessions(root: Path | None) -> dict[str, list[LiveProcess]]:
    """Session id -> the Claude Code processes running it now, from the registry it
    keeps in `<root>/sessions/<pid>.json` (a session running there is not resumed twice)."""
    found: dict[str, list[LiveProcess]] = {}
    if root is None:
        return found
    try:
        entries = list((root / "sessions").glob("*.json"))
    except OSError:
        return found
    for path in entries:
        data = _json(path)
        pid, sid, cwd = data.get("pid"), data.get("sessionId"), data.get("cwd")
        if (
            not isinstance(pid, int)
            or isinstance(pid, bool)
            or pid <= 0
            or not isinstance(sid, str)
        ):
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue  # a registry file left by a process that died
        except (PermissionError, OverflowError):
            pass
        found.setdefault(sid, []).append(LiveProcess(pid, cwd if isinstance(cwd, str) else ""))
    return found


def _running(
    s: Session, processes: list[LiveProcess], folders: set[str]
) -> tuple[LiveProcess | None, bool]:
    """The Claude Code process running `s` now, and whether it is surely `s`. Claude
    Code resumes an id in its cwd's project folder, so for an id in several project
    `folders` the process whose cwd encodes to `s`'s folder runs `s`; one whose cwd is
    none of them (a worktree's, or none named) may run any of them: not sure."""
    if not processes:
        return None, True
    here = [p for p in processes if p.cwd and encode_project(p.cwd) == s.folder]
    if here or not s.scope:
        return (here or processes)[0], True
    stray = [p for p in processes if not p.cwd or encode_project(p.cwd) not in folders]
    return (stray[0], False) if stray else (None, True)


class GitState:
    """Whether a project has uncommitted changes: `git status` with a timeout per project
    and a total budget counted from the first question, each project asked once (None:
    unknown, not a repo, too slow). `prefetch` asks about many at once."""

    WORKERS = 8  # git statuses at a time (each is its own process: the threads only wait)

    def __init__(self, per_call: float = 1.0, budget: float = 3.0) -> None:
        self.per_call = per_call
        self.budget = budget
        self.deadline: float | None = None
        self.known: dict[str, bool | None] = {}

    def prefetch(self, projects: Iterable[str]) -> None:
        """Ask about every project in `projects` at once, not one after another."""
        todo = sorted({p for p in projects if p and p not in self.known})
        if len(todo) < 2:
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(self.WORKERS, len(todo))) as pool:
            for project, answer in zip(todo, pool.map(self._ask, todo), strict=True):
                self.known[project] = answer

    def dirty(self, project: str) -> bool | None:
        if not project or project in self.known:
            return self.known.get(project)
        answer = self.known[project] = self._ask(project)
        return answer

    def _ask(self, project: str) -> bool | None:
        if self.deadline is None:
            self.deadline = time.monotonic() + self.budget
        left = self.deadline - time.monotonic()
        if left <= 0 or not Path(project).is_dir():
            return None
        try:
            # Only read the user's repository, and run nothing it configures:
            # --no-optional-locks (a plain status refreshes .git/index under
            # index.lock, which a git command the user runs meanwhile would fail on),
            # no fsmonitor hook or daemon, no clean filter (a status hashes a file
            # whose stat changed through its filter: `git config` lists the drivers,
            # reading config runs nothing), no status of submodules (their own config).
            drivers = subprocess.run(
                ["git", "-C", project, "config", "--name-only", "--get-regexp", r"^filter\."],
                capture_output=True,
                timeout=min(self.per_call, left),
                check=False,
            )
            listed = drivers.stdout.decode(errors="replace").splitlines()
            names = sorted({line.rsplit(".", 1)[0] for line in listed if "." in line})
            argv = ["git", "--no-optional-locks", "-c", "core.fsmonitor=false"]
            for name in names:
                argv += ["-c", f"{name}.clean=", "-c", f"{name}.process="]
            argv += ["-C", project, "status", "--porcelain", "--untracked-files=no"]
            left = self.deadline - time.monotonic()
            if left <= 0:
                return None
            out = subprocess.run(
                [*argv, "--ignore-submodules=all"],
                capture_output=True,
                timeout=min(self.per_call, left),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return bool(out.stdout.strip()) if out.returncode == 0 else None


@dataclass
class SessionRow:
    session: Session
    idle_minutes: float | None
    expires: float | None
    protected: bool  # we hold a copy
    copy_size: int  # bytes of the main file our copy covers
    deleted: bool  # the agent deleted it: only our copy is left
    dirty: bool | None
    cleanup_why: str = ""  # the rule `expires` follows, or what makes it due now
    live: LiveProcess | None = None  # the agent process running this session now
    live_unsure: bool = False  # `live` runs this id, maybe in a namesake's folder instead

    @property
    def live_pid(self) -> int | None:
        return self.live.pid if self.live is not None and not self.live_unsure else None

    @property
    def maybe_live_pid(self) -> int | None:
        return self.live.pid if self.live is not None and self.live_unsure else None

    def live_warning(self) -> str:
        """What to say before resuming or forking it ("" when nothing runs it)."""
        if self.live is None:
            return ""
        if not self.live_unsure:
            return f"warning: Claude Code (PID {self.live.pid}) is running this session now"
        cwd = self.live.cwd
        where = f"from {shell_quote(cwd)}, the project of none" if cwd else "its folder unnamed"
        return (
            f"warning: Claude Code (PID {self.live.pid}) is running a session with this id "
            f"({where}): the id is in several project folders and we cannot tell which of "
            "them it runs"
        )


def list_sessions(
    roots: Roots,
    layout: Layout,
    *,
    now: float | None = None,
    git: GitState | None = None,
    source: Source | None = None,
    workers: int = 1,
) -> tuple[list[SessionRow], list[str]]:
    """Every session newest first (deleted ones we hold included), and the problems met."""
    now = time.time() if now is None else now
    roots = roots.only(source)
    # a log folder named that does not exist is read, never made (for its cache)
    kept = sessions_searchable_without_journal(layout.root)
    result = scan(roots, layout.sessions / "scan-cache.json" if kept else None, workers=workers)
    retention = Retention.read(roots)
    retention.plan_gemini(result.files, now)
    copies = {c.session.ident: c for c in list_copies(layout)}
    if git is not None:
        git.prefetch([s.project_path for s in result.sessions])
    rows: list[SessionRow] = []
    seen: set[tuple[Source, str, str]] = set()
    for s in result.sessions:
        seen.add(s.ident)
        c = copies.get(s.ident)
        rows.append(_row(s, now, retention, git, c is not None, c.size if c else 0, False))
    for ident, c in copies.items():
        if ident in seen or (source is not None and c.session.source is not source):
            continue
        if c.session.path.exists():
            continue  # still there, but not under the roots asked about
        rows.append(_row(c.session, now, None, git, True, c.size, True))
    qualify(r.session for r in rows)  # a deleted session's id may be in another folder too
    # a sub-agent's file that a deleted session we hold took into its copy is shown
    # there, not as a conversation of its own
    held = {p for r in rows if r.deleted for p in r.session.extra_paths}
    if held:
        rows = [r for r in rows if not (r.session.subagent and r.session.path in held)]
    live = live_claude_sessions(roots.claude)
    folders: dict[str, set[str]] = {}
    for r in rows:
        if r.session.source is Source.CLAUDE:
            folders.setdefault(r.session.id, set()).add(r.session.folder)
    for r in rows:
        if r.session.source is Source.CLAUDE:
            found = live.get(r.session.id, [])
            r.live, sure = _running(r.session, found, folders[r.session.id])
            r.live_unsure = not sure
    rows.sort(key=lambda r: r.session.last_ts or r.session.mtime, reverse=True)
    return rows, [*result.problems, *retention.problems]


def _row(
    s: Session,
    now: float,
    retention: Retention | None,
    git: GitState | None,
    protected: bool,
    size: int,
    deleted: bool,
) -> SessionRow:
    last = s.last_ts or s.mtime or None
    expires, why = retention.expires(s) if retention else (None, "")
    return SessionRow(
        s,
        max(0.0, (now - last) / 60) if last else None,
        expires,
        protected,
        size,
        deleted,
        git.dirty(s.project_path) if git else None,
        why,
    )


class SessionNotFound(PersistError):
    """No session, or more than one, answers to a reference."""


def find_session(rows: list[SessionRow], ref: str) -> SessionRow:
    """The one session `ref` names: its id, its key (`source:id`, or `claude:id@folder`
    for an id in several Claude project folders), or a unique prefix of either
    (`claude:3f2a` looks only at Claude Code sessions). A whole id or key beats a
    prefix; case is ignored unless it tells sessions apart (`-tmp-Pa` and `-tmp-pa`
    are two project folders; the search index keeps topics lowercased). The one
    resolver behind `persist fork|protect|export --session|launch --session` and the
    TUI. A name that is not UTF-8 (`$'claude:r\\xe9'`) names the session whose id was
    taken from it (`name_id`: `r\\xe9`)."""
    typed, ref = ref, name_id(ref)
    said = repr(typed) if typed == ref else shell_quote(typed)
    for whole in (True, False):
        found = _named(rows, ref.lower(), str.lower, whole)
        spelled = _named(found, ref, str, whole)  # as typed: case only picks among those
        if len(found) == 1 or len(spelled) == 1:
            return (spelled or found)[0]
        if found:
            names = ", ".join(
                f"{shell_quote(r.session.key)} ({r.session.project_path or r.session.path.parent})"
                for r in found[:5]
            )
            more = f" and {len(found) - 5} more" if len(found) > 5 else ""
            raise SessionNotFound(
                f"{said} matches {len(found)} sessions: {names}{more}; name one by its key"
            )
    raise SessionNotFound(f"no session {said} (see `persist sessions`)")


def _named(
    rows: list[SessionRow], want: str, fold: Callable[[str], str], whole: bool
) -> list[SessionRow]:
    """The rows whose id or key (folded) is `want`, or starts with it; a key only when
    `want` names more than a source (`claude:` alone is no prefix)."""

    def named(name: str) -> bool:
        return fold(name) == want if whole else fold(name).startswith(want)

    keyed = bool(want.partition(":")[2])
    return [r for r in rows if named(r.session.id) or (keyed and named(r.session.key))]


def short_refs(rows: list[SessionRow], least: int = 8) -> list[str]:
    """For each row, the shortest reference `find_session` takes to it alone, as
    listings show it: its id's first `least` characters or more (Codex ids begin with
    the time: sessions started within a minute share their first 8), its whole id,
    else its key (an id in several Claude project folders)."""
    folded = [r.session.id.lower() for r in rows]
    twins = Counter(folded)
    order = sorted(twins)
    at = {f: i for i, f in enumerate(order)}
    refs = []
    for r, f in zip(rows, folded, strict=True):
        sid = r.session.id
        if twins[f] > 1 or ":" in sid:  # a whole id may still name one (by its case)
            try:
                refs.append(sid if find_session(rows, sid) is r else r.session.key)
            except SessionNotFound:
                refs.append(r.session.key)
            continue
        i = at[f]  # the ids most like it are its neighbours in sorted order
        near = [order[j] for j in (i - 1, i + 1) if 0 <= j < len(order)]
        common = max((_common(f, g) for g in near), default=0)
        refs.append(sid[: max(least, common + 1)])
    return refs


def _common(a: str, b: str) -> int:
    """How many characters `a` and `b` begin with alike."""
    return next(
        (n for n, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def read_row(layout: Layout, row: SessionRow) -> Transcript:
    """A listed session in full, from our copy when the agent deleted it."""
    if not row.deleted:
        return read_session(row.session)
    with tempfile.TemporaryDirectory(prefix="persist-read-") as tmp:
        copy = restore_to(copy_folder(layout, row.session), Path(tmp))
        return read_session(replace(row.session, path=copy, extra_paths=()))
