"""`persist export`: JSONL equals the stored records; Markdown, CSV, HTML read back right."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from recorder.store.reader import open_store
from tests.demo_journal import DemoClock, DemoWriter

T0 = 1_800_000_000.0
TEXTS = [
    "plain words",
    '=HYPERLINK("http://evil")',
    "<script>alert(1)</script> & more",
    "line one\nline two",
    "escape \x1b[2J and bidi \u202e end",
    "``` fenced ``` inside",
]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export") / "logs"
    clock = DemoClock(T0)
    w = DemoWriter.open(root, segment_bytes=2048, clock=clock)
    t = T0
    for n, label in enumerate(("first", "second", "third")):
        for i, text in enumerate(TEXTS):
            t += 1
            clock.now = t
            w.message(
                t,
                ("planner", "coder", "reviewer")[i % 3],
                f"{label}: {text}",
                topic=f"agents.{i}",
                extra={"tool_call": {"name": "run"}} if i == 0 else None,
            )
        if n == 1:
            w.gap(t, "coder", 4, 9)
            w.bad_line()
        w.checkpoint(t + 0.5, label, "manual")
    w.message(t + 5, "coder", "after the last checkpoint")
    w.close()
    return root


def persist(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args], capture_output=True, timeout=60
    )


def stored(root: Path, after: str | None, upto: str | None) -> list[bytes]:
    store = open_store(root)
    cps = {cp.label: cp for cp in store.checkpoints()}
    start = store.checkpoint_index(cps[after]) if after else 0
    stop = store.checkpoint_index(cps[upto]) if upto else len(store)
    return [r.line for r in store.records(start, stop) if r.valid]


@pytest.mark.parametrize(
    ("args", "after", "upto"),
    [
        (["second"], None, "second"),
        (["--from", "first", "--to", "third"], "first", "third"),
        (["--from", "second"], "second", None),
        (["--all"], None, None),
    ],
)
def test_jsonl_export_equals_the_stored_records(
    root: Path, args: list[str], after: str | None, upto: str | None
) -> None:
    out = persist("export", *args, "--format", "jsonl", "--log-dir", str(root))
    # the fixture's bad line (before "second") is damage: exported all the same, exit 5
    assert out.returncode == (0 if after == "second" else 5), out.stderr
    assert out.stdout.splitlines(keepends=True) == stored(root, after, upto)
    assert b"exported" in out.stderr


def test_jsonl_to_a_file_with_progress(root: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    out = persist(
        "export",
        "third",
        "--format",
        "jsonl",
        "-o",
        str(target),
        "--progress",
        "--allow-damage",
        "--log-dir",
        str(root),
    )
    assert out.returncode == 0, out.stderr
    assert target.read_bytes().splitlines(keepends=True) == stored(root, None, "third")
    assert b"100%" in out.stderr and b"1 damaged line in range (left out)" in out.stderr
    # the records counted are the lines written: the damaged one left out is not one
    lines = len(target.read_bytes().splitlines())
    assert f"messages ({lines} records, ".encode() in out.stderr, out.stderr
    assert not list(tmp_path.glob(".*.tmp"))  # atomic: no temp file left


def test_csv_reads_back(root: Path) -> None:
    out = persist("export", "third", "--format", "csv", "--log-dir", str(root))
    assert out.returncode == 5 and b"1 damaged line in range (marked)" in out.stderr, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout.decode())))
    msgs = [r for r in rows if r["kind"] == "msg"]
    assert len(msgs) == 3 * len(TEXTS)
    store = open_store(root)
    by_seq = {r.seq: r for r in store.records() if r.kind == "msg"}
    for row in msgs:
        rec = by_seq[int(row["seq"])]
        assert row["sender"] == rec.sender and row["topic"] == rec.topic
        text = rec.payload["text"]
        if "\x1b" in text:
            assert row["text"] == text.replace("\x1b", "\\x1b").replace("\u202e", "\\u202e")
        else:
            assert row["text"] == text
    assert any(r["kind"] == "gap" and "4 to 9" in r["text"] for r in rows)
    formula = next(r for r in msgs if "HYPERLINK" in r["text"])
    assert formula["text"].startswith("first: =")  # only a leading = is neutralized


def test_csv_neutralizes_formulas_in_cells() -> None:
    from recorder.export.writers import _cell, csv_cell

    assert _cell("=1+2") == "'=1+2" and _cell("@SUM(A1)") == "'@SUM(A1)" and _cell("ok") == "ok"
    # a spreadsheet that trims leading spaces (LibreOffice's "Trim spaces") sees a formula
    assert _cell("  =1+2") == "'  =1+2" and _cell("\n -1") == "'\n -1"
    assert csv_cell(" =HYPERLINK(1)") == b"' =HYPERLINK(1)" and _cell("a =1") == "a =1"


def test_markdown_and_html(root: Path) -> None:
    md = persist(
        "export", "--to", "second", "--format", "md", "--allow-damage", "--log-dir", str(root)
    )
    assert md.returncode == 0, md.stderr
    text = md.stdout.decode()
    assert "**planner** · `agents.0`" in text and "> line two" in text
    assert "\x1b" not in text and "\u202e" not in text and "\\u202e" in text
    assert "gap (publisher sequence jumped)" in text and "damaged line" in text
    assert '"name": "run"' in text  # a tool call is shown as JSON
    assert "````" in text or "``` fenced ```" in text
    page = persist("export", "second", "--format", "html", "--log-dir", str(root))
    assert page.returncode == 5, page.stderr
    html = page.stdout.decode()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Content-Security-Policy" in html and html.rstrip().endswith("</html>")
    assert html.count('class="msg"') == 2 * len(TEXTS)


def test_errors_are_clear(root: Path) -> None:
    out = persist("export", "no-such", "--log-dir", str(root))
    assert out.returncode == 1 and b"no checkpoint 'no-such'" in out.stderr
    out = persist("export", "--log-dir", str(root))
    assert out.returncode == 2 and b"say what to export" in out.stderr
    out = persist("export", "third", "--from", "first", "--log-dir", str(root))
    assert out.returncode == 2
    out = persist("export", "--from", "third", "--to", "first", "--log-dir", str(root))
    assert out.returncode == 2 and b"the range is reversed" in out.stderr


def test_stats_match(root: Path) -> None:
    from recorder.export.writers import export_range
    from recorder.store.ranges import journal_range

    store = open_store(root)
    cps = {cp.label: cp for cp in store.checkpoints()}
    buf = io.BytesIO()
    stats = export_range(store, journal_range(store, None, cps["third"]), "jsonl", buf)
    assert stats.messages == cps["third"].messages == 3 * len(TEXTS)
    assert stats.gaps == 1 and stats.bad_lines == 1
    assert next(orjson.loads(x)["seq"] for x in buf.getvalue().splitlines()) == 1


WRONGLY_TYPED = [  # JSON objects with a record's keys, typed as no recorder writes them
    {"ts": "soon"},
    {"ts": True},
    {"ts": [1]},
    {"seq": "x"},
    {"seq": 1.5},
    {"kind": 5},
    {"meta": 5},
    {"topic": 9},
    {"frames": "x"},
    {"frames": [5, 6]},
]
ODD_BUT_READABLE = [  # typed right, with values no reader may fail on
    {"ts": None},  # as in a record made of an agent session's message without a time
    {"seq": None},
    {"ts": 1e20},  # a number, but no time datetime can write
    {"ts": -1e300},
    {"meta": {"sender": 7, "chain": [1], "secrets": "no", "replay_of": {"x": 1}}},
    {"frames": []},
    {"frames": [{"text": "a"}, {"json": {"text": 5}}]},
    {"frames": [{"text": "a"}, {"b64": "!!not base64!!"}]},
    {"kind": "gap", "from_ts": "x", "to_ts": 1e300, "missed": "many"},
]


def odd_journal(root: Path) -> None:
    """A segment of a segment record, a message for each of `WRONGLY_TYPED` and
    `ODD_BUT_READABLE`, and a last plain message."""
    (root / "segments").mkdir(parents=True)
    base = {"v": 1, "kind": "msg", "topic": "a", "meta": {"secrets": []}}
    base["frames"] = [{"text": "a"}, {"json": {"text": "hello"}}]
    head = {"v": 1, "seq": 1, "ts": T0, "kind": "segment", "segment": "seg-000001.jsonl"}
    lines = [orjson.dumps(head)]
    for n, fields in enumerate(WRONGLY_TYPED + ODD_BUT_READABLE, 2):
        lines.append(orjson.dumps({**base, "seq": n, "ts": T0 + n, **fields}))
    lines.append(orjson.dumps({**base, "seq": 99, "ts": T0 + 99}))
    (root / "segments" / "seg-000001.jsonl").write_bytes(b"\n".join(lines) + b"\n")


def test_wrongly_typed_records_are_damaged_lines_not_failures(tmp_path: Path) -> None:
    """A line that is a JSON object with a record's keys but not their types (made by
    hand, or damaged) is a damaged line to every export: shown, counted, left out of
    the JSONL; every other record is exported, and nothing fails on odd values."""
    root = tmp_path / "logs"
    odd_journal(root)
    for fmt in ("md", "csv", "html", "jsonl"):
        out = tmp_path / f"out.{fmt}"
        args = ("--all", "--allow-damage", "--no-progress", "--format", fmt, "-o", str(out))
        done = persist("export", *args, "--log-dir", str(root))
        assert done.returncode == 0, done.stderr.decode()
        assert b"Traceback" not in done.stderr
        assert f"{len(WRONGLY_TYPED)} damaged lines in range".encode() in done.stderr
        assert b"hello" in out.read_bytes()
    kept = (tmp_path / "out.jsonl").read_bytes().splitlines()
    assert len(kept) == 1 + len(ODD_BUT_READABLE) + 1


def test_records_made_of_session_messages_are_records() -> None:
    """An agent session's message without a time or a place (seq) is still a record to
    every reader, not a damaged line (the rows Recent shows while they load, too)."""
    from recorder.sources.journal_view import session_record

    rec = session_record("claude/abc", None, None, {"sender": "user"}, {"text": "hi"}, {})
    assert rec.data is not None and rec.kind == "msg" and rec.payload == {"text": "hi"}


def test_an_output_that_is_not_a_regular_file_is_written_to_not_replaced(
    root: Path, tmp_path: Path
) -> None:
    """`-o /dev/null` renamed the export's temp file over it: as root that made
    /dev/null a regular 0600 file for the whole machine (tmux, ssh... broke). A FIFO
    was replaced the same way, and a symlink lost its link."""
    import os
    import stat
    import threading

    def export_to(path: Path, fmt: str) -> subprocess.CompletedProcess[bytes]:
        argv = ["export", "--all", "--format", fmt, "-o", str(path), "--allow-damage"]
        return persist(*argv, "--log-dir", str(root))

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    out = export_to(fifo, "jsonl")
    reader.join(30)
    assert out.returncode == 0, out.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert got == [b"".join(stored(root, None, None))]

    real = tmp_path / "real.md"
    real.write_text("old")
    link = tmp_path / "link.md"
    link.symlink_to(real)
    out = export_to(link, "md")
    assert out.returncode == 0, out.stderr
    assert link.is_symlink() and real.read_text().startswith("# Conversation")

    if os.geteuid() == 0:  # a device node of our own, not the machine's /dev/null
        null = tmp_path / "null"
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        out = export_to(null, "md")
        assert out.returncode == 0, out.stderr
        assert stat.S_ISCHR(null.stat().st_mode)


def test_an_export_ended_by_sigterm_leaves_no_temp_file(tmp_path: Path) -> None:
    """SIGTERM during `export -o FILE` killed the process at once: the temp file beside
    FILE stayed (16 MB after one kill). Now it ends as Ctrl-C does: the temp file
    removed, FILE as it was, exit 143."""
    import signal
    import time

    root = tmp_path / "logs"
    w = DemoWriter.open(root, clock=DemoClock(1_800_000_000.0))
    for i in range(30_000):
        w.message(1_800_000_000.0 + i, "coder", f"message {i} " + "word " * 40)
    w.close()
    out = tmp_path / "out" / "x.html"
    out.parent.mkdir()
    out.write_text("the old export\n")
    argv = ["export", "--all", "--format", "html", "--log-dir", str(root), "-o", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "recorder.cli", *argv, "--no-progress"], stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 30
    while not [p for p in out.parent.iterdir() if p != out] and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 143
    assert proc.stderr is not None
    assert proc.stderr.read().decode().splitlines() == [
        "persist: export: ended by SIGTERM (`persist doctor` names anything it left half done)"
    ]
    assert sorted(p.name for p in out.parent.iterdir()) == ["x.html"]
    assert out.read_text() == "the old export\n"


# `persist export` with a SIGTERM sent to itself at one point of its work (a
# deterministic hook, not a race): `{when}` is code run there, given `real`.
_SIGNALLED = """
import os, signal, sys
import recorder.export.parallel as parallel, recorder.export.writers as writers
from recorder.store import fsutil

writers.use_parallel = lambda *a: 2  # the journal is small: render it in pieces anyway
where = sys.argv.pop(1)
owner, name = {
    "pieces": (parallel, "Job"),  # as the pieces are planned
    "close": (parallel._Workers, "close"),  # every piece rendered, the workers told to stop
    "commit": (fsutil.os, "replace"),  # -o FILE renamed into place
    "end": (fsutil.os, "replace"),  # not hooked: see below
    "created": (fsutil, "open_private"),  # -o FILE's temp file made, not yet returned
}[where]
real = getattr(owner, name)

def hooked(*a, **k):
    if where == "commit" and not str(a[1]).endswith("x.csv"):  # not -o FILE's
        return real(*a, **k)
    if where == "created" and not str(a[0]).endswith(".tmp"):
        return real(*a, **k)
    {when}

if where != "end":
    setattr(owner, name, hooked)
from recorder.cli.main import main

code = main()  # the program, as `persist` runs it: its handlers kept to the end
if where == "end":  # a SIGTERM as the interpreter exits, once it has put back the
    for s in (signal.SIGINT, signal.SIGTERM):  # default of Python-handled signals
        if callable(signal.getsignal(s)):
            signal.signal(s, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
sys.exit(code)
"""


def _export_signalled(tmp_path: Path, where: str, when: str) -> tuple[Path, int, list[str]]:
    root = tmp_path / "logs"
    w = DemoWriter.open(root, clock=DemoClock(1_800_000_000.0))
    for i in range(200):
        w.message(1_800_000_000.0 + i, "coder", f"message {i}")
    w.close()
    out = tmp_path / "out" / "x.csv"
    out.parent.mkdir()
    out.write_text("the old export\n")
    argv = ["export", "--all", "--format", "csv", "--log-dir", str(root), "-o", str(out)]
    code = _SIGNALLED.replace("{when}", when)
    run = subprocess.run(
        [sys.executable, "-c", code, where, *argv, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out, run.returncode, run.stderr.splitlines()


ENDED = "persist: export: ended by SIGTERM (`persist doctor` names anything it left half done)"


def test_a_sigterm_as_the_pieces_are_planned_or_the_workers_stop_leaves_no_pieces_folder(
    tmp_path: Path,
) -> None:
    """SIGTERM after the pieces' scratch folder was made, before the `try` whose
    `finally` removes it (planning the pieces), or in that `finally` as it stopped the
    workers, before it removed the folder, left an empty `.persist-pieces-*` folder
    beside -o FILE. Now the folder is made at the `try` and removed whatever cuts
    the stopping short: none is left, FILE keeps its old content, exit 143."""
    for where in ("pieces", "close"):
        folder = tmp_path / where
        folder.mkdir()
        out, code, err = _export_signalled(
            folder, where, "os.kill(os.getpid(), signal.SIGTERM)\n    return real(*a, **k)"
        )
        assert code == 143 and err == [ENDED], (where, err)
        assert sorted(p.name for p in out.parent.iterdir()) == ["x.csv"], where
        assert out.read_text() == "the old export\n"


def test_a_sigterm_as_the_temp_file_is_made_leaves_no_temp_file(tmp_path: Path) -> None:
    """A SIGTERM just after -o FILE's temp file was created, before the `try` that
    removes it on the way out (in `AtomicFile`'s constructor), left the temp file beside
    FILE: `test_an_export_ended_by_sigterm_leaves_no_temp_file` sends its signal as the
    temp file appears and failed so about once in twelve runs. Now none is left."""
    hook = "fd = real(*a, **k)\n    os.kill(os.getpid(), signal.SIGTERM)\n    return fd"
    out, code, err = _export_signalled(tmp_path, "created", hook)
    assert code == 143 and err == [ENDED], err
    assert sorted(p.name for p in out.parent.iterdir()) == ["x.csv"]
    assert out.read_text() == "the old export\n"


def test_a_sigterm_once_the_export_is_in_place_does_not_undo_its_success(
    tmp_path: Path,
) -> None:
    """A SIGTERM that landed as -o FILE was renamed into place ended the export with 143
    ("ended by SIGTERM", which promises FILE kept its old content) though FILE already
    held the new export. Now a signal during the commit waits for it; once FILE is in
    place the export has succeeded: exit 0, said as usual, also when the signal comes
    as the interpreter exits (it put back the signal's default: killed, 143)."""
    kill = "os.kill(os.getpid(), signal.SIGTERM)"
    for when in ("before", "after", "end"):  # the rename, or as the interpreter exits
        hook = (
            f"{kill}\n    return real(*a, **k)"
            if when == "before"
            else f"real(*a, **k)\n    {kill}\n    return None"
        )
        folder = tmp_path / when
        folder.mkdir()
        out, code, err = _export_signalled(folder, "end" if when == "end" else "commit", hook)
        assert code == 0, (when, err)
        assert len(err) == 1 and err[0].startswith("persist: exported 200 messages"), err
        assert out.read_text().startswith("seq,") and "message 199" in out.read_text()
        assert sorted(p.name for p in out.parent.iterdir()) == ["x.csv"]


# `persist export` whose read of the recorder's status waits (`{fifo}`: a named pipe
# nobody writes, as status.json was before its reader checked), saying so on stderr
_WAITING = """
import sys
import recorder.store.status as status

def waiting(*a, **k):
    print("waiting", file=sys.stderr, flush=True)
    with open({fifo!r}, "rb") as pipe:
        pipe.read()

status.assess = waiting
from recorder.cli.main import main

sys.exit(main())
"""


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_a_read_that_waits_after_the_export_is_written_can_still_be_interrupted(
    tmp_path: Path, signum: str
) -> None:
    """The export read the recorder's status (assess, for the damage lines) after -o
    FILE was put in place, when SIGINT and SIGTERM are ignored (a finished export is
    not undone by one): a read that waited there (a named pipe at status.json) could
    only be ended by SIGKILL, "exported N messages" already said. Now the status and
    the journal's end are read before the commit: such a wait is interrupted as any
    export is (130/143, FILE keeps its old content)."""
    import os
    import signal

    root = tmp_path / "logs"
    w = DemoWriter.open(root, clock=DemoClock(1_800_000_000.0))
    for i in range(20):
        w.message(1_800_000_000.0 + i, "coder", f"message {i}")
    w.close()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    out = tmp_path / "out" / "x.csv"
    out.parent.mkdir()
    out.write_text("the old export\n")
    argv = ["export", "--all", "--format", "csv", "--log-dir", str(root), "-o", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-c", _WAITING.replace("{fifo!r}", repr(str(fifo))), *argv],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        said = []
        while (line := proc.stderr.readline()) not in ("waiting\n", ""):
            said.append(line.rstrip("\n"))
        assert line, said  # it waits there
        proc.send_signal(getattr(signal, signum))
        code = proc.wait(30)  # before: ignored, and the export waited forever
        err = said + proc.stderr.read().splitlines()
    finally:
        proc.kill()
        proc.wait()
    if signum == "SIGTERM":
        assert code == 143 and err == [ENDED], err
    else:
        assert code == 130 and err == [], err  # Ctrl-C: nothing said
    assert out.read_text() == "the old export\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["x.csv"]


def test_o_does_not_follow_another_users_symlink_in_a_shared_folder(
    root: Path, tmp_path: Path
) -> None:
    """In a sticky folder all may write to (/tmp), a symlink another user made at the
    `-o` path, or on the way to it, was followed (os.path.realpath reads it whatever
    protected_symlinks says): root's export replaced the file it named. Now refused,
    exit 2, one line; a link of one's own is followed as before. The temp file beside FILE is never
    written through a link found at its name either."""
    import os
    import threading

    from recorder.store.fsutil import AtomicFile

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = shared / "report.md"
    link.symlink_to(victim)
    os.lchown(link, 65534, 65534)  # nobody's link
    argv = [
        sys.executable,
        "-m",
        "recorder.cli",
        "export",
        "--all",
        "--allow-damage",
        "--format=md",
    ]
    out = subprocess.run(
        [*argv, "--log-dir", str(root), "-o", str(link)], capture_output=True, text=True
    )
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.splitlines()
    assert f"{link} is a symlink of another user (uid 65534)" in line
    assert victim.read_text() == "precious\n" and link.is_symlink()
    # on the way, not last: a folder link of nobody's, reached through one's own link
    (tmp_path / "victims").mkdir()
    (tmp_path / "victims" / "report.md").write_text("precious\n")
    (shared / "evil").symlink_to(tmp_path / "victims")
    os.lchown(shared / "evil", 65534, 65534)
    (tmp_path / "mine").symlink_to(shared)
    for via in (shared / "evil" / "report.md", tmp_path / "mine" / "evil" / "report.md"):
        out = subprocess.run(
            [*argv, "--log-dir", str(root), "-o", str(via)], capture_output=True, text=True
        )
        assert out.returncode == 2 and f"{shared / 'evil'} is a symlink of another" in out.stderr
    assert (tmp_path / "victims" / "report.md").read_text() == "precious\n"
    os.lchown(link, os.geteuid(), os.getegid())  # one's own link: followed
    out = subprocess.run(
        [*argv, "--log-dir", str(root), "-o", str(link)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert victim.read_text().startswith("# ") and link.is_symlink()
    target = shared / "own.md"
    tmp = shared / f".own.md.{threading.get_ident()}.{os.getpid()}.tmp"
    tmp.symlink_to(victim)  # planted at the temp file's (predictable) name
    before = victim.read_bytes()
    with AtomicFile(target, durable=False) as f:
        f.file.write(b"mine\n")
    assert target.read_bytes() == b"mine\n" and victim.read_bytes() == before


def test_a_daemon_still_starting_dies_of_sigterm() -> None:
    """`persist record` before its own SIGTERM handler is in (about 100 ms of its start):
    it exited 143 through the CLI's handler, which systemd's Restart=on-failure takes
    for a failure (restarting a recorder `persist stop` had just stopped). The daemons
    are left the signal's default; other commands end with 143 (above)."""
    import signal

    code = (
        "import os, signal, sys\n"
        "import recorder.cli.record as r\n"
        "r.cmd_record = lambda args: os.kill(os.getpid(), signal.SIGTERM) or 0\n"
        "from recorder.cli.main import main\n"
        "sys.exit(main(['record']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == -signal.SIGTERM, (out.returncode, out.stderr)


def test_an_output_that_cannot_hold_the_export_is_named(tmp_path: Path) -> None:
    """`export -o FILE` onto a full disk said "persist: [Errno 28] No space left on
    device" without naming FILE. Now the line names it, as backup names its target:
    a file over the size limit (RLIMIT_FSIZE: EFBIG, as a full disk's ENOSPC), and a
    device that is full (/dev/full), each in the formats written their own ways."""
    import resource
    import signal

    root = tmp_path / "logs"
    w = DemoWriter.open(root, clock=DemoClock(1_800_000_000.0))
    for i in range(2_000):
        w.message(1_800_000_000.0 + i, "coder", f"message {i} " + "word " * 20)
    w.close()

    def small_files() -> None:  # the child's files stop at 64 KiB (its writes fail)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))

    for fmt in ("jsonl", "md", "csv"):
        out = tmp_path / f"out.{fmt}"
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "recorder.cli",
                "export",
                "--all",
                "--format",
                fmt,
                "--log-dir",
                str(root),
                "-o",
                str(out),
                "--no-progress",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=small_files,
        )
        assert run.returncode == 1, (fmt, run.stderr)
        assert run.stderr.splitlines() == [f"persist: cannot write {out}: File too large"], fmt
        assert sorted(p.name for p in tmp_path.iterdir()) == ["logs"], fmt  # no temp file
    if os.path.exists("/dev/full"):
        for fmt in ("jsonl", "md"):
            run = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "recorder.cli",
                    "export",
                    "--all",
                    "--format",
                    fmt,
                    "--log-dir",
                    str(root),
                    "-o",
                    "/dev/full",
                    "--no-progress",
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert run.returncode == 1, (fmt, run.stderr)
            assert run.stderr.splitlines() == [
                "persist: cannot write /dev/full: No space left on device"
            ], fmt
        with open("/dev/full", "wb") as full:  # stdout, named as such
            run = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "recorder.cli",
                    "export",
                    "--all",
                    "--format",
                    "md",
                    "--log-dir",
                    str(root),
                    "--no-progress",
                ],
                stdout=full,
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
            )
        assert run.returncode == 1, run.stderr
        assert run.stderr.splitlines() == ["persist: cannot write stdout: No space left on device"]


def test_a_journal_of_more_segments_than_the_soft_open_files_limit_is_exported(
    tmp_path: Path,
) -> None:
    """A reader keeps each segment it read open (what it indexed is read whatever the
    prune does to its name), so a journal of more segments than `ulimit -n` failed
    with "Too many open files" under the usual soft limit of 1024 (64 GiB of segments of
    the default size, less with `--segment-mb`). `persist` raises its soft limit
    toward the hard one; here the soft limit is 64 and the journal has 150 segments."""
    import resource

    root = tmp_path / "logs"
    w = DemoWriter.open(root, segment_bytes=400, clock=DemoClock(T0))
    for i in range(150):
        w.message(T0 + i, "coder", f"message {i} " + "x" * 300)
    w.close()
    assert len(list((root / "segments").iterdir())) >= 150
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.skip(f"the hard limit of open files is {hard} here")

    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))

    for fmt in ("jsonl", "md"):
        out = tmp_path / f"all.{fmt}"
        done = subprocess.run(
            [sys.executable, "-m", "recorder.cli", "export", "--all", "--format", fmt,
             "-o", str(out), "--log-dir", str(root)],
            capture_output=True, timeout=60, preexec_fn=low_soft_limit,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
        assert out.read_bytes().count(b"message 149 ") == 1
