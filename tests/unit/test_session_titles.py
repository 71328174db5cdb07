"""A session's title is often its first prompt, cut to 200 characters: a key in it is
redacted before the cut, so no fragment of a key is left in a title (a fragment is
nothing a scanner recognises), for every agent's reader."""

from __future__ import annotations

import random
from pathlib import Path

from recorder.sources import claude, codex, gemini
from recorder.sources.model import TITLE_CHARS, prompt_title
from recorder.store import secrets as S
from tests.secret_samples import make
from tests.session_fixtures import (
    ClaudeSession,
    codex_rollout,
    gemini_legacy,
    gemini_messages,
    gemini_project,
    new_uuid,
    text,
)

KEY = make(S.GITHUB, random.Random(12)).secret
PROMPT = "please " * 27 + KEY + " and then run the tests"  # the key straddles the cut
REDACTED = "[REDACTED:"


def test_the_premise_a_key_cut_at_the_limit_is_not_found_in_its_fragment() -> None:
    cut = " ".join(PROMPT.split())[:TITLE_CHARS]
    assert KEY[:10] in cut and KEY not in cut
    assert S.redacted_text(cut) == cut  # what a scan after the cut would leave


def test_prompt_title_redacts_before_it_cuts() -> None:
    title = prompt_title(PROMPT)
    assert len(title) <= TITLE_CHARS and KEY[:10] not in title and REDACTED in title
    assert prompt_title("fix   the\nflaky  test") == "fix the flaky test"


def test_every_reader_makes_its_title_so(tmp_path: Path) -> None:
    c = ClaudeSession(tmp_path / "claude", cwd="/home/me/p")
    c.user(PROMPT)
    c.assistant(text("ok"))
    c.write()
    assert c.path is not None
    session = claude.read_transcript(c.path).session
    assert REDACTED in session.title and KEY[:10] not in session.title
    assert KEY[:10] not in session.first_prompt

    rollout = codex_rollout(tmp_path / "codex", "019a085e-0000-7000-8000-0000000000bb", 1)
    rollout.write_text(rollout.read_text().replace("task 0", PROMPT))  # its first task
    title = codex.read_transcript(rollout).session.title
    assert REDACTED in title and KEY[:10] not in title

    messages = gemini_messages(1)
    messages[0]["content"] = [{"text": PROMPT}]
    path = gemini_legacy(gemini_project(tmp_path / "ghome", "/home/me/g"), new_uuid(3), messages)
    title = gemini.read_transcript(path).session.title
    assert REDACTED in title and KEY[:10] not in title
