"""`scaffold.init`: a new folder holds a storyboard that builds into a film at once."""

from __future__ import annotations

import pytest
from PIL import Image

from storyboard.build import build, open_project
from storyboard.errors import StoryboardError
from storyboard.executor import Outcome
from storyboard.media import probe
from storyboard.scaffold import init


def test_init_writes_a_board_that_builds_into_a_film(tmp_path):
    board = init(tmp_path / "film")
    assert board == tmp_path / "film" / "storyboard.toml"
    for name in ("boat", "sunset"):
        with Image.open(board.parent / "assets" / f"{name}.png") as image:
            assert (image.format, image.size) == ("PNG", (1280, 720))
    assert (board.parent / ".gitignore").read_text().splitlines()[1:] == [".storyboard/", "build/", "*.lock.log"]
    project = open_project(board)
    shots = project.board.shots
    assert shots["launch"].references and shots["stream"].continues == "launch"
    assert shots["harbour"].last_frame is not None
    report = build(project)
    assert report.count(Outcome.RENDERED) == 3 and report.film is not None
    assert report.film.path == board.parent / "build" / "paper-boat.mp4"
    info = probe(report.film.path)
    assert (info.width, info.height) == (1280, 720)
    assert abs(info.duration - 16.0) < 1 / 24


def test_init_never_overwrites(tmp_path):
    board = init(tmp_path)
    board.write_text("# mine\n")
    with pytest.raises(StoryboardError, match="storyboard.toml already exists") as caught:
        init(tmp_path)
    assert caught.value.exit_code == 2 and board.read_text() == "# mine\n"


def test_init_refuses_a_folder_with_its_pictures_and_writes_nothing(tmp_path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "boat.png").write_bytes(b"my boat")
    with pytest.raises(StoryboardError, match="boat.png already exists"):
        init(tmp_path)
    assert not (tmp_path / "storyboard.toml").exists() and not (tmp_path / ".gitignore").exists()
    assert (tmp_path / "assets" / "boat.png").read_bytes() == b"my boat"


def test_init_appends_only_the_missing_lines_to_gitignore(tmp_path):
    (tmp_path / ".gitignore").write_text("node_modules/\nbuild/")
    init(tmp_path)
    lines = (tmp_path / ".gitignore").read_text().splitlines()
    assert lines[:2] == ["node_modules/", "build/"] and lines[-2:] == [".storyboard/", "*.lock.log"]
    assert lines.count("build/") == 1
