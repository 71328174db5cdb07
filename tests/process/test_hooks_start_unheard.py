"""`persist hook SessionStart` and `PreCompact` when their own message finds nobody to
hear it (a recorder alive behind a broker that died), with real broker and recorder
processes and the hook run as the agents run it: the session-started and compaction
messages are not kept for a later call, and the failure line says so plainly (it said
they waited for the session's next call, which never sent them); no `... started`
checkpoint is taken without the session's start in it."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path
from typing import Any

import orjson
import pytest

from recorder.hooks.samples import ClaudeSession
from tests.process.test_hooks_flow import append, bus_messages, failures, quiet, run_hook
from tests.support import Bus, wait_for

pytestmark = pytest.mark.timeout(240)


def _labels(log_dir: Path) -> list[str]:
    folder = log_dir / "checkpoints"
    return [orjson.loads(p.read_bytes())["label"] for p in folder.glob("*.json")]


def _of(log_dir: Path, session: str) -> list[dict[str, Any]]:
    return [m for m in bus_messages(log_dir) if m.get("session") == session]


def test_a_start_and_a_compaction_nobody_hears_say_they_are_not_sent_later(
    bus: Bus, tmp_path: Path
) -> None:
    bus.start_broker()
    bus.start_recorder()
    ends = (bus.front, bus.back)
    assert bus.broker is not None
    bus.broker.signal(signal.SIGKILL)  # the broker dies, the recorder lives
    bus.broker.wait(10)
    c = ClaudeSession(transcript=str(tmp_path / "c.jsonl"))
    quiet(run_hook(bus.log_dir, "claude", c.payload("SessionStart"), endpoints=ends))
    append(Path(c.transcript), c.user("c asks") + c.assistant("c answers"))
    quiet(run_hook(bus.log_dir, "claude", c.payload("PreCompact", trigger="auto"), endpoints=ends))
    started = f"claude {c.session[:8]} started"
    assert started not in _labels(bus.log_dir)  # it would hold none of the session
    said = [(f["event"], f["error"]) for f in failures(bus.log_dir)]
    (start,) = [e for event, e in said if event == "SessionStart"]
    assert start.startswith("session-started message not sent: no subscriber at "), start
    assert "it is not sent later" in start and f"no checkpoint '{started}' is taken" in start
    (message,) = [e for _, e in said if e.startswith("compaction message not sent")]
    assert "it is not sent later" in message
    assert all("wait for this session's next hook call" not in e for e in [start, message])

    # heard again: the transcript is sent by the session's next call, the two are not
    bus.start_broker()
    append(Path(c.transcript), c.user("later"))
    for _ in range(20):  # (the recorder's subscription reaches the new broker meanwhile)
        quiet(run_hook(bus.log_dir, "claude", c.payload("Stop"), endpoints=ends))
        if _of(bus.log_dir, c.session):
            break
    wait_for(lambda: len(_of(bus.log_dir, c.session)) >= 3, what="the session's turns")
    got = _of(bus.log_dir, c.session)
    assert [m.get("text") for m in got] == ["c asks", "c answers", "later"]
    assert all(m["type"] == "agent.message" for m in got)


def _offered(out: Any) -> str:
    assert out.returncode == 0 and out.stderr == b"", out
    answer = orjson.loads(out.stdout)
    assert answer["hookSpecificOutput"]["hookEventName"] == "SessionStart"
    return str(answer["hookSpecificOutput"]["additionalContext"])


def _a_checkpoint(bus: Bus, tmp_path: Path) -> str:
    """A session heard whole: its `... ended` checkpoint, the latest; then no recorder."""
    bus.start_broker()
    bus.start_recorder()
    first = ClaudeSession(transcript=str(tmp_path / "first.jsonl"))
    append(Path(first.transcript), first.user("remember the plan") + first.assistant("noted"))
    quiet(
        run_hook(
            bus.log_dir, "claude", first.payload("SessionEnd"), endpoints=(bus.front, bus.back)
        )
    )
    assert bus.recorder is not None
    bus.recorder.signal(signal.SIGTERM)
    assert bus.recorder.wait(10) == 0
    return f"claude {first.session[:8]} ended"


def test_the_restore_offer_is_answered_though_the_recorder_cannot_start(
    bus: Bus, tmp_path: Path
) -> None:
    """`--restore latest` built the offer, then the recorder's start failed (a `persist`
    command holding the folder) and the hook answered nothing: the agent started with
    no offer, though the restore bundle needs no recorder."""
    import fcntl

    label = _a_checkpoint(bus, tmp_path)
    second = ClaudeSession(transcript=str(tmp_path / "second.jsonl"))
    with open(bus.log_dir / "recorder.lock", "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a `persist` command holds the folder
        out = run_hook(
            bus.log_dir,
            "claude",
            second.payload("SessionStart"),
            "--restore=latest",
            endpoints=(bus.front, bus.back),
        )
    context = _offered(out)
    assert label in context and "Integrity: verified" in context
    (said,) = [f["error"] for f in failures(bus.log_dir) if f["session"] == second.session]
    assert said.startswith("recorder not started: "), said
    assert f"no checkpoint 'claude {second.session[:8]} started'" in said
    registered = list((bus.log_dir / "agents").glob("*.agent.json"))
    assert len(registered) == 1  # the agent (this process), for a recorder started later


def test_a_checkpoint_that_cannot_be_offered_leaves_the_start_whole(
    bus: Bus, tmp_path: Path
) -> None:
    """A restore bundle that could not be built (here: a file where `restore/` goes)
    failed the whole start: no recorder, no message, no checkpoint."""
    _a_checkpoint(bus, tmp_path)
    restore = bus.log_dir / "restore"
    shutil.rmtree(restore, ignore_errors=True)
    restore.write_bytes(b"not a folder")
    bus.start_recorder()
    second = ClaudeSession(transcript=str(tmp_path / "second.jsonl"))
    ends = (bus.front, bus.back)
    quiet(
        run_hook(
            bus.log_dir,
            "claude",
            second.payload("SessionStart"),
            "--restore=latest",
            endpoints=ends,
        )
    )
    (said,) = [f["error"] for f in failures(bus.log_dir) if f["session"] == second.session]
    assert said.startswith("no checkpoint offered: "), said
    assert f"claude {second.session[:8]} started" in _labels(bus.log_dir)
    wait_for(lambda: _of(bus.log_dir, second.session), what="the session-started message")
    assert _of(bus.log_dir, second.session)[0]["type"] == "session.started"
