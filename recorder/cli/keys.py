"""`persist keys init|list|allow`: the CURVE keys folder (see `recorder.bus.keys`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from recorder.cli.common import add_log_dir, folder


def _folder(args: argparse.Namespace, *, writes: bool = False) -> Path:
    """The keys folder; one about to be written inside a half-restored log folder is
    refused (the restore that finishes it would find files it did not write)."""
    from recorder.bus.keys import keys_folder

    folder = keys_folder(Path(args.log_dir), args.keys)
    root = Path(args.log_dir).resolve()
    if writes and (root == folder.resolve() or root in folder.resolve().parents):
        from recorder.store.unfinished import refuse_unfinished_restore

        refuse_unfinished_restore(root)
    return folder


def cmd_keys_init(args: argparse.Namespace) -> int:
    from recorder.bus.curve import init_keys
    from recorder.bus.keys import (
        ALLOWED,
        CLIENT,
        PUBLIC_SUFFIX,
        SECRET_SUFFIX,
        SERVER,
        open_to_others,
    )

    keys = _folder(args, writes=True)
    done = init_keys(keys)  # KeyFileError (keys already there, cannot write): exit 1
    if done.mode_was is not None:
        print(f"made {keys} private (it was {done.mode_was:04o}, now 0700)")
    why = "whole and private" if done.exposed else "a keys init that did not finish"
    for role in done.kept:
        print(f"kept the {role} key pair already there ({why})")
    for role, mode in done.exposed.items():
        print(
            f"made a new {role} key pair: {open_to_others(keys / f'{role}{SECRET_SUFFIX}', mode)}; "
            + (
                f"clients holding the old {SERVER}{PUBLIC_SUFFIX} need the new one"
                if role == SERVER
                else f"servers that allowed the old {CLIENT}{PUBLIC_SUFFIX} need the new one "
                "(`persist keys allow` there), and should drop the old"
            )
        )
    if done.disallowed:
        print(
            "took the old client key off the allow-list: "
            + ", ".join(str(p) for p in done.disallowed)
        )
    if done.replaced:
        print("replaced what made no whole pair: " + ", ".join(done.replaced))
    if n := done.allowed_kept:  # the clients it let in are let in still
        print(
            f"kept the allow-list: {n} client key{'s' * (n != 1)} in {keys / ALLOWED} still "
            "get in (a client's key does not change when the server's does; `persist keys "
            "list` shows them)"
        )
    print(f"CURVE keys made in {keys} (secret files yours alone, folder 0700):")
    for path in done.made:
        print(f"  {path}")
    print(
        "Give server.key to clients on other machines; add their client.key with "
        "`persist keys allow FILE`; then use --curve on broker, record, send and replay."
    )
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from recorder.bus.keys import KeyFileError, list_keys

    keys = _folder(args)
    found = list_keys(keys)
    if not found:
        raise KeyFileError(f"no CURVE keys in {keys}: run `persist keys init`")
    for info in found:
        secret = " (+ secret)" if info.has_secret else ""
        print(f"{info.role:<8} {info.public}  {info.path}{secret}")
    return 0


def cmd_keys_allow(args: argparse.Namespace) -> int:
    from recorder.bus.keys import allow_key

    target = allow_key(_folder(args, writes=True), Path(args.file).expanduser())
    print(f"allowed: {target} (brokers and recorders started from now on let it in)")
    return 0


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    p = sub.add_parser("keys", help="CURVE keys: init, list, allow a client's public key")
    ksub = p.add_subparsers(dest="keys_command", required=True)
    for name, func, helptext in (
        ("init", cmd_keys_init, "make a server and a client key pair (and allow the client)"),
        ("list", cmd_keys_list, "show the keys and the allow-list"),
        ("allow", cmd_keys_allow, "add a client's public key file to the allow-list"),
    ):
        q = ksub.add_parser(name, help=helptext)
        if name == "allow":
            q.add_argument("file", help="a client's public key file (client.key)")
        add_log_dir(q)
        q.add_argument(
            "--keys", type=folder, default=None, metavar="FOLDER", help="default <log folder>/keys"
        )
        q.set_defaults(func=func)
