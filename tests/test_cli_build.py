"""`storyboard build` and `plan` as a user runs them: real processes, the animatic, exit codes."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import av
import pytest

from tests._cli import storyboard

BOARD = """
[film]
output = "out/film.mp4"
duration = 4
seed = 5

[[shot]]
id = "one"
prompt = "a boat leaves the harbour"

[[shot]]
id = "two"
continues = "one"
prompt = "the boat reaches open sea"
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("cli")
    board = root / "storyboard.toml"
    board.write_text(BOARD)
    return board, storyboard("build", str(board), yes=True)


def test_build_makes_the_film_and_says_where(built):
    board, result = built
    assert result.returncode == 0, result.stderr
    film = board.parent / "out" / "film.mp4"
    assert f"film: {film} (8.00 s, stitched)" in result.stdout
    assert "summary: 2 rendered" in result.stdout
    with av.open(str(film)) as container:
        video = container.streams.video[0]
        assert (video.width, video.height) == (1280, 720)
        assert container.streams.audio[0].codec_context.name == "aac"
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == 8 * 24


def test_second_build_answers_from_the_stamp(built):
    board, _ = built
    result = storyboard("build", str(board), yes=True)
    assert result.returncode == 0
    assert "nothing changed since the last build" in result.stdout


def test_changed_board_takes_the_full_path_and_plan_explains(built):
    board, _ = built
    board.write_text(BOARD.replace("open sea", "the open sea"))
    plan = storyboard("plan", str(board))
    assert plan.returncode == 0, plan.stderr
    lines = {line.split()[0]: line for line in plan.stdout.splitlines() if line.startswith(("one", "two"))}
    assert "cached" in lines["one"] and "prompt changed" in lines["two"]
    assert "1 cached, 1 to generate" in plan.stdout
    result = storyboard("build", str(board), yes=True)
    assert "summary: 1 rendered, 1 cached" in result.stdout


def test_only_builds_the_shot_and_its_upstream(tmp_path, plugin_env):
    board = tmp_path / "storyboard.toml"  # the fake provider: --only is the point, not the animatic's pixels
    board.write_text(BOARD.replace("duration = 4", 'duration = 4\nprovider = "fake"')
                     + '\n[[shot]]\nid = "three"\nprompt = "night falls"\n')
    result = storyboard("build", str(board), "--only", "two", env=plugin_env, yes=True)
    assert result.returncode == 0, result.stderr
    assert "summary: 2 rendered" in result.stdout  # two and the shot it continues, not three
    assert not (tmp_path / "out" / "film.mp4").exists()
    bad = storyboard("build", str(board), "--only", "tow", env=plugin_env, yes=True)
    assert bad.returncode == 2 and "did you mean 'two'" in bad.stderr


def test_a_failed_shot_exits_one(tmp_path, plugin_env):
    board = tmp_path / "storyboard.toml"
    board.write_text('[film]\nprovider = "fake"\nduration = 4\n[[shot]]\nid = "a"\nprompt = "x"\n'
                     '[[shot]]\nid = "b"\ncontinues = "a"\nprompt = "y"\n[[shot]]\nid = "c"\nprompt = "z"\n')
    board.write_text(board.read_text().replace('prompt = "x"', 'prompt = "x [fail]"'))
    env = {**plugin_env, "FAKE_FAIL_MARKER": "[fail]"}
    result = storyboard("build", str(board), "--keep-going", env=env, yes=True)
    assert result.returncode == 1
    assert "failed: a:" in result.stderr
    assert "summary: 1 rendered, 1 failed, 1 skipped" in result.stdout


def test_ctrl_c_exits_130_and_keeps_finished_shots(tmp_path, plugin_env):
    board = tmp_path / "storyboard.toml"
    board.write_text('[film]\nprovider = "fake"\nduration = 4\n[[shot]]\nid = "quick"\nprompt = "x"\n'
                     '[[shot]]\nid = "slow"\ncontinues = "quick"\nprompt = "[hang] y"\n')
    proc = subprocess.Popen([sys.executable, "-m", "storyboard", "build", str(board), "--yes"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**plugin_env, "PYTHONFAULTHANDLER": "1"})
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("slow: rendering"):
            break
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # say where it hangs: faulthandler prints every thread on SIGABRT
        proc.send_signal(signal.SIGABRT)
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"the build did not stop within 60 s of Ctrl-C; its threads:\n{err[-6000:]}")
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    plan = storyboard("plan", str(board), env=plugin_env)
    assert "quick" in plan.stdout and "1 cached, 1 to generate" in plan.stdout
