"""The commands we show for resuming a session: what a shell runs from them is the
session's folder and arguments exactly, and nothing in them is an escape sequence a
terminal would act on (a folder's name may hold one)."""

from __future__ import annotations

import subprocess

import pytest

from recorder.sources.model import shell_line
from recorder.store.shell import shell_quote

pytestmark = pytest.mark.unit

WORDS = [
    "/home/me/proj",
    "it's here",
    "/tmp/x\x1b]0;PWNED\x1b\\y\x1b[2J",
    "tab\there\nnewline",
    "back\\slash 'and' quotes",
    "bidi \u202e reversed",
    "\x7f del",
    "emoji 🙂 ok",
    "not utf-8 \udcff\udcfe byte",  # a folder name's bytes as Python reads them
]


@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
@pytest.mark.parametrize("word", WORDS)
def test_a_shell_reads_each_word_back_exactly(word: str, locale: str) -> None:
    """In any locale: bash writes `\\uHHHH` as text under LC_ALL=C, `\\xHH` never."""
    quoted = shell_quote(word)
    assert quoted.isprintable(), quoted
    out = subprocess.run(
        ["bash", "-c", f"printf %s {quoted}"],
        capture_output=True,
        check=True,
        timeout=10,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": locale},
    )
    assert out.stdout == word.encode("utf-8", "surrogateescape")


def test_a_resume_line_starts_in_the_folder_and_holds_no_control_character() -> None:
    line = shell_line("/tmp/x\x1b]0;T\x07", ["claude", "--resume", "abc"])
    assert line == "cd $'/tmp/x\\x1b]0;T\\x07' && claude --resume abc"
    assert shell_line("", ["codex", "resume", "id"]) == "codex resume id"
