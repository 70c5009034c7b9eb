"""The paper cuts between the README and a finished film (issue #16), as a new user meets them.

Set-up that works as written, no money spent without consent, flags and defaults that behave the
same on every command, and a build that says why each shot runs and names shots, not hashes.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests._cli import storyboard as run_storyboard

ROOT = Path(__file__).resolve().parent.parent
BOARD = """
[film]
output = "out/film.mp4"
provider = "fake"
resolution = "360p"
duration = 4

[[shot]]
id = "one"
prompt = "a boat leaves the harbour"

[[shot]]
id = "two"
continues = "one"
prompt = "the boat reaches open sea"

[[shot]]
id = "three"
prompt = "night falls"
"""
"""On the fake provider at 360p (a quarter of 720p's stitch: the film's size is not the point here)."""
ON_ANIMATIC = BOARD.replace('provider = "fake"\nresolution = "360p"', 'provider = "animatic"')
"""The animatic holds to Veo's sizes (720p and up)."""


def storyboard(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`storyboard ARGS` as a script runs it: no terminal on stdin, no colour."""
    return run_storyboard(*args, env={**(env or os.environ), "NO_COLOR": "1"}, cwd=cwd)


@pytest.fixture
def board(tmp_path: Path) -> Path:
    path = tmp_path / "film" / "storyboard.toml"
    path.parent.mkdir()
    path.write_text(BOARD)
    return path


# ---- 2. set-up: the README's two commands are the ones CI runs ------------------------------------

def readme_setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", section, re.S)]


def test_readme_setup_is_two_commands_and_ci_runs_exactly_them():
    install, tests = readme_setup_commands()
    assert "\n" not in install and "\n" not in tests
    assert install == "./setup.sh"
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    assert install in ci, "CI must install the way the README says"
    assert ci[-1] == tests, "CI's last command must be the README's test command"
    assert tests.startswith(".venv/bin/python -m pytest")
    script = (ROOT / "setup.sh").read_text()
    assert os.access(ROOT / "setup.sh", os.X_OK)
    assert "-m venv .venv" in script and "-e '.[test]'" in script
    assert "storyboard build examples/lighthouse/storyboard.toml" in script
    assert subprocess.run(["sh", "-n", str(ROOT / "setup.sh")]).returncode == 0


def test_setup_refuses_an_old_python_before_touching_anything(tmp_path):
    script = tmp_path / "setup.sh"
    script.write_bytes((ROOT / "setup.sh").read_bytes())
    old = tmp_path / "python3.9"
    old.write_text("#!/bin/sh\nexit 1\n")  # a Python too old: `sys.version_info < (3, 11)` is true
    old.chmod(0o755)
    proc = subprocess.run(["sh", str(script)], capture_output=True, text=True, env={**os.environ, "PYTHON": str(old)},
                          timeout=60)
    assert proc.returncode == 1
    assert "needs Python 3.11 or newer" in proc.stderr
    assert not (tmp_path / ".venv").exists()


# ---- 3. money without asking -----------------------------------------------------------------------

def test_paid_work_without_a_terminal_needs_yes_or_budget(board, plugin_env):
    refused = storyboard("build", str(board), env=plugin_env)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "no terminal to ask" in refused.stderr and "--yes" in refused.stderr and "--budget" in refused.stderr
    assert "nothing was run" in refused.stderr
    assert json.loads(storyboard("plan", str(board), "--json", env=plugin_env).stdout)["cached"] == 0
    within = storyboard("build", str(board), "--budget", "100", env=plugin_env)
    assert within.returncode == 0, within.stderr
    assert "summary: 3 rendered" in within.stdout


def test_budget_does_not_stand_for_an_unknown_price(board, plugin_env, tmp_path):
    (tmp_path / "unpriced_provider.py").write_text(
        "from tests.fake_provider import FakeProvider\n\n\n"
        "class Unpriced(FakeProvider):\n    name = 'unpriced'\n\n    def price(self, job):\n        return None\n")
    dist = tmp_path / "unpriced-0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: unpriced\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text("[storyboard.providers]\nunpriced = unpriced_provider:Unpriced\n")
    env = {**plugin_env, "PYTHONPATH": os.pathsep.join([str(tmp_path), plugin_env["PYTHONPATH"]])}
    board.write_text(BOARD.replace('provider = "fake"', 'provider = "unpriced"'))
    refused = storyboard("build", str(board), "--budget", "100", env=env)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "--budget counts US dollars" in refused.stderr and "3 shot(s) with no known price" in refused.stderr
    assert storyboard("build", str(board), "--yes", "--only", "three", env=env).returncode == 0


def test_declining_the_question_generates_nothing_and_exits_4(board, plugin_env):
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "storyboard", "build", str(board)], stdin=slave,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**plugin_env, "NO_COLOR": "1"})
        os.write(master, b"n\n")
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(slave)
        os.close(master)
    assert "Generate 2 shot(s) (and up to 1 that may rerun) for an estimated $6.00?" in out
    assert proc.returncode == 4, out + err
    assert "nothing was generated" in err
    assert not (board.parent / "out").exists()


def test_the_animatic_never_asks(board):
    board.write_text(ON_ANIMATIC)
    import pty

    master, slave = pty.openpty()
    try:  # a terminal that answers nothing: a question would hang until the timeout
        proc = subprocess.run([sys.executable, "-m", "storyboard", "build", str(board), "--only", "three"],
                              stdin=slave, capture_output=True, text=True, timeout=240,
                              env={**os.environ, "NO_COLOR": "1"})
    finally:
        os.close(slave)
        os.close(master)
    assert proc.returncode == 0, proc.stderr
    assert "Generate" not in proc.stdout and "summary: 1 rendered" in proc.stdout


# ---- 5. flags and defaults --------------------------------------------------------------------------

COMMANDS_WITH_A_BOARD = ("validate", "plan", "build", "graph", "report", "push", "pull")


@functools.cache
def help_of(command: str) -> subprocess.CompletedProcess[str]:
    """`storyboard COMMAND --help`, run once per command for the tests of this file."""
    return storyboard(command, "--help")


@pytest.mark.parametrize("command", COMMANDS_WITH_A_BOARD)
def test_every_command_that_loads_a_board_takes_allow_outside_and_plain_help(command):
    proc = help_of(command)
    assert proc.returncode == 0, proc.stderr
    assert "--allow-outside" in proc.stdout
    assert "[FILE]" in proc.stdout.splitlines()[0]
    assert not re.search(r"[{}]|<[a-z]", proc.stdout), proc.stdout


def test_help_placeholders_are_plain():
    for command in ("gc", "init", "schema"):
        proc = help_of(command)
        assert proc.returncode == 0, proc.stderr
        assert not re.search(r"[{}]|<[a-z]", proc.stdout), proc.stdout
    assert "--only SHOT" in help_of("build").stdout


def test_an_error_that_suggests_allow_outside_is_answered_by_it(tmp_path):
    (tmp_path / "film").mkdir()
    (tmp_path / "keeper.png").write_bytes((ROOT / "examples" / "lighthouse" / "assets" / "keeper.png").read_bytes())
    board = tmp_path / "film" / "storyboard.toml"
    board.write_text('[film]\nduration = 4\n[assets]\nk = "../keeper.png"\n'
                     '[[shot]]\nid = "a"\nprompt = "x"\nfirst_frame = "k"\n')
    for command in ("plan", "graph"):
        refused = storyboard(command, str(board))
        assert refused.returncode == 2 and "--allow-outside" in refused.stderr
        allowed = storyboard(command, str(board), "--allow-outside")
        assert allowed.returncode == 0, allowed.stderr


def test_no_file_means_the_storyboard_here(board, tmp_path):
    board.write_text(ON_ANIMATIC)
    runs = {command: storyboard(command, cwd=board.parent) for command in ("validate", "plan", "graph")}
    for proc in runs.values():
        assert proc.returncode == 0, proc.stderr
    assert "ok (3 shots" in runs["validate"].stdout
    assert "2 to generate, 1 may rerun" in runs["plan"].stdout
    empty = storyboard("build", cwd=tmp_path)
    assert empty.returncode == 2
    assert "no storyboard.toml in this folder" in empty.stderr and "storyboard init" in empty.stderr


def test_verbose_after_the_command(tmp_path):
    proc = storyboard("plan", str(tmp_path / "missing.toml"), "--verbose")
    assert proc.returncode == 2
    assert "No such option" not in proc.stderr
    assert "Traceback" in proc.stderr and "no such file" in proc.stderr


def test_plan_of_a_picture_says_it_is_not_a_storyboard():
    picture = ROOT / "examples" / "lighthouse" / "assets" / "keeper.png"
    proc = storyboard("plan", str(picture))
    assert proc.returncode == 2
    assert f"{picture}: not a storyboard: it is a PNG image" in proc.stderr
    assert "UTF-8" not in proc.stderr


# ---- 6. what build says -----------------------------------------------------------------------------

def test_build_says_why_each_shot_runs_and_names_shots_in_film_steps(board, plugin_env):
    first = storyboard("build", str(board), "--yes", env=plugin_env)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == "one: queued — new shot"
    assert "two: queued — new shot; runs after upstream 'one'" in lines
    film = [line for line in lines if line.startswith("film: ") and "(" in line and "stitched" not in line]
    assert film, first.stdout
    for line in film:
        assert not re.search(r"[0-9a-f]{8}", line), line
        assert "tmp" not in line, line
    assert "film: conform one (clip 1/3)" in lines
    assert any(line.startswith("film: join") and line.endswith("film.mp4") for line in lines), film

    board.write_text(BOARD.replace("open sea", "the open sea"))
    again = storyboard("build", str(board), "--yes", "--json", env=plugin_env)
    assert again.returncode == 0, again.stderr
    events = [json.loads(line) for line in again.stdout.splitlines()]
    two = [e for e in events if e.get("shot") == "two"]
    assert two[0]["state"] == "queued" and two[0]["reason"] == "prompt changed"
    assert all("reason" not in e for e in two[1:])
    assert [e.get("reason") for e in events if e.get("shot") == "one"] == [None]  # cached: no reason to run


def test_only_says_that_no_film_was_stitched_and_why(board, plugin_env):
    proc = storyboard("build", str(board), "--yes", "--only", "one", env=plugin_env)
    assert proc.returncode == 0, proc.stderr
    assert "film: not stitched: --only built one (and what it needs), not two, three; " \
           "build without --only for the film" in proc.stdout
    as_json = storyboard("build", str(board), "--yes", "--only", "three", "--json", env=plugin_env)
    summary = json.loads(as_json.stdout.splitlines()[-1])
    assert summary["film"] is None and summary["no_film"].startswith("--only built three")


def test_ctrl_c_says_interrupted_once_and_blames_no_shot(board, plugin_env, tmp_path):
    # Ctrl-C on a terminal signals the whole process group: storyboard and the ffmpeg it runs.
    # This ffmpeg plays that part: it sends SIGINT to its group, and dies of it as ffmpeg does (255).
    ffmpeg = tmp_path / "ffmpeg"
    ffmpeg.write_text("#!/bin/sh\ntrap 'exit 255' INT\nkill -INT 0\nwhile :; do sleep 1; done\n")
    ffmpeg.chmod(0o755)
    proc = subprocess.Popen([sys.executable, "-m", "storyboard", "build", str(board), "--yes", "--jobs", "2"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**plugin_env, "STORYBOARD_FFMPEG": str(ffmpeg), "NO_COLOR": "1"},
                            start_new_session=True)
    out, err = proc.communicate(timeout=120)
    said = out + err
    assert proc.returncode == 130, said
    assert "one: queued" in out  # the interrupt came while shots ran
    assert [line for line in said.splitlines() if "interrupted" in line] == [
        "storyboard: interrupted: finished shots are cached; in-flight jobs are journaled and resume on the "
        "next build"], said
    assert "failed" not in said and "255" not in said and "skipped" not in said, said


def test_film_steps_name_shots_whatever_form_the_hash_takes():
    from storyboard.progress import name_film_steps

    a, b = "a77e7972" + "0" * 56, "b0b0b0b0" + "1" * 56
    said: list[str] = []
    say = name_film_steps(said.append, ["arrival", "storm", "dawn"], [a, b, a], "lighthouse.mp4")
    for message in (f"conform clip 2/3 ({b})", "copy clip 1/3 (a77e7972….mp4)", "crossfade window 1/2 (clip 1 -> clip 2)",
                    f"re-encode the video: {b[:12]} is 1080p", "join 5 segments into tmpk2j_x9.mp4",
                    "12345678 frames"):
        say(message)
    assert said == ["conform storm (clip 2/3)", "copy arrival (clip 1/3)", "crossfade window 1/2 (arrival -> storm)",
                    "re-encode the video: storm is 1080p", "join 5 segments into lighthouse.mp4", "12345678 frames"]
    say(f"read {a}")
    assert said[-1] == "read arrival/dawn"  # one clip, two shots


def test_after_ctrl_c_failures_are_interruptions():
    from storyboard.progress import interrupted_as_such

    seen: list[tuple[str, str]] = []
    pressed = False
    report = interrupted_as_such(lambda shot, state, info: seen.append((shot, state)), lambda: pressed)
    report("a", "failed", {"error": "blocked"})
    pressed = True
    report("b", "failed", {"error": "ffmpeg failed with exit code 255"})
    report("c", "skipped", {"because": "b"})
    report("d", "done", {})
    assert seen == [("a", "failed"), ("b", "interrupted"), ("c", "interrupted"), ("d", "done")]


def test_an_ffmpeg_killed_by_ctrl_c_waits_for_the_signal_to_reach_storyboard():
    """The worker that saw its ffmpeg die of Ctrl-C may report before the same signal reaches
    storyboard: only such a death waits (settle) for it; other failures are judged at once."""
    from storyboard.progress import interrupted_as_such

    seen: list[tuple[str, str]] = []
    settled: list[str] = []
    lands = {"c": True}

    def settle() -> bool:
        settled.append(current[0])
        return lands.get(current[0], False)

    current = [""]
    report = interrupted_as_such(lambda shot, state, info: seen.append((shot, state)), lambda: False, settle)
    for shot, error in [("a", "blocked by the provider"), ("b", "ffmpeg failed with exit code 1:\nbad"),
                        ("c", "ffmpeg was killed by signal 2:\n(no output on stderr)"),
                        ("d", "ffmpeg failed with exit code 255:\nExiting normally, received signal 2.")]:
        current[0] = shot
        report(shot, "failed", {"error": error})
    assert settled == ["c", "d"]  # only the deaths Ctrl-C causes wait for it
    assert seen == [("a", "failed"), ("b", "failed"), ("c", "interrupted"), ("d", "failed")]


def test_the_live_panel_keeps_the_reason_and_says_nothing_of_interrupted_shots():
    import io

    from rich.console import Console

    from storyboard.progress import LiveReporter

    out = io.StringIO()
    live = LiveReporter(Console(file=out, force_terminal=True, width=100, color_system=None), total=2)
    live("a", "queued", {"reason": "prompt changed"})
    live("a", "rendering", {"fraction": 0.5})
    panel = io.StringIO()
    Console(file=panel, width=100, color_system=None).print(live._render())
    assert "a  rendering 50% — prompt changed" in panel.getvalue()
    live("a", "done", {"seconds": 1.0})
    live("b", "queued", {"reason": "new shot"})
    live("b", "interrupted", {})
    live.close()
    assert "a: rendered in 1.0 s — prompt changed" in out.getvalue()
    assert "b:" not in out.getvalue()
