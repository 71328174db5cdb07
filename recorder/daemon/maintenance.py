"""Retention changes (prune, trash restore and empty) and the journal records that log them.

Every change is logged as an `event` record in the journal, written by the one
journal writer there is: with a recorder holding the folder, a request goes to it
(`control/<id>.maint`, answered in `control/<id>.maint-done`, like checkpoint
requests) and the recorder prunes on its main thread, between its checkpoints,
and appends the record; without one, we take the folder's lock ourselves, do
the change and append the record to the journal's last segment (marked
`"offline": true`). The record is written before the change is marked complete
(a prune's entry "done", a restored entry's folder gone, an emptied one deleted),
so a change killed midway is never complete without its record.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from recorder.daemon.control import (
    MAINTENANCE_SUFFIX,
    RecorderGone,
    exchange,
    no_answer,
    requests_named,
)
from recorder.errors import PersistError
from recorder.store import bundles, clockwatch, renderings
from recorder.store.fsutil import atomic_write
from recorder.store.journal import Journal
from recorder.store.jsontext import dumps as json_dumps
from recorder.store.layout import Layout, segment_number
from recorder.store.lock import AlreadyRunning, InstanceLock
from recorder.store.pruned import (
    mark_removed_by_hand,
    missing_segments,
    read_pruned,
    retention_at_work,
    retention_lock,
)
from recorder.store.records import KIND_EVENT
from recorder.store.retention import (
    DONE,
    EMPTYING,
    EVENT_EMPTY,
    EVENT_PRUNE,
    EVENT_RESTORE,
    PrunePlan,
    TrashEntry,
    execute,
    plan_prune,
    seq_ranges_words,
    write_state,
)
from recorder.store.retention_config import Policy
from recorder.store.room import give_back_room, room_to_write
from recorder.store.status import older_refusal, running_older
from recorder.store.trash import (
    Restored,
    begin_empty,
    discard,
    due_for_empty,
    find_entry,
    finish_journaled_prunes,
    forget_entry,
    journaled,
    list_trash,
    pinned_entries,
    refuse_interrupted,
    restore_entry,
    sweep,
)

REQUEST_SUFFIX = MAINTENANCE_SUFFIX
REPLY_SUFFIX = ".maint-done"
ANSWER_WAIT = 60.0  # seconds a client waits for the recorder to prune

JournalEvent = Callable[[dict[str, Any]], None]  # appends an event record to the journal
JournalReady = Callable[[], None]  # MaintenanceError when no record can be journaled now


class MaintenanceError(PersistError):
    """The recorder refused or failed a retention request, or did not answer."""


@dataclass(frozen=True)
class PruneResult:
    plan: PrunePlan | dict[str, Any]  # a plan (here) or its JSON (from the recorder)
    trash: str | None  # the trash entry made (None: nothing went, or a dry run)
    via: str  # "recorder", "offline" or "dry-run"

    def plan_json(self) -> dict[str, Any]:
        return self.plan.to_json() if isinstance(self.plan, PrunePlan) else self.plan


def prune_event(plan: PrunePlan, entry: TrashEntry, by: str) -> dict[str, Any]:
    """The journal record of one prune (without seq/ts: the writer adds them)."""
    j = plan.to_json()
    return {
        "kind": KIND_EVENT,
        "event": EVENT_PRUNE,
        "by": by,
        "trash": entry.id,
        "segments": [s["name"] for s in j["segments"]],
        "bytes": j["bytes"],
        "from_seq": j["from_seq"],
        "to_seq": j["to_seq"],
        "seq_ranges": j["seq_ranges"],
        "from_ts": j["from_ts"],
        "to_ts": j["to_ts"],
        "checkpoints": j["checkpoints"],
        "restated": j["restated"],
        "policy": j["policy"],
        "detail": f"pruned {len(j['segments'])} segments ({j['bytes']:,} bytes, seq "
        f"{seq_ranges_words(j['seq_ranges'], j['from_seq'], j['to_seq'])}) and "
        f"{len(j['checkpoints'])} checkpoints into trash/{entry.id}",
    }


def _prune_here(
    layout: Layout,
    policy: Policy,
    by: str,
    now: float | None,
    journal: JournalEvent,
    via: str,
    wait: float = 30.0,
    ready: JournalReady | None = None,
) -> PruneResult:
    """Refused while an interrupted prune's entry is in the trash; the entry is "done"
    once its event is journaled. Its writes use the room kept for them (`store.room`);
    `ready` refuses before anything moves when the record could not be journaled.
    Refused while the wall clock has stepped (`clock_held`)."""
    clock_held()
    with retention_lock(layout, wait), room_to_write(layout):
        finish_journaled_prunes(layout)
        refuse_interrupted(layout)
        plan = plan_prune(layout, policy, now)
        if plan.empty:
            return PruneResult(plan, None, via)
        if ready is not None:
            ready()
        before = {e.id for e in list_trash(layout)}
        try:
            entry = execute(layout, plan, by, now)
            journal(prune_event(plan, entry, by))
            write_state(entry, DONE)
        except OSError as exc:
            raise _prune_stopped(layout, exc, before) from None
        renderings.drop(layout, _segment_numbers([entry]))  # unused now: derived data
        return PruneResult(plan, entry.id, via)


def _segment_numbers(entries: list[TrashEntry]) -> list[int]:
    """The numbers of the segments trash entries hold (or held)."""
    names = (str(f["name"]) for e in entries for f in e.files if f.get("kind") == "segment")
    return [n for n in map(segment_number, names) if n is not None]


def clock_held() -> None:
    """MaintenanceError while this process has seen the wall clock step (a step ahead
    would prune today's segments and empty fresh trash entries; a step back would date
    a trash entry in the past, emptied early once the clock is right), until it goes
    back or has kept to it for an hour (`store.clockwatch`)."""
    held = clockwatch.WATCH.held()
    if held is not None:
        raise MaintenanceError(held)


def _prune_stopped(layout: Layout, exc: OSError, before: set[str]) -> MaintenanceError:
    """What a prune that failed midway left, said in one line."""
    why = exc.strerror or str(exc)
    made = sorted({e.id for e in list_trash(layout)} - before)
    if not made:
        hint = f": {full_disk_hint(layout)}" if disk_full(exc) else ""
        return MaintenanceError(
            f"the prune stopped before it moved anything, nothing was done ({why}){hint}"
        )
    return MaintenanceError(
        f"the prune stopped ({why}): `persist trash list` shows what trash/{made[0]} holds "
        f"and `persist trash restore {made[0]}` puts it back"
    )


# -- the recorder's end ------------------------------------------------------------------
def recorder_prune(
    layout: Layout,
    policy: Policy,
    by: str,
    now: float | None,
    journal: JournalEvent,
    ready: JournalReady | None = None,
) -> PruneResult:
    """For the recorder: prune now, its event given to `journal` (`ready` first)."""
    return _prune_here(
        layout, policy, by, now, journal, "recorder", wait=1.0, ready=ready
    )  # never hold up a tick


def disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def full_disk_hint(layout: Layout) -> str:
    """How to go on when a retention change found the disk full."""
    return (
        f"the disk is full and the room kept for retention's own writes "
        f"(retention/{layout.room_reserve.name}) is used up or was never made: free some "
        "space on that disk and run it again"
    )


def pending_requests(layout: Layout, names: list[str] | None = None) -> list[Path]:
    """Maintenance request files waiting for an answer (`control.requests_named`)."""
    return requests_named(layout, REQUEST_SUFFIX, names)


def read_request(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise MaintenanceError(f"the request is unreadable ({exc})") from None
    if not isinstance(data, dict) or data.get("kind") not in ("prune", "event"):
        raise MaintenanceError("the request is not a prune or event request")
    return data


def policy_from_json(data: Any) -> Policy:
    if not isinstance(data, dict):
        raise MaintenanceError("the request's policy is not an object")
    older, size = data.get("older_than_s"), data.get("max_size_bytes")
    if older is not None and not isinstance(older, (int, float)):
        raise MaintenanceError("the request's older_than_s is not a number")
    if size is not None and not isinstance(size, int):
        raise MaintenanceError("the request's max_size_bytes is not a whole number")
    return Policy(None if older is None else float(older), size)


def answer(path: Path, reply: dict[str, Any]) -> None:
    data = json_dumps(reply)  # a path in it not UTF-8 too (the log folder's name)
    with contextlib.suppress(OSError):
        try:
            atomic_write(path.with_suffix(REPLY_SUFFIX), data, durable=False)
        except OSError:
            _answer_in_place(path, data)
            return
        path.unlink()


def _answer_in_place(path: Path, data: bytes) -> None:
    """On a full disk: the reply written over the request's own bytes, which has a
    block already (a short reply, such as a refusal, needs no new one), then renamed
    to the reply's name; OSError when even that cannot be done."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
    os.rename(path, path.with_suffix(REPLY_SUFFIX))


# -- the client's end --------------------------------------------------------------------
def _ask(layout: Layout, request: dict[str, Any], timeout: float = ANSWER_WAIT) -> dict[str, Any]:
    body = orjson.dumps(request)
    try:
        try:
            raw = exchange(layout, body, timeout, REQUEST_SUFFIX, REPLY_SUFFIX)
        except OSError as exc:
            if not disk_full(exc):
                raise
            give_back_room(layout)  # the request is a file: written in the room kept
            raw = exchange(layout, body, timeout, REQUEST_SUFFIX, REPLY_SUFFIX)
    except RecorderGone as exc:
        raise MaintenanceError(str(exc)) from None
    except OSError as exc:
        if not disk_full(exc):
            raise
        raise MaintenanceError(
            f"nothing was done: the request to the running recorder cannot be written "
            f"({exc.strerror}); {full_disk_hint(layout)}"
        ) from None
    if isinstance(raw, bool):
        raise MaintenanceError(no_answer(str(request.get("kind", "maintenance")), timeout, raw))
    try:
        reply = orjson.loads(raw)
    except ValueError:
        raise MaintenanceError("the recorder's reply is not JSON") from None
    if not isinstance(reply, dict) or reply.get("ok") is not True:
        error = reply.get("error") if isinstance(reply, dict) else None
        raise MaintenanceError(f"the recorder refused: {error or 'no reason given'}")
    return reply


def _offline_lock(layout: Layout, role: str) -> InstanceLock | None:
    """The folder's lock if no recorder holds it (then we write the journal), else None.
    Another `persist` command holding it is waited for (`TOOL_WAIT`, then `FolderBusy`
    naming it): before 2026-12-07 it was taken for a running recorder and asked."""
    lock = InstanceLock(layout.lock, role)
    try:
        lock.acquire()
    except AlreadyRunning:
        refuse_older_recorder(layout, role)
        return None
    return lock


def refuse_older_recorder(layout: Layout, role: str) -> None:
    """MaintenanceError at once when the running recorder is older than this persist
    (`status.running_older`): one from before 2026-12-07 may not take the request at
    all, and before 2026-12-07 the command waited `ANSWER_WAIT` seconds for it and then
    blamed an overload. Asked before anything is changed."""
    older = running_older(layout)
    if older is not None:
        what = {"prune": "the prune", "trash": "the trash change"}.get(role, f"the {role}")
        raise MaintenanceError(
            older_refusal(
                layout,
                older,
                f"it may not take prune or trash requests, so {what} is not asked of it "
                "(nothing was changed)",
            )
        )


@contextlib.contextmanager
def journaling(layout: Layout, role: str) -> Iterator[JournalEvent]:
    """Who journals the records of a change made here: the running recorder (asked), or
    we, holding the folder's lock for the whole change. Taken before retention's lock,
    as the recorder and `prune` take them: a change that held retention's lock while it
    waited for the folder's would wait for a `persist prune` waiting for it."""
    lock = _offline_lock(layout, role)
    if lock is None:

        def ask(event: dict[str, Any]) -> None:
            _ask(layout, {"kind": "event", "event": event})

        yield ask
        return
    try:
        yield lambda event: append_offline(layout, event)
    finally:
        lock.release()


def append_offline(layout: Layout, event: dict[str, Any]) -> None:
    """Append `event` to the journal while holding the folder's lock (no recorder)."""
    journal = Journal(layout)
    journal.open()
    journal.append({**event, "ts": time.time(), "offline": True})
    journal.close()


def log_event(layout: Layout, event: dict[str, Any], role: str = "prune") -> str:
    """Journal a retention event: through the running recorder, or ourselves (the
    caller holds no retention lock: see `journaling`)."""
    lock = _offline_lock(layout, role)
    if lock is None:
        _ask(layout, {"kind": "event", "event": event})
        return "recorder"
    try:
        append_offline(layout, event)
        return "offline"
    finally:
        lock.release()


def prune(
    layout: Layout, policy: Policy, *, dry_run: bool, by: str = "persist prune"
) -> PruneResult:
    """`persist prune`: the plan (dry run), or the prune itself and its journal record."""
    if not layout.segments.is_dir():
        raise MaintenanceError(f"no journal in {layout.root}")
    if dry_run:  # refused as the real run would be (unless a prune is at work now)
        if not retention_at_work(layout):
            refuse_interrupted(layout)
        return PruneResult(plan_prune(layout, policy), None, "dry-run")
    lock = _offline_lock(layout, "prune")
    if lock is None:
        reply = _ask(layout, {"kind": "prune", "policy": policy.to_json(), "by": by})
        return PruneResult(dict(reply.get("plan") or {}), reply.get("trash"), "recorder")
    try:
        return _prune_here(layout, policy, by, None, lambda e: append_offline(layout, e), "offline")
    except OSError as exc:
        raise MaintenanceError(
            f"the prune stopped: {exc}; `persist trash list` shows what was moved and "
            "`persist trash restore ID` puts it back"
        ) from None
    finally:
        lock.release()


def forget_missing(layout: Layout, *, dry_run: bool) -> list[str]:
    """`persist prune --forget-missing`: segments gone from segments/ without a prune
    (deleted or moved by hand) are written down as removed on purpose, so that
    checkpoints are taken again and verify without them; then the journal record.
    Returns their names (what would be written down, on a dry run)."""
    if not layout.segments.is_dir():
        raise MaintenanceError(f"no journal in {layout.root}")
    if dry_run:
        read_pruned(layout)  # PrunedUnreadable, as the real run
        return missing_segments(layout)
    refuse_older_recorder(layout, "prune")  # before the ledger is written: its record too
    with retention_lock(layout):
        names = mark_removed_by_hand(layout)
    if names:
        log_event(
            layout,
            {
                "kind": KIND_EVENT,
                "event": "forget-missing",
                "segments": names,
                "detail": f"{len(names)} segment(s) missing from segments/ written down as "
                f"removed by hand: {', '.join(names)}",
            },
        )
    return names


def restore(layout: Layout, ref: str) -> Restored:
    """`persist trash restore ID`: the files back, the journal record, then the entry
    goes (also an interrupted prune's: what it moved comes back). A restore killed
    after its record is finished without a second one."""
    with journaling(layout, "trash") as journal, retention_lock(layout), room_to_write(layout):
        try:
            finish_journaled_prunes(layout)
            entry = find_entry(layout, ref)
            restored = restore_entry(layout, entry)
            try:
                if not restored.already_journaled:
                    journal(restore_event(restored))
            except MaintenanceError as exc:  # its files are back: "nothing was done" is false
                raise MaintenanceError(
                    f"the files of trash/{entry.id} are back in place, but the restore is not "
                    f"journaled ({_unjournaled(exc)}): `persist trash restore {entry.id}` again "
                    "finishes it"
                ) from None
            forget_entry(layout, entry)
        except OSError as exc:
            raise MaintenanceError(f"the restore stopped: {exc}") from None
    return restored


def _unjournaled(exc: MaintenanceError) -> str:
    """Why a record was not journaled, without a "nothing was done" that is not so."""
    return str(exc).split(": the event request is withdrawn")[0]


def restore_event(restored: Restored) -> dict[str, Any]:
    """The journal record of a restore: `segments` are all the entry's, in segments/
    now; `interrupted` says when it ended a prune or restore a kill cut short."""
    entry, ended = restored.entry, restored.ended
    back = f"{len(restored.moved)} files back"
    event: dict[str, Any] = {
        "kind": KIND_EVENT,
        "event": EVENT_RESTORE,
        "trash": entry.id,
        "segments": [f["name"] for f in entry.files if f["kind"] == "segment"],
        "checkpoints": entry.plan.get("checkpoints", []),
        "bytes": entry.bytes,
        "detail": f"restored trash/{entry.id}: {back}",
    }
    if ended is not None:
        event["interrupted"] = ended.what
        done = {"prune": "undid the interrupted prune"}.get(
            ended.what, "finished the interrupted restore of"
        )
        event["detail"] = f"{done} trash/{entry.id} ({ended.held}): {back}"
    return event


@dataclass(frozen=True)
class Emptied:
    gone: list[TrashEntry]  # entries deleted (those an interrupted empty began too)
    leftovers: list[str] = field(default_factory=list)  # ids of half-deleted folders swept
    already_journaled: list[str] = field(default_factory=list)  # ids a killed empty journaled
    # entry id -> the pinned checkpoints it holds: never emptied (`trash.pinned_entries`)
    pinned: dict[str, list[str]] = field(default_factory=dict)
    # why the search index still holds words of what was deleted (None: it does not)
    unforgotten: str | None = None
    # restore bundles removed: written before, they held messages deleted now
    bundles: list[str] = field(default_factory=list)
    # of those, the ones agents still running were handed: name -> who ("coder (pid 7)")
    bundle_users: dict[str, list[str]] = field(default_factory=dict)

    def bundle_lines(self) -> list[str]:
        """One line per bundle removed, naming the agents still running it was handed."""
        out = []
        for name in self.bundles:
            line = f"removed restore bundle {name}: it held messages deleted now"
            users = self.bundle_users.get(name)
            if users:
                line += (
                    f", though {', '.join(users)} {'was' if len(users) == 1 else 'were'} "
                    "handed it and still runs (the deletion asked for wins: its files are gone)"
                )
            out.append(line)
        return out


# Takes the search index's rows and words of pruned segments out while the trash holds
# their files (`search.indexer.forget_pruned_words`, given by the caller: the daemon
# sits below the search layer); None when done, else why not.
ForgetWords = Callable[[], "str | None"]


def empty(
    layout: Layout,
    older_than: float,
    now: float | None = None,
    journal: JournalEvent | None = None,
    wait: float = 30.0,
    forget: ForgetWords | None = None,
) -> Emptied:
    """`persist trash empty` (and the recorder's, with its `journal`): the search index
    told to forget the words of what goes (`forget`, before any file goes: after, it
    cannot), the entries past `older_than` marked and the ledger written, the journal
    record, then the deletion.
    Refused while an interrupted prune's entry is in the trash. Entries an empty killed
    after its record began are deleted without a second one. Refused while the wall
    clock has stepped (`clock_held`)."""
    now = time.time() if now is None else now
    clock_held()
    with retention_lock(layout, wait), room_to_write(layout):
        try:
            finish_journaled_prunes(layout)
            refuse_interrupted(layout)
            unforgotten = None
            if forget is not None and due_for_empty(layout, older_than, now):
                unforgotten = forget()
            gone = begin_empty(layout, older_than, now)
            before = [
                e.id for e in gone if e.state == EMPTYING and journaled(layout, e, EVENT_EMPTY)
            ]
            fresh = [e for e in gone if e.id not in before]
            if fresh:
                event = empty_event(fresh, older_than)
                try:
                    if journal is None:
                        log_event(layout, event, "trash")
                    else:
                        journal(event)
                except MaintenanceError as exc:  # marked, not deleted: said as it is
                    ids = ", ".join(f"trash/{e.id}" for e in fresh)
                    raise MaintenanceError(
                        f"{ids} marked for emptying, nothing deleted yet, but the empty is not "
                        f"journaled ({_unjournaled(exc)}): `persist trash empty` again "
                        "finishes it (it deletes nothing before its record is journaled)"
                    ) from None
            for entry in gone:
                assert entry.path is not None
                discard(layout, entry.path)
            # their messages' renderings go with them (a prune before 2026-12-07 left them)
            renderings.drop(layout, _segment_numbers(gone))
            # and the restore bundles written before, which hold their messages too
            dropped = bundles.drop_deleted_copies(layout) if gone else []
            return Emptied(
                gone,
                sweep(layout),
                before,
                pinned_entries(layout),
                unforgotten if gone else None,
                [b.name for b, _ in dropped],
                {b.name: users for b, users in dropped if users},
            )
        except OSError as exc:
            if not disk_full(exc):
                raise MaintenanceError(f"emptying the trash stopped: {exc}") from None
            marked = [f"trash/{e.id}" for e in list_trash(layout) if e.state == EMPTYING]
            done = (
                f"{', '.join(marked)} marked for emptying, nothing deleted yet (`persist trash "
                "empty` again finishes it)"
                if marked
                else "nothing was done"
            )
            raise MaintenanceError(
                f"emptying the trash stopped before it deleted anything, {done} "
                f"({exc.strerror}): {full_disk_hint(layout)}"
            ) from None


def empty_by_hand(layout: Layout, older_than: float, forget: ForgetWords) -> Emptied:
    """`persist trash empty`: `empty`, its record journaled by the running recorder or
    by us holding the folder's lock (taken first: `journaling`)."""
    with journaling(layout, "trash") as journal:
        return empty(layout, older_than, journal=journal, forget=forget)


def empty_event(gone: list[TrashEntry], older_than: float) -> dict[str, Any]:
    """The journal record of an empty; `resumed` names the entries an interrupted
    empty began and did not journal."""
    total = sum(e.bytes for e in gone)
    resumed = [e.id for e in gone if e.state == EMPTYING]
    detail = f"emptied {len(gone)} trash entries ({total:,} bytes)"
    if resumed:
        detail += f", {len(resumed)} of them finishing an interrupted empty"
    event: dict[str, Any] = {
        "kind": KIND_EVENT,
        "event": EVENT_EMPTY,
        "trash": [e.id for e in gone],
        "segments": [f["name"] for e in gone for f in e.files if f["kind"] == "segment"],
        "bytes": total,
        "older_than_s": older_than,
        "detail": detail,
    }
    if resumed:
        event["resumed"] = resumed
    return event
