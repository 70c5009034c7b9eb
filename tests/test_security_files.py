"""The board's folder is the sandbox: a hostile storyboard cannot make storyboard write elsewhere.

Each test plants a victim file outside the board's folder (or a file the user owns inside it),
runs the attack through the real command line, and checks the exit status is 2, the victim is
byte-identical and nothing was generated.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from storyboard.build import attach_remote, build, open_project
from storyboard.edit.film import OutputTakenError
from storyboard.sandbox import OutsideError
from tests._cli import storyboard

SHOTS = """
[[shot]]
id = "a"
prompt = "a lighthouse at dusk"
"""
VICTIM = b"precious: do not overwrite\n"


def board_in(root: Path, film: str = "", cache: str = "") -> Path:
    folder = root / "board"
    folder.mkdir(parents=True, exist_ok=True)
    text = f'[film]\nprovider = "fake"\nduration = 4\n{film}\n'
    if cache:
        text += f"[cache]\n{cache}\n"
    board = folder / "storyboard.toml"
    board.write_text(text + textwrap.dedent(SHOTS))
    return board


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "elsewhere" / "important.mp4"
    path.parent.mkdir()
    path.write_bytes(VICTIM)
    return path


def assert_refused(result: subprocess.CompletedProcess[str], board: Path, *needles: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("storyboard: error: ") and "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr
    assert not (board.parent / ".storyboard").exists(), "nothing may run"


@pytest.mark.parametrize("output", ["../elsewhere/important.mp4", "../../x/important.txt", "{victim}",
                                   "build/../../elsewhere/important.mp4"])
def test_an_output_outside_the_folder_is_refused(tmp_path, victim, plugin_env, output):
    board = board_in(tmp_path, f'output = "{output.format(victim=victim)}"')
    for command in ("validate", "build"):
        result = storyboard(command, str(board), env=plugin_env)
        assert_refused(result, board, "[film] field 'output'")
    assert victim.read_bytes() == VICTIM


def test_the_board_itself_cannot_be_the_output(tmp_path, plugin_env):
    board = board_in(tmp_path, 'output = "storyboard.toml"')
    before = board.read_bytes()
    assert_refused(storyboard("build", str(board), env=plugin_env), board, "must end in .mp4")
    assert board.read_bytes() == before


def test_a_build_folder_symlinked_elsewhere_is_refused(tmp_path, victim, plugin_env):
    board = board_in(tmp_path, 'output = "build/important.mp4"')
    (board.parent / "build").symlink_to(victim.parent, target_is_directory=True)
    for command in ("validate", "build"):
        assert_refused(storyboard(command, str(board), env=plugin_env), board,
                       "leads outside the storyboard's folder", str(victim.parent))
    assert victim.read_bytes() == VICTIM


def test_an_output_that_is_a_symlink_is_refused(tmp_path, victim, plugin_env):
    board = board_in(tmp_path, 'output = "film.mp4"')
    (board.parent / "film.mp4").symlink_to(victim)
    assert_refused(storyboard("build", str(board), env=plugin_env), board, "is a symbolic link")
    assert victim.read_bytes() == VICTIM and (board.parent / "film.mp4").is_symlink()


def test_a_file_storyboard_did_not_write_is_never_replaced(write_board, fake_provider):
    board = write_board('[film]\nprovider = "fake"\nduration = 4\nresolution = "360p"\noutput = "cut/final.mp4"\n'
                        + SHOTS)  # 360p: the film's size is not the point, a quarter of 720p's stitch
    mine = board.parent / "cut" / "final.mp4"
    mine.parent.mkdir()
    mine.write_bytes(VICTIM)
    with pytest.raises(OutputTakenError, match="storyboard did not write it") as caught:
        build(open_project(board))
    assert caught.value.exit_code == 2
    assert fake_provider.calls == [], "refused before any paid work"
    assert mine.read_bytes() == VICTIM

    mine.unlink()
    first = build(open_project(board))
    assert first.film.path == mine.resolve() and fake_provider.calls
    board.write_text(board.read_text().replace("at dusk", "at dawn"))
    second = build(open_project(board))  # the film storyboard wrote is replaced by the next one
    assert second.film.sha != first.film.sha
    assert hashlib.sha256(mine.read_bytes()).hexdigest() == second.film.sha


def test_the_report_is_not_written_through_a_symlink(write_board, fake_provider, tmp_path, victim):
    from storyboard.report import make_report

    board = write_board('[film]\nprovider = "fake"\nduration = 4\noutput = "film.mp4"\n' + SHOTS)
    (board.parent / "film.report.html").symlink_to(victim)
    with pytest.raises(OutsideError, match="symbolic link"):
        make_report(open_project(board))
    assert victim.read_bytes() == VICTIM


@pytest.mark.parametrize(("remote", "needle"), [
    ('"file:///srv/team-cache"', "file://"),
    ('"/srv/team-cache"', "absolute path"),
    ('"../team-cache"', "leaves the storyboard's folder"),
    ('"simplecache::s3://bucket/x"', "chains"),
])
def test_a_remote_folder_outside_named_in_the_file_is_refused(tmp_path, plugin_env, remote, needle):
    board = board_in(tmp_path, cache=f"remote = {remote}")
    assert_refused(storyboard("build", str(board), env=plugin_env), board, "[cache] field 'remote'", needle,
                   "--remote")


def test_a_remote_folder_symlinked_outside_is_refused_but_the_command_line_may_name_it(write_board, tmp_path):
    outside = tmp_path / "team-cache"
    outside.mkdir()
    board = write_board('[cache]\nremote = "shared"\n' + SHOTS)
    (board.parent / "shared").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OutsideError, match="leads outside"):
        attach_remote(open_project(board))
    project = open_project(board)
    attach_remote(project, str(outside))
    assert project.remote is not None and project.remote.url == str(outside)


def test_cloud_and_inside_remotes_are_accepted(write_board):
    for remote in ("s3://bucket/films", "gs://bucket/films", "team-cache"):
        board = write_board(f'[cache]\nremote = "{remote}"\n' + SHOTS)
        assert open_project(board).board.cache.remote == remote
    (board.parent / "team-cache").mkdir()
    project = open_project(board)
    attach_remote(project)
    assert project.remote.url == str(board.parent.resolve() / "team-cache")

