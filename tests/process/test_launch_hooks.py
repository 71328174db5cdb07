"""`persist launch -- claude` and our start hook: the checkpoint chosen for the agent
reaches it (Claude Code reads no `PERSIST_*` variable; its SessionStart hook, which
inherits them, answers with the checkpoint), and the launcher says so when no hook of
ours would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recorder.store.reader import open_store
from tests.support import endpoints
from tests.tui_fixtures import demo_dir

pytestmark = pytest.mark.timeout(120)

# A stand-in Claude Code: it runs our start hook as Claude does (`sh -c`, the payload on
# stdin, its own environment), and writes what the hook answered. Then a process it
# starts itself (its Bash tool running `claude -p`) runs the hook too: that one inherits
# the variables but was not launched.
FAKE_CLAUDE = """#!{python}
import json, os, subprocess, sys
log_dir, report, hook_args = sys.argv[1], sys.argv[2], sys.argv[3]
payload = json.dumps({{
    "session_id": "5f0c1d2e-0000-4000-8000-00000000000" + str(len(sys.argv)),
    "transcript_path": "", "cwd": os.getcwd(), "hook_event_name": "SessionStart",
    "source": "startup",
}})
hook = (
    f"{{sys.executable}} -m recorder.cli hook SessionStart --agent claude "
    f"--log-dir {{log_dir}} {{hook_args}}"
)
def answer():
    out = subprocess.run(["sh", "-c", hook], input=payload.encode(), capture_output=True)
    return out.stdout.decode()
nested = subprocess.run(
    [sys.executable, "-c", "import subprocess, sys; sys.stdout.write(subprocess.run("
     "['sh', '-c', sys.argv[1]], input=sys.argv[2].encode(), capture_output=True)"
     ".stdout.decode())", hook.replace("--restore=latest", ""), payload],
    capture_output=True, text=True,
).stdout
with open(report, "w") as f:
    json.dump({{"answer": answer(), "nested": nested,
               "checkpoint": os.environ.get("PERSIST_CHECKPOINT")}}, f)
"""


def launch_claude(
    tmp: Path, log_dir: Path, policy: str, hook_args: str, env: dict[str, str], *own: str
) -> tuple[dict[str, str], str]:
    """`persist launch` (no terminal: the policy chooses) of the stand-in `claude`;
    what its hooks answered, and what the launcher said."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    claude = bin_dir / "claude"
    claude.write_text(FAKE_CLAUDE.format(python=sys.executable))
    claude.chmod(0o755)
    report = tmp / f"report-{policy}.json"
    eps = endpoints()
    argv = [sys.executable, "-m", "recorder.cli", "launch", "--log-dir", str(log_dir)]
    argv += ["--broker", eps["broker"], "--publish-endpoint", eps["publish_endpoint"]]
    argv += ["--embedded", "yes", "--no-tty-policy", policy]
    argv += ["--", str(claude), str(log_dir), str(report), hook_args, *own]
    out = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp / "project",
        env={**os.environ, **env},
    )
    assert out.returncode == 0, out.stderr
    return json.loads(report.read_text()), out.stderr


def test_the_checkpoint_chosen_at_launch_is_offered_to_claude_by_its_start_hook(
    tmp_path: Path,
) -> None:
    log_dir = demo_dir(tmp_path)
    (tmp_path / "project").mkdir()
    config = tmp_path / "claude-config"
    env = {"CLAUDE_CONFIG_DIR": str(config)}
    latest = max(open_store(log_dir).checkpoints(), key=lambda cp: cp.created)

    # No hook installed: the launcher says Claude will not hear of the checkpoint.
    got, said = launch_claude(tmp_path, log_dir, "latest", "", env)
    assert got["checkpoint"] == latest.id
    assert "claude reads no PERSIST_* variable: with our hooks (persist hooks install" in said
    assert "point it at " in said

    # Installed (without --restore: the launch menu's choice is enough), it answers
    # with the chosen checkpoint; the process the agent started itself gets nothing.
    install = [sys.executable, "-m", "recorder.cli", "hooks", "install", "claude"]
    installed = subprocess.run(
        [*install, "--log-dir", str(log_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert installed.returncode == 0, installed.stderr
    got, said = launch_claude(tmp_path, log_dir, "latest", "", env)
    assert "reads no PERSIST_* variable" not in said
    context = json.loads(got["answer"])["hookSpecificOutput"]["additionalContext"]
    chosen = got["checkpoint"]  # the first launch's recorder left a shutdown checkpoint
    assert chosen and chosen != latest.id
    assert f"Checkpoint {chosen} " in context and "Integrity: verified" in context
    transcript = Path(context.split("readable: ", 1)[1].splitlines()[0])
    assert transcript.parent.name == chosen and transcript.is_file()
    assert got["nested"] == ""

    # Fresh chosen at launch: nothing offered, even by a hook installed with
    # --restore=latest (the person's choice wins over the no-terminal policy).
    got, said = launch_claude(tmp_path, log_dir, "fresh", "--restore=latest", env)
    assert got["checkpoint"] == "" and got["answer"] == ""

    # `claude -p ...` says itself what runs: no menu, nobody chose, so the hook's own
    # policy decides (here --restore=latest: the newest checkpoint).
    got, said = launch_claude(tmp_path, log_dir, "cancel", "--restore=latest", env, "-p", "hi")
    assert "claude -p decides what runs: no launch menu" in said
    offered = json.loads(got["answer"])["hookSpecificOutput"]["additionalContext"]
    named = offered.split("Checkpoint ", 1)[1].split(" ", 1)[0]
    assert got["checkpoint"] == "" and named in {cp.id for cp in open_store(log_dir).checkpoints()}

    # "disableAllHooks": true: Claude Code runs none of them, our start hook included;
    # the launcher said nothing and the chosen checkpoint never reached Claude.
    user = config / "settings.json"
    user.write_text(json.dumps({**json.loads(user.read_text()), "disableAllHooks": True}))
    got, said = launch_claude(tmp_path, log_dir, "latest", "", env)
    assert f"claude runs no hooks (disableAllHooks is true in {user})" in said, said
    assert "point it at " in said


def test_the_launcher_does_not_count_on_gemini_hooks_in_a_folder_it_does_not_trust(
    tmp_path: Path,
) -> None:
    """Our start hook installed in a project Gemini CLI does not trust: Gemini CLI runs
    no hook from its settings there, yet the launcher counted on it and left out the
    line that points the person at the chosen checkpoint's transcript. Now it says why
    the hook will not run; trusted, it counts on the hook again."""
    log_dir = demo_dir(tmp_path)
    project, home, bin_dir = tmp_path / "project", tmp_path / "ghome", tmp_path / "bin"
    project.mkdir()
    bin_dir.mkdir()
    gemini = bin_dir / "gemini"  # a stand-in: the launcher's words are what is looked at
    gemini.write_text("#!/bin/sh\nexit 0\n")
    gemini.chmod(0o755)
    env = {**os.environ, "GEMINI_CLI_HOME": str(home)}
    install = [sys.executable, "-m", "recorder.cli", "hooks", "install", "gemini"]
    install += ["--scope", "project", "--log-dir", str(log_dir)]
    installed = subprocess.run(install, capture_output=True, text=True, env=env, cwd=project)
    assert installed.returncode == 0, installed.stderr

    def launch() -> str:
        eps = endpoints()
        argv = [sys.executable, "-m", "recorder.cli", "launch", "--log-dir", str(log_dir)]
        argv += ["--broker", eps["broker"], "--publish-endpoint", eps["publish_endpoint"]]
        argv += ["--embedded", "yes", "--no-tty-policy", "latest", "--", str(gemini)]
        out = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=90,
            cwd=project,
            env=env,
        )
        assert out.returncode == 0, out.stderr
        return out.stderr

    said = launch()
    assert (
        f"gemini will not run our start hook (Gemini CLI started in {project} asks whether "
        "to trust the folder" in said
    ), said
    assert "so it is not offered the checkpoint: point it at " in said
    (home / ".gemini").mkdir(parents=True)
    (home / ".gemini" / "trustedFolders.json").write_text(
        json.dumps({str(project): "TRUST_FOLDER"})
    )
    said = launch()
    assert "point it at " not in said and "restoring " in said, said


def test_the_launcher_does_not_count_on_claude_hooks_its_managed_settings_stop(
    tmp_path: Path,
) -> None:
    """Claude Code's managed settings (`/etc/claude-code/managed-settings.json`) with
    `allowManagedHooksOnly: true`: it runs none of the user's hooks, our start hook
    included, yet the launcher counted on it and left out the line that points the
    person at the chosen checkpoint's transcript. Now it says why, naming the file."""
    log_dir = demo_dir(tmp_path)
    (tmp_path / "project").mkdir()
    managed = tmp_path / "etc-claude-code"
    env = {
        "CLAUDE_CONFIG_DIR": str(tmp_path / "claude-config"),
        "PERSIST_CLAUDE_MANAGED_DIR": str(managed),
    }
    install = [sys.executable, "-m", "recorder.cli", "hooks", "install", "claude"]
    installed = subprocess.run(
        [*install, "--log-dir", str(log_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert installed.returncode == 0, installed.stderr
    managed.mkdir()
    policy = managed / "managed-settings.json"
    policy.write_text('{"allowManagedHooksOnly": true}')
    got, said = launch_claude(tmp_path, log_dir, "latest", "", env)
    assert got["checkpoint"]  # chosen: the line below names its transcript
    assert (
        f"claude will not run our hooks (allowManagedHooksOnly is true in Claude Code's "
        f"managed settings {policy}" in said
    ), said
    assert "so it is not offered the checkpoint: point it at " in said
