"""Doctor checks of the service: what `persist status` concludes (the same `assess`:
running, heartbeat fresh, degraded, stale, stopped, `status.json` unreadable), whether a
recorder holds the folder's lock, and whether the systemd user unit records this folder
and the user's systemd manager starts it."""

from __future__ import annotations

import fcntl
import os
import shlex
import stat
from pathlib import Path

from recorder.daemon import systemd
from recorder.doctor.model import Area, Finding, Repair, RepairKind, Severity
from recorder.store.fsutil import lock_in_the_way
from recorder.store.layout import Layout
from recorder.store.lock import read_holder
from recorder.store.status import (
    DEGRADED,
    HEALTHY,
    STALE,
    STOPPED,
    Health,
    format_age,
    status_move,
)


def recorder_holds(layout: Layout) -> bool:
    """Whether a recorder holds the folder's lock (probed with a shared lock, dropped at
    once; a recorder starting at that instant retries)."""
    try:
        fd = os.open(layout.lock, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a named pipe: no recorder takes it
            return False
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return not read_holder(layout.lock)[1]  # a `persist` command's, for a moment: none
    finally:
        os.close(fd)


def lock_findings(layout: Layout) -> list[Finding]:
    """The folder's lock files (`recorder.lock`, `retention/retention.lock`,
    `compact.lock`, `doctor.lock`, `sessions/monitor.lock`, `agents/launch.lock`): one
    problem for each that is no regular file (a folder, a named pipe), naming what
    cannot run while it stands there and the command that moves it out of the way
    (never run by --fix: it is not ours). Before 2026-12-07 doctor said nothing of them,
    and named `persist record` as the fix, which failed on that very folder."""
    locks = (
        (
            layout.lock,
            "no recorder can start here, nor `persist prune`, `pin`, `checkpoint` "
            "or a trash change while none runs",
        ),
        (
            layout.retention_lock,
            "no pin, unpin, prune, trash restore or empty can run, nor "
            "the recorder's retention, nor a backup",
        ),
        (
            layout.compact_lock,
            "no closed segment can be compressed (`persist compact`, the "
            "recorder's background compaction)",
        ),
        (layout.doctor_lock, "`persist doctor --fix` cannot run"),
        (
            layout.sessions / "monitor.lock",
            "the session monitor checkpoints no agent session (`persist monitor`, the "
            "recorder's monitor child)",
        ),
        (
            layout.launch_lock,
            "no agent can be launched or registered through its hooks (`persist launch`, "
            "SessionStart and SessionEnd hooks)",
        ),
    )
    out = []
    for path, blocked in locks:
        what = lock_in_the_way(path)
        if what is None:
            continue
        name = path.relative_to(layout.root)
        out.append(
            Finding(
                Area.SERVICE,
                "service.lock-file",
                Severity.PROBLEM,
                f"{name} is {what}, where a lock file goes: until it is moved out of the "
                f"way, {blocked} (the lock file is made again when needed)",
                f"mv {shlex.quote(str(path))} {shlex.quote(str(layout.recovery))}/",
            )
        )
    return out


def hook_findings(layout: Layout) -> list[Finding]:
    """Our hooks in the agents' user settings, and in Claude Code's managed settings
    files (an administrator's install, run as the user's own: before 2026-12-08 doctor
    did not read them), that record into this folder, when the agent cannot run them as
    installed (`hooks.settings.inspect`'s problems: the program they run gone or not
    executable, hooks switched off, by the user or by Claude Code's managed settings,
    the administrator's policy: no fix) or an older install wrote them (a warning): a
    session of that agent is then not recorded, and nothing in the folder shows it.
    Read only; `persist hooks install` fixes it."""
    from recorder.hooks.agents import Agent, Scope, settings_path
    from recorder.hooks.settings import PROGRAM_GONE, claude_managed_files, inspect

    want = layout.root.resolve()
    out = []
    places = [(agent, settings_path(agent, Scope.USER)) for agent in Agent]
    places += [(Agent.CLAUDE, path) for path in claude_managed_files()]
    for agent, path in places:
        found = inspect(agent, path)
        if not any(d.expanduser().resolve() == want for d in found.log_dirs):
            continue
        fix = found.again  # as `hooks status` names it: this file, log folder, --restore
        for problem in found.problems:  # an install fixes a program gone, not a switch
            summary = f"{agent.value} hooks in {path}: {problem}"
            again = fix if problem.startswith(PROGRAM_GONE) else None
            out.append(Finding(Area.SERVICE, "service.hooks", Severity.PROBLEM, summary, again))
        for doubt in found.doubts:  # up to the user's answer at the agent's start
            summary = f"{agent.value} hooks in {path}: {doubt}"
            out.append(Finding(Area.SERVICE, "service.hooks", Severity.WARNING, summary))
        for warning in found.warnings:  # a managed settings file Claude Code ignores
            summary = f"{agent.value} hooks in {path}: {warning}"
            out.append(Finding(Area.SERVICE, "service.hooks", Severity.WARNING, summary))
        if found.outdated:
            summary = f"{agent.value} hooks in {path}: {found.outdated}"
            out.append(Finding(Area.SERVICE, "service.hooks", Severity.WARNING, summary, fix))
    return out


def hooks_waiting_findings(layout: Layout, now: float) -> list[Finding]:
    """What the folder's sessions owe the bus (`hooks.state.waiting_sessions`: marks a
    busy hook call left in `hooks/sessions/<file>.owed/`, ended sessions in
    `hooks/pending/`): one finding, a warning once the oldest waits longer than
    `OWED_WARN_AGE` (an hour: a mark is merged by the session's next call, seconds
    later as a rule; a pending session by any session's next call once a recorder
    listens). Before 2026-12-07 doctor showed neither. Read only; nothing to fix by
    hand: a hook call of the session (or any, for a pending one) with a recorder
    listening sends it."""
    from recorder.hooks.lifecycle import PENDING_PER_CALL
    from recorder.hooks.state import OWED_WARN_AGE, waiting_sessions

    waiting = waiting_sessions(layout.root)
    if not waiting:
        return []
    age = now - waiting[0].since
    listed = "; ".join(
        f"{w.name}: {w.what()}, since {format_age(now - w.since)} ago" for w in waiting[:5]
    )
    more = f"; and {len(waiting) - 5} more" if len(waiting) > 5 else ""
    severity = Severity.WARNING if age > OWED_WARN_AGE else Severity.OK
    late = f", the oldest for over {format_age(OWED_WARN_AGE)}" if age > OWED_WARN_AGE else ""
    summary = (
        f"{len(waiting)} session(s) owe the bus what their hooks could not send yet{late} "
        f"({listed}{more}): each session's next hook call sends its marks, the next hook "
        f"call of any session an ended one (up to {PENDING_PER_CALL} a call), once a "
        "recorder listens (`persist hooks status` lists them)"
    )
    return [Finding(Area.SERVICE, "service.hooks-owed", severity, summary)]


def service_findings(
    layout: Layout,
    health: Health,
    now: float,
    fix_command: str,
    unit_dir: Path | None = None,
) -> list[Finding]:
    """What `persist status` concludes (`assess`), and whether a systemd unit keeps the
    recorder of this folder running: one whose program is there, and that the user's
    systemd manager has enabled (`systemd.manager_view`)."""
    unit_path = (unit_dir or systemd.unit_dir()) / systemd.UNIT_NAME
    unit_folder = systemd.unit_log_dir(unit_path)
    ours = systemd.records(unit_path, layout.root)
    # a unit whose program is gone cannot start: writing it again (which starts it) can
    gone = systemd.unit_program_problem(unit_path) if ours else None
    # what the user manager makes of the unit: only one that answers, and has it enabled,
    # starts it (before 2026-12-08 a unit file alone was "installed", the fix for a
    # stopped recorder a `systemctl --user start` that fails with no user bus)
    manager = systemd.manager_view() if ours and gone is None else None
    if gone is not None:
        start = systemd.reinstall_command(unit_path)
    elif manager is not None and (command := manager.start_command()) is not None:
        start = command
    else:
        start = health.start_command(layout.root)
    restart = f"persist stop --log-dir {shlex.quote(str(layout.root))} && {start}"
    out: list[Finding] = []
    status = health.status
    # a running recorder cannot replace a folder at status.json: neither --fix nor a
    # restart helps; moving it does (before 2026-12-07 doctor named --fix, which refused,
    # and `persist status` and `stop` took the recorder for stopped)
    move = status_move(layout)
    if health.status_problem is not None and health.state != STOPPED and status is None:
        restart = move  # its status unknown (no reserve either): degraded for that alone
    elif health.status_problem is not None and health.state != STOPPED:
        out.append(
            Finding(
                Area.SERVICE,
                "service.status-file",
                Severity.WARNING,
                f"status.json is unusable ({health.status_problem}) while recorder PID "
                f"{health.pid} records: it writes its status to status.reserve instead, and "
                "cannot replace what is there; move it out of the way",
                move,
            )
        )
    if health.state == HEALTHY:
        age = now - status.updated if status is not None else 0.0
        out.append(
            Finding(
                Area.SERVICE,
                "service.recorder",
                Severity.OK,
                f"{health.reason}, heartbeat {format_age(age)} ago",
            )
        )
        for warning in health.warnings:
            if health.status_problem is not None and warning.startswith("status.json is"):
                continue  # the service.status-file finding above
            out.append(Finding(Area.SERVICE, "service.warning", Severity.WARNING, warning))
    elif health.state in (STALE, DEGRADED):
        # a broker it follows is gone: restarting the recorder cannot bring it back, and
        # adds a recorder-down period (before 2026-12-07 that restart was the fix)
        fix: str | None = health.broker_command(layout.root) or restart
        if health.recovery_unwritable is not None:  # no command: room, or a writable folder
            fix = None
        out.append(
            Finding(
                Area.SERVICE,
                f"service.{health.state}",
                Severity.PROBLEM,
                f"recorder {health.state}: {health.reason}",
                fix,
            )
        )
    elif health.status_problem is not None:
        out.append(
            Finding(
                Area.SERVICE,
                "service.status-file",
                Severity.WARNING,
                f"{health.reason} (derived: --fix moves it aside when no recorder holds the "
                "folder; a running recorder rewrites it every second)",
                fix_command,
                Repair(RepairKind.QUARANTINE, (layout.status,)),
            )
        )
        if not recorder_holds(layout):
            out.append(
                Finding(
                    Area.SERVICE,
                    "service.stopped",
                    Severity.WARNING,
                    "no recorder is recording this folder (none holds recorder.lock)",
                    start,
                )
            )
    else:
        out.append(
            Finding(
                Area.SERVICE,
                "service.stopped",
                Severity.WARNING,
                f"no recorder is recording this folder ({health.reason})",
                start,
            )
        )
    if unit_folder is None and unit_path.exists():
        text = f"{unit_path} exists but names no log folder"
    elif unit_folder is None:
        text = "no systemd user unit (`persist service install` keeps the recorder running)"
    elif gone is not None:
        out.append(Finding(Area.SERVICE, "service.unit", Severity.PROBLEM, gone, start))
        return out
    elif manager is not None and not manager.is_enabled:
        # the recorder (if any) runs by other means; the unit keeps nothing running
        summary = f"systemd user unit installed for this folder ({unit_path}), but " + (
            f"{systemd.NO_MANAGER}: nothing starts it"
            if not manager.reachable
            else f"not enabled ({manager.sentence()})"
        )
        fix = manager.start_command()
        out.append(Finding(Area.SERVICE, "service.unit", Severity.WARNING, summary, fix))
        return out
    elif ours:
        text = f"systemd user unit installed and enabled for this folder ({unit_path})"
    else:
        text = f"the systemd user unit records another folder ({unit_folder})"
    out.append(Finding(Area.SERVICE, "service.unit", Severity.OK, text))
    return out
