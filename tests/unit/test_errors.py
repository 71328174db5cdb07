"""How a child process's end is told to a person (`how_it_ended`)."""

from __future__ import annotations

import pytest

from recorder.errors import how_it_ended

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("code", "said"),
    [
        (0, "exit code 0"),
        (3, "exit code 3"),
        (None, "exit code unknown"),  # not reaped in time
        (-9, "killed by SIGKILL"),
        (-15, "killed by SIGTERM"),
        (-200, "killed by signal 200"),  # no such signal: its number
    ],
)
def test_an_end_is_said_as_a_person_reads_it(code: int | None, said: str) -> None:
    assert how_it_ended(code) == said
