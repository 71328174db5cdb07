"""Hostile messages stay text in Markdown transcripts and restore bundles; stale temp files go."""

from __future__ import annotations

import ast
import io
import os
import re
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from recorder.cli.common import terminal_json
from recorder.daemon.core import Recorder
from recorder.daemon.options import RecorderOptions
from recorder.export.restore import build_bundle
from recorder.export.writers import MarkdownWriter, export_range, md_code, md_text
from recorder.store.fsutil import AtomicFile, remove_stale_temp_files
from recorder.store.ranges import journal_range
from recorder.store.reader import open_store
from tests.demo_journal import DemoClock, DemoWriter
from tests.support import markdown_markup

T0 = 1_800_000_000.0
HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "```\n</code><script>alert(2)</script>\n```",
    "~~~\n<iframe src=javascript:alert(3)>",
    "[click](javascript:alert(4)) ![x](javascript:alert(5))",
    "\\<script>alert(6)\\</script> &lt;b&gt;",
    "<!-- a comment --> <b onmouseover=alert(7)>bold</b>",
]
# What would make a Markdown renderer emit markup or a link from message text.
_TAG = re.compile(r"<[A-Za-z!/?]")
_LINK = re.compile(r"\]\(|\]:|\]\[")


def _outside_code(md: str) -> str:
    """The transcript without fenced code blocks and code spans (where text is inert)."""
    out, fence = [], None
    for line in md.split("\n"):
        body = line.lstrip("> ")
        m = re.match(r"(`{3,}|~{3,})", body)
        if fence is None and m:
            fence = m.group(1)
            continue
        if fence is not None:
            if body.startswith(fence[0] * len(fence)) and not body.strip(fence[0]):
                fence = None
            continue
        out.append(re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", line))
    return "\n".join(out)


def hostile_journal(root: Path) -> Path:
    clock = DemoClock(T0)
    w = DemoWriter.open(root, clock=clock)
    for i, text in enumerate(HOSTILE):
        clock.now = T0 + i
        w.message(
            T0 + i,
            "<b>mallory</b>",
            text,
            topic="t`<script>alert(8)</script>`",
            extra={"html": text},
        )
    w.gap(T0 + 20, "<script>pub</script>", 1, 5)
    w.checkpoint(T0 + 30, "<img src=x onerror=alert(9)>", "manual")
    w.close()
    return root


def _assert_inert(md: str) -> None:
    assert markdown_markup(md) == []  # as a CommonMark renderer reads it
    prose = re.sub(r"<sub>#\d+</sub>", "", _outside_code(md))  # the writer's own markup
    assert not _TAG.search(prose), _TAG.search(prose)
    assert not _LINK.search(prose), _LINK.search(prose)
    # Readable: the words are all there, escaped rather than dropped.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "&lt;img src=x onerror=alert(1)&gt;" in md
    assert "javascript:alert(4)" in md and "&lt;b&gt;mallory&lt;/b&gt;" in md


def test_markdown_export_makes_message_text_inert(tmp_path: Path) -> None:
    root = hostile_journal(tmp_path / "logs")
    out = io.BytesIO()
    with open_store(root) as store:
        export_range(store, journal_range(store, None, None), "md", out)
    md = out.getvalue().decode()
    _assert_inert(md)
    # The JSON body is in a fence that none of its lines can close.
    assert '"html": "```\\n</code><script>alert(2)</script>\\n```"' in md


def test_restore_bundle_transcript_is_inert(tmp_path: Path) -> None:
    root = hostile_journal(tmp_path / "logs")
    bundle = build_bundle(root, "latest", durable=False)
    md = bundle.transcript.read_text()
    _assert_inert(md)
    assert "gap (publisher sequence jumped)" in md and "&lt;script&gt;pub" in md


def test_markdown_helpers() -> None:
    assert md_text("a < b & c > d ]") == "a &lt; b &amp; c &gt; d &#93;"
    assert md_text("\x1b[2J") == "\\x1b[2J"  # escapes shown as before
    assert md_code("plain") == "`plain`"
    assert md_code("a `b` c") == "``a `b` c``"
    assert md_code("`x`") == "`` `x` ``"


def test_a_writer_without_hostile_text_reads_as_before(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    w = DemoWriter.open(root, clock=DemoClock(T0))
    w.message(T0, "planner", "hello there, plain words")
    w.close()
    out = io.BytesIO()
    mw = MarkdownWriter(out)
    with open_store(root) as store:
        for rec in store.records():
            mw.record(rec)
    mw.end()
    assert "**planner** · `chat`" in out.getvalue().decode()
    assert "> hello there, plain words" in out.getvalue().decode()


# -- --json on stdout ---------------------------------------------------------------------
@given(
    st.recursive(
        st.text() | st.integers(-(2**63), 2**63 - 1),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    )
)
@example(["\x9b2J", "\u202eevil\u2066x\u2069", {"k\x85": "\u200f\x1b"}])
def test_terminal_json_escapes_what_orjson_leaves_raw_and_reads_back_the_same(
    value: object,
) -> None:
    """orjson writes ESC and the rest of C0 as `\\u00XX`, but C1 controls (U+009B is a
    CSI to some terminals) and the bidi controls as they are."""
    text = terminal_json(value)
    assert orjson.loads(text) == value
    assert not [c for c in text if 0x80 <= ord(c) <= 0x9F or unicodedata.bidirectional(c) in BIDI]
    assert orjson.loads(terminal_json(value, indent=True)) == value


BIDI = ("LRE", "RLE", "PDF", "LRO", "RLO", "LRI", "RLI", "FSI", "PDI")  # overrides, isolates


def test_terminal_json_leaves_other_text_as_orjson_writes_it() -> None:
    value = {"é": "naïve ☃ 😀 \u200d 中文", "ctl": "\x1b[2J\x00"}
    assert terminal_json(value) == orjson.dumps(value).decode()
    assert (
        terminal_json(value, indent=True)
        == orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    )


def test_every_json_output_is_printed_through_print_json() -> None:
    """One way for `--json`: a command printing orjson's text itself would let C1 and
    bidi controls through again."""
    root = Path(__file__).resolve().parents[2]
    for path in [*sorted((root / "recorder" / "cli").glob("*.py")), root / "tui" / "cli.py"]:
        if path.name == "common.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            printed = isinstance(node, ast.Call) and (
                (isinstance(node.func, ast.Name) and node.func.id == "print")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "write")
            )
            dumps = [
                n
                for n in ast.walk(node)
                if printed
                and isinstance(n, ast.Call)
                and isinstance(n.func, ast.Attribute)
                and n.func.attr == "dumps"
            ]
            assert not dumps, f"{path}:{getattr(node, 'lineno', '?')}"


# -- temp files of atomic writes left by a kill ----------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temp_files_of_dead_processes_are_removed_at_start(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    first = Recorder(RecorderOptions(log_dir=log_dir), clock=lambda: T0)
    first.open()
    first.close()
    layout = first.layout
    dead = _dead_pid()
    stale = [
        layout.recovery / f".state.json.{dead}.tmp",
        layout.root / f".status.json.{dead}.tmp",
        layout.checkpoints / f".x.json.{dead}.tmp",
        layout.control / f".y.done.{dead}.tmp",
    ]
    # A live process's temp file (here a child that keeps running) is never touched,
    # nor is a file that only looks a little like one.
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        kept = [
            layout.recovery / f".state.json.{live.pid}.tmp",
            layout.root / f".other.json.{os.getpid()}.tmp",  # this process: alive
            layout.root / f"state.json.{dead}.tmp",
            layout.root / f".status.json.{dead}.tmp.keep",
        ]
        for path in stale + kept:
            path.write_bytes(b"half a file")
        again = Recorder(RecorderOptions(log_dir=log_dir), clock=lambda: T0 + 1)
        again.open()
        again.close()
        assert [p for p in stale if p.exists()] == []
        assert [p for p in kept if not p.exists()] == []
    finally:
        live.kill()
        live.wait()


def test_a_reused_pid_does_not_protect_an_old_temp_file(tmp_path: Path) -> None:
    me = tmp_path / f".state.json.{os.getppid()}.tmp"  # our parent: alive, started long ago
    me.write_bytes(b"x")
    old = tmp_path / f".status.json.{os.getppid()}.tmp"
    old.write_bytes(b"x")
    # Written before that process started: it cannot be the one writing it.
    os.utime(old, (0, 0))
    assert remove_stale_temp_files(tmp_path) == [old]
    assert me.exists()


def test_an_atomic_write_in_progress_survives_a_cleanup(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    with AtomicFile(target) as f:
        f.file.write(b"{}")
        f.file.flush()
        assert remove_stale_temp_files(tmp_path) == []
        assert f.tmp.exists()
    assert target.read_bytes() == b"{}"


@pytest.mark.parametrize("name", [".a.1.tmp", f".a.{2**70}.tmp"])
def test_pids_it_cannot_judge_are_left_alone(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"x")
    os.utime(path, (time.time(), time.time()))
    assert remove_stale_temp_files(tmp_path) == []  # pid 1 is alive; 2**70 is not a pid
    assert path.exists()


@pytest.mark.parametrize(
    ("sender", "chain"),
    [("`", "reply"), ("`<img src=x onerror=alert(1)>", "reply"), ("bob\\", "`"), ("a\\`", "b")],
)
def test_a_sender_or_chain_with_backticks_cannot_open_the_topics_code_span(
    tmp_path: Path, sender: str, chain: str
) -> None:
    """The heading `**sender** · `topic` · time · chain`: a backtick in the sender paired
    with the topic span's opening one, and the topic, written raw inside its span, came
    out as HTML (`<img onerror>`). The fields beside the span escape `\\` and `` ` ``."""
    from tests.support import markdown_tokens

    w = DemoWriter.open(tmp_path / "logs", clock=DemoClock(T0))
    w.message(T0, sender, "hello", topic="<img src=x onerror=alert(2)>", chain=chain)
    w.close()
    out = io.BytesIO()
    with open_store(tmp_path / "logs") as store:
        export_range(store, journal_range(store, None, None), "md", out)
    md = out.getvalue().decode()
    assert markdown_markup(md) == []
    spans = [t.content for t in markdown_tokens(md) if t.type == "code_inline"]
    assert spans == ["<img src=x onerror=alert(2)>"]  # the topic, whole, as code
