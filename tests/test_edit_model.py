"""The timeline form of [edit]: the issue's TOML loads, every rule fails clearly, warnings warn, resolve places it all."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from storyboard.edit.timeline import ClipPiece, ClipRef, Cue, Join, Overlay, TitlePiece, resolve
from storyboard.load import load
from tests.test_cli import run_main
from tests.test_load_errors import line_of

SHOTS = """\
    [[shot]]
    id = "arrival"
    prompt = "the keeper arrives"
    duration = 8

    [[shot]]
    id = "climb"
    prompt = "the climb"
    duration = 6

    [[shot]]
    id = "storm"
    extends = "climb"
    prompt = "the storm"
"""

ISSUE_EDIT = """\
    [edit]
    transition = { kind = "cut" }                      # the default join between clips
    audio = { normalize = true, loudness = -14.0 }     # integrated LUFS target (EBU R128 measure), true peak <= -1 dBTP

    [[edit.clip]]                 # when present, the timeline in order (and `sequence` must be absent)
    shot = "arrival"
    in = 0.5                      # seconds into the shot's clip; default 0
    out = 7.25                    # seconds into the clip; default its end
    volume = 0.8                  # the clip's own audio (Veo's native sound); 0 mutes it; default 1
    transition = { kind = "crossfade", duration = 0.5 }   # the join INTO the next clip; overrides [edit]
    hold = 1.0                    # freeze the last used frame this many seconds (silence under it); default 0

    [[edit.clip]]
    shot = "storm"
    in = 7.0                      # an extension's clip repeats its source: start where the new part begins

    [[edit.title]]                # a card of its own on the timeline
    text = "The Lighthouse Keeper"
    before = "arrival"            # or after = "<shot>"
    duration = 3.0
    background = "#000000"        # a colour, or an asset name (an image)

    [[edit.text]]                 # text over the picture of one clip
    shot = "arrival"
    text = "Cape Wrath, 1899"
    start = 0.5                   # seconds from that clip's in point
    end = 3.5
    position = "lower-third"      # lower-third | center | top

    [[edit.sound]]                # music or voice-over, placed on the film's timeline
    path = "assets/score.mp3"     # or asset = "<name>"; WAV, MP3, AAC/M4A, FLAC, checked by content
    start = 0.0                   # film seconds
    in = 0.0                      # seconds into the file; out = ... likewise
    gain = -6.0                   # dB
    fade_in = 1.0
    fade_out = 2.0
    duck = true                   # lower it (sidechain) whenever the clips' own audio is loud

    [edit.subtitles]
    path = "subs/en.srt"          # SRT or WebVTT, in film time
    burn = false                  # true: drawn into the picture; false: a soft subtitle track in the MP4 plus film.srt beside it
"""

SRT = "1\n00:00:01,000 --> 00:00:02,500\nHello.\n\n2\n00:00:09,000 --> 00:00:10,000\nAcross the cut.\n"


@pytest.fixture(scope="module")
def sounds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two-second tones in each format the edit takes, and a short video that is not a sound."""
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    folder = tmp_path_factory.mktemp("sounds")
    made = {}
    for name, codec in (("tone.wav", "pcm_s16le"), ("tone.mp3", "libmp3lame"), ("tone.flac", "flac"),
                        ("tone.m4a", "aac")):
        made[name] = folder / name
        subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=f=440:d=2", "-c:a", codec, str(made[name])],
                       check=True)
    made["clip.mp4"] = folder / "clip.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc=d=1:s=64x36:r=24", "-f", "lavfi", "-i",
                    "sine=d=1", "-shortest", "-pix_fmt", "yuv420p", str(made["clip.mp4"])], check=True)
    return made


@pytest.fixture
def board(write_board, sounds: dict[str, Path]):
    """board(edit_toml, shots=SHOTS, srt=SRT) -> a storyboard.toml with assets/score.mp3 and subs/en.srt beside it."""

    def make(edit: str, shots: str = SHOTS, srt: str = SRT, **images: tuple[int, int, int]) -> Path:
        path = write_board(textwrap.dedent(shots) + "\n" + textwrap.dedent(edit), **images)
        shutil.copy(sounds["tone.mp3"], path.parent / "assets" / "score.mp3")
        (path.parent / "subs").mkdir()
        (path.parent / "subs" / "en.srt").write_text(srt)
        return path

    return make


def validate(path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    code, _, err = run_main(["validate", str(path)], capsys, monkeypatch)
    assert "Traceback" not in err
    return code, err


def refs(board, lengths: dict[str, float]) -> dict[str, ClipRef]:  # noqa: ANN001 - a Board
    return {s: ClipRef(sha=f"{s}-sha", path=Path(f"/clips/{s}.mp4"), duration=lengths[s], key=f"{s}-key",
                       provider="animatic") for s in board.sequence}


# ---- the format -----------------------------------------------------------------------------


def test_the_issues_toml_loads_verbatim(board, capsys, monkeypatch) -> None:
    path = board(ISSUE_EDIT)
    code, err = validate(path, capsys, monkeypatch)
    assert code == 0, err
    assert err == ""
    loaded = load(path)
    assert loaded.sequence == ("arrival", "storm")  # the executor builds these; the title is no shot
    clip = loaded.edit.clip[0]
    assert (clip.in_, clip.out, clip.volume, clip.hold, clip.transition.kind) == (0.5, 7.25, 0.8, 1.0, "crossfade")
    assert loaded.edit.sound[0].duck and loaded.edit.subtitles.path == "subs/en.srt"


def test_the_issues_toml_resolves(board) -> None:
    loaded = load(board(ISSUE_EDIT))
    timeline = resolve(loaded, refs(loaded, {"arrival": 8.04, "storm": 13.0}))
    title, arrival, storm = timeline.pieces
    assert isinstance(title, TitlePiece) and title.text == "The Lighthouse Keeper" and title.duration == 3.0
    assert isinstance(arrival, ClipPiece) and (arrival.in_, arrival.out, arrival.hold) == (0.5, 7.25, 1.0)
    assert arrival.overlays == (Overlay("Cape Wrath, 1899", 0.5, 3.5, "lower-third", "text"),)
    assert (storm.in_, storm.out) == (7.0, 13.0)  # out defaults to the clip's real length
    assert timeline.joins == (Join("cut"), Join("crossfade", 0.5))  # the title joins by [edit]'s, arrival by its own
    assert timeline.starts(24) == [0, 72, 72 + 162 + 24 - 12]
    assert timeline.frames(24) == 72 + 162 + 24 - 12 + 144
    sound = timeline.sounds[0]
    assert (sound.gain_db, sound.fade_in, sound.fade_out, sound.duck) == (-6.0, 1.0, 2.0, True)
    assert sound.path == loaded.root / "assets" / "score.mp3"
    import hashlib

    assert sound.sha == hashlib.sha256(sound.path.read_bytes()).hexdigest()
    assert timeline.subtitles.cues == (Cue(1.0, 2.5, "Hello."), Cue(9.0, 10.0, "Across the cut."))
    assert not timeline.subtitles.burn and timeline.loudness == -14.0


def test_out_is_clamped_to_the_real_clip(board) -> None:
    loaded = load(board('[[edit.clip]]\nshot = "arrival"\nout = 8.0\n'))
    (piece,) = resolve(loaded, refs(loaded, {"arrival": 7.9})).pieces
    assert piece.out == 7.9


def test_the_short_form_resolves_as_before(board) -> None:
    loaded = load(board('[edit]\nsequence = ["arrival", "climb", "arrival"]\n'
                        'transition = { kind = "fade", duration = 1.0 }\naudio = { normalize = true }\n'))
    lengths = {"arrival": 8.0, "climb": 6.0}
    timeline = resolve(loaded, refs(loaded, lengths))
    assert [(p.shot, p.in_, p.out, p.hold, p.volume, p.overlays) for p in timeline.pieces] == [
        (s, 0.0, lengths[s], 0.0, 1.0, ()) for s in ("arrival", "climb", "arrival")]
    assert [p.sha for p in timeline.pieces] == ["arrival-sha", "climb-sha", "arrival-sha"]
    assert timeline.joins == (Join("fade", 1.0), Join("fade", 1.0))
    assert (timeline.sounds, timeline.subtitles, timeline.loudness) == ((), None, -14.0)
    assert timeline.frames(24) == (8 + 6 + 8 - 2) * 24


def test_titles_texts_and_burned_subtitles_land_on_their_pieces(board) -> None:
    edit = """\
        [assets]
        card = "assets/card.png"

        [edit]
        transition = { kind = "crossfade", duration = 1.0 }

        [[edit.clip]]
        shot = "arrival"
        in = 2.0
        transition = { kind = "dip", duration = 0.5, color = "#FFFFFF" }

        [[edit.clip]]
        shot = "climb"
        out = 4.0
        hold = 0.5

        [[edit.title]]
        text = "The End"
        after = "climb"
        duration = 2.0
        background = "card"

        [[edit.title]]
        text = "Part One"
        before = "arrival"

        [[edit.text]]
        shot = "climb"
        text = "Up"
        start = 1.0
        end = 4.5
        position = "top"

        [edit.subtitles]
        path = "subs/en.srt"
        burn = true
    """
    loaded = load(board(edit, card=(200, 10, 10)))
    timeline = resolve(loaded, refs(loaded, {"arrival": 8.0, "climb": 6.0}))
    kinds = [getattr(p, "shot", None) or p.name for p in timeline.pieces]
    assert kinds == ["title-2", "arrival", "climb", "title-1"]
    part_one, arrival, climb, the_end = timeline.pieces
    assert part_one.duration == 3.0 and part_one.background == "#000000" and part_one.image is None
    assert the_end.image == loaded.assets["card"].path and len(the_end.image_sha) == 64
    assert timeline.joins == (Join("crossfade", 1.0), Join("dip", 0.5, "#ffffff"), Join("crossfade", 1.0))
    # film frames: part one 0-72, arrival from 48 (6 s = 144 frames), climb from 180 (4.5 s), the end from 264
    assert timeline.starts(24) == [0, 48, 180, 264]
    assert timeline.frames(24) == 264 + 48
    # cue 1 (1.0-2.5 s) is on arrival from its first frame (film 2.0 s); the title card keeps its own text
    assert arrival.overlays == (Overlay("Hello.", 0.0, 0.5, "lower-third", "subtitle"),)
    text, sub = climb.overlays
    assert text == Overlay("Up", 1.0, 4.5, "top", "text")
    # cue 2 (9.0-10.0 s film) falls on climb, which starts at film 7.5 s
    assert sub.style == "subtitle" and sub.text == "Across the cut."
    assert (sub.start, sub.end) == pytest.approx((9.0 - 7.5, 10.0 - 7.5))


def test_a_cue_crossing_a_cut_is_split(board) -> None:
    loaded = load(board('[[edit.clip]]\nshot = "arrival"\nout = 2.0\n\n[[edit.clip]]\nshot = "climb"\n\n'
                        '[edit.subtitles]\npath = "subs/en.srt"\nburn = true\n',
                        srt="1\n00:00:01,500 --> 00:00:03,000\nSplit me.\n"))
    first, second = resolve(loaded, refs(loaded, {"arrival": 8.0, "climb": 6.0})).pieces
    assert first.overlays == (Overlay("Split me.", 1.5, 2.0, "lower-third", "subtitle"),)
    assert second.overlays == (Overlay("Split me.", 0.0, 1.0, "lower-third", "subtitle"),)


def test_every_xfade_transition_and_dip_are_accepted(board, capsys, monkeypatch) -> None:
    from storyboard.edit.xfade_names import KINDS

    clips = "".join(f'[[edit.clip]]\nshot = "{"arrival" if i % 2 else "climb"}"\nin = 0.0\n'
                    f'transition = {{ kind = "{kind}", duration = 0.25 }}\n\n' for i, kind in enumerate(KINDS))
    code, err = validate(board(clips + '[[edit.clip]]\nshot = "arrival"\n'), capsys, monkeypatch)
    assert code == 0, err


# ---- the rules: exit 2, everything at once, each named -------------------------------------

BROKEN = """\
    [[edit.clip]]
    shot = "arrival"
    out = 9.0

    [[edit.clip]]
    shot = "storm"
    in = 5.0
    out = 4.0

    [[edit.clip]]
    shot = "climb"
    in = 5.5
    transition = { kind = "wipeleft", duration = 0.75 }

    [[edit.clip]]
    shot = "arrival"

    [[edit.title]]
    text = "Both"
    before = "arrival"
    after = "climb"

    [[edit.title]]
    text = "Nowhere"
    after = "stom"

    [[edit.text]]
    shot = "climb"
    text = "Too long"
    start = 0.0
    end = 0.75

    [[edit.sound]]
    path = "assets/scor.mp3"

    [[edit.sound]]
    path = "assets/notes.mp3"

    [[edit.sound]]
    path = "assets/score.mp3"
    asset = "score"

    [edit.subtitles]
    path = "subs/en.srt"
"""


def test_every_rule_is_reported_in_one_run(board, capsys, monkeypatch) -> None:
    path = board(BROKEN, srt="this is not a subtitle file at all\n")
    (path.parent / "assets" / "notes.mp3").write_text("meeting notes, not a song\n")
    code, err = validate(path, capsys, monkeypatch)
    assert code == 2
    assert err.startswith(f"storyboard: error: 10 problems in {path}:\n")

    def said(needle: str, after: str, text: str) -> None:
        line = line_of(path.read_text(), needle, after)
        assert f"{path}: line {line}: {text}" in err, (text, err)

    said("out = 9.0", "", "[[edit.clip]] #1 (shot 'arrival'): field 'out': 9.0 s is past the end of the clip "
         "(8 s long); use at most out = 8")
    said("in = 5.0", "", "[[edit.clip]] #2 (shot 'storm'): field 'in': in = 5.0 is not before out = 4")
    said("wipeleft", "", "[[edit.clip]] #3 (shot 'climb'): field 'transition.duration': a 0.75 s wipeleft is "
         "longer than [[edit.clip]] #3 (shot 'climb') as trimmed (0.5 s)")
    said("after = \"climb\"", "Both", "[[edit.title]] #1: give exactly one of 'before' or 'after'")
    said("after = \"stom\"", "", "[[edit.title]] #2: field 'after': 'stom' is not a shot (did you mean 'storm'?)")
    said("end = 0.75", "", "[[edit.text]] #1 (shot 'climb'): field 'end': 0.75 s is past the end of its clip "
         "(0.5 s from its in point, as trimmed)")
    said("scor.mp3", "", "[[edit.sound]] #1: field 'path': file 'assets/scor.mp3' not found "
         "(did you mean 'score.mp3'?)")
    said("notes.mp3", "", "[[edit.sound]] #2: field 'path': 'notes.mp3' is not a WAV, MP3, AAC/M4A or FLAC sound file")
    said("asset = \"score\"", "", "[[edit.sound]] #3: give exactly one of 'path' or 'asset'")
    said("path = \"subs/en.srt\"", "", "[edit.subtitles] field 'path': 'en.srt' is not an SRT or WebVTT file that "
         "parses")
    assert err.count("storyboard: error:") == 1


def test_a_missing_background_asset_is_named(board, capsys, monkeypatch) -> None:
    path = board('[assets]\ncard = "assets/card.png"\n\n[[edit.clip]]\nshot = "arrival"\n\n[[edit.title]]\n'
                 'text = "x"\nafter = "arrival"\nbackground = "crad"\n\n[[edit.title]]\ntext = "y"\n'
                 'before = "arrival"\nbackground = "#12345"\n', card=(1, 2, 3))
    code, err = validate(path, capsys, monkeypatch)
    assert code == 2 and "[[edit.title]] #1: field 'background': unknown asset 'crad' (did you mean 'card'?)" in err
    assert "[[edit.title]] #2: field 'background': '#12345' is not a colour" in err


def test_a_short_form_join_longer_than_a_clip_fails(board, capsys, monkeypatch) -> None:
    path = board('[edit]\nsequence = ["arrival", "climb"]\ntransition = { kind = "crossfade", duration = 6.5 }\n')
    code, err = validate(path, capsys, monkeypatch)
    assert code == 2
    assert "[edit] field 'transition.duration': a 6.5 s crossfade is longer than shot 'climb' (6 s)" in err


def test_joins_at_both_ends_must_leave_something(board, capsys, monkeypatch) -> None:
    path = board('[edit]\ntransition = { kind = "crossfade", duration = 2.0 }\n\n'
                 '[[edit.clip]]\nshot = "arrival"\n\n[[edit.clip]]\nshot = "climb"\nout = 3.5\n\n'
                 '[[edit.clip]]\nshot = "arrival"\n')
    code, err = validate(path, capsys, monkeypatch)
    assert code == 2 and "joins of 2 s and 2 s at both ends of [[edit.clip]] #2 (shot 'climb') as trimmed (3.5 s) " \
                         "leave nothing of it" in err


def test_names_are_checked_before_the_lengths(board, capsys, monkeypatch) -> None:
    path = board('[edit]\nsequence = ["arrival"]\n\n[[edit.clip]]\nshot = "arival"\n')
    code, err = validate(path, capsys, monkeypatch)
    assert code == 2
    assert "[edit] field 'sequence': give either 'sequence' (the short form) or [[edit.clip]] tables" in err
    assert "[[edit.clip]] #1 (shot 'arival'): field 'shot': unknown shot 'arival' (did you mean 'arrival'?)" in err


@pytest.mark.parametrize(("entry", "says"), [
    ('[[edit.clip]]\nshot = "arrival"\nvolume = -1.0\n',
     "[[edit.clip]] #1 (shot 'arrival'): field 'volume': Input should be greater than or equal to 0 (got -1.0)"),
    ('[[edit.clip]]\nshot = "arrival"\ntrim = 1.0\n',
     "[[edit.clip]] #1 (shot 'arrival'): unknown key 'trim'"),
    ('[[edit.clip]]\nshot = "arrival"\ntransition = { kind = "wipeleftt", duration = 0.5 }\n',
     "[[edit.clip]] #1 (shot 'arrival'): field 'transition.kind': unknown transition 'wipeleftt' "
     "(did you mean 'wipeleft'?)"),
    ('[[edit.clip]]\nshot = "arrival"\ntransition = { kind = "dip", colour = "#ffffff" }\n',
     "[[edit.clip]] #1 (shot 'arrival'): unknown key 'colour' (did you mean 'color'?)"),
    ('[[edit.clip]]\nshot = "arrival"\ntransition = { kind = "dip", color = "white" }\n',
     "[[edit.clip]] #1 (shot 'arrival'): field 'transition.color': String should match pattern"),
    ('[[edit.text]]\nshot = "arrival"\ntext = "x"\nend = 1.0\nposition = "bottom"\n',
     "[[edit.text]] #1 (shot 'arrival'): field 'position': Input should be 'lower-third', 'center' or 'top'"),
    ('[[edit.title]]\ntext = "' + "x" * 501 + '"\nbefore = "arrival"\n',
     "[[edit.title]] #1: field 'text': String should have at most 500 characters"),
    ('[edit.subtitles]\npath = "subs/en.srt"\nburn = "yes"\n',
     "[edit.subtitles]: field 'burn': Input should be a valid boolean"),
])
def test_format_mistakes_name_the_entry_and_field(board, capsys, monkeypatch, entry: str, says: str) -> None:
    path = board(entry)
    code, err = validate(path, capsys, monkeypatch)
    assert code == 2 and says in err, err
    assert f"{path}: line " in err


def test_counts_are_bounded(board, capsys, monkeypatch) -> None:
    path = board('[[edit.clip]]\nshot = "arrival"\nout = 1.0\n\n' * 10_001)
    code, err = validate(path, capsys, monkeypatch)
    assert code == 2 and "[edit] field 'clip': List should have at most 10000 items" in err


# ---- files: inside the folder, decoded by content -------------------------------------------


@pytest.mark.parametrize("name", ["tone.wav", "tone.mp3", "tone.flac", "tone.m4a"])
def test_each_audio_format_is_accepted(board, sounds, capsys, monkeypatch, name: str) -> None:
    path = board(f'[[edit.sound]]\npath = "music/{name}"\nout = 2.0\n')
    (path.parent / "music").mkdir()
    shutil.copy(sounds[name], path.parent / "music" / name)
    code, err = validate(path, capsys, monkeypatch)
    assert code == 0, err


def test_a_sound_can_be_an_asset(board, sounds, capsys, monkeypatch) -> None:
    path = board('[assets]\nvoice = "assets/voice.wav"\n\n[[edit.sound]]\nasset = "voice"\nstart = 2.0\n')
    shutil.copy(sounds["tone.wav"], path.parent / "assets" / "voice.wav")
    code, err = validate(path, capsys, monkeypatch)
    assert code == 0, err
    loaded = load(path)
    (sound,) = resolve(loaded, refs(loaded, {"arrival": 8.0, "storm": 13.0})).sounds
    assert sound.path == path.parent.resolve() / "assets" / "voice.wav" and sound.start == 2.0


def test_a_video_and_a_past_the_end_trim_are_refused(board, sounds, capsys, monkeypatch) -> None:
    path = board('[[edit.sound]]\npath = "assets/clip.mp4"\n\n[[edit.sound]]\npath = "assets/score.mp3"\nin = 5.0\n')
    shutil.copy(sounds["clip.mp4"], path.parent / "assets" / "clip.mp4")
    code, err = validate(path, capsys, monkeypatch)
    assert code == 2
    assert "[[edit.sound]] #1: field 'path': 'clip.mp4' is not a WAV, MP3, AAC/M4A or FLAC sound file" in err
    assert "(it has pictures: give the sound alone)" in err
    assert "[[edit.sound]] #2: field 'in': 5 s is past the end of the file (2.0" in err


@pytest.mark.parametrize(("where", "says"), [
    ("../outside.wav", "leaves the storyboard's folder"),
    ("/etc/passwd", "is an absolute path"),
    ("link.wav", "leads outside the storyboard's folder"),
])
def test_sound_and_subtitle_paths_stay_inside_the_folder(board, sounds, capsys, monkeypatch, where: str,
                                                         says: str) -> None:
    path = board(f'[[edit.sound]]\npath = "{where}"\n\n[edit.subtitles]\npath = "{where}"\n')
    shutil.copy(sounds["tone.wav"], path.parent.parent / "outside.wav")
    os.symlink(path.parent.parent / "outside.wav", path.parent / "link.wav")
    code, err = validate(path, capsys, monkeypatch)
    assert code == 2, err
    assert f"[[edit.sound]] #1: field 'path': '{where}' {says}" in err
    assert f"[edit.subtitles] field 'path': '{where}' {says}" in err


def test_a_symlink_inside_the_folder_is_fine(board, capsys, monkeypatch) -> None:
    path = board('[[edit.sound]]\npath = "music.mp3"\n')
    os.symlink(path.parent / "assets" / "score.mp3", path.parent / "music.mp3")
    code, err = validate(path, capsys, monkeypatch)
    assert code == 0, err


# ---- warnings: reported, not fatal ----------------------------------------------------------


def test_warnings_for_content_twice_a_broken_handoff_and_a_late_cue(board, capsys, monkeypatch) -> None:
    shots = SHOTS.replace('prompt = "the climb"', 'prompt = "the climb"\n    continues = "arrival"')
    edit = ('[[edit.clip]]\nshot = "arrival"\nout = 7.0\n\n[[edit.clip]]\nshot = "climb"\n\n'
            '[[edit.clip]]\nshot = "storm"\n\n[edit.subtitles]\npath = "subs/en.srt"\n')
    path = board(edit, shots=shots, srt=SRT + "\n3\n00:00:40,000 --> 00:00:42,000\nToo late.\n")
    code, err = validate(path, capsys, monkeypatch)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("storyboard: warning: ")]
    assert len(warnings) == 3, err
    text = path.read_text()
    storm, out = line_of(text, 'shot = "storm"'), line_of(text, "out = 7.0")
    assert (f"line {storm}: [[edit.clip]] #3 (shot 'storm') extends 'climb', whose clip "
            "it repeats for its first 6 s, and [[edit.clip]] #2 (shot 'climb') is in the film too: 0-6 s of that "
            "content plays twice; set in = 6 on 'storm'") in err
    assert (f"line {out}: [[edit.clip]] #1 (shot 'arrival') as trimmed ends at 7 s, before the "
            "end of its clip (8 s), but 'climb' continues it from its last frame") in err
    assert "subtitle #3 (40-42 s, \"Too late.\") ends after the film's end (26 s)" in err


def test_no_warning_when_the_extension_starts_after_its_source(board, capsys, monkeypatch) -> None:
    path = board('[[edit.clip]]\nshot = "climb"\n\n[[edit.clip]]\nshot = "storm"\nin = 6.0\n')
    code, err = validate(path, capsys, monkeypatch)
    assert code == 0 and err == ""


def test_the_readmes_timeline_validates(board, sounds, capsys, monkeypatch) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("### The edit: a timeline", 1)[1]
    block = section.split("```toml\n", 1)[1].split("```", 1)[0]
    path = board(block)
    shutil.copy(sounds["tone.m4a"], path.parent / "assets" / "score.m4a")
    code, err = validate(path, capsys, monkeypatch)
    assert code == 0 and err == "", err
    loaded = load(path)
    timeline = resolve(loaded, refs(loaded, {"arrival": 8.0, "storm": 13.0}))
    assert [type(p).__name__ for p in timeline.pieces] == ["TitlePiece", "ClipPiece", "ClipPiece"]
    assert timeline.joins == (Join("crossfade", 0.5), Join("dip", 1.0, "#ffffff"))


# ---- a valid edit is a timeline the stitcher can make ---------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

LENGTHS = {"arrival": 8.0, "climb": 6.0, "storm": 13.0}
_seconds = st.sampled_from([0.0, 0.01, 0.04, 0.1, 0.5, 1.0, 2.5, 3.0, 5.99, 6.0, 7.0, 8.0, 12.9, 13.0, 20.0])
_transition = st.fixed_dictionaries({"kind": st.sampled_from(["cut", "crossfade", "dip", "wipeleft"])},
                                    optional={"duration": _seconds})
_clip = st.fixed_dictionaries({"shot": st.sampled_from(list(LENGTHS))},
                              optional={"in": _seconds, "out": _seconds, "hold": _seconds, "transition": _transition})
_title = st.fixed_dictionaries({"text": st.just("T"), st.sampled_from(["before", "after"]): st.sampled_from(
    list(LENGTHS))}, optional={"duration": st.sampled_from([0.01, 0.5, 3.0])})
_text = st.fixed_dictionaries({"shot": st.sampled_from(list(LENGTHS)), "text": st.just("x"), "end": _seconds},
                              optional={"start": _seconds})


def _toml(value: object) -> str:
    import json

    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml(v)}' for k, v in value.items()) + " }"
    return json.dumps(value)


@pytest.fixture(scope="module")
def fuzz_board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "storyboard.toml"
    return path


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(clips=st.lists(_clip, min_size=1, max_size=5), titles=st.lists(_title, max_size=2),
       texts=st.lists(_text, max_size=2), default=_transition)
def test_a_valid_edit_resolves_to_a_stitchable_timeline(fuzz_board: Path, clips, titles, texts, default) -> None:
    from storyboard.errors import StoryboardFileError

    lines = [textwrap.dedent(SHOTS), f"[edit]\ntransition = {_toml(default)}\n"]
    for name, entries in (("clip", clips), ("title", titles), ("text", texts)):
        lines += [f"[[edit.{name}]]\n" + "".join(f'"{k}" = {_toml(v)}\n' for k, v in e.items()) for e in entries]
    fuzz_board.write_text("\n".join(lines))
    try:
        loaded = load(fuzz_board)
    except StoryboardFileError as exc:
        assert str(fuzz_board) in exc.message
        return
    timeline = resolve(loaded, refs(loaded, LENGTHS))
    frames = [timeline.piece_frames(i, 24) for i in range(len(timeline.pieces))]
    joins = [j.frames(24) for j in timeline.joins]
    assert all(f >= 1 for f in frames)
    for i, join in enumerate(joins):
        assert join < frames[i] and join < frames[i + 1]
        if i:
            assert joins[i - 1] + join < frames[i]
    starts = timeline.starts(24)
    assert starts == sorted(starts)
    assert timeline.frames(24) == sum(frames) - sum(joins)
    for piece in timeline.pieces:
        for overlay in getattr(piece, "overlays", ()):
            assert 0 <= overlay.start < overlay.end <= piece.seconds + 1e-9
