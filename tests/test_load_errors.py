"""Every problem of a file in one run, each with its line; ids matched in full; TOML errors quoted."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from storyboard.errors import StoryboardFileError
from storyboard.load import load
from storyboard.problems import MAX_SHOWN, SourceLines
from tests.test_cli import run_main

ROOT = Path(__file__).resolve().parent.parent


def line_of(text: str, needle: str, after: str = "") -> int:
    """1-based line of the first `needle` after the first `after`."""
    lines = textwrap.dedent(text).splitlines()
    start = next(i for i, line in enumerate(lines) if after in line) if after else 0
    return next(i for i in range(start, len(lines)) if needle in lines[i]) + 1


THREE_MISTAKES = """\
    [vars]
    keeper = "an old keeper"

    [[shot]]
    id = "arrival"
    prompt = "{{ keepr }} arrives"

    [[shot]]
    id = "climb"
    prompt = "the climb"
    continues = "arival"

    [[shot]]
    id = "storm"
    prompt = "the storm"
    duration = 5
"""


def test_three_mistakes_are_reported_in_one_run(write_board, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_board(THREE_MISTAKES)
    code, _, err = run_main(["validate", str(path)], capsys, monkeypatch)
    assert code == 2 and "Traceback" not in err
    lines = err.rstrip("\n").splitlines()
    assert lines[0] == f"storyboard: error: 3 problems in {path}:"
    assert lines[1] == (f"  {path}: line {line_of(THREE_MISTAKES, 'keepr')}: shot 'arrival': field 'prompt': "
                        "unknown variable 'keepr' (did you mean 'keeper'?); define it in [vars]")
    assert lines[2] == (f"  {path}: line {line_of(THREE_MISTAKES, 'arival')}: shot 'climb': field 'continues': "
                        "unknown shot 'arival' (did you mean 'arrival'?)")
    assert lines[3].startswith(f"  {path}: line {line_of(THREE_MISTAKES, 'duration = 5')}: shot 'storm': "
                               "field 'duration': 5 s is not a duration")
    assert len(lines) == 4


def test_the_cli_prints_the_list_once_through_a_real_process(write_board) -> None:
    path = write_board(THREE_MISTAKES)
    proc = subprocess.run([sys.executable, "-m", "storyboard", "validate", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("storyboard: error:") == 1
    body = proc.stderr.rstrip("\n").splitlines()[1:]
    assert len(body) == 3 and all(line.startswith(f"  {path}: line ") for line in body)


SCHEMA_MISTAKES = """\
    [film]
    resolutoin = "720p"

    [[shot]]
    id = "a"
    prompt = "one"
    seed = -1
    take = 0

    [[shot]]
    id = "b"
    prompt = 3
    audio = "yes"

    [edit]
    transition = { kind = "wipe" }
"""


def test_every_schema_error_is_listed_with_its_line(write_board) -> None:
    path = write_board(SCHEMA_MISTAKES)
    with pytest.raises(StoryboardFileError) as info:
        load(path)
    body = info.value.message.splitlines()
    assert body[0] == f"6 problems in {path}:"
    expected = [
        (line_of(SCHEMA_MISTAKES, "resolutoin"), "[film] unknown key 'resolutoin' (did you mean 'resolution'?)"),
        (line_of(SCHEMA_MISTAKES, "seed = -1"), "shot 'a': field 'seed': Input should be greater than or equal to 0"),
        (line_of(SCHEMA_MISTAKES, "take = 0"), "shot 'a': field 'take': Input should be greater than or equal to 1"),
        (line_of(SCHEMA_MISTAKES, "prompt = 3"), "shot 'b': field 'prompt': Input should be a valid string"),
        (line_of(SCHEMA_MISTAKES, 'audio = "yes"'), "shot 'b': field 'audio': Input should be a valid boolean"),
        (line_of(SCHEMA_MISTAKES, "wipe"), "[edit] field 'transition.kind': unknown transition 'wipe'"),
    ]
    for got, (line, says) in zip(body[1:], expected, strict=True):
        assert got.startswith(f"  {path}: line {line}: {says}"), got


def test_a_long_list_is_cut_after_the_limit(write_board) -> None:
    count = MAX_SHOWN + 5
    shots = "".join(f'[[shot]]\nid = "s{i}"\nprompt = "x"\nduration = 5\n\n' for i in range(count))
    path = write_board(shots)
    with pytest.raises(StoryboardFileError) as info:
        load(path)
    body = info.value.message.splitlines()
    assert body[0] == f"more than {MAX_SHOWN} problems in {path}; the first {MAX_SHOWN} found:"
    assert len(body) == 1 + MAX_SHOWN + 1
    assert body[-1] == "  ... and more: fix these and run again"
    assert "shot 's0'" in body[1] and f"shot 's{MAX_SHOWN - 1}'" in body[MAX_SHOWN]


def test_exactly_the_limit_is_listed_in_full(write_board) -> None:
    shots = "".join(f'[[shot]]\nid = "s{i}"\nprompt = "x"\nduration = 5\n\n' for i in range(MAX_SHOWN))
    path = write_board(shots)
    with pytest.raises(StoryboardFileError) as info:
        load(path)
    body = info.value.message.splitlines()
    assert body[0] == f"{MAX_SHOWN} problems in {path}:" and len(body) == 1 + MAX_SHOWN


def test_thousands_of_mistakes_are_reported_quickly(write_board) -> None:
    import time

    shots = "".join(f'[[shot]]\nid = "shot-{i}"\nprompt = "x"\ncontinues = "nowhere-{i}"\n\n' for i in range(5000))
    path = write_board(shots)
    start = time.monotonic()
    with pytest.raises(StoryboardFileError, match=f"more than {MAX_SHOWN} problems"):
        load(path)
    assert time.monotonic() - start < 10


def test_asset_problems_and_shot_problems_come_together_without_repeats(write_board) -> None:
    text = """\
        [assets]
        keeper = "assets/keepr.png"
        harbour = { url = "https://example.com/harbour.jpg" }

        [[shot]]
        id = "a"
        prompt = "a"
        references = ["keeper"]

        [[shot]]
        id = "b"
        prompt = "b"
        first_frame = "assets/keeper.png"
        resolution = "1080p"
        duration = 4
    """
    path = write_board(text, keeper=(1, 2, 3))
    with pytest.raises(StoryboardFileError) as info:
        load(path)
    body = info.value.message.splitlines()
    assert body[0] == f"3 problems in {path}:"
    assert f"line {line_of(text, 'keepr.png')}: [assets] 'keeper': file 'assets/keepr.png' not found " \
           "(did you mean 'keeper.png'?)" in body[1]
    assert f"line {line_of(text, 'harbour')}: [assets] 'harbour'" in body[2]
    assert f"line {line_of(text, 'duration = 4')}: shot 'b': field 'duration'" in body[3]
    assert "shot 'a'" not in info.value.message


def test_a_single_problem_stays_one_line_with_its_line_number(write_board) -> None:
    text = """\
        [[shot]]
        id = "arrival"
        prompt = "a"

        [[shot]]
        id = "storm"
        prompt = "b"
        extends = "arival"
    """
    path = write_board(text)
    with pytest.raises(StoryboardFileError) as info:
        load(path)
    assert info.value.message == (f"{path}: line {line_of(text, 'extends')}: shot 'storm': field 'extends': "
                                  "unknown shot 'arival' (did you mean 'arrival'?)")


def test_a_toml_syntax_error_quotes_the_line(tmp_path: Path) -> None:
    path = tmp_path / "storyboard.toml"
    path.write_text('[film]\ntitle = "ok"\n\n[[shot]]\nid = "a"\nprompt = "unclosed\n')
    with pytest.raises(StoryboardFileError) as info:
        load(path)
    message = info.value.message.splitlines()
    assert message[0].startswith(f"{path}: line 6, column ") and "invalid TOML" in message[0]
    assert message[1] == '    prompt = "unclosed'
    assert message[2].strip() == "^"


def test_a_quoted_line_cannot_drive_the_terminal(tmp_path: Path) -> None:
    path = tmp_path / "storyboard.toml"
    path.write_bytes(b'title = "a\x1b[2J" b\n')
    with pytest.raises(StoryboardFileError) as info:
        load(path)
    assert "\x1b" not in info.value.message
    assert "invalid TOML" in info.value.message


@pytest.mark.parametrize("shot_id", ["a\n", "a\nb", "ok\r\n"])
def test_an_id_must_match_in_full(shot_id: str, tmp_path: Path) -> None:
    import json

    path = tmp_path / "storyboard.toml"
    path.write_text(f'[[shot]]\nid = {json.dumps(shot_id)}\nprompt = "a"\n')
    with pytest.raises(StoryboardFileError) as info:
        load(path)
    assert f"line 2: shot {shot_id!r}: field 'id': ids use only lowercase letters" in info.value.message
    assert "\n" not in info.value.message


def test_source_lines_follow_tables_keys_and_multiline_strings() -> None:
    text = textwrap.dedent('''\
        [film]
        duration = 8

        [[shot]]
        id = "a"
        prompt = """
        duration = 4
        """
        duration = 6

        [[shot]]
        id = "b"
        first_frame.shot = "a"

        [shot.last_frame]
        shot = "a"

        [providers.gemini]
        model = "veo"
        "quoted key" = 1
    ''')
    lines = SourceLines(text)
    assert lines.line("film", "duration") == 2
    assert lines.line("shot", 0) == 4
    assert lines.line("shot", 0, "duration") == 9
    assert lines.line("shot", 0, "seed") == 4
    assert lines.line("shot", 1, "first_frame", "shot") == 13
    assert lines.line("shot", 1, "last_frame", "shot") == 16
    assert lines.line("providers", "gemini", "model") == 19
    assert lines.line("providers", "gemini", "quoted key") == 20
    assert lines.line("edit", "sequence") is None
