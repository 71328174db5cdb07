"""Derived and bookkeeping files with wrong content (not JSON, wrong types) are ignored or
rebuilt with a warning naming the file, never trusted and never a crash. One
parametrized test per kind of file, each on real files in a real log folder."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from recorder.errors import PersistError
from recorder.store.checkpoints import DigestCache, list_checkpoints
from recorder.store.layout import Layout
from tests.demo_journal import restore_journal

pytestmark = pytest.mark.unit

BAD_JSON = [b"not json {", b"[1, 2, 3]", b'"a string"', b"null"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    restore_journal(root)
    return root


def good_checkpoint(root: Path) -> dict[str, Any]:
    path = sorted((root / "checkpoints").glob("*.json"))[0]
    return dict(orjson.loads(path.read_bytes()))


def _set(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    keys = dotted.split(".")
    target = data
    for k in keys[:-1]:
        target = target[k]
    target[keys[-1]] = value
    return data


CHECKPOINT_DAMAGE = [
    *BAD_JSON,
    ("id", 5),
    ("created", "yesterday"),
    ("position", "seg-000001.jsonl"),
    ("position.offset", "12"),
    ("position.seq", True),
    ("position.segment", "../etc/passwd"),
    ("digest", None),
    ("digest.value", 1),
    ("digest.segments", "seg-000001.jsonl"),
    ("digest.segments", [{"name": 1, "size": 2, "sha256": "x"}]),
    ("participants", ["planner"]),
    ("participants", {"planner": "many"}),
    ("messages", 4.5),
    ("first_ts", "noon"),
]


@pytest.mark.parametrize("damage", CHECKPOINT_DAMAGE, ids=str)
def test_checkpoint_files(root: Path, damage: Any) -> None:
    layout = Layout(root)
    good = good_checkpoint(root)
    good_id = good["id"]
    content = damage if isinstance(damage, bytes) else orjson.dumps(_set(good, *damage))
    (root / "checkpoints" / "zz-broken.json").write_bytes(content)
    skipped: list[str] = []
    cps = list_checkpoints(layout, skipped)
    assert [cp.id for cp in cps] == [good_id]
    assert (
        len(skipped) == 1 and "checkpoints/zz-broken.json is not a valid checkpoint" in skipped[0]
    )


DIGEST_DAMAGE: list[Any] = [
    *BAD_JSON,
    {"size": "1", "sha256": "0" * 64},
    {"sha256": 5},
    {"sha256": "not hex"},
    {"size": True, "ino": [], "mtime_ns": None},
]


@pytest.mark.parametrize("damage", DIGEST_DAMAGE, ids=str)
def test_digest_cache(root: Path, damage: Any) -> None:
    layout = Layout(root)
    seg = sorted(layout.segments.glob("seg-*.jsonl"))[0]
    DigestCache(layout).segment(seg, seg.stat().st_size, closed=True)
    cache = layout.index / f"{seg.name}.sha256"
    assert cache.is_file()
    if isinstance(damage, dict):  # the right file facts, so only the types are wrong
        st = seg.stat()
        facts = {"size": st.st_size, "ino": st.st_ino, "mtime_ns": st.st_mtime_ns}
        damage = {**facts, **damage}
    cache.write_bytes(damage if isinstance(damage, bytes) else orjson.dumps(damage))
    digests = DigestCache(layout)
    got = digests.segment(seg, seg.stat().st_size, closed=True)
    assert got == hashlib.sha256(seg.read_bytes()).hexdigest()
    assert digests.warnings and f"{seg.name}.sha256" in digests.warnings[0]
    again = DigestCache(layout)  # rewritten: right, and no warning the next time
    assert again.segment(seg, seg.stat().st_size, closed=True) == got and not again.warnings


AGENT_DAMAGE: list[Any] = [
    *BAD_JSON,
    {"started": "yesterday"},
    {"started": [1]},
    {"pid": "1"},
    {"pid": True},
    {"agent": ["coder"]},
    {"connected": None},
    {"started_recorder": "yes"},
    {"bundle": ["2026.full"]},
]


@pytest.mark.parametrize("damage", AGENT_DAMAGE, ids=str)
def test_agent_registrations(root: Path, damage: Any) -> None:
    from recorder.launch.registry import live_agents, register_agent

    layout = Layout(root)
    good = register_agent(layout, "coder", None, False)
    bad = layout.agents / f"{os.getpid()}-broken-000000.agent.json"
    record = orjson.loads(good.read_bytes())  # this process: alive
    content = damage if isinstance(damage, bytes) else orjson.dumps({**record, **damage})
    bad.write_bytes(content)
    warnings: list[str] = []
    agents = live_agents(layout, warnings=warnings)
    assert [a["file"] for a in agents] == [good.name]
    assert len(warnings) == 1 and bad.name in warnings[0] and "ignored" in warnings[0]


OWNER_DAMAGE: list[Any] = [
    *BAD_JSON,
    {"recorder_pid": "123"},
    {"recorder_started": "noon"},
    {"launcher_pid": None},
    {"agent": 7},
    {"started": {}},
]


@pytest.mark.parametrize("damage", OWNER_DAMAGE, ids=str)
def test_owner_file(root: Path, damage: Any) -> None:
    from recorder.launch.registry import recorder_owner

    layout = Layout(root)
    good = {
        "recorder_pid": os.getpid(),
        "recorder_started": None,
        "launcher_pid": os.getpid(),
        "launcher_started": None,
        "agent": "coder",
        "started": time.time(),
    }
    content = damage if isinstance(damage, bytes) else orjson.dumps({**good, **damage})
    layout.agents.mkdir(parents=True, exist_ok=True)
    layout.owner.write_bytes(content)
    warnings: list[str] = []
    assert recorder_owner(layout, warnings) is None
    assert len(warnings) == 1 and "agents/owner.json" in warnings[0]


MANIFEST_DAMAGE: list[Any] = [
    *BAD_JSON,
    ("integrity", "fine"),
    ("integrity.ok", "yes"),
    ("checkpoint", ["x"]),
    ("messages", "40"),
    ("files.jsonl", None),
]


@pytest.mark.parametrize("damage", MANIFEST_DAMAGE, ids=str)
def test_restore_manifests(root: Path, damage: Any) -> None:
    from recorder.export.restore import Bundle, build_bundle

    first = build_bundle(root, "latest", durable=False)
    good = dict(first.manifest)
    content = damage if isinstance(damage, bytes) else orjson.dumps(_set(good, *damage))
    first.manifest_path.write_bytes(content)
    with pytest.raises(PersistError, match="manifest"):
        Bundle.load(first.dir)  # one clear error, never a KeyError/TypeError
    again = build_bundle(root, "latest", durable=False)  # the bundle is rebuilt
    assert again.manifest["integrity"]["ok"] is True and again.manifest["messages"] == 40
    assert Bundle.load(again.dir).manifest["messages"] == 40


DONE_DAMAGE: list[Any] = [
    *BAD_JSON,
    {"ok": "true"},
    {"ok": False, "error": 12},
    {"ok": True, "checkpoint": {"id": 5}},
    {"ok": True, "checkpoint": "latest"},
    {"ok": True, "checkpoint": {"position": [], "digest": {}}},
]


@pytest.mark.parametrize("damage", DONE_DAMAGE, ids=str)
def test_control_replies(root: Path, damage: Any) -> None:
    """The recorder's reply in control/<id>.done, read by `persist checkpoint`'s code."""
    from recorder.daemon.control import request_checkpoint
    from recorder.store.lock import InstanceLock

    layout = Layout(root)
    content = damage if isinstance(damage, bytes) else orjson.dumps(damage)
    stop = threading.Event()

    def fake_recorder() -> None:  # answers every request with the damaged reply
        while not stop.is_set():
            for req in layout.control.glob("*.request") if layout.control.is_dir() else []:
                req.with_suffix(".done").write_bytes(content)
                req.unlink()
            time.sleep(0.01)

    lock = InstanceLock(layout.lock)
    lock.acquire()  # "a recorder runs": the request goes through control/
    thread = threading.Thread(target=fake_recorder, daemon=True)
    thread.start()
    try:
        with pytest.raises(PersistError, match="reply"):
            request_checkpoint(layout, "label", timeout=5)
    finally:
        stop.set()
        thread.join()
        lock.release()
