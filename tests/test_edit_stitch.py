"""The stitcher on a whole timeline: trims, holds, per-join transitions, titles, text, volume, soft
subtitles and the memo, all checked on the decoded film."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
import pytest

from storyboard.edit.conform import Profile
from storyboard.edit.stitch import StitchStats, stitch
from storyboard.edit.timeline import (
    ClipPiece,
    Cue,
    Join,
    Overlay,
    Subtitles,
    Timeline,
    TitlePiece,
)
from tests.test_stitch import DirMemo

PROFILE = Profile(width=320, height=180, fps=24)
BACKGROUND = (0x20, 0x30, 0x40)



def render(path: Path, video: str, hz: int) -> tuple[str, Path]:
    """A 2 s clip of ``video`` with a ``hz`` tone, as one provider's encoder makes them."""
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"{video}",
                    "-f", "lavfi", "-i", f"sine=f={hz}:r=48000:d=2", "-c:a", "aac", "-shortest",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
                   check=True)
    return hashlib.sha256(path.read_bytes()).hexdigest(), path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return {
        "a": render(folder / "a.mp4", "testsrc2=s=320x180:r=24:d=2", 440),
        "b": render(folder / "b.mp4", "testsrc2=s=320x180:r=24:d=2,hflip,hue=h=120", 660),
        "c": render(folder / "c.mp4", "testsrc2=s=320x180:r=24:d=2,negate", 880),
    }


def clip(clips, name: str, in_: float = 0.0, out: float = 2.0, **more) -> ClipPiece:
    sha, path = clips[name]
    return ClipPiece(shot=name, sha=sha, path=path, in_=in_, out=out, **more)


def timeline(clips, tmp_path: Path, *, b_out: float = 1.75) -> Timeline:
    """Title, crossfade, a with text, cut, b trimmed, wipe, c held, cut, a (copied), cut, b muted,
    dip to red, c trimmed."""
    srt = tmp_path / "en.srt"
    cues = (Cue(0.5, 1.5, "Hello"), Cue(4.0, 5.0, "World"))
    srt.write_text("1\n00:00:00,500 --> 00:00:01,500\nHello\n\n"
                   "2\n00:00:04,000 --> 00:00:05,000\nWorld\n", encoding="utf-8")
    return Timeline(
        pieces=(
            TitlePiece("The Keeper", 1.0, background="#203040", name="title-1"),
            clip(clips, "a", overlays=(Overlay("Cape Wrath", 0.25, 0.75),)),
            clip(clips, "b", 0.5, b_out),
            clip(clips, "c", 0.0, 1.5, hold=0.5),
            clip(clips, "a"),
            clip(clips, "b", volume=0.0),
            clip(clips, "c", 0.0, 1.0),
        ),
        joins=(Join("crossfade", 0.25), Join(), Join("wipeleft", 0.5), Join(), Join(),
               Join("dip", 0.25, "#ff0000")),
        subtitles=Subtitles(srt, hashlib.sha256(srt.read_bytes()).hexdigest(), False, cues),
    )


@pytest.fixture(scope="module")
def film(clips, tmp_path_factory):
    """The film, its timeline, the memo it filled, and what the stitch did."""
    work = tmp_path_factory.mktemp("film")
    line = timeline(clips, work)
    steps: list[str] = []
    memo = DirMemo(work / "memo")
    stats = stitch(line, work / "film.mp4", profile=PROFILE, memo=memo, on_step=steps.append)
    return work / "film.mp4", line, stats, steps, memo, work


def pictures(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24").astype(np.int16) for f in container.decode(video=0)]


def sound(path: Path) -> np.ndarray:
    """The film's sound as mono samples from film time 0."""
    with av.open(str(path)) as container:
        frames = list(container.decode(audio=0))
    skip = -round(frames[0].pts * frames[0].time_base * frames[0].sample_rate)
    return np.concatenate([f.to_ndarray().mean(axis=0) for f in frames])[max(0, skip):]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(float) - b.astype(float)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples**2)))


def test_the_film_is_as_long_as_the_timeline_to_the_frame(film):
    out, line, stats, _, _, _ = film
    frames = pictures(out)
    assert len(frames) == line.frames(24) == 246
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        assert float(video.duration * video.time_base) == pytest.approx(246 / 24, abs=1 / 48)
    assert len(sound(out)) == pytest.approx(246 * 2000, abs=2048)
    assert stats.conforms_copied == 1 and stats.titles_encoded == 1 and stats.windows_encoded == 3


def test_a_trimmed_clip_starts_on_its_in_frame(film, clips):
    out, line, _, _, _, _ = film
    start = line.starts(24)[2]
    source = pictures(clips["b"][1])
    assert psnr(pictures(out)[start], source[12]) >= 40
    assert psnr(pictures(out)[start], source[11]) < 35 > psnr(pictures(out)[start], source[13])


def test_a_hold_repeats_the_last_used_frame_exactly_in_silence(film):
    out, line, _, _, _, _ = film
    start = line.starts(24)[3]
    frames = pictures(out)
    last = frames[start + 35]
    assert all(np.array_equal(last, frames[start + k]) for k in range(36, 48))
    assert not np.array_equal(frames[start + 30], last)  # the clip moved before the hold
    samples = sound(out)
    assert rms(samples[(start + 36) * 2000 + 1024:(start + 48) * 2000 - 1024]) < 1e-3
    assert rms(samples[(start + 14) * 2000:(start + 34) * 2000]) > 0.05


def test_each_join_is_its_own_transition(film, clips):
    out, line, _, _, _, _ = film
    starts = line.starts(24)
    frames = pictures(out)
    # the cut from a to b: a hard change between two frames
    cut = starts[2]
    assert psnr(frames[cut - 1], frames[cut]) < 20
    # the wipe from b to c: one frame shows part of each
    middle = starts[3] + 6
    b_frame, c_frame = pictures(clips["b"][1])[12 + 18 + 6], pictures(clips["c"][1])[6]
    columns_b = np.abs(frames[middle] - b_frame).mean(axis=(0, 2)) < 12
    columns_c = np.abs(frames[middle] - c_frame).mean(axis=(0, 2)) < 12
    assert 40 < columns_b.sum() < 280 and 40 < columns_c.sum() < 280
    # the dip from a to b passes through red
    red = frames[starts[6] + 3].reshape(-1, 3).mean(axis=0)
    assert red[0] > 180 and red[1] < 60 and red[2] < 60
    # the crossfade from the title to a blends the two
    blend = frames[starts[1] + 3]
    assert psnr(blend, frames[0]) < 30 and psnr(blend, pictures(clips["a"][1])[3]) < 30


def test_the_title_card_has_its_colour_and_its_text(film):
    out, _, _, steps, _, _ = film
    card = pictures(out)[5]
    corner = card[:20, :20].reshape(-1, 3).mean(axis=0)
    assert np.allclose(corner, BACKGROUND, atol=6)
    white = (card[60:120].min(axis=2) > 200).sum()
    assert white > 100
    assert "title 'The Keeper'" in steps


def test_text_is_drawn_over_its_span_only(film, clips):
    out, line, _, steps, _, _ = film
    start = line.starts(24)[1]
    frames, source = pictures(out), pictures(clips["a"][1])
    for k in range(6, 18):  # the span: text in the lower third, the rest untouched
        assert np.abs(frames[start + k][120:150] - source[k][120:150]).max() > 100
        assert psnr(frames[start + k][:90], source[k][:90]) >= 35
    for k in (*range(19, 48, 4), 47):
        assert psnr(frames[start + k], source[k]) >= 35
    assert "trim clip 2 (a) 0.00-2.00 s, text 'Cape Wrath'" in steps


def test_soft_subtitles_are_a_stream_with_every_cue(film):
    out, _, _, _, _, _ = film
    with av.open(str(out)) as container:
        assert [s.codec_context.name for s in container.streams.subtitles] == ["mov_text"]
        texts = [p for p in container.demux(container.streams.subtitles[0]) if p.size > 2]
    assert len(texts) == 2


def test_volume_zero_mutes_its_clip(film):
    out, line, _, _, _, _ = film
    start = line.starts(24)[5]
    samples = sound(out)
    assert rms(samples[(start + 2) * 2000:(start + 40) * 2000]) < 1e-3
    assert rms(samples[(start - 40) * 2000:(start - 8) * 2000]) > 0.05


def test_changing_one_out_point_reencodes_that_clip_and_one_window(film, clips):
    out, _, _, _, memo, work = film
    steps: list[str] = []
    edited = timeline(clips, work, b_out=1.5)
    stats = stitch(edited, work / "edited.mp4", profile=PROFILE, memo=memo, on_step=steps.append)
    # b's body and tail and the wipe after it; its cut before it, every other piece and window
    # (and the copied clip) come from the memo
    assert stats == StitchStats(conforms_encoded=1, conforms_reused=5, windows_encoded=1,
                                windows_reused=2, segments=11, titles_reused=1, parts_encoded=2,
                                parts_reused=11, frames_copied=48, frames_encoded=192)
    assert [s for s in steps if not s.startswith("join")] == [
        "smart cut clip 3 (b): nothing copied, 1.0 s re-encoded (the wipeleft after it; no run of "
        "whole closed GOPs worth copying between its cuts)",
        "trim clip 3 (b) 0.50-1.50 s", "wipeleft window 3/6 (clip 3 -> clip 4)"]
    assert len(pictures(work / "edited.mp4")) == edited.frames(24) == 246 - 6


def test_the_same_edit_gives_the_same_bytes(film, clips, tmp_path):
    out, line, _, _, _, _ = film
    again = tmp_path / "again.mp4"
    stitch(line, again, profile=PROFILE, memo=DirMemo(tmp_path / "memo"))
    assert again.read_bytes() == out.read_bytes()


def test_a_burned_subtitle_is_boxed_text_over_its_span_only(clips, tmp_path):
    cue = Overlay("Hi there", 0.25, 0.5, style="subtitle")
    out = tmp_path / "burned.mp4"
    stitch(Timeline((clip(clips, "a", 0.0, 1.0, overlays=(cue,)),)), out, profile=PROFILE,
           memo=DirMemo(tmp_path / "memo"))
    frames, source = pictures(out), pictures(clips["a"][1])
    assert len(frames) == 24
    for k in range(6, 12):  # the box darkens the bottom band; the rest is the clip
        assert np.abs(frames[k][150:175] - source[k][150:175]).max() > 100
        assert psnr(frames[k][:120], source[k][:120]) >= 35
    assert all(psnr(frames[k], source[k]) >= 35 for k in (*range(0, 6), *range(12, 24)))


def test_a_title_card_on_an_image_fills_the_frame_with_it(tmp_path):
    from PIL import Image

    image = Image.new("RGB", (64, 36), (200, 0, 0))
    image.paste((0, 0, 200), (32, 0, 64, 36))
    image.save(tmp_path / "card.png")
    card = TitlePiece("Fin", 0.5, image=tmp_path / "card.png", image_sha="c" * 64, name="title-1")
    out = tmp_path / "card.mp4"
    stitch(Timeline((card,)), out, profile=PROFILE, memo=DirMemo(tmp_path / "memo"))
    frames = pictures(out)
    assert len(frames) == 12
    left, right = frames[6][10:40, 10:80].mean(axis=(0, 1)), frames[6][10:40, 240:310].mean(axis=(0, 1))
    assert left[0] > 150 > left[2] and right[2] > 150 > right[0]
    assert (frames[6][60:120].min(axis=2) > 200).sum() > 50  # the text, white, in the middle


BOARD = """
[film]
provider = "fake"
output = "build/short.mp4"

[[shot]]
id = "a"
prompt = "a fox wakes"
duration = 4

[[shot]]
id = "b"
prompt = "a fox runs"
duration = 4

[edit]
audio = { normalize = true, loudness = -16.0 }

[[edit.title]]
text = "Short"
before = "a"
duration = 1.0
background = "#102030"

[[edit.clip]]
shot = "a"
in = 1.0
out = 3.0
transition = { kind = "wipeleft", duration = 0.5 }

[[edit.clip]]
shot = "b"
out = OUT
hold = 0.5

[[edit.text]]
shot = "a"
text = "Hello"
start = 0.25
end = 1.0

[[edit.sound]]
path = "assets/score.wav"
start = 0.5
gain = -6.0
duck = true

[edit.subtitles]
path = "subs/en.srt"
"""


def test_a_storyboard_timeline_builds_into_the_film_with_its_subtitles(write_board, fake_provider):
    from storyboard.build import build, open_project

    board = write_board(BOARD.replace("OUT", "2.0"))
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=f=330:r=48000:d=6", str(board.parent / "assets" / "score.wav")], check=True)
    (board.parent / "subs").mkdir()
    (board.parent / "subs" / "en.srt").write_text(
        "1\n00:00:00,500 --> 00:00:01,000\nOne\n\n2\n00:00:02,000 --> 00:00:03,000\nTwo\n")
    steps: list[str] = []
    report = build(open_project(board), on_film_step=steps.append)
    film = board.parent / "build" / "short.mp4"
    # title 1 s + a 2 s + b 2 s held 0.5 s, less the 0.5 s wipe: 5 s
    assert report.film.path == film and len(pictures(film)) == 5 * 24
    with av.open(str(film)) as container:
        assert [s.codec_context.name for s in container.streams.subtitles] == ["mov_text"]
    sidecar = board.parent / "build" / "short.srt"
    assert sidecar.read_text().count("-->") == 2
    assert "title 'Short'" in steps and any(s.startswith("trim clip 2 (a) 1.00-3.00 s") for s in steps)
    assert report.film.stats.titles_encoded == 1 and report.film.stats.windows_encoded == 1

    board.write_text(board.read_text().replace("out = 2.0", "out = 2.5"))
    again = build(open_project(board))
    assert len(pictures(film)) == 5 * 24 + 12
    stats = again.film.stats
    # only b's body: its head (the wipe's second half) is the same, so the wipe is reused too
    assert (stats.conforms_encoded, stats.parts_encoded, stats.titles_reused) == (1, 1, 1)
    assert (stats.windows_encoded, stats.windows_reused) == (0, 1)


def test_a_subtitle_file_storyboard_did_not_write_is_never_replaced_and_gc_keeps_the_sidecar(
        write_board, fake_provider):
    from storyboard.build import build, open_project
    from storyboard.edit.film import OutputTakenError
    from storyboard.gc import collect
    from storyboard.lockfile import lock_path

    board = write_board(BOARD.replace("OUT", "2.0"))
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=f=330:r=48000:d=6", str(board.parent / "assets" / "score.wav")], check=True)
    (board.parent / "subs").mkdir()
    (board.parent / "subs" / "en.srt").write_text("1\n00:00:00,500 --> 00:00:01,000\nOne\n")
    mine = board.parent / "build" / "short.srt"
    mine.parent.mkdir()
    mine.write_text("my own notes, not subtitles\n")
    with pytest.raises(OutputTakenError, match=r"short\.srt exists and storyboard did not write it"):
        build(open_project(board))
    assert mine.read_text() == "my own notes, not subtitles\n"
    assert not (board.parent / "build" / "short.mp4").exists()  # refused before any work

    mine.unlink()
    project = open_project(board)
    report = build(project)
    assert mine.read_text().count("-->") == 1 and project.lock.film["subtitles"] == report.film.subtitles
    collect(project.cache, [lock_path(board)])
    assert project.cache.has_object(report.film.subtitles)
    build(open_project(board))  # the sidecar it wrote is its own: replaced without a complaint
