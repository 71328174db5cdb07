"""The checkpoint monitor's decision engine (pure, clock injected) and its settings."""

from __future__ import annotations

import os
import random
import re
import threading
import time
from pathlib import Path

import pytest

from recorder.errors import BadOption
from recorder.sources.discover import Roots
from recorder.sources.model import Session, Source
from recorder.sources.monitor import (
    Monitor,
    MonitorSettings,
    RoundResult,
    decide,
    latest_session_checkpoints,
)
from recorder.store import secrets as SECRET
from recorder.store.checkpoints import SessionRef, list_checkpoints
from recorder.store.layout import Layout
from tests.secret_samples import make
from tests.session_fixtures import ClaudeSession, text, tool_use

NOW = 1_800_000_000.0
S = MonitorSettings()


def session(**kw: object) -> Session:
    base = dict(
        source=Source.CLAUDE,
        id="abc",
        path=Path("/x/abc.jsonl"),
        size=1000,
        first_ts=NOW - 600,
        last_ts=NOW - 60,
        mtime=NOW - 60,
    )
    base.update(kw)
    return Session(**base)  # type: ignore[arg-type]


def ref(size: int = 500, files: list[str] | None = None) -> SessionRef:
    return SessionRef("claude:abc", "/x/abc.jsonl", 1, size, 10, "d" * 64, 5, files or [], 0)


def test_quiet_young_session_waits() -> None:
    d = decide(session(), None, None, S, NOW)
    assert not d.checkpoint and d.reason == "below every threshold"
    # 10 min old (time 1/12), 1 min idle (1/30): weighted 0.3/12 + 0.2/30
    assert d.scores["time"] == pytest.approx(600 / 7200)
    assert d.scores["idle"] == pytest.approx(1 / 30)
    assert d.total == pytest.approx(0.3 * 600 / 7200 + 0.2 / 30)


@pytest.mark.parametrize(
    ("kw", "factor"),
    [
        ({"first_ts": NOW - 2 * 3600}, "time"),
        ({"files_modified": tuple(f"/f{i}" for i in range(15))}, "activity"),
        ({"context_tokens": 150_000}, "context"),  # 75 % of Claude's 200k window
        ({"last_ts": NOW - 30 * 60}, "idle"),
    ],
)
def test_each_factor_alone_triggers_at_its_threshold(kw: dict, factor: str) -> None:
    d = decide(session(**kw), None, None, S, NOW)
    assert d.checkpoint and d.reason == f"{factor} reached its threshold"
    assert d.scores[factor] == pytest.approx(1.0)


def test_just_below_a_threshold_does_not_trigger() -> None:
    d = decide(session(files_modified=tuple(f"/f{i}" for i in range(14))), None, None, S, NOW)
    assert not d.checkpoint and d.scores["activity"] == pytest.approx(14 / 15)


def test_weighted_sum_triggers_when_no_factor_does() -> None:
    # time 0.9 (x0.3) + activity 0.8 (x0.4) + context 0.8 (x0.5) = 0.27 + 0.32 + 0.4 = 0.99
    # + idle 1/30 x0.2 = 0.9967: not yet; idle 3 min (0.1 x 0.2 = 0.02) tips it over
    files = tuple(f"/f{i}" for i in range(12))
    base = dict(first_ts=NOW - 0.9 * 7200, files_modified=files, context_tokens=120_000)
    d = decide(session(**base), None, None, S, NOW)
    assert not d.checkpoint and d.total == pytest.approx(0.99 + 0.2 / 30)
    d = decide(session(**base, last_ts=NOW - 180), None, None, S, NOW)
    assert d.checkpoint and d.reason == "weighted sum reached 1.0"
    assert d.total == pytest.approx(1.01)


def test_activity_counts_files_changed_since_the_last_checkpoint() -> None:
    files = tuple(f"/f{i}" for i in range(20))
    d = decide(
        session(files_modified=files), ref(files=[f"/f{i}" for i in range(10)]), NOW - 3600, S, NOW
    )
    assert d.scores["activity"] == pytest.approx(10 / 15) and d.scores["time"] == 0.5


def test_cooldown_and_nothing_changed() -> None:
    hot = session(context_tokens=190_000)
    d = decide(hot, ref(), NOW - 29 * 60, S, NOW)
    assert not d.checkpoint and d.reason.startswith("cooldown, 1 min left")
    assert decide(hot, ref(), NOW - 31 * 60, S, NOW).checkpoint
    same = decide(hot, ref(size=1000), NOW - 10 * 3600, S, NOW)
    assert not same.checkpoint and same.reason == "nothing changed since the last checkpoint"


def test_a_last_checkpoint_stamped_in_the_future_holds_nothing_back() -> None:
    """Taken while the clock was a year ahead: its time says nothing of how long ago it
    was. No cooldown from it (which lasted a year), and the time factor counts from
    the session's start (it was 0 for a year); nothing changed still waits."""
    year = 365 * 86400.0
    idle = session(last_ts=NOW - 30 * 60)
    d = decide(idle, ref(), NOW + year, S, NOW)
    assert d.checkpoint and d.reason.startswith("idle reached its threshold")
    assert "last checkpoint is stamped 365.0d in the future" in d.reason
    young = decide(session(), ref(), NOW + year, S, NOW)
    assert not young.checkpoint and not young.reason.startswith("cooldown")
    assert young.scores["time"] == pytest.approx(600 / 7200)  # since the session's start
    assert not decide(idle, ref(size=1000), NOW + year, S, NOW).checkpoint
    # a few seconds ahead (another monitor's clock, rounding): a checkpoint just taken
    assert decide(idle, ref(), NOW + 5, S, NOW).reason.startswith("cooldown, 30 min left")


def test_one_round_with_the_clock_a_year_ahead_does_not_stop_the_next_ones(
    tmp_path: Path,
) -> None:
    s = ClaudeSession(tmp_path / "claude")
    s.user("go")
    s.assistant(text("ok"))
    s.write()
    layout = Layout(tmp_path / "log")
    settings = MonitorSettings(idle_minutes=1, cooldown_minutes=10)
    m = Monitor(Roots(tmp_path / "claude", None, None), layout, settings)
    assert len(m.tick(s.t + 3600 + 365 * 86400).taken) == 1  # the clock a year ahead
    s.lines.clear()
    s.user("more")
    s.assistant(text("done"))
    s.append_lines(s.lines)
    r = m.tick(s.t + 120)  # the clock right: idle two minutes
    assert len(r.taken) == 1, r.decisions[0].explain()
    r = m.tick(s.t + 180)  # checkpointed now: the cooldown holds again
    assert not r.taken


def test_settings_from_toml_and_flags(tmp_path: Path) -> None:
    path = tmp_path / "monitor.toml"
    path.write_text("[monitor]\nfiles_changed = 5\nweight_idle = 0.6\n")
    s = MonitorSettings.load(path, idle_minutes=10, files_changed=None)
    assert (s.files_changed, s.weight_idle, s.idle_minutes, s.time_hours) == (5, 0.6, 10, 2.0)
    path.write_text("[monitor]\nfile_changed = 5\n")
    with pytest.raises(BadOption, match="unknown monitor setting 'file_changed'"):
        MonitorSettings.load(path)
    path.write_text("[monitor\n")
    with pytest.raises(BadOption, match="cannot be read"):
        MonitorSettings.load(path)
    assert MonitorSettings.load(tmp_path / "absent.toml") == MonitorSettings()
    # a threshold of 0 never fires (idle_minutes = 0 silently turned the idle factor
    # off, while --idle 0 was refused); context_fraction is a fraction, not percent
    path.write_text("[monitor]\nidle_minutes = 0\n")
    with pytest.raises(BadOption, match="idle_minutes must be above 0"):
        MonitorSettings.load(path)
    path.write_text("[monitor]\ncontext_fraction = 75\n")
    with pytest.raises(BadOption, match=r"at most 1 \(0\.75 for 75 %"):
        MonitorSettings.load(path)
    # a value given in place of the file's is not blamed on the file (it said
    # "<file>: context_fraction 1.5 ..." for a --context 150, with or without a file)
    path.write_text("[monitor]\ncontext_fraction = 0.5\nidle_minutes = 10\n")
    for file in (path, tmp_path / "absent.toml"):
        with pytest.raises(BadOption) as raised:
            MonitorSettings.load(file, context_fraction=1.5, idle_minutes=0)
        assert str(raised.value) == "idle_minutes must be above 0 (a threshold of 0 never fires)"
        with pytest.raises(BadOption) as raised:
            MonitorSettings.load(file, context_fraction=1.5)
        assert str(raised.value).startswith("context_fraction 1.5 is a fraction")
    path.write_text("[monitor]\nidle_minutes = 0\n")
    with pytest.raises(BadOption, match=f"^{re.escape(str(path))}: idle_minutes must be"):
        MonitorSettings.load(path, context_fraction=0.5)


def test_a_named_config_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    from recorder.cli.main import main

    code = main(
        ["monitor", "--once", "--config", str(tmp_path / "nope.toml"), "--log-dir", str(tmp_path)]
    )
    assert code == 2


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ("interval_minutes = 0", "interval_minutes must be above 0 (rounds back to back)"),
        ("time_hours = nan", "time_hours is nan, not a finite number"),
        ("context_fraction = nan", "context_fraction is nan, not a finite number"),
        ("idle_minutes = inf", "idle_minutes is inf, not a finite number"),
        ("weight_context = nan", "weight_context is nan, not a finite number"),
        ("cooldown_minutes = -inf", "cooldown_minutes is -inf, not a finite number"),
    ],
)
def test_monitor_toml_gets_the_checks_the_flags_get(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setting: str, said: str
) -> None:
    """`--interval 0` and `--context nan` are refused (exit 2), yet before 2026-12-08 the
    file took them: `interval_minutes = 0` ran rounds back to back (hundreds a second,
    the recorder's own monitor too), and a nan threshold or weight switched its factor
    off without a word ("wait (below every threshold) time=nan"). Now one line naming
    the file, exit 2, before any round."""
    from recorder.cli.main import main

    config = tmp_path / "monitor.toml"
    config.write_text(f"[monitor]\n{setting}\n")
    argv = ["monitor", "--once", "--explain", "--config", str(config)]
    code = main([*argv, "--log-dir", str(tmp_path / "logs"), "--claude-root", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.splitlines() == [f"persist: {config}: {said}"], err


def test_monitor_rounds_with_an_injected_clock(tmp_path: Path) -> None:
    s = ClaudeSession(tmp_path / "claude")
    s.user("go")
    s.assistant(text("ok"), tool_use("Write", {"file_path": "/p/a"}, "w1"))
    s.tool_result("w1", "written")
    s.write()
    layout = Layout(tmp_path / "log")
    m = Monitor(Roots(tmp_path / "claude", None, None), layout, MonitorSettings())
    t0 = s.t + 60  # one minute after the last line: nothing due yet
    r = m.tick(t0)
    assert not r.taken and r.decisions[0].reason == "below every threshold"
    r = m.tick(t0 + 29 * 60)  # idle 30 min
    assert len(r.taken) == 1 and r.taken[0].session is not None
    cp = list_checkpoints(layout, sessions=True)[0]
    assert cp.session == r.taken[0].session and cp.session.lines == 4 and cp.session.messages == 3
    assert cp.reason == "session monitor: idle reached its threshold"
    assert not m.tick(t0 + 3 * 3600).taken  # nothing changed
    s.lines.clear()
    s.user("more")
    s.append_lines(s.lines)
    r = m.tick(t0 + 29 * 60 + 10 * 60)
    assert not r.taken and r.decisions[0].reason.startswith("cooldown")
    r = m.tick(t0 + 3 * 3600)
    assert len(r.taken) == 1 and r.taken[0].session.lines == 5  # type: ignore[union-attr]
    assert (
        len(latest_session_checkpoints(layout)) == 1
        and len(list_checkpoints(layout, sessions=True)) == 2
    )
    assert list_checkpoints(layout) == []  # journal readers never see them
    log = (layout.sessions / "monitor.log").read_text().splitlines()
    assert len(log) == 5 and "CHECKPOINT (idle reached its threshold)" in log[1]
    assert "time=" in log[0] and "weighted=" in log[0]
    assert (layout.sessions / "monitor.log").stat().st_mode & 0o777 == 0o600


def test_a_title_holding_a_key_across_the_labels_cut_leaves_no_fragment(tmp_path: Path) -> None:
    key = make(SECRET.AWS, random.Random(9)).secret
    s = ClaudeSession(tmp_path / "claude")
    s.user("go")
    s.assistant(text("ok"))
    prefix = f"claude {s.session_id[:8]} "
    s.meta("custom-title", customTitle="t" * (80 - len(prefix) - 11) + " " + key)  # cut 10 in
    s.write()
    layout = Layout(tmp_path / "log")
    m = Monitor(Roots(tmp_path / "claude", None, None), layout, MonitorSettings())
    assert m.tick(s.t + 3 * 3600).taken
    [cp] = list_checkpoints(layout, sessions=True)
    assert cp.label.startswith(prefix + "t") and "[REDACTED" in cp.label
    assert key[:10] not in cp.label and key[:10].lower() not in cp.id


def _sessions(tmp_path: Path, n: int) -> list[ClaudeSession]:
    out = []
    for i in range(n):
        s = ClaudeSession(tmp_path / "claude", cwd=f"/home/me/p{i}")
        s.user(f"task {i}")
        s.assistant(text("ok"))
        s.write()
        out.append(s)
    return out


def _grow(sessions: list[ClaudeSession]) -> None:
    for s in sessions:
        s.lines.clear()
        s.user("more")
        s.assistant(text("done"))
        s.append_lines(s.lines)


def test_a_round_reads_only_the_checkpoint_files_new_since_the_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round read every file in checkpoints/ (the journal's too) again under the lock
    for each session it checkpointed: N sessions, (N + 1) x all the checkpoints (300
    sessions by 1,650 checkpoints: 86 s); then once a round each, the whole history
    every 5 minutes. Now a round reads those written since the last (here the
    journal's four), each once; one this monitor wrote is not read back; one rewritten
    is read again, and a session's latest removed gives way to the one before."""
    from collections import Counter

    from recorder.store import checkpoints as store

    sessions = _sessions(tmp_path, 6)
    layout = Layout(tmp_path / "log")
    settings = MonitorSettings(idle_minutes=1, cooldown_minutes=0)
    m = Monitor(Roots(tmp_path / "claude", None, None), layout, settings)
    t = max(s.t for s in sessions) + 3600
    assert len(m.tick(t).taken) == 6
    for k in range(4):  # the journal's checkpoints sit in the same folder
        store.write_checkpoint(
            layout, segment=0, offset=0, seq=k + 1, messages=0, label=f"j{k}", reason="test"
        )
    seen = {p.name for p in layout.checkpoints.iterdir()} - {
        cp.path.name for cp in list_checkpoints(layout) if cp.path and cp.label.startswith("j")
    }  # the six this monitor wrote
    _grow(sessions)
    there = {p.name for p in layout.checkpoints.iterdir()}
    reads: Counter[str] = Counter()
    real = store.read_regular

    def counted(path: Path) -> tuple[bytes, object]:
        if path.parent == layout.checkpoints:
            reads[path.name] += 1
        return real(path)

    monkeypatch.setattr(store, "read_regular", counted)
    assert len(m.tick(t + 3600).taken) == 6
    assert set(reads) == there - seen and len(reads) == 4, reads  # the journal's four
    assert set(reads.values()) == {1}, reads
    assert len(list_checkpoints(layout, sessions=True)) == 12
    reads.clear()
    assert m.tick(t + 3600).taken == [] and not reads  # nothing new: nothing read
    assert m.known is not None

    # a session's newest checkpoint removed (by hand): the one before is its latest
    key = sessions[0].session_id
    key = next(k for k in m.known.latest if key in k)
    newest = m.known.latest[key]
    assert newest.path is not None
    newest.path.unlink()
    m.known.refresh()
    before = m.known.latest[key]
    assert not reads and before.path is not None and before.path != newest.path
    # one written again under the same name (a new file) is read again
    data = before.path.read_bytes()
    before.path.unlink()
    before.path.write_bytes(data)
    m.known.refresh()
    assert set(reads) == {before.path.name}, reads
    assert m.known.latest[key].path == before.path


def test_a_checkpoint_another_monitor_takes_mid_round_is_not_taken_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decided again under the lock, on what another monitor wrote since this round read
    checkpoints/: a session it checkpointed meanwhile is not checkpointed twice."""
    from recorder.sources import monitor as mod

    sessions = _sessions(tmp_path, 3)
    layout = Layout(tmp_path / "log")
    roots = Roots(tmp_path / "claude", None, None)
    settings = MonitorSettings(idle_minutes=1, cooldown_minutes=0)
    ours, other = Monitor(roots, layout, settings), Monitor(roots, layout, settings)
    t = max(s.t for s in sessions) + 3600
    real_lock = mod.monitor_lock
    first: list[mod.RoundResult] = []
    started = []

    def lock_after_the_other(layout: Layout, timeout: float = 30.0) -> object:
        if not started:  # the other monitor takes every session just before our first lock
            started.append(True)
            first.append(other.tick(t))
        return real_lock(layout, timeout)

    monkeypatch.setattr(mod, "monitor_lock", lock_after_the_other)
    r = ours.tick(t)
    assert len(first[0].taken) == 3 and r.taken == []
    assert {d.reason for d in r.decisions} == {"nothing changed since the last checkpoint"}
    assert len(list_checkpoints(layout, sessions=True)) == 3


def test_monitor_log_says_a_decision_when_it_changes(tmp_path: Path) -> None:
    """monitor.log grew a line per known session every round, "wait (nothing changed
    since the last checkpoint)" included: 300 idle sessions, ~12 MiB a day. Now a
    session's decision is logged when it differs from the one logged before (numbers
    aside), also by the next monitor process, which reads the log's end first."""
    sessions = _sessions(tmp_path, 3)
    layout = Layout(tmp_path / "log")
    roots = Roots(tmp_path / "claude", None, None)
    settings = MonitorSettings(idle_minutes=1)
    log = layout.sessions / "monitor.log"
    m = Monitor(roots, layout, settings)
    t = max(s.t for s in sessions) + 3600
    assert len(m.tick(t).taken) == 3
    for k in range(1, 6):
        r = m.tick(t + 60 * k)
        assert {d.reason for d in r.decisions} == {"nothing changed since the last checkpoint"}
    lines = log.read_text().splitlines()
    assert [line.split(": ", 1)[1].split(" (")[0] for line in lines] == ["CHECKPOINT"] * 3 + [
        "wait"
    ] * 3
    assert all("nothing changed" in line for line in lines[3:])
    # `persist monitor --once` from cron: a new monitor each round
    assert not Monitor(roots, layout, settings).tick(t + 600).taken
    assert len(log.read_text().splitlines()) == 6
    _grow(sessions[:1])
    m2 = Monitor(roots, layout, settings)
    for k in range(3):  # in cooldown (its minutes left differ each round: one line)
        assert m2.tick(t + 700 + 60 * k).decisions[0].reason.startswith("cooldown")
    lines = log.read_text().splitlines()
    assert len(lines) == 7 and "cooldown, " in lines[-1] and sessions[0].session_id in lines[-1]
    assert len(m2.tick(t + 3600).taken) == 1
    assert "CHECKPOINT" in log.read_text().splitlines()[-1]


def test_monitor_log_is_rotated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """monitor.log was never rotated; now as recorder.log: at 5 MB it becomes
    monitor.log.1 (.1 -> .2 -> .3, three kept), every file 0600."""
    from recorder.sources import monitor as mod

    monkeypatch.setattr(mod, "LOG_MAX_BYTES", 1000, raising=False)
    sessions = _sessions(tmp_path, 2)
    layout = Layout(tmp_path / "log")
    m = Monitor(Roots(tmp_path / "claude", None, None), layout, MonitorSettings(idle_minutes=1))
    t = max(s.t for s in sessions) + 3600
    log = layout.sessions / "monitor.log"
    for k in range(12):
        _grow(sessions)
        m.tick(t + 7200 * k)  # a checkpoint of each: two lines a round
        assert log.stat().st_size <= 1000
    names = sorted(p.name for p in layout.sessions.iterdir() if p.name.startswith("monitor.log"))
    assert names == ["monitor.log", "monitor.log.1", "monitor.log.2", "monitor.log.3"]
    for name in names:
        path = layout.sessions / name
        assert path.stat().st_mode & 0o777 == 0o600 and 0 < path.stat().st_size <= 1000
        assert all(" CHECKPOINT (" in line for line in path.read_text().splitlines())
    newest = log.read_text().splitlines()[-1]
    assert newest.startswith(time.strftime("%Y-%m-%dT%H:%M", time.gmtime(t + 7200 * 11)))


def test_a_named_pipe_at_monitor_log_holds_no_round_and_is_said(tmp_path: Path) -> None:
    """Its append opened the pipe to write and, with no reader, waited for ever: the
    monitor (the recorder's child too) never took another checkpoint. Now the round
    ends, its checkpoints taken, and says why its decisions were not logged."""
    sessions = _sessions(tmp_path, 2)
    layout = Layout(tmp_path / "log")
    layout.sessions.mkdir(parents=True)
    os.mkfifo(layout.sessions / "monitor.log", 0o600)
    m = Monitor(Roots(tmp_path / "claude", None, None), layout, MonitorSettings(idle_minutes=1))
    rounds: list[RoundResult] = []
    t = threading.Thread(
        target=lambda: rounds.append(m.tick(max(s.t for s in sessions) + 3600)), daemon=True
    )
    t.start()
    t.join(20)
    assert not t.is_alive(), "the round waits on the named pipe"
    (result,) = rounds
    assert len(result.taken) == 2
    (problem,) = [p for p in result.problems if "monitor.log" in p]
    assert problem == (
        f"cannot write {layout.sessions / 'monitor.log'}: a named pipe, not a regular file"
    ), problem


def test_a_session_key_with_control_characters_is_one_escaped_log_line(tmp_path: Path) -> None:
    """A session's id comes from its file's name, which may hold a newline or an escape
    sequence: monitor.log wrote it raw, so one decision could read as two lines (the
    second a forged one) and `tail` on a terminal ran its escapes. Now escaped, and the
    next monitor still knows the decision it logged."""
    forged = "evil\n2026-01-01T00:00:00Z claude:x: CHECKPOINT (forged) weighted=9.00\x1b]0;T\x07"
    s = ClaudeSession(tmp_path / "claude", cwd="/home/me/p", session_id=forged)
    s.user("task")
    s.assistant(text("ok"))
    s.write()
    layout = Layout(tmp_path / "log")
    roots = Roots(tmp_path / "claude", None, None)
    settings = MonitorSettings(idle_minutes=1)
    r = Monitor(roots, layout, settings).tick(s.t + 3600)
    assert len(r.taken) == 1 and forged in r.taken[0].session.key  # type: ignore[union-attr]
    data = (layout.sessions / "monitor.log").read_bytes()
    assert data.count(b"\n") == 1 and b"\x1b" not in data and b"\x07" not in data, data
    assert b"evil\\n2026-01-01" in data and b"\\x1b]0;T\\x07" in data
    Monitor(roots, layout, settings).tick(s.t + 3660)  # nothing changed: logged once more
    again = (layout.sessions / "monitor.log").read_bytes()
    assert again.count(b"\n") == 2 and b"wait (nothing changed" in again.splitlines()[1]
    Monitor(roots, layout, settings).tick(s.t + 3720)  # the same wait: not again
    assert (layout.sessions / "monitor.log").read_bytes() == again


def test_a_session_key_holding_escape_text_is_never_logged_as_another_one(
    tmp_path: Path,
) -> None:
    """One name holds a newline and an escape, another the text `\\n` and `\\x1b`:
    before, both were logged alike (the escaping was not one to one), and the monitor
    took one's logged decision for the other's. A backslash is doubled now."""
    controls = "evil\nsession\x1b]0;t\x07"
    escapes = r"evil\nsession\x1b]0;t\x07"
    roots = Roots(tmp_path / "claude", None, None)
    layout = Layout(tmp_path / "log")
    settings = MonitorSettings(idle_minutes=1)
    sessions = []
    for name in (controls, escapes):
        s = ClaudeSession(tmp_path / "claude", cwd="/home/me/p", session_id=name)
        s.user("task")
        s.assistant(text("ok"))
        s.write()
        sessions.append(s)
    r = Monitor(roots, layout, settings).tick(max(s.t for s in sessions) + 3600)
    assert len(r.taken) == 2
    lines = (layout.sessions / "monitor.log").read_bytes().splitlines()
    keys = [line.split(b" ", 1)[1].split(b": ", 1)[0] for line in lines]
    assert len(keys) == 2 and keys[0] != keys[1], lines
    assert b"evil\\nsession\\x1b]0;t\\x07" in b"".join(keys), keys  # the text one
