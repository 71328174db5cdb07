"""A save killed before its rename leaves its hidden temp file in exports/; the next
save of the UI removes it, and never the file of a save still being written."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.screenshots import settle
from tests.tui_fixtures import SIZE, demo_dir, main_screen, make_app, pilot_test

# A save of the UI's (`save_records`) that stops after its first record until its
# stdin closes: "writing" on stdout says its temp file is there.
SAVING = """
import sys
from pathlib import Path
from tui.records_io import save_records

class Line:
    line = b'{"seq": 1}\\n'

def records():
    yield Line()
    print("writing", flush=True)
    sys.stdin.read()

save_records(Path(sys.argv[1]), records(), "record-1")
"""


@contextmanager
def saving(exports: Path) -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(
        [sys.executable, "-c", SAVING, str(exports)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"writing\n"
        yield child
    finally:
        child.kill()
        child.wait(10)


def temp_files(exports: Path) -> set[str]:
    return {p.name for p in exports.iterdir() if p.name.startswith(".")}


@pilot_test
async def test_the_next_save_removes_what_a_killed_save_left(tmp_path: Path) -> None:
    root = demo_dir(tmp_path)
    exports = root / "exports"
    with saving(exports) as killed:
        (left,) = temp_files(exports)
        assert left.endswith(f".{killed.pid}.tmp")
    # killed (SIGKILL) mid-save: nothing could remove it
    assert temp_files(exports) == {left}
    with saving(exports) as live:
        (writing,) = temp_files(exports) - {left}
        app = make_app(root)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("3")
            await settle(pilot)
            main_screen(app).recent_pane.copy_highlighted()
            await pilot.pause()
        saved = [p.name for p in exports.iterdir() if not p.name.startswith(".")]
        assert len(saved) == 1 and saved[0].startswith("record-"), saved
        assert temp_files(exports) == {writing}  # the live save's, and only it
        assert live.stdin is not None
        live.stdin.close()  # its save ends, its file given its name
        assert live.wait(10) == 0
    assert temp_files(exports) == set()
    assert len(list(exports.iterdir())) == 2
