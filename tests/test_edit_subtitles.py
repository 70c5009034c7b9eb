"""Subtitle files: SRT and WebVTT read into cues, broken files refused with one clear message."""

from __future__ import annotations

import pytest

from storyboard.edit.subtitles import MAX_BYTES, SubtitleError, cues_past, read_cues, write_srt
from storyboard.edit.timeline import Cue

SRT = """1
00:00:01,000 --> 00:00:02,500
The lamp must not go out.

2
00:00:03,250 --> 00:00:05,000
Not tonight.
Not ever.
"""

VTT = """WEBVTT

NOTE written by hand

00:01.000 --> 00:02.500
The lamp must <b>not</b> go out.

NOTE a note
between cues

intro
00:00:03.250 --> 00:00:05.000 align:start
Not tonight.
Not ever.
"""


@pytest.mark.parametrize("name, text", [("en.srt", SRT), ("en.vtt", VTT), ("en.txt", "\ufeff" + SRT)])
def test_srt_and_webvtt_read_into_the_same_cues(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert read_cues(path) == (Cue(1.0, 2.5, "The lamp must not go out."),
                               Cue(3.25, 5.0, "Not tonight.\nNot ever."))


def test_write_srt_round_trips(tmp_path):
    cues = (Cue(0.5, 1.75, "Cape Wrath, 1899"), Cue(2.0, 4.125, "two\nlines"), Cue(61.0, 3725.5, "late"))
    write_srt(cues, tmp_path / "film.srt")
    assert read_cues(tmp_path / "film.srt") == cues
    assert "01:02:05,500" in (tmp_path / "film.srt").read_text(encoding="utf-8")


@pytest.mark.parametrize("content, expected", [
    (SRT.replace("00:00:03,250", "00:00:0x,250"), r"en\.srt:6: the timing line '00:00:0x,250 --> 00:00:05,000' does not parse"),
    (SRT.replace("00:00:01,000", "00:00:0x,000"), r"en\.srt:2: the timing line '00:00:0x,000 --> 00:00:02,500' does not parse"),
    (VTT.replace("00:01.000 -->", "00:01.000 -> "), r"en\.srt:5: the timing line '00:01.000 ->  00:02.500' does not parse"),
    ("just some words\nnothing else\n", r"en\.srt: not SRT or WebVTT subtitles"),
    ("", r"en\.srt: not SRT or WebVTT subtitles"),
    (SRT.replace("00:00:05,000", "00:00:03,000"), r"en\.srt: cue 2 \('Not tonight\. Not ever\.'\) ends at 00:00:03,000, "
                                                  r"not after it starts at 00:00:03,250"),
    ("00:00:01:Hello\n00:00:05:World\n", r"en\.srt: these are TMP subtitles; give SRT or WebVTT"),
    ("{1}{50}Hello\n", r"en\.srt: not SRT or WebVTT subtitles"),
])
def test_a_broken_file_gives_one_clear_message(tmp_path, content, expected):
    path = tmp_path / "en.srt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SubtitleError, match=expected) as caught:
        read_cues(path)
    assert caught.value.exit_code == 2 and "\n" not in caught.value.message


def test_binary_missing_and_huge_files_are_refused(tmp_path):
    (tmp_path / "bin.srt").write_bytes(b"\xff\xfe\x00junk" * 10)
    with pytest.raises(SubtitleError, match=r"bin\.srt: not UTF-8 text"):
        read_cues(tmp_path / "bin.srt")
    with pytest.raises(SubtitleError, match=r"gone\.srt: cannot read the subtitle file"):
        read_cues(tmp_path / "gone.srt")
    (tmp_path / "big.srt").write_text(SRT * (MAX_BYTES // len(SRT) + 1), encoding="utf-8")
    with pytest.raises(SubtitleError, match=r"big\.srt: the subtitle file is 4\.\d MB; at most 4 MB"):
        read_cues(tmp_path / "big.srt")


def test_cues_past_the_film_end_are_found():
    cues = (Cue(1.0, 2.0, "in"), Cue(3.0, 6.0, "ends at the end"), Cue(5.5, 6.5, "runs over"), Cue(7.0, 8.0, "after"))
    assert cues_past(cues, 6.0) == cues[2:]


def test_the_sidecar_goes_when_the_subtitles_go_but_a_file_of_ours_never(write_board, fake_provider):
    """Dropping [edit.subtitles] (or burning them) removes the .srt storyboard placed beside the film,
    which a player would otherwise still load; a file storyboard did not write is left alone."""
    from storyboard.build import build, open_project

    text = ('[film]\nprovider = "fake"\nresolution = "360p"\noutput = "build/short.mp4"\n'  # a quarter of 720p's cost
            '[[shot]]\nid = "a"\nprompt = "a fox wakes"\nduration = 4\n')
    board = write_board(text + '[edit.subtitles]\npath = "en.srt"\n')
    (board.parent / "en.srt").write_text(SRT.replace("00:00:03,250 --> 00:00:05,000", "00:00:01,600 --> 00:00:01,900"))
    sidecar = board.parent / "build" / "short.srt"
    build(open_project(board))
    assert sidecar.read_text(encoding="utf-8").count("-->") == 2

    board.write_text(text + '[edit.subtitles]\npath = "en.srt"\nburn = true\n')
    build(open_project(board))
    assert not sidecar.exists() and (board.parent / "build" / "short.mp4").exists()

    sidecar.write_text("my own notes\n", encoding="utf-8")
    board.write_text(text)
    build(open_project(board))
    assert sidecar.read_text(encoding="utf-8") == "my own notes\n"
