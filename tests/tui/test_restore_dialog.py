"""The restore dialog lists every problem in the range, and hands back the redaction
it shows (what `persist launch --redact` starts it as)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from textual.pilot import Pilot
from textual.widgets import Checkbox

from recorder.cli.common import terminal_json
from recorder.export.restore import bundle_name
from recorder.export.scope import BundleScope
from recorder.launch import menu
from recorder.launch.selection import Selection
from recorder.store.layout import Layout
from recorder.store.reader import open_store
from tests.screenshots import settle
from tests.tui_fixtures import SIZE, demo_dir, make_app, pilot_test, plain, wait_until
from tui import cli as tui_cli
from tui.app import PersistApp
from tui.screens.restore import RestoreScreen


@asynccontextmanager
async def restore_dialog(
    root: Path, size: tuple[int, int] = SIZE, **app_options: object
) -> AsyncIterator[tuple[PersistApp, Pilot[Any], RestoreScreen]]:
    """The app on `root` with the restore dialog open on the newest checkpoint."""
    app = make_app(root, **app_options)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RestoreScreen)
        yield app, pilot, screen


@pilot_test
async def test_restore_confirmation_shows_gaps_and_damage_in_range(tmp_path: Path) -> None:
    root = demo_dir(tmp_path)  # the demo journal has a gap, a bad line and a refused message
    async with restore_dialog(root) as (app, pilot, screen):  # the newest checkpoint covers them
        shown = plain(screen.query_one("#restore-integrity"))
        assert "matches the checkpoint digest (3 segment(s) re-hashed)" in shown
        assert "1 gap, 4 messages known lost" in shown
        assert "1 damaged line" in shown and "1 refused message" in shown
        assert screen.integrity is not None and screen.integrity.bad_lines == 1
        assert not screen.query_one("#confirm").disabled
        await pilot.press("y")  # what it warned of goes with the choice (`--print`, menu)
        await pilot.pause()
    chosen = app.return_value
    assert isinstance(chosen, Selection) and chosen.verified
    said = " · ".join(chosen.problems)
    assert "1 gap, 4 messages known lost" in said and "1 damaged line" in said


@pytest.mark.parametrize("size", [(80, 24), SIZE])
@pilot_test
async def test_the_dialog_shows_its_buttons_whole_on_a_small_terminal(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    """At 80x24, with every kind of problem in range (six rows of integrity), the
    buttons are inside the dialog and the dialog on the screen above the footer."""
    async with restore_dialog(demo_dir(tmp_path), size) as (_, _, screen):
        assert plain(screen.query_one("#restore-integrity")).count("\n") >= 3  # the premise
        dialog = screen.query_one("#restore-dialog")
        inside = dialog.content_region
        assert dialog.region.bottom <= size[1] - 1  # the footer's row is the last
        for name in ("#confirm", "#cancel", "#restore-redact"):
            button = screen.query_one(name).region
            assert button.height > 0 and inside.contains_region(button), (name, button, inside)


async def _restore(root: Path, keys: tuple[str, ...], **app_options: object) -> tuple[bool, Any]:
    """Open the restore dialog on the newest checkpoint, press `keys`, confirm with y:
    what its redaction box showed first, and the app's result."""
    async with restore_dialog(root, **app_options) as (app, pilot, screen):
        shown = screen.query_one("#restore-redact", Checkbox).value
        await pilot.press(*keys, "y")
        await pilot.pause()
    return shown, app.return_value


@pilot_test
async def test_the_dialog_hands_back_the_redaction_it_shows(tmp_path: Path) -> None:
    root = demo_dir(tmp_path)
    shown, sel = await _restore(root, ())
    assert shown is False and isinstance(sel, Selection) and sel.redact is False
    shown, sel = await _restore(root, ("x",))
    assert shown is False and sel.redact is True
    shown, sel = await _restore(root, (), redact=True)  # persist launch --redact
    assert shown is True and sel.redact is True
    shown, sel = await _restore(root, ("x",), redact=True)
    assert shown is True and sel.redact is False
    assert (
        Selection.from_json(orjson.loads(terminal_json(sel.to_json()))).redact is False
    )  # --print
    assert Selection.from_json({"kind": "fresh"}).redact is None  # the launcher decides


def test_persist_launch_redact_reaches_the_dialog_and_the_standalone_restore_honours_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`PersistenceLauncher(redact=True)` starts its menu with `--redact`, which the TUI's
    command line takes; `persist-tui` without --print writes the bundle as chosen."""
    started: list[list[str]] = []

    class Started:
        def __init__(self, argv: list[str], **_kw: object) -> None:
            started.append(argv)

    monkeypatch.setattr(menu.subprocess, "Popen", Started)
    monkeypatch.setattr(menu.signal, "signal", lambda *_a: None)
    menu.Menu(tmp_path, "claude", redact=True)
    menu.Menu(tmp_path, "claude")
    assert [argv[-1] == "--redact" for argv in started] == [True, False]
    assert tui_cli.build_parser().parse_args(started[0][3:]).redact is True
    root = demo_dir(tmp_path)
    cp = open_store(root).checkpoints()[-1]
    for redact in (True, False):
        chosen = Selection.from_checkpoint(cp, root, verified=True, redact=redact)
        assert tui_cli.restore(chosen, root, None) == tui_cli.EXIT_CHOSEN
        manifest = orjson.loads(layout_bundle_manifest(root, cp.id, redact=redact))
        assert manifest["redacted"] is redact
    assert "secrets redacted" in capsys.readouterr().out


def layout_bundle_manifest(
    root: Path, checkpoint_id: str, scope: BundleScope | None = None, redact: bool = False
) -> bytes:
    """The manifest of the bundle of that checkpoint, scope and redaction (each its own
    folder: `<id>`, `<id>.last-5`, `<id>.redacted` ...)."""
    name = bundle_name(checkpoint_id, scope or BundleScope(), redact)
    return (Layout(root).restore / name / "manifest.json").read_bytes()


def _fifth_last_message_ts(root: Path) -> float:
    store = open_store(root)
    cp = store.checkpoints()[0]  # the newest
    stop = store.checkpoint_index(cp)
    messages = [r for r in store.records(0, stop) if r.is_message]
    ts = messages[-5].ts
    assert ts is not None and messages[0].ts != ts
    return ts


@pilot_test
async def test_the_dialog_says_which_part_of_the_conversation_is_handed_over(
    tmp_path: Path,
) -> None:
    """`persist launch --last 5` (the menu's `--last 5`): the dialog says the last 5 of
    the checkpoint's 226 messages, and the time range starts at the first of those 5;
    by default (the last 1000) the demo's 226 messages are the whole conversation."""
    root = demo_dir(tmp_path)
    async with restore_dialog(root, restore_scope=BundleScope(last=5)) as (app, pilot, screen):
        await wait_until(pilot, lambda: screen.first_ts is not None, "the range's start")
        shown = plain(screen.query_one("#restore-summary"))
        assert "Hands over  the last 5 messages (of 226; the earlier ones stay" in shown
        first = app.clock.stamp(_fifth_last_message_ts(root))
        assert f"Time range  {first} → " in shown
        assert "226" not in shown.split("Hands over")[0]  # no bare "Messages 226" row
    async with restore_dialog(root) as (_, _, screen):
        shown = plain(screen.query_one("#restore-summary"))
        assert "Hands over  the whole conversation (226 messages)" in shown


def test_the_scope_reaches_the_dialog_and_the_restore_prints_what_the_bundle_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The launcher's `--last N`/`--full` reach persist-tui's options; after the
    dialog, persist-tui writes the bundle of that scope and says what it holds."""
    started: list[list[str]] = []

    class Started:
        def __init__(self, argv: list[str], **_kw: object) -> None:
            started.append(argv)

    monkeypatch.setattr(menu.subprocess, "Popen", Started)
    monkeypatch.setattr(menu.signal, "signal", lambda *_a: None)
    for scope in (BundleScope(last=5), BundleScope.whole(), None):
        menu.Menu(tmp_path, "claude", scope=scope)
    parsed = [tui_cli.scope_of(tui_cli.build_parser().parse_args(a[3:])) for a in started]
    assert parsed == [BundleScope(last=5), BundleScope.whole(), BundleScope()]
    root = demo_dir(tmp_path)
    cp = open_store(root).checkpoints()[0]  # the newest: 226 messages
    chosen = Selection.from_checkpoint(cp, root, verified=True)
    assert tui_cli.restore(chosen, root, None, BundleScope(last=5)) == tui_cli.EXIT_CHOSEN
    out = capsys.readouterr().out
    manifest = orjson.loads(layout_bundle_manifest(root, cp.id, BundleScope(last=5)))
    assert manifest["messages"] == 5 and manifest["scope"] == {"kind": "last", "last": 5}
    assert "(5 messages, verified)" in out
    assert "every record" not in out
    assert (
        "conversation.jsonl   the last 5 messages up to the checkpoint (of 226 messages; "
        "the earlier records stay in the journal), as stored" in out
    )
    assert tui_cli.restore(chosen, root, None) == tui_cli.EXIT_CHOSEN  # the last 1000: all
    assert "conversation.jsonl   every record up to the checkpoint, as stored" in (
        capsys.readouterr().out
    )


def test_a_session_chosen_without_print_says_the_launch_that_does_what_was_confirmed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It printed `persist launch --session S -- claude`: without the user's arguments
    (`--model opus`) and without the log folder, where a session the agent deleted is
    held (a lookup elsewhere said "no session")."""
    import shlex

    log = tmp_path / "my logs"
    chosen = Selection.resume(
        log, "claude:3333", ["claude", "--resume", "3333", "--model", "opus"], "/w", at=4
    )
    code = tui_cli.restore(chosen, log, None, agent_command=["claude", "--model", "opus"])
    assert code == tui_cli.EXIT_CHOSEN
    printed = capsys.readouterr().out.strip()
    said = printed.removeprefix("persist-tui: resume it with: ")
    assert shlex.split(said) == [
        "persist", "launch", "--log-dir", str(log), "--session", "claude:3333", "--at", "4",
        "--", "claude", "--model", "opus",
    ]  # fmt: skip


def damage_a_message(root: Path) -> str:
    """The newest checkpoint's last message line in the journal made unreadable in place
    (its second half raw 0xff and ESC bytes, the offsets kept); returns its sender."""
    from recorder.store.checkpoints import list_checkpoints
    from recorder.store.layout import segment_name

    layout = Layout(root)
    cp = list_checkpoints(layout)[0]
    path = layout.segments / segment_name(cp.segment)
    data = bytearray(path.read_bytes())
    end = cp.offset
    while True:
        start = data.rfind(b"\n", 0, end - 1) + 1
        line = bytes(data[start:end])
        if b'"kind":"msg"' in line:
            break
        end = start
    half = (len(line) - 1) // 2
    data[start + half : end - 1] = (b"\xff\x1b" * len(line))[: len(line) - 1 - half]
    path.write_bytes(bytes(data))
    return str(orjson.loads(line)["meta"]["sender"])


@pilot_test
async def test_a_damaged_message_is_counted_alike_in_the_preview_and_the_dialog(
    tmp_path: Path,
) -> None:
    """With one message line damaged, the dialog said "the whole conversation (226
    messages)" and then "the checkpoint counts 226 messages, the journal holds 225";
    the preview said "20 messages" since the previous checkpoint while its "Who spoke"
    (the checkpoint's count) added up to 21 with the damaged line's sender. Each count
    now says whose it is, and the preview's two lines count the same messages."""
    import re

    root = demo_dir(tmp_path)
    sender = damage_a_message(root)
    async with restore_dialog(root) as (app, pilot, screen):
        words = plain(screen.query_one("#restore-summary"))
        said = plain(screen.query_one("#restore-integrity"))
        assert "the checkpoint counts 226 messages, the journal holds 225 up to it" in said
        assert (
            "the whole conversation (225 messages in the journal; the checkpoint counts 226)"
            in words
        )
        await pilot.press("escape")
        await settle(pilot)
        preview = plain(app.screen.query_one("#preview"), 300)
    since = re.search(r"Since the previous checkpoint: (\d+) messages in the journal", preview)
    assert since is not None, preview
    assert "(the checkpoint counted 20)" in preview
    who = next(line for line in preview.splitlines() if line.startswith("Who spoke"))
    spoke = {name: int(n) for name, n in re.findall(r"(\w+) (\d+)", who.split(":", 1)[1])}
    assert sum(spoke.values()) == int(since.group(1)) == 19, (who, since.group())
    assert spoke[sender] == 4  # 5 in the checkpoint's count


def test_the_restore_of_a_relative_log_folder_prints_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`persist-tui --log-dir logs`: the variables it prints for an agent, and the
    manifest's `log_dir`, name the folders whole, so they hold wherever the agent runs
    (before, `PERSIST_LOG_DIR=logs PERSIST_RESTORE_FILE=logs/restore/...`)."""
    root = demo_dir(tmp_path)
    cp = open_store(root).checkpoints()[0]
    chosen = Selection.from_checkpoint(cp, root, verified=True)
    monkeypatch.chdir(tmp_path)
    assert tui_cli.restore(chosen, Path("logs"), None) == tui_cli.EXIT_CHOSEN
    out = capsys.readouterr().out
    bundle = root / "restore" / cp.id
    assert f"PERSIST_LOG_DIR={root} PERSIST_CHECKPOINT={cp.id} " in out
    assert f"PERSIST_RESTORE_FILE={bundle}/conversation.jsonl " in out
    assert orjson.loads((bundle / "manifest.json").read_bytes())["log_dir"] == str(root)


def test_what_persist_tui_prints_after_a_choice_never_fails_on_a_latin1_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a Latin-1 locale the bundle's folder (`proj → 🎉/logs/restore/...`) was a
    UnicodeEncodeError at the end of `persist-tui`, after the bundle was written, and
    so was a `--print` of a label past Latin-1: escaped now, the JSON kept to ASCII."""
    import io
    from dataclasses import replace

    from recorder.cli.common import print_json
    from recorder.cli.streams import show_everything_on_stdout

    root = demo_dir(tmp_path / "proj → 🎉")
    raw = io.BytesIO()
    monkeypatch.setattr("sys.stdout", io.TextIOWrapper(raw, encoding="latin-1"))
    show_everything_on_stdout()  # as the program does first
    cp = open_store(root).checkpoints()[-1]
    chosen = Selection.from_checkpoint(cp, root, verified=True)
    assert tui_cli.restore(chosen, root, None) == tui_cli.EXIT_CHOSEN
    print_json(replace(chosen, label="étape → 🎉").to_json(), flush=True)  # --print
    out = raw.getvalue()
    assert b"proj \\u2192 \\U0001f389/logs/restore/" in out
    json_line = out.splitlines()[-1]
    assert json_line.isascii() and orjson.loads(json_line)["label"] == "étape → 🎉"
