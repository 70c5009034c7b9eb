"""`storyboard pick`: pick = N written with tomlkit, the file otherwise byte for byte, and what follows."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from storyboard.errors import StoryboardFileError
from storyboard.pick import write_pick
from tests.test_cli import run_main

BOARD = """\
#:schema ../schemas/storyboard.schema.json
# A board with comments everywhere: none of them may move.

[film]
title = "Pick test"    # the title
audio = false

[[shot]]
id = "arrival"
prompt = "A lighthouse at dusk."   # the opening
duration = 4
takes = 3        # three candidates to choose from
# a comment after the last key of arrival

[[shot]]
  id = "climb"          # indented table
  continues = "arrival"
  prompt = \"\"\"The keeper
climbs the stairs.\"\"\"
  duration = 4
  takes = 2
  pick = 1    # keep this comment

[[shot]]
id = "dawn"
prompt = 'The cliff at dawn.'
duration = 4


[edit]
sequence = ["arrival", "climb", "dawn"]   # the film
"""


@pytest.fixture
def board(tmp_path: Path) -> Path:
    path = tmp_path / "storyboard.toml"
    path.write_bytes(BOARD.encode())
    return path


def test_adds_pick_after_takes_and_nothing_else(board: Path) -> None:
    written = write_pick(board, "arrival", 2)
    expected = BOARD.replace("takes = 3        # three candidates to choose from\n",
                             "takes = 3        # three candidates to choose from\npick = 2\n")
    assert board.read_bytes() == expected.encode()
    assert (written.previous, written.number, written.changed) == (None, 2, True)
    assert tomllib.loads(board.read_text())["shot"][0]["pick"] == 2


def test_changes_an_existing_pick_keeping_its_comment_and_indent(board: Path) -> None:
    write_pick(board, "climb", 2)
    assert board.read_bytes() == BOARD.replace("  pick = 1    # keep this comment",
                                               "  pick = 2    # keep this comment").encode()
    again = write_pick(board, "climb", 2)
    assert not again.changed and again.previous == 2


def test_a_shot_without_takes_gets_pick_after_its_last_key(board: Path) -> None:
    write_pick(board, "dawn", 1)
    assert board.read_bytes() == BOARD.replace("duration = 4\n\n\n[edit]", "duration = 4\npick = 1\n\n\n[edit]").encode()


def test_indented_crlf_and_no_final_newline(tmp_path: Path) -> None:
    text = '[film]\r\ntitle = "x"\r\n\r\n[[shot]]\r\n    id = "a"\r\n    prompt = "p" # c\r\n    takes = 2'
    path = tmp_path / "board.toml"
    path.write_bytes(text.encode())
    write_pick(path, "a", 2)
    assert path.read_bytes() == (text + "\r\n    pick = 2").encode()
    assert tomllib.loads(path.read_text())["shot"][0] == {"id": "a", "prompt": "p", "takes": 2, "pick": 2}


def test_inline_shot_tables(tmp_path: Path) -> None:
    path = tmp_path / "storyboard.toml"
    path.write_text('shot = [\n  { id = "a", prompt = "p", takes = 2 },  # one\n  { id = "b", prompt = "q" },\n]\n')
    write_pick(path, "a", 2)
    data = tomllib.loads(path.read_text())
    assert data["shot"][0]["pick"] == 2 and "pick" not in data["shot"][1]
    assert "# one" in path.read_text()


@pytest.mark.parametrize(("shot", "number", "words"), [
    ("arival", 2, ["no shot 'arival'", "did you mean 'arrival'"]),
    ("arrival", 4, ["storyboard.toml:9", "shot 'arrival'", "no candidate 4", "from 1 to 3"]),
    ("arrival", 0, ["no candidate 0"]),
    ("dawn", 2, ["shot 'dawn'", "takes = 1", "raise `takes`"]),
])
def test_refusals_exit_2_and_leave_the_file_alone(board: Path, shot: str, number: int, words: list[str],
                                                  capsys, monkeypatch) -> None:
    with pytest.raises(StoryboardFileError):
        write_pick(board, shot, number)
    code, out, err = run_main(["pick", str(board), shot, str(number)], capsys, monkeypatch)
    assert code == 2, (out, err)
    assert "Traceback" not in err
    for word in words:
        assert word in err
    assert board.read_bytes() == BOARD.encode()


def test_duplicate_ids_and_bad_toml_are_refused(tmp_path: Path) -> None:
    dup = tmp_path / "dup.toml"
    dup.write_text('[[shot]]\nid = "a"\ntakes = 2\n[[shot]]\nid = "a"\n')
    with pytest.raises(StoryboardFileError, match="appears 2 times"):
        write_pick(dup, "a", 2)
    broken = tmp_path / "broken.toml"
    broken.write_text('[[shot]]\nid = "a\n')
    with pytest.raises(StoryboardFileError, match="not valid TOML"):
        write_pick(broken, "a", 1)


def test_a_symlinked_board_is_edited_where_it_lives(board: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.toml"
    link.symlink_to(board)
    write_pick(link, "arrival", 3)
    assert link.is_symlink()
    assert "pick = 3" in board.read_text()


def test_the_command_says_what_follows(tmp_path: Path, capsys, monkeypatch) -> None:
    """Before any build every shot runs; the file says pick = 2 with its comments."""
    folder = tmp_path / "b"
    folder.mkdir()
    path = folder / "storyboard.toml"
    path.write_text(BOARD)
    code, out, err = run_main(["pick", str(path), "climb", "2"], capsys, monkeypatch)
    assert code == 0, err
    assert "shot 'climb': pick = 2 (was 1)" in out
    assert "3 shot(s) to run:" in out and "film: re-stitches (after arrival, climb, dawn)" in out
    assert "  pick = 2    # keep this comment" in path.read_text()


def test_a_shot_with_a_sub_table_gets_pick_among_its_own_keys(tmp_path: Path) -> None:
    text = ('[[shot]]\nid = "a"\nprompt = "p"\ntakes = 2\n\n[[shot]]\nid = "b"\nprompt = "q"  # b\n\n'
            '[shot.first_frame]\nshot = "a"\nframe = "last"\n')
    path = tmp_path / "storyboard.toml"
    path.write_text(text)
    write_pick(path, "b", 1)
    assert path.read_text() == text.replace('prompt = "q"  # b\n', 'prompt = "q"  # b\npick = 1\n')
    assert tomllib.loads(path.read_text())["shot"][1] == {"id": "b", "prompt": "q", "pick": 1,
                                                          "first_frame": {"shot": "a", "frame": "last"}}
