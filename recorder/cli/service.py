"""`persist service`: the recorder as a systemd user unit."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from recorder.bus.endpoints import DEFAULT_PUBLISH, DEFAULT_SUBSCRIBE
from recorder.cli.common import add_log_dir, connect_endpoint, endpoint, fail, state_exit_code
from recorder.daemon.options import RecorderOptions
from recorder.store.layout import Layout
from recorder.store.shell import shell_quote
from recorder.store.status import Health, assess

if TYPE_CHECKING:
    from recorder.daemon.systemd import ManagerView


def cmd_service(args: argparse.Namespace) -> int:
    from recorder.daemon import systemd

    directory = Path(args.unit_dir) if args.unit_dir else None
    execute = False if args.print_only else None
    target = directory or systemd.unit_dir()
    recorded = systemd.unit_log_dir(target / systemd.UNIT_NAME)
    here = Path(args.log_dir).expanduser().absolute()
    elsewhere = recorded is not None and recorded.resolve() != here.resolve()
    if args.action == "install":
        if elsewhere:  # one unit per user: it would silently stop recording that folder
            return fail(
                f"the unit {target / systemd.UNIT_NAME} records {recorded}: `persist service "
                f"uninstall` first to record {here} instead"
            )
        options = RecorderOptions(
            log_dir=here,
            broker=args.broker,
            publish_endpoint=args.publish_endpoint,
            embedded=args.embedded,
        )
        cfg = systemd.UnitConfig(options)
        try:
            path, steps = systemd.install(cfg, directory, start=not args.no_start, execute=execute)
        except OSError as exc:
            return fail(f"--unit-dir {target}: cannot write the unit file ({exc.strerror or exc})")
        print(f"wrote {path}")
        no_manager = bool(steps) and not steps[0].ran and not args.print_only
        held = _held_by_another(Layout(here), recorded is not None, no_manager)
        if held:
            print(f"warning: {held}")
    elif args.action == "uninstall":
        try:
            path, existed, steps = systemd.uninstall(directory, execute=execute)
        except OSError as exc:
            return fail(f"--unit-dir {target}: cannot remove the unit file ({exc.strerror or exc})")
        held = f" (it recorded {recorded})" if recorded is not None else ""
        print(f"removed {path}{held}" if existed else f"{path} was not installed")
    else:
        path, exists, steps = systemd.status(directory, execute=execute)
        which = f", records {recorded}" if recorded is not None else ""
        print(f"unit file   {path} ({'installed' if exists else 'not installed'}{which})")
        gone = systemd.unit_program_problem(path)
        if gone is not None:
            print(f"  problem: {gone}; `{systemd.reinstall_command(path)}` writes it again")
        if elsewhere:
            print(f"            not this folder ({here}): the recorder below is not the unit's")
        health = assess(Layout(Path(args.log_dir)))
        if exists and gone is None and not args.print_only:
            print(f"manager     {_manager_line(systemd.manager_view(), health, here, elsewhere)}")
        print(f"recorder    {health.state}: {health.reason}")
    failed = False
    for step in steps:
        if step.ran:
            result = "ok" if step.code == 0 else f"exit {step.code}"
            print(f"ran: {step.command}  [{result}]{(': ' + step.output) if step.output else ''}")
            failed |= step.code != 0 and args.action != "status"
        else:
            print(f"run: {step.command}")
    if steps and not steps[0].ran and not args.print_only and args.action != "status":
        print(
            "(systemctl --user cannot reach a user service manager here; run the commands "
            "above in your login session)"
        )
    if args.action == "status":  # as `persist status`: 0 recording, 3 not running, 6 degraded
        return 1 if gone is not None else state_exit_code(health.state)
    return 1 if failed else 0


def _manager_line(manager: ManagerView, health: Health, here: Path, elsewhere: bool) -> str:
    """What the user's systemd manager makes of the unit, and the command that has the
    folder recorded where that works: the manager's own, or with no manager to ask, a
    detached recorder (before 2026-12-08 status only said "installed", and named the
    systemctl commands, which fail with no user bus)."""
    said = manager.sentence()
    command = manager.start_command()
    if manager.is_enabled or (command is None and (manager.reachable or elsewhere)):
        return said
    if command is not None:
        return f"{said}; `{command}` has it started, and at login"
    return f"{said}; `{health.start_command(here)}` records the folder meanwhile"


def _held_by_another(layout: Layout, had_unit: bool, no_manager: bool) -> str:
    """What to say when a recorder the unit did not start records the folder: the unit's
    own start then fails ("already recording"; systemd gives up after 10 tries in a
    minute), and one started by `persist launch` stops when its last agent leaves,
    leaving the folder unrecorded though the unit is installed (before 2026-12-07
    install said nothing). With no user manager to reach, no systemctl command can hand
    the folder over: none is named (before 2026-12-08 one was, which failed)."""
    health = assess(layout)
    if not health.running or had_unit:  # (a unit installed before may be the holder)
        return ""
    from recorder.daemon.systemd import NO_MANAGER, UNIT_NAME
    from recorder.launch.registry import recorder_owner

    who = "`persist launch`" if recorder_owner(layout) is not None else "another command"
    running = f"recorder PID {health.pid}, started by {who}, records {layout.root}"
    if no_manager:
        return f"{running}, and {NO_MANAGER}: the unit starts nothing here"
    root = shell_quote(str(layout.root))
    return (
        f"{running}: the unit's recorder cannot start while it runs; `persist stop --log-dir "
        f"{root} && systemctl --user restart {UNIT_NAME}` hands the folder to the unit"
    )


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    p = sub.add_parser("service", help="install, remove or check a systemd user unit")
    p.add_argument(
        "action",
        choices=("install", "uninstall", "status"),
        help="e.g. install (then enable --now)",
    )
    add_log_dir(p)
    p.add_argument(
        "--broker",
        type=connect_endpoint,
        default=DEFAULT_SUBSCRIBE,
        help="broker's subscriber endpoint, e.g. tcp://127.0.0.1:5555",
    )
    p.add_argument(
        "--publish-endpoint",
        type=endpoint,
        default=DEFAULT_PUBLISH,
        help="where publishers connect (the embedded broker binds it)",
    )
    p.add_argument(
        "--embedded",
        choices=("auto", "yes", "no"),
        default="auto",
        help="host the broker in the recorder (auto: when none answers)",
    )
    p.add_argument("--unit-dir", help="where the unit goes (default ~/.config/systemd/user)")
    p.add_argument("--no-start", action="store_true", help="enable without starting now")
    p.add_argument(
        "--print-only",
        action="store_true",
        help="write the unit file but only print the systemctl commands",
    )
    p.set_defaults(func=cmd_service)
